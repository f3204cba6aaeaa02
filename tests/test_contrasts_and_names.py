"""contrasts= per variable, tl.options(contrasts=), ordered factors and R's coefficient names (names="R").

R's numbers and text from tests/fixtures/contrasts/make_contrasts.R (R 4.2.2) on R's warpbreaks, mtcars,
infert and esoph, which torchlm bundles: for each case R's coefficient names, coefficients, covariance,
anova() row labels, predictions on five rows, and print(summary(fit)) after the Call line.
"""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.frame.contrasts import CONTRASTS
from torchlm.inference import sandwich

DEFAULT_OPTIONS = {"contrasts": ("contr.treatment", "contr.poly"), "factor_levels": 100, "large_factor_levels": 4000}

DIR = FIXTURES / "contrasts"
R = json.loads((DIR / "contrasts.json").read_text())
MTCARS = tl.datasets.load("mtcars")
WB = tl.datasets.load("warpbreaks")
WBO = WB.assign(tension=WB["tension"].cat.as_ordered())  # R's ordered(warpbreaks$tension)
M2 = np.array([[-1, 1], [0, -2], [1, 1]])
ROWS = [0, 1, 9, 19, 29]  # R's data[c(1, 2, 10, 20, 30), ]

# case: (formula, data, contrasts) as torchlm spells R's call in make_contrasts.R
LM_CASES = {
    "treatment_default": ("mpg ~ wt + factor(cyl)", MTCARS, None),
    "treatment_explicit": ("breaks ~ wool + tension", WB, {"tension": "contr.treatment"}),
    "sum_factor": ("mpg ~ wt + factor(cyl)", MTCARS, {"factor(cyl)": "contr.sum"}),
    "sum": ("breaks ~ wool * tension", WB, {"wool": "contr.sum", "tension": "contr.sum"}),
    "helmert": ("breaks ~ wool + tension", WB, {"tension": "contr.helmert"}),
    "poly": ("breaks ~ wool * tension", WB, {"tension": "contr.poly"}),
    "sas": ("breaks ~ wool * tension", WB, {"wool": "contr.SAS", "tension": "contr.SAS"}),
    "matrix": ("breaks ~ wool + tension", WB, {"tension": M2}),
    "matrix_named": ("breaks ~ wool + tension", WB, {"tension": pd.DataFrame(M2, columns=["lin", "quad"])}),
    "matrix_one_column": ("breaks ~ wool + tension", WB, {"tension": M2[:, :1]}),
    "ordered_call": ("breaks ~ wool + ordered(tension)", WB, None),
    "ordered_levels": ('breaks ~ wool + ordered(tension, levels = c("H", "M", "L"))', WB, None),
    "ordered_column": ("breaks ~ wool * tension", WBO, None),
    "ordered_column_treatment": ("breaks ~ wool + tension", WBO, {"tension": "contr.treatment"}),
    "ordered_factor_call": ("breaks ~ wool + factor(tension)", WBO, None),  # R's factor() keeps it ordered
    "full_rank": ("breaks ~ tension - 1", WB, {"tension": "contr.sum"}),
    "nested": ("breaks ~ wool + wool:tension", WB, {"tension": "contr.sum"}),
    "names_interaction": ("mpg ~ wt * factor(am)", MTCARS, None),
    "names_poly": ("mpg ~ poly(wt, 2) + I(wt^2) + log(hp)", MTCARS, None),
    "names_splines": ("mpg ~ ns(wt, df = 3) + poly(hp, 2, raw = TRUE)", MTCARS, None),
    "names_as_factor": ("mpg ~ wt + as.factor(cyl)", MTCARS, None),
    "names_logical": ("mpg ~ wt * manual", MTCARS.assign(manual=MTCARS["am"] == 1), None),
    "names_C": ("breaks ~ wool + C(tension, contr.sum)", WB, None),
    "names_relevel": ('breaks ~ relevel(tension, ref = "M")', WB, {'relevel(tension, ref = "M")': "contr.sum"}),
    "names_levels": ('breaks ~ wool * factor(tension, levels = c("H", "M", "L"))', WB, None),
    "names_backquoted": ("mpg ~ wt + factor(`my cyl`)", MTCARS.rename(columns={"cyl": "my cyl"}),
                         {"my cyl": "contr.sum"}),
    "names_package": ("mpg ~ splines::ns(wt, df = 2) + hp", MTCARS, None),
    "names_bases": ("mpg ~ bs(hp, df = 4) + ns(disp, Boundary.knots = c(70, 480), df = 2)", MTCARS, None),
}
OPTION_CASES = {
    "options_sum": (("contr.sum", "contr.poly"), "breaks ~ wool * tension", WB),
    "options_sum_ordered": (("contr.sum", "contr.poly"), "breaks ~ wool + tension", WBO),
    "options_helmert_treatment": (("contr.helmert", "contr.treatment"), "breaks ~ wool + tension", WBO),
}


def r_coef(case: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in R[case]["coef"]], dtype=float)


def after_call(lines: list[str]) -> list[str]:
    """The text after the Call line and the empty line that ends it."""
    start = lines.index("Call:") + 1
    while lines[start].strip():
        start += 1
    return lines[start:]


def check_against_r(fit, case: str, data: pd.DataFrame, *, rtol: float = 1e-9) -> None:
    r = R[case]
    assert fit.names == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r_coef(case), rtol=rtol)
    V = fit.vcov()
    assert list(V.index) == [n for n, b in zip(r["names"], r_coef(case)) if not np.isnan(b)]
    rv = np.array(r["vcov"]).reshape(V.shape)
    # R's zeros come out near 1e-15 in both: compared on the scale of the matrix
    np.testing.assert_allclose(V.to_numpy(), rv, rtol=rtol, atol=1e-12 * np.abs(rv).max())
    assert list(fit.confint().index) == r["confint_rows"]
    np.testing.assert_allclose(fit.predict(data.iloc[ROWS]).to_numpy(), r["predict"], rtol=rtol)
    assert list(tl.anova(fit).index) == r["anova_rows"]
    ours = str(fit.summary()).split("\n")
    assert after_call(ours) == after_call((DIR / f"{case}.summary.txt").read_text().split("\n")[:-1])


@pytest.mark.filterwarnings("ignore:prediction from a rank-deficient fit")  # names_poly: R warns too
@pytest.mark.parametrize("case", sorted(LM_CASES))
def test_lm_contrasts_and_names_are_rs(case):
    formula, data, contrasts = LM_CASES[case]
    before = data.copy()
    fit = tl.lm(formula, data, contrasts=contrasts, names="R")
    check_against_r(fit, case, data)
    assert data.equals(before)


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_session_contrasts_are_rs_options_contrasts(case):
    value, formula, data = OPTION_CASES[case]
    with tl.options(contrasts=value) as old:
        assert old == {"contrasts": ("contr.treatment", "contr.poly")}
        assert tl.options()["contrasts"] == value
        fit = tl.lm(formula, data, names="R")
    assert tl.options() == DEFAULT_OPTIONS
    # the fit keeps its contrasts: summary, vcov and predict after the session's default is restored
    check_against_r(fit, case, data)


def test_options_returns_the_old_value_to_restore():
    old = tl.options(contrasts=["contr.helmert", "contr.treatment"])
    try:
        assert tl.options()["contrasts"] == ("contr.helmert", "contr.treatment")
        fit = tl.lm("breaks ~ wool + tension", WBO, names="R")
        assert fit.names == R["options_helmert_treatment"]["names"]
    finally:
        tl.options(**old)
    assert tl.options() == DEFAULT_OPTIONS
    tl.options(contrasts=("contr.sum", "contr.sum"))
    tl.options(contrasts=None)  # R's default again
    assert tl.options() == DEFAULT_OPTIONS


def test_glm_binomial_with_sum_contrasts_is_rs():
    data = tl.datasets.load("infert")
    fit = tl.glm("case ~ spontaneous + induced + education", data, family="binomial",
                 contrasts={"education": "contr.sum"}, names="R")
    check_against_r(fit, "glm_sum", data)


def test_glm_ordered_factors_get_contr_poly_as_in_rs_esoph_example():
    data = tl.datasets.load("esoph")
    fit = tl.glm("cbind(ncases, ncontrols) ~ agegp + tobgp * alcgp", data, family="binomial", names="R")
    check_against_r(fit, "glm_ordered", data)


@pytest.mark.parametrize("key", ["cyl", "factor(cyl)", "factor( cyl )", "as.factor(cyl)"])
def test_the_variable_is_named_as_the_data_or_as_the_formula_has_it(key):
    fit = tl.lm("mpg ~ wt + factor(cyl)", MTCARS, contrasts={key: "contr.sum"}, names="R")
    np.testing.assert_allclose(fit.coef().to_numpy(), r_coef("sum_factor"), rtol=1e-9)


@pytest.mark.parametrize("case", ["matrices"])
def test_the_contrast_matrices_are_rs(case):
    for key, r in R[case].items():
        name, n = key.rsplit("_", 1)
        coding = CONTRASTS[name]().get_coding_matrix(list("abcdef")[: int(n)], reduced_rank=True).to_numpy()
        np.testing.assert_allclose(coding, np.reshape(r["values"], (r["nrow"], r["ncol"])), rtol=1e-12, atol=1e-15)


def test_formulaic_names_stay_the_default_and_only_names_change():
    fit_f = tl.lm("breaks ~ wool * tension", WBO, contrasts={"wool": "contr.sum"})
    fit_r = tl.lm("breaks ~ wool * tension", WBO, contrasts={"wool": "contr.sum"}, names="R")
    assert fit_f.names == ["Intercept", "wool[S.A]", "tension[.L]", "tension[.Q]", "wool[S.A]:tension[.L]",
                           "wool[S.A]:tension[.Q]"]
    assert fit_r.names == ["(Intercept)", "wool1", "tension.L", "tension.Q", "wool1:tension.L", "wool1:tension.Q"]
    np.testing.assert_array_equal(fit_f.coef().to_numpy(), fit_r.coef().to_numpy())
    for kind in ("HC1", "HAC"):
        np.testing.assert_allclose(fit_f.vcov(kind).to_numpy(), fit_r.vcov(kind).to_numpy(), rtol=1e-12)
    # the robust F test of summary leaves the intercept out under either name
    f_line = [ln for ln in str(fit_f.summary(vcov="HC1")).split("\n") if "F-statistic" in ln]
    r_line = [ln for ln in str(fit_r.summary(vcov="HC1")).split("\n") if "F-statistic" in ln]
    assert f_line == r_line and f_line
    assert fit_r.coef()["(Intercept)"] == fit_f.coef()["Intercept"]


def test_update_keeps_contrasts_and_names():
    fit = tl.lm("breaks ~ wool * tension", WB, contrasts={"wool": "contr.sum", "tension": "contr.sum"}, names="R")
    smaller = fit.update(". ~ . - wool:tension")
    direct = tl.lm("breaks ~ wool + tension", WB, contrasts={"wool": "contr.sum", "tension": "contr.sum"},
                   names="R")
    assert smaller.names == ["(Intercept)", "wool1", "tension1", "tension2"]
    np.testing.assert_allclose(smaller.coef().to_numpy(), direct.coef().to_numpy(), rtol=1e-12)
    # a variable the new formula drops: R's warning, and its contrast is ignored
    with pytest.warns(tl.TorchlmWarning, match="variable 'wool' is absent, its contrast will be ignored"):
        only = fit.update(". ~ tension")
    assert only.names == ["(Intercept)", "tension1", "tension2"]
    assert "contrasts = list(wool = \"contr.sum\", tension = \"contr.sum\")" in fit.call


def test_step_and_drop1_refit_with_the_contrasts():
    fit = tl.lm("breaks ~ wool * tension", WB, contrasts={"tension": "contr.helmert"}, names="R")
    table = tl.drop1(fit)
    assert list(table.index) == ["<none>", "wool:tension"]
    final = tl.step(fit, trace=0)
    assert final.names == ["(Intercept)", "woolB", "tension1", "tension2", "woolB:tension1", "woolB:tension2"]


def test_predict_on_new_rows_codes_them_as_the_fit_did():
    fit = tl.lm("breaks ~ wool + ordered(tension)", WB, contrasts={"wool": "contr.sum"}, names="R")
    rows = WB[WB["tension"] == "H"].iloc[:3]  # one level of tension only
    np.testing.assert_allclose(fit.predict(rows).to_numpy(), fit.fitted().to_numpy()[rows.index], rtol=1e-12)
    again = pickle.loads(pickle.dumps(fit))
    assert again.names == fit.names
    np.testing.assert_allclose(again.predict(rows).to_numpy(), fit.predict(rows).to_numpy(), rtol=0)
    with tl.options(contrasts=("contr.SAS", "contr.treatment")):  # the session's change later: the fit keeps its own
        np.testing.assert_allclose(fit.predict(rows).to_numpy(), fit.fitted().to_numpy()[rows.index], rtol=1e-12)


def test_an_ordered_factor_keeps_contr_poly_in_formulaic_names():
    fit = tl.lm("breaks ~ wool + tension", WBO)
    assert fit.names == ["Intercept", "wool[T.B]", "tension[.L]", "tension[.Q]"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r_coef("ordered_call"), rtol=1e-9)


@pytest.mark.parametrize("contrasts, error, fragment", [
    ({"tension": "contr.summ"}, tl.OptionError, "unknown contrast 'contr.summ'.*contr.treatment, contr.sum, "
                                                "contr.helmert, contr.poly, contr.SAS"),
    ({"tension": "sum"}, tl.OptionError, "unknown contrast 'sum'"),
    ({"tensoin": "contr.sum"}, tl.OptionError, "'tensoin', which is not a variable of the model; its factors are"),
    ({"breaks": "contr.sum"}, tl.OptionError, "not a variable of the model"),
    ({"tension": np.ones((2, 2))}, tl.OptionError, "2 rows for a factor with 3 levels"),
    ({"tension": np.array([[1.0, np.nan], [0, 1], [-1, -1]])}, tl.OptionError, "finite numeric matrix"),
    ({"tension": [["a", "b"]]}, tl.OptionError, "neither a contrast name"),
    ({"tension": 3}, tl.OptionError, "neither a contrast name"),
    (["tension", "contr.sum"], tl.OptionError, r"contrasts must be a dict \{variable: contrast\}"),
    ({1: "contr.sum"}, tl.OptionError, "keys are variable names"),
])
def test_bad_contrasts_are_clear_errors(contrasts, error, fragment):
    with pytest.raises(error, match=fragment):
        tl.lm("breaks ~ wool + tension", WB, contrasts=contrasts)


def test_contrasts_for_a_numeric_variable_is_rs_error():
    with pytest.raises(tl.OptionError, match=r"contrasts apply only to factors \(R\): 'hp' is numeric.*factor\(hp\)"):
        tl.lm("mpg ~ hp + factor(cyl)", MTCARS, contrasts={"hp": "contr.sum"})


@pytest.mark.parametrize("names", ["r", "R names", None, 1])
def test_bad_names_is_a_clear_error(names):
    with pytest.raises(tl.OptionError, match="names must be 'formulaic'.*or 'R'"):
        tl.glm("am ~ wt", MTCARS, family="binomial", names=names)


@pytest.mark.parametrize("settings, fragment", [
    ({"contrasts": "contr.sum"}, "pair of contrast names"),
    ({"contrasts": ("contr.sum",)}, "pair of contrast names"),
    ({"contrasts": ("contr.sum", "contr.bogus")}, "unknown contrast 'contr.bogus' in options"),
    ({"digits": 3}, re.escape("unknown option(s) ['digits']: tl.options() sets "
                                 "['contrasts', 'factor_levels', 'large_factor_levels']")),
])
def test_bad_options_are_clear_errors_and_change_nothing(settings, fragment):
    with pytest.raises(tl.OptionError, match=fragment):
        tl.options(**settings)
    assert tl.options() == DEFAULT_OPTIONS


SPLINES_R = json.loads((FIXTURES / "splines" / "splines.json").read_text())  # make_splines.R's logical cases
ND_CYL = pd.DataFrame({"cyl": [4, 8, 8], "wt": [2.2, 3.1, 4.4], "am": [1, 0, 1], "hp": [90, 250, 130]})


@pytest.mark.parametrize("case", ["lm_logical", "lm_logical_no_intercept", "lm_logical_interaction",
                                  "lm_logical_crossed"])
def test_logical_expressions_are_rs_factors_false_true(case):
    r = SPLINES_R[case]
    fit = tl.lm(r["formula"], MTCARS, names="R")
    # R's model.matrix codes a logical as a factor: I(am == 1)TRUE, and both levels without an intercept
    assert fit.names == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.predict(ND_CYL).to_numpy(), r["predict"], rtol=1e-9)
    assert list(tl.anova(fit).index) == r["anova_rows"]
    # formulaic's names for the same columns, as for a logical column
    plain = tl.lm(r["formula"], MTCARS)
    assert [n.replace("[T.True]", "TRUE").replace("[True]", "TRUE").replace("[False]", "FALSE")
            .replace("Intercept", "(Intercept)") for n in plain.names] == r["names"]
    np.testing.assert_allclose(plain.coef().to_numpy(), r["coef"], rtol=1e-9)


def test_a_logical_expression_keeps_both_levels_when_one_is_unused():
    r = SPLINES_R["lm_logical_one_value"]
    fit = tl.lm("mpg ~ I(am == 1) + I(hp > 100)", MTCARS, subset="am == 1", names="R")
    assert fit.names == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r_values(r["coef"]), rtol=1e-9)  # TRUE only: aliased, NA
    with pytest.warns(UserWarning, match="rank-deficient"):
        np.testing.assert_allclose(fit.predict(ND_CYL).to_numpy(), r["predict"], rtol=1e-9)


def test_a_logical_response_expression_is_numeric():
    # R's model.response keeps a logical response as 0 and 1 (the glm of r_functions' glm_dotted, and lm)
    fit = tl.lm("I(am == 1) ~ wt", MTCARS)
    ref = tl.lm("am ~ wt", MTCARS)
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-12)
    assert fit.design.response == "I(am == 1)"


def r_values(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_hac_finds_the_intercept_by_the_design_under_either_names(monkeypatch):
    fit_r = tl.lm("mpg ~ wt + hp", MTCARS, names="R")
    fit_f = tl.lm("mpg ~ wt + hp", MTCARS)
    assert (sandwich.intercept_name(fit_r), sandwich.intercept_name(fit_f)) == ("(Intercept)", "Intercept")
    assert sandwich.intercept_name(tl.lm("mpg ~ 0 + wt + hp", MTCARS, names="R")) is None
    expected = fit_f.vcov("HAC").to_numpy()
    # R's bwNeweyWest knows "(Intercept)" by its name: the fast pass over the scores, not the n x k matrix
    monkeypatch.setattr(sandwich, "observation_scores", lambda *a, **k: pytest.fail("HAC took the general path"))
    np.testing.assert_allclose(fit_r.vcov("HAC").to_numpy(), expected, rtol=1e-12)
