"""tl.glm on a Dask DataFrame: R's glm.fit with one pass over the partitions per IRLS iteration.

``learn_plan -> [irls_reduction per partition -> combine -> qr_solve (R's rank detection)] per iteration ->
final_reduction -> DaskGeneralizedLinearModelResult``. Each pass at the current coefficients gives the deviance
there (R's convergence test and step halving, by the Newton driver the in-memory IRLS uses) and the R factor of
the working least squares at that point (the next step), so an iteration costs one pass, a halving one more.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from torchlm.errors import DataError, FitError, ModelInputError, TorchlmError, TorchlmWarning, silenced, warn
from torchlm.frame.dask_frame import learn_plan, map_partitions_computed, not_supported
from torchlm.models.dask_fit import _check_options
from torchlm.models.families import Family, as_family
from torchlm.results.dask_glm import DaskGeneralizedLinearModelResult, DaskIRLSFit
from torchlm.solvers.irls import _halving_warnings, control_settings
from torchlm.solvers.least_squares import QRFit, linear_chunks, qr_solve
from torchlm.solvers.newton import Evaluation, Reason, RelativeChange, RHalving, State, Step, solve
from torchlm.sources.dask_irls import (
    FinalPart,
    FinalSpec,
    IRLSPart,
    PersistedRows,
    Point,
    combine_irls,
    final_reduction,
    irls_reduction,
)
from torchlm.sources.dask_source import combine_qr


class _Passes:
    """The IRLS passes of one GLM over the partitions (the model's columns, or a subset: the null model)."""

    def __init__(self, ddf: Any, plan: Any, family: Family, tol: float, columns: tuple[int, ...] | None,
                 names: list[str]) -> None:
        self.ddf, self.plan, self.family, self.tol = ddf, plan, family, tol
        self.columns, self.names = columns, names
        self.warned = False

    def at(self, point: Point) -> IRLSPart:
        """One pass at a point (R's glm.fit errors raised where the whole point is valid)."""
        parts = map_partitions_computed(self.ddf, irls_reduction, self.plan, self.family, point, self.columns)
        total = combine_irls(parts, combine_qr)
        if not self.warned:  # the family's initialize warns once, as in memory (every pass repeats it)
            self.warned = True
            for message in total.warnings:
                warn(message, stacklevel=6)
        if total.valid and math.isfinite(total.deviance):
            if total.error is not None:
                raise DataError(total.error)
            if total.n_good == 0:
                raise DataError("no observations informative at iteration (all weights or d mu / d eta are zero)")
        return total

    def solve_step(self, P: IRLSPart) -> QRFit:
        """The working least squares at a pass's point: one QR of the stacked partition factors (R's dqrdc2)."""
        p = len(self.names)
        R = P.qr.R
        chunks = linear_chunks(np.asfortranarray(R[:, :p]), R[:, p].copy())
        fit = qr_solve(chunks, p, self.tol, torch.device("cpu"), torch.float64, accurate=False, names=self.names)
        if fit.rank > P.qr.n:
            raise DataError(f"X matrix has rank {fit.rank}, but only {P.qr.n} observations")
        return fit

    def point(self, coef: torch.Tensor) -> Point:
        """The Point of coefficients (aliased ones 0) of the passes' columns."""
        return Point(coef.cpu().double().numpy().copy(), self.columns)


class _Problem:
    """R's IRLS as a Problem of the Newton driver: the deviance at coefficients (one pass), the step a QR solve."""

    def __init__(self, passes: _Passes) -> None:
        self.passes = passes
        self.origin: tuple[Point, QRFit] | None = None  # the last step's point and its least squares

    def evaluate(self, coef: torch.Tensor) -> Evaluation:
        """The deviance at ``coef`` and the working least squares there (one pass)."""
        point = self.passes.point(coef)
        try:
            P = self.passes.at(point)
        except TorchlmError:
            raise
        except Exception as e:  # the scheduler's (a lost connection): not an invalid point to halve away from
            raise FitError(f"a pass over the Dask partitions failed: {type(e).__name__}: {e}") from e
        return Evaluation(P.deviance, valid=P.valid, aux=(point, P))

    def propose(self, state: State) -> Step | None:
        """The next IRLS coefficients from the working least squares at the current point (None if not finite)."""
        point, P = state.aux
        qr = self.passes.solve_step(P)
        self.origin = (point, qr)
        new = torch.as_tensor(np.nan_to_num(qr.coef), dtype=torch.float64)
        est = qr.pivot[: qr.rank]
        if not bool(torch.isfinite(new[est]).all()):
            warn(f"non-finite coefficients at iteration {state.iteration + 1}", stacklevel=5)
            return None
        return Step(direction=new - state.x, newton=False, point=new)


def dask_irls(passes: _Passes, start: torch.Tensor | None, start_point: Point, control: dict) -> DaskIRLSFit:
    """R's glm.fit over the partitions: the in-memory IRLS's iterations, halvings, warnings and errors.

    Parameters
    ----------
    passes : _Passes
    start : starting coefficients, or None (then ``start_point``: R's mustart).
    start_point : Point
        Where the first iteration starts.
    control : dict
        glm.control settings.

    Returns
    -------
    DaskIRLSFit
    """
    family, p = passes.family, len(passes.names)
    point0 = passes.point(start) if start is not None else start_point
    P0 = passes.at(point0)
    if not P0.valid:
        raise DataError("cannot find valid starting values: please specify some (start= coefficients whose "
                        f"linear predictor is inside the range of the {family.link.name} link and the family)")
    maxit = int(control["maxit"])
    problem = _Problem(passes)
    x0 = start.clone() if start is not None else torch.zeros(p, dtype=torch.float64)
    res = solve(problem, x0, control=RHalving(maxit), test=RelativeChange(control["epsilon"]), maxit=maxit,
                initial=Evaluation(P0.deviance, aux=(point0, P0)), anchored=start is not None,
                callback=_halving_warnings)
    if res.reason == Reason.NO_POINT:
        if not res.state.anchored:
            raise DataError("no valid set of coefficients has been found: please supply starting values")
        rejected = res.state.trial.rejected if res.state.trial else ()
        raise DataError("inner loop 2; cannot correct step size" if rejected and rejected[-1] == "invalid"
                        else "inner loop 1; cannot correct step size")
    point, P = res.state.aux
    if problem.origin is None:
        raise DataError("IRLS took no step")  # internal: solve always proposes once before it stops
    origin, qr = problem.origin
    conv, boundary = res.converged, res.shortened > 0
    if not conv:
        warn("glm.fit: algorithm did not converge", stacklevel=5)
    if boundary:
        warn("glm.fit: algorithm stopped at boundary value", stacklevel=5)
    if family.boundary_message and P.at_boundary:
        warn(family.boundary_message, stacklevel=5)
    coef = np.full(p, np.nan)
    est = qr.pivot[: qr.rank]
    coef[est] = res.x.cpu().double().numpy()[est]
    return DaskIRLSFit(coef=coef, qr=qr, final=point, origin=origin, deviance=P.deviance, iterations=res.iterations,
                       converged=conv, boundary=boundary, first=P0)


def _check_glm(family: Family, information: str, control: dict) -> None:
    if information != "expected":
        raise not_supported("information='observed' (the autograd Hessian reads every row)")
    if control["exact"]:
        raise not_supported("exact=True (the polishing Newton steps)")
    if family.aic_dispersion == "unknown" or type(family).__module__ != "torchlm.models.families":
        raise not_supported(f"the family {family.name!r} (R's families are: gaussian, binomial, poisson, Gamma, "
                            "inverse.gaussian and the quasi families)")


def glm_dask(formula: str, data: Any, *, family: Any = "gaussian", weights: Any = None, offset: Any = None,
             subset: Any = None, na_action: str = "omit", start: Any = None, control: dict | None = None,
             information: str = "expected", exact: bool = False, contrasts: dict | None = None,
             names: str = "formulaic", device: Any = None, dtype: Any = None, call: str = "",
             check_start: Callable[[Any, list[str]], np.ndarray] | None = None,
             persist: bool = False) -> DaskGeneralizedLinearModelResult:
    """tl.glm for a dask DataFrame: R's glm.fit with one pass over the partitions per iteration.

    Parameters
    ----------
    formula, data, family, weights, offset, subset, na_action, start, control, information, exact, contrasts,
    names, device, dtype : as in tl.glm; weights, offset and subset are column names or expressions (strings).
    call : str
        The call as the summary prints it.
    check_start : callable, optional
        glm's check of ``start=`` (tl.glm passes its own), given the coefficients' names.
    persist : bool
        Build each partition's design once and keep it in the workers for the passes (memory: the design's
        rows; each pass then skips the formula's materialization).

    Returns
    -------
    DaskGeneralizedLinearModelResult

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt", ddf, family="binomial")
    >>> fit.coef().round(4)
    Intercept    12.0404
    wt           -4.0240
    Name: Estimate, dtype: float64
    """
    fam = as_family(family)
    if information not in ("expected", "observed"):
        raise ModelInputError(f"information must be 'expected' or 'observed', not {information!r}")
    ctl = control_settings(control, exact=exact)
    _check_glm(fam, information, ctl)
    na_action = _check_options(na_action, device, dtype)
    try:
        plan, prototype = learn_plan(formula, data, weights=weights, offset=offset, subset=subset,
                                     na_action=na_action, contrasts=contrasts, names=names)
    except DataError as e:
        if "a factor response is only for tl.glm" not in str(e):
            raise
        # the plan is learnt by lm's design, which refuses a factor response
        raise not_supported("a factor response (give the response as a 0/1 or logical column)") from None
    tol = min(1e-7, ctl["epsilon"] / 1000)
    b0 = None
    if start is not None:
        values = check_start(start, list(prototype.names)) if check_start else np.asarray(start, dtype=np.float64)
        b0 = torch.as_tensor(values, dtype=torch.float64)
    if not len(prototype.names):
        raise not_supported("a model without coefficients (y ~ 0)")
    source = PersistedRows(data, plan, fam) if persist else data
    passes = _Passes(source, plan, fam, tol, None, list(prototype.names))
    fit = dask_irls(passes, b0, Point(None), ctl)
    total = fit.first.qr
    if weights is not None and not total.nobs:
        raise DataError(f"0 observations with a non-zero weight (of {total.n} rows): nothing to fit")
    final = _final_pass(passes, fit, prototype, ctl)
    return DaskGeneralizedLinearModelResult(data, plan, prototype, fam, fit, final, ctl, tol=tol, call=call,
                                            source=source)


def _final_pass(passes: _Passes, fit: DaskIRLSFit, prototype: Any, control: dict) -> tuple[FinalSpec, FinalPart]:
    """The final pass's sums; the null deviance by its own IRLS where R refits (intercept and offset)."""
    first = fit.first
    has_offset = passes.plan.offset is not None or bool(passes.plan.offset_terms)
    null_mu = first.sum_wy / first.sum_w if prototype.has_intercept and not has_offset else None
    spec = FinalSpec(final=fit.final, origin=fit.origin, deviance=fit.deviance, n=first.qr.n, sum_w=first.sum_w,
                     null_mu=null_mu)
    parts = map_partitions_computed(passes.ddf, final_reduction, passes.plan, passes.family, spec)
    terms = sum(q.aic_terms for q in parts)
    total = FinalPart(pearson=float(sum(q.pearson for q in parts)),
                      aic=float(sum(q.aic for q in parts)) - 2 * max(terms - 1, 0),
                      aic_terms=terms, null_deviance=float(sum(q.null_deviance for q in parts)),
                      dev_min=min(q.dev_min for q in parts), dev_max=max(q.dev_max for q in parts),
                      warnings=tuple(dict.fromkeys(m for q in parts for m in q.warnings)))
    for message in total.warnings:
        warnings.warn(message, TorchlmWarning, stacklevel=5)
    if prototype.has_intercept and has_offset:
        j = prototype.assign.index("1")  # the intercept's column, whatever names= calls it
        null = _Passes(passes.ddf, passes.plan, passes.family, passes.tol, (j,), [passes.names[j]])
        with silenced():  # the null model's glm.fit warnings are not the fit's
            null_fit = dask_irls(null, None, Point(fit.final.beta, None, through_mu=True), control)
        total.null_deviance = null_fit.deviance
    return spec, total


