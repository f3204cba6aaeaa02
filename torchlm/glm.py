"""tl.glm(): formula -> design -> IRLS (Fisher scoring) on torch to the exact MLE -> GeneralizedLinearModelResult."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .design import build_design
from .errors import DataError, ModelInputError
from .families import Family, as_family, eps_of
from .fit import LinearResidual, QRFit, chunk_rows, condition_estimate, qr_solve, resolve_device_dtype
from .glm_result import GeneralizedLinearModelResult
from .inference import quiet
from .lm import _call_string

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


def _working_ls(X: torch.Tensor, z: torch.Tensor, sw: torch.Tensor, tol: float, accurate: bool) -> QRFit:
    """Weighted least squares of z on X with weights sw^2 (one IRLS step), by the QR solver of lm."""
    n, p = X.shape
    step = chunk_rows(n, p)

    def chunks():
        for s in range(0, n, step):
            yield LinearResidual(X[s:s + step], z[s:s + step], sw[s:s + step])

    return qr_solve(chunks, p, tol, X.device, X.dtype, accurate=accurate)


def irls(X: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, offset: torch.Tensor, family: Family, *,
         start=None, mustart=None, control: dict, tol: float) -> tuple[IRLSFit, torch.Tensor]:
    """Fit a GLM by iteratively reweighted least squares, as R's glm.fit, then iterate to the exact MLE.

    R stops when the relative change of the deviance is below epsilon, which leaves non-canonical
    fits short of the maximum; here Newton steps continue ("polish") until the coefficients stop
    changing, so the estimate and its covariance are at the maximum-likelihood estimate.
    Returns the fit and the (possibly modified, as R's initialize does) response.
    """
    link = family.link
    n, p = X.shape
    y, nbin, mu0 = family.initialize(y, weights)
    if p == 0:
        return _empty_fit(X, y, weights, offset, family), y
    if mustart is not None:
        mu0 = mustart
    if start is not None:
        eta = offset + X @ start
    else:
        eta = link.linkfun(mu0)
    mu = link.linkinv(eta)
    if not (family.validmu(mu) and link.valideta(eta)):
        raise DataError("cannot find valid starting values for this family and link: pass start=")
    devold = float(family.dev_resids(y, mu, weights).sum())
    coefold = None if start is None else start.clone()
    conv = boundary = False
    it = 0
    coef = torch.zeros(p, dtype=X.dtype, device=X.device)

    def evaluate(b):
        e = X @ b + offset
        m = link.linkinv(e)
        return e, m, float(family.dev_resids(y, m, weights).sum())

    positive = weights > 0
    all_positive = bool(positive.all())

    def working(eta, mu):
        """R's good rows, square roots of the working weights and working residuals (y - mu) / mu'(eta)."""
        var = family.variance(mu)
        v = var if all_positive else var[positive]
        if bool(torch.isnan(v).any()):
            raise DataError("NAs in V(mu) during the fit")
        if bool((v == 0).any()):
            raise DataError("0s in V(mu) during the fit: fitted values reached the edge of the family's range")
        me = link.mu_eta(eta)
        good = positive & (me != 0)
        if all_positive and bool(good.all()):
            # every row is informative (the usual case): the masked expressions below, without their passes
            return torch.sqrt(weights * me * me / var), (y - mu) / me
        if not bool(good.any()):
            raise DataError("no observations informative at iteration (all weights or d mu / d eta are zero)")
        zero = torch.zeros_like(eta)
        rw = torch.where(good, (y - mu) / torch.where(good, me, torch.ones_like(me)), zero)
        sw = torch.where(good, torch.sqrt(weights * me * me / torch.where(good, var, torch.ones_like(var))), zero)
        return sw, rw

    def qr_step(eta, mu):
        """A full IRLS step: weighted least squares of the working response, by QR with rank detection."""
        sw, rw = working(eta, mu)
        fit = _working_ls(X, (eta - offset) + rw, sw, tol, False)
        if fit.rank > n:
            raise DataError(f"X matrix has rank {fit.rank}, but only {n} observations")
        return fit

    def fisher_step(b, eta, mu):
        """The same step as a correction b + (X'WX)^{-1} X'W r from the Gram matrix (None if not positive definite).

        Its rounding error is relative to the correction, which shrinks as the iteration converges,
        so the iterates agree with the QR steps to cond(X)^2 eps times the step: used only when the
        first (QR) step found a well-conditioned design, and the covariance is always from QR.
        """
        sw, rw = working(eta, mu)
        w2 = sw * sw
        return _cholesky_step(X, est, w2, w2 * rw, b)

    qr = None
    est: list[int] = []
    use_gram = False
    for it in range(1, int(control["maxit"]) + 1):
        new = fisher_step(coef, eta, mu) if use_gram else None
        if new is None:
            qr = qr_step(eta, mu)
            est = qr.pivot[: qr.rank]
            new = _as_coef(qr, coef)
            use_gram = qr.rank > 0 and condition_estimate(qr.R) < GRAM_CONDITION
        if not bool(torch.isfinite(new[est]).all()):
            warnings.warn(f"non-finite coefficients at iteration {it}", stacklevel=3)
            break
        coef = new
        eta, mu, dev = evaluate(coef)
        if not math.isfinite(dev):
            if coefold is None:
                raise DataError("no valid set of coefficients has been found: please supply starting values")
            warnings.warn("step size truncated due to divergence", stacklevel=3)
            for _ in range(int(control["maxit"])):
                coef = (coef + coefold) / 2
                eta, mu, dev = evaluate(coef)
                if math.isfinite(dev):
                    break
            else:
                raise DataError("inner loop 1; cannot correct step size")
            boundary = True
        if not (link.valideta(eta) and family.validmu(mu)):
            if coefold is None:
                raise DataError("no valid set of coefficients has been found: please supply starting values")
            warnings.warn("step size truncated: out of bounds", stacklevel=3)
            for _ in range(int(control["maxit"])):
                coef = (coef + coefold) / 2
                eta, mu, dev = evaluate(coef)
                if link.valideta(eta) and family.validmu(mu):
                    break
            else:
                raise DataError("inner loop 2; cannot correct step size")
            boundary = True
        if abs(dev - devold) / (abs(dev) + 0.1) < control["epsilon"]:
            conv = True
            break
        devold, coefold = dev, coef.clone()
    iterations = it

    polish = 0
    canonical = family.canonical
    if conv and not boundary:
        r_change = math.inf if coefold is None else _relative_change(coef, coefold)

        def newton(b, eta, mu):
            # canonical links: Fisher scoring is Newton's method; otherwise Newton with the observed
            # information, falling back to a Fisher (QR) step, which converges only linearly
            new = fisher_step(b, eta, mu) if canonical else _newton_step(X, y, weights, family, b, eta, est)
            if new is not None:
                return new, True
            return _as_coef(qr_step(eta, mu), b), canonical

        coef, eta, mu, dev, polish = _polish(coef, eta, mu, dev, r_change, newton, evaluate, family, link,
                                             int(control["polish"]))
    # covariance at the final estimate: a QR factorization with the working weights there
    qr = qr_step(eta, mu)
    if not conv:
        warnings.warn("glm.fit: algorithm did not converge", stacklevel=3)
    if boundary:
        warnings.warn("glm.fit: algorithm stopped at boundary value", stacklevel=3)
    if family.boundary_message and family.at_boundary(mu):
        warnings.warn(family.boundary_message, stacklevel=3)
    out = np.full(p, np.nan)
    est = qr.pivot[: qr.rank]
    out[est] = coef.cpu().double().numpy()[est]
    return IRLSFit(coef=out, qr=qr, eta=eta, mu=mu, deviance=dev, iterations=iterations, polish_steps=polish,
                   converged=conv, boundary=boundary), y


def _empty_fit(X, y, weights, offset, family) -> IRLSFit:
    """R's glm.fit for a model with no coefficients (y ~ 0): no iterations, the mean is linkinv(offset)."""
    eta = offset.clone()
    mu = family.link.linkinv(eta)
    if not (family.validmu(mu) and family.link.valideta(eta)):
        raise DataError("invalid linear predictor values in empty model (y ~ 0): the offset is outside the link's range")
    qr = QRFit(coef=np.zeros(0), R=torch.zeros(0, 0, dtype=X.dtype, device=X.device), pivot=[], rank=0,
               effects=np.zeros(0), rss=None)
    return IRLSFit(coef=np.zeros(0), qr=qr, eta=eta, mu=mu, deviance=float(family.dev_resids(y, mu, weights).sum()),
                   iterations=0, polish_steps=0, converged=True, boundary=False)


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return float(torch.abs(new - old).max()) / float(torch.clamp(torch.abs(new).max(), min=1e-300))


def _as_coef(fit: QRFit, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.nan_to_num(fit.coef), dtype=like.dtype, device=like.device)


def _cholesky_step(X, est, h, v, b) -> torch.Tensor | None:
    """b + H^{-1} X'v on the estimable columns, H = X' diag(h) X accumulated over row chunks; None if H is not PD."""
    k = len(est)
    g = torch.zeros(k, dtype=X.dtype, device=X.device)
    H = torch.zeros(k, k, dtype=X.dtype, device=X.device)
    step = chunk_rows(X.shape[0], k)
    # a gather of the estimable columns copies the chunk: it costs twice the product, so skip it when all are
    cols = None if list(est) == list(range(X.shape[1])) else torch.as_tensor(est, device=X.device)
    for s in range(0, X.shape[0], step):
        Xc = X[s:s + step] if cols is None else X[s:s + step].index_select(1, cols)
        g += Xc.T @ v[s:s + step]
        H += (Xc * h[s:s + step, None]).T @ Xc
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0 or not bool(torch.isfinite(g).all()):
        return None
    new = b.clone()
    new[est] += torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
    return new


def _newton_step(X, y, weights, family, b, eta, est) -> torch.Tensor | None:
    """One Newton step on the estimable coefficients, or None where the observed information is not positive definite.

    The negative log-likelihood (half the deviance) is a sum of per-row terms in eta, so its Hessian
    in beta is X^T diag(d2) X with d2 the autograd second derivatives in eta (forward-over-reverse
    with a vector of ones gives the diagonal), and the gradient is X^T d1.
    """
    link = family.link

    def nll(e):
        return 0.5 * family.dev_resids(y, link.linkinv(e), weights).sum()

    d1, d2 = quiet(torch.func.jvp)(torch.func.grad(nll), (eta,), (torch.ones_like(eta),))
    return _cholesky_step(X, est, d2, -d1, b)


def _polish(coef, eta, mu, dev, prev_change, newton, evaluate, family, link, max_steps):
    """Newton steps past R's stopping rule until the coefficients stop changing (the exact MLE).

    ``newton(b, eta, mu)`` returns the next coefficients and whether the step was Newton's (quadratic
    convergence) or a Fisher step of a non-canonical link (linear). Stops when the remaining error,
    estimated from successive changes (r = change / previous change: change * r^2 for Newton,
    change * r / (1 - r) for linear convergence), is at rounding level. If the steps stop shrinking
    while still large, the maximum is at infinity (separation, or a rate at zero): the point where
    R's rule stopped is kept rather than drifting. Returns (coef, eta, mu, deviance, steps).
    """
    at_r = (coef, eta, mu, dev, 0)
    k = 0
    for k in range(1, max_steps + 1):
        new, quadratic = newton(coef, eta, mu)
        e2, m2, d2 = evaluate(new)
        if not (math.isfinite(d2) and link.valideta(e2) and family.validmu(m2)):
            return at_r
        change = _relative_change(new, coef)
        eps = eps_of(new)
        if change > 1e8 * eps and k >= 3 and change > 0.9 * prev_change:
            return at_r
        coef, eta, mu, dev = new, e2, m2, d2
        r = change / prev_change if prev_change > 0 else 1.0
        if r < 1:
            remaining = change * r * r if quadratic else change * r / (1 - r)
        else:
            remaining = math.inf
        if change <= 4 * eps or remaining <= eps or (change < 1e4 * eps and r >= 1):
            break
        prev_change = change
    return coef, eta, mu, dev, k


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
    n, p = design.X.shape
    def as_t(a):
        with warnings.catch_warnings():
            # the design can be a read-only pandas buffer; torch only reads it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(a, dtype=dt, device=dev)

    X = as_t(design.X)
    y = as_t(design.y)
    w = as_t(design.weights) if design.weights is not None else torch.ones(n, dtype=dt, device=dev)
    off = as_t(design.offset) if design.offset is not None else torch.zeros(n, dtype=dt, device=dev)
    b0 = None
    if start is not None:
        b0 = as_t(np.asarray(start, dtype=float).ravel())
        if b0.numel() != p:
            raise ModelInputError(f"start has {b0.numel()} values, the model has {p} coefficients ({design.names})")
    tol = min(1e-7, ctl["epsilon"] / 1000)
    fit, y = irls(X, y, w, off, fam, start=b0, control=ctl, tol=tol)
    null_dev = _null_deviance(X, y, w, off, fam, fit, design, ctl, tol)
    call = _call_string(formula, weights, offset, subset, fn="glm")
    call = call[:-1] + f", family = {fam.r_call()})"
    return GeneralizedLinearModelResult(design, fam, fit, y=y, weights=w, offset=off, null_deviance=null_dev,
                                        information=information, device=dev, dtype=dt, tol=tol, call=call)


def _null_deviance(X, y, w, off, fam, fit, design, ctl, tol) -> float:
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
        null_fit, _ = irls(X[:, j:j + 1], y, w, off, fam, mustart=fit.mu, control=ctl, tol=tol)
    return null_fit.deviance


def refit_deviance(fit: GeneralizedLinearModelResult, cols: list[int]) -> tuple[float, int]:
    """Deviance and residual df of the same GLM restricted to design columns ``cols`` (R's anova.glm refits)."""
    X = torch.as_tensor(fit.design.X[:, cols], dtype=fit.dtype, device=fit.device)
    ctl = dict(CONTROL_DEFAULTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub, _ = irls(X, fit._y, fit._w, fit._offset, fit.family, control=ctl, tol=fit.tol)
    return sub.deviance, fit.nobs - sub.qr.rank
