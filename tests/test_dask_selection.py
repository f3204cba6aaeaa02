"""Exact order statistics over partitions from sketches (sources/dask_selection.py) and from windows guessed on
a sample (sources/dask_windows.py), and the blocked R factor (solvers/tall_qr.py), checked against numpy on the
same values, with ties, signed zeros and empty partitions."""

import numpy as np
import pandas as pd
import pytest
import torch

from torchlm.solvers.tall_qr import weighted_r_factor
from torchlm.sources.dask_selection import (
    SELECTION_BINS,
    brackets,
    combine_range_answers,
    keys_of,
    order_statistics,
    range_counts,
    sketch_of,
)
from torchlm.sources.dask_windows import (
    combine_windows,
    guess_windows,
    sample_positions,
    window_answers,
    windowed_statistics,
)

dd = pytest.importorskip("dask.dataframe")
dask = pytest.importorskip("dask")


def _partitions(rng, kind):
    out = []
    for _ in range(int(rng.integers(1, 7))):
        m = int(rng.integers(0, 2500))
        if kind == "normal":
            out.append(rng.standard_normal(m))
        elif kind == "ties":
            out.append(rng.integers(-3, 3, m).astype(float))
        else:  # signed zeros and a few others: keys order -0.0 below +0.0, as numpy's sort keeps them
            out.append(rng.choice([0.0, -0.0, 1e-300, -2.5], m))
    return out


@pytest.mark.parametrize("kind", ["normal", "ties", "zeros"])
def test_brackets_hold_the_rank_and_bound_the_values_between(kind):
    rng = np.random.default_rng({"normal": 1, "ties": 2, "zeros": 3}[kind])
    for _ in range(60):
        parts = _partitions(rng, kind)
        keys = np.sort(keys_of(np.concatenate(parts)))
        if not len(keys):
            continue
        points = int(rng.integers(2, 100))
        ranks = sorted({0, len(keys) - 1, *rng.integers(0, len(keys), 4).tolist()})
        for k, (lo, hi, bound) in brackets([sketch_of(p, points) for p in parts], ranks).items():
            assert lo <= keys[k] <= hi
            assert ((keys >= lo) & (keys <= hi)).sum() <= bound


def test_brackets_are_narrow_for_continuous_values():
    rng = np.random.default_rng(4)
    parts = [rng.standard_normal(100_000) for _ in range(20)]
    n = 2_000_000
    bounds = [b for _, _, b in brackets([sketch_of(p, 1024) for p in parts], [n // 4, n // 2]).values()]
    assert max(bounds) < 4 * n / 1024  # about 2 n / points: one collecting pass, whatever n


def test_range_counts_give_the_count_below_and_the_keys_or_bins():
    values = np.array([-1.0, 0.0, 0.5, 2.0, 2.0, 7.0])
    lo, hi = (int(k) for k in keys_of(np.array([0.0, 2.0])))
    width = -(-(hi - lo + 1) // SELECTION_BINS)  # as order_statistics asks: SELECTION_BINS bins over the range
    collected, binned = range_counts(values, ((lo, hi, 0), (lo, hi, width)))
    assert collected.below == binned.below == 1
    assert np.array_equal(collected.keys, np.sort(keys_of(np.array([0.0, 0.5, 2.0, 2.0]))))
    assert binned.bins.sum() == 4 and collected.bins is None and binned.keys is None
    ranges = ((lo, hi, 0), (lo, hi, width))
    pieces = [range_counts(values[:3], ranges), range_counts(values[3:], ranges)]
    merged = combine_range_answers(pieces)
    assert merged[0].below == 1 and np.array_equal(merged[0].keys, collected.keys)
    assert np.array_equal(merged[1].bins, binned.bins)


def _values_counts(part, number, plan, est, ranges):
    return range_counts(np.asarray(part["v"], dtype=np.float64), ranges)


@pytest.mark.parametrize("use_sketch", [True, False])
def test_order_statistics_over_dask_partitions_equal_numpy(use_sketch, monkeypatch):
    import torchlm.sources.dask_selection as sel

    rng = np.random.default_rng(5)
    v = np.concatenate([rng.standard_normal(3000), np.zeros(500), -np.zeros(200), rng.integers(0, 4, 800) * 1.0])
    rng.shuffle(v)
    ddf = dd.from_pandas(pd.DataFrame({"v": v}), npartitions=7)
    parts = [np.asarray(ddf.get_partition(i).compute()["v"]) for i in range(ddf.npartitions)]
    n, ranks = len(v), [0, 1, 999, 2249, 2250, 4499]
    passes = []
    real = sel.map_partitions_computed
    monkeypatch.setattr(sel, "map_partitions_computed", lambda *a: passes.append(1) or real(*a))
    sketches = [sketch_of(p, 64) for p in parts] if use_sketch else None
    with dask.config.set(scheduler="sync"):
        got = order_statistics(ddf, None, None, n, ranks, _values_counts, collect=2000, sketches=sketches)
    want = v[np.argsort(keys_of(v), kind="stable")]  # as np.sort, with -0.0 before +0.0
    assert all(got[k] == want[k] and np.signbit(got[k]) == np.signbit(want[k]) for k in ranks)
    if use_sketch:
        assert len(passes) == 1  # the sketches' brackets (about 2 n / 64 values, and the ties) are collected at once
    else:
        assert len(passes) >= 2


@pytest.mark.parametrize("kind", ["normal", "ties", "zeros"])
def test_guessed_windows_give_exact_order_statistics_or_none(kind):
    """Whatever the sample, a rank read from a window is numpy's; a sample spread over the rows finds them all."""
    rng = np.random.default_rng({"normal": 11, "ties": 12, "zeros": 13}[kind])
    found_all = 0
    for trial in range(40):
        parts = _partitions(rng, kind)
        values = np.concatenate(parts)
        if not len(values):
            continue
        want = values[np.argsort(keys_of(values), kind="stable")]
        n = len(values)
        ranks = sorted({0, n - 1, n // 4, n // 2, (3 * n) // 4, *rng.integers(0, n, 2).tolist()})
        # every 1024th row of each piece, as the QR pass samples; half the trials a sample of one partition only
        sample = np.concatenate([p[sample_positions(len(p))] for p in parts]) if trial % 2 else parts[0][:50]
        windows = guess_windows(sample, n, ranks)
        answers = combine_windows([window_answers(p, windows) for p in parts])
        got = windowed_statistics(answers, ranks)
        assert all(got[k] == want[k] and np.signbit(got[k]) == np.signbit(want[k]) for k in got)
        found_all += trial % 2 and len(got) == len(ranks)
    assert found_all >= 15


def test_a_window_over_its_limit_is_not_read():
    """Values ordered across the partitions put a window's keys in one piece: more than its share, dropped."""
    values = np.arange(2_000_000.0)
    windows = guess_windows(values[::1024], len(values), [1_000_000])
    ordered = combine_windows([window_answers(values[i:i + 200_000], windows) for i in range(0, 2_000_000, 200_000)])
    assert ordered[0].keys is None and windowed_statistics(ordered, [1_000_000]) == {}
    shuffled = np.random.default_rng(3).permutation(values)
    spread = combine_windows([window_answers(shuffled[i:i + 200_000], windows) for i in range(0, 2_000_000, 200_000)])
    assert windowed_statistics(spread, [1_000_000]) == {1_000_000: 1_000_000.0}


def test_weighted_r_factor_matches_the_normal_equations():
    rng = np.random.default_rng(6)
    X, t, sw = rng.standard_normal((5000, 4)), rng.standard_normal(5000), rng.uniform(0.5, 2, 5000)
    A = np.column_stack([X[:, [0, 2]], t]) * sw[:, None]
    R = weighted_r_factor(np.asfortranarray(X), t, sw, columns=[0, 2])
    assert R.shape == (3, 3) and np.allclose(np.tril(R, -1), 0)
    assert np.allclose(R.T @ R, A.T @ A, rtol=1e-12)
    assert np.allclose(np.abs(np.diag(R)), np.abs(np.diag(np.linalg.qr(A, mode="r"))), rtol=1e-12)
    # fewer rows than columns, no rows, torch input
    assert weighted_r_factor(X[:2], t[:2]).shape == (2, 5)
    assert weighted_r_factor(X[:0], t[:0]).shape == (0, 5)
    Rt = weighted_r_factor(torch.from_numpy(X), torch.from_numpy(t))
    At = np.column_stack([X, t])
    assert np.allclose(Rt.T @ Rt, At.T @ At, rtol=1e-12)
