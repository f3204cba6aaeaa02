"""A Dask DataFrame as a source of row blocks: each partition's block reduced in its worker, the client combining.

Every task is a pure function of its partition (dask may recompute one after losing a worker) and returns a
few numbers: the R factor of [sqrt(w) X | sqrt(w) (y - offset)] and sums (:func:`qr_reduction`), the sums of
the residual pass at a known estimate (:func:`residual_reduction`), counts of the residuals in the ranges of
an exact selection (:func:`residual_counts`). The partition's torch work runs with one intra-op thread (the
scheduler's threads are the parallelism: torch's own would multiply them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.frame import Design, newdata_matrix, newdata_offset
from torchlm.frame.dask_frame import DaskPlan, PartitionRows, in_partition, map_partitions_computed, partition_rows

#: bins of each pass of the exact selection (each pass narrows the range of a residual's bit pattern by this)
SELECTION_BINS = 2048
#: a range holding at most this many residuals is collected, sorted, and read
SELECTION_COLLECT = 65536
_SIGN_OFF = np.int64(0x7FFFFFFFFFFFFFFF)


@dataclass
class QRPart:
    """One partition's (or the combined data's) reduction for the least-squares fit.

    R : (m, p + 1) upper-triangular factor of [sqrt(w) X | sqrt(w) (y - offset)] (m <= p + 1).
    n : rows used; nobs : rows of non-zero weight; n_dropped : rows dropped for missing values.
    sum_log_w : sum of log(w) over the rows of non-zero weight (logLik); w_min, w_max : range of the weights.
    colsum : column sums of X; wcolsum : column sums of w X; offset_sum : sum of the offset.
    """

    R: np.ndarray
    n: int
    nobs: int
    n_dropped: int
    sum_log_w: float
    w_min: float
    w_max: float
    colsum: np.ndarray
    wcolsum: np.ndarray
    offset_sum: float


@dataclass
class ResidualPart:
    """One partition's sums at the estimate: weighted rss, the model's sum of squares, the fitted values' spread.

    rss : sum w e^2; mss : sum over w > 0 of w (f - m)^2 (f = X b, m the weighted mean; f^2 without intercept);
    ss_fitted : sum of (fitted - mean fitted)^2; r_min, r_max : range of sqrt(w) e; meat : sum of the
    score outer products over the estimable columns (HC0's meat).
    """

    rss: float
    mss: float
    ss_fitted: float
    r_min: float
    r_max: float
    meat: np.ndarray


def qr_reduction(part: pd.DataFrame, number: int, plan: DaskPlan) -> QRPart:
    """The least-squares reduction of one partition (its design built in the worker, with the plan).

    Parameters
    ----------
    part : pandas.DataFrame
        The partition.
    number : int
        Its position.
    plan : DaskPlan
        The learnt plan.

    Returns
    -------
    QRPart
    """
    rows = partition_rows(part, number, plan)
    X, w = rows.X, rows.weights
    t = rows.y if rows.offset is None else rows.y - rows.offset
    sw = None if w is None else np.sqrt(w)
    A = np.column_stack([X, t]) if sw is None else np.column_stack([X * sw[:, None], t * sw])
    return qr_part(rows, A)


def qr_part(rows: PartitionRows, A: np.ndarray) -> QRPart:
    """The QRPart of a partition's rows: the R factor of ``A`` (its weighted design and response) and the sums.

    Parameters
    ----------
    rows : PartitionRows
    A : numpy.ndarray
        (m, q) the rows' weighted columns (lm: [sqrt(w) X | sqrt(w) (y - offset)]; glm: its working ones).

    Returns
    -------
    QRPart
    """
    X, w = rows.X, rows.weights
    with threads.limit(1):
        R = torch.linalg.qr(torch.from_numpy(np.asfortranarray(A)), mode="r").R.numpy()
    pos = np.ones(len(rows.y), dtype=bool) if w is None else w != 0
    return QRPart(
        R=R, n=len(rows.y), nobs=int(pos.sum()), n_dropped=rows.n_dropped,
        sum_log_w=0.0 if w is None else float(np.sum(np.log(w[pos]))),
        w_min=np.inf if w is None or not len(w) else float(w.min()),
        w_max=-np.inf if w is None or not len(w) else float(w.max()),
        colsum=X.sum(axis=0), wcolsum=X.sum(axis=0) if w is None else w @ X,
        offset_sum=0.0 if rows.offset is None else float(rows.offset.sum()))


def combine_qr(parts: list[QRPart]) -> QRPart:
    """The partitions' reductions as one (their factors stacked in partition order, sums added).

    Parameters
    ----------
    parts : list of QRPart

    Returns
    -------
    QRPart
        Its ``R`` is the stack of the partitions' factors (the pseudo-rows the client's QR reads).
    """
    return QRPart(
        R=np.concatenate([q.R for q in parts], axis=0), n=sum(q.n for q in parts),
        nobs=sum(q.nobs for q in parts), n_dropped=sum(q.n_dropped for q in parts),
        sum_log_w=float(sum(q.sum_log_w for q in parts)), w_min=min(q.w_min for q in parts),
        w_max=max(q.w_max for q in parts), colsum=np.sum([q.colsum for q in parts], axis=0),
        wcolsum=np.sum([q.wcolsum for q in parts], axis=0), offset_sum=float(sum(q.offset_sum for q in parts)))


@dataclass(frozen=True)
class Estimate:
    """What the residual passes need of the fit: the coefficients (0 where aliased) and a few constants.

    beta : (p,); estimable : the estimable columns (formula order); weighted_mean : the weighted mean of X b
    (None without intercept: R's uncentred model sum of squares); fitted_mean : the mean of the fitted values;
    saturated : no residual degrees of freedom (R's residuals are 0 where the weight is not).
    """

    beta: np.ndarray
    estimable: tuple[int, ...]
    weighted_mean: float | None
    fitted_mean: float
    saturated: bool


def partition_fit(rows: PartitionRows, est: Estimate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X b, the fitted values and the residuals of one partition's rows.

    Parameters
    ----------
    rows : PartitionRows
    est : Estimate

    Returns
    -------
    tuple of three numpy.ndarray
    """
    f = rows.X @ est.beta
    fitted = f if rows.offset is None else f + rows.offset
    e = rows.y - fitted
    if est.saturated:
        # R's residuals of a saturated fit: 0 where the weight is not (fitted values the response there)
        used = np.ones(len(e), dtype=bool) if rows.weights is None else rows.weights != 0
        e = np.where(used, 0.0, e)
        fitted = np.where(used, rows.y, fitted)
        f = fitted if rows.offset is None else fitted - rows.offset
    return f, fitted, e


def _pearson(rows: PartitionRows, e: np.ndarray) -> np.ndarray:
    return e if rows.weights is None else np.sqrt(rows.weights) * e


def residual_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate) -> ResidualPart:
    """The residual pass of one partition: the sums of squares at the estimate and HC0's meat.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate

    Returns
    -------
    ResidualPart
    """
    rows = partition_rows(part, number, plan)
    f, fitted, e = partition_fit(rows, est)
    w = np.ones(len(e)) if rows.weights is None else rows.weights
    used = w != 0
    c = f[used] if est.weighted_mean is None else f[used] - est.weighted_mean
    r = _pearson(rows, e)
    cols = list(est.estimable)
    S = rows.X[:, cols] * (np.sqrt(w) * r)[:, None]
    with threads.limit(1):
        St = torch.from_numpy(S)
        meat = (St.T @ St).numpy()
    return ResidualPart(
        rss=float(np.sum(w * e**2)), mss=float(np.sum(w[used] * c**2)),
        ss_fitted=float(np.sum((fitted - est.fitted_mean) ** 2)),
        r_min=float(r.min()) if len(r) else np.inf, r_max=float(r.max()) if len(r) else -np.inf, meat=meat)


def _keys(values: np.ndarray) -> np.ndarray:
    """Each float64's bit pattern as an int64 that sorts as the floats do (-0.0 just below +0.0)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ _SIGN_OFF, bits)


def _floats(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, keys ^ _SIGN_OFF, keys).astype(np.int64)
    return bits.view(np.float64)


def residual_counts(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate,
                    ranges: tuple[tuple[int, int, int], ...]) -> list[np.ndarray]:
    """For each range (lo, hi, width) of keys: the residuals' counts in bins of ``width`` keys, or (width 0) their keys.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate
    ranges : tuple of (lo, hi, width)
        Inclusive key ranges of the pearson residuals (sqrt(w) e); width 0 asks for the keys themselves.

    Returns
    -------
    list of numpy.ndarray
        Per range: int64 counts per bin (SELECTION_BINS of them), or the sorted keys in the range.
    """
    rows = partition_rows(part, number, plan)
    return range_counts(_pearson(rows, partition_fit(rows, est)[2]), ranges)


def range_counts(values: np.ndarray, ranges: tuple[tuple[int, int, int], ...]) -> list[np.ndarray]:
    """Counts of ``values`` in bins of each key range (lo, hi, width), or (width 0) their sorted keys.

    Parameters
    ----------
    values : numpy.ndarray
        float64 values (their bit patterns are the keys).
    ranges : tuple of (lo, hi, width)

    Returns
    -------
    list of numpy.ndarray
    """
    keys = _keys(values)
    out = []
    for lo, hi, width in ranges:
        inside = keys[(keys >= lo) & (keys <= hi)]
        if width == 0:
            out.append(np.sort(inside))
            continue
        # key - lo fits an unsigned 64-bit integer for any two int64 keys
        offset = inside.astype(np.uint64) - np.uint64(lo % 2**64)
        out.append(np.bincount((offset // np.uint64(width)).astype(np.int64), minlength=SELECTION_BINS))
    return out


def order_statistics(ddf: Any, plan: Any, est: Any, n: int, ranks: list[int],
                     collect: int = SELECTION_COLLECT, counts: Any = None) -> dict[int, float]:
    """The exact order statistics of the pearson residuals (0-based ranks), by passes of counts over the partitions.

    Each pass narrows the range of keys (the residuals' bit patterns) that holds each wanted rank by
    SELECTION_BINS; a range with at most ``collect`` residuals is collected and read. Memory per pass
    is O(bins) per partition, whatever n; about 64 / log2(bins) passes at worst, usually two or three.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    plan : DaskPlan
        (or what ``counts`` takes as its plan)
    est : Estimate
        (or what ``counts`` takes)
    n : int
        The number of residuals (rows used).
    ranks : list of int
        The wanted ranks, 0 .. n - 1.
    collect : int
        Largest count of residuals a range may hold to be collected.
    counts : callable, optional
        ``counts(part, number, plan, est, ranges)`` of other per-row values (default the pearson residuals').

    Returns
    -------
    dict
        rank -> value.
    """
    task = counts or residual_counts
    state = {k: (-(2**63), 2**63 - 1, 0, n) for k in set(ranks)}  # lo, hi, residuals below lo, inside
    found: dict[int, float] = {}
    while len(found) < len(state):
        open_ranges = sorted({(lo, hi, cnt) for k, (lo, hi, _, cnt) in state.items() if k not in found})
        asks = tuple((lo, hi, 0 if cnt <= collect else -(-(hi - lo + 1) // SELECTION_BINS))
                     for lo, hi, cnt in open_ranges)
        answers = map_partitions_computed(ddf, task, plan, est, asks)
        for j, (lo, hi, width) in enumerate(asks):
            parts = [a[j] for a in answers]
            ks = [k for k, s in state.items() if k not in found and (s[0], s[1]) == (lo, hi)]
            if width == 0:
                keys = np.sort(np.concatenate(parts))
                for k in ks:
                    found[k] = float(_floats(keys[k - state[k][2]: k - state[k][2] + 1])[0])
                continue
            counts = np.sum(parts, axis=0)
            cum = np.cumsum(counts)
            for k in ks:
                below = state[k][2]
                b = int(np.searchsorted(cum, k - below, side="right"))
                nlo = lo + b * width
                nhi = min(hi, nlo + width - 1)
                before = below + (int(cum[b - 1]) if b else 0)
                if nlo == nhi:
                    found[k] = float(_floats(np.array([nlo], dtype=np.int64))[0])
                state[k] = (nlo, nhi, before, int(counts[b]))
    return found


def partition_values(part: pd.DataFrame, plan: DaskPlan, est: Estimate, kind: str,
                     partition_info: dict | None = None) -> pd.Series:
    """One partition's fitted values or residuals (kind "fitted", "response" or "pearson"), at its rows used.

    Parameters
    ----------
    part : pandas.DataFrame
    plan : DaskPlan
    est : Estimate
    kind : str
    partition_info : dict, optional
        dask's map_partitions information (the partition's number, for errors).

    Returns
    -------
    pandas.Series
        Indexed by the partition's labels of the rows used.
    """
    number = -1 if partition_info is None else int(partition_info.get("number", -1))
    rows = partition_rows(part, number, plan)
    _, fitted, e = partition_fit(rows, est)
    values = fitted if kind == "fitted" else (_pearson(rows, e) if kind == "pearson" else e)
    return pd.Series(values, index=rows.index, name="fitted" if kind == "fitted" else "residuals")


def partition_predict(part: pd.DataFrame, design: Design, estimable: list[int], beta: np.ndarray,
                      partition_info: dict | None = None) -> pd.Series:
    """Predictions for one partition of a Dask newdata (NaN where a predictor is missing, as R's na.pass).

    Parameters
    ----------
    part : pandas.DataFrame
    design : Design
        The fit's design (its spec encodes the new rows).
    estimable : list of int
        The estimable columns, in pivot order; beta their coefficients.
    beta : numpy.ndarray
    partition_info : dict, optional
        dask's map_partitions information (the partition's number, for errors).

    Returns
    -------
    pandas.Series
        Named "fit", with the partition's index.
    """
    number = -1 if partition_info is None else int(partition_info.get("number", -1))
    with in_partition(number):
        X = newdata_matrix(design, part)
        off = newdata_offset(design, part, None, len(X))
        fit = X[:, estimable] @ beta + (0.0 if off is None else off)
        return pd.Series(fit, index=part.index, name="fit")
