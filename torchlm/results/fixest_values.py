"""A fixest fit's values per observation: fitted values, residuals, predictions and the fixed effects' values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError
from torchlm.frame.data import as_frame
from torchlm.frame.fixest import FixestDesign, check_columns
from torchlm.frame.newdata import newdata_matrix, newdata_offset
from torchlm.results.base import ModelResult


class FixestValues(ModelResult):
    """The per-observation methods of FixestResult (its fit, design, family and fixed effects are set there)."""

    fit: Any
    fd: FixestDesign
    family: Any
    fixef_names: list[str]

    # --- values per observation ----------------------------------------------------------------
    def fitted(self) -> pd.Series:
        """Fitted values (means for a GLM), the fixed effects included.

        Returns
        -------
        pandas.Series indexed by the rows used.

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.fitted().head(3).round(4)
        Mazda RX4        21.6085
        Mazda RX4 Wag    20.7973
        Datsun 710       26.3150
        Name: fitted, dtype: float64
        """
        return pd.Series(self.fit.fitted, index=self.fd.design.index, name="fitted")

    def residuals(self, type: str = "response") -> pd.Series:
        """Residuals y - fitted ("response"); for a GLM also "pearson" and "deviance".

        Returns
        -------
        pandas.Series indexed by the rows used.

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.residuals().head(3).round(4)
        Mazda RX4       -0.6085
        Mazda RX4 Wag    0.2027
        Datsun 710      -3.5150
        Name: residuals, dtype: float64
        """
        y, mu = self.fit.y, self.fit.fitted
        if type == "response":
            r = y - mu
        elif type in ("pearson", "deviance") and self.family is not None:
            fam = self.family
            w = torch.ones(len(y), dtype=torch.float64) if self.fit.weights is None else torch.as_tensor(
                self.fit.weights)
            yt, mt = torch.as_tensor(y), torch.as_tensor(mu)
            if type == "pearson":
                r = ((yt - mt) * w.sqrt() / fam.variance(mt).sqrt()).numpy()
            else:
                r = (torch.sign(yt - mt) * fam.dev_resids(yt, mt, w).clamp_min(0).sqrt()).numpy()
        else:
            raise OptionError(f"residual type {type!r}: 'response'" + (", 'pearson' or 'deviance'"
                                                                        if self.family is not None else ""))
        return pd.Series(r, index=self.fd.design.index, name="residuals")

    def predict(self, newdata: Any = None, *, type: str = "response", offset: Any = None) -> pd.Series:
        """Predictions: the slopes' part plus each row's fixed effects (fixest's predict).

        Parameters
        ----------
        newdata : new rows with the model's variables and the fixed effects' columns (None: the fitted rows).
            A level not seen in fitting, or a missing value, predicts NaN (fixest's).
        type : "response" (means for a GLM) or "link" (the linear predictor).
        offset : the offset for newdata (default its fitted offset column).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> mt = tl.datasets.load("mtcars")
        >>> tl.feols("mpg ~ wt | cyl", mt).predict(mt.head(2)).round(3)
        Mazda RX4        21.337
        Mazda RX4 Wag    20.519
        Name: fit, dtype: float64
        """
        if type not in ("response", "link"):
            raise OptionError(f"type must be 'response' or 'link', not {type!r}")
        if newdata is None:
            eta = self.fit.eta
            index = self.fd.design.index
        else:
            eta, index = self._new_eta(newdata, offset)
        if type == "response" and self.family is not None:
            eta = self.family.link.linkinv(torch.as_tensor(eta, dtype=torch.float64)).numpy()
        return pd.Series(eta, index=index, name="fit")

    def _new_eta(self, newdata: Any, offset: Any) -> tuple[np.ndarray, pd.Index]:
        frame = as_frame(newdata)
        check_columns(self.fd.fml, frame.columns)
        X = newdata_matrix(self.fd.design, frame)[:, self.fd.columns]
        est = [self.names.index(n) for n in self.estimable]
        eta = X[:, est] @ self.fit.coef[est] if est else np.zeros(len(frame))
        for (t, slope, _), values in zip(self.fd.fml.effects(), self.fixef().values()):
            keys = frame[list(self.fd.fml.fixef[t])].astype(object).astype(str).agg("_".join, axis=1)
            lookup = pd.Series(values.to_numpy(), index=values.index.astype(str))
            part = keys.map(lookup).to_numpy(dtype=float)
            eta = eta + (part if slope is None else part * frame[slope].to_numpy(dtype=float))
        off = newdata_offset(self.fd.design, frame, offset, len(frame))
        return (eta if off is None else eta + off), frame.index

    def fixef(self) -> dict[str, pd.Series]:
        """The fixed effects' coefficients, as fixest's fixef(): the first level of every effect but the first is 0.

        Returns
        -------
        dict
            Fixed-effect name -> pandas.Series indexed by its levels.

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.fixef()["cyl"].round(4)
        4    35.8460
        6    32.4870
        8    32.6601
        Name: cyl, dtype: float64
        """
        ab = self.fit.absorber
        if ab is None:
            return {}
        b = np.nan_to_num(self.fit.coef)
        target = self.fit.eta - (0 if self.fd.design.offset is None else self.fd.design.offset) - self.fit.X @ b
        t = torch.as_tensor(target, dtype=ab.dtype, device=ab.codes[0].device).unsqueeze(1)
        coefs = [c[:, 0].cpu().numpy().copy() for c in ab.coefficients(t)]
        # fixest's normalization: a reference level (the first) at 0 for every constant effect after the first
        plain = [g for g, p in enumerate(self.fd.plain) if p]
        for g in plain[1:]:
            shift = coefs[g][0]
            coefs[g] -= shift
            coefs[plain[0]] += shift
        levels = [self.fd.levels[t] for t, _, _ in self.fd.fml.effects()]
        return {nm: pd.Series(c, index=lv, name=nm) for nm, c, lv in zip(self.fixef_names, coefs, levels)}
