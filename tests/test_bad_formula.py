"""Bad and odd formulas (issue 14): R's result or R's warning, else a FormulaError naming the problem and the fix.

R's numbers and warnings come from tests/fixtures/bad_input/make_bad_input.R (r_bad_input.json).
Every case also checks that the user's data is unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _bad_input import R, lstsq, make_data, raises, unchanged

import torchlm as tl
from torchlm.errors import FormulaError, TorchlmWarning, UnknownVariableError


@pytest.fixture
def d():
    return make_data()



def r_coef(case):
    return np.atleast_1d(np.asarray(R[case]["coef"], dtype=float))


def r_warnings(case):
    w = R[case]["warnings"]
    return [w] if isinstance(w, str) else list(w)


# --- an arithmetic response is R's arithmetic ---------------------------------------------------

@pytest.mark.parametrize("formula, case, reference", [
    ("y + z ~ x", "sum_response", lambda d: d.y + d.z),
    ("y - z ~ x", "difference_response", lambda d: d.y - d.z),
    ("y / z ~ x", "ratio_response", lambda d: d.y / d.z),
    ("y * z ~ x", "product_response", lambda d: d.y * d.z),
    ("y^2 ~ x", "power_response", lambda d: d.y ** 2),
])
def test_arithmetic_response_is_computed_as_in_r(d, formula, case, reference):
    fit = unchanged(lambda data: tl.lm(formula, data), d)
    np.testing.assert_allclose(fit.coef().to_numpy(), r_coef(case), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x], reference(d)), rtol=1e-10)
    assert list(fit.coef().index) == ["Intercept", "x"]


def test_sum_response_is_named_as_r_writes_it(d):
    fit = tl.lm("y + z ~ x", d)
    assert fit.design.response == "y + z"
    assert "Response: y + z" in str(tl.anova(fit))


def test_arithmetic_response_with_missing_values_drops_the_row(d):
    dd = d.copy()
    dd.loc[5, "z"] = np.nan
    fit = unchanged(lambda data: tl.lm("y + z ~ x", data), dd)
    keep = np.arange(20) != 5
    assert fit.nobs == 19
    np.testing.assert_allclose(fit.coef().to_numpy(),
                               lstsq([np.ones(19), d.x[keep]], (d.y + d.z)[keep]), rtol=1e-10)


def test_glm_takes_an_arithmetic_response(d):
    dd = d.assign(s=np.arange(20) % 3, f=2)
    fit = unchanged(lambda data: tl.glm("s + f ~ x", data, family="poisson"), dd)
    ref = tl.glm("t ~ x", dd.assign(t=dd.s + dd.f), family="poisson")
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("formula", ["y:z ~ x", "y %in% z ~ x"])
def test_response_with_a_formula_operator_is_an_error(d, formula):
    # R's y:z is a sequence (an error: "variable lengths differ"); formulaic would multiply silently
    with raises(FormulaError, "response", "not arithmetic", "I(y * z) ~ x"):
        unchanged(lambda data: tl.lm(formula, data), d)


# --- the response on the right-hand side ---------------------------------------------------------

@pytest.mark.parametrize("formula, case", [("y ~ x + y", "response_on_rhs"), ("y ~ x * y", "response_in_product"),
                                           ("y ~ y", "response_alone")])
def test_response_on_the_right_is_dropped_with_r_warnings(d, formula, case):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = unchanged(lambda data: tl.lm(formula, data), d)
    ours = [str(w.message) for w in caught if issubclass(w.category, TorchlmWarning)]
    assert ours == r_warnings(case)
    np.testing.assert_allclose(fit.coef().to_numpy(), r_coef(case), rtol=1e-10, atol=1e-13)
    assert "y" not in fit.coef().index


def messages(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, TorchlmWarning)]


def test_response_on_the_right_matches_lstsq(d):
    fit, said = messages(lambda: tl.lm("y ~ x + y + z", d))
    assert "the response appeared on the right-hand side and was dropped" in said
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x, d.z], d.y), rtol=1e-10)
    assert list(fit.coef().index) == ["Intercept", "x", "z"]


def test_transformed_response_on_the_right_is_dropped(d):
    fit, said = messages(lambda: tl.lm("np.log(y + 2) ~ x + np.log(y + 2)", d))
    assert "problem with term 2 in model.matrix: no columns are assigned" in said
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x], np.log(d.y + 2)), rtol=1e-10)


def test_interaction_with_the_response_is_kept_as_in_r(d):
    # R keeps y:z (only a term equal to the response is dropped)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchlmWarning)
        fit = tl.lm("y ~ x + y:z", d)
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x, d.y * d.z], d.y), rtol=1e-9)


# --- '|', offset(), '.' and other syntax ---------------------------------------------------------

@pytest.mark.parametrize("formula", ["y ~ x | z", "y ~ x || z", "y ~ x + (1 | g)", "y | z ~ x"])
def test_bar_is_not_a_formula_operator(d, formula):
    with raises(FormulaError, "'|' is not supported", "x + z", "x:z"):
        unchanged(lambda data: tl.lm(formula, data), d)


def test_bar_in_glm(d):
    with raises(FormulaError, "'|' is not supported"):
        tl.glm("y ~ x | z", d)


def test_bar_inside_python_code_is_python(d):
    # inside I(...) '|' is Python's "or" (here of booleans): a formula operator only outside code
    fit = unchanged(lambda data: tl.lm("y ~ I((x > 0) | (z > 0))", data), d)
    flag = ((d.x > 0) | (d.z > 0)).astype(float)
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), flag], d.y), rtol=1e-10)


def test_offset_inside_another_term_is_a_clear_error(d):
    # offset(z) as a term of its own is R's offset (tests/test_r_dialect.py); inside an interaction it is not
    with raises(FormulaError, "offset()", "term of its own", "offset='z'"):
        unchanged(lambda data: tl.lm("y ~ x:offset(z)", data), d)


def test_dot_is_every_other_column(d):
    # R: y ~ . is y ~ x + z + g with these data (tests/test_r_dialect.py has R's numbers)
    dot = unchanged(lambda data: tl.lm("y ~ .", data), d)
    pd.testing.assert_series_equal(dot.coef(), tl.lm("y ~ x + z + g", d).coef())


@pytest.mark.parametrize("formula", ["", "   "])
def test_empty_formula(d, formula):
    with raises(FormulaError, "formula is empty", "y ~ x"):
        tl.lm(formula, d)


@pytest.mark.parametrize("formula", ["y", "~ x", "y + x"])
def test_formula_without_response(d, formula):
    with raises(FormulaError, "has no response", "y ~ x"):
        tl.lm(formula, d)


@pytest.mark.parametrize("formula", [42, None, b"y ~ x", ["y ~ x"]])
def test_formula_not_a_string(d, formula):
    with raises(FormulaError, "formula must be a string"):
        tl.lm(formula, d)


def test_unknown_variable_is_named(d):
    with raises(UnknownVariableError, "'w'", "not a column of data", "columns: y, x, z, g"):
        unchanged(lambda data: tl.lm("y ~ x + w", data), d)


def test_name_that_is_a_local_of_the_package_is_not_found(d):
    # formulaic looks names the data lacks up in the calling frame: that frame must not be torchlm's
    for name in ("frame", "formula", "na_action", "f"):
        with raises(UnknownVariableError, f"'{name}'"):
            tl.lm(f"y ~ x + {name}", d)


def test_column_with_spaces_needs_backticks(d):
    dd = d.assign(**{"a b": d.z})
    with raises(FormulaError, "cannot parse", "backticks", "`my column`"):
        unchanged(lambda data: tl.lm("y ~ a b", data), dd)
    fit = unchanged(lambda data: tl.lm("y ~ `a b`", data), dd)
    assert list(fit.coef().index) == ["Intercept", "a b"]
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.z], d.y), rtol=1e-10)


def test_parse_errors_are_formula_errors(d):
    for formula in ("y ~ x +", "y ~ (x", "y ~ x ~ z", "y ~ x, z", "y ~ x $ z"):
        with raises(FormulaError, "cannot parse", formula):
            tl.lm(formula, d)


@pytest.mark.parametrize("formula", ["y ~ log(w)", "y ~ I(x + w)", "y ~ {x + w}", "w ~ x"])
def test_unknown_variable_inside_an_expression_is_named(d, formula):
    with raises(UnknownVariableError, "uses 'w'", "not a column of data"):
        unchanged(lambda data: tl.lm(formula, data), d)


def test_unknown_function_is_named(d):
    with raises(FormulaError, "calls 'f'", "not a function", "np.log"):
        unchanged(lambda data: tl.lm("y ~ f(x)", data), d)


def test_term_of_the_wrong_length(d):
    # R: "variable lengths differ (found for 'np.ones(3)')"
    with raises(tl.DataError, "different number of values", "(20)", "one value per row"):
        unchanged(lambda data: tl.lm("y ~ x + np.ones(3)", data), d)


def test_materialize_from_threads_leaves_the_warnings_filters_alone(d):
    # catch_warnings() is not thread-safe: racing threads would leave a filter behind for the whole process
    from concurrent.futures import ThreadPoolExecutor

    from torchlm.frame.formula import materialize

    before = list(warnings.filters)
    dd = d.assign(x=d.x.astype(object), g=d.g.astype("string"))
    with ThreadPoolExecutor(8) as pool:
        shapes = list(pool.map(lambda _: materialize("y + z ~ x + g + y", dd, "drop").rhs.shape, range(64)))
    assert list(warnings.filters) == before
    assert set(shapes) == {(20, 6)}  # Intercept, x, g[T.b..d], y (y is not the response y + z)


def test_power_inside_any_call_is_a_power_as_r():
    # Python's ^ is XOR: on an integer column log(u^2) was log(u XOR 2), a wrong model without an error
    u = np.arange(1, 21)
    data = pd.DataFrame({"u": u, "y": np.log(u) + np.sin(u)})
    got = unchanged(lambda d: tl.lm("y ~ log(u^2) + sqrt(u^3)", d), data).coef().to_numpy()
    X = np.c_[np.ones(20), np.log(u.astype(float) ** 2), np.sqrt(u.astype(float) ** 3)]
    np.testing.assert_allclose(got, lstsq(X.T, data["y"]), rtol=1e-10)
    # outside calls ^ keeps its formula meaning: (a + b)^2 is a, b and a:b
    crossed = tl.lm("y ~ (u + I(u^2))^2", data)
    assert crossed.names == ["Intercept", "u", "I(u ** 2)", "u:I(u ** 2)"]
