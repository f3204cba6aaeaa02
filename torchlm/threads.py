"""How torchlm uses threads: chunk-level parallelism with one intra-op thread per chunk, never oversubscribed.

Large fits process the design in row chunks of about 10k rows. Factoring each chunk with torch's
default intra-op parallelism means thousands of short OpenMP parallel regions, each ending in a
barrier; on a shared machine one descheduled thread stalls every region, and a fit that takes
0.9 s alone takes 10-30 s beside two other busy processes. Here the parallelism is chosen
deliberately instead:

* chunk work (the QR of one block, a Gram product) runs on a small pool of Python threads, each
  with ONE intra-op thread (torch releases the GIL inside LAPACK and BLAS), so no thread ever
  waits at a barrier for another;
* the pool has as many threads as the cores this process may run on (``os.sched_getaffinity``),
  capped by ``torch.get_num_threads()``, and by :func:`limit` where a caller set one;
* the thread that draws the chunks and combines their results does so with one intra-op thread,
  and :func:`chunked` extends that to a whole fit (its whole-vector arithmetic too);
* a call from a thread other than the main thread (a user's thread pool, a Dask worker) or from
  inside a chunk worker runs serially with one intra-op thread unless the caller granted threads
  with :func:`limit`, so torchlm never multiplies its threads by somebody else's;
* results are combined in the calling thread in chunk order, and every chunk and every combination
  is computed with one intra-op thread whatever the pool size, so results are bit-for-bit the same
  for any number of threads.

The intra-op thread count is set per OS thread (OpenMP's ``omp_set_num_threads`` sets the calling
thread's ICV; MKL's ``mkl_set_num_threads_local`` is thread-local), always restored afterwards.
``torch.set_num_threads`` is not used: besides the calling thread's OpenMP setting it changes a
process-wide value that every thread started later inherits. Where torch's parallel backend is
not OpenMP or its runtime cannot be found, the per-thread setting is unavailable; then chunks run
serially with torch's own settings (the behaviour before this module).

Typical use (a chunked reduction, combined in a fixed order)::

    from torchlm import threads
    R = threads.reduce_chunks(lambda fn: qr_r(fn.augmented(beta)), chunks(), merge)
    G = threads.reduce_chunks(lambda s: gram(X[s], w[s]), row_slices, lambda a, g: g if a is None else a + g)

a whole chunked fit, parallel only across chunks::

    with threads.chunked():
        ...                     # IRLS steps: vector arithmetic single-threaded, reduce_chunks parallel

and, for a caller that runs fits inside its own workers::

    with threads.limit(1):      # this task may use one thread
        fit = tl.lm("y ~ x", df)
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch

from torchlm.errors import OptionError

__all__ = ["available_cores", "per_thread_control", "workers", "intra_op", "limit", "chunked", "ChunkPool",
           "chunk_pool", "reduce_chunks"]

T = TypeVar("T")
U = TypeVar("U")

# chunks queued or running per pool thread: enough to keep the threads busy while the calling
# thread prepares the next one, few enough that memory stays a handful of blocks
IN_FLIGHT_PER_WORKER = 2

_local = threading.local()  # .caps: stack of budgets (limit, chunked); .worker: True in a chunk-pool thread


class _Runtime:
    """ctypes handles on the OpenMP and MKL thread controls that torch itself uses (None: unavailable)."""

    def __init__(self) -> None:
        self.omp_set: Any = None
        self.omp_get: Any = None
        self.mkl_local: Any = None
        try:
            if "ATen parallel backend: OpenMP" not in torch.__config__.parallel_info():
                return
            lib = os.path.join(os.path.dirname(torch.__file__), "lib")
            names = glob.glob(os.path.join(lib, "libtorch_cpu.*")) + glob.glob(os.path.join(lib, "torch_cpu.dll"))
            if not names:
                return
            # dlsym on torch's own library finds the OpenMP runtime it is linked against (and MKL,
            # linked into it or beside it): exactly the copies that torch's parallel regions use
            handle = ctypes.CDLL(names[0])
            omp_set, omp_get = handle.omp_set_num_threads, handle.omp_get_max_threads
            omp_set.argtypes, omp_set.restype = [ctypes.c_int], None
            omp_get.argtypes, omp_get.restype = [], ctypes.c_int
            try:
                # the Fortran entry point (argument by reference) exists in static and dynamic MKL alike
                mkl = handle.mkl_set_num_threads_local_
                mkl.argtypes, mkl.restype = [ctypes.POINTER(ctypes.c_int)], ctypes.c_int
            except AttributeError:
                mkl = None
        except (AttributeError, OSError):
            return
        if _probe(omp_set, omp_get):
            self.omp_set, self.omp_get, self.mkl_local = omp_set, omp_get, mkl

    @property
    def ok(self) -> bool:
        """Whether the controls were found and work."""
        return self.omp_set is not None


def _probe(omp_set: Any, omp_get: Any) -> bool:
    """Whether setting OpenMP's count in a fresh thread is what torch then reports there (the same runtime)."""
    seen = []

    def run():
        torch.get_num_threads()
        prev = omp_get()
        omp_set(1)
        seen.append(torch.get_num_threads())
        omp_set(prev)

    t = threading.Thread(target=run, name="torchlm-probe")
    t.start()
    t.join()
    return seen == [1]


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()


def _rt() -> _Runtime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = _Runtime()
    return _runtime


def per_thread_control() -> bool:
    """Whether the intra-op thread count can be set for one OS thread (torch on OpenMP, runtime found).

    Without it :func:`intra_op` and :func:`limit` cannot change how many threads torch uses, and
    chunk work runs serially.

    Returns
    -------
    bool
    """
    return _rt().ok


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where affinity is unknown).

    Returns
    -------
    int
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _caps() -> list[int]:
    """This thread's stack of thread budgets (pool threads allowed), pushed by limit() and chunked()."""
    stack = getattr(_local, "caps", None)
    if stack is None:
        stack = _local.caps = []
    return stack


def _default_budget() -> int:
    """Threads allowed without any limit() or chunked() in force: the cap below (1 off the main thread)."""
    if getattr(_local, "worker", False) or not per_thread_control() or not _in_main_thread():
        return 1
    return torch.get_num_threads()


def workers() -> int:
    """Pool threads a chunked computation started from this thread may use now (1: run serially).

    The smallest of: the cores available to the process (their affinity) and the budget in
    force: the innermost :func:`limit` or :func:`chunked`, or else ``torch.get_num_threads()``
    in the main thread and 1 in any other thread (a user's thread pool, a Dask worker), so that
    torchlm's threads never multiply somebody else's. Always 1 inside a chunk-pool thread and
    where the per-thread setting is unavailable (see :func:`per_thread_control`).

    Returns
    -------
    int
        At least 1.
    """
    if getattr(_local, "worker", False) or not per_thread_control():
        return 1
    stack = _caps()
    cap = stack[-1] if stack else _default_budget()
    return max(1, min(cap, available_cores()))


def _set_intra_op(n: int) -> tuple[int, int | None]:
    """Set this OS thread's OpenMP and MKL thread counts to n; returns the previous (omp, mkl local) values."""
    rt = _rt()
    # first touch torch's lazy per-thread initialisation, which would otherwise overwrite the
    # setting at this thread's first parallel region
    torch.get_num_threads()
    prev_omp = rt.omp_get()
    rt.omp_set(n)
    prev_mkl = None if rt.mkl_local is None else rt.mkl_local(ctypes.byref(ctypes.c_int(n)))
    return prev_omp, prev_mkl


def _restore_intra_op(prev: tuple[int, int | None]) -> None:
    rt = _rt()
    rt.omp_set(prev[0])
    if prev[1] is not None:
        rt.mkl_local(ctypes.byref(ctypes.c_int(prev[1])))


@contextlib.contextmanager
def intra_op(n: int) -> Iterator[None]:
    """Run the block with at most n intra-op threads in this OS thread only (others are unaffected).

    Sets OpenMP's and MKL's thread counts for the calling thread and restores them on exit;
    ``torch.get_num_threads()`` in this thread reports n inside the block. Does nothing where the
    per-thread setting is unavailable (:func:`per_thread_control`).

    Parameters
    ----------
    n : int
        Threads (at least 1). It is not capped here; :func:`limit` caps it by the current count.

    Yields
    ------
    None
    """
    if n < 1:
        raise OptionError(f"intra_op needs at least 1 thread, not {n}")
    if not per_thread_control():
        yield
        return
    prev = _set_intra_op(int(n))
    try:
        yield
    finally:
        _restore_intra_op(prev)


@contextlib.contextmanager
def limit(n: int) -> Iterator[None]:
    """Let torchlm calls in this block, from this thread, use at most n threads in all.

    For a caller that runs fits in its own workers (a Dask task, a thread pool): ``with
    limit(1): tl.lm(...)`` keeps the fit to one thread. Inside the block this thread's torch
    intra-op threads are at most n (restored on exit; other threads are unaffected) and chunked
    computations use at most n pool threads of one intra-op thread each. In a thread other than
    the main thread, ``limit(n)`` is also how to grant more than the default 1 (up to
    ``torch.get_num_threads()``). Nested limits can only lower the budget.

    Parameters
    ----------
    n : int
        Threads this block may use (at least 1).

    Yields
    ------
    None
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise OptionError(f"limit needs a positive whole number of threads, not {n!r}")
    stack = _caps()
    outer = stack[-1] if stack else (torch.get_num_threads() if per_thread_control() else 1)
    cap = min(int(n), outer)
    stack.append(cap)
    try:
        if per_thread_control() and cap < torch.get_num_threads():
            with intra_op(cap):
                yield
        else:
            yield
    finally:
        stack.pop()


@contextlib.contextmanager
def chunked(size: int | None = None) -> Iterator[int]:
    """Parallelism across chunks only, for the block: this thread single-threaded, chunk pools kept.

    The budget of pool threads is fixed at entry (:func:`workers`, at most ``size``); inside,
    the calling thread's own torch operations (whole-vector arithmetic, small factorizations,
    combining chunk results) run with one intra-op thread, so they never wait at an OpenMP
    barrier for a descheduled thread, while :func:`reduce_chunks` and :func:`chunk_pool` still
    use the budget. Meant to wrap a whole chunked fit (an IRLS loop). Yields the budget.

    Parameters
    ----------
    size : int, optional
        At most this many pool threads (default: what :func:`workers` allows).

    Yields
    ------
    int
        The budget of pool threads (1: chunk work runs serially in this thread).
    """
    n = workers() if size is None else max(1, min(int(size), workers()))
    stack = _caps()
    stack.append(n)
    try:
        with intra_op(1):
            yield n
    finally:
        stack.pop()


def _worker_init(grad: bool) -> None:
    _local.worker = True
    torch.set_grad_enabled(grad)  # thread-local in torch: follow the calling thread
    _set_intra_op(1)  # the thread ends with the pool: nothing to restore


class ChunkPool:
    """Threads that run chunk work with one intra-op thread each, results delivered in input order.

    Made by :func:`chunk_pool`. ``size`` 1 means serial: work runs in the calling thread.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor = None if size <= 1 else ThreadPoolExecutor(
            size, thread_name_prefix="torchlm-chunk", initializer=_worker_init,
            initargs=(torch.is_grad_enabled(),))

    def map(self, fn: Callable[[T], U], items: Iterable[T], in_flight: int | None = None) -> Iterator[U]:
        """fn(item) for each item, in item order; items are drawn lazily, a bounded number ahead.

        Parameters
        ----------
        fn : callable
            The chunk work; runs on a pool thread with one intra-op thread (or in the calling
            thread when the pool is serial). It must not rely on the calling thread's state other
            than torch's grad mode, which is copied.
        items : iterable
            Drawn in the calling thread (a generator that builds blocks keeps building them here),
            at most ``in_flight`` ahead of the result being consumed.
        in_flight : int, optional
            Items queued or running at once; default IN_FLIGHT_PER_WORKER per pool thread.

        Yields
        ------
        fn(item), item by item.
        """
        if self._executor is None:
            for item in items:
                yield fn(item)
            return
        limit_ = max(1, in_flight or IN_FLIGHT_PER_WORKER * self.size)
        pending: collections.deque[Future] = collections.deque()
        it = iter(items)
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit_:
                    try:
                        item = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(self._executor.submit(fn, item))
                    del item  # the pool holds it (and its block) only until it is done
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        """Wait for running work and end the pool's threads (the pool is serial afterwards)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


@contextlib.contextmanager
def chunk_pool(size: int | None = None) -> Iterator[ChunkPool]:
    """A :class:`ChunkPool` for the block, the calling thread kept to one intra-op thread meanwhile.

    The calling thread draws the items and combines the results: single-threaded (as in
    :func:`chunked`), so that the combination is the same arithmetic for every pool size and
    does not compete with the pool.

    Parameters
    ----------
    size : int, optional
        Pool threads; default (and at most) :func:`workers`. 1 runs everything serially in the
        calling thread, still with one intra-op thread.

    Yields
    ------
    ChunkPool
    """
    with chunked(size) as n:
        pool = ChunkPool(n)
        try:
            yield pool
        finally:
            pool.close()


def reduce_chunks(work: Callable[[T], U], items: Iterable[T], combine: Callable[[Any, U], Any],
                  initial: Any = None, size: int | None = None) -> Any:
    """Fold ``combine`` over ``work(item)`` in item order, the work in parallel (see :func:`chunk_pool`).

    ``acc = initial; for item in items: acc = combine(acc, work(item))``, with ``combine(None, r)``
    expected to start the fold when initial is None. The order of combination never depends on
    scheduling, and every work item and combination runs with one intra-op thread, so the result is
    bit-for-bit the same for any number of threads (TSQR merges, Gram sums X'WX).

    Parameters
    ----------
    work : callable
        Per-item work, e.g. ``lambda fn: torch.linalg.qr(fn.augmented(beta), mode="r").R``.
    items : iterable
        Chunks, drawn lazily in the calling thread (at most two per pool thread in flight).
    combine : callable
        ``combine(acc, result) -> acc``, run in the calling thread.
    initial : optional
        Starting value of the fold.
    size : int, optional
        Pool threads (default :func:`workers`).

    Returns
    -------
    The fold's final value (``initial`` when there are no items).
    """
    acc = initial
    with chunk_pool(size) as pool:
        for r in pool.map(work, items):
            acc = combine(acc, r)
    return acc
