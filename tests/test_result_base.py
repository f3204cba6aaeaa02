"""The shared result base: lm, glm and Estimates answer coef/vcov/std_errors/confint/coef_table/wald_test alike,
with one spelling for choosing a covariance (vcov=, cluster=) everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import torchlm as tl
from torchlm.results.base import ModelResult


@pytest.fixture(scope="module")
def mt():
    return tl.datasets.load("mtcars")


@pytest.fixture(scope="module")
def fits(mt):
    def nll(p, d):
        eta = p["b0"] + p["wt"] * d["wt"]
        return torch.nn.functional.softplus(eta) - d["am"] * eta

    return {
        "lm": tl.lm("mpg ~ wt + hp + C(cyl)", mt),
        "glm": tl.glm("am ~ wt", mt, family="binomial", exact=True),
        "mle": tl.mle(nll, {"b0": 10.0, "wt": -3.0}, data=mt[["am", "wt"]]),
    }


@pytest.mark.parametrize("kind", ["lm", "glm", "mle"])
def test_every_result_is_a_model_result(fits, kind):
    fit = fits[kind]
    assert isinstance(fit, ModelResult)
    V = fit.vcov()
    se = fit.std_errors()
    np.testing.assert_allclose(se[fit.estimable], np.sqrt(np.diag(V)), rtol=1e-14)
    tab = fit.coef_table()
    assert list(tab.index) == list(fit.names)
    np.testing.assert_allclose(tab["Std. Error"], se, rtol=1e-14)
    np.testing.assert_array_equal(tab.iloc[:, 0], fit.coef())
    np.testing.assert_allclose(tab.iloc[:, 2], fit.coef() / se, rtol=1e-14)


@pytest.mark.parametrize("kind", ["lm", "glm", "mle"])
def test_one_spelling_for_the_covariance(fits, kind, mt):
    fit = fits[kind]
    cl = mt["cyl"].to_numpy()
    Vd = fit.vcov({"type": "HC0", "cluster": cl})
    np.testing.assert_allclose(fit.vcov("HC0", cluster=cl), Vd, rtol=1e-14)
    np.testing.assert_allclose(fit.vcov(type="HC0", cluster=cl), Vd, rtol=1e-14)
    se = np.sqrt(np.diag(Vd))
    for got in (fit.std_errors({"type": "HC0", "cluster": cl}), fit.std_errors("HC0", cluster=cl),
                fit.coef_table({"type": "HC0", "cluster": cl})["Std. Error"]):
        np.testing.assert_allclose(got[fit.estimable], se, rtol=1e-14)
    # a matrix given as vcov= is used as it is
    np.testing.assert_allclose(fit.std_errors(Vd)[fit.estimable], se, rtol=1e-14)
    ci = fit.confint(vcov="HC1")
    assert np.all(ci.iloc[:, 0] < fit.coef()) and np.all(ci.iloc[:, 1] > fit.coef())
    text = str(fit.summary(vcov="HC1"))
    assert "HC1" in text
    with pytest.raises(tl.OptionError, match="cluster"):
        fit.vcov("const", cluster=cl)
    with pytest.raises(tl.OptionError, match="HC9"):
        fit.std_errors("HC9")


def test_confint_parm_and_level(fits):
    fit = fits["lm"]
    full = fit.confint(0.9)
    part = fit.confint(0.9, parm=["wt", "hp"])
    assert list(part.columns) == ["5 %", "95 %"]
    pd.testing.assert_frame_equal(part, full.loc[["wt", "hp"]])
    pd.testing.assert_frame_equal(fit.confint(parm=1), fit.confint().iloc[[1]])
    with pytest.raises(tl.OptionError, match="nope"):
        fit.confint(parm="nope")
    with pytest.raises(tl.OptionError, match="level"):
        fit.confint(level=95)
    # R's confint.lm uses t; confint.default for a glm uses z even with an estimated dispersion
    q = stats.t.ppf(0.95, fit.df_residual)
    np.testing.assert_allclose(full.iloc[:, 1] - fit.coef(), q * fit.std_errors(), rtol=1e-13)
    g = tl.glm("mpg ~ wt", tl.datasets.load("mtcars"), family="Gamma", exact=True)
    np.testing.assert_allclose(g.confint(0.9).iloc[:, 1] - g.coef(), stats.norm.ppf(0.95) * g.std_errors(),
                               rtol=1e-13)
    np.testing.assert_allclose(fits["glm"].confint(method="profile", parm="wt"),
                               fits["glm"].confint(method="profile").loc[["wt"]], rtol=1e-12)


def test_wald_test_is_summary_f_and_chisq(fits):
    lm = fits["lm"]
    w = lm.wald_test()
    f = lm.fstatistic
    assert w.test == "F" and w.df == f.numdf and w.df_residual == f.dendf
    assert w.statistic == pytest.approx(f.value, rel=1e-10)
    robust = lm.summary(vcov="HC3").fstatistic
    assert lm.wald_test(vcov="HC3").statistic == pytest.approx(robust.value, rel=1e-12)
    one = lm.wald_test(parm="wt")
    t = lm.coef_table().loc["wt", "t value"]
    assert one.statistic == pytest.approx(t**2, rel=1e-12) and one.df == 1
    g = fits["glm"].wald_test(parm="wt")
    z = fits["glm"].coef_table().loc["wt", "z value"]
    assert g.test == "Chisq" and g.statistic == pytest.approx(z**2, rel=1e-12)
    assert g.p_value == pytest.approx(fits["glm"].coef_table().loc["wt", "Pr(>|z|)"], rel=1e-10)


def test_aliased_coefficients_share_one_convention(mt):
    d = mt.assign(wt2=2 * mt["wt"])
    for fit in (tl.lm("mpg ~ wt + wt2 + hp", d), tl.glm("am ~ wt + wt2 + hp", d, family="binomial", exact=True)):
        assert fit.aliased.tolist() == [False, False, True, False]
        assert fit.estimable == ["Intercept", "wt", "hp"]
        assert np.isnan(fit.std_errors()["wt2"]) and np.isnan(fit.confint().loc["wt2"]).all()
        assert list(fit.vcov().index) == fit.estimable
        H = fit.hessian()
        assert list(H.index) == list(fit.names)  # every coefficient, aliased ones included
        est = fit.estimable
        np.testing.assert_allclose(np.linalg.inv(H.loc[est, est]) * fit.scale, fit.vcov(),
                                   rtol=1e-8, atol=1e-12)
