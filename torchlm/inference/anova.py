"""Analysis of variance tables laid out like R's anova()."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy import stats

from torchlm.errors import DataError, OptionError, TorchlmWarning, silenced
from torchlm.solvers.irls import GLMPasses, irls
from torchlm.solvers.least_squares import ACCURATE_ELEMENTS, linear_chunks, qr_solve
from torchlm.sources.row_blocks import DesignSource

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from torchlm.results.generalized import GeneralizedLinearModelResult
    from torchlm.results.linear import LinearModelResult

DEFAULT = "default"


class AnovaTable(pd.DataFrame):
    """An analysis of variance (or deviance) table: a DataFrame laid out like R's, printed as R prints it.

    ``print(tab)`` (and the REPL) shows R's print.anova text; ``tab.attrs["heading"]`` holds R's
    heading; everything else is a pandas DataFrame (derived frames are plain DataFrames).
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        from torchlm.present.summary import anova_text

        return anova_text(self)

    __str__ = __repr__


def _table(tab: pd.DataFrame, heading: str) -> AnovaTable:
    out = AnovaTable(tab)
    out.attrs["heading"] = heading
    return out


def anova(*fits: LinearModelResult | GeneralizedLinearModelResult, test: str | None = DEFAULT) -> pd.DataFrame:
    """R's anova(): one fit gives the sequential (Type I) table; several nested fits give the comparison.

    Parameters
    ----------
    *fits : LinearModelResult or GeneralizedLinearModelResult
        One fitted model, or several fitted to the same rows (smallest first, as in R).
    test : str or None
        Linear models: "F" (default) or None. GLMs (analysis of deviance): "Chisq" (alias "LRT"),
        "F" or None; the default is "Chisq" when the dispersion is fixed (binomial, poisson) and "F"
        when it is estimated, as R >= 4.4 chooses (R 4.2 printed no test by default).

    Returns
    -------
    AnovaTable
        One fit: a row per term and "Residuals" (lm: Df, Sum Sq, Mean Sq, F value, Pr(>F)) or "NULL"
        and a row per term added (glm: Df, Deviance, Resid. Df, Resid. Dev, then the test's columns).
        Several fits: a row per model (lm: Res.Df, RSS, Df, Sum of Sq, then F and Pr(>F) for the F
        test; glm: Resid. Df, Resid. Dev, Df, Deviance, then the test's columns). R's heading in
        ``attrs["heading"]``.
    """
    if not fits:
        raise OptionError("anova() needs at least one fitted model")
    for f in fits:
        if not (hasattr(f, "design") and hasattr(f, "deviance") and hasattr(f, "df_residual")):
            raise OptionError(f"anova() compares fitted models (tl.lm or tl.glm results), not {type(f).__name__}")
    kinds = {_is_glm(f) for f in fits}
    if len(kinds) > 1:
        raise OptionError("anova() compares models of one kind: all GLMs or all linear models; "
                          "refit the linear model with tl.glm(..., family='gaussian') to compare it with a GLM")
    if test is not None and not isinstance(test, str):
        raise OptionError(f"test must be a string or None, not {type(test).__name__}")
    fits = _same_response(fits)
    if _is_glm(fits[0]):
        if test == DEFAULT:
            test = "Chisq" if fits[0].family.fixed_dispersion else "F"
        if test == "LRT":
            test = "Chisq"
        if test not in (None, "Chisq", "F"):
            raise OptionError(f"test must be 'Chisq', 'LRT', 'F' or None for a GLM, not {test!r}")
        return _glm_sequential(fits[0], test) if len(fits) == 1 else _glm_nested(fits, test)
    if test not in (DEFAULT, None, "F"):
        raise OptionError(f"test must be 'F' or None for linear models, not {test!r}")
    if len(fits) == 1:
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


def _is_glm(fit: LinearModelResult | GeneralizedLinearModelResult) -> TypeIs[GeneralizedLinearModelResult]:
    return hasattr(fit, "family") and hasattr(fit, "null_deviance")


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
    f = fit.fitted().to_numpy()
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
        index=terms + ["Residuals"],
    )
    return _table(tab, f"Analysis of Variance Table\n\nResponse: {d.response}")


def _nested(fits, test) -> pd.DataFrame:
    n = {f.nobs for f in fits}
    if len(n) != 1:
        raise DataError("models were not all fitted to the same size of dataset")
    if test not in (None, "F"):
        raise OptionError(f"test must be 'F' or None for linear models, not {test!r}")
    resdf = np.array([f.df_residual for f in fits], dtype=float)
    rss = np.array([f.deviance for f in fits])
    df = _df_change(resdf)
    ssq = np.r_[np.nan, -np.diff(rss) + 0.0]
    tab = pd.DataFrame({"Res.Df": resdf, "RSS": rss, "Df": df, "Sum of Sq": ssq},
                       index=[str(i + 1) for i in range(len(fits))])
    if test == "F":
        big = int(np.argmin(resdf))
        scale = rss[big] / resdf[big]
        with np.errstate(invalid="ignore", divide="ignore"):
            fval = ssq / df / scale
        # R's stat.anova: no F for equal df, and NA rather than p = 1 for a negative F
        fval[(df == 0) | (fval < 0)] = np.nan
        tab["F"] = fval
        tab["Pr(>F)"] = stats.f.sf(fval, np.abs(df), resdf[big])
    return _table(tab, "Analysis of Variance Table\n\n" + _model_lines(fits))


def _term_columns(fit) -> tuple[list[str], list[list[int]]]:
    """Term labels in formula order (intercept excluded) and, for each, the design columns up to that term."""
    terms = []
    for t in fit.design.assign:
        if t != "1" and t not in terms:
            terms.append(t)
    cols = [[j for j, t in enumerate(fit.design.assign) if t == "1" or t in terms[: i + 1]] for i in range(len(terms))]
    return terms, cols


def _dispersion_for_test(big, test):
    scale = big.dispersion
    df_scale = math.inf if scale == 1 else big.df_residual
    if test == "F" and df_scale == math.inf:
        if big.family.fixed_dispersion:
            warnings.warn(f"using F test with a '{big.family.name}' family is inappropriate", stacklevel=4)
        else:
            warnings.warn("using F test with a fixed dispersion is inappropriate", stacklevel=4)
    return scale, df_scale


def _deviance_tests(tab: pd.DataFrame, test, scale: float, df_scale: float) -> pd.DataFrame:
    """R's stat.anova for "Chisq" and "F" on a table with Df and Deviance columns."""
    dfs = tab["Df"].to_numpy(dtype=float)
    dev = tab["Deviance"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if test == "Chisq":
            vals = dev / scale * np.sign(dfs)
            vals[(dfs == 0) | (vals < 0)] = np.nan
            tab["Pr(>Chi)"] = stats.chi2.sf(vals, np.abs(dfs))
        elif test == "F":
            fval = dev / dfs / scale
            fval[(dfs == 0) | (fval < 0)] = np.nan
            tab["F"] = fval
            tab["Pr(>F)"] = stats.f.sf(fval, np.abs(dfs), df_scale)
    return tab


def _glm_sequential(fit, test) -> pd.DataFrame:
    terms, cols = _term_columns(fit)
    resdf, resdev = [fit.df_null], [fit.null_deviance]
    for c in cols[:-1]:
        d, k = refit_deviance(fit, c)
        resdev.append(d)
        resdf.append(k)
    if terms:
        resdf.append(fit.df_residual)
        resdev.append(fit.deviance)
    resdf_a, resdev_a = np.array(resdf, dtype=float), np.array(resdev)
    tab = pd.DataFrame({"Df": _df_change(resdf_a),
                        "Deviance": np.r_[np.nan, np.maximum(0, -np.diff(resdev_a))],
                        "Resid. Df": resdf_a, "Resid. Dev": resdev_a}, index=["NULL"] + terms)
    if test is not None:
        tab = _deviance_tests(tab, test, *_dispersion_for_test(fit, test))
    return _table(tab, f"Analysis of Deviance Table\n\nModel: {fit.family.name}, link: {fit.family.link.name}"
                       f"\n\nResponse: {fit.design.response}\n\nTerms added sequentially (first to last)\n\n")


def _glm_nested(fits, test) -> pd.DataFrame:
    if len({f.nobs for f in fits}) != 1:
        raise DataError("models were not all fitted to the same size of dataset")
    resdf = np.array([f.df_residual for f in fits], dtype=float)
    resdev = np.array([f.deviance for f in fits])
    tab = pd.DataFrame({"Resid. Df": resdf, "Resid. Dev": resdev, "Df": _df_change(resdf),
                        "Deviance": np.r_[np.nan, -np.diff(resdev) + 0.0]},
                       index=[str(i + 1) for i in range(len(fits))])
    if test is not None:
        big = fits[int(np.argmin(resdf))]
        scale, df_scale = _dispersion_for_test(big, test)
        if df_scale != math.inf:
            df_scale = float(resdf.min())
        tab = _deviance_tests(tab, test, scale, df_scale)
    return _table(tab, "Analysis of Deviance Table\n\n" + _model_lines(fits))


def _model_lines(fits) -> str:
    # R: paste0("Model ", format(1L:nmodels), ": ", formulas, collapse = "\n")
    w = len(str(len(fits)))
    return "\n".join(f"Model {str(i + 1).rjust(w)}: {f.design.formula}" for i, f in enumerate(fits))


# --- drop1: single term deletions -----------------------------------------------------------------

@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # Inf and NaN as R, for data near 1e300
def drop1(fit: LinearModelResult | GeneralizedLinearModelResult, test: str | None = None,
          k: float = 2) -> AnovaTable:
    """R's drop1(): refit without each term that can be dropped (not part of a higher-order term).

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fitted lm or glm.
    test : str or None
        Linear models: None or "F" (or "Chisq", R's n log(RSS) likelihood ratio); GLMs: None,
        "Chisq" (alias "LRT") or "F".
    k : float
        Weight of the degrees of freedom in the AIC column (2: AIC; log(n): BIC), as R's k.

    Returns
    -------
    AnovaTable
        Laid out like R's: rows "<none>" and the dropped terms; columns Df, Sum of Sq, RSS, AIC (lm) or
        Df, Deviance, AIC (glm; AIC left out where the family has none), plus the test.
    """
    if not (hasattr(fit, "design") and hasattr(fit, "deviance")):
        raise OptionError(f"drop1() takes a fitted model (a tl.lm or tl.glm result), not {type(fit).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) or k < 0:
        raise OptionError(f"k must be a finite number >= 0 (2 for AIC, log(n) for BIC), not {k!r}")
    if test == "LRT":
        test = "Chisq"
    if test not in (None, "F", "Chisq"):
        raise OptionError(f"test must be None, 'F' or 'Chisq' (alias 'LRT'), not {test!r}")
    assign = list(fit.design.assign)
    scope = _drop_scope(fit)
    n = fit.design.shape[0]  # R: nrow(model.matrix(fit)), zero-weight rows included
    dfs, dev = [fit.rank], [fit.deviance]
    for term in scope:
        keep = [j for j, t in enumerate(assign) if t != term]
        d, rank = _refit(fit, keep)
        dfs.append(rank)
        dev.append(d)
    dfs_a, dev_a = np.array(dfs, dtype=float), np.array(dev)
    index = ["<none>"] + scope
    ddf = np.r_[np.nan, dfs_a[0] - dfs_a[1:]]
    if _is_glm(fit):
        loglik = n * np.log(dev_a / n) if fit.family.deviance_is_rss else dev_a / fit.dispersion
        aic = loglik + k * dfs_a
        aic = aic + ((fit.aic() + (k - 2) * fit.df_loglik) - aic[0])  # R: + extractAIC(fit, k)[2] - aic[1]
        tab = pd.DataFrame({"Df": ddf, "Deviance": dev_a, "AIC": aic}, index=index)
        if np.isnan(aic).all():
            tab = tab.drop(columns="AIC")
        if test == "Chisq":
            lr = np.r_[np.nan, np.maximum(0, loglik[1:] - loglik[0])]
            tab["LRT" if fit.dispersion == 1 else "scaled dev."] = lr
            tab["Pr(>Chi)"] = _upper_chisq(lr, ddf)
        elif test == "F":
            if fit.family.fixed_dispersion:
                warnings.warn(f"F test assumes 'quasi{fit.family.name}' family", stacklevel=2)
            rms = dev_a[0] / fit.df_residual
            _f_columns(tab, np.r_[np.nan, np.maximum(0, dev_a[1:] - dev_a[0])], ddf, rms, fit.df_residual)
    else:
        ss = np.r_[np.nan, dev_a[1:] - dev_a[0]]
        aic = n * np.log(dev_a / n) + k * dfs_a
        tab = pd.DataFrame({"Df": ddf, "Sum of Sq": ss, "RSS": dev_a, "AIC": aic}, index=index)
        if test == "Chisq":
            lr = n * np.log(dev_a / n)
            tab["Pr(>Chi)"] = _upper_chisq(np.r_[np.nan, lr[1:] - lr[0]], ddf)
        elif test == "F":
            _f_columns(tab, ss, ddf, dev_a[0] / fit.df_residual, fit.df_residual)
    return _table(tab, f"Single term deletions\n\nModel:\n{fit.design.formula}")


def _upper_chisq(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    # R's safe_pchisq: df <= 0 gives NA
    df = np.where(df > 0, df, np.nan)
    return stats.chi2.sf(stat, df)


def _f_columns(tab: pd.DataFrame, ss: np.ndarray, df: np.ndarray, rms: float, rdf: int) -> None:
    fs = ss / df / rms
    fs = np.where(df < 1e-4, np.nan, fs)
    tab["F value"] = fs
    tab["Pr(>F)"] = stats.f.sf(fs, np.where(df > 0, df, np.nan), rdf)


def _drop_scope(fit) -> list[str]:
    """R's drop.scope: the terms whose factors are not all inside another term's (marginality)."""
    factors = {}
    for st in fit.design.spec.structure:
        label = str(st.term)
        if label != "1":
            factors[label] = {str(f) for f in st.term.factors}
    return [t for t, fs in factors.items() if not any(o != t and fs <= ofs for o, ofs in factors.items())]


def _refit(fit, cols: list[int]) -> tuple[float, int]:
    """Deviance (RSS for lm) and rank of the same model on design columns ``cols``."""
    if _is_glm(fit):
        d, rdf = refit_deviance(fit, cols)
        return d, fit.nobs - rdf

    d = fit.design
    n, p = d.shape[0], len(cols)
    chunks = linear_chunks(d, d.y, d.weights, d.offset, fit.device, fit.dtype, columns=cols)
    qr = qr_solve(chunks, p, fit.tol, fit.device, fit.dtype, accurate=n * p <= ACCURATE_ELEMENTS)
    if qr.rss is not None:
        return qr.rss, qr.rank
    # the weighted residual sum of squares at the refit, one more pass over the blocks
    beta = torch.as_tensor(np.nan_to_num(qr.coef), dtype=fit.dtype, device=fit.device)
    return float(sum(float(fn(beta).square().sum()) for fn in chunks())), qr.rank


def refit_deviance(fit: GeneralizedLinearModelResult, cols: list[int]) -> tuple[float, int]:
    """Deviance and residual df of the same GLM restricted to design columns ``cols`` (R's anova.glm refits).

    Parameters
    ----------
    fit : GeneralizedLinearModelResult
        The fitted glm: its design, response, weights, offset, family and tolerance are reused.
    cols : list of int
        Design columns to keep.

    Returns
    -------
    tuple of (float, int)
        The refit's deviance and its residual degrees of freedom (nobs minus the refit's rank).
    """
    ctl = dict(fit.control)  # R's anova.glm refits with the fit's glm.control
    passes = GLMPasses(DesignSource(fit.design), fit._y, fit._w, fit._offset, fit.family, columns=cols)
    with silenced():
        # R's anova.glm refits start from the family's mustart at the (initialized) response
        _, _, mu0 = fit.family.initialize(fit._y, fit._w)
        sub = irls(passes, mustart=mu0, control=ctl, tol=fit.tol)
    return sub.deviance, fit.nobs - sub.qr.rank
