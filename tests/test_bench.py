"""The benchmark script keeps working (its figures are measured by hand, not asserted)."""
import json
import subprocess
import sys

from .conftest import REPO


def test_benchmark_runs_on_tiny_data(tiny_data, tmp_path):
    data_dir, summary = tiny_data
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_data_path.py"), "--data", str(data_dir),
         "--batch-size", "256", "--batches", "2", "--seed-batches", "1", "--train-batches", "1",
         "--seed-train-batches", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=1200)  # a hang guard, not a speed check
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| data path, samples/s" in done.stdout and "x |" in done.stdout
    figures = json.loads(out.read_text())
    for design in ("ours", "seed"):
        for key in ("load_seconds", "path_samples_per_s", "train_demo_samples_per_s",
                    "train_seed_samples_per_s", "load_peak_rss_gb"):
            assert figures[design][key] > 0, (design, key)
    assert figures["ours"]["score_rows"] == summary["n_test"]
