"""torchlm: R's modelling workflow (lm, summary, anova, predict) in Python, fitted with PyTorch."""

from . import datasets, families
from .anova import AnovaTable, anova, drop1
from .errors import (
                     DataError,
                     FitError,
                     FormulaError,
                     ModelInputError,
                     NotAtMinimumError,
                     OptimumWarning,
                     OptionError,
                     SingularHessianWarning,
                     TorchlmError,
                     TorchlmWarning,
                     UnknownVariableError,
)
from .estimates import Estimates
from .glm import glm
from .glm_result import GeneralizedLinearModelResult
from .lm import lm
from .mle import mle
from .modules import infer
from .results import FStatistic, LinearModelResult
from .sandwich import sandwich_cov

__version__ = "0.1.0"

__all__ = [
    "infer", "mle", "Estimates", "OptimumWarning", "SingularHessianWarning", "NotAtMinimumError",
    "lm", "glm", "anova", "drop1", "AnovaTable", "datasets", "families", "LinearModelResult", "GeneralizedLinearModelResult", "FStatistic",
    "TorchlmError", "ModelInputError", "FormulaError", "UnknownVariableError", "DataError", "OptionError", "FitError",
    "TorchlmWarning", "sandwich_cov", "__version__",
]
