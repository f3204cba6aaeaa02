"""A GLM's passes over a Dask DataFrame: each partition's IRLS reduction at a point, computed in its worker.

One task per partition and pass (a pure function of the partition: dask may recompute it after losing a
worker). At a point (coefficients, or R's starting means) a partition builds its rows of the design with the
plan, applies the family's initialize to its response, and returns the deviance there, whether eta and mu are
valid, and the R factor of [sqrt(W) X | sqrt(W) z] for the working weights and response at that point
(:func:`irls_reduction`), so that one pass per IRLS iteration gives the client both R's convergence test and
the next step. The final sums (:func:`final_sums`: the dispersion, the AIC, the null deviance and a sketch of
the deviance residuals) come from the pass that converges, or from a final pass (:func:`final_reduction`);
further passes give the deviance residuals' order statistics (:func:`deviance_counts`) and the robust
covariances' meats (torchlm.inference.dask_glm_meat). The per-row GLM arithmetic is the in-memory fit's
(:class:`torchlm.solvers.irls.GLMPasses` and the family's functions), one partition at a time.
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
from torchlm.errors import _WARNINGS_LOCK, DataError, TorchlmWarning
from torchlm.frame.dask_compute import by_pieces
from torchlm.frame.dask_frame import DaskPlan, PartitionRows, in_partition, partition_rows
from torchlm.models.families import Family
from torchlm.solvers.irls import GLMPasses
from torchlm.sources.dask_selection import RangeAnswer, Sketch, combine_range_answers, range_counts, sketch_of
from torchlm.sources.dask_source import QRPart, combine_qr, qr_part
from torchlm.sources.row_blocks import ArraySource


@dataclass(frozen=True)
class Point:
    """Where a pass evaluates the GLM.

    beta : coefficients of ``columns`` (aliased ones 0), or None for R's start: eta = linkfun(mustart) with the
    family's initialize. columns : the design columns beta multiplies (None: all). through_mu : eta =
    linkfun(linkinv(X beta + offset)), the means of a fit taken as another fit's mustart (the null model's).
    fixed : ((column, value), ...) coefficients held fixed, in the linear predictor as an offset (a profile's).
    """

    beta: np.ndarray | None
    columns: tuple[int, ...] | None = None
    through_mu: bool = False
    fixed: tuple[tuple[int, float], ...] = ()


@dataclass
class IRLSPart:
    """One partition's share of a pass (or, combined, the data's).

    qr : the R factor of [sqrt(W) X | sqrt(W) z] at the point, with the prior weights' sums (QRPart);
    deviance : sum of the deviance residuals; valid : eta and mu inside the link's and family's ranges;
    error : the message of R's glm.fit error the working weights raised there (raised only at a valid point);
    n_good : rows in the working least squares; sum_wy, sum_w : prior-weighted sums of y (after initialize) and
    the weights; at_boundary : means at the family's boundary; warnings : what the family warned; final : the
    final pass's sums at the point (asked for with ``final_spec`` where the pass may be IRLS's last).
    """

    qr: QRPart
    deviance: float
    valid: bool
    error: str | None
    n_good: int
    sum_wy: float
    sum_w: float
    at_boundary: bool
    warnings: tuple[str, ...] = ()
    final: FinalPart | None = None
    final_spec: FinalSpec | None = None


@dataclass
class GLMRows:
    """One partition's rows as the GLM sees them: torch vectors after the family's initialize."""

    rows: PartitionRows
    X: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    off: torch.Tensor
    mustart: torch.Tensor
    passes: GLMPasses
    warnings: tuple[str, ...]


def glm_rows(part: pd.DataFrame, number: int, plan: DaskPlan, family: Family) -> GLMRows:
    """A partition's rows of the model, its response checked and initialized by the family (R's initialize).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
        The partition's position (errors name it).
    plan : DaskPlan
    family : Family

    Returns
    -------
    GLMRows
    """
    rows = partition_rows(part, number, plan)
    n = len(rows.y)
    X = torch.from_numpy(rows.X)  # formulaic's columns: Fortran order, read in row blocks as they are
    y = torch.from_numpy(rows.y)
    w = torch.ones(n, dtype=torch.float64) if rows.weights is None else torch.from_numpy(rows.weights)
    off = torch.zeros(n, dtype=torch.float64) if rows.offset is None else torch.from_numpy(rows.offset)
    with in_partition(number), _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the lock: catch_warnings is process-global, the scheduler's threads are not
        y, _, mustart = family.initialize(y, w)
    source = ArraySource(rows.X, y.numpy(), weights=rows.weights, offset=rows.offset, names=list(plan.names))
    passes = GLMPasses(source, y, w, off, family)
    return GLMRows(rows, X, y, w, off, mustart, passes, _ours(caught))


def _ours(caught: list) -> tuple[str, ...]:
    """The recorded warnings that the family's code gave (R's): the record is process-global, so that another
    thread's library warnings (pandas deprecations inside dask's parquet reader) are in it too."""
    return tuple(str(c.message) for c in caught if issubclass(c.category, TorchlmWarning))


def rows_of(part: Any, number: int, plan: DaskPlan, family: Family) -> GLMRows:
    """A partition's GLMRows: built from the raw partition, or those persisted in the workers (``persist=True``).

    Parameters
    ----------
    part : pandas.DataFrame or GLMRows
    number : int
    plan : DaskPlan
    family : Family

    Returns
    -------
    GLMRows
    """
    return part if isinstance(part, GLMRows) else glm_rows(part, number, plan, family)


class PersistedRows:
    """Each partition's GLMRows built once and kept where the scheduler keeps results (tl.glm's ``persist=True``).

    ``to_delayed()`` gives them in partition order, as a DataFrame gives its partitions, so that
    map_partitions_computed runs the reductions on them unchanged (each pass then skips the design's
    materialization; memory: the design's rows, n (p + 6) float64s). Lost ones are rebuilt from their partitions.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    plan : DaskPlan
    family : Family
    """

    def __init__(self, ddf: Any, plan: DaskPlan, family: Family) -> None:
        import dask

        shared = dask.delayed(plan, pure=True), dask.delayed(family, pure=True)
        tasks = [dask.delayed(glm_rows, pure=True)(part, k, *shared) for k, part in enumerate(ddf.to_delayed())]
        self._rows = dask.persist(*tasks)
        self.npartitions = ddf.npartitions
        self.columns = ddf.columns

    def to_delayed(self) -> list:
        """The persisted GLMRows, one per partition, in order.

        Returns
        -------
        list of dask.delayed.Delayed
        """
        return list(self._rows)


def eta_mu(g: GLMRows, point: Point, family: Family) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear predictor (offset included) and the means at a point, as the in-memory IRLS computes them.

    Parameters
    ----------
    g : GLMRows
    point : Point
    family : Family

    Returns
    -------
    (eta, mu) torch tensors
    """
    link = family.link
    if point.beta is None:
        eta = link.linkfun(g.mustart)
    else:
        X = g.X if point.columns is None else g.X[:, list(point.columns)]
        eta = X @ torch.from_numpy(np.asarray(point.beta, dtype=np.float64)) + fixed_offset(g, point.fixed)
        if point.through_mu:
            eta = link.linkfun(link.linkinv(eta))
    return eta, link.linkinv(eta)


def fixed_offset(g: GLMRows, fixed: tuple[tuple[int, float], ...]) -> torch.Tensor:
    """The offset with the fixed coefficients' columns in it (R's glm.fit offset of a profile's refit).

    Parameters
    ----------
    g : GLMRows
    fixed : ((column, value), ...)

    Returns
    -------
    torch.Tensor
    """
    if not fixed:
        return g.off
    cols = [j for j, _ in fixed]
    return g.off + g.X[:, cols] @ torch.tensor([v for _, v in fixed], dtype=torch.float64)


@by_pieces(lambda parts: combine_irls(parts, combine_qr))
def irls_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, family: Family, point: Point,
                   columns: tuple[int, ...] | None, final: FinalSpec | None = None,
                   fixed: tuple[tuple[int, float], ...] = ()) -> IRLSPart:
    """One partition's IRLS pass at a point: deviance, validity and the factor of its working least squares.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    family : Family
    point : Point
        Where eta and mu are taken.
    columns : tuple of int or None
        The design columns of the working least squares (None: all).
    final : FinalSpec, optional
        Also the final pass's sums (:func:`final_sums`), at ``final.final`` (the point): the pass that finds
        IRLS converged then serves as the final pass.
    fixed : ((column, value), ...)
        The refit's coefficients held fixed: its working response leaves them out, as the offset (a profile's).

    Returns
    -------
    IRLSPart
    """
    with threads.limit(1):
        return irls_at(rows_of(part, number, plan, family), number, family, point, columns, final, fixed)


def irls_at(g: GLMRows, number: int, family: Family, point: Point, columns: tuple[int, ...] | None,
            final: FinalSpec | None = None, fixed: tuple[tuple[int, float], ...] = ()) -> IRLSPart:
    """A partition's IRLS pass at a point from its rows (:func:`irls_reduction` after building them).

    Parameters
    ----------
    g : GLMRows
    number, family, point, columns, final, fixed : as :func:`irls_reduction`'s.

    Returns
    -------
    IRLSPart
    """
    eta, mu = eta_mu(g, point, family)
    d = family.dev_resids(g.y, mu, g.w)
    dev = float(d.sum())
    valid = bool(family.link.valideta(eta) and family.validmu(mu))
    sw = torch.zeros_like(eta)
    z = torch.zeros_like(eta)
    error = None
    if valid and math.isfinite(dev):
        try:
            with in_partition(number):
                # not slice(None): "no informative rows" is the whole data's test, not the partition's
                sw, rw = g.passes.working(eta, mu, slice(0, None))
            z = (eta - fixed_offset(g, fixed)) + rw
        except DataError as e:  # R's error only if the whole point turns out valid (as GLMPasses.at)
            error = str(e)
            sw = torch.zeros_like(eta)
    wy = g.w * g.y
    qr = qr_part(g.rows, g.X, z, sw, None if columns is None else list(columns))
    sums = None
    if final is not None and valid and math.isfinite(dev):
        sums = final_sums(g, number, family, final, (eta, mu, d))
    return IRLSPart(qr=qr, deviance=dev if math.isfinite(dev) else math.inf, valid=valid,
                    error=error, n_good=int((sw != 0).sum()), sum_wy=float(wy.sum()), sum_w=float(g.w.sum()),
                    at_boundary=bool(len(mu)) and valid and family.at_boundary(mu), warnings=g.warnings,
                    final=sums, final_spec=final)


def combine_irls(parts: list[IRLSPart], combine: Any) -> IRLSPart:
    """The partitions' shares of a pass as the data's (factors stacked in partition order, sums added).

    Parameters
    ----------
    parts : list of IRLSPart
    combine : callable
        combine_qr (the QRParts' combination).

    Returns
    -------
    IRLSPart
        Its error is the first partition's, named by it.
    """
    return IRLSPart(
        qr=combine([p.qr for p in parts]), deviance=float(sum(p.deviance for p in parts)),
        valid=all(p.valid for p in parts), error=next((p.error for p in parts if p.error), None),
        n_good=sum(p.n_good for p in parts), sum_wy=float(sum(p.sum_wy for p in parts)),
        sum_w=float(sum(p.sum_w for p in parts)), at_boundary=any(p.at_boundary for p in parts),
        warnings=tuple(dict.fromkeys(m for p in parts for m in p.warnings)),
        final=None if any(p.final is None for p in parts) else combine_final([p.final for p in parts if p.final]),
        final_spec=parts[0].final_spec if parts else None)


@dataclass(frozen=True)
class FinalSpec:
    """What the final pass needs: the estimate, the point of the last working weights, and global constants.

    final, origin : Points (the estimate; the start of R's last iteration, whose working weights the QR has);
    deviance : the fit's; n, sum_w : rows used and the prior weights' sum (the aic's denominators);
    null_mu : the weighted mean of y (the null deviance without offset), None when the null model is
    eta = offset (no intercept) or needs its own fit (intercept and offset).
    """

    final: Point
    origin: Point
    deviance: float
    n: int
    sum_w: float
    null_mu: float | None


@dataclass
class FinalPart:
    """One partition's final sums: Pearson's (for the dispersion), its share of the aic, the null deviance, the
    deviance residuals' range and sketch (one per partition once combined); ``aic_terms`` counts the partitions
    whose aic carries the family's constant."""

    pearson: float
    aic: float
    aic_terms: int
    null_deviance: float
    dev_min: float
    dev_max: float
    warnings: tuple[str, ...] = ()
    sketches: tuple[Sketch, ...] = ()


def working_at(g: GLMRows, spec: FinalSpec, family: Family,
               at: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R's working weights at the origin (0 off the good rows), the working residuals and the means at the estimate.

    Parameters
    ----------
    g : GLMRows
    spec : FinalSpec
    family : Family
    at : (eta, mu), optional
        Their values at the estimate, when the caller has them.

    Returns
    -------
    (W, working residuals, mu) torch tensors
    """
    link = family.link
    eta, mu = eta_mu(g, spec.final, family) if at is None else at
    eta_o, mu_o = eta_mu(g, spec.origin, family)
    me_o, var = link.mu_eta(eta_o), family.variance(mu_o)
    good = (g.w > 0) & (me_o != 0)
    W = torch.where(good, g.w * me_o**2 / torch.where(good, var, torch.ones_like(var)), torch.zeros_like(var))
    return W, (g.y - mu) / link.mu_eta(eta), mu


def _aic_share(family: Family, g: GLMRows, mu: torch.Tensor, spec: FinalSpec) -> tuple[float, int]:
    """The partition's share of family.aic: the family's own function on its rows, the deviance scaled so that
    the dispersion it derives (deviance over the rows or over the weights) is the whole data's."""
    if family.aic_dispersion is None:
        return family.aic(g.y, torch.ones_like(g.y), mu, g.w, spec.deviance), 0
    local, total = ((float(len(g.y)), float(spec.n)) if family.aic_dispersion == "rows"
                    else (float(g.w.sum()), spec.sum_w))
    if local == 0:
        return 0.0, 0  # no rows (or only zero weights): its terms are 0, but for the constant counted once
    return family.aic(g.y, torch.ones_like(g.y), mu, g.w, spec.deviance * local / total), 1


@by_pieces(lambda parts: combine_final(parts))
def final_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, family: Family, spec: FinalSpec) -> FinalPart:
    """One partition's final sums at the estimate (dispersion, AIC, null deviance, deviance residuals' range).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    family : Family
    spec : FinalSpec

    Returns
    -------
    FinalPart
    """
    with threads.limit(1):
        return final_sums(rows_of(part, number, plan, family), number, family, spec)


def final_sums(g: GLMRows, number: int, family: Family, spec: FinalSpec, at: tuple | None = None) -> FinalPart:
    """The final sums of a partition's GLMRows (see :func:`final_reduction`).

    Parameters
    ----------
    g : GLMRows
    number : int
        The partition's position (its warnings name it).
    family : Family
    spec : FinalSpec
    at : (eta, mu, deviance residuals' squares), optional
        Their values at the estimate, when an IRLS pass has them.

    Returns
    -------
    FinalPart
    """
    W, wres, mu = working_at(g, spec, family, None if at is None else at[:2])
    positive = g.w > 0
    pearson = float((W * wres**2)[positive].sum())
    with in_partition(number), _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aic, terms = _aic_share(family, g, mu, spec) if family.has_likelihood else (math.nan, 0)
    if spec.null_mu is not None:
        null = family.dev_resids(g.y, torch.full_like(g.y, spec.null_mu), g.w)
    else:
        null = family.dev_resids(g.y, family.link.linkinv(g.off), g.w)
    r = deviance_residuals(g, mu, family, None if at is None else at[2])
    return FinalPart(pearson=pearson, aic=aic, aic_terms=terms, null_deviance=float(null.sum()),
                     dev_min=float(r.min()) if len(r) else math.inf, dev_max=float(r.max()) if len(r) else -math.inf,
                     warnings=g.warnings + _ours(caught), sketches=(sketch_of(r.numpy()),))


def combine_final(parts: list[FinalPart]) -> FinalPart:
    """The partitions' final sums as the data's (the family's constant in the aic counted once).

    Parameters
    ----------
    parts : list of FinalPart

    Returns
    -------
    FinalPart
    """
    terms = sum(q.aic_terms for q in parts)
    # the constant is in the combined aic once: a partition's pieces combined count as one term of the data's
    return FinalPart(pearson=float(sum(q.pearson for q in parts)),
                     aic=float(sum(q.aic for q in parts)) - 2 * max(terms - 1, 0),
                     aic_terms=min(terms, 1), null_deviance=float(sum(q.null_deviance for q in parts)),
                     dev_min=min(q.dev_min for q in parts), dev_max=max(q.dev_max for q in parts),
                     warnings=tuple(dict.fromkeys(m for q in parts for m in q.warnings)),
                     sketches=tuple(s for q in parts for s in q.sketches))


def deviance_residuals(g: GLMRows, mu: torch.Tensor, family: Family, d: torch.Tensor | None = None) -> torch.Tensor:
    """R's deviance residuals sign(y - mu) sqrt(d_i), as the in-memory result computes them.

    Parameters
    ----------
    g : GLMRows
    mu : torch.Tensor
    family : Family
    d : torch.Tensor, optional
        family.dev_resids at mu, when the caller has them.

    Returns
    -------
    torch.Tensor
    """
    d = torch.clamp(family.dev_resids(g.y, mu, g.w) if d is None else d, min=0)
    return torch.sign(g.y - mu) * torch.sqrt(d)


def residual_values(g: GLMRows, spec: FinalSpec, family: Family, kind: str) -> torch.Tensor:
    """Per-row values at the estimate: "fitted", "link", or residuals "deviance", "pearson", "working", "response".

    Parameters
    ----------
    g : GLMRows
    spec : FinalSpec
    family : Family
    kind : str

    Returns
    -------
    torch.Tensor
    """
    eta, mu = eta_mu(g, spec.final, family)
    if kind == "fitted":
        return mu
    if kind == "link":
        return eta
    if kind == "deviance":
        return deviance_residuals(g, mu, family)
    if kind == "pearson":
        return (g.y - mu) * torch.sqrt(g.w) / torch.sqrt(family.variance(mu))
    if kind == "working":
        return (g.y - mu) / family.link.mu_eta(eta)
    return g.y - mu


@by_pieces(combine_range_answers)
def deviance_counts(part: pd.DataFrame, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec],
                    ranges: tuple[tuple[int, int, int], ...]) -> list[RangeAnswer]:
    """The deviance residuals' counts in the ranges of an exact selection (see dask_selection.order_statistics).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec)
    ranges : tuple of (lo, hi, width)

    Returns
    -------
    list of RangeAnswer
    """
    family, spec = est
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        r = deviance_residuals(g, eta_mu(g, spec.final, family)[1], family)
    return range_counts(r.numpy(), ranges)


def partition_series(part: pd.DataFrame, plan: DaskPlan, family: Family, spec: FinalSpec, kind: str,
                     partition_info: dict | None = None) -> pd.Series:
    """One partition's fitted values, linear predictors or residuals (see residual_values), at its rows used.

    Parameters
    ----------
    part : pandas.DataFrame
    plan : DaskPlan
    family : Family
    spec : FinalSpec
    kind : str
    partition_info : dict, optional
        dask's map_partitions information (the partition's number, for errors).

    Returns
    -------
    pandas.Series
    """
    number = -1 if partition_info is None else int(partition_info.get("number", -1))
    with threads.limit(1):
        g = glm_rows(part, number, plan, family)  # a lazy series reads the partition itself
        values = residual_values(g, spec, family, kind).numpy()
    name = {"fitted": "fitted", "link": "eta"}.get(kind, "residuals")
    return pd.Series(values, index=g.rows.index, name=name)
