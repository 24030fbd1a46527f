"""One helper that every from-scratch op's test uses: compare with a torch reference.

Values, and gradients with respect to every input that requires them, under a random upstream
gradient, in the dtype of the inputs (the tests call it in float32 and float64).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TOLERANCES = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-8)}


def _outputs(result) -> tuple[torch.Tensor, ...]:
    if isinstance(result, torch.Tensor):
        return (result,)
    return tuple(r for r in result if isinstance(r, torch.Tensor))


def assert_matches_reference(ours: Callable, reference: Callable, *inputs,
                             atol: float | None = None, rtol: float | None = None,
                             seed: int = 0) -> None:
    """Assert ``ours(*inputs)`` equals ``reference(*inputs)`` in values and in gradients.

    Non-tensor inputs are passed through. Tensor inputs with ``requires_grad`` are differentiated:
    both functions are backpropagated from the same random upstream gradient and the gradients
    compared. Floating outputs are compared with tolerances for their dtype; others exactly.
    """
    def fresh():
        return [x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor)
                else x for x in inputs]

    a_in, b_in = fresh(), fresh()
    a_out, b_out = _outputs(ours(*a_in)), _outputs(reference(*b_in))
    assert len(a_out) == len(b_out), f"{len(a_out)} outputs, reference has {len(b_out)}"
    g = torch.Generator().manual_seed(seed)
    loss_a, loss_b = 0.0, 0.0
    for k, (a, b) in enumerate(zip(a_out, b_out)):
        assert a.shape == b.shape, f"output {k}: shape {tuple(a.shape)}, reference {tuple(b.shape)}"
        if a.requires_grad != b.requires_grad:
            side = "ours" if b.requires_grad else "the reference"
            raise AssertionError(f"output {k}: {side} does not carry a gradient (requires_grad "
                                 f"{a.requires_grad} against the reference's {b.requires_grad}); "
                                 "a detached output would pass the value check alone")
        if a.is_floating_point():
            tol = TOLERANCES.get(a.dtype, dict(atol=1e-3, rtol=1e-3))
            tol = dict(atol=atol if atol is not None else tol["atol"],
                       rtol=rtol if rtol is not None else tol["rtol"])
            torch.testing.assert_close(a, b, **tol, msg=lambda m, k=k: f"output {k}: {m}")
            if a.requires_grad and b.requires_grad:
                up = torch.randn(a.shape, generator=g, dtype=a.dtype)
                loss_a = loss_a + (a * up).sum()
                loss_b = loss_b + (b * up).sum()
        else:
            assert torch.equal(a, b), f"output {k} differs from the reference"
    wants_grad = [i for i, x in enumerate(a_in) if isinstance(x, torch.Tensor) and x.requires_grad]
    if not wants_grad or not isinstance(loss_a, torch.Tensor):
        return
    grads_a = torch.autograd.grad(loss_a, [a_in[i] for i in wants_grad], allow_unused=True)
    grads_b = torch.autograd.grad(loss_b, [b_in[i] for i in wants_grad], allow_unused=True)
    for i, ga, gb in zip(wants_grad, grads_a, grads_b):
        if ga is None or gb is None:
            assert ga is None and gb is None, f"input {i}: gradient missing on one side"
            continue
        tol = TOLERANCES.get(ga.dtype, dict(atol=1e-3, rtol=1e-3))
        tol = dict(atol=atol if atol is not None else tol["atol"],
                   rtol=rtol if rtol is not None else tol["rtol"])
        torch.testing.assert_close(ga, gb, **tol, msg=lambda m, i=i: f"gradient of input {i}: {m}")
