"""Bad input: each case raises the documented torchlm.errors class with a message naming the problem."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
from torchlm.errors import DataError, FormulaError, ModelInputError, UnknownVariableError


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    n = 12
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
        "g": list("abc") * (n // 3),
        "w": rng.uniform(0.5, 2.0, n),
    })


def raises(exc, *fragments):
    """pytest.raises(exc) whose message must contain every fragment (case-insensitive)."""
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(exc, match=re.compile(pattern, re.IGNORECASE | re.DOTALL))


def test_error_hierarchy():
    for cls in (UnknownVariableError, FormulaError, DataError, ModelInputError):
        assert issubclass(cls, ValueError)
    assert issubclass(UnknownVariableError, FormulaError)
    assert issubclass(FormulaError, ModelInputError) and issubclass(DataError, ModelInputError)
    assert tl.DataError is DataError and tl.UnknownVariableError is UnknownVariableError


# --- formula ---------------------------------------------------------------------------------

def test_unknown_column(df):
    with raises(UnknownVariableError, "'nope'", "not a column") as e:
        tl.lm("y ~ x + nope", data=df)
    assert isinstance(e.value, ValueError) and isinstance(e.value, KeyError)
    assert str(e.value).startswith("formula")  # not KeyError's quoted repr


def test_unknown_response_column(df):
    with raises(UnknownVariableError, "'yy'"):
        tl.lm("yy ~ x", data=df)


def test_formula_syntax_error(df):
    with raises(FormulaError, "cannot parse", "y ~ x +"):
        tl.lm("y ~ x +", data=df)


def test_missing_response(df):
    with raises(FormulaError, "no response"):
        tl.lm("~ x", data=df)


def test_empty_right_hand_side(df):
    with raises(FormulaError, "nothing after"):
        tl.lm("y ~ ", data=df)


def test_formula_not_a_string(df):
    with raises(FormulaError, "string"):
        tl.lm(None, data=df)


# --- response --------------------------------------------------------------------------------

def test_string_response(df):
    with raises(DataError, "'g'", "not numeric"):
        tl.lm("g ~ x", data=df)


def test_two_level_string_response(df):
    df["s"] = ["yes", "no"] * 6
    with raises(DataError, "'s'", "not numeric"):
        tl.lm("s ~ x", data=df)


def test_free_text_response(df):
    df["s"] = [f"obs{i}" for i in range(len(df))]
    with raises(DataError, "'s'", "not numeric"):
        tl.lm("s ~ x", data=df)


def test_constant_string_response(df):
    """R's lm refuses any character response; a single-level string column must not become y = 1."""
    df["s"] = "same"
    with raises(DataError, "'s'", "not numeric"):
        tl.lm("s ~ x", data=df)


# --- missing values and sizes ----------------------------------------------------------------

def test_empty_after_na_removal(df):
    df.loc[::2, "x"] = np.nan
    df.loc[1::2, "y"] = np.nan
    with raises(DataError, "no observations", "missing"):
        tl.lm("y ~ x", data=df)


def test_all_na_column(df):
    df["x"] = np.nan
    with raises(DataError, "no observations", "'x'"):
        tl.lm("y ~ x + z", data=df)


def test_saturated_fit_is_r(df):
    # R fits n = p (and n < p with aliased columns) with no residual degrees of freedom: exact
    # coefficients, residuals exactly 0, sigma 0/0 = NaN, adjusted R^2 and F NaN
    three = df.iloc[:3]
    fit = tl.lm("y ~ x + z", data=three)
    X = np.c_[np.ones(3), three[["x", "z"]].to_numpy()]
    np.testing.assert_allclose(fit.coef().to_numpy(), np.linalg.solve(X, three["y"].to_numpy()), rtol=1e-10)
    assert fit.df_residual == 0 and np.all(fit.residuals().to_numpy() == 0.0)
    assert np.isnan(fit.sigma) and fit.r_squared == 1.0 and np.isnan(fit.adj_r_squared)
    assert fit.std_errors().isna().all() and fit.std_errors(vcov="HC1").isna().all()
    text = str(fit.summary())
    assert "ALL 3 residuals are 0: no residual degrees of freedom!" in text
    assert "Residual standard error: NaN on 0 degrees of freedom" in text
    assert "Adjusted R-squared:    NaN" in text and "F-statistic:   NaN on 2 and 0 DF,  p-value: NA" in text


def test_fewer_rows_than_coefficients_aliases_as_r(df):
    df.loc[2:, "z"] = np.nan
    fit = tl.lm("y ~ x + z", data=df)  # two rows left: R gives the line through them, z NA
    assert fit.nobs == 2 and fit.rank == 2 and fit.aliased.tolist() == [False, False, True]
    x, y = df["x"].to_numpy()[:2], df["y"].to_numpy()[:2]
    slope = (y[1] - y[0]) / (x[1] - x[0])
    np.testing.assert_allclose(fit.coef().to_numpy()[:2], [y[0] - slope * x[0], slope], rtol=1e-10)


def test_na_action_fail(df):
    df.loc[4, "x"] = np.nan
    with raises(DataError, "missing", "na_action='fail'"):
        tl.lm("y ~ x", data=df, na_action="fail")


def test_na_action_fail_without_nas_fits(df):
    fit = tl.lm("y ~ x", data=df, na_action="fail")
    assert fit.nobs == len(df)


def test_bad_na_action(df):
    with raises(ModelInputError, "na_action", "'pass'"):
        tl.lm("y ~ x", data=df, na_action="pass")


# --- non-finite values -----------------------------------------------------------------------

def test_inf_in_predictor(df):
    df.loc[2, "x"] = np.inf
    with raises(DataError, "non-finite", "x"):
        tl.lm("y ~ x + z", data=df)


def test_minus_inf_in_predictor(df):
    df.loc[2, "z"] = -np.inf
    with raises(DataError, "non-finite", "z"):
        tl.lm("y ~ x + z", data=df)


def test_inf_in_response(df):
    df.loc[5, "y"] = np.inf
    with raises(DataError, "non-finite", "'y'"):
        tl.lm("y ~ x", data=df)


def test_inf_weights(df):
    df.loc[0, "w"] = np.inf
    with raises(DataError, "weights", "non-finite"):
        tl.lm("y ~ x", data=df, weights="w")


def test_inf_offset(df):
    off = np.zeros(len(df))
    off[1] = -np.inf
    with raises(DataError, "offset", "non-finite"):
        tl.lm("y ~ x", data=df, offset=off)


# --- weights ---------------------------------------------------------------------------------

def test_negative_weights(df):
    df.loc[3, "w"] = -0.5
    with raises(DataError, "weights", "negative"):
        tl.lm("y ~ x", data=df, weights="w")


def test_weights_column_missing(df):
    with raises(UnknownVariableError, "weights", "'wt'"):
        tl.lm("y ~ x", data=df, weights="wt")


def test_weights_wrong_length(df):
    with raises(DataError, "weights", "one value per row"):
        tl.lm("y ~ x", data=df, weights=np.ones(5))


def test_all_zero_weights(df):
    with raises(DataError, "0 observations"):
        tl.lm("y ~ x", data=df, weights=np.zeros(len(df)))


# --- data ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [[1, 2, 3], np.zeros((4, 2)), "y,x\n1,2", 3.0])
def test_data_not_a_dataframe(bad):
    with raises(DataError, "data frame", type(bad).__name__):
        tl.lm("y ~ x", data=bad)


def test_dict_data_works(df):
    d = {k: df[k].to_numpy() for k in ("y", "x", "z")}
    fit = tl.lm("y ~ x + z", data=d)
    ref = tl.lm("y ~ x + z", data=df)
    np.testing.assert_array_equal(fit.coef().to_numpy(), ref.coef().to_numpy())
    lists = tl.lm("y ~ x + z", data={k: list(v) for k, v in d.items()})
    np.testing.assert_array_equal(lists.coef().to_numpy(), ref.coef().to_numpy())


def test_ragged_dict_data(df):
    with raises(DataError, "dict"):
        tl.lm("y ~ x", data={"y": [1.0, 2.0, 3.0], "x": [1.0, 2.0]})


def test_bad_subset(df):
    with raises(ModelInputError, "subset"):
        tl.lm("y ~ x", data=df, subset="nope > 1")
    with raises(ModelInputError, "subset"):
        tl.lm("y ~ x", data=df, subset=np.ones(3, dtype=bool))


def test_lm_does_not_modify_data(df):
    df.loc[2, "x"] = np.nan
    df["g"] = df["g"].astype("category")
    df = df.set_index(pd.Index([f"r{i}" for i in range(len(df))]))
    before = copy.deepcopy(df)
    fit = tl.lm("y ~ x + I(z**2) + C(g) + np.log(w)", data=df, weights="w", subset=df["z"] > -5)
    tl.lm("y ~ x", data=df, offset="z", subset="w > 0.6")
    fit.summary().__str__()
    fit.predict(df.iloc[3:6])
    pd.testing.assert_frame_equal(df, before)
    assert df.index.equals(before.index)


def test_predict_does_not_modify_newdata(df):
    fit = tl.lm("y ~ x + g", data=df)
    new = df.iloc[:4].copy()
    before = new.copy(deep=True)
    fit.predict(new, se_fit=True, interval="confidence")
    pd.testing.assert_frame_equal(new, before)


# --- dtype -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, "float32"])
def test_float32_warns(df, dtype):
    with pytest.warns(UserWarning, match="float32"):
        fit = tl.lm("y ~ x + z", data=df, dtype=dtype)
    ref = tl.lm("y ~ x + z", data=df)
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-4, atol=1e-5)


def test_float64_does_not_warn(df, recwarn):
    tl.lm("y ~ x + z", data=df, dtype=torch.float64)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_bad_dtype(df):
    with pytest.raises(ValueError, match="dtype"):
        tl.lm("y ~ x", data=df, dtype=torch.int64)


# --- predict ---------------------------------------------------------------------------------

def test_unseen_factor_level_in_predict(df):
    fit = tl.lm("y ~ x + g", data=df)
    new = pd.DataFrame({"x": [0.1, 0.2], "g": ["a", "zz"]})
    with raises(DataError, "'zz'", "not seen"):
        fit.predict(new)


def test_predict_missing_column(df):
    fit = tl.lm("y ~ x + z", data=df)
    with raises(UnknownVariableError, "'z'"):
        fit.predict(pd.DataFrame({"x": [0.1]}))


def test_predict_bad_interval(df):
    fit = tl.lm("y ~ x", data=df)
    with pytest.raises(ValueError, match="interval"):
        fit.predict(df, interval="credible")


def test_vcov_unknown_type(df):
    fit = tl.lm("y ~ x", data=df)
    with pytest.raises(ValueError, match="HC9"):
        fit.vcov(type="HC9")


# --- degenerate but valid input --------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, 2.0])
def test_constant_numeric_response_fits(df, value):
    """R fits a constant response (intercept = the constant, slopes 0; summary warns of a perfect fit)."""
    df["y"] = value
    fit = tl.lm("y ~ x + z", data=df)
    b = fit.coef()
    assert b["Intercept"] == pytest.approx(value, abs=1e-12)
    assert np.all(np.abs(b[["x", "z"]].to_numpy()) < 1e-12)
    assert fit.deviance < 1e-20
    assert fit.df_residual == len(df) - 3


def test_datetime_predictor_is_named(df):
    d = df.assign(day=pd.date_range("2024-01-01", periods=len(df)))
    with pytest.raises(tl.DataError, match=r"'day' hold dates or times.*convert them to numbers"):
        tl.lm("y ~ x + day", data=d)


def test_predict_numeric_column_given_as_text(df):
    fit = tl.lm("y ~ x + g", data=df)
    with pytest.raises(tl.DataError, match=r"column\(s\) 'x' changed between numbers and text"):
        fit.predict(pd.DataFrame({"x": ["1.5"], "g": ["a"]}))
