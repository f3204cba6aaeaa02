"""Exact least-squares solver on torch: QR of the autograd Jacobian with R's rank detection (lm.fit)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from torchlm.errors import DataError, ModelInputError
from torchlm.solvers.autograd import (
    Chunks,
    accurate_affine,
    accurate_matmul,
    column_major,
    factor_jacobian,
    gradient,
    jacobian,
    limited_pivoting,
    two_prod,
)
from torchlm.sources.row_blocks import ArraySource, DesignSource, RowBlockSource, block_rows

# about 8 MB of float64 per chunk: large enough for LAPACK's blocked QR, small enough for cache and memory
CHUNK_ELEMENTS = 2**20
# problems up to this many design elements always get doubled-precision refinement (cheap there)
ACCURATE_ELEMENTS = 2**18
# larger problems are refined (in working precision) only above this condition number
REFINE_CONDITION = 1e3
# most refinement steps for small problems: of the coefficients (one pass over the data each) and of (J^T J)^{-1}
REFINE_STEPS = 4


def chunk_rows(n: int, p: int) -> int:
    """Rows per chunk for a p-column problem (CHUNK_ELEMENTS is read at call time, so tests can shrink it).

    Returns
    -------
    int
    """
    return block_rows(n, p, CHUNK_ELEMENTS)


def linear_chunks(X: Any, y: np.ndarray | None = None, weights: np.ndarray | None = None,
                  offset: np.ndarray | None = None, device: Any = None, dtype: torch.dtype = torch.float64,
                  *, columns: list[int] | None = None) -> Chunks:
    """Residual functions e(beta) = sqrt(w) * (X beta + offset - y) of a linear model, one per row block.

    Parameters
    ----------
    X : a RowBlockSource (blocks carry y, weights and offset), a Design (whose row blocks are
        assembled from its columns) or an (n, p) array.
    y, weights, offset : per-row vectors for a Design or an array (None: the Design's own).
    device, dtype : where the blocks are made.
    columns : design columns of the model (default all).

    Returns
    -------
    A callable giving an iterator of LinearResidual, one per block (re-readable: each call reads the
    source again).
    """
    if isinstance(X, RowBlockSource):
        source = X
    elif hasattr(X, "row_block"):
        source = DesignSource(X, y=y, weights=weights, offset=offset)
    else:
        if y is None:  # an array has no response of its own, unlike a Design
            raise ModelInputError("linear_chunks of an (n, p) array needs the response y")
        source = ArraySource(X, y, weights=weights, offset=offset)
    p = len(source.names) if columns is None else len(columns)
    step = chunk_rows(source.n_rows, p)
    dev = torch.device("cpu" if device is None else device)

    def gen():
        for blk in source.blocks(columns=columns, device=dev, dtype=dtype, spare=1, rows=step):
            target = blk.y if blk.offset is None else blk.y - blk.offset
            if blk.weights is None:
                # the block has a spare column, where augmented() puts the residuals: [J | e] without a copy
                yield LinearResidual(blk.X[:, :p], target, None, blk.X)
            else:
                yield LinearResidual(blk.X[:, :p], target, blk.weights.sqrt())

    return gen


class LinearResidual:
    """Residuals e(beta) = sqrt(w) * (X beta - target) of one row chunk of a linear model."""

    def __init__(self, X: torch.Tensor, target: torch.Tensor, sw: torch.Tensor | None,
                 block: torch.Tensor | None = None):
        """block : optional (rows, p + 1) tensor whose first p columns are X (unweighted chunks only)."""
        self.X, self.target, self.sw, self.block = X, target, sw, block

    def augmented(self, beta: torch.Tensor) -> torch.Tensor:
        """[J | e] at beta as one column-major block (LAPACK's layout), J = sqrt(w) X as jacobian() gives it.

        An unweighted chunk read with a spare column already holds X: only e is written. Otherwise
        sqrt(w) X is written straight into a new block, without an intermediate copy.

        Returns
        -------
        torch.Tensor
            (rows, p + 1), column-major.
        """
        block = self.block
        if block is None:
            rows, p = self.X.shape
            block = column_major(rows, p + 1, self.X)
            if self.sw is None:
                block[:, :p] = self.X
            else:
                torch.mul(self.sw.unsqueeze(1), self.X, out=block[:, :p])
        block[:, -1] = self(beta)
        return block

    def __call__(self, beta: torch.Tensor) -> torch.Tensor:
        r = self.X @ beta - self.target
        return r if self.sw is None else self.sw * r

    def jacobian(self, beta: torch.Tensor) -> torch.Tensor:
        """d e / d beta = sqrt(w) X, rounded as autograd's jacfwd rounds it (without its overhead).

        Returns
        -------
        torch.Tensor
            (rows, p).
        """
        return self.X if self.sw is None else self.sw.unsqueeze(1) * self.X

    def accurate(self, beta: torch.Tensor, tail: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The same residuals with X beta - target evaluated in doubled precision.

        tail : return (residuals, what rounding them left off), the doubled-precision residuals.

        Returns
        -------
        torch.Tensor, or the pair (residuals, their tail) with ``tail``.
        """
        r, lo = accurate_affine(self.X, beta, self.target, tail=True)
        if self.sw is not None:
            r, err = two_prod(self.sw, r)
            lo = err + self.sw * lo
        return (r, lo) if tail else r + lo

    def accurate_vjp(self, e: torch.Tensor, tail: torch.Tensor | None = None) -> torch.Tensor:
        """J^T (e + tail) (the gradient's product) in doubled precision.

        Returns
        -------
        torch.Tensor
            (p,).
        """
        v, lo = e, tail
        if self.sw is not None:
            v, err = two_prod(self.sw, e)
            lo = err if tail is None else err + self.sw * tail
        minus = torch.zeros(self.X.shape[1], dtype=v.dtype, device=v.device) if lo is None else -(self.X.T @ lo)
        return accurate_affine(self.X.T, v, minus)


@dataclass(frozen=True)
class Scaling:
    """Powers of two that bring a linear least-squares problem into float64's safe range, exactly.

    The scaled problem is (u sqrt(w)) (X diag(s)) b' ~ (u sqrt(w)) t (y - offset): its solution is
    b = s b' / t, its factor R' = u R diag(s), its residuals u t times the problem's. Multiplying by
    a power of two changes no digit (barring underflow far below a column's largest entry), so the
    scaled fit is the fit R's QR would give, without the squares of 1e300 overflowing.

    columns : (p,) factors s of the design's columns, formula order; response : t; weights : u.
    """

    columns: torch.Tensor
    response: float
    weights: float

    @property
    def residual(self) -> float:
        """Factor u t of the scaled problem's residuals (and of its effects)."""
        return self.response * self.weights


@dataclass
class QRFit:
    """Result of the least-squares solve.

    coef : (p,) with NaN for aliased columns, in formula order.
    R : (rank, rank) upper-triangular factor of sqrt(W) X over the estimable columns, in pivot order.
    pivot : column index (formula order) at each pivot position; the first `rank` are estimable.
    effects : Q^T sqrt(W)(y - offset) for the estimable columns (R's effects, used by anova).
    rss : weighted residual sum of squares from residuals in doubled precision (None: not computed;
        Inf or 0 where it is beyond float64's range: see ``scaled_rss``).
    accurate : solved with doubled-precision refinement (small problems); unscaled_cov refines too.
    scaling : the powers of two the problem was solved with (None: it was in range as given).
    R_scaled : the scaled problem's factor u R diag(s) (None without scaling).
    scaled_rss : (u t)^2 rss, computed on the scaled residuals (None without scaling or rss).
    """

    coef: np.ndarray
    R: torch.Tensor
    pivot: list[int]
    rank: int
    effects: np.ndarray
    rss: float | None
    accurate: bool = False
    scaling: Scaling | None = None
    R_scaled: torch.Tensor | None = None
    scaled_rss: float | None = None
    # unscaled_cov's and scaled_cov's results, computed on first use
    cov: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    cov_scaled: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def factor(self) -> torch.Tensor:
        """The factor the solve used (R_scaled, or R): equal to R up to column scaling, always in range."""
        return self.R if self.R_scaled is None else self.R_scaled


# a column whose largest entry lies within 2^-k .. 2^k, k = SAFE_FRACTION * log2(largest number)
# (450 in float64), is factored as given: squares and cross products of such entries neither
# overflow nor underflow, with room for sums over 2^100 rows
SAFE_FRACTION = 0.44


def in_safe_range(Raug: torch.Tensor) -> bool:
    """Whether the factor of [J | e] is finite with every column's largest entry in the safe range.

    Column norms are invariant under Q, and a column's largest entry in R is within sqrt(p + 1) of
    its norm: an overflow shows as Inf or NaN, an underflow as a column far below 1 (or zero).

    Returns
    -------
    bool
    """
    if Raug.shape[0] == 0:
        return True
    k = int(SAFE_FRACTION * math.log2(torch.finfo(Raug.dtype).max))
    big = Raug.abs().amax(dim=0)
    return bool(torch.isfinite(big).all()) and bool(((big >= 2.0**-k) & (big <= 2.0**k)).all())


def _power_of_two_below(m: torch.Tensor) -> torch.Tensor:
    """2^-e with m = f 2^e, f in [0.5, 1) (1 where m is 0): m times it is in [0.5, 1)."""
    _, e = torch.frexp(m)
    return torch.ldexp(torch.ones_like(m), -e)


def problem_scaling(chunks: Chunks, p: int, device: torch.device, dtype: torch.dtype,
                    names: list[str] | None = None) -> Scaling | None:
    """Powers of two near the largest entry of each column of X, of the response and of sqrt(w) (one pass).

    None for chunks other than LinearResidual (their X is not at hand).

    Raises
    ------
    DataError
        where an entry is not finite (a weighted column sqrt(w) x overflowing float64).

    Returns
    -------
    Scaling
    """
    xmax = torch.zeros(p, dtype=dtype, device=device)
    tmax = torch.zeros((), dtype=dtype, device=device)
    wmax = torch.zeros((), dtype=dtype, device=device)
    for fn in chunks():
        if not isinstance(fn, LinearResidual):
            return None
        if fn.X.shape[0]:
            xmax = torch.maximum(xmax, fn.X.abs().amax(dim=0))
            tmax = torch.maximum(tmax, fn.target.abs().max())
            if fn.sw is not None:
                wmax = torch.maximum(wmax, fn.sw.max())
    if not bool(torch.isfinite(xmax).all()) or not math.isfinite(float(tmax)) or not math.isfinite(float(wmax)):
        raise DataError(f"the design, response or weights have values beyond the range of {dtype} "
                        f"(largest |x| per column {_columns(xmax.tolist(), names)}, |y| {float(tmax):.3g}): "
                        "rescale them")
    return Scaling(_power_of_two_below(xmax), float(_power_of_two_below(tmax)), float(_power_of_two_below(wmax)))


def _columns(values: list[float], names: list[str] | None) -> str:
    labels = names if names is not None and len(names) == len(values) else [f"column {j + 1}"
                                                                           for j in range(len(values))]
    return "{" + ", ".join(f"{k!r}: {v:.3g}" for k, v in zip(labels, values)) + "}"


def scaled_chunks(chunks: Chunks, scaling: Scaling) -> Chunks:
    """The residual chunks of the scaled problem (see Scaling): each block's X, target and sqrt(w) scaled.

    Returns
    -------
    Chunks
    """
    s, t, u = scaling.columns, scaling.response, scaling.weights

    def gen():
        for fn in chunks():
            lin: Any = fn  # a LinearResidual (problem_scaling gives a Scaling for no other chunks)
            rows, p = lin.X.shape
            # written into a block with a spare column, as linear_chunks reads them: [J | e] without a copy
            block = column_major(rows, p + 1, lin.X)
            torch.mul(lin.X, s, out=block[:, :p])
            if lin.sw is None:
                yield LinearResidual(block[:, :p], lin.target * t, None, block)
            else:
                yield LinearResidual(block[:, :p], lin.target * t, lin.sw * u)

    return gen


def qr_solve(chunks: Chunks, p: int, tol: float, device: torch.device, dtype: torch.dtype,
             accurate: bool = True, names: list[str] | None = None) -> QRFit:
    """Least squares by QR of the autograd Jacobian [J | e] with dqrdc2 pivoting, plus iterative refinement.

    The model is linear, so one Gauss-Newton step from 0 is exact up to rounding; refinement
    re-evaluates the gradient at that solution (autograd, with residuals in doubled precision when
    ``accurate``) and corrects with the same factor (corrected semi-normal equations). On
    ill-conditioned designs this recovers the digits lost to cancellation in y - X beta.
    ``accurate`` fits repeat the correction (at most REFINE_STEPS passes) until the next one would
    be below rounding; usually two passes, the second also giving the residual sum of squares.
    Large well-conditioned problems (``accurate=False`` and condition number below
    REFINE_CONDITION) skip it: the QR solution already has all but a few digits there; the others
    get one step in working precision.

    A problem whose columns (or response, or weights) are far from 1 (1e300, 1e-300: their squares
    overflow or underflow, see in_safe_range) is factored again with each column, the response and
    sqrt(w) scaled by powers of two (Scaling), and the results are scaled back: the fit is
    scale-invariant, as R's QR is in practice. ``names`` label the columns in errors.

    Raises
    ------
    DataError
        where the data, or a coefficient, is beyond float64's range.

    Returns
    -------
    QRFit
    """
    beta0 = torch.zeros(p, device=device, dtype=dtype)
    Raug = factor_jacobian(chunks, beta0)
    scaling = None
    if not in_safe_range(Raug):
        scaling = problem_scaling(chunks, p, device, dtype, names)
        if scaling is not None:
            chunks = scaled_chunks(chunks, scaling)
            Raug = factor_jacobian(chunks, beta0)
    if not bool(torch.isfinite(Raug).all()):
        raise DataError("the weighted design sqrt(w) X or the response has values beyond the range of "
                        f"{dtype} (a column's sum of squares overflows even scaled): rescale the data or weights")
    M, pivot, rank = limited_pivoting(Raug, p, tol)
    R = torch.triu(M[:rank, :rank])
    qty = M[:rank, p]
    est = pivot[:rank]
    b = torch.zeros(p, device=device, dtype=dtype)
    rss = None
    if rank:
        b[est] = -torch.linalg.solve_triangular(R, qty.unsqueeze(1), upper=True).squeeze(1)
        rss = _refine(chunks, R, b, est, accurate)
    if accurate and rss is None:
        rss = gradient(chunks, b, accurate=True)[1]
    fit = QRFit(coef=np.full(p, np.nan), R=R, pivot=pivot, rank=rank, effects=-qty.cpu().double().numpy(),
                rss=rss, accurate=accurate)
    fit.coef[est] = b[est].cpu().double().numpy()
    return fit if scaling is None else _unscale(fit, scaling, names)


def _refine(chunks: Chunks, R: torch.Tensor, b: torch.Tensor, est: list[int], accurate: bool) -> float | None:
    """qr_solve's refinement of b (in place) by corrected semi-normal equations; the rss of accurate fits.

    Returns
    -------
    float or None
    """
    steps = REFINE_STEPS if accurate else int(condition_estimate(R) > REFINE_CONDITION)
    eps, last, rss = torch.finfo(b.dtype).eps, None, None
    for _ in range(steps):
        g, ss = gradient(chunks, b, accurate=accurate)
        # the residual sum of squares is stationary at the solution: its value before this
        # (small) correction is as accurate as after it, which saves a pass
        rss = ss if accurate else None
        z = torch.linalg.solve_triangular(R.T, g[est].unsqueeze(1), upper=False)
        d = torch.linalg.solve_triangular(R, z, upper=True).squeeze(1)
        rel = float(torch.nan_to_num(d.abs() / b[est].abs(), nan=0.0).max())
        if last is not None and rel >= last:
            break  # not contracting: rounding level reached (or cond(J) near 1 / eps)
        b[est] -= d
        # corrections shrink geometrically: the next one would be about rel * (rel / last)
        if rel <= eps or (last is not None and rel * rel <= eps * last):
            break
        last = rel
    return rss


def _unscale(fit: QRFit, scaling: Scaling, names: list[str] | None) -> QRFit:
    """The scaled problem's fit in the problem's own units (see Scaling).

    Raises
    ------
    DataError
        where a coefficient is beyond float64's range.

    Returns
    -------
    QRFit
    """
    est = fit.pivot[: fit.rank]
    s = scaling.columns.cpu().double().numpy()
    r = scaling.residual
    with np.errstate(over="ignore", under="ignore"):
        coef = fit.coef * s / scaling.response
        rss = None if fit.rss is None else fit.rss / r / r
    def labels(cols):
        return [names[j] if names is not None and len(names) == len(s) else f"column {j + 1}" for j in cols]

    if bad := [j for j in est if not np.isfinite(coef[j])]:
        raise DataError(f"the coefficients of {labels(bad)} are beyond float64's range (the response is too large "
                        "for the scale of these columns): rescale the response or the columns")
    # a non-zero coefficient that underflows (to 0 or a subnormal without its digits) would make the fitted
    # values X b wrong without a word; R gives 0 and fitted values from its QR that disagree with X b
    tiny = np.finfo(np.float64).tiny
    if lost := [j for j in est if fit.coef[j] != 0 and abs(coef[j]) < tiny]:
        raise DataError(f"the coefficients of {labels(lost)} are below float64's range (smaller than {tiny:.3g}; "
                        "the response is too small for the scale of these columns): rescale the response or "
                        "the columns (e.g. by a power of ten)")
    s_est = scaling.columns[est] * scaling.weights
    return QRFit(coef=coef, R=fit.R / s_est, pivot=fit.pivot, rank=fit.rank, effects=fit.effects / r, rss=rss,
                 accurate=fit.accurate, scaling=scaling, R_scaled=fit.R, scaled_rss=fit.rss)


def condition_estimate(R: torch.Tensor) -> float:
    """2-norm condition number of the column-equilibrated triangular factor (cheap: R is rank x rank).

    Returns
    -------
    float
    """
    d = torch.linalg.vector_norm(R, dim=0)
    d = torch.where(d == 0, torch.ones_like(d), d)
    return float(torch.linalg.cond(R / d))


def r_inverse_cov(R: torch.Tensor) -> torch.Tensor:
    """(R^T R)^{-1} = R^{-1} R^{-T} from the triangular factor, never forming or inverting R^T R (R's chol2inv).

    Returns
    -------
    torch.Tensor
        (rank, rank), in pivot order.
    """
    eye = torch.eye(R.shape[0], dtype=R.dtype, device=R.device)
    Rinv = torch.linalg.solve_triangular(R, eye, upper=True)
    return Rinv @ Rinv.T


def unscaled_cov(qr: QRFit, chunks: Chunks) -> torch.Tensor:
    """(J^T J)^{-1} over the estimable columns, in pivot order: r_inverse_cov, refined for ``accurate`` float64 fits.

    A scaled fit (QRFit.scaling) inverts its scaled factor and scales the result back: entries
    beyond float64's range come out as 0 or Inf (as R's chol2inv gives them); scaled_cov gives
    the representable parts.

    qr : the fit; the result is cached on it.
    chunks : the residual chunks it was fitted from (for J).

    Returns
    -------
    torch.Tensor
        (rank, rank), in pivot order.
    """
    if qr.cov is None:
        C, d = scaled_cov(qr, chunks)
        qr.cov = C if qr.scaling is None else d.unsqueeze(1) * C * d.unsqueeze(0)
    return qr.cov


def scaled_cov(qr: QRFit, chunks: Chunks) -> tuple[torch.Tensor, torch.Tensor]:
    """(C', d) with (J^T J)^{-1} = d_i d_j C'_ij (pivot order): the inverse of the fit's scaled factor and its scale.

    C' is in float64's range wherever the fit is (d is 1 for a fit solved unscaled): hat values
    and other scale-free quantities are computed from it, with the columns of J times d.

    Returns
    -------
    (torch.Tensor (rank, rank), torch.Tensor (rank,))
    """
    if qr.cov_scaled is None:
        R = qr.factor
        C = r_inverse_cov(R)
        # well-conditioned factors already give C to about cond * eps: refining them buys nothing visible
        if qr.accurate and qr.rank and C.dtype == torch.float64 and condition_estimate(R) > REFINE_CONDITION:
            if qr.scaling is None:
                beta = torch.as_tensor(np.nan_to_num(qr.coef), dtype=C.dtype, device=C.device)
            else:
                # a linear residual's Jacobian does not depend on beta
                chunks, beta = scaled_chunks(chunks, qr.scaling), torch.zeros(len(qr.coef), dtype=C.dtype,
                                                                              device=C.device)
            C = refine_inverse_cov(chunks, beta, R, qr.pivot[: qr.rank], C)
        qr.cov_scaled = C
    return qr.cov_scaled, cov_scale(qr)


def cov_scale(qr: QRFit) -> torch.Tensor:
    """d (pivot order) with (J^T J)^{-1} = d_i d_j (J'^T J')^{-1}_ij: u s_j of a scaled fit, else ones.

    Returns
    -------
    torch.Tensor
        (rank,).
    """
    est = qr.pivot[: qr.rank]
    if qr.scaling is None:
        return torch.ones(len(est), dtype=qr.factor.dtype, device=qr.factor.device)
    return qr.scaling.columns[est] * qr.scaling.weights


def factor_cov(qr: QRFit) -> torch.Tensor:
    """r_inverse_cov of the fit's factor, in the problem's units (scaled back for a scaled fit).

    Returns
    -------
    torch.Tensor
        (rank, rank), in pivot order.
    """
    C = r_inverse_cov(qr.factor)
    d = cov_scale(qr)
    return C if qr.scaling is None else d.unsqueeze(1) * C * d.unsqueeze(0)


def log10_variances(qr: QRFit) -> np.ndarray:
    """log10 of the diagonal of (J^T J)^{-1} (pivot order), computed scaled: finite where the entries are not.

    Returns
    -------
    numpy.ndarray
        (rank,).
    """
    c = r_inverse_cov(qr.factor).diagonal().cpu().double().numpy()
    return np.log10(c) + 2 * np.log10(cov_scale(qr).cpu().double().numpy())


def refine_inverse_cov(chunks: Chunks, beta: torch.Tensor, R: torch.Tensor, est: list[int],
                       C: torch.Tensor) -> torch.Tensor:
    """(J^T J)^{-1} from its approximation C = (R^T R)^{-1} by Newton-Schulz steps C <- C + C (I - J^T J C).

    The triangular factor is exact only for a J perturbed by rounding, which costs (R^T R)^{-1}
    about cond(J) * eps relative (NIST Wampler3-5: two digits). Each step squares that error if
    I - J^T J C is computed in doubled precision: J^T J is accumulated by error-free slice
    products (inference.accurate_matmul) to about eps / cond(J)^2, and so is its product with C.

    chunks : residual chunks; J is their autograd Jacobian at beta, columns est.
    R : triangular factor of J[:, est] (rank x rank).
    C : r_inverse_cov(R).
    Returns C unchanged where the steps do not converge (cond(J) near 1 / eps).
    """
    k = R.shape[0]
    t = 1 - round(math.log2(torch.finfo(C.dtype).eps))
    # scale the columns by powers of two near their norms (exactly): accurate_matmul's error is
    # relative to row and column maxima, which then are about 1 for J^T J and match C's scale
    _, e = torch.frexp(torch.linalg.vector_norm(R, dim=0))
    s = torch.ldexp(torch.ones_like(C[0]), -e)
    S = s.unsqueeze(1) * s.unsqueeze(0)
    Cs = C / S
    # squared Frobenius condition number of the scaled factor (within a factor 4): an error of
    # 2^-bits per entry of the scaled J^T J moves the result by about k * cond2 * 2^-bits relative;
    # past 2t bits the unevaluated sums hi + lo cannot hold more
    cond2 = float(k * Cs.diagonal().sum())
    if not math.isfinite(cond2):
        return C
    bits = min(t + math.ceil(math.log2(max(k * cond2, 1.0))) + 2, 2 * t + 8)
    acc: tuple[torch.Tensor, torch.Tensor] | None = None
    for fn in chunks():
        J = jacobian(fn, beta)[:, est] * s
        acc = accurate_matmul(J.T, None, bits, acc)
    if acc is None:  # no rows: no J^T J to refine against
        return C
    Gh, Gl = acc
    eye = torch.eye(k, dtype=C.dtype, device=C.device)
    last = None
    for _ in range(REFINE_STEPS):
        Eh, El = accurate_matmul(-Gh, Cs, bits, (eye, -(Gl @ Cs)))
        dC = Cs @ (Eh + El)
        r = Cs.diagonal().abs().sqrt()
        rel = float((dC.abs() / (r.unsqueeze(1) * r)).max())
        if not math.isfinite(rel) or rel > 0.5 or (last is not None and rel >= last):
            # not contracting: the first step's C was too far off, or rounding is reached
            if last is None:
                return C
            break
        Cs = Cs + dC
        Cs = (Cs + Cs.T) / 2
        if rel * rel <= 2 ** -t:
            break
        last = rel
    return Cs * S
