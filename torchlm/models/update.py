"""R's update() and update.formula(): a fitted model again, with a changed formula or arguments.

update.formula(old, new) is R's two steps: updateform() puts the old sides in for the dots of ``new``
(``.`` on the left is the old response, ``.`` on the right the old right-hand side, a ``new`` without a
left side keeps the old response), then terms.formula(simplify = TRUE) writes the result as R's
fixFormulaObject does: the term labels in R's order and spelling, the offsets, then ``- 1`` for no
intercept (``update(y ~ a*b, . ~ . - a:b)`` is ``y ~ a + b``). The text is R's deparse of it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torchlm.errors import FormulaError, OptionError
from torchlm.inference.rterms import fit_formula, r_terms
from torchlm.present.deparse import Node, deparse, parse

# R's operator precedences (PREC_* of R's names.c) and the one right-associative operator, for the
# parentheses R's deparse writes around an operand (needsparens)
_PREC = {"~": 4, "||": 5, "|": 5, "&&": 6, "&": 6, "!": 7, "==": 8, "!=": 8, "<": 8, ">": 8, "<=": 8, ">=": 8,
         "+": 9, "-": 9, "*": 10, "/": 10, "%%": 11, ":": 12, "^": 14, "$": 15, "@": 15}
_SIGN = 13  # unary + and -
_COMPARE = 8
# R's ExpandDots: the operators around a '.' whose old side (by its operator) gets parentheses, left and right
_DOT_PARENS = {"+": ((), ()), "-": (("+", "-"), ("+", "-")), "*": (("+", "-"), ("+", "-")),
               "/": (("+", "-"), ("+", "-")), ":": (("+", "-", "*", "/"), ("+", "-")),
               "^": (("+", "-", "*", "/", ":"), ("+", "-"))}
_TERM_OPERATORS = ("+", "-", "*", "/", ":", "%in%")
_DOT = re.compile(r"(?<![\w.`])\.(?![\w.`])")  # a dot that is not part of a name or a number (x.y, .5, 5.)


def _formula(text: Any, what: str) -> Node:
    """A formula string read as R's syntax tree; anything else a FormulaError with the working spelling."""
    if not isinstance(text, str) or "~" not in text:
        raise FormulaError(f"update's {what} formula must be a string like '. ~ . + x' ('.' is the old side), "
                           f"not {text!r}")
    node = parse(text)
    if node.value != "~" or node.kind not in ("binary", "unary"):
        raise FormulaError(f"update's {what} formula {text!r} is not a formula: write it as 'y ~ x' or '. ~ . + x'")
    return node


def _operator(n: Node) -> str | None:
    """The function at the head of a call R would see: an operator's symbol, ``(`` for parentheses."""
    if n.kind in ("binary", "unary"):
        return n.value
    return "(" if n.kind == "paren" else None


def _expand_dots(obj: Node, value: Node) -> Node:
    """R's ExpandDots: each ``.`` in ``obj`` replaced by ``value``, parenthesized where an operator needs it."""
    if obj.kind == "name":
        return value if obj.value == "." else obj
    if obj.kind in ("binary", "unary") and obj.value in _DOT_PARENS:
        rules = _DOT_PARENS[obj.value]
        op = _operator(value)
        args = []
        for arg, paren_for in zip(obj.args, rules if obj.kind == "binary" else rules[1:]):
            dot = arg.kind == "name" and arg.value == "."
            args.append(Node("paren", args=(value,)) if dot and op in paren_for else _expand_dots(arg, value))
        return Node(obj.kind, obj.value, tuple(args))
    if obj.kind in ("binary", "unary", "paren"):
        return Node(obj.kind, obj.value, tuple(_expand_dots(a, value) for a in obj.args))
    if obj.kind in ("call", "index"):
        return Node(obj.kind, obj.value, tuple((name, _expand_dots(a, value)) for name, a in obj.args))
    return obj


def _update_form(old: Node, new: Node) -> Node:
    """R's updateform(old, new): the new formula with the old sides put in for its dots."""
    if old.kind == "binary":
        lhs, rhs = old.args
        new_lhs, new_rhs = new.args if new.kind == "binary" else (lhs, new.args[0])
        return Node("binary", "~", (_expand_dots(new_lhs, lhs), _expand_dots(new_rhs, rhs)))
    rhs = old.args[0]
    if new.kind == "binary":  # the old formula has no left side: a dot on the new one stays a dot, as in R
        return Node("binary", "~", (new.args[0], _expand_dots(new.args[1], rhs)))
    return Node("unary", "~", (_expand_dots(new.args[0], rhs),))


def _needs_parens(prec: int, right_assoc: bool, arg: Node, left: bool) -> bool:
    """R's deparse needsparens(): whether an operand of an operator of precedence ``prec`` is parenthesized."""
    if arg.kind == "unary" and arg.value != "!":
        if not left:  # R writes a unary operand on the right as it is (a - -b)
            return False
        p = _SIGN if arg.value in "+-" else _PREC["~"]
    elif arg.kind in ("binary", "unary"):
        p = _PREC.get("%%" if arg.value.startswith("%") else arg.value, 0)
        if arg.kind == "binary" and prec == _COMPARE and p == _COMPARE:
            return True
    else:
        return False
    return prec > p or (prec == p and left == right_assoc)


def _deparse_parens(n: Node) -> Node:
    """The tree with the parentheses R's deparse writes around operands (``2/(a * b)``, ``-(y1 + y2)``)."""
    args: tuple = n.args
    if n.kind in ("call", "index"):
        return Node(n.kind, n.value, tuple((name, _deparse_parens(a)) for name, a in args))
    if n.kind == "paren":
        return Node("paren", args=(_deparse_parens(args[0]),))
    if n.kind not in ("binary", "unary"):
        return n
    kids = [_deparse_parens(a) for a in args]
    if n.kind == "binary":
        prec, right = _PREC.get("%%" if n.value.startswith("%") else n.value, 0), n.value == "^"
        kids = [Node("paren", args=(k,)) if _needs_parens(prec, right, k, i == 0) else k for i, k in enumerate(kids)]
    else:
        prec = _SIGN if n.value in "+-" else _PREC.get(n.value, 0)
        kids = [Node("paren", args=(k,)) if _needs_parens(prec, False, k, False) else k for k in kids]
    return Node(n.kind, n.value, tuple(kids))


def _terms_side(n: Node) -> Node:
    """The right-hand side as R's terms read it: TRUE/FALSE and 1L are the intercept's 1 and 0; other constants,
    and a dot nothing wrote out, are R's errors; integers in calls lose their L (R's term labels)."""
    if n.kind == "name" and n.value in ("TRUE", "FALSE", "True", "False"):
        return Node("num", "1" if n.value in ("TRUE", "True") else "0")
    if n.kind == "name" and n.value == ".":
        raise FormulaError("'.' in formula and no 'data' argument (R's error): update_formula() cannot write out "
                           "a dot of the old formula; update the fit instead (tl.update(fit, ...)), whose formula "
                           "has the data's columns for it, as R's formula(fit) has")
    if n.kind == "num":
        value = float(n.value.rstrip("L"))
        if value not in (0.0, 1.0):
            raise FormulaError(f"invalid model formula (R's error): the number {n.value} is not a term; "
                               "write I(...) around an expression, or 0 / 1 for the intercept")
        return Node("num", str(int(value)))
    if n.kind == "str":
        raise FormulaError(f"invalid model formula (R's error): the string {n.value} is not a term; "
                           "write a variable's name without quotes (or in backquotes: `my var`)")
    if n.kind == "paren" or (n.kind in ("binary", "unary") and n.value in _TERM_OPERATORS):
        return Node(n.kind, n.value, tuple(_terms_side(a) for a in n.args))
    if n.kind == "binary" and n.value == "^":
        return Node("binary", "^", (_terms_side(n.args[0]), n.args[1]))
    return _plain_integers(n)


def _plain_integers(n: Node) -> Node:
    if n.kind == "num" and n.value.endswith("L"):
        return Node("num", n.value[:-1])
    if n.kind in ("call", "index"):
        return Node(n.kind, n.value, tuple((name, _plain_integers(a)) for name, a in n.args))
    return Node(n.kind, n.value, tuple(_plain_integers(a) for a in n.args)) if n.args else n


def _simplified(tree: Node) -> str:
    """R's formula(terms.formula(tree, simplify = TRUE)) (fixFormulaObject), deparsed on one line."""
    lhs, rhs = tree.args if tree.kind == "binary" else (None, tree.args[0])
    if lhs is not None and lhs.kind == "name" and lhs.value in ("NULL", "None"):
        lhs = None  # R's NULL ~ . is a formula without a response
    rhs = _terms_side(rhs)
    terms = r_terms(Node("binary", "~", (lhs, rhs)) if lhs is not None else Node("unary", "~", (rhs,)),
                    keep_response=True)
    right = parse(dataclasses.replace(terms, response=None).formula())
    return deparse(Node("binary", "~", (lhs, right.args[0])) if lhs is not None else right)


def update_formula(old: str, new: str) -> str:
    """R's update.formula(old, new): ``.`` in ``new`` stands for the old side; the result simplified as R's terms.

    ``update_formula("mpg ~ wt", ". ~ . + hp")`` is ``"mpg ~ wt + hp"``; ``". ~ . - wt"`` drops wt,
    ``"log(.) ~ ."`` transforms the response, ``"~ . + hp"`` (no left side) keeps the response, a model
    without an intercept keeps its ``- 1`` (``update_formula("mpg ~ wt - 1", "~ . + hp")`` is
    ``"mpg ~ wt + hp - 1"``), and the terms are R's: ``update_formula("y ~ a*b", ". ~ . - a:b")`` is
    ``"y ~ a + b"``, ``I(hp^2)``, ``wt:qsec`` in R's order. ``NULL ~ .`` drops the response, as R's does.

    Parameters
    ----------
    old : str
        The old formula, in R's spelling (or torchlm's: ``I(x**2)`` is R's ``I(x^2)``).
    new : str
        The change, e.g. ``". ~ . + hp"``.

    Returns
    -------
    str
        The updated formula as R's ``deparse(update.formula(old, new))`` writes it (on one line).

    Examples
    --------
    >>> tl.update_formula("mpg ~ wt + hp", ". ~ . - hp")
    'mpg ~ wt'
    """
    return _simplified(_deparse_parens(_update_form(_formula(old, "old"), _formula(new, "new"))))


def model_formula(fit: Any) -> str:
    """R's formula(fit): the fitted formula with its dot written out as the data's columns (``mpg ~ .`` is
    ``mpg ~ cyl + disp + ...``), in R's spelling.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        A fit made by tl.lm, tl.glm or tl.aov.

    Returns
    -------
    str
        R's ``deparse(formula(fit))`` on one line (the formula as given, where R's syntax cannot read it).
    """
    try:
        return deparse(fit_formula(fit))
    except FormulaError:
        refit = getattr(fit, "_refit", None)
        return refit.formula if refit is not None else fit.design.formula


def refit_formula(fit: Any, new: str) -> str:
    """The formula update(fit, new) fits: R's update.formula(formula(fit), new), checked to keep a response.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult
        The fit to update.
    new : str
        The change, e.g. ``". ~ . + hp"``.

    Returns
    -------
    str
        The new formula.
    """
    change = _formula(new, "new")
    try:
        old = fit_formula(fit)
    except FormulaError:  # a formula R's syntax cannot read ({x + 1}): its dots put in as text
        return _text_update(fit._refit.formula, new)
    out = _simplified(_deparse_parens(_update_form(old, change)))
    if out.startswith("~"):
        raise FormulaError(f"update(fit, {new!r}) leaves the model without a response ({out!r}): keep it with "
                           "'. ~ ...' or name a new one, e.g. 'log(.) ~ .'")
    return out


def _text_update(old: str, new: str) -> str:
    """updateform() on the text of a formula only formulaic reads (``{x + 1}``): the old sides in parentheses
    for the dots of ``new``, not simplified (formulaic reads the terms)."""
    old_lhs, old_rhs = (side.strip() for side in old.split("~", 1))
    new_lhs, new_rhs = (side.strip() for side in new.split("~", 1))
    response = old_lhs if re.fullmatch(r"[\w.]+|`[^`]*`|[\w.]+\(.*\)", old_lhs) else f"({old_lhs})"
    lhs = _DOT.sub(lambda _: response, new_lhs) if new_lhs else old_lhs
    if not lhs:
        raise FormulaError(f"update({old!r}, {new!r}) leaves the model without a response: keep it with '. ~ ...'")
    return f"{lhs} ~ {_DOT.sub(lambda _: f'({old_rhs})', new_rhs)}"


def update(fit: Any, formula: str | None = None, *, evaluate: bool = True, **changes: Any) -> Any:
    """R's update(fit, formula, ...): the same fitter called again with the changes.

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult, or a formula string
        A fit made by tl.lm, tl.glm or tl.aov; a formula string is R's update of a formula
        (:func:`update_formula`).
    formula : str, optional
        The change in update.formula's spelling (``". ~ . + hp"``; ``.`` is the old side). None keeps
        the formula as the fit was called with it.
    evaluate : bool
        False: return the new call (a :class:`torchlm.results.base.Refit`, fitted by its ``evaluate()``)
        instead of the new fit, as R's ``evaluate = FALSE``.
    **changes
        The fitter's arguments to change (``data=``, ``subset=``, ``weights=``, ``family=`` ...); the
        others are kept as the fit was called.

    Returns
    -------
    LinearModelResult, GeneralizedLinearModelResult, Refit or str
        The new fit (the new call with ``evaluate=False``; the new formula for a formula string).

    Examples
    --------
    >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
    >>> tl.update(fit, ". ~ . + hp").coef().round(4)
    Intercept    37.2273
    wt           -3.8778
    hp           -0.0318
    Name: Estimate, dtype: float64
    """
    if isinstance(fit, str):
        if formula is None or changes:
            raise OptionError(f"update() takes a fitted model, or a formula and its change only "
                              f"(update('y ~ x', '. ~ . + z')); got the formula {fit!r} "
                              f"{'and arguments ' + str(sorted(changes)) if changes else 'with no change'}")
        return update_formula(fit, formula)
    if not hasattr(fit, "update"):
        raise OptionError(f"update() takes a fitted model (a tl.lm or tl.glm result) or a formula string, "
                          f"not {type(fit).__name__}")
    return fit.update(formula, evaluate=evaluate, **changes)
