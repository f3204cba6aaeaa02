"""tl.aov, summary.aov, print.aov, Error() strata and TukeyHSD against R 4.2.2
(tests/fixtures/aov/make_aov.R: the numbers, R's printed text, and ptukey / qtukey on a grid)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.inference.tukey import ptukey, qtukey

DIR = FIXTURES / "aov"
R = json.loads((DIR / "aov.json").read_text())
DIST = json.loads((DIR / "tukey_distribution.json").read_text())
LEVELS = pd.read_csv(DIR / "levels.csv", dtype=str, keep_default_na=False)


def load(name: str) -> pd.DataFrame:
    """An R data set as make_aov.R wrote it, its factors Categoricals with R's levels in R's order."""
    lev = LEVELS[LEVELS["dataset"] == name]
    factors = list(dict.fromkeys(lev["column"]))
    df = read_exact_csv(DIR / f"{name}.csv", dtype={c: str for c in factors}, keep_default_na=False,
                        na_values=[""])
    for col in factors:
        df[col] = pd.Categorical(df[col], categories=list(lev[lev["column"] == col]["level"]))
    return df


DATA = {name: load(name) for name in {c["data"] for c in R.values()}}


def r_lines(path) -> list[str]:
    return path.read_text().split("\n")[:-1]  # writeLines ends every line with a newline


def fit_case(case: str):
    c = R[case]
    return tl.aov(c["formula"], DATA[c["data"]], **c["args"])


def same(mine, theirs, rtol=1e-9, atol=0.0):
    theirs = np.array([np.nan if v is None else v for v in theirs], dtype=float)
    np.testing.assert_allclose(np.asarray(mine, dtype=float), theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", list(R))
def test_summary_tables_are_r_summary_aov(case):
    data = DATA[R[case]["data"]]
    before = data.copy()
    s = fit_case(case).summary()
    assert list(s) == R[case]["strata_order"]
    for name, ref in R[case]["strata"].items():
        tab = s[name]
        assert list(tab.index) == ref["rows"]
        for col in ("Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)"):
            same(tab[col] if col in tab else np.full(len(tab), np.nan), ref[col])
    assert data.equals(before)


NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]\d+)?")


def _numbers(tree) -> list[float]:
    if isinstance(tree, dict):
        return [v for x in tree.values() for v in _numbers(x)]
    if isinstance(tree, list):
        return [v for x in tree for v in _numbers(x)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def same_text(mine: list[str], theirs: list[str], case: str) -> None:
    """Equal lines, but for a number R rounds the other way at an exact decimal tie.

    At a tie (N's sum of squares in oats' Within stratum is 20020.5 exactly) the printed digit
    depends on the last bit of the computed value, R's rounding (20020.499999999993) or torchlm's
    (20020.500000000007): such a cell may differ by one unit in its last digit, where the value R
    stored is that tie to 1e-12.
    """
    assert len(mine) == len(theirs), (mine, theirs)
    values = _numbers(R[case])
    for a, b in zip(mine, theirs):
        if a == b:
            continue
        assert NUMBER.split(a) == NUMBER.split(b), (a, b)
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            if x != y:
                unit = 10.0 ** -(len(y.split(".")[1]) if "." in y else 0)
                assert len(x) == len(y) and abs(abs(float(x) - float(y)) - unit) < 1e-9 * unit, (a, b)
                tie = (float(x) + float(y)) / 2
                assert any(abs(v - tie) <= 1e-12 * abs(v) for v in values), (a, b)


@pytest.mark.parametrize("case", list(R))
def test_summary_text_is_r_print_summary_aov(case):
    same_text(str(fit_case(case).summary()).split("\n"), r_lines(DIR / f"{case}_summary.txt"), case)


def _after_call(lines: list[str]) -> list[str]:
    """The lines after the call (R's call names the data and may wrap over lines; torchlm's names no data)."""
    start = lines.index("Call:")
    return lines[start + 1 + next(k for k, s in enumerate(lines[start + 1:]) if s == ""):]


@pytest.mark.parametrize("case", list(R))
def test_print_is_r_print_aov(case):
    fit = fit_case(case)
    mine = str(fit).split("\n")
    same_text(_after_call(mine), _after_call(r_lines(DIR / f"{case}_print.txt")), case)
    call = mine[mine.index("Call:") + 1].strip()
    assert call.startswith(f"aov(formula = {R[case]['formula']}")


TUKEY = [(case, key) for case in R for key in R[case]["tukey"]]


@pytest.mark.parametrize("case, key", TUKEY)
def test_tukey_hsd_is_r(case, key):
    ref = R[case]["tukey"][key]
    hsd = tl.TukeyHSD(fit_case(case), **ref["args"])
    assert list(hsd) == ref["order"]
    for term, t in ref["terms"].items():
        tab = hsd[term]
        assert list(tab.index) == t["rows"]
        assert list(tab.columns) == ["diff", "lwr", "upr", "p adj"]
        for col in ("diff", "lwr", "upr"):
            same(tab[col], t[col], atol=1e-12 * np.nanmax(np.abs(t["diff"])))
        # R's p adj is 1 - ptukey(...): its absolute accuracy is ~1e-14 (see test_ptukey_is_r)
        same(tab["p adj"], t["p adj"], atol=1e-13)


@pytest.mark.parametrize("case, key", TUKEY)
def test_tukey_hsd_text_is_r_print(case, key):
    fit = fit_case(case)
    mine = str(fit.TukeyHSD(**R[case]["tukey"][key]["args"])).split("\n")
    theirs = r_lines(DIR / f"{case}_tukey_{key}.txt")
    fit_line = next(k for k, s in enumerate(theirs) if s.startswith("Fit: "))
    assert mine[fit_line] == f"Fit: {fit.call}"
    same_text(mine[:fit_line] + mine[fit_line + 1:], theirs[:fit_line] + theirs[fit_line + 1:], case)


def test_ptukey_is_r():
    g = {k: np.array(v, dtype=float) for k, v in DIST["ptukey"].items()}
    for nm, df in set(zip(g["nmeans"], g["df"])):
        at = (g["nmeans"] == nm) & (g["df"] == df)
        # the same quadrature as R's: equal to R's to rounding (lgamma's last bit moves the lower tail by 3e-14)
        same(ptukey(g["q"][at], nm, df), g["lower"][at], rtol=1e-12)
        same(ptukey(g["q"][at], nm, df, lower_tail=False), g["upper"][at], rtol=1e-9, atol=1e-13)


def test_qtukey_is_r():
    h = DIST["qtukey"]
    mine = [qtukey(p, nm, df) for p, nm, df in zip(h["p"], h["nmeans"], h["df"])]
    same(mine, h["q"], rtol=1e-11)


def test_tukey_distribution_edges():
    assert list(ptukey([-1.0, 0.0, np.inf], 3, 10)) == [0.0, 0.0, 1.0]
    assert list(ptukey([0.0, np.inf], 3, 10, lower_tail=False)) == [1.0, 0.0]
    assert np.isnan(ptukey(2.0, 3, 1.5)).all() and np.isnan(ptukey(2.0, 1, 10)).all()
    assert qtukey(0.0, 3, 10) == 0.0 and qtukey(1.0, 3, 10) == np.inf and np.isnan(qtukey(0.5, 3, 1))
    with pytest.raises(tl.OptionError, match="probability"):
        qtukey(1.5, 3, 10)


def test_an_aov_is_an_lm():
    data = DATA["warpbreaks"]
    fit = tl.aov("breaks ~ wool + tension", data)
    ref = tl.lm("breaks ~ wool + tension", data)
    assert isinstance(fit, tl.LinearModelResult)
    np.testing.assert_array_equal(fit.coef().to_numpy(), ref.coef().to_numpy())
    np.testing.assert_array_equal(fit.vcov().to_numpy(), ref.vcov().to_numpy())
    assert str(fit.summary_lm()).split("\n")[4:] == str(ref.summary()).split("\n")[4:]
    assert tl.anova(fit).equals(tl.anova(ref))
    np.testing.assert_array_equal(fit.predict(data.head(3)).to_numpy(), ref.predict(data.head(3)).to_numpy())
    smaller = fit.update(". ~ . - wool")
    assert isinstance(smaller, type(fit)) and list(smaller.summary()[0].index) == ["tension", "Residuals"]
    assert fit.call == "aov(formula = breaks ~ wool + tension)"


def test_tukey_drops_non_factor_terms_with_r_warning():
    fit = fit_case("mtcars_cov")
    with pytest.warns(UserWarning, match="'which' specified some non-factors which will be dropped"):
        hsd = fit.TukeyHSD()
    pd.testing.assert_frame_equal(hsd["factor(cyl)"], fit.TukeyHSD(which="factor(cyl)")["factor(cyl)"])


def test_tukey_bad_input():
    cars = DATA["mtcars"]
    with pytest.raises(tl.ModelInputError, match="no factors in the fitted model"):
        tl.TukeyHSD(tl.aov("mpg ~ wt + hp", cars))
    fit = fit_case("mtcars_cov")
    with pytest.raises(tl.OptionError, match="'which' specified no factors"):
        fit.TukeyHSD(which="wt")
    with pytest.raises(tl.OptionError, match=r"not terms of the model; its factor terms are \['factor\(cyl\)'\]"):
        fit.TukeyHSD(which="cyl")
    with pytest.raises(tl.OptionError, match="must name terms"):
        fit.TukeyHSD(which=[1])
    for bad in (0, 1, 1.5, -0.1, True, "0.95", np.nan):
        with pytest.raises(tl.OptionError, match=r"conf_level must be a number in \(0, 1\)"):
            fit.TukeyHSD(which="factor(cyl)", conf_level=bad)
    with pytest.raises(tl.ModelInputError, match="takes an aov fit"):
        tl.TukeyHSD(tl.lm("mpg ~ factor(cyl)", cars))
    with pytest.raises(tl.ModelInputError, match="no method for Error"):
        tl.TukeyHSD(fit_case("npk_error"))
    weighted = tl.aov("mpg ~ factor(cyl)", cars.assign(w=np.r_[0.0, np.ones(31)]), weights="w")
    with pytest.raises(tl.ModelInputError, match="zero weight"):
        weighted.TukeyHSD()


def test_error_term_bad_input():
    npk = DATA["npk"]
    with pytest.raises(tl.FormulaError, match="2 Error terms: only 1 is allowed"):
        tl.aov("yield ~ N + Error(block) + Error(N)", npk)
    with pytest.raises(tl.FormulaError, match="must be a term of its own"):
        tl.aov("yield ~ N * Error(block)", npk)
    with pytest.raises(tl.FormulaError, match="needs the error model's terms"):
        tl.aov("yield ~ N + Error()", npk)
    with pytest.raises(tl.ModelInputError, match="weights are not supported in a multistratum"):
        tl.aov("yield ~ N + Error(block)", npk, weights=np.ones(len(npk)))
    gappy = npk.assign(yield_=npk["yield"]).rename(columns={"yield_": "y"})
    gappy["block"] = gappy["block"].astype(object)
    gappy.loc[3, "block"] = None
    with pytest.raises(tl.DataError, match="different rows"):
        tl.aov("y ~ N + Error(block)", gappy)


def test_multistratum_fit_parts():
    fit = fit_case("npk_error")
    assert list(fit.strata) == ["(Intercept)", "block", "Within"]
    assert fit.strata["Within"].df_residual == 12 and fit.strata["block"].df_residual == 4
    np.testing.assert_allclose(fit.coef()["(Intercept)"].iloc[0], DATA["npk"]["yield"].mean(), rtol=1e-12)
    only = tl.aov("yield ~ Error(block)", DATA["npk"])
    assert list(only.summary()["block"].index) == ["Residuals"]
    assert "Grand Mean: 54.875" in str(only)


def test_summary_with_the_intercept_row():
    fit = fit_case("warp_add")
    same_text(str(fit.summary(intercept=True)).split("\n"), r_lines(DIR / "warp_add_summary_intercept.txt"),
              "warp_add")
    assert list(fit.summary(intercept=True)[0].index) == ["(Intercept)", "wool", "tension", "Residuals"]


def test_contrasts_leave_the_sums_of_squares_as_they_are():
    data = DATA["warpbreaks"]
    default = fit_case("warp_add").summary()[0]
    try:
        fit = tl.aov("breaks ~ wool + tension", data, contrasts={"tension": "contr.sum"})
    except tl.OptionError as e:  # a tl.lm without contrasts=: the error says what to do instead
        assert "contrasts" in str(e)
    else:
        pd.testing.assert_frame_equal(fit.summary()[0], default, rtol=1e-9)


def test_na_action_fail_and_missing_rows():
    air = DATA["airquality"]
    with pytest.raises(tl.DataError, match="missing values"):
        tl.aov("Ozone ~ factor(Month)", air, na_action="fail")
    fit = fit_case("airq")
    assert fit.nobs == 116 and fit.n_dropped_na == 37
