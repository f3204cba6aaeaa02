"""Exact least-squares solver on torch: QR of the autograd Jacobian with R's rank detection (lm.fit)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .inference import Chunks, accurate_affine, factor_jacobian, gradient, limited_pivoting

# about 8 MB of float64 per chunk: large enough for LAPACK's blocked QR, small enough for cache and memory
CHUNK_ELEMENTS = 2**20
MIN_CHUNK_ROWS = 256
# problems up to this many design elements always get doubled-precision refinement (cheap there)
ACCURATE_ELEMENTS = 2**22
# larger problems are refined (in working precision) only above this condition number
REFINE_CONDITION = 1e3


def resolve_device_dtype(device, dtype) -> tuple[torch.device, torch.dtype]:
    """torch device (default cpu) and dtype (default float64); float32 warns that digits are lost."""
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    dt = torch.float64 if dtype is None else dtype
    if isinstance(dt, str):
        dt = getattr(torch, dt, None)
    if dt not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, not {dtype!r}")
    if dt == torch.float32:
        warnings.warn(
            "fitting in float32: about 7 significant digits, fewer for ill-conditioned designs; "
            "estimates and standard errors will not match R beyond that (use the default float64)",
            stacklevel=3,
        )
    return dev, dt


def chunk_rows(n: int, p: int) -> int:
    """Rows per chunk for a p-column problem."""
    return int(max(MIN_CHUNK_ROWS, min(n, CHUNK_ELEMENTS // max(p + 1, 1))))


def linear_chunks(X: np.ndarray, y: np.ndarray, weights, offset, device, dtype) -> Chunks:
    """Residual functions e(beta) = sqrt(w) * (X beta + offset - y) of a linear model, one per row chunk."""
    n, p = X.shape
    step = chunk_rows(n, p)

    np_dtype = np.float32 if dtype == torch.float32 else np.float64

    def to(a, s, e):
        part = a[s:e]
        if part.dtype != np_dtype:
            part = part.astype(np_dtype)
        with warnings.catch_warnings():
            # the design is often a read-only pandas buffer; torch only reads it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(part).to(device)

    def gen():
        for s in range(0, n, step):
            e = min(n, s + step)
            target = to(y, s, e) if offset is None else to(y, s, e) - to(offset, s, e)
            sw = None if weights is None else to(weights, s, e).sqrt()
            yield LinearResidual(to(X, s, e), target, sw)

    return gen


class LinearResidual:
    """Residuals e(beta) = sqrt(w) * (X beta - target) of one row chunk of a linear model."""

    def __init__(self, X: torch.Tensor, target: torch.Tensor, sw: torch.Tensor | None):
        self.X, self.target, self.sw = X, target, sw

    def __call__(self, beta: torch.Tensor) -> torch.Tensor:
        r = self.X @ beta - self.target
        return r if self.sw is None else self.sw * r

    def accurate(self, beta: torch.Tensor) -> torch.Tensor:
        """The same residuals with X beta - target evaluated in doubled precision."""
        r = accurate_affine(self.X, beta, self.target)
        return r if self.sw is None else self.sw * r

    def accurate_vjp(self, e: torch.Tensor) -> torch.Tensor:
        """J^T e (the gradient's product) in doubled precision."""
        v = e if self.sw is None else self.sw * e
        return accurate_affine(self.X.T, v, torch.zeros(self.X.shape[1], dtype=v.dtype, device=v.device))


@dataclass
class QRFit:
    """Result of the least-squares solve.

    coef : (p,) with NaN for aliased columns, in formula order.
    R : (rank, rank) upper-triangular factor of sqrt(W) X over the estimable columns, in pivot order.
    pivot : column index (formula order) at each pivot position; the first `rank` are estimable.
    effects : Q^T sqrt(W)(y - offset) for the estimable columns (R's effects, used by anova).
    rss : weighted residual sum of squares from residuals in doubled precision (None: not computed).
    """

    coef: np.ndarray
    R: torch.Tensor
    pivot: list[int]
    rank: int
    effects: np.ndarray
    rss: float | None


def qr_solve(chunks: Chunks, p: int, tol: float, device, dtype, accurate: bool = True) -> QRFit:
    """Least squares by QR of the autograd Jacobian [J | e] with dqrdc2 pivoting, plus one refinement step.

    The model is linear, so one Gauss-Newton step from 0 is exact up to rounding; the refinement
    re-evaluates the gradient at that solution (autograd, with residuals in doubled precision when
    ``accurate``) and corrects with the same factor (corrected semi-normal equations). On
    ill-conditioned designs this recovers the digits lost to cancellation in y - X beta.
    Large well-conditioned problems (``accurate=False`` and condition number below
    REFINE_CONDITION) skip it: the QR solution already has all but a few digits there.
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
        if accurate or condition_estimate(R) > REFINE_CONDITION:
            g, _ = gradient(chunks, b, accurate=accurate)
            z = torch.linalg.solve_triangular(R.T, g[est].unsqueeze(1), upper=False)
            b[est] -= torch.linalg.solve_triangular(R, z, upper=True).squeeze(1)
    if accurate:
        rss = gradient(chunks, b, accurate=True)[1]
    coef = np.full(p, np.nan)
    coef[est] = b[est].cpu().double().numpy()
    return QRFit(coef=coef, R=R, pivot=pivot, rank=rank, effects=-qty.cpu().double().numpy(), rss=rss)


def condition_estimate(R: torch.Tensor) -> float:
    """2-norm condition number of the column-equilibrated triangular factor (cheap: R is rank x rank)."""
    d = torch.linalg.vector_norm(R, dim=0)
    d = torch.where(d == 0, torch.ones_like(d), d)
    return float(torch.linalg.cond(R / d))


def r_inverse_cov(R: torch.Tensor) -> torch.Tensor:
    """(R^T R)^{-1} = R^{-1} R^{-T} from the triangular factor, never forming or inverting R^T R (R's chol2inv)."""
    eye = torch.eye(R.shape[0], dtype=R.dtype, device=R.device)
    Rinv = torch.linalg.solve_triangular(R, eye, upper=True)
    return Rinv @ Rinv.T
