"""A Dask fit's anova, drop1, HAC covariance and influence measures (issue 11) against the in-memory fit.

On the conftest's distributed.LocalCluster (two worker processes), at 1 and 3 partitions of uneven size; the
in-memory tl.lm / tl.glm on the same pandas data (tested equal to R) is the reference: tables' text identical,
numbers to 1e-10 (relative).
"""

from __future__ import annotations

import warnings

import dask.dataframe as dd  # the test and dask extras install dask: CI runs this module (no skip)
import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.frame.dask_frame import NotSupportedForDask

TOL = 1e-10
#: uneven partitions: a one-row partition whose row has a missing value
DIVISIONS = {1: None, 3: [0, 10, 11, 119]}


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 120
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], n)
    df = pd.DataFrame({"x": x, "z": rng.normal(size=n), "g": g, "w": rng.integers(1, 4, n).astype(float),
                       "t": rng.uniform(1.0, 3.0, n)})
    df["x2"] = 2 * df.x  # aliased
    eta = 0.2 + 0.7 * x - 0.4 * (g == "b")
    df["y"] = 1 + 2 * x + 0.5 * df.z + rng.standard_t(4, n)
    df["yb"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    df["yp"] = rng.poisson(np.exp(eta) * df.t).astype(float)
    df.loc[[0, 50], "w"] = 0.0  # zero weights: in the rows, out of nobs
    df.loc[[3, 10], "x"] = np.nan  # row 10 is the one-row partition
    return df


DF = _data()


def _partitioned(k: int):
    base = dd.from_pandas(DF, npartitions=1)
    return base if DIVISIONS[k] is None else base.repartition(divisions=DIVISIONS[k])


LM = {"weighted-factor-aliased": ("y ~ x * g + x2 + z", dict(weights="w")),
      "offset": ("y ~ x + g", dict(offset="log(t)"))}
GLM = {"binomial": ("yb ~ x * g + z", dict(family="binomial", weights="w")),
       "quasipoisson-offset": ("yp ~ x + g", dict(family="quasipoisson", offset="log(t)"))}


def _same_table(a, b):
    assert str(b) == str(a)
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    assert np.array_equal(np.isnan(x), np.isnan(y))
    np.testing.assert_allclose(y[~np.isnan(y)], x[~np.isnan(x)], rtol=TOL, atol=TOL)


#: every model at 3 partitions, one of each kind at 1 (the time the module takes on a 2-core machine)
CASES = [(name, 3) for name in list(LM) + list(GLM)] + [("weighted-factor-aliased", 1), ("binomial", 1)]


@pytest.fixture(scope="module")
def fits(client):
    out = {}
    for name, k in CASES:
        fitter, (f, kw) = (tl.lm, LM[name]) if name in LM else (tl.glm, GLM[name])
        out[name, k] = (fitter(f, DF, **kw), fitter(f, _partitioned(k), **kw))
    return out


@pytest.mark.parametrize(("name", "k"), [c for c in CASES if c[0] in LM])
def test_lm_anova_and_drop1(fits, name, k):
    mem, dask_fit = fits[name, k]
    _same_table(tl.anova(mem), tl.anova(dask_fit))
    for test in (None, "F", "Chisq"):
        _same_table(tl.drop1(mem, test=test), dask_fit.drop1(test=test))
    _same_table(tl.drop1(mem, test="F"), tl.drop1(dask_fit, test="F"))  # the function, as for any fit
    _same_table(tl.drop1(mem, "~ z", test="F") if "z" in LM[name][0] else tl.drop1(mem, ["g"]),
                dask_fit.drop1("~ z", test="F") if "z" in LM[name][0] else dask_fit.drop1(["g"]))


@pytest.mark.parametrize(("name", "k"), [c for c in CASES if c[0] in GLM])
def test_glm_anova_and_drop1(fits, name, k):
    mem, dask_fit = fits[name, k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the F test's warning for a binomial, as in memory
        for test in (None, "Chisq", "F", "Cp", "Rao"):
            _same_table(tl.anova(mem, test=test), tl.anova(dask_fit, test=test))
        for test in (None, "Chisq", "F", "Rao"):
            _same_table(tl.drop1(mem, test=test), dask_fit.drop1(test=test))


def test_nested_anova_and_refusals(fits):
    mem, dask_fit = fits["weighted-factor-aliased", 3]
    small_mem = tl.lm("y ~ x + g", DF, weights="w")
    small = tl.lm("y ~ x + g", _partitioned(3), weights="w")
    _same_table(tl.anova(small_mem, mem), tl.anova(small, dask_fit))
    with pytest.raises(NotSupportedForDask):
        dask_fit.add1("~ . + t")
    with pytest.raises(tl.TorchlmError, match="test must be"):
        tl.anova(fits["binomial", 3][1], test="Wald")


def _series_data() -> pd.DataFrame:
    """Autocorrelated scores (AR(1) regressor and errors): a Newey-West lag longer than the short partitions."""
    rng = np.random.default_rng(3)
    n = 150
    x, e = np.zeros(n), np.zeros(n)
    for i in range(1, n):
        x[i] = 0.9 * x[i - 1] + rng.normal()
        e[i] = 0.9 * e[i - 1] + rng.normal()
    df = pd.DataFrame({"x": x, "w": rng.integers(1, 4, n).astype(float)})
    df["y"] = 1 + 0.5 * x + e
    df["yp"] = rng.poisson(np.exp(0.3 + 0.1 * x + 0.3 * e)).astype(float)
    df.loc[[5, 6], "w"] = 0.0  # zero weights keep their places in time: zero scores
    return df


SERIES = _series_data()


@pytest.mark.parametrize("divisions", [None, [0, 1, 2, 4, 7, 8, 60, 149]], ids=["1", "7-short"])
def test_hac(client, divisions):
    base = dd.from_pandas(SERIES, npartitions=1)
    ddf = base if divisions is None else base.repartition(divisions=divisions)
    models = [(tl.lm, "y ~ x", dict(weights="w"))] + ([(tl.glm, "yp ~ x", dict(family="poisson"))] if divisions else [])
    for fitter, f, kw in models:
        mem, dask_fit = fitter(f, SERIES, **kw), fitter(f, ddf, **kw)
        np.testing.assert_allclose(dask_fit.vcov("HAC"), mem.vcov("HAC"), rtol=TOL, atol=0)
        assert str(dask_fit.summary(vcov="HAC")) == str(mem.summary(vcov="HAC"))
        lag = int(str(mem.summary(vcov="HAC")).split("lag ")[1].split(")")[0])
        assert lag >= 2  # longer than the one-row partitions: pairs straddle several of them


@pytest.mark.parametrize("formula", ["y ~ 0 + x", "y ~ 0 + one + x", "yp ~ 0 + one + x"])
def test_hac_without_an_intercept(client, formula):
    """No intercept: R's bandwidth weights zero the columns of ones under another name (one more pass)."""
    data = SERIES.assign(one=1.0)
    ddf = dd.from_pandas(data, npartitions=1).repartition(divisions=[0, 1, 2, 4, 7, 8, 60, 149])
    fitter, kw = (tl.glm, dict(family="poisson")) if formula.startswith("yp") else (tl.lm, dict(weights="w"))
    mem, dask_fit = fitter(formula, data, **kw), fitter(formula, ddf, **kw)
    np.testing.assert_allclose(dask_fit.vcov("HAC"), mem.vcov("HAC"), rtol=TOL, atol=0)
    assert str(dask_fit.summary(vcov="HAC")) == str(mem.summary(vcov="HAC"))


def test_hac_refusals(client, fits):
    unknown = dd.from_pandas(SERIES, npartitions=3).clear_divisions()
    with pytest.raises(NotSupportedForDask, match="divisions"):
        tl.lm("y ~ x", unknown).vcov("HAC")


MEASURES = ("hatvalues", "rstandard", "rstudent", "cooks_distance", "dffits", "covratio", "dfbeta", "dfbetas")


def _same_rows(mem, lazy):
    got = lazy.compute()
    assert got.index.equals(mem.index)  # the rows of non-zero weight, with the data's labels, in order
    if isinstance(mem, pd.DataFrame):
        assert list(got.columns) == list(mem.columns)
    else:
        assert got.name == mem.name
    x, y = np.asarray(mem, dtype=float), np.asarray(got, dtype=float)
    assert np.array_equal(np.isnan(x), np.isnan(y))
    np.testing.assert_allclose(y[~np.isnan(y)], x[~np.isnan(x)], rtol=TOL, atol=TOL * np.nanmax(np.abs(x)))


@pytest.mark.parametrize("name", list(LM) + list(GLM))
def test_influence_measures(fits, name):
    mem, dask_fit = fits[name, 3]
    for m in MEASURES:
        _same_rows(getattr(mem, m)(), getattr(dask_fit, m)())
    other = "pearson" if name in GLM else "predictive"
    _same_rows(mem.rstandard(other), dask_fit.rstandard(other))
    with pytest.raises(tl.TorchlmError, match="rstandard type"):
        dask_fit.rstandard("nope")
    with pytest.raises(NotSupportedForDask):
        dask_fit.influence_measures()
