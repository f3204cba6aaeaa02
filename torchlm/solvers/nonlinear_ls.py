"""Nonlinear least squares: R's nls() Gauss-Newton iteration (nls.c's nls_iter) on the Newton driver.

A point is summarised by the QR factor of [J | e] (J the autograd Jacobian of the residuals e): R's
increment is R11^-1 Q1'e, its relative-offset criterion ||Q1'e|| / ||e - Q1 Q1'e|| (Bates and Watts),
its rank test LINPACK's dqrdc2 at tol 1e-7, all from that (p+1)-column factor. The step factor is R's:
halved until the deviance does not rise, doubled (to at most 1) after each accepted step, an error once
below minFactor. :func:`polish` goes on from R's stopping point to the least-squares optimum itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from torchlm.errors import OptionError, TorchlmError
from torchlm.solvers.autograd import householder_qr, jacobian, limited_pivoting, objective_hessian
from torchlm.solvers.newton import ConvergenceTest, Evaluation, Stage, State, Step, StepControl, Trial, Verdict, solve

Residual = Callable[[torch.Tensor], torch.Tensor]
EPS = 2.220446049250313e-16
RANK_TOL = 1e-7  # R's qr() default, which nlsModel's singular-gradient test uses

# R's stop codes (nls.c) and minpack.lm's
CONVERGED, SINGULAR, STEP_FACTOR, MAXITER = 0, 1, 2, 3


@dataclass
class NlsControl:
    """The iteration's settings, R's nls.control() and minpack.lm's nls.lm.control() in one.

    Gauss-Newton (R): ``maxiter``, ``tol`` (relative offset), ``min_factor``, ``warn_only``, ``scale_offset``.
    Levenberg-Marquardt (nlsLM): ``maxiter``, ``ftol``, ``ptol``, ``gtol``, ``factor``, ``maxfev``.
    port: ``rel_tol``, ``x_tol``, ``abs_tol``, ``iter_max``, ``eval_max`` (PORT's defaults).
    ``fallback``: when Gauss-Newton stops without converging, fit by Levenberg-Marquardt instead (torchlm's).
    """

    maxiter: int = 50
    tol: float = 1e-5
    min_factor: float = 1.0 / 1024
    warn_only: bool = False
    scale_offset: float = 0.0
    ftol: float = math.sqrt(EPS)
    ptol: float = math.sqrt(EPS)
    gtol: float = 0.0
    factor: float = 100.0
    maxfev: int | None = None
    rel_tol: float = 1e-10
    x_tol: float = 1.5e-8
    abs_tol: float = 0.0
    iter_max: int = 150
    eval_max: int = 200
    fallback: bool = True
    fallback_maxiter: int = 1000


# R's spellings (nls.control, nls.lm.control, nls's port control) of the settings
_ALIASES = {"minFactor": "min_factor", "warnOnly": "warn_only", "scaleOffset": "scale_offset", "rel.tol": "rel_tol",
            "x.tol": "x_tol", "abs.tol": "abs_tol", "iter.max": "iter_max", "eval.max": "eval_max"}
_IGNORED = {"printEval", "nDcentral", "nprint", "epsfcn", "trace"}  # R's printing, and numerical derivatives


def nls_control(control: Any) -> NlsControl:
    """``control=`` checked and read: a dict with R's names (``minFactor``, ``warnOnly``, ``maxiter`` ...).

    Parameters
    ----------
    control : dict, NlsControl or None
        R's names or their snake_case spellings; ``printEval``, ``nDcentral``, ``epsfcn`` (numerical
        derivatives, printing) are accepted and have no effect: the Jacobian is autograd's.

    Returns
    -------
    NlsControl
    """
    if control is None:
        return NlsControl()
    if isinstance(control, NlsControl):
        return control
    if not isinstance(control, dict):
        raise OptionError(f"control must be a dict such as {{'maxiter': 100, 'tol': 1e-6}}, not "
                          f"{type(control).__name__}")
    known = {f.name for f in fields(NlsControl)}
    values: dict[str, Any] = {}
    for key, value in control.items():
        name = _ALIASES.get(key, key)
        if key in _IGNORED:
            continue
        if name not in known:
            raise OptionError(f"unknown control setting {key!r}; nls's are maxiter, tol, minFactor, warnOnly, "
                              "scaleOffset; nlsLM's ftol, ptol, gtol, factor, maxfev; port's rel.tol, x.tol, "
                              "abs.tol, iter.max, eval.max; and fallback")
        values[name] = value
    out = NlsControl(**values)
    for name in ("maxiter", "iter_max", "eval_max", "fallback_maxiter"):
        v = getattr(out, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise OptionError(f"control {name} must be a whole number >= 0, not {v!r}")
    for name in ("tol", "min_factor", "ftol", "ptol", "gtol", "factor", "rel_tol", "x_tol", "abs_tol", "scale_offset"):
        v = getattr(out, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v):
            raise OptionError(f"control {name} must be a number >= 0, not {v!r}")
    if out.tol <= 0 or out.min_factor <= 0 or out.factor <= 0:
        raise OptionError("control tol, minFactor and factor must be > 0")
    return out


# --- a point: its residuals and the factor of [J | e] ------------------------------------------------
@dataclass(frozen=True)
class Point:
    """The residuals at a point and the triangular factor of [J | e] there.

    ``R`` is (min(n, p+1), p+1): ``R[:p, :p]`` the factor of J, ``R[:p, p]`` = Q1'e, ``|R[p, p]|`` the norm
    of e's part outside J's columns. ``rank``: dqrdc2's rank of J at tol 1e-7.
    """

    x: torch.Tensor
    e: torch.Tensor
    rss: float
    R: torch.Tensor
    rank: int

    @property
    def p(self) -> int:
        """Number of parameters.

        Returns
        -------
        int
        """
        return self.x.numel()

    @property
    def singular(self) -> bool:
        """R's singular-gradient test: rank below min(n, p).

        Returns
        -------
        bool
        """
        return self.rank < min(self.e.numel(), self.p)

    def qte(self) -> torch.Tensor:
        """Q1'e, the residuals' coordinates in J's column space.

        Returns
        -------
        torch.Tensor
            (p,)
        """
        q = torch.zeros(self.p, dtype=self.R.dtype, device=self.R.device)
        k = min(self.R.shape[0], self.p)
        q[:k] = self.R[:k, self.p]
        return q

    def outside(self) -> float:
        """The squared norm of e outside J's columns, as sum(qr.qty(QR, resid)[-(1:p)]^2).

        Returns
        -------
        float
        """
        return float(self.R[self.p, self.p]) ** 2 if self.R.shape[0] > self.p else 0.0

    def offset(self, scale_offset: float = 0.0) -> float:
        """R's relative-offset convergence criterion at this point (nlsModel's convCrit).

        Parameters
        ----------
        scale_offset : float
            R's scaleOffset: (n - p) scaleOffset^2 is added to the denominator.

        Returns
        -------
        float
        """
        if self.p == 0:
            return 0.0
        num = float(self.qte() @ self.qte())
        den = (self.e.numel() - self.p) * scale_offset**2 + self.outside()
        return math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)

    def increment(self) -> torch.Tensor:
        """R's Gauss-Newton increment qr.coef(QR, resid), for torchlm's residual f - y: -R11^-1 Q1'e.

        Returns
        -------
        torch.Tensor
            (p,)
        """
        p = self.p
        R11 = self.R[:p, :p]
        return -torch.linalg.solve_triangular(R11, self.qte().unsqueeze(1), upper=True).squeeze(1)


def evaluate_point(fn: Residual, x: torch.Tensor, with_factor: bool = True) -> Point | None:
    """The residuals, sum of squares and factor of [J | e] at x; None where the residuals are not finite.

    Parameters
    ----------
    fn : the residual function, torch.Tensor (p,) -> (n,).
    x : the point.
    with_factor : also take the Jacobian and factor (else only the residuals: R is empty and rank 0).

    Returns
    -------
    Point or None
        None where e or J is not finite (the model cannot be evaluated there).
    """
    try:
        e = fn(x)
    except TorchlmError:  # the formula's own errors (an unknown function, an index out of range)
        raise
    except (RuntimeError, ValueError, ArithmeticError):  # a model torch cannot evaluate there is no valid point
        return None
    rss = float(e @ e)
    if not math.isfinite(rss):
        return None
    p = x.numel()
    if not with_factor:
        return Point(x, e, rss, torch.zeros(0, p + 1, dtype=x.dtype, device=x.device), 0)
    J = jacobian(fn, x).reshape(e.numel(), p)
    if not bool(torch.isfinite(J).all()):
        return None
    block = torch.empty((p + 1, e.numel()), dtype=x.dtype, device=x.device).T  # column-major, as LINPACK's
    block[:, :p] = J
    block[:, p] = e
    R = householder_qr(block)
    rank = limited_pivoting(R.cpu(), p, RANK_TOL)[2] if p else 0
    return Point(x, e, rss, R, min(rank, p))


# --- R's Gauss-Newton iteration ------------------------------------------------------------------------
class GaussNewton:
    """The driver's problem: the deviance at a point (its factor in ``aux``) and R's increment."""

    def __init__(self, fn: Residual) -> None:
        self.fn = fn

    def evaluate(self, x: torch.Tensor) -> Evaluation:
        """The deviance at x, with its :class:`Point` in ``aux`` (invalid where the model is not finite).

        Returns
        -------
        Evaluation
        """
        pt = evaluate_point(self.fn, x)
        if pt is None:
            return Evaluation(math.nan, valid=False)
        return Evaluation(pt.rss, aux=pt)

    def propose(self, state: State) -> Step | None:
        """R's increment at the current point.

        Returns
        -------
        Step
        """
        return Step(direction=state.aux.increment())


@dataclass
class StepFactor(StepControl):
    """nls_iter's line search: x + fac * incr with fac halved until the deviance does not rise; fac carries over
    between iterations, doubled (to at most 1) after each accepted step. A trial point whose gradient is
    singular stops the iteration (R's "singular gradient"), and so does fac below ``min_factor``."""

    min_factor: float = 1.0 / 1024
    fac: float = 1.0

    def search(self, problem: Any, state: State, step: Step) -> Trial:
        """The first fac, from the current one down, whose point has a deviance at most the current one.

        Parameters
        ----------
        problem, state, step : the problem, the current state and R's increment.

        Returns
        -------
        Trial (found=False with R's message when the gradient is singular or fac falls below minFactor)
        """
        rejected: list[str] = []
        while self.fac >= self.min_factor:
            x = state.x + self.fac * step.direction
            ev = problem.evaluate(x)
            if ev.ok and ev.aux.singular:
                return Trial(False, x, ev, self.fac, len(rejected), tuple(rejected), "singular gradient")
            if ev.ok and ev.value <= state.value:
                taken = self.fac
                self.fac = min(2 * self.fac, 1.0)
                return Trial(True, x, ev, taken, len(rejected), tuple(rejected))
            rejected.append(ev.fault or "no decrease")
            self.fac /= 2
        return Trial(False, None, None, self.fac, len(rejected), tuple(rejected),
                     f"step factor {self.fac:g} reduced below 'minFactor' of {self.min_factor:g}")


@dataclass
class RelativeOffset(ConvergenceTest):
    """R's test at the top of each iteration: converged when the relative offset is at most ``tol`` (not checked
    after the last of ``maxiter`` steps, as R's loop ends there)."""

    tol: float
    maxiter: int
    scale_offset: float = 0.0
    last: float = math.nan

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At ACCEPTED: converged when the new point's relative offset is at most ``tol``.

        Parameters
        ----------
        stage, state, step, trial : as in :class:`torchlm.solvers.newton.ConvergenceTest`.

        Returns
        -------
        Verdict or None
        """
        if stage != Stage.ACCEPTED or state.iteration >= self.maxiter:
            return None
        self.last = state.aux.offset(self.scale_offset)
        if self.last <= self.tol:
            return Verdict(True, "converged", "converged")
        return None


@dataclass
class Outcome:
    """How an iteration ended: the point, R's convInfo (isConv, finIter, finTol, stopCode, stopMessage) and
    the algorithm that produced the point."""

    point: Point
    converged: bool
    iterations: int
    tolerance: float
    code: int
    message: str
    algorithm: str
    evaluations: int = 0
    extra: dict = field(default_factory=dict)


def gauss_newton(fn: Residual, start: Point, control: NlsControl) -> Outcome:
    """R's nls_iter from ``start`` (already evaluated and not singular): R's steps, test and stop codes.

    Parameters
    ----------
    fn : the residual function.
    start : the starting point with its factor.
    control : maxiter, tol, min_factor, scale_offset.

    Returns
    -------
    Outcome
        converged with finIter and finTol as R reports them, or R's stop code (1 singular gradient, 2 step
        factor below minFactor, 3 iteration limit) and message.
    """
    conv0 = start.offset(control.scale_offset)
    if conv0 <= control.tol:
        return Outcome(start, True, 0, conv0, CONVERGED, "converged", "default")
    if control.maxiter == 0:
        return Outcome(start, False, 0, conv0, MAXITER, "number of iterations exceeded maximum of 0", "default")
    test = RelativeOffset(control.tol, control.maxiter, control.scale_offset, conv0)
    problem = GaussNewton(fn)
    res = solve(problem, start.x, control=StepFactor(control.min_factor), test=test, maxit=control.maxiter,
                initial=Evaluation(start.rss, aux=start))
    point = res.state.aux
    if res.converged:
        return Outcome(point, True, res.iterations, test.last, CONVERGED, "converged", "default")
    if res.reason == "iteration limit":
        return Outcome(point, False, res.iterations, test.last, MAXITER,
                       f"number of iterations exceeded maximum of {control.maxiter}", "default")
    code = SINGULAR if res.message == "singular gradient" else STEP_FACTOR
    return Outcome(point, False, res.iterations - 1, test.last, code, res.message, "default")


def polish(fn: Residual, start: Point, noise: Callable[[Point], float], fixed: torch.Tensor | None = None,
           max_steps: int = 60) -> Point:
    """From a converged point on to the least-squares optimum itself (torchlm's ``exact=True``).

    Newton steps on the sum of squares (the exact Hessian, J'J plus the residuals' curvature, by autograd)
    converge quadratically also where Gauss-Newton's rate is slow (large residuals: NIST ENSO, MGH09);
    where the Hessian is not positive definite the step is Gauss-Newton's. A step is taken while the
    deviance does not rise beyond its rounding (``noise``) and the relative offset falls; the point with
    the smallest offset is returned.

    Parameters
    ----------
    fn : the residual function.
    start : a point near the optimum (R's stopping point).
    noise : the rounding level of the deviance at a point (from the sizes of the terms in the residuals).
    fixed : a mask of parameters held where they are (at a bound), or None.
    max_steps : the most steps.

    Returns
    -------
    Point
    """
    best = cur = start
    best_off = cur_off = _offset(start, fixed)
    stalls = 0
    for _ in range(max_steps):
        if cur.singular or cur_off == 0:
            break
        nxt = evaluate_point(fn, cur.x + _newton_step(fn, cur, fixed))
        if nxt is None or nxt.rss > cur.rss + noise(cur):
            break
        off = _offset(nxt, fixed)
        if off < best_off:
            best, best_off = nxt, off
        stalls = stalls + 1 if off > 0.25 * cur_off else 0
        cur, cur_off = nxt, off
        if stalls >= 2 or off < 1e-15:
            break
    return best


def _offset(pt: Point, fixed: torch.Tensor | None) -> float:
    return pt.offset() if fixed is None else free_offset(pt, fixed)


def _newton_step(fn: Residual, pt: Point, fixed: torch.Tensor | None) -> torch.Tensor:
    """Newton's step on 0.5 * sum(e^2) in the free parameters, or Gauss-Newton's where the Hessian is not PD."""
    free = torch.arange(pt.p, device=pt.x.device) if fixed is None else (~fixed).nonzero().squeeze(1)
    d = torch.zeros_like(pt.x)
    if not free.numel():
        return d
    H = objective_hessian(lambda: [fn], pt.x)[free][:, free]
    g = (jacobian_from(pt).T @ pt.qte()[: min(pt.R.shape[0], pt.p)])[free]
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) == 0 and bool(torch.isfinite(L).all()):
        d[free] = -torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
        return d
    return pt.increment() if fixed is None else free_increment(pt, fixed)


def free_increment(pt: Point, fixed: torch.Tensor) -> torch.Tensor:
    """The Gauss-Newton increment in the free parameters only (those at a bound held): in the factor's
    coordinates, the least-squares solution of R11[:, free] d = -Q1'e.

    Returns
    -------
    torch.Tensor
        (p,) with zeros at the fixed parameters.
    """
    free = (~fixed).nonzero().squeeze(1)
    d = torch.zeros_like(pt.x)
    if free.numel():
        A = jacobian_from(pt)[:, free]
        d[free] = torch.linalg.lstsq(A, -pt.qte()[: A.shape[0]].unsqueeze(1)).solution.squeeze(1)
    return d


def free_offset(pt: Point, fixed: torch.Tensor) -> float:
    """The relative offset over the free parameters only.

    Returns
    -------
    float
    """
    free = (~fixed).nonzero().squeeze(1)
    if not free.numel():
        return 0.0
    q = torch.linalg.qr(jacobian_from(pt)[:, free]).Q
    r = pt.qte()[: q.shape[0]]
    proj = q.T @ r
    num = float(proj @ proj)
    den = float(r @ r) - num + pt.outside()
    return math.sqrt(num / den) if den > 0 else math.inf


def jacobian_from(pt: Point) -> torch.Tensor:
    """The factor of J at a point (R11, p x p): J's geometry in the coordinates of the factor.

    Returns
    -------
    torch.Tensor
    """
    k = min(pt.R.shape[0], pt.p)
    return pt.R[:k, : pt.p]
