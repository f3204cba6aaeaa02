"""tl.glm_nb(): MASS's glm.nb, a negative binomial GLM with theta estimated by maximum likelihood.

MASS's algorithm step for step (MASS/R/negbin.R): an initial Poisson fit (or a negative binomial one at
``init_theta``), theta by theta.ml at its means, then alternately R's glm.fit at the current theta
(started from the last means) and theta.ml at the means before that fit, until
|Lm0 - Lm| / d1 + |del| / d2 < epsilon (Lm the log-likelihood, del the change of theta,
d1 = sqrt(2 max(1, df.residual)), d2 = 1) or maxit alternations. So the fit's coefficients, theta and
their standard errors are R's to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from torchlm import threads
from torchlm.errors import FitError, ModelInputError, warn
from torchlm.frame import build_design
from torchlm.models.families import Family, Poisson
from torchlm.models.glm import glm_tensors
from torchlm.models.lm import _call_string, refit_contrasts
from torchlm.models.negbin_family import NegativeBinomial, ThetaML, nb_loglik, theta_ml
from torchlm.present.rformat import signif
from torchlm.results.base import Refit
from torchlm.results.design_methods import na_mode
from torchlm.results.negbin import NegativeBinomialResult
from torchlm.solvers.irls import GLMPasses, IRLSFit, control_settings, irls
from torchlm.solvers.options import resolve_device_dtype
from torchlm.sources.row_blocks import DesignSource

NB_LINKS = ("log", "sqrt", "identity")


@dataclass
class _Alternation:
    """The end of glm.nb's alternation: the last glm.fit, its family, theta.ml's last answer and 2 log-likelihood."""

    fit: IRLSFit
    family: Family  # the last fit's (theta of the alternation before the last, as MASS's fit$family)
    theta: ThetaML
    twologlik: float
    warning: str | None


def glm_nb(formula: str, data: Any, *, weights: Any = None, subset: Any = None, na_action: str = "omit",
           start: Any = None, init_theta: float | None = None, link: str = "log", control: dict | None = None,
           offset: Any = None, contrasts: dict | None = None, names: str = "formulaic", device: Any = None,
           dtype: Any = None) -> NegativeBinomialResult:
    """Fit a negative binomial GLM with theta estimated, as MASS's glm.nb().

    Parameters
    ----------
    formula : formulaic formula with a count response, e.g. ``"Days ~ Sex/(Age + Eth*Lrn)"``.
    data : DataFrame (or dict of arrays); not modified.
    weights, subset, na_action, offset, contrasts, names, device, dtype : as in tl.glm.
    start : starting coefficients of the initial fit (formula column order), as glm.nb's start=.
    init_theta : theta of the initial fit (a negative binomial fit then, not a Poisson one), as init.theta=.
    link : "log" (default), "sqrt" or "identity".
    control : R's glm.control settings ``epsilon`` (1e-8) and ``maxit`` (25): every glm.fit uses them,
        theta.ml's iteration limit is maxit, and so is the number of alternations.

    Returns
    -------
    NegativeBinomialResult
        theta, se_theta, twologlik and theta_warning beside everything of a glm fit; summary() prints
        MASS's summary.negbin, tl.anova(nb1, nb2) gives MASS's likelihood-ratio table.

    Raises
    ------
    ModelInputError
        For a link MASS does not allow or an init_theta that is not a positive number.
    FitError
        When theta.ml's estimate is truncated at zero.

    Examples
    --------
    >>> fit = tl.glm_nb("Days ~ Sex + Age", tl.datasets.load("quine"))
    >>> round(fit.theta, 4)
    1.1474
    """
    if not isinstance(link, str) or link not in NB_LINKS:
        raise ModelInputError(f"link {link!r} is not available for the negative binomial family; available links "
                              f"are {NB_LINKS} (MASS's)")
    if init_theta is not None:
        NegativeBinomial(init_theta)  # checks it
    ctl = control_settings(control)
    dev, dt = resolve_device_dtype(device, dtype)
    frame_na, exclude = na_mode(na_action)
    design = build_design(formula, data, weights=weights, offset=offset, subset=subset, na_action=frame_na,
                          fitter="glm.nb", contrasts=contrasts, names=names)
    y, w, off, b0 = glm_tensors(design, start, dev, dt)
    tol = min(1e-7, ctl["epsilon"] / 1000)
    source = DesignSource(design)
    with threads.chunked():
        alt = _alternate(source, y, w, off, link, init_theta, b0, ctl, tol)
        null_dev = _null_deviance(source, design, y, w, off, alt, ctl, tol)
    theta = alt.theta.theta
    call = _nb_call(formula, weights, offset, subset, contrasts, link, init_theta, theta)
    result = NegativeBinomialResult(design, alt.family, alt.fit, theta=theta, se_theta=alt.theta.se,
                                    twologlik=alt.twologlik, theta_warning=alt.warning, y=y, weights=w, offset=off,
                                    null_deviance=null_dev, information="expected", device=dev, dtype=dt, tol=tol,
                                    call=call, control=ctl)
    result.na_exclude = exclude
    # R's update() of a glm.nb fit starts from its theta: the call it keeps has init.theta = signif(theta, 10)
    result._refit = Refit(glm_nb, formula, dict(data=data, weights=weights, subset=subset, na_action=na_action,
                                                start=start, init_theta=signif(theta, 10), link=link,
                                                control=control, offset=offset,
                                                contrasts=refit_contrasts(contrasts), names=names, device=device,
                                                dtype=dtype))
    return result


def _new_theta(y: torch.Tensor, mu: torch.Tensor, w: torch.Tensor, maxit: int) -> ThetaML:
    """theta.ml(Y, mu, sum(w), w, limit = maxit), as glm.nb calls it; an error where it is truncated at zero."""
    est = theta_ml(y, mu, float(w.sum()), w, limit=maxit)
    if not est.theta > 0:
        raise FitError("theta.ml's estimate of theta is truncated at zero: the counts are too dispersed for a "
                       "negative binomial at these means (try another model, start= or init_theta=)")
    return est


def _alternate(source: DesignSource, y: torch.Tensor, w: torch.Tensor, off: torch.Tensor, link: str,
               init_theta: float | None, start: torch.Tensor | None, ctl: dict, tol: float) -> _Alternation:
    """glm.nb's loop: glm.fit at theta, theta.ml at the means before that fit, until MASS's rule holds."""
    maxit, eps = int(ctl["maxit"]), float(ctl["epsilon"])
    fam0: Family = Poisson(link) if init_theta is None else NegativeBinomial(init_theta, link)
    _, _, mu0 = fam0.initialize(y, w)
    fit = irls(GLMPasses(source, y, w, off, fam0), start=start, mustart=mu0, control=ctl, tol=tol)
    fit_family, mu = fam0, fit.mu
    est = _new_theta(y, mu, w, maxit)
    th = est.theta
    fam = NegativeBinomial(th, link)
    d1 = math.sqrt(2 * max(1, int((w != 0).sum()) - fit.qr.rank))
    d2 = delta = 1.0
    lm = nb_loglik(th, mu, y, w)
    lm0 = lm + 2 * d1
    it = 0
    while (it := it + 1) <= maxit and abs(lm0 - lm) / d1 + abs(delta) / d2 > eps:
        # MASS's etastart = g(mu): R's glm.fit starts from eta = linkfun(mu), as mustart = mu does here
        fit = irls(GLMPasses(source, y, w, off, fam), mustart=mu, control=ctl, tol=tol)
        fit_family, t0 = fam, th
        est = _new_theta(y, mu, w, maxit)  # MASS's order: at the means before this fit
        th = est.theta
        fam = NegativeBinomial(th, link)
        mu = fit.mu
        delta = t0 - th
        lm0, lm = lm, nb_loglik(th, mu, y, w)
    warning = est.warning
    if it > maxit:
        warning = "alternation limit reached"
        warn(warning, stacklevel=3)
    return _Alternation(fit, fit_family, est, 2 * lm, warning)


def _null_deviance(source: DesignSource, design: Any, y: torch.Tensor, w: torch.Tensor, off: torch.Tensor,
                   alt: _Alternation, ctl: dict, tol: float) -> float:
    """glm.nb's null deviance: with an offset and an intercept, a glm.fit of the intercept alone at the final
    theta (started from the family's means); otherwise glm.fit's, in the last fit's family."""
    fam = alt.family
    if design.offset is not None and design.has_intercept:
        final = NegativeBinomial(alt.theta.theta, fam.link)
        _, _, mu0 = final.initialize(y, w)
        passes = GLMPasses(source, y, w, off, final, columns=[design.assign.index("1")])
        return irls(passes, mustart=mu0, control=ctl, tol=tol).deviance
    mean = (w * y).sum() / w.sum() if design.has_intercept else None
    mu = mean.expand_as(y) if mean is not None else fam.link.linkinv(off)
    return float(fam.dev_resids(y, mu, w).sum())


def _nb_call(formula: str, weights: Any, offset: Any, subset: Any, contrasts: Any, link: str,
             init_theta: float | None, theta: float) -> str:
    """glm.nb's call as MASS keeps it: init.theta = signif(theta, 10) in its place or after, and link."""
    base = _call_string(formula, weights, offset, subset, fn="glm.nb", contrasts=contrasts)[:-1]
    th = f"init.theta = {signif(theta, 10):.15g}"
    if init_theta is None and link != "log":
        return f"{base}, link = {link}, {th})"  # R: the link in its place, init.theta added after
    return f"{base}, {th}, link = {link})"
