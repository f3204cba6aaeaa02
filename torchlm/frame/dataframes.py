"""Data frames of any kind (polars, pyarrow, pandas with nullable or Arrow dtypes) as the pandas the pipeline reads.

One conversion, at the frame stage, through narwhals (a formulaic dependency): each column becomes the
numpy-backed pandas column that holds the same R vector, so that everything after this point (model frame,
design, newdata, subset/weights/offset expressions) sees one kind of table:

- numbers: int64 when whole and complete, else float64 with NaN for a null; a NaN in a float column is
  missing too (R's ``is.na(NaN)`` is TRUE, and ``lm`` drops the row);
- logicals: bool, or pandas' nullable ``boolean`` when some are null (R's logical with NA);
- text: pandas' default text column (pandas 3's ``str``, object before), NaN for a null (R's character with NA);
- polars Enum: a factor with the Enum's declared categories in their order; polars Categorical: a factor with
  its values' levels sorted (R's ``factor()``; polars 2 has no declared order for a Categorical, and sorts it
  lexically); an Arrow dictionary (a pyarrow Table's, or a pandas ``ArrowDtype``): a factor with the
  dictionary's levels in their order (as R's arrow package and pandas read it);
- dates, datetimes and durations as numpy's datetime64 / timedelta64; other types as object arrays, which
  the frame stage refuses by name if a model uses them.

The user's table is never modified; a non-pandas table gets a RangeIndex (R's automatic row names 1..n).
"""

from __future__ import annotations

from typing import Any

import narwhals.stable.v1 as nw
import numpy as np
import pandas as pd

from torchlm.errors import DataError

# dtype classes by name: narwhals >= 1.17 (formulaic's floor) lacks some of the later ones (Decimal, Int128)
_INTEGERS = tuple(getattr(nw, n) for n in ("Int8", "Int16", "Int32", "Int64", "Int128", "UInt8", "UInt16", "UInt32",
                                           "UInt64", "UInt128") if hasattr(nw, n))
_TEMPORAL = tuple(getattr(nw, n) for n in ("Date", "Datetime", "Duration") if hasattr(nw, n))


def pandas_frame(data: Any) -> pd.DataFrame | None:
    """A data frame of any kind narwhals reads, as a pandas DataFrame of numpy-backed R columns.

    Parameters
    ----------
    data : object
        A pandas DataFrame (its nullable and Arrow-backed columns are converted, the others kept), a polars
        DataFrame or LazyFrame (collected), a pyarrow Table, or any other table narwhals supports.

    Returns
    -------
    pandas.DataFrame or None
        ``data`` itself for a pandas frame whose columns need no conversion, a shallow copy with the converted
        columns for one that does (index kept), a new frame with a RangeIndex for any other table; None when
        ``data`` is not a data frame.
    """
    if isinstance(data, pd.DataFrame):
        return _pandas_columns(data)
    _check_repeated(list(getattr(data, "column_names", None) or ()))  # a pyarrow Table may repeat a name
    try:
        frame = nw.from_native(data, pass_through=True)
    except Exception as e:  # narwhals' own errors (repeated column names, ...): the reason is what matters
        raise DataError(f"cannot read data (a {type(data).__name__}) as a table: {e}") from None
    if isinstance(frame, nw.LazyFrame):
        try:
            frame = frame.collect()
        except Exception as e:  # the lazy query's own failure (a polars ComputeError, ...)
            raise DataError(f"cannot collect data (a lazy {type(data).__name__}): {e}") from None
    if not isinstance(frame, nw.DataFrame):
        return None
    names = list(frame.columns)
    _check_repeated(names)
    columns = {j: r_values(frame[name]) for j, name in enumerate(names)}
    out = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    out.columns = pd.Index(names, dtype=object)  # positions first: a name may be any hashable
    return out


def _check_repeated(names: list[Any]) -> None:
    """A DataError naming the repeated column names, if any (a model cannot tell which one a formula means)."""
    if len(set(names)) < len(names):
        repeated = ", ".join(repr(n) for n in dict.fromkeys(n for n in names if names.count(n) > 1))
        raise DataError(f"data has more than one column named {repeated}, so a model cannot tell which one to use: "
                        "rename or drop the repeated columns")


def _pandas_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A pandas frame with its nullable and Arrow-backed columns as numpy-backed R columns (itself if none)."""
    todo = [j for j, dtype in enumerate(frame.dtypes) if _needs_conversion(dtype)]
    if not todo:
        return frame
    out = frame.copy(deep=False)
    for j in todo:
        # by position: the column replaced in the copy, the user's arrays are not written to
        out.isetitem(j, pd.Series(r_values(nw.from_native(frame.iloc[:, j], series_only=True)), index=frame.index))
    return out


def _needs_conversion(dtype: Any) -> bool:
    """Whether a pandas column's dtype is one the rest of the pipeline does not read as R's vector as it is."""
    if isinstance(dtype, pd.ArrowDtype):
        return True
    if isinstance(dtype, pd.StringDtype):
        return dtype != "str"  # pandas 3's default text dtype (NaN for missing) formulaic reads as it is
    return pd.api.types.is_extension_array_dtype(dtype) and (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


def r_values(series: Any) -> Any:
    """A narwhals Series as the numpy (or pandas) array of the R vector it holds.

    Parameters
    ----------
    series : narwhals.Series
        One column, of any backend narwhals supports.

    Returns
    -------
    numpy.ndarray or pandas array
        float64 / int64 numbers, bool or nullable ``boolean`` logicals, object text, a ``pandas.Categorical``
        factor, datetime64 / timedelta64 times, or an object array of the values for any other type.
    """
    dtype = series.dtype
    nulls = np.asarray(series.is_null().to_numpy(), dtype=bool)
    if isinstance(dtype, (nw.Categorical, nw.Enum)):
        return _factor(series, dtype, nulls)
    if isinstance(dtype, nw.Boolean):
        if not nulls.any():
            return np.asarray(series.to_numpy(), dtype=bool)
        return pd.arrays.BooleanArray(np.asarray(series.fill_null(False).to_numpy(), dtype=bool), nulls)
    if isinstance(dtype, _INTEGERS) and not nulls.any():
        return _integers(series.to_numpy())
    if dtype.is_numeric():
        values = np.array(series.cast(nw.Float64).to_numpy(), dtype=np.float64)
        values[nulls] = np.nan
        return values
    if isinstance(dtype, nw.String):
        return _text(series.to_numpy(), nulls)
    if isinstance(dtype, _TEMPORAL):
        return np.array(series.to_numpy())  # NaT where null
    values = np.empty(len(nulls), dtype=object)
    for i, v in enumerate(series.to_list()):  # one by one: a list value must not become a row of a 2-d array
        values[i] = v
    return values


def _integers(values: Any) -> np.ndarray:
    """Whole numbers as int64 (R's integer), or float64 where int64 cannot hold them (large unsigned, Int128)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu" and (arr.dtype.kind == "i" or arr.size == 0 or arr.max() <= np.iinfo(np.int64).max):
        return arr.astype(np.int64)  # a copy: the table's buffer stays the table's
    return arr.astype(np.float64)


def _text(values: Any, nulls: np.ndarray) -> np.ndarray:
    """Text as an object array of str with NaN where a value is null (pandas' NA for text)."""
    out = np.array(values, dtype=object)
    out[nulls] = np.nan
    return out


def _factor(series: Any, dtype: Any, nulls: np.ndarray) -> pd.Categorical:
    """A categorical column as R's factor: its levels (see the module's note on their order) and values."""
    native = nw.to_native(series)
    arrow = _arrow_dictionary(native)
    if arrow is not None:
        # the dictionary's own codes: narwhals' to_numpy of a dictionary column with nulls repeats a neighbour
        arrow = arrow.unify_dictionaries()
        levels = arrow.chunk(0).dictionary.to_pylist() if arrow.num_chunks else []
        codes = np.concatenate([np.asarray(c.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
                                for c in arrow.chunks] or [np.zeros(0, dtype=np.int64)])
    else:
        levels = _declared(dtype, native)
        if levels is None:
            levels = sorted(series.drop_nulls().cast(nw.String).unique().to_list())
        codes = _codes(series, native, levels)
    codes[nulls] = -1
    return pd.Categorical.from_codes(codes, categories=levels)


def _declared(dtype: Any, native: Any) -> list[Any] | None:
    """An Enum's declared categories, in their order (None for a Categorical)."""
    if not isinstance(dtype, nw.Enum):
        return None
    declared = getattr(dtype, "categories", None)
    if declared is None:  # narwhals' stable v1 Enum does not carry them: polars' own dtype does
        declared = getattr(getattr(native, "dtype", None), "categories", None)
    return None if declared is None else list(declared)


def _codes(series: Any, native: Any, levels: list[Any]) -> np.ndarray:
    """Each row's position in ``levels`` (anything for a null), from polars' physical codes where it has them."""
    if type(native).__module__.startswith("polars") and hasattr(native, "to_physical"):
        # the codes of the distinct values, matched to the levels once: no per-row string hashing
        distinct = native.drop_nulls().unique()
        position = {v: i for i, v in enumerate(levels)}
        physical = np.asarray(distinct.to_physical().to_numpy(), dtype=np.int64)
        order = np.argsort(physical)
        wanted = np.array([position[v] for v in distinct.cast(str).to_list()], dtype=np.int64)[order]
        rows = np.asarray(native.to_physical().fill_null(0).to_numpy(), dtype=np.int64)
        if len(physical) == 0:
            return np.zeros(len(rows), dtype=np.int64)
        return wanted[np.clip(np.searchsorted(physical[order], rows), 0, len(physical) - 1)]
    values = series.cast(nw.String).to_numpy()
    return np.asarray(pd.Index(levels).get_indexer(values), dtype=np.int64)


def _arrow_dictionary(native: Any) -> Any:
    """The column as a pyarrow ChunkedArray when it is an Arrow dictionary (pyarrow's or pandas' ArrowDtype)."""
    if isinstance(getattr(native, "dtype", None), pd.ArrowDtype):
        native = native.array.__arrow_array__()
    module = type(native).__module__
    if module.startswith("pyarrow") and hasattr(native, "unify_dictionaries"):
        return native if str(native.type).startswith("dictionary") else None
    return None
