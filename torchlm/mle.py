"""tl.mle(): maximum likelihood for a negative log-likelihood written in torch, by Newton's method on its
autograd Hessian (backtracking line search; L-BFGS when Newton cannot make progress)."""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.func import jacfwd

from .errors import ModelInputError
from .estimates import Estimates, OptimumWarning, analyse_curvature, element_names, summed_hessian
from .inference import quiet

ARMIJO = 1e-4
MIN_STEP = 2.0**-40


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


def mle(nll: Callable, start: dict, data=None, *, nobs: int | None = None, method: str = "newton",
        maxit: int = 100, tol: float = 1e-8, singular_tol: float = 1e-10) -> Estimates:
    """Maximum likelihood estimates, with standard errors from the observed information (inverse Hessian of the nll).

    Parameters
    ----------
    nll : function nll(params, data) -> negative log-likelihood (nll(params) when data is None): params is a
        dict name -> float64 tensor shaped as in `start`. Return a scalar, or one value per observation
        (summed; this also gives nobs and allows sandwich/cluster covariances).
    start : dict name -> initial value (number, array or tensor); inside the parameter space (finite nll).
    data : passed to nll; a DataFrame or dict of arrays becomes a dict of float64 tensors (numeric columns).
    nobs : number of observations, for BIC (default: the nll's length if a vector, else the rows of data).
    method : "newton" (L-BFGS only if Newton stalls) or "lbfgs" (L-BFGS first, then Newton to finish).
    maxit : most Newton iterations.
    tol : converged when a Newton step moves every parameter by at most tol standard errors.
    singular_tol : eigenvalue of the unit-diagonal Hessian below which a direction counts as flat.
    """
    if not callable(nll):
        raise ModelInputError(f"nll must be a function of (params, data), not {type(nll).__name__}")
    if not isinstance(start, dict) or not start:
        raise ModelInputError("start must be a non-empty dict: parameter name -> initial value")
    if method not in ("newton", "lbfgs"):
        raise ModelInputError(f"method must be 'newton' or 'lbfgs', not {method!r}")
    keys = list(start)
    vals = []
    for k in keys:
        v = torch.as_tensor(start[k], dtype=torch.float64).detach().clone()
        if not torch.isfinite(v).all():
            raise ModelInputError(f"start value for {k!r} is not finite")
        vals.append(v)
    shapes = [tuple(v.shape) for v in vals]
    sizes = [v.numel() for v in vals]
    labels = [e for k, s in zip(keys, shapes) for e in element_names(k, s)]
    theta = torch.cat([v.reshape(-1) for v in vals])
    d, rows = _tensor_data(data)

    def params(th):
        return dict(zip(keys, (t.reshape(s) for t, s in zip(torch.split(th, sizes), shapes))))

    def raw(th):
        out = nll(params(th), d) if data is not None else nll(params(th))
        if not isinstance(out, torch.Tensor):
            raise ModelInputError(f"nll returned {type(out).__name__}: compute it with torch operations on the "
                                  "parameter tensors (no .item(), float() or numpy)")
        if out.ndim > 1:
            raise ModelInputError(f"nll returned shape {tuple(out.shape)}: return a scalar or a vector of "
                                  "per-observation values")
        return out

    def f(th):
        return raw(th).sum()

    f0 = raw(theta)
    if not torch.isfinite(f0.sum()):
        raise ModelInputError(f"the nll at the start values is {float(f0.sum())}: choose start values inside "
                              "the parameter space")
    n_vec = f0.shape[0] if f0.ndim == 1 else None
    if nobs is None:
        nobs = n_vec if n_vec is not None else rows

    def value(th) -> float:
        with torch.no_grad():
            return float(f(th))

    steps = ["Newton"]
    if method == "lbfgs":
        theta = _lbfgs(f, theta, maxit)
        steps = ["L-BFGS", "Newton"]
    theta, converged, iterations, fell_back = _newton(f, value, theta, labels, maxit, tol, singular_tol)
    if fell_back:
        steps.insert(1, "L-BFGS")
    S, g, H = summed_hessian(lambda: [f], theta)
    if not converged:
        warnings.warn(f"tl.mle did not converge in {iterations} Newton iterations (tolerance {tol:g} standard "
                      "errors); the estimates and standard errors are not at the optimum", OptimumWarning,
                      stacklevel=2)
    scores = None
    if n_vec is not None:
        def scores():
            return quiet(jacfwd(raw))(theta)

    start_txt = ", ".join(f"{k} = {_short(v)}" for k, v in zip(keys, vals))
    return Estimates(
        names=labels, estimate=theta.cpu().numpy(), hessian=H.cpu().numpy(), gradient=g.cpu().numpy(),
        scale=1.0, statistic="z", call=f"mle({getattr(nll, '__name__', 'nll')}, start = list({start_txt}))",
        header="Maximum likelihood estimation", nobs=nobs,
        df_residual=None if nobs is None else nobs - len(labels), loglik=-S, df_loglik=len(labels),
        scores=scores, method=" then ".join(steps), converged=converged, iterations=iterations,
        singular_tol=singular_tol, on_negative="warn", advice="raise maxit, or start closer to the optimum")


def _short(v: torch.Tensor) -> str:
    if v.numel() == 1:
        return f"{float(v):.4g}"
    return "c(" + ", ".join(f"{float(x):.4g}" for x in v.reshape(-1)[:4]) + (", ...)" if v.numel() > 4 else ")")


def _newton(f, value, theta, labels, maxit, tol, singular_tol):
    """Newton with backtracking on the autograd Hessian; negative curvature flipped to descend, flat directions
    skipped. Returns (theta, converged, iterations, whether L-BFGS was needed)."""
    fell_back = False
    fx = value(theta)
    for it in range(1, maxit + 1):
        _, g, H = summed_hessian(lambda: [f], theta)
        gn, Hn = g.cpu().numpy(), H.cpu().numpy()
        if not (np.isfinite(gn).all() and np.isfinite(Hn).all()):
            if fell_back:
                return theta, False, it, fell_back
            theta, fell_back = _lbfgs(f, theta, 200), True
            fx = value(theta)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = analyse_curvature(Hn, labels, singular_tol)
        if c.negative:
            step, ratio = _descent_step(Hn, gn, singular_tol), math.inf
        else:
            step = -c.pinv @ gn
            ok = c.identifiable
            ratio = float(np.max(np.abs(step[ok]) / np.sqrt(np.diag(c.pinv)[ok]))) if ok.any() else 0.0
        slope = float(gn @ step)
        d = torch.as_tensor(step, dtype=theta.dtype, device=theta.device)
        if ratio <= tol:
            new = value(theta + d)
            if math.isfinite(new) and new <= fx:
                theta = theta + d
            return theta, True, it, fell_back
        alpha, accepted = 1.0, False
        while alpha >= MIN_STEP:
            new = value(theta + alpha * d)
            if math.isfinite(new) and new <= fx + ARMIJO * alpha * slope:
                theta, fx, accepted = theta + alpha * d, new, True
                break
            alpha /= 2
        if not accepted:
            if ratio < 1e-5:
                # the objective cannot be lowered in floating point any more: as close as this nll allows
                return theta, True, it, fell_back
            if fell_back:
                return theta, False, it, fell_back
            theta, fell_back = _lbfgs(f, theta, 200), True
            fx = value(theta)
    return theta, False, maxit, fell_back


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
    except RuntimeError:
        return theta
    out = x.detach()
    with torch.no_grad():
        if not torch.isfinite(f(out)) or float(f(out)) > float(f(theta)):
            return theta
    return out
