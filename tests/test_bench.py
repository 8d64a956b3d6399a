"""The benchmark script keeps working (its figures are measured by hand, not asserted)."""
import importlib.util
import json
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_benchmark_runs_on_tiny_data(tiny_data, tmp_path):
    data_dir, summary = tiny_data
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_data_path.py"), "--data", str(data_dir),
         "--batch-size", "256", "--batches", "2", "--baseline-batches", "1", "--train-batches", "1",
         "--baseline-train-batches", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=1200)  # a hang guard, not a speed check
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| data path, samples/s" in done.stdout and "x |" in done.stdout
    figures = json.loads(out.read_text())
    for design in ("ours", "baseline"):
        for key in ("load_seconds", "path_samples_per_s", "train_demo_samples_per_s",
                    "train_baseline_samples_per_s", "load_peak_rss_gb"):
            assert figures[design][key] > 0, (design, key)
    assert figures["ours"]["score_rows"] == summary["n_test"]


# --- bench/task2_suite.py ------------------------------------------------------------------
def load_suite():
    spec = importlib.util.spec_from_file_location("task2_suite", REPO / "bench" / "task2_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs_of(world, tests):
    """Hand-made run rows of one world: {label: [one row per seed]}."""
    return {label: [{"config": world, "block": label, "expid": f"{label}_{seed}", "seed": seed,
                     "valid_auc": auc, "test_auc": auc, "parameters": 1}
                    for seed, auc in enumerate(aucs, 1)]
            for label, aucs in tests.items()}


def test_suite_tables_gap_closed_and_the_losing_rule():
    suite = load_suite()
    base = suite.BASELINE
    # world A: baseline DIN 0.80 / 0.82 (mean 0.81, spread 0.02), best 0.90.
    #   X far above; Y 0.015 below with spread 0.01 and Z 0.014 below with spread 0.032: both
    #   within the larger spread, so neither loses; W 0.03 below: loses.
    # world B: baseline DIN 0.85 / 0.85 (spread 0), best 0.95. X 0.01 below: loses; Z 0.005
    #   below with its own spread 0.01: within the larger spread, does not lose.
    a = suite.world_table("A", runs_of("A", {
        base: [0.80, 0.82], "X": [0.89, 0.89], "Y": [0.79, 0.80], "Z": [0.78, 0.812],
        "W": [0.775, 0.785]}), {"valid": 0.90, "test": 0.90})
    b = suite.world_table("B", runs_of("B", {
        base: [0.85, 0.85], "X": [0.84, 0.84], "Y": [0.90, 0.90], "Z": [0.84, 0.85],
        "W": [0.89, 0.89]}), {"valid": 0.95, "test": 0.95})
    row = {world: {r["block"]: r for r in table} for world, table in (("A", a), ("B", b))}
    assert row["A"]["X"]["gap_closed_test"] == pytest.approx((0.89 - 0.81) / (0.90 - 0.81))
    assert row["B"]["Y"]["gap_closed_test"] == pytest.approx(0.5)
    assert row["B"]["Z"]["gap_closed_test"] == pytest.approx(-0.05)
    assert row["A"][base]["gap_closed_test"] == pytest.approx(0)
    assert [r["block"] for r in a] == ["X", base, "Z", "Y", "W"]  # rank by mean test AUC
    assert [r["rank"] for r in a] == [1, 2, 3, 4, 5]
    assert {w: sorted(b for b, r in rows.items() if r["loses"]) for w, rows in row.items()} \
        == {"A": ["W"], "B": ["X"]}

    summary = {e["block"]: e for e in suite.summarise_worlds({"A": a, "B": b})}
    assert summary["X"]["lost"] == ["B"] and summary["W"]["lost"] == ["A"]
    assert summary["Y"]["mean_rank"] == 2.5  # 4th in A, 1st in B
    assert summary["Y"]["mean_gap"] == pytest.approx(((0.795 - 0.81) / 0.09 + 0.5) / 2)
    # X has the best mean gap but loses in B; W loses in A: Y is the choice
    assert max(summary.values(), key=lambda e: e["mean_gap"])["block"] == "X"
    assert suite.recommend(list(summary.values()), ["A", "B"])["block"] == "Y"
    # a candidate missing from a world does not qualify; nothing qualifying: None
    assert suite.recommend([dict(summary["Y"], worlds=["A"])], ["A", "B"]) is None
    # equal to 0.1 point of gap: the better mean rank wins
    tied = [{"block": "P", "worlds": ["A"], "lost": [], "mean_gap": 0.3004, "mean_rank": 2.0},
            {"block": "Q", "worlds": ["A"], "lost": [], "mean_gap": 0.3001, "mean_rank": 1.5}]
    assert suite.recommend(tied, ["A"])["block"] == "Q"


def test_suite_skips_blocks_it_cannot_run_yet():
    suite = load_suite()
    blocks = {"DIN_default_cpu": {"model": "DIN"}, "QIN_cpu": {"model": "QIN"}}
    why = suite.unavailable(["baseline_DIN", "QIN", "TargetDCN", "DIN_regularized_sid"], blocks,
                            {"DIN"}, {"task2_sid": "not there"})
    assert set(why) == {"QIN", "TargetDCN", "DIN_regularized_sid"}
    assert "QIN" in why["QIN"] and "TargetDCN_cpu" in why["TargetDCN"]


@pytest.mark.slow
def test_suite_runs_end_to_end_on_tiny_data(tiny_data, tmp_path):
    """Two worlds (one from the shared tiny data, one generated), two cheap blocks, one
    seed, a few steps: the doc's tables hold the right rows; a rerun trains nothing and keeps
    one appendix."""
    data_dir, _ = tiny_data
    work, doc = tmp_path / "work", tmp_path / "doc.md"
    (work / "data").mkdir(parents=True)
    (work / "data" / "cosine").symlink_to(data_dir)  # its summary matches: kept, not generated
    args = ["--work", work, "--scale", "tiny", "--worlds", "cosine", "recency", "--blocks",
            "baseline_DIN", "CosineInterest", "--seeds", "1", "--epochs", "1", "--max-steps", "2",
            "--eval-steps", "2", "--slots", "2", "--doc", doc]
    done = subprocess.run([sys.executable, str(REPO / "bench" / "task2_suite.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=900)  # a hang guard
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cosine: data in" in done.stdout and "recency: generating" in done.stdout
    assert done.stdout.count(" ok\n") == 4  # one line per run as it ends
    text = doc.read_text()
    for world in ("cosine", "recency"):
        section = text.split(f"### World `{world}`")[1].split("###")[0].split("## Summary")[0]
        rows = [line.split(" | ")[1] for line in section.splitlines() if line.startswith("| ")
                and not line.startswith("| rank")]
        assert sorted(rows) == ["CosineInterest", "baseline_DIN", "ensemble"], section
        assert "best achievable AUC" in section and "history-blind oracle" in section
    summary = text.split("## Summary over the worlds")[1].split("## The recommendation")[0]
    assert sorted(line.split(" | ")[0][2:] for line in summary.splitlines()
                  if line.startswith("| ") and not line.startswith("| candidate")) \
        == ["CosineInterest", "baseline_DIN", "ensemble"]
    assert "Rule: Recommended:" in text
    assert "**Recommended:" in text or "**No recommendation" in text
    assert len(list((work / "scores" / "recency").glob("*.npz"))) == 2
    appendix = (REPO / "docs" / "task2_single_world.md").read_text()
    assert text.count("## Appendix: the single-world comparison") == 1 and text.endswith(appendix)

    again = subprocess.run([sys.executable, str(REPO / "bench" / "task2_suite.py"),
                            *map(str, args)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert " ok\n" not in again.stdout and again.stdout.count("with results already") == 4
    rerun = doc.read_text()
    assert rerun.count("## Appendix: the single-world comparison") == 1
    assert rerun.split("## Runs")[0] == text.split("## Runs")[0]
