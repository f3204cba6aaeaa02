"""R's step(), add1() and drop1() (tests F, Chisq, Rao), anova(..., test="Rao" | "Cp") and anova.glm's R 4.2 default.

References: tests/fixtures/stepwise/stepwise.json and birthwt.csv, written by make_stepwise.R (R 4.2.2, R's default
glm() fits): the printed text of each call (step's whole trace) and its numbers (17 digits).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.inference.stepwise import StepPath
from torchlm.present.deparse import deparse_lines, parse

R = json.loads((FIXTURES / "stepwise" / "stepwise.json").read_text())
RTOL = 1e-9


def _birthwt() -> pd.DataFrame:
    bw = pd.read_csv(FIXTURES / "stepwise" / "birthwt.csv", dtype={"ftv": str})
    bw["race"] = pd.Categorical(bw["race"], categories=["white", "black", "other"])
    bw["ftv"] = pd.Categorical(bw["ftv"], categories=["0", "1", "2+"])
    return bw


# make_stepwise.R: mtcars_w$w <- (seq_len(n) - 1) %% 4, zero weights included
DATA = {"mtcars": tl.datasets.load("mtcars"), "mtcars_w": tl.datasets.load("mtcars").assign(w=np.arange(32) % 4),
        "airquality": tl.datasets.load("airquality"),
        "warpbreaks": tl.datasets.load("warpbreaks"), "birthwt": _birthwt()}


def fit_of(case, formula):
    data = DATA[case["data"]]
    if case["family"] is None:
        return tl.lm(formula, data, weights=case["weights"])
    return tl.glm(formula, data, family=case["family"], weights=case["weights"])


def values(v):
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def assert_table(tab, case):
    assert isinstance(tab, tl.AnovaTable)
    assert list(tab.columns) == case["columns"]
    assert list(tab.index) == case["rows"]
    got, want = tab.to_numpy(dtype=float), values(case["values"]).reshape(tab.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=RTOL, atol=1e-300)
    assert str(tab).split("\n") == case["text"]


def recorded(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught]


def step_scope(case):
    if case["lower"] is not None:
        return {"lower": case["lower"], "upper": case["upper"]}
    return case["upper"]


# --- step() -----------------------------------------------------------------------------------------

STEPS = [c for c in R["step"] if c["error"] is None]


@pytest.mark.parametrize("case", STEPS, ids=[c["id"] for c in STEPS])
def test_step_trace_final_model_and_path_are_r_s(case, capsys):
    start = fit_of(case, case["formula"])
    res, msgs = recorded(lambda: tl.step(start, step_scope(case), direction=case["direction"], k=case["k"]))
    assert msgs == case["warnings"]
    # the trace, line for line: "Start:  AIC=...", the formula, each table sorted by AIC, "Step:  AIC=..."
    assert capsys.readouterr().out.split("\n")[:-1] == case["trace"]
    assert "\n".join(deparse_lines(parse(res._refit.formula))) == case["final_formula"]
    np.testing.assert_allclose(res.coef().to_numpy(), case["coef"], rtol=RTOL)
    assert len(res.names) == len(case["coef_names"])
    path = res.anova
    assert isinstance(path, StepPath)
    assert list(path.columns) == case["path_columns"]
    assert list(path["Step"]) == case["path_steps"]
    got = path.iloc[:, 1:].to_numpy(dtype=float).ravel()
    want = values(case["path_values"])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=RTOL)
    assert repr(path).split("\n") == case["path_text"]  # R's print(fit$anova)
    assert path.attrs["heading"] == "\n".join(case["path_heading"])


def test_step_with_rows_that_change_with_the_scope_is_r_s_error(capsys):
    case = next(c for c in R["step"] if c["id"] == "lm_na_rows_change")
    start = fit_of(case, case["formula"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(tl.DataError, match=r"number of rows in use has changed: remove missing values\?"):
            tl.step(start, case["upper"])
    assert [str(w.message) for w in caught] == case["warnings"]
    assert capsys.readouterr().out.split("\n")[:-1] == case["trace"]  # printed up to the failing step, as R
    assert case["error"] == "number of rows in use has changed: remove missing values?"


def test_step_quietly_leaves_the_start_fit_alone_and_methods_agree(capsys):
    case = next(c for c in R["step"] if c["id"] == "lm_backward")
    start = fit_of(case, case["formula"])
    quiet = tl.step(start, trace=0)
    assert capsys.readouterr().out == ""
    method = start.step(trace=False)
    capsys.readouterr()
    np.testing.assert_allclose(quiet.coef().to_numpy(), case["coef"], rtol=RTOL)
    np.testing.assert_array_equal(method.coef().to_numpy(), quiet.coef().to_numpy())
    assert not hasattr(start, "anova") and start._refit.formula == "mpg ~ ."
    # no step taken: a copy of the start, with a one-row path
    same = tl.step(tl.lm("mpg ~ wt + qsec + am", DATA["mtcars"]), trace=0)
    assert list(same.anova["Step"]) == [""] and same.anova["AIC"].iloc[0] == pytest.approx(61.30730, rel=1e-6)


def test_step_keep_and_steps(capsys):
    start = tl.lm("mpg ~ .", DATA["mtcars"])
    case = next(c for c in R["step"] if c["id"] == "lm_backward")
    one = tl.step(start, trace=0, steps=1, keep=lambda fit, aic: (len(fit.names), aic))
    assert list(one.anova["Step"]) == case["path_steps"][:2]
    assert [k[0] for k in one.keep] == [11, 10]
    np.testing.assert_allclose([k[1] for k in one.keep], values(case["path_values"]).reshape(-1, 5)[:2, 4], rtol=RTOL)
    assert list(tl.step(start, trace=0, steps=0).anova["Step"]) == [""]


def test_step_bic_is_k_log_n():
    start = tl.lm("mpg ~ .", DATA["mtcars"])
    case = next(c for c in R["step"] if c["id"] == "lm_bic")
    assert case["k"] == pytest.approx(math.log(32), rel=1e-15)
    res = tl.step(start, trace=0, k=math.log(start.nobs))
    np.testing.assert_allclose(res.anova["AIC"].to_numpy(), values(case["path_values"]).reshape(-1, 5)[:, 4],
                               rtol=RTOL)


# --- add1() and drop1() ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", R["single"], ids=[c["id"] for c in R["single"]])
def test_add1_and_drop1_match_r(case):
    fit = fit_of(case, case["formula"])
    fn = tl.add1 if case["fn"] == "add1" else tl.drop1
    scope = case["scope"] if case["scope"] is not None else case["labels"]
    tab, msgs = recorded(lambda: fn(fit, scope, test=case["test"], k=case["k"]))
    assert msgs == case["warnings"]
    assert_table(tab, case)
    # the methods are the functions
    method = getattr(fit, case["fn"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = method(scope, test=case["test"], k=case["k"])
    assert str(again) == str(tab)


def test_add1_scope_respects_marginality():
    fit = tl.lm("mpg ~ wt", DATA["mtcars"])
    # wt:hp waits for hp, as R's add.scope; given as a label it is tried as it is (R's character scope)
    assert list(tl.add1(fit, "~ . + hp + wt:hp").index) == ["<none>", "hp"]
    assert list(tl.add1(fit, "~ wt * hp").index) == ["<none>", "hp"]
    assert list(tl.add1(tl.lm("mpg ~ wt + hp", DATA["mtcars"]), "~ wt * hp").index) == ["<none>", "wt:hp"]
    assert list(tl.drop1(tl.lm("mpg ~ wt * hp + qsec", DATA["mtcars"])).index) == ["<none>", "qsec", "wt:hp"]
    # one label as a string is R's character scope
    assert str(tl.add1(fit, "qsec")) == str(tl.add1(fit, ["qsec"]))
    assert list(tl.add1(fit, "wt:hp").index) == ["<none>", "wt:hp"]


# --- anova(): Rao, Cp, Chisq for lm, R 4.2's default --------------------------------------------------------

@pytest.mark.parametrize("case", R["anova"], ids=[c["id"] for c in R["anova"]])
def test_anova_tests_match_r(case):
    fits = [fit_of(case, f) for f in case["models"]]
    if case["test"] is None:
        tab, msgs = recorded(lambda: tl.anova(*fits))  # R 4.2's anova.glm: no test column
    else:
        tab, msgs = recorded(lambda: tl.anova(*fits, test=case["test"]))
    assert msgs == case["warnings"]
    assert_table(tab, case)


def test_anova_of_one_lm_takes_no_test_as_r():
    fit = tl.lm("mpg ~ wt + hp", DATA["mtcars"])
    with pytest.warns(tl.TorchlmWarning, match=r"invalid and dropped: list\(test = \"Cp\"\)"):
        tab = tl.anova(fit, test="Cp")
    assert str(tab) == str(tl.anova(fit))


# --- bad input -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mt_fit():
    return tl.lm("mpg ~ wt + hp", DATA["mtcars"])


@pytest.mark.parametrize("call, error, fragment", [
    (lambda f: tl.step(f, direction="sideways"), tl.OptionError, "direction must be"),
    (lambda f: tl.step(f, scope=3), tl.OptionError, "scope is a formula string"),
    (lambda f: tl.step(f, scope={"upper": "~ . + qsec", "top": "~ 1"}), tl.OptionError, "'lower' and 'upper'"),
    (lambda f: tl.step(f, scope={"lower": "~ qsec"}), tl.OptionError, "lower scope has term"),
    (lambda f: tl.step(f, scope="~ qsec"), tl.OptionError, "upper scope"),
    (lambda f: tl.step(f, steps=-1), tl.OptionError, "steps must be"),
    (lambda f: tl.step(f, k=float("nan")), tl.OptionError, "k must be"),
    (lambda f: tl.step(f, keep=3), tl.OptionError, "keep must be"),
    (lambda f: tl.step("mpg ~ wt"), tl.OptionError, "made by tl.lm"),
    (lambda f: tl.add1(f, None), tl.OptionError, "no terms in scope"),
    (lambda f: tl.add1(f, "~ ."), tl.OptionError, "no terms in scope"),
    (lambda f: tl.add1(f, "~ . - hp"), tl.OptionError, "not in the upper scope"),
    (lambda f: tl.add1(f, 3), tl.OptionError, "formula string"),
    (lambda f: tl.add1(f, "~ . + qsec", test="Rao"), tl.OptionError, "score test of a GLM"),
    (lambda f: tl.add1(f, "~ . + qsec", test="t"), tl.OptionError, "test must be"),
    (lambda f: tl.add1(f, "~ . + nope"), tl.UnknownVariableError, "nope"),
    (lambda f: tl.drop1(f, "~ qsec"), tl.OptionError, "scope is not a subset"),
    (lambda f: tl.drop1(f, ["wt + hp"]), tl.OptionError, "not one term"),
])
def test_bad_arguments_are_clear_errors(mt_fit, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(mt_fit)


def test_step_on_a_quasi_family_says_why_not():
    fit = tl.glm("breaks ~ wool + tension", DATA["warpbreaks"], family="quasipoisson")
    with pytest.raises(tl.FitError, match="AIC is not defined for this model, so 'step' cannot proceed"):
        tl.step(fit)


def test_drop1_of_a_formula_in_formulaic_syntax_keeps_formulaic_labels():
    mt = DATA["mtcars"]
    python = tl.drop1(tl.lm("mpg ~ wt + {hp / 100}", mt), test="F")
    r = tl.drop1(tl.lm("mpg ~ wt + I(hp/100)", mt), test="F")
    assert list(python.index) == ["<none>", "wt", "hp / 100"] and list(r.index) == ["<none>", "wt", "I(hp/100)"]
    np.testing.assert_allclose(python.to_numpy(dtype=float), r.to_numpy(dtype=float), rtol=1e-12)
