"""The model package: one module per model, found by the `model:` name of a model config.

A model is a subclass of MMCTRModel (src/models/base.py) defined in a module of this folder;
its class name is the name a model config's `model:` key gives. Adding a model is one module
here plus one block in a model config: nothing to register by hand.
"""
import importlib
import inspect
import pkgutil

from ..errors import ConfigError

# Modules here that hold shared parts, not models of their own.
_NOT_MODELS = {"attention", "base", "items", "layers", "seed_design"}


def available_models():
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


def model_class(name):
    """The class named by a model config's `model:` key; ConfigError listing the known ones."""
    models = available_models()
    if name not in models:
        raise ConfigError(f"model={name!r}: known models are {', '.join(sorted(models))}. "
                          f"Fix: set model to one of these in the model config")
    return models[name]
