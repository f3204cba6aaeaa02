"""Sandwich covariances and influence of a Dask fit: leverages and meats per partition, clusters across partitions.

R's sandwich package, as :func:`torchlm.inference.sandwich.robust_covariance` computes it in memory, from
passes over the partitions: HC2-HC5 need the leverages h_i = |sqrt(w_i) x_i R^-1|^2 (one pass for their sum
and maximum, which HC4, HC4m and HC5 read, then the meat's pass); a clustered meat adds each partition's score
sums per cluster, so a cluster spread over partitions is summed on the client before its outer product; HAC
is :mod:`torchlm.inference.dask_hac`'s, from the scores of :func:`partition_scores`. The
influence measures are :mod:`torchlm.inference.dask_influence`'s (from :func:`leverage_spec`'s R^-1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.errors import DataError, OptionError, TorchlmWarning
from torchlm.frame.dask_frame import DaskPlan, map_partitions_computed, not_supported, partition_rows
from torchlm.inference.dask_hac import dask_hac_covariance
from torchlm.inference.sandwich import check_type, describe
from torchlm.sources.dask_source import Estimate, partition_fit

#: sandwich's leverage-based types
LEVERAGE_TYPES = ("HC2", "HC3", "HC4", "HC4m", "HC5")


@dataclass(frozen=True)
class MeatSpec:
    """What each partition needs for its share of a meat.

    type : HC0..HC5 or HC4m; n : R's n (rows used, zero weights included); p : round(sum of the leverages);
    hmax : the largest leverage; Rinv : R^-1 of the fit's factor (pivot order; None without leverages);
    pivot : the estimable columns in pivot order; clusters : the cluster columns (none, one or two).
    """

    type: str
    n: int
    p: int = 0
    hmax: float = 0.0
    Rinv: np.ndarray | None = None
    pivot: tuple[int, ...] = ()
    clusters: tuple[str, ...] = ()


def _scores(rows: Any, est: Estimate) -> tuple[np.ndarray, np.ndarray]:
    """The rows' scores w x_i e_i over the estimable columns (formula order), and sqrt(w)."""
    e = partition_fit(rows, est)[2]
    sw = np.ones(len(e)) if rows.weights is None else np.sqrt(rows.weights)
    return rows.X[:, list(est.estimable)] * (sw * sw * e)[:, None], sw


def partition_scores(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate,
                     design: bool = False) -> Any:
    """One partition's scores w x_i e_i over the estimable columns (formula order): HAC's rows.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate
    design : bool
        Also return the rows' design over the same columns.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        (rows used, k), and the design rows (rows used, k) with ``design``.
    """
    rows = partition_rows(part, number, plan)
    S = _scores(rows, est)[0]
    return (S, rows.X[:, list(est.estimable)]) if design else S


def _leverages(rows: Any, sw: np.ndarray, spec: MeatSpec) -> np.ndarray:
    """h_i of R's lm.influence (above 1 - 10 eps: exactly 1, as forced_leverages); 0 at zero weights."""
    if spec.Rinv is None:
        raise OptionError("leverages need the fit's R^-1")
    Xw = rows.X[:, list(spec.pivot)] * sw[:, None]
    with threads.limit(1):
        h = (torch.from_numpy(Xw) @ torch.from_numpy(spec.Rinv)).square().sum(dim=1).numpy()
    return np.where(h > 1 - 10 * np.finfo(float).eps, 1.0, h)


def leverage_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate,
                       spec: MeatSpec) -> tuple[float, float, list]:
    """One partition's sum and largest leverage, and the labels of rows whose leverage is close to 1.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate
    spec : MeatSpec

    Returns
    -------
    tuple of (float, float, list)
    """
    rows = partition_rows(part, number, plan)
    h = _leverages(rows, _scores(rows, est)[1], spec)
    close = rows.index[h > 1 - math.sqrt(np.finfo(float).eps)].tolist()
    return float(h.sum()), float(h.max()) if len(h) else 0.0, close


def _hc_factor(spec: MeatSpec, h: np.ndarray) -> np.ndarray:
    """sandwich's per-row multiplier of s_i s_i' (hc_factor's formulas, with the whole fit's n, p and max h)."""
    one_minus = 1 - h
    if spec.type == "HC2":
        return 1 / one_minus
    if spec.type == "HC3":
        return 1 / one_minus**2
    r = spec.n * h / spec.p
    if spec.type == "HC4":
        return 1 / one_minus ** np.minimum(r, 4)
    if spec.type == "HC4m":
        return 1 / one_minus ** (np.minimum(r, 1) + np.minimum(r, 1.5))
    delta = np.minimum(r, max(spec.n * 0.7 * spec.hmax / spec.p, 4))
    return 1 / np.sqrt(one_minus**delta)


def meat_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate, spec: MeatSpec) -> Any:
    """One partition's share of the meat: sum of s s' (times the HC factor), or its score sums per cluster.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate
    spec : MeatSpec

    Returns
    -------
    numpy.ndarray (k, k), or per clustering term a pandas.DataFrame of score sums indexed by the cluster
    """
    rows = partition_rows(part, number, plan)
    S, sw = _scores(rows, est)
    if spec.clusters:
        keys = []
        for c in spec.clusters:
            values = pd.Series(np.asarray(part[c])[rows.positions])
            if values.isna().any():
                raise DataError(f"partition {number} of the Dask DataFrame: cluster {c!r} has missing values at "
                                "rows the fit uses")
            keys.append(values)
        terms = [[k] for k in keys] + ([keys] if len(keys) == 2 else [])
        return [pd.DataFrame(S).groupby(t, sort=False).sum() for t in terms]
    f = None if spec.type in ("HC0", "HC1") else _hc_factor(spec, _leverages(rows, sw, spec))
    with threads.limit(1):
        St = torch.from_numpy(S)
        return (St.T @ (St if f is None else St * torch.from_numpy(f)[:, None])).numpy()


def _cluster_meat(parts: list, k: int) -> np.ndarray:
    """R's vcovCL meat from the partitions' cluster sums: G/(G-1) sum_g S_g S_g', the intersection subtracted."""
    M = np.zeros((k, k))
    n_terms = len(parts[0]) if parts else 0
    for j in range(n_terms):
        sums = pd.concat([p[j] for p in parts])
        Sg = sums.groupby(level=list(range(sums.index.nlevels)), sort=False).sum().to_numpy()
        G = Sg.shape[0]
        if G < 2:
            raise OptionError("a cluster variable with a single cluster gives no clustered covariance (G/(G-1))")
        M += (-1.0 if j == 2 else 1.0) * (G / (G - 1)) * (Sg.T @ Sg)
    return M


def _clusters(cluster: Any) -> tuple[str, ...]:
    names = (cluster,) if isinstance(cluster, str) else tuple(cluster) if isinstance(cluster, (list, tuple)) else None
    if names is None or not all(isinstance(c, str) for c in names):
        raise not_supported("cluster= other than column names of the Dask DataFrame")
    if len(names) not in (1, 2):
        raise OptionError(f"at most two-way clustering: got {len(names)} cluster variables")
    return names


def dask_robust_covariance(fit: Any, type: str, cluster: Any = None) -> tuple[pd.DataFrame, str]:
    """sandwich's vcovHC / vcovCL of a Dask fit (HC0-HC5, HC4m; clusters: one or two column names), from passes.

    Parameters
    ----------
    fit : DaskLinearModelResult
    type : str
    cluster : None, a column name, or a list of two

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The covariance over the estimable coefficients and its description.
    """
    check_type(type, cluster)
    if type == "HAC":
        return dask_hac_covariance(fit, fit._ddf, partition_scores, fit._estimate)
    clusters = () if cluster is None else _clusters(cluster)
    if missing := [c for c in clusters if c not in fit._ddf.columns]:
        raise OptionError(f"cluster {missing[0]!r} is not a column of the data")
    n, k, names = fit._total.n, fit.rank, list(fit.estimable)
    if n <= k:
        return pd.DataFrame(np.nan, index=names, columns=names), describe(type, list(clusters) or None)
    spec = MeatSpec(type=type, n=n, clusters=clusters)
    if type in LEVERAGE_TYPES and not clusters:
        spec = leverage_spec(fit, type)
        lev = map_partitions_computed(fit._ddf, leverage_reduction, fit._plan, fit._estimate, spec)
        close = [c for _, _, cs in lev for c in cs]
        if close:
            warnings.warn(f"{type} covariances become numerically unstable if hat values are close to 1 as for "
                          f"observations {', '.join(map(str, close))}", TorchlmWarning, stacklevel=5)
        p = int(np.round(sum(s for s, _, _ in lev)))
        if p == 0 and type in ("HC4", "HC4m", "HC5"):
            raise OptionError(f"type {type!r} needs leverages whose sum rounds to 1 or more")
        spec = MeatSpec(type=type, n=n, p=p, hmax=max(m for _, m, _ in lev), Rinv=spec.Rinv, pivot=spec.pivot)
    parts = map_partitions_computed(fit._ddf, meat_reduction, fit._plan, fit._estimate, spec)
    M = _cluster_meat(parts, k) if clusters else np.sum(parts, axis=0)
    if type == "HC1":
        M = M * ((n - 1) / (n - k) if clusters else n / (n - k))
    C = np.asarray(fit._unscaled(), dtype=np.float64)
    V = (C @ M @ C) * (fit.nobs / n) ** 2
    return pd.DataFrame((V + V.T) / 2, index=names, columns=names), describe(type, list(clusters) or None)


def leverage_spec(fit: Any, type: str = "HC0") -> MeatSpec:
    """The MeatSpec with the fit's R^-1 (pivot order), which each partition's leverages read.

    Parameters
    ----------
    fit : DaskLinearModelResult
    type : str
        The covariance type the spec is for.

    Returns
    -------
    MeatSpec
    """
    k = fit.rank
    R = fit._qr.R.cpu().double()
    Rinv = torch.linalg.solve_triangular(R, torch.eye(R.shape[0], dtype=R.dtype), upper=True).numpy()
    return MeatSpec(type=type, n=fit._total.n, Rinv=Rinv, pivot=tuple(fit._qr.pivot[:k]))
