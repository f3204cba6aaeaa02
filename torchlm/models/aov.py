"""tl.aov(): R's aov, an lm with summary.aov's tables, and multistratum fits of Error() models; tl.TukeyHSD()."""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import scipy.linalg
import torch

from torchlm.errors import DataError, FitError, FormulaError, ModelInputError, OptionError, silenced, warn
from torchlm.models.lm import _call_string, lm
from torchlm.results.aov import INTERCEPT_TERM, AovListResult, AovResult, Stratum, TukeyHSDResult
from torchlm.results.base import Refit
from torchlm.results.linear import LinearModelResult
from torchlm.solvers.least_squares import linear_chunks, qr_solve

_ERROR_CALL = re.compile(r"(?<![\w.`])Error\s*\(")
_COLUMN_TOL = 1e-5  # R's aov: a column whose squares sum to less than this in a stratum is left out of its fit
_LM_TOL = 1e-7  # lm.fit's tol, R's rank detection in each stratum


def split_error(formula: str) -> tuple[str, str | None]:
    """The formula without its Error() term, and that term's inside (None when there is none).

    ``yield ~ N*P*K + Error(block)`` is ``("yield ~ N*P*K", "block")``; a right-hand side of the Error()
    term alone keeps the intercept (``y ~ Error(b)`` is ``y ~ 1``).

    Returns
    -------
    tuple of (str, str or None)
    """
    found = list(_ERROR_CALL.finditer(formula)) if isinstance(formula, str) and "~" in formula else []
    if not found:
        return formula, None
    if len(found) > 1:
        raise FormulaError(f"formula {formula!r}: there are {len(found)} Error terms: only 1 is allowed (R's aov)")
    m = found[0]
    depth, close = 1, m.end()
    while close < len(formula) and depth:
        depth += {"(": 1, ")": -1}.get(formula[close], 0)
        close += 1
    before, inside, after = formula[: m.start()].rstrip(), formula[m.end(): close - 1].strip(), formula[close:].strip()
    tilde = formula.index("~")
    # a term of its own: a summand at the top level of the right-hand side
    summand = m.start() > tilde and before[-1:] in "+~" and after[:1] in ("", "+", "-") and not depth and \
        before.count("(") == before.count(")")
    if not summand:
        raise FormulaError(f"formula {formula!r}: Error() must be a term of its own, added to the treatments: "
                           "'y ~ N * P + Error(block)'")
    if not inside:
        raise FormulaError(f"formula {formula!r}: Error() needs the error model's terms, e.g. Error(block)")
    if before.endswith("+"):
        rest = f"{before[:-1].rstrip()} {after}".rstrip()
    elif after.startswith("+"):
        rest = f"{before} {after[1:].strip()}"
    else:
        rest = f"{before} 1 {after}".rstrip()
    return rest, inside


def _lm_options(contrasts: Any) -> dict[str, Any]:
    if contrasts is None:
        return {}
    if "contrasts" not in inspect.signature(lm).parameters:
        raise OptionError("contrasts= needs tl.lm's contrasts= (not in this version): code the factors with "
                          "C(x, Sum) in the formula instead")
    return {"contrasts": contrasts}


def aov(formula: str, data: Any, *, weights: Any = None, subset: Any = None, na_action: str = "omit",
        contrasts: Any = None) -> AovResult | AovListResult:
    """Fit an analysis of variance model, as R's aov(): an lm whose summary is summary.aov's table.

    Parameters
    ----------
    formula : str
        R's formula, e.g. ``"breaks ~ wool * tension"``; an ``Error(block)`` term makes a multistratum
        fit (R's aovlist), e.g. ``"yield ~ N*P*K + Error(block)"``.
    data : pandas DataFrame (or dict of arrays); not modified.
    weights : prior weights (column name, expression or array); not with Error(), as R.
    subset : boolean mask or query string selecting rows.
    na_action : "omit" drops rows with a missing value in any variable used; "fail" raises.
    contrasts : per-factor contrasts, passed to tl.lm (where tl.lm takes them).

    Returns
    -------
    AovResult or AovListResult
        Without Error(): an AovResult, a LinearModelResult (every lm method) whose ``summary()`` is
        R's summary.aov, printed as R's print.aov, with ``TukeyHSD()``. With Error(): an
        AovListResult with a fit per error stratum.

    Examples
    --------
    >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
    >>> print(warp.summary())
                Df Sum Sq Mean Sq F value  Pr(>F)
    wool         1    451   450.7   3.339 0.07361 .
    tension      2   2034  1017.1   7.537 0.00138 **
    Residuals   50   6748   135.0
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    main, error = split_error(formula)
    call = _call_string(formula, weights, None, subset, fn="aov")
    options = _lm_options(contrasts)
    if error is None:
        fit = lm(main, data, weights=weights, subset=subset, na_action=na_action, **options)
        out = AovResult.from_lm(fit, call)
        out._refit = Refit(aov, formula, dict(data=data, weights=weights, subset=subset, na_action=na_action,
                                              contrasts=contrasts))
        return out
    if weights is not None:
        raise ModelInputError("weights are not supported in a multistratum aov() fit (R's aov refuses them too): "
                              "drop the Error() term or the weights")
    with silenced():
        treatments = lm(main, data, subset=subset, na_action=na_action, **options)
        rhs = error if treatments.design.has_intercept else f"{error} - 1"
        errors = lm(f"{main.split('~', 1)[0].rstrip()} ~ {rhs}", data, subset=subset, na_action=na_action)
    if not treatments.design.index.equals(errors.design.index):
        raise DataError(f"the Error({error}) model and the treatments use different rows (missing values in "
                        "one of them only): remove the rows with missing values first")
    if errors.rank < len(errors.names):
        warn("Error() model is singular", stacklevel=2)
    strata = _strata(treatments, errors)
    return AovListResult(strata, call, error, treatments.nobs, treatments.n_dropped_na)


def _strata(treatments: LinearModelResult, errors: LinearModelResult) -> dict[str, Stratum]:
    """R's multistratum aov: Q' of the Error() model's QR applied to the treatments' design and response (R's
    qr.qty), and a least-squares fit in each stratum's rows (its columns of Q)."""
    d, e = treatments.design, errors.design
    est = list(errors._qr.pivot[: errors.rank])
    (raw, tau), _ = scipy.linalg.qr(e.X[:, est], mode="raw")
    both = np.column_stack([d.X, d.y if d.offset is None else d.y - d.offset])
    rotated, _, info = scipy.linalg.lapack.dormqr("L", "T", raw, tau, both, lwork=64 * both.shape[1])
    if info != 0:
        raise FitError(f"the Error() model's QR could not be applied (LAPACK dormqr info {info})")
    labels = np.array([INTERCEPT_TERM if e.assign[j] == "1" else e.assign[j] for j in est] +
                      ["Within"] * (len(d.y) - errors.rank), dtype=object)
    # R's order: (Intercept), the Error() model's terms, Within; strata without rows are left out
    order = dict.fromkeys([INTERCEPT_TERM] + [INTERCEPT_TERM if t == "1" else t for t in e.assign] + ["Within"])
    return {name: _stratum_fit(name, rotated[labels == name], treatments) for name in order
            if (labels == name).any()}


def _stratum_fit(name: str, rows: np.ndarray, treatments: LinearModelResult) -> Stratum:
    """lm.fit of a stratum's rows of Q'y on its rows of Q'X, the columns that are (numerically) 0 there left out."""
    d = treatments.design
    X, y = rows[:, :-1], rows[:, -1]
    keep = np.flatnonzero(np.sum(X * X, axis=0) > _COLUMN_TOL)
    names = tuple(d.names[j] for j in keep)
    if not len(keep):
        return Stratum(name, (), (), np.zeros(0), 0, len(y), float(np.sum(y * y)), np.zeros((0, 0)), np.zeros(0))
    dev, dt = torch.device("cpu"), torch.float64
    qr = qr_solve(linear_chunks(X[:, keep], y), len(keep), _LM_TOL, dev, dt, accurate=True, names=list(names))
    est = list(qr.pivot[: qr.rank])
    labels = tuple(INTERCEPT_TERM if d.assign[keep[j]] == "1" else d.assign[keep[j]] for j in est)
    rss = qr.rss if qr.rss is not None else float(np.sum((y - X[:, keep] @ np.nan_to_num(qr.coef)) ** 2))
    return Stratum(name, names, labels, np.asarray(qr.effects[: qr.rank], dtype=float), qr.rank, len(y) - qr.rank,
                   rss, qr.R.cpu().double().numpy(), np.asarray(qr.coef))


def TukeyHSD(fit: Any, which: Any = None, ordered: bool = False, conf_level: float = 0.95) -> TukeyHSDResult:
    """R's TukeyHSD(fit): Tukey's honest significant differences of the levels of each factor term of an aov.

    Parameters
    ----------
    fit : AovResult
        A tl.aov fit (without Error()).
    which : str, list of str or None
        Factor terms to compare, by R's labels ("tension", "factor(cyl)", "wool:tension"); None: all.
    ordered : bool
        Order each term's levels by their means first (all differences positive), as R's ordered = TRUE.
    conf_level : float
        Family-wise confidence level, in (0, 1).

    Returns
    -------
    TukeyHSDResult
        {term: DataFrame of diff, lwr, upr, p adj, rows "6-4"}, printed as R's print.TukeyHSD.

    Examples
    --------
    >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
    >>> tl.TukeyHSD(warp, which="tension")["tension"].round(4)
            diff      lwr     upr   p adj
    M-L -10.0000 -19.3534 -0.6466  0.0336
    H-L -14.7222 -24.0756 -5.3688  0.0011
    H-M  -4.7222 -14.0756  4.6312  0.4474
    """
    if isinstance(fit, AovListResult):
        return fit.TukeyHSD()
    if not isinstance(fit, AovResult):
        raise ModelInputError(f"TukeyHSD takes an aov fit (tl.aov(formula, data)), not {type(fit).__name__}; "
                              "refit the model with tl.aov")
    return fit.TukeyHSD(which, ordered, conf_level)
