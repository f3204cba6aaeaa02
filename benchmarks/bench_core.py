"""Before/after benchmark of the core jobs, two checkouts of torchlm side by side in one run (run by hand).

    python benchmarks/bench_core.py --before /path/to/old/checkout [--repeats 5]

Jobs (whole job: formula -> fit -> vcov -> summary string): lm 1e6 x 100, logistic glm 1e6 x 20,
lm 1e6 x 20 with vcov("HC1"). Each (checkout, job) runs in a fresh process, alternating between
the checkouts, so both see the same machine state; prints medians and the peak resident memory
the job added above the process after data generation (ru_maxrss growth).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
import torchlm as tl
job, repeats = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
n, p = 1_000_000, (100 if job == "lm100" else 20)
# column by column, so that the high-water mark before the job is the data frame itself
cols, lin = {}, np.zeros(n)
for j in range(p):
    cols[f"x{j}"] = rng.standard_normal(n)
    lin += cols[f"x{j}"] * rng.standard_normal() * (0.3 if job == "logit20" else 1.0)
df = pd.DataFrame(cols, copy=False)
del cols
if job == "logit20":
    df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(lin - 0.5)))).astype(float)
else:
    df["y"] = lin + rng.standard_normal(n)
del lin
f = "y ~ " + " + ".join(f"x{j}" for j in range(p))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if job == "logit20":
            fit = tl.glm(f, df, family="binomial"); fit.vcov()
        elif job == "hc1":
            fit = tl.lm(f, df); fit.vcov("HC1")
        else:
            fit = tl.lm(f, df); fit.vcov()
        str(fit.summary())
    times.append(time.perf_counter() - t0)
    del fit
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"times": times, "peak_mb": peak}))
"""


def run(src: str, job: str, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, src, job, str(repeats)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="checkout of the earlier code")
    ap.add_argument("--after", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jobs", default="lm100,logit20,hc1")
    a = ap.parse_args(argv)
    print("| job | before s | after s | after/before | before peak MB | after peak MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for job in a.jobs.split(","):
        res: dict[str, list] = {"before": [], "after": []}
        peaks: dict[str, float] = {}
        # alternate single-repeat processes so that drift in the machine's state hits both alike
        for _ in range(a.repeats):
            for k, src in (("before", a.before), ("after", a.after)):
                r = run(src, job, 1)
                res[k] += r["times"]
                peaks[k] = max(peaks.get(k, 0.0), r["peak_mb"])
        b, c = statistics.median(res["before"]), statistics.median(res["after"])
        print(f"| {job} | {b:.3f} | {c:.3f} | {c / b:.2f} | {peaks['before']:.0f} | {peaks['after']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
