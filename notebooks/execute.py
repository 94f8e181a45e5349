"""Execute the example notebooks top to bottom and save them with their outputs.

Run after changing a notebook, or when ``tests/test_notebooks.py`` says the stored
outputs are out of date (needs the ``docs`` extra)::

    python notebooks/execute.py                        # every notebook
    python notebooks/execute.py notebooks/02_key_stages.ipynb

Each notebook runs in a fresh kernel with this interpreter, in the ``notebooks/`` folder,
with matplotlib's inline backend (an ``MPLBACKEND`` set in the environment, as CI sets
``Agg``, would leave the saved notebooks without figures). Read the text around any
number that changed before committing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the saved files: diffs show only outputs
        resources={"metadata": {"path": str(HERE)}},
    ).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps of an earlier run
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    os.environ.pop("MPLBACKEND", None)
    paths = [Path(a).resolve() for a in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.name}", flush=True)
        execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
