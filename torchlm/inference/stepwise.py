"""R's step(): stepwise model selection by AIC (or BIC with k = log(n)), with R's printed trace and path.

Each step tries drop1() of the terms marginality lets go (not below the lower scope) and add1() of the
upper scope's terms whose margins are in, moves to the best model while the AIC falls, and refits it
with the same fitter and arguments (the fit's Refit). The final fit carries R's ``anova`` path table.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, FitError, FormulaError, OptionError
from torchlm.inference.rterms import Term, add_scope, drop_scope, fit_formula, r_terms, updated
from torchlm.inference.single_term import add1, add_table, drop1, drop_table, extract_aic
from torchlm.inference.tables import AnovaTable, anova_table
from torchlm.present import rformat as rf
from torchlm.present.deparse import Node, deparse, deparse_lines, parse

if TYPE_CHECKING:
    from torchlm.results.protocols import DiagnosticFit

    Fit = DiagnosticFit

DIRECTIONS = ("both", "backward", "forward")


class StepPath(AnovaTable):
    """step()'s path (R's ``fit$anova``): Step, Df, Deviance, Resid. Df, Resid. Dev, AIC, printed as R's
    print.data.frame prints it (R's heading, "Stepwise Model Path ...", is in ``attrs["heading"]``)."""

    def __repr__(self) -> str:
        return data_frame_text(self)

    __str__ = __repr__


def data_frame_text(df: pd.DataFrame) -> str:
    """R's print.data.frame text: each numeric column format()ted with 7 digits, strings as they are,
    right-justified, row names on the left.

    Parameters
    ----------
    df : pandas.DataFrame

    Returns
    -------
    str
    """
    cols = []
    for name in df.columns:
        v = df[name]
        cells = ([str(x) for x in v] if v.dtype == object else rf.format_num(v.to_numpy(dtype=float), 7))
        width = max([len(str(name))] + [len(c) for c in cells])
        cols.append([str(name).rjust(width)] + [c.rjust(width) for c in cells])
    rows = [str(r) for r in df.index]
    rw = max([0] + [len(r) for r in rows])
    lines = [" " * rw + "".join(" " + c[0] for c in cols)]
    for i, r in enumerate(rows):
        lines.append(r.ljust(rw) + "".join(" " + c[i + 1] for c in cols))
    return "\n".join(lines)


def _scope_terms(node: Node, scope: Any) -> tuple[list[Term], list[Term] | None]:
    """(lower terms, upper terms or None) of step's scope, each relative to the starting model's formula."""
    def terms(f):
        return list(r_terms(updated(node, f)).terms)

    if isinstance(scope, dict):
        if bad := sorted(set(scope) - {"lower", "upper"}):
            raise OptionError(f"scope dict keys are 'lower' and 'upper', not {bad}")
        lower, upper = scope.get("lower"), scope.get("upper")
        return (terms(lower) if lower is not None else []), (terms(upper) if upper is not None else None)
    if isinstance(scope, str):
        return [], terms(scope)
    raise OptionError("scope is a formula string (the upper scope, e.g. '~ . + x' or '~ (a + b + c)^2') or a dict "
                      f"{{'lower': ..., 'upper': ...}}, not {type(scope).__name__}")


def _aic(fit: Fit, k: float) -> tuple[float, float]:
    edf, aic = extract_aic(fit, k)
    if math.isnan(aic):
        raise FitError("AIC is not defined for this model, so 'step' cannot proceed (a quasi family has no "
                       "likelihood: use tl.drop1(fit, test='F'))")
    if aic == -math.inf:
        raise FitError("AIC is -infinity for this model, so 'step' cannot proceed (a perfect fit)")
    return edf, aic


def _aic_text(aic: float) -> str:
    return rf.format_scalar(round(aic, 2), 7)  # R: format(round(bAIC, 2))


def _check_step(fit: Any, direction: Any, steps: Any, k: Any, keep: Any) -> None:
    if getattr(fit, "_refit", None) is None or not hasattr(fit, "design"):
        raise OptionError(f"step() refits a model made by tl.lm or tl.glm, not {type(fit).__name__}")
    if direction is not None and direction not in DIRECTIONS:
        raise OptionError(f"direction must be 'both', 'backward' or 'forward', not {direction!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise OptionError(f"steps must be a whole number >= 0, not {steps!r}")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) or k < 0:
        raise OptionError(f"k must be a finite number >= 0 (2 for AIC, log(n) for BIC), not {k!r}")
    if keep is not None and not callable(keep):
        raise OptionError(f"keep must be a function of (fit, aic), not {type(keep).__name__}")


def step(fit: Fit, scope: str | dict | None = None, *, direction: str | None = None, trace: int | bool = 1,
         keep: Any = None, steps: int = 1000, k: float = 2) -> Fit:
    """R's step(): choose a model by AIC in a stepwise algorithm, printing R's trace.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedFit
        The starting model, made by tl.lm or tl.glm.
    scope : str or dict, optional
        The upper scope as a formula (``"~ . + hp + qsec"``, ``"~ (wt + hp + qsec)^2"``; ``.`` is the
        starting model's right-hand side), or ``{"lower": ..., "upper": ...}``. None: only the starting
        model's own terms (backward, unless ``direction`` is given).
    direction : {"both", "backward", "forward"}, optional
        As R's; None is R's default: "both", which is backward alone when there is no scope.
    trace : int or bool
        Print R's trace ("Start:  AIC=...", each step's table sorted by AIC); 0 or False for none.
    keep : callable, optional
        ``keep(fit, aic)`` called on each model taken; its results are the final fit's ``keep``.
    steps : int
        The most steps to take.
    k : float
        Weight of the degrees of freedom (2: AIC; ``math.log(fit.nobs)``: BIC).

    Returns
    -------
    LinearModelResult or GeneralizedFit
        The final model, refitted with the starting model's fitter and arguments; its ``anova``
        attribute is R's path table (:class:`StepPath`), its ``keep`` the keep() results (if given).

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> best = tl.step(tl.lm("mpg ~ wt + hp + qsec + drat", mtcars), trace=0)
    >>> best.formula
    'mpg ~ wt + qsec + drat'
    """
    _check_step(fit, direction, steps, k, keep)
    start: Any = fit
    try:
        node = fit_formula(fit)
        lower, upper = ([], list(r_terms(node).terms)) if scope is None else _scope_terms(node, scope)
    except FormulaError as e:
        raise FormulaError(f"step() reads the model's formula and scope in R's syntax: {e}") from None
    backward = direction in (None, "both", "backward")
    forward = direction in ("both", "forward") or (direction is None and scope is not None)
    start_lines = deparse_lines(node)
    n = fit.nobs
    edf, best = _aic(fit, k)
    if trace:
        print(f"Start:  AIC={_aic_text(best)}\n" + "\n".join(start_lines) + "\n")
    models = [("", fit.deviance, n - edf, best)]
    kept = [keep(fit, best)] if keep is not None else []
    while steps > 0:
        steps -= 1
        change = _choose(fit, node, lower, upper, backward, forward, k, trace)
        if change is None:
            break
        new = parse(r_terms(updated(node, f"~ . {change}")).formula())
        refit = start._refit
        fit = refit.fitter(deparse(new), **refit.arguments)
        if fit.nobs != n:
            raise DataError("number of rows in use has changed: remove missing values? (step() compares models "
                            f"on the same rows: {n} before {change!r}, {fit.nobs} after; drop the rows where the "
                            "scope's variables are missing first)")
        node, previous = new, best
        edf, best = _aic(fit, k)
        if trace:
            print(f"\nStep:  AIC={_aic_text(best)}\n" + "\n".join(deparse_lines(node)) + "\n")
        if best >= previous + 1e-7:
            break
        models.append((change, fit.deviance, n - edf, best))
        if keep is not None:
            kept.append(keep(fit, best))
    final: Any = copy.copy(fit) if fit is start else fit  # R returns a changed copy: the caller's fit is kept
    final.anova = _path(models, start_lines, deparse_lines(node))
    if keep is not None:
        final.keep = kept
    return final


def _choose(fit: Fit, node: Node, lower: list[Term], upper: list[Term] | None, backward: bool, forward: bool,
            k: float, trace: Any) -> str | None:
    """One step of R's step(): the change ("- term" / "+ term") with the least AIC, or None to stop."""
    terms = list(r_terms(node).terms)
    drops = drop_scope(terms, lower) if terms else []
    adds = add_scope(terms, upper) if upper else []
    aod = None
    if backward and drops:
        aod = drop_table(fit, drops, None, k)
        aod.index = [aod.index[0]] + [f"- {t}" for t in aod.index[1:]]
        zero = [r for r, d in zip(aod.index, aod["Df"]) if d == 0]
        if zero:
            return zero[-1]  # R: a term that costs no degrees of freedom goes first
    if forward and adds:
        aodf = add_table(fit, adds, None, k)
        aodf.index = [aodf.index[0]] + [f"+ {t}" for t in aodf.index[1:]]
        aod = aodf if aod is None else pd.concat([aod, aodf.iloc[1:]])
    if aod is None or aod.shape[1] == 0:
        return None
    aod = aod[(aod["Df"] != 0) | aod["Df"].isna()]
    order = np.argsort(aod["AIC"].to_numpy(dtype=float), kind="stable")
    if trace:
        print(anova_table(aod.iloc[order], ""))
    return None if order[0] == 0 else str(aod.index[order[0]])


def _path(models: list[tuple], start: list[str], final: list[str]) -> StepPath:
    """R's step.results: the path table with its heading."""
    rd = np.array([m[1] for m in models], dtype=float)
    rdf = np.array([m[2] for m in models], dtype=float)
    out = StepPath({"Step": [m[0] for m in models], "Df": np.r_[np.nan, np.diff(rdf)],
                    "Deviance": np.r_[np.nan, np.abs(np.diff(rd))], "Resid. Df": rdf, "Resid. Dev": rd,
                    "AIC": [m[3] for m in models]}, index=[str(i + 1) for i in range(len(models))])
    out["Step"] = out["Step"].astype(object)
    out.attrs["heading"] = "\n".join(["Stepwise Model Path \nAnalysis of Deviance Table", "\nInitial Model:", *start,
                                      "\nFinal Model:", *final, "\n"])
    return out


class StepwiseMethods:
    """add1(), drop1() and step() as methods of a fitted lm or glm (mixed into their result classes)."""

    def add1(self, scope: str | list[str], *, test: str | None = None, k: float = 2) -> AnovaTable:
        """R's add1(fit, scope): see :func:`torchlm.add1`.

        Returns
        -------
        AnovaTable

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.add1("~ wt + hp + qsec")["AIC"].round(4)
        <none>    73.2174
        hp        63.8403
        qsec      63.9084
        Name: AIC, dtype: float64
        """
        return add1(self, scope, test=test, k=k)  # type: ignore[arg-type]

    def drop1(self, scope: str | list[str] | None = None, *, test: str | None = None, k: float = 2) -> AnovaTable:
        """R's drop1(fit): see :func:`torchlm.drop1`.

        Returns
        -------
        AnovaTable

        Examples
        --------
        >>> mtcars = tl.datasets.load("mtcars")
        >>> fit = tl.glm("am ~ wt + hp", mtcars, family="binomial")
        >>> fit.drop1(test="Chisq").round(4)
                 Df  Deviance      AIC      LRT  Pr(>Chi)
        <none>  NaN   10.0591  16.0591      NaN       NaN
        wt      1.0   41.2276  45.2276  31.1685    0.0000
        hp      1.0   19.1761  23.1761   9.1170    0.0025
        """
        return drop1(self, scope, test=test, k=k)  # type: ignore[arg-type]

    def step(self, scope: str | dict | None = None, *, direction: str | None = None, trace: int | bool = 1,
             keep: Any = None, steps: int = 1000, k: float = 2) -> Any:
        """R's step(fit): see :func:`torchlm.step`.

        Returns
        -------
        LinearModelResult or GeneralizedFit
            The final model.

        Examples
        --------
        >>> mtcars = tl.datasets.load("mtcars")
        >>> tl.lm("mpg ~ wt + hp + qsec + drat", mtcars).step(trace=0).formula
        'mpg ~ wt + qsec + drat'
        """
        return step(self, scope, direction=direction, trace=trace, keep=keep, steps=steps, k=k)  # type: ignore[arg-type]
