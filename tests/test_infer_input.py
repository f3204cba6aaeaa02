"""Bad and odd input to tl.infer and tl.mle (issue 14): converted where the meaning is clear, a clear
tl.TorchlmError where it is not, and no convergence reported where the objective has no minimum.

References are closed forms written out here (least squares, Huber's sandwich, exponential and normal MLEs).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from _support import fit_lbfgs

import torchlm as tl
from torchlm.errors import ModelInputError, OptimumWarning

N = 30


@pytest.fixture(scope="module")
def xy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, 2, dtype=torch.float64, generator=g)
    y = X @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 + 0.3 * torch.randn(N, dtype=torch.float64,
                                                                                      generator=g)
    return X, y


class Line(torch.nn.Module):
    def __init__(self, X, y) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, dtype=torch.float64)
        A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
        b = torch.linalg.lstsq(A, y[:, None]).solution.squeeze(1)  # the least-squares optimum exactly
        with torch.no_grad():
            self.lin.weight.copy_(b[:2][None])
            self.lin.bias.copy_(b[2:])

    def forward(self, x):
        return self.lin(x).squeeze(-1)


def ols_vcov(X, y):
    """sigma^2-hat (A'A)^-1 in the model's parameter order (weight[0], weight[1], bias)."""
    A = np.column_stack([X, np.ones(len(X))])
    b, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ b
    return (r @ r) / (len(y) - 3) * np.linalg.inv(A.T @ A)


mse = torch.nn.MSELoss(reduction="sum")


# --- tl.infer: data ---------------------------------------------------------------------------
def test_numpy_inputs_and_target_are_converted(xy):
    X, y = xy
    model = Line(X, y)
    fit = tl.infer(model, mse, X.numpy(), y.numpy())
    np.testing.assert_allclose(fit.vcov().to_numpy(), ols_vcov(X.numpy(), y.numpy()), rtol=1e-10)
    # a list target means the same numbers
    fit2 = tl.infer(model, mse, X.numpy(), y.tolist())
    np.testing.assert_array_equal(fit2.vcov().to_numpy(), fit.vcov().to_numpy())


def test_integer_targets_become_floating(xy):
    X, y = xy
    yi = torch.round(10 * y).long()
    fit = tl.infer(Line(X, yi.double()), mse, X, yi)
    np.testing.assert_allclose(fit.vcov().to_numpy(), ols_vcov(X.numpy(), yi.double().numpy()), rtol=1e-10)
    # a 0/1 target as integers for BCEWithLogitsLoss: the same as the float target
    b = (y > 0).long()
    bce = torch.nn.BCEWithLogitsLoss(reduction="sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimumWarning)  # the line is not the logistic optimum: same either way
        model = Line(X, y)
        a, f = tl.infer(model, bce, X, b), tl.infer(model, bce, X, b.double())
    np.testing.assert_array_equal(a.hessian().to_numpy(), f.hessian().to_numpy())


def test_class_labels_stay_integers(xy):
    X, y = xy
    labels = (y > 0).long()

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2, dtype=torch.float64)

        def forward(self, x):
            return self.lin(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained and over-parameterised (softmax): not the point here
        fit = tl.infer(Two(), torch.nn.CrossEntropyLoss(reduction="sum"), X, labels.numpy())
    assert fit.nobs == N


@pytest.mark.parametrize("where", ["inputs", "target"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_data_is_refused(xy, where, bad):
    X, y = xy
    X, y = X.clone(), y.clone()
    (X[3] if where == "inputs" else y)[1 if where == "inputs" else 3] = bad
    with pytest.raises(ModelInputError, match=f"{where} has 1 NaN or infinite value.*finite data"):
        tl.infer(Line(*xy), mse, X, y)


def test_non_numeric_target_and_wrong_shapes(xy):
    X, y = xy
    with pytest.raises(ModelInputError, match="target is an array of object, not numbers"):
        tl.infer(Line(X, y), mse, X, np.array(["a"] * N, dtype=object))
    with pytest.raises(ModelInputError, match=r"the model raised RuntimeError when called with the inputs.*shapes"):
        tl.infer(Line(X, y), mse, X[:, :1], y)


# --- tl.infer: the loss -----------------------------------------------------------------------
def test_huber_loss_asks_for_the_sandwich(xy):
    X, y = xy
    huber = torch.nn.HuberLoss(reduction="sum", delta=0.3)
    with pytest.raises(ModelInputError) as e:
        tl.infer(Line(X, y), huber, X, y)
    msg = str(e.value)
    assert "neither a negative log-likelihood nor a squared error" in msg
    assert "dispersion=1" in msg and "vcov('HC0')" in msg and "M-estimator" in msg
    # with dispersion=1, HC0 is Huber's sandwich B M B: B = (sum psi'(r) x x')^-1, M = sum psi(r)^2 x x'
    model = Line(X, y)
    fit_lbfgs(model, huber, X, y, tolerance_grad=1e-15)
    fit = tl.infer(model, huber, X, y, dispersion=1)
    with torch.no_grad():
        r = (model(X) - y).numpy()
    A = np.column_stack([X.numpy(), np.ones(N)])
    psi, dpsi = np.clip(r, -0.3, 0.3), (np.abs(r) < 0.3).astype(float)
    B = np.linalg.inv(A.T @ (dpsi[:, None] * A))
    M = A.T @ (psi[:, None] ** 2 * A)
    np.testing.assert_allclose(fit.vcov("HC0").to_numpy(), B @ M @ B, rtol=1e-8)


def test_loss_of_the_wrong_shape(xy):
    X, y = xy
    with pytest.raises(ModelInputError, match=r"the loss returned shape \(30, 30\).*one value per observation"):
        tl.infer(Line(X, y), lambda o, t: torch.outer(o, t), X, y, dispersion=1)
    with pytest.raises(ModelInputError, match=r"the loss returned shape \(5,\)"):
        tl.infer(Line(X, y), lambda o, t: (o - t)[:5] ** 2, X, y, dispersion=1)
    with pytest.raises(ModelInputError, match="the loss returned float"):
        tl.infer(Line(X, y), lambda o, t: float(((o - t) ** 2).sum()), X, y, dispersion=1)


# --- tl.infer: options and the model ----------------------------------------------------------
@pytest.mark.parametrize("bad", ["a", True, -1.0, 0, float("nan"), [1.0]])
def test_bad_dispersion(xy, bad):
    with pytest.raises(ModelInputError, match="dispersion must be None, 'estimate' or a positive number"):
        tl.infer(Line(*xy), mse, *xy, dispersion=bad)


def test_numpy_number_dispersion_scales_the_covariance(xy):
    X, y = xy
    one = tl.infer(Line(X, y), lambda o, t: ((o - t) ** 2).sum(), X, y, dispersion=1)
    two = tl.infer(Line(X, y), lambda o, t: ((o - t) ** 2).sum(), X, y, dispersion=np.int64(2))
    np.testing.assert_allclose(two.vcov().to_numpy(), 2 * one.vcov().to_numpy(), rtol=1e-14)


@pytest.mark.parametrize("option, value, words", [
    ("chunk_size", 0, "chunk_size must be a positive whole number"),
    ("chunk_size", 2.5, "chunk_size must be a positive whole number"),
    ("max_params", "many", "max_params must be a positive whole number"),
    ("optimum_tol", "x", "optimum_tol must be a positive number"),
    ("singular_tol", -1e-10, "singular_tol must be a positive number"),
])
def test_bad_options(xy, option, value, words):
    with pytest.raises(ModelInputError, match=words):
        tl.infer(Line(*xy), mse, *xy, **{option: value})


def test_model_without_free_parameters(xy):
    X, y = xy

    class NoParameters(torch.nn.Module):
        def forward(self, x):
            return x[:, 0]

    with pytest.raises(ModelInputError, match=r"has no parameters \(nn.Parameter\)"):
        tl.infer(NoParameters(), mse, X, y)
    frozen = Line(X, y).requires_grad_(False)
    with pytest.raises(ModelInputError, match="no free parameters: all are frozen"):
        tl.infer(frozen, mse, X, y)


# --- tl.mle: objectives without a minimum ----------------------------------------------------
UNBOUNDED = {
    "-a from 0": (lambda p: -p["a"], {"a": 0.0}),
    "-a from 1": (lambda p: -p["a"], {"a": 1.0}),
    "a from -1e300": (lambda p: p["a"], {"a": -1e300}),
    "-1e-20 a": (lambda p: -1e-20 * p["a"], {"a": 0.0}),
    "a^3 at its inflection": (lambda p: p["a"] ** 3, {"a": 0.0}),
    "-a - b": (lambda p: -p["a"] - p["b"], {"a": 0.0, "b": 0.0}),
    "a - 2b + 3c": (lambda p: p["a"] - 2 * p["b"] + 3 * p["c"], {"a": 0.0, "b": 1.0, "c": 2.0}),
    "a + b^2": (lambda p: p["a"] + p["b"] ** 2, {"a": 0.0, "b": 1.0}),
    "a b (saddle)": (lambda p: p["a"] * p["b"], {"a": 1.0, "b": 1.0}),
    "-a^2": (lambda p: -p["a"] ** 2, {"a": 1.0}),
    "-log a": (lambda p: -torch.log(p["a"]), {"a": 1.0}),
}


@pytest.mark.parametrize("case", list(UNBOUNDED), ids=list(UNBOUNDED))
def test_an_objective_without_minimum_never_converges(case):
    nll, start = UNBOUNDED[case]
    with pytest.warns(OptimumWarning) as record:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.SingularHessianWarning)
            fit = tl.mle(nll, start)
    assert not fit.converged
    assert not fit.at_optimum or case in ("-1e-20 a", "a^3 at its inflection")
    assert "did NOT converge" in str(fit.summary())
    assert any(w for w in record if "minimum" in str(w.message) or "not at an optimum" in str(w.message))


def test_slope_along_a_flat_direction_is_named():
    with pytest.warns(OptimumWarning) as record:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.SingularHessianWarning)
            tl.mle(lambda p: -p["a"] - p["b"], {"a": 0.0, "b": 0.0})
    texts = [str(w.message) for w in record]
    assert any("did not converge: the nll has no minimum" in t for t in texts)
    # the gradient (-1, -1) has length sqrt(2) along the flat direction a + b
    assert any(re.search(r"no curvature but a slope \(1\.41 per unit.*along a \+ b", t) for t in texts)


def test_a_level_flat_direction_still_converges():
    # nll constant along a - c (non-identifiable, not unbounded): converged, the flat pair named
    x = torch.linspace(-1, 1, 20, dtype=torch.float64)
    y = 1 + 2 * x + torch.sin(7 * x) / 5

    def nll(p):
        return 0.5 * ((y - p["a"] - p["c"] - p["b"] * x) ** 2)

    with pytest.warns(tl.SingularHessianWarning, match="a, c are not identifiable"):
        fit = tl.mle(nll, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert fit.converged and fit.at_optimum
    A = np.column_stack([np.ones(20), x.numpy()])
    b, *_ = np.linalg.lstsq(A, y.numpy(), rcond=None)
    assert fit.coef()["a"] + fit.coef()["c"] == pytest.approx(b[0], rel=1e-10)
    assert fit.coef()["b"] == pytest.approx(b[1], rel=1e-10)


# --- tl.mle: an nll undefined over a region ---------------------------------------------------
def test_trial_steps_into_a_nan_region_are_shortened():
    # Exponential rate: lambda-hat = n / sum(x). From 3 n / sum(x) the first Newton step lands at a
    # negative rate, where log() is NaN and torch.distributions (validate_args) raises ValueError
    x = torch.tensor([0.3, 1.2, 0.7, 2.5, 0.1, 0.9], dtype=torch.float64)
    rate = len(x) / float(x.sum())

    def log_nll(p):
        return -(len(x) * torch.log(p["rate"]) - p["rate"] * x.sum())

    def dist_nll(p):
        return -torch.distributions.Exponential(p["rate"], validate_args=True).log_prob(x).sum()

    for nll in (log_nll, dist_nll):
        fit = tl.mle(nll, {"rate": 3 * rate})
        assert fit.converged
        assert fit.coef()["rate"] == pytest.approx(rate, rel=1e-10)
        assert fit.std_errors()["rate"] == pytest.approx(rate / np.sqrt(len(x)), rel=1e-8)  # 1 / sqrt(n / rate^2)


def test_a_start_outside_the_support_is_named():
    x = torch.tensor([0.3, 1.2, 0.7], dtype=torch.float64)
    with pytest.raises(ModelInputError, match="the nll at the start values is nan"):
        tl.mle(lambda p: -(3 * torch.log(p["rate"]) - p["rate"] * x.sum()), {"rate": -1.0})
    with pytest.raises(ModelInputError, match="the nll raised ValueError at the start values"):
        tl.mle(lambda p: -torch.distributions.Exponential(p["rate"], validate_args=True).log_prob(x).sum(),
               {"rate": -1.0})


# --- tl.mle: bad arguments --------------------------------------------------------------------
def sq(p):
    return (p["a"] ** 2).sum()


@pytest.mark.parametrize("start, words", [
    (torch.tensor([1.0]), "start must be a non-empty dict.*not Tensor"),
    ([1.0], "start must be a non-empty dict.*not list"),
    ({}, "start must be a non-empty dict"),
    ({"a": "x"}, "start value for 'a' must be real numbers"),
    ({"a": None}, "start value for 'a' must be real numbers, not object"),
    ({"a": 1 + 2j}, "start value for 'a' must be real numbers, not complex"),
    ({"a": []}, "start value for 'a' has no elements"),
    ({"a": float("nan")}, "start value for 'a' is not finite"),
    ({"a": [1.0, 2.0], "a[1]": 3.0}, r"parameter names collide: a\[1\]"),
    ({1: 1.0}, "start's names must be non-empty strings"),
])
def test_bad_start(start, words):
    with pytest.raises(ModelInputError, match=words):
        tl.mle(sq, start)


@pytest.mark.parametrize("option, value, words", [
    ("maxit", "a", "maxit must be a positive whole number"),
    ("maxit", 0, "maxit must be a positive whole number"),
    ("tol", -1, "tol must be a positive number"),
    ("singular_tol", "x", "singular_tol must be a positive number"),
    ("nobs", 2.5, "nobs must be a positive whole number"),
    ("method", 1, "method must be 'newton' or 'lbfgs'"),
])
def test_bad_mle_options(option, value, words):
    with pytest.raises(ModelInputError, match=words):
        tl.mle(sq, {"a": 1.0}, **{option: value})


def test_nll_of_the_wrong_kind():
    with pytest.raises(ModelInputError, match=r"nll returned shape \(2, 2\)"):
        tl.mle(lambda p: torch.outer(p["a"], p["a"]), {"a": [1.0, 2.0]})
    with pytest.raises(ModelInputError, match="nll must be a function"):
        tl.mle("nll", {"a": 1.0})


def test_loss_without_forward_mode_derivative_in_a_model_holding_its_data(xy):
    # torch has no forward-mode derivative for huber_loss_backward: the Hessian and the per-observation
    # gradients of a model called without inputs (one Jacobian) fall back to reverse mode, same numbers
    X, y = xy
    line = Line(X, y)

    class Held(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = line
            self.X = X

        def forward(self):
            return self.inner(self.X)

    huber = torch.nn.HuberLoss(reduction="sum", delta=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimumWarning)  # the least-squares line is not Huber's optimum
        rows = tl.infer(line, huber, X, y, dispersion=1)
        held = tl.infer(Held(), huber, None, y, dispersion=1)
    np.testing.assert_allclose(held.hessian().to_numpy(), rows.hessian().to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(held.vcov("HC0").to_numpy(), rows.vcov("HC0").to_numpy(), rtol=1e-10)


def test_gaussian_nll_loss_advice_works():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 1, dtype=torch.float64, generator=g)
    y = 2 * X[:, 0] + 0.5 * torch.randn(200, dtype=torch.float64, generator=g)
    model = torch.nn.Linear(1, 2, dtype=torch.float64)  # output columns: mean and log-variance
    with pytest.raises(ModelInputError, match="mean and log-variance: loss=lambda out, y"):
        tl.infer(model, torch.nn.GaussianNLLLoss(reduction="sum"), X, y)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=1e-14, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def nll(out, y):  # the message's example, verbatim
        return 0.5 * (math.log(2 * math.pi) + out[:, 1] + (y - out[:, 0]) ** 2 / out[:, 1].exp())

    def closure():
        opt.zero_grad()
        v = nll(model(X), y).sum()
        v.backward()
        return v

    opt.step(closure)
    fit = tl.infer(model, nll, X, y, dispersion=1)
    with torch.no_grad():
        out = model(X)
        want = torch.distributions.Normal(out[:, 0], (out[:, 1] / 2).exp()).log_prob(y).sum()
    assert fit.loglik() == pytest.approx(float(want), rel=1e-12)
    assert np.isfinite(fit.std_errors("HC0")).all() and fit.at_optimum
