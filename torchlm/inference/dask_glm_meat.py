"""A GLM's sandwich meats over a Dask DataFrame's partitions: score outer products, leverages, cluster sums.

Each partition's scores W x (y - mu) / mu'(eta) at R's working weights of the fit's last iteration
(:func:`torchlm.sources.dask_irls.working_at`), reduced in its worker: HC0's meat, the leverages' sum and
maximum (HC2-HC5's first pass) and the HC factors' meat (the second), per-cluster score sums, or the scores
themselves for HAC (:func:`glm_scores`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm import threads
from torchlm.errors import DataError
from torchlm.frame.dask_frame import DaskPlan, PartitionRows
from torchlm.inference.dask_sandwich import MeatSpec, _hc_factor
from torchlm.models.families import Family
from torchlm.sources.dask_irls import FinalSpec, GLMRows, rows_of, working_at


def glm_meat_reduction(part: pd.DataFrame, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec],
                       spec: MeatSpec) -> Any:
    """One partition's share of a GLM's sandwich meat: scores W x (y - mu) / mu'(eta) at the working weights.

    With ``spec.Rinv`` and no type other than HC0/HC1, only the leverages' sum, maximum and rows close to 1
    (the first of the two passes of HC2-HC5); with clusters, the score sums per cluster.

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec)
    spec : MeatSpec

    Returns
    -------
    numpy.ndarray (k, k), per clustering term a pandas.DataFrame of score sums, or (sum, max, close rows)
    """
    family, final = est
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        W, wres, _ = working_at(g, final, family)
        S = _score_rows(g, W, wres, sorted(spec.pivot)).numpy()
        if spec.clusters:  # the cluster columns are the partition's (never passed persisted rows)
            return _cluster_sums(part, number, g.rows, S, spec)
        h = None
        if spec.Rinv is not None:
            Xw = g.X[:, list(spec.pivot)] * torch.sqrt(W)[:, None]
            h = (Xw @ torch.from_numpy(spec.Rinv)).square().sum(dim=1).numpy()
            h = np.where(h > 1 - 10 * np.finfo(float).eps, 1.0, h)
            if spec.type == "leverages":
                close = g.rows.index[h > 1 - math.sqrt(np.finfo(float).eps)].tolist()
                return float(h.sum()), float(h.max()) if len(h) else 0.0, close
        f = np.ones(len(S)) if h is None else _hc_factor(spec, h)
        St = torch.from_numpy(S)
        return (St.T @ (St * torch.from_numpy(f)[:, None])).numpy()


def _score_rows(g: GLMRows, W: torch.Tensor, wres: torch.Tensor, cols: list[int]) -> torch.Tensor:
    # rows off R's good set have W = 0 and a working residual that may be infinite: their scores are 0
    return g.X[:, cols] * torch.where(W > 0, W * wres, torch.zeros_like(W))[:, None]


def glm_scores(part: Any, number: int, plan: DaskPlan, est: tuple[Family, FinalSpec, list[int]],
               design: bool = False) -> Any:
    """One partition's scores W x (y - mu) / mu'(eta) over the estimable columns ``est[2]``: HAC's rows.

    Parameters
    ----------
    part : pandas.DataFrame or GLMRows
    number : int
    plan : DaskPlan
    est : (Family, FinalSpec, columns)
    design : bool
        Also return the rows' design over the same columns.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        (rows used, k), and the design rows (rows used, k) with ``design``.
    """
    family, final, cols = est
    with threads.limit(1):
        g = rows_of(part, number, plan, family)
        W, wres, _ = working_at(g, final, family)
        S = _score_rows(g, W, wres, cols).numpy()
    return (S, g.rows.X[:, cols]) if design else S


def _cluster_sums(part: pd.DataFrame, number: int, rows: PartitionRows, S: np.ndarray, spec: MeatSpec) -> list:
    keys = []
    for c in spec.clusters:
        values = pd.Series(np.asarray(part[c])[rows.positions])
        if values.isna().any():
            raise DataError(f"partition {number} of the Dask DataFrame: cluster {c!r} has missing values at rows "
                            "the fit uses")
        keys.append(values)
    terms = [[k] for k in keys] + ([keys] if len(keys) == 2 else [])
    return [pd.DataFrame(S).groupby(t, sort=False).sum() for t in terms]


def leverage_spec_of(spec: MeatSpec) -> MeatSpec:
    """The spec of the leverage pass (sum, maximum, rows close to 1) from one with the fit's R^-1.

    Parameters
    ----------
    spec : MeatSpec

    Returns
    -------
    MeatSpec
    """
    return replace(spec, type="leverages")
