"""R's coefficient names for a design's columns (names="R"): ``(Intercept)``, ``factor(cyl)6``, ``wt:factor(am)1``.

R names a column by its term's variables, each as R deparses it (``I(wt^2)``, ``poly(wt, 2, raw = TRUE)``,
``ns(wt, df = 3)``), followed by the column of the variable's coding: a factor's level (treatment and SAS
contrasts, and a factor coded in full), the contrast's number (sum, helmert, a matrix without column
names), ``.L .Q .C ^4`` (poly), a basis's number (``poly(wt, 2)1``); the variables of an interaction
joined by ``:``. The names are read from formulaic's columns and each factor's coding in the ModelSpec,
so that they follow the design's columns (their order, their aliasing) one for one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from formulaic.transforms.contrasts import DiffContrasts, HelmertContrasts, SumContrasts, TreatmentContrasts

from torchlm.errors import FormulaError
from torchlm.frame.formula import r_spelling
from torchlm.present.deparse import Node, deparse, parse, r_text
from torchlm.present.rformat import format_scalar

R_INTERCEPT = "(Intercept)"


def r_names(spec: Any, names: list[str], formula: str = "") -> list[str]:
    """R's names of a design's columns (formulaic's name where a column's coding is not known).

    Parameters
    ----------
    spec : formulaic ModelSpec
        The right-hand side's spec (its structure and encoder state).
    names : list of str
        formulaic's column names, in the design's order.
    formula : str
        The formula as the user wrote it (R's spellings of calls that torchlm rewrites, as as.factor()).

    Returns
    -------
    list of str
        One name per column.
    """
    spelled = _r_spellings(formula)
    states = {expr: st for expr, (_, st) in spec.encoder_state.items() if "contrasts" in st}
    mapped: dict[str, str] = {}
    for st in spec.structure:
        if str(st.term) == "1":
            mapped.update({c: R_INTERCEPT for c in st.columns})
            continue
        for col in st.columns:
            for scoped in st.scoped_terms:
                parts = _match(col, 0, [sf.factor.expr for sf in scoped.factors], states, spelled)
                if parts is not None:
                    mapped[col] = ":".join(parts)
                    break
    return [mapped.get(c, c) for c in names]


def r_label(expr: str, spelled: dict[str, str] | None = None) -> str:
    """A factor's label as R deparses the variable: ``I(wt ** 2)`` is ``I(wt^2)``, ``my var`` is `` `my var` ``.

    Parameters
    ----------
    expr : str
        formulaic's expression of the factor.
    spelled : dict, optional
        R's spellings of rewritten calls (``factor(x)`` -> ``as.factor(x)``).

    Returns
    -------
    str
    """
    text = r_text(expr)
    if text.startswith("`") and ("(" in expr or "[" in expr):
        # not R's syntax (a Python list of levels): R's c() for the list, else the text as it is
        text = r_text(expr.replace("[", "c(").replace("]", ")"))
        text = expr if text.startswith("`") else text
    return (spelled or {}).get(text, text)


def level_text(level: Any) -> str:
    """A factor level as R's as.character() writes it (``6``, ``2.5``, ``TRUE``).

    Returns
    -------
    str
    """
    if isinstance(level, (bool, np.bool_)):
        return "TRUE" if level else "FALSE"
    if isinstance(level, (int, np.integer)):
        return str(int(level))
    if isinstance(level, (float, np.floating)):
        return format_scalar(float(level), 15)
    return str(level)


def _codings(expr: str, state: dict) -> dict[str, str]:
    """formulaic's name of each column of a categorical factor (reduced and full) -> R's."""
    cs = state["contrasts"]
    contrast, levels = cs.contrasts, list(cs.levels)
    out = {}
    for reduced in (True, False):
        fmt = contrast.get_factor_format(levels, reduced_rank=reduced)
        fields = list(contrast.get_coding_column_names(levels, reduced_rank=reduced))
        if not reduced or isinstance(contrast, TreatmentContrasts):
            r_fields = [level_text(f) for f in fields]
        elif isinstance(contrast, (SumContrasts, HelmertContrasts, DiffContrasts)):
            r_fields = [str(k) for k in range(1, len(fields) + 1)]
        else:  # poly's .L .Q .C ^4, a matrix's column names or numbers
            r_fields = [str(f) for f in fields]
        out.update({fmt.format(name=expr, field=f): r for f, r in zip(fields, r_fields)})
    return out


def _match(col: str, pos: int, exprs: list[str], states: dict, spelled: dict) -> list[str] | None:
    """R's names of the factors ``exprs`` that formulaic's column name ``col`` joins from ``pos`` on."""
    if not exprs:
        return [] if pos == len(col) else None
    expr, rest = exprs[0], exprs[1:]
    label = r_label(expr, spelled)
    if expr in states:
        candidates = [(text, label + field) for text, field in _codings(expr, states[expr]).items()]
    else:
        candidates = _numeric_parts(col, pos, expr, label)
    for text, r_part in candidates:
        end = pos + len(text)
        if not col.startswith(text, pos) or (rest and col[end:end + 1] != ":"):
            continue
        tail = _match(col, end + (1 if rest else 0), rest, states, spelled)
        if tail is not None:
            return [r_part] + tail
    return None


def _numeric_parts(col: str, pos: int, expr: str, label: str) -> list[tuple[str, str]]:
    """The ways a numeric factor can name its column at ``pos``: ``expr`` alone, or ``expr[field]``."""
    if not col.startswith(expr, pos):
        return []
    after = pos + len(expr)
    out = [(expr, label)]
    if col[after:after + 1] == "[":
        for j in range(after + 1, len(col)):
            if col[j] == "]" and (j + 1 == len(col) or col[j + 1] == ":"):
                out.append((col[pos:j + 1], label + col[after + 1:j]))
    return out


def _r_spellings(formula: str) -> dict[str, str]:
    """{R's deparse of a call after torchlm's rewriting: the user's spelling} for calls that differ."""
    try:
        root = parse(formula)
    except FormulaError:
        return {}
    out: dict[str, str] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if node.kind == "call":
            own = deparse(node)
            rewritten = r_text(r_spelling(own))
            if rewritten != own:
                out[rewritten] = own
        stack.extend(a[1] if isinstance(a, tuple) else a for a in node.args if isinstance(a, (tuple, Node)))
    return out
