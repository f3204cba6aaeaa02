"""Bounds for tl.mle (R's mle(lower=, upper=)): their parsing, and projected Newton within the box.

Each iteration takes the Newton step of the parameters that are not held at a bound (at a bound with the
gradient pushing outwards: the active set), clips the step's end point to the box and searches back along
the segment to it, which stays inside the box. At the optimum the free parameters have a zero gradient and
the active ones a gradient pointing out of the box (the Karush-Kuhn-Tucker conditions); the standard errors
are those of the natural-scale Hessian, as R's stats4::mle reports them, and are not valid for an estimate
on a bound (a warning says so).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from torchlm.errors import ModelInputError, TorchlmWarning, warn
from torchlm.models.mle_newton import NewtonProblem, derivatives, newton_direction
from torchlm.results.estimates import user_stacklevel
from torchlm.solvers import State, Step


class BoundaryWarning(TorchlmWarning):
    """An estimate lies on a bound given to tl.mle: its Wald standard errors and tests are not valid there."""


def _bound(what: str, spec: Any, keys: list[str], vals: list[torch.Tensor], labels: list[str],
           default: float) -> np.ndarray:
    """One of lower / upper as a value per element: a number for all, or a dict by parameter or element label."""
    out = np.full(len(labels), default)
    if spec is None:
        return out
    if not isinstance(spec, dict):
        try:
            v = float(spec)
        except (TypeError, ValueError):
            raise ModelInputError(f"{what} must be a number (for every parameter) or a dict: parameter name (or "
                                  f"element label such as 'b[1]') -> bound, not {type(spec).__name__}") from None
        out[:] = v
        return out
    offsets = dict(zip(keys, np.cumsum([0] + [v.numel() for v in vals])[:-1]))
    for k, value in spec.items():
        try:
            a = np.asarray(value, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ModelInputError(f"{what} bound for {k!r} is not a number ({value!r})") from None
        if k in offsets:
            i, size = int(offsets[k]), vals[keys.index(k)].numel()
            if a.size not in (1, size):
                raise ModelInputError(f"{what} bound for {k!r} has {a.size} values; the parameter has {size}")
            out[i:i + size] = a
        elif k in labels and a.size == 1:
            out[labels.index(k)] = a[0]
        else:
            raise ModelInputError(f"{what} names {k!r}, which is not a parameter (or one element of one); "
                                  f"parameters: {', '.join(keys)}")
    if np.isnan(out).any():
        raise ModelInputError(f"{what} bounds must be numbers, not NaN")
    return out


def parse_bounds(lower: Any, upper: Any, keys: list[str], vals: list[torch.Tensor], labels: list[str],
                 free: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower and upper bounds per element (None when neither is given), checked against the start values.

    Returns
    -------
    (lower, upper) over all elements, or None
    """
    if lower is None and upper is None:
        return None
    lo = _bound("lower", lower, keys, vals, labels, -math.inf)
    hi = _bound("upper", upper, keys, vals, labels, math.inf)
    flat = torch.cat([v.reshape(-1) for v in vals]).numpy()
    for j, name in enumerate(labels):
        if not lo[j] < hi[j] and free[j]:
            raise ModelInputError(f"the lower bound of {name} ({lo[j]:g}) is not below its upper bound ({hi[j]:g}); "
                                  f"to hold {name} at a value, pass fixed={{{name!r}: value}}")
        if not lo[j] <= flat[j] <= hi[j]:
            which = "start" if free[j] else "fixed"
            raise ModelInputError(f"the {which} value of {name} ({flat[j]:g}) is outside its bounds "
                                  f"[{lo[j]:g}, {hi[j]:g}]: give a {which} value inside them")
    return lo, hi


class BoxNewtonProblem(NewtonProblem):
    """Projected Newton within lower <= x <= upper (see the module): Newton on the parameters not held at a bound,
    its end point clipped to the box."""

    def __init__(self, obj: Any, labels: list[str], singular_tol: float, lower: np.ndarray,
                 upper: np.ndarray) -> None:
        super().__init__(obj, labels, singular_tol)
        self.lower, self.upper = lower, upper

    def inside(self, th: torch.Tensor) -> bool:
        """Whether th lies within the bounds.

        Returns
        -------
        bool
        """
        x = th.detach().cpu().numpy()
        return bool(np.all(x >= self.lower) and np.all(x <= self.upper))

    def active(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The parameters held at a bound: on it with the gradient of the nll pushing outwards.

        Returns
        -------
        numpy.ndarray of bool
        """
        return ((x <= self.lower) & (g > 0)) | ((x >= self.upper) & (g < 0))

    def propose(self, state: State) -> Step | None:
        """Projected Newton step at ``state.x`` (None where the derivatives are not finite).

        Parameters
        ----------
        state : the driver's state.

        Returns
        -------
        Step whose end point lies in the box, with its size in standard errors of the free parameters.
        """
        gh = derivatives(self.obj.f, state.x)
        if gh is None:
            return None
        g, H = gh
        x = state.x.detach().cpu().numpy()
        free = ~self.active(x, g)
        d = np.zeros_like(x)
        newton, size, length = True, 0.0, None
        se: np.ndarray | None = None
        if free.any():
            names = [n for n, f in zip(self.labels, free) if f]
            step, newton, size, length, se = newton_direction(g[free], H[np.ix_(free, free)], names,
                                                             self.singular_tol, state)
            d[free] = step
        target = np.clip(x + d, self.lower, self.upper)
        direction = target - x
        if free.any() and newton and se is not None:
            ok = np.isfinite(se)
            size = float(np.max(np.abs(direction[free][ok]) / se[ok])) if ok.any() else 0.0
        slope = float(g @ direction)
        if slope > 0 or (slope == 0 and np.any(direction != 0)):
            # the clipped Newton step does not descend: a projected gradient step, scaled by the curvature
            scale = np.where(np.diag(H) > 0, np.diag(H), 1.0)
            direction = np.clip(x - np.where(free, g / scale, 0.0), self.lower, self.upper) - x
            slope, newton, size = float(g @ direction), False, math.inf
        dt = torch.as_tensor(direction, dtype=state.x.dtype, device=state.x.device)
        # the full step lands on the clipped point itself: x + (target - x) can miss a bound by a rounding
        point = torch.as_tensor(np.clip(x + direction, self.lower, self.upper), dtype=state.x.dtype,
                                device=state.x.device)
        return Step(dt, newton=newton, slope=slope, size=size, data=length, point=point)


def warn_at_bounds(names: list[str], x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """BoundaryWarning naming the estimates that lie on a bound; which they are.

    Returns
    -------
    numpy.ndarray of bool (per free parameter)
    """
    at_lo, at_hi = x <= lower, x >= upper
    at = at_lo | at_hi
    if at.any():
        where = ", ".join(f"{n} = {v:.6g} (its {'lower' if lo else 'upper'} bound)"
                          for n, v, lo, a in zip(names, x, at_lo, at) if a)
        warn(f"the estimate is on a bound: {where}. The standard errors, z tests and Wald intervals assume an "
             "interior optimum and are not valid for a parameter on a bound; compare fits with a likelihood-ratio "
             "test (tl.anova) instead", BoundaryWarning, stacklevel=user_stacklevel())
    return at
