"""Notebook HTML (``_repr_html_``) of anova tables and summaries: R's printout, every line in order, its tables as
HTML tables of R's cells.

References: tests/fixtures/etable/*.txt, R 4.2.2's printouts written by make_etable.R (MASS, car). The HTML is
parsed with html.parser: each ``<pre>`` line must be the printout's line, each table row must hold the printout
line's cells (the same words in the same order, blank cells blank), and the printout is R's (the call lines,
which name R's data argument, and nls's convergence tolerance, which R's numerical gradient moves, aside).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import torchlm as tl
from torchlm.models.families import Gamma
from torchlm.present import rformat as rf

HERE = Path(__file__).parent / "fixtures" / "etable"
MTCARS = tl.datasets.load("mtcars")
QUINE = tl.datasets.load("quine")
NPK = tl.datasets.load("npk")
PUR = tl.datasets.load("Puromycin")
TREATED = PUR[PUR["state"] == "treated"].reset_index(drop=True)
NOT_R = re.compile(r"^(lm|glm|glm\.nb)\(|^    link = |^Achieved convergence tolerance")


def m1():
    return tl.lm("mpg ~ wt", MTCARS, names="R")


def m2():
    return tl.lm("mpg ~ wt + hp", MTCARS, names="R")


def g2():
    return tl.glm("am ~ wt + hp", MTCARS, family="binomial", names="R")


def nb():
    return tl.glm_nb("Days ~ Sex + Age", QUINE, names="R")


OBJECTS = {
    "anova_lm": lambda: tl.anova(m2()),
    "anova_glm": lambda: tl.anova(g2(), test="Chisq"),
    "anova_lm_two": lambda: tl.anova(m1(), m2()),
    "drop1_lm": lambda: tl.drop1(m2(), test="F"),
    "drop1_glm": lambda: tl.drop1(g2(), test="Chisq"),
    "add1_lm": lambda: tl.add1(m1(), "~ . + hp + qsec", test="F"),
    "car_anova_glm": lambda: tl.Anova(g2()),
    "step_path": lambda: tl.step(tl.lm("mpg ~ wt + hp + qsec + drat", MTCARS), trace=0).anova,
    "summary_lm": lambda: m2().summary(),
    "summary_glm": lambda: g2().summary(),
    "summary_glm_gamma": lambda: tl.glm("mpg ~ wt", MTCARS, family=Gamma(link="log"),
                                        names="R").summary(correlation=True),
    "summary_nls": lambda: tl.nls("rate ~ Vm * conc / (K + conc)", TREATED, start={"Vm": 200, "K": 0.1}).summary(),
    "summary_nb": lambda: nb().summary(),
    "anova_nb": lambda: tl.anova(tl.glm_nb("Days ~ Sex", QUINE, names="R"), nb()),
    "summary_aov": lambda: tl.aov("yield ~ block + N * P * K", NPK).summary(),
    "summary_aov_error": lambda: tl.aov("yield ~ N * P * K + Error(block)", NPK).summary(),
}


class Page(HTMLParser):
    """The HTML as a sequence of ("pre", lines) and ("table", rows of cells) items; rows also keep their tags."""

    def __init__(self):
        super().__init__()
        self.items, self.tags, self._text, self._row, self._in = [], [], None, None, []

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        self.tags.append((tag, dict(attrs)))
        if tag == "pre":
            self._text = ""
        elif tag == "table":
            self.items.append(("table", []))
        elif tag == "tr":
            self._row = []
            self.items[-1][1].append(self._row)
        elif tag in ("td", "th"):
            self._text = ""

    def handle_endtag(self, tag):
        self._in.pop()
        if tag == "pre":
            # HTML drops a newline right after <pre> (as a browser does)
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.items.append(("pre", text.split("\n")))
            self._text = None
        elif tag in ("td", "th"):
            self._row.append((tag, self._text))
            self._text = None

    def handle_data(self, data):
        if self._text is not None and "style" not in self._in:
            self._text += data


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    return p


def trimmed(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def r_lines(name: str) -> list[str]:
    return trimmed((HERE / f"{name}.txt").read_text())


def check_faithful(page: Page, lines: list[str]) -> list[list[list[str]]]:
    """Every line of the printout in order: <pre> lines equal, table rows with the line's cells. The tables' cells."""
    pos, tables = 0, []
    for kind, content in page.items:
        if kind == "pre":
            assert content == lines[pos:pos + len(content)]
            pos += len(content)
        else:
            tables.append([[c for _, c in row] for row in content])
            for row in content:
                assert " ".join(c for _, c in row).split() == lines[pos].split(), lines[pos]
                pos += 1
    assert pos == len(lines)
    return tables


@pytest.mark.parametrize("name", list(OBJECTS))
def test_html_is_the_printout(name):
    obj = OBJECTS[name]()
    text = trimmed(str(obj))
    page = parse(obj._repr_html_())
    tables = check_faithful(page, text)
    assert len(tables) == (2 if name == "summary_aov_error" else 1)
    # and the printout is R's
    r = r_lines(name)
    assert len(r) == len(text) or name == "summary_nb"  # R breaks glm.nb's long call over two lines
    ours = [l for l in text if not NOT_R.match(l)]
    assert ours == [l for l in r if not NOT_R.match(l)]
    # one cell per column in every row, the row names as row headings
    for kind, rows in page.items:
        if kind == "table":
            assert len({len(row) for row in rows}) == 1
            assert all(row[0][0] == "th" for row in rows)


@pytest.mark.parametrize("name", ["summary_lm", "summary_glm", "summary_glm_gamma", "summary_nls", "summary_nb"])
def test_summary_cells_are_the_printers(name):
    s = OBJECTS[name]()
    table = s._full_table() if hasattr(s, "_full_table") else s.coefficients.to_numpy()
    cells, stars = rf.coef_table_cells(table, 4)
    page = parse(s._repr_html_())
    (rows,) = [content for kind, content in page.items if kind == "table"]
    assert [c for _, c in rows[0]] == [""] + list(s.coefficients.columns) + ([""] if stars else [])
    for i, row in enumerate(rows[1:]):
        assert [c for _, c in row[1:]] == [c.strip() for c in cells[i]] + ([stars[i].strip()] if stars else [])


def test_summary_has_everything_in_order():
    """Residuals, the vcov note above the table, the legend below it, and the glm iteration line."""
    s = m2().summary(vcov="HC3")
    page = parse(s._repr_html_())
    kinds = [k for k, _ in page.items]
    assert kinds == ["pre", "table", "pre"]
    before, after = page.items[0][1], page.items[2][1]
    assert before[:2] == ["Call:", s.fit.call] and "Residuals:" in before
    assert before[-2:] == ["Standard errors: HC3 (heteroskedasticity-consistent)", "Coefficients:"]
    assert after[:2] == ["---", rf.SIGNIF_LEGEND]
    assert after[-1].startswith("Wald F-statistic:")
    g = parse(g2().summary()._repr_html_())
    assert g.items[0][1][3] == "Deviance Residuals: "
    assert g.items[-1][1][-1] == "Number of Fisher Scoring iterations: 8"
    n = parse(nb().summary()._repr_html_()).items[-1][1]
    assert n[-5:] == r_lines("summary_nb")[-5:] and n[-3].startswith("          Std. Err.:")


def cells_of(name):
    (rows,) = [c for k, c in parse(OBJECTS[name]()._repr_html_()).items if k == "table"]
    return [[c for _, c in row] for row in rows]


def test_blank_where_r_is_blank():
    """R's blanks (hand-checked against R's printouts): no F test for the residuals, nothing for <none>."""
    a = cells_of("anova_lm")
    assert a[0] == ["", "Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)", ""]
    assert a[1] == ["wt", "1", "847.73", "847.73", "126.041", "4.488e-12", "***"]
    assert a[3] == ["Residuals", "29", "195.05", "6.73", "", "", ""]
    d = cells_of("drop1_glm")
    assert d[1][:2] == ["<none>", ""] and d[1][4:] == ["", "", ""]
    two = cells_of("anova_lm_two")
    assert two[1] == ["1", "30", "278.32", "", "", "", "", ""]
    s = cells_of("step_path")
    assert s[0] == ["", "Step", "Df", "Deviance", "Resid. Df", "Resid. Dev", "AIC"]
    assert s[1][:4] == ["1", "", "NA", "NA"] and s[2][1] == "- hp"  # print.data.frame's NA, a blank Step
    lr = cells_of("anova_nb")
    assert lr[1][1] == "Sex" and lr[1][5:] == ["", "", "", ""] and lr[2][5] == "1 vs 2"
    car = cells_of("car_anova_glm")
    assert car[0] == ["", "LR Chisq", "Df", "Pr(>Chisq)", ""]


def test_heading_above_and_legend_below():
    items = parse(OBJECTS["add1_lm"]()._repr_html_()).items
    assert [k for k, _ in items] == ["pre", "table", "pre"]
    assert items[0][1] == ["Single term additions", "", "Model:", "mpg ~ wt"]
    assert items[2][1] == ["---", rf.SIGNIF_LEGEND]
    strata = parse(OBJECTS["summary_aov_error"]()._repr_html_()).items
    assert [k for k, _ in strata] == ["pre", "table", "pre", "table", "pre"]
    assert strata[0][1] == ["Error: block"] and strata[2][1] == ["", "Error: Within"]


def test_escaped_and_scoped():
    page = tl.drop1(g2(), test="Chisq")._repr_html_()
    assert page.startswith("<div class='torchlm-anova'><style>") and "<th>&lt;none&gt;</th>" in page
    assert "Pr(&gt;Chi)" in page and "<none>" not in page.replace("<th>&lt;none&gt;</th>", "")
    summary = m2().summary()._repr_html_()
    assert summary.startswith("<div class='torchlm-summary'>") and "<td>&lt; 2e-16</td>" in summary
    # a derived frame is a plain DataFrame again, with pandas' own HTML
    assert "torchlm" not in tl.anova(m2()).iloc[:1]._repr_html_()


def test_wrapped_columns_are_one_table():
    """R wraps a wide table at 80 characters (the row names again under the rest); the HTML table is whole."""
    wide = tl.anova(m2())
    wide = tl.inference.tables.anova_table(wide.rename(index=lambda r: r * 5), wide.attrs["heading"])
    text = str(wide)
    assert text.count("Pr(>F)") == 1 and text.count("Residuals" * 5) == 2  # wrapped into two column groups
    items = parse(wide._repr_html_()).items
    assert [k for k, _ in items] == ["pre", "table", "pre"] and items[2][1] == ["---", rf.SIGNIF_LEGEND]
    rows = [[c for _, c in row] for row in items[1][1]]
    assert rows[0] == ["", "Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)", ""]
    assert rows[1] == ["wt" * 5, "1", "847.73", "847.73", "126.041", "4.488e-12", "***"]
    assert rows[3] == ["Residuals" * 5, "29", "195.05", "6.73", "", "", ""]
