"""GLM link functions, defined exactly as R's make.link() (stats/R/family.R, src/library/stats/src/family.c).

Each link works elementwise on torch tensors, in their dtype and on their device; where R's C code
uses float64 constants, a float32 tensor gets its own dtype's (``eps_of``).
"""

from __future__ import annotations

import math

import torch

EPS = 2.220446049250313e-16  # R's .Machine$double.eps
_THRESH = 30.0  # R's logit thresholds (family.c)


def eps_of(t: torch.Tensor) -> float:
    """Machine epsilon of t's dtype: R's constants are for float64, float32 fits need their own.

    Parameters
    ----------
    t : torch.Tensor
        A floating-point tensor.

    Returns
    -------
    float
        R's .Machine$double.eps for float64, else ``torch.finfo(t.dtype).eps``.
    """
    return EPS if t.dtype == torch.float64 else torch.finfo(t.dtype).eps


class Link:
    """A link function g with its inverse and derivative dmu/deta, as R's make.link()."""

    name = ""

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        """The link g, R's linkfun.

        Parameters
        ----------
        mu : torch.Tensor
            Means.

        Returns
        -------
        torch.Tensor
            eta = g(mu), elementwise.
        """
        raise NotImplementedError

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        """The inverse link, R's linkinv.

        Parameters
        ----------
        eta : torch.Tensor
            Linear predictors.

        Returns
        -------
        torch.Tensor
            mu = g^-1(eta), elementwise; the logit, probit, cauchit and cloglog links keep it about the
            dtype's eps inside (0, 1) and the log link at least .Machine$double.eps, as R does.
        """
        raise NotImplementedError

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        """The derivative of the inverse link, R's mu.eta.

        Parameters
        ----------
        eta : torch.Tensor
            Linear predictors.

        Returns
        -------
        torch.Tensor
            dmu/deta at eta, elementwise.
        """
        raise NotImplementedError

    def valideta(self, eta: torch.Tensor) -> bool:
        """Whether the linear predictors are valid for the link, R's valideta.

        Parameters
        ----------
        eta : torch.Tensor
            Linear predictors.

        Returns
        -------
        bool
            True unless the link restricts eta (inverse: finite and non-zero; 1/mu^2, sqrt: finite, positive).
        """
        return True

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


class Identity(Link):
    name = "identity"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return mu

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        return eta

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(eta)


class Log(Link):
    name = "log"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.log(mu)

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.exp(eta), min=EPS)

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.exp(eta), min=EPS)


class Logit(Link):
    name = "logit"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.log(mu / (1 - mu))

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        eps = eps_of(eta)
        if eps != EPS:
            return torch.clamp(torch.sigmoid(eta), eps, 1 - eps)
        tmp = torch.where(eta < -_THRESH, torch.full_like(eta, EPS),
                          torch.where(eta > _THRESH, torch.full_like(eta, 1 / EPS), torch.exp(eta)))
        return tmp / (1 + tmp)

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        eps = eps_of(eta)
        opexp = 1 + torch.exp(eta)
        val = torch.exp(eta) / (opexp * opexp)
        if eps != EPS:
            return torch.clamp(torch.where(torch.isfinite(val), val, torch.zeros_like(val)), min=eps)
        return torch.where((eta > _THRESH) | (eta < -_THRESH), torch.full_like(eta, EPS), val)


def _probit_thresh(eta: torch.Tensor) -> float:
    # -qnorm(eps): beyond it pnorm is within eps of 0 or 1
    eps = eps_of(eta)
    return 8.125890664701906 if eps == EPS else -float(torch.special.ndtri(torch.tensor(eps, dtype=torch.float64)))


class Probit(Link):
    name = "probit"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtri(mu)

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        t = _probit_thresh(eta)
        return torch.special.ndtr(torch.clamp(eta, -t, t))

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.exp(-0.5 * eta * eta) / math.sqrt(2 * math.pi), min=eps_of(eta))


class Cauchit(Link):
    name = "cauchit"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.tan(math.pi * (mu - 0.5))

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        t = 1 / (math.pi * eps_of(eta)) - 1 / math.pi  # -qcauchy(eps), in closed form
        e = torch.clamp(eta, -t, t)
        return 0.5 + torch.atan(e) / math.pi

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 / (math.pi * (1 + eta * eta)), min=eps_of(eta))


class Cloglog(Link):
    name = "cloglog"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.log(-torch.log1p(-mu))

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        eps = eps_of(eta)
        return torch.clamp(-torch.expm1(-torch.exp(eta)), eps, 1 - eps)

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        e = torch.clamp(eta, max=700.0)
        val = torch.exp(e) * torch.exp(-torch.exp(e))
        return torch.clamp(torch.where(torch.isfinite(val), val, torch.zeros_like(val)), min=eps_of(eta))


class Inverse(Link):
    name = "inverse"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return 1 / mu

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        return 1 / eta

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return -1 / (eta * eta)

    def valideta(self, eta: torch.Tensor) -> bool:
        return bool(torch.isfinite(eta).all() and (eta != 0).all())


class InverseSquare(Link):
    name = "1/mu^2"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return 1 / (mu * mu)

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        return 1 / torch.sqrt(eta)

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return -1 / (2 * eta**1.5)

    def valideta(self, eta: torch.Tensor) -> bool:
        return bool(torch.isfinite(eta).all() and (eta > 0).all())


class Sqrt(Link):
    name = "sqrt"

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(mu)

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        return eta * eta

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        return 2 * eta

    def valideta(self, eta: torch.Tensor) -> bool:
        return bool(torch.isfinite(eta).all() and (eta > 0).all())


LINKS = {c.name: c for c in (Identity, Log, Logit, Probit, Cauchit, Cloglog, Inverse, InverseSquare, Sqrt)}
