"""R's update() and update.formula() (issue 9): the new formula as R writes it, and the refit with R's numbers
(tests/fixtures/update/make_update.R, R 4.2.2, on mtcars)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.models.update import update_formula
from torchlm.results.base import Refit

R = json.loads((FIXTURES / "update" / "update.json").read_text())
MT = tl.datasets.load("mtcars")
SMALL = MT[["mpg", "wt", "hp", "qsec"]]
PROBIT = tl.families.Binomial(link="probit")


@pytest.mark.parametrize("case", [c for c in R["formulas"] if "result" in c], ids=lambda c: f"{c['old']} | {c['new']}")
def test_update_formula_is_r_s(case):
    assert update_formula(case["old"], case["new"]) == case["result"]
    # tl.update of a formula string is R's update() of a formula
    assert tl.update(case["old"], case["new"]) == case["result"]


@pytest.mark.parametrize("case", [c for c in R["formulas"] if "error" in c], ids=lambda c: f"{c['old']} | {c['new']}")
def test_update_formula_errors_where_r_does(case):
    with pytest.raises(tl.FormulaError, match=r"R's error"):
        update_formula(case["old"], case["new"])


def test_update_formula_takes_python_spellings_and_refuses_what_is_not_a_formula():
    assert update_formula("mpg ~ I(hp**2)", ". ~ . + True") == "mpg ~ I(hp^2)"
    for new in ("hp", ".", None, 3):
        with pytest.raises(tl.FormulaError, match=r"'\. ~ \. \+ x'"):
            update_formula("mpg ~ wt", new)
    with pytest.raises(tl.FormulaError, match="not a formula"):
        update_formula("mpg ~ wt", "log(mpg ~ wt)")


DOTTED = {"dot": ("mpg ~ .", MT), "dot_minus": ("mpg ~ . - wt", MT), "dot_square": ("log(mpg) ~ .^2", SMALL),
          "dot_plus": ("mpg ~ wt + .", MT[["mpg", "hp", "wt"]])}


@pytest.mark.parametrize("case", sorted(DOTTED))
def test_a_fit_s_formula_is_r_s_formula_of_the_fit(case):
    formula, data = DOTTED[case]
    fit = tl.lm(formula, data)
    assert fit.formula == R["dots"][case]
    assert fit.call == f"lm(formula = {formula})"  # the call keeps the formula as written, as R's does


FITS = {
    "dot_drop": lambda: tl.lm("mpg ~ .", MT, names="R").update(". ~ . - wt"),
    "keep_no_intercept": lambda: tl.lm("mpg ~ wt - 1", MT, names="R").update("~ . + hp"),
    "drop_interaction": lambda: tl.lm("mpg ~ wt * qsec", MT, names="R").update(". ~ . - wt:qsec"),
    "power_label": lambda: tl.lm("mpg ~ wt", MT, names="R").update(". ~ . + I(hp^2)"),
    "subset_keeps_weights": lambda: tl.lm("mpg ~ wt + hp", MT, weights="cyl", names="R").update(subset="am == 1"),
    "new_weights": lambda: tl.lm("mpg ~ wt + hp", MT, subset="am == 1", names="R").update(weights="cyl"),
    "keeps_contrasts": lambda: tl.lm("mpg ~ factor(cyl) + wt", MT, contrasts={"factor(cyl)": "contr.sum"},
                                     names="R").update(". ~ . + hp"),
    "new_contrasts": lambda: tl.lm("mpg ~ factor(cyl) + wt", MT, names="R").update(
        contrasts={"factor(cyl)": "contr.helmert"}),
    "glm_family": lambda: tl.glm("vs ~ mpg", MT, family="binomial", names="R").update(". ~ . + wt", family=PROBIT),
    "glm_data": lambda: tl.update(tl.glm("carb ~ wt", MT, family="poisson", names="R"), ". ~ . + factor(am)",
                                  data=MT[MT["cyl"] != 6]),
    "glm_offset_keeps": lambda: tl.glm("carb ~ wt + offset(log(hp))", MT, family="poisson",
                                       names="R").update(". ~ . + qsec"),
    "dot_log_square": lambda: tl.update(tl.lm("mpg ~ .", SMALL, names="R"), "log(.) ~ .^2"),
    "dot_kept": lambda: tl.lm("mpg ~ .", SMALL, names="R").update(subset="hp > 100"),
}


@pytest.mark.parametrize("case", sorted(FITS))
def test_update_fits_as_r_s_update(case):
    before = MT.copy()
    fit = FITS[case]()
    r = R["fits"][case]
    assert fit.names == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9)
    assert fit.nobs == r["nobs"]
    assert fit.call.startswith(f"{'glm' if 'glm' in case else 'lm'}(formula = {r['call_formula']}")
    assert fit.formula == r["formula"]
    assert MT.equals(before)


def _changed_only(call, start, key, value):
    assert isinstance(call, Refit) and call.fitter is start._refit.fitter
    assert call.arguments[key] is value
    assert {k: v for k, v in call.arguments.items() if k != key} == \
        {k: v for k, v in start._refit.arguments.items() if k != key}


def test_update_keeps_the_other_arguments_and_changes_the_given_one():
    start = tl.lm("mpg ~ wt + factor(cyl)", MT, weights="carb", subset="hp > 60", offset="qsec",
                  contrasts={"factor(cyl)": "contr.sum"}, na_action="exclude")
    for key, value in [("data", MT.iloc[:25]), ("subset", "hp > 70"), ("weights", "gear"), ("offset", None),
                       ("contrasts", {"factor(cyl)": "contr.helmert"}), ("na_action", "omit"), ("names", "R")]:
        call = start.update(**{key: value}, evaluate=False)
        _changed_only(call, start, key, value)
        assert call.formula == "mpg ~ wt + factor(cyl)"
    fit = start.update(". ~ . + hp", subset="hp > 70")
    direct = tl.lm("mpg ~ wt + factor(cyl) + hp", MT, weights="carb", subset="hp > 70", offset="qsec",
                   contrasts={"factor(cyl)": "contr.sum"}, na_action="exclude")
    np.testing.assert_array_equal(fit.coef().to_numpy(), direct.coef().to_numpy())
    assert fit.call == direct.call
    g = tl.glm("am ~ wt", MT, family="binomial", weights="carb", subset="hp > 60")
    for key, value in [("family", PROBIT), ("control", {"maxit": 50}), ("exact", True)]:
        _changed_only(g.update(**{key: value}, evaluate=False), g, key, value)
    probit = g.update(family=PROBIT)
    assert probit.family.link.name == "probit" and probit.nobs == g.nobs


def test_evaluate_false_gives_the_new_call_without_fitting():
    fit = tl.lm("mpg ~ .", SMALL)
    call = tl.update(fit, ". ~ . - wt", subset="hp > 100", evaluate=False)
    assert isinstance(call, Refit)
    assert call.formula == "mpg ~ hp + qsec"
    assert call.call == "lm(formula = mpg ~ hp + qsec, data = <DataFrame 32 x 4>, subset = hp > 100)"
    assert repr(call) == call.call
    refit = call.evaluate()
    np.testing.assert_array_equal(refit.coef().to_numpy(),
                                  tl.lm("mpg ~ hp + qsec", SMALL, subset="hp > 100").coef().to_numpy())
    assert fit.update(evaluate=False).formula == "mpg ~ ."  # no formula given: the call's, as R keeps it


def test_the_printed_call_is_r_s_after_update():
    fit = tl.lm("mpg ~ wt * qsec", MT).update(". ~ . - 1")
    # R: summary(update(lm(mpg ~ wt*qsec, mtcars), . ~ . - 1))$call, less data = mtcars, which torchlm omits
    assert "\nCall:\nlm(formula = mpg ~ wt + qsec + wt:qsec - 1)\n" in str(fit.summary())
    g = tl.glm("am ~ wt", MT, family="binomial").update(". ~ . + I(hp**2)")
    assert g.call == "glm(formula = am ~ wt + I(hp^2), family = binomial)"


def test_update_twice_and_the_old_fit_is_kept():
    base = tl.lm("mpg ~ wt", MT)
    coef = base.coef().copy()
    twice = base.update(". ~ . + hp").update(". ~ . - wt")
    assert twice.formula == "mpg ~ hp"
    np.testing.assert_array_equal(base.coef().to_numpy(), coef.to_numpy())
    assert base.formula == "mpg ~ wt"


def test_a_formula_r_cannot_read_is_updated_as_formulaic_reads_it():
    fit = tl.lm("mpg ~ {wt + 1}", MT).update(". ~ . + hp")
    np.testing.assert_array_equal(fit.coef().to_numpy(), tl.lm("mpg ~ {wt + 1} + hp", MT).coef().to_numpy())


def test_update_bad_calls_are_clear_errors():
    fit = tl.lm("mpg ~ wt", MT)
    with pytest.raises(tl.FormulaError, match="without a response"):
        fit.update("NULL ~ .")  # R fails here with "incompatible dimensions"
    with pytest.raises(tl.FormulaError, match=r"'\. ~ \. \+ x'"):
        fit.update("hp")
    with pytest.raises(tl.FormulaError, match="R's error"):
        fit.update(". ~ . + 2")
    with pytest.raises(tl.OptionError, match=r"\['famly'\].*lm\(\) does not take"):
        fit.update(famly="binomial")
    with pytest.raises(tl.OptionError, match="takes a fitted model"):
        tl.update(3)
    with pytest.raises(tl.OptionError, match="with no change"):
        tl.update("mpg ~ wt")
    with pytest.raises(tl.OptionError, match=r"and arguments \['data'\]"):
        tl.update("mpg ~ wt", ". ~ .", data=MT)
    estimates = tl.mle(lambda p: (p["a"] - 1) ** 2 + 1, start={"a": 0.0})
    assert estimates.formula is None
    with pytest.raises(tl.OptionError, match="was not"):
        tl.update(estimates, ". ~ .")
