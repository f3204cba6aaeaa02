"""The user's data as a table, and how error messages list its columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, ModelInputError
from torchlm.frame.dataframes import pandas_frame


def as_frame(data: Any) -> pd.DataFrame:
    """The user's data as a pandas DataFrame (never modified; no repeated column names).

    Any data frame narwhals reads is accepted: pandas, polars (a LazyFrame is collected), pyarrow Tables,
    and pandas' nullable and Arrow-backed columns, each column converted once into the numpy-backed column
    of the same R vector (:func:`torchlm.frame.dataframes.pandas_frame`); a dict of arrays becomes a table.

    Parameters
    ----------
    data : data frame (pandas, polars, pyarrow, ...) or dict of arrays
        A pandas DataFrame with numpy-backed columns is returned as it is (the same object).

    Returns
    -------
    pandas.DataFrame
        The data as a table: the pandas frame's index, or a RangeIndex (R's automatic row names) for any
        other kind of table.
    """
    if type(data).__module__.split(".")[0] == "dask":
        # narwhals would collect a Dask DataFrame whole, silently: only tl.lm reads one by partitions so far
        raise ModelInputError("a Dask DataFrame is read by partitions by tl.lm only (so far); this function would "
                              "need it in memory: pass data.compute() if it fits, or a pandas DataFrame")
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except ValueError as e:
            raise DataError(f"cannot turn data (a dict) into a table: {e}") from None
    frame = pandas_frame(data)
    if frame is None:
        raise DataError(f"data must be a data frame (pandas, polars, a pyarrow Table, or another kind narwhals "
                        f"reads) or a dict of arrays, not {type(data).__name__}")
    # pandas allows repeated column names; formulaic, the NA checks and R's model frame would each
    # pick one of them (or fail deep inside pandas), so a repeated name is an error up front
    check_unique_columns(frame, frame.columns)
    return frame


def columns_text(frame: pd.DataFrame, k: int = 12) -> str:
    """The first ``k`` column names of ``frame``, comma-separated, for an error message.

    Parameters
    ----------
    frame : pandas.DataFrame
        The user's data.
    k : int
        How many names to list before ", ...".

    Returns
    -------
    str
        For example ``"y, x, g, ..."``.
    """
    cols = [str(c) for c in frame.columns]
    return ", ".join(cols[:k]) + (", ..." if len(cols) > k else "")


def check_unique_columns(frame: pd.DataFrame, names: Iterable[Any]) -> None:
    """Raise a DataError if one of ``names`` is the name of more than one column of ``frame``.

    pandas allows repeated column names; a model cannot tell which of them a variable means.

    Parameters
    ----------
    frame : pandas.DataFrame
        The user's data.
    names : iterable
        The column names a model reads.

    Returns
    -------
    None
    """
    if frame.columns.is_unique:
        return
    repeated = set(frame.columns[frame.columns.duplicated()])
    used = [n for n in dict.fromkeys(names) if n in repeated]
    if used:
        listed = ", ".join(repr(n) for n in used)
        raise DataError(
            f"data has more than one column named {listed}, so the model cannot tell which one to use: "
            "rename or drop the repeated columns (data.loc[:, ~data.columns.duplicated()] keeps the first)"
        )


def prepare_columns(frame: pd.DataFrame, names: Iterable[Any]) -> pd.DataFrame:
    """``frame`` with the columns a model reads in the dtypes formulaic encodes as R would.

    R sees numbers where pandas may store them as objects or nullable arrays, and text where pandas
    may use its ``string`` dtype: object columns holding only numbers (and missing values) become
    float64, nullable numbers and booleans float64 with NaN for missing, ``string`` columns (python
    or pyarrow storage) object columns of text, which formulaic encodes as factors. A complex column,
    an object column mixing numbers and text or holding other objects (lists: R's "invalid type"),
    and a column of periods or intervals are a DataError naming the column. Repeated column names
    are a DataError (see :func:`check_unique_columns`).

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to build on (never modified).
    names : iterable
        The columns the formula reads; names that are not columns of ``frame`` are ignored.

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself when no column needs a change, else a shallow copy with the changed columns replaced.
    """
    names = [n for n in dict.fromkeys(names) if n in frame.columns]
    check_unique_columns(frame, names)
    changed = {}
    for name in names:
        col = _r_column(frame[name], name)
        if col is not None:
            changed[name] = col
    if not changed:
        return frame
    out = frame.copy(deep=False)
    for name, col in changed.items():
        # replaces the column of the copy (the user's arrays are not written to); by position, not by label
        out[name] = col.to_numpy()
    return out


def _r_column(col: pd.Series, name: Any) -> pd.Series | None:
    """The column as R would read it, or None when formulaic reads it as it is."""
    dtype = col.dtype
    if pd.api.types.is_complex_dtype(dtype):
        raise _complex_error(name)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return None
    if isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)):
        kind = "periods" if isinstance(dtype, pd.PeriodDtype) else "intervals"
        raise DataError(f"column {name!r} holds {kind}, which a model cannot use as they are: convert them to "
                        f"numbers, or to a factor with data[{name!r}].astype(str)")
    if pd.api.types.is_object_dtype(dtype):
        return _object_column(col, name)
    if pd.api.types.is_string_dtype(dtype) and not dtype == "str":
        # formulaic takes only object and pandas 3's "str" columns for text; "string" (pd.NA) would be cast to float
        return pd.Series(col.to_numpy(dtype=object, na_value=np.nan), index=col.index, name=col.name, dtype=object)
    if pd.api.types.is_extension_array_dtype(dtype) and (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    ):
        # nullable Int64 / Float64 / boolean (and pyarrow numbers): float64 with NaN where pd.NA was
        return pd.Series(col.to_numpy(dtype=np.float64, na_value=np.nan), index=col.index, name=col.name)
    return None


def _object_column(col: pd.Series, name: Any) -> pd.Series | None:
    """An object column: numbers (and missing values) as float64; text left to formulaic; a mix is an error."""
    kind = pd.api.types.infer_dtype(col, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return _as_float(col, name)
    if kind == "complex":
        raise _complex_error(name)
    if kind.startswith("mixed"):
        values = col[col.notna()]
        if values.map(lambda v: isinstance(v, (complex, np.complexfloating))).any():
            raise _complex_error(name)
        is_number = values.map(lambda v: isinstance(v, (int, float, np.number, bool, np.bool_)))
        is_text = values.map(lambda v: isinstance(v, (str, bytes)))
        if is_number.any() and is_text.any():
            example = values[is_text].iloc[0]
            raise DataError(
                f"column {name!r} (dtype object) mixes numbers and text (e.g. {example!r}): convert it to numbers "
                f"with pd.to_numeric(data[{name!r}], errors='coerce') (text becomes missing), or to a factor "
                f"with data[{name!r}].astype(str)"
            )
        if is_number.all():
            # numbers with some True/False among them: R's c(1, TRUE) is numeric too
            return _as_float(col, name)
    if kind in ("mixed", "unknown-array", "interval", "period"):
        odd = next((v for v in col[col.notna()] if not isinstance(v, (str, bytes, int, float, np.number))), None)
        if odd is not None:
            # R: "invalid type (list) for variable 'x'"
            raise DataError(f"column {name!r} (dtype object) holds values of type {type(odd).__name__}, which a "
                            "model cannot use: give it numbers, or text for a factor")
    return None


def _as_float(col: pd.Series, name: Any) -> pd.Series:
    """An object column of numbers (and missing values) as float64, NaN where a value is missing."""
    present = col.notna().to_numpy()
    out = np.full(len(col), np.nan)
    try:
        out[present] = col.to_numpy()[present].astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"column {name!r} (dtype object) holds numbers that do not convert to float: "
                        f"convert it with pd.to_numeric(data[{name!r}])") from None
    return pd.Series(out, index=col.index, name=col.name)


def _complex_error(name: Any) -> DataError:
    # R: "complex variables are not currently allowed in model matrices"
    return DataError(
        f"column {name!r} holds complex numbers, which a model cannot use (R: complex variables are not currently "
        f"allowed in model matrices): use its real part (np.real), imaginary part (np.imag) or modulus (np.abs)"
    )


# R's model.matrix codes a logical variable as a factor with the levels FALSE and TRUE, both kept
# whether or not the rows use them (drop.unused.levels drops factor levels only)
LOGICAL_LEVELS = [False, True]


def is_logical(col: pd.Series) -> bool:
    """Whether a column is R's logical: numpy or nullable booleans, or the factor :func:`logical_factors` makes.

    Parameters
    ----------
    col : pandas.Series
        A column of the data.

    Returns
    -------
    bool
    """
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = list(dtype.categories)
        return cats == LOGICAL_LEVELS and all(isinstance(c, (bool, np.bool_)) for c in cats)
    return pd.api.types.is_bool_dtype(dtype)


def logical_factors(frame: pd.DataFrame, names: Iterable[Any]) -> pd.DataFrame:
    """``frame`` with the logical columns ``names`` as factors with levels False, True (R's coding of a logical).

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows (never modified).
    names : iterable
        Logical columns that enter a formula as variables (missing values stay missing).

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself when there are none, else a shallow copy with those columns replaced.
    """
    names = [n for n in names if n in frame.columns and not isinstance(frame[n].dtype, pd.CategoricalDtype)]
    if not names:
        return frame
    out = frame.copy(deep=False)
    for name in names:
        values = frame[name].to_numpy(dtype=object, na_value=np.nan)
        out[name] = pd.Categorical(values, categories=LOGICAL_LEVELS)
    return out
