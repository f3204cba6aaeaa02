"""Formulas: parsing, R's spellings formulaic does not share, and formulaic's errors as the package's."""

from __future__ import annotations

import re
import warnings

import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FactorEvaluationError, FormulaicError, FormulaSyntaxError
from formulaic.model_matrix import ModelMatrices

from torchlm.errors import DataError, FormulaError, UnknownVariableError
from torchlm.frame.data import columns_text


def r_powers_in_I(formula: str) -> str:
    """Rewrite ``^`` inside ``I(...)`` as ``**``: R's I(x^2) is a power, Python's ^ is bitwise XOR.

    Outside I(), ``^`` keeps formula meaning ((a + b)^2: interactions up to order 2), as in R.

    Parameters
    ----------
    formula : str
        A formula as the user wrote it.

    Returns
    -------
    str
        The same formula with every ``^`` inside an ``I(...)`` written ``**``.
    """
    out: list[str] = []
    depth_stack: list[bool] = []  # per open parenthesis: whether it is inside an I(...)
    i = 0
    while i < len(formula):
        ch = formula[i]
        if ch == "(":
            is_I = i > 0 and formula[i - 1] == "I" and (
                i < 2 or not (formula[i - 2].isalnum() or formula[i - 2] in "._")
            )
            depth_stack.append(is_I or (depth_stack[-1] if depth_stack else False))
        elif ch == ")" and depth_stack:
            depth_stack.pop()
        if ch == "^" and depth_stack and depth_stack[-1]:
            out.append("**")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_formula(formula: str) -> Formula:
    """Parse a two-sided formula with formulaic; a syntax error becomes a FormulaError naming the formula.

    Parameters
    ----------
    formula : str
        A formula with a response, e.g. ``"y ~ x + C(g)"``.

    Returns
    -------
    formulaic.Formula
        The parsed formula.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x', not {type(formula).__name__}")
    if "~" in formula and not formula.split("~", 1)[1].strip():
        raise FormulaError(f"formula {formula!r} has nothing after '~': write 'y ~ 1' for an intercept-only model")
    try:
        f = Formula(formula)
    except FormulaSyntaxError as e:
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}") from None
    except FormulaicError as e:
        if "`.` operator" in str(e):
            raise FormulaError(f"formula {formula!r}: '.' (all other columns) is not supported yet; "
                               "list the variables, e.g. 'y ~ x1 + x2'") from None
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}") from None
    if not hasattr(f, "lhs") or len(f.lhs) == 0:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'y ~ x'")
    return f


def materialize(formula: str, frame: pd.DataFrame, na_action: str) -> ModelMatrices:
    """formulaic's model matrices of ``formula`` on ``frame``, its errors raised as the package's.

    Parameters
    ----------
    formula : str
        A parsed-clean formula (see :func:`parse_formula`, :func:`r_powers_in_I`).
    frame : pandas.DataFrame
        The rows to build on, indexed 0..n-1 so that formulaic's kept index gives positions.
    na_action : str
        formulaic's: "drop" (rows with a missing value in an evaluated term) or "raise".

    Returns
    -------
    formulaic.model_matrix.ModelMatrices
        ``lhs`` (the response) and ``rhs`` (the design), with their ``model_spec``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return model_matrix(formula, frame, na_action=na_action)
    except FactorEvaluationError as e:
        m = re.search(r"`([^`]+)` is not present", str(e))
        if m:
            raise UnknownVariableError(
                f"formula {formula!r} uses {m.group(1)!r}, which is not a column of data "
                f"(columns: {columns_text(frame)})"
            ) from None
        raise FormulaError(f"cannot evaluate a term of {formula!r}: {e}") from None
    except ValueError as e:
        if "missing" in str(e).lower() or "null" in str(e).lower() or "nan" in str(e).lower():
            raise DataError(f"missing values in the variables of {formula!r} and na_action='fail'") from None
        raise
    except TypeError as e:
        # e.g. a datetime column multiplied into a model column: name the columns that cannot enter
        odd = [c for c in _formula_variables(formula) if c in frame.columns
               and (pd.api.types.is_datetime64_any_dtype(frame[c]) or pd.api.types.is_timedelta64_dtype(frame[c]))]
        if odd:
            raise DataError(
                f"column(s) {', '.join(map(repr, odd))} hold dates or times, which a formula cannot use as they are: "
                "convert them to numbers first (for example days since a date)"
            ) from None
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {e}") from None
    except FormulaicError as e:
        # formulaic's own errors (a '.' it cannot expand, an invalid materializer...): the package's, with its message
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    """The first line of an error message, without the terminal colour codes formulaic adds."""
    text = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _formula_variables(formula: str) -> list[str]:
    try:
        return sorted(Formula(formula).required_variables)
    except Exception:  # only used to word an error message
        return []
