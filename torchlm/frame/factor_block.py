"""A design whose many-level factors are kept as codes: R's model matrix without its n x L dummy blocks.

``y ~ x1 + C(firm) + x2`` with 500 firms is, in R and in formulaic, 499 dummy columns of n rows. Here
the factor's term is left out of formulaic's materialization; its columns are the rows of its coding
matrix C (L x m, whatever the contrasts) gathered by each row's level code (a CodedBlock); a slope
term ``C(firm):x`` likewise, times x. FactorDesign is a Design (same names, term assignment, response,
weights, rows) whose row blocks and products build the dummies from the codes when they are read:
everything that reads a design by row blocks works unchanged, and solvers/factor_qr.py fits it without
the blocks at all. frame/coded_factors.py decides which terms are kept so and builds the design.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, OptionError
from torchlm.frame.design import Design

# above MAX_CODED_LEVELS levels (tl.options(large_factor_levels=)) R's (L + k)^2 factor is too large to form
# (solvers/factor_qr.py): tl.lm then fits such a factor by the within transformation (frame/large_factor.py),
# the other fitters keep it dense (the design's width check refuses it; tl.feols absorbs it)
MAX_CODED_LEVELS = 4000
_STATE: dict[str, int | None] = {"levels": 100, "large": MAX_CODED_LEVELS}
def set_factor_levels(value: Any) -> None:
    """Set the session's threshold (tl.options(factor_levels=)): an int >= 2, or None (never keep codes).

    Returns
    -------
    None
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise OptionError(f"factor_levels is a number of levels (an integer >= 2) or None, not {value!r}")
    _STATE["levels"] = value


def set_large_factor_levels(value: Any) -> None:
    """Set tl.options(large_factor_levels=): the most levels R's (L + k)^2 factor is formed for (an int >= 2).

    Returns
    -------
    None
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise OptionError(f"large_factor_levels is a number of levels (an integer >= 2), not {value!r}")
    _STATE["large"] = value


def large_factor_levels() -> int:
    """The session's largest factor fitted through R's (L + k)^2 factor.

    Returns
    -------
    int
    """
    return int(_STATE["large"] or MAX_CODED_LEVELS)


def factor_levels() -> int | None:
    """The session's threshold for keeping a factor as codes.

    Returns
    -------
    int or None
    """
    return _STATE["levels"]


@dataclass(frozen=True)
class CodedBlock:
    """One term of a FactorDesign kept as codes: its m columns are ``values * coding[codes]``.

    Parameters
    ----------
    term : the design's term (its assign label); variable : the factor's data column.
    codes : (n,) int64 level codes of the rows used, every level present; levels : the levels, in code order.
    coding : (L, m) the term's coding matrix (a scipy sparse matrix for frame/large_factor.py's designs).
    position : the first of the term's m columns in the design.
    slope : the numeric data column the term multiplies (``C(f):x``), or None; values : its (n,) values.
    """

    term: str
    variable: str
    codes: np.ndarray = field(repr=False)
    levels: pd.Index = field(repr=False)
    coding: Any = field(repr=False)
    position: int
    slope: str | None = None
    values: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        """m, the term's columns."""
        return int(self.coding.shape[1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The term's columns at rows start:stop.

        Returns
        -------
        numpy.ndarray (stop - start, m)
        """
        out = self.coding[self.codes[start:stop]]
        return out if self.values is None else out * self.values[start:stop, None]

    def new_codes(self, values: pd.Series) -> np.ndarray:
        """Level codes of new rows: -1 where the factor is missing.

        Raises
        ------
        DataError
            For a level not seen in fitting (R's "factor f has new levels").

        Returns
        -------
        numpy.ndarray (len(values),) int64
        """
        codes = self.levels.get_indexer(values)
        new = (codes < 0) & ~values.isna().to_numpy()
        if new.any():
            shown = ", ".join(map(str, pd.unique(values[new])[:5]))
            raise DataError(f"factor {self.variable} has new levels {shown}")
        return codes.astype(np.int64)

    def new_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """The term's columns for new rows (the factor's and the slope's columns of ``frame``): NaN where missing.

        Returns
        -------
        numpy.ndarray (len(frame), m)
        """
        codes = self.new_codes(frame[self.variable])
        out = self.coding[np.where(codes < 0, 0, codes)]
        out[codes < 0] = np.nan
        if self.slope is not None:
            out = out * pd.to_numeric(frame[self.slope], errors="coerce").to_numpy(float)[:, None]
        return out


@dataclass
class FactorDesign(Design):
    """A Design some of whose terms are factors (or factor slopes) kept as level codes (``blocks``).

    Parameters
    ----------
    blocks : the coded terms, in increasing position; the design's other columns are ``columns``, in order.
    rest_names, rest_formulaic_names, rest_assign, rest_spec : the other terms' design (formulaic's).
    """

    blocks: tuple[CodedBlock, ...] = ()
    rest_names: list[str] = field(default_factory=list, repr=False)
    rest_formulaic_names: list[str] = field(default_factory=list, repr=False)
    rest_assign: list[str] = field(default_factory=list, repr=False)
    rest_spec: Any = field(default=None, repr=False)
    # what solvers make of the design once (solvers/factor_passes.FactorTerms.of: its columns as tensors)
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def rest_at(self) -> list[int]:
        """Positions in the design of ``columns`` (the columns that are not the blocks')."""
        taken = {j for b in self.blocks for j in range(b.position, b.position + b.width)}
        return [j for j in range(len(self.names)) if j not in taken]

    @property
    def block(self) -> CodedBlock:
        """The one coded block of a design that has one (frame/large_factor.py's)."""
        if len(self.blocks) != 1:
            raise ValueError("the design has several coded factor terms")  # internal: large_factor's designs have one
        return self.blocks[0]

    @property
    def variables(self) -> list[str]:
        """The data columns the coded terms read (factors and slopes)."""
        out = [b.variable for b in self.blocks] + [b.slope for b in self.blocks if b.slope is not None]
        return list(dict.fromkeys(out))

    def rest_design(self) -> Design:
        """The design of the other terms alone (the coded terms left out), as formulaic built it.

        Returns
        -------
        Design
        """
        return Design(**design_fields(self, names=self.rest_names, formulaic_names=self.rest_formulaic_names,
                                       assign=self.rest_assign, spec=self.rest_spec))

    def newdata_block(self, frame: pd.DataFrame, rest: np.ndarray) -> np.ndarray:
        """The design of new rows from the other terms' columns ``rest`` (newdata_matrix of rest_design()).

        Returns
        -------
        numpy.ndarray (len(frame), p), NaN rows where a coded term's variable is missing.
        """
        out = np.empty((len(frame), len(self.names)))
        out[:, self.rest_at] = rest
        for b in self.blocks:
            out[:, b.position:b.position + b.width] = b.new_rows(frame)
        return out

    @property
    def X(self) -> np.ndarray:
        """The whole (n, p) design, dummies included (O(n L): only for the rare callers that need it).

        Returns
        -------
        numpy.ndarray
        """
        if self._X is None:
            self._X = self.row_block(0, self.shape[0])
        return self._X

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Rows start:stop of the design, the coded terms' columns gathered from their codings.

        Returns
        -------
        numpy.ndarray
            (stop - start, p + spare) float64, Fortran order.
        """
        if self._X is not None and not spare:
            return self._X[start:stop]
        n, p = self.shape
        stop = min(stop, n)
        B = np.empty((p + spare, stop - start)).T
        for j, c in zip(self.rest_at, self.columns):
            B[:, j] = c[start:stop]
        for b in self.blocks:
            B[:, b.position:b.position + b.width] = b.rows(start, stop)
        B[:, p:] = 0.0
        return B

    def matvec(self, beta: np.ndarray) -> np.ndarray:
        """X @ beta: the other columns' product plus each coded term's per-level values gathered by code.

        Returns
        -------
        numpy.ndarray
        """
        out = np.zeros(len(self.y))
        for j, c in zip(self.rest_at, self.columns):
            if beta[j] != 0:
                out += beta[j] * c
        for b in self.blocks:
            per_level = (b.coding @ beta[b.position:b.position + b.width])[b.codes]
            out += per_level if b.values is None else per_level * b.values
        return out


def design_fields(design: Design, **changes: Any) -> dict[str, Any]:
    """A Design's constructor arguments (its init fields), some changed.

    Returns
    -------
    dict
    """
    return {**{fl.name: getattr(design, fl.name) for fl in fields(Design) if fl.init}, **changes}
