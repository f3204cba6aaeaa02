"""R's model.frame() of a fitted model, as broom's augment starts from it: the variables of the formula (response
first, each as R names it: ``log(mpg)``, ``factor(cyl)``, ``offset(log(t))``), then "(weights)" and
"(offset)", at the rows used (na.omit) or at every row of the data's subset (na.exclude's padding).

A factor is a pandas Categorical of R's level texts; a matrix-valued variable (``poly(x, 2)``,
``cbind(s, f)``) gives one column per matrix column, named as R's as.data.frame names them
(``poly(x, 2).1``, ``cbind(s, f).s``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import OptionError, TorchlmError
from torchlm.frame import evaluate_variable
from torchlm.frame.formula import r_spelling
from torchlm.frame.rnames import level_text
from torchlm.inference.rterms import model_terms
from torchlm.present.broom import r_rownames
from torchlm.present.deparse import Node, deparse, parse
from torchlm.present.rformat import row_labels
from torchlm.results.design_methods import padded_rows


def _call(node: Node) -> tuple[str, list[Node]]:
    """The function's name and arguments of a call node ("" and [] for anything else)."""
    if node.kind != "call" or not node.args:
        return "", []
    return deparse(node.args[0][1]), [a for _, a in node.args[1:]]


def _as_column(value: Any, rows: np.ndarray) -> Any:
    """A variable's values at ``rows``: a factor (formulaic's FactorValues) as a Categorical of R's level texts."""
    raw = getattr(value, "__wrapped__", value)
    if type(value).__name__ == "FactorValues":
        raw = pd.Series(raw) if not isinstance(raw, pd.Series) else raw
        if isinstance(raw.dtype, pd.CategoricalDtype):
            return raw.iloc[rows].reset_index(drop=True)
        levels = sorted(pd.unique(raw.dropna()))
        text = {v: level_text(v) for v in levels}
        part = raw.iloc[rows]
        return pd.Categorical([text.get(v) if not pd.isna(v) else None for v in part],
                              categories=[text[v] for v in levels])
    if isinstance(raw, pd.Series):
        return raw.iloc[rows].reset_index(drop=True)
    return np.asarray(raw)[rows]


def _variable_columns(data: pd.DataFrame, text: str, rows: np.ndarray) -> dict[str, Any]:
    """One variable of R's model frame at ``rows``: its column (R's name), or a matrix's columns "name.1" ...."""
    fn, args = _call(parse(text))
    expr = deparse(args[0]) if fn == "offset" and len(args) == 1 else text
    if fn == "cbind":
        return {f"{text}.{deparse(a)}": _variable_columns(data, deparse(a), rows)[deparse(a)] for a in args}
    try:
        value = evaluate_variable(data, r_spelling(expr))
    except TorchlmError as e:
        raise OptionError(f"augment() cannot rebuild the model frame's column {text!r} ({e}); pass the data "
                          "as augment(data=...)") from None
    col = _as_column(value, rows)
    if isinstance(col, np.ndarray) and col.ndim == 2:
        return {f"{text}.{j + 1}": col[:, j] for j in range(col.shape[1])}
    return {text: col}


def _argument_column(data: pd.DataFrame, value: Any, rows: np.ndarray, fitted: np.ndarray,
                     pos: np.ndarray) -> np.ndarray:
    """A weights= or offset= argument at ``rows``: a column (or expression) of the data, or an array over its rows."""
    if isinstance(value, str):
        try:
            return np.asarray(evaluate_variable(data, r_spelling(value)), dtype=float)[rows]
        except TorchlmError:
            pass
    else:
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 1 and len(arr) == len(data):
            return arr[rows]
    full = np.full(len(rows), np.nan)  # the fit's values at the rows used, NA at the rows it pads
    full[pos] = fitted
    return full


def design_frame(fit: Any, padded: bool) -> pd.DataFrame:
    """R's model.frame(fit) (the rows used) or, padded, model.frame(fit, na.action = na.pass) (the subset's rows).

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
    padded : bool
        Every row of the (subset of the) data, as a fit with na.exclude pads its results.

    Returns
    -------
    pandas.DataFrame
        ``.rownames`` (where R's row names are not 1, ..., n), R's variables (response first), then
        "(weights)" and "(offset)" where the fit has them.
    """
    d = fit.design
    mf = d.frame
    if mf is None or d.data is None:
        raise OptionError("this fit keeps no data to rebuild its model frame from: pass augment(data=...)")
    data = mf.data
    used = np.asarray(mf.rows)
    rows = (np.arange(len(data)) if mf.subset is None else np.flatnonzero(mf.subset)) if padded else used
    cols: dict[str, Any] = {}
    for v in model_terms(fit).variables:
        cols.update(_variable_columns(data, v, rows))
    pos = padded_rows(d)[0] if padded else np.arange(len(used))
    refit = getattr(fit, "_refit", None)
    # the weights= and offset= arguments as given (a binomial cbind() response's weights are its totals
    # times them, and the offset has the offset() terms added, in the frame)
    given = refit.arguments if refit is not None else {"weights": mf.weights_column, "offset": mf.offset_column}
    for name, value, fitted in (("(weights)", given.get("weights"), mf.weights),
                                ("(offset)", given.get("offset"), mf.offset)):
        if value is not None and fitted is not None:
            cols[name] = _argument_column(data, value, rows, fitted, pos)
    out = pd.DataFrame(cols)
    names = r_rownames(row_labels(data.index[rows], data.index))
    if names is not None:
        out.insert(0, ".rownames", names)
    return out


def first_name(node: Node) -> str | None:
    """The first variable of an expression (R's all.vars(...)[1]): function names are not variables.

    Returns
    -------
    str or None
    """
    if node.kind == "name":
        return node.value
    parts = [a for _, a in node.args[1:]] if node.kind == "call" else list(node.args)
    for part in parts:
        if isinstance(part, tuple):
            part = part[1]
        if isinstance(part, Node) and (found := first_name(part)) is not None:
            return found
    return None
