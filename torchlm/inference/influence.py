"""Regression diagnostics as R computes them: lm.influence / influence.glm, hatvalues, rstandard, rstudent,
cooks.distance.

Every measure is over the rows with non-zero prior weight (R's weighted.residuals drops the others),
indexed like fitted(). Leverages come from the triangular factor of the fit, row by row, so the
n x n hat matrix is never formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import DataError, FitError, OptionError
from torchlm.inference.leverages import fit_leverages
from torchlm.inference.sandwich import working_rows
from torchlm.solvers.factor_passes import coded_rows_times
from torchlm.solvers.least_squares import chunk_rows

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from torchlm.results.protocols import DiagnosticFit, GeneralizedFit

_EPS = float(np.finfo(float).eps)


@dataclass
class Influence:
    """R's influence(fit) (without the coefficient changes).

    Attributes
    ----------
    hat : pandas.Series
        Leverages h_i (1 where h_i > 1 - 10 eps, as R sets them).
    sigma : pandas.Series
        Residual standard deviation with case i left out, sqrt((sum e^2 - e_i^2 / (1 - h_i)) / (n - p - 1)).
    wt_res : pandas.Series
        lm: weighted residuals sqrt(w_i) (y_i - fitted_i); glm: deviance residuals (R's dev.res).
        Residuals below 100 eps times their median absolute value are set to 0, as in R.
    pear_res : pandas.Series or None
        glm only: Pearson residuals.
    """

    hat: pd.Series
    sigma: pd.Series
    wt_res: pd.Series
    pear_res: pd.Series | None = None


def _is_glm(fit: DiagnosticFit) -> TypeIs[GeneralizedFit]:
    return hasattr(fit, "family")


def _pearson(infl: Influence) -> pd.Series:
    if infl.pear_res is None:
        raise RuntimeError("a glm's influence without Pearson residuals")  # internal: _influence sets them for a glm
    return infl.pear_res


def influence(fit: DiagnosticFit) -> Influence:
    """Leverages, leave-one-out sigma and residuals of a fitted lm or glm, as R's lm.influence / influence.glm.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    Influence
        Copies of the measures over the rows with non-zero prior weight, indexed like fitted().
    """
    c = _cached(fit)
    return Influence(hat=c.hat.copy(), sigma=c.sigma.copy(), wt_res=c.wt_res.copy(),
                     pear_res=None if c.pear_res is None else c.pear_res.copy())


def _cached(fit) -> Influence:
    # computed once per fit (a pass over the design) and kept on it: fits do not change; the
    # public functions hand out copies
    cached = getattr(fit, "_influence_cache", None)
    if cached is None:
        cached = fit._influence_cache = _influence(fit)
    return cached


# a fit of data near 1e300 gives R's Inf and 0 here without numpy's overflow warnings (the fit warned)
@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def _influence(fit) -> Influence:
    glm = _is_glm(fit)
    Xw, ew = fit._working()
    rows = working_rows(fit, len(ew))
    d = fit.design
    prior = np.ones(len(rows), dtype=bool) if d.weights is None else np.asarray(d.weights) != 0
    if not np.array_equal(rows, prior):
        # R: "non-NA residual length does not match cases used in fitting"
        raise FitError("influence measures need every row with non-zero prior weight in the working fit; "
                         "some have a working weight of 0 (d mu / d eta = 0 at the estimate)")
    index = d.index[rows]
    n, k = len(ew), fit.rank
    if k == 0:
        hat = np.zeros(n)
    else:
        hat = fit_leverages(fit, Xw).cpu().numpy()
    hat[hat > 1 - 10 * _EPS] = 1.0
    # lm: sqrt(w) (y - fitted); glm: deviance residuals (R's weighted.residuals either way)
    e = _rows_used(fit).residuals("deviance").to_numpy()[rows]
    if k:
        e = np.where(np.abs(e) < 100 * _EPS * np.median(np.abs(e)), 0.0, e)
    ss = float(np.sum(e * e))
    denom = n - k - 1
    if k == 0:
        sigma = np.full(n, math.sqrt(fit.deviance / fit.df_residual))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.sqrt(np.where(hat < 1, (ss - e * e / (1 - hat)) / denom, ss / denom))
    pear = _rows_used(fit).residuals("pearson").to_numpy()[rows] if glm else None

    def series(v, name):
        return pd.Series(v, index=index, name=name)

    return Influence(hat=series(hat, "hat"), sigma=series(sigma, "sigma"), wt_res=series(e, "residuals"),
                     pear_res=None if pear is None else series(pear, "residuals"))


def _nan_inf(v: pd.Series) -> pd.Series:
    # R: res[is.infinite(res)] <- NaN (a leverage of 1 divides by zero)
    return v.where(~np.isinf(v.to_numpy()), np.nan)


def hatvalues(fit: DiagnosticFit) -> pd.Series:
    """Leverages (diagonal of the hat matrix of the weighted fit), as R's hatvalues().

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.Series
        h_i over the rows with non-zero prior weight (1 where h_i > 1 - 10 eps, as R sets them).
    """
    return _cached(fit).hat.copy()


def rstandard(fit: DiagnosticFit, type: str | None = None) -> pd.Series:
    """Standardized residuals, as R's rstandard.lm / rstandard.glm.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    type : str or None
        lm: "sd.1" (default; e_i / (sigma sqrt(1 - h_i))) or "predictive" (e_i / (1 - h_i), the
        leave-one-out prediction errors); glm: "deviance" (default) or "pearson", divided by
        sqrt(dispersion (1 - h_i)).

    Returns
    -------
    pandas.Series
        Named "rstandard", over the rows with non-zero prior weight; NaN where a leverage of 1 divides by 0.
    """
    infl = _cached(fit)
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_glm(fit):
            type = type or "deviance"
            if type not in ("deviance", "pearson"):
                raise OptionError(f"rstandard type for a glm must be 'deviance' or 'pearson', not {type!r}")
            res = infl.pear_res if type == "pearson" else infl.wt_res
            out = res / np.sqrt(fit.dispersion * (1 - infl.hat))
        else:
            type = type or "sd.1"
            if type not in ("sd.1", "predictive"):
                raise OptionError(f"rstandard type for a linear model must be 'sd.1' or 'predictive', not {type!r}")
            if type == "predictive":
                out = infl.wt_res / (1 - infl.hat)
            else:
                out = infl.wt_res / (fit.sigma * np.sqrt(1 - infl.hat))
    return _nan_inf(out.rename("rstandard"))


def rstudent(fit: DiagnosticFit) -> pd.Series:
    """Studentized (externally, leave-one-out) residuals, as R's rstudent.lm / rstudent.glm.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.Series
        Named "rstudent", over the rows with non-zero prior weight; NaN where a leverage of 1 divides by 0.
    """
    infl = _cached(fit)
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_glm(fit):
            r = infl.wt_res
            r = np.sign(r) * np.sqrt(r**2 + (infl.hat * _pearson(infl)**2) / (1 - infl.hat))
            r = _nan_inf(r)
            if not fit.family.fixed_dispersion:
                r = r / infl.sigma
        else:
            r = _nan_inf(infl.wt_res / (infl.sigma * np.sqrt(1 - infl.hat)))
    return r.rename("rstudent")


def cooks_distance(fit: DiagnosticFit) -> pd.Series:
    """Cook's distances, as R's cooks.distance.lm / cooks.distance.glm.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.Series
        Named "cooks_distance", over the rows with non-zero prior weight; NaN where a leverage of 1
        divides by 0.
    """
    infl = _cached(fit)
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_glm(fit):
            out = (infl.pear_res / (1 - infl.hat)) ** 2 * infl.hat / (fit.dispersion * fit.rank)
        else:
            # R uses the weighted residuals here before its zapping of tiny ones
            res = _weighted_residuals(fit, infl)
            out = pd.Series((res / (fit.sigma * (1 - infl.hat.to_numpy()))) ** 2 * infl.hat.to_numpy() / fit.rank,
                            index=infl.hat.index)
    return _nan_inf(out.rename("cooks_distance"))


def _unscaled(fit) -> np.ndarray:
    """(X'WX)^{-1} over the estimable coefficients, as the fit's QR gives it (a glm's expected information, as R)."""
    return np.asarray(fit._unscaled(information="expected") if _is_glm(fit) else fit._unscaled(), dtype=np.float64)


def _weighted_residuals(fit, infl: Influence) -> np.ndarray:
    """R's weighted.residuals(fit) at the influence rows (before lm.influence zaps the tiny ones)."""
    rows = working_rows(fit, len(infl.hat))
    return _rows_used(fit).residuals("deviance").to_numpy()[rows]


def _rows_used(fit):
    # a fit with na_action="exclude" pads its residuals: the measures are computed on the rows used (its methods pad)
    return getattr(fit, "_omitted", lambda: fit)()


def dfbeta(fit: DiagnosticFit) -> pd.DataFrame:
    """Change in each estimable coefficient when case i is left out (one-step for a glm), as R's dfbeta().

    R's lm.influence coefficients: (X'WX)^{-1} x_i e_i / (1 - h_i) with x_i the weighted row and e_i
    the weighted (glm: deviance) residual; 0 where h_i = 1.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.DataFrame
        One row per row with non-zero prior weight, one column per estimable coefficient.
    """
    infl = _cached(fit)
    Xw = fit._working()[0]
    h, e = infl.hat.to_numpy(), infl.wt_res.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(h == 1, 0.0, e / (1 - h))
    C = _unscaled(fit)
    out = coded_rows_times(fit, Xw, C)
    if out is not None:
        out *= scale[:, None]
        return pd.DataFrame(out, index=infl.hat.index, columns=list(fit.estimable))
    out = np.empty((len(h), C.shape[0]))
    step = chunk_rows(len(h), C.shape[0])
    for s in range(0, len(h), step):
        # the weighted design read block by block (its rows are the n rows of the influence measures)
        out[s:s + step] = (np.asarray(Xw[s:s + step], dtype=np.float64) @ C) * scale[s:s + step, None]
    return pd.DataFrame(out, index=infl.hat.index, columns=list(fit.estimable))


def dfbetas(fit: DiagnosticFit) -> pd.DataFrame:
    """dfbeta scaled by the leave-one-out sigma and the coefficient's unscaled standard error, as R's dfbetas().

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.DataFrame
        Laid out as ``dfbeta(fit)``: rows with non-zero prior weight, estimable coefficients.
    """
    infl = _cached(fit)
    return dfbeta(fit) / np.outer(infl.sigma.to_numpy(), np.sqrt(np.diag(_unscaled(fit))))


def dffits(fit: DiagnosticFit) -> pd.Series:
    """R's dffits(): e_i sqrt(h_i) / (sigma_(i) (1 - h_i)).

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.Series
        Named "dffits", over the rows with non-zero prior weight; NaN where a leverage of 1 divides by 0.
    """
    infl = _cached(fit)
    e = _weighted_residuals(fit, infl)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = e * np.sqrt(infl.hat) / (infl.sigma * (1 - infl.hat))
    return _nan_inf(out.rename("dffits"))


def covratio(fit: DiagnosticFit) -> pd.Series:
    """R's covratio(): the change in the determinant of the coefficients' covariance when case i is left out.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    pandas.Series
        Named "covratio": the ratio of the determinants, over the rows with non-zero prior weight.
    """
    infl = _cached(fit)
    e = _weighted_residuals(fit, infl)
    n, p = len(e), fit.rank
    omh = 1 - infl.hat
    with np.errstate(divide="ignore", invalid="ignore"):
        e_star = _nan_inf(e / (infl.sigma * np.sqrt(omh)))
        out = 1 / (omh * (((n - p - 1) + e_star**2) / (n - p)) ** p)
    return out.rename("covratio")


@dataclass
class InfluenceMeasures:
    """R's influence.measures(fit): the measures per case and which of them flag the case as influential.

    Attributes
    ----------
    infmat : pandas.DataFrame
        Columns dfb.<coefficient> (dfbetas), dffit, cov.r, cook.d, hat.
    is_inf : pandas.DataFrame
        The same shape, True where R marks the value with * (|dfbetas| > 1; |dffit| > 3 sqrt(k/(n-k));
        |1 - cov.r| > 3k/(n-k); F(k, n-k) probability of cook.d > 0.5; hat > 3k/n).
    """

    infmat: pd.DataFrame
    is_inf: pd.DataFrame

    @property
    def influential(self) -> pd.DataFrame:
        """The rows with any flag (R: summary(influence.measures(fit)))."""
        return self.infmat[self.is_inf.any(axis=1)]


def influence_measures(fit: DiagnosticFit) -> InfluenceMeasures:
    """All of R's influence measures in one table, with R's flags for influential cases.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).

    Returns
    -------
    InfluenceMeasures
        The measures and their flags, over the rows with non-zero prior weight (infinite values NaN).
    """
    infl = _cached(fit)
    p = fit.rank
    e = _weighted_residuals(fit, infl)
    s = math.sqrt(float(np.sum(e * e)) / fit.df_residual)
    si, h = infl.sigma.to_numpy(), infl.hat.to_numpy()
    db = dfbetas(fit)
    db.columns = [f"dfb.{c}" for c in db.columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        dffit = e * np.sqrt(h) / (si * (1 - h))
        cov_r = (si / s) ** (2 * p) / (1 - h)
        if _is_glm(fit):
            cook = (_pearson(infl).to_numpy() / (1 - h)) ** 2 * h / (fit.dispersion * p)
        else:
            cook = (e / (s * (1 - h))) ** 2 * h / p
    infmat = db.assign(dffit=dffit, **{"cov.r": cov_r, "cook.d": cook}, hat=h)
    infmat = infmat.mask(np.isinf(infmat.to_numpy()))
    k = db.shape[1]
    n = int((h > 0).sum())
    if n <= k:
        raise DataError("too few cases with h_ii > 0: n <= k")
    a = infmat.abs().to_numpy()
    flags = np.column_stack([
        a[:, :k] > 1,
        a[:, k] > 3 * math.sqrt(k / (n - k)),
        np.abs(1 - infmat["cov.r"].to_numpy()) > 3 * k / (n - k),
        stats.f.cdf(infmat["cook.d"].to_numpy(), k, n - k) > 0.5,
        h > 3 * k / n,
    ])
    return InfluenceMeasures(infmat=infmat, is_inf=pd.DataFrame(flags, index=infmat.index, columns=infmat.columns))


class InfluenceMethods:
    """The diagnostics above as methods of a fitted model (mixed into the lm and glm result classes)."""

    def _diagnostic_fit(self) -> DiagnosticFit:
        # mixed into LinearModelResult and GeneralizedLinearModelResult only, each a DiagnosticFit; mypy
        # takes no union as a mixin's self type, so the fact is stated here once
        return cast("DiagnosticFit", self)

    def influence(self) -> Influence:
        """R's influence(fit): leverages, leave-one-out sigma and residuals (rows with non-zero weight).

        Returns
        -------
        Influence
            As ``torchlm.influence.influence(fit)``.
        """
        return influence(self._diagnostic_fit())

    def hatvalues(self) -> pd.Series:
        """Leverages, as R's hatvalues().

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.hatvalues(fit)``.
        """
        return hatvalues(self._diagnostic_fit())

    def rstandard(self, type: str | None = None) -> pd.Series:
        """Standardized residuals, as R's rstandard().

        Parameters
        ----------
        type : str or None
            As for ``torchlm.influence.rstandard``.

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.rstandard(fit, type)``.
        """
        return rstandard(self._diagnostic_fit(), type)

    def rstudent(self) -> pd.Series:
        """Externally studentized residuals, as R's rstudent().

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.rstudent(fit)``.
        """
        return rstudent(self._diagnostic_fit())

    def cooks_distance(self) -> pd.Series:
        """Cook's distances, as R's cooks.distance().

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.cooks_distance(fit)``.
        """
        return cooks_distance(self._diagnostic_fit())

    def dfbeta(self) -> pd.DataFrame:
        """Coefficient changes with each case left out, as R's dfbeta().

        Returns
        -------
        pandas.DataFrame
            As ``torchlm.influence.dfbeta(fit)``.
        """
        return dfbeta(self._diagnostic_fit())

    def dfbetas(self) -> pd.DataFrame:
        """Scaled coefficient changes, as R's dfbetas().

        Returns
        -------
        pandas.DataFrame
            As ``torchlm.influence.dfbetas(fit)``.
        """
        return dfbetas(self._diagnostic_fit())

    def dffits(self) -> pd.Series:
        """R's dffits().

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.dffits(fit)``.
        """
        return dffits(self._diagnostic_fit())

    def covratio(self) -> pd.Series:
        """R's covratio().

        Returns
        -------
        pandas.Series
            As ``torchlm.influence.covratio(fit)``.
        """
        return covratio(self._diagnostic_fit())

    def influence_measures(self) -> InfluenceMeasures:
        """R's influence.measures(): every measure per case and R's influential-case flags.

        Returns
        -------
        InfluenceMeasures
            As ``torchlm.influence.influence_measures(fit)``.
        """
        return influence_measures(self._diagnostic_fit())
