"""Robust covariances with R's sandwich conventions: HC0-HC5, Newey-West HAC, one- and two-way clustering.

Two levels:

* ``sandwich_cov(bread, scores, ...)``: the estimator itself, for any model whose objective is a sum
  over observations (user-written torch models included);
* ``robust_covariance(fit, type, cluster)``: the covariance of a fitted lm/glm result, with per-observation
  scores from autograd and R's bookkeeping (zero weights, missing values, cluster look-up).

Newey-West's bandwidth, weights and meat are in torchlm.hac, the cluster variables in torchlm.clustering
(both importable from here).

Reference: Zeileis (2004, 2006), Zeileis, Köll & Graham (2020); R package sandwich 3.0-2
(``vcovHC``, ``vcovCL``, ``NeweyWest``, ``bwNeweyWest``, ``meatHC``, ``meatCL``, ``meatHAC``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.func import grad, vmap

from torchlm.errors import DataError, OptionError, TorchlmWarning
from torchlm.frame.factor_block import FactorDesign
from torchlm.inference.clustering import cluster_codes, cluster_values
from torchlm.inference.factor_sandwich import factor_meat
from torchlm.inference.hac import (  # noqa: F401
    _bandwidth_from_u,
    _bandwidth_vector,
    _finite,
    _ScoreChunks,
    chunked_hac_meat,
    newey_west_bandwidth,
    newey_west_lag,
    newey_west_weights,
    ones_column_sums,
    ones_weights,
)
from torchlm.inference.leverages import forced_leverages, is_scaled
from torchlm.solvers.autograd import quiet
from torchlm.solvers.least_squares import chunk_rows
from torchlm.sources.row_blocks import WorkingRows

if TYPE_CHECKING:
    from torchlm.results.protocols import DesignFit

HC_TYPES = ("HC0", "HC1", "HC2", "HC3", "HC4", "HC4m", "HC5")
ROBUST_TYPES = HC_TYPES + ("HAC",)
CLUSTER_TYPES = ("HC0", "HC1")
NEEDS_HAT = ("HC2", "HC3", "HC4", "HC4m", "HC5")
INTERCEPT = "Intercept"  # formulaic's name for R's "(Intercept)"
R_INTERCEPT = "(Intercept)"


def intercept_name(fit: Any) -> str | None:
    """The name of a fit's intercept among its estimable coefficients, None when it has none (or it is aliased).

    A fit with a design finds it by the design's terms (the column of the term "1"), whatever the names
    (formulaic's ``Intercept`` or R's ``(Intercept)``); a fit without one (tl.infer, tl.mle) by those names.

    Parameters
    ----------
    fit : ModelResult
        A fitted model.

    Returns
    -------
    str or None
        The coefficient's name.
    """
    estimable = list(fit.estimable)
    design = getattr(fit, "design", None)
    assign = getattr(design, "assign", None)
    if design is not None and assign:
        if "1" not in assign:
            return None
        name = str(design.names[assign.index("1")])
    else:
        name = next((n for n in estimable if n in (INTERCEPT, R_INTERCEPT)), "")
    return name if name in estimable else None


def sandwich_cov(bread: torch.Tensor, scores: torch.Tensor, *, type: str = "HC0", hat: torch.Tensor | None = None,
                 cluster: np.ndarray | None = None, df_residual: int | None = None) -> torch.Tensor:
    """Sandwich covariance ``bread @ meat @ bread`` of an M-estimator, with R's sandwich package conventions.

    The objective is a sum over n observations, minimised at the estimate; ``s_i`` (row i of
    ``scores``) is observation i's gradient there, ``B = bread`` the inverse Hessian of the summed
    objective (for lm, ``(X'WX)^{-1}``; a least-squares objective ½Σeᵢ² needs no scale factor).
    With k = number of coefficients and ``df = df_residual`` (default ``n - k``), the meat is:

    * ``HC0``: ``Σ s_i s_i'`` (White).
    * ``HC1``: ``n / df · Σ s_i s_i'``.
    * ``HC2``: ``Σ s_i s_i' / (1 - h_i)``.
    * ``HC3``: ``Σ s_i s_i' / (1 - h_i)^2``.
    * ``HC4``: ``Σ s_i s_i' / (1 - h_i)^δ_i``, ``δ_i = min(4, n h_i / p)``.
    * ``HC4m``: ``δ_i = min(1, n h_i / p) + min(1.5, n h_i / p)``.
    * ``HC5``: ``Σ s_i s_i' / (1 - h_i)^(δ_i / 2)``, ``δ_i = min(n h_i / p, max(4, 0.7 n max(h) / p))``.

      ``h = hat`` are the leverages and ``p = round(Σ h_i)``, as sandwich's ``meatHC``.
    * ``HAC``: Newey-West, ``n / df · [Γ_0 + Σ_{j=1}^{L+1} w_j (Γ_j + Γ_j')]`` with
      ``Γ_j = Σ_i s_i s_{i+j}'`` over the rows in the given (time) order, Bartlett weights
      ``w_j = 1 - j / (L + 1)`` and lag ``L = floor(bwNeweyWest)``, the automatic bandwidth of
      Newey & West (1994) without prewhitening: R's ``NeweyWest(fit, prewhite = FALSE, adjust = TRUE)``.
      Here every coefficient enters the bandwidth; ``robust_covariance`` leaves the intercept out, as R does.
    * ``cluster`` (one column of codes, or two for two-way clustering; type HC0 or HC1): R's
      ``vcovCL`` with its defaults (``cadjust = TRUE``, ``multi0 = FALSE``). With ``S_g`` the sum of the
      scores in cluster g and G clusters, the meat is ``G/(G-1) Σ_g S_g S_g'``; two-way clustering adds
      the same for the second variable and subtracts it for their intersection (each with its own
      G/(G-1)); HC1 multiplies the result by ``(n - 1) / df``.

    Parameters
    ----------
    bread : (k, k) inverse Hessian of the summed objective at the estimate.
    scores : (n, k) per-observation gradients of the summed objective.
    type : one of HC0, HC1, HC2, HC3, HC4, HC4m, HC5, HAC.
    hat : (n,) leverages, needed by HC2 to HC5.
    cluster : (n,) or (n, 2) cluster labels (integer codes or any hashable values; no missing values).
    df_residual : residual degrees of freedom of the HC1, HAC and clustered-HC1 adjustments; default n - k.

    Returns
    -------
    torch.Tensor
        The (k, k) covariance, on the device of ``bread``.

    Examples
    --------
    >>> X = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    >>> e = torch.tensor([0.5, -1.0, 1.0, -0.5])
    >>> bread = torch.linalg.inv(X.T @ X)
    >>> tl.sandwich_cov(bread, X * e[:, None], type="HC0")
    tensor([[ 0.3025, -0.0975],
            [-0.0975,  0.0650]], dtype=torch.float64)
    """
    B = _as_float64(bread, "bread")
    S = _as_float64(scores, "scores").to(B.device)
    if B.ndim != 2 or B.shape[0] != B.shape[1]:
        raise OptionError(f"bread must be a square (k, k) matrix, got shape {tuple(B.shape)}")
    if S.ndim != 2 or S.shape[1] != B.shape[0]:
        raise OptionError(f"scores must be (n, k) with k = {B.shape[0]} (the size of bread), "
                          f"got shape {tuple(S.shape)}")
    if not torch.isfinite(B).all():
        raise DataError("bread has non-finite values")
    h = None if hat is None else _as_float64(hat, "hat").to(B.device)
    M = meat(S, type=type, hat=h, cluster=cluster, df_residual=df_residual)
    V = B @ M @ B
    return (V + V.T) / 2


def meat(scores: torch.Tensor, *, type: str, hat: torch.Tensor | None = None, cluster: np.ndarray | None = None,
         df_residual: int | None = None, bandwidth_weights: np.ndarray | None = None) -> torch.Tensor:
    """The summed meat of ``sandwich_cov`` (its formulas), before the bread.

    Parameters
    ----------
    scores : torch.Tensor
        (n, k) per-observation gradients of the summed objective.
    type : str
        One of HC0, HC1, HC2, HC3, HC4, HC4m, HC5, HAC.
    hat : torch.Tensor or None
        (n,) leverages, needed by HC2 to HC5.
    cluster : numpy.ndarray or None
        (n,) or (n, 2) cluster labels, as for ``sandwich_cov``.
    df_residual : int or None
        Residual degrees of freedom of the HC1, HAC and clustered-HC1 adjustments; default n - k.
    bandwidth_weights : numpy.ndarray or None
        (k,) weights of the coefficients in HAC's automatic bandwidth (R gives the intercept 0);
        default all 1.

    Returns
    -------
    torch.Tensor
        The (k, k) meat in float64, on the device of ``scores``.
    """
    S = _as_float64(scores, "scores")
    if S.ndim != 2:
        raise OptionError(f"scores must be an (n, k) matrix, got shape {tuple(S.shape)}")
    n, k = S.shape
    if n == 0:
        raise DataError("scores has no rows")
    check_type(type, cluster)
    df = _residual_df(n, k, df_residual)
    if type == "HAC":
        if not _all_finite(S):  # before the bandwidth, which NaN would make meaningless
            raise DataError("scores has non-finite values (NaN or Inf)")
        lag = newey_west_lag(S, bandwidth_weights)
        return chunked_hac_meat(_matrix_chunks(S), n, k, lag, device=S.device) * (n / df)
    return chunked_meat(_matrix_chunks(S), n, k, type=type, hat=hat, cluster=cluster, df=df, device=S.device)


def _matrix_chunks(S: torch.Tensor):
    """The chunks argument of chunked_meat / chunked_hac_meat for a whole score matrix."""
    step = chunk_rows(*S.shape)
    return lambda: ((slice(s, s + step), S[s:s + step]) for s in range(0, S.shape[0], step))


def _residual_df(n: int, k: int, df_residual) -> int:
    df = n - k if df_residual is None else df_residual
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or not 0 < df <= n:
        raise OptionError(f"df_residual must be an integer in 1..n (n = {n}), got {df_residual!r}"
                         + (f" (n - k = {n - k}: no residual degrees of freedom)" if df_residual is None else ""))
    return int(df)


def chunked_meat(chunks: _ScoreChunks, n: int, k: int, *, type: str, hat: torch.Tensor | None,
                 cluster: np.ndarray | None, df: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The HC0-HC5 or clustered meat summed over chunks of scores, so all n x k scores never exist at once.

    Parameters
    ----------
    chunks : callable
        Called without arguments, gives an iterable of (positions, scores): a slice or an index tensor
        into the n observations, and those rows' (m, k) scores. Observations no chunk covers have zero
        scores (R's zero-weight rows: they count in n but add nothing).
    n, k : int
        The numbers of observations and coefficients.
    type : str
        HC0 to HC5 or HC4m; HC0 or HC1 with ``cluster``.
    hat : torch.Tensor or None
        Over all n observations, as for ``meat``.
    cluster : numpy.ndarray or None
        Over all n observations, as for ``meat``.
    df : int
        Residual degrees of freedom of the HC1 adjustments.
    device : torch.device, str or None
        Where the result is made.

    Returns
    -------
    torch.Tensor
        The (k, k) meat in float64.
    """
    if cluster is not None:
        terms = cluster_codes(cluster)
        if terms[0][0].shape[0] != n:
            raise OptionError(f"cluster has {terms[0][0].shape[0]} rows for {n} rows of scores")
        if any(G < 2 for _, G, _ in terms):
            raise OptionError("a cluster variable with a single cluster gives no clustered covariance (G/(G-1))")
        sums = [torch.zeros(G, k, dtype=torch.float64, device=device) for _, G, _ in terms]
        codes = [c.to(device) for c, _, _ in terms]
        for pos, Sc in chunks():
            Sc = _finite(Sc)
            for c, Sg in zip(codes, sums):
                Sg.index_add_(0, c[pos], Sc)
        M = torch.zeros(k, k, dtype=torch.float64, device=device)
        for (_, G, sign), Sg in zip(terms, sums):
            M += sign * (G / (G - 1)) * (Sg.T @ Sg)
        return M * ((n - 1) / df) if type == "HC1" else M
    f = hc_factor(type, n, hat)
    M = torch.zeros(k, k, dtype=torch.float64, device=device)
    for pos, Sc in chunks():
        Sc = _finite(Sc)
        M += Sc.T @ (Sc if f is None else Sc * f[pos, None])
    return M * (n / df) if type == "HC1" else M


def _all_finite(S: torch.Tensor) -> bool:
    # by chunks: torch.isfinite on the whole matrix makes a full-size temporary
    step = chunk_rows(*S.shape)
    return all(bool(torch.isfinite(S[s:s + step]).all()) for s in range(0, S.shape[0], step))


def check_type(type: str, cluster: Any = None) -> None:
    """ValueError unless ``type`` is a robust type usable with ``cluster``.

    Parameters
    ----------
    type : str
        The covariance type asked for.
    cluster : Any
        The cluster specification, or None; only whether there is one matters here.
    """
    if type not in ROBUST_TYPES:
        raise OptionError(f"unknown robust covariance type {type!r}; choose one of {', '.join(ROBUST_TYPES)}")
    if cluster is not None and type not in CLUSTER_TYPES:
        raise OptionError(f"clustered covariances are available for type HC0 or HC1 (R's vcovCL), not {type!r}")


def _as_float64(t, what: str) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise OptionError(f"{what} must be a real-valued tensor, got dtype {t.dtype}")
        return t.to(torch.float64)
    try:
        return torch.as_tensor(np.asarray(t, dtype=np.float64))
    except (TypeError, ValueError):
        raise OptionError(f"{what} must be a numeric tensor or array, got {type(t).__name__}") from None


def hc_factor(type: str, n: int, hat: torch.Tensor | None) -> torch.Tensor | None:
    """Per-row multiplier of s_i s_i' for the leverage-based HC types (None: 1, HC0 and HC1).

    Returns
    -------
    torch.Tensor (n,) or None
    """
    if type in ("HC0", "HC1"):
        return None
    if hat is None:
        raise OptionError(f"type {type!r} needs hat= (the leverages h_i, one per row of scores)")
    h = hat.reshape(-1)
    if h.shape[0] != n:
        raise OptionError(f"hat has {h.shape[0]} values for {n} rows of scores")
    if not torch.isfinite(h).all() or (h < 0).any() or (h > 1 + 1e-10).any():
        raise DataError("hat values must lie in [0, 1]")
    close = torch.nonzero(h > 1 - math.sqrt(np.finfo(float).eps)).reshape(-1)
    if len(close):
        at = ", ".join(str(int(j) + 1) for j in close)
        warnings.warn(f"{type} covariances become numerically unstable if hat values are close to 1 "
                      f"as for observations {at}", TorchlmWarning, stacklevel=4)
    one_minus = 1 - h
    if type == "HC2":
        return 1 / one_minus
    if type == "HC3":
        return 1 / one_minus**2
    # R: p <- as.integer(round(sum(diaghat), digits = 0)); numpy's round is R's (half to even)
    p = int(np.round(float(h.sum())))
    if p == 0:
        raise OptionError(f"type {type!r} needs leverages whose sum (the number of coefficients) rounds to 1 or more")
    r = n * h / p
    if type == "HC4":
        delta = torch.clamp(r, max=4)
    elif type == "HC4m":
        delta = torch.clamp(r, max=1) + torch.clamp(r, max=1.5)
    else:  # HC5
        delta = torch.minimum(r, torch.clamp(n * 0.7 * h.max() / p, min=4))
        return 1 / torch.sqrt(one_minus**delta)
    return 1 / one_minus**delta


# --- fit level -----------------------------------------------------------------------------------

def observation_scores(Xw: np.ndarray | WorkingRows, ew: np.ndarray, *,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """Per-observation scores by autograd: vmap over rows of the gradient of ½ e_i(β)², in row chunks.

    e(β) = Xw (β - β̂) + ew is the working residual as a function of the coefficients (Xw β - z for
    the working response z), written relative to the estimate so that e(β̂) = ew exactly; the
    gradient at β̂ is ew_i · Xw_i, the score of observation i (up to sign, which the sandwich squares).

    Parameters
    ----------
    Xw : numpy.ndarray or WorkingRows
        (n, k) weighted design, read by row slices.
    ew : numpy.ndarray
        (n,) weighted working residuals.
    device : torch.device, str or None
        Where the result is made.

    Returns
    -------
    torch.Tensor
        (n, k) float64 scores.
    """
    n, k = Xw.shape
    out = torch.empty(n, k, dtype=torch.float64, device=device)
    for s, Sc in score_chunks(Xw, ew, device=device):
        out[s:s + Sc.shape[0]] = Sc
    return out


def score_chunks(Xw: np.ndarray | WorkingRows, ew: np.ndarray, *,
                 device: torch.device | str | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """observation_scores row chunk by row chunk: (first row, its (m, k) scores) pairs, never all n x k.

    Parameters
    ----------
    Xw : numpy.ndarray or WorkingRows
        (n, k) array, or any object with ``shape`` whose row slices are arrays (a design read by blocks).
    ew : numpy.ndarray
        (n,) weighted working residuals.
    device : torch.device, str or None
        Where the result is made.

    Yields
    ------
    tuple of (int, torch.Tensor)
        The chunk's first row and its (m, k) float64 scores.
    """
    n, k = Xw.shape
    delta = torch.zeros(k, dtype=torch.float64, device=device)
    def half_square(d: torch.Tensor, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x @ d + e) ** 2

    per_row = quiet(vmap(grad(half_square), in_dims=(None, 0, 0)))
    step = chunk_rows(n, k)
    for s in range(0, n, step):
        x = torch.as_tensor(np.ascontiguousarray(Xw[s:s + step], dtype=np.float64), device=device)
        e = torch.as_tensor(np.ascontiguousarray(ew[s:s + step], dtype=np.float64), device=device)
        yield s, per_row(delta, x, e)


def working_rows(fit: DesignFit, n_working: int) -> np.ndarray:
    """Which rows of ``fit.design`` the rows of ``fit._working()`` are: those with non-zero prior weight.

    A fit may define ``_working_rows()`` (boolean mask over design rows) when its rule differs.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    n_working : int
        The number of rows of ``fit._working()``, checked against the mask.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the design rows.
    """
    d = fit.design
    if hasattr(fit, "_working_rows"):
        rows = np.asarray(fit._working_rows(), dtype=bool)
    elif d.weights is not None:
        rows = np.asarray(d.weights) != 0
    else:
        rows = np.ones(len(d.index), dtype=bool)
    if rows.sum() != n_working:
        raise RuntimeError(  # internal: a result class without _working_rows()
            f"fit._working() has {n_working} rows but the fit uses {rows.sum()} rows with "
                           "non-zero weight; define _working_rows() on the result class")
    return rows


def robust_covariance(fit: DesignFit, type: str, cluster: Any = None) -> tuple[pd.DataFrame, str]:
    """Robust covariance of a fitted lm/glm over its estimable coefficients, as R's sandwich, and its description.

    Uses only ``fit._working()``, ``fit._unscaled()``, ``fit.estimable``, ``fit.nobs`` and
    ``fit.design`` (index, weights, X, data). R conventions kept: rows with zero weight stay in as
    zero scores, so n counts them (HC1's n/(n-k), the HAC autocovariances, vcovCL's n and G), while
    R's bread scales by nobs; the result therefore carries R's factor (nobs/n)^2. Their leverages are 0.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    type : str
        HC0..HC5, HC4m or HAC (vcovHC / NeweyWest); with ``cluster``, HC0 or HC1 (vcovCL).
    cluster : Any
        None, a column name of the fit's data, an array (one value per row of the data, or per row
        used), or a list of two of those for two-way clustering; see ``clustering.cluster_values``.

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The covariance over fit.estimable (rows and columns), and its description for the summary.
    """
    check_type(type, cluster)
    labels = None
    if cluster is not None:
        cluster, labels = cluster_values(fit, cluster)
    Xw, ew = fit._working()
    rows = working_rows(fit, len(ew))
    n, k = len(rows), Xw.shape[1]
    device = getattr(fit, "device", None)
    if n <= k:
        # a saturated fit: no residual degrees of freedom, the residuals are rounding noise (R's
        # sandwich turns that noise into numbers; they mean nothing)
        names = list(fit.estimable)
        return pd.DataFrame(np.nan, index=names, columns=names), describe(type, labels, None)
    C, d = _bread_parts(fit, type, device)
    hat = _pad(forced_leverages(fit, Xw), rows) if type in NEEDS_HAT else None
    pos = torch.as_tensor(np.flatnonzero(rows), device=device)
    df = _residual_df(n, k, None)

    def chunks():
        for s, Sc in score_chunks(Xw, ew, device=device):
            yield pos[s:s + Sc.shape[0]], (Sc if d is None else Sc * d)

    lag = None
    if type == "HAC" and rows.all() and intercept_name(fit) is not None:
        # two passes over the data in time order: the bandwidth, then the autocovariances; memory is
        # one chunk of scores plus the last lag + 1 rows
        bw = _bandwidth_vector(k, hac_bandwidth_weights(fit, None))
        wt = torch.as_tensor(bw, dtype=torch.float64, device=device)
        u = torch.cat([Sc.to(torch.float64) @ wt for _, Sc in chunks()]).cpu().numpy()
        lag = math.floor(_bandwidth_from_u(u))
        M = chunked_hac_meat(chunks, n, k, lag, device=device) * (n / df)
    elif type == "HAC":
        # zero-weight rows keep their places in time, and R finds an intercept without the name by
        # looking at all the scores: the whole n x k matrix
        S = _pad(observation_scores(Xw, ew, device=device), rows)
        lag = newey_west_lag(S, hac_bandwidth_weights(fit, S))
        M = chunked_hac_meat(_matrix_chunks(S), n, k, lag, device=device) * (n / df)
    else:
        # a factor kept as codes: from its group sums; else summed chunk by chunk (memory: one chunk of scores)
        fm = None
        if d is None and isinstance(fit.design, FactorDesign) and isinstance(Xw, WorkingRows):
            f = hc_factor(type, n, hat) if cluster is None else None
            fm = factor_meat(fit, type, f, cluster, ew, rows, df, Xw.sw)
        M = fm if fm is not None else chunked_meat(chunks, n, k, type=type, hat=hat, cluster=cluster, df=df,
                                                   device=device)
    V = (C @ M @ C) * (fit.nobs / n) ** 2
    if d is not None:
        V = V * d[:, None] * d[None, :]  # entries beyond float64's range become 0 or Inf one by one, as R's
    names = list(fit.estimable)
    return pd.DataFrame(((V + V.T) / 2).cpu().numpy(), index=names, columns=names), describe(type, labels, lag)


def _bread_parts(fit: Any, type: str, device: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(X'WX)^{-1} for the sandwich's bread, or for a fit of data near 1e300 the representable C' and d of
    (X'WX)^{-1} = D C' D (the scores then times d), so that only the entries truly out of range are 0 or Inf."""
    if is_scaled(fit) and type != "HAC" and getattr(fit, "information", "expected") == "expected":
        Cp, dp = fit._unscaled_parts()
        return (torch.as_tensor(np.asarray(Cp, dtype=np.float64), device=device),
                torch.as_tensor(np.asarray(dp, dtype=np.float64), device=device))
    return torch.as_tensor(np.asarray(fit._unscaled(), dtype=np.float64), device=device), None


def _pad(t: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    if rows.all():
        return t
    out = torch.zeros((len(rows),) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
    out[torch.as_tensor(rows, device=t.device)] = t
    return out


def hac_bandwidth_weights(fit: DesignFit, S: torch.Tensor | None) -> np.ndarray:
    """bwNeweyWest's coefficient weights: 0 for the intercept, 1 otherwise.

    R's bwNeweyWest finds the intercept by its name "(Intercept)" (here: by the design's terms, under
    either names=); without one, R zeroes the columns whose scores equal the residuals
    rowMeans(estfun / X): columns of ones under another name.

    Parameters
    ----------
    fit : ModelResult
        A fitted lm or glm (LinearModelResult or GeneralizedLinearModelResult).
    S : torch.Tensor or None
        (n, k) scores of all design rows; read only when the fit has no intercept.

    Returns
    -------
    numpy.ndarray
        (k,) weights over ``fit.estimable``.
    """
    names = list(fit.estimable)
    w = np.ones(len(names))
    if (intercept := intercept_name(fit)) is not None:
        w[names.index(intercept)] = 0
        return w
    if S is None:
        raise RuntimeError("hac_bandwidth_weights needs the scores without an intercept name")  # internal
    X = WorkingRows(fit.design, [list(fit.design.names).index(nm) for nm in names], None)
    U = S.cpu().numpy()
    step = chunk_rows(*U.shape)
    sums = sum((ones_column_sums(U[s:s + step], X[s:s + step]) for s in range(0, U.shape[0], step)),
               np.zeros(len(names)))
    return ones_weights(sums)


def describe(type: str, cluster_labels: list[str] | None = None, lag: int | None = None) -> str:
    """How a summary names the covariance: 'HC1 (heteroskedasticity-consistent)', 'clustered by firm (HC1)'.

    Parameters
    ----------
    type : str
        The covariance type.
    cluster_labels : list of str or None
        The cluster variables' names, for a clustered covariance.
    lag : int or None
        HAC's lag, shown when given.

    Returns
    -------
    str
        The description.
    """
    if cluster_labels:
        return f"clustered by {' and '.join(cluster_labels)} ({type})"
    if type == "HAC":
        return f"HAC (Newey-West, Bartlett kernel{'' if lag is None else f', lag {lag}'})"
    return f"{type} (heteroskedasticity-consistent)"
