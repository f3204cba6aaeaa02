"""A fit's options as torch and the solvers take them: the device and dtype, the rank-detection tolerance.

Each is checked where a fit receives it, so that a bad value is a clear OptionError naming the
argument rather than an error from inside torch.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from torchlm.errors import OptionError

_DTYPES = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32, "float": torch.float32}


def available_devices() -> list[str]:
    """The torch devices a fit can use on this machine: cpu, and cuda (each GPU), mps or xpu where present.

    Returns
    -------
    list of str
    """
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        out.append("xpu")
    return out


def _resolve_device(device: Any) -> torch.device:
    """device as a torch.device that exists on this machine, else an OptionError listing those that do."""
    avail = available_devices()
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError, ValueError):
        raise OptionError(f"device {device!r} is not a torch device: pass one of {avail} "
                          "(or a torch.device)") from None
    if dev.type == "meta":
        raise OptionError(f"device {str(dev)!r} holds no data (meta tensors have shapes only), so nothing can be "
                          f"fitted on it: pass one of {avail}")
    name = dev.type if dev.index is None or dev.type != "cuda" else f"cuda:{dev.index}"
    if name not in avail:
        raise OptionError(f"device {str(dev)!r} is not available on this machine: pass one of {avail}")
    return dev


def resolve_device_dtype(device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    """torch device (default cpu) and dtype (default float64); float32 warns that digits are lost.

    device : a torch.device or its name, available on this machine (see available_devices).
    dtype : torch.float64 or torch.float32, their numpy types, or a name ("float64", "float32").

    Raises
    ------
    OptionError
        for a device this machine does not have ("meta" included) or another dtype.

    Returns
    -------
    (torch.device, torch.dtype)
    """
    dev = _resolve_device(device)
    dt: Any = torch.float64 if dtype is None else dtype
    if isinstance(dt, str):
        dt = _DTYPES.get(dt.removeprefix("torch."), dt)
    elif not isinstance(dt, torch.dtype):
        try:  # numpy's float64 / float32 (types or dtypes)
            dt = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}.get(np.dtype(dt), dt)
        except (TypeError, ValueError):
            pass
    if not isinstance(dt, torch.dtype) or dt not in (torch.float64, torch.float32):
        raise OptionError(f"dtype must be torch.float64 (the default) or torch.float32, not {dtype!r}")
    if dev.type == "mps" and dt == torch.float64:
        raise OptionError("device 'mps' has no float64: pass dtype=torch.float32 (about 7 digits) or device='cpu'")
    if dt == torch.float32:
        warnings.warn(
            "fitting in float32: about 7 significant digits, fewer for ill-conditioned designs; "
            "estimates and standard errors will not match R beyond that (use the default float64)",
            stacklevel=3,
        )
    return dev, dt


def check_tol(tol: Any) -> float:
    """The rank-detection tolerance as a float: a number strictly between 0 and 1 (R's default 1e-7).

    Raises
    ------
    OptionError
        for anything else (text, bool, NaN, 0, negative, 1 or more).

    Returns
    -------
    float
    """
    ok = isinstance(tol, (int, float, np.integer, np.floating)) and not isinstance(tol, (bool, np.bool_))
    if not ok or not 0 < float(tol) < 1:
        raise OptionError(f"tol must be a number between 0 and 1 (the rank-detection tolerance, R's default 1e-7), "
                          f"not {tol!r}")
    return float(tol)
