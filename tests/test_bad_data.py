"""Bad and odd data (issue 14): R's result, else a DataError naming the column and the fix.

Columns in the dtypes pandas offers (object, nullable, ``string`` with python or pyarrow storage,
categorical, complex) and odd column names (``Intercept``, repeated names). R's numbers come from
tests/fixtures/bad_input/make_bad_input.R; the others are checked against numpy's least squares.
Every case also checks that the user's data is unchanged.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from _bad_input import R_JSON, R, lstsq, make_data, raises, unchanged

import torchlm as tl
from torchlm.errors import DataError

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
# the pyarrow storage is tested where pyarrow is installed (pandas cannot make such a column without it)
STRING_STORAGES = ["python"] + (["pyarrow"] if HAS_PYARROW else [])


@pytest.fixture
def d():
    return make_data()



def dummies(g, levels):
    """Treatment dummies of the levels after the first."""
    g = np.asarray(g, dtype=object)
    return [(g == lv).astype(float) for lv in levels[1:]]


# --- a column named Intercept ---------------------------------------------------------------------

def test_column_named_intercept_is_a_regressor_beside_the_intercept(d):
    dd = d.rename(columns={"x": "Intercept"})
    fit = unchanged(lambda data: tl.lm("y ~ Intercept", data), dd)
    case = R["intercept_column"]
    assert case["names"] == ["(Intercept)", "Intercept"]
    np.testing.assert_allclose(fit.coef().to_numpy(), case["coef"], rtol=1e-10)
    assert list(fit.coef().index) == ["Intercept", "I(Intercept)"]
    assert fit.design.has_intercept


def test_column_named_intercept_without_intercept(d):
    dd = d.rename(columns={"x": "Intercept"})
    fit = unchanged(lambda data: tl.lm("y ~ Intercept - 1", data), dd)
    assert list(fit.coef().index) == ["I(Intercept)"]
    assert not fit.design.has_intercept  # the user's column is not taken for an intercept
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([d.x], d.y), rtol=1e-10)


def test_column_named_intercept_in_an_interaction_predicts(d):
    dd = d.rename(columns={"x": "Intercept"})
    fit = unchanged(lambda data: tl.lm("y ~ Intercept * g", data), dd)
    X = [np.ones(20), d.x, *dummies(d.g, "abcd"), *[d.x * c for c in dummies(d.g, "abcd")]]
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq(X, d.y), rtol=1e-9)
    new = dd.iloc[:5]
    np.testing.assert_allclose(fit.predict(new).to_numpy(), np.column_stack(X)[:5] @ lstsq(X, d.y), rtol=1e-9)


# --- numbers stored as objects, and mixed columns --------------------------------------------------

def test_object_column_of_numbers_is_numeric(d):
    dd = d.assign(x=d.x.astype(object))
    fit = unchanged(lambda data: tl.lm("y ~ x", data), dd)
    assert list(fit.coef().index) == ["Intercept", "x"]
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x], d.y), rtol=1e-10)


def test_object_column_of_numbers_with_missing_values(d):
    x = pd.Series([None if k == 3 else (int(v * 10) if k % 2 else v) for k, v in enumerate(d.x)], dtype=object)
    dd = d.assign(x=x)
    fit = unchanged(lambda data: tl.lm("y ~ x", data), dd)
    keep = np.arange(20) != 3
    xv = np.array([np.nan if v is None else float(v) for v in x])
    assert fit.nobs == 19
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(19), xv[keep]], d.y[keep]), rtol=1e-10)


def test_object_response_of_numbers(d):
    fit = unchanged(lambda data: tl.lm("y ~ x", data), d.assign(y=d.y.astype(object)))
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), d.x], d.y), rtol=1e-10)


def test_object_column_mixing_numbers_and_text_is_an_error(d):
    x = pd.Series(["a" if k == 3 else v for k, v in enumerate(d.x)], dtype=object)
    with raises(DataError, "column 'x'", "mixes numbers and text", "'a'", "pd.to_numeric", "astype(str)"):
        unchanged(lambda data: tl.lm("y ~ x", data), d.assign(x=x))


def test_object_column_of_text_stays_a_factor(d):
    fit = unchanged(lambda data: tl.lm("y ~ g", data), d.assign(g=d.g.astype(object)))
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), *dummies(d.g, "abcd")], d.y), rtol=1e-10)


# --- complex numbers -------------------------------------------------------------------------------

@pytest.mark.parametrize("as_object", [False, True])
def test_complex_predictor_is_an_error(d, as_object):
    x = d.x + 1j * d.z
    dd = d.assign(x=x.astype(object) if as_object else x)
    assert "complex variables are not currently allowed in model matrices" in R_JSON["complex_error"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with raises(DataError, "column 'x'", "complex numbers", "complex variables are not currently allowed",
                    "np.real", "np.abs"):
            unchanged(lambda data: tl.lm("y ~ x", data), dd)


def test_complex_response_is_an_error(d):
    with raises(DataError, "column 'y'", "complex numbers"):
        unchanged(lambda data: tl.lm("y ~ x", data), d.assign(y=d.y + 0j))


@pytest.mark.parametrize("what", ["weights", "offset"])
def test_complex_weights_or_offset_are_an_error(d, what):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with raises(DataError, what, "complex numbers"):
            unchanged(lambda data: tl.lm("y ~ x", data, **{what: "w"}), d.assign(w=1 + d.z ** 2 + 0.5j))


# --- pandas' string, nullable and categorical dtypes ----------------------------------------------

@pytest.mark.parametrize("storage", STRING_STORAGES)
def test_string_dtype_predictor_is_a_factor(d, storage):
    dd = d.assign(g=d.g.astype(pd.StringDtype(storage)))
    fit = unchanged(lambda data: tl.lm("y ~ x + g", data), dd)
    assert list(fit.coef().index) == ["Intercept", "x", "g[T.b]", "g[T.c]", "g[T.d]"]
    np.testing.assert_allclose(fit.coef().to_numpy(),
                               lstsq([np.ones(20), d.x, *dummies(d.g, "abcd")], d.y), rtol=1e-10)


@pytest.mark.parametrize("storage", STRING_STORAGES)
def test_string_dtype_with_missing_values(d, storage):
    g = pd.array([pd.NA if k == 6 else v for k, v in enumerate(d.g)], dtype=pd.StringDtype(storage))
    fit = unchanged(lambda data: tl.lm("y ~ g", data), d.assign(g=g))
    keep = np.arange(20) != 6
    assert fit.nobs == 19
    np.testing.assert_allclose(fit.coef().to_numpy(),
                               lstsq([np.ones(19), *dummies(d.g[keep], "abcd")], d.y[keep]), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["Int64", "Float64"])
def test_nullable_numbers_with_missing_values(d, dtype):
    xv = np.round(d.x.to_numpy() * 10)
    x = pd.array([pd.NA if k in (2, 9) else v for k, v in enumerate(xv)], dtype=dtype)
    fit = unchanged(lambda data: tl.lm("y ~ x", data), d.assign(x=x))
    keep = ~np.isin(np.arange(20), (2, 9))
    assert fit.nobs == 18
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(18), xv[keep]], d.y[keep]), rtol=1e-10)


def test_nullable_response(d):
    yv = np.round(d.y.to_numpy() * 10)
    y = pd.array([pd.NA if k == 4 else v for k, v in enumerate(yv)], dtype="Int64")
    fit = unchanged(lambda data: tl.lm("y ~ x", data), d.assign(y=y))
    keep = np.arange(20) != 4
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(19), d.x[keep]], yv[keep]), rtol=1e-10)


def test_nullable_boolean_is_zero_one_with_missing_values(d):
    b = (d.z > 0).to_numpy()
    x = pd.array([pd.NA if k == 0 else bool(v) for k, v in enumerate(b)], dtype="boolean")
    fit = unchanged(lambda data: tl.lm("y ~ x", data), d.assign(x=x))
    keep = np.arange(20) != 0
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(19), b[keep].astype(float)], d.y[keep]),
                               rtol=1e-10)


def test_categorical_column_is_a_factor(d):
    dd = d.assign(g=pd.Categorical(d.g, categories=["d", "c", "b", "a"]))
    fit = unchanged(lambda data: tl.lm("y ~ g", data), dd)
    # the categories' order gives the levels, as R's factor levels do: "d" is the reference
    assert list(fit.coef().index) == ["Intercept", "g[T.c]", "g[T.b]", "g[T.a]"]
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq([np.ones(20), *dummies(d.g, "dcba")], d.y), rtol=1e-10)


# --- repeated column names -------------------------------------------------------------------------

def test_repeated_column_names_are_named(d):
    dd = pd.concat([d, d[["x"]]], axis=1)
    with raises(DataError, "more than one column named 'x'", "rename or drop"):
        unchanged(lambda data: tl.lm("y ~ x", data), dd)
    with raises(DataError, "more than one column named 'x'"):
        tl.glm("y ~ z", dd)  # any repeated name: which column a later lookup finds is undefined


def test_repeated_weights_column(d):
    dd = pd.concat([d.assign(w=1.0), pd.DataFrame({"w": np.full(20, 2.0)})], axis=1)
    with raises(DataError, "more than one column named 'w'"):
        unchanged(lambda data: tl.lm("y ~ x", data, weights="w"), dd)


# --- stateful transforms on a column with missing values ------------------------------------------

def test_scale_with_a_missing_value_matches_r(d):
    dd = d.copy()
    dd.loc[3, "x"] = np.nan
    fit = unchanged(lambda data: tl.lm("y ~ scale(x)", data), dd)
    case = R["scale_with_missing"]
    assert fit.nobs == case["nobs"] == 19
    np.testing.assert_allclose(fit.coef().to_numpy(), case["coef"], rtol=1e-10)
    keep = np.arange(20) != 3
    xs = d.x[keep]
    np.testing.assert_allclose(fit.coef().to_numpy(),
                               lstsq([np.ones(19), (xs - xs.mean()) / xs.std(ddof=1)], d.y[keep]), rtol=1e-10)


def test_object_column_of_lists_is_an_error(d):
    # R: "invalid type (list) for variable 'x'"
    with raises(DataError, "column 'x'", "type list", "numbers, or text"):
        unchanged(lambda data: tl.lm("y ~ x", data), d.assign(x=[[v] for v in d.x]))


@pytest.mark.parametrize("kind, values", [("periods", pd.period_range("2020", periods=20, freq="D")),
                                          ("intervals", pd.interval_range(0, 20))])
def test_periods_and_intervals_are_an_error(d, kind, values):
    with raises(DataError, "column 'x'", kind, "astype(str)"):
        unchanged(lambda data: tl.lm("y ~ x", data), d.assign(x=values))


def test_converted_columns_with_a_repeated_index(d):
    # the prepared columns replace the originals by position: a repeated row label must not realign them
    dd = d.assign(x=d.x.astype(object), g=d.g.astype("string")).set_axis([0, 0] * 10)
    fit = unchanged(lambda data: tl.lm("y ~ x + g", data), dd)
    X = [np.ones(20), d.x, *dummies(d.g, "abcd")]
    np.testing.assert_allclose(fit.coef().to_numpy(), lstsq(X, d.y), rtol=1e-10)
    np.testing.assert_allclose(fit.predict(dd.iloc[:4]).to_numpy(), np.column_stack(X)[:4] @ lstsq(X, d.y),
                               rtol=1e-10)
