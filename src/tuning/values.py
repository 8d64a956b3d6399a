"""Checks of every grid point's values before any run starts.

Without them a bad value surfaces mid-grid, after earlier grid points trained, as a torch or
FuxiCTR error that names neither key nor value (`learning_rate: "fast"` gave "optimizer=Adam is
not supported"; `embedding_dim: 0` trained and was marked ok). Rules go by key name, so the
keys of every model in src/models are covered by the same patterns (`*_dropout`,
`*_hidden_units`, ...). Only types and ranges are checked here: no torch import, so a refused
config answers in well under a second.
"""
import re

from ..data.features import FEATURE_REGULARIZER, regularizer_problem
from ..errors import ConfigError
from ..models import model_names

OPTIMIZERS = ("adam", "Adam", "AdamW", "SGD", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam",
              "Adadelta", "ASGD")
LOSSES = ("binary_crossentropy", "binary_cross_entropy", "bce")
# FuxiCTR's get_activation names (case-insensitive) and torch.nn classes it falls back to
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "prelu", "dice", "leakyrelu", "gelu",
               "silu", "elu", "selu", "identity", "linear")
METRICS = ("AUC", "logloss", "gAUC", "avgAUC", "MRR", "NDCG", "HitRate")
SCHEDULERS = ("plateau", "cosine", "none")
TASKS = ("binary_classification",)


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


def positive_number(value):
    if not _number(value) or value <= 0:
        return "must be a number > 0" + _string_number_hint(value)


def non_negative_number(value):
    if not _number(value) or value < 0:
        return "must be a number >= 0" + _string_number_hint(value)


def positive_int(value):
    if not _int(value) or value < 1:
        return "must be a whole number >= 1" + _string_number_hint(value)


def non_negative_int(value):
    if not _int(value) or value < 0:
        return "must be a whole number >= 0" + _string_number_hint(value)


def whole_number(value):
    if not _int(value):
        return "must be a whole number"


def optional_positive_int(value):
    return None if value is None else positive_int(value)


def probability(value):
    if not _number(value) or not 0 <= value < 1:
        return "must be a number in [0, 1)" + _string_number_hint(value)


def factor(value):
    if not _number(value) or not 0 < value <= 1:
        return "must be a number in (0, 1]" + _string_number_hint(value)


def boolean(value):
    if not isinstance(value, bool):
        return "must be True or False"


def units(value):
    if not isinstance(value, (list, tuple)) or not all(_int(v) and v >= 1 for v in value):
        return "must be a list of whole numbers >= 1, e.g. [512, 256]"


def _activation_name(value):
    return value is None or (isinstance(value, str) and value.lower() in ACTIVATIONS)


def activation(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    if not all(_activation_name(v) for v in values):
        return f"must be one of {', '.join(ACTIVATIONS)} (or a list of them)"


def regularizer(value):
    """FuxiCTR reads a float as an L2 weight and strings like 'l2(1.e-6)'; an int other than 0
    it silently ignores, so that is refused here."""
    if isinstance(value, str) and re.fullmatch(r"l[12]\(\s*[0-9.eE+-]+\s*\)", value.strip()):
        return None
    if value is None or value == 0 or (isinstance(value, float) and value >= 0):
        return None
    if _int(value):
        return f"must be a float: FuxiCTR ignores the integer {value}; write {float(value)!r}"
    return "must be a number >= 0 or 'l2(w)'" + _string_number_hint(value)


def feature_cols(value):
    """Per-feature values that a grid may vary: each entry's own embedding_regularizer."""
    for col in value if isinstance(value, list) else []:
        if isinstance(col, dict) and FEATURE_REGULARIZER in col:
            why = regularizer_problem(col[FEATURE_REGULARIZER])
            if why:
                return f"entry {col.get('name')!r}: embedding_regularizer {why}"


def one_of(choices, case_insensitive=False):
    def check(value):
        names = [c.lower() for c in choices] if case_insensitive else choices
        probe = value.lower() if case_insensitive and isinstance(value, str) else value
        if probe not in names:
            return f"must be one of {', '.join(map(str, choices))}"
    return check


def metrics(value):
    if not isinstance(value, list) or not value or any(m not in METRICS for m in value):
        return f"must be a list of metrics from {', '.join(METRICS)}"


def known_model(value):
    names = model_names()
    if value not in names:
        return f"must be one of the models in src/models: {', '.join(sorted(names))}"


RULES = {
    "model": known_model,
    "learning_rate": positive_number, "batch_size": positive_int, "epochs": positive_int,
    "early_stop_patience": positive_int, "embedding_dim": positive_int, "seed": whole_number,
    "max_len": positive_int, "accumulation_steps": positive_int,
    "eval_steps": optional_positive_int, "max_steps": optional_positive_int,
    "optimizer": one_of(OPTIMIZERS), "loss": one_of(LOSSES), "task": one_of(TASKS),
    "metrics": metrics, "monitor_mode": one_of(("max", "min")),
    "embedding_regularizer": regularizer, "net_regularizer": regularizer,
    "weight_decay": non_negative_number, "lr_scheduler": one_of(SCHEDULERS),
    "lr_decay_factor": factor, "lr_patience": positive_int, "warmup_steps": non_negative_int,
    "min_lr": non_negative_number, "threads": optional_positive_int,
    "num_workers": non_negative_int, "verbose": non_negative_int,
    "feature_cols": feature_cols,
}
# keys of any model, by the shape of their name
PATTERNS = [
    (r".*_dropout$|.*_dropout_rate$", probability),
    (r".*_hidden_units$|.*_units$", units),
    (r".*_activations?$", activation),
    (r"^num_.*|.*_layers$|.*_heads$|.*_rank$|.*_buckets$|^top_k$|^k$", positive_int),
    (r".*_dim$", optional_positive_int),  # null: the model's default width
    (r"^(amp_bf16|torch_compile|deterministic|split_on_device|shuffle|batch_norm|"
     r"layer_norm|din_use_softmax|save_best_only|debug_mode|tensorboard)$", boolean),
]


def problem(key, value):
    """Why value is not usable for key, or None."""
    rule = RULES.get(key)
    if rule is None:
        rule = next((check for pattern, check in PATTERNS if re.fullmatch(pattern, key)), None)
    return rule(value) if rule else None


def check_grid_values(experiments, where):
    """Raise one ConfigError naming each bad key=value and the expids that have it.

    experiments: {expid: merged params}."""
    bad = {}
    for expid, params in experiments.items():
        for key, value in params.items():
            why = problem(key, value)
            if why:
                shown = repr(value)  # a whole feature_cols list would drown the reason
                shown = shown if len(shown) <= 80 else shown[:60] + "...]"
                bad.setdefault((key, shown, why), []).append(expid)
    if bad:
        lines = [f"{key}={value} {why} (in {_expids(expids)})"
                 for (key, value, why), expids in bad.items()]
        raise ConfigError(f"{where}: {len(lines)} bad value(s), found before any run: "
                          f"{'; '.join(lines)}. Fix: correct them in the tuner config's "
                          f"tuner_space or the model block")


def _expids(expids):
    return ", ".join(expids) if len(expids) <= 3 else f"{', '.join(expids[:3])} and " \
        f"{len(expids) - 3} more"
