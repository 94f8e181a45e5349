"""The chart gallery and the charts' API pictures cover every chart, and the code behind
the pictures draws without a warning.

``docs/gallery.md`` draws every chart of :mod:`funnelkit.plot` on three logs, and each
chart's API page shows it drawn on the bundled sample (``docs/_templates/autosummary/
function.rst``: a ``.. plot::`` whose call is ``PLOT_CALLS[name]`` of ``docs/conf.py``, or
``fk.plot.<name>(log)``). The docs build (``.ci/run``) executes both, with warnings as
errors for the gallery, but matplotlib's plot directive only prints a Python warning, so
the API pictures' code is run here, with warnings as errors. Needs no docs extra.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import funnelkit.plot

DOCS = Path(__file__).resolve().parents[1] / "docs"
CHARTS = sorted(funnelkit.plot.__all__)
LOGS = ("sample", "crm", "zh")  # the gallery's three logs


def _read(path: str) -> str:
    return (DOCS / path).read_text(encoding="utf-8")


def _plot_calls() -> dict[str, str]:
    """``PLOT_CALLS`` of docs/conf.py, read without running conf.py."""
    for node in ast.parse(_read("conf.py")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PLOT_CALLS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("docs/conf.py defines no PLOT_CALLS")


def _picture_code(name: str) -> str:
    """The code the API page of chart ``name`` runs, as the template renders it."""
    template = _read("_templates/autosummary/function.rst")
    block = template[template.index(".. plot::") : template.index("{% endif %}")]
    code_lines = [line for line in block.splitlines()[1:] if not line.lstrip().startswith(":")]
    call = _plot_calls().get(name, f"fk.plot.{name}(log)")
    return textwrap.dedent("\n".join(code_lines)).replace("{{ call }}", call)


def test_every_chart_has_an_api_page():
    text = _read("api/index.rst")
    section = text[text.index(".. currentmodule:: funnelkit.plot") : text.index("\nDatasets\n")]
    assert sorted(re.findall(r"^   (\w+)$", section, flags=re.M)) == CHARTS


def test_the_gallery_draws_every_chart_on_every_log():
    text = _read("gallery.md")
    assert "\ngallery\n" in _read("index.md")  # in the site's table of contents
    missing = [
        (name, log)
        for name in CHARTS
        for log in LOGS
        if not re.search(rf"fk\.plot\.{name}\((backtest\()?{log}\b", text)
    ]
    assert missing == []
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert [h.lower().replace(" ", "_") for h in headings[: len(CHARTS)]] == sorted(
        CHARTS, key=lambda n: text.index(f"{{func}}`funnelkit.plot.{n}`")
    )


def test_the_api_pictures_name_real_charts():
    assert set(_plot_calls()) <= set(CHARTS)
    code = _picture_code("funnel")
    assert "fk.datasets.load_sample()" in code and code.rstrip().endswith("fk.plot.funnel(log)")


@pytest.mark.slow
@pytest.mark.parametrize("name", CHARTS)
def test_the_api_picture_draws_without_a_warning(name):
    code = _picture_code(name)
    *setup, last = code.rstrip().splitlines()
    namespace: dict = {}
    plt.close("all")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec("\n".join(setup), namespace)
            drawn = eval(last, namespace)
            fig = drawn if isinstance(drawn, Figure) else drawn.figure
            fig.canvas.draw()
        assert isinstance(drawn, Axes | Figure)
        assert plt.get_fignums() == [fig.number]  # the one picture the page shows
        # panels may be inset Axes of the chart's Axes (key_stages, survival)
        every = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
        assert any(a.get_children() and a.has_data() for a in every)
    finally:
        plt.close("all")
