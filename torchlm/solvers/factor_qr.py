"""R's QR of a design whose many-level factors are kept as codes: never an n x L dummy block.

The design R's lm would build is Z = [1, X_before, D C, X_after, ...]: each factor term enters as its
dummies D (one non-zero per row) times its contrasts C, a slope term ``C(f):x`` as diag(x) D C. Its QR
in formula order, with dqrdc2's rank detection, is what lm.fit gives (coefficients, R, effects, the
aliased pattern). Z lies in the column space of Z0 = [F_k, X] (F_k a basis of the blocks' level
columns, solvers/factor_basis.py; X the numeric columns, the intercept among F's span when a factor
without a slope is there), whose QR is structured:

    R0 = [[R_F, R_F^-T F_k'WX], [0, R_X]],   Q0'sqrt(W)y = [R_F^-T F_k'Wy ; Q_X' sqrt(W) y~]

with R_F the Cholesky factor of F_k'WF_k (diagonal for one factor: the levels' weight sums' roots) and
R_X the QR factor of the within-transformed sqrt(W) X~ (n x k: the only pass over the rows that is not
a group sum). Z = Q0 (R0 M), M the small matrix writing Z's columns in Z0's (the intercept is D 1, a
contrast column D c); the QR of R0 M is Z's own factor in formula order, and dqrdc2 run on it makes
R's decisions, since column norms are invariant under Q0. So the cost is O(n k^2 + group sums +
(L + k)^3) where the dense QR is O(n (L + k)^2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from torchlm.errors import NotStructured
from torchlm.solvers.autograd import limited_pivoting
from torchlm.solvers.factor_basis import FactorBasis, FactorBlock
from torchlm.solvers.least_squares import QRFit

__all__ = ["FactorBlock", "NotStructured", "factor_qr", "rest_positions"]


def rest_positions(p: int, blocks: Sequence[FactorBlock]) -> list[int]:
    """Positions in the design of the columns that are not the blocks'.

    Returns
    -------
    list of int
    """
    taken = {j for b in blocks for j in range(b.position, b.position + b.width)}
    return [j for j in range(p) if j not in taken]


def _column_map(X: torch.Tensor, intercept: int | None,
                blocks: Sequence[FactorBlock]) -> tuple[torch.Tensor, list[int]]:
    """M with Z = [F, X_nc] M over all of F's columns, and the positions of X_nc's columns among X's."""
    plain = [i for i, b in enumerate(blocks) if b.values is None]
    # the intercept is the first plain factor's sum of dummies; without one it stays a column of X
    absorbed = intercept if plain else None
    nc = [j for j in range(X.shape[1]) if j != absorbed]
    sizes = np.concatenate([[0], np.cumsum([b.levels for b in blocks])]).astype(int)
    Lf = int(sizes[-1])
    p = X.shape[1] + sum(b.width for b in blocks)
    M = X.new_zeros((Lf + len(nc), p))
    for i, b in enumerate(blocks):
        M[sizes[i]:sizes[i + 1], b.position:b.position + b.width] = b.contrasts
    for j, col in enumerate(rest_positions(p, blocks)):
        if j == absorbed:
            M[sizes[plain[0]]:sizes[plain[0] + 1], col] = 1.0
        else:
            M[Lf + nc.index(j), col] = 1.0
    return M, nc


def factor_qr(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
              blocks: FactorBlock | Sequence[FactorBlock], *, intercept: int | None,
              tol: float = 1e-7, columns: Sequence[int] | None = None) -> tuple[QRFit, torch.Tensor]:
    """lm.fit of [X with the blocks' columns inserted at their positions] on y, from the factors' codes.

    Parameters
    ----------
    X : (n, k) the design's other columns, in formula order (the intercept among them at ``intercept``).
    y : (n,) response; w : (n,) prior weights or None.
    blocks : the factor blocks (one, or several in increasing position).
    intercept : position of the intercept column in X, or None.
    tol : dqrdc2's tolerance.
    columns : the design's columns to fit on, in order (a refit on some of them: Z_S = Q0 R0 M_S); None: all.

    Raises
    ------
    NotStructured
        Where the blocks' span is not resolved from group sums (solvers/factor_basis.py): read the rows.

    Returns
    -------
    (QRFit, torch.Tensor)
        The fit over ``columns`` in their order (as qr_solve of those columns gives it), and the residuals.
    """
    blocks = [blocks] if isinstance(blocks, FactorBlock) else list(blocks)
    M, nc = _column_map(X, intercept, blocks)
    full = M.shape[1]
    if columns is not None:
        M = M[:, list(columns)]
    p = M.shape[1]
    basis = FactorBasis(blocks, w)
    Z = torch.cat([X[:, nc], y.unsqueeze(1)], dim=1)
    sw = torch.ones_like(y) if w is None else w.sqrt()
    k = len(nc)
    # the within part's R, and Q' sqrt(W) y~
    Rx = torch.linalg.qr(sw.unsqueeze(1) * basis.residualize(Z), mode="r")[1]
    r = basis.rank
    fz = basis.qty(Z)
    R0 = Z.new_zeros((r + k, r + k))
    R0[:r, :r] = basis.triangle()
    R0[:r, r:] = fz[:, :k]
    R0[r:, r:] = Rx[:k, :k]
    qty = torch.cat([fz[:, k], Rx[:k, k]])
    Mk = torch.cat([basis.to_basis(M[:basis.size]), M[basis.size:]])
    A = torch.cat([R0 @ Mk, qty.unsqueeze(1)], dim=1)
    if A.shape[0] < p + 1:  # zero rows change neither the column norms nor the factor
        A = torch.cat([A, A.new_zeros((p + 1 - A.shape[0], p + 1))])
    # the factor of Z in formula order, then R's pivoting on it (norms as on Z itself)
    Rz = torch.linalg.qr(A, mode="r")[1]
    Mp, pivot, rank = limited_pivoting(Rz, p, tol)
    R = torch.triu(Mp[:rank, :rank])
    c = Mp[:rank, p]
    est = pivot[:rank]
    coef = np.full(p, np.nan)
    b = torch.linalg.solve_triangular(R, c.unsqueeze(1), upper=True).squeeze(1) if rank else c
    coef[est] = b.cpu().double().numpy()
    on_all = np.zeros(full)
    on_all[list(range(full)) if columns is None else list(columns)] = np.nan_to_num(coef)
    resid = y - fitted_values(X, blocks, on_all)
    rss = float(((sw * resid) ** 2).sum())
    fit = QRFit(coef=coef, R=R, pivot=pivot, rank=rank, effects=c.cpu().double().numpy(), rss=rss, accurate=False)
    return fit, resid


def fitted_values(X: torch.Tensor, blocks: Sequence[FactorBlock], coef: np.ndarray) -> torch.Tensor:
    """Z coef (NaN coefficients as 0): the other columns' product plus each block's per-level values gathered.

    Returns
    -------
    torch.Tensor (n,)
    """
    b = torch.as_tensor(np.nan_to_num(coef), dtype=X.dtype, device=X.device)
    out = X @ b[rest_positions(len(coef), blocks)]
    for blk in blocks:
        out = out + blk.gather(blk.contrasts @ b[blk.position:blk.position + blk.width])
    return out
