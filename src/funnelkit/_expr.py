"""The ``where`` expressions of :meth:`EventLog.filter`: a small grammar, parsed, never run.

A ``where`` string is user text: it comes from notebooks, from ``funnelkit ... --where`` and
from a ``where`` key in a TOML config an ETL job reads. It is tokenised and parsed here into
an AST of this module's own classes, then evaluated column-wise on a DataFrame (the deals
table) with pandas comparisons. Nothing in it is executed: no ``eval``, no
``DataFrame.eval``/``query``, no attribute lookup on user text. A callable ``where`` is the
explicit way to run code.

Grammar (EBNF; ``|`` inside quotes is the character)::

    expression := disjunct { ("or" | "|") disjunct }
    disjunct   := conjunct { ("and" | "&") conjunct }
    conjunct   := ("not" | "~") conjunct | condition
    condition  := "(" expression ")"
                | operand { COMPARE operand }        -- a chain: a < b < c
                | operand ["not"] "in" list
    operand    := column | literal
    column     := NAME | "`" any characters but a backtick "`"
    literal    := STRING | ["-" | "+"] NUMBER | "True" | "False" | "None"
    list       := "[" [literal {"," literal} [","]] "]" | "(" ... ")"
    COMPARE    := "==" | "!=" | "<" | "<=" | ">" | ">="

- ``NAME`` is a Python identifier (letters of any script, digits, ``_``; not starting with
  a digit), matched exactly against the column names (no Unicode normalisation); other
  names, and the words ``and or not in True False None``, go in backticks.
- ``STRING`` is single- or double-quoted, with the escapes ``\\\\ \\' \\" \\n \\r \\t``,
  ``\\xhh``, ``\\uhhhh`` and ``\\Uhhhhhhhh``; ``NUMBER`` an int or float (``50_000``,
  ``1.5e3``).
- ``&``, ``|`` and ``~`` are the same as ``and``, ``or`` and ``not``, with their precedence
  (``not`` > ``and`` > ``or``), as pandas ``query`` reads ``&`` and ``|``.
- A chain ``a < b < c`` means ``a < b and b < c``; each comparison needs a column on one
  side. A condition that is a single operand must be a boolean column (or True/False).
- Literals take the type of the column they meet: a string compared with a datetime column
  is read as an ISO 8601 time (naive read as UTC on an aware column), with a timedelta
  column as a duration with a unit (``'30D'``); numbers go with numeric columns, strings
  with text and categorical ones (ordered categories compare in their order).
- Missing values: a comparison with a missing value is False, ``!=`` is ``not ==`` (so a
  missing value is ``!=`` any literal) and ``not in`` is ``not (in)``; ``x == None`` is
  True where ``x`` is missing, and a ``None`` in a list matches missing values.

Anything else (attribute access, calls, subscripts, ``@`` locals, arithmetic, lambdas,
f-strings, ``:=``, ``is``, ...) is an :class:`ExpressionError` naming the offending token and
its position.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import EventLogError

__all__ = ["ExpressionError", "parse", "evaluate", "where_mask"]

ALLOWED = "allowed: column names, literals, comparisons, in [...], and/or/not, parentheses"
#: nesting depth of parentheses and ``not`` (keeps the parser's recursion bounded)
MAX_DEPTH = 100

_KEYWORDS = {"and", "or", "not", "in", "True", "False", "None"}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_PUNCT = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", "&", "|", "~", "-", "+")
_DIGITS = "0123456789"
_NUMBER = re.compile(
    r"(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?", re.ASCII
)
_HINTS = {
    "=": "use == to compare",
    ".": "no attribute access",
    "@": "no @ variables",
    "*": "no arithmetic",
    "/": "no arithmetic",
    "%": "no arithmetic",
}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
#: a string read as a time must start with a date (no "now", "today", "12:00")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")
_UNITLESS = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, shortened."""
    return _show(" ".join(str(exc).split()), 120)[1:-1]


class ExpressionError(EventLogError):
    """A ``where`` expression outside the grammar of :mod:`funnelkit._expr`, or one that
    does not fit the table (unknown column, incomparable types).

    ``position`` is the offset of the offending token in the text (``None`` when the
    problem is not one token's), ``token`` its text.
    """

    def __init__(self, message: str, position: int | None = None, token: str = "") -> None:
        super().__init__(message)
        self.position = position
        self.token = token


def _show(text: str, limit: int = 80) -> str:
    """``text`` double-quoted on one line: control, format and surrogate characters
    escaped, long text cut."""
    out = []
    for ch in text[:limit]:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + ("…" if len(text) > limit else "") + '"'


# ------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class _Token:
    kind: str  # NAME, QNAME, STR, NUM, OP, KW, END
    text: str  # the token as written
    value: Any  # the name, the string's value, the number, the keyword/operator
    pos: int


def _name(name: object) -> str:
    """A column name on one line, in backticks."""
    return "`" + _show(str(name), 40)[1:-1] + "`"


def _error(
    source: str, pos: int, token: str, what: str = "unexpected", hint: str = ""
) -> ExpressionError:
    shown = _show(token, 30)[1:-1]
    hint = f" ({hint})" if hint else ""
    return ExpressionError(
        f"`where`: {what} '{shown}' at position {pos} in {_show(source)}{hint}; {ALLOWED}",
        pos,
        token,
    )


def _tokenize(source: str) -> Iterator[_Token]:
    """The tokens of ``source``, lazily: a parse error before a bad character is reported
    first (errors come in reading order)."""
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
        elif ch.isidentifier():  # letters of any script, or "_"
            j = i + 1
            while j < n and ("a" + source[j]).isidentifier():
                j += 1
            word = source[i:j]
            if j < n and source[j] in "'\"":  # f'...', r"...", b'...'
                raise _error(source, i, source[i : j + 1], "unexpected string prefix")
            kind = "KW" if word in _KEYWORDS else "NAME"
            yield _Token(kind, word, word, i)
            i = j
        elif ch == "`":
            j = source.find("`", i + 1)
            if j < 0:
                raise _error(source, i, source[i:], "unclosed backtick")
            if j == i + 1:
                raise _error(source, i, "``", "empty column name")
            yield _Token("QNAME", source[i : j + 1], source[i + 1 : j], i)
            i = j + 1
        elif ch in "'\"":
            value, j = _string(source, i)
            yield _Token("STR", source[i:j], value, i)
            i = j
        elif ch in _DIGITS or (ch == "." and i + 1 < n and source[i + 1] in _DIGITS):
            m = _NUMBER.match(source, i)
            j = m.end() if m else i + 1
            if j < n and (("a" + source[j]).isidentifier() or source[j] in "._"):
                while j < n and (("a" + source[j]).isidentifier() or source[j] == "."):
                    j += 1
                raise _error(source, i, source[i:j], "malformed number")
            text = source[i:j]
            plain = text.replace("_", "")
            try:
                number = int(plain) if plain.isdigit() else float(plain)
            except ValueError:  # more digits than int() reads
                raise _error(source, i, text[:30], "number too long") from None
            yield _Token("NUM", text, number, i)
            i = j
        else:
            op = next((p for p in _PUNCT if source.startswith(p, i)), None)
            if op is None:
                raise _error(source, i, ch, hint=_HINTS.get(ch, ""))
            yield _Token("OP", op, op, i)
            i += len(op)
    yield _Token("END", "", None, n)


def _string(source: str, start: int) -> tuple[str, int]:
    """The value of the quoted string at ``start`` and the offset after it."""
    quote, i, n = source[start], start + 1, len(source)
    out: list[str] = []
    while i < n:
        ch = source[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            esc = source[i + 1 : i + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
                continue
            if esc in _HEX_ESCAPES:
                width = _HEX_ESCAPES[esc]
                digits = source[i + 2 : i + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    code = int(digits, 16)
                    if code <= 0x10FFFF:
                        out.append(chr(code))
                        i += 2 + width
                        continue
            raise _error(source, i, source[i : i + 2], "unknown escape")
        out.append(ch)
        i += 1
    raise _error(source, start, source[start:], "unclosed string")


# ------------------------------------------------------------------------- the AST
@dataclass(frozen=True)
class Column:
    """A column of the table, by its exact name."""

    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A string, number, True/False, or None (missing)."""

    value: str | int | float | bool | None
    pos: int


Operand = Column | Literal


@dataclass(frozen=True)
class Compare:
    """``operands[0] ops[0] operands[1] ops[1] ...`` (a chain is the ``and`` of its links)."""

    operands: tuple[Operand, ...]
    ops: tuple[str, ...]
    pos: tuple[int, ...]  # position of each operator


@dataclass(frozen=True)
class IsIn:
    """``operand [not] in [values]``."""

    operand: Operand
    values: tuple[Literal, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class Truth:
    """A single operand used as a condition (a boolean column, or True/False)."""

    operand: Operand


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | IsIn | Truth | Not | And | Or


# ------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.stream = _tokenize(source)
        self.tokens: list[_Token] = []
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        while len(self.tokens) <= self.i + ahead:
            if self.tokens and self.tokens[-1].kind == "END":
                return self.tokens[-1]
            self.tokens.append(next(self.stream))
        return self.tokens[self.i + ahead]

    @property
    def tok(self) -> _Token:
        return self.peek()

    def is_(self, *values: str) -> bool:
        t = self.tok
        return t.kind in ("OP", "KW") and t.value in values

    def take(self) -> _Token:
        t = self.peek()
        self.i += 1
        return t

    def fail(self, what: str = "unexpected", hint: str = "") -> ExpressionError:
        t = self.tok
        if t.kind == "END":
            return ExpressionError(
                f"`where`: unexpected end of expression at position {t.pos} in "
                f"{_show(self.source)}; {ALLOWED}",
                t.pos,
                "",
            )
        if not hint and t.kind == "OP":
            after_name = self.i > 0 and self.tokens[self.i - 1].kind in ("NAME", "QNAME")
            if t.value in ("+", "-"):
                hint = "no arithmetic"
            elif after_name and t.value in ("(", "["):
                hint = "no calls" if t.value == "(" else "no subscripts"
        return _error(self.source, t.pos, t.text, what, hint)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels at")

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise ExpressionError(f"`where`: the expression is empty; {ALLOWED}", 0, "")
        node = self.expression()
        if self.tok.kind != "END":
            raise self.fail()
        return node

    def expression(self) -> Node:
        parts = [self.disjunct()]
        while self.is_("or", "|"):
            self.take()
            parts.append(self.disjunct())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def disjunct(self) -> Node:
        parts = [self.conjunct()]
        while self.is_("and", "&"):
            self.take()
            parts.append(self.conjunct())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def conjunct(self) -> Node:
        if self.is_("not", "~"):
            self.nest()
            self.take()
            node = Not(self.conjunct())
            self.depth -= 1
            return node
        return self.condition()

    def condition(self) -> Node:
        if self.is_("("):
            self.nest()
            self.take()
            node = self.expression()
            if not self.is_(")"):
                raise self.fail("expected ')' but found")
            self.take()
            self.depth -= 1
            return node
        first = self.operand()
        if self.is_("in") or (
            self.is_("not") and self.peek(1).kind == "KW" and self.peek(1).value == "in"
        ):
            pos = self.tok.pos
            negated = self.take().value == "not"
            if negated:
                self.take()
            return IsIn(first, self.values(), negated, pos)
        operands, ops, where = [first], [], []
        while self.tok.kind == "OP" and self.tok.value in _COMPARE:
            t = self.take()
            ops.append(t.value)
            where.append(t.pos)
            operands.append(self.operand())
        if not ops:
            return Truth(first)
        if self.is_("in") or self.is_("not"):
            raise self.fail(hint="`in` cannot follow a comparison")
        return Compare(tuple(operands), tuple(ops), tuple(where))

    def operand(self) -> Operand:
        t = self.tok
        if t.kind in ("NAME", "QNAME"):
            self.take()
            return Column(t.value, t.pos)
        return self.literal()

    def literal(self) -> Literal:
        t = self.tok
        if t.kind == "STR":
            self.take()
            return Literal(t.value, t.pos)
        if t.kind == "NUM":
            self.take()
            return Literal(t.value, t.pos)
        if t.kind == "OP" and t.value in ("-", "+") and self.peek(1).kind == "NUM":
            self.take()
            num = self.take().value
            return Literal(-num if t.value == "-" else num, t.pos)
        if t.kind == "KW" and t.value in ("True", "False", "None"):
            self.take()
            return Literal({"True": True, "False": False, "None": None}[t.value], t.pos)
        if t.kind == "OP" and t.value in ("-", "+"):
            raise self.fail(hint="a sign goes only before a number; no arithmetic")
        if t.kind == "OP" and t.value == "[":
            raise self.fail(hint="a list goes after `in`: x in [...]")
        raise self.fail()

    def values(self) -> tuple[Literal, ...]:
        if not self.is_("[", "("):
            raise self.fail("expected a list [...] after `in` but found")
        close = "]" if self.take().value == "[" else ")"
        out: list[Literal] = []
        while not self.is_(close):
            out.append(self.literal())
            if self.is_(","):
                self.take()
            elif not self.is_(close):
                raise self.fail(f"expected ',' or '{close}' but found")
        self.take()
        return tuple(out)


def parse(source: str) -> Node:
    """The AST of a ``where`` expression (see the module's grammar).

    Raises
    ------
    ExpressionError
        When ``source`` is not in the grammar, naming the offending token and its position.

    Examples
    --------
    >>> from funnelkit._expr import parse
    >>> parse("region == 'North'")
    Compare(operands=(Column(name='region', pos=0), Literal(value='North', pos=10)), ops=('==',), pos=(7,))
    """
    if not isinstance(source, str):
        raise TypeError(f"`where` expression must be a str; got {type(source).__name__}")
    return _Parser(source).parse()


# ------------------------------------------------------------------------- evaluation
class _Eval:
    def __init__(self, source: str, table: pd.DataFrame, table_name: str) -> None:
        self.source = source
        self.table = table
        self.table_name = table_name

    def fail(self, message: str, pos: int, fix: str = "") -> ExpressionError:
        fix = f"; {fix}" if fix else ""
        return ExpressionError(
            f"`where`: {message} at position {pos} in {_show(self.source)}{fix}", pos
        )

    def run(self, node: Node) -> np.ndarray:
        n = len(self.table)
        if isinstance(node, Or):
            out = np.zeros(n, dtype=bool)
            for part in node.operands:
                out |= self.run(part)
            return out
        if isinstance(node, And):
            out = np.ones(n, dtype=bool)
            for part in node.operands:
                out &= self.run(part)
            return out
        if isinstance(node, Not):
            return ~self.run(node.operand)
        if isinstance(node, Truth):
            return self.truth(node.operand)
        if isinstance(node, IsIn):
            return self.isin(node)
        out = np.ones(n, dtype=bool)
        for k, op in enumerate(node.ops):
            out &= self.compare(node.operands[k], op, node.operands[k + 1], node.pos[k])
        return out

    def column(self, col: Column) -> pd.Series:
        if col.name in self.table.columns:
            ser = self.table[col.name]
            if isinstance(ser, pd.DataFrame):
                raise self.fail(f"column {_name(col.name)} is not unique", col.pos)
            return ser
        names = ", ".join(str(c) for c in self.table.columns)
        hint = ""
        folded = unicodedata.normalize("NFKC", col.name)
        if folded != col.name and folded in self.table.columns:
            hint = f" ({_name(folded)} is spelled with other Unicode characters)"
        raise self.fail(
            f"unknown column {_name(col.name)}{hint}",
            col.pos,
            f"the expression could not be evaluated on {self.table_name}, whose columns are: "
            f"{names} (names with spaces or punctuation go in backticks)",
        )

    @staticmethod
    def _bool(values: Any) -> np.ndarray:
        if isinstance(values, (pd.Series, pd.Index)):
            values = values.to_numpy(dtype=bool, na_value=False)
        return np.array(values, dtype=bool)  # a writable copy (pandas may return a view)

    def truth(self, operand: Operand) -> np.ndarray:
        if isinstance(operand, Literal):
            if isinstance(operand.value, bool):
                return np.full(len(self.table), operand.value)
            raise self.fail(
                f"{operand.value!r} is not a condition", operand.pos, "compare a column with it"
            )
        ser = self.column(operand)
        if not pd.api.types.is_bool_dtype(ser.dtype):
            raise self.fail(
                f"column {_name(operand.name)} ({ser.dtype}) is not a condition",
                operand.pos,
                f"compare it, e.g. {_name(operand.name)} == ...",
            )
        return self._bool(ser)

    def coerce(self, lit: Literal, ser: pd.Series, name: str) -> Any:
        """``lit`` as a value comparable with column ``ser`` (None stays None)."""
        value, dtype = lit.value, ser.dtype
        if value is None:
            return None
        kind = getattr(dtype, "kind", "O")
        if isinstance(dtype, pd.DatetimeTZDtype) or kind == "M":
            if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
                raise self.fail(
                    f"{value!r} is not a time for column {_name(name)}",
                    lit.pos,
                    "compare times with an ISO 8601 string such as '2025-01-31' or "
                    "'2025-01-31 09:00'",
                )
            try:
                ts = pd.Timestamp(value.strip())
            except (ValueError, TypeError, OverflowError) as exc:
                raise self.fail(
                    f"could not read {value!r} as a time for column {_name(name)}",
                    lit.pos,
                    _one_line(exc),
                ) from None
            tz = getattr(dtype, "tz", None) or getattr(
                getattr(dtype, "pyarrow_dtype", None), "tz", None
            )
            if tz is not None:
                ts = ts.tz_localize("UTC") if ts.tz is None else ts
                return ts.tz_convert(tz)
            if ts.tz is not None:
                raise self.fail(
                    f"{value!r} has a time zone but column {_name(name)} is naive",
                    lit.pos,
                    "drop the offset",
                )
            return ts
        if kind == "m":
            if not isinstance(value, str) or _UNITLESS.fullmatch(value):
                raise self.fail(
                    f"{value!r} is not a duration for column {_name(name)}",
                    lit.pos,
                    "give a quoted duration with a unit, e.g. '30D' or '12h'",
                )
            try:
                return pd.Timedelta(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise self.fail(
                    f"could not read {value!r} as a duration for column {_name(name)}",
                    lit.pos,
                    _one_line(exc),
                ) from None
        if pd.api.types.is_bool_dtype(dtype):
            if not isinstance(value, bool):
                raise self.fail(
                    f"cannot compare boolean column {_name(name)} with {value!r}",
                    lit.pos,
                    "use True or False",
                )
            return value
        if pd.api.types.is_numeric_dtype(dtype):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(
                    f"cannot compare numeric column {_name(name)} ({dtype}) with {value!r}",
                    lit.pos,
                    "use a number (no quotes)",
                )
            return value
        text = pd.api.types.is_string_dtype(dtype) and not isinstance(
            dtype, (np.dtype, pd.CategoricalDtype)
        )  # str, string[pyarrow], ArrowDtype(string): not object, not categories
        if not text and pd.api.types.is_object_dtype(dtype):  # pandas 2.2 keeps text as object
            text = pd.api.types.infer_dtype(ser, skipna=True) == "string"
        if text and not isinstance(value, str):
            raise self.fail(
                f"cannot compare text column {_name(name)} with {value!r}",
                lit.pos,
                "use a quoted string",
            )
        return value

    def side(self, operand: Operand, other: Operand) -> tuple[Any, str]:
        """The value of one side of a comparison, typed after the column on the other."""
        if isinstance(operand, Column):
            return self.column(operand), _name(operand.name)
        if isinstance(other, Column):
            return self.coerce(operand, self.column(other), other.name), repr(operand.value)
        raise self.fail(
            f"comparison of two literals {operand.value!r} and {other.value!r}",
            operand.pos,
            "a comparison needs a column on one side",
        )

    def compare(self, left: Operand, op: str, right: Operand, pos: int) -> np.ndarray:
        lv, lname = self.side(left, right)
        rv, rname = self.side(right, left)
        if lv is None or rv is None:
            ser = rv if lv is None else lv
            if op not in ("==", "!="):
                raise self.fail(
                    f"None compared with {op}", pos, "test missing values with == or != None"
                )
            missing = self._bool(ser.isna())
            return missing if op == "==" else ~missing
        if op == "!=":
            return ~self.compare(left, "==", right, pos)
        try:
            res = _COMPARE[op](lv, rv)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"cannot compare {lname} {op} {rname}", pos, _one_line(exc)) from None
        return self._bool(res)

    def isin(self, node: IsIn) -> np.ndarray:
        operand = node.operand
        if not isinstance(operand, Column):
            raise self.fail(
                f"{operand.value!r} before `in`", operand.pos, "`in` needs a column on its left"
            )
        ser = self.column(operand)
        values = [self.coerce(v, ser, operand.name) for v in node.values]
        present = [v for v in values if v is not None]
        try:
            out = self._bool(ser.isin(present)) if present else np.zeros(len(ser), dtype=bool)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(
                f"cannot test {_name(operand.name)} in {present!r}", node.pos, _one_line(exc)
            ) from None
        if len(present) < len(values):
            out |= self._bool(ser.isna())
        return ~out if node.negated else out


def evaluate(
    node: Node, table: pd.DataFrame, source: str = "", table_name: str = "the table"
) -> np.ndarray:
    """One boolean per row of ``table``: where the parsed expression ``node`` holds.

    Raises
    ------
    ExpressionError
        For an unknown column (the message lists the table's columns) or a literal that
        does not fit its column's type.

    Examples
    --------
    >>> import pandas as pd
    >>> from funnelkit._expr import evaluate, parse
    >>> t = pd.DataFrame({"team": ["A", "B", None], "amount": [5.0, 50.0, 20.0]})
    >>> evaluate(parse("team in ['A', None] and amount < 30"), t).tolist()
    [True, False, True]
    """
    return _Eval(source, table, table_name).run(node)


def where_mask(source: str, table: pd.DataFrame, table_name: str = "the table") -> np.ndarray:
    """Parse ``source`` and evaluate it on ``table`` (see the module's grammar).

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit._expr import where_mask
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> int(where_mask("outcome == 'won' and region != 'North'", log.deals()).sum())
    39
    """
    return evaluate(parse(source), table, source, table_name)
