"""tl.nls(): R's nls(), nonlinear least squares with autograd Jacobians (Gauss-Newton, Levenberg-Marquardt, port)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch

from torchlm.errors import FitError, ModelInputError, OptionError, warn
from torchlm.models.nls_model import NonlinearModel, build_model, deviance_noise
from torchlm.results.base import Refit
from torchlm.results.nls import NonlinearModelResult
from torchlm.solvers.autograd import limited_pivoting
from torchlm.solvers.levenberg import bounded_least_squares, held_at_bounds, levenberg_marquardt
from torchlm.solvers.nonlinear_ls import (
    RANK_TOL,
    NlsControl,
    Outcome,
    Point,
    evaluate_point,
    gauss_newton,
    nls_control,
    polish,
)
from torchlm.solvers.options import resolve_device_dtype

ALGORITHMS = ("default", "port", "lm")


def nls(formula: str, data: Any, start: Any, *, weights: Any = None, subset: Any = None, algorithm: str = "default",
        lower: Any = None, upper: Any = None, control: Any = None, na_action: str = "omit", exact: bool = False,
        device: Any = None, dtype: Any = None) -> NonlinearModelResult:
    """Fit a nonlinear model by least squares, as R's nls() (and minpack.lm's nlsLM() with ``algorithm="lm"``).

    Parameters
    ----------
    formula : str
        The response, ``~`` and the model, written as R writes it: ``"y ~ b1*(1-exp(-b2*x))"`` (``^`` a power,
        R's functions exp, log, sqrt, sin, cos, atan, ...; ``b[1]`` an element of a vector parameter,
        ``Vm[state]`` one per level of a factor). Names that are not parameters are the data's columns.
    data : pandas.DataFrame (or dict of arrays); not modified.
    start : dict
        A starting value for every parameter: ``{"b1": 500, "b2": 1e-4}``; a list for a vector parameter
        (``{"Vm": [200, 160]}``, R's coefficients Vm1, Vm2).
    weights : column name, R expression (``"1/rate"``) or array: the residuals' prior weights.
    subset : boolean mask or R expression (``"state == 'treated'"``).
    algorithm : str
        "default": R's Gauss-Newton with R's relative-offset convergence criterion and step halving;
        "lm": Levenberg-Marquardt as minpack.lm's nlsLM (MINPACK's lmdif); "port": least squares within
        ``lower`` and ``upper`` (R's nls(algorithm = "port")).
    lower, upper : number, list or dict by parameter name: bounds ("port" and "lm"; ignored with R's
        warning by "default").
    control : dict
        R's nls.control (``maxiter`` 50, ``tol`` 1e-5, ``minFactor`` 1/1024, ``warnOnly``, ``scaleOffset``),
        nls.lm.control (``ftol``, ``ptol``, ``gtol``, ``factor``, ``maxfev``), port's (``rel.tol``,
        ``x.tol``, ``iter.max``, ``eval.max``), and ``fallback`` (default True): where R's Gauss-Newton
        stops without converging, fit by Levenberg-Marquardt from the same start instead, with a warning;
        ``fallback=False`` gives R's error.
    na_action : "omit" or "fail".
    exact : bool
        Iterate on from R's stopping point to the least-squares optimum itself (Newton steps on the
        sum of squares); the default stops where R does.
    device, dtype : torch device (default cpu) and dtype (default float64).

    Returns
    -------
    NonlinearModelResult

    Examples
    --------
    >>> d = tl.datasets.load("Puromycin").query("state == 'treated'")
    >>> fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, {"Vm": 200, "K": 0.05})
    >>> fit.coef().round(4).tolist()
    [212.6836, 0.0641]
    """
    ctrl = nls_control(control)
    if algorithm not in ALGORITHMS:
        raise OptionError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}"
                          + (" (R's 'plinear' is not available)" if algorithm == "plinear" else ""))
    dev, dt = resolve_device_dtype(device, dtype)
    model, x0, mf = build_model(formula, data, start, weights=weights, subset=subset, na_action=na_action,
                                device=dev, dtype=dt)
    if mf.weights is not None and not (mf.weights > 0).any():
        raise ModelInputError("every weight is zero: nothing to fit")
    lo, hi = bounds(lower, upper, model)
    if algorithm == "default" and (lo is not None or hi is not None):
        warn('upper and lower bounds ignored unless algorithm = "port"')
        lo = hi = None
    x = torch.as_tensor(x0, dtype=dt, device=dev)
    pt = evaluate_point(model.residual, x)
    if pt is None:
        raise FitError("Missing value or an infinity produced when evaluating the model at the starting values "
                       "(R's error): choose a start where the model and its gradient are finite")
    if pt.singular and algorithm == "port":
        raise FitError("singular gradient matrix at initial parameter estimates (R's error): "
                       + aliased_text(pt, model))
    if algorithm == "port":
        outcome = fit_port(model, pt, ctrl, lo, hi)
    elif algorithm == "lm":
        outcome = fit_lm(model, pt, ctrl, lo, hi, exact)
    else:
        outcome = fit_default(model, pt, ctrl, exact)
    result = NonlinearModelResult(model, mf, outcome, algorithm=algorithm, control=ctrl, lower=lo, upper=hi,
                                  data_name=_data_name(data), weighted=weights is not None)
    result._refit = Refit(nls, formula, dict(data=data, start=start, weights=weights, subset=subset,
                                             algorithm=algorithm, lower=lower, upper=upper, control=control,
                                             na_action=na_action, exact=exact, device=device, dtype=dtype))
    return result


def aliased_text(pt: Point, model: NonlinearModel) -> str:
    """Which parameters' gradients are zero or combinations of the others' (dqrdc2's pivoted columns).

    Returns
    -------
    str
    """
    _, perm, rank = limited_pivoting(pt.R.cpu(), pt.p, RANK_TOL)
    names = [model.coef_names[j] for j in perm[rank:]]
    which = ", ".join(names) if names else "some parameters"
    return (f"the model's gradient in {which} is zero or a combination of the others' there; change the start "
            "or the parametrisation")


def bounds(lower: Any, upper: Any, model: NonlinearModel) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``lower`` / ``upper`` as arrays over the coefficients (R's rep_len of a vector; a dict by parameter name).

    Returns
    -------
    tuple of (numpy.ndarray or None, numpy.ndarray or None)
    """
    p = len(model.coef_names)

    def one(b: Any, fill: float, what: str) -> np.ndarray | None:
        if b is None:
            return None
        if isinstance(b, dict):
            out = np.full(p, fill)
            for name, v in b.items():
                par = next((q for q in model.params if q.name == name), None)
                if par is None:
                    raise OptionError(f"{what} names {name!r}, which is not a parameter "
                                      f"({', '.join(model.coef_names)})")
                out[par.offset:par.offset + par.length] = np.resize(np.asarray(v, dtype=float), par.length)
            return out
        try:
            arr = np.atleast_1d(np.asarray(b, dtype=np.float64)).ravel()
        except (TypeError, ValueError):
            raise OptionError(f"{what} must be numbers (one, one per coefficient, or a dict by parameter)") from None
        if arr.size == 0 or np.isnan(arr).any():
            raise OptionError(f"{what} must be numbers, not {b!r}")
        return np.resize(arr, p)  # R's rep_len

    lo, hi = one(lower, -math.inf, "lower"), one(upper, math.inf, "upper")
    if lo is not None and np.isneginf(lo).all() and hi is None:
        lo = None
    if hi is not None and np.isposinf(hi).all() and lo is None:
        hi = None
    if lo is not None and hi is not None and (lo > hi).any():
        raise OptionError("lower must not exceed upper")
    return lo, hi


def _r_stop(outcome: Outcome, ctrl: NlsControl) -> None:
    """R's non-convergence: an error, or a warning under warnOnly (nls.c's NON_CONV_FINISH)."""
    if ctrl.warn_only:
        warn(outcome.message, stacklevel=4)
        return
    more = f" control={{'maxiter': {2 * max(ctrl.maxiter, 1)}}} allows more iterations;" if outcome.code == 3 else ""
    raise FitError(f"{outcome.message} (R's error);{more} algorithm='lm' (Levenberg-Marquardt) converges from "
                   "farther starts; control={'warnOnly': True} returns the fit where it stopped")


def fit_default(model: NonlinearModel, pt: Point, ctrl: NlsControl, exact: bool) -> Outcome:
    """R's Gauss-Newton; where it stops without converging (or cannot start: a singular gradient), torchlm's
    Levenberg-Marquardt fallback, with a warning.

    Returns
    -------
    Outcome
    """
    if pt.singular:
        outcome = Outcome(pt, False, 0, math.nan, 1, "singular gradient matrix at initial parameter estimates",
                          "default")
    else:
        outcome = gauss_newton(model.residual, pt, ctrl)
        if outcome.converged:
            return _polished(model, outcome) if exact else outcome
    if ctrl.fallback and not ctrl.warn_only:
        rescue = fallback(model, pt, ctrl)
        if rescue is not None:
            warn(f"Gauss-Newton stopped as R's nls() does ({outcome.message}); the fit is torchlm's "
                 f"Levenberg-Marquardt from the same start, iterated to the optimum ({rescue.iterations} "
                 "iterations); control={'fallback': False} gives R's error", stacklevel=3)
            rescue.extra["gauss_newton"] = outcome.message
            return rescue
    if pt.singular:
        raise FitError("singular gradient matrix at initial parameter estimates (R's error): "
                       + aliased_text(pt, model))
    _r_stop(outcome, ctrl)
    return outcome


def fallback(model: NonlinearModel, pt: Point, ctrl: NlsControl) -> Outcome | None:
    """Levenberg-Marquardt with a larger budget, then R's Gauss-Newton and the polish from where it ends.

    Accepted when R's relative offset is at most ``tol`` there, or at the rounding level of the residuals
    (a fit close to exact, as NIST's Lanczos1, where R's criterion cannot be met without scaleOffset).

    Returns
    -------
    Outcome or None
        None when no converged point was found.
    """
    budget = NlsControl(ftol=ctrl.ftol, ptol=0.0, gtol=0.0, factor=ctrl.factor, maxfev=10**7)
    lm = levenberg_marquardt(model.residual, pt, budget, maxiter=max(ctrl.fallback_maxiter, ctrl.maxiter))
    point = lm.point
    if not point.singular:
        gn = gauss_newton(model.residual, point, ctrl)
        point = gn.point if gn.converged else point
    if point.singular:
        return None
    point = polish(model.residual, point, deviance_noise(model))
    off = point.offset(ctrl.scale_offset)
    if not (off <= ctrl.tol or off <= 10 * rounding_offset(model, point)):
        return None
    return Outcome(point, True, lm.iterations, off, 0, "converged", "lm", lm.evaluations,
                   {"fallback": True})


def rounding_offset(model: NonlinearModel, pt: Point) -> float:
    """The relative offset that rounding in the residuals alone leaves at a point: eps ||sqrt(w)(|f| + |y|)||
    over the norm of the residuals outside the gradient's columns.

    Returns
    -------
    float
    """
    eps = float(torch.finfo(pt.x.dtype).eps)
    with torch.no_grad():
        size = model.fitted(pt.x).abs() + model.y.abs()
        if model.swts is not None:
            size = size * model.swts
    out = pt.outside()
    return eps * float(torch.linalg.vector_norm(size)) / math.sqrt(out) if out > 0 else math.inf


def _polished(model: NonlinearModel, outcome: Outcome, fixed: torch.Tensor | None = None,
              ctrl: NlsControl | None = None) -> Outcome:
    """``outcome`` moved on to the optimum itself: from another algorithm's point R's Gauss-Newton first (no
    parameter held), then Newton's polish."""
    point = outcome.point
    if fixed is None and ctrl is not None:
        gn = gauss_newton(model.residual, point, ctrl)
        point = gn.point if gn.converged else point
    point = polish(model.residual, point, deviance_noise(model), fixed)
    outcome.extra["polished_from"] = outcome.point.x
    outcome.point = point
    if outcome.algorithm == "default":
        outcome.tolerance = point.offset()
    return outcome


def fit_lm(model: NonlinearModel, pt: Point, ctrl: NlsControl, lo: np.ndarray | None, hi: np.ndarray | None,
           exact: bool) -> Outcome:
    """minpack.lm's nlsLM: MINPACK's Levenberg-Marquardt; not converged is nlsLM's warning, and a fit.

    Returns
    -------
    Outcome
    """
    outcome = levenberg_marquardt(model.residual, pt, ctrl, lo, hi)
    if outcome.code in (-1, 0):
        warn(f"lmdif: info = {outcome.code}. {outcome.message}", stacklevel=3)
    if outcome.point.singular:
        raise FitError("singular gradient matrix at initial parameter estimates (R's error from nlsLM's final "
                       "nlsModel, at the estimates): " + aliased_text(outcome.point, model))
    if exact and outcome.converged:
        held = None if lo is None and hi is None else held_at_bounds(outcome.point, *_full_bounds(lo, hi, pt.p))
        return _polished(model, outcome, held if held is not None and bool(held.any()) else None, ctrl)
    return outcome


def _full_bounds(lo: np.ndarray | None, hi: np.ndarray | None, p: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full(p, -math.inf) if lo is None else lo), (np.full(p, math.inf) if hi is None else hi)


def fit_port(model: NonlinearModel, pt: Point, ctrl: NlsControl, lo: np.ndarray | None,
             hi: np.ndarray | None) -> Outcome:
    """R's algorithm = "port": bounded least squares, polished to the bounded optimum.

    Returns
    -------
    Outcome
    """
    lower, upper = _full_bounds(lo, hi, pt.p)
    outcome = bounded_least_squares(model.residual, pt, ctrl, lower, upper)
    if not outcome.converged:
        if not ctrl.warn_only:
            raise FitError(f"Convergence failure: {outcome.message} (R's error)")
        warn(f"Convergence failure: {outcome.message}", stacklevel=3)
        return outcome
    held = held_at_bounds(outcome.point, lower, upper)
    return _polished(model, outcome, held if bool(held.any()) else None)


def _data_name(data: Any) -> str:
    """The name the caller gave the data (R's deparse(substitute(data)) in print.nls), else "data"."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        if caller is not None:
            for scope in (caller.f_locals, caller.f_globals):
                for name, value in scope.items():
                    if value is data and not name.startswith("_"):
                        return name
    except (AttributeError, ValueError):  # frames unavailable (other Python implementations)
        pass
    finally:
        del frame
    return "data"
