"""sandwich's meats of a least-squares fit whose factor terms are kept as codes, without their dummies.

The HC meat is Z' diag(u) Z with u_i = omega_i w_i^2 e_i^2 (omega the HC type's leverage factor):
FactorTerms.gram gives it from group sums. A cluster's score sum has each coded term's part
sum_{i in g} w_i e_i v_i C[code_i] (v the slope variable, or 1): the (cluster x level) sums times C.
Both are O(n k^2 + L m^2) where the row blocks cost O(n p^2) with p = k + m.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchlm.frame.factor_block import FactorDesign
from torchlm.inference.clustering import cluster_codes
from torchlm.solvers.factor_passes import FactorTerms

# the (clusters x levels) sums are formed densely up to this many cells; beyond, the row blocks are read
DENSE_PAIRS = 20_000_000


def factor_meat(fit: Any, type: str, factor: torch.Tensor | None, cluster: Any, ew: np.ndarray,
                rows: np.ndarray, df: int, sw: np.ndarray | None) -> torch.Tensor | None:
    """The sandwich meat over the fit's estimable columns, or None where the structure does not apply.

    Parameters
    ----------
    fit : an lm or glm fit of a FactorDesign, unscaled.
    type : HC0..HC5, HC4m (or HC0/HC1 with ``cluster``); factor : the HC type's per-row factor over all n
        rows (None for HC0/HC1).
    cluster : the cluster labels over all n rows, or None.
    ew : sqrt(w) e at the working rows; rows : (n,) bool, the working rows; df : HC1's residual df.
    sw : sqrt(w) over all n rows (the prior or working weights; None: 1): the scores are sw_i ew_i z_i.

    Returns
    -------
    torch.Tensor (k, k) or None
    """
    design = fit.design
    if not isinstance(design, FactorDesign):
        return None
    device = getattr(fit, "device", None)
    terms = FactorTerms.of(design, device, torch.float64)
    n = len(rows)
    we = np.zeros(n)
    we[rows] = np.asarray(ew, dtype=float) * (1.0 if sw is None else np.asarray(sw, dtype=float)[rows])
    we_t = torch.as_tensor(we, device=device)
    est = torch.as_tensor([fit.names.index(nm) for nm in fit.estimable], dtype=torch.int64, device=device)
    if cluster is None:
        u = we_t * we_t if factor is None else we_t * we_t * factor.to(we_t)
        M = terms.gram(u).index_select(0, est).index_select(1, est)
        return M * (n / df) if type == "HC1" else M
    parts = cluster_codes(cluster)
    if any(G * b.levels > DENSE_PAIRS for _, G, _ in parts for b in terms.blocks):
        return None
    M = torch.zeros(len(est), len(est), dtype=torch.float64, device=device)
    for codes, G, sign in parts:
        c = codes.to(device)
        S = we_t.new_zeros((G, terms.p))
        S[:, terms.x_at] = we_t.new_zeros((G, terms.X.shape[1])).index_add_(0, c, terms.X * we_t.unsqueeze(1))
        for b, at in zip(terms.blocks, terms.f_at):
            u = we_t if b.values is None else we_t * b.values
            pairs = we_t.new_zeros(G * b.levels).index_add_(0, c * b.levels + b.codes, u).reshape(G, b.levels)
            S[:, at] = pairs @ b.contrasts
        Se = S.index_select(1, est)
        M += sign * (G / (G - 1)) * (Se.T @ Se)
    return M * ((n - 1) / df) if type == "HC1" else M
