"""tl.mle(): maximum likelihood for a negative log-likelihood written in torch, by Newton's method on its
autograd Hessian (the shared driver of torchlm.solvers: backtracking line search; L-BFGS when Newton cannot make
progress)."""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.func import vmap

from torchlm.errors import ModelInputError, OptimumWarning, TorchlmError
from torchlm.results.estimates import (
    Curvature,
    Estimates,
    analyse_curvature,
    element_names,
    positive_number,
    summed_hessian,
)
from torchlm.solvers import (
    Backtracking,
    Divergence,
    Evaluation,
    FirstOf,
    FloatingPointFloor,
    Reason,
    Result,
    State,
    Step,
    StepBelow,
    solve,
)
from torchlm.solvers.autograd import func_jacobian, quiet

ARMIJO = 1e-4
MIN_STEP = 2.0**-40
EPS = float(np.finfo(np.float64).eps)


def _tensor_data(data):
    """Data for the nll, and its number of rows if that is clear: DataFrame or dict columns and tuple items as
    float64 tensors (numeric ones; others as numpy arrays)."""
    def conv(v):
        if isinstance(v, torch.Tensor):
            return v.to(torch.float64) if v.is_floating_point() else v
        a = np.asarray(v)
        if a.dtype.kind in "biuf":
            return torch.as_tensor(a.astype(np.float64))
        return a

    if data is None:
        return None, None
    if isinstance(data, pd.DataFrame):
        return {c: conv(data[c].to_numpy()) for c in data.columns}, len(data)
    if isinstance(data, dict):
        d = {k: conv(v) for k, v in data.items()}
        lens = {len(v) for v in d.values() if hasattr(v, "__len__") and np.ndim(v) >= 1}
        return d, (lens.pop() if len(lens) == 1 else None)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        t = conv(data)
        return t, (t.shape[0] if t.ndim else None)
    if isinstance(data, (tuple, list)):
        items = tuple(conv(v) if isinstance(v, (torch.Tensor, np.ndarray)) else v for v in data)
        lens = {v.shape[0] for v in items if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 1}
        return items, (lens.pop() if len(lens) == 1 else None)
    return data, None


def mle(nll: Callable, start: dict, data: pd.DataFrame | dict | tuple | list | torch.Tensor | None = None, *,
        nobs: int | None = None, method: str = "newton", maxit: int = 100, tol: float = 1e-8,
        singular_tol: float = 1e-10) -> Estimates:
    """Maximum likelihood estimates, with standard errors from the observed information (inverse Hessian of the nll).

    Parameters
    ----------
    nll : function nll(params, data) -> negative log-likelihood (nll(params) when data is None): params is a
        dict name -> float64 tensor shaped as in `start`. Return the sum over observations, or one value per
        observation (summed; this also gives nobs and allows sandwich/cluster covariances); not their mean.
        Raising an exception (or returning a non-finite value) at a trial point shortens the step.
    start : dict name -> initial value (number, array or tensor); inside the parameter space (finite nll).
    data : passed to nll; a DataFrame or dict of arrays becomes a dict of float64 tensors (numeric columns).
    nobs : number of observations, for BIC (default: the nll's length if a vector, else the rows of data).
    method : "newton" (L-BFGS only if Newton stalls) or "lbfgs" (L-BFGS first, then Newton to finish).
    maxit : most Newton iterations.
    tol : converged when a Newton step moves every parameter by at most tol standard errors (or when the
        nll cannot be lowered in floating point any more and its gradient is at its rounding level).
    singular_tol : eigenvalue of the unit-diagonal Hessian below which a direction counts as flat.

    Returns
    -------
    Estimates, with ``converged`` False (and an OptimumWarning) when Newton did not reach an optimum.
    """
    if not callable(nll):
        raise ModelInputError(f"nll must be a function of (params, data), not {type(nll).__name__}")
    if not isinstance(method, str) or method not in ("newton", "lbfgs"):
        raise ModelInputError(f"method must be 'newton' or 'lbfgs', not {method!r}")
    positive_number("maxit", maxit, whole=True)
    positive_number("tol", tol)
    positive_number("singular_tol", singular_tol)
    if nobs is not None:
        positive_number("nobs", nobs, whole=True)
    keys, vals, theta = _start_values(start)
    d, rows = _tensor_data(data)
    obj = _Objective(nll, d, data is not None, keys, [tuple(v.shape) for v in vals])
    labels = [e for k, v in zip(keys, vals) for e in element_names(k, v.shape)]
    f0 = obj.at_start(theta)
    if f0.ndim == 0:
        _check_not_mean(obj, theta, d, rows, float(f0))
    n_vec = f0.shape[0] if f0.ndim == 1 else None
    if nobs is None:
        nobs = n_vec if n_vec is not None else rows

    steps = ["Newton"]
    if method == "lbfgs":
        theta = _lbfgs(obj.f, theta, maxit)
        steps = ["L-BFGS", "Newton"]
    theta, res, iterations, fell_back = _newton(obj, theta, labels, maxit, tol, singular_tol)
    if fell_back:
        steps.insert(1, "L-BFGS")
    S, g, H = summed_hessian(lambda: [obj.f], theta)
    _warn_not_converged(res, iterations, tol)
    curv = analyse_curvature(H.cpu().numpy(), labels, singular_tol)
    converged = res.converged and _level_along_flat(_NewtonProblem(obj, labels, singular_tol), theta, curv, labels)
    scores = None
    if n_vec is not None:
        def scores():
            return func_jacobian(obj.raw, theta)

    start_txt = ", ".join(f"{k} = {_short(v)}" for k, v in zip(keys, vals))
    return Estimates(
        names=labels, estimate=theta.cpu().numpy(), hessian=H.cpu().numpy(), gradient=g.cpu().numpy(),
        scale=1.0, statistic="z", call=f"mle({getattr(nll, '__name__', 'nll')}, start = list({start_txt}))",
        header="Maximum likelihood estimation", nobs=nobs,
        df_residual=None if nobs is None else nobs - len(labels), loglik=-S, df_loglik=len(labels),
        scores=scores, method=" then ".join(steps), converged=converged, iterations=iterations,
        singular_tol=singular_tol, curvature=curv, on_negative="warn",
        advice="raise maxit, or start closer to the optimum")


def _start_values(start) -> tuple[list[str], list[torch.Tensor], torch.Tensor]:
    """Parameter names, start values as float64 tensors, and all of them as one flat vector."""
    if not isinstance(start, dict) or not start:
        raise ModelInputError(f"start must be a non-empty dict: parameter name -> initial value, not "
                              f"{type(start).__name__} (e.g. start={{'mu': 0.0, 'beta': [0.0, 0.0]}})")
    keys, vals = list(start), []
    for k in keys:
        if not isinstance(k, str) or not k:
            raise ModelInputError(f"start's names must be non-empty strings (the nll reads params[name]), not {k!r}")
        try:
            a = np.asarray(start[k].detach().cpu() if isinstance(start[k], torch.Tensor) else start[k])
        except (TypeError, ValueError) as e:
            raise ModelInputError(f"start value for {k!r} is not an array of numbers ({e})") from e
        if a.dtype.kind not in "biuf":
            raise ModelInputError(f"start value for {k!r} must be real numbers, not {a.dtype} ({_short_any(start[k])})")
        v = torch.as_tensor(a.astype(np.float64))
        if v.numel() == 0:
            raise ModelInputError(f"start value for {k!r} has no elements: give each parameter at least one value")
        if not torch.isfinite(v).all():
            raise ModelInputError(f"start value for {k!r} is not finite")
        vals.append(v)
    labels = [e for k, v in zip(keys, vals) for e in element_names(k, v.shape)]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ModelInputError(f"parameter names collide: {', '.join(dup)} name two values (a vector's elements are "
                              "named name[i]): rename the parameters in start")
    return keys, vals, torch.cat([v.reshape(-1) for v in vals])


def _short_any(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


class _Objective:
    """The user's nll as a function of the flat parameter vector: per-observation values (raw) and their sum (f)."""

    def __init__(self, nll: Callable, d, has_data: bool, keys: list[str], shapes: list[tuple]) -> None:
        self.nll, self.d, self.has_data, self.keys, self.shapes = nll, d, has_data, keys, shapes
        self.sizes = [math.prod(s) for s in shapes]

    def params(self, th: torch.Tensor) -> dict:
        """The dict name -> tensor the nll takes, from the flat vector."""
        return dict(zip(self.keys, (t.reshape(s) for t, s in zip(torch.split(th, self.sizes), self.shapes))))

    def raw(self, th: torch.Tensor, d=None) -> torch.Tensor:
        """The nll's own output at th (a scalar or one value per observation), on data d (default: all)."""
        d = self.d if d is None else d
        out = self.nll(self.params(th), d) if self.has_data else self.nll(self.params(th))
        if not isinstance(out, torch.Tensor):
            raise ModelInputError(f"nll returned {type(out).__name__}: compute it with torch operations on the "
                                  "parameter tensors (no .item(), float() or numpy)")
        if out.ndim > 1:
            raise ModelInputError(f"nll returned shape {tuple(out.shape)}: return a scalar or a vector of "
                                  "per-observation values")
        return out

    def f(self, th: torch.Tensor) -> torch.Tensor:
        """The summed nll at th."""
        return self.raw(th).sum()

    def at_start(self, theta: torch.Tensor) -> torch.Tensor:
        """The nll's output at the start values; an exception or a non-finite value there is the user's error."""
        try:
            with torch.no_grad():
                f0 = self.raw(theta)
        except ModelInputError:
            raise
        except Exception as e:
            raise ModelInputError(f"the nll raised {type(e).__name__} at the start values ({e}): it must evaluate "
                                  "there; choose start values inside the parameter space") from e
        if not torch.isfinite(f0.sum()):
            raise ModelInputError(f"the nll at the start values is {float(f0.sum())}: choose start values inside "
                                  "the parameter space")
        return f0


def _short(v: torch.Tensor) -> str:
    if v.numel() == 1:
        return f"{float(v):.4g}"
    return "c(" + ", ".join(f"{float(x):.4g}" for x in v.reshape(-1)[:4]) + (", ...)" if v.numel() > 4 else ")")


class _NewtonProblem:
    """tl.mle's problem for the driver: the summed nll, and Newton steps on its autograd Hessian.

    Negative curvature is flipped to descend; flat directions (non-identifiable combinations) are skipped
    unless the nll slopes along them, which gets a steepest-descent step along them, doubled while it is
    taken in full (so an nll linear in a parameter shows as steps that keep growing).
    """

    def __init__(self, obj: _Objective, labels: list[str], singular_tol: float) -> None:
        self.obj, self.labels, self.singular_tol = obj, labels, singular_tol

    def evaluate(self, th: torch.Tensor) -> Evaluation:
        """The summed nll at th, with the rounding level of its sum when the nll gives per-observation values.

        Parameters
        ----------
        th : the flat parameter vector.

        Returns
        -------
        Evaluation (the driver treats an exception or a non-finite value as an invalid point).
        """
        with torch.no_grad():
            v = self.obj.raw(th)
        rounding = EPS * float(v.abs().sum()) if v.ndim == 1 else 0.0
        return Evaluation(float(v.sum()), rounding=rounding)

    def propose(self, state: State) -> Step | None:
        """Newton step on the autograd Hessian at ``state.x`` (None where the derivatives are not finite).

        Parameters
        ----------
        state : the driver's state.

        Returns
        -------
        Step with its size in standard errors (inf while it is not a Newton step), or None.
        """
        try:
            _, g, H = summed_hessian(lambda: [self.obj.f], state.x)
        except TorchlmError:
            raise
        except Exception:  # the nll's derivatives fail where its value did not: L-BFGS takes over
            return None
        gn, Hn = g.cpu().numpy(), H.cpu().numpy()
        if not (np.isfinite(gn).all() and np.isfinite(Hn).all()):
            return None
        # analyse_curvature itself does not warn (the result's checks do); warnings filters are process-global
        # and warnings.catch_warnings is not thread-safe, so none is entered here
        c = analyse_curvature(Hn, self.labels, self.singular_tol)
        if c.negative:
            step, newton, size = _descent_step(Hn, gn, self.singular_tol), False, math.inf
        else:
            step, newton, ok = -c.pinv @ gn, True, c.identifiable
            size = float(np.max(np.abs(step[ok]) / np.sqrt(np.diag(c.pinv)[ok]))) if ok.any() else 0.0
        length = None
        if c.rank < len(gn):
            prev = state.step.data if state.step is not None else None
            # a state with a step has the trial that took it (both come from the same accepted move)
            length = 1.0 if prev is None or state.trial is None else 2 * prev * state.trial.fraction
            slide = _flat_slide(Hn, gn, self.singular_tol, length, state.value)
            if slide is None:
                length = None
            else:
                step, newton, size = step + slide, False, math.inf
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


def _newton(obj: _Objective, theta: torch.Tensor, labels: list[str], maxit: int, tol: float,
            singular_tol: float) -> tuple[torch.Tensor, Result, int, bool]:
    """Newton by the shared driver from theta, with one L-BFGS restart when it cannot make progress.

    Returns (theta, the driver's last result, iterations in all, whether L-BFGS was needed).
    """
    problem = _NewtonProblem(obj, labels, singular_tol)
    test = FirstOf(StepBelow(tol), FloatingPointFloor(), Divergence())
    control = Backtracking(armijo=ARMIJO, shrink=0.5, min_fraction=MIN_STEP)
    used, fell_back = 0, False
    while True:
        res = solve(problem, theta, control=control, test=test, maxit=maxit - used)
        used, theta = used + res.iterations, res.x
        if res.converged or res.reason in (Reason.DIVERGED, Reason.MAXIT) or fell_back or used >= maxit:
            return theta, res, used, fell_back
        # no step could be computed or taken away from the floating-point floor: L-BFGS once, then Newton again
        theta, fell_back = _lbfgs(obj.f, theta, 200), True


def _level_along_flat(problem: _NewtonProblem, theta: torch.Tensor, curv: Curvature, labels: list[str]) -> bool:
    """Whether the nll is level along the flat directions of its Hessian at theta (True without any).

    Second derivatives cannot tell a non-identifiable combination (nll constant along it) from an
    inflection (a^3 at 0) or a slope below the Hessian's resolution: the nll is evaluated a step of
    1e-3 of the parameters' scale either way along each of (at most three) flat directions, and a
    decrease beyond its rounding level means no minimum is there (OptimumWarning).
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
            try:
                ev = problem.evaluate(theta + sign * r)
            except Exception:  # the nll rejects the point: outside its support, no evidence either way
                continue
            if ev.ok and ev.value < here.value - margin:
                combo = " + ".join(f"{float(c):.3g}*{n}" for c, n in zip(sign * r, labels) if float(c) != 0)
                warnings.warn(
                    f"tl.mle stopped where the nll has no curvature, but it decreases along {combo} (from "
                    f"{here.value:.10g} to {ev.value:.10g}): the point is not a minimum (an inflection, or a slope "
                    "too small for the Hessian to resolve); check that the nll has a minimum", OptimumWarning,
                    stacklevel=3)
                return False
    return True


def _warn_not_converged(res: Result, iterations: int, tol: float) -> None:
    """OptimumWarning when the driver did not converge (divergence worded as such)."""
    if res.converged:
        return
    if res.reason == Reason.DIVERGED:
        msg = (f"tl.mle did not converge: the nll has no minimum along the path Newton followed ({res.message}); "
               "the estimates and standard errors are not at an optimum")
    else:
        msg = (f"tl.mle did not converge in {iterations} Newton iterations (tolerance {tol:g} standard errors); "
               "the estimates and standard errors are not at the optimum")
    warnings.warn(msg, OptimumWarning, stacklevel=3)


def _row_leaves(d, rows: int):
    """The per-row tensors of the data and a function rebuilding the data from replacements for them."""
    def per_row(v):
        return isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == rows

    if isinstance(d, torch.Tensor):
        return ([d], lambda xs: xs[0]) if per_row(d) else ([], None)
    if isinstance(d, dict):
        ks = [k for k, v in d.items() if per_row(v)]
        return [d[k] for k in ks], lambda xs: {**d, **dict(zip(ks, xs))}
    if isinstance(d, (tuple, list)):
        idx = [i for i, v in enumerate(d) if per_row(v)]

        def rebuild(xs):
            out = list(d)
            for i, x in zip(idx, xs):
                out[i] = x
            return type(d)(out)
        return [d[i] for i in idx], rebuild
    return [], None


def _check_not_mean(obj: _Objective, theta: torch.Tensor, d, rows: int | None, total: float) -> None:
    """ModelInputError when a scalar nll is the mean, not the sum, of its values on single observations.

    As tl.infer does for a loss: the nll is evaluated one row at a time with vmap, once, at the start
    values; if it cannot be (it uses the whole data, or vmap cannot trace it) the check is skipped.
    """
    if rows is None or rows < 2:
        return
    leaves, rebuild = _row_leaves(d, rows)
    if not leaves:
        return

    def one(*xs):
        return obj.raw(theta, rebuild([x.unsqueeze(0) for x in xs])).sum()

    try:
        with torch.no_grad():
            each = quiet(vmap(one))(*leaves)
        s, m = float(each.sum()), float(each.mean())
    except Exception:  # not evaluable one row at a time: nothing to compare
        return

    def close(a, b):
        return abs(a - b) <= 1e-8 * max(abs(a), abs(b), 1e-300)

    if close(total, m) and not close(total, s):
        raise ModelInputError(
            f"the nll returned {total:.10g}, the mean of its values on single observations (their sum is "
            f"{s:.10g}): return the sum over observations (or one value per observation), not the mean; the "
            "log-likelihood and standard errors need the sum")


def _descent_step(H: np.ndarray, g: np.ndarray, tol: float) -> np.ndarray:
    """Newton step on |H| (eigenvalues made positive), in the unit-diagonal scaling; flat directions dropped."""
    dg = np.diag(H)
    s = 1 / np.sqrt(np.where(dg != 0, np.abs(dg), 1.0))
    w, V = np.linalg.eigh(s[:, None] * H * s[None, :])
    keep = np.abs(w) > tol
    return -s * ((V[:, keep] / np.abs(w[keep])) @ (V[:, keep].T @ (s * g)))


def _lbfgs(f, theta, maxit):
    """L-BFGS (strong Wolfe line search) from theta; the start again if it ends somewhere not finite."""
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
