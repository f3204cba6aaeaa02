"""The model frame (R's model.frame) apart from the model matrix: rows, subset, NA omission, weights, offset."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.frame import Design, ModelFrame, build_design, model_frame, model_matrix
from torchlm.frame import build_design as legacy_build_design


@pytest.fixture
def df():
    """12 rows labelled r0..r11 with missing values in y, x, w and o, and one outside the subset."""
    rng = np.random.default_rng(7)
    n = 12
    d = pd.DataFrame({
        "y": rng.uniform(1, 5, n), "x": np.linspace(0.5, 6.0, n), "w": rng.uniform(0.5, 2.0, n),
        "o": rng.normal(size=n), "g": list("abcabcabcabc"), "other": np.nan,
    }, index=[f"r{i}" for i in range(n)])
    d.loc["r1", "y"] = np.nan
    d.loc["r4", "x"] = np.nan
    d.loc["r6", "w"] = np.nan
    d.loc["r9", "o"] = np.nan
    d.loc["r11", "x"] = np.nan
    return d


SUBSET = "x > 0.9 or x != x"  # drops r0 (x = 0.5) and keeps the rows with a missing x (r4, r11)


def test_nls_like_frame_from_variable_names(df):
    before = df.copy(deep=True)
    mf = model_frame(df, ["y", "x"], weights="w", subset="x > 0.9")
    # r0 is outside the subset (x = 0.5); "x > 0.9" is NA at NaN x, so r4, r11 are R's rows of NAs,
    # dropped for missing values as r1 (y) and r6 (w) are
    assert list(mf.index) == ["r2", "r3", "r5", "r7", "r8", "r9", "r10"]
    assert mf.rows.tolist() == [2, 3, 5, 7, 8, 9, 10]
    assert mf.n_dropped == 4 and len(mf) == mf.n == 7
    assert mf.variables == ("y", "x") and mf.weights_column == "w" and mf.offset is None
    np.testing.assert_array_equal(mf.weights, df["w"].to_numpy()[mf.rows])
    np.testing.assert_array_equal(mf.values("y"), df["y"].to_numpy()[mf.rows])
    col = mf.column("x")
    assert list(col.index) == list(mf.index) and col.name == "x"
    assert mf.subset.tolist() == (df["x"] > 0.9).tolist()
    assert mf.data is df  # a reference, not a copy
    assert df.equals(before) and list(df.index) == list(before.index)


def test_rows_dropped_across_variables_weights_and_offset(df):
    before = df.copy(deep=True)
    mf = model_frame(df, ["y", "x"], weights="w", offset="o", subset=SUBSET)
    # the subset keeps 11 rows (not r0); r1 (y), r4 (x), r6 (w), r9 (o), r11 (x) are incomplete
    assert list(mf.index) == ["r2", "r3", "r5", "r7", "r8", "r10"]
    assert mf.n_dropped == 5
    np.testing.assert_array_equal(mf.offset, df["o"].to_numpy()[mf.rows])
    assert mf.offset_column == "o"
    assert df.equals(before)


def test_r_row_counting(df):
    # R counts in n_dropped only the rows of the subset that na.omit removes
    assert model_frame(df).n_dropped == 0 and len(model_frame(df)) == 12
    assert model_frame(df, ["y"]).n_dropped == 1
    assert model_frame(df, ["x"]).n_dropped == 2
    assert model_frame(df, ["x"], subset=df["x"].to_numpy() < 6).n_dropped == 0  # NaN < 6 is False
    assert model_frame(df, ["y", "x"], weights="w").n_dropped == 4
    mf = model_frame(df, ["y"], subset=np.arange(12) < 6)
    assert (len(mf), mf.n_dropped) == (5, 1)
    # the design's count is the frame's
    d = build_design("y ~ x", df, weights="w", offset="o", subset=SUBSET)
    assert d.n_dropped == 5 and d.frame.n_dropped == 5 and list(d.index) == list(d.frame.index)


def test_response_as_expression(df):
    mf = model_frame(df, ["log(y)", "x"])
    np.testing.assert_allclose(mf.values("log(y)"), np.log(df["y"].to_numpy()[mf.rows]))
    np.testing.assert_allclose(mf.values("y^2 / x"), (df["y"] ** 2 / df["x"]).to_numpy()[mf.rows])
    # log of a negative value is missing (r0), log(0) is -Inf and stays (r1 goes for its y), as R's na.omit
    d = df.assign(z=df["x"] - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mf2 = model_frame(d, ["y", "log(z)"])
    assert "r0" not in mf2.index and mf2.n_dropped == 4
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isneginf(model_frame(d, ["log(z)"]).values("log(z)")).sum() == 1


def test_restrict_and_frozen(df):
    mf = model_frame(df, ["y"], weights="w")
    sub = mf.restrict([0, 2], variables=["x"])
    assert list(sub.index) == [mf.index[0], mf.index[2]]
    assert sub.n_dropped == mf.n_dropped + len(mf) - 2 and sub.variables == ("y", "x")
    np.testing.assert_array_equal(sub.weights, mf.weights[[0, 2]])
    mask = np.zeros(len(mf), dtype=bool)
    mask[-1] = True
    assert list(mf.restrict(mask).index) == [mf.index[-1]]
    assert len(mf) == 10  # unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        mf.n_dropped = 0


def _same_design(a: Design, b: Design) -> None:
    assert a.names == b.names and a.assign == b.assign and a.response == b.response
    assert a.formula == b.formula and a.has_intercept == b.has_intercept
    assert a.n_dropped == b.n_dropped and a.index.equals(b.index)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_allclose(a.X, b.X, rtol=1e-12, atol=1e-14)
    for u, v in ((a.weights, b.weights), (a.offset, b.offset)):
        assert (u is None) == (v is None)
        if u is not None:
            np.testing.assert_array_equal(u, v)
    assert (a.weights_column, a.offset_column) == (b.weights_column, b.offset_column)


CASES = [
    ("y ~ x + C(g)", {}),
    ("y ~ poly(x, 2, raw=True)", {}),
    ("y ~ x", {"offset": "o"}),
    ("y ~ x + g", {"weights": "w"}),
    ("y ~ I(x^2)", {"subset": SUBSET}),
    ("y ~ poly(x, 2, raw=True) + C(g)", {"weights": "w", "offset": "o", "subset": SUBSET}),
]


@pytest.mark.parametrize("formula,kw", CASES)
def test_design_on_the_frame_is_the_design(df, formula, kw):
    before = df.copy(deep=True)
    d = build_design(formula, df, **kw)
    assert isinstance(d.frame, ModelFrame) and d.data is df and d.frame.data is df
    assert set(d.frame.variables) >= {"y", "x"}
    # the old entry point is the same function
    _same_design(legacy_build_design(formula, df, **kw), d)
    # frame first (no variables: formulaic decides the incomplete rows), then the matrix
    _same_design(model_matrix(formula, model_frame(df, **kw)), d)
    # a frame already cleared of rows with missing variables gives the same design
    _same_design(model_matrix(formula, model_frame(df, ["y", "x"], **kw)), d)
    # and the rows used are those of the same fit on the complete rows only
    used = df.loc[d.index]
    kw2 = {k: (used[v] if isinstance(v, str) and k != "subset" else v) for k, v in kw.items() if k != "subset"}
    ref = build_design(formula, used, **kw2)
    np.testing.assert_allclose(ref.X, d.X, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(ref.y, d.y)
    assert df.equals(before)


def test_poly_learned_on_every_row(df):
    # R: model.frame evaluates poly(x, 2) on every row of data before na.omit, so a row with a missing
    # response enters the orthogonal polynomials; a missing x is R's error
    with pytest.raises(tl.DataError, match="missing values are not allowed in 'poly'"):
        build_design("y ~ poly(x, 2)", df)
    full = df.assign(x=np.linspace(0.5, 6.0, len(df)))
    d = build_design("y ~ poly(x, 2)", full)
    assert d.n_dropped == 1
    every = build_design("z ~ poly(x, 2)", full.assign(z=1.0))
    np.testing.assert_allclose(d.X, every.X[full["y"].notna().to_numpy()], rtol=1e-12, atol=1e-14)
    # orthonormal columns on all 12 rows: the state is from every row, not the 11 used
    P = every.X[:, 1:]
    np.testing.assert_allclose(P.T @ P, np.eye(2), atol=1e-12)


def test_design_frame_narrowed_to_formulaic_rows(df):
    # log(x - 1.2) is missing where x < 1.2 (r0; r1 also lacks y): only formulaic sees that, as it
    # evaluates the term, so the frame is narrowed after materializing
    with np.errstate(invalid="ignore", divide="ignore"):
        d = build_design("y ~ log(x - 1.2)", df, weights="w")
    assert list(d.index) == ["r2", "r3", "r5", "r7", "r8", "r9", "r10"]
    assert d.frame.n == d.shape[0] and list(d.frame.index) == list(d.index)
    np.testing.assert_array_equal(d.frame.weights, d.weights)
    assert d.n_dropped == d.frame.n_dropped == 5
    assert set(d.frame.variables) == {"y", "x"}


def test_fit_uses_the_frame(df):
    fit = tl.lm("y ~ x", df, weights="w", subset=SUBSET)
    assert fit.design.frame.weights_column == "w" and fit.design.frame.na_action == "omit"
    clean = df.loc[fit.design.index]
    ref = tl.lm("y ~ x", clean, weights=clean["w"].to_numpy())
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-12)


def test_errors_are_the_same_classes(df):
    with pytest.raises(tl.UnknownVariableError, match="nope"):
        model_frame(df, ["y", "nope"])
    with pytest.raises(tl.UnknownVariableError, match="nope"):
        model_frame(df, ["log(nope)"])
    with pytest.raises(tl.UnknownVariableError, match="nope"):
        build_design("y ~ nope", df)
    with pytest.raises(tl.UnknownVariableError, match="weights='nope'"):
        model_frame(df, ["y"], weights="nope")
    neg = -np.ones(len(df))
    with pytest.raises(tl.DataError, match="weights must be non-negative"):
        model_frame(df, ["y"], weights=neg)
    with pytest.raises(tl.DataError, match="weights must be non-negative"):
        build_design("y ~ x", df, weights=neg)
    with pytest.raises(tl.DataError, match="non-finite"):
        model_frame(df, ["y"], offset=np.full(len(df), np.inf))
    with pytest.raises(tl.DataError, match="na_action='fail'"):
        model_frame(df, ["y"], na_action="fail")
    with pytest.raises(tl.DataError, match="all values of 'other' are missing"):
        model_frame(df, ["y", "other"])
    with pytest.raises(tl.DataError, match="subset"):
        model_frame(df, ["y"], subset="x > 100")
    with pytest.raises(tl.ModelInputError, match="na_action"):
        model_frame(df, ["y"], na_action="nope")
    with pytest.raises(tl.FormulaError, match="formula"):
        model_frame(df, ["y ~ x"])
    with pytest.raises(tl.ModelInputError, match="cannot evaluate subset"):
        model_frame(df, ["y"], subset="nope > 1")
    with pytest.raises(tl.DataError):
        model_frame([1, 2, 3], ["y"])


def test_user_data_never_modified(df):
    before = copy.deepcopy(df)
    mask = np.ones(len(df), dtype=bool)
    mf = model_frame(df, ["y", "log(x)"], weights="w", offset="o", subset=mask)
    mask[:] = False  # the frame kept its own copy of the subset
    assert mf.subset.all()
    build_design("y ~ scale(x) + C(g)", df, weights="w", offset="o", subset=SUBSET)
    assert df.equals(before) and df.index.equals(before.index) and list(df.columns) == list(before.columns)


def test_a_comparison_with_a_missing_value_is_missing_as_in_r():
    """R: NA > 120 is NA, so lm(mpg ~ wt + I(hp > 120)) drops hp's NA rows (df.residual 27 with two of them, R
    4.2.2); is.na(hp) | hp > 120 is TRUE there and keeps them (29). numpy's NaN > 120 is False."""
    mt = tl.datasets.load("mtcars").copy()
    mt.loc[mt.index[[2, 7]], "hp"] = np.nan
    before = mt.copy()
    fit = tl.lm("mpg ~ wt + I(hp > 120)", mt)
    assert fit.df_residual == 27
    ref = tl.lm("mpg ~ wt + I(hp > 120)", mt.dropna(subset=["hp"]))
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.coef().to_numpy(), [35.19014, -4.08363, -3.65216], atol=5e-6)  # R's
    kept = tl.lm("mpg ~ wt + I(is.na(hp) | (hp > 120))", mt)
    assert kept.df_residual == 29
    own = tl.lm("mpg ~ wt + big", mt.assign(big=(mt.hp.isna() | (mt.hp > 120)).astype(float)))
    np.testing.assert_allclose(kept.coef().to_numpy(), own.coef().to_numpy(), rtol=1e-12)
    pd.testing.assert_frame_equal(mt, before)
