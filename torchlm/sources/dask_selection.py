"""Exact order statistics of per-row values spread over Dask partitions, in one or two passes after a sketch.

The values never travel: each pass asks every partition, for a few ranges of keys (the values' float64 bit
patterns, ordered as the floats), how many of its values lie below each range and either their counts in bins
of the range or, once a range is small, its values themselves. A pass that already reads the rows for other
sums (lm's residual sums, glm's final pass) also returns each partition's :class:`Sketch`: its sorted values
at evenly spaced ranks. The sketches bracket every wanted rank between two keys holding about
3 n / SKETCH_POINTS values, so that one more pass collects them, where counting alone would take three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from torchlm.errors import FitError
from torchlm.frame.dask_frame import map_partitions_computed

#: bins of each counting pass (each pass narrows the range of a value's bit pattern by this)
SELECTION_BINS = 2048
#: a range holding at most this many values (over all the partitions) is collected, sorted, and read
SELECTION_COLLECT = 2**20
#: points of a partition's sketch (its values at evenly spaced ranks)
SKETCH_POINTS = 4096
_SIGN_OFF = np.int64(0x7FFFFFFFFFFFFFFF)
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1


def keys_of(values: np.ndarray) -> np.ndarray:
    """Each float64's bit pattern as an int64 that sorts as the floats do (-0.0 just below +0.0).

    Parameters
    ----------
    values : numpy.ndarray

    Returns
    -------
    numpy.ndarray
        int64 keys.

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_selection import keys_of
    >>> bool(np.all(np.diff(keys_of(np.array([-2.0, -0.0, 0.0, 1e-300, 3.0]))) > 0))
    True
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ _SIGN_OFF, bits)


def _floats(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, keys ^ _SIGN_OFF, keys).astype(np.int64)
    return bits.view(np.float64)


@dataclass(frozen=True)
class Sketch:
    """One partition's values at evenly spaced ranks: ``keys[i]`` is its value of rank ``ranks[i]`` (0-based) of
    ``size``; the first and the last ranks are always there."""

    size: int
    ranks: np.ndarray
    keys: np.ndarray


def sketch_of(values: np.ndarray, points: int = SKETCH_POINTS) -> Sketch:
    """The Sketch of a partition's values (one sort).

    Parameters
    ----------
    values : numpy.ndarray
        float64 values.
    points : int
        Ranks kept (at most; all the values when fewer).

    Returns
    -------
    Sketch

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_selection import sketch_of
    >>> s = sketch_of(np.arange(10.0)[::-1], points=3)
    >>> s.size, s.ranks.tolist()
    (10, [0, 4, 9])
    """
    keys = np.sort(keys_of(values))
    m = len(keys)
    ranks = np.unique(np.linspace(0, m - 1, min(m, points)).round().astype(np.int64)) if m else np.zeros(0, np.int64)
    return Sketch(m, ranks, keys[ranks])


def _steps(sketches: list[Sketch], side: str) -> tuple[np.ndarray, np.ndarray]:
    """Every sketch key, sorted, with the cumulative bound it steps: for side "less", an upper bound of the count
    of values below a key (the ranks of each partition's first sketch key at or above it); for "leq", a lower
    bound of the count of values at or below it (each partition's last sketch key at or below it, plus one)."""
    keys, steps = [], []
    for s in sketches:
        if not s.size:
            continue
        # the bound just past each key; before the first key both bounds are 0 (a sketch starts at rank 0)
        after = np.append(s.ranks[1:], s.size) if side == "less" else s.ranks + 1
        keys.append(s.keys)
        steps.append(np.diff(after, prepend=0))
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k, d = np.concatenate(keys), np.concatenate(steps)
    order = np.argsort(k, kind="stable")
    return k[order], np.cumsum(d[order])


def brackets(sketches: list[Sketch], ranks: list[int]) -> dict[int, tuple[int, int, int]]:
    """For each wanted rank (0-based, of all the partitions' values): keys (lo, hi) that hold it, and an upper bound
    of the count of values between them.

    Parameters
    ----------
    sketches : list of Sketch
        One per partition.
    ranks : list of int

    Returns
    -------
    dict
        rank -> (lo, hi, count bound), a starting range of :func:`order_statistics`.

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_selection import brackets, keys_of, sketch_of
    >>> values = [np.arange(0.0, 100.0, 2), np.arange(1.0, 100.0, 2)]  # 0..99 over two partitions
    >>> lo, hi, bound = brackets([sketch_of(v, 6) for v in values], [50])[50]
    >>> bool(keys_of(np.array([50.0]))[0] >= lo), bool(keys_of(np.array([50.0]))[0] <= hi), bound < 100
    (True, True, True)
    """
    less_keys, less_cum = _steps(sketches, "less")
    leq_keys, leq_cum = _steps(sketches, "leq")
    below = _below_bounds(less_keys, less_cum)
    out = {}
    for k in ranks:
        # lo: the largest key below which at most k values can lie (so the rank-k value is at least lo)
        j = int(np.searchsorted(below, k, side="right")) - 1
        lo = int(less_keys[j]) if j >= 0 else _LOWEST
        # hi: the smallest key at or below which at least k + 1 values lie (so the rank-k value is at most hi)
        i = int(np.searchsorted(leq_cum, k + 1, side="left"))
        hi = int(leq_keys[i]) if i < len(leq_keys) else _HIGHEST
        out[k] = (lo, hi, _values_between(sketches, lo, hi))
    return out


def _below_bounds(keys: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """The upper bound of the values below each key (the steps of the keys strictly below it)."""
    first = np.searchsorted(keys, keys, side="left")
    return np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)


def _values_between(sketches: list[Sketch], lo: int, hi: int) -> int:
    """An upper bound of the count of values in [lo, hi]: per partition, the ranks from its last sketch key below
    lo to its first sketch key above hi."""
    total = 0
    for s in sketches:
        if not s.size:
            continue
        a = int(np.searchsorted(s.keys, lo, side="left")) - 1
        b = int(np.searchsorted(s.keys, hi, side="right"))
        start = int(s.ranks[a]) + 1 if a >= 0 else 0
        stop = int(s.ranks[b]) if b < len(s.keys) else s.size
        total += max(stop - start, 0)
    return total


class RangeAnswer(NamedTuple):
    """A partition's answer for one key range: the count of its values below the range, and either their counts
    in the range's bins or (a range to collect) their sorted keys in it."""

    below: int
    bins: np.ndarray | None
    keys: np.ndarray | None


def combine_range_answers(pieces: list[list[RangeAnswer]]) -> list[RangeAnswer]:
    """Pieces' answers (of the same ranges) as one: counts added, keys merged.

    Parameters
    ----------
    pieces : list of list of RangeAnswer

    Returns
    -------
    list of RangeAnswer
    """
    out = []
    for same in zip(*pieces):
        below = sum(a.below for a in same)
        if same[0].keys is not None:
            out.append(RangeAnswer(below, None, np.sort(np.concatenate([a.keys for a in same]))))
        else:
            out.append(RangeAnswer(below, np.sum([a.bins for a in same], axis=0), None))
    return out


def range_counts(values: np.ndarray, ranges: tuple[tuple[int, int, int], ...]) -> list[RangeAnswer]:
    """For each key range (lo, hi, width): the count of ``values`` below lo, and their counts in bins of ``width``
    keys or (width 0) their sorted keys in the range.

    Parameters
    ----------
    values : numpy.ndarray
        float64 values (their bit patterns are the keys).
    ranges : tuple of (lo, hi, width)

    Returns
    -------
    list of RangeAnswer

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_selection import keys_of, range_counts
    >>> lo, hi = keys_of(np.array([1.0, 3.0]))
    >>> answer = range_counts(np.array([0.0, 1.0, 2.0, 5.0]), ((int(lo), int(hi), 0),))[0]
    >>> answer.below, len(answer.keys)
    (1, 2)
    """
    keys = keys_of(values)
    out = []
    for lo, hi, width in ranges:
        below = int((keys < lo).sum())
        inside = keys[(keys >= lo) & (keys <= hi)]
        if width == 0:
            out.append(RangeAnswer(below, None, np.sort(inside)))
            continue
        # key - lo fits an unsigned 64-bit integer for any two int64 keys
        offset = inside.astype(np.uint64) - np.uint64(lo % 2**64)
        bins = np.bincount((offset // np.uint64(width)).astype(np.int64), minlength=SELECTION_BINS)
        out.append(RangeAnswer(below, bins, None))
    return out


def order_statistics(ddf: Any, plan: Any, est: Any, n: int, ranks: list[int], counts: Any,
                     collect: int = SELECTION_COLLECT, sketches: list[Sketch] | None = None) -> dict[int, float]:
    """The exact order statistics (0-based ranks) of per-row values, by passes of counts over the partitions.

    Each pass narrows the range of keys that holds each wanted rank by SELECTION_BINS; a range of at most
    ``collect`` values is collected and read. From sketches of the values (a pass that read them), the ranges
    start at their brackets: usually one pass collects them all. Memory per pass is O(bins) per partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    plan, est : what ``counts`` takes.
    n : int
        The number of values.
    ranks : list of int
        The wanted ranks, 0 .. n - 1.
    counts : callable
        ``counts(part, number, plan, est, ranges)``: a partition's :func:`range_counts` of its values (a list of
        RangeAnswer).
    collect : int
        Largest count of values a range may hold to be collected.
    sketches : list of Sketch, optional
        The partitions' sketches of the values.

    Returns
    -------
    dict
        rank -> value.
    """
    start = brackets(sketches, list(set(ranks))) if sketches else {}
    state = {k: start.get(k, (_LOWEST, _HIGHEST, n)) for k in set(ranks)}  # lo, hi, bound of the values inside
    found: dict[int, float] = {}
    while len(found) < len(state):
        open_ranges = sorted({s for k, s in state.items() if k not in found})
        asks = tuple((lo, hi, 0 if cnt <= collect else -(-(hi - lo + 1) // SELECTION_BINS))
                     for lo, hi, cnt in open_ranges)
        answers = map_partitions_computed(ddf, counts, plan, est, asks)
        for j, ((lo, hi, width), (_, _, cnt)) in enumerate(zip(asks, open_ranges)):
            below = sum(a[j].below for a in answers)
            ks = [k for k, s in state.items() if k not in found and s == (lo, hi, cnt)]
            if width == 0:
                keys = np.sort(np.concatenate([a[j].keys for a in answers]))
                for k in ks:
                    if not 0 <= k - below < len(keys):
                        raise FitError("the values changed between the passes over the Dask partitions (an "
                                       "order statistic is not where the earlier pass put it)")
                    found[k] = float(_floats(keys[k - below: k - below + 1])[0])
                continue
            binned = np.sum([a[j].bins for a in answers], axis=0)
            cum = np.cumsum(binned)
            for k in ks:
                b = int(np.searchsorted(cum, k - below, side="right"))
                if not 0 <= k - below < int(cum[-1]):
                    raise FitError("the values changed between the passes over the Dask partitions (an "
                                   "order statistic is not where the earlier pass put it)")
                nlo = lo + b * width
                nhi = min(hi, nlo + width - 1)
                if nlo == nhi:
                    found[k] = float(_floats(np.array([nlo], dtype=np.int64))[0])
                state[k] = (nlo, nhi, int(binned[b]))
    return found
