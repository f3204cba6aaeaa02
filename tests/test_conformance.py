"""R conformance: every lm and glm case recorded from GNU R 4.2.2 must pass the shared checker at rtol 1e-8.

The cases, their data and the checker are vendored under tests/fixtures/conformance (a copy of the
project's shared conformance suite), so this runs on a clean clone. glm references are at the exact
maximum-likelihood estimate (see the suite's README): the checker passes tl.glm(exact=True).
Every field of each case's "expected" block is compared, robust (vcov_robust: sandwich::vcovHC) and
clustered (vcov_cluster: sandwich::vcovCL) covariances included.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from _support import CONFORMANCE

CASES_DIR = CONFORMANCE / "cases"
CASE_IDS = sorted(p.stem for p in CASES_DIR.glob("*.json"))

EXPECTED_IDS = {
    "lm_airquality_na", "lm_cars_quadratic_I", "lm_cars_simple", "lm_iris_interaction_anova",
    "lm_iris_species", "lm_iris_zero_plus", "lm_mtcars_factor_cyl", "lm_mtcars_multiple_hc",
    "lm_mtcars_poly2", "lm_mtcars_rank_deficient", "lm_mtcars_weighted", "lm_petersen_cluster",
    "lm_plantgrowth_no_intercept", "lm_synthetic_5000", "lm_toothgrowth_interaction", "lm_trees_loglog",
    "glm_beetle_prop_weights", "glm_clotting_gamma_inverse", "glm_clotting_inverse_gaussian",
    "glm_insectsprays_poisson", "glm_insurance_offset", "glm_menarche_cbind", "glm_mtcars_binomial",
    "glm_mtcars_gamma_log", "glm_mtcars_gaussian", "glm_toothgrowth_poisson_hc",
}


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("torchlm_conformance_check", CONFORMANCE / "check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_all_cases_present():
    assert set(CASE_IDS) == EXPECTED_IDS


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_case_data_is_vendored(case_id):
    case = json.loads((CASES_DIR / f"{case_id}.json").read_text())
    assert case["id"] == case_id
    assert (CASES_DIR / case["data"]).resolve().is_file(), case["data"]


@pytest.mark.filterwarnings("ignore:prediction from a rank-deficient fit:UserWarning")
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_conformance_case(checker, case_id, capsys):
    rc = checker.main([
        str(CASES_DIR), "--only", case_id,
        "--rtol", "1e-8", "--timeout", "300", "-v",
    ])
    out = capsys.readouterr().out
    assert f"PASS {case_id}" in out, out
    assert "conformance: 1/1 cases pass" in out, out
    assert rc == 0, out
