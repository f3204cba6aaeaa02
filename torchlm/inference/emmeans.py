"""R's emmeans package: estimated marginal means of a fit, their contrasts and multiplicity-adjusted tests.

``tl.emmeans(fit, "cyl")`` builds the reference grid (torchlm.inference.emm_grid), averages its predictions
over the other factors (equal weights unless ``weights=``) and returns an :class:`EMMGrid`, which prints as
emmeans prints; ``.pairs()`` and ``.contrast(method)`` give the comparisons, ``.summary()``, ``.confint()``
and ``.test()`` the tables (an :class:`EmmSummary`, a DataFrame that prints as R's summary_emm).
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import Any

import pandas as pd

from torchlm.errors import ModelInputError, OptionError, warn
from torchlm.inference.emm_grid import ReferenceGrid, find_nests, nesting_text, reference_grid
from torchlm.inference.emm_objects import (
    _UNSET,
    Basis,
    EmmList,
    EmmSummary,
    GridCore,
    Misc,
    as_list,
    prediction_type,
)
from torchlm.inference.emm_summary import contrast_grid, marginal_means, regrid_parts, summarize

__all__ = ["EMMGrid", "EmmList", "EmmSummary", "emmeans"]


class EMMGrid(GridCore):
    """emmeans' emmGrid: estimated marginal means (or contrasts of them) over a grid of factor levels.

    Print it (R's print of an emmGrid) or call :meth:`summary`; :meth:`pairs` and :meth:`contrast` compare
    the estimates. ``grid`` holds the levels of each row, ``linfct`` the linear function of the coefficients
    each row estimates.
    """

    @property
    def grid(self) -> pd.DataFrame:
        """The grid: one row per estimate, its levels (and emmeans' ``.wgt.``, ``.offset.`` columns)."""
        return self._grid.copy()

    @property
    def linfct(self) -> pd.DataFrame:
        """The linear functions of the coefficients the rows estimate (R's @linfct)."""
        return pd.DataFrame(self._linfct, columns=self._basis.names)

    def summary(self, infer: Any = None, level: float | None = None, adjust: str | None = None, by: Any = _UNSET,
                type: str | None = None, null: float = 0.0) -> EmmSummary:
        """R's summary(emmGrid): estimates with SEs and df, intervals and/or tests as ``infer`` asks.

        Parameters
        ----------
        infer : bool or (bool, bool), optional
            (intervals, tests); default the grid's own (emmeans: intervals, contrasts: tests).
        level : float, optional
            Confidence level (default the grid's, 0.95).
        adjust : str, optional
            Multiplicity adjustment: "tukey", "dunnettx", "sidak", "scheffe", "bonferroni", "holm",
            "hochberg", "hommel", "BH", "BY", "fdr" or "none" (default the grid's).
        by : str, list of str or None
            Variables whose levels make separate tables (and families); default the grid's.
        type : str, optional
            "link" (the linear predictor) or "response" (back-transformed through the link or the
            response's transformation, SEs by the delta method); default the grid's.
        null : float
            The tests' null value, on the linear-predictor scale.

        Returns
        -------
        EmmSummary

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.summary(infer=True))
         cyl emmean    SE df lower.CL upper.CL t.ratio p.value
           4   23.7 1.043 28     21.5     25.8  22.705  <.0001
           6   19.4 0.969 28     17.4     21.4  20.036  <.0001
           8   17.6 0.903 28     15.8     19.5  19.509  <.0001
        <BLANKLINE>
        Confidence level used: 0.95
        """
        return summarize(self, infer=infer, level=level, adjust=adjust, by=by, type=prediction_type(type), null=null)

    def confint(self, level: float | None = None, adjust: str | None = None, by: Any = _UNSET,
                type: str | None = None) -> EmmSummary:
        """R's confint(emmGrid): the estimates with confidence intervals.

        Returns
        -------
        EmmSummary

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.confint(level=0.9))
         cyl emmean    SE df lower.CL upper.CL
           4   23.7 1.043 28     21.9     25.5
           6   19.4 0.969 28     17.8     21.1
           8   17.6 0.903 28     16.1     19.1
        <BLANKLINE>
        Confidence level used: 0.9
        """
        return self.summary(infer=(True, False), level=level, adjust=adjust, by=by, type=type)

    def test(self, null: float = 0.0, adjust: str | None = None, by: Any = _UNSET,
             type: str | None = None) -> EmmSummary:
        """R's test(emmGrid): the estimates with t (or z) tests of ``null``.

        Returns
        -------
        EmmSummary

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.test(null=20))
         cyl emmean    SE df null t.ratio p.value
           4   23.7 1.043 28   20   3.526  0.0015
           6   19.4 0.969 28   20  -0.596  0.5558
           8   17.6 0.903 28   20  -2.652  0.0130
        <BLANKLINE>
        """
        return self.summary(infer=(False, True), adjust=adjust, by=by, type=type, null=null)

    def contrast(self, method: Any = "eff", by: Any = _UNSET, adjust: str | None = None, *,
                 name: str = "contrast", ratios: bool = True, type: str | None = None, **options: Any) -> EMMGrid:
        """R's contrast(emmGrid, method): contrasts of the estimates within each by group.

        Parameters
        ----------
        method : str or dict
            An emmeans method: "pairwise", "revpairwise", "tukey", "trt.vs.ctrl" (also "trt.vs.ctrl1",
            "trt.vs.ctrlk", "dunnett"), "eff", "del.eff", "consec", "mean_chg", "poly", "identity"; or a
            dict of name -> coefficients (one per level).
        by : str, list of str or None
            Variables within whose levels to contrast; default the grid's.
        adjust : str, optional
            The adjustment of the tests (default the method's: Tukey for pairwise comparisons,
            dunnettx for trt.vs.ctrl, fdr for eff).
        name : str
            The name of the contrast column.
        ratios : bool
            For a log or logit scale, show back-transformed contrasts as ratios (odds ratios).
        type : str, optional
            The prediction type of the result's summaries.
        **options
            The method's options: ``ref`` (trt.vs.ctrl: R's 1-based position or a level), ``reverse``,
            ``max_degree`` (poly).

        Returns
        -------
        EMMGrid

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.contrast("trt.vs.ctrl"))
         contrast    estimate   SE df t.ratio p.value
         cyl6 - cyl4    -4.26 1.39 28  -3.070  0.0091
         cyl8 - cyl4    -6.07 1.65 28  -3.674  0.0020
        <BLANKLINE>
        P value adjustment: dunnettx method for 2 tests
        """
        grid, levels, linfct, misc = contrast_grid(
            self, method, by=self.misc.by_vars if by is _UNSET else as_list(by), adjust=adjust, name=name,
            ratios=ratios, type=prediction_type(type), options=options)
        return EMMGrid(grid, levels, linfct, self._basis, misc)

    def pairs(self, reverse: bool = False, by: Any = _UNSET, adjust: str | None = None,
              type: str | None = None) -> EMMGrid:
        """R's pairs(emmGrid): every pairwise difference (``reverse``: later level minus earlier), Tukey-adjusted.

        Returns
        -------
        EMMGrid

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.pairs())
         contrast    estimate   SE df t.ratio p.value
         cyl4 - cyl6     4.26 1.39 28   3.070  0.0127
         cyl4 - cyl8     6.07 1.65 28   3.674  0.0028
         cyl6 - cyl8     1.82 1.36 28   1.337  0.3871
        <BLANKLINE>
        P value adjustment: tukey method for comparing a family of 3 estimates
        """
        return self.contrast("revpairwise" if reverse else "pairwise", by=by, adjust=adjust, type=type)

    def regrid(self, transform: str = "response") -> EMMGrid:
        """R's regrid(emmGrid): the estimates as a new grid, back-transformed to the response scale.

        Contrasts of the result are differences of back-transformed means (of probabilities, of rates),
        their SEs by the delta method.

        Parameters
        ----------
        transform : str
            "response" (back-transform through the link or the response's transformation) or "none"
            (keep the linear-predictor scale, as a grid of its own).

        Returns
        -------
        EMMGrid

        Examples
        --------
        >>> em = tl.emmeans(tl.glm("am ~ C(cyl)", tl.datasets.load("mtcars"), family="binomial"), "cyl")
        >>> print(em.regrid())
         cyl  prob     SE  df asymp.LCL asymp.UCL
           4 0.727 0.1343 Inf    0.4641     0.990
           6 0.429 0.1870 Inf    0.0620     0.795
           8 0.143 0.0935 Inf   -0.0404     0.326
        <BLANKLINE>
        Confidence level used: 0.95
        """
        if transform not in ("response", "mu", "unlink", "none"):
            raise OptionError(f'regrid transform must be "response" or "none", not {transform!r}')
        grid, linfct, basis, misc = regrid_parts(self, transform != "none")
        return EMMGrid(grid, self.levels, linfct, basis, misc)

    def update(self, **settings: Any) -> EMMGrid:
        """R's update(emmGrid, ...): the same grid with other settings (``level``, ``adjust``, ``by_vars``, ...).

        Returns
        -------
        EMMGrid

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> print(em.update(level=0.99))
         cyl emmean    SE df lower.CL upper.CL
           4   23.7 1.043 28     20.8     26.6
           6   19.4 0.969 28     16.7     22.1
           8   17.6 0.903 28     15.1     20.1
        <BLANKLINE>
        Confidence level used: 0.99
        """
        known = {f.name for f in fields(Misc)}
        if unknown := sorted(set(settings) - known):
            raise OptionError(f"update() sets {sorted(known)}, not {unknown}")
        if "by_vars" in settings:
            settings["by_vars"] = as_list(settings["by_vars"])
        return EMMGrid(self._grid, self.levels, self._linfct, self._basis, replace(self.misc, **settings))

    def __repr__(self) -> str:
        return repr(self.summary())

    __str__ = __repr__


def parse_specs(specs: Any, by: Any) -> tuple[list[str], list[str] | None, str | None]:
    """(specs, by, contr) of emmeans' specs: a name, a list of names, or a formula such as
    ``"pairwise ~ tension | wool"``.

    Returns
    -------
    (list of str, list of str or None, str or None)
    """
    by = as_list(by)
    if isinstance(specs, str) and "~" in specs:
        lhs, rhs = specs.split("~", 1)
        main, _, cond = rhs.partition("|")
        names = [v for v in re.split(r"[\s+*:]+", main.strip()) if v]
        extra = [v for v in re.split(r"[\s+*:]+", cond.strip()) if v]
        if extra:
            by = [v for v in dict.fromkeys(extra + (by or [])) if v not in names]
        return names, by or None, lhs.strip() or None
    named = as_list(specs)
    if not named:
        raise OptionError('specs must name the factors to average over, e.g. "cyl", ["wool", "tension"] or '
                          '"pairwise ~ tension | wool"')
    return named, by, None


def _some_term_contains(facs: list[str], terms: list[tuple[str, list[str]]]) -> bool:
    """emmeans' .some.term.contains: a model term holds every factor of ``facs`` and more variables."""
    def grep(pattern: str, text: str) -> bool:  # R's grep: a regular expression, else the text itself
        try:
            return re.search(pattern, text) is not None
        except re.error:
            return pattern in text

    return any(all(grep(f, label) for f in facs) and len(variables) > len(facs) for label, variables in terms)


def _basis(rg: ReferenceGrid, fit: Any) -> Basis:
    return Basis(bhat=rg.bhat, V=rg.V, nbasis=rg.nbasis, df=rg.df, names=list(fit.names))


def emmeans(fit: Any, specs: Any, by: Any = None, *, type: str | None = None, level: float = 0.95,
            adjust: str | None = None, at: dict | None = None, weights: Any = "equal", vcov: Any = None,
            offset: float | None = None, contr: Any = None, nesting: Any = "auto") -> EMMGrid | EmmList:
    """R's emmeans(fit, specs, by): estimated marginal means over a reference grid.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fit of tl.lm, tl.glm, tl.glm_nb or tl.aov.
    specs : str, list of str or formula str
        The factors whose means are wanted: "cyl", ["wool", "tension"], or emmeans' formula
        "~ tension | wool" ("pairwise ~ tension | wool" adds the pairwise comparisons; "~ 1" the grand mean).
    by : str or list of str, optional
        Factors whose levels make separate tables.
    type : str, optional
        "link" (default) or "response": back-transform through the GLM's link (or lm's transformed
        response, log(y)), with delta-method SEs and intervals back-transformed from the link scale.
    level : float
        Confidence level of the intervals.
    adjust : str, optional
        Adjustment of the intervals (default none) or, with a contrast in ``specs``, of its tests.
    at : dict, optional
        Values for predictors: a covariate's values instead of its mean, a subset of a factor's levels.
    weights : str or sequence of float
        How the other factors are averaged over: "equal" (default), "proportional", "outer", "cells",
        "flat", or one weight per combination of the averaged factors.
    vcov : optional
        The covariance of the coefficients, any spelling ``fit.vcov()`` takes ("HC3", a dict, a matrix).
    offset : float, optional
        The offset of every mean (R's ``offset =``), instead of the average offset of the rows used.
    contr : str or dict, optional
        A contrast method, as the left side of a formula spec: the result is then an EmmList.
    nesting : "auto" or None
        None treats every factor as crossed with the others (R's ``nesting = NULL``). Under "auto" a
        nesting structure emmeans would find (a factor nested in another in the data, or appearing only
        within interactions, as in ``y ~ A/B``) is an error: emmeans' nested computations are not
        available in torchlm.

    Returns
    -------
    EMMGrid or EmmList
        The means; with a contrast, an EmmList of "emmeans" and "contrasts".

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", mtcars), "cyl"))
     cyl emmean    SE df lower.CL upper.CL
       4   23.7 1.043 28     21.5     25.8
       6   19.4 0.969 28     17.4     21.4
       8   17.6 0.903 28     15.8     19.5
    <BLANKLINE>
    Confidence level used: 0.95
    """
    names, by, formula_contr = parse_specs(specs, by)
    contr = formula_contr if contr is None else contr
    rg = reference_grid(fit, at=at, vcov=vcov)
    if nesting is not None and (nests := find_nests(fit, rg)):
        raise ModelInputError(f"emmeans finds a nesting structure in the fitted model: {nesting_text(nests)}; "
                              "nested factors are not available in torchlm's emmeans; pass nesting=None to treat "
                              "the factors as crossed (R's emmeans(..., nesting = NULL))")
    grid, levels, linfct, misc = marginal_means(rg, names, by, weights, offset)
    result = EMMGrid(grid, levels, linfct, _basis(rg, fit), misc)
    if _some_term_contains(list(dict.fromkeys(names + (by or []))), rg.terms):
        warn("NOTE: Results may be misleading due to involvement in interactions", stacklevel=2)
    result.misc = replace(result.misc, level=level, adjust=adjust if adjust and contr is None else "none",
                          predict_type=prediction_type(type))
    if contr is None:
        return result
    contrasts = result.contrast(contr, by=by, adjust=adjust, type=type).update(level=level)
    return EmmList(emmeans=result, contrasts=contrasts)
