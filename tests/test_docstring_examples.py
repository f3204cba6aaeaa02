"""The docstrings' Examples sections, run as doctests, and a check that every public callable has one.

The examples assume ``import numpy as np, pandas as pd, torch, torchlm as tl`` (numpy's convention for
its own docs); the docs site's API reference says so. Output is compared with NORMALIZE_WHITESPACE and
ELLIPSIS, under pandas' default display settings (pinned: a terminal would otherwise widen them).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import torchlm as tl
from torchlm.results.aov import AovListResult, AovResult, TukeyHSDResult
from torchlm.results.negbin import NegativeBinomialResult

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8,}\n", re.M)

# result classes a public function returns without torchlm exporting the class
RETURNED = [NegativeBinomialResult, AovResult, AovListResult, TukeyHSDResult]

# callables whose function has no room left under tests/test_code_shape.py's 80-line limit for an Examples
# section (at least 5 lines); the test below fails once there is room, so the example gets written then
NO_ROOM = {"torchlm.models.infer.infer"}


def _modules() -> list:
    mods = [tl]
    for info in pkgutil.walk_packages(tl.__path__, "torchlm."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        mods.append(importlib.import_module(info.name))
    return mods


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    for mod in _modules():
        for test in finder.find(mod, mod.__name__, globs={}):
            if test.examples:
                found.setdefault(test.name, test)
    return [found[name] for name in sorted(found)]


DOCTESTS = _doctests()


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_example(test: doctest.DocTest):
    test.globs = {"np": np, "pd": pd, "torch": torch, "tl": tl}
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with pd.option_context("display.width", 80, "display.max_columns", 20, "display.max_rows", 60):
        runner.run(test, out=out.append, clear_globs=True)
    if "matplotlib.pyplot" in sys.modules:  # the plot examples' figures
        sys.modules["matplotlib.pyplot"].close("all")
    assert runner.failures == 0, "".join(out)


def _documented(cls: type, name: str):
    """The class in cls's MRO whose definition of name carries the docstring numpydoc shows, and its function."""
    for base in cls.__mro__:
        member = vars(base).get(name)
        if member is None:
            continue
        fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if getattr(fn, "__doc__", None):
            return base, fn
    return None, None


def _has_examples(obj) -> bool:
    return bool(EXAMPLES.search(inspect.getdoc(obj) or ""))


def public_callables() -> dict[str, tuple]:
    """Qualified name -> (function, classes it is reached through) of every public function and method."""
    out: dict[str, tuple] = {}
    for mod in (tl, tl.datasets, tl.families):
        names = mod.__all__ if mod is tl else [n for n in vars(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if inspect.isfunction(obj) and (mod is tl or obj.__module__ == mod.__name__):
                out[f"{obj.__module__}.{obj.__qualname__}"] = (obj, ())
    classes = [c for c in (getattr(tl, n) for n in tl.__all__) if inspect.isclass(c)
               and not issubclass(c, BaseException)] + RETURNED
    classes += [c for n, c in vars(tl.families).items() if inspect.isclass(c) and not n.startswith("_")
                and c.__module__ == tl.families.__name__]
    for cls in classes:
        for name in dir(cls):
            raw = inspect.getattr_static(cls, name)
            if name.startswith("_") or not (inspect.isfunction(raw) or isinstance(raw, (classmethod, staticmethod))):
                continue
            owner, fn = _documented(cls, name)
            if owner is None or not owner.__module__.startswith("torchlm"):
                continue
            key = f"{owner.__module__}.{owner.__qualname__}.{name}"
            out[key] = (fn, out.get(key, (None, ()))[1] + (cls,))
    return out


def _covered(fn, via: tuple, name: str) -> bool:
    # a method is covered by its own Examples, or by the Examples of the class it is reached through
    # calling it (where a module at its size limit has no room for one per method)
    if _has_examples(fn):
        return True
    return any(_has_examples(c) and f".{name}(" in EXAMPLES.split(inspect.getdoc(c) or "")[-1] for c in via)


def test_every_public_callable_has_examples():
    missing = [key for key, (fn, via) in public_callables().items()
               if key not in NO_ROOM and not _covered(fn, via, key.rsplit(".", 1)[-1])]
    assert not missing, f"{len(missing)} public callables without an Examples section:\n" + "\n".join(sorted(missing))
    assert len(public_callables()) > 100


def test_no_room_is_still_true():
    for key in NO_ROOM:
        mod, name = key.rsplit(".", 1)
        path = pathlib.Path(inspect.getfile(importlib.import_module(mod)))
        node = next(n for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.FunctionDef) and n.name == name)
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        assert size + 5 > 80, f"{key} has room for an Examples section now: add one"
