"""R's plot.lm diagnostic panels (R 4.2.2's stats:::plot.lm), drawn with matplotlib.

The numbers come in an :class:`LmDiagnostics` (from ``results.plotting``, the fit's own residuals,
leverages and Cook's distances); this module only places them as R does: the same points, R's lowess
smoother (panel.smooth), axis limits equal to R's ``par("usr")``, the id.n most extreme points labelled on
the side R labels them, Cook's distance contours, captions and axis titles. Artists carry a ``gid``
("points", "smooth", "zero", "qqline", "cook", "cook-0.5", "id", ...) so that they can be found again.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from torchlm.errors import OptionError, warn
from torchlm.present.lowess import lowess, pretty

#: R's palette() of R >= 4.0: col = 2 (the smoother), col = 8 (Cook's contours)
RED, GRAY62 = "#DF536B", "#9E9E9E"
CAPTIONS = ("Residuals vs Fitted", "Normal Q-Q", "Scale-Location", "Cook's distance", "Residuals vs Leverage",
            r"Cook's dist vs Leverage  $h_{ii}\,/\,(1 - h_{ii})$")
CONSTANT_LEVERAGE = "Constant Leverage:\n Residuals vs Factor Levels"
INSTALL = "pip install torchlm-stats[plot]"


def matplotlib_module(name: str = "matplotlib.pyplot") -> Any:
    """Import a matplotlib module on first use (matplotlib is the optional extra ``[plot]``).

    Parameters
    ----------
    name : str
        The module, e.g. "matplotlib.pyplot".

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        raise OptionError(f"plots need matplotlib, which is not installed: {INSTALL}") from None


@dataclass
class LmDiagnostics:
    """What plot.lm draws, over the rows of non-zero weight (R drops the others).

    glm: a glm (Pearson residuals, "Predicted values"); r: residuals (Pearson for a glm); yh: R's predict(fit)
    (the linear predictor of a glm); rs: standardized (Pearson) residuals, NaN at leverage one; hii: leverages;
    cook: Cook's distances; labels: row names; rank: the fit's rank; sub_caption: the call, as R shortens it;
    factors: (name, levels, 1-based codes) of the factor predictors, for a fit of constant leverage.
    """

    glm: bool
    r: np.ndarray
    yh: np.ndarray
    rs: np.ndarray
    hii: np.ndarray
    cook: np.ndarray
    labels: list[str]
    rank: int
    sub_caption: str
    factors: list[tuple[str, list[str], np.ndarray]] = field(default_factory=list)


@dataclass
class PlotOptions:
    """plot.lm's arguments: caption, id.n, add.smooth, iter.smooth, qqline, cook.levels, label.pos, cex.id."""

    caption: list[str]
    id_n: int
    add_smooth: bool
    iter_smooth: int
    qqline: bool
    cook_levels: tuple[float, ...]
    caption_given: bool = False
    fontsize: float = 10.0


def extendrange(lo: float, hi: float, f: float) -> tuple[float, float]:
    """R's extendrange(r = c(lo, hi), f).

    Parameters
    ----------
    lo, hi : float
        The range.
    f : float
        The fraction to extend it by on each side.

    Returns
    -------
    (float, float)
    """
    d = hi - lo
    return lo - f * d, hi + f * d


def _frange(v: np.ndarray) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    return float(v.min()), float(v.max())


def _limits(ax: Any, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    # R's default axis style ("r"): the plot region is the range extended by 4% on each side
    ax.set_xlim(*extendrange(*xlim, 0.04))
    ax.set_ylim(*extendrange(*ylim, 0.04))
    ax.set_autoscale_on(False)


def _points(ax: Any, x: np.ndarray, y: np.ndarray, opts: PlotOptions, smooth: bool = True) -> None:
    """R's panel.smooth: open circles and lowess(f = 2/3, iter = iter.smooth) through the finite points."""
    ax.plot(x, y, linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="black",
            markersize=5, gid="points")
    ok = np.isfinite(x) & np.isfinite(y)
    if smooth and opts.add_smooth and ok.any():
        lx, ly = lowess(x[ok], y[ok], f=2 / 3, iter=opts.iter_smooth)
        ax.plot(lx, ly, color=RED, gid="smooth")


def _text_id(ax: Any, x: np.ndarray, y: np.ndarray, ind: np.ndarray, labels: list[str], opts: PlotOptions,
             adj_x: bool = True, shift_negative: bool = False) -> None:
    """R's text.id: a label right of a point in the left half of the plot, left of it in the right half
    (pos = 4 / 2, offset 0.25), above it (pos = 3) without adj.x; R moves labels of negative y down by a
    third of a line."""
    lo, hi = ax.get_xlim()
    mid = (lo + hi) / 2
    off = 0.25 * opts.fontsize * 0.75
    for i in ind:
        xi, yi = float(x[i]), float(y[i])
        if not (math.isfinite(xi) and math.isfinite(yi)):
            continue
        down = -opts.fontsize * 0.75 / 3 if shift_negative and yi < 0 else 0.0
        if not adj_x:
            xy, ha, va = (0.0, off), "center", "bottom"
        elif xi > mid:
            xy, ha, va = (-off, down), "right", "center"
        else:
            xy, ha, va = (off, down), "left", "center"
        ax.annotate(labels[i], (xi, yi), xytext=xy, textcoords="offset points", ha=ha, va=va,
                    fontsize=opts.fontsize * 0.75, annotation_clip=False, gid="id")


def _top(v: np.ndarray, k: int) -> np.ndarray:
    """R's sort.list(v, decreasing = TRUE)[1:k]: stable, NaN last."""
    key = np.where(np.isnan(v), np.inf, -v)
    return np.argsort(key, kind="stable")[:k]


def _caption(ax: Any, opts: PlotOptions, k: int) -> None:
    if len(opts.caption) >= k and opts.caption[k - 1]:
        ax.set_title(opts.caption[k - 1], fontsize=opts.fontsize)


def _std_label(d: LmDiagnostics) -> str:
    return "Std. Pearson resid." if d.glm else "Standardized residuals"


def _fit_label(d: LmDiagnostics) -> str:
    return "Predicted values" if d.glm else "Fitted values"


def _panel_residuals(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 1, Residuals vs Fitted."""
    ylim = _frange(d.r)
    if opts.id_n > 0:
        ylim = extendrange(*ylim, 0.08)
    _limits(ax, _frange(d.yh), ylim)
    _points(ax, d.yh, d.r, opts)
    ax.set_xlabel(_fit_label(d))
    ax.set_ylabel("Residuals")
    _caption(ax, opts, 1)
    if opts.id_n > 0:
        _text_id(ax, d.yh, d.r, _top(np.abs(d.r), opts.id_n), d.labels, opts, shift_negative=True)
    ax.axhline(0.0, linestyle=":", color="gray", gid="zero")


def qqnorm_x(y: np.ndarray) -> np.ndarray:
    """R's qqnorm(y)$x: qnorm(ppoints(n))[order(order(y))] over the non-missing y, NaN at the missing ones.

    Parameters
    ----------
    y : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    ok = ~np.isnan(y)
    n = int(ok.sum())
    a = 3 / 8 if n <= 10 else 1 / 2
    q = stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))
    rank = np.argsort(np.argsort(y[ok], kind="stable"), kind="stable")
    out = np.full(len(y), np.nan)
    out[ok] = q[rank]
    return out


def _panel_qq(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 2, the normal Q-Q plot of the standardized residuals with qqline through the quartiles."""
    lo, hi = _frange(d.rs)
    qx = qqnorm_x(d.rs)
    _limits(ax, _frange(qx), (lo, hi + (hi - lo) * 0.075))
    _points(ax, qx, d.rs, opts, smooth=False)
    ax.set_xlabel("Theoretical Quantiles")
    ax.set_ylabel(_std_label(d))
    if opts.qqline:
        # R's qqline: through the quartiles (quantile type 7) of the sample and of the normal
        qy = np.quantile(d.rs[~np.isnan(d.rs)], [0.25, 0.75])
        qn = stats.norm.ppf([0.25, 0.75])
        slope = (qy[1] - qy[0]) / (qn[1] - qn[0])
        intercept = qy[0] - slope * qn[0]
        xs = np.array(ax.get_xlim())
        ax.plot(xs, intercept + slope * xs, linestyle=":", color="#7F7F7F", gid="qqline")
    _caption(ax, opts, 2)
    if opts.id_n > 0:
        _text_id(ax, qx, d.rs, _top(np.abs(d.rs), opts.id_n), d.labels, opts)


def _panel_scale_location(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 3, Scale-Location: sqrt(|standardized residuals|) against the fitted values."""
    sq = np.sqrt(np.abs(d.rs))
    _limits(ax, _frange(d.yh), (0.0, float(np.nanmax(sq))))
    _points(ax, d.yh, sq, opts)
    ax.set_xlabel(_fit_label(d))
    ax.set_ylabel(r"$\sqrt{|\mathrm{%s}|}$" % _std_label(d).replace(" ", r"\ "))
    _caption(ax, opts, 3)
    if opts.id_n > 0:
        _text_id(ax, d.yh, sq, _top(np.abs(d.rs), opts.id_n), d.labels, opts)


def _panel_cook(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 4, Cook's distances as bars against the observation number."""
    n = len(d.cook)
    obs = np.arange(1, n + 1, dtype=float)
    top = _top(d.cook, opts.id_n) if opts.id_n > 0 else np.array([], dtype=int)
    ymx = float(d.cook[top[0]]) * 1.075 if opts.id_n > 0 else float(np.nanmax(d.cook))
    _limits(ax, (1.0, float(n)), (0.0, ymx))
    ok = np.isfinite(d.cook)
    ax.vlines(obs[ok], 0.0, d.cook[ok], color="black", gid="cook")
    ax.set_xlabel("Obs. number")
    ax.set_ylabel("Cook's distance")
    _caption(ax, opts, 4)
    if opts.id_n > 0:
        _text_id(ax, obs, d.cook, top, d.labels, opts, adj_x=False)


def _panel_leverage(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 5, Residuals vs Leverage with Cook's distance contours (or R's plot against the factor levels
    when every leverage is the same)."""
    rlo, rhi = _frange(d.hii)
    ylim = _frange(d.rs)
    if opts.id_n > 0:
        ylim = extendrange(*ylim, 0.08)
    if rhi == 0 or rhi - rlo < 1e-10 * float(np.nanmean(d.hii)):
        if not _factor_levels(ax, d, opts, ylim):
            return
        xx = _factor_values(d)
    else:
        xx = np.where(d.hii >= 1, np.nan, d.hii)
        _limits(ax, (0.0, float(np.nanmax(xx))), ylim)
        _points(ax, xx, d.rs, opts)
        ax.axhline(0.0, linestyle=":", color="gray", gid="zero")
        ax.axvline(0.0, linestyle=":", color="gray", gid="zero")
        ax.set_xlabel("Leverage")
        ax.set_ylabel(_std_label(d))
        if opts.cook_levels:
            _cook_contours(ax, d, opts, rlo, rhi)
    _caption(ax, opts, 5)
    if opts.id_n > 0:
        top = _top(d.cook, opts.id_n)
        _text_id(ax, xx, d.rs, top, d.labels, opts, shift_negative=True)


def _cook_contours(ax: Any, d: LmDiagnostics, opts: PlotOptions, rlo: float, rhi: float) -> None:
    """plot.lm's contours sqrt(crit p (1 - h) / h), its legend and its right-hand axis of the levels."""
    p = d.rank
    usr2 = ax.get_xlim()[1]
    hh = np.linspace(min(rlo, rhi / 100), usr2, 101)
    handle = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for crit in opts.cook_levels:
            cl = np.sqrt(crit * p * (1 - hh) / hh)
            gid = f"cook-{crit:g}"
            handle, = ax.plot(hh, cl, linestyle="--", color=GRAY62, gid=gid)
            ax.plot(hh, -cl, linestyle="--", color=GRAY62, gid=gid)
    ax.legend([handle], ["Cook's distance"], loc="lower left", frameon=False, labelcolor=GRAY62,
              fontsize=opts.fontsize * 0.9, handlelength=1.5)
    xmax = min(0.99, usr2)
    ymult = math.sqrt(p * (1 - xmax) / xmax)
    levels = list(opts.cook_levels)
    aty = [-math.sqrt(c) * ymult for c in reversed(levels)] + [math.sqrt(c) * ymult for c in levels]
    texts = [f"{c:.15g}" for c in reversed(levels)] + [f"{c:.15g}" for c in levels]
    lo, hi = ax.get_ylim()
    for y, t in zip(aty, texts):
        if lo <= y <= hi:
            ax.annotate(t, (1.0, y), xycoords=ax.get_yaxis_transform(), xytext=(2, 0), textcoords="offset points",
                        ha="left", va="center", color=GRAY62, fontsize=opts.fontsize * 0.75, gid="cook-level")


def _factor_values(d: LmDiagnostics) -> np.ndarray:
    """(data.matrix(mf) - 1) %*% ff: the factor level combination of each row, as plot.lm numbers them."""
    nlev = [len(lv) for _, lv, _ in d.factors]
    nf = len(nlev)
    ff = np.ones(1) if nf == 1 else np.cumprod([1] + nlev[:0:-1])[::-1].astype(float)
    codes = np.column_stack([c for _, _, c in d.factors]).astype(float)
    return (codes - 1) @ ff


def _factor_levels(ax: Any, d: LmDiagnostics, opts: PlotOptions, ylim: tuple[float, float]) -> bool:
    """plot.lm's "Constant Leverage" panel: residuals against the factor level combinations; False (a blank
    panel, R's message) without factors."""
    if not d.factors:
        warn(f"hat values (leverages) are all = {float(np.nanmean(d.hii)):.7g}\n and there are no factor predictors; "
             "no plot no. 5")
        ax.set_axis_off()
        return False
    if not opts.caption_given and len(opts.caption) >= 5:
        opts.caption = list(opts.caption)
        opts.caption[4] = CONSTANT_LEVERAGE
    nlev = [len(lv) for _, lv, _ in d.factors]
    nf = len(nlev)
    ff = [1.0] if nf == 1 else list(np.cumprod([1] + nlev[:0:-1])[::-1].astype(float))
    facval = _factor_values(d)
    _limits(ax, (-0.5, float(sum((k - 1) * f for k, f in zip(nlev, ff))) + 0.5), ylim)
    ax.set_xticks(ff[0] * (np.arange(1, nlev[0] + 1) - 0.5) - 0.5, d.factors[0][1])
    ax.annotate(f"{d.factors[0][0]} :", (-0.05, 0.0), xycoords="axes fraction", xytext=(0, -opts.fontsize * 1.4),
                textcoords="offset points", ha="left", va="top", fontsize=opts.fontsize)
    for v in ff[0] * np.arange(nlev[0] + 1) - 0.5:
        ax.axvline(v, color="gray", linestyle=(0, (4, 4)), gid="level")
    _points(ax, facval, d.rs, opts)
    ax.axhline(0.0, linestyle=":", color="gray", gid="zero")
    ax.set_xlabel("Factor Level Combinations")
    ax.set_ylabel(_std_label(d))
    return True


def _panel_cook_leverage(ax: Any, d: LmDiagnostics, opts: PlotOptions) -> None:
    """Plot 6, Cook's distance against h / (1 - h), with lines of equal standardized residual."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(d.hii >= 1, np.nan, d.hii / (1 - d.hii))
    _limits(ax, (0.0, float(np.nanmax(g))), (0.0, float(np.nanmax(d.cook)) * 1.025))
    _points(ax, g, d.cook, opts)
    ax.set_ylabel("Cook's distance")
    ax.set_xlabel(r"Leverage  $h_{ii}$")
    athat = pretty(*_frange(d.hii))
    xlim = ax.get_xlim()
    with np.errstate(divide="ignore"):
        ax.set_xticks(athat / (1 - athat), [f"{a:.15g}" for a in athat])
    ax.set_xlim(*xlim)  # R's axis() leaves par("usr") as it is; set_xticks would widen it to every tick
    p = d.rank
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.sqrt(p * d.cook / g)
    bval = pretty(*_frange(b), 5)
    x0, xmax = ax.get_xlim()
    y0, ymax = ax.get_ylim()
    strh = 0.035 * (ymax - y0)  # strheight(" "): about a line of text in a panel of the default size
    for bv in bval:
        bi2 = bv * bv
        if p * ymax > bi2 * xmax:
            xi = xmax + 0.01 * (xmax - x0)
            ax.axline((0.0, 0.0), slope=bi2, linestyle="--", color="black", linewidth=0.8, gid="cook-contour")
            ax.annotate(f"{bv:.15g}", (xi, bi2 * xi / p), ha="left", va="center", annotation_clip=False,
                        fontsize=opts.fontsize * 0.9, gid="cook-contour-label")
        else:
            yi = ymax - 1.5 * strh
            xi = p * yi / bi2
            ax.plot([0.0, xi], [0.0, yi], linestyle="--", color="black", linewidth=0.8, gid="cook-contour")
            ax.annotate(f"{bv:.15g}", (xi, ymax - 0.8 * strh), ha="center", va="center", annotation_clip=False,
                        fontsize=opts.fontsize * 0.9, gid="cook-contour-label")
    _caption(ax, opts, 6)
    if opts.id_n > 0:
        _text_id(ax, g, d.cook, _top(d.cook, opts.id_n), d.labels, opts)


PANELS = (_panel_residuals, _panel_qq, _panel_scale_location, _panel_cook, _panel_leverage, _panel_cook_leverage)


def panels_to_show(which: Any) -> list[int]:
    """plot.lm's ``which``: the panels 1..6 asked for, drawn in R's order (show[which] <- TRUE).

    Parameters
    ----------
    which : int or sequence of int

    Returns
    -------
    list of int
    """
    items = [which] if isinstance(which, (int, np.integer)) else which
    try:
        items = list(items)
    except TypeError:
        items = [items]
    bad = [w for w in items if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 1 <= w <= 6]
    if bad or not items or isinstance(which, str):
        raise OptionError(f"which must be panel numbers in 1:6 (R's plot.lm), e.g. which=(1, 2, 3, 5); got {which!r}")
    return sorted({int(w) for w in items})


def _axes(ax: Any, k: int) -> tuple[Any, list[Any]]:
    """The figure and one Axes per panel: new ones (a grid two wide) or those given."""
    if ax is None:
        plt = matplotlib_module()
        ncol = 1 if k == 1 else 2
        nrow = math.ceil(k / ncol)
        fig, grid = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.9 * nrow), squeeze=False)
        axes = list(grid.ravel())
        for extra in axes[k:]:
            extra.remove()
        return fig, axes[:k]
    axes = [ax] if hasattr(ax, "plot") else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != k or not all(hasattr(a, "plot") for a in axes):
        raise OptionError(f"ax must be one matplotlib Axes per panel: {k} for which={k} panel(s), got {len(axes)}")
    return axes[0].figure, axes


def draw_plot_lm(d: LmDiagnostics, which: Any, opts: PlotOptions, ax: Any = None,
                 sub_caption: str | None = None) -> Any:
    """R's plot.lm(fit, which): the panels asked for, in one figure.

    Parameters
    ----------
    d : LmDiagnostics
        The fit's residuals, leverages and Cook's distances.
    which : int or sequence of int
        Panels 1..6.
    opts : PlotOptions
        plot.lm's options.
    ax : matplotlib Axes, sequence of Axes or None
        Where to draw (one Axes per panel); None for a new figure.
    sub_caption : str or None
        The call under a single panel, or the figure's title for several; None for R's (the shortened call),
        "" for none.

    Returns
    -------
    matplotlib.figure.Figure
    """
    show = panels_to_show(which)
    if not 0 <= opts.id_n <= len(d.r):
        raise OptionError(f"id_n must be in 0..{len(d.r)} (the number of observations), not {opts.id_n}")
    fig, axes = _axes(ax, len(show))
    for k, a in zip(show, axes):
        PANELS[k - 1](a, d, opts)
    sub = d.sub_caption if sub_caption is None else sub_caption
    if sub:
        if len(axes) == 1:
            axes[0].annotate(sub, (0.5, 0.0), xycoords="axes fraction", xytext=(0, -2.6 * opts.fontsize - 6),
                             textcoords="offset points", ha="center", va="top", fontsize=opts.fontsize, gid="sub")
        else:
            fig.suptitle(sub, fontsize=opts.fontsize * 1.25, gid="sub")
    if ax is None:
        fig.tight_layout()
    return fig
