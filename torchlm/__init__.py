"""torchlm: R's modelling workflow (lm, summary, anova, predict) in Python, fitted with PyTorch."""

from torchlm import datasets
from torchlm.errors import (
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
from torchlm.inference.anova import AnovaTable, anova, drop1
from torchlm.inference.sandwich import sandwich_cov
from torchlm.models import families
from torchlm.models.glm import glm
from torchlm.models.infer import infer
from torchlm.models.lm import lm
from torchlm.models.mle import mle
from torchlm.models.update import update
from torchlm.results.estimates import Estimates
from torchlm.results.generalized import GeneralizedLinearModelResult
from torchlm.results.linear import FStatistic, LinearModelResult

__version__ = "0.1.0"

__all__ = [
    "infer", "mle", "Estimates", "OptimumWarning", "SingularHessianWarning", "NotAtMinimumError",
    "lm", "glm", "update", "anova", "drop1", "AnovaTable", "datasets", "families", "LinearModelResult",
    "GeneralizedLinearModelResult", "FStatistic",
    "TorchlmError", "ModelInputError", "FormulaError", "UnknownVariableError", "DataError", "OptionError", "FitError",
    "TorchlmWarning", "sandwich_cov", "__version__",
]
