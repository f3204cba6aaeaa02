"""Type II and III tests laid out like car::Anova (car 3.1): F tests for lm, LR, Wald and F tests for glm.

Type II tests each term after every term that does not contain it (marginality: a main effect is not
adjusted for its own interactions); type III tests each term's coefficients with all others in the model,
which is meaningful only with contrasts orthogonal in the rows (contr.sum, contr.helmert; car prints it
for any coding). Linear hypotheses follow car's linearHypothesis: a term's type II hypothesis is the part
of its and its relatives' coefficients orthogonal, in the covariance's metric, to the relatives' (car's
ConjComp), so the same code serves the model's and a sandwich covariance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import ModelInputError, OptionError, warn
from torchlm.inference.refits import refit
from torchlm.inference.rterms import r_labels
from torchlm.inference.tables import AnovaTable, is_glm

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    from torchlm.results.generalized import GeneralizedLinearModelResult
    from torchlm.results.linear import LinearModelResult

    Fit: TypeAlias = "LinearModelResult | GeneralizedLinearModelResult"

TYPES = {"II": "II", "2": "II", "III": "III", "3": "III"}
GLM_TESTS = ("LR", "Wald", "F")
ERROR_ESTIMATES = {"pearson": "Pearson residuals", "dispersion": "estimated dispersion", "deviance": "deviance"}
WHITE_TYPES = ("hc0", "hc1", "hc2", "hc3", "hc4")  # car's hccm types, sandwich's HC0..HC4
ALIASED = "there are aliased coefficients in the model"


@dataclass
class _Terms:
    """The model's terms as car sees them: labels (intercept left out), variables of each, columns of each."""

    names: list[str]
    factors: dict[str, frozenset[str]]
    columns: dict[str, list[int]]
    intercept: bool
    labels: dict[str, str]  # R's label of each term (``I(wt^2)`` for formulaic's ``I(wt ** 2)``)

    def rows(self, names: list[str]) -> list[str]:
        """The table's row names: R's labels of ``names`` ("(Intercept)" and "Residuals" as they are)."""
        return [self.labels.get(n, n) for n in names]

    def relatives(self, term: str) -> list[str]:
        """car's relatives(): the other terms whose variables include all of ``term``'s."""
        own = self.factors[term]
        return [t for t in self.names if t != term and own <= self.factors[t]]


def _terms(fit: Fit) -> _Terms:
    d = fit.design
    factors = {}
    for st in d.spec.structure:
        label = str(st.term)
        if label != "1":
            factors[label] = frozenset(str(f) for f in st.term.factors)
    names: list[str] = []
    columns: dict[str, list[int]] = {}
    for j, t in enumerate(d.assign):
        if t == "1":
            continue
        if t not in columns:
            names.append(t)
            columns[t] = []
        columns[t].append(j)
    return _Terms(names, factors, columns, bool(d.has_intercept), dict(zip(names, r_labels(fit, names))))


def Anova(fit: Fit, type: str | int = "II", test_statistic: str | None = None, *, vcov: Any = None,
          white_adjust: bool | str = False, error_estimate: str = "pearson") -> AnovaTable:
    """car's Anova(): type II or III tests of each term of a linear model or GLM.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fitted tl.lm or tl.glm.
    type : str or int
        "II" (or 2; the default) or "III" (or 3).
    test_statistic : str or None
        Linear models: "F" (the default; the only one, as car's). GLMs: "LR" (the default), "Wald" or "F".
    vcov : str, dict, matrix or None
        A coefficient covariance (anything ``fit.vcov()`` takes: "HC3", {"type": "HC1", "cluster": ...}, a
        (k, k) matrix) for Wald tests: car's ``vcov.``; lm tests are then Wald F tests, glm's need
        ``test_statistic="Wald"``.
    white_adjust : bool or str
        Linear models: car's ``white.adjust``, a heteroscedasticity-consistent covariance for the F tests:
        True or "hc3", or "hc0", "hc1", "hc2", "hc4".
    error_estimate : str
        GLM F tests: the dispersion from "pearson" residuals (the default), the model's estimated
        "dispersion" or the "deviance", as car's ``error.estimate``.

    Returns
    -------
    AnovaTable
        car's table: lm "Sum Sq", "Df", "F value", "Pr(>F)" with a "Residuals" row (with a covariance:
        "Df", "F", "Pr(>F)"); glm LR "LR Chisq", "Df", "Pr(>Chisq)"; Wald "Df", "Chisq", "Pr(>Chisq)"; F as
        lm's. Type III tables of lm and Wald tests have an "(Intercept)" row. Printed as car prints it.

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.Anova(tl.lm("mpg ~ wt + hp", mtcars)))
    Anova Table (Type II tests)
    <BLANKLINE>
    Response: mpg
               Sum Sq Df F value   Pr(>F)
    wt        252.627  1  37.561 1.12e-06 ***
    hp         83.274  1  12.381 0.001451 **
    Residuals 195.048 29
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    return type_anova(fit, type, test_statistic, vcov=vcov, white_adjust=white_adjust,
                      error_estimate=error_estimate)


def type_anova(fit: Fit, type: str | int = "II", test_statistic: str | None = None, *, vcov: Any = None,
               white_adjust: bool | str = False, error_estimate: str = "pearson") -> AnovaTable:
    """The type II or III table of car's Anova(); :func:`Anova` and ``tl.anova(fit, type=)`` call it.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fitted tl.lm or tl.glm.
    type : str or int
        "II" or 2, "III" or 3.
    test_statistic : str or None
        None (F for lm, LR for glm), "F", "LR" or "Wald", as in :func:`Anova`.
    vcov : str, dict, matrix or None
        Coefficient covariance of the Wald tests, as in :func:`Anova`.
    white_adjust : bool or str
        car's white.adjust for lm, as in :func:`Anova`.
    error_estimate : str
        "pearson", "dispersion" or "deviance", for GLM F tests.

    Returns
    -------
    AnovaTable
        As :func:`Anova`.
    """
    if not (hasattr(fit, "design") and hasattr(fit, "deviance") and hasattr(fit, "df_residual")):
        raise OptionError(f"Anova() tests the terms of a fitted model (a tl.lm or tl.glm result), "
                          f"not {fit.__class__.__name__}")
    kind = _type(type)
    if error_estimate not in ERROR_ESTIMATES:
        raise OptionError(f"error_estimate must be 'pearson', 'dispersion' or 'deviance', not {error_estimate!r}")
    terms = _terms(fit)
    if terms.intercept and len(fit.names) == 1 and kind == "II":
        warn("the model contains only an intercept: Type III test substituted", stacklevel=3)
        kind = "III"
    if is_glm(fit):
        return _glm_anova(fit, terms, kind, test_statistic, vcov, white_adjust, error_estimate)
    return _lm_anova(fit, terms, kind, test_statistic, vcov, white_adjust)


def _type(type: Any) -> str:
    key = None if isinstance(type, bool) else str(type) if isinstance(type, (str, int, np.integer)) else None
    if key not in TYPES:
        raise OptionError(f"type must be 'II' (or 2) or 'III' (or 3), not {type!r}; sequential (type I) "
                          "tests are tl.anova(fit)")
    return TYPES[key]


def _heading(kind: str, title: str, fit: Fit, *extra: str) -> str:
    return "\n".join([f"{title} (Type {kind} tests)", "", f"Response: {fit.design.response}", *extra])


def _frame(columns: dict[str, Sequence[float]], rows: list[str], heading: str) -> AnovaTable:
    data = {}
    for name, values in columns.items():
        arr = np.array(values, dtype=float)
        # R's Df are whole numbers: ints where none is missing, as tl.anova's
        data[name] = arr.astype(int) if name == "Df" and np.isfinite(arr).all() else arr
    out = AnovaTable(pd.DataFrame(data, index=rows))
    out.attrs["heading"] = heading
    return out


def _check_aliased(fit: Fit, why: str) -> None:
    aliased = [n for n, a in fit.aliased.items() if a]
    if aliased:
        raise ModelInputError(f"{ALIASED} ({', '.join(aliased)}): {why}")


# --- linear hypotheses ----------------------------------------------------------------------------

def _estimable_rows(fit: Fit, cols: list[int]) -> np.ndarray:
    """car's I.p[subs, not.aliased]: rows of the identity for ``cols``, over the estimable coefficients."""
    ok = ~fit.aliased.to_numpy()
    eye = np.eye(len(ok))[[j for j in cols if ok[j]]]
    return eye[:, ok]


def _conj_comp(h1: np.ndarray, h2: np.ndarray, V: np.ndarray) -> np.ndarray:
    """car's t(ConjComp(t(h1), t(h2), V)): the rows spanned by ``h2`` orthogonal to ``h1``'s in V's metric."""
    m = h2 @ V @ h1.T
    u, s, _ = np.linalg.svd(m, full_matrices=True)
    # R's qr() rank, with its default tolerance 1e-7
    rank = int(np.sum(s > 1e-7 * s[0])) if s.size and s[0] > 0 else 0
    return h2 if rank == 0 else (h2.T @ u[:, rank:]).T


def _hypothesis(fit: Fit, terms: _Terms, term: str, kind: str, V: np.ndarray) -> np.ndarray:
    """The hypothesis matrix of ``term``'s test (type II: car's hyp.term; type III: its coefficients)."""
    own = terms.columns[term] if term != "(Intercept)" else [fit.design.assign.index("1")]
    if kind == "III":
        h = _estimable_rows(fit, own)
    else:
        rel = [j for r in terms.relatives(term) for j in terms.columns[r]]
        h2 = _estimable_rows(fit, rel + own)
        h = h2 if not rel else _conj_comp(_estimable_rows(fit, rel), h2, V)
    return h[~np.all(h == 0, axis=1)]


def _wald(fit: Fit, L: np.ndarray, V: np.ndarray) -> float:
    """car's linearHypothesis SSH: (L b)' (L V L')^-1 (L b)."""
    b = fit.coef().to_numpy()[~fit.aliased.to_numpy()]
    value = L @ b
    return float(value @ np.linalg.solve(L @ V @ L.T, value))


def _tested(terms: _Terms, kind: str) -> list[str]:
    return (["(Intercept)"] if kind == "III" and terms.intercept else []) + terms.names


# --- linear models ----------------------------------------------------------------------------------

def _lm_anova(fit: LinearModelResult, terms: _Terms, kind: str, test: str | None, vcov: Any,
              white_adjust: bool | str) -> AnovaTable:
    """car's Anova.lm: checks, then the F tests (model-based or with a given covariance)."""
    if test not in (None, "F"):
        raise OptionError(f"test_statistic for a linear model is 'F' (car's Anova.lm has no other), not {test!r}; "
                          "for LR or Wald tests refit with tl.glm(..., family='gaussian')")
    if fit.df_residual == 0:
        raise ModelInputError("residual df = 0: the model fits every observation and leaves nothing to test against")
    if fit.deviance < math.sqrt(np.finfo(float).eps):
        raise ModelInputError("residual sum of squares is 0 (within rounding error): F tests are undefined")
    robust = _lm_covariance_type(vcov, white_adjust)
    if fit.aliased.any():
        if robust is not None:
            raise ModelInputError("non-standard coefficient covariance matrix may not be used for model with "
                                  "aliased coefficients")
        if kind == "III":
            _check_aliased(fit, "type III tests need every coefficient estimable (car's Anova); drop the "
                                "aliased terms or use type='II'")
        # car: "Note: model has aliased coefficients, sums of squares computed by model comparison"
        return _f_by_refits(fit, terms, "pearson", "Anova Table")
    if robust is not None:
        return _wald_table(fit, terms, kind, fit.vcov(robust).to_numpy(), "F")
    V = fit.vcov().to_numpy()
    rdf, rss = fit.df_residual, fit.deviance
    # car's Anova.II.lm takes the residual SS as sigma^2 * df, Anova.III.lm as the deviance
    resid_ss = math.sqrt(rss / rdf) ** 2 * rdf if kind == "II" else rss
    names = _tested(terms, kind)
    ss, df = [], []
    for term in names:
        L = _hypothesis(fit, terms, term, kind, V)
        ssh = _wald(fit, L, V)
        # car's linearHypothesis.lm: Sum of Sq as the difference of the two RSS it reports
        ss.append(abs((rss + ssh * rss / rdf) - rss))
        df.append(L.shape[0])
    f = [rdf * s / (k * resid_ss) for s, k in zip(ss, df)]
    p = [stats.f.sf(x, k, rdf) for x, k in zip(f, df)]
    return _frame({"Sum Sq": ss + [resid_ss], "Df": df + [rdf], "F value": f + [np.nan], "Pr(>F)": p + [np.nan]},
                  terms.rows(names + ["Residuals"]), _heading(kind, "Anova Table", fit))


def _lm_covariance_type(vcov: Any, white_adjust: bool | str) -> Any:
    """What to pass to fit.vcov() for car's white.adjust= or vcov.=, or None for the model's F tests."""
    if white_adjust is False:
        return vcov
    if vcov is not None:
        raise OptionError("give a covariance once: white_adjust= (car's hccm types) or vcov=, not both")
    kind = "hc3" if white_adjust is True else white_adjust.lower() if isinstance(white_adjust, str) else None
    if kind not in WHITE_TYPES:
        raise OptionError(f"white_adjust must be True, False or one of {', '.join(map(repr, WHITE_TYPES))} "
                          f"(car's hccm types), not {white_adjust!r}")
    return kind.upper()


def _wald_table(fit: Fit, terms: _Terms, kind: str, V: np.ndarray, test: str) -> AnovaTable:
    """car's Anova.II.default / Anova.III.default: a Wald test ("F" or "Chisq") of each term."""
    names = _tested(terms, kind)
    stat, df = [], []
    for term in names:
        L = _hypothesis(fit, terms, term, kind, V)
        if L.shape[0] == 0:
            stat.append(np.nan)
            df.append(0)
            continue
        ssh = _wald(fit, L, V)
        stat.append(abs(ssh / L.shape[0]) if test == "F" else abs(ssh))
        df.append(L.shape[0])
    keep = [i for i, k in enumerate(df) if k > 0]
    rows = [names[i] for i in keep]
    df = [df[i] for i in keep]
    stat = [stat[i] for i in keep]
    heading = _heading(kind, "Analysis of Deviance Table", fit)
    if test == "Chisq":
        p = [stats.chi2.sf(x, k) for x, k in zip(stat, df)]
        return _frame({"Df": df, "Chisq": stat, "Pr(>Chisq)": p}, terms.rows(rows), heading)
    rdf = fit.df_residual
    p = [stats.f.sf(x, k, rdf) for x, k in zip(stat, df)]
    return _frame({"Df": df + [rdf], "F": stat + [np.nan], "Pr(>F)": p + [np.nan]}, terms.rows(rows + ["Residuals"]),
                  heading)


# --- generalized linear models ----------------------------------------------------------------------

def _glm_anova(fit: GeneralizedLinearModelResult, terms: _Terms, kind: str, test: str | None, vcov: Any,
               white_adjust: bool | str, error_estimate: str) -> AnovaTable:
    """car's Anova.glm: LR (refits), Wald (linear hypotheses) or F (refits and a dispersion) tests."""
    test = "LR" if test is None else test
    if test not in GLM_TESTS:
        raise OptionError(f"test_statistic for a GLM must be 'LR' (the default), 'Wald' or 'F', not {test!r}")
    if white_adjust is not False:
        raise OptionError("white_adjust= is car's option for linear models; for a GLM give "
                          "test_statistic='Wald' and vcov='HC3' (or another type)")
    if vcov is not None and test != "Wald":
        warn(f'test.statistic="{test}"; vcov. argument ignored (covariances enter Wald tests only: '
             'test_statistic="Wald")', stacklevel=4)
    if test == "Wald":
        _check_aliased(fit, "Wald tests need every coefficient estimable (car's Anova fails); use "
                            "test_statistic='LR', or drop the aliased terms")
        return _wald_table(fit, terms, kind, fit.vcov(vcov).to_numpy(), "Chisq")
    if kind == "III":
        _check_aliased(fit, "type III tests need every coefficient estimable (car's Anova); drop the "
                            "aliased terms or use type='II'")
    if test == "F":
        if error_estimate == "dispersion" and fit.family.fixed_dispersion:
            warn("dispersion parameter estimated from the Pearson residuals, not taken as 1", stacklevel=4)
            error_estimate = "pearson"
        if kind == "II":
            return _f_by_refits(fit, terms, error_estimate, "Analysis of Deviance Table")
        return _glm_type3_f(fit, terms, error_estimate)
    if kind == "II":
        return _glm_type2_lr(fit, terms)
    return _glm_type3_lr(fit, terms)


def _type2_deviances(fit: Fit, terms: _Terms, term: str) -> tuple[float, int]:
    """car's type II comparison: the change in deviance (RSS) and df from dropping ``term`` from the model
    without its relatives."""
    rel = terms.relatives(term)
    p = len(fit.names)
    drop_rel = {j for r in rel for j in terms.columns[r]}
    drop_all = drop_rel | set(terms.columns[term])
    dev1, rank1 = refit(fit, [j for j in range(p) if j not in drop_all])
    dev2, rank2 = (fit.deviance, fit.rank) if not rel else refit(fit, [j for j in range(p) if j not in drop_rel])
    return dev1 - dev2, rank2 - rank1


def _glm_type2_lr(fit: GeneralizedLinearModelResult, terms: _Terms) -> AnovaTable:
    lr, df = [], []
    for term in terms.names:
        change, k = _type2_deviances(fit, terms, term)
        df.append(k)
        lr.append(np.nan if k == 0 else change / fit.dispersion)
    p = [np.nan if k == 0 else stats.chi2.sf(x, k) for x, k in zip(lr, df)]
    return _frame({"LR Chisq": lr, "Df": df, "Pr(>Chisq)": p}, terms.rows(terms.names),
                  _heading("II", "Analysis of Deviance Table", fit))


def _drop_term(fit: GeneralizedLinearModelResult, terms: _Terms, term: str) -> tuple[float, int]:
    """R's drop1(fit, scope = ~term): the deviance without ``term``'s columns and the rank lost."""
    cols = set(terms.columns[term])
    dev, rank = refit(fit, [j for j in range(len(fit.names)) if j not in cols])
    return dev, fit.rank - rank


def _glm_type3_lr(fit: GeneralizedLinearModelResult, terms: _Terms) -> AnovaTable:
    lr, df = [], []
    disp = fit.dispersion
    for term in terms.names:
        dev, k = _drop_term(fit, terms, term)
        df.append(k)
        lr.append(np.nan if k == 0 else dev / disp - fit.deviance / disp)
    p = [stats.chi2.sf(x, k) for x, k in zip(lr, df)]
    return _frame({"LR Chisq": lr, "Df": df, "Pr(>Chisq)": p}, terms.rows(terms.names),
                  _heading("III", "Analysis of Deviance Table", fit))


def _error_ss(fit: Fit, error_estimate: str) -> float:
    """car's error.SS: the Pearson X^2, df times the dispersion, or the deviance (for lm, all the RSS)."""
    if not is_glm(fit) or error_estimate == "deviance":
        return fit.deviance
    if error_estimate == "pearson":
        r = fit.residuals("pearson").to_numpy()
        return float(np.nansum(r * r))
    return fit.df_residual * fit.dispersion


def _f_by_refits(fit: Fit, terms: _Terms, error_estimate: str, title: str) -> AnovaTable:
    """car's Anova.II.F.glm (also its route for an lm with aliased coefficients): F tests of deviance changes."""
    rdf = fit.df_residual
    error_ss = _error_ss(fit, error_estimate)
    disp = error_ss / rdf
    ss, df = [], []
    for term in terms.names:
        change, k = _type2_deviances(fit, terms, term)
        df.append(k)
        ss.append(np.nan if k == 0 else change)
    f = [s / (disp * k) if k else np.nan for s, k in zip(ss, df)]
    p = [stats.f.sf(x, k, rdf) if k else np.nan for x, k in zip(f, df)]
    extra = [f"Error estimate based on {ERROR_ESTIMATES[error_estimate]} ", ""] if is_glm(fit) else []
    return _frame({"Sum Sq": ss + [error_ss], "Df": df + [rdf], "F value": f + [np.nan], "Pr(>F)": p + [np.nan]},
                  terms.rows(terms.names + ["Residuals"]), _heading("II", title, fit, *extra))


def _glm_type3_f(fit: GeneralizedLinearModelResult, terms: _Terms, error_estimate: str) -> AnovaTable:
    rdf = fit.df_residual
    error_ss = _error_ss(fit, error_estimate)
    disp = error_ss / rdf
    ss, df = [], []
    for term in terms.names:
        dev, k = _drop_term(fit, terms, term)
        df.append(k)
        ss.append(dev - fit.deviance)
    f = [(s / k) / disp if k else np.nan for s, k in zip(ss, df)]
    p = [stats.f.sf(x, k, rdf) for x, k in zip(f, df)]
    extra = [f"Error estimate based on {ERROR_ESTIMATES[error_estimate]} ", ""]
    # "F values": car's own column name for type III F tests
    return _frame({"Sum Sq": ss + [error_ss], "Df": df + [rdf], "F values": f + [np.nan], "Pr(>F)": p + [np.nan]},
                  terms.rows(terms.names + ["Residuals"]), _heading("III", "Analysis of Deviance Table", fit, *extra))
