"""The delta method for any function of the parameters of an Estimates result (tl.mle, tl.infer), its gradient by
autograd: estimate g(theta-hat), SE sqrt(G V G'), z (or t) test and interval, as R's car::deltaMethod (which
differentiates the expression symbolically)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from scipy import stats

from torchlm.errors import ModelInputError, TorchlmError
from torchlm.results.base import confint_labels


def _flatten(out: Any) -> tuple[torch.Tensor, list[str] | None]:
    """fn's value as one float64 vector, and the names a dict gives it."""
    if isinstance(out, dict):
        parts, labels = [], []
        for k, v in out.items():
            t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
            parts.append(t)
            labels += [str(k)] if t.numel() == 1 else [f"{k}[{i}]" for i in range(t.numel())]
        return torch.cat(parts), labels
    if isinstance(out, (list, tuple)):
        return torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()) for v in out]), None
    if not isinstance(out, torch.Tensor):
        raise ModelInputError(f"fn returned {type(out).__name__}: return a torch tensor computed from the parameter "
                              "tensors (a scalar or a vector), or a dict name -> tensor")
    return out.to(torch.float64).reshape(-1), None


def delta_method(est: Any, fn: Callable, level: float, vcov: Any, cluster: Any, names: Any) -> pd.DataFrame:
    """Estimates.delta: see there.

    Returns
    -------
    pandas.DataFrame, one row per element of fn's value.
    """
    if not callable(fn):
        raise ModelInputError(f"fn must be a function of the parameter dict, not {type(fn).__name__}")
    q = est._quantile(level)
    V = est.vcov(vcov, cluster=cluster)
    lik = est._likelihood
    x0 = torch.as_tensor(est.coef().to_numpy(), dtype=torch.float64)
    if lik is not None:
        x0 = x0.to(lik.theta.device)

    def params(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if lik is None:
            return {n: x[i] for i, n in enumerate(est.names)}
        return lik.params(lik.embed(x))

    def value(x: torch.Tensor) -> torch.Tensor:
        return _flatten(fn(params(x)))[0]

    try:
        with torch.no_grad():
            out, labels = _flatten(fn(params(x0)))
        G = torch.autograd.functional.jacobian(value, x0).reshape(out.numel(), x0.numel())
    except TorchlmError:
        raise
    except Exception as e:
        raise ModelInputError(f"fn raised {type(e).__name__} at the estimates ({e}): it takes the dict name -> "
                              "tensor and computes with torch operations") from e
    est_vals = out.cpu().numpy()
    Gn = G.detach().cpu().numpy()
    ok = np.asarray(est._identified(), dtype=bool)
    Vn = V.to_numpy()
    var = np.einsum("ij,jk,ik->i", Gn[:, ok], Vn, Gn[:, ok])
    se = np.sqrt(np.maximum(var, 0.0))
    # a function that moves with a non-identifiable parameter has no standard error
    se[np.any(Gn[:, ~ok] != 0, axis=1)] = np.nan
    rows = _names(fn, names, labels, len(est_vals))
    stat = est_vals / se
    s = est.statistic
    if s == "t" and est.df_residual:
        p = 2 * stats.t.sf(np.abs(stat), est.df_residual)
    else:
        s, p = "z", 2 * stats.norm.sf(np.abs(stat))
    lo, hi = confint_labels(level)
    return pd.DataFrame({"Estimate": est_vals, "Std. Error": se, f"{s} value": stat, f"Pr(>|{s}|)": p,
                         lo: est_vals - q * se, hi: est_vals + q * se}, index=rows)


def _names(fn: Callable, names: Any, labels: list[str] | None, m: int) -> list[str]:
    if names is not None:
        rows = [names] if isinstance(names, str) else [str(n) for n in names]
        if len(rows) != m:
            raise ModelInputError(f"names has {len(rows)} entries for the {m} values fn returns")
        return rows
    if labels is not None:
        return labels
    base = getattr(fn, "__name__", "value")
    base = "value" if base == "<lambda>" else base
    return [base] if m == 1 else [f"{base}[{i}]" for i in range(m)]
