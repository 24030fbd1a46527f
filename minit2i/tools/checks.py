"""Checks that explain themselves: the tests of the exercises say what they expected and got.

An exercise's visible checks and hidden tests call these instead of a bare ``assert``, so a
failing check tells the student, in words, which property failed and why::

    check(d.ndim == 0, "d_loss must be a scalar (0-dimensional tensor), got shape (3,)")
    check_close(d_loss, 0.5, "d_loss for real outputs [1, 1] and fake outputs [0, 0]")
    check_number(modes, 6, 0, "modes covered by the hinge run")

Each raises ``CheckFailed`` (an ``AssertionError``) with that message. The autograders
(``minit2i.tools.autograde`` and nbgrader) show it as the reason the exercise lost its points.
The experiments' given code runs its small networks inside ``one_thread()``. Only torch and numpy
are needed, so the notebooks import this wherever they run.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch


@contextlib.contextmanager
def one_thread():
    """Run a small experiment on one CPU thread, then restore the thread count. Tiny networks run
    fastest so (several threads mostly wait for each other, the more so on a busy grading
    machine), and the order of the arithmetic no longer depends on the number of cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class CheckFailed(AssertionError):
    """A check of an exercise failed; the message says what was expected and what came back."""


def check(condition, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def show(value, digits: int = 4) -> str:
    """A short description of a value for a message: small tensors in full, large ones summed up."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(value)
        if t.numel() <= 16:
            body = t.double().tolist() if t.is_floating_point() else t.tolist()
            text = str(_round(body, digits))
        else:
            text = (f"a tensor of shape {tuple(t.shape)}"
                    + (f" (mean {t.double().mean():.{digits}g})" if t.is_floating_point() else ""))
        return text if t.ndim else text.strip("[]")
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return repr(value)


def _round(x, digits):
    if isinstance(x, list):
        return [_round(v, digits) for v in x]
    return float(f"{x:.{digits}g}") if isinstance(x, float) else x


def check_close(got, expected, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """``got`` equals ``expected`` (tensors, arrays or numbers) in shape and, within the
    tolerances, in value; otherwise say which, and where they differ most."""
    if got is None:
        raise CheckFailed(f"{what}: got None; does your function return its result?")
    if not isinstance(got, (torch.Tensor, np.ndarray, int, float, np.number)):
        raise CheckFailed(f"{what}: expected a number or a tensor, got {type(got).__name__}")
    g, e = torch.as_tensor(got), torch.as_tensor(expected)
    if g.shape != e.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(e.shape)}, got {tuple(g.shape)}")
    g, e = g.detach().double().cpu(), e.detach().double().cpu()
    if torch.isnan(g).any() and not torch.isnan(e).any():
        raise CheckFailed(f"{what}: got NaN ({show(got)}); expected {show(expected)}")
    if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
        if g.ndim == 0:
            raise CheckFailed(f"{what}: expected {show(expected)}, got {show(got)}")
        # 0 where the two agree (the same infinity included), inf where only one is inf or NaN
        diff = torch.where(g == e, 0.0, (g - e).abs()).nan_to_num(nan=math.inf, posinf=math.inf)
        where = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(g.shape)))
        raise CheckFailed(f"{what}: expected {show(expected)}, got {show(got)}; the largest "
                          f"difference is {float(diff.max()):.3g}, at index {where}")


def check_number(got, expected: float, tolerance: float, what: str, hint: str = "") -> None:
    """A number a student reports (an experiment's result) is within ``tolerance`` of the value
    the test computed itself with the exercise's settings."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, np.generic):
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"{what}: expected a number (int or float), got {type(got).__name__} "
                          f"{show(got)}")
    if not math.isfinite(got) or abs(got - expected) > tolerance:
        within = f" ± {tolerance:g}" if tolerance else ""
        raise CheckFailed(f"{what}: you report {show(float(got))}, but a run with the exercise's "
                          f"settings gives {show(float(expected))}{within}" + (f". {hint}"
                                                                              if hint else ""))
