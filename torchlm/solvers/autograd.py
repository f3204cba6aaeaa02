"""Autograd inference engine: Jacobians, gradients and Hessians of a sum-of-squares objective over row chunks.

A model is described by a residual function ``e(beta, chunk)`` whose objective is ``0.5 * sum(e**2)``.
Everything here works chunk by chunk, so memory stays bounded at large n, and on any torch device.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Any, Callable, Iterable, Literal, overload

import torch
from torch.func import hessian, jacfwd, jacrev, vjp

ResidualFn = Callable[[torch.Tensor], torch.Tensor]
# each chunk yields a residual function of beta (closed over that chunk's rows)
Chunks = Callable[[], Iterable[ResidualFn]]


# torch.func's forward mode (jvp, jacfwd, hessian) keeps its state in process globals, not per thread: the
# Python counters torch._functorch.eager_transforms.JVP_NESTING and torch.autograd.forward_ad._current_level
# and one C++ forward-AD level (a second live level is refused). Two threads inside it at once share that
# level: one raises ("no level exists") or has its tangents dropped when the other exits the level, which
# gives a zero Hessian, a (0, 0) vcov or a wrong number without an error. Reverse mode (grad, vjp, vmap)
# keeps its state per thread. Every torch.func region torchlm runs is wrapped by quiet(), which holds this
# one lock: an uncontended acquire costs well under a microsecond, and concurrent fits give the serial
# numbers bit for bit. The alternative, reverse-over-reverse Hessians and Jacobians (jacrev), would need no
# lock but costs more per call for every fit (a residual Jacobian by rows of reverse passes) and rounds
# differently from the results the tests pin to R. Re-entrant: regions nest (quiet inside quiet, jvp inside
# vmap inside quiet). No region waits for torchlm.threads' pool, whose threads only factor and multiply
# blocks (forward-mode passes run in the calling thread), so the lock cannot deadlock with the pool; a
# region runs the user's model or nll, which must not wait for another thread that needs torch.func.
# A user's own torch.func forward mode in another thread, outside torchlm, is not covered.
_FUNC_LOCK = threading.RLock()
_decompositions_loaded = False


def _load_jvp_decompositions() -> None:
    """Import torch's forward-AD decompositions once, with the lock held, silencing the warnings it raises.

    Forward mode imports torch._decomp.decompositions_for_jvp on its first use, and that import calls
    torch.jit.script, which torch 2.13 deprecates with a DeprecationWarning per function. That import is
    the only source of the warning, so it is done here once; afterwards no region touches the warnings
    filters, which are process-global (warnings.catch_warnings is not thread-safe before Python 3.14).
    """
    global _decompositions_loaded
    # torch loads them under this condition only (torch.autograd.forward_ad._maybe_load_decompositions)
    if _decompositions_loaded or os.environ.get("PYTORCH_JIT", "1") != "1" or not __debug__:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
        try:
            import torch._decomp.decompositions_for_jvp  # noqa: F401
        except ImportError:  # a torch without it (or a later one that moved it): nothing to preload
            pass
    _decompositions_loaded = True


def quiet(f: Callable[..., Any]) -> Callable[..., Any]:
    """f run as a torch.func region: serialized across threads, without torch's torch.jit.script warning.

    torch.func's forward mode is process-global state (see ``_FUNC_LOCK``): the region holds one
    re-entrant lock, so fits from several threads give the serial results. The first region
    preloads the forward-AD decompositions, the only source of torch 2.13's internal
    ``torch.jit.script`` deprecation warning, with that warning filtered.

    Returns
    -------
    callable
        f, run with the lock held.
    """

    def g(*args: Any, **kwargs: Any) -> Any:
        with _FUNC_LOCK:
            _load_jvp_decompositions()
            return f(*args, **kwargs)

    return g


def func_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Jacobian of f at x by forward mode (torch.func.jacfwd), or by reverse mode (jacrev) where an operation
    in f has no forward-mode derivative in torch (HuberLoss, SoftMarginLoss): the same derivatives, to rounding.

    Returns
    -------
    torch.Tensor
        f(x).shape + x.shape.
    """
    try:
        return quiet(jacfwd(f))(x)
    except NotImplementedError:  # "Trying to use forward AD with ... that does not support it"
        return quiet(jacrev(f))(x)


def jacobian(fn: ResidualFn, beta: torch.Tensor) -> torch.Tensor:
    """Jacobian of the residual function fn at beta: autograd (torch.func.jacfwd), or fn's own ``jacobian``.

    A linear residual sqrt(w) (X beta - y) knows its Jacobian, sqrt(w) X, exactly as jacfwd computes
    it; supplying it skips the batched product X @ I that forward mode would spend on it.

    Returns
    -------
    torch.Tensor
        (rows, p).
    """
    if hasattr(fn, "jacobian"):
        return fn.jacobian(beta)
    return quiet(jacfwd(fn))(beta)


def factor_jacobian(chunks: Chunks, beta: torch.Tensor) -> torch.Tensor:
    """R factor of the QR of [J | e] (autograd Jacobian J of the residuals, residuals e) at beta.

    Accumulated over chunks (TSQR): R_k = qr([R_{k-1}; qr(J_k | e_k).R]).R, so Q is never formed.
    A problem that fits in one chunk is factored with unblocked Householder steps, LINPACK's
    (and so R's) arithmetic, which on ill-conditioned designs (NIST Longley) keeps about two
    more digits of R^{-1} than LAPACK's blocked QR; larger problems use LAPACK per chunk.

    On the CPU the chunk QRs run in parallel, each with one intra-op thread, on the threads that
    :mod:`torchlm.threads` allows (serially from a thread other than the main one, or under
    ``threads.limit(1)``), and are merged in chunk order in the calling thread, also with one
    thread: R is the same bit for bit whatever the number of threads. At most two chunks per pool
    thread are in memory at once. Chunks must be independent: a residual object stays valid after
    later ones are drawn.

    Parameters
    ----------
    chunks : callable returning the residual objects of the row chunks, in row order.
    beta : (p,) point at which J and e are evaluated.

    Returns
    -------
    torch.Tensor
        (min(n, p+1), p+1) upper-triangular R with R^T R = [J e]^T [J e]; (0, p+1) without chunks.
    """
    import itertools

    from torchlm import threads

    def block_of(fn: Any) -> torch.Tensor:
        if hasattr(fn, "augmented"):
            return fn.augmented(beta)
        J = jacobian(fn, beta)
        block = column_major(J.shape[0], J.shape[1] + 1, J)
        block[:, :-1] = J
        block[:, -1] = fn(beta)
        return block

    def r_factor(item: Any) -> torch.Tensor:
        # item: a residual object whose block the pool thread builds, or a block built by the caller
        block = block_of(item) if hasattr(item, "augmented") else item
        return torch.linalg.qr(block, mode="r").R

    def merge(R: torch.Tensor | None, Rb: torch.Tensor) -> torch.Tensor:
        # qr([R_prev; qr(block).R]) avoids copying R_prev into every chunk
        return Rb if R is None else torch.linalg.qr(torch.cat([R, Rb], dim=0), mode="r").R

    it = iter(chunks())
    first = next(it, None)
    if first is None:
        return torch.zeros(0, beta.numel() + 1, dtype=beta.dtype, device=beta.device)
    second = next(it, None)
    if second is None:
        return householder_qr(block_of(first))
    rest = itertools.chain((first, second), it)
    del first, second
    if beta.device.type != "cpu":
        R = r_factor(block_of(next(rest)))
        for fn in rest:
            R = merge(R, r_factor(block_of(fn)))
        return R
    # autograd Jacobians are taken in the calling thread, so that pool threads never wait for quiet()'s
    # lock on torch.func while the caller holds it; blocks of residuals with an ``augmented`` method
    # (no autograd) are built by the pool
    items = (fn if hasattr(fn, "augmented") else block_of(fn) for fn in rest)
    R = threads.reduce_chunks(r_factor, items, merge)
    return R


def column_major(rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """An empty (rows, cols) tensor stored column by column, as LAPACK takes it (torch.cat would build it
    row-major, and the QR would copy it again).

    Returns
    -------
    torch.Tensor
        uninitialised, with strides (1, rows).
    """
    return torch.empty((cols, rows), dtype=like.dtype, device=like.device).T


def householder_qr(A: torch.Tensor) -> torch.Tensor:
    """R factor of A by unblocked Householder reflections (rows beyond the factor dropped).

    Returns
    -------
    torch.Tensor
        (min(m, k), k) upper triangular.
    """
    M = A.clone()
    m, k = M.shape
    for l in range(min(m - 1, k)):
        householder_step(M, l)
    return torch.triu(M[: min(m, k)])


def gradient(chunks: Chunks, beta: torch.Tensor, accurate: bool = False) -> tuple[torch.Tensor, float]:
    """Gradient J^T e of 0.5 * sum(e**2) at beta (autograd vector-Jacobian product) and sum(e**2).

    accurate: evaluate the residuals e and J^T e in doubled precision (the chunk's ``accurate`` and
    ``accurate_vjp`` methods), so that cancellation in y - X beta does not limit the gradient. The
    residuals enter J^T e unrounded: where they are large (NIST Wampler5) the change that the
    gradient must see lies below their last bit.

    Returns
    -------
    (torch.Tensor, float)
        the gradient (p,) and the sum of squared residuals.
    """
    g = torch.zeros_like(beta)
    ss = 0.0
    for fn in chunks():
        if accurate:
            # only a residual with doubled-precision methods (LinearResidual) can be asked for them
            acc_fn: Any = fn
            e, lo = acc_fn.accurate(beta, tail=True)
            g += acc_fn.accurate_vjp(e, lo)
        else:
            e, pullback = vjp(fn, beta)[:2]
            g += pullback(e)[0]
        ss += float(e @ e)
    return g, ss


def objective_hessian(chunks: Chunks, beta: torch.Tensor) -> torch.Tensor:
    """Hessian of 0.5 * sum(e**2) at beta, with torch.func.hessian (forward-over-reverse), summed over chunks.

    Returns
    -------
    torch.Tensor
        (p, p).
    """
    H = torch.zeros(beta.numel(), beta.numel(), dtype=beta.dtype, device=beta.device)
    for fn in chunks():
        H += quiet(hessian(lambda b, fn=fn: 0.5 * fn(b).square().sum()))(beta)
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


def two_prod(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a * b as the unevaluated sum p + e, exactly (Dekker's product; no fused multiply-add needed).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        the rounded product and its exact error.
    """
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@overload
def accurate_affine(X: torch.Tensor, beta: torch.Tensor, minus: torch.Tensor,
                    tail: Literal[False] = False) -> torch.Tensor: ...


@overload
def accurate_affine(X: torch.Tensor, beta: torch.Tensor, minus: torch.Tensor,
                    tail: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]: ...


def accurate_affine(X: torch.Tensor, beta: torch.Tensor, minus: torch.Tensor,
                    tail: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """X @ beta - minus, as if computed in twice the working precision (Ogita-Rump-Oishi Dot2), rounded once.

    tail : return the pair (value, what rounding it left off) instead, the doubled-precision result.

    Returns
    -------
    torch.Tensor, or the pair (value, tail) with ``tail``
    """
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
    return _two_sum(terms[:, 0], err) if tail else terms[:, 0] + err


def _slice_bits(dtype: torch.dtype, inner: int) -> tuple[int, int, int]:
    # precision t, bits per slice b and log2(inner): a product of two slices sums inner terms of
    # 2b bits each, which must stay below 2^t to be exact
    t = 1 - round(math.log2(torch.finfo(dtype).eps))
    log_inner = max(inner - 1, 1).bit_length()
    return t, (t - log_inner) // 2, log_inner


def _ozaki_slices(A: torch.Tensor, inner: int, bits: int) -> list[torch.Tensor]:
    """Split A into slices, row by row, whose products over ``inner`` terms are exact (Ozaki, Ogita, Oishi, Rump 2012).

    A : (m, inner) matrix, the left factor of a product (pass B.T for a right factor B).
    inner : length of the inner products the slices will enter.
    bits : what the slices leave off is below 2^-bits / (4 inner) of each row's largest entry.
    """
    t, b, log_inner = _slice_bits(A.dtype, inner)
    out = []
    for _ in range(-(-(bits + log_inner + 2) // b)):
        # sigma = 0.75 * 2^(e + t - b) with the row maximum < 2^e: A + sigma lies in [sigma - 2^e, sigma + 2^e]
        # where doubles are 2^(e - b) apart, so (A + sigma) - sigma is A rounded to that grid, and exact
        _, e = torch.frexp(A.abs().amax(dim=1, keepdim=True))
        sigma = torch.ldexp(torch.full_like(A[:, :1], 0.75), e + (t - b))
        S = (A + sigma) - sigma
        out.append(S)
        A = A - S
    return out


def accurate_matmul(A: torch.Tensor, B: torch.Tensor | None, bits: int,
                    acc: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A @ B (A @ A.T where B is None) added to acc as an unevaluated sum hi + lo, to about 2^-bits relative.

    Every product of slices is exact and runs as an ordinary matrix product, so the cost is a few
    BLAS calls; the sum of the exact products is kept in doubled precision (TwoSum).

    A : (m, inner); B : (inner, n) or None.
    bits : relative accuracy, against the row maxima of A times the column maxima of B.
    acc : (hi, lo) to add to; default zero.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        hi and lo, the unevaluated sum.
    """
    inner = A.shape[1]
    left = _ozaki_slices(A, inner, bits)
    right = left if B is None else _ozaki_slices(B.T, inner, bits)
    t, b, log_inner = _slice_bits(A.dtype, inner)
    k = len(left)
    # slice s (from 0) is below 2^(-s b) of its row's maximum: the pairs left out, s + u >= k, add up
    # to about 2^-bits of the maxima's product; from level s + u >= plain on, rounding their sum in
    # working precision costs no more than that, so only the larger products need TwoSum
    plain = max(1, -(-(bits - t + log_inner + 3 * k.bit_length() + 1) // b))
    # A @ A.T = M + M.T with M the products s < u plus half those s = u: half the products
    hi: torch.Tensor | None = None
    lo: torch.Tensor | None = None
    small: torch.Tensor | None = None
    for s in range(k):
        for u in range(s if B is None else 0, k - s):
            P = left[s] @ right[u].T
            if B is None and u == s:
                P = P / 2
            if s + u >= plain:
                small = P if small is None else small + P
            elif hi is None or lo is None:
                hi, lo = P, torch.zeros_like(P)
            else:
                hi, e = _two_sum(hi, P)
                lo = lo + e
    if hi is None or lo is None:
        # k >= 1 slices always give the product s = u = 0 (level 0 < plain): unreachable
        raise RuntimeError("accurate_matmul formed no product")  # internal
    if small is not None:
        hi, e = _two_sum(hi, small)
        lo = lo + e
    if B is None:
        hi, e = _two_sum(hi, hi.T)
        lo = e + (lo + lo.T)
    if acc is not None:
        hi, e = _two_sum(acc[0], hi)
        lo = acc[1] + (e + lo)
    return hi, lo
