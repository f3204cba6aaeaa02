"""Leverages (hat values) h_i = x_i (X'WX)^{-1} x_i' of a weighted design, by row blocks, never n x n."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm.errors import NotStructured
from torchlm.frame.factor_block import FactorDesign
from torchlm.solvers.factor_basis import FactorBasis, FactorBlock
from torchlm.solvers.least_squares import chunk_rows
from torchlm.sources.row_blocks import WorkingRows


def leverages(Xw: np.ndarray | WorkingRows, unscaled: torch.Tensor,
              column_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Hat values h_i = Xw_i (X'WX)^{-1} Xw_i' as row sums of (Xw D L)², L L' = D^-1 (X'WX)^{-1} D^-1; never n x n.

    Parameters
    ----------
    Xw : numpy.ndarray or WorkingRows
        (n, k) weighted design, read by row slices.
    unscaled : torch.Tensor
        (k, k) (X'WX)^{-1}, positive definite; or, with ``column_scale`` d, the representable C' with
        (X'WX)^{-1} = D C' D, D = diag(d) (a fit of data near 1e300, see ``fit_leverages``).
    column_scale : torch.Tensor or None
        (k,) the d above; None for 1.

    Returns
    -------
    torch.Tensor
        (n,) float64 leverages, on the device of ``unscaled``.
    """
    n, k = Xw.shape
    L, info = torch.linalg.cholesky_ex(unscaled)
    if int(info) != 0:
        # (X'WX)^{-1} of a nearly separated glm (variances of 1e15 and more) can lose positive
        # definiteness to rounding: a symmetric square root, with rounding's negative eigenvalues at 0
        vals, vecs = torch.linalg.eigh((unscaled + unscaled.T) / 2)
        L = vecs * vals.clamp(min=0).sqrt()
    h = torch.empty(n, dtype=torch.float64, device=unscaled.device)
    step = chunk_rows(n, k)
    for s in range(0, n, step):
        x = torch.as_tensor(np.ascontiguousarray(Xw[s:s + step], dtype=np.float64), device=unscaled.device)
        if column_scale is not None:
            x = x * column_scale
        h[s:s + step] = (x @ L).square().sum(dim=1)
    return h


def is_scaled(fit: Any) -> bool:
    """Whether the fit was solved with its columns scaled (data near 1e±300; see solvers.least_squares.Scaling).

    Parameters
    ----------
    fit : ModelResult
        A fitted model.

    Returns
    -------
    bool
        True when (X'WX)^{-1} is held as representable parts (C', d) rather than as itself.
    """
    return getattr(getattr(fit, "_qr", None), "scaling", None) is not None


def factor_leverages(design: FactorDesign, sw: np.ndarray | None = None, rank: int | None = None) -> np.ndarray | None:
    """Hat values of a FactorDesign's weighted design without its dummies: w / n_g + w x~'(X~'WX~)^+ x~.

    ``sw`` are the square roots of the weights over the design's rows (a glm's working weights; None: the
    prior weights, or 1); ``rank`` the fit's rank (R's decisions): the within part's is what is left of it.

    The hat matrix is the projection on the design's column space: the factors' level columns' (which
    R's codings span: solvers/factor_basis.py) plus the within-transformed other columns'. O(n k^2 + n r^2)
    where the row blocks cost O(n p^2).

    Returns
    -------
    numpy.ndarray (n,) or None
        None where a level's weights are all 0, or the codings do not span the level columns (``rank`` is
        below the factors' span's): then the row blocks are read.
    """
    if sw is not None:
        w = np.asarray(sw, dtype=float) ** 2
    else:
        w = np.ones(len(design.y)) if design.weights is None else np.asarray(design.weights, dtype=float)
    wt = torch.as_tensor(w)
    blocks = [FactorBlock(torch.as_tensor(b.codes), torch.zeros((b.coding.shape[0], 0), dtype=torch.float64),
                          b.position, None if b.values is None else torch.as_tensor(b.values, dtype=torch.float64))
              for b in design.blocks]
    try:
        basis = FactorBasis(blocks, wt)
    except NotStructured:
        return None
    h = basis.hat()
    # the intercept is in a plain factor's span; without one it is one of the columns projected after it
    plain = any(b.values is None for b in blocks)
    others = [c for c, a in zip(design.columns, design.rest_assign) if a != "1" or not plain]
    within = rank - basis.rank if rank is not None else None
    if within is not None and not 0 <= within <= len(others):
        return None  # the codings do not span the level columns
    if others and within != 0:
        X = torch.as_tensor(np.column_stack(others), dtype=torch.float64)
        root = wt.sqrt().unsqueeze(1)
        norms = (X * root).norm(dim=0)
        Xt = basis.residualize(X) * root
        # scaled by the columns' own norms: dqrdc2's rule, a residual below 1e-7 of the column is aliased
        U, sv, _ = torch.linalg.svd(Xt / torch.where(norms > 0, norms, 1.0), full_matrices=False)
        found = int((sv > 1e-7).sum())
        if within is not None and found != within:
            return None  # R's decisions differ from these (near-dependent columns): read the rows
        h = h + (U[:, :found] ** 2).sum(1)
    return h.numpy()


def fit_leverages(fit: Any, Xw: np.ndarray | WorkingRows) -> torch.Tensor:
    """A fit's hat values at its working rows (a glm's from its working weights, as R's), also near 1e±300.

    A fit of data near 1e±300 has entries of (X'WX)^{-1} that are 0 or Inf, although the leverages
    are scale-free; lm and glm results offer ``_unscaled_parts()`` = (C', d) with (X'WX)^{-1} = D C' D.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.
    Xw : numpy.ndarray or WorkingRows
        (n, k) its weighted design over the estimable columns.

    Returns
    -------
    torch.Tensor
        (n,) float64 leverages.
    """
    device = getattr(fit, "device", None)
    design = getattr(fit, "design", None)
    if isinstance(design, FactorDesign) and isinstance(Xw, WorkingRows):
        # a factor kept as codes: the leverages without the dummies, at the working weights and rows
        h = factor_leverages(design, Xw.sw, getattr(fit, "rank", None))
        if h is not None:
            return torch.as_tensor(h if Xw.positions is None else h[Xw.positions], device=device)
    parts = getattr(fit, "_unscaled_parts", None)
    if parts is None:
        return leverages(Xw, torch.as_tensor(np.asarray(fit._unscaled(), dtype=np.float64), device=device))
    C, d = parts()
    scale = torch.as_tensor(np.asarray(d, dtype=np.float64), device=device) if is_scaled(fit) else None
    return leverages(Xw, torch.as_tensor(np.asarray(C, dtype=np.float64), device=device), scale)


def forced_leverages(fit: Any, Xw: np.ndarray | WorkingRows) -> torch.Tensor:
    """The fit's leverages as R's lm.influence gives them to sandwich: those above 1 - 10 eps are 1.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.
    Xw : numpy.ndarray or WorkingRows
        (n, k) its weighted design over the estimable columns.

    Returns
    -------
    torch.Tensor
        (n,) float64 leverages.
    """
    # R's lm.influence (behind sandwich's hatvalues) sets h > 1 - 10 eps to exactly 1, so that a
    # point fitted exactly gives HC2-HC5 NaN instead of a finite number made of rounding noise
    h = fit_leverages(fit, Xw)
    return torch.where(h > 1 - 10 * float(np.finfo(float).eps), torch.ones_like(h), h)
