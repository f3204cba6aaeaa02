"""R's terms of a formula (terms.formula): term labels, marginality scopes and update.formula, for add1/drop1/step.

R names a term by its variables joined with ``:`` in the order the variables first appear in the formula
(``y ~ c:a + a*b`` has terms ``a``, ``b``, ``c:a``, ``a:b``), orders terms by degree, and decides which
terms may be dropped or added by marginality (drop.scope, add.scope, factor.scope). A term is a set of
variables; it is matched to the design's columns by that set, whatever formulaic calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchlm.errors import FormulaError, OptionError
from torchlm.frame.formula import expand_dot, r_spelling
from torchlm.present.deparse import Node, deparse, deparse_lines, parse, r_text


@dataclass(frozen=True)
class Term:
    """One of R's terms: its label (R's text) and its variables (a key for matching across formulas)."""

    label: str
    variables: frozenset[str]


@dataclass(frozen=True)
class RTerms:
    """R's terms of a formula: response (its text, or None), terms in R's order, intercept, offset() calls."""

    response: str | None
    terms: tuple[Term, ...]
    intercept: bool
    offsets: tuple[str, ...]
    variables: tuple[str, ...] = ()  # R's attr(terms, "variables"): the response, then each as first written

    @property
    def labels(self) -> list[str]:
        """R's term.labels."""
        return [t.label for t in self.terms]

    def formula(self) -> str:
        """The formula R's update() writes for these terms (fixFormulaObject): labels, offsets, then ``- 1``.

        Returns
        -------
        str
            ``response ~ rhs`` (one-sided ``~ rhs`` without a response).
        """
        # R's fixFormulaObject: a label with | is written in parentheses (PR#8462)
        parts = [f"({lab})" if "|" in lab else lab for lab in self.labels] + list(self.offsets)
        rhs = " + ".join(parts) if parts else "1"
        if not self.intercept:
            rhs += " - 1"
        return f"{self.response} ~ {rhs}" if self.response is not None else f"~ {rhs}"


def variable_key(text: str) -> str:
    """The key a variable is matched by: R's deparse of its text after torchlm's rewriting (as.factor: factor).

    Returns
    -------
    str
    """
    return r_text(r_spelling(text))


class _Encoder:
    """R's EncodeVars: the terms of a formula's right-hand side, variables numbered as they first appear."""

    def __init__(self) -> None:
        self.variables: list[str] = []
        self.offsets: list[str] = []
        self.intercept, self.parity = True, True

    def var(self, node: Node) -> list[frozenset[int]]:
        text = deparse(node)
        if text not in self.variables:
            self.variables.append(text)
        if node.kind == "call" and deparse(node.args[0][1]) == "offset":
            if text not in self.offsets:
                self.offsets.append(text)
            return []
        return [frozenset([self.variables.index(text)])]

    def encode(self, n: Node) -> list[frozenset[int]]:
        if n.kind == "num" and n.value in ("0", "1"):
            # a 1 (or - 0) keeps the intercept, a 0 (or - 1) removes it; the last one written counts
            self.intercept = (n.value == "1") == self.parity
            return []
        if n.kind == "name" and n.value == ".":
            raise FormulaError("'.' in a formula must be written out before its terms are read")
        if n.kind == "paren":
            return self.encode(n.args[0])
        if n.kind == "unary" and n.value in "+-":
            if n.value == "+":
                return self.encode(n.args[0])
            self.parity = not self.parity
            self.encode(n.args[0])
            self.parity = not self.parity
            return []
        if n.kind != "binary" or n.value not in ("+", "-", "*", ":", "/", "^", "%in%"):
            return self.var(n)
        op, (a, b) = n.value, n.args
        if op == "^":
            return self.power(a, b)
        left = self.encode(a)
        if op == "-":
            self.parity = not self.parity
            right = self.encode(b)
            self.parity = not self.parity
            return [t for t in left if t not in right]
        right = self.encode(b)
        if op == "+":
            return _unique(left + right)
        if op == ":":
            return _unique([x | y for x in left for y in right])
        if op == "*":
            return _unique(left + right + [x | y for x in left for y in right])
        inner = frozenset().union(*left) if left else frozenset()
        if op == "%in%":
            return _unique([x | frozenset().union(*right) for x in left]) if right else left
        return _unique(left + [inner | y for y in right])  # a / b: a + a's variables : b

    def power(self, a: Node, b: Node) -> list[frozenset[int]]:
        base = self.encode(a)
        try:
            k = int(float(deparse(b)))
        except ValueError:
            raise FormulaError(f"invalid power in formula: {deparse(b)!r} is not a number") from None
        out = base
        for _ in range(1, k):
            out = _unique([x | y for x in base for y in out])
        return out


def _unique(terms: list[frozenset[int]]) -> list[frozenset[int]]:
    return list(dict.fromkeys(t for t in terms if t))


def r_terms(node: Node, keep_response: bool = False) -> RTerms:
    """R's terms.formula of a formula tree (dots written out): labels in R's order and spelling.

    Parameters
    ----------
    node : Node
        A formula, two-sided or one-sided, from :func:`torchlm.present.deparse.parse`.
    keep_response : bool
        Keep a right-hand term that is the response, as R's terms do (``y ~ y + x``); by default it is
        dropped, as R's model.matrix drops it.

    Returns
    -------
    RTerms
    """
    enc = _Encoder()
    response = None
    if node.kind == "binary" and node.value == "~":
        lhs, rhs = node.args
        response = deparse(lhs)
        enc.var(lhs)
    elif node.kind == "unary" and node.value == "~":
        rhs = node.args[0]
    else:
        raise FormulaError(f"{deparse(node)!r} is not a formula: write it with '~'")
    found = enc.encode(rhs)
    if response is not None and not keep_response:
        found = [t for t in found if t != frozenset([0])]  # R's model.matrix drops a term that is the response
    found.sort(key=len)  # stable: by degree, then as written
    terms = tuple(Term(":".join(enc.variables[i] for i in sorted(t)),
                       frozenset(variable_key(enc.variables[i]) for i in t)) for t in found)
    return RTerms(response, terms, enc.intercept, tuple(enc.offsets), tuple(enc.variables))


def fit_formula(fit: Any) -> Node:
    """R's formula(fit): the fitted formula as written, its dot written out (as R's terms with data do).

    Parameters
    ----------
    fit : LinearModelResult or GeneralizedLinearModelResult

    Returns
    -------
    Node
    """
    refit = getattr(fit, "_refit", None)
    text = refit.formula if refit is not None else fit.design.formula
    data = fit.design.data
    rhs = text.partition("~")[2]
    if data is not None:
        text = expand_dot(text, data.columns)
    node = parse(text)
    if rhs.strip() == "." and node.kind == "binary" and node.args[1].kind == "paren":
        # R writes a dot that is the whole right-hand side without parentheses
        node = Node("binary", "~", (node.args[0], node.args[1].args[0]))
    return node


def model_terms(fit: Any) -> RTerms:
    """R's terms(fit).

    Returns
    -------
    RTerms
    """
    return r_terms(fit_formula(fit))


def formula_lines(fit: Any) -> list[str]:
    """deparse(formula(fit)) as R prints it: one or more lines (the formula as given, where R's syntax cannot
    read it).

    Returns
    -------
    list of str
    """
    try:
        return deparse_lines(fit_formula(fit))
    except FormulaError:
        return [fit.design.formula]


def r_labels(fit: Any, labels: list[str]) -> list[str]:
    """R's term labels for formulaic's labels of the fit's terms (formulaic's, where R's are unknown).

    Returns
    -------
    list of str
    """
    try:
        terms = model_terms(fit).terms
    except FormulaError:
        return labels
    keys = design_keys(fit.design)
    r_label = {keys[t.variables]: t.label for t in terms if t.variables in keys}
    return [r_label.get(lab, lab) for lab in labels]


def updated(old: Node, new: str) -> Node:
    """R's update.formula before simplification: ``.`` in ``new`` is the old side (``~ . + x``, ``~ .^2``).

    Parameters
    ----------
    old : Node
        The model's formula.
    new : str
        The change; without a left-hand side the old response is kept.

    Returns
    -------
    Node
    """
    if not isinstance(new, str) or "~" not in new:
        raise OptionError(f"a scope formula is a string like '~ . + x' or '~ a + b', not {new!r}")
    tree = parse(new)
    old_lhs, old_rhs = old.args if old.kind == "binary" else (None, old.args[0])
    if tree.kind == "binary" and tree.value == "~":
        lhs, rhs = _dots(tree.args[0], old_lhs), _dots(tree.args[1], Node("paren", args=(old_rhs,)))
    elif tree.kind == "unary" and tree.value == "~":
        lhs, rhs = old_lhs, _dots(tree.args[0], Node("paren", args=(old_rhs,)))
    else:
        raise OptionError(f"a scope formula is a string like '~ . + x' or '~ a + b', not {new!r}")
    return Node("binary", "~", (lhs, rhs)) if lhs is not None else Node("unary", "~", (rhs,))


def _dots(n: Node, by: Node | None) -> Node:
    if n.kind == "name" and n.value == "." and by is not None:
        return by
    if n.kind in ("binary", "unary", "paren"):
        return Node(n.kind, n.value, tuple(_dots(a, by) for a in n.args))
    return n


def label_terms(labels: list[str] | tuple[str, ...]) -> list[Term]:
    """Terms given by their labels (R's character scope of add1/drop1: ``["hp", "wt:hp"]``).

    Returns
    -------
    list of Term
    """
    if not isinstance(labels, (list, tuple)) or not all(isinstance(s, str) for s in labels):
        raise OptionError(f"scope must be a formula string ('~ . + x') or a list of term labels, not {labels!r}")
    out = []
    for s in labels:
        t = r_terms(parse(f"~ {s}")).terms
        if len(t) != 1:
            raise OptionError(f"scope label {s!r} is not one term (write interactions as 'a:b')")
        out.append(Term(s, t[0].variables))
    return out


def drop_scope(terms: tuple[Term, ...] | list[Term], lower: list[Term] | None = None) -> list[Term]:
    """R's factor.scope(...)$drop: the terms not in ``lower`` that no other such term contains (marginality).

    Returns
    -------
    list of Term
    """
    lower = lower or []
    keys = {t.variables for t in terms}
    if missing := [t.label for t in lower if t.variables not in keys]:
        raise OptionError(f"lower scope has term(s) {missing} not included in the model")
    low = {t.variables for t in lower}
    facs = [t for t in terms if t.variables not in low]
    if len(facs) <= 1:
        return facs
    return [t for t in facs if not any(o is not t and t.variables <= o.variables for o in facs)]


def add_scope(terms: tuple[Term, ...] | list[Term], upper: tuple[Term, ...] | list[Term]) -> list[Term]:
    """R's factor.scope(...)$add: the upper terms not in the model whose margins are (no other candidate is
    inside them).

    Returns
    -------
    list of Term
    """
    ukeys = {t.variables for t in upper}
    if missing := [t.label for t in terms if t.variables not in ukeys]:
        raise OptionError(f"the model's term(s) {missing} are not in the upper scope; the upper scope must "
                          "include every term of the model")
    have = {t.variables for t in terms}
    cand = [t for t in upper if t.variables not in have]
    return [t for t in cand if not any(o is not t and o.variables < t.variables for o in cand)]


def design_keys(design: Any) -> dict[frozenset[str], str]:
    """{set of variable keys: formulaic's term label} for the terms of a design (intercept left out).

    Returns
    -------
    dict
    """
    out = {}
    for st in design.spec.structure:
        label = str(st.term)
        if label != "1":
            out[frozenset(variable_key(str(f)) for f in st.term.factors)] = label
    return out


def design_terms(design: Any) -> RTerms:
    """The terms of a design as formulaic labels them (for a formula R's syntax cannot read, such as ``{x + 1}``).

    Returns
    -------
    RTerms
    """
    terms = tuple(Term(label, key) for key, label in design_keys(design).items())
    return RTerms(design.response, terms, bool(design.has_intercept), tuple(design.offset_terms))


def term_columns(design: Any, terms: list[Term] | tuple[Term, ...]) -> list[list[int]]:
    """The design's columns of each term (matched by its variables).

    Returns
    -------
    list of list of int
    """
    keys = design_keys(design)
    out = []
    for t in terms:
        label = keys.get(t.variables)
        if label is None:
            raise FormulaError(f"term {t.label!r} is not one of the model's terms {sorted(keys.values())}")
        out.append([j for j, a in enumerate(design.assign) if a == label])
    return out
