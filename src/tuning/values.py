"""Checks of every grid point's values before any run starts.

Without them a bad value surfaces mid-grid, after earlier grid points trained, as a torch or
FuxiCTR error that names neither key nor value (`learning_rate: "fast"` gave "optimizer=Adam is
not supported"; `monitor: auc` crashed after a full epoch). Each key's check is the one the
schema declares (src/options.py); here it is applied, with what the schema cannot know alone:
the model names and each feature entry's own embedding_regularizer.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data.feature_cols import FEATURE_REGULARIZER, regularizer_problem
from ..errors import ConfigError
from ..models import available_models, fixed_arguments
from ..options import cross_problems
from ..options import problem as declared_problem


def _known_model(value):
    names = available_models()
    if value not in names:
        return f"must be one of the models in src/models: {', '.join(sorted(names))}"


def _feature_regularizers(value):
    for col in value if isinstance(value, list) else []:
        if isinstance(col, dict) and FEATURE_REGULARIZER in col:
            why = regularizer_problem(col[FEATURE_REGULARIZER])
            if why:
                return f"entry {col.get('name')!r}: embedding_regularizer {why}"


_MORE_CHECKS = {"model": _known_model, "feature_cols": _feature_regularizers}


def problem(key: str, value: Any) -> str | None:
    """Why value is not usable for key, or None."""
    why = declared_problem(key, value)
    if not why and key in _MORE_CHECKS:
        why = _MORE_CHECKS[key](value)
    return why


def _fixed_problems(params):
    """Arguments the model takes at one value only (src/models.fixed_arguments)."""
    if params.get("model") not in available_models():
        return []
    return [(key, params[key], f"must be {value!r} for model {params['model']}")
            for key, value in fixed_arguments(params["model"]).items()
            if key in params and params[key] != value]


def check_grid_values(experiments: Mapping[str, dict[str, Any]], where: str) -> None:
    """Raise one ConfigError naming each bad key=value and the expids that have it.

    experiments: {expid: merged params}."""
    bad = {}
    for expid, params in experiments.items():
        found = [(key, value, problem(key, value)) for key, value in params.items()]
        for key, value, why in found + cross_problems(params) + _fixed_problems(params):
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
