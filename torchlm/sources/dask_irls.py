"""A GLM's passes over a Dask DataFrame: each partition's IRLS reduction at a point, computed in its worker.

One task per partition and pass (a pure function of the partition: dask may recompute it after losing a
worker). At a point (coefficients, or R's starting means) a partition builds its rows of the design with the
plan, applies the family's initialize to its response, and returns the deviance there, whether eta and mu are
valid, and the R factor of [sqrt(W) X | sqrt(W) z] for the working weights and response at that point
(:func:`irls_reduction`), so that one pass per IRLS iteration gives the client both R's convergence test and
the next step. The final pass (:func:`final_reduction`) returns the sums behind the dispersion, the AIC and
the null deviance; further passes the robust covariances' meats (:func:`glm_meat_reduction`) and the deviance
residuals' order statistics (:func:`deviance_counts`). The per-row GLM arithmetic is the in-memory fit's
(:class:`torchlm.solvers.irls.GLMPasses` and the family's functions), one partition at a time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.errors import _WARNINGS_LOCK, DataError
from torchlm.frame.dask_frame import DaskPlan, PartitionRows, in_partition, partition_rows
from torchlm.inference.dask_sandwich import MeatSpec, _hc_factor
from torchlm.models.families import Family
from torchlm.solvers.irls import GLMPasses
from torchlm.sources.dask_source import QRPart, qr_part, range_counts
from torchlm.sources.row_blocks import ArraySource


@dataclass(frozen=True)
class Point:
    """Where a pass evaluates the GLM.

    beta : coefficients of ``columns`` (aliased ones 0), or None for R's start: eta = linkfun(mustart) with the
    family's initialize. columns : the design columns beta multiplies (None: all). through_mu : eta =
    linkfun(linkinv(X beta + offset)), the means of a fit taken as another fit's mustart (the null model's).
    """

    beta: np.ndarray | None
    columns: tuple[int, ...] | None = None
    through_mu: bool = False


@dataclass
class IRLSPart:
    """One partition's share of a pass (or, combined, the data's).

    qr : the R factor of [sqrt(W) X | sqrt(W) z] at the point, with the prior weights' sums (QRPart);
    deviance : sum of the deviance residuals; valid : eta and mu inside the link's and family's ranges;
    error : the message of R's glm.fit error the working weights raised there (raised only at a valid point);
    n_good : rows in the working least squares; sum_wy, sum_w : prior-weighted sums of y (after initialize) and
    the weights; at_boundary : means at the family's boundary; warnings : what the family warned.
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
    X = torch.from_numpy(np.ascontiguousarray(rows.X))
    y = torch.from_numpy(rows.y)
    w = torch.ones(n, dtype=torch.float64) if rows.weights is None else torch.from_numpy(rows.weights)
    off = torch.zeros(n, dtype=torch.float64) if rows.offset is None else torch.from_numpy(rows.offset)
    with in_partition(number), _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the lock: catch_warnings is process-global, the scheduler's threads are not
        y, _, mustart = family.initialize(y, w)
    source = ArraySource(rows.X, y.numpy(), weights=rows.weights, offset=rows.offset, names=list(plan.names))
    passes = GLMPasses(source, y, w, off, family)
    return GLMRows(rows, X, y, w, off, mustart, passes, tuple(str(c.message) for c in caught))


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
        eta = X @ torch.from_numpy(np.asarray(point.beta, dtype=np.float64)) + g.off
        if point.through_mu:
            eta = link.linkfun(link.linkinv(eta))
    return eta, link.linkinv(eta)


def irls_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, family: Family, point: Point,
                   columns: tuple[int, ...] | None) -> IRLSPart:
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

    Returns
    -------
    IRLSPart
    """
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        eta, mu = eta_mu(g, point, family)
        dev = float(family.dev_resids(g.y, mu, g.w).sum())
        valid = bool(family.link.valideta(eta) and family.validmu(mu))
        X = g.X if columns is None else g.X[:, list(columns)]
        sw = torch.zeros_like(eta)
        z = torch.zeros_like(eta)
        error = None
        if valid and math.isfinite(dev):
            try:
                with in_partition(number):
                    # not slice(None): "no informative rows" is the whole data's test, not the partition's
                    sw, rw = g.passes.working(eta, mu, slice(0, None))
                z = (eta - g.off) + rw
            except DataError as e:  # R's error only if the whole point turns out valid (as GLMPasses.at)
                error = str(e)
                sw = torch.zeros_like(eta)
        A = torch.column_stack([X * sw[:, None], z * sw]).numpy()
        wy = g.w * g.y
        return IRLSPart(qr=qr_part(g.rows, A), deviance=dev if math.isfinite(dev) else math.inf, valid=valid,
                        error=error, n_good=int((sw != 0).sum()), sum_wy=float(wy.sum()), sum_w=float(g.w.sum()),
                        at_boundary=bool(len(mu)) and valid and family.at_boundary(mu), warnings=g.warnings)


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
        warnings=tuple(dict.fromkeys(m for p in parts for m in p.warnings)))


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
    deviance residuals' range; ``aic_terms`` counts the partitions whose aic carries the family's constant."""

    pearson: float
    aic: float
    aic_terms: int
    null_deviance: float
    dev_min: float
    dev_max: float
    warnings: tuple[str, ...] = ()


def working_at(g: GLMRows, spec: FinalSpec, family: Family) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R's working weights at the origin (0 off the good rows), the working residuals and the means at the estimate.

    Parameters
    ----------
    g : GLMRows
    spec : FinalSpec
    family : Family

    Returns
    -------
    (W, working residuals, mu) torch tensors
    """
    link = family.link
    eta, mu = eta_mu(g, spec.final, family)
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
        g = rows_of(part, number, plan, family)
        W, wres, mu = working_at(g, spec, family)
        positive = g.w > 0
        pearson = float((W * wres**2)[positive].sum())
        with in_partition(number), _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            aic, terms = _aic_share(family, g, mu, spec) if family.has_likelihood else (math.nan, 0)
        if spec.null_mu is not None:
            null = family.dev_resids(g.y, torch.full_like(g.y, spec.null_mu), g.w)
        else:
            null = family.dev_resids(g.y, family.link.linkinv(g.off), g.w)
        r = deviance_residuals(g, mu, family)
        return FinalPart(pearson=pearson, aic=aic, aic_terms=terms, null_deviance=float(null.sum()),
                         dev_min=float(r.min()) if len(r) else math.inf,
                         dev_max=float(r.max()) if len(r) else -math.inf,
                         warnings=g.warnings + tuple(str(c.message) for c in caught))


def deviance_residuals(g: GLMRows, mu: torch.Tensor, family: Family) -> torch.Tensor:
    """R's deviance residuals sign(y - mu) sqrt(d_i), as the in-memory result computes them.

    Parameters
    ----------
    g : GLMRows
    mu : torch.Tensor
    family : Family

    Returns
    -------
    torch.Tensor
    """
    d = torch.clamp(family.dev_resids(g.y, mu, g.w), min=0)
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


def deviance_counts(part: pd.DataFrame, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec],
                    ranges: tuple[tuple[int, int, int], ...]) -> list[np.ndarray]:
    """The deviance residuals' counts in the ranges of an exact selection (see dask_source.order_statistics).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec)
    ranges : tuple of (lo, hi, width)

    Returns
    -------
    list of numpy.ndarray
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


def glm_meat_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec],
                       spec: MeatSpec) -> Any:
    """One partition's share of a GLM's sandwich meat: scores W x (y - mu) / mu'(eta) at the working weights.

    With ``spec.Rinv`` and no type other than HC0/HC1, only the leverages' sum, maximum and rows close to 1
    (the first of the two passes of HC2-HC5); with clusters, the score sums per cluster.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec)
    spec : MeatSpec

    Returns
    -------
    numpy.ndarray (k, k), per clustering term a pandas.DataFrame of score sums, or (sum, max, close rows)
    """
    family, final = est
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        W, wres, _ = working_at(g, final, family)
        S = _score_rows(g, W, wres, sorted(spec.pivot)).numpy()
        if spec.clusters:  # the cluster columns are the partition's (never passed persisted rows)
            return _cluster_sums(part, number, g.rows, S, spec)
        h = None
        if spec.Rinv is not None:
            Xw = g.X[:, list(spec.pivot)] * torch.sqrt(W)[:, None]
            h = (Xw @ torch.from_numpy(spec.Rinv)).square().sum(dim=1).numpy()
            h = np.where(h > 1 - 10 * np.finfo(float).eps, 1.0, h)
            if spec.type == "leverages":
                close = g.rows.index[h > 1 - math.sqrt(np.finfo(float).eps)].tolist()
                return float(h.sum()), float(h.max()) if len(h) else 0.0, close
        f = np.ones(len(S)) if h is None else _hc_factor(spec, h)
        St = torch.from_numpy(S)
        return (St.T @ (St * torch.from_numpy(f)[:, None])).numpy()


def _score_rows(g: GLMRows, W: torch.Tensor, wres: torch.Tensor, cols: list[int]) -> torch.Tensor:
    # rows off R's good set have W = 0 and a working residual that may be infinite: their scores are 0
    return g.X[:, cols] * torch.where(W > 0, W * wres, torch.zeros_like(W))[:, None]


def glm_scores(part: Any, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec, list[int]]) -> np.ndarray:
    """One partition's scores W x (y - mu) / mu'(eta) over the estimable columns ``est[2]``: HAC's rows.

    Parameters
    ----------
    part : pandas.DataFrame or GLMRows
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec, columns)

    Returns
    -------
    numpy.ndarray
        (rows used, k).
    """
    family, final, cols = est
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        W, wres, _ = working_at(g, final, family)
        return _score_rows(g, W, wres, cols).numpy()


def _cluster_sums(part: pd.DataFrame, number: int, rows: PartitionRows, S: np.ndarray, spec: MeatSpec) -> list:
    keys = []
    for c in spec.clusters:
        values = pd.Series(np.asarray(part[c])[rows.positions])
        if values.isna().any():
            raise DataError(f"partition {number} of the Dask DataFrame: cluster {c!r} has missing values at rows "
                            "the fit uses")
        keys.append(values)
    terms = [[k] for k in keys] + ([keys] if len(keys) == 2 else [])
    return [pd.DataFrame(S).groupby(t, sort=False).sum() for t in terms]


def leverage_spec_of(spec: MeatSpec) -> MeatSpec:
    """The spec of the leverage pass (sum, maximum, rows close to 1) from one with the fit's R^-1.

    Parameters
    ----------
    spec : MeatSpec

    Returns
    -------
    MeatSpec
    """
    return replace(spec, type="leverages")
