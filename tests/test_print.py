"""print(fit) reads like R's print.lm / print.glm: the text after the Call line equals R's, line for line.

References: tests/fixtures/print/r_print.json, and r_anova_print.json, written by make_print.R (R 4.2.2) with the
coefficients renamed to formulaic's names, so widths and wrapping are what torchlm must print.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.models.families import Gamma

CASES = json.loads((Path(__file__).parent / "fixtures" / "print" / "r_print.json").read_text())
FAMILIES = {"binomial": "binomial", "poisson": "poisson", "Gamma_log": Gamma(link="log"), "gaussian": "gaussian",
            "quasipoisson": "quasipoisson"}


def fit_case(case):
    df = tl.datasets.load(case["data"])
    if case["data"] == "mtcars":
        df = df.assign(wt2=2 * df["wt"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case["family"] is None:
            return tl.lm(case["formula"], data=df)
        return tl.glm(case["formula"], data=df, family=FAMILIES[case["family"]])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_print_matches_r(case):
    fit = fit_case(case)
    assert list(fit.coef().index) == case["names"]
    lines = str(fit).split("\n")
    assert lines[0] == ""
    if case["family"] is None:
        assert lines[1:3] == ["Call:", fit.call]
        rest = lines[3:]
    else:
        assert lines[1] == f"Call:  {fit.call}"
        rest = lines[2:]
    assert rest == case["text_after_call"]
    assert repr(fit) == str(fit)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_summary_print_matches_r(case):
    """print(fit.summary()) after the Call line is R's print(summary(fit)), empty models (y ~ 0) included."""
    fit = fit_case(case)
    lines = str(fit.summary()).split("\n")
    assert lines[:3] == ["", "Call:", fit.call]
    assert lines[3:] == case["summary_after_call"]


def test_print_wraps_at_80_columns():
    case = next(c for c in CASES if c["id"] == "lm_wrapped")
    assert max(len(line) for line in str(fit_case(case)).split("\n")) <= 80


ANOVA_CASES = json.loads((Path(__file__).parent / "fixtures" / "print" / "r_anova_print.json").read_text())


@pytest.mark.parametrize("case", ANOVA_CASES, ids=[c["id"] for c in ANOVA_CASES])
def test_anova_print_matches_r(case):
    """print(tl.anova(...)) is R's print(anova(...)) text, heading, zapped columns, blanks and stars included."""
    df = tl.datasets.load(case["data"])
    kw = {"weights": np.arange(len(df)) % 4} if case["weights"] else {}  # make_print.R: (seq_len(n) - 1) %% 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case["family"] is None:
            fits = [tl.lm(f, data=df, **kw) for f in case["models"]]
        else:
            fits = [tl.glm(f, data=df, family=FAMILIES[case["family"]], **kw) for f in case["models"]]
        if case["fn"] == "drop1":
            tab = tl.drop1(fits[0], test=case["test"])
        elif case["family"] is None:
            tab = tl.anova(*fits)
        else:
            tab = tl.anova(*fits, test=case["test"])
    assert str(tab).split("\n") == case["text"]
    assert list(tab.columns) == case["columns"]
    want = np.array([np.nan if v is None else v for v in case["values"]]).reshape(tab.shape)
    got = tab.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-9, atol=1e-300)
    assert repr(tab) == str(tab)
    assert isinstance(tab, pd.DataFrame)
    # derived frames are plain DataFrames, printed by pandas
    assert type(tab.iloc[:1]) is pd.DataFrame
