"""tl.Anova: car::Anova's type II and III tables (R 4.2.2, car 3.1-1; R's numbers and print() text from
tests/fixtures/car_anova/make_car_anova.R on mtcars and warpbreaks)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.inference.car_anova import type_anova

DIR = FIXTURES / "car_anova"
R = json.loads((DIR / "car_anova.json").read_text())
DATA = {name: tl.datasets.load(name) for name in ("mtcars", "warpbreaks")}
TABLES = [k for k, c in R.items() if "error" not in c]
REFUSED = [k for k, c in R.items() if "error" in c]


def _fit(spec: dict):
    data = DATA[spec["data"]]
    if spec["model"] == "lm":
        return tl.lm(spec["formula"], data, weights=spec.get("weights"))
    return tl.glm(spec["formula"], data, family=spec["family"])


def _anova(case: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tab = tl.Anova(_fit(R[case]["fit"]), **R[case]["call"])
    return tab, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", TABLES)
def test_table_is_car_s(case):
    before = {k: v.copy() for k, v in DATA.items()}
    tab, caught = _anova(case)
    ref = R[case]
    assert list(tab.index) == ref["rows"]
    assert list(tab.columns) == ref["columns"]
    for col in ref["columns"]:
        expected = np.array([np.nan if v is None else v for v in ref["table"][col]], dtype=float)
        np.testing.assert_allclose(tab[col].to_numpy(dtype=float), expected, rtol=1e-9, atol=0, err_msg=col)
    # R's warnings (intercept-only models, ignored covariances, a fixed dispersion) come as torchlm warnings
    for message in ref["warnings"]:
        assert any(message in c for c in caught), (message, caught)
    if not ref["warnings"]:
        assert caught == []
    assert all(DATA[k].equals(before[k]) for k in DATA)


@pytest.mark.parametrize("case", TABLES)
def test_printed_text_is_car_s(case):
    tab, _ = _anova(case)
    expected = (DIR / f"{case}.txt").read_text().rstrip("\n")
    assert str(tab) == expected
    assert repr(tab) == expected


def test_table_is_an_anova_table_and_type_anova_is_the_same():
    fit = _fit(R["lm_mtcars_II"]["fit"])
    tab = tl.Anova(fit)
    assert isinstance(tab, tl.AnovaTable)
    assert tab.attrs["heading"] == "Anova Table (Type II tests)\n\nResponse: mpg"
    assert tab["Df"].dtype.kind == "i"
    pd.testing.assert_frame_equal(type_anova(fit, "II", None), tab)
    pd.testing.assert_frame_equal(type_anova(fit, 3, "F"), tl.Anova(fit, type="III"))


def test_type_ii_of_a_linear_model_is_the_model_comparison():
    # type II SS of a main effect = RSS(without it and its interactions) - RSS(without its interactions)
    mt = DATA["mtcars"]
    tab = tl.Anova(tl.lm("mpg ~ wt * factor(am) + factor(cyl)", mt))
    small = tl.lm("mpg ~ factor(am) + factor(cyl)", mt).deviance
    larger = tl.lm("mpg ~ wt + factor(am) + factor(cyl)", mt).deviance
    assert tab.loc["wt", "Sum Sq"] == pytest.approx(small - larger, rel=1e-10)


REFUSED_AS = {
    "lm_aliased_III": r"there are aliased coefficients in the model \(factor\(cyl\).*:factor\(gear\).*\): type III",
    "lm_aliased_hc3": "non-standard coefficient covariance matrix may not be used for model with aliased",
    "glm_aliased_III_LR": "there are aliased coefficients in the model .*type III",
    # car's Wald test of an aliased glm fails with "non-conformable arguments": here the cause is named
    "glm_aliased_II_Wald": "there are aliased coefficients in the model .*Wald tests need every coefficient",
}


def test_every_refusal_of_car_is_tested():
    assert sorted(REFUSED_AS) == sorted(REFUSED)


@pytest.mark.parametrize("case", REFUSED)
def test_what_car_refuses_is_a_clear_error(case):
    fit = _fit(R[case]["fit"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any covariance is computed (no HC3 warning)
        with pytest.raises(tl.ModelInputError, match=REFUSED_AS[case]):
            tl.Anova(fit, **R[case]["call"])


@pytest.fixture(scope="module")
def fits():
    mt = DATA["mtcars"]
    return {"lm": tl.lm("mpg ~ wt * factor(am)", mt), "glm": tl.glm("am ~ wt", mt, family="binomial")}


@pytest.mark.parametrize("kind, kwargs, fragment", [
    ("lm", {"type": "I"}, "type must be 'II'"),
    ("lm", {"type": 1}, "tl.anova"),
    ("lm", {"type": True}, "type must be"),
    ("lm", {"type": "iv"}, "'iv'"),
    ("lm", {"test_statistic": "LR"}, "test_statistic for a linear model is 'F'"),
    ("lm", {"test_statistic": "Wald"}, "tl.glm"),
    ("glm", {"test_statistic": "Chisq"}, "'LR' (the default), 'Wald' or 'F'"),
    ("glm", {"test_statistic": "Rao"}, "'Rao'"),
    ("lm", {"white_adjust": "hc9"}, "white_adjust must be"),
    ("lm", {"white_adjust": True, "vcov": "HC3"}, "not both"),
    ("glm", {"white_adjust": True}, "vcov='HC3'"),
    ("glm", {"test_statistic": "F", "error_estimate": "residuals"}, "error_estimate must be"),
    ("lm", {"vcov": "HC9"}, "HC9"),
])
def test_bad_options_are_clear_errors(fits, kind, kwargs, fragment):
    with pytest.raises(tl.OptionError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        tl.Anova(fits[kind], **kwargs)


def test_not_a_fit_and_degenerate_fits_are_clear_errors():
    with pytest.raises(tl.OptionError, match="not DataFrame"):
        tl.Anova(DATA["mtcars"])
    exact = pd.DataFrame({"y": [1.0, 2.0, 4.0], "x": [0.0, 1.0, 3.0]})
    with pytest.raises(tl.ModelInputError, match="residual sum of squares is 0"):
        tl.Anova(tl.lm("y ~ x", exact))
    saturated = pd.DataFrame({"y": [1.0, 2.0, 5.0], "x": [0.0, 1.0, 3.0]})
    with pytest.raises(tl.ModelInputError, match="residual df = 0"):
        tl.Anova(tl.lm("y ~ x + I(x**2)", saturated))


def test_anova_type_dispatches_to_car_tables():
    """tl.anova(fit, type=) is car's Anova; test= maps onto car's test.statistic; type="I" is R's sequential anova."""
    mt = tl.datasets.load("mtcars")
    f = tl.lm("mpg ~ wt * factor(am) + factor(cyl)", data=mt)
    g = tl.glm("am ~ wt + factor(cyl)", data=mt, family="binomial")
    for fit, kw, stat in ((f, {}, None), (g, {}, None), (g, {"test": "Chisq"}, "LR"), (g, {"test": "Wald"}, "Wald")):
        for t in ("II", 3):
            got = tl.anova(fit, type=t, **kw)
            want = type_anova(fit, t, stat)
            assert str(got) == str(want)
            pd.testing.assert_frame_equal(got, want)
    assert str(tl.anova(f, type="I")) == str(tl.anova(f))
    with pytest.raises(tl.OptionError, match="one fit"):
        tl.anova(f, f, type="II")
    with pytest.raises(tl.OptionError):
        tl.anova(f, type="IV")
