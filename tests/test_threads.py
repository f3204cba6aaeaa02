"""Thread policy (torchlm.threads): chunk-parallel QR, bit for bit the serial one; never oversubscribed; restored."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
import torchlm.solvers.least_squares as tlfit
from torchlm import threads
from torchlm.solvers.autograd import factor_jacobian
from torchlm.solvers.least_squares import LinearResidual

needs_control = pytest.mark.skipif(not threads.per_thread_control(),
                                   reason="per-thread OpenMP/MKL control unavailable in this torch build")


def mkl_threads() -> int | None:
    """mkl_get_max_threads() as the calling thread sees it (torch's parallel_info reports it per thread)."""
    m = re.search(r"mkl_get_max_threads\(\) : (\d+)", torch.__config__.parallel_info())
    return int(m.group(1)) if m else None


def data(n=30_000, p=8, seed=0, weighted=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(p)])
    df["y"] = X @ rng.standard_normal(p) + rng.standard_normal(n)
    if weighted:
        df["w"] = rng.uniform(0.1, 5, n)
    return df, "y ~ " + " + ".join(df.columns[:p])


def chunks_of(n=20_000, p=12, rows=997, seed=1, weighted=True):
    """Multi-chunk residuals (uneven last chunk), with sqrt-weights: the path that builds blocks in the pool."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, dtype=torch.float64, generator=g) * torch.logspace(-2, 2, p, dtype=torch.float64)
    y = torch.randn(n, dtype=torch.float64, generator=g)
    sw = torch.rand(n, dtype=torch.float64, generator=g).sqrt() if weighted else None
    return lambda: (LinearResidual(X[s:s + rows], y[s:s + rows], None if sw is None else sw[s:s + rows])
                    for s in range(0, n, rows))


def serial_tsqr(chunks, beta):
    """The TSQR fold written out, one thread, chunk order: what every pool size must reproduce exactly."""
    with threads.intra_op(1):
        R = None
        for fn in chunks():
            Rb = torch.linalg.qr(fn.augmented(beta), mode="r").R
            R = Rb if R is None else torch.linalg.qr(torch.cat([R, Rb]), mode="r").R
    return R


@needs_control
@pytest.mark.parametrize("size", [2, 3, 5])
def test_parallel_factor_is_the_serial_factor_bit_for_bit(monkeypatch, size):
    chunks = chunks_of()
    beta = torch.linspace(-1, 1, 12, dtype=torch.float64)
    want = serial_tsqr(chunks, beta)
    seen = set()
    qr = torch.linalg.qr

    def spy(*a, **k):
        seen.add((threading.current_thread().name.split("_")[0], torch.get_num_threads()))
        return qr(*a, **k)

    monkeypatch.setattr(threads, "workers", lambda: size)  # a pool of `size` threads whatever the machine
    monkeypatch.setattr(torch.linalg, "qr", spy)
    got = factor_jacobian(chunks, beta)
    assert torch.equal(got, want)
    # the chunk QRs ran on pool threads, each with one intra-op thread; merges in the caller, also one
    assert ("torchlm-chunk", 1) in seen and ("MainThread", 1) in seen
    assert {t for _, t in seen} == {1}
    with threads.limit(1):
        assert torch.equal(factor_jacobian(chunks, beta), want)


@needs_control
def test_autograd_chunks_also_parallel_and_exact(monkeypatch):
    """Residuals without ``augmented`` (autograd Jacobian, taken in the calling thread) give the same factor."""
    chunks = chunks_of(n=6000, p=5, rows=500)
    beta = torch.linspace(-1, 1, 5, dtype=torch.float64)

    class Plain:
        def __init__(self, fn):
            self.fn = fn

        def __call__(self, b):
            return self.fn(b)

    plain = lambda: (Plain(fn) for fn in chunks())  # noqa: E731
    with threads.limit(1):
        want = factor_jacobian(plain, beta)
    monkeypatch.setattr(threads, "workers", lambda: 2)
    assert torch.equal(factor_jacobian(plain, beta), want)
    # and agrees with the closed-form Jacobian's factor to rounding (same Gram matrix)
    R = factor_jacobian(chunks, beta)
    torch.testing.assert_close(R.T @ R, want.T @ want, rtol=1e-12, atol=1e-9)


def test_single_chunk_keeps_householder_path():
    """One chunk: unblocked Householder (R's arithmetic), no pool."""
    from torchlm.solvers.autograd import householder_qr

    chunks = chunks_of(n=400, p=4, rows=400)
    beta = torch.zeros(4, dtype=torch.float64)
    fn = next(iter(chunks()))
    assert torch.equal(factor_jacobian(chunks, beta), householder_qr(fn.augmented(beta)))
    assert factor_jacobian(lambda: iter(()), beta).shape == (0, 5)


@pytest.mark.parametrize("weighted", [False, True])
def test_lm_from_four_threads_matches_serial_and_leaves_threads_alone(monkeypatch, weighted):
    monkeypatch.setattr(tlfit, "CHUNK_ELEMENTS", 2048 * 9)  # about 2k-row chunks: 20 of them
    df, f = data(weighted=weighted)
    kw = {"weights": "w"} if weighted else {}
    before = torch.get_num_threads(), mkl_threads()
    ref = tl.lm(f, df, **kw)
    ref_coef, ref_vcov = ref.coef().to_numpy(), ref.vcov().to_numpy()
    start = threading.Barrier(4)

    def fit():
        start.wait()  # all four at once
        m = tl.lm(f, df, **kw)
        return m.coef().to_numpy(), m.vcov().to_numpy()

    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(lambda _: fit(), range(4)))
    for coef, vcov in out:
        np.testing.assert_array_equal(coef, ref_coef)
        np.testing.assert_array_equal(vcov, ref_vcov)
    assert (torch.get_num_threads(), mkl_threads()) == before
    # nor for threads started afterwards (torch.set_num_threads from a worker would leak there)
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert seen == [before[0]]


@needs_control
def test_limit_sets_and_restores_this_thread_only():
    n0, m0 = torch.get_num_threads(), mkl_threads()
    other = {}
    inside = threading.Event()
    release = threading.Event()

    def watcher():
        inside.wait()
        other["n"] = torch.get_num_threads()
        release.set()

    t = threading.Thread(target=watcher)
    t.start()
    with threads.limit(1):
        assert torch.get_num_threads() == 1
        assert mkl_threads() in (None, 1)
        assert threads.workers() == 1
        inside.set()
        release.wait(10)
        with threads.limit(3):  # nested limits only lower the budget
            assert torch.get_num_threads() == 1 and threads.workers() == 1
    t.join()
    assert other["n"] == n0  # another thread kept its own setting meanwhile
    assert (torch.get_num_threads(), mkl_threads()) == (n0, m0)
    with pytest.raises(RuntimeError):
        with threads.limit(1):
            raise RuntimeError("boom")
    assert (torch.get_num_threads(), mkl_threads()) == (n0, m0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            with threads.limit(bad):
                pass


@needs_control
def test_chunked_scope_single_threads_caller_and_keeps_budget():
    n0 = torch.get_num_threads()
    budget = threads.workers()
    with threads.chunked() as n:
        assert n == budget
        assert torch.get_num_threads() == 1
        assert threads.workers() == budget  # reduce_chunks inside still gets the pool
    assert torch.get_num_threads() == n0


def test_worker_threads_and_nested_calls_run_serially(monkeypatch):
    sizes = []
    real = threads.ChunkPool.__init__

    def record(self, size):
        sizes.append(size)
        real(self, size)

    monkeypatch.setattr(threads.ChunkPool, "__init__", record)
    chunks = chunks_of(n=8000, p=6, rows=1000)
    beta = torch.zeros(6, dtype=torch.float64)
    want = factor_jacobian(chunks, beta)
    sizes.clear()
    got = {}

    def in_thread():
        got["workers"] = threads.workers()
        got["n"] = torch.get_num_threads()
        got["R"] = factor_jacobian(chunks, beta)
        got["after"] = torch.get_num_threads()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert got["workers"] == 1 and sizes == [1]  # a user's thread: serial
    assert got["after"] == got["n"]  # and its settings restored
    assert torch.equal(got["R"], want)
    sizes.clear()

    # from inside a chunk worker: serial too (no pool within a pool)
    inner = []

    def work(i):
        inner.append(threads.workers())
        return threads.reduce_chunks(lambda x: x * 2, range(i), lambda a, r: a + r, 0)

    # a budget of two pool threads in the main thread, whatever the machine (pool threads still get 1)
    monkeypatch.setattr(threads, "_default_budget", lambda: 2)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    assert threads.reduce_chunks(work, range(6), lambda a, r: (a or []) + [r]) == [i * (i - 1) for i in range(6)]
    monkeypatch.undo()
    assert len(inner) == 6 and set(inner) == {1}

    # with a limit granted, a thread may use more than one
    if threads.per_thread_control() and torch.get_num_threads() > 1 and threads.available_cores() > 1:
        def granted():
            with threads.limit(2):
                got["granted"] = threads.workers()

        t = threading.Thread(target=granted)
        t.start()
        t.join()
        assert got["granted"] == 2


def test_pool_keeps_order_and_bounds_memory():
    drawn = []

    def items():
        for i in range(40):
            drawn.append(i)
            yield i

    pool = threads.ChunkPool(2)
    try:
        out = []
        for r in pool.map(lambda i: i * i, items()):
            out.append(r)
            # items drawn but not yet consumed: at most two per thread in flight, plus the one just yielded
            assert len(drawn) - len(out) <= threads.IN_FLIGHT_PER_WORKER * 2
        assert out == [i * i for i in range(40)]
    finally:
        pool.close()


def test_errors_in_chunk_work_propagate():
    def work(i):
        if i == 7:
            raise ValueError("chunk 7")
        return i

    pool = threads.ChunkPool(2)
    try:
        with pytest.raises(ValueError, match="chunk 7"):
            list(pool.map(work, range(20)))
    finally:
        pool.close()
    n0 = torch.get_num_threads()
    with pytest.raises(ValueError):
        threads.reduce_chunks(work, range(20), lambda a, r: r)
    assert torch.get_num_threads() == n0


def test_large_fit_uses_the_pool(monkeypatch):
    """A multi-chunk lm from the main thread draws a pool as large as the policy allows."""
    sizes = []
    real = threads.ChunkPool.__init__

    def record(self, size):
        sizes.append(size)
        real(self, size)

    monkeypatch.setattr(threads.ChunkPool, "__init__", record)
    monkeypatch.setattr(tlfit, "CHUNK_ELEMENTS", 1024 * 5)
    df, f = data(n=5000, p=4)
    tl.lm(f, df)
    expect = min(torch.get_num_threads(), threads.available_cores()) if threads.per_thread_control() else 1
    assert sizes == [expect]
