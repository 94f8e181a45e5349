"""The package's layers (issue 16): no import cycle at module level, and below the facade (``funnelkit.log``), no module imports
it at run time — the metrics, statistics and charts take the log they are given and
reach its class through :mod:`funnelkit._facade`. Imports under ``TYPE_CHECKING`` are
for annotations only and do not count.

The modules that still import the facade at run time are listed with why; the list may
only shrink (a new entry is a step back into the import circle of issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import funnelkit

PACKAGE = Path(funnelkit.__file__).parent

#: modules that import funnelkit.log at run time today, and why
STILL_IMPORTING = {
    # input and output layers above the facade: they build logs
    "funnelkit": "the package exports EventLog",
    "funnelkit.io": "read_events builds an EventLog",
    "funnelkit.sql": "read_sql builds an EventLog",
    "funnelkit.state": "load builds an EventLog",
    "funnelkit.cli": "the command line builds logs",
    # the scale-out engine builds an in-memory log per partition (issue 16: to be replaced
    # by the named data model)
    "funnelkit._summary": "one EventLog per partition of whole deals",
    "funnelkit.dask": "DaskEventLog delegates validation to EventLog and compute() returns one",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports_of_log(path: Path) -> list[int]:
    """Line numbers of the imports of funnelkit.log outside ``if TYPE_CHECKING:`` blocks."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    lines = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = {a.name for a in node.names}
            if target == "funnelkit.log" or (target == "funnelkit" and "log" in names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name == "funnelkit.log" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_no_module_below_the_facade_imports_it_at_run_time():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "log.py" and path.parent == PACKAGE:
            continue
        lines = _runtime_imports_of_log(path)
        if lines:
            found[_module_name(path)] = lines
    new = sorted(set(found) - set(STILL_IMPORTING))
    assert not new, (
        f"{new} import funnelkit.log at run time (lines {[found[m] for m in new]}); take the "
        "log as a parameter, import it under TYPE_CHECKING for annotations, or reach its "
        "class through funnelkit._facade"
    )
    gone = sorted(set(STILL_IMPORTING) - set(found))
    assert not gone, f"{gone} no longer import funnelkit.log: remove them from STILL_IMPORTING"


def test_the_check_sees_an_import():
    # the walker itself: a plain, a relative and a TYPE_CHECKING import
    assert _runtime_imports_of_log(PACKAGE / "io.py")
    assert not _runtime_imports_of_log(PACKAGE / "funnel.py")  # TYPE_CHECKING only


# ---------------------------------------------------------------------- import cycles
#: cycles that remain through imports inside functions (run on first call, after every
#: module has loaded, so they cannot fail at import time); the list may only shrink
LAZY_CYCLES = [
    {"funnelkit._summary", "funnelkit.dask", "funnelkit.io", "funnelkit.log", "funnelkit.state"},
]


def _import_graph(lazy: bool) -> dict[str, set[str]]:
    """Module → the package's modules it imports: at module level (``lazy=False``) or
    anywhere, inside functions too (``lazy=True``); imports under TYPE_CHECKING left out."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]

        def visit(nodes, name=name, package=package) -> None:
            for node in nodes:
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    visit(node.orelse)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
                    continue
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(parts + ([node.module] if node.module else []))
                    for alias in node.names:
                        target = f"{base}.{alias.name}"
                        target = target if target in modules else base
                        if target in modules and target != name:
                            graph[name].add(target)
                elif isinstance(node, ast.Import):
                    graph[name] |= {a.name for a in node.names if a.name in modules} - {name}
                else:
                    visit(ast.iter_child_nodes(node))

        visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycle_at_module_level():
    """Issue 16: the 26-module import circle is gone — no cycle among the imports that run
    when a module loads."""
    assert _cycles(_import_graph(lazy=False)) == []


def test_cycles_through_imports_inside_functions_only_shrink():
    found = _cycles(_import_graph(lazy=True))
    new = [c for c in found if not any(c <= known for known in LAZY_CYCLES)]
    assert not new, f"new import cycles through imports inside functions: {new}"
    gone = [k for k in LAZY_CYCLES if not any(k <= c for c in found)]
    assert not gone, f"{gone} are no longer cycles: remove them from LAZY_CYCLES"


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    eager, lazy = _import_graph(lazy=False), _import_graph(lazy=True)
    # `from . import _stats` (a module), `from ._segments import expand` (a name), and
    # funnel's import of the facade under TYPE_CHECKING (not an edge)
    assert {"funnelkit._stats", "funnelkit._segments"} <= eager["funnelkit.funnel"]
    assert "funnelkit.log" not in lazy["funnelkit.funnel"]
    # an import inside a function is an edge of the lazy graph only
    assert "funnelkit.funnel" in lazy["funnelkit.forecast"] - eager["funnelkit.forecast"]
