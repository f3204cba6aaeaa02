"""R's functions in formulas (log with a base, pmin/pmax, ifelse, sign, as.numeric, as.logical, is.na) and R's
dotted column names, against R (fixture from tests/fixtures/r_functions/make_r_functions.R)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.frame.formula import quote_dotted_columns

R = json.loads((FIXTURES / "r_functions" / "r_functions.json").read_text())


def r_data(name: str) -> pd.DataFrame:
    """The bundled dataset, with R's column names (Sepal.Length)."""
    return tl.datasets.load(name)


@pytest.mark.parametrize("case", sorted(R))
def test_r_functions_and_dotted_names_fit_as_r(case):
    r = R[case]
    d = r_data(r["data"])
    before = d.copy()
    fit = (tl.glm(r["formula"], d, family="binomial", names="R") if r["glm"]
           else tl.lm(r["formula"], d, names="R"))
    pd.testing.assert_frame_equal(d, before)  # the user's data is not modified
    np.testing.assert_allclose(fit.coef().to_numpy(), r["coef"], rtol=1e-9)
    np.testing.assert_allclose(fit.fitted().to_numpy(), r["fitted"], rtol=1e-9)
    np.testing.assert_allclose(fit.predict(d.head(4), type="response") if r["glm"] else fit.predict(d.head(4)),
                               r["fitted"][:4], rtol=1e-9)
    assert list(fit.names) == r["names"]


def test_dotted_names_are_quoted_only_where_they_are_columns():
    cols = ["Sepal.Length", "Petal.Width", "x"]
    assert quote_dotted_columns("Sepal.Length ~ Petal.Width + x", cols) == "`Sepal.Length` ~ `Petal.Width` + x"
    # a call, a name in quotes or backticks, and a longer name are left alone
    assert quote_dotted_columns("y ~ np.log(x) + `Sepal.Length` + C(g, levels=['Sepal.Length'])", cols) == \
        "y ~ np.log(x) + `Sepal.Length` + C(g, levels=['Sepal.Length'])"
    assert quote_dotted_columns("y ~ Sepal.Length2", cols) == "y ~ Sepal.Length2"


def test_dotted_name_that_is_not_a_column_names_the_problem():
    with pytest.raises(tl.FormulaError, match="Petal.Wide"):
        tl.lm("Sepal.Length ~ Petal.Wide", tl.datasets.load("iris"))


@pytest.mark.parametrize("formula, fragment", [("breaks ~ C(tension, poly, 1)", "how.many"),
                                               ("breaks ~ C(tension, max)", "not a contrast")])
def test_c_spellings_that_cannot_work_name_the_working_one(formula, fragment):
    with pytest.raises(tl.OptionError, match=fragment):
        tl.lm(formula, tl.datasets.load("warpbreaks"))
