"""Regression diagnostics against R (fixtures/influence/make_influence.R, R 4.2.2): hatvalues, rstandard,
rstudent, cooks.distance and influence()$sigma for lm and glm, zero weights, NA rows, a leverage of 1
and an aliased column included."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.models.families import Gamma

CASES = json.loads((FIXTURES / "influence" / "r_influence.json").read_text())
MODELS = {
    "lm_factor": ("mpg ~ wt + C(cyl)", None, False),
    "lm_zero_weights": ("mpg ~ wt + hp", None, True),
    "lm_na_rows": ("Ozone ~ Wind + Temp", None, False),
    "lm_leverage_one": ("mpg ~ wt + C(carb)", None, False),
    "lm_aliased": ("mpg ~ wt + wt2 + hp", None, False),
    "glm_binomial": ("am ~ wt + hp", "binomial", False),
    "glm_poisson": ("breaks ~ wool + tension", "poisson", False),
    "glm_poisson_zero_weights": ("breaks ~ tension", "poisson", True),
    "glm_gamma_log": ("mpg ~ wt", Gamma(link="log"), False),
    "glm_quasipoisson": ("breaks ~ wool + tension", "quasipoisson", False),
}
RTOL = 1e-9


def arr(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def fit_case(case):
    formula, family, weighted = MODELS[case["id"]]
    df = tl.datasets.load(case["data"])
    if case["data"] == "mtcars":
        df = df.assign(wt2=2 * df["wt"])
    kw = {"weights": np.arange(len(df)) % 4} if weighted else {}  # make_influence.R: (seq_len(n) - 1) %% 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family is None:
            return tl.lm(formula, data=df, **kw)
        return tl.glm(formula, data=df, family=family, **kw)


def close(got: pd.Series, want, rtol=RTOL):
    got, want = got.to_numpy(dtype=float), arr(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    scale = np.maximum(np.abs(want[ok]), 1e-3 * np.max(np.abs(want[ok])))  # entries near 0: relative to the largest
    assert np.all(np.abs(got[ok] - want[ok]) <= rtol * scale), np.max(np.abs(got[ok] - want[ok]) / scale)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_diagnostics_match_r(case):
    fit = fit_case(case)
    glm = case["id"].startswith("glm")
    hat = fit.hatvalues()
    # the rows with non-zero weight (1-based positions in R), labelled by the data's row names as R labels them
    labels = tl.datasets.load(case["data"]).index
    assert list(hat.index) == list(labels[[int(r) - 1 for r in case["rows"]]])
    close(hat, case["hat"])
    close(fit.influence().sigma, case["sigma"])
    close(fit.rstandard(), case["rstandard"])
    close(fit.rstandard("pearson" if glm else "predictive"), case["rstandard_alt"])
    close(fit.rstudent(), case["rstudent"])
    close(fit.cooks_distance(), case["cooks"])


def test_leverages_sum_to_rank_and_match_the_hat_matrix():
    fit = fit_case(next(c for c in CASES if c["id"] == "lm_zero_weights"))
    d = fit.design
    u = d.weights != 0
    Xw = np.sqrt(d.weights[u])[:, None] * d.X[u]
    H = Xw @ np.linalg.solve(Xw.T @ Xw, Xw.T)  # the n x n hat matrix that torchlm never forms
    np.testing.assert_allclose(fit.hatvalues().to_numpy(), np.diag(H), rtol=1e-12)
    assert fit.hatvalues().sum() == pytest.approx(fit.rank, rel=1e-12)


def test_leverage_one_gives_nan_like_r():
    fit = fit_case(next(c for c in CASES if c["id"] == "lm_leverage_one"))
    h = fit.hatvalues()
    one = h[h == 1].index
    assert len(one) == 2  # carb 6 and carb 8: one car each
    assert fit.rstandard()[one].isna().all() and fit.cooks_distance()[one].isna().all()
    assert np.isfinite(fit.influence().sigma[one]).all()


def test_bad_rstandard_type():
    fit = fit_case(CASES[0])
    with pytest.raises(ValueError, match="'sd.1' or 'predictive'"):
        fit.rstandard("pearson")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_coefficient_changes_and_influence_measures_match_r(case):
    fit = fit_case(case)
    n = len(case["hat"])
    k = fit.rank

    def matrix(key, width):
        return arr(case[key]).reshape(n, width)

    db = fit.dfbeta()
    assert list(db.columns) == fit.estimable
    for got, key in ((db, "dfbeta"), (fit.dfbetas(), "dfbetas")):
        close(pd.Series(got.to_numpy().ravel()), matrix(key, k).ravel())
    close(fit.dffits(), case["dffits"])
    close(fit.covratio(), case["covratio"])
    im = fit.influence_measures()
    assert list(im.infmat.columns) == [f"dfb.{c}" for c in fit.estimable] + ["dffit", "cov.r", "cook.d", "hat"]
    close(pd.Series(im.infmat.to_numpy().ravel()), matrix("infmat", k + 4).ravel())
    want = matrix("is_inf", k + 4)
    known = ~np.isnan(want)  # R's flag is NA where the measure is NaN (a leverage of 1): not flagged here
    np.testing.assert_array_equal(im.is_inf.to_numpy()[known], want[known] == 1)
    assert not im.is_inf.to_numpy()[~known].any()
    assert set(im.influential.index) == set(im.infmat.index[im.is_inf.any(axis=1)])


def test_results_are_copies():
    fit = fit_case(CASES[0])
    h = fit.hatvalues()
    h[:] = 0
    infl = fit.influence()
    infl.sigma[:] = 0
    assert (fit.hatvalues() > 0).all() and (fit.influence().sigma > 0).all()
