"""Every option a run accepts, declared once: its block, default, check and a one-line doc.

Blocks: `training` (read by every model: FuxiCTR's BaseModel keys and this toolkit's own
options), `bookkeeping` (where files go, how much is printed), `dataset` (the dataset block)
and `model` (a model's constructor arguments). Which model takes which argument, and its
default, is read from the constructor signatures (src/models.model_arguments); the check and
doc of each argument name are declared here in MODEL_ARGUMENTS, and a test keeps both in step.
Nothing here imports torch: docs/config_reference.md is generated from this table
(python -m src.tuning.reference), and the checks before any run read it (src/tuning/values.py).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


# --- checks: each returns why a value is unusable, or None; .rule describes it --------------
def _rule(text):
    def attach(check):
        check.rule = text
        return check
    return attach


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _string_number_hint(value):
    """YAML reads 1e-3 (no dot) as a string: say so when a string looks like a number."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return ""
        return (f" (YAML reads {value} without a dot as a string; write {number!r} or "
                f"{value.replace('e', '.e', 1) if 'e' in value and '.' not in value else number})")
    return ""


@_rule("number > 0")
def positive_number(value: Any) -> str | None:
    if not _number(value) or value <= 0:
        return "must be a number > 0" + _string_number_hint(value)


@_rule("number >= 0")
def non_negative_number(value: Any) -> str | None:
    if not _number(value) or value < 0:
        return "must be a number >= 0" + _string_number_hint(value)


@_rule("int >= 1")
def positive_int(value: Any) -> str | None:
    if not _int(value) or value < 1:
        return "must be a whole number >= 1" + _string_number_hint(value)


@_rule("int >= 0")
def non_negative_int(value: Any) -> str | None:
    if not _int(value) or value < 0:
        return "must be a whole number >= 0" + _string_number_hint(value)


@_rule("int")
def whole_number(value: Any) -> str | None:
    if not _int(value):
        return "must be a whole number"


@_rule("null or int >= 1")
def optional_positive_int(value: Any) -> str | None:
    return None if value is None else positive_int(value)


@_rule("number in [0, 1)")
def probability(value: Any) -> str | None:
    if not _number(value) or not 0 <= value < 1:
        return "must be a number in [0, 1)" + _string_number_hint(value)


@_rule("number in (0, 1]")
def factor(value: Any) -> str | None:
    if not _number(value) or not 0 < value <= 1:
        return "must be a number in (0, 1]" + _string_number_hint(value)


@_rule("true or false")
def boolean(value: Any) -> str | None:
    if not isinstance(value, bool):
        return "must be True or False"


@_rule("list of int >= 1")
def units(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(_int(v) and v >= 1 for v in value):
        return "must be a list of whole numbers >= 1, e.g. [512, 256]"


@_rule("string")
def text(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"


@_rule("null or string")
def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


@_rule("null or list of strings")
def optional_names(value: Any) -> str | None:
    if value is not None and (not isinstance(value, list)
                              or not all(isinstance(v, str) for v in value)):
        return "must be null or a list of names"


@_rule("any")
def anything(value: Any) -> str | None:
    return None


# FuxiCTR's get_activation names (case-insensitive) and torch.nn classes it falls back to
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "prelu", "dice", "leakyrelu", "gelu",
               "silu", "elu", "selu", "identity", "linear")


@_rule("activation name (FuxiCTR's get_activation, any case) or a list of them")
def activation(value: Any) -> str | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not all(v is None or (isinstance(v, str) and v.lower() in ACTIVATIONS) for v in values):
        return f"must be one of {', '.join(ACTIVATIONS)} (or a list of them)"


@_rule("number >= 0 (a float) or 'l1(w)' / 'l2(w)'")
def regularizer(value: Any) -> str | None:
    """FuxiCTR reads a float as an L2 weight and strings like 'l2(1.e-6)'; an int other than 0
    it silently ignores, so that is refused here."""
    if isinstance(value, str) and re.fullmatch(r"l[12]\(\s*[0-9.eE+-]+\s*\)", value.strip()):
        return None
    if value is None or value == 0 or (isinstance(value, float) and value >= 0):
        return None
    if _int(value):
        return f"must be a float: FuxiCTR ignores the integer {value}; write {float(value)!r}"
    return "must be a number >= 0 or 'l2(w)'" + _string_number_hint(value)


@_rule("list of feature entries")
def feature_cols(value: Any) -> str | None:
    """The entries themselves are checked against the data (src/data/checks.py) and their
    own embedding_regularizer by src/tuning/values.py."""
    if not isinstance(value, list) or not all(isinstance(col, dict) for col in value):
        return "must be a list of feature entries ({name: ..., type: ..., ...})"


def one_of(choices: Sequence[Any], case_insensitive: bool = False) -> Callable[[Any], str | None]:
    def check(value):
        names = [c.lower() for c in choices] if case_insensitive else choices
        probe = value.lower() if case_insensitive and isinstance(value, str) else value
        if probe not in names:
            return f"must be one of {', '.join(map(str, choices))}"
    check.rule = "one of " + ", ".join(map(str, choices))
    return check


OPTIMIZERS = ("adam", "Adam", "AdamW", "SGD", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam",
              "Adadelta", "ASGD")
LOSSES = ("binary_crossentropy", "binary_cross_entropy", "bce")
# what fuxictr.metrics.evaluate_metrics computes (anything else raises mid-run, after an epoch);
# the group metrics average over group_id (user_id)
METRICS = ("AUC", "logloss", "binary_crossentropy", "gAUC", "avgAUC", "MRR")
LR_SCHEDULES = ("plateau", "cosine", "none")
TASKS = ("binary_classification",)


@_rule("non-empty list from " + ", ".join(METRICS))
def metrics(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(m not in METRICS for m in value):
        return f"must be a list of metrics from {', '.join(METRICS)}"


@_rule("a metric name, or {metric: weight}, from " + ", ".join(METRICS))
def monitor(value: Any) -> str | None:
    names = list(value) if isinstance(value, dict) else [value]
    wrong = [n for n in names if n not in METRICS]
    if not names or wrong:
        close = [m for m in METRICS if str(wrong[0]).lower() == m.lower()] if wrong else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"names no metric the evaluation computes{hint}: use one of "
                f"{', '.join(METRICS)} or a {{metric: weight}} mapping of them")


# --- the table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    name: str
    block: str              # training, bookkeeping, dataset or model
    default: Any
    check: Callable[[Any], str | None]
    doc: str
    filled: bool = False    # this toolkit's option: set to its default in every run's params
    bookkeeping: bool = False  # says where files go or what is printed: not in a fingerprint


NO_DEFAULT = "(required)"
_T, _B, _D = "training", "bookkeeping", "dataset"
OPTIONS = [Option(*fields) for fields in (
    ("model", _T, NO_DEFAULT, text, "the model class in src/models (e.g. DIN)"),
    ("dataset_id", _T, NO_DEFAULT, text, "the dataset block of dataset_config.yaml to train on"),
    ("task", _T, "binary_classification", one_of(TASKS), "FuxiCTR's task (click or not)"),
    ("loss", _T, "binary_crossentropy", one_of(LOSSES), "training loss"),
    ("metrics", _T, ["AUC", "logloss"], metrics, "metrics computed at each evaluation"),
    ("monitor", _T, "AUC", monitor, "metric that picks the best checkpoint and early stops"),
    ("monitor_mode", _T, "max", one_of(("max", "min")), "whether a larger monitor is better"),
    ("optimizer", _T, "adam", one_of(OPTIMIZERS), "a torch.optim class ('adam' = Adam)"),
    ("learning_rate", _T, 1.e-3, positive_number, "initial learning rate"),
    ("embedding_regularizer", _T, None, regularizer, "L2 weight on the embedding tables"),
    ("net_regularizer", _T, None, regularizer, "L2 weight on the dense layers' weights"),
    ("batch_size", _T, NO_DEFAULT, positive_int, "training and evaluation batch size"),
    ("epochs", _T, NO_DEFAULT, positive_int, "most epochs to train"),
    ("shuffle", _T, True, boolean, "shuffle the training rows each epoch"),
    ("seed", _T, NO_DEFAULT, whole_number, "random seed of the run"),
    ("early_stop_patience", _T, 2, positive_int,
     "evaluations without improvement before training stops"),
    ("save_best_only", _T, True, boolean, "keep only the best checkpoint (FuxiCTR's key)"),
    ("eval_steps", _T, None, optional_positive_int, "evaluate every N steps (null: each epoch)"),
    ("accumulation_steps", _T, 1, positive_int, "batches whose gradients add up to one step"),
    ("reduce_lr_on_plateau", _T, True, boolean, "FuxiCTR's key, ignored: lr_scheduler decides"),
    ("debug_mode", _T, False, boolean, "FuxiCTR's key, kept for its configs"),
    ("group_id", _T, None, optional_text, "column the group metrics (gAUC, MRR) group by"),
    ("use_features", _T, None, optional_names, "train on these features only (null: all)"),
    ("feature_specs", _T, None, anything, "FuxiCTR's per-feature overrides of the feature map"),
    ("feature_config", _T, None, anything, "FuxiCTR's key, kept for its configs"),
    ("amp_bf16", _T, False, boolean, "bfloat16 autocast for forward passes (GPU)", True),
    ("torch_compile", _T, False, boolean, "compile the dense blocks", True),
    ("max_steps", _T, None, optional_positive_int, "stop after this many training steps", True),
    ("split_on_device", _T, True, boolean,
     "on a GPU, keep the split arrays on the GPU when they fit", True),
    ("deterministic", _T, False, boolean,
     "identical results for identical runs (deterministic algorithms, one CPU thread)", True),
    ("lr_scheduler", _T, "plateau", one_of(LR_SCHEDULES),
     "plateau: multiply by lr_decay_factor on a plateau; cosine: warm-up then cosine decay",
     True),
    ("lr_decay_factor", _T, 0.1, factor, "the plateau schedule's factor", True),
    ("lr_patience", _T, 1, positive_int,
     "evaluations without improvement before the plateau decay", True),
    ("warmup_steps", _T, 0, non_negative_int, "linear warm-up steps (cosine)", True),
    ("min_lr", _T, 1.e-6, non_negative_number, "floor of every schedule", True),
    ("weight_decay", _T, 0, non_negative_number,
     "the optimizer's weight decay (decoupled for AdamW)", True),
    ("tensorboard", _B, False, boolean,
     "also write the evaluation history as TensorBoard scalars", True, True),
    ("gpu", _B, -1, whole_number, "GPU index, -1 for the CPU (set by --gpu)", False, True),
    ("verbose", _B, 1, non_negative_int, "how much is logged", False, True),
    ("num_workers", _B, 3, non_negative_int, "FuxiCTR's data loader workers", False, True),
    ("model_root", _B, "./checkpoints/", text, "folder of logs and checkpoints", False, True),
    ("model_id", _B, None, optional_text, "the expid (set by the loader)", False, True),
    ("pickle_feature_encoder", _B, True, boolean, "FuxiCTR's key, kept for its configs",
     False, True),
    ("threads", _B, None, optional_positive_int, "CPU threads for torch (or --threads)",
     False, True),
    ("data_root", _D, NO_DEFAULT, text, "folder of the dataset", False, True),
    ("data_format", _D, "parquet", one_of(("parquet",)), "format of the data files"),
    ("train_data", _D, NO_DEFAULT, text, "training split (parquet)"),
    ("valid_data", _D, NO_DEFAULT, text, "validation split (parquet)"),
    ("test_data", _D, NO_DEFAULT, text, "test split (parquet)"),
    ("item_info", _D, NO_DEFAULT, text, "item table: one row per item, row 0 padding"),
    ("rebuild_dataset", _D, False, boolean, "FuxiCTR's key; the data is read as it is"),
    ("feature_cols", _D, NO_DEFAULT, feature_cols, "the features (docs/task2_features.md)"),
    ("label_col", _D, NO_DEFAULT, anything, "the label column: {name: label, dtype: float}"),
)]
BY_NAME = {option.name: option for option in OPTIONS}

# Each model constructor argument's check and doc; its default is the constructor's.
MODEL_ARGUMENTS = {
    "embedding_dim": (positive_int, "width of each categorical feature's embedding"),
    "max_len": (positive_int, "history items kept (the last max_len of item_seq)"),
    "dnn_hidden_units": (units, "widths of the output MLP"),
    "dnn_activations": (activation, "activation of the output MLP"),
    "head_hidden_units": (units, "widths of the MLP on top of the cross network"),
    "net_dropout": (probability, "dropout of the output layers"),
    "batch_norm": (boolean, "batch normalisation in the output layers"),
    "attention_hidden_units": (units, "widths of the DIN attention MLP"),
    "attention_hidden_activations": (activation, "activation of the DIN attention MLP"),
    "attention_output_activation": (activation, "activation of the attention score (null: none)"),
    "attention_dropout": (probability, "dropout of the target attention"),
    "attention_dim": (optional_positive_int, "width of the attention (null: the item vector's)"),
    "attention_heads": (positive_int, "heads of the target attention"),
    "din_use_softmax": (boolean, "softmax over the DIN attention scores"),
    "split_attention": (boolean, "attention computed once per distinct item, not per position"),
    "cross_attention_layers": (positive_int, "cross-attention blocks over the history"),
    "cross_attention_heads": (positive_int, "heads of each cross-attention block"),
    "cross_attention_dim": (optional_positive_int, "width of the cross-attention (null: item's)"),
    "cross_attention_ffn_dim": (positive_int, "hidden width of each block's feed-forward"),
    "cross_attention_dropout": (probability, "dropout of the cross-attention blocks"),
    "interest_dim": (positive_int, "width of the content-interest projection"),
    "interest_features": (optional_names, "item features of the content vector (null: embeddings)"),
    "interest_regularizer": (regularizer, "L2 weight on the interest tower (not net_regularizer)"),
    "item_projection_dim": (optional_positive_int, "project the item vector to this width first"),
    "qin_layers": (non_negative_int, "quadratic interaction layers"),
    "qin_heads": (positive_int, "products of each quadratic layer"),
    "qin_rank": (positive_int, "rank of each flat quadratic layer"),
    "qin_dropout": (probability, "dropout of the quadratic layers"),
    "dcn_cross_layers": (positive_int, "layers of the DCNv2 cross network"),
    "transformer_layers": (positive_int, "transformer layers over the history"),
    "transformer_heads": (positive_int, "heads of each transformer layer"),
    "transformer_dim": (positive_int, "width of the transformer"),
    "transformer_ffn_dim": (positive_int, "hidden width of the transformer feed-forward"),
    "transformer_dropout": (probability, "dropout of the transformer"),
    "last_k_outputs": (positive_int, "transformer outputs of the last k history positions kept"),
    "length_buckets": (positive_int, "batches split by history length into this many buckets"),
}


def toolkit_defaults() -> dict[str, Any]:
    """This toolkit's options and their defaults: every run's params hold them."""
    return {o.name: o.default for o in OPTIONS if o.filled}


def with_option_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """params with every option of this toolkit set (its default where not given), so two
    readers of one experiment (the tuner, the run) see the same settings."""
    return {**toolkit_defaults(), **params}


def bookkeeping_keys() -> tuple[str, ...]:
    return tuple(o.name for o in OPTIONS if o.bookkeeping)


def keys_of(*blocks: str) -> set[str]:
    return {o.name for o in OPTIONS if o.block in blocks}


def check_of(key: str) -> Callable[[Any], str | None] | None:
    """The check of key (a declared option or a model argument), or None if unknown."""
    if key in BY_NAME:
        return BY_NAME[key].check
    return MODEL_ARGUMENTS[key][0] if key in MODEL_ARGUMENTS else None


def problem(key: str, value: Any) -> str | None:
    """Why value is not usable for key, or None (also for a key this table does not know:
    the key checks refuse those)."""
    check = check_of(key)
    return check(value) if check else None


def cross_problems(params: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, value, why) of values that are fine alone but not together."""
    found = []
    names = list(params["monitor"]) if isinstance(params.get("monitor"), dict) \
        else [params.get("monitor")]
    group_metrics = [m for m in list(params.get("metrics") or []) + names
                     if m in ("gAUC", "avgAUC", "MRR")]
    if group_metrics and not params.get("group_id"):
        found.append(("metrics", group_metrics, "need group_id (e.g. group_id: user_id)"))
    return found
