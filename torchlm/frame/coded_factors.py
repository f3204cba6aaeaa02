"""Which factor terms of a formula are kept as codes (frame/factor_block.py), and the FactorDesign of them.

A factor is kept as codes when it is a main effect of one variable (``f``, ``C(f)``, ``factor(f)``,
``as.factor(f)``) or a slope term of it (``C(f):x``, ``f:x`` with x a numeric data column), and no other
term uses the variable. Once one such factor has at least ``tl.options(factor_levels=)`` levels (default
100; None: never), the others are kept with it, the largest first, while their levels (times their
terms) total at most ``tl.options(large_factor_levels=)``: solvers/factor_qr.py forms an (L + k)^2
factor. Beyond that, a lone main-effect factor is tl.lm's within fit (frame/large_factor.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from torchlm.frame.contrasts import Coding
from torchlm.frame.data import as_frame
from torchlm.frame.design import Design, model_matrix
from torchlm.frame.factor_block import CodedBlock, FactorDesign, design_fields, factor_levels, large_factor_levels
from torchlm.frame.fixest import factorize
from torchlm.frame.formula import expand_dot, formulaic_formula, split_offsets
from torchlm.frame.model_frame import check_na_action, model_frame

_CALL = re.compile(r"^(?:C|factor|as\.factor)\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)`?\s*\)$")
Found = tuple[str, str, "str | None"]  # (term, factor variable, slope variable or None)


def _categorical(col: pd.Series) -> bool:
    return (isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object
            or pd.api.types.is_string_dtype(col.dtype))


def _factor_variable(expr: str, data: pd.DataFrame) -> str | None:
    m = _CALL.match(expr)
    if m:
        return m.group(1) if m.group(1) in data.columns else None
    return expr if expr in data.columns and _categorical(data[expr]) else None


def _numeric_variable(expr: str, data: pd.DataFrame) -> str | None:
    name = expr.strip("`")
    if name not in data.columns:
        return None
    dtype = data[name].dtype
    return name if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) else None


def _levels(col: pd.Series) -> int:
    """Distinct values of a column; 0 for one that has none (lists, ...): the dense path reports its problem."""
    try:
        return int(col.nunique())
    except TypeError:
        return 0


def _terms_by_variable(f: Any, data: pd.DataFrame) -> dict[str, list[tuple[str, str | None]]]:
    """The terms that could be kept as codes, by factor variable: (term, slope variable or None)."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    for t in f.rhs:
        exprs = [x.expr for x in t.factors]
        if len(exprs) == 1 and (v := _factor_variable(exprs[0], data)):
            found.setdefault(v, []).append((str(t), None))
        elif len(exprs) == 2:
            for a, b in ((0, 1), (1, 0)):
                v, s = _factor_variable(exprs[a], data), _numeric_variable(exprs[b], data)
                if v and s:
                    found.setdefault(v, []).append((str(t), s))
                    break
    terms = [str(t) for t in f.rhs]

    def elsewhere(var: str, own: list[str]) -> bool:
        pat = rf"(?<![A-Za-z0-9_.]){re.escape(var)}(?![A-Za-z0-9_.])"
        return any(re.search(pat, o) for o in terms if o not in own)

    # a variable also in a term not kept (an interaction with a factor, a transformation) stays dense, and so
    # does one with two main effects or twice the same slope
    return {v: ts for v, ts in found.items() if not elsewhere(v, [t for t, _ in ts])
            and len({s for _, s in ts}) == len(ts)}


def coded_terms(f: Any, data: pd.DataFrame, large: bool) -> list[Found]:
    """The terms of the parsed formula ``f`` to keep as codes, in formula order ([] for none).

    Parameters
    ----------
    f : formulaic's parsed formula; data : the data.
    large : whether a factor beyond large_factor_levels() can be fitted (tl.lm's within fit): then such a
        factor, alone and without slopes, is returned; otherwise it stays dense.

    Returns
    -------
    list of (term, variable, slope or None)
    """
    threshold = factor_levels()
    if threshold is None:
        return []
    by_var = _terms_by_variable(f, data)
    budget = large_factor_levels()
    sized = sorted(((_levels(data[v]), v) for v in by_var), key=lambda s: -s[0])
    sized = [(L, v) for L, v in sized if L >= 2 and (large or L <= budget)]
    if not sized or sized[0][0] < threshold:
        return []
    top_levels, top = sized[0]
    if top_levels > budget:
        return [(by_var[top][0][0], top, None)] if by_var[top] == [(by_var[top][0][0], None)] else []
    chosen, total = [], 0
    for L, v in sized:
        cost = L * len(by_var[v])
        if total + cost <= budget:
            chosen.append(v)
            total += cost
    order = [str(t) for t in f.rhs]
    out = [(t, v, s) for v in chosen for t, s in by_var[v]]
    return sorted(out, key=lambda x: order.index(x[0]))


def _rest_formula(f: Any, coded: set[str]) -> str:
    terms = [str(t) for t in f.rhs]
    rhs = " + ".join(t for t in terms if t not in coded and t != "1") or "1"
    return f"{f.lhs} ~ " + ("" if "1" in terms else "0 + ") + rhs


def factor_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
                  na_action: str = "omit", contrasts: Any = None, names: str = "formulaic",
                  allow_factor_response: bool = False, fitter: str | None = None,
                  large: Callable[..., FactorDesign] | None = None) -> FactorDesign | None:
    """The design of ``formula`` with its many-level factors as codes, or None when it has none to keep.

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
        found = coded_terms(f, frame_data, large is not None)
    except Exception:  # anything wrong with the call: build_design reports it, in its order
        return None
    if not found:
        return None
    factors = list(dict.fromkeys(v for _, v, _ in found))
    slopes = list(dict.fromkeys(s for _, _, s in found if s is not None))
    frame = model_frame(frame_data, factors + slopes, weights=weights, offset=offset, subset=subset,
                        na_action=na_action)
    kw = dict(contrasts=contrasts, names=names, allow_factor_response=allow_factor_response, fitter=fitter)
    # the other terms' design has no coded factor to give a contrasts= entry of one to
    keys = set(factors) | {t.replace(" ", "") for t, _, _ in found}
    rest_contrasts = (type(contrasts)({k: v for k, v in contrasts.items() if str(k).replace(" ", "") not in keys})
                      if isinstance(contrasts, dict) else contrasts)
    design = model_matrix(_rest_formula(f, {t for t, _, _ in found}), frame, **{**kw, "contrasts": rest_contrasts})
    assert design.frame is not None and design.rows is not None
    used = frame_data.iloc[design.rows]
    coded = {v: factorize(used[v]) for v in factors}
    if large is not None and len(found) == 1 and len(coded[factors[0]][1]) > large_factor_levels():
        term, var = found[0][0], factors[0]
        return large(design, formula, term, var, coded[var][0], coded[var][1], frame_data,
                     lambda fml, fr: model_matrix(fml, fr, **kw))
    return _small_design_blocks(formula, design, found, coded, frame_data, kw)


def _small_design_blocks(formula: str, design: Design, found: list[Found], coded: dict[str, Any],
                         frame_data: pd.DataFrame, kw: dict[str, Any]) -> FactorDesign | None:
    """The FactorDesign from the full formula materialized on the first row of each level of each coded factor
    (the slopes set to 1 there): its names, term assignment and each coded term's coding."""
    assert design.frame is not None and design.rows is not None
    firsts = {v: np.unique(codes, return_index=True)[1] for v, (codes, _) in coded.items()}
    pick = np.unique(np.concatenate(list(firsts.values())))
    sub = design.frame.restrict(pick)
    few = frame_data.iloc[sub.rows].copy()
    for s in {s for _, _, s in found if s is not None}:
        few[s] = 1.0
    try:
        small = model_matrix(formula, replace(sub, data=few.reset_index(drop=True), rows=np.arange(len(pick)),
                                              subset=None), **kw)
    except Exception:  # a transformation of a slope variable set to 1 here (poly(x)): the dense design
        return None
    blocks, taken = [], set()
    used = frame_data.iloc[design.rows]
    for term, var, slope in found:
        cols = [j for j, a in enumerate(small.assign) if a == term]
        if not cols or cols != list(range(cols[0], cols[0] + len(cols))):
            return None
        taken.update(cols)
        at = np.searchsorted(pick, firsts[var])  # the small design's row of each level
        values = None if slope is None else used[slope].to_numpy(dtype=float)
        blocks.append(CodedBlock(term=term, variable=var, codes=coded[var][0].astype(np.int64),
                                 levels=pd.Index(coded[var][1]), coding=np.ascontiguousarray(small.X[at][:, cols]),
                                 position=cols[0], slope=slope, values=values))
    others = [small.formulaic_names[j] for j in range(len(small.names)) if j not in taken]
    if others != list(design.formulaic_names):
        return None  # the small design does not line up with the large one (a level of another factor missing)
    # the full formula's spec (its terms, for anova, drop1 and update); the other terms' for newdata
    base = design_fields(design, names=small.names, formulaic_names=small.formulaic_names, assign=small.assign,
                          formula=small.formula, has_intercept=small.has_intercept, spec=small.spec)
    return FactorDesign(**base, blocks=tuple(sorted(blocks, key=lambda b: b.position)),
                        rest_names=list(design.names), rest_formulaic_names=list(design.formulaic_names),
                        rest_assign=list(design.assign), rest_spec=design.spec)
