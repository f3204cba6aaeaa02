"""Profile-likelihood intervals of a Dask GLM (issue 11): MASS's grid walk, each refit by passes over the partitions.

On the conftest's LocalCluster (two worker processes). The intervals are compared with the in-memory
confint(method="profile") (tested equal to R's MASS), for the models of test_dask_glm: an aliased column, zero
and missing weights, NA rows, an offset, uneven partitions.
"""

from __future__ import annotations

import numpy as np
import pytest

import torchlm as tl
from tests.test_dask_glm import DF, MODELS, _close, _partitioned
from torchlm.sources import dask_batched_passes

CASES = [(3, "binomial"), (7, "poisson-offset"), (7, "gamma-log"), (1, "quasipoisson")]


@pytest.mark.parametrize("k, model", CASES, ids=[f"{m}-{k}" for k, m in CASES])
def test_profile_intervals_equal_in_memory(client, k, model):
    formula, kw = MODELS[model]
    m, d = tl.glm(formula, DF, **kw), tl.glm(formula, _partitioned(k), **kw)
    want = m.confint(method="profile")
    got = d.confint(method="profile")
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    assert np.isnan(want.to_numpy()).any() == ("x2" in formula)  # the aliased column: NaN, as R
    _close(got, want)
    if k == 1:  # a level and a subset (its walks only)
        _close(d.confint(level=0.9, parm=["x"], method="profile"), m.confint(level=0.9, parm=["x"], method="profile"))


def test_the_walks_share_their_passes(client, monkeypatch):
    rounds = []
    serve = dask_batched_passes.PassBatcher._serve

    def counted(self, batch):
        rounds.append(len(batch))
        return serve(self, batch)

    monkeypatch.setattr(dask_batched_passes.PassBatcher, "_serve", counted)
    formula, kw = MODELS["poisson-offset"]
    d = tl.glm(formula, _partitioned(3), **kw)
    ci = d.confint(method="profile")
    _close(ci, tl.glm(formula, DF, **kw).confint(method="profile"))
    walks = 2 * len(d.estimable)
    assert rounds[0] == walks  # every walk's first pass in the first map over the partitions
    assert sum(rounds) > 4 * len(rounds)  # the refits' passes: several per map, not one map each


def test_profile_options_are_checked_before_any_pass(client):
    d = tl.glm("yb ~ x", _partitioned(3), family="binomial")
    with pytest.raises(tl.errors.OptionError, match="vcov= applies to method='wald' only"):
        d.confint(method="profile", vcov="HC0")
    with pytest.raises(tl.errors.OptionError, match="unknown coefficient"):
        d.confint(parm=["nope"], method="profile")
