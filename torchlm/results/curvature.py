"""The Hessian of a summed objective by autograd, and what it says about the estimates: its inverse over the
identifiable directions, named singular combinations, negative curvature (for tl.infer and tl.mle's Estimates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.func import grad, grad_and_value, jvp, vjp, vmap

from torchlm.solvers.autograd import quiet


# --- autograd ---------------------------------------------------------------------------------
def summed_hessian(objectives: Callable, theta: torch.Tensor,
                   block: int | None = None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Value, gradient and Hessian of sum_c f_c(theta) over the objectives yielded by ``objectives()``.

    Each Hessian is built from Hessian-vector products (forward-over-reverse: jvp of grad), vmapped over
    ``block`` unit tangents at a time, so memory is one chunk of rows times one block of parameters. An
    objective using an operation without a forward-mode derivative in torch (HuberLoss, SoftMarginLoss)
    gets reverse-over-reverse products (vjp of grad) instead: the same Hessian to rounding, at more cost.

    Returns
    -------
    (value, gradient, Hessian) of the sum at theta.
    """
    k = theta.numel()
    H = torch.zeros(k, k, dtype=theta.dtype, device=theta.device)
    g = torch.zeros_like(theta)
    value = 0.0
    eye = torch.eye(k, dtype=theta.dtype, device=theta.device)
    forward = True
    for f in objectives():
        gk, v = quiet(grad_and_value(f))(theta)
        g += gk.detach()
        value += float(v.detach())
        df = grad(f)

        def hvp(t, df=df):
            return jvp(df, (theta,), (t,))[1]

        if forward:
            try:
                H += quiet(vmap(hvp, chunk_size=block))(eye).detach()
                continue
            except NotImplementedError:  # "Trying to use forward AD with ... that does not support it"
                forward = False
        pullback = quiet(vjp)(df, theta)[1]

        def hvp_reverse(t: torch.Tensor, pullback: Callable = pullback) -> torch.Tensor:
            return pullback(t)[0]

        H += quiet(vmap(hvp_reverse, chunk_size=block))(eye).detach()
    # symmetric in exact arithmetic; average away the rounding so eigh/cholesky see one matrix
    return value, g, (H + H.T) / 2


# --- curvature ------------------------------------------------------------------------------
@dataclass
class Curvature:
    """What the Hessian says about the estimates: pseudo-inverse, identifiable set, bad directions."""

    pinv: np.ndarray            # Moore-Penrose inverse over the positive-curvature space
    identifiable: np.ndarray    # bool per parameter
    flat: list[str]             # combinations along which the objective does not change
    negative: list[str]         # parameters involved in negative-curvature directions
    min_eigen: float            # smallest eigenvalue of the unit-diagonal Hessian (1 when Cholesky sufficed)
    rank: int                   # number of positive-curvature directions
    flat_basis: np.ndarray | None = None  # (p, f) orthonormal flat directions of the unit-diagonal Hessian
    unit: np.ndarray | None = None        # the unit-diagonal scaling s (H_unit = s H s)


def _combination(v: np.ndarray, names: list[str]) -> str:
    v = v / np.abs(v).max()
    # sign: the first parameter involved enters positively
    if v[np.argmax(np.abs(v) > 1e-3)] < 0:
        v = -v
    terms = [(c, n) for c, n in zip(v, names) if abs(c) > 1e-3]
    out = ""
    for c, n in terms[:6]:
        sign = "-" if c < 0 else "+"
        mag = "" if abs(abs(c) - 1) < 1e-6 else f"{abs(c):.3g}*"
        out += f" {sign} {mag}{n}" if out else ("-" if c < 0 else "") + f"{mag}{n}"
    return out + (" + ..." if len(terms) > 6 else "")


def analyse_curvature(H: np.ndarray, names: list[str], tol: float) -> Curvature:
    """Invert H after scaling it to unit diagonal; eigen-analyse it when that is not clearly positive definite.

    A direction counts as flat when its eigenvalue in the unit-diagonal scaling is within ``tol`` of 0
    (a parameter's variance inflation of 1/tol); a parameter is not identifiable when its unit vector has
    a component above 1e-5 along a flat direction.

    Returns
    -------
    Curvature
    """
    k = H.shape[0]
    d = np.diag(H).copy()
    s = 1 / np.sqrt(np.where(d != 0, np.abs(d), 1.0))
    Hs = s[:, None] * H * s[None, :]
    if np.all(d > 0):
        L, info = torch.linalg.cholesky_ex(torch.from_numpy(Hs))
        piv2 = float(L.diagonal().min()) ** 2 if info == 0 else 0.0
        if info == 0 and piv2 > tol:
            inv = torch.cholesky_inverse(L).numpy()
            return Curvature(s[:, None] * inv * s[None, :], np.ones(k, bool), [], [], 1.0, k)
    w, V = np.linalg.eigh(Hs)
    pos, flat, neg = w > tol, np.abs(w) <= tol, w < -tol
    inv = (V[:, pos] / w[pos]) @ V[:, pos].T
    in_flat = np.sqrt((V[:, flat] ** 2).sum(axis=1)) > 1e-5
    in_neg = np.sqrt((V[:, neg] ** 2).sum(axis=1)) > 1e-5
    combos = [_combination(s * V[:, j], names) for j in np.flatnonzero(flat)[:3]]
    return Curvature(
        s[:, None] * inv * s[None, :], ~(in_flat | in_neg), combos,
        [n for n, b in zip(names, in_neg) if b], float(w.min()), int(pos.sum()), V[:, flat], s,
    )
