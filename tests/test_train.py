"""The generic training loop, schedules and batches."""

import pytest
import torch

from minit2i.train import History, batches_from, cosine_lr, fit, to_float_image, to_uint8_image


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


def test_image_conversions():
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    f = to_float_image(u)
    assert f.min() >= -1 and f.max() <= 1
    assert torch.equal(to_uint8_image(f), u)


def test_history_indexing():
    h = History()
    h.log(5, {"a": 1.0})
    assert h["a"] == [1.0] and h.steps == [5]
