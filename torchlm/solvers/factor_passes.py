"""IRLS passes over a design whose many-level factor is kept as codes (frame/factor_block.py): no dummy block.

A pass needs eta = Z b, and for the next step Z_S' H Z_S and Z_S' v over the estimated columns S.
With Z = [X, D C] (in formula order) those are X's products plus group sums:
X'HX, (D'HX)'C and C' diag(D'h) C, each O(n k^2) or O(L m^2), where a pass by row blocks costs
O(n p^2) with p = k + m. A full IRLS step is solvers/factor_qr.py's QR with the working weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm.errors import ModelInputError
from torchlm.solvers.factor_qr import FactorBlock, factor_qr
from torchlm.solvers.least_squares import QRFit


class FactorTerms:
    """A FactorDesign's columns as tensors, and the products IRLS and sandwich ask of them.

    Parameters
    ----------
    design : the FactorDesign; device, dtype : where the products are made.
    """

    @classmethod
    def of(cls, design: Any, device: torch.device | None, dtype: torch.dtype) -> FactorTerms:
        """The design's terms on ``device``, made once per design, device and dtype (stacking its columns
        is a copy of the design).

        Returns
        -------
        FactorTerms
        """
        dev = torch.device("cpu" if device is None else device)
        key = (str(dev), dtype)
        if key not in design.cache:
            design.cache[key] = cls(design, dev, dtype)
        return design.cache[key]

    def __init__(self, design: Any, device: torch.device, dtype: torch.dtype):
        self.design = design
        n = len(design.y)
        self.X = torch.as_tensor(np.column_stack(design.columns) if design.columns else np.zeros((n, 0)),
                                 dtype=dtype, device=device)
        self.codes = torch.as_tensor(design.factor_codes, device=device)
        self.C = torch.as_tensor(design.factor_coding, dtype=dtype, device=device)
        self.pos, self.m = design.factor_position, design.factor_coding.shape[1]
        self.L = design.factor_coding.shape[0]
        k = self.X.shape[1]
        # position in the design of each X column, and of the factor's columns
        self.x_at = [j if j < self.pos else j + self.m for j in range(k)]
        self.f_at = list(range(self.pos, self.pos + self.m))
        intercept = [j for j, a in enumerate(design.rest_assign) if a == "1"]
        self.intercept = intercept[0] if intercept else None

    @property
    def p(self) -> int:
        """Columns of the design."""
        return self.X.shape[1] + self.m

    def _sums(self, v: torch.Tensor) -> torch.Tensor:
        return v.new_zeros((self.L,) + v.shape[1:]).index_add_(0, self.codes, v)

    def eta(self, beta: torch.Tensor) -> torch.Tensor:
        """Z beta for a full (p,) coefficient vector.

        Returns
        -------
        torch.Tensor (n,)
        """
        bx = beta[self.x_at]
        return self.X @ bx + (self.C @ beta[self.f_at])[self.codes]

    def gram(self, h: torch.Tensor) -> torch.Tensor:
        """Z' diag(h) Z over every column, in formula order.

        Returns
        -------
        torch.Tensor (p, p)
        """
        Xh = self.X * h.unsqueeze(1)
        G = self.X.new_zeros((self.p, self.p))
        xi, fi = torch.as_tensor(self.x_at), torch.as_tensor(self.f_at)
        G[xi.unsqueeze(1), xi.unsqueeze(0)] = self.X.T @ Xh
        cross = self._sums(Xh).T @ self.C
        G[xi.unsqueeze(1), fi.unsqueeze(0)] = cross
        G[fi.unsqueeze(1), xi.unsqueeze(0)] = cross.T
        G[fi.unsqueeze(1), fi.unsqueeze(0)] = self.C.T @ (self._sums(h).unsqueeze(1) * self.C)
        return G

    def xtv(self, v: torch.Tensor) -> torch.Tensor:
        """Z' v, in formula order.

        Returns
        -------
        torch.Tensor (p,)
        """
        out = v.new_zeros(self.p)
        out[self.x_at] = self.X.T @ v
        out[self.f_at] = self.C.T @ self._sums(v)
        return out

    def qr(self, z: torch.Tensor, w: torch.Tensor | None, tol: float) -> QRFit | None:
        """The weighted least-squares fit of z on every column, by factor_qr.

        Returns
        -------
        QRFit or None
            None where the structure does not apply (a level whose rows all have weight 0, an intercept-free
            coding that does not span the dummies): the caller reads the design by row blocks instead.
        """
        if w is not None and bool((self._sums(w) <= 0).any()):
            return None
        block = FactorBlock(self.codes, self.C, self.pos)
        try:
            return factor_qr(self.X, z, w, block, intercept=self.intercept, tol=tol)[0]
        except ModelInputError:
            return None


def factor_fit(design: Any, tol: float, device: torch.device, dtype: torch.dtype) -> QRFit | None:
    """lm.fit of a FactorDesign (frame/factor_block.py) without its dummy block: FactorTerms.qr of y - offset.

    Returns
    -------
    QRFit or None
        As FactorTerms.qr.
    """
    terms = FactorTerms.of(design, device, dtype)
    y = torch.as_tensor(np.asarray(design.y, dtype=np.float64), dtype=dtype, device=terms.X.device)
    if design.offset is not None:
        y = y - torch.as_tensor(design.offset, dtype=dtype, device=terms.X.device)
    w = None if design.weights is None else torch.as_tensor(design.weights, dtype=dtype, device=terms.X.device)
    return terms.qr(y, w, tol)


def factor_pass(passes: Any, coef: torch.Tensor, want: str | None,
                est: list[int] | None) -> tuple[torch.Tensor, torch.Tensor, float, bool, Any, Any]:
    """GLMPasses.at() for a FactorDesign: (eta, mu, deviance, valid, H, g) from the structured products.

    Returns
    -------
    tuple
        As irls.Pass's fields.
    """
    ft: FactorTerms = passes._factor
    beta = coef.new_zeros(ft.p)
    beta[passes.columns] = coef
    e = ft.eta(beta) + passes.offset
    m = passes.link.linkinv(e)
    dev = float(passes.family.dev_resids(passes.y, m, passes.weights).sum())
    ok = bool(passes.link.valideta(e) and passes.family.validmu(m)) and bool(np.isfinite(dev))
    H = g = None
    if want and ok:
        cols = passes.columns if est is None else [passes.columns[i] for i in est]
        if want == "fisher":
            sw, rw = passes.working(e, m)
            h, v = sw * sw, sw * sw * rw
        else:
            d1, h = passes._newton_terms(e, slice(None))
            v = -d1
        idx = torch.as_tensor(cols, dtype=torch.int64, device=e.device)
        H = ft.gram(h).index_select(0, idx).index_select(1, idx)
        g = ft.xtv(v).index_select(0, idx)
    return e, m, dev if np.isfinite(dev) else float("inf"), ok, H, g
