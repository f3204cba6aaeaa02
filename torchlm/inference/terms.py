"""R's verbs on the terms of a fit: predict(type = "terms") (predict.lm / predict.glm) and dummy.coef().

A term is R's: the columns of one formula term together (``factor(cyl)`` is one term of two columns), named
by R's term label. predict(type = "terms") gives each term's part of the linear predictor, its columns
centred (with an intercept) at their means over the fitted rows, R's ``avx <- colMeans(model.matrix(fit))``
(unweighted in R 4.2.2, also for weighted fits); the sum of the centred parts plus the ``constant`` (the
linear predictor at those means) is the linear predictor without the offset.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from torchlm.errors import OptionError, warn
from torchlm.frame import newdata_matrix
from torchlm.inference.rterms import r_labels
from torchlm.present.verbs import dummy_coef_text

if TYPE_CHECKING:
    from torchlm.results.protocols import DesignFit

INTERCEPT_LABEL = "(Intercept)"


def term_groups(fit: DesignFit) -> list[tuple[str, str, list[int]]]:
    """The fit's terms (the intercept left out) in the design's order: R's label, formulaic's label, the columns.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.

    Returns
    -------
    list of (str, str, list of int)
        R's term label, formulaic's, and the positions of the term's columns in the design.
    """
    assign = fit.design.assign
    labels = list(dict.fromkeys(a for a in assign if a != "1"))
    return [(r, lab, [j for j, a in enumerate(assign) if a == lab]) for r, lab in zip(r_labels(fit, labels), labels)]


def _selected(groups: list[tuple[str, str, list[int]]], terms: Any) -> list[int]:
    """Positions in ``groups`` of the terms named by ``terms`` (R's labels or formulaic's; None: all)."""
    if terms is None:
        return list(range(len(groups)))
    wanted = [terms] if isinstance(terms, str) else list(terms)
    out = []
    for t in wanted:
        k = next((i for i, g in enumerate(groups) if isinstance(t, str) and t in g[:2]), None)
        if k is None:
            raise OptionError(f"terms= names {t!r}, which is not a term of the model; its terms are "
                              f"{[g[0] for g in groups]}")
        out.append(k)
    return out


@dataclass
class TermsPrediction:
    """R's predict(fit, type = "terms", se.fit = TRUE) (and intervals): one column per term.

    Attributes
    ----------
    fit : pandas.DataFrame
        Each term's centred part of the linear predictor; ``fit.attrs["constant"]`` is ``constant``.
    se_fit : pandas.DataFrame
        Their standard errors.
    constant : float
        The linear predictor at the column means of the fitted design (0 without an intercept).
    residual_scale : float
        sigma for an lm, the square root of the dispersion for a glm (R's residual.scale).
    df : float
        The degrees of freedom of the intervals' t quantiles (Inf for a glm).
    lwr, upr : pandas.DataFrame or None
        The interval's bounds, per term, when ``interval=`` was asked for.
    """

    fit: pd.DataFrame
    se_fit: pd.DataFrame
    constant: float
    residual_scale: float
    df: float
    lwr: pd.DataFrame | None = None
    upr: pd.DataFrame | None = None


def predict_terms(fit: DesignFit, newdata: Any = None, *, terms: Any = None, se_fit: bool = False,
                  interval: str | None = None, level: float = 0.95, cov: pd.DataFrame | None = None,
                  residual_scale: float = 1.0, df: float = np.inf,
                  pred_var: Any = None) -> pd.DataFrame | TermsPrediction:
    """R's predict.lm(type = "terms"): each term's part of the linear predictor, centred as R centres it.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.
    newdata : pandas.DataFrame, optional
        New rows (centred at the fitted design's column means too); None predicts the rows used.
    terms : str or list of str, optional
        The terms to return (R's labels, such as ``"factor(cyl)"``); default all.
    se_fit : bool
        Also return the standard errors of the terms.
    interval : None, "confidence" or "prediction"
        Also return each term's interval (R: lm only).
    level : float
        The intervals' coverage.
    cov : pandas.DataFrame
        The coefficients' covariance behind se_fit (estimable ones); needed with se_fit or interval.
    residual_scale, df : float
        R's residual.scale and the t quantile's degrees of freedom.
    pred_var : float or array, optional
        The prediction variance of a "prediction" interval (R's pred.var); default residual_scale^2.

    Returns
    -------
    pandas.DataFrame (attrs["constant"] set), or TermsPrediction with se_fit or an interval.
    """
    d = fit.design
    groups = term_groups(fit)
    chosen = _selected(groups, terms)
    beta = fit.coef().to_numpy()
    est = ~np.isnan(beta)
    X = d.X if newdata is None else newdata_matrix(d, newdata)
    if newdata is not None and fit.rank < len(beta):
        warn("prediction from a rank-deficient fit may be misleading", stacklevel=3)
    index = d.index if newdata is None else getattr(newdata, "index", pd.RangeIndex(len(X)))
    constant = 0.0
    if d.has_intercept:
        avx = d.X.mean(axis=0)  # R 4.2.2's colMeans(model.matrix(fit)): unweighted, every row used
        constant = float(np.sum(avx[est] * beta[est]))
        X = X - avx
    names = [groups[k][0] for k in chosen]
    fits, ses = [], []
    for k in chosen:
        cols = [j for j in groups[k][2] if est[j]]
        fits.append(X[:, cols] @ beta[cols] if cols else np.zeros(len(X)))
        if se_fit or interval is not None:
            ses.append(_term_se(fit, X, cols, cov))
    out = pd.DataFrame(np.column_stack(fits) if fits else np.zeros((len(X), 0)), index=index, columns=names)
    out.attrs["constant"] = constant
    if not se_fit and interval is None:
        return out
    se = pd.DataFrame(np.column_stack(ses) if ses else np.zeros((len(X), 0)), index=index, columns=names)
    res = TermsPrediction(out, se, constant, residual_scale, df)
    if interval is not None:
        q = fit._quantile(level, "t" if np.isfinite(df) else "z")  # type: ignore[attr-defined]
        var = residual_scale**2 if pred_var is None else np.asarray(pred_var, dtype=float)
        extra = 0.0 if interval == "confidence" else (var if np.ndim(var) == 0 else np.asarray(var)[:, None])
        width = q * np.sqrt(se.to_numpy() ** 2 + extra)
        res.lwr = pd.DataFrame(out.to_numpy() - width, index=index, columns=names)
        res.upr = pd.DataFrame(out.to_numpy() + width, index=index, columns=names)
    return res


def _term_se(fit: DesignFit, X: np.ndarray, cols: list[int], cov: pd.DataFrame | None) -> np.ndarray:
    """Standard errors of one term's centred part, sqrt(diag(X_t V_tt X_t')) over its estimable columns."""
    if not cols:
        return np.zeros(len(X))
    if cov is None:
        raise OptionError("standard errors of terms need the coefficients' covariance")
    names = [fit.names[j] for j in cols]
    V = cov.loc[names, names].to_numpy()
    B = X[:, cols]
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", B, V, B), 0.0))


# --- dummy.coef ---------------------------------------------------------------------------------------
@dataclass
class DummyCoef:
    """R's dummy.coef(fit): each term's coefficients at every level of its factors (the baseline's 0 included).

    Attributes
    ----------
    terms : dict of str to pandas.Series
        R's term label ("(Intercept)" first, with an intercept) to the values, indexed by the levels (joined
        by ":" for interactions; the term's label for a numeric term).
    by_factors : bool
        False for a model without factors, whose dummy.coef R gives as the list of coefficients.
    """

    terms: dict[str, pd.Series] = field(default_factory=dict)
    by_factors: bool = True

    def __getitem__(self, term: str) -> pd.Series:
        return self.terms[term]

    def __str__(self) -> str:
        return dummy_coef_text(self.terms, self.by_factors)

    __repr__ = __str__


def _coding(state: Any, reduced: bool) -> tuple[list, np.ndarray]:
    """A categorical factor's levels and coding matrix (levels x columns) as formulaic encoded it."""
    contrasts = state.get("contrasts")
    levels = list(state.get("categories", []))
    if contrasts is not None:
        m = contrasts.get_coding_matrix(reduced_rank=reduced)
        return list(m.index), np.asarray(m, dtype=float)
    eye = np.eye(len(levels))
    return levels, eye[:, 1:] if reduced else eye


def _level_name(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    return str(v.item() if isinstance(v, np.generic) else v)


def _term_rows(spec: Any, st: Any) -> tuple[list[str], np.ndarray] | None:
    """The term's columns at every combination of the levels of its factors (numeric factors at 1), R's
    dummy.coef rows: (names, (combinations, columns)); None when formulaic's encoding cannot be read."""
    factors = list(dict.fromkeys(str(f) for f in st.term.factors))
    cats = {e: spec.encoder_state[e][1] for e in factors
            if getattr(spec.encoder_state.get(e, (None,))[0], "value", None) == "categorical"}
    if not cats:
        return [], np.ones((1, len(st.columns)))
    levels = {e: _coding(s, False)[0] for e, s in cats.items()}
    combos = list(itertools.product(*(range(len(levels[e])) for e in reversed(list(cats)))))
    names = [":".join(_level_name(levels[e][i]) for e, i in zip(cats, c[::-1])) for c in combos] if cats else []
    rows = []
    for c in combos:
        at = dict(zip(reversed(list(cats)), c))
        values: list[float] = []
        for scoped in st.scoped_terms:
            parts = []
            for sf in scoped.factors:
                e = str(sf.factor)
                if e in cats:
                    lv, code = _coding(cats[e], sf.reduced)
                    parts.append(code[lv.index(levels[e][at[e]])])
                else:
                    parts.append(np.ones(1))
            vec = np.ones(1)
            for part in parts:  # formulaic's product: the first factor varies fastest
                vec = np.kron(part, vec)
            values += list(float(getattr(scoped, "scale", 1)) * vec)
        rows.append(values)
    M = np.array(rows, dtype=float)
    if M.shape[1] != len(st.columns):
        return None
    return names, M


def dummy_coef(fit: DesignFit, use_na: bool = False) -> DummyCoef:
    """R's dummy.coef(fit): the coefficients of each term at all levels of its factors.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.
    use_na : bool
        R's use.na: False sets non-estimable (aliased) coefficients to 0; True gives NaN wherever one enters.

    Returns
    -------
    DummyCoef
        Print it for R's print.dummy_coef ("Full coefficients are").

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> print(tl.dummy_coef(tl.lm("mpg ~ C(cyl)", mtcars)))
    Full coefficients are
    <BLANKLINE>
    (Intercept):      26.66364
    C(cyl):                  4          6          8
                      0.000000  -6.920779 -11.563636
    """
    if not hasattr(fit, "design") or not hasattr(fit, "_qr"):
        raise OptionError(f"dummy_coef() takes a fit of tl.lm or tl.glm, not {type(fit).__name__}")
    d = fit.design
    coef = fit.coef()
    spec = d.spec
    labels = dict((lab, r) for r, lab, _ in term_groups(fit))
    has_factors = any(getattr(k, "value", k) == "categorical" for k, _ in spec.encoder_state.values())
    if not has_factors:
        values = coef if use_na else coef.fillna(0.0)
        return DummyCoef({(INTERCEPT_LABEL if a == "1" else n): pd.Series([v], index=[""])
                          for (n, v), a in zip(values.items(), d.assign)}, by_factors=False)
    # formulaic's column names locate a term's columns (the fit's own names may be R's, names="R")
    position = {str(c): j for j, c in enumerate(getattr(d, "formulaic_names", None) or d.names)}
    out: dict[str, pd.Series] = {}
    if d.has_intercept:
        out[INTERCEPT_LABEL] = pd.Series([coef.iloc[d.assign.index("1")]], index=[INTERCEPT_LABEL])
    for st in spec.structure:
        label = str(st.term)
        if label == "1":
            continue
        r_label = labels.get(label, label)
        b = coef.iloc[[position[str(c)] for c in st.columns]].to_numpy()
        rows = _term_rows(spec, st)
        if rows is None:
            raise OptionError(f"dummy_coef cannot read the encoding of term {r_label!r} (a numeric variable of "
                              "several columns in an interaction with a factor)")
        names, M = rows
        if not names:  # a numeric term, its variables at 1: R names its one value by the label
            names, M = [r_label], np.ones((1, len(b)))
        na = np.isnan(b)
        vals = M[:, ~na] @ b[~na]
        if use_na and na.any():
            vals = np.where((M[:, na] != 0).any(axis=1), np.nan, vals)
        out[r_label] = pd.Series(vals, index=names)
    return DummyCoef(out)
