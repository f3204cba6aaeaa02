"""Numerical accuracy on the NIST StRD linear least-squares datasets (certified to 15 digits).

Accuracy is the log relative error LRE = -log10(|est - cert| / |cert|) (absolute error where the
certified value is 0), capped at 15: the number of correct significant digits. For each dataset
the minimum LRE over the coefficients, over the standard errors, and the LRE of the residual SD
and of R^2 must reach ``min(R, torchlm as measured) - 0.3``: R's digits where we meet them (so
we never fall behind R), our own measured digits where R does better (so regressions fail).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from _support import NIST, read_exact_csv

# digits (LRE, capped at 15): (coef, SE, residual SD, R^2)
# R: R 4.2.2 lm() (summary.lm for SE, sigma, r.squared), produced by fixtures/nist/r_lre.R.
R_DIGITS = {
    "Norris": (12.47, 14.00, 14.14, 15.00),
    "Pontius": (12.65, 13.19, 13.20, 15.00),
    "NoInt1": (14.72, 14.40, 14.52, 15.00),
    "NoInt2": (15.00, 15.00, 15.00, 15.00),
    "Filip": (7.21, 7.04, 8.15, 10.33),  # tol = 1e-10
    "Longley": (12.99, 14.13, 14.27, 15.00),
    "Wampler1": (9.83, 9.99, 9.99, 15.00),
    "Wampler2": (13.55, 14.72, 14.73, 15.00),
    "Wampler3": (9.32, 13.58, 14.76, 15.00),
    "Wampler4": (7.47, 13.57, 14.76, 15.00),
    "Wampler5": (5.47, 13.58, 14.80, 14.76),
}
# torchlm as measured when this table was written (float64, CPU).
TORCHLM_DIGITS = {
    "Norris": (14.06, 13.92, 14.03, 15.00),
    "Pontius": (13.51, 13.76, 13.78, 15.00),
    "NoInt1": (14.72, 14.98, 15.00, 15.00),
    "NoInt2": (15.00, 14.94, 15.00, 15.00),
    "Filip": (7.61, 7.48, 9.57, 11.15),  # tol = 1e-10
    "Longley": (14.62, 14.45, 15.00, 15.00),
    "Wampler1": (15.00, 15.00, 15.00, 15.00),
    "Wampler2": (13.20, 14.90, 14.91, 15.00),
    "Wampler3": (13.20, 13.17, 14.81, 15.00),
    "Wampler4": (11.33, 13.17, 14.83, 15.00),
    "Wampler5": (9.36, 13.17, 14.80, 14.94),
}
QUANTITIES = ("coef", "se", "residual_sd", "r_squared")
SLACK = 0.3
DATASETS = list(R_DIGITS)


def lre(est, cert) -> float:
    """Log relative error, capped at 15 (absolute error where the certified value is 0)."""
    est, cert = float(est), float(cert)
    if math.isnan(est):
        return 0.0
    err = abs(est) if cert == 0 else abs(est - cert) / abs(cert)
    return 15.0 if err == 0 else min(15.0, -math.log10(err))


def spec(name: str) -> dict:
    return json.loads((NIST / f"{name}.json").read_text())


def data(name: str) -> pd.DataFrame:
    return read_exact_csv(NIST / f"{name}.csv")


def formula(meta: dict, df: pd.DataFrame) -> str:
    xs = [c for c in df.columns if c != "y"]
    if meta["degree"] and xs == ["x"]:
        terms = ["x"] + [f"I(x**{k})" for k in range(2, meta["degree"] + 1)]
    else:
        terms = xs
    return "y ~ " + ("" if meta["intercept"] else "0 + ") + " + ".join(terms)


_FITS: dict = {}


def fit_nist(name: str):
    if name not in _FITS:
        meta, df = spec(name), data(name)
        kw = {"tol": 1e-10} if name == "Filip" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Wampler1 is an exact fit: F = Inf
            _FITS[name] = (meta, tl.lm(formula(meta, df), data=df, **kw))
    return _FITS[name]


def digits_of(name: str) -> dict[str, float]:
    meta, fit = fit_nist(name)
    b, se = fit.coef().to_numpy(), fit.std_errors().to_numpy()
    assert len(b) == len(meta["coef"]) and len(se) == len(meta["se"])
    return {
        "coef": min(lre(e, c) for e, c in zip(b, meta["coef"])),
        "se": min(lre(e, c) for e, c in zip(se, meta["se"])),
        "residual_sd": lre(fit.sigma, meta["residual_sd"]),
        "r_squared": lre(fit.r_squared, meta["r_squared"]),
    }


def test_table_covers_all_eleven_datasets():
    on_disk = sorted(p.stem for p in NIST.glob("*.json"))
    assert on_disk == sorted(DATASETS) and len(DATASETS) == 11
    assert set(TORCHLM_DIGITS) == set(R_DIGITS)


@pytest.mark.parametrize("name", DATASETS)
def test_csv_parses_to_exact_doubles(name):
    """Every number in the CSV must parse to the double nearest its text (Python's float())."""
    df = data(name)
    lines = (NIST / f"{name}.csv").read_text().split()
    header = lines[0].split(",")
    assert list(df.columns) == header
    text = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(df.to_numpy(dtype=float), text)
    assert len(df) == spec(name)["n"]


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("quantity", QUANTITIES)
def test_nist_digits(name, quantity):
    k = QUANTITIES.index(quantity)
    floor = min(R_DIGITS[name][k], TORCHLM_DIGITS[name][k]) - SLACK
    got = digits_of(name)[quantity]
    assert got >= floor, (
        f"{name} {quantity}: {got:.2f} correct digits, need >= {floor:.2f} "
        f"(R {R_DIGITS[name][k]}, torchlm measured {TORCHLM_DIGITS[name][k]})"
    )


@pytest.mark.parametrize("name", DATASETS)
def test_nist_full_rank_and_df(name):
    meta, fit = fit_nist(name)
    p = len(meta["coef"])
    assert fit.rank == p
    assert not fit.aliased.any()
    assert fit.nobs == meta["n"]
    assert fit.df_residual == meta["anova"]["residual"]["df"] == meta["n"] - p


def test_filip_default_tol_drops_highest_power_as_r():
    """With lm's default tol = 1e-7, R finds Filip's design rank 10 and aliases I(x^10)."""
    meta, df = spec("Filip"), data("Filip")
    fit = tl.lm(formula(meta, df), data=df)
    b = fit.coef()
    assert fit.rank == 10
    assert len(b) == 11
    assert int(b.isna().sum()) == 1
    assert [n.replace(" ", "") for n in b.index[b.isna()]] == ["I(x**10)"]
    assert fit.aliased.tolist() == [False] * 10 + [True]
    assert fit.df_residual == meta["n"] - 10
    assert np.isfinite(fit.std_errors().iloc[:10]).all() and np.isnan(fit.std_errors().iloc[10])
    assert "(1 not defined because of singularities)" in str(fit.summary())


def test_filip_tight_tol_keeps_all_terms():
    meta, fit = fit_nist("Filip")
    assert fit.rank == 11 and not fit.coef().isna().any()


def test_wampler1_exact_fit_has_zero_standard_errors():
    """Wampler1 is an exact 5th-degree polynomial: certified SEs and residual SD are 0."""
    meta, fit = fit_nist("Wampler1")
    assert all(s == 0 for s in meta["se"])
    assert np.all(np.abs(fit.std_errors().to_numpy()) < 1e-12)
    assert abs(fit.sigma) < 1e-12
