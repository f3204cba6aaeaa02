"""tl.mle and tl.infer as stats4, bbmle and fitdistr (issue 13): fixed parameters, bounds, profile intervals,
likelihood-ratio and AIC tables, the delta method, element names, the log-likelihood and score at a point,
gaussian_nll_loss with any reduction, exceptions at trial steps, and six likelihoods against R.

R references: tests/fixtures/mle_ext/make_mle_ext.R (stats4::mle with an exact optimiser, so that its numbers are
the exact MLE's: its numerically differentiated standard errors are good to ~1e-10; MASS, survival, car, sandwich).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.errors import ModelInputError, OptionError

HERE = FIXTURES / "mle_ext"
R = json.loads((HERE / "mle_ext.json").read_text())
WEIB = read_exact_csv(HERE / "weibull.csv")
NORM = read_exact_csv(HERE / "normal.csv")
POIS = read_exact_csv(HERE / "poisson.csv")
SIX = read_exact_csv(HERE / "six.csv")


def weib_nll(p, d):
    k, s, x = p["shape"], p["scale"], d["x"]
    return -(torch.log(k / s) + (k - 1) * torch.log(x / s) - (x / s) ** k)


def norm_nll(p, d):
    return -D.Normal(p["mean"], p["sd"], validate_args=True).log_prob(d["x"])


def pois_nll(p, d):
    return -(d["x"] * torch.log(p["lambda"]) - p["lambda"] - torch.lgamma(d["x"] + 1))


def quietly(f, *args, **kw):
    """f(*args, **kw) and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = f(*args, **kw)
    return out, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def weib():
    return tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB)


@pytest.fixture(scope="module")
def norm():
    return tl.mle(norm_nll, {"mean": 0.0, "sd": 1.0}, data=NORM)


@pytest.fixture(scope="module")
def pois():
    return tl.mle(pois_nll, {"lambda": 1.0}, data=POIS)


# --- profile intervals: stats4's confint(mle) ----------------------------------------------------------
@pytest.mark.parametrize("case", ["poisson", "weibull", "normal"])
def test_profile_intervals_match_stats4(case, request):
    fit = request.getfixturevalue({"poisson": "pois", "weibull": "weib", "normal": "norm"}[case])
    ref = R[case]
    assert fit.names == ref["names"]
    np.testing.assert_allclose(fit.coef(), ref["coef"], rtol=1e-10)
    # R's standard errors: optimHess's central differences of the analytic gradient
    np.testing.assert_allclose(fit.std_errors(), ref["se"], rtol=1e-8)
    assert fit.loglik() == pytest.approx(ref["loglik"], rel=1e-13)
    for level, ci in zip(ref["levels"], ref["profile_ci"]):
        got = fit.confint(level, method="profile")
        assert list(got.columns) == tl.Estimates.confint(fit, level).columns.tolist()
        np.testing.assert_allclose(got.to_numpy(), np.array(ci).reshape(-1, 2), rtol=1e-9)


def test_profile_grid_is_stats4s(weib, pois):
    for fit, ref in ((weib, R["weibull_profile"]), (pois, R["poisson_profile"])):
        prof = fit.profile()
        assert set(prof) == set(ref)
        for name, tab in prof.items():
            np.testing.assert_allclose(tab["z"], ref[name]["z"], rtol=1e-8, atol=1e-9)
            np.testing.assert_allclose(tab[fit.names].to_numpy(), np.array(ref[name]["par_vals"]), rtol=1e-9)


def test_profile_intervals_agree_with_stats4s_default_optimiser(weib):
    # stats4 with optim's defaults (reltol 1e-8, numerical gradients): five digits
    ci = weib.confint(method="profile").to_numpy()
    np.testing.assert_allclose(ci, np.array(R["weibull_default"]["profile_ci"][0]), rtol=1e-6)
    assert not np.allclose(ci, weib.confint().to_numpy(), rtol=1e-3)  # they are not the Wald intervals


def test_profile_needs_a_refittable_likelihood():
    X = torch.randn(30, 1, dtype=torch.float64)
    m = torch.nn.Linear(1, 1, dtype=torch.float64)
    res = tl.infer(m, torch.nn.MSELoss(), X, X * 2 + 0.1 * torch.randn(30, 1, dtype=torch.float64),
                   optimum_tol=1e9)
    with pytest.raises(OptionError, match="tl.mle"):
        res.confint(method="profile")
    with pytest.raises(OptionError, match="'wald' or 'profile'"):
        res.confint(method="boot")


# --- fixed parameters: stats4::mle(fixed=) ----------------------------------------------------------------
def test_fixed_parameter_matches_stats4():
    ref = R["fixed"]
    fit, caught = quietly(tl.mle, weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed={"shape": 1.5})
    assert caught == [] and fit.converged
    assert fit.names == ["scale"] and list(fit.vcov().index) == ["scale"]
    assert list(fit.summary().coefficients.index) == ["scale"]
    np.testing.assert_allclose(fit.coef(), ref["coef"], rtol=1e-12)
    np.testing.assert_allclose(fit.coef(), ref["exact_scale"], rtol=1e-12)
    np.testing.assert_allclose(fit.full_coef(), ref["fullcoef"], rtol=1e-12)
    assert fit.fixed.to_dict() == {"shape": 1.5}
    np.testing.assert_allclose(fit.std_errors(), ref["se"], rtol=1e-8)
    assert -fit.loglik() == pytest.approx(ref["min"], rel=1e-13)
    assert fit.df_loglik == 1
    np.testing.assert_allclose(fit.confint(method="profile").to_numpy(), np.array(ref["profile_ci"]), rtol=1e-9)
    assert "fixed = list(shape = 1.5)" in fit.call
    assert "Fixed: shape = 1.5" in str(fit.summary())


def test_fixed_element_of_a_vector_parameter_is_the_smaller_glm():
    six = R["six"]

    def nll(p, d):
        return -D.Bernoulli(logits=p["b"][0] + p["b"][1] * d["x"], validate_args=True).log_prob(d["yb"])

    full = tl.mle(nll, {"b": [0.0, 0.0]}, data=SIX)
    assert full.names == ["b[0]", "b[1]"]
    np.testing.assert_allclose(full.coef(), six["logit_coef"], rtol=1e-9)
    np.testing.assert_allclose(full.std_errors(), six["logit_se"], rtol=1e-8)
    small = tl.mle(nll, {"b": [0.0, 0.0]}, data=SIX, fixed={"b[1]": 0.0})
    assert small.names == ["b[0]"] and small.fixed.to_dict() == {"b[1]": 0.0}
    assert small.coef()["b[0]"] == pytest.approx(six["logit0_coef"], rel=1e-9)
    assert small.std_errors()["b[0]"] == pytest.approx(six["logit0_se"], rel=1e-8)
    assert small.loglik() == pytest.approx(six["logit0_loglik"], rel=1e-12)
    # the likelihood-ratio test of the two is R's anova(glm0, glm1, test = "Chisq")
    tab = tl.anova(small, full)
    assert tab["Chisq"].iloc[1] == pytest.approx(six["logit_lrt"][0], rel=1e-9)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(six["logit_lrt"][1], rel=1e-7)


def test_vector_elements_named_by_a_series_index():
    six = R["six"]

    def nll(p, d):
        return -D.Bernoulli(logits=p["b"][0] + p["b"][1] * d["x"]).log_prob(d["yb"])

    fit = tl.mle(nll, {"b": pd.Series([0.0, 0.0], index=["(Intercept)", "x"])}, data=SIX)
    assert fit.names == ["b[(Intercept)]", "b[x]"]
    assert list(fit.vcov().index) == fit.names and list(fit.summary().coefficients.index) == fit.names
    assert "b[x]" in str(fit.summary())
    np.testing.assert_allclose(fit.coef(), six["logit_coef"], rtol=1e-9)


def test_fixed_bad_input_is_named():
    with pytest.raises(ModelInputError, match="'shap', which is neither a parameter of start nor an element"):
        tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed={"shap": 1.0})
    with pytest.raises(ModelInputError, match="every parameter is fixed"):
        tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed={"shape": 1.0, "scale": 2.0})
    with pytest.raises(ModelInputError, match="fixed must be a dict"):
        tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed=[1.0])
    with pytest.raises(ModelInputError, match="has 2 elements; the parameter has 1"):
        tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed={"shape": [1.0, 2.0]})


# --- bounds: stats4::mle(lower=, upper=) (L-BFGS-B) ---------------------------------------------------------
def test_estimate_on_a_bound_warns_and_matches_stats4():
    ref = R["bounds"]
    with pytest.warns(tl.BoundaryWarning, match=r"mean = 3.6 \(its lower bound\).*not valid"):
        fit = tl.mle(norm_nll, {"mean": 4.0, "sd": 1.0}, data=NORM, lower={"mean": ref["lower"], "sd": 1e-6})
    assert fit.converged and fit.at_optimum  # the constrained optimum (KKT), though the gradient of mean is not 0
    assert fit.coef()["mean"] == ref["lower"]
    np.testing.assert_allclose(fit.coef(), ref["exact"], rtol=1e-12)
    np.testing.assert_allclose(fit.coef(), ref["coef"], rtol=1e-12)
    assert -fit.loglik() == pytest.approx(ref["min"], rel=1e-13)
    # R reports the Hessian's standard errors at the bound, as tl.mle does
    np.testing.assert_allclose(fit.std_errors(), ref["se"], rtol=1e-8)
    assert fit.at_bound.to_dict() == {"mean": True, "sd": False}
    assert "On a bound (their standard errors are not valid): mean" in str(fit.summary())
    # stats4's profile stops at the bound (its refit there is an error): no lower end for mean
    ci = fit.confint(method="profile")
    assert np.isnan(ci.loc["mean"].iloc[0])
    np.testing.assert_allclose(ci.to_numpy(), np.array(ref["profile_ci"], dtype=float), rtol=1e-9)


def test_bounds_that_do_not_bind_change_nothing(norm):
    ref = R["bounds"]
    fit, caught = quietly(tl.mle, norm_nll, {"mean": 2.0, "sd": 1.0}, data=NORM, lower={"mean": -10, "sd": 0.5},
                          upper={"mean": 10, "sd": 10})
    assert caught == [] and fit.converged and not fit.at_bound.any()
    np.testing.assert_allclose(fit.coef(), norm.coef(), rtol=1e-12)
    np.testing.assert_allclose(fit.coef(), ref["inner_coef"], rtol=1e-10)  # R's L-BFGS-B (factr = 0)
    np.testing.assert_allclose(fit.std_errors(), ref["inner_se"], rtol=1e-8)


def test_bounds_keep_every_trial_point_inside():
    seen = []

    def nll(p, d):
        seen.append(float(p["sd"].detach()))
        return -(-torch.log(p["sd"]) - (d["x"] - p["mean"]) ** 2 / (2 * p["sd"] ** 2))

    fit = tl.mle(nll, {"mean": 0.0, "sd": 3.0}, data=NORM, lower={"sd": 1.0}, upper={"sd": 5.0})
    assert min(seen) >= 1.0 and max(seen) <= 5.0
    assert fit.converged and not fit.at_bound.any()


def test_bad_bounds_are_named():
    with pytest.raises(ModelInputError, match="start value of sd .* outside its bounds"):
        tl.mle(norm_nll, {"mean": 0.0, "sd": 1.0}, data=NORM, lower={"sd": 2.0})
    with pytest.raises(ModelInputError, match="not below its upper bound"):
        tl.mle(norm_nll, {"mean": 0.0, "sd": 1.0}, data=NORM, lower={"sd": 1.0}, upper={"sd": 1.0})
    with pytest.raises(ModelInputError, match="not a parameter"):
        tl.mle(norm_nll, {"mean": 0.0, "sd": 1.0}, data=NORM, lower={"sigma": 0.0})
    with pytest.raises(ModelInputError, match="does not take bounds"):
        tl.mle(norm_nll, {"mean": 0.0, "sd": 1.0}, data=NORM, lower={"sd": 0.0}, method="lbfgs")


# --- likelihood-ratio and AIC tables: bbmle's anova.mle2 and ICtab ----------------------------------------
@pytest.fixture(scope="module")
def three(weib):
    def gamma_nll(p, d):
        return -D.Gamma(p["shape"], p["rate"], validate_args=True).log_prob(d["x"])

    expo = tl.mle(weib_nll, {"shape": 1.0, "scale": 1.0}, data=WEIB, fixed={"shape": 1.0})
    gam = tl.mle(gamma_nll, {"shape": 1.0, "rate": 1.0}, data=WEIB)
    np.testing.assert_allclose(gam.coef(), R["tables"]["gamma_coef"], rtol=1e-10)
    return expo, weib, gam


def test_likelihood_ratio_table_is_bbmles(three):
    expo, weib, _ = three
    ref = R["tables"]
    tab = tl.anova(expo, weib)
    assert list(tab.columns) == ["Tot Df", "Deviance", "Chisq", "Df", "Pr(>Chisq)"]
    np.testing.assert_allclose(tab.to_numpy(dtype=float), np.array(ref["lrt"], dtype=float), rtol=1e-9)
    assert str(tab).split("\n") == ref["lrt_text"]
    assert tl.anova(expo, weib, test="LRT").equals(tab)
    with pytest.raises(OptionError, match="'Chisq'"):
        tl.anova(expo, weib, test="F")


def test_aic_tables_are_bbmles(three):
    ref = R["tables"]
    names = ["exponential", "weibull", "gamma"]
    tab = tl.AICtab(*three, names=names)
    assert list(tab.index) == ref["aic_default_names"]
    np.testing.assert_allclose(tab.to_numpy(dtype=float), np.array(ref["aic_default"]), rtol=1e-9, atol=1e-12)
    assert str(tab).split("\n") == ref["aic_default_text"]
    full = tl.AICtab(*three, names=names, weights=True, base=True, loglik=True)
    assert list(full.columns) == ref["aic_full_columns"] and list(full.index) == ref["aic_full_names"]
    np.testing.assert_allclose(full.to_numpy(dtype=float), np.array(ref["aic_full"]), rtol=1e-9, atol=1e-12)
    assert str(full).split("\n") == ref["aic_full_text"]
    bic = tl.AICtab(*three, names=names, type="BIC", weights=True, sort=False)
    assert list(bic.columns) == ref["bic_columns"]
    np.testing.assert_allclose(bic.to_numpy(dtype=float), np.array(ref["bic"]), rtol=1e-9, atol=1e-12)
    assert str(bic).split("\n") == ref["bic_text"]
    aicc = tl.AICtab(*three, names=names, type="AICc", base=True)
    assert list(aicc.columns) == ref["aicc_columns"]
    np.testing.assert_allclose(aicc.to_numpy(dtype=float), np.array(ref["aicc"]), rtol=1e-9, atol=1e-12)
    assert str(aicc).split("\n") == ref["aicc_text"]
    assert full["AIC"].loc["weibull"] == pytest.approx(three[1].aic(), rel=1e-14)


def test_model_comparison_refuses_other_data_and_fits(three, norm):
    with pytest.raises(OptionError, match="different numbers of observations"):
        tl.anova(three[1], norm)
    with pytest.raises(OptionError, match="tl.mle"):
        tl.AICtab(three[1], "not a fit")


# --- the delta method: car::deltaMethod --------------------------------------------------------------------
def pois_offset_nll(p, d):
    return -D.Poisson(torch.exp(p["b0"] + p["b1"] * d["x"] + torch.log(d["expo"])), validate_args=True).log_prob(
        d["yp"])


@pytest.fixture(scope="module")
def pois_offset():
    return tl.mle(pois_offset_nll, {"b0": 0.0, "b1": 0.0}, data=SIX)


@pytest.mark.parametrize("key, fn", [("pois_exp_b0", lambda p: torch.exp(p["b0"])),
                                     ("pois_ratio", lambda p: p["b1"] / p["b0"]),
                                     ("pois_rate_at_1", lambda p: torch.exp(p["b0"] + p["b1"]))])
def test_delta_method_matches_car(pois_offset, key, fn):
    tab = pois_offset.delta(fn)
    got = tab[["Estimate", "Std. Error", "2.5 %", "97.5 %"]].to_numpy()[0]
    np.testing.assert_allclose(got, R["delta"][key], rtol=1e-8)
    assert tab.index.tolist() == ["value"]
    assert tab["z value"].iloc[0] == pytest.approx(got[0] / got[1], rel=1e-14)


def test_delta_method_vectors_names_and_levels(pois_offset, weib):
    tab = pois_offset.delta(lambda p: {"rate0": torch.exp(p["b0"]), "ratio": p["b1"] / p["b0"]})
    assert tab.index.tolist() == ["rate0", "ratio"]
    np.testing.assert_allclose(tab.iloc[:, [0, 1, 4, 5]].to_numpy(),
                               [R["delta"]["pois_exp_b0"], R["delta"]["pois_ratio"]], rtol=1e-8)
    vec = pois_offset.delta(lambda p: torch.stack([torch.exp(p["b0"]), p["b1"] / p["b0"]]), names=["a", "b"])
    np.testing.assert_allclose(vec.to_numpy(), tab.to_numpy(), rtol=1e-14)

    def weibull_mean(p):
        return p["scale"] * torch.exp(torch.lgamma(1 + 1 / p["shape"]))

    t90 = weib.delta(weibull_mean, level=0.9)
    assert t90.index.tolist() == ["weibull_mean"] and list(t90.columns[-2:]) == ["5 %", "95 %"]
    np.testing.assert_allclose(t90.iloc[0, [0, 1, 4, 5]].to_numpy(dtype=float), R["delta"]["weibull_mean_90"],
                               rtol=1e-8)
    np.testing.assert_allclose(weib.delta(weibull_mean).iloc[0, [0, 1, 4, 5]].to_numpy(dtype=float),
                               R["delta"]["weibull_mean"], rtol=1e-8)
    with pytest.raises(ModelInputError, match="torch tensor"):
        weib.delta(lambda p: float(p["shape"]))
    with pytest.raises(ModelInputError, match="names has 1 entries"):
        pois_offset.delta(lambda p: torch.stack([p["b0"], p["b1"]]), names=["only"])


# --- the log-likelihood and score at a point -------------------------------------------------------------
def test_loglik_and_score_at_a_point(weib):
    ref = R["at"]
    point = dict(zip(["shape", "scale"], ref["point"]))
    for params in (point, pd.Series(point), ref["point"]):
        ll, caught = quietly(weib.loglik_at, params)
        assert caught == [] and ll == pytest.approx(ref["loglik"], rel=1e-13)
        np.testing.assert_allclose(weib.score_at(params), ref["score"], rtol=1e-11)
    # the estimate: the log-likelihood, and a score of ~0
    assert weib.loglik_at({}) == pytest.approx(weib.loglik(), rel=1e-15)
    assert np.abs(weib.score_at({}).to_numpy()).max() < 1e-8
    with pytest.raises(ModelInputError, match="not a parameter"):
        weib.loglik_at({"rate": 1.0})
    with pytest.raises(ModelInputError, match="one per free parameter"):
        weib.loglik_at([1.0, 2.0, 3.0])


# --- tl.infer: gaussian_nll_loss of any reduction ----------------------------------------------------------
class MeanLogVar(torch.nn.Module):
    def __init__(self, b0, b1, logv):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1, dtype=torch.float64)
        self.logv = torch.nn.Parameter(torch.tensor([logv], dtype=torch.float64))
        with torch.no_grad():
            self.lin.weight.fill_(b1)
            self.lin.bias.fill_(b0)

    def forward(self, x):
        return torch.stack([self.lin(x).squeeze(-1), self.logv.expand(x.shape[0])], dim=1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_nll_loss_of_any_reduction(reduction):
    ref = R["gaussian"]
    g = read_exact_csv(HERE / "gaussian.csv")
    X = torch.tensor(g["x"].to_numpy())[:, None]
    y = torch.tensor(g["y"].to_numpy())
    model = MeanLogVar(*ref["coef"])  # lm's coefficients and the log of the MLE of the variance

    def loss(out, y):
        return F.gaussian_nll_loss(out[:, 0], y, out[:, 1].exp(), full=True, reduction=reduction)

    res = tl.infer(model, loss, X, y, dispersion=1)
    assert res.names == ["lin.weight", "lin.bias", "logv"][:0] + [n for n, _ in model.named_parameters()]
    order = {"lin.bias": 0, "lin.weight": 1, "logv": 2}
    idx = [order[n] for n in res.names]
    np.testing.assert_allclose(res.std_errors(), np.array(ref["se"])[idx], rtol=1e-8)
    assert res.loglik() == pytest.approx(ref["loglik"], rel=1e-12)
    # the sandwich: its (b0, b1) block is lm's HC0 (the information is block-diagonal at the MLE)
    hc0 = res.vcov("HC0").loc[["lin.bias", "lin.weight"], ["lin.bias", "lin.weight"]]
    np.testing.assert_allclose(hc0.to_numpy(), np.array(ref["hc0"]), rtol=1e-8)
    # the log-likelihood at another point, the delta method over the model's parameter names
    at = dict(zip(["lin.bias", "lin.weight", "logv"], ref["at"]))
    assert res.loglik_at(at) == pytest.approx(ref["loglik_at"], rel=1e-12)
    d = res.delta(lambda p: p["lin.weight"][0, 0] / p["lin.bias"][0])
    np.testing.assert_allclose(d.iloc[0, [0, 1, 4, 5]].to_numpy(dtype=float), ref["delta_ratio"], rtol=1e-8)


def test_gaussian_nll_loss_module_names_the_working_recipe():
    X = torch.randn(10, 1, dtype=torch.float64)
    with pytest.raises(ModelInputError, match="gaussian_nll_loss"):
        tl.infer(MeanLogVar(0.0, 1.0, 0.0), torch.nn.GaussianNLLLoss(), X, X[:, 0])


# --- exceptions at trial steps ------------------------------------------------------------------------------
def test_validate_args_outside_the_support_at_a_trial_step_shortens_it(norm):
    # from sd = 1.6 sd-hat (mean at its estimate) the Newton step of sd lands below 0, where Normal raises
    x = torch.tensor(NORM["x"].to_numpy())
    start = {"mean": float(x.mean()), "sd": 1.6 * float(norm.coef()["sd"])}
    th = torch.tensor([start["mean"], start["sd"]], dtype=torch.float64)

    def f(t):
        return -D.Normal(t[0], t[1]).log_prob(x).sum()

    step = -torch.linalg.solve(torch.autograd.functional.hessian(f, th), torch.func.grad(f)(th))
    assert float(th[1] + step[1]) < 0
    with pytest.raises(ValueError):
        norm_nll({"mean": th[0], "sd": th[1] + step[1]}, {"x": x})
    fit, caught = quietly(tl.mle, norm_nll, start, data=NORM)
    assert caught == [] and fit.converged
    np.testing.assert_allclose(fit.coef(), R["normal"]["coef"], rtol=1e-10)


# --- six likelihoods against R: converged, no warnings ----------------------------------------------------
def aft_nll(p, d):
    s = torch.exp(p["log_scale"])
    z = (torch.log(d["time"]) - p["b0"] - p["b1"] * d["x"]) / s
    return -(d["status"] * (z - torch.log(s) - torch.log(d["time"])) - torch.exp(z))


def nb_nll(p, d):
    mu = torch.exp(p["b0"] + p["b1"] * d["x"])
    return -D.NegativeBinomial(total_count=p["theta"], logits=torch.log(mu) - torch.log(p["theta"]),
                               validate_args=True).log_prob(d["ynb"])


def gamma_nll(p, d):
    return -D.Gamma(p["shape"], p["rate"], validate_args=True).log_prob(d["yg"])


def normal_nll(p, d):
    return -D.Normal(p["mean"], p["sd"], validate_args=True).log_prob(d["yn"])


def logit_nll(p, d):
    return -D.Bernoulli(logits=p["b0"] + p["b1"] * d["x"], validate_args=True).log_prob(d["yb"])


SIX_CASES = {
    "aft": (aft_nll, {"b0": 0.0, "b1": 0.0, "log_scale": 0.0}, "aft_coef", "aft_se", "aft_loglik"),
    "negbin": (nb_nll, {"b0": 0.0, "b1": 0.0, "theta": 1.0}, "nb_coef", "nb_se", None),
    "gamma": (gamma_nll, {"shape": 1.0, "rate": 1.0}, "gamma_exact", "gamma_exact_se", "gamma_loglik"),
    "normal": (normal_nll, {"mean": 0.0, "sd": 1.0}, "normal_coef", "normal_se", "normal_loglik"),
    "logistic": (logit_nll, {"b0": 0.0, "b1": 0.0}, "logit_coef", "logit_se", "logit_loglik"),
    "poisson_offset": (pois_offset_nll, {"b0": 0.0, "b1": 0.0}, "pois_coef", "pois_se", "pois_loglik"),
}


@pytest.mark.parametrize("case", list(SIX_CASES))
@pytest.mark.parametrize("summed", [False, True])
def test_six_likelihoods_match_r_and_converge(case, summed):
    nll, start, coef, se, loglik = SIX_CASES[case]
    six = R["six"]
    f = (lambda p, d: nll(p, d).sum()) if summed else nll
    fit, caught = quietly(tl.mle, f, start, data=SIX)
    assert caught == [] and fit.converged and fit.at_optimum and fit.iterations < 30
    assert "Newton: converged" in str(fit.summary())
    np.testing.assert_allclose(fit.coef(), six[coef], rtol=1e-9)
    # survreg, glm and the closed forms: analytic information (negbin: R's optimHess of the analytic score)
    np.testing.assert_allclose(fit.std_errors(), six[se], rtol=1e-8 if case != "negbin" else 1e-7)
    if loglik is not None:
        assert fit.loglik() == pytest.approx(six[loglik], rel=1e-12)
    else:
        assert 2 * fit.loglik() == pytest.approx(six["nb_twologlik"], rel=1e-12)
    if case == "gamma":  # fitdistr: BFGS with numerical derivatives
        np.testing.assert_allclose(fit.coef(), six["gamma_fitdistr"], rtol=1e-5)
        np.testing.assert_allclose(fit.std_errors(), six["gamma_fitdistr_sd"], rtol=1e-4)
    assert math.isfinite(fit.aic())
