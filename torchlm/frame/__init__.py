"""R's layering of a model's data: the model frame (rows, weights, offset, NA handling), then the model matrix.

:func:`model_frame` chooses the rows a model uses (subset, then na.omit over its variables, weights and
offset) without copying the data; :func:`model_matrix` builds the response and design matrix of a formula
on a frame; :func:`build_design` does both, as ``lm`` and ``glm`` need. A model without a design matrix
(nls) uses the frame alone.
"""

from torchlm.frame.data import as_frame
from torchlm.frame.design import Design, build_design, model_matrix
from torchlm.frame.formula import parse_formula, r_powers_in_I, r_spelling
from torchlm.frame.model_frame import NA_ACTIONS, ModelFrame, check_na_action, evaluate_variable, model_frame
from torchlm.frame.newdata import newdata_matrix, newdata_offset

__all__ = [
    "ModelFrame", "model_frame", "evaluate_variable", "check_na_action", "NA_ACTIONS",
    "Design", "model_matrix", "build_design", "newdata_matrix", "newdata_offset",
    "as_frame", "parse_formula", "r_powers_in_I", "r_spelling",
]
