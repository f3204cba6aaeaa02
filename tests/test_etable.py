"""tl.etable: several fits side by side in modelsummary's layout, with R's numbers and R's stars.

References: tests/fixtures/etable/r_etable.json, written by make_etable.R (R 4.2.2, MASS, sandwich). modelsummary is
not in Debian, so R gives the numbers (coef, the SEs of vcov / vcovHC / vcovCL, coeftest's p-values, nobs, R²,
AIC, BIC, logLik, dispersion, theta, sigma) and the cells themselves: sprintf("%.3f") of each estimate followed by
printCoefmat's stars, sprintf("(%.3f)") of each standard error. The layout (row order, parentheses, blank cells,
the rows of statistics, the four renderings) is checked against hand-made expectations.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
from torchlm.models.families import Gamma
from torchlm.present import rformat as rf
from torchlm.present.etable import signif_stars, stars_legend

FIX = json.loads((Path(__file__).parent / "fixtures" / "etable" / "r_etable.json").read_text())
R = {c["id"]: c for c in FIX["cases"]}
MTCARS = tl.datasets.load("mtcars")
QUINE = tl.datasets.load("quine")
PUR = tl.datasets.load("Puromycin")
TREATED = PUR[PUR["state"] == "treated"].reset_index(drop=True)
RTOL = 1e-9


def poisson_nll(p, d):
    eta = p["b0"] + p["b1"] * d["wt"]
    return (torch.exp(eta) - d["carb"] * eta + torch.lgamma(d["carb"] + 1)).sum()


FITS = {
    "lm1": lambda: tl.lm("mpg ~ wt", MTCARS, names="R"),
    "lm2": lambda: tl.lm("mpg ~ wt + hp", MTCARS, names="R"),
    "lm3": lambda: tl.lm("mpg ~ wt + hp + factor(cyl)", MTCARS, names="R"),
    "glm_binomial1": lambda: tl.glm("am ~ wt", MTCARS, family="binomial", names="R"),
    "glm_binomial2": lambda: tl.glm("am ~ wt + hp", MTCARS, family="binomial", names="R"),
    "glm_poisson": lambda: tl.glm("carb ~ wt", MTCARS, family="poisson", names="R"),
    "glm_gamma": lambda: tl.glm("mpg ~ wt", MTCARS, family=Gamma(link="log"), names="R"),
    "glm_nb": lambda: tl.glm_nb("Days ~ Sex + Age", QUINE, names="R"),
    "nls": lambda: tl.nls("rate ~ Vm * conc / (K + conc)", TREATED, start={"Vm": 200, "K": 0.1}),
}
# (fixture id, fit, vcov=)
CASES = [(k, k, None) for k in FITS] + [("lm2_HC3", "lm2", "HC3"), ("lm2_cluster_cyl", "lm2", {"cluster": "cyl"}),
                                        ("glm_binomial2_HC0", "glm_binomial2", "HC0")]
STAT_KEYS = {"nobs": "N", "r2": "R²", "adj_r2": "Adj. R²", "aic": "AIC", "bic": "BIC", "loglik": "logLik",
             "dispersion": "Dispersion", "theta": "Theta", "sigma": "Sigma"}
ALL_STATS = tuple(STAT_KEYS)


@pytest.fixture(scope="module")
def fits():
    return {k: f() for k, f in FITS.items()}


def rows_of(df, statistic):
    return df[(df["part"] == "estimates") & (df["statistic"] == statistic)].set_index("term")


def gof(df):
    return df[df["part"] == "gof"].set_index("term")


def number(cell):
    return float(cell.strip("()*. ") if not cell.endswith(".") else cell.rstrip(".").strip("()*"))


@pytest.mark.parametrize("rid,key,vcov", CASES, ids=[c[0] for c in CASES])
def test_cells_are_rs(fits, rid, key, vcov):
    """Each estimate cell is R's sprintf('%.3f') with printCoefmat's stars, each SE cell R's '(%.3f)'."""
    r = R[rid]
    df = tl.etable([fits[key]], vcov=vcov, stats=ALL_STATS)
    assert list(rows_of(df, "estimate").index) == r["names"]
    assert list(rows_of(df, "estimate")["(1)"]) == r["est_cells"]
    assert list(rows_of(df, "std.error")["(1)"]) == r["se_cells"]
    g = gof(df)["(1)"]
    assert g["N"] == str(r["nobs"])
    for k, label in STAT_KEYS.items():
        if k in r and k != "nobs" and not (k == "dispersion" and rid.startswith(("glm_binomial", "glm_poisson",
                                                                                   "glm_nb"))):
            assert g[label] == f"{r[k]:.3f}", label
    # R's dispersion of binomial, poisson and glm.nb fits is fixed at 1, not estimated: no row
    assert ("Dispersion" in g.index) == (rid == "glm_gamma")
    assert ("R²" in g.index) == rid.startswith("lm")
    assert ("Theta" in g.index) == (rid == "glm_nb")


@pytest.mark.parametrize("rid,key,vcov", CASES, ids=[c[0] for c in CASES])
def test_numbers_are_rs(fits, rid, key, vcov):
    """With 15 decimals the table carries R's numbers to rtol 1e-9."""
    r = R[rid]
    df = tl.etable({"m": fits[key]}, vcov=vcov, digits=15, stars=False, stats=ALL_STATS)
    np.testing.assert_allclose([number(c) for c in rows_of(df, "estimate")["m"]], r["coef"], rtol=RTOL)
    np.testing.assert_allclose([number(c) for c in rows_of(df, "std.error")["m"]], r["se"], rtol=RTOL)
    g = gof(df)["m"]
    for k in ("aic", "bic", "loglik", "r2", "adj_r2", "sigma", "theta"):
        if k in r:
            np.testing.assert_allclose(float(g[STAT_KEYS[k]]), r[k], rtol=RTOL)
    df = tl.etable({"m": fits[key]}, vcov=vcov, digits=15, stars=False, statistic="p.value")
    np.testing.assert_allclose([number(c) for c in rows_of(df, "p.value")["m"]], r["p"], rtol=1e-6, atol=1e-12)


def test_estimates_of_mle_in_a_table():
    """tl.mle's estimates (the exact MLE) against R's glm at its stopping point: the same table at 3 decimals."""
    est = tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0}, data=MTCARS)
    r = R["glm_poisson"]
    df = tl.etable([est], stats=ALL_STATS)
    assert list(rows_of(df, "estimate").index) == ["b0", "b1"]
    assert list(rows_of(df, "estimate")["(1)"]) == r["est_cells"]
    assert list(rows_of(df, "std.error")["(1)"]) == r["se_cells"]
    g = gof(df)["(1)"]
    assert g["N"] == "32" and g["AIC"] == f"{r['aic']:.3f}" and g["logLik"] == f"{r['loglik']:.3f}"
    # R's glm stops by its deviance rule a little short of the optimum
    df = tl.etable([est], digits=12, stars=False)
    np.testing.assert_allclose([number(c) for c in rows_of(df, "estimate")["(1)"]], r["coef"], rtol=1e-6)


def test_stars_at_rs_cut_points():
    assert [signif_stars(p) for p in FIX["star_p"]] == FIX["star_symbols"]
    assert stars_legend() == rf.SIGNIF_LEGEND
    assert signif_stars(float("nan")) == ""
    cuts = (("***", 0.001), ("**", 0.01), ("*", 0.05))  # pyfixest's lines
    assert [signif_stars(p, cuts) for p in (0.0005, 0.005, 0.05, 0.07)] == ["***", "**", "*", ""]


def test_layout(fits):
    """Rows are the union in first-appearance order, each SE in parentheses below its estimate, blank where absent."""
    hp = tl.lm("mpg ~ hp", MTCARS, names="R")
    df = tl.etable([hp, fits["lm3"]], stats=("nobs", "r2"))
    assert list(df.columns) == ["part", "term", "statistic", "(1)", "(2)"]
    terms = ["(Intercept)", "hp", "wt", "factor(cyl)6", "factor(cyl)8"]
    assert list(df["term"]) == [t for t in terms for _ in (0, 1)] + ["N", "R²"]
    assert list(df["statistic"]) == ["estimate", "std.error"] * 5 + ["", ""]
    assert list(df["part"]) == ["estimates"] * 10 + ["gof"] * 2
    est, se = rows_of(df, "estimate"), rows_of(df, "std.error")
    assert list(est.loc[["wt", "factor(cyl)6", "factor(cyl)8"], "(1)"]) == ["", "", ""]
    assert list(se.loc[["wt", "factor(cyl)6", "factor(cyl)8"], "(1)"]) == ["", "", ""]
    assert all(c.startswith("(") and c.endswith(")") for c in se["(2)"])
    assert est.loc["factor(cyl)8", "(2)"] == R["lm3"]["est_cells"][4]  # p = 0.154: no star
    assert df.attrs["notes"] == [rf.SIGNIF_LEGEND, "Standard errors in parentheses."]
    assert "Std. Errors" not in set(df["term"])


def test_vcov_per_model_and_its_row(fits):
    lm2 = fits["lm2"]
    df = tl.etable([lm2, lm2, lm2], vcov=[None, "HC3", {"cluster": "cyl"}])
    se = rows_of(df, "std.error")
    assert list(se["(1)"]) == R["lm2"]["se_cells"]
    assert list(se["(2)"]) == R["lm2_HC3"]["se_cells"]
    assert list(se["(3)"]) == R["lm2_cluster_cyl"]["se_cells"]
    assert list(gof(df).loc["Std. Errors"].iloc[2:]) == ["IID", "HC3", "by: cyl"]
    assert df["term"].iloc[-1] == "Std. Errors"
    one = tl.etable([lm2, fits["lm1"]], vcov="HC3")
    assert list(rows_of(one, "std.error")["(1)"]) == R["lm2_HC3"]["se_cells"]
    assert list(gof(one).loc["Std. Errors"].iloc[2:]) == ["HC3", "HC3"]
    assert tl.etable([lm2], vcov={"type": "HC1", "cluster": ["cyl", "gear"]})["(1)"].iloc[-1] == "HC1 by: cyl + gear"
    assert tl.etable([lm2], vcov=lm2.vcov("HC3"))["(1)"].iloc[-1] == "user"


def test_keep_drop_rename(fits):
    lm3 = fits["lm3"]
    kept = tl.etable([lm3], keep=["hp", "wt"], stats=())
    assert list(rows_of(kept, "estimate").index) == ["hp", "wt"]  # in the order of the patterns
    assert list(rows_of(tl.etable([lm3], keep="(Intercept)"), "estimate").index) == ["(Intercept)"]
    dropped = tl.etable([lm3], drop=r"^factor\(cyl\)")
    assert list(rows_of(dropped, "estimate").index) == ["(Intercept)", "wt", "hp"]
    assert list(rows_of(tl.etable([lm3], drop="factor(cyl)6"), "estimate").index) == [
        "(Intercept)", "wt", "hp", "factor(cyl)8"]
    a, b = tl.lm("mpg ~ hp", MTCARS, names="R"), tl.lm("mpg ~ disp", MTCARS, names="R")
    merged = tl.etable([a, b], coef_names={"hp": "size", "disp": "size"}, stats=())
    est = rows_of(merged, "estimate")
    assert list(est.index) == ["(Intercept)", "size"]
    assert est.loc["size", "(1)"].startswith(f"{a.coef()['hp']:.3f}")
    assert est.loc["size", "(2)"].startswith(f"{b.coef()['disp']:.3f}")
    assert list(rows_of(tl.etable([a], coef_names=str.upper), "estimate").index) == ["(INTERCEPT)", "HP"]
    with pytest.raises(tl.OptionError, match="one name"):
        tl.etable([tl.lm("mpg ~ hp + disp", MTCARS)], coef_names={"hp": "size", "disp": "size"})
    with pytest.raises(tl.OptionError, match="regular expression"):
        tl.etable([a], keep="(hp")


def test_beside_and_other_statistics(fits):
    r = R["lm2"]
    beside = tl.etable([fits["lm2"]], se_position="beside", stats=())
    assert list(beside["(1)"]) == [f"{e} {s}" for e, s in zip(r["est_cells"], r["se_cells"])]
    assert set(beside["statistic"]) == {"estimate"}
    t = rows_of(tl.etable([fits["lm2"]], statistic="statistic"), "statistic")["(1)"]
    assert list(t) == [f"({b / s:.3f})" for b, s in zip(r["coef"], r["se"])]
    plain = tl.etable([fits["lm2"]], stars=False, digits=2)
    assert list(rows_of(plain, "estimate")["(1)"]) == [f"{b:.2f}" for b in r["coef"]]
    assert plain.attrs["notes"] == ["Standard errors in parentheses."]
    custom = tl.etable([fits["lm3"]], stars={"+": 0.1, "*": 0.05}, notes=["Data: mtcars."])
    assert rows_of(custom, "estimate").loc["hp", "(1)"].endswith("+")  # p = 0.064
    assert custom.attrs["notes"][0] == "Signif. codes:  0 \u2018*\u2019 0.05 \u2018+\u2019 0.1 \u2018 \u2019 1"
    assert custom.attrs["notes"][-1] == "Data: mtcars."


def test_aliased_coefficient_is_na():
    fit = tl.lm("mpg ~ wt + I(2 * wt)", MTCARS, names="R")
    df = tl.etable([fit], stats=())
    assert list(df["(1)"])[-2:] == ["NA", ""]


def test_markdown():
    a, b = tl.lm("mpg ~ wt", MTCARS, names="R"), tl.lm("mpg ~ wt + hp", MTCARS, names="R")
    md = tl.etable([a, b], "md", stats=("nobs",), coef_names={"hp": "h|p_x"})
    lines = md.split("\n")
    assert lines[0].split("|")[1:-1] == ["             ", "    (1)    ", "    (2)    "]
    assert lines[1] == "|:------------|:---------:|:---------:|"
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:9]]
    assert cells[0] == ["(Intercept)", R["lm1"]["est_cells"][0], R["lm2"]["est_cells"][0]]
    assert cells[1] == ["", R["lm1"]["se_cells"][0], R["lm2"]["se_cells"][0]]
    assert cells[4] == ["h\\|p\\_x", "", R["lm2"]["est_cells"][2]]
    assert cells[6] == ["N", "32", "32"]
    assert lines[10].startswith("Signif. codes:  0 \u2018\\*\\*\\*\u2019 0.001")
    assert len({len(line) for line in lines[:9]}) == 1  # columns padded to one width


def test_latex(fits):
    tex = tl.etable([fits["lm1"], fits["glm_binomial1"]], "tex", stats=("nobs", "r2", "aic"),
                    coef_names={"wt": "weight_1000 & 50%"})
    lines = tex.strip().split("\n")
    assert lines[:4] == ["\\begin{tabular}{lcc}", "\\toprule", " & (1) & (2) \\\\", "\\midrule"]
    assert lines[4] == "(Intercept) & 37.285$^{***}$ & 12.040$^{**}$ \\\\"
    assert lines[5] == " & (1.878) & (4.510) \\\\"
    assert lines[6].startswith("weight\\_1000 \\& 50\\% & -5.344$^{***}$")
    assert lines[8] == "\\midrule" and lines[9] == "N & 32 & 32 \\\\"
    assert lines[10] == f"$R^2$ & {R['lm1']['r2']:.3f} &  \\\\"
    assert lines[12] == "\\bottomrule" and lines[-1] == "\\end{tabular}"
    assert lines[13].startswith("\\multicolumn{3}{l}{\\footnotesize Signif. codes:")


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.tags, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_html(fits):
    page = tl.etable([fits["lm1"], fits["lm2"]], "html", stats=("nobs",), coef_names={"hp": "<hp & co>"})
    assert isinstance(page, str) and page._repr_html_() == page
    assert page.startswith("<table class='torchlm-etable'") and "&lt;hp &amp; co&gt;" in page
    p = _Cells()
    p.feed(page)
    assert p.tags.count("tbody") == 2 and "tfoot" in p.tags
    assert p.rows[0] == ["", "(1)", "(2)"]
    assert p.rows[1] == ["(Intercept)", R["lm1"]["est_cells"][0], R["lm2"]["est_cells"][0]]
    assert p.rows[2] == ["", R["lm1"]["se_cells"][0], R["lm2"]["se_cells"][0]]
    assert p.rows[5] == ["<hp & co>", "", R["lm2"]["est_cells"][2]]
    assert p.rows[7] == ["N", "32", "32"]
    assert p.rows[8] == [rf.SIGNIF_LEGEND]


def test_every_kind_of_fit_in_one_table(fits):
    est = tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0}, data=MTCARS)
    models = [fits[k] for k in ("lm2", "glm_binomial2", "glm_gamma", "glm_nb", "nls")] + [est]
    df = tl.etable(models)
    g = gof(df)
    assert list(g.index) == ["N", "R²", "Adj. R²", "AIC", "logLik", "Dispersion", "Theta"]
    assert list(g.loc["N"].iloc[2:]) == ["32", "32", "32", "146", "12", "32"]
    assert [c != "" for c in g.loc["R²"].iloc[2:]] == [True, False, False, False, False, False]
    assert [c != "" for c in g.loc["Dispersion"].iloc[2:]] == [False, False, True, False, False, False]
    assert g.loc["Theta", "(4)"] == f"{R['glm_nb']['theta']:.3f}"
    for kind in ("md", "tex", "html"):
        assert "Vm" in tl.etable(models, kind)
    assert isinstance(df, pd.DataFrame) and df.map(lambda c: isinstance(c, str)).all().all()


@pytest.mark.parametrize("call,match", [
    (lambda f: tl.etable([f], "xlsx"), "type must be one of"),
    (lambda f: tl.etable([f], digits=-1), "digits"),
    (lambda f: tl.etable([f], digits=2.5), "digits"),
    (lambda f: tl.etable([f, f], vcov=["HC3"]), "one covariance per model"),
    (lambda f: tl.etable([]), "at least one"),
    (lambda f: tl.etable([f, "mpg ~ wt"]), "not str"),
    (lambda f: tl.etable([f], stats=("nobs", "rsq")), "unknown stats"),
    (lambda f: tl.etable([f], stats="nobs"), "sequence of names"),
    (lambda f: tl.etable([f], stars="yes"), "stars must be"),
    (lambda f: tl.etable([f], statistic="conf.int"), "statistic must be"),
    (lambda f: tl.etable([f], se_position="above"), "se_position"),
    (lambda f: tl.etable([f], keep=3), "keep must be"),
    (lambda f: tl.etable([f], coef_names=["a"]), "coef_names must be"),
    (lambda f: tl.etable([f], vcov="HC9"), "unknown vcov type"),
])
def test_bad_arguments(fits, call, match):
    with pytest.raises(tl.OptionError, match=match):
        call(fits["lm1"])
