"""GLM families and links, defined exactly as R's family objects (stats/R/family.R, src/library/stats/src/family.c).

A family holds a link and the functions R's glm.fit uses: variance, deviance residuals, AIC,
starting values (R's ``initialize``) and validity checks. All functions take and return torch
tensors, so the IRLS fit runs on the model's device.
"""

from __future__ import annotations

import math

import torch

from .errors import DataError, ModelInputError

EPS = 2.220446049250313e-16  # R's .Machine$double.eps
_THRESH = 30.0  # R's logit thresholds (family.c)


def eps_of(t: torch.Tensor) -> float:
    """Machine epsilon of t's dtype: R's constants are for float64, float32 fits need their own."""
    return EPS if t.dtype == torch.float64 else torch.finfo(t.dtype).eps


class Link:
    """A link function g with its inverse and derivative dmu/deta, as R's make.link()."""

    name = ""

    def linkfun(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def linkinv(self, eta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mu_eta(self, eta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def valideta(self, eta: torch.Tensor) -> bool:
        return True

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


class Identity(Link):
    name = "identity"

    def linkfun(self, mu):
        return mu

    def linkinv(self, eta):
        return eta

    def mu_eta(self, eta):
        return torch.ones_like(eta)


class Log(Link):
    name = "log"

    def linkfun(self, mu):
        return torch.log(mu)

    def linkinv(self, eta):
        return torch.clamp(torch.exp(eta), min=EPS)

    def mu_eta(self, eta):
        return torch.clamp(torch.exp(eta), min=EPS)


class Logit(Link):
    name = "logit"

    def linkfun(self, mu):
        return torch.log(mu / (1 - mu))

    def linkinv(self, eta):
        eps = eps_of(eta)
        if eps != EPS:
            return torch.clamp(torch.sigmoid(eta), eps, 1 - eps)
        tmp = torch.where(eta < -_THRESH, torch.full_like(eta, EPS),
                          torch.where(eta > _THRESH, torch.full_like(eta, 1 / EPS), torch.exp(eta)))
        return tmp / (1 + tmp)

    def mu_eta(self, eta):
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

    def linkfun(self, mu):
        return torch.special.ndtri(mu)

    def linkinv(self, eta):
        t = _probit_thresh(eta)
        return torch.special.ndtr(torch.clamp(eta, -t, t))

    def mu_eta(self, eta):
        return torch.clamp(torch.exp(-0.5 * eta * eta) / math.sqrt(2 * math.pi), min=eps_of(eta))




class Cauchit(Link):
    name = "cauchit"

    def linkfun(self, mu):
        return torch.tan(math.pi * (mu - 0.5))

    def linkinv(self, eta):
        t = 1 / (math.pi * eps_of(eta)) - 1 / math.pi  # -qcauchy(eps), in closed form
        e = torch.clamp(eta, -t, t)
        return 0.5 + torch.atan(e) / math.pi

    def mu_eta(self, eta):
        return torch.clamp(1 / (math.pi * (1 + eta * eta)), min=eps_of(eta))


class Cloglog(Link):
    name = "cloglog"

    def linkfun(self, mu):
        return torch.log(-torch.log1p(-mu))

    def linkinv(self, eta):
        eps = eps_of(eta)
        return torch.clamp(-torch.expm1(-torch.exp(eta)), eps, 1 - eps)

    def mu_eta(self, eta):
        e = torch.clamp(eta, max=700.0)
        val = torch.exp(e) * torch.exp(-torch.exp(e))
        return torch.clamp(torch.where(torch.isfinite(val), val, torch.zeros_like(val)), min=eps_of(eta))


class Inverse(Link):
    name = "inverse"

    def linkfun(self, mu):
        return 1 / mu

    def linkinv(self, eta):
        return 1 / eta

    def mu_eta(self, eta):
        return -1 / (eta * eta)

    def valideta(self, eta):
        return bool(torch.isfinite(eta).all() and (eta != 0).all())


class InverseSquare(Link):
    name = "1/mu^2"

    def linkfun(self, mu):
        return 1 / (mu * mu)

    def linkinv(self, eta):
        return 1 / torch.sqrt(eta)

    def mu_eta(self, eta):
        return -1 / (2 * eta**1.5)

    def valideta(self, eta):
        return bool(torch.isfinite(eta).all() and (eta > 0).all())


class Sqrt(Link):
    name = "sqrt"

    def linkfun(self, mu):
        return torch.sqrt(mu)

    def linkinv(self, eta):
        return eta * eta

    def mu_eta(self, eta):
        return 2 * eta

    def valideta(self, eta):
        return bool(torch.isfinite(eta).all() and (eta > 0).all())


LINKS = {c.name: c for c in (Identity, Log, Logit, Probit, Cauchit, Cloglog, Inverse, InverseSquare, Sqrt)}


def _ylogy(y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """y * log(y / mu), 0 where y == 0 (R's y_log_y)."""
    pos = y > 0
    # y is replaced by 1 where it is 0 before the log, so that autograd through it sees no log(0)
    return torch.where(pos, y * torch.log(torch.where(pos, y, 1.0) / mu), 0.0)


class Family:
    """An exponential-family distribution with a link, as an R family object.

    Parameters
    ----------
    link : link name (one of the family's ``links``) or a Link instance; default the family's default.
    """

    name = ""
    links: tuple[str, ...] = ()
    default_link = ""
    # dispersion fixed at 1 (binomial, poisson: z tests) or estimated (t tests)
    fixed_dispersion = False
    # AIC counts the dispersion as a parameter (R's logLik.glm)
    aic_counts_dispersion = False

    def __init__(self, link: str | Link | None = None):
        if link is None:
            link = self.default_link
        if isinstance(link, Link):
            self.link = link
        else:
            if link not in self.links:
                raise ModelInputError(
                    f"link {link!r} is not available for the {self.name} family; choose one of {self.links}"
                )
            self.link = LINKS[link]()

    # --- R's family functions ----------------------------------------------------------------
    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dev_resids(self, y, mu, wt) -> torch.Tensor:
        raise NotImplementedError

    def aic(self, y, n, mu, wt, dev: float) -> float:
        """R's family$aic: -2 log-likelihood (plus 2 for an estimated dispersion where R adds it)."""
        raise NotImplementedError

    def validmu(self, mu: torch.Tensor) -> bool:
        return True

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check the response and give (y, n, mustart) as R's family$initialize."""
        raise NotImplementedError

    # --- presentation ----------------------------------------------------------------------
    def r_call(self) -> str:
        """How the family appears in the printed call, e.g. binomial or Gamma(link = "log")."""
        if self.link.name == self.default_link:
            return self.name
        return f'{self.name}(link = "{self.link.name}")'

    def __repr__(self) -> str:
        return f"Family: {self.name}\nLink function: {self.link.name}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and (self.name, self.link.name) == (other.name, other.link.name)


def _check_finite(y: torch.Tensor, family: str):
    if not torch.isfinite(y).all():
        raise DataError(f"non-finite values in the response of the {family} family")


class Gaussian(Family):
    name = "gaussian"
    links = ("identity", "log", "inverse")
    default_link = "identity"
    aic_counts_dispersion = True

    def variance(self, mu):
        return torch.ones_like(mu)

    def dev_resids(self, y, mu, wt):
        return wt * (y - mu) ** 2

    def aic(self, y, n, mu, wt, dev):
        nobs = y.numel()
        return float(nobs * (math.log(dev / nobs * 2 * math.pi) + 1) + 2 - torch.log(wt).sum())

    def initialize(self, y, weights):
        if (self.link.name == "inverse" and bool((y == 0).any())) or (self.link.name == "log" and bool((y <= 0).any())):
            raise DataError(
                f"cannot find valid starting values for the gaussian family with the {self.link.name} link "
                "(the response has values outside the link's range): pass start="
            )
        return y, torch.ones_like(y), y.clone()


class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    default_link = "logit"
    fixed_dispersion = True

    def variance(self, mu):
        return mu * (1 - mu)

    def validmu(self, mu):
        return bool(torch.isfinite(mu).all() and ((mu > 0) & (mu < 1)).all())

    def dev_resids(self, y, mu, wt):
        return 2 * wt * (_ylogy(y, mu) + _ylogy(1 - y, 1 - mu))

    def aic(self, y, n, mu, wt, dev):
        m = n if bool((n > 1).any()) else wt
        k, size = torch.round(m * y), torch.round(m)
        # dbinom(k, size, mu, log=TRUE), with 0 * log(0) = 0
        logc = torch.lgamma(size + 1) - torch.lgamma(k + 1) - torch.lgamma(size - k + 1)
        ll = logc + torch.xlogy(k, mu) + torch.xlogy(size - k, 1 - mu)
        scale = torch.where(m > 0, wt / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(m))
        return float(-2 * (scale * ll).sum())

    def initialize(self, y, weights):
        _check_finite(y, self.name)
        y = torch.where(weights == 0, torch.zeros_like(y), y)
        if bool(((y < 0) | (y > 1)).any()):
            raise DataError(
                f"{self.name} response values must be 0 <= y <= 1 (0/1 outcomes, a two-level factor, or a "
                "proportion with weights= the number of trials)"
            )
        m = weights * y
        if self.name == "binomial" and bool((torch.abs(m - torch.round(m)) > 1e-3).any()):
            import warnings

            warnings.warn("non-integer #successes in a binomial glm!", stacklevel=4)
        return y, torch.ones_like(y), (weights * y + 0.5) / (weights + 1)


class QuasiBinomial(Binomial):
    """R's quasibinomial(): binomial variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasibinomial"
    fixed_dispersion = False

    def aic(self, y, n, mu, wt, dev):
        return float("nan")


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"
    fixed_dispersion = True

    def variance(self, mu):
        return mu

    def validmu(self, mu):
        return bool(torch.isfinite(mu).all() and (mu > 0).all())

    def dev_resids(self, y, mu, wt):
        r = mu * wt
        return 2 * torch.where(y > 0, wt * (_ylogy(y, mu) - (y - mu)), r)

    def aic(self, y, n, mu, wt, dev):
        ll = torch.xlogy(y, mu) - mu - torch.lgamma(y + 1)
        return float(-2 * (ll * wt).sum())

    def initialize(self, y, weights):
        _check_finite(y, self.name)
        if bool((y < 0).any()):
            what = "Poisson" if self.name == "poisson" else "quasiPoisson"  # R's wording
            raise DataError(f"negative values not allowed for the '{what}' family (the response is a count)")
        return y, torch.ones_like(y), y + 0.1


class QuasiPoisson(Poisson):
    """R's quasipoisson(): Poisson variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasipoisson"
    fixed_dispersion = False

    def aic(self, y, n, mu, wt, dev):
        return float("nan")


class Gamma(Family):
    name = "Gamma"
    links = ("inverse", "identity", "log")
    default_link = "inverse"
    aic_counts_dispersion = True

    def variance(self, mu):
        return mu * mu

    def validmu(self, mu):
        return bool(torch.isfinite(mu).all() and (mu > 0).all())

    def dev_resids(self, y, mu, wt):
        ratio = torch.where(y == 0, torch.ones_like(y), y / mu)
        return -2 * wt * (torch.log(ratio) - (y - mu) / mu)

    def aic(self, y, n, mu, wt, dev):
        disp = dev / float(wt.sum())
        shape = 1 / disp
        scale = mu * disp
        # dgamma(y, shape, scale = scale, log = TRUE)
        ll = -math.lgamma(shape) - shape * torch.log(scale) + (shape - 1) * torch.log(y) - y / scale
        return float(-2 * (ll * wt).sum() + 2)

    def initialize(self, y, weights):
        _check_finite(y, "Gamma")
        if bool((y <= 0).any()):
            raise DataError("non-positive values not allowed for the 'Gamma' family (the response must be > 0)")
        return y, torch.ones_like(y), y.clone()


class InverseGaussian(Family):
    name = "inverse.gaussian"
    links = ("1/mu^2", "inverse", "identity", "log")
    default_link = "1/mu^2"
    aic_counts_dispersion = True

    def variance(self, mu):
        return mu**3

    def dev_resids(self, y, mu, wt):
        return wt * ((y - mu) ** 2) / (y * mu * mu)

    def aic(self, y, n, mu, wt, dev):
        sw = float(wt.sum())
        return float(sw * (1 + math.log(dev / sw * 2 * math.pi)) + 3 * (torch.log(y) * wt).sum() + 2)

    def initialize(self, y, weights):
        _check_finite(y, "inverse.gaussian")
        if bool((y <= 0).any()):
            raise DataError("positive values only are allowed for the 'inverse.gaussian' family")
        return y, torch.ones_like(y), y.clone()


FAMILIES = {
    "gaussian": Gaussian,
    "binomial": Binomial,
    "poisson": Poisson,
    "quasibinomial": QuasiBinomial,
    "quasipoisson": QuasiPoisson,
    "Gamma": Gamma,
    "gamma": Gamma,
    "inverse.gaussian": InverseGaussian,
    "inverse_gaussian": InverseGaussian,
}


def as_family(family) -> Family:
    """A Family from a Family instance, a Family class or a name ("binomial", "Gamma", "inverse_gaussian", ...)."""
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family()
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]()
    raise ModelInputError(
        f"unknown family {family!r}; use one of {sorted(set(FAMILIES))} or a tl.families object "
        "such as tl.families.Binomial(link='probit')"
    )
