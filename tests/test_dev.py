"""dev.py, the README's two commands: the book's editions go to their own folders."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dev(monkeypatch):
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "python", lambda: Path("/venv/bin/python"))
    monkeypatch.setattr(module, "run", lambda *cmd, env=None: calls.append((cmd, env)))
    return module, calls


@pytest.mark.parametrize("argv, edition, out", [
    (["dev.py", "book"], "public", ROOT),
    (["dev.py", "book", "--instructors"], "instructors", ROOT / "_build" / "instructors")])
def test_book_builds_the_edition_it_is_asked_for(dev, monkeypatch, argv, edition, out):
    module, calls = dev
    monkeypatch.setattr("sys.argv", argv)
    module.main()
    (cmd, env), = calls
    assert env["MINIT2I_EDITION"] == edition
    assert cmd[cmd.index("--path-output") + 1] == out
    assert {"-W", "-n", "--keep-going"} <= set(cmd)


def test_an_unknown_option_prints_the_usage(dev, monkeypatch):
    module, calls = dev
    monkeypatch.setattr("sys.argv", ["dev.py", "book", "--teachers"])
    with pytest.raises(SystemExit, match="--instructors"):
        module.main()
    assert calls == []
