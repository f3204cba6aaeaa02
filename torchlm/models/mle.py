"""tl.mle(): maximum likelihood for a negative log-likelihood written in torch, by Newton's method on its
autograd Hessian (the shared driver of torchlm.solvers: backtracking line search; L-BFGS when Newton cannot make
progress), with parameters held fixed (R's stats4::mle(fixed=)) and bounds (projected Newton, models/mle_bounds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from torchlm.errors import ModelInputError
from torchlm.models.mle_bounds import BoxNewtonProblem, parse_bounds, warn_at_bounds
from torchlm.models.mle_newton import NewtonProblem, lbfgs, level_along_flat, warn_not_converged
from torchlm.models.mle_objective import (
    FreeObjective,
    Objective,
    check_not_mean,
    short_value,
    start_values,
    tensor_data,
)
from torchlm.results.curvature import Curvature, analyse_curvature, summed_hessian
from torchlm.results.estimates import Estimates, positive_number
from torchlm.results.likelihood import Likelihood
from torchlm.solvers import Backtracking, Divergence, FirstOf, FloatingPointFloor, Reason, Result, StepBelow, solve
from torchlm.solvers.autograd import func_jacobian

ARMIJO = 1e-4
MIN_STEP = 2.0**-40


def mle(nll: Callable, start: dict, data: pd.DataFrame | dict | tuple | list | torch.Tensor | None = None, *,
        fixed: dict | None = None, lower: float | dict | None = None, upper: float | dict | None = None,
        nobs: int | None = None, method: str = "newton", maxit: int = 100, tol: float = 1e-8,
        singular_tol: float = 1e-10) -> Estimates:
    """Maximum likelihood estimates, with standard errors from the observed information (inverse Hessian of the nll).

    Parameters
    ----------
    nll : function nll(params, data) -> negative log-likelihood (nll(params) when data is None): params is a
        dict name -> float64 tensor shaped as in `start` (fixed parameters included). Return the sum over
        observations, or one value per observation (summed; this also gives nobs and allows sandwich/cluster
        covariances); not their mean. Raising an exception (or returning a non-finite value) at a trial point
        shortens the step.
    start : dict name -> initial value (number, array, tensor, or a pandas Series whose index names the
        elements); inside the parameter space (finite nll). The elements of a vector parameter ``b`` are named
        ``b[0]``, ``b[1]``, ... (``b[i,j]`` for a matrix; ``b[label]`` for a Series).
    data : passed to nll; a DataFrame or dict of arrays becomes a dict of float64 tensors (numeric columns).
    fixed : dict name (or element label, ``"b[1]"``) -> value held fixed, as R's stats4::mle(fixed=): not
        estimated, and left out of coef, vcov and summary (``full_coef()`` has them). The names are
        parameters of start (whose value there is then not used) or elements of them.
    lower, upper : bounds, a number for every parameter or a dict name (or element label) -> bound; the fit
        stays within them (projected Newton). An estimate on a bound warns (BoundaryWarning): its standard
        errors, which are the Hessian's as R reports them, are not valid there.
    nobs : number of observations, for BIC (default: the nll's length if a vector, else the rows of data).
    method : "newton" (L-BFGS only if Newton stalls) or "lbfgs" (L-BFGS first, then Newton to finish; no bounds).
    maxit : most Newton iterations.
    tol : converged when a Newton step moves every parameter by at most tol standard errors (or when the
        nll cannot be lowered in floating point any more and its gradient is at its rounding level).
    singular_tol : eigenvalue of the unit-diagonal Hessian below which a direction counts as flat.

    Returns
    -------
    Estimates, with ``converged`` False (and an OptimumWarning) when Newton did not reach an optimum.

    Examples
    --------
    >>> d = tl.datasets.load("InsectSprays")
    >>> est = tl.mle(lambda p, d: -torch.distributions.Poisson(p["rate"]).log_prob(d["count"]), {"rate": 5.0}, d)
    >>> est.coef().round(4).to_dict()
    {'rate': 9.5}
    """
    _check_options(nll, method, maxit, tol, singular_tol, nobs)
    keys, vals, labels, free = start_values(start, fixed)
    box = parse_bounds(lower, upper, keys, vals, labels, free)
    if box is not None and method == "lbfgs":
        raise ModelInputError("method='lbfgs' does not take bounds: use method='newton' (projected Newton) with "
                              "lower= / upper=")
    d, rows = tensor_data(data)
    obj = Objective(nll, d, data is not None, keys, [tuple(v.shape) for v in vals])
    theta = torch.cat([v.reshape(-1) for v in vals])
    f0 = obj.at_start(theta)
    if f0.ndim == 0:
        check_not_mean(obj, theta, d, rows, float(f0))
    n_vec = f0.shape[0] if f0.ndim == 1 else None
    if nobs is None:
        nobs = n_vec if n_vec is not None else rows
    spec = _Spec(obj, labels, box, method, maxit, tol, singular_tol)
    out = _fit(spec, theta, free)
    warn_not_converged(out.res, out.iterations, tol)
    converged = out.res.converged and level_along_flat(out.problem, out.x, out.curv, out.names)
    active = None if box is None else _at_bounds(out, box[0][free], box[1][free])
    fo = out.fo
    scores = None
    if n_vec is not None:
        def scores() -> torch.Tensor:
            return func_jacobian(fo.raw, out.x)

    lik = Likelihood(keys, [tuple(v.shape) for v in vals], labels, free, out.theta, obj.f,
                     loglik_of=lambda s: -s, refit=spec.refit, lower=None if box is None else box[0],
                     upper=None if box is None else box[1], name=getattr(nll, "__name__", "nll"))
    k = len(out.names)
    return Estimates(
        names=out.names, estimate=out.x.cpu().numpy(), hessian=out.H, gradient=out.g,
        scale=1.0, statistic="z", call=_call_text(nll, start, fixed, lower, upper),
        header="Maximum likelihood estimation", nobs=nobs,
        df_residual=None if nobs is None else nobs - k, loglik=-out.value, df_loglik=k,
        scores=scores, method=" then ".join(out.steps), converged=converged, iterations=out.iterations,
        singular_tol=singular_tol, curvature=out.curv, on_negative="warn", likelihood=lik, active=active,
        advice="raise maxit, or start closer to the optimum")


def _check_options(nll: Any, method: Any, maxit: Any, tol: Any, singular_tol: Any, nobs: Any) -> None:
    """ModelInputError for an argument of tl.mle of the wrong kind or out of range."""
    if not callable(nll):
        raise ModelInputError(f"nll must be a function of (params, data), not {type(nll).__name__}")
    if not isinstance(method, str) or method not in ("newton", "lbfgs"):
        raise ModelInputError(f"method must be 'newton' or 'lbfgs', not {method!r}")
    positive_number("maxit", maxit, whole=True)
    positive_number("tol", tol)
    positive_number("singular_tol", singular_tol)
    if nobs is not None:
        positive_number("nobs", nobs, whole=True)


def _at_bounds(out: _Outcome, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """BoundaryWarning for estimates on a bound; which parameters are held there (the gradient pushing out)."""
    x = out.x.cpu().numpy()
    warn_at_bounds(out.names, x, lo, hi)
    return ((x <= lo) & (out.g > 0)) | ((x >= hi) & (out.g < 0))


def _call_text(nll: Callable, start: dict, fixed: Any, lower: Any, upper: Any) -> str:
    """R's call of the fit: mle(nll, start = list(a = 1, b = 2), fixed = list(...))."""
    def short(v: Any) -> str:
        return short_value(torch.as_tensor(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v,
                                                      dtype=float)))

    items = ", ".join(f"{k} = {short(v)}" for k, v in start.items())
    out = f"mle({getattr(nll, '__name__', 'nll')}, start = list({items})"
    for what, spec in (("fixed", fixed), ("lower", lower), ("upper", upper)):
        if isinstance(spec, dict):
            out += f", {what} = list({', '.join(f'{k} = {short(v)}' for k, v in spec.items())})"
        elif spec is not None:
            out += f", {what} = {float(spec):g}"
    return out + ")"


@dataclass
class _Spec:
    """What a fit of the nll needs besides the free set: the objective, labels, bounds and the options."""

    obj: Objective
    labels: list[str]
    box: tuple[np.ndarray, np.ndarray] | None
    method: str
    maxit: int
    tol: float
    singular_tol: float

    def problem(self, fo: FreeObjective, free: np.ndarray) -> NewtonProblem:
        """The driver's problem over the free elements: projected Newton when there are bounds.

        Returns
        -------
        NewtonProblem
        """
        names = [n for n, f in zip(self.labels, free) if f]
        if self.box is None:
            return NewtonProblem(fo, names, self.singular_tol)
        return BoxNewtonProblem(fo, names, self.singular_tol, self.box[0][free], self.box[1][free])

    def refit(self, free: np.ndarray, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The minimum of the nll over the free elements from theta (the others held there), and where it is.

        Returns
        -------
        (minimum, flat argmin)
        """
        if not free.any():
            with torch.no_grad():
                return float(self.obj.f(theta)), theta
        fo = FreeObjective(self.obj, theta, free)
        x0 = theta[torch.as_tensor(np.flatnonzero(free), device=theta.device)]
        x, res, _, _ = newton(self.problem(fo, free), fo.f, x0, self.maxit, self.tol, restart=self.box is None)
        return float(res.value), fo.embed(x).detach()


@dataclass
class _Outcome:
    fo: FreeObjective
    problem: NewtonProblem
    names: list[str]
    x: torch.Tensor          # the free elements at the end
    theta: torch.Tensor      # all elements
    res: Result
    iterations: int
    steps: list[str]
    value: float
    g: np.ndarray
    H: np.ndarray
    curv: Curvature


def _fit(spec: _Spec, theta: torch.Tensor, free: np.ndarray) -> _Outcome:
    """Newton (after L-BFGS for method='lbfgs') over the free elements from theta, and the derivatives at its end."""
    fo = FreeObjective(spec.obj, theta, free)
    problem = spec.problem(fo, free)
    x = theta[torch.as_tensor(np.flatnonzero(free), device=theta.device)]
    steps = ["Newton"]
    if spec.method == "lbfgs":
        x = lbfgs(fo.f, x, spec.maxit)
        steps = ["L-BFGS", "Newton"]
    x, res, iterations, fell_back = newton(problem, fo.f, x, spec.maxit, spec.tol, restart=spec.box is None)
    if fell_back:
        steps.insert(1, "L-BFGS")
    S, g, H = summed_hessian(lambda: [fo.f], x)
    Hn = H.cpu().numpy()
    curv = analyse_curvature(Hn, problem.labels, spec.singular_tol)
    return _Outcome(fo, problem, problem.labels, x, fo.embed(x).detach(), res, iterations, steps, S,
                    g.cpu().numpy(), Hn, curv)


def newton(problem: Any, f: Callable, theta: torch.Tensor, maxit: int, tol: float,
           restart: bool = True) -> tuple[torch.Tensor, Result, int, bool]:
    """Newton by the shared driver from theta, with one L-BFGS restart (where ``restart``) when it cannot make
    progress.

    Returns
    -------
    (theta, the driver's last result, iterations in all, whether L-BFGS was needed)
    """
    test = FirstOf(StepBelow(tol), FloatingPointFloor(), Divergence())
    control = Backtracking(armijo=ARMIJO, shrink=0.5, min_fraction=MIN_STEP)
    used, fell_back = 0, False
    while True:
        res = solve(problem, theta, control=control, test=test, maxit=maxit - used)
        used, theta = used + res.iterations, res.x
        if (res.converged or res.reason in (Reason.DIVERGED, Reason.MAXIT) or fell_back or used >= maxit
                or not restart):
            return theta, res, used, fell_back
        # no step could be computed or taken away from the floating-point floor: L-BFGS once, then Newton again
        theta, fell_back = lbfgs(f, theta, 200), True
