"""fit.plot() (R's plot.lm), lowess(), pretty() and tl.coefplot against R 4.2.2 (tests/fixtures/plots/make_plots.R).

Every panel of plot.lm is read back from the Figure's artists (found by their gid): the points, the lowess
smoother (panel.smooth), the zero line, qqline, Cook's distance bars and contours, the labelled points (their
names, where they sit and on which side of the point), the axis limits (R's par("usr")), captions and axis
titles, for an lm, a weighted lm with zero weights, a binomial and a poisson glm, at rtol 1e-9.
"""

from __future__ import annotations

import json
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.present.lowess import lowess, pretty
from torchlm.results.plotting import plot_lm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = FIXTURES / "plots"
R = json.loads((HERE / "plots.json").read_text())
RTOL = 1e-9
MTCARS = tl.datasets.load("mtcars")


def _fit(name: str):
    if name == "lm":
        return tl.lm("mpg ~ wt + hp", data=MTCARS)
    if name == "wlm":
        mt = read_exact_csv(HERE / "mtcars_weights.csv", index_col=0)
        mt.index.name = None
        return tl.lm("mpg ~ wt + hp", data=mt, weights=mt["w"].to_numpy())
    if name == "binomial":
        return tl.glm("am ~ hp + wt", data=MTCARS, family="binomial")
    dob = read_exact_csv(HERE / "dobson.csv")
    for c in ("outcome", "treatment"):
        dob[c] = pd.Categorical(dob[c].astype(int).astype(str))
    return tl.glm("counts ~ outcome + treatment", data=dob, family="poisson")


def _num(v) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def _close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), _num(want), rtol=RTOL, atol=1e-12)


def _lines(ax, gid: str):
    return [ln for ln in ax.get_lines() if ln.get_gid() == gid]


def _check_ids(ax, ref: dict) -> None:
    ids = [t for t in ax.texts if t.get_gid() == "id"]
    assert [t.get_text() for t in ids] == ref["labels"]
    _close([t.xy[0] for t in ids], ref["x"])
    _close([t.xy[1] for t in ids], ref["y"])
    side = {4: "left", 2: "right", 3: "center"}  # R's pos 4 puts the text right of the point: aligned on its left
    assert [t.get_ha() for t in ids] == [side[int(p)] for p in ref["pos"]]


def _check_common(ax, ref: dict, caption: str, smooth: bool = True) -> None:
    (pts,) = _lines(ax, "points")
    ok = ~np.isnan(_num(ref["x"])) & ~np.isnan(_num(ref["y"]))
    x, y = np.asarray(pts.get_xdata(), float), np.asarray(pts.get_ydata(), float)
    _close(x[ok], np.array(ref["x"], dtype=object)[ok])
    _close(y[ok], np.array(ref["y"], dtype=object)[ok])
    if smooth:
        (sm,) = _lines(ax, "smooth")
        _close(sm.get_xdata(), ref["smooth"]["x"])
        _close(sm.get_ydata(), ref["smooth"]["y"])
    _close(ax.get_xlim(), ref["usr"][:2])
    _close(ax.get_ylim(), ref["usr"][2:])
    assert ax.get_title() == caption
    assert ax.get_xlabel().replace("$h_{ii}$", "h[ii]") == ref["labs"]["xlab"]
    _check_ids(ax, ref["ids"])


FITS = list(R["fits"])


@pytest.fixture(scope="module", params=FITS)
def drawn(request):
    fit = _fit(request.param)
    fig = fit.plot(which=range(1, 7))
    yield request.param, fig, R["fits"][request.param]
    plt.close(fig)


def test_panel_residuals_vs_fitted(drawn):
    _, fig, ref = drawn
    ax = fig.axes[0]
    _check_common(ax, ref["p1"], R["captions"][0])
    assert ax.get_ylabel() == ref["p1"]["labs"]["ylab"]
    (zero,) = _lines(ax, "zero")
    assert list(zero.get_ydata()) == [0, 0] and zero.get_linestyle() == ":"


def test_panel_qq(drawn):
    _, fig, ref = drawn
    ax, p = fig.axes[1], ref["p2"]
    _check_common(ax, p, R["captions"][1], smooth=False)
    assert ax.get_ylabel() == p["labs"]["ylab"]
    (qq,) = _lines(ax, "qqline")
    intercept, slope = p["qqline"]
    xs = np.asarray(qq.get_xdata(), float)
    _close(qq.get_ydata(), intercept + slope * xs)


def test_panel_scale_location(drawn):
    _, fig, ref = drawn
    ax, p = fig.axes[2], ref["p3"]
    _check_common(ax, p, R["captions"][2])
    want = p["labs"]["ylab"].removeprefix("sqrt(abs(").removesuffix("))")
    assert ax.get_ylabel() == r"$\sqrt{|\mathrm{%s}|}$" % want.replace(" ", r"\ ")


def test_panel_cooks_distance(drawn):
    _, fig, ref = drawn
    ax, p = fig.axes[3], ref["p4"]
    (bars,) = [c for c in ax.collections if c.get_gid() == "cook"]
    segs = np.array(bars.get_segments())
    _close(segs[:, 0, 0], p["x"])
    _close(segs[:, 1, 1], p["y"])
    assert np.all(segs[:, 0, 1] == 0)
    _close(ax.get_xlim(), p["usr"][:2])
    _close(ax.get_ylim(), p["usr"][2:])
    assert ax.get_title() == R["captions"][3]
    assert (ax.get_xlabel(), ax.get_ylabel()) == (p["labs"]["xlab"], p["labs"]["ylab"])
    _check_ids(ax, p["ids"])


def test_panel_residuals_vs_leverage(drawn):
    _, fig, ref = drawn
    ax, p = fig.axes[4], ref["p5"]
    _check_common(ax, p, R["captions"][4])
    assert ax.get_ylabel() == p["labs"]["ylab"]
    for gid, key in (("cook-0.5", "cook05"), ("cook-1", "cook1")):
        up, down = _lines(ax, gid)
        _close(up.get_xdata(), p["hh"])
        _close(up.get_ydata(), p[key])
        _close(-np.asarray(down.get_ydata(), float), p[key])
    levels = [t for t in ax.texts if t.get_gid() == "cook-level"]
    lo, hi = ax.get_ylim()
    want = [a for a in p["aty"] if lo <= a <= hi]
    _close([t.xy[1] for t in levels], want)
    assert ax.get_legend().get_texts()[0].get_text() == "Cook's distance"


def test_panel_cook_vs_leverage(drawn):
    _, fig, ref = drawn
    ax, p = fig.axes[5], ref["p6"]
    _check_common(ax, p, "Cook's dist vs Leverage  $h_{ii}\\,/\\,(1 - h_{ii})$")
    assert ax.get_ylabel() == p["labs"]["ylab"]
    _close(ax.get_xticks(), p["at"])
    _close([float(t.get_text()) for t in ax.get_xticklabels()], p["athat"])
    labels = [t for t in ax.texts if t.get_gid() == "cook-contour-label"]
    _close([float(t.get_text()) for t in labels], p["bval"])


def test_figure_title_is_rs_sub_caption(drawn):
    _, fig, ref = drawn
    assert fig._suptitle.get_text() == ref["sub_caption"]
    assert len(fig.axes) == 6


def test_default_panels_and_single_panel():
    fit = _fit("lm")
    fig = fit.plot()
    assert [a.get_title() for a in fig.axes] == [R["captions"][k] for k in (0, 1, 2, 4)]
    plt.close(fig)
    fig, ax = plt.subplots()
    out = fit.plot(which=1, ax=ax, id_n=1)
    assert out is fig
    ids = [t.get_text() for t in ax.texts if t.get_gid() == "id"]
    assert ids == R["fits"]["lm"]["p1"]["ids"]["labels"][:1]
    sub = [t for t in ax.texts if t.get_gid() == "sub"]
    assert [t.get_text() for t in sub] == [R["fits"]["lm"]["sub_caption"]]
    plt.close(fig)


def test_weighted_fit_drops_zero_weights():
    ref = R["fits"]["wlm"]
    fig = _fit("wlm").plot(which=4)
    ax = fig.axes[0]
    assert len(ref["labels"]) == 30
    (bars,) = [c for c in ax.collections if c.get_gid() == "cook"]
    assert len(bars.get_segments()) == 30
    plt.close(fig)


# --- lowess and pretty ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", R["lowess"], ids=lambda c: c["name"])
def test_lowess_matches_r(case):
    delta = case["delta"][0]
    x, y = lowess(case["x"], case["y"], f=case["f"][0], iter=int(case["iter"][0]), delta=delta)
    np.testing.assert_array_equal(x, case["out_x"])
    np.testing.assert_allclose(y, case["out_y"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", R["pretty"], ids=lambda c: f"{c['lo'][0]}-{c['up'][0]}")
def test_pretty_matches_r(case):
    np.testing.assert_allclose(pretty(case["lo"][0], case["up"][0]), case["out"], rtol=1e-15, atol=0)


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", [7, 0, "a", (1, 2.5), True, ()])
def test_bad_which(which):
    with pytest.raises(tl.errors.OptionError, match="which must be panel numbers in 1:6"):
        _fit("lm").plot(which=which)


def test_bad_id_n_ax_labels():
    fit = _fit("lm")
    with pytest.raises(tl.errors.OptionError, match="id_n must be in 0..32"):
        fit.plot(id_n=40)
    with pytest.raises(tl.errors.OptionError, match="one matplotlib Axes per panel"):
        fig, ax = plt.subplots()
        fit.plot(which=(1, 2), ax=ax)
    plt.close("all")
    with pytest.raises(tl.errors.OptionError, match="one name per plotted observation"):
        fit.plot(labels=["a", "b"])


def test_fit_without_plots():
    nls = tl.nls("y ~ a * exp(b * x)", data=pd.DataFrame({"x": np.arange(8.0), "y": 2 * np.exp(0.3 * np.arange(8.0))
                                                          + np.array([.1, -.2, .15, 0, -.1, .2, -.05, .1])}),
                 start={"a": 1.0, "b": 0.2})
    with pytest.raises(tl.errors.ModelInputError, match="plot.lm diagnostics of an lm or glm"):
        plot_lm(nls)


def test_missing_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(tl.errors.OptionError, match=r"pip install torchlm-stats\[plot\]"):
        _fit("lm").plot()
    with pytest.raises(tl.errors.OptionError, match=r"pip install torchlm-stats\[plot\]"):
        tl.coefplot(_fit("lm"))


def test_constant_leverage_panel():
    ref = R["constant_leverage"]
    fit = tl.aov("weight ~ group", data=tl.datasets.load("PlantGrowth"))
    fig = fit.plot(which=5)
    ax = fig.axes[0]
    (pts,) = _lines(ax, "points")
    _close(pts.get_xdata(), ref["x"])
    _close(pts.get_ydata(), ref["y"])
    _close(ax.get_xlim(), ref["usr"][:2])
    _close(ax.get_ylim(), ref["usr"][2:])
    _close(ax.get_xticks(), ref["at"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ref["levels"]
    _close([ln.get_xdata()[0] for ln in _lines(ax, "level")], ref["vlines"])
    assert ax.get_title() == "Constant Leverage:\n Residuals vs Factor Levels"
    assert ax.get_xlabel() == "Factor Level Combinations"
    assert [t.get_text() for t in ax.texts if t.get_gid() == "id"] == [str(int(i)) for i in ref["ids"]]
    plt.close(fig)


# --- tl.coefplot ----------------------------------------------------------------------------------
def _intervals(ax, name: str):
    (pts,) = _lines(ax, f"estimate:{name}")
    (bars,) = [c for c in ax.collections if c.get_gid() == f"interval:{name}"]
    segs = np.array(bars.get_segments())
    return np.asarray(pts.get_xdata(), float), segs[:, 0, 0], segs[:, 1, 0], np.asarray(pts.get_ydata(), float)


def test_coefplot_one_fit_against_r():
    ref = R["coefplot"]["lm"]
    fig = tl.coefplot(_fit("lm"), level=0.9, drop_intercept=False)
    ax = fig.axes[0]
    est, lo, hi, y = _intervals(ax, "Model 1")
    _close(est, ref["estimate"])
    _close(lo, ref["lower"])
    _close(hi, ref["upper"])
    # torchlm's default names: "Intercept" for R's "(Intercept)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [t.strip("()") for t in ref["terms"]]
    np.testing.assert_array_equal(y, [0, 1, 2])
    plt.close(fig)


def test_coefplot_several_fits_dodged():
    c = R["coefplot"]
    fig = tl.coefplot({"OLS": _fit("lm"), "weighted": _fit("wlm")})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["OLS", "weighted"]
    plt.close(fig)
    fig = tl.coefplot([_fit("lm"), _fit("binomial")], names=["lm", "logit"], level=0.9)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["wt", "hp"]
    est, lo, hi, y_lm = _intervals(ax, "lm")
    _close(lo, c["lm"]["lower"][1:])
    est, lo, hi, y_glm = _intervals(ax, "logit")  # the glm's terms are hp, wt: placed at their rows
    _close(est, c["binomial"]["estimate"][1:])
    _close(hi, c["binomial"]["upper"][1:])
    np.testing.assert_allclose(y_glm, [1.125, 0.125])
    np.testing.assert_allclose(y_lm, [-0.125, 0.875])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lm", "logit"]
    plt.close(fig)


def test_coefplot_vcov():
    ref = R["coefplot"]["lm_hc1"]
    fig = tl.coefplot(_fit("lm"), vcov="HC1")
    est, lo, hi, _ = _intervals(fig.axes[0], "Model 1")
    _close(lo, ref["lower"][1:])
    _close(hi, ref["upper"][1:])
    plt.close(fig)


def test_coefplot_bad_input():
    with pytest.raises(tl.errors.ModelInputError, match="fits with coef"):
        tl.coefplot("mpg ~ wt")
    with pytest.raises(tl.errors.OptionError, match="one name per fit"):
        tl.coefplot([_fit("lm")], names=["a", "b"])
    with pytest.raises(tl.errors.OptionError, match="level must be a coverage"):
        tl.coefplot(_fit("lm"), level=95)
    with pytest.raises(tl.errors.ModelInputError, match="no coefficients"):
        tl.coefplot(tl.lm("mpg ~ 1", data=MTCARS))
