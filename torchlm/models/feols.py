"""tl.feols, tl.fepois, tl.feglm: fixest's estimators with absorbed fixed effects (``y ~ x | firm + year``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm.errors import DataError, OptionError
from torchlm.frame.fixest import FixestDesign, fixest_design
from torchlm.inference.fixest_vcov import SmallSample
from torchlm.models.families import as_family
from torchlm.results.fixest import FixestFit, FixestResult
from torchlm.solvers.absorb import Absorber
from torchlm.solvers.fe_irls import fe_irls, within_fit
from torchlm.solvers.options import resolve_device_dtype


def _absorber(fd: FixestDesign, w: torch.Tensor | None, dev, dt, fixef_tol: float, fixef_iter: int) -> Absorber | None:
    if not fd.codes:
        return None
    codes = [torch.as_tensor(c, device=dev) for c in fd.effect_codes]
    values = [None if v is None else torch.as_tensor(v, device=dev, dtype=dt) for v in fd.effect_values()]
    return Absorber(codes, fd.effect_sizes, w, values=values, tol=fixef_tol, maxiter=fixef_iter, dtype=dt)


def _check_options(fixef_tol: float, fixef_iter: int) -> None:
    if isinstance(fixef_tol, bool) or not isinstance(fixef_tol, (int, float)) or not 0 < fixef_tol < 1:
        raise OptionError(f"fixef_tol must be a number in (0, 1), not {fixef_tol!r}")
    if isinstance(fixef_iter, bool) or not isinstance(fixef_iter, int) or fixef_iter < 1:
        raise OptionError(f"fixef_iter must be a positive integer, not {fixef_iter!r}")


def _call(fn: str, formula: str, **args: Any) -> str:
    parts = [f"fml = {formula}"] + [f"{k} = {v}" for k, v in args.items() if isinstance(v, str)]
    return f"{fn}(" + ", ".join(parts) + ")"


def _tensors(fd: FixestDesign, dev, dt) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    Xn = fd.X()
    y = torch.as_tensor(np.asarray(fd.design.y, dtype=np.float64), device=dev, dtype=dt)
    w = None if fd.design.weights is None else torch.as_tensor(fd.design.weights, device=dev, dtype=dt)
    return Xn, torch.as_tensor(Xn, device=dev, dtype=dt), y, w


def _names_of(fd: FixestDesign, cols: list[int]) -> list[str]:
    return [fd.names[j] for j in cols]


def feols(formula: str, data: Any, *, vcov: Any = None, weights: Any = None, subset: Any = None, ssc: Any = None,
          fixef_rm: str = "singleton", fixef_tol: float = 1e-13, fixef_iter: int = 10_000, contrasts: Any = None,
          names: str = "formulaic", device: Any = None, dtype: Any = None) -> FixestResult:
    """OLS with absorbed fixed effects, as fixest's feols().

    Parameters
    ----------
    formula : fixest's formula, ``"y ~ x1 + x2 | firm + year"``; ``firm^year`` is the combined effect,
        ``firm[x]`` varying slopes (a constant and an x slope per firm; ``firm[[x]]`` the slopes only);
        without ``|`` an ordinary regression (with its intercept).
    data : pandas (or polars, pyarrow) data; not modified.
    vcov : the covariance of the summary and tests: None (fixest's default: clustered by the first fixed
        effect, iid without fixed effects), "iid", "hetero", "cluster", "twoway", ``{"CRV1": "firm"}``,
        ``{"CRV1": "firm + year"}``.
    weights : prior weights (column name or array).
    subset : rows to use (mask or R expression).
    ssc : fixest's ssc() as a dict: adj (True), fixef_K ("nested"), cluster_adj (True), cluster_df ("min").
    fixef_rm : "singleton" (default: observations alone in a level of a fixed effect are removed, repeatedly,
        and counted in ``n_singletons``) or "none".
    fixef_tol, fixef_iter : convergence of the absorption where it iterates (more than 4000 levels besides the
        largest effect): relative residual and iterations.
    contrasts, names : as tl.lm's, for factors in the model part.
    device, dtype : torch device and dtype (float64 default).

    Returns
    -------
    FixestResult

    Examples
    --------
    >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
    >>> fit.coef().round(4)
    wt   -3.1814
    hp   -0.0231
    Name: Estimate, dtype: float64
    """
    _check_options(fixef_tol, fixef_iter)
    dev, dt = resolve_device_dtype(device, dtype)
    SmallSample.make(ssc)
    fd = fixest_design(formula, data, weights=weights, subset=subset, fixef_rm=fixef_rm, contrasts=contrasts,
                       names=names)
    Xn, X, y, w = _tensors(fd, dev, dt)
    absorber = _absorber(fd, w, dev, dt, fixef_tol, fixef_iter)
    wf = within_fit(X, y, w, absorber)
    e = wf.resid
    sw = torch.ones_like(y) if w is None else w
    scores = (sw * e).unsqueeze(1) * wf.Xt[:, wf.est]
    yv = y.cpu().numpy()
    ybar = float((sw * y).sum() / sw.sum())
    fit = FixestFit(
        coef=wf.coef, bread=wf.bread, scores=scores, residuals=e.cpu().numpy(), fitted=yv - e.cpu().numpy(),
        eta=yv - e.cpu().numpy(), weights=None if w is None else w.cpu().numpy(), rss=float((sw * e * e).sum()),
        tss=float((sw * (y - ybar) ** 2).sum()), tss_within=float((sw * wf.zt * wf.zt).sum()), absorber=absorber,
        X=Xn, y=yv, collinear=_names_of(fd, wf.collinear_fe) + _aliased(fd, wf))
    return FixestResult(fd, fit, method="OLS", vcov=vcov, ssc=ssc,
                        call=_call("feols", formula, weights=weights))


def _aliased(fd: FixestDesign, wf) -> list[str]:
    return [fd.names[j] for j in range(len(fd.names)) if j not in wf.est and j not in wf.collinear_fe]


def _perfect_fit_rule(upper: bool):
    """fixest's rule for a family with a bounded mean: observations in a level whose outcomes all lie at the
    bound (all 0; for a proportion also all 1) are fitted perfectly, with an infinite effect: removed."""

    def rule(codes: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        keep = np.ones(len(y), dtype=bool)
        for c in codes:
            L = int(c.max()) + 1
            hi = np.full(L, -np.inf)
            np.maximum.at(hi, c, y)
            keep &= hi[c] > 0
            if upper:
                lo = np.full(L, np.inf)
                np.minimum.at(lo, c, y)
                keep &= lo[c] < 1
        return keep

    return rule


def feglm(formula: str, data: Any, *, family: Any = "gaussian", vcov: Any = None, weights: Any = None,
          offset: Any = None, subset: Any = None, ssc: Any = None, fixef_rm: str = "singleton",
          fixef_tol: float = 1e-13, fixef_iter: int = 10_000, glm_tol: float = 1e-10, glm_iter: int = 100,
          contrasts: Any = None, names: str = "formulaic", device: Any = None, dtype: Any = None,
          method: str | None = None) -> FixestResult:
    """A GLM with absorbed fixed effects, as fixest's feglm(): IRLS, each pass a within-transformed weighted fit.

    Parameters
    ----------
    formula, data, vcov, weights, subset, ssc, fixef_rm, fixef_tol, fixef_iter, contrasts, names, device, dtype :
        as :func:`feols`.
    family : a torchlm family or its name ("poisson", "binomial", "gaussian", "Gamma", quasi families).
    offset : offset of the linear predictor (column name or array).
    glm_tol, glm_iter : IRLS stops when the deviance's relative change is below glm_tol (R's glm.control
        criterion); a warning after glm_iter passes.
    method : the estimation's name in the summary (default "GLM (family, link)"; fepois's "Poisson").

    Returns
    -------
    FixestResult

    Examples
    --------
    >>> fit = tl.feglm("am ~ wt | cyl", tl.datasets.load("mtcars"), family="binomial")
    >>> fit.coef().round(4)
    wt   -7.8593
    Name: Estimate, dtype: float64
    """
    _check_options(fixef_tol, fixef_iter)
    fam = as_family(family)
    dev, dt = resolve_device_dtype(device, dtype)
    SmallSample.make(ssc)
    # fixest removes the levels where the mean is 0 (all outcomes 0) for Poisson-type families
    rule = _perfect_fit_rule(fam.factor_response) if fam.boundary_message is not None else None
    fd = fixest_design(formula, data, weights=weights, offset=offset, subset=subset, fixef_rm=fixef_rm,
                       contrasts=contrasts, names=names, drop_rule=rule, fitter=f"feglm with family {fam.name!r}")
    Xn, X, y, w = _tensors(fd, dev, dt)
    prior = torch.ones_like(y) if w is None else w
    off = torch.zeros_like(y) if fd.design.offset is None else torch.as_tensor(fd.design.offset, device=dev, dtype=dt)
    st = fe_irls(X, y, prior, off, fam, lambda W: _absorber(fd, W, dev, dt, fixef_tol, fixef_iter),
                 tol=glm_tol, maxit=glm_iter)
    wf = st.fit
    scores = (st.W * wf.resid).unsqueeze(1) * wf.Xt[:, wf.est]
    n, k = len(y), len(wf.est)
    kfe = fd.fixef_dof
    if fam.fixed_dispersion:
        phi = 1.0
    else:
        # Pearson chi^2 / (n - K), as summary.glm
        phi = float((prior * (y - st.mu) ** 2 / fam.variance(st.mu)).sum()) / max(n - k - kfe, 1)
    yv, mu = y.cpu().numpy(), st.mu.cpu().numpy()
    if not np.isfinite(st.deviance):
        raise DataError("the deviance is not finite at the fitted values")
    fit = FixestFit(
        coef=wf.coef, bread=wf.bread * phi, scores=scores, residuals=yv - mu, fitted=mu, eta=st.eta.cpu().numpy(),
        weights=None if w is None else w.cpu().numpy(), rss=st.deviance, tss=float("nan"), tss_within=float("nan"),
        absorber=st.absorber, X=Xn, y=yv, collinear=_names_of(fd, wf.collinear_fe) + _aliased(fd, wf),
        dispersion=phi, deviance=st.deviance, iterations=st.iterations)
    return FixestResult(fd, fit, method=method or f"GLM ({fam.name}, {fam.link.name})", vcov=vcov, ssc=ssc, family=fam,
                        call=_call("feglm", formula, weights=weights, offset=offset))


def fepois(formula: str, data: Any, *, vcov: Any = None, weights: Any = None, offset: Any = None,
           subset: Any = None, ssc: Any = None, fixef_rm: str = "singleton", fixef_tol: float = 1e-13,
           fixef_iter: int = 10_000, glm_tol: float = 1e-10, glm_iter: int = 100, contrasts: Any = None,
           names: str = "formulaic", device: Any = None, dtype: Any = None) -> FixestResult:
    """Poisson regression with absorbed fixed effects, as fixest's fepois() (feglm with family="poisson").

    Parameters
    ----------
    formula, data, vcov, weights, offset, subset, ssc, fixef_rm, fixef_tol, fixef_iter, glm_tol, glm_iter,
    contrasts, names, device, dtype : as :func:`feglm`.

    Returns
    -------
    FixestResult

    Examples
    --------
    >>> fit = tl.fepois("carb ~ wt | cyl", tl.datasets.load("mtcars"))
    >>> fit.coef().round(4)
    wt    0.0255
    Name: Estimate, dtype: float64
    """
    return feglm(formula, data, family="poisson", vcov=vcov, weights=weights, offset=offset, subset=subset, ssc=ssc,
                 fixef_rm=fixef_rm, fixef_tol=fixef_tol, fixef_iter=fixef_iter, glm_tol=glm_tol, glm_iter=glm_iter,
                 contrasts=contrasts, names=names, device=device, dtype=dtype, method="Poisson")
