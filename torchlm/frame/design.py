"""R's model.matrix on a model frame: the response and the design matrix, as formulaic builds them."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import ModelSpec
from formulaic.errors import FactorEncodingError, FactorEvaluationError
from formulaic.model_matrix import ModelMatrices

from torchlm.errors import DataError, FormulaError, UnknownVariableError
from torchlm.frame.data import as_frame
from torchlm.frame.formula import materialize, parse_formula, r_powers_in_I
from torchlm.frame.model_frame import ModelFrame, check_na_action, model_frame


@dataclass
class Design:
    """Everything a fitter needs, for the rows actually used (after subset and NA removal).

    Parameters
    ----------
    columns : the p numeric columns of the design matrix, as formulaic built them (no copy; dummies int64);
        ``X`` assembles the (n, p) matrix on first use, ``row_block`` a slice of rows without it.
    y : (n,) response.
    names : column names of X (formulaic's term names).
    weights, offset : (n,) arrays or None.
    index : row labels of the used rows in the user's data.
    n_dropped : rows removed because of missing values.
    spec : formulaic ModelSpec of the right-hand side, reused for predict(newdata).
    assign : for each column of X, the label of the term it belongs to.
    data : the user's data as given (a reference, never copied or modified), for variables looked up
        after fitting (cluster= of vcov); ``data.iloc[rows]`` are the rows used.
    rows : positions in ``data`` of the rows used.
    frame : the model frame the design was built on (rows, weights, offset, subset, na_action).
    """

    columns: list[np.ndarray] = field(repr=False)
    y: np.ndarray
    names: list[str]
    response: str
    weights: np.ndarray | None
    offset: np.ndarray | None
    index: pd.Index
    n_dropped: int
    spec: ModelSpec
    formula: str
    has_intercept: bool
    assign: list[str]
    offset_column: str | None = None
    weights_column: str | None = None
    frame_info: dict[str, Any] = field(default_factory=dict)
    data: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    frame: ModelFrame | None = field(default=None, repr=False, compare=False)
    _X: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(n, p) of the design matrix.

        Returns
        -------
        tuple of int
            Rows used and columns of the design.
        """
        return len(self.y), len(self.names)

    @property
    def X(self) -> np.ndarray:
        """The (n, p) design matrix (column-major), assembled from the columns on first use.

        A large least-squares fit never needs it whole (it works on row blocks): not building it
        saves a copy of the design, which at n = 1e6 costs as much time as the QR.

        Returns
        -------
        numpy.ndarray
            (n, p) float64, Fortran order.
        """
        if self._X is None:
            X = self.row_block(0, self.shape[0])
            self._X, self.columns = X, [X[:, j] for j in range(X.shape[1])]
        return self._X

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Rows start:stop of the design matrix (column-major), without assembling all of it.

        Parameters
        ----------
        start, stop : int
            The rows, as a slice (``stop`` past the end is cut to n).
        spare : int
            Extra columns of zeros after the p of the design, for the caller to fill (a new array).

        Returns
        -------
        numpy.ndarray
            (stop - start, p + spare) float64, Fortran order (a view of ``X`` when it is assembled
            and no spare columns are asked for).
        """
        if self._X is not None and not spare:
            return self._X[start:stop]
        n, p = self.shape
        stop = min(stop, n)
        B = np.empty((p + spare, stop - start)).T
        for j, c in enumerate(self.columns):
            B[:, j] = c[start:stop]
        # zeros, not leftover memory: a cast to float32 must not meet stray huge values there
        B[:, p:] = 0.0
        return B

    def matvec(self, beta: np.ndarray) -> np.ndarray:
        """X @ beta, column by column (without assembling X).

        Parameters
        ----------
        beta : numpy.ndarray
            (p,) coefficients.

        Returns
        -------
        numpy.ndarray
            (n,) linear predictor without the offset.
        """
        if self._X is not None:
            return self._X @ beta
        out = np.zeros(len(self.y))
        tmp = np.empty_like(out)
        for b, c in zip(beta, self.columns):
            if b != 0:
                np.multiply(c, b, out=tmp)
                out += tmp
        return out


def build_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
                 na_action: str = "omit", allow_factor_response: bool = False) -> Design:
    """Model frame + design matrix with R's semantics (subset, then NA omission over every variable used).

    Parameters
    ----------
    formula : str
        formulaic formula with a response, e.g. ``"mpg ~ wt + C(cyl)"``.
    data : pandas.DataFrame or dict of arrays
        Never modified.
    weights, offset : str or array, optional
        Column name or array (one value per row of data).
    subset : array of bool or str, optional
        Boolean mask or query string, applied before NA removal.
    na_action : str
        "omit" (drop incomplete rows, as R's na.omit) or "fail".
    allow_factor_response : bool
        Accept a two-level factor response (glm's binomial): its second level is the success.

    Returns
    -------
    Design
        The response, design and weights/offset at the rows used, and the frame they came from.
    """
    # the checks in the order the errors have always come: options, data, formula, then the frame
    check_na_action(na_action)
    data = as_frame(data)
    parse_formula(formula)
    formula = r_powers_in_I(formula)
    frame = model_frame(data, weights=weights, offset=offset, subset=subset, na_action=na_action)
    return _design_on_frame(formula, frame, allow_factor_response)


def model_matrix(formula: str, frame: ModelFrame, *, allow_factor_response: bool = False) -> Design:
    """The response and design matrix of ``formula`` at the rows of a model frame (R's model.matrix).

    Rows where an evaluated term is missing (``log(x)`` of a negative x, a missing factor level) are
    dropped as well, or are an error if the frame's na_action is "fail": the Design's frame is narrowed
    to the rows it uses.

    Parameters
    ----------
    formula : str
        formulaic formula with a response, e.g. ``"mpg ~ wt + C(cyl)"``.
    frame : ModelFrame
        The rows to use (from :func:`torchlm.frame.model_frame`), with their weights and offset.
    allow_factor_response : bool
        Accept a two-level factor response (glm's binomial): its second level is the success.

    Returns
    -------
    Design
        The response, design and weights/offset at the rows used.
    """
    parse_formula(formula)
    return _design_on_frame(r_powers_in_I(formula), frame, allow_factor_response)


def _design_on_frame(formula: str, frame: ModelFrame, allow_factor_response: bool) -> Design:
    """The Design of an already checked and rewritten formula on ``frame`` (narrowed to formulaic's rows)."""
    mm, frame, work = _materialized_rows(formula, frame)
    lhs_kinds = [state[0] for state in mm.model_spec.lhs.encoder_state.values()]
    categorical = any(getattr(k, "value", k) == "categorical" for k in lhs_kinds)
    y, response = _numeric_response(mm.lhs, work, allow_factor_response, categorical)
    Xdf = mm.rhs
    # kept in formulaic's dtypes (factor dummies are int64): converted to float chunk by chunk, not all at once
    columns = [_numeric_column(Xdf.iloc[:, j]) for j in range(Xdf.shape[1])]
    names = [str(c) for c in Xdf.columns]
    bad = [n for n, c in zip(names, columns) if not np.isfinite(c).all()]
    if bad:
        raise DataError(f"non-finite values (Inf or NaN) in model column(s) {', '.join(bad)}")
    if not np.isfinite(y).all():
        raise DataError(f"non-finite values (Inf) in the response {response!r}")
    spec = mm.model_spec.rhs
    return Design(
        columns=columns, y=y, names=names, response=response, weights=frame.weights, offset=frame.offset,
        index=frame.index, n_dropped=frame.n_dropped,
        spec=spec, formula=formula, has_intercept="Intercept" in names,
        assign=_term_assign(spec), offset_column=frame.offset_column, weights_column=frame.weights_column,
        data=frame.data, rows=frame.rows, frame=frame,
    )


def _materialized_rows(formula: str, frame: ModelFrame) -> tuple[ModelMatrices, ModelFrame, pd.DataFrame]:
    """formulaic's matrices at the frame's rows, the frame narrowed to the rows formulaic kept, and those rows.

    formulaic decides which rows are incomplete only as it evaluates the terms (``log(x)`` can make
    missing values); stateful transforms (poly, scale, center) are then learned again on the complete
    rows alone, as R learns them.
    """
    data = frame.data
    work = data if frame.n == len(data) else data.iloc[frame.rows]
    work = work.reset_index(drop=True)  # positions, so formulaic's kept index maps back
    fa = "drop" if frame.na_action == "omit" else "raise"
    mm = materialize(formula, work, fa)
    kept = np.asarray(mm.rhs.index, dtype=np.int64)
    if len(kept) < len(work) and mm.model_spec.rhs.transform_state:
        work = work.iloc[kept].reset_index(drop=True)
        frame = frame.restrict(kept)
        mm = materialize(formula, work, "raise")
        kept = np.arange(len(work))
    used = sorted(mm.model_spec.required_variables) if hasattr(mm.model_spec, "required_variables") else []
    if len(kept) == 0:
        all_na = [v for v in used if v in work.columns and work[v].isna().all()]
        hint = f" (all values of {', '.join(map(repr, all_na))} are missing)" if all_na else ""
        raise DataError(f"no observations left after removing rows with missing values{hint}")
    return mm, frame.restrict(kept, variables=used), work


def _numeric_response(lhs: pd.DataFrame, frame: pd.DataFrame, allow_factor: bool,
                      categorical: bool = False) -> tuple[np.ndarray, str]:
    names = list(lhs.columns)
    if len(names) != 1 or (categorical and not allow_factor):
        base = names[0].split("[")[0]
        if allow_factor and len(names) == 2:
            # a two-level factor: R's glm takes the first level as failure, the second as success
            return np.asarray(lhs.iloc[:, 1], dtype=np.float64), base
        dtype = frame[base].dtype if base in frame.columns else "non-numeric"
        raise DataError(
            f"response {base!r} is not numeric (dtype {dtype}, {len(names)} levels); "
            "lm needs a numeric response"
        )
    col = lhs.iloc[:, 0]
    if col.dtype == bool:
        col = col.astype(np.float64)
    if not np.issubdtype(col.dtype, np.number):
        raise DataError(f"response {names[0]!r} is not numeric (dtype {col.dtype})")
    return np.asarray(col, dtype=np.float64), names[0]


def _numeric_column(col: pd.Series) -> np.ndarray:
    a = col.to_numpy(copy=False)
    return a if a.dtype.kind in "biuf" else col.to_numpy(dtype=np.float64)


def _term_assign(spec: ModelSpec) -> list[str]:
    out = []
    for st in spec.structure:
        out += [str(st.term)] * len(st.columns)
    return out


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
    needed = sorted(design.spec.required_variables)
    missing = [v for v in needed if v not in frame.columns]
    if missing:
        raise UnknownVariableError(f"newdata has no column(s) {', '.join(map(repr, missing))} needed by the model")
    # rows with a missing predictor predict NaN (R's na.pass); the others are encoded with the fitted spec
    complete = ~frame[needed].isna().any(axis=1).to_numpy() if needed else np.ones(len(frame), dtype=bool)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Xdf = design.spec.get_model_matrix(frame.loc[complete], na_action="ignore")
    except FactorEvaluationError as e:
        raise FormulaError(f"cannot evaluate the model's terms on newdata: {e}") from None
    except FactorEncodingError:
        # a variable that was numeric when fitting arrives as text (or the reverse)
        fitted = design.data
        changed = [v for v in needed if fitted is not None and v in fitted.columns
                   and pd.api.types.is_numeric_dtype(fitted[v]) != pd.api.types.is_numeric_dtype(frame[v])]
        what = f"column(s) {', '.join(map(repr, changed))}" if changed else "its variables"
        raise DataError(f"newdata does not encode as the fitted data did: {what} changed between numbers "
                        "and text") from None
    for w in caught:
        msg = str(w.message)
        if "not seen in original dataset" in msg or "outside of the nominated levels" in msg:
            lv = re.search(r"\{[^}]*\}", msg)
            raise DataError(f"newdata has factor level(s) {lv.group(0) if lv else ''} not seen when fitting") from None
    X = np.asarray(Xdf.to_numpy(dtype=np.float64))
    cols = [str(c) for c in Xdf.columns]
    if cols != design.names:
        raise DataError(f"newdata gives design columns {cols}, the fit has {design.names}")
    if complete.all():
        return X
    full = np.full((len(frame), X.shape[1]), np.nan)
    full[complete] = X
    return full


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
    if offset is not None:
        off = np.asarray(offset, dtype=float).ravel()
        if len(off) != n:
            raise DataError(f"offset has {len(off)} values for {n} rows of newdata")
        return off
    if design.offset is None:
        return None
    if design.offset_column is not None and design.offset_column in getattr(newdata, "columns", []):
        return np.asarray(newdata[design.offset_column], dtype=float)
    raise DataError("the model has an offset: pass offset= (one value per row of newdata)")
