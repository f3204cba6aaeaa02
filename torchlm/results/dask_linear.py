"""A linear model fitted to a Dask DataFrame: LinearModelResult's numbers from the partitions' reductions.

Everything that needs only the combined factor and sums (coef, vcov, std_errors, confint, sigma, R², F,
deviance, logLik, AIC, BIC, HC0/HC1) is computed as for an in-memory fit; HC2-HC5 and clustered covariances
take further passes (:mod:`torchlm.inference.dask_sandwich`); per-row results (fitted values, residuals,
leverages, standardized residuals, Cook's distances, predictions of a Dask newdata) are lazy Dask series; the
summary's residual quantiles are R's, found exactly by passes of counts
(:func:`torchlm.sources.dask_selection.order_statistics`). What reads the rows themselves otherwise (sequential
anova, drop1, rstudent, dfbeta, HAC, plots) raises NotSupportedForDask for now.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError, TorchlmError, TorchlmWarning
from torchlm.frame import Design, as_frame, newdata_matrix, newdata_offset
from torchlm.frame.dask_frame import DaskPlan, is_dask_frame, map_partitions_computed, not_supported
from torchlm.inference.dask_anova import DaskTableMethods
from torchlm.inference.dask_influence import DaskInfluenceMethods
from torchlm.inference.dask_sandwich import dask_robust_covariance
from torchlm.inference.sandwich import check_type, describe
from torchlm.present import rformat as rf
from torchlm.present.summary import DIGITS, LMSummary
from torchlm.results.linear import FStatistic, LinearModelResult
from torchlm.solvers.least_squares import QRFit, linear_chunks
from torchlm.sources.dask_selection import Sketch, order_statistics
from torchlm.sources.dask_source import (
    Estimate,
    QRPart,
    ResidualPart,
    combine_residuals,
    partition_predict,
    partition_values,
    pearson_residuals,
    residual_counts,
    residual_reduction,
)
from torchlm.sources.dask_windows import Window, guess_windows, windowed_statistics


class _RowsInPartitions:
    """A per-row field of a Dask fit's design: it exists (``is not None`` holds) but is never in memory."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> Any:
        raise not_supported(f"reading the {self.what} of every row")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise not_supported(f"reading the {self.what} of every row")

    def __len__(self) -> int:
        raise not_supported(f"reading the {self.what} of every row")

    def __getitem__(self, key: Any) -> Any:
        raise not_supported(f"reading the {self.what} of every row")


class DaskDesign:
    """A Design's description of the model (names, terms, spec) without its rows, which stay in the partitions.

    The per-row fields (columns, X, y, weights, offset, index, rows) raise NotSupportedForDask when used;
    ``weights`` and ``offset`` are None exactly when the fit has none; ``data`` is the data's schema (no rows).
    """

    def __init__(self, prototype: Design, total: QRPart, plan: DaskPlan, schema: pd.DataFrame) -> None:
        for key in ("names", "formulaic_names", "response", "spec", "formula", "has_intercept", "assign",
                    "offset_column", "weights_column", "offset_terms", "frame_info"):
            setattr(self, key, getattr(prototype, key))
        self.n_dropped = total.n_dropped
        self._n = total.n
        self.weights = None if plan.weights is None else _RowsInPartitions("weights")
        has_offset = plan.offset is not None or bool(plan.offset_terms)
        self.offset = _RowsInPartitions("offset") if has_offset else None
        self.data = schema  # the columns and their types (no rows): what formulas and update() read
        for key in ("columns", "y", "X", "index", "rows", "frame"):
            setattr(self, key, _RowsInPartitions(f"design's {key}"))

    @property
    def shape(self) -> tuple[int, int]:
        """(n, p): rows used and columns of the design.

        Returns
        -------
        tuple of int
        """
        return self._n, len(self.names)

    def __getattr__(self, name: str) -> Any:
        raise not_supported(f"the design's {name}")


class DaskLinearModelResult(DaskTableMethods, DaskInfluenceMethods, LinearModelResult):
    """A linear model fitted to a Dask DataFrame (tl.lm with ``data=ddf``): R's lm from per-partition reductions.

    The numbers are the in-memory fit's; ``fitted()``, ``residuals()`` and ``predict(newdata=ddf)`` are
    lazy Dask series aligned with the data's index; methods that need the rows in memory raise
    :class:`NotSupportedForDask`.
    """

    def __init__(self, ddf: Any, plan: DaskPlan, prototype: Design, qr: QRFit, total: QRPart, *, tol: float,
                 call: str) -> None:
        if qr.scaling is not None:
            raise not_supported("data whose squares leave float64's range (values near 1e150 and beyond)")
        sample, total = total.sample, dataclasses.replace(total, sample=None)  # the sample serves the windows only
        self._ddf, self._plan, self._prototype, self._total = ddf, plan, prototype, total
        self.design = DaskDesign(prototype, total, plan, as_frame(ddf._meta))  # type: ignore[assignment]
        self.call, self.tol = call, tol
        self.device, self.dtype = torch.device("cpu"), torch.float64
        self._qr = qr
        self._names = tuple(prototype.names)
        self.na_exclude = False
        self.rank = qr.rank
        self.nobs = total.nobs
        self.df_residual = self.nobs - self.rank
        self._estimate = self._make_estimate()
        # the summary's quantiles, guessed from the QR pass's sample: collected by the residual pass
        self._windows = () if sample is None else guess_windows(
            pearson_residuals(sample, self._estimate), total.n, quantile_ranks(total.n))
        res = self._residual_pass()
        self._residual_sums = res
        self.deviance = 0.0 if self.df_residual == 0 and self.nobs else res.rss
        self.sigma = math.sqrt(self.deviance / self.df_residual) if self.df_residual > 0 else float("nan")
        self.n_dropped_na = total.n_dropped
        self._r2()

    def _make_estimate(self) -> Estimate:
        t, qr = self._total, self._qr
        beta = np.where(np.isnan(qr.coef), 0.0, qr.coef)
        # the weighted mean of X b over the rows of non-zero weight (zero weights add nothing to either sum)
        weighted = None
        if self.design.has_intercept:
            weighted = float(t.wcolsum @ beta) / self._weight_total()
        return Estimate(beta=beta, estimable=tuple(sorted(qr.pivot[: qr.rank])), weighted_mean=weighted,
                        fitted_mean=(float(t.colsum @ beta) + t.offset_sum) / t.n if t.n else 0.0,
                        saturated=self.df_residual == 0 and self.nobs > 0)

    def _weight_total(self) -> float:
        """The sum of the weights (the number of rows without weights), from the intercept's column sums."""
        t = self._total
        if self._plan.weights is None:
            return float(t.n)
        j = self.design.assign.index("1")  # the intercept's column is 1 in every row: its w-sum is sum(w)
        return float(t.wcolsum[j])

    def _residual_pass(self) -> ResidualPart:
        return combine_residuals(map_partitions_computed(self._ddf, residual_reduction, self._plan, self._estimate,
                                                         self._windows))

    def __getattr__(self, name: str) -> Any:
        # only names not found otherwise: the parent's per-row arrays are refused by name
        if name in ROW_ARRAYS:
            raise not_supported(ROW_ARRAYS[name])
        raise AttributeError(name)  # internal: Python's attribute protocol (getattr with a default, hasattr)

    # --- the parent's hooks, from the reductions ------------------------------------------------------------
    def _chunks(self) -> Any:
        """The stacked partition factors as pseudo-rows: their normal equations are the data's."""
        R = self._total.R
        p = len(self._names)
        return linear_chunks(np.asfortranarray(R[:, :p]), R[:, p].copy())

    def _working(self) -> Any:
        raise not_supported("this covariance (it reads the rows' scores)")

    def _robust_vcov(self, type: str, cluster: Any) -> tuple[pd.DataFrame, str]:
        check_type(type, cluster)
        n, k = self._total.n, self.rank
        if cluster is not None or type not in ("HC0", "HC1") or n <= k:
            return dask_robust_covariance(self, type, cluster)  # leverages or cluster sums: further passes
        # HC0's meat came with the residual pass
        C = np.asarray(self._unscaled(), dtype=np.float64)
        M = self._residual_sums.meat * (n / (n - k) if type == "HC1" else 1.0)
        V = (C @ M @ C) * (self.nobs / n) ** 2
        names = list(self.estimable)
        return pd.DataFrame((V + V.T) / 2, index=names, columns=names), describe(type)

    def _r2(self) -> None:
        res = self._residual_sums
        mss, rss = res.mss, self.deviance
        df_int = 1 if self.design.has_intercept else 0
        self.fstatistic = None
        if self.rank == df_int:
            self.r_squared = self.adj_r_squared = 0.0
            return
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # R's arithmetic, as LinearModelResult's: NaN or Inf where R gives them, not an exception
            self.r_squared = float(np.float64(mss) / np.float64(mss + rss))
            numdf = self.rank - df_int
            rdf = np.float64(self.df_residual)
            self.adj_r_squared = float(1 - (1 - self.r_squared) * (np.float64(self.nobs - df_int) / rdf))
            value = np.float64(mss / numdf) / (np.float64(rss) / rdf)
        self.fstatistic = FStatistic(float(value), float(numdf), float(self.df_residual))

    def loglik(self) -> float:
        """Gaussian log-likelihood as R's logLik.lm (prior weights; zero weights excluded).

        Returns
        -------
        float
        """
        N = self.nobs
        return float(0.5 * (self._total.sum_log_w
                            - N * (math.log(2 * math.pi) + 1 - math.log(N) + math.log(self.deviance))))

    # --- per-row results: lazy Dask series --------------------------------------------------------------
    def _series(self, kind: str) -> Any:
        name = "fitted" if kind == "fitted" else "residuals"
        return self._ddf.map_partitions(partition_values, self._plan, self._estimate, kind,
                                        meta=pd.Series(dtype=np.float64, name=name))

    def fitted(self) -> Any:
        """Fitted values (offset included) as a lazy Dask series over the rows used, with the data's index.

        Returns
        -------
        dask.dataframe.Series
        """
        return self._series("fitted")

    def residuals(self, type: str = "response") -> Any:
        """Residuals as a lazy Dask series: "response"/"working" (y - fitted) or "pearson"/"deviance" (sqrt(w) times).

        Returns
        -------
        dask.dataframe.Series
        """
        if type in ("response", "working"):
            return self._series("response")
        if type in ("pearson", "deviance"):
            return self._series("pearson")
        raise OptionError(f"residual type must be response, working, pearson or deviance, not {type!r}")

    def predict(self, newdata: Any = None, *, se_fit: bool = False, interval: str | None = None,
                level: float = 0.95, type: str = "response", terms: Any = None, offset: Any = None,
                vcov: Any = None, pred_var: Any = None, weights: Any = None) -> Any:
        """Predictions: a lazy Dask series for Dask (or no) newdata, as the in-memory fit for a pandas newdata.

        Returns
        -------
        dask.dataframe.Series, pandas.Series or pandas.DataFrame
        """
        if type not in ("response", "link"):
            raise not_supported(f"predict(type={type!r})")
        if newdata is not None and not is_dask_frame(newdata):
            return self._predict_frame(newdata, se_fit, interval, level, offset, vcov, pred_var, weights)
        if se_fit or interval not in (None, "none") or offset is not None or pred_var is not None:
            raise not_supported("predict's se_fit, intervals and offset= for Dask rows (a pandas newdata has them)")
        if newdata is None:
            return self.fitted().rename("fit")
        est = self._qr.pivot[: self.rank]
        return newdata.map_partitions(partition_predict, self._prototype, list(est), self._qr.coef[est],
                                      meta=pd.Series(dtype=np.float64, name="fit"))

    def _predict_frame(self, newdata: Any, se_fit: bool, interval: Any, level: float, offset: Any, vcov: Any,
                       pred_var: Any, weights: Any) -> Any:
        """predict.lm on in-memory new rows: the design from the fitted spec, the variances from the factor."""
        interval = None if interval == "none" else interval
        if interval not in (None, "confidence", "prediction"):
            raise OptionError(f"interval must be None, 'confidence' or 'prediction', not {interval!r}")
        X = newdata_matrix(self._prototype, newdata)
        off = newdata_offset(self._prototype, newdata, offset, len(X))
        est = self._qr.pivot[: self.rank]
        if self.rank < len(self.names):
            warnings.warn("prediction from a rank-deficient fit may be misleading", stacklevel=3)
        fit = X[:, est] @ self._qr.coef[est] + (0.0 if off is None else off)
        index = newdata.index if hasattr(newdata, "index") else pd.RangeIndex(len(X))
        if not se_fit and interval is None:
            return pd.Series(fit, index=index, name="fit")
        if vcov is None:
            B = torch.linalg.solve_triangular(self._qr.R.cpu().double(), torch.as_tensor(X[:, est]), upper=True,
                                              left=False)
            ip = self.sigma**2 * B.square().sum(dim=1).numpy()
        else:
            V = self._covariance(vcov)[0].to_numpy()
            Xe = X[:, sorted(est)]
            ip = np.einsum("ij,jk,ik->i", Xe, V, Xe)
        out = pd.DataFrame({"fit": fit}, index=index)
        if se_fit:
            out["se_fit"] = np.sqrt(ip)
        if interval is not None:
            if interval == "prediction" and weights is None and pred_var is None and self._plan.weights is not None:
                warnings.warn("Assuming constant prediction variance even though model fit is weighted",
                              TorchlmWarning, stacklevel=3)
            pv = (np.asarray(pred_var, dtype=float) if pred_var is not None
                  else self.sigma**2 / (1.0 if weights is None else np.asarray(weights, dtype=float)))
            width = np.sqrt(ip + pv) if interval == "prediction" else np.sqrt(ip)
            q = self._quantile(level)
            out["lwr"], out["upr"] = fit - q * width, fit + q * width
        return out

    def summary(self, vcov: Any = None, *, cluster: Any = None, correlation: bool = False,
                symbolic_cor: bool = False) -> LMSummary:
        """R's summary.lm, as the in-memory fit's (the residual quantiles exact, by passes over the partitions).

        Returns
        -------
        LMSummary
        """
        return DaskLMSummary(self, vcov=vcov, cluster=cluster, correlation=correlation, symbolic_cor=symbolic_cor)

    def residual_quantiles(self) -> np.ndarray:
        """R's quantile(residuals) (Min, 1Q, Median, 3Q, Max) of the pearson residuals, exactly (type 7).

        Returns
        -------
        numpy.ndarray
            (5,) as numpy.quantile of all the residuals gives them.
        """
        cached = self.__dict__.get("_quantiles")
        if cached is not None:
            return cached
        r = self._residual_sums
        q = exact_quantiles(self._ddf, self._plan, self._estimate, self._total.n, r.r_min, r.r_max,
                            sketches=list(r.sketches), windows=r.windows)
        self.__dict__["_quantiles"] = q
        return q


def quantile_ranks(n: int) -> list[int]:
    """The ranks (0-based) of n values that R's quantile (type 7) reads for the quartiles.

    Parameters
    ----------
    n : int
        At least 1.

    Returns
    -------
    list of int

    Examples
    --------
    >>> from torchlm.results.dask_linear import quantile_ranks
    >>> quantile_ranks(32)
    [7, 8, 15, 16, 23, 24]
    """
    lo = np.floor((n - 1) * np.array([0.25, 0.5, 0.75])).astype(np.int64)
    return sorted({int(k) for k in lo} | {min(int(k) + 1, n - 1) for k in lo})


def exact_quantiles(ddf: Any, plan: DaskPlan, est: Any, n: int, lowest: float, highest: float,
                    counts: Any = residual_counts, sketches: list[Sketch] | None = None,
                    windows: tuple[Window, ...] = ()) -> np.ndarray:
    """R's quantile(values) (type 7) at 0, 1/4, 1/2, 3/4, 1 of per-row values, from exact order statistics.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    plan : DaskPlan
    est : Any
        What ``counts`` reads (default: an Estimate, the pearson residuals).
    n : int
        The number of values.
    lowest, highest : float
        Their minimum and maximum (from a pass of sums).
    counts : callable, optional
        The per-partition counts (see dask_selection.order_statistics; default the pearson residuals').
    sketches : list of Sketch, optional
        The partitions' sketches of the values (from an earlier pass): the ranks' starting brackets.
    windows : tuple of Window, optional
        Keys collected by an earlier pass in guessed windows (torchlm.sources.dask_windows): the ranks they hold
        need no further pass.

    Returns
    -------
    numpy.ndarray
        (5,) as numpy.quantile of all the values gives them.
    """
    h = (n - 1) * np.array([0.25, 0.5, 0.75])
    lo = np.floor(h).astype(np.int64)
    ranks = quantile_ranks(n)
    stats = windowed_statistics(windows, ranks)
    if missing := [k for k in ranks if k not in stats]:
        stats.update(order_statistics(ddf, plan, est, n, missing, counts, sketches=sketches))
    inner = [float(np.quantile(np.array([stats[int(k)], stats[min(int(k) + 1, n - 1)]]), g - k))
             for g, k in zip(h, lo)]
    return np.array([lowest] + inner + [highest])


#: what reads the rows in memory: refused by name until the partition passes for it exist
ROW_METHODS = ("influence", "influence_measures", "plot", "augment", "alias", "dummy_coef", "add1", "step")
#: the parent's per-row arrays (read by sequential anova and the influence code): refused when looked up
ROW_ARRAYS = {"_fitted": "sequential anova (the fitted values in memory)", "_resid": "the residuals in memory",
              "_w_used": "the rows' weights in memory"}


def _refusal(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise not_supported(f"{name}()")

    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f"{name}() of the in-memory fit: not supported yet for a Dask fit (raises NotSupportedForDask)."
                      "\n\nReturns\n-------\nNoReturn")
    return method


for _name in ROW_METHODS:
    setattr(DaskLinearModelResult, _name, _refusal(_name))



class DaskLMSummary(LMSummary):
    """summary.lm of a Dask fit: the in-memory summary, its residual block from the exact distributed quantiles."""

    def _perfect_fit(self) -> bool:
        """R's test resvar < (mean(f)^2 + var(f)) * 1e-30, from the residual pass's sums (fitted stays lazy)."""
        fit = self.fit
        n, res = fit._total.n, fit._residual_sums
        mean, var = fit._estimate.fitted_mean, res.ss_fitted / (n - 1) if n > 1 else 0.0
        return bool(n > 1 and np.isfinite(fit.sigma) and fit.sigma**2 < (mean**2 + var) * 1e-30)

    def residual_lines(self) -> list[str]:
        """R's "Residuals:" block, from the exact quantiles (every residual when df_residual is 1 to 5).

        Returns
        -------
        list of str
        """
        fit = self.fit
        t = fit._total
        weighted = fit._plan.weights is not None and t.w_max - t.w_min > 0
        lines = [("Weighted " if weighted else "") + "Residuals:"]
        if fit.df_residual > 5:
            q = rf.zapsmall(fit.residual_quantiles(), DIGITS + 1)
            lines += rf.print_named(q, ["Min", "1Q", "Median", "3Q", "Max"], DIGITS).split("\n")
        elif fit.df_residual > 0:
            try:
                r = fit.residuals("pearson").compute()  # at most 5 + rank rows of non-zero weight: few
            except TorchlmError as e:
                raise type(e)(str(e)) from None
            lines += rf.print_named(r.to_numpy(), self._row_names(r.index), DIGITS).split("\n")
        else:
            lines.append(f"ALL {fit.rank} residuals are 0: no residual degrees of freedom!")
        return lines

    def _row_names(self, rows: pd.Index) -> list[str]:
        """R's row names: 1, 2, ... where the data's index is pandas' default (a RangeIndex from 0)."""
        return row_names(self.fit._ddf, rows)


def row_names(ddf: Any, rows: pd.Index) -> list[str]:
    """R's row names of rows of a Dask DataFrame: 1, 2, ... where its index is pandas' default (a RangeIndex from 0).

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    rows : pandas.Index
        The labels of the rows.

    Returns
    -------
    list of str
    """
    automatic = (isinstance(ddf._meta.index, pd.RangeIndex) and ddf.known_divisions and ddf.divisions[0] == 0
                 and rows.is_unique)
    return rf.row_labels(rows, pd.RangeIndex(0, 1) if automatic else rows)
