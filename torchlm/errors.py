"""The package's exceptions and warnings: one hierarchy, so ``except tl.TorchlmError`` catches every user error.

Every error torchlm raises for bad input or a bad request is a :class:`TorchlmError`, which is a
``ValueError`` (code written against ``except ValueError`` keeps working). Each names the problem.

::

    TorchlmError (ValueError)
    ├── ModelInputError            bad input to a fit or a method of a fit
    │   ├── FormulaError           the formula cannot be parsed or evaluated (formulaic's errors rewrapped)
    │   │   └── UnknownVariableError   a variable is not a column of the data (also a KeyError)
    │   ├── DataError              the data cannot be used as given
    │   └── OptionError            an argument's value is not valid (vcov type, level, device, ...)
    ├── FitError                   the fit itself failed (no valid coefficients, singular information)
    └── NotAtMinimumError          the estimates sit at a saddle point or maximum
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class TorchlmError(ValueError):
    """Base of every error torchlm raises for bad input or a bad request."""


class ModelInputError(TorchlmError):
    """Bad input to a model-fitting function or to a method of a fit (data, formula, weights, offset, options)."""


class FormulaError(ModelInputError):
    """The formula cannot be parsed or refers to something that does not exist."""


class UnknownVariableError(FormulaError, KeyError):
    """The formula uses a variable that is not a column of the data."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ModelInputError):
    """The data cannot be used as given (non-numeric response, missing or non-finite values, too few rows)."""


class OptionError(ModelInputError):
    """An argument's value is not one the function accepts (unknown vcov type, bad level, unavailable device)."""


class FitError(TorchlmError):
    """The fit could not be completed from this data and start (no valid coefficients, singular information)."""


class NotStructured(FitError):
    """A fast structured path does not apply to this design (caught inside torchlm, which then reads the rows)."""


class NotAtMinimumError(TorchlmError):
    """The Hessian has negative curvature: the parameters are at a saddle point or maximum, not a minimum."""


class TorchlmWarning(UserWarning):
    """Base of torchlm's own warning classes."""


class OptimumWarning(TorchlmWarning):
    """The estimates are not at an optimum of the objective (gradient not ~0, or the optimiser did not converge)."""


class SingularHessianWarning(TorchlmWarning):
    """The Hessian is singular: the named parameters are not identifiable and get NaN standard errors."""


# --- warning without touching the process-global warnings filters --------------------------------
# warnings.catch_warnings() saves and restores the one process-wide filter list (before Python 3.14):
# two threads inside it at once can leave "ignore everything" installed for good. Internal refits that
# must not repeat R's warnings (anova's and profile's refits, glm's null deviance) silence torchlm's
# own warnings for their thread instead.
_silence = threading.local()


@contextmanager
def silenced() -> Iterator[None]:
    """Silence torchlm's own warnings (those given through :func:`warn`) in this thread, for the block.

    Returns
    -------
    contextmanager
        Nested uses are fine; other threads keep their warnings.
    """
    depth = getattr(_silence, "depth", 0)
    _silence.depth = depth + 1
    try:
        yield
    finally:
        _silence.depth = depth


def warn(message: str, category: type[Warning] = TorchlmWarning, stacklevel: int = 2) -> None:
    """warnings.warn, unless this thread is inside :func:`silenced`.

    Parameters
    ----------
    message : str
        The warning's text (R's text, where torchlm copies an R warning).
    category : type of Warning
        The warning class.
    stacklevel : int
        As warnings.warn's, counted from the caller of this function.

    Returns
    -------
    None
    """
    if getattr(_silence, "depth", 0):
        return
    warnings.warn(message, category, stacklevel=stacklevel + 1)


# torchlm's own uses of warnings.catch_warnings (narrow filters around formulaic and pandas calls) take
# this lock, so that two of them never interleave and leave a filter installed for good. Warnings from
# threads outside torchlm that fire inside such a block meet its (narrow) filters: that part of
# Python's design only 3.14's context-local filters remove.
_WARNINGS_LOCK = threading.RLock()


@contextmanager
def warnings_guard() -> Iterator[None]:
    """warnings.catch_warnings() for torchlm's internal, narrow filters, one block at a time across threads.

    Returns
    -------
    contextmanager
        Inside it, install filters with warnings.filterwarnings; they are removed on exit.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        yield
