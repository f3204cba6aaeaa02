"""torchlm: R's modelling workflow (lm, summary, anova, predict) in Python, fitted with PyTorch."""

from . import datasets
from .anova import anova
from .errors import DataError, FormulaError, ModelInputError, UnknownVariableError
from .lm import lm
from .results import FStatistic, LinearModelResult

__version__ = "0.1.0"

__all__ = [
    "lm", "anova", "datasets", "LinearModelResult", "FStatistic",
    "ModelInputError", "FormulaError", "UnknownVariableError", "DataError", "__version__",
]
