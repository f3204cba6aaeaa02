"""R's text for nls fits: print.nls and print.summary.nls, digit for digit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from torchlm.present import rformat as rf
from torchlm.present.deparse import deparse_lines
from torchlm.present.html import Matrix, text_html
from torchlm.present.verbs import correlation_lines, correlation_matrix

# a tl.nls fit (torchlm.results.nls.NonlinearModelResult, which imports this module)
NonlinearModelResult = Any

DIGITS = 4  # R: max(3, getOption("digits") - 3)


def convergence_lines(fit: NonlinearModelResult) -> list[str]:
    """R's .p.nls.convInfo: the iterations and tolerance (or port's message), after a blank line.

    Parameters
    ----------
    fit : NonlinearModelResult

    Returns
    -------
    list of str
    """
    if fit.algorithm == "port":
        return ["", f'Algorithm "port", convergence message: {fit.stop_message}']
    word = "to convergence:" if fit.converged else "till stop:"
    lines = ["", f"Number of iterations {word} {fit.iterations} ",
             f"Achieved convergence tolerance: {rf.format_scalar(fit.tolerance, DIGITS)}"]
    if not fit.converged:
        lines.append(f"Reason stopped: {fit.stop_message}")
    return lines


def _missing(fit: NonlinearModelResult) -> list[str]:
    k = fit.frame.n_dropped
    return [f"  ({k} observation{'s' if k > 1 else ''} deleted due to missingness)"] if k else []


def print_nls(fit: NonlinearModelResult) -> str:
    """R's print.nls.

    Parameters
    ----------
    fit : NonlinearModelResult

    Returns
    -------
    str
        The lines R prints, joined by newlines.
    """
    lines = ["Nonlinear regression model", "  model: " + "".join(deparse_lines(fit.model.tree)),
             f"   data: {fit.data_name}"]
    coef = fit.coef()
    lines += rf.print_named(coef.to_numpy(), list(coef.index), DIGITS).split("\n")
    w = fit._weights
    weighted = "weighted " if w is not None and np.ptp(w) > 0 else ""
    lines.append(f" {weighted}residual sum-of-squares: {rf.format_scalar(fit.deviance, DIGITS)}")
    lines += convergence_lines(fit)
    return "\n".join(lines)


class NLSSummary:
    """R's summary.nls of a fit; prints as print.summary.nls.

    Attributes
    ----------
    coefficients : DataFrame with Estimate, Std. Error, t value, Pr(>|t|).
    sigma : float
        The residual standard error.
    df : tuple of (int, int)
        Parameters and residual degrees of freedom.
    cov_unscaled : DataFrame
        (J'J)^-1 at the estimates.
    correlation : DataFrame or None
        The estimates' correlations (correlation=True).
    """

    def __init__(self, fit: NonlinearModelResult, correlation: bool = False, symbolic_cor: bool = False) -> None:
        self.fit = fit
        self.coefficients = fit.coef_table()
        self.sigma = fit.sigma
        self.df = (len(fit.names), fit.df_residual)
        V = fit.vcov()
        self.cov_unscaled = V / fit.scale if fit.scale > 0 else V
        self.correlation = correlation_matrix(V) if correlation and (fit.df_residual or 0) > 0 else None
        self.symbolic_cor = bool(symbolic_cor)

    def lines(self) -> list[str]:
        """The lines of print.summary.nls.

        Returns
        -------
        list of str
        """
        fit = self.fit
        formula = deparse_lines(fit.model.tree)
        out = ["", "Formula: " + formula[0]] + formula[1:]
        out += ["", "Parameters:"]
        out += _coefmat(self.coefficients)
        sigma = "NaN" if math.isnan(self.sigma) else rf.format_scalar(rf.signif(self.sigma, DIGITS))
        out += ["", f"Residual standard error: {sigma} on {fit.df_residual} degrees of freedom"]
        if self.correlation is not None:
            corr = correlation_lines(self.correlation, self.symbolic_cor)
            if corr:
                corr[1] = "Correlation of Parameter Estimates:"
                out += corr
        out += convergence_lines(fit)
        out += _missing(fit)
        out.append("")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The printout for notebooks: the text, line for line, with the parameter table as an HTML table."""
        table = self.coefficients
        return text_html(str(self), [Matrix([str(n) for n in table.index], list(table.columns))], "torchlm-summary")


def _coefmat(table: Any) -> list[str]:
    cells, stars = rf.coef_table_cells(table.to_numpy(), DIGITS)
    lines = rf.render_matrix([str(n) for n in table.index], list(table.columns), cells, stars)
    if stars is not None:
        lines += ["---", rf.SIGNIF_LEGEND]
    return lines
