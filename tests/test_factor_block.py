"""tl.lm with a many-level factor kept as codes (frame/factor_block.py, solvers/factor_qr.py) gives the dense fit's
every result: the dense fit is R's lm (tests elsewhere compare it with R), and R's own numbers are checked here too."""

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
from torchlm.errors import DataError, OptionError
from torchlm.frame.factor_block import FactorDesign
from torchlm.inference.leverages import factor_leverages
from torchlm.solvers.factor_passes import factor_fit

HERE = pathlib.Path(__file__).parent / "fixtures" / "fixest"
R = json.loads((HERE / "fixest.json").read_text())
PANEL = pd.read_csv(HERE / "panel.csv")
DS = PANEL[PANEL.firm <= 25].reset_index(drop=True)


def fits(formula, data, **kw):
    with tl.options(factor_levels=None):
        dense = tl.lm(formula, data, **kw)
    with tl.options(factor_levels=10):
        block = tl.lm(formula, data, **kw)
    assert isinstance(block.design, FactorDesign) and not isinstance(dense.design, FactorDesign)
    # the structured QR and leverages apply (they do not fall back to reading the dummies by rows)
    assert factor_fit(block.design, 1e-7, torch.device("cpu"), torch.float64) is not None
    if block.design.weights is None or (block.design.weights > 0).all():
        assert factor_leverages(block.design, rank=block.rank) is not None
    return dense, block


def same(a, b, rtol=1e-9, atol=1e-12):
    a, b = (x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x) for x in (a, b))
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol)


CASES = [
    ("y ~ x1 + C(firm) + x2", {"weights": "w"}),
    ("y ~ C(firm) + x1", {}),
    ("y ~ xc + factor(firm) + x1", {}),          # R aliases the last dummy
    ("y ~ x1 + factor(firm) + xc", {}),          # R aliases xc
    ("y ~ 0 + C(firm) + x1", {}),                # no intercept: every level's dummy
    ("y ~ x1 + C(firm)", {"contrasts": {"firm": "contr.sum"}}),
    ("log(cnt + 1) ~ x1 + C(firm) + C(g)", {"subset": "x2 > -1"}),
    # several factors, and slopes per level (R's codings: x1's main effect makes the slopes' contrasts)
    ("y ~ x1 + C(firm) + C(year) + x2", {"weights": "w"}),
    ("y ~ x1 * C(firm)", {}),
    ("y ~ C(year) + C(firm) + C(firm):x2", {"weights": "w"}),
    ("y ~ x1 + x1:C(firm)", {}),
    ("y ~ 0 + C(firm) + C(firm):x1 + xc", {}),      # xc is constant within firms: NA
]


@pytest.mark.parametrize("formula, kw", CASES)
def test_every_result_equals_the_dense_fit(formula, kw):
    dense, block = fits(formula, DS, **kw)
    assert block.names == dense.names and list(block.aliased) == list(dense.aliased)
    same(block.coef(), dense.coef())
    same(block.vcov(), dense.vcov())
    assert str(block.summary()) == str(dense.summary())
    assert str(tl.anova(block)) == str(tl.anova(dense))
    for t in ("HC0", "HC3"):
        same(block.vcov(t), dense.vcov(t))
    same(block.vcov(cluster="year"), dense.vcov(cluster="year"))
    same(block.hatvalues(), dense.hatvalues())
    same(block.cooks_distance(), dense.cooks_distance())
    same(block.rstudent(), dense.rstudent())
    same(block.dfbeta(), dense.dfbeta(), rtol=1e-8, atol=1e-12)
    same(block.dfbetas(), dense.dfbetas(), rtol=1e-8, atol=1e-12)
    new = DS.sample(20, random_state=1)
    same(block.predict(new, interval="prediction"), dense.predict(new, interval="prediction"))
    same(block.confint(), dense.confint())


def test_equals_r_lm_with_factor():
    _, block = fits("y ~ xc + factor(firm) + x1", DS)
    ref = R["lm_factor_alias_before"]
    want = np.array([np.nan if v is None else v for v in ref["coef"]])
    same(block.coef(), want)
    same(block.std_errors(), np.array([np.nan if v is None else v for v in ref["se"]]))
    same(block.deviance, ref["rss"])


@pytest.mark.parametrize("case, formula, kw, blocks", [
    ("lm_two_factors_slopes", "y ~ x1 + factor(firm) + factor(year) + factor(firm):x2", {"weights": "w"}, 3),
    ("lm_factor_times_x", "y ~ x1 * factor(firm)", {}, 2),
])
def test_two_factors_and_slopes_equal_r(case, formula, kw, blocks):
    """R's own lm: every coefficient, SE and the residual sum of squares."""
    _, block = fits(formula, DS, **kw)
    assert len(block.design.blocks) == blocks
    ref = R[case]
    want = np.array([np.nan if v is None else v for v in ref["coef"]])
    same(block.coef(), want)
    same(block.std_errors(), np.array([np.nan if v is None else v for v in ref["se"]]))
    same(block.deviance, ref["rss"])


def test_drop1_and_names_r():
    dense, block = fits("y ~ x1 + C(firm) + x2", DS)
    assert str(tl.drop1(block, test="F")) == str(tl.drop1(dense, test="F"))
    dense, block = fits("y ~ x1 + factor(firm)", DS, names="R")
    assert block.names == dense.names and "factor(firm)2" in block.names


def test_new_level_and_missing_factor_in_newdata():
    _, block = fits("y ~ x1 + C(firm)", DS)
    with pytest.raises(DataError, match="new levels"):
        block.predict(PANEL.tail(3))
    holes = DS.head(5).assign(firm=[1, None, 2, 3, 4])
    assert block.predict(holes).isna().tolist() == [False, True, False, False, False]


def test_levels_below_the_threshold_stay_dense_and_the_option_is_checked():
    with tl.options(factor_levels=1000):
        assert not isinstance(tl.lm("y ~ x1 + C(firm)", DS).design, FactorDesign)
    with tl.options(factor_levels=10):
        # in an interaction with another factor or in a transformation: R's coding of the whole formula, dense
        assert not isinstance(tl.lm("y ~ x1 + C(firm) + C(firm):g", DS).design, FactorDesign)
        assert not isinstance(tl.lm("y ~ x1 + C(firm) + I(firm > 3)", DS).design, FactorDesign)
        # a slope variable also in a transformation that cannot be evaluated on the few rows: the dense fit
        with tl.options(factor_levels=None):
            dense = tl.lm("y ~ poly(x1, 2) + C(firm) + C(firm):x1", DS)
        same(tl.lm("y ~ poly(x1, 2) + C(firm) + C(firm):x1", DS).coef(), dense.coef())
        # with a numeric column: a slope per level, kept as codes too
        assert [b.slope for b in tl.lm("y ~ x1 * C(firm)", DS).design.blocks] == [None, "x1"]
    with pytest.raises(OptionError, match="factor_levels"):
        tl.options(factor_levels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tl.options()["factor_levels"] == 100


def test_leverages_without_the_dummies_equal_the_dense_ones():
    from torchlm.inference.leverages import factor_leverages

    dense, block = fits("y ~ xc + C(firm) + x1 + x2", DS, weights="w")
    same(factor_leverages(block.design), dense.hatvalues(), rtol=1e-10)
    same(block.hatvalues(), dense.hatvalues(), rtol=1e-10)
    same(block.vcov("HC3"), dense.vcov("HC3"), rtol=1e-9)


def test_zero_weights():
    d = DS.assign(w=np.where(DS.index < 5, 0.0, DS.w))
    dense, block = fits("y ~ x1 + C(firm)", d, weights="w")
    same(block.coef(), dense.coef())
    same(block.hatvalues(), dense.hatvalues(), rtol=1e-10)
    same(block.vcov("HC2"), dense.vcov("HC2"))
    assert str(block.summary()) == str(dense.summary())


def glm_fits(formula, data, **kw):
    with tl.options(factor_levels=None):
        dense = tl.glm(formula, data, **kw)
    with tl.options(factor_levels=10):
        block = tl.glm(formula, data, **kw)
    assert isinstance(block.design, FactorDesign) and not isinstance(dense.design, FactorDesign)
    return dense, block


@pytest.mark.parametrize("formula, kw", [
    ("cnt ~ x1 + C(firm) + x2", {"family": "poisson", "offset": "log(expo)"}),
    ("I(cnt > 2) ~ C(firm) + x1", {"family": "binomial", "weights": "w"}),
    ("y ~ x1 + factor(firm)", {"family": tl.families.Gamma(link="log")}),
    ("cnt ~ x1 * C(firm) + C(year)", {"family": "poisson", "offset": "log(expo)"}),
    ("I(cnt > 2) ~ C(year) + C(firm) + x2", {"family": "binomial"}),
])
def test_glm_results_equal_the_dense_fit(formula, kw):
    data = DS.assign(y=np.exp(DS.y / 4))
    dense, block = glm_fits(formula, data, **kw)
    assert block.iterations == dense.iterations
    same(block.coef(), dense.coef(), rtol=1e-8, atol=1e-10)
    same(block.vcov(), dense.vcov(), rtol=1e-7, atol=1e-12)
    assert str(block.summary()) == str(dense.summary())
    assert str(tl.anova(block, test="Chisq")) == str(tl.anova(dense, test="Chisq"))
    same(block.deviance, dense.deviance, rtol=1e-11)
    same(block.aic(), dense.aic(), rtol=1e-11)
    same(block.predict(data.head(10), type="response"), dense.predict(data.head(10), type="response"), rtol=1e-9)
    same(block.hatvalues(), dense.hatvalues(), rtol=1e-7, atol=1e-12)
    for t in ("HC0", "HC3"):
        same(block.vcov(t), dense.vcov(t), rtol=1e-7, atol=1e-12)
    same(block.vcov(cluster="year"), dense.vcov(cluster="year"), rtol=1e-7, atol=1e-12)
    same(block.cooks_distance(), dense.cooks_distance(), rtol=1e-6, atol=1e-12)


def test_two_factors_both_kept_as_codes():
    d = DS.assign(g2=(DS.index % 12).astype(str))
    dense, block = fits("y ~ x1 + C(g2) + C(firm)", d)
    assert [b.variable for b in block.design.blocks] == ["g2", "firm"]
    same(block.coef(), dense.coef())
    assert str(block.summary()) == str(dense.summary())


@pytest.mark.parametrize("weights", [None, "w"])
def test_sandwich_meats_without_the_dummies(weights, monkeypatch):
    import torchlm.inference.factor_sandwich as fs

    d = DS.assign(w=np.where(DS.index < 4, 0.0, DS.w), g2=DS.index % 7)
    dense, block = fits("y ~ x1 + C(firm) + x2", d, weights=weights)
    used = []
    real = fs.factor_meat

    def spy(*a):
        M = real(*a)
        used.append(M is not None)
        return M

    monkeypatch.setattr("torchlm.inference.sandwich.factor_meat", spy)
    for t in ("HC0", "HC1", "HC2", "HC3", "HC4", "HC4m", "HC5"):
        same(block.vcov(t), dense.vcov(t), rtol=1e-9)
    same(block.vcov(cluster="year"), dense.vcov(cluster="year"), rtol=1e-9)
    same(block.vcov(cluster=["year", "g2"]), dense.vcov(cluster=["year", "g2"]), rtol=1e-9)
    same(block.vcov("HC0", cluster="firm"), dense.vcov("HC0", cluster="firm"), rtol=1e-9)
    assert used == [True] * 10  # every meat of the block fit came from the group sums


@pytest.mark.parametrize("family", [None, "poisson"])
def test_influence_from_the_codes_without_reading_the_dummies(family, monkeypatch):
    """dfbeta, dfbetas, hat values and Cook's distances of a fit with two coded factors and slopes per level."""
    formula, kw = "cnt ~ x1 * C(firm) + C(year)", {"weights": "w"}
    if family is None:
        dense, block = fits(formula, DS, **kw)
    else:
        dense, block = glm_fits(formula, DS, family=family, **kw)
    want = {m: getattr(dense, m)() for m in ("dfbeta", "dfbetas", "hatvalues", "cooks_distance")}
    monkeypatch.setattr(FactorDesign, "row_block", lambda *a, **k: pytest.fail("read the dummies by rows"))
    for m, v in want.items():
        same(getattr(block, m)(), v, rtol=1e-7, atol=1e-12)


def test_glm_refits_on_some_columns_from_the_codes(monkeypatch):
    """Profile intervals and drop1 refit a glm on some of its columns: from the codes too (no dense QR)."""
    import torchlm.solvers.irls as irls

    formula, kw = "cnt ~ x1 + C(firm) + x2", {"family": "poisson", "offset": "log(expo)"}
    dense, block = glm_fits(formula, DS, **kw)
    want_ci = dense.confint(parm=["x1", "x2"], method="profile")
    want_drop = str(tl.drop1(dense, test="Chisq"))
    monkeypatch.setattr(irls, "qr_solve", lambda *a, **k: pytest.fail("the dense QR was used"))
    same(block.confint(parm=["x1", "x2"], method="profile"), want_ci, rtol=1e-7)
    assert str(tl.drop1(block, test="Chisq")) == want_drop
