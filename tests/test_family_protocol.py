"""The family protocol: model code reads a family's capabilities, never its name."""

from __future__ import annotations

import pathlib
import re
import warnings

import numpy as np
import pytest

import torchlm as tl
from torchlm.models.families import Family, Poisson, QuasiPoisson

PKG = pathlib.Path(tl.__file__).parent


class Renamed(Poisson):
    """R's poisson under another name: every result must be poisson's."""

    name = "my_counts"


class RenamedQuasi(QuasiPoisson):
    name = "my_quasi_counts"


@pytest.fixture(scope="module")
def warp():
    return tl.datasets.load("warpbreaks")


def test_capabilities_of_r_families():
    fams = tl.families
    assert fams.Binomial().fixed_dispersion and fams.Binomial().test_statistic == "z"
    assert fams.Binomial().profile_statistic == "z" and fams.Binomial().factor_response
    assert not fams.QuasiBinomial().has_likelihood and fams.QuasiBinomial().test_statistic == "t"
    assert fams.QuasiBinomial().boundary_message is None
    assert fams.Gaussian().deviance_is_rss and fams.Gaussian().aic_counts_dispersion
    assert fams.Gamma().profile_statistic == "tau"
    assert fams.Poisson().canonical and not fams.Poisson(link="sqrt").canonical
    pois = fams.Poisson()
    assert pois.update_parameters(None, None, None) is pois and pois.parameters == {}
    with pytest.raises(TypeError):
        Family()  # abstract: a family must define variance, dev_resids, aic and initialize


@pytest.mark.parametrize("base, renamed", [(Poisson, Renamed), (QuasiPoisson, RenamedQuasi)])
def test_a_renamed_family_behaves_as_the_original(warp, base, renamed):
    f = "breaks ~ wool + tension"
    a, b = tl.glm(f, warp, family=base()), tl.glm(f, warp, family=renamed())
    assert np.allclose(a.coef(), b.coef(), rtol=1e-13, atol=0)
    assert np.allclose(a.vcov(), b.vcov(), rtol=1e-12, atol=0)
    assert a.summary().coefficients.columns.tolist() == b.summary().coefficients.columns.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta, tb = tl.anova(a), tl.anova(b)
        da, db = tl.drop1(a, test="F"), tl.drop1(b, test="F")
    assert ta.columns.tolist() == tb.columns.tolist() and np.allclose(ta.fillna(0), tb.fillna(0))
    assert da.columns.tolist() == db.columns.tolist() and np.allclose(da.fillna(0), db.fillna(0))
    assert np.allclose(a.rstudent(), b.rstudent(), rtol=1e-12)
    assert np.allclose(a.confint(method="profile"), b.confint(method="profile"), rtol=1e-9)
    assert np.isnan(a.aic()) == np.isnan(b.aic())


def test_no_family_name_branches_in_the_package():
    # a glm Family's behaviour comes from its attributes (tl.infer's loss kinds are strings of their own)
    pattern = re.compile(r"(family|fam|self)\.name\s*(==|!=|in\b|not in\b)")
    hits = [f"{p.relative_to(PKG)}:{i + 1}" for p in PKG.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert not hits, hits
