"""tl.coefplot(): coefficient estimates with confidence intervals for one or several fits (fixest's coefplot,
modelsummary's modelplot), drawn with matplotlib.

Terms run down the y axis in the order they first appear among the fits; each fit's estimates are points
with their intervals as horizontal lines, fits side by side (dodged) in the colours of matplotlib's cycle,
a dotted line at zero. Numbers are the fits' own coef() and confint(level, vcov=).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from torchlm.errors import ModelInputError, OptionError
from torchlm.present.plot_lm import matplotlib_module

INTERCEPTS = ("(Intercept)", "Intercept")  # R's name, and torchlm's default


def _as_fits(fits: Any, names: Any) -> tuple[list[Any], list[str]]:
    """The fits and their names: a dict's keys, the names given, or "Model 1", "Model 2", ..."""
    if isinstance(fits, dict):
        items, keys = list(fits.values()), [str(k) for k in fits]
    elif isinstance(fits, (list, tuple)):
        items, keys = list(fits), [f"Model {i + 1}" for i in range(len(fits))]
    else:
        items, keys = [fits], ["Model 1"]
    if not items:
        raise ModelInputError("coefplot needs at least one fit")
    for f in items:
        if not (hasattr(f, "coef") and hasattr(f, "confint")):
            raise ModelInputError(f"coefplot draws fits with coef() and confint() (tl.lm, tl.glm, ...), "
                                  f"not a {type(f).__name__}")
    if names is not None:
        keys = [str(n) for n in ([names] if isinstance(names, str) else names)]
        if len(keys) != len(items):
            raise OptionError(f"names must give one name per fit ({len(items)}), not {len(keys)}")
    return items, keys


def coef_intervals(fit: Any, level: float, vcov: Any, drop_intercept: bool) -> tuple[list[str], np.ndarray]:
    """A fit's terms and (estimate, lower, upper) rows, from its coef() and confint(level, vcov=).

    Parameters
    ----------
    fit : a fitted model with coef() and confint().
    level : float
        Coverage of the intervals.
    vcov : Any
        The covariance behind the intervals (None: the fit's).
    drop_intercept : bool
        Leave out the intercept ("Intercept", or R's "(Intercept)").

    Returns
    -------
    (list of str, numpy.ndarray)
        The terms (non-estimable ones left out) and an (k, 3) array.
    """
    b = fit.coef()
    ci = fit.confint(level=level) if vcov is None else fit.confint(level=level, vcov=vcov)
    terms = [t for t in ci.index if not (drop_intercept and t in INTERCEPTS) and np.isfinite(b[t])]
    rows = np.array([[float(b[t]), float(ci.loc[t].iloc[0]), float(ci.loc[t].iloc[1])] for t in terms], dtype=float)
    return terms, rows.reshape(len(terms), 3)


def coefplot(fits: Any, *, vcov: Any = None, level: float = 0.95, names: Any = None, ax: Any = None,
             drop_intercept: bool = True, dodge: float = 0.25) -> Any:
    """Coefficient plot: estimates and confidence intervals of one or several fits, side by side.

    Parameters
    ----------
    fits : fit, list of fits or dict of name -> fit
        Fitted models with coef() and confint() (lm, glm, aov, glm.nb, nls, ...).
    vcov : Any
        The covariance for the intervals, as confint(vcov=) takes it ("HC3", a matrix, ...); None: each fit's.
    level : float
        Coverage of the intervals, in (0, 1).
    names : str or sequence of str, optional
        The fits' names in the legend (default: the dict's keys, or "Model 1", "Model 2", ...).
    ax : matplotlib Axes, optional
        Where to draw; None for a new figure.
    drop_intercept : bool
        Leave out the intercept, whose scale often hides the other terms.
    dodge : float
        Vertical distance between the fits' intervals of one term.

    Returns
    -------
    matplotlib.figure.Figure
        Each fit's points have gid "estimate:<name>" and its intervals (a LineCollection) "interval:<name>".

    Examples
    --------
    >>> mtcars = tl.datasets.load("mtcars")
    >>> fig = tl.coefplot([tl.lm("mpg ~ wt", mtcars), tl.lm("mpg ~ wt + hp", mtcars)])
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['wt', 'hp']
    """
    items, keys = _as_fits(fits, names)
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise OptionError(f"level must be a coverage in (0, 1), e.g. 0.95, not {level!r}")
    drawn = [coef_intervals(f, float(level), vcov, drop_intercept) for f in items]
    terms: list[str] = []
    for t, _ in drawn:
        terms += [x for x in t if x not in terms]
    if not terms:
        raise ModelInputError("coefplot: no coefficients to draw (only an intercept, dropped by drop_intercept=True)")
    if ax is None:
        plt = matplotlib_module()
        fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.45 * len(terms) * max(1, len(items)) ** 0.5))
    else:
        fig = ax.figure
    pos = {t: i for i, t in enumerate(terms)}
    m = len(items)
    for j, ((t, rows), key) in enumerate(zip(drawn, keys)):
        y = np.array([pos[x] for x in t], dtype=float) + (j - (m - 1) / 2) * dodge
        color = f"C{j % 10}"
        ax.hlines(y, rows[:, 1], rows[:, 2], color=color, linewidth=1.6, gid=f"interval:{key}")
        ax.plot(rows[:, 0], y, linestyle="none", marker="o", color=color, label=key, gid=f"estimate:{key}")
    ax.axvline(0.0, linestyle=":", color="gray", gid="zero")
    ax.set_yticks(range(len(terms)), terms)
    ax.set_ylim(len(terms) - 0.5, -0.5)
    ax.set_xlabel(f"Estimate and {level * 100:g}% confidence interval")
    if m > 1:
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig
