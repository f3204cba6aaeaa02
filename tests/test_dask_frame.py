"""A Dask fit's frame (issue 11): stateful transforms learnt on every row of the partitions.

scale(x), center(x), poly(x, 2), ns(x, df=3) and bs(x, df=4) learn their state (means, standard deviations,
poly's recurrence coefficients, the knots) on every row of the data, before subset= and NA removal, as R's
model.frame and the in-memory fit: the Dask fit learns it over all partitions first. Every number is compared with
the in-memory fit on the same pandas data (which is tested equal to R), at 1 and 3 partitions of uneven size, on the
module's distributed.LocalCluster (two worker processes, one thread each). Then tl.lm's and tl.glm's progress=
and persist=, and torch's threads in each partition task.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd  # the test and dask extras install dask: CI runs this module (no skip)
import numpy as np
import pandas as pd
import pytest
import torch
from test_dask import _close  # to 1e-10, NaN where NaN

import torchlm as tl
from torchlm import threads
from torchlm.errors import DataError, OptionError
from torchlm.frame.dask_frame import NotSupportedForDask, map_partitions_computed

#: uneven partitions: a one-row partition (its row has a missing x), a long one
DIVISIONS = {1: None, 3: [0, 3, 4, 119]}


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 120
    df = pd.DataFrame({"x": rng.normal(3.0, 2.0, n), "z": np.sort(rng.uniform(1.0, 9.0, n)),
                       "g": rng.choice(["a", "b"], n), "w": rng.uniform(0.5, 2.0, n)})
    df["y"] = 1 + np.sin(df.z) + 0.5 * df.x + (df.g == "b") + rng.normal(size=n) / np.sqrt(df.w)
    df["k"] = rng.poisson(np.exp(0.2 * df.z)).astype(float)
    df["u"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(df.x - 3)))).astype(float)
    # missing values: in a transform's variable (left out of its state), the response and the weights (not)
    df.loc[[3, 50], "x"] = np.nan
    df.loc[[10, 70], "y"] = np.nan
    df.loc[[20], "w"] = np.nan
    return df


DF = _data()


def _partitioned(k: int):
    whole = dd.from_pandas(DF, npartitions=1)
    return whole if DIVISIONS[k] is None else whole.repartition(divisions=DIVISIONS[k])


LM = [("y ~ scale(x) + poly(z, 2) + g", dict(weights="w")),
      ("y ~ ns(z, df=3) + center(x) + scale(w, center=False)", dict(subset="z > 2")),  # the state from every row
      ("y ~ bs(x, df=4) + ns(z, knots=c(3, 6)) + poly(w, 2, raw=TRUE)", dict(names="R"))]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("formula, kw", LM, ids=["scale-poly", "ns-center-subset", "bs-knots-raw"])
def test_lm_with_stateful_transforms_equals_in_memory(client, k, formula, kw):
    m, d = tl.lm(formula, DF, **kw), tl.lm(formula, _partitioned(k), **kw)
    assert list(d.names) == list(m.names)
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())
    _close(d.vcov("HC1"), m.vcov("HC1"))
    assert (d.nobs, d.df_residual) == (m.nobs, m.df_residual)
    assert str(d.summary()) == str(m.summary())
    new = DF.iloc[[0, 5, 60, 119]]  # predict codes new rows with the data's state, as in memory
    _close(d.predict(newdata=new), m.predict(newdata=new))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("formula, family", [("k ~ scale(x) + ns(z, df=3)", "poisson"),
                                             ("u ~ poly(z, 2) + scale(x) + g", "binomial")],
                         ids=["poisson", "binomial"])
def test_glm_with_stateful_transforms_equals_in_memory(client, k, formula, family):
    m, d = tl.glm(formula, DF, family=family), tl.glm(formula, _partitioned(k), family=family)
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())
    _close([d.deviance, d.null_deviance, d.aic()], [m.deviance, m.null_deviance, m.aic()])
    assert d.iterations == m.iterations
    assert str(d.summary()) == str(m.summary())


def test_the_state_is_the_data_not_a_partition_nor_the_prototype(client):
    d = tl.lm("y ~ scale(x) + ns(z, df=3)", _partitioned(3))
    state = d.design.spec.transform_state
    x = DF.x.dropna()
    assert state["scale(x)"]["center"] == pytest.approx(x.mean(), rel=1e-14)
    assert state["scale(x)"]["scale"] == pytest.approx(x.std(), rel=1e-14)
    assert state["ns(z, df=3)"]["knots"] == pytest.approx(list(np.quantile(DF.z, [1 / 3, 2 / 3])), rel=1e-14)
    assert state["ns(z, df=3)"]["Boundary_knots"] == [DF.z.min(), DF.z.max()]
    iris = tl.datasets.load("iris")  # R's dotted names (backquoted for formulaic)
    formula = "Sepal.Width ~ scale(Sepal.Length) + ns(Petal.Width, df=3)"
    _close(tl.lm(formula, dd.from_pandas(iris, npartitions=3)).coef(), tl.lm(formula, iris).coef())


def test_poly_errors_and_refused_transforms(client):
    ddf = _partitioned(3)
    with pytest.raises(DataError) as want:
        tl.lm("y ~ poly(x, 2)", DF)  # R's poly refuses missing values, whatever na_action
    with pytest.raises(DataError) as got:
        tl.lm("y ~ poly(x, 2)", ddf)
    assert str(got.value) == str(want.value)
    few = ddf.assign(v=ddf.z.round(-1))  # values 0, 10: two points
    with pytest.raises(DataError, match="'degree' must be less than number of unique points"):
        tl.lm("y ~ poly(v, 2)", few)
    for formula in ("y ~ cr(z, df=4)", "y ~ scale(poly(z, 2))", "y ~ scale(z, center=x)"):
        with pytest.raises(NotSupportedForDask):
            tl.lm(formula, ddf)


def test_progress_bars_leave_the_numbers_as_they_are(client, capsys):
    ddf = _partitioned(3)
    m, d = tl.lm("y ~ x + g", ddf, weights="w"), tl.lm("y ~ x + g", ddf, weights="w", progress=True)
    shown = capsys.readouterr().out
    assert "100%" in shown  # distributed's bar, one per pass
    _close(d.coef(), m.coef())
    assert str(d.summary()) == str(m.summary())
    with dask.config.set(scheduler="sync"):  # a local scheduler: dask.diagnostics.ProgressBar
        g = tl.glm("u ~ x", ddf, family="binomial", progress=True)
    # R's start, then a pass per iteration, the last of them also the final pass
    assert capsys.readouterr().out.count("100% Completed") >= g.iterations + 1
    _close(g.coef(), tl.glm("u ~ x", DF, family="binomial").coef())
    for fit in (tl.lm, tl.glm):
        with pytest.raises(OptionError, match="progress= is for Dask DataFrame input"):
            fit("y ~ x", DF, progress=True)
        with pytest.raises(OptionError, match="persist= is for Dask DataFrame input"):
            fit("y ~ x", DF, persist=True)
        with pytest.raises(OptionError, match="progress must be True or False"):
            fit("y ~ x", ddf, progress="yes")


def test_persisted_rows_give_the_same_numbers(client):
    ddf = _partitioned(3).assign(firm=_partitioned(3).z.round())
    pdf = DF.assign(firm=DF.z.round())
    formula = "y ~ scale(x) + g"
    m, d = tl.lm(formula, pdf, weights="w"), tl.lm(formula, ddf, weights="w", persist=True)
    _close(d.coef(), m.coef())
    for v in ("HC1", "HC3"):
        _close(d.vcov(v), m.vcov(v))
    _close(d.vcov(cluster="firm"), m.vcov(cluster="firm"))  # the cluster column read from the kept partition
    assert str(d.summary()) == str(m.summary())
    _close(d.fitted().compute(), m.fitted())
    g = tl.glm("u ~ x + g", ddf, family="binomial", persist=True)
    _close(g.coef(), tl.glm("u ~ x + g", pdf, family="binomial").coef())


def _threads(part, number):
    return torch.get_num_threads()


def test_each_task_has_its_share_of_the_cores(client):
    ddf = _partitioned(3)
    # a cluster of one-thread workers (two processes on this host): one torch thread in each task
    assert map_partitions_computed(ddf, _threads) == [1] * 3
    with dask.config.set(scheduler="threads", num_workers=threads.available_cores()):
        assert map_partitions_computed(ddf, _threads) == [1] * 3  # one task per core: one torch thread each
    before = torch.get_num_threads()
    with dask.config.set(scheduler="sync"):  # one task at a time, in this thread: restored afterwards
        assert map_partitions_computed(ddf, _threads) == [min(before, threads.available_cores())] * 3
    assert torch.get_num_threads() == before


def test_a_partitions_design_rows_are_freed_without_the_cycle_collector():
    """formulaic's materializer is a reference cycle holding the rows it reads: cut, the rows go with the task
    (else each thread's tasks pile partitions up until a full collection, and the peak grows with them)."""
    import gc
    import weakref

    from torchlm.frame.dask_frame import _spec_matrix
    from torchlm.frame.dask_state import learn_plan

    plan, _ = learn_plan("y ~ x + g + log(z + 5)", _partitioned(3), weights="w", offset=None, subset=None,
                         na_action="omit", contrasts=None, names="formulaic")
    work = DF.dropna().reset_index(drop=True)
    gc.collect()
    gc.disable()
    try:
        X = _spec_matrix(plan.rhs, work, plan)
        alive = weakref.ref(work)
        del work
        assert alive() is None  # no cycle kept the rows (formulaic's own get_model_matrix keeps them)
        assert X.shape[1] == len(plan.names)
    finally:
        gc.enable()
