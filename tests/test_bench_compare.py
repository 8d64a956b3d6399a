"""bench/compare_commits.py's comparison: equal outcomes are equal, and one float's last bit
flipped anywhere it looks (a metric, the history, a weight, a test score) is a difference.
The run itself (two checkouts, tuner, prediction) is measured by hand: docs/refactoring.md."""
import importlib.util
import shutil
import struct

import torch

from .conftest import REPO

LINE = (" 20261206-021500,[command] python {where}/run_expid.py --config bench --expid E1,"
        "[exp_id] E1,[dataset_id] D,[fingerprint] 0123456789abcdef,[run] {run},[train] N.A.,"
        "[val] AUC: {auc} - logloss: 0.591234\n")
HISTORY = ("epoch,step,train_loss,val_AUC,val_logloss,lr,samples_per_s,elapsed_s\n"
           "1,8,{loss},0.51,0.6,0.003,{speed},1.5\n2,16,0.58,0.52,0.59,0.003,{speed},3.0\n")


def load_bench():
    spec = importlib.util.spec_from_file_location("compare_commits",
                                                  REPO / "bench" / "compare_commits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flip_last_bit(x: float) -> float:
    (bits,) = struct.unpack("<Q", struct.pack("<d", x))
    return struct.unpack("<d", struct.pack("<Q", bits ^ 1))[0]


def make_run(folder, auc="0.524163", loss=0.6123456789012345, weight_bits=0, score="0.12345678",
             run="20261206-021500-1-aaaaaa", speed=1000.0):
    """A side's run folder as the tuner and prediction leave it, for one expid E1."""
    (folder / "checkpoints" / "D").mkdir(parents=True)
    (folder / "submission" / "E1").mkdir(parents=True)
    (folder / "bench.csv").write_text(LINE.format(where=folder, run=run, auc=auc))
    (folder / "checkpoints" / "D" / "E1.history.csv").write_text(
        HISTORY.format(loss=repr(loss), speed=speed))
    weights = torch.linspace(-1, 1, 12, dtype=torch.float32).reshape(3, 4)
    weights.view(-1).view(torch.int32)[5] ^= weight_bits  # flips bits of one float32
    torch.save({"state_dict": {"w": weights, "b": torch.zeros(3)}, "run_id": run},
               folder / "checkpoints" / "D" / "E1.model")
    (folder / "submission" / "E1" / "prediction.csv").write_text(
        f"ID,Task2\n0,{score}\n1,0.87654321\n")
    return folder


def differing(bench, a, b):
    rows = bench.compare(bench.outcomes(a), bench.outcomes(b))
    return [field for field, _, _, equal in rows if not equal]


def test_same_is_bit_for_bit():
    bench = load_bench()
    x = 0.1 + 0.2
    assert bench.same(x, 0.30000000000000004) and bench.same(float("nan"), float("nan"))
    assert not bench.same(x, flip_last_bit(x))
    assert not bench.same(0.0, -0.0) and not bench.same(1, 1.0)
    assert bench.same((1, (2.5, None)), (1, (2.5, None)))
    assert not bench.same((1, (2.5, None)), (1, (flip_last_bit(2.5), None)))


def test_equal_runs_compare_equal_whatever_their_time_paths_and_speeds(tmp_path):
    bench = load_bench()
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", run="20261207-090000-2-bbbbbb", speed=2000.0)
    rows = bench.compare(bench.outcomes(a), bench.outcomes(b))
    assert {field for field, *_ in rows} == {
        "E1 dataset_id", "E1 fingerprint", "E1 val AUC", "E1 val logloss", "E1 history",
        "E1 epochs", "E1 weights sha256", "E1 test scores sha256"}
    assert bench.all_equal(rows) and all(equal for *_, equal in rows)
    assert "NO" not in bench.table(rows, "A", "B")


def test_one_flipped_bit_is_a_difference(tmp_path):
    bench = load_bench()
    a = make_run(tmp_path / "a")
    loss = flip_last_bit(0.6123456789012345)
    for name, change, field in (
            ("loss", dict(loss=loss), "E1 history"),
            ("weight", dict(weight_bits=1), "E1 weights sha256"),
            ("score", dict(score="0.12345679"), "E1 test scores sha256"),
            ("metric", dict(auc="0.524164"), "E1 val AUC")):
        b = make_run(tmp_path / name, **change)
        assert differing(bench, a, b) == [field], name
        rows = bench.compare(bench.outcomes(a), bench.outcomes(b))
        assert not bench.all_equal(rows)
        assert any(line.startswith(field) and line.rstrip().endswith("NO")
                   for line in bench.table(rows, "A", "B").splitlines())


def test_a_missing_run_or_score_file_is_a_difference_and_a_skipped_field_is_not(tmp_path):
    bench = load_bench()
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    shutil.rmtree(b / "submission")
    assert differing(bench, a, b) == ["E1 test scores sha256"]
    c = make_run(tmp_path / "c")
    (c / "bench.csv").write_text((c / "bench.csv").read_text().replace(
        "0123456789abcdef", "fedcba9876543210"))
    rows = bench.compare(bench.outcomes(a), bench.outcomes(c), not_compared=["E1 fingerprint"])
    assert bench.all_equal(rows)
    assert [equal for field, *_, equal in rows if field == "E1 fingerprint"] == [None]
