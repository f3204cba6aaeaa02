"""tl.glm_nb is MASS's glm.nb and tl.negative_binomial(theta) MASS's negative.binomial family, against R.

References: tests/fixtures/glm_nb/r_glm_nb.json (and quine_extra.csv: an offset and prior weights), written by
make_glm_nb.R (R 4.2.2, MASS 7.3-58.2) on MASS's quine. glm.nb's alternation is followed step for step, so the
numbers agree at rtol 1e-9 and the printed text (after the Call line) line for line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.models.negbin_family import NegativeBinomial, theta_ml, trigamma

HERE = Path(__file__).parent / "fixtures" / "glm_nb"
CASES = {c["id"]: c for c in json.loads((HERE / "r_glm_nb.json").read_text())}
NB_IDS = ["example", "main", "offset_argument", "offset_term", "weights", "init_theta", "link_sqrt", "start",
          "subset", "alternation_limit"]
RTOL = 1e-9


@pytest.fixture(scope="module")
def quine():
    q = tl.datasets.load("quine")
    extra = pd.read_csv(HERE / "quine_extra.csv")
    return q.assign(off=extra["off"].to_numpy(), w=extra["w"].to_numpy())


def close(a, b, rtol=RTOL, atol=0.0):
    a, b = np.asarray(a, dtype=float), np.asarray([np.nan if v is None else v for v in np.ravel(b)], dtype=float)
    np.testing.assert_allclose(np.ravel(a), b, rtol=rtol, atol=atol)


def fit_case(case, data):
    args = dict(case.get("args", {}))
    if args.get("control") == "maxit3":
        args["control"] = {"maxit": 3}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        fit = tl.glm_nb(case["formula"], data, names="R", **args)
    return fit, [str(w.message) for w in said]


@pytest.fixture(scope="module")
def fits(quine):
    return {i: fit_case(CASES[i], quine) for i in NB_IDS}


@pytest.mark.parametrize("cid", NB_IDS)
def test_glm_nb_matches_mass(fits, cid):
    case, (fit, said) = CASES[cid], fits[cid]
    assert fit.names == case["names"]
    close(fit.coef(), case["coef"])
    close(fit.std_errors(), case["se"])
    close(fit.theta, case["theta"])
    close(fit.se_theta, case["se_theta"])
    close(fit.twologlik, case["twologlik"])
    close([fit.aic(), fit.bic(), fit.loglik()], [case["aic"], case["bic"], case["loglik"]])
    assert fit.df_loglik == case["loglik_df"]
    close([fit.deviance, fit.null_deviance], [case["deviance"], case["null_deviance"]])
    assert (fit.df_residual, fit.df_null, fit.iterations) == (case["df_residual"], case["df_null"], case["iter"])
    assert fit.family.name == case["family"]
    assert fit.theta_warning == case["th_warn"]
    close(fit.fitted(), case["fitted"])
    assert said == case["warnings"]
    assert f"init.theta = {case['init_theta_call']:.10g}" in fit.call


@pytest.mark.parametrize("cid", NB_IDS)
def test_print_and_summary_text_match_mass(fits, cid):
    case, (fit, _) = CASES[cid], fits[cid]
    lines = str(fit).split("\n")
    assert lines[1] == f"Call:  {fit.call}"
    assert lines[2:] == case["print"]
    lines = str(fit.summary()).split("\n")
    assert lines[:3] == ["", "Call:", fit.call]
    assert lines[3:] == case["summary"]


def test_theta_lines_show_the_standard_errors_digits(fits):
    text = str(fits["example"][0].summary())
    assert "              Theta:  1.598 \n          Std. Err.:  0.213 \n\n 2 x log-likelihood:  -1063.025 " in text


def glm_table_matches(tab, ref):
    assert list(tab.columns) == ref["columns"] and list(tab.index) == ref["rows"]
    close(tab.to_numpy(dtype=float).ravel(order="F"), ref["values"])
    assert str(tab).split("\n") == ref["text"]


def test_anova_of_one_fit_holds_theta_fixed(fits):
    verbs, nb1 = CASES["example_verbs"], fits["example"][0]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        tab = tl.anova(nb1)
    assert [str(w.message) for w in said] == verbs["anova_one_warnings"]
    glm_table_matches(tab, verbs["anova_one"])


def lr_table_matches(tab, ref):
    close(tab["theta"], ref["theta"])
    close(tab["Resid. df"], ref["resid_df"])
    close(tab["   2 x log-lik."], ref["twologlik"])
    close(tab["   df"], ref["df"])
    close(tab["LR stat."], ref["lr"])
    close(tab["Pr(Chi)"], ref["p"])
    assert list(tab["Model"]) == ref["model"] and list(tab["Test"]) == ref["test"]
    assert str(tab).split("\n") == ref["text"]


def test_anova_of_two_fits_is_mass_likelihood_ratio_table(fits, quine):
    verbs, nb1 = CASES["example_verbs"], fits["example"][0]
    nb2 = tl.glm_nb("Days ~ Sex/(Age + Eth*Lrn) + Sex:Age:Lrn", quine, names="R")
    close(nb2.coef(), verbs["nb2"]["coef"])
    close([nb2.theta, nb2.twologlik], [verbs["nb2"]["theta"], verbs["nb2"]["twologlik"]])
    lr_table_matches(tl.anova(nb1, nb2), verbs["anova_two"])
    lr_table_matches(tl.anova(nb2, nb1), verbs["anova_two"])  # sorted by residual df, as MASS


def test_anova_of_three_fits_sorted_by_residual_df(fits, quine):
    eth = tl.glm_nb("Days ~ Eth + Sex", quine, names="R")
    tab = tl.anova(fits["main"][0], eth, fits["example"][0])
    lr_table_matches(tab, CASES["example_verbs"]["anova_three"])


def test_update_starts_from_the_fits_theta(fits):
    ref = CASES["example_verbs"]["update"]
    up = tl.update(fits["example"][0], ". ~ . + Sex:Age:Lrn")
    assert isinstance(up, type(fits["example"][0]))
    close(up.coef(), ref["coef"])
    close([up.theta, up.se_theta, up.twologlik], [ref["theta"], ref["se_theta"], ref["twologlik"]])
    assert f"init.theta = {ref['init_theta']:.10g}" in up.call


def test_profile_confint_as_mass(fits):
    verbs = CASES["example_verbs"]
    ci = fits["example"][0].confint(method="profile")
    assert list(ci.index) == verbs["confint"]["rows"]
    close(ci.to_numpy().ravel(order="F"), verbs["confint"]["values"])
    ci = fits["main"][0].confint(level=0.9, method="profile")
    close(ci.to_numpy().ravel(order="F"), verbs["confint_main_90"]["values"])


def test_vcov_is_at_dispersion_one(fits):
    # entries that are 0 but for rounding (1e-17 in R) are compared at 1e-9 of the largest
    V, ref = fits["example"][0].vcov().to_numpy().ravel(order="F"), CASES["example_verbs"]["vcov"]
    close(V, ref, atol=1e-9 * np.max(np.abs(ref)))


def test_drop1_and_add1_as_r(fits):
    verbs = CASES["example_verbs"]
    glm_table_matches(tl.drop1(fits["example"][0], test="Chisq"), verbs["drop1"])
    glm_table_matches(tl.drop1(fits["main"][0]), verbs["drop1_main"])
    glm_table_matches(tl.add1(fits["main"][0], "~ . + Eth:Sex + Sex:Lrn", test="Chisq"), verbs["add1_main"])


def test_step_and_car_anova_as_r(fits):
    verbs, nb0 = CASES["example_verbs"], fits["main"][0]
    chosen = tl.step(nb0, trace=0)  # drop1 with theta fixed; each refit re-estimates theta, as R's update
    assert chosen.design.formula.replace(" ", "") == verbs["step"]["formula"].replace(" ", "")
    close(chosen.coef(), verbs["step"]["coef"])
    close(chosen.theta, verbs["step"]["theta"])
    glm_table_matches(tl.Anova(nb0), verbs["car_anova"])


def test_glm_with_a_fixed_theta_is_r_glm_negative_binomial(quine):
    case = CASES["glm_fixed_theta"]
    fit = tl.glm(case["formula"], quine, family=tl.negative_binomial(2), names="R")
    assert fit.names == case["names"] and fit.family.name == case["family"]
    close(fit.coef(), case["coef"])
    close(fit.std_errors(), case["se"])
    close([fit.dispersion, fit.deviance, fit.null_deviance, fit.aic(), fit.loglik()],
          [case["dispersion"], case["deviance"], case["null_deviance"], case["aic"], case["loglik"]])
    assert fit.df_loglik == case["loglik_df"] and fit.iterations == case["iter"]
    close(fit.fitted(), case["fitted"])
    glm_table_matches(tl.anova(fit, test="Chisq"), case["anova"])
    glm_table_matches(tl.drop1(fit, test="Chisq"), case["drop1"])
    close(fit.confint(method="profile").to_numpy().ravel(order="F"), case["confint"]["values"])
    lines = str(fit).split("\n")
    assert lines[1] == f"Call:  {fit.call}" and lines[2:] == case["print"]
    assert "family = negative.binomial(2)" in fit.call
    assert str(fit.summary()).split("\n")[3:] == case["summary"]


def test_family_is_mass_negative_binomial():
    fam = tl.negative_binomial(1.5, link="sqrt")
    assert isinstance(fam, NegativeBinomial) and fam.parameters == {"theta": 1.5}
    assert fam.name == "Negative Binomial(1.5)" and fam.link.name == "sqrt"
    assert not fam.fixed_dispersion and fam.profile_statistic == "tau" and fam.test_statistic == "t"
    assert fam == NegativeBinomial(1.5, "sqrt") and fam != NegativeBinomial(2, "sqrt")
    assert tl.negative_binomial(2.345678).name == "Negative Binomial(2.3457)"  # MASS: format(round(theta, 4))
    import torch
    mu = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    assert torch.allclose(fam.variance(mu), mu + mu**2 / 1.5, rtol=1e-15)
    y = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    assert torch.equal(fam.initialize(y, torch.ones(3, dtype=torch.float64))[2], y + (y == 0).double() / 6)


def test_update_parameters_is_theta_ml(fits):
    fit = fits["main"][0]
    new = fit.family.update_parameters(fit._y, fit._fit.mu, fit._w)
    assert isinstance(new, NegativeBinomial)
    assert np.isclose(new.theta, theta_ml(fit._y, fit._fit.mu, float(fit._w.sum()), fit._w, limit=25).theta,
                      rtol=0, atol=0)


def test_trigamma_is_accurate_where_torch_polygamma_is_not():
    import torch
    from scipy import special
    x = torch.tensor([1e-3, 0.5, 1.6, 3.2, 9.99, 10.7, 51.6, 1234.5], dtype=torch.float64)
    np.testing.assert_allclose(trigamma(x).numpy(), special.polygamma(1, x.numpy()), rtol=2e-15)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(link="logit"), tl.ModelInputError, "link 'logit' is not available"),
    (dict(init_theta=0), tl.ModelInputError, "theta must be a positive finite number"),
    (dict(init_theta="1"), tl.ModelInputError, "theta must be a positive finite number"),
    (dict(control={"maxit": 0}), tl.OptionError, "maxit"),
])
def test_bad_arguments(quine, kwargs, error, text):
    with pytest.raises(error, match=text):
        tl.glm_nb("Days ~ Eth", quine, **kwargs)


def test_bad_data(quine):
    with pytest.raises(tl.DataError, match="negative values not allowed"):
        tl.glm_nb("Days ~ Eth", quine.assign(Days=quine["Days"] - 3))
    with pytest.raises(tl.DataError, match="numeric response"):
        tl.glm_nb("Sex ~ Eth", quine)
    with pytest.raises(tl.DataError, match="negative values not allowed for the negative binomial"):
        tl.glm("Days ~ Eth", quine.assign(Days=quine["Days"] - 3), family=tl.negative_binomial(1))
    with pytest.raises(tl.ModelInputError, match="theta must be"):
        tl.negative_binomial(-1)


def test_anova_compares_glm_nb_fits_only(fits, quine):
    pois = tl.glm("Days ~ Eth", quine, family="poisson")
    with pytest.raises(tl.OptionError, match='not all objects are of class "negbin"'):
        tl.anova(fits["main"][0], pois)
    with pytest.warns(tl.TorchlmWarning, match="only Chi-squared LR tests"):
        tl.anova(fits["main"][0], fits["example"][0], test="F")


def test_anova_of_a_fit_with_itself(fits):
    # R: anova(nb, nb) has df 0 and LR 0, and 1 - pchisq(0, 0) = 1
    tab = tl.anova(fits["main"][0], fits["main"][0])
    assert tab["   df"].iloc[1] == 0 and tab["LR stat."].iloc[1] == 0 and tab["Pr(Chi)"].iloc[1] == 1
