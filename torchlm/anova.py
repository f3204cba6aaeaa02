"""Analysis of variance tables laid out like R's anova()."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def anova(*fits, test: str | None = "F") -> pd.DataFrame:
    """R's anova(): one fit gives the sequential (Type I) table; several nested fits give the comparison.

    Parameters
    ----------
    *fits : one fitted model, or several fitted to the same rows (smallest first, as in R).
    test : "F" (default for linear models) or None.
    """
    if not fits:
        raise TypeError("anova() needs at least one fitted model")
    if len(fits) == 1:
        return _sequential(fits[0])
    return _nested(fits, test)


def _sequential(fit) -> pd.DataFrame:
    d, qr = fit.design, fit._qr
    est = qr.pivot[: fit.rank]
    terms, ss, df = [], [], []
    for j, eff in zip(est, qr.effects):
        term = d.assign[j]
        if term == "1":
            continue
        if term not in terms:
            terms.append(term)
            ss.append(0.0)
            df.append(0)
        k = terms.index(term)
        ss[k] += float(eff) ** 2
        df[k] += 1
    rdf, rss = fit.df_residual, fit.deviance
    ms = [s / k for s, k in zip(ss, df)]
    resid_ms = rss / rdf if rdf > 0 else np.nan
    fval = [m / resid_ms for m in ms]
    pval = [stats.f.sf(f, k, rdf) for f, k in zip(fval, df)]
    tab = pd.DataFrame(
        {"Df": df + [rdf], "Sum Sq": ss + [rss], "Mean Sq": ms + [resid_ms],
         "F value": fval + [np.nan], "Pr(>F)": pval + [np.nan]},
        index=terms + ["Residuals"],
    )
    tab.attrs["heading"] = f"Analysis of Variance Table\n\nResponse: {d.response}"
    return tab


def _nested(fits, test) -> pd.DataFrame:
    n = {f.nobs for f in fits}
    if len(n) != 1:
        raise ValueError("models were not all fitted to the same size of dataset")
    if test not in (None, "F"):
        raise ValueError(f"test must be 'F' or None for linear models, not {test!r}")
    resdf = np.array([f.df_residual for f in fits], dtype=float)
    rss = np.array([f.deviance for f in fits])
    df = np.r_[np.nan, -np.diff(resdf)]
    ssq = np.r_[np.nan, -np.diff(rss)]
    tab = pd.DataFrame({"Res.Df": resdf, "RSS": rss, "Df": df, "Sum of Sq": ssq},
                       index=[str(i + 1) for i in range(len(fits))])
    if test == "F":
        big = int(np.argmin(resdf))
        scale = rss[big] / resdf[big]
        fval = ssq / df / scale
        tab["F"] = fval
        tab["Pr(>F)"] = stats.f.sf(np.abs(fval), np.abs(df), resdf[big])
    models = "\n".join(f"Model {i + 1}: {f.design.formula}" for i, f in enumerate(fits))
    tab.attrs["heading"] = "Analysis of Variance Table\n\n" + models
    return tab
