"""Autograd inference engine: Jacobians, gradients and Hessians of a sum-of-squares objective over row chunks.

A model is described by a residual function ``e(beta, chunk)`` whose objective is ``0.5 * sum(e**2)``.
Everything here works chunk by chunk, so memory stays bounded at large n, and on any torch device.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch
from torch.func import hessian, jacfwd, vjp

ResidualFn = Callable[[torch.Tensor], torch.Tensor]
# each chunk yields a residual function of beta (closed over that chunk's rows)
Chunks = Callable[[], Iterable[ResidualFn]]


def quiet(f):
    """f with torch 2.13's internal `torch.jit.script` deprecation warning (raised inside torch.func) silenced."""

    def g(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            return f(*args)

    return g


def factor_jacobian(chunks: Chunks, beta: torch.Tensor) -> torch.Tensor:
    """R factor of the QR of [J | e] (autograd Jacobian J of the residuals, residuals e) at beta.

    Accumulated over chunks (TSQR): R_k = qr([R_{k-1}; J_k | e_k]).R, so Q is never formed and
    memory is one chunk. The result is (min(n, p+1), p+1); R^T R = [J e]^T [J e].
    A problem that fits in one chunk is factored with unblocked Householder steps, LINPACK's
    (and so R's) arithmetic, which on ill-conditioned designs (NIST Longley) keeps about two
    more digits of R^{-1} than LAPACK's blocked QR; larger problems use LAPACK per chunk.
    """
    R, blocks = None, 0
    for fn in chunks():
        J = quiet(jacfwd(fn))(beta)
        block = torch.cat([J, fn(beta).unsqueeze(1)], dim=1)
        if R is None:
            R = block
        else:
            # merge triangular factors: qr([R_prev; qr(block).R]) avoids copying R_prev into every chunk
            Rb = torch.linalg.qr(block, mode="r").R
            if blocks == 1:
                R = torch.linalg.qr(R, mode="r").R
            R = torch.linalg.qr(torch.cat([R, Rb], dim=0), mode="r").R
        blocks += 1
    if blocks == 1:
        R = householder_qr(R)
    return R


def householder_qr(A: torch.Tensor) -> torch.Tensor:
    """R factor of A by unblocked Householder reflections (rows beyond the factor dropped)."""
    M = A.clone()
    m, k = M.shape
    for l in range(min(m - 1, k)):
        householder_step(M, l)
    return torch.triu(M[: min(m, k)])


def gradient(chunks: Chunks, beta: torch.Tensor, accurate: bool = False) -> tuple[torch.Tensor, float]:
    """Gradient J^T e of 0.5 * sum(e**2) at beta (autograd vector-Jacobian product) and sum(e**2).

    accurate: evaluate the residuals e in doubled precision (the chunk's ``accurate`` method), so
    that cancellation in y - X beta does not limit the gradient; the product with J^T stays autograd.
    """
    g = torch.zeros_like(beta)
    ss = 0.0
    for fn in chunks():
        if accurate:
            e = fn.accurate(beta)
            g += fn.accurate_vjp(e)
        else:
            e, pullback = vjp(fn, beta)
            g += pullback(e)[0]
        ss += float(e @ e)
    return g, ss


def objective_hessian(chunks: Chunks, beta: torch.Tensor) -> torch.Tensor:
    """Hessian of 0.5 * sum(e**2) at beta, with torch.func.hessian (forward-over-reverse), summed over chunks."""
    H = torch.zeros(beta.numel(), beta.numel(), dtype=beta.dtype, device=beta.device)
    for fn in chunks():
        H += quiet(hessian(lambda b: 0.5 * fn(b).square().sum()))(beta)
    return H


def householder_step(M: torch.Tensor, l: int) -> None:
    """Apply, in place, the Householder reflection that zeroes M[l+1:, l] to M[l:, l:]."""
    x = M[l:, l]
    nrm = torch.linalg.vector_norm(x)
    if nrm == 0:
        return
    alpha = -nrm if x[0] >= 0 else nrm
    v = x.clone()
    v[0] -= alpha
    vv = v @ v
    if vv == 0:
        return
    M[l:, l:] -= torch.outer(v, (2.0 / vv) * (v @ M[l:, l:]))


def limited_pivoting(M: torch.Tensor, p: int, tol: float) -> tuple[torch.Tensor, list[int], int]:
    """R's LINPACK dqrdc2 rank detection, run on a small triangular factor M of [X | y].

    A column whose norm, after removing the span of the columns accepted before it, falls below
    ``tol`` times its original norm is moved to the end; the others keep formula order. Columns
    of M past p (the response) are carried along and never pivoted. Norms are invariant under the
    orthogonal Q, so working on M gives the same decisions as working on X.

    Returns (reduced M, pivot: original column index at each position, rank).
    """
    M = M.clone()
    m = M.shape[0]
    ref = torch.linalg.vector_norm(M[:, :p], dim=0)
    ref = torch.where(ref == 0, torch.ones_like(ref), ref)
    perm = list(range(p))
    # fast path: M is upper triangular, so until the first pivot the reduced norm of column l is |M[l, l]|
    lup = min(m, p)
    diag = M.diagonal()[:lup].abs()
    bad = (diag < tol * ref[:lup]).nonzero()
    start = int(bad[0]) if len(bad) else lup
    kc = p
    for l in range(start, lup):
        while l < kc and torch.linalg.vector_norm(M[l:, l]) < tol * ref[l]:
            order = list(range(l)) + list(range(l + 1, p)) + [l] + list(range(p, M.shape[1]))
            M = M[:, order]
            ref = ref[order[:p]]
            perm = [perm[j] for j in order[:p]]
            kc -= 1
        if l < m - 1:
            householder_step(M, l)
    return M, perm, min(kc, m)


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Dekker's split into two half-width parts, so products of the parts are exact
    c = (134217729.0 if a.dtype == torch.float64 else 4097.0) * a
    hi = c - (c - a)
    return hi, a - hi


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def accurate_affine(X: torch.Tensor, beta: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
    """X @ beta - minus, as if computed in twice the working precision (Ogita-Rump-Oishi Dot2), rounded once."""
    P = X * beta
    xh, xl = _split(X)
    bh, bl = _split(beta.expand_as(X))
    err = (((xh * bh - P) + xh * bl + xl * bh) + xl * bl).sum(dim=1)
    terms = torch.cat([P, -minus.unsqueeze(1)], dim=1)
    while terms.shape[1] > 1:
        if terms.shape[1] % 2:
            terms = torch.cat([terms, torch.zeros_like(terms[:, :1])], dim=1)
        terms, e = _two_sum(terms[:, 0::2], terms[:, 1::2])
        err = err + e.sum(dim=1)
    return terms[:, 0] + err
