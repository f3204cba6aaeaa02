"""R's number formatting (format, formatC, format.pval, printCoefmat), for R-identical printouts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_EPS = float(np.finfo(float).eps)


def _sci_parts(x: float, digits: int) -> tuple[int, int, int]:
    """(negative, power of ten, significant digits) of x shown with `digits` significant digits."""
    if x == 0:
        return 0, 0, 1
    mant, exp = ("%.*e" % (digits - 1, abs(x))).split("e")
    mant = mant.replace(".", "").rstrip("0")
    return int(x < 0), int(exp), max(1, len(mant))


def _layout(values, digits: int):
    """R's formatReal: (fixed?, decimals or mantissa digits, width) for a common format."""
    fin = [v for v in values if math.isfinite(v)]
    if not fin:
        return True, 0, 0
    neg = rgt = 0
    mxsl = mxe = mxns = -10**9
    mne = 10**9
    for v in fin:
        n, kp, nsig = _sci_parts(v, digits)
        left = kp + 1
        sleft = n + (1 if left <= 0 else left)
        rgt = max(rgt, nsig - left)
        mxsl = max(mxsl, sleft)
        mxns = max(mxns, nsig)
        mxe, mne = max(mxe, kp), min(mne, kp)
        neg = neg or n
    rgt = max(rgt, 0)
    w_fixed = mxsl + rgt + (rgt != 0)
    e_digits = 2 if (mxe >= 100 or mne <= -99) else 1
    d = mxns - 1
    w_sci = neg + (d > 0) + d + 4 + e_digits
    if w_fixed <= w_sci:
        return True, rgt, w_fixed
    return False, d, w_sci


def _one(v: float, fixed: bool, d: int, na: str = "NA") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return na
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if fixed:
        return "%.*f" % (d, v)
    return "%.*e" % (d, v)


def format_num(values: Sequence[float | None] | np.ndarray, digits: int = 7, na: str = "NA") -> list[str]:
    """R's format(x, digits=) for a numeric vector: one common layout, right-justified.

    Parameters
    ----------
    values : sequence of float or None, or numpy.ndarray
        The numbers; None and NaN are R's NA.
    digits : int
        Significant digits, as R's ``digits``.
    na : str
        How NA is shown.

    Returns
    -------
    list of str
        One string per value, all of one width.
    """
    # None (R's NA) is no array-like to numpy's types: an object array holds it alongside the numbers
    # + 0.0: R prints an exact -0 as 0
    vals = [float("nan") if v is None else float(v) + 0.0 for v in np.atleast_1d(np.asarray(values, dtype=object))]
    fixed, d, w = _layout(vals, digits)
    out = [_one(v, fixed, d, na) for v in vals]
    # R pads to the width of the values rounded to `digits` (99.96 -> 100 at 3 digits: one more place)
    width = max([w] + [len(s) for s in out]) if out else 0
    return [s.rjust(width) for s in out]


def format_scalar(x: float, digits: int = 7) -> str:
    """R's format(x, digits=) of one number.

    Parameters
    ----------
    x : float
        The number (NaN prints as NA).
    digits : int
        Significant digits, as R's ``digits``.

    Returns
    -------
    str
        The number as R prints it, without padding.
    """
    return format_num([x], digits)[0]


def format_c(x: float, digits: int = 4) -> str:
    """R's formatC(x, digits=): C's %.<digits>g, right-justified to digits + 1 characters.

    Parameters
    ----------
    x : float
        The number.
    digits : int
        Significant digits of %g.

    Returns
    -------
    str
        At least digits + 1 characters.
    """
    if not math.isfinite(x):
        # R's formatC writes non-finite numbers as R does, not as C's "nan" / "inf"
        return ("NaN" if math.isnan(x) else "Inf" if x > 0 else "-Inf").rjust(digits + 1)
    return ("%.*g" % (digits, x)).rjust(digits + 1)


def _round(a: np.ndarray, decimals: int) -> np.ndarray:
    """R's round(a, decimals), also where numpy's x * 10^decimals overflows (tiny estimates give R 300+ decimals).

    Where it overflows, rounding to that many decimals leaves a float64 as it is.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.round(a, decimals)
    return np.where(np.isfinite(r) | ~np.isfinite(a), r, a)


def signif(x: float, digits: int) -> float:
    """R's signif().

    Parameters
    ----------
    x : float
        The number.
    digits : int
        Significant digits to keep.

    Returns
    -------
    float
        x rounded to ``digits`` significant digits (0 and non-finite x as they are).
    """
    if x == 0 or not math.isfinite(x):
        return x
    return float("%.*e" % (digits - 1, x))


def format_pval(pv: Sequence[float] | np.ndarray, digits: int, eps: float = _EPS) -> list[str]:
    """R's format.pval().

    Parameters
    ----------
    pv : sequence of float or numpy.ndarray
        p-values; NaN is R's NA.
    digits : int
        Significant digits, as R's ``digits``.
    eps : float
        Values below it print as "< eps" (R's ``eps``, default .Machine$double.eps).

    Returns
    -------
    list of str
        One string per p-value, without padding: "NA" for NaN, "<" and eps for those below eps.
    """
    pv = [float(p) for p in np.atleast_1d(pv)]
    out = [""] * len(pv)
    small = [p < eps for p in pv]
    rest = [i for i, s in enumerate(small) if not s and not math.isnan(pv[i])]
    expo = {i: math.floor(math.log10(pv[i])) if pv[i] > 0 else -50 for i in rest}
    fixp = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
    fixed = set(fixp)
    expp = [i for i in rest if i not in fixed]
    for group in (fixp, expp):
        if group:
            for i, s in zip(group, format_num([pv[i] for i in group], digits)):
                out[i] = s.strip()
    for i, p in enumerate(pv):
        if math.isnan(p):
            out[i] = "NA"
    if any(small):
        d = max(1, digits - 2)
        if rest:
            nc = max(len(out[i]) for i in rest)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if (d == 1 and nc <= 6) else " "
        else:
            sep = "" if d == 1 else " "
        for i, below in enumerate(small):
            if below:
                out[i] = "<" + sep + format_scalar(eps, d)
    return out


def zapsmall(x: Sequence[float] | np.ndarray, digits: int) -> np.ndarray:
    """R's zapsmall() (R 4.2: round(x, digits - log10(max|x|)), the digits rounded half up).

    Parameters
    ----------
    x : sequence of float or numpy.ndarray
        The numbers (NaN and infinite values pass through).
    digits : int
        R's ``digits``.

    Returns
    -------
    numpy.ndarray
        x as float, rounded; the shape of x.
    """
    x = np.asarray(x, dtype=float)
    if np.isnan(x).all():
        return x  # R: if (all(ina <- is.na(x))) return(x)
    mx = np.nanmax(np.abs(x))
    nd = max(0.0, digits - math.log10(mx)) if mx > 0 else digits
    # Python's round() rounds the exact binary value (0.15 -> 0.1), as R >= 4.0 does; np.round does not
    nd = int(math.floor(nd + 0.5))
    return np.array([v if not math.isfinite(v) else round(float(v), nd) for v in x.ravel()]).reshape(x.shape)


def row_labels(rows: Any, data_index: Any = None) -> list[str]:
    """R's row names of the rows used: a data frame's automatic row names are 1, 2, ... where pandas counts from 0.

    Parameters
    ----------
    rows : the labels of the rows (a subset of the data's index).
    data_index : the data's whole index; a default RangeIndex (0, 1, ...) means R's automatic row names.

    Returns
    -------
    list of str
    """
    whole = rows if data_index is None else data_index
    automatic = isinstance(whole, pd.RangeIndex) and whole.start == 0 and whole.step == 1
    return [str(int(r) + 1) if automatic else str(r) for r in rows]


def print_named(values: Sequence[float] | np.ndarray, names: Sequence[str], digits: int, gap: int = 1,
                width: int = 80) -> str:
    """R's print() of a named numeric vector: fields of common width, each followed by ``gap`` spaces.

    Rows of names and values wrap as R's printNamedVector wraps them at ``width`` (options("width")).

    Parameters
    ----------
    values : sequence of float or numpy.ndarray
        The numbers, formatted together as ``format_num(values, digits)``.
    names : sequence of str
        One name per value.
    digits : int
        Significant digits, as R's ``digits``.
    gap : int
        Spaces after each field.
    width : int
        Line width to wrap at.

    Returns
    -------
    str
        The lines, joined by newlines: a row of names, then a row of values, for each wrapped part.
    """
    cells = format_num(values, digits)
    w = max([len(c) for c in cells] + [len(str(n)) for n in names])
    per_line = max(1, width // (w + gap))
    sep = " " * gap
    lines = []
    for k in range(0, len(cells), per_line):
        lines.append("".join(str(n).rjust(w) + sep for n in names[k:k + per_line]))
        lines.append("".join(c.rjust(w) + sep for c in cells[k:k + per_line]))
    return "\n".join(lines)


def signif_stars(p: float) -> str:
    """R's significance symbol for a p-value.

    Parameters
    ----------
    p : float
        The p-value (NaN gives no symbol).

    Returns
    -------
    str
        "***", "**", "*", "." or " " (R's cut points 0.001, 0.01, 0.05, 0.1); "" for NaN.
    """
    if math.isnan(p):
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return sym
    return " "


SIGNIF_LEGEND = ("Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 "
                 "\u2018.\u2019 0.1 \u2018 \u2019 1")


def coefmat_cells(table: np.ndarray | Sequence[Sequence[float]], digits: int, cs_ind: Sequence[int] = (0, 1),
                  tst_ind: Sequence[int] = (2,), zap_ind: Sequence[int] = (), has_pvalue: bool = True,
                  na_print: str = "NA", stars: bool = True) -> tuple[list[list[str]], list[str] | None]:
    """R's printCoefmat formatting of a numeric matrix: (cells, star column or None).

    Other columns (not cs, tst or p) are each formatted on their own; NaN cells print as ``na_print``.

    Parameters
    ----------
    table : numpy.ndarray or sequence of rows
        (rows, columns) numbers, NaN for R's NA; the last column is the p-value if ``has_pvalue``.
    digits : int
        R's ``digits``.
    cs_ind : sequence of int
        Estimate/SE-like columns, rounded and formatted together to ``digits``.
    tst_ind : sequence of int
        Test-statistic columns, rounded to dig.tst = max(1, min(5, digits - 1)) and formatted together.
    zap_ind : sequence of int
        Columns passed through zapsmall first (anova's sums of squares).
    has_pvalue : bool
        The last column is a p-value, formatted by format_pval to dig.tst digits.
    na_print : str
        How NaN cells print.
    stars : bool
        Give the significance stars column (R's signif.stars) when some p-value is below 0.1.

    Returns
    -------
    tuple of (list of list of str, list of str or None)
        The cells, row by row, and the left-justified star column (None when it is not given).
    """
    m = np.array(table, dtype=float)
    nrow, nc = m.shape
    cells = [[""] * nc for _ in range(nrow)]
    ina = np.isnan(m)
    dig_tst = max(1, min(5, digits - 1))
    for j in zap_ind:
        m[:, j] = zapsmall(m[:, j], digits)

    def put(cols, strings):
        for k, s in enumerate(strings):  # column-major, as R fills a matrix
            cells[k % nrow][cols[k // nrow]] = s

    cs_ind, tst_ind = list(cs_ind), list(tst_ind)
    if cs_ind:
        cs = m[:, cs_ind]
        if np.isfinite(cs).any():
            acs = np.abs(cs[np.isfinite(cs)])
            acs = acs[acs != 0]
            digmin = 1 + (np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.zeros(1))
            nd = int(max(1, *(digits - digmin)))
            put(cs_ind, format_num(_round(cs, nd).ravel(order="F"), digits))
    if tst_ind:
        put(tst_ind, format_num(_round(m[:, tst_ind], dig_tst).ravel(order="F"), digits))
    pcol = nc - 1 if has_pvalue else None
    for j in range(nc):
        if j not in cs_ind and j not in tst_ind and j != pcol:
            put([j], format_num(m[:, j], digits))
    # a nonzero number that rounded to zero (or the reverse) is shown with digits - 1 significant digits
    for j in range(nc):
        if j in tst_ind or j == pcol:
            continue
        for i in range(nrow):
            v = m[i, j]
            if not ina[i, j] and (v == 0) != (float(cells[i][j]) == 0):
                cells[i][j] = format_scalar(v, max(1, digits - 1))
    for r, c in zip(*np.nonzero(ina)):
        cells[r][c] = na_print
    star_col = None
    if pcol is not None:  # set exactly when has_pvalue
        pv = m[:, pcol]
        ok = ~ina[:, pcol]
        if ok.any():
            for row, s in zip(np.flatnonzero(ok), format_pval(pv[ok], dig_tst)):
                cells[row][pcol] = s
            if stars and (pv[ok] < 0.1).any():
                syms = [signif_stars(p) if np.isfinite(p) else "" for p in pv]
                w = max(len(s) for s in syms)
                star_col = [s.ljust(w) for s in syms]
    return cells, star_col


def coef_table_cells(table: np.ndarray, digits: int = 4,
                     stars: bool = True) -> tuple[list[list[str]], list[str] | None]:
    """R's printCoefmat for (Estimate, SE, statistic, p-value) rows: (cells, star column or None).

    Rows of all-NaN are aliased coefficients and print as NA.

    Parameters
    ----------
    table : numpy.ndarray
        (rows, 4): estimate, standard error, test statistic, p-value.
    digits : int
        R's ``digits``.
    stars : bool
        Give the significance stars column when some p-value is below 0.1.

    Returns
    -------
    tuple of (list of list of str, list of str or None)
        As ``coefmat_cells``: the cells row by row, and the star column (None when ``stars`` is False
        or no p-value is below 0.1).
    """
    return coefmat_cells(table, digits, stars=stars)


def render_matrix(rownames: Sequence[str], colnames: Sequence[str], cells: Sequence[Sequence[str]],
                  extra_col: Sequence[str] | None = None) -> list[str]:
    """R's print of a character matrix: row names left-justified, cells right-justified.

    Parameters
    ----------
    rownames : sequence of str
        One per row of ``cells``.
    colnames : sequence of str
        One per column of ``cells``.
    cells : sequence of sequences of str
        The formatted cells, row by row.
    extra_col : sequence of str or None
        A last column without a heading, left-justified (printCoefmat's stars).

    Returns
    -------
    list of str
        The heading line, then one line per row.
    """
    cols: list[Sequence[str]] = [list(c) for c in zip(*cells)] if cells else [[] for _ in colnames]
    heads = list(colnames)
    if extra_col is not None:
        cols.append(extra_col)
        heads.append("")
    rw = max(len(str(r)) for r in rownames) if rownames else 0
    widths = [max([len(h)] + [len(x) for x in col]) for h, col in zip(heads, cols)]
    lines: list[str] = []
    start = 0
    while start < len(cols) or not lines:
        # R's printMatrix: the columns that fit in getOption("width") = 80, then the rest under the row names again
        stop, used = start + 1, rw + widths[start] + 1 if cols else rw
        while stop < len(cols) and used + widths[stop] + 1 < 80:
            used += widths[stop] + 1
            stop += 1
        lines.append(" " * rw + "".join(" " + h.rjust(w) for h, w in zip(heads[start:stop], widths[start:stop])))
        for i, r in enumerate(rownames):
            row = str(r).ljust(rw)
            for k in range(start, min(stop, len(cols))):
                s, w = cols[k][i], widths[k]
                row += " " + (s.ljust(w) if (extra_col is not None and k == len(cols) - 1) else s.rjust(w))
            lines.append(row)
        start = stop
    return lines


def coefficient_block(names: list[str], columns: list[str], table: np.ndarray, digits: int = 4) -> list[str]:
    """R's "Coefficients:" block: heading (with the count of aliased rows), printCoefmat table, star legend.

    Parameters
    ----------
    names : list of str
        Coefficient names, the row names.
    columns : list of str
        The table's column headings.
    table : numpy.ndarray
        (len(names), 4) with all-NaN rows for coefficients not defined (printed NA).
    digits : int
        R's ``digits``.

    Returns
    -------
    list of str
        The block's lines (["No Coefficients"] for a model without coefficients).
    """
    if not len(names):
        return ["No Coefficients"]  # R's print.summary.lm / print.summary.glm for y ~ 0
    nsing = int(np.isnan(np.asarray(table, dtype=float)).all(axis=1).sum())
    head = f"Coefficients: ({nsing} not defined because of singularities)" if nsing else "Coefficients:"
    cells, stars = coef_table_cells(table, digits)
    lines = [head] + render_matrix(names, columns, cells, stars)
    if stars is not None:
        lines += ["---", SIGNIF_LEGEND]
    return lines

