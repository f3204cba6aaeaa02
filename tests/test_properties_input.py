"""Property tests over odd input: random mixed-dtype frames, formulas, weights and NA patterns.

Every fit and every method called on it must either work or raise a tl.TorchlmError (never another
exception), must leave the user's data frame exactly as it was, and when it works its fitted values,
rank, nobs and predictions must be R's, computed independently by tests/_reference.py (R's model
frame and model matrix rebuilt in numpy, then lstsq or IRLS). Where R raises an error (no rows, a
one-level factor, NA/NaN/Inf in the design, negative weights, a response outside the family's range)
torchlm must raise a tl.TorchlmError too.

The data: n rows (0..40, often fewer rows than coefficients) of a response and up to four predictors
of random kinds: float64, int64, nullable Int64/Float64/boolean with pd.NA, bool, object holding
strings, object holding numbers, pandas Categorical (ordered or not, with unused and shuffled
categories, sometimes one level), the pandas "string" dtype (python storage: pyarrow is not installed
in this environment, so "string[pyarrow]" cannot be generated), pandas 3's default "str" dtype,
constant and duplicated columns, NaN/None/pd.NA/Inf patterns, magnitudes from 1e-150 to 1e150.

The formulas: response ~ terms, a term being a variable, `a:b`, `a*b`, `I(a^2)`, `log(a)` (on a
positive column), `C(g)`, `poly(a, 2)`, with or without the intercept (`- 1` or `0 +`), and optional
weights= (positive, zero, negative, NaN) and subset= (a boolean mask).

HYPOTHESIS_PROFILE=explore runs more, random, examples (tests/conftest.py) and shrinks failures.
"""

from __future__ import annotations

import copy
import os
import warnings

import _reference as ref_mod
import numpy as np
import pandas as pd
import pytest
from _reference import FACTOR_KINDS, LOGICAL_KINDS, NUMERIC_KINDS, Expr, Spec
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

import torchlm as tl

# The derandomized default profile (CI) runs the explicit examples below, then draws, and does not
# shrink: shrinking a dozen distinct failures costs minutes, and the printed case is already Python
# that rebuilds it. The explore profile skips the explicit examples (a failing one would stop the
# search before it starts) and shrinks what it finds.
EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "default") == "explore"
SETTINGS = settings(max_examples=300 if EXPLORE else 100, deadline=None, print_blob=True,
                    phases=[Phase.generate, Phase.target, Phase.shrink] if EXPLORE
                    else [Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
KINDS = sorted(NUMERIC_KINDS | LOGICAL_KINDS | FACTOR_KINDS | {"dup"})
SCALES = [1.0, 1.0, 1.0, 1e-8, 1e8, 1e-150, 1e150]
LETTERS = list("abcdef")


# ---------------------------------------------------------------- data

def _na_mask(draw, n: int) -> np.ndarray:
    pattern = draw(st.sampled_from(["none"] * 4 + ["some"] * 3 + ["many", "all"]))
    if pattern == "none" or n == 0:
        return np.zeros(n, dtype=bool)
    if pattern == "all":
        return np.ones(n, dtype=bool)
    cell = st.booleans() if pattern == "many" else st.sampled_from([False] * 6 + [True])
    return np.array(draw(st.lists(cell, min_size=n, max_size=n)), dtype=bool)


def _numbers(draw, n: int, rng: np.random.Generator, positive: bool) -> np.ndarray:
    scale = draw(st.sampled_from(SCALES))
    v = np.exp(rng.standard_normal(n)) if positive else rng.standard_normal(n) + draw(st.sampled_from([0.0, 3.0]))
    return v * scale


def _column(draw, kind: str, n: int, rng: np.random.Generator, positive: bool) -> pd.Series:
    """A column of the given kind, with its missing values."""
    na = _na_mask(draw, n)
    if kind in ("float", "Float64", "const"):
        v = _numbers(draw, n, rng, positive) if kind != "const" else np.full(n, draw(st.sampled_from([0.0, 2.5])))
        if kind == "float":
            bad = draw(st.sampled_from([np.nan, np.nan, np.nan, np.inf]))
            return pd.Series(np.where(na, bad, v), dtype="float64")
        if kind == "const":
            return pd.Series(v, dtype="float64")
        return pd.Series(pd.array([pd.NA if m else x for x, m in zip(v.tolist(), na)], dtype="Float64"))
    if kind in ("int", "Int64"):
        lo = 1 if positive else draw(st.sampled_from([-3, 0]))
        v = rng.integers(lo, lo + draw(st.sampled_from([2, 4, 8])), n)
        if kind == "int":
            return pd.Series(v, dtype="int64")
        return pd.Series(pd.array([pd.NA if m else int(x) for x, m in zip(v, na)], dtype="Int64"))
    if kind == "obj_num":
        v = _numbers(draw, n, rng, positive)
        ints = draw(st.booleans())
        vals = [None if m else (int(round(x)) if ints else float(x)) for x, m in zip(v, na)]
        return pd.Series(vals, dtype=object)
    if kind in ("bool", "boolean"):
        v = rng.random(n) < draw(st.sampled_from([0.0, 0.5, 1.0]))
        if kind == "bool":
            return pd.Series(v, dtype=bool)
        return pd.Series(pd.array([pd.NA if m else bool(x) for x, m in zip(v, na)], dtype="boolean"))
    k = draw(st.sampled_from([1, 2, 2, 3, 3, 4]))
    used = LETTERS[:k]
    v = [used[i] for i in rng.integers(0, k, n)]
    if kind == "obj_str":
        miss = draw(st.sampled_from([None, np.nan]))
        return pd.Series([miss if m else x for x, m in zip(v, na)], dtype=object)
    if kind in ("string", "str"):
        return pd.Series([None if m else x for x, m in zip(v, na)], dtype="string" if kind == "string" else "str")
    cats = list(used) + draw(st.lists(st.sampled_from(["u", "v", "w"]), max_size=2, unique=True))
    cats = draw(st.permutations(cats))
    return pd.Series(pd.Categorical([None if m else x for x, m in zip(v, na)], categories=cats,
                                    ordered=draw(st.booleans())))


@st.composite
def frames(draw, response: str = "gaussian"):
    """(data, kinds, positive columns): a response y and predictors x1..xk of random kinds."""
    n = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    k = draw(st.integers(1, 4))
    cols, kinds, positive = {}, {}, set()
    for j in range(k):
        name = f"x{j + 1}"
        kind = draw(st.sampled_from(KINDS if j else [x for x in KINDS if x != "dup"]))
        if kind == "dup":
            src = draw(st.sampled_from(sorted(cols)))
            cols[name], kinds[name] = cols[src].copy(), kinds[src]
            if src in positive:
                positive.add(name)
            continue
        pos = kind in NUMERIC_KINDS and kind != "const" and draw(st.booleans())
        cols[name], kinds[name] = _column(draw, kind, n, rng, pos), kind
        if pos:
            positive.add(name)
    cols["y"] = _response(draw, response, n, rng)
    kinds["y"] = _response_kind(cols["y"])
    data = pd.DataFrame({"y": cols.pop("y"), **cols})
    return data, kinds, positive


def _response(draw, family: str, n: int, rng: np.random.Generator) -> pd.Series:
    na = _na_mask(draw, n) if draw(st.booleans()) else np.zeros(n, dtype=bool)
    if family in ("lm", "gaussian"):
        v = rng.standard_normal(n) * draw(st.sampled_from(SCALES))
        if draw(st.booleans()):
            return pd.Series(pd.array([pd.NA if m else x for x, m in zip(v.tolist(), na)], dtype="Float64"))
        return pd.Series(np.where(na, draw(st.sampled_from([np.nan, np.nan, np.inf])), v), dtype="float64")
    if family == "poisson":
        v = rng.poisson(draw(st.sampled_from([0.5, 3.0, 20.0])), n)
        if draw(st.booleans()):
            return pd.Series(pd.array([pd.NA if m else int(x) for x, m in zip(v, na)], dtype="Int64"))
        return pd.Series(np.where(na, np.nan, v), dtype="float64")
    v = rng.random(n) < draw(st.sampled_from([0.3, 0.5, 0.9]))
    form = draw(st.sampled_from(["01", "01", "obj_str", "cat"]))
    if form == "01":
        return pd.Series(np.where(na, np.nan, v.astype(float)), dtype="float64")
    labels = np.where(v, "yes", "no")
    vals = [None if m else x for x, m in zip(labels, na)]
    if form == "obj_str":
        return pd.Series(vals, dtype=object)
    cats = draw(st.permutations(["no", "yes"] + draw(st.lists(st.just("maybe"), max_size=1))))
    return pd.Series(pd.Categorical(vals, categories=cats))


def _response_kind(s: pd.Series) -> str:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "cat"
    if s.dtype == object:
        return "obj_str"
    return "float"


# ---------------------------------------------------------------- formulas

@st.composite
def specs(draw, kinds: dict, positive: set):
    """A formula of the grammar over the predictors whose kinds allow each operation."""
    preds = sorted(c for c in kinds if c != "y")
    numeric = [c for c in preds if kinds[c] in NUMERIC_KINDS]
    factorable = [c for c in preds if kinds[c] in FACTOR_KINDS | {"int", "Int64", "cat"}]

    def expr():
        ops = ["v"] * 3 + (["I2", "poly"] if numeric else []) + (["log"] if positive else []) + \
              (["C"] if factorable else [])
        op = draw(st.sampled_from(ops))
        pool = {"v": preds, "I2": numeric, "poly": numeric, "log": sorted(positive), "C": factorable}[op]
        return Expr(op, draw(st.sampled_from(pool)))

    items = []
    for _ in range(draw(st.integers(1, 3))):
        joiner = draw(st.sampled_from(["", "", ":", "*"]))
        if joiner:
            a, b = expr(), expr()
            if a.op not in ("v", "C") or b.op not in ("v", "C") or a == b:
                joiner = ""
            else:
                items.append((joiner, (a, b)))
                continue
        items.append(("", (expr(),)))
    return Spec("y", items, intercept=draw(st.sampled_from([True, True, False])),
                no_intercept_spelling=draw(st.sampled_from(["- 1", "0 +"])))


def _weights(draw, n: int, rng: np.random.Generator):
    how = draw(st.sampled_from(["none"] * 3 + ["positive", "zeros", "zeros", "negative", "nan"]))
    if how == "none":
        return None
    w = rng.uniform(0.1, 10.0, n)
    if how != "positive" and n:
        hit = rng.random(n) < 0.3
        w[hit] = {"zeros": 0.0, "negative": -1.0, "nan": np.nan}[how]
    return w


@st.composite
def cases(draw, family: str):
    data, kinds, positive = draw(frames(family))
    spec = draw(specs(kinds, positive))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = len(data)
    w = _weights(draw, n, rng)
    weights_as = draw(st.sampled_from(["array", "column"]))
    subset = None
    if draw(st.integers(0, 3)) == 0:
        subset = rng.random(n) < 0.8
    return Case(data, kinds, spec, w, weights_as, subset, family)


class Case:
    """One drawn problem; its repr is Python that rebuilds it (hypothesis prints it on failure)."""

    def __init__(self, data, kinds, spec, w, weights_as, subset, family):
        self.data, self.kinds, self.spec, self.family = data, kinds, spec, family
        self.w, self.subset = w, subset
        if w is not None and weights_as == "column":
            self.data = data.assign(w=w)
        self.weights_arg = None if w is None else ("w" if weights_as == "column" else w)

    def kwargs(self) -> dict:
        kw = {}
        if self.weights_arg is not None:
            kw["weights"] = self.weights_arg
        if self.subset is not None:
            kw["subset"] = self.subset
        return kw

    def __repr__(self) -> str:
        cols = []
        for c in self.data.columns:
            s = self.data[c]
            vals = [None if (not isinstance(v, str) and pd.isna(v) and not (isinstance(v, float) and np.isinf(v)))
                    else v for v in s.tolist()]
            vals = [f"float('{v}')" if isinstance(v, float) and np.isinf(v) else repr(v) for v in vals]
            if isinstance(s.dtype, pd.CategoricalDtype):
                cols.append(f"{c!r}: pd.Categorical([{', '.join(vals)}], categories={s.cat.categories.tolist()!r}, "
                            f"ordered={s.cat.ordered})")
            else:
                na = "np.nan" if s.dtype == "float64" else "pd.NA"
                vals = [na if v == "None" and s.dtype != object else v for v in vals]
                cols.append(f"{c!r}: pd.Series([{', '.join(vals)}], dtype={str(s.dtype)!r})")
        kw = "".join(f", {k}=np.array({v.tolist()!r})" if isinstance(v, np.ndarray) else f", {k}={v!r}"
                     for k, v in self.kwargs().items())
        fam = "" if self.family == "lm" else f", family={self.family!r}"
        fn = "lm" if self.family == "lm" else "glm"
        return (f"\nd = pd.DataFrame({{{', '.join(cols)}}})\n"
                f"fit = tl.{fn}({self.spec.formula()!r}, d{fam}{kw})\n")


# ---------------------------------------------------------------- the properties

METHODS = [
    ("coef", lambda f, d: f.coef()),
    ("vcov", lambda f, d: f.vcov()),
    ("std_errors", lambda f, d: f.std_errors()),
    ("vcov('HC3')", lambda f, d: f.vcov("HC3")),
    ("confint", lambda f, d: f.confint()),
    ("summary", lambda f, d: str(f.summary())),
]


def _call(what: str, fn):
    """fn() or the TorchlmError it raised; any other exception fails the property, naming the call."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(), None
    except tl.TorchlmError as e:
        return None, e
    except Exception as e:  # noqa: BLE001 - the property is that nothing else escapes
        raise AssertionError(f"{what} raised {type(e).__name__} (not a tl.TorchlmError): {e}") from e


def _fit(case: Case):
    f = case.spec.formula()
    if case.family == "lm":
        return _call(f"tl.lm({f!r})", lambda: tl.lm(f, case.data, **case.kwargs()))
    return _call(f"tl.glm({f!r}, family={case.family!r})",
                 lambda: tl.glm(f, case.data, family=case.family, **case.kwargs()))


def _reference(case: Case) -> ref_mod.Reference:
    if case.family in ("lm", "gaussian"):
        return ref_mod.lm_reference(case.spec, case.data, case.kinds, case.w, case.subset)
    return ref_mod.glm_reference(case.spec, case.data, case.kinds, case.family, case.w, case.subset)


def _fitted_where_r_fails(error: str):
    """One line per R error, so that hypothesis reports each as a distinct failure."""
    msg = f"torchlm returned a fit where R fails with: {error}"
    if error.startswith("contrasts"):
        raise AssertionError(msg)
    if error.startswith("NA/NaN/Inf"):
        raise AssertionError(msg)
    if error.startswith("missing or negative weights"):
        raise AssertionError(msg)
    if error.startswith("0 (non-NA) cases"):
        raise AssertionError(msg)
    raise AssertionError(msg)


def _check_against_reference(case: Case, fit, ref: ref_mod.Reference):
    if ref.error is not None:
        _fitted_where_r_fails(ref.error)
    if not (ref.checkable and ref.clean):
        return
    labels = case.data.index[ref.rows]
    pos = ref.positive
    assert fit.nobs == int(pos.sum()), ("nobs", fit.nobs, int(pos.sum()))
    if case.family in ("lm", "gaussian"):
        assert fit.rank == ref.rank, ("rank", fit.rank, ref.rank)
        assert fit.df_residual == int(pos.sum()) - ref.rank, ("df_residual", fit.df_residual)
    got = fit.fitted()
    got = got.reindex(labels).to_numpy(dtype=float) if hasattr(got, "reindex") else np.asarray(got)
    want = ref.fitted
    known = ~np.isnan(want)
    if case.family in ("lm", "gaussian"):
        y = ref_mod.as_float(case.data["y"])[ref.rows]
        tol = 1e-8 * (np.abs(want[known]) + np.max(np.abs(y[pos]), initial=0.0))
        err = np.abs(got[known] - want[known])
        worst = np.max(err / tol, initial=0)
        assert np.all(err <= tol), f"fitted values differ from lstsq by up to {worst:.3g} tolerances"
        return
    if not ref.converged:
        return  # the reference's IRLS ran to the boundary: the MLE is at infinity
    mu = want[known]
    err = np.abs(got[known] - mu)
    assert np.all(err <= 1e-6 * np.maximum(mu, 1.0)), f"fitted mu differ from IRLS by up to {np.max(err):.3g}"


def _predict_reference(case: Case, ref: ref_mod.Reference, new: pd.DataFrame):
    """(what R's predict(fit, newdata) gives at the rows of `new`, or None where it is not unique;
    whether R raises "factor x has new levels")."""
    spec, kinds = case.spec, case.kinds
    rows = np.arange(len(new))
    miss = np.zeros(len(new), dtype=bool)
    for x in spec.exprs():
        if ref_mod.is_factor(kinds[x.col], x.op):
            m = ref_mod.missing(new[x.col])
            ok = rows[~m]
            try:
                ref_mod.factor_block(new[x.col], kinds[x.col], x.op, ref.levels[x], ok, 2)
            except LookupError:
                return None, True
        else:
            m = ref_mod.expr_values(new, kinds, x)[1]
        miss |= m
    want = np.full(len(new), np.nan)
    w = np.ones(len(ref.rows)) if case.w is None else case.w[ref.rows]
    pos = ref.positive
    if case.family in ("lm", "gaussian") and ref.rank == ref.X.shape[1] and np.any(~miss):
        y = ref_mod.as_float(case.data["y"])[ref.rows]
        sw = np.sqrt(w[pos])
        beta = ref_mod.coefficients(sw[:, None] * ref.X[pos], sw * y[pos])
        want[~miss] = ref_mod.design(spec, new, kinds, rows[~miss], ref.levels) @ beta
    for i, r in enumerate(ref.rows):  # rows of the fit: the prediction is the fitted value
        if r < len(new) and not np.isnan(ref.fitted[i]):
            want[r] = ref.fitted[i]
    return np.where(miss, np.nan, want), False


def _check_predict(case: Case, new: pd.DataFrame, predicted, ref: ref_mod.Reference):
    """predict(newdata=head of data): R's numbers where they are unique, NaN for a row with a missing
    predictor, an error for a level the fit has not seen."""
    pred, err = predicted
    if ref.error or not (ref.checkable and ref.clean) or not ref.converged or ref.rank == 0:
        return  # (R predicts 0 for every row of newdata from a rank-0 fit, missing predictors or not)
    want, new_levels = _predict_reference(case, ref, new)
    if new_levels:
        assert err is not None, "predict(newdata) returned numbers for a factor level the fit has not seen (R errors)"
        return
    if err is not None:
        return
    got = np.asarray(pred, dtype=float).reshape(len(new), -1)[:, 0]
    missing_row = np.isnan(want) & ~np.isnan(got)
    scale = 1.0
    if case.family in ("lm", "gaussian"):
        scale = np.max(np.abs(ref_mod.as_float(case.data["y"])[ref.rows][ref.positive]), initial=0.0)
    tol = (1e-8 if case.family in ("lm", "gaussian") else 1e-6) * (np.abs(want) + scale)
    both = ~np.isnan(want) & ~np.isnan(got)
    assert np.all(np.abs(got[both] - want[both]) <= tol[both]), \
        f"predict(newdata) differs from R's prediction: {got[both]} vs {want[both]}"
    assert not np.any(missing_row & _rows_with_missing(case, new)), \
        "predict(newdata) gave a number for a row with a missing predictor"


def _rows_with_missing(case: Case, new: pd.DataFrame) -> np.ndarray:
    miss = np.zeros(len(new), dtype=bool)
    for x in case.spec.exprs():
        if ref_mod.is_factor(case.kinds[x.col], x.op):
            miss |= ref_mod.missing(new[x.col])
        else:
            miss |= ref_mod.expr_values(new, case.kinds, x)[1]
    return miss


def _run(case: Case):
    note(repr(case))
    before = copy.deepcopy(case.data)
    fit, err = _fit(case)
    ref = _reference(case)
    if err is None:
        for name, m in METHODS:
            _call(name, lambda m=m: m(fit, case.data))
        new = case.data.head(5)
        kw = {} if case.family == "lm" else {"type": "response"}
        pred = _call("predict(newdata=data.head())", lambda: fit.predict(new, **kw))
    pd.testing.assert_frame_equal(case.data, before, check_dtype=True, check_exact=True)
    if err is None:
        _check_against_reference(case, fit, ref)
        _check_predict(case, new, pred, ref)
    return fit, err, ref


def _v(col: str) -> Expr:
    return Expr("v", col)


# Cases the random search found (tests/_reference.py says what R does with each); the default profile
# runs them first, then its derandomized draws.
_I = np.arange(1.0, 13.0)
_D = pd.DataFrame({"y": np.sin(1.3 * _I), "b": (_I % 3 == 0), "x": np.cos(_I) + 2.0,
                   "g": pd.Series(list("abca") * 3, dtype=object)})
_KINDS = {"y": "float", "b": "bool", "x": "float", "g": "obj_str"}
LM_EXAMPLES = [
    # a logical predictor without an intercept is R's two columns bFALSE, bTRUE
    Case(_D, _KINDS, Spec("y", [("", (_v("b"),))], intercept=False), None, "array", None, "lm"),
    # x:b with b logical and x not in the model: R's x:bFALSE and x:bTRUE
    Case(_D, _KINDS, Spec("y", [(":", (_v("x"), _v("b")))]), None, "array", None, "lm"),
    # nullable boolean: the same
    Case(_D.assign(b=pd.array(_D.b.tolist(), dtype="boolean")), {**_KINDS, "b": "boolean"},
         Spec("y", [("", (_v("b"),)), ("", (_v("x"),))], intercept=False), None, "array", None, "lm"),
    # x^2 near 1e300: vcov("HC3")
    Case(pd.DataFrame({"y": [0.07, 0.73, 0.38, 0.16, -2.44, -0.86, 0.34, -1.47, 0.74],
                       "x": [1.1e150, 8.7e149, 4.9e149, 9.5e149, 1.7e150, 2.3e149, 3.1e149, 2.0e150, 4.8e150]}),
         {"y": "float", "x": "float"}, Spec("y", [("", (Expr("I2", "x"),))]), None, "array", None, "lm"),
    # x^2 near 1e298 with y near 1e-151: the slope (1e-449) is below float64's range, an error (R gives 0)
    Case(pd.DataFrame({"y": pd.array([1.049e-151, -5.357e-151, 3.616e-151], dtype="Float64"),
                       "x": pd.array([1.2573e149, -1.3210e149, 6.4042e149], dtype="Float64")}),
         {"y": "Float64", "x": "Float64"}, Spec("y", [("", (Expr("I2", "x"),))]), None, "array", None, "lm"),
    # a saturated fit of such data (n = p): prints, as R
    Case(pd.DataFrame({"y": [6.40422650443282e-09, 1.049001171530397e-09],
                       "x": [1.257302210933933e+149, -1.3210486329130188e+149]}),
         {"y": "float", "x": "float"}, Spec("y", [("", (Expr("I2", "x"),))]), None, "array", None, "lm"),
    # a predictor column of zeros without an intercept (rank 0)
    Case(_D.assign(x=0.0), _KINDS, Spec("y", [("", (_v("x"),))], intercept=False), None, "array", None, "lm"),
    # a row with a missing predictor is NaN, a level unseen by the fit is R's error, also in such a row
    Case(_D.assign(x=[np.nan] + list(_D.x[1:]), g=pd.Series(["d"] + list(_D.g[1:]), dtype=object)), _KINDS,
         Spec("y", [("", (_v("g"),)), ("", (_v("x"),))]), None, "array", None, "lm"),
]
_P = _D.assign(y=[0.0, 2, 1, 3, 0, 1, 4, 2, 0, 1, 2, 5])
GLM_EXAMPLES = [
    Case(_P, _KINDS, Spec("y", [("", (_v("b"),))], intercept=False), None, "array", None, "poisson"),
    Case(_P.assign(x=0.0), _KINDS, Spec("y", [("", (_v("x"),))], intercept=False), None, "array", None, "poisson"),
    Case(_D.assign(x=0.0), _KINDS, Spec("y", [("", (_v("x"),))], intercept=False), None, "array", None, "gaussian"),
    Case(_P.assign(y=(_P.y > 1).astype(float), x=_D.x * 1e-150), _KINDS, Spec("y", [("", (Expr("I2", "x"),))]),
         None, "array", None, "binomial"),
]


def _with_examples(examples):
    def wrap(fn):
        for ex in reversed(examples):
            fn = example(ex)(fn)
        return fn
    return wrap


@SETTINGS
@_with_examples(LM_EXAMPLES)
@given(cases("lm"))
def test_lm_on_odd_input(case):
    _run(case)


@SETTINGS
@_with_examples(GLM_EXAMPLES)
@given(st.sampled_from(["gaussian", "binomial", "poisson"]).flatmap(cases))
def test_glm_on_odd_input(case):
    _run(case)


def test_reference_reproduces_r_coding_rules():
    """Guard for the reference: R's coding of a small hand example (checked in R 4.2.2).

    lm(y ~ 0 + b) with b logical has columns bFALSE, bTRUE (rank 2), y ~ x:g has x:ga, x:gb, x:gc
    (indicators: x is not in the model), y ~ x + x:g has x:gb, x:gc (contrasts).
    """
    d = pd.DataFrame({"y": np.arange(9.0) ** 1.5, "x": np.linspace(1, 2, 9) ** 2, "b": [True, False, True] * 3,
                      "g": pd.Series(list("abcabcabc"), dtype=object)})
    kinds = {"y": "float", "x": "float", "b": "bool", "g": "obj_str"}
    r = ref_mod.lm_reference(Spec("y", [("", (Expr("v", "b"),))], intercept=False), d, kinds)
    assert r.X.shape == (9, 2) and r.rank == 2
    r = ref_mod.lm_reference(Spec("y", [(":", (Expr("v", "x"), Expr("v", "g")))]), d, kinds)
    assert r.X.shape == (9, 4)
    r = ref_mod.lm_reference(Spec("y", [("", (Expr("v", "x"),)), (":", (Expr("v", "x"), Expr("v", "g")))]), d, kinds)
    assert r.X.shape == (9, 4)
    r = ref_mod.lm_reference(Spec("y", [("", (Expr("C", "x"),))]), d.assign(x=1.0), kinds)
    assert r.error == "contrasts can be applied only to factors with 2 or more levels"
    # the fitted values are lstsq's on a full-rank design
    r = ref_mod.lm_reference(Spec("y", [("*", (Expr("v", "x"), Expr("v", "g")))]), d, kinds)
    X = np.column_stack([np.ones(9), d.x, d.g == "b", d.g == "c", d.x * (d.g == "b"), d.x * (d.g == "c")]).astype(float)
    np.testing.assert_allclose(r.fitted, X @ np.linalg.lstsq(X, d.y.to_numpy(), rcond=None)[0], rtol=1e-12)
    assert r.rank == 6 and r.clean


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_reference_irls_is_the_mle(family):
    """Guard for the reference IRLS: the score X'(y - mu) is zero at its answer."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(30)
    y = (rng.random(30) < 1 / (1 + np.exp(-x))).astype(float) if family == "binomial" else rng.poisson(np.exp(x))
    d = pd.DataFrame({"y": y.astype(float), "x": x})
    r = ref_mod.glm_reference(Spec("y", [("", (Expr("v", "x"),))]), d, {"y": "float", "x": "float"}, family)
    X = np.column_stack([np.ones(30), x])
    assert r.converged
    np.testing.assert_allclose(X.T @ (y - r.fitted), 0, atol=1e-10)
