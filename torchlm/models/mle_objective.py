"""tl.mle's inputs: the data as tensors, the start values, fixed values and their element names, and the user's
negative log-likelihood as a function of one flat parameter vector (with the fixed elements filled in)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch.func import vmap

from torchlm.errors import ModelInputError
from torchlm.results.estimates import element_names
from torchlm.solvers.autograd import quiet


def tensor_data(data: Any) -> tuple[Any, int | None]:
    """Data for the nll, and its number of rows if that is clear: DataFrame or dict columns and tuple items as
    float64 tensors (numeric ones; others as numpy arrays).

    Returns
    -------
    (data as the nll gets it, rows or None)
    """
    def conv(v):
        if isinstance(v, torch.Tensor):
            return v.to(torch.float64) if v.is_floating_point() else v
        a = np.asarray(v)
        if a.dtype.kind in "biuf":
            return torch.as_tensor(a.astype(np.float64))
        return a

    if data is None:
        return None, None
    if isinstance(data, pd.DataFrame):
        return {c: conv(data[c].to_numpy()) for c in data.columns}, len(data)
    if isinstance(data, dict):
        d = {k: conv(v) for k, v in data.items()}
        lens = {len(v) for v in d.values() if hasattr(v, "__len__") and np.ndim(v) >= 1}
        return d, (lens.pop() if len(lens) == 1 else None)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        t = conv(data)
        return t, (t.shape[0] if t.ndim else None)
    if isinstance(data, (tuple, list)):
        items = tuple(conv(v) if isinstance(v, (torch.Tensor, np.ndarray)) else v for v in data)
        lens = {v.shape[0] for v in items if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 1}
        return items, (lens.pop() if len(lens) == 1 else None)
    return data, None


def _short_any(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def short_value(v: torch.Tensor) -> str:
    """A parameter's value as R's call shows it: 1.5, or c(0, 0, ...).

    Returns
    -------
    str
    """
    if v.numel() == 1:
        return f"{float(v):.4g}"
    return "c(" + ", ".join(f"{float(x):.4g}" for x in v.reshape(-1)[:4]) + (", ...)" if v.numel() > 4 else ")")


def _as_values(what: str, k: str, value: Any) -> tuple[torch.Tensor, list[str] | None]:
    """One start (or fixed) value as a float64 tensor, and its element labels when it is a pandas Series."""
    labels = [str(i) for i in value.index] if isinstance(value, pd.Series) else None
    try:
        a = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError) as e:
        raise ModelInputError(f"{what} value for {k!r} is not an array of numbers ({e})") from e
    if a.dtype.kind not in "biuf":
        raise ModelInputError(f"{what} value for {k!r} must be real numbers, not {a.dtype} ({_short_any(value)})")
    v = torch.as_tensor(a.astype(np.float64))
    if v.numel() == 0:
        raise ModelInputError(f"{what} value for {k!r} has no elements: give each parameter at least one value")
    if not torch.isfinite(v).all():
        raise ModelInputError(f"{what} value for {k!r} is not finite")
    return v, labels


def start_values(start: Any, fixed: Any) -> tuple[list[str], list[torch.Tensor], list[str], np.ndarray]:
    """Parameter names, values (start, with fixed ones put in), element labels and which elements are free.

    ``fixed`` names parameters of ``start`` (held at the values it gives) or single elements of a vector
    parameter by their labels (``"b[1]"``).

    Returns
    -------
    (names, values as float64 tensors, element labels, free mask over the labels)
    """
    if not isinstance(start, dict) or not start:
        raise ModelInputError(f"start must be a non-empty dict: parameter name -> initial value, not "
                              f"{type(start).__name__} (e.g. start={{'mu': 0.0, 'beta': [0.0, 0.0]}})")
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, dict):
        raise ModelInputError(f"fixed must be a dict: parameter name (or element label such as 'b[1]') -> value, "
                              f"not {type(fixed).__name__}")
    keys, vals, labels = [], [], []
    for k in start:
        if not isinstance(k, str) or not k:
            raise ModelInputError(f"start's names must be non-empty strings (the nll reads params[name]), not {k!r}")
        v, lab = _as_values("start", k, start[k])
        keys.append(k)
        vals.append(v)
        labels += element_names(k, v.shape, lab)
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ModelInputError(f"parameter names collide: {', '.join(dup)} name two values (a vector's elements are "
                              "named name[i]): rename the parameters in start")
    flat = torch.cat([v.reshape(-1) for v in vals])
    free = np.ones(len(labels), dtype=bool)
    offsets = dict(zip(keys, np.cumsum([0] + [v.numel() for v in vals])[:-1]))
    for k, value in fixed.items():
        if k in offsets:
            i, size = int(offsets[k]), vals[keys.index(k)].numel()
            v, _ = _as_values("fixed", k, value)
            if v.numel() not in (1, size):
                raise ModelInputError(f"fixed value for {k!r} has {v.numel()} elements; the parameter has {size}")
            flat[i:i + size] = v.reshape(-1)
            free[i:i + size] = False
        elif k in labels:
            v, _ = _as_values("fixed", k, value)
            if v.numel() != 1:
                raise ModelInputError(f"fixed value for the element {k!r} must be one number")
            flat[labels.index(k)] = v.reshape(())
            free[labels.index(k)] = False
        else:
            raise ModelInputError(f"fixed names {k!r}, which is neither a parameter of start nor an element of one "
                                  f"(start gives every parameter, fixed ones too); parameters: {', '.join(keys)}; "
                                  f"elements: {', '.join(labels[:8])}" + (" ..." if len(labels) > 8 else ""))
    if not free.any():
        raise ModelInputError("every parameter is fixed: leave at least one free to estimate")
    vals = list(v.reshape(s.shape) for v, s in zip(torch.split(flat, [v.numel() for v in vals]), vals))
    return keys, vals, labels, free


class Objective:
    """The user's nll as a function of the flat parameter vector: per-observation values (raw) and their sum (f)."""

    def __init__(self, nll: Callable, d: Any, has_data: bool, keys: list[str], shapes: list[tuple]) -> None:
        self.nll, self.d, self.has_data, self.keys, self.shapes = nll, d, has_data, keys, shapes
        self.sizes = [math.prod(s) for s in shapes]

    def params(self, th: torch.Tensor) -> dict:
        """The dict name -> tensor the nll takes, from the flat vector.

        Returns
        -------
        dict
        """
        return dict(zip(self.keys, (t.reshape(s) for t, s in zip(torch.split(th, self.sizes), self.shapes))))

    def raw(self, th: torch.Tensor, d: Any = None) -> torch.Tensor:
        """The nll's own output at th (a scalar or one value per observation), on data d (default: all).

        Returns
        -------
        torch.Tensor
        """
        d = self.d if d is None else d
        out = self.nll(self.params(th), d) if self.has_data else self.nll(self.params(th))
        if not isinstance(out, torch.Tensor):
            raise ModelInputError(f"nll returned {type(out).__name__}: compute it with torch operations on the "
                                  "parameter tensors (no .item(), float() or numpy)")
        if out.ndim > 1:
            raise ModelInputError(f"nll returned shape {tuple(out.shape)}: return a scalar or a vector of "
                                  "per-observation values")
        return out

    def f(self, th: torch.Tensor) -> torch.Tensor:
        """The summed nll at th.

        Returns
        -------
        torch.Tensor (0-d)
        """
        return self.raw(th).sum()

    def at_start(self, theta: torch.Tensor) -> torch.Tensor:
        """The nll's output at the start values; an exception or a non-finite value there is the user's error.

        Returns
        -------
        torch.Tensor
        """
        try:
            with torch.no_grad():
                f0 = self.raw(theta)
        except ModelInputError:
            raise
        except Exception as e:
            raise ModelInputError(f"the nll raised {type(e).__name__} at the start values ({e}): it must evaluate "
                                  "there; choose start values inside the parameter space") from e
        if not torch.isfinite(f0.sum()):
            raise ModelInputError(f"the nll at the start values is {float(f0.sum())}: choose start values inside "
                                  "the parameter space")
        return f0


class FreeObjective:
    """An :class:`Objective` over the free elements only, the fixed ones held at their values in ``base``."""

    def __init__(self, obj: Objective, base: torch.Tensor, free: np.ndarray) -> None:
        self.obj, self.base = obj, base
        self.all_free = bool(free.all())
        self.index = torch.as_tensor(np.flatnonzero(free), device=base.device)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The full flat vector with the free elements x.

        Returns
        -------
        torch.Tensor
        """
        return x if self.all_free else self.base.index_copy(0, self.index, x)

    def raw(self, x: torch.Tensor, d: Any = None) -> torch.Tensor:
        """The nll's own output with the free elements x.

        Returns
        -------
        torch.Tensor
        """
        return self.obj.raw(self.embed(x), d)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """The summed nll with the free elements x.

        Returns
        -------
        torch.Tensor (0-d)
        """
        return self.obj.f(self.embed(x))


def _row_leaves(d: Any, rows: int) -> tuple[list, Callable | None]:
    """The per-row tensors of the data and a function rebuilding the data from replacements for them."""
    def per_row(v):
        return isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == rows

    if isinstance(d, torch.Tensor):
        return ([d], lambda xs: xs[0]) if per_row(d) else ([], None)
    if isinstance(d, dict):
        ks = [k for k, v in d.items() if per_row(v)]
        return [d[k] for k in ks], lambda xs: {**d, **dict(zip(ks, xs))}
    if isinstance(d, (tuple, list)):
        idx = [i for i, v in enumerate(d) if per_row(v)]

        def rebuild(xs):
            out = list(d)
            for i, x in zip(idx, xs):
                out[i] = x
            return type(d)(out)
        return [d[i] for i in idx], rebuild
    return [], None


def check_not_mean(obj: Objective, theta: torch.Tensor, d: Any, rows: int | None, total: float) -> None:
    """ModelInputError when a scalar nll is the mean, not the sum, of its values on single observations.

    As tl.infer does for a loss: the nll is evaluated one row at a time with vmap, once, at the start
    values; if it cannot be (it uses the whole data, or vmap cannot trace it) the check is skipped.

    Returns
    -------
    None
    """
    if rows is None or rows < 2:
        return
    leaves, rebuild = _row_leaves(d, rows)
    if not leaves or rebuild is None:
        return

    def one(*xs):
        return obj.raw(theta, rebuild([x.unsqueeze(0) for x in xs])).sum()

    try:
        with torch.no_grad():
            each = quiet(vmap(one))(*leaves)
        s, m = float(each.sum()), float(each.mean())
    except Exception:  # not evaluable one row at a time: nothing to compare
        return

    def close(a, b):
        return abs(a - b) <= 1e-8 * max(abs(a), abs(b), 1e-300)

    if close(total, m) and not close(total, s):
        raise ModelInputError(
            f"the nll returned {total:.10g}, the mean of its values on single observations (their sum is "
            f"{s:.10g}): return the sum over observations (or one value per observation), not the mean; the "
            "log-likelihood and standard errors need the sum")
