"""tl.lm with a factor beyond R's dense factor (frame/large_factor.py, solvers/factor_within.py,
inference/factor_blocks.py, results/large_factor.py) gives the dense fit's numbers, which are R's (tests
elsewhere compare them with R; R's own numbers are checked here too), without any L x L or n x L array."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.errors import DataError, ModelInputError, OptionError
from torchlm.frame.large_factor import LargeFactorDesign
from torchlm.results import large_factor
from torchlm.results.large_factor import BlockVcov, LargeFactorResult

HERE = pathlib.Path(__file__).parent / "fixtures" / "fixest"
R = json.loads((HERE / "fixest.json").read_text())
PANEL = pd.read_csv(HERE / "panel.csv")
DS = PANEL[PANEL.firm <= 25].reset_index(drop=True)


def fits(formula, data, **kw):
    """The dense fit (R's lm) and the within fit of the same model."""
    with tl.options(factor_levels=None):
        dense = tl.lm(formula, data, **kw)
    with tl.options(factor_levels=10, large_factor_levels=10):
        large = tl.lm(formula, data, **kw)
    assert isinstance(large, LargeFactorResult) and isinstance(large.design, LargeFactorDesign)
    return dense, large


def same(a, b, rtol=1e-9, atol=1e-12):
    a, b = (x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x) for x in (a, b))
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol)


CASES = [
    ("y ~ x1 + C(firm) + x2", {"weights": "w"}),
    ("y ~ C(firm) + x1", {}),
    ("y ~ x1 + factor(firm)", {"offset": "x2"}),
    ("y ~ 0 + x1 + C(firm) + x2", {}),                # no intercept: every level's dummy
    ("y ~ C(firm)", {}),
    ("log(cnt + 1) ~ x1 + C(firm) + C(g)", {"subset": "x2 > -1"}),
]


@pytest.mark.parametrize("formula, kw", CASES)
def test_every_result_equals_the_dense_fit(formula, kw):
    dense, large = fits(formula, DS, **kw)
    assert large.names == dense.names
    same(large.coef(), dense.coef())
    same(large.vcov(), dense.vcov())
    assert str(large.summary()) == str(dense.summary())
    assert str(tl.anova(large)) == str(tl.anova(dense))
    for t in ("HC0", "HC1", "HC2", "HC3"):
        same(large.vcov(t), dense.vcov(t))
    same(large.vcov(cluster="year"), dense.vcov(cluster="year"))
    same(large.vcov("HC0", cluster=["year", "g"]), dense.vcov("HC0", cluster=["year", "g"]))
    same(large.hatvalues(), dense.hatvalues())
    same(large.cooks_distance(), dense.cooks_distance())
    same(large.rstandard(), dense.rstandard())
    new = DS.sample(20, random_state=1)
    same(large.predict(new, interval="prediction"), dense.predict(new, interval="prediction"))
    same(large.predict(se_fit=True, interval="confidence"), dense.predict(se_fit=True, interval="confidence"))
    same(large.confint(), dense.confint())
    assert str(large.summary("HC1")) == str(dense.summary("HC1"))


def test_equals_r_lm_with_factor():
    _, large = fits("y ~ x1 + factor(firm) + x2", DS, weights="w")
    ref = R["lm_factor_mid"]
    same(large.coef(), np.array(ref["coef"], dtype=float))
    same(large.std_errors(), np.array(ref["se"], dtype=float))
    same(large.deviance, ref["rss"])


def test_beyond_the_full_matrix_vcov_is_by_blocks(monkeypatch):
    dense, large = fits("y ~ x1 + C(firm) + x2", DS, weights="w")
    monkeypatch.setattr(large_factor, "FULL_COEFFICIENTS", 5)
    for kind in (None, "HC3", {"type": "HC1", "cluster": "year"}):
        V = large.vcov(kind)
        assert isinstance(V, BlockVcov) and V.shape == (len(dense.names),) * 2
        full = dense.vcov(kind)
        same(V.variances(), np.diag(full))
        parm = ["x1", "C(firm)[T.7]", "Intercept", "C(firm)[T.3]"]
        same(V.block(parm), full.loc[parm, parm])
        same(large.vcov(kind, parm=parm), full.loc[parm, parm])
        same(large.std_errors(kind), dense.std_errors(kind))
    with pytest.raises(ModelInputError, match="vcov\\(parm"):
        large.vcov().to_numpy()
    assert str(large.summary()) == str(dense.summary())
    same(large.coef_table("HC2"), dense.coef_table("HC2"))
    with pytest.raises(ModelInputError, match="Wald test"):
        large.summary("HC1")
    with pytest.raises(OptionError, match="no coefficient"):
        large.vcov(parm=["nope"])


def test_zero_weights_and_names_r():
    d = DS.assign(w=np.where(DS.index < 5, 0.0, DS.w))
    dense, large = fits("y ~ x1 + factor(firm)", d, weights="w", names="R")
    assert "factor(firm)2" in large.names and large.names == dense.names
    same(large.coef(), dense.coef())
    same(large.hatvalues(), dense.hatvalues())
    same(large.vcov("HC2"), dense.vcov("HC2"))
    same(large.vcov(cluster="year"), dense.vcov(cluster="year"))
    assert str(large.summary()) == str(dense.summary())


def test_newdata_levels_and_missing_values():
    _, large = fits("y ~ x1 + C(firm)", DS)
    with pytest.raises(DataError, match="new levels"):
        large.predict(PANEL.tail(3))
    holes = DS.head(5).assign(firm=[1, None, 2, 3, 4])
    assert large.predict(holes).isna().tolist() == [False, True, False, False, False]
    with pytest.raises(ModelInputError, match="firm"):
        large.predict(DS.head(3).drop(columns="firm"))


def test_what_it_cannot_do_is_refused_clearly():
    # a column constant within levels: R gives NA, which this path does not reproduce
    with tl.options(factor_levels=10, large_factor_levels=10), pytest.raises(ModelInputError, match="collinear"):
        tl.lm("y ~ x1 + C(firm) + xc", DS)
    with tl.options(factor_levels=10, large_factor_levels=10), pytest.raises(ModelInputError, match="treatment"):
        tl.lm("y ~ x1 + C(firm)", DS, contrasts={"firm": "contr.sum"})
    with (tl.options(factor_levels=10, large_factor_levels=10), pytest.raises(ModelInputError, match="weight")):
        tl.lm("y ~ x1 + C(firm)", DS, weights=np.where(DS.firm == 3, 0.0, 1.0))
    _, large = fits("y ~ x1 + C(firm)", DS)
    with pytest.raises(ModelInputError, match="dummy block"):
        large.dfbeta()
    with pytest.raises(OptionError, match="HC4"):
        large.vcov("HC4")
    with pytest.raises(OptionError, match="classical"):
        large.predict(DS.head(2), se_fit=True, vcov="HC1")
    with pytest.raises(OptionError, match="terms"):
        large.predict(type="terms")
    with pytest.raises(OptionError, match="large_factor_levels"):
        tl.options(large_factor_levels=1)
    # tl.glm keeps such a factor as its dense columns (its IRLS needs R's factor)
    with tl.options(factor_levels=10, large_factor_levels=10):
        g = tl.glm("cnt ~ x1 + C(firm)", DS, family="poisson")
    assert not isinstance(g.design, LargeFactorDesign)
