"""fixest's covariances: iid, heteroskedasticity-robust and clustered (one- and two-way), with fixest's ssc().

fixest multiplies each covariance by a small-sample factor (its ``ssc()``, fixest 0.12's defaults):
``adj``: (n - 1) / (n - K) (n / (n - K) for "hetero"), K the slopes plus the fixed effects'
coefficients (one level of each effect but the first is redundant); ``fixef.K = "nested"`` leaves out
of K the coefficients of an effect nested in the cluster variable (each of its levels within one
cluster), adding one back for it; ``cluster.adj``: G / (G - 1); ``cluster.df = "min"``: with two-way
clustering every term uses the smaller G. The t tests then use n - K degrees of freedom, or
min(G) - 1 for clustered ones (``t.df = "min"``). Two-way clustering is V1 + V2 - V12 (Cameron,
Gelbach and Miller), V12 on the intersection of the two clusterings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from torchlm.errors import OptionError

FIXEF_K = ("nested", "full", "none")


@dataclass(frozen=True)
class SmallSample:
    """fixest's ssc(): the small-sample corrections of the covariance.

    Parameters
    ----------
    adj : apply (n - 1) / (n - K).
    fixef_K : "nested" (fixest's default), "full" (every fixed-effect coefficient in K, as R's lm with the
        dummies counts them) or "none" (the slopes only).
    cluster_adj : apply G / (G - 1) to clustered covariances.
    cluster_df : "min" (every term of a multiway covariance uses the smallest G) or "conventional" (each its own).
    """

    adj: bool = True
    fixef_K: str = "nested"
    cluster_adj: bool = True
    cluster_df: str = "min"

    @classmethod
    def make(cls, ssc: Any) -> SmallSample:
        """A SmallSample from None (fixest's defaults), a SmallSample or a dict of its fields (fixest's names too).

        Returns
        -------
        SmallSample
        """
        if ssc is None:
            return cls()
        if isinstance(ssc, SmallSample):
            return ssc
        if not isinstance(ssc, dict):
            raise OptionError(f"ssc= is a dict such as {{'adj': True, 'fixef_K': 'nested'}}, not {ssc!r}")
        alias = {"fixef.K": "fixef_K", "cluster.adj": "cluster_adj", "cluster.df": "cluster_df"}
        given: dict[str, Any] = {alias.get(str(k), str(k)): v for k, v in ssc.items()}
        if bad := sorted(set(given) - {"adj", "fixef_K", "cluster_adj", "cluster_df"}):
            raise OptionError(f"unknown ssc= option(s) {bad}; fixest's are adj, fixef_K, cluster_adj, cluster_df")
        out = cls(**given)
        if not isinstance(out.adj, bool) or not isinstance(out.cluster_adj, bool):
            raise OptionError("ssc= adj and cluster_adj are True or False")
        if out.fixef_K not in FIXEF_K:
            raise OptionError(f"ssc= fixef_K must be one of {FIXEF_K}, not {out.fixef_K!r}")
        if out.cluster_df not in ("min", "conventional"):
            raise OptionError(f"ssc= cluster_df must be 'min' or 'conventional', not {out.cluster_df!r}")
        return out


@dataclass(frozen=True)
class Clustering:
    """Cluster codes (0 .. G-1 per row) with their label (a fixed effect's or a column's name)."""

    codes: np.ndarray
    label: str

    @property
    def G(self) -> int:
        """The number of clusters."""
        return int(self.codes.max()) + 1 if len(self.codes) else 0


def nested(fe_codes: np.ndarray, cluster: np.ndarray) -> bool:
    """Whether every level of a fixed effect lies within one cluster.

    Returns
    -------
    bool
    """
    G = int(cluster.max()) + 1
    pairs = np.unique(fe_codes.astype(np.int64) * G + cluster)
    return len(pairs) == int(fe_codes.max()) + 1


def df_K(k: int, kfe: int, plain: list[tuple[np.ndarray, int]], clusters: list[Clustering],
         ssc: SmallSample) -> int:
    """fixest's K: slopes plus fixed-effect coefficients, as ssc's fixef_K counts them for these clusters.

    Parameters
    ----------
    k : estimable slopes; kfe : the absorbed coefficients (FixestDesign.fixef_dof: the levels, less one per
        constant effect after the first).
    plain : (codes, levels) of each constant effect (the ones fixef_K = "nested" may leave out).
    clusters, ssc : the clusterings and the corrections.

    Returns
    -------
    int
    """
    if not kfe or ssc.fixef_K == "none":
        return k
    K = k + kfe
    if ssc.fixef_K == "nested" and clusters:
        inside = [L for c, L in plain if any(nested(c, cl.codes) for cl in clusters)]
        # an effect nested in the clusters adds nothing to K, but one coefficient of it is counted back
        K += -sum(inside) + len(inside)
    return K


def cluster_meat(scores: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """Sum over clusters of (sum of the cluster's scores)(...)'.

    Returns
    -------
    torch.Tensor (k, k)
    """
    idx = torch.as_tensor(codes, device=scores.device)
    S = scores.new_zeros((int(codes.max()) + 1, scores.shape[1])).index_add_(0, idx, scores)
    return S.T @ S


def intersection(a: Clustering, b: Clustering) -> Clustering:
    """The clustering by both (a cluster per observed pair).

    Returns
    -------
    Clustering
    """
    _, codes = np.unique(a.codes.astype(np.int64) * b.G + b.codes, return_inverse=True)
    return Clustering(codes, f"{a.label}^{b.label}")


def fixest_vcov(kind: str, bread: torch.Tensor, scores: torch.Tensor, *, sigma2_rss: float, n: int, k: int,
                kfe: int, plain: list[tuple[np.ndarray, int]], clusters: list[Clustering],
                ssc: SmallSample) -> tuple[torch.Tensor, float]:
    """A fixest covariance of the slopes and the degrees of freedom of its t tests.

    Parameters
    ----------
    kind : "iid", "hetero" or "cluster".
    bread : (k, k) inverse of X~'WX~ (the within design), the estimable slopes.
    scores : (n, k) per-observation scores (w x~ e).
    sigma2_rss : the weighted residual sum of squares (iid: sigma^2 = rss / (n - K)); for models with a
        fixed dispersion, n - K (so that the factor is 1 before ssc's adj).
    n, k : observations and estimable slopes.
    kfe, plain : the absorbed coefficients' count and the constant effects' (codes, levels), as df_K takes them.
    clusters : one or two Clusterings (kind "cluster").
    ssc : the small-sample corrections.

    Returns
    -------
    (torch.Tensor (k, k), float)
    """
    K = df_K(k, kfe, plain, clusters if kind == "cluster" else [], ssc)
    if n - K <= 0:
        return torch.full_like(bread, float("nan")), float("nan")
    if kind == "iid":
        # fixest: sigma^2 = rss / (n - 1), times adj = (n - 1) / (n - K)
        factor = (sigma2_rss / (n - 1)) * ((n - 1) / (n - K) if ssc.adj else 1.0)
        return bread * factor, float(n - K)
    if kind == "hetero":
        factor = n / (n - K) if ssc.adj else 1.0
        return factor * (bread @ (scores.T @ scores) @ bread), float(n - K)
    if kind != "cluster" or not 1 <= len(clusters) <= 2:
        raise OptionError(f"unknown fixest covariance {kind!r}")
    terms = [(clusters[0], 1.0)] if len(clusters) == 1 else [
        (clusters[0], 1.0), (clusters[1], 1.0), (intersection(*clusters), -1.0)]
    Gmin = min(c.G for c, _ in terms)
    adj = (n - 1) / (n - K) if ssc.adj else 1.0
    V = torch.zeros_like(bread)
    for cl, sign in terms:
        G = Gmin if ssc.cluster_df == "min" else cl.G
        gadj = G / (G - 1) if ssc.cluster_adj and G > 1 else 1.0
        V = V + sign * adj * gadj * (bread @ cluster_meat(scores, cl.codes) @ bread)
    return V, float(min(c.G for c in clusters) - 1)
