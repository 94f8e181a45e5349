"""The report's words: one string catalogue per language, and how numbers read in it.

Each language is a TOML file beside this module (``en.toml``, ``zh.toml``): tables of
strings with ``{name}`` fields, filled by :meth:`Lang.t` with values already formatted by
this module (numbers, percents, amounts, dates, durations in the language's way). Another
language is another file with the same keys (a test checks that every file has every key
of ``en.toml``). Chart texts are translated after drawing, by exact text (``[chart]``) or
by pattern (``[[chart_pattern]]``), so the plotting functions stay language-free.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

import pandas as pd

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: the languages with a catalogue
LANGS = ("en", "zh")


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@functools.cache
def raw(code: str) -> dict[str, Any]:
    """The catalogue of language ``code`` as read from its TOML file (nested)."""
    text = resources.files(__name__).joinpath(f"{code}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load(code: str) -> Lang:
    """The :class:`Lang` of ``code`` (one of :data:`LANGS`)."""
    if code not in LANGS:
        raise ValueError(f"unknown language {code!r}; one of {list(LANGS)}")
    return _load(code)


@functools.cache
def _load(code: str) -> Lang:
    return Lang(code, raw(code))


class Lang:
    """One language's strings and number formats."""

    def __init__(self, code: str, catalogue: Mapping[str, Any]) -> None:
        cat = dict(catalogue)
        self.code = code
        self.patterns = [
            (re.compile(p["re"], re.S), str(p["to"])) for p in cat.pop("chart_pattern", [])
        ]
        self.note_patterns = [
            (re.compile(p["re"], re.S), str(p["to"])) for p in cat.pop("note_pattern", [])
        ]
        self.chart_words = dict(cat.pop("chart_words", {}))
        self.strings = _flat(cat)
        self.fmt = {k[4:]: v for k, v in self.strings.items() if k.startswith("fmt.")}
        self.html_lang = str(self.strings.get("fmt.html_lang", code))
        self.chart_exact = {
            k[6:]: v for k, v in self.strings.items() if k.startswith("chart.") and k[6:]
        }

    # ------------------------------------------------------------------ strings
    def t(self, key: str, /, **fields: Any) -> str:
        """The string ``key`` with its ``{fields}`` filled (values as given: format them
        first with :meth:`num`, :meth:`pct`...)."""
        text = self.strings[key]
        return str(text).format(**fields) if fields else str(text)

    def has(self, key: str) -> bool:
        return key in self.strings

    def word(self, group: str, key: Any, default: str | None = None) -> str:
        """``[group] key`` when the catalogue has it, else ``default`` (else ``key``)."""
        k = f"{group}.{key}"
        if k in self.strings:
            return str(self.strings[k])
        return str(key) if default is None else default

    # ------------------------------------------------------------------ numbers
    def num(self, v: Any, digits: int = 0) -> str:
        """A number with thousands separators: ``12,345`` / ``0.5``; '' when missing."""
        if _missing(v):
            return ""
        return f"{float(v):,.{digits}f}" if digits else f"{round(float(v)):,}"

    def pct(self, v: Any, digits: int = 1) -> str:
        """A share as a percent: ``11.1%``."""
        if _missing(v):
            return ""
        return self.t("fmt.percent", v=f"{float(v) * 100:.{digits}f}")

    def pts(self, v: Any, digits: int = 1) -> str:
        """A difference of shares in percentage points: ``+1.4 pts``."""
        if _missing(v):
            return ""
        x = float(v) * 100
        sign = "+" if x > 0 else ("−" if x < 0 else "±")
        return self.t("fmt.points", v=f"{sign}{abs(x):.{digits}f}")

    def money(self, v: Any, currency: str | None = None) -> str:
        """An amount, with the currency when one is given: ``$35,743`` / ``35,743 EUR``;
        large amounts shortened (``1.2M`` / ``120万``) only through :meth:`money_short`."""
        if _missing(v):
            return ""
        f = float(v)
        text = f"{f:,.0f}" if abs(f) >= 100 else f"{f:,.2f}"
        return self._with_currency(text, currency)

    def money_short(self, v: Any, currency: str | None = None) -> str:
        """An amount rounded for a sentence or a card: ``1.2M``, ``35.7k`` (en),
        ``120.5万`` (zh)."""
        if _missing(v):
            return ""
        f = float(v)
        text = None
        for step, div, unit in self.fmt.get("short_units", []):
            if abs(f) >= float(step):
                x = f / float(div)
                text = f"{x:,.1f}{unit}" if abs(x) < 100 else f"{x:,.0f}{unit}"
                break
        if text is None:
            text = f"{f:,.0f}"
        return self._with_currency(text, currency)

    def _with_currency(self, text: str, currency: str | None) -> str:
        if not currency:
            return text
        sign = "−" if text.startswith("-") else ""
        text = text.lstrip("-")
        if len(currency) == 1 or not currency.isalpha():  # a symbol: $, €, ¥, R$
            return f"{sign}{currency}{text}"
        return f"{sign}{text} {currency}"

    def days(self, v: Any, digits: int = 1) -> str:
        """A number of days with its unit: ``14.1 days``."""
        if _missing(v):
            return ""
        x = float(v)
        n = f"{x:,.{digits}f}" if digits else f"{round(x):,}"
        key = "fmt.day" if n in ("1", "1.0") else "fmt.days"
        return self.t(key, v=n)

    def duration(self, v: Any) -> str:
        """A duration, rounded to a readable unit: ``14.1 days``, ``3.2 h``, ``12 min``."""
        if _missing(v):
            return ""
        seconds = pd.Timedelta(v).total_seconds()
        if abs(seconds) >= 2 * 86_400:
            return self.days(seconds / 86_400)
        if abs(seconds) >= 3_600:
            return self.t("fmt.hours", v=f"{seconds / 3_600:.1f}")
        if abs(seconds) >= 60:
            return self.t("fmt.minutes", v=f"{seconds / 60:.0f}")
        return self.t("fmt.seconds", v=f"{seconds:.0f}")

    def date(self, v: Any) -> str:
        """A date for readers: ``1 Apr 2025`` / ``2025年4月1日``."""
        if _missing(v):
            return ""
        t = pd.Timestamp(v)
        months = self.fmt["months"]
        return self.t("fmt.date", d=t.day, m=months[t.month - 1], mm=t.month, y=t.year)

    def when(self, v: Any) -> str:
        """A moment: the date, and the time in UTC unless it is midnight."""
        if _missing(v):
            return ""
        t = pd.Timestamp(v)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC")
        if t == t.normalize():
            return self.date(t)
        zone = " UTC" if t.tzinfo is not None else ""
        return self.t("fmt.datetime", date=self.date(t), time=f"{t:%H:%M}{zone}")

    def period(self, label: Any, start: Any, end: Any) -> str:
        """A period by its label (``2025Q2``) in words: ``Q2 2025`` / ``2025年第2季度``;
        other lengths by their first and last day."""
        text = str(label)
        m = re.fullmatch(r"(\d{4})Q([1-4])", text)
        if m:
            return self.t("fmt.quarter", y=m[1], q=m[2])
        m = re.fullmatch(r"(\d{4})-(\d\d)", text)
        if m:
            return self.t("fmt.month", y=m[1], m=self.fmt["months"][int(m[2]) - 1], mm=int(m[2]))
        if re.fullmatch(r"\d{4}", text):
            return self.t("fmt.year", y=text)
        if start is None or end is None:
            return text
        last = pd.Timestamp(end) - pd.Timedelta(1, "ns")
        return self.t("fmt.range", a=self.date(start), b=self.date(last))

    # ------------------------------------------------------------------ charts
    def chart_text(self, text: str) -> str:
        """A chart's text in this language: exact match, else patterns, else words."""
        if not text or self.code == "en":
            return text
        if text in self.chart_exact:
            return str(self.chart_exact[text])
        out = text
        for rx, to in self.patterns:
            out = rx.sub(to, out)
        for en, word in self.chart_words.items():
            out = re.sub(rf"(?<![A-Za-z]){re.escape(en)}(?![A-Za-z])", word, out)
        return out


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(pd.isna(v)) or not math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
