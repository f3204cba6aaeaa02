"""The result base every fitted model shares: estimates, covariance choice, standard errors, intervals and Wald tests.

A model supplies a few facts (``_coef_values``, ``_identified``, ``_unscaled``, ``scale``,
``df_residual``, ``statistic`` and, for robust covariances, ``_robust_vcov``); the base turns them
into R's accessors once, with one spelling for choosing a covariance everywhere::

    vcov=None                          the model's own (R's vcov(fit))
    vcov="HC3"                         a type string: "const", "HC0".."HC5", "HC4m", "HAC"
    vcov={"type": "HC1", "cluster": "firm"}   a cluster spec (cluster= alone is vcovCL's default type)
    vcov=V                             a (k, k) matrix over the estimable coefficients

and the same ``vcov=`` (plus ``cluster=``) in ``vcov``, ``std_errors``, ``confint``, ``coef_table``,
``wald_test``, ``summary`` and ``predict``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import OptionError
from torchlm.inference.sandwich import CLUSTER_TYPES, ROBUST_TYPES, intercept_name
from torchlm.models.update import model_formula, refit_formula

VCOV_TYPES = ("const",) + ROBUST_TYPES


def confint_labels(level: float) -> list[str]:
    """R's column names for an interval: '2.5 %', '97.5 %'.

    Returns
    -------
    list of two str
    """
    a = (1 - level) / 2
    return [f"{100 * q:.3g} %" for q in (a, 1 - a)]


@dataclass(frozen=True)
class WaldTest:
    """A joint Wald test that some coefficients are 0 (lmtest::waldtest).

    Attributes
    ----------
    statistic : F (chi-squared / df) for t-based models, chi-squared for z-based ones.
    df : numerator degrees of freedom (number of coefficients tested).
    df_residual : denominator degrees of freedom of F (None for a chi-squared test).
    p_value : upper tail probability.
    test : "F" or "Chisq".
    """

    statistic: float
    df: int
    df_residual: int | None
    p_value: float
    test: str


@dataclass(frozen=True)
class CovarianceChoice:
    """A parsed ``vcov=`` option: the type, the cluster spec, or a user's matrix."""

    type: str
    cluster: Any = None
    matrix: Any = None


@dataclass(frozen=True, repr=False)
class Refit:
    """How a result was fitted, for update(): the fitter, the formula and the other arguments as given.

    ``update(fit, ..., evaluate=False)`` returns the new one (R's unevaluated call); ``evaluate()`` fits it.
    """

    fitter: Callable[..., Any]
    formula: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def evaluate(self) -> Any:
        """Fit the model: R's ``eval(update(fit, ..., evaluate = FALSE))``.

        Returns
        -------
        LinearModelResult or GeneralizedLinearModelResult
            The fitter's result.
        """
        return self.fitter(self.formula, **self.arguments)

    @property
    def call(self) -> str:
        """The call as R prints it: the fitter, the formula and the arguments not at their defaults.

        Returns
        -------
        str
            E.g. ``lm(formula = mpg ~ wt + hp, data = <DataFrame 32 x 11>, subset = cyl != 4)``.
        """
        defaults = {k: p.default for k, p in inspect.signature(self.fitter).parameters.items()}
        parts = [f"formula = {self.formula}"]
        for k, v in self.arguments.items():
            if v is None or (isinstance(v, (str, int, float, bool)) and type(v) is type(defaults.get(k))
                             and v == defaults.get(k)):
                continue
            parts.append(f"{k} = {_argument_text(v)}")
        return f"{self.fitter.__name__}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self.call


def _argument_text(v: Any) -> str:
    """An argument of a call as the call prints it: expressions as written, data by their shape."""
    if isinstance(v, str):
        return v
    if isinstance(v, pd.DataFrame):
        return f"<DataFrame {v.shape[0]} x {v.shape[1]}>"
    if callable(getattr(v, "r_call", None)):
        return str(v.r_call())
    if isinstance(v, dict):
        return "list(" + ", ".join(f"{k} = {_argument_text(x)}" for k, x in v.items()) + ")"
    if isinstance(v, (bool, int, float)):
        return repr(v)
    return f"<{type(v).__name__}>"


class ModelResult:
    """Base of every fitted model (lm, glm, tl.infer / tl.mle estimates, and the models to come).

    Subclasses set ``_names`` (a tuple) and ``df_residual`` and implement the hooks below; everything else
    (coef, estimable, aliased, vcov, std_errors, confint, coef_table, wald_test) is defined here once.

    Hooks
    -----
    _coef_values() : (p,) estimates in ``names`` order, NaN where not estimable.
    _identified() : (p,) bool, which coefficients are estimable (R's non-aliased ones).
    _unscaled(**options) : (k, k) unscaled covariance over the estimable coefficients, in ``names``
        order (for lm (X'WX)^-1, for glm the inverse information); ``scale`` times it is the
        model's covariance.
    scale : sigma^2, the dispersion, or 1.
    statistic : "t" (tests and intervals use t with df_residual) or "z".
    _robust_vcov(type, cluster) : (DataFrame over the estimable coefficients, description) of a
        robust type; the base handles "const" and user matrices.
    cluster_default : the type a cluster spec without one means (R's vcovCL: HC1 for least
        squares, HC0 for likelihood models).
    robust_types : the robust types the model offers.
    """

    _names: tuple[str, ...]
    _refit: Refit | None = None  # set by the fitter (tl.lm, tl.glm): what update() calls again
    df_residual: int | None
    statistic = "t"
    robust_types: tuple[str, ...] = VCOV_TYPES[1:]
    robust_hint = ""

    @property
    def names(self) -> list[str]:
        """The coefficient names, in the model's order.

        Returns
        -------
        list of str
            A new list each time: changing it leaves the fit as it was.
        """
        return list(self._names)

    # a read-only property, not a class attribute: a model may derive it from the fit (tl.infer's estimates
    # do); a class attribute in a subclass still overrides it
    @property
    def cluster_default(self) -> str:
        """The covariance type a cluster spec without one means (R's vcovCL: HC0 unless a model says HC1)."""
        return "HC0"

    # --- hooks -------------------------------------------------------------------------------
    def _coef_values(self) -> np.ndarray:
        raise NotImplementedError

    def _identified(self) -> np.ndarray:
        return ~np.isnan(self._coef_values())

    def _unscaled(self, **options: Any) -> np.ndarray:
        raise NotImplementedError

    @property
    def scale(self) -> float:
        """Factor of the unscaled covariance: sigma^2, the dispersion, or 1."""
        raise NotImplementedError

    def _robust_vcov(self, type: str, cluster: Any) -> tuple[pd.DataFrame, str]:
        raise OptionError(f"robust covariances are not available for {self.__class__.__name__}")

    # --- estimates -----------------------------------------------------------------------------
    def coef(self) -> pd.Series:
        """Estimates by name; non-estimable (aliased) ones are NaN, as R's NA.

        Returns
        -------
        pandas.Series named "Estimate", indexed by the coefficient names.

        Examples
        --------
        >>> d = pd.DataFrame({"y": [1.0, 3, 2, 5], "a": [1.0, 2, 3, 4]}).assign(b=lambda d: 2 * d.a)
        >>> tl.lm("y ~ a + b", d).coef().round(4)
        Intercept    0.0
        a            1.1
        b            NaN
        Name: Estimate, dtype: float64
        """
        return pd.Series(np.array(self._coef_values(), dtype=float), index=list(self.names), name="Estimate")

    @property
    def estimable(self) -> list[str]:
        """Names of the estimable (non-aliased, identifiable) coefficients, in order."""
        return [n for n, ok in zip(self.names, self._identified()) if ok]

    @property
    def aliased(self) -> pd.Series:
        """True for each coefficient that is not estimable (R's ``alias``: NA in coef)."""
        return pd.Series(~np.asarray(self._identified(), dtype=bool), index=list(self.names))

    # --- covariance --------------------------------------------------------------------------
    def _choice(self, vcov: Any, cluster: Any) -> CovarianceChoice:
        """Parse a ``vcov=`` option (with an optional ``cluster=``) into a CovarianceChoice."""
        if isinstance(vcov, dict):
            bad = set(vcov) - {"type", "cluster"}
            if bad:
                raise OptionError(f"vcov dict keys must be 'type' and/or 'cluster', got {sorted(bad)}")
            if cluster is not None and vcov.get("cluster") is not None:
                raise OptionError("give the cluster once: in vcov={'cluster': ...} or as cluster=, not both")
            cluster = vcov.get("cluster", cluster)
            vcov = vcov.get("type")
        if vcov is not None and not isinstance(vcov, str):
            if cluster is not None:
                raise OptionError("cluster= cannot be combined with a covariance matrix")
            return CovarianceChoice("matrix", matrix=vcov)
        if vcov is None:
            return CovarianceChoice("const" if cluster is None else self.cluster_default, cluster)
        if vcov not in VCOV_TYPES:
            raise OptionError(f"unknown vcov type {vcov!r}; choose one of {', '.join(VCOV_TYPES)}")
        if vcov != "const" and vcov not in self.robust_types:
            raise OptionError(f"vcov type {vcov!r} is not available for this model{self.robust_hint}; "
                              f"supported: {', '.join(('const',) + self.robust_types)}")
        if cluster is not None:
            if vcov == "const":
                raise OptionError("cluster= needs a robust type: 'HC0' or 'HC1' (or leave type out for "
                                  "vcovCL's default)")
            if vcov not in CLUSTER_TYPES:
                raise OptionError(f"clustered covariances are available for type HC0 or HC1 (R's vcovCL), "
                                  f"not {vcov!r}")
        return CovarianceChoice(vcov, cluster)

    def _covariance(self, vcov: Any = None, cluster: Any = None, **options: Any) -> tuple[pd.DataFrame, str | None]:
        """Covariance over the estimable coefficients for a ``vcov=`` option, and its description (None: the
        model's)."""
        choice = self._choice(vcov, cluster)
        names = self.estimable
        if choice.type == "matrix":
            return self._user_matrix(choice.matrix), "user-supplied covariance matrix"
        if choice.type == "const":
            V = self.scale * np.asarray(self._unscaled(**options), dtype=float)
            return pd.DataFrame(V, index=names, columns=names), None
        return self._robust_vcov(choice.type, choice.cluster)

    def _user_matrix(self, V: Any) -> pd.DataFrame:
        names = self.estimable
        k = len(names)
        if isinstance(V, pd.DataFrame):
            missing = [n for n in names if n not in V.index or n not in V.columns]
            if missing:
                raise OptionError(f"vcov matrix has no row/column for {missing[:5]}")
            V = V.loc[names, names]
        try:
            A = np.asarray(V, dtype=np.float64)
        except (TypeError, ValueError):
            raise OptionError("vcov must be None, a type string, a dict or a (k, k) matrix, "
                              f"not {type(V).__name__}") from None
        if A.shape != (k, k):
            raise OptionError(f"vcov matrix must be ({k}, {k}) over the estimable coefficients, got shape {A.shape}")
        if not np.isfinite(A).all():
            raise OptionError("vcov matrix has non-finite values")
        return pd.DataFrame(A, index=names, columns=names)

    def vcov(self, type: Any = None, *, cluster: Any = None) -> pd.DataFrame:
        """Covariance of the estimable coefficients (non-estimable ones left out, as R's aliased terms).

        Parameters
        ----------
        type : the covariance choice, everything the ``vcov=`` option of the other methods takes
            (named ``type`` here as in sandwich's ``vcovHC(fit, type = "HC3")``): None (the model's:
            R's vcov(fit)); a type string "const", "HC0".."HC5", "HC4m" (sandwich's vcovHC), "HAC"
            (NeweyWest(fit, prewhite = FALSE, adjust = TRUE)); a dict {"type": ..., "cluster": ...};
            or a (k, k) matrix (returned as a labelled DataFrame).
        cluster : cluster variable(s) for sandwich's vcovCL: a column name of the data, an array (one
            value per row of the data or per row used), or a list of two for two-way clustering;
            with no type, vcovCL's default (HC1 for least squares, HC0 for likelihood models).

        Returns
        -------
        pandas.DataFrame (k, k) labelled by the estimable coefficients.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.vcov().round(4)
                   Intercept      wt
        Intercept     3.5255 -1.0057
        wt           -1.0057  0.3126
        """
        return self._covariance(type, cluster)[0]

    def std_errors(self, vcov: Any = None, *, cluster: Any = None) -> pd.Series:
        """Standard errors, NaN for non-estimable coefficients; ``vcov``/``cluster`` as in vcov().

        Returns
        -------
        pandas.Series named "Std. Error", indexed by the coefficient names.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.std_errors("HC3").round(4)
        Intercept    2.4268
        wt           0.7381
        Name: Std. Error, dtype: float64
        """
        return self._se(self._covariance(vcov, cluster)[0])

    def _se(self, V: pd.DataFrame) -> pd.Series:
        """Standard errors from a covariance over the estimable coefficients, NaN for the others."""
        se = pd.Series(np.nan, index=list(self.names), name="Std. Error")
        # a covariance too large to form (results/large_factor.py's BlockVcov) gives its diagonal alone
        variances = V.variances() if hasattr(V, "variances") else np.diag(V.to_numpy())
        se[self.estimable] = np.sqrt(np.abs(variances))
        return se

    def _quantile(self, level: float, statistic: str | None = None, df: float | None = None) -> float:
        """The two-sided quantile of an interval at ``level`` for the model's statistic (or ``statistic``); t
        quantiles on df_residual degrees of freedom, or ``df`` (fixest's depend on the covariance)."""
        if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
            raise OptionError(f"level must be between 0 and 1, not {level!r}")
        p = 1 - (1 - level) / 2
        if (statistic or self.statistic) == "t":
            df = self.df_residual if df is None else df
            return float(stats.t.ppf(p, df)) if df else float("nan")
        return float(stats.norm.ppf(p))

    def _parm(self, parm: Any) -> list[str]:
        if parm is None:
            return list(self.names)
        parm = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
        out = []
        for p in parm:
            if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
                if not 0 <= p < len(self.names):
                    raise OptionError(f"parm index {p} is out of range: the model has {len(self.names)} coefficients")
                out.append(self.names[p])
            elif p in self.names:
                out.append(p)
            else:
                raise OptionError(f"unknown coefficient {p!r} in parm; the model has {list(self.names)}")
        return out

    def confint(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *, cluster: Any = None) -> pd.DataFrame:
        """Wald confidence intervals: estimate -/+ quantile * SE (R's confint.lm / confint.default; lmtest::coefci).

        Parameters
        ----------
        level : coverage, in (0, 1).
        parm : coefficient names or positions (default all).
        vcov, cluster : the covariance behind the standard errors, as in vcov().

        Returns
        -------
        pandas.DataFrame with R's columns ("2.5 %", "97.5 %"); NaN rows for non-estimable coefficients.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.confint().round(4)
                     2.5 %   97.5 %
        Intercept  33.4505  41.1198
        wt         -6.4863  -4.2026
        """
        q = self._quantile(level)
        rows = self._parm(parm)
        b, se = self.coef()[rows], self.std_errors(vcov, cluster=cluster)[rows]
        lo, hi = confint_labels(level)
        return pd.DataFrame({lo: b - q * se, hi: b + q * se}, index=rows)

    # --- tests -------------------------------------------------------------------------------
    def coef_table(self, vcov: Any = None, *, cluster: Any = None) -> pd.DataFrame:
        """The coefficient table of summary(): estimate, standard error, t or z statistic, two-sided p-value.

        Parameters
        ----------
        vcov, cluster : the covariance behind the tests, as in vcov() (a robust choice gives
            lmtest::coeftest(fit, vcov = V)).

        Returns
        -------
        pandas.DataFrame with columns Estimate, Std. Error, "t value"/"z value", "Pr(>|t|)"/"Pr(>|z|)",
        one row per coefficient (NaN rows for non-estimable ones).

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.coef_table().round(4)
                   Estimate  Std. Error  t value  Pr(>|t|)
        Intercept   37.2851      1.8776  19.8576       0.0
        wt          -5.3445      0.5591  -9.5590       0.0
        """
        return self._table(self._covariance(vcov, cluster)[0])

    def _table(self, V: pd.DataFrame, statistic: str | None = None, df: float | None = None) -> pd.DataFrame:
        b = self.coef()
        se = self._se(V)
        stat = b / se
        s = statistic or self.statistic
        if s == "t":
            df = self.df_residual if df is None else df
            p = 2 * stats.t.sf(np.abs(stat), df) if df else np.full(len(b), np.nan)
        else:
            p = 2 * stats.norm.sf(np.abs(stat))
        return pd.DataFrame({"Estimate": b, "Std. Error": se, f"{s} value": stat, f"Pr(>|{s}|)": p},
                            index=list(self.names))

    @property
    def formula(self) -> str | None:
        """R's formula(fit): the fitted formula in R's spelling, its dot written out as the data's columns
        (a fit of ``mpg ~ .`` has ``mpg ~ cyl + disp + ...``); None for a model fitted without one."""
        if getattr(self, "design", None) is None:
            return None
        return model_formula(self)

    def update(self, formula: str | None = None, *, evaluate: bool = True, **changes: Any) -> Any:
        """R's update(): the same model fitted again with a changed formula or arguments.

        Parameters
        ----------
        formula : str, optional
            The change in R's update.formula spelling: ``". ~ . + hp"``, ``". ~ . - wt"``,
            ``"log(.) ~ ."``; ``.`` is the old side (R's formula(fit): a dot of the fit's formula is
            the data's columns). None keeps the formula as the fit was called with it.
        evaluate : bool
            False: return the new call (a :class:`Refit`; its ``evaluate()`` fits it), as R's
            ``evaluate = FALSE``.
        **changes
            Arguments of the fitter to change (``data=``, ``subset=``, ``weights=``, ``family=`` ...);
            the others are kept as the fit was called.

        Returns
        -------
        ModelResult or Refit
            The new fit, from the same fitter (tl.lm, tl.glm or tl.aov); the new call with ``evaluate=False``.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.update(". ~ . + hp").coef().round(4)
        Intercept    37.2273
        wt           -3.8778
        hp           -0.0318
        Name: Estimate, dtype: float64
        """
        refit = self._refit
        if refit is None:
            raise OptionError(f"update() refits a model made by tl.lm or tl.glm; this {type(self).__name__} "
                              "was not")
        if unknown := sorted(set(changes) - set(refit.arguments)):
            raise OptionError(f"update() got argument(s) {unknown} that {refit.fitter.__name__}() does not take; "
                              f"it takes {sorted(refit.arguments)}")
        new = refit.formula if formula is None else refit_formula(self, formula)
        call = Refit(refit.fitter, new, {**refit.arguments, **changes})
        return call.evaluate() if evaluate else call

    def wald_test(self, parm: Any = None, vcov: Any = None, *, cluster: Any = None) -> WaldTest | None:
        """Joint Wald test that the coefficients ``parm`` are all 0 (lmtest::waldtest against the smaller model).

        Parameters
        ----------
        parm : coefficient names or positions; default every estimable coefficient but the intercept
            (the overall test of summary.lm's F statistic).
        vcov, cluster : the covariance, as in vcov().

        Returns
        -------
        WaldTest (F for t-based models, chi-squared for z-based ones), or None when nothing is tested.

        Examples
        --------
        >>> mtcars = tl.datasets.load("mtcars")
        >>> fit = tl.lm("mpg ~ wt + hp + qsec", mtcars)
        >>> w = fit.wald_test(["hp", "qsec"])
        >>> round(w.statistic, 4), w.df, w.df_residual, round(w.p_value, 6)
        (6.9423, 2, 28, 0.00356)
        """
        V = self._covariance(vcov, cluster)[0]
        return self._wald(V, parm)

    def _wald(self, V: pd.DataFrame, parm: Any = None) -> WaldTest | None:
        skip = intercept_name(self)
        names = [n for n in self.estimable if n != skip] if parm is None else self._parm(parm)
        names = [n for n in names if n in V.index]
        if not names:
            return None
        b = self.coef()[names].to_numpy()
        chi2 = float(b @ np.linalg.solve(V.loc[names, names].to_numpy(), b))
        q = len(names)
        if self.statistic == "t" and self.df_residual:
            F = chi2 / q
            return WaldTest(F, q, self.df_residual, float(stats.f.sf(F, q, self.df_residual)), "F")
        return WaldTest(chi2, q, None, float(stats.chi2.sf(chi2, q)), "Chisq")
