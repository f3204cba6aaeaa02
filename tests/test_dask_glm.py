"""tl.glm on a Dask DataFrame (issue 11): R's glm.fit with one pass over the partitions per IRLS iteration.

On a distributed.LocalCluster of two worker processes (one thread each), started once for the module. Every
number is compared with the in-memory tl.glm on the same pandas data (which is tested equal to R), at 1, 3
and 7 partitions of uneven size: coefficients, covariances, deviances, AIC, iterations and summary text.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd  # the test and dask extras install dask: CI runs this module (no skip)
import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.errors import DataError
from torchlm.frame.dask_frame import NotSupportedForDask

TOL = 1e-10
#: uneven partitions: a one-row partition whose row has a missing value, one without level "c" of g
DIVISIONS = {1: None, 3: [0, 10, 11, 149], 7: [0, 3, 4, 40, 41, 100, 120, 149]}


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    n = 150
    g = np.where(np.arange(n) < 45, rng.choice(["b", "a"], n), rng.choice(["b", "a", "c"], n))
    x = rng.normal(size=n)
    df = pd.DataFrame({
        "x": x, "g": g, "w": rng.integers(1, 5, n).astype(float), "t": rng.uniform(1.0, 3.0, n),
        "firm": rng.integers(0, 9, n)})  # clusters across partitions
    df["x2"] = 2 * df.x  # aliased: NA in coef, "not defined because of singularities" in the summary
    eta = 0.3 + 0.8 * x - 0.5 * (g == "a")
    df["yb"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    df["yp"] = rng.poisson(np.exp(eta) * df.t).astype(float)
    df["yg"] = rng.gamma(3.0, np.exp(eta) / 3.0)
    df.loc[[0, 77], "w"] = 0.0  # zero weights: in the rows, out of nobs
    df.loc[[3, 60], "x"] = np.nan
    df.loc[20, "g"] = None
    df.loc[90, "w"] = np.nan
    df.loc[130, "t"] = np.nan
    return df


DF = _data()


def _partitioned(k: int):
    if DIVISIONS[k] is None:
        return dd.from_pandas(DF, npartitions=1)
    return dd.from_pandas(DF, npartitions=1).repartition(divisions=DIVISIONS[k])


MODELS = {
    "binomial": ("yb ~ x * g + x2", dict(family="binomial", weights="w")),
    "poisson-offset": ("yp ~ x + g", dict(family="poisson", offset="log(t)")),
    "gamma-log": ("yg ~ x + g", dict(family=tl.families.Gamma(link="log"), weights="w")),
    "quasipoisson": ("yp ~ x + g + offset(log(t))", dict(family="quasipoisson", names="R")),
}
CASES = [(1, "binomial"), (3, "binomial"), (7, "binomial"), (7, "poisson-offset"), (7, "gamma-log"),
         (3, "quasipoisson")]


def _close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True), np.nanmax(np.abs(a - b))


@pytest.mark.parametrize("k, model", CASES, ids=[f"{m}-{k}" for k, m in CASES])
def test_glm_equals_in_memory(client, k, model):
    formula, kw = MODELS[model]
    ddf = _partitioned(k)
    assert ddf.npartitions == k
    m, d = tl.glm(formula, DF, **kw), tl.glm(formula, ddf, **kw)
    assert list(d.names) == list(m.names)
    _close(d.coef(), m.coef())  # NaN where aliased, as R
    assert list(d.aliased) == list(m.aliased)
    for v in (None, "HC0", "HC3"):
        _close(d.vcov(v), m.vcov(v))
    _close(d.vcov(cluster="firm"), m.vcov(cluster="firm"))  # each firm's scores summed over its partitions
    for attr in ("deviance", "null_deviance", "dispersion"):
        _close(getattr(d, attr), getattr(m, attr))
    _close([d.aic(), d.loglik(), d.bic()], [m.aic(), m.loglik(), m.bic()])
    _close(d.confint(), m.confint())
    assert (d.iterations, d.converged, d.nobs, d.df_residual, d.df_null, d.n_dropped_na) == (
        m.iterations, m.converged, m.nobs, m.df_residual, m.df_null, m.n_dropped_na)
    assert str(d.summary()) == str(m.summary())
    if k == 7:
        assert str(d.summary(vcov="HC0")) == str(m.summary(vcov="HC0"))
        assert str(d) == str(m)


def test_other_robust_covariances(client):
    formula, kw = MODELS["binomial"]
    m, d = tl.glm(formula, DF, **kw), tl.glm(formula, _partitioned(7), **kw)
    for v in ("HC1", "HC2", "HC5"):
        _close(d.vcov(v), m.vcov(v))
    _close(d.vcov("HC1", cluster="firm"), m.vcov("HC1", cluster="firm"))
    _close(d.vcov(cluster=["firm", "g"]), m.vcov(cluster=["firm", "g"]))


def test_lazy_values_and_predict(client):
    formula, kw = MODELS["poisson-offset"]
    ddf = _partitioned(7)
    m, d = tl.glm(formula, DF, **kw), tl.glm(formula, ddf, **kw)
    pairs = [(d.fitted(), m.fitted()), (d.linear_predictors(), m.linear_predictors()),
             (d.predict(), m.predict()), (d.predict(type="response"), m.predict(type="response"))]
    pairs += [(d.residuals(t), m.residuals(t)) for t in ("deviance", "pearson", "working", "response")]
    assert all(isinstance(got, dd.Series) for got, _ in pairs)
    for got, (_, want) in zip(dask.compute(*[got for got, _ in pairs]), pairs):  # one graph: fewer round trips
        assert got.index.equals(want.index) and got.name == want.name
        _close(got, want)
    new = DF.drop(columns="yp")
    for type in ("link", "response"):
        got = d.predict(newdata=dd.from_pandas(new, npartitions=3), type=type).compute()
        want = m.predict(newdata=new, type=type)
        assert got.index.equals(want.index)
        _close(got, want)  # NaN where a predictor is missing, as in memory
    rows = new.iloc[[1, 2, 40]]
    _close(d.predict(newdata=rows, type="response", se_fit=True), m.predict(newdata=rows, type="response", se_fit=True))


def test_start_and_control(client):
    formula, kw = MODELS["gamma-log"]
    kw = dict(kw, start=[0.1, 0.5, -0.2, 0.0], control={"epsilon": 1e-10, "maxit": 40})
    m, d = tl.glm(formula, DF, **kw), tl.glm(formula, _partitioned(3), **kw)
    _close(d.coef(), m.coef())
    assert d.iterations == m.iterations
    assert str(d.summary()) == str(m.summary())


def _die_in_a_later_pass(part: pd.DataFrame, counter: str, partition_info=None) -> pd.DataFrame:
    # partition 5's computations: the scan, then one per IRLS pass; its worker process dies in the second pass
    import os
    import pathlib

    if partition_info["number"] == 5:
        path = pathlib.Path(counter)
        k = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(k))
        if k == 3:
            os._exit(1)
    return part


def test_a_worker_dies_between_irls_passes(client, tmp_path):
    formula, kw = MODELS["binomial"]
    ddf = _partitioned(7)
    dying = ddf.map_partitions(_die_in_a_later_pass, str(tmp_path / "count"), meta=ddf._meta)
    d = tl.glm(formula, dying, **kw)  # dask recomputes the lost task elsewhere: a pure function of its partition
    assert int((tmp_path / "count").read_text()) > 3
    m = tl.glm(formula, DF, **kw)
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())
    assert d.iterations == m.iterations
    assert d.deviance == pytest.approx(m.deviance, rel=TOL)


def _exit_soon() -> None:
    import os
    import threading

    threading.Timer(0.1, os._exit, args=(1,)).start()  # after client.run has its answer


def test_persisted_rows_and_a_worker_killed_between_passes(client, monkeypatch):
    from torchlm.models import dask_glm

    formula, kw = MODELS["poisson-offset"]
    passes, real = [], dask_glm._Passes.at

    def at(self, point, final=None):  # after the second IRLS pass, one worker process dies with its persisted rows
        out = real(self, point, final)
        passes.append(point)
        if len(passes) == 2:
            worker = sorted(client.scheduler_info()["workers"])[0]
            client.run(_exit_soon, workers=[worker])
        return out

    monkeypatch.setattr(dask_glm._Passes, "at", at)
    d = dask_glm.glm_dask(formula, _partitioned(7), persist=True, **kw)
    m = tl.glm(formula, DF, **kw)
    assert len(passes) > 2
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())
    _close(d.vcov("HC3"), m.vcov("HC3"))
    _close([d.deviance, d.null_deviance, d.aic()], [m.deviance, m.null_deviance, m.aic()])
    assert d.iterations == m.iterations
    assert str(d.summary()).split("Coefficients")[1] == str(m.summary()).split("Coefficients")[1]


def _response_out_of_range(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info["number"] == 2:
        part = part.assign(yb=part.yb.where(part.index != part.index[3], 2.0))
    return part


def _negative_weight(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info["number"] == 4:
        part = part.assign(w=part.w.where(part.index != part.index[2], -1.0))
    return part


@pytest.mark.parametrize("corrupt, message", [
    (_response_out_of_range, r"partition 2 .*binomial response values must be 0 <= y <= 1"),
    (_negative_weight, r"partition 4 .*weights \('w'\) must be non-negative"),
])
def test_bad_partition_is_a_clear_error(client, corrupt, message):
    ddf = _partitioned(7)
    bad = ddf.map_partitions(corrupt, meta=ddf._meta)
    with pytest.raises(DataError, match=message) as info:
        tl.glm("yb ~ x + g", bad, family="binomial", weights="w")
    assert info.traceback[-1].path.name != "worker.py"  # raised here, not as a remote traceback


def test_what_is_refused(client):
    ddf = _partitioned(3)
    with pytest.raises(NotSupportedForDask, match="exact=True"):
        tl.glm("yb ~ x", ddf, family="binomial", exact=True)
    with pytest.raises(NotSupportedForDask, match="information='observed'"):
        tl.glm("yb ~ x", ddf, family="binomial", information="observed")
    d = tl.glm("yb ~ x + g", ddf, family="binomial")
    for call in (lambda: d.hessian(), lambda: d.predict(type="terms"),
                 lambda: d.predict(se_fit=True), lambda: d.vcov(cluster=DF.firm.to_numpy())):
        with pytest.raises(NotSupportedForDask, match="not supported yet for a model fitted to a Dask DataFrame"):
            call()


def test_update_refits_on_the_partitions(client):
    d = tl.update(tl.glm("yb ~ x + g", _partitioned(3), family="binomial"), ". ~ . - g")
    _close(d.coef(), tl.glm("yb ~ x", DF, family="binomial").coef())


def _messages(record) -> list[str]:
    return sorted({str(w.message) for w in record})


def test_warnings_are_the_in_memory_fits(client):
    data = DF.assign(yq=(DF.yb + DF.x.abs().clip(upper=1)) / 2.5)  # proportions: non-integer successes
    kw = dict(family="binomial", weights="w")
    with pytest.warns(UserWarning) as mem:
        m = tl.glm("yq ~ x + g", data, **kw)
    with pytest.warns(UserWarning) as dsk:
        d = tl.glm("yq ~ x + g", dd.from_pandas(data, npartitions=1).repartition(divisions=DIVISIONS[7]), **kw)
    assert "non-integer #successes in a binomial glm!" in _messages(mem)
    assert _messages(dsk) == _messages(mem)
    assert [w.filename for w in dsk] == [__file__] * len(dsk)  # where the user called tl.glm
    _close(d.coef(), m.coef())


def test_another_threads_library_warnings_are_not_the_fits(monkeypatch):
    """The partitions' warning record is process-global: a library's warning in it (dask's parquet reader's
    pandas deprecations, in another thread) is not re-raised as the fit's; R's warnings are."""
    import warnings

    from torchlm.models.families import Binomial

    real = Binomial.initialize

    def noisy(self, y, w):
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=2)
        return real(self, y, w)

    monkeypatch.setattr(Binomial, "initialize", noisy)
    data = DF.assign(yq=(DF.yb + DF.x.abs().clip(upper=1)) / 2.5)
    with dask.config.set(scheduler="sync"), pytest.warns(UserWarning) as dsk:
        tl.glm("yq ~ x + g", dd.from_pandas(data, npartitions=3), family="binomial", weights="w")
    fits = [str(w.message) for w in dsk if issubclass(w.category, UserWarning)]
    assert "non-integer #successes in a binomial glm!" in fits
    assert not any("deprecation" in m for m in fits)


def test_a_factor_response_is_refused_clearly(client):
    data = dd.from_pandas(DF.assign(f=pd.Categorical(np.where(DF.yb == 1, "yes", "no"))), npartitions=3)
    with pytest.raises(NotSupportedForDask, match="a factor response"):
        tl.glm("f ~ x", data, family="binomial")


def test_step_halving_as_in_memory(client):
    # identity-link Poisson whose full steps leave the family's range at x = -2: R halves them ("out of bounds")
    rng = np.random.default_rng(3)
    x = np.r_[rng.uniform(0, 10, 180), np.full(20, -2.0)]
    data = pd.DataFrame({"x": x, "y": np.r_[rng.poisson(0.2 + x[:180]), np.zeros(20)].astype(float)})
    kw = dict(family=tl.families.Poisson(link="identity"), start=[3.0, 0.1])
    with pytest.warns(UserWarning) as mem:
        m = tl.glm("y ~ x", data, **kw)
    with pytest.warns(UserWarning) as dsk:
        d = tl.glm("y ~ x", dd.from_pandas(data, npartitions=4), **kw)
    assert "step size truncated: out of bounds" in _messages(mem) and _messages(dsk) == _messages(mem)
    assert (d.iterations, d.boundary) == (m.iterations, m.boundary) and m.boundary
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())


@pytest.mark.parametrize("family, final_pass", [("binomial", 0), ("Gamma", 1)])
def test_the_converging_pass_is_the_final_pass(monkeypatch, family, final_pass):
    """binomial: one pass per iteration and none after (its AIC needs no total deviance); Gamma one more."""
    import dask

    import torchlm.frame.dask_frame as dask_frame

    passes: list[str] = []
    real = dask_frame.compute
    monkeypatch.setattr(dask_frame, "compute", lambda tasks: passes.append("pass") or real(tasks))
    rng = np.random.default_rng(9)
    d = pd.DataFrame({"x": rng.normal(size=3000)})
    d["yb"] = (rng.uniform(size=3000) < 1 / (1 + np.exp(-d.x))).astype(float)
    d["yg"] = rng.gamma(2.0, np.exp(0.3 * d.x) / 2.0)
    formula = "yb ~ x" if family == "binomial" else "yg ~ x"
    with dask.config.set(scheduler="sync"):
        fit = tl.glm(formula, dd.from_pandas(d, npartitions=4), family=family)
    m = tl.glm(formula, d, family=family)
    assert len(passes) == 1 + fit.iterations + final_pass  # R's start, then one per iteration
    _close([fit.deviance, fit.null_deviance, fit.aic(), fit.dispersion],
           [m.deviance, m.null_deviance, m.aic(), m.dispersion])
    assert str(fit.summary()) == str(m.summary())


@pytest.mark.parametrize("name", ["binomial", "gamma-log"])
def test_partitions_read_by_pieces_give_the_same_glm(monkeypatch, name):
    """IRLS, final sums (the aic's constant once) and quantiles by pieces of 7 rows: the in-memory fit's."""
    import dask

    import torchlm.frame.dask_compute as dask_compute

    monkeypatch.setattr(dask_compute, "PIECE_ROWS", 7)
    formula, kw = MODELS[name]
    m = tl.glm(formula, DF, **kw)
    with dask.config.set(scheduler="sync"):
        d = tl.glm(formula, _partitioned(3), **kw)
        _close(d.coef(), m.coef())
        _close([d.deviance, d.null_deviance, d.aic(), d.dispersion], [m.deviance, m.null_deviance, m.aic(),
                                                                       m.dispersion])
        assert str(d.summary()) == str(m.summary())
