"""R's splines::ns and bs, poly() on newdata, and weights=/subset=/offset= as R expressions (issue 9).

R's numbers come from tests/fixtures/splines/make_splines.R (R 4.2.2).
"""

from __future__ import annotations

import json
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.frame import design as design_module
from torchlm.frame import model_frame, model_matrix
from torchlm.frame.rexpr import evaluate_r
from torchlm.frame.splines import bs_basis, ns_basis, spline_design
from torchlm.present.deparse import r_text

HERE = FIXTURES / "splines"
R = json.loads((HERE / "splines.json").read_text())
MTCARS = tl.datasets.load("mtcars").reset_index(drop=True)
CARS = read_exact_csv(HERE / "cars.csv")
AIRQUALITY = read_exact_csv(HERE / "airquality.csv")
NEWDATA = pd.DataFrame({"wt": [1.2, 2.0, 3.2, 4.5, 5.8], "hp": [60, 110, 150, 200, 340]})


def r_values(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


BASES = {
    "ns_df3": (ns_basis, {"df": 3}), "ns_df1": (ns_basis, {"df": 1}), "ns_knots": (ns_basis, {"knots": [2.5, 3.5]}),
    "ns_intercept": (ns_basis, {"df": 3, "intercept": True}),
    "ns_boundary": (ns_basis, {"df": 4, "boundary_knots": [1.8, 5]}),
    "bs_df3": (bs_basis, {"df": 3}), "bs_df5": (bs_basis, {"df": 5}), "bs_knots": (bs_basis, {"knots": [3]}),
    "bs_degree2": (bs_basis, {"degree": 2, "df": 4}), "bs_intercept": (bs_basis, {"df": 4, "intercept": True}),
    "bs_boundary": (bs_basis, {"df": 4, "boundary_knots": [1.8, 5]}),
    "bs_degree1": (bs_basis, {"degree": 1, "knots": [2.5, 3.5]}),
}


@pytest.mark.parametrize("case", list(BASES))
def test_basis_knots_and_newdata_are_rs(case):
    fn, kw = BASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.TorchlmWarning)  # bs beyond its boundary knots (tested below)
        basis, inner, boundary = fn(MTCARS["wt"], **kw)
        again = {k: v for k, v in kw.items() if k in ("degree", "intercept")}
        # R's predict(basis, newx): the fitted knots and boundary knots, values beyond them extrapolated
        new, _, _ = fn(NEWDATA["wt"].to_numpy(), knots=inner, boundary_knots=boundary, **again)
    np.testing.assert_allclose(inner, R[case]["knots"], rtol=1e-12)
    np.testing.assert_allclose(boundary, R[case]["boundary"], rtol=1e-12)
    np.testing.assert_allclose(basis, R[case]["basis"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(new, R[case]["newdata"], rtol=1e-9, atol=1e-14)


FITS = ["lm_ns", "lm_ns_knots", "lm_ns_intercept", "lm_ns_intercept_no_constant", "lm_ns_boundary", "lm_bs",
        "lm_bs_default", "lm_bs_knots", "lm_bs_degree2", "lm_poly_raw", "lm_poly", "lm_poly_two"]


@pytest.mark.parametrize("case", FITS)
def test_spline_and_poly_fits_predict_as_r_on_newdata(case):
    before = MTCARS.copy()
    fit = tl.lm(R[case]["formula"], MTCARS)
    coef = r_values(R[case]["coef"])
    # an aliased column (ns with intercept=TRUE beside the intercept) is NA, as R's
    np.testing.assert_array_equal(np.isnan(fit.coef().to_numpy()), np.isnan(coef))
    np.testing.assert_allclose(fit.coef().to_numpy(), coef, rtol=1e-9)
    np.testing.assert_allclose(fit.fitted().to_numpy(), R[case]["fitted"], rtol=1e-9)
    with warnings.catch_warnings():
        # R's warnings too: bs beyond its boundary knots, a prediction from a rank-deficient fit
        warnings.simplefilter("ignore")
        predicted = fit.predict(NEWDATA).to_numpy()
    # the fit's knots, boundary knots and poly coefficients on new rows, two of them outside the fitted range
    np.testing.assert_allclose(predicted, R[case]["predict"], rtol=1e-9)
    # R's columns in R's order, numbered from 1 ("ns(wt, df = 3)1" in R)
    assert [n.rsplit("[", 1)[-1].rstrip("]") for n in fit.names if "(wt" in n] == \
        [n[-1] for n in R[case]["names"] if "(wt" in n]
    assert MTCARS.equals(before)


def test_ns_names_and_r_spellings_of_its_arguments():
    fit = tl.lm("mpg ~ splines::ns(wt, df = 3, Boundary.knots = c(1.8, 5)) + hp", MTCARS)
    assert fit.names[1] == "ns(wt, df=3, Boundary_knots=c(1.8, 5))[1]"
    listed = tl.lm("mpg ~ ns(wt, knots=[2.5, 3.5]) + hp", MTCARS)
    np.testing.assert_allclose(listed.coef().to_numpy(), R["lm_ns_knots"]["coef"], rtol=1e-9)
    assert tl.lm("mpg ~ ns(wt, df=3) + hp", MTCARS).names[1:4] == [f"ns(wt, df=3)[{k}]" for k in (1, 2, 3)]
    assert tl.lm("mpg ~ poly(wt, 2, raw = TRUE)", MTCARS).names[1:] == \
        ["poly(wt, 2, raw=True)[1]", "poly(wt, 2, raw=True)[2]"]


def test_ns_learns_its_knots_without_the_missing_values():
    data = MTCARS.copy()
    data.loc[[2, 9], "wt"] = np.nan
    case = "lm_ns_missing"
    fit = tl.lm("mpg ~ ns(wt, df=3)", data)
    np.testing.assert_allclose(fit.coef().to_numpy(), R[case]["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.predict(NEWDATA).to_numpy(), R[case]["predict"], rtol=1e-9)
    # the knots travel with the fit
    again = pickle.loads(pickle.dumps(fit))
    np.testing.assert_allclose(again.predict(NEWDATA).to_numpy(), R[case]["predict"], rtol=1e-9)


MT_NA2 = MTCARS.assign(hp=MTCARS["hp"].where(~MTCARS.index.isin([4, 19])))  # R's mt_na2: hp[c(5, 20)] <- NA
# R's model.frame evaluates the transforms on every row of data, before subset= and na.omit
EVERY_ROW = {
    "lm_ns_missing_other": ("mpg ~ ns(wt, df=3) + hp", MT_NA2, {}),
    "lm_ns_subset": ("mpg ~ ns(wt, df=3)", MTCARS, {"subset": "cyl != 4"}),
    "lm_poly_subset": ("mpg ~ poly(wt, 2)", MTCARS, {"subset": "cyl != 4"}),
    "lm_scale_subset": ("mpg ~ scale(wt) + hp", MTCARS, {"subset": "cyl != 4"}),
    "lm_scale_missing_other": ("mpg ~ scale(wt) + hp", MT_NA2, {}),
    "lm_bs_subset": ("mpg ~ bs(wt, df = 4) + scale(hp)", MT_NA2, {"subset": "am == 0"}),
}


@pytest.mark.filterwarnings("ignore:some 'x' values beyond boundary knots")  # bs on NEWDATA: R warns too
@pytest.mark.parametrize("case", list(EVERY_ROW))
def test_transforms_learn_on_every_row_before_subset_and_missing_values(case):
    formula, data, kw = EVERY_ROW[case]
    before = data.copy()
    r = R[case]
    fit = tl.lm(formula, data, names="R", **kw)
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9)
    # predict(newdata) codes new rows with the state learnt on every row, as R's makepredictcall
    np.testing.assert_allclose(fit.predict(NEWDATA).to_numpy(), r["predict"], rtol=1e-9)
    again = pickle.loads(pickle.dumps(fit))
    np.testing.assert_allclose(again.predict(NEWDATA).to_numpy(), r["predict"], rtol=1e-9)
    if "fitted" in r:
        np.testing.assert_allclose(fit.fitted().to_numpy(), r["fitted"], rtol=1e-9)
        assert fit.names == r["names"]
    state = {r_text(k): v for k, v in fit.design.spec.transform_state.items()}
    for variable, values in r.get("state", {}).items():
        ours = state[r_text(variable)]
        for arg, value in values.items():
            if arg != "degree":
                np.testing.assert_allclose(np.ravel(ours[arg.replace(".", "_")]), value, rtol=1e-12)
    # the subset as a mask, and the design on a frame already cleared of missing rows: the same state
    if "subset" in kw:
        mask = evaluate_r(kw["subset"], data).v == 1
        np.testing.assert_allclose(tl.lm(formula, data, subset=mask).coef().to_numpy(), r["coef"], rtol=1e-9)
    frame = model_frame(data, ["mpg", "wt", "hp"], **kw)
    np.testing.assert_allclose(model_matrix(formula, frame).X, fit.design.X, rtol=1e-12)
    pd.testing.assert_frame_equal(data, before)


def test_r_poly_refuses_missing_values_anywhere_in_its_variable():
    data = MTCARS.copy()
    data.loc[[2, 9], "wt"] = np.nan
    # R evaluates poly() before subset= and na.omit: the rows left out do not help
    for kw in ({}, {"subset": "!is.na(wt)"}, {"subset": "cyl != 4"}):
        with pytest.raises(tl.DataError, match=re.escape(R["poly_missing_error"]["message"]) + ".*'wt' has 2 missing"):
            tl.lm("mpg ~ poly(wt, 2)", data, **kw)
    # raw powers learn nothing: their missing rows are dropped, as R's
    fit = tl.lm("mpg ~ poly(wt, 2, raw = TRUE)", data)
    np.testing.assert_allclose(fit.coef().to_numpy(), R["lm_poly_raw_missing"]["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.predict(NEWDATA).to_numpy(), R["lm_poly_raw_missing"]["predict"], rtol=1e-9)


def test_state_is_learnt_apart_only_when_rows_are_left_out(monkeypatch):
    calls = []
    learn = design_module.learned_state
    monkeypatch.setattr(design_module, "learned_state", lambda *a: calls.append(a[0]) or learn(*a))
    tl.lm("mpg ~ ns(wt, df=3) + hp", MTCARS)
    tl.lm("mpg ~ wt + hp", MTCARS, subset="cyl != 4")
    # every row used, or no stateful transform: formulaic's one pass learns R's state
    assert calls == []
    tl.lm("mpg ~ ns(wt, df=3) + hp", MTCARS, subset="cyl != 4")
    assert calls == [["ns(wt, df=3)"]]


def test_subset_that_removes_a_level_is_rs_drop_unused_levels():
    r = R["lm_factor_subset"]
    fit = tl.lm("mpg ~ factor(cyl) + wt", MTCARS, subset="cyl != 6", names="R")
    assert fit.names == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.fitted().to_numpy(), r["fitted"], rtol=1e-9)
    new = pd.DataFrame({"cyl": [4, 8, 8], "wt": [2.2, 3.1, 4.4]})
    np.testing.assert_allclose(fit.predict(new).to_numpy(), r["predict"], rtol=1e-9)
    levels = [str(lv) for lv in next(iter(fit.design.spec.encoder_state.values()))[1]["categories"]]
    assert levels == r["xlevels"]
    # R: "factor factor(cyl) has new level 6"
    with pytest.raises(tl.DataError, match=r"factor 'factor\(cyl\)' has new level\(s\) 6"):
        fit.predict(pd.DataFrame({"cyl": [6], "wt": [3.0]}))
    assert r["new_level"] == "factor factor(cyl) has new level 6"


def test_r_warnings_of_bs_and_ns():
    fit = tl.lm("mpg ~ bs(wt, df=3)", MTCARS)
    with pytest.warns(tl.TorchlmWarning) as record:
        fit.predict(NEWDATA)
    assert R["bs_warning"]["message"] in [str(w.message) for w in record]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tl.lm("mpg ~ ns(wt, df=3)", MTCARS).predict(NEWDATA)  # ns extrapolates linearly, silently as R
    with pytest.warns(tl.TorchlmWarning, match=R["ns_df_warning"]["message"]):
        ns_basis(MTCARS["wt"], df=0)


def test_formulaic_spellings_of_bs_still_reach_formulaics_bs():
    fit = tl.lm("mpg ~ bs(wt, df=4, extrapolation='extend')", MTCARS)
    r_fit = tl.lm("mpg ~ bs(wt, df=4)", MTCARS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.TorchlmWarning)
        # formulaic's "extend" is R's extrapolation beyond the boundary knots
        np.testing.assert_allclose(fit.predict(NEWDATA).to_numpy(), r_fit.predict(NEWDATA).to_numpy(), rtol=1e-9)
    with pytest.raises(tl.ModelInputError, match="bs"):
        tl.lm("mpg ~ bs(wt, nonsense=3)", MTCARS)


def test_spline_design_checks_its_input():
    knots = [0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_allclose(spline_design(knots, [0.0, 0.5, 1.0]).sum(axis=1), 1.0, rtol=1e-15)
    with pytest.raises(tl.DataError, match="range"):
        spline_design(knots, [2.0])
    with pytest.raises(tl.DataError, match="derivs"):
        spline_design(knots, [0.5], derivs=4)
    with pytest.raises(tl.DataError, match="degree"):
        bs_basis([1.0, 2.0, 3.0], degree=0)


def fit_of(case, formula, data, **kw):
    fitter = tl.glm if case == "o_glm" else tl.lm
    return fitter(formula, data, **kw, **({"family": "poisson"} if case == "o_glm" else {}))


EXPRESSIONS = {
    "w_speed": ("dist ~ speed", CARS, {"weights": "1/speed^2"}),
    "w_dist": ("dist ~ speed", CARS, {"weights": "1/dist^2"}),
    "w_sqrt_subset": ("dist ~ speed", CARS, {"weights": "sqrt(speed)", "subset": "speed > 10 & dist < 80"}),
    "s_and": ("mpg ~ wt", MTCARS, {"subset": "cyl != 4 & hp > 100"}),
    "s_in": ("mpg ~ wt", MTCARS, {"subset": "cyl %in% c(4, 6)"}),
    "s_not_or": ("mpg ~ wt", MTCARS, {"subset": "!(am == 1) | gear == 5"}),
    "s_true": ("mpg ~ wt", MTCARS, {"subset": "(am == 1) == TRUE"}),
    "s_arith": ("mpg ~ wt", MTCARS, {"subset": "hp / wt > 40 & qsec^2 >= 300"}),
    "s_index": ("mpg ~ wt", MTCARS, {"subset": "1:20"}),
    "s_negative_index": ("mpg ~ wt", MTCARS, {"subset": "-(1:5)"}),
    "s_na": ("Ozone ~ Wind + Temp", AIRQUALITY, {"subset": "Solar.R > 150"}),
    "s_is_na": ("Temp ~ Wind", AIRQUALITY, {"subset": "is.na(Ozone) & Month %in% c(5, 6)"}),
    "s_not_na": ("Temp ~ Wind", AIRQUALITY, {"subset": "!is.na(Ozone) & Month != 9"}),
    "o_lm": ("mpg ~ wt", MTCARS, {"offset": "log(hp)"}),
    "o_glm": ("dist ~ speed", CARS, {"subset": "speed >= 10", "offset": "log(speed)"}),
}


@pytest.mark.parametrize("case", list(EXPRESSIONS))
def test_weights_subset_and_offset_expressions_are_rs(case):
    formula, data, kw = EXPRESSIONS[case]
    before = data.copy()
    fit = fit_of(case, formula, data, **kw)
    r = R[case]
    rtol = 1e-9  # the glm too: tl.glm's default is R's glm.fit
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=rtol)
    np.testing.assert_allclose(fit.fitted().to_numpy(), r["fitted"], rtol=rtol)
    assert fit.nobs == r["nobs"]
    # NA in a subset is R's row of NAs: deleted due to missingness
    assert fit.design.n_dropped == r["deleted"]
    np.testing.assert_array_equal(fit.design.rows + 1, r["rows"])
    if "weights" in r:
        np.testing.assert_allclose(fit.design.weights, r["weights"], rtol=1e-12)
    if "predict" in r:
        new = NEWDATA if case == "o_lm" else pd.DataFrame({"speed": [12, 30]})
        # R's predict evaluates offset= anew in newdata
        np.testing.assert_allclose(fit.predict(new).to_numpy(), r["predict"], rtol=rtol)
    pd.testing.assert_frame_equal(data, before)


def test_pandas_query_strings_still_work():
    def rows(subset):
        return tl.lm("mpg ~ wt", MTCARS, subset=subset).design.rows

    np.testing.assert_array_equal(rows("cyl != 4 and hp > 100"), rows("cyl != 4 & hp > 100"))
    np.testing.assert_array_equal(rows("cyl in [4, 6]"), rows("cyl %in% c(4, 6)"))
    np.testing.assert_array_equal(rows("2 < wt < 3"), rows("wt > 2 & wt < 3"))
    np.testing.assert_array_equal(rows("not (am == 1)"), rows("!(am == 1)"))
    np.testing.assert_array_equal(rows("(am == 1) == True"), rows("(am == 1) == TRUE"))
    np.testing.assert_array_equal(np.flatnonzero((MTCARS["wt"] > 2) & (MTCARS["wt"] < 3)), rows("2 < wt < 3"))


def test_r_logic_of_missing_values():
    d = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "g": ["a", "b", "a", None], "b": [True, False, True, True]})
    v = {e: evaluate_r(e, d).v for e in ("x > 1", "!(x > 1)", "x > 1 & FALSE", "x > 1 | TRUE", "g == 'a'",
                                         "is.na(x)", "x %in% c(1, NA)", "b & x > 1", "NA & FALSE")}
    np.testing.assert_array_equal(v["x > 1"], [0, 1, np.nan, 1])
    np.testing.assert_array_equal(v["!(x > 1)"], [1, 0, np.nan, 0])
    np.testing.assert_array_equal(v["x > 1 & FALSE"], [0, 0, 0, 0])
    np.testing.assert_array_equal(v["x > 1 | TRUE"], [1, 1, 1, 1])
    np.testing.assert_array_equal(v["g == 'a'"], [1, 0, 1, np.nan])
    np.testing.assert_array_equal(v["is.na(x)"], [0, 0, 1, 0])
    np.testing.assert_array_equal(v["x %in% c(1, NA)"], [1, 0, 1, 0])
    np.testing.assert_array_equal(v["b & x > 1"], [0, 0, np.nan, 1])
    np.testing.assert_array_equal(v["NA & FALSE"], [0])
    # a factor compares by its labels, text keeps its characters and escapes
    factor = pd.DataFrame({"f": pd.Categorical(["é", 'a"b', None])})
    np.testing.assert_array_equal(evaluate_r('f == "é" | f == "a\\"b"', factor).v, [1, 1, np.nan])
    # R's precedence: unary minus below ^, ! below comparisons, ^ right-associative
    np.testing.assert_array_equal(evaluate_r("-2^2", d), [-4.0])
    np.testing.assert_array_equal(evaluate_r("2^3^2", d), [512.0])
    np.testing.assert_array_equal(evaluate_r("7 %% 3 + 7 %/% 2", d), [4.0])
    np.testing.assert_array_equal(evaluate_r("-1:2", d), [-1.0, 0.0, 1.0, 2.0])


def test_expression_errors_name_the_problem():
    with pytest.raises(tl.UnknownVariableError, match="cannot evaluate subset=.*'nope', 'zzz' are not columns"):
        tl.lm("mpg ~ wt", MTCARS, subset="nope > 1 & zzz < 2")
    with pytest.raises(tl.UnknownVariableError, match="weights='1/nope\\^2'.*'nope'"):
        tl.lm("mpg ~ wt", MTCARS, weights="1/nope^2")
    with pytest.raises(tl.UnknownVariableError, match="offset='log\\(nope\\)'"):
        tl.lm("mpg ~ wt", MTCARS, offset="log(nope)")
    with pytest.raises(tl.ModelInputError, match="cannot evaluate subset=.*frobnicate\\(\\) is not a function"):
        tl.lm("mpg ~ wt", MTCARS, subset="frobnicate(hp) > 1")
    with pytest.raises(tl.DataError, match="use & to combine"):
        tl.lm("mpg ~ wt", MTCARS, subset="hp > 100 && cyl == 4")
    with pytest.raises(tl.DataError, match="row numbers must be whole numbers from 1 to 32"):
        tl.lm("mpg ~ wt", MTCARS, subset="1:40")
    with pytest.raises(tl.DataError, match="can't mix positive and negative"):
        tl.lm("mpg ~ wt", MTCARS, subset="c(-1, 2)")
    with pytest.raises(tl.DataError, match="different lengths"):
        tl.lm("mpg ~ wt", MTCARS, subset="c(TRUE, FALSE) & hp > 100")
    with pytest.raises(tl.DataError, match="non-numeric argument"):
        tl.lm("mpg ~ wt", MTCARS.assign(g="a"), subset="g + 1 > 0")
    # R's na.fail: an NA subset is a missing value
    with pytest.raises(tl.DataError, match="na_action='fail'.*" + R["s_na_fail"]["message"]):
        tl.lm("Ozone ~ Wind", AIRQUALITY.dropna(subset=["Ozone"]), subset="Solar.R > 150", na_action="fail")


@pytest.mark.parametrize("case", ["lm_ns_missing_other", "lm_scale_missing_other", "lm_bs_subset"])
def test_backquoted_names_in_transforms_learn_on_every_row_too(case):
    """`w.t` in scale(`w.t`): the transform's variable is found behind R's backquotes (it was not, and a missing
    value of another variable then left no rows): R's numbers, which do not depend on the names."""
    formula, data, kw = EVERY_ROW[case]
    dotted = data.rename(columns={"wt": "w.t", "hp": "h.p"})
    formula = re.sub(r"\bwt\b", "`w.t`", re.sub(r"\bhp\b", "`h.p`", formula))
    fit = tl.lm(formula, dotted, **kw)
    np.testing.assert_allclose(fit.coef().to_numpy(), R[case]["coef"], rtol=1e-9)
