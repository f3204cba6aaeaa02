"""R's functions that formulas call and formulaic does not have under R's name (sqrt, abs, factor, ...).

formulaic evaluates a term's Python expression among the data's columns and its own transforms
(log, exp, scale, poly, C, I); these are added to that namespace wherever torchlm evaluates a term
(fitting, predict's newdata, weights= and subset= expressions), so that R's spellings port as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from formulaic.transforms import C

# R's names; factor(x) is formulaic's C(x) (treatment contrasts, levels sorted), named factor(x)[T.b]
R_FUNCTIONS: dict[str, Any] = {
    "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil, "trunc": np.trunc,
    "factor": C,
}


def formula_context() -> dict[str, Any]:
    """The namespace torchlm evaluates formula terms in, beyond the data's columns and formulaic's transforms.

    Returns
    -------
    dict
        A new dict each call (formulaic may add to the one it is given).
    """
    return dict(R_FUNCTIONS)
