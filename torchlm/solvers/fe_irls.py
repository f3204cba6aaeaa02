"""Least squares and IRLS with absorbed fixed effects: the within transform, then R's QR on the slopes.

OLS: the slopes of y ~ X + dummies are those of the within-transformed y~ on X~ (Frisch-Waugh-Lovell),
and the residuals are the same. A GLM repeats this with the working weights and response of each
IRLS step (fixest's feglm, Stammann 2018): the linear predictor is the working response less the
within residual, so the fixed effects' values are never needed to iterate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from torchlm.errors import FitError, warn
from torchlm.models.families import Family
from torchlm.solvers.absorb import Absorber
from torchlm.solvers.least_squares import linear_chunks, qr_solve, unscaled_cov

# a slope whose within-transformed norm is below this share of its norm is collinear with the fixed effects
# (fixest's collin.tol is 1e-10 on squared norms; R's lm, with the dummies, would say 1e-7 on norms)
COLLINEAR_FE = 1e-5


@dataclass
class WithinFit:
    """One weighted least-squares fit of the within-transformed problem.

    coef : (p,) slopes, NaN where removed; est : the estimable columns; Xt : (n, p) within design;
    resid : (n,) within residual (z~ - X~ b); bread : (r, r) (X~'WX~)^-1 over ``est`` in order;
    collinear_fe : columns collinear with the fixed effects.
    """

    coef: np.ndarray
    est: list[int]
    Xt: torch.Tensor
    resid: torch.Tensor
    bread: torch.Tensor
    collinear_fe: list[int]
    zt: torch.Tensor


def within_fit(X: torch.Tensor, z: torch.Tensor, w: torch.Tensor | None, absorber: Absorber | None,
               tol: float = 1e-7, refine: bool = True) -> WithinFit:
    """The weighted least-squares fit of z on X with the fixed effects absorbed (R's rank detection among the slopes).

    Parameters
    ----------
    X : (n, p) slopes; z : (n,) response; w : (n,) weights or None; absorber : the fixed effects or None.
    tol : R's lm.fit tolerance for the slopes' pivoting.
    refine : the absorption's second pass (see Absorber.residualize).

    Returns
    -------
    WithinFit
    """
    n, p = X.shape
    Z = torch.cat([X, z.unsqueeze(1)], dim=1)
    Zt = absorber.residualize(Z, refine) if absorber is not None else Z
    Xt, zt = Zt[:, :p], Zt[:, p]
    collinear_fe: list[int] = []
    if absorber is not None and p:
        ww = (torch.ones_like(z) if w is None else w).unsqueeze(0)
        before = (ww @ (X * X)).squeeze(0).sqrt()
        after = (ww @ (Xt * Xt)).squeeze(0).sqrt()
        collinear_fe = [j for j in range(p) if not after[j] > COLLINEAR_FE * before[j]]
    cols = [j for j in range(p) if j not in collinear_fe]
    coef = np.full(p, np.nan)
    if not cols:
        return WithinFit(coef, [], Xt, zt.clone(), torch.zeros((0, 0), dtype=X.dtype, device=X.device),
                         collinear_fe, zt)
    Xc = (Xt if len(cols) == p else Xt[:, cols]).cpu().numpy()
    wn = None if w is None else w.cpu().numpy()
    chunks = linear_chunks(Xc, zt.cpu().numpy(), wn, None, X.device, X.dtype)
    qr = qr_solve(chunks, len(cols), tol, X.device, X.dtype, accurate=n * len(cols) <= 2_000_000)
    est_local = sorted(qr.pivot[: qr.rank])
    C = unscaled_cov(qr, chunks)
    order = np.argsort(qr.pivot[: qr.rank])
    bread = C[order][:, order]
    for j in est_local:
        coef[cols[j]] = qr.coef[j]
    est = [cols[j] for j in est_local]
    b = torch.as_tensor(coef[est], dtype=X.dtype, device=X.device)
    resid = zt - Xt[:, est] @ b if est else zt.clone()
    return WithinFit(coef, est, Xt, resid, bread, collinear_fe, zt)


def inner_step(X: torch.Tensor, z: torch.Tensor, w: torch.Tensor, absorber: Absorber | None,
               est: list[int]) -> tuple[torch.Tensor, list[int]] | None:
    """An IRLS pass's within residual z~ - X~ b, b from the normal equations of the slopes ``est``.

    The passes before the last only move the linear predictor towards the optimum, which each pass
    recomputes from the data: the normal equations' rounding does not accumulate, and the last pass is
    :func:`within_fit`'s QR. Slopes collinear with the fixed effects (within norm below COLLINEAR_FE of
    their norm) are left out. None where the Cholesky factorization fails (then the caller uses within_fit).

    Returns
    -------
    (torch.Tensor (n,), list of int) or None
        The residual and the slopes used.
    """
    Xe = X[:, est] if len(est) < X.shape[1] else X
    Z = torch.cat([Xe, z.unsqueeze(1)], dim=1)
    if absorber is not None:
        G, raw = absorber.within_gram(Z)
        d, d0 = torch.diagonal(G)[:-1], torch.diagonal(raw)[:-1]
        ok = [j for j in range(len(est)) if bool(d[j] > COLLINEAR_FE ** 2 * d0[j])]
        if len(ok) < len(est):
            return inner_step(X, z, w, absorber, [est[j] for j in ok])
    else:
        G = Z.T @ (w.unsqueeze(1) * Z)
    k = len(est)
    if not k:
        v = z.unsqueeze(1)
    else:
        L, info = torch.linalg.cholesky_ex(G[:k, :k])
        if int(info):
            return None
        b = torch.cholesky_solve(G[:k, k:], L)
        v = (z - Xe @ b[:, 0]).unsqueeze(1)
    # the residual z~ - X~ b is the within transform of z - X b: one column to project
    return (absorber.residualize(v, refine=False) if absorber is not None else v)[:, 0], est


@dataclass
class IRLSState:
    """The converged IRLS pass: the within fit, its working weights and the means."""

    fit: WithinFit
    W: torch.Tensor
    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    iterations: int
    absorber: Absorber | None


def fe_irls(X: torch.Tensor, y: torch.Tensor, prior: torch.Tensor, offset: torch.Tensor, family: Family,
            make_absorber: Callable[[torch.Tensor], Absorber | None], *, tol: float = 1e-10,
            maxit: int = 100) -> IRLSState:
    """IRLS for a GLM with absorbed fixed effects; convergence on the deviance's relative change (R's glm.control).

    Parameters
    ----------
    X : (n, p) slopes; y : response; prior : prior weights; offset : (n,) offset (zeros for none).
    family : a torchlm family.
    make_absorber : weights -> Absorber (None without fixed effects), called for each pass's working weights.
    tol, maxit : stop when |dev - dev_old| / (|dev| + 0.1) < tol; warn after maxit passes.

    Returns
    -------
    IRLSState
    """
    link = family.link
    y0, _, mu = family.initialize(y, prior)
    eta = link.linkfun(mu)
    dev_old = dev = float(family.dev_resids(y0, mu, prior).sum())
    it = 0
    est = list(range(X.shape[1]))
    for it in range(1, maxit + 1):
        d = link.mu_eta(eta)
        W = prior * d * d / family.variance(mu)
        z = eta - offset + (y0 - mu) / d
        absorber = make_absorber(W)
        step = inner_step(X, z, W, absorber, est)
        if step is None:
            fit = within_fit(X, z, W, absorber, refine=False)
            resid, est = fit.resid, fit.est
        else:
            resid, est = step
        eta_new = offset + z - resid
        mu_new = link.linkinv(eta_new)
        dev = float(family.dev_resids(y0, mu_new, prior).sum())
        halvings = 0
        while not (np.isfinite(dev) and family.validmu(mu_new) and link.valideta(eta_new)) or (
                dev > dev_old * (1 + 1e-8) + 1e-8 and halvings < 30 and it > 1):
            halvings += 1
            if halvings > 30:
                raise FitError("the fit diverged: no step halving gives a finite deviance (separation?)")
            eta_new = (eta_new + eta) / 2
            mu_new = link.linkinv(eta_new)
            dev = float(family.dev_resids(y0, mu_new, prior).sum())
        eta, mu = eta_new, mu_new
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            break
        dev_old = dev
    else:
        warn(f"IRLS did not converge in {maxit} iterations (relative deviance change "
             f"{abs(dev - dev_old) / (abs(dev) + 0.1):.3g}; raise maxit=)")
    # the covariance at the converged means (fixest's): one more weighted within fit at their weights
    d = link.mu_eta(eta)
    W = prior * d * d / family.variance(mu)
    absorber = make_absorber(W)
    # no refinement pass: the absorption is exact to rounding, far below the IRLS tolerance it serves
    fit = within_fit(X, eta - offset + (y0 - mu) / d, W, absorber, refine=False)
    return IRLSState(fit, W, eta, mu, dev, it, absorber)
