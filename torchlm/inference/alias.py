"""R's alias(fit) (alias.lm): the aliased coefficients as combinations of the estimable ones.

The "Complete" table writes each aliased column of the (weighted) design as a combination of the estimable
columns, R's ``qr.coef(qr(R11), R12)`` from the fit's QR; this is the least-squares solution of the aliased
columns on the estimable ones, which is computed here. Entries below 1e-6 are 0, and the table prints as
MASS's fractions() writes its numbers (``1/3``). With partial=True, the "Partial" table is the upper triangle
of the correlations of the estimable coefficients (R's partial aliasing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from torchlm.errors import OptionError
from torchlm.inference.rterms import formula_lines
from torchlm.present.verbs import alias_text

if TYPE_CHECKING:
    from torchlm.results.protocols import DesignFit


@dataclass
class Alias:
    """R's alias(fit): the model's formula and its complete (and partial) aliasing.

    Attributes
    ----------
    model : list of str
        The formula, as R's deparse prints it ("Model :").
    complete : pandas.DataFrame or None
        One row per aliased coefficient, one column per estimable one: the combination of the estimable
        columns the aliased column equals (None when nothing is aliased).
    partial : pandas.DataFrame or None
        With partial=True: the upper triangle of the estimable coefficients' correlations (None when all are 0
        or not asked for).
    """

    model: list[str]
    complete: pd.DataFrame | None = None
    partial: pd.DataFrame | None = None

    def __str__(self) -> str:
        return alias_text(self.model, self.complete, self.partial)

    __repr__ = __str__


def _weighted_columns(fit: DesignFit) -> tuple[np.ndarray, np.ndarray | None]:
    """The design and the square roots of the weights of the fit's (last) least squares: prior weights for an
    lm, the working weights of the last iteration for a glm."""
    X = fit.design.X
    w = getattr(fit, "_working_w", None)
    if w is not None:
        return X, np.sqrt(w.cpu().double().numpy())
    prior = fit.design.weights
    return X, None if prior is None else np.sqrt(np.asarray(prior, dtype=float))


def complete_aliasing(fit: DesignFit) -> pd.DataFrame | None:
    """R's alias(fit)$Complete: each aliased column as a combination of the estimable ones (entries < 1e-6 are 0).

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.

    Returns
    -------
    pandas.DataFrame or None
        Rows the aliased coefficients, columns the estimable ones (formula order); None without aliasing.
    """
    names = fit.names
    est = set(fit.estimable)
    e = [j for j, n in enumerate(names) if n in est]
    a = [j for j, n in enumerate(names) if n not in est]
    if not a:
        return None
    X, sw = _weighted_columns(fit)
    A = X if sw is None else X * sw[:, None]
    B = np.linalg.lstsq(A[:, e], A[:, a], rcond=None)[0] if e else np.zeros((0, len(a)))
    B = np.where(np.abs(B) < 1e-6, 0.0, B)
    return pd.DataFrame(B.T, index=[names[j] for j in a], columns=[names[j] for j in e])


def partial_aliasing(fit: DesignFit) -> pd.DataFrame | None:
    """R's alias(fit, partial = TRUE)$Partial: the upper triangle of the estimable coefficients' correlations.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm.

    Returns
    -------
    pandas.DataFrame or None
        (k, k) over the estimable coefficients, 0 on and below the diagonal and where |r| < 1e-6; None when
        every entry is 0.
    """
    # R's summary.lm(fit)$cov.unscaled: from the fit's QR (a glm's expected information)
    C = np.asarray(fit._unscaled(information="expected") if hasattr(fit, "family") else fit._unscaled(), dtype=float)
    s = np.sqrt(np.diag(C))
    R = C / np.outer(s, s)
    R[np.tril_indices_from(R)] = 0.0
    R[np.abs(R) < 1e-6] = 0.0
    if not R.any():
        return None
    return pd.DataFrame(R, index=fit.estimable, columns=fit.estimable)


def alias(fit: DesignFit, partial: bool = False) -> Alias:
    """R's alias(fit): which coefficients are aliased, and with what combination of the others.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    partial : bool
        Also the partial aliasing (R's partial = TRUE): the correlations of the estimable coefficients.

    Returns
    -------
    Alias
        Print it for R's print(alias(fit)): "Model :", then "Complete :" (and "Partial :").

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 3, 2, 5], "a": [1.0, 2, 3, 4]}).assign(b=lambda d: 2 * d.a)
    >>> print(tl.alias(tl.lm("y ~ a + b", d)))
    Model :
    y ~ a + b
    <BLANKLINE>
    Complete :
      Intercept a
    b 0         2
    <BLANKLINE>
    """
    if not hasattr(fit, "design") or not hasattr(fit, "_qr"):
        raise OptionError(f"alias() takes a fit of tl.lm or tl.glm, not {type(fit).__name__}")
    return Alias(formula_lines(fit), complete_aliasing(fit), partial_aliasing(fit) if partial else None)
