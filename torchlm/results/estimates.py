"""Estimates with an inverse-Hessian covariance (from tl.infer and tl.mle): the shared result, its R-style summary,
and the curvature checks behind it (named singular directions, negative curvature, distance to the optimum)."""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
import sys
from types import FrameType
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from torchlm.errors import (
    DataError,
    ModelInputError,
    NotAtMinimumError,
    OptimumWarning,
    OptionError,
    SingularHessianWarning,
    warn,
)
from torchlm.present import rformat as rf
from torchlm.results.base import ModelResult
from torchlm.results.broom import EstimatesBroom
from torchlm.results.curvature import Curvature, _combination, analyse_curvature, summed_hessian
from torchlm.results.likelihood import Likelihood

__all__ = ["Estimates", "EstimatesSummary", "Curvature", "analyse_curvature", "summed_hessian", "element_names",
           "name_list", "positive_number", "user_stacklevel", "NotAtMinimumError", "OptimumWarning",
           "SingularHessianWarning"]

DIGITS = 4  # R: max(3, getOption("digits") - 3)


def user_stacklevel() -> int:
    """warnings.warn's stacklevel that points at the first caller outside torchlm.

    Returns
    -------
    int
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the torchlm package
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    return level


def positive_number(name: str, value: Any, whole: bool = False) -> None:
    """ModelInputError naming the option unless value is a positive finite number (an integer where ``whole``).

    Returns
    -------
    None
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and float(value) > 0
    if whole:
        ok = ok and isinstance(value, numbers.Integral)
    if not ok:
        raise ModelInputError(f"{name} must be a positive {'whole number' if whole else 'number'}, not {value!r}")


# --- parameter names ------------------------------------------------------------------------
def element_names(name: str, shape: tuple[int, ...] | torch.Size, labels: list[str] | None = None) -> list[str]:
    """Names of a parameter's elements: the name itself for one element, else name[i,j] in row-major order
    (0-based, as the tensor is indexed), or name[label] with the labels of a vector (a pandas Series' index).

    Returns
    -------
    list of str
    """
    shape = tuple(shape)
    n = math.prod(shape)
    if n == 1:
        return [name]
    if labels is not None and len(labels) == n:
        return [f"{name}[{lab}]" for lab in labels]
    return [f"{name}[{','.join(str(i) for i in idx)}]" for idx in np.ndindex(*shape)]


def name_list(names: list[str], most: int = 8) -> str:
    """'a, b, c' with at most `most` names, then 'and N more'.

    Returns
    -------
    str
    """
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# --- the result -----------------------------------------------------------------------------
class Estimates(ModelResult, EstimatesBroom):
    """Parameter estimates with covariance from the Hessian of a summed objective (tl.infer, tl.mle).

    vcov = scale * H^-1, H the Hessian of the summed objective at the estimate: scale is 1 for a negative
    log-likelihood, dispersion / (the objective's multiple of the unit-dispersion nll) otherwise.
    Methods follow R: coef(), vcov(), std_errors(), confint(), summary(), loglik(), aic(), bic(), hessian().

    Attributes: names, nobs, df_residual, dispersion, sigma, converged, iterations, method,
    at_optimum, newton_step (distance to the optimum in standard errors), gradient, call.
    coef/vcov/std_errors/confint/coef_table/wald_test come from ModelResult; the robust types are
    HC0 and HC1 (and clusters), from the per-observation gradients.

    Examples
    --------
    >>> d = tl.datasets.load("InsectSprays")
    >>> est = tl.mle(lambda p, d: -torch.distributions.Poisson(p["rate"]).log_prob(d["count"]), {"rate": 5.0}, d)
    >>> est.summary().coefficients.round(4)
          Estimate  Std. Error  z value  Pr(>|z|)
    rate       9.5      0.3632  26.1534       0.0
    >>> est.confint(method="profile").round(4)
           2.5 %   97.5 %
    rate  8.8057  10.2299
    >>> [round(v, 4) for v in (est.loglik(), est.aic(), est.bic(), est.loglik_at({"rate": 9.0}))]
    [-337.6509, 677.3017, 679.5784, -338.6328]
    >>> pd.concat([est.full_coef(), est.score_at({"rate": 9.0}), est.hessian()["rate"]], axis=1).round(4)
          Estimate  score    rate
    rate       9.5    4.0  7.5789
    >>> est.delta(lambda p: p["rate"] ** 2)[["Estimate", "Std. Error"]].round(4)
           Estimate  Std. Error
    value     90.25      6.9016
    >>> est.profile()["rate"].head(2).round(4)
            z    rate
    0 -2.6656  8.5644
    1 -2.1174  8.7515
    """

    robust_types = ("HC0", "HC1")
    robust_hint = " (HC2/HC3 need hat values, which tl.lm and tl.glm have)"

    def __init__(self, *, names, estimate, hessian, gradient, scale: float, statistic: str,
                 call: str, nobs: int | None = None, df_residual: int | None = None,
                 dispersion: float = 1.0, dispersion_note: str | None = None, sigma: float | None = None,
                 loglik: float | None = None, df_loglik: int | None = None, loglik_note: str | None = None,
                 scores: Callable[[], torch.Tensor] | None = None, method: str = "",
                 converged: bool = True, iterations: int | None = None, optimum_tol: float = 1e-3,
                 singular_tol: float = 1e-10, on_negative: str = "raise", header: str | None = None,
                 curvature: Curvature | None = None, likelihood: Likelihood | None = None,
                 active: np.ndarray | None = None, newton_step: np.ndarray | None = None,
                 projected_scores: bool = False, n_estimated: int | None = None, covariance_note: str | None = None,
                 advice: str = "train further (torch.optim.LBFGS converges fast on these objectives) and call again"):
        self._names = tuple(names)
        self._est = np.asarray(estimate, dtype=float)
        self._H = np.asarray(hessian, dtype=float)
        self.gradient = pd.Series(np.asarray(gradient, dtype=float), index=self.names, name="gradient")
        self._scale = float(scale)
        self.statistic = statistic
        self.call = call
        self.header = header
        self.nobs = nobs
        self.df_residual = df_residual
        self.dispersion = dispersion
        self.dispersion_note = dispersion_note
        self.sigma = sigma
        self._loglik, self.df_loglik, self._loglik_note = loglik, df_loglik, loglik_note
        self._scores_fn = scores
        self._scores: torch.Tensor | None = None
        self.method, self.converged, self.iterations = method, converged, iterations
        self._likelihood = likelihood
        # parameters held at a bound with the gradient pushing outwards: their gradient is no distance to the optimum
        self._active = np.zeros(len(self._names), bool) if active is None else np.asarray(active, dtype=bool)
        # a subset reported with the other parameters estimated too (tl.infer): the Newton step of the whole fit,
        # scores already multiplied by the inverse Hessian's columns, the count of all estimated parameters
        self._newton, self._projected, self._n_estimated = newton_step, projected_scores, n_estimated
        self.covariance_note = covariance_note
        self.matrix_free: Any = None  # tl.infer(hessian="matrix_free"): the MatrixFreeCovariance of all parameters
        self.curvature = curvature or analyse_curvature(self._H, self.names, singular_tol)
        self._check(optimum_tol, on_negative, advice)

    def _check(self, optimum_tol: float, on_negative: str, advice: str):
        c = self.curvature
        if c.negative:
            msg = (f"the Hessian has negative curvature (smallest eigenvalue {c.min_eigen:.3g} on the unit-diagonal "
                   f"scale) along directions involving {name_list(c.negative)}: the parameters are at a saddle "
                   "point or maximum, not a minimum, and have no standard errors there")
            if on_negative == "raise":
                raise NotAtMinimumError(msg + "; train further (or from another start) and check the loss")
            warn(msg, OptimumWarning, stacklevel=user_stacklevel())
            self.converged = False
        slope = self._flat_slope(optimum_tol)
        if c.flat:
            bad = [n for n, ok in zip(self.names, c.identifiable) if not ok and n not in c.negative]
            warn(
                f"the Hessian is singular: {name_list(bad)} {'is' if len(bad) == 1 else 'are'} not identifiable "
                f"(the objective is flat along {'; '.join(c.flat)}); their standard errors are NaN",
                SingularHessianWarning, stacklevel=user_stacklevel())
        ok = self.curvature.identifiable
        step = np.full(len(self.names), np.nan)
        if ok.any():
            delta = c.pinv @ self._free_gradient() if self._newton is None else np.asarray(self._newton)
            se = np.sqrt(self._scale * np.diag(c.pinv))
            with np.errstate(invalid="ignore", divide="ignore"):
                step[ok] = np.abs(delta[ok]) / se[ok]
        self.newton_step = pd.Series(step, index=self.names, name="newton_step")
        worst = float(np.nanmax(step)) if ok.any() else 0.0
        self.at_optimum = bool(worst <= optimum_tol) and not c.negative and slope is None
        if slope is not None:
            warn(
                f"the objective has no curvature but a slope ({slope[1]:.3g} per unit on the unit-diagonal scale) "
                f"along {slope[0]}: it has no minimum there, it keeps decreasing in that direction, so the "
                "estimates are not at an optimum", OptimumWarning, stacklevel=user_stacklevel())
        if not c.negative and worst > optimum_tol:
            top = self.newton_step.idxmax()
            warn(
                f"the estimates are not at an optimum: the gradient is not ~0 ({top} is {worst:.3g} standard errors "
                f"from where one Newton step puts it; tolerance {optimum_tol:g}), so the standard errors are for a "
                f"point that is not the optimum: {advice}",
                OptimumWarning, stacklevel=user_stacklevel())
        if not self.at_optimum:
            # a fit is converged only at an optimum: a small step there is no optimum when the gradient is not ~0
            self.converged = False

    def _flat_slope(self, optimum_tol: float) -> tuple[str, float] | None:
        """The flat direction along which the objective slopes and its slope, or None when it is level.

        A flat direction has no curvature, so a gradient along it is a slope all the way: the objective
        has no minimum there (nll = -a). Level means one unit along it (unit-diagonal scale) lowers the
        objective, in units of the negative log-likelihood (objective / scale), by at most optimum_tol.
        """
        c = self.curvature
        if c.flat_basis is None or c.unit is None or not c.flat_basis.shape[1]:
            return None
        # the steepest slope within the flat directions: the gradient projected onto them
        u = c.flat_basis.T @ (c.unit * self._free_gradient())
        size = float(np.linalg.norm(u)) / self._scale
        if not size > optimum_tol:
            return None
        return _combination(-c.unit * (c.flat_basis @ u), self.names), size

    def _free_gradient(self) -> np.ndarray:
        # the gradient of the parameters held at a bound points out of the box: not a distance to the optimum
        return np.where(self._active, 0.0, self.gradient.to_numpy())

    # --- ModelResult hooks ---------------------------------------------------------------------
    def _coef_values(self) -> np.ndarray:
        return self._est

    def _identified(self) -> np.ndarray:
        return np.asarray(self.curvature.identifiable, dtype=bool)

    def _unscaled(self, **options: Any) -> np.ndarray:
        # no covariance options for estimates: options (the base's hook signature) is always empty
        ok = self._identified()
        return self.curvature.pinv[np.ix_(ok, ok)]

    @property
    def scale(self) -> float:
        """Factor of the inverse Hessian in the covariance (1 for a negative log-likelihood)."""
        return self._scale

    @property
    def cluster_default(self) -> str:
        """R's vcovCL default: HC1 for a least-squares fit (it has a sigma), HC0 for likelihood models."""
        return "HC1" if self.sigma is not None else "HC0"

    def _robust_vcov(self, type: str, cluster) -> tuple[pd.DataFrame, str]:
        from torchlm.inference.sandwich import sandwich_cov

        if self._scores_fn is None:
            raise OptionError(
                "robust covariances need per-observation contributions to the objective: this objective is "
                "one number (for tl.mle, return a vector of per-observation negative log-likelihoods)")
        if self._scores is None:
            self._scores = self._scores_fn().detach().to(torch.float64).cpu()
        n = self._scores.shape[0]
        description = f"{type} (sandwich: heteroskedasticity-consistent)"
        if cluster is not None:
            cluster = cluster.to_numpy() if hasattr(cluster, "to_numpy") else np.asarray(cluster)
            if cluster.shape[0] != n:
                raise DataError(f"cluster has {cluster.shape[0]} labels for {n} observations")
            c = np.asarray(cluster, dtype=object)
            c = c[:, None] if c.ndim == 1 else c
            counts = " x ".join(str(len(pd.unique(c[:, j]))) for j in range(c.shape[1]))
            description = f"clustered ({type}, {counts} clusters)"
        # projected scores are s_i' H^-1[:, names] (see __init__): the sandwich's bread is already in them
        bread = torch.eye(len(self.names), dtype=torch.float64) if self._projected else torch.from_numpy(
            self.curvature.pinv)
        df = n - (len(self.estimable) if self._n_estimated is None else self._n_estimated)
        V = sandwich_cov(bread, self._scores, type=type, cluster=cluster, df_residual=df if df > 0 else None)
        ok = self._identified()
        names = self.estimable
        return pd.DataFrame(V.cpu().double().numpy()[np.ix_(ok, ok)], index=names, columns=names), description

    def hessian(self) -> pd.DataFrame:
        """Hessian of the summed objective (sum over observations of the loss or nll) at the estimate.

        Returns
        -------
        pandas.DataFrame (p, p) over every parameter: for a subset reported with the others estimated
        (tl.infer's ``params=``), the block of the whole Hessian, whose inverse is not ``vcov()``.
        """
        return pd.DataFrame(self._H, index=self.names, columns=self.names)

    def _block(self, keep: np.ndarray) -> Estimates:
        """These estimates reported for the parameters ``keep`` only, the others still estimated: the
        covariance is the block of the whole inverse Hessian, the checks those of the whole fit."""
        ix = np.flatnonzero(keep)
        c, out = self.curvature, copy.copy(self)
        out._names = tuple(self._names[i] for i in ix)
        out._est, out._H, out._active = self._est[ix], self._H[np.ix_(ix, ix)], self._active[ix]
        out.gradient, out.newton_step = self.gradient.iloc[ix], self.newton_step.iloc[ix]
        out.curvature = Curvature(c.pinv[np.ix_(ix, ix)], c.identifiable[ix], c.flat, c.negative, c.min_eigen, c.rank)
        out._newton, out._n_estimated, out._projected = None, len(self.estimable), True
        full = self._scores_fn
        cols = torch.from_numpy(c.pinv[:, ix].copy())
        out._scores_fn = None if full is None else (lambda: full().detach().to(torch.float64).cpu() @ cols)
        out._scores = None
        lik = self._likelihood
        if lik is not None:
            free = lik.free.copy()
            free[np.flatnonzero(lik.free)[~keep]] = False
            out._likelihood = dataclasses.replace(lik, free=free)
        return out

    # --- fixed parameters; the objective at other points ------------------------------------------
    @property
    def fixed(self) -> pd.Series:
        """The parameters held fixed (tl.mle's ``fixed=``) by element label: empty when none."""
        lik = self._likelihood
        # a subset reported with the others estimated (tl.infer's params=) holds none fixed
        if lik is None or lik.free.all() or self._n_estimated is not None:
            return pd.Series([], dtype=float, name="fixed")
        th = lik.theta.detach().cpu().numpy()
        return pd.Series(th[~lik.free], index=[n for n, f in zip(lik.labels, lik.free) if not f], name="fixed")

    @property
    def at_bound(self) -> pd.Series:
        """Whether each estimate lies on a bound given to tl.mle (lower= / upper=); all False without bounds."""
        lik = self._likelihood
        at = np.zeros(len(self._names), bool)
        if lik is not None and lik.lower is not None and lik.upper is not None:
            at = (self._est <= lik.lower[lik.free]) | (self._est >= lik.upper[lik.free])
        return pd.Series(at, index=self.names, name="at_bound")

    def full_coef(self) -> pd.Series:
        """Every parameter's value, the fixed ones included (R's ``fullcoef`` of stats4::mle).

        Returns
        -------
        pandas.Series by element label.
        """
        lik = self._likelihood
        if lik is None:
            return self.coef()
        return pd.Series(lik.theta.detach().cpu().numpy().copy(), index=list(lik.labels), name="Estimate")

    def _objective(self) -> Likelihood:
        if self._likelihood is None:
            raise OptionError("this Estimates keeps no objective to evaluate again (tl.mle and tl.infer results do)")
        return self._likelihood

    def loglik_at(self, params: Any) -> float:
        """The log-likelihood at another point, without fitting or checking anything (no warnings).

        Parameters
        ----------
        params : a dict parameter name (or element label) -> value, the others at the estimate (fixed
            ones at their values); a Series by element label; or an array over ``names``.

        Returns
        -------
        float
        """
        return self._objective().loglik_at(params)

    def score_at(self, params: Any) -> pd.Series:
        """The score (gradient of the log-likelihood, by autograd) at another point, over ``names``; no warnings.

        Parameters
        ----------
        params : as in :meth:`loglik_at`.

        Returns
        -------
        pandas.Series named "score".
        """
        return pd.Series(self._objective().score_at(params), index=self.names, name="score")

    def delta(self, fn: Callable, level: float = 0.95, vcov: Any = None, *, cluster: Any = None,
              names: Any = None) -> pd.DataFrame:
        """The delta method: estimate, standard error, test and interval of fn(parameters), gradient by autograd.

        Parameters
        ----------
        fn : function of the parameter dict (name -> torch tensor shaped as the parameter; tl.infer: the
            model's parameter names) returning a scalar, a vector, or a dict name -> scalar or vector.
        level : coverage of the intervals.
        vcov, cluster : the covariance of the estimates, as in vcov() (a robust one gives robust SEs).
        names : names for the outputs (default: a dict's keys; fn's name, or "value", with [i] for a vector).

        Returns
        -------
        pandas.DataFrame: Estimate, Std. Error, z (or t) value, its p-value and the interval's two columns;
        SE = sqrt(G V G') with G the Jacobian of fn at the estimate.
        """
        from torchlm.inference.delta import delta_method

        return delta_method(self, fn, level, vcov, cluster, names)

    def profile(self, parm: Any = None, alpha: float = 0.01, maxsteps: int = 100,
                step: float | None = None) -> dict[str, pd.DataFrame]:
        """Profile the log-likelihood of each parameter (R's stats4 profile of an mle): the signed root of the
        likelihood ratio on a grid around the estimate, the other parameters refitted at each point.

        Parameters
        ----------
        parm : names (default every estimable parameter).
        alpha : the grid reaches a signed root of sqrt(qchisq(1 - alpha, 1)) (R's zmax) on either side.
        maxsteps : most grid points on each side.
        step : grid spacing in standard errors (default zmax / 5, R's del).

        Returns
        -------
        dict name -> DataFrame with columns "z" and every parameter's value at the grid points (R's par.vals).
        """
        from torchlm.inference.mle_profile import profile_mle

        return profile_mle(self, None if parm is None else self._parm(parm), alpha, maxsteps, step)

    def confint(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *, cluster: Any = None,
                method: str = "wald") -> pd.DataFrame:
        """Confidence intervals: Wald (estimate -/+ quantile * SE, R's confint.default) or profile likelihood.

        Parameters
        ----------
        level : coverage, in (0, 1).
        parm : parameter names or positions (default all).
        vcov, cluster : the covariance behind the Wald intervals, as in vcov().
        method : "wald", or "profile" (tl.mle): R's confint of a stats4::mle fit, the spline through the
            profile's signed roots (profiled to alpha = 0.01 as stats4 does; beyond level 0.99 to
            (1 - level) / 4, where stats4's profile stops short) where it crosses the normal quantiles.

        Returns
        -------
        pandas.DataFrame with R's columns ("2.5 %", "97.5 %"); NaN where an interval is not defined.
        """
        if method == "profile":
            if vcov is not None or cluster is not None:
                raise OptionError("profile intervals come from the likelihood: vcov= and cluster= apply to "
                                  "method='wald' only")
            from torchlm.inference.mle_profile import confint_profile_mle

            self._quantile(level)
            return confint_profile_mle(self, level, self._parm(parm))
        if method != "wald":
            raise OptionError(f"method must be 'wald' or 'profile', not {method!r}")
        return super().confint(level, parm, vcov, cluster=cluster)

    # --- likelihood ----------------------------------------------------------------------------
    def loglik(self) -> float:
        """Log-likelihood at the estimate (for tl.infer, where the loss determines one).

        Returns
        -------
        float
        """
        if self._loglik is None:
            raise OptionError(f"no log-likelihood: {self._loglik_note or 'the objective is not a likelihood'}")
        return float(self._loglik)

    def aic(self) -> float:
        """-2 loglik + 2 * (number of parameters, plus 1 for an estimated Gaussian variance).

        Returns
        -------
        float
        """
        return -2 * self.loglik() + 2 * self._loglik_df()

    def bic(self) -> float:
        """-2 loglik + log(nobs) * (number of parameters).

        Returns
        -------
        float
        """
        ll = self.loglik()
        if not self.nobs:
            raise OptionError("BIC needs the number of observations: pass nobs= (or data with rows) to the fit")
        return -2 * ll + math.log(self.nobs) * self._loglik_df()

    def _loglik_df(self) -> int:
        # tl.infer and tl.mle always give it with the log-likelihood; Estimates built by hand may not
        if self.df_loglik is None:
            raise OptionError("no degrees of freedom for the log-likelihood: pass df_loglik= with loglik=")
        return self.df_loglik

    # --- presentation --------------------------------------------------------------------------
    def summary(self, vcov: Any = None, *, cluster: Any = None) -> EstimatesSummary:
        """R-style coefficient table (print it, or read .coefficients).

        Parameters
        ----------
        vcov, cluster : the covariance behind the tests, as in vcov().

        Returns
        -------
        EstimatesSummary
        """
        return EstimatesSummary(self, vcov, cluster)

    def __repr__(self) -> str:
        return f"<Estimates {self.call}: {len(self.names)} parameters>\n{self.coef().to_string()}"


class EstimatesSummary:
    """Summary of Estimates, printed as R prints a coefficient table (printCoefmat).

    Attributes
    ----------
    coefficients : DataFrame with Estimate, Std. Error, t or z value, Pr(>|t|) or Pr(>|z|) (identifiable rows).
    """

    def __init__(self, est: Estimates, vcov=None, cluster=None):
        self.est = est
        V, self.vcov_description = est._covariance(vcov, cluster)
        self._table = est._table(V)
        self.coefficients = self._table.loc[est.estimable]

    def coefficient_lines(self) -> list[str]:
        """printCoefmat's lines of the coefficient table (non-identifiable rows NA).

        Returns
        -------
        list of str
        """
        est = self.est
        tab = self._table.to_numpy().copy()
        tab[~est.curvature.identifiable] = np.nan
        return rf.coefficient_block(est.names, list(self._table.columns), tab, DIGITS)

    def footer_lines(self) -> list[str]:
        """The lines after the table: residual standard error, dispersion, likelihood, covariance, convergence.

        Returns
        -------
        list of str
        """
        est = self.est
        out = []
        if est.sigma is not None:
            out.append(f"Residual standard error: {rf.format_scalar(rf.signif(est.sigma, DIGITS))} "
                       f"on {est.df_residual} degrees of freedom")
        if est.dispersion_note:
            out.append(est.dispersion_note)
        if est._loglik is not None:
            ll = f"Log-likelihood: {rf.format_scalar(est._loglik, 7)} (df={est.df_loglik})"
            ll += f",  AIC: {rf.format_scalar(est.aic(), DIGITS + 1)}"
            if est.nobs:
                ll += f",  BIC: {rf.format_scalar(est.bic(), DIGITS + 1)}"
            out.append(ll)
        if est.nobs:
            out.append(f"Number of observations: {est.nobs}")
        if self.vcov_description is not None:
            out.append(f"Standard errors: {self.vcov_description}")
        if est.covariance_note:
            out.append(est.covariance_note)
        fixed = est.fixed
        if len(fixed):
            out.append("Fixed: " + ", ".join(f"{n} = {rf.format_scalar(v, DIGITS + 3)}" for n, v in fixed.items()))
        at = est.at_bound
        if at.any():
            out.append(f"On a bound (their standard errors are not valid): {', '.join(at.index[at])}")
        if est.iterations is not None:
            state = "converged" if est.converged else "did NOT converge"
            out.append(f"{est.method}: {state} in {est.iterations} iterations")
        if not est.at_optimum:
            steps = est.newton_step.to_numpy()
            if est.curvature.negative:
                why = "negative curvature: a saddle point or maximum"
            elif np.isfinite(steps).any() and np.nanmax(steps) > 0:
                why = f"up to {np.nanmax(steps):.3g} standard errors from one Newton step"
            else:
                why = "the objective slopes along a direction without curvature"
            out.append(f"Warning: not at an optimum ({why})")
        return out

    def __str__(self) -> str:
        est = self.est
        out = [""] + ([est.header, ""] if est.header else []) + ["Call:", est.call, ""]
        out += self.coefficient_lines() + [""]
        out += self.footer_lines() + [""]
        return "\n".join(out)

    __repr__ = __str__
