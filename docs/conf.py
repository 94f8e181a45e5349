"""Sphinx configuration of the funnelkit documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

No network is used: no intersphinx, no remote images. The pages under ``concepts/``,
``howto/`` and ``getting-started.md`` are MyST notebooks executed at build time (cached in
``docs/_build/.jupyter_cache``; a parallel ``-j`` build executes them afresh); the notebooks of ``notebooks/`` are copied to
``docs/examples/`` and shown with their stored outputs (``tests/test_notebooks.py`` executes
them and checks the stored outputs are current). ``gallery.md`` draws every chart; each
chart's API page shows it on the bundled sample, drawn by matplotlib's plot directive
(images under ``_build/``).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import funnelkit

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Kernels started by myst-nb inherit this environment. CI exports MPLBACKEND=Agg, which
# would stop ipykernel from choosing its inline backend: the executed pages would have no
# figures. Let the kernel pick the inline backend.
os.environ.pop("MPLBACKEND", None)
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

project = "funnelkit"
author = "funnelkit developers"
copyright = "funnelkit developers"
version = release = funnelkit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
]

# --------------------------------------------------------------------------- optional pages
# Pages that exist only when another part of the project has landed. A missing one is
# excluded from the build and its toctree line is dropped, so the build never fails on it.
_MOCK = ["dask", "distributed"]  # funnelkit.dask is documented without dask installed


def _importable(name: str) -> bool:
    from sphinx.ext.autodoc.mock import mock

    try:
        with mock(_MOCK):
            importlib.import_module(name)
    except Exception:
        return False
    return True


#: the real log of the second gallery page: in the shared data folder beside the repository
BPIC = ROOT.parent / "shared" / "data" / "bpic2012.parquet"
OPTIONAL_DOCS = {
    "gallery-bpic": BPIC.is_file(),
    "scale-out": (DOCS / "scale-out.md").is_file(),
    "api/dask": _importable("funnelkit.dask") and (DOCS / "scale-out.md").is_file(),
}
MISSING_DOCS = sorted(doc for doc, present in OPTIONAL_DOCS.items() if not present)


def _drop_missing_toc_entries(app, docname, source):
    """Remove the toctree lines (written as absolute names, ``/api/dask``) of missing
    optional pages."""
    if MISSING_DOCS:
        missing = {f"/{doc}" for doc in MISSING_DOCS}
        lines = source[0].splitlines(keepends=True)
        source[0] = "".join(line for line in lines if line.strip() not in missing)


# --------------------------------------------------------------------------- notebooks
# The example notebooks live in notebooks/ (run them there); the docs show copies with
# their stored outputs.
EXAMPLES = DOCS / "examples"
EXAMPLES.mkdir(exist_ok=True)
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    dest = EXAMPLES / nb.name
    if not dest.exists() or dest.read_bytes() != nb.read_bytes():
        shutil.copyfile(nb, dest)

# --------------------------------------------------------------------------- sources
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "README.md",
    *[f"{doc}.*" for doc in MISSING_DOCS],
]
templates_path = ["_templates"]

# --------------------------------------------------------------------------- myst / myst-nb
myst_enable_extensions = ["colon_fence", "deflist"]  # no math: MathJax would need the network
myst_heading_anchors = 3
# "cache" keeps the executed pages between builds, but jupyter-cache's SQLite store is not
# safe for Sphinx's parallel reading (``-j``): processes race on its records ("Notebook file
# does not exist for cache record"). A parallel build executes every page afresh instead
# (see ``_execution_mode`` below).
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_excludepatterns = ["examples/*"]  # shown with stored outputs
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "warn"  # a warning printed by a page's code fails the -W build

# --------------------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_mock_imports = _MOCK
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --------------------------------------------------------------------------- chart pictures
# The API page of each chart (``docs/_templates/autosummary/function.rst``) shows it drawn
# on the bundled sample, rendered at build time by matplotlib's plot directive into
# ``_build/plot_directive`` (nothing is written to the source tree). A chart not listed here
# is drawn as ``fk.plot.<name>(log)``. ``docs/gallery.md`` shows every chart on more logs.
PLOT_CALLS = {
    "survival": 'fk.plot.survival(log, stage="Proposal", by="team")',
    "key_stages": 'fk.plot.key_stages(log, by="team")',
    "segments": 'fk.plot.segments(log, by="team")',
    "incidence": 'fk.plot.incidence(log, "Demo")',
    # the chart reads the point forecasts: the model-error bootstrap would not change it
    "calibration": 'fk.plot.calibration(backtest(log, horizon="60D", n_boot=0))',
    "waterfall": "fk.plot.waterfall(log.with_history(fk.datasets.load_sample_history(), "
    '**fk.datasets.SAMPLE_HISTORY_KWARGS), "2025-03-31", closing=("2025-04-01", "2025-06-30"))',
    "slippage": "fk.plot.slippage(log.with_history(fk.datasets.load_sample_history(), "
    "**fk.datasets.SAMPLE_HISTORY_KWARGS))",
}
autosummary_context = {"plot_calls": PLOT_CALLS}
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 96)]

# --------------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"funnelkit {version}"
html_static_path = ["_static"]
html_css_files = ["funnelkit.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"getting-started": [], "changelog": [], "gallery": [], "gallery-bpic": []}
html_context = {"default_mode": "light"}

# no network at build time
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}


def _execution_mode(app, config):
    """Execute the pages without the shared jupyter-cache store in a parallel build."""
    if app.parallel > 1 and config.nb_execution_mode == "cache":
        config.nb_execution_mode = "force"


def setup(app):
    app.connect("config-inited", _execution_mode)
    app.connect("source-read", _drop_missing_toc_entries)
