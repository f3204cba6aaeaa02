"""Benchmark (run by hand, not in the tests): tl.infer's standard errors for a network of about 1e5 parameters on
1e5 rows, where a dense Hessian (p^2 * 8 bytes) does not fit, and matrix-free against dense on a small network.

    .venv/bin/python benchmarks/bench_infer_large.py                  # every stage, each in a fresh process
    .venv/bin/python benchmarks/bench_infer_large.py --stage products # one stage
    .venv/bin/python benchmarks/bench_infer_large.py --rows 20000     # smaller

The large network: tanh MLP inputs -> hidden -> hidden -> outputs (20 -> 300 -> 300 -> 10: 99,610 parameters),
independent Bernoulli outputs (BCEWithLogitsLoss) whose targets are the network's own probabilities: the network
is then exactly at the minimum of its loss (gradient 0, Hessian J'WJ positive semi-definite), so the timings are
those of a fitted model without a fit that would take hours on two cores.

Stages (each in its own process; peak memory = the peak resident set size during the stage (VmHWM after
resetting it through /proc/self/clear_refs) minus the size after building the data and the model):
  grad      one gradient of the summed loss over all rows
  products  Hessian-vector products, 1 and 8 at once (per-product time)
  last      SEs of the last layer (3,010 parameters) conditional on the others: others="fixed", a dense 3,010^2
            Hessian of that layer
  cg        exact marginal SE of one chosen parameter, matrix-free, CG limited to --maxiter iterations
  small     a small MLP (123 parameters, 400 rows): dense vs matrix-free for 100 chosen parameters
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torchlm as tl  # noqa: E402
from torchlm.errors import silenced  # noqa: E402


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def reset_peak() -> float:
    """Reset the peak resident set size (Linux: 5 > /proc/self/clear_refs) and return the current size in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmRSS")
    except OSError:  # not Linux: ru_maxrss cannot be reset, the peak then includes the setup
        return rss_mb()


def rss_mb() -> float:
    """The peak resident set size since the last reset_peak, in MB."""
    try:
        return _status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def large(rows: int, inputs: int, hidden: int, outputs: int):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                        nn.Linear(hidden, outputs)).double()
    X = torch.randn(rows, inputs, dtype=torch.float64)
    with torch.no_grad():
        Y = torch.cat([torch.sigmoid(net(X[lo:lo + 8192])) for lo in range(0, rows, 8192)])
    return net, X, Y


def warm_up(net, X, Y) -> None:
    # torch's first forward-mode call loads its decompositions (about a second): not part of the timings
    small = _operator(net, X[:64], Y[:64])
    small.value_and_gradient()
    small(torch.zeros(small.k, 2, dtype=torch.float64))


def stage_grad(net, X, Y, args) -> dict:
    op = _operator(net, X, Y)
    t = time.perf_counter()
    value, g = op.value_and_gradient()
    return {"seconds": time.perf_counter() - t, "gradient_max": float(g.abs().max())}


def _operator(net, X, Y, block: int = 8, chunk: int = 8192):
    from torch.func import functional_call

    from torchlm.inference.matrix_free import HessianOperator

    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    loss = nn.BCEWithLogitsLoss(reduction="sum")

    def objectives():
        for lo in range(0, X.shape[0], chunk):
            x, y = X[lo:lo + chunk], Y[lo:lo + chunk]

            def f(th, x=x, y=y):
                ps = dict(zip(names, (a.reshape(s) for a, s in zip(torch.split(th, sizes), shapes))))
                return loss(functional_call(net, ps, (x,)), y)

            yield f

    return HessianOperator(objectives, theta, block)


def stage_products(net, X, Y, args) -> dict:
    op = _operator(net, X, Y)
    out = {}
    gen = torch.Generator().manual_seed(0)
    for m in (1, 8):
        V = torch.randn(op.k, m, generator=gen, dtype=torch.float64)
        t = time.perf_counter()
        op(V)
        out[f"m{m}_seconds"] = time.perf_counter() - t
        out[f"m{m}_per_product"] = out[f"m{m}_seconds"] / m
    return out


def stage_last(net, X, Y, args) -> dict:
    last = f"{len(net) - 1}"
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = tl.infer(net, nn.BCEWithLogitsLoss(), X, Y, params=[last], others="fixed")
    se = res.std_errors()
    return {"seconds": time.perf_counter() - t, "parameters": len(res.names), "se_median": float(se.median()),
            "warnings": [str(x.message)[:160] for x in w]}


def stage_cg(net, X, Y, args) -> dict:
    chosen = "2.weight[7,11]"
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = tl.infer(net, nn.BCEWithLogitsLoss(), X, Y, params=[chosen], hessian="matrix_free",
                       cg_control={"maxiter": args.maxiter, "probes": args.probes, "lanczos": args.lanczos,
                                   "block": 8})
    info = res.matrix_free.info
    return {"seconds": time.perf_counter() - t, "parameter": chosen, "se": float(res.std_errors().iloc[0]),
            "iterations": info["iterations"], "products": info["products"],
            "relative_residual": float(info["residual_per_column"][0]),
            "lanczos_min": info["lanczos_min"], "warnings": [str(x.message)[:200] for x in w]}


def small_net():
    """The test network of tests/test_infer_large.py (123 parameters, fitted to the optimum)."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from test_infer_large import small_mlp

    return small_mlp()


def stage_small(net, X, Y, args) -> dict:
    from torchlm.results.estimates import element_names

    names = [e for n, p in net.named_parameters() for e in element_names(n, tuple(p.shape))]
    chosen = list(np.random.default_rng(0).choice(names, 100, replace=False))
    out = {"parameters": len(names), "rows": X.shape[0], "chosen": len(chosen)}
    t = time.perf_counter()
    dense = tl.infer(net, nn.MSELoss(), X, Y, params=chosen)
    out["dense_seconds"] = time.perf_counter() - t
    out["dense_peak_mb"] = rss_mb() - args.base
    args.base = reset_peak()
    t = time.perf_counter()
    mf = tl.infer(net, nn.MSELoss(), X, Y, params=chosen, hessian="matrix_free")
    out["mf_seconds"] = time.perf_counter() - t
    out["mf_peak_mb"] = rss_mb() - args.base
    out["mf_iterations"] = mf.matrix_free.info["iterations"]
    out["mf_products"] = mf.matrix_free.info["products"]
    a, b = dense.std_errors().to_numpy(), mf.std_errors().to_numpy()
    out["max_rel_se_difference"] = float(np.max(np.abs(b / a - 1)))
    return out


STAGES = {"grad": stage_grad, "products": stage_products, "last": stage_last, "cg": stage_cg, "small": stage_small}


def run_stage(args) -> dict:
    if args.stage == "small":
        with silenced():
            net, X, Y = small_net()
    else:
        net, X, Y = large(args.rows, args.inputs, args.hidden, args.outputs)
    warm_up(net, X, Y)
    args.base = reset_peak()
    out = STAGES[args.stage](net, X, Y, args)
    out["peak_mb_above_data"] = rss_mb() - args.base
    out["stage"] = args.stage
    out["p"] = sum(p.numel() for p in net.parameters())
    out["rows"] = X.shape[0]
    return out


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        keep = ("Model name", "CPU(s):", "Thread(s) per core", "L2 cache", "L3 cache")
        cpu = "; ".join(" ".join(ln.split()) for ln in lines if ln.startswith(keep))
    except (OSError, subprocess.CalledProcessError):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}; {mem:.0f} GiB; torch {torch.__version__}, {torch.get_num_threads()} threads; load {os.getloadavg()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=list(STAGES))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=300)
    ap.add_argument("--outputs", type=int, default=10)
    ap.add_argument("--maxiter", type=int, default=20)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--lanczos", type=int, default=10)
    ap.add_argument("--stages", default="small,grad,products,last,cg")
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args)))
        return
    print(f"# machine: {machine()}", flush=True)
    p = args.inputs * args.hidden + args.hidden + args.hidden ** 2 + args.hidden + args.hidden * args.outputs \
        + args.outputs
    print(f"# p = {p:,}; dense Hessian {p * p * 8 / 2**30:.1f} GiB in float64", flush=True)
    for stage in args.stages.split(","):
        cmd = [sys.executable, __file__, "--stage", stage] + [
            f"--{k}={getattr(args, k)}" for k in ("rows", "inputs", "hidden", "outputs", "maxiter", "probes",
                                                  "lanczos")]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
        print(f"{stage} ({time.perf_counter() - t:.0f} s wall): {line}", flush=True)


if __name__ == "__main__":
    main()
