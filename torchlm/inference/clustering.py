"""Cluster variables for R's vcovCL: their labels at the rows a fit uses, and the codes of the multiway terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import DataError, OptionError, UnknownVariableError

if TYPE_CHECKING:
    from torchlm.results.protocols import HasDesign


def _codes(labels, what: str) -> tuple[torch.Tensor, int]:
    codes, uniques = pd.factorize(pd.Series(labels), use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{what} has missing values (R's vcovCL cannot handle NAs in 'cluster' either)")
    return torch.as_tensor(codes, dtype=torch.int64), len(uniques)


def cluster_codes(cluster: np.ndarray | Sequence[Any]) -> list[tuple[torch.Tensor, int, int]]:
    """(codes, G, sign) for each term of R's multiway sum: a, b and, with sign -1, their intersection.

    Parameters
    ----------
    cluster : numpy.ndarray or sequence
        (n,) labels, or (n, 1) or (n, 2) for one- or two-way clustering; no missing values.

    Returns
    -------
    list of tuple of (torch.Tensor, int, int)
        Per term: (n,) int64 codes 0..G-1, the number of clusters G, and the term's sign in the meat.
    """
    cl = np.asarray(cluster, dtype=object) if not isinstance(cluster, np.ndarray) else cluster
    if cl.ndim == 1:
        return [(*_codes(cl, "cluster"), 1)]
    if cl.ndim != 2 or cl.shape[1] not in (1, 2):
        raise OptionError(f"cluster must have shape (n,) or (n, 2) (at most two-way clustering), got {cl.shape}")
    terms = [(*_codes(cl[:, j], f"cluster column {j}"), 1) for j in range(cl.shape[1])]
    if cl.shape[1] == 2:
        (a, _, _), (b, gb, _) = terms
        terms.append((*_codes((a * gb + b).numpy(), "cluster"), -1))
    return terms


def cluster_values(fit: HasDesign, cluster: Any) -> tuple[np.ndarray, list[str]]:
    """Cluster labels at the rows the fit uses (n,) or (n, 2), and their names for the summary.

    Each cluster variable is a column name of the data given to the fit (looked up at the rows used,
    after subset and missing-value removal), or an array with one value per row of that data or per
    row used. A list or tuple of two gives two-way clustering. Missing values are an error.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    cluster : Any
        One cluster variable, a list or tuple of two, or a DataFrame whose columns are the variables.

    Returns
    -------
    tuple of (numpy.ndarray, list of str)
        The (n,) labels, or (n, 2) object labels for two-way clustering; and each variable's name.
    """
    data = getattr(fit.design, "data", None)
    columns = set() if data is None else set(data.columns)
    if isinstance(cluster, pd.DataFrame):
        parts = [cluster[c] for c in cluster.columns]
    elif isinstance(cluster, (list, tuple)) and cluster and all(
            isinstance(c, str) or np.ndim(c) == 1 for c in cluster):
        # a list of strings is variable names, unless it is longer than two and not all are columns:
        # then it is one variable's labels
        names = all(isinstance(c, str) for c in cluster)
        labels_list = names and len(cluster) > 2 and not all(c in columns for c in cluster)
        parts = [cluster] if labels_list else list(cluster)
    else:
        parts = [cluster]
    if len(parts) > 2:
        raise OptionError(f"at most two-way clustering is supported, got {len(parts)} cluster variables")
    cols, labels = [], []
    for c in parts:
        values, label = _one_cluster(fit, c)
        cols.append(values)
        labels.append(label)
    out = cols[0] if len(cols) == 1 else np.column_stack([np.asarray(c, dtype=object) for c in cols])
    return out, labels


def _one_cluster(fit, c) -> tuple[np.ndarray, str]:
    d = fit.design
    data = getattr(d, "data", None)
    rows = getattr(d, "rows", None)
    n_used = len(d.index)
    if isinstance(c, str):
        if data is None:
            raise OptionError(f"cluster={c!r} names a column, but this fit keeps no reference to its data; "
                             "pass an array")
        if c not in data.columns:
            cols = ", ".join(map(str, list(data.columns)[:12]))
            raise UnknownVariableError(f"cluster variable {c!r} is not a column of the data (columns: {cols})")
        values, label = np.asarray(data[c].to_numpy())[rows], c
    elif isinstance(c, pd.Series) and data is not None and not c.index.equals(data.index):
        values, label = _aligned_series(c, d.index), str(c.name or "the cluster Series")
    else:
        arr = np.asarray(c)
        if arr.ndim != 1:
            raise OptionError(f"a cluster array must be one-dimensional, got shape {arr.shape}")
        label = str(getattr(c, "name", None) or "the cluster array")
        if data is not None and len(arr) == len(data):
            values = arr[rows]
        elif len(arr) == n_used:
            values = arr
        else:
            n_data = "" if data is None else f"the data has {len(data)} rows, "
            raise OptionError(f"cluster array has {len(arr)} values; {n_data}the fit uses {n_used}: pass one value "
                              "per row of the data given to the fit, a column name, or a pandas Series (matched to "
                              "the rows by its index)")
    missing = pd.isna(pd.Series(values)).to_numpy()
    if missing.any():
        raise DataError(f"cluster variable {label!r} has {int(missing.sum())} missing value(s) in the rows used by "
                         "the fit; refit without those rows (subset=) or fill them in")
    return values, label


def _aligned_series(c: pd.Series, used: pd.Index) -> np.ndarray:
    """A cluster Series whose index is not the data's: its values at the fit's rows, matched by label.

    A Series taken from the data before rows were dropped (or from a frame in another order) would
    otherwise be read by position and pair rows with the wrong clusters.
    """
    label = str(c.name or "the cluster Series")
    if not c.index.is_unique:
        raise OptionError(f"cluster {label!r} has a different index from the fit's data and duplicate labels in it, "
                          "so its values cannot be matched to the rows; pass an array in the data's row order")
    missing = used.difference(c.index)
    if len(missing):
        shown = ", ".join(map(repr, list(missing[:5])))
        raise OptionError(f"cluster {label!r} has no value for {len(missing)} row(s) the fit uses (index labels "
                          f"{shown}{', ...' if len(missing) > 5 else ''}); its index must cover the data's rows")
    return c.loc[used].to_numpy()
