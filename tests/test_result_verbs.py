"""R's result verbs on lm and glm fits: summary(correlation=, symbolic_cor=, dispersion=), confint(parm=),
predict(type="terms"), alias(), dummy_coef(), na_action="exclude" and predict.lm's warnings for weighted fits.

References: tests/fixtures/result_verbs/r_result_verbs.json, written by make_result_verbs.R (R 4.2.2, MASS) from the
CSVs torchlm bundles; where R prints coefficient names they are renamed to torchlm's, so the printed text is what
torchlm must print, character for character. glm cases are R's default glm() (glm.fit), which tl.glm follows.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torchlm as tl

HERE = Path(__file__).parent / "fixtures" / "result_verbs"
R = json.loads((HERE / "r_result_verbs.json").read_text())
MTCARS = tl.datasets.load("mtcars")
MTCARS = MTCARS.assign(wt2=2 * MTCARS["wt"], s=MTCARS["wt"] + MTCARS["hp"] / 3)
AIRQUALITY = tl.datasets.load("airquality")
WARPBREAKS = tl.datasets.load("warpbreaks")
LEVELS = {"wool": ["A", "B"], "tension": ["L", "M", "H"]}


def _factors(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(**{k: pd.Categorical(df[k], categories=v) for k, v in LEVELS.items()})


DATA = {
    "mtcars": MTCARS, "airquality": AIRQUALITY, "warpbreaks": WARPBREAKS,
    "wb_cell": _factors(pd.read_csv(HERE / "warpbreaks_cell.csv")),
    "newdata_mtcars": pd.read_csv(HERE / "newdata_mtcars.csv"),
    "newdata_warpbreaks": _factors(pd.read_csv(HERE / "newdata_warpbreaks.csv")),
}


def arr(x) -> np.ndarray:
    """A fixture's numbers (null is R's NA) as float64."""
    return np.array(x, dtype=object).astype(float) if np.size(x) else np.zeros(0)


def fit_case(case: dict, **kw):
    data = DATA[case["data"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R's own warnings (fitted probabilities 0 or 1) are not the point here
        if case.get("family") is None:
            return tl.lm(case["formula"], data, **kw)
        return tl.glm(case["formula"], data, family=case["family"], **kw)


def after_call(text: str) -> list[str]:
    lines = text.split("\n")
    assert lines[1] == "Call:"
    return lines[3:]


SUMMARIES = sorted(k for k in R if k.startswith("summary_"))


@pytest.mark.parametrize("key", SUMMARIES)
def test_summary_correlation_is_r(key):
    case = R[key]
    fit = fit_case(case)
    assert fit.names == case["names"]
    s = fit.summary(correlation=True)
    assert list(s.correlation.index) == case["correlation_names"]
    np.testing.assert_allclose(s.correlation.to_numpy(), arr(case["correlation"]), rtol=1e-9, atol=1e-12)
    assert after_call(str(s)) == case["text"]
    assert after_call(str(fit.summary(correlation=True, symbolic_cor=True))) == case["symbolic"]
    # without correlation= the summary prints as before (no block), and has no correlations
    plain = fit.summary()
    assert plain.correlation is None and "Correlation" not in str(plain)


GLM_SUMMARIES = [k for k in SUMMARIES if R[k]["family"] is not None]


@pytest.mark.parametrize("key", GLM_SUMMARIES)
@pytest.mark.parametrize("dispersion", [0.5, 2])
def test_glm_summary_with_given_dispersion_is_r(key, dispersion):
    case = R[key]
    fit = fit_case(case)
    s = fit.summary(dispersion=dispersion)
    prefix = f"dispersion_{dispersion}_"
    # a given dispersion is known: z tests, whatever the family (R's summary.glm)
    assert list(s.coefficients.columns) == case[prefix + "columns"]
    np.testing.assert_allclose(s.coefficients.to_numpy(), arr(case[prefix + "coefficients"]), rtol=1e-9)
    assert s.dispersion == dispersion
    assert after_call(str(s)) == case[prefix + "text"]


def test_confint_parm_by_name_and_position_is_r():
    case = R["confint_lm"]
    fit = tl.lm(case["formula"], MTCARS)
    np.testing.assert_allclose(fit.confint(0.9, parm=["wt", "hp"]).to_numpy(), arr(case["names_90"]), rtol=1e-9)
    # R's parm = 2:3 are Python's positions 1 and 2 (0-based, as everywhere in torchlm)
    got = fit.confint(parm=[1, 2])
    assert list(got.index) == ["wt", "factor(cyl)[T.6]"]
    np.testing.assert_allclose(got.to_numpy(), arr(case["positions"]), rtol=1e-9)


def test_glm_profile_confint_parm_is_r():
    case = R["confint_glm"]
    fit = fit_case({"formula": case["formula"], "data": "mtcars", "family": "binomial"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the profile's refits warn as R's do (fitted probabilities 0 or 1)
        wt = fit.confint(parm="wt", method="profile")
        pos = fit.confint(0.9, parm=[1, 2], method="profile")
    assert list(wt.index) == ["wt"] and list(pos.index) == ["wt", "hp"]
    # R's intervals for one parameter are a vector; the profile's refits agree with R's to about 1e-8
    np.testing.assert_allclose(wt.to_numpy().ravel(), arr(case["wt"]).ravel(), rtol=1e-9)
    np.testing.assert_allclose(pos.to_numpy(), arr(case["positions_90"]), rtol=1e-9)
    pois = tl.glm("breaks ~ wool + tension", WARPBREAKS, family="poisson")
    got = pois.confint(parm=["tension[T.M]", "tension[T.H]"], method="profile")
    np.testing.assert_allclose(got.to_numpy(), arr(case["poisson_tension"]), rtol=1e-9)


TERMS = sorted(k for k in R if k.startswith("terms_"))


def _weights(key):
    return {"weights": "carb"} if key == "terms_lm_weighted" else {}


@pytest.mark.parametrize("key", TERMS)
def test_predict_terms_is_r(key):
    case = R[key]
    fit = fit_case(case, **_weights(key))
    p = fit.predict(type="terms")
    assert list(p.columns) == case["columns"]
    assert list(p.index) == list(DATA[case["data"]].index)
    np.testing.assert_allclose(p.to_numpy(), arr(case["fit"]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.attrs["constant"], case["constant"], rtol=1e-9)
    ps = fit.predict(type="terms", se_fit=True)
    np.testing.assert_allclose(ps.fit.to_numpy(), p.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ps.se_fit.to_numpy(), arr(case["se_fit"]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ps.residual_scale, case["residual_scale"], rtol=1e-9)
    # the terms and the constant add up to the linear predictor without the offset
    eta = (fit.predict() if case["family"] is None else fit.predict(type="link")).to_numpy()
    off = fit.design.offset if fit.design.offset is not None else 0.0
    np.testing.assert_allclose(p.sum(axis=1) + p.attrs["constant"] + off, eta, rtol=1e-9)
    if "selected" in case:
        sel = fit.predict(type="terms", terms=case["selected"])
        assert list(sel.columns) == case["selected"]
        np.testing.assert_allclose(sel.to_numpy(), arr(case["selected_fit"]), rtol=1e-9, atol=1e-12)
    if "newdata" in case:
        nd = DATA[case["newdata"]]
        pn = fit.predict(nd, type="terms", se_fit=True)
        np.testing.assert_allclose(pn.fit.to_numpy(), arr(case["new_fit"]), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(pn.se_fit.to_numpy(), arr(case["new_se_fit"]), rtol=1e-9, atol=1e-12)
        assert pn.constant == pytest.approx(case["new_constant"], rel=1e-9)
    if "lwr_90" in case:
        pi = fit.predict(type="terms", interval="confidence", level=0.9)
        np.testing.assert_allclose(pi.lwr.to_numpy(), arr(case["lwr_90"]), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(pi.upr.to_numpy(), arr(case["upr_90"]), rtol=1e-9, atol=1e-12)


ALIASES = sorted(k for k in R if k.startswith("alias_"))


@pytest.mark.parametrize("key", ALIASES)
def test_alias_is_r(key):
    case = R[key]
    fit = fit_case(case)
    assert fit.names == case["names"]
    a = tl.alias(fit)
    if case["complete"] is None:
        assert a.complete is None
    else:
        assert list(a.complete.index) == case["complete_rows"]
        assert list(a.complete.columns) == case["complete_columns"]
        np.testing.assert_allclose(a.complete.to_numpy(), arr(case["complete"]), rtol=1e-9, atol=1e-9)
    assert str(a).split("\n") == case["text"]
    ap = fit.alias(partial=True)
    if case["partial"] is None:
        assert ap.partial is None
    else:
        np.testing.assert_allclose(ap.partial.to_numpy(), arr(case["partial"]), rtol=1e-9, atol=1e-12)
    assert str(ap).split("\n") == case["partial_text"]


DUMMIES = sorted(k for k in R if k.startswith("dummy_"))


@pytest.mark.parametrize("key", DUMMIES)
def test_dummy_coef_is_r(key):
    case = R[key]
    # contr.sum / contr.helmert: the levels' values are read from the coding the fit used
    fit = fit_case(case, **({"contrasts": case["contrasts"]} if case["contrasts"] else {}))
    d = tl.dummy_coef(fit, use_na=case["use_na"])
    assert list(d.terms) == case["terms"]
    for term, ref in zip(case["terms"], case["values"]):
        if d.by_factors:
            assert [str(n) for n in d[term].index] == ref["names"]
        np.testing.assert_allclose(d[term].to_numpy(), arr(ref["values"]), rtol=1e-9, atol=1e-12)
    assert str(d).split("\n") == case["text"]
    assert str(fit.dummy_coef(use_na=case["use_na"])) == str(d)


def _assert_padded(got: pd.Series | pd.DataFrame, ref, index) -> None:
    assert list(got.index) == list(index)
    np.testing.assert_allclose(got.to_numpy(dtype=float), arr(ref), rtol=1e-9, atol=1e-12)


def test_na_exclude_lm_pads_as_r():
    case = R["exclude_lm"]
    before = AIRQUALITY.copy()
    fit = tl.lm(case["formula"], AIRQUALITY, na_action="exclude")
    omit = tl.lm(case["formula"], AIRQUALITY)
    idx = AIRQUALITY.index
    assert (fit.nobs, fit.df_residual) == (case["nobs"], case["df_residual"]) == (omit.nobs, omit.df_residual)
    np.testing.assert_allclose(fit.coef().to_numpy(), arr(case["coef"]), rtol=1e-9)
    assert len(fit.fitted()) == case["n"]
    _assert_padded(fit.fitted(), case["fitted"], idx)
    for t in ("response", "working", "pearson", "deviance"):
        _assert_padded(fit.residuals(t), case[t], idx)
    _assert_padded(fit.predict(), case["predict"], idx)
    pse = fit.predict(se_fit=True, interval="confidence")
    _assert_padded(pse["se_fit"], case["predict_se"], idx)
    _assert_padded(pse["lwr"], case["lwr"], idx)
    _assert_padded(pse["upr"], case["upr"], idx)
    for name, ref in [("hatvalues", "hatvalues"), ("rstudent", "rstudent"), ("cooks_distance", "cooks"),
                      ("dffits", "dffits"), ("covratio", "covratio"), ("dfbeta", "dfbeta"), ("dfbetas", "dfbetas")]:
        _assert_padded(getattr(fit, name)(), case[ref], idx)
    _assert_padded(fit.rstandard(), case["rstandard"], idx)
    _assert_padded(fit.rstandard("predictive"), case["rstandard_predictive"], idx)
    infl = fit.influence()
    _assert_padded(infl.hat, case["influence_hat"], idx)
    _assert_padded(infl.sigma, case["influence_sigma"], idx)
    _assert_padded(infl.wt_res, case["influence_wt_res"], idx)
    im = fit.influence_measures()
    _assert_padded(im.infmat, case["infmat"], idx)
    assert not im.is_inf.loc[fit.fitted().isna()].to_numpy().any()
    _assert_padded(fit.predict(type="terms"), case["terms"], idx)
    # everything else is na.omit's: the summary prints R's text, its missingness line included
    assert after_call(str(fit.summary())) == case["summary_text"]
    assert str(fit.summary()) == str(omit.summary())
    assert AIRQUALITY.equals(before)


def test_na_exclude_with_subset_pads_to_the_subset():
    case = R["exclude_lm_subset"]
    fit = tl.lm("Ozone ~ Solar.R + Wind", AIRQUALITY, subset="Month != 5", na_action="na.exclude")
    assert len(fit.fitted()) == case["n"]
    # R's row names are the data's 1-based row numbers
    assert list(fit.fitted().index + 1) == [int(r) for r in case["rows"]]
    _assert_padded(fit.fitted(), case["fitted"], fit.fitted().index)
    _assert_padded(fit.residuals(), case["residuals"], fit.fitted().index)


def test_na_exclude_glm_pads_as_r():
    case = R["exclude_glm"]
    fit = tl.glm(case["formula"], AIRQUALITY, family="poisson", na_action="exclude")
    idx = AIRQUALITY.index
    assert fit.nobs == case["nobs"]
    _assert_padded(fit.fitted(), case["fitted"], idx)
    for t in ("deviance", "pearson", "working", "response"):
        _assert_padded(fit.residuals(t), case[t], idx)
    _assert_padded(fit.predict(), case["link"], idx)
    _assert_padded(fit.predict(type="response"), case["mean"], idx)
    _assert_padded(fit.predict(type="response", se_fit=True)["se_fit"], case["mean_se"], idx)
    _assert_padded(fit.hatvalues(), case["hatvalues"], idx)
    _assert_padded(fit.rstandard(), case["rstandard"], idx)
    _assert_padded(fit.rstudent(), case["rstudent"], idx)
    _assert_padded(fit.cooks_distance(), case["cooks"], idx)
    _assert_padded(fit.dfbeta(), case["dfbeta"], idx)
    _assert_padded(fit.predict(type="terms"), case["terms"], idx)
    # the linear predictor is the fit's component (R's fit$linear.predictors): the rows used
    assert len(fit.linear_predictors()) == fit.nobs


@pytest.mark.parametrize("spelling", ["omit", "na.omit"])
def test_r_spellings_of_na_action(spelling):
    a = tl.lm("Ozone ~ Wind", AIRQUALITY, na_action=spelling)
    assert len(a.fitted()) == a.nobs == 116
    with pytest.raises(tl.DataError, match="missing"):
        tl.lm("Ozone ~ Wind", AIRQUALITY, na_action="na.fail")


def test_weighted_prediction_warnings_are_r():
    case = R["weighted_prediction"]
    fit = tl.lm(case["formula"], MTCARS, weights="carb")
    nd = DATA["newdata_mtcars"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        pn = fit.predict(nd, interval="prediction")
    assert [str(x.message) for x in w] == case["newdata_warnings"]
    np.testing.assert_allclose(pn["lwr"], case["newdata_lwr"], rtol=1e-9)
    np.testing.assert_allclose(pn["upr"], case["newdata_upr"], rtol=1e-9)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        po = fit.predict(interval="prediction")
    assert [str(x.message) for x in w] == case["current_warnings"]
    np.testing.assert_allclose(po["lwr"], case["current_lwr"], rtol=1e-9)
    np.testing.assert_allclose(po["upr"], case["current_upr"], rtol=1e-9)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        pv = fit.predict(nd, interval="prediction", pred_var=2)["lwr"]
        pw = fit.predict(nd, interval="prediction", weights=nd["carb"])["lwr"]
    assert not w  # pred_var or weights given: nothing to assume
    np.testing.assert_allclose(pv, case["pred_var_lwr"], rtol=1e-9)
    np.testing.assert_allclose(pw, case["weights_lwr"], rtol=1e-9)


# --- bad input ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fits():
    return {"lm": tl.lm("mpg ~ wt + factor(cyl)", MTCARS), "glm": tl.glm("am ~ wt", MTCARS, family="binomial"),
            "gamma": tl.glm("mpg ~ wt", MTCARS, family="Gamma")}


@pytest.mark.parametrize("call, match", [
    (lambda f: f["lm"].confint(parm=["wt", "nope"]), "unknown coefficient 'nope'"),
    (lambda f: f["glm"].confint(parm="nope", method="profile"), "unknown coefficient 'nope'"),
    (lambda f: f["lm"].confint(parm=7), "out of range"),
    (lambda f: f["lm"].predict(type="terms", terms=["wt", "cyl"]), "'cyl', which is not a term"),
    (lambda f: f["glm"].predict(type="terms", terms="hp"), "'hp', which is not a term"),
    (lambda f: f["lm"].predict(type="term"), "'response' or 'terms'"),
    (lambda f: f["glm"].predict(type="mean"), "'link', 'response' or 'terms'"),
    (lambda f: f["lm"].predict(terms="wt"), "add type='terms'"),
    (lambda f: f["gamma"].summary(dispersion=0), "dispersion must be a positive number"),
    (lambda f: f["gamma"].summary(dispersion=-1.5), "dispersion must be a positive number"),
    (lambda f: f["gamma"].summary(dispersion="2"), "dispersion must be a positive number"),
    (lambda f: f["gamma"].summary(dispersion=2, vcov="HC0"), "cannot be combined"),
    (lambda f: f["gamma"].predict(se_fit=True, dispersion=float("nan")), "dispersion must be a positive number"),
    (lambda f: tl.lm("mpg ~ wt", MTCARS, na_action="na.pass"), "na_action must be"),
    (lambda f: tl.alias(f["lm"].summary()), "alias\\(\\) takes a fit of tl.lm or tl.glm"),
    (lambda f: tl.dummy_coef("mpg ~ wt"), "dummy_coef\\(\\) takes a fit"),
    (lambda f: tl.glm("am ~ wt", MTCARS, family="binomial", na_action=None), "na_action must be"),
])
def test_bad_input_is_a_clear_error(fits, call, match):
    with pytest.raises(tl.ModelInputError, match=match):
        call(fits)


def test_glm_predict_with_given_dispersion_scales_the_standard_errors(fits):
    g = fits["gamma"]
    base = g.predict(se_fit=True)["se_fit"]
    np.testing.assert_allclose(g.predict(se_fit=True, dispersion=4 * g.dispersion)["se_fit"], 2 * base, rtol=1e-12)
    assert isinstance(g.predict(dispersion=2.0), pd.Series)  # no se_fit: the dispersion changes nothing
    terms = g.predict(type="terms", se_fit=True, dispersion=4 * g.dispersion)
    np.testing.assert_allclose(terms.residual_scale, 2 * np.sqrt(g.dispersion), rtol=1e-12)


def test_r_names_print_exactly_as_r():
    """With names="R" the coefficients are R's, and so is the text, with no renaming at all."""
    case = R["r_names"]
    fit = tl.lm(case["summary_formula"], MTCARS, names="R")
    assert after_call(str(fit.summary(correlation=True))) == case["summary_text"]
    cell = tl.lm(case["alias_formula"], DATA["wb_cell"], names="R")
    assert str(cell.alias(partial=True)).split("\n") == case["alias_text"]
