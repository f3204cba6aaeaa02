"""Beyond memory: tl.lm / tl.glm on a Dask DataFrame read from parquet, against the in-memory fit and dask-ml.

Each (job, tool) runs in its own process, so that its peak resident memory is its own. Run by hand:

    .venv/bin/python benchmarks/bench_dask.py --rows 100000000 --dir /tmp/bench_parquet   # issue 11's 1e8 x 10
    .venv/bin/python benchmarks/bench_dask.py --rows 1000000 --jobs overhead               # a quick look

Jobs:
    parquet    tl.lm and a logistic tl.glm of y ~ x0..x9 on dd.read_parquet(dir) (files of 1e6 rows, written once),
               the whole job (fit and summary text), Dask's threaded scheduler; and the in-memory job on a tenth
               of the rows (pandas), whose time x 10 is the target's scale
    overhead   1e7 x 20 (--wide-rows) already in memory: tl.lm / tl.glm of pandas input against the same frame as a
               Dask DataFrame of 8 partitions (threads)
    daskml     dask-ml's LogisticRegression (coefficients only, no penalty) on the overhead job's data, beside tl.glm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

FILE_ROWS = 1_000_000


def frame(n: int, k: int, seed: int) -> pd.DataFrame:
    """n rows of k standard normal columns, a gaussian response y and a logistic one yb.

    Returns
    -------
    pandas.DataFrame
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, k))
    beta = np.linspace(-0.5, 0.5, k)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(k)])
    eta = X @ beta
    df["y"] = eta + rng.standard_normal(n)
    df["yb"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    return df


def write_parquet(directory: str, rows: int, k: int = 10) -> None:
    """The parquet files of the parquet job (one of FILE_ROWS rows per seed), unless they are there.

    Returns
    -------
    None
    """
    os.makedirs(directory, exist_ok=True)
    for i in range(max(1, rows // FILE_ROWS)):
        path = os.path.join(directory, f"part-{i:05d}.parquet")
        if not os.path.exists(path):
            frame(min(rows, FILE_ROWS), k, seed=i).to_parquet(path, index=False)


def _formula(k: int, lhs: str) -> str:
    return f"{lhs} ~ " + " + ".join(f"x{j}" for j in range(k))


def run_one(job: str, tool: str, a: argparse.Namespace) -> dict:
    """One (job, tool) in this process: seconds of the whole job and the first slope.

    Returns
    -------
    dict
    """
    warnings.simplefilter("ignore")
    import dask
    import dask.dataframe as dd

    import torchlm as tl

    dask.config.set(scheduler="threads", num_workers=os.cpu_count())
    kind, _, model = tool.partition(":")
    fit_one = (lambda d: tl.lm(_formula(10 if job == "parquet" else 20, "y"), d)) if model == "lm" else \
        (lambda d: tl.glm(_formula(10 if job == "parquet" else 20, "yb"), d, family="binomial"))
    if job == "parquet":
        if kind == "dask":
            data = dd.read_parquet(a.dir)
        else:  # the in-memory job on a tenth of the rows
            files = sorted(os.listdir(a.dir))[: max(1, len(os.listdir(a.dir)) // 10)]
            data = pd.concat([pd.read_parquet(os.path.join(a.dir, f)) for f in files], ignore_index=True)
    else:
        pdf = frame(a.wide_rows, 20, seed=1)
        data = dd.from_pandas(pdf, npartitions=8) if kind == "dask" else pdf
    t = time.perf_counter()
    if kind == "daskml":
        from dask_ml.linear_model import LogisticRegression

        ddf = dd.from_pandas(pdf, npartitions=8)
        X = ddf[[f"x{j}" for j in range(20)]].to_dask_array(lengths=True)
        y = ddf["yb"].to_dask_array(lengths=True)
        # dask-ml has no unpenalized fit: an L2 penalty of 1e-12 (C = 1e12) leaves the maximum likelihood
        est = LogisticRegression(penalty="l2", C=1e12, fit_intercept=True, solver="lbfgs", max_iter=100).fit(X, y)
        b0 = float(np.asarray(est.coef_).ravel()[0])
    else:
        fit = fit_one(data)
        text = str(fit.summary())
        assert text
        b0 = float(fit.coef()["x0"])
    return {"seconds": time.perf_counter() - t, "x0": b0, "rows": len(data) if kind != "daskml" else a.wide_rows}


JOBS = {
    "parquet": ["pandas:lm", "dask:lm", "pandas:glm", "dask:glm"],
    "overhead": ["pandas:lm", "dask:lm", "pandas:glm", "dask:glm"],
    "daskml": ["pandas:glm", "daskml:glm"],
}


def main() -> None:
    """Run every (job, tool) in a subprocess and print the table.

    Returns
    -------
    None
    """
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000_000, help="rows of the parquet job")
    ap.add_argument("--wide-rows", type=int, default=10_000_000, help="rows of the overhead and daskml jobs")
    ap.add_argument("--dir", default="/tmp/bench_parquet")
    ap.add_argument("--jobs", default="parquet,overhead,daskml")
    ap.add_argument("--one", nargs=2, metavar=("JOB", "TOOL"))
    a = ap.parse_args()
    if a.one:
        out = run_one(a.one[0], a.one[1], a)
        out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(out))
        return
    if "parquet" in a.jobs:
        t = time.perf_counter()
        write_parquet(a.dir, a.rows)
        print(f"parquet files in {a.dir}: {time.perf_counter() - t:.0f} s to write (0 when already there)")
    print(f"{'job':9} {'tool':11} {'rows':>12} {'seconds':>9} {'peak GB':>8} {'x0':>20}")
    for job in a.jobs.split(","):
        for tool in JOBS[job]:
            args = [sys.executable, __file__, "--rows", str(a.rows), "--wide-rows", str(a.wide_rows), "--dir", a.dir,
                    "--one", job, tool]
            p = subprocess.run(args, capture_output=True, text=True, timeout=7200)
            if p.returncode:
                print(f"{job:9} {tool:11} failed: {p.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{job:9} {tool:11} {r['rows']:12,} {r['seconds']:9.2f} {r['peak_gb']:8.2f} {r['x0']:20.15f}",
                  flush=True)


if __name__ == "__main__":
    main()
