"""Data near 1e300 and 1e-300 (issue 14): fitted as R fits them, by column scaling before the QR.

Each magnitude case is checked two ways: against the fit of the unscaled data, by a hand derivation
(scaling column j by c divides its coefficient by c; scaling the response by c multiplies every
coefficient by c; a common factor of the weights changes no coefficient; Poisson counts times c add
log(c) to the intercept of a log-link fit with an intercept, since its score equations
X'(y - mu) = 0 are homogeneous in (y, mu)), and against R 4.2.2's numbers
(tests/fixtures/extreme_values/make_extreme_values.R). Where a derived quantity is beyond float64's
range R gives it silently as Inf or 0; torchlm gives the same number with a TorchlmWarning. R's two
failures on such data are not copied: a Poisson glm on counts near 1e300 (R: "NA/NaN/Inf in 'x'")
is fitted, and a coefficient near 1e600 (R: Inf, silently) is an error.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torchlm as tl
from torchlm.errors import DataError, TorchlmWarning
from torchlm.solvers import least_squares

HERE = Path(__file__).parent / "fixtures" / "extreme_values"
R = json.loads((HERE / "r_extreme_values.json").read_text())
D = pd.read_csv(HERE / "data.csv")


def _r(v):
    """R's JSON numbers: the strings Inf, -Inf and NaN as floats, null as NaN."""
    if isinstance(v, list):
        return np.array([_r(x) for x in v], dtype=float)
    return float("nan") if v is None else float(v)


def _fit_quietly(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = fn()
    return fit, [str(x.message) for x in w if issubclass(x.category, TorchlmWarning)], w


BASE = tl.lm("y ~ x", D)


def test_ordinary_data_is_not_rescaled():
    # the scaled path is taken only where squares would overflow or underflow: R-parity digits of
    # ordinary fits come from the same arithmetic as before
    assert BASE._qr.scaling is None
    np.testing.assert_allclose(BASE.coef().to_numpy(), _r(R["base"]["coef"]), rtol=1e-13)


def test_power_of_two_column_scaling_is_exact():
    # hand derivation: x * 2^996 has coefficient b_x * 2^-996, and scaling by a power of two is exact
    with pytest.warns(TorchlmWarning, match="variances"):
        fit = tl.lm("y ~ x", D.assign(x=D.x * 2.0**996))
    assert fit._qr.scaling is not None
    b = BASE.coef().to_numpy()
    assert fit.coef().to_numpy().tolist() == [b[0], b[1] * 2.0**-996]


def test_big_x():
    data = D.assign(x=D.x * 1e300)
    before = data.copy()
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x", data))
    pd.testing.assert_frame_equal(data, before)
    b = BASE.coef().to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [b[0], b[1] / 1e300], rtol=1e-13)
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["big_x"]["coef"]), rtol=1e-12)
    se = fit.std_errors().to_numpy()
    # R: the intercept's standard error as unscaled; x's variance (about 5.5e-602) underflows to 0
    np.testing.assert_allclose(se[0], BASE.std_errors().iloc[0], rtol=1e-13)
    assert se[1] == 0.0 == _r(R["big_x"]["se"])[1]
    assert fit.rank == 2 and math.isclose(fit.sigma, _r(R["big_x"]["sigma"]), rel_tol=1e-12)
    assert len(msgs) == 1 and "variances of the coefficients ['x']" in msgs[0]
    # the message gives the standard error that float64 can hold: the unscaled one / 1e300
    assert f"{BASE.std_errors().iloc[1] / 1e300:.3g}" in msgs[0]


def test_big_y():
    fit, msgs, w = _fit_quietly(lambda: tl.lm("y ~ x", D.assign(y=D.y * 1e300)))
    np.testing.assert_allclose(fit.coef().to_numpy(), BASE.coef().to_numpy() * 1e300, rtol=1e-13)
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["big_y"]["coef"]), rtol=1e-12)
    # R: RSS about 1e601, so sigma, vcov and the standard errors are Inf
    assert fit.sigma == math.inf == _r(R["big_y"]["sigma"]) and fit.deviance == math.inf
    assert np.isinf(fit.std_errors().to_numpy()).all() and np.isinf(_r(R["big_y"]["se"])).all()
    # R's R^2 is NaN (Inf / Inf); it is scale-invariant, so torchlm gives the unscaled fit's
    assert math.isnan(_r(R["big_y"]["r_squared"]))
    assert math.isclose(fit.r_squared, BASE.r_squared, rel_tol=1e-12)
    assert math.isclose(fit.fstatistic.value, BASE.fstatistic.value, rel_tol=1e-12)
    assert len(msgs) == 1 and "residual sum of squares (about 1e601) is above float64's range" in msgs[0]
    assert f"sigma is about {BASE.sigma * 1e300:.3g}" in msgs[0]
    assert not [x for x in w if issubclass(x.category, RuntimeWarning)]  # no numpy overflow warnings


def test_tiny_x_is_not_aliased():
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x", D.assign(x=D.x * 1e-300)))
    # R keeps x (dqrdc2 compares each column with its own norm): rank 2, coefficient b_x * 1e300
    assert fit.rank == 2 == R["tiny_x"]["rank"]
    b = BASE.coef().to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [b[0], b[1] * 1e300], rtol=1e-13)
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["tiny_x"]["coef"]), rtol=1e-12)
    se = fit.std_errors().to_numpy()
    assert se[1] == math.inf == _r(R["tiny_x"]["se"])[1]  # variance about 5.5e+598
    np.testing.assert_allclose(se[0], _r(R["tiny_x"]["se"])[0], rtol=1e-12)
    assert len(msgs) == 1 and "['x']" in msgs[0]


def test_tiny_y():
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x", D.assign(y=D.y * 1e-300)))
    np.testing.assert_allclose(fit.coef().to_numpy(), BASE.coef().to_numpy() * 1e-300, rtol=1e-13)
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["tiny_y"]["coef"]), rtol=1e-12)
    assert fit.sigma == 0.0 == _r(R["tiny_y"]["sigma"])  # R: the RSS (1e-599) underflows
    assert math.isclose(fit.r_squared, BASE.r_squared, rel_tol=1e-12)
    assert len(msgs) == 1 and "below float64's range" in msgs[0]


def test_big_weights():
    small = tl.lm("y ~ x", D.assign(w=1 + D.z**2), weights="w")
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x", D.assign(w=1e300 * (1 + D.z**2)), weights="w"))
    # a common factor of the weights changes neither coefficients nor covariance; sigma scales by its root
    np.testing.assert_allclose(fit.coef().to_numpy(), small.coef().to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(fit.std_errors().to_numpy(), small.std_errors().to_numpy(), rtol=1e-12)
    assert math.isclose(fit.sigma, small.sigma * 1e150, rel_tol=1e-12)
    np.testing.assert_allclose(fit.coef().to_numpy(), _r(R["big_weights"]["coef"]), rtol=1e-12)
    np.testing.assert_allclose(fit.std_errors().to_numpy(), _r(R["big_weights"]["se"]), rtol=1e-12)
    assert math.isclose(fit.sigma, _r(R["big_weights"]["sigma"]), rel_tol=1e-12)
    assert math.isclose(fit.r_squared, _r(R["big_weights"]["r_squared"]), rel_tol=1e-12)
    assert msgs == []


def test_poisson_huge_counts():
    base = tl.glm("c ~ x", D, family="poisson", exact=True)
    np.testing.assert_allclose(base.coef().to_numpy(), _r(R["poisson"]["coef"]), rtol=1e-9)
    data = D.assign(c=D.c * 1e300)
    before = data.copy()
    fit, msgs, _ = _fit_quietly(lambda: tl.glm("c ~ x", data, family="poisson", exact=True))
    pd.testing.assert_frame_equal(data, before)
    assert R["poisson_huge_error"] == "NA/NaN/Inf in 'x'"  # R fails here; torchlm fits
    b = base.coef().to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [b[0] + math.log(1e300), b[1]], rtol=1e-12)
    # the Fisher information scales with the counts: standard errors / 1e150, deviance * 1e300
    np.testing.assert_allclose(fit.std_errors().to_numpy(), base.std_errors().to_numpy() / 1e150, rtol=1e-9)
    assert math.isclose(fit.deviance, base.deviance * 1e300, rel_tol=1e-9)
    assert msgs == []


def test_glm_big_x():
    fit, msgs, _ = _fit_quietly(lambda: tl.glm("y ~ x", D.assign(x=D.x * 1e300), exact=True))
    b = BASE.coef().to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [b[0], b[1] / 1e300], rtol=1e-12)
    assert fit.std_errors().iloc[1] == 0.0  # as R's glm: the variance underflows
    assert len(msgs) == 1 and "variances of the coefficients ['x']" in msgs[0]


def test_unrepresentable_coefficient_is_an_error():
    # b_x * 1e600 is beyond float64; R returns -Inf and Inf silently
    assert np.isinf(_r(R["tiny_x_big_y_coef"])).all()
    with pytest.raises(DataError, match=r"coefficients of \['x'\] are beyond float64's range"):
        tl.lm("y ~ x", D.assign(x=D.x * 1e-300, y=D.y * 1e300))


def test_overflowing_rss_with_representable_weighted_design():
    # sqrt(w) x = 1e354 is not a float64, but the scaled problem is: coefficients as unweighted, RSS Inf
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x", D.assign(x=D.x * 1e200, w=1e308), weights="w"))
    b = BASE.coef().to_numpy()
    np.testing.assert_allclose(fit.coef().to_numpy(), [b[0], b[1] / 1e200], rtol=1e-12)
    assert fit.deviance == math.inf and "residual sum of squares" in msgs[0]


def test_forced_scaling_changes_nothing(monkeypatch):
    # every problem scaled (safe range [1, 1]): a weighted factor model, its covariance and anova
    # effects equal the fit without scaling, bit for bit (powers of two)
    mt = tl.datasets.load("mtcars")
    plain = tl.lm("mpg ~ wt + hp + C(cyl)", mt, weights="qsec")
    monkeypatch.setattr(least_squares, "SAFE_FRACTION", 0.0)
    scaled = tl.lm("mpg ~ wt + hp + C(cyl)", mt, weights="qsec")
    assert scaled._qr.scaling is not None and plain._qr.scaling is None
    np.testing.assert_allclose(scaled.coef().to_numpy(), plain.coef().to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(scaled.vcov().to_numpy(), plain.vcov().to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(scaled._qr.effects, plain._qr.effects, rtol=1e-14)
    assert math.isclose(scaled.sigma, plain.sigma, rel_tol=1e-15)
    assert math.isclose(scaled.r_squared, plain.r_squared, rel_tol=1e-14)
    np.testing.assert_allclose(tl.anova(scaled).to_numpy(dtype=float), tl.anova(plain).to_numpy(dtype=float),
                               rtol=1e-12)
    g1 = tl.glm("am ~ wt + hp", mt, family="binomial", exact=True)  # IRLS's QR steps scaled too
    assert g1._qr.scaling is not None
    monkeypatch.undo()
    g0 = tl.glm("am ~ wt + hp", mt, family="binomial", exact=True)
    assert g0._qr.scaling is None
    np.testing.assert_allclose(g1.coef().to_numpy(), g0.coef().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(g1.vcov().to_numpy(), g0.vcov().to_numpy(), rtol=1e-10)


def test_exact_zeros_take_the_scaled_path_quietly():
    # a zero column or a zero response looks like an underflow to the range check: the scaled
    # solve must give the ordinary answers (an aliased column; a perfect fit at 0) without a warning
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y ~ x + zero", D.assign(zero=0.0)))
    assert fit._qr.scaling is not None and msgs == []
    np.testing.assert_allclose(fit.coef().to_numpy()[:2], BASE.coef().to_numpy(), rtol=1e-14)
    assert np.isnan(fit.coef()["zero"])
    fit, msgs, _ = _fit_quietly(lambda: tl.lm("y0 ~ x", D.assign(y0=0.0)))
    assert fit.coef().tolist() == [0.0, 0.0] and fit.sigma == 0.0 and msgs == []


def _hat(fit, X):
    # h_i = (x_i d) C' (x_i d)' from the representable parts of (X'X)^{-1} (what leverages need)
    C, d = fit._unscaled_parts()
    L = np.linalg.cholesky(C)
    return (((X * d) @ L) ** 2).sum(axis=1)


def test_unscaled_parts_give_the_hat_values():
    # hat values are scale-free: a fit of x * 1e300 has the unscaled fit's, though its (X'X)^{-1} underflows
    X = np.column_stack([np.ones(len(D)), D.x])
    np.testing.assert_allclose(_hat(BASE, X), BASE.hatvalues().to_numpy(), rtol=1e-12)
    with pytest.warns(TorchlmWarning):
        big = tl.lm("y ~ x", D.assign(x=D.x * 1e300))
    C, d = big._unscaled_parts()
    assert np.isfinite(C).all() and (np.frexp(d)[0] == 0.5).all() and d[1] < 1e-299  # powers of two
    np.testing.assert_allclose(_hat(big, X * [1, 1e300]), BASE.hatvalues().to_numpy(), rtol=1e-12)
    base = tl.glm("c ~ x", D, family="poisson", exact=True)
    huge = tl.glm("c ~ x", D.assign(c=D.c * 1e300), family="poisson", exact=True)
    w = np.sqrt(base.fitted().to_numpy())[:, None]  # sqrt of the working weights mu
    np.testing.assert_allclose(_hat(huge, X * w * 1e150), _hat(base, X * w), rtol=1e-9)


def test_a_coefficient_below_float64s_range_is_an_error():
    # slope about 1e-449: not representable; R gives 0 and fitted values (from its QR) that X b does not give
    d = pd.DataFrame({"y": [1.049e-151, -5.357e-151, 3.616e-151], "x": [1.2573e149, -1.3210e149, 6.4042e149]})
    before = d.copy()
    with pytest.raises(tl.DataError, match=r"I\(x \*\* 2\).*below float64's range"):
        tl.lm("y ~ I(x^2)", d)
    pd.testing.assert_frame_equal(d, before)
    # rescaled by powers of ten (as the message says), it fits: the slope times 1e-449 is the unscaled one
    fit = tl.lm("y ~ I((x / 1e149)^2)", d.assign(y=d["y"] * 1e151))
    X = np.c_[np.ones(3), (d["x"] / 1e149) ** 2]
    np.testing.assert_allclose(fit.coef().to_numpy(), np.linalg.lstsq(X, d["y"] * 1e151, rcond=None)[0], rtol=1e-10)


def test_terms_that_are_missing_in_every_row_say_so():
    # formulaic's poly() overflows at 1e150 (its three-term recursion squares x^2): every row is NaN
    d = pd.DataFrame({"y": np.arange(5.0), "x": np.array([1, 2, 3, 4, 5.0]) * 1e150})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DataError, match="none of the data is missing.*rescale the variable"):
            tl.lm("y ~ poly(x, 2)", d)
    with pytest.raises(DataError, match="all values of 'x' are missing"):
        tl.lm("y ~ x", d.assign(x=np.nan))
