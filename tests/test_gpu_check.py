"""benchmarks/gpu_check.py: the one command a lent GPU runs; here, tiny, on the CPU."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402  (benchmarks/ is a folder of scripts)

from minit2i import budget  # noqa: E402


def test_gpu_check_runs_and_says_when_it_is_not_a_gpu_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    record = gpu_check.main(["--preset", "smoke", "--steps", "1", "--search-images", "2",
                             "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    assert record["gpu"] is False and record["note"].startswith("not a GPU run")
    assert record["amp_dtype"] == "float32" and record["skipped"] == []
    assert set(record["recipes"]) == {"shapes_gan", "vqvae", "vqgan", "clip", "dalle",
                                      "shapes_vit", "search", "sampling"}
    for r in record["recipes"].values():
        assert r["s_per_step"] > 0 and r["counted_tflop_per_step"] > 0 and r["kind"] in budget.KINDS
    assert set(record["chapters"]) == {str(c) for c in budget.CHAPTERS}
    assert all(c["minutes_here"] > 0 for c in record["chapters"].values())
