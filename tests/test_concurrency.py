"""Fits from several threads at once give the serial numbers (issue 14).

torch.func's forward mode (jvp, jacfwd, hessian) keeps its dual level in process globals; before the lock in
torchlm.solvers.autograd.quiet, four concurrent tl.infer / tl.mle / probit / observed-information fits raised
"no level exists" or returned a zero Hessian. Each test runs 8 fits of one kind on ThreadPoolExecutor(8) and
compares them with the same fit run alone.

The comparison is bit for bit (np.array_equal). The serial reference runs in one worker thread, under the
same thread policy as the concurrent fits (torchlm.threads: a fit from a thread other than the main one runs
its chunks serially with one intra-op thread), so the concurrent fits execute the same operations in the same
order; with no state shared between them the results cannot differ in any bit. A tolerance would hide a
tangent lost to another thread's level only when it is small, which is exactly when it is silent.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from _support import fit_lbfgs
from torch.func import jacfwd

import torchlm as tl
from torchlm import threads
from torchlm.models.families import Binomial
from torchlm.solvers import autograd

N_THREADS = 8


@pytest.fixture(scope="module")
def d() -> pd.DataFrame:
    i = np.arange(1, 61)
    y = np.sin(1.3 * i) + 0.5 * np.sin(i)
    return pd.DataFrame({"y": y, "x": np.sin(i), "z": np.cos(0.7 * i), "g": np.array(list("abcd"))[(i - 1) % 4],
                         "b": (y + 0.3 * np.cos(3.1 * i) > 0).astype(float),
                         "c": np.round(np.exp(1 + 0.5 * np.sin(i))).astype(float)})


def _concurrent(fn) -> tuple[list, list]:
    """fn() once in a worker thread alone, then N_THREADS times at once: (reference, concurrent results)."""
    with ThreadPoolExecutor(1) as ex:
        ref = ex.submit(fn).result()
    barrier = threading.Barrier(N_THREADS)

    def start_together():
        barrier.wait()  # all threads enter the fit together, so their torch.func regions overlap
        return fn()

    with ThreadPoolExecutor(N_THREADS) as ex:
        futures = [ex.submit(start_together) for _ in range(N_THREADS)]
        got = [f.result() for f in futures]  # re-raises any exception a thread hit
    return ref, got


def _assert_same(ref, got):
    for r in got:
        assert len(r) == len(ref)
        for a, b in zip(ref, r):
            a, b = np.asarray(a), np.asarray(b)
            assert a.shape == b.shape and a.size > 0
            assert np.array_equal(a, b, equal_nan=True)


def test_lm_with_hc3_and_cluster_vcov(d):
    def fit():
        f = tl.lm("y ~ x + z + g", d)
        return f.coef(), f.vcov(), f.vcov("HC3"), f.vcov(cluster=d["g"]), f.hessian()

    _assert_same(*_concurrent(fit))


@pytest.mark.parametrize("family", ["binomial", Binomial(link="probit"), "poisson"], ids=["logit", "probit", "poisson"])
def test_glm(d, family):
    response = "c" if family == "poisson" else "b"

    def fit():
        f = tl.glm(f"{response} ~ x + z", d, family=family, exact=True)
        return f.coef(), f.vcov(), f.deviance, f.vcov("HC0")

    _assert_same(*_concurrent(fit))


def test_glm_observed_information(d):
    # (profile intervals are left out: about 10 s per fit here, and built from the same IRLS and Hessian code)
    def fit():
        f = tl.glm("b ~ x + z", d, family=Binomial(link="probit"), information="observed", exact=True)
        return f.coef(), f.vcov(), f.hessian(), f.std_errors("HC0")

    _assert_same(*_concurrent(fit))


class _Logistic(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, dtype=torch.float64)

    def forward(self, x):
        return self.lin(x).squeeze(-1)


def test_infer_on_one_shared_module(d):
    # one model object shared by every thread: tl.infer swaps tensors into its parameter slots while it runs
    X = torch.tensor(d[["x", "z"]].to_numpy())
    y = torch.tensor(d["b"].to_numpy())
    torch.manual_seed(0)
    model = _Logistic()
    loss = torch.nn.BCEWithLogitsLoss(reduction="sum")
    fit_lbfgs(model, loss, X, y)
    params = dict(model.named_parameters())

    def fit():
        f = tl.infer(model, loss, X, y)
        return f.coef(), f.hessian(), f.gradient, f.vcov(), f.vcov("HC0")

    ref, got = _concurrent(fit)
    _assert_same(ref, got)
    # the model holds its own Parameter objects afterwards, in training mode, as before
    assert all(p is params[n] for n, p in model.named_parameters()) and model.training
    # logistic regression: the same covariance as the binomial glm's (trained to ~1e-10 of the optimum)
    g = tl.glm("b ~ x + z", d, family="binomial", exact=True)
    np.testing.assert_allclose(ref[3].to_numpy()[np.ix_([2, 0, 1], [2, 0, 1])], g.vcov().to_numpy(), rtol=1e-6)


def test_mle_with_per_observation_nll(d):
    data = d[["x", "c"]]

    def nll(p, dd):
        eta = p["b0"] + p["b1"] * dd["x"]
        return torch.exp(eta) - dd["c"] * eta + torch.lgamma(dd["c"] + 1)

    def fit():
        f = tl.mle(nll, {"b0": 0.0, "b1": 0.0}, data)
        return f.coef(), f.vcov(), f.vcov("HC0"), [f.converged, f.iterations]

    ref, got = _concurrent(fit)
    _assert_same(ref, got)
    assert ref[3][0]
    # and the numbers are the Poisson glm's (same likelihood): a lost tangent cannot hide in both
    g = tl.glm("c ~ x", d, family="poisson", exact=True)
    np.testing.assert_allclose(ref[0].to_numpy(), g.coef().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(ref[1].to_numpy(), g.vcov().to_numpy(), rtol=1e-7)


def test_quiet_leaves_the_warnings_filters_alone():
    # warnings.catch_warnings swaps the process-global filter list for a copy while it is entered (not
    # thread-safe before Python 3.14): after the one-time preload of torch's forward-AD decompositions, a
    # torch.func region runs on the caller's own filter list
    autograd.quiet(jacfwd(lambda b: b**2))(torch.ones(2, dtype=torch.float64))
    outer = warnings.filters
    seen = []

    def region(b):
        seen.append(warnings.filters is outer)
        return jacfwd(lambda v: v**2)(b)

    J = autograd.quiet(region)(torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert seen == [True] and warnings.filters is outer
    assert torch.equal(J, torch.diag(torch.tensor([2.0, 6.0], dtype=torch.float64)))


def test_lock_is_reentrant_and_not_held_by_the_chunk_pool():
    # nested regions in one thread (the lock is re-entrant), and a multi-chunk autograd Jacobian whose QRs
    # run on pool threads while the caller takes the Jacobians: it finishes (no deadlock) with the lock free
    inner = autograd.quiet(jacfwd(lambda b: torch.sin(b)))
    outer = autograd.quiet(lambda b: inner(b) @ b)
    b = torch.tensor([0.5, -1.0], dtype=torch.float64)
    assert torch.allclose(outer(b), torch.cos(b) * b)
    X = torch.randn(3000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = X.sum(1)

    def chunks():
        # plain functions (no ``jacobian``/``augmented`` method): the autograd path, jacfwd per chunk
        return (lambda beta, s=s: X[s:s + 500] @ beta - y[s:s + 500] for s in range(0, 3000, 500))

    done = []

    def run():
        with threads.limit(2):  # a pool of two threads for this (non-main) thread's chunk work
            done.append(autograd.factor_jacobian(chunks, torch.zeros(3, dtype=torch.float64)))

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=60)
    assert done and done[0].shape == (4, 4)
    R = torch.linalg.qr(torch.cat([X, -y[:, None]], 1), mode="r").R
    assert torch.allclose(done[0].abs(), R.abs(), rtol=1e-10, atol=1e-10)
    assert autograd._FUNC_LOCK.acquire(blocking=False)
    autograd._FUNC_LOCK.release()
