"""emmeans' objects: the estimates an emmGrid shares with the fit, its settings, and its printable tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import OptionError, warn
from torchlm.present.emmeans import emm_list_text, summary_text
from torchlm.present.rformat import zapsmall

_UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<unset>"})()
_AUX = (".wgt.", ".offset.")
_TYPES = ("link", "lp", "linear", "response", "mu", "unlink")


@dataclass(frozen=True)
class Basis:
    """The fit's estimates every grid derived from it shares (R's bhat, V, nbasis and dffun)."""

    bhat: np.ndarray
    V: np.ndarray
    nbasis: np.ndarray | None
    df: float
    names: list[str]


@dataclass
class Misc:
    """An emmGrid's settings (R's @misc): how it is summarised and labelled."""

    est_name: str
    est_type: str = "prediction"
    infer: tuple[bool, bool] = (True, False)
    level: float = 0.95
    adjust: str = "none"
    fam_size: Any = 1
    avgd_over: list[str] = field(default_factory=list)
    pri_vars: list[str] = field(default_factory=list)
    by_vars: list[str] | None = None
    pairby: str | None = None
    predict_type: str | None = None
    tran: str | None = None
    inv_lbl: str | None = None
    log_contrast: bool = False
    init_mesg: list[str] = field(default_factory=list)
    meth_desc: str | None = None


class EmmSummary(pd.DataFrame):
    """A summary of an EMMGrid (R's summary_emm): a DataFrame that prints as emmeans prints it.

    ``attrs`` hold what the print needs: "est_name", "by_vars", "messages".
    """

    @property
    def _constructor(self) -> type:
        return pd.DataFrame

    def __repr__(self) -> str:
        return summary_text(self)

    __str__ = __repr__


class EmmList(dict):
    """emmeans' emm_list: named EMMGrids ("emmeans", "contrasts"), printed one after the other as R prints them."""

    def __repr__(self) -> str:
        return emm_list_text({k: v.summary() for k, v in self.items()})

    __str__ = __repr__


def as_list(x: Any) -> list[str] | None:
    """Variable names as a list (one name, or several), None for none.

    Returns
    -------
    list of str or None
    """
    if x is None:
        return None
    if not isinstance(x, str) and not (isinstance(x, (list, tuple)) and all(isinstance(v, str) for v in x)):
        raise OptionError(f"variables are named by a string or a list of strings, such as \"cyl\" or "
                          f"[\"wool\", \"tension\"], not {x!r}")
    out = [x] if isinstance(x, str) else list(x)
    return out or None


def prediction_type(type: str | None) -> str | None:
    """emmeans' .validate.type: a prediction type by partial match ("link" where nothing matches).

    Returns
    -------
    str or None
        None where no type was given.
    """
    if type is None:
        return None
    hits = [t for t in _TYPES if t.startswith(str(type))]
    return str(type) if type in _TYPES else hits[0] if hits else "link"


def find_by_rows(grid: pd.DataFrame, by: list[str] | None) -> list[np.ndarray]:
    """R's .find.by.rows: the rows of each combination of the by variables, in order of first appearance.

    Returns
    -------
    list of numpy.ndarray
        One array of row positions per by group (all rows where ``by`` is empty).
    """
    if not by:
        return [np.arange(len(grid))]
    if missing := [b for b in by if b not in grid.columns]:
        raise OptionError(f"'by' variables are not all in the grid: {missing} (the grid has {label_columns(grid)})")
    keys = [" ".join(str(v) for v in row) for row in zip(*(grid[b].tolist() for b in by))]
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [np.array(v) for v in groups.values()]


def label_columns(grid: pd.DataFrame) -> list[str]:
    """The grid's columns of levels (emmeans' ``.wgt.`` and ``.offset.`` left out).

    Returns
    -------
    list of str
    """
    return [c for c in grid.columns if c not in _AUX]


def qf_non0(V: np.ndarray, y: np.ndarray) -> float:
    """emmeans' .qf.non0: y'Vy over the entries of y that zapsmall leaves nonzero.

    Returns
    -------
    float
        The quadratic form; NaN (with R's warning) where it is negative.
    """
    ii = zapsmall(y, 7) != 0
    value = float(np.sum(y[ii] * (V[np.ix_(ii, ii)] @ y[ii]))) if ii.any() else 0.0
    if value < 0:
        warn("Negative variance estimate obtained!", stacklevel=4)
        return math.nan
    return value


def estimable(x: np.ndarray, nbasis: np.ndarray | None, tol: float = 1e-8) -> bool:
    """estimability::is.estble: whether x'b is estimable (x nearly orthogonal to the null space).

    Returns
    -------
    bool
    """
    if nbasis is None:
        return True
    chk = nbasis.T @ x
    ssqx = float(x @ x)
    return float(chk @ chk) < tol * (ssqx if ssqx >= tol else 1.0)


class GridCore:
    """What every emmGrid holds: its grid, levels and linear functions, the fit's estimates and its settings."""

    def __init__(self, grid: pd.DataFrame, levels: dict[str, list], linfct: np.ndarray, basis: Basis, misc: Misc):
        self._grid, self.levels, self._linfct, self._basis, self.misc = grid, levels, linfct, basis, misc

    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's estimate (offset included), standard error and df on the linear-predictor scale.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray, numpy.ndarray)
            NaN for the rows that are not estimable (R's "nonEst").

        Examples
        --------
        >>> em = tl.emmeans(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")), "cyl")
        >>> [a.round(4) for a in em.estimates()]
        [array([23.6775, 19.422 , 17.6067]), array([1.0428, 0.9694, 0.9025]), array([28., 28., 28.])]
        """
        b = self._basis
        active = ~np.isnan(b.bhat)
        n = self._linfct.shape[0]
        est, se, df = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        for i, x in enumerate(self._linfct):
            if np.isnan(x).any() or not estimable(x, b.nbasis):
                continue
            xa = x[active]
            est[i] = float(b.bhat[active] @ xa)
            se[i] = math.sqrt(qf_non0(b.V, xa))
            df[i] = b.df
        if ".offset." in self._grid.columns:
            est = est + self._grid[".offset."].to_numpy(dtype=float)
        return est, se, df
