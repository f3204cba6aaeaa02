"""The user's data as a table, and how error messages list its columns."""

from __future__ import annotations

from typing import Any

import pandas as pd

from torchlm.errors import DataError


def as_frame(data: Any) -> pd.DataFrame:
    """The user's data as a DataFrame (never modified; dicts of arrays accepted).

    Parameters
    ----------
    data : pandas.DataFrame or dict of arrays
        A DataFrame is returned as it is (the same object); a dict becomes a new DataFrame.

    Returns
    -------
    pandas.DataFrame
        The data as a table.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except ValueError as e:
            raise DataError(f"cannot turn data (a dict) into a table: {e}") from None
    raise DataError(f"data must be a pandas DataFrame or a dict of arrays, not {type(data).__name__}")


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
