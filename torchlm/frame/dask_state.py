"""The state of a formula's stateful transforms over every row of a Dask DataFrame, before its plan is learnt.

R's model.frame evaluates ``scale(x)``, ``poly(x, 2)``, ``ns(x, df=3)`` and ``bs(x, df=4)`` on every row of
the data, before subset= and the removal of rows with missing values, each leaving out the rows where the
factor's own variables are missing (:mod:`torchlm.frame.stateful`, the in-memory rule). Here every partition
sends back sums, the client combines them, and the state goes into formulaic's ``transform_state`` of the
plan (:func:`torchlm.frame.dask_frame.learn_specs`), so that each partition's rows are coded with the data's
state, not its own nor the prototype's:

- scale, center, standardize: the mean from each partition's count and mean, the sum of squares about it by
  Chan's pairwise update of each partition's own (two-pass) sum of squares: one pass, exact to rounding;
- R's orthogonal poly: formulaic's three-term recurrence, its ``alpha`` and ``norms2`` one degree per pass
  (each pass evaluates the polynomials found so far), with R's checks (no missing value, enough points);
- ns and bs: the boundary knots from the range (one pass), the inner knots R's type-7 quantiles of x by the
  exact order statistics of :func:`torchlm.sources.dask_selection.order_statistics` (counting passes).

Other stateful transforms (formulaic's cr, cs, cc, its own bs spellings) and a stateful call inside another's
arguments are refused with :class:`torchlm.frame.dask_frame.NotSupportedForDask`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS
from formulaic.utils.code import format_expr, sanitize_variable_names
from formulaic.utils.layered_mapping import LayeredMapping
from formulaic.utils.stateful_transforms import stateful_eval

from torchlm.errors import DataError, TorchlmError
from torchlm.frame.dask_compute import by_pieces
from torchlm.frame.dask_frame import (
    DaskPlan,
    in_partition,
    initial_plan,
    learn_specs,
    map_partitions_computed,
    not_supported,
)
from torchlm.frame.data import as_frame, prepare_columns
from torchlm.frame.design import Design
from torchlm.frame.rfunctions import formula_context
from torchlm.frame.splines import _inner_probs, as_float
from torchlm.frame.stateful import check_poly, expression_variables
from torchlm.sources.dask_selection import (
    RangeAnswer,
    Sketch,
    combine_range_answers,
    order_statistics,
    range_counts,
    sketch_of,
)

#: the transform behind each name a formula may call, and how its state is learnt
_SCALES = ("scale", "center", "standardize")
_SPLINES = ("ns", "bs")


@dataclass(frozen=True)
class Transform:
    """One stateful call of the formula: formulaic's state key, its kind, its argument and its options.

    Parameters
    ----------
    key : formulaic's key of the call's state (the call as formulaic writes it, names sanitized).
    kind : "scale", "center", "standardize", "poly", "ns" or "bs".
    arg : the argument's expression (sanitized), evaluated on each partition's rows.
    aliases : formulaic's sanitized names -> the data's column names.
    columns : the data columns the factor reads (rows missing in any of them are left out, as in memory).
    options : the call's other arguments, evaluated (df=3, degree=2, knots, ...).
    factor : the formula's factor holding the call (for R's poly checks and the errors).
    """

    key: str
    kind: str
    arg: str
    aliases: dict[str, str]
    columns: tuple[str, ...]
    options: dict[str, Any]
    factor: str


def learn_plan(formula: str, ddf: Any, *, weights: str | None, offset: str | None, subset: str | None,
               na_action: str, contrasts: Any, names: str) -> tuple[DaskPlan, Design]:
    """The frozen plan of a Dask fit (the transforms' state learnt on every row first), and the prototype's design.

    Parameters
    ----------
    formula : str
        The formula as given.
    ddf : dask.dataframe.DataFrame
        The data (read, never computed whole).
    weights, offset, subset, na_action, contrasts, names : as in tl.lm.

    Returns
    -------
    (DaskPlan, Design)
        The plan; the design of the prototype (its spec, with the data's transform state, names and assignment
        are the fit's).
    """
    plan, exprs = initial_plan(formula, ddf, weights=weights, offset=offset, subset=subset, na_action=na_action,
                               contrasts=contrasts, names=names)
    if exprs:
        state = learn_state(ddf, transforms_of(exprs, list(map(str, ddf.columns))))
        plan = dataclasses.replace(plan, transform_state=state)
    return learn_specs(formula, ddf, plan)


def _environment() -> dict[str, Any]:
    return {**TRANSFORMS, **formula_context()}


def transforms_of(exprs: list[str], columns: list[str]) -> list[Transform]:
    """The stateful calls of a formula's factors, each once (formulaic keys them by the call), in order.

    Parameters
    ----------
    exprs : list of str
        The factors that call a stateful transform (:func:`torchlm.frame.stateful.stateful_expressions`).
    columns : list of str
        The data's columns.

    Returns
    -------
    list of Transform
    """
    env = _environment()
    kinds = {id(env[k]): k for k in (*_SCALES, "poly", *_SPLINES)}
    out: dict[str, Transform] = {}
    for expr in exprs:
        aliases: dict[str, str] = {}
        code = sanitize_variable_names(expr, LayeredMapping(dict.fromkeys(columns), env), aliases)
        # the sanitized code's names (a backquoted `Sepal.Length` is Sepal_Length there), as the data names them
        named = {aliases.get(v, v) for v in expression_variables(code)}
        used = tuple(c for c in columns if c in named)
        for node in ast.walk(ast.parse(code, mode="eval")):
            fn = _stateful(node, env)
            if fn is None or format_expr(node) in out:
                continue
            key = format_expr(node)
            kind = kinds.get(id(fn))
            if kind is None:
                raise not_supported(f"the transform {key!r} (Dask fits learn scale, center, standardize, poly, ns "
                                    "and bs on every row; compute the column first, e.g. with ddf.assign)")
            assert isinstance(node, ast.Call)
            if any(_stateful(n, env) is not None for a in (*node.args, *node.keywords) for n in ast.walk(a)):
                raise not_supported(f"a stateful transform inside another's arguments ({key!r})")
            arg, options = _arguments(node, fn, key)
            out[key] = Transform(key, kind, arg, aliases, used, options, expr)
    return list(out.values())


def _stateful(node: ast.AST, env: dict[str, Any]) -> Any:
    """The stateful transform a call node calls, or None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    fn = env.get(node.func.id)
    return fn if getattr(fn, "__is_stateful_transform__", False) and node.func.id != "Q" else None


def _arguments(node: ast.Call, fn: Any, key: str) -> tuple[str, dict[str, Any]]:
    """The call's data argument (an expression) and its other arguments' values (which must not read the data)."""
    env = LayeredMapping(formula_context(), TRANSFORMS)
    data = next(iter(inspect.signature(fn).parameters))  # the data's parameter: x or data
    try:
        first = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == data)
        args = [stateful_eval(format_expr(a), env, None, {}, None) for a in node.args[1:]]
        kwargs = {k.arg: stateful_eval(format_expr(k.value), env, None, {}, None) for k in node.keywords
                  if k.arg is not None and k.arg != data}
        bound = inspect.signature(fn).bind(None, *args, **kwargs)
    except TorchlmError:
        raise
    except Exception as e:  # an argument reads a column, or the call's arguments do not fit the transform
        raise not_supported(f"the transform {key!r} with these arguments ({type(e).__name__}: {e})") from None
    bound.apply_defaults()
    options = {k: v for k, v in list(bound.arguments.items())[1:] if k != "_state"}
    if options.pop("formulaic_args", None):
        raise not_supported(f"formulaic's own bs() arguments ({key!r}): R's df, knots, degree, intercept, "
                            "Boundary.knots are")
    return format_expr(first), options


# --- the passes ---------------------------------------------------------------------------------------------------

def _values(part: pd.DataFrame, t: Transform) -> np.ndarray:
    """The transform's argument on the partition's rows where the factor's variables are not missing."""
    rows = prepare_columns(part[list(t.columns)].reset_index(drop=True), t.columns)
    missing = rows.isna().to_numpy().any(axis=1)
    rows = rows.loc[~missing].reset_index(drop=True)
    layer = {alias: rows[name] for alias, name in t.aliases.items() if name in rows.columns}
    env = LayeredMapping(layer, rows, formula_context(), TRANSFORMS)
    return as_float(stateful_eval(t.arg, env, None, {}, None))


def _scale_sums(x: np.ndarray, t: Transform) -> tuple[int, float, float, float]:
    """Count, mean, sum of squares about the mean, and about a given centre (0 when not centred)."""
    if not len(x):
        return 0, 0.0, 0.0, 0.0
    mean = float(np.mean(x))
    given = t.options.get("center", True)
    c = 0.0 if isinstance(given, bool) else float(np.asarray(given))
    return len(x), mean, float(np.sum((x - mean) ** 2)), float(np.sum((x - c) ** 2))


def _poly_values(x: np.ndarray, stage: int, alpha: dict, norms2: dict) -> np.ndarray:
    """formulaic's monic orthogonal polynomial of degree ``stage`` at x, by its recurrence with known coefficients."""
    prev, cur = np.zeros_like(x), np.ones_like(x)
    for i in range(1, stage + 1):
        nxt = (x - alpha[i - 1]) * cur
        if i >= 2:
            nxt -= norms2[i - 1] / norms2[i - 2] * prev
        prev, cur = cur, nxt
    return cur


def state_sums(part: pd.DataFrame, number: int, transforms: tuple[Transform, ...], stage: int,
               known: dict[str, dict]) -> list[Any]:
    """One pass of the state's sums on one partition: per transform, what its state needs at this stage.

    Parameters
    ----------
    part : pandas.DataFrame
        The partition (every row: no subset, no NA removal but the factor's own variables').
    number : int
        Its position (for the errors).
    transforms : tuple of Transform
    stage : int
        The pass: 0 gives counts, means, sums of squares, ranges and R's poly checks; k > 0 poly's degree k sums.
    known : dict
        poly's coefficients found so far, by key.

    Returns
    -------
    list
        One entry per transform (None where it has nothing to do at this stage).
    """
    out: list[Any] = []
    with in_partition(number):
        part = as_frame(part)
        for t in transforms:
            if t.kind == "poly" and (stage > int(t.options["degree"]) or t.options["raw"]):
                out.append(None)
                continue
            if stage and t.kind != "poly":
                out.append(None)
                continue
            x = _values(part, t)
            x = x if t.kind in _SCALES else x[~np.isnan(x)]
            if t.kind in _SCALES:
                out.append(_scale_sums(x, t))
            elif t.kind == "poly":
                p = _poly_values(x, stage, known[t.key]["alpha"], known[t.key]["norms2"])
                checks = _poly_checks(part, t) if stage == 0 else None
                out.append((float(np.sum(p**2)), float(np.sum(x * p**2)), checks))
            else:
                out.append((len(x), float(x.min()) if len(x) else math.inf, float(x.max()) if len(x) else -math.inf,
                            x[:1].copy()))
    return out


def _poly_checks(part: pd.DataFrame, t: Transform) -> dict[str, tuple[int, np.ndarray]]:
    """Per variable of a poly factor: its missing values on every row, and up to degree + 1 distinct values."""
    keep = int(t.options["degree"]) + 1
    return {v: (int(pd.isna(part[v]).sum()), pd.unique(part[v].dropna())[:keep]) for v in t.columns}


def learn_state(ddf: Any, transforms: list[Transform]) -> dict[str, dict]:
    """formulaic's transform state of the calls, learnt on every row of the Dask DataFrame.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    transforms : list of Transform

    Returns
    -------
    dict
        Key -> the call's state, as formulaic's own transforms would have learnt it on the whole data in memory.
    """
    ts = tuple(transforms)
    known: dict[str, dict[str, dict[int, Any]]] = {t.key: {"alpha": {}, "norms2": {}} for t in ts if t.kind == "poly"}
    first = _combine_stage(map_partitions_computed(ddf, state_sums, ts, 0, known), ts, 0, known)
    stages = max([int(t.options["degree"]) for t in ts if t.kind == "poly" and not t.options["raw"]], default=0)
    for stage in range(1, stages + 1):
        _combine_stage(map_partitions_computed(ddf, state_sums, ts, stage, known), ts, stage, known)
    state: dict[str, dict] = {}
    for j, t in enumerate(ts):
        if t.kind in _SCALES:
            state[t.key] = _scale_state(t, first[j])
        elif t.kind == "poly" and not t.options["raw"]:
            state[t.key] = known[t.key]
        elif t.kind in _SPLINES:
            state[t.key] = _spline_state(ddf, t, first[j])
    return state


def _combine_stage(answers: list[list[Any]], ts: tuple[Transform, ...], stage: int,
                   known: dict[str, dict]) -> list[Any]:
    """The partitions' sums of one stage combined per transform; poly's coefficients of the stage recorded."""
    combined: list[Any] = []
    for j, t in enumerate(ts):
        parts = [a[j] for a in answers if a[j] is not None]
        if not parts:
            combined.append(None)
            continue
        if t.kind == "poly":
            if stage == 0:
                _check_poly(t, [p[2] for p in parts])
            norm, weighted = math.fsum(p[0] for p in parts), math.fsum(p[1] for p in parts)
            known[t.key]["norms2"][stage] = np.float64(norm)
            if stage < int(t.options["degree"]):
                known[t.key]["alpha"][stage] = np.float64(weighted / norm)
        combined.append(parts)
    return combined


def _check_poly(t: Transform, checks: list[dict[str, tuple[int, np.ndarray]]]) -> None:
    """R's errors of poly() on every row (missing values, too few points), by the in-memory check on a summary:
    per variable, its missing values and its distinct values (at most degree + 1 of them)."""
    columns = {}
    for v in t.columns:
        na = sum(c[v][0] for c in checks)
        distinct = pd.unique(np.concatenate([np.asarray(c[v][1], dtype=object) for c in checks]))
        columns[v] = (na, distinct[: int(t.options["degree"]) + 1])
    size = max(na + len(d) for na, d in columns.values()) or 1
    summary = pd.DataFrame({v: list(d) + [np.nan] * na + [d[0] if len(d) else 0.0] * (size - na - len(d))
                            for v, (na, d) in columns.items()})
    check_poly([t.factor], summary)


def _scale_state(t: Transform, parts: list[tuple[int, float, float, float]]) -> dict[str, Any]:
    """scale()'s state from the partitions' sums: the mean, and the root mean square about the centre."""
    parts = [p for p in parts if p[0]]
    n = sum(p[0] for p in parts)
    mean = math.fsum(p[0] * p[1] for p in parts) / n if n else math.nan
    center = t.options.get("center", True)
    rescale = t.options.get("rescale" if t.kind == "standardize" else "scale", True)
    ddof = 1 if t.kind == "center" else t.options["ddof"]
    if t.kind == "center":
        center, rescale = True, False
    if isinstance(center, bool) and center:  # Chan's update: each partition's squares about its own mean
        ss = math.fsum(p[2] + p[0] * (p[1] - mean) ** 2 for p in parts)
    else:
        ss = math.fsum(p[3] for p in parts)
    state: dict[str, Any] = {"ddof": ddof}
    state["center"] = np.float64(mean) if isinstance(center, bool) and center else (
        None if isinstance(center, bool) else np.array(center))
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(np.float64(ss) / (n - ddof))
    state["scale"] = spread if isinstance(rescale, bool) and rescale else (
        None if isinstance(rescale, bool) else np.array(rescale))
    return state


def _spline_state(ddf: Any, t: Transform, parts: list[tuple[int, float, float, np.ndarray]]) -> dict[str, Any]:
    """ns()/bs()'s state: the boundary knots (the range unless given), the inner knots R's quantiles of x."""
    n = sum(p[0] for p in parts)
    if not n:
        raise DataError(f"{t.kind}: x has no non-missing values")
    opts = dict(t.options)
    if opts.get("Boundary_knots") is None:
        if t.kind == "ns" and n == 1:  # R's boundary knots around a single value
            opts["Boundary_knots"] = float(next(p[3][0] for p in parts if p[0])) * np.array([7, 9]) / 8
        else:
            opts["Boundary_knots"] = np.array([min(p[1] for p in parts), max(p[2] for p in parts)])
    if opts.get("knots") is None:
        used = (1 if t.kind == "ns" else int(opts["degree"])) + int(bool(opts["intercept"]))
        k = 0 if opts.get("df") is None else int(opts["df"]) - used
        given = t.options.get("Boundary_knots") is not None  # else every value lies within: n of them
        bounds = np.sort(np.asarray(opts["Boundary_knots"], dtype=np.float64).reshape(-1))
        opts["knots"] = _quantiles(ddf, t, bounds, None if given else n, _inner_probs(k)) if k > 0 else np.zeros(0)
    opts.pop("df", None)
    state: dict[str, Any] = {}
    bk = np.asarray(opts["Boundary_knots"], dtype=np.float64).reshape(-1)
    # the transform itself, told its knots, writes its state as it would have learnt it on every row
    _environment()[t.kind](bk[np.isfinite(bk)][:2], **opts, _state=state)
    return state


@by_pieces(combine_range_answers)
def inside_counts(part: pd.DataFrame, number: int, t: Transform, bounds: tuple[float, float],
                  ranges: tuple[tuple[int, int, int], ...]) -> list[RangeAnswer]:
    """Counts (or keys) of a spline argument's values within the boundary knots, in the ranges of a selection pass.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    t : Transform
    bounds : (float, float)
        The boundary knots (values beyond them do not place the inner knots, as R's).
    ranges : tuple of (lo, hi, width)
        See :func:`torchlm.sources.dask_selection.range_counts`.

    Returns
    -------
    list of RangeAnswer
    """
    with in_partition(number):
        x = _values(as_frame(part), t)
        return range_counts(x[(x >= bounds[0]) & (x <= bounds[1])], ranges)


def _quantiles(ddf: Any, t: Transform, bounds: np.ndarray, n: int | None, probs: np.ndarray) -> np.ndarray:
    """R's type-7 quantiles of the argument's values within the bounds (n of them: counted when None), from their
    exact order statistics."""
    if bounds.shape != (2,) or not np.isfinite(bounds).all():
        raise DataError(f"{t.kind}: Boundary.knots must be two finite numbers, not {t.options['Boundary_knots']!r}")
    sketches = None
    if n is None:  # the pass that counts the values also sketches them: then one pass collects the knots
        sketches = map_partitions_computed(ddf, _inside_sketch, t, (float(bounds[0]), float(bounds[1])))
        n = sum(s.size for s in sketches)
    if not n:
        return np.full(len(probs), np.nan)
    index = (n - 1) * probs  # R's 1 + (n - 1) * probs, from 0
    lo, hi = np.floor(index).astype(np.int64), np.ceil(index).astype(np.int64)
    stats = order_statistics(ddf, t, (float(bounds[0]), float(bounds[1])), n, sorted({*lo.tolist(), *hi.tolist()}),
                             counts=inside_counts, sketches=sketches)
    qs, qh = np.array([stats[k] for k in lo]), np.array([stats[k] for k in hi])
    h = index - lo
    return np.where((index > lo) & (qh != qs), (1 - h) * qs + h * qh, qs)


def _inside_sketch(part: pd.DataFrame, number: int, t: Transform, bounds: tuple[float, float]) -> Sketch:
    with in_partition(number):
        x = _values(as_frame(part), t)
        return sketch_of(x[(x >= bounds[0]) & (x <= bounds[1])])

