"""Device check, run by hand on a machine with a GPU: every stage on the device agrees with the CPU fit.

    .venv/bin/python scripts/device_check.py            # device "cuda"
    .venv/bin/python scripts/device_check.py cuda:1

CI has no GPU, so this is not a test; it exits non-zero on the first disagreement and prints what it
compared. float64 on the device must agree with the CPU to about 1e-10 relative (different BLAS/LAPACK
reduction orders); float32 is reported, not checked, beyond a loose bound.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch

import torchlm as tl

RTOL = 1e-10


def agree(what: str, cpu, dev, rtol: float = RTOL) -> None:
    a, b = np.asarray(cpu, dtype=float), np.asarray(dev, dtype=float)
    ok = np.array_equal(np.isnan(a), np.isnan(b))
    fin = ~np.isnan(a)
    scale = np.maximum(np.abs(a[fin]), 1e-12 * max(1.0, np.abs(a[fin]).max(initial=0.0)))
    err = float(np.max(np.abs(a[fin] - b[fin]) / scale, initial=0.0))
    print(f"{'ok  ' if ok and err <= rtol else 'FAIL'} {what:<46} max rel diff {err:.1e}")
    if not ok or err > rtol:
        sys.exit(1)


def main(device: str) -> None:
    if not torch.cuda.is_available() and device.startswith("cuda"):
        sys.exit("no CUDA device here: run this on a machine with a GPU")
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else ""
    print(f"torch {torch.__version__}, device {device}: {name}")
    mt = tl.datasets.load("mtcars")
    wb = tl.datasets.load("warpbreaks")
    warnings.simplefilter("ignore")
    # lm: small (doubled-precision path), weighted, rank-deficient
    for f, kw in (("mpg ~ wt + C(cyl)", {}), ("mpg ~ wt + hp", {"weights": "wt"}),
                  ("mpg ~ wt + I(2 * wt) + hp", {})):
        c, g = tl.lm(f, data=mt, **kw), tl.lm(f, data=mt, device=device, **kw)
        agree(f"lm {f} coef", c.coef(), g.coef())
        agree(f"lm {f} vcov", c.vcov(), g.vcov())
        agree(f"lm {f} HC3", c.vcov("HC3"), g.vcov("HC3"))
        agree(f"lm {f} cluster", c.vcov(cluster="gear"), g.vcov(cluster="gear"))
        agree(f"lm {f} predict se", c.predict(mt, se_fit=True)["se_fit"], g.predict(mt, se_fit=True)["se_fit"])
        agree(f"lm {f} hatvalues", c.hatvalues(), g.hatvalues())
        assert str(c.summary()) == str(g.summary()), "summary text differs"
    # lm: large (chunked TSQR, working-precision path)
    rng = np.random.default_rng(0)
    import pandas as pd

    n, p = 400_000, 30
    df = pd.DataFrame(rng.standard_normal((n, p)), columns=[f"x{j}" for j in range(p)])
    df["y"] = df.to_numpy() @ rng.standard_normal(p) + rng.standard_normal(n)
    f = "y ~ " + " + ".join(df.columns[:p])
    t0 = time.perf_counter()
    c = tl.lm(f, data=df)
    t1 = time.perf_counter()
    g = tl.lm(f, data=df, device=device)
    t2 = time.perf_counter()
    agree(f"lm {n} x {p} coef", c.coef(), g.coef())
    agree(f"lm {n} x {p} vcov", c.vcov(), g.vcov())
    print(f"     lm {n} x {p}: cpu {t1 - t0:.3f} s, {device} {t2 - t1:.3f} s (first call includes CUDA start-up)")
    # glm: canonical and non-canonical links, quasi, profile intervals
    for f, fam, data in (("am ~ wt + hp", "binomial", mt), ("vs ~ mpg", tl.families.Binomial(link="probit"), mt),
                         ("breaks ~ wool + tension", "poisson", wb), ("mpg ~ wt", tl.families.Gamma(link="log"), mt),
                         ("breaks ~ wool + tension", "quasipoisson", wb)):
        c, g = tl.glm(f, data=data, family=fam), tl.glm(f, data=data, family=fam, device=device)
        agree(f"glm {f} coef", c.coef(), g.coef(), 1e-9)
        agree(f"glm {f} vcov", c.vcov(), g.vcov(), 1e-9)
        agree(f"glm {f} profile ci", c.confint(method="profile"), g.confint(method="profile"), 1e-8)
        assert c.iterations == g.iterations, "Fisher scoring iterations differ"
    # fixed effects absorbed on the device (index_add / eigh / CG there): feols, fepois
    rng = np.random.default_rng(3)
    m = 20000
    fe = pd.DataFrame({"x1": rng.standard_normal(m), "x2": rng.standard_normal(m),
                       "firm": rng.integers(0, 300, m), "year": rng.integers(0, 20, m)})
    fe["y"] = fe.x1 - fe.x2 + 0.01 * fe.firm + rng.standard_normal(m)
    fe["c"] = rng.poisson(np.exp(0.2 * fe.x1))
    for fn, f in ((tl.feols, "y ~ x1 + x2 | firm + year"), (tl.fepois, "c ~ x1 + x2 | firm + year")):
        c, g = fn(f, fe), fn(f, fe, device=device)
        agree(f"{fn.__name__} {f} coef", c.coef(), g.coef(), 1e-9)
        agree(f"{fn.__name__} {f} clustered SE", c.std_errors(), g.std_errors(), 1e-9)
    # factors kept as codes (two factors and slopes per level; beyond 4000 levels the within fit)
    for f, kw in (("y ~ x1 + C(firm) + C(year) + C(firm):x2", {}),
                  ("c ~ x1 * C(firm) + C(year)", {"family": "poisson"})):
        fit = tl.glm if kw else tl.lm
        c, g = fit(f, fe, **kw), fit(f, fe, device=device, **kw)
        agree(f"coded factors {f} coef", c.coef(), g.coef(), 1e-9)
        agree(f"coded factors {f} SE", c.std_errors(), g.std_errors(), 1e-9)
        agree(f"coded factors {f} HC1", np.diag(c.vcov("HC1")), np.diag(g.vcov("HC1")), 1e-9)
    with tl.options(large_factor_levels=200):
        c, g = tl.lm("y ~ x1 + x2 + C(firm)", fe), tl.lm("y ~ x1 + x2 + C(firm)", fe, device=device)
        agree("within fit (300 levels > 200) coef", c.coef(), g.coef(), 1e-9)
        agree("within fit SE", c.std_errors(), g.std_errors(), 1e-9)
    # float32 on the device: reported
    c, g = tl.lm("mpg ~ wt + C(cyl)", data=mt), tl.lm("mpg ~ wt + C(cyl)", data=mt, device=device, dtype="float32")
    agree("lm float32 coef (loose: 1e-4)", c.coef(), g.coef(), 1e-4)
    print("all device checks passed")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cuda")
