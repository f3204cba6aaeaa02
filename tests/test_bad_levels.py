"""Factor levels and stateful transforms as R's model.frame treats them (issue 14).

R's numbers come from tests/fixtures/levels/make_levels.R (levels.json): values outside ``levels=``
are missing (their rows dropped), unused levels are dropped, a binomial glm's factor response is
"first level = failure", and stateful transforms are learned on the complete rows. Every test also
checks that the user's DataFrame is unchanged.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _bad_input import make_data, raises

import torchlm as tl
from torchlm.errors import DataError, TorchlmWarning, UnknownVariableError
from torchlm.frame import design as design_module

R = json.loads((Path(__file__).parent / "fixtures" / "levels" / "levels.json").read_text())


@pytest.fixture
def d():
    return make_data()


def unchanged(before: pd.DataFrame, after: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(before, after)
    assert list(before.dtypes) == list(after.dtypes)


def close_to_r(fit, case: str, rtol: float = 1e-7) -> None:
    ref = R[case]
    coef = np.atleast_1d(np.asarray(ref["coef"], dtype=float))
    np.testing.assert_allclose(fit.coef().to_numpy(), coef, rtol=rtol, atol=1e-9)
    assert fit.nobs == ref["nobs"]


# 1. predict(newdata): a factor's values must be fitted levels, numbers stay numbers

def test_predict_number_for_a_text_factor_is_an_error(d):
    fit = tl.lm("y ~ x + g", d)
    new = pd.DataFrame({"x": [1.0], "g": [2.5]})
    kept = new.copy()
    with raises(DataError, "factor 'g'", "new level", "2.5", "'a', 'b', 'c', 'd'"):
        fit.predict(new)
    unchanged(kept, new)


def test_predict_unknown_text_level_lists_the_levels(d):
    fit = tl.lm("y ~ x + g", d)
    with raises(DataError, "'e'", "not seen when fitting", "'a', 'b', 'c', 'd'"):
        fit.predict(pd.DataFrame({"x": [1.0, 0.0], "g": ["a", "e"]}))


def test_predict_numbers_for_text_levels_says_to_give_text():
    dd = pd.DataFrame({"y": np.arange(6.0) ** 1.5, "k": ["1", "2", "3"] * 2})
    fit = tl.lm("y ~ k", dd)
    with raises(DataError, "factor 'k'", "new level", "as text"):
        fit.predict(pd.DataFrame({"k": [2]}))


def test_predict_numeric_variable_given_as_text(d):
    fit = tl.lm("y ~ x + g", d)
    with raises(DataError, "'x'", "numbers and text", "pd.to_numeric"):
        fit.predict(pd.DataFrame({"x": ["1.5"], "g": ["a"]}))


def test_predict_newdata_missing_a_variable(d):
    fit = tl.lm("y ~ x + g", d)
    with raises(UnknownVariableError, "newdata", "'g'"):
        fit.predict(pd.DataFrame({"x": [1.0]}))


# 2. C(c, levels=[...]): rows of a level not listed are missing, as R's factor(c, levels=) makes them

def test_values_outside_levels_drop_their_rows(d):
    i = np.arange(1, 21)
    dd = d.assign(c=np.array([4, 6, 8, 4, 6])[(i - 1) % 5])
    kept = dd.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # formulaic's DataMismatchWarning must not reach the user
        fit = tl.lm("y ~ x + C(c, levels=[4, 6])", dd)
    close_to_r(fit, "levels_subset")
    assert fit.nobs == 16 and len(fit.coef()) == 3
    unchanged(kept, dd)
    with raises(DataError, "levels=", "na_action='fail'"):
        tl.lm("y ~ x + C(c, levels=[4, 6])", dd, na_action="fail")
    # predict: a value outside levels= is missing there too (R predicts NA)
    p = fit.predict(pd.DataFrame({"x": [0.2, 0.2], "c": [6, 8]}))
    assert np.isfinite(p.iloc[0]) and np.isnan(p.iloc[1])


def test_explicit_levels_no_row_uses_is_an_error(d):
    i = np.arange(1, 21)
    dd = d.assign(c=np.array([4, 6])[(i - 1) % 2])
    with raises(DataError, "level(s) 9", "no row", "levels="):
        tl.lm("y ~ x + C(c, levels=[4, 6, 9])", dd)


# 3. unused categories are dropped (R's drop.unused.levels), the reference is the first used level

def test_unused_first_category_is_dropped(d):
    dd = d.assign(g=pd.Categorical(d.g, categories=["zz", "a", "b", "c", "d"]))
    kept = dd.copy()
    fit = tl.lm("y ~ g", dd)
    assert list(fit.coef().index) == ["Intercept", "g[T.b]", "g[T.c]", "g[T.d]"]
    close_to_r(fit, "unused_first")
    unchanged(kept, dd)
    with raises(DataError, "'zz'", "not seen when fitting"):
        fit.predict(pd.DataFrame({"g": ["zz"]}))


def test_level_only_in_dropped_rows_is_dropped(d):
    dg = d.assign(g=pd.Categorical(d.g, categories=["zz", "a", "b", "c", "d"]))
    fit = tl.lm("y ~ x + g", dg, subset=(dg.g != "a").to_numpy())
    assert list(fit.coef().index) == ["Intercept", "x", "g[T.c]", "g[T.d]"]
    close_to_r(fit, "unused_after_subset")
    dn = dg.copy()
    dn.loc[dn.g == "a", "x"] = np.nan
    kept = dn.copy()
    fit = tl.lm("y ~ x + g", dn)
    close_to_r(fit, "unused_after_na")
    np.testing.assert_allclose(fit.predict(pd.DataFrame({"x": [0.3, -0.2], "g": ["c", "d"]})).to_numpy(),
                               R["unused_after_na"]["predict"], rtol=1e-7)
    with raises(DataError, "'a'", "not seen when fitting"):
        fit.predict(pd.DataFrame({"x": [0.3], "g": ["a"]}))
    unchanged(kept, dn)


def test_text_level_only_in_dropped_rows_is_dropped(d):
    dn = d.copy()
    dn.loc[dn.g == "a", "x"] = np.nan
    fit = tl.lm("y ~ x + g", dn)
    close_to_r(fit, "unused_after_na")


# 4. a one-level factor predictor is R's error

def test_one_level_factor_is_an_error(d):
    dd = d.assign(h="a")
    kept = dd.copy()
    with raises(DataError, "factor 'h'", "single level", "contrasts can be applied only to factors with 2 or more"):
        tl.lm("y ~ x + h", dd)
    for formula in ("y ~ 0 + h", "y ~ x:h"):  # R errors whatever the coding
        with raises(DataError, "factor 'h'", "single level"):
            tl.lm(formula, dd)
    unchanged(kept, dd)


def test_one_level_after_dropping_rows_is_an_error(d):
    dd = d.assign(h=["a"] * 18 + ["b"] * 2)
    dd.loc[18:, "x"] = np.nan
    with raises(DataError, "factor 'h'", "single level", "'a'"):
        tl.lm("y ~ x + h", dd)
    with raises(DataError, "factor 'C(h)'", "single level"):
        tl.glm("y ~ x + C(h)", dd, subset=(dd.h == "a").to_numpy())


# 5. factor responses of a binomial glm: the first level is failure, all others success

def test_one_level_factor_response_is_all_failures(d):
    dd = d.assign(r=pd.Categorical(["a"] * 20))
    kept = dd.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R's own fit warns of no change; the number is what matters
        fit = tl.glm("r ~ 1", dd, family="binomial")
    assert fit.coef().iloc[0] < -20
    close_to_r(fit, "one_level_response", rtol=1e-4)
    unchanged(kept, dd)


def test_three_level_factor_response(d):
    kept = d.copy()
    fit = tl.glm("g ~ x", d, family="binomial")
    close_to_r(fit, "three_level_response", rtol=1e-6)
    # the same as the 0/1 response "not the first level", by a numpy IRLS reference
    X = np.column_stack([np.ones(20), d.x])
    yy = (d.g != "a").to_numpy(float)
    b = np.zeros(2)
    for _ in range(50):
        mu = 1 / (1 + np.exp(-X @ b))
        W = mu * (1 - mu)
        b = b + np.linalg.solve(X.T @ (W[:, None] * X), X.T @ (yy - mu))
    np.testing.assert_allclose(fit.coef().to_numpy(), b, rtol=1e-8)
    unchanged(kept, d)


def test_unused_first_level_of_a_response(d):
    dd = d.assign(r2=pd.Categorical(d.g, categories=["zz", "b", "a", "c", "d"]))
    fit = tl.glm("r2 ~ x", dd, family="binomial")
    close_to_r(fit, "unused_first_response", rtol=1e-6)


def test_factor_response_messages(d):
    with raises(DataError, "'g'", "lm needs a numeric response", "binomial"):
        tl.lm("g ~ x", d)
    with raises(DataError, "'g'", "numeric response", "binomial"):
        tl.glm("g ~ x", d, family="poisson")
    frame = tl.frame.model_frame(d)
    with raises(DataError, "glm with family 'poisson' needs a numeric response", "only for family='binomial'"):
        tl.frame.model_matrix("g ~ x", frame, fitter="glm with family 'poisson'")


# 6. stateful transforms learn on every row of the data with a value (R's model.frame evaluates them first)

def test_scale_with_a_missing_value(d):
    dm = d.copy()
    dm.loc[3, "x"] = np.nan
    kept = dm.copy()
    fit = tl.lm("y ~ scale(x)", dm)
    close_to_r(fit, "scale_missing")
    np.testing.assert_allclose(fit.predict(pd.DataFrame({"x": [0.5, -1.0]})).to_numpy(),
                               R["scale_missing"]["predict"], rtol=1e-7)
    unchanged(kept, dm)
    with raises(DataError, "missing values", "'x'", "na_action='fail'"):
        tl.lm("y ~ scale(x)", dm, na_action="fail")


def test_poly_and_center_with_a_missing_value(d):
    dm = d.copy()
    dm.loc[3, "x"] = np.nan
    complete = dm.dropna().reset_index(drop=True)
    for formula in ("y ~ center(x)", "y ~ scale(x) + log(z + 2)"):
        fit, ref = tl.lm(formula, dm), tl.lm(formula, complete)
        np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-10)
        assert fit.nobs == 19
    # R's poly() refuses the missing value; on the complete rows it gives R's numbers
    with raises(DataError, "missing values are not allowed in 'poly'", "'x' has 1 missing"):
        tl.lm("y ~ poly(x, 2)", dm)
    fit = tl.lm("y ~ poly(x, 2)", complete)
    np.testing.assert_allclose(fit.predict(pd.DataFrame({"x": [0.5, -1.0]})).to_numpy(),
                               R["poly_complete"]["predict"], rtol=1e-7)
    # center(x): the fitted mean is kept for newdata
    fit = tl.lm("y ~ center(x)", dm)
    mean = complete.x.mean()
    b = fit.coef().to_numpy()
    np.testing.assert_allclose(fit.predict(pd.DataFrame({"x": [0.5]})).to_numpy(), b[0] + b[1] * (0.5 - mean))


def test_term_made_missing_by_evaluation_keeps_the_transform_of_every_row(d):
    dd = d.assign(z=d.z.where(np.arange(20) != 5, -3.0))  # log(z + 2) is NaN at row 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = tl.lm("y ~ scale(x) + np.log(z + 2)", dd)
    # R's scale(x) is evaluated on all 20 rows before na.omit drops row 5
    ok = np.arange(20) != 5
    X = np.column_stack([np.ones(19), ((dd.x - dd.x.mean()) / dd.x.std())[ok], np.log(dd.z[ok] + 2)])
    np.testing.assert_allclose(fit.coef().to_numpy(), np.linalg.lstsq(X, dd.y[ok], rcond=None)[0], rtol=1e-10)
    assert fit.nobs == 19


# 7. a design too large for memory is an error before it is built; a very wide one warns

def _many_levels(n_levels: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "f": np.char.add("L", (np.arange(n) % n_levels).astype(str))})


def test_design_too_large_for_memory(monkeypatch):
    dd = _many_levels(20000, 40000)
    kept = dd.copy()
    monkeypatch.setattr(design_module, "available_memory", lambda: 2 * 2**30)
    # tl.glm keeps a factor beyond tl.options(large_factor_levels=) dense: the width check refuses it
    with raises(DataError, "'f' has 20000 levels", "GiB", "fewer levels", "fixed effects"):
        tl.glm("y ~ x + f", dd)
    with tl.options(factor_levels=None), raises(DataError, "'f' has 20000 levels", "GiB"):
        tl.lm("y ~ x + f", dd)
    unchanged(kept, dd)
    # tl.lm fits it by the within transformation (results/large_factor.py), every coefficient R reports
    fit = tl.lm("y ~ x + f", dd)
    assert isinstance(fit, tl.LargeFactorResult) and len(fit.std_errors()) == 20001
    unchanged(kept, dd)


def test_many_levels_never_materialize_quietly():
    """At the machine's own memory: an error, or a warning before any column is built."""
    dd = _many_levels(20000, 40000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchlmWarning)
        with pytest.raises((DataError, TorchlmWarning), match="20000 levels"):
            tl.glm("y ~ x + f", dd)


def test_wide_design_warns_of_the_qr_cost(monkeypatch):
    dd = _many_levels(12, 48)
    monkeypatch.setattr(design_module, "WIDE_DESIGN_COLUMNS", 10)
    with pytest.warns(TorchlmWarning, match=r"about 13 columns.*n p\^2"):
        fit = tl.lm("y ~ f", dd)
    assert len(fit.coef()) == 12


def test_interaction_of_factors_counts_the_product(monkeypatch):
    rng = np.random.default_rng(4)
    dd = pd.DataFrame({"y": rng.normal(size=600), "a": np.arange(600) % 30, "b": (np.arange(600) // 30) % 20})
    monkeypatch.setattr(design_module, "available_memory", lambda: 4 * 600 * 200 * 8)
    with raises(DataError, "GiB", "levels"):
        tl.lm("y ~ C(a):C(b)", dd)


def test_term_that_fills_missing_values_keeps_its_rows(d):
    """R omits rows by the evaluated variables: ifelse(is.na(x), 0, x) keeps the row where x is NA."""
    dm = d.copy()
    dm.loc[3, "x"] = np.nan
    fit = tl.lm("y ~ x.fillna(0)", dm)
    assert fit.nobs == 20
    X = np.column_stack([np.ones(20), dm.x.fillna(0)])
    np.testing.assert_allclose(fit.coef().to_numpy(), np.linalg.lstsq(X, dm.y, rcond=None)[0], rtol=1e-10)


def test_poly_degree_needs_more_distinct_points():
    dd = pd.DataFrame({"y": np.arange(8.0) ** 1.3, "x": [-2, -3] * 4})
    kept = dd.copy()
    for formula in ("y ~ poly(x, 2)", "y ~ 0 + poly(x, degree=3) + I(x^2)"):
        with raises(DataError, "'degree' must be less than number of unique points", "'x' has 2"):
            tl.lm(formula, dd)
    assert len(tl.lm("y ~ poly(x, 1)", dd).coef()) == 2
    unchanged(kept, dd)
