"""Ensembles you can audit: the manifest beside each submission zip, printed by prediction.py
and by `python -m src.submission ZIP`, through the real command lines on tiny data."""
import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO, run_cli, tune_cli, write_tuner_config

FAST = {"epochs": 1, "batch_size": 2048, "learning_rate": [1.e-2, 3.e-3]}


def check_zip(zip_path, *extra):
    return subprocess.run([sys.executable, "-m", "src.submission", str(zip_path), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def logged_aucs(stderr):
    """{expid or "ensemble": validation AUC} from prediction.py's log lines."""
    aucs = {m[0]: float(m[1]) for m in re.findall(r"member (\S+): validation AUC ([0-9.]+)",
                                                   stderr)}
    aucs["ensemble"] = float(re.search(r"ensemble of \d+: validation AUC ([0-9.]+)",
                                       stderr).group(1))
    return aucs


@pytest.mark.slow
def test_ensemble_and_single_zips_get_a_manifest_that_the_checker_prints(small_data, tmp_path):
    tuner_yaml = write_tuner_config(tmp_path, small_data, FAST, name="grid.yaml")
    assert tune_cli(tmp_path, tuner_yaml).returncode == 0
    config_dir = tuner_yaml.with_suffix("")
    done = run_cli("prediction.py", "--config", config_dir, "--expid", "best:2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (zip_path,) = (tmp_path / "submission").glob("ensemble2_*.zip")
    manifest_file = zip_path.with_name(zip_path.stem + ".manifest.json")
    manifest = json.loads(manifest_file.read_text())
    logged = logged_aucs(done.stderr)

    # the manifest: members with the AUCs the log reports, rule, test file and zip signatures
    members = {m["expid"]: m for m in manifest["members"]}
    assert set(members) == set(logged) - {"ensemble"} and len(members) == 2
    for expid, member in members.items():
        assert abs(member["valid_auc"] - logged[expid]) <= 1e-6
        # the result line's AUC was measured on the same validation rows by the same model
        assert abs(member["valid_auc"] - member["result_line_auc"]) <= 1e-4
        assert member["run"]
    assert abs(manifest["valid_auc"] - logged["ensemble"]) <= 1e-6
    assert manifest["average"] == "mean" and manifest["expid_args"] == ["best:2"]
    assert manifest["columns"] == ["Task2"] and manifest["zip"] == zip_path.name
    test_file = small_data / "MicroLens_1M_x1" / "test.parquet"
    data = test_file.read_bytes()
    assert manifest["test_file"]["size"] == len(data)
    assert manifest["test_file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["zip_sha256"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert not list((tmp_path / "submission").glob(".*"))  # no temporary file left

    # prediction.py says it on stdout: the ensemble's AUC and each member with its AUC
    assert f"ensemble of 2 (mean of the members' probabilities), validation AUC " \
           f"{manifest['valid_auc']:.6f}" in done.stdout
    for expid, member in members.items():
        assert re.search(rf"{expid}\s+{member['valid_auc']:.6f}", done.stdout)
    assert f"manifest: {manifest_file.relative_to(tmp_path)}" in done.stdout

    # the checker prints the manifest, then checks the zip against the manifest's test file
    checked = check_zip(zip_path)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "ensemble of 2" in checked.stdout and all(e in checked.stdout for e in members)
    assert "now: the same bytes as the test file the zip was written for" in checked.stdout
    assert checked.stdout.strip().splitlines()[-1].startswith("OK: ")

    # a single model's zip has one too
    best = max(members, key=lambda e: members[e]["result_line_auc"])
    single = run_cli("prediction.py", "--config", config_dir, "--expid", best, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    single_manifest = json.loads((tmp_path / "submission" / f"{best}.manifest.json").read_text())
    assert single_manifest["average"] == "single"
    assert [m["expid"] for m in single_manifest["members"]] == [best]
    assert single_manifest["valid_auc"] == members[best]["result_line_auc"]
    assert f"single model {best}, validation AUC" in single.stdout

    # a zip replaced after its manifest was written is told apart
    shutil.copy(tmp_path / "submission" / f"{best}.zip", zip_path)
    replaced = check_zip(zip_path)
    assert replaced.returncode == 0 and "is not the zip this manifest describes" in replaced.stdout

    # a zip without manifest: what its name tells, and the check as before
    manifest_file.unlink()
    bare = check_zip(zip_path, "--test", test_file)
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert "no manifest" in bare.stdout and "an ensemble of 2 experiments" in bare.stdout
    assert bare.stdout.strip().splitlines()[-1].startswith("OK: ")


def test_an_unreadable_manifest_is_one_line_naming_it(tmp_path):
    zip_path = tmp_path / "x.zip"
    zip_path.write_bytes(b"")
    (tmp_path / "x.manifest.json").write_text("{not json")
    done = check_zip(zip_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "x.manifest.json: not a readable manifest" in lines[0]
    assert "Fix:" in lines[0]
