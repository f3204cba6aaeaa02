"""Profile-likelihood intervals for tl.mle, as R's stats4 computes them (profile and confint of an mle fit).

Each parameter is held at B0 +/- step * del * SE for step = 1, 2, ... (del = zmax / 5, zmax =
sqrt(qchisq(1 - alpha, 1))), the others refitted, until the signed root of the likelihood ratio,
z = sign * sqrt(2 (nll_profile - nll_min)), passes zmax, the refit fails or a bound is crossed; where a
side stops short of zmax, fractional steps are tried, and fewer than five points get half steps, as stats4
does. The interval is where R's interpolating spline of z against the parameter crosses the normal quantiles.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import FitError, OptionError, TorchlmError, silenced
from torchlm.inference.profile import spline_intervals

if TYPE_CHECKING:
    from torchlm.results.likelihood import Likelihood


def _likelihood(est: Any) -> Likelihood:
    lik = est._likelihood
    if lik is None or lik.refit is None:
        raise OptionError("profile intervals refit the likelihood with a parameter held fixed: they are available "
                          "for tl.mle results (use the Wald intervals, method='wald', for tl.infer)")
    return lik


def profile_mle(est: Any, which: list[str] | None = None, alpha: float = 0.01, maxsteps: int = 100,
                step: float | None = None) -> dict[str, pd.DataFrame]:
    """stats4's profile of an mle fit (see the module).

    Returns
    -------
    dict name -> DataFrame with "z" and the parameters' values, sorted by the profiled parameter.
    """
    lik = _likelihood(est)
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise OptionError(f"alpha must be between 0 and 1, not {alpha!r}")
    if not (isinstance(maxsteps, int) and maxsteps >= 2):
        raise OptionError(f"maxsteps must be a whole number of at least 2, not {maxsteps!r}")
    zmax = math.sqrt(stats.chi2.ppf(1 - alpha, 1))
    delta = zmax / 5 if step is None else float(step)
    if not delta > 0:
        raise OptionError(f"step must be a positive number of standard errors, not {step!r}")
    names = list(est.names)
    which = list(est.estimable) if which is None else [w for w in which if w in est.estimable]
    b0, se = est.coef().to_numpy(), est.std_errors().to_numpy()
    minimum = -est.loglik()
    free_idx = np.flatnonzero(lik.free)
    out = {}
    with silenced():  # the refits are part of the profile: their warnings are not the user's
        for name in which:
            i = names.index(name)
            prof = _Profile(lik, free_idx, i, b0, se[i] * delta, minimum)
            for sgn in (-1.0, 1.0):
                prof.side(sgn, zmax, maxsteps)
            order = np.argsort(np.asarray(prof.values)[:, i], kind="stable")
            vals = np.asarray(prof.values)[order]
            tab = pd.DataFrame(vals, columns=names)
            tab.insert(0, "z", np.asarray(prof.z)[order])
            out[name] = tab
    return out


class _Profile:
    """The grid points of one parameter's profile: z and the parameters' values at each (stats4's zi and pvi)."""

    def __init__(self, lik: Likelihood, free_idx: np.ndarray, i: int, b0: np.ndarray, unit: float,
                 minimum: float) -> None:
        self.lik, self.free_idx, self.i, self.b0, self.unit, self.minimum = lik, free_idx, i, b0, unit, minimum
        self.z: list[float] = [0.0]
        self.values: list[np.ndarray] = [b0.copy()]
        self.start = lik.theta

    def onestep(self, sgn: float, step: float) -> float:
        """stats4's onestep: the refit with the parameter at B0 + sgn * step * del * SE; NaN when it fails."""
        lik, j = self.lik, int(self.free_idx[self.i])
        bi = float(self.b0[self.i] + sgn * step * self.unit)
        lo = -math.inf if lik.lower is None else lik.lower[j]
        hi = math.inf if lik.upper is None else lik.upper[j]
        if not lo <= bi <= hi:  # stats4: "fixed values violate constraints", an error, so NA
            return math.nan
        start = self.start.clone()
        start[j] = bi
        free = lik.free.copy()
        free[j] = False
        assert lik.refit is not None  # checked by _likelihood
        try:
            value, theta = lik.refit(free, start)
        except TorchlmError:
            return math.nan
        except Exception:  # the nll rejects the point (outside its support): R's tryCatch gives NA
            return math.nan
        zz = 2 * (value - self.minimum)
        if not math.isfinite(zz):
            return math.nan
        if zz <= -0.001:
            raise FitError("profiling has found a better solution, so original fit had not converged")
        z = sgn * math.sqrt(max(zz, 0.0))
        self.start = theta
        self.values.append(theta.detach().cpu().numpy()[self.free_idx])
        self.z.append(z)
        return z

    def side(self, sgn: float, zmax: float, maxsteps: int) -> None:
        """One direction of stats4's loop: whole steps to zmax, then fractional or half steps (see the module)."""
        self.start = self.lik.theta
        step, z, lastz = 0.0, 0.0, 0.0
        while True:
            step += 1
            if not (step < maxsteps and abs(z) < zmax):
                break
            z = self.onestep(sgn, step)
            if math.isnan(z):
                break
            lastz = z
        if abs(lastz) < zmax:
            # came up short: try a bit harder
            for dstep in (0.2, 0.4, 0.6, 0.8, 0.9):
                z = self.onestep(sgn, step - 1 + dstep)
                if math.isnan(z) or abs(z) > zmax:
                    break
        elif len(self.z) < 5:  # few points: finer steps
            mxstep, step = step - 1, 0.5
            while True:
                step += 1
                if not step < mxstep:
                    break
                self.onestep(sgn, step)


def confint_profile_mle(est: Any, level: float, parm: list[str]) -> pd.DataFrame:
    """stats4's confint of an mle fit: where the spline through each profile crosses qnorm((1 -/+ level) / 2).

    Returns
    -------
    pandas.DataFrame, one row per name in parm, R's column labels; NaN where the profile does not reach.
    """
    # stats4 always profiles to alpha = 0.01 (confint's alpha does not reach profile), which covers level <= 0.99
    alpha = 0.01 if level <= 0.99 else (1 - level) / 4
    prof = profile_mle(est, [p for p in parm if p in est.estimable], alpha=alpha)
    return spline_intervals({name: (tab[name].to_numpy(), tab["z"].to_numpy()) for name, tab in prof.items()},
                            parm, level)

