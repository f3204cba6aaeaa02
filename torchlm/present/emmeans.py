"""emmeans' print of its summaries (R's print.summary_emm) and of an emm_list, digit for digit.

emmeans rounds test statistics to 3 decimals and p-values to 4 ("<.0001" below), and shows every other
number with the fewest significant digits (3 or more) that tell each estimate from its neighbours 2 SEs
away (its .opt.dig); columns of factors are left-justified, numbers right-justified, and each by group gets
its own table under a "by = level:" line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from torchlm.present.rformat import format_num, render_matrix, zapsmall

_TEST_STATS = ("t.ratio", "z.ratio", "F.ratio", "T.square")


def _opt_dig(x: np.ndarray) -> int:
    """emmeans' .opt.dig: the digits that resolve an interval (estimate -/+ 2 SE), at least 3."""
    if np.isnan(x).any():
        return 3
    mx = float(np.max(np.abs(x)))
    if mx == 0:
        return 3
    z = np.array([np.min(x), np.max(x)]) / mx
    dz = float(zapsmall(np.array([z[1] - z[0], z[0], z[1]]), 8)[0])
    with np.errstate(divide="ignore"):
        zz = 1.51 - math.log10(dz) if dz > 0 else math.inf
    return 3 if math.isinf(zz) else max(int(round(zz)), 3)


def optimal_digits(est: np.ndarray, se: np.ndarray | None) -> int | None:
    """The digits emmeans prints a summary with: the most any row's estimate -/+ 2 SE needs.

    Returns
    -------
    int or None
        None when the summary has no SE column (R's default digits then apply).
    """
    if se is None:
        return None
    return max([_opt_dig(np.array([e + s * -2, e + s * 0, e + s * 2])) for e, s in zip(est, se)] + [3])


def _fixed(values: np.ndarray, decimals: int) -> list[str]:
    """R's format(round(x, d), nsmall = d, scientific = FALSE): d decimals, one width, NA as "NA"."""
    out = ["NA" if math.isnan(v) else "%.*f" % (decimals, round(float(v), decimals) + 0.0) for v in values]
    w = max((len(s) for s in out), default=0)
    return [s.rjust(w) for s in out]


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _cells(frame: pd.DataFrame, est_name: str) -> tuple[dict[str, list[str]], dict[str, str], dict[str, Any]]:
    """Each column's cells as print.summary_emm formats them, its justification, and the zapped values."""
    values: dict[str, Any] = {}
    just: dict[str, str] = {}
    for c in frame.columns:
        numeric = _is_numeric(frame[c])
        just[c] = "R" if numeric else "L"
        values[c] = zapsmall(frame[c].to_numpy(dtype=float), 7) if numeric else frame[c].tolist()
    if "df" in values and just["df"] == "R":
        values["df"] = np.round(values["df"], 2)
    se = values.get("SE") if "SE" in values and just["SE"] == "R" else None
    digits = optimal_digits(np.asarray(values[est_name], dtype=float), se) or 7
    cells: dict[str, list[str]] = {}
    for c in frame.columns:
        v = values[c]
        if c in _TEST_STATS and just[c] == "R":
            cells[c] = _fixed(v, 3)
        elif c == "p.value" and just[c] == "R":
            cells[c] = ["<.0001" if s == "0.0000" else s for s in _fixed(v, 4)]
        elif just[c] == "R":
            cells[c] = format_num(v, digits)
            if c == est_name and np.isnan(v).any():
                cells[c] = ["nonEst" if math.isnan(x) else s for s, x in zip(cells[c], v)]
        elif all(isinstance(x, (bool, np.bool_)) for x in v):
            text = ["TRUE" if x else "FALSE" for x in v]
            cells[c] = [s.rjust(max(map(len, text))) for s in text]
        else:
            cells[c] = [str(x) for x in v]
    return cells, just, values


def _table(columns: list[str], cells: dict[str, list[str]], just: dict[str, str], rows: list[int]) -> list[str]:
    """R's print of the summary's character matrix (columns padded to the widest cell over all rows)."""
    heads, body = [], []
    for c in columns:
        w = max([len(c)] + [len(s) for s in cells[c]])
        heads.append(c.ljust(w) if just[c] == "L" else c)
        body.append([cells[c][i].rjust(w) if just[c] == "R" else cells[c][i].ljust(w) for i in rows])
    return render_matrix([""] * len(rows), heads, [list(r) for r in zip(*body)])


def summary_text(summ: pd.DataFrame) -> str:
    """R's print(summary(emmGrid)): the table (a table per by group) and emmeans' messages.

    Parameters
    ----------
    summ : pandas.DataFrame
        An EmmSummary (its ``attrs`` hold "est_name", "by_vars" and "messages").

    Returns
    -------
    str
        The lines R prints, joined by newlines.
    """
    frame = pd.DataFrame(summ)
    est_name = summ.attrs["est_name"]
    by = list(summ.attrs.get("by_vars") or [])
    cells, just, values = _cells(frame, est_name)
    lines: list[str] = []
    if not by:
        lines += _table(list(frame.columns), cells, just, list(range(len(frame)))) + [""]
    else:
        columns = [c for c in frame.columns if c not in by]

        def key(i: int) -> tuple:
            return tuple(frame[b].cat.codes.iloc[i] if isinstance(frame[b].dtype, pd.CategoricalDtype)
                         else values[b][i] for b in reversed(by))

        order = sorted(range(len(frame)), key=key)
        groups: dict[str, list[int]] = {}
        for i in order:
            groups.setdefault(", ".join(str(frame[b].iloc[i]) for b in by), []).append(i)
        for rows in groups.values():
            lines.append(", ".join(f"{b} = {cells[b][rows[0]].strip() if just[b] == 'L' else cells[b][rows[0]]}"
                                   for b in by) + ":")
            lines += _table(columns, cells, just, rows) + [""]
    lines += [f"{m} " for m in summ.attrs.get("messages", [])]
    return "\n".join(lines)


def emm_list_text(summaries: dict[str, pd.DataFrame]) -> str:
    """R's print of an emm_list: each summary under its "$name" line, followed by a blank line.

    Parameters
    ----------
    summaries : dict of str to EmmSummary
        The summaries, by name ("emmeans", "contrasts").

    Returns
    -------
    str
        The lines R prints, joined by newlines.
    """
    lines: list[str] = []
    for name, summ in summaries.items():
        lines += [f"${name}", summary_text(summ), ""]
    return "\n".join(lines)
