"""The bundled datasets against R's own (fixtures/r_datasets/make_r_datasets.R, R 4.2.2 and MASS): dimensions,
column types, factor levels (ordered or not) and counts, NA counts, means and a row-order check of every column,
R's row names as the index; fits labelled by those row names as R labels them; fresh copies; clear errors."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl

R = json.loads((FIXTURES / "r_datasets" / "r_datasets.json").read_text(encoding="utf-8"))
SETS = {d["name"]: d for d in R["datasets"]}
FITS = {f["id"]: f for f in R["fits"]}
ROOT = FIXTURES.parents[1]
RTOL = 1e-9


def test_the_bundled_datasets_are_rs():
    assert R["r_version"].startswith("R version 4.2.2")
    assert tl.datasets.names() == sorted(SETS)
    assert tl.datasets.available() == tl.datasets.names()


def test_catalog_lists_package_title_and_size_like_r_data():
    cat = tl.datasets.catalog()
    assert sorted(cat.index) == sorted(SETS)
    assert list(cat.columns) == ["package", "title", "rows", "columns", "row_names"]
    for name, r in SETS.items():
        assert cat.loc[name, "package"] == r["package"]
        assert (cat.loc[name, "rows"], cat.loc[name, "columns"]) == (r["nrow"], r["ncol"])
        assert cat.loc[name, "row_names"] == (r["row_names"] is not None)
    assert cat.loc["mtcars", "title"] == "Motor Trend Car Road Tests"
    assert cat.loc["Boston", "title"] == "Housing Values in Suburbs of Boston"
    # R's data() order: the datasets package first, then by name ignoring case
    assert list(cat.index[:3]) == ["airquality", "anscombe", "attitude"]
    assert list(dict.fromkeys(cat["package"])) == ["datasets", "MASS"] and cat.loc["Aids2", "package"] == "MASS"
    cat.loc["mtcars", "title"] = "changed"
    assert tl.datasets.catalog().loc["mtcars", "title"] == "Motor Trend Car Road Tests"


def check_column(col: pd.Series, r: dict, name: str) -> None:
    assert int(col.isna().sum()) == r["na"], name
    if r["class"] in ("factor", "ordered"):
        assert isinstance(col.dtype, pd.CategoricalDtype), name
        assert list(col.cat.categories) == r["levels"], name
        assert col.cat.ordered == (r["class"] == "ordered"), name
        assert list(col.value_counts(sort=False)) == r["counts"], name
        codes = col.cat.codes.to_numpy() + 1.0  # R's codes are 1-based; NA is code -1 here, 0 in the sum
        codes[col.isna().to_numpy()] = 0
        np.testing.assert_allclose(codes @ np.arange(1, len(col) + 1), r["wsum"], rtol=RTOL, err_msg=name)
        return
    values = col.to_numpy(dtype=float)
    if r["class"] == "integer":
        assert col.dtype == (np.int64 if r["na"] == 0 else np.float64), name
    elif r["class"] == "numeric":
        whole = r["na"] == 0 and bool(np.all(values == np.round(values)))
        assert col.dtype == (np.int64 if whole else np.float64), name
    else:
        assert col.dtype == bool, name
    ok = ~np.isnan(values)
    np.testing.assert_allclose(values[ok].mean(), r["mean"], rtol=RTOL, err_msg=name)
    assert (values[ok].min(), values[ok].max()) == (r["min"], r["max"]), name
    np.testing.assert_allclose(values[ok] @ np.arange(1, len(col) + 1)[ok], r["wsum"], rtol=RTOL, err_msg=name)


@pytest.mark.parametrize("name", sorted(SETS))
def test_dataset_matches_r(name):
    r = SETS[name]
    df = tl.datasets.load(name)
    assert df.shape == (r["nrow"], r["ncol"])
    assert list(df.columns) == list(r["names"])
    if r["row_names"] is None:
        assert isinstance(df.index, pd.RangeIndex) and df.index.equals(pd.RangeIndex(r["nrow"]))
    else:
        assert list(df.index) == r["row_names"] and df.index.name is None
    for rname, col in zip(r["names"], df.columns):
        check_column(df[col], r["columns"][rname], f"{name}${rname}")
    levels = tl.datasets.factor_levels(name)
    assert levels == {c: s["levels"] for c, s in r["columns"].items() if "levels" in s}


def test_row_names_and_factor_kinds_where_tutorials_meet_them():
    mt = tl.datasets.load("mtcars")
    assert mt.index[0] == "Mazda RX4" and mt.loc["Fiat 128", "mpg"] == 32.4
    assert tl.datasets.load("USArrests").index[0] == "Alabama"
    assert tl.datasets.load("birthwt").index[0] == "85"  # R's row names are character: "85", not 85
    assert not tl.datasets.load("warpbreaks")["tension"].cat.ordered
    assert tl.datasets.load("esoph")["agegp"].cat.ordered
    assert list(tl.datasets.load("npk")["N"].cat.categories) == ["0", "1"]  # R's labels, not numbers
    cars93 = tl.datasets.load("Cars93")
    assert cars93["Rear.seat.room"].isna().sum() == 2 and cars93["Luggage.room"].dtype == np.float64
    titanic = tl.datasets.load("Titanic")
    assert titanic["Freq"].sum() == 2201 and list(titanic.columns) == ["Class", "Sex", "Age", "Survived", "Freq"]


@pytest.mark.parametrize("key", sorted(FITS))
def test_fits_are_labelled_by_the_data_row_names_as_in_r(key):
    r = FITS[key]
    df = tl.datasets.load(key)
    fit = tl.lm(r["formula"], data=df)
    # R's automatic row names are 1-based positions; here they are the RangeIndex's 0-based ones
    labels = [int(n) - 1 for n in r["names"]] if isinstance(df.index, pd.RangeIndex) else r["names"]
    for got, want in ((fit.fitted(), r["fitted"]), (fit.residuals(), r["residuals"]),
                      (fit.cooks_distance(), r["cooks"])):
        assert list(got.index) == labels
        np.testing.assert_allclose(got.to_numpy(), want, rtol=RTOL)
    influential = fit.influence_measures().influential.index
    want = [int(n) - 1 for n in r["influential"]] if isinstance(df.index, pd.RangeIndex) else r["influential"]
    assert list(influential) == want


def test_load_returns_a_fresh_copy():
    a, b = tl.datasets.load("warpbreaks"), tl.datasets.load("warpbreaks")
    assert a is not b and a.equals(b)
    a.loc[0, "breaks"] = -1
    a["tension"] = a["tension"].cat.rename_categories(["x", "y", "z"])
    a["new"] = 1.0
    c = tl.datasets.load("warpbreaks")
    assert c.loc[0, "breaks"] == 26 and list(c["tension"].cat.categories) == ["L", "M", "H"]
    assert "new" not in c.columns
    mt = tl.datasets.load("mtcars")
    mt.index = range(32)
    mt.iloc[0, 0] = 0.0
    again = tl.datasets.load("mtcars")
    assert again.index[0] == "Mazda RX4" and again.iloc[0, 0] == 21.0
    assert not np.shares_memory(again["mpg"].to_numpy(), tl.datasets.load("mtcars")["mpg"].to_numpy())


@pytest.mark.parametrize(("name", "hint"), [("mtcar", "did you mean 'mtcars'"), ("titanic", "did you mean 'Titanic'"),
                                            ("boston", "'Boston'")])
def test_unknown_names_suggest_close_matches(name, hint):
    with pytest.raises(tl.OptionError, match=hint):
        tl.datasets.load(name)
    with pytest.raises(tl.OptionError, match=hint):
        tl.datasets.factor_levels(name)


def test_unknown_names_without_a_match_list_the_datasets():
    with pytest.raises(tl.OptionError, match="the bundled datasets are: .*mtcars"):
        tl.datasets.load("qwertyuiop")
    with pytest.raises(tl.OptionError, match="named by a string such as 'mtcars'"):
        tl.datasets.load(3)


def test_every_data_file_is_indexed_and_packaged():
    files = {p.name for p in resources.files("torchlm.datasets").joinpath("data").iterdir()}
    assert {f[:-4] for f in files if not f.startswith("_")} == set(SETS)
    assert {"_datasets.csv", "_columns.csv", "_factor_levels.csv"} <= files and all(f.endswith(".csv") for f in files)
    # the wheel ships them (tomllib is Python 3.11+: the line itself)
    assert '"torchlm.datasets" = ["data/*.csv"]' in (ROOT / "pyproject.toml").read_text().splitlines()


def test_logical_and_character_columns_keep_r_types():
    # no bundled dataset has them today; make_datasets.R writes R's logicals as TRUE/FALSE, characters quoted
    from torchlm.datasets import _column

    flags = _column(pd.Series(["TRUE", "FALSE", "TRUE"], name="f"), "logical", [])
    assert flags.dtype == bool and list(flags) == [True, False, True]
    with_na = _column(pd.Series(["TRUE", None, "FALSE"], name="f"), "logical", [])
    assert with_na.dtype == "boolean" and with_na.isna().tolist() == [False, True, False]
    text = _column(pd.Series(["a", None], name="s"), "character", [])
    assert text.iloc[0] == "a" and text.isna().tolist() == [False, True]
    with pytest.raises(tl.OptionError, match="unknown R type 'complex'"):
        _column(pd.Series(["1+2i"], name="z"), "complex", [])
