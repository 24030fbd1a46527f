"""A reader's install: the package as a wheel, in a fresh virtual environment, imports and runs.

``pip install .`` builds a wheel and installs it with its declared dependencies. Here the wheel
is built from this checkout (with the project's setuptools, no network) and installed into a new
virtual environment, which then holds exactly the dependency closure that the wheel declares:
each declared distribution, and what it requires in turn, linked in from this environment's
site-packages (so torch is not downloaded again). Nothing else is visible there, neither this
checkout nor any other package, so an undeclared import or a missing data file fails.
"""

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    from packaging.requirements import Requirement
except ImportError:                                      # pragma: no cover
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, importlib.resources, pathlib, sys
import minit2i
where = pathlib.Path(minit2i.__file__).resolve()
assert sys.prefix in str(where), f"minit2i imported from {where}, not from the new environment"
for name in ("attention", "clip", "config", "dalle", "data", "eval", "gan", "generation",
             "presets", "shapes", "text", "train", "transformer", "viz", "vq", "vqgan",
             "vqgan_clip", "zoo", "budget"):
    importlib.import_module("minit2i." + name)
assert (importlib.resources.files("minit2i") / "checkpoints" / "README.md").is_file()
import numpy as np
from minit2i.shapes import sample_scene, render, caption, parse
scene = sample_scene(np.random.default_rng(0))
assert render(scene).shape == (64, 64, 3) and parse(caption(scene)) == scene.described()
from minit2i.presets import recipe
from minit2i.zoo import spec
model = spec("vqvae").build(recipe("vqvae", "smoke").model)
import torch
assert model(torch.zeros(1, 3, 64, 64))["recon"].shape == (1, 3, 64, 64)
print("ok", minit2i.__version__)
"""


def dependency_closure(requirements: list[str]) -> list[md.Distribution]:
    """The installed distributions that ``requirements`` need, recursively (no extras)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = md.distribution(req.name)                # missing here: PackageNotFoundError
        assert dist.version in req.specifier or not req.specifier, (req, dist.version)
        seen[key] = dist
        todo += dist.requires or []
    return list(seen.values())


def link_into(site: Path, dists: list[md.Distribution]) -> None:
    """Make ``dists`` importable in ``site`` by linking their top-level files and folders."""
    for dist in dists:
        base = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top == ".." or top.endswith(".pth") or (site / top).exists():
                continue
            if (base / top).exists():
                os.symlink(base / top, site / top)


@pytest.mark.slow
def test_the_wheel_installs_and_imports_in_a_fresh_environment(tmp_path):
    wheels, venv, source = tmp_path / "wheels", tmp_path / "venv", tmp_path / "source"
    # a copy of what the build reads, so that setuptools' build folders stay out of the checkout
    shutil.copytree(ROOT / "minit2i", source / "minit2i",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
                            str(source)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("minit2i-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1"}
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                              "-q", str(wheel)], capture_output=True, text=True, env=clean)
    assert install.returncode == 0, install.stderr[-3000:]
    # exactly the closure the wheel declares, linked in from this environment
    declared = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                               "print('\\n'.join(m.requires('minit2i') or []))"],
                              capture_output=True, text=True, env=clean, check=True)
    requirements = [line for line in declared.stdout.splitlines()
                    if line and "extra ==" not in line]
    assert {Requirement(r).name for r in requirements} >= {"torch", "numpy", "tqdm"}
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                               text=True, env=clean, check=True).stdout.strip())
    link_into(site, dependency_closure(requirements))
    assert Path(sysconfig.get_paths()["purelib"]) != site
    run = subprocess.run([str(python), "-I", "-c", CHECK], capture_output=True, text=True,
                         env={**clean, "MINIT2I_CACHE": str(tmp_path / "cache")}, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stderr[-3000:]
