"""tl.infer: standard errors for a user's own nn.Module, against R, statsmodels and tl.glm."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from torch import nn

import torchlm as tl
from torchlm.errors import ModelInputError
from torchlm.results.estimates import NotAtMinimumError, OptimumWarning, SingularHessianWarning


# --- the StackOverflow question's model, verbatim in substance ---------------------------------
class OLS_pytorch(nn.Module):
    def __init__(self, X, Y):
        super().__init__()
        self.X = X
        self.Y = Y
        self.beta = nn.Parameter(torch.ones(X.shape[1], 1, requires_grad=True))
        self.intercept = nn.Parameter(torch.ones(1, requires_grad=True))
        self.loss = nn.MSELoss()

    def forward(self):
        return self.X @ self.beta + self.intercept

    def fit(self, lr=0.01, epochs=1000):
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = self.loss(self.forward(), self.Y)
            loss.backward()
            optimizer.step()
        return self


def seed_xy():
    torch.manual_seed(42)
    X = torch.randn(100, 1)
    Y = 2 * X + 3 + torch.randn(100, 1)
    return X, Y


@pytest.fixture(scope="module")
def seed_model():
    X, Y = seed_xy()
    return OLS_pytorch(X, Y).fit()


def test_seed_model_gives_r_lm(seed_model):
    """R: lm(Y ~ X) on the question's data (the float32 draws as doubles), as printed in the question."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Adam's 1000 epochs are within 1e-3 SE of the optimum: no warning
        res = tl.infer(seed_model, nn.MSELoss(), target=seed_model.Y)
    assert res.names == ["beta", "intercept"]
    b, se = res.coef(), res.std_errors()
    # Adam in float32 converged to about 5e-6 absolute; R's estimates 3.035674, 2.011811
    assert b["intercept"] == pytest.approx(3.035674, abs=1e-5)
    assert b["beta"] == pytest.approx(2.011811, abs=1e-5)
    assert se["intercept"] == pytest.approx(0.08940, abs=5e-6)
    assert se["beta"] == pytest.approx(0.09092, abs=5e-6)
    V = res.vcov()
    # R's vcov(ols) from the question
    assert V.loc["intercept", "intercept"] == pytest.approx(0.0079923921, rel=1e-4)
    assert V.loc["beta", "beta"] == pytest.approx(0.0082671053, rel=1e-4)
    assert V.loc["beta", "intercept"] == pytest.approx(-0.0004940884, rel=1e-3)
    assert res.df_residual == 98 and res.statistic == "t" and res.at_optimum
    assert res.sigma == pytest.approx(0.8923, abs=5e-5)
    text = str(res.summary())
    # R's printed rows: (Intercept) 3.03567 0.08940 33.96 <2e-16 ***, X 2.01181 0.09092 22.13 <2e-16 ***
    assert "intercept  3.03567    0.08940   33.96   <2e-16 ***" in text
    assert "beta       2.01181    0.09092   22.13   <2e-16 ***" in text
    assert "Residual standard error: 0.8923 on 98 degrees of freedom" in text
    # the model itself is untouched: still float32, still training mode
    assert seed_model.beta.dtype == torch.float32 and seed_model.X.dtype == torch.float32 and seed_model.training


def seed_frame():
    X, Y = seed_xy()
    return X[:, 0].double().numpy(), Y[:, 0].double().numpy()


def test_mean_and_sum_reductions_give_the_same_errors(seed_model):
    ref = tl.infer(seed_model, nn.MSELoss(), target=seed_model.Y)
    x, y = seed_frame()
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    variants = [
        tl.infer(seed_model, nn.MSELoss(reduction="sum"), target=seed_model.Y),
        tl.infer(seed_model, lambda o, t: ((o - t) ** 2).mean(), target=seed_model.Y, dispersion="estimate"),
        tl.infer(seed_model, lambda o, t: 0.5 * ((o - t) ** 2).sum(), target=seed_model.Y, dispersion="estimate"),
        tl.infer(seed_model, lambda o, t: ((o - t) ** 2)[:, 0], target=seed_model.Y, dispersion="estimate"),
    ]
    for v in variants:
        np.testing.assert_allclose(v.std_errors().to_numpy(), ref.std_errors().to_numpy(), rtol=1e-10)
    # and they are statsmodels' OLS standard errors (at Adam's point, so to Adam's accuracy)
    np.testing.assert_allclose(ref.std_errors()[["intercept", "beta"]], ols.bse, rtol=1e-5)
    # a squared-error loss with a known sigma^2 = 1 gives sigma^2 (X'X)^-1 and z tests
    known = tl.infer(seed_model, nn.MSELoss(), target=seed_model.Y, dispersion=1.0)
    np.testing.assert_allclose(known.std_errors()[["intercept", "beta"]] ** 2,
                               np.diag(ols.normalized_cov_params), rtol=1e-5)
    assert known.statistic == "z"


def exact_seed_model():
    """The seed model in float64 at statsmodels' OLS solution (a fit at the exact optimum)."""
    X, Y = seed_xy()
    m = OLS_pytorch(X.double(), Y.double()).double()
    x, y = seed_frame()
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    with torch.no_grad():
        m.intercept.fill_(ols.params[0])
        m.beta.fill_(ols.params[1])
    return m, ols


def test_sandwich_and_cluster_match_statsmodels():
    m, ols = exact_seed_model()
    res = tl.infer(m, nn.MSELoss(), target=m.Y)
    order = ["intercept", "beta"]
    for t in ("HC0", "HC1"):
        ref = sm.OLS(ols.model.endog, ols.model.exog).fit(cov_type=t)
        np.testing.assert_allclose(res.vcov(t).loc[order, order], ref.cov_params(), rtol=1e-9)
    groups = np.arange(100) % 13
    ref = sm.OLS(ols.model.endog, ols.model.exog).fit(cov_type="cluster", cov_kwds={"groups": groups})
    # statsmodels' cluster correction G/(G-1) (n-1)/(n-k) is R's vcovCL type HC1 (its default for lm)
    np.testing.assert_allclose(res.vcov(cluster=groups).loc[order, order], ref.cov_params(), rtol=1e-9)
    np.testing.assert_allclose(res.vcov("HC1", cluster=[f"g{g}" for g in groups]).loc[order, order],
                               ref.cov_params(), rtol=1e-9)
    text = str(res.summary(cluster=groups))
    assert "clustered (HC1, 13 clusters)" in text
    with pytest.raises(ValueError, match="HC2/HC3 need hat values"):
        res.vcov("HC3")


# --- GLM-family models written as modules ------------------------------------------------------
class Logistic(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.linear = nn.Linear(p, 1)

    def forward(self, x):
        return self.linear(x)


def glm_data(seed=3, n=400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    eta = -0.4 + X @ np.array([0.8, -0.5, 0.3])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    counts = rng.poisson(np.exp(0.2 + X @ np.array([0.3, -0.2, 0.1])))
    return X, y, counts


def train(model, loss, X, y, steps=100):
    """Fit in float64 with L-BFGS (to the optimum, so the comparison tests the standard errors)."""
    model.double()
    Xt, yt = torch.tensor(X), torch.tensor(y)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=steps, tolerance_grad=1e-13, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss(model(Xt), yt)
        value.backward()
        return value

    for _ in range(3):
        opt.step(closure)
    return model, Xt, yt


LOGIT_NAMES = ["linear.weight[0,0]", "linear.weight[0,1]", "linear.weight[0,2]", "linear.bias"]


def has_tl_glm() -> bool:
    return hasattr(tl, "glm")


def test_logistic_module_matches_binomial_glm():
    X, y, _ = glm_data()
    model, Xt, yt = train(Logistic(3), nn.BCEWithLogitsLoss(), X, y[:, None])
    res = tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt)
    assert res.names == LOGIT_NAMES
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(tol=1e-12)
    order = LOGIT_NAMES[3:] + LOGIT_NAMES[:3]
    np.testing.assert_allclose(res.coef()[order], ref.params, rtol=1e-7)
    np.testing.assert_allclose(res.std_errors()[order], ref.bse, rtol=1e-7)
    assert res.statistic == "z" and res.dispersion == 1.0
    assert res.loglik() == pytest.approx(ref.llf, rel=1e-10)
    assert res.aic() == pytest.approx(ref.aic, rel=1e-10)
    summ = res.summary().coefficients
    np.testing.assert_allclose(summ["Pr(>|z|)"][order], ref.pvalues, rtol=1e-5)
    hc0 = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(tol=1e-12, cov_type="HC0")
    np.testing.assert_allclose(res.vcov("HC0").loc[order, order], hc0.cov_params(), rtol=1e-6)
    # R's vcovHC(type = "HC1") is HC0 times n / (n - k) for a glm too (statsmodels' GLM HC1 omits it)
    np.testing.assert_allclose(res.vcov("HC1").loc[order, order], hc0.cov_params() * 400 / 396, rtol=1e-6)
    groups = np.arange(400) // 10
    cl = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(
        tol=1e-12, cov_type="cluster", cov_kwds={"groups": groups})
    # statsmodels' G/(G-1) (n-1)/(n-k) is R's vcovCL(type = "HC1")
    np.testing.assert_allclose(res.vcov("HC1", cluster=groups).loc[order, order], cl.cov_params(), rtol=1e-6)
    # quasi-binomial: Pearson dispersion with n - p df, as R's quasibinomial and statsmodels' scale="X2"
    quasi = tl.infer(model, nn.BCEWithLogitsLoss(reduction="sum"), Xt, yt, dispersion="estimate")
    refq = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(tol=1e-12, scale="X2")
    np.testing.assert_allclose(quasi.std_errors()[order], refq.bse, rtol=1e-7)
    assert quasi.dispersion == pytest.approx(refq.scale, rel=1e-9) and quasi.statistic == "t"
    if has_tl_glm():
        d = pd.DataFrame(X, columns=["x1", "x2", "x3"]).assign(y=y)
        g = tl.glm("y ~ x1 + x2 + x3", data=d, family="binomial", exact=True)
        np.testing.assert_allclose(res.coef()[order], g.coef(), rtol=1e-7)
        np.testing.assert_allclose(res.std_errors()[order], g.std_errors(), rtol=1e-7)


def test_bce_reductions_agree_and_chunks_do_not_matter():
    X, y, _ = glm_data()
    model, Xt, yt = train(Logistic(3), nn.BCEWithLogitsLoss(), X, y[:, None])
    a = tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt)
    b = tl.infer(model, nn.BCEWithLogitsLoss(reduction="sum"), Xt, yt, chunk_size=7)
    np.testing.assert_allclose(b.hessian(), a.hessian(), rtol=1e-12)
    np.testing.assert_allclose(b.std_errors(), a.std_errors(), rtol=1e-12)
    np.testing.assert_allclose(b.vcov("HC0"), a.vcov("HC0"), rtol=1e-12)


class PoissonReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return x @ self.w + self.b


def test_poisson_module_matches_glm_and_quasipoisson():
    X, _, counts = glm_data()
    model, Xt, yt = train(PoissonReg(), nn.PoissonNLLLoss(), X, counts.astype(float))
    res = tl.infer(model, nn.PoissonNLLLoss(), Xt, yt)
    assert res.names == ["w[0]", "w[1]", "w[2]", "b"]
    ref = sm.GLM(counts, sm.add_constant(X), family=sm.families.Poisson()).fit(tol=1e-12)
    order = ["b", "w[0]", "w[1]", "w[2]"]
    np.testing.assert_allclose(res.coef()[order], ref.params, rtol=1e-7)
    np.testing.assert_allclose(res.std_errors()[order], ref.bse, rtol=1e-7)
    # PoissonNLLLoss leaves out log(y!); the log-likelihood puts it back, as R's logLik
    assert res.loglik() == pytest.approx(ref.llf, rel=1e-10)
    quasi = tl.infer(model, nn.PoissonNLLLoss(), Xt, yt, dispersion="estimate")
    refq = sm.GLM(counts, sm.add_constant(X), family=sm.families.Poisson()).fit(tol=1e-12, scale="X2")
    np.testing.assert_allclose(quasi.std_errors()[order], refq.bse, rtol=1e-7)
    assert "quasipoisson family taken to be" in str(quasi.summary())
    with pytest.raises(ValueError, match="quasi"):
        quasi.aic()
    if has_tl_glm():
        d = pd.DataFrame(X, columns=["x1", "x2", "x3"]).assign(y=counts)
        g = tl.glm("y ~ x1 + x2 + x3", data=d, family="poisson", exact=True)
        np.testing.assert_allclose(res.std_errors()[order], g.std_errors(), rtol=1e-7)


# --- what the checks catch ---------------------------------------------------------------------
def test_fit_not_at_optimum_warns():
    X, Y = seed_xy()
    model = OLS_pytorch(X, Y).fit(epochs=60)
    with pytest.warns(OptimumWarning, match="not at an optimum"):
        res = tl.infer(model, nn.MSELoss(), target=model.Y)
    assert not res.at_optimum and res.newton_step.max() > 1
    assert "Warning: not at an optimum" in str(res.summary())


class TwoIntercepts(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.slope = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.a + self.b + self.slope * x


def test_non_identifiable_parameters_are_named():
    x, y = seed_frame()
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    m = TwoIntercepts()
    with torch.no_grad():
        m.a.fill_(ols.params[0] / 2)
        m.b.fill_(ols.params[0] / 2)
        m.slope.fill_(ols.params[1])
    with pytest.warns(SingularHessianWarning, match=r"a, b are not identifiable .*flat along a - b"):
        res = tl.infer(m, nn.MSELoss(), torch.tensor(x), torch.tensor(y))
    se = res.std_errors()
    assert np.isnan(se["a"]) and np.isnan(se["b"])
    # the slope is estimable: OLS's SE, with n - rank = 98 residual df
    assert se["slope"] == pytest.approx(ols.bse[1], rel=1e-9)
    assert res.df_residual == 98 and list(res.vcov().index) == ["slope"]
    assert "(2 not defined because of singularities)" in str(res.summary())


class Product(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.a * self.b * x


def test_saddle_point_is_an_error_naming_the_parameters():
    x, y = seed_frame()
    # at a = b = 0 the gradient of the squared error is 0, but it is a saddle: curvature (0, c; c, 0)
    with pytest.raises(NotAtMinimumError, match=r"negative curvature .* involving a, b"):
        tl.infer(Product(), nn.MSELoss(), torch.tensor(x), torch.tensor(y))


class FrozenIntercept(nn.Module):
    def __init__(self):
        super().__init__()
        self.slope = nn.Parameter(torch.zeros(1, dtype=torch.float64))
        self.intercept = nn.Parameter(torch.tensor([3.0], dtype=torch.float64), requires_grad=False)
        self.register_buffer("scale", torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x):
        return self.intercept + self.scale * self.slope * x


def test_frozen_parameters_and_buffers_are_left_out():
    x, y = seed_frame()
    # y - 3 = 2 slope x + e: statsmodels OLS without intercept on 2x
    ref = sm.OLS(y - 3.0, 2 * x).fit()
    m = FrozenIntercept()
    with torch.no_grad():
        m.slope.fill_(ref.params[0])
    res = tl.infer(m, nn.MSELoss(), torch.tensor(x), torch.tensor(y))
    assert res.names == ["slope"]
    assert res.std_errors()["slope"] == pytest.approx(ref.bse[0], rel=1e-9)
    assert res.df_residual == 99
    with pytest.raises(ModelInputError, match="frozen"):
        tl.infer(m, nn.MSELoss(), torch.tensor(x), torch.tensor(y), params=["intercept"])


def test_parameter_subset_and_size_limit():
    X, y, _ = glm_data()
    model, Xt, yt = train(Logistic(3), nn.BCEWithLogitsLoss(), X, y[:, None])
    with pytest.raises(ModelInputError, match=r"4 free parameters.*params=\[\.\.\.\]"):
        tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt, max_params=3)
    sub = tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt, params=["linear.bias"], others="fixed")
    assert sub.names == ["linear.bias"]
    # conditional on the weights: a binomial GLM of y on a constant with the weights' part as offset
    offset = X @ model.linear.weight.detach().numpy()[0]
    ref = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=offset).fit(tol=1e-12)
    assert sub.std_errors()["linear.bias"] == pytest.approx(ref.bse[0], rel=1e-7)
    assert tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt, params="linear").names == LOGIT_NAMES


def test_bad_input_is_named():
    X, y, _ = glm_data()
    model, Xt, yt = train(Logistic(3), nn.BCEWithLogitsLoss(), X, y[:, None])
    with pytest.raises(ModelInputError, match="would broadcast"):
        tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt[:, 0])
    with pytest.raises(ModelInputError, match="dispersion=1 if it is a negative log-likelihood"):
        tl.infer(model, lambda o, t: nn.functional.binary_cross_entropy_with_logits(o, t), Xt, yt)
    with pytest.raises(ModelInputError, match="neither the sum"):
        tl.infer(model, lambda o, t: ((o - t) ** 2).sum().sqrt(), Xt, yt, dispersion="estimate")
    with pytest.raises(ModelInputError, match="torch.nn.Module"):
        tl.infer(lambda x: x, nn.MSELoss(), Xt, yt)
    with pytest.raises(ModelInputError, match="target has 400 rows and the model's output 10"):
        tl.infer(model, nn.BCEWithLogitsLoss(), (Xt[:10],), yt)
    with pytest.raises(ModelInputError, match="dispersion must be"):
        tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt, dispersion=-1)
    with pytest.raises(ModelInputError, match="not a parameter"):
        tl.infer(model, nn.BCEWithLogitsLoss(), Xt, yt, params=["nope"])


class Softmax(nn.Module):
    """Multinomial logit with class 0 as the baseline (its logits fixed at 0), as R's multinom."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x):
        return torch.cat([torch.zeros(x.shape[0], 1, dtype=x.dtype), self.linear(x)], dim=1)


def test_cross_entropy_module_matches_multinomial_logit():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 2))
    logits = np.column_stack([np.zeros(300), 0.3 + X @ [0.8, -0.4], -0.2 + X @ [-0.5, 0.6]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    model = Softmax().double()
    Xt, yt = torch.tensor(X), torch.tensor(y)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, tolerance_grad=1e-13, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = nn.functional.cross_entropy(model(Xt), yt)
        v.backward()
        return v

    opt.step(closure)
    res = tl.infer(model, nn.CrossEntropyLoss(), Xt, yt)
    ref = sm.MNLogit(y, sm.add_constant(X)).fit(method="newton", tol=1e-12, disp=False)
    # statsmodels' params: rows (const, x1, x2), columns (class 1, class 2)
    se = res.std_errors()
    for c in (0, 1):
        got = [se[f"linear.bias[{c}]"], se[f"linear.weight[{c},0]"], se[f"linear.weight[{c},1]"]]
        np.testing.assert_allclose(got, ref.bse[:, c], rtol=1e-6)
    assert res.loglik() == pytest.approx(ref.llf, rel=1e-10)


def test_hessian_over_chunks_and_parameter_blocks_is_the_full_hessian():
    """k = 71 parameters (two blocks of 64 Hessian-vector products), 300 rows in chunks of 13."""
    torch.manual_seed(0)
    model = Logistic(70).double()
    X = torch.randn(300, 70, dtype=torch.float64)
    y = (torch.rand(300, 1, dtype=torch.float64) < 0.4).double()
    with pytest.warns(OptimumWarning):  # untrained: the gradient is not 0, which is beside the point here
        res = tl.infer(model, nn.BCEWithLogitsLoss(), X, y, chunk_size=13)
    w, b = model.linear.weight.detach().reshape(-1), model.linear.bias.detach()

    def total(theta):
        eta = X @ theta[:70] + theta[70]
        return nn.functional.binary_cross_entropy_with_logits(eta, y[:, 0], reduction="sum")

    H = torch.func.hessian(total)(torch.cat([w, b]))
    np.testing.assert_allclose(res.hessian().to_numpy(), H.numpy(), rtol=1e-12, atol=1e-12)
