"""R's text for aov fits: print.aov / print.aovlist, print.summary.aov(list) and print.TukeyHSD."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from torchlm.present import rformat as rf
from torchlm.present.html import Matrix, text_html
from torchlm.present.summary import anova_text

SUMMARY_DIGITS = 4  # print.summary.aov: max(3, getOption("digits") - 3)
PRINT_DIGITS = 7  # getOption("digits"): print.aov's format() and print.TukeyHSD
_ROWS = ["Sum of Squares", "Deg. of Freedom"]
_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
               "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "NA_complex_", "in"}


def summary_aov_text(tables: Sequence[tuple[str | None, pd.DataFrame]], na_line: str | None = None) -> str:
    """The text of R's print(summary(aov(...))): one table, or one per error stratum headed "Error: <stratum>".

    Parameters
    ----------
    tables : sequence of (stratum name or None, table)
        summary.aov tables (Df, Sum Sq, Mean Sq, and F value, Pr(>F) where there are residual df); a
        name None is the single table of a fit without strata. ``attrs["row_width"]``: the width R
        pads the row names to.
    na_line : str or None
        R's naprint line ("3 observations deleted due to missingness"), printed after a single table.

    Returns
    -------
    str
        The printout, lines joined by newlines.
    """
    lines: list[str] = []
    for name, tab in tables:
        if name is not None:
            lines += ["", f"Error: {name}"]
        width = tab.attrs.get("row_width", 0)
        padded = tab.rename(index={r: str(r).ljust(width) for r in tab.index})
        lines += anova_text(padded, SUMMARY_DIGITS).split("\n")
        if name is None and na_line:
            lines.append(na_line)
    return "\n".join(lines)


def summary_aov_html(tables: Sequence[tuple[str | None, pd.DataFrame]], na_line: str | None = None) -> str:
    """Notebook HTML of R's print(summary(aov(...))): its text, each stratum's table as an HTML table.

    Parameters
    ----------
    tables, na_line
        As :func:`summary_aov_text`.

    Returns
    -------
    str
        One ``<div class='torchlm-anova'>`` element: the "Error: <stratum>" headings, the tables, the legends.
    """
    matrices = [Matrix([str(r).ljust(tab.attrs.get("row_width", 0)) for r in tab.index], [str(c) for c in tab.columns])
                for _, tab in tables]
    return text_html(summary_aov_text(tables, na_line), matrices, "torchlm-anova")


def terms_lines(names: Sequence[str], df: Sequence[int], ss: Sequence[float], rdf: int, rss: float, *,
                ncoef: int, rank: int, balanced: bool, na_line: str | None = None) -> list[str]:
    """print.aov's lines from "Terms:" on: sums of squares and df per term, residual standard error, balance.

    Parameters
    ----------
    names, df, ss : sequences
        The terms shown (intercept left out), their degrees of freedom and sums of squares.
    rdf : int
        Residual degrees of freedom.
    rss : float
        Residual sum of squares (weighted).
    ncoef, rank : int
        Columns fitted and how many were estimable ("k out of ncoef effects not estimable").
    balanced : bool
        R's test of the QR factor: no off-diagonal mass ("Estimated effects are balanced").
    na_line : str or None
        R's naprint line.

    Returns
    -------
    list of str
        The lines, starting with a blank line and "Terms:".
    """
    out = ["", "Terms:"]
    if not names:
        if rdf <= 0:
            return out + rf.render_matrix(_ROWS, ["<empty>"], [["0"], ["0"]])
        out += rf.render_matrix(_ROWS, ["Residuals"], [[rf.format_scalar(rss, PRINT_DIGITS)], [str(rdf)]])
        return out + ["", "Residual standard error: " + rf.format_scalar(math.sqrt(rss / rdf), PRINT_DIGITS)]
    names, df, ss = list(names), list(df), list(ss)
    if rdf > 0:
        names, df, ss = names + ["Residuals"], df + [rdf], ss + [rss]
    cells = [rf.format_num(rf.zapsmall(ss, PRINT_DIGITS), PRINT_DIGITS), rf.format_num(df, PRINT_DIGITS)]
    out += rf.render_matrix(_ROWS, names, cells) + [""]
    if rdf > 0:
        out.append("Residual standard error: " + rf.format_scalar(math.sqrt(rss / rdf), PRINT_DIGITS))
    if rank < ncoef:
        out.append(f"{ncoef - rank} out of {ncoef} effects not estimable")
    out.append("Estimated effects are balanced" if balanced else "Estimated effects may be unbalanced")
    if na_line:
        out.append(na_line)
    return out


def print_aov_text(call: str, terms: list[str]) -> str:
    """The text of R's print(aov(...)): the call, then the "Terms:" block.

    Parameters
    ----------
    call : str
        The fit's call.
    terms : list of str
        The lines from :func:`terms_lines`.

    Returns
    -------
    str
        The printout, lines joined by newlines.
    """
    return "\n".join(["Call:", "   " + call] + terms)


def print_aovlist_text(call: str, grand_mean: float | None, strata: Sequence[tuple[str, list[str]]]) -> str:
    """The text of R's print of a multistratum aov: call, grand mean, then each stratum as print.aov shows it.

    Parameters
    ----------
    call : str
        The fit's call.
    grand_mean : float or None
        The (Intercept) stratum's coefficient; None where there is no such stratum.
    strata : sequence of (name, terms lines)
        The strata after the (Intercept) one, each with its :func:`terms_lines`.

    Returns
    -------
    str
        The printout, lines joined by newlines.
    """
    out = ["", "Call:", call]
    if grand_mean is not None:
        out += ["", "Grand Mean: " + rf.format_scalar(grand_mean, PRINT_DIGITS)]
    for k, (name, lines) in enumerate(strata, start=1):
        out += ["", f"Stratum {k}: {name}"] + lines
    return "\n".join(out)


def list_tag(name: str) -> str:
    """How R's print of a list names an element: ``$name``, or ``$`name``` when name is not syntactic.

    Returns
    -------
    str
    """
    syntactic = re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*", name) is not None and name not in _R_RESERVED
    return f"${name}" if syntactic else f"$`{name}`"


def tukey_text(tables: dict[str, pd.DataFrame], conf_level: float, ordered: bool, call: str) -> str:
    """The text of R's print.TukeyHSD: heading, the fit's call, then each term's table (p adj rounded to 7 places).

    Parameters
    ----------
    tables : dict of str to pandas.DataFrame
        Per term, the comparisons (columns diff, lwr, upr, p adj; index "B-A").
    conf_level : float
        The family-wise confidence level.
    ordered : bool
        Whether the levels were ordered by their means.
    call : str
        The fit's call.

    Returns
    -------
    str
        The printout, lines joined by newlines (a blank line after each table, as R's print of a list).
    """
    out = ["  Tukey multiple comparisons of means",
           f"    {rf.format_scalar(100 * conf_level, 2)}% family-wise confidence level"]
    if ordered:
        out.append("    factor levels have been ordered")
    out += ["", f"Fit: {call}", ""]
    for term, tab in tables.items():
        cols = []
        for c in tab.columns:
            v = tab[c].to_numpy(dtype=float)
            if c == "p adj":
                v = [x if math.isnan(x) else round(float(x), PRINT_DIGITS) for x in v]
            cols.append(rf.format_num(v, PRINT_DIGITS))
        cells = [list(row) for row in zip(*cols)]
        out += [list_tag(term)] + rf.render_matrix([str(r) for r in tab.index], list(tab.columns), cells) + [""]
    return "\n".join(out)
