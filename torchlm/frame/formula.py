"""Formulas: parsing, R's spellings formulaic does not share, and formulaic's errors as the package's."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FactorEvaluationError, FormulaicError, FormulaSyntaxError
from formulaic.formula import SimpleFormula
from formulaic.model_matrix import ModelMatrices
from formulaic.parser.types import Factor, Term

from torchlm.errors import DataError, FormulaError, TorchlmError, TorchlmWarning, UnknownVariableError
from torchlm.frame.data import columns_text, prepare_columns
from torchlm.frame.rfunctions import formula_context


def r_powers_in_I(formula: str) -> str:
    """Rewrite ``^`` inside function calls as ``**``: R's I(x^2), log(u^2), sqrt(x^3) are powers.

    Python's ``^`` is bitwise XOR, which on an integer column gives a wrong model without an error.
    Outside calls, ``^`` keeps its formula meaning ((a + b)^2: interactions up to order 2), as in R.

    Parameters
    ----------
    formula : str
        A formula as the user wrote it.

    Returns
    -------
    str
        The same formula with every ``^`` inside a call (``name(...)``) written ``**``.
    """
    return "".join("**" if ch == "^" and _inside_call(formula[:i]) else ch for i, ch in enumerate(formula))


# backquoted names and quoted strings, which the rewrites below leave alone (split keeps them at odd places)
_QUOTED = re.compile(r"(`[^`]*`|'[^']*'|\"[^\"]*\")")

# R's words that are other words in Python; outside quotes and backticks
_R_WORDS = [(re.compile(r"(?<![\w.])TRUE(?![\w.])"), "True"), (re.compile(r"(?<![\w.])FALSE(?![\w.])"), "False"),
            (re.compile(r"(?<![\w.])as\.factor\("), "factor("),
            # R's dotted function names as the Python names frame.rfunctions gives them
            (re.compile(r"(?<![\w.])as\.(numeric|integer|double)\("), "as_numeric("),
            (re.compile(r"(?<![\w.])as\.logical\("), "as_logical("), (re.compile(r"(?<![\w.])is\.na\("), "is_na("),
            # splines::ns(x, Boundary.knots = c(1, 5)): R's argument name, and the package prefix
            (re.compile(r"(?<![\w.])Boundary\.knots(?=\s*=)"), "Boundary_knots"), (re.compile(r"\bsplines::"), ""),
            # R's nesting: b %in% a is the interaction a:b alone (formulaic would add a's main effect)
            (re.compile(r"\s*%in%\s*"), ":")]


def r_spelling(formula: str) -> str:
    """R's spellings of a formula in the Python formulaic evaluates: powers in calls, TRUE/FALSE, as.factor.

    Parameters
    ----------
    formula : str
        A formula as the user wrote it.

    Returns
    -------
    str
        ``^`` inside calls as ``**`` (see :func:`r_powers_in_I`), ``TRUE``/``FALSE`` as ``True``/``False``
        and ``as.factor(x)`` as ``factor(x)``, except inside quotes and backticks.
    """
    parts = _QUOTED.split(formula)
    for k in range(0, len(parts), 2):
        for pattern, word in _R_WORDS:
            parts[k] = pattern.sub(word, parts[k])
    return r_powers_in_I("".join(parts))


def expand_dot(formula: str, columns: Iterable[Any]) -> str:
    """R's ``.`` on the right-hand side: every column of the data that the response does not use.

    ``y ~ .``, ``log(y) ~ .``, ``y ~ . - x``, ``y ~ .^2`` and ``y ~ x:.`` mean what R's terms.formula
    makes of them with a data argument: ``.`` becomes ``(a + b + ...)``, the columns in the data's
    order, the response's variables left out (and nothing else: ``. + log(x)`` keeps x). A ``.`` inside
    a call (``I(x * .5)``), a name or a number is not R's dot.

    Parameters
    ----------
    formula : str
        A formula as the user wrote it.
    columns : iterable
        The data's column names.

    Returns
    -------
    str
        The formula with each dot written out; the formula itself when it has none.
    """
    formula = quote_dotted_columns(formula, columns)
    if not isinstance(formula, str) or "~" not in formula or "." not in formula.split("~", 1)[1]:
        return formula  # parse_formula reports what is not a formula
    lhs, rhs = formula.split("~", 1)
    if _replace_dots(rhs, "") == rhs:
        return formula
    lhs_names = {c for c in map(str, columns)
                 if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w.])", lhs) or f"`{c}`" in lhs}
    names = [c if c.isidentifier() else f"`{c}`" for c in map(str, columns) if c not in lhs_names]
    if not names:
        raise FormulaError(f"formula {formula!r}: '.' stands for the columns the response does not use, "
                           "and the data has none")
    return lhs + "~" + _replace_dots(rhs, "(" + " + ".join(names) + ")")


def quote_dotted_columns(formula: Any, columns: Iterable[Any]) -> Any:
    """R's dotted names of the data's columns (``Sepal.Length``) backquoted, so that Python reads them as names.

    Only names that are columns of the data are quoted (``np.log(x)`` and ``x.mean`` stay as they
    are), and only where they stand alone: not inside quotes or backticks, not as a call.

    Parameters
    ----------
    formula : str
        A formula as the user wrote it (anything else is returned as it is).
    columns : iterable
        The data's column names.

    Returns
    -------
    str
        The formula with those names in backticks.
    """
    dotted = sorted((c for c in map(str, columns) if "." in c and _R_NAME.fullmatch(c)), key=len, reverse=True)
    if not isinstance(formula, str) or not dotted:
        return formula
    pattern = re.compile(r"(?<![\w.`])(" + "|".join(map(re.escape, dotted)) + r")(?![\w.`(])")
    parts = _QUOTED.split(formula)
    for k in range(0, len(parts), 2):
        parts[k] = pattern.sub(r"`\1`", parts[k])
    return "".join(parts)


_R_NAME = re.compile(r"[A-Za-z.][\w.]*")


def _replace_dots(text: str, replacement: str) -> str:
    """``text`` with each of R's dots (standalone, outside calls, quotes and backticks) replaced."""
    parts = _QUOTED.split(text)
    spots = [(k, m.start()) for k in range(0, len(parts), 2) for m in _DOT.finditer(parts[k])
             if not _inside_call("".join(parts[:k]) + parts[k][:m.start()])]
    for k, start in reversed(spots):
        parts[k] = parts[k][:start] + replacement + parts[k][start + 1:]
    return "".join(parts)


def split_offsets(formula: str) -> tuple[str, list[str]]:
    """R's offset() terms taken out of a formula: the formula without them, and their expressions.

    ``y ~ x + offset(log(t))`` is ``("y ~ x", ["log(t)"])``; several offsets add up (R's model.offset),
    and a right-hand side of offsets only keeps the intercept (``y ~ offset(z)`` is ``y ~ 1``).

    Parameters
    ----------
    formula : str
        A formula as the user wrote it.

    Returns
    -------
    tuple of (str, list of str)
        The formula to build the design from, and each offset's expression (evaluated in the data).
    """
    if not isinstance(formula, str) or "~" not in formula or "offset" not in formula:
        return formula, []
    lhs, rhs = formula.split("~", 1)
    terms, signs, depth, start = [], [], 0, 0
    for i, ch in enumerate(rhs + "+"):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch in "+-":  # top-level + and - separate terms (numbers there are 0 and 1)
            terms.append(rhs[start:i].strip())
            signs.append(ch)
            start = i + 1
    offsets: list[str] = []
    kept: list[str] = []
    sign = "+"
    for term, next_sign in zip(terms, signs):
        m = re.fullmatch(r"offset\s*\((.*)\)", term)
        if m and sign == "+":
            offsets.append(m.group(1).strip())
        elif term:
            kept.append(("" if not kept and sign == "+" else f" {sign} ") + term)
        sign = next_sign
    if not offsets:
        return formula, []
    body = "".join(kept).strip()
    return f"{lhs.rstrip()} ~ {body if body and not body.startswith('-') else '1 ' + body}".rstrip(), offsets


_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def _inside_call(prefix: str) -> bool:
    """Whether the end of ``prefix`` is inside a function call's parentheses (``f(`` not yet closed)."""
    stack: list[bool] = []
    for i, ch in enumerate(prefix):
        # a call's parenthesis follows a name (I, log, np.sqrt); a grouping one follows an operator
        if ch == "(":
            stack.append(i > 0 and (prefix[i - 1].isalnum() or prefix[i - 1] in "._"))
        elif ch == ")" and stack:
            stack.pop()
    return any(stack)


def parse_formula(formula: str) -> Formula:
    """Parse a two-sided formula with formulaic; a syntax error becomes a FormulaError naming the formula.

    R's spellings formulaic reads otherwise are rewritten first (see :func:`formulaic_formula`); a
    term equal to the response is dropped from the right-hand side with R's warnings.

    Parameters
    ----------
    formula : str
        A formula with a response, e.g. ``"y ~ x + C(g)"``.

    Returns
    -------
    formulaic.Formula
        The parsed formula, as it will be built.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x', not {type(formula).__name__}")
    if not formula.strip():
        raise FormulaError("formula is empty: write it as 'y ~ x' (response ~ predictors)")
    if "~" in formula and not formula.split("~", 1)[1].strip():
        raise FormulaError(f"formula {formula!r} has nothing after '~': write 'y ~ 1' for an intercept-only model")
    f, dropped = _rewritten(formula, ())
    for term_number in dropped:
        # R's model.matrix.default, word for word
        warnings.warn("the response appeared on the right-hand side and was dropped", TorchlmWarning, stacklevel=4)
        warnings.warn(f"problem with term {term_number} in model.matrix: no columns are assigned",
                      TorchlmWarning, stacklevel=4)
    return f


def formulaic_formula(formula: str, columns: Iterable[Any] = ()) -> Formula:
    """The formula formulaic builds for R's ``formula``, with R's meaning where formulaic's differs.

    - A response with arithmetic (``y + z ~ x``, ``y / n ~ x``) is R's arithmetic, not formulaic's
      terms: it is evaluated as one expression (named ``"y + z"``; ``^`` is a power).
    - A right-hand term equal to the response is dropped, as R's model.matrix drops it.
    - A data column named ``Intercept`` used as a variable is written ``I(Intercept)``, so that it
      neither replaces nor is mistaken for formulaic's intercept column (also named ``Intercept``).

    Parameters
    ----------
    formula : str
        A formula with a response.
    columns : iterable
        The data's column names (for the ``Intercept`` column).

    Returns
    -------
    formulaic.Formula
        The formula to materialize.
    """
    return _rewritten(formula, columns)[0]


def _rewritten(formula: str, columns: Iterable[Any]) -> tuple[Formula, list[int]]:
    """The formula to build, and R's numbers of the right-hand terms dropped for being the response."""
    _check_operators(formula)
    f = _parse(_r_response(r_spelling(formula)), formula)
    if not hasattr(f, "lhs") or len(f.lhs) == 0:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'y ~ x'")
    lhs_terms = list(f.lhs)
    rhs_terms = list(f.rhs)
    dropped = [k for k, t in enumerate(_non_intercept(rhs_terms), start=1) if t in lhs_terms]
    keep = [t for t in rhs_terms if t not in lhs_terms]
    if "Intercept" in set(columns):
        keep = [_user_intercept(t) for t in keep]
    if not dropped and keep == rhs_terms:
        return f, []
    return Formula(lhs=f.lhs, rhs=SimpleFormula(keep, _ordering="none")), dropped


def _parse(text: str, formula: str) -> Formula:
    """formulaic's Formula of ``text`` (rewritten from the user's ``formula``), its errors the package's."""
    try:
        return Formula(text)
    except SyntaxError as e:  # Python's, from formulaic's reading of a term (R's as.numeric(x), x$y)
        raise FormulaError(f"cannot parse formula {formula!r}: {e.text!r} is not Python, which formulaic reads "
                           "terms as (R's dotted names and $ have no Python meaning)") from None
    except FormulaSyntaxError as e:
        hint = ""
        if "Missing operator between" in str(e):
            hint = "; a column name with spaces or symbols is written in backticks, e.g. `my column`"
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}{hint}") from None
    except FormulaicError as e:
        if "`.` operator" in str(e):
            raise FormulaError(f"formula {formula!r}: '.' (all other columns) is not supported yet; "
                               "list the variables, e.g. 'y ~ x1 + x2'") from None
        raise FormulaError(f"cannot parse formula {formula!r}: {_first_line(e)}") from None


def _non_intercept(terms: list[Term]) -> list[Term]:
    """The terms R numbers in model.matrix's messages (term.labels: every term but the intercept)."""
    return [t for t in terms if any(f.eval_method != Factor.EvalMethod.LITERAL for f in t.factors)]


def _user_intercept(term: Term) -> Term:
    """``term`` with a data column named Intercept read as ``I(Intercept)`` (formulaic's intercept keeps the name)."""
    if not any(f.expr == "Intercept" and f.eval_method == Factor.EvalMethod.LOOKUP for f in term.factors):
        return term
    return Term([Factor("I(Intercept)", eval_method="python")
                 if f.expr == "Intercept" and f.eval_method == Factor.EvalMethod.LOOKUP else f
                 for f in term.factors])


def _formula_level(formula: str) -> list[tuple[int, str]]:
    """(position, character) of the characters that are formula syntax, not Python code.

    Python code is inside ``{...}``, inside the parentheses or brackets of a call or an index
    (``log(x)``, ``x[1]``) and inside quotes; backtick-quoted names are skipped too.
    """
    out: list[tuple[int, str]] = []
    stack: list[bool] = []  # per open bracket: whether its content is Python code
    quote = ""
    before = ""  # the last character that is not a space
    for i, ch in enumerate(formula):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "`'\"":
            quote = ch
        elif ch in "([{":
            called = before.isalnum() or before in ("_", ".", ")", "]")
            stack.append((bool(stack) and stack[-1]) or ch == "{" or called)
        elif ch in ")]}":
            if stack:
                stack.pop()
        elif not (stack and stack[-1]):
            out.append((i, ch))
        if not ch.isspace():
            before = ch
    return out


def _check_operators(formula: str) -> None:
    """Formula syntax torchlm does not read as R would: ``|``, ``offset()``, and ``:`` / ``%in%`` in the response."""
    level = _formula_level(formula)
    if any(ch == "|" for _, ch in level):
        raise FormulaError(
            f"formula {formula!r}: '|' is not supported in a formula: lm and glm have no fixed-effects "
            "('y ~ x | g') or random-effects ('(1 | g)') syntax. To include both variables write 'x + z', "
            "for their interaction 'x:z', and for the effects of a factor g add it as a term ('y ~ x + g')"
        )
    if re.search(r"(?<![\w.`])offset\s*\(", formula):
        raise FormulaError(f"formula {formula!r}: offset() must be a term of its own on the right-hand side "
                           "(y ~ x + offset(log(t))), or pass offset='z' (a column name) or offset=array")
    tilde = next((i for i, ch in level if ch == "~"), None)
    lhs = [ch for i, ch in level if tilde is not None and i < tilde]
    if ":" in lhs or "%" in lhs:
        response = formula[:tilde].strip()
        raise FormulaError(
            f"formula {formula!r}: the response {response!r} uses ':' or '%in%', which are not arithmetic; "
            "write the response as an expression, e.g. 'I(y * z) ~ x' for a product"
        )


def _r_response(formula: str) -> str:
    """``formula`` with an arithmetic response (``y + z``, ``y / n``, ``-y``, ``y^2``) as one expression, as R reads it.

    formulaic reads ``y + z ~ x`` as two responses and ``y - z ~ x`` as ``y`` alone; R computes the
    arithmetic. In braces formulaic evaluates the response as Python, named ``"y + z"``.
    """
    level = _formula_level(formula)
    tilde = next((i for i, ch in level if ch == "~"), None)
    if tilde is None or not any(ch in "+-*/^" for i, ch in level if i < tilde):
        return formula
    parts = formula[:tilde].strip().split("`")
    # ^ is R's power (Python's XOR means nothing for data); not inside backtick-quoted names
    response = "`".join(p.replace("^", "**") if k % 2 == 0 else p for k, p in enumerate(parts))
    return "{" + response + "} " + formula[tilde:]


def materialize(formula: str, frame: pd.DataFrame, na_action: str,
                spec_options: dict[str, Any] | None = None) -> ModelMatrices:
    """formulaic's model matrices of ``formula`` on ``frame``, its errors raised as the package's.

    The formula is the one :func:`formulaic_formula` rewrites, and the columns it reads are given
    R's types first (:func:`torchlm.frame.data.prepare_columns`, on a copy: the data is not modified).

    Parameters
    ----------
    formula : str
        A parsed-clean formula (see :func:`parse_formula`, :func:`r_powers_in_I`).
    frame : pandas.DataFrame
        The rows to build on, indexed 0..n-1 so that formulaic's kept index gives positions.
    na_action : str
        formulaic's: "drop" (rows with a missing value in an evaluated term) or "raise".
    spec_options : dict, optional
        formulaic's ModelSpec settings (the materializer that codes factors with R's contrasts).

    Returns
    -------
    formulaic.model_matrix.ModelMatrices
        ``lhs`` (the response) and ``rhs`` (the design), with their ``model_spec``.
    """
    f = formulaic_formula(formula, frame.columns)
    frame = prepare_columns(frame, formula_columns(f, frame.columns))
    try:
        # R's functions only: formulaic would otherwise look names the data lacks up among this function's locals
        return model_matrix(f, frame, na_action=na_action, context=formula_context(), **(spec_options or {}))
    except TorchlmError:  # torchlm's own refusal from inside formulaic (a contrast matrix of the wrong shape)
        raise
    except FactorEvaluationError as e:
        if isinstance(e.__cause__, TorchlmError):  # one of torchlm's formula functions (relevel) refused
            raise e.__cause__ from None
        raise _evaluation_error(e, formula, frame) from None
    except ValueError as e:
        if re.search(r"missing|null|\bnan\b", str(e), re.IGNORECASE):
            raise DataError(f"missing values in the variables of {formula!r} and na_action='fail'") from None
        if "does not match length of index" in str(e):
            # R: "variable lengths differ"
            raise DataError(f"a term of {formula!r} gives a different number of values than the data has rows "
                            f"({len(frame)}): every variable needs one value per row") from None
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {_first_line(e)}") from None
    except TypeError as e:
        # e.g. a datetime column multiplied into a model column: name the columns that cannot enter
        odd = [c for c in formula_columns(f, frame.columns)
               if (pd.api.types.is_datetime64_any_dtype(frame[c]) or pd.api.types.is_timedelta64_dtype(frame[c]))]
        if odd:
            raise DataError(
                f"column(s) {', '.join(map(repr, odd))} hold dates or times, which a formula cannot use as they are: "
                "convert them to numbers first (for example days since a date)"
            ) from None
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {e}") from None
    except FormulaicError as e:
        # formulaic's own errors (a '.' it cannot expand, an invalid materializer...): the package's, with its message
        raise FormulaError(f"cannot build the design matrix of {formula!r}: {_first_line(e)}") from None


def _evaluation_error(e: FactorEvaluationError, formula: str, frame: pd.DataFrame) -> FormulaError:
    """formulaic's failure to evaluate a term, as the package's error: an unknown column or function is named."""
    text = str(e)
    m = re.search(r"`([^`]+)` is not present", text) or re.search(r"NameError: name '([^']+)' is not defined", text)
    if m is None:
        return FormulaError(f"cannot evaluate a term of {formula!r}: {_first_line(e)}")
    name = m.group(1)
    if re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", formula):
        return FormulaError(
            f"formula {formula!r} calls {name!r}, which is not a function a formula knows: use numpy's "
            "(np.log, np.sqrt, ...), formulaic's transforms (log, exp, scale, center, poly, C, I) or R's "
            "sqrt, abs, factor, log1p, expm1, sin, cos, tan, floor, ceiling, trunc"
        )
    return UnknownVariableError(f"formula {formula!r} uses {name!r}, which is not a column of data "
                                f"(columns: {columns_text(frame)})")


def formula_columns(formula: Formula, columns: Iterable[Any]) -> list[Any]:
    """The columns of the data a parsed formula reads, in the data's order.

    formulaic's ``required_variables`` leaves out the arguments of stateful transforms
    (``scale(x)``, ``poly(x, 2)``): the names are read from every factor's expression instead.

    Parameters
    ----------
    formula : formulaic.Formula
        A parsed formula.
    columns : iterable
        The data's column names.

    Returns
    -------
    list
        The column names that the formula's factors use.
    """
    names: set[str] = set()
    parts = [formula] if isinstance(formula, SimpleFormula) else [getattr(formula, k) for k in ("lhs", "rhs")
                                                                   if hasattr(formula, k)]
    for part in parts:
        for term in part:
            for factor in term.factors:
                if factor.eval_method == Factor.EvalMethod.LOOKUP:
                    names.add(factor.expr)
                elif factor.eval_method == Factor.EvalMethod.PYTHON:
                    names |= _expression_names(factor.expr)
    return [c for c in dict.fromkeys(columns) if c in names]


def _expression_names(expr: str) -> set[str]:
    """The names a Python expression reads as values (not the functions it calls); backtick-quoted names too."""
    quoted = set(re.findall(r"`([^`]*)`", expr))
    code = re.sub(r"`[^`]*`", "_", expr)
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return quoted
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return quoted | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


def _first_line(e: Exception) -> str:
    """The first line of an error message, without the terminal colour codes formulaic adds."""
    text = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__


def spec_matrix(spec: Any, data: Any, *, na_action: str, context: Any = None) -> Any:
    """formulaic's model matrix of a frozen ModelSpec on ``data``, leaving no reference cycle that holds the data.

    formulaic's materializer sits in reference cycles (its evaluated factors' closures) with the data and its
    evaluated columns, freed only by a full collection of the cycle collector: a Dask worker's threads would pile
    partitions up until one runs. Here the materializer is emptied after use: its own caches and the layer lists
    of its LayeredMappings (not the layers: the context and formulaic's transforms are shared).

    Parameters
    ----------
    spec : formulaic.ModelSpec
    data : pandas.DataFrame
    na_action : str
        formulaic's ("drop", "raise", "ignore").
    context : mapping, optional
        Names for the factors' evaluation.

    Returns
    -------
    formulaic.ModelMatrix

    Examples
    --------
    >>> import pandas as pd
    >>> from formulaic import model_matrix
    >>> from torchlm.frame.formula import spec_matrix
    >>> spec = model_matrix("x", pd.DataFrame({"x": [1.0, 2.0]})).model_spec
    >>> spec_matrix(spec, pd.DataFrame({"x": [3.0, 5.0]}), na_action="drop")["x"].tolist()
    [3.0, 5.0]
    """
    spec = spec.update(na_action=na_action)
    materializer = spec.get_materializer(data, context=context)
    try:
        return materializer.get_model_matrix(spec)
    finally:
        _empty(materializer)


def _empty(materializer: Any) -> None:
    for cache in ("factor_cache", "encoded_cache"):
        if isinstance(getattr(materializer, cache, None), dict):
            getattr(materializer, cache).clear()
    pending = [materializer.__dict__.get("layered_context")]
    while pending:
        layers = getattr(pending.pop(), "_layers", None)  # a LayeredMapping: the data is one of its layers
        if isinstance(layers, list):
            pending.extend(layer for layer in layers if hasattr(layer, "_layers"))
            layers.clear()
    materializer.__dict__.clear()
