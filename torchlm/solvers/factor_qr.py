"""R's QR of a design with one many-level factor, from the factor's codes: never the n x L dummy block.

The design R's lm would build is Z = [1, X_before, D C, X_after]: the factor enters as its dummies D
(one non-zero per row) times its contrasts C. Its QR in formula order, with dqrdc2's rank detection,
is what lm.fit gives (coefficients, R, effects, the aliased pattern). Z has the same column space as
Z0 = [D, X] (X: the numeric columns without the intercept), whose QR is structured:

    R0 = [[diag(s), D'WX / s], [0, R_X]],   Q0'y = [D'Wy / s ; Q_X' sqrt(W) y~]

with s = sqrt of the levels' weight sums and R_X the QR factor of the within-transformed sqrt(W) X~
(n x k: the only pass over the rows that is not a group sum). Z = Q0 (R0 M), M the small matrix writing
Z's columns in Z0's (the intercept is D 1, a contrast column D c); the QR of the (L + k) x (L + k)
matrix R0 M is Z's own factor in formula order, and dqrdc2 run on it makes R's decisions, since
column norms are invariant under Q0. So the cost is O(n k^2 + n L-free group sums + (L + k)^3): for
500 levels and n = 1e6 a fraction of a second, where the dense QR is O(n (L + k)^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from torchlm.errors import ModelInputError
from torchlm.solvers.absorb import Absorber
from torchlm.solvers.autograd import limited_pivoting
from torchlm.solvers.least_squares import QRFit


@dataclass(frozen=True)
class FactorBlock:
    """Where and how the factor sits in the design.

    Parameters
    ----------
    codes : (n,) int64 level codes, every level present.
    contrasts : (L, m) the factor's coding (treatment: the identity without its first column).
    position : index in the design's columns where the m factor columns start.
    """

    codes: torch.Tensor
    contrasts: torch.Tensor
    position: int

    @property
    def levels(self) -> int:
        """L."""
        return int(self.contrasts.shape[0])

    @property
    def width(self) -> int:
        """m, the factor's columns in the design."""
        return int(self.contrasts.shape[1])


def _column_map(X: torch.Tensor, intercept: int | None, block: FactorBlock) -> tuple[torch.Tensor, list[int]]:
    """M with Z = [D, X_nc] M, and the positions of X_nc's columns among X's."""
    L, m = block.levels, block.width
    nc = [j for j in range(X.shape[1]) if j != intercept]
    p = X.shape[1] + m
    M = X.new_zeros((L + len(nc), p))
    col = 0
    for j in range(X.shape[1] + 1):
        if j == block.position:
            M[:L, col:col + m] = block.contrasts
            col += m
        if j == X.shape[1]:
            break
        if j == intercept:
            M[:L, col] = 1.0
        else:
            M[L + nc.index(j), col] = 1.0
        col += 1
    return M, nc


def factor_qr(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, block: FactorBlock, *,
              intercept: int | None, tol: float = 1e-7) -> tuple[QRFit, torch.Tensor]:
    """lm.fit of [X with the factor's columns inserted at ``block.position``] on y, from the factor's codes.

    Parameters
    ----------
    X : (n, k) the design's other columns, in formula order (the intercept among them at ``intercept``).
    y : (n,) response; w : (n,) prior weights or None.
    block : the factor.
    intercept : position of the intercept column in X, or None (the contrasts must then span the dummies).
    tol : dqrdc2's tolerance.

    Returns
    -------
    (QRFit, torch.Tensor)
        The fit in the full design's formula order (as qr_solve gives it), and the residuals y - fitted.
    """
    L = block.levels
    M, nc = _column_map(X, intercept, block)
    p = M.shape[1]
    if M.shape[0] != p:
        raise ModelInputError("the factor's contrasts and the intercept do not span its dummies")
    Xn = X[:, nc]
    absorber = Absorber([block.codes], [L], w, dtype=X.dtype)
    Z = torch.cat([Xn, y.unsqueeze(1)], dim=1)
    Zt = absorber.residualize(Z)
    sw = torch.ones_like(y) if w is None else w.sqrt()
    counts = torch.bincount(block.codes, weights=None if w is None else w, minlength=L).to(X.dtype)
    s = counts.sqrt()
    wZ = Z if w is None else w.unsqueeze(1) * Z
    sums = Z.new_zeros((L, Z.shape[1])).index_add_(0, block.codes, wZ) / s.unsqueeze(1)
    k = len(nc)
    # QR of the within part: its R, and Q' sqrt(W) y~
    Qx, Rx = torch.linalg.qr(sw.unsqueeze(1) * Zt, mode="reduced")
    top = torch.cat([torch.diag(s), sums[:, :k]], dim=1)
    bottom = torch.cat([Z.new_zeros((k, L)), Rx[:k, :k]], dim=1)
    R0 = torch.cat([top, bottom], dim=0)
    qty = torch.cat([sums[:, k], Rx[:k, k]])
    A = torch.cat([R0 @ M, qty.unsqueeze(1)], dim=1)
    # the factor of Z in formula order, then R's pivoting on it (norms as on Z itself)
    Rz = torch.linalg.qr(A, mode="r")[1]
    Mp, pivot, rank = limited_pivoting(Rz, p, tol)
    R = torch.triu(Mp[:rank, :rank])
    c = Mp[:rank, p]
    est = pivot[:rank]
    coef = np.full(p, np.nan)
    b = torch.linalg.solve_triangular(R, c.unsqueeze(1), upper=True).squeeze(1) if rank else c
    coef[est] = b.cpu().double().numpy()
    resid = _residuals(X, y, block, coef)
    rss = float(((sw * resid) ** 2).sum())
    fit = QRFit(coef=coef, R=R, pivot=pivot, rank=rank, effects=c.cpu().double().numpy(), rss=rss, accurate=False)
    return fit, resid


def _residuals(X: torch.Tensor, y: torch.Tensor, block: FactorBlock, coef: np.ndarray) -> torch.Tensor:
    """y - fitted, the factor's part as a per-level value gathered by code."""
    b = torch.as_tensor(np.nan_to_num(coef), dtype=X.dtype, device=X.device)
    m, pos = block.width, block.position
    bx = torch.cat([b[:pos], b[pos + m:]])
    per_level = block.contrasts @ b[pos:pos + m]
    return y - X @ bx - per_level[block.codes]

