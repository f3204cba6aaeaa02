"""The example scripts run, and the seed question gets R's answer."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import torchlm as tl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def seed_data() -> pd.DataFrame:
    """The StackOverflow question's data, exactly as examples/seed_question.py makes it."""
    torch.manual_seed(42)
    X = torch.randn(100, 1)
    Y = 2 * X + 3 + torch.randn(100, 1)
    return pd.DataFrame({"X": X[:, 0].numpy().astype("float64"), "Y": Y[:, 0].numpy().astype("float64")})


def test_quickstart_runs():
    out = run_example("quickstart.py")
    assert "Residual standard error" in out
    assert "C(cyl)[T.8]" in out
    assert "Analysis of Variance Table" in out
    assert "lwr" in out and "upr" in out
    # the glm part: R's summary.glm lines and the analysis of deviance
    assert "(Dispersion parameter for binomial family taken to be 1)" in out
    assert "Residual deviance: 10.059  on 29  degrees of freedom" in out
    assert "Analysis of Deviance Table" in out and "Pr(>Chi)" in out
    # R's printed anova layout, profile intervals (R: confint(logit), MASS) and drop1
    assert "Res.Df    RSS Df Sum of Sq      F   Pr(>F)" in out
    assert "wt        -17.208694  -3.773070" in out
    assert "Single term deletions" in out and "<none>" in out


def test_seed_question_runs_and_matches_r():
    out = run_example("seed_question.py")
    summary = out[out.index("4. torchlm"):]
    for number in ("3.0357", "0.0894", "2.0118", "0.0909"):
        assert number in summary, number
    # R's printed coefficient rows (estimate, SE, t value), the summary's own formatting
    assert "3.03567    0.08940   33.96" in summary
    assert "2.01181    0.09092   22.13" in summary
    # the hand-corrected Hessian SEs agree with R too
    corrected = out[out.index("3. Correct scaling"):out.index("4. torchlm")]
    assert "SE intercept = 0.0894" in corrected and "SE slope = 0.0909" in corrected
    # the question answered as asked: tl.infer on the user's own Adam-fitted module prints R's rows
    own = out[out.index("5. Your own model"):]
    assert "intercept  3.03567    0.08940   33.96   <2e-16 ***" in own
    assert "beta       2.01181    0.09092   22.13   <2e-16 ***" in own
    assert "Residual standard error: 0.8923 on 98 degrees of freedom" in own


def test_seed_data_gives_r_numbers():
    fit = tl.lm("Y ~ X", data=seed_data())
    coef, se = fit.coef(), fit.std_errors()
    # R: lm(Y ~ X) on the same float64 numbers
    assert coef["Intercept"] == pytest.approx(3.035674, rel=5e-5)
    assert coef["X"] == pytest.approx(2.011811, rel=5e-5)
    assert se["Intercept"] == pytest.approx(0.08940, rel=5e-4)
    assert se["X"] == pytest.approx(0.09092, rel=5e-4)
    assert fit.sigma == pytest.approx(0.8923, rel=5e-4)
    assert fit.df_residual == 98


def test_seed_hessian_scaling():
    """vcov = sigma^2 * inverse(Hessian of 0.5 * RSS); the mean-loss Hessian needs 2 sigma^2 / N."""
    fit = tl.lm("Y ~ X", data=seed_data())
    H = fit.hessian().to_numpy()
    V = fit.vcov().to_numpy()
    import numpy as np

    np.testing.assert_allclose(fit.sigma**2 * np.linalg.inv(H), V, rtol=1e-10)
    n = fit.nobs
    H_mean = 2 * H / n
    np.testing.assert_allclose(2 * fit.sigma**2 / n * np.linalg.inv(H_mean), V, rtol=1e-10)
