"""tl.feols / tl.fepois / tl.feglm against R (lm / glm with the dummies, sandwich) and pyfixest (fixest's ssc)."""

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest
import torch

import torchlm as tl
from torchlm.errors import DataError, FormulaError, OptimumWarning, OptionError, UnknownVariableError
from torchlm.solvers import absorb
from torchlm.solvers.absorb import Absorber

HERE = pathlib.Path(__file__).parent / "fixtures" / "fixest"
R = json.loads((HERE / "fixest.json").read_text())
PANEL = pd.read_csv(HERE / "panel.csv")
FULL = {"fixef_K": "full"}


def close(a, b, rtol=1e-9):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=0)


# --- R: lm with the dummies ---------------------------------------------------------------------
@pytest.mark.parametrize("case, formula, kw, slopes", [
    ("one_fe", "y ~ x1 + x2 | firm", {}, ["x1", "x2"]),
    ("two_fe", "y ~ x1 + x2 | firm + year", {}, ["x1", "x2"]),
    ("two_fe_w", "y ~ x1 + x2 | firm + year", {"weights": "w"}, ["x1", "x2"]),
    ("factor_slope", "y ~ x1 + C(g) | firm", {}, ["x1", "C(g)[T.b]", "C(g)[T.c]"]),
    # R's fit is on the rows without the singleton firms; cells of firm^year alone stay (as in R's lm)
    ("combined", "y ~ x1 + x2 | firm^year", {"fixef_rm": "none", "subset": "firm <= 25"}, ["x1", "x2"]),
    ("slope_by_g", "y ~ x1 + x1:C(g) | firm", {}, None),
    ("no_singletons", "y ~ x1 + x2 | firm + year", {"fixef_rm": "none"}, ["x1", "x2"]),
    ("vs_one", "y ~ x1 | firm[x2]", {}, ["x1"]),
    ("vs_two_w", "y ~ x1 | firm[x2] + year", {"weights": "w"}, ["x1"]),
    ("vs_only", "y ~ x1 | year + firm[[x2]]", {}, ["x1"]),
])
def test_feols_equals_lm_with_dummies(case, formula, kw, slopes):
    ref = R[case]
    fit = tl.feols(formula, PANEL, **kw)
    b = fit.coef() if slopes is None else fit.coef()[slopes]
    close(b.to_numpy(), ref["coef"])
    assert fit.nobs == ref["n"]
    if case == "no_singletons":
        # the singleton firms 26 and 27 are the only rows of year 2009: R's QR finds that redundancy, fixest's K
        # (levels less one per extra effect, fixef.force_exact = FALSE) does not; fixest's SEs differ from lm's
        return
    sel = list(b.index)
    close(fit.std_errors("iid")[sel], ref["iid"])
    close(fit.std_errors("hetero", ssc=FULL)[sel], ref["hetero"])
    if "cl_firm" in ref:
        close(fit.std_errors({"CRV1": "firm"}, ssc=FULL)[sel], ref["cl_firm"])


def test_feols_clusters_and_r2_as_r():
    one = tl.feols("y ~ x1 + x2 | firm", PANEL)
    close(one.std_errors(cluster="year", ssc=FULL), R["one_fe"]["cl_year"])  # a cluster that is not an effect
    two = tl.feols("y ~ x1 + x2 | firm + year", PANEL)
    close(two.std_errors("twoway", ssc={"fixef_K": "full", "cluster_df": "conventional"}), R["two_fe"]["cl_two"])
    close(two.r2, R["two_fe"]["r2"][0])


def test_collinear_slope_is_removed_and_reported():
    fit = tl.feols("y ~ x1 + xc + x2 | firm", PANEL)
    assert fit.collinear == ["xc"] and np.isnan(fit.coef()["xc"])
    close(fit.coef()[["x1", "x2"]], R["collinear"]["coef"])
    close(fit.std_errors("iid")[["x1", "x2"]], R["collinear"]["iid"])
    assert "The variable 'xc' has been removed because of collinearity." in str(fit.summary())


def test_singletons_removed_and_reported():
    fit = tl.feols("y ~ x1 + x2 | firm + year", PANEL)
    assert fit.n_singletons == 3 and fit.nobs == 400
    assert "NOTE: 3 fixed-effect singletons removed." in str(fit.summary())


@pytest.mark.parametrize("case, formula, kw", [
    ("pois_one", "cnt ~ x1 + x2 | firm", {}),
    ("pois_two_offset", "cnt ~ x1 + x2 | firm + year", {"offset": "log(expo)"}),
])
def test_fepois_equals_glm_with_dummies(case, formula, kw):
    ref = R[case]
    fit = tl.fepois(formula, PANEL, **kw)
    close(fit.coef(), ref["coef"])
    assert fit.nobs == ref["n"]
    close(fit.std_errors("iid", ssc={"adj": False}), ref["iid"], rtol=1e-8)
    close(fit.fit.deviance, ref["deviance"][0])
    if "hetero" in ref:
        close(fit.std_errors("hetero", ssc={"adj": False}), ref["hetero"], rtol=1e-8)
        # sandwich's vcovCL(type = "HC0", cadjust = TRUE): G / (G - 1) only
        close(fit.std_errors({"CRV1": "firm"}, ssc={"adj": False}), ref["cl_firm"], rtol=1e-8)


def test_feglm_binomial_drops_perfectly_fitted_levels():
    d = PANEL.assign(hi=(PANEL.cnt > 1).astype(float))
    fit = tl.feglm("hi ~ x1 + x2 | firm", d, family="binomial")
    ref = R["logit_one"]
    assert fit.nobs == ref["n"] and fit.n_removed == ref["dropped"][0]
    close(fit.coef(), ref["coef"])
    close(fit.std_errors("iid", ssc={"adj": False}), ref["iid"], rtol=1e-8)


# --- pyfixest: fixest's small-sample conventions ---------------------------------------------------
PF = pf.get_data()
PFP = pf.get_data(model="Fepois")


@pytest.mark.parametrize("formula", ["Y ~ X1 + X2 | f1", "Y ~ X1 + X2 | f1 + f2", "Y ~ X1 + X2 | f1^f2",
                                     "Y ~ X1 | f1 + f2 + f3"])
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "f1"}, {"CRV1": "f1 + f2"}])
def test_feols_equals_pyfixest(formula, vcov):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols(formula, data=PF, vcov=vcov, fixef_tol=1e-14)
    fit = tl.feols(formula, PF, vcov=vcov)
    close(fit.coef(), ref.coef(), rtol=1e-8)
    close(fit.std_errors(), ref.se(), rtol=1e-8)
    # pyfixest's p-values are 1 - cdf: 0 below 1e-16
    np.testing.assert_allclose(fit.coef_table()["Pr(>|t|)"], ref.pvalue(), rtol=1e-6, atol=1e-14)
    close(fit.confint().to_numpy(), ref.confint().to_numpy(), rtol=1e-8)
    assert fit.nobs == ref._N


def test_feols_weights_r2_and_fixef_equal_pyfixest():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.feols("Y ~ X1 + X2 | f1 + f2", data=PF, weights="weights", vcov={"CRV1": "f1"}, fixef_tol=1e-14)
        fx = ref.fixef(atol=1e-14, btol=1e-14)
    fit = tl.feols("Y ~ X1 + X2 | f1 + f2", PF, weights="weights")
    close(fit.coef(), ref.coef(), rtol=1e-8)
    close(fit.std_errors(), ref.se(), rtol=1e-8)
    for ours, theirs in ((fit.r2, ref._r2), (fit.adj_r2, ref._adj_r2), (fit.within_r2, ref._r2_within),
                         (fit.adj_within_r2, ref._adj_r2_within), (fit.rmse, ref._rmse)):
        close(ours, theirs, rtol=1e-8)
    mine = fit.fixef()
    for name in ("f1", "f2"):
        theirs = pd.Series({float(k): v for k, v in fx[f"C({name})"].items()})
        close(mine[name].loc[theirs.index], theirs, rtol=1e-7)


@pytest.mark.parametrize("formula", ["Y ~ X1 + X2 | f1", "Y ~ X1 + X2 | f1 + f2"])
@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "f1"}])
def test_fepois_equals_pyfixest(formula, vcov):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pf.fepois(formula, data=PFP, vcov=vcov, iwls_tol=1e-14, iwls_maxiter=100, fixef_tol=1e-14)
    fit = tl.fepois(formula, PFP, vcov=vcov)
    close(fit.coef(), ref.coef(), rtol=1e-8)
    close(fit.std_errors(), ref.se(), rtol=1e-8)
    assert fit.nobs == ref._N


def test_default_vcov_is_fixest_s():
    assert tl.feols("y ~ x1 | firm + year", PANEL).summary().vcov_description == "Clustered (firm)"
    assert tl.feols("y ~ x1 + x2", PANEL).summary().vcov_description == "IID"
    # without fixed effects feols is lm
    close(tl.feols("y ~ x1 + x2", PANEL).coef(), tl.lm("y ~ x1 + x2", PANEL).coef())


def test_summary_layout():
    text = str(tl.feols("y ~ x1 + x2 | firm + year", PANEL).summary())
    lines = text.splitlines()
    assert "OLS estimation, Dep. Var.: y" in lines
    assert "Observations: 400" in lines and "Fixed-effects: firm: 25,  year: 8" in lines
    assert lines[lines.index("Standard-errors: Clustered (firm) ") + 1].split() == [
        "Estimate", "Std.", "Error", "t", "value", "Pr(>|t|)"]
    assert lines[-2].startswith("RMSE: ") and "Adj. R2: " in lines[-2] and lines[-1].strip().startswith("Within R2:")


# --- the absorption ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("sizes", [[40], [40, 7], [7, 40, 5]])
def test_absorber_is_the_exact_projection(dense, sizes, monkeypatch):
    monkeypatch.setattr(absorb, "DENSE_LEVELS", 4000 if dense else 0)
    g = torch.Generator().manual_seed(1)
    n = 1500
    codes = [torch.randint(0, L, (n,), generator=g) for L in sizes]
    X = torch.randn(n, 3, dtype=torch.float64, generator=g) + 3 * codes[0].unsqueeze(1)
    w = torch.rand(n, dtype=torch.float64, generator=g) + 0.5
    D = torch.cat([torch.nn.functional.one_hot(c, L).double() for c, L in zip(codes, sizes)], 1)
    sw = w.sqrt().unsqueeze(1)
    ref = X - D @ torch.linalg.lstsq(sw * D, sw * X, driver="gelsd").solution
    got = Absorber(codes, sizes, w).residualize(X)
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-10


def test_absorber_warns_with_the_tolerance_reached(monkeypatch):
    monkeypatch.setattr(absorb, "DENSE_LEVELS", 0)
    with pytest.warns(OptimumWarning, match=r"relative residual of .* after 1 iterations"):
        tl.feols("Y ~ X1 | f1 + f2 + f3", PF, fixef_iter=1)


# --- bad input ----------------------------------------------------------------------------------------
def test_bad_input_gets_clear_errors():
    with pytest.raises(UnknownVariableError, match="fixed effect variable"):
        tl.feols("y ~ x1 | nope", PANEL)
    with pytest.raises(FormulaError, match="instrumental"):
        tl.feols("y ~ x1 | firm | x2 ~ w", PANEL)
    with pytest.raises(FormulaError, match="varying slope"):
        tl.feols("y ~ x1 | firm[[x2]", PANEL)
    with pytest.raises(FormulaError, match="given twice"):
        tl.feols("y ~ x1 | firm + firm[x2]", PANEL)
    with pytest.raises(OptionError, match="unknown vcov"):
        tl.feols("y ~ x1 | firm", PANEL, vcov="HC9")
    with pytest.raises(OptionError, match="fixef_rm"):
        tl.feols("y ~ x1 | firm", PANEL, fixef_rm="all")
    with pytest.raises(OptionError, match="ssc"):
        tl.feols("y ~ x1 | firm", PANEL, ssc={"adjust": True})
    d = PANEL.head(30).assign(firm=range(30))
    with pytest.raises(DataError, match="no observation is left"):
        tl.feols("y ~ x1 | firm", d)
    holes = PANEL.assign(year=PANEL.year.where(PANEL.index % 10 != 0))
    with pytest.raises(OptionError, match="cluster variable 'year' is missing"):
        tl.feols("y ~ x1 | firm", holes, vcov={"CRV1": "year"})


def test_missing_fixed_effect_codes_drop_rows():
    holes = PANEL.assign(firm=PANEL.firm.where(PANEL.index % 10 != 0))
    fit = tl.feols("y ~ x1 + x2 | firm", holes)
    assert fit.n_missing == int(holes.firm.isna().sum())
    assert "observations removed because of NA values" in str(fit.summary())
    ref = tl.feols("y ~ x1 + x2 | firm", PANEL[holes.firm.notna()])
    close(fit.coef(), ref.coef(), rtol=1e-12)


def test_one_level_effect_is_the_intercept():
    fit = tl.feols("y ~ x1 + x2 | one", PANEL.assign(one="a"))
    close(fit.coef(), tl.lm("y ~ x1 + x2", PANEL).coef()[["x1", "x2"]], rtol=1e-10)


def test_data_is_not_modified():
    before = PANEL.copy()
    tl.feols("y ~ x1 + x2 | firm^year", PANEL, weights="w")
    pd.testing.assert_frame_equal(PANEL, before)


def test_etable_has_fixed_effect_rows_and_the_fits_own_standard_errors():
    a = tl.feols("y ~ x1 + x2 | firm", PANEL)
    b = tl.feols("y ~ x1 + x2 | firm + year", PANEL)
    t = tl.etable([tl.lm("y ~ x1 + x2", PANEL), a, b])
    rows = dict(zip(t["term"], t.iloc[:, 3:].to_numpy().tolist()))
    assert rows["FE: firm"] == ["", "X", "X"] and rows["FE: year"] == ["", "", "X"]
    assert rows["Std. Errors"] == ["IID", "Clustered (firm)", "Clustered (firm)"]
    assert rows["Within R²"][1:] == [f"{a.within_r2:.3f}", f"{b.within_r2:.3f}"]
    se = t[(t["term"] == "x1") & (t["statistic"] == "std.error")].iloc[0, 5]
    assert se == f"({b.std_errors()['x1']:.3f})"


def test_tidy_and_glance():
    fit = tl.feols("y ~ x1 + x2 | firm + year", PANEL)
    td = fit.tidy(conf_int=True, vcov="hetero")
    close(td["std.error"], fit.std_errors("hetero"))
    close(td[["conf.low", "conf.high"]].to_numpy(), fit.confint(vcov="hetero").to_numpy())
    g = fit.glance()
    close(g[["r.squared", "within.r.squared", "nobs"]].to_numpy()[0], [fit.r2, fit.within_r2, 400])


def test_predict_adds_the_fixed_effects():
    fit = tl.feols("y ~ x1 + x2 | firm + year", PANEL)
    dense = tl.lm("y ~ x1 + x2 + factor(firm) + factor(year)", PANEL.iloc[:400])  # R's lm, checked elsewhere
    close(fit.predict(PANEL.iloc[:400]), dense.predict(PANEL.iloc[:400]), rtol=1e-11)
    # firms 26-28 were singletons: no effect estimated, NaN as fixest's predict
    assert fit.predict(PANEL).iloc[400:].isna().all()
    pois = tl.fepois("cnt ~ x1 + x2 | firm^year", PANEL.assign(year=PANEL.year % 2), offset="log(expo)")
    new = PANEL.assign(year=PANEL.year % 2).loc[pois.fitted().index]
    close(pois.predict(new), pois.fitted(), rtol=1e-11)
    close(pois.predict(new, type="link"), np.log(pois.fitted()), rtol=1e-11)
    with pytest.raises(OptionError, match="type"):
        fit.predict(PANEL, type="terms")


def test_likelihoods_equal_the_models_with_dummies():
    fit = tl.feols("y ~ x1 + x2 | firm + year", PANEL, weights="w")
    dense = tl.lm("y ~ x1 + x2 + factor(firm) + factor(year)", PANEL.iloc[:400], weights="w")
    close([fit.loglik(), fit.aic(), fit.bic()], [dense.loglik(), dense.aic(), dense.bic()], rtol=1e-11)
    pois = tl.fepois("cnt ~ x1 + x2 | firm", PANEL)
    keep = PANEL.loc[pois.fitted().index]
    g = tl.glm("cnt ~ x1 + x2 + factor(firm)", keep, family="poisson", exact=True)
    close([pois.loglik(), pois.aic(), pois.bic()], [g.loglik(), g.aic(), g.bic()], rtol=1e-10)
    assert 0 < pois.pseudo_r2 < 1 and "Log-Likelihood:" in str(pois.summary())


def test_varying_slopes_are_recovered_and_predicted():
    fit = tl.feols("y ~ x1 | firm[x2] + year", PANEL, weights="w")
    assert fit.fixef_names == ["firm", "firm[[x2]]", "year"]
    slopes = fit.fixef()["firm[[x2]]"]
    close(slopes.loc[[1, 2]], [R["vs_two_w"]["slope_1"][0], R["vs_two_w"]["slope_2"][0]])
    dense = tl.lm("y ~ x1 + C(firm) + C(year) + C(firm):x2", PANEL.iloc[:400], weights="w")
    close(fit.predict(PANEL.iloc[:400]), dense.predict(PANEL.iloc[:400]), rtol=1e-10)
    assert "Fixed-effects: firm: 25,  firm[[x2]]: 25,  year: 8" in str(fit.summary())


@pytest.mark.parametrize("dense", [True, False])
def test_absorber_with_a_varying_slope_is_the_exact_projection(dense, monkeypatch):
    monkeypatch.setattr(absorb, "DENSE_LEVELS", 4000 if dense else 0)
    g = torch.Generator().manual_seed(2)
    n = 1200
    a, b = torch.randint(0, 30, (n,), generator=g), torch.randint(0, 6, (n,), generator=g)
    x = torch.randn(n, dtype=torch.float64, generator=g)
    X = torch.randn(n, 2, dtype=torch.float64, generator=g) + x.unsqueeze(1) * a.unsqueeze(1)
    Da = torch.nn.functional.one_hot(a, 30).double()
    D = torch.cat([Da, Da * x.unsqueeze(1), torch.nn.functional.one_hot(b, 6).double()], 1)
    ref = X - D @ torch.linalg.lstsq(D, X, driver="gelsd").solution
    got = Absorber([a, a, b], [30, 30, 6], None, values=[None, x, None]).residualize(X)
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-10
