"""broom's verbs on every fit: ``tidy()``, ``glance()`` and ``augment()`` with broom 1.0.3's columns, in its order.

``fit.tidy()`` is the coefficient table (term, estimate, std.error, statistic, p.value, and conf.low,
conf.high with ``conf_int=True``), ``fit.glance()`` one row of fit statistics, ``fit.augment()`` the
data (R's model frame, or the data or new data given) with .fitted, .resid and the influence measures.
Each is a pandas DataFrame with a RangeIndex and broom's column names; NA is NaN.

The numbers are the fit's own accessors (coef_table, confint, predict, residuals, hatvalues,
rstandard, cooks_distance, influence, loglik, aic, bic); this module lays them out as broom does.
One base (:class:`BroomMethods`) and a small mixin for each kind of result, whose glance and augment
differ as broom's methods do:

=====================  ==========================================================================
LinearBroom            lm: tidy.lm (confint.lm's t intervals), glance.lm, augment.lm
GeneralizedBroom       glm and glm.nb: tidy.glm / tidy.negbin (R 4.2's confint(): MASS's profile
                       intervals), glance.glm / glance.negbin, augment.glm
NonlinearBroom         nls: tidy.nls (MASS's profile intervals), glance.nls, augment.nls
AovBroom               aov: tidy.aov (summary.aov's table), glance.aov; augment.lm
EstimatesBroom         tl.mle / tl.infer: tidy.mle2's table (profile intervals where the fit has a
                       likelihood), glance with logLik, AIC, BIC, nobs
=====================  ==========================================================================

``vcov=`` (and ``cluster=``) in tidy is R's ``tidy(lmtest::coeftest(fit, vcov = V), conf.int = TRUE)``:
the tests and Wald intervals with that covariance (t on the residual df for lm and nls, z for a glm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import OptionError, TorchlmError
from torchlm.frame import evaluate_variable
from torchlm.frame.data import as_frame
from torchlm.frame.formula import r_spelling
from torchlm.inference.rterms import model_terms
from torchlm.present.broom import data_columns, one_row, tidy_aov_table, tidy_strata, tidy_tukey
from torchlm.present.deparse import parse
from torchlm.results.design_methods import padded_rows
from torchlm.results.model_frame import design_frame, first_name

COEF_COLUMNS = ("estimate", "std.error", "statistic", "p.value")
CONF_METHODS = (None, "wald", "profile")
INTERVALS = (None, "none", "confidence", "prediction")


def check_level(conf_level: Any) -> float:
    """``conf_level`` as a float, or an OptionError where it is not a number in (0, 1).

    Returns
    -------
    float
    """
    if isinstance(conf_level, bool) or not isinstance(conf_level, (int, float, np.floating)) \
            or not 0 < conf_level < 1:
        raise OptionError(f"conf_level must be a number between 0 and 1 (e.g. 0.95), not {conf_level!r}")
    return float(conf_level)


def check_choice(name: str, value: Any, choices: tuple, hint: str = "") -> None:
    """An OptionError naming the choices where ``value`` is not one of them.

    Returns
    -------
    None
    """
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        shown = ", ".join("None" if c is None else repr(c) for c in choices)
        raise OptionError(f"{name} must be one of {shown}, not {value!r}{hint}")


def _no_options(kind: str, **given: Any) -> None:
    """An OptionError for augment options that a kind of fit does not have (broom's method has no such argument)."""
    bad = [k for k, v in given.items() if v is not None and v is not False]
    if bad:
        raise OptionError(f"augment() of {kind} takes no {', '.join(bad)} (broom's method has no such argument)")


class BroomMethods:
    """broom's tidy(), glance() and augment(); the kinds below give glance, augment and the default interval."""

    #: the interval broom's tidy gives with conf.int = TRUE: "wald" (confint.lm) or "profile" (MASS)
    _broom_conf = "wald"

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95, vcov: Any = None, exponentiate: bool = False,
             *, cluster: Any = None, conf_method: str | None = None) -> pd.DataFrame:
        """broom's tidy(): the coefficient table, one row per coefficient.

        Parameters
        ----------
        conf_int : bool
            Add conf.low and conf.high, the interval broom's method gives (confint.lm's t interval for
            lm; R 4.2's confint() for glm, glm.nb and nls: MASS's profile intervals).
        conf_level : float
            Coverage of the interval, in (0, 1).
        vcov : covariance choice
            As ``vcov()`` takes it ("HC3", {"type": "HC1", "cluster": ...}, a matrix): R's
            ``tidy(lmtest::coeftest(fit, vcov = V), conf.int = TRUE)``, Wald tests and intervals with V.
        exponentiate : bool
            exp() of estimate, conf.low and conf.high (odds or rate ratios), as broom's exponentiate.
        cluster : cluster variable(s) for the covariance, as in ``vcov()``.
        conf_method : None, "wald" or "profile"
            None: broom's interval (Wald where a vcov is given); "wald" or "profile" to choose.

        Returns
        -------
        pandas.DataFrame
            term, estimate, std.error, statistic, p.value[, conf.low, conf.high]; NaN rows for aliased
            coefficients.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.tidy(conf_int=True).round(4)
                term  estimate  std.error  statistic  p.value  conf.low  conf.high
        0  Intercept   37.2851     1.8776    19.8576      0.0   33.4505    41.1198
        1         wt   -5.3445     0.5591    -9.5590      0.0   -6.4863    -4.2026
        """
        level = check_level(conf_level)
        check_choice("conf_method", conf_method, CONF_METHODS)
        robust = vcov is not None or cluster is not None
        tab = self._broom_table(vcov, cluster)
        out = pd.DataFrame({"term": [str(n) for n in tab.index]})
        for name, col in zip(COEF_COLUMNS, tab.columns):
            out[name] = tab[col].to_numpy(dtype=float)
        if conf_int:
            method = conf_method or ("wald" if robust else self._broom_conf)
            if method == "profile" and robust:
                raise OptionError("profile intervals come from the likelihood: vcov= and cluster= go with "
                                  "conf_method='wald'")
            ci = self._broom_wald(level, vcov, cluster) if method == "wald" else self._broom_profile(level)
            out["conf.low"], out["conf.high"] = ci[:, 0], ci[:, 1]
        if exponentiate:
            for col in ("estimate", "conf.low", "conf.high"):
                if col in out.columns:
                    out[col] = np.exp(out[col])
        return out

    def _broom_table(self, vcov: Any, cluster: Any) -> pd.DataFrame:
        fit: Any = self
        return fit.coef_table(vcov, cluster=cluster)

    def _broom_wald(self, level: float, vcov: Any, cluster: Any) -> np.ndarray:
        """estimate -/+ quantile * SE: confint.lm, confint.default, and lmtest's coefci with a vcov."""
        fit: Any = self
        q = fit._quantile(level)
        b = fit.coef().to_numpy(dtype=float)
        se = fit.std_errors(vcov, cluster=cluster).to_numpy(dtype=float)
        return np.column_stack([b - q * se, b + q * se])

    def _broom_profile(self, level: float) -> np.ndarray:
        raise OptionError(f"profile intervals are not available for a {type(self).__name__}: use "
                          "conf_method='wald'")

    def glance(self) -> pd.DataFrame:
        """broom's glance(): one row of statistics of the fit.

        Returns
        -------
        pandas.DataFrame
            One row; the columns of broom's method for this kind of fit.
        """
        raise OptionError(f"glance() is not available for a {type(self).__name__}")

    def augment(self, newdata: Any = None, *, data: Any = None, type_predict: str | None = None,
                type_residuals: str | None = None, se_fit: bool = False, interval: str | None = None,
                conf_level: float = 0.95) -> pd.DataFrame:
        """broom's augment(): the data, one row per observation, with the fit's per-row columns added.

        Parameters
        ----------
        newdata : data frame, optional
            New rows: their columns with .fitted (and .se.fit, .lower/.upper; .resid for a linear
            model where the response can be evaluated in them).
        data : data frame, optional
            The data to add the columns to (broom's data =): the rows used (na.omit), or, for a fit
            with na_action="exclude", the rows of the data. Default R's model frame of the fit.
        type_predict : str, optional
            glm: "link" (default) or "response", the scale of .fitted.
        type_residuals : str, optional
            glm: "deviance" (default) or "pearson", the type of .resid.
        se_fit : bool
            Add .se.fit.
        interval : None, "confidence" or "prediction"
            lm: add .lower and .upper.
        conf_level : float
            Coverage of the interval.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.augment().columns.tolist()
        ['.rownames', 'mpg', 'wt', '.fitted', '.resid', '.hat', '.sigma', '.cooksd', '.std.resid']
        """
        raise OptionError(f"augment() is not available for a {type(self).__name__}")


class DesignBroom(BroomMethods):
    """What augment of an lm and a glm share: the data it starts from and the influence columns."""

    def _augment_base(self, newdata: Any, data: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """The frame augment starts from and the positions among its rows of the rows used (empty with newdata)."""
        fit: Any = self
        if newdata is not None:
            return data_columns(as_frame(newdata)), np.zeros(0, dtype=int)
        d = fit.design
        padded = bool(fit.na_exclude)
        pos, index = padded_rows(d) if padded else (np.arange(len(d.y)), d.index)
        if data is None:
            return design_frame(fit, padded), pos
        frame = as_frame(data)
        if len(frame) != len(index):
            want = "the rows of the data (the fit pads them: na_action='exclude')" if padded else "the rows used"
            raise OptionError(f"data has {len(frame)} rows, the fit's augment needs {len(index)}: {want}")
        return data_columns(frame), pos

    def _influence_columns(self, n_rows: int, pos: np.ndarray) -> dict[str, np.ndarray]:
        """.hat, .sigma, .cooksd, .std.resid as broom's add_hat_sigma_cols: 0, 0, 0, NA at a row of zero weight."""
        fit: Any = self
        w = fit.design.weights
        nz = np.ones(len(pos), dtype=bool) if w is None else np.asarray(w) != 0
        values = [fit.hatvalues(), fit.influence().sigma, fit.cooks_distance(), fit.rstandard()]
        if fit.na_exclude:
            # padded as R pads them (leverage 0 and the fit's sigma at a dropped row, NA for the others)
            hat, sigma, cook, std = (np.array(v.to_numpy(dtype=float)) for v in values)
            zero = pos[~nz]
            hat[zero], sigma[zero], cook[zero], std[zero] = 0.0, 0.0, 0.0, np.nan
        else:
            hat, sigma, cook, std = np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows), np.full(n_rows, np.nan)
            at = pos[nz]
            for arr, v in zip((hat, sigma, cook, std), values):
                arr[at] = v.to_numpy(dtype=float)
        return {".hat": hat, ".sigma": sigma, ".cooksd": cook, ".std.resid": std}

    def _new_response(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The response evaluated in new data, where broom finds it there (its label or first variable a column)."""
        try:
            lhs = model_terms(self).response
        except TorchlmError:
            return None
        if lhs is None:
            return None
        first = first_name(parse(lhs))
        if lhs not in frame.columns and first not in frame.columns:
            return None
        try:
            value = np.asarray(evaluate_variable(frame, r_spelling(lhs)))
        except TorchlmError:
            return None
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.number):
            return None
        return value.astype(float)


class LinearBroom(DesignBroom):
    """broom's methods of an lm: tidy.lm, glance.lm, augment.lm."""

    def glance(self) -> pd.DataFrame:
        """broom's glance.lm: r.squared, adj.r.squared, sigma, statistic, p.value, df, logLik, AIC, BIC, deviance,
        df.residual, nobs (statistic, p.value and df NA for a fit of one coefficient).

        Returns
        -------
        pandas.DataFrame
            One row.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.glance()[["r.squared", "sigma", "AIC", "nobs"]].round(4)
           r.squared   sigma       AIC  nobs
        0     0.7528  3.0459  166.0294    32
        """
        fit: Any = self
        fs = fit.fstatistic
        one = len(fit.estimable) == 1 or fs is None
        return one_row({
            "r.squared": fit.r_squared, "adj.r.squared": fit.adj_r_squared, "sigma": fit.sigma,
            "statistic": None if one else fs.value,
            "p.value": None if one else float(stats.f.sf(fs.value, fs.numdf, fs.dendf)),
            "df": None if one else fs.numdf, "logLik": fit.loglik(), "AIC": fit.aic(), "BIC": fit.bic(),
            "deviance": fit.deviance, "df.residual": int(fit.df_residual), "nobs": int(fit.nobs)})

    def augment(self, newdata: Any = None, *, data: Any = None, type_predict: str | None = None,
                type_residuals: str | None = None, se_fit: bool = False, interval: str | None = None,
                conf_level: float = 0.95) -> pd.DataFrame:
        """broom's augment.lm: the model frame (or data / newdata) with .fitted, [.lower, .upper], [.se.fit], .resid,
        and without newdata .hat, .sigma, .cooksd, .std.resid.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.augment()[[".fitted", ".resid", ".hat", ".cooksd"]].head(2).round(4)
           .fitted  .resid    .hat  .cooksd
        0  23.2826 -2.2826  0.0433   0.0133
        1  21.9198 -0.9198  0.0352   0.0017
        """
        hint = " (a linear model's predictions and residuals are on the response scale)"
        check_choice("type_predict", type_predict, (None, "response"), hint)
        check_choice("type_residuals", type_residuals, (None, "response"), hint)
        check_choice("interval", interval, INTERVALS)
        level = check_level(conf_level)
        fit: Any = self
        frame, pos = self._augment_base(newdata, data)
        interval = None if interval == "none" else interval
        if se_fit or interval is not None:
            p = fit.predict(newdata, se_fit=bool(se_fit), interval=interval, level=level)
            frame[".fitted"] = p["fit"].to_numpy(dtype=float)
            if interval is not None:
                frame[".lower"], frame[".upper"] = p["lwr"].to_numpy(dtype=float), p["upr"].to_numpy(dtype=float)
            if se_fit:
                frame[".se.fit"] = p["se_fit"].to_numpy(dtype=float)
        else:
            frame[".fitted"] = np.asarray(fit.predict(newdata), dtype=float)
        if newdata is not None:
            resp = self._new_response(as_frame(newdata))
            if resp is not None:
                frame[".resid"] = resp - frame[".fitted"].to_numpy()
            return frame
        frame[".resid"] = fit.residuals().to_numpy(dtype=float)
        for name, col in self._influence_columns(len(frame), pos).items():
            frame[name] = col
        return frame


class GeneralizedBroom(DesignBroom):
    """broom's methods of a glm (and MASS's glm.nb): tidy.glm / tidy.negbin, glance.glm / glance.negbin, augment.glm."""

    _broom_conf = "profile"  # R 4.2's confint(glm): MASS's profile likelihood intervals

    def _broom_table(self, vcov: Any, cluster: Any) -> pd.DataFrame:
        fit: Any = self
        if vcov is None and cluster is None:
            return fit.coef_table()
        # lmtest's coeftest.glm: z tests (df = Inf) whatever the family
        return fit._table(fit._covariance(vcov, cluster)[0], "z")

    def _broom_profile(self, level: float) -> np.ndarray:
        fit: Any = self
        return fit.confint(level, method="profile").to_numpy(dtype=float)

    def glance(self) -> pd.DataFrame:
        """broom's glance.glm (and glance.negbin): null.deviance, df.null, logLik, AIC, BIC, deviance, df.residual,
        nobs.

        Returns
        -------
        pandas.DataFrame
            One row (logLik, AIC and BIC NaN for the quasi families).

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.glance()[["null.deviance", "deviance", "AIC", "nobs"]].round(4)
           null.deviance  deviance      AIC  nobs
        0        43.2297   19.1761  23.1761    32
        """
        fit: Any = self
        return one_row({
            "null.deviance": fit.null_deviance, "df.null": int(fit.df_null), "logLik": fit.loglik(),
            "AIC": fit.aic(), "BIC": fit.bic(), "deviance": fit.deviance, "df.residual": int(fit.df_residual),
            "nobs": int(fit.nobs)})

    def augment(self, newdata: Any = None, *, data: Any = None, type_predict: str | None = None,
                type_residuals: str | None = None, se_fit: bool = False, interval: str | None = None,
                conf_level: float = 0.95) -> pd.DataFrame:
        """broom's augment.glm: the model frame (or data / newdata) with .fitted (the link scale unless
        type_predict="response"), [.se.fit], and without newdata .resid, .std.resid, .hat, .sigma, .cooksd.

        .std.resid is rstandard()'s deviance type whatever type_residuals is, as broom 1.0.3 gives it.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
        >>> fit.augment(type_predict="response")[[".fitted", ".resid", ".hat"]].head(2).round(4)
           .fitted  .resid    .hat
        0   0.8172  0.6354  0.1258
        1   0.6157  0.9848  0.1082
        """
        if type_predict == "terms":
            raise OptionError("type_predict='terms' gives one column per term: use fit.predict(type='terms')")
        check_choice("type_predict", type_predict, (None, "link", "response"))
        check_choice("type_residuals", type_residuals, (None, "deviance", "pearson"))
        _no_options("a glm", interval=interval)
        check_level(conf_level)
        fit: Any = self
        frame, pos = self._augment_base(newdata, data)
        kind = type_predict or "link"
        if se_fit:
            p = fit.predict(newdata, type=kind, se_fit=True)
            frame[".fitted"], frame[".se.fit"] = p["fit"].to_numpy(dtype=float), p["se_fit"].to_numpy(dtype=float)
        else:
            frame[".fitted"] = np.asarray(fit.predict(newdata, type=kind), dtype=float)
        if newdata is not None:
            return frame
        frame[".resid"] = fit.residuals(type_residuals or "deviance").to_numpy(dtype=float)
        infl = self._influence_columns(len(frame), pos)
        for name in (".std.resid", ".hat", ".sigma", ".cooksd"):
            frame[name] = infl[name]
        return frame


class NonlinearBroom(BroomMethods):
    """broom's methods of an nls fit: tidy.nls, glance.nls, augment.nls."""

    _broom_conf = "profile"  # R 4.2's confint(nls): MASS's profile intervals

    def _broom_profile(self, level: float) -> np.ndarray:
        fit: Any = self
        return fit.confint(level).to_numpy(dtype=float)

    def glance(self) -> pd.DataFrame:
        """broom's glance.nls: sigma, isConv, finTol, logLik, AIC, BIC, deviance, df.residual, nobs.

        Returns
        -------
        pandas.DataFrame
            One row.
        """
        fit: Any = self
        return one_row({
            "sigma": fit.sigma, "isConv": bool(fit.converged), "finTol": fit.tolerance, "logLik": fit.loglik(),
            "AIC": fit.aic(), "BIC": fit.bic(), "deviance": fit.deviance, "df.residual": int(fit.df_residual),
            "nobs": int(fit.nobs)})

    def augment(self, newdata: Any = None, *, data: Any = None, type_predict: str | None = None,
                type_residuals: str | None = None, se_fit: bool = False, interval: str | None = None,
                conf_level: float = 0.95) -> pd.DataFrame:
        """broom's augment.nls: the model's variables (or data / newdata) with .fitted, and .resid without newdata.

        Returns
        -------
        pandas.DataFrame
        """
        _no_options("an nls fit", type_predict=type_predict, type_residuals=type_residuals, se_fit=se_fit,
                    interval=interval)
        check_level(conf_level)
        fit: Any = self
        if newdata is not None:
            frame = data_columns(as_frame(newdata))
            frame[".fitted"] = np.asarray(fit.predict(newdata), dtype=float)
            return frame
        n = len(fit.fitted())
        if data is None:
            mf = fit.frame
            frame = pd.DataFrame({v: np.asarray(mf.column(v)) for v in mf.variables})
        else:
            frame = as_frame(data)
            if len(frame) != n:
                raise OptionError(f"data has {len(frame)} rows, the fit's augment needs the {n} rows used")
            frame = data_columns(frame)
        frame[".fitted"] = fit.fitted().to_numpy(dtype=float)
        frame[".resid"] = fit.residuals().to_numpy(dtype=float)
        return frame


class AovBroom(LinearBroom):
    """broom's methods of an aov: tidy.aov (summary.aov's table), glance.aov; augment is augment.lm's."""

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95, vcov: Any = None, exponentiate: bool = False,
             *, cluster: Any = None, conf_method: str | None = None) -> pd.DataFrame:
        """broom's tidy.aov: summary.aov's table, one row per term and Residuals.

        Returns
        -------
        pandas.DataFrame
            term, df, sumsq, meansq, statistic, p.value.
        """
        check_level(conf_level)
        if conf_int or vcov is not None or exponentiate or cluster is not None or conf_method is not None:
            raise OptionError("tidy() of an aov is summary.aov's table (broom's tidy.aov), which has no coefficients: "
                              "for the coefficient table with conf_int, vcov or exponentiate fit it with tl.lm()")
        fit: Any = self
        return tidy_aov_table(fit.summary()[0])

    def glance(self) -> pd.DataFrame:
        """broom's glance.aov: logLik, AIC, BIC, deviance, nobs, r.squared.

        Returns
        -------
        pandas.DataFrame
            One row.
        """
        fit: Any = self
        return one_row({"logLik": fit.loglik(), "AIC": fit.aic(), "BIC": fit.bic(), "deviance": fit.deviance,
                        "nobs": int(fit.nobs), "r.squared": fit.r_squared})


def _or_nan(f: Any) -> float | None:
    try:
        return float(f())
    except OptionError:
        return None


class EstimatesBroom(BroomMethods):
    """broom's methods for tl.mle / tl.infer estimates: tidy as tidy.mle2 (the coefficient table), glance."""

    @property
    def _broom_conf(self) -> str:  # type: ignore[override]
        # bbmle's confint (tidy.mle2's) profiles the likelihood; an objective that is not one has Wald intervals
        lik = getattr(self, "_likelihood", None)
        return "profile" if lik is not None and lik.refit is not None else "wald"

    def _broom_profile(self, level: float) -> np.ndarray:
        fit: Any = self
        return fit.confint(level, method="profile").to_numpy(dtype=float)

    def glance(self) -> pd.DataFrame:
        """logLik, AIC, BIC and nobs of the estimates (NaN where the objective is no likelihood or nobs unknown).

        Returns
        -------
        pandas.DataFrame
            One row.

        Examples
        --------
        >>> d = tl.datasets.load("InsectSprays")
        >>> est = tl.mle(lambda p, d: -torch.distributions.Poisson(p["rate"]).log_prob(d["count"]), {"rate": 5.0}, d)
        >>> est.glance().round(4)
             logLik       AIC       BIC  nobs
        0 -337.6509  677.3017  679.5784    72
        """
        fit: Any = self
        return one_row({"logLik": _or_nan(fit.loglik), "AIC": _or_nan(fit.aic), "BIC": _or_nan(fit.bic),
                        "nobs": fit.nobs})


class TukeyTidy:
    """broom's tidy.TukeyHSD for R's TukeyHSD tables."""

    def tidy(self) -> pd.DataFrame:
        """broom's tidy.TukeyHSD: one row per comparison.

        Returns
        -------
        pandas.DataFrame
            term, contrast, null.value, estimate, conf.low, conf.high, adj.p.value.
        """
        tables: Any = self
        return tidy_tukey(dict(tables))


class StrataTidy:
    """broom's tidy.aovlist for a multistratum aov."""

    def tidy(self) -> pd.DataFrame:
        """broom's tidy.aovlist: each stratum's summary.aov table (the (Intercept) stratum left out).

        Returns
        -------
        pandas.DataFrame
            stratum, term, df, sumsq, meansq, statistic, p.value.
        """
        fit: Any = self
        return tidy_strata(fit.summary().tables)
