"""Command line: ``funnelkit validate ...`` and ``funnelkit report ...`` (and ``python -m funnelkit``).

The CLI holds no analysis logic: it maps options (and an optional TOML config file) to
the library's calls. A config file holds the options as keys (``deal``, ``stage``, ``time``,
``stages``, ``won``, ``lost``, ``amount``, ``attrs``, ``as_of``, ``stale_after``, ``errors``,
``by``, ``freq``, ``period``, ``visit_attrs``, ``where``, ``created``, ``within``,
``calendar``, ``holidays``; lists as TOML arrays or comma-separated strings), plus a
``[stage_map]`` table (raw name → stage) and a ``[key_stages]`` table of
:meth:`EventLog.key_stages` keywords (``n_boot``, ``alpha``, ...); options given on the
command line override it, and an unknown key is a usage error. Exit codes: 0 ok, 1 analysis error, 2 bad input or usage (one line on
stderr naming the column, file or option; no traceback).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyarrow import ArrowException

from ._version import __version__
from .errors import EventLogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXIT_OK, EXIT_ANALYSIS, EXIT_INPUT = 0, 1, 2

#: config keys holding one name / value, and those holding a list of names
_SCALAR_KEYS = ("deal", "stage", "time", "amount", "as_of", "stale_after", "errors")
_LIST_KEYS = ("stages", "won", "lost", "attrs", "visit_attrs", "holidays")
#: scoping: filter the deals, conversion windows, business days
_SCOPE_KEYS = ("where", "created", "within", "calendar")
_REPORT_KEYS = ("by", "freq", "period", "csv", *_SCOPE_KEYS)
_TABLE_KEYS = ("stage_map", "key_stages")
CONFIG_KEYS = (*_SCALAR_KEYS, *_LIST_KEYS, *_REPORT_KEYS, *_TABLE_KEYS)
#: ``[key_stages]`` keys the report sets itself
_KEY_STAGES_OWN = ("by", "period", "progress")


class UsageError(Exception):
    """Bad usage or configuration: exit 2 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # usage errors: one line, exit 2 (argparse's own convention too)
        self.exit(EXIT_INPUT, f"funnelkit: error: {message}\n")


def _names(value: Any, key: str = "") -> list[str] | None:
    """A list of names from ``"a,b"`` (command line) or a TOML string or list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"config key `{key}` must be a string or a list of strings; got {value!r}")


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help="event log: .csv, .parquet or a folder of Parquet")
    p.add_argument("--sample", action="store_true", help="use the bundled sample log")
    p.add_argument(
        "--config",
        help="TOML file holding the options below as keys (as_of, stale_after, ...; lists as "
        "TOML arrays), plus [stage_map] and [key_stages] tables; options given here override it",
    )
    p.add_argument("--deal", help="deal id column")
    p.add_argument("--stage", help="stage column")
    p.add_argument("--time", help="timestamp column")
    p.add_argument("--stages", help="comma-separated non-terminal stages in funnel order")
    p.add_argument("--won", help="won stage name(s), comma-separated")
    p.add_argument("--lost", help="lost stage name(s), comma-separated")
    p.add_argument("--amount", help="amount column")
    p.add_argument("--attrs", help="comma-separated columns carried per deal")
    p.add_argument("--as-of", dest="as_of", help="observation time (ISO 8601)")
    p.add_argument("--stale-after", dest="stale_after", help="e.g. 90D")
    p.add_argument("--errors", choices=["raise", "drop"], help="bad rows: raise (default) or drop")
    p.add_argument(
        "--visit-attrs", dest="visit_attrs", help="columns carried per visit (hand-offs)"
    )
    p.add_argument("--where", help="keep deals matching an expression, e.g. \"region == 'EMEA'\"")
    p.add_argument("--created", help="keep deals created in START,END (either may be empty)")
    p.add_argument("--within", help="conversion window: 30D, or per stage Demo=14D,Proposal=30D")
    p.add_argument("--calendar", choices=["business"], help="measure durations in business days")
    p.add_argument("--holidays", help="business-calendar holidays, comma-separated dates")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="funnelkit", description="Sales-stage analytics from event logs.")
    parser.add_argument("--version", action="version", version=f"funnelkit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    v = sub.add_parser("validate", help="check an event log and print its quality report")
    _add_input_options(v)
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    r = sub.add_parser(
        "report",
        help="write the full report: HTML page, tables (CSV, Parquet), charts, summary.json",
    )
    _add_input_options(r)
    r.add_argument("--by", help="carried attribute(s) to compare segments by, comma-separated")
    r.add_argument("--freq", help="cohort period of the trend, e.g. ME, QE (default QE)")
    r.add_argument("--period", help="date splitting deals into before and since (ISO 8601)")
    r.add_argument(
        "--csv",
        choices=["small", "all", "none"],
        help="tables also written as CSV (all are Parquet): small = all but the per-deal "
        "deals table (default), all, none",
    )
    r.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    r.add_argument("-o", "--output", required=True, help="report folder to write")
    return parser


# ---------------------------------------------------------------------------- options
def read_config(path: str) -> dict[str, Any]:
    """The options of a TOML config file, checked against :data:`CONFIG_KEYS`."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file `{path}` does not exist")
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file `{path}` is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file `{path}` is not UTF-8 text") from None
    cfg: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in CONFIG_KEYS:
            raise UsageError(
                f"config file `{path}`: unknown key `{key}`; known keys: {', '.join(CONFIG_KEYS)}"
            )
        cfg[name] = _config_value(name, value, path)
    return cfg


def _config_value(name: str, value: Any, path: str) -> Any:
    if name == "within" and isinstance(value, dict):  # [within] Demo = "14D"
        return {str(k): str(v) for k, v in value.items()}
    if name == "created" and isinstance(value, list):  # created = ["2025-01-01", ""]
        return [v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v) for v in value]
    if name in _TABLE_KEYS:
        if not isinstance(value, dict):
            raise UsageError(f"config file `{path}`: `{name}` must be a table ([{name}])")
        if name == "stage_map" and not all(isinstance(v, str) for v in value.values()):
            raise UsageError(f"config file `{path}`: `stage_map` values must be stage names")
        if name == "key_stages":
            from .log import EventLog

            allowed = set(inspect.signature(EventLog.key_stages).parameters) - {"self"}
            allowed -= set(_KEY_STAGES_OWN)
            for k in value:
                if k not in allowed:
                    raise UsageError(
                        f"config file `{path}`: unknown key `key_stages.{k}`; known keys: "
                        f"{', '.join(sorted(allowed))}"
                    )
        return dict(value)
    if name in _LIST_KEYS or name == "by":
        return _names(value, name)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):  # TOML dates
        return value.isoformat()
    if not isinstance(value, str):
        raise UsageError(f"config file `{path}`: `{name}` must be a string; got {value!r}")
    if name == "errors" and value not in ("raise", "drop"):
        raise UsageError(
            f"config file `{path}`: `errors` must be 'raise' or 'drop'; got {value!r}"
        )
    if name == "csv" and value not in ("small", "all", "none"):
        raise UsageError(
            f"config file `{path}`: `csv` must be 'small', 'all' or 'none'; got {value!r}"
        )
    return value


def options(args: argparse.Namespace) -> dict[str, Any]:
    """Config file values overridden by the command line's (names as in the config)."""
    cfg = read_config(args.config) if args.config else {}
    for name in (*_SCALAR_KEYS, *_LIST_KEYS, *_REPORT_KEYS):
        value = getattr(args, name, None)
        if value is not None:
            cfg[name] = _names(value) if name in _LIST_KEYS or name == "by" else value
    return cfg


def _log_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    kw = {k: opts[k] for k in (*_SCALAR_KEYS, *_LIST_KEYS, "stage_map") if k in opts}
    holidays = kw.pop("holidays", None)
    if opts.get("calendar") or holidays:
        from .businessdays import BusinessCalendar

        kw["calendar"] = BusinessCalendar(holidays=holidays or ())
    # a segment column must be carried to compare by it
    by = [b for b in opts.get("by") or [] if b not in (kw.get("attrs") or [])]
    if by:
        kw["attrs"] = [*(kw.get("attrs") or []), *by]
    kw.setdefault("errors", "raise")
    return kw


def within_option(value: Any) -> Any:
    """``"30D"`` → ``"30D"``; ``"Demo=14D,Proposal=30D"`` (or a TOML table) → a dict."""
    if value is None or isinstance(value, dict):
        return value
    text = str(value)
    if "=" not in text:
        return text
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise UsageError(f"--within {text!r}: use 30D or Stage=14D,Other=30D")
    return {k.strip(): v.strip() for k, v in pairs}


def scoped(log: Any, opts: dict[str, Any]) -> Any:
    """The log filtered by ``where`` / ``created`` (see :meth:`EventLog.filter`)."""
    created = opts.get("created")
    if created is not None:
        parts = created if isinstance(created, list) else str(created).split(",")
        if len(parts) != 2:
            raise UsageError(f"--created {created!r}: use START,END (either may be empty)")
        created = tuple(p.strip() or None for p in parts)
    if opts.get("where") is None and created is None:
        return log
    return log.filter(where=opts.get("where"), created=created)


def load_log(args: argparse.Namespace, opts: dict[str, Any] | None = None):
    """The EventLog the options describe (the bundled sample with ``--sample``)."""
    from . import datasets
    from .io import read_events
    from .log import EventLog

    kw = _log_kwargs(options(args) if opts is None else opts)
    if args.sample:
        if args.input:
            raise UsageError("pass either INPUT or --sample, not both")
        attrs = [*datasets.SAMPLE_KWARGS["attrs"], *kw.pop("attrs", [])]
        sample_kw = {**datasets.SAMPLE_KWARGS, **kw, "attrs": list(dict.fromkeys(attrs))}
        return EventLog(datasets.load_sample(), **sample_kw)
    if not args.input:
        raise UsageError("missing INPUT (a .csv, .parquet or folder), or pass --sample")
    missing = [f"--{n}" for n in ("deal", "stage", "time") if n not in kw]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: name the columns of INPUT")
    return read_events(args.input, **kw)


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    if getattr(args, "quiet", False):
        return lambda msg: None
    return lambda msg: print(f"funnelkit: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- commands
def _cmd_validate(args: argparse.Namespace) -> int:
    opts = options(args)
    log = scoped(load_log(args, opts), opts)
    q = log.quality
    if args.json:
        print(json.dumps({r.item: int(r.count) for r in q.to_frame().itertuples()}, indent=2))
    else:
        print(q)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    if "matplotlib.pyplot" not in sys.modules:  # files only: no window, no display needed
        import matplotlib

        matplotlib.use("Agg")
    from .report import build_report

    say = _say(args)
    opts = options(args)
    say("reading…")
    log = scoped(load_log(args, opts), opts)
    report = build_report(
        log,
        by=opts.get("by"),
        freq=opts.get("freq"),
        period=opts.get("period"),
        key_kwargs=opts.get("key_stages"),
        within=within_option(opts.get("within")),
        progress=say,
    )
    out = report.save(args.output, progress=say, csv=opts.get("csv", "small"))
    say(f"wrote {out / 'report.html'} ({len(report.tables)} tables, {len(report.charts)} charts)")
    return EXIT_OK


def one_line(exc: BaseException) -> str:
    """A one-line message: the summary, plus the first detail when the summary ends in ':'."""
    lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
        if len(lines) > 3:
            text += f" (and {len(lines) - 3} more problems)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``funnelkit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        return {"validate": _cmd_validate, "report": _cmd_report}[args.command](args)
    except (UsageError, EventLogError, OSError, ArrowException) as exc:
        print(f"funnelkit: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        print(
            f"funnelkit: analysis failed: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr
        )
        return EXIT_ANALYSIS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
