"""fit.plot(): R's plot.lm for lm and glm fits (and their subclasses: aov, glm.nb).

The quantities are the fit's own, taken as plot.lm takes them (R 4.2.2): residuals (Pearson for a glm),
predict(fit) (the linear predictor of a glm), hatvalues, Cook's distances and the standardized residuals
(rstandard(type = "pearson") for a glm; sqrt(w) r / (s sqrt(1 - h)) for an lm), over the rows of non-zero
weight; ``present.plot_lm`` draws them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import ModelInputError, OptionError, warn
from torchlm.present.deparse import Node, deparse_lines, parse
from torchlm.present.plot_lm import CAPTIONS, LmDiagnostics, PlotOptions, draw_plot_lm
from torchlm.present.rformat import row_labels
from torchlm.results.model_frame import design_frame


def _sub_caption(call: str) -> str:
    """plot.lm's sub.caption: the call with only its function and formula, deparsed, cut at 75 characters."""
    try:
        node = parse(call)
    except ModelInputError:
        # an argument torchlm writes as <array> (data given as values): keep what precedes it
        m = re.match(r"([A-Za-z][\w.]*)\((?:formula = )?(.*?)(?:, [A-Za-z][\w.]* = .*)?\)$", call)
        if m is None:
            return call
        try:
            node = parse(f"{m.group(1)}({m.group(2)})")
        except ModelInputError:
            return call
    if node.kind != "call" or not node.args:
        return call
    keep = [node.args[0]] + [("", a) for name, a in node.args[1:] if name == "formula"]
    if len(keep) == 1:
        keep = list(node.args)
    cc = deparse_lines(Node(kind="call", value=node.value, args=tuple(keep)), cutoff=80)
    first = cc[0].rstrip()
    return f"{first[:75]} ..." if len(cc) > 1 or len(first) > 75 else first


def _rows(v: pd.Series, keep: np.ndarray) -> np.ndarray:
    """The values at the rows kept: a measure over every row is cut with ``keep``; one already over the rows of
    non-zero weight (R's influence measures) is taken as it is."""
    a = v.to_numpy(dtype=float)
    return a[keep] if len(a) == len(keep) else a


def _factors(fit: Any, keep: np.ndarray) -> list[tuple[str, list[str], np.ndarray]]:
    """The factor predictors of the model frame (R's xlevels): name, levels and 1-based codes at the rows kept."""
    try:
        mf = design_frame(fit, padded=bool(getattr(fit, "na_exclude", False)))
    except ModelInputError:
        return []
    out = []
    for name in list(mf.columns)[1:]:
        col = mf[name]
        if name in ("(weights)", "(offset)") or not isinstance(col.dtype, pd.CategoricalDtype):
            continue
        codes = col.cat.codes.to_numpy().astype(float) + 1
        codes = codes[keep] if len(codes) == len(keep) else codes
        out.append((str(name), [str(c) for c in col.cat.categories], codes))
    return out


def lm_diagnostics(fit: Any) -> LmDiagnostics:
    """What plot.lm draws for an lm or glm, taken from the fit's residuals, leverages and Cook's distances.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        The fit (or a subclass: aov, glm.nb).

    Returns
    -------
    LmDiagnostics
    """
    if getattr(fit, "design", None) is None or not hasattr(fit, "cooks_distance"):
        raise ModelInputError(f"plot() draws R's plot.lm diagnostics of an lm or glm fit (tl.lm, tl.glm, tl.aov, "
                              f"tl.glm_nb), not of a {type(fit).__name__}")
    glm = hasattr(fit, "family")
    resid = fit.residuals("pearson" if glm else "response")
    yh = (fit.predict() if glm else fit.fitted()).to_numpy(dtype=float)
    w = fit.design.weights
    weighted = glm or w is not None
    wser = pd.Series(np.ones(len(fit.design.y)) if w is None else np.asarray(w, dtype=float), index=fit.design.index)
    wv = fit._pad(wser).to_numpy(dtype=float)
    keep = ~(wv == 0)  # R: r[w != 0], where an NA weight (a row padded by na.exclude) keeps its NA
    labels = row_labels(resid.index, getattr(fit.design.data, "index", None))
    r = resid.to_numpy(dtype=float)[keep]
    hii = _rows(fit.hatvalues(), keep)
    cook = _rows(fit.cooks_distance(), keep)
    if glm:
        rs = _rows(fit.rstandard(type="pearson"), keep)
    else:
        wr = r if not weighted else np.sqrt(wv[keep]) * r
        with np.errstate(divide="ignore", invalid="ignore"):
            rs = wr / (fit.sigma * np.sqrt(1 - hii))
    inf = np.flatnonzero(hii >= 1)
    if len(inf):
        warn("not plotting observations with leverage one:\n  " + ", ".join(str(i + 1) for i in inf))
        rs = np.where(hii >= 1, np.nan, rs)
    return LmDiagnostics(glm=glm, r=r, yh=yh[keep], rs=rs, hii=hii, cook=cook,
                         labels=[lab for lab, k in zip(labels, keep) if k], rank=int(fit.rank),
                         sub_caption=_sub_caption(str(getattr(fit, "call", "") or "")),
                         factors=_factors(fit, keep))


def plot_lm(fit: Any, which: Any = (1, 2, 3, 5), *, caption: Any = None, id_n: int = 3, labels: Any = None,
            ax: Any = None, sub_caption: str | None = None, add_smooth: bool = True, iter_smooth: int | None = None,
            qqline: bool = True, cook_levels: Any = (0.5, 1.0), fontsize: float = 10.0) -> Any:
    """R's plot.lm(fit, which): diagnostic plots of an lm or glm, as a matplotlib Figure.

    Parameters are those of :meth:`PlotMethods.plot`, with the fit first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = lm_diagnostics(fit)
    if labels is not None:
        names = [str(v) for v in labels]
        if len(names) != len(d.r):
            raise OptionError(f"labels must give one name per plotted observation ({len(d.r)}), not {len(names)}")
        d.labels = names
    if caption is None:
        caps = list(CAPTIONS)
    elif isinstance(caption, str):
        caps = [caption] * 6
    else:
        caps = [str(c) if c is not None else "" for c in caption]
    if isinstance(id_n, bool) or not isinstance(id_n, (int, np.integer)):
        raise OptionError(f"id_n must be a whole number of points to label (R's id.n), not {id_n!r}")
    levels = tuple(float(c) for c in np.atleast_1d(cook_levels)) if cook_levels is not None else ()
    opts = PlotOptions(caption=caps, id_n=int(id_n), add_smooth=bool(add_smooth),
                       iter_smooth=(0 if d.glm else 3) if iter_smooth is None else int(iter_smooth),
                       qqline=bool(qqline), cook_levels=levels, caption_given=caption is not None,
                       fontsize=float(fontsize))
    return draw_plot_lm(d, which, opts, ax=ax, sub_caption=sub_caption)


class PlotMethods:
    """fit.plot() of an lm or glm: R's plot.lm."""

    def plot(self, which: Any = (1, 2, 3, 5), *, caption: Any = None, id_n: int = 3, labels: Any = None,
             ax: Any = None, sub_caption: str | None = None, add_smooth: bool = True,
             iter_smooth: int | None = None, qqline: bool = True, cook_levels: Any = (0.5, 1.0),
             fontsize: float = 10.0) -> Any:
        """R's plot(fit): the diagnostic plots of plot.lm (needs matplotlib: ``pip install torchlm-stats[plot]``).

        Parameters
        ----------
        which : int or sequence of int
            Panels (R's which): 1 Residuals vs Fitted, 2 Normal Q-Q, 3 Scale-Location, 4 Cook's distance,
            5 Residuals vs Leverage, 6 Cook's distance vs leverage h / (1 - h). Drawn in that order.
        caption : sequence of str or None
            The six panel captions (None: R's).
        id_n : int
            How many of the most extreme points to label (R's id.n).
        labels : sequence of str or None
            Point labels (R's labels.id); None: the data's row names.
        ax : matplotlib Axes, sequence of Axes or None
            One Axes per panel to draw in; None for a new figure (a grid two panels wide).
        sub_caption : str or None
            None: the call (R's sub.caption) under a single panel or as the figure's title; "" for none.
        add_smooth : bool
            Draw R's panel.smooth (lowess, span 2/3) through the points.
        iter_smooth : int or None
            lowess's robustness iterations (None: R's, 3 for an lm and 0 for a glm).
        qqline : bool
            Draw qqline in the Q-Q plot.
        cook_levels : sequence of float
            Cook's distances of the contours in plot 5.
        fontsize : float
            The text size (points) of captions; labels are 0.75 of it (R's cex.id).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fig = fit.plot()
        >>> [ax.get_title() for ax in fig.axes]
        ['Residuals vs Fitted', 'Normal Q-Q', 'Scale-Location', 'Residuals vs Leverage']
        """
        return plot_lm(self, which, caption=caption, id_n=id_n, labels=labels, ax=ax, sub_caption=sub_caption,
                       add_smooth=add_smooth, iter_smooth=iter_smooth, qqline=qqline, cook_levels=cook_levels,
                       fontsize=fontsize)
