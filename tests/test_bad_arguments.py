"""Odd calls to the verbs (anova, drop1, vcov, aic, names): R's answer or a clear error, never a wrong number.

R's answers come from tests/fixtures/bad_input/make_bad_arguments.R (R 4.2.2, sandwich).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torchlm as tl

HERE = Path(__file__).parent / "fixtures" / "bad_input"
R = json.loads((HERE / "bad_arguments.json").read_text())
DATA = pd.read_csv(HERE / "bad_arguments_data.csv")


def _r(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values])


def assert_table(tab: pd.DataFrame, want: dict, rtol: float = 1e-9) -> None:
    assert list(tab.columns) == list(want), (list(tab.columns), list(want))
    for col, values in want.items():
        np.testing.assert_allclose(tab[col].to_numpy(dtype=float), _r(values), rtol=rtol, err_msg=col)


def recorded(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w]


@pytest.fixture
def d() -> pd.DataFrame:
    return DATA.copy()


# --- anova -----------------------------------------------------------------------------------------

def test_anova_drops_a_model_with_another_response_as_r(d):
    tab, msgs = recorded(lambda: tl.anova(tl.lm("y ~ x", d), tl.lm("z ~ x", d)))
    assert msgs == R["anova_response"]["warnings"]
    assert_table(tab, R["anova_response"]["table"])
    assert tab.index.tolist() == ["x", "Residuals"]


def test_anova_response_warning_is_a_torchlm_warning(d):
    with pytest.warns(tl.TorchlmWarning, match="response differs from model 1"):
        tl.anova(tl.glm("c ~ x", d, family="poisson"), tl.glm("k ~ x", d, family="poisson"))


def test_anova_equal_df_leaves_f_blank_as_r(d):
    tab = tl.anova(tl.lm("y ~ x", d), tl.lm("y ~ z", d))
    assert_table(tab, R["anova_equal_df"])
    assert "Inf" not in str(tab) and "-0" not in str(tab)


def test_anova_negative_f_is_na_not_p_one(d):
    assert_table(tl.anova(tl.lm("y ~ x + z", d), tl.lm("y ~ g", d)), R["anova_negative_f"])


def test_glm_anova_equal_df_leaves_the_test_blank(d):
    tab = tl.anova(tl.glm("c ~ x", d, family="poisson"), tl.glm("c ~ z", d, family="poisson"), test="Chisq")
    assert_table(tab, R["anova_glm_equal_df"], rtol=1e-7)  # R's glm stops at its own epsilon


@pytest.mark.parametrize("order", [0, 1])
def test_anova_of_an_lm_and_a_glm_is_refused(d, order):
    fits = [tl.lm("y ~ x", d), tl.glm("y ~ x + z", d)]
    if order:
        fits.reverse()
    with pytest.raises(tl.OptionError, match="one kind.*family='gaussian'"):
        tl.anova(*fits)


def test_anova_bad_test_argument(d):
    with pytest.raises(tl.OptionError, match="test must be"):
        tl.anova(tl.lm("y ~ x", d), test=1)
    with pytest.raises(tl.OptionError, match="test must be 'F', 'Chisq', 'LRT', 'Rao', 'Cp' or None"):
        tl.anova(tl.lm("y ~ x", d), test="Rao!")


@pytest.mark.parametrize("k", ["a", None, math.nan, -1, math.inf, True])
def test_drop1_k_must_be_a_number(d, k):
    with pytest.raises(tl.OptionError, match="k must be a finite number"):
        tl.drop1(tl.lm("y ~ x + z", d), k=k)


def test_drop1_k_log_n_is_bic(d):
    fit = tl.lm("y ~ x + z", d)
    a2, ak = tl.drop1(fit), tl.drop1(fit, k=np.log(20))
    np.testing.assert_allclose(ak["AIC"] - a2["AIC"], (np.log(20) - 2) * np.array([3, 2, 2]), rtol=1e-12)


# --- sandwich at a point of leverage 1 -------------------------------------------------------------

@pytest.mark.parametrize("type", ["HC0", "HC1", "HC2", "HC3", "HC4"])
def test_glm_hc_at_leverage_one_is_r(d, type):
    fit = tl.glm("c ~ x + g1", d, family="poisson")
    se, msgs = recorded(lambda: fit.std_errors(vcov=type))
    want = R["glm_hc_hat1"][type]
    np.testing.assert_allclose(se.to_numpy(), _r(want["se"]), rtol=1e-6)  # R's glm stops at its epsilon
    assert msgs == want["warnings"]


def test_lm_hc3_at_leverage_one_is_nan(d):
    with pytest.warns(tl.TorchlmWarning, match="as for observations 1$"):
        se = tl.lm("y ~ x + g1", d).std_errors(vcov="HC3")
    assert se.isna().all()


# --- Poisson with non-integer counts ---------------------------------------------------------------

def test_poisson_non_integer_counts_aic_inf_with_r_warnings(d):
    want = R["poisson_nonint"]
    fit, msgs = recorded(lambda: tl.glm("cf ~ x", d, family="poisson"))
    assert msgs[:5] == want["warnings"][:5]
    assert msgs[5] == f"... and {len(want['warnings']) - 5} more non-integer counts"
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(want["coef"]), rtol=1e-7)
    _, later = recorded(lambda: (fit.aic(), fit.loglik(), str(fit.summary())))
    assert later == []  # R warns once, when glm() fits
    assert fit.aic() == math.inf and fit.loglik() == -math.inf
    assert "AIC: Inf" in str(fit.summary())


def test_poisson_integer_counts_do_not_warn(d):
    _, msgs = recorded(lambda: tl.glm("c ~ x", d, family="poisson"))
    assert not [m for m in msgs if "non-integer" in m]


def test_quasipoisson_non_integer_counts_fit_quietly(d):
    fit, msgs = recorded(lambda: tl.glm("cf ~ x", d, family="quasipoisson"))
    assert not [m for m in msgs if "non-integer" in m]
    assert math.isnan(fit.aic())


# --- results are not changed through what they hand out ----------------------------------------------

@pytest.mark.parametrize("kind", ["lm", "glm"])
def test_names_is_a_copy(d, kind):
    fit = tl.lm("y ~ x", d) if kind == "lm" else tl.glm("c ~ x", d, family="poisson")
    before = fit.summary().__str__()
    fit.names.append("junk")
    fit.names.clear()
    assert fit.names == ["Intercept", "x"]
    assert str(fit.summary()) == before
    coef = fit.coef()
    coef["x"] = 99.0
    assert fit.coef()["x"] != 99.0


# --- cluster variables after rows were dropped -------------------------------------------------------

def test_cluster_series_is_matched_by_index_after_rows_are_dropped(d):
    dd = d.copy()
    dd.loc[3, "x"] = np.nan
    kept = dd.dropna()
    by_name = tl.lm("y ~ x", dd).vcov(cluster="g")
    fit = tl.lm("y ~ x", kept)
    # the full column (the row dropped) and a shuffled copy pair each row with its own cluster
    pd.testing.assert_frame_equal(fit.vcov(cluster=d["g"]), by_name, rtol=1e-12)
    pd.testing.assert_frame_equal(fit.vcov(cluster=kept["g"].sample(frac=1, random_state=1)), by_name, rtol=1e-12)
    with pytest.raises(tl.OptionError, match=r"no value for 4 row\(s\).*labels 0, 1, 2, 4"):
        fit.vcov(cluster=d["g"].iloc[5:])
    with pytest.raises(tl.OptionError, match="cluster array has 20 values; the data has 19 rows.*Series"):
        fit.vcov(cluster=d["g"].to_numpy())


def test_anova_and_drop1_take_fitted_models(d):
    with pytest.raises(tl.OptionError, match="compares fitted models.*not int"):
        tl.anova(3)
    with pytest.raises(tl.OptionError, match="compares fitted models.*not DataFrame"):
        tl.anova(tl.lm("y ~ x", d), d)
    with pytest.raises(tl.OptionError, match="takes a fitted model"):
        tl.drop1("y ~ x")


@pytest.mark.parametrize("level", [5, 0, 1, -0.5, "a", None, True])
def test_prediction_interval_level_is_checked(d, level):
    fit = tl.lm("y ~ x", d)
    with pytest.raises(tl.OptionError, match="level must be between 0 and 1"):
        fit.predict(d, interval="confidence", level=level)


@pytest.mark.parametrize("level", [1.5, 0, "a"])
def test_profile_interval_level_is_checked_before_profiling(d, level):
    fit = tl.glm("c ~ x", d, family="poisson")
    with pytest.raises(tl.OptionError, match="level must be between 0 and 1"):
        fit.confint(level=level, method="profile")


# --- internal refits keep the process's warnings filters as they were ---------------------------------

def test_refits_from_threads_leave_the_warnings_filters_alone(d):
    from concurrent.futures import ThreadPoolExecutor

    before = list(warnings.filters)
    fit = tl.glm("c ~ x", d, family="poisson")

    def work(_):
        return tl.anova(fit).to_numpy(), tl.drop1(fit).to_numpy(), fit.confint(method="profile").to_numpy()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    assert list(warnings.filters) == before  # no "ignore" left behind by a catch_warnings race
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            np.testing.assert_array_equal(a, b)


def test_profile_refits_do_not_repeat_glm_warnings():
    # far grid points of a near-separated logistic fit: R's glm.fit warns there; the interval does not
    x = np.r_[np.arange(10.0), 4.5]
    dd = pd.DataFrame({"x": x, "y": (x > 4).astype(float)})
    dd.loc[10, "y"] = 0.0
    fit = tl.glm("y ~ x", dd, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.confint(method="profile")


# --- logical predictors: R's factor with levels FALSE, TRUE ------------------------------------------

LOGICAL = pd.DataFrame({"y": [0.5, 1.5, 2.0, -1.0, 0.3], "x": [1.0, 2, 3, 4, 5],
                        "b": [True, False, True, False, False]})


def _r_names(names: list[str]) -> list[str]:
    # formulaic's spelling -> R's, for the names these formulas have
    return [n.replace("Intercept", "(Intercept)").replace("[T.True]", "TRUE").replace("[True]", "TRUE")
            .replace("[False]", "FALSE") for n in names]


@pytest.mark.parametrize("case, formula, data", [
    ("logical_b", "y ~ b", LOGICAL),
    ("logical_0b", "y ~ 0 + b", LOGICAL),
    ("logical_xb", "y ~ x:b", LOGICAL),
    ("logical_all_true", "y ~ b", LOGICAL.assign(b=True)),
    ("logical_all_true_xb", "y ~ x:b", LOGICAL.assign(b=True)),
])
@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_logical_predictor_is_a_two_level_factor_as_r(case, formula, data, dtype):
    data = data.assign(b=data["b"].astype(dtype))
    before = data.copy()
    fit = tl.lm(formula, data)
    want = R[case]
    assert _r_names(fit.names) == want["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(want["coef"]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.fitted().to_numpy(), _r(want["fitted"]), rtol=1e-9)
    pd.testing.assert_frame_equal(data, before)


def test_logical_predictor_in_a_poisson_glm_and_predict():
    data = LOGICAL.assign(c=[0.0, 2, 1, 3, 0])
    fit = tl.glm("c ~ 0 + b", data, family="poisson")
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["logical_pois_0b"]["coef"]), rtol=1e-7)
    new = pd.DataFrame({"b": [False, True]})
    np.testing.assert_allclose(fit.predict(new, type="response").to_numpy(), [5 / 3, 0.5], rtol=1e-8)
    # a logical used inside an expression stays a number, as R's I(b * 2)
    assert tl.lm("y ~ I(b * 2) + x", LOGICAL).names == ["Intercept", "I(b * 2)", "x"]
    # a logical response is 0/1 (lm) and FALSE/TRUE failure/success (binomial)
    np.testing.assert_allclose(tl.lm("b ~ x", LOGICAL).coef().to_numpy(), [1.0, -0.2], rtol=1e-12)


def test_logical_nullable_missing_values_drop_rows():
    data = LOGICAL.assign(b=LOGICAL["b"].astype("boolean"))
    data.loc[2, "b"] = pd.NA
    fit = tl.lm("y ~ b", data)
    assert fit.nobs == 4
    ref = np.linalg.lstsq(np.c_[np.ones(4), [1.0, 0, 0, 0]], data["y"].drop(2).to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(fit.coef().to_numpy(), ref, rtol=1e-12)


# --- glms with an all-zero design (rank 0) -------------------------------------------------------------

@pytest.mark.parametrize("case, formula, family", [("rank0_gaussian", "y ~ 0 + x", "gaussian"),
                                                    ("rank0_poisson", "k ~ x - 1", "poisson")])
def test_rank_zero_glm_is_r(case, formula, family):
    z = pd.DataFrame({"y": [0.17, 0.83, -2.27, 0.07], "x": 0.0, "k": [1.0, 0, 2, 3]})
    fit = tl.glm(formula, z, family=family)
    want = R[case]
    assert fit.coef().isna().all() and fit.rank == 0
    np.testing.assert_allclose(fit.fitted().to_numpy(), _r(want["fitted"]), rtol=1e-12)
    np.testing.assert_allclose([fit.deviance, fit.aic()], [want["deviance"], want["aic"]], rtol=1e-10)


# --- predict: a new level is an error in every row ------------------------------------------------------

def test_new_level_is_an_error_even_where_another_predictor_is_missing():
    dd = pd.DataFrame({"y": [14, 26, 24, 17, 22, 19, 26, 17.], "g": [4, 2, 1, 2, 4, 2, 1, 4], "x": np.arange(8.)})
    fit = tl.lm("y ~ C(g) + x", dd)
    with pytest.raises(tl.DataError, match="new level"):
        fit.predict(pd.DataFrame({"g": [3], "x": [np.nan]}))
    out = fit.predict(pd.DataFrame({"g": [2, 1], "x": [np.nan, 1.0]}))
    assert np.isnan(out.iloc[0]) and np.isfinite(out.iloc[1])


# --- robust covariances of data near 1e300 ----------------------------------------------------------------

@pytest.mark.parametrize("type", ["HC0", "HC1", "HC3"])
def test_robust_se_of_a_scaled_fit_keeps_the_representable_entries(d, type):
    base = tl.lm("y ~ x + z", d).std_errors(vcov=type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.TorchlmWarning)  # the fit names the out-of-range variance
        big = tl.lm("y ~ x + z", d.assign(x=d["x"] * 2.0**1000)).std_errors(vcov=type)
    # intercept and z are unchanged by scaling x; x's variance (about 2^-2000) is below float64's range
    np.testing.assert_allclose(big[["Intercept", "z"]], base[["Intercept", "z"]], rtol=1e-12)
    assert big["x"] == 0.0


# --- weights= as R checks it ------------------------------------------------------------------------------

WEIGHTED = pd.DataFrame({"y": [1.0, 2, 4, 3, 5, 7], "x": [1.0, 2, 3, 4, 5, np.nan], "w": [1, 2, 1, 2, 1, -1.0]})


@pytest.mark.parametrize("fitter", [tl.lm, tl.glm])
def test_a_negative_weight_on_a_row_dropped_for_na_is_no_error(fitter):
    fit = fitter("y ~ x", WEIGHTED, weights="w")
    # R 4.2.2: lm(y ~ x, d, weights = w) gives 0.3571429, 0.8333333 (the row with x NA is dropped first)
    sw = np.sqrt(WEIGHTED["w"].to_numpy()[:5])
    ref = np.linalg.lstsq(np.c_[np.ones(5), WEIGHTED["x"].to_numpy()[:5]] * sw[:, None],
                          WEIGHTED["y"].to_numpy()[:5] * sw, rcond=None)[0]
    np.testing.assert_allclose(fit.coef().to_numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(ref, [0.3571429, 0.8333333], atol=1e-7)
    with pytest.raises(tl.DataError, match="non-negative"):
        fitter("y ~ x", WEIGHTED.assign(w=-WEIGHTED["w"]), weights="w")


@pytest.mark.parametrize("weights, fragment", [
    (pd.Categorical([1, 2, 1, 2, 1, 2]), "not a factor"),
    (np.array(["1", "2", "1", "2", "1", "2"], dtype=object), "must be numeric"),
    ("g", "must be numeric"),
])
def test_weights_must_be_numbers_not_text_or_factors(weights, fragment):
    data = WEIGHTED.assign(g=list("abcabc"))
    with pytest.raises(tl.DataError, match=fragment):
        tl.lm("y ~ x", data, weights=weights)
    # numbers stored as objects or nullable floats are numbers
    ok = tl.lm("y ~ x", data, weights=np.array([1, 2, 1, 2, 1, 2], dtype=object)).coef()
    pd.testing.assert_series_equal(ok, tl.lm("y ~ x", data, weights=data["w"].abs().astype("Float64")).coef())


def test_anova_of_an_essentially_perfect_fit_warns_as_r():
    d3 = pd.DataFrame({"y": [1.0, 3, 2], "x": [1.0, 2, 4], "z": [0.5, 0.1, 0.3]})
    with pytest.warns(tl.TorchlmWarning, match="^ANOVA F-tests on an essentially perfect fit are unreliable$"):
        tab = tl.anova(tl.lm("y ~ x + z", d3))
    # R 4.2.2: Sum Sq 0.21429, 1.78571 and 0 on 0 residual df
    np.testing.assert_allclose(tab["Sum Sq"].to_numpy(), [3 / 14, 25 / 14, 0.0], rtol=1e-9, atol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tl.anova(tl.lm("y ~ x", DATA))


def test_tiny_estimates_print_as_r():
    # a saturated fit of data near 1e149: R's printCoefmat rounds to 300+ decimals, which numpy
    # cannot (10^310 overflows); the estimates print, not a ValueError
    d2 = pd.DataFrame({"y": [6.40422650443282e-09, 1.049001171530397e-09],
                       "x": [1.257302210933933e+149, -1.3210486329130188e+149]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.TorchlmWarning)
        fit = tl.lm("y ~ I(x^2)", d2)
        text = str(fit.summary())
    x2 = d2["x"].to_numpy() ** 2
    slope = (d2["y"][0] - d2["y"][1]) / (x2[0] - x2[1])
    np.testing.assert_allclose(fit.coef().to_numpy(), [d2["y"][0] - slope * x2[0], slope], rtol=1e-9)
    assert "5.791e-08" in text and "-3.258e-306" in text


def test_leverages_of_a_separated_glm_do_not_raise():
    # near-separation: (X'WX)^{-1} has variances of 1e15 and more and may lose positive definiteness
    y = np.r_[np.zeros(12), [1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1]]
    d2 = pd.DataFrame({"y": y, "g": list("dccbbaaaadcdccdccccdbdcabdcadcdaadacab"),
                       "k": [2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 2, 3, 4, 2, 2, 4, 4, 4, 2, 3, 4, 3, 4, 3, 3, 2, 4, 1, 3, 3,
                             4, 3, 2, 2, 2, 2, 3, 4]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = tl.glm("y ~ C(k):g + k", d2, family="binomial")
        hat = fit.hatvalues()
        se = fit.std_errors(vcov="HC3")
    assert ((hat >= 0) & (hat <= 1)).all()
    assert se.isna().all()  # R 4.2.2's vcovHC(type = "HC3") is NaN here too (leverages of 1)
