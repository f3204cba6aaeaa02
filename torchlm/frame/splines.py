"""R's splines::ns and splines::bs as formula functions, with R's numbers and R's predict-safety.

The B-spline basis is splineDesign's (de Boor's recurrence as R's splines.c computes it), the knots
are R's type-7 quantiles of x, and ns() imposes zero second derivatives at the boundary knots with
the Householder QR that R's qr() (LINPACK dqrdc2) gives. Both are formulaic stateful transforms:
the knots and boundary knots learnt at the fit are kept in the model spec and reused on newdata,
as R's makepredictcall does, so predictions outside the fitted range extrapolate as R's do (ns:
linearly; bs: the boundary polynomial, with R's warning). R 4.2.2's ns and bs are followed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers.types import FactorValues
from formulaic.transforms import TRANSFORMS
from formulaic.utils.stateful_transforms import stateful_transform

from torchlm.errors import DataError, warn

# formulaic's own bs(), for its spellings that R's bs() does not have
_FORMULAIC_BS = TRANSFORMS["bs"]
_FORMULAIC_ONLY = ("include_intercept", "lower_bound", "upper_bound", "extrapolation")
OUTSIDE_WARNING = "some 'x' values beyond boundary knots may cause ill-conditioned bases"


def spline_design(knots: Any, x: Any, ord: int = 4, derivs: Any = 0) -> np.ndarray:
    """R's splineDesign(knots, x, ord, derivs): the B-spline basis (or its derivatives) at x.

    Parameters
    ----------
    knots : array-like
        The full knot sequence (sorted; boundary knots repeated ``ord`` times for bs and ns).
    x : array-like
        Points within ``[knots[ord - 1], knots[-ord]]`` (R's default ``outer.ok = FALSE``).
    ord : int
        The order (degree + 1).
    derivs : int or array of int
        The derivative at each point (recycled over x, as R's); 0 is the value.

    Returns
    -------
    numpy.ndarray
        (len(x), len(knots) - ord) float64.
    """
    knots = np.sort(np.asarray(knots, dtype=np.float64))
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    nk = len(knots)
    if ord < 1 or ord > nk or nk < 2 * ord - 1:
        raise DataError(f"splineDesign: need at least 2*ord - 1 = {2 * ord - 1} knots for order {ord}, have {nk}")
    if np.any((x < knots[ord - 1]) | (x > knots[nk - ord])):
        raise DataError(f"the 'x' data must be in the range {knots[ord - 1]:g} to {knots[nk - ord]:g}")
    ders = np.resize(np.atleast_1d(np.asarray(derivs, dtype=np.int64)), len(x))
    if np.any(ders >= ord) or np.any(ders < 0):
        raise DataError(f"derivs should be in 0..{ord - 1} for splines of order {ord}")
    curs = np.searchsorted(knots, x, side="right")  # the first knot > x, as splines.c's set_cursor
    boundary = (curs > nk - ord) & (x == knots[nk - ord])
    curs = np.where(boundary, nk - ord, curs)
    out = np.zeros((len(x), nk - ord))
    values = _basis_values(knots, x, curs, ord)
    for i in np.flatnonzero(ders > 0):  # derivatives: the few points bs() and ns() need them at
        values[i] = [_evaluate(knots, int(curs[i]), bool(boundary[i]), x[i], np.eye(ord)[k], int(ders[i]), ord - 1)
                     for k in range(ord)]
    columns = (curs - ord)[:, None] + np.arange(ord)
    np.put_along_axis(out, columns, values, axis=1)
    return out


def _basis_values(knots: np.ndarray, x: np.ndarray, curs: np.ndarray, ord: int) -> np.ndarray:
    """The ord non-zero B-splines at each x (splines.c's basis_funcs, for every point at once)."""
    m = ord - 1
    rdel = np.stack([knots[curs + i] - x for i in range(m)], axis=1) if m else np.zeros((len(x), 0))
    ldel = np.stack([x - knots[curs - (i + 1)] for i in range(m)], axis=1) if m else np.zeros((len(x), 0))
    b = np.zeros((len(x), ord))
    b[:, 0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(1, ord):
            saved = np.zeros(len(x))
            for r in range(j):
                den = rdel[:, r] + ldel[:, j - 1 - r]
                ok = den != 0
                term = np.where(ok, b[:, r] / den, 0.0)
                # a zero denominator (repeated knots): splines.c keeps b[0] when rdel[0] is 0 too
                keep = ~ok & (r == 0) & (rdel[:, r] == 0)
                b[:, r] = np.where(ok, saved + rdel[:, r] * term, np.where(keep, b[:, r], saved))
                saved = np.where(ok, ldel[:, j - 1 - r] * term, 0.0)
            b[:, j] = saved
    return b


def _evaluate(knots: np.ndarray, curs: int, boundary: bool, x: float, a: np.ndarray, nder: int, m: int) -> float:
    """One B-spline's derivative at x (splines.c's evaluate, for the coefficients ``a``)."""
    if boundary and nder == m:  # the value is arbitrary there: R's 0
        return 0.0
    a = a.astype(np.float64)
    outer = m
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(nder):
            for k in range(outer):
                lo = curs - outer + k
                a[k] = outer * (a[k + 1] - a[k]) / (knots[lo + outer] - knots[lo])
            outer -= 1
        rdel = [knots[curs + i] - x for i in range(outer)]
        ldel = [x - knots[curs - (i + 1)] for i in range(outer)]
        while outer > 0:
            outer -= 1
            for k in range(outer + 1):
                left, right = ldel[outer - k], rdel[k]
                a[k] = (a[k + 1] * left + a[k] * right) / (right + left)
    return float(a[0])


def r_quantile(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's quantile(x, probs) of type 7 (the default), computed as R computes it.

    Parameters
    ----------
    x : numpy.ndarray
        Values without missing ones.
    probs : numpy.ndarray
        Probabilities in [0, 1].

    Returns
    -------
    numpy.ndarray
        The quantiles.
    """
    xs = np.sort(x)
    index = (len(xs) - 1) * np.asarray(probs, dtype=np.float64)  # R's 1 + (n - 1) * probs, from 0
    lo, hi = np.floor(index).astype(np.int64), np.ceil(index).astype(np.int64)
    qs = xs[lo]
    h = index - lo
    mix = (index > lo) & (xs[hi] != qs)
    return np.where(mix, (1 - h) * qs + h * xs[hi], qs)


def _inner_probs(k: int) -> np.ndarray:
    """R's seq.int(0, 1, length.out = k + 2) without its ends: the probabilities of k inner knots."""
    n = k + 2
    by = 1.0 / (n - 1)
    return np.array([i * by if i < n // 2 else 1.0 - (n - 1 - i) * by for i in range(1, n - 1)])


def as_float(x: Any) -> np.ndarray:
    """A variable's values as a flat float64 array, missing values (NaN, pd.NA) as NaN.

    Parameters
    ----------
    x : array-like or pandas.Series
        The values.

    Returns
    -------
    numpy.ndarray
        (n,) float64.
    """
    if isinstance(x, pd.Series):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _prepare(x: Any, boundary: Any, what: str, df: int | None, knots: Any,
             used: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R's set-up of bs() and ns(): x's values without the missing ones (and where they were), the boundary
    knots (sorted when given, else x's range), which values lie beyond them, and the inner knots.

    ``used`` is the df the basis takes beside its inner knots (ns: 1 + intercept; bs: degree + intercept).
    """
    values = as_float(x)
    na = np.isnan(values)
    if na.all():
        raise DataError(f"{what}: x has no non-missing values")
    xs = values[~na]
    if boundary is not None:
        bk = np.sort(np.asarray(boundary, dtype=np.float64).reshape(-1))
        if bk.shape != (2,) or not np.isfinite(bk).all():
            raise DataError(f"{what}: Boundary.knots must be two finite numbers, not {boundary!r}")
        outside = (xs < bk[0]) | (xs > bk[1])
    else:
        # ns() of a single value: boundary knots around it (R's special case)
        single = what == "ns" and len(xs) == 1
        bk = xs[[0, 0]] * np.array([7, 9]) / 8 if single else np.array([xs.min(), xs.max()])
        outside = np.zeros(len(xs), dtype=bool)
    if knots is not None:
        inner = np.atleast_1d(np.asarray(knots, dtype=np.float64)).reshape(-1)
        if not np.isfinite(inner).all():
            raise DataError(f"{what}: non-finite knots")
        return xs, na, bk, outside, inner
    n_inner = 0 if df is None else int(df) - used
    if n_inner < 0:
        warn(f"'df' was too small; have used {used}", stacklevel=5)
        n_inner = 0
    inner = r_quantile(xs[~outside], _inner_probs(n_inner)) if n_inner > 0 else np.zeros(0)
    return xs, na, bk, outside, inner


def _with_outside(x: np.ndarray, bk: np.ndarray, aknots: np.ndarray, ord: int, pivots: tuple[float, float],
                  degree: int) -> np.ndarray:
    """The basis inside the boundary knots, and beyond them R's Taylor expansion of ``degree`` at the pivots."""
    left, right = x < bk[0], x > bk[1]
    basis = np.zeros((len(x), len(aknots) - ord))
    inside = ~(left | right)
    if inside.any():
        basis[inside] = spline_design(aknots, x[inside], ord)
    factorials = np.cumprod(np.r_[1.0, np.arange(1, degree + 1)])
    for rows, pivot in ((left, pivots[0]), (right, pivots[1])):
        if rows.any():
            tt = spline_design(aknots, np.full(degree + 1, pivot), ord, np.arange(degree + 1))
            powers = (x[rows] - pivot)[:, None] ** np.arange(degree + 1)
            basis[rows] = powers @ (tt / factorials[:, None])
    return basis


def ns_basis(x: Any, df: int | None = None, knots: Any = None, intercept: bool = False,
             boundary_knots: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R's splines::ns(x, df, knots, intercept, Boundary.knots): the natural cubic spline basis.

    Parameters
    ----------
    x : array-like
        The values; missing ones give rows of NaN.
    df : int, optional
        Degrees of freedom: ``df - 1 - intercept`` inner knots at quantiles of x (unless ``knots`` is given).
    knots : array-like, optional
        The inner knots.
    intercept : bool
        Whether the basis includes the constant.
    boundary_knots : array-like of 2, optional
        The boundary knots (x's range when None); x beyond them is extrapolated linearly, as R's.

    Returns
    -------
    tuple of numpy.ndarray
        The (len(x), k) basis, the inner knots and the boundary knots used.
    """
    xs, na, bk, outside, inner = _prepare(x, boundary_knots, "ns", df, knots, 1 + int(intercept))
    aknots = np.sort(np.r_[np.repeat(bk, 4), inner])
    if outside.any():
        basis = _with_outside(xs, bk, aknots, 4, (bk[0], bk[1]), 1)
    else:
        basis = spline_design(aknots, xs, 4)
    const = spline_design(aknots, bk, 4, [2, 2])
    if not intercept:
        const, basis = const[:, 1:], basis[:, 1:]
    basis = _householder_complement(const.T, basis)
    return _pad_missing(basis, na), inner, bk


def _householder_complement(c: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``t(qr.qty(qr(c), t(basis)))[, -(1:2)]``: basis in the QR's basis of the space orthogonal to c's columns.

    The Householder vectors are LINPACK dqrdc2's (R's qr()), so the columns are R's, signs included.
    """
    c = c.astype(np.float64, copy=True)
    out = basis.astype(np.float64, copy=True)
    m, p = c.shape
    for j in range(min(p, m - 1)):
        norm = np.linalg.norm(c[j:, j])
        if norm == 0:
            continue
        norm = np.copysign(norm, c[j, j]) if c[j, j] != 0 else norm
        u = c[j:, j] / norm
        u[0] += 1.0
        for k in range(j + 1, p):
            c[j:, k] -= u * (u @ c[j:, k]) / u[0]
        out[:, j:] -= np.outer(out[:, j:] @ u, u) / u[0]
    return out[:, p:]


def bs_basis(x: Any, df: int | None = None, knots: Any = None, degree: int = 3, intercept: bool = False,
             boundary_knots: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R's splines::bs(x, df, knots, degree, intercept, Boundary.knots): the B-spline basis.

    Parameters
    ----------
    x : array-like
        The values; missing ones give rows of NaN.
    df : int, optional
        Degrees of freedom: ``df - degree - intercept`` inner knots at quantiles of x (unless ``knots`` is given).
    knots : array-like, optional
        The inner knots.
    degree : int
        The degree of the pieces (>= 1).
    intercept : bool
        Whether the basis includes the first B-spline (then its columns sum to one).
    boundary_knots : array-like of 2, optional
        The boundary knots (x's range when None); x beyond them extends the boundary pieces, with R's warning.

    Returns
    -------
    tuple of numpy.ndarray
        The (len(x), k) basis, the inner knots and the boundary knots used.
    """
    if int(degree) != degree or degree < 1:
        raise DataError(f"bs: 'degree' must be integer >= 1, not {degree!r}")
    degree = int(degree)
    ord = degree + 1
    xs, na, bk, outside, inner = _prepare(x, boundary_knots, "bs", df, knots, degree + int(intercept))
    aknots = np.sort(np.r_[np.repeat(bk, ord), inner])
    if outside.any():
        warn(OUTSIDE_WARNING, stacklevel=3)
        e = 0.25  # R's pivots, a quarter of the way to the next knot inside
        pivots = ((1 - e) * bk[0] + e * aknots[ord], (1 - e) * bk[1] + e * aknots[len(aknots) - ord - 1])
        basis = _with_outside(xs, bk, aknots, ord, pivots, degree)
    else:
        basis = spline_design(aknots, xs, ord)
    if not intercept:
        basis = basis[:, 1:]
    return _pad_missing(basis, na), inner, bk


def _pad_missing(basis: np.ndarray, na: np.ndarray) -> np.ndarray:
    if not na.any():
        return basis
    out = np.full((len(na), basis.shape[1]), np.nan)
    out[~na] = basis
    return out


def _columns(basis: np.ndarray) -> FactorValues:
    """A basis as formulaic's columns, named ``[1]``, ``[2]``, ... as R numbers them (all kept: R aliases them)."""
    return FactorValues(basis, column_names=tuple(str(k) for k in range(1, basis.shape[1] + 1)),
                        kind="numerical", spans_intercept=False)


def _fitted_state(_state: dict, inner: np.ndarray, bk: np.ndarray, intercept: bool, degree: int = 3) -> None:
    _state.update(knots=inner.tolist(), Boundary_knots=bk.tolist(), intercept=bool(intercept), degree=degree)


@stateful_transform
def ns(x: Any, df: int | None = None, knots: Any = None, intercept: bool = False, Boundary_knots: Any = None,
       _state: dict = {}) -> FactorValues:  # noqa: B006  (formulaic passes the state in)
    """R's ns() in a formula: the natural cubic spline basis, its knots reused on newdata (R's predict).

    Parameters
    ----------
    x : array-like
        The variable.
    df, knots, intercept, Boundary_knots :
        As R's ``ns(x, df, knots, intercept, Boundary.knots)`` (``Boundary.knots`` is read as ``Boundary_knots``).
    _state : dict
        formulaic's state: the knots, boundary knots and intercept of the fit.

    Returns
    -------
    formulaic FactorValues
        The basis columns, named ``ns(x, df=3)[1]`` ... .
    """
    if "knots" in _state:  # newdata: the fit's knots, as R's makepredictcall.ns
        basis, _, _ = ns_basis(x, None, _state["knots"], _state["intercept"], _state["Boundary_knots"])
        return _columns(basis)
    basis, inner, bk = ns_basis(x, df, knots, intercept, Boundary_knots)
    _fitted_state(_state, inner, bk, intercept)
    return _columns(basis)


@stateful_transform
def bs(x: Any, df: int | None = None, knots: Any = None, degree: int = 3, intercept: bool = False,
       Boundary_knots: Any = None, _state: dict = {}, **formulaic_args: Any) -> FactorValues:  # noqa: B006
    """R's bs() in a formula: the B-spline basis, its knots reused on newdata (R's predict).

    formulaic's own spellings (``include_intercept=``, ``lower_bound=``, ``upper_bound=``,
    ``extrapolation=``) are formulaic's bs(), as before.

    Parameters
    ----------
    x : array-like
        The variable.
    df, knots, degree, intercept, Boundary_knots :
        As R's ``bs(x, df, knots, degree, intercept, Boundary.knots)``.
    _state : dict
        formulaic's state: the knots, boundary knots, degree and intercept of the fit.
    **formulaic_args :
        formulaic's bs() arguments.

    Returns
    -------
    formulaic FactorValues
        The basis columns, named ``bs(x, df=5)[1]`` ... .
    """
    if formulaic_args or _state.get("formulaic"):
        if unknown := sorted(set(formulaic_args) - set(_FORMULAIC_ONLY)):
            raise DataError(f"bs() has no argument(s) {', '.join(unknown)}: R's are df, knots, degree, intercept, "
                            "Boundary.knots")
        inner_state = _state.setdefault("formulaic", {})
        args = dict(formulaic_args, include_intercept=formulaic_args.get("include_intercept", intercept))
        return _FORMULAIC_BS(x, df=df, knots=knots, degree=degree, _state=inner_state, **args)
    if "knots" in _state:
        basis, _, _ = bs_basis(x, None, _state["knots"], _state["degree"], _state["intercept"],
                               _state["Boundary_knots"])
        return _columns(basis)
    basis, inner, bk = bs_basis(x, df, knots, degree, intercept, Boundary_knots)
    _fitted_state(_state, inner, bk, intercept, int(degree))
    return _columns(basis)
