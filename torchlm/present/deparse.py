"""R's deparse() of formulas and their terms, for the formula lines R prints (step, add1, drop1, anova).

A formula's text is read into a small syntax tree (R's operators and precedence; the Python spellings
torchlm rewrites formulas into, ``**`` and ``True``, read as R's ``^`` and ``TRUE``) and written back
as R's deparse writes it: spaces around ``+ - * ~ %in%`` and comparisons, none around ``/ : ^``,
``raw = TRUE`` in calls, and lines broken after an operator or comma once a line passes 60 bytes
(``width.cutoff = 60``), continuation lines indented by four spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchlm.errors import FormulaError
from torchlm.present.rformat import format_scalar

WIDTH_CUTOFF = 60  # R's deparse(width.cutoff = 60L)


@dataclass(frozen=True)
class Node:
    """One node of a formula's syntax tree.

    kind : "name", "num", "str", "call" (value: the function; args: (name or "", node) pairs),
    "binary" / "unary" (value: the operator), "paren".
    """

    kind: str
    value: str = ""
    args: tuple = ()


_TOKEN = re.compile(r"""\s*(?:
    (?P<name>`[^`]*`|(?:[A-Za-z_]|\.(?!\d))[A-Za-z0-9_.]*)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?L?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>%[^%]*%|\*\*|<=|>=|==|!=|&&|\|\||<-|::|[-+*/:^~()\[\],=<>!&|$@])
)""", re.VERBOSE)

# binding powers (left, right) of R's binary operators, from R's ?Syntax
_BINARY = {"~": (10, 11), "||": (20, 21), "|": (20, 21), "&&": (30, 31), "&": (30, 31),
           "==": (50, 51), "!=": (50, 51), "<": (50, 51), ">": (50, 51), "<=": (50, 51), ">=": (50, 51),
           "+": (60, 61), "-": (60, 61), "*": (70, 71), "/": (70, 71), "%%": (80, 81), ":": (90, 91),
           "^": (111, 110), "$": (120, 121), "@": (120, 121)}
_UNARY = {"~": 10, "!": 40, "-": 100, "+": 100}
# R's PP_BINARY2 operators: written without spaces, no line break after them
_TIGHT = {"/", ":", "^", "$", "@", "::"}
QUOTES = "\"'"
_WORDS = {"True": "TRUE", "False": "FALSE", "None": "NULL"}
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
             "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"cannot read formula {text!r} at {text[pos:pos + 10]!r}")
        kind = m.lastgroup or "op"
        tok = m.group(kind)
        out.append((kind, "^" if tok == "**" else tok))
        pos = m.end()
    return out


class _Parser:
    """A Pratt parser of R's expression grammar (the part formulas use)."""

    def __init__(self, text: str):
        self.text, self.toks, self.i = text, _tokens(text), 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("op", op)):
            raise FormulaError(f"cannot read formula {self.text!r}: expected {op or 'more'}")
        self.i += 1
        return tok

    def expr(self, bp: int = 0) -> Node:
        kind, tok = self.take()
        if kind == "op" and tok in _UNARY:
            left = Node("unary", tok, (self.expr(_UNARY[tok]),))
        elif kind == "op" and tok == "(":
            left = Node("paren", args=(self.expr(),))
            self.take(")")
        elif kind == "op":
            raise FormulaError(f"cannot read formula {self.text!r}: unexpected {tok!r}")
        else:
            left = Node(kind, tok)
        while (nxt := self.peek()) is not None and nxt[0] == "op":
            op = nxt[1]
            if op in ("(", "["):
                left = self.call(left, op)
                continue
            if op == "::" and left.kind == "name":  # pkg::fn binds tightest, as R's
                self.i += 1
                kind, tok = self.take()
                if kind != "name":
                    raise FormulaError(f"cannot read formula {self.text!r}: a name must follow '::'")
                left = Node("binary", op, (left, Node(kind, tok)))
                continue
            lbp, rbp = _BINARY.get("%%" if op.startswith("%") else op, (-1, -1))
            if lbp < bp or lbp < 0:
                break
            self.i += 1
            left = Node("binary", op, (left, self.expr(rbp)))
        return left

    def call(self, fn: Node, bracket: str) -> Node:
        self.take(bracket)
        close = ")" if bracket == "(" else "]"
        args: list[tuple[str, Node]] = []
        while self.peek() != ("op", close):
            name = ""
            if self.i + 1 < len(self.toks) and self.toks[self.i][0] in ("name", "str") \
                    and self.toks[self.i + 1] == ("op", "="):
                name = self.take()[1]
                self.take("=")
            args.append((name, self.expr()))
            if self.peek() != ("op", close):
                self.take(",")
        self.take(close)
        return Node("call" if bracket == "(" else "index", "", ((("", fn),) + tuple(args)))


def parse(text: str) -> Node:
    """Read an R formula or expression into a syntax tree.

    Parameters
    ----------
    text : str
        R's spelling (``y ~ I(x^2) + a %in% b``) or torchlm's rewritten one (``I(x**2)``, ``True``).

    Returns
    -------
    Node
        The tree's root.
    """
    p = _Parser(text)
    node = p.expr()
    if p.peek() is not None:
        raise FormulaError(f"cannot read formula {text!r}: unexpected {p.peek()[1]!r}")  # type: ignore[index]
    return node


def _name(tok: str) -> str:
    bare = tok[1:-1] if tok.startswith("`") else tok
    bare = _WORDS.get(bare, bare) if not tok.startswith("`") else bare
    syntactic = re.fullmatch(r"(?:[A-Za-z]|\.(?!\d))[A-Za-z0-9._]*|\.", bare) is not None
    if bare in ("TRUE", "FALSE", "NULL") and not tok.startswith("`"):
        return bare
    return bare if syntactic and bare not in _RESERVED else f"`{bare}`"


def _atom(node: Node) -> str:
    if node.kind == "name":
        return _name(node.value)
    if node.kind == "num":
        if node.value.endswith("L"):
            return node.value
        return format_scalar(float(node.value), 15)
    body = node.value[1:-1]
    if node.value.startswith("'"):
        body = body.replace("\\'", "'").replace('"', '\\"')
    return f'"{body}"'


class _Writer:
    """R's deparse buffer: lines, the current line's length in bytes and the indentation."""

    def __init__(self, cutoff: int):
        self.lines: list[str] = []
        self.cur, self.len, self.indent, self.cutoff = "", 0, 0, cutoff
        self.start = True

    def put(self, s: str) -> None:
        if self.start:
            self.start = False
            tabs = "".join("    " if i <= 4 else "  " for i in range(1, self.indent + 1))
            self.cur, self.len = tabs, len(tabs)
        self.cur += s
        self.len += len(s.encode())

    def linebreak(self, broke: bool) -> bool:
        """R's linebreak(): past the cutoff, end the line (indenting once per construct)."""
        if self.len > self.cutoff:
            if not broke:
                broke = True
                self.indent += 1
            self.lines.append(self.cur)
            self.cur, self.len, self.start = "", 0, True
        return broke

    def node(self, n: Node) -> None:
        if n.kind in ("name", "num", "str"):
            self.put(_atom(n))
        elif n.kind == "paren":
            self.put("(")
            self.node(n.args[0])
            self.put(")")
        elif n.kind == "unary":
            self.put(n.value)
            self.node(n.args[0])
        elif n.kind == "binary":
            self.binary(n)
        else:
            self.call(n)

    def binary(self, n: Node) -> None:
        left, right = n.args
        self.node(left)
        if n.value in _TIGHT:
            self.put(n.value)
            self.node(right)
            return
        self.put(f" {n.value} ")
        broke = self.linebreak(False)
        self.node(right)
        if broke:
            self.indent -= 1

    def call(self, n: Node) -> None:
        fn, *args = n.args
        self.node(fn[1])
        self.put("(" if n.kind == "call" else "[")
        broke = False
        for i, (name, arg) in enumerate(args):
            if name:
                self.put(f"{name if name[0] in QUOTES else _name(name)} = ")
            self.node(arg)
            if i < len(args) - 1:
                self.put(", ")
                broke = self.linebreak(broke)
        if broke:
            self.indent -= 1
        self.put(")" if n.kind == "call" else "]")


def deparse_lines(node: Node, cutoff: int = WIDTH_CUTOFF) -> list[str]:
    """R's deparse(): the expression's text, in lines broken as R breaks them.

    Parameters
    ----------
    node : Node
        A tree from :func:`parse`.
    cutoff : int
        R's width.cutoff (bytes).

    Returns
    -------
    list of str
        The lines (a line that R breaks ends with the operator and its trailing space).
    """
    w = _Writer(cutoff)
    w.node(node)
    if not w.start:
        w.lines.append(w.cur)
    return w.lines


def deparse(node: Node) -> str:
    """R's deparse() as one line (width.cutoff large enough never to break).

    Parameters
    ----------
    node : Node
        A tree from :func:`parse`.

    Returns
    -------
    str
        The text.
    """
    return deparse_lines(node, cutoff=1 << 30)[0]


def r_text(text: str) -> str:
    """An expression's text as R deparses it: ``I(hp ** 2)`` is ``I(hp^2)``, ``raw=True`` is ``raw = TRUE``.

    Parameters
    ----------
    text : str
        An expression in R's or torchlm's spelling.

    Returns
    -------
    str
        R's text (a name that is not one, as ``my var``, comes back in backquotes).
    """
    try:
        return deparse(parse(text))
    except FormulaError:
        return _name(f"`{text}`")
