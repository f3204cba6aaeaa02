"""tl.lm on a Dask DataFrame: learn the plan, reduce each partition in its worker, one QR on the client.

``learn_plan -> qr_reduction per partition -> combine_qr -> qr_solve (R's rank detection) -> DaskLinearModelResult``.
The stacked partition factors are pseudo-rows with the data's normal equations, so lm's own solver (TSQR,
dqrdc2 pivoting, refinement) runs on them unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from torchlm.errors import DataError, ModelInputError
from torchlm.frame.dask_frame import map_partitions_computed
from torchlm.frame.dask_persist import PersistedPartitions
from torchlm.frame.dask_state import learn_plan
from torchlm.results.dask_linear import DaskLinearModelResult
from torchlm.solvers.least_squares import linear_chunks, qr_solve
from torchlm.solvers.options import check_tol
from torchlm.sources.dask_source import combine_qr, qr_reduction


def _check_options(na_action: str, device: Any, dtype: Any) -> str:
    """The options a Dask fit takes (float64 on the CPU; na.exclude's padding needs the rows: not yet)."""
    if device is not None and torch.device(device).type != "cpu":
        raise ModelInputError("a Dask DataFrame fit runs on the CPU for now (device= is not supported with it)")
    if dtype is not None and dtype != torch.float64:
        raise ModelInputError("a Dask DataFrame fit computes in float64 (dtype= is not supported with it)")
    spelled = {"na.omit": "omit", "na.fail": "fail", "na.exclude": "exclude"}.get(na_action, na_action)
    if spelled == "exclude":
        raise ModelInputError("na_action='exclude' is not supported yet for a Dask DataFrame (use 'omit')")
    return spelled


def lm_dask(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
            na_action: str = "omit", tol: float = 1e-7, contrasts: dict | None = None, names: str = "formulaic",
            device: Any = None, dtype: Any = None, call: str = "", persist: bool = False) -> DaskLinearModelResult:
    """tl.lm for a dask DataFrame: the in-memory fit's numbers from per-partition reductions.

    Parameters
    ----------
    formula, data, weights, offset, subset, na_action, tol, contrasts, names, device, dtype : as in tl.lm;
        weights, offset and subset are column names or expressions (strings).
    call : str
        The call as the summary prints it.
    persist : bool
        Build each partition's design rows once and keep them (with the partition) in the workers for the passes
        (frame/dask_persist.py): the QR, the residual sums, the summary's order statistics, HC2-HC5 and clusters.

    Returns
    -------
    DaskLinearModelResult

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.lm("mpg ~ wt", ddf)
    >>> fit.coef().round(4)
    Intercept    37.2851
    wt           -5.3445
    Name: Estimate, dtype: float64
    """
    tol = check_tol(tol)
    na_action = _check_options(na_action, device, dtype)
    plan, prototype = learn_plan(formula, data, weights=weights, offset=offset, subset=subset, na_action=na_action,
                                 contrasts=contrasts, names=names)
    source = PersistedPartitions(data, plan) if persist else data
    total = combine_qr(map_partitions_computed(source, qr_reduction, plan))
    if weights is not None and not total.nobs:
        raise DataError(f"0 observations with a non-zero weight (of {total.n} rows): nothing to fit")
    p = len(plan.names)
    chunks = linear_chunks(total.R[:, :p].copy(order="F"), total.R[:, p].copy())
    qr = qr_solve(chunks, p, tol, torch.device("cpu"), torch.float64, accurate=True, names=list(prototype.names))
    return DaskLinearModelResult(source, plan, prototype, qr, total, tol=tol, call=call)
