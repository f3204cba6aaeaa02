"""Model tables: several fits side by side, in the layout of R's modelsummary (and pyfixest's etable).

One column per model; the coefficients (the union over the models, in order of first appearance),
each estimate with R's significance stars and its standard error in parentheses below it (or beside
it); then the fit statistics (N, R², Adj. R², AIC, logLik, dispersion, theta ... where they apply) and,
when some model's standard errors are not the model's own, a row naming them. The numbers are the
fits' own (coef_table, nobs, aic ...), so every result type that shares the result base is served.

Written by hand rather than through maketables / great_tables: those put pyfixest's conventions in
place of R's (three star levels at 0.1 / 0.05 / 0.01, the intercept renamed and moved last, no
markdown) and bring IPython, python-docx and a styling stack with them, for what is a few string joins.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from torchlm.errors import OptionError, TorchlmError

TYPES = ("df", "md", "tex", "html")
STATISTICS = {"std.error": "Standard errors", "statistic": "t or z statistics", "p.value": "p-values"}
# R's printCoefmat: symnum's cut points 0.001, 0.01, 0.05, 0.1 (a p-value at a cut point gets the stronger symbol)
R_STARS = (("***", 0.001), ("**", 0.01), ("*", 0.05), (".", 0.1))
STAT_LABELS = {"nobs": "N", "r2": "R²", "adj_r2": "Adj. R²", "aic": "AIC", "bic": "BIC", "loglik": "logLik",
               "dispersion": "Dispersion", "theta": "Theta", "sigma": "Sigma", "deviance": "Deviance",
               "df_residual": "Residual df", "within_r2": "Within R²"}
_TEX_LABELS = {"r2": "$R^2$", "adj_r2": "Adj. $R^2$", "within_r2": "Within $R^2$"}
_INTEGER_STATS = ("nobs", "df_residual")
DEFAULT_STATS = ("nobs", "r2", "adj_r2", "within_r2", "aic", "loglik", "dispersion", "theta")
VCOV_ROW = "Std. Errors"


class HTMLTable(str):
    """An HTML string that a notebook shows as the table it is (``_repr_html_``); otherwise a plain str."""

    def _repr_html_(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Cell:
    """One cell of the table: the number as text, its stars, and (SE beside the estimate) what follows."""

    number: str = ""
    stars: str = ""
    tail: str = ""

    @property
    def text(self) -> str:
        """The cell as plain text.

        Returns
        -------
        str
        """
        return self.number + self.stars + self.tail


@dataclass(frozen=True)
class Row:
    """A row: modelsummary's part ("estimates" or "gof"), term, statistic, and one Cell per model."""

    part: str
    term: str
    statistic: str
    cells: tuple[Cell, ...]
    key: str = ""  # the statistic's key in STAT_LABELS (gof rows)


@dataclass(frozen=True)
class ModelTable:
    """The table before rendering: the models' column names, the rows and the notes below."""

    models: tuple[str, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]


def signif_stars(p: float, cuts: Sequence[tuple[str, float]] = R_STARS) -> str:
    """The stars of a p-value: the symbol of the smallest cut point at or above it ("" above them all, or NaN).

    Parameters
    ----------
    p : float
        The p-value.
    cuts : sequence of (symbol, cut point)
        Ordered by cut point, smallest first (R's by default).

    Returns
    -------
    str
    """
    if not math.isfinite(p):
        return ""
    return next((sym for sym, cut in cuts if p <= cut), "")


def stars_legend(cuts: Sequence[tuple[str, float]] = R_STARS) -> str:
    """R's legend of the stars, "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1".

    Returns
    -------
    str
    """
    return "Signif. codes:  0 " + " ".join(f"\u2018{s}\u2019 {c:g}" for s, c in cuts) + " \u2018 \u2019 1"


def _star_cuts(stars: Any) -> tuple[tuple[str, float], ...]:
    if stars is True:
        return R_STARS
    if stars is False or stars is None:
        return ()
    if isinstance(stars, Mapping) and stars and all(
            isinstance(s, str) and isinstance(c, (int, float)) and not isinstance(c, bool) and 0 < c <= 1
            for s, c in stars.items()):
        return tuple(sorted(((s, float(c)) for s, c in stars.items()), key=lambda sc: sc[1]))
    raise OptionError("stars must be True (R's: *** 0.001, ** 0.01, * 0.05, . 0.1), False, or a dict of "
                      f"symbol to cut point in (0, 1] such as {{'***': 0.001, '**': 0.01, '*': 0.05}}, not {stars!r}")


def _models(models: Any) -> tuple[list[str], list[Any]]:
    if isinstance(models, Mapping):
        names, fits = [str(k) for k in models], list(models.values())
    elif isinstance(models, (list, tuple)):
        fits = list(models)
        names = [f"({i + 1})" for i in range(len(fits))]
    else:
        names, fits = ["(1)"], [models]
    if not fits:
        raise OptionError("etable needs at least one fitted model: tl.etable([fit1, fit2])")
    for f in fits:
        if not callable(getattr(f, "coef_table", None)):
            raise OptionError(f"etable takes fitted models (tl.lm, tl.glm, tl.glm_nb, tl.nls, tl.mle, tl.infer), "
                              f"not {type(f).__name__}")
    return names, fits


def _vcovs(vcov: Any, k: int) -> list[Any]:
    # a list is one spec per model; anything else (a type string, a dict, a matrix as an array) is one for all
    if isinstance(vcov, list):
        if len(vcov) != k:
            raise OptionError(f"vcov as a list gives one covariance per model: {k} models, {len(vcov)} given "
                              "(pass a matrix as a numpy array or DataFrame)")
        return vcov
    return [vcov] * k


def vcov_label(spec: Any) -> str:
    """The short name of a ``vcov=`` choice for the table's "Std. Errors" row (modelsummary's spelling).

    Parameters
    ----------
    spec : None, str, dict or matrix
        As the fits' ``vcov=`` takes it.

    Returns
    -------
    str
        "IID" for the model's own, the type ("HC3", "HAC"), "by: cyl" for clusters, "user" for a matrix.
    """
    if spec is None:
        return "IID"
    if isinstance(spec, str):
        return "IID" if spec == "const" else spec
    if isinstance(spec, Mapping):
        kind, cl = spec.get("type"), spec.get("cluster")
        if cl is None:
            return vcov_label(kind)
        names = [cl] if isinstance(cl, str) else list(cl) if isinstance(cl, (list, tuple)) else []
        by = " + ".join(names) if names and all(isinstance(n, str) for n in names) else "cluster"
        return (f"{kind} " if kind else "") + f"by: {by}"
    return "user"


def _matches(pattern: str, name: str) -> bool:
    try:
        return pattern == name or re.search(pattern, name) is not None
    except re.error as e:
        raise OptionError(f"keep/drop pattern {pattern!r} is not a regular expression ({e}); "
                          "give the coefficient's name or a valid pattern") from None


def _patterns(p: Any, what: str) -> list[str]:
    if p is None:
        return []
    p = [p] if isinstance(p, str) else list(p) if isinstance(p, (list, tuple)) else None
    if p is None or not all(isinstance(x, str) for x in p):
        raise OptionError(f"{what} must be a coefficient name or regular expression, or a list of them")
    return p


def _terms(tables: list[pd.DataFrame], keep: Any, drop: Any) -> list[str]:
    """The union of the coefficients in first-appearance order, kept (in the order of keep's patterns) and dropped."""
    seen: dict[str, None] = {}
    for t in tables:
        seen.update(dict.fromkeys(str(n) for n in t.index))
    terms = list(seen)
    keeps, drops = _patterns(keep, "keep"), _patterns(drop, "drop")
    if keeps:
        rank = {t: next((i for i, p in enumerate(keeps) if _matches(p, t)), None) for t in terms}
        terms = sorted((t for t in terms if rank[t] is not None), key=lambda t: rank[t])  # type: ignore[arg-type, return-value]
    return [t for t in terms if not any(_matches(p, t) for p in drops)]


def _rename(coef_names: Any) -> Callable[[str], str]:
    if coef_names is None:
        return str
    if isinstance(coef_names, Mapping):
        return lambda t: str(coef_names.get(t, t))
    if callable(coef_names):
        return lambda t: str(coef_names(t))
    raise OptionError("coef_names must be a dict {name: new name} or a function of the name")


def _number(x: float, digits: int) -> str:
    return "" if not math.isfinite(x) else f"{x:.{digits}f}"


def _coef_rows(tables: list[pd.DataFrame], terms: list[str], rename: Callable[[str], str], digits: int,
               cuts: tuple, statistic: str, beside: bool) -> list[Row]:
    labels: dict[str, list[str]] = {}
    for t in terms:
        labels.setdefault(rename(t), []).append(t)
    col = {"std.error": 1, "statistic": 2, "p.value": 3}[statistic]
    rows = []
    for label, group in labels.items():
        est, sec = [], []
        for j, tab in enumerate(tables):
            present = [t for t in group if t in tab.index]
            if len(present) > 1:
                raise OptionError(f"coef_names gives {present} of model {j + 1} one name, {label!r}")
            if not present:
                est.append(Cell())
                sec.append(Cell())
                continue
            v = tab.loc[present[0]].to_numpy(dtype=float)
            s = _number(v[col], digits)
            se_text = f"({s})" if s else ""
            star = signif_stars(v[3], cuts) if cuts else ""
            b = _number(v[0], digits) or "NA"  # an aliased coefficient, R's NA
            est.append(Cell(b, star, f" {se_text}" if beside and se_text else ""))
            sec.append(Cell(se_text))
        rows.append(Row("estimates", label, "estimate", tuple(est)))
        if not beside:
            rows.append(Row("estimates", label, statistic, tuple(sec)))
    return rows


def _call(fit: Any, name: str) -> float | None:
    method = getattr(fit, name, None)
    if not callable(method):
        return None
    try:
        return float(method())
    except TorchlmError:  # e.g. tl.infer estimates whose loss is no likelihood: no AIC
        return None


def fit_statistic(fit: Any, key: str) -> float | None:
    """One fit statistic of a fit for the table, or None where it does not apply.

    Parameters
    ----------
    fit : a fitted model
    key : str
        One of STAT_LABELS: "nobs", "r2", "adj_r2", "aic", "bic", "loglik", "dispersion" (GLMs whose
        dispersion is estimated), "theta" (glm_nb), "sigma", "deviance", "df_residual".

    Returns
    -------
    float or None
    """
    if key in ("aic", "bic", "loglik"):
        return _call(fit, key)
    if key == "dispersion":
        # estimated where the GLM's tests are t tests (R's summary.glm); glm.nb's is 1, as binomial's and poisson's
        estimated = getattr(fit, "family", None) is not None and getattr(fit, "statistic", "z") == "t"
        return getattr(fit, "dispersion", None) if estimated else None
    attr = {"r2": "r_squared", "adj_r2": "adj_r_squared"}.get(key, key)
    v = getattr(fit, attr, None)
    return None if v is None or callable(v) else float(v)


def _stat_rows(fits: list[Any], stats: Sequence[str], digits: int) -> list[Row]:
    if isinstance(stats, str) or not all(isinstance(k, str) for k in stats):
        raise OptionError("stats must be a sequence of names such as ('nobs', 'r2', 'aic')")
    unknown = [k for k in stats if k not in STAT_LABELS]
    if unknown:
        raise OptionError(f"unknown stats {unknown}; choose from {', '.join(STAT_LABELS)}")
    rows = []
    for key in stats:
        values = [fit_statistic(f, key) for f in fits]
        cells = tuple(Cell("" if v is None or not math.isfinite(v) else
                           str(int(v)) if key in _INTEGER_STATS else _number(v, digits)) for v in values)
        if any(c.number for c in cells):
            rows.append(Row("gof", STAT_LABELS[key], "", cells, key))
    return rows


def _fixef_rows(fits: list[Any]) -> list[Row]:
    """One row per fixed effect of the fixest fits (modelsummary's "FE: firm", X where a model absorbs it)."""
    names: list[str] = []
    for f in fits:
        names += [n for n in getattr(f, "fixef_names", []) if n not in names]
    return [Row("gof", f"FE: {n}", "", tuple(Cell("X" if n in getattr(f, "fixef_names", []) else "") for f in fits),
                "fixef") for n in names]


def _vcov_cell(fit: Any, spec: Any) -> Cell:
    # a fixest fit names its own covariance (its default is clustered, and fixest's specs are its own)
    own = getattr(fit, "vcov_type", None)
    return Cell(own(spec) if callable(own) else vcov_label(spec))


def build_table(models: Any, *, vcov: Any = None, stars: Any = True, digits: int = 3, keep: Any = None,
                drop: Any = None, coef_names: Any = None, stats: Sequence[str] = DEFAULT_STATS,
                statistic: str = "std.error", se_position: str = "below", notes: Sequence[str] = ()) -> ModelTable:
    """The table of :func:`etable` before it is rendered (the arguments are etable's).

    Returns
    -------
    ModelTable
    """
    names, fits = _models(models)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 15:
        raise OptionError(f"digits is the number of decimals, an integer from 0 to 15, not {digits!r}")
    if statistic not in STATISTICS:
        raise OptionError(f"statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    if se_position not in ("below", "beside"):
        raise OptionError(f"se_position must be 'below' or 'beside', not {se_position!r}")
    cuts = _star_cuts(stars)
    specs = _vcovs(vcov, len(fits))
    tables = [f.coef_table(v) for f, v in zip(fits, specs)]
    terms = _terms(tables, keep, drop)
    rows = _coef_rows(tables, terms, _rename(coef_names), digits, cuts, statistic, se_position == "beside")
    rows += _fixef_rows(fits) + _stat_rows(fits, stats, digits)
    if any(v is not None for v in specs) or any(callable(getattr(f, "vcov_type", None)) for f in fits):
        rows.append(Row("gof", VCOV_ROW, "", tuple(_vcov_cell(f, v) for f, v in zip(fits, specs)), "vcov"))
    extra = [notes] if isinstance(notes, str) else list(notes)
    foot = ([stars_legend(cuts)] if cuts else []) + [f"{STATISTICS[statistic]} in parentheses."] + extra
    return ModelTable(tuple(names), tuple(rows), tuple(foot))


def _labels(t: ModelTable, label: Callable[[Row], str]) -> list[str]:
    """Each row's label: the term on an estimate row, blank on the statistic row below it, the statistic's name."""
    return ["" if r.part == "estimates" and r.statistic != "estimate" else label(r) for r in t.rows]


def to_frame(t: ModelTable) -> pd.DataFrame:
    """The table as modelsummary's data frame: columns part, term, statistic and one per model, all strings.

    Returns
    -------
    pandas.DataFrame
        ``attrs["notes"]`` holds the lines below the table (the stars' legend).
    """
    cols = ["part", "term", "statistic"] + list(t.models)
    out = pd.DataFrame([[r.part, r.term, r.statistic] + [c.text for c in r.cells] for r in t.rows], columns=cols)
    out.attrs["notes"] = list(t.notes)
    return out


_MD_SPECIAL = re.compile(r"([\\|*_`])")


def _md(s: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", s)


def _md_cell(c: Cell) -> str:
    # stars right after a number cannot open emphasis in markdown: they stay as typed, the rest is escaped
    return _md(c.number) + c.stars.replace("|", "\\|") + _md(c.tail)


def to_markdown(t: ModelTable) -> str:
    """The table as a markdown (pipe) table, the notes below it.

    Returns
    -------
    str
    """
    body = [[_md(lab)] + [_md_cell(c) for c in r.cells] for lab, r in zip(_labels(t, lambda r: r.term), t.rows)]
    head = [""] + [_md(m) for m in t.models]
    widths = [max([3, len(head[j])] + [len(row[j]) for row in body]) for j in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if j == 0 else c.center(w) for j, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if j == 0 else ":" + "-" * w + ":" for j, w in enumerate(widths)) + "|"
    lines = [line(head), rule] + [line(row) for row in body]
    if t.notes:
        for n in t.notes:  # a paragraph each
            lines += ["", _md(n)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    """LaTeX text with its special characters escaped.

    Returns
    -------
    str
    """
    return "".join(_TEX.get(ch, ch) for ch in s)


def _tex_cell(c: Cell) -> str:
    stars = f"$^{{{tex_escape(c.stars)}}}$" if c.stars else ""
    return tex_escape(c.number) + stars + tex_escape(c.tail)


def to_latex(t: ModelTable) -> str:
    """The table as a LaTeX tabular with booktabs rules (\\usepackage{booktabs}); the notes as its last rows.

    Returns
    -------
    str
    """
    k = len(t.models)
    labels = _labels(t, lambda r: _TEX_LABELS.get(r.key) or tex_escape(r.term))
    lines = [f"\\begin{{tabular}}{{l{'c' * k}}}", "\\toprule",
             " & " + " & ".join(tex_escape(m) for m in t.models) + " \\\\", "\\midrule"]
    part = t.rows[0].part if t.rows else ""
    for lab, r in zip(labels, t.rows):
        if r.part != part:
            lines.append("\\midrule")
            part = r.part
        lines.append(f"{lab} & " + " & ".join(_tex_cell(c) for c in r.cells) + " \\\\")
    lines.append("\\bottomrule")
    lines += [f"\\multicolumn{{{k + 1}}}{{l}}{{\\footnotesize {tex_escape(n)}}} \\\\" for n in t.notes]
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


_CELL = "padding:0.15em 0.8em;text-align:center"
_LABEL = "text-align:left;font-weight:normal;padding-right:1em"


def to_html(t: ModelTable) -> HTMLTable:
    """The table as an HTML ``<table>`` (text escaped): a rule under the heading and above the statistics.

    Returns
    -------
    HTMLTable
        A str; a notebook shows it as the table.
    """
    k = len(t.models)
    head = "<th></th>" + "".join(f"<th style='{_CELL}'>{html.escape(m)}</th>" for m in t.models)
    groups: dict[str, list[str]] = {"estimates": [], "gof": []}
    for lab, r in zip(_labels(t, lambda r: r.term), t.rows):
        tds = "".join(f"<td style='{_CELL}'>{html.escape(c.text)}</td>" for c in r.cells)
        groups[r.part].append(f"<tr><th style='{_LABEL}'>{html.escape(lab)}</th>{tds}</tr>")
    bodies = f"<tbody>{''.join(groups['estimates'])}</tbody>"
    if groups["gof"]:
        bodies += f"<tbody style='border-top:1px solid'>{''.join(groups['gof'])}</tbody>"
    foot = "".join(f"<tr><td colspan='{k + 1}' style='text-align:left;font-size:smaller'>{html.escape(n)}</td></tr>"
                   for n in t.notes)
    return HTMLTable(
        "<table class='torchlm-etable' style='border-collapse:collapse;border-top:2px solid;border-bottom:2px solid'>"
        f"<thead><tr style='border-bottom:1px solid'>{head}</tr></thead>{bodies}"
        + (f"<tfoot>{foot}</tfoot>" if foot else "") + "</table>")


def etable(models: Any, type: str = "df", *, vcov: Any = None, stars: Any = True, digits: int = 3, keep: Any = None,
           drop: Any = None, coef_names: Any = None, stats: Sequence[str] = DEFAULT_STATS,
           statistic: str = "std.error", se_position: str = "below",
           notes: Sequence[str] = ()) -> pd.DataFrame | str:
    """A table of several fitted models side by side, as R's modelsummary (and pyfixest's etable) lays it out.

    Parameters
    ----------
    models : list of fits, or dict {column name: fit}
        Fits of any kind that shares the result base: tl.lm, tl.glm, tl.glm_nb, tl.nls, tl.aov, tl.mle and
        tl.infer estimates. Columns are named (1), (2), ... or by the dict's keys.
    type : {"df", "md", "tex", "html"}
        A pandas DataFrame of strings (modelsummary's ``output = "data.frame"``: columns part, term,
        statistic and one per model), markdown text, a LaTeX tabular (booktabs) or an HTML table.
    vcov : covariance choice, or list of them
        One ``vcov=`` for every model ("HC3", {"cluster": "cyl"}, a matrix as an array), or a list with
        one per model (None: the model's own). When any is given, a "Std. Errors" row names them.
    stars : bool or dict
        True: R's printCoefmat stars, *** p <= 0.001, ** 0.01, * 0.05, . 0.1, with R's legend below (pyfixest
        and modelsummary draw other lines: give ``{"***": 0.001, "**": 0.01, "*": 0.05}`` for those).
        False: none.
    digits : int
        Decimals of every number (modelsummary's ``fmt = 3``, pyfixest's ``digits = 3``); N is an integer.
    keep, drop : str or list of str
        Coefficients to keep (in the order of the patterns) or drop: names, or regular expressions
        searched in the names.
    coef_names : dict or callable
        New names of coefficients; coefficients of different models given one name share a row.
    stats : sequence of str
        The statistics rows, in order, each shown where it applies (a row no model has is left out):
        "nobs" (N), "r2", "adj_r2", "aic", "bic", "loglik", "dispersion" (GLMs whose dispersion is
        estimated), "theta" (glm_nb), "sigma", "deviance", "df_residual".
    statistic : {"std.error", "statistic", "p.value"}
        What the parentheses hold.
    se_position : {"below", "beside"}
        The parentheses on a row of their own under the estimate, or in the estimate's cell.
    notes : sequence of str
        More lines below the table.

    Returns
    -------
    pandas.DataFrame or str
        The DataFrame (its ``attrs["notes"]`` the lines below), or the text (for "html" a str that a
        notebook shows as the table).

    Examples
    --------
    >>> import torchlm as tl
    >>> mtcars = tl.datasets.load("mtcars")
    >>> fits = [tl.lm("mpg ~ wt", mtcars), tl.lm("mpg ~ wt + hp", mtcars)]
    >>> print(tl.etable(fits, "md", stars=False, stats=("nobs", "r2")))
    |           |   (1)   |   (2)   |
    |:----------|:-------:|:-------:|
    | Intercept |  37.285 |  37.227 |
    |           | (1.878) | (1.599) |
    | wt        |  -5.344 |  -3.878 |
    |           | (0.559) | (0.633) |
    | hp        |         |  -0.032 |
    |           |         | (0.009) |
    | N         |    32   |    32   |
    | R²        |  0.753  |  0.827  |
    <BLANKLINE>
    Standard errors in parentheses.
    <BLANKLINE>
    """
    if type not in TYPES:
        raise OptionError(f"type must be one of {', '.join(repr(t) for t in TYPES)}, not {type!r}")
    t = build_table(models, vcov=vcov, stars=stars, digits=digits, keep=keep, drop=drop, coef_names=coef_names,
                    stats=stats, statistic=statistic, se_position=se_position, notes=notes)
    render: dict[str, Callable[[ModelTable], Any]] = {"df": to_frame, "md": to_markdown, "tex": to_latex,
                                                       "html": to_html}
    return render[type](t)
