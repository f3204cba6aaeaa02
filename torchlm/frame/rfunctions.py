"""R's functions that formulas call and formulaic does not have under R's name (sqrt, abs, factor, ns, bs, c, ...).

formulaic evaluates a term's Python expression among the data's columns and its own transforms
(log, exp, scale, poly, C, I); these are added to that namespace wherever torchlm evaluates a term
(fitting, predict's newdata, weights= and subset= expressions), so that R's spellings port as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers.types import FactorValues
from formulaic.transforms import C
from formulaic.transforms import poly as formulaic_poly
from formulaic.utils.stateful_transforms import stateful_transform

from torchlm.errors import DataError
from torchlm.frame.contrasts import ordered
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


# R's names; factor(x) is formulaic's C(x) (treatment contrasts, levels sorted), named factor(x)[T.b]
R_FUNCTIONS: dict[str, Any] = {
    "relevel": relevel,
    "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil, "trunc": np.trunc,
    "factor": C, "ordered": ordered,
    # R's splines::ns and splines::bs (formulaic's bs() spellings still reach formulaic's), poly() numbered as R's
    "ns": ns, "bs": bs, "poly": poly, "c": c,
}


def formula_context() -> dict[str, Any]:
    """The namespace torchlm evaluates formula terms in, beyond the data's columns and formulaic's transforms.

    Returns
    -------
    dict
        A new dict each call (formulaic may add to the one it is given).
    """
    return dict(R_FUNCTIONS)
