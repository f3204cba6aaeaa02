"""Absorbing fixed effects: the projection of columns onto the complement of factor dummies, without the dummies.

A factor with L levels is an integer code per row: its dummy block D has one non-zero per row, D'WD is
diagonal (the levels' weight sums) and D'Wx is a group sum (``index_add``). One factor is eliminated
exactly by group means. With several, the largest (a) is eliminated exactly and the others (r, L_r
levels together) through their Schur complement

    S = D_r'W D_r - D_r'W D_a diag(1 / n_a) D_a'W D_r        (L_r x L_r)

which is small where panels are (1000 firms + 50 years: S is 50 x 50): it is factored once (a
pseudo-inverse, since the dummies of several factors are collinear) and every column is then projected
in one pass over the rows, exactly up to rounding, where alternating projections (fixest's demeaning)
iterate to a tolerance. A large S is solved by preconditioned conjugate gradients on its action (two
passes over the factors' cross-tabulation per iteration), to a relative residual of ``tol``, with a
warning giving the residual reached when it does not converge.

Everything is torch (index_add, gather, eigh), so it runs on the device the columns are on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from torchlm.errors import FitError, OptimumWarning, warn

# an S up to this many levels is factored densely (eigh: L^3 / 3 flops, 2.2e10 at 4000 levels, seconds);
# beyond, conjugate gradients on its action
DENSE_LEVELS = 4000
# the cross-tabulation of the eliminated factor and the others is built densely below this many cells
DENSE_CELLS = 20_000_000


@dataclass
class CrossTab:
    """The weighted counts of pairs of levels (rows, cols, counts) of two sets of factors, non-zero cells only."""

    rows: torch.Tensor
    cols: torch.Tensor
    counts: torch.Tensor
    shape: tuple[int, int]

    def matmul(self, V: torch.Tensor) -> torch.Tensor:
        """C @ V for V of shape (cols, k).

        Returns
        -------
        torch.Tensor (rows, k)
        """
        out = V.new_zeros((self.shape[0], V.shape[1]))
        return out.index_add_(0, self.rows, self.counts.unsqueeze(1) * V[self.cols])

    def rmatmul(self, U: torch.Tensor) -> torch.Tensor:
        """C' @ U for U of shape (rows, k).

        Returns
        -------
        torch.Tensor (cols, k)
        """
        out = U.new_zeros((self.shape[1], U.shape[1]))
        return out.index_add_(0, self.cols, self.counts.unsqueeze(1) * U[self.rows])


def cross_tab(a: torch.Tensor, La: int, b: torch.Tensor, Lb: int, w: torch.Tensor | None,
              dtype: torch.dtype) -> CrossTab:
    """Weighted counts of the (a, b) level pairs over the rows.

    Returns
    -------
    CrossTab
    """
    key = a * Lb + b
    if La * Lb <= DENSE_CELLS:
        counts = torch.bincount(key, weights=None if w is None else w, minlength=La * Lb).to(dtype)
        cells = torch.nonzero(counts, as_tuple=True)[0]
        return CrossTab(cells // Lb, cells % Lb, counts[cells], (La, Lb))
    cells, inverse = torch.unique(key, return_inverse=True)
    counts = torch.zeros(len(cells), dtype=dtype, device=key.device)
    counts.index_add_(0, inverse, torch.ones_like(inverse, dtype=dtype) if w is None else w.to(dtype))
    return CrossTab(cells // Lb, cells % Lb, counts, (La, Lb))


@dataclass
class Absorber:
    """The W-orthogonal projection onto the complement of the dummies of one or more factors.

    Parameters
    ----------
    codes : one int64 tensor of level codes (0 .. L-1, every level present) per factor, all of length n.
    sizes : the number of levels of each factor.
    weights : (n,) prior weights, or None.
    values : per factor, None (its dummies are 0/1) or an (n,) tensor: the dummy of a row is that value
        (fixest's varying slope, x times the level's dummy); still one non-zero per row.
    tol : relative residual at which conjugate gradients stop (large Schur complements only).
    maxiter : conjugate-gradient iterations before the warning.
    """

    codes: list[torch.Tensor]
    sizes: list[int]
    weights: torch.Tensor | None = None
    values: list[torch.Tensor | None] | None = None
    tol: float = 1e-13
    maxiter: int = 10_000
    dtype: torch.dtype = torch.float64
    _order: list[int] = field(init=False, repr=False)
    _counts: list[torch.Tensor] = field(init=False, repr=False)
    _offsets: list[int] = field(init=False, repr=False)
    _cross: list[CrossTab] = field(init=False, repr=False)
    _within: list[tuple[int, int, CrossTab]] = field(init=False, repr=False)
    _pinv: tuple[torch.Tensor, torch.Tensor] | None = field(init=False, repr=False, default=None)
    _vals: list[torch.Tensor | None] = field(init=False, repr=False)
    _inv: list[torch.Tensor] = field(init=False, repr=False)
    cg_iterations: int = field(init=False, default=0)
    cg_residual: float = field(init=False, default=0.0)
    _last_scale: torch.Tensor | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not self.codes:
            raise FitError("Absorber needs at least one factor")
        vals = self.values or [None] * len(self.codes)
        self._vals = vals
        self._counts = [torch.bincount(c, weights=self._wv2(v), minlength=L).to(self.dtype)
                        for c, L, v in zip(self.codes, self.sizes, vals)]
        for n, v in zip(self._counts, vals):
            if v is None and bool((n <= 0).any()):
                raise FitError("a fixed-effect level has no observation with a positive weight")
        # a varying slope whose variable is 0 throughout a level has no coefficient there: it stays 0
        self._inv = [torch.where(n > 0, 1 / n.clamp_min(torch.finfo(self.dtype).tiny), torch.zeros_like(n))
                     for n in self._counts]
        # the largest factor is eliminated exactly; the others make the Schur complement
        self._order = sorted(range(len(self.codes)), key=lambda g: -self.sizes[g])
        rest = self._order[1:]
        self._offsets = []
        total = 0
        for g in rest:
            self._offsets.append(total)
            total += self.sizes[g]
        self.n_rest = total
        a = self._order[0]
        self._cross = [cross_tab(self.codes[a], self.sizes[a], self.codes[g], self.sizes[g],
                                 self._wvv(vals[a], vals[g]), self.dtype) for g in rest]
        self._within = [(i, j, cross_tab(self.codes[rest[i]], self.sizes[rest[i]], self.codes[rest[j]],
                                         self.sizes[rest[j]], self._wvv(vals[rest[i]], vals[rest[j]]), self.dtype))
                        for i in range(len(rest)) for j in range(i + 1, len(rest))]
        if 0 < self.n_rest <= DENSE_LEVELS:
            self._pinv = self._dense_pinv()

    # --- the pieces of the normal equations ------------------------------------------------------
    def _wv2(self, v: torch.Tensor | None) -> torch.Tensor | None:
        """w v^2 per row (the diagonal of an effect's D'WD), None for unit weights and values."""
        return self._wvv(v, v)

    def _wvv(self, u: torch.Tensor | None, v: torch.Tensor | None) -> torch.Tensor | None:
        out = self.weights
        for t in (u, v):
            if t is not None:
                out = t if out is None else out * t
        return out

    def _group_sums(self, g: int, wX: torch.Tensor) -> torch.Tensor:
        v = self._vals[g]
        src = wX if v is None else v.unsqueeze(1) * wX
        return wX.new_zeros((self.sizes[g], wX.shape[1])).index_add_(0, self.codes[g], src)

    def _rest_blocks(self, V: torch.Tensor) -> list[torch.Tensor]:
        return [V[o:o + self.sizes[g]] for o, g in zip(self._offsets, self._order[1:])]

    def _c_times(self, V: torch.Tensor) -> torch.Tensor:
        """C V, C = D_a'W D_r."""
        out = None
        for ct, block in zip(self._cross, self._rest_blocks(V)):
            part = ct.matmul(block)
            out = part if out is None else out + part
        assert out is not None
        return out

    def _ct_times(self, U: torch.Tensor) -> torch.Tensor:
        """C' U."""
        return torch.cat([ct.rmatmul(U) for ct in self._cross], dim=0)

    def _s_times(self, V: torch.Tensor) -> torch.Tensor:
        """S V without forming S."""
        ia = self._inv[self._order[0]].unsqueeze(1)
        nr = torch.cat([self._counts[g] for g in self._order[1:]]).unsqueeze(1)
        out = nr * V - self._ct_times(self._c_times(V) * ia)
        blocks = self._rest_blocks(V)
        parts = self._rest_blocks(out)
        for i, j, ct in self._within:
            parts[i] += ct.matmul(blocks[j])
            parts[j] += ct.rmatmul(blocks[i])
        return out

    def _dense_pinv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """S's eigenvectors and inverse eigenvalues over its range (S is singular: the dummies are collinear)."""
        device = self.codes[0].device
        S = self._s_times(torch.eye(self.n_rest, dtype=self.dtype, device=device))
        S = (S + S.T) / 2
        lam, U = torch.linalg.eigh(S)
        keep = lam > lam.abs().max() * self.n_rest * torch.finfo(self.dtype).eps * 16
        return U[:, keep], 1 / lam[keep]

    def _solve_rest(self, rhs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if self._pinv is not None:
            U, inv = self._pinv
            return U @ (inv.unsqueeze(1) * (U.T @ rhs))
        return self._conjugate_gradients(rhs, scale)

    def _conjugate_gradients(self, rhs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Jacobi-preconditioned CG on S b = rhs, the columns in one batch (S is singular, rhs in its range).

        A column stops when its residual is ``tol`` times ``scale`` (the norm of its group sums before
        the elimination: a right-hand side that cancelled to rounding is converged at once), or when
        its search direction has no curvature left."""
        ia = self._inv[self._order[0]]
        diag = torch.cat([self._counts[g] for g in self._order[1:]])
        for ct, o in zip(self._cross, self._offsets):
            diag[o:o + ct.shape[1]] -= torch.zeros(ct.shape[1], dtype=self.dtype, device=diag.device).index_add_(
                0, ct.cols, ct.counts ** 2 * ia[ct.rows])
        diag = diag.clamp_min(diag.max() * 1e-12).unsqueeze(1)
        tiny = torch.finfo(self.dtype).tiny
        b = torch.zeros_like(rhs)
        r = rhs.clone()
        norm0 = scale.clamp_min(tiny)
        z = r / diag
        p = z.clone()
        rz = (r * z).sum(0)
        active = r.norm(dim=0) / norm0 > self.tol
        it, rel_cols = 0, r.norm(dim=0) / norm0
        while bool(active.any()) and it < self.maxiter:
            Sp = self._s_times(p)
            curvature = (p * Sp).sum(0)
            active &= curvature > 0
            alpha = torch.where(active, rz / curvature.clamp_min(tiny), torch.zeros_like(rz))
            b += alpha * p
            r -= alpha * Sp
            z = r / diag
            rz_new = (r * z).sum(0)
            p = z + torch.where(active, rz_new / rz.clamp_min(tiny), torch.zeros_like(rz)) * p
            rz = rz_new
            it += 1
            rel_cols = r.norm(dim=0) / norm0
            active &= rel_cols > self.tol
        self.cg_iterations = max(self.cg_iterations, it)
        if bool(active.any()):
            rel = float(rel_cols[active].max())
            self.cg_residual = max(self.cg_residual, rel)
            warn(f"the fixed effects were not absorbed to tolerance {self.tol:g}: conjugate gradients reached a "
                 f"relative residual of {rel:.3g} after {it} iterations (raise fixef_iter=, or check that the "
                 "fixed effects are connected)", OptimumWarning)
        return b

    # --- public --------------------------------------------------------------------------------
    def coefficients(self, X: torch.Tensor, scale: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The fixed-effect coefficients of the least-squares fit of each column of X on the dummies alone.

        Parameters
        ----------
        X : (n, k) tensor.
        scale : (k,) the size against which conjugate gradients measure their residual (default the
            norms of X's group sums); a refinement pass passes the first pass's.

        Returns
        -------
        list of torch.Tensor
            One (L_g, k) tensor per factor, in the order of ``codes``: a solution of the normal equations
            (with several factors one of many; fixef() normalizes it as fixest does).
        """
        return self._solve(X, scale)[0]

    def _solve(self, X: torch.Tensor, scale: torch.Tensor | None = None,
               wX: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(coefficients, group sums D_g'WX), both in the order of ``codes`` (``wX``: W X if already made)."""
        a = self._order[0]
        ia = self._inv[a].unsqueeze(1)
        if wX is None:
            wX = X if self.weights is None else self.weights.unsqueeze(1) * X
        sums: list[torch.Tensor] = [torch.empty(0)] * len(self.codes)
        coefs: list[torch.Tensor] = [torch.empty(0)] * len(self.codes)
        ra = sums[a] = self._group_sums(a, wX)
        if self.n_rest == 0:
            coefs[a] = ra * ia
            return coefs, sums
        for g in self._order[1:]:
            sums[g] = self._group_sums(g, wX)
        rr = torch.cat([sums[g] for g in self._order[1:]], dim=0)
        self._last_scale = rr.norm(dim=0) if scale is None else scale
        b = self._solve_rest(rr - self._ct_times(ra * ia), self._last_scale)
        coefs[a] = (ra - self._c_times(b)) * ia
        for g, block in zip(self._order[1:], self._rest_blocks(b)):
            coefs[g] = block
        return coefs, sums

    def within_gram(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """X~'W X~ of the within-transformed columns without forming them (X'WX less X'W D A), and X'WX.

        The projection P X = D A is W-orthogonal, so X~'WX~ = X'WX - (D'WX)'A, and D'WX, A are small
        (levels x k): two passes over the rows (W X and the group sums) instead of four.

        Returns
        -------
        (torch.Tensor (k, k), torch.Tensor (k, k))
        """
        wX = X if self.weights is None else self.weights.unsqueeze(1) * X
        coefs, sums = self._solve(X, wX=wX)
        raw = X.T @ wX
        G = raw
        for S, A in zip(sums, coefs):
            G = G - S.T @ A
        return (G + G.T) / 2, raw

    def fitted(self, coefs: list[torch.Tensor]) -> torch.Tensor:
        """The dummies times their coefficients, D_1 a_1 + D_2 a_2 + ..., at every row.

        Returns
        -------
        torch.Tensor (n, k)
        """
        total = None
        for c, A, v in zip(self.codes, coefs, self._vals):
            part = A.index_select(0, c)
            if v is not None:
                part = v.unsqueeze(1) * part
            total = part if total is None else total.add_(part)
        assert total is not None
        return total

    def residualize(self, X: torch.Tensor, refine: bool = True) -> torch.Tensor:
        """X minus its W-projection on the dummies (the within transform), exact up to rounding.

        A second pass on the result removes what rounding left of the projection: the residual of a
        column dominated by its fixed effects keeps its digits.

        Parameters
        ----------
        X : (n, k) tensor.
        refine : make the second pass (IRLS's inner passes skip it: the last one makes it).

        Returns
        -------
        torch.Tensor (n, k)
        """
        R = X - self.fitted(self.coefficients(X))
        if not refine:
            return R
        return R.sub_(self.fitted(self.coefficients(R, self._last_scale)))
