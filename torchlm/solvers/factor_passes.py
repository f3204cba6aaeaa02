"""IRLS passes over a design whose factor terms are kept as codes (frame/factor_block.py): no dummy block.

A pass needs eta = Z b, and for the next step Z_S' H Z_S and Z_S' v over the estimated columns S.
With Z = [X, D_1 C_1, ...] (in formula order; a slope term diag(x) D C) those are X's products plus
group sums: X'HX, (D_a'HX)'C_a and C_a' (D_a'HD_b) C_b, each O(n k^2) or O(L m^2), where a pass by row
blocks costs O(n p^2) with p = k + sum m. A full IRLS step is solvers/factor_qr.py's QR with the working weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm.errors import NotStructured
from torchlm.solvers.factor_basis import FactorBlock, pair_sums
from torchlm.solvers.factor_qr import factor_qr
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
        codes: dict[str, torch.Tensor] = {}  # one tensor per factor: pair_sums sees a factor's own blocks
        for b in design.blocks:
            codes.setdefault(b.variable, torch.as_tensor(b.codes, device=device))
        self.blocks = [FactorBlock(codes[b.variable], torch.as_tensor(b.coding, dtype=dtype, device=device),
                                   b.position, None if b.values is None else
                                   torch.as_tensor(b.values, dtype=dtype, device=device)) for b in design.blocks]
        # position in the design of each X column, and of each block's columns
        self.x_at = list(design.rest_at)
        self.f_at = [list(range(b.position, b.position + b.width)) for b in self.blocks]
        intercept = [j for j, a in enumerate(design.rest_assign) if a == "1"]
        self.intercept = intercept[0] if intercept else None

    @property
    def p(self) -> int:
        """Columns of the design."""
        return self.X.shape[1] + sum(b.width for b in self.blocks)

    def eta(self, beta: torch.Tensor) -> torch.Tensor:
        """Z beta for a full (p,) coefficient vector.

        Returns
        -------
        torch.Tensor (n,)
        """
        return self.rows_times(beta.unsqueeze(1)).squeeze(1)

    def rows_times(self, B: torch.Tensor) -> torch.Tensor:
        """Z B for a (p, q) matrix, without forming Z: O(n (k + r) q).

        Returns
        -------
        torch.Tensor (n, q)
        """
        out = self.X @ B[self.x_at]
        for b, at in zip(self.blocks, self.f_at):
            out = out + b.gather(b.contrasts @ B[at])
        return out

    def gram(self, h: torch.Tensor) -> torch.Tensor:
        """Z' diag(h) Z over every column, in formula order.

        Returns
        -------
        torch.Tensor (p, p)
        """
        Xh = self.X * h.unsqueeze(1)
        G = self.X.new_zeros((self.p, self.p))
        xi = torch.as_tensor(self.x_at, dtype=torch.int64)
        fi = [torch.as_tensor(at, dtype=torch.int64) for at in self.f_at]
        G[xi.unsqueeze(1), xi.unsqueeze(0)] = self.X.T @ Xh
        for a, (ba, ia) in enumerate(zip(self.blocks, fi)):
            cross = ba.sums(Xh).T @ ba.contrasts
            G[xi.unsqueeze(1), ia.unsqueeze(0)] = cross
            G[ia.unsqueeze(1), xi.unsqueeze(0)] = cross.T
            for bb, ib in zip(self.blocks[a:], fi[a:]):
                S = ba.contrasts.T @ pair_sums(ba, bb, h) @ bb.contrasts
                G[ia.unsqueeze(1), ib.unsqueeze(0)] = S
                G[ib.unsqueeze(1), ia.unsqueeze(0)] = S.T
        return G

    def xtv(self, v: torch.Tensor) -> torch.Tensor:
        """Z' v, in formula order.

        Returns
        -------
        torch.Tensor (p,)
        """
        out = v.new_zeros(self.p)
        out[self.x_at] = self.X.T @ v
        for b, at in zip(self.blocks, self.f_at):
            out[at] = b.contrasts.T @ b.sums(v)
        return out

    def qr(self, z: torch.Tensor, w: torch.Tensor | None, tol: float,
           columns: list[int] | None = None) -> QRFit | None:
        """The weighted least-squares fit of z on the columns (None: every column), by factor_qr.

        Returns
        -------
        QRFit or None
            None where the structure does not apply (a level whose rows all have weight 0, a near dependence
            among the factors' columns): the caller reads the design by row blocks instead.
        """
        try:
            return factor_qr(self.X, z, w, self.blocks, intercept=self.intercept, tol=tol, columns=columns)[0]
        except NotStructured:
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


def coded_rows_times(fit: Any, Xw: Any, C: np.ndarray) -> np.ndarray | None:
    """Xw @ C for a fit's weighted design over its estimable columns, from its factors' codes (O(n k q)).

    Parameters
    ----------
    fit : an lm or glm fit; Xw : its weighted design (sources/row_blocks.WorkingRows); C : (k, q).

    Returns
    -------
    numpy.ndarray (rows of Xw, q), or None where the design keeps no factor as codes (read Xw's rows).
    """
    design = getattr(fit, "design", None)
    blocks = getattr(design, "blocks", None)
    # frame/large_factor.py's sparse codings: its result refuses what needs n x L before coming here
    if not blocks or not hasattr(Xw, "positions") or not all(isinstance(b.coding, np.ndarray) for b in blocks):
        return None
    terms = FactorTerms.of(design, None, torch.float64)
    B = torch.zeros((terms.p, C.shape[1]), dtype=torch.float64)
    B[[fit.names.index(nm) for nm in fit.estimable]] = torch.as_tensor(np.asarray(C, dtype=np.float64))
    prod = terms.rows_times(B)
    if Xw.sw is not None:
        prod = prod * torch.as_tensor(np.asarray(Xw.sw, dtype=np.float64)).unsqueeze(1)
    out = prod.numpy()
    return out if Xw.positions is None else out[Xw.positions]
