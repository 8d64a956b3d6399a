"""One experiment, read top to bottom: config -> seed -> logger -> data -> model -> fit ->
evaluate -> result line; and scoring the test set with a trained experiment.

Both run_expid.py and prediction.py are thin wrappers around `train` and `predict_test`.
"""
import logging

import pyarrow.parquet as pq
import torch

from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import print_to_json

from .data.features import build_feature_map
from .data.loader import TEST_ID, MMCTRDataLoader
from .errors import SubmissionError
from .models import model_class
from .params import load_params, log_file, require_config_dir  # noqa: F401 (re-exported)
from .tuning.results import append_result, best_result

logger = logging.getLogger(__name__)

TASK_COLUMNS = {1: "Task1", 2: "Task2"}


def build_model(params, feature_map=None, item_table=None):
    """The model of params; item_table shares an already loaded ItemTable (else item_info
    is read)."""
    feature_map = feature_map or build_feature_map(params)
    model = model_class(params["model"])(feature_map, item_table=item_table, **params)
    model.config = dict(params)
    return model


def split_device(params, model, stage):
    """Where the split's arrays live: on the model's GPU when they fit in half its free
    memory (a batch is then a slice and a gather on the GPU), else on the CPU.
    The config key split_on_device (default True) turns this off."""
    if model is None or model.device.type != "cuda" or not params.get("split_on_device", True):
        return torch.device("cpu")
    paths = [params["train_data"], params["valid_data"]] if stage == "train" \
        else [params["test_data"]]
    # per row: max_len int32 history ids plus about 8 int64 scalar columns
    row_bytes = 4 * int(params.get("max_len", 64)) + 8 * 8
    needed = sum(pq.ParquetFile(p).metadata.num_rows for p in paths if p) * row_bytes
    free, _ = torch.cuda.mem_get_info(model.device)
    if needed < free / 2:
        return model.device
    logger.info("Splits need %.1f GB, more than half the free GPU memory: kept on the CPU",
                needed / 1e9)
    return torch.device("cpu")


def make_loaders(feature_map, params, stage, model=None):
    """FuxiCTR's RankDataLoader with our loader: (train, valid) for "train", test for "test".
    With a model on a GPU, the splits go to that GPU when they fit (split_device)."""
    return RankDataLoader(feature_map, stage=stage, data_loader=MMCTRDataLoader,
                          device=split_device(params, model, stage), **params).make_iterator()


def validate_inputs(params, splits):
    """Check data files against the config before any work (see src/validation.py)."""
    from .data.checks import validate_dataset
    return validate_dataset(params, splits=splits)


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
    train_gen, valid_gen = make_loaders(feature_map, params, "train", model)
    model.fit(train_gen, validation_data=valid_gen, **params)
    logger.info("****** Validation evaluation ******")
    valid_result = model.evaluate(valid_gen)
    path = append_result(config_dir, expid, params["dataset_id"], valid_result, argv)
    logger.info("Result appended to %s", path)
    return valid_result


def resolve_expid(config_dir, expid):
    """`best` means the recorded experiment of config_dir with the highest validation AUC."""
    require_config_dir(config_dir)
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
    test_gen = make_loaders(feature_map, params, "test", model)
    scores = model.predict(test_gen)
    ids = test_gen.tensors[TEST_ID].cpu().numpy()
    columns = {TASK_COLUMNS[task]: scores for task in sorted(set(tasks))}
    zip_path = write_submission(ids, columns, out_dir, expid)
    try:
        verdict = check_submission(zip_path, params["test_data"])
    except SubmissionError:
        zip_path.unlink()  # never leave a zip that would be rejected or scored 0
        raise
    logger.info(verdict)
    return {"expid": expid, "zip": zip_path, "verdict": verdict, "valid_auc": best_auc,
            "rows": len(ids)}
