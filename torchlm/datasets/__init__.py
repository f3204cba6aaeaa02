"""Classic R datasets shipped with torchlm: tl.datasets.load("mtcars")."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from torchlm.errors import OptionError

# R's factor levels of the bundled datasets (written by scripts/make_datasets.R)
LEVELS_FILE = "_factor_levels.csv"


def _data_file(name: str):
    # one part per joinpath: Traversable.joinpath takes a single name before Python 3.11
    return resources.files(__name__).joinpath("data").joinpath(name)


def available() -> list[str]:
    """Names of the bundled datasets.

    Returns
    -------
    list of str
        The names ``load`` accepts, sorted.
    """
    files = resources.files(__name__).joinpath("data").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".csv") and not f.name.startswith("_"))


def factor_levels(name: str) -> dict[str, list[str]]:
    """R's factor levels of a bundled dataset's columns, in R's order: {column: [levels]}.

    Parameters
    ----------
    name : str
        A bundled dataset (one of ``available()``).

    Returns
    -------
    dict of str to list of str
        Each factor column's levels in R's order; empty for a dataset without factors (or an unknown name).
    """
    with _data_file(LEVELS_FILE).open() as fh:
        tab = pd.read_csv(fh, dtype=str, keep_default_na=False)
    tab = tab[tab["dataset"] == name]
    return {col: list(part["level"]) for col, part in tab.groupby("column", sort=False)}


def load(name: str) -> pd.DataFrame:
    """Load a bundled R dataset as a DataFrame (a fresh copy each call).

    R's factors are pandas Categoricals with R's levels, in R's order, so the first level is the
    reference of treatment contrasts as in R (warpbreaks$tension: L, M, H; not alphabetical).

    Parameters
    ----------
    name : str
        One of ``available()``, e.g. "mtcars".

    Returns
    -------
    pandas.DataFrame
        The dataset, R's NA as missing values.
    """
    if name not in available():
        raise OptionError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    with _data_file(f"{name}.csv").open() as fh:
        df = pd.read_csv(fh, keep_default_na=False, na_values=["", "NA"])
    for col, levels in factor_levels(name).items():
        df[col] = pd.Categorical(df[col], categories=levels)
    return df
