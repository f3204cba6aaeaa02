"""R's order of evaluation for stateful transforms: ns(), bs(), poly() and scale() learn on every row of the data.

R's model.frame evaluates the formula's variables on every row of ``data``, before it applies ``subset=``
and before na.action drops the rows with a missing value; what a transform learns there (the knots and
boundary knots of ns and bs, poly's coefficients, scale's centre and scale) codes the rows the fit uses
and, through makepredictcall, newdata. Each transform leaves out the missing values of its own argument
(ns, bs and scale do), except R's orthogonal poly(), which refuses them.

formulaic learns a transform's state on the rows it is given: :func:`learned_state` evaluates the
stateful factors alone on every row of the data, so that the design of the rows used can be built
with that state (formulaic's ``transform_state``) instead of one learnt on those rows.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from formulaic import Formula
from formulaic.parser.types import Factor
from formulaic.transforms import TRANSFORMS
from formulaic.utils.layered_mapping import LayeredMapping
from formulaic.utils.stateful_transforms import stateful_eval
from formulaic.utils.variables import get_expression_variables

from torchlm.errors import DataError, TorchlmError
from torchlm.frame.data import prepare_columns
from torchlm.frame.rfunctions import formula_context

# formulaic's stateful transforms and torchlm's (ns, bs, poly); Q() only looks a name up
_NAMES = sorted(k for k, f in {**TRANSFORMS, **formula_context()}.items()
                if k != "Q" and getattr(f, "__is_stateful_transform__", False))
STATEFUL_CALL = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, _NAMES)) + r")\s*\(")
_POLY = re.compile(r"(?<![\w.])poly\s*\(")
_RAW = re.compile(r"\braw\s*=\s*(True|1)\b")
_POLY_DEGREE = re.compile(r"poly\((\w+), (?:degree=)?(\d+)\)")


_QUOTED = "__torchlm_quoted__"


def expression_variables(expr: str) -> set[str]:
    """The names an expression of formulaic's reads (its columns, and the functions it calls).

    Parameters
    ----------
    expr : str
        A factor's Python expression (``"ns(wt, df=3)"``).

    Returns
    -------
    set of str
        The names; the expression itself when it is not Python (a name formulaic looks up as it stands).
    """
    # R's backquoted names (`Sepal.Length`) are not Python: read them apart, the rest with a placeholder
    quoted = set(re.findall(r"`([^`]*)`", expr))
    try:
        names = {str(v) for v in get_expression_variables(re.sub(r"`[^`]*`", _QUOTED, expr), {})}
    except Exception:  # not Python: a name formulaic looks up as it stands
        return {expr}
    return (names - {_QUOTED}) | quoted


def stateful_expressions(f: Formula | None) -> list[str]:
    """The factors of a formula (both sides) that call a stateful transform (``ns(wt, df=3)``, ``scale(hp)``).

    Parameters
    ----------
    f : formulaic Formula or None
        The formula as formulaic reads it (None: no factors).

    Returns
    -------
    list of str
        The factors' expressions, each once, in the formula's order.
    """
    if f is None:
        return []
    exprs = [fa.expr for side in (f.lhs, f.rhs) for term in side for fa in term.factors
             if fa.eval_method == Factor.EvalMethod.PYTHON and STATEFUL_CALL.search(fa.expr)]
    return list(dict.fromkeys(exprs))


def check_poly(exprs: list[str], data: pd.DataFrame) -> None:
    """R's errors of poly() on every row of the data: missing values, too few distinct points for the degree.

    Parameters
    ----------
    exprs : list of str
        Stateful factors (see :func:`stateful_expressions`).
    data : pandas.DataFrame
        Every row of the data (before subset= and the removal of rows with missing values, as R's poly sees it).

    Returns
    -------
    None
    """
    for expr in exprs:
        if not _POLY.search(expr) or _RAW.search(expr):
            continue
        for v in _columns(expr, data):
            if (k := int(pd.isna(data[v]).sum())):
                raise DataError(f"{expr}: missing values are not allowed in 'poly' (R's poly(), whatever na_action "
                                f"or subset: {v!r} has {k} missing, and R evaluates poly() on every row of data); "
                                "drop those rows from the data first, or use raw=TRUE")
        m = _POLY_DEGREE.fullmatch(expr)
        if m and m.group(1) in data.columns and (k := data[m.group(1)].nunique()) <= int(m.group(2)):
            raise DataError(f"{expr}: 'degree' must be less than number of unique points (R's poly; {m.group(1)!r} "
                            f"has {k}): lower the degree")


def learned_state(exprs: list[str], data: pd.DataFrame) -> dict[str, Any]:
    """formulaic's transform state of the stateful factors, learnt as R's model.frame does: on every row of data.

    Each factor is evaluated on the rows where the columns it reads are not missing (ns, bs and scale
    leave out the missing values of their argument, as R's do).

    Parameters
    ----------
    exprs : list of str
        Stateful factors (see :func:`stateful_expressions`).
    data : pandas.DataFrame
        Every row of the data (never modified).

    Returns
    -------
    dict
        formulaic's ``transform_state``: each transform call's state (knots, poly's coefficients, means...).
        A factor that cannot be evaluated is left out (the design's materialization reports it).
    """
    state: dict[str, Any] = {}
    for expr in exprs:
        names = _columns(expr, data)
        if not names:
            continue  # no column of the data: nothing a row could change
        rows = prepare_columns(data[names].reset_index(drop=True), names)
        missing = rows.isna().to_numpy().any(axis=1)
        if missing.all():
            continue  # every value missing: the design reports it
        if missing.any():
            rows = rows.loc[~missing].reset_index(drop=True)
        own: dict[str, Any] = {}
        try:
            stateful_eval(expr, LayeredMapping(rows, formula_context(), TRANSFORMS), {}, own, None)
        except TorchlmError:
            raise
        except Exception:  # noqa: BLE001 - materialize names the problem in the formula's terms
            continue
        state.update({k: v for k, v in own.items() if k not in state})
    return state


def _columns(expr: str, data: pd.DataFrame) -> list[str]:
    """The data's columns an expression reads, in the data's order."""
    names = expression_variables(expr)
    return [c for c in data.columns if c in names]
