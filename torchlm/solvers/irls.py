"""A GLM on a row-block source: the passes IRLS makes over the data (R's glm.fit, one block of rows at a time).

The design is never held whole: each pass reads the source's blocks and keeps only per-row vectors
(linear predictor, means) and p x p sums. One pass evaluates the linear predictor, the means, the
deviance and whether the point is valid at some coefficients, and, in the same pass, accumulates the
normal equations of the next step (Fisher scoring: X'WX and X'Wr; Newton with the observed
information: X' diag(d2) X and -X'd1). The QR step (rank detection; the covariance at the estimate)
reads the blocks through lm's QR solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from ..families import Family
from ..fit import LinearResidual, QRFit, qr_solve
from ..inference import quiet
from ..sources.row_blocks import RowBlockSource


@dataclass
class Pass:
    """What one pass over the blocks found at some coefficients.

    Attributes
    ----------
    eta, mu : (n,) linear predictor (offset included) and means.
    deviance : sum of the family's deviance residuals (inf when not finite).
    valid : eta and mu are inside the link's and the family's ranges and the deviance is finite.
    H, g : the accumulated normal equations of the next step over the estimable columns (None when
        not asked for, or the point is not valid).
    """

    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    valid: bool
    H: torch.Tensor | None = None
    g: torch.Tensor | None = None


class GLMPasses:
    """The passes of IRLS for one GLM: a source, the per-row vectors, the family, and fixed coefficients.

    Parameters
    ----------
    source : the design's row blocks.
    y, weights, offset : (n,) tensors on the fit's device (after the family's initialize).
    family : the GLM family (its link included).
    columns : design columns whose coefficients are estimated (default all).
    fixed : {design column: value} coefficients held fixed (their columns enter the offset), as
        profile likelihood needs.
    """

    def __init__(self, source: RowBlockSource, y: torch.Tensor, weights: torch.Tensor, offset: torch.Tensor,
                 family: Family, *, columns: list[int] | None = None, fixed: dict[int, float] | None = None):
        self.source, self.family, self.link = source, family, family.link
        self.y, self.weights = y, weights
        self.columns = list(range(len(source.names))) if columns is None else list(columns)
        self.device, self.dtype = y.device, y.dtype
        self.offset = offset if not fixed else offset + self._fixed_part(dict(fixed))
        self.positive = weights > 0
        self.all_positive = bool(self.positive.all())

    def _fixed_part(self, fixed: dict[int, float]) -> torch.Tensor:
        """sum_j value_j x_j over the fixed coefficients' columns: they enter as an offset (one pass)."""
        cols = list(fixed)
        values = torch.tensor([fixed[j] for j in cols], dtype=self.dtype, device=self.device)
        out = torch.empty_like(self.y)
        for blk in self.source.blocks(columns=cols, device=self.device, dtype=self.dtype):
            out[blk.rows] = blk.X @ values
        return out

    @property
    def p(self) -> int:
        """Number of estimated coefficients."""
        return len(self.columns)

    def blocks(self):
        """(rows, X of the estimated columns) for each block of the source."""
        for blk in self.source.blocks(columns=self.columns, device=self.device, dtype=self.dtype):
            yield blk.rows, blk.X

    def working(self, eta: torch.Tensor, mu: torch.Tensor, rows: slice = slice(None)):
        """R's square roots of the working weights and working residuals (y - mu) / mu'(eta), 0 off R's good rows."""
        fam, link = self.family, self.link
        y, w, positive = self.y[rows], self.weights[rows], self.positive[rows]
        var = fam.variance(mu)
        v = var if self.all_positive else var[positive]
        if bool(torch.isnan(v).any()):
            raise DataError("NAs in V(mu) during the fit")
        if bool((v == 0).any()):
            raise DataError("0s in V(mu) during the fit: fitted values reached the edge of the family's range")
        me = link.mu_eta(eta)
        good = positive & (me != 0)
        if self.all_positive and bool(good.all()):
            # every row is informative (the usual case): the masked expressions below, without their passes
            return torch.sqrt(w * me * me / var), (y - mu) / me
        if rows == slice(None) and not bool(good.any()):
            raise DataError("no observations informative at iteration (all weights or d mu / d eta are zero)")
        zero = torch.zeros_like(eta)
        rw = torch.where(good, (y - mu) / torch.where(good, me, torch.ones_like(me)), zero)
        sw = torch.where(good, torch.sqrt(w * me * me / torch.where(good, var, torch.ones_like(var))), zero)
        return sw, rw

    def _newton_terms(self, eta: torch.Tensor, rows: slice):
        """First and second derivatives in eta of half the deviance, row by row (autograd: jvp of grad with ones)."""
        y, w, link, fam = self.y[rows], self.weights[rows], self.link, self.family

        def nll(e):
            return 0.5 * fam.dev_resids(y, link.linkinv(e), w).sum()

        return quiet(torch.func.jvp)(torch.func.grad(nll), (eta,), (torch.ones_like(eta),))

    def at(self, coef: torch.Tensor, want: str | None = None, est: list[int] | None = None) -> Pass:
        """One pass at ``coef``: eta, mu, deviance and validity; with ``want`` the next step's normal equations.

        Parameters
        ----------
        coef : (p,) coefficients of the estimated columns (non-estimable ones 0).
        want : None, "fisher" (X'WX, X'W r at the working weights) or "newton" (observed information).
        est : estimable positions among the estimated columns, for the normal equations.

        Returns
        -------
        Pass
        """
        n = self.y.shape[0]
        eta = torch.empty(n, dtype=self.dtype, device=self.device)
        mu = torch.empty_like(eta)
        dev, valid = 0.0, True
        cols = None if est is None or list(est) == list(range(self.p)) else torch.as_tensor(est, device=self.device)
        k = self.p if est is None else len(est)
        H = torch.zeros(k, k, dtype=self.dtype, device=self.device) if want else None
        g = torch.zeros(k, dtype=self.dtype, device=self.device) if want else None
        for rows, X in self.blocks():
            e = X @ coef + self.offset[rows]
            m = self.link.linkinv(e)
            eta[rows], mu[rows] = e, m
            dev += float(self.family.dev_resids(self.y[rows], m, self.weights[rows]).sum())
            valid = valid and self.link.valideta(e) and self.family.validmu(m)
            if want and valid and np.isfinite(dev):
                Xe = X if cols is None else X.index_select(1, cols)
                if want == "fisher":
                    sw, rw = self.working(e, m, rows)
                    h, v = sw * sw, sw * sw * rw
                else:
                    d1, h = self._newton_terms(e, rows)
                    v = -d1
                g += Xe.T @ v
                H += (Xe * h[:, None]).T @ Xe
        ok = valid and np.isfinite(dev)
        return Pass(eta, mu, dev if np.isfinite(dev) else float("inf"), ok, H if ok else None, g if ok else None)

    def linear_predictor(self, coef: torch.Tensor) -> torch.Tensor:
        """eta = X coef + offset (+ the fixed coefficients' part), one pass."""
        return self.at(coef).eta

    def qr_step(self, eta: torch.Tensor, mu: torch.Tensor, tol: float) -> QRFit:
        """A full IRLS step at (eta, mu): weighted least squares of the working response, by QR with R's rank detection.

        Returns
        -------
        QRFit over the estimated columns (its pivot indexes them).
        """
        sw, rw = self.working(eta, mu)
        z = (eta - self.offset) + rw
        p = self.p

        def chunks():
            for rows, X in self.blocks():
                yield LinearResidual(X, z[rows], sw[rows])

        fit = qr_solve(chunks, p, tol, self.device, self.dtype, accurate=False)
        if fit.rank > self.y.shape[0]:
            raise DataError(f"X matrix has rank {fit.rank}, but only {self.y.shape[0]} observations")
        return fit


def cholesky_step(b: torch.Tensor, est: list[int], P: Pass) -> torch.Tensor | None:
    """b + H^{-1} g on the estimable coefficients, from a pass's normal equations; None if H is not positive definite."""
    if P.H is None:
        return None
    L, info = torch.linalg.cholesky_ex(P.H)
    if int(info) != 0 or not bool(torch.isfinite(P.g).all()):
        return None
    new = b.clone()
    new[est] += torch.cholesky_solve(P.g.unsqueeze(1), L).squeeze(1)
    return new
