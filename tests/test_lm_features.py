"""lm features with R semantics: NA omission, subset, zero weights, offset, anova, confint, summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _support import CONFORMANCE, read_exact_csv
from scipy import stats

import torchlm as tl


def load(name: str) -> pd.DataFrame:
    return read_exact_csv(CONFORMANCE / "data" / f"{name}.csv", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def airquality():
    return load("airquality")


@pytest.fixture(scope="module")
def mtcars():
    return load("mtcars")


def ols(X, y, w=None):
    """(beta, rss) by numpy lstsq: the independent reference."""
    sw = np.ones(len(y)) if w is None else np.sqrt(w)
    b = np.linalg.lstsq(sw[:, None] * X, sw * y, rcond=None)[0]
    r = sw * (y - X @ b)
    return b, float(r @ r)


def design(df, cols, intercept=True):
    X = df[cols].to_numpy(dtype=float)
    return np.column_stack([np.ones(len(df)), X]) if intercept else X


def assert_same_fit(a, b, rtol=1e-12):
    assert a.names == b.names
    np.testing.assert_allclose(a.coef().to_numpy(), b.coef().to_numpy(), rtol=rtol)
    np.testing.assert_allclose(a.vcov().to_numpy(), b.vcov().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-12)
    assert (a.nobs, a.df_residual, a.rank) == (b.nobs, b.df_residual, b.rank)


# --- missing values --------------------------------------------------------------------------

def test_na_omission_count(airquality):
    used = ["Ozone", "Solar_R", "Wind", "Temp"]
    k = int(airquality[used].isna().any(axis=1).sum())
    assert k > 0 and airquality[["Wind", "Temp"]].notna().all().all()
    fit = tl.lm("Ozone ~ Solar_R + Wind + Temp", data=airquality)
    assert fit.n_dropped_na == k
    assert fit.nobs == len(airquality) - k
    assert fit.df_residual == len(airquality) - k - 4
    complete = airquality.dropna(subset=used)
    b, rss = ols(design(complete, used[1:]), complete["Ozone"].to_numpy())
    np.testing.assert_allclose(fit.coef().to_numpy(), b, rtol=1e-10)
    np.testing.assert_allclose(fit.deviance, rss, rtol=1e-10)
    assert list(fit.fitted().index) == list(complete.index)
    assert f"  ({k} observations deleted due to missingness)" in str(fit.summary()).split("\n")


def test_na_only_in_unused_column_is_not_dropped(airquality):
    fit = tl.lm("Wind ~ Temp", data=airquality)  # Ozone and Solar_R have NAs, but are not used
    assert fit.n_dropped_na == 0 and fit.nobs == len(airquality)
    assert "deleted due to missingness" not in str(fit.summary())


def test_one_observation_deleted_is_singular(mtcars):
    df = mtcars.copy()
    df.loc[5, "wt"] = np.nan
    fit = tl.lm("mpg ~ wt", data=df)
    assert fit.n_dropped_na == 1 and fit.nobs == len(df) - 1
    assert "  (1 observation deleted due to missingness)" in str(fit.summary()).split("\n")


def test_na_in_weights_is_omitted(mtcars):
    w = np.linspace(0.5, 2.0, len(mtcars))
    w[[3, 7]] = np.nan
    fit = tl.lm("mpg ~ wt + hp", data=mtcars, weights=w)
    keep = ~np.isnan(w)
    b, rss = ols(design(mtcars[keep], ["wt", "hp"]), mtcars["mpg"].to_numpy()[keep], w[keep])
    np.testing.assert_allclose(fit.coef().to_numpy(), b, rtol=1e-10)
    assert fit.nobs == keep.sum() and fit.n_dropped_na == 2


# --- subset ----------------------------------------------------------------------------------

def test_subset_mask_and_query_equal_prefiltered(mtcars):
    mask = (mtcars["hp"] > 100).to_numpy()
    pre = tl.lm("mpg ~ wt + C(cyl)", data=mtcars[mask])
    by_mask = tl.lm("mpg ~ wt + C(cyl)", data=mtcars, subset=mask)
    by_series = tl.lm("mpg ~ wt + C(cyl)", data=mtcars, subset=mtcars["hp"] > 100)
    by_query = tl.lm("mpg ~ wt + C(cyl)", data=mtcars, subset="hp > 100")
    for fit in (by_mask, by_series, by_query):
        assert_same_fit(fit, pre)
        assert list(fit.fitted().index) == list(mtcars.index[mask])
    assert pre.nobs == mask.sum() < len(mtcars)


def test_subset_counts_only_missing_rows_inside_subset(airquality):
    sub = "Month > 6"
    inside = airquality.query(sub)
    used = ["Ozone", "Solar_R", "Wind"]
    k = int(inside[used].isna().any(axis=1).sum())
    fit = tl.lm("Ozone ~ Solar_R + Wind", data=airquality, subset=sub)
    assert fit.n_dropped_na == k
    assert_same_fit(fit, tl.lm("Ozone ~ Solar_R + Wind", data=inside))


# --- weights ---------------------------------------------------------------------------------

def test_zero_weights_drop_out(mtcars):
    w = np.linspace(0.5, 3.0, len(mtcars))
    zero = np.zeros(len(mtcars), dtype=bool)
    zero[[0, 4, 9, 17]] = True
    w[zero] = 0.0
    fit = tl.lm("mpg ~ wt + hp", data=mtcars, weights=w)
    without = tl.lm("mpg ~ wt + hp", data=mtcars[~zero], weights=w[~zero])
    np.testing.assert_allclose(fit.coef().to_numpy(), without.coef().to_numpy(), rtol=1e-10)
    assert fit.nobs == without.nobs == len(mtcars) - zero.sum()
    assert fit.df_residual == without.df_residual == len(mtcars) - zero.sum() - 3
    np.testing.assert_allclose(fit.sigma, without.sigma, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov().to_numpy(), without.vcov().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(fit.loglik(), without.loglik(), rtol=1e-10)
    b, rss = ols(design(mtcars[~zero], ["wt", "hp"]), mtcars["mpg"].to_numpy()[~zero], w[~zero])
    np.testing.assert_allclose(fit.coef().to_numpy(), b, rtol=1e-10)
    # zero-weight rows still get fitted values (R keeps them in fitted())
    assert len(fit.fitted()) == len(mtcars)


def test_weights_by_column_name_equal_array(mtcars):
    df = mtcars.assign(w=np.linspace(1, 2, len(mtcars)))
    a = tl.lm("mpg ~ wt", data=df, weights="w")
    b = tl.lm("mpg ~ wt", data=df, weights=df["w"].to_numpy())
    assert_same_fit(a, b)


def test_unit_weights_equal_unweighted(mtcars):
    assert_same_fit(tl.lm("mpg ~ wt + hp", data=mtcars, weights=np.ones(len(mtcars))),
                    tl.lm("mpg ~ wt + hp", data=mtcars), rtol=1e-11)


# --- offset ----------------------------------------------------------------------------------

def test_offset_equals_fit_of_y_minus_offset(mtcars):
    o = 0.5 * mtcars["hp"].to_numpy() / 10 + np.sin(np.arange(len(mtcars)))
    df = mtcars.assign(o=o, mpg_o=mtcars["mpg"] - o)
    fit = tl.lm("mpg ~ wt", data=df, offset=o)
    shifted = tl.lm("mpg_o ~ wt", data=df)
    np.testing.assert_allclose(fit.coef().to_numpy(), shifted.coef().to_numpy(), rtol=1e-11)
    np.testing.assert_allclose(fit.vcov().to_numpy(), shifted.vcov().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.deviance, shifted.deviance, rtol=1e-11)
    np.testing.assert_allclose(fit.fitted().to_numpy(), shifted.fitted().to_numpy() + o, rtol=1e-12)
    np.testing.assert_allclose(fit.residuals().to_numpy(), shifted.residuals().to_numpy(), atol=1e-12)
    by_name = tl.lm("mpg ~ wt", data=df, offset="o")
    np.testing.assert_allclose(by_name.coef().to_numpy(), fit.coef().to_numpy(), rtol=1e-14)
    # prediction on new rows adds the offset column of newdata
    new = df.iloc[:5]
    np.testing.assert_allclose(by_name.predict(new).to_numpy(), fit.fitted().to_numpy()[:5], rtol=1e-12)


# --- formula -------------------------------------------------------------------------------

def test_caret_inside_I_is_a_power_as_in_r(mtcars):
    """R's I(wt^2) squares wt (Python's ^ would be XOR); ** is the same term."""
    a = tl.lm("mpg ~ wt + I(wt^2)", data=mtcars)
    b = tl.lm("mpg ~ wt + I(wt**2)", data=mtcars)
    X = np.column_stack([np.ones(len(mtcars)), mtcars["wt"], mtcars["wt"] ** 2])
    ref = ols(X, mtcars["mpg"].to_numpy())[0]
    np.testing.assert_allclose(a.coef().to_numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(b.coef().to_numpy(), ref, rtol=1e-10)


def test_intercept_only_model(mtcars):
    fit = tl.lm("mpg ~ 1", data=mtcars)
    y = mtcars["mpg"].to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [y.mean()], rtol=1e-14)
    np.testing.assert_allclose(fit.std_errors().to_numpy(), [y.std(ddof=1) / np.sqrt(len(y))], rtol=1e-12)
    assert fit.fstatistic is None and fit.r_squared == 0


# --- anova -----------------------------------------------------------------------------------

def test_sequential_anova_adds_up(mtcars):
    fit = tl.lm("mpg ~ wt + C(cyl) + hp", data=mtcars)
    tab = tl.anova(fit)
    assert list(tab.columns) == ["Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)"]
    assert list(tab.index) == ["wt", "C(cyl)", "hp", "Residuals"]
    y = mtcars["mpg"].to_numpy()
    tss = float(np.sum((y - y.mean()) ** 2))
    np.testing.assert_allclose(tab["Sum Sq"].sum(), tss, rtol=1e-12)
    assert tab["Df"].tolist() == [1, 2, 1, fit.df_residual]
    assert tab["Df"].sum() == len(y) - 1
    np.testing.assert_allclose(tab.loc["Residuals", "Sum Sq"], fit.deviance, rtol=1e-14)
    np.testing.assert_allclose(tab.loc["Residuals", "Mean Sq"], fit.sigma**2, rtol=1e-12)
    # each row is the drop in RSS when the term is added, in formula order (numpy reference)
    cyl = pd.get_dummies(mtcars["cyl"], prefix="cyl", drop_first=True).astype(float)
    df = pd.concat([mtcars, cyl], axis=1)
    steps = [[], ["wt"], ["wt"] + list(cyl.columns), ["wt"] + list(cyl.columns) + ["hp"]]
    rss = [ols(design(df, c), y)[1] for c in steps]
    np.testing.assert_allclose(tab["Sum Sq"].iloc[:3].to_numpy(), -np.diff(rss), rtol=1e-10)
    f = (tab["Sum Sq"] / tab["Df"] / (fit.deviance / fit.df_residual)).iloc[:3]
    np.testing.assert_allclose(tab["F value"].iloc[:3], f, rtol=1e-12)
    np.testing.assert_allclose(tab["Pr(>F)"].iloc[:3],
                               stats.f.sf(f, tab["Df"].iloc[:3], fit.df_residual), rtol=1e-10)
    assert np.isnan(tab.loc["Residuals", "F value"]) and np.isnan(tab.loc["Residuals", "Pr(>F)"])


def test_sequential_anova_weighted(mtcars):
    w = np.linspace(0.5, 2.0, len(mtcars))
    fit = tl.lm("mpg ~ wt + hp", data=mtcars, weights=w)
    tab = tl.anova(fit)
    y = mtcars["mpg"].to_numpy()
    m = np.sum(w * y) / w.sum()
    np.testing.assert_allclose(tab["Sum Sq"].sum(), np.sum(w * (y - m) ** 2), rtol=1e-12)
    np.testing.assert_allclose(tab.loc["Residuals", "Sum Sq"], fit.deviance, rtol=1e-14)


def test_sequential_anova_no_intercept_adds_to_uncentered(mtcars):
    fit = tl.lm("mpg ~ 0 + wt + hp", data=mtcars)
    tab = tl.anova(fit)
    y = mtcars["mpg"].to_numpy()
    np.testing.assert_allclose(tab["Sum Sq"].sum(), float(y @ y), rtol=1e-12)
    assert tab["Df"].sum() == len(y)


def test_nested_anova_f(mtcars):
    small = tl.lm("mpg ~ wt", data=mtcars)
    big = tl.lm("mpg ~ wt + hp + C(cyl)", data=mtcars)
    tab = tl.anova(small, big)
    rss_s, rss_b = ols(design(mtcars, ["wt"]), mtcars["mpg"].to_numpy())[1], big.deviance
    df_diff = small.df_residual - big.df_residual
    assert df_diff == 3
    f = ((rss_s - rss_b) / df_diff) / (rss_b / big.df_residual)
    assert tab["Res.Df"].tolist() == [small.df_residual, big.df_residual]
    np.testing.assert_allclose(tab["RSS"].to_numpy(), [rss_s, rss_b], rtol=1e-12)
    assert tab["Df"].iloc[1] == df_diff and np.isnan(tab["Df"].iloc[0])
    np.testing.assert_allclose(tab["Sum of Sq"].iloc[1], rss_s - rss_b, rtol=1e-10)
    np.testing.assert_allclose(tab["F"].iloc[1], f, rtol=1e-10)
    np.testing.assert_allclose(tab["Pr(>F)"].iloc[1], stats.f.sf(f, df_diff, big.df_residual), rtol=1e-9)
    assert np.isnan(tab["F"].iloc[0])


def test_nested_anova_three_models_uses_biggest_scale(mtcars):
    fits = [tl.lm(f, data=mtcars) for f in ("mpg ~ wt", "mpg ~ wt + hp", "mpg ~ wt + hp + qsec + drat")]
    tab = tl.anova(*fits)
    scale = fits[2].deviance / fits[2].df_residual
    f2 = (fits[0].deviance - fits[1].deviance) / 1 / scale
    np.testing.assert_allclose(tab["F"].iloc[1], f2, rtol=1e-10)


def test_nested_anova_different_rows_rejected(airquality):
    a = tl.lm("Ozone ~ Wind", data=airquality)
    b = tl.lm("Ozone ~ Wind + Solar_R", data=airquality)
    with pytest.raises(ValueError, match="same size"):
        tl.anova(a, b)


# --- confint ---------------------------------------------------------------------------------

@pytest.mark.parametrize("level,cols", [(0.9, ["5 %", "95 %"]), (0.95, ["2.5 %", "97.5 %"]),
                                        (0.99, ["0.5 %", "99.5 %"]), (0.8, ["10 %", "90 %"])])
def test_confint_columns_and_values(mtcars, level, cols):
    fit = tl.lm("mpg ~ wt + hp", data=mtcars)
    ci = fit.confint(level=level)
    assert list(ci.columns) == cols
    assert list(ci.index) == fit.names
    q = stats.t.ppf(0.5 + level / 2, fit.df_residual)
    b, se = fit.coef(), fit.std_errors()
    np.testing.assert_allclose(ci[cols[0]], b - q * se, rtol=1e-12)
    np.testing.assert_allclose(ci[cols[1]], b + q * se, rtol=1e-12)


def test_confint_default_is_95(mtcars):
    assert list(tl.lm("mpg ~ wt", data=mtcars).confint().columns) == ["2.5 %", "97.5 %"]


# --- summary ---------------------------------------------------------------------------------

def test_summary_text_and_html(mtcars):
    fit = tl.lm("mpg ~ wt + C(cyl)", data=mtcars)
    s = fit.summary()
    text = str(s)
    assert "Residual standard error:" in text
    assert f"on {fit.df_residual} degrees of freedom" in text
    assert "Multiple R-squared:" in text and "F-statistic:" in text
    assert "not defined because of singularities" not in text
    html = s._repr_html_()
    assert isinstance(html, str) and "<table" in html and "</table>" in html
    for name in fit.names:
        assert name in html
    assert list(s.coefficients.columns) == ["Estimate", "Std. Error", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(s.coefficients["t value"], fit.coef() / fit.std_errors(), rtol=1e-14)


def test_summary_rank_deficient(mtcars):
    df = mtcars.assign(wt2=2 * mtcars["wt"], hpwt=mtcars["hp"] + mtcars["wt"])
    one = tl.lm("mpg ~ wt + hp + wt2", data=df)
    text = str(one.summary())
    assert "Coefficients: (1 not defined because of singularities)" in text
    assert "Residual standard error:" in text
    line = next(l for l in text.split("\n") if l.startswith("wt2"))
    assert line.split()[1:] == ["NA", "NA", "NA", "NA"]
    assert "wt2" not in one.summary().coefficients.index
    two = tl.lm("mpg ~ wt + hp + wt2 + hpwt", data=df)
    assert two.rank == 3
    assert "(2 not defined because of singularities)" in str(two.summary())
    assert "<table" in two.summary()._repr_html_()


def test_datasets_keep_r_factor_levels():
    """Bundled datasets carry R's factor levels, so the reference level and coefficient order are R's."""
    assert "_factor_levels" not in tl.datasets.available()
    wb = tl.datasets.load("warpbreaks")
    assert list(wb["tension"].cat.categories) == ["L", "M", "H"]  # R's order, not alphabetical
    assert list(tl.datasets.load("iris")["Species"].cat.categories) == ["setosa", "versicolor", "virginica"]
    assert list(tl.datasets.load("ToothGrowth")["supp"].cat.categories) == ["OJ", "VC"]
    assert tl.datasets.factor_levels("mtcars") == {}
    before = wb.copy()
    fit = tl.lm("breaks ~ wool + tension", data=wb)
    # R 4.2.2: print(coef(lm(breaks ~ wool + tension, warpbreaks)), digits = 17)
    want = pd.Series([39.2777777777777715, -5.7777777777777777, -9.9999999999999929, -14.7222222222222161],
                     index=["Intercept", "wool[T.B]", "tension[T.M]", "tension[T.H]"])
    pd.testing.assert_series_equal(fit.coef(), want, rtol=1e-13, check_names=False)
    pd.testing.assert_frame_equal(wb, before)
