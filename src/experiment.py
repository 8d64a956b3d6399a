"""One experiment, read top to bottom: config -> seed -> logger -> data -> model -> fit ->
evaluate -> result line; and scoring the test set with a trained experiment.

Both run_expid.py and prediction.py are thin wrappers around `train` and `predict_test`.
"""
import logging
from pathlib import Path

from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import load_config, print_to_json

from .dataloader import TEST_ID, MMCTRDataLoader
from .din import DIN
from .errors import ConfigError
from .features import build_feature_map
from .results import append_result, best_result

logger = logging.getLogger(__name__)

MODELS = {"DIN": DIN}
TASK_COLUMNS = {1: "Task1", 2: "Task2"}


def load_params(config_dir, expid, gpu=-1):
    """Base + expid block of model_config.yaml, merged with its dataset block; gpu set."""
    if not Path(config_dir).is_dir():
        hint = (f" (run_param_tuner.py writes {str(config_dir)[:-5]}/ from {config_dir})"
                if str(config_dir).endswith(".yaml") else "")
        raise ConfigError(f"--config {config_dir}: not a folder holding model_config.yaml and "
                          f"dataset_config.yaml{hint}")
    try:
        params = load_config(str(config_dir), expid)
    except AssertionError as err:
        raise ConfigError(f"--expid {expid}: not found in {config_dir}/model_config.yaml "
                          f"({err})") from None
    except RuntimeError as err:
        raise ConfigError(f"--config {config_dir}: {err}") from None
    if params.get("model") not in MODELS:
        raise ConfigError(f"model={params.get('model')!r} in expid {expid}: known models are "
                          f"{', '.join(MODELS)}")
    params["gpu"] = gpu
    return params


def build_model(params, feature_map=None):
    feature_map = feature_map or build_feature_map(params)
    model = MODELS[params["model"]](feature_map, **params)
    model.config = dict(params)
    return model


def make_loaders(feature_map, params, stage):
    """FuxiCTR's RankDataLoader with our loader: (train, valid) for "train", test for "test"."""
    return RankDataLoader(feature_map, stage=stage, data_loader=MMCTRDataLoader,
                          **params).make_iterator()


def validate_inputs(params, splits):
    """Check data files against the config before any work (see src/validation.py)."""
    from .validation import validate_dataset
    return validate_dataset(params, splits=splits)


def log_file(params):
    """Where a run's log goes: next to its checkpoint, as in FuxiCTR."""
    return Path(params["model_root"]) / params["dataset_id"] / f"{params['model_id']}.log"


def train(params, config_dir, argv=None):
    """Train the experiment of params (from load_params), evaluate on valid, append the
    result line for config_dir; return the validation metrics."""
    expid = params["model_id"]
    logger.info("Params: %s", print_to_json(params))
    validate_inputs(params, splits=("train", "valid"))
    seed_everything(seed=params["seed"])
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    model.count_parameters()
    train_gen, valid_gen = make_loaders(feature_map, params, "train")
    model.fit(train_gen, validation_data=valid_gen, **params)
    logger.info("****** Validation evaluation ******")
    valid_result = model.evaluate(valid_gen)
    path = append_result(config_dir, expid, params["dataset_id"], valid_result, argv)
    logger.info("Result appended to %s", path)
    return valid_result


def resolve_expid(config_dir, expid):
    """`best` means the recorded experiment of config_dir with the highest validation AUC."""
    if expid != "best":
        return expid, None
    record = best_result(config_dir)
    logger.info("Best experiment of %s: %s (validation AUC %.6f)", config_dir,
                record["exp_id"], record["val"]["AUC"])
    return record["exp_id"], record["val"]["AUC"]


def predict_test(config_dir, expid, gpu=-1, tasks=(2,), out_dir="submission"):
    """Score the test split in file order and write out_dir/<expid>.zip; return its facts."""
    from .submission import check_submission, write_submission
    expid, best_auc = resolve_expid(config_dir, expid)
    params = load_params(config_dir, expid, gpu)
    validate_inputs(params, splits=("test",))
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    model.load_weights(model.checkpoint)
    test_gen = make_loaders(feature_map, params, "test")
    scores = model.predict(test_gen)
    ids = test_gen.tensors[TEST_ID].numpy()
    columns = {TASK_COLUMNS[task]: scores for task in sorted(set(tasks))}
    zip_path = write_submission(ids, columns, out_dir, expid)
    verdict = check_submission(zip_path, params["test_data"])
    logger.info(verdict)
    return {"expid": expid, "zip": zip_path, "verdict": verdict, "valid_auc": best_auc,
            "rows": len(ids)}
