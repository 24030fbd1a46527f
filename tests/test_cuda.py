"""On a CUDA GPU (skipped elsewhere): every trainer takes real steps under the device's own AMP.

The dtype must follow the compute capability (bf16 from 8.0, else fp16), the gradient scaler
must be on exactly when fp16 is, and a few steps must change the weights and keep them finite.
"""

import math

import pytest
import torch

from minit2i import train as train_module
from minit2i import zoo
from minit2i.config import amp_dtype
from minit2i.presets import recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from test_recipes import MODELS, TINY  # noqa: E402


def test_amp_dtype_of_this_gpu(monkeypatch):
    monkeypatch.delenv("MINIT2I_AMP", raising=False)
    major, _ = torch.cuda.get_device_capability()
    assert amp_dtype("cuda") == (torch.bfloat16 if major >= 8 else torch.float16)


@pytest.mark.parametrize("name", MODELS)
def test_trainer_steps_under_the_gpus_amp(name, cache, monkeypatch):
    monkeypatch.delenv("MINIT2I_AMP", raising=False)
    dtype = amp_dtype("cuda")
    made = []
    original = train_module.OptimizerStep.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(train_module.OptimizerStep, "__init__", spy)
    r = recipe(name, "smoke")
    settings = r.train.replace(steps=10, **TINY[name])
    s = zoo.spec(name)
    torch.manual_seed(0)
    model = s.build(r.model).cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = s.train(model, settings, torch.device("cuda"), "smoke")
    assert made
    for update in made:
        assert update.scaler.is_enabled() == (dtype == torch.float16)
        if update.scaler.is_enabled():
            assert update.loss_scale() > 1.0
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(v, before[k]) for k, v in after.items())
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
