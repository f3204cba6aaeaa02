"""Robust covariances against R's sandwich and lmtest: HC0-HC5, HAC, one- and two-way clustering, tests.

References come from tests/fixtures/sandwich/make_sandwich.R (R 4.2.2, sandwich 3.0-2, lmtest 0.9-40),
committed as sandwich.json; nothing here needs R.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _support import FIXTURES, read_exact_csv
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlm as tl
from torchlm.inference import leverages as lev
from torchlm.inference import sandwich as sw

DIR = FIXTURES / "sandwich"
REF = json.loads((DIR / "sandwich.json").read_text())
CASES = {c["id"]: c for c in REF["cases"]}
RTOL = 1e-10


def load(case) -> pd.DataFrame:
    return read_exact_csv(DIR / case["data"], keep_default_na=False, na_values=[""])


def fit_case(case):
    return tl.lm(case["formula_py"], data=load(case), weights=case["weights"])


def r_matrix(entry, aliased=()) -> np.ndarray:
    """R's matrix over the non-aliased terms (R writes aliased rows only in vcovCL's NA-free output)."""
    names = entry["rownames"]
    keep = [i for i, n in enumerate(names) if n not in aliased]
    return np.asarray(entry["matrix"], dtype=float)[np.ix_(keep, keep)]


def cov_reldiff(got: pd.DataFrame, want: np.ndarray) -> float:
    """max |got - want| / sqrt(|want_ii want_jj|): relative on the diagonal, on the correlation scale off it."""
    g = got.to_numpy()
    assert g.shape == want.shape
    d = np.sqrt(np.abs(np.diag(want)))
    return float(np.max(np.abs(g - want) / np.outer(d, d)))


MATRIX_CASES = [(cid, t) for cid, c in CASES.items() for t in c["vcov"]]


@pytest.mark.parametrize("case_id,type", MATRIX_CASES)
def test_vcovhc_matches_r(case_id, type):
    case = CASES[case_id]
    fit = fit_case(case)
    want = r_matrix(case["vcov"][type], case["aliased"])
    assert len(fit.estimable) == want.shape[0]
    assert cov_reldiff(fit.vcov(type), want) < RTOL


@pytest.mark.parametrize("case_id", [cid for cid, c in CASES.items() if "hac" in c])
def test_newey_west_matches_r(case_id):
    case = CASES[case_id]
    fit = fit_case(case)
    want = r_matrix(case["hac"]["vcov"], case["aliased"])
    assert cov_reldiff(fit.vcov("HAC"), want) < RTOL
    lag = int(case["hac"]["lag"])
    assert fit.summary(vcov="HAC").vcov_description == f"HAC (Newey-West, Bartlett kernel, lag {lag})"
    # the bandwidth itself, before floor(): R leaves the intercept (or a column of ones) out of it
    Xw, ew = fit._working()
    rows = sw.working_rows(fit, len(ew))
    S = sw._pad(sw.observation_scores(Xw, ew), rows)
    bw = sw.newey_west_bandwidth(S, sw.hac_bandwidth_weights(fit, S))
    np.testing.assert_allclose(bw, case["hac"]["bandwidth"], rtol=RTOL)


CLUSTER_CASES = [(cid, i) for cid, c in CASES.items() for i in range(len(c["cluster"]))]


@pytest.mark.parametrize("case_id,i", CLUSTER_CASES)
def test_vcovcl_matches_r(case_id, i):
    case = CASES[case_id]
    entry = case["cluster"][i]
    fit = fit_case(case)
    cl = entry["cluster"]
    want = r_matrix(entry["vcov"], case["aliased"])
    got = fit.vcov(entry["type"], cluster=cl[0] if len(cl) == 1 else cl)
    assert cov_reldiff(got, want) < RTOL


def test_cluster_default_type_is_hc1_and_arrays_work():
    case = CASES["petersen"]
    data = load(case)
    fit = fit_case(case)
    want = r_matrix(case["cluster"][0]["vcov"])  # firm, HC1
    assert cov_reldiff(fit.vcov(cluster="firm"), want) < RTOL
    assert cov_reldiff(fit.vcov(cluster=data["firm"].to_numpy()), want) < RTOL
    two = r_matrix(case["cluster"][3]["vcov"])  # firm and year, HC1
    assert cov_reldiff(fit.vcov(cluster=[data["firm"], "year"]), two) < RTOL
    assert cov_reldiff(fit.vcov(cluster=("firm", "year")), two) < RTOL
    # a plain list of labels (strings) is one variable, not a list of column names
    firm_str = [f"f{v}" for v in data["firm"]]
    assert cov_reldiff(fit.vcov(cluster=firm_str), want) < RTOL


def test_cluster_looked_up_at_rows_used():
    """airquality drops 42 incomplete rows; a cluster array may have one value per row of data or per row used."""
    case = CASES["airquality_na"]
    data = load(case)
    fit = fit_case(case)
    want = r_matrix(case["cluster"][0]["vcov"])
    used = data.loc[fit.design.index, "Month_s"].to_numpy()
    assert len(used) == fit.nobs < len(data)
    assert cov_reldiff(fit.vcov(cluster=used), want) < RTOL
    assert cov_reldiff(fit.vcov(cluster=data["Month_s"].to_numpy()), want) < RTOL


TEST_CASES = [(cid, i) for cid, c in CASES.items() for i in range(len(c["tests"]))]


@pytest.mark.parametrize("case_id,i", TEST_CASES)
def test_coeftest_coefci_waldtest_match_r(case_id, i):
    case = CASES[case_id]
    entry = case["tests"][i]
    fit = fit_case(case)
    spec = entry["vcov"]  # a type string or {"type": ..., "cluster": ...}: torchlm's vcov= option as written
    s = fit.summary(vcov=spec)
    ct = entry["coeftest"]
    r_names = list(ct["se"])
    tab = s.coefficients
    assert len(tab) == len(r_names)
    for col, key in (("Estimate", "estimate"), ("Std. Error", "se"), ("t value", "t"), ("Pr(>|t|)", "p")):
        want = np.array([ct[key][n] for n in r_names])
        np.testing.assert_allclose(tab[col].to_numpy(), want, rtol=RTOL * 10, atol=0)
    ci = fit.confint(0.9, vcov=spec).loc[fit.estimable]
    np.testing.assert_allclose(ci.iloc[:, 0], [ct["ci90_lower"][n] for n in r_names], rtol=RTOL)
    np.testing.assert_allclose(ci.iloc[:, 1], [ct["ci90_upper"][n] for n in r_names], rtol=RTOL)
    np.testing.assert_allclose(fit.std_errors(vcov=spec)[fit.estimable], tab["Std. Error"], rtol=0, atol=0)
    w = entry["wald"]
    f = s.fstatistic
    assert (f.numdf, f.dendf) == (w["df1"], w["df2"])
    np.testing.assert_allclose(f.value, w["F"], rtol=RTOL)
    text = str(s)
    assert "Standard errors: " in text and "Wald F-statistic: " in text
    assert text.index("Standard errors: ") < text.index("Coefficients:")


def test_predict_se_fit_with_robust_vcov():
    case = CASES["mtcars_wt_hp"]
    p = case["predict"]
    fit = fit_case(case)
    nd = read_exact_csv(DIR / p["newdata"])
    out = fit.predict(nd, se_fit=True, vcov=p["vcov"], interval="confidence")
    np.testing.assert_allclose(out["se_fit"], p["se_fit"], rtol=RTOL)
    # the interval is fit +/- t * se with the robust se
    q = (out["upr"] - out["fit"]) / out["se_fit"]
    np.testing.assert_allclose(q, q.iloc[0], rtol=1e-12)
    classical = fit.predict(nd, se_fit=True)["se_fit"]
    assert not np.allclose(classical, out["se_fit"])


def test_summary_classical_unchanged_and_descriptions():
    fit = fit_case(CASES["mtcars_wt_hp"])
    s = fit.summary()
    assert s.vcov_description is None
    assert "Standard errors" not in str(s) and "\nF-statistic: " in str(s)
    assert fit.summary(vcov="const").vcov_description is None
    assert fit.summary(vcov="HC3").vcov_description == "HC3 (heteroskedasticity-consistent)"
    two = fit.summary(vcov={"cluster": ["cyl", "gear"]})
    assert two.vcov_description == "clustered by cyl and gear (HC1)"
    user = fit.summary(vcov=fit.vcov("HC1"))
    assert user.vcov_description == "user-supplied covariance matrix"
    np.testing.assert_array_equal(user.coefficients.to_numpy(), fit.summary(vcov="HC1").coefficients.to_numpy())
    html = fit.summary(vcov="HC1")._repr_html_()
    assert "Standard errors: HC1 (heteroskedasticity-consistent)" in html and "Wald F-statistic" in html


# --- the low-level estimator on a model fitted outside torchlm -----------------------------------

def _logistic_fit():
    mt = load(CASES["mtcars_wt_hp"])
    X = torch.tensor(np.column_stack([np.ones(len(mt)), mt["wt"], mt["hp"]]), dtype=torch.float64)
    y = torch.tensor(mt["am"].to_numpy(), dtype=torch.float64)
    cyl = mt["cyl"].to_numpy()

    def nll_i(b, x, yi):  # one observation's negative log-likelihood
        eta = x @ b
        return torch.nn.functional.softplus(eta) - yi * eta

    def nll(b):
        return torch.vmap(nll_i, in_dims=(None, 0, 0))(b, X, y).sum()

    b = torch.zeros(3, dtype=torch.float64)
    for _ in range(50):
        g = torch.func.grad(nll)(b)
        H = torch.func.hessian(nll)(b)
        b = b - torch.linalg.solve(H, g)
    scores = torch.vmap(torch.func.grad(nll_i), in_dims=(None, 0, 0))(b, X, y)
    bread = torch.linalg.inv(torch.func.hessian(nll)(b))
    return b, scores, bread, cyl


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")  # raised inside torch.func
def test_sandwich_cov_on_user_model_matches_r():
    ref = REF["user_model"]
    b, scores, bread, cyl = _logistic_fit()
    np.testing.assert_allclose(b.numpy(), ref["coef"], rtol=1e-9)
    V = sw.sandwich_cov(bread, scores, type="HC0")
    assert cov_reldiff(pd.DataFrame(V.numpy()), r_matrix(ref["HC0"])) < 1e-10
    V = sw.sandwich_cov(bread, scores, type="HC0", cluster=cyl)
    assert cov_reldiff(pd.DataFrame(V.numpy()), r_matrix(ref["cluster_cyl_HC0"])) < 1e-10
    # R leaves the intercept out of the automatic bandwidth; meat() takes those weights
    M = sw.meat(scores, type="HAC", bandwidth_weights=np.array([0.0, 1, 1]))
    assert cov_reldiff(pd.DataFrame((bread @ M @ bread).numpy()), r_matrix(ref["HAC"])) < 1e-10


# --- properties -------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 60), k=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), weighted=st.booleans())
def test_hc0_equals_explicit_formula(n, k, seed, weighted):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * rng.uniform(0.1, 10, size=k)
    y = X @ rng.normal(size=k) + rng.standard_t(3, size=n)
    w = rng.uniform(0.1, 5, size=n) if weighted else np.ones(n)
    data = pd.DataFrame(X, columns=[f"x{j}" for j in range(k)]).assign(y=y, w=w)
    fit = tl.lm("y ~ 0 + " + " + ".join(f"x{j}" for j in range(k)), data=data, weights="w" if weighted else None)
    e = y - X @ fit.coef().to_numpy()
    XtWX_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    want = XtWX_inv @ X.T @ np.diag((w * e) ** 2) @ X @ XtWX_inv
    assert cov_reldiff(fit.vcov("HC0"), want) < 1e-9
    # vcovCL with every observation its own cluster is n/(n-1) times HC0
    own = fit.vcov("HC0", cluster=np.arange(n))
    assert cov_reldiff(own, want * n / (n - 1)) < 1e-9


def test_scores_are_chunk_invariant(monkeypatch):
    rng = np.random.default_rng(1)
    Xw, ew = rng.normal(size=(1000, 4)), rng.normal(size=1000)
    whole = sw.observation_scores(Xw, ew)
    np.testing.assert_array_equal(whole.numpy(), Xw * ew[:, None])
    C = torch.as_tensor(np.linalg.inv(Xw.T @ Xw))
    h_whole = lev.leverages(Xw, C)
    monkeypatch.setattr(sw, "chunk_rows", lambda n, p: 7)
    np.testing.assert_array_equal(sw.observation_scores(Xw, ew).numpy(), whole.numpy())
    np.testing.assert_allclose(lev.leverages(Xw, C).numpy(), h_whole.numpy(), rtol=1e-13)
    np.testing.assert_allclose(h_whole.numpy(), np.diag(Xw @ np.linalg.inv(Xw.T @ Xw) @ Xw.T), rtol=1e-12)
    M7 = sw.meat(whole, type="HC3", hat=h_whole)
    monkeypatch.undo()
    np.testing.assert_allclose(M7.numpy(), sw.meat(whole, type="HC3", hat=h_whole).numpy(), rtol=1e-13)


@pytest.mark.parametrize("kw", [{"type": "HC1"}, {"type": "HC3"}, {"type": "HC5"}, {"cluster": "cyl"},
                                {"cluster": ["cyl", "gear"]}])
@pytest.mark.parametrize("weighted", [False, True])
def test_streamed_meat_equals_the_whole_score_matrix(monkeypatch, kw, weighted):
    """lm's robust covariances sum the meat over 7-row chunks read from the design's columns, never holding
    all scores or assembling X: the same covariance as meat() on the whole score matrix."""
    df = tl.datasets.load("mtcars")
    wkw = {"weights": np.linspace(0.5, 2.0, len(df))} if weighted else {}
    monkeypatch.setattr(sw, "chunk_rows", lambda n, p: 7)
    fit = tl.lm("mpg ~ wt + hp + C(cyl)", data=df, **wkw)
    V = fit.vcov(**kw)
    assert fit.design._X is None  # read block by block from formulaic's columns
    monkeypatch.undo()
    Xw, ew = fit._working()
    S = sw.observation_scores(np.asarray(Xw), ew)
    C = torch.as_tensor(fit._unscaled())
    type_ = kw.get("type", "HC1")
    hat = lev.leverages(np.asarray(Xw), C) if type_ in sw.NEEDS_HAT else None
    cluster = sw.cluster_values(fit, kw["cluster"])[0] if "cluster" in kw else None
    M = sw.meat(S, type=type_, hat=hat, cluster=cluster)
    np.testing.assert_allclose(V.to_numpy(), (C @ M @ C).numpy(), rtol=1e-12)


def test_user_data_not_modified():
    case = CASES["airquality_na"]
    data = load(case)
    before = data.copy(deep=True)
    fit = tl.lm(case["formula_py"], data=data)
    fit.vcov(cluster=["Month_s", "Day"])
    fit.summary(vcov={"cluster": "Month_s"})
    pd.testing.assert_frame_equal(data, before)
    assert fit.design.data is data  # a reference, not a copy


# --- bad input --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mtfit():
    return fit_case(CASES["mtcars_wt_hp"])


@pytest.mark.parametrize("kwargs,match", [
    ({"type": "HC9"}, "unknown vcov type 'HC9'; choose one of const, HC0, HC1, HC2, HC3, HC4, HC4m, HC5, HAC"),
    ({"type": "hc1"}, "unknown vcov type 'hc1'"),
    ({"type": "HC3", "cluster": "cyl"}, "HC0 or HC1"),
    ({"type": "HAC", "cluster": "cyl"}, "HC0 or HC1"),
    ({"type": "const", "cluster": "cyl"}, "cluster= needs a robust type"),
    ({"cluster": "nope"}, "cluster variable 'nope' is not a column of the data"),
    ({"cluster": np.arange(5)}, "cluster array has 5 values; the data has 32 rows, the fit uses 32"),
    ({"cluster": ["cyl", "gear", "am"]}, "at most two-way clustering"),
    ({"cluster": np.zeros(32)}, "single cluster"),
    ({"cluster": np.ones((32, 2))}, "one-dimensional"),
])
def test_vcov_bad_input(mtfit, kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        mtfit.vcov(**kwargs)


def test_cluster_with_missing_values_names_the_variable():
    data = load(CASES["mtcars_wt_hp"])
    data["firm"] = np.where(np.arange(32) % 5 == 0, np.nan, np.arange(32) % 4)
    fit = tl.lm("mpg ~ wt", data=data)
    with pytest.raises(ValueError, match="cluster variable 'firm' has 7 missing value"):
        fit.vcov(cluster="firm")
    # rows that the fit dropped do not count: subset them out and the NAs are gone
    ok = tl.lm("mpg ~ wt", data=data, subset=data["firm"].notna().to_numpy())
    assert ok.vcov(cluster="firm").shape == (2, 2)


@pytest.mark.parametrize("vcov,match", [
    ({"typ": "HC1"}, "vcov dict keys must be 'type' and/or 'cluster'"),
    (np.eye(2), r"vcov matrix must be \(3, 3\)"),
    (pd.DataFrame(np.eye(2), index=["a", "b"], columns=["a", "b"]), "vcov matrix has no row/column"),
    ("HC7", "unknown vcov type 'HC7'"),
])
def test_vcov_option_bad_input(mtfit, vcov, match):
    with pytest.raises(ValueError, match=match):
        mtfit.summary(vcov=vcov)
    with pytest.raises(ValueError, match=match):
        mtfit.confint(vcov=vcov)


@pytest.mark.parametrize("kwargs,match", [
    ({"bread": torch.eye(3), "scores": torch.ones(10, 2)}, r"scores must be \(n, k\) with k = 3"),
    ({"bread": torch.ones(2, 3), "scores": torch.ones(10, 2)}, "bread must be a square"),
    ({"scores": torch.ones(10, 2), "type": "HC3"}, "type 'HC3' needs hat="),
    ({"scores": torch.ones(10, 2), "type": "HC2", "hat": torch.ones(9) / 2}, "hat has 9 values for 10 rows"),
    ({"scores": torch.ones(10, 2), "type": "HC2", "hat": torch.full((10,), 1.5)}, r"hat values must lie in \[0, 1\]"),
    ({"scores": torch.ones(10, 2), "type": "White"}, "unknown robust covariance type 'White'"),
    ({"scores": torch.ones(10, 2), "type": "HC2", "cluster": np.arange(10)}, "HC0 or HC1"),
    ({"scores": torch.ones(10, 2), "cluster": np.arange(9)}, "cluster has 9 rows for 10 rows"),
    ({"scores": torch.ones(10, 2), "cluster": np.array([1.0] * 9 + [np.nan])}, "cluster has missing values"),
    ({"scores": torch.ones(10, 2), "cluster": np.zeros((10, 3))}, "at most two-way"),
    ({"scores": torch.full((10, 2), float("nan"))}, "non-finite"),
    ({"scores": torch.ones(2, 2), "type": "HC1"}, "no residual degrees of freedom"),
    ({"scores": torch.ones(10, 2), "type": "HC1", "df_residual": 0}, "df_residual must be an integer in 1..n"),
])
def test_sandwich_cov_bad_input(kwargs, match):
    kwargs = {"bread": torch.eye(2), **kwargs}
    with pytest.raises(ValueError, match=match):
        sw.sandwich_cov(**kwargs)


def test_sandwich_cov_two_way_identity():
    """Two-way clustering on (a, a) is one-way clustering on a: a + a - a."""
    rng = np.random.default_rng(3)
    S = torch.as_tensor(rng.normal(size=(50, 3)))
    a = rng.integers(0, 6, size=50)
    B = torch.eye(3)
    one = sw.sandwich_cov(B, S, type="HC1", cluster=a)
    two = sw.sandwich_cov(B, S, type="HC1", cluster=np.column_stack([a, a]))
    np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-12)


@pytest.mark.parametrize("rows_per_chunk", [2, 7, 1000])
def test_streamed_hac_equals_the_whole_score_matrix(monkeypatch, rows_per_chunk):
    """HAC in two streamed passes (bandwidth, then lagged products carrying lag + 1 rows across chunks,
    including chunks shorter than the lag) equals NeweyWest on the whole score matrix."""
    rng = np.random.default_rng(5)
    n = 300
    e, x = np.zeros(n), np.zeros(n)
    for t in range(1, n):  # autocorrelated regressor and errors: the automatic lag is well above 1
        e[t] = 0.8 * e[t - 1] + rng.standard_normal()
        x[t] = 0.8 * x[t - 1] + rng.standard_normal()
    df = pd.DataFrame({"x": x, "y": 1 + 2 * x + e})
    monkeypatch.setattr(sw, "chunk_rows", lambda n, p: rows_per_chunk)
    fit = tl.lm("y ~ x", data=df)
    V = fit.vcov("HAC")
    desc = fit.summary(vcov="HAC").vcov_description
    assert fit.design._X is None
    monkeypatch.undo()
    Xw, ew = fit._working()
    S = sw.observation_scores(np.asarray(Xw), ew)
    bw = sw.hac_bandwidth_weights(fit, S)
    lag = sw.newey_west_lag(S, bw)
    assert lag >= 2 and f"lag {lag}" in desc
    C = torch.as_tensor(fit._unscaled())
    M = sw.meat(S, type="HAC", bandwidth_weights=bw)
    np.testing.assert_allclose(V.to_numpy(), (C @ M @ C).numpy(), rtol=1e-12)
