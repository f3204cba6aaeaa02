"""MASS's printouts of a negative binomial fit: print.summary.negbin's theta lines and anova.negbin's table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from torchlm.inference.tables import AnovaTable
from torchlm.present import rformat as rf
from torchlm.present.summary import GLMSummary


def format_nsmall(x: float, nsmall: int) -> str:
    """R's format(x, nsmall = nsmall): 7 significant digits, and at least ``nsmall`` decimals in fixed notation.

    Returns
    -------
    str
    """
    s = rf.format_scalar(x)
    if "e" in s or not math.isfinite(x):
        return s
    decimals = len(s.partition(".")[2])
    return f"{x:.{nsmall}f}" if decimals < nsmall else s


def theta_lines(theta: float, se: float, warning: str | None, twologlik: float) -> list[str]:
    """The lines print.summary.negbin adds after summary.glm's: Theta, its standard error, 2 x log-likelihood.

    Parameters
    ----------
    theta, se : float
        The estimate of theta and its standard error.
    warning : str or None
        MASS's th.warn, printed as "Warning while fitting theta: ...".
    twologlik : float
        Twice the log-likelihood.

    Returns
    -------
    list of str
        As R's cat() writes them (trailing spaces included): decimals enough to show the standard error
        to 3 significant digits (MASS's dp = max(2 - floor(log10(SE)), 0)).
    """
    dp = max(2 - math.floor(math.log10(se)), 0) if math.isfinite(se) and se > 0 else 0
    lines = ["", f"              Theta:  {format_nsmall(round(theta, dp), dp)} ",
             f"          Std. Err.:  {format_nsmall(round(se, dp), dp)} "]
    if warning is not None:
        lines.append(f"Warning while fitting theta: {warning} ")
    return lines + ["", f" 2 x log-likelihood:  {format_nsmall(round(twologlik, 3), dp)} "]


class NegbinSummary(GLMSummary):
    """Summary of a glm.nb fit, as MASS's summary.negbin: summary.glm at dispersion 1, then theta.

    Attributes
    ----------
    theta, se_theta, twologlik, theta_warning : as on the fit; the rest as GLMSummary.
    """

    def __init__(self, fit: Any, vcov: Any = None, cluster: Any = None, dispersion: Any = None,
                 correlation: bool = False, symbolic_cor: bool = False):
        super().__init__(fit, vcov=vcov, cluster=cluster, dispersion=dispersion, correlation=correlation,
                         symbolic_cor=symbolic_cor)
        self.theta, self.se_theta = fit.theta, fit.se_theta
        self.twologlik, self.theta_warning = fit.twologlik, fit.theta_warning

    def __str__(self) -> str:
        lines = super().__str__().split("\n")
        return "\n".join(lines + theta_lines(self.theta, self.se_theta, self.theta_warning, self.twologlik))

    __repr__ = __str__


LR_COLUMNS = ["Model", "theta", "Resid. df", "   2 x log-lik.", "Test", "   df", "LR stat.", "Pr(Chi)"]


class LikelihoodRatioTable(AnovaTable):
    """MASS's anova.negbin table of several fits: a DataFrame with R's columns, printed as MASS's print.Anova.

    ``attrs["heading"]`` holds the heading ("Likelihood ratio tests of Negative Binomial Models" and the
    response).
    """

    def __repr__(self) -> str:
        return lr_table_text(self)

    __str__ = __repr__


def lr_table_text(tab: pd.DataFrame) -> str:
    """The text of MASS's print of anova(nb1, nb2, ...): its heading, then the table as print.data.frame shows it.

    Each column is formatted as R's format() does (7 significant digits, one layout per column), NA left
    blank, every cell right-justified, columns wrapped at 80 characters.

    Parameters
    ----------
    tab : pandas.DataFrame
        A table from tl.anova of several tl.glm_nb fits.

    Returns
    -------
    str
    """
    cols = []
    for name in tab.columns:
        col = tab[name]
        if pd.api.types.is_numeric_dtype(col):
            cols.append(rf.format_num(col.to_numpy(dtype=float), 7, na=""))
        else:
            cols.append([str(v) for v in col])
    cells = [list(row) for row in zip(*cols)]
    heading = tab.attrs.get("heading", "")
    lines = heading.split("\n") if heading else []
    return "\n".join(lines + rf.render_matrix([str(i) for i in tab.index], [str(c) for c in tab.columns], cells))


def lr_table(rows: dict[str, list[Any]], heading: str) -> LikelihoodRatioTable:
    """A LikelihoodRatioTable of MASS's columns (``LR_COLUMNS``), rows numbered from 1.

    Returns
    -------
    LikelihoodRatioTable
    """
    n = len(rows["Model"])
    frame = pd.DataFrame({c: (rows[c] if c in ("Model", "Test") else np.asarray(rows[c], dtype=float))
                          for c in LR_COLUMNS}, index=[str(i + 1) for i in range(n)])
    out = LikelihoodRatioTable(frame)
    out.attrs["heading"] = heading
    return out
