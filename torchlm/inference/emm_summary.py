"""emmeans' computations on a grid: the marginal means (R's emmeans), contrasts (contrast.emmGrid) and the
summary table with its intervals, tests and messages (summary.emmGrid)."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import ModelInputError, OptionError
from torchlm.inference.emm_adjust import Family, adjusted_p_values, critical_values, pmatch
from torchlm.inference.emm_contrasts import contrast_set
from torchlm.inference.emm_grid import ReferenceGrid, make_link
from torchlm.inference.emm_objects import (
    _AUX,
    _UNSET,
    Basis,
    EmmSummary,
    GridCore,
    Misc,
    as_list,
    find_by_rows,
    label_columns,
)
from torchlm.present.rformat import zapsmall

_PARENS = re.compile(r"-|\+|\/|\*")
_LOG_SCALES = ("log", "log2", "log10", "logit", "log.o.r.")
Parts = tuple[pd.DataFrame, dict, np.ndarray, Misc]


# --- emmeans(): the marginal means of a reference grid ---------------------------------------------------------

def _weight_vector(weights: Any, wgt: np.ndarray, row_idx: np.ndarray, avgd: list[int]) -> np.ndarray | str:
    """emmeans' weights for the combinations of the averaged-over factors ("fq"/"fl": the cells' own)."""
    if not isinstance(weights, str):
        return np.asarray(weights, dtype=float).ravel()
    options = ("equal", "proportional", "outer", "cells", "flat")
    chosen = pmatch(weights, options)
    if chosen is None:
        raise OptionError(f"Invalid 'weights' option: '{weights}'; choose one of {', '.join(options)}")
    if chosen in ("cells", "flat"):
        return "fq" if chosen == "cells" else "fl"
    moved = np.moveaxis(row_idx, avgd, list(range(len(avgd))))
    sums = wgt[moved].reshape(moved.shape[: len(avgd)] + (-1,), order="F").sum(axis=-1)
    if chosen == "equal":
        return np.ones(sums.size)
    if chosen == "proportional":
        return sums.ravel(order="F")
    total = sums.sum()
    w: Any = total
    for d in range(sums.ndim):
        w = np.multiply.outer(w, sums.sum(axis=tuple(a for a in range(sums.ndim) if a != d)) / total)
    return np.asarray(w).ravel(order="F")


def _reduce(rows: np.ndarray, values: np.ndarray, weights: Any, wgt: np.ndarray) -> np.ndarray:
    """emmeans' fac.reduce of the grid rows of one mean: their average, weighted as ``weights`` says."""
    part = values[rows]
    if isinstance(weights, str):  # "fq" (cells) or "fl" (flat)
        fq = wgt[rows] if weights == "fq" else (wgt[rows] > 0).astype(float)
        return (part * fq[:, None]).sum(axis=0) / fq.sum()
    if weights is None:
        return part.mean(axis=0)
    if len(weights) != len(rows):
        raise OptionError(f"Nonconforming number of weights -- need {len(rows)}")
    total = weights.sum()
    return (part * weights[:, None]).sum(axis=0) / (total if total > 1e-8 else math.nan)


def _combinations(levels: dict[str, list], names: list[str]) -> pd.DataFrame:
    rows: list[tuple] = [()]
    for n in names:
        rows = [r + (v,) for v in levels[n] for r in rows]
    return pd.DataFrame({n: [r[k] for r in rows] for k, n in enumerate(names)})


def marginal_means(rg: ReferenceGrid, specs: list[str], by: list[str] | None, weights: Any,
                   offset: float | None) -> Parts:
    """R's emmeans() on a reference grid: the grid, levels, linear functions and settings of the means.

    Returns
    -------
    (pandas.DataFrame, dict, numpy.ndarray, Misc)
    """
    levels, grid = dict(rg.levels), rg.grid.copy()
    facs = list(dict.fromkeys(specs + (by or [])))
    if "1" in facs:
        levels["1"], grid["1"] = ["overall"], "overall"
    if missing := [f for f in facs if f not in levels]:
        raise OptionError(f"No variable named {missing[0]!r} in the reference grid; its variables are "
                          f"{[k for k in levels if k != '.offset.']}")
    wgt = grid[".wgt."].to_numpy(dtype=float)
    if np.all(zapsmall(wgt, 7) == 0):
        wgt = wgt + 1
    names = list(levels)
    dims = [len(levels[n]) for n in names]
    row_idx = np.arange(len(grid)).reshape(dims, order="F")
    use = [names.index(f) for f in facs]
    avgd = [i for i, d in enumerate(dims) if d > 1 and i not in use]
    w: Any = None
    if avgd and not (isinstance(weights, str) and weights == "equal"):
        w = _weight_vector(weights, wgt, row_idx, avgd)
    rest = [i for i in range(len(dims)) if i not in use]
    cells = np.transpose(row_idx, use + rest).reshape((int(np.prod([dims[i] for i in use])), -1), order="F")
    linfct = np.array([_reduce(r, rg.linfct, w, wgt) for r in cells])
    combs = _combinations(levels, facs)
    for f in facs:
        if f in rg.grid.columns and isinstance(rg.grid[f].dtype, pd.CategoricalDtype):
            combs[f] = pd.Categorical(combs[f], categories=rg.grid[f].cat.categories, ordered=rg.grid[f].cat.ordered)
    if ".offset." in grid.columns:
        off = grid[".offset."].to_numpy(dtype=float)[:, None]
        combs[".offset."] = [float(_reduce(r, off, None if isinstance(w, str) else w, wgt)[0]) for r in cells]
    if offset is not None:
        combs[".offset."] = float(offset)
    combs[".wgt."] = [float(wgt[r].sum()) for r in cells]
    misc = Misc(est_name="emmean", fam_size=len(linfct), pri_vars=[f for f in facs if f not in (by or [])],
                by_vars=by, avgd_over=[names[i] for i in avgd], tran=rg.tran, inv_lbl=rg.inv_lbl,
                meth_desc="emmeans")
    return combs, {f: levels[f] for f in facs}, linfct, misc


# --- contrast(): linear combinations of the estimates within by groups ------------------------------------------

def _is_num(values: list) -> bool:
    """emmeans' .is.num: every value reads as a number."""
    try:
        return all(not math.isnan(float(str(v))) for v in values) and not any(isinstance(v, bool) for v in values)
    except ValueError:
        return False


def _text(v: Any) -> str:
    """A value as R's paste() writes it."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.15g}"
    return str(v)


def _contrast_levels(core: GridCore, by: list[str] | None) -> tuple[list[str], list[np.ndarray]]:
    """Each row's level label (the non-by factors pasted, numbers prefixed with their name) and the by groups."""
    grid = core._grid
    args = {c: [_text(v) for v in grid[c].tolist()] for c in label_columns(grid)}
    for nm in [c for c in args if c not in (by or [])]:
        if _is_num(grid[nm].tolist()):
            args[nm] = [nm + v for v in args[nm]]
    by_rows = find_by_rows(grid, by)
    if len({len(r) for r in by_rows}) > 1:
        raise ModelInputError("`by` groups are of irregular size; currently not supported except with nested "
                              "structures")
    cols = [c for c in args if c not in (by or [])]
    labels = [" ".join(args[c][i] for c in cols) for i in range(len(grid))]
    if any(_PARENS.search(s) for s in labels):
        labels = [f"({s})" if _PARENS.search(s) else s for s in labels]
    return labels, by_rows


class _Levels(list):
    """Contrast labels that remember the unparenthesized levels (R's attr(levs, "raw"))."""

    raw: list[str]


def _raw_levels(labels: list[str]) -> _Levels:
    out = _Levels(labels)
    out.raw = [s[1:-1] if s.startswith("(") and s.endswith(")") and _PARENS.search(s) else s for s in labels]
    return out


def _contrast_tran(misc: Misc, coefs: np.ndarray, ratios: bool) -> Misc:
    """emmeans' handling of the transformation: log-scale contrasts become ratios, others stay on the link scale."""
    if misc.tran is None:
        return misc
    sums = coefs.sum(axis=0) / (1e-6 + np.abs(coefs).max(axis=0)) if coefs.size else np.array([np.nan])
    true_con = bool(np.all(np.abs(sums) < 1e-6))
    if ratios and true_con and misc.tran in _LOG_SCALES:
        if misc.tran == "logit":
            return replace(misc, log_contrast=True, inv_lbl="odds.ratio", tran="log.o.r.")
        if misc.tran == "log.o.r.":
            return replace(misc, log_contrast=True)
        return replace(misc, log_contrast=True, inv_lbl="ratio")
    note = f"Note: contrasts are still on the {misc.tran} scale"
    return replace(misc, init_mesg=misc.init_mesg + [note], tran=None, log_contrast=False)


def contrast_grid(core: GridCore, method: Any, by: list[str] | None, adjust: str | None, name: str, ratios: bool,
                  type: str | None, options: dict) -> Parts:
    """R's contrast.emmGrid: the grid, levels, linear functions and settings of the contrasts.

    Returns
    -------
    (pandas.DataFrame, dict, numpy.ndarray, Misc)
    """
    labels, by_rows = _contrast_levels(core, by)
    first = _raw_levels([labels[i] for i in by_rows[0]])
    cs = contrast_set(method, first, options)
    if cs.coefs.shape[1] == 0:
        raise OptionError("there is nothing to contrast: the family has one level")
    tcmat = cs.coefs.T
    linfct, grid = core._linfct.copy(), core._grid
    na_rows = np.isnan(linfct[:, 0])
    linfct[np.isnan(linfct)] = 0.0
    order = np.concatenate(by_rows)
    T = np.kron(np.eye(len(by_rows)), tcmat)
    L = T @ linfct[order]
    L[(T != 0) @ na_rows[order].astype(float) > 0] = np.nan
    names = list(cs.names)
    for rows in by_rows[1:]:
        here = [labels[i] for i in rows]
        names += contrast_set(method, _raw_levels(here), options).names if here != list(first) else cs.names
    out = pd.DataFrame({".contrast.": pd.Categorical(names, categories=list(dict.fromkeys(names)))})
    for v in by or []:
        out[v] = np.repeat(grid[v].to_numpy()[[r[0] for r in by_rows]], len(cs.names))
        if isinstance(grid[v].dtype, pd.CategoricalDtype):
            out[v] = pd.Categorical(out[v], categories=grid[v].cat.categories, ordered=grid[v].cat.ordered)
    if ".offset." in grid.columns:
        out[".offset."] = T @ grid[".offset."].to_numpy(dtype=float)[order]
    prev = sum(1 for c in out.columns if re.match(f"^{re.escape(name)}[0-p]?", c))
    out = out.rename(columns={".contrast.": name + (str(prev) if prev else "")})
    misc = core.misc
    est_type = cs.type or ("contrast" if np.all(np.abs(cs.coefs.sum(axis=0)) < 0.001) else "prediction")
    misc = replace(misc, init_mesg=[], est_name="estimate", est_type=est_type, meth_desc=cs.desc,
                   fam_size=cs.fam_size if cs.fam_size is not None else len(by_rows[0]),
                   pri_vars=[c for c in out.columns if c not in (by or []) and c not in _AUX],
                   adjust=adjust or cs.adjust or "none", infer=(False, True), by_vars=by,
                   pairby=",".join([""] + (by or [])) if est_type == "pairs" else None,
                   predict_type=type or misc.predict_type, avgd_over=list(misc.avgd_over))
    misc = _contrast_tran(misc, cs.coefs, ratios)
    levels = {c: list(dict.fromkeys(out[c].tolist())) for c in out.columns if c != ".offset."}
    return out, levels, L, misc


# --- summary(): the table of estimates, intervals and tests ---------------------------------------------------

def _family(core: GridCore, by: list[str] | None, est_type: str, adjust: str) -> Family:
    """R's fam.info and by.rows of a summary: the family each adjustment works within."""
    grid, misc = core._grid, core.misc
    by_rows = find_by_rows(grid, by)
    fam_size: Any = misc.fam_size
    by_size: Any = len(grid)
    if by:
        if len({len(r) for r in by_rows}) > 1:
            by_size = fam_size = "(varies)"
        else:
            for nm in by:
                by_size /= len(set(map(str, core.levels.get(nm, grid[nm].tolist()))))
    et = {"prediction": 1, "contrast": 2, "pairs": 3}.get(est_type, 2)
    ranks = None
    if pmatch(adjust, ("scheffe",)):
        ranks = [int(np.linalg.matrix_rank(zapsmall(core._linfct[r], 7))) for r in by_rows]
        if len(set(ranks)) > 1:
            fam_size = "uneven"
    return Family(size=fam_size, n_contrasts=by_size, est_type=et, by_rows=by_rows, scheffe_rank=ranks)


def _infer(infer: Any, misc: Misc) -> tuple[bool, bool]:
    value = misc.infer if infer is None else infer
    if isinstance(value, (bool, np.bool_)):
        return bool(value), bool(value)
    if len(value) == 1:
        return bool(value[0]), bool(value[0])
    return bool(value[0]), bool(value[1])


def _labels_frame(core: GridCore, inv: bool) -> pd.DataFrame:
    """The summary's label columns; shown as ratios, " - " reads " / " (emmeans' log.contrast)."""
    lbls = core._grid[label_columns(core._grid)].reset_index(drop=True)
    if inv and core.misc.log_contrast:
        for c in lbls.columns:
            text = [str(v).replace(" - ", " / ") for v in lbls[c].tolist()]
            lbls[c] = pd.Categorical(text, categories=list(dict.fromkeys(text)))
    return lbls


def summarize(core: GridCore, infer: Any, level: float | None, adjust: str | None, by: Any, type: str | None,
              null: float) -> EmmSummary:
    """R's summary.emmGrid: the estimates, SEs and df with intervals and tests as ``infer`` asks.

    Returns
    -------
    EmmSummary
    """
    misc = core.misc
    infer_ci, infer_test = _infer(infer, misc)
    level = misc.level if level is None else level
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise OptionError(f"level must be a number between 0 and 1, such as 0.95, not {level!r}")
    adjust = (misc.adjust if adjust is None else str(adjust)).lower()
    adjust = adjust.upper() if adjust in ("bh", "by") else adjust
    by = misc.by_vars if by is _UNSET else as_list(by)
    est_type = misc.est_type
    if est_type == "pairs" and ",".join([""] + (by or [])) != misc.pairby:
        est_type = "contrast"
    type = type or misc.predict_type or "link"
    est, se, df = core.estimates()
    zflag = bool(np.all(np.isnan(df) | np.isinf(df)))
    link = make_link(misc.tran or "identity")
    inv = type in ("response", "mu", "unlink") and misc.tran is not None
    est_name = (misc.inv_lbl or "response") if inv else misc.est_name
    mesg = list(misc.init_mesg)
    if not inv and misc.tran is not None:
        mesg.append(f"Results are given on the {link.name} (not the response) scale.")
    if inv and link.unknown:
        mesg.append(f'Unknown transformation "{link.name}": no transformation done')
        inv, est_name = False, misc.est_name
    fam = _family(core, by, est_type, adjust)
    cols: dict[str, np.ndarray] = {}
    if infer_ci:
        cv, note, _ = critical_values(level, df, adjust, fam)
        lo, hi = est + (-cv) * se, est + cv * se
        mesg += [f"Confidence level used: {level:.15g}"] + ([note] if note else [])
        if inv:
            lo, hi = link.linkinv(lo), link.linkinv(hi)
            if not np.all(np.nan_to_num(hi - lo) >= 0):
                lo, hi = hi, lo
            mesg.append(f"Intervals are back-transformed from the {link.name} scale")
        names = ("asymp.LCL", "asymp.UCL") if zflag else ("lower.CL", "upper.CL")
        cols.update({names[0]: lo, names[1]: hi})
    if infer_test:
        nulls = np.full(len(est), float(null))
        if inv:
            nulls = link.linkinv(nulls)
        if not np.all(nulls == 0):
            cols["null"] = nulls
        t = (est - null) / se
        p, note, _ = adjusted_p_values(t, df, adjust, fam)
        cols.update({"z.ratio" if zflag else "t.ratio": t, "p.value": p})
        mesg += ([note] if note else []) + ([f"Tests are performed on the {link.name} scale"] if inv else [])
    if inv:
        se, est = np.abs(link.mu_eta(est) * se), link.linkinv(est)
    if misc.avgd_over:
        mesg.insert(0, "Results are averaged over the levels of: " + ", ".join(misc.avgd_over))
    out = pd.concat([_labels_frame(core, inv),
                     pd.DataFrame({est_name: est, "SE": se, "df": df, **cols})], axis=1)
    summ = EmmSummary(out)
    summ.attrs.update(est_name=est_name, by_vars=by, messages=list(dict.fromkeys(mesg)), type=type,
                      adjust=adjust, pri_vars=[v for v in dict.fromkeys(misc.pri_vars + (misc.by_vars or []))
                                               if v not in (by or []) and v not in _AUX])
    return summ


# --- regrid(): the estimates as a new grid on the response scale -----------------------------------------------

def regrid_parts(core: GridCore, transform: bool) -> tuple[pd.DataFrame, np.ndarray, Basis, Misc]:
    """R's regrid(object): the estimates become the coefficients (back-transformed, with the delta method's
    covariance, where ``transform`` and the grid has a transformation), so contrasts of them are differences
    of means on the response scale.

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray, Basis, Misc)
        The grid (without ``.offset.``), the identity linear functions, the new basis and the settings.
    """
    est, _, df = core.estimates()
    ok = ~np.isnan(est)
    X = core._linfct[ok][:, ~np.isnan(core._basis.bhat)]
    V = X @ core._basis.V @ X.T
    n = len(est)
    eye = np.eye(n)
    edf = df[ok]
    misc = core.misc
    bhat = est.copy()
    if transform and misc.tran is not None:
        link = make_link(misc.tran)
        D = link.mu_eta(est[ok])
        bhat = link.linkinv(est)
        V = V * D[:, None] * D[None, :]
        misc = replace(misc, est_name=misc.inv_lbl or misc.est_name, tran=None, inv_lbl=None, log_contrast=False)
    grid = core._grid.drop(columns=[".offset."], errors="ignore")
    labels = [".".join(_text(v) for v in row) for row in zip(*(grid[c].tolist() for c in core.levels))]
    basis = Basis(bhat=bhat, V=V, nbasis=None if ok.all() else eye[:, ~ok],
                  df=float(np.mean(edf)) if len(edf) else math.nan, names=labels)
    return grid, eye, basis, misc
