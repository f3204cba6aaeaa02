"""Model frame and design matrix: formula + data -> response, design, weights, offset (R's model.frame/model.matrix)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, ModelSpec, model_matrix
from formulaic.errors import FactorEncodingError, FactorEvaluationError, FormulaicError, FormulaSyntaxError

from .errors import DataError, FormulaError, ModelInputError, UnknownVariableError

NA_ACTIONS = ("omit", "fail")


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
    _X: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(n, p) of the design matrix."""
        return len(self.y), len(self.names)

    @property
    def X(self) -> np.ndarray:
        """The (n, p) design matrix (column-major), assembled from the columns on first use.

        A large least-squares fit never needs it whole (it works on row blocks): not building it
        saves a copy of the design, which at n = 1e6 costs as much time as the QR.
        """
        if self._X is None:
            X = self.row_block(0, self.shape[0])
            self._X, self.columns = X, [X[:, j] for j in range(X.shape[1])]
        return self._X

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Rows start:stop of the design matrix (column-major), without assembling all of it.

        spare : extra columns of zeros after the p of the design, for the caller to fill (a new array).
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
        """X @ beta, column by column (without assembling X)."""
        if self._X is not None:
            return self._X @ beta
        out = np.zeros(len(self.y))
        tmp = np.empty_like(out)
        for b, c in zip(beta, self.columns):
            if b != 0:
                np.multiply(c, b, out=tmp)
                out += tmp
        return out


def as_frame(data) -> pd.DataFrame:
    """The user's data as a DataFrame (never modified; dicts of arrays accepted)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except ValueError as e:
            raise DataError(f"cannot turn data (a dict) into a table: {e}") from None
    raise DataError(f"data must be a pandas DataFrame or a dict of arrays, not {type(data).__name__}")


def r_powers_in_I(formula: str) -> str:
    """Rewrite ``^`` inside ``I(...)`` as ``**``: R's I(x^2) is a power, Python's ^ is bitwise XOR.

    Outside I(), ``^`` keeps formula meaning ((a + b)^2: interactions up to order 2), as in R.
    """
    out, depth_stack, i = [], [], 0
    while i < len(formula):
        ch = formula[i]
        if ch == "(":
            is_I = i > 0 and formula[i - 1] == "I" and (i < 2 or not (formula[i - 2].isalnum() or formula[i - 2] in "._"))
            depth_stack.append(is_I or (depth_stack[-1] if depth_stack else False))
        elif ch == ")" and depth_stack:
            depth_stack.pop()
        if ch == "^" and depth_stack and depth_stack[-1]:
            out.append("**")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_formula(formula: str) -> Formula:
    """Parse with formulaic; a syntax error becomes a FormulaError naming the formula."""
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x', not {type(formula).__name__}")
    if "~" in formula and not formula.split("~", 1)[1].strip():
        raise FormulaError(f"formula {formula!r} has nothing after '~': write 'y ~ 1' for an intercept-only model")
    try:
        f = Formula(formula)
    except FormulaSyntaxError as e:
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}") from None
    except FormulaicError as e:
        if "`.` operator" in str(e):
            raise FormulaError(f"formula {formula!r}: '.' (all other columns) is not supported yet; "
                               "list the variables, e.g. 'y ~ x1 + x2'") from None
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}") from None
    if not hasattr(f, "lhs") or len(f.lhs) == 0:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'y ~ x'")
    return f


def _column_or_array(value, frame: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """weights=/offset= given as a column name or an array -> float array of len(frame)."""
    if value is None:
        return None, None
    name = None
    if isinstance(value, str):
        if value not in frame.columns:
            raise UnknownVariableError(f"{what}={value!r} is not a column of data (columns: {_cols(frame)})")
        name, value = value, frame[value]
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != len(frame):
        raise DataError(f"{what} must be one value per row of data ({len(frame)}), got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        try:
            arr = pd.to_numeric(pd.Series(arr), errors="raise").to_numpy()
        except (ValueError, TypeError):
            raise DataError(f"{what} must be numeric; got values of type {arr.dtype}") from None
    return arr.astype(np.float64), name


def _cols(frame: pd.DataFrame, k: int = 12) -> str:
    cols = [str(c) for c in frame.columns]
    return ", ".join(cols[:k]) + (", ..." if len(cols) > k else "")


def _subset_mask(subset, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(subset, str):
        try:
            mask = frame.eval(subset)
        except Exception as e:  # pandas raises many kinds here
            raise ModelInputError(f"cannot evaluate subset={subset!r}: {e}") from None
    else:
        mask = subset
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (len(frame),):
        raise ModelInputError(f"subset must be a boolean mask with one value per row ({len(frame)}) or a query string")
    return mask


def _materialize(formula: str, frame: pd.DataFrame, na_action: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return model_matrix(formula, frame, na_action=na_action)
    except FactorEvaluationError as e:
        m = re.search(r"`([^`]+)` is not present", str(e))
        if m:
            raise UnknownVariableError(
                f"formula {formula!r} uses {m.group(1)!r}, which is not a column of data (columns: {_cols(frame)})"
            ) from None
        raise FormulaError(f"cannot evaluate a term of {formula!r}: {e}") from None
    except ValueError as e:
        if "missing" in str(e).lower() or "null" in str(e).lower() or "nan" in str(e).lower():
            raise DataError(f"missing values in the variables of {formula!r} and na_action='fail'") from None
        raise
    except TypeError as e:
        # e.g. a datetime column multiplied into a model column: name the columns that cannot enter
        odd = [c for c in _formula_variables(formula) if c in frame.columns
               and (pd.api.types.is_datetime64_any_dtype(frame[c]) or pd.api.types.is_timedelta64_dtype(frame[c]))]
        if odd:
            raise DataError(
                f"column(s) {', '.join(map(repr, odd))} hold dates or times, which a formula cannot use as they are: "
                "convert them to numbers first (for example days since a date)"
            ) from None
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {e}") from None
    except FormulaicError as e:
        # formulaic's own errors (a '.' it cannot expand, an invalid materializer...): the package's, with its message
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    """The first line of an error message, without the terminal colour codes formulaic adds."""
    text = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _formula_variables(formula: str) -> list[str]:
    try:
        return sorted(Formula(formula).required_variables)
    except Exception:  # only used to word an error message
        return []


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


def build_design(formula: str, data, *, weights=None, offset=None, subset=None,
                 na_action: str = "omit", allow_factor_response: bool = False) -> Design:
    """Model frame + design matrix with R's semantics (subset, then NA omission over every variable used).

    Parameters
    ----------
    formula : formulaic formula with a response, e.g. ``"mpg ~ wt + C(cyl)"``.
    data : DataFrame or dict of arrays; never modified.
    weights, offset : column name or array (one value per row of data).
    subset : boolean mask or query string, applied before NA removal.
    na_action : "omit" (drop incomplete rows, as R's na.omit) or "fail".
    """
    if na_action not in NA_ACTIONS:
        raise ModelInputError(f"na_action must be one of {NA_ACTIONS}, not {na_action!r}")
    frame = as_frame(data)
    labels = frame.index
    parse_formula(formula)
    formula = r_powers_in_I(formula)
    w, wname = _column_or_array(weights, frame, "weights")
    off, oname = _column_or_array(offset, frame, "offset")
    keep = np.ones(len(frame), dtype=bool)
    if subset is not None:
        keep &= _subset_mask(subset, frame)
    n_subset = int(keep.sum())
    for arr, what in ((w, "weights"), (off, "offset")):
        if arr is None:
            continue
        if np.isinf(arr).any():
            raise DataError(f"{what} contain non-finite values (Inf)")
        if np.isnan(arr[keep]).any() and na_action == "fail":
            raise DataError(f"{what} contain missing values and na_action='fail'")
        keep &= ~np.isnan(arr)
    if w is not None and (w[keep] < 0).any():
        raise DataError("weights must be non-negative; found negative weights")
    work = frame.loc[keep] if not keep.all() else frame
    work = work.reset_index(drop=True)  # positions, so formulaic's kept index maps back
    pos_all = np.flatnonzero(keep)
    fa = "drop" if na_action == "omit" else "raise"
    if len(work) == 0:
        raise DataError("no observations: the subset (or missing weights/offset) leaves no rows")
    mm = _materialize(formula, work, fa)
    kept = np.asarray(mm.rhs.index, dtype=np.int64)
    if len(kept) < len(work) and mm.model_spec.rhs.transform_state:
        # stateful transforms (poly, scale, center) must be learned on the complete rows only, as in R
        work = work.iloc[kept].reset_index(drop=True)
        pos_all, kept = pos_all[kept], None
        mm = _materialize(formula, work, "raise")
        kept = np.arange(len(work))
    if len(kept) == 0:
        used = sorted(mm.model_spec.required_variables) if hasattr(mm.model_spec, "required_variables") else []
        all_na = [v for v in used if v in work.columns and work[v].isna().all()]
        hint = f" (all values of {', '.join(map(repr, all_na))} are missing)" if all_na else ""
        raise DataError(f"no observations left after removing rows with missing values{hint}")
    lhs_kinds = [state[0] for state in mm.model_spec.lhs.encoder_state.values()]
    categorical = any(getattr(k, "value", k) == "categorical" for k in lhs_kinds)
    y, response = _numeric_response(mm.lhs, work, allow_factor_response, categorical)
    Xdf = mm.rhs
    # kept in formulaic's dtypes (factor dummies are int64): converted to float chunk by chunk, not all at once
    columns = [_numeric_column(Xdf.iloc[:, j]) for j in range(Xdf.shape[1])]
    names = [str(c) for c in Xdf.columns]
    rows = pos_all[kept]
    w = None if w is None else w[rows]
    off = None if off is None else off[rows]
    bad = [n for n, c in zip(names, columns) if not np.isfinite(c).all()]
    if bad:
        raise DataError(f"non-finite values (Inf or NaN) in model column(s) {', '.join(bad)}")
    if not np.isfinite(y).all():
        raise DataError(f"non-finite values (Inf) in the response {response!r}")
    spec = mm.model_spec.rhs
    return Design(
        columns=columns, y=y, names=names, response=response, weights=w, offset=off,
        index=labels[rows], n_dropped=n_subset - len(rows),
        spec=spec, formula=formula, has_intercept="Intercept" in names,
        assign=_term_assign(spec), offset_column=oname, weights_column=wname, data=frame, rows=rows,
    )


def newdata_matrix(design: Design, newdata) -> np.ndarray:
    """Design matrix for new rows, rebuilt from the fitted ModelSpec (levels, poly/scale state kept).

    Rows with missing predictors give NaN rows (R's na.pass); a factor level not seen in fitting is an error.
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


def newdata_offset(design: Design, newdata, offset, n: int) -> np.ndarray | None:
    """Offset for new rows: the ``offset`` argument, else the fitted offset column of newdata, else None.

    A model fitted with an offset array needs one for newdata: that is an error rather than a silent zero.
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
