"""tl.lm(): formula -> design -> QR fit -> LinearModelResult."""

from __future__ import annotations

from typing import Any

from torchlm.errors import DataError, OptionError
from torchlm.frame import build_design
from torchlm.frame.coded_factors import factor_design
from torchlm.frame.contrasts import Relaxed
from torchlm.frame.dask_compute import showing_progress
from torchlm.frame.dask_frame import is_dask_frame
from torchlm.frame.factor_block import FactorDesign
from torchlm.frame.large_factor import LargeFactorDesign, large_factor_design
from torchlm.results.base import Refit
from torchlm.results.design_methods import na_mode
from torchlm.results.large_factor import LargeFactorResult
from torchlm.results.linear import LinearModelResult
from torchlm.solvers.factor_passes import factor_fit
from torchlm.solvers.factor_within import fit_large_factor
from torchlm.solvers.least_squares import ACCURATE_ELEMENTS, linear_chunks, qr_solve
from torchlm.solvers.options import check_tol, resolve_device_dtype


def _call_string(formula, weights, offset, subset, fn="lm", contrasts=None) -> str:
    parts = [f"formula = {formula}"]
    for k, v in (("weights", weights), ("offset", offset), ("subset", subset)):
        if isinstance(v, str):
            parts.append(f"{k} = {v}")
        elif v is not None:
            parts.append(f"{k} = <array>")
    if isinstance(contrasts, dict) and contrasts:
        # R's call: contrasts = list(cyl = "contr.sum"), a non-syntactic name in backquotes
        items = [(k if str(k).isidentifier() else f"`{k}`") + " = " + (f'"{v}"' if isinstance(v, str) else "<matrix>")
                 for k, v in contrasts.items()]
        parts.append(f"contrasts = list({', '.join(items)})")
    return f"{fn}(" + ", ".join(parts) + ")"


def refit_contrasts(contrasts: Any) -> Any:
    """contrasts= as a fit keeps it for update() and step(): a variable the new formula drops is R's warning.

    Returns
    -------
    Relaxed or the argument as given (None)
    """
    return Relaxed(contrasts) if isinstance(contrasts, dict) else contrasts


def lm(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
       na_action: str = "omit", tol: float = 1e-7, contrasts: dict | None = None, names: str = "formulaic",
       device: Any = None, dtype: Any = None, progress: bool = False, persist: bool = False) -> LinearModelResult:
    """Fit a linear model by least squares, as R's lm().

    Parameters
    ----------
    formula : formulaic formula, e.g. ``"mpg ~ wt + C(cyl)"``.
    data : pandas DataFrame (or dict of arrays); not modified.
    weights : prior weights (column name or array); zero weights drop out of the residual df.
    offset : known component of the linear predictor (column name or array).
    subset : boolean mask or query string selecting rows.
    na_action : "omit" drops rows with a missing value in any variable used; "exclude" drops them too, and pads
        fitted(), residuals(), predict() and the influence measures with NaN there (R's na.exclude); "fail"
        raises. R's spellings "na.omit", "na.exclude", "na.fail" are accepted.
    tol : R's rank-detection tolerance (lm.fit's tol), a number in (0, 1): columns whose residual
        norm, after the earlier columns, is below tol times their norm are aliased (coefficient NaN).
    contrasts : R's contrasts= per variable: ``{"cyl": "contr.sum"}``, the variable as the data names it
        (``cyl``) or as the formula writes it (``factor(cyl)``, R's model-frame name); a contrast is
        "contr.treatment", "contr.sum", "contr.helmert", "contr.poly", "contr.SAS" or a numeric matrix
        with one row per level. Other factors get the session's default (``tl.options(contrasts=)``,
        R's options("contrasts"): contr.treatment, and contr.poly for ordered factors).
    names : "formulaic" (default: formulaic's column names, ``Intercept``, ``factor(cyl)[T.6]``) or "R"
        (R's coefficient names, ``(Intercept)``, ``factor(cyl)6``, ``poly(wt, 2)1``) in coef, vcov,
        summary and everything else that shows the coefficients.
    device : torch device ("cpu", "cuda", "cuda:1"); default cpu.
    dtype : torch.float64 (default) or torch.float32 (warns: digits are lost).
    progress : for a Dask DataFrame ``data``: show Dask's progress bar for each pass over the partitions
        (docs/scale.md); an OptionError with other data.
    persist : for a Dask DataFrame ``data``: build each partition's design rows once and keep them in the
        workers for the later passes (memory: the rows of the design); an OptionError with other data.

    Returns
    -------
    LinearModelResult

    Examples
    --------
    >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
    >>> fit.coef().round(4)
    Intercept    37.2851
    wt           -5.3445
    Name: Estimate, dtype: float64
    """
    if is_dask_frame(data):  # reduced partition by partition in the workers (models/dask_fit.py)
        return _lm_dask(formula, data, dict(weights=weights, offset=offset, subset=subset, na_action=na_action,
                                            tol=tol, contrasts=contrasts, names=names, device=device, dtype=dtype,
                                            progress=progress, persist=persist))
    dask_only(progress=progress, persist=persist)
    tol = check_tol(tol)
    dev, dt = resolve_device_dtype(device, dtype)
    frame_na, exclude = na_mode(na_action)  # na.exclude drops rows as na.omit does; the fit pads its results
    # a many-level factor is kept as codes (tl.options(factor_levels=)); else formulaic's dense design
    design = factor_design(formula, data, weights=weights, offset=offset, subset=subset, na_action=frame_na,
                           contrasts=contrasts, names=names, large=large_factor_design) or build_design(
        formula, data, weights=weights, offset=offset, subset=subset, na_action=frame_na, contrasts=contrasts,
        names=names)
    n, p = design.shape
    if design.weights is not None and not (design.weights != 0).any():
        # R fits nothing here (its coefficients lose their names); n = p and n < p are fitted, as R fits them
        raise DataError(f"0 observations with a non-zero weight (of {n} rows): nothing to fit")
    fitted = _fit_design(design, tol, dev, dt, _call_string(formula, weights, offset, subset, contrasts=contrasts))
    fitted.na_exclude = exclude
    fitted._refit = Refit(lm, formula, dict(data=data, weights=weights, offset=offset, subset=subset,
                                            na_action=na_action, tol=tol, contrasts=refit_contrasts(contrasts),
                                            names=names, device=device, dtype=dtype))
    return fitted


def dask_only(**options: Any) -> None:
    """Refuse the options that are for a Dask DataFrame's data (progress=, persist=) with other data.

    Parameters
    ----------
    **options : bool
        The options as given (False: not asked for).

    Returns
    -------
    None
    """
    for name, value in options.items():
        check_flag(name, value)
        if value:
            raise OptionError(f"{name}= is for Dask DataFrame input (data= a dask.dataframe.DataFrame); the data "
                              "here is in memory: drop it")


def _lm_dask(formula: str, data: Any, args: dict[str, Any]) -> LinearModelResult:
    """tl.lm of a Dask DataFrame (models/dask_fit.py), with the in-memory fit's call and refit."""
    from torchlm.models.dask_fit import lm_dask

    progress = args.pop("progress")
    check_flag("progress", progress)
    check_flag("persist", args["persist"])
    with showing_progress(progress):
        fit = lm_dask(formula, data, **args, call=_call_string(formula, args["weights"], args["offset"],
                                                               args["subset"], contrasts=args["contrasts"]))
    fit._refit = Refit(lm, formula, dict(args, data=data, progress=progress,
                                         contrasts=refit_contrasts(args["contrasts"])))
    return fit


def check_flag(name: str, value: Any) -> None:
    """A True/False option (progress=, persist=), or an OptionError naming it.

    Parameters
    ----------
    name : str
    value : Any

    Returns
    -------
    None
    """
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be True or False, not {value!r}")


def _fit_design(design: Any, tol: float, dev: Any, dt: Any, call: str) -> LinearModelResult:
    """lm.fit of a design: by its factor's codes (one kept as codes, or beyond R's dense factor), else its QR."""
    if isinstance(design, LargeFactorDesign):
        qr, within = fit_large_factor(design, tol, dev, dt)
        return LargeFactorResult(design, qr, within, device=dev, dtype=dt, tol=tol, call=call)
    n, p = design.shape
    coded = factor_fit(design, tol, dev, dt) if isinstance(design, FactorDesign) else None
    if coded is not None:
        return LinearModelResult(design, coded, device=dev, dtype=dt, tol=tol, call=call)
    chunks = linear_chunks(design, design.y, design.weights, design.offset, dev, dt)
    qr = qr_solve(chunks, p, tol, dev, dt, accurate=n * p <= ACCURATE_ELEMENTS, names=list(design.names))
    return LinearModelResult(design, qr, device=dev, dtype=dt, tol=tol, call=call)

