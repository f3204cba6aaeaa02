"""Whole-job benchmark: formula -> fit -> vcov -> summary string, torchlm vs statsmodels (run by hand).

    python benchmarks/bench_lm.py                 # n = 1e5 and 1e6, p = 10 and 100, and a 50-level factor
    python benchmarks/bench_lm.py --quick         # n = 1e5 only
Prints medians of --repeats runs, the ratio statsmodels/torchlm, and torchlm's peak extra memory
(tracemalloc does not see torch's allocator, so peak RSS growth is measured in a child process).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd


def make_data(n: int, p: int, factor_levels: int = 0, seed: int = 0) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    beta = rng.standard_normal(p)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(p)])
    y = X @ beta + rng.standard_normal(n)
    rhs = " + ".join(df.columns)
    if factor_levels:
        g = rng.integers(0, factor_levels, n)
        df["g"] = pd.Categorical([f"L{k:02d}" for k in g])
        y = y + g * 0.01
        rhs += " + g"
    df["y"] = y
    return df, "y ~ " + rhs


def job_torchlm(df, formula):
    import torchlm as tl

    fit = tl.lm(formula, df)
    fit.vcov()
    return str(fit.summary())


def job_statsmodels(df, formula):
    import statsmodels.formula.api as smf

    fit = smf.ols(formula, df).fit()
    fit.cov_params()
    return str(fit.summary())


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_child(args, q):
    n, p, lev, which = args
    df, f = make_data(n, p, lev)
    job = job_torchlm if which == "torchlm" else job_statsmodels
    job(*make_data(1000, 3))  # imports and library start-up are not the job's memory
    gc.collect()
    base = _rss_mb()
    job(df, f)
    q.put(_rss_mb() - base)


def peak_extra_mb(n, p, lev, which) -> float:
    """Peak resident memory added by the job (beyond the data and imports), in a fresh process.

    VmHWM is the process's high-water mark, so the warm-up and data generation set a floor: the
    number is an upper bound on what the job itself adds.
    """
    q = mp.get_context("spawn").Queue()
    pr = mp.get_context("spawn").Process(target=_peak_child, args=((n, p, lev, which), q))
    pr.start()
    pr.join()
    return q.get() if not q.empty() else float("nan")


def timed(fn, *args, repeats=3) -> float:
    ts = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-statsmodels", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    configs = [(100_000, 10, 0), (100_000, 100, 0), (100_000, 10, 50)]
    if not a.quick:
        configs += [(1_000_000, 10, 0), (1_000_000, 100, 0), (1_000_000, 10, 50)]
    import torch

    print(f"# machine: {os.cpu_count()} cpus, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'n':>9} {'p':>4} {'factor':>6} {'design MB':>9} {'torchlm s':>10} {'statsm. s':>10} "
          f"{'ratio':>6} {'peak MB':>8}")
    job_torchlm(*make_data(1000, 3))  # warm-up (imports, torch init)
    for n, p, lev in configs:
        df, f = make_data(n, p, lev)
        ncol = p + 1 + max(lev - 1, 0)
        design_mb = n * ncol * 8 / 2**20
        t_tl = timed(job_torchlm, df, f, repeats=a.repeats)
        t_sm = float("nan") if a.no_statsmodels else timed(job_statsmodels, df, f, repeats=a.repeats)
        peak = float("nan") if a.no_memory else peak_extra_mb(n, p, lev, "torchlm")
        print(f"{n:>9} {p:>4} {lev:>6} {design_mb:>9.0f} {t_tl:>10.3f} {t_sm:>10.3f} {t_sm / t_tl:>6.1f} {peak:>8.0f}")
        sys.stdout.flush()
        del df


if __name__ == "__main__":
    main()
