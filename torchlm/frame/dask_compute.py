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


def in_task(fn: Callable[..., Any], share: int | dict[str, int], part: Any, number: int, *args: Any) -> Any:
    """``fn(part, number, *args)`` with torch's intra-op threads limited to the task's share of the cores.

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
    with threads.limit(share if isinstance(share, int) else _worker_share(share)):
        return fn(part, number, *args)


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
