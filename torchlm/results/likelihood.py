"""The objective behind an Estimates result, kept so that it can be evaluated again: the log-likelihood and the score
at any point (without the fit's checks and warnings), functions of the parameters for the delta method, and the
refits with some parameters held fixed that profile intervals need (tl.mle)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from torchlm.errors import ModelInputError, OptionError, TorchlmError


@dataclass
class Likelihood:
    """How to reach an estimate's objective again.

    Attributes
    ----------
    keys, shapes : the parameters as the function takes them (a dict name -> tensor of that shape).
    labels : element labels of the flat vector of every parameter (fixed ones included).
    free : which elements are estimated (the Estimates' names, in order).
    theta : the flat estimate (fixed elements at their values).
    objective : flat vector -> the summed objective (a 0-d tensor, differentiable by autograd).
    loglik_of : summed objective -> log-likelihood (torch), or None when the objective is not a likelihood.
    no_loglik : why there is none.
    refit : (free mask, flat start) -> (minimum of the objective, flat argmin) over the free elements, or None
        when the result cannot be refitted (tl.infer).
    lower, upper : bounds per element (None: none).
    name : the objective's name, for tables (the nll function's name).
    """

    keys: list[str]
    shapes: list[tuple[int, ...]]
    labels: list[str]
    free: np.ndarray
    theta: torch.Tensor
    objective: Callable[[torch.Tensor], torch.Tensor]
    loglik_of: Callable[[torch.Tensor], torch.Tensor] | None = None
    no_loglik: str = "the objective is not a likelihood"
    refit: Callable[[np.ndarray, torch.Tensor], tuple[float, torch.Tensor]] | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    name: str = "nll"

    @property
    def names(self) -> list[str]:
        """Labels of the free elements."""
        return [n for n, f in zip(self.labels, self.free) if f]

    def params(self, th: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dict name -> tensor of the flat vector th.

        Returns
        -------
        dict
        """
        sizes = [math.prod(s) for s in self.shapes]
        return dict(zip(self.keys, (t.reshape(s) for t, s in zip(torch.split(th, sizes), self.shapes))))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flat vector with the free elements x and the others at the estimate.

        Returns
        -------
        torch.Tensor
        """
        if self.free.all():
            return x
        index = torch.as_tensor(np.flatnonzero(self.free), device=self.theta.device)
        return self.theta.index_copy(0, index, x)

    def point(self, params: Any) -> torch.Tensor:
        """A point given as a dict (parameter names or element labels -> values; the others at the estimate), a
        Series by element label, or an array over the free elements (or over all elements).

        Returns
        -------
        torch.Tensor, the flat vector
        """
        th = self.theta.detach().clone()
        sizes = [math.prod(s) for s in self.shapes]
        offsets = dict(zip(self.keys, np.cumsum([0] + sizes)[:-1]))
        if isinstance(params, (dict, pd.Series)):
            for k, v in params.items():
                a = _numbers(k, v)
                if k in offsets:
                    i, size = int(offsets[k]), sizes[self.keys.index(k)]
                    if a.numel() not in (1, size):
                        raise ModelInputError(f"the value for {k!r} has {a.numel()} elements; the parameter has "
                                              f"{size}")
                    th[i:i + size] = a.reshape(-1).to(th)
                elif k in self.labels and a.numel() == 1:
                    th[self.labels.index(k)] = a.reshape(()).to(th)
                else:
                    raise ModelInputError(f"{k!r} is not a parameter (or element of one); parameters: "
                                          f"{', '.join(self.keys)}")
            return th
        a = _numbers("params", params).reshape(-1).to(th)
        if a.numel() == int(self.free.sum()):
            return self.embed(a)
        if a.numel() == th.numel():
            return a
        raise ModelInputError(f"params has {a.numel()} values: give one per free parameter ({int(self.free.sum())}: "
                              f"{', '.join(self.names[:6])}), or a dict name -> value")

    def _value(self, th: torch.Tensor) -> torch.Tensor:
        if self.loglik_of is None:
            raise OptionError(f"no log-likelihood: {self.no_loglik}")
        try:
            return self.loglik_of(self.objective(th))
        except TorchlmError:
            raise
        except Exception as e:
            raise ModelInputError(f"the objective raised {type(e).__name__} at the point ({e}): it must evaluate "
                                  "there") from e

    def loglik_at(self, params: Any) -> float:
        """The log-likelihood at a point (see :meth:`point`).

        Returns
        -------
        float
        """
        th = self.point(params)
        with torch.no_grad():
            return float(self._value(th))

    def score_at(self, params: Any) -> np.ndarray:
        """The score (gradient of the log-likelihood) over the free elements at a point, by autograd.

        Returns
        -------
        numpy.ndarray
        """
        th = self.point(params)
        index = torch.as_tensor(np.flatnonzero(self.free), device=th.device)
        x = th[index].clone().requires_grad_(True)
        full = x if self.free.all() else th.index_copy(0, index, x)
        (g,) = torch.autograd.grad(self._value(full), x)
        return g.detach().cpu().numpy()


def _numbers(k: Any, v: Any) -> torch.Tensor:
    try:
        a = torch.as_tensor(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64))
    except (TypeError, ValueError):
        raise ModelInputError(f"the value for {k!r} is not numbers ({v!r})") from None
    if not bool(torch.isfinite(a).all()):
        raise ModelInputError(f"the value for {k!r} is not finite")
    return a
