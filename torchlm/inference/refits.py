"""Refits of a fitted lm or glm on some of its design columns, or of a new response: what anova, drop1, add1,
step and car's Anova compare (R refits with lm.fit / glm.fit on columns of the model matrix)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from torchlm.errors import silenced
from torchlm.inference.tables import is_glm
from torchlm.solvers.irls import GLMPasses, IRLSFit, irls
from torchlm.solvers.least_squares import ACCURATE_ELEMENTS, linear_chunks, qr_solve
from torchlm.sources.row_blocks import DesignSource

if TYPE_CHECKING:
    from torchlm.results.protocols import GeneralizedFit


def refit(fit: Any, cols: list[int]) -> tuple[float, int]:
    """Deviance (RSS for lm) and rank of the same model on design columns ``cols``.

    Returns
    -------
    (float, int)
    """
    if is_glm(fit):
        d, rdf = refit_deviance(fit, cols)
        return d, fit.nobs - rdf
    d = fit.design
    return lm_rss(fit, d, d.y, d.weights, d.offset, cols)


def lm_rss(fit: Any, design: Any, y: np.ndarray, weights: np.ndarray | None, offset: np.ndarray | None,
           cols: list[int]) -> tuple[float, int]:
    """Weighted residual sum of squares and rank of least squares of ``y`` on columns ``cols`` of ``design``.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedFit
        Supplies the device, dtype and rank tolerance.
    design : Design
        The design whose columns are used (the fit's, or a larger one of add1).
    y, weights, offset : numpy.ndarray
        Response, prior weights and offset, one per row of ``design`` (weights and offset may be None).
    cols : list of int
        Design columns.

    Returns
    -------
    tuple of (float, int)
        R's deviance(lm.wfit(...)) and the rank.
    """
    n, p = design.shape[0], len(cols)
    chunks = linear_chunks(design, y, weights, offset, fit.device, fit.dtype, columns=cols)
    qr = qr_solve(chunks, p, fit.tol, fit.device, fit.dtype, accurate=n * p <= ACCURATE_ELEMENTS)
    if qr.rss is not None:
        return qr.rss, qr.rank
    # the weighted residual sum of squares at the refit, one more pass over the blocks
    beta = torch.as_tensor(np.nan_to_num(qr.coef), dtype=fit.dtype, device=fit.device)
    return float(sum(float(fn(beta).square().sum()) for fn in chunks())), qr.rank


def refit_deviance(fit: GeneralizedFit, cols: list[int]) -> tuple[float, int]:
    """Deviance and residual df of the same GLM restricted to design columns ``cols`` (R's anova.glm refits).

    Parameters
    ----------
    fit : GeneralizedFit
        The fitted glm: its design, response, weights, offset, family and tolerance are reused.
    cols : list of int
        Design columns to keep.

    Returns
    -------
    tuple of (float, int)
        The refit's deviance and its residual degrees of freedom (nobs minus the refit's rank).
    """
    sub = glm_refit(fit, cols)
    return sub.deviance, fit.nobs - sub.qr.rank


def glm_refit(fit: Any, cols: list[int], design: Any = None, data: tuple | None = None) -> IRLSFit:
    """R's glm.fit of the same GLM (family, glm.control) on columns ``cols`` of its design or of ``design``.

    Parameters
    ----------
    fit : GeneralizedFit
        The fitted glm.
    cols : list of int
        Design columns.
    design : Design, optional
        Another design on rows of the same data (add1's combined one); the fit's by default.
    data : tuple, optional
        (y, weights, offset) tensors of ``design`` after the family's initialize (see :func:`glm_data`).

    Returns
    -------
    IRLSFit
        The refit, started from the family's mustart as R's refits are.
    """
    design = fit.design if design is None else design
    y, w, off = (fit._y, fit._w, fit._offset) if data is None else data
    passes = GLMPasses(DesignSource(design), y, w, off, fit.family, columns=cols)
    with silenced():
        _, _, mu0 = fit.family.initialize(y, w)
        return irls(passes, mustart=mu0, control=dict(fit.control), tol=fit.tol)


def glm_data(fit: Any, design: Any) -> tuple:
    """(y, weights, offset) tensors of another design for the fit's family, as tl.glm makes them.

    Returns
    -------
    tuple of torch.Tensor
    """
    def as_t(a):
        return torch.as_tensor(a, dtype=fit.dtype, device=fit.device)

    n = design.shape[0]
    w = as_t(design.weights) if design.weights is not None else torch.ones(n, dtype=fit.dtype, device=fit.device)
    off = as_t(design.offset) if design.offset is not None else torch.zeros(n, dtype=fit.dtype, device=fit.device)
    y, _, _ = fit.family.initialize(as_t(design.y), w)
    return y, w, off


def working_parts(fit: Any, sub: IRLSFit, data: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """R's glm.fit $residuals and $weights of a refit: working residuals at the estimate, working weights
    of the last iteration (0 off R's good rows).

    Returns
    -------
    tuple of numpy.ndarray
        (residuals, weights).
    """
    y, w, _ = (fit._y, fit._w, fit._offset) if data is None else data
    link = fit.family.link
    me = link.mu_eta(sub.eta)
    me_w = link.mu_eta(sub.weights_eta)
    var = fit.family.variance(sub.weights_mu)
    good = (w > 0) & (me_w != 0)
    ww = torch.where(good, w * me_w**2 / torch.where(good, var, torch.ones_like(var)), torch.zeros_like(var))
    r = torch.where(good & (me != 0), (y - sub.mu) / torch.where(me != 0, me, torch.ones_like(me)),
                    torch.zeros_like(me))
    return r.cpu().double().numpy(), ww.cpu().double().numpy()


def rao_score(fit: Any, design: Any, cols: list[int], r: np.ndarray, w: np.ndarray, intercept: bool,
           offset: np.ndarray | None = None) -> float:
    """R's Rao score: null.deviance - deviance of glm.fit(X, r, w, offset, intercept) (gaussian, identity).

    Returns
    -------
    float
    """
    base = offset if offset is not None else np.zeros_like(r)
    if intercept:
        null = float(np.sum(w * (r - np.sum(w * r) / np.sum(w)) ** 2))
    else:
        null = float(np.sum(w * (r - base) ** 2))
    dev, _ = lm_rss(fit, design, r, w, base, cols)  # zeros, not None: None would be the design's own offset
    return null - dev
