"""tl.glm on a Dask DataFrame: R's glm.fit with one pass over the partitions per IRLS iteration.

``learn_plan -> [irls_reduction per partition -> combine -> qr_solve (R's rank detection)] per iteration ->
final_reduction -> DaskGeneralizedLinearModelResult``. Each pass at the current coefficients gives the deviance
there (R's convergence test and step halving, by the Newton driver the in-memory IRLS uses) and the R factor of
the working least squares at that point (the next step), so an iteration costs one pass, a halving one more.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from torchlm.errors import DataError, ModelInputError, TorchlmWarning, silenced
from torchlm.frame.dask_frame import map_partitions_computed, not_supported
from torchlm.frame.dask_state import learn_plan
from torchlm.models.dask_fit import _check_options
from torchlm.models.families import Family, as_family
from torchlm.results.dask_glm import DaskGeneralizedLinearModelResult, DaskIRLSFit
from torchlm.solvers.irls import control_settings
from torchlm.sources.dask_glm_passes import IRLSPasses as _Passes
from torchlm.sources.dask_glm_passes import dask_irls
from torchlm.sources.dask_irls import (
    FinalPart,
    FinalSpec,
    IRLSPart,
    PersistedRows,
    Point,
    combine_final,
    final_reduction,
)


def _check_glm(family: Family, information: str, control: dict) -> None:
    if information != "expected":
        raise not_supported("information='observed' (the autograd Hessian reads every row)")
    if control["exact"]:
        raise not_supported("exact=True (the polishing Newton steps)")
    if family.aic_dispersion == "unknown" or type(family).__module__ != "torchlm.models.families":
        raise not_supported(f"the family {family.name!r} (R's families are: gaussian, binomial, poisson, Gamma, "
                            "inverse.gaussian and the quasi families)")


def glm_dask(formula: str, data: Any, *, family: Any = "gaussian", weights: Any = None, offset: Any = None,
             subset: Any = None, na_action: str = "omit", start: Any = None, control: dict | None = None,
             information: str = "expected", exact: bool = False, contrasts: dict | None = None,
             names: str = "formulaic", device: Any = None, dtype: Any = None, call: str = "",
             check_start: Callable[[Any, list[str]], np.ndarray] | None = None,
             persist: bool = False) -> DaskGeneralizedLinearModelResult:
    """tl.glm for a dask DataFrame: R's glm.fit with one pass over the partitions per iteration.

    Parameters
    ----------
    formula, data, family, weights, offset, subset, na_action, start, control, information, exact, contrasts,
    names, device, dtype : as in tl.glm; weights, offset and subset are column names or expressions (strings).
    call : str
        The call as the summary prints it.
    check_start : callable, optional
        glm's check of ``start=`` (tl.glm passes its own), given the coefficients' names.
    persist : bool
        Build each partition's design once and keep it in the workers for the passes (memory: the design's
        rows; each pass then skips the formula's materialization).

    Returns
    -------
    DaskGeneralizedLinearModelResult

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt", ddf, family="binomial")
    >>> fit.coef().round(4)
    Intercept    12.0404
    wt           -4.0240
    Name: Estimate, dtype: float64
    """
    fam = as_family(family)
    if information not in ("expected", "observed"):
        raise ModelInputError(f"information must be 'expected' or 'observed', not {information!r}")
    ctl = control_settings(control, exact=exact)
    _check_glm(fam, information, ctl)
    na_action = _check_options(na_action, device, dtype)
    try:
        plan, prototype = learn_plan(formula, data, weights=weights, offset=offset, subset=subset,
                                     na_action=na_action, contrasts=contrasts, names=names)
    except DataError as e:
        if "a factor response is only for tl.glm" not in str(e):
            raise
        # the plan is learnt by lm's design, which refuses a factor response
        raise not_supported("a factor response (give the response as a 0/1 or logical column)") from None
    tol = min(1e-7, ctl["epsilon"] / 1000)
    b0 = None
    if start is not None:
        values = check_start(start, list(prototype.names)) if check_start else np.asarray(start, dtype=np.float64)
        b0 = torch.as_tensor(values, dtype=torch.float64)
    if not len(prototype.names):
        raise not_supported("a model without coefficients (y ~ 0)")
    source = PersistedRows(data, plan, fam) if persist else data
    passes = _Passes(source, plan, fam, tol, None, list(prototype.names))
    # the pass that converges also gives the final sums, where the aic needs no total deviance (to scale by)
    fit = dask_irls(passes, b0, Point(None), ctl, final_spec=_final_spec(prototype, plan) if fam.aic_dispersion is None
                    else None)
    total = fit.first.qr
    if weights is not None and not total.nobs:
        raise DataError(f"0 observations with a non-zero weight (of {total.n} rows): nothing to fit")
    final = _final_pass(passes, fit, prototype, ctl)
    return DaskGeneralizedLinearModelResult(data, plan, prototype, fam, fit, final, ctl, tol=tol, call=call,
                                            source=source)


def _final_spec(prototype: Any, plan: Any) -> Callable[..., FinalSpec]:
    """The FinalSpec of a fit at ``final`` whose last working weights are at ``origin``, from the first pass."""
    has_offset = plan.offset is not None or bool(plan.offset_terms)

    def spec(first: IRLSPart, final: Point, origin: Point, deviance: float = math.nan) -> FinalSpec:
        null_mu = first.sum_wy / first.sum_w if prototype.has_intercept and not has_offset else None
        return FinalSpec(final=final, origin=origin, deviance=deviance, n=first.qr.n, sum_w=first.sum_w,
                         null_mu=null_mu)

    return spec


def _final_pass(passes: _Passes, fit: DaskIRLSFit, prototype: Any, control: dict) -> tuple[FinalSpec, FinalPart]:
    """The final pass's sums (from the converging pass where it computed them); the null deviance by its own IRLS
    where R refits (intercept and offset)."""
    has_offset = passes.plan.offset is not None or bool(passes.plan.offset_terms)
    spec = _final_spec(prototype, passes.plan)(fit.first, fit.final, fit.origin, fit.deviance)
    if fit.final_sums is not None:
        total = fit.final_sums
    else:
        total = combine_final(map_partitions_computed(passes.ddf, final_reduction, passes.plan, passes.family, spec))
    for message in total.warnings:
        warnings.warn(message, TorchlmWarning, stacklevel=5)
    if prototype.has_intercept and has_offset:
        j = prototype.assign.index("1")  # the intercept's column, whatever names= calls it
        null = _Passes(passes.ddf, passes.plan, passes.family, passes.tol, (j,), [passes.names[j]])
        with silenced():  # the null model's glm.fit warnings are not the fit's
            null_fit = dask_irls(null, None, Point(fit.final.beta, None, through_mu=True), control)
        total.null_deviance = null_fit.deviance
    return spec, total


