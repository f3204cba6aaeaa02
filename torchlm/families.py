"""GLM families and links, defined exactly as R's family objects (stats/R/family.R, src/library/stats/src/family.c).

A family holds a link and the functions R's glm.fit uses: variance, deviance residuals, AIC,
starting values (R's ``initialize``) and validity checks. All functions take and return torch
tensors, so the IRLS fit runs on the model's device.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

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


class Family(ABC):
    """An exponential-family distribution with a link, as an R family object: the protocol every model code reads.

    What differs between families is said by the capability attributes below, never by the family's
    name: the fitter, the summary, anova, influence and profile read these.

    Parameters
    ----------
    link : link name (one of the family's ``links``) or a Link instance; default the family's default.

    Attributes
    ----------
    name : R's family$family (printed, never branched on).
    links, default_link : the links R allows, and R's default (the canonical link for R's families).
    fixed_dispersion : the dispersion is 1 by the model (binomial, poisson: z tests, chi-squared
        anova, z profile statistic) rather than estimated from the Pearson residuals (t tests, F).
    aic_counts_dispersion : R's logLik.glm counts the dispersion as a parameter (gaussian, Gamma,
        inverse.gaussian).
    has_likelihood : AIC and logLik exist (False for the quasi families: R's AIC is NA).
    deviance_is_rss : the deviance is a residual sum of squares (gaussian), so drop1's AIC profiles
        the variance out: n log(deviance / n).
    boundary_message : R's glm.fit warning when fitted means reach the edge of the family's range
        (None: R gives none); ``at_boundary(mu)`` says whether they did.
    factor_response : a two-level factor response is accepted (binomial: first level failure).
    estimates_parameters : the family has parameters of its own fitted alternately with the
        coefficients (a negative binomial's theta); ``update_parameters`` takes one such step.
    """

    name = ""
    links: tuple[str, ...] = ()
    default_link = ""
    fixed_dispersion = False
    aic_counts_dispersion = False
    has_likelihood = True
    deviance_is_rss = False
    boundary_message: str | None = None
    factor_response = False
    estimates_parameters = False

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

    # --- capabilities derived from the attributes --------------------------------------------
    @property
    def canonical(self) -> bool:
        """The link is the family's canonical one (Fisher scoring is then Newton's method)."""
        return self.link.name == self.default_link

    @property
    def test_statistic(self) -> str:
        """"z" for a fixed dispersion, "t" for an estimated one (summary.glm's tests, Wald intervals)."""
        return "z" if self.fixed_dispersion else "t"

    @property
    def profile_statistic(self) -> str:
        """MASS's profile.glm statistic: "z" (chi-squared cut-off) for a fixed dispersion, else "tau" (F)."""
        return "z" if self.fixed_dispersion else "tau"

    def at_boundary(self, mu: torch.Tensor) -> bool:
        """Whether fitted means lie numerically at the edge of the range (R's glm.fit warning condition)."""
        return False

    @property
    def parameters(self) -> dict[str, float]:
        """The family's own parameters (empty for R's families)."""
        return {}

    def update_parameters(self, y: torch.Tensor, mu: torch.Tensor, weights: torch.Tensor) -> "Family":
        """The family with its parameters re-estimated at the means ``mu`` (self when it has none).

        Families are immutable: a fitter alternating coefficients and family parameters (MASS's
        glm.nb) takes the returned family into the next iteratively reweighted least-squares pass.
        """
        return self

    # --- R's family functions ----------------------------------------------------------------
    @abstractmethod
    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        """V(mu)."""

    @abstractmethod
    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """Per-row deviance contributions (R's family$dev.resids)."""

    @abstractmethod
    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        """R's family$aic: -2 log-likelihood (plus 2 for an estimated dispersion where R adds it)."""

    def validmu(self, mu: torch.Tensor) -> bool:
        """Whether the means are inside the family's range."""
        return True

    @abstractmethod
    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check the response and give (y, n, mustart) as R's family$initialize."""

    # --- presentation ----------------------------------------------------------------------
    def r_call(self) -> str:
        """How the family appears in the printed call, e.g. binomial or Gamma(link = "log")."""
        if self.link.name == self.default_link:
            return self.name
        return f'{self.name}(link = "{self.link.name}")'

    def __repr__(self) -> str:
        return f"Family: {self.name}\nLink function: {self.link.name}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and (self.name, self.link.name, self.parameters) == (
            other.name, other.link.name, other.parameters)

    def __hash__(self) -> int:
        return hash((self.name, self.link.name, tuple(sorted(self.parameters.items()))))


def _check_finite(y: torch.Tensor, family: str):
    if not torch.isfinite(y).all():
        raise DataError(f"non-finite values in the response of the {family} family")


class Gaussian(Family):
    name = "gaussian"
    links = ("identity", "log", "inverse")
    default_link = "identity"
    aic_counts_dispersion = True
    deviance_is_rss = True

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
    boundary_message = "glm.fit: fitted probabilities numerically 0 or 1 occurred"
    factor_response = True

    def at_boundary(self, mu):
        eps10 = 10 * eps_of(mu)
        return bool(((mu > 1 - eps10) | (mu < eps10)).any())

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
        if self.has_likelihood and bool((torch.abs(m - torch.round(m)) > 1e-3).any()):
            warnings.warn("non-integer #successes in a binomial glm!", stacklevel=4)
        return y, torch.ones_like(y), (weights * y + 0.5) / (weights + 1)


class QuasiBinomial(Binomial):
    """R's quasibinomial(): binomial variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasibinomial"
    fixed_dispersion = False
    has_likelihood = False
    boundary_message = None  # R's glm.fit warns for binomial and poisson only

    def at_boundary(self, mu):
        return False

    def aic(self, y, n, mu, wt, dev):
        return float("nan")


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"
    fixed_dispersion = True
    boundary_message = "glm.fit: fitted rates numerically 0 occurred"

    def at_boundary(self, mu):
        return bool((mu < 10 * eps_of(mu)).any())

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
            what = "quasiPoisson" if not self.has_likelihood else "Poisson"  # R's wording
            raise DataError(f"negative values not allowed for the '{what}' family (the response is a count)")
        return y, torch.ones_like(y), y + 0.1


class QuasiPoisson(Poisson):
    """R's quasipoisson(): Poisson variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasipoisson"
    fixed_dispersion = False
    has_likelihood = False
    boundary_message = None

    def at_boundary(self, mu):
        return False

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
