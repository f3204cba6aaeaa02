"""The span of a design's factor blocks kept as codes: its Gram from group sums, a basis, the projection on it.

A block is a factor term whose columns are its coding matrix's rows gathered by each row's level code
(``C(firm)``: D C), or those times a numeric variable (``C(firm):x``: diag(x) D C). Whatever the coding,
the block's columns lie in the span of its L level columns, F_b = diag(v) D (v = 1 or x), and the
blocks together in the span of F = [F_1, ..., F_r]. F'WF is a matrix of group sums (the weighted
counts of pairs of levels), so a basis of span(F) and the projection on it need no n x L array:

- F'WF (sum of the L's square) from bincounts, its pivoted Cholesky factor (LAPACK's dpstrf, after
  scaling it to a unit diagonal) drops the columns that are exact combinations of the others (two
  factors share the constant; a level's slope column is its dummy's multiple when x is constant in
  it). A column that is nearly, but not exactly, such a combination is refused (NotStructured): the
  caller then reads the design by row blocks, where R's own QR decides;
- the projection of n x q columns on span(F) is F_k (F_k'WF_k)^-1 F_k'W: group sums, two triangular
  solves and gathers, done twice (the second pass removes what rounding of the first left);
- one factor without a slope has a diagonal F'WF (the levels' weight sums): nothing L x L is formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg.lapack as lapack
import torch

from torchlm.errors import NotStructured

# pivots of the unit-diagonal Gram: below DROP a column is an exact combination of the others (rounding
# leaves ~1e-16 there); between DROP and CLEAR (a residual norm within 3e-5 of 0) the Gram cannot
# resolve it as R's QR would, and the structured path is not taken
DROP = 1e-13
CLEAR = 1e-9


@dataclass(frozen=True)
class FactorBlock:
    """One factor term of a design kept as codes.

    Parameters
    ----------
    codes : (n,) int64 level codes, every level present.
    contrasts : (L, m) the term's coding (treatment: the identity without its first column).
    position : index in the design's columns where the m columns start.
    values : (n,) the numeric variable the term multiplies (``C(f):x``), or None.
    """

    codes: torch.Tensor
    contrasts: torch.Tensor
    position: int
    values: torch.Tensor | None = None

    @property
    def levels(self) -> int:
        """L."""
        return int(self.contrasts.shape[0])

    @property
    def width(self) -> int:
        """m, the term's columns in the design."""
        return int(self.contrasts.shape[1])

    def gather(self, per_level: torch.Tensor) -> torch.Tensor:
        """F_b @ per_level: each row's level value (times its slope variable).

        Returns
        -------
        torch.Tensor (n,) or (n, q)
        """
        out = per_level[self.codes]
        if self.values is None:
            return out
        return out * (self.values if out.dim() == 1 else self.values.unsqueeze(1))

    def sums(self, v: torch.Tensor) -> torch.Tensor:
        """F_b' v: the levels' sums of v (times the slope variable).

        Returns
        -------
        torch.Tensor (L,) or (L, q)
        """
        if self.values is not None:
            v = v * (self.values if v.dim() == 1 else self.values.unsqueeze(1))
        return v.new_zeros((self.levels,) + v.shape[1:]).index_add_(0, self.codes, v)

    def columns(self) -> torch.Tensor:
        """The block's (n, m) columns of the design.

        Returns
        -------
        torch.Tensor
        """
        return self.gather(self.contrasts)


def pair_sums(a: FactorBlock, b: FactorBlock, h: torch.Tensor) -> torch.Tensor:
    """F_a' diag(h) F_b: the (La, Lb) sums of h over the rows of each pair of levels.

    Returns
    -------
    torch.Tensor
    """
    u = h if a.values is None else h * a.values
    u = u if b.values is None else u * b.values
    if a.codes is b.codes or (a.levels == b.levels and torch.equal(a.codes, b.codes)):
        return torch.diag(u.new_zeros(a.levels).index_add_(0, a.codes, u))
    flat = u.new_zeros(a.levels * b.levels).index_add_(0, a.codes * b.levels + b.codes, u)
    return flat.reshape(a.levels, b.levels)


class FactorBasis:
    """A basis F_k of span(F) (weighted by w) and the projection on it.

    Parameters
    ----------
    blocks : the factor blocks; w : (n,) prior or working weights, or None.

    Raises
    ------
    NotStructured
        Where a level's weights are all 0, or a column of F is nearly but not exactly in the others' span.
    """

    def __init__(self, blocks: Sequence[FactorBlock], w: torch.Tensor | None):
        self.blocks = list(blocks)
        self.w = w
        sizes = [b.levels for b in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.size = int(self.offsets[-1])
        first = self.blocks[0]
        ones = first.codes.new_ones(first.codes.shape, dtype=first.contrasts.dtype) if w is None else w
        self.diagonal = len(self.blocks) == 1 and first.values is None
        if self.diagonal:
            d = first.sums(ones)
            if bool((d <= 0).any()):
                raise NotStructured("a level whose weights are all 0")
            self.kept = torch.arange(self.size, device=d.device)
            self.dropped = self.kept[:0]
            self.R = d.sqrt()  # the diagonal of F's R factor
            self.A = d.new_zeros((self.size, 0))
            return
        G = ones.new_zeros((self.size, self.size))
        for i, a in enumerate(self.blocks):
            for j in range(i, len(self.blocks)):
                S = pair_sums(a, self.blocks[j], ones)
                G[self._range(i), self._range(j)] = S
                G[self._range(j), self._range(i)] = S.T
        self._factorize(G)

    def _range(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def _factorize(self, G: torch.Tensor) -> None:
        d = torch.diagonal(G).clone()
        if bool((d <= 0).any()):
            raise NotStructured("a level whose weights are all 0")
        s = d.rsqrt()
        Gs = (G * s.unsqueeze(1) * s.unsqueeze(0)).cpu().double().numpy()
        c, piv, rank, info = lapack.dpstrf(Gs, tol=DROP, lower=0)
        if info < 0:
            raise NotStructured("dpstrf failed")
        piv = piv[: self.size] - 1
        R = np.triu(c[:rank, :rank])
        if rank and float(np.diag(R).min()) ** 2 < CLEAR:
            raise NotStructured("a column of the factors' span is nearly a combination of the others")
        dev = G.device
        self.kept = torch.as_tensor(piv[:rank].copy(), device=dev)
        self.dropped = torch.as_tensor(piv[rank:].copy(), device=dev)
        Rs = torch.as_tensor(R, dtype=G.dtype, device=dev)
        # R of the unscaled kept columns: F_k = Fs_k / s_k
        self.R = Rs / s[self.kept].unsqueeze(0)
        # each dropped column as a combination of the kept ones: (F_k'WF_k)^-1 F_k'WF_d
        self.A = self._solve(G[self.kept][:, self.dropped])
        if self.dropped.numel():
            resid = G[self.dropped][:, self.dropped] - G[self.dropped][:, self.kept] @ self.A
            if float((torch.diagonal(resid).abs() / d[self.dropped]).max()) > CLEAR:
                raise NotStructured("a dropped column of the factors' span is not a combination of the others")

    # --- the triangular pieces ------------------------------------------------------------------------
    def _tri_solve(self, B: torch.Tensor, transposed: bool) -> torch.Tensor:
        """R^-T B (transposed) or R^-1 B."""
        if self.diagonal:
            return B / (self.R if B.dim() == 1 else self.R.unsqueeze(1))
        col = B.dim() == 1
        R = self.R.T if transposed else self.R
        out = torch.linalg.solve_triangular(R, B.unsqueeze(1) if col else B, upper=not transposed)
        return out.squeeze(1) if col else out

    def _rt_solve(self, B: torch.Tensor) -> torch.Tensor:
        """R^-T B."""
        return self._tri_solve(B, True)

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        """(F_k'WF_k)^-1 B."""
        return self._tri_solve(self._rt_solve(B), False)

    @property
    def rank(self) -> int:
        """Columns of the basis F_k."""
        return int(self.kept.numel())

    def triangle(self) -> torch.Tensor:
        """R_F, the (rank, rank) upper triangular factor of F_k'WF_k.

        Returns
        -------
        torch.Tensor
        """
        return torch.diag(self.R) if self.diagonal else self.R

    # --- products with the rows -----------------------------------------------------------------------
    def sums(self, V: torch.Tensor) -> torch.Tensor:
        """F'WV over all of F's columns.

        Returns
        -------
        torch.Tensor (size, q)
        """
        WV = V if self.w is None else V * self.w.unsqueeze(1)
        return torch.cat([b.sums(WV) for b in self.blocks])

    def span(self, beta: torch.Tensor) -> torch.Tensor:
        """F_k beta for (rank, q) coefficients on the basis.

        Returns
        -------
        torch.Tensor (n, q)
        """
        full = beta.new_zeros((self.size, beta.shape[1]))
        full[self.kept] = beta
        out = self.blocks[0].gather(full[self._range(0)])
        for i in range(1, len(self.blocks)):
            out = out + self.blocks[i].gather(full[self._range(i)])
        return out

    def residualize(self, V: torch.Tensor) -> torch.Tensor:
        """V minus its weighted projection on span(F), by two passes.

        Returns
        -------
        torch.Tensor (n, q)
        """
        for _ in range(2):
            V = V - self.span(self._solve(self.sums(V)[self.kept]))
        return V

    def qty(self, V: torch.Tensor) -> torch.Tensor:
        """R_F^-T F_k'WV: the basis's orthonormal columns' products with sqrt(W) V.

        Returns
        -------
        torch.Tensor (rank, q)
        """
        return self._rt_solve(self.sums(V)[self.kept])

    def to_basis(self, M: torch.Tensor) -> torch.Tensor:
        """Coefficients on F_k of the columns F M, for (size, q) coefficients M on all of F's columns.

        Returns
        -------
        torch.Tensor (rank, q)
        """
        return M[self.kept] + self.A @ M[self.dropped]

    def hat(self) -> torch.Tensor:
        """The rows' leverages on span(F): w_i f_i'(F_k'WF_k)^-1 f_i.

        Returns
        -------
        torch.Tensor (n,)
        """
        b0 = self.blocks[0]
        w = torch.ones_like(b0.codes, dtype=self.R.dtype) if self.w is None else self.w
        if self.diagonal:
            return w / (self.R * self.R)[b0.codes]
        # P = (F_k'WF_k)^-1 with a zero row and column for the dropped columns (index rank)
        r = self.rank
        P = self.R.new_zeros((r + 1, r + 1))
        P[:r, :r] = self._solve(torch.eye(r, dtype=self.R.dtype, device=self.R.device))
        where = torch.full((self.size,), r, dtype=torch.int64, device=self.R.device)
        where[self.kept] = torch.arange(r, device=self.R.device)
        at = [where[int(self.offsets[i]) + b.codes] for i, b in enumerate(self.blocks)]
        vals = [torch.ones_like(w) if b.values is None else b.values for b in self.blocks]
        h = torch.zeros_like(w)
        for i in range(len(self.blocks)):
            for j in range(len(self.blocks)):
                h = h + vals[i] * vals[j] * P[at[i], at[j]]
        return w * h
