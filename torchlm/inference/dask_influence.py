"""Influence measures of a Dask fit as lazy Dask series and frames, each partition's from the fit's constants.

R's lm.influence / influence.glm measures (:mod:`torchlm.inference.influence`) are per-row functions of the
row's leverage h_i = |sqrt(W_i) x_i R^-1|^2, its weighted (glm: deviance and Pearson) residual and a few
numbers of the whole fit: R^-1 and (X'WX)^-1, the residual sum of squares (the leave-one-out sigma's),
sigma or the dispersion, the rank and the rows of non-zero weight. So each partition computes its rows'
measures in its worker (:func:`partition_measures`), with the data's index, over the rows of non-zero prior
weight; nothing is computed until the result is. The in-memory fit sets residuals below 100 eps times their
median absolute value to 0 first (noise of a perfect fit): the partitions do not know that median, and keep
those residuals as they are (a difference below 1e-13 of the median residual).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.errors import FitError, OptionError
from torchlm.frame.dask_frame import DaskPlan, partition_rows
from torchlm.inference.dask_sandwich import leverage_spec
from torchlm.sources.dask_irls import glm_rows, residual_values, working_at
from torchlm.sources.dask_source import partition_fit

#: the measures a series gives (dfbeta and dfbetas give frames, one column per estimable coefficient)
SERIES_KINDS = ("hat", "rstandard", "rstandard_predictive", "rstandard_pearson", "rstudent", "cooks_distance",
                "dffits", "covratio")
FRAME_KINDS = ("dfbeta", "dfbetas")
_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class InfluenceSpec:
    """The whole fit's numbers each partition's measures read.

    Rinv : R^-1 of the fit's factor (pivot order); pivot : the estimable columns in pivot order; C : (X'WX)^-1
    over the estimable columns (formula order ``cols``); ss : the residual sum of squares (glm: the deviance);
    n : rows of non-zero weight; rank; sigma : lm's sigma (glm: sqrt(dispersion)); df_residual;
    glm : a GLM's measures (deviance and Pearson residuals, the dispersion); fixed_dispersion : the family's.
    """

    Rinv: np.ndarray
    pivot: tuple[int, ...]
    C: np.ndarray
    cols: tuple[int, ...]
    ss: float
    n: int
    rank: int
    sigma: float
    df_residual: int
    glm: bool = False
    fixed_dispersion: bool = True
    names: tuple[str, ...] = ()


def influence_spec(fit: Any) -> InfluenceSpec:
    """The InfluenceSpec of a Dask lm or glm fit (its factor's R^-1, its unscaled covariance, its sums).

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult

    Returns
    -------
    InfluenceSpec

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> from torchlm.inference.dask_influence import influence_spec
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     spec = influence_spec(tl.lm("mpg ~ wt", ddf))
    >>> spec.n, spec.rank, spec.cols
    (32, 2, (0, 1))
    """
    k, base = fit.rank, leverage_spec(fit)
    glm = hasattr(fit, "family")
    C = np.asarray(fit._unscaled(information="expected") if glm else fit._unscaled(), dtype=np.float64)
    sigma = math.sqrt(fit.dispersion) if glm else fit.sigma
    if base.Rinv is None:
        raise OptionError("influence measures need the fit's R^-1")  # internal: leverage_spec always gives it
    return InfluenceSpec(Rinv=base.Rinv, pivot=tuple(int(j) for j in base.pivot), C=C,
                         cols=tuple(sorted(int(j) for j in fit._qr.pivot[:k])), ss=float(fit.deviance), n=fit.nobs,
                         rank=k, sigma=float(sigma), df_residual=fit.df_residual, glm=glm,
                         fixed_dispersion=bool(glm and fit.family.fixed_dispersion), names=tuple(fit.estimable))


def _leverages(Xp: np.ndarray, Rinv: np.ndarray) -> np.ndarray:
    """h_i = |sqrt(W_i) x_i R^-1|^2 of the weighted rows (pivot order); 1 above 1 - 10 eps, as R sets them."""
    h = (torch.from_numpy(np.ascontiguousarray(Xp)) @ torch.from_numpy(Rinv)).square().sum(dim=1).numpy()
    return np.where(h > 1 - 10 * _EPS, 1.0, h)


def _lm_rows(part: pd.DataFrame, number: int, plan: DaskPlan, est: Any, spec: InfluenceSpec) -> tuple:
    """(index, h, weighted residuals twice (lm's pearson residuals are they), weighted design rows), rows of w > 0."""
    rows = partition_rows(part, number, plan)
    e = partition_fit(rows, est)[2]
    sw = np.ones(len(e)) if rows.weights is None else np.sqrt(rows.weights)
    used = sw != 0
    X = rows.X[used] * sw[used, None]
    r = (sw * e)[used]
    return rows.index[used], _leverages(X[:, list(spec.pivot)], spec.Rinv), r, r, X[:, list(spec.cols)]


def _glm_rows(part: pd.DataFrame, number: int, plan: DaskPlan, est: Any, spec: InfluenceSpec) -> tuple:
    """(index, h, deviance residuals, Pearson residuals, sqrt(W) X) at the working weights, rows of prior weight."""
    family, final = est
    g = glm_rows(part, number, plan, family)
    W = working_at(g, final, family)[0]
    used = (g.w > 0).numpy()
    if bool(((W == 0).numpy() & used).any()):
        raise FitError("influence measures need every row with non-zero prior weight in the working fit; "
                       f"some have a working weight of 0 (d mu / d eta = 0 at the estimate), in partition {number}")
    X = (g.X * torch.sqrt(W)[:, None]).numpy()[used]
    dev = residual_values(g, final, family, "deviance").numpy()[used]
    pear = residual_values(g, final, family, "pearson").numpy()[used]
    return g.rows.index[used], _leverages(X[:, list(spec.pivot)], spec.Rinv), dev, pear, X[:, list(spec.cols)]


@np.errstate(divide="ignore", invalid="ignore")
def _measure(kind: str, h: np.ndarray, e: np.ndarray, pear: np.ndarray, X: np.ndarray,
             spec: InfluenceSpec) -> np.ndarray:
    """One measure of the rows, as torchlm.inference.influence computes it from the same pieces."""
    omh = 1 - h
    if spec.rank == 0:
        sigma_i = np.full(len(h), math.sqrt(spec.ss / spec.df_residual))
    else:
        denom = spec.n - spec.rank - 1
        sigma_i = np.sqrt(np.where(h < 1, (spec.ss - e * e / omh) / denom, spec.ss / denom))
    if kind == "hat":
        return h
    if kind in ("dfbeta", "dfbetas"):
        out = (X @ spec.C) * np.where(h == 1, 0.0, e / omh)[:, None]
        return out if kind == "dfbeta" else out / np.outer(sigma_i, np.sqrt(np.diag(spec.C)))
    if kind == "rstandard":
        out = e / (spec.sigma * np.sqrt(omh))
    elif kind == "rstandard_predictive":
        out = e / omh
    elif kind == "rstandard_pearson":
        out = pear / (spec.sigma * np.sqrt(omh))
    elif kind == "cooks_distance":
        r = pear if spec.glm else e
        out = (r / (spec.sigma * omh)) ** 2 * h / spec.rank
    elif kind == "rstudent" and spec.glm:
        r = _nan_inf(np.sign(e) * np.sqrt(e**2 + (h * pear**2) / omh))
        out = r if spec.fixed_dispersion else r / sigma_i
    elif kind == "rstudent":
        out = e / (sigma_i * np.sqrt(omh))
    elif kind == "dffits":
        out = e * np.sqrt(h) / (sigma_i * omh)
    elif kind == "covratio":
        p = spec.rank
        e_star = _nan_inf(e / (sigma_i * np.sqrt(omh)))
        return 1 / (omh * (((spec.n - p - 1) + e_star**2) / (spec.n - p)) ** p)
    else:
        raise OptionError(f"unknown influence measure {kind!r}")  # internal: the results name the kinds
    return _nan_inf(out)


def _nan_inf(v: np.ndarray) -> np.ndarray:
    # R: res[is.infinite(res)] <- NaN (a leverage of 1 divides by zero)
    return np.where(np.isinf(v), np.nan, v)


def partition_measures(part: pd.DataFrame, plan: DaskPlan, est: Any, spec: InfluenceSpec, kind: str,
                       partition_info: dict | None = None) -> pd.Series | pd.DataFrame:
    """One partition's influence measure ``kind`` over its rows of non-zero prior weight, with their labels.

    Parameters
    ----------
    part : pandas.DataFrame
    plan : DaskPlan
    est : Estimate (lm) or (Family, FinalSpec) (glm)
    spec : InfluenceSpec
    kind : str
        One of SERIES_KINDS or FRAME_KINDS.
    partition_info : dict, optional
        dask's map_partitions information (the partition's number, for errors).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        A series named by the measure (R's function name), or for dfbeta / dfbetas a frame with a column per
        estimable coefficient.
    """
    number = -1 if partition_info is None else int(partition_info.get("number", -1))
    with threads.limit(1):
        index, h, e, pear, X = (_glm_rows if spec.glm else _lm_rows)(part, number, plan, est, spec)
        values = _measure(kind, h, e, pear, X, spec)
    if kind in FRAME_KINDS:
        return pd.DataFrame(values, index=index, columns=list(spec.names))
    return pd.Series(values, index=index, name=kind.split("_predictive")[0].split("_pearson")[0])


def lazy_measure(fit: Any, kind: str) -> Any:
    """The measure ``kind`` of a Dask fit as a lazy Dask series (or frame, for dfbeta / dfbetas).

    Parameters
    ----------
    fit : DaskLinearModelResult or DaskGeneralizedLinearModelResult
    kind : str
        One of SERIES_KINDS or FRAME_KINDS.

    Returns
    -------
    dask.dataframe.Series or dask.dataframe.DataFrame

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> mtcars = tl.datasets.load("mtcars")
    >>> with dask.config.set(scheduler="threads"):
    ...     r = tl.lm("mpg ~ wt", dd.from_pandas(mtcars, npartitions=3)).rstudent().compute()
    >>> r.round(3).loc[["Fiat 128", "Toyota Corolla"]].tolist()
    [2.538, 2.384]
    """
    spec = fit.__dict__.get("_influence_spec")
    if spec is None:
        spec = fit.__dict__["_influence_spec"] = influence_spec(fit)
    name = kind.split("_predictive")[0].split("_pearson")[0]
    meta: Any = (pd.DataFrame({c: pd.Series(dtype=np.float64) for c in spec.names}) if kind in FRAME_KINDS
                 else pd.Series(dtype=np.float64, name=name))
    est = (fit.family, fit._spec) if spec.glm else fit._estimate
    return fit._ddf.map_partitions(partition_measures, fit._plan, est, spec, kind, meta=meta)


class DaskInfluenceMethods:
    """R's influence measures as methods of a Dask fit: lazy Dask series (frames for dfbeta and dfbetas).

    Each is over the rows of non-zero prior weight, with the data's index, as the in-memory fit's
    (:mod:`torchlm.inference.influence`); computing it runs one task per partition.
    """

    def hatvalues(self) -> Any:
        """Leverages (R's hatvalues; a glm's at its working weights) as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        return lazy_measure(self, "hat")

    def rstandard(self, type: str | None = None) -> Any:
        """Standardized residuals (R's rstandard: lm "sd.1" or "predictive"; glm "deviance" or "pearson"), lazy.

        Parameters
        ----------
        type : str, optional
            As the in-memory rstandard's.

        Returns
        -------
        dask.dataframe.Series
        """
        glm = hasattr(self, "family")
        allowed = ("deviance", "pearson") if glm else ("sd.1", "predictive")
        if type is not None and type not in allowed:
            raise OptionError(f"rstandard type for a {'glm' if glm else 'linear model'} must be "
                              f"'{allowed[0]}' or '{allowed[1]}', not {type!r}")
        return lazy_measure(self, "rstandard" if type in (None, allowed[0]) else f"rstandard_{type}")

    def rstudent(self) -> Any:
        """Studentized (leave-one-out) residuals (R's rstudent) as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        return lazy_measure(self, "rstudent")

    def cooks_distance(self) -> Any:
        """Cook's distances (R's cooks.distance) as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        return lazy_measure(self, "cooks_distance")

    def dffits(self) -> Any:
        """R's dffits() as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        return lazy_measure(self, "dffits")

    def covratio(self) -> Any:
        """R's covratio() as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        return lazy_measure(self, "covratio")

    def dfbeta(self) -> Any:
        """R's dfbeta() (one-step for a glm) as a lazy Dask frame, a column per estimable coefficient.

        Returns
        -------
        dask.dataframe.DataFrame
        """
        return lazy_measure(self, "dfbeta")

    def dfbetas(self) -> Any:
        """R's dfbetas() as a lazy Dask frame, a column per estimable coefficient.

        Returns
        -------
        dask.dataframe.DataFrame
        """
        return lazy_measure(self, "dfbetas")
