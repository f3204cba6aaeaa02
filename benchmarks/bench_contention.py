"""Whole-job benchmark on a shared machine: torchlm vs statsmodels, idle and beside two busy torch processes.

    python benchmarks/bench_contention.py                       # lm 1e6 x 100 and logistic 1e6 x 20
    python benchmarks/bench_contention.py --baseline /work/baseline   # also an older checkout, same run
    python benchmarks/bench_contention.py --quick               # n = 1e5 (a smoke test)
    python benchmarks/bench_contention.py --torchlm DIR         # time another checkout as "torchlm"
    python benchmarks/bench_contention.py --checkout before=DIR --checkout after=DIR2   # any checkouts, named
    python benchmarks/bench_contention.py --wait-quiet --max-other-load 0.25   # on a machine others use too

Conditions: "idle" (nothing else started; --wait-quiet waits for an idle CPU before each run) and
"contended": two background processes, started and killed by this script, each looping over
torch.linalg.qr of a 300 x 300 matrix with torch's default threads. Jobs, each in a fresh process
that generates its data, warms up, then times --repeats runs (medians reported):

    lm        tl.lm(f, df); fit.vcov(); str(fit.summary())             vs smf.ols(f, df).fit() (same)
    logistic  tl.glm(f, df, family="binomial"); vcov; summary           vs smf.glm(f, df, Binomial()).fit()

Implementations: "torchlm" (this checkout), "baseline" (--baseline DIR, imported through sys.path in
its subprocess), "torchlm-1t" (this checkout under torch.set_num_threads(1), for reference),
"torchlm-chunked" (the job inside torchlm.threads.chunked(): every torch operation of the calling
thread single-threaded, chunk work still in the pool: what wiring that scope into a fit gives) and
"statsmodels". The table gives medians, statsmodels / torchlm ratios, and "other load": cores'
worth of CPU used by other processes during the runs (from /proc/stat less the job's own CPU
time), which shows when the machine was not as idle as its label says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

BACKGROUND = (
    "import torch\n"
    "a = torch.randn(300, 300)\n"
    "while True:\n"
    "    torch.linalg.qr(a)\n"
)


# ---------------------------------------------------------------- data: bench_lm.py's and bench_glm.py's
# (this script's folder is on sys.path when it runs, workers included)
from bench_glm import make_data as make_logistic_data  # noqa: E402
from bench_lm import make_data as _make_lm_data  # noqa: E402


def make_lm_data(n: int, p: int, seed: int = 0):
    """bench_lm.py's data without a factor."""
    return _make_lm_data(n, p, 0, seed)


# ---------------------------------------------------------------- jobs

def torchlm_job(kind: str):
    import torchlm as tl

    def lm(df, f):
        fit = tl.lm(f, df)
        fit.vcov()
        str(fit.summary())
        return fit.coef().to_numpy()

    def logistic(df, f):
        fit = tl.glm(f, df, family="binomial")
        fit.vcov()
        str(fit.summary())
        return fit.coef().to_numpy()

    return lm if kind == "lm" else logistic


def statsmodels_job(kind: str):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    def lm(df, f):
        fit = smf.ols(f, df).fit()
        fit.cov_params()
        str(fit.summary())
        return fit.params.to_numpy()

    def logistic(df, f):
        fit = smf.glm(f, df, family=sm.families.Binomial()).fit()
        fit.cov_params()
        str(fit.summary())
        return fit.params.to_numpy()

    return lm if kind == "lm" else logistic


# ---------------------------------------------------------------- measuring

def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def cpu_idle_fraction(dt: float = 0.5) -> float:
    b0, t0 = _cpu_jiffies()
    time.sleep(dt)
    b1, t1 = _cpu_jiffies()
    return 1 - (b1 - b0) / max(1, t1 - t0)


def wait_quiet(threshold: float = 0.9, timeout: float = 120.0) -> bool:
    """Wait until the machine is at least `threshold` idle (over half a second); False on timeout."""
    end = time.time() + timeout
    while time.time() < end:
        if cpu_idle_fraction() >= threshold:
            return True
    return False


def worker(impl: str, kind: str, n: int, p: int, repeats: int, quiet: bool, path: str | None,
           max_other: float | None = None) -> dict:
    """Run one (implementation, job) in this process; returns times and diagnostics."""
    import warnings

    warnings.simplefilter("ignore")
    if path:
        sys.path.insert(0, path)
    import numpy as np

    if impl == "statsmodels":
        job = statsmodels_job(kind)
        where = "statsmodels"
    else:
        import torch

        if impl == "torchlm-1t":
            torch.set_num_threads(1)
        job = torchlm_job(kind)
        import torchlm

        if impl == "torchlm-chunked":
            from torchlm import threads

            inner = job

            def job(df, f):
                with threads.chunked():
                    return inner(df, f)

        where = os.path.dirname(os.path.dirname(os.path.abspath(torchlm.__file__)))
    make = make_lm_data if kind == "lm" else make_logistic_data
    job(*make(2000, 3))  # imports and library start-up are not the job
    df, f = make(n, p)
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    times, other, discarded, coef = [], [], 0, None
    # a run disturbed by somebody else's work (more than max_other cores busy) is repeated, at most
    # `repeats` extra times in all; the idle condition asks for that
    while len(times) < repeats:
        if quiet:
            wait_quiet()
        b0, _ = _cpu_jiffies()
        c0, t0 = time.process_time(), time.perf_counter()
        coef = job(df, f)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        b1, _ = _cpu_jiffies()
        # busy jiffies are summed over cpus: less our own CPU time, per second of wall time = other cores busy
        load = max(0.0, ((b1 - b0) / hz - cpu) / wall)
        if max_other is not None and load > max_other and discarded < repeats:
            discarded += 1
            continue
        times.append(wall)
        other.append(load)
    return {"impl": impl, "job": kind, "times": times, "median": statistics.median(times),
            "other_load": statistics.median(other), "discarded": discarded, "where": where, "ncpu": ncpu,
            "coef": np.asarray(coef, dtype=float).tolist()}


def run_worker(impl, kind, n, p, repeats, quiet, path, timeout, max_other=None) -> dict:
    args = [sys.executable, os.path.abspath(__file__), "--worker", impl, kind, str(n), str(p), str(repeats),
            "1" if quiet else "0", path or "", "" if max_other is None else str(max_other)]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "job": kind, "median": float("nan"), "error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"impl": impl, "job": kind, "median": float("nan"), "error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_background(count: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", BACKGROUND], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(count)]
    time.sleep(3.0)  # torch imported and looping
    for pr in procs:
        if pr.poll() is not None:
            raise RuntimeError("a background torch process exited at start")
    return procs


def stop_background(procs: list[subprocess.Popen]) -> None:
    for pr in procs:
        pr.kill()
    for pr in procs:
        pr.wait()


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 1e5 instead of 1e6")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sm-repeats", type=int, default=None, help="repeats for statsmodels (default --repeats)")
    ap.add_argument("--baseline", default=None, help="checkout of an older torchlm to compare (e.g. /work/baseline)")
    ap.add_argument("--torchlm", default=REPO, help="checkout timed as 'torchlm' (default: this one)")
    ap.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                    help="another torchlm checkout to time, as implementation NAME (repeatable)")
    ap.add_argument("--impls", default=None,
                    help="comma-separated, of torchlm, baseline, torchlm-1t, torchlm-chunked, statsmodels "
                         "(default: torchlm, baseline if given, statsmodels)")
    ap.add_argument("--jobs", default="lm,logistic")
    ap.add_argument("--conditions", default="idle,contended")
    ap.add_argument("--background", type=int, default=2, help="busy torch processes in the contended condition")
    ap.add_argument("--wait-quiet", action="store_true", help="in the idle condition, wait for an idle CPU per run")
    ap.add_argument("--max-other-load", type=float, default=None,
                    help="in the idle condition, repeat a run during which other processes kept more than this "
                         "many cores busy (at most --repeats extra runs), e.g. 0.25 on a shared machine")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per (implementation, job, condition)")
    a = ap.parse_args(argv)

    n = 100_000 if a.quick else 1_000_000
    sizes = {"lm": (n, 100), "logistic": (n, 20)}
    extra = dict(c.split("=", 1) for c in a.checkout)
    impls = (a.impls.split(",") if a.impls else
             ["torchlm"] + list(extra) + (["baseline"] if a.baseline else []) + ["statsmodels"])
    if "baseline" in impls and not a.baseline:
        ap.error("impl 'baseline' needs --baseline DIR")
    jobs = a.jobs.split(",")
    conditions = a.conditions.split(",")
    paths = {"torchlm": a.torchlm, "torchlm-1t": a.torchlm, "torchlm-chunked": a.torchlm, "baseline": a.baseline,
             "statsmodels": None, **extra}

    import torch

    print(f"# {os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"contended = {a.background} processes looping torch.linalg.qr(300 x 300)", flush=True)
    results = []
    for cond in conditions:
        procs = start_background(a.background) if cond == "contended" else []
        try:
            for kind in jobs:
                nn, p = sizes[kind]
                for impl in impls:
                    reps = a.sm_repeats if (impl == "statsmodels" and a.sm_repeats) else a.repeats
                    idle = cond == "idle"
                    r = run_worker(impl, kind, nn, p, reps, a.wait_quiet and idle, paths[impl], a.timeout,
                                   a.max_other_load if idle else None)
                    r["condition"] = cond
                    results.append(r)
                    extra = r.get("error") or (f"times {[round(t, 2) for t in r['times']]} "
                                               f"other load {r['other_load']:.2f} from {r['where']}"
                                               + (f" ({r['discarded']} disturbed runs repeated)"
                                                  if r.get("discarded") else ""))
                    print(f"#   {cond:9s} {kind:8s} {impl:12s} {r['median']:8.3f} s   {extra}", flush=True)
        finally:
            stop_background(procs)

    def get(cond, kind, impl):
        for r in results:
            if (r["condition"], r["job"], r["impl"]) == (cond, kind, impl):
                return r
        return None

    print()
    tl_impls = [i for i in impls if i != "statsmodels"]
    head = ["job", "n x p", "condition"] + [f"{i} s" for i in impls]
    if "statsmodels" in impls:
        head += [f"statsmodels / {i}" for i in tl_impls]
    head += ["other load (cores)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
    for kind in jobs:
        nn, p = sizes[kind]
        for cond in conditions:
            rs = {i: get(cond, kind, i) for i in impls}
            row = [kind, f"{nn:.0e} x {p}", cond] + [f"{rs[i]['median']:.2f}" for i in impls]
            if "statsmodels" in impls:
                sm = rs["statsmodels"]["median"]
                row += [f"{sm / rs[i]['median']:.1f}" for i in tl_impls]
            loads = [rs[i].get("other_load") for i in impls if rs[i].get("other_load") is not None]
            row += [f"{min(loads):.2f}-{max(loads):.2f}" if loads else "?"]
            print("| " + " | ".join(row) + " |")
    # the fits must agree (the benchmark is not timing a wrong answer)
    import numpy as np

    for kind in jobs:
        ref = [r for r in results if r["job"] == kind and r.get("coef")]
        if len(ref) > 1:
            c = np.array([r["coef"] for r in ref])
            dev = float(np.max(np.abs(c - c[0]) / np.maximum(np.abs(c[0]), 1e-300)))
            print(f"\n{kind}: largest relative coefficient difference between runs {dev:.1e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        impl, kind, n, p, repeats, quiet, path, max_other = sys.argv[2:10]
        if impl != "statsmodels" and path:
            # import the checkout asked for, not whatever the benchmarks folder's parent provides
            sys.path = [x for x in sys.path if os.path.abspath(x or ".") != HERE]
        res = worker(impl, kind, int(n), int(p), int(repeats), quiet == "1", path or None,
                     float(max_other) if max_other else None)
        print(json.dumps(res))
    else:
        main()
