"""tl.options(): session-wide settings, as R's options() (today: ``contrasts``).

``old = tl.options(contrasts=("contr.sum", "contr.poly"))`` sets them and returns the previous values,
which ``tl.options(**old)`` restores, as R's ``op <- options(...); options(op)``; the returned value is
also a context manager that restores them when its ``with`` block ends.
"""

from __future__ import annotations

from typing import Any

from torchlm.errors import OptionError
from torchlm.frame.contrasts import session_contrasts, set_session_contrasts
from torchlm.frame.factor_block import factor_levels, large_factor_levels, set_factor_levels, set_large_factor_levels

_SETTERS = {"contrasts": set_session_contrasts, "factor_levels": set_factor_levels,
            "large_factor_levels": set_large_factor_levels}
_GETTERS = {"contrasts": session_contrasts, "factor_levels": factor_levels, "large_factor_levels": large_factor_levels}


class Options(dict):
    """Option values (a dict); as a context manager, the values it holds are restored when the block ends."""

    def __enter__(self) -> Options:
        return self

    def __exit__(self, *exc: Any) -> None:
        for name, value in self.items():
            _SETTERS[name](value)


def options(**settings: Any) -> Options:
    """Set session-wide options, as R's options(), and return their previous values.

    Other Parameters
    ----------------
    contrasts : pair of str, optional
        The default contrasts (unordered, ordered), as R's ``options(contrasts = c("contr.sum",
        "contr.poly"))``; one of "contr.treatment", "contr.sum", "contr.helmert", "contr.poly",
        "contr.SAS" each. None restores R's default ``("contr.treatment", "contr.poly")``. A fit keeps
        the contrasts it was fitted with (predict codes new rows with them); update() and step() refit
        with the session's contrasts then, as R's update() does.
    factor_levels : int or None, optional
        tl.lm keeps a factor with at least this many levels (default 100) as level codes rather than
        dummy columns, when it is a main effect no other term uses: the same fit and results, without
        the n x L block (frame/factor_block.py). None: always dummy columns.
    large_factor_levels : int, optional
        Up to this many levels (default 4000) such a factor is fitted through R's (L + k) x (L + k)
        QR factor, which gives R's NA pattern for aliased columns. tl.lm fits a factor with more levels
        by the within transformation (frame/large_factor.py): treatment contrasts only, no aliased
        columns, and vcov() by blocks beyond 5000 coefficients. tl.glm keeps such a factor dense.

    Returns
    -------
    Options
        The previous values of the options set (all options' current values when none is given), to
        pass back to ``tl.options(**old)``; ``with tl.options(contrasts=...):`` restores them after the block.

    Examples
    --------
    >>> with tl.options(contrasts=("contr.sum", "contr.poly")):
    ...     tl.lm("mpg ~ C(cyl)", tl.datasets.load("mtcars")).coef().round(4)
    ...
    Intercept      20.5022
    C(cyl)[S.4]     6.1615
    C(cyl)[S.6]    -0.7593
    Name: Estimate, dtype: float64
    """
    if unknown := sorted(set(settings) - set(_SETTERS)):
        raise OptionError(f"unknown option(s) {unknown}: tl.options() sets {sorted(_SETTERS)}")
    if not settings:
        return Options({name: get() for name, get in _GETTERS.items()})
    old = Options({name: _GETTERS[name]() for name in settings})
    try:
        for name, value in settings.items():
            _SETTERS[name](value)
    except OptionError:
        old.__exit__()  # none of the values is set when one is refused
        raise
    return old
