"""R's model.frame: the rows a model uses (subset, then na.omit), with their weights and offset.

A frame holds no copy of the data: it keeps the user's table (a reference, never modified) and the
positions of the rows used, and evaluates a variable at those rows when asked. A model that needs no
design matrix (nls) uses the frame alone; :func:`torchlm.frame.design.model_matrix` builds on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS
from formulaic.utils.layered_mapping import LayeredMapping
from formulaic.utils.stateful_transforms import stateful_eval

from torchlm.errors import DataError, FormulaError, ModelInputError, TorchlmError, UnknownVariableError
from torchlm.frame.data import as_frame, columns_text
from torchlm.frame.formula import r_spelling
from torchlm.frame.rexpr import Logical, evaluate_r, numeric, readable_r
from torchlm.frame.rfunctions import formula_context

NA_ACTIONS = ("omit", "fail")


@dataclass(frozen=True, eq=False)
class ModelFrame:
    """The rows a model uses, after subset and the removal of rows with missing values (R's model.frame).

    Parameters
    ----------
    data : pandas.DataFrame
        The user's data as given (a reference, never copied or modified).
    rows : numpy.ndarray
        Positions in ``data`` of the rows used, increasing.
    index : pandas.Index
        Labels in ``data.index`` of the rows used.
    subset : numpy.ndarray or None
        The subset as a boolean mask over every row of ``data``; None when no subset was given.
    weights, offset : numpy.ndarray or None
        Prior weights and offset at the rows used (float64).
    n_dropped : int
        Rows of the subset dropped because of missing values (in a variable, the weights or the offset).
    na_action : str
        "omit" (drop incomplete rows, R's na.omit) or "fail".
    variables : tuple of str
        The variables (column names or expressions) whose missing values removed rows.
    weights_column, offset_column : str or None
        The column names of the weights and offset when they were given as names.
    """

    data: pd.DataFrame = field(repr=False)
    rows: np.ndarray = field(repr=False)
    index: pd.Index = field(repr=False)
    subset: np.ndarray | None = field(repr=False)
    weights: np.ndarray | None = field(repr=False)
    offset: np.ndarray | None = field(repr=False)
    n_dropped: int
    na_action: str
    variables: tuple[str, ...] = ()
    weights_column: str | None = None
    offset_column: str | None = None

    @property
    def n(self) -> int:
        """Number of rows used.

        Returns
        -------
        int
            ``len(self.rows)``.
        """
        return len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> pd.Series | pd.DataFrame:
        """A variable at the rows used, labelled by their index.

        Parameters
        ----------
        name : str
            A column of the data, or an expression of its columns (``"log(y)"``; ``^`` is a power, as in R).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            The values at the rows used (a DataFrame when the expression gives several columns).
        """
        full = evaluate_variable(self.data, name)
        if isinstance(full, pd.Series):
            return full.iloc[self.rows]
        part = full[self.rows]
        if part.ndim == 1:
            return pd.Series(part, index=self.index, name=name)
        return pd.DataFrame(part, index=self.index)

    def values(self, name: str) -> np.ndarray:
        """A variable at the rows used, as an array.

        Parameters
        ----------
        name : str
            A column of the data or an expression of its columns (see :meth:`column`).

        Returns
        -------
        numpy.ndarray
            (n,) values (or (n, k) for an expression giving k columns), in the column's dtype.
        """
        return self.column(name).to_numpy()

    def kept_rows(self) -> pd.DataFrame:
        """The data's rows used, labelled 0, 1, ... (the data itself relabelled, not copied, when they are all).

        Returns
        -------
        pandas.DataFrame
        """
        # rows are increasing positions: as many as the data's are all of them (copy-on-write: no copy)
        taken = self.data if len(self.rows) == len(self.data) else self.data.iloc[self.rows]
        return taken.reset_index(drop=True)

    def restrict(self, keep: np.ndarray | Sequence[int], *, variables: Iterable[str] = ()) -> ModelFrame:
        """A frame of some of these rows: the others count as dropped for missing values.

        Parameters
        ----------
        keep : array of int or bool
            Positions among this frame's rows (0..n-1, increasing), or a boolean mask of length n.
        variables : iterable of str
            Variables to record as having decided the dropped rows (added to ``self.variables``).

        Returns
        -------
        ModelFrame
            A new frame; this one is unchanged.
        """
        keep = np.asarray(keep)
        if keep.dtype == bool:
            if keep.shape != (self.n,):
                raise ModelInputError(f"a mask restricting a frame of {self.n} rows has shape {keep.shape}")
            keep = np.flatnonzero(keep)
        known = list(self.variables)
        known += [v for v in variables if v not in known]
        if len(keep) == self.n:  # increasing positions, so all of them: no copies of the row arrays
            return dataclasses.replace(self, variables=tuple(known))
        keep = keep.astype(np.int64, copy=False)
        rows = self.rows[keep]
        return dataclasses.replace(
            self, rows=rows, index=self.data.index[rows],
            weights=None if self.weights is None else self.weights[keep],
            offset=None if self.offset is None else self.offset[keep],
            n_dropped=self.n_dropped + self.n - len(rows), variables=tuple(known),
        )


def check_na_action(na_action: str) -> None:
    """Raise a ModelInputError unless ``na_action`` is one the package knows.

    Parameters
    ----------
    na_action : str
        "omit" or "fail".

    Returns
    -------
    None
    """
    if na_action not in NA_ACTIONS:
        raise ModelInputError(f"na_action must be one of {NA_ACTIONS}, not {na_action!r}")


def model_frame(data: Any, variables: Iterable[str] | str = (), *, weights: Any = None, offset: Any = None,
                subset: Any = None, na_action: str = "omit") -> ModelFrame:
    """The rows a model uses, with R's semantics: subset first, then NA omission over everything used.

    Parameters
    ----------
    data : pandas.DataFrame or dict of arrays
        The user's data; never modified.
    variables : iterable of str, or str
        Column names or expressions of columns (``["log(y)", "x"]``): a row with a missing value in any of
        them is dropped (na_action="omit") or an error (na_action="fail").
    weights, offset : str or array, optional
        A column name, an expression of columns (``"1/dist^2"``) or one value per row of data. Missing
        values drop the row as a variable's do; Inf is an error, and so are negative weights (on the rows
        left after NA removal; without ``variables`` the caller checks them with :func:`check_weights`
        once it knows those rows).
    subset : array of bool or str, optional
        Boolean mask over the rows of data, or R's expression (``"cyl != 4 & hp > 100"``, ``"g %in% c('a', 'b')"``,
        row numbers ``"1:20"``; a pandas query string still works), applied before NA removal; rows where
        the expression is NA are dropped as missing (R's na.omit of its NA rows).
    na_action : str
        "omit" (drop incomplete rows, as R's na.omit) or "fail".

    Returns
    -------
    ModelFrame
        The rows used, their weights and offset, and the count of rows dropped for missing values.
    """
    check_na_action(na_action)
    frame = as_frame(data)
    names = _variable_names(variables)
    w, wname = column_or_array(weights, frame, "weights")
    off, oname = column_or_array(offset, frame, "offset")
    # a copy: the user's own mask array may change after the fit
    mask, na_subset = (None, None) if subset is None else _subset_mask(subset, frame)
    keep = np.ones(len(frame), dtype=bool) if mask is None else mask.copy()
    # rows where an R subset is NA are R's rows of NAs: dropped as missing (na.omit), an error for na.fail
    n_subset = int(keep.sum()) + (0 if na_subset is None else int(na_subset.sum()))
    if na_subset is not None and na_subset.any() and na_action == "fail":
        raise DataError(f"subset={subset!r} is missing (NA) in {int(na_subset.sum())} row(s) and na_action='fail' "
                        "(R: missing values in object)")
    for arr, what in ((w, "weights"), (off, "offset")):
        if arr is None:
            continue
        if np.isinf(arr).any():
            raise DataError(f"{what} contain non-finite values (Inf)")
        if np.isnan(arr[keep]).any() and na_action == "fail":
            raise DataError(f"{what} contain missing values and na_action='fail'")
        keep &= ~np.isnan(arr)
    if not keep.any():
        raise DataError("no observations: the subset (or missing weights/offset) leaves no rows")
    rows = np.flatnonzero(keep)
    mf = ModelFrame(
        data=frame, rows=rows, index=frame.index[rows], subset=mask,
        weights=None if w is None else w[rows], offset=None if off is None else off[rows],
        n_dropped=n_subset - len(rows), na_action=na_action, weights_column=wname, offset_column=oname,
    )
    if not names:
        return mf  # the caller drops the rows its terms make missing, then checks the weights (check_weights)
    out = _omit_missing(mf, names)
    check_weights(out)
    return out


def check_weights(frame: ModelFrame) -> None:
    """R's check of the weights, on the rows left after NA removal: a negative weight on a dropped row is no error.

    Parameters
    ----------
    frame : ModelFrame
        The rows a model uses.

    Returns
    -------
    None
    """
    if frame.weights is not None and (frame.weights < 0).any():
        raise DataError("weights must be non-negative; found negative weights")


def evaluate_variable(data: pd.DataFrame, name: str) -> pd.Series | np.ndarray:
    """A variable over every row of ``data``: a column, or an expression of columns evaluated as formulaic does.

    Parameters
    ----------
    data : pandas.DataFrame
        The user's data.
    name : str
        A column name, or an expression such as ``"log(y)"`` or ``"y / n"`` (formulaic's transforms and
        ``np`` are available; ``^`` is a power, as in R; backticks quote odd column names).

    Returns
    -------
    pandas.Series or numpy.ndarray
        One value (or one row of values) per row of data.
    """
    if not isinstance(name, str):
        raise ModelInputError(f"a variable is a column name or an expression (a string), not {type(name).__name__}")
    if name in data.columns:
        return data[name]
    if name.isidentifier():
        raise UnknownVariableError(f"variable {name!r} is not a column of data (columns: {columns_text(data)})")
    try:
        value = stateful_eval(_r_arithmetic(name), LayeredMapping(data, formula_context(), TRANSFORMS), None, {},
                              None)
    except NameError as e:
        missing = getattr(e, "name", None) or str(e)
        raise UnknownVariableError(f"variable {name!r} uses {missing!r}, which is not a column of data "
                                   f"(columns: {columns_text(data)})") from None
    except SyntaxError as e:
        raise FormulaError(f"cannot parse variable {name!r}: {e.msg}") from None
    except Exception as e:  # arbitrary user code: any failure is a bad variable
        raise FormulaError(f"cannot evaluate variable {name!r}: {e}") from None
    if isinstance(value, pd.Series) and len(value) == len(data):
        return value
    arr = np.asarray(value)
    if arr.ndim not in (1, 2) or len(arr) != len(data):
        raise DataError(f"variable {name!r} gives shape {arr.shape}, not one value per row of data ({len(data)})")
    return arr


def _omit_missing(mf: ModelFrame, names: list[str]) -> ModelFrame:
    """``mf`` without the rows where a variable is missing (or an error when na_action='fail')."""
    incomplete = np.zeros(mf.n, dtype=bool)
    all_na = []
    for name in names:
        na_cells = np.asarray(pd.isna(mf.column(name)))
        # an expression of several columns (a DataFrame) is missing in a row where any of its cells is
        na = na_cells.any(axis=1) if na_cells.ndim == 2 else na_cells
        if na.any() and mf.na_action == "fail":
            raise DataError(f"missing values in variable {name!r} and na_action='fail'")
        if na.all():
            all_na.append(name)
        incomplete |= na
    if incomplete.all():
        hint = f" (all values of {', '.join(map(repr, all_na))} are missing)" if all_na else ""
        raise DataError(f"no observations left after removing rows with missing values{hint}")
    return mf.restrict(np.flatnonzero(~incomplete), variables=names)


def _variable_names(variables: Iterable[str] | str) -> list[str]:
    names = [variables] if isinstance(variables, str) else list(variables)
    for v in names:
        if isinstance(v, str) and "~" in v:
            raise FormulaError(f"variable {v!r} is a formula: give the variables (names or expressions) one by one")
    return list(dict.fromkeys(names))


def _r_arithmetic(expr: str) -> str:
    """``^`` as ``**`` outside backtick-quoted names: R's power, where Python's ^ (XOR) means nothing for data."""
    parts = expr.split("`")
    return "`".join(p.replace("^", "**") if i % 2 == 0 else p for i, p in enumerate(parts))


def column_or_array(value: Any, frame: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """weights=/offset= given as a column name or an array, as a float array of len(frame), checked.

    Parameters
    ----------
    value : str, array or None
        A column name of ``frame``, an expression of its columns (``"1/dist^2"``, read as a formula
        term is: ``^`` is a power, R's TRUE/FALSE), or one value per row.
    frame : pandas.DataFrame
        The data.
    what : str
        The argument's name, for the errors ("weights", "offset").

    Returns
    -------
    tuple of (numpy.ndarray or None, str or None)
        The float64 values (None for None) and the column name or expression (None for an array).
    """
    if value is None:
        return None, None
    name = None
    if isinstance(value, str):
        name, value = value, _named_values(value, frame, what)
    if isinstance(getattr(value, "dtype", None), pd.CategoricalDtype):
        raise DataError(f"{what} must be numeric, not a factor (categorical): R's lm and glm refuse it too; "
                        f"convert it with .astype(float) if its labels are the numbers meant")
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != len(frame):
        raise DataError(f"{what} must be one value per row of data ({len(frame)}), got shape {arr.shape}")
    if arr.dtype.kind in "OUS" and pd.api.types.infer_dtype(arr, skipna=True) not in (
            "integer", "floating", "mixed-integer-float", "decimal", "empty"):
        # text that looks like numbers is still text to R ("'weights' must be a numeric vector")
        raise DataError(f"{what} must be numeric; got values of type {arr.dtype} (e.g. {arr[pd.notna(arr)][:1]})")
    if np.iscomplexobj(arr) or (arr.dtype == object and any(isinstance(v, complex) for v in arr)):
        # numpy would drop the imaginary part with only a ComplexWarning
        raise DataError(f"{what} contain complex numbers: give real {what} (np.real or np.abs of them)")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        try:
            arr = pd.to_numeric(pd.Series(arr), errors="raise").to_numpy()
        except (ValueError, TypeError):
            raise DataError(f"{what} must be numeric; got values of type {arr.dtype}") from None
    return arr.astype(np.float64), name


def _named_values(value: str, frame: pd.DataFrame, what: str) -> Any:
    """weights=/offset= given as a string: a column, else an expression of columns read as a formula term reads it."""
    if value in frame.columns:
        return frame[value]
    if value.isidentifier():
        raise UnknownVariableError(f"{what}={value!r} is not a column of data (columns: {columns_text(frame)})")
    try:
        return evaluate_variable(frame, r_spelling(value))
    except UnknownVariableError as e:
        raise UnknownVariableError(f"{what}={value!r}: {e.args[0]}") from None
    except TorchlmError as e:
        raise type(e)(f"{what}={value!r}: {e}") from None


def _subset_mask(subset: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """subset= as a boolean mask over the rows of ``frame``, and the rows where it is NA (R's expression).

    A string is R's expression (:func:`torchlm.frame.rexpr.evaluate_r`); one that is not R but a pandas
    query (``"x > 0 and y < 1"``, ``"g in ['a', 'b']"``) is evaluated by pandas, as before.
    """
    na = np.zeros(len(frame), dtype=bool)
    if isinstance(subset, str):
        mask, na = _subset_expression(subset, frame)
    else:
        mask = np.array(subset, copy=True)
    if mask.dtype != bool or mask.shape != (len(frame),):
        raise ModelInputError(f"subset must be a boolean mask with one value per row ({len(frame)}) or a query string")
    return mask, na


def _subset_expression(subset: str, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """An R (or pandas query) subset string: the rows it selects and the rows where it is NA."""
    n = len(frame)
    r_error: TorchlmError
    try:
        value = evaluate_r(subset, frame)
    except UnknownVariableError as e:  # perhaps pandas' spelling ("b == True"), tried below
        r_error = UnknownVariableError(f"cannot evaluate subset={subset!r}: {e.args[0]}")
    except TorchlmError as e:
        if readable_r(subset):  # R's expression, which fails on this data
            raise type(e)(f"cannot evaluate subset={subset!r}: {e}") from None
        r_error = ModelInputError(f"cannot evaluate subset={subset!r}: {e}")
    else:
        if isinstance(value, Logical):
            v = np.broadcast_to(value.v, (n,)) if value.v.size == 1 else value.v
            if v.shape != (n,):
                raise DataError(f"subset={subset!r} gives {v.size} values for {n} rows of data")
            return v == 1, np.isnan(v)
        return _row_numbers(subset, numeric(value, "subset"), n), np.zeros(n, dtype=bool)
    try:
        return np.asarray(frame.eval(subset)), np.zeros(n, dtype=bool)
    except Exception:  # pandas raises many kinds here: R's reason is the one to give
        raise r_error from None


def _row_numbers(subset: str, idx: np.ndarray, n: int) -> np.ndarray:
    """R's subset by row numbers (1-based; negative ones leave rows out) as a mask."""
    idx = idx[idx != 0]
    if np.isnan(idx).any() or (idx != np.floor(idx)).any() or (np.abs(idx) > n).any():
        raise DataError(f"subset={subset!r}: row numbers must be whole numbers from 1 to {n} (R's indices)")
    mask = np.zeros(n, dtype=bool)
    if (idx < 0).all():
        mask[:] = True
        mask[(-idx - 1).astype(np.int64)] = False
    elif (idx > 0).all():
        if len(np.unique(idx)) < len(idx):
            raise DataError(f"subset={subset!r} repeats rows: torchlm fits each row once")
        mask[(idx - 1).astype(np.int64)] = True
    else:
        raise DataError(f"subset={subset!r}: can't mix positive and negative row numbers (R's error)")
    return mask
