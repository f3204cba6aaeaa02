"""How a Dask fit's passes are computed: the progress bar (tl.lm's ``progress=``) and torch's threads per task.

Each partition task runs with at most ``cores // threads`` torch intra-op threads, the threads being those that
run tasks side by side on the machine: a distributed worker's (all the workers' on its host, so that a
LocalCluster of several processes is counted whole), or the local threaded (processes) scheduler's pool, so that
the scheduler's parallelism is not multiplied by torch's own. The setting is the calling thread's only and is
restored when the task ends (:func:`torchlm.threads.limit`).

dask is imported only by the functions that need it: ``import torchlm`` works without it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from torchlm import threads

#: whether the passes of the current context show Dask's progress bar (tl.lm's and tl.glm's progress=)
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("torchlm_dask_progress", default=False)


@contextlib.contextmanager
def showing_progress(on: bool = True) -> Iterator[None]:
    """Every pass over the partitions inside the block shows Dask's progress bar (tl.lm's ``progress=True``).

    distributed's ``progress`` where the scheduler is a distributed Client, else
    ``dask.diagnostics.ProgressBar`` (the threaded, process and synchronous schedulers); both write to stdout.

    Parameters
    ----------
    on : bool
        Whether to show them (False: the block as it is).

    Yields
    ------
    None
    """
    token = _PROGRESS.set(bool(on))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def compute(tasks: list) -> list:
    """The tasks computed on the current scheduler, in order (with a progress bar within :func:`showing_progress`).

    Parameters
    ----------
    tasks : list of dask.delayed.Delayed

    Returns
    -------
    list
        Their results.
    """
    import dask

    if not _PROGRESS.get():
        return list(dask.compute(*tasks))
    client = _distributed_client(tasks)
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stdout):
            return list(dask.compute(*tasks))
    from distributed import progress

    futures = client.compute(tasks)
    progress(futures, notebook=False)
    sys.stdout.write("\n")  # distributed's text bar ends without one
    return list(client.gather(futures))


def _scheduler(tasks: list) -> Any:
    import dask.base

    return dask.base.get_scheduler(collections=tasks[:1] or None)


def _distributed_client(tasks: list) -> Any:
    """The distributed Client that dask.compute would use now, or None (a local scheduler)."""
    owner = getattr(_scheduler(tasks), "__self__", None)
    if owner is None or not type(owner).__module__.startswith("distributed"):
        return None
    return owner


def task_threads(tasks: list | None = None) -> int | dict[str, int]:
    """How many torch threads each partition task may use: a number (local schedulers) or, for a distributed
    Client, the threads its workers run on each host (the task divides its host's cores by them).

    Parameters
    ----------
    tasks : list, optional
        The pass's tasks (their default scheduler where none is set).

    Returns
    -------
    int or dict
    """
    import dask
    import dask.local
    import dask.multiprocessing

    scheduler = _scheduler(tasks or [])
    client = _distributed_client(tasks or [])
    if client is not None:
        hosts: dict[str, int] = {}
        for w in client.scheduler_info().get("workers", {}).values():
            hosts[w["host"]] = hosts.get(w["host"], 0) + int(w.get("nthreads", 1))
        return hosts
    if scheduler is dask.local.get_sync:
        return threads.available_cores()
    # the threaded scheduler's pool, or the process scheduler's processes (a task each, side by side)
    pool = None if scheduler is dask.multiprocessing.get else dask.config.get("pool", None)
    size = dask.config.get("num_workers", None) or getattr(pool, "_max_workers", None)
    return max(1, threads.available_cores() // int(size or threads.available_cores()))


#: rows of a piece: a reduction registered with :func:`by_pieces` reads a larger partition piece by piece
#: (2^17: a logistic glm on 40 partitions of 1e6 x 10 peaked at 1.66 GB where 2^18 gave 1.84 GB, in the same
#: time; 2^16 gave 1.41 GB at 1.08x the time)
PIECE_ROWS = 2**17
#: the reductions that may read a partition by pieces, with the combination of their pieces' results
_PIECES: dict[Callable[..., Any], Callable[[list], Any]] = {}


def by_pieces(combine: Callable[[list], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a partition reduction that reads a partition of more than PIECE_ROWS rows by pieces of rows.

    The task then holds one piece's design and vectors at a time (not the partition's: a 1e6-row partition of
    ten columns builds about 90 MB per copy), and ``combine`` makes the pieces' results the partition's (what
    the client combines over the partitions: factors stacked, sums added). Only reductions whose every row
    is reduced alike may be registered.

    Parameters
    ----------
    combine : callable
        The pieces' results, in row order, to one.

    Returns
    -------
    callable
        The decorator (it returns the reduction itself).

    Examples
    --------
    >>> from torchlm.frame.dask_compute import by_pieces
    >>> @by_pieces(sum)
    ... def rows(part, number):
    ...     return len(part)
    """
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _PIECES[fn] = combine
        return fn

    return register


def in_task(fn: Callable[..., Any], share: int | dict[str, int], part: Any, number: int, *args: Any) -> Any:
    """``fn(part, number, *args)`` with torch's intra-op threads limited to the task's share of the cores.

    A reduction registered with :func:`by_pieces` reads a long pandas partition by pieces of PIECE_ROWS rows.
    The memory freed by the task is handed back to the system at its end (glibc's and pyarrow's allocators
    keep it otherwise, and the threads' heaps grow with the number of partitions read).

    Parameters
    ----------
    fn : callable
        The partition task.
    share : int or dict
        :func:`task_threads`'s answer on the client.
    part : the partition (or its persisted rows)
    number : int
        Its position.
    *args : the task's further arguments.

    Returns
    -------
    Any
        ``fn``'s result.
    """
    combine = _PIECES.get(fn)
    try:
        with threads.limit(share if isinstance(share, int) else _worker_share(share)):
            if combine is None or not hasattr(part, "iloc") or len(part) <= PIECE_ROWS:
                return fn(part, number, *args)
            return combine([fn(part.iloc[a: a + PIECE_ROWS], number, *args) for a in range(0, len(part), PIECE_ROWS)])
    finally:
        release_memory()


def release_memory() -> None:
    """Hand the memory the process's allocators hold free back to the system (glibc's malloc_trim, pyarrow's pool).

    Returns
    -------
    None
    """
    if "pyarrow" in sys.modules:  # pyarrow's mimalloc keeps a partition's freed buffers
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None (another C library, another system)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _worker_share(hosts: dict[str, int]) -> int:
    """The cores of this distributed worker's host divided by the threads that run tasks on it."""
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        worker = get_worker()
    except (ImportError, ValueError):  # not on a worker after all (a client computing locally)
        return 1
    own = int(worker.state.nthreads)
    return max(1, threads.available_cores() // max(own, hosts.get(get_address_host(worker.address), own)))
