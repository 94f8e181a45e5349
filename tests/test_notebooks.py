"""The example notebooks run top to bottom, and the outputs stored in them are current.

The notebooks in ``notebooks/`` are saved with their outputs (the documentation shows
them as stored). This test executes each one in a fresh kernel and compares its text
outputs, and the number of figures of each cell, with the stored ones, so a change in the
library that alters a number shown in a notebook fails here until the notebooks are
re-executed::

    python notebooks/execute.py

Needs the ``docs`` extra (nbclient, ipykernel); skipped without it.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
REFRESH = "python notebooks/execute.py"

#: output details that legitimately differ between runs
_VOLATILE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x…"),  # object addresses
    (re.compile(r"/tmp/[^\s'\"]*"), "/tmp/…"),  # scratch folders, ipykernel cell files
]


def _normalise(text: str) -> str:
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text.rstrip()


def _outputs(nb) -> list[str]:
    """Per code cell: its text outputs, and one marker per figure."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            kind = out["output_type"]
            if kind == "stream":
                parts.append(f"[{out['name']}] {out['text']}")
            elif kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/png" in data or "image/svg+xml" in data:
                    parts.append("[figure]")
                elif "text/plain" in data:
                    parts.append(data["text/plain"])
            elif kind == "error":
                parts.append(f"[error] {out['ename']}: {out['evalue']}")
        cells.append(_normalise("\n".join(parts)))
    return cells


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
#: numbers in stored outputs may differ by floating-point noise between library versions
#: (a Kaplan-Meier mean shown to the nanosecond moved by 1 ns with numpy 2.4); text may not
REL_TOL = 1e-7


def same_output(stored: str, fresh: str, rel_tol: float = REL_TOL) -> bool:
    """The same text, every number equal within ``rel_tol`` (relative) of the stored one."""
    if stored == fresh:
        return True
    if _NUMBER.split(stored) != _NUMBER.split(fresh):
        return False
    a, b = _NUMBER.findall(stored), _NUMBER.findall(fresh)
    return len(a) == len(b) and all(
        math.isclose(float(x), float(y), rel_tol=rel_tol, abs_tol=0.0)
        for x, y in zip(a, b, strict=True)
    )


def test_same_output_tolerates_float_noise_only():
    assert same_output("mean 14 days 02:18:58.095647421", "mean 14 days 02:18:58.095647422")
    assert same_output("p = 0.123456789012", "p = 0.123456789013")
    assert not same_output("Lead 623 visits", "Lead 629 visits")
    assert not same_output("conversion 0.81", "conversion 0.82")
    assert not same_output("Lead 623 visits", "Demo 623 visits")
    assert not same_output("1 2", "1 2 3")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebook_is_executed_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} is not executed top to bottom (execution counts {counts}); run\n  {REFRESH}"
    )
    for i, cell in enumerate(code, 1):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}, code cell {i} holds an error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (
                f"{path.name}, code cell {i} printed to stderr (a warning?):\n{out['text']}"
            )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_stored_outputs_are_current(path, monkeypatch):
    # CI exports MPLBACKEND=Agg, which would keep the kernel from drawing inline figures
    monkeypatch.delenv("MPLBACKEND", raising=False)
    stored = nbformat.read(path, as_version=4)
    fresh = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        fresh,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    old, new = _outputs(stored), _outputs(fresh)
    assert len(old) == len(new)
    for i, (a, b) in enumerate(zip(old, new, strict=True), 1):
        if not same_output(a, b):
            diff = "\n".join(
                difflib.unified_diff(
                    a.splitlines(), b.splitlines(), "stored", "fresh", lineterm="", n=1
                )
            )
            pytest.fail(
                f"{path.name}, code cell {i}: the stored output is out of date. Re-execute "
                f"the notebooks and check the text around the changed numbers:\n  {REFRESH}\n"
                f"{diff[:4000]}"
            )
