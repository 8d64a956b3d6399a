"""The model benchmark keeps working (its figures are measured by hand, not asserted)."""
import json
import subprocess
import sys

import pytest

from .conftest import REPO

# the benchmark script end to end on the tiny data (docs/testing.md)
pytestmark = pytest.mark.slow


def test_model_benchmark_runs_on_tiny_data(tiny_data, tmp_path):
    data_dir, _ = tiny_data
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_models.py"), "--data", str(data_dir),
         "--expids", "DIN_default_cpu", "QIN_cpu", "--batch-size", "256", "--steps", "2",
         "--rounds", "1", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "split attention vs concatenation, DIN_default_cpu:" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"DIN_default_cpu", "DIN_default_cpu [concat]", "QIN_cpu"}
    for label, figures in results.items():
        assert figures["train_samples_per_s"] > 0 and figures["score_samples_per_s"] > 0, label
        assert figures["parameters"] > 0, label
    assert results["QIN_cpu"]["model"] == "QIN"
