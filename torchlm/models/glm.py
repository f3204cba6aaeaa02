"""tl.glm(): formula -> design -> IRLS (Fisher scoring, R's glm.fit) on torch -> GeneralizedLinearModelResult."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm import threads
from torchlm.errors import ModelInputError, OptionError, silenced
from torchlm.frame import build_design
from torchlm.frame.coded_factors import factor_design
from torchlm.frame.dask_compute import showing_progress
from torchlm.frame.dask_frame import is_dask_frame
from torchlm.models.families import as_family
from torchlm.models.lm import _call_string, check_flag, dask_only, refit_contrasts
from torchlm.results.base import Refit
from torchlm.results.design_methods import na_mode
from torchlm.results.generalized import GeneralizedLinearModelResult
from torchlm.solvers.irls import GLMPasses, control_settings, irls
from torchlm.solvers.options import resolve_device_dtype
from torchlm.sources.row_blocks import DesignSource


def glm(formula: str, data: Any, *, family: Any = "gaussian", weights: Any = None, offset: Any = None,
        subset: Any = None, na_action: str = "omit", start: Any = None, control: dict | None = None,
        information: str = "expected", exact: bool = False, contrasts: dict | None = None,
        names: str = "formulaic", device: Any = None, dtype: Any = None, progress: bool = False,
        persist: bool = False) -> GeneralizedLinearModelResult:
    """Fit a generalized linear model by Fisher scoring, as R's glm() (glm.fit), or to the exact MLE.

    Parameters
    ----------
    formula : formulaic formula, e.g. ``"am ~ wt + hp"``. A binomial response may be 0/1, boolean,
        a factor (as R: the first level is failure, every other level success) or a proportion with
        ``weights=`` the trials.
    data : DataFrame (or dict of arrays); not modified.
    family : "gaussian", "binomial", "poisson", "Gamma", "inverse_gaussian", "quasibinomial",
        "quasipoisson", or a family object
        such as ``tl.families.Binomial(link="probit")``.
    weights : prior weights (column name or array); for a binomial proportion, the number of trials.
    offset : known component of the linear predictor (column name or array).
    subset : boolean mask or query string selecting rows.
    na_action : "omit", "exclude" (R's na.exclude) or "fail", as in tl.lm.
    start : starting coefficients (sequence in formula column order).
    control : dict with R's glm.control settings ``epsilon`` (1e-8) and ``maxit`` (25), and ``polish``
        (with exact=True: at most 100 further Newton steps after R's rule is met).
    exact : False (default): R's glm.fit step for step, stopping when |dev - dev_old| / (|dev| + 0.1)
        < epsilon, with the covariance from the working weights of the last iteration, so summary()
        prints R's digits. True: iterate on to the exact maximum-likelihood estimate (and take the
        covariance there), which differs from R's default fit by about epsilon, relatively.
    information : "expected" (Fisher information, what R's summary.glm uses) or "observed"
        (autograd Hessian of the negative log-likelihood); they agree for canonical links.
    contrasts, names : R's contrasts= per variable and R's coefficient names, as in tl.lm.
    device, dtype : as in tl.lm.
    progress, persist : for a Dask DataFrame ``data`` only, as in tl.lm (IRLS passes on the kept rows).

    Returns
    -------
    GeneralizedLinearModelResult

    Examples
    --------
    >>> fit = tl.glm("am ~ wt", tl.datasets.load("mtcars"), family="binomial")
    >>> fit.coef().round(4)
    Intercept    12.0404
    wt           -4.0240
    Name: Estimate, dtype: float64
    """
    if is_dask_frame(data) or progress is not False or persist is not False:  # Dask: models/dask_glm.py
        return _glm_dask(formula, data, dict(locals()))  # the arguments as given (the refit's too)
    fam = as_family(family)
    if information not in ("expected", "observed"):
        raise ModelInputError(f"information must be 'expected' or 'observed', not {information!r}")
    ctl = control_settings(control, exact=exact)
    dev, dt = resolve_device_dtype(device, dtype)
    frame_na, exclude = na_mode(na_action)  # na.exclude drops rows as na.omit does; the fit pads its results
    kw = dict(weights=weights, offset=offset, subset=subset, na_action=frame_na,
              allow_factor_response=fam.factor_response,
              fitter=None if fam.factor_response else f"glm with family {fam.name!r}", contrasts=contrasts, names=names)
    # a many-level factor kept as codes (tl.options(factor_levels=)); else formulaic's dense design
    design = factor_design(formula, data, **kw) or build_design(formula, data, **kw)
    y, w, off, b0 = glm_tensors(design, start, dev, dt)
    tol = min(1e-7, ctl["epsilon"] / 1000)
    y, _, mu0 = fam.initialize(y, w)
    source = DesignSource(design)
    # parallel across row blocks only: the calling thread's own vector arithmetic runs with one
    # intra-op thread, so that no OpenMP barrier waits for a thread the OS has descheduled
    with threads.chunked():
        fit = irls(GLMPasses(source, y, w, off, fam), start=b0, mustart=mu0, control=ctl, tol=tol)
        null_dev = _null_deviance(source, y, w, off, fam, fit, design, ctl, tol)
    call = _call_string(formula, weights, offset, subset, fn="glm", contrasts=contrasts)
    call = call[:-1] + f", family = {fam.r_call()})"
    result = GeneralizedLinearModelResult(design, fam, fit, y=y, weights=w, offset=off, null_deviance=null_dev,
                                          information=information, device=dev, dtype=dt, tol=tol, call=call,
                                          control=ctl)
    result.na_exclude = exclude
    result._refit = Refit(glm, formula, dict(data=data, family=family, weights=weights, offset=offset, subset=subset,
                                             na_action=na_action, start=start, control=control,
                                             information=information, exact=exact,
                                             contrasts=refit_contrasts(contrasts), names=names, device=device,
                                             dtype=dtype))
    return result


def _glm_dask(formula: str, data: Any, args: dict[str, Any]) -> GeneralizedLinearModelResult:
    """tl.glm of a Dask DataFrame (models/dask_glm.py), with the in-memory fit's call and refit; progress= and
    persist= are refused for other data."""
    from torchlm.models.dask_glm import glm_dask

    args = {k: v for k, v in args.items() if k not in ("formula", "data")}
    if not is_dask_frame(data):
        dask_only(progress=args["progress"], persist=args["persist"])
    call = _call_string(formula, args["weights"], args["offset"], args["subset"], fn="glm",
                        contrasts=args["contrasts"])
    check_flag("progress", args["progress"])
    check_flag("persist", args["persist"])
    with showing_progress(args["progress"]):
        fit = glm_dask(formula, data, **{k: v for k, v in args.items() if k != "progress"}, check_start=start_values,
                       call=call[:-1] + f", family = {as_family(args['family']).r_call()})")
    fit._refit = Refit(glm, formula, dict(args, data=data, contrasts=refit_contrasts(args["contrasts"])))
    return fit


def glm_tensors(design: Any, start: Any, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor,
                                                                          torch.Tensor, torch.Tensor | None]:
    """The response, prior weights (1 by default), offset (0) and start= coefficients of a design, on the device.

    Returns
    -------
    (y, weights, offset, start or None) as torch tensors.
    """
    n = design.shape[0]

    def as_t(a):
        # read-only pandas buffers: torch's warning about them is spent at import (sources.row_blocks)
        return torch.as_tensor(a, dtype=dtype, device=device)

    y = as_t(design.y)
    w = as_t(design.weights) if design.weights is not None else torch.ones(n, dtype=dtype, device=device)
    off = as_t(design.offset) if design.offset is not None else torch.zeros(n, dtype=dtype, device=device)
    return y, w, off, None if start is None else as_t(start_values(start, design.names))


def start_values(start: Any, names: list[str]) -> np.ndarray:
    """glm's ``start=``: one finite number per coefficient (formula order), as a float64 array.

    Raises
    ------
    OptionError
        (a ModelInputError) for text, a mapping, non-numbers, non-finite values or the wrong length.

    Returns
    -------
    numpy.ndarray
        (p,), a copy: the caller's sequence is not modified.
    """
    p = len(names)
    if isinstance(start, torch.Tensor):
        start = start.detach().cpu().numpy()
    if isinstance(start, (str, bytes, dict)) or not np.iterable(start):
        raise OptionError(f"start must be a sequence of {p} numbers, the starting coefficients {names}, "
                          f"not {start!r}")
    try:
        not_numbers = np.iscomplexobj(np.asarray(start))
        a = np.zeros(0) if not_numbers else np.array(start, dtype=float).ravel()
    except (TypeError, ValueError):
        not_numbers, a = True, np.zeros(0)
    if not_numbers:
        raise OptionError(f"start must be a sequence of {p} numbers, the starting coefficients {names}, "
                          f"not {start!r}")
    if a.size != p:
        raise OptionError(f"start has {a.size} values, the model has {p} coefficients ({names})")
    if not np.isfinite(a).all():
        raise OptionError(f"start has missing or infinite values ({a.tolist()}): give a finite starting value "
                          f"for each of {names}")
    return a


def _null_deviance(source, y, w, off, fam, fit, design, ctl, tol) -> float:
    """R's null deviance: the intercept-only fit (with the offset, which needs its own fit, as R's glm does)."""
    link = fam.link
    if not design.has_intercept:
        return float(fam.dev_resids(y, link.linkinv(off), w).sum())
    if design.offset is None:
        wtdmu = (w * y).sum() / w.sum()
        return float(fam.dev_resids(y, wtdmu.expand_as(y), w).sum())
    j = design.assign.index("1")  # the intercept's column, whatever names= calls it
    with silenced():  # the null model's glm.fit warnings are not the fit's
        null_fit = irls(GLMPasses(source, y, w, off, fam, columns=[j]), mustart=fit.mu, control=ctl, tol=tol)
    return null_fit.deviance
