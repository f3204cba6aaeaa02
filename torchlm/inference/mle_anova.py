"""Comparing tl.mle fits: the likelihood-ratio table of bbmle's anova.mle2 (tl.anova of mle fits) and bbmle's
information-criterion tables (AICtab, BICtab), printed as bbmle prints them."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import OptionError
from torchlm.inference.tables import AnovaTable, anova_table
from torchlm.present import rformat as rf


def is_mle_fit(fit: Any) -> bool:
    """Whether ``fit`` is an Estimates result with a likelihood (tl.mle, or tl.infer of a likelihood loss).

    Returns
    -------
    bool
    """
    return hasattr(fit, "loglik_at") and hasattr(fit, "df_loglik")


def _logliks(fits: tuple) -> list[float]:
    for f in fits:
        if not is_mle_fit(f):
            raise OptionError(f"comparing likelihood fits needs tl.mle (or tl.infer) results for every model, not "
                              f"{type(f).__name__}")
    nobs = {f.nobs for f in fits if f.nobs}
    if len(nobs) > 1:
        raise OptionError(f"the fits have different numbers of observations ({sorted(nobs)}): models compared by "
                          "likelihood must be fitted to the same data")
    return [f.loglik() for f in fits]


def _nll_name(fit: Any) -> str:
    lik = getattr(fit, "_likelihood", None)
    return lik.name if lik is not None else "..."


def lr_anova(*fits: Any, test: Any = "Chisq") -> AnovaTable:
    """bbmle's anova.mle2: a likelihood-ratio test of each model against the one before it.

    Parameters
    ----------
    *fits : tl.mle results (nested, smallest first, fitted to the same data).
    test : "Chisq" (alias "LRT"), the only test.

    Returns
    -------
    AnovaTable with columns Tot Df (parameters), Deviance (-2 log-likelihood), Chisq (the change in deviance),
    Df and Pr(>Chisq), one row per model, and bbmle's heading ("Likelihood Ratio Tests", then each model's nll
    and parameters).
    """
    if test not in ("Chisq", "LRT", None):
        raise OptionError(f"test must be 'Chisq' (or 'LRT') for likelihood fits, not {test!r}")
    ll = _logliks(fits)
    df = np.array([f.df_loglik for f in fits], dtype=float)
    dev = -2 * np.array(ll)
    chisq = np.r_[np.nan, np.abs(np.diff(dev))]
    ddf = np.r_[np.nan, np.abs(np.diff(df))]
    # a chi-squared with 0 df is a point mass at 0: P(X > q) = 0 (R's pchisq)
    p = np.r_[np.nan, [float(stats.chi2.sf(c, k)) if k > 0 else 0.0 for c, k in zip(chisq[1:], ddf[1:])]]
    tab = pd.DataFrame({"Tot Df": df, "Deviance": dev, "Chisq": chisq, "Df": ddf, "Pr(>Chisq)": p},
                       index=[str(i + 1) for i in range(len(fits))])
    lines = []
    for i, f in enumerate(fits):
        text = f"Model {i + 1}: [{_nll_name(f)}]: {'+'.join(f.names)}"
        lines += textwrap.wrap(text, width=80, subsequent_indent=" " * 10, break_long_words=False,
                               break_on_hyphens=False) or [text]
    return anova_table(tab, "\n".join(["Likelihood Ratio Tests"] + lines))


class ICTable(pd.DataFrame):
    """An information-criterion table (bbmle's ICtab): a DataFrame printed as bbmle's print.ICtab prints it."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        return ic_text(self)

    __str__ = __repr__


def AICtab(*fits: Any, type: str = "AIC", weights: bool = False, delta: bool = True, base: bool = False,
           loglik: bool = False, sort: bool = True, names: list[str] | None = None) -> ICTable:
    """bbmle's ICtab (AICtab, BICtab): information criteria of several fits, their differences and weights.

    Parameters
    ----------
    *fits : tl.mle results fitted to the same data.
    type : "AIC", "BIC" or "AICc".
    weights : add Akaike weights exp(-dIC/2) / sum(exp(-dIC/2)).
    delta : the differences from the smallest (dAIC; with ``loglik``, dLogLik from the smallest log-likelihood).
    base : the criteria themselves (with ``loglik``, the log-likelihoods).
    loglik : include log-likelihoods (with ``base`` or ``delta``).
    sort : rows ordered by the criterion.
    names : row names (default model1, model2, ...; Python cannot see the names the fits have in the caller).

    Returns
    -------
    ICTable with bbmle's columns in bbmle's order (logLik, AIC, dLogLik, dAIC, df, weight).

    Examples
    --------
    >>> cars = tl.datasets.load("cars")
    >>> nll = lambda p, d: -torch.distributions.Normal(p["mu"], p["s"]).log_prob(d["dist"])
    >>> free = tl.mle(nll, {"mu": 40.0, "s": 20.0}, cars, lower={"s": 1e-3})
    >>> at50 = tl.mle(nll, {"mu": 40.0, "s": 20.0}, cars, lower={"s": 1e-3}, fixed={"mu": 50.0})
    >>> print(tl.AICtab(free, at50, names=["free", "mu = 50"]))
            dAIC df
    free    0.0  2
    mu = 50 1.6  1
    """
    if type not in ("AIC", "BIC", "AICc"):
        raise OptionError(f"type must be 'AIC', 'BIC' or 'AICc', not {type!r}")
    if not delta and not base:
        raise OptionError("either base or delta must be True")
    if not fits:
        raise OptionError("AICtab needs at least one fit")
    ll = np.array(_logliks(fits))
    df = np.array([f.df_loglik for f in fits], dtype=float)
    if type == "AIC":
        ic = -2 * ll + 2 * df
    else:
        n = fits[0].nobs
        if not n:
            raise OptionError(f"{type} needs the number of observations: pass nobs= (or data with rows) to the fits")
        ic = -2 * ll + (math.log(n) * df if type == "BIC" else 2 * df + 2 * df * (df + 1) / (n - df - 1))
    rows = [f"model{i + 1}" for i in range(len(fits))] if names is None else [str(n) for n in names]
    if len(rows) != len(fits):
        raise OptionError(f"names has {len(rows)} entries for {len(fits)} fits")
    cols: dict[str, np.ndarray] = {}
    if base:
        if loglik:
            cols["logLik"] = ll
        cols[type] = ic
    if delta:
        if loglik:
            cols["dLogLik"] = ll - ll.min()
        cols[f"d{type}"] = ic - ic.min()
    cols["df"] = df
    if weights:
        d = ic - ic.min()
        cols["weight"] = np.exp(-d / 2) / np.exp(-d / 2).sum()
    tab = ICTable(cols, index=rows)
    if sort:
        tab = ICTable(tab.iloc[np.argsort(ic, kind="stable")])
    return tab


def ic_text(tab: pd.DataFrame, min_weight: float = 0.001) -> str:
    """The text of bbmle's print.ICtab: every number rounded to 0.1 and formatted together, df as integers,
    weights by format.pval; a character matrix printed left-justified.

    Returns
    -------
    str
    """
    cols = list(tab.columns)
    vals = np.array([[round(float(v), 1) for v in tab[c]] for c in cols]).T
    cells = np.array(rf.format_num(vals.reshape(-1), 7), dtype=object).reshape(vals.shape)
    for j, c in enumerate(cols):
        if c == "df":
            cells[:, j] = [str(int(v)) for v in tab[c]]
        elif c == "weight":
            cells[:, j] = rf.format_pval(tab[c].to_numpy(), 2, eps=min_weight)
    rownames = [str(r) for r in tab.index]
    rw = max(len(r) for r in rownames)
    widths = [max([len(c)] + [len(x) for x in cells[:, j]]) for j, c in enumerate(cols)]
    lines = [" " * rw + "".join(" " + c.ljust(w) for c, w in zip(cols, widths))]
    for i, r in enumerate(rownames):
        lines.append(r.ljust(rw) + "".join(" " + cells[i, j].ljust(w) for j, w in enumerate(widths)))
    return "\n".join(lines)
