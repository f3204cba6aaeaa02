"""emmeans' reference grid (R's ref_grid) of a fit: every factor's levels crossed with each covariate at its mean.

The grid's predictors are the variables of the model's right-hand side in R's order (all.vars); a factor
(categorical, text or logical column) takes its levels in the rows used, a number inside factor() its
distinct values, a covariate its mean (or its values where it has at most two: emmeans' cov.keep = "2"),
unless ``at=`` names other values. The grid's model matrix comes from the fit's own ModelSpec, so contrasts,
poly() and spline states are those of the fit. The offset of every cell is the mean offset of the rows used
(R's ref_grid averages the model frame's offset as one more covariate), the weight of a cell the sum of
the prior weights of the rows in it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import ModelInputError, OptionError
from torchlm.frame.contrasts import expression_variables
from torchlm.frame.data import is_logical
from torchlm.frame.newdata import newdata_matrix

_EPS = float(np.finfo(float).eps)
_THRESH, _INVEPS = 30.0, 1 / _EPS


@dataclass(frozen=True)
class Link:
    """A back-transformation as emmeans makes it (R's make.link, and emmeans' own for sqrt and inverses)."""

    name: str
    linkinv: Any
    mu_eta: Any
    unknown: bool = False


def _logit_inv(eta: np.ndarray) -> np.ndarray:
    tmp = np.where(eta < -_THRESH, _EPS, np.where(eta > _THRESH, _INVEPS, np.exp(np.clip(eta, -_THRESH, _THRESH))))
    return tmp / (1 + tmp)


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    e = np.exp(np.clip(eta, -_THRESH, _THRESH))
    return np.where((eta > _THRESH) | (eta < -_THRESH), _EPS, e / ((1 + e) * (1 + e)))


def _clamped(name: str, dist: Any) -> Link:
    thresh = -float(dist.ppf(_EPS))
    return Link(name, lambda e: dist.cdf(np.clip(e, -thresh, thresh)), lambda e: np.maximum(dist.pdf(e), _EPS))


def _cloglog_mu_eta(eta: np.ndarray) -> np.ndarray:
    e = np.minimum(eta, 700.0)
    return np.maximum(np.exp(e) * np.exp(-np.exp(e)), _EPS)


def _links() -> dict[str, Link]:
    pos = lambda e: np.maximum(0.0, e)  # noqa: E731 - emmeans' monotone versions of sqrt and the inverses
    return {
        "identity": Link("identity", lambda e: e, lambda e: np.ones_like(e)),
        "log": Link("log", lambda e: np.maximum(np.exp(e), _EPS), lambda e: np.maximum(np.exp(e), _EPS)),
        "logit": Link("logit", _logit_inv, _logit_mu_eta),
        "probit": _clamped("probit", stats.norm),
        "cauchit": _clamped("cauchit", stats.cauchy),
        "cloglog": Link("cloglog", lambda e: np.maximum(np.minimum(-np.expm1(-np.exp(e)), 1 - _EPS), _EPS),
                        _cloglog_mu_eta),
        "sqrt": Link("sqrt", lambda e: pos(e) ** 2, lambda e: 2 * pos(e)),
        "inverse": Link("inverse", lambda e: 1 / pos(e), lambda e: -1 / pos(e) ** 2),
        "1/mu^2": Link("1/mu^2", lambda e: 1 / np.sqrt(pos(e)), lambda e: -1 / (2 * pos(e) ** 1.5)),
        "log10": Link("log10", lambda e: 10 ** e, lambda e: 10 ** e * math.log(10)),
        "log2": Link("log2", lambda e: 2 ** e, lambda e: 2 ** e * math.log(2)),
        "log1p": Link("log1p", np.expm1, np.exp),
        "exp": Link("exp", np.log, lambda e: 1 / e),
        "log.o.r.": Link("log odds ratio", lambda e: np.maximum(np.exp(e), _EPS),
                         lambda e: np.maximum(np.exp(e), _EPS)),
    }


LINKS = _links()


def make_link(tran: str) -> Link:
    """emmeans' .make.link: the link or response transformation by name (unknown names: identity, flagged).

    Returns
    -------
    Link
    """
    return LINKS.get(tran) or Link(tran, lambda e: e, lambda e: np.ones_like(e), unknown=True)


@dataclass
class ReferenceGrid:
    """R's ref_grid of a fit: the grid of predictor values, its linear functions and the fit's estimates.

    Attributes
    ----------
    grid : one row per cell, the predictors' values (the first varying fastest) and ``.wgt.``
        (with ``.offset.`` where the model has an offset).
    levels : each predictor's values in the grid, in R's order.
    linfct : (cells, p) model matrix of the grid.
    bhat : (p,) coefficients, NaN where aliased.
    V : (k, k) covariance of the estimable coefficients.
    nbasis : (p, d) orthonormal basis of the non-estimable functions, None for a full-rank fit.
    df : the degrees of freedom of every estimate (Inf for fixed-dispersion GLMs).
    tran, inv_lbl : the link (or response transformation) and the name of the back-transformed estimate.
    terms : each model term's label and variables, for emmeans' note on interactions.
    vcov_note : the covariance's description when ``vcov=`` chose one, else None.
    """

    grid: pd.DataFrame
    levels: dict[str, list]
    linfct: np.ndarray
    bhat: np.ndarray
    V: np.ndarray
    nbasis: np.ndarray | None
    df: float
    tran: str | None = None
    inv_lbl: str | None = None
    terms: list[tuple[str, list[str]]] = field(default_factory=list)
    vcov_note: str | None = None


def _split_formula(formula: str) -> tuple[str, str]:
    """(left side, right side) of an R formula at its top-level tilde."""
    depth = 0
    for i, ch in enumerate(formula):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "~" and depth == 0:
            return formula[:i], formula[i + 1:]
    return "", formula


def formula_variables(text: str, columns: Any) -> list[str]:
    """The data columns an R expression reads, in order of first appearance (R's all.vars, kept to the data).

    Returns
    -------
    list of str
    """
    cols = {str(c) for c in columns}
    code = re.sub(r"'[^']*'|\"[^\"]*\"", " ", text)
    found: list[str] = []
    for m in re.finditer(r"`([^`]+)`|([A-Za-z.][A-Za-z0-9._]*)(\s*\()?(\s*=(?!=))?", code):
        name = m.group(1) or m.group(2)
        if m.group(1) is None and (m.group(3) or m.group(4)):
            continue  # a function's name or an argument's
        if name in cols and name not in found:
            found.append(name)
    return found


def _coerced(fit: Any, data: pd.DataFrame) -> set[str]:
    """Numeric columns the model turns into factors (``cyl`` of ``factor(cyl)``): R's coerced$factors."""
    out: set[str] = set()
    for expr, (kind, _) in fit.design.spec.encoder_state.items():
        if getattr(kind, "value", kind) != "categorical" or expr in data.columns:
            continue
        out |= {v for v in expression_variables(expr, data.columns)
                if pd.api.types.is_numeric_dtype(data[v]) and not is_logical(data[v])}
    return out


def _factor_levels(col: pd.Series) -> list:
    """R's levels(factor(x)) of a factor, sort(unique(x)) of text and logical columns."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        return [c for c in col.cat.categories if c in present]
    return sorted(col.dropna().unique().tolist())


def _predictor_levels(name: str, col: pd.Series, coerced: set[str], at: dict) -> tuple[list, str]:
    """A predictor's values in the grid and its kind: "factor", "coerced" (a number in factor()), "covariate"
    (its mean, or the values of at=) or "kept" (a number with at most two values: emmeans' cov.keep)."""
    numeric = pd.api.types.is_numeric_dtype(col) and not is_logical(col)
    if not numeric:
        if name not in at:
            return _factor_levels(col), "factor"
        wanted, known = list(np.atleast_1d(at[name])), _factor_levels(col)
        if bad := [v for v in wanted if v not in known]:
            raise OptionError(f"at= gives {name!r} the value(s) {bad}, not among its levels {known}")
        return wanted, "factor"
    values = np.sort(pd.unique(col.dropna().to_numpy()))
    if name in coerced:
        return values.tolist(), "coerced"
    if name in at:
        return [float(v) for v in np.atleast_1d(at[name])], "covariate"
    if len(values) > 2:
        return [float(np.mean(col.to_numpy(dtype=float)))], "covariate"
    return values.tolist(), "kept"


def _expand(levels: dict[str, list]) -> list[tuple]:
    """R's expand.grid: every combination, the first variable varying fastest."""
    names = list(levels)
    return [tuple(reversed(c)) for c in itertools.product(*[levels[n] for n in reversed(names)])]


def _grid_frame(levels: dict[str, list], data: pd.DataFrame) -> pd.DataFrame:
    """The grid as a data frame whose columns encode as the data's do (categories kept)."""
    rows = _expand(levels)
    out = {}
    for k, name in enumerate(levels):
        values = [r[k] for r in rows]
        col = data[name] if name in data.columns else None
        if col is not None and isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = pd.Categorical(values, categories=col.cat.categories, ordered=col.cat.ordered)
        else:
            out[name] = pd.Series(values, dtype=col.dtype if col is not None and not isinstance(
                values[0], float) else None)
    return pd.DataFrame(out)


def _cell_weights(grid: pd.DataFrame, data: pd.DataFrame, names: list[str], w: np.ndarray) -> np.ndarray:
    """R's .wgt.: the prior weights summed over the rows of each cell of the factors (1 each without factors)."""
    if not names:
        return np.ones(len(grid))
    key = lambda frame: [" ".join(str(v) for v in row) for row in zip(*(frame[n].tolist() for n in names))]  # noqa
    total: dict[str, float] = {}
    for k, wk in zip(key(data), w):
        total[k] = total.get(k, 0.0) + float(wk)
    return np.array([total.get(k, 0.0) for k in key(grid)])


def _null_basis(fit: Any, bhat: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis of the null space of the design (estimability's nonest.basis), None at full rank."""
    if not np.isnan(bhat).any():
        return None
    X = np.asarray(fit.design.X, dtype=float)
    w = fit.design.weights
    if w is not None:
        X = X[np.asarray(w) > 0]
    rank = int(np.sum(~np.isnan(bhat)))
    return np.linalg.svd(X, full_matrices=True)[2][rank:].T


def _model_terms(fit: Any, columns: Any) -> list[tuple[str, list[str]]]:
    """Each term's label and the data columns it reads (the intercept left out)."""
    out = []
    for st in fit.design.spec.structure:
        label = str(st.term)
        if label == "1":
            continue
        names: list[str] = []
        for f in st.term.factors:
            names += [v for v in expression_variables(str(f.expr), columns) if v not in names]
        out.append((label, names))
    return out


def _transformation(fit: Any, lhs: str) -> tuple[str | None, str | None]:
    """(tran, inv.lbl) as emmeans reads them: a GLM's link, else a function of the response (log(y), sqrt(y))."""
    family = getattr(fit, "family", None)
    if family is not None:
        link = family.link.name
        if link == "identity":
            return None, None
        name = str(family.name)
        return link, "prob" if "binomial" in name else "rate" if "poisson" in name else "response"
    m = re.fullmatch(r"\s*(?:np\.)?([A-Za-z_][\w.]*)\s*\(\s*`?[\w.]+`?\s*\)\s*", lhs)
    if m is None or m.group(1) == "cbind":
        return None, None
    tran = "identity" if m.group(1) == "I" else m.group(1)
    return tran, "response"


def _degrees_of_freedom(fit: Any) -> float:
    """emmeans' df: the residual df of lm (and of gaussian and Gamma GLMs), Inf for the other GLMs."""
    family = getattr(fit, "family", None)
    if family is not None and str(family.name) not in ("gaussian", "Gamma"):
        return math.inf
    return float(fit.df_residual) if fit.df_residual else math.nan


def _used_rows(fit: Any) -> pd.DataFrame:
    design = getattr(fit, "design", None)
    if design is None or getattr(design, "spec", None) is None or design.data is None:
        raise ModelInputError(f"emmeans needs a model fitted from a formula and a data frame (tl.lm, tl.glm, "
                              f"tl.glm_nb, tl.aov), not a {type(fit).__name__}")
    return design.data if design.rows is None else design.data.iloc[design.rows]


def reference_grid(fit: Any, at: dict | None = None, vcov: Any = None) -> ReferenceGrid:
    """R's ref_grid(fit, at = at, vcov. = vcov): the reference grid of a fitted model.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fit made from a formula and a data frame.
    at : dict, optional
        Values of predictors to use instead of the default ones (a covariate's mean, a factor's levels).
    vcov : optional
        The covariance of the coefficients, any spelling the fit's ``vcov()`` takes ("HC3", a dict, a matrix).

    Returns
    -------
    ReferenceGrid
    """
    data = _used_rows(fit)
    at = dict(at or {})
    lhs, rhs = _split_formula(fit.formula or fit.design.formula)
    predictors = formula_variables(rhs, data.columns)
    if unknown := [k for k in at if k not in predictors]:
        raise OptionError(f"at= names {unknown}, not predictors of the model; its predictors are {predictors}")
    coerced = _coerced(fit, data)
    levels: dict[str, list] = {}
    weighted: list[str] = []
    for name in predictors:
        levels[name], kind = _predictor_levels(name, data[name], coerced, at)
        if kind in ("factor", "coerced", "kept"):
            weighted.append(name)
    offset = fit.design.offset
    if offset is not None and np.any(np.asarray(offset) != 0):
        # R's ref_grid: the model frame's offset is one more covariate of the grid (its mean, as a rule)
        data = data.assign(**{".offset.": np.asarray(offset, dtype=float)})
        levels[".offset."], kind = _predictor_levels(".offset.", data[".offset."], set(), {})
        if kind == "kept":
            weighted.append(".offset.")
    grid = _grid_frame(levels, data)
    X = newdata_matrix(fit.design, grid)
    keep = np.ones(len(grid), dtype=bool)
    for name in [n for n in at if n in coerced]:
        wanted = {round(float(v), 3) for v in np.atleast_1d(at[name])} & {round(float(v), 3) for v in levels[name]}
        levels[name] = [v for v in levels[name] if round(float(v), 3) in wanted]
        keep &= grid[name].round(3).isin(wanted).to_numpy()
    if not keep.any():
        raise OptionError("Reference grid is empty due to mismatched levels in 'at'")
    grid, X = grid[keep].reset_index(drop=True), X[keep]
    w = fit.design.frame.weights if fit.design.frame is not None else fit.design.weights
    grid[".wgt."] = _cell_weights(grid, data, weighted, np.ones(len(data)) if w is None else np.asarray(w))
    V, note = fit._covariance(vcov)
    bhat = fit.coef().to_numpy(dtype=float)
    tran, inv_lbl = _transformation(fit, lhs)
    return ReferenceGrid(grid=grid, levels=levels, linfct=X, bhat=bhat, V=V.to_numpy(dtype=float),
                         nbasis=_null_basis(fit, bhat), df=_degrees_of_freedom(fit), tran=tran, inv_lbl=inv_lbl,
                         terms=_model_terms(fit, data.columns), vcov_note=note)


def _structural_nests(grid: pd.DataFrame, levels: dict[str, list], nms: list[str]) -> dict[str, list[str]]:
    """Factors each of whose levels occurs (with positive weight) with one level of another factor only."""
    g = grid[grid[".wgt."] > 0]
    result: dict[str, list[str]] = {}
    for nm in nms:
        excluded = [k for k, v in result.items() if nm in v]
        others = [n for n in nms if n != nm and n not in excluded]
        inside = [n for n in others
                  if max(len(set(g.loc[g[nm] == x, n].tolist())) for x in levels[nm]) == 1]
        if inside:
            result[nm] = inside
    return result


def _term_sets(fit: Any, data: pd.DataFrame, coerced: set[str]) -> list[list[str]]:
    """Each term's model variables, a coerced factor (factor(cyl)) named by its variables as emmeans renames it."""
    out = []
    for st in fit.design.spec.structure:
        names = []
        for f in st.term.factors:
            expr = str(f.expr)
            used = expression_variables(expr, data.columns)
            names.append(":".join(used) if used and set(used) <= coerced and expr not in data.columns else expr)
        if names:
            out.append(names)
    return out


def _strip_supersets(sets: list[list[str]]) -> list[str]:
    """emmeans' .strip.supersets: drop the sets that contain another, and list what is left."""
    ordered = sorted(sets, key=len)
    kept = [s for i, s in enumerate(ordered) if not any(set(t) <= set(s) for t in ordered[:i])]
    return list(dict.fromkeys(v for s in kept for v in s))


def find_nests(fit: Any, rg: ReferenceGrid) -> dict[str, list[str]]:
    """emmeans' .find_nests: the factors nested in others, in the data (each level with one level of another)
    or in the model (a factor with no main effect, only within interactions).

    Returns
    -------
    dict of str to list of str
        {factor: the factors it is nested in}; empty where the factors are crossed.
    """
    levels = {k: v for k, v in rg.levels.items()}
    nms = [n for n in levels if len(levels[n]) > 1]
    if len(nms) < 2:
        return {}
    result = _structural_nests(rg.grid, levels, nms)
    data = _used_rows(fit)
    terms = _term_sets(fit, data, _coerced(fit, data))
    rows = [n for n in nms if any(n in t for t in terms)]
    labels = {":".join(t) for t in terms}

    def code(u: str, k: int) -> int:  # R's TermCode: 1 where the term without u is within an earlier term
        rest = set(terms[k]) - {u}
        return 1 if not rest or any(rest <= set(t) for t in terms[:k]) else 2

    for nm in [n for n in rows if n not in labels]:
        chosen = [k for k, t in enumerate(terms) if nm in t and code(nm, k) == 1]
        twos = not chosen
        chosen = chosen or [k for k, t in enumerate(terms) if nm in t]
        nst = _strip_supersets([[v for v in rows if v in terms[k] and code(v, k) == 2 and not (twos and v == nm)]
                                for k in chosen])
        if nst:
            result[nm] = list(dict.fromkeys(result.get(nm, []) + nst))
    for nm in list(result):
        inner = [v for n in result[nm] for v in result.get(n, [])]
        result[nm] = list(dict.fromkeys(inner + result[nm]))
    return {k: v for k, v in result.items() if k not in v}


def nesting_text(nests: dict[str, list[str]]) -> str:
    """emmeans' .fmt.nest: "B %in% A, C %in% (A*B)".

    Returns
    -------
    str
    """
    return ", ".join(f"{k} %in% {v[0] if len(v) == 1 else '(' + '*'.join(v) + ')'}" for k, v in nests.items())
