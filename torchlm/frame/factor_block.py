"""A design whose many-level factor is kept as codes: R's model matrix without its n x L dummy block.

``y ~ x1 + C(firm) + x2`` with 500 firms is, in R and in formulaic, 499 dummy columns of n rows. Here
the factor's term is left out of formulaic's materialization; its columns are the rows of its coding
matrix C (L x m, whatever the contrasts) gathered by each row's level code. FactorDesign is a Design
(same names, term assignment, response, weights, rows) whose row blocks and products build the
dummies from the codes when they are read: everything that reads a design by row blocks works
unchanged, and solvers/factor_qr.py fits it without the block at all.

A factor is kept as codes when it is a main-effect term of one variable (``f``, ``C(f)``,
``factor(f)``, ``as.factor(f)``) that no other term uses, with at least ``tl.options(factor_levels=)``
levels (default 100; None: never) and at most MAX_CODED_LEVELS; of several, the one with the most
levels (the others stay dummy columns).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, OptionError
from torchlm.frame.contrasts import Coding
from torchlm.frame.data import as_frame
from torchlm.frame.design import Design, model_matrix
from torchlm.frame.fixest import factorize
from torchlm.frame.formula import expand_dot, formulaic_formula, split_offsets
from torchlm.frame.model_frame import check_na_action, model_frame

_CALL = re.compile(r"^(?:C|factor|as\.factor)\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)`?\s*\)$")
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


@dataclass
class FactorDesign(Design):
    """A Design whose columns ``factor_position .. + m`` are a factor's coding, kept as level codes.

    Parameters
    ----------
    factor_codes : (n,) int64 level codes of the rows used.
    factor_coding : (L, m) the coding matrix: the columns of level g are its row.
    factor_position : the first of the factor's m columns in the design.
    factor_variable : the data column; factor_levels_index : the levels, in code order.
    """

    factor_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    factor_coding: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    factor_position: int = 0
    factor_variable: str = ""
    factor_levels_index: pd.Index = field(default_factory=pd.Index, repr=False)
    rest_names: list[str] = field(default_factory=list, repr=False)
    rest_formulaic_names: list[str] = field(default_factory=list, repr=False)
    rest_assign: list[str] = field(default_factory=list, repr=False)
    rest_spec: Any = field(default=None, repr=False)
    # what solvers make of the design once (solvers/factor_passes.FactorTerms.of: its columns as tensors)
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def rest_design(self) -> Design:
        """The design of the other terms alone (the factor's term left out), as formulaic built it.

        Returns
        -------
        Design
        """
        return Design(**design_fields(self, names=self.rest_names, formulaic_names=self.rest_formulaic_names,
                                       assign=self.rest_assign, spec=self.rest_spec))

    def newdata_codes(self, values: pd.Series) -> np.ndarray:
        """Level codes of new rows: -1 where the factor is missing.

        Raises
        ------
        DataError
            For a level not seen in fitting (R's "factor f has new levels").

        Returns
        -------
        numpy.ndarray (len(values),) int64
        """
        codes = self.factor_levels_index.get_indexer(values)
        new = (codes < 0) & ~values.isna().to_numpy()
        if new.any():
            shown = ", ".join(map(str, pd.unique(values[new])[:5]))
            raise DataError(f"factor {self.factor_variable} has new levels {shown}")
        return codes.astype(np.int64)

    def newdata_block(self, values: pd.Series) -> np.ndarray:
        """The factor's columns for new rows: NaN rows where it is missing.

        Returns
        -------
        numpy.ndarray (len(values), m)
        """
        codes = self.newdata_codes(values)
        out = self.factor_coding[np.where(codes < 0, 0, codes)]
        out[codes < 0] = np.nan
        return out

    @property
    def factor_width(self) -> int:
        """m, the factor's columns."""
        return int(self.factor_coding.shape[1])

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
        """Rows start:stop of the design, the factor's columns gathered from its coding.

        Returns
        -------
        numpy.ndarray
            (stop - start, p + spare) float64, Fortran order.
        """
        if self._X is not None and not spare:
            return self._X[start:stop]
        n, p = self.shape
        stop = min(stop, n)
        pos, m = self.factor_position, self.factor_width
        B = np.empty((p + spare, stop - start)).T
        for j, c in enumerate(self.columns):
            B[:, j if j < pos else j + m] = c[start:stop]
        B[:, pos:pos + m] = self.factor_coding[self.factor_codes[start:stop]]
        B[:, p:] = 0.0
        return B

    def matvec(self, beta: np.ndarray) -> np.ndarray:
        """X @ beta: the other columns' product plus the factor's per-level value gathered by code.

        Returns
        -------
        numpy.ndarray
        """
        pos, m = self.factor_position, self.factor_width
        rest = np.concatenate([beta[:pos], beta[pos + m:]])
        out = np.zeros(len(self.y))
        for b, c in zip(rest, self.columns):
            if b != 0:
                out += b * c
        return out + (self.factor_coding @ beta[pos:pos + m])[self.factor_codes]


def design_fields(design: Design, **changes: Any) -> dict[str, Any]:
    """A Design's constructor arguments (its init fields), some changed.

    Returns
    -------
    dict
    """
    return {**{fl.name: getattr(design, fl.name) for fl in fields(Design) if fl.init}, **changes}


def _candidate(f: Any, data: pd.DataFrame, most: float) -> tuple[str, str] | None:
    """(term, variable) of the factor term of the parsed formula ``f`` to keep as codes, or None."""
    threshold = factor_levels()
    if threshold is None:
        return None
    terms = list(f.rhs)
    found = []
    for t in terms:
        if len(t.factors) != 1:
            continue
        expr = t.factors[0].expr
        m = _CALL.match(expr)
        var = m.group(1) if m else expr if expr in data.columns else None
        if var is None or var not in data.columns:
            continue
        col = data[var]
        if not m and not (isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object
                          or pd.api.types.is_string_dtype(col.dtype)):
            continue
        found.append((str(t), var))
    sized = sorted(((_levels(data[v]), t, v) for t, v in found), reverse=True)
    sized = [(L, t, v) for L, t, v in sized if threshold <= L <= most]
    if not sized:
        return None
    # the factor with the most levels is kept as codes; the others stay dummy columns
    _, term, var = sized[0]
    others = [str(t) for t in terms if str(t) != term]
    if any(re.search(rf"(?<![A-Za-z0-9_.]){re.escape(var)}(?![A-Za-z0-9_.])", o) for o in others):
        return None  # the variable is also in an interaction or a transformation: R's dense coding
    return term, var


def _levels(col: pd.Series) -> int:
    """Distinct values of a column; 0 for one that has none (lists, ...): the dense path reports its problem."""
    try:
        return int(col.nunique())
    except TypeError:
        return 0


def factor_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
                  na_action: str = "omit", contrasts: Any = None, names: str = "formulaic",
                  allow_factor_response: bool = False, fitter: str | None = None,
                  large: Callable[..., FactorDesign] | None = None) -> FactorDesign | None:
    """The design of ``formula`` with its many-level factor as codes, or None when it has none to keep.

    Parameters
    ----------
    formula, data, weights, offset, subset, na_action, contrasts, names, allow_factor_response, fitter :
        as build_design's.
    large : the builder of a factor with more than large_factor_levels() levels (frame/large_factor.py's
        large_factor_design), for the fitters that can fit one; None: such a factor stays dense.

    Returns
    -------
    FactorDesign or None
    """
    try:
        check_na_action(na_action)
        Coding.make(contrasts, names, formula)
        frame_data = as_frame(data)
        formula = expand_dot(formula, frame_data.columns)
        if split_offsets(formula)[1] or "cbind(" in formula:
            return None
        f = formulaic_formula(formula, frame_data.columns)
        found = _candidate(f, frame_data, large_factor_levels() if large is None else np.inf)
    except Exception:  # anything wrong with the call: build_design reports it, in its order
        return None
    if found is None:
        return None
    term, var = found
    terms = [str(t) for t in f.rhs]
    rest_terms = [t for t in terms if t != term]
    rhs = " + ".join(t for t in rest_terms if t != "1") or "1"
    rest = f"{f.lhs} ~ " + ("" if "1" in terms else "0 + ") + rhs
    frame = model_frame(frame_data, [var], weights=weights, offset=offset, subset=subset, na_action=na_action)
    kw = dict(contrasts=contrasts, names=names, allow_factor_response=allow_factor_response, fitter=fitter)
    # the other terms' design has no factor to give the factor's own contrasts= entry to
    rest_contrasts = (type(contrasts)({k: v for k, v in contrasts.items() if str(k).replace(" ", "") not in
                                       (var, term.replace(" ", ""))}) if isinstance(contrasts, dict) else contrasts)
    design = model_matrix(rest, frame, **{**kw, "contrasts": rest_contrasts})
    assert design.frame is not None and design.rows is not None
    codes, levels = factorize(frame_data[var].iloc[design.rows])
    if large is not None and len(levels) > large_factor_levels():
        return large(design, formula, term, var, codes, levels, frame_data,
                     lambda fml, fr: model_matrix(fml, fr, **kw))
    first = np.unique(codes, return_index=True)[1]
    # the full formula on one row per level: the design's names, term assignment and the factor's coding
    small = model_matrix(formula, design.frame.restrict(np.sort(first)), **kw)
    cols = [j for j, a in enumerate(small.assign) if a == term]
    others = [j for j in range(len(small.names)) if j not in cols]
    if not cols or cols != list(range(cols[0], cols[0] + len(cols))) or [
            small.formulaic_names[j] for j in others] != design.formulaic_names:
        return None  # the small design does not line up with the large one (a level of another factor missing)
    order = np.argsort(np.argsort(first))  # row of level g among the small design's rows (sorted by position)
    coding = small.X[:, cols][order]
    # the full formula's spec (its terms, for anova, drop1 and update); the other terms' for newdata
    base = design_fields(design, names=small.names, formulaic_names=small.formulaic_names, assign=small.assign,
                          formula=small.formula, has_intercept=small.has_intercept, spec=small.spec)
    return FactorDesign(**base, factor_codes=codes.astype(np.int64), factor_coding=np.ascontiguousarray(coding),
                        factor_position=cols[0], factor_variable=var, factor_levels_index=pd.Index(levels),
                        rest_names=list(design.names), rest_formulaic_names=list(design.formulaic_names),
                        rest_assign=list(design.assign), rest_spec=design.spec)
