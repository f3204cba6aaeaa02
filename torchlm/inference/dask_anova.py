"""Sequential anova and drop1 of a Dask fit: R's tables from refits on design columns, over the partitions.

R refits a model on some columns of its model matrix, the same rows: anova.lm reads the effects of the fit's
QR (which the stacked partition factors give), drop1.lm the residual sum of squares of each column subset
(the QR of those columns of the stacked factor, whose normal equations are the data's: no pass), anova.glm
and drop1.glm a glm.fit per refit (IRLS over the partitions, :mod:`torchlm.sources.dask_glm_passes`). The
tables are the in-memory functions' (:mod:`torchlm.inference.anova`, :mod:`torchlm.inference.single_term`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.errors import OptionError, silenced
from torchlm.frame.dask_frame import DaskPlan, map_partitions_computed, not_supported, partition_rows
from torchlm.inference.anova import DEFAULT, _df_change, _dispersion_for_test, _stat_anova, _term_columns, anova
from torchlm.inference.rterms import (
    drop_scope,
    fit_formula,
    formula_lines,
    label_terms,
    r_labels,
    r_terms,
    term_columns,
    updated,
)
from torchlm.inference.single_term import _check, _columns, _terms
from torchlm.inference.tables import AnovaTable, anova_table, is_glm
from torchlm.solvers.least_squares import linear_chunks, qr_solve
from torchlm.solvers.tall_qr import weighted_r_factor
from torchlm.sources.dask_glm_passes import DaskIRLSFit, IRLSPasses, dask_irls
from torchlm.sources.dask_irls import FinalSpec, Point, rows_of, working_at
from torchlm.sources.dask_source import Estimate, partition_fit


class _View:
    """The fit as the in-memory anova reads it: every attribute the fit's, but for the ones given."""

    def __init__(self, fit: Any, **overrides: Any) -> None:
        self.__dict__.update(overrides)
        self._fit = fit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_fit"], name)


def fitted_squares(part: pd.DataFrame, number: int, plan: DaskPlan, est: Estimate) -> float:
    """One partition's sum of w f^2 over its fitted values f (offset included): anova.lm's perfect-fit check.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : Estimate

    Returns
    -------
    float
    """
    rows = partition_rows(part, number, plan)
    f = partition_fit(rows, est)[1]
    return float(np.sum(f * f if rows.weights is None else rows.weights * f * f))


def _model_squares(fit: Any) -> float:
    """sum w fitted^2: |R b|^2 from the stacked factor without an offset, one pass with one."""
    plan = fit._plan
    if plan.offset is None and not plan.offset_terms:
        p = len(fit.names)
        return float(np.sum((fit._total.R[:, :p] @ fit._estimate.beta) ** 2))
    return float(sum(map_partitions_computed(fit._ddf, fitted_squares, plan, fit._estimate)))


def dask_anova(fit: Any, *others: Any, test: Any = DEFAULT) -> AnovaTable:
    """R's anova() of a Dask fit: one fit's sequential table from refits, several fits' comparison as in memory.

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult
    *others : further fits (nested models on the same rows), as tl.anova takes them.
    test : str or None
        As tl.anova's (a GLM's "Rao": one more pass per term, its score).

    Returns
    -------
    AnovaTable
        The in-memory tl.anova's table.

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     tab = tl.anova(tl.lm("mpg ~ wt + hp", ddf))
    >>> tab["Sum Sq"].round(3).tolist()
    [847.725, 83.274, 195.048]
    """
    if others:
        return anova(_View(fit, _own_anova=None), *others, test=test)
    if not is_glm(fit):
        # anova.lm's sum of w f^2 decides its perfect-fit warning: given as one "row" of an unweighted design
        design = _View(fit.design, weights=None)
        return anova(_View(fit, _own_anova=None, design=design, _fitted=np.array([math.sqrt(_model_squares(fit))])),
                     test=test)
    test = None if test == DEFAULT else "Chisq" if test == "LRT" else test
    if not (test is None or isinstance(test, str)) or test not in (None, "Chisq", "F", "Rao", "Cp"):
        raise OptionError(f"test must be 'Chisq', 'LRT', 'F', 'Rao', 'Cp' or None for a GLM, not {test!r}")
    return _glm_sequential(fit, test)


def _glm_sequential(fit: Any, test: str | None) -> AnovaTable:
    """R's anova.glm of one fit: glm.fit refits of each prefix of the terms (the last is the fit itself)."""
    terms, cols = _term_columns(fit)
    resdf, resdev, score = [fit.df_null], [fit.null_deviance], []
    # R's anova.glm: the fit before each term (from the intercept-only one) gives the Rao score of the next term
    previous = None
    if test == "Rao" and terms:
        if not fit.design.has_intercept:
            raise not_supported("test='Rao' in the anova of a Dask fit without an intercept")
        previous = glm_refit_columns(fit, [j for j, t in enumerate(fit.design.assign) if t == "1"])
    for i, c in enumerate(cols):
        if previous is not None:
            score.append(rao_score_columns(fit, previous, c, fit.design.has_intercept))
        if i == len(cols) - 1:
            break
        previous = sub = glm_refit_columns(fit, c)
        resdev.append(sub.deviance)
        resdf.append(fit.nobs - sub.qr.rank)
    if terms:
        resdf.append(fit.df_residual)
        resdev.append(fit.deviance)
    resdf_a, resdev_a = np.array(resdf, dtype=float), np.array(resdev)
    tab = pd.DataFrame({"Df": _df_change(resdf_a), "Deviance": np.r_[np.nan, np.maximum(0, -np.diff(resdev_a))],
                        "Resid. Df": resdf_a, "Resid. Dev": resdev_a}, index=["NULL"] + r_labels(fit, terms))
    if test == "Rao":
        tab["Rao"] = np.r_[np.nan, score]
    if test is not None:
        tab = _stat_anova(tab, test, *_dispersion_for_test(fit, test), fit.design.shape[0])
    return anova_table(tab, f"Analysis of Deviance Table\n\nModel: {fit.family.name}, link: {fit.family.link.name}"
                       f"\n\nResponse: {fit.design.response}\n\nTerms added sequentially (first to last)\n\n")


def glm_refit_columns(fit: Any, cols: list[int]) -> DaskIRLSFit:
    """R's glm.fit(x[, cols], y, weights, offset, family, control) over the partitions, from the family's mustart.

    Parameters
    ----------
    fit : DaskGeneralizedLinearModelResult
    cols : list of int
        Design columns (not none).

    Returns
    -------
    DaskIRLSFit
        The refit (its deviance, and its rank ``qr.rank``).

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> from torchlm.inference.dask_anova import glm_refit_columns
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt + hp", ddf, family="binomial")
    ...     sub = glm_refit_columns(fit, [0, 1])
    >>> round(sub.deviance, 4), sub.qr.rank
    (19.1761, 2)
    """
    if not cols:
        raise not_supported("a refit without any column (eta = offset)")
    columns = tuple(cols)
    # kept on the fit (which never changes): anova's and drop1's tests, and the two of them, share the refits
    cache = fit.__dict__.setdefault("_column_refits", {})
    if columns not in cache:
        passes = IRLSPasses(fit._source, fit._plan, fit.family, fit.tol, columns, [fit.names[j] for j in cols])
        with silenced():  # the refits' glm.fit warnings are not the fit's (as in memory)
            cache[columns] = dask_irls(passes, None, Point(None, columns), fit.control)
    return cache[columns]


def lm_refit_columns(fit: Any, cols: list[int]) -> tuple[float, int]:
    """R's deviance(lm.wfit(x[, cols], y, w, offset)) and rank, from the stacked partition factors (no pass).

    The factor R of [sqrt(w) X | sqrt(w) (y - offset)] has R'R = the data's cross-products, so the least
    squares on any of its columns (the response last) is the data's.

    Parameters
    ----------
    fit : DaskLinearModelResult
    cols : list of int

    Returns
    -------
    tuple of (float, int)

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.lm("mpg ~ wt + hp", ddf)
    >>> from torchlm.inference.dask_anova import lm_refit_columns
    >>> rss, rank = lm_refit_columns(fit, [0, 1])
    >>> round(rss, 3), rank
    (278.322, 2)
    """
    return _stacked_rss(fit._total.R, cols, len(fit.names), fit.tol)


def _stacked_rss(R: np.ndarray, cols: list[int], target: int, tol: float) -> tuple[float, int]:
    """The residual sum of squares and rank of column ``target`` of stacked factors on their columns ``cols``."""
    A, t = np.asfortranarray(R[:, cols]), R[:, target].copy()
    qr = qr_solve(linear_chunks(A, t), len(cols), tol, torch.device("cpu"), torch.float64, accurate=True)
    if qr.rss is not None:
        return float(qr.rss), qr.rank
    return float(np.sum((t - A @ np.nan_to_num(qr.coef)) ** 2)), qr.rank


def rao_reduction(part: Any, number: int, plan: DaskPlan, family: Any, points: tuple[Point, Point],
                  cols: tuple[int, ...]) -> tuple[np.ndarray, float, float, float]:
    """One partition's share of R's Rao score at a refit: the factor of [sqrt(W) X_cols | sqrt(W) r] and sums.

    r and W are R's glm.fit $residuals and $weights of the refit (working residuals at its estimate, working
    weights of its last iteration; 0 off R's good rows), as torchlm.inference.refits.working_parts.

    Parameters
    ----------
    part : pandas.DataFrame or GLMRows
    number : int
    plan : DaskPlan
    family : Family
    points : (Point, Point)
        The refit's estimate and the start of its last iteration.
    cols : tuple of int
        The design columns the residuals are regressed on.

    Returns
    -------
    tuple
        (R factor, sum W, sum W r, sum W r^2).
    """
    final, origin = points
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        # working_at reads only the two points of a FinalSpec
        W, wres, _ = working_at(g, FinalSpec(final, origin, 0.0, 0, 0.0, None), family)
        r = torch.where((W > 0) & torch.isfinite(wres), wres, torch.zeros_like(wres))
        sw = torch.sqrt(W)
        R = weighted_r_factor(g.X, r, sw, list(cols))
        return R, float(W.sum()), float((W * r).sum()), float((W * r * r).sum())


def rao_score_columns(fit: Any, sub: DaskIRLSFit, cols: list[int], intercept: bool) -> float:
    """R's Rao score of a refit ``sub``: null deviance - deviance of the weighted least squares of its working
    residuals on design columns ``cols`` (one pass), as torchlm.inference.refits.rao_score.

    Parameters
    ----------
    fit : DaskGeneralizedLinearModelResult
    sub : DaskIRLSFit
        The smaller model's refit.
    cols : list of int
    intercept : bool
        Whether the null deviance is about the weighted mean (else about 0).

    Returns
    -------
    float

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> from torchlm.inference.dask_anova import glm_refit_columns, rao_score_columns
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt + hp", ddf, family="binomial")
    ...     score = rao_score_columns(fit, glm_refit_columns(fit, [0, 1]), [0, 1, 2], True)
    >>> round(score, 4)
    9.5504
    """
    parts = map_partitions_computed(fit._source, rao_reduction, fit._plan, fit.family, (sub.final, sub.origin),
                                    tuple(cols))
    R = np.concatenate([q[0] for q in parts])
    sw, swr, swr2 = (float(sum(q[i] for q in parts)) for i in (1, 2, 3))
    null = swr2 - swr * swr / sw if intercept else swr2
    return null - _stacked_rss(R, list(range(len(cols))), len(cols), fit.tol)[0]


def refit_columns(fit: Any, cols: list[int]) -> tuple[float, int]:
    """Deviance (RSS for lm) and rank of the Dask fit's model on design columns ``cols``.

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult
    cols : list of int

    Returns
    -------
    tuple of (float, int)

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=2)
    >>> from torchlm.inference.dask_anova import refit_columns
    >>> with dask.config.set(scheduler="threads"):
    ...     rss, rank = refit_columns(tl.lm("mpg ~ wt + hp", ddf), [0, 2])
    >>> round(rss, 3), rank
    (447.674, 2)
    """
    if is_glm(fit):
        sub = glm_refit_columns(fit, cols)
        return sub.deviance, sub.qr.rank
    return lm_refit_columns(fit, cols)


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # Inf and NaN as R, as the in-memory drop1
def dask_drop1(fit: Any, scope: Any = None, *, test: str | None = None, k: float = 2) -> AnovaTable:
    """R's drop1() of a Dask fit: each term's refit without it (lm: from the stacked factor; glm: IRLS passes).

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult
    scope, test, k : as tl.drop1's.

    Returns
    -------
    AnovaTable
        The in-memory tl.drop1's table.

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     tab = tl.lm("mpg ~ wt + hp", ddf).drop1(test="F")
    >>> tab["RSS"].round(2).tolist()
    [195.05, 447.67, 278.32]
    """
    test = _check(fit, test, k, "drop1")
    terms = _drop_terms(fit, scope)
    p = fit.design.shape[1]
    dfs, dev, score = [fit.rank], [fit.deviance], [np.nan]
    for cols in term_columns(fit.design, terms):
        keep = [j for j in range(p) if j not in cols]
        if test == "Rao":
            sub = glm_refit_columns(fit, keep)
            d, rank = sub.deviance, sub.qr.rank
            # R: glm.fit(x, r, w) of the reduced fit's working residuals and weights on the whole design
            score.append(rao_score_columns(fit, sub, list(range(p)), True))
        else:
            d, rank = refit_columns(fit, keep)
        dfs.append(rank)
        dev.append(d)
    tab = _columns(fit, "drop", np.array(dfs, dtype=float), np.array(dev), np.array(score),
                   fit.design.shape[0], k, test, ["<none>"] + [t.label for t in terms])
    return anova_table(tab, "Single term deletions\n\nModel:\n" + "\n".join(formula_lines(fit)))


def _drop_terms(fit: Any, scope: Any) -> list:
    """drop1's terms: R's drop.scope by default, else the scope's terms (a formula or labels), checked."""
    rt = _terms(fit, "drop1")
    if scope is None:
        return drop_scope(rt.terms)
    if isinstance(scope, str):
        scope = [scope] if "~" not in scope else scope  # R's character scope: term labels
    given = r_terms(updated(fit_formula(fit), scope)).terms if isinstance(scope, str) else label_terms(scope)
    have = {t.variables for t in rt.terms}
    if bad := [t.label for t in given if t.variables not in have]:
        raise OptionError(f"scope is not a subset of term labels: {bad} are not terms of the model ({rt.labels})")
    return list(given)


class DaskTableMethods:
    """R's sequential anova (through tl.anova) and drop1 as methods of a Dask fit, from refits on its columns."""

    def _own_anova(self, *others: Any, test: Any = DEFAULT) -> AnovaTable:
        """R's anova(): one fit's sequential table from refits (tl.anova dispatches here)."""
        return dask_anova(self, *others, test=test)

    def drop1(self, scope: Any = None, *, test: str | None = None, k: float = 2) -> AnovaTable:
        """R's drop1(): each term's refit without it (lm: from the stacked partition factor, no pass; glm: IRLS).

        Parameters
        ----------
        scope, test, k : as :func:`torchlm.drop1`'s.

        Returns
        -------
        AnovaTable
        """
        return dask_drop1(self, scope, test=test, k=k)

    def _own_drop1(self, scope: Any = None, *, test: str | None = None, k: float = 2) -> AnovaTable:
        return dask_drop1(self, scope, test=test, k=k)
