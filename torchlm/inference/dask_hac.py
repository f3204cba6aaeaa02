"""Newey-West HAC covariance of a Dask fit: lagged products across partition boundaries, two passes.

R's ``NeweyWest(fit, prewhite = FALSE, adjust = TRUE)`` as :func:`torchlm.inference.sandwich.robust_covariance`
computes it in memory, with the partitions in index order (known divisions) as the rows' time order. A first
pass gives the automatic bandwidth's autocovariances of u_i = s_i . w (each partition's sums of u_i u_{i+j}
within it, and its first and last m values of u); a second, at the lag L it gives, the Bartlett-weighted
autocovariances of the scores (each partition's within sums, and its first and last L + 1 rows of scores).
The client adds the products of the pairs that straddle partitions, carrying the last rows of the partitions
before, so a partition shorter than the lag is no special case. Memory per task: a (k, k) sum and 2 (L + 1)
rows of scores. A fit without an intercept takes one more pass first: the per-column sums of R's test for a
column of ones under another name, whose weight in u is then 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError
from torchlm.frame.dask_frame import DaskPlan, map_partitions_computed, not_supported
from torchlm.inference.hac import _bandwidth_vector, newey_west_weights, ones_column_sums, ones_weights
from torchlm.inference.sandwich import describe, hac_bandwidth_weights, intercept_name


def _within(X: np.ndarray, j: int) -> np.ndarray:
    """sum_i X_i' X_{i+j} over the pairs of rows of ``X`` at distance j."""
    if j >= len(X):
        return np.zeros((X.shape[1], X.shape[1]))
    return X[: len(X) - j].T @ X[j:]


def _straddling(before: np.ndarray, head: np.ndarray, j: int) -> np.ndarray:
    """sum of before_a' head_b over the pairs at distance j, ``before``'s last row just before ``head``'s first."""
    t = len(before)
    lo, hi = max(0, j - t), min(j, len(head))
    if lo >= hi:
        return np.zeros((before.shape[1], head.shape[1]))
    return before[t - j + lo: t - j + hi].T @ head[lo:hi]


def _last(X: np.ndarray, K: int) -> np.ndarray:
    return X[max(0, len(X) - K):] if K else X[:0]


def hac_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, scores: Any, est: Any, spec: tuple) -> Any:
    """One partition's lagged sums: ("bandwidth", w, m) of u = S w, or ("meat", weights) of the scores S; or
    ("ones",) its sums of bwNeweyWest's test for columns of ones (a fit without an intercept).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    scores : callable
        ``scores(part, number, plan, est, design=False)``: the partition's (rows, k) scores over the estimable
        columns (with ``design=True`` also its design rows over them).
    est : Any
        What ``scores`` reads.
    spec : tuple
        ("bandwidth", w, m): u = S w and lags 0..m; ("meat", weights): Bartlett weights w_0 .. w_{L+1};
        ("ones",): the scores with their design rows.

    Returns
    -------
    tuple or numpy.ndarray
        (within sums per lag (bandwidth) or the weighted (k, k) sum 0.5 w_0 G_0 + sum_j w_j G_j (meat), the
        first and the last K rows (K = m, or L + 1)); for "ones" the (k,) sums of
        :func:`torchlm.inference.hac.ones_column_sums`.
    """
    if spec[0] == "ones":
        S, X = scores(part, number, plan, est, design=True)
        return ones_column_sums(np.asarray(S, dtype=np.float64), np.asarray(X, dtype=np.float64))
    S = np.asarray(scores(part, number, plan, est), dtype=np.float64)
    if not np.isfinite(S).all():
        raise DataError(f"partition {number} of the Dask DataFrame: the scores have non-finite values (NaN or Inf)")
    if spec[0] == "bandwidth":
        _, w, m = spec
        u = (S @ w)[:, None]
        return np.array([_within(u, j)[0, 0] for j in range(m + 1)]), u[:m], _last(u, m)
    weights = spec[1]
    K = len(weights) - 1
    G = 0.5 * weights[0] * _within(S, 0)
    for j in range(1, len(weights)):
        if weights[j] != 0:
            G = G + weights[j] * _within(S, j)
    return G, S[:K], _last(S, K)


def _combine(parts: list, lags: list[int], weights: np.ndarray | None) -> Any:
    """The partitions' within sums plus the straddling pairs', carrying the last K rows of the partitions before."""
    total = sum(p[0] for p in parts)
    K = max(lags) if lags else 0
    carry = None
    for _, head, tail in parts:
        if carry is not None and len(carry) and len(head):
            for j in lags:
                pair = _straddling(carry, head, j)
                if weights is None:
                    total[j] += pair[0, 0]
                elif weights[j] != 0:
                    total = total + weights[j] * pair
        carry = tail if carry is None else np.concatenate([carry, tail])[max(0, len(carry) + len(tail) - K):]
    return total


def dask_hac_covariance(fit: Any, source: Any, scores: Any, est: Any) -> tuple[pd.DataFrame, str]:
    """sandwich's NeweyWest(fit) (automatic lag, Bartlett kernel, adjust = TRUE) of a Dask fit, from two passes.

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult
    source : what the passes map over (the Dask DataFrame, or the persisted rows of a glm).
    scores : callable
        ``scores(part, number, plan, est, design=False)``: a partition's scores over the estimable columns
        (formula order), with ``design=True`` also its design rows over them (a fit without an intercept).
    est : Any
        What ``scores`` reads.

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The covariance over the estimable coefficients and its description (with the lag).

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> mtcars = tl.datasets.load("mtcars").reset_index(drop=True)  # the rows' order is the index's
    >>> with dask.config.set(scheduler="threads"):
    ...     V = tl.lm("mpg ~ wt", dd.from_pandas(mtcars, npartitions=3)).vcov("HAC")
    >>> bool(np.allclose(V, tl.lm("mpg ~ wt", mtcars).vcov("HAC"), rtol=1e-10))
    True
    """
    if not fit._ddf.known_divisions:
        raise not_supported("HAC on a Dask DataFrame whose divisions are unknown (the partitions' order is the "
                            "rows' time order: set a sorted index, e.g. ddf.set_index or from_pandas(sort=True))")
    n, k, names = fit._total.n, fit.rank, list(fit.estimable)
    if n <= k:
        return pd.DataFrame(np.nan, index=names, columns=names), describe("HAC")
    if intercept_name(fit) is None:  # R's bwNeweyWest zeroes the columns of ones: one pass of per-row sums
        sums = sum(map_partitions_computed(source, hac_reduction, fit._plan, scores, est, ("ones",)))
        w = _bandwidth_vector(k, ones_weights(sums))
    else:
        w = _bandwidth_vector(k, hac_bandwidth_weights(fit, None))
    m = math.floor(4 * (n / 100) ** (2 / 9))
    parts = map_partitions_computed(source, hac_reduction, fit._plan, scores, est, ("bandwidth", w, m))
    sigma = _combine(parts, list(range(m + 1)), None) / n
    j = np.arange(1, m + 1)
    s0, s1 = sigma[0] + 2 * sigma[1:].sum(), 2 * np.sum(j * sigma[1:])
    lag = math.floor(1.1447 * ((s1 / s0) ** 2) ** (1 / 3) * n ** (1 / 3))  # R's floor(bwNeweyWest(x))
    weights = newey_west_weights(lag)[:n]
    parts = map_partitions_computed(source, hac_reduction, fit._plan, scores, est, ("meat", weights))
    G = _combine(parts, list(range(1, len(weights))), weights)
    M = (G + G.T) * (n / (n - k))
    C = np.asarray(fit._unscaled(), dtype=np.float64)
    V = (C @ M @ C) * (fit.nobs / n) ** 2
    return pd.DataFrame((V + V.T) / 2, index=names, columns=names), describe("HAC", None, lag)
