"""Fitted linear model: estimates, covariance, tests, intervals and predictions with R's definitions."""

from __future__ import annotations

import math
import warnings
from collections import namedtuple
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError, TorchlmWarning, warn
from torchlm.frame import Design, newdata_matrix, newdata_offset
from torchlm.inference.sandwich import robust_covariance
from torchlm.inference.stepwise import StepwiseMethods
from torchlm.inference.terms import predict_terms
from torchlm.present.summary import LMSummary, print_lm
from torchlm.results.base import ModelResult
from torchlm.results.broom import LinearBroom
from torchlm.results.design_methods import DesignMethods
from torchlm.results.plotting import PlotMethods
from torchlm.solvers.autograd import objective_hessian
from torchlm.solvers.least_squares import QRFit, linear_chunks, log10_variances, scaled_cov, unscaled_cov
from torchlm.sources.row_blocks import WorkingRows, row_quadratic

FStatistic = namedtuple("FStatistic", ["value", "numdf", "dendf"])


def _power_of_two_below(m: float) -> float:
    """2^-e with m = f 2^e, f in [0.5, 1) (1 for 0; within 2^+-1020): m times it is in [0.5, 1)."""
    return float(np.ldexp(1.0, -int(np.clip(np.frexp(m)[1], -1020, 1020))))


def _exp10(log10_value: float) -> str:
    """A number given by its log10, written as 1.23e+456 (beyond float64's range too)."""
    e = math.floor(log10_value)
    return f"{10 ** (log10_value - e):.3g}e{e:+d}"



class LinearModelResult(ModelResult, DesignMethods, StepwiseMethods, LinearBroom, PlotMethods):
    """A fitted linear model (what R's lm() returns), from tl.lm().

    Attributes: sigma, df_residual, nobs, rank, r_squared, adj_r_squared, fstatistic, deviance,
    n_dropped_na, call. Methods follow R: coef(), vcov(), confint(), summary(), predict(),
    fitted(), residuals(), hessian(), loglik(), aic(), bic(); coef/vcov/std_errors/confint/
    coef_table/wald_test come from ModelResult, with t tests on df_residual.
    """

    df_residual: int  # nobs - rank: always known for a least-squares fit
    statistic = "t"
    cluster_default = "HC1"  # R's vcovCL for a least-squares fit

    def __init__(self, design: Design, qr: QRFit, *, device, dtype, tol: float, call: str):
        self.design = design
        self.call = call
        self.tol = tol
        self.device, self.dtype = device, dtype
        self._qr = qr
        d = design
        self._names = tuple(d.names)
        self.rank = qr.rank
        beta = np.where(np.isnan(qr.coef), 0.0, qr.coef)
        eta = d.matvec(beta)
        self._fitted = eta if d.offset is None else eta + d.offset
        self._resid = d.y - self._fitted
        w = d.weights
        self._w_used = np.ones(len(d.y), dtype=bool) if w is None else w != 0
        self.nobs = int(self._w_used.sum())
        self.df_residual = self.nobs - self.rank
        ww = 1.0 if w is None else w
        if self.df_residual == 0 and self.nobs:
            # a saturated fit: R's residuals (Q times the effects beyond the rank, of which there are none)
            # are exactly 0 where the weight is not, and its RSS 0, so that sigma is 0/0 = NaN
            self._resid = np.where(self._w_used, 0.0, self._resid)
            self._fitted = np.where(self._w_used, d.y, self._fitted)
            self.deviance, log_rss = 0.0, None
        elif qr.scaling is None:
            self.deviance = qr.rss if qr.rss is not None else float(np.sum(ww * self._resid**2))
            log_rss = None
        else:
            self.deviance, log_rss = self._scaled_rss()
        self.sigma = math.sqrt(self.deviance / self.df_residual) if self.df_residual > 0 else float("nan")
        self.n_dropped_na = d.n_dropped
        self._r2()
        if log_rss is not None:
            self._range_warnings(log_rss)

    # --- ModelResult hooks -----------------------------------------------------------------
    def _coef_values(self) -> np.ndarray:
        return self._qr.coef

    @property
    def scale(self) -> float:
        """sigma^2, the factor of (X'WX)^{-1} in the classical covariance."""
        return self.sigma**2

    def _robust_vcov(self, type: str, cluster) -> tuple[pd.DataFrame, str]:
        return robust_covariance(self, type, cluster)

    def _chunks(self):
        d = self.design
        return linear_chunks(d, d.y, d.weights, d.offset, self.device, self.dtype)

    def hessian(self) -> pd.DataFrame:
        """Hessian of the objective 0.5 * sum(w * (y - fitted)^2) at the estimate, by autograd (X^T W X).

        The convention of every fit's hessian(): over all coefficients, aliased ones at 0 (their rows
        and columns make it singular); sigma^2 times the inverse of its estimable block is vcov().

        Returns
        -------
        pandas.DataFrame (p, p) over every coefficient name.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.hessian().round(4)
                   Intercept        wt
        Intercept     32.000  102.9520
        wt           102.952  360.9011
        """
        beta = torch.as_tensor(np.nan_to_num(self._qr.coef), dtype=self.dtype, device=self.device)
        H = objective_hessian(self._chunks(), beta)
        return pd.DataFrame(H.cpu().double().numpy(), index=self.names, columns=self.names)

    def _unscaled(self, **options: Any) -> np.ndarray:
        """(J^T J)^{-1} over the estimable coefficients in formula order, from the QR factor of the Jacobian."""
        # no covariance options for a linear model: options (the base's hook signature) is always empty
        C = unscaled_cov(self._qr, self._chunks()).cpu().double().numpy()
        est = self._qr.pivot[: self.rank]
        order = np.argsort(est)
        return C[np.ix_(order, order)]

    def _unscaled_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """(C', d) with _unscaled() = d_i d_j C'_ij (formula order) and C' in float64's range (see scaled_cov).

        For scale-free quantities of a fit of data near 1e300, whose (X'WX)^{-1} is not
        representable: the hat values are h_i = (x_i d) C' (x_i d)'. d is 1 for ordinary fits.

        Returns
        -------
        (numpy.ndarray (k, k), numpy.ndarray (k,))
        """
        C, d = scaled_cov(self._qr, self._chunks())
        order = np.argsort(self._qr.pivot[: self.rank])
        return C.cpu().double().numpy()[np.ix_(order, order)], d.cpu().double().numpy()[order]

    def _working(self) -> tuple[WorkingRows, np.ndarray]:
        """sqrt(w) X over the estimable columns (formula order) and sqrt(w) (y - fitted), rows with w > 0.

        The contract of sandwich.robust_vcov: the scores are their row-wise products.
        """
        d = self.design
        cols = sorted(self._qr.pivot[: self.rank])
        # read from the design's columns block by block: the robust covariances never need all of X
        sw = None if d.weights is None else np.sqrt(d.weights)
        u = None if d.weights is None or self._w_used.all() else self._w_used
        ew = self._resid if sw is None else self._resid * sw
        return WorkingRows(d, cols, sw, u), (ew if u is None else ew[u])

    # --- fit statistics --------------------------------------------------------------------
    def _scaled_rss(self) -> tuple[float, float]:
        """The weighted residual sum of squares of a scaled fit (1e300 data) and its log10, squared scaled.

        Returns
        -------
        (rss, log10 rss): rss is Inf or 0 where it is beyond float64's range, its log10 is not.
        """
        qr = self._qr
        if qr.rss is not None and qr.scaled_rss is not None and qr.scaling is not None:
            r = qr.scaling.residual
            with np.errstate(divide="ignore"):
                return qr.rss, float(np.log10(qr.scaled_rss) - 2 * np.log10(r))
        w = self.design.weights
        e = self._resid if w is None else self._resid * np.sqrt(w)
        k = _power_of_two_below(np.abs(e).max(initial=0.0))
        ss = float(np.sum((e * k) ** 2))
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            return float(ss / k / k), float(np.log10(ss) - 2 * np.log10(k))

    def _scaled_sums(self, f: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        """Model and residual sums of squares of a scaled fit, both times the same power of two (their ratio exact).

        Returns
        -------
        (mss, rss), in common units.
        """
        wn = w * _power_of_two_below(w.max(initial=0.0))  # a common factor of the weights cancels
        c = f - np.sum(wn * f) / np.sum(wn) if self.design.has_intercept else f
        e = self._resid[self._w_used]
        k = _power_of_two_below(max(np.abs(c).max(initial=0.0), np.abs(e).max(initial=0.0)))
        return float(np.sum(wn * (c * k) ** 2)), float(np.sum(wn * (e * k) ** 2))

    def _range_warnings(self, log_rss: float) -> None:
        """TorchlmWarnings where a scaled fit's rss or coefficient variances are beyond float64's range.

        R's lm gives such numbers as Inf or 0 silently; they are given the same here, with the
        representable value (sigma, the standard error) in the warning.
        """
        if self.df_residual <= 0 or not self.rank:
            return
        lo, hi = np.log10(np.finfo(np.float64).tiny), np.log10(np.finfo(np.float64).max)
        log_sigma = 0.5 * (log_rss - math.log10(self.df_residual))
        # a log of -inf is an exact 0 (a perfect fit): representable
        if math.isfinite(log_rss) and not lo <= log_rss <= hi:
            where = "above" if log_rss > hi else "below"
            warnings.warn(
                f"the residual sum of squares (about 1e{log_rss:.0f}) is {where} float64's range: deviance and "
                f"sigma are {self.deviance:g} (as R's lm gives them) and so are the standard errors; sigma is "
                f"about {_exp10(log_sigma)}. Rescale the response (multiply or divide it by a power of ten)",
                TorchlmWarning, stacklevel=4)
            return
        est = self._qr.pivot[: self.rank]
        log_var = 2 * log_sigma + log10_variances(self._qr)
        out = [(self.names[j], v) for j, v in zip(est, log_var) if np.isfinite(v) and not lo <= v <= hi]
        if out:
            labels = [n for n, _ in out]
            ses = ", ".join(f"{n!r}: {_exp10(v / 2)}" for n, v in out)
            warnings.warn(
                f"the variances of the coefficients {labels} are beyond float64's range: vcov() and std_errors() "
                f"give them as 0 or Inf (as R's lm does), and their t values as Inf or 0; their standard errors "
                f"are about {{{ses}}}. Rescale these columns (e.g. by a power of ten)", TorchlmWarning, stacklevel=4)

    def _r2(self):
        d = self.design
        f = self._fitted if d.offset is None else self._fitted - d.offset
        u = self._w_used
        w = np.ones(len(f)) if d.weights is None else d.weights
        f, w = f[u], w[u]
        if self._qr.scaling is not None:
            mss, rss = self._scaled_sums(f, w)
        elif d.has_intercept:
            m = np.sum(w * f) / np.sum(w)
            mss = float(np.sum(w * (f - m) ** 2))
            rss = self.deviance
        else:
            mss = float(np.sum(w * f**2))
            rss = self.deviance
        df_int = 1 if d.has_intercept else 0
        self.fstatistic = None
        if self.rank != df_int:
            with np.errstate(invalid="ignore", divide="ignore"):
                # a perfect fit to a constant response has 0/0 here: NaN, as in R
                self.r_squared = float(np.float64(mss) / np.float64(mss + rss))
            numdf = self.rank - df_int
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                # R's arithmetic also with no residual df (a saturated fit): NaN or Inf, not an exception
                rdf = np.float64(self.df_residual)
                self.adj_r_squared = float(1 - (1 - self.r_squared) * (np.float64(self.nobs - df_int) / rdf))
                value = np.float64(mss / numdf) / (np.float64(rss) / rdf)
            self.fstatistic = FStatistic(float(value), float(numdf), float(self.df_residual))
        else:
            self.r_squared = self.adj_r_squared = 0.0

    def loglik(self) -> float:
        """Gaussian log-likelihood as R's logLik.lm (prior weights; zero weights excluded).

        Returns
        -------
        float
            The log-likelihood at the estimate.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> round(fit.loglik(), 4)
        -80.0147
        """
        u = self._w_used
        w = np.ones(u.sum()) if self.design.weights is None else self.design.weights[u]
        N = len(w)
        return float(0.5 * (np.sum(np.log(w))
                            - N * (math.log(2 * math.pi) + 1 - math.log(N) + math.log(self.deviance))))

    @property
    def df_loglik(self) -> int:
        """Parameters counted by AIC/BIC: the coefficients plus sigma."""
        return self.rank + 1

    def aic(self) -> float:
        """R's AIC: -2 logLik + 2 (rank + 1).

        Returns
        -------
        float

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> round(fit.aic(), 4)
        166.0294
        """
        return -2 * self.loglik() + 2 * self.df_loglik

    def bic(self) -> float:
        """R's BIC: -2 logLik + log(nobs) (rank + 1).

        Returns
        -------
        float

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> round(fit.bic(), 4)
        170.4266
        """
        return -2 * self.loglik() + math.log(self.nobs) * self.df_loglik

    # --- observations ----------------------------------------------------------------------
    def fitted(self) -> pd.Series:
        """Fitted values for the rows used (offset included).

        Returns
        -------
        pandas.Series
            named "fitted", indexed by the rows used (under na_action="exclude", by the rows of the data,
            NaN where a row was dropped for missing values: R's naresid).

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.fitted().head(3).round(4)
        Mazda RX4        23.2826
        Mazda RX4 Wag    21.9198
        Datsun 710       24.8860
        Name: fitted, dtype: float64
        """
        return self._pad(pd.Series(self._fitted, index=self.design.index, name="fitted"))

    def residuals(self, type: str = "response") -> pd.Series:
        """Residuals: "response"/"working" (y - fitted) or "pearson"/"deviance" (sqrt(w) times those).

        Returns
        -------
        pandas.Series
            named "residuals", indexed by the rows used (padded with NaN under na_action="exclude", as fitted()).

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.residuals().head(3).round(4)
        Mazda RX4       -2.2826
        Mazda RX4 Wag   -0.9198
        Datsun 710      -2.0860
        Name: residuals, dtype: float64
        """
        if type in ("response", "working"):
            r = self._resid
        elif type in ("pearson", "deviance"):
            r = self._resid if self.design.weights is None else np.sqrt(self.design.weights) * self._resid
        else:
            raise OptionError(f"residual type must be response, working, pearson or deviance, not {type!r}")
        return self._pad(pd.Series(r, index=self.design.index, name="residuals"))

    def predict(self, newdata: Any = None, *, se_fit: bool = False, interval: str | None = None,
                level: float = 0.95, type: str = "response", terms: Any = None, offset: Any = None,
                vcov: Any = None, pred_var: Any = None, weights: Any = None) -> Any:
        """Predictions (R's predict.lm), also by term (type="terms").

        Parameters
        ----------
        newdata : DataFrame of new rows; None predicts the rows used in fitting (padded with NaN at the
            rows dropped for missing values under na_action="exclude", as R's napredict).
        se_fit : also return standard errors of the fitted means.
        interval : None, "confidence" or "prediction".
        level : interval coverage.
        type : "response" (the fitted means) or "terms" (each term's centred part of the linear predictor:
            a DataFrame with attrs["constant"], or a TermsPrediction with se_fit or an interval).
        terms : with type="terms", the terms to return (R's labels, e.g. "factor(cyl)"); default all.
        offset : offset for newdata when the model was fitted with an offset array.
        vcov : covariance behind se_fit and the intervals, as in summary(): None (classical), a type
            string, a dict {"type": ..., "cluster": ...} or a matrix; se_fit = sqrt(diag(X V X^T)).
        pred_var : the variance of a future response in a prediction interval (R's pred.var); default
            sigma^2 / weights.
        weights : the weights of the future responses (R's weights): pred_var = sigma^2 / weights.

        Returns
        -------
        pandas.Series of predictions, a DataFrame with columns fit, se_fit, lwr, upr, or (type="terms")
        a DataFrame / TermsPrediction with one column per term.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.predict(pd.DataFrame({"wt": [2.5, 3.5]}), interval="confidence").round(4)
               fit      lwr      upr
        0  23.9239  22.5528  25.2951
        1  18.5795  17.4334  19.7255
        """
        if type not in ("response", "link", "terms"):
            raise OptionError(f"predict type must be 'response' or 'terms' for a linear model, not {type!r}")
        if interval not in (None, "none", "confidence", "prediction"):
            raise OptionError(f"interval must be None, 'confidence' or 'prediction', not {interval!r}")
        if terms is not None and type != "terms":
            raise OptionError("terms= selects the columns of type='terms'; add type='terms'")
        interval = None if interval == "none" else interval
        pv = self._prediction_variance(newdata, interval, pred_var, weights)
        if type == "terms":
            out = predict_terms(self, newdata, terms=terms, se_fit=se_fit, interval=interval, level=level,
                                cov=self._covariance(vcov)[0] if se_fit or interval else None,
                                residual_scale=self.sigma, df=self.df_residual, pred_var=pv)
            return out if newdata is not None else self._pad_terms(out)
        out = self._predict_response(newdata, se_fit, interval, level, offset, vcov, pv)
        return out if newdata is not None else self._pad(out)

    def _prediction_variance(self, newdata: Any, interval: str | None, pred_var: Any, weights: Any) -> Any:
        """R's pred.var of a prediction interval (sigma^2 / weights), with predict.lm's warnings."""
        if interval != "prediction":
            return None
        d = self.design
        if newdata is None:
            warn("predictions on current data refer to _future_ responses", stacklevel=3)
        if newdata is None and weights is None and d.weights is not None:
            weights = d.weights
            warn("assuming prediction variance inversely proportional to weights used for fitting", stacklevel=3)
        if newdata is not None and weights is None and d.weights is not None and pred_var is None:
            warn("Assuming constant prediction variance even though model fit is weighted", stacklevel=3)
        if pred_var is not None:
            return np.asarray(pred_var, dtype=float)
        w = 1.0 if weights is None else np.asarray(weights, dtype=float)
        return self.sigma**2 / w

    def _predict_response(self, newdata: Any, se_fit: bool, interval: str | None, level: float, offset: Any,
                          vcov: Any, pred_var: Any) -> pd.Series | pd.DataFrame:
        d = self.design
        est = self._qr.pivot[: self.rank]
        beta = self._qr.coef[est]
        X: WorkingRows | np.ndarray | None
        if newdata is None:
            X, index = WorkingRows(d, list(range(len(self.names))), None) if se_fit or interval else None, d.index
            fit = self._fitted.copy()  # the fitted values, bit for bit (R: predict(fit) == fitted(fit))
        else:
            X = X_new = newdata_matrix(d, newdata)
            index = newdata.index if hasattr(newdata, "index") else pd.RangeIndex(len(X_new))
            off = newdata_offset(d, newdata, offset, len(X_new))
            if self.rank < len(self.names):
                warnings.warn("prediction from a rank-deficient fit may be misleading", stacklevel=3)
            fit = X_new[:, est] @ beta
            if off is not None:
                fit = fit + off
        if not se_fit and interval is None:
            return pd.Series(fit, index=index, name="fit")
        if vcov is None:
            # X R^{-1}: rows' standard errors without forming (X^T X)^{-1} or the hat matrix
            R = self._qr.R.cpu().double()
            ip = self.sigma**2 * row_quadratic(X, est, lambda B: torch.linalg.solve_triangular(
                R, B, upper=True, left=False).square().sum(dim=1))
        else:
            V = torch.as_tensor(self._covariance(vcov)[0].to_numpy())
            ip = row_quadratic(X, sorted(est), lambda B: ((B @ V) * B).sum(dim=1))
        return self._prediction_frame(fit, index, ip, se_fit, interval, level, pred_var)

    def _prediction_frame(self, fit: np.ndarray, index: Any, ip: np.ndarray, se_fit: bool, interval: str | None,
                          level: float, pred_var: Any) -> pd.DataFrame:
        """predict.lm's table from the fitted values and their variances ``ip``: se_fit, lwr, upr."""
        out = pd.DataFrame({"fit": fit}, index=index)
        if se_fit:
            out["se_fit"] = np.sqrt(ip)
        if interval is not None:
            width = np.sqrt(ip + pred_var) if interval == "prediction" else np.sqrt(ip)
            q = self._quantile(level)  # R's qt((1 - level)/2, df), level checked
            out["lwr"] = fit - q * width
            out["upr"] = fit + q * width
        return out

    # --- presentation ----------------------------------------------------------------------
    def summary(self, vcov: Any = None, *, cluster: Any = None, correlation: bool = False,
                symbolic_cor: bool = False) -> LMSummary:
        """R-style summary (print it, or read .coefficients).

        Parameters
        ----------
        vcov : covariance of the coefficient table's t tests and of the F test: None (classical, R's
            summary.lm); a type string "HC0".."HC5", "HC4m", "HAC"; a dict {"type": ..., "cluster": ...}
            as vcov()'s arguments; or a (k, k) matrix over the estimable terms. A robust choice gives
            lmtest::coeftest(fit, vcov = V) and the Wald F test lmtest::waldtest(fit, vcov = V).
        cluster : cluster variable(s), as in vcov().
        correlation : R's correlation = TRUE: the estimates' correlations (``.correlation``, from the
            covariance of the table), printed as R's "Correlation of Coefficients:" block.
        symbolic_cor : R's symbolic.cor = TRUE: print them as symnum's symbols.

        Returns
        -------
        LMSummary

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> print(fit.summary())
        <BLANKLINE>
        Call:
        lm(formula = mpg ~ wt)
        <BLANKLINE>
        Residuals:
            Min      1Q  Median      3Q     Max
        -4.5432 -2.3647 -0.1252  1.4096  6.8727
        <BLANKLINE>
        Coefficients:
                  Estimate Std. Error t value Pr(>|t|)
        Intercept  37.2851     1.8776  19.858  < 2e-16 ***
        wt         -5.3445     0.5591  -9.559 1.29e-10 ***
        ---
        Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
        <BLANKLINE>
        Residual standard error: 3.046 on 30 degrees of freedom
        Multiple R-squared:  0.7528,  Adjusted R-squared:  0.7446
        F-statistic: 91.38 on 1 and 30 DF,  p-value: 1.294e-10
        <BLANKLINE>
        """
        return LMSummary(self._omitted(), vcov=vcov, cluster=cluster, correlation=correlation,
                         symbolic_cor=symbolic_cor)

    def __str__(self) -> str:
        """What R's print(fit) shows: the call and the coefficients."""
        return print_lm(self)

    __repr__ = __str__
