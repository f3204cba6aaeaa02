"""MASS's negative binomial family (negative.binomial(theta)) and its theta.ml, as MASS's R/negbin.R defines them.

The family holds theta fixed: variance mu + mu^2 / theta, MASS's deviance residuals, AIC and starting
means. tl.glm fits it as R's glm(family = negative.binomial(theta)) does; tl.glm_nb alternates such
fits with theta.ml, MASS's Newton iteration for theta at given means, as MASS's glm.nb does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchlm.errors import DataError, ModelInputError, warn
from torchlm.models.families import Family, Link
from torchlm.models.links import EPS
from torchlm.present.rformat import format_scalar


def _positive_number(theta: object, what: str) -> float:
    ok = isinstance(theta, (int, float, np.integer, np.floating)) and not isinstance(theta, (bool, np.bool_))
    if not ok or not (math.isfinite(float(theta)) and float(theta) > 0):  # type: ignore[arg-type]
        raise ModelInputError(f"{what} must be a positive finite number (the negative binomial's shape, "
                              f"variance mu + mu^2 / theta), not {theta!r}")
    return float(theta)  # type: ignore[arg-type]


class NegativeBinomial(Family):
    """MASS's negative.binomial(theta, link): a negative binomial GLM family with theta known.

    Parameters
    ----------
    theta : float
        The shape theta (> 0): the variance is mu + mu^2 / theta.
    link : str or Link, optional
        "log" (default), "sqrt" or "identity", as MASS allows.

    Notes
    -----
    As R's summary.glm for this family, tl.glm estimates the dispersion (t tests); tl.glm_nb's fits take it
    to be 1, as MASS's summary.negbin does. ``update_parameters`` re-estimates theta by MASS's theta.ml.
    """

    links = ("log", "sqrt", "identity")
    default_link = "log"
    estimates_parameters = True

    def __init__(self, theta: float, link: str | Link | None = None):
        self.theta = _positive_number(theta, "theta")
        # MASS's family$family: paste("Negative Binomial(", format(round(theta, 4)), ")")
        self.name = f"Negative Binomial({format_scalar(round(self.theta, 4))})"
        super().__init__(link)

    @property
    def parameters(self) -> dict[str, float]:
        """{"theta": theta}."""
        return {"theta": self.theta}

    def update_parameters(self, y: torch.Tensor, mu: torch.Tensor, weights: torch.Tensor) -> NegativeBinomial:
        """The family with theta re-estimated at the means by MASS's theta.ml (glm.nb's limit of 25 iterations).

        Returns
        -------
        NegativeBinomial

        Examples
        --------
        >>> y, mu = torch.tensor([0.0, 3, 1, 8]), torch.full((4,), 3.0)
        >>> fam = tl.negative_binomial(1.0).update_parameters(y, mu, torch.ones(4))
        >>> round(fam.theta, 4)
        1.0068
        """
        return NegativeBinomial(theta_ml(y, mu, float(weights.sum()), weights, limit=25).theta, self.link)

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return mu + mu**2 / self.theta

    def validmu(self, mu: torch.Tensor) -> bool:
        return bool((mu > 0).all())

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        th = self.theta
        return 2 * wt * (y * torch.log(torch.clamp(y, min=1.0) / mu) - (y + th) * torch.log((y + th) / (mu + th)))

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        th = self.theta
        term = ((y + th) * torch.log(mu + th) - y * torch.log(mu) + torch.lgamma(y + 1) - th * math.log(th)
                + math.lgamma(th) - torch.lgamma(th + y))
        return float(2 * (term * wt).sum())

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not bool(torch.isfinite(y).all()):
            raise DataError("non-finite values in the response of the negative binomial family")
        if bool((y < 0).any()):
            raise DataError("negative values not allowed for the negative binomial family (the response is a count)")
        return y, torch.ones_like(y), y + (y == 0).to(y.dtype) / 6

    def r_call(self) -> str:
        """How the family appears in the printed call: negative.binomial(2), with its link when not log.

        Returns
        -------
        str

        Examples
        --------
        >>> tl.negative_binomial(2).r_call()
        'negative.binomial(2)'
        """
        link = "" if self.link.name == self.default_link else f', link = "{self.link.name}"'
        return f"negative.binomial({self.theta:.15g}{link})"


def negative_binomial(theta: float, link: str = "log") -> NegativeBinomial:
    """MASS's negative.binomial(theta, link): the negative binomial family with theta fixed, for tl.glm.

    Parameters
    ----------
    theta : float
        The shape (> 0); the variance is mu + mu^2 / theta.
    link : str
        "log" (default), "sqrt" or "identity".

    Returns
    -------
    NegativeBinomial

    Examples
    --------
    >>> fit = tl.glm("Days ~ Sex + Age", tl.datasets.load("quine"), family=tl.negative_binomial(1.5))
    >>> fit.coef().round(4)
    Intercept    2.6923
    Sex[T.M]     0.0107
    Age[T.F1]   -0.2829
    Age[T.F2]    0.3484
    Age[T.F3]    0.2774
    Name: Estimate, dtype: float64
    """
    return NegativeBinomial(theta, link)


@dataclass
class ThetaML:
    """What MASS's theta.ml returns: the estimate, attr(, "SE") and attr(, "warn") (None when it gave none)."""

    theta: float
    se: float
    warning: str | None


_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)  # B_2, B_4, ..., B_14


def trigamma(x: torch.Tensor) -> torch.Tensor:
    """R's trigamma to about 1e-16 relative, for x > 0 (torch.polygamma(1, x) is off by up to 1e-10 below 10).

    The recurrence psi1(x) = psi1(x + 1) + 1 / x^2 brings x to 10 or more, where the asymptotic series
    1/x + 1/(2x^2) + sum B_2k / x^(2k+1) (to B_14) is exact to rounding.

    Parameters
    ----------
    x : torch.Tensor
        Positive arguments.

    Returns
    -------
    torch.Tensor
        trigamma(x), elementwise.
    """
    shift = torch.zeros_like(x)
    for _ in range(10):
        small = x < 10
        if not bool(small.any()):
            break
        shift = shift + torch.where(small, 1 / (x * x), torch.zeros_like(x))
        x = torch.where(small, x + 1, x)
    inv, inv2 = 1 / x, 1 / (x * x)
    series = torch.zeros_like(x)
    for b in reversed(_BERNOULLI):
        series = (series + b) * inv2
    return shift + inv + inv2 / 2 + series * inv


def theta_ml(y: torch.Tensor, mu: torch.Tensor, n: float, weights: torch.Tensor, limit: int = 10,
             eps: float = EPS**0.25) -> ThetaML:
    """MASS's theta.ml: theta by Newton's method on its score at fixed means, with MASS's start, limit and rule.

    Parameters
    ----------
    y, mu, weights : torch.Tensor
        The counts, the means and the prior weights.
    n : float
        MASS's n, the sum of the prior weights.
    limit : int
        MASS's limit: the loop runs while the iteration count is below it (glm.nb passes control's maxit).
    eps : float
        The step size at which Newton's method stops (MASS's .Machine$double.eps^0.25).

    Returns
    -------
    ThetaML
        The estimate, its standard error sqrt(1 / information) at the last Newton step's start, and MASS's
        warning ("estimate truncated at zero" or "iteration limit reached"), which is also issued.
    """
    t0 = n / float((weights * (y / mu - 1) ** 2).sum())
    it, delta, info = 0, 1.0, math.nan
    while (it := it + 1) < limit and abs(delta) > eps:
        t0 = abs(t0)
        th = torch.tensor(t0, dtype=y.dtype, device=y.device)
        score = float((weights * (torch.special.digamma(th + y) - torch.special.digamma(th) + math.log(t0) + 1
                                  - torch.log(th + mu) - (y + th) / (mu + th))).sum())
        info = float((weights * (-trigamma(th + y) + trigamma(th) - 1 / t0 + 2 / (mu + th)
                                 - (y + th) / (mu + th) ** 2)).sum())
        delta = score / info
        t0 = t0 + delta
    said = None
    if t0 < 0:
        t0, said = 0.0, "estimate truncated at zero"
        warn(said, stacklevel=3)
    if it == limit:
        said = "iteration limit reached"
        warn(said, stacklevel=3)
    return ThetaML(t0, math.sqrt(1 / info) if info > 0 else math.nan, said)


def nb_loglik(theta: float, mu: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
    """glm.nb's log-likelihood at theta and the means (its ``loglik``).

    Returns
    -------
    float
        sum w (lgamma(theta + y) - lgamma(theta) - lgamma(y + 1) + theta log theta + y log(mu + (y == 0))
        - (theta + y) log(theta + mu)).
    """
    th = torch.tensor(theta, dtype=y.dtype, device=y.device)
    terms = (torch.lgamma(th + y) - torch.lgamma(th) - torch.lgamma(y + 1) + th * torch.log(th)
             + y * torch.log(mu + (y == 0).to(y.dtype)) - (th + y) * torch.log(th + mu))
    return float((w * terms).sum())
