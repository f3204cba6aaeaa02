"""emmeans' multiplicity adjustments: adjusted p-values and critical values (R's .adj.p.value, .adj.critval).

Tukey's adjustment uses R's studentized range (torchlm.inference.tukey ports ptukey and qtukey digit for
digit), "dunnettx" emmeans' own mix of the Tukey and Sidak distributions (its quantile found by R's uniroot,
ported below with R's zeroin so the same iterates give the same digits), "sidak", "scheffe" and R's
p.adjust methods ("holm", "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr", "none"). "mvt" (mvtnorm's
Monte Carlo multivariate t) is not available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from torchlm.errors import OptionError, warn
from torchlm.inference.tukey import ptukey, qtukey
from torchlm.present.rformat import zapsmall

P_ADJUST_METHODS = ("holm", "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr", "none")
ADJUST_METHODS = ("sidak", "tukey", "scheffe", "dunnettx", "mvt") + P_ADJUST_METHODS
_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class Family:
    """What an adjustment needs to know of a family of tests (R's fam.info and by.rows).

    Attributes
    ----------
    size : the number of means compared (Tukey's family size), or "(varies)".
    n_contrasts : the number of estimates in each by group (or "(varies)").
    est_type : 1 for predictions, 2 for contrasts, 3 for pairwise comparisons.
    by_rows : the rows of each by group.
    scheffe_rank : Scheffe's rank for each by group (None unless the adjustment is Scheffe's).
    """

    size: Any
    n_contrasts: Any
    est_type: int
    by_rows: list[np.ndarray]
    scheffe_rank: list[int] | None = None


def pmatch(x: str, table: tuple[str, ...]) -> str | None:
    """R's pmatch of one string: an exact match, else the one entry it is a prefix of, else None.

    Returns
    -------
    str or None
    """
    if x in table:
        return x
    hits = [t for t in table if t.startswith(x)]
    return hits[0] if len(hits) == 1 and x else None


def _pt_upper(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """R's pt(t, df, lower.tail = FALSE) (the normal where df is infinite, as R's pt)."""
    return np.where(np.isinf(df), stats.norm.sf(t), stats.t.sf(t, np.where(np.isinf(df), 1.0, df)))


def _qt(p: float, df: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(df), stats.norm.ppf(p), stats.t.ppf(p, np.where(np.isinf(df), 1.0, df)))


def _pf(x: np.ndarray, d1: float, df: np.ndarray, lower: bool) -> np.ndarray:
    """R's pf: the chi-squared of d1 * x where the denominator df is infinite."""
    if lower:
        return np.where(np.isinf(df), stats.chi2.cdf(x * d1, d1), stats.f.cdf(x, d1, np.where(np.isinf(df), 1, df)))
    return np.where(np.isinf(df), stats.chi2.sf(x * d1, d1), stats.f.sf(x, d1, np.where(np.isinf(df), 1, df)))


def _qf(p: float, d1: float, df: float) -> float:
    """R's qf: qchisq(p, d1) / d1 where the denominator df is above 4e5."""
    return float(stats.chi2.ppf(p, d1) / d1) if df > 4e5 else float(stats.f.ppf(p, d1, df))


def _by_df(values: np.ndarray, df: np.ndarray, fn: Any) -> np.ndarray:
    """fn(values, df) for a scalar df, applied to each distinct df of a vector (ptukey takes one df)."""
    out = np.full(values.shape, np.nan)
    for d in np.unique(df[~np.isnan(df)]):
        at = df == d
        out[at] = fn(values[at], float(d))
    return out


def p_adjust(p: np.ndarray, method: str, n: int) -> np.ndarray:
    """R's p.adjust(p, method, n): the adjusted p-values (NA where p is NA; ``n`` counts them as R does).

    Returns
    -------
    numpy.ndarray
    """
    p = np.asarray(p, dtype=float)
    out = p.copy()
    ok = ~np.isnan(p)
    q = p[ok]
    lp = len(q)
    if n <= 1 or lp == 0:
        return out
    if method == "hommel" and n == 2:
        method = "hochberg"
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((n - np.arange(lp)) * q[o]))
        out[ok] = adj[np.argsort(o, kind="stable")]
    elif method == "hommel":
        out[ok] = _hommel(q, n)
    elif method != "none":  # the step-up methods: hochberg, BH (fdr), BY
        i = np.arange(lp, 0, -1)
        o = np.argsort(-q, kind="stable")
        scale = {"hochberg": n + 1 - i, "BH": n / i, "fdr": n / i,
                 "BY": np.sum(1 / np.arange(1, n + 1)) * n / i}[method]
        adj = np.minimum(1.0, np.minimum.accumulate(scale * q[o]))
        out[ok] = adj[np.argsort(o, kind="stable")]
    return out


def _hommel(p: np.ndarray, n: int) -> np.ndarray:
    """R's p.adjust(method = "hommel") of the non-missing p-values (the missing ones counted in n as 1s)."""
    lp = len(p)
    pp = np.r_[p, np.ones(n - lp)]
    o = np.argsort(pp, kind="stable")
    pp = pp[o]
    ro = np.argsort(o, kind="stable")
    pa = np.full(n, np.min(n * pp / np.arange(1, n + 1)))
    q = pa.copy()
    for m in range(n - 1, 1, -1):
        i1, i2 = np.arange(n - m + 1), np.arange(n - m + 1, n)
        q1 = np.min(m * pp[i2] / np.arange(2, m + 1))
        q[i1] = np.minimum(m * pp[i1], q1)
        q[i2] = q[n - m]
        pa = np.maximum(pa, q)
    return np.maximum(pa, pp)[ro[:lp]]


def _pdunnx(x: np.ndarray, k: float, df: float) -> np.ndarray:
    """emmeans' .pdunnx: its approximate Dunnett distribution, a mix of Tukey's and Sidak's."""
    twt = (k - 1) / k
    tukey = ptukey(math.sqrt(2) * np.asarray(x, dtype=float), (1 + math.sqrt(1 + 8 * k)) / 2, df)
    sidak = _pf(np.asarray(x, dtype=float) ** 2, 1, np.full(np.shape(x), df), lower=True) ** k
    return twt * tukey + (1 - twt) * sidak


def zeroin(f: Any, lower: float, upper: float, f_lower: float, f_upper: float, tol: float,
           maxiter: int = 1000) -> float:
    """R's uniroot (its C zeroin2, Brent's method): the same iterates, so the same root to every digit.

    Returns
    -------
    float
        The root's estimate.
    """
    a, b, fa, fb = lower, upper, f_lower, f_upper
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p, q = cb * t1, 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _qdunnx(p: float, k: float, df: float) -> float:
    """emmeans' .qdunnx: the quantile of its Dunnett approximation, by R's uniroot at tol .0005."""
    if k < 1.005:
        return float(_qt(1 - 0.5 * (1 - p), np.array([df]))[0])
    xtuk = qtukey(p, (1 + math.sqrt(1 + 8 * k)) / 2, df) / math.sqrt(2)
    xsid = math.sqrt(_qf(p ** (1 / k), 1, df))
    if abs(xtuk - xsid) < 0.0005:
        return xtuk

    def fcn(x: float) -> float:
        return float(_pdunnx(np.array([x]), k, df)[0]) - p

    lo, hi = min(xtuk, xsid), max(xtuk, xsid)
    f_lo, f_hi = fcn(lo), fcn(hi)
    if not np.sign(f_lo) * np.sign(f_hi) <= 0:
        warn("Root-finding failed; using qtukey approximation for Dunnett quantile")
        return xtuk
    return zeroin(fcn, lo, hi, f_lo, f_hi, 0.0005)


def changed_adjustment(old: str, new: str, reason: str) -> str:
    """emmeans' note that an adjustment was replaced (R's message, here a TorchlmWarning).

    Returns
    -------
    str
        The new method.
    """
    warn(f'Note: adjust = "{old}" was changed to "{new}"\nbecause "{old}" is {reason}', stacklevel=5)
    return new


def _checked(adjust: str, est_type: int) -> str:
    if adjust == "mvt":
        raise OptionError('adjust = "mvt" (mvtnorm\'s Monte Carlo multivariate t) is not available in torchlm; '
                          'use "tukey" (pairwise comparisons), "dunnettx", "sidak", "scheffe", "holm", '
                          '"bonferroni" or "none"')
    if est_type != 3 and adjust == "tukey":
        adjust = changed_adjustment(adjust, "sidak", "only appropriate for one set of pairwise comparisons")
    return adjust


def _message(kind: str, adjust: str, fam: Any, nc: Any, rank: Any, fs: float) -> str | None:
    """emmeans' "P value adjustment: ..." / "Conf-level adjustment: ..." line, where it prints one."""
    chk = {"none": 1, "tukey": 2, "scheffe": 3}.get(adjust, 99)
    if not (chk > 1 and not (fs < 3 and chk < 10)):
        return None
    if adjust == "tukey":
        extra = f"for comparing a family of {_num(fam)} estimates"
    elif adjust == "scheffe":
        extra = f"with rank {_num(rank)}"
    else:
        extra = f"for {_num(nc)} {'tests' if kind == 'P value' else 'estimates'}"
    return f"{kind} adjustment: {adjust} method {extra}"


def _num(x: Any) -> str:
    """A number as R's paste() writes it (15 significant digits)."""
    if isinstance(x, str):
        return x
    return f"{float(x):.15g}"


def adjusted_p_values(t: np.ndarray, df: np.ndarray, adjust: str, fam: Family) -> tuple[np.ndarray, str | None, str]:
    """R's .adj.p.value: two-sided p-values of the t (or z) ratios adjusted within each family.

    Returns
    -------
    (numpy.ndarray, str or None, str)
        The p-values, the "P value adjustment" line (None where emmeans prints none) and the method used.
    """
    fam_size, n_contr = fam.size, fam.n_contrasts
    if n_contr == 1 and pmatch(adjust, ("scheffe",)) is None:
        adjust = "none"
    method = pmatch(adjust, ADJUST_METHODS)
    if method is None:
        raise OptionError(f"Adjust method '{adjust}' is not recognized or not valid; choose one of "
                          f"{', '.join(m for m in ADJUST_METHODS if m != 'mvt')}")
    method = _checked(method, fam.est_type)
    ragged = isinstance(fam_size, str) or method in P_ADJUST_METHODS
    by_rows = fam.by_rows if ragged else [np.arange(len(t))]
    df = np.where(np.isnan(df), np.inf, df)
    abs_t = np.abs(t)
    p_unadj = 2 * _pt_upper(abs_t, df)
    pval = np.zeros(len(t))
    for jj, rows in enumerate(by_rows):
        if ragged:
            n_contr = len(rows)
            fam_size = (1 + math.sqrt(1 + 8 * n_contr)) / 2
        pval[rows] = _family_p(method, p_unadj[rows], abs_t[rows], t[rows], df[rows], n_contr, fam_size,
                               fam.scheffe_rank[jj] if fam.scheffe_rank else None)
    rank: Any = "(varies)"
    if ragged:
        fs = (1 + math.sqrt(1 + 8 * max(len(r) for r in fam.by_rows))) / 2
    else:
        fs, rank = float(fam_size), fam.scheffe_rank[0] if fam.scheffe_rank else None
    return pval, _message("P value", method, fam_size, n_contr, rank, fs), method


def _family_p(method: str, p: np.ndarray, abs_t: np.ndarray, t: np.ndarray, df: np.ndarray, n_contr: Any,
              fam_size: Any, rank: Any) -> np.ndarray:
    """The adjusted p-values of one family."""
    if method in P_ADJUST_METHODS:
        return p_adjust(p, method, int(n_contr))
    if method == "sidak":
        return 1 - (1 - p) ** float(n_contr)
    if method == "tukey":
        return _by_df(math.sqrt(2) * abs_t, zapsmall(df, 7),
                      lambda q, d: ptukey(q, float(fam_size), d, lower_tail=False))
    if method == "scheffe":
        return _pf(t ** 2 / rank, float(rank), df, lower=False)
    return 1 - _by_df(abs_t, df, lambda x, d: _pdunnx(x, float(n_contr), d))  # dunnettx


def critical_values(level: float, df: np.ndarray, adjust: str, fam: Family) -> tuple[np.ndarray, str | None, str]:
    """R's .adj.critval: the multiplier of the SE for each two-sided interval, adjusted within each family.

    Returns
    -------
    (numpy.ndarray, str or None, str)
        The critical values, the "Conf-level adjustment" line (None where emmeans prints none) and the method.
    """
    fam_size, n_contr = fam.size, fam.n_contrasts
    ragged = isinstance(fam_size, str)
    if not ragged and n_contr == 1 and pmatch(adjust, ("scheffe",)) is None:
        adjust = "none"
    table = ("sidak", "tukey", "scheffe", "dunnettx", "mvt", "bonferroni", "none")
    method = pmatch(adjust, table) or "bonferroni"
    by_rows = fam.by_rows
    if not ragged and method != "mvt" and len(np.unique(df)) == 1:
        by_rows = [np.arange(len(df))]
    method = _checked(method, fam.est_type)
    df = np.where(np.isnan(df), np.inf, df)
    rank: Any = "(varies)"
    if ragged:
        fs = (1 + math.sqrt(1 + 8 * max(len(r) for r in by_rows))) / 2
    else:
        fs, rank = float(fam_size), fam.scheffe_rank[0] if fam.scheffe_rank else None
    mesg = _message("Conf-level", method, fam_size, n_contr, rank, fs)
    adiv = 2
    cv = np.zeros(len(df))
    for jj, rows in enumerate(by_rows):
        d = df[rows]
        if ragged:
            n_contr = len(rows)
            fam_size = (1 + math.sqrt(1 + 8 * n_contr)) / 2
        k = float(n_contr)
        if method == "none":
            cv[rows] = -_qt((1 - level) / adiv, d)
        elif method == "sidak":
            cv[rows] = -_qt((1 - level ** (1 / k)) / adiv, d)
        elif method == "bonferroni":
            cv[rows] = -_qt((1 - level) / k / adiv, d)
        elif method == "tukey":
            cv[rows] = [qtukey(level, float(fam_size), float(x)) / math.sqrt(2) for x in d]
        elif method == "scheffe":
            r = fam.scheffe_rank[jj] if fam.scheffe_rank else 1
            cv[rows] = [math.sqrt(r * _qf(level, r, float(x))) for x in d]
        else:  # dunnettx
            cv[rows] = [_qdunnx(level, k, float(x)) for x in d]
    return cv, mesg, method
