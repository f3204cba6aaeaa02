"""Concurrent glm.fit's over the same partitions, sharing their passes: one map answers every fit's next pass.

A profile's walks (one per coefficient and side, each a sequence of refits) are independent. Each walk runs in
its own thread, and each of its passes waits at a :class:`PassBatcher` until every live walk waits for one (or
has ended); then one map over the partitions builds each partition's rows once and computes every waiting
pass from them (:func:`irls_batch`). A pass's answer is what the pass alone would give (the same reduction,
:func:`torchlm.sources.dask_irls.irls_at`), so the walks end where running them one by one ends; the passes
over the data drop from their sum to about the longest walk's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from torchlm import threads
from torchlm.frame.dask_compute import by_pieces
from torchlm.frame.dask_frame import DaskPlan, map_partitions_computed
from torchlm.models.families import Family
from torchlm.sources.dask_glm_passes import IRLSPasses
from torchlm.sources.dask_irls import IRLSPart, Point, combine_irls, irls_at, rows_of
from torchlm.sources.dask_source import combine_qr

T = TypeVar("T")


def _combine_batches(pieces: list[list[IRLSPart]]) -> list[IRLSPart]:
    """Pieces' (or partitions') answers to the same requests, request by request."""
    return [combine_irls([piece[k] for piece in pieces], combine_qr) for k in range(len(pieces[0]))]


@by_pieces(_combine_batches)
def irls_batch(part: Any, number: int, plan: DaskPlan, family: Family, requests: tuple) -> list[IRLSPart]:
    """One partition's IRLS passes at several points: its rows built once, each request's IRLSPart from them.

    Parameters
    ----------
    part : pandas.DataFrame or GLMRows
    number : int
    plan : DaskPlan
    family : Family
    requests : tuple of (Point, columns, FinalSpec or None, fixed)
        As :func:`torchlm.sources.dask_irls.irls_reduction`'s arguments.

    Returns
    -------
    list of IRLSPart
        One per request, in order.
    """
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        return [irls_at(g, number, family, point, columns, final, fixed) for point, columns, final, fixed in requests]


class _Answer:
    """Where a waiting pass finds its IRLSPart (or the error of the batch's map)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value: IRLSPart | None = None
        self.error: BaseException | None = None


class PassBatcher:
    """Runs walks of IRLS fits in threads and answers their waiting passes together, one map per round.

    Parameters
    ----------
    source : dask.dataframe.DataFrame or PersistedRows
        What the passes map over.
    plan : DaskPlan
    family : Family
    """

    def __init__(self, source: Any, plan: DaskPlan, family: Family) -> None:
        self.source, self.plan, self.family = source, plan, family
        self._cond = threading.Condition()
        self._live = 0
        self._pending: list[tuple[tuple, _Answer]] = []
        self.rounds = 0  # the maps over the partitions so far

    def request(self, request: tuple) -> IRLSPart:
        """A walk's pass: waits for the round that answers it (called in the walk's thread).

        Parameters
        ----------
        request : tuple
            (Point, columns, FinalSpec or None, fixed).

        Returns
        -------
        IRLSPart
            The combined pass, as IRLSPasses.reduce gives it.
        """
        answer = _Answer()
        with self._cond:
            self._pending.append((request, answer))
            self._cond.notify_all()
        answer.ready.wait()
        if answer.error is not None:
            raise answer.error
        assert answer.value is not None  # internal: set with ready
        return answer.value

    def run(self, walks: list[Callable[[], T]]) -> list[T]:
        """Each walk in its own thread, their passes answered from this one; the results in the walks' order.

        Parameters
        ----------
        walks : list of callables
            Each makes its passes through :meth:`request` (BatchedPasses).

        Returns
        -------
        list
            The walks' results; the first failed walk's error (in the walks' order) is raised.
        """
        results: list[Any] = [None] * len(walks)
        errors: list[BaseException | None] = [None] * len(walks)

        def body(k: int) -> None:
            try:
                results[k] = walks[k]()
            except BaseException as e:  # re-raised below, in this order
                errors[k] = e
            finally:
                with self._cond:
                    self._live -= 1
                    self._cond.notify_all()

        self._live = len(walks)
        workers = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(len(walks))]
        for w in workers:
            w.start()
        while True:
            with self._cond:
                # every live walk waits for a pass (a walk between passes only solves a small QR)
                self._cond.wait_for(lambda: self._live == 0 or len(self._pending) == self._live)
                if not self._pending:
                    break
                batch, self._pending = self._pending, []
            self._serve(batch)
        for w in workers:
            w.join()
        if failed := next((e for e in errors if e is not None), None):
            raise failed
        return results

    def _serve(self, batch: list[tuple[tuple, _Answer]]) -> None:
        """One map over the partitions for a round of waiting passes."""
        try:
            self.rounds += 1
            parts = map_partitions_computed(self.source, irls_batch, self.plan, self.family,
                                            tuple(request for request, _ in batch))
            totals = _combine_batches(parts)
        except BaseException as e:  # every waiting walk fails with it
            for _, answer in batch:
                answer.error = e
                answer.ready.set()
            return
        for (_, answer), total in zip(batch, totals):
            answer.value = total
            answer.ready.set()


class BatchedPasses(IRLSPasses):
    """IRLSPasses whose passes go through a PassBatcher (a walk's refit, in its thread).

    Parameters
    ----------
    batcher : PassBatcher
    *args, **kwargs : IRLSPasses's.
    """

    def __init__(self, batcher: PassBatcher, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batcher = batcher

    def reduce(self, point: Point, final: Any = None) -> IRLSPart:
        """The pass, answered with the other walks' waiting passes.

        Returns
        -------
        IRLSPart
        """
        return self.batcher.request((point, self.columns, final, self.fixed))
