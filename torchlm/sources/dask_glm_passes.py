"""R's glm.fit over a Dask DataFrame's partitions: one pass per IRLS iteration, on all or some design columns.

The IRLS driver of tl.glm's Dask fits and of their refits (sequential anova, drop1): each pass at the current
coefficients gives the deviance there (R's convergence test and step halving, by the Newton driver the in-memory
IRLS uses) and the R factor of the working least squares at that point (the next step), so that an iteration
costs one pass and a halving one more. Column subsets (``columns=``) are R's glm.fit(x[, cols], ...) on the
same rows: the null model's refit and anova.glm's and drop1's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from torchlm.errors import DataError, FitError, TorchlmError, warn
from torchlm.frame.dask_frame import map_partitions_computed
from torchlm.models.families import Family
from torchlm.solvers.irls import _halving_warnings
from torchlm.solvers.least_squares import QRFit, linear_chunks, qr_solve
from torchlm.solvers.newton import Evaluation, Reason, RelativeChange, RHalving, State, Step, solve
from torchlm.sources.dask_irls import IRLSPart, Point, combine_irls, irls_reduction
from torchlm.sources.dask_source import combine_qr


@dataclass
class DaskIRLSFit:
    """The end of IRLS over the partitions.

    coef : (p,) estimates, NaN where aliased; qr : the working least squares at ``origin`` (R's last iteration's
    start, whose working weights R's covariance uses); final : the estimate as a Point; deviance; iterations
    (R's count); converged, boundary; first : the first pass (its QRPart has the rows' counts and weights' sums);
    final_sums : the final pass's FinalPart when the converging pass computed it (see ``dask_irls``'s final_spec).
    """

    coef: np.ndarray
    qr: QRFit
    final: Point
    origin: Point
    deviance: float
    iterations: int
    converged: bool
    boundary: bool
    first: IRLSPart
    polish_steps: int = 0
    final_sums: Any = None


class IRLSPasses:
    """The IRLS passes of one GLM over the partitions (the model's columns, or a subset: the null model, refits).

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame or PersistedRows
        What the passes map over.
    plan : DaskPlan
    family : Family
    tol : float
        The QR's rank tolerance.
    columns : tuple of int or None
        The design columns (None: all).
    names : list of str
        Their names.
    fixed : ((column, value), ...)
        Coefficients held fixed (their columns in the offset): a profile's refits.
    """

    def __init__(self, ddf: Any, plan: Any, family: Family, tol: float, columns: tuple[int, ...] | None,
                 names: list[str], fixed: tuple[tuple[int, float], ...] = ()) -> None:
        self.ddf, self.plan, self.family, self.tol = ddf, plan, family, tol
        self.columns, self.names, self.fixed = columns, names, fixed
        self.warned = False

    def at(self, point: Point, final: Any = None) -> IRLSPart:
        """One pass at a point (R's glm.fit errors raised where the whole point is valid).

        Parameters
        ----------
        point : Point
        final : FinalSpec, optional
            Also the final pass's sums at the point (see irls_reduction).

        Returns
        -------
        IRLSPart
        """
        total = self.reduce(point, final)
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

    def reduce(self, point: Point, final: Any = None) -> IRLSPart:
        """The pass itself: every partition's IRLSPart at the point, combined (no checks).

        Parameters
        ----------
        point : Point
        final : FinalSpec, optional

        Returns
        -------
        IRLSPart
        """
        parts = map_partitions_computed(self.ddf, irls_reduction, self.plan, self.family, point, self.columns, final,
                                        self.fixed)
        return combine_irls(parts, combine_qr)

    def solve_step(self, P: IRLSPart) -> QRFit:
        """The working least squares at a pass's point: one QR of the stacked partition factors (R's dqrdc2).

        Returns
        -------
        QRFit
        """
        p = len(self.names)
        R = P.qr.R
        chunks = linear_chunks(np.asfortranarray(R[:, :p]), R[:, p].copy())
        fit = qr_solve(chunks, p, self.tol, torch.device("cpu"), torch.float64, accurate=False, names=self.names)
        if fit.rank > P.qr.n:
            raise DataError(f"X matrix has rank {fit.rank}, but only {P.qr.n} observations")
        return fit

    def point(self, coef: torch.Tensor) -> Point:
        """The Point of coefficients (aliased ones 0) of the passes' columns.

        Returns
        -------
        Point
        """
        return Point(coef.cpu().double().numpy().copy(), self.columns, fixed=self.fixed)


class IRLSProblem:
    """R's IRLS as a Problem of the Newton driver: the deviance at coefficients (one pass), the step a QR solve.

    Parameters
    ----------
    passes : IRLSPasses
    final_spec : callable, optional
        ``final_spec(final, origin)``: the FinalSpec of the final pass were IRLS to stop at ``final``; a pass
        after a relative change of the deviance below ``speculate_below`` computes those sums too, so that the
        pass that converges serves as the final pass (quadratic convergence: the next change is its square).
    speculate_below : float
    """

    def __init__(self, passes: IRLSPasses, final_spec: Any = None, speculate_below: float = 0.0) -> None:
        self.passes = passes
        self.origin: tuple[Point, QRFit] | None = None  # the last step's point and its least squares
        self.final_spec, self.speculate_below = final_spec, speculate_below
        self.deviances: list[float] = []

    def evaluate(self, coef: torch.Tensor) -> Evaluation:
        """The deviance at ``coef`` and the working least squares there (one pass).

        Returns
        -------
        Evaluation
        """
        point = self.passes.point(coef)
        final = None
        d = self.deviances
        if self.final_spec is not None and self.origin is not None and len(d) > 1 \
                and abs(d[-1] - d[-2]) / (abs(d[-1]) + 0.1) < self.speculate_below:
            final = self.final_spec(point, self.origin[0])
        try:
            P = self.passes.at(point, final)
        except TorchlmError:
            raise
        except Exception as e:  # the scheduler's (a lost connection): not an invalid point to halve away from
            raise FitError(f"a pass over the Dask partitions failed: {type(e).__name__}: {e}") from e
        if P.valid and math.isfinite(P.deviance):
            d.append(P.deviance)
        return Evaluation(P.deviance, valid=P.valid, aux=(point, P))

    def propose(self, state: State) -> Step | None:
        """The next IRLS coefficients from the working least squares at the current point (None if not finite).

        Returns
        -------
        Step or None
        """
        point, P = state.aux
        qr = self.passes.solve_step(P)
        self.origin = (point, qr)
        new = torch.as_tensor(np.nan_to_num(qr.coef), dtype=torch.float64)
        est = qr.pivot[: qr.rank]
        if not bool(torch.isfinite(new[est]).all()):
            warn(f"non-finite coefficients at iteration {state.iteration + 1}", stacklevel=5)
            return None
        return Step(direction=new - state.x, newton=False, point=new)


def dask_irls(passes: IRLSPasses, start: torch.Tensor | None, start_point: Point, control: dict,
              final_spec: Any = None) -> DaskIRLSFit:
    """R's glm.fit over the partitions: the in-memory IRLS's iterations, halvings, warnings and errors.

    Parameters
    ----------
    passes : IRLSPasses
    start : starting coefficients, or None (then ``start_point``: R's mustart).
    start_point : Point
        Where the first iteration starts.
    control : dict
        glm.control settings.
    final_spec : callable, optional
        ``final_spec(first, final, origin)`` (first: the first pass): the final pass's FinalSpec at a point, to
        compute its sums within the passes near convergence (see IRLSProblem).

    Returns
    -------
    DaskIRLSFit

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> from torchlm.sources.dask_glm_passes import IRLSPasses, dask_irls
    >>> from torchlm.sources.dask_irls import Point
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt + hp", ddf, family="binomial")
    ...     passes = IRLSPasses(ddf, fit._plan, fit.family, fit.tol, (0, 1), ["Intercept", "wt"])
    ...     round(dask_irls(passes, None, Point(None, (0, 1)), fit.control).deviance, 4)
    19.1761
    """
    family, p = passes.family, len(passes.names)
    point0 = passes.point(start) if start is not None else start_point
    P0 = passes.at(point0)
    if not P0.valid:
        raise DataError("cannot find valid starting values: please specify some (start= coefficients whose "
                        f"linear predictor is inside the range of the {family.link.name} link and the family)")
    maxit = int(control["maxit"])
    spec = None if final_spec is None else (lambda final, origin: final_spec(P0, final, origin))
    problem = IRLSProblem(passes, spec, speculate_below=10 * math.sqrt(control["epsilon"]))
    problem.deviances.append(P0.deviance)
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
    sums = P.final if P.final_spec is not None and P.final_spec.origin is origin else None
    return DaskIRLSFit(coef=coef, qr=qr, final=point, origin=origin, deviance=P.deviance, iterations=res.iterations,
                       converged=conv, boundary=boundary, first=P0, final_sums=sums)
