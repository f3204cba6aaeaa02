"""R's drop1() and add1(): the model refitted without, or with, each single term, with R's AIC and tests.

Terms are R's (labels, order and marginality, from :mod:`torchlm.inference.rterms`); the AIC column is
R's extractAIC bookkeeping: ``n log(RSS / n) + k edf`` for lm, the glm's AIC plus ``(k - 2) edf``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import FormulaError, OptionError, TorchlmWarning, warn
from torchlm.frame import build_design
from torchlm.inference.refits import glm_data, glm_refit, lm_rss, rao_score, refit, working_parts
from torchlm.inference.rterms import (
    RTerms,
    Term,
    add_scope,
    design_terms,
    drop_scope,
    fit_formula,
    formula_lines,
    label_terms,
    model_terms,
    r_terms,
    term_columns,
    updated,
)
from torchlm.inference.tables import AnovaTable, anova_table, is_glm

if TYPE_CHECKING:
    from torchlm.results.protocols import DiagnosticFit

    Fit = DiagnosticFit

_TESTS = {None: None, "none": None, "F": "F", "Chisq": "Chisq", "LRT": "Chisq", "Rao": "Rao"}


def extract_aic(fit: Fit, k: float = 2) -> tuple[float, float]:
    """R's extractAIC(fit, k = k): the equivalent degrees of freedom and the AIC step() compares.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedFit
    k : float
        Weight of the degrees of freedom (2: AIC; log(n): BIC).

    Returns
    -------
    tuple of (float, float)
        ``edf`` (rows, zero weights included, minus the residual df) and ``n log(RSS / n) + k edf``
        (lm) or ``AIC + (k - 2) edf`` (glm; NaN for the quasi families).
    """
    own = getattr(fit, "extract_aic", None)  # a model with an extractAIC of its own (MASS's glm.nb)
    if own is not None:
        return own(k)
    n = fit.design.shape[0]
    edf = n - fit.df_residual
    if is_glm(fit):
        return edf, fit.aic() + (k - 2) * edf
    with np.errstate(divide="ignore"):
        return edf, float(n * np.log(fit.deviance / n) + k * edf)


def _check(fit: Any, test: Any, k: Any, fn: str) -> str | None:
    if not (hasattr(fit, "design") and hasattr(fit, "deviance")):
        raise OptionError(f"{fn}() takes a fitted model (a tl.lm or tl.glm result), not {type(fit).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) or k < 0:
        raise OptionError(f"k must be a finite number >= 0 (2 for AIC, log(n) for BIC), not {k!r}")
    if not isinstance(test, (str, type(None))) or test not in _TESTS:
        raise OptionError(f"test must be None, 'F', 'Chisq' (alias 'LRT') or 'Rao', not {test!r}")
    if _TESTS[test] == "Rao" and not is_glm(fit):
        raise OptionError("test='Rao' is R's score test of a GLM; for a linear model use 'F' or 'Chisq'")
    return _TESTS[test]


def _terms(fit: Fit, fn: str) -> RTerms:
    try:
        return model_terms(fit)
    except FormulaError as e:
        if fn == "drop1":
            return design_terms(fit.design)  # formulaic's labels: drop1 needs no formula of its own
        raise FormulaError(f"{fn}() reads the model's formula in R's syntax, and cannot read "
                           f"{fit.design.formula!r}: {e}") from None


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # Inf and NaN as R, for data near 1e300
def drop1(fit: Fit, scope: str | list[str] | None = None, *, test: str | None = None, k: float = 2) -> AnovaTable:
    """R's drop1(): refit without each term that can be dropped (not part of a higher-order term).

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedFit
        A fitted lm or glm.
    scope : str or list of str, optional
        The terms to drop: a formula (``"~ hp + qsec"``) or term labels (``["hp", "qsec"]``, or one label
        as a string); by default every term that marginality allows (R's drop.scope).
    test : str or None
        None (or "none"), "F", "Chisq" (alias "LRT"; for lm R's n log(RSS) likelihood ratio) or, for
        GLMs, "Rao" (R's score test).
    k : float
        Weight of the degrees of freedom in the AIC column (2: AIC; log(n): BIC), as R's k.

    Returns
    -------
    AnovaTable
        Laid out like R's: rows "<none>" and the dropped terms; columns Df, Sum of Sq, RSS, AIC (lm) or
        Df, Deviance, AIC (glm; AIC left out where the family has none), plus the test.

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.drop1(tl.lm("mpg ~ wt + hp", mtcars), test="F"))
    Single term deletions
    <BLANKLINE>
    Model:
    mpg ~ wt + hp
           Df Sum of Sq    RSS    AIC F value   Pr(>F)
    <none>              195.05 63.840
    wt      1   252.627 447.67 88.427  37.561 1.12e-06 ***
    hp      1    83.274 278.32 73.217  12.381 0.001451 **
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    own = getattr(fit, "_own_drop1", None)  # a fit whose refits are its own (a Dask DataFrame's partitions)
    if own is not None:
        return own(scope, test=test, k=k)
    test = _check(fit, test, k, "drop1")
    rt = _terms(fit, "drop1")
    if isinstance(scope, str) and "~" not in scope:
        scope = [scope]  # R's character scope: term labels
    if scope is None:
        terms = drop_scope(rt.terms)
    else:
        given = (r_terms(updated(fit_formula(fit), scope)).terms if isinstance(scope, str)
                 else label_terms(scope))
        have = {t.variables for t in rt.terms}
        if bad := [t.label for t in given if t.variables not in have]:
            raise OptionError(f"scope is not a subset of term labels: {bad} are not terms of the model "
                              f"({rt.labels})")
        terms = list(given)
    return drop_table(fit, terms, test, k)


def drop_table(fit: Fit, terms: list[Term], test: str | None, k: float) -> AnovaTable:
    """drop1's table for the given terms of the fit (R's drop1(fit, scope = labels)).

    Returns
    -------
    AnovaTable
    """
    p = fit.design.shape[1]
    dfs, dev, score = [fit.rank], [fit.deviance], [np.nan]
    for cols in term_columns(fit.design, terms):
        keep = [j for j in range(p) if j not in cols]
        if test == "Rao":
            sub = glm_refit(fit, keep)
            d, rank = sub.deviance, sub.qr.rank
            # R: glm.fit(x, r, w) of the reduced fit's working residuals and weights on the whole design
            score.append(rao_score(fit, fit.design, list(range(p)), *working_parts(fit, sub), True))
        else:
            d, rank = refit(fit, keep)
        dfs.append(rank)
        dev.append(d)
    tab = _columns(fit, "drop", np.array(dfs, dtype=float), np.array(dev), np.array(score), fit.design.shape[0], k,
                   test, ["<none>"] + [t.label for t in terms])
    return anova_table(tab, "Single term deletions\n\nModel:\n" + "\n".join(formula_lines(fit)))


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def add1(fit: Fit, scope: str | list[str], *, test: str | None = None, k: float = 2) -> AnovaTable:
    """R's add1(): refit with each term of the scope that can be added (its margins already in the model).

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedFit
        A fitted lm or glm (made by tl.lm or tl.glm: the larger models are built from its data).
    scope : str or list of str
        A formula, ``"~ . + hp + qsec"`` (``.`` is the model's right-hand side) or ``"~ wt + hp + qsec"``,
        whose terms not in the model are candidates (R's add.scope: marginality respected); or term
        labels (a list, or one label as a string), each tried as given.
    test : str or None
        None (or "none"), "F", "Chisq" (alias "LRT") or, for GLMs, "Rao" (R's score test).
    k : float
        Weight of the degrees of freedom in the AIC column (2: AIC; log(n): BIC).

    Returns
    -------
    AnovaTable
        R's table: rows "<none>" and each term added; columns Df, Sum of Sq, RSS, AIC (lm) or Df,
        Deviance, AIC (glm), plus the test's columns (lm F: F value, Pr(>F); Chisq: Pr(>Chi); glm
        LRT / Rao score (scaled dev. / scaled Rao sc. for an estimated dispersion) and Pr(>Chi)).

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.add1(tl.lm("mpg ~ wt", mtcars), "~ wt + hp + qsec", test="F"))
    Single term additions
    <BLANKLINE>
    Model:
    mpg ~ wt
           Df Sum of Sq    RSS    AIC F value   Pr(>F)
    <none>              278.32 73.217
    hp      1    83.274 195.05 63.840  12.381 0.001451 **
    qsec    1    82.858 195.46 63.908  12.293 0.001500 **
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    test = _check(fit, test, k, "add1")
    if scope is None:
        raise OptionError("no terms in scope: give add1() a scope, e.g. '~ . + x' or ['x', 'z']")
    rt = _terms(fit, "add1")
    if isinstance(scope, str) and "~" not in scope:
        scope = [scope]  # R's character scope: term labels
    if isinstance(scope, str):
        terms = add_scope(rt.terms, r_terms(updated(fit_formula(fit), scope)).terms)
    else:
        terms = label_terms(scope)
    if not terms:
        raise OptionError("no terms in scope for adding to object: every term of the scope is in the model "
                          "or waits for its margins")
    return add_table(fit, terms, test, k)


def combined_design(fit: Fit, terms: list[Term]) -> Any:
    """The design of the model with every term of ``terms`` added, on the rows all its variables have.

    Returns
    -------
    Design
        Built from the fit's data, weights, offset and subset, as the fitter built the fit's.
    """
    refit = getattr(fit, "_refit", None)
    if refit is None:
        raise OptionError(f"add1() and step() refit a model made by tl.lm or tl.glm; this {type(fit).__name__} "
                          "was not")
    new = r_terms(updated(fit_formula(fit), "~ . + " + " + ".join(t.label for t in terms))).formula()
    a = refit.arguments
    factor_response, fitter = False, None
    if is_glm(fit):
        factor_response = fit.family.factor_response
        fitter = None if factor_response else f"glm with family {fit.family.name!r}"
    coding: dict[str, Any] = {k: a[k] for k in ("contrasts", "names") if k in a}  # as the fitter built the fit's
    return build_design(new, a.get("data"), weights=a.get("weights"), offset=a.get("offset"), subset=a.get("subset"),
                        na_action=a.get("na_action", "omit"), allow_factor_response=factor_response, fitter=fitter,
                        **coding)


def add_table(fit: Fit, terms: list[Term], test: str | None, k: float) -> AnovaTable:
    """add1's table for the given terms (R's add1(fit, scope = labels)).

    Returns
    -------
    AnovaTable
    """
    design = combined_design(fit, terms)
    n, old = design.shape[0], fit.design.shape[0]
    if n < old:
        warn(f"using the {n}/{old} row{'' if n == 1 else 's'} from a combined fit", TorchlmWarning, stacklevel=3)
    own = [j for j, a in enumerate(design.assign) if a == "1"]
    for cols in term_columns(design, model_terms(fit).terms):
        own += cols
    own.sort()
    sets = [sorted(set(own) | set(cols)) for cols in term_columns(design, terms)]
    if is_glm(fit):
        data = glm_data(fit, design)
        z = glm_refit(fit, own, design, data)
        dfs, dev, score = [z.qr.rank], [z.deviance], [np.nan]
        parts = working_parts(fit, z, data) if test == "Rao" else None
        off = None if design.offset is None else np.asarray(design.offset, dtype=float)
        for cols in sets:
            sub = glm_refit(fit, cols, design, data)
            dfs.append(sub.qr.rank)
            dev.append(sub.deviance)
            if parts is not None:
                score.append(rao_score(fit, design, cols, *parts, True, off))
    else:
        fits = [lm_rss(fit, design, design.y, design.weights, design.offset, c) for c in [own] + sets]
        dev, dfs, score = [f[0] for f in fits], [f[1] for f in fits], [np.nan] * len(fits)
    tab = _columns(fit, "add", np.array(dfs, dtype=float), np.array(dev), np.array(score), n, k, test,
                   ["<none>"] + [t.label for t in terms])
    return anova_table(tab, "Single term additions\n\nModel:\n" + "\n".join(formula_lines(fit)))


def _columns(fit: Fit, kind: str, dfs: np.ndarray, dev: np.ndarray, score: np.ndarray, n: int, k: float,
             test: str | None, index: list[str]) -> pd.DataFrame:
    """R's drop1/add1 table from the refits' ranks and deviances (first row: the model, "<none>")."""
    sign = 1 if kind == "drop" else -1
    ddf = np.r_[np.nan, sign * (dfs[0] - dfs[1:])]
    rdf = fit.df_residual
    if not is_glm(fit):
        ss = np.r_[np.nan, sign * (dev[1:] - dev[0])]
        tab = pd.DataFrame({"Df": ddf, "Sum of Sq": ss, "RSS": dev, "AIC": n * np.log(dev / n) + k * dfs},
                           index=index)
        if test == "Chisq":
            lr = n * np.log(dev / n)
            tab["Pr(>Chi)"] = _upper_chisq(np.r_[np.nan, sign * (lr[1:] - lr[0])], ddf)
        elif test == "F":
            _f_columns(tab, ss, ddf, rdf, kind, dev)
        return tab
    disp = fit.dispersion
    loglik = n * np.log(dev / n) if fit.family.deviance_is_rss else dev / disp
    aic = loglik + k * dfs
    aic = aic + (extract_aic(fit, k)[1] - aic[0])
    tab = pd.DataFrame({"Df": ddf, "Deviance": dev, "AIC": aic}, index=index)
    if np.isnan(aic).all():
        tab = tab.drop(columns="AIC")
    if test == "Chisq":
        lr = np.r_[np.nan, np.maximum(0, sign * (loglik[1:] - loglik[0]))]
        tab["LRT" if disp == 1 else "scaled dev."] = lr
        tab["Pr(>Chi)"] = _upper_chisq(lr, ddf)
    elif test == "Rao":
        sc = np.maximum(0, score) / disp
        tab["Rao score" if disp == 1 else "scaled Rao sc."] = sc
        tab["Pr(>Chi)"] = _upper_chisq(sc, ddf)
    elif test == "F":
        if fit.family.fixed_dispersion:
            quote = "'" if kind == "drop" else ""
            warn(f"F test assumes {quote}quasi{fit.family.name}{quote} family", TorchlmWarning, stacklevel=4)
        _f_columns(tab, np.r_[np.nan, np.maximum(0, sign * (dev[1:] - dev[0]))], ddf, rdf, kind, dev)
    return tab


def _upper_chisq(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    # R's safe_pchisq: df <= 0 gives NA
    return stats.chi2.sf(stat, np.where(df > 0, df, np.nan))


def _f_columns(tab: pd.DataFrame, ss: np.ndarray, df: np.ndarray, rdf: int, kind: str, dev: np.ndarray) -> None:
    """R's F columns: drop1 against the model's residual mean square, add1 against each larger model's."""
    if kind == "drop":
        fs = np.where(df < 1e-4, np.nan, ss / df / (dev[0] / rdf))
        den = np.full_like(df, rdf)
    else:
        fs = np.where(df < np.finfo(float).eps, np.nan, ss / df / (dev / (rdf - df)))
        den = rdf - df
    tab["F value"] = fs
    tab["Pr(>F)"] = stats.f.sf(fs, np.where(df > 0, df, np.nan), den)
