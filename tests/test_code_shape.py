"""The code's shape, as the project's standards state it: no import cycles (function-level imports included),
no module over 600 lines, no function over 80 lines, and every public callable typed and documented with a
numpydoc Returns section."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

import pytest

import torchlm

PKG = pathlib.Path(torchlm.__file__).parent
MODULES = sorted(p for p in PKG.rglob("*.py"))


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, level: int, name: str | None, is_pkg: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> torchlm modules it imports, at any depth of the code (function-level imports included)."""
    names = {_module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for p in MODULES:
        mod = _module_name(p)
        is_pkg = p.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node.level, node.module, is_pkg)
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in names else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = {d for d in deps if d in names and d != mod}
    return graph


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ re-exporting its modules is not a cycle of responsibilities
    for mod in graph:
        graph[mod] = {d for d in graph[mod] if not (mod.startswith(d + ".") and d in graph)}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_and_function_sizes(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= 600, f"{path.name} has {len(lines)} lines (at most 600)"
    long = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > 80:
                long.append(f"{node.name} ({n} lines)")
    assert not long, f"functions over 80 lines in {path.name}: {', '.join(long)}"


def _public_callables():
    """(qualified name, object) of every public function, class and method defined in torchlm's public modules."""
    out = []
    for p in MODULES:
        rel = p.relative_to(PKG)
        if any(part.startswith("_") and part != "__init__.py" for part in rel.parts):
            continue
        mod = importlib.import_module(_module_name(p))
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj):
                out.append((f"{rel}:{name}", obj))
            elif inspect.isclass(obj):
                out.append((f"{rel}:{name}", obj))
                for mname, m in vars(obj).items():
                    if mname.startswith("_") or not (inspect.isfunction(m) or isinstance(m, property)):
                        continue
                    out.append((f"{rel}:{name}.{mname}", (obj, mname, m)))
    return out


def _doc_of(cls, mname: str) -> str | None:
    # an override documented in a base class inherits that documentation (numpydoc's convention)
    for base in cls.__mro__:
        m = vars(base).get(mname)
        if m is not None:
            d = inspect.getdoc(m.fget if isinstance(m, property) else m)
            if d:
                return d
    return None


def _check_function(name: str, fn, doc: str | None, problems: list[str], returns_section: bool = True) -> None:
    if not doc:
        problems.append(f"{name}: no docstring")
        return
    sig = inspect.signature(fn)
    untyped = [p for p, prm in sig.parameters.items()
               if p not in ("self", "cls") and prm.annotation is inspect.Parameter.empty
               and prm.kind not in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD)]
    if untyped:
        problems.append(f"{name}: parameters without type hints: {', '.join(untyped)}")
    ret = sig.return_annotation
    if ret is inspect.Signature.empty:
        problems.append(f"{name}: no return type hint")
    elif returns_section and ret not in (None, "None") and "Returns" not in doc and "Yields" not in doc:
        problems.append(f"{name}: docstring has no Returns section")


def test_public_callables_are_typed_and_documented():
    problems: list[str] = []
    for name, obj in _public_callables():
        if inspect.isclass(obj):
            if not inspect.getdoc(obj):
                problems.append(f"{name}: no docstring")
            continue
        if inspect.isfunction(obj):
            _check_function(name, obj, inspect.getdoc(obj), problems)
            continue
        cls, mname, m = obj
        if isinstance(m, property):
            # a property documents what it is; its type is its getter's return hint
            if not _doc_of(cls, mname):
                problems.append(f"{name}: no docstring")
            elif inspect.signature(m.fget).return_annotation is inspect.Signature.empty:
                problems.append(f"{name}: no return type hint")
            continue
        _check_function(name, m, _doc_of(cls, mname), problems)
    assert not problems, f"{len(problems)} public callables fall short:\n" + "\n".join(problems)


def test_py_typed_marker_is_shipped():
    assert (PKG / "py.typed").exists()
