"""Command line: ``funnelkit validate ...`` (and ``python -m funnelkit``).

The CLI holds no analysis logic: it maps options to the library's calls. Exit codes:
0 ok, 1 analysis error, 2 bad input or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from pyarrow import ArrowException

from ._version import __version__
from .errors import EventLogError

EXIT_OK, EXIT_ANALYSIS, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # usage errors: one line, exit 2 (argparse's own convention too)
        self.exit(EXIT_INPUT, f"funnelkit: error: {message}\n")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help="event log: .csv, .parquet or a folder of Parquet")
    p.add_argument("--sample", action="store_true", help="use the bundled sample log")
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
    p.add_argument("--errors", choices=["raise", "drop"], default="raise")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="funnelkit", description="Sales-stage analytics from event logs.")
    parser.add_argument("--version", action="version", version=f"funnelkit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    v = sub.add_parser("validate", help="check an event log and print its quality report")
    _add_input_options(v)
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _log_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for name in ("deal", "stage", "time", "amount", "as_of", "stale_after"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    for name in ("stages", "won", "lost", "attrs"):
        val = _names(getattr(args, name))
        if val is not None:
            kw[name] = val
    kw["errors"] = args.errors
    return kw


def load_log(args: argparse.Namespace):
    """The EventLog the options describe (the bundled sample with ``--sample``)."""
    from . import datasets
    from .io import read_events
    from .log import EventLog

    kw = _log_kwargs(args)
    if args.sample:
        if args.input:
            raise EventLogError("pass either INPUT or --sample, not both")
        return EventLog(datasets.load_sample(), **{**datasets.SAMPLE_KWARGS, **kw})
    if not args.input:
        raise EventLogError("missing INPUT (a .csv, .parquet or folder), or pass --sample")
    missing = [f"--{n}" for n in ("deal", "stage", "time") if n not in kw]
    if missing:
        raise EventLogError(f"missing {', '.join(missing)}: name the columns of INPUT")
    return read_events(args.input, **kw)


def _cmd_validate(args: argparse.Namespace) -> int:
    log = load_log(args)
    q = log.quality
    if args.json:
        print(json.dumps({r.item: int(r.count) for r in q.to_frame().itertuples()}, indent=2))
    else:
        print(q)
    return EXIT_OK


def one_line(exc: BaseException) -> str:
    """A one-line message: the summary, plus the first detail when the summary ends in ':'."""
    lines = [line.strip(" -") for line in str(exc).splitlines() if line.strip()]
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
        return {"validate": _cmd_validate}[args.command](args)
    except (EventLogError, OSError, ArrowException) as exc:
        print(f"funnelkit: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        print(f"funnelkit: analysis failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ANALYSIS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
