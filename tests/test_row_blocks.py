"""The row-block source: every stage reads the design block by block, and the answers do not depend on the blocks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
import torchlm.solvers.least_squares as tlfit
import torchlm.sources.row_blocks as rb
from torchlm.frame import build_design
from torchlm.sources import DesignSource, RowBlockSource, WorkingRows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 3000
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "g": rng.choice(list("abcd"), n),
                       "w": rng.uniform(0.5, 2, n), "t": rng.integers(1, 5, n).astype(float)})
    eta = -0.3 + 0.8 * df.x - 0.5 * df.z + (df.g == "b") * 0.4
    df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    df["k"] = rng.poisson(np.exp(0.2 + 0.3 * df.x) * df.t)
    df["w0"] = np.where(np.arange(n) % 17 == 0, 0.0, df.w)
    return df


def test_design_source_blocks_are_the_design(data):
    d = build_design("y ~ x + z + g", data, weights="w", offset="t")
    src = DesignSource(d)
    assert isinstance(src, RowBlockSource) and src.n_rows == len(data) and src.names == d.names
    blocks = list(src.blocks(rows=700, columns=[3, 0, 2], spare=1))
    assert [b.start for b in blocks] == [0, 700, 1400, 2100, 2800] and blocks[-1].stop == 3000
    X = torch.cat([b.X for b in blocks]).numpy()
    np.testing.assert_array_equal(X[:, :3], d.X[:, [3, 0, 2]])
    assert (X[:, 3] == 0).all() and all(b.X.stride(0) == 1 for b in blocks)  # column-major, spare zeroed
    np.testing.assert_array_equal(torch.cat([b.weights for b in blocks]).numpy(), d.weights)
    np.testing.assert_array_equal(torch.cat([b.offset for b in blocks]).numpy(), d.offset)
    np.testing.assert_array_equal(torch.cat([b.y for b in blocks]).numpy(), d.y)


def test_working_rows_read_masked_weighted_slices(data):
    d = build_design("y ~ x + g", data)
    mask = np.arange(len(data)) % 3 != 0
    sw = np.sqrt(data["w"].to_numpy())
    W = WorkingRows(d, [0, 2], sw, mask)
    full = (d.X[:, [0, 2]] * sw[:, None])[mask]
    assert W.shape == full.shape
    np.testing.assert_array_equal(np.asarray(W), full)
    np.testing.assert_array_equal(W[5:1234], full[5:1234])


def _fits(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logit": tl.glm("y ~ x + z + g", data, family="binomial", weights="w0"),
            "pois": tl.glm("k ~ x + g", data, family="poisson", offset=np.log(data["t"])),
            "probit": tl.glm("y ~ x + z", data, family=tl.families.Binomial(link="probit")),
            "lm": tl.lm("x ~ z + g", data, weights="w0"),
        }


def _everything(fit):
    out = {"coef": fit.coef().to_numpy(), "vcov": fit.vcov().to_numpy(), "HC3": fit.vcov("HC3").to_numpy(),
           "cl": fit.vcov(cluster=np.arange(len(fit.design.y)) % 40).to_numpy(),
           "hat": fit.hatvalues().to_numpy(), "dfbeta": fit.dfbeta().to_numpy(),
           "se_fit": fit.predict(se_fit=True)["se_fit"].to_numpy(),
           "drop1": tl.drop1(fit).iloc[:, :3].to_numpy(dtype=float)}
    if hasattr(fit, "family"):
        out["hessian"] = fit.hessian().to_numpy()
        out["anova"] = tl.anova(fit).iloc[:, :4].to_numpy(dtype=float)
        if fit.family.name == "poisson":
            out["profile"] = fit.confint(method="profile", parm="x").to_numpy()
    return out


def test_no_stage_assembles_the_design_and_blocks_do_not_change_answers(data, monkeypatch):
    big = _fits(data)
    results = {k: _everything(f) for k, f in big.items()}
    for f in big.values():
        assert f.design._X is None, "a stage assembled the whole design matrix"
    # the same jobs on blocks of 256 rows (12 of them) agree to rounding
    monkeypatch.setattr(rb, "BLOCK_ELEMENTS", 256 * 4)
    monkeypatch.setattr(tlfit, "CHUNK_ELEMENTS", 256 * 4)
    small = _fits(data)
    for k, f in small.items():
        got = _everything(f)
        for key, want in results[k].items():
            np.testing.assert_allclose(got[key], want, rtol=1e-9, atol=1e-12, err_msg=f"{k} {key}")
        assert f.iterations == big[k].iterations if hasattr(f, "iterations") else True
