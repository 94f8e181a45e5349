"""Command line: ``funnelkit validate``, ``report`` and ``monitor`` (and ``python -m funnelkit``).

The CLI holds no analysis logic: it maps options (and an optional TOML config file) to
the library's calls. A config file holds the options as keys (``deal``, ``stage``, ``time``,
``stages``, ``won``, ``lost``, ``amount``, ``attrs``, ``as_of``, ``stale_after``, ``errors``,
``date_format``, ``encoding``, ``status``, ``closed_at``, ``created_at``,
``by``, ``freq``, ``period``, ``visit_attrs``, ``where``, ``created``, ``within``,
``calendar``, ``holidays``, ``post_sale``, and for the report ``csv``, ``charts``, ``lang``,
``currency``; lists as TOML arrays or comma-separated strings), plus a ``[stage_map]`` table
(raw name → stage), a ``[milestones]`` table (stage → date column of a wide export; also
``milestone = {Engaging = "engage_date"}``), ``[phases.NAME]`` tables (stage → phase;
``--phases NAME`` reads the log per phase), an ``[alerts]`` table (``monitor``) and a
``[key_stages]`` table of :meth:`EventLog.key_stages` keywords (``n_boot``, ``alpha``, ...);
options given
on the command line override it, and an unknown key is a usage error. ``--milestone``
(or the ``[milestones]`` table) selects the wide shape (:meth:`EventLog.from_milestones`).
Times (``as_of``, ``period``, ``created``, ``holidays``: TOML dates or datetimes, or ISO 8601
strings) must hold a date, and durations (``stale_after``, ``within``) a unit (``"90D"``): a
TOML time such as ``12:00:00`` or a bare ``90`` is a usage error, not today at noon or 90
nanoseconds. A ``where`` expression is parsed by funnelkit's own grammar (see
:meth:`EventLog.filter`), never run.
Exit codes: 0 ok, 1 analysis error, 2 bad input or usage (on stderr, in the words of the
command line: the column, file or option, the count per reason; no traceback), 130
interrupted (Ctrl-C; one line saying what was written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyarrow import ArrowException

from ._version import __version__
from .errors import EmptyLogError, EventLogError, InvalidParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXIT_OK, EXIT_ANALYSIS, EXIT_INPUT = 0, 1, 2
#: ``funnelkit monitor``: an alert fired (alerts.json says which)
EXIT_ALERT = 3
#: interrupted (Ctrl-C): 128 + SIGINT, the shells' convention
EXIT_INTERRUPTED = 130

#: config keys holding one name / value, and those holding a list of names
_SCALAR_KEYS = (
    "deal",
    "stage",
    "time",
    "amount",
    "as_of",
    "stale_after",
    "errors",
    "date_format",
    "encoding",
)
#: wide exports (one row per deal): the milestone dates, status and its dates
_WIDE_KEYS = ("status", "closed_at", "created_at")
_LIST_KEYS = ("stages", "won", "lost", "attrs", "visit_attrs", "holidays", "post_sale")
#: scoping: filter the deals, conversion windows, business days
_SCOPE_KEYS = ("where", "created", "within", "calendar")
_REPORT_KEYS = ("by", "freq", "period", "csv", "charts", "lang", "currency", *_SCOPE_KEYS)
_TABLE_KEYS = ("stage_map", "key_stages", "milestones", "alerts", "phases")
#: keys of the ``[alerts]`` table (``funnelkit monitor``)
_ALERT_KEYS = ("weeks", "baseline", "alpha", "thresholds")
CONFIG_KEYS = (*_SCALAR_KEYS, *_WIDE_KEYS, *_LIST_KEYS, *_REPORT_KEYS, *_TABLE_KEYS)
#: ``[key_stages]`` keys the report sets itself
_KEY_STAGES_OWN = ("by", "period", "progress")
#: keys holding a point in time, one or two (created), or days (holidays)
_TIME_KEYS = ("as_of", "period")
#: a time given as text must hold a date (ISO 8601): no bare "12:00", "now" or "today"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")
#: a duration without a unit ("90", "1.5") that pandas would read as nanoseconds
_UNITLESS = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


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
    p.add_argument(
        "input",
        nargs="?",
        help="the CRM export: .csv, .parquet or a folder of Parquet (required unless --sample)",
    )
    p.add_argument("--sample", action="store_true", help="use the bundled sample log")
    p.add_argument(
        "--sql",
        metavar="QUERY",
        help="read from a database instead of INPUT: a query (SELECT ...) or a table name; "
        "with --db",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="the database of --sql: postgresql://user:pw@host/db, sqlite:///file.db, "
        "duckdb:///file.duckdb or any SQLAlchemy URL (a password is better kept in "
        '~/.pgpass or the environment: --db "$DATABASE_URL")',
    )
    p.add_argument(
        "--config",
        help="TOML file holding the options below as keys (as_of, stale_after, ...; lists as "
        "TOML arrays), plus [stage_map], [milestones], [phases.NAME] and [key_stages] tables; "
        "options given here override it",
    )
    p.add_argument("--deal", help="deal id column (required with INPUT)")
    p.add_argument("--stage", help="stage column (required with INPUT, unless --milestone)")
    p.add_argument("--time", help="timestamp column (required with INPUT, unless --milestone)")
    p.add_argument("--stages", help="comma-separated non-terminal stages in funnel order")
    p.add_argument("--won", help="won stage name(s), comma-separated")
    p.add_argument("--lost", help="lost stage name(s), comma-separated")
    p.add_argument("--amount", help="amount column")
    p.add_argument("--attrs", help="comma-separated columns carried per deal")
    p.add_argument("--as-of", dest="as_of", help="observation time (ISO 8601)")
    p.add_argument("--stale-after", dest="stale_after", help="e.g. 90D")
    p.add_argument(
        "--post-sale",
        dest="post_sale",
        help="stages entered after a win (e.g. Delivery,After-sales), comma-separated: their "
        "events do not reopen the deal and are counted apart",
    )
    p.add_argument("--errors", choices=["raise", "drop"], help="bad rows: raise (default) or drop")
    p.add_argument("--encoding", help="text encoding of a CSV INPUT, e.g. latin-1 (default utf-8)")
    p.add_argument(
        "--visit-attrs", dest="visit_attrs", help="columns carried per visit (hand-offs)"
    )
    p.add_argument("--where", help="keep deals matching an expression, e.g. \"region == 'EMEA'\"")
    p.add_argument("--created", help="keep deals created in START,END (either may be empty)")
    p.add_argument("--within", help="conversion window: 30D, or per stage Demo=14D,Proposal=30D")
    p.add_argument("--calendar", choices=["business"], help="measure durations in business days")
    p.add_argument("--holidays", help="business-calendar holidays, comma-separated dates")
    p.add_argument(
        "--date-format",
        dest="date_format",
        metavar="FORMAT",
        help="strftime format of dates written as text, e.g. %%d-%%m-%%y for 31-01-25 "
        "(default ISO 8601; day-first dates then fail)",
    )
    w = p.add_argument_group(
        "wide exports (one row per deal; --milestone selects this shape, with --deal)"
    )
    w.add_argument(
        "--milestone",
        action="append",
        metavar="STAGE=COLUMN",
        help="the column holding the date the deal entered STAGE; repeat it, in funnel order",
    )
    w.add_argument("--status", metavar="COLUMN", help="column of the current stage or outcome")
    w.add_argument(
        "--closed-at",
        dest="closed_at",
        metavar="COLUMN",
        help="column of the date of the won/lost outcome named by --status",
    )
    w.add_argument(
        "--created-at",
        dest="created_at",
        metavar="COLUMN",
        help="column of the creation date: the entry of the first stage",
    )


def _add_state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="FOLDER",
        help="a saved log (log.save): with an input (INPUT, --sample, --sql), its events are "
        "added to the state (created on the first run) and the state is saved back after "
        "the output is written; without one, the state is read as it is",
    )


EXIT_CODES = """\
exit codes:
  0  ok
  1  analysis failure (a bug or a computation that could not finish)
  2  bad input or usage: a missing file, column or option, invalid values
     (the message names the column and counts the rows per reason)
  3  (monitor) an alert fired: alerts.json lists it"""

_SHAPES = """\
input shapes:
  long   one row per stage change: --deal, --stage and --time name its columns
  wide   one row per deal (a CRM opportunity export): --deal, one --milestone
         STAGE=COLUMN per dated stage, optionally --status/--closed-at/--created-at"""

_VALIDATE_EXAMPLES = """\
examples:
  funnelkit validate --sample
  funnelkit validate history.csv --deal OpportunityId --stage StageName \\
      --time CreatedDate --won "Closed Won" --lost "Closed Lost"
  funnelkit validate opportunities.csv --deal opportunity_id \\
      --milestone Engaging=engage_date --status deal_stage --closed-at close_date \\
      --stages Prospecting,Engaging --won Won --lost Lost --date-format %d-%m-%y \\
      --errors drop
  funnelkit validate history.parquet --config funnel.toml --json

required: INPUT (or --sample); with INPUT, --deal and either --stage/--time (long)
or --milestone (wide), on the command line or in --config."""

_REPORT_EXAMPLES = """\
examples:
  funnelkit report --sample --by team -o report
  funnelkit report history.parquet --config funnel.toml --period 2025-01-01 -o report
  funnelkit report opportunities.csv --deal opportunity_id \\
      --milestone Engaging=engage_date --status deal_stage --closed-at close_date \\
      --stages Prospecting,Engaging --won Won --lost Lost --date-format %d-%m-%y \\
      --errors drop --by sales_agent -o report

required: -o/--output, and INPUT (or --sample); with INPUT, --deal and either
--stage/--time (long) or --milestone (wide), on the command line or in --config."""


_MONITOR_EXAMPLES = """\
examples:
  funnelkit monitor --sample -o monitoring
  funnelkit monitor --sql "SELECT * FROM crm.deal_events" --db "$DATABASE_URL" \\
      --config funnel.toml -o /var/lib/funnel/alerts
  # cron: 0 7 * * 1  funnelkit monitor ... -o out || [ $? -eq 3 ] && mail -s alert ...

required: -o/--output, and INPUT (or --sample, or --sql with --db)."""


def _add_phases_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--phases",
        metavar="NAME",
        dest="phase_view",
        help="read the log per phase: the stages of the [phases.NAME] table of --config "
        '(stage = "phase") become the funnel\'s steps',
    )


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="funnelkit",
        description="Sales-stage analytics from CRM exports: validate an event log, or write "
        "a full report (HTML page, tables, charts, summary.json).",
        epilog=f"{_SHAPES}\n\nexamples:\n  funnelkit validate --sample\n"
        "  funnelkit report --sample --by team -o report\n"
        "  funnelkit report --help   (every option, and the wide-export examples)\n\n"
        f"{EXIT_CODES}",
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"funnelkit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    v = sub.add_parser(
        "validate",
        help="check an event log and print its quality report",
        description="Read an event log (long or wide), apply the validation rules and print "
        "its quality report: every row in, used or rejected per reason; deals by outcome.",
        epilog=f"{_SHAPES}\n\n{_VALIDATE_EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=raw,
    )
    _add_input_options(v)
    _add_phases_option(v)
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    r = sub.add_parser(
        "report",
        help="write the full report: HTML page, tables (CSV, Parquet), charts, summary.json",
        description="Read an event log (long or wide) and write the full report to a folder: "
        "report.html, tables/*.csv and *.parquet, charts/*.png and *.svg, summary.json.",
        epilog=f"{_SHAPES}\n\n{_REPORT_EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=raw,
    )
    _add_input_options(r)
    _add_phases_option(r)
    r.add_argument("--by", help="carried attribute(s) to compare segments by, comma-separated")
    r.add_argument("--freq", help="cohort period of the trend, e.g. ME, QE (default QE)")
    r.add_argument("--period", help="date splitting deals into before and since (ISO 8601)")
    r.add_argument(
        "--csv",
        choices=["small", "all", "none"],
        help="tables also written as CSV (all are Parquet): small = all but the per-deal "
        "deals table (default), all, none",
    )
    r.add_argument(
        "--charts",
        choices=["all", "none"],
        help="charts drawn and written: all (default) or none (the page, tables and "
        "summary.json only: a scheduled job that needs the numbers skips the drawing)",
    )
    r.add_argument(
        "--lang", choices=["en", "zh"], help="language of the page and charts (default en)"
    )
    r.add_argument(
        "--currency", metavar="CUR", help="amounts' currency: a symbol ($, €, ¥) or a code (EUR)"
    )
    _add_state_option(r)
    r.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    r.add_argument("-o", "--output", required=True, help="report folder to write (required)")
    m = sub.add_parser(
        "monitor",
        help="check the last complete week(s) against history; exit 3 when an alert fires",
        description="Read an event log and check its last complete week(s) against the weeks "
        "before (conversion drops, slower dwell, stalled deals, bad rows) and against the "
        "thresholds of an [alerts.thresholds] table in --config. Writes alerts.json and "
        "alerts.csv to the folder; exits 3 when an alert fires, for cron and Airflow.",
        epilog=f"{_SHAPES}\n\n{_MONITOR_EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=raw,
    )
    _add_input_options(m)
    _add_phases_option(m)
    m.add_argument("--weeks", type=int, help="complete weeks to check (default 1)")
    m.add_argument("--baseline", type=int, help="weeks of history to compare with (default 26)")
    m.add_argument(
        "--alpha", type=float, help="false-alert rate per rule, stage and week (default 0.01)"
    )
    _add_state_option(m)
    m.add_argument("-o", "--output", required=True, help="folder for alerts.json (required)")
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
        if name == "milestone":  # milestone = {Engaging = "engage_date"} reads naturally too
            name = "milestones"
        if name not in CONFIG_KEYS:
            raise UsageError(
                f"config file `{path}`: unknown key `{key}`; known keys: {', '.join(CONFIG_KEYS)}"
            )
        cfg[name] = _config_value(name, value, path)
    return cfg


def _option(name: str) -> str:
    """How the command line spells a config key."""
    return "--" + name.replace("_", "-")


def time_text(value: Any, label: str, *, empty: bool = False) -> str:
    """A TOML date / datetime or an ISO 8601 string as text holding a date.

    A TOML local time (``12:00:00``) or a string without a date (``"12:00"``, ``"now"``)
    would become a time *today*: a usage error naming ``label``. ``empty`` allows ``""``
    (an open end of ``created``).
    """
    if isinstance(value, dt.datetime | dt.date):  # TOML (offset or local) datetime, date
        return value.isoformat()
    if isinstance(value, dt.time):
        raise UsageError(
            f"{label} = {value.isoformat()} is a time of day without a date; give a date, "
            "e.g. 2025-06-30 or 2025-06-30T12:00:00"
        )
    if not isinstance(value, str):
        raise UsageError(
            f"{label} must be a date (a TOML date or an ISO 8601 string such as "
            f"'2025-06-30'); got {value!r}"
        )
    text = value.strip()
    if (empty and not text) or _ISO_DATE.match(text):
        return text
    raise UsageError(
        f"{label} = {value!r} holds no date; give an ISO 8601 date, e.g. 2025-06-30 or "
        "2025-06-30T12:00:00"
    )


def duration_text(value: Any, label: str) -> str:
    """A duration string with a unit (``"90D"``); a bare number is a usage error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise UsageError(f"{label} = {value!r} has no unit: give a unit, e.g. '{value}D'")
    if not isinstance(value, str):
        raise UsageError(
            f"{label} must be a duration with a unit, e.g. '90D' or '12h'; got {value!r}"
        )
    text = value.strip()
    if _UNITLESS.fullmatch(text):
        raise UsageError(f"{label} = {value!r} has no unit: give a unit, e.g. '{text}D'")
    return text


def _config_value(name: str, value: Any, path: str) -> Any:
    if name == "alerts":  # [alerts] weeks = 1, alpha = 0.01, [alerts.thresholds] ...
        if not isinstance(value, dict) or set(value) - set(_ALERT_KEYS):
            unknown = sorted(set(value) - set(_ALERT_KEYS)) if isinstance(value, dict) else []
            raise UsageError(
                f"config file `{path}`: `alerts` must be a table of "
                f"{', '.join(_ALERT_KEYS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        return dict(value)
    if name == "milestones":  # [milestones] Engaging = "engage_date", or a list of STAGE=COLUMN
        if isinstance(value, list):
            return milestone_option(_names(value, name) or [])
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise UsageError(
                f'config file `{path}`: `milestones` must be a table of stage = "date column"'
            )
        return {str(k): v for k, v in value.items()}
    label = f"config file `{path}`: `{name}`"
    if name in _TIME_KEYS:
        return time_text(value, label)
    if name == "stale_after":
        return duration_text(value, label)
    if name == "within":
        if isinstance(value, dict):  # [within] Demo = "14D"
            return {
                str(k): duration_text(v, f"config file `{path}`: `within.{k}`")
                for k, v in value.items()
            }
        return duration_text(value, label)
    if name == "created":  # created = [2025-01-01, ""] or "2025-01-01,"
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, list) or len(parts) != 2:
            raise UsageError(
                f'{label} must be [START, END] (dates; "" for an open end); got {value!r}'
            )
        return [time_text(v, label, empty=True) for v in parts]
    if name == "holidays" and isinstance(value, list):
        return [time_text(v, label) for v in value]
    if name == "holidays" and isinstance(value, dt.date | dt.time):
        return [time_text(value, label)]
    if name == "phases":  # [phases.decision] Lead = "need recognition", ...
        ok = isinstance(value, dict) and all(
            isinstance(m, dict) and m and all(isinstance(v, str) for v in m.values())
            for m in value.values()
        )
        if not ok:
            raise UsageError(
                f"config file `{path}`: `phases` must hold one table per mapping, "
                '[phases.NAME] with stage = "phase" lines (e.g. [phases.decision] '
                'Lead = "need recognition")'
            )
        return {str(k): {str(st): ph for st, ph in m.items()} for k, m in value.items()}
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
                _check_key_stages_type(k, value[k], path)
        return dict(value)
    if name in _LIST_KEYS or name == "by":
        names = _names(value, name)
        if name == "holidays" and names is not None:
            return [time_text(v, label) for v in names]
        return names
    if not isinstance(value, str):
        raise UsageError(f"config file `{path}`: `{name}` must be a string; got {value!r}")
    if name == "errors" and value not in ("raise", "drop"):
        raise UsageError(
            f"config file `{path}`: `errors` must be 'raise' or 'drop'; got {value!r}"
        )
    if name == "calendar" and value != "business":
        raise UsageError(f"config file `{path}`: `calendar` must be 'business'; got {value!r}")
    if name == "csv" and value not in ("small", "all", "none"):
        raise UsageError(
            f"config file `{path}`: `csv` must be 'small', 'all' or 'none'; got {value!r}"
        )
    if name == "lang" and value not in ("en", "zh"):
        raise UsageError(f"config file `{path}`: `lang` must be 'en' or 'zh'; got {value!r}")
    if name == "charts" and value not in ("all", "none"):
        raise UsageError(f"config file `{path}`: `charts` must be 'all' or 'none'; got {value!r}")
    return value


#: the TOML type of each ``[key_stages]`` key (the library then checks the value itself)
_KEY_STAGES_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "n_boot": ((int,), "an integer, e.g. n_boot = 200"),
    "seed": ((int,), "an integer, e.g. seed = 0"),
    "min_deals": ((int,), "an integer, e.g. min_deals = 30"),
    "alpha": ((int, float), "a number, e.g. alpha = 0.05"),
    "uplift": ((int, float), "a number, e.g. uplift = 0.1"),
    "signals": ((str, list), 'a signal name or a list of them, e.g. signals = ["leverage"]'),
    "benchmark": ((dict,), "a table of loss rates per stage, e.g. benchmark = {Demo = 0.3}"),
    "min_effect": ((dict,), "a table of thresholds per signal, e.g. min_effect = {stall = 0.15}"),
}


def _check_key_stages_type(key: str, value: Any, path: str) -> None:
    """A usage error when a ``[key_stages]`` value has the wrong TOML type."""
    types, expected = _KEY_STAGES_TYPES.get(key, ((object,), ""))
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise UsageError(
            f"config file `{path}`: `key_stages.{key}` must be {expected}; got {value!r}"
        )


def options(args: argparse.Namespace) -> dict[str, Any]:
    """Config file values overridden by the command line's (names as in the config)."""
    cfg = read_config(args.config) if args.config else {}
    for name in (*_SCALAR_KEYS, *_WIDE_KEYS, *_LIST_KEYS, *_REPORT_KEYS):
        value = getattr(args, name, None)
        if value is None:
            continue
        label = f"`{name}` ({_option(name)})"
        if name in _TIME_KEYS:
            value = time_text(value, label)
        elif name == "stale_after":
            value = duration_text(value, label)
        elif name == "holidays":
            value = [time_text(v, label) for v in _names(value) or []]
        elif name == "created":
            parts = value.split(",")
            if len(parts) != 2:
                raise UsageError(f"--created {value!r}: use START,END (either may be empty)")
            value = [time_text(v, label, empty=True) for v in parts]
        elif name in _LIST_KEYS or name == "by":
            value = _names(value)
        cfg[name] = value
    if getattr(args, "milestone", None):
        cfg["milestones"] = milestone_option(args.milestone)
    return cfg


def milestone_option(values: Sequence[str]) -> dict[str, str]:
    """``["Engaging=engage_date", ...]`` → ``{"Engaging": "engage_date", ...}`` (in order)."""
    out: dict[str, str] = {}
    for text in values:
        stage, sep, column = str(text).partition("=")
        if not sep or not stage.strip() or not column.strip():
            raise UsageError(f"--milestone {text!r}: use STAGE=COLUMN, e.g. Engaging=engage_date")
        if stage.strip() in out:
            raise UsageError(f"--milestone: stage {stage.strip()!r} is given twice")
        out[stage.strip()] = column.strip()
    return out


def _log_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    kw = {k: opts[k] for k in (*_SCALAR_KEYS, *_LIST_KEYS, "stage_map", "phases") if k in opts}
    if opts.get("milestones"):
        kw["stage_dates"] = opts["milestones"]
        kw.update({k: opts[k] for k in _WIDE_KEYS if k in opts})
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
        return duration_text(text, "`within` (--within)")
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise UsageError(f"--within {text!r}: use 30D or Stage=14D,Other=30D")
    return {
        k.strip(): duration_text(v.strip(), f"`within.{k.strip()}` (--within)") for k, v in pairs
    }


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

    opts = options(args) if opts is None else opts
    kw = _log_kwargs(opts)
    encoding = kw.pop("encoding", None)  # a reader option, not the log's
    wide = "stage_dates" in kw
    given = opts.keys()
    if wide:
        both = [f"--{n}" for n in ("stage", "time") if n in kw]
        if both:
            raise UsageError(
                f"{' and '.join(both)} name the columns of a long log; a wide export "
                "(--milestone) has one date column per stage: drop one or the other"
            )
        if "visit_attrs" in kw:
            raise UsageError("--visit-attrs needs a long log; a wide export has one row per deal")
        if "post_sale" in kw:
            raise UsageError(
                "post-sale stages (--post-sale) need a long log (one row per stage change); "
                "a wide export (--milestone) does not support them yet"
            )
    else:
        alone = [f"--{n.replace('_', '-')}" for n in _WIDE_KEYS if n in given]
        if alone:
            raise UsageError(
                f"{', '.join(alone)} describe a wide export: add --milestone STAGE=COLUMN "
                "for each dated stage"
            )
    sql, db = getattr(args, "sql", None), getattr(args, "db", None)
    if sql is not None or db is not None:
        if sql is None or db is None:
            raise UsageError("--sql and --db go together: the query (or table) and its database")
        if args.input or args.sample:
            raise UsageError("pass one input: INPUT, --sample, or --sql with --db")
        if wide:
            raise UsageError("--milestone reads a wide export from a file; --sql reads a long log")
        missing = [f"--{n}" for n in ("deal", "stage", "time") if n not in kw]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}: name the columns of the --sql result")
        from .sql import read_sql

        return read_sql(sql, db, **kw)
    if args.sample:
        if wide:
            raise UsageError("--milestone reads a wide export from INPUT; --sample is a long log")
        if args.input:
            raise UsageError("pass either INPUT or --sample, not both")
        attrs = [*datasets.SAMPLE_KWARGS["attrs"], *kw.pop("attrs", [])]
        sample_kw = {**datasets.SAMPLE_KWARGS, **kw, "attrs": list(dict.fromkeys(attrs))}
        return EventLog(datasets.load_sample(), **sample_kw)
    if not args.input:
        raise UsageError(
            "missing INPUT (a .csv, .parquet or folder), or pass --sample, or --sql with --db"
        )
    needed = ("deal",) if wide else ("deal", "stage", "time")
    missing = [f"--{n}" for n in needed if n not in kw]
    if missing:
        shape = "" if wide else " (or --milestone STAGE=COLUMN for a wide export)"
        raise UsageError(f"missing {', '.join(missing)}: name the columns of INPUT{shape}")
    if encoding is not None:
        kw["encoding"] = encoding
    return read_events(args.input, **kw)


def phase_view(log: Any, args: argparse.Namespace, opts: dict[str, Any]) -> Any:
    """The log per phase with ``--phases NAME`` (see :meth:`EventLog.by_phase`)."""
    name = getattr(args, "phase_view", None)
    if name is None:
        return log
    if not opts.get("phases"):
        raise UsageError(
            f"--phases {name}: the log has no phases; declare them in --config as a "
            f'[phases.{name}] table of stage = "phase" lines'
        )
    if name not in opts["phases"]:
        raise UsageError(
            f"--phases {name}: no [phases.{name}] table in --config; it declares "
            f"{', '.join(opts['phases'])}"
        )
    return log.by_phase(name)


def state_log(args: argparse.Namespace, opts: dict[str, Any]) -> Any:
    """The log of the input, scoped; with ``--state``: the state updated with the input's
    events (the input's log when the state does not exist yet), or the state alone when
    there is no input. :func:`save_state` saves it once the output is written."""
    folder = getattr(args, "state", None)
    if folder is None:
        return scoped(load_log(args, opts), opts)
    from . import state

    exists = Path(folder, state.MANIFEST).is_file()
    if not (args.input or args.sample or getattr(args, "sql", None)):
        if not exists:
            raise UsageError(
                f"--state {folder}: no saved state there; give an input (INPUT, --sample, "
                "or --sql with --db) to create it"
            )
        full = state.load(folder)
        _same_settings(full, opts, folder)
        args.state_log = None  # nothing new: the state stays as it is
    else:
        try:
            new = load_log(args, opts)
        except EmptyLogError:
            if not exists:
                raise
            # a day without new events: the state as it is (as of --as-of when given)
            full = state.load(folder)
            _same_settings(full, opts, folder)
            if opts.get("as_of") is not None:
                full = state.update(full, state.no_rows(full), opts["as_of"])
            args.state_log = None
            _say(args)(f"no new events in the input: the state in {folder} is kept as it was")
        else:
            full = state.update_saved(folder, new, as_of=opts.get("as_of")) if exists else new
            args.state_log = full
    return scoped(full, opts)


def _same_settings(log: Any, opts: dict[str, Any], folder: str) -> None:
    """Log options given beside ``--state`` without an input must be the state's."""
    from ._columns import to_duration

    for key in ("deal", "stage", "time", "stages", "won", "lost", "amount", "stale_after"):
        if key not in opts:
            continue
        given, saved = opts[key], log._settings[key]
        if key == "stale_after":
            same = saved is not None and to_duration(given, key) == to_duration(saved, key)
        else:
            same = given == saved
        if not same:
            raise UsageError(
                f"{_option(key)} {given!r} differs from the state's ({saved!r}, in {folder}); "
                "drop the option, or build the state again with it"
            )


def save_state(args: argparse.Namespace, log: Any, say: Callable[[str], None]) -> None:
    """Save the state updated by :func:`state_log` (after the output is written, so a
    failed run leaves yesterday's state for the rerun)."""
    full = getattr(args, "state_log", None)
    if full is not None:
        full.save(args.state)
        say(f"saved the state ({full.n_deals:,} deals, as of {full.as_of}) to {args.state}")


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    if getattr(args, "quiet", False):
        return lambda msg: None
    return lambda msg: print(f"funnelkit: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- commands
def _cmd_validate(args: argparse.Namespace) -> int:
    opts = options(args)
    log = phase_view(scoped(load_log(args, opts), opts), args, opts)
    q = log.quality
    if args.json:
        print(json.dumps(q.to_dict(), indent=2))
    else:
        print(cli_words(str(q)))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    if "matplotlib.pyplot" not in sys.modules:  # files only: no window, no display needed
        import matplotlib

        matplotlib.use("Agg")
    from .report import build_report

    say = _say(args)
    opts = options(args)
    say("reading…")
    log = phase_view(state_log(args, opts), args, opts)
    report = build_report(
        log,
        by=opts.get("by"),
        freq=opts.get("freq"),
        period=opts.get("period"),
        key_kwargs=opts.get("key_stages"),
        within=within_option(opts.get("within")),
        progress=say,
        lang=opts.get("lang", "en"),
        currency=opts.get("currency"),
        charts=opts.get("charts", "all") == "all",
    )
    out = report.save(args.output, progress=say, csv=opts.get("csv", "small"))
    args.written = out
    say(f"wrote {out / 'report.html'} ({len(report.tables)} tables, {len(report.charts)} charts)")
    save_state(args, log, say)
    return EXIT_OK


def _cmd_monitor(args: argparse.Namespace) -> int:
    opts = options(args)
    cfg = dict(opts.get("alerts") or {})
    for name in ("weeks", "baseline", "alpha"):  # the command line overrides the config
        if getattr(args, name, None) is not None:
            cfg[name] = getattr(args, name)
    log = phase_view(state_log(args, opts), args, opts)
    table = log.alerts(**cfg)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    fired = table[table["alert"]]

    def records(t: Any) -> list[dict[str, Any]]:
        t = t.assign(week=t["week"].dt.strftime("%Y-%m-%d"))
        return json.loads(t.to_json(orient="records"))

    doc = {
        "as_of": str(log.as_of),
        "weeks": sorted(table["week"].dt.strftime("%Y-%m-%d").unique().tolist()),
        "fired": int(len(fired)),
        "alerts": records(fired),
        "checks": records(table),
    }
    for name, text in (
        ("alerts.json", json.dumps(doc, indent=2, ensure_ascii=False)),
        ("alerts.csv", table.to_csv(index=False)),
    ):  # each file replaced whole: a reader never sees half of it
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    args.written = out
    say = _say(args)
    for msg in fired["message"]:
        print(f"alert: {msg}")
    say(f"{len(fired)} alert(s) in {len(table)} checks; wrote {out / 'alerts.json'}")
    save_state(args, log, say)
    return EXIT_ALERT if len(fired) else EXIT_OK


#: where a report puts what log.rejects holds: counts per reason, and a few example rows
_REJECTS_FILES = "counts them in tables/rejects.csv, with examples in tables/reject_examples.csv"
#: the library's words for its keywords → the command line's (regex → replacement)
_CLI_WORDS: list[tuple[str, Any]] = [
    (r" (?:The rows|The values) travel as err\.failure_cases\.", ""),
    (r"See the error's failure cases or log with errors='raise' for details\.",
     "Run with --errors raise to see the problems per column."),
    (r"\(the (?:dropped rows|rejected ones) are kept in log\.rejects\)", f"(validate counts "
     f"them; report {_REJECTS_FILES})"),
    (r"\((?:listed in|see) log\.rejects\)", f"(report {_REJECTS_FILES})"),
    (r"errors='(drop|raise)'", r"--errors \1"),
    (r"date_format='([^']*)'", r"--date-format '\1'"),
    (r"created_at='<creation date column>'", "--created-at COLUMN"),
    (r"closed_at='<close date column>'", "--closed-at COLUMN"),
    (r"date the outcome in `stage_dates`", "date the outcome with --milestone"),
    (r"`stages=None`", "out --stages"),
    (r"with `stage_map`", "with a [stage_map] table in --config"),
    (r"with stage_map\b", "with a [stage_map] table in --config"),
    (r"rows of `deals`", "rows of INPUT"),
    (r"Parameter `(as_of|stale_after|date_format|errors|stages|won|lost|period|freq)`",
     lambda m: f"--{m.group(1).replace('_', '-')} (`{m.group(1)}`)"),
    (r"`(stages|won|lost)`", r"--\1"),
]  # fmt: skip


def cli_words(text: str) -> str:
    """A library message in the words of the command line (``--errors drop``, not
    ``errors='drop'``; no ``err.failure_cases``)."""
    import re

    for pattern, repl in _CLI_WORDS:
        text = re.sub(pattern, repl, text)
    return text


def one_line(exc: BaseException) -> str:
    """The message in command-line words: one line for one problem (the summary, plus the
    detail when the summary ends in ':'); one line per problem when there are several, so
    each reason keeps its count."""
    text = cli_words(str(exc)) if isinstance(exc, EventLogError) else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    head = lines[0]
    problems = [line.removeprefix("- ") for line in lines[1:] if line.startswith("- ")]
    rest = [line for line in lines[1:] if not line.startswith("- ")]
    if not (head.endswith(":") and problems):
        more = lines[1:2] if head.endswith(":") else []
        return " ".join([head, *(line.removeprefix("- ") for line in more)])
    fix = next((line for line in rest if "--errors drop" in line), "")
    if len(problems) == 1:
        says_it = "--errors drop" in problems[0]
        suffix = " (or pass --errors drop to keep the good rows)" if fix and not says_it else ""
        return f"{head} {problems[0]}{suffix}"
    return "\n".join([head, *(f"  - {p}" for p in problems), *([fix] if fix else [])])


def _interrupted(args: argparse.Namespace) -> str:
    """What is true after a Ctrl-C: a report is replaced whole or not at all."""
    written = getattr(args, "written", None)
    if written is not None:
        return f"interrupted; the report was written to {written}"
    output = getattr(args, "output", None)
    if output is not None and Path(output, "report.html").is_file():
        return f"interrupted; nothing written (the earlier report in {output} is unchanged)"
    return "interrupted; nothing written"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``funnelkit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        commands = {"validate": _cmd_validate, "report": _cmd_report, "monitor": _cmd_monitor}
        return commands[args.command](args)
    except KeyboardInterrupt:
        print(f"funnelkit: {_interrupted(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, EventLogError, InvalidParameterError, OSError, ArrowException) as exc:
        # InvalidParameterError: a bad value from the config file or the command line
        print(f"funnelkit: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        print(
            f"funnelkit: analysis failed: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr
        )
        return EXIT_ANALYSIS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
