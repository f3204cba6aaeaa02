"""tl.glm(): formula -> design -> IRLS (Fisher scoring) on torch to the exact MLE -> GeneralizedLinearModelResult."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .design import build_design
from .errors import DataError, ModelInputError
from .families import as_family, eps_of
from .fit import QRFit, condition_estimate, resolve_device_dtype
from .glm_result import GeneralizedLinearModelResult
from .lm import _call_string
from .solvers.irls import GLMPasses, Pass, cholesky_step
from .sources.row_blocks import DesignSource

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


def _control(control) -> dict:
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


def glm(formula: str, data, *, family="gaussian", weights=None, offset=None, subset=None, na_action: str = "omit",
        start=None, control: dict | None = None, information: str = "expected", device=None,
        dtype=None) -> GeneralizedLinearModelResult:
    """Fit a generalized linear model by Fisher scoring to the maximum-likelihood estimate, as R's glm().

    Parameters
    ----------
    formula : formulaic formula, e.g. ``"am ~ wt + hp"``. A binomial response may be 0/1, boolean,
        a two-level factor (first level = failure) or a proportion with ``weights=`` the trials.
    data : DataFrame (or dict of arrays); not modified.
    family : "gaussian", "binomial", "poisson", "Gamma", "inverse_gaussian", "quasibinomial",
        "quasipoisson", or a family object
        such as ``tl.families.Binomial(link="probit")``.
    weights : prior weights (column name or array); for a binomial proportion, the number of trials.
    offset : known component of the linear predictor (column name or array).
    subset : boolean mask or query string selecting rows.
    na_action : "omit" or "fail", as in tl.lm.
    start : starting coefficients (sequence in formula column order).
    control : dict with R's glm.control settings ``epsilon`` (1e-8), ``maxit`` (25) and ``polish``
        (at most 100 further Fisher scoring steps after R's rule is met, to reach the exact MLE).
    information : "expected" (Fisher information, what R's summary.glm uses) or "observed"
        (autograd Hessian of the negative log-likelihood); they agree for canonical links.
    device, dtype : as in tl.lm.
    """
    fam = as_family(family)
    if information not in ("expected", "observed"):
        raise ModelInputError(f"information must be 'expected' or 'observed', not {information!r}")
    ctl = _control(control)
    dev, dt = resolve_device_dtype(device, dtype)
    design = build_design(formula, data, weights=weights, offset=offset, subset=subset, na_action=na_action,
                          allow_factor_response=fam.factor_response)
    n, p = design.shape

    def as_t(a):
        with warnings.catch_warnings():
            # the design can be a read-only pandas buffer; torch only reads it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(a, dtype=dt, device=dev)

    y = as_t(design.y)
    w = as_t(design.weights) if design.weights is not None else torch.ones(n, dtype=dt, device=dev)
    off = as_t(design.offset) if design.offset is not None else torch.zeros(n, dtype=dt, device=dev)
    b0 = None
    if start is not None:
        b0 = as_t(np.asarray(start, dtype=float).ravel())
        if b0.numel() != p:
            raise ModelInputError(f"start has {b0.numel()} values, the model has {p} coefficients ({design.names})")
    tol = min(1e-7, ctl["epsilon"] / 1000)
    y, _, mu0 = fam.initialize(y, w)
    source = DesignSource(design)
    fit = irls(GLMPasses(source, y, w, off, fam), start=b0, mustart=mu0, control=ctl, tol=tol)
    null_dev = _null_deviance(source, y, w, off, fam, fit, design, ctl, tol)
    call = _call_string(formula, weights, offset, subset, fn="glm")
    call = call[:-1] + f", family = {fam.r_call()})"
    return GeneralizedLinearModelResult(design, fam, fit, y=y, weights=w, offset=off, null_deviance=null_dev,
                                        information=information, device=dev, dtype=dt, tol=tol, call=call)


def _null_deviance(source, y, w, off, fam, fit, design, ctl, tol) -> float:
    """R's null deviance: the intercept-only fit (with the offset, which needs its own fit, as R's glm does)."""
    link = fam.link
    if not design.has_intercept:
        return float(fam.dev_resids(y, link.linkinv(off), w).sum())
    if design.offset is None:
        wtdmu = (w * y).sum() / w.sum()
        return float(fam.dev_resids(y, wtdmu.expand_as(y), w).sum())
    j = design.names.index("Intercept")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        null_fit = irls(GLMPasses(source, y, w, off, fam, columns=[j]), mustart=fit.mu, control=ctl, tol=tol)
    return null_fit.deviance


def refit_deviance(fit: GeneralizedLinearModelResult, cols: list[int]) -> tuple[float, int]:
    """Deviance and residual df of the same GLM restricted to design columns ``cols`` (R's anova.glm refits)."""
    ctl = dict(CONTROL_DEFAULTS)
    passes = GLMPasses(DesignSource(fit.design), fit._y, fit._w, fit._offset, fit.family, columns=cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # R's anova.glm refits start from the family's mustart at the (initialized) response
        _, _, mu0 = fit.family.initialize(fit._y, fit._w)
        sub = irls(passes, mustart=mu0, control=ctl, tol=fit.tol)
    return sub.deviance, fit.nobs - sub.qr.rank
