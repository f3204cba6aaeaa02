"""tl.emmeans is R's emmeans package (1.8.4.1): marginal means, contrasts, adjusted tests and the printed text.

Each case of tests/fixtures/emmeans/emmeans.json (made by make_emmeans.R) is one emmeans object in R; here the
same call on the same fit must give its summary's columns at rtol 1e-9, its printed text line for line, and the
messages R emitted (the note on interactions, a changed adjustment) as TorchlmWarnings.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.errors import ModelInputError, OptionError, TorchlmWarning
from torchlm.inference.emm_adjust import p_adjust, zeroin

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "emmeans"
REFERENCE = json.loads((FIXTURES / "emmeans.json").read_text())
RTOL = 1e-9
ADJUSTMENTS = ("holm", "hochberg", "hommel", "BH", "BY", "fdr", "bonferroni", "sidak", "scheffe", "none")


@functools.cache
def fits() -> dict:
    mt, wb = tl.datasets.load("mtcars"), tl.datasets.load("warpbreaks")
    ins, es = tl.datasets.load("Insurance"), tl.datasets.load("esoph")
    batches = pd.read_csv(FIXTURES / "batches.csv", dtype={"batch": "category", "trt": "category"})
    with tl.errors.silenced():  # the probit fit's fitted probabilities of 0 or 1, as R warns
        probit = tl.glm("am ~ wt + factor(cyl)", mt, family=tl.families.Binomial("probit"))
    return {
        "fit": tl.lm("mpg ~ factor(cyl) + factor(am) + wt", mt),
        "fit_am": tl.lm("mpg ~ factor(cyl) + am + wt", mt),
        "fit_log": tl.lm("log(mpg) ~ factor(cyl) + wt", mt),
        "warp": tl.lm("breaks ~ wool * tension", wb),
        "warp2": tl.lm("breaks ~ wool * tension", wb, subset=~((wb.wool == "A") & (wb.tension == "M")).to_numpy()),
        "binom": tl.glm("am ~ factor(cyl) + wt", mt, family="binomial"),
        "probit": probit,
        "esoph": tl.glm("cbind(ncases, ncontrols) ~ agegp + alcgp", es, family="binomial"),
        "ins": tl.glm("Claims ~ District + Group + Age + offset(log(Holders))", ins, family="poisson"),
        "ins_arg": tl.glm("Claims ~ District + Group + Age", ins, family="poisson", offset=np.log(ins.Holders)),
        "pois": tl.glm("breaks ~ wool * tension", wb, family="poisson"),
        "nb": tl.glm_nb("breaks ~ wool + tension", wb),
        "nested": tl.lm("breaks ~ wool / tension", wb),
        "batch": tl.lm("y ~ trt + batch", batches),
        "wool_in_tension": tl.lm("breaks ~ wool:tension", wb),
        "weighted": tl.lm("mpg ~ factor(cyl) + factor(gear) + wt", mt, weights=mt.hp),
        "quasi": tl.glm("breaks ~ wool + tension", wb, family="quasipoisson"),
        "gauss_log": tl.glm("mpg ~ factor(cyl) + wt", mt, family=tl.families.Gaussian("log")),
        "logical": tl.lm("mpg ~ manual + engine + wt", pd.read_csv(FIXTURES / "logical_data.csv")),
    }


def _cases() -> dict:
    em = lambda f, *a, **k: tl.emmeans(fits()[f], *a, **k)  # noqa: E731
    cyl = lambda: em("fit", "cyl")  # noqa: E731
    tension = lambda: em("warp", "tension")  # noqa: E731
    cases = {
        "lm_cyl": cyl,
        "lm_cyl_pairs": lambda: cyl().pairs(),
        "lm_cyl_pairs_confint": lambda: cyl().pairs().confint(),
        "lm_cyl_pairs_infer": lambda: cyl().pairs().summary(infer=True),
        "lm_cyl_revpairs": lambda: cyl().pairs(reverse=True),
        "lm_cyl_confint_bonferroni": lambda: cyl().confint(adjust="bonferroni"),
        "lm_cyl_confint_tukey": lambda: cyl().confint(adjust="tukey"),
        "lm_cyl_confint_scheffe": lambda: cyl().confint(adjust="scheffe"),
        "lm_cyl_level90": lambda: em("fit", "cyl", level=0.9),
        "lm_cyl_test": lambda: cyl().test(),
        "lm_cyl_by_am": lambda: em("fit", "cyl", by="am"),
        "lm_cyl_by_am_pairs": lambda: em("fit", "cyl", by="am").pairs(),
        "lm_cyl_at_wt": lambda: em("fit", "cyl", at={"wt": 3}),
        "lm_cyl_at_wt_values": lambda: em("fit", "cyl", at={"wt": [2.5, 3.5]}),
        "lm_am_at_cyl": lambda: em("fit", "am", at={"cyl": [4, 8]}),
        "lm_cyl_am": lambda: em("fit", "~ cyl * am"),
        "lm_cyl_am_pairs": lambda: em("fit", "~ cyl * am").pairs(),
        "lm_overall": lambda: em("fit", "~ 1"),
        "lm_cyl_vcov_hc3": lambda: em("fit", "cyl", vcov="HC3"),
        "lm_pairwise_formula": lambda: em("fit", "pairwise ~ cyl"),
        "lm_trt_formula_by": lambda: em("fit", "trt.vs.ctrl ~ cyl | am"),
        "lm_numeric_two_values": lambda: em("fit_am", "cyl"),
        "lm_log_response": lambda: em("fit_log", "cyl", type="response"),
        "lm_log_response_pairs": lambda: em("fit_log", "cyl", type="response").pairs(),
        "lm_log_link": lambda: em("fit_log", "cyl"),
        "lm_log_link_pairs": lambda: em("fit_log", "cyl").pairs(),
        "warp_tension_by_wool": lambda: em("warp", "~ tension | wool"),
        "warp_tension_by_wool_pairs": lambda: em("warp", "~ tension | wool").pairs(),
        "warp_tension": tension,
        "warp_trt_vs_ctrl": lambda: tension().contrast("trt.vs.ctrl"),
        "warp_trt_vs_ctrl_confint": lambda: tension().contrast("trt.vs.ctrl").confint(),
        "warp_trt_vs_ctrl_ref3": lambda: tension().contrast("trt.vs.ctrl", ref=3),
        "warp_trt_vs_ctrlk": lambda: tension().contrast("trt.vs.ctrlk"),
        "warp_dunnett_by": lambda: em("warp", "~ tension | wool").contrast("dunnett"),
        "warp_poly": lambda: tension().contrast("poly"),
        "warp_revpairwise": lambda: tension().contrast("revpairwise"),
        "warp_eff": lambda: tension().contrast("eff"),
        "warp_del_eff": lambda: tension().contrast("del.eff"),
        "warp_consec_holm": lambda: tension().contrast("consec", adjust="holm"),
        "warp_mean_chg_none": lambda: tension().contrast("mean_chg", adjust="none"),
        "warp_custom": lambda: tension().contrast({"LvsMH": [1, -0.5, -0.5], "MvsH": [0, 1, -1]}),
        "warp_cells": lambda: em("warp", "~ wool * tension"),
        "warp_cells_pairs": lambda: em("warp", "~ wool * tension").pairs(),
        "warp_nonest_cells": lambda: em("warp2", "~ wool * tension"),
        "warp_nonest_tension": lambda: em("warp2", "tension"),
        "warp_nonest_tension_pairs": lambda: em("warp2", "tension").pairs(),
        "warp_nonest_pairs_by_wool": lambda: em("warp2", "~ wool * tension").pairs(by="wool"),
        "binomial_response": lambda: em("binom", "cyl", type="response"),
        "binomial_response_pairs": lambda: em("binom", "cyl", type="response").pairs(),
        "binomial_link": lambda: em("binom", "cyl"),
        "binomial_link_pairs": lambda: em("binom", "cyl").pairs(),
        "binomial_response_summary_link": lambda: em("binom", "cyl", type="response").summary(type="link"),
        "probit_response": lambda: em("probit", "cyl", type="response"),
        "probit_link_pairs": lambda: em("probit", "cyl").pairs(),
        "esoph_link": lambda: em("esoph", "alcgp"),
        "esoph_revpairs": lambda: em("esoph", "alcgp").pairs(reverse=True),
        "esoph_response_pairs": lambda: em("esoph", "alcgp", type="response").pairs(),
        "poisson_offset_response": lambda: em("ins", "Group", type="response"),
        "poisson_offset_response_pairs": lambda: em("ins", "Group", type="response").pairs(),
        "poisson_offset_link_pairs": lambda: em("ins", "Group").pairs(),
        "poisson_offset_per_holder": lambda: em("ins", "Group", type="response", offset=0),
        "poisson_offset_argument": lambda: em("ins_arg", "Group", type="response"),
        "poisson_by_response_pairs": lambda: em("pois", "~ tension | wool", type="response").pairs(),
        "negbin_response": lambda: em("nb", "tension", type="response"),
        "negbin_response_pairs": lambda: em("nb", "tension", type="response").pairs(),
        "nested_term_crossed": lambda: em("nested", "wool", nesting=None),
        "nested_term_pairs_crossed": lambda: em("nested", "~ tension | wool", nesting=None).pairs(),
        "nested_data_crossed": lambda: em("batch", "trt", nesting=None),
        "interaction_only": lambda: em("wool_in_tension", "wool"),
        "weighted_proportional": lambda: em("weighted", "cyl", weights="proportional"),
        "weighted_cells": lambda: em("weighted", "gear", weights="cells"),
        "numeric_weights": lambda: em("fit", "cyl", weights=[1, 3]),
        "quasipoisson_response_pairs": lambda: em("quasi", "tension", type="response").pairs(),
        "gaussian_log_response": lambda: em("gauss_log", "cyl", type="response"),
        "ratios_false": lambda: em("pois", "tension", type="response").contrast("pairwise", ratios=False),
        "at_factor_levels": lambda: em("warp", "tension", at={"tension": ["L", "H"]}),
        "logical_and_text": lambda: em("logical", "~ manual * engine"),
        "logical_and_text_pairs": lambda: em("logical", "engine").pairs(),
        "regrid_binomial": lambda: em("binom", "cyl").regrid(),
        "regrid_binomial_pairs": lambda: em("binom", "cyl").regrid().pairs(),
        "regrid_poisson_offset_pairs": lambda: em("ins", "Group").regrid().pairs(adjust="holm"),
        "regrid_nonest_pairs": lambda: em("warp2", "tension").regrid().pairs(),
        "regrid_log_response": lambda: em("fit_log", "cyl").regrid(),
    }
    for a in ADJUSTMENTS:
        cases[f"lm_cyl_pairs_{a}"] = lambda a=a: cyl().pairs(adjust=a)
    for w in ("proportional", "cells", "outer", "flat"):
        cases[f"lm_cyl_weights_{w}"] = lambda w=w: em("fit", "cyl", weights=w)
    return cases


CASES = _cases()


def _built(name: str) -> tuple[object, str, list[str]]:
    """The case's object, its printed text and the TorchlmWarnings made while building and printing it."""
    fits()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = CASES[name]()
        text = str(obj)
    return obj, text, [str(w.message) for w in caught if issubclass(w.category, TorchlmWarning)]


def _tables(obj: object) -> dict:
    if isinstance(obj, tl.EmmList):
        return {k: v.summary() for k, v in obj.items()}
    return {None: obj if isinstance(obj, pd.DataFrame) else obj.summary()}


def _compare(table: pd.DataFrame, ref: dict) -> None:
    assert list(table.columns) == list(ref)
    for col, want in ref.items():
        got = table[col].tolist()
        if any(isinstance(v, str) for v in want):
            assert [str(v).upper() if isinstance(v, (bool, np.bool_)) else str(v) for v in got] == want, col
            continue
        want_f = np.array([np.nan if v is None else v for v in want], dtype=float)
        got_f = np.asarray(got, dtype=float)
        assert np.array_equal(np.isnan(got_f), np.isnan(want_f)), col
        np.testing.assert_allclose(got_f, want_f, rtol=RTOL, err_msg=col)


def test_every_fixture_case_has_a_call():
    assert sorted(CASES) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_numbers_are_emmeans(name):
    obj, _, _ = _built(name)
    ref = REFERENCE[name]["table"]
    tables = _tables(obj)
    refs = {None: ref} if None in tables else ref
    assert list(tables) == list(refs)
    for key, table in tables.items():
        _compare(table, refs[key])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_printed_text_is_emmeans(name):
    _, text, _ = _built(name)
    assert text.split("\n") == REFERENCE[name]["text"]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_messages_are_emmeans(name):
    _, _, messages = _built(name)
    assert messages == REFERENCE[name]["messages"]


@pytest.mark.parametrize("method", sorted(P_ADJUST) if (P_ADJUST := json.loads(
    (FIXTURES / "p_adjust.json").read_text())) else [])
def test_p_adjust_is_r(method):
    p = np.array([np.nan if v is None else v for v in P_ADJUST["p"]], dtype=float)
    if method == "p":
        return
    want = np.array([np.nan if v is None else v for v in P_ADJUST[method]], dtype=float)
    np.testing.assert_allclose(p_adjust(p, method, 6), want, rtol=1e-15)


def test_zeroin_is_brent():
    root = zeroin(lambda x: x * x - 2, 1.0, 2.0, -1.0, 2.0, 1e-12)
    assert abs(root - math.sqrt(2)) < 1e-11


def test_summary_is_a_data_frame_with_r_columns():
    tab = tl.emmeans(fits()["fit"], "cyl").summary()
    assert isinstance(tab, pd.DataFrame)
    assert list(tab.columns) == ["cyl", "emmean", "SE", "df", "lower.CL", "upper.CL"]
    assert tab.attrs["messages"] == ["Results are averaged over the levels of: am", "Confidence level used: 0.95"]


def test_unknown_factor_names_the_grid():
    with pytest.raises(OptionError, match="No variable named 'gear'"):
        tl.emmeans(fits()["fit"], "gear")


def test_mvt_adjustment_is_refused_with_alternatives():
    with tl.errors.silenced(), pytest.raises(OptionError, match="mvt"):
        str(tl.emmeans(fits()["warp"], "tension").contrast("consec"))


def test_unknown_contrast_method_lists_the_methods():
    with pytest.raises(OptionError, match="pairwise"):
        tl.emmeans(fits()["fit"], "cyl").contrast("allpairs")


def test_at_level_outside_a_factor_is_an_error():
    with pytest.raises(OptionError, match="not among its levels"):
        tl.emmeans(fits()["warp"], "tension", at={"wool": ["C"]})


def test_a_model_without_a_design_is_refused():
    d = tl.datasets.load("Puromycin")
    fit = tl.nls("rate ~ Vm * conc / (K + conc)", d, start={"Vm": 200, "K": 0.1})
    with pytest.raises(ModelInputError, match="formula and a data frame"):
        tl.emmeans(fit, "conc")


@pytest.mark.parametrize("fit, nest", [("nested", "tension %in% wool"), ("batch", "batch %in% trt")])
def test_nested_factors_are_named_and_refused(fit, nest):
    with pytest.raises(ModelInputError, match=f"{nest}.*nesting=None"):
        tl.emmeans(fits()[fit], "wool" if fit == "nested" else "trt")


def test_user_data_is_not_modified():
    mt = tl.datasets.load("mtcars")
    before = mt.copy()
    fit = tl.lm("mpg ~ factor(cyl) + wt", mt)
    str(tl.emmeans(fit, "cyl", at={"wt": 3}).pairs())
    pd.testing.assert_frame_equal(mt, before)


def test_update_and_regrid_refuse_unknown_settings():
    em = tl.emmeans(fits()["fit"], "cyl")
    with pytest.raises(OptionError, match="update"):
        em.update(levl=0.9)
    with pytest.raises(OptionError, match="regrid"):
        em.regrid("logit")
    assert "Confidence level used: 0.9 " in str(em.update(level=0.9))


def test_the_documentation_prints_what_it_shows():
    """docs/emmeans.md: each python block, run in turn, prints the text block that follows it."""
    import contextlib
    import io
    import re

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "emmeans.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 3
    scope: dict = {}
    for code, shown in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), tl.errors.silenced():
            exec(code, scope)
        assert out.getvalue() == shown
