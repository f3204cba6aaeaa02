"""The studentized range distribution as R computes it (ptukey, qtukey), for TukeyHSD's intervals and p-values.

R's ptukey integrates Hartley's form of the range distribution by Gauss-Legendre quadrature over
fixed intervals (Copenhaver & Holland 1988, J. Statist. Comput. Simul. 30, 1-15) and its qtukey is a
secant search stopped at a step below 1e-4 (from an Odeh & Evans 1974 start). Both are coarse (R's
ptukey is off the exact distribution by up to ~1e-3 relative at 2 df, its qtukey by more), so
scipy.stats.studentized_range, which is exact to many more digits, does not reproduce R's numbers:
the same quadrature and the same secant steps are what give R's TukeyHSD digits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import gammaln, ndtr

from torchlm.errors import FitError, ModelInputError, OptionError, warn
from torchlm.frame.rnames import level_text

if TYPE_CHECKING:
    from torchlm.results.linear import LinearModelResult


def _legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (ascending) and weights, Newton-polished in extended precision, then rounded."""
    x0, _ = np.polynomial.legendre.leggauss(order)
    x = x0.astype(np.longdouble)
    for _ in range(3):
        p0, p1 = np.ones_like(x), x.copy()
        for k in range(2, order + 1):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        dp = order * (x * p1 - p0) / (x * x - 1)
        x = x - p1 / dp
    w = 2 / ((1 - x * x) * dp * dp)
    return x.astype(np.float64), w.astype(np.float64)


_X12, _W12 = _legendre(12)
_X16, _W16 = _legendre(16)
# ptukey's order over its 16 nodes: the negative half ascending, then the positive half descending
_Q_ORDER = np.r_[np.arange(8), np.arange(15, 7, -1)]
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _range_probability(w: np.ndarray, nranges: float, nmeans: float) -> np.ndarray:
    """P(range of nmeans standard normals < w), to the power nranges: the inner integral (R's wprob)."""
    half = w * 0.5
    first = 2 * ndtr(half) - 1.0
    first = np.where(first >= math.exp(-50 / nmeans), first ** nmeans, 0.0)
    steps = np.where(w > 3.0, 2.0, 3.0)
    # the interval ends and sums are long doubles, as R accumulates them
    lower = half.astype(np.longdouble)
    width = (8.0 - half) / steps
    upper = lower + width
    total = np.zeros(w.shape, dtype=np.longdouble)
    c1 = nmeans - 1.0
    cut = math.exp(-30 / c1)
    for k in range(3):
        live = k < steps
        centre = (0.5 * (upper + lower)).astype(np.float64)
        radius = (0.5 * (upper - lower)).astype(np.float64)
        part = np.zeros(w.shape, dtype=np.longdouble)
        for x, a in zip(_X12, _W12):
            at = centre + radius * x
            sq = at * at
            inner = ndtr(at) - ndtr(at - w)
            use = live & (sq <= 60.0) & (inner >= cut)
            with np.errstate(invalid="ignore", over="ignore"):
                term = a * np.exp(-(0.5 * sq)) * np.where(use, inner, 0.0) ** c1
            part += np.where(use, term, 0.0)
        part *= 2.0 * radius * nmeans * _INV_SQRT_2PI
        total += np.where(live, part, 0.0)
        lower, upper = np.where(live, upper, lower), np.where(live, upper + width, upper)
    p = first + total.astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(p <= math.exp(-30 / nranges), 0.0, np.minimum(p ** nranges, 1.0))
    return np.where(half >= 8.0, 1.0, out)


def _outer_integral(q: np.ndarray, nranges: float, nmeans: float, df: float) -> np.ndarray:
    """P(studentized range < q) for finite df <= 25000: the range probability integrated over the chi scale."""
    f2 = df * 0.5
    ulen = 1.0 if df <= 100 else 0.5 if df <= 800 else 0.25 if df <= 5000 else 0.125
    lead = (f2 * math.log(df) - df * math.log(2)) - float(gammaln(f2)) + math.log(ulen)
    f21, ff4 = f2 - 1.0, df * 0.25
    # R's 50 intervals of 16 nodes, all at once; the weights (log scale) with libm's log and exp, as R's
    s = (2 * np.arange(1, 51)[:, None] - 1) * ulen + _X16[_Q_ORDER][None, :] * ulen
    t1 = np.array([[(lead + f21 * math.log(v)) - v * ff4 for v in row] for row in s])
    used = t1 >= -30.0
    weight = _W16[_Q_ORDER][np.nonzero(used)[1]][:, None]
    growth = np.array([math.exp(v) for v in t1[used]])[:, None]
    w = q[None, None, :] * np.sqrt(s * 0.5)[:, :, None]
    terms = np.zeros(w.shape)
    terms[used] = (_range_probability(w[used].ravel(), nranges, nmeans).reshape(-1, len(q)) * weight) * growth
    total = np.zeros(q.shape)
    live = np.ones(q.shape, dtype=bool)
    for i in range(50):
        part = np.zeros(q.shape)
        for j in range(16):  # R's order of the sum
            part += terms[i, j]
        # at least 1 / ulen intervals; then stop where an interval adds less than 1e-14
        live &= ~(((i + 1) * ulen >= 1.0) & (part <= 1e-14))
        total += np.where(live, part, 0.0)
        if not live.any():
            break
    return np.minimum(total, 1.0)


def ptukey(q: float | np.ndarray, nmeans: float, df: float, nranges: float = 1.0,
           lower_tail: bool = True) -> np.ndarray:
    """R's ptukey(q, nmeans, df, nranges, lower.tail): the studentized range distribution function.

    Parameters
    ----------
    q : float or array
        Quantiles.
    nmeans : float
        Number of means (>= 2).
    df : float
        Degrees of freedom of the standard error (>= 2; above 25000 the normal range is used, as R).
    nranges : float
        Number of ranges whose maximum is taken (>= 1).
    lower_tail : bool
        P(range < q) if True, else P(range > q), computed as R computes it (1 - P(range < q)).

    Returns
    -------
    numpy.ndarray
        Probabilities, the shape of q; NaN where df < 2 or nmeans < 2 (R's NaN).
    """
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if df < 2 or nranges < 1 or nmeans < 2 or not np.isfinite([nmeans, nranges]).all() or np.isnan(df):
        return np.full(q.shape, np.nan)
    body = (q > 0) & np.isfinite(q)
    value = np.where(q > 0, 1.0, 0.0)  # 0 at q <= 0, 1 at q = Inf
    if body.any():
        qb = q[body]
        value[body] = (_range_probability(qb, nranges, nmeans) if df > 25000
                       else _outer_integral(qb, nranges, nmeans, df))
    value = np.where(np.isnan(q), np.nan, value)
    return value if lower_tail else 0.5 - value + 0.5


def _start(p: float, nmeans: float, df: float) -> float:
    """Odeh & Evans' (AS 70) approximate percentage point: the secant search's first iterate."""
    ps = 0.5 - 0.5 * p
    yi = math.sqrt(math.log(1.0 / (ps * ps)))
    num = (((yi * -0.453642210148e-04 - 0.204231210125) * yi - 0.342242088547) * yi - 1.0) * yi + 0.322232421088
    den = (((yi * 0.38560700634e-02 + 0.103537752850) * yi + 0.531103462366) * yi + 0.588581570495) * yi \
        + 0.993484626060e-01
    t = yi + num / den
    if df < 120.0:
        t += (t * t * t + t) / df / 4.0
    a = 0.8832 - 0.2368 * t
    if df < 120.0:
        a += -1.214 / df + 1.208 * t / df
    return t * (a * math.log(nmeans - 1.0) + 1.4142)


def qtukey(p: float, nmeans: float, df: float, nranges: float = 1.0) -> float:
    """R's qtukey(p, nmeans, df, nranges): the secant search R makes, stopped where a step is below 1e-4.

    Parameters
    ----------
    p : float
        Lower-tail probability in [0, 1].
    nmeans, df, nranges : float
        As in :func:`ptukey`.

    Returns
    -------
    float
        The quantile (0 at p = 0, Inf at p = 1, NaN for df < 2 or nmeans < 2).
    """
    if not 0 <= p <= 1:
        raise OptionError(f"qtukey needs a probability in [0, 1], not {p!r}")
    if df < 2 or nranges < 1 or nmeans < 2:
        return math.nan
    if p == 0:
        return 0.0
    if p == 1:
        return math.inf

    def value(x: float) -> float:
        return float(ptukey(x, nmeans, df, nranges)[0]) - p

    x0 = _start(p, nmeans, df)
    v0 = value(x0)
    x1 = max(0.0, x0 - 1.0) if v0 > 0.0 else x0 + 1.0
    v1 = value(x1)
    ans = x1
    for _ in range(1, 50):
        ans = x1 - (v1 * (x1 - x0)) / (v1 - v0)
        v0, x0 = v1, x1
        ans = max(ans, 0.0)
        v1, x1 = value(ans), ans
        if abs(x1 - x0) < 1e-4:
            return ans
    return ans


# --- TukeyHSD: R's model.tables(fit, "means") and the pairwise comparisons of TukeyHSD.aov -----------------------

def factor_terms(fit: LinearModelResult) -> tuple[list[str], dict[str, list[str]]]:
    """The estimable terms of a fit (intercept left out, in order) and, for those of factors only, their factors.

    Returns
    -------
    (list of str, dict of str to list of str)
        Term labels, and {label: factor expressions} for the terms whose variables are all factors.
    """
    d = fit.design
    est = fit._qr.pivot[: fit.rank]
    labels = list(dict.fromkeys(d.assign[j] for j in est if d.assign[j] != "1"))
    categorical = {e for e, (kind, _) in d.spec.encoder_state.items() if getattr(kind, "value", kind) == "categorical"}
    factors = {}
    for st in d.spec.structure:
        label = str(st.term)
        names = [str(f) for f in st.term.factors]
        if label in labels and all(f in categorical for f in names):
            factors[label] = names
    return labels, factors


def _projections(fit: LinearModelResult) -> dict[str, np.ndarray]:
    """R's proj(fit, unweighted.scale = TRUE): each term's share of the fitted values ("1": the intercept's)."""
    d = fit.design
    est = list(fit._qr.pivot[: fit.rank])
    sw = np.ones(len(d.y)) if d.weights is None else np.sqrt(d.weights)
    z = d.y if d.offset is None else d.y - d.offset
    Q = np.linalg.qr(d.X[:, est] * sw[:, None])[0]
    effects = Q.T @ (z * sw)
    out: dict[str, np.ndarray] = {}
    for k, j in enumerate(est):
        out[d.assign[j]] = out.get(d.assign[j], 0.0) + Q[:, k] * effects[k]
    return {t: v / sw for t, v in out.items()}


def _cells(fit: LinearModelResult, factors: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each row's cell of the factors' crossing (the first factor varying fastest, as tapply) and the cell names."""
    d = fit.design
    code = np.zeros(len(d.y), dtype=np.int64)
    names = [""]
    stride = 1
    for expr in factors:
        levels = [level_text(v) for v in d.spec.encoder_state[expr][1]["categories"]]
        if d.frame is None:
            raise FitError("TukeyHSD needs the fit's model frame (the rows it used), which this fit lacks")
        values = d.frame.values(expr)
        k = pd.Index(levels).get_indexer([level_text(v) for v in values])
        if (k < 0).any():
            raise FitError(f"TukeyHSD: values of factor {expr!r} outside its levels in the rows used")
        code += k * stride
        stride *= len(levels)
        names = [f"{n}:{lv}" if n else lv for lv in levels for n in names]
    return code, names


def tukey_hsd(fit: LinearModelResult, which: Any = None, ordered: bool = False,
              conf_level: float = 0.95) -> dict[str, pd.DataFrame]:
    """R's TukeyHSD.aov: for each factor term, every difference of its (cell) means, with Tukey's intervals.

    Parameters
    ----------
    fit : LinearModelResult
        The aov fit.
    which : str, list of str or None
        Terms to compare (R's term labels, e.g. "tension" or "wool:tension"); None: every factor term.
    ordered : bool
        Order the means increasingly first (every difference is then positive), as R's ordered = TRUE.
    conf_level : float
        Family-wise confidence level, in (0, 1).

    Returns
    -------
    dict of str to pandas.DataFrame
        Per term, a row per pair ("6-4": level 6 minus level 4) with columns diff, lwr, upr, p adj.
    """
    if isinstance(conf_level, bool) or not isinstance(conf_level, (int, float)) or not 0 < conf_level < 1:
        raise OptionError(f"conf_level must be a number in (0, 1), such as 0.95, not {conf_level!r}")
    labels, factors = factor_terms(fit)
    if not factors:
        raise ModelInputError("no factors in the fitted model: TukeyHSD compares the levels of factor terms "
                              "(e.g. tl.aov('y ~ factor(g)', data))")
    chosen = _chosen_terms(which, labels, factors)
    w = fit.design.weights
    if w is not None and (w == 0).any():
        raise ModelInputError(f"TukeyHSD of a fit with {int((w == 0).sum())} zero weight(s): leave those rows out "
                              "with subset= and fit again")
    mse = float(np.sum(fit._resid**2)) / fit.df_residual  # the rows used (residuals() pads under na.exclude)
    proj = _projections(fit)
    out = {}
    for term in chosen:
        inside = set(factors[term])
        parts = [t for t in ["1"] + labels if t == "1" or set(factors.get(t, [None])) <= inside]
        values = sum((proj[t] for t in parts if t in proj), np.zeros(len(fit.design.y)))
        code, names = _cells(fit, factors[term])
        counts = np.bincount(code, minlength=len(names)).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.bincount(code, weights=values, minlength=len(names)) / counts
        out[term] = _comparisons(means, counts, names, ordered, conf_level, mse, fit.df_residual)
    return out


def _chosen_terms(which: Any, labels: list[str], factors: dict[str, list[str]]) -> list[str]:
    """The terms of ``which`` (R: the non-factor ones dropped with a warning, an error if no factor is left)."""
    chosen = labels if which is None else [which] if isinstance(which, str) else list(which)
    if not all(isinstance(t, str) for t in chosen):
        raise OptionError(f"which must name terms of the model (strings such as {list(factors)[0]!r}), not {which!r}")
    if unknown := [t for t in chosen if t not in labels]:
        raise OptionError(f"which names {unknown}, not terms of the model; its factor terms are {list(factors)}")
    kept = [t for t in chosen if t in factors]
    if not kept:
        raise OptionError(f"'which' specified no factors ({chosen} are not factor terms; the factor terms are "
                          f"{list(factors)})")
    if len(kept) < len(chosen):
        warn("'which' specified some non-factors which will be dropped", stacklevel=4)
    return kept


def _comparisons(means: np.ndarray, counts: np.ndarray, names: list[str], ordered: bool, conf_level: float,
                 mse: float, df: int) -> pd.DataFrame:
    """TukeyHSD's table for one term: each pair (i > j of the lower triangle, column by column)."""
    if ordered:
        order = np.argsort(means, kind="stable")  # R's order(): ties in place, NA last
        means, counts, names = means[order], counts[order], [names[k] for k in order]
    k = len(means)
    i, j = np.tril_indices(k, -1)
    by_column = np.lexsort((i, j))
    i, j = i[by_column], j[by_column]
    centre = means[i] - means[j]
    with np.errstate(divide="ignore"):
        se = np.sqrt((mse / 2) * (1 / counts[i] + 1 / counts[j]))
    width = qtukey(conf_level, k, df) * se
    p = ptukey(np.abs(centre / se), k, df, lower_tail=False)
    return pd.DataFrame({"diff": centre, "lwr": centre - width, "upr": centre + width, "p adj": p},
                        index=[f"{names[a]}-{names[b]}" for a, b in zip(i, j)])
