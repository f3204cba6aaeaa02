"""Property tests: on random well-conditioned designs, torchlm agrees with independent numpy algebra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchlm as tl

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Problem:
    """Random regression data: DataFrame with y, x1..xp (and w), plus the numpy design with intercept."""

    def __init__(self, n: int, p: int, seed: int, weighted: bool = False):
        rng = np.random.default_rng(seed)
        self.n, self.p, self.rng = n, p, rng
        loc = rng.uniform(-2, 2, p)
        scale = rng.uniform(0.5, 2, p)
        X = loc + scale * rng.standard_normal((n, p))
        beta = rng.choice([-1.0, 1.0], p + 1) * rng.uniform(0.5, 3.0, p + 1)
        noise = rng.uniform(0.1, 1.0)
        y = beta[0] + X @ beta[1:] + noise * rng.standard_normal(n)
        self.cols = [f"x{j + 1}" for j in range(p)]
        self.df = pd.DataFrame(X, columns=self.cols)
        self.df.insert(0, "y", y)
        self.w = rng.uniform(0.1, 10.0, n) if weighted else None
        if weighted:
            self.df["w"] = self.w
        self.X = np.column_stack([np.ones(n), X])
        self.y = y
        self.formula = "y ~ " + " + ".join(self.cols)

    def fit(self, **kw):
        if self.w is not None:
            kw.setdefault("weights", "w")
        return tl.lm(self.formula, data=self.df, **kw)

    def lstsq(self, X=None):
        X = self.X if X is None else X
        sw = np.ones(self.n) if self.w is None else np.sqrt(self.w)
        return np.linalg.lstsq(sw[:, None] * X, sw * self.y, rcond=None)[0]


@st.composite
def problems(draw, weighted=False):
    n = draw(st.integers(20, 200))
    p = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    return Problem(n, p, seed, weighted)


def assert_cov_close(got: np.ndarray, want: np.ndarray, rtol: float):
    """|got - want| <= rtol * sqrt(want_ii want_jj): relative on the correlation scale."""
    d = np.sqrt(np.abs(np.diag(want)))
    np.testing.assert_allclose(np.diag(got), np.diag(want), rtol=rtol, atol=0)
    assert np.all(np.abs(got - want) <= rtol * np.outer(d, d)), np.max(np.abs(got - want) / np.outer(d, d))


def names_ok(fit, p):
    assert fit.names == ["Intercept"] + [f"x{j + 1}" for j in range(p)]


@SETTINGS
@given(problems())
def test_coefficients_match_lstsq(pr):
    fit = pr.fit()
    names_ok(fit, pr.p)
    b = fit.coef().to_numpy()
    ref = pr.lstsq()
    np.testing.assert_allclose(b, ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(ref)))
    assert fit.rank == pr.p + 1
    assert fit.df_residual == pr.n - pr.p - 1 and fit.nobs == pr.n


@SETTINGS
@given(problems(weighted=True))
def test_weighted_coefficients_match_lstsq(pr):
    b = pr.fit().coef().to_numpy()
    ref = pr.lstsq()
    np.testing.assert_allclose(b, ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(ref)))


@SETTINGS
@given(problems())
def test_vcov_equals_sigma2_inverse_gram(pr):
    fit = pr.fit()
    b = pr.lstsq()
    r = pr.y - pr.X @ b
    s2 = r @ r / (pr.n - pr.p - 1)
    want = s2 * np.linalg.inv(pr.X.T @ pr.X)
    np.testing.assert_allclose(fit.sigma**2, s2, rtol=1e-10)
    V = fit.vcov()
    assert list(V.index) == list(V.columns) == fit.names
    assert_cov_close(V.to_numpy(), want, rtol=1e-8)
    np.testing.assert_allclose(fit.std_errors().to_numpy(), np.sqrt(np.diag(want)), rtol=1e-8)


@SETTINGS
@given(problems(weighted=True))
def test_weighted_vcov_equals_sigma2_inverse_weighted_gram(pr):
    fit = pr.fit()
    b = pr.lstsq()
    r = pr.y - pr.X @ b
    s2 = np.sum(pr.w * r**2) / (pr.n - pr.p - 1)
    want = s2 * np.linalg.inv(pr.X.T @ (pr.w[:, None] * pr.X))
    np.testing.assert_allclose(fit.sigma**2, s2, rtol=1e-10)
    np.testing.assert_allclose(fit.deviance, np.sum(pr.w * r**2), rtol=1e-10)
    assert_cov_close(fit.vcov().to_numpy(), want, rtol=1e-8)


@SETTINGS
@given(problems(), st.booleans())
def test_hessian_is_xtwx(pr, weighted):
    if weighted:
        pr.w = pr.rng.uniform(0.1, 10.0, pr.n)
        pr.df["w"] = pr.w
    fit = pr.fit()
    W = np.ones(pr.n) if pr.w is None else pr.w
    want = pr.X.T @ (W[:, None] * pr.X)
    H = fit.hessian()
    assert list(H.index) == list(H.columns) == fit.names
    H = H.to_numpy()
    d = np.sqrt(np.diag(want))
    assert np.all(np.abs(H - want) <= 1e-10 * np.outer(d, d)), np.max(np.abs(H - want) / np.outer(d, d))
    np.testing.assert_allclose(np.diag(H), np.diag(want), rtol=1e-10)


@SETTINGS
@given(problems(), st.data())
def test_duplicated_column_aliases_the_later_one(pr, data):
    """R's lm (dqrdc2 limited pivoting): of two identical columns the later in the formula is NA."""
    k = data.draw(st.integers(0, pr.p - 1), label="duplicated column")
    pos = data.draw(st.integers(0, pr.p), label="position of the copy in the formula")
    pr.df["dup"] = pr.df[pr.cols[k]].copy()
    terms = list(pr.cols)
    terms.insert(pos, "dup")
    fit = tl.lm("y ~ " + " + ".join(terms), data=pr.df)
    later = "dup" if pos > k else pr.cols[k]
    b = fit.coef()
    assert fit.rank == pr.p + 1
    assert b.index.tolist() == ["Intercept"] + terms
    assert b.isna().sum() == 1 and np.isnan(b[later])
    assert fit.aliased[later] and fit.aliased.sum() == 1
    # the estimable coefficients are those of the fit without the aliased column
    ref = pr.lstsq()
    kept = b.drop(later)
    as_orig = kept.rename({"dup": pr.cols[k]})[["Intercept"] + pr.cols].to_numpy()
    np.testing.assert_allclose(as_orig, ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(ref)))
    assert fit.df_residual == pr.n - pr.p - 1
    V = fit.vcov()
    assert later not in V.index and V.shape == (pr.p + 1, pr.p + 1)
    assert np.isnan(fit.std_errors()[later])
    assert "(1 not defined because of singularities)" in str(fit.summary())


@SETTINGS
@given(problems(), st.integers(1, 25), st.integers(0, 2**32 - 1))
def test_predict_newdata_is_x_beta(pr, m, seed):
    fit = pr.fit()
    rng = np.random.default_rng(seed)
    Xn = rng.normal(0, 3, (m, pr.p))
    new = pd.DataFrame(Xn, columns=pr.cols, index=pd.RangeIndex(100, 100 + m))
    got = fit.predict(new)
    want = np.column_stack([np.ones(m), Xn]) @ fit.coef().to_numpy()
    assert list(got.index) == list(new.index)
    scale = np.max(np.abs(np.column_stack([np.ones(m), Xn]) * fit.coef().to_numpy()), axis=1)
    assert np.all(np.abs(got.to_numpy() - want) <= 1e-12 * scale + 1e-10 * np.abs(want))
    # in-sample: predict() with no newdata is the fitted values, X @ beta
    np.testing.assert_allclose(fit.predict().to_numpy(), pr.X @ pr.lstsq(), rtol=1e-9, atol=1e-9 * np.abs(pr.y).max())
    np.testing.assert_allclose(fit.fitted().to_numpy(), fit.predict().to_numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(fit.residuals().to_numpy(), pr.y - fit.fitted().to_numpy(), rtol=0, atol=0)


@SETTINGS
@given(problems(), st.data())
def test_scaling_a_column_divides_its_coefficient(pr, data):
    j = data.draw(st.integers(0, pr.p - 1), label="column")
    c = data.draw(st.sampled_from([-1.0, 1.0])) * 10.0 ** data.draw(st.floats(-3, 3), label="log10 c")
    base = pr.fit()
    pr.df[pr.cols[j]] = pr.df[pr.cols[j]] * c
    scaled = pr.fit()
    b0, b1 = base.coef().to_numpy(), scaled.coef().to_numpy()
    want = b0.copy()
    want[j + 1] = b0[j + 1] / c
    np.testing.assert_allclose(b1, want, rtol=1e-9, atol=1e-12 * np.max(np.abs(b0)))
    # standard errors scale the same way; fit statistics do not change
    se0, se1 = base.std_errors().to_numpy(), scaled.std_errors().to_numpy()
    want_se = se0.copy()
    want_se[j + 1] = se0[j + 1] / abs(c)
    np.testing.assert_allclose(se1, want_se, rtol=1e-8)
    np.testing.assert_allclose(scaled.sigma, base.sigma, rtol=1e-10)
    np.testing.assert_allclose(scaled.r_squared, base.r_squared, rtol=1e-10)


@pytest.mark.parametrize("p", [1, 4, 8])
def test_problem_generator_is_well_conditioned(p):
    """Guard for the properties above: the generated designs are far from singular."""
    for seed in range(5):
        pr = Problem(20, p, seed)
        assert np.linalg.cond(pr.X) < 1e4


def test_closed_form_jacobian_is_autograds():
    """LinearResidual.jacobian (the fast path of factor_jacobian) is what torch.func.jacfwd computes."""
    from torch.func import jacfwd

    from torchlm.solvers.autograd import factor_jacobian, jacobian
    from torchlm.solvers.least_squares import LinearResidual

    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 6, dtype=torch.float64, generator=g) * torch.logspace(-3, 3, 6, dtype=torch.float64)
    y = torch.randn(300, dtype=torch.float64, generator=g)
    sw = torch.rand(300, dtype=torch.float64, generator=g).sqrt()
    beta = torch.randn(6, dtype=torch.float64, generator=g)
    fn = LinearResidual(X, y, sw)
    assert torch.equal(jacobian(fn, beta), jacfwd(fn)(beta))
    block = fn.augmented(beta)  # what factor_jacobian factors: [J | e], column-major
    assert block.stride(0) == 1
    assert torch.equal(block[:, :-1], jacfwd(fn)(beta)) and torch.equal(block[:, -1], fn(beta))

    class Plain:  # the same residuals without a closed-form Jacobian: autograd's path
        def __call__(self, b):
            return fn(b)

    chunks_fast = lambda: [LinearResidual(X[:150], y[:150], sw[:150]), LinearResidual(X[150:], y[150:], sw[150:])]  # noqa: E731
    chunks_auto = lambda: [Plain() for _ in range(1)]  # noqa: E731
    R_fast = factor_jacobian(chunks_fast, beta)
    R_auto = factor_jacobian(chunks_auto, beta)
    # same Gram matrix [J e]^T [J e] up to rounding (the chunking differs)
    torch.testing.assert_close(R_fast.T @ R_fast, R_auto.T @ R_auto, rtol=1e-12, atol=1e-9)


def test_design_row_blocks_feed_the_same_factor(monkeypatch):
    """Chunks read from the design's columns (spare column for e, no full X) give the factor and fit of X itself."""
    from torch.func import jacfwd

    import torchlm.solvers.least_squares as tlfit
    from torchlm.solvers.autograd import factor_jacobian, quiet
    from torchlm.solvers.least_squares import linear_chunks

    monkeypatch.setattr(tlfit, "CHUNK_ELEMENTS", 256 * 6)  # 256-row chunks: eight of them
    pr = Problem(2000, 5, 3)
    fit = pr.fit()
    d = fit.design
    assert d._X is None  # the fit did not assemble the whole design matrix
    beta = torch.as_tensor(fit.coef().to_numpy())
    cpu = torch.device("cpu")
    from_columns = list(linear_chunks(d, d.y, None, None, cpu, torch.float64)())
    assert len(from_columns) == 8
    for fn in from_columns:
        block = fn.augmented(beta)
        assert block.stride(0) == 1  # column-major, as LAPACK takes it
        assert torch.equal(block[:, :-1], quiet(jacfwd(fn))(beta))
        assert torch.equal(block[:, -1], fn(beta))
    X = d.X  # now assembled: chunks slice it instead
    np.testing.assert_array_equal(X, pr.X)
    R_cols = factor_jacobian(lambda: iter(from_columns), beta)
    R_X = factor_jacobian(linear_chunks(X, d.y, None, None, cpu, torch.float64), beta)
    torch.testing.assert_close(R_cols, R_X, rtol=0, atol=0)
    want = X @ fit.coef().to_numpy()
    np.testing.assert_allclose(fit.fitted().to_numpy(), want, rtol=0, atol=1e-13 * np.abs(want).max())
    np.testing.assert_allclose(fit.coef().to_numpy(), pr.lstsq(), rtol=1e-10)


def test_large_problem_path_agrees_with_doubled_precision(monkeypatch):
    """Above ACCURATE_ELEMENTS the fit skips doubled precision: on an ill-conditioned design it still agrees
    with the doubled-precision fit to about cond * eps (R's own arithmetic gives no more)."""
    import torchlm.solvers.least_squares as tlfit

    rng = np.random.default_rng(7)
    n = 60_000
    x = rng.uniform(0, 10, n)
    df = pd.DataFrame({"x": x, "z": rng.standard_normal(n)})
    df["y"] = 1 + 0.5 * x - 0.2 * x**2 + 0.01 * x**3 + df["z"] + 0.1 * rng.standard_normal(n)
    f = "y ~ x + I(x**2) + I(x**3) + I(x**4) + I(x**5) + z"
    assert n * 7 > tlfit.ACCURATE_ELEMENTS
    fast = tl.lm(f, data=df)
    assert not fast._qr.accurate
    monkeypatch.setattr(tlfit, "ACCURATE_ELEMENTS", 10**9)
    import sys

    monkeypatch.setattr(sys.modules["torchlm.models.lm"], "ACCURATE_ELEMENTS", 10**9)
    ref = tl.lm(f, data=df)
    assert ref._qr.accurate
    cond = np.linalg.cond(fast.design.X / np.linalg.norm(fast.design.X, axis=0))
    assert cond > 1e3  # the refinement step of the large path is taken
    tol = 100 * cond * np.finfo(float).eps
    np.testing.assert_allclose(fast.coef(), ref.coef(), rtol=tol)
    np.testing.assert_allclose(np.diag(fast.vcov()), np.diag(ref.vcov()), rtol=tol)
    assert fast.sigma == pytest.approx(ref.sigma, rel=1e-13)
