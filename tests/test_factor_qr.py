"""The structured QR of a design with one many-level factor (solvers/factor_qr.py) is R's lm.fit of the dense design."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

from torchlm.solvers.factor_qr import FactorBlock, factor_qr
from torchlm.solvers.least_squares import linear_chunks, qr_solve

HERE = pathlib.Path(__file__).parent / "fixtures" / "fixest"
R = json.loads((HERE / "fixest.json").read_text())
PANEL = pd.read_csv(HERE / "panel.csv")
DS = PANEL[PANEL.firm <= 25].reset_index(drop=True)  # the rows of R's fits (no singleton firms)


def _treatment(L):
    return torch.eye(L, dtype=torch.float64)[:, 1:]


def _panel_fit(before, after, weights=None):
    codes = torch.as_tensor(pd.factorize(DS.firm, sort=True)[0])
    cols = [np.ones(len(DS))] + [DS[c].to_numpy(float) for c in before + after]
    X = torch.as_tensor(np.column_stack(cols))
    y = torch.as_tensor(DS.y.to_numpy(float))
    w = None if weights is None else torch.as_tensor(DS[weights].to_numpy(float))
    return factor_qr(X, y, w, FactorBlock(codes, _treatment(25), 1 + len(before)), intercept=0)


@pytest.mark.parametrize("case, before, after, weights", [
    ("lm_factor_mid", ["x1"], ["x2"], "w"),
    ("lm_factor_alias_before", ["xc"], ["x1"], None),   # R aliases the last dummy, not xc
    ("lm_factor_alias_after", ["x1"], ["xc"], None),    # R aliases xc
])
def test_equals_r_lm_with_the_factor(case, before, after, weights):
    ref = R[case]
    fit, resid = _panel_fit(before, after, weights)
    want = np.array([np.nan if v is None else v for v in ref["coef"]])
    assert np.array_equal(np.isnan(fit.coef), np.isnan(want))
    np.testing.assert_allclose(fit.coef, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.rss, ref["rss"], rtol=1e-10)
    np.testing.assert_allclose(np.abs(fit.effects), ref["effects"], rtol=1e-8, atol=1e-10)
    # the covariance from R: sigma^2 (R'R)^-1 over the estimable coefficients, in formula order
    est = sorted(fit.pivot[: fit.rank])
    Rinv = torch.linalg.solve_triangular(fit.R, torch.eye(fit.rank, dtype=torch.float64), upper=True)
    order = np.argsort(fit.pivot[: fit.rank])
    C = (Rinv @ Rinv.T).numpy()[np.ix_(order, order)]
    sigma2 = fit.rss / (len(DS) - fit.rank)  # the weighted rss with weights, as R's summary.lm
    se = np.full(len(want), np.nan)
    se[est] = np.sqrt(np.diag(C) * sigma2)
    np.testing.assert_allclose(se, np.array([np.nan if v is None else v for v in ref["se"]]), rtol=1e-9)


@pytest.mark.parametrize("position", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_equals_the_dense_qr(position, weighted):
    g = torch.Generator().manual_seed(position)
    n, L = 2000, 30
    codes = torch.randint(0, L, (n,), generator=g)
    X = torch.cat([torch.ones(n, 1, dtype=torch.float64), torch.randn(n, 2, dtype=torch.float64, generator=g)], 1)
    y = X[:, 1] + codes.double() / 10 + torch.randn(n, dtype=torch.float64, generator=g)
    w = torch.rand(n, dtype=torch.float64, generator=g) + 0.5 if weighted else None
    blk = FactorBlock(codes, _treatment(L), position)
    fit, resid = factor_qr(X, y, w, blk, intercept=0)
    D = torch.nn.functional.one_hot(codes, L).double() @ blk.contrasts
    Z = torch.cat([X[:, :position], D, X[:, position:]], 1)
    ref = qr_solve(linear_chunks(Z.numpy(), y.numpy(), None if w is None else w.numpy()), Z.shape[1], 1e-7,
                   torch.device("cpu"), torch.float64)
    np.testing.assert_allclose(fit.coef, ref.coef, rtol=1e-11, atol=1e-12)
    assert fit.pivot == ref.pivot and fit.rank == ref.rank
    np.testing.assert_allclose(resid.numpy(), y.numpy() - Z.numpy() @ ref.coef, atol=1e-11)
