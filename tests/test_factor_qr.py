"""The structured QR of a design with one many-level factor (solvers/factor_qr.py) is R's lm.fit of the dense design."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

from torchlm.solvers.factor_qr import FactorBlock, NotStructured, factor_qr, rest_positions
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


def _dense(X, blocks):
    """The dense design of X with the blocks' columns inserted at their positions."""
    p = X.shape[1] + sum(b.width for b in blocks)
    Z = torch.empty(X.shape[0], p, dtype=torch.float64)
    Z[:, rest_positions(p, blocks)] = X
    for b in blocks:
        Z[:, b.position:b.position + b.width] = b.columns()
    return Z


def _check_dense(X, y, w, blocks, intercept=0):
    fit, resid = factor_qr(X, y, w, blocks, intercept=intercept)
    Z = _dense(X, blocks)
    ref = qr_solve(linear_chunks(Z.numpy(), y.numpy(), None if w is None else w.numpy()), Z.shape[1], 1e-7,
                   torch.device("cpu"), torch.float64)
    assert fit.rank == ref.rank and fit.pivot == ref.pivot
    np.testing.assert_allclose(fit.coef, ref.coef, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fit.rss, ref.rss, rtol=1e-10)
    np.testing.assert_allclose(resid.numpy(), y.numpy() - Z.numpy() @ np.nan_to_num(ref.coef), atol=1e-10)
    Rinv = torch.linalg.solve_triangular(fit.R, torch.eye(fit.rank, dtype=torch.float64), upper=True)
    Rref = torch.linalg.solve_triangular(ref.R, torch.eye(ref.rank, dtype=torch.float64), upper=True)
    np.testing.assert_allclose((Rinv @ Rinv.T).numpy(), (Rref @ Rref.T).numpy(), rtol=1e-8, atol=1e-12)
    return fit


@pytest.mark.parametrize("weighted", [False, True])
def test_two_factors_equal_the_dense_qr(weighted):
    """Two factors share the constant: the second's basis drops a column; R's pattern (no NA here)."""
    g = torch.Generator().manual_seed(7)
    n, L1, L2 = 3000, 40, 7
    c1, c2 = torch.randint(0, L1, (n,), generator=g), torch.randint(0, L2, (n,), generator=g)
    X = torch.cat([torch.ones(n, 1, dtype=torch.float64), torch.randn(n, 2, dtype=torch.float64, generator=g)], 1)
    y = X[:, 1] + c1.double() / 10 - c2.double() / 5 + torch.randn(n, dtype=torch.float64, generator=g)
    w = torch.rand(n, dtype=torch.float64, generator=g) + 0.5 if weighted else None
    blocks = [FactorBlock(c1, _treatment(L1), 2), FactorBlock(c2, _treatment(L2), 2 + L1 - 1 + 1)]
    fit = _check_dense(X, y, w, blocks)
    assert fit.rank == 3 + L1 - 1 + L2 - 1


def test_nested_factor_and_slopes_give_r_aliasing():
    """A second factor nested in the first (R: its dummies NA), a slope per level with x constant in one level
    (R: that slope NA), and a numeric column constant within the first factor's levels (NA)."""
    g = torch.Generator().manual_seed(3)
    n, L1 = 2500, 20
    c1 = torch.randint(0, L1, (n,), generator=g)
    c2 = c1 // 5  # 4 levels, each a union of the first's levels
    x = torch.randn(n, dtype=torch.float64, generator=g)
    x[c1 == 4] = 2.5
    xc = (c1 % 3).double()  # constant within levels
    X = torch.stack([torch.ones(n, dtype=torch.float64), x, xc], 1)
    y = x + c1.double() / 10 + x * c1.double() / 20 + torch.randn(n, dtype=torch.float64, generator=g)
    blocks = [FactorBlock(c1, _treatment(L1), 2), FactorBlock(c2, _treatment(4), 2 + L1 - 1),
              FactorBlock(c1, _treatment(L1), 2 + L1 - 1 + 3 + 1, values=x)]
    fit = _check_dense(X, y, None, blocks)
    assert np.isnan(fit.coef).sum() == 3 + 1 + 1


def test_slopes_without_main_effect_and_without_intercept():
    g = torch.Generator().manual_seed(5)
    n, L = 1500, 12
    c = torch.randint(0, L, (n,), generator=g)
    x = torch.randn(n, dtype=torch.float64, generator=g)
    X = torch.stack([torch.ones(n, dtype=torch.float64), x], 1)
    y = 1 + x * (c.double() / 4) + torch.randn(n, dtype=torch.float64, generator=g)
    # y ~ x + C(f):x: the interaction's coding drops the first level (x is in the model)
    _check_dense(X, y, None, [FactorBlock(c, _treatment(L), 2, values=x)])
    # y ~ 0 + C(f) + C(f):x: full dummy codings
    eye = torch.eye(L, dtype=torch.float64)
    w = torch.rand(n, dtype=torch.float64, generator=g) + 0.2
    _check_dense(X[:, :0], y, w, [FactorBlock(c, eye, 0), FactorBlock(c, eye, L, values=x)], intercept=None)


def test_a_near_dependence_is_not_structured():
    g = torch.Generator().manual_seed(9)
    n, L = 400, 10
    c = torch.randint(0, L, (n,), generator=g)
    x = 1 + 1e-6 * torch.randn(n, dtype=torch.float64, generator=g)  # the slope columns nearly the dummies
    X = torch.ones(n, 1, dtype=torch.float64)
    y = torch.randn(n, dtype=torch.float64, generator=g)
    eye = torch.eye(L, dtype=torch.float64)
    with pytest.raises(NotStructured):
        factor_qr(X, y, None, [FactorBlock(c, eye[:, 1:], 1), FactorBlock(c, eye, L, values=x)], intercept=0)
