"""The layers of src/, lowest first, and a check that imports only point down them.

A module may import its own layer and the layers below it, never one above. An import inside
a function (a lazy import) of another project layer is refused too: it hides a dependency
from the module's header, and is how import cycles crept in (the tuner imported the
experiment inside functions while the experiment imported the tuner's modules). Lazy imports
of third-party packages (torch, ray, scipy) stay allowed: they keep the fast paths light.
docs/refactoring.md (section "Layers") shows the same list; test_docs_show_the_layers keeps the
two equal.
"""
import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"

# Lowest first. An entry is a module or a package (all modules under it). A module belongs to
# the longest entry that is it or a package above it.
LAYERS = [
    "src.errors",          # the exceptions a user meets
    "src.atomic",          # write a file whole or not at all
    "src.options",         # the options a config may set: names, defaults, checks
    "src.params",          # config loading, run paths, option defaults
    "src.cli",             # logging set-up, errors to exit statuses
    "src.progress",        # progress lines
    "src.history",         # a run's per-step history file
    "src.environment",     # threads, torch set-up, GPU, writable folders, disk room
    "src.runs",            # records of one run: fingerprint, result lines, lock, owner
    "src.data",            # data files, features, vocab, loader, generator, checks
    "src.manifest",        # what a submission zip was made from
    "src.submission",      # the submission zip
    "src.models",          # the models
    "src.training",        # the trainer: loop, schedules, checkpoints, evaluation
    "src.tuning",          # grids, their values and runs on local slots or Ray
    "src.report",          # a grid's report page
    "src.item_embedding",  # item embeddings and their evaluation through the tuner
    "src.experiment",      # one experiment: checks, lock, train, result line
    "src.predict",         # scoring the test set with trained experiments
    "src.datagen",         # python -m entry points
    "src.validation",
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str):
    """Index of module's layer in LAYERS, or None for a module outside src."""
    if module != "src" and not module.startswith("src."):
        return None
    best = None
    for index, entry in enumerate(LAYERS):
        if module == entry or module.startswith(entry + "."):
            if best is None or len(entry) > len(LAYERS[best]):
                best = index
    return best


def exists(module: str) -> bool:
    path = REPO.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(node: ast.AST, module: str, is_package: bool):
    """Absolute names a node imports (for `from X import a`, X.a where X.a is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if is_package else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    names = [target]
    for alias in node.names:
        candidate = REPO.joinpath(*f"{target}.{alias.name}".split("."))
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            names.append(f"{target}.{alias.name}")
    return names


def module_problems(source: str, module: str, is_package: bool = False):
    """One line per import of module (its source) that points up, or that is lazy and
    crosses a layer."""
    own = layer_of(module)
    if own is None:
        return [f"{module}: in no layer (add it to LAYERS)"]
    tree = ast.parse(source)
    lazy = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy |= {id(n) for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))}
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for target in imported_modules(node, module, is_package):
            other = layer_of(target)
            if other is None:
                continue
            where = f"{module} (line {node.lineno}) imports {target}"
            if not exists(target):
                problems.append(f"{where}: no such module (moved?)")
                continue
            if other > own:
                problems.append(f"{where}: {LAYERS[other]} is above {LAYERS[own]}")
            elif id(node) in lazy and other != own:
                problems.append(f"{where} inside a function: import it at the top "
                                f"(another layer)")
    return problems


def import_problems():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        if module != "src":
            problems += module_problems(path.read_text(), module, path.name == "__init__.py")
    return problems


def test_imports_point_down_the_layers():
    problems = import_problems()
    assert not problems, "\n".join(problems)


def test_every_layer_exists():
    """A renamed or removed module leaves no stale entry behind."""
    for entry in LAYERS:
        assert exists(entry), entry


def test_docs_show_the_layers():
    text = (REPO / "docs" / "refactoring.md").read_text()
    section = re.search(r"^## Layers\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/refactoring.md has no section '## Layers'"
    listed = re.findall(r"^\d+\. `(src\.[\w.]+)`", section.group(1), re.M)
    assert listed == LAYERS


@pytest.mark.parametrize("source, module, found", [
    ("from ..experiment import train\n", "src.tuning.tuner", "src.experiment is above"),
    ("def f():\n    from ..data.checks import main\n", "src.tuning.tuner", "inside a function"),
    ("from . import collect\n", "src.tuning.tuner", None),  # own layer, no module of that name
    ("def f():\n    from .grid import expand\n", "src.tuning.tuner", None),  # own layer
    ("def f():\n    import torch\n", "src.tuning.tuner", None),  # third party
    ("from .tuning import tuner\n", "src.experiment", None),  # down
    ("from ..experiment import train\n", "src.tuning", "src.experiment is above"),  # package
    ("import src.predict\n", "src.models.din", "src.predict is above"),
    ("from .fingerprint import file_signature\n", "src.tuning.ray_nodes", "no such module"),
])
def test_the_check_finds_upward_and_lazy_imports(source, module, found):
    """The check on its own: what it refuses and what it lets through."""
    problems = module_problems(source, module, is_package=module == "src.tuning")
    if found is None:
        assert problems == []
    else:
        assert len(problems) == 1 and found in problems[0], problems


def test_no_module_of_src_is_ignored_by_git():
    """A module git ignores is on this disk and nowhere else (src/runs/ once matched the
    .gitignore entry for run folders, runs/): every other checkout fails to import it."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [str(p.relative_to(REPO)) for p in SRC.rglob("*.py")]
    done = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", *paths],
                          capture_output=True, text=True)
    assert done.stdout.split() == [], f"ignored by git: {done.stdout.split()}"
