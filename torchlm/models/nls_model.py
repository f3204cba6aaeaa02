"""R's nlsModel: a nonlinear formula read as R reads it, its parameters, and its residuals evaluated with torch.

``"y ~ b1*(1-exp(-b2*x))"`` is parsed with R's grammar (``^`` a power, R's precedence, ``b[1]`` an element
of a vector parameter, ``a[g]`` a parameter indexed by a factor's codes) into a small syntax tree, which
is evaluated on the data's columns and the parameters as torch operations, so that autograd gives the
Jacobian exactly. No Python code is run from the formula's text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import DataError, FormulaError, ModelInputError, UnknownVariableError
from torchlm.frame.data import as_frame, columns_text
from torchlm.frame.model_frame import model_frame
from torchlm.present.deparse import Node, deparse, parse

_CONSTANTS = {"pi": math.pi, "TRUE": 1.0, "FALSE": 0.0, "T": 1.0, "F": 0.0, "Inf": math.inf}


def _r_log(x: torch.Tensor, base: Any = None) -> torch.Tensor:
    return torch.log(x) if base is None else torch.log(x) / torch.log(torch.as_tensor(base, dtype=x.dtype))


# R's functions a model can call, by R's names, as torch operations (differentiable where R's are)
FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "exp": torch.exp, "log": _r_log, "sqrt": torch.sqrt, "abs": torch.abs, "sin": torch.sin, "cos": torch.cos,
    "tan": torch.tan, "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "atan2": torch.atan2,
    "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "asinh": torch.asinh, "acosh": torch.acosh,
    "atanh": torch.atanh, "log10": torch.log10, "log2": torch.log2, "log1p": torch.log1p, "expm1": torch.expm1,
    "lgamma": torch.lgamma, "digamma": torch.digamma, "sign": torch.sign, "floor": torch.floor,
    "ceiling": torch.ceil, "trunc": torch.trunc, "pnorm": torch.special.ndtr, "qnorm": torch.special.ndtri,
    "dnorm": lambda x: torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
    "plogis": torch.sigmoid, "qlogis": torch.logit,
    "dlogis": lambda x: torch.sigmoid(x) * torch.sigmoid(-x),
    "pmin": lambda *a: _fold(torch.minimum, a), "pmax": lambda *a: _fold(torch.maximum, a),
    "ifelse": lambda c, a, b: torch.where(torch.as_tensor(c) != 0, a, b), "I": lambda x: x,
}

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "^": torch.pow,
    "<": torch.lt, ">": torch.gt, "<=": torch.le, ">=": torch.ge, "==": torch.eq, "!=": torch.ne,
    "&": torch.logical_and, "|": torch.logical_or,
}


def _fold(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], args: tuple) -> torch.Tensor:
    out = torch.as_tensor(args[0])
    for a in args[1:]:
        out = f(out, torch.as_tensor(a, dtype=out.dtype))
    return out


@dataclass(frozen=True)
class Parameter:
    """One entry of ``start``: its name, where it lies in the flat parameter vector, its length."""

    name: str
    offset: int
    length: int
    vector: bool


def parameters_of(start: Any) -> tuple[list[Parameter], list[str], np.ndarray]:
    """The parameters of ``start`` (R's start list): their layout, R's coefficient names and the flat start.

    Parameters
    ----------
    start : dict of str to float or list of floats (a pandas Series or a list of pairs works too)
        A list makes a vector parameter, used as ``b[1]``, ``b[2]`` in the formula.

    Returns
    -------
    tuple of (list of Parameter, list of str, numpy.ndarray)
        The parameters, the coefficient names (R's unlist names: ``b1``, ``b2`` for a vector ``b``) and the
        starting values (float64).
    """
    if isinstance(start, pd.Series):
        start = start.to_dict()
    if not isinstance(start, Mapping):
        try:
            start = dict(start)
        except (TypeError, ValueError):
            raise ModelInputError("start must be a dict of parameter names to starting values, e.g. "
                                  "start={'b1': 1.0, 'b2': 0.1}") from None
    if not start:
        raise ModelInputError("start is empty: no parameters to fit (R's error); give a starting value for every "
                              "parameter of the formula, e.g. start={'b1': 1.0, 'b2': 0.1}")
    params, names, values, offset = [], [], [], 0
    for name, value in start.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ModelInputError(f"parameter names in start must be names usable in a formula, not {name!r}")
        vector = not np.isscalar(value) and not (isinstance(value, np.ndarray) and value.ndim == 0)
        try:
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
        except (TypeError, ValueError):
            raise ModelInputError(f"start[{name!r}] must be a number or a list of numbers, not {value!r}") from None
        if arr.size == 0 or not np.isfinite(arr).all():
            raise ModelInputError(f"start[{name!r}] must hold finite numbers, not {value!r}")
        params.append(Parameter(name, offset, arr.size, vector))
        names += [f"{name}{i + 1}" for i in range(arr.size)] if vector else [name]
        values.append(arr)
        offset += arr.size
    return params, names, np.concatenate(values)


def split_formula(formula: str) -> tuple[Node | None, Node, Node]:
    """R's formula read as nls reads it: the response (None for a one-sided formula) and the model.

    Parameters
    ----------
    formula : str
        ``"y ~ b1*(1-exp(-b2*x))"`` (R's grammar).

    Returns
    -------
    tuple of (Node or None, Node, Node)
        The response's tree, the model's tree and the whole formula's (for R's deparse).
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string such as 'y ~ b1*(1-exp(-b2*x))', not {type(formula).__name__}")
    tree = parse(formula)
    if tree.kind == "binary" and tree.value == "~":
        return tree.args[0], tree.args[1], tree
    if tree.kind == "unary" and tree.value == "~":
        return None, tree.args[0], tree
    raise FormulaError(f"{formula!r} is not a formula: write the response, ~ and the model, e.g. "
                       "'y ~ b1*(1-exp(-b2*x))'")


def names_in(node: Node) -> list[str]:
    """The variables a tree reads (not the functions it calls), in order of appearance.

    Returns
    -------
    list of str
    """
    out: list[str] = []

    def walk(n: Node) -> None:
        if n.kind == "name":
            out.append(n.value[1:-1] if n.value.startswith("`") else n.value)
        elif n.kind in ("call", "index"):
            if n.kind == "index":
                walk(n.args[0][1])
            for _, a in n.args[1:]:
                walk(a)
        else:
            for a in n.args:
                walk(a)

    walk(node)
    return list(dict.fromkeys(out))


class Evaluator:
    """Evaluates a formula's tree as torch operations on named values (columns and parameters).

    Parameters
    ----------
    values : dict of str to torch.Tensor
        The data's columns at the rows used and the parameters' current values (0-d or 1-d tensors).
    codes : dict of str to torch.Tensor
        Integer codes (0-based) of the columns that may index a vector parameter (factors, integers).
    """

    def __init__(self, values: dict[str, torch.Tensor], codes: dict[str, torch.Tensor]) -> None:
        self.values, self.codes = values, codes

    def eval(self, n: Node) -> Any:
        """The value of the tree ``n``.

        Returns
        -------
        torch.Tensor or float
        """
        kind = n.kind
        if kind == "num":
            return float(n.value.rstrip("L"))
        if kind == "name":
            name = n.value[1:-1] if n.value.startswith("`") else n.value
            return self.values[name] if name in self.values else _CONSTANTS[name]
        if kind == "paren":
            return self.eval(n.args[0])
        if kind == "unary":
            x = self.eval(n.args[0])
            if n.value == "!":
                return torch.logical_not(torch.as_tensor(x))
            return -x if n.value == "-" else x
        if kind == "binary":
            return self.binary(n)
        if kind == "index":
            return self.index(n)
        if kind == "call":
            return self.call(n)
        raise FormulaError(f"a {kind} ({n.value!r}) cannot appear in an nls model")

    def binary(self, n: Node) -> Any:
        """A binary operator: R's arithmetic, comparisons, & and |.

        Returns
        -------
        torch.Tensor or float
        """
        op = n.value
        f = _BINARY.get(op)
        if f is None:
            raise FormulaError(f"the operator {op!r} cannot be used in an nls model (R's arithmetic + - * / ^, "
                               "comparisons, & and |)")
        a, b = self.eval(n.args[0]), self.eval(n.args[1])
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return float(f(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
        return f(a, b)

    def index(self, n: Node) -> torch.Tensor:
        """``b[1]``, ``b[2:3]`` or ``a[g]`` (g a factor or integer column: one element per row).

        Returns
        -------
        torch.Tensor
        """
        target, rest = n.args[0][1], n.args[1:]
        if target.kind != "name" or len(rest) != 1:
            raise FormulaError("an nls model indexes a vector parameter by one index: b[1], b[2:3] or b[g]")
        vec = self.eval(target)
        if not isinstance(vec, torch.Tensor) or vec.ndim != 1:
            raise FormulaError(f"{target.value}[...] indexes a vector parameter; {target.value} is not one")
        idx = rest[0][1]
        if idx.kind == "name" and idx.value in self.codes:
            pos = self.codes[idx.value]
        else:
            value = self.eval(idx)
            pos = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
            if not bool((pos == torch.round(pos)).all()):
                raise FormulaError(f"the index of {target.value}[...] must be whole numbers")
            pos = pos.to(torch.long) - 1
        if pos.numel() and (int(pos.min()) < 0 or int(pos.max()) >= vec.numel()):
            raise FormulaError(f"{target.value}[...] is out of range: {target.value} has {vec.numel()} elements "
                               f"(R indexes from 1)")
        out = vec[pos.to(vec.device)]
        return out[0] if idx.kind == "num" else out

    def call(self, n: Node) -> Any:
        """A call of one of R's functions (:data:`FUNCTIONS`).

        Returns
        -------
        torch.Tensor
        """
        fn = n.args[0][1]
        name = fn.value if fn.kind == "name" else ""
        f = FUNCTIONS.get(name)
        if f is None:
            raise FormulaError(f"{name or 'this'}() is not a function an nls model can call; it can call "
                               f"{', '.join(sorted(FUNCTIONS))}")
        args = [self.eval(a) for k, a in n.args[1:] if not k]
        kwargs = {k: self.eval(a) for k, a in n.args[1:] if k}
        like = next((a for a in args if isinstance(a, torch.Tensor)), None)
        args = [torch.as_tensor(a, dtype=torch.float64 if like is None else like.dtype,
                                device=None if like is None else like.device) if not isinstance(a, torch.Tensor)
                else a for a in args]
        try:
            return f(*args, **kwargs)
        except TypeError as e:
            raise FormulaError(f"{name}(): {e}") from None


@dataclass
class NonlinearModel:
    """A fitted-to-be nonlinear model: the formula's trees, the parameters and the data at the rows used.

    ``residual(beta) = sqrt(w) * (f(beta) - y)``, whose sum of squares is the deviance; autograd differentiates
    it (the Jacobian is sqrt(w) times R's gradient of the model).
    """

    formula: str
    lhs: Node | None
    rhs: Node
    tree: Node
    params: list[Parameter]
    coef_names: list[str]
    columns: dict[str, torch.Tensor]
    codes: dict[str, torch.Tensor]
    y: torch.Tensor
    swts: torch.Tensor | None
    n: int
    levels: dict[str, list | None] = field(default_factory=dict)

    def split(self, beta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameters' values from the flat vector ``beta``: scalars for scalar parameters.

        Returns
        -------
        dict of str to torch.Tensor
        """
        return {p.name: beta[p.offset:p.offset + p.length] if p.vector else beta[p.offset] for p in self.params}

    def evaluate(self, node: Node, beta: torch.Tensor, columns: dict[str, torch.Tensor] | None = None,
                 codes: dict[str, torch.Tensor] | None = None, n: int | None = None) -> torch.Tensor:
        """A tree's value at ``beta``, one per row (a constant broadcast to every row).

        Returns
        -------
        torch.Tensor
            (n,)
        """
        cols = self.columns if columns is None else columns
        value = Evaluator({**cols, **self.split(beta)}, self.codes if codes is None else codes).eval(node)
        rows = self.n if n is None else n
        value = torch.as_tensor(value, dtype=beta.dtype, device=beta.device)
        if value.dtype == torch.bool:
            value = value.to(beta.dtype)
        if value.ndim == 0 or value.shape == (1,):
            return value.reshape(()).expand(rows)
        if value.shape != (rows,):
            raise DataError(f"the model gives {tuple(value.shape)} values, not one per row ({rows})")
        return value

    def fitted(self, beta: torch.Tensor) -> torch.Tensor:
        """The model's values f(beta) at the rows used.

        Returns
        -------
        torch.Tensor
            (n,)
        """
        return self.evaluate(self.rhs, beta)

    def residual(self, beta: torch.Tensor) -> torch.Tensor:
        """sqrt(w) * (f(beta) - y): the residual whose sum of squares is minimised.

        Returns
        -------
        torch.Tensor
            (n,)
        """
        r = self.fitted(beta) - self.y
        return r if self.swts is None else self.swts * r


def model_variables(lhs: Node | None, rhs: Node, params: list[Parameter], data: pd.DataFrame) -> list[str]:
    """The data's columns the formula reads, after checking every name is a column, a parameter or a constant.

    Returns
    -------
    list of str
        The columns, in order of appearance (the response's first).
    """
    pnames = [p.name for p in params]
    used_rhs = names_in(rhs)
    used_lhs = names_in(lhs) if lhs is not None else []
    if in_lhs := [v for v in used_lhs if v in pnames]:
        raise FormulaError(f"the response uses the parameter(s) {', '.join(in_lhs)}: the parameters belong on the "
                           "right of ~")
    unused = [p for p in pnames if p not in used_rhs]
    if unused:
        raise ModelInputError(f"start has parameter(s) {', '.join(map(repr, unused))} that the formula does not "
                              f"use; the formula's names are {', '.join(used_rhs) or 'none'}")
    names = [v for v in dict.fromkeys(used_lhs + used_rhs) if v not in pnames]
    unknown = [v for v in names if v not in data.columns and v not in _CONSTANTS]
    if unknown:
        # R: "parameters without starting value in 'data': d"
        raise UnknownVariableError(
            f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} neither a column of data nor a "
            f"parameter in start (R: parameters without starting value in 'data': {', '.join(unknown)}); "
            f"columns: {columns_text(data)}; parameters: {', '.join(pnames)}")
    return [v for v in names if v in data.columns]


def column_tensors(frame_values: dict[str, pd.Series], index_names: set[str], device: torch.device,
                   dtype: torch.dtype, levels: dict[str, list | None] | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, list | None]]:
    """The columns a model reads as tensors: numbers (logicals as 0/1), and level codes for indexing.

    Parameters
    ----------
    frame_values : dict of str to pandas.Series
        The columns at the rows used.
    index_names : set of str
        The columns that index a vector parameter (``a[g]``): their codes are kept.
    device, dtype : where the tensors live.
    levels : the levels of the index columns to code by (predict's newdata: the fit's); default their own
        (a factor's levels, R's; the sorted values of other columns; whole numbers as R's 1-based positions).

    Returns
    -------
    tuple of (dict, dict, dict)
        {name: (n,) float tensor} for numeric columns, {name: (n,) long codes (0-based)} for index columns and
        {name: levels} (None for whole numbers used as positions).
    """
    cols: dict[str, torch.Tensor] = {}
    codes: dict[str, torch.Tensor] = {}
    used: dict[str, list | None] = {}
    for name, s in frame_values.items():
        numeric = pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
        if name in index_names:
            known = None if levels is None else levels.get(name)
            if known is None and isinstance(s.dtype, pd.CategoricalDtype):
                known = list(s.cat.categories)
            elif known is None and not (numeric and np.all(np.mod(s.to_numpy(dtype=float), 1) == 0)):
                known = sorted(pd.unique(s))
            if known is None:
                c = s.to_numpy(dtype=np.int64) - 1
            else:
                mapped = s.astype(object).map({v: i for i, v in enumerate(known)})
                if mapped.isna().any():
                    bad = sorted(set(s.astype(object)[mapped.isna()].astype(str)))
                    raise DataError(f"column {name!r} has level(s) {bad} that the fit did not have ({known})")
                c = mapped.to_numpy(dtype=np.int64)
            codes[name] = torch.as_tensor(np.asarray(c, dtype=np.int64), device=device)
            used[name] = known
        if numeric:
            cols[name] = torch.as_tensor(s.to_numpy(dtype=np.float64, copy=True), dtype=dtype, device=device)
        elif name not in index_names:
            raise DataError(f"column {name!r} is not numeric ({s.dtype}): an nls model computes with numbers; "
                            f"a factor can only index a vector parameter, as a[{name}]")
    return cols, codes, used


def index_columns(node: Node) -> set[str]:
    """The names used as the index of a vector parameter (``a[g]``).

    Returns
    -------
    set of str
    """
    out: set[str] = set()

    def walk(n: Node) -> None:
        if n.kind == "index":
            for _, a in n.args[1:]:
                if a.kind == "name":
                    out.add(a.value)
        for a in n.args:
            if isinstance(a, tuple):
                walk(a[1])
            elif isinstance(a, Node):
                walk(a)

    walk(node)
    return out


def build_model(formula: str, data: Any, start: Any, *, weights: Any = None, subset: Any = None,
                na_action: str = "omit", device: torch.device | None = None,
                dtype: torch.dtype = torch.float64) -> tuple[NonlinearModel, np.ndarray, Any]:
    """R's nlsModel: the formula, the parameters and the rows used (R's model.frame over the formula's variables).

    Returns
    -------
    tuple of (NonlinearModel, numpy.ndarray, ModelFrame)
        The model, the flat start and the frame of the rows used.
    """
    lhs, rhs, tree = split_formula(formula)
    params, coef_names, x0 = parameters_of(start)
    frame = as_frame(data)
    variables = model_variables(lhs, rhs, params, frame)
    mf = model_frame(frame, variables, weights=weights, subset=subset, na_action=na_action)
    dev = torch.device("cpu") if device is None else device
    cols, codes, levels = column_tensors({v: mf.column(v) for v in variables}, index_columns(rhs), dev, dtype)
    swts = None if mf.weights is None else torch.as_tensor(np.sqrt(mf.weights), dtype=dtype, device=dev)
    model = NonlinearModel(formula, lhs, rhs, tree, params, coef_names, cols, codes,
                           torch.zeros(mf.n, dtype=dtype, device=dev), swts, mf.n, levels)
    if lhs is not None:
        model.y = model.evaluate(lhs, torch.as_tensor(x0, dtype=dtype, device=dev))
    return model, x0, mf


def deviance_noise(model: NonlinearModel) -> Callable[[Any], float]:
    """The rounding level of the deviance at a point: 8 eps sum |e_i| sqrt(w_i) (|f_i| + |y_i|), the error that
    evaluating the model in floating point leaves in the sum of squares.

    Returns
    -------
    callable
        Point -> float.
    """
    eps = float(torch.finfo(model.y.dtype).eps)

    def noise(pt: Any) -> float:
        with torch.no_grad():
            size = model.fitted(pt.x).abs() + model.y.abs()
            if model.swts is not None:
                size = size * model.swts
            return 8 * eps * float((pt.e.abs() * size).sum()) + 8 * eps * pt.rss

    return noise


def new_columns(model: NonlinearModel, newdata: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """predict's newdata as the model's columns (the fit's levels for the index columns).

    Returns
    -------
    tuple of (dict, dict, int)
        The numeric columns, the index codes and the number of rows.
    """
    frame = as_frame(newdata)
    needed = [v for v in names_in(model.rhs) if v not in {p.name for p in model.params} and v not in _CONSTANTS]
    missing = [v for v in needed if v not in frame.columns]
    if missing:
        raise UnknownVariableError(f"newdata has no column {', '.join(map(repr, missing))}, which the model uses "
                                   f"(columns: {columns_text(frame)})")
    ref = next(iter(model.columns.values()), model.y)
    cols, codes, _ = column_tensors({v: frame[v] for v in needed}, set(model.codes), ref.device, ref.dtype,
                                    model.levels)
    return cols, codes, len(frame)


def substitute_dots(formula: str, lhs: Node | None, rhs: Node) -> str:
    """A new formula with ``.`` on each side replaced by the old side (the model in parentheses).

    Returns
    -------
    str
        R's deparse of the result.
    """
    new_lhs, new_rhs, _ = split_formula(formula)

    def sub(n: Node, old: Node) -> Node:
        if n.kind == "name" and n.value == ".":
            return old
        args = tuple((a[0], sub(a[1], old)) if isinstance(a, tuple) else sub(a, old) for a in n.args)
        return Node(n.kind, n.value, args)

    right = sub(new_rhs, Node("paren", args=(rhs,)))
    if new_lhs is None:
        return deparse(Node("unary", "~", (right,)))
    left = sub(new_lhs, lhs if lhs is not None else Node("num", "0"))
    return deparse(Node("binary", "~", (left, right)))
