"""lm.fit of a design with a very many-level factor (frame/large_factor.py), by the within transformation.

With treatment contrasts (or the full dummy coding) the design Z = [1, X_b, D C, X_a] has the same
column space as [D, X] (X: the other columns without the intercept) and its coefficients are the
levels' effects a_g = ybar_g - xbar_g' b (the intercept a_1, the dummy of level g a_g - a_1) and the
slopes b of the within-transformed regression (Frisch-Waugh-Lovell):

    b = G^-1 X~'W y~,  G = X~'W X~ = R_w'R_w,  X~ = X - xbar_code, y~ = y - ybar_code.

R's (L + k)^2 factor is never formed: O(n k^2) for the within QR and O(L k) for the rest. R's rank
detection is applied where it is exact (a column after the factor is aliased when its within residual
norm is below tol times its norm); a model with any aliased column, or an empty level, is refused
with the columns named (R would give NA there; the smaller factors of frame/factor_block.py give R's
pattern). The covariances of these coefficients are inference/factor_blocks.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from torchlm.errors import ModelInputError
from torchlm.solvers.absorb import Absorber
from torchlm.solvers.least_squares import QRFit


@dataclass(frozen=True)
class WithinFit:
    """The pieces of a within fit that its coefficients and covariances are made of.

    Attributes
    ----------
    codes : (n,) level codes; w : (n,) prior weights (ones without weights).
    counts : (L,) the levels' weight sums n_g; xbar : (L, k) their weighted means of X.
    Xt : (n, k) the within-transformed X~; Rw : (k, k) upper factor of sqrt(w) X~.
    b : (k,) slopes; a : (L,) the levels' effects.
    level, ref : (p,) per coefficient, the level g of a_g in it (-1 for a slope) and whether a_1 is subtracted
        (a treatment dummy); slope : (p,) the slope it is (-1 for a level coefficient).
    P : (p, k) theta = A U y + P G^-1 X~'W y with A's rows e_g - ref e_1 (see inference/factor_blocks.py).
    """

    codes: torch.Tensor
    w: torch.Tensor
    counts: torch.Tensor
    xbar: torch.Tensor
    Xt: torch.Tensor
    Rw: torch.Tensor
    b: torch.Tensor
    a: torch.Tensor
    level: np.ndarray
    ref: np.ndarray
    slope: np.ndarray
    P: torch.Tensor

    @property
    def levels(self) -> int:
        """L."""
        return int(self.counts.shape[0])

    @property
    def coefficients(self) -> np.ndarray:
        """(p,) the coefficients in formula order.

        Returns
        -------
        numpy.ndarray
        """
        a, b = self.a.cpu().double().numpy(), self.b.cpu().double().numpy()
        on, sl = self.level >= 0, self.slope >= 0
        theta = np.zeros(len(self.level))
        theta[on] = a[self.level[on]] - self.ref[on] * a[0]
        theta[sl] = b[self.slope[sl]]
        return theta


def _coefficient_map(p: int, pos: int, m: int, intercept: int | None, slope_cols: list[int], treatment: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level, ref, slope) per design column: see WithinFit."""
    level, ref, slope = np.full(p, -1), np.zeros(p, dtype=bool), np.full(p, -1)
    for t in range(m):
        level[pos + t] = t + 1 if treatment else t
        ref[pos + t] = treatment
    for j_rest in range(p - m):
        j = j_rest if j_rest < pos else j_rest + m
        if j_rest == intercept:
            level[j] = 0
        else:
            slope[j] = slope_cols.index(j_rest)
    return level, ref, slope


def _check_rank(names: list[str], norms: torch.Tensor, Rw: torch.Tensor, Rb: torch.Tensor, before: int,
                tol: float, variable: str) -> None:
    """Refuse a model R would give an NA in: a column whose residual norm is below tol times its norm."""
    k = norms.shape[0]
    within = torch.diagonal(Rw)[:k].abs() < tol * norms
    raw = torch.zeros_like(within)
    if before:
        start = Rb.shape[0] - 1 - before  # Rb over [intercept?, X_b, y]
        raw[:before] = torch.diagonal(Rb)[start:start + before].abs() < tol * norms[:before]
    bad = [names[j] for j in range(k) if bool(within[j] or raw[j])]
    if bad:
        raise ModelInputError(
            f"the columns {bad} are collinear with the factor {variable!r} (constant within its levels) or with "
            "other columns: R would report NA coefficients here, which for a factor with this many levels torchlm "
            "does not reproduce; drop them, or absorb the factor with tl.feols (which removes them)")


def within_fit(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, codes: torch.Tensor, L: int, *,
               position: int, intercept: int | None, treatment: bool, names: list[str], variable: str,
               tol: float = 1e-7) -> tuple[QRFit, WithinFit]:
    """lm.fit of X with a treatment-coded (or fully coded) factor inserted at ``position``, from its codes.

    Parameters
    ----------
    X : (n, k0) the other columns in formula order (the intercept among them at ``intercept``).
    y : (n,) response minus offset; w : (n,) prior weights or None; codes : (n,) level codes 0..L-1.
    position : where the factor's columns start among the design's; treatment : True with an intercept
        (the first level the reference), False for the full dummy coding.
    names : the names of X's columns (for messages); variable : the factor's.
    tol : R's rank-detection tolerance.

    Raises
    ------
    ModelInputError
        For an empty level or an aliased column (see the module's docstring).

    Returns
    -------
    (QRFit, WithinFit)
        The fit in formula order (R = an empty placeholder, never formed; effects carry anova's sums of
        squares by term), and the within pieces.
    """
    dt = X.dtype
    wv = torch.ones_like(y) if w is None else w
    counts = torch.bincount(codes, weights=wv, minlength=L).to(dt)
    if bool((counts <= 0).any()):
        raise ModelInputError(f"{int((counts <= 0).sum())} level(s) of {variable!r} have no observation with a "
                              "non-zero weight: R would report their coefficients as NA")
    slope_cols = [j for j in range(X.shape[1]) if j != intercept]
    Xn = X[:, slope_cols]
    before = sum(1 for j in slope_cols if j < position)
    Z = torch.cat([Xn, y.unsqueeze(1)], dim=1)
    sums = Z.new_zeros((L, Z.shape[1])).index_add_(0, codes, wv.unsqueeze(1) * Z)
    means = sums / counts.unsqueeze(1)
    Zt = Absorber([codes], [L], w, dtype=dt).residualize(Z)
    sw = wv.sqrt().unsqueeze(1)
    Rw = torch.linalg.qr(sw * Zt, mode="r")[1]
    # the columns before the factor (the intercept first) and the response on their own: their sequential
    # effects, and the factor's sum of squares as the drop from their RSS to the within RSS
    Rb = torch.linalg.qr(sw * torch.cat([X[:, :position], y.unsqueeze(1)], dim=1), mode="r")[1]
    k = Xn.shape[1]
    norms = (sw * Xn).norm(dim=0)
    _check_rank([names[j] for j in slope_cols], norms, Rw, Rb, before, tol, variable)
    b = torch.linalg.solve_triangular(Rw[:k, :k], Rw[:k, k:], upper=True).squeeze(1) if k else Z.new_zeros(0)
    xbar = means[:, :k]
    a = means[:, k] - xbar @ b
    m = L - 1 if treatment else L
    p = X.shape[1] + m
    level, ref, slope = _coefficient_map(p, position, m, intercept, slope_cols, treatment)
    P = X.new_zeros((p, k))
    lev = torch.as_tensor(level)
    on = lev >= 0
    P[on] = -(xbar[lev[on]] - torch.as_tensor(ref[on.numpy()], dtype=dt).unsqueeze(1) * xbar[0])
    for j in np.flatnonzero(slope >= 0):
        P[j, slope[j]] = 1.0
    wf = WithinFit(codes=codes, w=wv, counts=counts, xbar=xbar, Xt=Zt[:, :k], Rw=Rw[:k, :k], b=b, a=a,
                   level=level, ref=ref, slope=slope, P=P)
    coef = wf.coefficients
    resid = y - Xn @ b - a[codes]
    rss = float((wv * resid * resid).sum())
    fit = QRFit(coef=coef, R=X.new_zeros((0, 0)), pivot=list(range(p)), rank=p,
                effects=_effects(Rb, Rw, before, position, m, p), rss=rss)
    return fit, wf


def _effects(Rb: torch.Tensor, Rw: torch.Tensor, before: int, position: int, m: int, p: int) -> np.ndarray:
    """R's effects where anova reads them, in formula order: the columns before the factor and after it as R's
    QR gives them (up to sign), the factor's sum of squares in its first effect (its other effects 0)."""
    out = np.zeros(p)
    k = Rw.shape[0] - 1
    within_rest = float((Rw[before:, k] ** 2).sum())  # RSS of y on [D, X_b]
    head = Rb[:-1, -1].cpu().double().numpy()
    out[:len(head)] = head
    ss_factor = float(Rb[-1, -1] ** 2) - within_rest
    out[position] = np.sqrt(max(ss_factor, 0.0))
    tail = Rw[before:k, k].cpu().double().numpy()
    out[position + m:position + m + len(tail)] = tail
    return out


def fit_large_factor(design: Any, tol: float, device: torch.device, dtype: torch.dtype) -> tuple[QRFit, WithinFit]:
    """within_fit of a LargeFactorDesign (frame/large_factor.py) on ``device``.

    Returns
    -------
    (QRFit, WithinFit)
    """
    n = len(design.y)
    X = torch.as_tensor(np.column_stack(design.columns) if design.columns else np.zeros((n, 0)), dtype=dtype,
                        device=device)
    target = design.y if design.offset is None else design.y - design.offset
    y = torch.as_tensor(target, dtype=dtype, device=device)
    w = None if design.weights is None else torch.as_tensor(design.weights, dtype=dtype, device=device)
    codes = torch.as_tensor(design.block.codes, device=device)
    intercept = [j for j, a in enumerate(design.rest_assign) if a == "1"]
    return within_fit(X, y, w, codes, int(design.block.coding.shape[0]), position=design.block.position,
                      intercept=intercept[0] if intercept else None, treatment=design.treatment,
                      names=list(design.rest_names), variable=design.block.variable, tol=tol)
