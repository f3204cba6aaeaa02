"""Whole-job benchmark of robust covariances: formula -> fit -> HC1 / clustered vcov, torchlm vs statsmodels.

    python benchmarks/bench_sandwich.py                  # n = 1e6, p = 20, 1000 clusters
    python benchmarks/bench_sandwich.py --n 100000       # smaller
Prints the median (and fastest) of --repeats runs, the ratio statsmodels/torchlm of the medians,
torchlm's peak extra memory (fresh process, as bench_lm.py) and the largest relative difference
between the two covariances (both use R's conventions: HC1 = n/(n-k) HC0; clustered: the cluster-sum
meat times G/(G-1) (n-1)/(n-k), sandwich::vcovCL(type = "HC1")).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lm import _rss_mb, make_data, timed  # noqa: E402

GROUPS = 1000


def data(n: int, p: int):
    df, formula = make_data(n, p)
    df["firm"] = np.random.default_rng(1).integers(0, GROUPS, n)
    return df, formula


def tl_job(df, formula, kind):
    import torchlm as tl

    fit = tl.lm(formula, df)
    return fit.vcov("HC1") if kind == "HC1" else fit.vcov(cluster="firm")


def sm_job(df, formula, kind):
    import statsmodels.formula.api as smf

    if kind == "HC1":
        fit = smf.ols(formula, df).fit(cov_type="HC1")
    else:
        fit = smf.ols(formula, df).fit(cov_type="cluster", cov_kwds={"groups": df["firm"].to_numpy()})
    return fit.cov_params()


def _peak_child(args, q):
    n, p, kind = args
    df, f = data(n, p)
    tl_job(*data(1000, 3), kind)  # imports and library start-up are not the job's memory
    gc.collect()
    base = _rss_mb()
    tl_job(df, f, kind)
    q.put(_rss_mb() - base)


def peak_extra_mb(n, p, kind) -> float:
    """Peak resident memory the torchlm job adds beyond data and imports, in a fresh (spawned) process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    pr = ctx.Process(target=_peak_child, args=((n, p, kind), q))
    pr.start()
    pr.join()
    return q.get() if not q.empty() else float("nan")


def median_and_min(fn, *args, repeats=5) -> tuple[float, float]:
    """Median and fastest wall time: on a shared machine the fastest run is the one least disturbed."""
    ts = [timed(fn, *args, repeats=1) for _ in range(repeats)]
    return statistics.median(ts), min(ts)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import statsmodels
    import torch

    print(f"# machine: {os.cpu_count()} cpus, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"statsmodels {statsmodels.__version__}")
    print(f"{'n':>9} {'p':>4} {'vcov':>13} {'design MB':>9} {'torchlm s (min)':>16} {'statsm. s (min)':>16} "
          f"{'ratio':>6} {'peak MB':>8} {'max rel diff':>12}")
    tl_job(*data(1000, 3), "HC1")  # warm-up (imports, torch init)
    df, f = data(a.n, a.p)
    design_mb = a.n * (a.p + 1) * 8 / 2**20
    for kind in ("HC1", "cluster"):
        (t_tl, m_tl), (t_sm, m_sm) = (median_and_min(job, df, f, kind, repeats=a.repeats) for job in (tl_job, sm_job))
        V_tl, V_sm = tl_job(df, f, kind).to_numpy(), np.asarray(sm_job(df, f, kind))
        d = np.sqrt(np.diag(V_sm))
        diff = float(np.max(np.abs(V_tl - V_sm) / np.outer(d, d)))
        peak = float("nan") if a.no_memory else peak_extra_mb(a.n, a.p, kind)
        label = kind if kind == "HC1" else f"cluster({GROUPS})"
        print(f"{a.n:>9} {a.p:>4} {label:>13} {design_mb:>9.0f} {t_tl:>8.3f} ({m_tl:.3f}) {t_sm:>8.3f} ({m_sm:.3f}) "
              f"{t_sm / t_tl:>6.1f} {peak:>8.0f} {diff:>12.1e}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
