"""R's number formatting (torchlm/rformat.py) and the printed summary, against output recorded from R.

fixtures/rformat.json is written by fixtures/make_rformat.R (R 4.2.2); the full summary texts
come from the conformance cases (r_info.summary_text). R is never needed to run these tests.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from _support import CONFORMANCE, FIXTURES

import torchlm as tl
from torchlm.present import rformat as rf

REF = json.loads((FIXTURES / "rformat.json").read_text(encoding="utf-8"))


def num(s: str) -> float:
    return float("nan") if s == "NA" else float(s)


def nums(v) -> list[float]:
    return [num(s) for s in v]


def case_id(c) -> str:
    return f"{','.join(c['x'][:3])}{'...' if len(c['x']) > 3 else ''}|d={c['digits']}"


def test_reference_was_recorded_from_r():
    assert REF["r_version"].startswith("R version 4.")
    assert len(REF["format"]) >= 30 and len(REF["format_pval"]) >= 15


@pytest.mark.parametrize("c", REF["format"], ids=case_id)
def test_format_num(c):
    """format(x, digits=): fixed vs scientific, common decimals, common width."""
    assert rf.format_num(nums(c["x"]), c["digits"]) == c["out"]


@pytest.mark.parametrize("c", [c for c in REF["format"] if len(c["x"]) == 1], ids=case_id)
def test_format_scalar(c):
    assert rf.format_scalar(num(c["x"][0]), c["digits"]) == c["out"][0]


@pytest.mark.parametrize("c", REF["formatC"], ids=case_id)
def test_format_c(c):
    """formatC(x, digits=): %.<digits>g, padded to digits + 1."""
    assert [rf.format_c(v, c["digits"]) for v in nums(c["x"])] == c["out"]


@pytest.mark.parametrize("c", REF["format_pval"], ids=case_id)
def test_format_pval(c):
    """format.pval(pv, digits=): '<2e-16' / '< 2.2e-16' below machine eps, 1e-4 kept fixed for digits > 1."""
    assert rf.format_pval(nums(c["x"]), c["digits"]) == c["out"]


@pytest.mark.parametrize("c", REF["zapsmall"], ids=case_id)
def test_zapsmall(c):
    got = [float(v) for v in rf.zapsmall(nums(c["x"]), c["digits"])]
    assert got == nums(c["out"])


@pytest.mark.parametrize("c", REF["signif"], ids=case_id)
def test_signif(c):
    assert [rf.signif(v, c["digits"]) for v in nums(c["x"])] == nums(c["out"])


def test_signif_stars_cutpoints():
    # R: symnum(p, cutpoints = c(0, 0.001, 0.01, 0.05, 0.1, 1), symbols = c("***", "**", "*", ".", " "))
    cases = {0.0: "***", 0.001: "***", 0.0010001: "**", 0.01: "**", 0.05: "*", 0.0501: ".",
             0.1: ".", 0.2: " ", 1.0: " "}
    for p, sym in cases.items():
        assert rf.signif_stars(p) == sym, p
    assert rf.signif_stars(math.nan) == ""


# --- full summary text vs R's print(summary(lm(...))) -----------------------------------------

SUMMARY_CASES = [
    "lm_mtcars_factor_cyl",        # factor dummies, '< 2e-16'
    "lm_mtcars_rank_deficient",    # NA row, '(1 not defined because of singularities)'
    "lm_airquality_na",            # '(42 observations deleted due to missingness)', '< 2.2e-16'
    "lm_mtcars_weighted",          # 'Weighted Residuals:'
    "lm_plantgrowth_no_intercept", # uncentered R^2, '<2e-16' without the space
    "lm_mtcars_poly2",             # row names with spaces: poly(hp, 2)1
]


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("torchlm_conformance_check_rf", CONFORMANCE / "check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def comparable(lines: list[str], rownames: list[str], norm) -> list:
    """Lines from 'Residuals:' on; coefficient rows as (normalised row name, rest of the line).

    The row-name column is as wide as the longest name, so the header line and each row are
    compared without it (R prints (Intercept) / factor(cyl)6 where torchlm keeps formulaic's
    Intercept / C(cyl)[T.6]); what follows it, column widths included, must be identical.
    """
    rw = max(len(n) for n in rownames)
    start = next(i for i, l in enumerate(lines) if l.endswith("Residuals:"))
    out, rows = [], iter(rownames)
    in_coef = header = False
    for line in lines[start:]:
        if line.startswith("Coefficients"):
            in_coef = header = True
            out.append(line)
        elif in_coef and line in ("", "---"):
            in_coef = False
            out.append(line)
        elif in_coef and header:
            header = False
            assert line[:rw].strip() == "", line
            out.append(("<header>", line[rw:]))
        elif in_coef:
            name = next(rows)
            assert line.startswith(name), (line, name)
            assert line[len(name):rw].strip() == "", line
            out.append((norm(name), line[rw:]))
        else:
            out.append(line)
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case_id", SUMMARY_CASES)
def test_summary_text_matches_r(checker, case_id):
    path = CONFORMANCE / "cases" / f"{case_id}.json"
    case = json.loads(path.read_text(encoding="utf-8"))
    py = case["py"]
    kw = {"weights": py["weights"]} if py.get("weights") else {}
    fit = tl.lm(py["formula"], data=checker.load_data(case, str(path)), **kw)
    r_lines = case["r_info"]["summary_text"]
    got_lines = str(fit.summary()).split("\n")
    want = comparable(r_lines, list(case["expected"]["coef"]), checker.norm_term)
    got = comparable(got_lines, fit.names, checker.norm_term)
    assert len(got) == len(want), "\n".join(got_lines)
    for g, w in zip(got, want):
        assert g == w



@pytest.mark.parametrize("name", sorted(REF["summary"]))
def test_summary_text_matches_r_small_data(checker, name):
    """print(summary(lm(y ~ x))) recorded by make_rformat.R, with the data given in full in the JSON.

    rounds_up_width: the intercept -99.9962 prints as -99.99620, but R's format() sizes the column
    for the value rounded to 4 significant digits (-100.0), so R's Estimate column is one wider.
    """
    ref = REF["summary"][name]
    data = {"x": nums(ref["x"]), "y": nums(ref["y"])}
    fit = tl.lm("y ~ x", data=data)
    r_lines = ref["summary_text"]
    got_lines = str(fit.summary()).split("\n")
    want = comparable(r_lines, ["(Intercept)", "x"], checker.norm_term)
    got = comparable(got_lines, fit.names, checker.norm_term)
    assert len(got) == len(want), "\n".join(got_lines)
    for g, w in zip(got, want):
        assert g == w
