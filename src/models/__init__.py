"""The model package: one module per model, found by the `model:` name of a model config.

A model is a subclass of MMCTRModel (src/models/base.py) defined in a module of this folder;
its class name is the name a model config's `model:` key gives. Adding a model is one module
here plus one block in a model config: nothing to register by hand. Models score; the
Trainer of src/training trains them.
"""
import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from ..errors import ConfigError

# Modules here that hold shared parts, not models of their own.
_NOT_MODELS = {"attention", "base", "interest", "items", "layers", "seed_design"}


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


def model_names():
    """The model names, read from the modules' source without importing them (no torch):
    classes of the model modules that derive, directly or through other classes of this
    package, from MMCTRModel. available_models() is the truth; a test checks both agree."""
    bases = {}  # class name -> (module, names of its bases)
    for module_info in pkgutil.iter_modules(__path__):
        tree = ast.parse((Path(__path__[0]) / f"{module_info.name}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                names = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases]
                bases[node.name] = (module_info.name, names)
    derived, grew = {"MMCTRModel"}, True
    while grew:
        before = len(derived)
        derived |= {name for name, (_, parents) in bases.items() if derived & set(parents)}
        grew = len(derived) > before
    return {name for name in derived - {"MMCTRModel"} if bases[name][0] not in _NOT_MODELS}


def model_class(name):
    """The class named by a model config's `model:` key; ConfigError listing the known ones."""
    models = available_models()
    if name not in models:
        raise ConfigError(f"model={name!r}: known models are {', '.join(sorted(models))}. "
                          f"Fix: set model to one of these in the model config")
    return models[name]
