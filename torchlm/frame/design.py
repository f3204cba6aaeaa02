"""R's model.matrix on a model frame: the response and the design matrix, as formulaic builds them."""

from __future__ import annotations

import copy
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, ModelSpec
from formulaic.errors import DataMismatchWarning
from formulaic.model_matrix import ModelMatrices
from formulaic.parser.types import Factor

from torchlm.errors import DataError, TorchlmError, TorchlmWarning, warnings_guard
from torchlm.frame.contrasts import Coding
from torchlm.frame.data import LOGICAL_LEVELS, as_frame, is_logical, logical_factors, prepare_columns
from torchlm.frame.formula import (
    expand_dot,
    formula_columns,
    formulaic_formula,
    materialize,
    parse_formula,
    r_spelling,
    split_offsets,
)
from torchlm.frame.model_frame import (
    ModelFrame,
    check_na_action,
    check_weights,
    evaluate_variable,
    model_frame,
)
from torchlm.frame.response import binomial_matrix_response, offset_values
from torchlm.frame.rnames import r_names
from torchlm.frame.stateful import STATEFUL_CALL, check_poly, expression_variables, learned_state, stateful_expressions


@dataclass
class Design:
    """Everything a fitter needs, for the rows actually used (after subset and NA removal).

    Parameters
    ----------
    columns : the p numeric columns of the design matrix, as formulaic built them (no copy; dummies int64);
        ``X`` assembles the (n, p) matrix on first use, ``row_block`` a slice of rows without it.
    y : (n,) response.
    names : column names of X (formulaic's term names, or R's with names="R"); ``formulaic_names`` formulaic's.
    weights, offset : (n,) arrays or None.
    index : row labels of the used rows in the user's data.
    n_dropped : rows removed because of missing values.
    spec : formulaic ModelSpec of the right-hand side, reused for predict(newdata).
    assign : for each column of X, the label of the term it belongs to.
    data : the user's data as given (a reference, never copied or modified), for variables looked up
        after fitting (cluster= of vcov); ``data.iloc[rows]`` are the rows used.
    rows : positions in ``data`` of the rows used.
    frame : the model frame the design was built on (rows, weights, offset, subset, na_action).
    """

    columns: list[np.ndarray] = field(repr=False)
    y: np.ndarray
    names: list[str]
    response: str
    weights: np.ndarray | None
    offset: np.ndarray | None
    index: pd.Index
    n_dropped: int
    spec: ModelSpec
    formula: str
    has_intercept: bool
    assign: list[str]
    offset_column: str | None = None
    weights_column: str | None = None
    offset_terms: tuple[str, ...] = ()
    frame_info: dict[str, Any] = field(default_factory=dict)
    data: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    frame: ModelFrame | None = field(default=None, repr=False, compare=False)
    formulaic_names: list[str] = field(default_factory=list, repr=False)
    _X: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(n, p) of the design matrix.

        Returns
        -------
        tuple of int
            Rows used and columns of the design.
        """
        return len(self.y), len(self.names)

    @property
    def X(self) -> np.ndarray:
        """The (n, p) design matrix (column-major), assembled from the columns on first use.

        A large least-squares fit never needs it whole (it works on row blocks): not building it
        saves a copy of the design, which at n = 1e6 costs as much time as the QR.

        Returns
        -------
        numpy.ndarray
            (n, p) float64, Fortran order.
        """
        if self._X is None:
            X = self.row_block(0, self.shape[0])
            self._X, self.columns = X, [X[:, j] for j in range(X.shape[1])]
        return self._X

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Rows start:stop of the design matrix (column-major), without assembling all of it.

        Parameters
        ----------
        start, stop : int
            The rows, as a slice (``stop`` past the end is cut to n).
        spare : int
            Extra columns of zeros after the p of the design, for the caller to fill (a new array).

        Returns
        -------
        numpy.ndarray
            (stop - start, p + spare) float64, Fortran order (a view of ``X`` when it is assembled
            and no spare columns are asked for).
        """
        if self._X is not None and not spare:
            return self._X[start:stop]
        n, p = self.shape
        stop = min(stop, n)
        B = np.empty((p + spare, stop - start)).T
        for j, c in enumerate(self.columns):
            B[:, j] = c[start:stop]
        # zeros, not leftover memory: a cast to float32 must not meet stray huge values there
        B[:, p:] = 0.0
        return B

    def matvec(self, beta: np.ndarray) -> np.ndarray:
        """X @ beta, column by column (without assembling X).

        Parameters
        ----------
        beta : numpy.ndarray
            (p,) coefficients.

        Returns
        -------
        numpy.ndarray
            (n,) linear predictor without the offset.
        """
        if self._X is not None:
            return self._X @ beta
        out = np.zeros(len(self.y))
        tmp = np.empty_like(out)
        for b, c in zip(beta, self.columns):
            if b != 0:
                np.multiply(c, b, out=tmp)
                out += tmp
        return out


def build_design(formula: str, data: Any, *, weights: Any = None, offset: Any = None, subset: Any = None,
                 na_action: str = "omit", allow_factor_response: bool = False, fitter: str | None = None,
                 contrasts: Any = None, names: str = "formulaic") -> Design:
    """Model frame + design matrix with R's semantics (subset, then NA omission over every variable used).

    Parameters
    ----------
    formula : str
        formulaic formula with a response, e.g. ``"mpg ~ wt + C(cyl)"``.
    data : pandas.DataFrame or dict of arrays
        Never modified.
    weights, offset : str or array, optional
        Column name or array (one value per row of data).
    subset : array of bool or str, optional
        Boolean mask or query string, applied before NA removal.
    na_action : str
        "omit" (drop incomplete rows, as R's na.omit) or "fail".
    allow_factor_response : bool
        Accept a factor response (glm's binomial): its first level is failure, every other level success.
    fitter : str, optional
        How the error for a factor response names the model (``"glm with family 'poisson'"``); lm's when None.
    contrasts, names : dict, str
        R's contrasts= per variable and the column names ("formulaic" or "R"): see :class:`Coding`.

    Returns
    -------
    Design
        The response, design and weights/offset at the rows used, and the frame they came from.
    """
    # the checks in the order the errors have always come: options, data, formula, then the frame
    check_na_action(na_action)
    coding = Coding.make(contrasts, names, formula)
    data = as_frame(data)
    formula, offset_terms = split_offsets(expand_dot(formula, data.columns))
    parse_formula(formula)
    formula = r_spelling(formula)
    formula, data, weights = binomial_matrix_response(formula, data, weights, allow_factor_response)
    column = offset if isinstance(offset, str) else None
    if offset_terms:
        offset = offset_values(data, offset_terms, offset)
    frame = model_frame(data, weights=weights, offset=offset, subset=subset, na_action=na_action)
    design = _design_on_frame(formula, frame, allow_factor_response, fitter, coding)
    if offset_terms:
        design.offset_terms, design.offset_column = tuple(offset_terms), column
    return design


def model_matrix(formula: str, frame: ModelFrame, *, allow_factor_response: bool = False,
                 fitter: str | None = None, contrasts: Any = None, names: str = "formulaic") -> Design:
    """The response and design matrix of ``formula`` at the rows of a model frame (R's model.matrix).

    Rows where an evaluated term is missing (``log(x)`` of a negative x, a missing factor level) are
    dropped as well, or are an error if the frame's na_action is "fail": the Design's frame is narrowed
    to the rows it uses.

    Parameters
    ----------
    formula : str
        formulaic formula with a response, e.g. ``"mpg ~ wt + C(cyl)"``.
    frame : ModelFrame
        The rows to use (from :func:`torchlm.frame.model_frame`), with their weights and offset.
    allow_factor_response : bool
        Accept a factor response (glm's binomial): its first level is failure, every other level success.
    fitter : str, optional
        How the error for a factor response names the model; lm's when None.
    contrasts, names : dict, str
        As in :func:`build_design`.

    Returns
    -------
    Design
        The response, design and weights/offset at the rows used.
    """
    coding = Coding.make(contrasts, names, formula)
    parse_formula(formula)
    return _design_on_frame(r_spelling(expand_dot(formula, frame.data.columns)), frame, allow_factor_response, fitter,
                            coding)


#: share of the available memory that a dense design (and formulaic's copies of it) may take
DESIGN_MEMORY_FRACTION = 0.25
#: designs wider than this get a warning: the QR's time grows as n p^2
WIDE_DESIGN_COLUMNS = 5000


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux's MemAvailable, else the physical memory).

    Returns
    -------
    int
        Bytes.
    """
    try:
        with open("/proc/meminfo") as fh:
            return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):  # not Linux: the physical memory (none known: no limit)
        pages = ("SC_PHYS_PAGES", "SC_PAGE_SIZE")
        return int(np.prod([os.sysconf(k) for k in pages])) if hasattr(os, "sysconf") else 1 << 62


def _design_on_frame(formula: str, frame: ModelFrame, allow_factor_response: bool, fitter: str | None,
                     coding: Coding) -> Design:
    """The Design of an already checked and rewritten formula on ``frame`` (narrowed to formulaic's rows)."""
    mm, frame, work = _materialized_rows(formula, frame, coding)
    check_weights(frame)
    y, response = _numeric_response(mm, work, allow_factor_response, fitter)
    Xdf = mm.rhs
    # kept in formulaic's dtypes (factor dummies are int64): converted to float chunk by chunk, not all at once
    columns = [_numeric_column(Xdf.iloc[:, j]) for j in range(Xdf.shape[1])]
    names = [str(c) for c in Xdf.columns]
    if bad := [n for n, c in zip(names, columns) if not np.isfinite(c).all()]:
        raise DataError(f"non-finite values (Inf or NaN) in model column(s) {', '.join(bad)}")
    if not np.isfinite(y).all():
        raise DataError(f"non-finite values (Inf) in the response {response!r}")
    spec = mm.model_spec.rhs
    coding.check(spec.encoder_state, work.columns)
    assign = _term_assign(spec)
    return Design(
        columns=columns, y=y, formula=formula, has_intercept="1" in assign,
        names=r_names(spec, names, coding.formula) if coding.names == "R" else names,
        formulaic_names=names, response=response, weights=frame.weights, offset=frame.offset,
        index=frame.index, n_dropped=frame.n_dropped, spec=spec,
        assign=assign, offset_column=frame.offset_column, weights_column=frame.weights_column,
        data=frame.data, rows=frame.rows, frame=frame,
    )


def _materialized_rows(formula: str, frame: ModelFrame,
                       coding: Coding) -> tuple[ModelMatrices, ModelFrame, pd.DataFrame]:
    """formulaic's matrices at the rows R's model.frame keeps, the frame narrowed to them, and those rows.

    As R's model.frame, stateful transforms (ns, bs, poly, scale) learn on every row of the data, before
    subset= and the removal of rows with missing values (:mod:`torchlm.frame.stateful`). Then rows where a
    variable is missing go, and, as R, rows where an evaluated term is missing (``log(x)``, x < 0) or a
    factor's value is outside its ``levels=`` (R's factor() makes it NA); unused categories are dropped
    (R's drop.unused.levels)."""
    work = frame.kept_rows()  # labelled by position, so formulaic's kept index maps back
    try:
        parsed: Formula | None = formulaic_formula(formula, work.columns)
    except Exception:  # materialize reports a formula it cannot read
        parsed = None
    variables, stateful = _formula_variables(parsed, work)
    exprs = stateful_expressions(parsed)
    check_poly(exprs, frame.data)
    # R's types first (as materialize gives them), so that the levels below are compared as formulaic sees them
    work = prepare_columns(logical_factors(work, _logical_terms(parsed, work)), variables)
    keep = ~_missing_rows(work, stateful, frame.na_action)
    # learnt apart only when rows are left out before formulaic sees them (else formulaic learns on every row)
    state = learned_state(exprs, frame.data) if exprs and (frame.n < len(frame.data) or not keep.all()) else None
    if not keep.all():
        _check_rows_left(keep, work, variables)
        work, frame = work.loc[keep].reset_index(drop=True), frame.restrict(keep)
    _check_design_size(formula, parsed, work)
    fa = "drop" if frame.na_action == "omit" else "raise"
    mm = _materialize_quietly(formula, work, fa, coding, state)
    if exprs and state is None:  # learnt on every row, before formulaic dropped any: R's
        state = copy.deepcopy(mm.model_spec.rhs.transform_state)
    for _ in range(3):
        keep = np.zeros(len(work), dtype=bool)
        keep[np.asarray(mm.rhs.index, dtype=np.int64)] = True
        outside = _outside_levels(mm, work)
        if outside.any() and frame.na_action == "fail":
            raise DataError(f"factor values outside their levels= (missing, as R's factor() makes them) in "
                            f"{formula!r} and na_action='fail'")
        keep &= ~outside
        if keep.all():
            break
        _check_rows_left(keep, work, variables)
        work, frame = work.loc[keep].reset_index(drop=True), frame.restrict(keep)
        if not outside.any():
            break  # formulaic dropped exactly these rows and its encoding of the others holds: no second pass
        mm = _materialize_quietly(formula, work, fa, coding, state)
    trimmed = _drop_unused_categories(work, variables)
    if trimmed is not work:
        work = trimmed
        mm = _materialize_quietly(formula, work, fa, coding, state)
    _check_levels(mm, work)
    return mm, frame.restrict(np.arange(len(work)), variables=sorted(mm.model_spec.required_variables)), work


def _logical_terms(f: Formula | None, work: pd.DataFrame) -> list[str]:
    """Logical columns that enter the right-hand side as variables (not inside an expression such as I(b * 2))."""
    if f is None:
        return []
    lookups, inside = set(), set()
    for term in f.rhs:
        for fa in term.factors:
            if fa.eval_method == Factor.EvalMethod.LOOKUP:
                lookups.add(fa.expr)
            else:
                inside |= expression_variables(fa.expr)
    return [c for c in work.columns if c in lookups and c not in inside and is_logical(work[c])]


# a comparison in a term (I(hp > 120)) is NA in R where its variable is; numpy's is False. Unless the term
# handles missing values itself (is.na(x) | x > 3, ifelse(...)), such rows are missing, as R's na.omit has them
_COMPARISON = re.compile(r"[<>]|==|!=")
_NA_AWARE = re.compile(r"is[._]?na|isnull|notnull|notna|ifelse|where|fillna|coalesce|complete")


def _formula_variables(f: Formula | None, work: pd.DataFrame) -> tuple[list, list]:
    """The data columns the formula reads, and those whose missing values go before formulaic sees the rows:
    what stateful transforms (scale(x), poly(x, 2)) read, and what comparisons (I(hp > 120)) compare."""
    if f is None:
        return [], []
    exprs = [fa.expr for side in (f.lhs, f.rhs) for term in side for fa in term.factors]
    every = formula_columns(f, work.columns)
    names = missing_first(exprs)
    return every, [c for c in every if c in names]


def missing_first(exprs: list[str]) -> set[str]:
    """The names whose missing values make a row missing before formulaic sees it (R's model.frame has them NA).

    Those read by a stateful transform (scale(x), which learns on the non-missing values) or compared in a term
    that does not handle missing values itself (I(hp > 120), not is.na(hp) | hp > 120).

    Parameters
    ----------
    exprs : list of str
        The formula's factors, as formulaic writes them.

    Returns
    -------
    set of str

    Examples
    --------
    >>> from torchlm.frame.design import missing_first
    >>> sorted(missing_first(["wt", "I(hp > 120)", "scale(disp)", "I(is_na(qsec) | (qsec > 18))"]))
    ['I', 'disp', 'hp', 'scale']
    """
    return set().union(*(expression_variables(e) for e in exprs if STATEFUL_CALL.search(e)
                         or (_COMPARISON.search(e) and not _NA_AWARE.search(e))))


def _missing_rows(work: pd.DataFrame, variables: list[str], na_action: str) -> np.ndarray:
    """Rows where a raw variable of the formula is missing (an error when na_action is 'fail')."""
    missing = np.zeros(len(work), dtype=bool)
    for v in variables:
        cells = np.asarray(pd.isna(work[v]))
        na = np.asarray(cells.any(axis=1) if cells.ndim == 2 else cells)
        if na.any() and na_action == "fail":
            raise DataError(f"missing values in variable {v!r} and na_action='fail'")
        missing |= na
    return missing


def _check_rows_left(keep: np.ndarray, work: pd.DataFrame, variables: list[str]) -> None:
    if not keep.any():
        all_na = [v for v in variables if np.asarray(pd.isna(work[v])).all()]
        if all_na:
            hint = f" (all values of {', '.join(map(repr, all_na))} are missing)"
        elif not any(np.asarray(pd.isna(work[v])).any() for v in variables):
            # nothing is missing in the data: the terms made every row missing
            hint = (" (none of the data is missing: the formula's terms are missing or not finite in every row, "
                    "e.g. log of non-positive values, or an overflow of poly() or scale() with values near 1e150 "
                    "and beyond: rescale the variable)")
        else:
            hint = ""
        raise DataError(f"no observations left after removing rows with missing values{hint}")


def _materialize_quietly(formula: str, work: pd.DataFrame, na_action: str, coding: Coding,
                         state: dict[str, Any] | None = None) -> ModelMatrices:
    """materialize(), without formulaic's warnings about values outside the levels (the rows are dropped);
    with ``state``, the stateful transforms' state learnt on every row of the data (not on these rows)."""
    options = coding.spec_options()
    if state:
        options["transform_state"] = copy.deepcopy(state)
    with warnings_guard():
        warnings.simplefilter("ignore", DataMismatchWarning)
        warnings.filterwarnings("ignore", message="Constructing a Categorical with a dtype and values")
        return materialize(formula, work, na_action, options)


def _categorical_factors(spec: ModelSpec) -> dict[str, list]:
    """Factor expression -> its categories, for the categorical factors of one side of the formula."""
    return {expr: list(st.get("categories", [])) for expr, (kind, st) in spec.encoder_state.items()
            if getattr(kind, "value", kind) == "categorical"}


def _raw_values(expr: str, rows: pd.DataFrame) -> np.ndarray | None:
    """A factor's values before encoding (``g`` of ``C(g, levels=...)``), or None if they cannot be read."""
    try:
        value = rows[expr] if expr in rows.columns else evaluate_variable(rows, expr)
    except TorchlmError:
        return None
    arr = np.asarray(getattr(value, "__wrapped__", value))
    return arr if arr.ndim == 1 and len(arr) == len(rows) else None


def _level_codes(values: np.ndarray, levels: list) -> np.ndarray:
    """Position of each value among ``levels``: -1 for a value that is not one of them (or is missing)."""
    try:
        return np.asarray(pd.Index(levels).get_indexer(values))
    except Exception:  # unhashable or mixed values: compare one by one
        return np.array([next((k for k, lv in enumerate(levels) if lv == v), -1) for v in values])


def _outside_levels(mm: ModelMatrices, work: pd.DataFrame) -> np.ndarray:
    """Rows where a factor's value is not among its categories: formulaic codes them as the reference."""
    out = np.zeros(len(work), dtype=bool)
    for side in ("lhs", "rhs"):
        for expr, levels in _categorical_factors(getattr(mm.model_spec, side)).items():
            values = _raw_values(expr, work)
            if values is not None:
                out |= (_level_codes(values, levels) < 0) & ~np.asarray(pd.isna(values))
    return out


def _drop_unused_categories(work: pd.DataFrame, variables: list[str]) -> pd.DataFrame:
    """``work`` with categoricals cut to the categories their rows use (R's drop.unused.levels)."""
    out = work
    for v in variables:
        col = work[v]
        if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype) and not is_logical(col):
            cut = col.cat.remove_unused_categories()
            if len(cut.cat.categories) < len(col.cat.categories):
                out = work.copy(deep=False) if out is work else out
                out[v] = cut
    return out


def _check_levels(mm: ModelMatrices, work: pd.DataFrame) -> None:
    """R's errors for factors: a predictor with one level, levels= that no row uses."""
    for expr, levels in _categorical_factors(mm.model_spec.rhs).items():
        if levels == LOGICAL_LEVELS and expr in work.columns and is_logical(work[expr]):
            continue  # R's logicals keep both levels, used or not
        values = _raw_values(expr, work)
        if levels == LOGICAL_LEVELS and values is not None and values.dtype == bool:
            continue  # a logical expression (I(am == 1)): both levels too
        if values is not None:
            used = set(_level_codes(values, levels).tolist())
            if unused := [lv for k, lv in enumerate(levels) if k not in used]:
                raise DataError(f"level(s) {_listing(unused)} of factor {expr!r} occur in no row used: "
                                "remove them from levels= (R drops unused levels)")
        if len(levels) < 2:
            raise DataError(f"factor {expr!r} has a single level ({_listing(levels)}) in the rows used (R: contrasts "
                            "can be applied only to factors with 2 or more levels): remove it from the formula "
                            "(or check the subset and the rows dropped for missing values)")


def _listing(values: list, k: int = 10) -> str:
    text = ", ".join(map(repr, [v.item() if isinstance(v, np.generic) else v for v in values[:k]]))
    return text + (f", ... ({len(values)} in all)" if len(values) > k else "")


def _check_design_size(formula: str, f: Formula | None, work: pd.DataFrame) -> None:
    """Before materializing: an error if the dense design cannot fit in memory, a warning if it is very wide."""
    if f is None:  # a formula materialize reports: no estimate from it
        return
    terms = list(f.rhs)
    widths: dict[str, int] = {}
    p = sum(int(np.prod([_factor_width(fa.expr, work, widths) for fa in getattr(t, "factors", [])])) for t in terms)
    n = len(work)
    if not widths:
        return
    widest = max(widths, key=lambda v: widths[v])
    need = 8 * (n * p + widths[widest] ** 2)  # the dense design and formulaic's dense coding matrix
    budget = DESIGN_MEMORY_FRACTION * available_memory()
    what = (f"the design of {formula!r} would have about {p} columns ({widest!r} has {widths[widest]} "
            f"levels) on {n} rows")
    if need > budget:
        raise DataError(f"{what}: {need / 2**30:.1f} GiB as a dense matrix, more than the "
                        f"{budget / 2**30:.1f} GiB this machine can spare; use fewer levels (merge rare ones) "
                        "or absorb the factor as fixed effects (tl.feols('y ~ x | f'))")
    if p > WIDE_DESIGN_COLUMNS:
        flops = n * p * p
        warnings.warn(f"{what}: the QR takes about n p^2 = {flops:.1e} floating-point operations "
                      f"(roughly {flops / 1e10:.0f} s at 10 GFLOP/s)", TorchlmWarning, stacklevel=6)


def _factor_width(expr: str, work: pd.DataFrame, widths: dict[str, int]) -> int:
    """An upper bound on the columns one factor gives: its levels when it is categorical, else 1."""
    if expr in work.columns:
        names, categorical = [expr], not pd.api.types.is_numeric_dtype(work[expr])
    else:
        names = sorted(v for v in expression_variables(expr) if v in work.columns)
        categorical = expr.startswith("C(")
    k = 1
    for v in (v for v in names if categorical or not pd.api.types.is_numeric_dtype(work[v])):
        k *= widths.setdefault(v, max(int(work[v].nunique()), 1))
    return k


def _numeric_response(mm: ModelMatrices, work: pd.DataFrame, allow_factor: bool,
                      fitter: str | None) -> tuple[np.ndarray, str]:
    """The response as float64, and its name; a factor response as R's binomial glm codes it."""
    lhs, factors = mm.lhs, _categorical_factors(mm.model_spec.lhs)
    names = [str(c) for c in lhs.columns]
    if factors:
        base = next(iter(factors))
        if factors[base] == LOGICAL_LEVELS and base not in work.columns and lhs.shape[1] == 2:
            # a logical expression (I(am == 1)), which R's model.response keeps as 0 and 1 for any model
            return np.asarray(lhs.iloc[:, 1], dtype=np.float64), base
        if allow_factor:
            # R's binomial glm: the first level (of those used) is failure, every other level success
            used = [j for j in range(lhs.shape[1]) if np.asarray(lhs.iloc[:, j]).any()]
            return 1.0 - np.asarray(lhs.iloc[:, used[0]], dtype=np.float64), base
        dtype = work[base].dtype if base in work.columns else "categorical"
        what = f"response {base!r} is not numeric: a factor (dtype {dtype}, levels {_listing(factors[base])})"
        if fitter is None:
            raise DataError(f"{what}: lm needs a numeric response (a factor response is only for "
                            "tl.glm(..., family='binomial'), which codes the first level 0 and the others 1)")
        raise DataError(f"{what}: {fitter} needs a numeric response; a factor response is only for "
                        "family='binomial' (the first level failure, the others success)")
    if len(names) != 1:
        raise DataError(f"the formula's left-hand side gives {len(names)} response columns ({', '.join(names)}); "
                        "lm and glm fit one response: write 'y ~ x' (for a binomial count, use the proportion "
                        "with weights= the trials)")
    col = lhs.iloc[:, 0]
    col = col.astype(np.float64) if col.dtype == bool else col
    if not np.issubdtype(col.dtype, np.number):
        raise DataError(f"response {names[0]!r} is not numeric (dtype {col.dtype})")
    return np.asarray(col, dtype=np.float64), names[0]


def _numeric_column(col: pd.Series) -> np.ndarray:
    a = col.to_numpy(copy=False)
    return a if a.dtype.kind in "biuf" else col.to_numpy(dtype=np.float64)


def _term_assign(spec: ModelSpec) -> list[str]:
    out = []
    for st in spec.structure:
        out += [str(st.term)] * len(st.columns)
    return out
