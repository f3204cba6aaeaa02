"""Fitted generalized linear model: estimates, covariance, deviance, residuals and predictions with R's definitions."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import FitError, OptionError, TorchlmWarning
from torchlm.frame import Design, newdata_matrix, newdata_offset
from torchlm.inference.profile import confint_profile
from torchlm.inference.sandwich import robust_covariance
from torchlm.inference.stepwise import StepwiseMethods
from torchlm.inference.terms import predict_terms
from torchlm.models.families import Family
from torchlm.present.summary import GLMSummary, print_glm
from torchlm.present.verbs import given_dispersion_cov
from torchlm.results.base import ModelResult
from torchlm.results.broom import GeneralizedBroom
from torchlm.results.design_methods import DesignMethods
from torchlm.results.plotting import PlotMethods
from torchlm.solvers.autograd import quiet
from torchlm.solvers.least_squares import cov_scale, factor_cov, log10_variances, r_inverse_cov
from torchlm.sources.row_blocks import DesignSource, WorkingRows, row_quadratic

RESIDUAL_TYPES = ("deviance", "pearson", "working", "response")


class GeneralizedLinearModelResult(ModelResult, DesignMethods, StepwiseMethods, GeneralizedBroom, PlotMethods):
    """A fitted GLM (what R's glm() returns), from tl.glm().

    Attributes: family, deviance, null_deviance, df_residual, df_null, nobs, rank, dispersion,
    iterations, converged, boundary, information, n_dropped_na, call. Methods follow R: coef(),
    vcov(), confint(), summary(), predict(), fitted(), residuals(), hessian(), loglik(), aic(), bic().
    """

    df_residual: int  # nobs - rank: always known for a glm

    def __init__(self, design: Design, family: Family, fit, *, y, weights, offset, null_deviance: float,
                 information: str, device, dtype, tol: float, call: str, control: dict):
        self.design = design
        self.control = dict(control)  # glm.control settings, for the refits of anova, drop1 and profiles
        self.family = family
        self.call = call
        self.tol = tol
        self.device, self.dtype = device, dtype
        self.information = information
        self._fit = fit
        self._qr = fit.qr
        self._y, self._w, self._offset = y, weights, offset
        self._names = tuple(design.names)
        self.rank = fit.qr.rank
        self.statistic = family.test_statistic
        self.iterations = fit.iterations
        self.converged = fit.converged
        self.boundary = fit.boundary
        self.deviance = fit.deviance
        self.null_deviance = null_deviance
        self._aic: float | None = None
        used = weights != 0
        self.nobs = int(used.sum())
        self.df_residual = self.nobs - self.rank
        self.df_null = self.nobs - int(design.has_intercept)
        self.n_dropped_na = design.n_dropped
        link = family.link
        self._mu_eta = link.mu_eta(fit.eta)
        # R's weights(glm, "working"): those of the QR, from the start of glm.fit's last iteration
        mu_eta_w = link.mu_eta(fit.weights_eta)
        var = family.variance(fit.weights_mu)
        good = (weights > 0) & (mu_eta_w != 0)
        self._working_w = torch.where(good, weights * mu_eta_w**2 / torch.where(good, var, torch.ones_like(var)),
                                      torch.zeros_like(var))
        self._good = good
        if family.fixed_dispersion:
            self.dispersion = 1.0
        elif self.df_residual > 0:
            wr = self._working_w * self._working_resid() ** 2
            self.dispersion = float(wr[weights > 0].sum()) / self.df_residual
        else:
            self.dispersion = float("nan")
        if self._qr.scaling is not None:
            self._range_warnings()
        if family.has_likelihood:
            self.aic()  # R's glm.fit computes the AIC as it fits, so its warnings come with the fit

    def _range_warnings(self) -> None:
        """A TorchlmWarning where a scaled fit's (data near 1e300) dispersion or variances are beyond float64's range.

        R gives such numbers silently as Inf or 0; they are given the same here, with a warning.
        """
        if not self.rank or not self.dispersion > 0:
            return
        if not math.isfinite(self.dispersion):
            warnings.warn("the dispersion is beyond float64's range (Inf): vcov() and std_errors() are Inf. Rescale "
                          "the response (multiply or divide it by a power of ten)", TorchlmWarning, stacklevel=4)
            return
        lo, hi = np.log10(np.finfo(np.float64).tiny), np.log10(np.finfo(np.float64).max)
        log_var = math.log10(self.dispersion) + log10_variances(self._qr)
        out = [(self.names[j], v) for j, v in zip(self._qr.pivot[: self.rank], log_var)
               if np.isfinite(v) and not lo <= v <= hi]
        if out:
            ses = ", ".join(f"{n!r}: about 1e{v / 2:.0f}" for n, v in out)
            warnings.warn(
                f"the variances of the coefficients {[n for n, _ in out]} are beyond float64's range: vcov() and "
                f"std_errors() give them as 0 or Inf (as R's glm does); their standard errors are {{{ses}}}. "
                "Rescale these columns (e.g. by a power of ten)", TorchlmWarning, stacklevel=4)

    # --- ModelResult hooks -----------------------------------------------------------------
    cluster_default = "HC0"  # R's vcovCL for a likelihood model

    def _coef_values(self) -> np.ndarray:
        return self._fit.coef

    @property
    def scale(self) -> float:
        """The dispersion, the factor of the inverse information in the model-based covariance."""
        return self.dispersion

    def _robust_vcov(self, type: str, cluster) -> tuple[pd.DataFrame, str]:
        return robust_covariance(self, type, cluster)

    def _est_columns(self) -> list[int]:
        return sorted(self._qr.pivot[: self.rank])

    def hessian(self) -> pd.DataFrame:
        """Autograd Hessian of half the deviance (the negative log-likelihood at unit dispersion) at the estimate.

        The convention of every fit's hessian(): the objective whose inverse Hessian, times the scale,
        is the covariance (lm: half the weighted residual sum of squares), over all coefficients,
        aliased ones evaluated at 0 (their rows and columns make it singular). For canonical links it
        equals the expected information X^T W X.

        Returns
        -------
        pandas.DataFrame (p, p) over every coefficient name.

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.hessian().round(4)
                   Intercept       wt
        Intercept     2.9404   9.1542
        wt            9.1542  28.9835
        """
        fam, y, w, off = self.family, self._y, self._w, self._offset
        b = torch.as_tensor(np.nan_to_num(self._fit.coef), dtype=self.dtype, device=self.device)
        p = len(self.names)
        H = torch.zeros(p, p, dtype=self.dtype, device=self.device)
        for blk in DesignSource(self.design).blocks(device=self.device, dtype=self.dtype):
            r = blk.rows

            def half_deviance(bb, X=blk.X, r=r):
                return 0.5 * fam.dev_resids(y[r], fam.link.linkinv(X @ bb + off[r]), w[r]).sum()

            H += quiet(torch.func.hessian(half_deviance))(b)
        return pd.DataFrame(H.cpu().double().numpy(), index=self.names, columns=self.names)

    def _unscaled_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """(C', d) with _unscaled() = d_i d_j C'_ij (formula order) and C' in float64's range (see scaled_cov).

        For scale-free quantities (hat values) of a fit of data near 1e300; d is 1 for ordinary fits
        and for the observed information.

        Returns
        -------
        (numpy.ndarray (k, k), numpy.ndarray (k,))
        """
        if self.information != "expected":
            return self._unscaled(), np.ones(self.rank)
        order = np.argsort(self._qr.pivot[: self.rank])
        C = r_inverse_cov(self._qr.factor).cpu().double().numpy()
        return C[np.ix_(order, order)], cov_scale(self._qr).cpu().double().numpy()[order]

    def _unscaled(self, information: str | None = None, **options: Any) -> np.ndarray:
        """Inverse information over the estimable coefficients (formula order), before the dispersion.

        expected: (X^T W X)^{-1} from the QR factor of the autograd Jacobian of the working residuals;
        observed: inverse of the autograd Hessian of half the deviance.
        """
        # information is the glm's one covariance option: options (the base's hook signature) is always empty
        information = information or self.information
        if information == "expected":
            C = factor_cov(self._qr).cpu().double().numpy()
            order = np.argsort(self._qr.pivot[: self.rank])
            return C[np.ix_(order, order)]
        if information != "observed":
            raise OptionError(f"information must be 'expected' or 'observed', not {information!r}")
        est = self.estimable
        H = self.hessian().loc[est, est].to_numpy()
        try:
            L = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            raise FitError(
                "the observed information (autograd Hessian of the negative log-likelihood) is not positive "
                "definite at the estimate; use information='expected'"
            ) from None
        Linv = np.linalg.inv(L)
        return Linv.T @ Linv

    def vcov(self, type: Any = None, *, cluster: Any = None, information: str | None = None) -> pd.DataFrame:
        """Covariance of the estimable coefficients (aliased terms left out): model-based, robust or clustered.

        Parameters
        ----------
        type : the covariance choice, as the ``vcov=`` option of the other methods: None (R's
            vcov(glm): dispersion times the inverse information); a type string "const",
            "HC0".."HC5", "HC4m" (sandwich::vcovHC), "HAC" (sandwich::NeweyWest(fit, prewhite = FALSE,
            adjust = TRUE)); a dict {"type": ..., "cluster": ...}; or a (k, k) matrix.
        cluster : cluster variable(s) for sandwich::vcovCL (default type HC0 for a GLM), as in
            LinearModelResult.vcov.
        information : "expected" (R's summary.glm) or "observed"; default the fit's ``information``.
            The bread of the robust types is the same inverse information.

        Returns
        -------
        pandas.DataFrame (k, k) labelled by the estimable coefficients.

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.vcov("HC0").round(4)
                   Intercept      wt
        Intercept    24.5610 -7.6684
        wt           -7.6684  2.4264
        """
        return self._covariance(type, cluster, information=information)[0]

    def confint(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *, cluster: Any = None,
                method: str = "wald") -> pd.DataFrame:
        """Confidence intervals: Wald (default) or profile likelihood.

        Parameters
        ----------
        level : coverage, in (0, 1).
        parm : coefficient names or positions (default all).
        vcov, cluster : for "wald", the covariance behind the standard errors, as in vcov().
        method : "wald": estimate +/- z * SE (R's confint.default: normal quantiles whatever the
            family); "profile": R's confint(glm) (MASS's profile intervals, on MASS's grid and
            spline, so the numbers are R's).

        Returns
        -------
        pandas.DataFrame with R's columns ("2.5 %", "97.5 %").

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.confint(method="profile").round(4)
                    2.5 %   97.5 %
        Intercept  5.2138  23.6289
        wt        -7.6989  -1.8334
        """
        if method == "profile":
            if vcov is not None or cluster is not None:
                raise OptionError("profile intervals come from the likelihood: vcov= applies to method='wald' only")
            return self._profile_intervals(level, None if parm is None else self._parm(parm))
        if method != "wald":
            raise OptionError(f"method must be 'wald' or 'profile', not {method!r}")
        return super().confint(level, parm, vcov, cluster=cluster)

    def _profile_intervals(self, level: float, parm: list[str] | None) -> pd.DataFrame:
        """MASS's profile intervals (a Dask fit refits over its partitions instead)."""
        return confint_profile(self, level, parm)

    def _quantile(self, level: float, statistic: str | None = None, df: float | None = None) -> float:
        # R's confint.default: normal quantiles even where summary.glm's tests use t
        return super()._quantile(level, statistic or "z", df)

    # --- likelihood ------------------------------------------------------------------------
    def aic(self) -> float:
        """R's AIC: the family's aic plus 2 * rank.

        Returns
        -------
        float
            NaN for the quasi families (no likelihood).

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> round(fit.aic(), 4)
        23.1761
        """
        if self._aic is None:
            # once per fit: the family's aic may warn about the data (R's dpois on non-integer counts),
            # and R warns once, when glm() computes it
            n = torch.ones_like(self._y)
            self._aic = self.family.aic(self._y, n, self._fit.mu, self._w, self.deviance) + 2 * self.rank
        return self._aic

    @property
    def df_loglik(self) -> int:
        """Parameters counted by logLik: rank, plus the dispersion for gaussian, Gamma and inverse.gaussian."""
        return self.rank + int(self.family.aic_counts_dispersion)

    def loglik(self) -> float:
        """R's logLik.glm: df - AIC / 2.

        Returns
        -------
        float

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> round(fit.loglik(), 4)
        -9.588
        """
        return self.df_loglik - self.aic() / 2

    def bic(self) -> float:
        """R's BIC: -2 logLik + log(n) * df, where R's logLik.glm counts every row used, zero weights included.

        Returns
        -------
        float

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> round(fit.bic(), 4)
        26.1076
        """
        return -2 * self.loglik() + math.log(len(self.design.y)) * self.df_loglik

    # --- observations ----------------------------------------------------------------------
    def _series(self, t: torch.Tensor, name: str) -> pd.Series:
        return pd.Series(t.cpu().double().numpy(), index=self.design.index, name=name)

    def _padded_series(self, t: torch.Tensor, name: str) -> pd.Series:
        return self._pad(self._series(t, name))

    def _working_resid(self) -> torch.Tensor:
        return (self._y - self._fit.mu) / self._mu_eta

    def fitted(self) -> pd.Series:
        """Fitted means mu (response scale) for the rows used.

        Returns
        -------
        pandas.Series
            named "fitted", indexed by the rows used (under na_action="exclude", by the rows of the data,
            NaN where a row was dropped for missing values: R's naresid).

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.fitted().head(3).round(4)
        Mazda RX4        0.8172
        Mazda RX4 Wag    0.6157
        Datsun 710       0.9373
        Name: fitted, dtype: float64
        """
        return self._padded_series(self._fit.mu, "fitted")

    def linear_predictors(self) -> pd.Series:
        """Linear predictor eta (offset included).

        Returns
        -------
        pandas.Series
            named "eta", indexed by the rows used.

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.linear_predictors().head(3).round(4)
        Mazda RX4        1.4976
        Mazda RX4 Wag    0.4715
        Datsun 710       2.7048
        Name: eta, dtype: float64
        """
        return self._series(self._fit.eta, "eta")

    def residuals(self, type: str = "deviance") -> pd.Series:
        """Residuals as R's residuals.glm: "deviance" (default), "pearson", "working" or "response".

        Returns
        -------
        pandas.Series
            named "residuals", indexed by the rows used (padded with NaN under na_action="exclude", as fitted()).

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.residuals("pearson").head(3).round(4)
        Mazda RX4        0.4729
        Mazda RX4 Wag    0.7900
        Datsun 710       0.2586
        Name: residuals, dtype: float64
        """
        y, mu, w, fam = self._y, self._fit.mu, self._w, self.family
        if type == "deviance":
            d = torch.clamp(fam.dev_resids(y, mu, w), min=0)
            r = torch.sign(y - mu) * torch.sqrt(d)
        elif type == "pearson":
            r = (y - mu) * torch.sqrt(w) / torch.sqrt(fam.variance(mu))
        elif type == "working":
            r = self._working_resid()
        elif type == "response":
            r = y - mu
        else:
            raise OptionError(f"residual type must be one of {RESIDUAL_TYPES}, not {type!r}")
        return self._padded_series(r, "residuals")

    def _working_rows(self) -> np.ndarray:
        """Rows that enter the working least squares: prior weight > 0 and d mu / d eta != 0 (R's ``good``)."""
        return self._good.cpu().numpy()

    def _working(self) -> tuple[WorkingRows, np.ndarray]:
        """sqrt(W) X over the estimable columns and sqrt(W) times the working residuals (rows with W > 0)."""
        g = self._good.cpu().numpy()
        sw = torch.sqrt(self._working_w).cpu().double().numpy()
        ew = (sw * self._working_resid().cpu().double().numpy())[g]
        # read from the design's columns block by block: the robust covariances never need all of X
        return WorkingRows(self.design, self._est_columns(), sw, g), ew

    def predict(self, newdata: Any = None, *, type: str = "link", se_fit: bool = False, terms: Any = None,
                offset: Any = None, vcov: Any = None, dispersion: Any = None) -> Any:
        """Predictions (R's predict.glm), also by term (type="terms").

        Parameters
        ----------
        newdata : DataFrame of new rows; None predicts the rows used in fitting (padded with NaN at the
            rows dropped for missing values under na_action="exclude", as R's napredict).
        type : "link" (linear predictor), "response" (mean) or "terms" (each term's centred part of the
            linear predictor, as R's predict.lm(type = "terms"): a DataFrame with attrs["constant"], or a
            TermsPrediction with se_fit).
        se_fit : also return standard errors (delta method for type="response").
        terms : with type="terms", the terms to return (R's labels, e.g. "factor(cyl)"); default all.
        offset : offset for newdata when the model was fitted with an offset array.
        vcov : covariance behind se_fit, as in summary() (None: model-based).
        dispersion : the dispersion behind se_fit (R's dispersion=); default the fit's.

        Returns
        -------
        pandas.Series of predictions, a DataFrame with columns fit and se_fit, or (type="terms") a
        DataFrame / TermsPrediction with one column per term.

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.predict(pd.DataFrame({"wt": [2.5, 3.5]}), type="response").round(4)
        0    0.8787
        1    0.1147
        Name: fit, dtype: float64
        """
        if type not in ("link", "response", "terms"):
            raise OptionError(f"predict type must be 'link', 'response' or 'terms', not {type!r}")
        if terms is not None and type != "terms":
            raise OptionError("terms= selects the columns of type='terms'; add type='terms'")
        if dispersion is not None:
            V = given_dispersion_cov(self, dispersion, vcov)
        else:
            V = self._covariance(vcov)[0] if se_fit else None
        scale = math.sqrt(self.dispersion if dispersion is None else float(dispersion))
        if type == "terms":
            out = predict_terms(self, newdata, terms=terms, se_fit=se_fit, cov=V, residual_scale=scale)
            return out if newdata is not None else self._pad_terms(out)
        out = self._predict_mean(newdata, type, V if se_fit else None, offset)
        return out if newdata is not None else self._pad(out)

    def _predict_mean(self, newdata: Any, type: str, V: pd.DataFrame | None, offset: Any) -> pd.Series | pd.DataFrame:
        """predict.glm's link or response predictions, with standard errors from V when it is given."""
        d = self.design
        cols = self._est_columns()
        X: WorkingRows | np.ndarray
        if newdata is None:
            X, index = WorkingRows(d, list(range(len(self.names))), None), d.index
            eta = self._fit.eta.cpu().double().numpy()
        else:
            X = X_new = newdata_matrix(d, newdata)
            index = newdata.index if hasattr(newdata, "index") else pd.RangeIndex(len(X_new))
            off = newdata_offset(d, newdata, offset, len(X_new))
            if self.rank < len(self.names):
                warnings.warn("prediction from a rank-deficient fit may be misleading", stacklevel=3)
            eta = X_new[:, cols] @ self._fit.coef[cols]
            if off is not None:
                eta = eta + off
        link = self.family.link
        if type == "response":
            et = torch.as_tensor(eta, dtype=torch.float64)
            fit = link.linkinv(et).numpy()
        else:
            fit = eta
        if V is None:
            return pd.Series(fit, index=index, name="fit")
        Vt = torch.as_tensor(V.to_numpy())
        se = np.sqrt(row_quadratic(X, cols, lambda B: ((B @ Vt) * B).sum(dim=1)))
        if type == "response":
            se = se * np.abs(link.mu_eta(torch.as_tensor(eta, dtype=torch.float64)).numpy())
        return pd.DataFrame({"fit": fit, "se_fit": se}, index=index)

    # --- presentation ----------------------------------------------------------------------
    def summary(self, vcov: Any = None, *, cluster: Any = None, dispersion: Any = None, correlation: bool = False,
                symbolic_cor: bool = False) -> GLMSummary:
        """R-style summary (print it, or read .coefficients).

        Parameters
        ----------
        vcov : covariance of the coefficient table's tests: None (model-based, R's summary.glm), a type
            string, a dict {"type": ..., "cluster": ...} or a matrix; a robust choice gives
            lmtest::coeftest(fit, vcov = V) and the summary says which covariance it uses.
        cluster : cluster variable(s), as in vcov().
        dispersion : R's summary.glm(dispersion = ): a positive number taken as the dispersion (the
            standard errors scale with it, and the tests are z tests, the dispersion being known).
        correlation : R's correlation = TRUE: the estimates' correlations (``.correlation``), printed as R's
            "Correlation of Coefficients:" block.
        symbolic_cor : R's symbolic.cor = TRUE: print them as symnum's symbols.

        Returns
        -------
        GLMSummary

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> print(fit.summary())
        <BLANKLINE>
        Call:
        glm(formula = am ~ wt, family = binomial)
        <BLANKLINE>
        Deviance Residuals:
             Min        1Q    Median        3Q       Max
        -2.11400  -0.53738  -0.08811   0.26055   2.19931
        <BLANKLINE>
        Coefficients:
                  Estimate Std. Error z value Pr(>|z|)
        Intercept   12.040      4.510   2.670  0.00759 **
        wt          -4.024      1.436  -2.801  0.00509 **
        ---
        Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
        <BLANKLINE>
        (Dispersion parameter for binomial family taken to be 1)
        <BLANKLINE>
            Null deviance: 43.230  on 31  degrees of freedom
        Residual deviance: 19.176  on 30  degrees of freedom
        AIC: 23.176
        <BLANKLINE>
        Number of Fisher Scoring iterations: 6
        <BLANKLINE>
        """
        return GLMSummary(self._omitted(), vcov=vcov, cluster=cluster, dispersion=dispersion, correlation=correlation,
                          symbolic_cor=symbolic_cor)

    def __str__(self) -> str:
        """What R's print(fit) shows: call, coefficients, degrees of freedom, deviances and AIC."""
        return print_glm(self)

    __repr__ = __str__
