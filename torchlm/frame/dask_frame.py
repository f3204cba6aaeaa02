"""R's model frame and model matrix of a Dask DataFrame: the spec learnt once, each partition's rows built with it.

The spec is learnt on the client from one pass over the partitions (:func:`scan_partition`: the rows each
partition keeps, and one row per factor level they use) and the in-memory :func:`build_design` on the few
rows gathered (the prototype): its formulaic ModelSpec holds every level the rows used have, in the order
the in-memory fit gives them, and the columns' names. Each partition then builds its own rows with that
spec (:func:`partition_rows`), in the worker, with the in-memory path's rules: subset, then the removal of
rows with a missing value in any variable, the weights or the offset, weights checked on the rows left.
Stateful transforms (scale, poly, ns, bs, ...) code every partition with the state learnt on every row
beforehand (:mod:`torchlm.frame.dask_state`), which replaces the prototype's own in the specs.

dask is imported only by the functions that need it: ``import torchlm`` works without it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import ModelSpec
from formulaic.errors import DataMismatchWarning

from torchlm.errors import DataError, ModelInputError, TorchlmError, UnknownVariableError, warnings_guard
from torchlm.frame.contrasts import Coding
from torchlm.frame.dask_compute import compute, in_task, task_threads
from torchlm.frame.data import as_frame, logical_factors, prepare_columns
from torchlm.frame.design import (
    Design,
    _categorical_factors,
    _level_codes,
    _listing,
    _logical_terms,
    _raw_values,
    build_design,
    missing_first,
)
from torchlm.frame.formula import (
    expand_dot,
    formula_columns,
    formulaic_formula,
    materialize,
    spec_matrix,
    split_offsets,
)
from torchlm.frame.model_frame import ModelFrame, _subset_mask, check_na_action, model_frame
from torchlm.frame.response import offset_values
from torchlm.frame.rexpr import Logical, evaluate_r
from torchlm.frame.rfunctions import formula_context
from torchlm.frame.stateful import expression_variables, stateful_expressions

#: rows of each partition that join the prototype besides one row per factor level (its numbers are not used)
SAMPLE_ROWS = 3
#: rows of each partition with distinct values of a stateful transform's variable that join the prototype
SAMPLE_DISTINCT = 12
#: dask's placeholder category of a categorical whose categories are not known (dask.dataframe.utils)
UNKNOWN_CATEGORIES = "__UNKNOWN_CATEGORIES__"


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a dask DataFrame (without importing dask for any other kind of data).

    Parameters
    ----------
    data : Any
        The data given to a verb.

    Returns
    -------
    bool

    Examples
    --------
    >>> from torchlm.frame.dask_frame import is_dask_frame
    >>> is_dask_frame(tl.datasets.load("mtcars"))
    False
    """
    if not type(data).__module__.startswith("dask"):
        return False
    import dask.dataframe as dd

    return isinstance(data, dd.DataFrame)


class NotSupportedForDask(ModelInputError):
    """What a fit of a Dask DataFrame cannot do yet (its rows stay in the partitions)."""


def not_supported(what: str) -> NotSupportedForDask:
    """The error for a feature a Dask fit lacks so far.

    Parameters
    ----------
    what : str
        The feature ("anova", "vcov type 'HC3'").

    Returns
    -------
    NotSupportedForDask

    Examples
    --------
    >>> from torchlm.frame.dask_frame import not_supported
    >>> str(not_supported("anova"))[:59]
    'anova is not supported yet for a model fitted to a Dask Dat'
    """
    return NotSupportedForDask(
        f"{what} is not supported yet for a model fitted to a Dask DataFrame (issue 11; the rows stay in the "
        "partitions): coef, vcov (const, HC0-HC5, clusters, HAC), std_errors, confint, summary, anova, drop1, "
        "logLik/AIC/BIC, fitted, residuals, predict and the influence measures (hatvalues, rstandard, rstudent, "
        "cooks_distance, dffits, covratio, dfbeta, dfbetas) are; fit a sample in memory for the rest")


@dataclass(frozen=True)
class DaskPlan:
    """What every partition needs to build its rows of the model: the frozen specs and the frame's rules.

    Parameters
    ----------
    formula : the formula as the in-memory design rewrote it (R's spelling, the dot expanded, no offset terms).
    rhs, lhs : formulaic's ModelSpecs of the design and of the response, learnt on the prototype.
    names : formulaic's column names of the design (what ``rhs`` gives).
    weights, offset : the weights= and offset= arguments (a column name or an expression of columns).
    offset_terms : the expressions of the formula's offset() terms.
    subset : R's subset expression, or None.
    na_action : "omit" or "fail".
    variables : the data columns the formula reads.
    numeric : those of them that the data's schema (dask's meta) says are numeric.
    categories : known categories of the categorical columns among them (dask's meta).
    contrasts, names_style : the fit's contrasts= and names= (the scan pass codes factors as the fit does).
    stateful_columns : the variables that stateful transforms read (the scan gathers rows of their distinct values).
    missing_first : the variables whose missing values go before formulaic sees a partition's rows (design.py's
        missing_first: the stateful transforms' and the comparisons').
    transform_state : formulaic's state of the stateful transforms, learnt on every row (frame/dask_state.py).
    """

    formula: str
    rhs: ModelSpec | None
    lhs: ModelSpec | None
    names: tuple[str, ...]
    weights: str | None
    offset: str | None
    offset_terms: tuple[str, ...]
    subset: str | None
    na_action: str
    variables: tuple[str, ...]
    numeric: tuple[str, ...]
    categories: dict[str, list] = field(default_factory=dict)
    contrasts: Any = None
    names_style: str = "formulaic"
    stateful_columns: tuple[str, ...] = ()
    missing_first: tuple[str, ...] = ()
    transform_state: dict[str, Any] = field(default_factory=dict)


@dataclass
class PartitionRows:
    """One partition's rows of the model: the design block, response, weights and offset at the rows used.

    Parameters
    ----------
    X : (m, p) float64 design rows; y : (m,) response; weights, offset : (m,) or None.
    index : the partition's index labels of the rows used; positions : their positions in the partition.
    n_dropped : rows of the subset dropped for missing values.
    """

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    index: pd.Index
    n_dropped: int
    positions: np.ndarray


@dataclass
class PartitionScan:
    """The scan pass's answer for one partition: its rows kept and the rows that show each factor level (whether
    the formula has categorical factors there: a logical term such as I(x > 0) on numeric columns)."""

    rows: pd.DataFrame
    n_kept: int
    categorical: bool = False


@contextlib.contextmanager
def in_partition(number: int) -> Iterator[None]:
    """Errors raised inside the block name the partition (a torchlm error of the same kind; others as DataError).

    Parameters
    ----------
    number : int
        The partition's position in the DataFrame (0-based, as dask numbers them).

    Yields
    ------
    None
    """
    try:
        yield
    except UnknownVariableError:  # the formula's, not the partition's: every partition has the same columns
        raise
    except TorchlmError as e:
        raise type(e)(f"partition {number} of the Dask DataFrame: {e}") from None
    except Exception as e:  # pandas or formulaic on a partition's odd data: the user's data, not a bug
        raise DataError(f"partition {number} of the Dask DataFrame: {type(e).__name__}: {e}") from None


def check_arguments(ddf: Any, weights: Any, offset: Any, subset: Any) -> None:
    """Refuse the arguments a Dask fit cannot take: arrays (one value per row of data), row-number subsets.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    weights, offset, subset : the verb's arguments.

    Returns
    -------
    None
    """
    for what, v in (("weights", weights), ("offset", offset), ("subset", subset)):
        if v is not None and not isinstance(v, str):
            raise ModelInputError(f"{what}= of a Dask DataFrame fit must be a column name or an expression of "
                                  f"columns (a string), not {type(v).__name__}: the rows live in the partitions")
    if isinstance(subset, str):
        try:
            value = evaluate_r(subset, as_frame(ddf._meta_nonempty))
        except TorchlmError:
            return  # not R's expression (a pandas query) or not evaluable on dask's sample: each partition tells
        if not isinstance(value, Logical):
            raise ModelInputError(f"subset={subset!r} selects rows by number: not supported for a Dask DataFrame "
                                  "(each partition numbers its own rows); select with a logical expression")


def initial_plan(formula: str, ddf: Any, *, weights: str | None, offset: str | None, subset: str | None,
                 na_action: str, contrasts: Any, names: str) -> tuple[DaskPlan, list[str]]:
    """The plan's rules (no specs yet: no pass over the data), and the formula's stateful factors.

    Parameters
    ----------
    formula : str
        The formula as given.
    ddf : dask.dataframe.DataFrame
        The data (its schema only is read).
    weights, offset, subset, na_action, contrasts, names : as in tl.lm.

    Returns
    -------
    (DaskPlan, list of str)
        The plan without specs; the factors that call a stateful transform (``scale(x)``, ``ns(x, df=3)``).
    """
    check_na_action(na_action)
    check_arguments(ddf, weights, offset, subset)
    meta = as_frame(ddf._meta_nonempty)
    expanded, offset_terms = split_offsets(expand_dot(formula, ddf.columns))
    parsed = formulaic_formula(expanded, meta.columns)
    variables = tuple(str(c) for c in formula_columns(parsed, meta.columns))
    dtypes = ddf.dtypes
    numeric = tuple(v for v in variables if pd.api.types.is_numeric_dtype(dtypes[v])
                    and not pd.api.types.is_bool_dtype(dtypes[v]))
    # known categories only (dask writes unknown ones as a placeholder category; each partition has its own)
    categories = {v: list(dtypes[v].categories) for v in variables
                  if isinstance(dtypes[v], pd.CategoricalDtype) and dtypes[v].categories is not None
                  and UNKNOWN_CATEGORIES not in dtypes[v].categories}
    exprs = stateful_expressions(parsed)
    columns = set().union(*(expression_variables(e) for e in exprs)) if exprs else set()
    first = missing_first([fa.expr for side in (parsed.lhs, parsed.rhs) for term in side for fa in term.factors])
    plan = DaskPlan(formula=expanded, rhs=None, lhs=None, names=(), weights=weights, offset=offset,
                    offset_terms=tuple(offset_terms), subset=subset, na_action=na_action, variables=variables,
                    numeric=numeric, categories=categories, contrasts=contrasts, names_style=names,
                    stateful_columns=tuple(v for v in variables if v in columns),
                    missing_first=tuple(v for v in variables if v in first))
    return plan, exprs


def learn_specs(formula: str, ddf: Any, plan: DaskPlan) -> tuple[DaskPlan, Design]:
    """The frozen plan of a Dask fit, and the in-memory design on its prototype rows (one scan pass).

    The stateful transforms' state (``plan.transform_state``, learnt on every row beforehand) codes the
    scan's rows and replaces what the prototype's design learnt on its few rows, in both specs.

    Parameters
    ----------
    formula : str
        The formula as given.
    ddf : dask.dataframe.DataFrame
        The data (read, never computed whole).
    plan : DaskPlan
        :func:`initial_plan`'s, with the transforms' state where the formula has stateful factors.

    Returns
    -------
    (DaskPlan, Design)
        The plan; the design of the prototype (its spec, names and assignment are the fit's).
    """
    scans = _scans(ddf, plan)
    if not sum(s.n_kept for s in scans):
        raise DataError("no observations left after the subset and removing rows with missing values "
                        f"(in any of the {ddf.npartitions} partitions)")
    proto = pd.concat([s.rows for s in scans if len(s.rows)], ignore_index=True)
    dtypes = ddf.dtypes
    for v, cats in plan.categories.items():  # one dtype for the partitions' rows, dask's known categories
        proto[v] = pd.Categorical(proto[v], categories=cats, ordered=bool(dtypes[v].ordered))
    design = build_design(formula, proto, weights=plan.weights, offset=plan.offset, na_action=plan.na_action,
                          contrasts=plan.contrasts, names=plan.names_style)
    coding = Coding.make(plan.contrasts, plan.names_style, formula)
    work = _prepared(proto.iloc[design.rows].reset_index(drop=True), plan)
    lhs = materialize(design.formula, work, "drop", _spec_options(coding, plan)).model_spec.lhs
    if plan.transform_state:  # the prototype learnt its own: the whole data's replaces it
        design = dataclasses.replace(design, spec=_with_state(design.spec, plan))
        lhs = _with_state(lhs, plan)
    plan = DaskPlan(**{**plan.__dict__, "formula": design.formula, "rhs": design.spec, "lhs": lhs,
                       "names": tuple(design.formulaic_names or design.names)})
    return plan, design


def _spec_options(coding: Coding, plan: DaskPlan) -> dict[str, Any]:
    """formulaic's ModelSpec settings of the fit: R's codings, and the transforms' state learnt on every row."""
    options = coding.spec_options()
    if plan.transform_state:
        options["transform_state"] = copy.deepcopy(plan.transform_state)
    return options


def _with_state(spec: ModelSpec, plan: DaskPlan) -> ModelSpec:
    """The spec with the whole data's transform state; a transform whose state it lacks is refused."""
    state = dict(spec.transform_state)
    if missing := [k for k, v in state.items() if v and k not in plan.transform_state]:
        raise not_supported(f"the transform(s) {', '.join(map(repr, missing))} (their state would be the "
                            "prototype rows', not the data's; compute the column first, e.g. with ddf.assign)")
    state.update({k: copy.deepcopy(v) for k, v in plan.transform_state.items() if k in state})
    return spec.update(transform_state=state)


#: partitions scanned one by one for a prototype before the whole scan pass is run
FIRST_PARTITIONS = 3


def _scans(ddf: Any, plan: DaskPlan) -> list[PartitionScan]:
    """The scan pass, or, for a formula of numeric columns only (no level to learn, no transform's state), the
    first partition that keeps rows: every partition's rows are checked again when the fit's passes build them."""
    import dask

    if set(plan.variables) <= set(plan.numeric) and not plan.stateful_columns and not plan.transform_state:
        for k, part in enumerate(ddf.to_delayed()[:FIRST_PARTITIONS]):
            try:
                scan = dask.delayed(scan_partition, pure=True)(part, k, plan).compute()
            except TorchlmError as e:
                raise type(e)(str(e)) from None
            if scan.n_kept:
                if not scan.categorical:
                    return [scan]
                break  # a logical term (I(x > 0)): its levels are those of every partition
    return map_partitions_computed(ddf, scan_partition, plan)


def map_partitions_computed(ddf: Any, fn: Any, *args: Any) -> list:
    """``fn(partition, number, *args)`` for every partition, computed (on the current scheduler), in order.

    A torchlm error in one partition is raised here, as itself (no remote traceback), and no result is kept.
    Within :func:`showing_progress` the pass shows Dask's progress bar.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    fn : callable
        A pure function of its partition (dask may recompute it, e.g. after losing a worker).
    *args : further arguments, passed to each task as one shared object each.

    Returns
    -------
    list
        ``fn``'s results, one per partition.
    """
    import dask

    shared = [dask.delayed(a, pure=True) if not isinstance(a, (int, float, str, type(None))) else a for a in args]
    parts = ddf.to_delayed()
    task, share = dask.delayed(in_task, pure=True), task_threads(parts)  # torch's threads: the task's share
    tasks = [task(fn, share, part, k, *shared) for k, part in enumerate(parts)]
    try:
        return compute(tasks)
    except TorchlmError as e:
        raise type(e)(str(e)) from None


def _prepared(work: pd.DataFrame, plan: DaskPlan) -> pd.DataFrame:
    """The rows with the formula's columns in R's types (logical variables as factors), as the in-memory path."""
    try:
        parsed = formulaic_formula(plan.formula, work.columns)
    except TorchlmError:
        parsed = None
    return prepare_columns(logical_factors(work, _logical_terms(parsed, work)), plan.variables)


def _frame(part: pd.DataFrame, plan: DaskPlan) -> tuple[ModelFrame | None, int]:
    """The partition's model frame (subset, NA weights and offset removed), or None and its rows dropped for NA
    when it keeps no row (the whole fit's count decides whether that is an error)."""
    if not len(part):
        return None, 0
    off: Any = plan.offset
    if plan.offset_terms:
        off = offset_values(part, plan.offset_terms, plan.offset)
    try:
        return model_frame(part, weights=plan.weights, offset=off, subset=plan.subset, na_action=plan.na_action), 0
    except DataError as e:
        if not str(e).startswith("no observations"):
            raise
    if plan.subset is None:
        return None, len(part)
    mask, na = _subset_mask(plan.subset, part)  # rows of the subset, and where it is NA: all dropped as missing
    return None, int(mask.sum() + na.sum())


def _check_schema(part: pd.DataFrame, plan: DaskPlan) -> None:
    """A partition whose column types differ from the data's schema: text in a numeric column, a new category."""
    for v in plan.numeric:
        col = part[v]
        if not pd.api.types.is_numeric_dtype(col):
            values = pd.to_numeric(col, errors="coerce")
            bad = col[values.isna() & col.notna()]
            example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
            raise DataError(f"column {v!r} holds non-numeric values{example} (dtype {col.dtype}) where the data's "
                            "schema says it is numeric")
    for v, cats in plan.categories.items():
        col = part[v]
        values = col.astype(object)[col.notna()]
        if len(new := values[~values.isin(cats)]):
            raise DataError(f"column {v!r} has level(s) {_listing(list(dict.fromkeys(new)))}, not among the data's "
                            f"categories {_listing(cats, 30)}")


def scan_partition(part: pd.DataFrame, number: int, plan: DaskPlan) -> PartitionScan:
    """The scan pass on one partition: how many rows it keeps, and a few of them, one per factor level they use.

    Parameters
    ----------
    part : pandas.DataFrame
        The partition.
    number : int
        Its position (for the errors).
    plan : DaskPlan
        The plan without specs (the formula's columns and the frame's rules).

    Returns
    -------
    PartitionScan
    """
    with in_partition(number):
        part = as_frame(part)
        _check_schema(part, plan)
        frame, _ = _frame(part, plan)
        if frame is None:
            return PartitionScan(part.iloc[:0], 0)
        work = _prepared(frame.kept_rows(), plan)
        if not len(complete := _complete(work, plan)):
            return PartitionScan(part.iloc[:0], 0)
        coding = Coding.make(plan.contrasts, plan.names_style, plan.formula)
        fa = "drop" if plan.na_action == "omit" else "raise"
        with warnings_guard():
            warnings.simplefilter("ignore", DataMismatchWarning)
            mm = materialize(plan.formula, complete, fa, _spec_options(coding, plan))
        kept = np.flatnonzero(_in_every(len(work), mm.rhs.index, mm.lhs.index))
        _check_weights(frame.weights, kept, plan)
        chosen = set(kept[:SAMPLE_ROWS].tolist())
        for expr in _categorical_factors(mm.model_spec.rhs):
            values = _raw_values(expr, work)
            if values is not None:
                seen = pd.Series(values[kept], index=kept).dropna()
                chosen |= set(seen[~seen.duplicated()].index.tolist())
        for v in plan.stateful_columns:  # the prototype's transforms learn their own state: not a degenerate one
            seen = pd.Series(np.asarray(work[v], dtype=object)[kept], index=kept).dropna()
            chosen |= set(seen[~seen.duplicated()].index[:SAMPLE_DISTINCT].tolist())
            if len(seen) and pd.api.types.is_numeric_dtype(work[v]):  # its range: given knots fall within
                chosen |= {seen.astype(np.float64).idxmin(), seen.astype(np.float64).idxmax()}
        rows = frame.rows[sorted(chosen)]
        categorical = bool(list(_categorical_factors(mm.model_spec.rhs))) or bool(
            list(_categorical_factors(mm.model_spec.lhs)))
        return PartitionScan(part.iloc[rows], len(kept), categorical)


def partition_rows(part: pd.DataFrame, number: int, plan: DaskPlan) -> PartitionRows:
    """One partition's rows of the model, built with the plan's frozen specs (the fit's columns and levels).

    Parameters
    ----------
    part : pandas.DataFrame
        The partition.
    number : int
        Its position (for the errors: a factor value the fit's levels lack, a negative weight, ...).
    plan : DaskPlan
        The learnt plan.

    Returns
    -------
    PartitionRows
    """
    if isinstance(part, PartitionRows):  # built once and kept in the workers (frame/dask_persist.py)
        return part
    p = len(plan.names)
    with in_partition(number):
        part = as_frame(part)
        _check_schema(part, plan)
        frame, dropped = _frame(part, plan)
        work = None if frame is None else _prepared(frame.kept_rows(), plan)
        complete = None if work is None else _complete(work, plan)
        if frame is None or work is None or complete is None or not len(complete):
            dropped += 0 if frame is None or work is None else frame.n_dropped + len(work)
            return PartitionRows(np.zeros((0, p)), np.zeros(0), None, None, part.index[:0], dropped,
                                 np.zeros(0, dtype=np.int64))
        rhs, lhs = _spec_matrix(plan.rhs, complete, plan), _spec_matrix(plan.lhs, complete, plan)
        pos = np.flatnonzero(~_outside_levels(work, plan) & _in_every(len(work), rhs.index, lhs.index))
        if [str(c) for c in rhs.columns] != list(plan.names):
            raise DataError(f"the design's columns are {[str(c) for c in rhs.columns]}, the fit's {list(plan.names)}")
        X = np.asarray(_at(rhs, pos).to_numpy(dtype=np.float64))
        y = _response(_at(lhs, pos))
        _check_weights(frame.weights, pos, plan)
        w = None if frame.weights is None else frame.weights[pos]
        if bad := [n for n, c in zip(plan.names, X.T) if not np.isfinite(c).all()]:
            raise DataError(f"non-finite values (Inf or NaN) in model column(s) {', '.join(bad)}")
        if not np.isfinite(y).all():
            raise DataError("non-finite values (Inf) in the response")
        off = None if frame.offset is None else frame.offset[pos]
        return PartitionRows(X, y, w, off, frame.index[pos], frame.n_dropped + len(work) - len(pos), frame.rows[pos])


def _in_every(n: int, *labels: Any) -> np.ndarray:
    """Which of ``n`` positions every one of the row labels holds (a mask: no sort, unlike np.intersect1d)."""
    inside = np.ones(n, dtype=bool)
    for index in labels:
        held = np.zeros(n, dtype=bool)
        held[np.asarray(index, dtype=np.int64)] = True
        inside &= held
    return inside


def _at(matrix: pd.DataFrame, pos: np.ndarray) -> pd.DataFrame:
    """The matrix's rows labelled ``pos`` (itself when those are all its rows: no copy of the partition's design)."""
    if len(pos) == len(matrix) and np.array_equal(np.asarray(matrix.index), pos):
        return matrix
    return matrix.loc[pos]


def _complete(work: pd.DataFrame, plan: DaskPlan) -> pd.DataFrame:
    """The rows without a missing value in a stateful transform's or a comparison's variable, as the in-memory
    design drops them before formulaic sees them (design.missing_first); their labels are kept (positions)."""
    if not plan.missing_first or plan.na_action != "omit":
        return work
    missing = np.asarray(work[list(plan.missing_first)].isna()).any(axis=1)
    return work.loc[~missing] if missing.any() else work


def _check_weights(weights: np.ndarray | None, rows: np.ndarray, plan: DaskPlan) -> None:
    """R's check of the weights on the rows left after NA removal (a negative weight on a dropped row is none)."""
    if weights is not None and (weights[rows] < 0).any():
        name = "" if plan.weights is None else f" ({plan.weights!r})"
        raise DataError(f"weights{name} must be non-negative; found negative weights")


def _outside_levels(work: pd.DataFrame, plan: DaskPlan) -> np.ndarray:
    """Rows whose factor value lies outside an explicit levels= (missing, as R's factor() makes them).

    A value outside the levels the fit learnt from the data is an error: the data changed between passes,
    or the partition's categories differ from the data's."""
    out = np.zeros(len(work), dtype=bool)
    for spec in (plan.rhs, plan.lhs):
        for expr, levels in _categorical_factors(spec).items():
            values = _raw_values(expr, work)
            if values is None:
                continue
            bad = (_level_codes(values, levels) < 0) & ~np.asarray(pd.isna(values), dtype=bool)
            if bad.any() and not re.search(r"\blevels\s*=", expr):
                raise DataError(f"factor {expr!r} has level(s) {_listing(list(dict.fromkeys(values[bad].tolist())))}"
                                f" that the fit's levels ({_listing(levels, 30)}, learnt from the data) lack")
            out |= bad
    return out


def _spec_matrix(spec: Any, work: pd.DataFrame, plan: DaskPlan) -> pd.DataFrame:
    """formulaic's matrix of one side of the formula on the rows, with the frozen spec (rows with NA dropped)."""
    with warnings_guard():
        warnings.simplefilter("ignore", DataMismatchWarning)  # values outside levels=: rows dropped above
        return spec_matrix(spec, work, na_action="drop" if plan.na_action == "omit" else "raise",
                           context=formula_context())


def _response(lhs: pd.DataFrame) -> np.ndarray:
    """The response column as float64 (the prototype's design has refused a factor or a matrix response).

    A logical expression (``I(am == 1)``) comes as formulaic's two columns FALSE, TRUE: its TRUE column, as R's 0/1."""
    col = lhs.iloc[:, 1] if lhs.shape[1] == 2 else lhs.iloc[:, 0]
    return np.asarray(col.astype(np.float64) if col.dtype == bool else col, dtype=np.float64)
