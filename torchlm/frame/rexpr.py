"""R expressions evaluated in a data frame, with R's grammar and R's missing-value logic (subset=).

``subset="cyl != 4 & hp > 100"`` is R's, not Python's: ``&`` and ``|`` bind looser than comparisons,
``!`` negates, ``%in%`` is R's match, ``TRUE``/``FALSE``/``NA`` and ``is.na()`` are R's, ``^`` is a
power, and a comparison with a missing value is NA (then ``NA & FALSE`` is FALSE, ``NA | TRUE`` is TRUE,
as R's three-valued logic). A parse gives a small syntax tree that is evaluated on the data's columns
directly; no Python code is run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, FormulaError, UnknownVariableError
from torchlm.frame.data import columns_text


@dataclass(frozen=True)
class Logical:
    """An R logical vector: 1.0 TRUE, 0.0 FALSE, NaN NA.

    Parameters
    ----------
    v : numpy.ndarray
        float64 values.
    """

    v: np.ndarray


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<quoted>`[^`]+`)
  | (?P<name>(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*)
  | (?P<op>%[^%]*%|\*\*|<=|>=|==|!=|&&|\|\||[-+*/^<>!&|:(),=\[\]~$@{};])
""", re.VERBOSE)

# binding powers (R's ?Syntax, loosest first); ^ is right-associative
_BINARY = {"|": 2, "||": 2, "&": 3, "&&": 3, "==": 5, "!=": 5, "<": 5, ">": 5, "<=": 5, ">=": 5,
           "+": 6, "-": 6, "*": 7, "/": 7, ":": 9, "^": 11, "**": 11}
_NOT, _COMPARE, _SPECIAL, _UNARY_MINUS, _POWER = 4, 5, 8, 10, 11
_CONSTANTS = {"TRUE": Logical(np.array([1.0])), "FALSE": Logical(np.array([0.0])), "T": Logical(np.array([1.0])),
              "F": Logical(np.array([0.0])), "NA": Logical(np.array([np.nan])), "Inf": np.array([np.inf]),
              "NaN": np.array([np.nan]), "pi": np.array([np.pi])}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"unexpected {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


class _Parser:
    """A Pratt parser of R's expression grammar (the operators a subset or weight uses)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise FormulaError(f"expected {value!r}, found {tok[1] or 'the end'!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        tree = self.expr(0)
        if self.peek()[0] != "end":
            raise FormulaError(f"unexpected {self.peek()[1]!r} after a complete expression")
        return tree

    def expr(self, bp: int) -> tuple:
        left = self.prefix()
        compared = False
        while True:
            kind, op = self.peek()
            power = _SPECIAL if kind == "op" and op.startswith("%") else _BINARY.get(op) if kind == "op" else None
            if power is None or power <= bp:
                return left
            if power == _COMPARE and compared:  # R's comparisons do not chain (a < b < c is a syntax error)
                raise FormulaError(f"unexpected {op!r}: R's comparisons do not chain")
            compared = power == _COMPARE
            self.take()
            # ^ is right-associative: its right side may hold another ^
            left = ("binary", "^" if op == "**" else op, left, self.expr(power - 1 if power == _POWER else power))

    def prefix(self) -> tuple:
        kind, text = self.take()
        if kind == "num":
            return ("num", float(text.rstrip("L")))
        if kind == "str":
            return ("str", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1]))
        if kind in ("name", "quoted"):
            name = text[1:-1] if kind == "quoted" else text
            if kind == "name" and self.peek() == ("op", "("):
                return self.call(name)
            return ("name", name)
        if text == "(":
            inner = self.expr(0)
            self.take(")")
            return inner
        if text in ("-", "+"):
            return ("unary", text, self.expr(_UNARY_MINUS))
        if text == "!":
            return ("unary", "!", self.expr(_NOT))
        raise FormulaError(f"unexpected {text or 'end of the expression'!r}")

    def call(self, name: str) -> tuple:
        self.take("(")
        args: list[tuple] = []
        kwargs: dict[str, tuple] = {}
        while self.peek() != ("op", ")"):
            kind, text = self.peek()
            if kind == "name" and self.tokens[self.i + 1:self.i + 2] == [("op", "=")]:
                self.i += 2
                kwargs[text] = self.expr(0)
            else:
                args.append(self.expr(0))
            if self.peek() != ("op", ")"):
                self.take(",")
        self.take(")")
        return ("call", name, args, kwargs)


def parse_r(text: str) -> tuple:
    """The syntax tree of an R expression.

    Parameters
    ----------
    text : str
        An R expression such as ``"cyl != 4 & hp > 100"``.

    Returns
    -------
    tuple
        Nested tuples: ``("num", v)``, ``("str", s)``, ``("name", n)``, ``("unary", op, x)``,
        ``("binary", op, a, b)``, ``("call", f, args, kwargs)``.
    """
    return _Parser(text).parse()


def _names(tree: tuple, calls: bool = False) -> set[str]:
    """The variables an expression reads, or (``calls``) the functions it calls."""
    kind = tree[0]
    if kind == "name":
        return set() if calls else {tree[1]}
    if kind == "unary":
        return _names(tree[2], calls)
    if kind == "binary":
        return _names(tree[2], calls) | _names(tree[3], calls)
    if kind == "call":
        inner = set().union(set(), *(_names(a, calls) for a in list(tree[2]) + list(tree[3].values())))
        return inner | {tree[1]} if calls else inner
    return set()


def readable_r(text: str) -> bool:
    """Whether ``text`` is an R expression :func:`evaluate_r` reads: R's grammar, functions it has.

    Parameters
    ----------
    text : str
        The expression.

    Returns
    -------
    bool
        False for text that is not R (a pandas query such as ``"x > 0 and y < 1"``) or calls other functions.
    """
    try:
        return _names(parse_r(text), calls=True) <= set(FUNCTIONS)
    except FormulaError:
        return False


def evaluate_r(text: str, data: pd.DataFrame) -> Any:
    """An R expression evaluated with the data's columns as its variables (R's eval(expr, data)).

    Parameters
    ----------
    text : str
        The expression (R's grammar: ``&``, ``|``, ``!``, ``%in%``, ``^``, ``TRUE``, ``NA``, ``is.na()`` ...).
    data : pandas.DataFrame
        The data; never modified.

    Returns
    -------
    Logical or numpy.ndarray
        A logical vector, or numbers (float64) or text (object), of length 1 or len(data).
    """
    tree = parse_r(text)
    unknown = sorted(n for n in _names(tree) if n not in data.columns and n not in _CONSTANTS)
    if unknown:
        verb = "is not a column" if len(unknown) == 1 else "are not columns"
        raise UnknownVariableError(f"{', '.join(map(repr, unknown))} {verb} of data (columns: {columns_text(data)})")
    try:
        return _Evaluator(data).eval(tree)
    except ValueError as e:  # numpy's broadcasting: R would recycle, torchlm asks for one value per row
        if "broadcast" not in str(e):
            raise  # internal: a numpy failure other than the lengths
        raise DataError(f"the parts of {text!r} have different lengths: each is one value, or one per row "
                        f"({len(data)})") from None


def _column(col: pd.Series) -> Any:
    if pd.api.types.is_bool_dtype(col.dtype):
        return Logical(col.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = col.astype(object).to_numpy()
    return np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)


def _is_text(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def numeric(x: Any, what: str = "an arithmetic operator") -> np.ndarray:
    """R's coercion to numbers: logicals as 0/1; text is an error (R's "non-numeric argument").

    Parameters
    ----------
    x : Logical or numpy.ndarray
        A value of the evaluator.
    what : str
        What needs the numbers, for the error.

    Returns
    -------
    numpy.ndarray
        float64.
    """
    if isinstance(x, Logical):
        return x.v
    if _is_text(x):
        raise DataError(f"non-numeric argument to {what} (text values such as {next(iter(x), None)!r})")
    return np.asarray(x, dtype=np.float64)


def logical(x: Any) -> np.ndarray:
    """R's as.logical of a value: numbers are TRUE when not zero; the result as 1/0/NaN floats.

    Parameters
    ----------
    x : Logical or numpy.ndarray
        A value of the evaluator.

    Returns
    -------
    numpy.ndarray
        float64 1.0, 0.0 or NaN (NA).
    """
    if isinstance(x, Logical):
        return x.v
    v = numeric(x, "a logical operator")
    return np.where(np.isnan(v), np.nan, (v != 0).astype(np.float64))


def _compare(op: str, a: Any, b: Any) -> Logical:
    """R's comparison: text when either side is text (a factor compares by its labels), NA where either is NA."""
    if _is_text(a) or _is_text(b):
        sa, sb = np.broadcast_arrays(_as_text(a), _as_text(b))
        na = np.array([u is None or w is None for u, w in zip(sa, sb)], dtype=bool)
        result = _OPS[op](np.where(na, "", sa).astype(str), np.where(na, "", sb).astype(str)).astype(np.float64)
    else:
        x, y = numeric(a), numeric(b)
        with np.errstate(invalid="ignore"):
            result = _OPS[op](x, y).astype(np.float64)
        na = np.isnan(x) | np.isnan(y)
    return Logical(np.where(na, np.nan, result))


def _r_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _as_text(x: Any) -> np.ndarray:
    if _is_text(x):
        return x
    v = numeric(x)
    if isinstance(x, Logical):
        return np.array([None if np.isnan(u) else ("TRUE" if u else "FALSE") for u in v], dtype=object)
    return np.array([None if np.isnan(u) else _r_number(u) for u in v], dtype=object)


_OPS: dict[str, Callable[..., Any]] = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "^": np.power,
    "%%": lambda a, b: a - np.floor(a / b) * b, "%/%": lambda a, b: np.floor(a / b),
}


def _kleene(op: str, a: Any, b: Any) -> Logical:
    """R's & and |: FALSE & NA is FALSE, TRUE | NA is TRUE, otherwise NA propagates."""
    x, y = np.broadcast_arrays(logical(a), logical(b))
    if op == "&":
        out = np.where((x == 0) | (y == 0), 0.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 1.0))
    else:
        out = np.where((x == 1) | (y == 1), 1.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 0.0))
    return Logical(out)


def _match(a: Any, b: Any) -> Logical:
    """R's a %in% b: never NA (NA matches NA); text against numbers compares as R's text."""
    if _is_text(a) or _is_text(b):
        table = set(_as_text(b).tolist())
        return Logical(np.array([v in table for v in _as_text(a)], dtype=np.float64))
    x, y = numeric(a), numeric(b)
    found = np.isin(x, y[~np.isnan(y)]) | (np.isnan(x) & np.isnan(y).any())
    return Logical(found.astype(np.float64))


def _sequence(a: Any, b: Any) -> np.ndarray:
    """R's from:to for single numbers."""
    x, y = numeric(a, "':'"), numeric(b, "':'")
    if x.size != 1 or y.size != 1 or np.isnan(x[0]) or np.isnan(y[0]):
        raise DataError("':' takes two single numbers (from:to), as R's seq")
    step = 1.0 if y[0] >= x[0] else -1.0
    return x[0] + step * np.arange(int(np.floor(abs(y[0] - x[0]) + 1e-10)) + 1)


def _ifelse(test: Any, yes: Any, no: Any) -> Any:
    t = logical(test)
    if _is_text(yes) or _is_text(no):
        picked = np.where(t == 1, _as_text(yes), _as_text(no)).astype(object)
        picked[np.broadcast_to(np.isnan(t), picked.shape)] = None
        return picked
    return np.where(np.isnan(t), np.nan, np.where(t == 1, numeric(yes), numeric(no)))


def _r_log(x: Any, base: Any = None) -> np.ndarray:
    v = np.log(numeric(x, "log"))
    return v if base is None else v / np.log(numeric(base, "log"))


def _concat(*values: Any) -> Any:
    if any(_is_text(v) for v in values):
        return np.concatenate([_as_text(v) for v in values]).astype(object)
    if values and all(isinstance(v, Logical) for v in values):
        return Logical(np.concatenate([v.v for v in values]))
    return np.concatenate([np.atleast_1d(numeric(v, "c")) for v in values]) if values else np.zeros(0)


def _math(f: Callable[[np.ndarray], np.ndarray], name: str) -> Callable[[Any], np.ndarray]:
    return lambda x: f(numeric(x, name))


# R's functions an expression can call, by R's names
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "c": _concat, "is.na": lambda x: Logical(np.array([v is None for v in x], dtype=np.float64)) if _is_text(x)
    else Logical(np.isnan(numeric(x)).astype(np.float64)),
    "ifelse": _ifelse, "log": _r_log, "xor": lambda a, b: Logical(np.where(
        np.isnan(logical(a)) | np.isnan(logical(b)), np.nan, (logical(a) != logical(b)).astype(np.float64))),
    "pmin": lambda *a: np.minimum.reduce(np.broadcast_arrays(*(numeric(v, "pmin") for v in a))),
    "pmax": lambda *a: np.maximum.reduce(np.broadcast_arrays(*(numeric(v, "pmax") for v in a))),
    "as.numeric": lambda x: numeric(x, "as.numeric"), "I": lambda x: x,
    **{k: _math(f, k) for k, f in {
        "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
        "expm1": np.expm1, "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil,
        "trunc": np.trunc, "sign": np.sign}.items()},
}


class _Evaluator:
    """Evaluates a syntax tree of :func:`parse_r` on a data frame's columns."""

    def __init__(self, data: pd.DataFrame) -> None:
        self.data = data

    def eval(self, tree: tuple) -> Any:
        kind = tree[0]
        if kind == "num":
            return np.array([tree[1]])
        if kind == "str":
            return np.array([tree[1]], dtype=object)
        if kind == "name":
            return _column(self.data[tree[1]]) if tree[1] in self.data.columns else _CONSTANTS[tree[1]]
        if kind == "unary":
            x = self.eval(tree[2])
            if tree[1] == "!":
                return Logical(1.0 - logical(x))
            return -numeric(x) if tree[1] == "-" else numeric(x)
        if kind == "call":
            return self.call(tree[1], tree[2], tree[3])
        return self.binary(tree[1], self.eval(tree[2]), self.eval(tree[3]))

    def binary(self, op: str, a: Any, b: Any) -> Any:
        if op in ("&", "|"):
            return _kleene(op, a, b)
        if op in ("&&", "||"):
            if np.size(logical(a)) != 1 or np.size(logical(b)) != 1:
                raise DataError(f"R's {op} compares single values (an error in R >= 4.2 for longer ones): "
                                f"use {op[0]} to combine conditions row by row")
            return _kleene(op[0], a, b)
        if op in ("==", "!=", "<", ">", "<=", ">="):
            return _compare(op, a, b)
        if op == "%in%":
            return _match(a, b)
        if op == ":":
            return _sequence(a, b)
        if op not in _OPS:
            raise FormulaError(f"the operator {op} is not one an expression here can use (R's arithmetic, "
                               "comparisons, &, |, !, %in%, %%, %/% and :)")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _OPS[op](*np.broadcast_arrays(numeric(a), numeric(b)))

    def call(self, name: str, args: list[tuple], kwargs: dict[str, tuple]) -> Any:
        f = FUNCTIONS.get(name)
        if f is None:
            raise FormulaError(f"{name}() is not a function an expression here knows; it knows "
                               f"{', '.join(sorted(FUNCTIONS))}")
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return f(*(self.eval(a) for a in args), **{k: self.eval(v) for k, v in kwargs.items()})
        except TypeError as e:
            raise FormulaError(f"{name}(): {e}") from None
