"""R's printouts of the result verbs: summary's "Correlation of Coefficients:" block (numbers or symnum),
print(alias(fit)) (MASS's fractions) and print(dummy.coef(fit)), character for character."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from torchlm.errors import OptionError
from torchlm.present import rformat as rf

if TYPE_CHECKING:
    from torchlm.results.protocols import GeneralizedFit

#: symnum's defaults for a correlation matrix: the cut points of |r| and their symbols
SYMNUM_CUTS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 1.0)
SYMNUM_SYMBOLS = (" ", ".", ",", "+", "*", "B")
SYMNUM_LEGEND = "[1] " + " ".join(f"{c:g} \u2018{s}\u2019" for c, s in zip(SYMNUM_CUTS, SYMNUM_SYMBOLS)) + " 1"
_R_NAME = re.compile(r"^((([A-Za-z]|[.][._A-Za-z])[._A-Za-z0-9]*)|[.])$")
_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
               "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


def left_matrix(rownames: Sequence[str], colnames: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """R's print of a character matrix with quote = FALSE and right = FALSE: headings and cells left-justified.

    Parameters
    ----------
    rownames, colnames : sequence of str
        The labels.
    cells : sequence of sequences of str
        The cells, row by row.

    Returns
    -------
    list of str
        The lines, columns wrapped at R's width of 80 as printMatrix wraps them.
    """
    cols = [list(c) for c in zip(*cells)] if cells else [[] for _ in colnames]
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(colnames, cols)]
    padded = [[c.ljust(w) for c, w in zip(row, widths)] for row in cells]
    return rf.render_matrix(list(rownames), [h.ljust(w) for h, w in zip(colnames, widths)], padded)


def correlation_cells(corr: np.ndarray) -> list[list[str]]:
    """R's format(round(correl, 2), nsmall = 2, digits = 4) of a correlation matrix: one width for all cells.

    Parameters
    ----------
    corr : numpy.ndarray
        (k, k) correlations.

    Returns
    -------
    list of list of str
        The cells, row by row ("NA" for a missing correlation).
    """
    # rounded to 2 places, a correlation needs 2 decimals at most: nsmall = 2 makes it exactly 2
    cells = [["NA" if math.isnan(v) else "%.2f" % (round(float(v), 2) + 0.0) for v in row] for row in corr]
    w = max((len(c) for row in cells for c in row), default=0)
    return [[c.rjust(w) for c in row] for row in cells]


def symnum_cells(corr: np.ndarray) -> tuple[list[list[str]], bool]:
    """R's symnum(correl) of print.summary.lm(symbolic.cor = TRUE): |r| as symbols, lower triangle and diagonal.

    Parameters
    ----------
    corr : numpy.ndarray
        (k, k) correlations.

    Returns
    -------
    (list of list of str, bool)
        The cells, and whether any is missing ("?", which the legend then names).
    """
    a = np.abs(np.asarray(corr, dtype=float))
    cells, has_na = [], False
    for i, row in enumerate(a):
        out = []
        for j, v in enumerate(row):
            if j > i:
                out.append("")
            elif math.isnan(v):
                out.append("?")
                has_na = True
            elif v >= 1 - 1e-5:
                out.append("1")
            else:
                # cut(include.lowest = TRUE, right = TRUE): (a, b] intervals, 0 in the first
                k = int(np.searchsorted(SYMNUM_CUTS, v, side="left"))
                out.append(SYMNUM_SYMBOLS[max(k, 1) - 1])
        cells.append(out)
    return cells, has_na


def correlation_lines(corr: pd.DataFrame, symbolic: bool = False) -> list[str]:
    """The "Correlation of Coefficients:" block of print.summary.lm / print.summary.glm, after a blank line.

    Parameters
    ----------
    corr : pandas.DataFrame
        The estimable coefficients' correlations.
    symbolic : bool
        symnum's symbols (R's symbolic.cor = TRUE) instead of the numbers (the lower triangle, 2 decimals).

    Returns
    -------
    list of str
        No lines for fewer than two coefficients, as R.
    """
    k = corr.shape[1]
    if k <= 1:
        return []
    names = [str(n) for n in corr.index]
    head = ["", "Correlation of Coefficients:"]
    if symbolic:
        cells, has_na = symnum_cells(corr.to_numpy())
        legend = SYMNUM_LEGEND + ("\t    ## NA: \u2018?\u2019" if has_na else "")
        return head + left_matrix(names, [""] * k, cells) + ['attr(,"legend")', legend]
    full = correlation_cells(corr.to_numpy())
    rows = [[full[i][j] if j < i else "" for j in range(k - 1)] for i in range(1, k)]
    return head + left_matrix(names[1:], names[:-1], rows)


def fraction_strings(x: np.ndarray, cycles: int = 10, max_denominator: int = 2000) -> list[str]:
    """MASS's fractions(x) as it prints: each number as its continued-fraction approximation "p/q" (or "p").

    Parameters
    ----------
    x : numpy.ndarray
        The numbers (read in order).
    cycles, max_denominator : int
        MASS's .rat settings: at most ``cycles`` terms, stopping once the remainder is below 1/max_denominator.

    Returns
    -------
    list of str
        One unpadded string per number ("1/3", "-2", "0"; non-finite numbers as R writes them).
    """
    out = []
    for v in np.asarray(x, dtype=float).ravel():
        if not math.isfinite(v):
            out.append("NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf"))
            continue
        b = [math.floor(v)]
        r = v - b[0]
        for _ in range(cycles):
            if not r > 1 / max_denominator:
                break
            r = 1 / r
            b.append(math.floor(r))
            r -= b[-1]
        p0, q0, p, q = 1.0, 0.0, float(b[0]), 1.0
        for bk in b[1:]:
            p0, q0, p, q = p, q, bk * p + p0, bk * q + q0
        num = rf.format_scalar(p, 15)  # paste() of a double: as.character's 15 significant digits
        out.append(num if q == 1 else f"{num}/{rf.format_scalar(q, 15)}")
    return out


def alias_text(model: list[str], complete: pd.DataFrame | None, partial: pd.DataFrame | None) -> str:
    """R's print(alias(fit)) (print.listof): "Model :", the formula, then the "Complete :" and "Partial :" tables.

    Parameters
    ----------
    model : list of str
        The formula's lines.
    complete : pandas.DataFrame or None
        The complete aliasing, printed as MASS's fractions (left-justified, padded to one width).
    partial : pandas.DataFrame or None
        The partial aliasing, printed as a numeric matrix (7 digits, column by column).

    Returns
    -------
    str
        The text, ending with R's blank line.
    """
    lines = ["Model :"] + list(model) + [""]
    if complete is not None:
        fr = fraction_strings(complete.to_numpy())
        w = max((len(s) for s in fr), default=0)
        fr = [s.rjust(w) for s in fr]
        m = complete.shape[1]
        cells = [fr[i * m:(i + 1) * m] for i in range(complete.shape[0])]
        lines += ["Complete :"] + left_matrix([str(r) for r in complete.index], [str(c) for c in complete.columns],
                                              cells) + [""]
    if partial is not None:
        cols = [rf.format_num(partial.iloc[:, j].to_numpy(), 7) for j in range(partial.shape[1])]
        cells = [list(r) for r in zip(*cols)]
        lines += ["Partial :"] + rf.render_matrix([str(r) for r in partial.index],
                                                  [str(c) for c in partial.columns], cells) + [""]
    return "\n".join(lines)


def _r_list_name(name: str) -> str:
    """How R's print of a list names an element: $name, backquoted unless a syntactic name."""
    return name if _R_NAME.match(name) and name not in _R_RESERVED else f"`{name}`"


def dummy_coef_text(terms: Mapping[str, pd.Series], by_factors: bool = True) -> str:
    """R's print(dummy.coef(fit)) (print.dummy_coef): "Full coefficients are", then each term's levels and values.

    Parameters
    ----------
    terms : mapping of str to pandas.Series
        Each term's values, indexed by their level names.
    by_factors : bool
        False for a model without factors: R prints its list of coefficients ($name, [1] value).

    Returns
    -------
    str
        The text.
    """
    if not by_factors:
        out = []
        for name, s in terms.items():
            out += [f"${_r_list_name(name)}", "[1] " + " ".join(rf.format_num(s.to_numpy(), 7)), ""]
        return "\n".join(out)
    nm = max((len(s) for s in terms.values()), default=1)
    rownames: list[str] = []
    cells: list[list[str]] = []
    for term, s in terms.items():
        values = rf.format_num(s.to_numpy(), 7)
        pad = [""] * (nm - len(values))
        if len(values) > 1:
            rownames += [f"{term}:   ", ""]
            cells += [[str(n) for n in s.index] + pad, values + pad]
        else:
            rownames.append(f"{term}:   ")
            cells.append(values + pad)
    return "\n".join(["Full coefficients are "] + rf.render_matrix(rownames, [""] * nm, cells))


def correlation_matrix(V: pd.DataFrame) -> pd.DataFrame:
    """The correlations of the estimates from their covariance (R's summary(correlation = TRUE)).

    Parameters
    ----------
    V : pandas.DataFrame
        (k, k) covariance of the estimable coefficients.

    Returns
    -------
    pandas.DataFrame
        (k, k), labelled as V.
    """
    s = np.sqrt(np.diag(V.to_numpy()))
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(V.to_numpy() / np.outer(s, s), index=V.index, columns=V.columns)


def given_dispersion_cov(fit: GeneralizedFit, dispersion: Any, vcov: Any = None, cluster: Any = None) -> pd.DataFrame:
    """The model-based covariance of a glm at a given dispersion (R's summary.glm(dispersion = )).

    Parameters
    ----------
    fit : ModelResult
        A fitted glm.
    dispersion : float
        A positive number.
    vcov, cluster : None
        Anything else is refused: a given dispersion scales the model-based covariance only.

    Returns
    -------
    pandas.DataFrame
        dispersion times the inverse information, over the estimable coefficients.
    """
    ok = isinstance(dispersion, numbers.Real) and not isinstance(dispersion, bool)
    if not ok or not math.isfinite(dispersion) or dispersion <= 0:
        raise OptionError(f"dispersion must be a positive number (R's summary.glm(dispersion = )), not {dispersion!r}")
    if vcov is not None or cluster is not None:
        raise OptionError("dispersion= gives the model-based covariance at that dispersion: it cannot be combined "
                          "with vcov= or cluster=")
    names = fit.estimable
    V = float(dispersion) * np.asarray(fit._unscaled(), dtype=float)
    return pd.DataFrame(V, index=names, columns=names)
