"""Classic R datasets shipped with torchlm: tl.datasets.load("mtcars")."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def available() -> list[str]:
    """Names of the bundled datasets."""
    files = resources.files(__name__).joinpath("data").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".csv"))


def load(name: str) -> pd.DataFrame:
    """Load a bundled R dataset as a DataFrame (a fresh copy each call)."""
    if name not in available():
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    with resources.files(__name__).joinpath("data", f"{name}.csv").open() as fh:
        return pd.read_csv(fh, keep_default_na=False, na_values=["", "NA"])
