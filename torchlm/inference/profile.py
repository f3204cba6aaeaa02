"""Profile-likelihood confidence intervals for GLMs, as R's confint(glm) computes them (MASS's profile.glm).

For each coefficient the deviance is profiled on MASS's grid: the coefficient is fixed at
estimate +/- step * (zmax / 5) * SE for step = 1..9 (until the signed root of the deviance change
passes zmax), the other coefficients refitted with it as an offset. The interval is where R's
interpolating spline (method "fmm") through the signed roots crosses qnorm(a); R's spline and
approx are reproduced exactly, so the intervals are R's, not a finer root of the profile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import FitError, OptionError, silenced
from torchlm.results.base import confint_labels
from torchlm.solvers.irls import GLMPasses, irls
from torchlm.sources.row_blocks import DesignSource

if TYPE_CHECKING:
    from torchlm.results.protocols import GeneralizedFit


def profile(fit: GeneralizedFit, which: list[str] | None = None, alpha: float = 0.01,
            maxsteps: int = 10) -> dict[str, pd.DataFrame]:
    """MASS's profile.glm: for each coefficient, the signed root statistic at the profiled values.

    Parameters
    ----------
    fit : ModelResult
        A fitted glm (GeneralizedLinearModelResult).
    which : list of str or None
        Coefficient names (default all estimable ones); aliased ones are skipped, as R skips them.
    alpha : float
        The grid reaches a statistic of sqrt(qchisq(1 - alpha, 1)) (z) or sqrt(qf(1 - alpha, 1, n - p)) (tau).
    maxsteps : int
        At most maxsteps - 1 grid points on each side of the estimate (MASS's maxsteps).

    Returns
    -------
    dict of str to pandas.DataFrame
        {name: DataFrame with columns "z" (or "tau") and "value", sorted by the statistic}.
    """
    source = DesignSource(fit.design)

    def refit(i: int, others: list[int], bi: float, lp: Any) -> tuple[float, Any]:
        # the profiled coefficient held at bi (its column enters the offset), the others refitted
        passes = GLMPasses(source, fit._y, fit._w, fit._offset, fit.family, columns=others, fixed={i: bi})
        with silenced():  # R's glm.fit warnings at the far grid points
            sub = irls(passes, mustart=fit.family.link.linkinv(lp), control=fit.control, tol=fit.tol)
        return sub.deviance, sub.eta

    return profile_walks(fit, which, alpha, maxsteps, len(fit._y), refit, fit._fit.eta)


def profile_walks(fit: Any, which: list[str] | None, alpha: float, maxsteps: int, n: int,
                  refit: Callable[[int, list[int], float, Any], tuple[float, Any]], start: Any,
                  run: Callable[[list[Callable[[], Any]]], list[Any]] | None = None) -> dict[str, pd.DataFrame]:
    """MASS's profile.glm's walk along each coefficient's grid, given how to refit with one coefficient fixed.

    Parameters
    ----------
    fit : a fitted glm (in memory or on Dask): its names, estimates, standard errors, deviance, dispersion.
    which, alpha, maxsteps : as :func:`profile`'s.
    n : int
        The rows of the model (the tau statistic's residual degrees of freedom are n - p).
    refit : callable
        ``refit(i, others, bi, previous)``: glm.fit on columns ``others`` with coefficient ``i`` held at ``bi``,
        started where the previous refit (``previous``) ended; gives (deviance, where it ended).
    start : where the first refit of each side starts (the fit's own linear predictor).
    run : callable
        Runs the walks (one per coefficient and side, independent) and gives their results in order (None:
        one by one); a Dask fit's share their passes over the partitions.

    Returns
    -------
    dict of str to pandas.DataFrame
        As :func:`profile`'s.
    """
    names = list(fit.names)
    which = list(fit.estimable) if which is None else list(which)
    unknown = [w for w in which if w not in names]
    if unknown:
        raise OptionError(f"unknown coefficient(s) {unknown}; the model has {names}")
    b0 = fit.coef()
    se = fit.std_errors()
    est = [j for j, nm in enumerate(names) if not np.isnan(b0.iloc[j])]
    p = len(names)
    if fit.family.profile_statistic == "z":
        zmax, stat = math.sqrt(stats.chi2.ppf(1 - alpha, 1)), "z"
    else:
        zmax, stat = math.sqrt(stats.f.ppf(1 - alpha, 1, n - p)), "tau"
    delta = zmax / 5
    dev0, disp = fit.deviance, fit.dispersion

    def walk(i: int, sgn: int) -> tuple[list[float], list[float]]:
        others = [j for j in est if j != i]
        zs: list[float] = []
        values: list[float] = []
        step, z = 0, 0.0
        previous = start
        while (step := step + 1) < maxsteps and abs(z) < zmax:
            bi = float(b0.iloc[i]) + sgn * step * delta * float(se.iloc[i])
            deviance, previous = refit(i, others, bi, previous)
            zz = (deviance - dev0) / disp
            if zz < -1e-3:
                raise FitError(f"profiling {names[i]!r} found a better fit than the estimate: "
                               f"the fit had not converged")
            z = sgn * math.sqrt(max(zz, 0.0))
            zs.append(z)
            values.append(bi)
        return zs, values

    profiled = [names.index(name) for name in which if names.index(name) in est]  # aliased: R skips them
    sides = [(i, sgn) for i in profiled for sgn in (-1, 1)]
    walks: list[Callable[[], Any]] = [functools.partial(walk, i, sgn) for i, sgn in sides]
    walked = [w() for w in walks] if run is None else run(walks)
    out = {}
    for k, i in enumerate(profiled):
        (zl, vl), (zu, vu) = walked[2 * k], walked[2 * k + 1]
        zs, values = [0.0, *zl, *zu], [float(b0.iloc[i]), *vl, *vu]
        order = np.argsort(zs, kind="stable")
        out[names[i]] = pd.DataFrame({stat: np.asarray(zs)[order], "value": np.asarray(values)[order]})
    return out


def confint_profile(fit: GeneralizedFit, level: float = 0.95, parm: list[str] | None = None,
                    profiler: Callable[..., dict[str, pd.DataFrame]] = profile) -> pd.DataFrame:
    """R's confint(glm) (MASS's confint.glm): profile-likelihood intervals; aliased coefficients NaN.

    Parameters
    ----------
    fit : ModelResult
        A fitted glm (GeneralizedLinearModelResult).
    level : float
        Confidence level.
    parm : list of str or None
        Coefficient names (default all).
    profiler : callable
        ``profiler(fit, which, alpha=)``: the profiles (:func:`profile`; a Dask fit's refits over its partitions).

    Returns
    -------
    pandas.DataFrame
        One row per name in ``parm``, columns R's labels ('2.5 %', '97.5 %'); NaN where the spline
        through the profile does not reach the cut-off.
    """

    names = list(fit.names)
    parm = names if parm is None else list(parm)
    fit._quantile(level)  # the level checked before any refit
    prof = profiler(fit, [p for p in parm if p in fit.estimable], alpha=(1 - level) / 4)
    curves = {name: (pro["value"].to_numpy(), pro.iloc[:, 0].to_numpy()) for name, pro in prof.items()}
    return spline_intervals(curves, parm, level)


def spline_intervals(curves: dict[str, tuple[np.ndarray, np.ndarray]], parm: list[str], level: float) -> pd.DataFrame:
    """Where the spline through each profile (value, signed root) crosses qnorm((1 -/+ level) / 2), as MASS and stats4.

    Parameters
    ----------
    curves : {name: (parameter values, signed root statistics)} of the profiled parameters.
    parm : the names to report, in order; those without a curve (or with fewer than 2 points) are NaN.
    level : the coverage.

    Returns
    -------
    pandas.DataFrame
        One row per name in ``parm``, R's column labels.
    """
    a = (1 - level) / 2
    cutoff = stats.norm.ppf([a, 1 - a])
    ci = np.full((len(parm), 2), np.nan)
    for k, name in enumerate(parm):
        if name not in curves or len(curves[name][0]) < 2:
            continue
        sx, sy = r_spline(*curves[name])
        ci[k] = r_approx(sy, sx, cutoff)
    return pd.DataFrame(ci, index=parm, columns=confint_labels(level))


# --- R's spline(method = "fmm") and approx(), as MASS's confint.profile.glm calls them -------------

def _regularize(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R's regularize.values(x, y, ties = mean): sorted by x, the y of tied x averaged."""
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    ux, inv = np.unique(x, return_inverse=True)
    if len(ux) == len(x):
        return x, y
    return ux, np.bincount(inv, weights=y) / np.bincount(inv)


def _fmm_coef(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R's fmm_spline (Forsythe, Malcolm and Moler): cubic coefficients b, c, d at the knots."""
    n = len(x)
    b, c, d = np.zeros(n), np.zeros(n), np.zeros(n)
    if n < 2:
        raise FitError("a spline needs at least two distinct points")
    if n < 3:
        b[:] = (y[1] - y[0]) / (x[1] - x[0])
        return b, c, d
    # 0-based transcription of R's splines.c (which indexes from 1)
    d[0] = x[1] - x[0]
    c[1] = (y[1] - y[0]) / d[0]
    for i in range(1, n - 1):
        d[i] = x[i + 1] - x[i]
        b[i] = 2.0 * (d[i - 1] + d[i])
        c[i + 1] = (y[i + 1] - y[i]) / d[i]
        c[i] = c[i + 1] - c[i]
    b[0] = -d[0]
    b[n - 1] = -d[n - 2]
    c[0] = c[n - 1] = 0.0
    if n > 3:
        c[0] = c[2] / (x[3] - x[1]) - c[1] / (x[2] - x[0])
        c[n - 1] = c[n - 2] / (x[n - 1] - x[n - 3]) - c[n - 3] / (x[n - 2] - x[n - 4])
        c[0] = c[0] * d[0] * d[0] / (x[3] - x[0])
        c[n - 1] = -c[n - 1] * d[n - 2] * d[n - 2] / (x[n - 1] - x[n - 4])
    for i in range(1, n):
        t = d[i - 1] / b[i - 1]
        b[i] = b[i] - t * d[i - 1]
        c[i] = c[i] - t * c[i - 1]
    c[n - 1] = c[n - 1] / b[n - 1]
    for i in range(n - 2, -1, -1):
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i]
    b[n - 1] = (y[n - 1] - y[n - 2]) / d[n - 2] + d[n - 2] * (c[n - 2] + 2.0 * c[n - 1])
    for i in range(n - 1):
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i])
        d[i] = (c[i + 1] - c[i]) / d[i]
        c[i] = 3.0 * c[i]
    c[n - 1] = 3.0 * c[n - 1]
    d[n - 1] = d[n - 2]
    return b, c, d


def r_spline(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R's spline(x, y) with its defaults: method "fmm", n = 3 * (distinct x) points over [min x, max x].

    Parameters
    ----------
    x, y : sequence of float or numpy.ndarray
        The points; pairs with a NaN are dropped and the y of tied x averaged (R's regularize.values).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        The n evaluation points (R's seq(min x, max x, length.out = n)) and the spline's values there.
    """
    x, y = _regularize(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    b, c, d = _fmm_coef(x, y)
    u = _seq(x[0], x[-1], 3 * len(x))
    v = np.empty_like(u)
    i = 0
    for k, ul in enumerate(u):
        if ul < x[i] or (i < len(x) - 1 and x[i + 1] < ul):
            i, j = 0, len(x)
            while j > i + 1:
                m = (i + j) // 2
                if ul < x[m]:
                    j = m
                else:
                    i = m
        dx = ul - x[i]
        v[k] = y[i] + dx * (b[i] + dx * (c[i] + dx * d[i]))
    return u, v


def _seq(a: float, b: float, n: int) -> np.ndarray:
    """R's seq.int(a, b, length.out = n): filled from both ends (not numpy's linspace rounding)."""
    out = np.empty(n)
    out[0] = a
    if n > 1:
        out[-1] = b
    by = (b - a) / (n - 1) if n > 1 else 0.0
    for i in range(1, n - 1):
        out[i] = a + i * by if i < n // 2 else b - (n - 1 - i) * by
    return out


def r_approx(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
             xout: Sequence[float] | np.ndarray) -> np.ndarray:
    """R's approx(x, y, xout): linear interpolation after regularize.values(ties = mean); NaN outside (rule 1).

    Parameters
    ----------
    x, y : sequence of float or numpy.ndarray
        The points; pairs with a NaN are dropped and the y of tied x averaged.
    xout : sequence of float or numpy.ndarray
        Where to interpolate.

    Returns
    -------
    numpy.ndarray
        (len(xout),) interpolated values, NaN outside [min x, max x].
    """
    x, y = _regularize(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    out = np.full(len(xout), np.nan)
    for k, v in enumerate(np.atleast_1d(xout)):
        if len(x) == 0 or v < x[0] or v > x[-1]:
            continue
        j = int(np.searchsorted(x, v, side="left"))
        if x[j] == v:
            out[k] = y[j]
            continue
        i = j - 1
        out[k] = y[i] + (y[j] - y[i]) * ((v - x[i]) / (x[j] - x[i]))
    return out
