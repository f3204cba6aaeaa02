"""Shared paths and helpers for the torchlm test suite (everything it needs lives under tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFORMANCE = FIXTURES / "conformance"
NIST = FIXTURES / "nist"


def read_exact_csv(path, **kw) -> pd.DataFrame:
    """read_csv that parses every number to the double nearest its text.

    pandas < 3 needs float_precision="round_trip" for that; pandas 3 does it by default and
    deprecates the argument (test_nist checks the result either way).
    """
    if int(pd.__version__.split(".")[0]) < 3:
        kw.setdefault("float_precision", "round_trip")
    return pd.read_csv(path, **kw)


def fit_lbfgs(model, loss, X, y, tolerance_grad: float = 1e-14):
    """Minimise loss(model(X), y) over the model's parameters with LBFGS (strong Wolfe) to near machine precision."""
    import torch

    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=tolerance_grad, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = loss(model(X), y)
        v.backward()
        return v

    opt.step(closure)
    return model
