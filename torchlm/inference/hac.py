"""Newey-West HAC pieces with R's sandwich conventions: the automatic bandwidth, Bartlett weights, meatHAC.

``sandwich.meat`` and ``sandwich.robust_covariance`` put them together (R's ``NeweyWest(x, prewhite =
FALSE, adjust = TRUE)``); the meat is accumulated over chunks of scores in time order.

Reference: Newey & West (1987, 1994); R package sandwich 3.0-2 (``bwNeweyWest``, ``meatHAC``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from torchlm.errors import DataError

# what chunked_meat / chunked_hac_meat read: called, it gives (positions, scores) pairs
_ScoreChunks = Callable[[], Iterable[tuple[slice | torch.Tensor, torch.Tensor]]]


def _finite(Sc: torch.Tensor) -> torch.Tensor:
    """A chunk of scores in float64, or ValueError if it has NaN or Inf."""
    if not bool(torch.isfinite(Sc).all()):
        raise DataError("scores has non-finite values (NaN or Inf)")
    return Sc.to(torch.float64)


def newey_west_lag(scores: torch.Tensor, bandwidth_weights: np.ndarray | None = None) -> int:
    """R's ``floor(bwNeweyWest(x, prewhite = FALSE))``, the lag NeweyWest() chooses.

    Parameters
    ----------
    scores : torch.Tensor
        (n, k) per-observation scores, in time order.
    bandwidth_weights : numpy.ndarray or None
        (k,) weights of the coefficients in the bandwidth, as for ``sandwich.meat``; default all 1.

    Returns
    -------
    int
        The lag L of the Bartlett weights.
    """
    return math.floor(newey_west_bandwidth(scores, bandwidth_weights))


def newey_west_bandwidth(scores: torch.Tensor, bandwidth_weights: np.ndarray | None = None) -> float:
    """R's ``bwNeweyWest(x, prewhite = FALSE)``: Newey-West (1994) automatic bandwidth, Bartlett kernel.

    With ``u_i = s_i · w`` (w = bandwidth_weights, default all 1), ``m = floor(4 (n/100)^(2/9))`` and
    ``σ_j = Σ_i u_i u_{i+j} / n``: ``s0 = σ_0 + 2 Σ_{j≤m} σ_j``, ``s1 = 2 Σ_{j≤m} j σ_j`` and the
    bandwidth is ``1.1447 ((s1/s0)^2)^(1/3) n^(1/3)``.

    Parameters
    ----------
    scores : torch.Tensor
        (n, k) per-observation scores, in time order.
    bandwidth_weights : numpy.ndarray or None
        (k,) w; all 1 where it is None or has no positive value, or where k < 2.

    Returns
    -------
    float
        The bandwidth (before R's floor).
    """
    n, k = scores.shape
    w = _bandwidth_vector(k, bandwidth_weights)
    u = (scores @ torch.as_tensor(w, dtype=scores.dtype, device=scores.device)).cpu().numpy()
    return _bandwidth_from_u(u)


def _bandwidth_vector(k: int, bandwidth_weights) -> np.ndarray:
    w = np.ones(k) if bandwidth_weights is None else np.asarray(bandwidth_weights, dtype=np.float64)
    if np.all(w <= 0):
        w = np.ones(k)
    if k < 2:
        w = np.ones(1)
    return w


def _bandwidth_from_u(u: np.ndarray) -> float:
    """bwNeweyWest from the weighted score sums u_i = s_i . w (the formula of newey_west_bandwidth)."""
    n = len(u)
    m = math.floor(4 * (n / 100) ** (2 / 9))
    sigma = np.array([np.dot(u[: n - j], u[j:]) / n for j in range(m + 1)])
    j = np.arange(1, m + 1)
    s0 = sigma[0] + 2 * sigma[1:].sum()
    s1 = 2 * np.sum(j * sigma[1:])
    return 1.1447 * ((s1 / s0) ** 2) ** (1 / 3) * n ** (1 / 3)


def newey_west_weights(lag: int) -> np.ndarray:
    """Bartlett weights of R's NeweyWest: ``seq(1, 0, by = -(1/(lag + 1)))``, lag + 2 values ending at 0.

    Parameters
    ----------
    lag : int
        The lag L.

    Returns
    -------
    numpy.ndarray
        (lag + 2,) weights w_0 = 1, ..., w_{L+1} = 0.
    """
    by = -(1 / (lag + 1))
    return np.maximum(1 + np.arange(lag + 2) * by, 0.0)


def chunked_hac_meat(chunks: _ScoreChunks, n: int, k: int, lag: int,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Σ_j w_j Γ_j summed over lags, symmetrised as R's meatHAC (before the n/(n-k) adjustment).

    Accumulated over chunks of scores in row (time) order, carrying the last lag + 1 rows between chunks.

    Parameters
    ----------
    chunks : callable
        Called without arguments, gives an iterable of (positions, scores) covering all n rows in order.
    n, k : int
        The numbers of observations and coefficients.
    lag : int
        The lag L of the Bartlett weights (``newey_west_weights(lag)``).
    device : torch.device, str or None
        Where the result is made.

    Returns
    -------
    torch.Tensor
        (k, k) float64: Γ_0 + Σ_{j≥1} w_j (Γ_j + Γ_j').
    """
    w = newey_west_weights(lag)[:n]
    G = torch.zeros(k, k, dtype=torch.float64, device=device)
    tail = torch.zeros(0, k, dtype=torch.float64, device=device)
    for _, Sc in chunks():
        Sc = _finite(Sc)
        t, m = tail.shape[0], Sc.shape[0]
        T = torch.cat([tail, Sc])
        G += 0.5 * float(w[0]) * (Sc.T @ Sc)
        for j in range(1, len(w)):
            # pairs (i, i + j) whose later row is in this chunk; the earlier one may be in the tail
            lo = max(t - j, 0)
            if w[j] != 0 and lo + j < t + m:
                G += float(w[j]) * (T[lo:t + m - j].T @ T[lo + j:t + m])
        tail = T[max(0, T.shape[0] - (len(w) - 1)):]
    return G + G.T


def ones_column_sums(U: np.ndarray, X: np.ndarray) -> np.ndarray:
    """bwNeweyWest's test of a column of ones without the intercept's name, on some rows: per column, the sum of
    (U_ij - r_i)^2, r_i the row mean of U_ij / X_ij where X_ij is non-zero (NaN for a row of zeros, as R's).

    A column's weight is 0 where the sum over all the rows is below 1e-16 (:func:`ones_weights`). The sums of row
    blocks add up.

    Parameters
    ----------
    U : numpy.ndarray
        (m, k) the rows' scores.
    X : numpy.ndarray
        (m, k) their design rows (the same columns).

    Returns
    -------
    numpy.ndarray
        (k,)

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.inference.hac import ones_column_sums
    >>> X = np.array([[1.0, 2.0], [1.0, -1.0]])
    >>> bool(ones_column_sums(X * np.array([[0.5], [2.0]]), X)[0] < 1e-16)
    True
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        nz = X != 0
        ratios = np.where(nz, U / np.where(nz, X, 1), 0.0)
        res = ratios.sum(axis=1) / np.where(nz.any(axis=1), nz.sum(axis=1), np.nan)
    return np.sum((U - res[:, None]) ** 2, axis=0)


def ones_weights(sums: np.ndarray) -> np.ndarray:
    """bwNeweyWest's coefficient weights from the :func:`ones_column_sums` of all the rows: 0 for a column of ones.

    Parameters
    ----------
    sums : numpy.ndarray
        (k,)

    Returns
    -------
    numpy.ndarray
        (k,) 0 or 1 (a NaN sum, from a row of zeros, keeps 1 as R's comparison does).

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.inference.hac import ones_weights
    >>> ones_weights(np.array([0.0, 2.0, np.nan])).tolist()
    [0.0, 1.0, 1.0]
    """
    return np.where(sums < 1e-16, 0.0, 1.0)
