"""The package's layers (issue 16): below the facade (``funnelkit.log``), no module imports
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
