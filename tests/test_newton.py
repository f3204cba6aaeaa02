"""The shared Newton driver (torchlm.solvers) on its own, and tl.mle ported onto it."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import torchlm as tl
from torchlm.errors import ModelInputError, OptimumWarning
from torchlm.solvers import (
    Backtracking,
    Divergence,
    Evaluation,
    FirstOf,
    FloatingPointFloor,
    FullStep,
    PolishRule,
    Reason,
    RelativeChange,
    RHalving,
    Stage,
    Step,
    StepBelow,
    solve,
)


# --- tl.mle -------------------------------------------------------------------------------------
def logistic_nll(p, d):
    eta = p["b0"] + p["wt"] * d["wt"] + p["hp"] * d["hp"]
    return -(d["am"] * eta - F.softplus(eta))


def test_mle_logistic_converges_at_the_floor_and_matches_glm():
    mt = tl.datasets.load("mtcars")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = tl.mle(logistic_nll, {"b0": 18, "wt": -8, "hp": 0.03}, data=mt)
    assert [str(w.message) for w in caught] == []
    assert fit.converged and fit.iterations <= 10
    ref = tl.glm("am ~ wt + hp", mt, family="binomial", exact=True).coef()
    np.testing.assert_allclose(fit.coef().to_numpy(), ref.to_numpy(), rtol=1e-8)


@pytest.mark.parametrize("seed, delta", [(4, 1e-4), (7, 1e-5), (9, 1e-4), (14, 1e-5)])
def test_mle_collinear_logistic_converges_at_the_floor(seed, delta):
    # z = x + delta * noise: the Hessian's condition number is ~1/delta^2, so the Newton step at the optimum is
    # rounding noise of ~1e-8 standard errors and the Armijo test accepts steps that change nothing (the code
    # before the shared driver reported converged=False after 100 iterations on each of these)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=1000)
    z = x + delta * rng.normal(size=1000)
    y = (rng.uniform(size=1000) < 1 / (1 + np.exp(-(0.5 + x)))).astype(float)
    d = pd.DataFrame({"x": x, "z": z, "y": y})

    def nll(p, d):
        eta = p["a"] + p["b"] * d["x"] + p["c"] * d["z"]
        return -(d["y"] * eta - F.softplus(eta))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = tl.mle(nll, {"a": 0.0, "b": 0.0, "c": 0.0}, data=d)
    assert [str(w.message) for w in caught] == []
    assert fit.converged and fit.iterations <= 15
    ref = tl.glm("y ~ x + z", d, family="binomial", exact=True)
    gap = np.abs(fit.coef().to_numpy() - ref.coef().to_numpy()) / ref.std_errors().to_numpy()
    assert gap.max() < 1e-6


def exponential_nll(p, d):
    # validate_args: a rate that leaves (0, inf) raises ValueError instead of giving NaN
    return -torch.distributions.Exponential(p["rate"], validate_args=True).log_prob(d["x"])


def guarded_nll(p, d):
    if p["rate"] <= 0:
        raise ValueError("the rate must be positive")
    return -(torch.log(p["rate"]) - p["rate"] * d["x"])


@pytest.mark.parametrize("nll", [exponential_nll, guarded_nll])
def test_mle_exception_at_a_trial_step_shortens_it(nll):
    x = np.random.default_rng(3).exponential(2.0, size=200)
    mle_rate = 1 / x.mean()
    # from 3x the MLE the full Newton step is 2r - r^2 / mle = -3 mle: outside the support
    r0 = 3 * mle_rate
    assert 2 * r0 - r0**2 / mle_rate < 0
    fit = tl.mle(nll, {"rate": r0}, data={"x": x})
    assert fit.converged
    assert fit.coef()["rate"] == pytest.approx(mle_rate, rel=1e-10)
    assert fit.std_errors()["rate"] == pytest.approx(mle_rate / math.sqrt(len(x)), rel=1e-8)


def test_mle_exception_at_the_start_is_an_input_error():
    x = np.random.default_rng(3).exponential(2.0, size=50)
    with pytest.raises(ModelInputError, match="raised ValueError at the start values") as info:
        tl.mle(exponential_nll, {"rate": -1.0}, data={"x": x})
    assert isinstance(info.value.__cause__, ValueError)


def test_mle_mean_nll_is_an_input_error_and_sums_work():
    mt = tl.datasets.load("mtcars")
    start = {"b0": 18, "wt": -8, "hp": 0.03}
    with pytest.raises(ModelInputError, match="return the sum over observations"):
        tl.mle(lambda p, d: logistic_nll(p, d).mean(), start, data=mt)
    ref = tl.glm("am ~ wt + hp", mt, family="binomial", exact=True).coef().to_numpy()
    # a scalar sum, with the data as a DataFrame, a dict of tensors and a tuple
    fit = tl.mle(lambda p, d: logistic_nll(p, d).sum(), start, data=mt)
    np.testing.assert_allclose(fit.coef().to_numpy(), ref, rtol=1e-8)
    tensors = {c: torch.tensor(mt[c].to_numpy(), dtype=torch.float64) for c in ("am", "wt", "hp")}
    fit = tl.mle(lambda p, d: logistic_nll(p, d).sum(), start, data=tensors)
    np.testing.assert_allclose(fit.coef().to_numpy(), ref, rtol=1e-8)
    X = np.column_stack([np.ones(len(mt)), mt["wt"], mt["hp"]])

    def tuple_nll(p, d):
        X, y = d
        eta = X @ p["b"]
        return (F.softplus(eta) - y * eta).sum()

    fit = tl.mle(tuple_nll, {"b": np.array([18, -8, 0.03])}, data=(X, mt["am"].to_numpy()))
    np.testing.assert_allclose(fit.coef().to_numpy(), ref, rtol=1e-8)
    with pytest.raises(ModelInputError, match="mean"):
        tl.mle(lambda p, d: tuple_nll(p, d) / len(d[1]), {"b": np.array([18, -8, 0.03])},
               data=(X, mt["am"].to_numpy()))


def test_mle_mean_check_is_skipped_when_rows_cannot_be_evaluated_alone():
    x = np.random.default_rng(1).normal(1.0, 2.0, size=40)

    def centred(p, d):
        # uses the whole sample (its mean): one row at a time it is a different function, so no verdict
        r = d["x"] - d["x"].mean() + d["x"].mean() - p["mu"]
        return 0.5 * (r**2).sum() / p["s2"] + 0.5 * len(d["x"]) * torch.log(p["s2"])

    fit = tl.mle(centred, {"mu": 0.0, "s2": 1.0}, data={"x": x})
    assert fit.converged and fit.coef()["mu"] == pytest.approx(x.mean(), rel=1e-10)


@pytest.mark.parametrize("nll", [lambda p: -p["a"], lambda p: torch.exp(-p["a"]), lambda p: -torch.log(p["a"])])
def test_mle_unbounded_objective_does_not_converge(nll):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = tl.mle(nll, {"a": 1.0})
    assert any(issubclass(w.category, OptimumWarning) and "no minimum" in str(w.message) for w in caught)
    assert not fit.converged and fit.coef()["a"] > 30


# --- the driver ----------------------------------------------------------------------------------
class Autograd:
    """A problem from a torch function: Newton on its Hessian, eigenvalues made positive."""

    def __init__(self, f, scale_steps=True):
        self.f, self.scale_steps = f, scale_steps

    def evaluate(self, x):
        return float(self.f(x))

    def propose(self, state):
        x = state.x
        g = torch.autograd.functional.jacobian(self.f, x)
        H = torch.autograd.functional.hessian(self.f, x)
        w, V = torch.linalg.eigh(H)
        d = -(V / w.abs()) @ (V.T @ g)
        se = torch.sqrt(torch.diagonal((V / w.abs()) @ V.T))
        return Step(d, newton=bool((w > 0).all()), slope=float(g @ d), size=float((d.abs() / se).max()))


def newton_solve(f, x0, maxit=100):
    test = FirstOf(StepBelow(1e-10), FloatingPointFloor(), Divergence())
    return solve(Autograd(f), torch.tensor(x0, dtype=torch.float64), control=Backtracking(), test=test, maxit=maxit)


def test_driver_on_a_quadratic():
    A = torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    res = newton_solve(lambda x: 0.5 * x @ A @ x - b @ x, [10.0, -10.0, 5.0])
    assert res.converged and res.reason == Reason.STEP and res.iterations <= 3
    np.testing.assert_allclose(res.x.numpy(), torch.linalg.solve(A, b).numpy(), rtol=1e-13)


def test_driver_on_rosenbrock():
    res = newton_solve(lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2, [-1.2, 1.0])
    assert res.converged and res.iterations < 60
    assert float((res.x - 1).abs().max()) < 1e-10


class Noisy:
    """f = 1e8 + x^2 / 2 with Newton steps perturbed by 1e-6: never below a 1e-8 step, but at the floor."""

    def evaluate(self, x):
        return 1e8 + 0.5 * float(x @ x)

    def propose(self, state):
        noise = 1e-6 * (-1) ** state.iteration
        d = -state.x + noise
        return Step(d, slope=float(state.x @ d), size=float(d.abs().max()))


def test_floor_rule_is_convergence_not_failure():
    x0 = torch.tensor([3.0], dtype=torch.float64)
    res = solve(Noisy(), x0, control=Backtracking(), test=FirstOf(StepBelow(1e-8), FloatingPointFloor()), maxit=100)
    assert res.converged and res.reason == Reason.FLOOR and res.iterations < 10
    # without the floor rule the Armijo test accepts steps that change nothing until maxit
    res = solve(Noisy(), x0, control=Backtracking(), test=StepBelow(1e-8), maxit=100)
    assert not res.converged and res.reason == Reason.MAXIT


class OneUlpWorse:
    """Every point but the start is one ulp worse: no step lowers the value."""

    def __init__(self, slope):
        self.slope = slope

    def evaluate(self, x):
        return 1.0 if float(x) == 0.0 else math.nextafter(1.0, 2.0)

    def propose(self, state):
        return Step(torch.ones(1, dtype=torch.float64), slope=self.slope, size=1.0)


def test_floor_rule_when_the_line_search_finds_nothing():
    x0 = torch.zeros(1, dtype=torch.float64)
    res = solve(OneUlpWorse(-1e-17), x0, control=Backtracking(), test=FloatingPointFloor(), maxit=10)
    assert res.converged and res.reason == Reason.FLOOR and float(res.x) == 0.0
    res = solve(OneUlpWorse(-1e-3), x0, control=Backtracking(), test=FloatingPointFloor(), maxit=10)
    assert not res.converged and res.reason == Reason.NO_POINT


class Bounded:
    """(x - 3)^2 defined only for x < 2 (invalid beyond: flagged, or a non-finite value); steps go straight to 3."""

    def __init__(self, fault):
        self.fault = fault

    def evaluate(self, x):
        v = float((x - 3) ** 2)
        if float(x) < 2:
            return v
        return Evaluation(v, valid=False) if self.fault == "invalid" else math.inf

    def propose(self, state):
        return Step(3 - state.x, newton=False)


@pytest.mark.parametrize("fault", ["invalid", "non-finite"])
def test_r_halving_towards_the_previous_point(fault):
    seen = []
    res = solve(Bounded(fault), torch.zeros(1, dtype=torch.float64), control=RHalving(max_halvings=25),
                test=RelativeChange(1e-10), maxit=5, callback=lambda s: seen.append(s))
    # 0 -> 3 is invalid, halved to 1.5; 1.5 -> 3 and 2.25 invalid, 1.875 valid; 1.875 -> 3, 2.4375, 2.15625,
    # 2.015625 invalid, 1.9453125 valid
    assert [float(s.x) for s in seen[:3]] == [1.5, 1.875, 1.9453125]
    assert seen[0].trial.rejected == (fault,) and seen[0].trial.fraction == 0.5
    assert seen[1].trial.rejected == (fault, fault) and seen[1].trial.shortened == 2
    assert seen[2].trial.shortened == 4 and seen[2].trial.fraction == 1 / 16
    assert res.shortened == 5 and not res.converged and res.reason == Reason.MAXIT


def test_package_errors_at_a_trial_point_propagate():
    class Raises(Bounded):
        def evaluate(self, x):
            if float(x) >= 2:
                raise tl.DataError("0s in V(mu) during the fit")
            return super().evaluate(x)

    with pytest.raises(tl.DataError, match="V\\(mu\\)"):
        solve(Raises("invalid"), torch.zeros(1, dtype=torch.float64), control=RHalving(), test=RelativeChange(),
              maxit=5)


def test_r_halving_needs_a_previous_point_and_gives_up():
    x0 = torch.zeros(1, dtype=torch.float64)
    res = solve(Bounded("invalid"), x0, control=RHalving(), test=RelativeChange(), maxit=5, anchored=False)
    assert res.reason == Reason.NO_POINT and "no previous point" in res.message
    res = solve(Bounded("invalid"), torch.full((1,), 1.99999, dtype=torch.float64), control=RHalving(max_halvings=2),
                test=RelativeChange(), maxit=5)
    assert res.reason == Reason.NO_POINT and "after 2 halvings" in res.message
    res = solve(Bounded("invalid"), x0, control=FullStep(), test=RelativeChange(), maxit=5)
    assert res.reason == Reason.NO_POINT and res.iterations == 1


class Newton1d:
    """Newton on a 1-d function, as glm's polish: full steps, relative changes."""

    def __init__(self, f):
        self.f = f

    def evaluate(self, x):
        return float(self.f(x))

    def propose(self, state):
        g = torch.autograd.functional.jacobian(lambda t: self.f(t).sum(), state.x)
        H = torch.autograd.functional.hessian(lambda t: self.f(t).sum(), state.x)
        return Step(-g / H.reshape(-1), newton=True)


def test_polish_rule_converges_to_rounding_and_detects_infinity():
    # glm's polish starts where R's rule stopped, knowing the relative change of R's last step
    x0 = torch.tensor([0.7], dtype=torch.float64)
    res = solve(Newton1d(lambda x: torch.exp(x) - 2 * x), x0, control=FullStep(), test=PolishRule(0.1), maxit=100)
    assert res.converged and res.reason == Reason.POLISHED and res.iterations < 6
    assert float(res.x) == pytest.approx(math.log(2), rel=4e-16)
    # exp(-x): Newton steps of 1 for ever, relative changes 1/x shrinking slowly
    res = solve(Newton1d(lambda x: torch.exp(-x)), torch.tensor([20.0], dtype=torch.float64), control=FullStep(),
                test=PolishRule(0.05), maxit=100)
    assert not res.converged and res.reason == Reason.DIVERGED and res.iterations == 3


def test_stage_hooks_see_every_stage():
    stages = []

    class Spy(StepBelow):
        def check(self, stage, state, step, trial=None):
            stages.append(stage)
            return super().check(stage, state, step, trial)

    A = torch.eye(2, dtype=torch.float64)
    res = solve(Autograd(lambda x: 0.5 * x @ A @ x), torch.ones(2, dtype=torch.float64), control=Backtracking(),
                test=Spy(1e-10), maxit=5)
    assert res.converged and stages == [Stage.PROPOSED, Stage.ACCEPTED, Stage.PROPOSED]


def test_a_step_given_as_a_point_lands_on_it_exactly():
    # x + (point - x) need not be point in floating point; a problem that computes the point (a least-squares
    # solve) gets it bit for bit, as glm's IRLS needs to match R
    target = torch.tensor([0.1 + 0.2, 1 / 3], dtype=torch.float64)

    class Solve:
        def evaluate(self, x):
            return float(((x - target) ** 2).sum())

        def propose(self, state):
            return Step(target - state.x, newton=False, point=target.clone())

    x0 = torch.tensor([1e8, -7.3], dtype=torch.float64)
    assert not torch.equal(x0 + (target - x0), target)
    res = solve(Solve(), x0, control=RHalving(), test=RelativeChange(), maxit=3)
    assert torch.equal(res.x, target)


def test_glm_irls_polish_and_mle_all_run_on_the_one_driver(monkeypatch):
    """glm's IRLS loop, its polish and tl.mle are the same solve() with different problems, controls and tests."""
    import importlib

    from torchlm.solvers import newton

    tlmle, tlirls = importlib.import_module("torchlm.models.mle"), importlib.import_module("torchlm.solvers.irls")

    calls = []
    real = newton.solve

    def spy(problem, x0, **kw):
        calls.append((type(problem).__name__, type(kw["control"]).__name__, type(kw["test"]).__name__))
        return real(problem, x0, **kw)

    monkeypatch.setattr(tlirls, "solve", spy)
    monkeypatch.setattr(tlmle, "solve", spy)
    mt = tl.datasets.load("mtcars")
    tl.glm("am ~ wt", mt, family=tl.families.Binomial(link="probit"), exact=True)
    tl.mle(lambda p, d: torch.nn.functional.softplus(p["a"] + p["b"] * d["wt"]) - d["am"] * (p["a"] + p["b"] * d["wt"]),
           {"a": 0.0, "b": 0.0}, data=mt[["am", "wt"]])
    kinds = {c[0] for c in calls}
    assert {"_IRLSProblem", "_PolishProblem"} <= kinds and len(kinds) == 3
    assert ("_IRLSProblem", "RHalving", "RelativeChange") in calls
    assert ("_PolishProblem", "FullStep", "PolishRule") in calls
