"""tl.mle: maximum likelihood for a user's torch negative log-likelihood, against statsmodels, R (MASS) and tl.glm."""

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.errors import ModelInputError
from torchlm.results.estimates import OptimumWarning, SingularHessianWarning

MLE = FIXTURES / "mle"
REF = json.loads((MLE / "mle_reference.json").read_text())


def poisson_data(seed=7, n=250):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(size=n)
    y = rng.poisson(np.exp(0.3 + 0.6 * x1 - 0.4 * x2))
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y})


def poisson_nll(p, d):
    eta = p["b0"] + p["b1"] * d["x1"] + p["b2"] * d["x2"]
    return -(d["y"] * eta - torch.exp(eta) - torch.lgamma(d["y"] + 1))  # one value per observation


@pytest.fixture(scope="module")
def poisson_fit():
    d = poisson_data()
    return d, tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0, "b2": 0.0}, data=d)


def test_poisson_mle_matches_glm(poisson_fit):
    d, fit = poisson_fit
    X = sm.add_constant(d[["x1", "x2"]].to_numpy())
    ref = sm.GLM(d["y"].to_numpy(), X, family=sm.families.Poisson()).fit(tol=1e-13)
    assert fit.converged and fit.method == "Newton" and fit.iterations < 20
    np.testing.assert_allclose(fit.coef(), ref.params, rtol=1e-9)
    np.testing.assert_allclose(fit.std_errors(), ref.bse, rtol=1e-8)
    np.testing.assert_allclose(fit.confint(), ref.conf_int(), rtol=1e-8)
    assert fit.loglik() == pytest.approx(ref.llf, rel=1e-12)
    assert fit.aic() == pytest.approx(ref.aic, rel=1e-12)
    assert fit.bic() == pytest.approx(-2 * ref.llf + np.log(250) * 3, rel=1e-12)
    assert fit.nobs == 250
    np.testing.assert_allclose(fit.summary().coefficients["Pr(>|z|)"], ref.pvalues, rtol=1e-6)
    # per-observation nll values give the sandwich
    hc0 = sm.GLM(d["y"].to_numpy(), X, family=sm.families.Poisson()).fit(tol=1e-13, cov_type="HC0")
    np.testing.assert_allclose(fit.vcov("HC0"), hc0.cov_params(), rtol=1e-7)
    if hasattr(tl, "glm"):
        g = tl.glm("y ~ x1 + x2", data=d, family="poisson", exact=True)
        np.testing.assert_allclose(fit.coef(), g.coef(), rtol=1e-9)
        np.testing.assert_allclose(fit.std_errors(), g.std_errors(), rtol=1e-8)
        assert fit.aic() == pytest.approx(g.aic(), rel=1e-12)


def test_summary_text(poisson_fit):
    _, fit = poisson_fit
    text = str(fit.summary())
    assert text.startswith(
        "\nMaximum likelihood estimation\n\nCall:\nmle(poisson_nll, start = list(b0 = 0, b1 = 0, b2 = 0))"
    )
    lines = text.split("\n")
    head = next(line for line in lines if "Estimate" in line)
    assert head.split() == ["Estimate", "Std.", "Error", "z", "value", "Pr(>|z|)"]
    assert any(line.startswith("b1 ") and line.rstrip().endswith("***") for line in lines)
    assert "Signif. codes:" in text
    assert f"Log-likelihood: {fit.loglik():.7g} (df=3)" in text
    assert "AIC: " in text and "BIC: " in text
    assert "Newton: converged in" in text


def test_vector_parameters_are_named_by_element():
    d = poisson_data()
    X = np.column_stack([np.ones(len(d)), d[["x1", "x2"]].to_numpy()])
    y = d["y"].to_numpy()  # integers: passed to nll as a float64 tensor

    def nll(p, data):
        X, y = data
        eta = X @ p["b"]
        return (torch.exp(eta) - y * eta + torch.lgamma(y + 1)).sum()

    fit = tl.mle(nll, {"b": np.zeros(3)}, data=(X, y))
    assert fit.names == ["b[0]", "b[1]", "b[2]"] and fit.nobs == len(d)
    ref = sm.GLM(d["y"].to_numpy(), X, family=sm.families.Poisson()).fit(tol=1e-13)
    np.testing.assert_allclose(fit.std_errors(), ref.bse, rtol=1e-8)
    # a scalar nll has no per-observation scores
    with pytest.raises(ValueError, match="per-observation"):
        fit.vcov("HC0")


def weibull_nll(p, d):
    k, lam, x = p["shape"], p["scale"], d["x"]
    return -(torch.log(k / lam) + (k - 1) * torch.log(x / lam) - (x / lam) ** k)


def test_weibull_matches_mass_fitdistr():
    d = read_exact_csv(MLE / "weibull.csv")
    ref = REF["weibull"]
    fit = tl.mle(weibull_nll, {"shape": 1.0, "scale": 1.0}, data=d)
    # the exact MLE (R: uniroot on the profile score, to 1e-15)
    np.testing.assert_allclose(fit.coef(), ref["exact_estimate"], rtol=1e-10)
    assert fit.loglik() == pytest.approx(ref["exact_loglik"], rel=1e-13)
    # fitdistr: BFGS with numerical gradients, standard errors from optim's numerical Hessian
    np.testing.assert_allclose(fit.coef(), ref["fitdistr_estimate"], rtol=2e-7)
    np.testing.assert_allclose(fit.std_errors(), ref["fitdistr_sd"], rtol=1e-5)


def negbin_nll(p, d):
    th, y = p["theta"], d["y"]
    mu = torch.exp(p["b0"] + p["b1"] * d["z"]) if "b1" in p else p["mu"] * torch.ones_like(y)
    return -(torch.lgamma(y + th) - torch.lgamma(th) - torch.lgamma(y + 1)
             + th * torch.log(th / (th + mu)) + y * torch.log(mu / (th + mu)))


def test_negative_binomial_regression_matches_glm_nb():
    d = read_exact_csv(MLE / "negbin.csv")
    ref = REF["negbin"]
    fit = tl.mle(negbin_nll, {"b0": 0.0, "b1": 0.0, "theta": 1.0}, data=d)
    np.testing.assert_allclose(fit.coef()[["b0", "b1"]], ref["coef"], rtol=1e-8)
    assert fit.coef()["theta"] == pytest.approx(ref["theta"], rel=1e-8)
    assert 2 * fit.loglik() == pytest.approx(ref["twologlik"], rel=1e-12)
    # observed information of all three (R: optimHess on the analytic score at glm.nb's estimate)
    np.testing.assert_allclose(fit.std_errors(), ref["joint_se"], rtol=1e-6)


def test_negative_binomial_iid_matches_fitdistr_and_glm_nb():
    d = read_exact_csv(MLE / "negbin_iid.csv")
    ref = REF["negbin_iid"]
    fit = tl.mle(negbin_nll, {"theta": 1.0, "mu": 1.0}, data=d)
    np.testing.assert_allclose(fit.coef(), ref["fitdistr_estimate"], rtol=1e-6)
    np.testing.assert_allclose(fit.std_errors(), ref["fitdistr_sd"], rtol=1e-5)
    assert fit.loglik() == pytest.approx(ref["fitdistr_loglik"], rel=1e-11)
    # glm.nb(y ~ 1): theta and its SE; log(mu) with SE(mu) / mu (the information is block-diagonal here)
    b, se = fit.coef(), fit.std_errors()
    assert b["theta"] == pytest.approx(ref["glmnb_theta"], rel=1e-7)
    assert se["theta"] == pytest.approx(ref["glmnb_theta_se"], rel=1e-6)
    assert np.log(b["mu"]) == pytest.approx(ref["glmnb_intercept"], rel=1e-10)
    assert se["mu"] / b["mu"] == pytest.approx(ref["glmnb_intercept_se"], rel=1e-8)


def test_lbfgs_route_reaches_the_same_optimum(poisson_fit):
    d, newton = poisson_fit
    fit = tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0, "b2": 0.0}, data=d, method="lbfgs")
    assert fit.method == "L-BFGS then Newton" and fit.converged
    np.testing.assert_allclose(fit.coef(), newton.coef(), rtol=1e-10)


def test_not_converged_warns():
    d = poisson_data()
    with pytest.warns(OptimumWarning, match="did not converge in 1 Newton iterations"), \
            pytest.warns(OptimumWarning, match="standard errors from where one Newton step puts it"):
        fit = tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0, "b2": 0.0}, data=d, maxit=1)
    assert not fit.converged
    assert "Newton: did NOT converge in 1 iterations" in str(fit.summary())


def test_non_identifiable_parameter_is_named():
    d = poisson_data()

    def nll(p, d):
        eta = p["a"] + p["c"] + p["b1"] * d["x1"] + p["b2"] * d["x2"]
        return -(d["y"] * eta - torch.exp(eta) - torch.lgamma(d["y"] + 1))

    with pytest.warns(SingularHessianWarning, match=r"a, c are not identifiable .*flat along a - c"):
        fit = tl.mle(nll, {"a": 0.0, "b1": 0.0, "b2": 0.0, "c": 0.0}, data=d)
    se = fit.std_errors()
    assert np.isnan(se["a"]) and np.isnan(se["c"])
    ref = sm.GLM(d["y"].to_numpy(), sm.add_constant(d[["x1", "x2"]].to_numpy()),
                 family=sm.families.Poisson()).fit(tol=1e-13)
    np.testing.assert_allclose(se[["b1", "b2"]], ref.bse[1:], rtol=1e-7)
    assert fit.coef()["a"] + fit.coef()["c"] == pytest.approx(ref.params[0], rel=1e-8)


def test_bad_input_is_named():
    d = poisson_data()
    with pytest.raises(ModelInputError, match="start values"):
        tl.mle(poisson_nll, {"b0": 0.0, "b1": 1e6, "b2": 0.0}, data=d)
    with pytest.raises(ModelInputError, match="start must be a non-empty dict"):
        tl.mle(poisson_nll, [0.0, 0.0], data=d)
    with pytest.raises(ModelInputError, match="torch operations"):
        tl.mle(lambda p: float(p["a"] ** 2), {"a": 1.0})
    with pytest.raises(ModelInputError, match="method must be"):
        tl.mle(poisson_nll, {"b0": 0.0, "b1": 0.0, "b2": 0.0}, data=d, method="bfgs")
    fit = tl.mle(lambda p: (p["a"] - 2) ** 2 / 2, {"a": 0.0})
    assert fit.coef()["a"] == pytest.approx(2.0) and fit.std_errors()["a"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="nobs"):
        fit.bic()
