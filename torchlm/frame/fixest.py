"""fixest's formulas and fixed effects: ``y ~ x1 + x2 | firm + year``, ``firm^year``, level codes, singletons.

The part after ``|`` names the fixed effects; each is a column of the data, or several joined by ``^``
(fixest's combined effect: one level per observed combination). They become integer codes over the
rows used, levels in sorted order, as fixest's ``fixef()`` lists them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import DataError, FormulaError, OptionError, UnknownVariableError
from torchlm.frame.data import as_frame
from torchlm.frame.design import Design, model_matrix
from torchlm.frame.model_frame import model_frame

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


@dataclass(frozen=True)
class FixestFormula:
    """A fixest formula split into its model part and its fixed effects.

    Parameters
    ----------
    model : the ``y ~ x1 + x2`` part, a torchlm (R) formula.
    fixef : one tuple of column names per fixed effect (``("firm", "year")`` for ``firm^year``).
    slopes : per fixed effect, the variables with a slope of their own in each of its levels (fixest's
        varying slopes ``firm[x]``); empty for a plain effect.
    keep_fe : per fixed effect, whether its own constant is there too (``firm[x]``: yes; ``firm[[x]]``:
        the slopes only).
    """

    model: str
    fixef: tuple[tuple[str, ...], ...]
    slopes: tuple[tuple[str, ...], ...] = ()
    keep_fe: tuple[bool, ...] = ()

    def effects(self) -> list[tuple[int, str | None, str]]:
        """The absorbed effects: (term, slope variable or None, label), the constants before the slopes.

        Returns
        -------
        list of tuple
        """
        out: list[tuple[int, str | None, str]] = []
        for t, names in enumerate(self.fixef):
            lab = "^".join(names)
            slopes = self.slopes[t] if self.slopes else ()
            if not slopes or (self.keep_fe[t] if self.keep_fe else True):
                out.append((t, None, lab))
            out += [(t, v, f"{lab}[[{v}]]") for v in slopes]
        return out

    @property
    def labels(self) -> list[str]:
        """The fixed effects as the formula writes them (``firm``, ``firm^year``)."""
        return ["^".join(v) for v in self.fixef]

    @property
    def variables(self) -> list[str]:
        """Every column the fixed effects use (their slopes' too), once each."""
        out: list[str] = []
        for v in list(self.fixef) + list(self.slopes):
            out += [c for c in v if c not in out]
        return out


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses, brackets and backquotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_fixest(formula: str) -> FixestFormula:
    """Split fixest's ``y ~ x | fe1 + fe2^fe3`` into the model formula and the fixed effects.

    Parameters
    ----------
    formula : str

    Returns
    -------
    FixestFormula

    Raises
    ------
    FormulaError
        For what fixest writes that torchlm does not fit: instruments (a third part), varying slopes
        ``fe[x]``, and fixed effects that are not column names.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"a fixest formula is a string 'y ~ x1 + x2 | fe1 + fe2', not {formula!r}")
    parts = _split_top(formula, "|")
    if len(parts) > 2:
        raise FormulaError(f"{formula!r}: a third part (instrumental variables, fixest's 'y ~ x | fe | x2 ~ z') "
                           "is not supported")
    model = parts[0]
    if not model.split("~", 1)[1].strip():
        raise FormulaError(f"{formula!r}: the right-hand side is empty; write 'y ~ 1 | fe' for fixed effects only")
    if len(parts) == 1:
        return FixestFormula(model, ())
    if not parts[1] or parts[1] in ("0", "1"):
        raise FormulaError(f"{formula!r}: no fixed effect after '|'")
    fixef: list[tuple[str, ...]] = []
    slopes: list[tuple[str, ...]] = []
    keep: list[bool] = []
    for term in _split_top(parts[1], "+"):
        base, vs, fe = _varying(formula, term)
        pieces = [v.strip() for v in base.split("^")]
        names = tuple(v.strip("`") for v in pieces)
        if not all(_NAME.match(v) and v.strip("`") for v in pieces):
            raise FormulaError(f"{formula!r}: the fixed effect {term!r} is not a column name (or names joined "
                               "by ^)")
        if names in fixef:
            raise FormulaError(f"{formula!r}: the fixed effect {base!r} is given twice (give its slopes once: "
                               f"{base}[x1, x2])")
        fixef.append(names)
        slopes.append(vs)
        keep.append(fe)
    return FixestFormula(model, tuple(fixef), tuple(slopes), tuple(keep))


def _varying(formula: str, term: str) -> tuple[str, tuple[str, ...], bool]:
    """fixest's varying slopes: ``firm[x]`` (constant and slope), ``firm[[x]]`` (slope only), ``firm[x, z]``."""
    if "[" not in term:
        return term, (), True
    m = re.fullmatch(r"\s*([^\[\]]+?)\s*(\[\[?)\s*([^\[\]]+?)\s*(\]\]?)\s*", term)
    if m is None or len(m.group(2)) != len(m.group(4)):
        raise FormulaError(f"{formula!r}: {term!r} is not fixest's varying slope (fe[x], fe[[x]] or fe[x, z])")
    vs = tuple(v.strip().strip("`") for v in m.group(3).split(","))
    if not all(v and _NAME.match(v) for v in vs):
        raise FormulaError(f"{formula!r}: the varying slopes in {term!r} are column names (fe[x1, x2])")
    return m.group(1), vs, len(m.group(2)) == 1


def check_columns(fml: FixestFormula, columns: pd.Index) -> None:
    """Every fixed-effect variable is a column of the data.

    Raises
    ------
    UnknownVariableError
    """
    missing = [v for v in fml.variables if v not in columns]
    if missing:
        raise UnknownVariableError(f"fixed effect variable(s) {missing} not found in the data; its columns are "
                                   f"{list(columns)[:20]}")


def fixef_codes(data: pd.DataFrame, fml: FixestFormula) -> list[tuple[np.ndarray, pd.Index]]:
    """Integer codes (0 .. L-1) and sorted levels of each fixed effect over the rows of ``data``.

    Returns
    -------
    list of (numpy int64 array, pandas.Index)
        A combined effect's levels are its columns' levels joined by "_" (fixest's labels).
    """
    out = []
    for names in fml.fixef:
        codes, levels = factorize(data[names[0]])
        for v in names[1:]:
            c2, l2 = factorize(data[v])
            key = codes * len(l2) + c2
            used, codes = np.unique(key, return_inverse=True)
            levels = pd.Index([f"{levels[k // len(l2)]}_{l2[k % len(l2)]}" for k in used])
        out.append((codes.astype(np.int64, copy=False), pd.Index(levels)))
    return out


def factorize(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Level codes (0 .. L-1) and levels of a column over its rows: sorted values, or a categorical's used
    categories in their order (R's factor() and droplevels).

    Returns
    -------
    (numpy int64 array, pandas.Index)
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()
        return values.cat.codes.to_numpy().astype(np.int64), pd.Index(values.cat.categories)
    codes, levels = pd.factorize(values, sort=True)
    return codes.astype(np.int64), pd.Index(levels)


def singleton_rows(codes: list[np.ndarray]) -> np.ndarray:
    """Rows to keep once observations alone in a level of any fixed effect are removed, repeatedly (fixest's rule).

    Removing a singleton of one effect can leave a singleton in another: the rule runs until none is left.

    Returns
    -------
    numpy bool array
    """
    n = len(codes[0])
    keep = np.ones(n, dtype=bool)
    changed = True
    while changed:
        changed = False
        for c in codes:
            counts = np.bincount(c[keep], minlength=int(c.max()) + 1 if n else 0)
            alone = keep & (counts[c] == 1)
            if alone.any():
                keep &= ~alone
                changed = True
    return keep


def recode(codes: np.ndarray, levels: pd.Index, keep: np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """The codes at the kept rows, renumbered over the levels still present.

    Returns
    -------
    (numpy int64 array, pandas.Index)
    """
    used, inverse = np.unique(codes[keep], return_inverse=True)
    return inverse.astype(np.int64), levels[used]


@dataclass
class FixestDesign:
    """The model part's design (intercept removed when there are fixed effects) and the fixed effects' codes.

    Parameters
    ----------
    design : the torchlm Design of the model part at the rows used.
    columns : positions of the design's columns that are slopes (all but the intercept with fixed effects).
    codes, levels : per fixed effect, the level code of each row used and the levels.
    fml : the parsed formula.
    n_singletons : observations removed as fixed-effect singletons.
    n_removed : observations removed by a model's own rule (a Poisson fixed effect whose outcomes are all 0).
    """

    design: Design
    columns: list[int]
    codes: list[np.ndarray]
    levels: list[pd.Index]
    fml: FixestFormula
    n_singletons: int = 0
    n_removed: int = 0

    @property
    def names(self) -> list[str]:
        """The slopes' names."""
        return [self.design.names[j] for j in self.columns]

    @property
    def effect_labels(self) -> list[str]:
        """The absorbed effects' names: ``firm``, ``firm^year``, ``firm[[x]]`` for a varying slope."""
        return [lab for _, _, lab in self.fml.effects()]

    @property
    def effect_codes(self) -> list[np.ndarray]:
        """Each absorbed effect's level codes (a varying slope shares its effect's)."""
        return [self.codes[t] for t, _, _ in self.fml.effects()]

    @property
    def effect_sizes(self) -> list[int]:
        """Each absorbed effect's number of levels."""
        return [len(self.levels[t]) for t, _, _ in self.fml.effects()]

    @property
    def plain(self) -> list[bool]:
        """Whether each absorbed effect is a constant (not a varying slope)."""
        return [v is None for _, v, _ in self.fml.effects()]

    def effect_values(self) -> list[np.ndarray | None]:
        """Each absorbed effect's value per row: None for a constant, the variable for a varying slope.

        Returns
        -------
        list
        """
        assert self.design.data is not None and self.design.rows is not None
        rows = self.design.data.iloc[self.design.rows]
        return [None if v is None else rows[v].to_numpy(dtype=np.float64) for _, v, _ in self.fml.effects()]

    @property
    def fixef_dof(self) -> int:
        """fixest's count of the absorbed coefficients: every level of every effect, less one per constant after the
        first (the constants' dummies share the intercept); varying slopes are all counted."""
        return sum(self.effect_sizes) - max(sum(self.plain) - 1, 0)

    def X(self) -> np.ndarray:
        """The (n, k) slopes' matrix, float64 (a new array).

        Returns
        -------
        numpy.ndarray
        """
        n = len(self.design.y)
        out = np.empty((n, len(self.columns)), dtype=np.float64, order="F")
        for i, j in enumerate(self.columns):
            out[:, i] = self.design.columns[j]
        return out


def restrict_design(design: Design, keep: np.ndarray) -> Design:
    """The design at the rows ``keep`` (a boolean mask over its rows): the others are dropped.

    Returns
    -------
    Design
    """
    frame = design.frame.restrict(keep) if design.frame is not None else None
    return dataclasses.replace(
        design, columns=[c[keep] for c in design.columns], y=design.y[keep],
        weights=None if design.weights is None else design.weights[keep],
        offset=None if design.offset is None else design.offset[keep],
        index=design.index[keep], rows=None if design.rows is None else design.rows[keep], frame=frame)


def fixest_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
                  fixef_rm: str = "singleton", contrasts: Any = None, names: str = "formulaic",
                  drop_rule: Callable[[list[np.ndarray], np.ndarray], np.ndarray] | None = None,
                  fitter: str | None = None) -> FixestDesign:
    """Rows, design and fixed-effect codes of a fixest model: NA rows, then singletons (and ``drop_rule``) removed.

    Parameters
    ----------
    formula : fixest's formula.
    data : the user's data (never modified).
    weights, offset, subset : as tl.lm's.
    fixef_rm : "singleton" (remove observations alone in a level, repeatedly) or "none".
    contrasts, names : as tl.lm's, for factors of the model part.
    drop_rule : a model's own rule (codes, y) -> rows to keep, applied with the singletons until neither
        removes anything (fepois: levels whose outcomes are all 0).
    fitter : how errors about the response name the model.

    Returns
    -------
    FixestDesign
    """
    if fixef_rm not in ("singleton", "none"):
        raise OptionError(f"fixef_rm must be 'singleton' or 'none', not {fixef_rm!r}")
    fml = parse_fixest(formula)
    frame_data = as_frame(data)
    check_columns(fml, frame_data.columns)
    frame = model_frame(frame_data, fml.variables, weights=weights, offset=offset, subset=subset)
    design = model_matrix(fml.model, frame, contrasts=contrasts, names=names, fitter=fitter)
    if not fml.fixef:
        return FixestDesign(design, list(range(len(design.names))), [], [], fml)
    assert design.data is not None and design.rows is not None
    pairs = fixef_codes(design.data.iloc[design.rows], fml)
    codes, levels = [c for c, _ in pairs], [lv for _, lv in pairs]
    keep = np.ones(len(design.y), dtype=bool)
    n_single = n_rule = 0
    while True:
        before = int(keep.sum())
        if fixef_rm == "singleton":
            sub = singleton_rows([c[keep] for c in codes])
            n_single += int((~sub).sum())
            keep[np.flatnonzero(keep)[~sub]] = False
        if drop_rule is not None and keep.any():
            sub = drop_rule([c[keep] for c in codes], design.y[keep])
            n_rule += int((~sub).sum())
            keep[np.flatnonzero(keep)[~sub]] = False
        if int(keep.sum()) == before or not keep.any():
            break
    if not keep.any():
        raise DataError(f"no observation is left once the fixed-effect singletons ({n_single}) and the observations "
                        f"with a perfect fit ({n_rule}) are removed")
    if not keep.all():
        design = restrict_design(design, keep)
        recoded = [recode(c, lv, keep) for c, lv in zip(codes, levels)]
        codes, levels = [c for c, _ in recoded], [lv for _, lv in recoded]
    cols = [j for j, a in enumerate(design.assign) if a != "1"]
    return FixestDesign(design, cols, codes, levels, fml, n_single, n_rule)
