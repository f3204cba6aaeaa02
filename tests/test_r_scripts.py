"""R's own help-page analyses ported statement by statement: the same formulas and verbs give R's printed text.

tests/fixtures/r_scripts/make_r_scripts.R runs ?lm, ?glm, ?step, ?predict.lm, ?esoph, ?TukeyHSD and
MASS's ?glm.nb in R 4.2.2 and keeps what each statement prints; each test below is the port, written as
an R user would write it (names="R" where R's coefficient names are printed). Only the Call lines are
left out: torchlm cannot know the name of the data variable.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl

HERE = FIXTURES / "r_scripts"
R = json.loads((HERE / "r_scripts.json").read_text())


def without_call(lines: list[str]) -> list[str]:
    """The text with R's "Call:" block (the heading and the call, up to the blank line) and "Fit:" line left out."""
    out, skipping = [], False
    for line in lines:
        if line.startswith("Fit: "):  # TukeyHSD's call line
            continue
        if line == "Call:":
            skipping = True
            continue
        if skipping:
            skipping = line != ""
            continue
        out.append(line)
    return out


NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]\d+)?")


def _agree(g: str, w: str, values: np.ndarray) -> bool:
    """Two printed lines that differ only in numbers R and torchlm round alike up to float64's last bits.

    Two cases are accepted, each decided by the exact value: a decimal tie (the true value is the midpoint
    of the two printed ones, as RSS 8.72925 printed to 5 digits) and rounding noise of an exact zero (both
    below 1e-12, as Dobson's treatment effects): either prints differently on the last bit of a double.
    """
    gt, wt = NUMBER.split(g), NUMBER.split(w)
    gn, wn = NUMBER.findall(g), NUMBER.findall(w)
    if gt != wt or len(gn) != len(wn):
        return False
    for a, b in zip(gn, wn):
        if a == b:
            continue
        x, y = float(a), float(b)
        if max(abs(x), abs(y)) < 1e-12:
            continue
        mid = (x + y) / 2
        if not np.any(np.abs(values - mid) <= 1e-12 * abs(mid)):
            return False
    return True


def same_text(value, key: str, values=()) -> None:
    """The printed text is R's, Call lines aside; ``values``: the exact numbers behind it (for ties)."""
    got = without_call(str(value).split("\n"))
    want = without_call(R[key])
    while got and got[-1] == "":
        got.pop()
    while want and want[-1] == "":
        want.pop()
    assert len(got) == len(want), (got, want)
    vals = np.asarray(values, dtype=float).ravel()
    bad = [(g, w) for g, w in zip(got, want) if g != w and not _agree(g, w, vals)]
    assert not bad, "\n".join(f"{g!r}\n{w!r}" for g, w in bad)


@pytest.fixture(scope="module")
def plants():
    return pd.read_csv(HERE / "plants.csv")


@pytest.fixture(scope="module")
def dobson():
    d = pd.read_csv(HERE / "dobson.csv")
    return d.assign(outcome=pd.Categorical(d.outcome.astype(str)), treatment=pd.Categorical(d.treatment.astype(str)))


def test_lm_help_page(plants):
    lm_D9 = tl.lm("weight ~ group", plants, names="R")
    lm_D90 = tl.lm("weight ~ group - 1", plants, names="R")
    tab = tl.anova(lm_D9)
    same_text(tab, "lm_anova", tab.to_numpy(dtype=float))
    same_text(lm_D90.summary(), "lm_summary_no_intercept")


@pytest.mark.parametrize("test, key", [(None, "glm_anova"), ("Cp", "glm_anova_cp"), ("Chisq", "glm_anova_chisq"),
                                       ("Rao", "glm_anova_rao")])
def test_glm_help_page(dobson, test, key):
    glm_D93 = tl.glm("counts ~ outcome + treatment", dobson, family="poisson", names="R")
    same_text(tl.anova(glm_D93) if test is None else tl.anova(glm_D93, test=test), key)
    same_text(glm_D93.summary(), "glm_summary", glm_D93.coef())


def test_step_help_page(capsys):
    lm1 = tl.lm("Fertility ~ .", tl.datasets.load("swiss"), names="R")
    same_text(lm1.summary(), "swiss_summary")
    capsys.readouterr()
    slm1 = tl.step(lm1)
    assert capsys.readouterr().out.split("\n")[:-1] == R["swiss_step_trace"]
    same_text(slm1.summary(), "swiss_step_summary")
    same_text(slm1.anova, "swiss_step_anova")


def test_predict_help_page():
    xy = pd.read_csv(HERE / "xy.csv")
    new = pd.DataFrame({"x": np.arange(-3, 3.25, 0.5)})
    fit = tl.lm("y ~ x", xy)
    for interval in ("confidence", "prediction"):
        got = fit.predict(new, interval=interval)
        rows = [line.split() for line in R[f"predict_{interval}"][1:]]
        want = np.array([[float(v) for v in r[1:]] for r in rows])
        # R prints 7 significant digits
        np.testing.assert_allclose(got.to_numpy(), want, rtol=5e-7, atol=5e-7)


def test_esoph_help_page():
    esoph = tl.datasets.load("esoph")
    model1 = tl.glm("cbind(ncases, ncontrols) ~ agegp + tobgp * alcgp", esoph, family="binomial", names="R")
    same_text(tl.anova(model1), "esoph_anova")
    model2 = tl.glm("cbind(ncases, ncontrols) ~ agegp + unclass(tobgp) + unclass(alcgp)", esoph,
                    family="binomial", names="R")
    same_text(model2.summary(), "esoph_summary_unclass")


def test_tukey_help_page():
    fm1 = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
    same_text(fm1.summary(), "aov_summary")
    same_text(tl.TukeyHSD(fm1, "tension", ordered=True), "tukey")


def test_glm_nb_help_page():
    quine_nb1 = tl.glm_nb("Days ~ Sex/(Age + Eth*Lrn)", tl.datasets.load("quine"), names="R")
    same_text(quine_nb1.summary(), "nb_summary")
    same_text(tl.drop1(quine_nb1, test="Chisq"), "nb_drop1")
