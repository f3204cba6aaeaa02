"""fixest's printed summary of a feols / fepois / feglm fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from torchlm.present.rformat import coef_table_cells, format_num, render_matrix

SIGNIF = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def _thousands(n: int) -> str:
    return f"{n:,}"


def _stat(x: float) -> str:
    return format_num([x], digits=5)[0] if np.isfinite(x) else "NaN"


class FixestSummary:
    """summary(feols(...)) as fixest prints it.

    Attributes
    ----------
    coefficients : the coefficient table (estimable slopes).
    vcov_description : the standard-error type ("Clustered (firm)", "IID", ...).
    """

    def __init__(self, fit: Any, vcov: Any = None, cluster: Any = None, ssc: Any = None):
        self.fit = fit
        _, self.vcov_description, _ = fit._fixest(vcov, cluster, ssc)
        self.coefficients = fit.coef_table(vcov, cluster=cluster, ssc=ssc).loc[fit.estimable]

    def _notes(self) -> list[str]:
        f = self.fit
        out = []
        if f.n_missing:
            out.append(f"NOTE: {_thousands(f.n_missing)} observation{'s' * (f.n_missing > 1)} removed because of "
                       "NA values.")
        if f.n_removed:
            out.append(f"NOTE: {_thousands(f.n_removed)} observation{'s' * (f.n_removed > 1)} removed because of "
                       "only 0 outcomes (perfect fit).")
        if f.n_singletons:
            out.append(f"NOTE: {_thousands(f.n_singletons)} fixed-effect singleton{'s' * (f.n_singletons > 1)} "
                       "removed.")
        if f.collinear:
            quoted = ", ".join(f"'{c}'" for c in f.collinear)
            out.append(f"The variable{'s' * (len(f.collinear) > 1)} {quoted} "
                       f"{'have' if len(f.collinear) > 1 else 'has'} been removed because of collinearity.")
        return out

    def __str__(self) -> str:
        f = self.fit
        lines = self._notes()
        lines.append(f"{f.method} estimation, Dep. Var.: {f.response}")
        lines.append(f"Observations: {_thousands(f.nobs)}")
        if f.fixef_names:
            lines.append("Fixed-effects: " + ",  ".join(f"{n}: {_thousands(s)}"
                                                       for n, s in zip(f.fixef_names, f.fixef_sizes)))
        lines.append(f"Standard-errors: {self.vcov_description} ")
        tab = self.coefficients
        if len(tab):
            cells, stars = coef_table_cells(tab.to_numpy(), 4)
            lines += render_matrix(list(tab.index), list(tab.columns), cells, stars)
            if stars is not None:
                lines += ["---", SIGNIF]
        else:
            lines.append("No slope: the fixed effects alone")
        lines += self._fit_lines()
        return "\n".join(lines)

    def _fit_lines(self) -> list[str]:
        f = self.fit
        if f.method == "OLS":
            first = f"RMSE: {_stat(f.rmse)}     Adj. R2: {_stat(f.adj_r2)}"
            if not f.fixef_names:
                return [first]
            return [first, " " * (first.index("Adj. R2") - 2) + f"Within R2: {_stat(f.within_r2)}"]
        first = f"Log-Likelihood: {_stat(f.loglik())}   Adj. Pseudo R2: {_stat(f.pseudo_r2)}"
        second = " " * (len("Log-Likelihood") - len("BIC")) + f"BIC: {_stat(f.bic())}"
        out = [first, second,
               f"Deviance: {_stat(f.fit.deviance)}   Iterations: {f.fit.iterations}"]
        if not f.family.fixed_dispersion:
            out.append(f"Dispersion: {_stat(f.fit.dispersion)}")
        return out

    def __repr__(self) -> str:
        return str(self)
