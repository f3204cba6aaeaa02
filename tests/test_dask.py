"""tl.lm on a Dask DataFrame (issue 11): the in-memory fit's numbers from per-partition reductions.

On a distributed.LocalCluster of two worker processes (one thread each), started once for the module: the
partitions are built in the workers, only reductions come back. Every number is compared with the in-memory
tl.lm on the same pandas data (which is tested equal to R), at 1, 3 and 7 partitions of uneven size.
"""

from __future__ import annotations

import subprocess
import sys

import dask.dataframe as dd  # the test and dask extras install dask: CI runs this module (no skip)
import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.errors import DataError, ModelInputError
from torchlm.frame.dask_frame import NotSupportedForDask

TOL = 1e-10
#: uneven partitions: a one-row partition whose row has a missing value, one without level "c" of g
DIVISIONS = {1: None, 3: [0, 10, 11, 149], 7: [0, 3, 4, 40, 41, 100, 120, 149]}


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 150
    g = np.where(np.arange(n) < 45, rng.choice(["b", "a"], n), rng.choice(["b", "a", "c"], n))
    df = pd.DataFrame({
        "x": rng.normal(size=n), "g": g,
        "h": pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "mid", "hi"]),
        "w": rng.uniform(0.5, 2.0, n), "t": rng.uniform(1.0, 3.0, n),
        "firm": rng.integers(0, 9, n), "year": rng.choice(["y1", "y2", "y3"], n)})  # clusters across partitions
    df["x2"] = 2 * df.x  # aliased: NA in coef, "not defined because of singularities" in the summary
    df["y"] = 1 + 2 * df.x - (df.g == "a") + 0.5 * (df.h == "hi") + rng.normal(size=n) / np.sqrt(df.w)
    df.loc[[0, 5, 77], "w"] = 0.0  # zero weights: in the rows, out of nobs
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


MODELS = [
    ("y ~ x * g + h", dict(weights="w", offset="log(t)")),
    ("y ~ x + C(g, contr.sum) + I(x**2) + x2 + offset(log(t))", dict(subset="x > -2", names="R")),
]


def _close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True), np.nanmax(np.abs(a - b))


@pytest.mark.parametrize("k, formula, kw", [(1, *MODELS[0]), (3, *MODELS[0]), (7, *MODELS[0]), (7, *MODELS[1])],
                         ids=["weights-offset-1", "weights-offset-3", "weights-offset-7", "subset-contrasts-7"])
def test_lm_equals_in_memory(client, k, formula, kw):
    ddf = _partitioned(k)
    assert ddf.npartitions == k
    m, d = tl.lm(formula, DF, **kw), tl.lm(formula, ddf, **kw)
    assert list(d.names) == list(m.names)
    _close(d.coef(), m.coef())
    for v in (None, "HC0", "HC1"):
        _close(d.vcov(v), m.vcov(v))
    _close(d.confint(), m.confint())
    for attr in ("deviance", "sigma", "r_squared", "adj_r_squared"):
        _close(getattr(d, attr), getattr(m, attr))
    _close(d.fstatistic, m.fstatistic)
    _close([d.loglik(), d.aic(), d.bic()], [m.loglik(), m.aic(), m.bic()])
    assert (d.nobs, d.df_residual, d.n_dropped_na) == (m.nobs, m.df_residual, m.n_dropped_na)
    assert str(d.summary()) == str(m.summary())
    assert str(d.summary(vcov="HC1")) == str(m.summary(vcov="HC1"))


def test_robust_and_clustered_covariances(client):
    formula, kw = MODELS[0]
    m, d = tl.lm(formula, DF, **kw), tl.lm(formula, _partitioned(7), **kw)
    for v in ("HC2", "HC3", "HC4", "HC4m", "HC5"):  # leverages: a pass for their sum and maximum, one for the meat
        _close(d.vcov(v), m.vcov(v))
    # each firm's (and firm x year's) scores summed over the partitions it spans
    for cluster, v in (("firm", None), ("firm", "HC0"), (["firm", "year"], None), (["firm", "year"], "HC0")):
        _close(d.vcov(v, cluster=cluster), m.vcov(v, cluster=cluster))
    assert str(d.summary(vcov="HC3")) == str(m.summary(vcov="HC3"))
    assert str(d.summary(cluster="firm")) == str(m.summary(cluster="firm"))


def test_categoricals_known_unknown_and_ordered(client):
    ddf = _partitioned(3)
    # unknown categories (each partition its own), and an ordered factor (R's contr.poly)
    data = ddf.assign(g=ddf.g.astype("category"), o=ddf.h.astype(pd.CategoricalDtype(["lo", "mid", "hi"], True)))
    pdf = DF.assign(g=DF.g.astype("category"), o=DF.h.astype(pd.CategoricalDtype(["lo", "mid", "hi"], True)))
    assert not data.g.cat.known
    m, d = tl.lm("y ~ x + g + o", pdf, names="R"), tl.lm("y ~ x + g + o", data, names="R")
    assert list(d.names) == list(m.names)
    assert str(d.summary()) == str(m.summary())


def test_lazy_values_and_predict(client):
    ddf = _partitioned(7)
    formula, kw = MODELS[0]
    m, d = tl.lm(formula, DF, **kw), tl.lm(formula, ddf, **kw)
    for got, want in ((d.fitted(), m.fitted()), (d.residuals(), m.residuals()),
                      (d.residuals("pearson"), m.residuals("pearson")), (d.hatvalues(), m.hatvalues()),
                      (d.rstandard(), m.rstandard()), (d.cooks_distance(), m.cooks_distance())):
        assert isinstance(got, dd.Series)
        got = got.compute()
        assert got.index.equals(want.index) and got.name == want.name
        _close(got, want)
    new = DF.drop(columns="y")
    got = d.predict(newdata=dd.from_pandas(new, npartitions=3)).compute()
    want = m.predict(newdata=new)
    assert got.index.equals(want.index)
    _close(got, want)  # NaN where a predictor is missing, as in memory
    rows = new.iloc[[1, 2, 40]]
    _close(d.predict(newdata=rows, interval="confidence", se_fit=True),
           m.predict(newdata=rows, interval="confidence", se_fit=True))


def test_residual_quantiles_are_exact_by_passes(client):
    from torchlm.sources.dask_selection import order_statistics
    from torchlm.sources.dask_source import residual_counts

    formula, kw = MODELS[0]
    d = tl.lm(formula, _partitioned(3), **kw)
    r = np.sort(d.residuals("pearson").compute().to_numpy())  # this fit's residuals, bit for bit
    n = len(r)
    ranks = [0, 1, 37, n // 2, n - 2, n - 1]
    # collecting only ranges of at most 4 residuals: several counting passes; ties at 0 (the zero weights)
    got = order_statistics(d._ddf, d._plan, d._estimate, n, ranks, residual_counts, collect=4)
    assert [got[k] for k in ranks] == [r[k] for k in ranks]
    q = d.residual_quantiles()
    assert (q == np.quantile(r, [0, 0.25, 0.5, 0.75, 1])).all()
    want = tl.lm(formula, DF, **kw).residuals("pearson").to_numpy()
    _close(q, np.quantile(want, [0, 0.25, 0.5, 0.75, 1]))


def _text_in_x(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info["number"] == 2:
        part = part.assign(x=part.x.astype(object))
        part.iloc[1, part.columns.get_loc("x")] = "oops"
    return part


def _new_level(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info["number"] == 1:
        h = part.h.cat.add_categories(["new"])
        h.iloc[0] = "new"
        part = part.assign(h=h)
    return part


def _negative_weight(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info["number"] == 4:
        part = part.assign(w=part.w.where(part.index != part.index[2], -1.0))
    return part


@pytest.mark.parametrize("corrupt, message", [
    (_text_in_x, r"partition 2 .*column 'x' holds non-numeric values \(e\.g\. 'oops'\)"),
    (_new_level, r"partition 1 .*column 'h' has level\(s\) 'new'"),
    (_negative_weight, r"partition 4 .*weights \('w'\) must be non-negative"),
])
def test_bad_partition_is_a_clear_error(client, corrupt, message):
    ddf = _partitioned(7)
    bad = ddf.map_partitions(corrupt, meta=ddf._meta)
    with pytest.raises(DataError, match=message) as info:
        tl.lm("y ~ x + g + h", bad, weights="w")
    assert info.traceback[-1].path.name != "worker.py"  # raised here, not as a remote traceback


def _die_in_second_pass(part: pd.DataFrame, counter: str, partition_info=None) -> pd.DataFrame:
    # partition 5's second computation is in the QR pass (the first in the scan): its worker process dies there
    import os
    import pathlib

    if partition_info["number"] == 5:
        path = pathlib.Path(counter)
        k = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(k))
        if k == 2:
            os._exit(1)
    return part


def test_a_worker_dies_in_a_pass(client, tmp_path):
    formula, kw = MODELS[0]
    ddf = _partitioned(7)
    dying = ddf.map_partitions(_die_in_second_pass, str(tmp_path / "count"), meta=ddf._meta)
    d = tl.lm(formula, dying, **kw)  # dask recomputes the lost task elsewhere: a pure function of its partition
    assert int((tmp_path / "count").read_text()) >= 3
    m = tl.lm(formula, DF, **kw)
    _close(d.coef(), m.coef())
    _close(d.vcov(), m.vcov())
    assert d.deviance == pytest.approx(m.deviance, rel=TOL)


def test_what_is_refused(client):
    ddf = _partitioned(3)
    with pytest.raises(NotSupportedForDask, match="cr\\(x, df=3\\)"):
        tl.lm("y ~ cr(x, df=3)", ddf)
    with pytest.raises(ModelInputError, match="weights= of a Dask DataFrame fit must be a column name"):
        tl.lm("y ~ x", ddf, weights=np.ones(len(DF)))
    d = tl.lm("y ~ x + g", ddf, weights="w")
    for call in (lambda: d.vcov(cluster=DF.g.to_numpy()), lambda: d.predict(se_fit=True)):
        with pytest.raises(NotSupportedForDask, match="not supported yet for a model fitted to a Dask DataFrame"):
            call()


def test_update_refits_on_the_partitions(client):
    d = tl.update(tl.lm("y ~ x + g", _partitioned(3), weights="w"), ". ~ . - g")
    _close(d.coef(), tl.lm("y ~ x", DF, weights="w").coef())


def test_torchlm_works_without_dask():
    code = ("import sys; sys.modules['dask'] = None; import torchlm as tl; "
            "print(tl.lm('mpg ~ wt', tl.datasets.load('mtcars')).coef().round(4).tolist(), "
            "any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules if sys.modules[m] is not None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[37.2851, -5.3445] False"


def test_other_verbs_refuse_a_dask_frame_rather_than_collect_it():
    ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=2)
    for call in (lambda: tl.feols("mpg ~ wt | cyl", ddf), lambda: tl.glm_nb("carb ~ wt", ddf),
                 lambda: tl.nls("mpg ~ a * exp(b * wt)", ddf, start={"a": 40.0, "b": -0.3})):
        with pytest.raises(ModelInputError, match="Dask DataFrame"):
            call()


def test_a_numeric_formula_learns_its_design_from_the_first_partition(monkeypatch):
    """No level to learn: one partition's scan (not a pass); a logical term's levels still come from every one."""
    import dask

    import torchlm.frame.dask_frame as dask_frame

    scanned: list[int] = []
    real = dask_frame.scan_partition

    def counting(part, number, plan):
        scanned.append(number)
        return real(part, number, plan)

    monkeypatch.setattr(dask_frame, "scan_partition", counting)
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"x": np.linspace(2, -1, 60), "w": rng.uniform(0.5, 2, 60)})
    d["y"] = 1 + d.x + (d.x > 0) + rng.normal(size=60)
    ddf = dd.from_pandas(d, npartitions=3)  # the first partition's x are all above 0
    with dask.config.set(scheduler="sync"):
        fit = tl.lm("y ~ x", ddf, weights="w")
        assert scanned == [0]
        _close(fit.coef(), tl.lm("y ~ x", d, weights="w").coef())
        scanned.clear()
        fit = tl.lm("y ~ I(x > 0) + x", ddf)
        assert sorted(scanned) == [0, 0, 1, 2]  # the first partition, then the whole scan pass
        _close(fit.coef(), tl.lm("y ~ I(x > 0) + x", d).coef())
        bad = dd.from_pandas(d.assign(w=np.where(d.index == 50, -1.0, d.w)), npartitions=3)
        with pytest.raises(DataError, match="partition 2"):
            tl.lm("y ~ x", bad, weights="w")  # found by the fit's pass, with the partition named


def test_a_comparison_with_a_missing_value_is_missing_in_the_partitions_too():
    import dask

    mt = tl.datasets.load("mtcars").reset_index(drop=True)
    mt.loc[[2, 7], "hp"] = np.nan
    with dask.config.set(scheduler="sync"):
        d = tl.lm("mpg ~ wt + I(hp > 120)", dd.from_pandas(mt, npartitions=3))
    m = tl.lm("mpg ~ wt + I(hp > 120)", mt)
    assert d.df_residual == m.df_residual == 27  # R's
    _close(d.coef(), m.coef())


@pytest.mark.parametrize("guess", [True, False])
def test_a_fit_and_its_summary_read_the_partitions_twice(guess, monkeypatch):
    """QR factors with a sample of rows, residual sums collecting the quantiles in windows the sample guessed
    (was five passes); a guess that fails (here: every window over its limit) costs one pass collecting the
    sketches' brackets, and the same quantiles."""
    import dask

    import torchlm.frame.dask_frame as dask_frame

    passes: list[str] = []
    real = dask_frame.compute
    monkeypatch.setattr(dask_frame, "compute", lambda tasks: passes.append("pass") or real(tasks))
    if not guess:
        import torchlm.sources.dask_windows as dask_windows

        monkeypatch.setattr(dask_windows, "WINDOW_SLACK", 0.0)
        monkeypatch.setattr(dask_windows, "WINDOW_MIN_KEYS", 0)
    rng = np.random.default_rng(8)
    d = pd.DataFrame({"x": rng.normal(size=4000), "z": rng.normal(size=4000)})
    d["y"] = 1 + d.x + rng.standard_t(3, size=4000)
    with dask.config.set(scheduler="sync"):
        fit = tl.lm("y ~ x + z", dd.from_pandas(d, npartitions=5))
        text = str(fit.summary())
    assert len(passes) == (2 if guess else 3)
    assert text.split("Residual standard")[0] == str(tl.lm("y ~ x + z", d).summary()).split("Residual standard")[0]


def test_partitions_read_by_pieces_give_the_same_numbers(monkeypatch):
    """A partition longer than PIECE_ROWS is reduced piece by piece: the same fit, summary and quantiles."""
    import dask

    import torchlm.frame.dask_compute as dask_compute

    monkeypatch.setattr(dask_compute, "PIECE_ROWS", 7)
    formula, kw = MODELS[0]
    m = tl.lm(formula, DF, **kw)
    with dask.config.set(scheduler="sync"):
        d = tl.lm(formula, _partitioned(3), **kw)
        _close(d.coef(), m.coef())
        for v in ("const", "HC0", "HC3"):
            _close(d.vcov(v), m.vcov(v))
        assert str(d.summary()) == str(m.summary())
        _close(d.residual_quantiles(), np.quantile(m.residuals("pearson"), [0, 0.25, 0.5, 0.75, 1]))
