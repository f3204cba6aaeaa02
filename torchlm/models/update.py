"""R's update(): a fitted model again, with a changed formula or arguments."""

from __future__ import annotations

from typing import Any

from torchlm.errors import OptionError


def update(fit: Any, formula: str | None = None, **changes: Any) -> Any:
    """R's update(fit, formula, ...): the same fitter called again with the changes.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fit made by tl.lm or tl.glm.
    formula : str, optional
        The change in update.formula's spelling (``". ~ . + hp"``; ``.`` is the old side).
    **changes
        The fitter's arguments to change (``data=``, ``subset=``, ``weights=``, ``family=`` ...).

    Returns
    -------
    LinearModelResult or GeneralizedLinearModelResult
        The new fit.
    """
    if not hasattr(fit, "update"):
        raise OptionError(f"update() takes a fitted model (a tl.lm or tl.glm result), not {type(fit).__name__}")
    return fit.update(formula, **changes)
