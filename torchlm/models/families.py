"""GLM families and links, defined exactly as R's family objects (stats/R/family.R, src/library/stats/src/family.c).

A family holds a link and the functions R's glm.fit uses: variance, deviance residuals, AIC,
starting values (R's ``initialize``) and validity checks. All functions take and return torch
tensors, so the IRLS fit runs on the model's device. The links are defined in torchlm.links.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from torchlm.errors import DataError, ModelInputError, warn

# the links are defined in torchlm.links; importable from here as they always were
from torchlm.models.links import (  # noqa: F401
    EPS,
    LINKS,
    Cauchit,
    Cloglog,
    Identity,
    Inverse,
    InverseSquare,
    Link,
    Log,
    Logit,
    Probit,
    Sqrt,
    eps_of,
)


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
    link : str, Link or None
        Link name (one of the family's ``links``) or a Link instance; default the family's default.

    Attributes
    ----------
    name : str
        R's family$family (printed, never branched on).
    links, default_link : tuple of str, str
        The links R allows, and R's default (the canonical link for R's families).
    fixed_dispersion : bool
        The dispersion is 1 by the model (binomial, poisson: z tests, chi-squared anova, z profile
        statistic) rather than estimated from the Pearson residuals (t tests, F).
    aic_counts_dispersion : bool
        R's logLik.glm counts the dispersion as a parameter (gaussian, Gamma, inverse.gaussian).
    aic_dispersion : str or None
        What R's aic() divides the deviance by to get the dispersion it uses: "rows" (gaussian: the
        number of observations), "weights" (Gamma, inverse.gaussian: the prior weights' sum), None (a
        sum over rows needing none: binomial, poisson), "unknown" (a family of the user's): how the AIC
        of data in parts (a Dask DataFrame's partitions) adds up.
    has_likelihood : bool
        AIC and logLik exist (False for the quasi families: R's AIC is NA).
    deviance_is_rss : bool
        The deviance is a residual sum of squares (gaussian), so drop1's AIC profiles the variance
        out: n log(deviance / n).
    boundary_message : str or None
        R's glm.fit warning when fitted means reach the edge of the family's range (None: R gives
        none); ``at_boundary(mu)`` says whether they did.
    factor_response : bool
        A two-level factor response is accepted (binomial: first level failure).
    estimates_parameters : bool
        The family has parameters of its own fitted alternately with the coefficients (a negative
        binomial's theta); ``update_parameters`` takes one such step.
    """

    name = ""
    links: tuple[str, ...] = ()
    default_link = ""
    fixed_dispersion = False
    aic_counts_dispersion = False
    aic_dispersion: str | None = "unknown"
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
        """Whether fitted means lie numerically at the edge of the range (R's glm.fit warning condition).

        Parameters
        ----------
        mu : torch.Tensor
            Fitted means.

        Returns
        -------
        bool
            True when some mean is within 10 eps of the edge (binomial: 0 or 1; poisson: 0); always
            False for a family without a ``boundary_message``.

        Examples
        --------
        >>> tl.families.as_family("binomial").at_boundary(torch.tensor([0.5, 1e-17]))
        True
        """
        return False

    @property
    def parameters(self) -> dict[str, float]:
        """The family's own parameters (empty for R's families)."""
        return {}

    def update_parameters(self, y: torch.Tensor, mu: torch.Tensor, weights: torch.Tensor) -> "Family":
        """The family with its parameters re-estimated at the means ``mu`` (self when it has none).

        Families are immutable: a fitter alternating coefficients and family parameters (MASS's
        glm.nb) takes the returned family into the next iteratively reweighted least-squares pass.

        Parameters
        ----------
        y, mu, weights : torch.Tensor
            The response, the fitted means and the prior weights.

        Returns
        -------
        Family
            A new family with the re-estimated parameters, or self.

        Examples
        --------
        >>> fam = tl.families.as_family("poisson")
        >>> fam.update_parameters(torch.tensor([0.0, 2.0]), torch.ones(2), torch.ones(2)) is fam
        True
        """
        return self

    # --- R's family functions ----------------------------------------------------------------
    @abstractmethod
    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        """V(mu), R's family$variance.

        Parameters
        ----------
        mu : torch.Tensor
            Means.

        Returns
        -------
        torch.Tensor
            The variance function at each mean.

        Examples
        --------
        >>> tl.families.as_family("binomial").variance(torch.tensor([0.1, 0.5]))
        tensor([0.0900, 0.2500])
        """

    @abstractmethod
    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """Per-row deviance contributions (R's family$dev.resids).

        Parameters
        ----------
        y, mu, wt : torch.Tensor
            The response, the means and the prior weights.

        Returns
        -------
        torch.Tensor
            Each row's weighted contribution to the deviance (their sum is the deviance).

        Examples
        --------
        >>> y, mu = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
        >>> tl.families.as_family("poisson").dev_resids(y, mu, torch.ones(2))
        tensor([2.0000, 0.7726])
        """

    @abstractmethod
    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        """R's family$aic: -2 log-likelihood (plus 2 for an estimated dispersion where R adds it).

        Parameters
        ----------
        y, n, mu, wt : torch.Tensor
            The response, R's n (binomial trials per row; 1s where the prior weights carry them), the
            fitted means and the prior weights.
        dev : float
            The deviance (its dispersion estimate enters gaussian, Gamma and inverse.gaussian).

        Returns
        -------
        float
            The family's part of the AIC (glm's AIC adds 2 * rank); NaN for the quasi families.

        Examples
        --------
        >>> y, mu = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
        >>> fam = tl.families.as_family("poisson")
        >>> round(fam.aic(y, torch.ones(2), mu, torch.ones(2), float(fam.dev_resids(y, mu, torch.ones(2)).sum())), 4)
        5.3863
        """

    def validmu(self, mu: torch.Tensor) -> bool:
        """Whether the means are inside the family's range (R's family$validmu).

        Parameters
        ----------
        mu : torch.Tensor
            Means.

        Returns
        -------
        bool
            True when every mean is finite and inside the range (always True where R has no check).

        Examples
        --------
        >>> tl.families.as_family("binomial").validmu(torch.tensor([0.2, 1.5]))
        False
        """
        return True

    @abstractmethod
    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check the response and give (y, n, mustart) as R's family$initialize.

        Parameters
        ----------
        y, weights : torch.Tensor
            The response (proportions for binomial) and the prior weights.

        Returns
        -------
        tuple of torch.Tensor
            The response (binomial: 0 where the weight is 0), R's n (1s) and the starting means.

        Examples
        --------
        >>> tl.families.as_family("poisson").initialize(torch.tensor([0.0, 2.0]), torch.ones(2))
        (tensor([0., 2.]), tensor([1., 1.]), tensor([0.1000, 2.1000]))
        """

    # --- presentation ----------------------------------------------------------------------
    def r_call(self) -> str:
        """How the family appears in the printed call, e.g. binomial or Gamma(link = "log").

        Returns
        -------
        str
            The family's name, with its link when that is not the default.

        Examples
        --------
        >>> tl.families.as_family("binomial").r_call()
        'binomial'
        """
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
    aic_dispersion = "rows"
    deviance_is_rss = True

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(mu)

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        return wt * (y - mu) ** 2

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        nobs = y.numel()
        # R's log(0) is -Inf: an exact fit has AIC -Inf, not a math domain error
        log_scale = math.log(dev / nobs * 2 * math.pi) if dev > 0 else (-math.inf if dev == 0 else math.nan)
        return float(nobs * (log_scale + 1) + 2 - torch.log(wt).sum())

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if (self.link.name == "inverse" and bool((y == 0).any())) or (self.link.name == "log" and bool((y <= 0).any())):
            raise DataError(
                f"cannot find valid starting values for the gaussian family with the {self.link.name} link "
                "(the response has values outside the link's range): pass start="
            )
        return y, torch.ones_like(y), y.clone()


class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    aic_dispersion = None
    default_link = "logit"
    fixed_dispersion = True
    boundary_message: str | None = "glm.fit: fitted probabilities numerically 0 or 1 occurred"
    factor_response = True

    def at_boundary(self, mu: torch.Tensor) -> bool:
        eps10 = 10 * eps_of(mu)
        return bool(((mu > 1 - eps10) | (mu < eps10)).any())

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return mu * (1 - mu)

    def validmu(self, mu: torch.Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and ((mu > 0) & (mu < 1)).all())

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        return 2 * wt * (_ylogy(y, mu) + _ylogy(1 - y, 1 - mu))

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        m = n if bool((n > 1).any()) else wt
        k, size = torch.round(m * y), torch.round(m)
        # dbinom(k, size, mu, log=TRUE), with 0 * log(0) = 0
        logc = torch.lgamma(size + 1) - torch.lgamma(k + 1) - torch.lgamma(size - k + 1)
        ll = logc + torch.xlogy(k, mu) + torch.xlogy(size - k, 1 - mu)
        scale = torch.where(m > 0, wt / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(m))
        return float(-2 * (scale * ll).sum())

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_finite(y, self.name)
        y = torch.where(weights == 0, torch.zeros_like(y), y)
        if bool(((y < 0) | (y > 1)).any()):
            raise DataError(
                f"{self.name} response values must be 0 <= y <= 1 (0/1 outcomes, a two-level factor, or a "
                "proportion with weights= the number of trials)"
            )
        m = weights * y
        if self.has_likelihood and bool((torch.abs(m - torch.round(m)) > 1e-3).any()):
            warn("non-integer #successes in a binomial glm!", stacklevel=4)
        return y, torch.ones_like(y), (weights * y + 0.5) / (weights + 1)


class _Quasi:
    """What R's quasi families change in their base family: the dispersion estimated, no likelihood.

    Listed first among a quasi family's bases, so that these override the base family's.
    """

    fixed_dispersion = False
    has_likelihood = False
    boundary_message: str | None = None  # R's glm.fit warns for binomial and poisson only

    def at_boundary(self, mu: torch.Tensor) -> bool:
        """Never: R gives the quasi families no boundary warning.

        Returns
        -------
        bool

        Examples
        --------
        >>> tl.families.as_family("quasipoisson").at_boundary(torch.tensor([1e-12, 2.0]))
        False
        """
        return False

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        """NaN: a quasi-likelihood has no AIC (R's NA).

        Returns
        -------
        float

        Examples
        --------
        >>> y, mu = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
        >>> tl.families.as_family("quasipoisson").aic(y, torch.ones(2), mu, torch.ones(2), 1.0)
        nan
        """
        return float("nan")


class QuasiBinomial(_Quasi, Binomial):
    """R's quasibinomial(): binomial variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasibinomial"


class Poisson(Family):
    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"
    aic_dispersion = None
    fixed_dispersion = True
    boundary_message: str | None = "glm.fit: fitted rates numerically 0 occurred"

    def at_boundary(self, mu: torch.Tensor) -> bool:
        return bool((mu < 10 * eps_of(mu)).any())

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return mu

    def validmu(self, mu: torch.Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and (mu > 0).all())

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        r = mu * wt
        return 2 * torch.where(y > 0, wt * (_ylogy(y, mu) - (y - mu)), r)

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        ll = torch.xlogy(y, mu) - mu - torch.lgamma(y + 1)
        # R's dpois: a non-integer count has probability 0 (log -Inf, so AIC Inf), with a warning each
        nonint = torch.abs(y - torch.round(y)) > 1e-7 * torch.clamp(torch.abs(y), min=1.0)
        if bool(nonint.any()):
            bad = y[nonint]
            for v in bad[:5].tolist():
                warn(f"non-integer x = {v:f}", stacklevel=4)
            if len(bad) > 5:
                warn(f"... and {len(bad) - 5} more non-integer counts", stacklevel=4)
            ll = torch.where(nonint, torch.full_like(ll, -math.inf), ll)
        return float(-2 * (ll * wt).sum())

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_finite(y, self.name)
        if bool((y < 0).any()):
            what = "quasiPoisson" if not self.has_likelihood else "Poisson"  # R's wording
            raise DataError(f"negative values not allowed for the '{what}' family (the response is a count)")
        return y, torch.ones_like(y), y + 0.1


class QuasiPoisson(_Quasi, Poisson):
    """R's quasipoisson(): Poisson variance and deviance, dispersion estimated (Pearson), no likelihood (AIC NA)."""

    name = "quasipoisson"


class Gamma(Family):
    name = "Gamma"
    links = ("inverse", "identity", "log")
    default_link = "inverse"
    aic_counts_dispersion = True
    aic_dispersion = "weights"

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return mu * mu

    def validmu(self, mu: torch.Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and (mu > 0).all())

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        ratio = torch.where(y == 0, torch.ones_like(y), y / mu)
        return -2 * wt * (torch.log(ratio) - (y - mu) / mu)

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        disp = dev / float(wt.sum())
        shape = 1 / disp
        scale = mu * disp
        # dgamma(y, shape, scale = scale, log = TRUE)
        ll = -math.lgamma(shape) - shape * torch.log(scale) + (shape - 1) * torch.log(y) - y / scale
        return float(-2 * (ll * wt).sum() + 2)

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_finite(y, "Gamma")
        if bool((y <= 0).any()):
            raise DataError("non-positive values not allowed for the 'Gamma' family (the response must be > 0)")
        return y, torch.ones_like(y), y.clone()


class InverseGaussian(Family):
    name = "inverse.gaussian"
    links = ("1/mu^2", "inverse", "identity", "log")
    default_link = "1/mu^2"
    aic_counts_dispersion = True
    aic_dispersion = "weights"

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        return mu**3

    def dev_resids(self, y: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        return wt * ((y - mu) ** 2) / (y * mu * mu)

    def aic(self, y: torch.Tensor, n: torch.Tensor, mu: torch.Tensor, wt: torch.Tensor, dev: float) -> float:
        sw = float(wt.sum())
        return float(sw * (1 + math.log(dev / sw * 2 * math.pi)) + 3 * (torch.log(y) * wt).sum() + 2)

    def initialize(self, y: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_finite(y, "inverse.gaussian")
        if bool((y <= 0).any()):
            raise DataError("positive values only are allowed for the 'inverse.gaussian' family")
        return y, torch.ones_like(y), y.clone()


FAMILIES: dict[str, type[Family]] = {
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


def as_family(family: Family | type[Family] | str) -> Family:
    """A Family from a Family instance, a Family class or a name ("binomial", "Gamma", "inverse_gaussian", ...).

    Parameters
    ----------
    family : Family, type of Family or str
        A family object (returned as it is), a family class (instantiated with its default link) or a
        name in ``FAMILIES``.

    Returns
    -------
    Family
        The family.

    Examples
    --------
    >>> tl.families.as_family("poisson").r_call()
    'poisson'
    """
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family()
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]()
    raise ModelInputError(
        f"unknown family {family!r}; use one of {sorted(set(FAMILIES))} or a tl.families object "
        "such as tl.families.Binomial(link='probit'); MASS's negative.binomial(theta) is tl.negative_binomial(theta)"
    )
