"""R-style text: print(fit) and print(summary(fit)) as R prints lm and glm fits, and their HTML for notebooks."""

from __future__ import annotations

import math
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import TorchlmWarning
from torchlm.present import rformat as rf
from torchlm.present.html import Matrix, text_html
from torchlm.present.verbs import correlation_lines, correlation_matrix, given_dispersion_cov

if TYPE_CHECKING:
    from torchlm.results.protocols import DesignFit, GeneralizedFit, LinearFit

DIGITS = 4  # R: max(3, getOption("digits") - 3)
ANOVA_DIGITS = 5  # R's print.anova: max(getOption("digits") - 2, 3)


def missingness_lines(fit: DesignFit) -> list[str]:
    """R's naprint line, "  (3 observations deleted due to missingness)", or none.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    list of str
        The line, or no lines when no row was dropped for missing values.
    """
    k = fit.n_dropped_na
    return [f"  ({k} observation{'s' if k > 1 else ''} deleted due to missingness)"] if k else []


def coefficient_print_lines(fit: DesignFit) -> list[str]:
    """R's 'Coefficients:' block of print.lm / print.glm: format(coef, digits = 4) printed with gap 2.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    list of str
        The heading and the rows of names and values (["No coefficients"] for a model without any).
    """
    coef = fit.coef()
    if not len(coef):
        return ["No coefficients"]
    return ["Coefficients:"] + rf.print_named(coef.to_numpy(), list(coef.index), DIGITS, gap=2).split("\n")


def print_lm(fit: LinearFit) -> str:
    """The text of R's print(lm(...)): the call and the coefficients.

    Parameters
    ----------
    fit : ModelResult
        A fitted linear model (LinearModelResult).

    Returns
    -------
    str
        The printout, lines joined by newlines.
    """
    return "\n".join(["", "Call:", fit.call, ""] + coefficient_print_lines(fit) + [""])


def print_glm(fit: GeneralizedFit) -> str:
    """The text of R's print(glm(...)): call, coefficients, degrees of freedom, deviances and AIC.

    Parameters
    ----------
    fit : ModelResult
        A fitted generalized linear model (GeneralizedLinearModelResult).

    Returns
    -------
    str
        The printout, lines joined by newlines.
    """
    # R's print.glm: cat("No coefficients\n\n") where print.lm has one newline
    out = ["", f"Call:  {fit.call}", ""] + coefficient_print_lines(fit) + ([""] if len(fit.names) else ["", ""])
    out.append(f"Degrees of Freedom: {fit.df_null} Total (i.e. Null);  {fit.df_residual} Residual")
    out += missingness_lines(fit)

    def sig(x):
        return rf.format_scalar(rf.signif(x, DIGITS))

    out.append(f"Null Deviance:\t    {sig(fit.null_deviance)} ")
    out.append(f"Residual Deviance: {sig(fit.deviance)} \tAIC: {sig(fit.aic())}")
    return "\n".join(out)


class LMSummary:
    """Summary of a linear model, as R's summary.lm.

    Attributes
    ----------
    coefficients : DataFrame with columns Estimate, Std. Error, t value, Pr(>|t|) (estimable terms).
    sigma, r_squared, adj_r_squared, fstatistic, df_residual : as on the fit; with a robust ``vcov``,
        fstatistic is the Wald F test with that covariance (lmtest::waldtest(fit, vcov = V, test = "F")).
    vcov_description : which covariance the standard errors use (None: the classical one).
    correlation : DataFrame of the estimates' correlations (R's correlation = TRUE), or None.
    """

    def __init__(self, fit, vcov=None, cluster=None, correlation=False, symbolic_cor=False):
        self.fit = fit
        if self._perfect_fit():
            warnings.warn("essentially perfect fit: summary may be unreliable", TorchlmWarning, stacklevel=3)
        V, self.vcov_description = fit._covariance(vcov, cluster)
        self._full = fit._table(V)
        self.coefficients = self._full.loc[fit.estimable]
        self.correlation = correlation_matrix(V) if correlation else None
        self.symbolic_cor = bool(symbolic_cor)
        self.sigma = fit.sigma
        self.r_squared = fit.r_squared
        self.adj_r_squared = fit.adj_r_squared
        self.fstatistic = fit.fstatistic
        if self.vcov_description is not None and fit.fstatistic is not None:
            w = fit._wald(V)
            self.fstatistic = (None if w is None
                               else type(fit.fstatistic)(w.statistic, float(w.df), float(w.df_residual)))
        self.df_residual = fit.df_residual

    def _perfect_fit(self) -> bool:
        """R's test resvar < (mean(f)^2 + var(f)) * 1e-30, on f / max|f| so that fits near 1e300 do not overflow."""
        fit = self.fit
        f = fit.fitted().to_numpy()
        top = float(np.max(np.abs(f))) if len(f) else 0.0
        fs = f / top if 0 < top < np.inf else f
        sig = fit.sigma / top if 0 < top < np.inf else fit.sigma
        return bool(len(f) > 1 and np.isfinite(sig) and sig**2 < (fs.mean() ** 2 + fs.var(ddof=1)) * 1e-30)

    def _full_table(self) -> np.ndarray:
        return self._full.to_numpy()

    def residual_lines(self) -> list[str]:
        """R's "Residuals:" block of print.summary.lm.

        Returns
        -------
        list of str
            "Weighted Residuals:" when the weights vary; then the quantiles (Min, 1Q, Median, 3Q, Max)
            when df_residual > 5, every residual when it is 1 to 5, or R's "ALL ... residuals are 0" line.
        """
        fit = self.fit
        r = fit.residuals("pearson").to_numpy()
        weighted = fit.design.weights is not None and np.ptp(fit.design.weights) > 0
        lines = [("Weighted " if weighted else "") + "Residuals:"]
        if fit.df_residual > 5:
            q = rf.zapsmall(np.quantile(r, [0, 0.25, 0.5, 0.75, 1]), DIGITS + 1)
            lines += rf.print_named(q, ["Min", "1Q", "Median", "3Q", "Max"], DIGITS).split("\n")
        elif fit.df_residual > 0:
            names = rf.row_labels(fit.design.index, getattr(fit.design.data, "index", None))
            lines += rf.print_named(r, names, DIGITS).split("\n")
        else:
            lines.append(f"ALL {fit.rank} residuals are 0: no residual degrees of freedom!")
        return lines

    def coefficient_lines(self) -> list[str]:
        """R's "Coefficients:" block of print.summary.lm, with the standard errors of the chosen covariance.

        Returns
        -------
        list of str
            Heading, printCoefmat table (aliased coefficients NA) and the star legend.
        """
        return rf.coefficient_block(self.fit.names, list(self.coefficients.columns), self._full_table(), DIGITS)

    def __str__(self) -> str:
        fit = self.fit
        out = ["", "Call:", fit.call, ""]
        out += self.residual_lines() + [""]
        if self.vcov_description is not None:
            out.append(f"Standard errors: {self.vcov_description}")
        out += self.coefficient_lines() + [""]
        # sigma is NaN only as R's 0/0 of a saturated fit, which R prints as NaN (not NA)
        sigma = "NaN" if math.isnan(fit.sigma) else rf.format_scalar(rf.signif(fit.sigma, DIGITS))
        out.append(f"Residual standard error: {sigma} "
                   f"on {fit.df_residual} degrees of freedom")
        out += missingness_lines(fit)
        if fit.fstatistic is not None:
            f = self.fstatistic
            pv = stats.f.sf(f.value, f.numdf, f.dendf)
            out.append(f"Multiple R-squared:  {rf.format_c(fit.r_squared, DIGITS)},\t"
                       f"Adjusted R-squared:  {rf.format_c(fit.adj_r_squared, DIGITS)} ")
            wald = "Wald " if self.vcov_description is not None else ""
            out.append(f"{wald}F-statistic: {rf.format_c(f.value, DIGITS)} on {f.numdf:g} and {f.dendf:g} DF,  "
                       f"p-value: {rf.format_pval([pv], DIGITS)[0]}")
        if self.correlation is not None:
            out += correlation_lines(self.correlation, self.symbolic_cor)
        out.append("")
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The printout for notebooks: the text, line for line, with the coefficient table as an HTML table."""
        return text_html(str(self), [Matrix(self.fit.names, list(self.coefficients.columns))], "torchlm-summary")


class GLMSummary:
    """Summary of a generalized linear model, as R's summary.glm.

    Attributes
    ----------
    coefficients : DataFrame with columns Estimate, Std. Error, z value, Pr(>|z|) (binomial, poisson:
        dispersion fixed at 1) or t value, Pr(>|t|) (dispersion estimated), for the estimable terms.
    dispersion, deviance, null_deviance, df_residual, df_null, aic, iterations : as on the fit.
    vcov_description : which covariance the standard errors use (None: the model-based one).
    correlation : DataFrame of the estimates' correlations (R's correlation = TRUE), or None.
    """

    def __init__(self, fit, vcov=None, cluster=None, dispersion=None, correlation=False, symbolic_cor=False):
        self.fit = fit
        if dispersion is None:
            V, self.vcov_description = fit._covariance(vcov, cluster)
            self._full = fit._table(V)
        else:
            # R's summary.glm(dispersion = ): the model-based covariance at that dispersion, and z tests (known)
            V, self.vcov_description = given_dispersion_cov(fit, dispersion, vcov, cluster), None
            self._full = fit._table(V, statistic="z")
        self.coefficients = self._full.loc[fit.estimable]
        self.correlation = correlation_matrix(V) if correlation else None
        self.symbolic_cor = bool(symbolic_cor)
        self.dispersion = fit.dispersion if dispersion is None else float(dispersion)
        self.deviance, self.null_deviance = fit.deviance, fit.null_deviance
        self.df_residual, self.df_null = fit.df_residual, fit.df_null
        self.aic = fit.aic()
        self.iterations = fit.iterations

    def _full_table(self) -> np.ndarray:
        return self._full.to_numpy()

    def residual_lines(self) -> list[str]:
        """R's "Deviance Residuals:" block of print.summary.glm.

        Returns
        -------
        list of str
            The heading, then the quantiles (Min, 1Q, Median, 3Q, Max) when df_residual > 5, else every
            deviance residual.
        """
        r = self.fit.residuals("deviance")
        lines = ["Deviance Residuals: "]
        if self.df_residual > 5:
            vals, names = np.quantile(r.to_numpy(), [0, 0.25, 0.5, 0.75, 1]), ["Min", "1Q", "Median", "3Q", "Max"]
        else:
            vals, names = r.to_numpy(), rf.row_labels(r.index, getattr(self.fit.design.data, "index", None))
        lines += rf.print_named(rf.zapsmall(vals, DIGITS + 1), names, DIGITS, gap=2).split("\n")
        return lines

    def coefficient_lines(self) -> list[str]:
        """R's "Coefficients:" block of print.summary.glm, with the standard errors of the chosen covariance.

        Returns
        -------
        list of str
            Heading, printCoefmat table (aliased coefficients NA) and the star legend.
        """
        return rf.coefficient_block(self.fit.names, list(self.coefficients.columns), self._full_table(), DIGITS)

    def deviance_lines(self) -> list[str]:
        """The null and residual deviance lines of print.summary.glm.

        Returns
        -------
        list of str
            "    Null deviance: ... on ... degrees of freedom", the same for "Residual", then R's naprint
            line when rows were dropped for missing values.
        """
        fit = self.fit
        devs = rf.format_num([self.null_deviance, self.deviance], max(5, DIGITS + 1))
        dfs = [str(self.df_null), str(self.df_residual)]
        w = max(len(d) for d in dfs)
        lines = [f"{lab} deviance: {d}  on {k.rjust(w)}  degrees of freedom"
                 for lab, d, k in zip(["    Null", "Residual"], devs, dfs)]
        lines += missingness_lines(fit)
        return lines

    def __str__(self) -> str:
        fit = self.fit
        out = ["", "Call:", fit.call, ""]
        out += self.residual_lines() + [""]
        if self.vcov_description is not None:
            out.append(f"Standard errors: {self.vcov_description}")
        out += self.coefficient_lines() + [""]
        out.append(f"(Dispersion parameter for {fit.family.name} family taken to be "
                   f"{rf.format_scalar(self.dispersion, 7)})")
        out.append("")
        out += self.deviance_lines()
        out.append(f"AIC: {rf.format_scalar(self.aic, max(4, DIGITS + 1))}")
        out += ["", f"Number of Fisher Scoring iterations: {self.iterations}"]
        if self.correlation is not None:
            out += correlation_lines(self.correlation, self.symbolic_cor)
        out.append("")
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The printout for notebooks: the text, line for line, with the coefficient table as an HTML table."""
        return text_html(str(self), [Matrix(self.fit.names, list(self.coefficients.columns))], "torchlm-summary")


def anova_text(tab: pd.DataFrame, digits: int = ANOVA_DIGITS) -> str:
    """The text of R's print(anova(...)): heading, then printCoefmat with print.anova's column roles.

    Parameters
    ----------
    tab : pandas.DataFrame
        An anova table (from tl.anova), its heading in ``tab.attrs["heading"]``.
    digits : int
        print.anova's digits (summary.aov prints its tables with 4).

    Returns
    -------
    str
        The heading, the table and (when there are stars) the star legend, lines joined by newlines.
    """
    cn = [str(c) for c in tab.columns]
    nc = len(cn)
    has_p = bool(re.match(r"^(P|Pr)\(", cn[-1]))
    # print.anova: statistics ("F value", "F", "Chisq") are test columns, Df columns are left as they are,
    # the rest (sums of squares, deviances) are zapped
    tst = ([j for j, c in enumerate(cn) if c[1:7] == " value"]
           + [j for j, c in enumerate(cn) if c in ("F", "Cp", "Chisq")])
    zap = [j for j in range(nc - 1 if has_p else nc) if j not in tst and not cn[j].endswith("Df")]
    cells, stars = rf.coefmat_cells(tab.to_numpy(dtype=float), digits, cs_ind=(), tst_ind=tst, zap_ind=zap,
                                    has_pvalue=has_p, na_print="")
    heading = tab.attrs.get("heading")
    lines = heading.split("\n") if heading else []
    lines += rf.render_matrix([str(r) for r in tab.index], cn, cells, stars)
    if stars is not None:
        lines += ["---", rf.SIGNIF_LEGEND]
    return "\n".join(lines)
