"""Profile-likelihood intervals against R's confint(glm) (MASS's profile.glm; fixtures/profile/make_profile.R),
and R's spline/approx as ported."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.inference.profile import r_approx, r_spline
from torchlm.models.families import Binomial, Gamma

CASES = json.loads((FIXTURES / "profile" / "r_profile.json").read_text())
MODELS = {
    "binomial": ("am ~ wt + hp", "binomial"),
    "binomial_probit_90": ("vs ~ mpg", Binomial(link="probit")),
    "poisson_factor": ("breaks ~ wool + tension", "poisson"),
    "gamma_log": ("mpg ~ wt + hp", Gamma(link="log")),
    "gaussian": ("mpg ~ wt", "gaussian"),
    "quasipoisson": ("breaks ~ wool + tension", "quasipoisson"),
    "aliased_na_rows": ("Ozone ~ Temp + I(2 * Temp) + Wind", "poisson"),
}


# R 4.2.2 output of the calls in test_spline_and_approx_are_rs
R_SPLINE_Y = [1, 2.8807638193870297, 2, 3.9999999999999982]
R_APPROX = [0.76251691227779572, 2.8821616321319228]


def arr(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_profile_intervals_match_r(case):
    formula, family = MODELS[case["id"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = tl.glm(formula, data=tl.datasets.load(case["data"]), family=family)
    ci = fit.confint(level=case["level"], method="profile")
    a = (1 - case["level"]) / 2
    assert list(ci.columns) == [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]
    for got, want in ((ci.iloc[:, 0], arr(case["lower"])), (ci.iloc[:, 1], arr(case["upper"]))):
        got = got.to_numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        # R profiles its default fit (deviance change < 1e-8); torchlm its exact MLE
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-7, atol=1e-9)
    # both contain the estimate; they differ (the reason to profile) except for a gaussian identity
    # model, whose deviance is quadratic in each coefficient: there the profile interval is Wald's
    wald = fit.confint(level=case["level"])
    b = fit.coef().to_numpy()
    ok = ~np.isnan(b)
    assert np.all(ci.iloc[:, 0].to_numpy()[ok] < b[ok]) and np.all(b[ok] < ci.iloc[:, 1].to_numpy()[ok])
    same = np.allclose(ci.to_numpy()[ok], wald.to_numpy()[ok], rtol=1e-9)
    assert same == (case["id"] == "gaussian")


def test_spline_and_approx_are_rs():
    # R 4.2.2: s <- spline(c(0, 1, 2.5, 3, 5), c(1, 3, 2, 5, 4)); s$y[c(1, 4, 8, 15)];
    # approx(s$y, s$x, xout = c(2.5, 4.2))$y
    x, y = r_spline([0, 1, 2.5, 3, 5], [1, 3, 2, 5, 4])
    assert len(x) == 15 and x[0] == 0 and x[-1] == 5
    np.testing.assert_allclose(y[[0, 3, 7, 14]], R_SPLINE_Y, rtol=1e-14)
    np.testing.assert_allclose(r_approx(y, x, [2.5, 4.2]), R_APPROX, rtol=1e-14)
    assert np.isnan(r_approx([0.0, 1.0], [0.0, 1.0], [2.0])[0])  # rule = 1: NA outside


def test_profile_needs_no_vcov():
    fit = tl.glm("am ~ wt", data=tl.datasets.load("mtcars"), family="binomial")
    with pytest.raises(ValueError, match="method='wald' only"):
        fit.confint(method="profile", vcov="HC0")
    with pytest.raises(ValueError, match="'wald' or 'profile'"):
        fit.confint(method="likelihood")
