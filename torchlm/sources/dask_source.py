"""A Dask DataFrame as a source of row blocks: each partition's block reduced in its worker, the client combining.

Every task is a pure function of its partition (dask may recompute one after losing a worker) and returns a
few numbers: the R factor of [sqrt(w) X | sqrt(w) (y - offset)] and sums (:func:`qr_reduction`), the sums of
the residual pass at a known estimate with a sketch of the residuals (:func:`residual_reduction`), counts of
the residuals in the ranges of an exact selection (:func:`residual_counts`, see
torchlm.sources.dask_selection). The partition's torch work runs with one intra-op thread (the scheduler's
threads are the parallelism: torch's own would multiply them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.frame import Design, newdata_matrix, newdata_offset
from torchlm.frame.dask_compute import by_pieces
from torchlm.frame.dask_frame import DaskPlan, PartitionRows, in_partition, partition_rows
from torchlm.solvers.tall_qr import weighted_r_factor
from torchlm.sources.dask_selection import RangeAnswer, Sketch, combine_range_answers, range_counts, sketch_of
from torchlm.sources.dask_windows import Window, combine_windows, sample_positions, window_answers


@dataclass
class QRPart:
    """One partition's (or the combined data's) reduction for the least-squares fit.

    R : (m, p + 1) upper-triangular factor of [sqrt(w) X | sqrt(w) (y - offset)] (m <= p + 1).
    n : rows used; nobs : rows of non-zero weight; n_dropped : rows dropped for missing values.
    sum_log_w : sum of log(w) over the rows of non-zero weight (logLik); w_min, w_max : range of the weights.
    colsum : column sums of X; wcolsum : column sums of w X; offset_sum : sum of the offset.
    sample : a few of the rows (lm: every SAMPLE_STRIDE-th of each piece), whose residuals at the estimate guess
    the windows of the summary's quantiles (see torchlm.sources.dask_windows); None in a glm's passes.
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
    sample: PartitionRows | None = None


@dataclass
class ResidualPart:
    """One partition's sums at the estimate: weighted rss, the model's sum of squares, the fitted values' spread.

    rss : sum w e^2; mss : sum over w > 0 of w (f - m)^2 (f = X b, m the weighted mean; f^2 without intercept);
    ss_fitted : sum of (fitted - mean fitted)^2; r_min, r_max : range of sqrt(w) e; meat : sum of the
    score outer products over the estimable columns (HC0's meat); sketches : of sqrt(w) e, one per partition
    (the summary's quantiles); windows : the answers for the quantiles' guessed windows.
    """

    rss: float
    mss: float
    ss_fitted: float
    r_min: float
    r_max: float
    meat: np.ndarray
    sketches: tuple[Sketch, ...] = ()
    windows: tuple[Window, ...] = ()


@by_pieces(lambda parts: combine_qr(parts))
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
    t = rows.y if rows.offset is None else rows.y - rows.offset
    q = qr_part(rows, rows.X, t, None if rows.weights is None else np.sqrt(rows.weights))
    return replace(q, sample=rows_at(rows, sample_positions(len(rows.y))))


def rows_at(rows: PartitionRows, pos: np.ndarray) -> PartitionRows:
    """The rows at positions ``pos`` of a partition's rows (copies: the partition's arrays are not held).

    Parameters
    ----------
    rows : PartitionRows
    pos : numpy.ndarray

    Returns
    -------
    PartitionRows
    """
    return PartitionRows(rows.X[pos], rows.y[pos], None if rows.weights is None else rows.weights[pos],
                         None if rows.offset is None else rows.offset[pos], rows.index[pos], 0, rows.positions[pos])


def stack_rows(parts: list[PartitionRows]) -> PartitionRows:
    """Partitions' rows one after the other (a sample's: the rows dropped are not counted).

    Parameters
    ----------
    parts : list of PartitionRows
        At least one.

    Returns
    -------
    PartitionRows
    """
    parts = [r for r in parts if len(r.y)] or parts[:1]  # an empty partition's rows have no weights array

    def joined(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        return None if arrays[0] is None else np.concatenate(arrays)  # type: ignore[arg-type]

    return PartitionRows(np.concatenate([r.X for r in parts]), np.concatenate([r.y for r in parts]),
                         joined([r.weights for r in parts]), joined([r.offset for r in parts]),
                         parts[0].index.append([r.index for r in parts[1:]]), 0,
                         np.concatenate([r.positions for r in parts]))


def qr_part(rows: PartitionRows, X: Any, target: Any, sw: Any = None, columns: list[int] | None = None) -> QRPart:
    """The QRPart of a partition's rows: the R factor of [sqrt(w) X | sqrt(w) target] (by row blocks) and the sums.

    Parameters
    ----------
    rows : PartitionRows
    X : numpy.ndarray or torch.Tensor
        (m, p) the rows' design (lm: the partition's; glm: the same rows, with the working weights as ``sw``).
    target : numpy.ndarray or torch.Tensor
        (m,) lm: y - offset; glm: the working response.
    sw : numpy.ndarray or torch.Tensor, optional
        Square roots of the weights (None: 1).
    columns : list of int, optional
        The columns of X in the factor (default all).

    Returns
    -------
    QRPart
    """
    X0, w = rows.X, rows.weights
    with threads.limit(1):
        R = weighted_r_factor(X, target, sw, columns)
    pos = np.ones(len(rows.y), dtype=bool) if w is None else w != 0
    return QRPart(
        R=R, n=len(rows.y), nobs=int(pos.sum()), n_dropped=rows.n_dropped,
        sum_log_w=0.0 if w is None else float(np.sum(np.log(w[pos]))),
        w_min=np.inf if w is None or not len(w) else float(w.min()),
        w_max=-np.inf if w is None or not len(w) else float(w.max()),
        colsum=X0.sum(axis=0), wcolsum=X0.sum(axis=0) if w is None else w @ X0,
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
        wcolsum=np.sum([q.wcolsum for q in parts], axis=0), offset_sum=float(sum(q.offset_sum for q in parts)),
        sample=None if any(q.sample is None for q in parts) else stack_rows([q.sample for q in parts]))  # type: ignore[misc]


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


def pearson_residuals(rows: PartitionRows, est: Estimate) -> np.ndarray:
    """The pearson residuals sqrt(w) e of rows at the estimate (the values of the summary's quantiles).

    Parameters
    ----------
    rows : PartitionRows
    est : Estimate

    Returns
    -------
    numpy.ndarray
    """
    return _pearson(rows, partition_fit(rows, est)[2])


@by_pieces(lambda parts: combine_residuals(parts))
def residual_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate,
                       windows: tuple[tuple[int, int, float], ...] = ()) -> ResidualPart:
    """The residual pass of one partition: the sums of squares at the estimate and HC0's meat.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate
    windows : tuple of (lo, hi, share), optional
        Guessed key windows of the pearson residuals' quantiles (torchlm.sources.dask_windows).

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
        r_min=float(r.min()) if len(r) else np.inf, r_max=float(r.max()) if len(r) else -np.inf, meat=meat,
        sketches=(sketch_of(r),), windows=window_answers(r, windows))


def combine_residuals(parts: list[ResidualPart]) -> ResidualPart:
    """The residual sums of partitions (or of a partition's pieces) as one.

    Parameters
    ----------
    parts : list of ResidualPart

    Returns
    -------
    ResidualPart
    """
    return ResidualPart(
        rss=float(sum(r.rss for r in parts)), mss=float(sum(r.mss for r in parts)),
        ss_fitted=float(sum(r.ss_fitted for r in parts)), r_min=min(r.r_min for r in parts),
        r_max=max(r.r_max for r in parts), meat=np.sum([r.meat for r in parts], axis=0),
        sketches=tuple(s for r in parts for s in r.sketches), windows=combine_windows([r.windows for r in parts]))


@by_pieces(combine_range_answers)
def residual_counts(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate,
                    ranges: tuple[tuple[int, int, int], ...]) -> list[RangeAnswer]:
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
    list of RangeAnswer
        Per range (see dask_selection.range_counts): the count below it, and counts per bin or the sorted keys.
    """
    return range_counts(pearson_residuals(partition_rows(part, number, plan), est), ranges)


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
