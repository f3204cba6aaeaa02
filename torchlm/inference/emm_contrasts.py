"""emmeans' families of contrasts (R's .emmc functions): their coefficients, names and default adjustments."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from torchlm.errors import OptionError


@dataclass
class ContrastSet:
    """The contrasts of one family, as an .emmc function returns them.

    Attributes
    ----------
    names : one name per contrast ("L - M").
    coefs : (levels, contrasts) coefficients, one column per contrast.
    desc : emmeans' description of the family.
    adjust : the default multiplicity adjustment (None: "none").
    type : "pairs" for pairwise comparisons (Tukey's adjustment applies), else None.
    fam_size : the family size where the method sets one.
    """

    names: list[str]
    coefs: np.ndarray
    desc: str | None = None
    adjust: str | None = None
    type: str | None = None
    fam_size: int | None = None


def _column(k: int, at: dict[int, float]) -> np.ndarray:
    con = np.zeros(k)
    for i, v in at.items():
        con[i] = v
    return con


def _set(names: list[str], cols: list[np.ndarray], k: int, **attrs: Any) -> ContrastSet:
    return ContrastSet(names, np.column_stack(cols) if cols else np.zeros((k, 0)), **attrs)


def pairwise(levs: Sequence[str], reverse: bool = False) -> ContrastSet:
    """R's pairwise.emmc (revpairwise.emmc with ``reverse``): every difference of two levels.

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    if reverse:
        pairs = [(i, j) for i in range(1, k) for j in range(i)]
    else:
        pairs = [(i, j) for i in range(k - 1) for j in range(i + 1, k)]
    cols = [_column(k, {i: 1.0, j: -1.0}) for i, j in pairs]
    return _set([f"{levs[i]} - {levs[j]}" for i, j in pairs], cols, k, desc="pairwise differences",
                adjust="tukey", type="pairs", fam_size=None if reverse else k)


def _reference(levs: Sequence[str], ref: Any) -> list[int]:
    """emmeans' .num.key: reference levels as positions (R's 1-based numbers, or level names)."""
    raw = list(getattr(levs, "raw", levs))
    refs = [ref] if isinstance(ref, (str, int, np.integer)) else list(ref)
    out = []
    for r in refs:
        if isinstance(r, str):
            if r not in raw:
                raise OptionError(f"ref {r!r} is not a level; the levels are {raw}")
            out.append(raw.index(r))
        elif 1 <= int(r) <= len(raw):
            out.append(int(r) - 1)
        else:
            raise OptionError("In trt.vs.ctrl.emmc(), 'ref' levels are out of range")
    return out


def trt_vs_ctrl(levs: Sequence[str], ref: Any = 1, reverse: bool = False) -> ContrastSet:
    """R's trt.vs.ctrl.emmc: each level minus the control (``ref``: R's 1-based position or a level's name).

    Returns
    -------
    ContrastSet
    """
    refs = _reference(levs, ref)
    k = len(levs)
    cnm = levs[refs[0]] if len(refs) == 1 else "avg(" + ",".join(levs[r] for r in refs) + ")"
    names, cols = [], []
    for i in range(k):
        if i in refs:
            continue
        con = _column(k, {r: -1 / len(refs) for r in refs})
        con[i] = 1.0
        names.append(f"{cnm} - {levs[i]}" if reverse else f"{levs[i]} - {cnm}")
        cols.append(-con if reverse else con)
    return _set(names, cols, k, desc="differences from control", adjust="dunnettx")


def eff(levs: Sequence[str], delete: bool = False) -> ContrastSet:
    """R's eff.emmc (del.eff.emmc with ``delete``): each level against the mean of all (of the others).

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    cols = []
    for i in range(k):
        con = np.full(k, -1.0 / k)
        con[i] = 1 + con[i]
        cols.append(con / con[i] if delete else con)
    desc = "differences from mean of others" if delete else "differences from grand mean"
    return _set([f"{lv} effect" for lv in levs], cols, k, desc=desc, adjust="fdr")


def consec(levs: Sequence[str], reverse: bool = False) -> ContrastSet:
    """R's consec.emmc: differences of consecutive levels.

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    sgn = -1.0 if reverse else 1.0
    names = [f"{levs[i]} - {levs[i + 1]}" if reverse else f"{levs[i + 1]} - {levs[i]}" for i in range(k - 1)]
    cols = [_column(k, {i: -sgn, i + 1: sgn}) for i in range(k - 1)]
    return _set(names, cols, k, desc="changes between consecutive levels", adjust="mvt")


def mean_chg(levs: Sequence[str], reverse: bool = False) -> ContrastSet:
    """R's mean_chg.emmc: the mean of the levels after each point minus the mean of those before.

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    sgn = -1.0 if reverse else 1.0
    cols = [np.r_[np.full(i, -sgn / i), np.full(k - i, sgn / (k - i))] for i in range(1, k)]
    names = [f"{levs[i - 1]}|{levs[i]}" for i in range(1, k)]
    return _set(names, cols, k, desc="mean after minus mean before", adjust="mvt")


def _orthogonal_polynomials(k: int, degree: int) -> np.ndarray:
    """R's poly(seq_len(k), degree): orthonormal polynomial columns, each with a positive leading term."""
    x = np.arange(1, k + 1, dtype=float)
    x = x - x.mean()
    cols: list[np.ndarray] = [np.ones(k) / np.sqrt(k)]
    for d in range(1, degree + 1):
        v = x ** d
        for c in cols:
            v = v - (c @ v) * c
        cols.append(v / np.linalg.norm(v))
    return np.column_stack(cols[1:])


def poly(levs: Sequence[str], max_degree: int | None = None) -> ContrastSet:
    """R's poly.emmc: orthogonal polynomial contrasts scaled to integers, as in textbook tables.

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    degree = min(6, k - 1) if max_degree is None else max_degree
    M = _orthogonal_polynomials(k, min(20, degree))
    for j in range(M.shape[1]):
        con = M[:, j]
        con = con / np.min(con[con > 0.01])
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        M[:, j] = np.round(con)
    names = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]
    return _set(names[: M.shape[1]], list(M.T), k, desc="polynomial contrasts", adjust="none")


def identity(levs: Sequence[str]) -> ContrastSet:
    """R's identity.emmc: the estimates themselves.

    Returns
    -------
    ContrastSet
    """
    k = len(levs)
    return _set(list(levs), list(np.eye(k)), k, desc="Identity", adjust="none", fam_size=k)


# each emmeans method: its function and the options it fixes (trt.vs.ctrlk's control: the last level)
METHODS: dict[str, tuple[Any, dict[str, Any]]] = {
    "pairwise": (pairwise, {}),
    "revpairwise": (pairwise, {"reverse": True}),
    "tukey": (pairwise, {}),
    "trt.vs.ctrl": (trt_vs_ctrl, {}),
    "trt.vs.ctrl1": (trt_vs_ctrl, {}),
    "trt.vs.ctrlk": (trt_vs_ctrl, {"ref": -1}),
    "dunnett": (trt_vs_ctrl, {}),
    "eff": (eff, {}),
    "del.eff": (eff, {"delete": True}),
    "consec": (consec, {}),
    "mean_chg": (mean_chg, {}),
    "poly": (poly, {}),
    "identity": (identity, {}),
}


def contrast_set(method: Any, levs: Sequence[str], options: dict[str, Any]) -> ContrastSet:
    """The contrasts ``method`` names (an .emmc name, or a dict of name -> coefficients) for levels ``levs``.

    Returns
    -------
    ContrastSet
    """
    if isinstance(method, dict):
        cols = [np.asarray(v, dtype=float) for v in method.values()]
        if any(len(c) != len(levs) for c in cols):
            raise OptionError(f"each contrast needs {len(levs)} coefficients, one per level of {list(levs)}")
        return _set([str(n) for n in method], cols, len(levs))
    if not isinstance(method, str) or method not in METHODS:
        raise OptionError(f"Contrast function '{method}.emmc' not found; the methods are {', '.join(METHODS)} "
                          "(or a dict of name -> coefficients)")
    fn, fixed = METHODS[method]
    settings = {**fixed, **options}
    if settings.get("ref") == -1:
        settings["ref"] = len(levs)
    try:
        inspect.signature(fn).bind(levs, **settings)
    except TypeError:
        allowed = [p for p in inspect.signature(fn).parameters if p != "levs"]
        raise OptionError(f"contrast method {method!r} takes the options {allowed}, not {sorted(options)}") from None
    return fn(levs, **settings)
