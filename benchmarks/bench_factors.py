"""Factors at scale: torchlm's absorbed fixed effects against pyfixest (and statsmodels where it finishes).

Each (tool, job) runs in its own process, so that its peak resident memory is its own; the jobs are run
``--repeat`` times in turn and the medians printed. Run by hand:

    .venv/bin/python benchmarks/bench_factors.py [--n 1000000] [--repeat 3] [--jobs fe500,fe2,pois2,fe1e5]

Jobs (n rows, ten numeric slopes):
    fe500  y ~ x0..x9 | f500            (one 500-level factor absorbed; clustered by it)
    fe2    y ~ x0..x9 | firm + year     (1000 firms + 50 years)
    pois2  c ~ x0..x9 | firm + year     (Poisson)
    fe1e5  y ~ x0..x9 | f100k           (a 100,000-level factor)
    lm500  tl.lm(y ~ x0..x9 + C(f500)): R's whole output (all 510 coefficients, summary text) against
           pyfixest's absorbed fit (slopes only) and statsmodels' dense dummies
    lm1e5  tl.lm(y ~ x0..x9 + C(f100k)): 100,010 coefficients
    lm2    tl.lm(y ~ x0..x9 + C(firm) + C(year)): both factors as codes
    glm500 tl.glm(c ~ x0..x9 + C(f500), poisson) against pyfixest's fepois (iid, slopes only)
    lmslope tl.lm(y ~ x0..x9 + C(f500) + C(f500):x0): a slope per level (1009 coefficients); torchlm only
The whole job is timed: formula, design, fit, standard errors and the coefficient table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

SLOPES = [f"x{j}" for j in range(10)]


def make_data(n: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark's data (the same for every tool and job).

    Returns
    -------
    pandas.DataFrame
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({x: rng.standard_normal(n) for x in SLOPES})
    df["f500"] = rng.integers(0, 500, n)
    df["firm"] = rng.integers(0, 1000, n)
    df["year"] = rng.integers(0, 50, n)
    df["f100k"] = rng.integers(0, 100_000, n)
    signal = df[SLOPES].to_numpy() @ np.linspace(-1, 1, 10)
    df["y"] = signal + 0.01 * df.f500 + 0.002 * df.firm + 0.05 * df.year + rng.standard_normal(n)
    df["c"] = rng.poisson(np.exp(0.1 * df.x0 - 0.1 * df.x1 + 0.001 * df.firm))
    return df


JOBS = {
    "fe500": ("y", "f500", "f500"),
    "fe2": ("y", "firm + year", "firm"),
    "pois2": ("c", "firm + year", "firm"),
    "fe1e5": ("y", "f100k", "f100k"),
    "lm500": ("y", "f500", None),
    "lm1e5": ("y", "f100k", None),
    "lm2": ("y", "firm + year", None),
    "glm500": ("c", "f500", None),
    "lmslope": ("y", "f500", None),
}


def run_one(tool: str, job: str, n: int) -> dict:
    """Fit one job with one tool in this process.

    Returns
    -------
    dict with seconds and the first slope (to check that the tools agree).
    """
    warnings.simplefilter("ignore")
    df = make_data(n)
    lhs, fe, cl = JOBS[job]
    fml = f"{lhs} ~ {' + '.join(SLOPES)} | {fe}"
    pois = job.startswith("pois")
    # imports outside the timing (pyfixest's takes seconds)
    if tool == "torchlm":
        import torchlm as tl
    elif tool == "pyfixest":
        import pyfixest as pf
    elif tool == "statsmodels":
        import statsmodels.formula.api as smf
    t = time.perf_counter()
    if job.startswith(("lm", "glm")):
        return _lm_job(tool, df, lhs, fe, t, job)
    if tool == "torchlm":
        fit = (tl.fepois if pois else tl.feols)(fml, df, vcov={"CRV1": cl})
        tab = fit.coef_table()
        b0 = float(tab["Estimate"].iloc[0])
    elif tool == "pyfixest":
        fit = (pf.fepois if pois else pf.feols)(fml, data=df, vcov={"CRV1": cl})
        b0 = float(fit.tidy()["Estimate"].iloc[0])
    elif tool == "statsmodels":
        rhs = " + ".join(SLOPES) + " + " + " + ".join(f"C({f.strip()})" for f in fe.split("+"))
        model = (smf.poisson if pois else smf.ols)(f"{lhs} ~ {rhs}", df)
        res = model.fit(cov_type="cluster", cov_kwds={"groups": df[cl]}, disp=0)
        b0 = float(res.params["x0"])
    else:
        raise SystemExit(f"unknown tool {tool}")
    return {"seconds": time.perf_counter() - t, "x0": b0}


def _lm_job(tool: str, df: pd.DataFrame, lhs: str, fe: str, t: float, job: str) -> dict:
    """The factor as R's lm (glm) has it: every coefficient and the summary (torchlm), iid SEs for the others."""
    slopes = " + ".join(SLOPES)
    factors = " + ".join(f"C({f.strip()})" for f in fe.split("+"))
    if job == "lmslope":
        factors += f" + C({fe.strip()}):x0"
    glm = job.startswith("glm")
    if tool == "torchlm":
        import torchlm as tl

        fml = f"{lhs} ~ {slopes} + {factors}"
        fit = tl.glm(fml, df, family="poisson") if glm else tl.lm(fml, df)
        text = str(fit.summary())
        b0 = float(fit.coef()["x0"])
        assert len(text) > 0
    elif tool == "pyfixest":
        import pyfixest as pf

        if job == "lmslope":
            raise SystemExit("pyfixest has no slopes per level here")
        fit = (pf.fepois if glm else pf.feols)(f"{lhs} ~ {slopes} | {fe}", data=df, vcov="iid")
        b0 = float(fit.tidy()["Estimate"].iloc[0])
    else:
        import statsmodels.formula.api as smf

        model = (smf.poisson if glm else smf.ols)(f"{lhs} ~ {slopes} + {factors}", df)
        res = model.fit(disp=0) if glm else model.fit()
        res.summary()
        b0 = float(res.params["x0"])
    return {"seconds": time.perf_counter() - t, "x0": b0}


def main() -> None:
    """Run every (tool, job) in a subprocess, repeat, print the medians.

    Returns
    -------
    None
    """
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument("--tools", default="torchlm,pyfixest")
    ap.add_argument("--one", nargs=2, metavar=("TOOL", "JOB"))
    a = ap.parse_args()
    if a.one:
        out = run_one(a.one[0], a.one[1], a.n)
        out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(out))
        return
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(a.repeat):
        for job in a.jobs.split(","):
            for tool in a.tools.split(","):
                p = subprocess.run([sys.executable, __file__, "--n", str(a.n), "--one", tool, job],
                                   capture_output=True, text=True, timeout=3600)
                if p.returncode:
                    print(f"{tool} {job} failed: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    continue
                results.setdefault((job, tool), []).append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"n = {a.n:,}, {a.repeat} runs each, medians")
    print(f"{'job':8} {'tool':12} {'seconds':>9} {'peak GB':>8} {'x0':>22}")
    for (job, tool), runs in results.items():
        s = statistics.median(r["seconds"] for r in runs)
        m = statistics.median(r["peak_gb"] for r in runs)
        print(f"{job:8} {tool:12} {s:9.2f} {m:8.2f} {runs[0]['x0']:22.15f}")


if __name__ == "__main__":
    main()
