"""Analysis of variance tables laid out like R's anova()."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import DataError, OptionError, TorchlmWarning
from torchlm.inference.car_anova import type_anova
from torchlm.inference.refits import glm_refit, rao_score, working_parts
from torchlm.inference.rterms import formula_lines, r_labels
from torchlm.inference.tables import AnovaTable, anova_table, is_glm

if TYPE_CHECKING:
    from torchlm.results.protocols import DiagnosticFit

__all__ = ["AnovaTable", "anova"]  # AnovaTable: its home before torchlm.inference.tables

DEFAULT = "default"


def anova(*fits: DiagnosticFit, test: str | None = DEFAULT, type: str | int | None = None) -> pd.DataFrame:
    """R's anova(): one fit gives the sequential (Type I) table; several nested fits give the comparison.

    ``type="II"`` or ``"III"`` gives car's Anova() tables instead (see :func:`torchlm.Anova`).

    Parameters
    ----------
    *fits : LinearModelResult or GeneralizedFit
        One fitted model, or several fitted to the same rows (smallest first, as in R).
    test : str or None
        Linear models: "F" (the default), "Chisq" (alias "LRT"), "Cp" or None for several fits (one
        fit's table always has R's F test). GLMs (analysis of deviance): None (the default: no test,
        as R 4.2's anova.glm), "Chisq" (alias "LRT"), "F", "Rao" (R's score test) or "Cp". With
        ``type``, car's test.statistic: lm "F"; glm "LR" (default; "Chisq" is taken as "LR"), "Wald", "F".
    type : None (R's sequential anova), "I"/1 (the same), "II"/2 or "III"/3 (car::Anova, one fit).

    Returns
    -------
    AnovaTable
        One fit: a row per term and "Residuals" (lm: Df, Sum Sq, Mean Sq, F value, Pr(>F)) or "NULL"
        and a row per term added (glm: Df, Deviance, Resid. Df, Resid. Dev, then the test's columns:
        Rao and Pr(>Chi) for "Rao", Cp for "Cp"). Several fits: a row per model (lm: Res.Df, RSS, Df,
        Sum of Sq, then the test's columns; glm: Resid. Df, Resid. Dev, Df, Deviance, then the test's
        columns). R's heading in ``attrs["heading"]``.

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.anova(tl.lm("mpg ~ wt", mtcars), tl.lm("mpg ~ wt + hp", mtcars)))
    Analysis of Variance Table
    <BLANKLINE>
    Model 1: mpg ~ wt
    Model 2: mpg ~ wt + hp
      Res.Df    RSS Df Sum of Sq      F   Pr(>F)
    1     30 278.32
    2     29 195.05  1    83.274 12.381 0.001451 **
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    if not fits:
        raise OptionError("anova() needs at least one fitted model")
    if all(hasattr(f, "loglik_at") for f in fits):  # tl.mle / tl.infer Estimates: bbmle's likelihood-ratio table
        from torchlm.inference.mle_anova import lr_anova
        return lr_anova(*fits, test="Chisq" if test == DEFAULT else test)
    own = getattr(fits[0], "_own_anova", None)  # a model with an anova method of its own (MASS's anova.negbin)
    if type is None and own is not None:
        return own(*fits[1:], test=test)
    if type is not None and str(type) not in ("I", "1"):
        if len(fits) != 1:
            raise OptionError(f"anova(type={type!r}) tests the terms of one fit (car's Anova); "
                              f"compare several fits with anova(*fits)")
        stat = None if test in (DEFAULT, None) else ("LR" if test in ("Chisq", "LRT") else test)
        return type_anova(fits[0], type, stat)  # type: ignore[arg-type]  # a lm or glm result
    for f in fits:
        if not (hasattr(f, "design") and hasattr(f, "deviance") and hasattr(f, "df_residual")):
            raise OptionError(f"anova() compares fitted models (tl.lm or tl.glm results), not {f.__class__.__name__}")
    kinds = {is_glm(f) for f in fits}
    if len(kinds) > 1:
        raise OptionError("anova() compares models of one kind: all GLMs or all linear models; "
                          "refit the linear model with tl.glm(..., family='gaussian') to compare it with a GLM")
    if test is not None and not isinstance(test, str):
        raise OptionError(f"test must be a string or None, not {test.__class__.__name__}")
    fits = _same_response(fits)
    if test == "LRT":
        test = "Chisq"
    if is_glm(fits[0]):
        test = None if test == DEFAULT else test  # R 4.2's anova.glm: test = NULL (R 4.4 chose Chisq or F)
        if test not in (None, "Chisq", "F", "Rao", "Cp"):
            raise OptionError(f"test must be 'Chisq', 'LRT', 'F', 'Rao', 'Cp' or None for a GLM, not {test!r}")
        return _glm_sequential(fits[0], test) if len(fits) == 1 else _glm_nested(fits, test)
    if test not in (DEFAULT, None, "F", "Chisq", "Rao", "Cp"):
        raise OptionError(f"test must be 'F', 'Chisq', 'LRT', 'Rao', 'Cp' or None for linear models, not {test!r}")
    if len(fits) == 1:
        if test not in (DEFAULT, None, "F"):
            # R's anova.lm of one model takes no test argument
            warnings.warn(f"the following arguments to 'anova.lm' are invalid and dropped: list(test = \"{test}\")",
                          TorchlmWarning, stacklevel=2)
        return _sequential(fits[0])
    return _nested(fits, "F" if test == DEFAULT else test)


def _same_response(fits: tuple) -> tuple:
    """R's anova.lmlist / anova.glmlist: models whose response differs from model 1's are dropped, with a warning."""
    first = fits[0].design.response
    keep = tuple(f for f in fits if f.design.response == first)
    if len(keep) < len(fits):
        # R: sQuote(deparse(responses[!sameresp])) in a UTF-8 locale
        dropped = [f'"{f.design.response}"' for f in fits if f.design.response != first]
        shown = dropped[0] if len(dropped) == 1 else f"c({', '.join(dropped)})"
        warnings.warn(f"models with response \u2018{shown}\u2019 removed because response differs from model 1",
                      TorchlmWarning, stacklevel=3)
    return keep


def _df_change(resdf: np.ndarray) -> np.ndarray:
    # + 0.0 turns -0.0 (equal df) into 0, which R prints as 0
    return np.r_[np.nan, -np.diff(resdf) + 0.0]


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
        ss[k] += float(eff) * float(eff)  # Inf where it overflows, as R (** raises OverflowError)
        df[k] += 1
    rdf, rss = fit.df_residual, fit.deviance
    f = fit._fitted  # the rows used (fitted() pads them under na_action="exclude")
    mss = float(np.sum(f * f if d.weights is None else d.weights * f * f))
    if rss < 1e-10 * mss:
        warnings.warn("ANOVA F-tests on an essentially perfect fit are unreliable", TorchlmWarning, stacklevel=3)
    ms = [s / k for s, k in zip(ss, df)]
    resid_ms = rss / rdf if rdf > 0 else np.nan
    fval = [m / resid_ms for m in ms]
    pval = [stats.f.sf(f, k, rdf) for f, k in zip(fval, df)]
    tab = pd.DataFrame(
        {"Df": df + [rdf], "Sum Sq": ss + [rss], "Mean Sq": ms + [resid_ms],
         "F value": fval + [np.nan], "Pr(>F)": pval + [np.nan]},
        index=r_labels(fit, terms) + ["Residuals"],
    )
    return anova_table(tab, f"Analysis of Variance Table\n\nResponse: {d.response}")


def _nested(fits, test) -> pd.DataFrame:
    n = {f.nobs for f in fits}
    if len(n) != 1:
        raise DataError("models were not all fitted to the same size of dataset")
    resdf = np.array([f.df_residual for f in fits], dtype=float)
    rss = np.array([f.deviance for f in fits])
    tab = pd.DataFrame({"Res.Df": resdf, "RSS": rss, "Df": _df_change(resdf),
                        "Sum of Sq": np.r_[np.nan, -np.diff(rss) + 0.0]}, index=[str(i + 1) for i in range(len(fits))])
    if test is not None:
        big = int(np.argmin(resdf))
        tab = _stat_anova(tab, test, rss[big] / resdf[big], resdf[big], fits[big].design.shape[0])
    return anova_table(tab, "Analysis of Variance Table\n\n" + _model_lines(fits))


def _term_columns(fit) -> tuple[list[str], list[list[int]]]:
    """Term labels in formula order (intercept excluded) and, for each, the design columns up to that term."""
    terms = []
    for t in fit.design.assign:
        if t != "1" and t not in terms:
            terms.append(t)
    cols = [[j for j, t in enumerate(fit.design.assign) if t == "1" or t in terms[: i + 1]] for i in range(len(terms))]
    return terms, cols


def _dispersion_for_test(big, test) -> tuple[float, float]:
    scale = big.dispersion
    df_scale = math.inf if scale == 1 else big.df_residual
    if test == "F" and df_scale == math.inf:
        if big.family.fixed_dispersion:
            warnings.warn(f"using F test with a '{big.family.name}' family is inappropriate", stacklevel=4)
        else:
            warnings.warn("using F test with a fixed dispersion is inappropriate", stacklevel=4)
    return scale, df_scale


def _stat_anova(tab: pd.DataFrame, test: str, scale: float, df_scale: float, n: int) -> pd.DataFrame:
    """R's stat.anova: "Chisq" and "Rao" (Pr(>Chi)), "F" (F, Pr(>F)) or "Cp" columns added to an anova table."""
    dfs = tab["Df"].to_numpy(dtype=float)
    col = "Rao" if test == "Rao" else "Deviance" if "Deviance" in tab.columns else "Sum of Sq"
    dev = tab[col].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if test in ("Chisq", "Rao"):
            vals = dev / scale * np.sign(dfs)
            vals[(dfs == 0) | (vals < 0)] = np.nan
            tab["Pr(>Chi)"] = stats.chi2.sf(vals, np.abs(dfs))
        elif test == "F":
            fval = dev / dfs / scale
            fval[(dfs == 0) | (fval < 0)] = np.nan
            tab["F"] = fval
            tab["Pr(>F)"] = stats.f.sf(fval, np.abs(dfs), df_scale)
        elif test == "Cp":
            resid, rdf = ("RSS", "Res.Df") if "RSS" in tab.columns else ("Resid. Dev", "Resid. Df")
            tab["Cp"] = tab[resid].to_numpy(dtype=float) + 2 * scale * (n - tab[rdf].to_numpy(dtype=float))
    return tab


def _glm_sequential(fit, test) -> pd.DataFrame:
    terms, cols = _term_columns(fit)
    resdf, resdev = [fit.df_null], [fit.null_deviance]
    score = []
    # R's anova.glm: the fit before each term, from the intercept (or nothing) on; its working residuals and
    # weights give the Rao score of the next term
    previous = glm_refit(fit, [j for j, t in enumerate(fit.design.assign) if t == "1"]) if test == "Rao" else None
    for c, nxt in zip(cols, cols[1:] + [None]):
        if previous is not None:
            score.append(rao_score(fit, fit.design, c, *working_parts(fit, previous), fit.design.has_intercept))
        if nxt is None:
            break
        sub = glm_refit(fit, c)
        resdev.append(sub.deviance)
        resdf.append(fit.nobs - sub.qr.rank)
        previous = sub if test == "Rao" else None
    if terms:
        resdf.append(fit.df_residual)
        resdev.append(fit.deviance)
    resdf_a, resdev_a = np.array(resdf, dtype=float), np.array(resdev)
    tab = pd.DataFrame({"Df": _df_change(resdf_a),
                        "Deviance": np.r_[np.nan, np.maximum(0, -np.diff(resdev_a))],
                        "Resid. Df": resdf_a, "Resid. Dev": resdev_a}, index=["NULL"] + r_labels(fit, terms))
    if test == "Rao":
        tab["Rao"] = np.r_[np.nan, score]
    if test is not None:
        tab = _stat_anova(tab, test, *_dispersion_for_test(fit, test), fit.design.shape[0])
    return anova_table(tab, f"Analysis of Deviance Table\n\nModel: {fit.family.name}, link: {fit.family.link.name}"
                       f"\n\nResponse: {fit.design.response}\n\nTerms added sequentially (first to last)\n\n")


def _glm_nested(fits, test) -> pd.DataFrame:
    if len({f.nobs for f in fits}) != 1:
        raise DataError("models were not all fitted to the same size of dataset")
    resdf = np.array([f.df_residual for f in fits], dtype=float)
    resdev = np.array([f.deviance for f in fits])
    df = _df_change(resdf)
    tab = pd.DataFrame({"Resid. Df": resdf, "Resid. Dev": resdev, "Df": df,
                        "Deviance": np.r_[np.nan, -np.diff(resdev) + 0.0]},
                       index=[str(i + 1) for i in range(len(fits))])
    if test == "Rao":
        tab["Rao"] = [np.nan] + [_nested_score(a, b, d) for a, b, d in zip(fits, fits[1:], df[1:])]
    if test is not None:
        big = fits[int(np.argmin(resdf))]
        scale, df_scale = _dispersion_for_test(big, test)
        if df_scale != math.inf:
            df_scale = float(resdf.min())
        tab = _stat_anova(tab, test, scale, df_scale, big.design.shape[0])
    return anova_table(tab, "Analysis of Deviance Table\n\n" + _model_lines(fits))


def _nested_score(a, b, df: float) -> float:
    """R's anova.glmlist Rao score between neighbours: the smaller model's working residuals and weights
    regressed on the larger model's design; negative when the second model is the smaller."""
    small, large = (a, b) if df > 0 else (b, a)
    r = small._working_resid().cpu().double().numpy()
    w = small._working_w.cpu().double().numpy()
    s = rao_score(large, large.design, list(range(large.design.shape[1])), r, w, small.design.has_intercept)
    return s if df > 0 else -s


def _model_lines(fits) -> str:
    # R: paste0("Model ", format(1L:nmodels), ": ", formulas, collapse = "\n"), each formula deparsed
    w = len(str(len(fits)))
    return "\n".join(f"Model {str(i + 1).rjust(w)}: " + "\n".join(formula_lines(f)) for i, f in enumerate(fits))


