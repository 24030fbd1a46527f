"""The generic training loop, schedules and batches."""

import pytest
import torch

from minit2i.train import History, OptimizerStep, batches_from, cosine_lr, fit, param_groups


def test_fit_logs_window_means_and_calls_callbacks():
    seen = []
    history = fit(lambda batch, i: {"loss": torch.tensor(float(i))}, iter(range(10)), steps=10,
                  log_every=4, callbacks=[lambda i, h: seen.append(i)], progress=False)
    assert history.steps == [4, 8, 10]
    assert history["loss"] == [1.5, 5.5, 8.5]          # means of 0..3, 4..7, 8..9
    assert seen == [4, 8, 10] and history.last("loss") == 8.5
    assert history.seconds > 0 and not history.interrupted


def test_interrupt_keeps_what_was_learned():
    def step(batch, i):
        if i == 7:
            raise KeyboardInterrupt
        return {"loss": torch.tensor(1.0)}

    history = fit(step, iter(range(100)), steps=100, log_every=5, progress=False)
    assert history.interrupted and history.steps == [5]


def test_fit_trains_a_model():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch, i):
        xb, yb = batch
        loss = torch.nn.functional.mse_loss(model(xb).squeeze(1), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    history = fit(step, batches_from(x, y, batch_size=32), steps=200, log_every=20,
                  progress=False)
    assert history["loss"][-1] < history["loss"][0] / 10


def test_cosine_schedule():
    assert cosine_lr(0, 100, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(10, 100, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)
    values = [cosine_lr(i, 100, warmup=10) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_batches_from():
    x, y = torch.arange(10), torch.arange(10) * 2
    it = batches_from(x, y, batch_size=4, seed=1)
    first = [next(it) for _ in range(4)]
    assert all(b[0].shape == (4,) and torch.equal(b[1], b[0] * 2) for b in first)
    again = batches_from(x, y, batch_size=4, seed=1)
    assert all(torch.equal(a[0], next(again)[0]) for a in first)
    # each pass over the data is a permutation (the last partial batch is dropped)
    assert len(set(torch.cat([first[0][0], first[1][0]]).tolist())) == 8
    with pytest.raises(ValueError, match="differ in length"):
        next(batches_from(x, torch.arange(3), batch_size=2))
    with pytest.raises(ValueError, match="larger than the data"):
        next(batches_from(x, batch_size=11))
    doubled = batches_from(x.float(), batch_size=5, transform=lambda t: t * 2)
    assert next(doubled).shape == (5,)


def test_history_indexing():
    h = History()
    h.log(5, {"a": 1.0})
    assert h["a"] == [1.0] and h.steps == [5]


def test_a_callback_stops_fit_for_real():
    calls = []

    def step(batch, i):
        calls.append(i)
        return {"loss": torch.tensor(1.0)}

    history = fit(step, iter(range(100)), steps=100, log_every=5, progress=False,
                  callbacks=[lambda i, h: i >= 15])
    assert calls == list(range(15))                    # no step after the stop, none faked
    assert history.stopped_early and history.steps_done == 15 and history.steps == [5, 10, 15]
    full = fit(step, iter(range(100)), steps=10, log_every=5, progress=False,
               callbacks=[lambda i, h: i >= 10])       # a stop at the very end is not early
    assert not full.stopped_early and full.steps_done == 10


def test_param_groups_decay_only_linear_and_conv_weights():
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 4),
                                torch.nn.LayerNorm(4), torch.nn.Conv1d(4, 4, 1))
    model.register_parameter("pos", torch.nn.Parameter(torch.zeros(3, 4)))
    decay, rest = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[1].weight), id(model[3].weight)}
    named = {id(p): n for n, p in model.named_parameters()}
    assert sorted(named[id(p)] for p in rest["params"]) == [
        "0.weight", "1.bias", "2.bias", "2.weight", "3.bias", "pos"]


def _tiny_problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3)
    return model, x, x @ torch.tensor([1.0, -2.0, 0.5])


def test_optimizer_step_matches_the_hand_written_steps():
    model, x, y = _tiny_problem()
    twin = torch.nn.Linear(3, 1)
    twin.load_state_dict(model.state_dict())
    update = OptimizerStep(model.parameters(), 0.1, steps=10, warmup=2, clip=0.5,
                           weight_decay=0.01)
    opt = torch.optim.AdamW(twin.parameters(), lr=0.1, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: cosine_lr(i, 10, 2))
    for _ in range(5):
        norm = update.update(torch.nn.functional.mse_loss(model(x).squeeze(1), y))
        opt.zero_grad()
        torch.nn.functional.mse_loss(twin(x).squeeze(1), y).backward()
        expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
        opt.step()
        sched.step()
        torch.testing.assert_close(norm, expected)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)
    assert update.lr() == pytest.approx(opt.param_groups[0]["lr"])
    assert update.loss_scale() == 1.0


def test_optimizer_step_scales_under_fp16(monkeypatch):
    monkeypatch.setenv("MINIT2I_AMP", "fp16")
    model, x, y = _tiny_problem()
    update = OptimizerStep(model.parameters(), 0.05, clip=1.0)
    assert update.scaler.is_enabled() and update.loss_scale() == 2.0 ** 16
    before = model.weight.detach().clone()
    for _ in range(20):             # the first steps may overflow in fp16 and be skipped
        with torch.autocast("cpu", dtype=torch.float16):
            pred = model(x)
        update.update(torch.nn.functional.mse_loss(pred.float().squeeze(1), y))
    assert torch.isfinite(model.weight).all() and not torch.equal(model.weight, before)
    # a step whose gradients overflow is skipped and the scale goes down
    before, scale = model.weight.detach().clone(), update.loss_scale()
    update.update((model(x) * float("inf")).sum())
    assert torch.equal(model.weight, before) and update.loss_scale() < scale


def test_optimizer_step_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'; choose one of adamw, adam"):
        OptimizerStep(torch.nn.Linear(2, 2).parameters(), 0.1, optimizer="sgd")
    with pytest.raises(ValueError, match="no parameters"):
        OptimizerStep([], 0.1)
