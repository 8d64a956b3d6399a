"""Every public function and method of src/ and the four top-level scripts has type hints.

Public: a name that does not start with `_`, plus `__init__` (its parameters are what a caller
passes). Each parameter needs an annotation (self and cls of a method excepted; *args and
**kwargs included) and the function needs a return annotation. The check reads the source
with ast, so it imports nothing (no torch, no ray) and also covers code no test runs.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["run_expid.py", "run_param_tuner.py", "prediction.py", "demo.py"]


def is_public(name: str) -> bool:
    return not name.startswith("_") or name == "__init__"


def missing_hints(source: str, where: str = "<source>") -> list[str]:
    """One line per public function of source that lacks a parameter or return annotation.

    Functions nested in a function are local helpers, not public, and are skipped; methods of
    a class (also of a class nested in a class) are checked.
    """
    problems = []

    def visit(body: list[ast.stmt], in_class: bool, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, True, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if is_public(node.name):
                    check(node, in_class, f"{prefix}{node.name}")
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                # Definitions under `if TYPE_CHECKING:`, try/except imports and the like.
                blocks = [getattr(node, k, []) for k in ("body", "orelse", "finalbody")]
                blocks += [h.body for h in getattr(node, "handlers", [])]
                for block in blocks:
                    visit(block, in_class, prefix)

    def check(func: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool, name: str) -> None:
        args = func.args
        positional = args.posonlyargs + args.args
        is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                        for d in func.decorator_list)
        if in_class and not is_static and positional and positional[0].arg in ("self", "cls"):
            positional = positional[1:]
        params = positional + args.kwonlyargs
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        bare = [a.arg for a in params if a.annotation is None]
        if bare:
            problems.append(f"{where}:{func.lineno} {name}: no hint for {', '.join(bare)}")
        if func.returns is None:
            problems.append(f"{where}:{func.lineno} {name}: no return hint")

    visit(ast.parse(source).body, False, "")
    return problems


def checked_files() -> list[Path]:
    return sorted((REPO / "src").rglob("*.py")) + [REPO / s for s in SCRIPTS]


def test_public_functions_have_type_hints():
    problems = []
    for path in checked_files():
        problems += missing_hints(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_the_check_finds_missing_hints():
    source = '''
def ok(a: int, *rest: str, flag: bool = False, **kw: object) -> None: ...
def no_return(a: int): ...
def bare_param(a, b: int) -> int: ...
def star(*args, **kwargs) -> None: ...
def _private(a): ...
class C:
    def __init__(self, x) -> None: ...
    def method(self) -> int: ...
    @classmethod
    def make(cls) -> "C": ...
    @staticmethod
    def static(self): ...
    def _hidden(self, y): ...
    class Inner:
        async def run(self, z: int): ...
def outer() -> None:
    def local(a): ...
'''
    problems = missing_hints(source)
    assert [p.split(" ", 1)[1] for p in problems] == [
        "no_return: no return hint",
        "bare_param: no hint for a",
        "star: no hint for args, kwargs",
        "C.__init__: no hint for x",
        "C.static: no hint for self",
        "C.static: no return hint",
        "C.Inner.run: no return hint",
    ]
