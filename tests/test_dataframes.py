"""Data frames of any kind as data and newdata: pandas, polars (eager and lazy), pyarrow Tables, pandas' nullable and
Arrow dtypes give the pandas fit bit for bit, and the pandas fit is R's.

Reference: tests/fixtures/dataframes/dataframes.json and data.csv, written by make_dataframes.R (R 4.2.2): mtcars with
missing values in a number (hp), a logical (b) and a text column (s), a factor whose levels are not alphabetical (f),
and weights (w).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from _support import FIXTURES, read_exact_csv

import torchlm as tl
from torchlm.errors import silenced
from torchlm.frame.data import as_frame

DIR = FIXTURES / "dataframes"
R = json.loads((DIR / "dataframes.json").read_text())
LEVELS = ["four", "six", "eight"]
KINDS = ["polars", "polars_lazy", "polars_nan", "arrow", "pandas_nullable", "pandas_arrow"]


def pandas_data() -> pd.DataFrame:
    """The fixture's table as pandas with numpy dtypes (the reference), a factor, and a nullable logical."""
    d = read_exact_csv(DIR / "data.csv")
    d["f"] = pd.Categorical(d["f"], categories=LEVELS)
    d["b"] = pd.array([None if pd.isna(v) else bool(v) for v in d["b"]], dtype="boolean")
    d["s"] = d["s"].astype(object)
    return d


def _values(col: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in col.astype(object)]


def polars_data(d: pd.DataFrame, nan: bool = False) -> pl.DataFrame:
    """The table as polars: nulls for R's NA (NaN instead in hp's float column with nan=True), f an Enum."""
    hp = pl.Series("hp", d["hp"].to_numpy(), dtype=pl.Float64) if nan else pl.Series(
        "hp", [None if pd.isna(v) else int(v) for v in d["hp"]], dtype=pl.Int64)
    cols = [pl.Series(c, d[c].to_numpy()) for c in ("mpg", "wt")] + [hp]
    cols += [pl.Series(c, d[c].to_numpy()) for c in ("disp", "cyl", "carb", "qsec")]
    cols += [pl.Series("f", _values(d["f"]), dtype=pl.Enum(LEVELS)), pl.Series("b", _values(d["b"]), dtype=pl.Boolean),
             pl.Series("s", _values(d["s"]), dtype=pl.String), pl.Series("w", d["w"].to_numpy())]
    return pl.DataFrame(cols)


def arrow_data(d: pd.DataFrame) -> pa.Table:
    """The table as pyarrow, in two chunks whose dictionaries for f list the levels in different orders."""
    half = len(d) // 2

    def batch(part: pd.DataFrame, levels: list[str]) -> pa.RecordBatch:
        f = pa.DictionaryArray.from_arrays(pa.array([levels.index(v) for v in part["f"]], pa.int8()), pa.array(levels))
        cols = {c: pa.array(_values(part[c]), pa.float64()) for c in ("mpg", "wt")}
        cols["hp"] = pa.array(_values(part["hp"]), pa.int64())
        cols.update({c: pa.array(part[c].to_numpy()) for c in ("disp", "cyl", "carb", "qsec")})
        cols.update(f=f, b=pa.array(_values(part["b"]), pa.bool_()), s=pa.array(_values(part["s"]), pa.string()),
                    w=pa.array(part["w"].to_numpy()))
        return pa.RecordBatch.from_pydict(cols)

    # unified, the dictionary lists the first chunk's levels, then the second's new ones: R's order here
    return pa.Table.from_batches([batch(d.iloc[:half], LEVELS), batch(d.iloc[half:], ["six", "four", "eight"])])


def pandas_kind(d: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The table as pandas with nullable dtypes or with every column Arrow-backed."""
    if kind == "pandas_nullable":
        out = d.astype({"hp": "Int64", "cyl": "Int64", "carb": "Int64", "mpg": "Float64", "wt": "Float64",
                        "w": "Float64", "s": "string"})
        out["b"] = d["b"]  # already nullable boolean
        return out
    out = pd.DataFrame(index=d.index)
    for c in d.columns:
        if c == "f":
            arr = pa.DictionaryArray.from_arrays(pa.array(d["f"].cat.codes.to_numpy(), pa.int8()), pa.array(LEVELS))
            out[c] = pd.Series(pd.arrays.ArrowExtensionArray(arr), index=d.index)
        elif c == "s":
            out[c] = d[c].astype("string[pyarrow]")
        else:
            typ = {"b": pa.bool_(), "hp": pa.int64(), "cyl": pa.int64(), "carb": pa.int64()}.get(c, pa.float64())
            out[c] = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(_values(d[c]), typ)), index=d.index)
    return out


def make(kind: str, d: pd.DataFrame):
    if kind == "pandas":
        return d
    if kind.startswith("polars"):
        p = polars_data(d, nan=kind == "polars_nan")
        return p.lazy() if kind == "polars_lazy" else p
    if kind == "arrow":
        return arrow_data(d)
    return pandas_kind(d, kind)


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return pandas_data()


FITS = {
    "lm": lambda data: tl.lm("mpg ~ wt + hp + f + b + s", data, weights="w", subset="disp > 80", names="R"),
    "glm_offset": lambda data: tl.glm("carb ~ wt + f", data, family="poisson", offset="log(hp)", names="R"),
    "glm_logical": lambda data: tl.glm("b ~ wt + hp", data, family="binomial", names="R"),
}


def same_fit(a, b) -> None:
    """Two fits equal bit for bit: coefficients, covariance, and the printed summary."""
    assert list(a.coef().index) == list(b.coef().index)
    assert np.array_equal(a.coef().to_numpy(), b.coef().to_numpy(), equal_nan=True)
    assert np.array_equal(a.vcov().to_numpy(), b.vcov().to_numpy(), equal_nan=True)
    assert str(a.summary()) == str(b.summary())


@pytest.mark.parametrize("case", sorted(FITS))
def test_pandas_fit_is_r(base, case):
    fit, r = FITS[case](base), R[case]
    assert list(fit.coef().index) == r["names"]
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(fit.vcov().to_numpy().ravel(order="F"), r["vcov"], rtol=1e-9, atol=1e-15)
    assert fit.nobs == r["nobs"]
    lines = str(fit.summary()).split("\n")
    assert lines[lines.index("", 1):] == r["summary_after_call"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(FITS))
def test_every_kind_gives_the_pandas_fit(base, kind, case):
    fit = FITS[case](make(kind, base))
    same_fit(fit, FITS[case](base))
    assert isinstance(fit.residuals(), pd.Series) and fit.residuals().index.equals(FITS[case](base).residuals().index)


@pytest.mark.parametrize("kind", ["pandas"] + KINDS)
def test_predict_newdata_of_every_kind(base, kind):
    """predict(newdata) from any kind of table, whichever kind the fit came from: R's predictions and SEs."""
    new = make(kind, base.iloc[:8].reset_index(drop=True))  # a LazyFrame is collected
    for case, fitted_from in (("lm", "arrow"), ("glm_offset", "polars")):
        fit = FITS[case](make(fitted_from, base))
        p = fit.predict(new, se_fit=True) if case == "lm" else fit.predict(new, type="response", se_fit=True)
        ref = FITS[case](base).predict(base.iloc[:8], se_fit=True, **({} if case == "lm" else {"type": "response"}))
        assert np.array_equal(p.to_numpy(), ref.to_numpy(), equal_nan=True)
        assert p.index.equals(pd.RangeIndex(8))
        r = R[case]
        np.testing.assert_allclose(p["fit"].to_numpy(dtype=float), np.array(r["predict"], dtype=float), rtol=1e-9)
        np.testing.assert_allclose(p["se_fit"].to_numpy(dtype=float), np.array(r["se_fit"], dtype=float), rtol=1e-9)


@pytest.mark.parametrize("kind", ["polars", "arrow", "pandas_nullable"])
def test_augment_newdata(base, kind):
    """broom's augment(newdata) reads any kind of table too: the pandas newdata's frame, bit for bit."""
    fit = FITS["lm"](base)
    rows = base.iloc[:8].reset_index(drop=True)
    got, ref = fit.augment(make(kind, rows)), fit.augment(rows)
    assert list(got.columns) == list(ref.columns)
    assert np.array_equal(got[".fitted"].to_numpy(dtype=float), ref[".fitted"].to_numpy(dtype=float), equal_nan=True)


@pytest.mark.parametrize("kind", ["polars", "arrow", "pandas_arrow"])
def test_other_fitters(base, kind):
    """nls, aov, glm_nb, update and step on any kind of table: the pandas fit bit for bit (nls and aov: R's)."""
    data = make(kind, base)
    start = {"a": 40, "k": -0.3}
    n1 = tl.nls("mpg ~ a * exp(k * wt)", data, start=start, weights="w", subset="!is.na(b)")
    n0 = tl.nls("mpg ~ a * exp(k * wt)", base, start=start, weights="w", subset="!is.na(b)")
    assert np.array_equal(n1.coef(), n0.coef()) and str(n1.summary()) == str(n0.summary())
    np.testing.assert_allclose(n0.coef().to_numpy(), R["nls"]["coef"], rtol=1e-12)
    np.testing.assert_allclose(n0.vcov().to_numpy().ravel(order="F"), R["nls"]["vcov"], rtol=1e-10)
    new = make(kind, base.iloc[:8].reset_index(drop=True))
    np.testing.assert_allclose(n1.predict(new), R["nls"]["predict"], rtol=1e-9)
    a1 = tl.aov("mpg ~ f + s", data)
    assert str(a1.summary()) == str(tl.aov("mpg ~ f + s", base).summary())
    assert str(a1.summary()).split("\n") == R["aov"]["summary"]
    with silenced():  # theta's iteration limit, as MASS warns, for either table
        same_fit(tl.glm_nb("carb ~ f + wt", data), tl.glm_nb("carb ~ f + wt", base))
    full1, full0 = tl.lm("mpg ~ wt + hp + qsec + f", data), tl.lm("mpg ~ wt + hp + qsec + f", base)
    same_fit(tl.update(full1, ". ~ . - qsec"), tl.update(full0, ". ~ . - qsec"))
    same_fit(tl.step(full1, trace=0), tl.step(full0, trace=0))


def test_row_names(base):
    """A table without row labels gets R's automatic row names; a pandas frame keeps its index."""
    fit = tl.lm("mpg ~ wt", polars_data(base))
    assert fit.fitted().index.equals(pd.RangeIndex(32))
    labelled = base.set_index(pd.Index([f"car{i}" for i in range(32)]))
    assert list(tl.lm("mpg ~ wt", pandas_kind(labelled, "pandas_nullable")).fitted().index[:2]) == ["car0", "car1"]


def test_user_data_unmodified(base):
    p = polars_data(base)
    p_copy = p.clone()
    n = pandas_kind(base, "pandas_nullable")
    n_copy, dtypes = n.copy(deep=True), n.dtypes.copy()
    for data in (p, n):
        fit = FITS["lm"](data)
        fit.predict(data)
    assert p.equals(p_copy)
    assert n.equals(n_copy) and n.dtypes.equals(dtypes)


def test_polars_nan_is_r_na(base):
    """NaN in a polars float column is missing, as in R (is.na(NaN)): the row is dropped and counted."""
    fit = tl.lm("mpg ~ hp", polars_data(base, nan=True))
    assert fit.nobs == 30 and fit.n_dropped_na == 2
    assert "(2 observations deleted due to missingness)" in str(fit.summary())


def test_factor_levels_by_kind():
    """Enum: its declared order (unused ones dropped by the fit); Categorical: sorted, as R's factor(); an Arrow
    dictionary: its order; a polars Boolean: R's logical, both levels kept."""
    y = [1.0, 2.0, 4.0, 3.0, 7.0, 5.0]
    g = ["z", "a", "m", "z", "a", "m"]
    enum = pl.DataFrame({"y": y, "g": pl.Series(g, dtype=pl.Enum(["z", "q", "m", "a"]))})
    assert list(tl.lm("y ~ g", enum, names="R").coef().index) == ["(Intercept)", "gm", "ga"]
    cat = pl.DataFrame({"y": y, "g": pl.Series(g, dtype=pl.Categorical)})
    assert list(tl.lm("y ~ g", cat, names="R").coef().index) == ["(Intercept)", "gm", "gz"]
    dictionary = pa.table({"y": y, "g": pa.array(g).dictionary_encode()})  # dictionary z, a, m: first appearance
    assert list(tl.lm("y ~ g", dictionary, names="R").coef().index) == ["(Intercept)", "ga", "gm"]
    assert as_frame(dictionary)["g"].cat.categories.tolist() == ["z", "a", "m"]
    # a null in any kind of factor is R's NA: the row is dropped, the others keep their levels
    g_na = ["z", "a", None, "z", "m", "m"]
    for table in (pl.DataFrame({"y": y, "g": pl.Series(g_na, dtype=pl.Enum(["z", "q", "m", "a"]))}),
                  pl.DataFrame({"y": y, "g": pl.Series(g_na, dtype=pl.Categorical)}),
                  pa.table({"y": y, "g": pa.array(g_na).dictionary_encode()})):
        column = as_frame(table)["g"]
        assert column.isna().tolist() == [False, False, True, False, False, False]
        assert column.astype(object).tolist()[:2] == ["z", "a"] and column.iloc[4] == "m"
        assert tl.lm("y ~ g", table).nobs == 5
    logical = pl.DataFrame({"y": y, "b": [True, True, True, True, True, True]})
    assert list(tl.lm("y ~ b", logical, names="R").coef().index) == ["(Intercept)", "bTRUE"]


def test_converted_column_types(base):
    """Each column as the pipeline reads it: int64 whole numbers, float64 with NaN, text, factors, logicals."""
    for kind in ("polars", "arrow", "pandas_nullable", "pandas_arrow"):
        frame = as_frame(make(kind, base))
        assert frame["cyl"].dtype == np.int64, kind
        assert frame["hp"].dtype == np.float64 and int(frame["hp"].isna().sum()) == 2, kind
        assert frame["f"].cat.categories.tolist() == LEVELS, kind
        assert pd.api.types.is_bool_dtype(frame["b"]) and int(frame["b"].isna().sum()) == 1, kind
        # pandas' default text column, as read_csv makes it (pandas 3's "str", object before)
        assert frame["s"].dtype == pd.Series(["a"]).dtype and frame["s"].isna().sum() == 1, kind
    # whole numbers stay R's integers: factor(cyl) has levels 6 and 8, not 6.0 and 8.0
    fit = tl.lm("mpg ~ factor(cyl)", make("pandas_nullable", base), names="R")
    assert list(fit.coef().index) == ["(Intercept)", "factor(cyl)6", "factor(cyl)8"]
    mt = tl.datasets.load("mtcars")
    assert as_frame(mt) is mt  # numpy-backed pandas: the same object


def test_odd_tables():
    with pytest.raises(tl.DataError, match="data must be a data frame"):
        tl.lm("y ~ x", [[1, 2], [3, 4]])
    with pytest.raises(tl.DataError, match="more than one column named 'b'"):
        tl.lm("a ~ b", pa.table([pa.array([1.0, 2.0, 3.0])] * 3, names=["a", "b", "b"]))
    bad = pl.DataFrame({"x": ["1", "a"]}).lazy().with_columns(pl.col("x").cast(pl.Int64, strict=True).alias("y"))
    with pytest.raises(tl.DataError, match="cannot collect"):
        tl.lm("y ~ x", bad)
    nested = pl.DataFrame({"y": [1.0, 2.0, 3.0], "x": [[1], [2, 3], [4]]})
    with pytest.raises(tl.DataError, match="'x'"):
        tl.lm("y ~ x", nested)
    days = pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 1, 3), eager=True)
    dates = pl.DataFrame({"y": [1.0, 2.0, 3.0], "d": days})
    assert pd.api.types.is_datetime64_any_dtype(as_frame(dates)["d"])
