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
from torchlm.inference.alias import Alias, alias
from torchlm.inference.anova import AnovaTable, anova
from torchlm.inference.car_anova import Anova
from torchlm.inference.emmeans import EMMGrid, EmmList, EmmSummary, emmeans
from torchlm.inference.mle_anova import AICtab, ICTable
from torchlm.inference.sandwich import sandwich_cov
from torchlm.inference.single_term import add1, drop1
from torchlm.inference.stepwise import step
from torchlm.inference.terms import DummyCoef, TermsPrediction, dummy_coef
from torchlm.models import families
from torchlm.models.aov import TukeyHSD, aov
from torchlm.models.feols import feglm, feols, fepois
from torchlm.models.glm import glm
from torchlm.models.glm_nb import glm_nb
from torchlm.models.infer import infer
from torchlm.models.lm import lm
from torchlm.models.mle import mle
from torchlm.models.mle_bounds import BoundaryWarning
from torchlm.models.negbin_family import NegativeBinomial, negative_binomial
from torchlm.models.nls import nls
from torchlm.models.update import update, update_formula
from torchlm.options import options
from torchlm.present.coefplot import coefplot
from torchlm.present.etable import etable
from torchlm.results.estimates import Estimates
from torchlm.results.fixest import FixestResult
from torchlm.results.generalized import GeneralizedLinearModelResult
from torchlm.results.large_factor import BlockVcov, LargeFactorResult
from torchlm.results.linear import FStatistic, LinearModelResult
from torchlm.results.nls import NonlinearModelResult

__version__ = "0.1.0"

__all__ = [
    "infer", "mle", "nls", "NonlinearModelResult", "Estimates", "OptimumWarning", "SingularHessianWarning",
    "NotAtMinimumError",
    "AICtab", "ICTable", "BoundaryWarning",
    "glm_nb", "negative_binomial", "NegativeBinomial",
    "lm", "glm", "update", "update_formula", "anova", "drop1", "Anova", "AnovaTable", "datasets", "families",
    "LinearModelResult", "LargeFactorResult", "BlockVcov",
    "GeneralizedLinearModelResult", "FStatistic", "add1", "step",
    "TorchlmError", "ModelInputError", "FormulaError", "UnknownVariableError", "DataError", "OptionError", "FitError",
    "TorchlmWarning", "sandwich_cov", "__version__", "aov", "TukeyHSD", "options",
    "alias", "Alias", "dummy_coef", "DummyCoef", "TermsPrediction",
    "emmeans", "EMMGrid", "EmmList", "EmmSummary",
    "etable", "feols", "fepois", "feglm", "FixestResult",
    "coefplot",
]
