"""A GLM on a row-block source: the passes IRLS makes over the data (R's glm.fit, one block of rows at a time).

The design is never held whole: each pass reads the source's blocks and keeps only per-row vectors
(linear predictor, means) and p x p sums. One pass evaluates the linear predictor, the means, the
deviance and whether the point is valid at some coefficients, and, in the same pass, accumulates the
normal equations of the next step (Fisher scoring: X'WX and X'Wr; Newton with the observed
information: X' diag(d2) X and -X'd1). The QR step (rank detection; the covariance at the estimate)
reads the blocks through lm's QR solver.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError, ModelInputError
from ..families import Family, eps_of
from ..fit import LinearResidual, QRFit, condition_estimate, qr_solve
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
        """eta = X coef + offset (+ the fixed coefficients' part), one pass.

        Returns
        -------
        torch.Tensor
            (n,).
        """
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
    """b + H^{-1} g on the estimable coefficients, from a pass's normal equations; None if H is not positive definite.

    Returns
    -------
    torch.Tensor or None
    """
    if P.H is None:
        return None
    L, info = torch.linalg.cholesky_ex(P.H)
    if int(info) != 0 or not bool(torch.isfinite(P.g).all()):
        return None
    new = b.clone()
    new[est] += torch.cholesky_solve(P.g.unsqueeze(1), L).squeeze(1)
    return new


CONTROL_DEFAULTS = {"epsilon": 1e-8, "maxit": 25, "polish": 100}
# IRLS steps after the first use the Gram matrix when the first QR step's (column-equilibrated)
# condition number is below this: their rounding, cond^2 eps relative to the step, is then negligible
GRAM_CONDITION = 1e5


@dataclass
class IRLSFit:
    """State at the end of IRLS.

    coef : (p,) estimates, NaN for aliased columns.
    qr : weighted least-squares factor of sqrt(W) X at the final estimate (W the working weights).
    eta, mu : linear predictor and mean (offset included), torch (n,).
    deviance : sum of the family's deviance residuals.
    iterations : Fisher scoring iterations until R's convergence rule held (what R reports).
    polish_steps : further iterations taken to reach the exact maximum-likelihood estimate.
    """

    coef: np.ndarray
    qr: QRFit
    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    iterations: int
    polish_steps: int
    converged: bool
    boundary: bool


def control_settings(control: dict | None) -> dict:
    """R's glm.control settings with the defaults filled in; unknown or invalid settings are errors.

    Returns
    -------
    dict with epsilon, maxit and polish.
    """
    c = dict(CONTROL_DEFAULTS)
    for k, v in (control or {}).items():
        if k not in c:
            raise ModelInputError(f"unknown control setting {k!r}; available: {sorted(c)}")
        c[k] = v
    if not c["epsilon"] > 0:
        raise ModelInputError("control epsilon must be positive")
    if int(c["maxit"]) < 1:
        raise ModelInputError("control maxit must be at least 1")
    return c


def _start(passes: GLMPasses, start, mustart) -> tuple[Pass, torch.Tensor | None]:
    """R's starting point: eta from ``start`` (one pass) or linkfun(mustart); an error if it is not valid."""
    fam, link = passes.family, passes.link
    if start is not None:
        P = passes.at(start)
        eta, mu = P.eta, P.mu
    else:
        eta = link.linkfun(mustart)
        mu = link.linkinv(eta)
    if not (fam.validmu(mu) and link.valideta(eta)):
        raise DataError("cannot find valid starting values for this family and link: pass start=")
    dev = float(fam.dev_resids(passes.y, mu, passes.weights).sum())
    return Pass(eta, mu, dev, True), None if start is None else start.clone()


def _halve(passes: GLMPasses, P: Pass, coef, coefold, want, est, maxit: int, finite_only: bool):
    """R's step halving towards the previous coefficients until the deviance is finite (and the point valid)."""
    if coefold is None:
        raise DataError("no valid set of coefficients has been found: please supply starting values")
    warnings.warn("step size truncated due to divergence" if finite_only else "step size truncated: out of bounds",
                  stacklevel=4)
    for _ in range(maxit):
        coef = (coef + coefold) / 2
        P = passes.at(coef, want, est)
        if math.isfinite(P.deviance) if finite_only else P.valid:
            return coef, P
    raise DataError("inner loop 1; cannot correct step size" if finite_only else "inner loop 2; cannot correct step size")


def irls(passes: GLMPasses, *, start=None, mustart, control: dict, tol: float) -> IRLSFit:
    """Fit a GLM by iteratively reweighted least squares, as R's glm.fit, then iterate to the exact MLE.

    R stops when the relative change of the deviance is below epsilon, which leaves non-canonical
    fits short of the maximum; here Newton steps continue ("polish") until the coefficients stop
    changing, so the estimate and its covariance are at the maximum-likelihood estimate. Each
    iteration is one pass over the row blocks (plus a QR pass where the Gram step is not used).

    Parameters
    ----------
    passes : the GLM's passes over its row-block source (response after the family's initialize).
    start : starting coefficients, or None; mustart : starting means (used when start is None).
    control : glm.control settings (epsilon, maxit, polish); tol : rank-detection tolerance.

    Returns
    -------
    IRLSFit
    """
    family = passes.family
    p = passes.p
    if p == 0:
        return _empty_fit(passes)
    P, coefold = _start(passes, start, mustart)
    devold = P.deviance
    maxit = int(control["maxit"])
    conv = boundary = False
    coef = torch.zeros(p, dtype=passes.dtype, device=passes.device)
    qr, est, use_gram, it = None, [], False, 0
    for it in range(1, maxit + 1):
        new = cholesky_step(coef, est, P) if use_gram else None
        if new is None:
            qr = passes.qr_step(P.eta, P.mu, tol)
            est = qr.pivot[: qr.rank]
            new = _as_coef(qr, coef)
            # IRLS steps after the first use the Gram matrix when the first QR step's (column-equilibrated)
            # condition number is small: their rounding, cond^2 eps relative to the step, is then negligible
            use_gram = qr.rank > 0 and condition_estimate(qr.R) < GRAM_CONDITION
        if not bool(torch.isfinite(new[est]).all()):
            warnings.warn(f"non-finite coefficients at iteration {it}", stacklevel=3)
            break
        coef = new
        want = "fisher" if use_gram else None
        P = passes.at(coef, want, est)
        if not math.isfinite(P.deviance):
            coef, P = _halve(passes, P, coef, coefold, want, est, maxit, finite_only=True)
            boundary = True
        if not P.valid:
            coef, P = _halve(passes, P, coef, coefold, want, est, maxit, finite_only=False)
            boundary = True
        if abs(P.deviance - devold) / (abs(P.deviance) + 0.1) < control["epsilon"]:
            conv = True
            break
        devold, coefold = P.deviance, coef.clone()
    polish = 0
    if conv and not boundary:
        r_change = math.inf if coefold is None else _relative_change(coef, coefold)
        coef, P, polish = _polish(passes, coef, P, r_change, est, tol, int(control["polish"]))
    # covariance at the final estimate: a QR factorization with the working weights there
    qr = passes.qr_step(P.eta, P.mu, tol)
    if not conv:
        warnings.warn("glm.fit: algorithm did not converge", stacklevel=3)
    if boundary:
        warnings.warn("glm.fit: algorithm stopped at boundary value", stacklevel=3)
    if family.boundary_message and family.at_boundary(P.mu):
        warnings.warn(family.boundary_message, stacklevel=3)
    out = np.full(p, np.nan)
    est = qr.pivot[: qr.rank]
    out[est] = coef.cpu().double().numpy()[est]
    return IRLSFit(coef=out, qr=qr, eta=P.eta, mu=P.mu, deviance=P.deviance, iterations=it, polish_steps=polish,
                   converged=conv, boundary=boundary)


def _empty_fit(passes: GLMPasses) -> IRLSFit:
    """R's glm.fit for a model with no coefficients (y ~ 0): no iterations, the mean is linkinv(offset)."""
    fam = passes.family
    eta = passes.offset.clone()
    mu = fam.link.linkinv(eta)
    if not (fam.validmu(mu) and fam.link.valideta(eta)):
        raise DataError("invalid linear predictor values in empty model (y ~ 0): the offset is outside the link's range")
    qr = QRFit(coef=np.zeros(0), R=torch.zeros(0, 0, dtype=eta.dtype, device=eta.device), pivot=[], rank=0,
               effects=np.zeros(0), rss=None)
    return IRLSFit(coef=np.zeros(0), qr=qr, eta=eta, mu=mu,
                   deviance=float(fam.dev_resids(passes.y, mu, passes.weights).sum()),
                   iterations=0, polish_steps=0, converged=True, boundary=False)


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return float(torch.abs(new - old).max()) / float(torch.clamp(torch.abs(new).max(), min=1e-300))


def _as_coef(fit: QRFit, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.nan_to_num(fit.coef), dtype=like.dtype, device=like.device)


def _polish(passes: GLMPasses, coef, P: Pass, prev_change: float, est, tol: float, max_steps: int):
    """Newton steps past R's stopping rule until the coefficients stop changing (the exact MLE).

    Canonical links: Fisher scoring is Newton's method (quadratic convergence); otherwise Newton with
    the observed information, falling back to a Fisher (QR) step, which converges only linearly.
    Stops when the remaining error, estimated from successive changes (r = change / previous change:
    change * r^2 for Newton, change * r / (1 - r) for linear convergence), is at rounding level. If
    the steps stop shrinking while still large, the maximum is at infinity (separation, or a rate at
    zero): the point where R's rule stopped is kept rather than drifting.

    Returns
    -------
    (coef, Pass at coef, number of steps)
    """
    family = passes.family
    want = "fisher" if family.canonical else "newton"
    at_r = (coef, P, 0)
    if P.H is None or want == "newton":
        P = passes.at(coef, want, est)
    k = 0
    for k in range(1, max_steps + 1):
        new = cholesky_step(coef, est, P)
        quadratic = True
        if new is None:
            new = _as_coef(passes.qr_step(P.eta, P.mu, tol), coef)
            quadratic = family.canonical
        P2 = passes.at(new, want, est)
        if not P2.valid:
            return at_r
        change = _relative_change(new, coef)
        eps = eps_of(new)
        if change > 1e8 * eps and k >= 3 and change > 0.9 * prev_change:
            return at_r
        coef, P = new, P2
        r = change / prev_change if prev_change > 0 else 1.0
        if r < 1:
            remaining = change * r * r if quadratic else change * r / (1 - r)
        else:
            remaining = math.inf
        if change <= 4 * eps or remaining <= eps or (change < 1e4 * eps and r >= 1):
            break
        prev_change = change
    return coef, P, k
