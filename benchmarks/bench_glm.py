"""Whole-job benchmark for logistic regression: formula -> glm fit -> vcov -> summary string, torchlm vs statsmodels.

    python benchmarks/bench_glm.py              # n = 1e6, p = 20 (the issue's target) and n = 1e5, p = 20
    python benchmarks/bench_glm.py --quick      # n = 1e5 only
Prints medians of --repeats runs and the ratio statsmodels/torchlm; checks that both reach the same estimates.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import pandas as pd


def make_data(n: int, p: int, seed: int = 0) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    beta = rng.standard_normal(p) * 0.3
    eta = -0.5 + X @ beta
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(p)])
    df["y"] = y
    return df, "y ~ " + " + ".join(f"x{j}" for j in range(p))


def job_torchlm(df, formula):
    import torchlm as tl

    fit = tl.glm(formula, df, family="binomial")
    fit.vcov()
    str(fit.summary())
    return fit.coef().to_numpy()


def job_statsmodels(df, formula):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fit = smf.glm(formula, df, family=sm.families.Binomial()).fit()
    fit.cov_params()
    str(fit.summary())
    return fit.params.to_numpy()


def timed(job, df, f, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = job(df, f)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [(100_000, 20)] + ([] if args.quick else [(1_000_000, 20)])
    warnings.simplefilter("ignore")
    job_torchlm(*make_data(1000, 3))  # imports and start-up are not the job
    job_statsmodels(*make_data(1000, 3))
    print("| n | p | torchlm s | statsmodels s | ratio | max coef rel diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, p in sizes:
        df, f = make_data(n, p)
        t_tl, b_tl = timed(job_torchlm, df, f, args.repeats)
        t_sm, b_sm = timed(job_statsmodels, df, f, args.repeats)
        diff = float(np.max(np.abs(b_tl - b_sm) / np.abs(b_sm)))
        print(f"| {n:.0e} | {p} | {t_tl:.3f} | {t_sm:.3f} | {t_sm / t_tl:.1f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
