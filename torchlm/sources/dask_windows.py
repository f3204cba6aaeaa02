"""Order statistics collected in the pass that computes the values, from windows guessed on a sample of the rows.

An exact selection over partitions (torchlm.sources.dask_selection) needs a pass after the one that reads the
values: the sketches of that pass only bracket the wanted ranks. When a sample of the rows is at hand before
the values are computed (lm: a few rows of each piece come back with the QR factors), the sample's order
statistics guess key windows that hold the wanted ranks with a margin of WINDOW_SIGMAS standard errors of a
sample rank, and the pass that computes the values also returns, per partition, the count of its values below
each window and its keys inside. A rank whose window holds it (checked exactly from the counts) is read there;
any other falls back to the selection passes. The answer is exact either way: a guess only saves a pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from torchlm.sources.dask_selection import _HIGHEST, _LOWEST, _floats, keys_of

#: the margin of a guessed window on each side: standard errors of the sample's rank of a quantile
WINDOW_SIGMAS = 5.0
#: a partition piece returns a window's keys when they are at most this many times the share the sample
#: expects (plus WINDOW_MIN_KEYS); more (values ordered across partitions, heavy ties) drops the guess
WINDOW_SLACK = 4.0
WINDOW_MIN_KEYS = 4096
#: a piece's rows sampled for the guess: every SAMPLE_STRIDE-th (from its first)
SAMPLE_STRIDE = 1024


class Window(NamedTuple):
    """The answer for a guessed key window: the count of the values below it and their keys inside it (in no
    order), or None where a piece held more than its limit (the window is then not read)."""

    below: int
    keys: np.ndarray | None


def sample_positions(m: int) -> np.ndarray:
    """The positions of a piece of ``m`` rows that its sample for the guess takes.

    Parameters
    ----------
    m : int

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> from torchlm.sources.dask_windows import sample_positions
    >>> sample_positions(2500).tolist()
    [0, 1024, 2048]
    """
    return np.arange(0, m, SAMPLE_STRIDE)


def guess_windows(sample: np.ndarray, n: int, ranks: list[int]) -> tuple[tuple[int, int, float], ...]:
    """Key windows that should hold the wanted ranks of ``n`` values, guessed from a sample of them.

    Parameters
    ----------
    sample : numpy.ndarray
        float64 values of a sample of the rows (spread over all of them).
    n : int
        The number of values.
    ranks : list of int
        The wanted ranks (0-based).

    Returns
    -------
    tuple of (lo, hi, share)
        Inclusive key ranges, overlapping ones merged, with the share of the values the sample puts inside.

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_windows import guess_windows
    >>> [(share < 0.2) for _, _, share in guess_windows(np.arange(10000.0), 10**6, [250000, 750000])]
    [True, True]
    """
    keys = np.sort(keys_of(sample))
    m = len(keys)
    if not m or not ranks:
        return ()
    spans: list[tuple[int, int]] = []
    for k in sorted(ranks):
        q = min(max(k / max(n - 1, 1), 0.0), 1.0)
        j, half = q * (m - 1), WINDOW_SIGMAS * np.sqrt(m * q * (1 - q)) + 2
        a, b = int(np.floor(j - half)), int(np.ceil(j + half))
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(b, spans[-1][1]))
        else:
            spans.append((a, b))
    return tuple((int(keys[a]) if a >= 0 else _LOWEST, int(keys[b]) if b < m else _HIGHEST,
                  min(1.0, (min(b, m) - max(a, 0) + 1) / m)) for a, b in spans)


def window_answers(values: np.ndarray, windows: tuple[tuple[int, int, float], ...]) -> tuple[Window, ...]:
    """One piece's answers for the guessed windows: the count below each and the keys inside (within its limit).

    Parameters
    ----------
    values : numpy.ndarray
        The piece's float64 values.
    windows : tuple of (lo, hi, share)
        From :func:`guess_windows`.

    Returns
    -------
    tuple of Window
    """
    if not windows:  # the residual pass of a fit without a sample: nothing to collect
        return ()
    keys = keys_of(values)
    out = []
    for lo, hi, share in windows:
        inside = keys[(keys >= lo) & (keys <= hi)]
        limit = WINDOW_SLACK * share * len(keys) + WINDOW_MIN_KEYS
        out.append(Window(int((keys < lo).sum()), inside if len(inside) <= limit else None))
    return tuple(out)


def combine_windows(parts: list[tuple[Window, ...]]) -> tuple[Window, ...]:
    """Pieces' or partitions' answers (of the same windows) as one: counts added, keys joined.

    Parameters
    ----------
    parts : list of tuple of Window

    Returns
    -------
    tuple of Window
    """
    return tuple(Window(sum(w.below for w in same),
                        None if any(w.keys is None for w in same) else np.concatenate([w.keys for w in same]))
                 for same in zip(*parts))


def windowed_statistics(windows: tuple[Window, ...], ranks: list[int]) -> dict[int, float]:
    """The wanted ranks (0-based) that a window holds, read from its keys: exact order statistics.

    Parameters
    ----------
    windows : tuple of Window
        The combined answers of every partition.
    ranks : list of int

    Returns
    -------
    dict
        rank -> value, for the ranks found (the others need the selection passes).

    Examples
    --------
    >>> import numpy as np
    >>> from torchlm.sources.dask_windows import guess_windows, window_answers, windowed_statistics
    >>> values = np.random.default_rng(0).standard_normal(5001)
    >>> found = windowed_statistics(window_answers(values, guess_windows(values[::50], 5001, [2500])), [2500])
    >>> bool(found[2500] == np.median(values))
    True
    """
    found = {}
    for k in ranks:
        for w in windows:
            if w.keys is not None and 0 <= k - w.below < len(w.keys):
                at = k - w.below
                found[k] = float(_floats(np.partition(w.keys, at)[at: at + 1])[0])
                break
    return found
