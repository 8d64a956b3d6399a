"""The model package: one module per model, found by the `model:` name of a model config.

A model is a subclass of MMCTRModel (src/models/base.py) defined in a module of this folder;
its class name is the name a model config's `model:` key gives. Adding a model is one module
here plus one block in a model config: nothing to register by hand. Models score; the
Trainer of src/training trains them.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import MMCTRModel

# Modules here that hold shared parts, not models of their own.
_NOT_MODELS = {"attention", "base", "baseline_design", "dcn", "encoder", "interest", "items",
               "layers", "pooling", "regularizer"}
# Constructor arguments the code fills in, not a config.
_NOT_CONFIG_KEYS = {"self", "feature_map", "item_table"}


def available_models() -> dict[str, type[MMCTRModel]]:
    """{class name: class} of every model in this package."""
    from .base import MMCTRModel
    found = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_MODELS:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, MMCTRModel) and obj.__module__ == module.__name__:
                found[name] = obj
    return found


def model_arguments(name: str) -> dict[str, Any]:
    """{argument: default} of a model's constructor, read along its class MRO (our classes
    only: FuxiCTR's BaseModel keys are declared in src/options.py). feature_map and
    item_table are passed by the code that builds the model, never by a config."""
    arguments = {}
    for cls in model_class(name).__mro__:
        if not cls.__module__.startswith(__name__ + ".") or "__init__" not in vars(cls):
            continue
        for parameter in inspect.signature(cls.__init__).parameters.values():
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) or \
                    parameter.name in _NOT_CONFIG_KEYS:
                continue
            arguments.setdefault(parameter.name, parameter.default)  # the subclass's default
    return arguments


def fixed_arguments(name: str) -> dict[str, Any]:
    """{argument: the one value the model takes}: keys a model accepts only to run blocks
    copied from another model's (a class's FIXED_ARGUMENTS)."""
    return dict(getattr(model_class(name), "FIXED_ARGUMENTS", {}))


def model_class(name: str) -> type[MMCTRModel]:
    """The class named by a model config's `model:` key; ConfigError listing the known ones."""
    models = available_models()
    if name not in models:
        raise ConfigError(f"model={name!r}: known models are {', '.join(sorted(models))}. "
                          f"Fix: set model to one of these in the model config")
    return models[name]
