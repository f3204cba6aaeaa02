"""The lm of a very many-level factor (frame/large_factor.py): R's output without any L x L or n x L array.

An lm whose factor has, say, 1e5 levels has 1e5 coefficients; R reports each with its standard error,
and so does this result, from solvers/factor_within.py's pieces and inference/factor_blocks.py's
block covariances. Its vcov() is a BlockVcov: the diagonal, and any block by name (``vcov(parm=)``)
as a DataFrame; a model with at most FULL_COEFFICIENTS coefficients also gives the whole matrix.
What would need the n x L dummy block (dfbeta, the Hessian, HAC, HC4/HC5, robust predictions) says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import ModelInputError, OptionError
from torchlm.frame import newdata_matrix, newdata_offset
from torchlm.frame.data import as_frame
from torchlm.frame.large_factor import LargeFactorDesign
from torchlm.inference.clustering import cluster_codes, cluster_values
from torchlm.inference.factor_blocks import BlockCovariance, Meat, classical_meat, cluster_meat, diagonal_meat
from torchlm.inference.leverages import factor_leverages
from torchlm.inference.sandwich import check_type, describe, hc_factor
from torchlm.results.linear import LinearModelResult
from torchlm.solvers.factor_within import WithinFit

# the whole covariance is formed up to this many coefficients (200 MB); beyond, by blocks
FULL_COEFFICIENTS = 5000
BLOCK_TYPES = ("HC0", "HC1", "HC2", "HC3")


class BlockVcov:
    """A covariance matrix too large to form, given by its diagonal and its blocks.

    Parameters
    ----------
    blocks : the BlockCovariance; description : what it is (None: the classical one).
    """

    def __init__(self, blocks: BlockCovariance, description: str | None = None):
        self._blocks = blocks
        self.description = description

    @property
    def index(self) -> pd.Index:
        """The coefficient names (rows and columns)."""
        return pd.Index(self._blocks.names)

    columns = index

    @property
    def shape(self) -> tuple[int, int]:
        """(p, p)."""
        return self._blocks.shape

    def variances(self) -> np.ndarray:
        """The diagonal, in the names' order.

        Returns
        -------
        numpy.ndarray (p,)

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> fit.vcov_blocks().variances()[:2].round(4)
        array([4.409 , 0.4984])
        """
        return self._blocks.diagonal()

    def block(self, parm: Any) -> pd.DataFrame:
        """The covariance between the coefficients ``parm`` (names, or positions).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> fit.vcov_blocks().block(["wt"]).round(4)
                wt
        wt  0.4984
        """
        names = self._blocks.names
        items = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
        rows = []
        for it in items:
            if isinstance(it, (int, np.integer)) and not isinstance(it, bool):
                rows.append(int(it))
            elif it in names:
                rows.append(names.index(it))
            else:
                raise OptionError(f"no coefficient {it!r} in the model")
        labels = [names[j] for j in rows]
        return pd.DataFrame(self._blocks.block(rows), index=labels, columns=labels)

    def to_numpy(self) -> np.ndarray:
        """Refused: the matrix is p x p.

        Raises
        ------
        ModelInputError

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> try:
        ...     fit.vcov_blocks().to_numpy()
        ... except tl.TorchlmError as e:
        ...     print(str(e)[:50])
        the covariance of 7 coefficients is a 7 x 7 matrix
        """
        p = self.shape[0]
        raise ModelInputError(f"the covariance of {p} coefficients is a {p} x {p} matrix ({8 * p * p / 1e9:.1f} GB): "
                              "use its diagonal (std_errors()) or a block (vcov(parm=...))")

    def __repr__(self) -> str:
        return f"<BlockVcov of {self.shape[0]} coefficients ({self.description or 'classical'})>"


class LargeFactorResult(LinearModelResult):
    """tl.lm's result for a factor with more levels than R's dense factor allows (see the module)."""

    design: LargeFactorDesign

    def __init__(self, design: Any, qr: Any, within: WithinFit, **kw: Any):
        self._within = within
        super().__init__(design, qr, **kw)

    # --- covariances by blocks -------------------------------------------------------------------
    def _blocks(self, type: str, cluster: Any) -> tuple[list[tuple[float, Meat]], str | None]:
        wf = self._within
        if type == "const":
            return [(1.0, classical_meat(wf, self.scale))], None
        check_type(type, cluster)
        if type not in BLOCK_TYPES:
            raise OptionError(f"type {type!r} is not available for a factor of {wf.levels} levels kept as codes; "
                              f"choose one of {', '.join(BLOCK_TYPES)} (or clusters)")
        n, k = len(self.design.y), self.rank
        e = torch.as_tensor(self._resid, dtype=wf.w.dtype, device=wf.w.device)
        scale = (self.nobs / n) ** 2
        if cluster is None:
            hat = torch.as_tensor(self._hat(), dtype=e.dtype) if type in ("HC2", "HC3") else None
            f = hc_factor(type, n, hat)
            u = e * e if f is None else e * e * f.to(e)
            adj = n / (n - k) if type == "HC1" else 1.0
            return [(scale * adj, diagonal_meat(wf, u))], describe(type)
        labels, names = cluster_values(self, cluster)
        terms = []
        for codes, G, sign in cluster_codes(labels):
            adj = (G / (G - 1)) * ((n - 1) / (n - k) if type == "HC1" else 1.0)
            terms.append((sign * scale * adj, cluster_meat(wf, e, codes, G)))
        return terms, describe(type, names)

    def _hat(self) -> np.ndarray:
        h = factor_leverages(self.design)
        assert h is not None  # every level has weight (solvers/factor_within checks it)
        return h

    def _covariance(self, vcov: Any = None, cluster: Any = None, **options: Any) -> tuple[Any, str | None]:
        """The covariance for a ``vcov=`` choice: a DataFrame up to FULL_COEFFICIENTS coefficients, else a BlockVcov."""
        choice = self._choice(vcov, cluster)
        if choice.type == "matrix":
            return self._user_matrix(choice.matrix), "user-supplied covariance matrix"
        V = self.vcov_blocks(choice.type, cluster=choice.cluster)
        if len(self.names) <= FULL_COEFFICIENTS:
            return V.block(self.names), V.description
        return V, V.description

    def vcov_blocks(self, type: Any = None, *, cluster: Any = None) -> BlockVcov:
        """The covariance as a BlockVcov (its diagonal and blocks by name) whatever the number of coefficients.

        Parameters
        ----------
        type, cluster : as vcov()'s: None or "const", HC0-HC3, clusters (one- or two-way).

        Returns
        -------
        BlockVcov

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> fit.vcov_blocks()
        <BlockVcov of 7 coefficients (classical)>
        """
        choice = self._choice(type, cluster)
        if choice.type == "matrix":
            raise OptionError("vcov_blocks() computes a covariance type; a given matrix is its own covariance")
        terms, description = self._blocks(choice.type, choice.cluster)
        return BlockVcov(BlockCovariance(self._within, terms, self.names), description)

    def _unscaled(self, **options: Any) -> np.ndarray:
        V = self._covariance()[0]
        return V.to_numpy() / self.scale

    def vcov(self, type: Any = None, *, cluster: Any = None, parm: Any = None) -> Any:
        """Covariance of the coefficients: a DataFrame, or beyond FULL_COEFFICIENTS coefficients a BlockVcov.

        Parameters
        ----------
        type, cluster : as LinearModelResult.vcov's (const, HC0-HC3, clusters).
        parm : coefficient names: the block between them, as a DataFrame.

        Returns
        -------
        pandas.DataFrame or BlockVcov

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> fit.vcov("HC1", parm=["wt"]).round(4)
                wt
        wt  0.5061
        """
        V = self._covariance(type, cluster)[0]
        if parm is None:
            return V
        if isinstance(V, BlockVcov):
            return V.block(parm)
        labels = [parm] if isinstance(parm, str) else list(parm)
        return V.loc[labels, labels]

    def _wald(self, V: Any, parm: Any = None) -> Any:
        if isinstance(V, BlockVcov):
            raise ModelInputError(f"a Wald test of {len(self.names)} coefficients with a robust covariance needs "
                                  "the whole matrix: use coef_table(vcov=...) for the coefficients' tests")
        return super()._wald(V, parm)

    # --- predictions ---------------------------------------------------------------------------------
    def _predict_response(self, newdata: Any, se_fit: bool, interval: str | None, level: float, offset: Any,
                          vcov: Any, pred_var: Any) -> pd.Series | pd.DataFrame:
        d, wf = self.design, self._within
        if vcov is not None and (se_fit or interval):
            raise OptionError("predictions of a fit with a factor of this many levels use the classical covariance "
                              "only (vcov=None)")
        slopes = [j for j, a in enumerate(d.rest_assign) if a != "1"]
        if newdata is None:
            fit, index = self._fitted.copy(), d.index
            codes = d.block.codes
            Xn = np.column_stack([d.columns[j] for j in slopes]) if slopes else np.zeros((len(codes), 0))
        else:
            frame = as_frame(newdata)
            if d.block.variable not in frame.columns:
                raise ModelInputError(f"newdata has no column {d.block.variable!r} needed by the model")
            codes = d.block.new_codes(frame[d.block.variable])
            rest = newdata_matrix(d.rest_design(), frame)
            Xn = rest[:, slopes]
            index = frame.index
            a = wf.a.cpu().double().numpy()
            fit = np.where(codes >= 0, a[np.maximum(codes, 0)], np.nan) + Xn @ wf.b.cpu().double().numpy()
            off = newdata_offset(d, newdata, offset, len(frame))
            if off is not None:
                fit = fit + off
        if not se_fit and interval is None:
            return pd.Series(fit, index=index, name="fit")
        ip = self._level_row_variances(codes, Xn)
        return self._prediction_frame(fit, index, ip, se_fit, interval, level, pred_var)

    def _level_row_variances(self, codes: np.ndarray, Xn: np.ndarray) -> np.ndarray:
        """Var(a_g + x'b) = s^2 (1/n_g + ||Rw^-T (x - xbar_g)||^2) of rows (level g, slopes' columns x)."""
        wf = self._within
        g = np.maximum(codes, 0)
        xt = torch.as_tensor(Xn, dtype=torch.float64) - wf.xbar.cpu().double()[torch.as_tensor(g)]
        Rw = wf.Rw.cpu().double()
        q = (torch.linalg.solve_triangular(Rw.T, xt.T, upper=False).square().sum(dim=0).numpy()
             if Rw.shape[0] else np.zeros(len(g)))
        ip = self.sigma**2 * (1 / wf.counts.cpu().double().numpy()[g] + q)
        return np.where(codes >= 0, ip, np.nan)

    def predict(self, newdata: Any = None, **kw: Any) -> Any:
        """Predictions (R's predict.lm) as LinearModelResult.predict's, without type="terms".

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> d = tl.datasets.load("mtcars")
        >>> with tl.options(factor_levels=2, large_factor_levels=2):
        ...     fit = tl.lm("mpg ~ wt + C(carb)", d)
        >>> fit.predict(d.head(2), se_fit=True).round(3)
                          fit  se_fit
        Mazda RX4      21.685   1.318
        Mazda RX4 Wag  20.508   1.202
        """
        if kw.get("type", "response") == "terms":
            raise OptionError('predict(type="terms") is not available for a factor of this many levels')
        return super().predict(newdata, **kw)
