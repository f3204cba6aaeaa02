"""broom's tidy(), glance() and augment() against R 4.2.2's broom 1.0.3 (tests/fixtures/broom/make_broom.R).

Every table is compared column by column: the names and their order exactly, the numbers at rtol 1e-9, the
texts (terms, row names, factor levels) exactly. Covered: lm with factors, weights (one of them 0) and rows
dropped for missing values (na.omit: the model frame's rows; na.exclude: the data's rows), transformed
variables, intervals, new data, a sandwich covariance (lmtest::coeftest's route); glm binomial and poisson
(exponentiate, MASS's profile intervals, the response scale, Pearson residuals); glm.nb; nls; aov, aovlist,
TukeyHSD; anova and drop1 tables; tl.mle's estimates (a Poisson regression, R's glm at the exact MLE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _support import FIXTURES, read_exact_csv

import torchlm as tl

HERE = FIXTURES / "broom"
RTOL = 1e-9

MTCARS = tl.datasets.load("mtcars")
WARPBREAKS = tl.datasets.load("warpbreaks")
D = read_exact_csv(HERE / "mtcars_na.csv", index_col=0)
D.index.name = None


def _numeric(values: list[str]) -> bool:
    try:
        [float(v) for v in values if v != "NA"]
    except ValueError:
        return False
    return True


def check(got: pd.DataFrame, name: str) -> None:
    """``got`` equals broom's table ``name``: columns in order, a RangeIndex, numbers at rtol, texts exactly."""
    ref = pd.read_csv(HERE / f"{name}.csv", dtype=str, keep_default_na=False)
    assert list(got.columns) == list(ref.columns), name
    assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0 and len(got) == len(ref), name
    for col in ref.columns:
        want, have = list(ref[col]), got[col]
        if set(want) <= {"TRUE", "FALSE"}:
            assert [bool(v) for v in have] == [v == "TRUE" for v in want], (name, col)
        elif _numeric(want) and not (isinstance(have.dtype, pd.CategoricalDtype) or have.dtype == object):
            r = np.array([np.nan if v == "NA" else float(v) for v in want])
            np.testing.assert_allclose(have.to_numpy(dtype=float), r, rtol=RTOL, atol=0, err_msg=f"{name}: {col}")
        else:
            assert [None if pd.isna(v) else str(v) for v in have] == [None if v == "NA" else v for v in want], \
                (name, col)


# --- lm ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lw():
    return tl.lm("mpg ~ wt + factor(cyl)", D, weights="w", names="R")


def test_lm_tidy(lw):
    check(lw.tidy(), "lm_w_tidy")
    check(lw.tidy(conf_int=True, conf_level=0.9), "lm_w_tidy_ci90")


def test_lm_glance(lw):
    check(lw.glance(), "lm_w_glance")
    check(tl.lm("mpg ~ 1", MTCARS).glance(), "lm_intercept_glance")


def test_lm_augment_model_frame_na_omit_and_zero_weight(lw):
    # the model frame's rows (29 of 32), its columns (factor(cyl), (weights)); the zero weight's row has
    # broom's .hat 0, .sigma 0, .cooksd 0, .std.resid NA
    out = lw.augment()
    check(out, "lm_w_augment")
    assert isinstance(out["factor(cyl)"].dtype, pd.CategoricalDtype)
    assert list(out["factor(cyl)"].cat.categories) == ["4", "6", "8"]


def test_lm_augment_newdata(lw):
    check(lw.augment(D.iloc[:8], se_fit=True), "lm_w_augment_newdata")
    fit = tl.lm("mpg ~ wt + hp", MTCARS)
    check(fit.augment(pd.DataFrame({"wt": [2.5, 3.5], "hp": [100, 200]})), "lm_plain_newdata")


def test_lm_augment_na_exclude():
    # na.exclude pads: the default is the data's rows with the model frame's columns (R's
    # augment(fit, data = model.frame(fit, na.action = na.pass))), or the data given
    lx = tl.lm("mpg ~ wt + hp", D, na_action="exclude")
    check(lx.augment(), "lm_exclude_augment")
    le = tl.lm("mpg ~ wt + factor(cyl)", D, na_action="exclude", names="R")
    check(le.augment(data=D), "lm_exclude_augment_data")
    check(le.glance(), "lm_exclude_glance")


def test_lm_augment_transformed_variables_and_intervals():
    lt = tl.lm("log(mpg) ~ I(wt^2) + factor(am) + hp", MTCARS, names="R")
    check(lt.augment(), "lm_log_augment")
    check(lt.augment(se_fit=True, interval="confidence"), "lm_log_augment_interval")
    check(lt.augment(newdata=MTCARS.iloc[[0, 4, 8]], interval="prediction"), "lm_log_augment_newdata")
    check(lt.tidy(conf_int=True, exponentiate=True), "lm_log_tidy_exp")


def test_lm_tidy_sandwich_is_coeftest():
    l2 = tl.lm("mpg ~ wt + hp", MTCARS, names="R")
    check(l2.tidy(conf_int=True, conf_level=0.9, vcov="HC3"), "lm_hc3_tidy")


# --- glm ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gb():
    return tl.glm("am ~ wt + hp", MTCARS, family="binomial", names="R")


def test_glm_binomial(gb):
    check(gb.tidy(), "glm_binomial_tidy")
    check(gb.tidy(conf_int=True, conf_level=0.9), "glm_binomial_tidy_ci90")
    check(gb.glance(), "glm_binomial_glance")
    check(gb.augment(), "glm_binomial_augment")
    check(gb.augment(type_predict="response", type_residuals="pearson", se_fit=True),
          "glm_binomial_augment_response")
    check(gb.augment(MTCARS.iloc[:5], type_predict="response", se_fit=True), "glm_binomial_augment_newdata")


def test_glm_poisson():
    gp = tl.glm("breaks ~ wool + tension", WARPBREAKS, family="poisson", names="R")
    check(gp.tidy(conf_int=True, exponentiate=True), "glm_poisson_tidy_exp")
    check(gp.glance(), "glm_poisson_glance")
    check(gp.augment(), "glm_poisson_augment")
    check(gp.tidy(conf_int=True, vcov="HC0"), "glm_poisson_sandwich_tidy")


def test_glm_augment_na_exclude():
    gx = tl.glm("am ~ wt", D, family="binomial", na_action="exclude")
    check(gx.augment(data=D), "glm_exclude_augment_data")


def test_augment_offsets_cbind_and_matrix_variables():
    # the model frame as R builds it: offset() terms and the offset= argument, cbind()'s and poly()'s
    # columns as R's as.data.frame names them
    od = read_exact_csv(HERE / "offset_data.csv")
    go = tl.glm("y ~ x + offset(log(t))", od, family="poisson", offset="z")
    check(go.augment(), "glm_offset_augment")
    cb = read_exact_csv(HERE / "cbind_data.csv")
    check(tl.glm("cbind(s, f) ~ x", cb, family="binomial").augment(), "glm_cbind_augment")
    check(tl.lm("mpg ~ poly(wt, 2) + hp", MTCARS, subset="cyl != 4").augment(), "lm_poly_subset_augment")


def test_glm_nb():
    nb = tl.glm_nb("Days ~ Sex + Age + Eth", tl.datasets.load("quine"), names="R")
    check(nb.tidy(conf_int=True, conf_level=0.9), "negbin_tidy_ci90")
    check(nb.glance(), "negbin_glance")
    check(nb.augment(), "negbin_augment")


# --- nls ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fn():
    # R's fit with the exact gradient (deriv()), whose iterations are tl.nls's (autograd) to rounding
    pt = read_exact_csv(HERE / "puromycin_treated.csv")
    return tl.nls("rate ~ Vm * conc / (K + conc)", pt, start={"Vm": 200, "K": 0.05})


def test_nls(fn):
    check(fn.tidy(), "nls_tidy")
    check(fn.tidy(conf_int=True, conf_level=0.9), "nls_tidy_ci90")
    check(fn.glance(), "nls_glance")
    check(fn.augment(), "nls_augment")
    check(fn.augment(pd.DataFrame({"conc": [0.05, 0.5, 1]})), "nls_augment_newdata")


# --- aov, TukeyHSD, anova tables ---------------------------------------------------------------------------
def test_aov():
    av = tl.aov("breaks ~ wool + tension", WARPBREAKS)
    check(av.tidy(), "aov_tidy")
    check(av.glance(), "aov_glance")
    check(av.augment(), "aov_augment")
    check(av.TukeyHSD().tidy(), "tukey_tidy")
    check(av.TukeyHSD("tension", ordered=True, conf_level=0.9).tidy(), "tukey_tidy_ordered")
    check(tl.aov("yield ~ N * P * K + Error(block)", tl.datasets.load("npk")).tidy(), "aovlist_tidy")


def test_anova_tables(lw, gb):
    l1, l2 = tl.lm("mpg ~ wt", MTCARS), tl.lm("mpg ~ wt + hp", MTCARS)
    check(tl.anova(lw).tidy(), "anova_lm_tidy")
    check(tl.anova(l1, l2).tidy(), "anova_two_lm_tidy")
    check(tl.drop1(l2, test="F").tidy(), "drop1_lm_tidy")
    # broom does not know the deviance table's "Deviance", "Resid. Df" and "Resid. Dev": it warns, as here
    with pytest.warns(UserWarning, match="Deviance, Resid..Df, Resid..Dev"):
        check(tl.anova(gb, test="Chisq").tidy(), "anova_glm_tidy")
    g1 = tl.glm("am ~ wt", MTCARS, family="binomial")
    with pytest.warns(UserWarning, match="not recognized"):
        check(tl.anova(g1, gb, test="Chisq").tidy(), "anova_two_glm_tidy")


# --- tl.mle --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def poisson_mle():
    X = tl.lm("breaks ~ wool + tension", WARPBREAKS, names="R").design.X
    names = ["(Intercept)", "woolB", "tensionM", "tensionH"]
    data = {"y": WARPBREAKS["breaks"].to_numpy(dtype=float), **{n: X[:, j] for j, n in enumerate(names)}}

    def nll(p, d):
        eta = sum(p[n] * d[n] for n in names)
        return -(d["y"] * eta - torch.exp(eta) - torch.lgamma(d["y"] + 1))

    return tl.mle(nll, {n: 0.0 for n in names}, data=data)


def test_mle_tidy_and_glance(poisson_mle):
    check(poisson_mle.tidy(conf_int=True, conf_level=0.9, conf_method="wald"), "mle_poisson_tidy_wald90")
    check(poisson_mle.glance(), "mle_poisson_glance")
    # broom's tidy.mle2 profiles (bbmle's confint): tl.mle's profile intervals, stats4's (test_mle_ext)
    prof = poisson_mle.confint(0.9, method="profile").to_numpy()
    got = poisson_mle.tidy(conf_int=True, conf_level=0.9)
    np.testing.assert_array_equal(got[["conf.low", "conf.high"]].to_numpy(), prof)


def test_infer_tidy_is_its_wald_table():
    # tl.infer's objective is a loss, not a likelihood to profile: its tidy intervals are confint()'s Wald ones
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 2, dtype=torch.float64, generator=g)
    y = (X @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 * torch.randn(40, dtype=torch.float64,
                                                                                   generator=g)).unsqueeze(-1)
    model = torch.nn.Linear(2, 1).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=1e-14, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        return loss

    opt.step(closure)
    est = tl.infer(model, torch.nn.MSELoss(), X, y)
    out = est.tidy(conf_int=True, conf_level=0.9)
    assert list(out.columns) == ["term", "estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high"]
    np.testing.assert_array_equal(out[["conf.low", "conf.high"]].to_numpy(), est.confint(0.9).to_numpy())
    np.testing.assert_array_equal(out["std.error"], est.std_errors().to_numpy())
    glance = est.glance()
    assert list(glance.columns) == ["logLik", "AIC", "BIC", "nobs"] and glance["nobs"][0] == 40
    assert glance["logLik"][0] == est.loglik()


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "0.9", True, None])
def test_conf_level_outside_0_1(lw, level):
    with pytest.raises(tl.OptionError, match="conf_level must be a number between 0 and 1"):
        lw.tidy(conf_int=True, conf_level=level)
    with pytest.raises(tl.OptionError, match="conf_level"):
        lw.augment(interval="confidence", conf_level=level)


def test_bad_options(lw, gb, fn, poisson_mle):
    with pytest.raises(tl.OptionError, match="type_predict must be one of None, 'link', 'response'"):
        gb.augment(type_predict="probability")
    with pytest.raises(tl.OptionError, match="type_predict must be one of None, 'response'"):
        lw.augment(type_predict="link")
    with pytest.raises(tl.OptionError, match="predict\\(type='terms'\\)"):
        gb.augment(type_predict="terms")
    with pytest.raises(tl.OptionError, match="type_residuals must be one of"):
        gb.augment(type_residuals="working")
    with pytest.raises(tl.OptionError, match="interval must be one of"):
        lw.augment(interval="tolerance")
    with pytest.raises(tl.OptionError, match="takes no interval"):
        gb.augment(interval="confidence")
    with pytest.raises(tl.OptionError, match="takes no se_fit"):
        fn.augment(se_fit=True)
    with pytest.raises(tl.OptionError, match="conf_method must be one of"):
        lw.tidy(conf_int=True, conf_method="bootstrap")
    with pytest.raises(tl.OptionError, match="profile intervals are not available"):
        lw.tidy(conf_int=True, conf_method="profile")
    with pytest.raises(tl.OptionError, match="vcov= and cluster= go with conf_method='wald'"):
        gb.tidy(conf_int=True, vcov="HC0", conf_method="profile")
    with pytest.raises(tl.OptionError, match="augment\\(\\) is not available"):
        poisson_mle.augment()
    with pytest.raises(tl.OptionError, match="needs 29: the rows used"):
        lw.augment(data=D)
    with pytest.raises(tl.OptionError, match="summary.aov's table"):
        tl.aov("breaks ~ wool + tension", WARPBREAKS).tidy(conf_int=True)


def test_user_data_is_not_modified(lw):
    before = D.copy()
    lw.augment()
    lw.augment(D.iloc[:8], se_fit=True)
    pd.testing.assert_frame_equal(D, before)
