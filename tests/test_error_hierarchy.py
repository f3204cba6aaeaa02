"""One error hierarchy: every user error (bad input, bad request) is a tl.TorchlmError, never a traceback from torch,
formulaic or numpy, and each message names the problem."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl

PKG = pathlib.Path(tl.__file__).parent


@pytest.fixture(scope="module")
def mt():
    return tl.datasets.load("mtcars")


@pytest.fixture(scope="module")
def fits(mt):
    return {"lm": tl.lm("mpg ~ wt + hp", mt), "glm": tl.glm("am ~ wt", mt, family="binomial")}


def test_hierarchy():
    for cls in (tl.ModelInputError, tl.FormulaError, tl.UnknownVariableError, tl.DataError, tl.OptionError,
                tl.FitError, tl.NotAtMinimumError):
        assert issubclass(cls, tl.TorchlmError)
    assert issubclass(tl.TorchlmError, ValueError)
    assert issubclass(tl.OptionError, tl.ModelInputError)
    assert issubclass(tl.OptimumWarning, tl.TorchlmWarning) and issubclass(tl.SingularHessianWarning, tl.TorchlmWarning)


BAD_CALLS = {
    # formulas: formulaic's own errors rewrapped
    "dot without columns": (lambda mt, f: tl.lm("log(mpg) ~ .", mt[["mpg"]]), "'.'"),
    "syntax": (lambda mt, f: tl.lm("mpg ~ wt +", mt), "mpg ~ wt +"),
    "unknown column": (lambda mt, f: tl.lm("mpg ~ nope", mt), "nope"),
    "not a formula": (lambda mt, f: tl.lm(3, mt), "formula"),
    # requests on a fit
    "vcov type": (lambda mt, f: f["lm"].vcov("HC9"), "HC9"),
    "glm vcov type": (lambda mt, f: f["glm"].vcov("HC9"), "HC9"),
    "residual type": (lambda mt, f: f["lm"].residuals("nope"), "nope"),
    "glm residual type": (lambda mt, f: f["glm"].residuals("nope"), "nope"),
    "predict type": (lambda mt, f: f["glm"].predict(type="nope"), "nope"),
    "interval": (lambda mt, f: f["lm"].predict(mt, interval="nope"), "nope"),
    "cluster column": (lambda mt, f: f["lm"].vcov(cluster="nope"), "nope"),
    "cluster with const": (lambda mt, f: f["lm"].vcov("const", cluster="cyl"), "cluster"),
    "vcov matrix shape": (lambda mt, f: f["lm"].summary(vcov=np.eye(2)), "vcov"),
    "anova nothing": (lambda mt, f: tl.anova(), "model"),
    "anova test": (lambda mt, f: tl.anova(f["lm"], test="nope"), "nope"),
    "drop1 test": (lambda mt, f: tl.drop1(f["lm"], test="nope"), "nope"),
    "profile parm": (lambda mt, f: f["glm"].confint(method="nope"), "nope"),
    "rstandard type": (lambda mt, f: f["lm"].rstandard(type="nope"), "nope"),
    # fit options
    "device": (lambda mt, f: tl.lm("mpg ~ wt", mt, device="nodevice"), "nodevice"),
    "dtype": (lambda mt, f: tl.lm("mpg ~ wt", mt, dtype=torch.int32), "dtype"),
    "family": (lambda mt, f: tl.glm("am ~ wt", mt, family="nope"), "nope"),
    "link": (lambda mt, f: tl.glm("am ~ wt", mt, family=tl.families.Binomial(link="nope")), "nope"),
    "na_action": (lambda mt, f: tl.lm("mpg ~ wt", mt, na_action="nope"), "nope"),
    "weights column": (lambda mt, f: tl.lm("mpg ~ wt", mt, weights="nope"), "nope"),
    "negative weights": (lambda mt, f: tl.lm("mpg ~ wt", mt, weights=-np.ones(32)), "negative"),
    "glm control": (lambda mt, f: tl.glm("am ~ wt", mt, family="binomial", control={"nope": 1}), "nope"),
    "glm response": (lambda mt, f: tl.glm("mpg ~ wt", mt, family="binomial"), "0 <= y <= 1"),
    # newdata
    "newdata column": (lambda mt, f: f["lm"].predict(pd.DataFrame({"wt": [1.0]})), "hp"),
    "offset length": (lambda mt, f: tl.lm("mpg ~ wt", mt, offset="hp").predict(mt.head(3), offset=[1.0]), "offset"),
    # the general engines
    "mle start": (lambda mt, f: tl.mle(lambda p: p["a"] ** 2, start={}), "start"),
    "sandwich bread": (lambda mt, f: tl.sandwich_cov(torch.ones(2, 3), torch.ones(4, 2)), "bread"),
    "sandwich type": (lambda mt, f: tl.sandwich_cov(torch.eye(2), torch.ones(4, 2), type="HC9"), "HC9"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_user_errors_are_torchlm_errors(case, mt, fits):
    call, fragment = BAD_CALLS[case]
    with pytest.raises(tl.TorchlmError) as info:
        call(mt, fits)
    assert fragment.lower() in str(info.value).lower(), str(info.value)


def test_lm_predict_offset_length_is_checked(mt):
    # R's predict.lm: an offset of the wrong length is an error, not recycled over the rows
    fit = tl.lm("mpg ~ wt", mt, offset=mt["hp"].to_numpy() / 100)
    with pytest.raises(tl.DataError, match="offset has 1 values for 3 rows"):
        fit.predict(mt.head(3), offset=[1.0])
    ok = fit.predict(mt.head(3), offset=[1.0, 2.0, 3.0])
    assert np.allclose(ok.to_numpy() - fit.predict(mt.head(3), offset=[0.0, 0.0, 0.0]).to_numpy(), [1, 2, 3])


def _raised_names(tree: ast.AST) -> list[tuple[str, int]]:
    """(exception class name, line) of every raise statement."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                out.append((exc.id, node.lineno))
    return out


def test_no_bare_builtin_errors_in_the_package():
    """Every raise in torchlm/ is one of the package's errors (NotImplementedError for abstract methods aside)."""
    allowed = {n for n in dir(tl.errors) if isinstance(getattr(tl.errors, n), type)
               and issubclass(getattr(tl.errors, n), tl.TorchlmError)} | {"NotImplementedError"}
    bad = []
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        lines = text.splitlines()
        for name, line in _raised_names(ast.parse(text)):
            # `raise e` re-raises a caught error; "# internal" marks a broken invariant (a bug, not user input)
            internal = any("# internal" in lines[i] for i in range(line - 1, min(line + 2, len(lines))))
            if name not in allowed and not name.islower() and not internal:
                bad.append(f"{path.relative_to(PKG)}:{line} raises {name}")
    assert not bad, "\n".join(bad)
