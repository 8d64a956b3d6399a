"""The split between model and trainer: what a model is (no loop, torch's compile), what the
Trainer is handed (one RunContext) and shows its callbacks, resuming from its training state,
and the layering (the tuner reads checkpoints without importing any model)."""
import ast
import subprocess
import sys

import pytest
import torch
from fuxictr.pytorch.torch_utils import seed_everything
from torch import nn

from src.data.features import build_feature_map
from src.errors import UserError
from src.experiment import build_model, load_params, make_loaders
from src.options import NO_DEFAULT, OPTIONS
from src.training.checkpoints import read_checkpoint
from src.training.options import RunContext, TrainingOptions
from src.training.trainer import RunStopped, Trainer
from src.tuning.tuner import expand_grid

from .conftest import REPO, write_tuner_config

EVAL_STEPS = 5


@pytest.fixture(scope="module")
def params(small_data, tmp_path_factory):
    """A one-point grid on the small data: 16 batches an epoch, 2 epochs, 6 evaluations."""
    folder = tmp_path_factory.mktemp("trainer")
    tuner = write_tuner_config(folder, small_data, {
        "batch_size": 256, "epochs": 2, "eval_steps": EVAL_STEPS, "early_stop_patience": 100,
        "learning_rate": 3.e-3, "model_root": str(folder / "checkpoints")})
    config_dir, expids = expand_grid(tuner)
    return load_params(config_dir, expids[0])


def fitted(params, run, resume=None):
    """(trainer, model) after fit from the seed of params, as a run starts (seed, model,
    loaders); the loop consumes the generators from there, so equal seeds give equal runs."""
    seed_everything(params["seed"])
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    trainer = Trainer(model, TrainingOptions.from_params(params), run)
    train_gen, valid_gen = make_loaders(feature_map, params, "train", model)
    trainer.fit(train_gen, valid_gen, resume=resume)
    return trainer, model


def test_a_model_has_torchs_compile_and_no_training_loop(params):
    model = build_model(params)
    # compile(optimizer, loss, lr) shadowed nn.Module.compile; configure(loss) replaces it
    assert type(model).compile is nn.Module.compile
    assert not hasattr(model, "optimizer")
    model.configure("binary_crossentropy")
    # FuxiCTR's loop, inherited from BaseModel, would train without our checkpoints
    for method in ("fit", "train_step", "evaluate", "predict", "load_weights"):
        with pytest.raises(TypeError, match="src.training"):
            getattr(model, method)(None)


def test_callbacks_see_every_evaluation_through_the_trainer(params, tmp_path):
    seen = []

    def watch(trainer, val_logs):
        # the checkpoint and the training state of this evaluation are on disk already
        state = read_checkpoint(trainer.run.state_path, what="training state")
        best = read_checkpoint(trainer.run.checkpoint)
        # the hash a reporter hands on is that of the checkpoint on disk
        assert trainer.weights_sha256 == best["weights_sha256"]
        seen.append((trainer.evaluation_number, trainer.total_steps, state["total_steps"],
                     trainer.checkpoint_is_current, trainer.run.run_id, val_logs["AUC"]))

    run = RunContext(str(tmp_path / "x.model"), str(tmp_path / "x.state"),
                     run_info={"fingerprint": "f1", "run_id": "run-1"}, callbacks=[watch])
    fitted(params, run)
    assert [s[:3] for s in seen] == [(n, n * EVAL_STEPS, n * EVAL_STEPS) for n in range(1, 7)]
    assert {s[4] for s in seen} == {"run-1"}
    # the checkpoint is current exactly at the evaluations that improved the best AUC
    best = -1.0
    for *_, current, _, auc in seen:
        assert current == (auc > best + 1e-6)
        best = max(best, auc)
    saved = read_checkpoint(run.checkpoint)
    assert (saved["run_id"], saved["fingerprint"]) == ("run-1", "f1")
    assert saved["config"]["model_id"] == params["model_id"]


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_state_to_the_same_weights(params, tmp_path):
    """A run stopped between evaluations, resumed from its training state, ends with the
    weights of the run never stopped: bit for bit (the final state holds the last step's)."""
    whole = RunContext(str(tmp_path / "whole.model"), str(tmp_path / "whole.state"))
    fitted(params, whole)
    steps = []

    def stop_at_step_13():  # evaluations at steps 5 and 10: the state of step 10 is kept
        steps.append(1)
        return "asked to stop" if len(steps) == 13 else None

    stopped = RunContext(str(tmp_path / "part.model"), str(tmp_path / "part.state"),
                         run_info={"run_id": "run-2"}, should_stop=stop_at_step_13)
    with pytest.raises(RunStopped, match=f"asked to stop; .* kept in {stopped.state_path}"):
        fitted(params, stopped)
    state = read_checkpoint(stopped.state_path, what="training state")
    assert (state["total_steps"], state["finished"]) == (2 * EVAL_STEPS, False)
    # as a new process does: reseed, rebuild; the state's generators take over from there
    resumed = RunContext(stopped.checkpoint, stopped.state_path, run_info={"run_id": "run-2"})
    fitted(params, resumed, resume=state)
    ours = read_checkpoint(resumed.state_path, what="training state")
    theirs = read_checkpoint(whole.state_path, what="training state")
    assert ours["finished"] and ours["total_steps"] == theirs["total_steps"] == 32
    for name, weights in theirs["model"].items():
        assert torch.equal(ours["model"][name], weights), name


def test_the_tuner_reads_checkpoints_without_importing_a_model(tmp_path):
    script = f"""
import sys
from src.params import RunPaths
from src.training.checkpoints import atomic_save
from src.tuning.tuner import checkpoint_problem
paths = RunPaths({{"model_id": "x", "dataset_id": "d", "model_root": {str(tmp_path)!r}}})
atomic_save({{"state_dict": {{}}, "run_id": "r1"}}, paths.checkpoint)
assert checkpoint_problem(paths, {{"run": "r1"}}) is None
assert "run r1, not by" in checkpoint_problem(paths, {{"run": "r2"}})
from src.runs.files import finished_run
assert finished_run(paths, {str(tmp_path)!r}, "another fingerprint") is None
print(sorted(m for m in sys.modules if m.startswith(("src.models.", "fuxictr.pytorch"))))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def imported_modules(path):
    """The src modules a file imports, as dotted names relative to src."""
    tree = ast.parse(path.read_text())
    package = path.parent.relative_to(REPO / "src").parts
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            names.add(".".join(base + tuple(filter(None, [node.module]))))
    return names


def test_the_layers_model_training_experiment():
    """Models never import the trainer; the trainer imports no model (it trains any module
    with the model interface) and nothing of the layers above it."""
    for path in (REPO / "src" / "models").glob("*.py"):
        assert not any(m.startswith("training") for m in imported_modules(path)), path
    for path in (REPO / "src" / "training").glob("*.py"):
        above = {m for m in imported_modules(path)
                 if m.split(".")[0] in ("experiment", "tuning", "report", "models")}
        assert not above, (path, above)


def test_the_trainers_defaults_are_the_declared_options():
    """TrainingOptions fills what a params dict lacks with the defaults src/options.py
    declares (and fills into every run's params): both say the same."""
    declared = {o.name: o.default for o in OPTIONS}
    fields = TrainingOptions.__dataclass_fields__
    shared = [name for name in fields if name in declared and declared[name] != NO_DEFAULT]
    assert len(shared) >= 15
    for name in shared:
        assert getattr(TrainingOptions(), name) == declared[name], name


def test_a_refused_optimizer_or_schedule_names_the_key(params):
    model = build_model(params)
    with pytest.raises(UserError, match="optimizer='Nosuch' is not an optimizer"):
        Trainer(model, TrainingOptions.from_params(dict(params, optimizer="Nosuch")))
    with pytest.raises(UserError, match="lr_scheduler='step': use plateau, cosine or none"):
        Trainer(model, TrainingOptions.from_params(dict(params, lr_scheduler="step")))
