"""Shared pytest set-up: small thread counts and a private model cache per test session."""

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
# the benchmark scripts import their shared helpers as ``from common import ...``
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _no_shipped_checkpoints(tmp_path_factory, monkeypatch):
    """Tests never see the checkpoints minit2i ships (they are made for the real cpu recipes,
    which tests change): an empty folder stands in. test_zoo.py's ``shipped`` fixture makes its
    own, and one test there checks the real ones."""
    from minit2i import zoo

    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path_factory.mktemp("no-shipped"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty MINIT2I_CACHE for train-or-load tests."""
    monkeypatch.setenv("MINIT2I_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


os.environ.setdefault("MINIT2I_PRESET", "smoke")
