"""Exact least-squares solver on torch: QR of the autograd Jacobian with R's rank detection (lm.fit)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from torchlm.errors import ModelInputError, OptionError
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


def resolve_device_dtype(device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    """torch device (default cpu) and dtype (default float64); float32 warns that digits are lost.

    Returns
    -------
    (torch.device, torch.dtype)
    """
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as e:
        raise OptionError(f"device {device!r} is not a torch device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r} requested but CUDA is not available")
    dt = torch.float64 if dtype is None else dtype
    if isinstance(dt, str):
        dt = getattr(torch, dt, None)
    if dt not in (torch.float64, torch.float32):
        raise OptionError(f"dtype must be torch.float64 or torch.float32, not {dtype!r}")
    if dt == torch.float32:
        warnings.warn(
            "fitting in float32: about 7 significant digits, fewer for ill-conditioned designs; "
            "estimates and standard errors will not match R beyond that (use the default float64)",
            stacklevel=3,
        )
    return dev, dt


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


@dataclass
class QRFit:
    """Result of the least-squares solve.

    coef : (p,) with NaN for aliased columns, in formula order.
    R : (rank, rank) upper-triangular factor of sqrt(W) X over the estimable columns, in pivot order.
    pivot : column index (formula order) at each pivot position; the first `rank` are estimable.
    effects : Q^T sqrt(W)(y - offset) for the estimable columns (R's effects, used by anova).
    rss : weighted residual sum of squares from residuals in doubled precision (None: not computed).
    accurate : solved with doubled-precision refinement (small problems); unscaled_cov refines too.
    """

    coef: np.ndarray
    R: torch.Tensor
    pivot: list[int]
    rank: int
    effects: np.ndarray
    rss: float | None
    accurate: bool = False
    # unscaled_cov's result, computed on first use
    cov: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)


def qr_solve(chunks: Chunks, p: int, tol: float, device: torch.device, dtype: torch.dtype,
             accurate: bool = True) -> QRFit:
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

    Returns
    -------
    QRFit
    """
    beta0 = torch.zeros(p, device=device, dtype=dtype)
    Raug = factor_jacobian(chunks, beta0)
    M, pivot, rank = limited_pivoting(Raug, p, tol)
    R = torch.triu(M[:rank, :rank])
    qty = M[:rank, p]
    est = pivot[:rank]
    b = torch.zeros(p, device=device, dtype=dtype)
    rss = None
    if rank:
        b[est] = -torch.linalg.solve_triangular(R, qty.unsqueeze(1), upper=True).squeeze(1)
        steps = REFINE_STEPS if accurate else int(condition_estimate(R) > REFINE_CONDITION)
        eps, last = torch.finfo(dtype).eps, None
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
    if accurate and rss is None:
        rss = gradient(chunks, b, accurate=True)[1]
    coef = np.full(p, np.nan)
    coef[est] = b[est].cpu().double().numpy()
    return QRFit(coef=coef, R=R, pivot=pivot, rank=rank, effects=-qty.cpu().double().numpy(), rss=rss,
                 accurate=accurate)


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

    qr : the fit; the result is cached on it.
    chunks : the residual chunks it was fitted from (for J).

    Returns
    -------
    torch.Tensor
        (rank, rank), in pivot order.
    """
    if qr.cov is None:
        C = r_inverse_cov(qr.R)
        # well-conditioned factors already give C to about cond * eps: refining them buys nothing visible
        if qr.accurate and qr.rank and C.dtype == torch.float64 and condition_estimate(qr.R) > REFINE_CONDITION:
            beta = torch.as_tensor(np.nan_to_num(qr.coef), dtype=C.dtype, device=C.device)
            C = refine_inverse_cov(chunks, beta, qr.R, qr.pivot[: qr.rank], C)
        qr.cov = C
    return qr.cov


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
