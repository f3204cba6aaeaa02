"""Covariances of a fit with a very many-level factor (solvers/factor_within.py), by blocks: never L x L.

The coefficients are theta = A a + P b (A's row of a coefficient: e_g for a level's effect a_g, e_g - e_1
for a treatment dummy, 0 for a slope; P its slope part) and both a and b are linear in y:

    a = U y - Xbar b,  b = G^-1 X~'W y,  U = diag(1/n_g) D'W,  so  theta = (A U + P G^-1 X~'W) y.

For a meat Omega (the covariance of y a covariance type assumes) with Omega = E E', writing H = U E and
K = E'W X~, the covariance is (A H + P G^-1 K')(A H + P G^-1 K')', i.e.

    A (HH') A' + A (HK) G^-1 P' + P G^-1 (HK)' A' + P G^-1 (K'K) G^-1 P'.

Only HH' between the levels asked for, HK (L x k) and K'K (k x k) are needed: the classical covariance
(Omega = s^2 W^-1: HH' = s^2 diag(1/n_g), HK = 0, K'K = s^2 G), the HC types (Omega diagonal: HH'
diagonal, group sums) and sandwich's clusters (H a sparse levels x clusters table). Every standard error
costs O(n k + L k^2); vcov(parm=) a block of the coefficients asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from torchlm.solvers.factor_within import WithinFit


@dataclass(frozen=True)
class Meat:
    """The level-level, level-slope and slope-slope parts of a meat, as the module's docstring names them.

    Attributes
    ----------
    hh_diag : (L,) diag(HH'); hh_first : (L,) HH'[:, 0]; hk : (L, k) HK; kk : (k, k) K'K.
    H : (L, r) scipy sparse H, or None when HH' is diagonal (hh_diag is all of it).
    """

    hh_diag: np.ndarray
    hh_first: np.ndarray
    hk: np.ndarray
    kk: np.ndarray
    H: sp.csr_matrix | None = None

    def hh_block(self, levels: np.ndarray) -> np.ndarray:
        """HH' between ``levels``.

        Returns
        -------
        numpy.ndarray (len(levels), len(levels))
        """
        if self.H is None:
            return np.diag(self.hh_diag[levels])
        Hs = self.H[levels]
        return np.asarray((Hs @ Hs.T).todense())


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def classical_meat(wf: WithinFit, scale: float) -> Meat:
    """The meat of the classical covariance s^2 (Z'WZ)^-1.

    Returns
    -------
    Meat
    """
    d = scale / _np(wf.counts)
    first = np.zeros_like(d)
    first[0] = d[0]
    G = _np(wf.Rw.T @ wf.Rw)
    return Meat(hh_diag=d, hh_first=first, hk=np.zeros((len(d), G.shape[0])), kk=scale * G)


def diagonal_meat(wf: WithinFit, u: torch.Tensor) -> Meat:
    """The meat of an HC type: Omega = diag(u), u_i = f_i e_i^2 (the type's leverage factor f).

    Returns
    -------
    Meat
    """
    L = wf.levels
    w2u = wf.w * wf.w * u
    n = wf.counts
    d = _np(torch.bincount(wf.codes, weights=w2u, minlength=L).to(n) / (n * n))
    first = np.zeros_like(d)
    first[0] = d[0]
    hk = wf.Xt.new_zeros((L, wf.Xt.shape[1])).index_add_(0, wf.codes, w2u.unsqueeze(1) * wf.Xt) / n.unsqueeze(1)
    kk = (wf.Xt * w2u.unsqueeze(1)).T @ wf.Xt
    return Meat(hh_diag=d, hh_first=first, hk=_np(hk), kk=_np(kk))


def cluster_meat(wf: WithinFit, e: torch.Tensor, clusters: torch.Tensor, G: int) -> Meat:
    """The meat of sum_c s_c s_c' (sandwich's vcovCL before its adjustments): Omega = E E', E[i, c] = e_i [i in c].

    Returns
    -------
    Meat
    """
    L = wf.levels
    we = _np(wf.w * e)
    codes, cl = _np(wf.codes).astype(np.int64), _np(clusters).astype(np.int64)
    H = sp.csr_matrix((we / _np(wf.counts)[codes], (codes, cl)), shape=(L, G))
    H.sum_duplicates()
    K = _np(wf.Xt.new_zeros((G, wf.Xt.shape[1])).index_add_(0, clusters.to(wf.codes.device),
                                                           (wf.w * e).unsqueeze(1) * wf.Xt))
    hk = np.asarray(H @ K)
    first = np.asarray((H @ H[0].T).todense()).ravel()
    d = np.asarray(H.multiply(H).sum(axis=1)).ravel()
    return Meat(hh_diag=d, hh_first=first, hk=hk, kk=K.T @ K, H=H)


class BlockCovariance:
    """The covariance of a within fit's coefficients under a sum of meats, by rows: diagonal() and block().

    Parameters
    ----------
    wf : the within fit; terms : (factor, Meat) pairs, the covariance being sum factor * cov(Meat).
    names : the coefficient names, in formula order.
    """

    def __init__(self, wf: WithinFit, terms: list[tuple[float, Meat]], names: list[str]):
        self.wf = wf
        self.terms = terms
        self.names = list(names)
        Rw = wf.Rw.cpu().double()
        P = wf.P.cpu().double()
        # P G^-1 with G = Rw'Rw, by two triangular solves
        self._PG = (torch.cholesky_solve(P.T, Rw, upper=True).T.numpy() if Rw.shape[0]
                    else np.zeros(tuple(P.shape)))

    @property
    def shape(self) -> tuple[int, int]:
        """(p, p)."""
        return (len(self.names), len(self.names))

    def diagonal(self) -> np.ndarray:
        """The variances, O(p k^2).

        Returns
        -------
        numpy.ndarray (p,)
        """
        lev, ref = self.wf.level, self.wf.ref.astype(float)
        on = lev >= 0
        g = np.where(on, lev, 0)
        out = np.zeros(len(lev))
        for c, M in self.terms:
            hh = np.where(on, M.hh_diag[g] - 2 * ref * M.hh_first[g] + ref * M.hh_diag[0], 0.0)
            ahk = np.where(on[:, None], M.hk[g] - ref[:, None] * M.hk[0], 0.0)
            cross = 2 * np.einsum("ij,ij->i", ahk, self._PG)
            slope = np.einsum("ij,ij->i", self._PG @ M.kk, self._PG)
            out += c * (hh + cross + slope)
        return out

    def block(self, rows: list[int]) -> np.ndarray:
        """The covariance between the coefficients ``rows`` (positions in formula order).

        Returns
        -------
        numpy.ndarray (len(rows), len(rows))
        """
        idx = np.asarray(rows, dtype=np.int64)
        lev, ref = self.wf.level[idx], self.wf.ref[idx].astype(float)
        on = lev >= 0
        g = np.where(on, lev, 0)
        # the levels involved (and level 1, which the treatment dummies subtract); A over them
        used = np.unique(np.r_[0, g[on]])
        A = np.zeros((len(idx), len(used)))
        A[np.flatnonzero(on), np.searchsorted(used, g[on])] = 1.0
        A[:, 0] -= ref * on
        PG = self._PG[idx]
        V = np.zeros((len(idx), len(idx)))
        for c, M in self.terms:
            AHK = A @ M.hk[used]
            cross = AHK @ PG.T
            V += c * (A @ M.hh_block(used) @ A.T + cross + cross.T + PG @ M.kk @ PG.T)
        return (V + V.T) / 2
