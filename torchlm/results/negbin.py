"""A fitted glm.nb: a GLM with the negative binomial's theta estimated, with MASS's summary, logLik and anova."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from torchlm.errors import OptionError, TorchlmWarning, warn
from torchlm.inference.anova import DEFAULT, _glm_sequential
from torchlm.inference.rterms import fit_formula
from torchlm.inference.tables import AnovaTable
from torchlm.present.deparse import deparse
from torchlm.present.negbin import LikelihoodRatioTable, NegbinSummary, lr_table
from torchlm.results.generalized import GeneralizedLinearModelResult

_ONE_FIT_TESTS = {None: None, "Chisq": "Chisq", "LRT": "Chisq", "F": "F", "Rao": "Rao", "Cp": "Cp"}


class NegativeBinomialResult(GeneralizedLinearModelResult):
    """A negative binomial GLM with theta estimated (what MASS's glm.nb returns), from tl.glm_nb().

    Everything of GeneralizedLinearModelResult, with MASS's definitions where they differ: the
    dispersion is 1 (summary.negbin: z tests), logLik counts theta (df = rank + 1), AIC is
    -twologlik + 2 rank + 2, and anova of several fits is MASS's likelihood-ratio table.

    Attributes
    ----------
    theta : float
        The estimate of theta (MASS's fit$theta).
    se_theta : float
        Its standard error from theta.ml (SE.theta).
    twologlik : float
        Twice the log-likelihood at theta and the fitted means.
    theta_warning : str or None
        MASS's th.warn: "iteration limit reached", "estimate truncated at zero" or "alternation limit reached".
    family : NegativeBinomial
        The family of the last IRLS fit (MASS's fit$family: theta of the alternation before the last).
    """

    def __init__(self, design: Any, family: Any, fit: Any, *, theta: float, se_theta: float, twologlik: float,
                 theta_warning: str | None, **fields: Any):
        self.theta, self.se_theta, self.twologlik = theta, se_theta, twologlik
        self.theta_warning = theta_warning
        super().__init__(design, family, fit, **fields)
        self.dispersion = 1.0  # summary.negbin's dispersion = 1
        self.statistic = "z"

    def aic(self) -> float:
        """MASS's AIC of a glm.nb: -twologlik + 2 rank + 2 (theta counted).

        Returns
        -------
        float

        Examples
        --------
        >>> fit = tl.glm_nb("Days ~ Sex", tl.datasets.load("quine"))
        >>> round(fit.aic(), 4)
        1123.2743
        """
        if self._aic is None:
            self._aic = -self.twologlik + 2 * self.rank + 2
        return self._aic

    @property
    def df_loglik(self) -> int:
        """Parameters counted by MASS's logLik.negbin: rank + 1 (theta)."""
        return self.rank + 1

    def extract_aic(self, k: float = 2) -> tuple[float, float]:
        """R's extractAIC of a glm.nb (what drop1, add1 and step compare): edf = n - df_residual, -twologlik + k edf.

        Parameters
        ----------
        k : float
            Weight of the degrees of freedom.

        Returns
        -------
        tuple of (float, float)

        Examples
        --------
        >>> fit = tl.glm_nb("Days ~ Sex", tl.datasets.load("quine"))
        >>> [round(v, 4) for v in fit.extract_aic()]
        [2, 1121.2743]
        """
        edf = len(self.design.y) - self.df_residual
        return edf, -self.twologlik + k * edf

    def summary(self, vcov: Any = None, *, cluster: Any = None, dispersion: Any = None, correlation: bool = False,
                symbolic_cor: bool = False) -> NegbinSummary:
        """MASS's summary.negbin: summary.glm at dispersion 1, then Theta, its Std. Err. and 2 x log-likelihood.

        Parameters
        ----------
        vcov, cluster, correlation, symbolic_cor : as GeneralizedLinearModelResult.summary.
        dispersion : a dispersion other than MASS's 1 (R's summary(fit, dispersion = )).

        Returns
        -------
        NegbinSummary

        Examples
        --------
        >>> fit = tl.glm_nb("Days ~ Sex", tl.datasets.load("quine"))
        >>> print(fit.summary())
        <BLANKLINE>
        Call:
        glm.nb(formula = Days ~ Sex, init.theta = 1.074116524, link = log)
        <BLANKLINE>
        Deviance Residuals:
            Min       1Q   Median       3Q      Max
        -2.4849  -0.9253  -0.3431   0.3810   2.3318
        <BLANKLINE>
        Coefficients:
                  Estimate Std. Error z value Pr(>|z|)
        Intercept   2.7229     0.1116  24.395   <2e-16 ***
        Sex[T.M]    0.1649     0.1656   0.996    0.319
        ---
        Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
        <BLANKLINE>
        (Dispersion parameter for Negative Binomial(1.0741) family taken to be 1)
        <BLANKLINE>
            Null deviance: 169.50  on 145  degrees of freedom
        Residual deviance: 168.51  on 144  degrees of freedom
        AIC: 1123.3
        <BLANKLINE>
        Number of Fisher Scoring iterations: 1
        <BLANKLINE>
        <BLANKLINE>
                      Theta:  1.074
                  Std. Err.:  0.130
        <BLANKLINE>
         2 x log-likelihood:  -1117.274
        """
        return NegbinSummary(self._omitted(), vcov=vcov, cluster=cluster, dispersion=dispersion,
                             correlation=correlation, symbolic_cor=symbolic_cor)

    def _own_anova(self, *others: Any, test: Any = DEFAULT) -> AnovaTable:
        """MASS's anova.negbin: one fit, anova.glm with theta held fixed (test "Chisq"); several, the LR table."""
        if not others:
            warn("tests made without re-estimating 'theta'", TorchlmWarning, stacklevel=4)
            t = "Chisq" if test == DEFAULT else test
            if not (t is None or isinstance(t, str)) or t not in _ONE_FIT_TESTS:
                raise OptionError(f"test must be 'Chisq' (MASS's default), 'LRT', 'F', 'Rao', 'Cp' or None, "
                                  f"not {t!r}")
            return _glm_sequential(self, _ONE_FIT_TESTS[t])
        return likelihood_ratio_table([self, *others], test)


def likelihood_ratio_table(fits: list[Any], test: Any = DEFAULT) -> LikelihoodRatioTable:
    """MASS's anova.negbin of several glm.nb fits: sorted by residual df, twice the log-likelihoods compared.

    Parameters
    ----------
    fits : list of NegativeBinomialResult
    test : str
        Only "Chisq" (MASS's; anything else is MASS's warning).

    Returns
    -------
    LikelihoodRatioTable
        Columns Model, theta, Resid. df, 2 x log-lik., Test ("1 vs 2"), df, LR stat. and Pr(Chi)
        (1 - pchisq(LR stat., df)), with MASS's spacing in the names.
    """
    if test not in (DEFAULT, "Chisq", "LRT"):
        warn("only Chi-squared LR tests are implemented", TorchlmWarning, stacklevel=4)
    if not all(isinstance(f, NegativeBinomialResult) for f in fits):
        raise OptionError('not all objects are of class "negbin": anova() compares tl.glm_nb fits with each other '
                          "(fit the others with tl.glm_nb too)")
    fits = sorted(fits, key=lambda f: -f.df_residual)  # stable, as R's sort.list(-df)
    forms = [fit_formula(f) for f in fits]
    responses = list(dict.fromkeys(deparse(f.args[0]) for f in forms))
    dfs = np.array([f.df_residual for f in fits], dtype=float)
    lls = np.array([f.twologlik for f in fits])
    df = np.r_[np.nan, -np.diff(dfs)]
    x2 = np.r_[np.nan, np.diff(lls)]
    with np.errstate(invalid="ignore"):
        # R's 1 - pchisq(x2, df); R's pchisq at df 0 is 1 above 0 and 0 at or below it
        cdf = np.where(df == 0, (x2 > 0).astype(float), stats.chi2.cdf(x2, np.where(df > 0, df, np.nan)))
    rows = {"Model": [deparse(f.args[1]) for f in forms], "theta": [f.theta for f in fits], "Resid. df": dfs,
            "   2 x log-lik.": lls, "Test": [""] + [f"{i} vs {i + 1}" for i in range(1, len(fits))],
            "   df": df, "LR stat.": x2, "Pr(Chi)": np.r_[np.nan, 1 - cdf[1:]]}
    heading = "Likelihood ratio tests of Negative Binomial Models\n\n" + "\n".join(f"Response: {r}" for r in responses)
    return lr_table(rows, heading)
