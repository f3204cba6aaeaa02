"""tl.infer for large models: standard errors of a subset (the block of the whole inverse Hessian, or conditional on
the others), and matrix-free standard errors by conjugate gradients on Hessian-vector products, against the dense
Hessian's on small models; negative curvature, flat directions and CG non-convergence."""

import warnings

import numpy as np
import pytest
import torch
from _support import fit_lbfgs
from test_modules import Product  # a * b * x: a saddle at a = b = 0
from torch import nn
from torch.func import functional_call

import torchlm as tl
from torchlm.errors import ModelInputError, NotAtMinimumError, TorchlmWarning
from torchlm.results.estimates import SingularHessianWarning


def _flat(net):
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]
    return names, shapes, sizes, torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def fit_to_optimum(net, X, Y, loss):
    """LBFGS, then Newton steps on the exact Hessian until the gradient is at rounding level."""
    fit_lbfgs(net, loss, X, Y, tolerance_grad=1e-12)
    names, shapes, sizes, th = _flat(net)

    def f(t):
        ps = dict(zip(names, (a.reshape(s) for a, s in zip(torch.split(t, sizes), shapes))))
        return loss(functional_call(net, ps, (X,)), Y)

    for _ in range(20):
        g = torch.autograd.functional.jacobian(f, th)
        if float(g.abs().max()) < 1e-11:
            break
        th = th - torch.linalg.solve(torch.autograd.functional.hessian(f, th), g)
    assert float(g.abs().max()) < 1e-11
    with torch.no_grad():
        for p, a in zip(net.parameters(), torch.split(th, sizes)):
            p.copy_(a.reshape(p.shape))
    return net


def small_mlp():
    """A tanh MLP 6 -> 12 -> 3 (123 parameters) fitted by least squares to its own outputs plus noise."""
    torch.manual_seed(1)
    n, d, h, o = 400, 6, 12, 3
    X = torch.randn(n, d, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, o)).double()
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
        Y = net(X) + 0.1 * torch.randn(n, o, dtype=torch.float64)
    fit_to_optimum(net, X, Y, lambda out, y: ((out - y) ** 2).sum())
    return net, X, Y


@pytest.fixture(scope="module")
def mlp():
    net, X, Y = small_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense = tl.infer(net, nn.MSELoss(), X, Y)
    return net, X, Y, dense


LAST = ["2.weight[0,0]", "2.weight[2,11]", "2.bias[1]"]


def test_matrix_free_equals_dense_for_every_parameter(mlp):
    net, X, Y, dense = mlp
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf = tl.infer(net, nn.MSELoss(), X, Y, hessian="matrix_free")
    assert mf.names == dense.names and len(mf.names) == 123
    np.testing.assert_array_equal(mf.coef().to_numpy(), dense.coef().to_numpy())
    np.testing.assert_allclose(mf.std_errors().to_numpy(), dense.std_errors().to_numpy(), rtol=1e-8, atol=0)
    V, W = mf.vcov().to_numpy(), dense.vcov().to_numpy()
    assert np.abs(V - W).max() <= 1e-8 * np.abs(W).max()
    assert mf.df_residual == dense.df_residual and mf.sigma == pytest.approx(dense.sigma, rel=1e-12)
    assert mf.loglik() == pytest.approx(dense.loglik(), rel=1e-12)
    assert mf.at_optimum and mf.converged
    np.testing.assert_allclose(mf.newton_step.to_numpy(), dense.newton_step.to_numpy(), rtol=1e-4, atol=1e-12)
    assert "matrix-free, conjugate gradients" in str(mf.summary())
    assert mf.matrix_free is not None and dense.matrix_free is None
    assert mf.matrix_free.info["lanczos_min"] > 0


def test_a_subset_is_the_block_of_the_whole_inverse(mlp):
    net, X, Y, dense = mlp
    W = dense.vcov()
    # the last layer, dense Hessian (all 123 parameters estimated): exactly the block of the dense inverse
    last = tl.infer(net, nn.MSELoss(), X, Y, params=["2"])
    assert last.names == [n for n in dense.names if n.startswith("2.")] and len(last.names) == 39
    np.testing.assert_allclose(last.vcov().to_numpy(), W.loc[last.names, last.names].to_numpy(), rtol=1e-13)
    assert last.df_residual == dense.df_residual and last.df_loglik == dense.df_loglik
    assert len(last.fixed) == 0 and "Fixed:" not in str(last.summary())
    # a module prefix and element labels, matrix-free: 4 CG solves
    some = tl.infer(net, nn.MSELoss(), X, Y, params=["2.bias", "0.weight[3,1]"], hessian="matrix_free")
    assert some.names == ["0.weight[3,1]", "2.bias[0]", "2.bias[1]", "2.bias[2]"]
    np.testing.assert_allclose(some.vcov().to_numpy(), W.loc[some.names, some.names].to_numpy(), rtol=1e-8)
    # conditional on the others (known constants): the inverse of the subset's own Hessian, which is smaller
    fixed = tl.infer(net, nn.MSELoss(), X, Y, params=["2"], others="fixed")
    Hs = dense.hessian().loc[last.names, last.names].to_numpy()
    # the residual df and sigma count the 39 estimated parameters only
    scale = fixed.scale
    np.testing.assert_allclose(fixed.vcov().to_numpy(), scale * np.linalg.inv(Hs), rtol=1e-9)
    assert fixed.df_residual == 3 * 400 - 39
    assert (fixed.std_errors() < last.std_errors() * np.sqrt(scale / last.scale)).all()


def test_robust_covariance_and_delta_of_a_subset(mlp):
    net, X, Y, dense = mlp
    names = ["2.weight[1,4]", "2.bias[0]"]
    sub = tl.infer(net, nn.MSELoss(), X, Y, params=names)
    mf = tl.infer(net, nn.MSELoss(), X, Y, params=names, hessian="matrix_free")
    for kind in ("HC0", "HC1"):
        ref = dense.vcov(kind).loc[names, names].to_numpy()
        np.testing.assert_allclose(sub.vcov(kind).to_numpy(), ref, rtol=1e-12)
        np.testing.assert_allclose(mf.vcov(kind).to_numpy(), ref, rtol=1e-7)
    fn = lambda p: p["2.weight"][1, 4] / p["2.bias"][0]  # noqa: E731
    ref = dense.delta(fn)
    np.testing.assert_allclose(sub.delta(fn).to_numpy(), ref.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(mf.delta(fn).to_numpy(), ref.to_numpy(), rtol=1e-8)


def test_columns_and_linear_combinations(mlp):
    net, X, Y, dense = mlp
    W = dense.vcov()
    mf = tl.infer(net, nn.MSELoss(), X, Y, params="2.bias[2]", hessian="matrix_free").matrix_free
    cols = mf.columns(LAST)
    np.testing.assert_allclose(cols.to_numpy(), W.loc[:, LAST].to_numpy(), rtol=1e-7,
                               atol=1e-9 * np.abs(W.to_numpy()).max())
    c = {"0.weight[0,0]": 1.0, "2.bias[0]": -2.0, "2.weight[1,1]": 0.5}
    v = np.zeros(len(dense.names))
    for name, coef in c.items():
        v[dense.names.index(name)] = coef
    got = mf.covariance(c)
    assert got.shape == (1, 1)
    assert float(got.iloc[0, 0]) == pytest.approx(v @ W.to_numpy() @ v, rel=1e-8)
    C = np.stack([v, np.ones(len(v))], axis=1)
    np.testing.assert_allclose(mf.covariance(C).to_numpy(), C.T @ W.to_numpy() @ C, rtol=1e-8)
    with pytest.raises(ModelInputError, match="not an element label"):
        mf.covariance({"nope": 1.0})
    with pytest.raises(ModelInputError, match="123 rows"):
        mf.covariance(np.ones(5))


def test_auto_switches_to_matrix_free_past_max_params(mlp):
    net, X, Y, dense = mlp
    res = tl.infer(net, nn.MSELoss(), X, Y, params=LAST, max_params=100)
    assert res.matrix_free is not None and "matrix-free" in res.covariance_note
    np.testing.assert_allclose(res.std_errors().to_numpy(), dense.std_errors()[LAST].to_numpy(), rtol=1e-8)
    with pytest.raises(ModelInputError, match=r"123 free parameters.*123 conjugate-gradient solves.*params=\[\.\.\.\]"):
        tl.infer(net, nn.MSELoss(), X, Y, max_params=100)
    with pytest.raises(ModelInputError, match=r"hessian='matrix_free' needs no such matrix"):
        tl.infer(net, nn.MSELoss(), X, Y, params=LAST, max_params=100, hessian="dense")


def test_cg_that_does_not_converge_warns_and_underestimates(mlp):
    net, X, Y, dense = mlp
    with pytest.warns(TorchlmWarning, match=r"did not converge in 3 iterations for 2\.weight\[0,0\].*too small"):
        res = tl.infer(net, nn.MSELoss(), X, Y, params=LAST, hessian="matrix_free", cg_control={"maxiter": 3})
    # CG's b'x grows towards b'H^-1 b: an early stop gives variances below the exact ones
    assert (res.std_errors() < dense.std_errors()[LAST]).all()


def test_negative_curvature_is_an_error():
    torch.manual_seed(0)
    x = torch.randn(50, dtype=torch.float64)
    y = 2 * x + torch.randn(50, dtype=torch.float64)
    # a = b = 0 has gradient 0 and curvature (0, c; c, 0): a saddle, found by the Lanczos check
    with pytest.raises(NotAtMinimumError, match=r"negative curvature .*found by Lanczos.*saddle point"):
        tl.infer(Product(), nn.MSELoss(), x, y, hessian="matrix_free")
    # without it, CG's first direction has no curvature: a flat direction, no standard errors
    with pytest.warns(SingularHessianWarning, match="not identifiable"):
        res = tl.infer(Product(), nn.MSELoss(), x, y, hessian="matrix_free", cg_control={"lanczos": 0})
    assert res.std_errors().isna().all()


def test_an_untrained_network_is_not_at_a_minimum(mlp):
    _, X, Y, _ = mlp
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    with pytest.raises(NotAtMinimumError, match="negative curvature"):
        tl.infer(net, nn.MSELoss(), X, Y, params=LAST, hessian="matrix_free")


class TwoIntercepts(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        self.slope = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))

    def forward(self, x):
        return self.a + self.b + self.slope * x


def test_flat_directions_give_nan_for_the_parameters_along_them():
    torch.manual_seed(0)
    x = torch.randn(80, dtype=torch.float64)
    y = 1 + 0.5 * x + torch.randn(80, dtype=torch.float64)
    m = TwoIntercepts()
    with torch.no_grad():
        X = torch.stack([torch.ones_like(x), x], 1)
        beta = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
        m.a.fill_(float(beta[0]) - 2.0)
        m.slope.fill_(float(beta[1]))
    with pytest.warns(SingularHessianWarning):
        dense = tl.infer(m, nn.MSELoss(), x, y)
    with pytest.warns(SingularHessianWarning, match="not identifiable"):
        mf = tl.infer(m, nn.MSELoss(), x, y, hessian="matrix_free", cg_control={"lanczos": 0})
    assert mf.std_errors()[["a", "b"]].isna().all()
    # the slope is estimable: its column of H^-1 lies in the range of H. Without the Hessian's rank the
    # matrix-free residual df count all 3 parameters (n - 3, the dense one n - 2): compare the unscaled SEs
    assert (dense.df_residual, mf.df_residual) == (78, 77)
    assert mf.std_errors()["slope"] / mf.sigma == pytest.approx(dense.std_errors()["slope"] / dense.sigma, rel=1e-8)


def test_approximate_standard_errors_of_every_parameter():
    """Hutchinson's diag(H^-1) on a logistic regression: unbiased, within its stated Monte Carlo error."""
    torch.manual_seed(5)
    n, d = 3000, 40
    X = torch.randn(n, d, dtype=torch.float64)
    y = (torch.rand(n, 1, dtype=torch.float64) < torch.sigmoid(X[:, :5].sum(1, keepdim=True) / 2)).double()
    net = nn.Linear(d, 1).double()
    fit_to_optimum(net, X, y, nn.BCEWithLogitsLoss(reduction="sum"))
    dense = tl.infer(net, nn.BCEWithLogitsLoss(), X, y)
    res = tl.infer(net, nn.BCEWithLogitsLoss(), X, y, params="bias", hessian="matrix_free")
    approx = res.matrix_free.approximate_std_errors(probes=200, seed=1)
    assert list(approx.index) == dense.names
    exact = dense.std_errors().to_numpy() ** 2
    z = (approx["Variance (approx.)"].to_numpy() - exact) / approx["MC error of the variance"].to_numpy()
    assert np.mean(np.abs(z) < 3) >= 0.95 and abs(np.mean(z)) < 0.5
    rel = np.abs(approx["Std. Error (approx.)"].to_numpy() / np.sqrt(exact) - 1)
    assert rel.max() < 0.1 and np.median(rel) > 1e-3  # an approximation: close, not exact
    with pytest.raises(ModelInputError, match="probes must be a whole number >= 2"):
        res.matrix_free.approximate_std_errors(probes=1)


def test_a_model_holding_its_data(mlp):
    torch.manual_seed(0)
    x = torch.randn(60, 1, dtype=torch.float64)
    y = 3 + 2 * x + torch.randn(60, 1, dtype=torch.float64)

    class Held(nn.Module):
        def __init__(self):
            super().__init__()
            self.x = x
            self.lin = nn.Linear(1, 1).double()

        def forward(self):
            return self.lin(self.x)

    m = Held()
    fit_to_optimum(m.lin, x, y, lambda o, t: ((o - t) ** 2).sum())
    dense = tl.infer(m, nn.MSELoss(), target=y)
    mf = tl.infer(m, nn.MSELoss(), target=y, params="lin.bias", hessian="matrix_free")
    assert mf.std_errors()["lin.bias"] == pytest.approx(dense.std_errors()["lin.bias"], rel=1e-10)
    assert mf.vcov("HC0").iloc[0, 0] == pytest.approx(dense.vcov("HC0").loc["lin.bias", "lin.bias"], rel=1e-10)


@pytest.mark.parametrize("option, value, words", [
    ("hessian", "sparse", "hessian must be 'auto', 'dense' or 'matrix_free'"),
    ("others", "free", "others must be 'estimated'"),
    ("cg_control", {"tolerance": 1e-6}, "cg_control has no key 'tolerance'"),
    ("cg_control", {"tol": 0}, r"cg_control\['tol'\] must be a number in \(0, 1\)"),
    ("cg_control", {"maxiter": 2.5}, r"cg_control\['maxiter'\] must be a whole number"),
    ("cg_control", [1], "cg_control must be a dict"),
    ("params", [], "params must be parameter names"),
    ("params", ["2.weight[9,9]"], "'2.weight\\[9,9\\]' is not a parameter"),
])
def test_bad_options(mlp, option, value, words):
    net, X, Y, _ = mlp
    with pytest.raises(ModelInputError, match=words):
        tl.infer(net, nn.MSELoss(), X, Y, **{option: value})


def test_element_labels_need_whole_parameters_when_the_others_are_fixed(mlp):
    net, X, Y, _ = mlp
    with pytest.raises(ModelInputError, match="not a parameter"):
        tl.infer(net, nn.MSELoss(), X, Y, params=["2.bias[0]"], others="fixed")
