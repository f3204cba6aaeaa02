"""tl.mle's Newton problem for the shared driver (torchlm.solvers): Newton steps on the autograd Hessian with a
backtracking line search, curvature flipped where it is negative, flat directions skipped or slid along, an L-BFGS
restart when Newton cannot make progress, and the checks that a stop is a minimum."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from torchlm.errors import OptimumWarning, TorchlmError, warn
from torchlm.results.curvature import Curvature, analyse_curvature, summed_hessian
from torchlm.results.estimates import user_stacklevel
from torchlm.solvers import Evaluation, Reason, Result, State, Step

EPS = float(np.finfo(np.float64).eps)


def newton_direction(gn: np.ndarray, Hn: np.ndarray, labels: list[str], singular_tol: float,
                     state: State) -> tuple[np.ndarray, bool, float, float | None, np.ndarray | None]:
    """The step of tl.mle's Newton problem from gradient gn and Hessian Hn at ``state``.

    Negative curvature is flipped to descend; flat directions (non-identifiable combinations) are skipped
    unless the nll slopes along them, which gets a steepest-descent step along them, doubled while it is
    taken in full (so an nll linear in a parameter shows as steps that keep growing).

    Returns
    -------
    (step, whether it is a Newton step, its size in standard errors (inf when not Newton), slide length or None,
    the unit standard errors sqrt(diag(H^-1)) (NaN where not identifiable; None at negative curvature))
    """
    # analyse_curvature itself does not warn (the result's checks do); warnings filters are process-global
    c = analyse_curvature(Hn, labels, singular_tol)
    se: np.ndarray | None = None
    if c.negative:
        step, newton, size = _descent_step(Hn, gn, singular_tol), False, math.inf
    else:
        step, newton, ok = -c.pinv @ gn, True, c.identifiable
        se = np.where(ok, np.sqrt(np.abs(np.diag(c.pinv))), np.nan)
        size = float(np.max(np.abs(step[ok]) / se[ok])) if ok.any() else 0.0
    length = None
    if c.rank < len(gn):
        prev = state.step.data if state.step is not None else None
        # a state with a step has the trial that took it (both come from the same accepted move)
        length = 1.0 if prev is None or state.trial is None else 2 * prev * state.trial.fraction
        slide = _flat_slide(Hn, gn, singular_tol, length, state.value)
        if slide is None:
            length = None
        else:
            step, newton, size = step + slide, False, math.inf
    return step, newton, size, length, se


def derivatives(f: Callable, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """Gradient and Hessian of f at x as numpy arrays, or None where they fail or are not finite.

    Returns
    -------
    (gradient, Hessian) or None
    """
    try:
        _, g, H = summed_hessian(lambda: [f], x)
    except TorchlmError:
        raise
    except Exception:  # the nll's derivatives fail where its value did not: L-BFGS takes over
        return None
    gn, Hn = g.cpu().numpy(), H.cpu().numpy()
    if not (np.isfinite(gn).all() and np.isfinite(Hn).all()):
        return None
    return gn, Hn


class NewtonProblem:
    """tl.mle's problem for the driver: the summed nll, and Newton steps on its autograd Hessian
    (see :func:`newton_direction`). ``obj`` has ``raw(x)`` (the nll's output) and ``f(x)`` (its sum)."""

    def __init__(self, obj: Any, labels: list[str], singular_tol: float) -> None:
        self.obj, self.labels, self.singular_tol = obj, labels, singular_tol

    def evaluate(self, th: torch.Tensor) -> Evaluation:
        """The summed nll at th, with the rounding level of its sum when the nll gives per-observation values.

        Parameters
        ----------
        th : the flat vector of the free parameters.

        Returns
        -------
        Evaluation (the driver treats an exception or a non-finite value as an invalid point).
        """
        with torch.no_grad():
            v = self.obj.raw(th)
        rounding = EPS * float(v.abs().sum()) if v.ndim == 1 else 0.0
        return Evaluation(float(v.sum()), rounding=rounding)

    def inside(self, th: torch.Tensor) -> bool:
        """Whether th is a point the fit may take (no bounds here: every point).

        Returns
        -------
        bool
        """
        return True

    def propose(self, state: State) -> Step | None:
        """Newton step on the autograd Hessian at ``state.x`` (None where the derivatives are not finite).

        Parameters
        ----------
        state : the driver's state.

        Returns
        -------
        Step with its size in standard errors (inf while it is not a Newton step), or None.
        """
        gh = derivatives(self.obj.f, state.x)
        if gh is None:
            return None
        gn, Hn = gh
        step, newton, size, length, _ = newton_direction(gn, Hn, self.labels, self.singular_tol, state)
        d = torch.as_tensor(step, dtype=state.x.dtype, device=state.x.device)
        return Step(d, newton=newton, slope=float(gn @ step), size=size, data=length)


def _flat_slide(H: np.ndarray, g: np.ndarray, tol: float, length: float, value: float) -> np.ndarray | None:
    """Steepest descent of the given length (unit-diagonal scale) within the flat directions of H, or None when
    the gradient there is at rounding level (a non-identifiable combination, not a slope)."""
    dg = np.diag(H)
    s = 1 / np.sqrt(np.where(dg != 0, np.abs(dg), 1.0))
    w, V = np.linalg.eigh(s[:, None] * H * s[None, :])
    Vf = V[:, np.abs(w) <= tol]
    u = Vf @ (Vf.T @ (s * g))
    norm = float(np.linalg.norm(u))
    if not norm > math.sqrt(EPS) * max(1.0, abs(value)):
        return None
    return -s * u * (length / norm)


def level_along_flat(problem: NewtonProblem, theta: torch.Tensor, curv: Curvature, labels: list[str]) -> bool:
    """Whether the nll is level along the flat directions of its Hessian at theta (True without any).

    Second derivatives cannot tell a non-identifiable combination (nll constant along it) from an
    inflection (a^3 at 0) or a slope below the Hessian's resolution: the nll is evaluated a step of
    1e-3 of the parameters' scale either way along each of (at most three) flat directions, and a
    decrease beyond its rounding level means no minimum is there (OptimumWarning).

    Returns
    -------
    bool
    """
    V, s = curv.flat_basis, curv.unit
    if V is None or s is None or not V.shape[1]:
        return True
    here = problem.evaluate(theta)
    margin = 8 * max(EPS * abs(here.value), here.rounding)
    scale = 1e-3 * max(1.0, float(theta.abs().max()))
    for j in range(min(3, V.shape[1])):
        r = torch.as_tensor(s * V[:, j], dtype=theta.dtype, device=theta.device)
        r = r * (scale / float(r.abs().max()))
        for sign in (1.0, -1.0):
            if not problem.inside(theta + sign * r):
                continue
            try:
                ev = problem.evaluate(theta + sign * r)
            except Exception:  # the nll rejects the point: outside its support, no evidence either way
                continue
            if ev.ok and ev.value < here.value - margin:
                combo = " + ".join(f"{float(c):.3g}*{n}" for c, n in zip(sign * r, labels) if float(c) != 0)
                warn(f"tl.mle stopped where the nll has no curvature, but it decreases along {combo} (from "
                     f"{here.value:.10g} to {ev.value:.10g}): the point is not a minimum (an inflection, or a slope "
                     "too small for the Hessian to resolve); check that the nll has a minimum", OptimumWarning,
                     stacklevel=user_stacklevel())
                return False
    return True


def warn_not_converged(res: Result, iterations: int, tol: float) -> None:
    """OptimumWarning when the driver did not converge (divergence worded as such).

    Returns
    -------
    None
    """
    if res.converged:
        return
    if res.reason == Reason.DIVERGED:
        msg = (f"tl.mle did not converge: the nll has no minimum along the path Newton followed ({res.message}); "
               "the estimates and standard errors are not at an optimum")
    else:
        msg = (f"tl.mle did not converge in {iterations} Newton iterations (tolerance {tol:g} standard errors); "
               "the estimates and standard errors are not at the optimum")
    warn(msg, OptimumWarning, stacklevel=user_stacklevel())


def _descent_step(H: np.ndarray, g: np.ndarray, tol: float) -> np.ndarray:
    """Newton step on |H| (eigenvalues made positive), in the unit-diagonal scaling; flat directions dropped."""
    dg = np.diag(H)
    s = 1 / np.sqrt(np.where(dg != 0, np.abs(dg), 1.0))
    w, V = np.linalg.eigh(s[:, None] * H * s[None, :])
    keep = np.abs(w) > tol
    return -s * ((V[:, keep] / np.abs(w[keep])) @ (V[:, keep].T @ (s * g)))


def lbfgs(f: Callable, theta: torch.Tensor, maxit: int) -> torch.Tensor:
    """L-BFGS (strong Wolfe line search) from theta; the start again if it ends somewhere not finite.

    Returns
    -------
    torch.Tensor
    """
    x = theta.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=maxit, tolerance_grad=1e-12, tolerance_change=1e-15,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = f(x)
        v.backward()
        return v

    try:
        opt.step(closure)
        out = x.detach()
        with torch.no_grad():
            if not torch.isfinite(f(out)) or float(f(out)) > float(f(theta)):
                return theta
    except Exception:  # the nll rejected a point L-BFGS tried: Newton goes on from where it was
        return theta
    return out
