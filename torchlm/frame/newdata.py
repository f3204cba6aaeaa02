"""R's predict() on new rows: the fitted design's columns rebuilt for newdata, and its offset."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
from formulaic.errors import DataMismatchWarning, FactorEncodingError, FactorEvaluationError

from torchlm.errors import DataError, FormulaError, UnknownVariableError, warnings_guard
from torchlm.frame.data import LOGICAL_LEVELS, as_frame, is_logical, logical_factors, prepare_columns
from torchlm.frame.design import Design, _categorical_factors, _level_codes, _listing, _raw_values, offset_values
from torchlm.frame.factor_block import FactorDesign
from torchlm.frame.formula import formula_columns
from torchlm.frame.rfunctions import formula_context


def newdata_matrix(design: Design, newdata: Any) -> np.ndarray:
    """Design matrix for new rows, rebuilt from the fitted ModelSpec (levels, poly/scale state kept).

    Rows with missing predictors give NaN rows (R's na.pass); a factor level not seen in fitting is an error.

    Parameters
    ----------
    design : Design
        The fitted design.
    newdata : pandas.DataFrame or dict of arrays
        The new rows, with every variable of the model's right-hand side.

    Returns
    -------
    numpy.ndarray
        (len(newdata), p) float64, NaN rows where a predictor is missing.
    """
    frame = as_frame(newdata)
    if isinstance(design, FactorDesign):
        # factor terms kept as codes (frame/factor_block.py): the other terms' columns, then theirs
        missing = [v for v in design.variables if v not in frame.columns]
        if missing:
            raise UnknownVariableError(f"newdata has no column(s) {', '.join(map(repr, missing))} needed by the model")
        return design.newdata_block(frame, newdata_matrix(design.rest_design(), frame))
    needed = _needed_variables(design)
    missing = [v for v in needed if v not in frame.columns]
    if missing:
        raise UnknownVariableError(f"newdata has no column(s) {', '.join(map(repr, missing))} needed by the model")
    # the dtypes formulaic encodes as R would, as when fitting (logicals as factors where the fit had them)
    logical = [e for e, lv in _categorical_factors(design.spec).items()
               if lv == LOGICAL_LEVELS and e in frame.columns and is_logical(frame[e])]
    frame = prepare_columns(logical_factors(frame, logical), needed)
    # rows with a missing predictor predict NaN (R's na.pass); the others are encoded with the fitted spec.
    # A new level is an error in every row, as R's model.frame checks it before na.pass
    complete = ~frame[needed].isna().any(axis=1).to_numpy() if needed else np.ones(len(frame), dtype=bool)
    complete &= ~_check_newdata(design, frame, needed)
    try:
        with warnings_guard():
            # an error, not a recorded warning: recording would swallow other threads' warnings too
            warnings.simplefilter("error", DataMismatchWarning)
            Xdf = design.spec.get_model_matrix(frame.loc[complete], na_action="ignore", context=formula_context())
    except DataMismatchWarning:  # a last resort: _check_newdata knows
        raise DataError("newdata has factor levels not seen when fitting") from None
    except FactorEvaluationError as e:
        raise FormulaError(f"cannot evaluate the model's terms on newdata: {e}") from None
    except FactorEncodingError as e:  # _check_newdata has named the usual causes: this is a last resort
        raise DataError(f"newdata does not encode as the fitted data did: {e}") from None
    X = np.asarray(Xdf.to_numpy(dtype=np.float64))
    cols = [str(c) for c in Xdf.columns]
    if cols != (design.formulaic_names or design.names):  # formulaic's names, whatever names= showed
        raise DataError(f"newdata gives design columns {cols}, the fit has {design.formulaic_names or design.names}")
    if complete.all():
        return X
    full = np.full((len(frame), X.shape[1]), np.nan)
    full[complete] = X
    return full


def _needed_variables(design: Design) -> list[str]:
    """The data columns the model's right-hand side reads (formulaic's required_variables misreads dotted names)."""
    needed = set(design.spec.required_variables)
    if design.data is not None:
        used = formula_columns(design.spec.formula, design.data.columns)
        dotted = {str(c) for c in used if "." in str(c)}
        # formulaic reads `Sepal.Width` as Sepal's attribute: its prefixes are not variables
        needed = {v for v in needed if not any(d.startswith(v + ".") for d in dotted)} | {str(c) for c in used}
    return sorted(needed)


def newdata_offset(design: Design, newdata: Any, offset: Any, n: int) -> np.ndarray | None:
    """Offset for new rows: the ``offset`` argument, else the fitted offset column of newdata, else None.

    A model fitted with an offset array needs one for newdata: that is an error rather than a silent zero.

    Parameters
    ----------
    design : Design
        The fitted design.
    newdata : pandas.DataFrame or dict of arrays
        The new rows.
    offset : array, optional
        One value per new row; overrides the fitted offset column.
    n : int
        Number of new rows.

    Returns
    -------
    numpy.ndarray or None
        (n,) offset, or None when the model has none.
    """
    if design.offset_terms:
        # the formula's offset() terms are evaluated in newdata, as R's predict does, plus the argument
        frame = as_frame(newdata)
        if offset is None and design.offset_column is not None:
            offset = design.offset_column
        return offset_values(frame, design.offset_terms, offset)
    if offset is not None:
        off = np.asarray(offset, dtype=float).ravel()
        if len(off) != n:
            raise DataError(f"offset has {len(off)} values for {n} rows of newdata")
        return off
    if design.offset is None:
        return None
    frame = as_frame(newdata)
    if design.offset_column is not None and design.offset_column in frame.columns:
        return np.asarray(frame[design.offset_column], dtype=float)
    if design.offset_column is not None and not design.offset_column.isidentifier():
        return offset_values(frame, (), design.offset_column)  # offset="log(t)": R evaluates it anew
    raise DataError("the model has an offset: pass offset= (one value per row of newdata)")


def _check_newdata(design: Design, rows: pd.DataFrame, needed: list[str]) -> np.ndarray:
    """R's checks of newdata against the fit: numbers stay numbers, a factor's values are fitted levels.

    Returns the rows (a mask) whose factor value lies outside an explicit ``levels=``: R's factor()
    makes them missing, so they predict NaN.
    """
    fitted = design.data
    text = [v for v in needed if fitted is not None and v in fitted.columns
            and pd.api.types.is_numeric_dtype(fitted[v]) and not is_logical(fitted[v])
            and not pd.api.types.is_numeric_dtype(rows[v])]
    if text:
        raise DataError(f"newdata column(s) {', '.join(map(repr, text))} changed between numbers and text: "
                        f"numeric when fitting, {', '.join(str(rows[v].dtype) for v in text)} in newdata; "
                        "convert them to numbers (e.g. pd.to_numeric)")
    outside = np.zeros(len(rows), dtype=bool)
    for expr, levels in _categorical_factors(design.spec).items():
        values = _raw_values(expr, rows)
        bad = (np.zeros(len(rows), dtype=bool) if values is None
               else (_level_codes(values, levels) < 0) & ~np.asarray(pd.isna(values), dtype=bool))
        if values is None or not bad.any() or re.search(r"\blevels\s*=", expr):
            outside |= bad
            continue
        new = list(dict.fromkeys(values[bad].tolist()))
        hint = ("; they match the levels as text: give them as the fitted data did"
                if {str(v) for v in new} <= {str(lv) for lv in levels} else "")
        raise DataError(f"newdata: factor {expr!r} has new level(s) {_listing(new)}, not seen when fitting; "
                        f"the fitted levels are {_listing(levels, 30)}{hint}")
    return outside
