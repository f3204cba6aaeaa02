"""R's lowess(): Cleveland's robust locally weighted regression, a port of clowess (R's src/library/stats/src/lowess.c).

The loops over the fitted points are R's; within one local fit the tricube weights are computed for the
whole window at once and every sum is a running (left-to-right) sum, as the C loops add, so that the numbers
are R's to the last bits. Also R's pretty(), which plot.lm's Cook's distance contours (plot 6) use.
"""

from __future__ import annotations

import math

import numpy as np

from torchlm.errors import ModelInputError

_DBL_EPSILON = float(np.finfo(float).eps)
_DBL_MIN = float(np.finfo(float).tiny)


def _csum(v: np.ndarray) -> float:
    """sum(v) added left to right, as a C loop adds (numpy's sum adds pairwise)."""
    return float(np.cumsum(v)[-1]) if len(v) else 0.0


def _lowest(x: np.ndarray, y: np.ndarray, xs: float, nleft: int, nright: int, rw: np.ndarray | None) -> float | None:
    """clowess's lowest(): the local linear fit at xs over x[nleft..] (0-based), None when all weights are 0."""
    n = len(x)
    rng = x[n - 1] - x[0]
    h = max(xs - x[nleft], x[nright] - xs)
    h9, h1 = 0.999 * h, 0.001 * h
    xw = x[nleft:]
    r = np.abs(xw - xs)
    # R walks right from nleft, taking every point within h9 (all ties on the right), and stops at the
    # first point beyond h9 to the right of xs
    stop = np.flatnonzero((r > h9) & (xw > xs))
    nrt = len(xw) if len(stop) == 0 else int(stop[0])
    r, xw, yw = r[:nrt], xw[:nrt], y[nleft:nleft + nrt]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = r / h
        cube = 1.0 - q * q * q
        w = np.where(r <= h1, 1.0, cube * cube * cube)
    w = np.where(r <= h9, w, 0.0)
    if rw is not None:
        w = np.where(r <= h9, w * rw[nleft:nleft + nrt], 0.0)
    a = _csum(w)
    if a <= 0.0:
        return None
    w = w / a
    if h > 0.0:
        a = _csum(w * xw)
        b = xs - a
        d = xw - a
        c = _csum(w * (d * d))
        if math.sqrt(c) > 0.001 * rng:
            b /= c
            w = w * (b * d + 1.0)
    return _csum(w * yw)


def _pass(x: np.ndarray, y: np.ndarray, ns: int, delta: float, rw: np.ndarray | None) -> np.ndarray:
    """One pass of clowess over all points (0-based indices; R's are 1-based)."""
    n = len(x)
    ys = np.empty(n)
    nleft, nright, last, i = 0, ns - 1, -1, 0
    while True:
        if nright < n - 1:
            # move the window right while that shrinks its radius
            if x[i] - x[nleft] > x[nright + 1] - x[i]:
                nleft += 1
                nright += 1
                continue
        fit = _lowest(x, y, float(x[i]), nleft, nright, rw)
        ys[i] = y[i] if fit is None else fit
        if last < i - 1:
            # points skipped within delta: interpolate
            denom = x[i] - x[last]
            j = np.arange(last + 1, i)
            alpha = (x[j] - x[last]) / denom
            ys[j] = alpha * ys[i] + (1.0 - alpha) * ys[last]
        last = i
        cut = x[last] + delta
        i = last + 1
        while i < n:
            if x[i] > cut:
                break
            if x[i] == x[last]:
                ys[i] = ys[last]
                last = i
            i += 1
        i = max(last + 1, i - 1)
        if last >= n - 1:
            return ys


def _robustness_weights(res: np.ndarray) -> np.ndarray | None:
    """Bisquare weights of the residuals scaled by 6 median |res|; None when that scale is effectively 0."""
    n = len(res)
    ar = np.abs(res)
    sc = _csum(ar) / n
    srt = np.sort(ar)
    m1 = n // 2
    cmad = 3.0 * (srt[m1] + srt[n - m1 - 1]) if n % 2 == 0 else 6.0 * srt[m1]
    if cmad < 1e-7 * sc:
        return None
    c9, c1 = 0.999 * cmad, 0.001 * cmad
    with np.errstate(divide="ignore", invalid="ignore"):
        u = ar / cmad  # cmad = 0 only with every residual 0 (then every weight is 1, as in R)
    one = 1.0 - u * u
    return np.where(ar <= c1, 1.0, np.where(ar <= c9, one * one, 0.0))


def clowess(x: np.ndarray, y: np.ndarray, f: float = 2 / 3, iter: int = 3, delta: float = 0.0) -> np.ndarray:
    """R's C clowess() on x sorted increasingly: the smoothed y at every x.

    Parameters
    ----------
    x, y : numpy.ndarray
        x in increasing order, y in the same order.
    f : float
        The smoother span (the fraction of points in each local fit).
    iter : int
        Robustifying iterations.
    delta : float
        Points within delta of the last fitted one are interpolated, not fitted.

    Returns
    -------
    numpy.ndarray
        The fitted values ys.
    """
    n = len(x)
    if n < 2:
        return y.astype(float).copy()
    ns = max(2, min(n, int(f * n + 1e-7)))
    rw = None
    for it in range(1, iter + 2):
        ys = _pass(x, y, ns, delta, rw if it > 1 else None)
        if it > iter:
            break
        rw = _robustness_weights(y - ys)
        if rw is None:
            break
    return ys


def lowess(x: np.ndarray, y: np.ndarray, f: float = 2 / 3, iter: int = 3,
           delta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """R's lowess(x, y, f, iter, delta): the points sorted by x and the smooth through them.

    Parameters
    ----------
    x, y : array-like
        The points (finite; same length).
    f : float
        The smoother span, > 0.
    iter : int
        Robustifying iterations, >= 0.
    delta : float or None
        None for R's default, 1% of the range of x.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        x sorted increasingly (R's order(), ties kept in input order) and the smoothed values there.
    """
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if len(xa) != len(ya) or len(xa) == 0:
        raise ModelInputError(f"lowess needs x and y of the same, non-zero length (got {len(xa)} and {len(ya)})")
    if not (math.isfinite(f) and f > 0):
        raise ModelInputError(f"lowess: 'f' must be finite and > 0, not {f!r}")
    if int(iter) != iter or iter < 0:
        raise ModelInputError(f"lowess: 'iter' must be an integer >= 0, not {iter!r}")
    o = np.argsort(xa, kind="stable")
    xs, yo = xa[o], ya[o]
    d = 0.01 * (xs[-1] - xs[0]) if delta is None else float(delta)
    if not (math.isfinite(d) and d >= 0):
        raise ModelInputError(f"lowess: 'delta' must be finite and >= 0, not {delta!r}")
    return xs, clowess(xs, yo, float(f), int(iter), d)


def pretty(lo: float, up: float, n: int = 5) -> np.ndarray:
    """R's pretty(c(lo, up), n): about n + 1 equally spaced round values covering [lo, up] (pretty.default).

    Parameters
    ----------
    lo, up : float
        The range (finite, lo <= up).
    n : int
        The desired number of intervals.

    Returns
    -------
    numpy.ndarray
        The values.
    """
    h, h5, min_n, shrink = 1.5, 0.5 + 1.5 * 1.5, n // 3, 0.75
    dx = up - lo
    if dx == 0 and up == 0:
        cell, i_small = 1.0, True
    else:
        cell = max(abs(lo), abs(up))
        u = 1 + (1 / (1 + h) if h5 >= 1.5 * h + 0.5 else 1.5 / (1 + h5))
        u *= max(1, n) * _DBL_EPSILON
        i_small = dx < cell * u * 3
    if i_small:
        if cell > 10:
            cell = 9 + cell / 10
        cell *= shrink
        if min_n > 1:
            cell /= min_n
    else:
        cell = dx / n if n > 1 else dx
    cell = max(cell, 2.0 ** -20 * _DBL_MIN)
    base = 10.0 ** math.floor(math.log10(cell))
    unit = base
    if 2 * base - cell < h * (cell - unit):
        unit = 2 * base
        if 5 * base - cell < h5 * (cell - unit):
            unit = 5 * base
            if 10 * base - cell < h * (cell - unit):
                unit = 10 * base
    ns = math.floor(lo / unit + 1e-10)
    nu = math.ceil(up / unit - 1e-10)
    while ns * unit > lo + 1e-10 * unit:
        ns -= 1
    while nu * unit < up - 1e-10 * unit:
        nu += 1
    k = ndiv = int(0.5 + nu - ns)
    if k < min_n:
        ndiv = min_n
        k = min_n - k
        if lo == 0 and ns == 0 and up != 0:
            nu += k
        elif up == 0 and nu == 0 and lo != 0:
            ns -= k
        elif ns >= 0:
            nu += k // 2
            ns -= k // 2 + k % 2
        else:
            ns -= k // 2
            nu += k // 2 + k % 2
    # pretty.default: seq.int(z$l, z$u, length.out = z$n + 1) with l = ns * unit, u = nu * unit
    lo_, up_ = min(lo, ns * unit), max(up, nu * unit)
    s = np.linspace(lo_, up_, ndiv + 1)
    if ndiv:
        s[np.abs(s) < 1e-14 * (up_ - lo_) / ndiv] = 0.0
    return s
