"""R's spellings in formulas, read as R reads them (issue 9's first items; R's numbers from
tests/fixtures/r_dialect/make_r_dialect.R on mtcars)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.frame import r_spelling

R = json.loads((FIXTURES / "r_dialect" / "r_dialect.json").read_text())
MTCARS = tl.datasets.load("mtcars")


@pytest.mark.parametrize("case", ["factor", "as_factor", "interaction", "poly_raw", "power_in_call", "r_functions"])
def test_r_formula_spellings_fit_as_r(case):
    before = MTCARS.copy()
    fit = tl.lm(R[case]["formula"], MTCARS)
    np.testing.assert_allclose(fit.coef().to_numpy(), R[case]["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.fitted().to_numpy(), R[case]["fitted"], rtol=1e-10)
    # predict rebuilds R's terms on new rows (factor levels, the power) as the fit did
    np.testing.assert_allclose(fit.predict(MTCARS.head(5)).to_numpy(), R[case]["fitted"][:5], rtol=1e-10)
    assert MTCARS.equals(before)


def test_factor_in_a_glm_and_its_levels():
    fit = tl.glm("am ~ wt + factor(vs)", MTCARS, family="binomial")
    np.testing.assert_allclose(fit.coef().to_numpy(), R["glm_factor"]["coef"], rtol=1e-9)  # tl.glm is R's glm.fit
    lm_fit = tl.lm("mpg ~ wt + factor(cyl)", MTCARS)
    assert lm_fit.names == ["Intercept", "wt", "factor(cyl)[T.6]", "factor(cyl)[T.8]"]
    with pytest.raises(tl.DataError, match=r"factor 'factor\(cyl\)' has new level\(s\) 5"):
        lm_fit.predict(MTCARS.head(1).assign(cyl=5))


def test_r_spelling_rewrites_outside_quotes_only():
    assert r_spelling("y ~ poly(x, 2, raw = TRUE) + as.factor(g) + log(u^2) + (a + b)^2") == \
        "y ~ poly(x, 2, raw = True) + factor(g) + log(u**2) + (a + b)^2"
    quoted = "y ~ `TRUE x` + C(g, levels=['FALSE', 'TRUE'])"
    assert r_spelling(quoted) == quoted
    assert r_spelling("y ~ ISTRUE + x.FALSE") == "y ~ ISTRUE + x.FALSE"


@pytest.mark.parametrize("formula, fragment", [("mpg ~ as.character(wt)", "is not Python"),
                                               ("mpg ~ m$wt", "cannot parse formula")])
def test_r_spellings_without_a_python_meaning_are_clear_errors(formula, fragment):
    with pytest.raises(tl.FormulaError, match=fragment.replace("(", r"\(")):
        tl.lm(formula, MTCARS)


@pytest.mark.parametrize("case", ["dot", "dot_plus", "dot_log_response", "dot_minus", "dot_square", "dot_interaction"])
def test_dot_is_every_column_the_response_does_not_use(case):
    data = MTCARS[["mpg", "wt", "hp", "cyl"]]
    fit = tl.lm(R[case]["formula"], data)
    assert [n.replace("Intercept", "(Intercept)") for n in fit.names] == R[case]["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), R[case]["coef"], rtol=1e-9)


def test_dot_keeps_dots_that_are_not_r_s_dot():
    data = MTCARS[["mpg", "wt", "hp"]].rename(columns={"hp": "h p"})
    assert tl.lm("mpg ~ I(wt * .5) + .", data).names == ["Intercept", "I(wt * 0.5)", "wt", "h p"]
    assert tl.lm("mpg ~ .", data, weights="wt").names == ["Intercept", "wt", "h p"]  # R keeps the weights column
    with pytest.raises(tl.FormulaError, match="the data has none"):
        tl.lm("mpg ~ .", MTCARS[["mpg"]])


@pytest.mark.parametrize("case, change", [
    ("update_add", dict(formula=". ~ . + hp")),
    ("update_log", dict(formula="log(.) ~ .")),
    ("update_subset", dict(subset="cyl != 4")),
    ("update_no_intercept", dict(formula=". ~ . - 1")),
    ("update_interaction", dict(formula=". ~ . * factor(am)")),
])
def test_update_is_r_s(case, change):
    base = tl.lm("mpg ~ wt", MTCARS)
    fit = tl.update(base, **change)
    np.testing.assert_allclose(fit.coef().to_numpy(), R[case]["coef"], rtol=1e-9)
    assert fit.nobs == R[case]["nobs"]
    assert fit.call == f"lm(formula = {R[case]['formula']}" + (", subset = cyl != 4)" if "subset" in change else ")")
    assert base.coef().to_dict() == tl.lm("mpg ~ wt", MTCARS).coef().to_dict()  # the old fit is left as it was


def test_update_twice_and_a_glm():
    twice = tl.lm("mpg ~ wt", MTCARS).update(". ~ . + hp").update(". ~ . - wt")
    np.testing.assert_allclose(twice.coef().to_numpy(), R["update_drop"]["coef"], rtol=1e-9)
    assert twice.call == f"lm(formula = {R['update_drop']['formula']})"
    g = tl.glm("am ~ wt", MTCARS, family="binomial").update(". ~ . + hp")
    np.testing.assert_allclose(g.coef().to_numpy(), R["update_glm"]["coef"], rtol=1e-9)  # tl.glm is R's glm.fit
    assert g.update(family="quasibinomial").dispersion > 0


def test_update_bad_calls():
    fit = tl.lm("mpg ~ wt", MTCARS)
    with pytest.raises(tl.OptionError, match=r"\['famly'\].*lm\(\) does not take"):
        fit.update(famly="binomial")
    with pytest.raises(tl.FormulaError, match="'. ~ . \\+ x'"):
        fit.update("hp")
    with pytest.raises(tl.OptionError, match="takes a fitted model"):
        tl.update("mpg ~ wt")


OFFSET_DATA = pd.read_csv(FIXTURES / "r_dialect" / "offset_data.csv")
OFFSET_NEW = pd.DataFrame({"x": [2.0, 11.0], "t": [10.0, 40.0], "z": [0.5, 0.2]})


def test_offset_terms_add_up_and_predict_evaluates_them_in_newdata():
    data = OFFSET_DATA.copy()
    one = tl.glm("y ~ x + offset(log(t))", data, family="poisson")
    np.testing.assert_allclose(one.coef().to_numpy(), R["offset_term"]["coef"], rtol=1e-9)  # tl.glm is R's glm.fit
    np.testing.assert_allclose(one.deviance, R["offset_term"]["deviance"], rtol=1e-9)
    np.testing.assert_allclose(one.predict(OFFSET_NEW).to_numpy(), R["offset_term"]["predict"], rtol=1e-9)
    two = tl.glm("y ~ x + offset(log(t)) + offset(z)", data, family="poisson")
    np.testing.assert_allclose(two.coef().to_numpy(), R["offset_two_terms"]["coef"], rtol=1e-9)
    both = tl.glm("y ~ x + offset(log(t))", data, family="poisson", offset="z")
    np.testing.assert_allclose(both.coef().to_numpy(), R["offset_term_and_argument"]["coef"], rtol=1e-9)
    np.testing.assert_allclose(both.predict(OFFSET_NEW).to_numpy(), R["offset_term_and_argument"]["predict"], rtol=1e-9)
    lm_fit = tl.lm("y ~ offset(2 * x) + t", data)
    np.testing.assert_allclose(lm_fit.coef().to_numpy(), R["offset_lm"]["coef"], rtol=1e-10)
    np.testing.assert_allclose(lm_fit.fitted().to_numpy(), R["offset_lm"]["fitted"], rtol=1e-10)
    pd.testing.assert_frame_equal(data, OFFSET_DATA)


CBIND = pd.DataFrame({"s": [5, 8, 12, 15, 0.0], "f": [15, 12, 8, 5, 0.0], "x": [1, 2, 3, 4, 5.0],
                      "w": [1, 2, 1, 2, 1.0]})


def test_cbind_response_of_a_binomial_glm_is_r_s():
    data = CBIND.copy()
    fit = tl.glm("cbind(s, f) ~ x", data, family="binomial")
    want = R["cbind"]
    np.testing.assert_allclose(fit.coef().to_numpy(), want["coef"], rtol=1e-9)  # tl.glm stops where R does
    np.testing.assert_allclose([fit.deviance, fit.null_deviance, fit.aic()],
                               [want["deviance"], want["null_deviance"], want["aic"]], rtol=1e-9)
    assert fit.nobs == want["nobs"]  # the row with no trials has weight 0
    assert not re.search(r"-0\.0+(?![0-9])", str(fit.summary()))  # R prints that row's residual as 0
    weighted = tl.glm("cbind(s, f) ~ x", data, family="binomial", weights="w")
    np.testing.assert_allclose(weighted.coef().to_numpy(), R["cbind_weights"]["coef"], rtol=1e-9)
    pd.testing.assert_frame_equal(data, CBIND)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda d: tl.lm("cbind(s, f) ~ x", d), tl.FormulaError, "is for a binomial glm"),
    (lambda d: tl.glm("cbind(s, f) ~ x", d, family="poisson"), tl.FormulaError, "is for a binomial glm"),
    (lambda d: tl.glm("cbind(s, f, x) ~ x", d, family="binomial"), tl.FormulaError, "two columns"),
    (lambda d: tl.glm("cbind(s, f) ~ x", d.assign(s=-d["s"]), family="binomial"), tl.DataError, "must be >= 0"),
])
def test_cbind_bad_calls(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(CBIND)


def test_relevel_as_r():
    wb = tl.datasets.load("warpbreaks")
    fit = tl.lm("breaks ~ relevel(tension, ref='M') + wool", wb)
    np.testing.assert_allclose(fit.coef().to_numpy(), R["relevel"]["coef"], rtol=1e-10)
    np.testing.assert_allclose(fit.predict(wb).to_numpy(), R["relevel"]["fitted"], rtol=1e-10)
    assert fit.names[1:3] == ["relevel(tension, ref='M')[T.L]", "relevel(tension, ref='M')[T.H]"]
    with pytest.raises(tl.DataError, match="ref 'Z' is not a level"):
        tl.lm("breaks ~ relevel(tension, ref='Z')", wb)


def test_in_is_r_s_nesting():
    # R: tension %in% wool is tension:wool alone (formulaic's own %in% would be wool/tension)
    fit = tl.lm("breaks ~ tension %in% wool", tl.datasets.load("warpbreaks"))
    assert fit.rank == R["in_nesting"]["rank"]
    np.testing.assert_allclose(fit.fitted().to_numpy(), R["in_nesting"]["fitted"], rtol=1e-10)
    assert r_spelling("y ~ a %in% b") == "y ~ a:b"
