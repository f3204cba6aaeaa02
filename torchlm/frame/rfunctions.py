"""R's functions that formulas call and formulaic does not have under R's name (sqrt, abs, factor, ns, bs, c, ...).

formulaic evaluates a term's Python expression among the data's columns and its own transforms
(log, exp, scale, poly, C, I); these are added to that namespace wherever torchlm evaluates a term
(fitting, predict's newdata, weights= and subset= expressions), so that R's spellings port as written.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers.types import FactorValues
from formulaic.transforms import C
from formulaic.transforms import poly as formulaic_poly
from formulaic.transforms.contrasts import Contrasts
from formulaic.utils.stateful_transforms import stateful_transform
from scipy import special

from torchlm.errors import DataError, OptionError
from torchlm.frame.contrasts import as_contrast, factor_codes, ordered
from torchlm.frame.splines import as_float, bs, ns


def relevel(x: Any, ref: Any) -> pd.Series:
    """R's relevel(x, ref): a factor whose first (reference) level is ``ref``, the others in their order.

    Parameters
    ----------
    x : array-like
        The values (a column; a Categorical keeps its categories' order, other values are sorted).
    ref : Any
        The level to make the reference.

    Returns
    -------
    pandas.Series
        The factor (categorical) with ``ref`` first, on x's index.
    """
    values = x if isinstance(getattr(x, "dtype", None), pd.CategoricalDtype) else pd.Categorical(np.asarray(x))
    levels = list(pd.Categorical(values).categories)
    if ref not in levels:
        raise DataError(f"relevel: ref {ref!r} is not a level of the factor (levels {levels[:10]})")
    factor = pd.Categorical(values, categories=[ref] + [lv for lv in levels if lv != ref])
    return pd.Series(factor, index=getattr(x, "index", None))  # formulaic reads Series, not bare Categoricals


@stateful_transform
def poly(x: Any, degree: int = 1, raw: bool = False, _state: dict = {}) -> Any:  # noqa: B006  (formulaic's state)
    """R's poly(x, degree, raw): formulaic's orthogonal polynomials (their coefficients reused on newdata, as R's).

    ``raw = TRUE`` gives x, x^2, ... computed in double precision as R does, its columns named
    ``poly(x, 2, raw=True)[1]``, ``[2]`` as R numbers them (formulaic's own raw poly numbers them from 0).

    Parameters
    ----------
    x : array-like
        The variable.
    degree : int
        The degree.
    raw : bool
        Raw powers instead of orthogonal polynomials.
    _state : dict
        formulaic's state of the orthogonal polynomials (their recurrence coefficients).

    Returns
    -------
    formulaic FactorValues
        The columns, named ``[1]`` to ``[degree]``.
    """
    if not raw:
        return formulaic_poly(x, degree, _state=_state)
    values = as_float(x)
    powers = np.stack([values ** k for k in range(1, int(degree) + 1)], axis=1)
    return FactorValues(powers, column_names=tuple(str(k) for k in range(1, int(degree) + 1)))


def c(*values: Any) -> np.ndarray:
    """R's c(): its arguments' values joined into one vector (``knots = c(2.5, 3.5)``).

    Parameters
    ----------
    *values : numbers or array-like
        The values, in order.

    Returns
    -------
    numpy.ndarray
        One flat array.
    """
    return np.concatenate([np.atleast_1d(np.asarray(v)).reshape(-1) for v in values]) if values else np.zeros(0)


def r_log(x: Any, base: float = math.e) -> Any:
    """R's log(x, base): the natural logarithm, or the logarithm to ``base``.

    Returns
    -------
    numpy.ndarray
    """
    values = np.log(as_float(x))
    return values if base == math.e else values / np.log(float(base))


def as_numeric(x: Any) -> np.ndarray:
    """R's as.numeric(x): numbers as doubles; a factor's codes 1, 2, ... (R's integer codes, not its labels).

    Returns
    -------
    numpy.ndarray
    """
    codes = factor_codes(x)
    return as_float(x) if codes is None else codes


def as_logical(x: Any) -> np.ndarray:
    """R's as.logical(x) for numbers: 0 is FALSE, others TRUE (a factor of FALSE/TRUE in a model).

    Returns
    -------
    numpy.ndarray
    """
    return as_float(x) != 0


def is_na(x: Any) -> np.ndarray:
    """R's is.na(x).

    Returns
    -------
    numpy.ndarray
    """
    return np.asarray(pd.isna(pd.Series(np.asarray(x))))


def ifelse(test: Any, yes: Any, no: Any) -> np.ndarray:
    """R's ifelse(test, yes, no), elementwise; NA where the test is NA.

    Returns
    -------
    numpy.ndarray
    """
    t = pd.Series(np.asarray(test, dtype=object))
    out = np.where(t.fillna(False).astype(bool), np.broadcast_to(yes, t.shape), np.broadcast_to(no, t.shape))
    return np.where(t.isna(), np.nan, out.astype(float))


def pmin(*values: Any) -> np.ndarray:
    """R's pmin(): the elementwise minimum (NA where any is NA, as R's default na.rm = FALSE).

    Returns
    -------
    numpy.ndarray
    """
    return np.minimum.reduce(np.broadcast_arrays(*[as_float(v) for v in values]))


def pmax(*values: Any) -> np.ndarray:
    """R's pmax(): the elementwise maximum (NA where any is NA).

    Returns
    -------
    numpy.ndarray
    """
    return np.maximum.reduce(np.broadcast_arrays(*[as_float(v) for v in values]))


# R's C(f, sum): C() takes a contrast by its short name (a function or a bare name) as R's C() does
_SHORT_CONTRASTS = {"sum": "contr.sum", "poly": "contr.poly", "helmert": "contr.helmert",
                    "treatment": "contr.treatment", "SAS": "contr.SAS"}


def r_C(data: Any, contr: Any = None, how_many: Any = None, *, levels: Any = None,
        spans_intercept: bool = True) -> Any:
    """R's C(object, contr): a factor with the contrast ``contr`` (formulaic's C, taking R's short names too).

    Parameters
    ----------
    data : array-like
        The factor's values.
    contr : formulaic contrast, R name ("contr.sum", "sum"), R's bare short names (sum, poly, helmert,
        treatment, SAS) or a matrix with a row per level.
    how_many : not supported (R's how.many): a clear error naming the working spelling.
    levels, spans_intercept : formulaic's C arguments.

    Returns
    -------
    formulaic FactorValues
    """
    if how_many is not None:
        raise OptionError("C(x, contr, how.many) is not supported: give a matrix of the contrast columns to keep "
                          "(contrasts={'x': M}) or C(x, M)")
    if contr is builtins.sum or contr is poly:
        contr = "sum" if contr is builtins.sum else "poly"
    if isinstance(contr, str):
        contr = as_contrast(_SHORT_CONTRASTS.get(contr, contr), "C()")
    elif contr is not None and not isinstance(contr, (type, Contrasts, dict)) and not hasattr(contr, "shape"):
        raise OptionError(f"C(): {contr!r} is not a contrast: use contr.treatment, contr.sum, contr.helmert, "
                          "contr.poly, contr.SAS (or R's sum, helmert, poly, treatment, SAS), or a matrix")
    return C(data, contr, levels=levels, spans_intercept=spans_intercept)


def _special(fn: Any) -> Any:
    return lambda *args: fn(*[as_float(a) if np.ndim(a) else a for a in args])


# R's names; factor(x) is formulaic's C(x) (treatment contrasts, levels sorted), named factor(x)[T.b]
R_FUNCTIONS: dict[str, Any] = {
    "relevel": relevel,
    "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil, "trunc": np.trunc,
    "factor": C, "ordered": ordered,
    # R's splines::ns and splines::bs (formulaic's bs() spellings still reach formulaic's), poly() numbered as R's
    "ns": ns, "bs": bs, "poly": poly, "c": c,
    "log": r_log, "sign": np.sign, "pmin": pmin, "pmax": pmax, "ifelse": ifelse,
    "as_numeric": as_numeric, "unclass": as_numeric, "as_logical": as_logical, "is_na": is_na,
    "C": r_C, **{k: k for k in ("helmert", "treatment", "SAS")},
    "gamma": _special(special.gamma), "lgamma": _special(special.gammaln), "digamma": _special(special.digamma),
    "beta": _special(special.beta), "lbeta": _special(special.betaln), "choose": _special(special.binom),
    "factorial": _special(lambda x: special.gamma(np.asarray(x, dtype=float) + 1)),
}


def formula_context() -> dict[str, Any]:
    """The namespace torchlm evaluates formula terms in, beyond the data's columns and formulaic's transforms.

    Returns
    -------
    dict
        A new dict each call (formulaic may add to the one it is given).
    """
    return dict(R_FUNCTIONS)
