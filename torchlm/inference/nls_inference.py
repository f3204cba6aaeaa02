"""Inference for nls fits: R's profile.nls, MASS's confint.nls (profile intervals) and anova.nls (F tests).

The profile is R's step for step: from the estimate, the parameter is moved by delta.t standard errors
(MASS's grid, extrapolated from the last two points), the others refitted with R's Gauss-Newton (or the
bounded iteration of a port fit) from there, until tau = sign * sqrt((S - S.hat) / s^2) passes the cutoff.
The interval is where R's interpolating spline through (parameter, tau) crosses qt(a, n - p), with R's
spline and approx (torchlm.inference.profile).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from torchlm.errors import OptionError, warn
from torchlm.inference.profile import r_approx, r_spline
from torchlm.inference.tables import AnovaTable, anova_table
from torchlm.present.deparse import deparse
from torchlm.solvers.levenberg import bounded_least_squares
from torchlm.solvers.nonlinear_ls import evaluate_point, gauss_newton

# a tl.nls fit (torchlm.results.nls.NonlinearModelResult, which imports this module)
NonlinearModelResult = Any


def is_nls(fit: Any) -> bool:
    """Whether ``fit`` is a tl.nls fit (for tl.anova's dispatch).

    Returns
    -------
    bool
    """
    return hasattr(fit, "outcome") and hasattr(fit, "r_formula")


def _all_equal(a: np.ndarray, b: np.ndarray) -> bool:
    # R's isTRUE(all.equal(a, b)): mean relative difference below 1.5e-8
    scale = float(np.abs(a).mean())
    diff = float(np.abs(a - b).mean())
    return (diff / scale if scale > 0 else diff) < 1.5e-8


class _Profiler:
    """R's profiler.nls: the fit refitted with one parameter held, from a given point."""

    def __init__(self, fit: NonlinearModelResult) -> None:
        self.fit = fit
        self.model = fit.model
        self.x = fit.outcome.point.x
        self.p = self.x.numel()
        self.s_hat, self.s2_hat = fit.deviance, fit.sigma**2
        self.ctrl = fit.control

    def refit(self, pars: np.ndarray, held: int) -> tuple[float, np.ndarray]:
        """(fstat, parameters) with parameter ``held`` fixed at pars[held] and the others refitted from pars.

        Returns
        -------
        tuple of (float, numpy.ndarray)
            fstat is NaN where the refit does not converge (R's profile then stops on that side).
        """
        x = self.x
        full = torch.as_tensor(pars, dtype=x.dtype, device=x.device)
        vary = [j for j in range(self.p) if j != held]
        S = torch.eye(self.p, dtype=x.dtype, device=x.device)[:, vary]
        base = full * (1 - S.sum(dim=1))
        fn = lambda z: self.model.residual(base + S @ z)  # noqa: E731  (autograd differentiates it)
        z0 = full[vary]
        pt = evaluate_point(fn, z0)
        if pt is None or pt.singular:
            return math.nan, pars
        if self.fit.algorithm == "port":
            lo = np.full(self.p, -math.inf) if self.fit.lower is None else self.fit.lower
            hi = np.full(self.p, math.inf) if self.fit.upper is None else self.fit.upper
            out = bounded_least_squares(fn, pt, self.ctrl, lo[vary], hi[vary])
        else:
            out = gauss_newton(fn, pt, self.ctrl)
        if not out.converged and not self.ctrl.warn_only:
            return math.nan, pars
        new = pars.copy()
        new[vary] = out.point.x.detach().cpu().numpy()
        return (out.point.rss - self.s_hat) / self.s2_hat, new


def _one_side(prof: _Profiler, par: int, sgn: float, tau: list[float], vals: list[np.ndarray], start: np.ndarray,
              limits: tuple[np.ndarray, np.ndarray], se: float, cutoff: float, delta_t: float, newmax: int) -> None:
    """One side of R's profile loop, appending to ``tau`` and ``vals``."""
    lower, upper = limits
    base = float(prof.x[par])
    pars = start.copy()
    pars[par] = min(upper[par], max(lower[par], base + sgn * delta_t * se))
    while len(tau) <= newmax:
        if (math.isnan(pars[par]) or _all_equal(pars, vals[0]) or pars[par] < lower[par] or pars[par] > upper[par]
                or abs(pars[par] - base) / se > 10 * cutoff):
            break
        fstat, new = prof.refit(pars, par)
        if math.isnan(fstat) or fstat < 0:
            break
        newtau = sgn * math.sqrt(fstat)
        if abs(newtau - tau[-1]) < 0.1:
            break
        tau.append(newtau)
        vals.append(new)
        pars = new
        if abs(newtau) > cutoff:
            break
        pars = pars + (pars - vals[-2]) * delta_t / abs(tau[-1] - tau[-2])
        rest = np.arange(len(pars)) != par
        pars[rest] = np.minimum(upper[rest], np.maximum(lower[rest], pars[rest]))


def profile_nls(fit: NonlinearModelResult, which: list[str], alphamax: float = 0.01, maxpts: int = 100,
                delta_t: float | None = None) -> dict[str, pd.DataFrame]:
    """R's profile.nls.

    Parameters
    ----------
    fit : NonlinearModelResult
    which : parameter names.
    alphamax : the cutoff is sqrt(qf(1 - alphamax, 1, n - p)).
    maxpts : the most points on each side.
    delta_t : the step in tau (default cutoff / 5).

    Returns
    -------
    dict of str to pandas.DataFrame
        {name: DataFrame with "tau" and the parameters' values, in increasing tau}.
    """
    names = fit.names
    prof = _Profiler(fit)
    se = fit.std_errors().to_numpy()
    nobs, npar = fit.model.n, prof.p
    if nobs - npar <= 0:
        raise OptionError("profiling needs residual degrees of freedom (n > p)")
    cutoff = math.sqrt(stats.f.ppf(1 - alphamax, 1, nobs - npar))
    delta_t = cutoff / 5 if delta_t is None else delta_t
    limits = (np.full(npar, -math.inf) if fit.lower is None else fit.lower,
              np.full(npar, math.inf) if fit.upper is None else fit.upper)
    pars0 = fit.coef().to_numpy()
    out = {}
    for name in which:
        par = names.index(name)
        tau, vals = [0.0], [pars0.copy()]
        _one_side(prof, par, -1.0, tau, vals, pars0, limits, float(se[par]), cutoff, delta_t, maxpts)
        tau, vals = tau[::-1], vals[::-1]
        _one_side(prof, par, 1.0, tau, vals, vals[-1], limits, float(se[par]), cutoff, delta_t, len(tau) + maxpts)
        frame = pd.DataFrame(np.array(vals), columns=names)
        frame.insert(0, "tau", tau)
        out[name] = frame
    return out


def _r_percent(a: float) -> str:
    # MASS: paste(round(100 * a, 1), "%", sep = "")
    v = round(100 * a, 1)
    return f"{v:.15g}%"


def confint_nls(fit: NonlinearModelResult, level: float, parm: list[str]) -> pd.DataFrame:
    """MASS's confint.nls: profile, then where R's spline through (parameter, tau) crosses qt(a, n - p).

    Returns
    -------
    pandas.DataFrame
        One row per parameter, MASS's column names ("2.5%", "97.5%").
    """
    prof = profile_nls(fit, parm, alphamax=(1 - level) / 4)
    a = (1 - level) / 2
    n = fit.model.n - len(fit.names)
    cutoff = stats.t.ppf([a, 1 - a], n)
    ci = np.full((len(parm), 2), np.nan)
    for k, name in enumerate(parm):
        pro = prof[name]
        if len(pro) < 2:
            continue
        sx, sy = r_spline(pro[name].to_numpy(), pro["tau"].to_numpy())
        ci[k] = r_approx(sy, sx, cutoff)
    return pd.DataFrame(ci, index=parm, columns=[_r_percent(a), _r_percent(1 - a)])


def anova_nls(*fits: Any) -> AnovaTable:
    """R's anova.nls (anovalist.nls): the F test of nested nonlinear fits, in the order given.

    Returns
    -------
    AnovaTable
        Columns Res.Df, Res.Sum Sq, Df, Sum Sq, F value, Pr(>F); R's heading.
    """
    responses = [deparse(f.model.lhs) if f.model.lhs is not None else "" for f in fits]
    keep = [f for f, r in zip(fits, responses) if r == responses[0]]
    if len(keep) < len(fits):
        dropped = [f'"{r}"' for r in responses if r != responses[0]]
        shown = dropped[0] if len(dropped) == 1 else f"c({', '.join(dropped)})"
        warn(f"models with response \u2018{shown}\u2019 removed because response differs from model 1", stacklevel=3)
    if len(keep) < 2:
        raise OptionError("'anova' is only defined for sequences of \"nls\" objects: give two or more fits")
    dfr = np.array([f.df_residual for f in keep], dtype=float)
    ssr = np.array([f.deviance for f in keep], dtype=float)
    df = np.r_[np.nan, -np.diff(dfr)]
    ss = np.r_[np.nan, -np.diff(ssr)]
    f = np.full(len(keep), np.nan)
    pv = np.full(len(keep), np.nan)
    for i in range(1, len(keep)):
        if df[i] > 0:
            f[i] = ss[i] / df[i] / (ssr[i] / dfr[i])
            pv[i] = stats.f.sf(f[i], df[i], dfr[i])
        elif df[i] < 0:
            f[i] = ss[i] / df[i] / (ssr[i - 1] / dfr[i - 1])
            pv[i] = stats.f.sf(f[i], -df[i], dfr[i - 1])
        else:
            ss[i] = 0.0
    tab = pd.DataFrame({"Res.Df": dfr, "Res.Sum Sq": ssr, "Df": df, "Sum Sq": ss, "F value": f, "Pr(>F)": pv},
                       index=[str(i + 1) for i in range(len(keep))])
    w = len(str(len(keep)))
    lines = [f"Model {str(i + 1).rjust(w)}: {k.r_formula()}" for i, k in enumerate(keep)]
    return anova_table(tab, "Analysis of Variance Table\n\n" + "\n".join(lines))
