"""tl.lm(): formula -> design -> QR fit -> LinearModelResult."""

from __future__ import annotations

from typing import Any

from torchlm.errors import DataError
from torchlm.frame import build_design
from torchlm.results.base import Refit
from torchlm.results.linear import LinearModelResult
from torchlm.solvers.least_squares import ACCURATE_ELEMENTS, linear_chunks, qr_solve
from torchlm.solvers.options import check_tol, resolve_device_dtype


def _call_string(formula, weights, offset, subset, fn="lm") -> str:
    parts = [f"formula = {formula}"]
    for k, v in (("weights", weights), ("offset", offset), ("subset", subset)):
        if isinstance(v, str):
            parts.append(f"{k} = {v}")
        elif v is not None:
            parts.append(f"{k} = <array>")
    return f"{fn}(" + ", ".join(parts) + ")"


def lm(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
       na_action: str = "omit", tol: float = 1e-7, device: Any = None, dtype: Any = None) -> LinearModelResult:
    """Fit a linear model by least squares, as R's lm().

    Parameters
    ----------
    formula : formulaic formula, e.g. ``"mpg ~ wt + C(cyl)"``.
    data : pandas DataFrame (or dict of arrays); not modified.
    weights : prior weights (column name or array); zero weights drop out of the residual df.
    offset : known component of the linear predictor (column name or array).
    subset : boolean mask or query string selecting rows.
    na_action : "omit" drops rows with a missing value in any variable used; "fail" raises.
    tol : R's rank-detection tolerance (lm.fit's tol), a number in (0, 1): columns whose residual
        norm, after the earlier columns, is below tol times their norm are aliased (coefficient NaN).
    device : torch device ("cpu", "cuda", "cuda:1"); default cpu.
    dtype : torch.float64 (default) or torch.float32 (warns: digits are lost).

    Returns
    -------
    LinearModelResult
    """
    tol = check_tol(tol)
    dev, dt = resolve_device_dtype(device, dtype)
    design = build_design(formula, data, weights=weights, offset=offset, subset=subset, na_action=na_action)
    n, p = design.shape
    if design.weights is not None and not (design.weights != 0).any():
        # R fits nothing here (its coefficients lose their names); n = p and n < p are fitted, as R fits them
        raise DataError(f"0 observations with a non-zero weight (of {n} rows): nothing to fit")
    chunks = linear_chunks(design, design.y, design.weights, design.offset, dev, dt)
    qr = qr_solve(chunks, p, tol, dev, dt, accurate=n * p <= ACCURATE_ELEMENTS, names=list(design.names))
    call = _call_string(formula, weights, offset, subset)
    fit = LinearModelResult(design, qr, device=dev, dtype=dt, tol=tol, call=call)
    fit._refit = Refit(lm, formula, dict(data=data, weights=weights, offset=offset, subset=subset, na_action=na_action,
                                         tol=tol, device=device, dtype=dtype))
    return fit
