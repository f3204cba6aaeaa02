"""Former home of the model frame and design matrix; they now live in :mod:`torchlm.frame`.

Kept so that ``from .design import build_design, Design, ...`` keeps working; it will be removed.
"""

from __future__ import annotations

from .frame import (
                    NA_ACTIONS,
                    Design,
                    ModelFrame,
                    as_frame,
                    build_design,
                    model_frame,
                    model_matrix,
                    newdata_matrix,
                    newdata_offset,
                    parse_formula,
                    r_powers_in_I,
)

__all__ = [
    "Design", "ModelFrame", "NA_ACTIONS", "as_frame", "build_design", "model_frame", "model_matrix",
    "newdata_matrix", "newdata_offset", "parse_formula", "r_powers_in_I",
]
