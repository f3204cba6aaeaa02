"""Notebook HTML of R's printouts: the printed text itself, with its matrices shown as HTML tables.

A printout (a summary, an anova table) is first printed as R prints it; the HTML is that text, line
for line, in ``<pre>`` blocks, except that each printed matrix (a coefficient table, an anova table)
becomes a ``<table>`` whose cells are sliced from the printed lines. So the HTML has everything the
text has, in the same order, and every cell is the text's cell: blank where R leaves a blank, R's
rounding, the stars column, the legend and the heading around it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

# the look of the tables in a notebook or a browser; scoped to the printout's class
_STYLE = ("<style>.{c} table{{border-collapse:collapse;margin:0.2em 0}}"
          ".{c} th,.{c} td{{padding:0.1em 0.6em;text-align:right;white-space:pre;font-family:monospace}}"
          ".{c} tbody th{{text-align:left;font-weight:normal}}.{c} thead th{{border-bottom:1px solid #888}}"
          ".{c} td.stars{{text-align:left;padding-left:0.2em}}"
          ".{c} pre{{margin:0.2em 0}}</style>")


@dataclass(frozen=True)
class Matrix:
    """A matrix as it is printed: its row names exactly as printed (padding included) and its column headings."""

    rownames: Sequence[str]
    colnames: Sequence[str]


@dataclass(frozen=True)
class _Found:
    start: int  # first line of the printed matrix (its heading)
    stop: int  # the line after its last row
    cells: list[list[str]]  # row by row, one per column (and a last one for an unnamed trailing column)
    trailing: bool  # whether the last column is an unnamed one (printCoefmat's stars)


def _is_block(lines: Sequence[str], i: int, names: Sequence[str], rw: int) -> bool:
    """Whether lines[i] is a heading line followed by one line per row name."""
    if i + len(names) >= len(lines) or lines[i][:rw].strip():
        return False
    return all(lines[i + 1 + k].startswith(n.ljust(rw)) for k, n in enumerate(names))


def _edges(heading: str, colnames: Sequence[str], rw: int) -> list[int]:
    """Right edges of the columns whose (right-justified) headings are on this heading line, in order."""
    edges, pos = [], rw
    for name in colnames:
        at = heading.find(name, pos) if name.strip() else -1
        if at < 0:
            break
        pos = at + len(name)
        edges.append(pos)
    return edges


def locate(lines: Sequence[str], m: Matrix, start: int = 0) -> _Found | None:
    """Find the printed matrix ``m`` in ``lines`` from line ``start`` and slice its cells from the text.

    Columns wrapped as R wraps them at the line width (the row names again under each group of
    columns) are joined back into one matrix.

    Parameters
    ----------
    lines : sequence of str
        The printout's lines.
    m : Matrix
        The row names as printed and the column headings.
    start : int
        The first line to look at.

    Returns
    -------
    _Found or None
        Where the matrix is and its cells (stripped of their padding); None when it is not printed there.
    """
    names = [str(n) for n in m.rownames]
    cols = [str(c) for c in m.colnames]
    rw = max((len(n) for n in names), default=0)
    if not names:
        return None
    for i in range(start, len(lines)):
        if _is_block(lines, i, names, rw) and (not cols or _edges(lines[i], cols[:1], rw)):
            return _slice(lines, i, names, cols, rw)
    return None


def _slice(lines: Sequence[str], i: int, names: list[str], cols: list[str], rw: int) -> _Found:
    cells: list[list[str]] = [[] for _ in names]
    done, trailing, first = 0, False, i
    while _is_block(lines, i, names, rw):
        edges = _edges(lines[i], cols[done:], rw)
        if not edges and done < len(cols):
            break
        bounds = list(zip([rw] + edges[:-1], edges))
        for k in range(len(names)):
            row = lines[i + 1 + k]
            cells[k] += [row[a:b].strip() for a, b in bounds]
        done += len(edges)
        rest = [lines[i + 1 + k][edges[-1] if edges else rw:].strip() for k in range(len(names))]
        i += 1 + len(names)
        if any(rest):  # an unnamed last column (printCoefmat's stars): left-justified after the last heading
            for k, s in enumerate(rest):
                cells[k].append(s)
            trailing = True
            break
        if done >= len(cols):
            break
    return _Found(first, i, cells, trailing)


def matrix_html(m: Matrix, found: _Found) -> str:
    """One printed matrix as an HTML table: the headings, the row names as row headings, the cells.

    Parameters
    ----------
    m : Matrix
        The matrix's row names and column headings.
    found : _Found
        Its cells, from :func:`locate`.

    Returns
    -------
    str
        A ``<table>`` element (cells HTML-escaped; an unnamed last column has class ``stars``).
    """
    heads = [str(c) for c in m.colnames] + ([""] if found.trailing else [])
    head = "".join(f"<th>{html.escape(h.strip())}</th>" for h in [""] + heads)
    body = []
    for name, row in zip(m.rownames, found.cells):
        tds = [f"<td>{html.escape(c)}</td>" for c in row]
        if found.trailing and tds:
            tds[-1] = f"<td class='stars'>{html.escape(row[-1])}</td>"
        body.append(f"<tr><th>{html.escape(str(name).strip())}</th>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pre(lines: Sequence[str]) -> str:
    # HTML drops a newline right after <pre>: one is written there, so a leading blank line stays
    return "<pre>\n" + html.escape("\n".join(lines)) + "</pre>" if lines else ""


def text_html(text: str, matrices: Sequence[Matrix], css_class: str) -> str:
    """HTML of a printout: its lines in ``<pre>`` blocks, each of ``matrices`` (found in order) as a table.

    Parameters
    ----------
    text : str
        The printout, as ``print`` shows it.
    matrices : sequence of Matrix
        The matrices printed in it, in the order they appear; one that is not found stays text.
    css_class : str
        The class of the enclosing ``<div>`` ("torchlm-summary", "torchlm-anova").

    Returns
    -------
    str
        One ``<div>`` element; leading and trailing blank lines of the text are left out.
    """
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    parts, pos = [], 0
    for m in matrices:
        found = locate(lines, m, pos)
        if found is None:
            continue
        parts.append(_pre(lines[pos:found.start]))
        parts.append(matrix_html(m, found))
        pos = found.stop
    parts.append(_pre(lines[pos:]))
    return f"<div class='{css_class}'>" + _STYLE.format(c=css_class) + "".join(parts) + "</div>"


def frame_html(tab: object, css_class: str = "torchlm-anova") -> str:
    """HTML of a printed table (an AnovaTable and its kinds): its own printout, the table's lines as a table.

    Parameters
    ----------
    tab : pandas.DataFrame
        A table that prints as R prints it (``repr(tab)``), its index the row names and its columns the
        headings as printed.
    css_class : str
        The class of the enclosing ``<div>``.

    Returns
    -------
    str
        One ``<div>`` element: R's heading, the table, and the significance legend below it.
    """
    m = Matrix([str(r) for r in tab.index], [str(c) for c in tab.columns])  # type: ignore[attr-defined]
    return text_html(repr(tab), [m], css_class)
