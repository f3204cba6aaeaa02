"""R's special terms evaluated in the data: the ``cbind(successes, failures)`` response of a binomial glm and
the formula's ``offset()`` terms (R's model.offset)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, FormulaError
from torchlm.frame.formula import r_spelling
from torchlm.frame.model_frame import column_or_array, evaluate_variable


def binomial_matrix_response(formula: str, data: pd.DataFrame, weights: Any,
                              binomial: bool) -> tuple[str, pd.DataFrame, Any]:
    """R's ``cbind(successes, failures) ~ ...`` of a binomial glm: the proportion as the response, the
    totals times the prior weights as the weights (R's binomial initialize); the data is not modified.

    Parameters
    ----------
    formula : str
        The formula (its response is read).
    data : pandas.DataFrame
        The data.
    weights : str or array, optional
        The prior weights.
    binomial : bool
        Whether the model is a binomial glm (else a cbind() response is an error).

    Returns
    -------
    tuple
        The formula with the proportion's column as the response, the data with that column, the weights.
    """
    m = re.match(r"\s*cbind\s*\((.*)\)\s*~", formula)
    if m is None:
        return formula, data, weights
    if not binomial:
        raise FormulaError(f"formula {formula!r}: a cbind(successes, failures) response is for a binomial glm "
                           "(tl.glm(..., family='binomial')); lm and the other families take one response")
    args = [a.strip() for a in re.split(r",(?![^(]*\))", m.group(1))]
    if len(args) != 2:
        raise FormulaError(f"formula {formula!r}: cbind() of a binomial response takes two columns, the "
                           f"successes and the failures, not {len(args)}")
    s, f = (np.asarray(evaluate_variable(data, r_spelling(a)), dtype=np.float64).reshape(-1) for a in args)
    if (s < 0).any() or (f < 0).any():
        raise DataError(f"cbind({args[0]}, {args[1]}): counts of successes and failures must be >= 0")
    n = s + f
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(n == 0, 0.0, s / n)
    prior, _ = column_or_array(weights, data, "weights")
    if prior is None:
        prior = np.ones(len(data))
    name = f"cbind({', '.join(args)})"
    return f"`{name}` ~" + formula[m.end():], data.assign(**{name: y}), prior * n


def offset_values(data: pd.DataFrame, terms: list[str] | tuple[str, ...], offset: Any = None) -> np.ndarray:
    """R's model.offset: the offset() terms evaluated in ``data``, plus the ``offset`` argument, summed.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows (the fit's data, or predict's newdata).
    terms : list of str
        The expressions inside the formula's offset() terms.
    offset : str or array, optional
        The offset argument: a column name or one value per row.

    Returns
    -------
    numpy.ndarray
        (len(data),) float64; NaN where a term is missing (the row is then dropped, as R's na.omit).
    """
    total = np.zeros(len(data))
    parts = [evaluate_variable(data, r_spelling(t)) for t in terms]
    if offset is not None:
        parts.append(column_or_array(offset, data, "offset")[0])
    for part in parts:
        arr = np.asarray(part, dtype=np.float64).reshape(-1)
        if len(arr) != len(data):
            raise DataError(f"an offset has {len(arr)} values for {len(data)} rows of data")
        total = total + arr
    return total
