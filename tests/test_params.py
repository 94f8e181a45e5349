"""One parameter validation: every public function declares what its parameters accept,
and a value outside that raises InvalidParameterError naming the function, the parameter
and the value (issue 16, item 5)."""

from __future__ import annotations

import inspect

import matplotlib
import pytest

import funnelkit as fk
from funnelkit import _params

matplotlib.use("Agg")

LOG = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def _public():
    """(name, bound callable, the arguments a valid call needs) of every public function
    and method that takes parameters."""
    out = []
    for name in sorted(dir(fk.EventLog)):
        obj = inspect.getattr_static(fk.EventLog, name)
        if name.startswith("_") or isinstance(obj, property):
            continue
        func = getattr(LOG, name)
        if callable(func) and len(inspect.signature(func).parameters):
            out.append((f"EventLog.{name}", func))
    out.append(("EventLog", fk.EventLog))  # its __init__ is checked
    out.append(("fk.read_events", fk.read_events))
    out.append(("fk.backtest", fk.backtest))
    out.append(("fk.backtest_periods", fk.backtest_periods))
    for name in fk.plot.__all__:
        out.append((f"fk.plot.{name}", getattr(fk.plot, name)))
    out += _dask_public()
    return out


def _dask_public():
    """The distributed log's public API: the same rules as in memory."""
    try:
        import dask.dataframe as dd

        from funnelkit.dask import DaskEventLog, read_events
    except ImportError:  # dask is an extra
        return []
    events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
    REQUIRED["DaskEventLog"] = {"events": events}
    REQUIRED["funnelkit.dask.read_events"] = {"path": "events.parquet"}
    log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
    out = [("DaskEventLog", DaskEventLog), ("funnelkit.dask.read_events", read_events)]
    for name in sorted(dir(DaskEventLog)):
        obj = inspect.getattr_static(DaskEventLog, name)
        if name.startswith("_") or isinstance(obj, property):
            continue
        func = getattr(log, name)
        if callable(func) and len(inspect.signature(func).parameters):
            out.append((f"DaskEventLog.{name}", func))
    return out


#: arguments a call needs besides the parameter under test (checked before any work)
REQUIRED = {
    "EventLog": {"events": fk.datasets.load_sample()},
    "EventLog.from_milestones": {"deals": None, "stage_dates": {}},
    "EventLog.movement": {"start": "2025-01-01", "end": "2025-02-01"},
    "DaskEventLog.movement": {"start": "2025-01-01", "end": "2025-02-01"},
    "EventLog.what_if": {"changes": {"Demo": {"conversion": 0.05}}},
    "DaskEventLog.what_if": {"changes": {"Demo": {"conversion": 0.05}}},
    "EventLog.update": {"new_events": fk.datasets.load_sample()},
    "EventLog.with_history": {"history": fk.datasets.load_sample_history()},
    "DaskEventLog.with_history": {"history": fk.datasets.load_sample_history()},
    "EventLog.with_activities": {
        "acts": fk.datasets.load_sample_activities(),
        **fk.datasets.SAMPLE_ACTIVITIES_KWARGS,
    },
    "DaskEventLog.with_activities": {
        "acts": fk.datasets.load_sample_activities(),
        **fk.datasets.SAMPLE_ACTIVITIES_KWARGS,
    },
    "fk.read_events": {"path": "events.csv"},
    "fk.backtest": {"log": LOG, "cut": "2025-01-01"},
    "fk.backtest_periods": {"log": LOG, "cut": "2025-01-01"},
}
PUBLIC = _public()


def _cases():
    for name, func in PUBLIC:
        declared = _declared(func)
        if declared is None:
            continue
        for param, constraints in declared.items():
            if _params.CHECKED_INSIDE in constraints:
                continue
            yield pytest.param(name, func, param, constraints, id=f"{name}-{param}")


def _declared(func):
    return getattr(func.__init__ if inspect.isclass(func) else func, "__funnelkit_params__", None)


@pytest.mark.parametrize(("name", "func"), PUBLIC, ids=[n for n, _ in PUBLIC])
def test_every_public_function_declares_every_parameter(name, func):
    declared = _declared(func)
    assert declared is not None, f"{name} has no @validate_params"
    params = [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]
    assert sorted(declared) == sorted(params)


@pytest.mark.parametrize(("name", "func", "param", "constraints"), list(_cases()))
def test_a_bad_value_names_function_parameter_and_value(name, func, param, constraints):
    bad = _params.invalid_example(constraints)
    kwargs = dict(REQUIRED.get(name, {}))
    if name.startswith("fk.plot."):
        kwargs.setdefault("data", LOG)
    kwargs[param] = bad
    with pytest.raises(fk.InvalidParameterError) as err:
        func(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{name}: `{param}` must be "), msg
    assert repr(bad)[:20] in msg
    # one class for every wrong argument, and the handlers users already have keep working
    assert isinstance(err.value, ValueError | TypeError | fk.EventLogError)


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: LOG.key_stages(alpha=2), "`alpha` must be a number in the range (0, 1)"),
        (lambda: LOG.key_stages(n_boot=True), "`n_boot` must be an int in the range [0, 100,000]"),
        (lambda: LOG.key_stages(seed=-1), "`seed` must be a non-negative integer or None"),
        (lambda: LOG.funnel(skips="both"), "`skips` must be one of 'implied', 'strict'"),
        (lambda: LOG.dwell(by=3), "`by` must be a column name or a list of column names"),
        (lambda: LOG.forecast(90), "`horizon` must be a positive duration with a unit"),
        (lambda: LOG.report(charts="yes"), "`charts` must be True or False"),
        (lambda: fk.plot.dwell(LOG, ax=3), "`ax` must be a matplotlib Axes or None"),
    ],
)
def test_messages_say_what_is_allowed(call, text):
    with pytest.raises(fk.InvalidParameterError, match=None) as err:
        call()
    assert text in str(err.value)


def test_a_unitless_duration_says_why():
    with pytest.raises(fk.InvalidParameterError, match="has no unit"):
        LOG.forecast(90)


def test_data_dependent_checks_raise_the_same_class():
    # the value has the right type; only the log can tell it is wrong
    with pytest.raises(fk.InvalidParameterError, match="Nope"):
        LOG.what_if({"Nope": {"dwell": 0.5}})


def test_stage_iterators_are_not_consumed_by_the_check():
    events = fk.datasets.load_sample()
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    stages = kw.pop("stages")
    log = fk.EventLog(events, stages=iter(stages), **kw)
    assert log.stages == list(stages)


def test_valid_calls_are_untouched():
    assert LOG.funnel(skips="strict").equals(LOG.funnel.__wrapped__(LOG, skips="strict"))
