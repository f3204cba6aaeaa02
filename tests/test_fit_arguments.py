"""Bad arguments to tl.lm and tl.glm (issue 14): a clear tl.OptionError naming the argument, never a
traceback from inside torch or numpy, and R's message where R has one.

R 4.2.2's texts quoted here (checked in R): glm.fit's "cannot find valid starting values: please
specify some" for a start whose linear predictor is outside the family's range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
from torchlm.errors import DataError, OptionError
from torchlm.solvers.options import available_devices

i = np.arange(1, 21)
D = pd.DataFrame({"y": np.sin(1.3 * i) + 0.5 * np.sin(i), "x": np.sin(i), "z": np.cos(0.7 * i)})
D["b"] = (D.y > 0).astype(float)


@pytest.fixture
def data():
    d = D.copy()
    yield d
    pd.testing.assert_frame_equal(d, D)  # the user's data is never modified, even by a failing call


# --- device and dtype ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["mps", "xpu", "cuda:99"])
def test_unavailable_device(data, device):
    if device in available_devices():
        pytest.fail(f"{device} exists here: this test needs a machine without it")
    with pytest.raises(OptionError, match=rf"device '{device}' is not available on this machine: pass one of "
                                          r"\['cpu'"):
        tl.lm("y ~ x", data, device=device)
    with pytest.raises(OptionError, match="not available on this machine"):
        tl.glm("b ~ x", data, family="binomial", device=device)


def test_meta_device(data):
    with pytest.raises(OptionError, match="device 'meta' holds no data"):
        tl.lm("y ~ x", data, device="meta")
    with pytest.raises(OptionError, match="device 'meta' holds no data"):
        tl.lm("y ~ x", data, device=torch.device("meta"))


@pytest.mark.parametrize("device", ["gpu0", "nodevice", 3.5])
def test_nonsense_device(data, device):
    with pytest.raises(OptionError, match=r"is not a torch device: pass one of \['cpu'"):
        tl.lm("y ~ x", data, device=device)


def test_cpu_spellings(data):
    ref = tl.lm("y ~ x", data).coef()
    for device in ("cpu", "cpu:0", torch.device("cpu")):
        pd.testing.assert_series_equal(tl.lm("y ~ x", data, device=device).coef(), ref)


@pytest.mark.parametrize("dtype", ["float16", torch.float16, torch.int64, "a", np.int64, [1]])
def test_bad_dtype(data, dtype):
    with pytest.raises(OptionError, match=r"dtype must be torch.float64 \(the default\) or torch.float32"):
        tl.lm("y ~ x", data, dtype=dtype)


def test_dtype_spellings(data):
    ref = tl.lm("y ~ x", data).coef()
    for dtype in ("float64", "torch.float64", np.float64, np.dtype("float64")):
        pd.testing.assert_series_equal(tl.lm("y ~ x", data, dtype=dtype).coef(), ref)
    with pytest.warns(UserWarning, match="fitting in float32"):
        f32 = tl.lm("y ~ x", data, dtype=np.float32)
    np.testing.assert_allclose(f32.coef(), ref, rtol=1e-5)


# --- lm's tol --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tol", ["a", None, True, 0, -1e-7, 1, 2.0, float("nan"), float("inf"), [1e-7]])
def test_bad_tol(data, tol):
    with pytest.raises(OptionError, match=r"tol must be a number between 0 and 1 \(the rank-detection tolerance"):
        tl.lm("y ~ x", data, tol=tol)


def test_tol_numbers(data):
    ref = tl.lm("y ~ x", data).coef()
    pd.testing.assert_series_equal(tl.lm("y ~ x", data, tol=np.float32(1e-7)).coef(), ref)
    # a tolerance above the residual norm of x after the intercept (relative) aliases x, as R's does
    rel = np.linalg.norm(data.x - data.x.mean()) / np.linalg.norm(data.x)
    assert np.isnan(tl.lm("y ~ x", data, tol=min(0.999, rel * 1.01)).coef()["x"])


# --- glm's control ---------------------------------------------------------------------------------
@pytest.mark.parametrize("control, match", [
    ({"epsilon": "a"}, r"control epsilon must be a positive finite number \(R's default 1e-8\), not 'a'"),
    ({"epsilon": 0}, "control epsilon must be a positive finite number"),
    ({"epsilon": -1e-8}, "control epsilon must be a positive finite number"),
    ({"epsilon": float("nan")}, "control epsilon must be a positive finite number"),
    ({"epsilon": None}, "control epsilon must be a positive finite number"),
    ({"maxit": -1}, r"control maxit must be a whole number of at least 1 \(default 25\), not -1"),
    ({"maxit": 0}, "control maxit must be a whole number of at least 1"),
    ({"maxit": 2.5}, "control maxit must be a whole number of at least 1"),
    ({"maxit": "3"}, "control maxit must be a whole number of at least 1"),
    ({"maxit": True}, "control maxit must be a whole number of at least 1"),
    ({"maxit": float("inf")}, "control maxit must be a whole number of at least 1"),
    ({"polish": -1}, r"control polish must be a whole number of at least 0 \(default 100\)"),
    ({"polish": "a"}, "control polish must be a whole number of at least 0"),
    ({"trace": True}, r"unknown control setting 'trace'; available: \['epsilon', 'maxit', 'polish'\]"),
    ([("maxit", 3)], "control must be a dict of glm.control settings"),
    ("maxit=3", "control must be a dict of glm.control settings"),
])
def test_bad_control(data, control, match):
    with pytest.raises(OptionError, match=match):
        tl.glm("b ~ x", data, family="binomial", control=control)


def test_control_numbers(data):
    ref = tl.glm("b ~ x", data, family="binomial")
    fit = tl.glm("b ~ x", data, family="binomial", control={"maxit": 25.0, "epsilon": np.float32(1e-8),
                                                            "polish": np.int64(100)})
    pd.testing.assert_series_equal(fit.coef(), ref.coef())


# --- glm's start -----------------------------------------------------------------------------------
@pytest.mark.parametrize("start", ["a", "1 2", {"Intercept": 0.0, "x": 0.0}, 3.0, [1 + 2j, 0.0], ["a", "b"]])
def test_start_not_numbers(data, start):
    with pytest.raises(OptionError, match=r"start must be a sequence of 2 numbers, the starting coefficients "
                                          r"\['Intercept', 'x'\]"):
        tl.glm("b ~ x", data, family="binomial", start=start)


@pytest.mark.parametrize("start", [[np.nan, 0.0], [0.0, np.inf], [None, 1.0]])
def test_start_not_finite(data, start):
    with pytest.raises(OptionError, match="start has missing or infinite values"):
        tl.glm("b ~ x", data, family="binomial", start=start)


def test_start_wrong_length(data):
    with pytest.raises(OptionError, match=r"start has 1 values, the model has 2 coefficients"):
        tl.glm("b ~ x", data, family="binomial", start=[1.0])


def test_start_invalid_for_the_family(data):
    # binomial with a log link: start (5, 0) gives mu = e^5 > 1, outside (0, 1)
    fam = tl.families.Binomial(link="log")
    with pytest.raises(DataError, match="cannot find valid starting values: please specify some"):
        tl.glm("b ~ x", data, family=fam, start=[5.0, 0.0])


def test_start_spellings(data):
    fam = tl.families.Binomial(link="log")
    ref = tl.glm("b ~ x", data, family=fam, start=[-0.5, 0.0]).coef()
    for start in ((-0.5, 0.0), np.array([-0.5, 0.0]), torch.tensor([-0.5, 0.0]), pd.Series([-0.5, 0.0])):
        pd.testing.assert_series_equal(tl.glm("b ~ x", data, family=fam, start=start).coef(), ref)
    start = np.array([-0.5, 0.0])
    tl.glm("b ~ x", data, family=fam, start=start)
    assert start.tolist() == [-0.5, 0.0]  # the caller's start is not modified
