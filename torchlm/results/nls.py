"""NonlinearModelResult: a fitted tl.nls model, with R's accessors for nls objects."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError
from torchlm.inference.nls_inference import anova_nls, confint_nls, profile_nls
from torchlm.models.nls_model import NonlinearModel, new_columns, substitute_dots
from torchlm.present.deparse import deparse
from torchlm.present.nls import NLSSummary, print_nls
from torchlm.results.base import ModelResult, Refit, confint_labels
from torchlm.results.broom import NonlinearBroom
from torchlm.solvers.nonlinear_ls import NlsControl, Outcome


class NonlinearModelResult(ModelResult, NonlinearBroom):
    """A nonlinear least-squares fit (R's class "nls").

    Attributes
    ----------
    formula : str
        R's formula(fit) (R's deparse of the formula given).
    model : NonlinearModel
        The parsed model and the data at the rows used (its ``residual`` is sqrt(w) (f - y)).
    algorithm : str
        "default", "lm" or "port", as asked for.
    algorithm_used : str
        The iteration that produced the estimates: "default" (R's Gauss-Newton), "lm" (Levenberg-Marquardt,
        also where the default fell back to it) or "port".
    converged : bool
        R's isConv.
    iterations : int
        R's finIter (nlsLM: minpack.lm's niter).
    tolerance : float
        R's finTol: the relative offset achieved (nlsLM: ftol; port: the relative reduction).
    stop_message : str
        R's stopMessage ("converged", R's reason stopped, minpack.lm's or PORT's message).
    df_residual : int
        Observations with non-zero weight minus parameters.

    Examples
    --------
    >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
    >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
    >>> fit.glance()[["sigma", "isConv", "logLik", "nobs"]].round(4)
         sigma  isConv   logLik  nobs
    0  10.9337    True -44.6355    12
    >>> fit.augment().head(3).round(4)
       rate  conc   .fitted   .resid
    0    76  0.02   50.5661  25.4339
    1    47  0.02   50.5661  -3.5661
    2    97  0.06  102.8111  -5.8111
    """

    statistic = "t"

    def __init__(self, model: NonlinearModel, frame: Any, outcome: Outcome, *, algorithm: str, control: NlsControl,
                 lower: np.ndarray | None, upper: np.ndarray | None, data_name: str = "data",
                 weighted: bool = False) -> None:
        self.model, self.frame, self.outcome = model, frame, outcome
        self.algorithm, self.algorithm_used = algorithm, outcome.algorithm
        self.control, self.lower, self.upper = control, lower, upper
        self.data_name = data_name
        self.converged, self.iterations = outcome.converged, outcome.iterations
        self.tolerance, self.stop_message = outcome.tolerance, outcome.message
        self._names = tuple(model.coef_names)
        pt = outcome.point
        self._x = pt.x.detach().cpu().numpy().astype(np.float64)
        p = len(self._x)
        R11 = pt.R[:p, :p].detach().cpu().double().numpy()
        self._R = R11
        self._weights = None if frame.weights is None else np.asarray(frame.weights, dtype=np.float64)
        self._weighted = weighted
        self.nobs = int((self._weights != 0).sum()) if self._weights is not None else model.n
        self._df_r = (int((self._weights > 0).sum()) if self._weights is not None else model.n) - p
        self.df_residual = self._df_r
        self._rss = pt.rss
        with torch.no_grad():
            self._fitted = model.fitted(pt.x).detach().cpu().numpy().astype(np.float64)
            self._resid_w = (-pt.e).detach().cpu().numpy().astype(np.float64)
            self._lhs = model.y.detach().cpu().numpy().astype(np.float64)

    # --- ModelResult's hooks ---------------------------------------------------------------------
    def _coef_values(self) -> np.ndarray:
        return self._x.copy()

    def _unscaled(self, **options: Any) -> np.ndarray:
        # R's chol2inv(Rmat()): (R'R)^-1 from the QR of the gradient at the estimates
        Rinv = np.linalg.solve(self._R, np.eye(len(self._x))) if len(self._x) else np.zeros((0, 0))
        return Rinv @ Rinv.T

    @property
    def scale(self) -> float:
        """sigma^2 = deviance / df_residual (NaN without residual degrees of freedom, as R's resvar)."""
        return self._rss / self._df_r if self._df_r > 0 else math.nan

    # --- R's accessors ----------------------------------------------------------------------------
    @property
    def formula(self) -> str:
        """R's formula(fit), as R deparses it on one line."""
        return deparse(self.model.tree)

    @property
    def deviance(self) -> float:
        """The (weighted) residual sum of squares, R's deviance(fit)."""
        return self._rss

    @property
    def sigma(self) -> float:
        """The residual standard error, R's summary(fit)$sigma."""
        return math.sqrt(self.scale)

    @property
    def weights(self) -> pd.Series | None:
        """The prior weights at the rows used (None without weights), R's weights(fit)."""
        return None if self._weights is None else pd.Series(self._weights, index=self.frame.index)

    def fitted(self) -> pd.Series:
        """The model's values at the estimates, R's fitted(fit).

        Returns
        -------
        pandas.Series indexed by the rows used.

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.fitted().head(3).round(4)
        0     50.5661
        1     50.5661
        2    102.8111
        Name: fitted, dtype: float64
        """
        return pd.Series(self._fitted, index=self.frame.index, name="fitted")

    def residuals(self, type: str = "response") -> pd.Series:
        """R's residuals(fit): "response" (lhs - fitted) or "pearson" (the weighted residuals over their sd).

        Returns
        -------
        pandas.Series indexed by the rows used.

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.residuals().head(3).round(4)
        0    25.4339
        1    -3.5661
        2    -5.8111
        Name: residuals, dtype: float64
        """
        if type == "response":
            return pd.Series(self._lhs - self._fitted, index=self.frame.index, name="residuals")
        if type == "pearson":
            val = self._resid_w
            std = math.sqrt(float(val @ val) / (len(val) - len(self._x)))
            return pd.Series(val / std, index=self.frame.index, name="pearson")
        raise OptionError(f"type must be 'response' or 'pearson', not {type!r}")

    def predict(self, newdata: Any = None) -> np.ndarray:
        """R's predict.nls: the model at the estimates for new rows (the fitted values without newdata).

        Parameters
        ----------
        newdata : DataFrame or dict with the columns the model uses.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.predict(pd.DataFrame({"conc": [0.1, 0.5]})).round(4)
        array([129.5895, 188.5088])
        """
        if newdata is None:
            return self._fitted.copy()
        cols, codes, n = new_columns(self.model, newdata)
        x = self.outcome.point.x
        with torch.no_grad():
            out = self.model.evaluate(self.model.rhs, x, cols, codes, n)
        return out.detach().cpu().numpy().astype(np.float64)

    def loglik(self) -> float:
        """R's logLik.nls: the normal log-likelihood at the estimates, with the weights' term.

        Returns
        -------
        float

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> round(fit.loglik(), 4)
        -44.6355
        """
        res = self._resid_w
        w = np.ones(len(res)) if self._weights is None else self._weights
        zw = w == 0
        N = int((~zw).sum())
        return float(-N * (math.log(2 * math.pi) + 1 - math.log(N) - np.sum(np.log(w + zw)) / N
                           + math.log(float(res @ res))) / 2)

    @property
    def df_loglik(self) -> int:
        """logLik's df: the parameters and sigma."""
        return len(self._x) + 1

    def aic(self, k: float = 2.0) -> float:
        """R's AIC(fit) (``k=log(nobs)`` gives BIC).

        Returns
        -------
        float

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> round(fit.aic(), 4)
        95.271
        """
        return -2 * self.loglik() + k * self.df_loglik

    def bic(self) -> float:
        """R's BIC(fit).

        Returns
        -------
        float

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> round(fit.bic(), 4)
        96.7257
        """
        return self.aic(math.log(self.nobs))

    def summary(self, correlation: bool = False, symbolic_cor: bool = False) -> NLSSummary:
        """R's summary.nls.

        Parameters
        ----------
        correlation : bool
            Print the correlations of the estimates (R's correlation = TRUE).
        symbolic_cor : bool
            As symbols (symnum).

        Returns
        -------
        NLSSummary
            Prints as R's print.summary.nls.

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> print(fit.summary())
        <BLANKLINE>
        Formula: rate ~ Vm * conc/(K + conc)
        <BLANKLINE>
        Parameters:
            Estimate Std. Error t value Pr(>|t|)
        Vm 2.127e+02  6.947e+00  30.615 3.24e-11 ***
        K  6.412e-02  8.281e-03   7.743 1.57e-05 ***
        ---
        Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
        <BLANKLINE>
        Residual standard error: 10.93 on 10 degrees of freedom
        <BLANKLINE>
        Number of iterations to convergence: 5
        Achieved convergence tolerance: 8.799e-06
        <BLANKLINE>
        """
        return NLSSummary(self, correlation=correlation, symbolic_cor=symbolic_cor)

    def update(self, formula: str | None = None, *, evaluate: bool = True, **changes: Any) -> Any:
        """R's update() of an nls fit: the same call with a new formula or arguments (``start=``, ``data=`` ...).

        Parameters
        ----------
        formula : str, optional
            The new formula; ``.`` stands for the old side (``". ~ . + c"``), substituted as it is (R's
            update.formula would also expand it as model terms, which a nonlinear formula is not).
        evaluate : bool
            False: the new call (a Refit) instead of the fit.
        **changes
            Arguments of tl.nls to change.

        Returns
        -------
        NonlinearModelResult or Refit

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.update(start={"Vm": 150, "K": 0.1}).coef().round(4)
        Vm    212.6837
        K       0.0641
        Name: Estimate, dtype: float64
        """
        if formula is None or self._refit is None:
            return super().update(None, evaluate=evaluate, **changes)
        new = substitute_dots(formula, self.model.lhs, self.model.rhs)
        call = Refit(self._refit.fitter, new, {**self._refit.arguments, **changes})
        if unknown := sorted(set(changes) - set(self._refit.arguments)):
            raise OptionError(f"update() got argument(s) {unknown} that nls() does not take")
        return call.evaluate() if evaluate else call

    def _own_anova(self, *others: Any, test: Any = None) -> Any:
        # tl.anova(fit1, fit2, ...) dispatches here: R's anova.nls
        return anova_nls(self, *others)

    def __repr__(self) -> str:
        return print_nls(self)

    __str__ = __repr__

    def r_formula(self) -> str:
        """The formula as R deparses it (one line).

        Returns
        -------
        str

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.r_formula()
        'rate ~ Vm * conc/(K + conc)'
        """
        return deparse(self.model.tree)

    def profile(self, which: Any = None, alphamax: float = 0.01, maxpts: int = 100,
                delta_t: float | None = None) -> dict[str, pd.DataFrame]:
        """R's profile.nls: tau and the parameters along each parameter's profile.

        Parameters
        ----------
        which : parameter names or 0-based positions (default all).
        alphamax : the profile reaches tau = sqrt(qf(1 - alphamax, 1, n - p)).
        maxpts : the most points on each side.
        delta_t : the step in tau (default the cutoff / 5).

        Returns
        -------
        dict of str to pandas.DataFrame
            {name: DataFrame with column "tau" and one column per parameter}.

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.profile("K")["K"].head(3).round(4)
              tau        Vm       K
        0 -3.3562  195.0005  0.0397
        1 -2.6722  198.4424  0.0440
        2 -1.9885  201.9612  0.0486
        """
        return profile_nls(self, self._parm(which), alphamax, maxpts, delta_t)

    def confint(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *,
                cluster: Any = None) -> pd.DataFrame:
        """R's confint(nls) with MASS (R 4.2): intervals by profiling the sum of squares (profile.nls).

        Parameters
        ----------
        level : coverage in (0, 1).
        parm : parameter names or 0-based positions (default all).
        vcov, cluster : not used by the profile (a Wald interval with them is ``confint_default``).

        Returns
        -------
        pandas.DataFrame with MASS's columns ("2.5%", "97.5%"); NaN where the profile does not reach the level.

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.confint().round(4)
                2.5%     97.5%
        Vm  197.3021  229.2901
        K     0.0469    0.0862
        """
        if vcov is not None or cluster is not None:
            raise OptionError("the profile intervals use no covariance: for Wald intervals with vcov= use "
                              "confint_default(vcov=...)")
        self._quantile(level)
        return confint_nls(self, level, self._parm(parm))

    def confint_default(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *,
                        cluster: Any = None) -> pd.DataFrame:
        """R's confint.default: Wald intervals, estimate -/+ qnorm * SE.

        Returns
        -------
        pandas.DataFrame with R's columns ("2.5 %", "97.5 %").

        Examples
        --------
        >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
        >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
        >>> fit.confint_default().round(4)
               2.5 %    97.5 %
        Vm  199.0674  226.2997
        K     0.0479    0.0804
        """
        q = self._quantile(level, "z")
        rows = self._parm(parm)
        b, se = self.coef()[rows], self.std_errors(vcov, cluster=cluster)[rows]
        lo, hi = confint_labels(level)
        return pd.DataFrame({lo: b - q * se, hi: b + q * se}, index=rows)
