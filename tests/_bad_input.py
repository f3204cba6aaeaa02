"""Helpers of the bad-input tests (test_bad_data.py, test_bad_formula.py): R's answers and the shared checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

R_JSON = json.loads((FIXTURES / "bad_input" / "r_bad_input.json").read_text())
R = R_JSON["cases"]


def make_data() -> pd.DataFrame:
    """The data of make_bad_input.R."""
    i = np.arange(1, 21)
    return pd.DataFrame({"y": np.sin(1.3 * i) + 0.5 * np.sin(i), "x": np.sin(i), "z": np.cos(0.7 * i),
                         "g": np.array(list("abcd"))[(i - 1) % 4]})


def raises(exc, *fragments):
    """pytest.raises(exc) whose message must contain every fragment (case-insensitive)."""
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(exc, match=re.compile(pattern, re.IGNORECASE | re.DOTALL))


def unchanged(fn, data):
    """fn(data), asserting that the call left the data as it was."""
    before = data.copy(deep=True)
    try:
        return fn(data)
    finally:
        pd.testing.assert_frame_equal(data, before)


def lstsq(X, y):
    """Least-squares coefficients of y on the columns X (numpy's reference)."""
    return np.linalg.lstsq(np.column_stack(X), np.asarray(y, dtype=float), rcond=None)[0]
