"""An independent numpy reference for R's lm()/glm() on the small formula grammar of test_properties_input.

It does what R 4.2 does, step by step, without torchlm, formulaic or patsy:

1. model frame (model.frame.default + na.omit): each variable of the formula (`a`, `C(a)`, `I(a^2)`,
   `log(a)`, `poly(a, 2)`) and the weights are evaluated on the whole data, then `subset` selects rows,
   then every row with a missing value (None, NaN, pd.NA) in any of them is dropped. Factors lose
   their unused levels (drop.unused.levels = TRUE), and a factor left with fewer than two levels is
   R's error "contrasts can be applied only to factors with 2 or more levels". A logical (bool)
   variable always has the two levels FALSE, TRUE (model.matrix's `contrasts<-`), unused or not.
2. terms (terms.formula): `a*b` is `a + b + a:b`, repeated terms count once, terms are sorted by
   order (main effects before interactions, stable otherwise), variables are numbered in order of
   first appearance. A factor f in term T is coded by contrasts when T without f is empty or contained
   in an earlier term, else by indicators of all its levels (TermCode in R's model.c); without an
   intercept, the first factor of the first term that has one gets indicators (model.c, "alldone").
   Only the column space matters below, so any contrasts stand for treatment contrasts (contr.poly
   of an ordered factor spans the same space), and poly(a, 2) stands for [a, a^2] when the formula
   has an intercept (span{1, a, a^2} is the same for any orthogonal basis of it).
3. fit (lm.wfit): rows with zero weight are left out of the fit and do not count in nobs; the rank
   is the numerical rank of the weighted design (columns scaled to unit norm, where R's dqrdc2
   tolerance 1e-7 applies); fitted values are the weighted projection of y on the column space, which
   neither the parameterisation nor the choice of the aliased column changes.
   glm: IRLS in numpy on an orthonormal basis of that column space.

R's errors that the reference reproduces (then torchlm must raise): no rows, a factor with fewer than
two levels, NA/NaN/Inf in the design or the response, negative weights; for glm also a response out
of the family's range (binomial outside [0, 1], poisson negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NUMERIC_KINDS = {"float", "int", "Int64", "Float64", "obj_num", "const"}
LOGICAL_KINDS = {"bool", "boolean"}
FACTOR_KINDS = {"obj_str", "cat", "string", "str"}


@dataclass(frozen=True)
class Expr:
    """One variable of the formula: op is "v" (the column itself), "C", "I2", "log" or "poly"."""

    op: str
    col: str

    def text(self) -> str:
        return {"v": "{c}", "C": "C({c})", "I2": "I({c}^2)", "log": "log({c})", "poly": "poly({c}, 2)"}[
            self.op].format(c=self.col)


@dataclass
class Spec:
    """A formula of the grammar: response ~ items, each item a tuple of Expr joined by ':' or '*'."""

    response: str
    items: list  # [(joiner, (Expr, ...))], joiner in {"", ":", "*"}
    intercept: bool = True
    no_intercept_spelling: str = "- 1"

    def formula(self) -> str:
        parts = [e[1][0].text() if len(e[1]) == 1 else e[0].join(x.text() for x in e[1]) for e in self.items]
        rhs = " + ".join(parts) if parts else "1"
        if not self.intercept:
            rhs = "0 + " + rhs if self.no_intercept_spelling == "0 +" else rhs + " - 1"
        return f"{self.response} ~ {rhs}"

    def exprs(self) -> list[Expr]:
        """Variables in order of first appearance (R numbers them so)."""
        out: list[Expr] = []
        for _, ex in self.items:
            for x in ex:
                if x not in out:
                    out.append(x)
        return out

    def terms(self) -> list[tuple[Expr, ...]]:
        """R's term list: expanded, deduplicated, sorted by order; variables in a term by their number."""
        order = {x: i for i, x in enumerate(self.exprs())}
        terms: list[tuple[Expr, ...]] = []
        for joiner, ex in self.items:
            new = [ex[:1], ex[1:], ex] if joiner == "*" else [ex]
            for t in new:
                t = tuple(sorted(set(t), key=order.__getitem__))
                if t not in terms:
                    terms.append(t)
        return sorted(terms, key=len)


@dataclass
class Reference:
    """What R does: error (R's message) or the fit's facts."""

    error: str | None = None
    rows: np.ndarray | None = None  # positions (in data) of the model frame's rows
    positive: np.ndarray | None = None  # model-frame rows with weight > 0
    X: np.ndarray | None = None  # design at the model frame's rows
    clean: bool = False  # the numerical rank is unambiguous
    rank: int = 0
    fitted: np.ndarray | None = None  # at the model frame's rows (NaN where not determined)
    levels: dict = field(default_factory=dict)
    converged: bool = True
    checkable: bool = True  # the reference's design spans R's (False: poly without intercept, poly on NA)


def missing(s: pd.Series) -> np.ndarray:
    return np.asarray(pd.isna(s), dtype=bool)


def as_float(s: pd.Series) -> np.ndarray:
    """A numeric or logical column's values as float64, NaN where missing."""
    miss = missing(s)
    vals = np.array([np.nan if m else float(v) for v, m in zip(s.tolist(), miss)], dtype=float)
    return vals


def factor_levels(s: pd.Series, kind: str, op: str, present: np.ndarray) -> list:
    """R's levels after drop.unused.levels, in R's order, of the values at `present`."""
    if kind in LOGICAL_KINDS and op == "v":
        return [False, True]
    vals = [v for v, keep in zip(s.tolist(), present) if keep]
    used = set(vals)
    if kind == "cat":
        return [c for c in s.cat.categories.tolist() if c in used]
    if kind in NUMERIC_KINDS or kind in LOGICAL_KINDS:
        return sorted({float(v) for v in used})
    return sorted(used)  # lower-case ASCII strings: R's sort in any locale


def is_factor(kind: str, op: str) -> bool:
    return op == "C" or (op == "v" and (kind in FACTOR_KINDS or kind in LOGICAL_KINDS))


def expr_values(data: pd.DataFrame, kinds: dict, x: Expr) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) over all rows of data for a numeric variable; values (n, k)."""
    s = data[x.col]
    v = as_float(s)
    with np.errstate(all="ignore"):
        if x.op == "I2":
            v = v**2
        elif x.op == "log":
            v = np.log(v)
        if x.op == "poly":
            return np.column_stack([v, v**2]), np.isnan(v)
    return v[:, None], np.isnan(v)


def codes(spec: Spec, kinds: dict) -> list[list[int]]:
    """TermCode for each variable of each term: 0 numeric, 1 contrasts, 2 indicators."""
    terms = spec.terms()
    out = []
    for j, t in enumerate(terms):
        row = []
        for x in t:
            if not is_factor(kinds[x.col], x.op):
                row.append(0)
                continue
            rest = set(t) - {x}
            row.append(1 if not rest or any(rest <= set(u) for u in terms[:j]) else 2)
        out.append(row)
    if not spec.intercept:
        for j, t in enumerate(terms):
            hit = [i for i, x in enumerate(t) if is_factor(kinds[x.col], x.op)]
            if hit:
                first = min(hit, key=lambda i: spec.exprs().index(t[i]))
                out[j][first] = 2
                break
    return out


def factor_block(s: pd.Series, kind: str, op: str, levels: list, rows: np.ndarray, code: int) -> np.ndarray:
    vals = s.to_numpy(dtype=object)[rows]
    if kind in NUMERIC_KINDS or (kind in LOGICAL_KINDS and op == "C"):
        vals = np.array([float(v) for v in vals], dtype=object)
    if kind in LOGICAL_KINDS and op == "v":
        vals = np.array([bool(v) for v in vals], dtype=object)
    unseen = [v for v in vals if v not in levels]
    if unseen:
        raise LookupError(f"factor {s.name} has new levels {sorted(set(map(str, unseen)))}")
    ind = np.column_stack([np.array([v == lev for v in vals], dtype=float) for lev in levels])
    return ind if code == 2 else ind[:, 1:]


def design(spec: Spec, data: pd.DataFrame, kinds: dict, rows: np.ndarray, levels: dict) -> np.ndarray:
    """R's model matrix (up to column space) at `rows` of `data`, with the model frame's levels."""
    blocks = [np.ones((len(rows), 1))] if spec.intercept else []
    for t, tc in zip(spec.terms(), codes(spec, kinds)):
        block = np.ones((len(rows), 1))
        for x, c in zip(t, tc):
            if c:
                b = factor_block(data[x.col], kinds[x.col], x.op, levels[x], rows, c)
            else:
                b = expr_values(data, kinds, x)[0][rows]
            block = (block[:, :, None] * b[:, None, :]).reshape(len(rows), -1)
        blocks.append(block)
    return np.column_stack(blocks) if blocks else np.zeros((len(rows), 0))


def model_frame(spec: Spec, data: pd.DataFrame, kinds: dict, weights, subset) -> Reference:
    """Steps 1 and 2: the rows, the levels and R's model-frame errors."""
    n = len(data)
    keep = np.ones(n, dtype=bool) if subset is None else np.asarray(subset, dtype=bool).copy()
    keep &= ~missing(data[spec.response])
    for x in spec.exprs():
        if is_factor(kinds[x.col], x.op):
            keep &= ~missing(data[x.col])
        else:
            keep &= ~expr_values(data, kinds, x)[1]
    if weights is not None:
        keep &= ~np.isnan(weights)
    rows = np.flatnonzero(keep)
    ref = Reference(rows=rows)
    for x in spec.exprs():
        if x.op == "poly":
            full = expr_values(data, kinds, Expr("v", x.col))[0][:, 0]
            if np.any(np.isnan(full)):
                # R evaluates poly() on every row of data, before subset and na.omit (torchlm too)
                ref.error = "missing values are not allowed in 'poly'"
                return ref
            if len(np.unique(full)) <= 2:
                ref.error = "'degree' must be less than number of unique points"
                return ref
            if not spec.intercept:
                ref.checkable = False
    if len(rows) == 0:
        ref.error = "0 (non-NA) cases"
        return ref
    for x in spec.exprs():
        if is_factor(kinds[x.col], x.op):
            ref.levels[x] = factor_levels(data[x.col], kinds[x.col], x.op, keep)
            if len(ref.levels[x]) < 2:
                ref.error = "contrasts can be applied only to factors with 2 or more levels"
                return ref
    return ref


def numerical_rank(Xs: np.ndarray) -> tuple[int, bool, np.ndarray]:
    """(rank, clean, orthonormal basis of the column space) of Xs, columns scaled to unit norm.

    clean: no scaled singular value between 1e-11 and 1e-5 of the largest, so that R's dqrdc2 at
    tol 1e-7 and the SVD cannot disagree on the rank.
    """
    if Xs.shape[1] == 0 or Xs.shape[0] == 0:
        return 0, True, np.zeros((Xs.shape[0], 0))
    big = np.max(np.abs(Xs), axis=0)
    nz = big > 0
    Z = Xs[:, nz] / big[nz]
    Z = Z / np.linalg.norm(Z, axis=0)
    U, s, _ = np.linalg.svd(Z, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return 0, True, np.zeros((Xs.shape[0], 0))
    rel = s / s[0]
    r = int(np.sum(rel > 1e-7))
    clean = not np.any((rel > 1e-11) & (rel < 1e-5))
    return r, clean, U[:, :r]


def lm_reference(spec: Spec, data: pd.DataFrame, kinds: dict, weights=None, subset=None) -> Reference:
    """R's lm(spec, data, weights, subset): an error, or the rank and the fitted values."""
    ref = model_frame(spec, data, kinds, weights, subset)
    if ref.error:
        return ref
    rows = ref.rows
    y = as_float(data[spec.response])[rows]
    X = design(spec, data, kinds, rows, ref.levels)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=float)[rows]
    if not np.all(np.isfinite(X)):
        ref.error = "NA/NaN/Inf in 'x'"
        return ref
    if not np.all(np.isfinite(y)):
        ref.error = "NA/NaN/Inf in 'y'"
        return ref
    if np.any(w < 0):
        ref.error = "missing or negative weights not allowed"
        return ref
    ref.X, ref.positive = X, w > 0
    pos = ref.positive
    sw = np.sqrt(w[pos])
    ref.rank, ref.clean, Q = numerical_rank(sw[:, None] * X[pos])
    ref.fitted = np.full(len(rows), np.nan)
    ref.fitted[pos] = (Q @ (Q.T @ (sw * y[pos]))) / sw
    if ref.rank == X.shape[1] and np.any(~pos):
        ref.fitted[~pos] = X[~pos] @ coefficients(sw[:, None] * X[pos], sw * y[pos])
    return ref


def coefficients(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """lstsq(X, y) with the columns scaled to unit size first (lstsq's rcond is not scale-invariant,
    R's QR is), for a full-rank X."""
    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    Z = X / scale
    norm = np.linalg.norm(Z, axis=0)
    norm[norm == 0] = 1.0
    return np.linalg.lstsq(Z / norm, y, rcond=None)[0] / norm / scale


FAMILIES = {
    # variance, link (eta from mu), inverse link, d mu / d eta, valid mu, initial mu from y
    "binomial": (lambda m: m * (1 - m), lambda m: np.log(m / (1 - m)), lambda e: 1 / (1 + np.exp(-e)),
                 lambda e: np.exp(-np.abs(e)) / (1 + np.exp(-np.abs(e))) ** 2, lambda y: (y + 0.5) / 2),
    "poisson": (lambda m: m, np.log, np.exp, np.exp, lambda y: y + 0.1),
}


def irls(Q: np.ndarray, y: np.ndarray, w: np.ndarray, family: str) -> tuple[np.ndarray, bool]:
    """Fisher scoring for a canonical-link GLM on the orthonormal basis Q: (mu, converged).

    Not converged (the caller then checks nothing) when the iterates run to the boundary of the
    mean's range, where the MLE is at infinity (separation, all-zero counts).
    """
    var, link, inv, dmu, start = FAMILIES[family]
    mu = start(y)
    eta = link(mu)
    dev_old = np.inf
    with np.errstate(all="ignore"):
        for _ in range(200):
            d = dmu(eta)
            ww = w * d**2 / var(mu)
            if not np.all(np.isfinite(ww) & (ww > 0)):
                return mu, False
            z = eta + (y - mu) / d
            sw = np.sqrt(ww)
            try:
                coef = np.linalg.lstsq(sw[:, None] * Q, sw * z, rcond=None)[0]
            except np.linalg.LinAlgError:
                return mu, False
            eta = Q @ coef
            mu = inv(eta)
            if family == "binomial":
                dev = -2 * np.sum(w * (y * np.log(mu) + (1 - y) * np.log1p(-mu)))
            else:
                dev = 2 * np.sum(w * (np.where(y > 0, y * np.log(y / mu), 0) - (y - mu)))
            if not np.isfinite(dev):
                return mu, False
            if abs(dev - dev_old) <= 1e-15 * (abs(dev) + 0.1):
                return mu, True
            dev_old = dev
    return mu, False


def glm_reference(spec: Spec, data: pd.DataFrame, kinds: dict, family: str, weights=None, subset=None) -> Reference:
    """R's glm(spec, family): gaussian is lm; binomial and poisson by IRLS. The response is taken as
    R takes it: a factor response of a binomial is `y != first level` (after unused levels are dropped)."""
    ref = lm_reference(spec, data, kinds, weights, subset) if family == "gaussian" else None
    if ref is not None:
        return ref
    resp = data[spec.response]
    y_is_factor = kinds[spec.response] in FACTOR_KINDS
    if y_is_factor:
        # the response as a numeric 0/1 so that the lm machinery can be reused for the frame and design
        data = data.copy()
        kinds = dict(kinds)
        present = ~missing(resp)
        levs = factor_levels(resp, kinds[spec.response], "v", present)
        data[spec.response] = [np.nan if m else float(v != levs[0]) for v, m in zip(resp.tolist(), ~present)]
        kinds[spec.response] = "float"
    ref = lm_reference(spec, data, kinds, weights, subset)
    if ref.error:
        return ref
    y = as_float(data[spec.response])[ref.rows]
    if family == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        ref.error = "y values must be 0 <= y <= 1"
        return ref
    if family == "poisson" and np.any(y < 0):
        ref.error = "negative values not allowed for the 'Poisson' family"
        return ref
    w = np.ones(len(ref.rows)) if weights is None else np.asarray(weights, dtype=float)[ref.rows]
    pos = ref.positive
    _, _, Q = numerical_rank(ref.X[pos])  # eta lies in the column space of X itself
    ref.fitted = np.full(len(ref.rows), np.nan)
    if Q.shape[1] == 0:
        ref.converged = False
        return ref
    mu, ref.converged = irls(Q, y[pos], w[pos], family)
    ref.fitted[pos] = mu
    # an MLE at (or near) infinity (separation, all-zero counts) is not compared
    ref.converged &= bool(np.all(mu > 1e-5) and (family != "binomial" or np.all(mu < 1 - 1e-5)))
    return ref
