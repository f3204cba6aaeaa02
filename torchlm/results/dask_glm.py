"""A GLM fitted to a Dask DataFrame: GeneralizedLinearModelResult's numbers from the partitions' reductions.

What needs only the final QR and the final pass's sums (coef, vcov, std_errors, Wald confint, deviance, null
deviance, dispersion, AIC, BIC, logLik) is the in-memory result's code; robust and clustered covariances take
further passes (the scores W x (y - mu) / mu'(eta) per partition); fitted values, linear predictors, residuals
and predictions are lazy Dask series with the data's index; the summary's deviance residual quantiles are R's,
exact, by passes of counts. What reads the rows otherwise raises NotSupportedForDask.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError, TorchlmError, TorchlmWarning
from torchlm.frame import Design, as_frame
from torchlm.frame.dask_frame import DaskPlan, is_dask_frame, map_partitions_computed, not_supported
from torchlm.inference.dask_anova import DaskTableMethods
from torchlm.inference.dask_glm_meat import glm_meat_reduction, glm_scores
from torchlm.inference.dask_hac import dask_hac_covariance
from torchlm.inference.dask_influence import DaskInfluenceMethods
from torchlm.inference.dask_profile import dask_confint_profile
from torchlm.inference.dask_sandwich import LEVERAGE_TYPES, MeatSpec, _cluster_meat, _clusters, leverage_spec
from torchlm.inference.sandwich import check_type, describe
from torchlm.models.families import Family
from torchlm.present import rformat as rf
from torchlm.present.summary import DIGITS, GLMSummary
from torchlm.results.dask_linear import ROW_METHODS, DaskDesign, _refusal, exact_quantiles, row_names
from torchlm.results.generalized import RESIDUAL_TYPES, GeneralizedLinearModelResult
from torchlm.sources.dask_glm_passes import DaskIRLSFit
from torchlm.sources.dask_irls import FinalPart, FinalSpec, deviance_counts, partition_series
from torchlm.sources.dask_source import partition_predict

#: the in-memory result's per-row tensors: refused by name when looked up
ROW_TENSORS = ("_y", "_w", "_offset", "_mu_eta", "_working_w", "_good")


class DaskGeneralizedLinearModelResult(DaskTableMethods, DaskInfluenceMethods, GeneralizedLinearModelResult):
    """A GLM fitted to a Dask DataFrame (tl.glm with ``data=ddf``): R's glm from one pass per IRLS iteration.

    The numbers are the in-memory fit's; ``fitted()``, ``linear_predictors()``, ``residuals()`` and
    ``predict()`` of the data (or of a Dask newdata) are lazy Dask series aligned with the data's index;
    methods that need the rows in memory raise :class:`NotSupportedForDask`.
    """

    def __init__(self, ddf: Any, plan: DaskPlan, prototype: Design, family: Family, fit: DaskIRLSFit,
                 final: tuple[FinalSpec, FinalPart], control: dict, *, tol: float, call: str,
                 source: Any = None) -> None:
        if fit.qr.scaling is not None:
            raise not_supported("data whose squares leave float64's range (values near 1e150 and beyond)")
        total = fit.first.qr
        self._ddf, self._plan, self._prototype, self._total = ddf, plan, prototype, total
        self._source = ddf if source is None else source  # what the passes map over (persisted rows, or ddf)
        self._spec, sums = final
        self.design = DaskDesign(prototype, total, plan, as_frame(ddf._meta))  # type: ignore[assignment]
        self.control, self.family, self.call, self.tol = dict(control), family, call, tol
        self.device, self.dtype, self.information = torch.device("cpu"), torch.float64, "expected"
        self._fit, self._qr = fit, fit.qr
        self._names = tuple(prototype.names)
        self.rank = fit.qr.rank
        self.statistic = family.test_statistic
        self.iterations, self.converged, self.boundary = fit.iterations, fit.converged, fit.boundary
        self.deviance, self.null_deviance = fit.deviance, sums.null_deviance
        self.nobs = total.nobs
        self.df_residual = self.nobs - self.rank
        self.df_null = self.nobs - int(prototype.has_intercept)
        self.n_dropped_na = total.n_dropped
        self.na_exclude = False
        self._sums = sums
        if family.fixed_dispersion:
            self.dispersion = 1.0
        else:
            self.dispersion = sums.pearson / self.df_residual if self.df_residual > 0 else float("nan")
        self._aic = sums.aic + 2 * self.rank

    def __getattr__(self, name: str) -> Any:
        # only names not found otherwise: the parent's per-row tensors are refused by name
        if name in ROW_TENSORS:
            raise not_supported("reading the rows' working weights and residuals in memory")
        raise AttributeError(name)  # internal: Python's attribute protocol (getattr with a default, hasattr)

    @property
    def _est(self) -> tuple[Family, FinalSpec]:
        return self.family, self._spec

    # --- the parent's hooks, from the reductions ------------------------------------------------------------
    def hessian(self) -> pd.DataFrame:
        """The autograd Hessian of half the deviance: not supported for a Dask fit (it reads every row).

        Returns
        -------
        pandas.DataFrame
        """
        raise not_supported("hessian() (the observed information reads every row)")

    def _unscaled(self, information: str | None = None, **options: Any) -> np.ndarray:
        if (information or self.information) == "observed":
            raise not_supported("information='observed' (the autograd Hessian reads every row)")
        return super()._unscaled(information, **options)

    def _working(self) -> Any:
        raise not_supported("this covariance (it reads the rows' scores)")

    def _robust_vcov(self, type: str, cluster: Any) -> tuple[pd.DataFrame, str]:
        """sandwich's vcovHC / vcovCL from passes: the leverages' sum and maximum, then the meat (or cluster sums)."""
        check_type(type, cluster)
        if type == "HAC":
            est = (self.family, self._spec, sorted(self._qr.pivot[: self.rank]))
            return dask_hac_covariance(self, self._source, glm_scores, est)
        clusters = () if cluster is None else _clusters(cluster)
        if missing := [c for c in clusters if c not in self._ddf.columns]:
            raise OptionError(f"cluster {missing[0]!r} is not a column of the data")
        n, k, names = self._total.n, self.rank, list(self.estimable)
        if n <= k:
            return pd.DataFrame(np.nan, index=names, columns=names), describe(type, list(clusters) or None)
        base = leverage_spec(self, type)
        spec = MeatSpec(type=type, n=n, pivot=base.pivot, clusters=clusters)
        if type in LEVERAGE_TYPES and not clusters:
            lev = map_partitions_computed(self._source, glm_meat_reduction, self._plan, self._est,
                                          replace(base, type="leverages"))
            if close := [c for _, _, cs in lev for c in cs]:
                warnings.warn(f"{type} covariances become numerically unstable if hat values are close to 1 as for "
                              f"observations {', '.join(map(str, close))}", TorchlmWarning, stacklevel=5)
            p = int(np.round(sum(s for s, _, _ in lev)))
            if p == 0 and type in ("HC4", "HC4m", "HC5"):
                raise OptionError(f"type {type!r} needs leverages whose sum rounds to 1 or more")
            spec = replace(base, p=p, hmax=max(m for _, m, _ in lev))
        # a cluster's values are read from the partitions themselves
        parts = map_partitions_computed(self._ddf if clusters else self._source, glm_meat_reduction, self._plan,
                                        self._est, spec)
        M = _cluster_meat(parts, k) if clusters else np.sum(parts, axis=0)
        if type == "HC1":
            M = M * ((n - 1) / (n - k) if clusters else n / (n - k))
        C = np.asarray(self._unscaled(), dtype=np.float64)
        V = (C @ M @ C) * (self.nobs / n) ** 2
        return pd.DataFrame((V + V.T) / 2, index=names, columns=names), describe(type, list(clusters) or None)

    def _profile_intervals(self, level: float, parm: list[str] | None) -> pd.DataFrame:
        # MASS's grid walk, each grid point's glm.fit by IRLS passes over the partitions
        return dask_confint_profile(self, level, parm)

    def bic(self) -> float:
        """R's BIC: -2 logLik + log(n) df, n every row used (zero weights included).

        Returns
        -------
        float
        """
        return -2 * self.loglik() + float(np.log(self._total.n)) * self.df_loglik

    # --- per-row results: lazy Dask series --------------------------------------------------------------
    def _lazy(self, kind: str) -> Any:
        name = {"fitted": "fitted", "link": "eta"}.get(kind, "residuals")
        return self._ddf.map_partitions(partition_series, self._plan, self.family, self._spec, kind,
                                        meta=pd.Series(dtype=np.float64, name=name))

    def fitted(self) -> Any:
        """Fitted means as a lazy Dask series over the rows used, with the data's index.

        Returns
        -------
        dask.dataframe.Series
        """
        return self._lazy("fitted")

    def linear_predictors(self) -> Any:
        """The linear predictor (offset included) as a lazy Dask series over the rows used.

        Returns
        -------
        dask.dataframe.Series
        """
        return self._lazy("link")

    def residuals(self, type: str = "deviance") -> Any:
        """R's residuals.glm ("deviance", "pearson", "working", "response") as a lazy Dask series.

        Returns
        -------
        dask.dataframe.Series
        """
        if type not in RESIDUAL_TYPES:
            raise OptionError(f"residual type must be one of {RESIDUAL_TYPES}, not {type!r}")
        return self._lazy(type)

    def predict(self, newdata: Any = None, *, type: str = "link", se_fit: bool = False, terms: Any = None,
                offset: Any = None, vcov: Any = None, dispersion: Any = None) -> Any:
        """predict.glm: lazy Dask series for Dask (or no) newdata; a pandas newdata as the in-memory fit.

        Returns
        -------
        dask.dataframe.Series, pandas.Series or pandas.DataFrame
        """
        if type == "terms":
            raise not_supported("predict(type='terms')")
        if (newdata is None or is_dask_frame(newdata)) and (se_fit or offset is not None):
            raise not_supported("predict's se_fit and offset= for Dask rows (a pandas newdata has them)")
        return super().predict(newdata, type=type, se_fit=se_fit, terms=terms, offset=offset, vcov=vcov,
                               dispersion=dispersion)

    def _predict_mean(self, newdata: Any, type: str, V: pd.DataFrame | None, offset: Any) -> Any:
        if newdata is None:
            return self._lazy("fitted" if type == "response" else "link").rename("fit")
        if not is_dask_frame(newdata):
            view = copy.copy(self)  # the in-memory code, with the prototype's spec building the new rows
            view.design = self._prototype
            return GeneralizedLinearModelResult._predict_mean(view, newdata, type, V, offset)
        if self.rank < len(self.names):
            warnings.warn("prediction from a rank-deficient fit may be misleading", stacklevel=4)
        est = self._qr.pivot[: self.rank]
        eta = newdata.map_partitions(partition_predict, self._prototype, list(est), self._fit.coef[est],
                                     meta=pd.Series(dtype=np.float64, name="fit"))
        if type == "link":
            return eta
        return eta.map_partitions(_inverse_link, self.family, meta=pd.Series(dtype=np.float64, name="fit"))

    # --- presentation ----------------------------------------------------------------------------------
    def summary(self, vcov: Any = None, *, cluster: Any = None, dispersion: Any = None, correlation: bool = False,
                symbolic_cor: bool = False) -> GLMSummary:
        """R's summary.glm, as the in-memory fit's (the deviance residuals' quantiles exact, by passes).

        Returns
        -------
        GLMSummary
        """
        return DaskGLMSummary(self, vcov=vcov, cluster=cluster, dispersion=dispersion, correlation=correlation,
                              symbolic_cor=symbolic_cor)

    def residual_quantiles(self) -> np.ndarray:
        """R's quantile(residuals(fit, "deviance")) (Min, 1Q, Median, 3Q, Max), exactly (type 7).

        Returns
        -------
        numpy.ndarray
            (5,) as numpy.quantile of all the deviance residuals gives them.
        """
        cached = self.__dict__.get("_quantiles")
        if cached is None:
            s = self._sums
            cached = exact_quantiles(self._source, self._plan, self._est, self._total.n, s.dev_min, s.dev_max,
                                     counts=deviance_counts, sketches=list(s.sketches))
            self.__dict__["_quantiles"] = cached
        return cached


def _inverse_link(eta: pd.Series, family: Family) -> pd.Series:
    """The means of a partition's linear predictors (predict's type="response")."""
    mu = family.link.linkinv(torch.as_tensor(eta.to_numpy(dtype=np.float64))).numpy()
    return pd.Series(mu, index=eta.index, name="fit")


for _name in ROW_METHODS:
    setattr(DaskGeneralizedLinearModelResult, _name, _refusal(_name))


class DaskGLMSummary(GLMSummary):
    """summary.glm of a Dask fit: the in-memory summary, its residual block from the exact distributed quantiles."""

    def residual_lines(self) -> list[str]:
        """R's "Deviance Residuals:" block, from the exact quantiles (every residual when df_residual is 5 or less).

        Returns
        -------
        list of str
        """
        fit = self.fit
        lines = ["Deviance Residuals: "]
        if self.df_residual > 5:
            vals, names = fit.residual_quantiles(), ["Min", "1Q", "Median", "3Q", "Max"]
        else:
            try:
                r = fit.residuals("deviance").compute()  # at most 5 + rank rows of non-zero weight: few
            except TorchlmError as e:
                raise type(e)(str(e)) from None
            vals, names = r.to_numpy(), row_names(fit._ddf, r.index)
        lines += rf.print_named(rf.zapsmall(vals, DIGITS + 1), names, DIGITS, gap=2).split("\n")
        return lines
