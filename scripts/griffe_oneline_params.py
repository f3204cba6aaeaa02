"""Griffe extension for the docs site (mkdocs.yml loads it): one-line parameter entries read as descriptions.

Many of torchlm's docstrings document a parameter on one line, ``name : what it is (and its values)``, with
the description after the colon; numpydoc reads that text as the parameter's type, and mkdocstrings would
print a sentence in the table's Type column. Where the text after the colon reads as a sentence rather than
a type (it ends with a full stop, holds a ``;``, ``e.g.`` or ``: ``, or runs past six words), this rewrites
the entry as numpydoc's ``name`` line followed by the indented description before griffe parses it; the
annotation in the signature still gives the type. Only the Parameters and Other Parameters sections change,
and only in the docs build: the source docstrings stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ENTRY = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_]\w*(?:, \*{0,2}[A-Za-z_]\w*)*) : (?P<text>\S.*)$")
SECTIONS = ("Parameters", "Other Parameters")


def is_description(text: str) -> bool:
    """Whether the text after ``name :`` reads as a sentence rather than a numpydoc type."""
    return (text.rstrip().endswith(".") or any(s in text for s in ("; ", "e.g.", ": "))
            or len(text.split()) > 6)


def rewrite(doc: str) -> str:
    """The docstring (dedented, as griffe holds it) with one-line descriptions moved under their names."""
    lines = doc.split("\n")
    out: list[str] = []
    section = None
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"}
        if underline and line.strip() and not line.startswith(" "):
            section = line.strip()
        m = ENTRY.match(line) if section in SECTIONS else None
        if m and is_description(m.group("text")):
            out += [m.group("name"), "    " + m.group("text")]
        else:
            out.append(line)
    return "\n".join(out)


class OneLineParameters(griffe.Extension):
    """Rewrite each loaded object's docstring with :func:`rewrite`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring, when it has one.

        Parameters
        ----------
        obj : griffe.Object
            The module, class, function or attribute griffe just loaded.
        **kwargs : Any
            The rest of griffe's hook arguments (node, agent), not used.
        """
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
