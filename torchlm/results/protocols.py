"""What the diagnostics, profiles and printouts read from a fitted lm or glm, as typing protocols.

The modules of ``torchlm.inference`` and ``torchlm.present`` work on fits, but the result classes
import them (for their methods), so they cannot import the result classes back. These protocols
name the attributes they read instead; LinearModelResult and GeneralizedLinearModelResult satisfy
them structurally, which the type checker verifies where the classes hand themselves over.
The protocols are for annotations only: no code checks against them at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from torchlm.frame import Design
    from torchlm.models.families import Family
    from torchlm.sources.row_blocks import WorkingRows


class HasDesign(Protocol):
    """Anything fitted on a design (a Design: the rows used, their weights and the user's data)."""

    @property
    def design(self) -> Design:
        """The design the model was fitted on."""


class DesignFit(Protocol):
    """A model fitted on a design matrix by (iteratively re)weighted least squares: an lm or a glm."""

    @property
    def names(self) -> list[str]:
        """The coefficient names (a copy)."""

    design: Design
    rank: int
    df_residual: int
    nobs: int
    deviance: float
    n_dropped_na: int
    call: str

    @property
    def estimable(self) -> list[str]:
        """Names of the estimable (non-aliased) coefficients, in order."""

    def coef(self) -> pd.Series:
        """Estimates by name, NaN where not estimable.

        Returns
        -------
        pandas.Series
            Indexed by the coefficient names.
        """

    def std_errors(self) -> pd.Series:
        """Standard errors of the model's own covariance, NaN where not estimable.

        Returns
        -------
        pandas.Series
            Indexed by the coefficient names.
        """

    def residuals(self, type: str) -> pd.Series:
        """Residuals of the given type ("deviance", "pearson", ...).

        Parameters
        ----------
        type : str
            The residual type, as the fit's own residuals() takes it.

        Returns
        -------
        pandas.Series
            One value per row of the fit.
        """

    def _working(self) -> tuple[WorkingRows, np.ndarray]: ...

    def _unscaled(self, **options: Any) -> np.ndarray: ...


class LinearFit(DesignFit, Protocol):
    """A fitted linear model (LinearModelResult)."""

    sigma: float


class GeneralizedFit(DesignFit, Protocol):
    """A fitted generalized linear model (GeneralizedLinearModelResult)."""

    family: Family
    dispersion: float
    df_null: int
    null_deviance: float
    tol: float
    control: dict  # glm.control settings (with exact), reused by refits
    _fit: Any  # the IRLS result: eta, mu, coef, qr
    _y: torch.Tensor
    _w: torch.Tensor
    _offset: torch.Tensor

    def _quantile(self, level: float, statistic: str | None = None) -> float:
        """The two-sided quantile of an interval at ``level`` (an OptionError unless 0 < level < 1)."""


    def aic(self) -> float:
        """R's AIC of the fit.

        Returns
        -------
        float
        """


# an lm or a glm: the influence measures branch on which it is
DiagnosticFit = LinearFit | GeneralizedFit
