"""`where` expressions (funnelkit._expr): nothing in them runs, the declared grammar
evaluates like pandas ``query`` would, and everything else is one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit._expr import ExpressionError, parse, where_mask

K = dict(deal="d", stage="s", time="t", won="won", lost="lost")
E = pd.DataFrame(
    dict(
        d=list("aaabb"),
        s=["Lead", "Demo", "won", "Lead", "lost"],
        t=["2025-01-01", "2025-01-05", "2025-01-10", "2025-01-02", "2025-01-03"],
    )
)
SYNTAX = r"`where`: .* at position \d+ in .*allowed: column names, literals, comparisons"


@pytest.fixture(scope="module")
def sample_log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(scope="module")
def deals(sample_log):
    return sample_log.deals()


def _touch(marker: Path) -> str:
    """Python that would create ``marker`` if it ever ran."""
    return f"open({str(marker)!r}, 'w')"


# ---------------------------------------------------------------- the reproducer
def test_reproducer_runs_nothing_python_api(tmp_path):
    marker = tmp_path / "pwned"
    where = f"@pd.io.common.os.system('touch {marker}')==0"
    with pytest.raises(fk.EventLogError, match=r"unexpected '@' at position 0 in \"@pd\.io"):
        fk.EventLog(E, **K).filter(where=where)
    assert not marker.exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "funnelkit", *args], capture_output=True, text=True, timeout=120
    )


def test_reproducer_runs_nothing_cli_where(tmp_path):
    marker = tmp_path / "pwned"
    r = run_cli("validate", "--sample", "--where", f"@pd.io.common.os.system('touch {marker}')==0")
    assert r.returncode == 2
    assert not marker.exists()
    assert r.stderr.count("\n") == 1 and "unexpected '@' at position 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_reproducer_runs_nothing_toml_where(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "funnel.toml"
    where = f"__import__('os').system('touch {marker}') == 0"
    cfg.write_text(f'where = """{where}"""\n')
    r = run_cli("report", "--sample", "--config", str(cfg), "-o", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 2, r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert "unexpected '(' at position 10" in r.stderr and r.stderr.count("\n") == 1


# ---------------------------------------------------------------- injection variants
INJECTIONS = [
    "@pd.io.common.os.system('id') == 0",
    "__import__('os').system('id') == 0",
    "__import__",
    "(lambda: 0)() == 0",
    "lambda x: x",
    "region.str.len() > 0",
    "region.__class__ == 1",
    "deal.__class__.__mro__",
    "amount.apply(print) == 0",
    "f'{__import__(\"os\").system(\"id\")}' == ''",
    "rb'x' == region",
    "(x := 1) == 1",
    "region[0] == 'N'",
    "region['x'] == 'N'",
    "@region == 'North'",
    "region == @x",
    "\\\nregion == 'North'",
    "region == 'North' \\ or True",
    "region == 'North'; import os",
    "region not 'in' ['North']",
    "region not",
    "region \U000e0001== 'North'",  # a tag character (not printable)
    "region == 'North'\nimport os",
    "region == 'North' # comment",
    "amount + 1 > 5",
    "amount * 2 > 5",
    "amount ** 2 > 5",
    "-amount > 5",
    "region is None",
    "region if True else region",
    "[x for x in region]",
    "{'a': 1}",
    "region = 'North'",
    "region === 'North'",
    "region <> 'North'",
    "region == 'North' && amount > 1",
    "exec('print(1)')",
    "eval('1')",
    "getattr(region, 'upper')",
    "ｒｅｇｉｏｎ.upper()",  # fullwidth letters, NFKC-normalised by Python
    "region\u202e == 'North'",  # right-to-left override
    "region\u200b == 'North'",  # zero-width space
    "'\\N{DIGIT ONE}' == region",
    "region == 'North",
    "`region",
    "`` == 1",
    "1_ == amount",
    "1__0 == amount",
    "0x10 == amount",
    "1j == amount",
    "1e == amount",
    "amount == 1.2.3",
    "...",
    "",
    "   ",
    "(" * 500 + "reopened" + ")" * 500,
    "not " * 500 + "reopened",
    "9" * 5000 + " == amount",
]


@pytest.mark.parametrize("where", INJECTIONS)
def test_injections_are_one_clear_error(where, sample_log, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExpressionError, match=r"^`where`: ") as info:
        sample_log.filter(where=where)
    msg = str(info.value)
    assert "\n" not in msg and "\u202e" not in msg  # one line, control characters escaped
    assert isinstance(info.value, fk.EventLogError) and isinstance(info.value, ValueError)
    assert info.value.position is not None and 0 <= info.value.position <= len(where)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("@pd.io.common.os.system('id')==0", "unexpected '@' at position 0"),
        ("__import__('os')", "unexpected '(' at position 10"),
        ("region.upper()", "unexpected '.' at position 6"),
        ("region[0] == 'N'", "unexpected '[' at position 6"),
        ("f'x' == region", "unexpected string prefix 'f'' at position 0"),
        ("region = 'North'", "unexpected '=' at position 7 in \"region = 'North'\" (use =="),
        ("amount + 1 > 5", "unexpected '+' at position 7 in \"amount + 1 > 5\" (no arithmetic)"),
        ("-amount > 5", "(a sign goes only before a number; no arithmetic)"),
        ("@x == 1", "(no @ variables)"),
        ("region.upper", "(no attribute access)"),
        ("len(region) > 1", "unexpected '(' at position 3 in \"len(region) > 1\" (no calls)"),
        ("region[0] > 1", "(no subscripts)"),
        (
            "region == ['North']",
            "unexpected '[' at position 10 in \"region == ['North']\" (a list goes after `in`",
        ),
        ("region == 'North", "unclosed string"),
        ("region == 'a\\qb'", "unknown escape '\\\\q' at position 12"),
        ("region == 'North' and", "unexpected end of expression at position 21"),
        (
            "(" * 101 + "reopened" + ")" * 101,
            "nesting deeper than 100 levels at '(' at position 100",
        ),
        ("region in 'North'", "expected a list [...] after `in` but found ''North''"),
        ("region in ['North' 'South']", "expected ',' or ']' but found ''South''"),
        ("amount < 5 in [1]", "`in` cannot follow a comparison"),
        (
            "ｒｅｇｉｏｎ == 'North'",
            "unknown column `ｒｅｇｉｏｎ` (`region` is spelled with other",
        ),
    ],
)
def test_error_names_token_and_position(where, words, sample_log):
    with pytest.raises(fk.EventLogError) as info:
        sample_log.filter(where=where)
    assert words in str(info.value), str(info.value)


def test_unknown_column_lists_the_columns(sample_log):
    with pytest.raises(fk.EventLogError, match="could not be evaluated") as info:
        sample_log.filter(where="colour == 'red'")
    msg = str(info.value)
    assert "unknown column `colour` at position 0" in msg
    assert "deal, outcome, outcome_stage, furthest_stage, first_event" in msg and "team" in msg


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("amount > '5'", "cannot compare numeric column `amount` (float64) with '5'"),
        ("region == 5", "cannot compare text column `region` with 5"),
        ("reopened == 1", "cannot compare boolean column `reopened` with 1"),
        ("first_event > 5", "5 is not a time for column `first_event`"),
        ("first_event > 'now'", "'now' is not a time for column `first_event`"),
        ("first_event > '12:00'", "'12:00' is not a time"),
        ("first_event > '2025-13-45'", "could not read '2025-13-45' as a time"),
        ("cycle_time > 30", "30 is not a duration for column `cycle_time`"),
        ("cycle_time > '30'", "give a quoted duration with a unit, e.g. '30D'"),
        ("cycle_time > 'soon'", "could not read 'soon' as a duration"),
        ("region", "column `region` (str) is not a condition"),
        ("'North'", "'North' is not a condition"),
        ("1 == 1", "comparison of two literals 1 and 1"),
        ("region < None", "None compared with <"),
        ("furthest_stage > 'Zed'", "cannot compare `furthest_stage` > 'Zed'"),
        ("outcome < 'won'", "cannot compare `outcome` < 'won'"),
        ("'a' in ['a']", "`in` needs a column on its left"),
    ],
)
def test_type_errors_are_clear(where, words, sample_log):
    if "(str)" in words and not isinstance(sample_log.deals()["region"].dtype, pd.StringDtype):
        words = words.replace("(str)", "(object)")
    with pytest.raises(fk.EventLogError) as info:
        sample_log.filter(where=where)
    assert words in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_object_text_columns_take_only_strings(deals):
    """pandas 2.2 holds text as object: `region == 5` matched nothing (filter: 'keeps no
    deals') instead of the clear error pandas 3's str columns get (CI's pandas 2.2 run)."""
    obj = deals.astype({"region": object})
    with pytest.raises(ExpressionError, match="cannot compare text column `region` with 5"):
        where_mask("region == 5", obj)
    assert where_mask("region == 'West'", obj).sum() == (deals["region"] == "West").sum() > 0
    mixed = pd.DataFrame({"code": pd.Series(["a", 5, None], dtype=object)})
    assert where_mask("code == 5", mixed).tolist() == [False, True, False]  # not all text


# ---------------------------------------------------------------- semantics
def test_equivalences_by_hand(deals):
    m = lambda w: where_mask(w, deals)  # noqa: E731
    amount, region = deals["amount"], deals["region"]
    assert (m("amount >= 50_000") == (amount >= 50_000).to_numpy()).all()
    assert (m("1000 <= amount < 5e3") == ((amount >= 1000) & (amount < 5000)).to_numpy()).all()
    assert (m("amount > -1") == np.ones(len(deals), bool)).all()
    assert (m("region not in ('North',)") == (region != "North").to_numpy()).all()
    assert (m("~reopened") == ~deals["reopened"].to_numpy()).all()
    assert (m('`team` == "Team A"') == (deals["team"] == "Team A").to_numpy()).all()
    assert (m("'Team A' == team") == (deals["team"] == "Team A").to_numpy()).all()
    # time columns: ISO strings, naive read as UTC on an aware log
    jan = pd.Timestamp("2025-01-01", tz="UTC")
    assert (m("first_event >= '2025-01-01'") == (deals["first_event"] >= jan).to_numpy()).all()
    assert (
        m("first_event >= '2025-01-01'").sum()
        == m("first_event >= '2025-01-01T01:00:00+01:00'").sum()
    )
    # durations with a unit; NaT (open deals) compares False, == None finds it
    month = pd.Timedelta(days=30)
    ct = deals["cycle_time"]
    assert (m("cycle_time > '30D'") == (ct > month).fillna(False).to_numpy()).all()
    assert (m("cycle_time == None") == ct.isna().to_numpy()).all()
    assert (m("cycle_time != None") == ct.notna().to_numpy()).all()
    assert m("cycle_time > '30D' or cycle_time <= '30D'").sum() == ct.notna().sum()
    # missing values: == is False, != is its negation, None in a list matches them
    os_ = deals["outcome_stage"]
    assert (m("outcome_stage == 'Won'") == (os_ == "Won").to_numpy()).all()
    assert m("outcome_stage != 'Won'").sum() == len(deals) - (os_ == "Won").sum()
    assert (m("outcome_stage in ['Won', None]") == ((os_ == "Won") | os_.isna()).to_numpy()).all()
    # ordered categories compare in funnel order
    far = deals["furthest_stage"].cat.codes >= list(deals["furthest_stage"].cat.categories).index(
        "Demo"
    )
    assert (m("furthest_stage >= 'Demo'") == far.to_numpy()).all()
    assert m("True").all() and not m("False").any()
    assert m("region in []").sum() == 0


def test_precedence_and_or_not():
    t = pd.DataFrame({"a": [True, True, False, False], "b": [True, False, True, False]})
    t["c"] = [False, True, True, False]
    m = lambda w: where_mask(w, t).tolist()  # noqa: E731
    assert m("a or b and c") == (t.a | (t.b & t.c)).tolist()
    assert m("a | b & c") == m("a or b and c")
    assert m("not a and b") == (~t.a & t.b).tolist()
    assert m("~a & b") == m("not a and b")
    assert m("not (a or b)") == (~(t.a | t.b)).tolist()
    assert m("not not a") == t.a.tolist()


def test_strings_and_escapes():
    t = pd.DataFrame({"name": ["it's", 'say "hi"', "a\\b", "tab\there", "é", "日本"]})
    m = lambda w: where_mask(w, t).tolist()  # noqa: E731
    assert m("name == 'it\\'s'") == [True, False, False, False, False, False]
    assert m('name == "it\'s"') == [True, False, False, False, False, False]
    assert m("name == 'say \"hi\"'") == [False, True, False, False, False, False]
    assert m("name == 'a\\\\b'") == [False, False, True, False, False, False]
    assert m("name == 'tab\\there'") == [False, False, False, True, False, False]
    assert m("name in ['\\xe9', '\\u65e5\\u672c']") == [False] * 4 + [True, True]


def test_non_ascii_and_backtick_column_names():
    t = pd.DataFrame(
        {
            "区域": ["华北", "华南", "华北"],
            "deal owner": ["Ann", "Bo", "Cy"],
            "and": [1, 2, 3],
            "Straße": [1.0, 2.0, np.nan],
        }
    )
    assert where_mask("区域 == '华北'", t).tolist() == [True, False, True]
    assert where_mask("`区域` != '华北'", t).tolist() == [False, True, False]
    assert where_mask("`deal owner` in ['Ann', 'Cy']", t).tolist() == [True, False, True]
    assert where_mask("`and` >= 2", t).tolist() == [False, True, True]
    assert where_mask("Straße > 1 or Straße == None", t).tolist() == [False, True, True]
    with pytest.raises(ExpressionError, match="unexpected 'and' at position 0"):
        where_mask("and >= 2", t)
    # Chinese columns through the log and its filter
    ev = E.assign(区域=["华北", "华北", "华北", "华南", "华南"])
    log = fk.EventLog(ev, **K, attrs=["区域"])
    assert log.filter(where="区域 == '华南'").deals()["deal"].tolist() == ["b"]


def test_arrow_nullable_and_categorical_dtypes():
    pa = pytest.importorskip("pyarrow")
    utc = [pd.Timestamp("2025-01-01", tz="UTC"), None, pd.Timestamp("2025-03-01", tz="UTC")]
    t = pd.DataFrame(
        {
            "s": pd.array(["a", None, "b"], dtype=pd.ArrowDtype(pa.string())),
            "ts": pd.array(utc, dtype=pd.ArrowDtype(pa.timestamp("ns", tz="Europe/Paris"))),
            "b": pd.array([True, None, False], dtype=pd.ArrowDtype(pa.bool_())),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.Categorical(["x", "y", None]),
        }
    )
    m = lambda w: where_mask(w, t).tolist()  # noqa: E731
    assert m("s == 'a'") == [True, False, False] and m("s != 'a'") == [False, True, True]
    assert m("ts >= '2025-02-01'") == [False, False, True]
    assert m("ts <= '2025-01-01T01:00:00+01:00'") == [True, False, False]
    assert m("ts < '2025-01-01T01:00:00+01:00'") == [False, False, False]
    assert m("b") == [True, False, False] and m("not b") == [False, True, True]
    assert m("n > 1") == [False, False, True] and m("n != 1") == [False, True, True]
    assert m("n in [1, None]") == [True, True, False]
    assert m("c == 'x'") == [True, False, False] and m("c not in ['x']") == [False, True, True]
    with pytest.raises(ExpressionError, match="cannot compare text column `s` with 1"):
        where_mask("s == 1", t)
    with pytest.raises(ExpressionError, match="Unordered Categoricals"):
        where_mask("c > 'x'", t)


def test_callable_where_still_runs_code_explicitly(sample_log):
    sub = sample_log.filter(where=lambda d: d["region"].str.startswith("N"))
    assert sub.n_deals == int(sample_log.deals()["region"].str.startswith("N").sum())


def test_parse_needs_a_string():
    with pytest.raises(TypeError, match="must be a str"):
        parse(5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- equivalence with pandas query
CAT = {
    "region": ["North", "South", "East", "West", "Nowhere"],
    "team": ["Team A", "Team B", "Team C", "Team Z"],
    "outcome": ["won", "lost", "open", "stale"],
    "outcome_stage": ["Won", "Lost", "Disqualified", "stale"],
    "owner": ["Owner 01", "Owner 05", "Owner 12"],
}
STAGES = ["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation"]
COMPARE = ["==", "!=", "<", "<=", ">", ">="]


def _lit(v) -> str:
    return repr(v)


@st.composite
def conditions(draw):
    kind = draw(st.sampled_from(["text", "in", "amount", "chain", "stage", "bool"]))
    if kind == "text":
        col = draw(st.sampled_from(sorted(CAT)))
        op = draw(st.sampled_from(["==", "!="]))
        return f"{col} {op} {_lit(draw(st.sampled_from(CAT[col])))}"
    if kind == "in":
        col = draw(st.sampled_from(sorted(CAT)))
        vals = draw(st.lists(st.sampled_from(CAT[col]), min_size=1, max_size=3))
        neg = draw(st.booleans())
        brackets = draw(st.sampled_from(["[]", "()"]))
        inner = ", ".join(map(_lit, vals)) + ("," if brackets == "()" and len(vals) == 1 else "")
        return f"{col} {'not in' if neg else 'in'} {brackets[0]}{inner}{brackets[1]}"
    if kind == "amount":
        op = draw(st.sampled_from(COMPARE))
        x = draw(st.one_of(st.integers(-10, 600_000), st.floats(0, 600_000, allow_nan=False)))
        return f"amount {op} {x!r}" if draw(st.booleans()) else f"{x!r} {op} amount"
    if kind == "chain":
        lo, hi = sorted(draw(st.lists(st.integers(0, 600_000), min_size=2, max_size=2)))
        return f"{lo} <= amount < {hi}"
    if kind == "stage":
        return f"furthest_stage {draw(st.sampled_from(COMPARE))} {_lit(draw(st.sampled_from(STAGES)))}"
    return draw(st.sampled_from(["reopened", "reopened == True", "reopened != False"]))


expressions = st.recursive(
    conditions(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" and ", " or ", " & ", " | "]), inner).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"
        ),
        inner.map(lambda e: f"not ({e})"),
        inner.map(lambda e: f"~({e})"),
    ),
    max_leaves=6,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=expressions)
def test_equals_pandas_query_on_the_sample(expr, deals):
    # pandas query is an independent computation of the same expressions
    expected = deals.eval(expr).to_numpy(dtype=bool)
    np.testing.assert_array_equal(where_mask(expr, deals), expected, err_msg=expr)


# ---------------------------------------------------------------- random token strings
TOKENS = [
    "region",
    "amount",
    "reopened",
    "furthest_stage",
    "first_event",
    "cycle_time",
    "区域",
    "`team`",
    "`deal owner`",
    "`",
    "'North'",
    '"Team A"',
    "'2025-01-01'",
    "'30D'",
    "'",
    '"',
    "'a\\'b'",
    "'\\q'",
    "5",
    "-5",
    "1.5e3",
    "50_000",
    "1__0",
    ".5",
    "0x1",
    "True",
    "False",
    "None",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "in",
    "not",
    "and",
    "or",
    "&",
    "|",
    "~",
    "(",
    ")",
    "[",
    "]",
    ",",
    "@",
    ".",
    ":",
    ":=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "\\",
    "lambda",
    "__import__",
    "f'x'",
    "is",
    ";",
    "#",
    "\n",
    "\t",
    "\u200b",
    "\u202e",
    "é",
    "{",
    "}",
    "$",
    "!",
    "?",
]


@pytest.mark.slow
@settings(max_examples=600, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.sampled_from(TOKENS), max_size=12),
    sep=st.sampled_from([" ", ""]),
)
def test_random_tokens_parse_or_raise_the_clear_error(parts, sep, deals):
    text = sep.join(parts)
    try:
        mask = where_mask(text, deals, "the deals table")
    except ExpressionError as exc:
        msg = str(exc)
        assert msg.startswith("`where`: ") and "\n" not in msg
        assert exc.position is not None and 0 <= exc.position <= len(text)
    else:
        assert mask.dtype == bool and mask.shape == (len(deals),)


@settings(max_examples=300)
@given(text=st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_the_clear_error(text):
    t = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    try:
        mask = where_mask(text, t)
    except ExpressionError as exc:
        assert str(exc).startswith("`where`: ") and "\n" not in str(exc)
    else:
        assert mask.dtype == bool and mask.shape == (2,)
