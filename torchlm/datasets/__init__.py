"""Classic R datasets shipped with torchlm (R's datasets and MASS packages): tl.datasets.load("mtcars").

The files in data/ are written from R 4.2.2 by scripts/make_datasets.R: one CSV per dataset, and three index
files (_datasets.csv: package, title, size, whether R's row names are kept; _columns.csv: each column's R type;
_factor_levels.csv: each factor's levels in R's order).
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources

import numpy as np
import pandas as pd

from torchlm.errors import OptionError

INDEX_FILE = "_datasets.csv"
COLUMNS_FILE = "_columns.csv"
LEVELS_FILE = "_factor_levels.csv"

__all__ = ["available", "catalog", "factor_levels", "load", "names"]


@functools.cache
def _table(file: str) -> pd.DataFrame:
    # cached and never handed out: callers get copies or plain Python values
    # one part per joinpath: Traversable.joinpath takes a single name before Python 3.11
    path = resources.files(__name__).joinpath("data").joinpath(file)
    with path.open(encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _index() -> pd.DataFrame:
    return _table(INDEX_FILE).set_index("name")


def names() -> list[str]:
    """Names of the bundled datasets (R's ``data()`` lists them with ``catalog()``).

    Returns
    -------
    list of str
        The names ``load`` accepts, sorted.

    Examples
    --------
    >>> tl.datasets.names()[:4]
    ['Aids2', 'Animals', 'Boston', 'CO2']
    """
    return sorted(_table(INDEX_FILE)["name"])


def available() -> list[str]:
    """Names of the bundled datasets (the same as ``names()``).

    Returns
    -------
    list of str
        The names ``load`` accepts, sorted.

    Examples
    --------
    >>> tl.datasets.available() == tl.datasets.names()
    True
    """
    return names()


def catalog() -> pd.DataFrame:
    """The bundled datasets with their R package and title, as R's ``data()`` lists them.

    Returns
    -------
    pandas.DataFrame
        Indexed by name (in R's ``data()`` order: by package, then name ignoring case), with columns
        ``package``, ``title`` (R's one-line title), ``rows``, ``columns`` and ``row_names`` (True where R's
        row names are the index). A fresh copy.

    Examples
    --------
    >>> tl.datasets.catalog().loc["mtcars"]
    package                        datasets
    title        Motor Trend Car Road Tests
    rows                                 32
    columns                              11
    row_names                          True
    Name: mtcars, dtype: object
    """
    tab = _index()
    out = pd.DataFrame({
        "package": tab["package"], "title": tab["title"], "rows": tab["rows"].astype(np.int64),
        "columns": tab["columns"].astype(np.int64), "row_names": tab["row_names"] == "TRUE",
    }, index=pd.Index(tab.index, name="name"))
    order = sorted(out.index, key=lambda n: (out.loc[n, "package"] != "datasets", n.lower()))
    return out.loc[order].copy()


def _check_name(name: object) -> str:
    known = names()
    if isinstance(name, str) and name in known:
        return name
    if not isinstance(name, str):
        raise OptionError(f"a dataset is named by a string such as 'mtcars', not {type(name).__name__}")
    # close in spelling or differing only in case ('titanic' for 'Titanic')
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[k] for k in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        raise OptionError(f"unknown dataset {name!r}; {hint} (tl.datasets.names() lists the {len(known)} "
                          f"bundled datasets)")
    raise OptionError(f"unknown dataset {name!r}; the bundled datasets are: {', '.join(known)}")


def factor_levels(name: str) -> dict[str, list[str]]:
    """R's factor levels of a bundled dataset's columns, in R's order: {column: [levels]}.

    Parameters
    ----------
    name : str
        A bundled dataset (one of ``names()``).

    Returns
    -------
    dict of str to list of str
        Each factor column's levels in R's order (ordered factors included); empty for a dataset without
        factors.

    Examples
    --------
    >>> tl.datasets.factor_levels("warpbreaks")
    {'wool': ['A', 'B'], 'tension': ['L', 'M', 'H']}
    """
    name = _check_name(name)
    tab = _table(LEVELS_FILE)
    tab = tab[tab["dataset"] == name]
    return {col: list(part["level"]) for col, part in tab.groupby("column", sort=False)}


def _column(raw: pd.Series, r_type: str, levels: list[str]) -> pd.Series:
    """One column read as text, given R's type: factors as Categoricals with R's levels, numbers as numbers."""
    missing = raw.isna()
    if r_type in ("factor", "ordered"):
        values = pd.Categorical(raw, categories=levels, ordered=r_type == "ordered")
        return pd.Series(values, index=raw.index, name=raw.name)
    if r_type == "character":
        return raw
    if r_type == "logical":
        flags = raw.map({"TRUE": True, "FALSE": False})
        return flags.astype("boolean" if missing.any() else bool)
    if r_type not in ("integer", "double"):
        raise OptionError(f"column {raw.name!r} of a bundled dataset has an unknown R type {r_type!r}")
    values = pd.to_numeric(raw).astype(np.float64)
    # int64 for R's integers, and for doubles that are all whole numbers (so factor(cyl)'s levels read
    # "4", "6", "8" as R prints them); int64 cannot hold NA, so a column with NA stays float64 (NaN)
    if not missing.any() and (r_type == "integer" or bool((values == np.round(values)).all())):
        return values.astype(np.int64)
    return values


@functools.cache
def _parsed(name: str) -> pd.DataFrame:
    row_names = _index().loc[name, "row_names"] == "TRUE"
    cols = _table(COLUMNS_FILE)
    cols = cols[cols["dataset"] == name]
    path = resources.files(__name__).joinpath("data").joinpath(f"{name}.csv")
    with path.open(encoding="utf-8") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=["NA"],
                          index_col=0 if row_names else None)
    levels = factor_levels(name)
    df = pd.DataFrame({col: _column(raw[col], r_type, levels.get(col, []))
                       for col, r_type in zip(cols["column"], cols["type"])}, index=raw.index)
    if row_names:
        df.index = pd.Index(raw.index.astype(str), name=None)
    else:
        df.index = pd.RangeIndex(len(df))
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled R dataset as a DataFrame (a fresh copy each call, free to modify).

    R's row names are the index where R has meaningful ones (mtcars's car names, USArrests's states,
    birthwt's ids); other datasets get a RangeIndex. R's factors are pandas Categoricals with R's levels in
    R's order, so the first level is the reference of treatment contrasts as in R (warpbreaks$tension: L,
    M, H; not alphabetical), and R's ordered factors are ordered Categoricals (esoph$agegp). R's integers
    and whole-valued doubles are int64, other doubles float64, logicals bool; R's NA is missing (NaN, so an
    integer column with NA is float64). Column names are R's (Sepal.Length, Solar.R: formulas take them as written).

    Parameters
    ----------
    name : str
        One of ``names()``, e.g. "mtcars" (``catalog()`` lists them with R's titles).

    Returns
    -------
    pandas.DataFrame
        The dataset, as R's ``data(name)`` gives it.

    Examples
    --------
    >>> tl.datasets.load("mtcars").head(3)
                    mpg  cyl   disp   hp  drat     wt   qsec  vs  am  gear  carb
    Mazda RX4      21.0    6  160.0  110  3.90  2.620  16.46   0   1     4     4
    Mazda RX4 Wag  21.0    6  160.0  110  3.90  2.875  17.02   0   1     4     4
    Datsun 710     22.8    4  108.0   93  3.85  2.320  18.61   1   1     4     1
    """
    return _parsed(_check_name(name)).copy(deep=True)
