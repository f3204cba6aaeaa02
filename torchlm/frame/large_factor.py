"""A factor with more levels than R's (L + k)^2 factor allows (tl.options(large_factor_levels=)), coded sparse.

``y ~ x + C(firm)`` with 100,000 firms: a FactorDesign (frame/factor_block.py) whose coding matrix would be
L x (L - 1) dense, 80 GB at L = 1e5, and whose names come from materializing the formula on one row per
level (another L x L matrix). Here the formula is materialized on the rows of three levels only (the
first, the reference of the treatment coding, and two more), which gives the other columns' names, the
factor's position and the rule its column names follow; the coding is scipy's sparse identity (without
the first column under an intercept). Only R's default contrasts (treatment, or the full dummy coding
without an intercept) are kept this way: their coefficients are the levels' effects themselves, which
solvers/factor_within.py and inference/factor_blocks.py compute in O(n k^2 + L k^2).

Nothing here forms an n x L or L x L array: row blocks of such a design would be O(n L) and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from torchlm.errors import ModelInputError
from torchlm.frame.design import Design
from torchlm.frame.factor_block import CodedBlock, FactorDesign, design_fields, large_factor_levels


@dataclass
class LargeFactorDesign(FactorDesign):
    """A FactorDesign with treatment (or full dummy) coding held as a sparse (L, m) matrix.

    ``treatment`` is True when the first level is the reference (an intercept in the model), False for
    the full dummy coding of a model without one.
    """

    treatment: bool = True

    def _refuse(self, what: str) -> ModelInputError:
        return ModelInputError(
            f"{what} needs the n x {self.block.levels.size} dummy block of {self.block.variable!r}, which is "
            f"not formed for a factor of more than {large_factor_levels()} levels; the coefficients, standard errors, "
            "vcov(parm=), the classical, HC0-HC3 and clustered covariances, predict, hat values and anova are "
            "computed from its codes (or absorb it with tl.feols)")

    @property
    def X(self) -> np.ndarray:
        """Refused: the dense design would be O(n L).

        Raises
        ------
        ModelInputError

        Returns
        -------
        numpy.ndarray
        """
        raise self._refuse("this computation")

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Refused: a row block has L columns.

        Raises
        ------
        ModelInputError

        Returns
        -------
        numpy.ndarray
        """
        raise self._refuse("this computation")

    def newdata_block(self, frame: pd.DataFrame, rest: np.ndarray) -> np.ndarray:
        """Refused: the factor's columns for new rows are L wide (predict reads the codes instead).

        Raises
        ------
        ModelInputError

        Returns
        -------
        numpy.ndarray
        """
        raise self._refuse("a design matrix of new rows")


def _picked_rows(codes: np.ndarray, used: pd.DataFrame, var: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (positions among the rows used) for the small design: the first of levels 0, 1 and 2, and the first
    of each value of the other categorical columns (so that their levels are all there), these given level 0;
    and the factor's code at each."""
    first = [int(np.flatnonzero(codes == g)[0]) for g in range(3)]
    others: set[int] = set()
    for c in used.columns:
        col = used[c]
        if c != var and (col.dtype == object or col.dtype == bool or isinstance(col.dtype, pd.CategoricalDtype)
                         or pd.api.types.is_string_dtype(col.dtype)):
            others.update(np.flatnonzero(~col.duplicated().to_numpy()).tolist())
    rows = np.array(sorted(set(first) | others))
    at = np.zeros(len(rows), dtype=np.int64)
    at[np.searchsorted(rows, first)] = [0, 1, 2]
    return rows, at


def _name_rule(names: list[str], levels: list[Any]) -> tuple[str, str] | None:
    """(prefix, suffix) with names[i] == prefix + str(levels[i]) + suffix for each i, or None."""
    name, text = names[-1], str(levels[-1])
    at = name.rfind(text)
    if at < 0:
        return None
    prefix, suffix = name[:at], name[at + len(text):]
    return (prefix, suffix) if all(n == f"{prefix}{lv}{suffix}" for n, lv in zip(names, levels)) else None


def large_factor_design(design: Design, formula: str, term: str, var: str, codes: np.ndarray, levels: pd.Index,
                        frame_data: pd.DataFrame, build: Any) -> LargeFactorDesign:
    """The LargeFactorDesign of ``formula`` whose factor ``var`` (term ``term``) has ``len(levels)`` levels.

    Parameters
    ----------
    design : the other terms' design (built by formulaic without the factor's term).
    formula, term, var : the full formula, the factor's term and its data column.
    codes, levels : the level codes of the rows used and the levels (frame/fixest.factorize).
    frame_data : the data as a DataFrame; build : model_matrix with the fit's options (formula, frame).

    Raises
    ------
    ModelInputError
        For contrasts other than treatment (or the full dummy coding), whose coding would be dense.

    Returns
    -------
    LargeFactorDesign
    """
    assert design.frame is not None
    assert design.rows is not None
    pick, at = _picked_rows(codes, frame_data.iloc[design.rows], var)
    chosen = [levels[g] for g in range(3)]
    sub = design.frame.restrict(pick)
    # a copy of a few rows, the factor as a categorical of three levels only: formulaic then codes three
    # levels, not the column's L categories
    few = frame_data.iloc[sub.rows].copy()
    few[var] = pd.Categorical.from_codes(at, categories=pd.Index(chosen))
    small = build(formula, replace(sub, data=few.reset_index(drop=True), rows=np.arange(len(pick)), subset=None))
    cols = [j for j, a in enumerate(small.assign) if a == term]
    m = len(cols)
    others = [small.formulaic_names[j] for j in range(len(small.names)) if j not in cols]
    if others != list(design.formulaic_names):
        raise ModelInputError(f"the columns of the other terms do not line up with {var!r}'s: fit this model with "
                              "tl.feols (absorbing the factor)")
    coding = small.X[:, cols][[int(np.flatnonzero(at == g)[0]) for g in range(3)]] if m else np.zeros((3, 0))
    treatment = m == 2 and np.array_equal(coding, np.eye(3)[:, 1:])
    if not (treatment or (m == 3 and np.array_equal(coding, np.eye(3)))):
        raise ModelInputError(
            f"{var!r} has {len(levels)} levels: beyond {large_factor_levels()} levels a factor is kept as codes with "
            "R's default treatment contrasts only (its coding matrix would otherwise be dense, L x L); use "
            f"contrasts 'contr.treatment' for it, or absorb it with tl.feols")
    used = chosen[1:] if treatment else chosen
    rules = [_name_rule([small.names[j] for j in cols], used),
             _name_rule([small.formulaic_names[j] for j in cols], used)]
    if rules[0] is None or rules[1] is None:
        raise ModelInputError(f"the column names of {var!r}'s levels do not follow one rule: cannot name its "
                              f"{len(levels)} coefficients without materializing them")
    named = list(levels[1:] if treatment else levels)
    pos = cols[0]

    def spliced(rest: list[str], rule: tuple[str, str]) -> list[str]:
        return rest[:pos] + [f"{rule[0]}{lv}{rule[1]}" for lv in named] + rest[pos:]

    base = design_fields(design, names=spliced(list(design.names), rules[0]),
                          formulaic_names=spliced(list(design.formulaic_names), rules[1]),
                          assign=list(design.assign[:pos]) + [term] * len(named) + list(design.assign[pos:]),
                          formula=small.formula, has_intercept=small.has_intercept, spec=small.spec)
    return LargeFactorDesign(
        **base, blocks=(CodedBlock(term=term, variable=var, codes=codes.astype(np.int64), levels=pd.Index(levels),
                                   coding=_sparse_coding(len(levels), treatment), position=pos),),
        rest_names=list(design.names), rest_formulaic_names=list(design.formulaic_names),
        rest_assign=list(design.assign), rest_spec=design.spec, treatment=treatment)


def _sparse_coding(L: int, treatment: bool) -> Any:
    """The (L, L - 1) treatment coding (or the (L, L) identity) as a scipy CSR matrix."""
    eye = sp.identity(L, format="csr", dtype=np.float64)
    return eye[:, 1:] if treatment else eye
