"""R's functions that formulas call and formulaic does not have under R's name (sqrt, abs, factor, ...).

formulaic evaluates a term's Python expression among the data's columns and its own transforms
(log, exp, scale, poly, C, I); these are added to that namespace wherever torchlm evaluates a term
(fitting, predict's newdata, weights= and subset= expressions), so that R's spellings port as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from formulaic.transforms import C

from torchlm.errors import DataError


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


# R's names; factor(x) is formulaic's C(x) (treatment contrasts, levels sorted), named factor(x)[T.b]
R_FUNCTIONS: dict[str, Any] = {
    "relevel": relevel,
    "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil, "trunc": np.trunc,
    "factor": C,
}


def formula_context() -> dict[str, Any]:
    """The namespace torchlm evaluates formula terms in, beyond the data's columns and formulaic's transforms.

    Returns
    -------
    dict
        A new dict each call (formulaic may add to the one it is given).
    """
    return dict(R_FUNCTIONS)
