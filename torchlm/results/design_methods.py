"""Methods every fit on a design shares (lm, glm): R's na.exclude padding, alias() and dummy_coef().

With ``na.action = na.exclude``, R's naresid / napredict give fitted(), residuals(), predict() without newdata and the
influence measures one entry per row of the (subset of the) data, NA where a row was dropped for a missing
value; everything else (coefficients, nobs, degrees of freedom, summary) is na.omit's. The influence
measures are padded as R's lm.influence pads them: leverage 0 and coefficient change 0 at a dropped row, the
fit's sigma as its leave-one-out sigma, NA for the residual-based measures.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from torchlm.errors import ModelInputError
from torchlm.inference.alias import Alias, alias
from torchlm.inference.influence import Influence, InfluenceMeasures, InfluenceMethods
from torchlm.inference.terms import DummyCoef, TermsPrediction, dummy_coef

if TYPE_CHECKING:
    from torchlm.frame import Design
    from torchlm.results.protocols import DiagnosticFit

#: R's na.action spellings and torchlm's, to the action they name
NA_SPELLINGS = {"omit": "omit", "na.omit": "omit", "exclude": "exclude", "na.exclude": "exclude",
                "fail": "fail", "na.fail": "fail"}


def na_mode(na_action: Any) -> tuple[str, bool]:
    """The model frame's na_action for an na_action argument, and whether the fit pads its results (na.exclude).

    Parameters
    ----------
    na_action : str
        "omit", "exclude" or "fail", or R's spellings "na.omit", "na.exclude", "na.fail".

    Returns
    -------
    (str, bool)
        "omit" or "fail" (na.exclude drops rows as na.omit does), and True for na.exclude.
    """
    mode = NA_SPELLINGS.get(na_action) if isinstance(na_action, str) else None
    if mode is None:
        raise ModelInputError(f"na_action must be 'omit', 'exclude' or 'fail' (R's 'na.omit', 'na.exclude', "
                              f"'na.fail'), not {na_action!r}")
    return ("omit" if mode == "exclude" else mode), mode == "exclude"


def padded_rows(design: Design) -> tuple[np.ndarray, pd.Index]:
    """Where the rows used sit among the rows na.exclude pads to (the data's rows in the subset), and their labels.

    Parameters
    ----------
    design : Design
        The fit's design (it keeps the user's data and the positions of the rows used).

    Returns
    -------
    (numpy.ndarray, pandas.Index)
        The positions (n,) of the rows used, and the index (N,) of the padded result.
    """
    frame, data, rows = design.frame, design.data, design.rows
    if frame is None or data is None or rows is None:
        return np.arange(len(design.index)), design.index
    full = np.arange(len(data)) if frame.subset is None else np.flatnonzero(frame.subset)
    return np.searchsorted(full, rows), data.index[full]


class DesignMethods(InfluenceMethods):
    """What an lm or glm shares: alias(), dummy_coef(), and under na.exclude the padding of the per-row results
    (the influence measures padded as R pads them).

    The per-row computations run on :meth:`_omitted` (the same fit with na.omit's results), so every
    measure is computed on the rows used and padded once, at the end.
    """

    na_exclude: bool = False
    design: Design
    deviance: float
    df_residual: int

    def _omitted(self) -> Any:
        """This fit with na.omit's per-row results (the fit itself unless na.exclude)."""
        if not self.na_exclude:
            return self
        view = self.__dict__.get("_omit_view")
        if view is None:
            # a shallow copy: the fit's arrays are shared (and never changed), its padding switched off
            view = copy.copy(self)
            view.na_exclude = False
            self.__dict__["_omit_view"] = view
        return view

    def _diagnostic_fit(self) -> DiagnosticFit:
        return cast("DiagnosticFit", self._omitted())

    def _pad(self, obj: Any, fill: float = math.nan) -> Any:
        """A Series or DataFrame over the rows used (or those with non-zero weight) padded with ``fill`` (na.exclude).

        Returns
        -------
        The object itself when the fit does not pad; else a new one indexed by the padded rows.
        """
        if not self.na_exclude:
            return obj
        pos, index = padded_rows(self.design)
        w = self.design.weights
        if len(obj) != len(pos) and w is not None:
            pos = pos[np.asarray(w) != 0]  # the influence measures leave out rows of zero weight, as R's
        values = obj.to_numpy(dtype=float)
        out = np.full((len(index),) + values.shape[1:], fill, dtype=float)
        out[pos] = values
        if isinstance(obj, pd.DataFrame):
            frame = pd.DataFrame(out, index=index, columns=obj.columns)
            frame.attrs.update(obj.attrs)
            return frame
        return pd.Series(out, index=index, name=obj.name)

    def _pad_terms(self, out: Any) -> Any:
        """predict(type="terms") without newdata, padded as R's napredict pads it."""
        if isinstance(out, TermsPrediction):
            out.fit, out.se_fit = self._pad(out.fit), self._pad(out.se_fit)
            out.lwr = None if out.lwr is None else self._pad(out.lwr)
            out.upr = None if out.upr is None else self._pad(out.upr)
            return out
        return self._pad(out)

    def alias(self, partial: bool = False) -> Alias:
        """R's alias(fit): the aliased coefficients as combinations of the estimable ones.

        Parameters
        ----------
        partial : bool
            Also the partial aliasing (R's partial = TRUE).

        Returns
        -------
        Alias
            As ``tl.alias(fit, partial)``.

        Examples
        --------
        >>> d = pd.DataFrame({"y": [1.0, 3, 2, 5], "a": [1.0, 2, 3, 4]}).assign(b=lambda d: 2 * d.a)
        >>> tl.lm("y ~ a + b", d).alias().complete
           Intercept    a
        b        0.0  2.0
        """
        return alias(cast("DiagnosticFit", self), partial=partial)

    def dummy_coef(self, use_na: bool = False) -> DummyCoef:
        """R's dummy.coef(fit): each term's coefficients at every level of its factors.

        Parameters
        ----------
        use_na : bool
            R's use.na: NaN (not 0) wherever a non-estimable coefficient enters.

        Returns
        -------
        DummyCoef
            As ``tl.dummy_coef(fit, use_na)``.

        Examples
        --------
        >>> print(tl.lm("mpg ~ C(cyl) + wt", tl.datasets.load("mtcars")).dummy_coef())
        Full coefficients are
        <BLANKLINE>
        (Intercept):     33.99079
        C(cyl):                 4         6         8
                         0.000000 -4.255582 -6.070860
        wt:             -3.205613
        """
        return dummy_coef(cast("DiagnosticFit", self), use_na=use_na)

    # --- the influence measures, padded as R's lm.influence / influence.measures pad them -------------
    def influence(self) -> Influence:
        """R's influence(fit): leverages, leave-one-out sigma and residuals (padded as R pads them under na.exclude).

        Returns
        -------
        Influence
            Under na.exclude, a dropped row has leverage 0, the fit's sigma and NaN residuals.

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.influence().sigma.head(3).round(4)
        Mazda RX4        3.0675
        Mazda RX4 Wag    3.0931
        Datsun 710       3.0721
        Name: sigma, dtype: float64
        """
        infl = super().influence()
        if not self.na_exclude:
            return infl
        sigma = math.sqrt(self.deviance / self.df_residual) if self.df_residual > 0 else math.nan
        return Influence(hat=self._pad(infl.hat, 0.0), sigma=self._pad(infl.sigma, sigma),
                         wt_res=self._pad(infl.wt_res),
                         pear_res=None if infl.pear_res is None else self._pad(infl.pear_res))

    def hatvalues(self) -> pd.Series:
        """Leverages, as R's hatvalues() (0 at rows dropped under na.exclude).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.hatvalues().head(3).round(4)
        Mazda RX4        0.0433
        Mazda RX4 Wag    0.0352
        Datsun 710       0.0584
        Name: hat, dtype: float64
        """
        return self._pad(super().hatvalues(), 0.0)

    def rstandard(self, type: str | None = None) -> pd.Series:
        """Standardized residuals, as R's rstandard() (NaN at rows dropped under na.exclude).

        Parameters
        ----------
        type : str or None
            As for ``torchlm.inference.influence.rstandard``.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.rstandard().head(3).round(4)
        Mazda RX4       -0.7662
        Mazda RX4 Wag   -0.3074
        Datsun 710      -0.7058
        Name: rstandard, dtype: float64
        """
        return self._pad(super().rstandard(type))

    def rstudent(self) -> pd.Series:
        """Externally studentized residuals, as R's rstudent() (NaN at rows dropped under na.exclude).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.rstudent().head(3).round(4)
        Mazda RX4       -0.7608
        Mazda RX4 Wag   -0.3027
        Datsun 710      -0.6997
        Name: rstudent, dtype: float64
        """
        return self._pad(super().rstudent())

    def cooks_distance(self) -> pd.Series:
        """Cook's distances, as R's cooks.distance() (NaN at rows dropped under na.exclude).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.cooks_distance().nlargest(3).round(4)
        Chrysler Imperial    0.5319
        Toyota Corolla       0.2599
        Fiat 128             0.1930
        Name: cooks_distance, dtype: float64
        """
        return self._pad(super().cooks_distance())

    def dfbeta(self) -> pd.DataFrame:
        """Coefficient changes with each case left out, as R's dfbeta() (0 at rows dropped under na.exclude).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.dfbeta().head(3).round(4)
                       Intercept     wt
        Mazda RX4        -0.2290  0.048
        Mazda RX4 Wag    -0.0652  0.011
        Datsun 710       -0.2847  0.067
        """
        return self._pad(super().dfbeta(), 0.0)

    def dfbetas(self) -> pd.DataFrame:
        """Scaled coefficient changes, as R's dfbetas() (0 at rows dropped under na.exclude).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.dfbetas().head(3).round(4)
                       Intercept      wt
        Mazda RX4        -0.1211  0.0853
        Mazda RX4 Wag    -0.0342  0.0194
        Datsun 710       -0.1503  0.1188
        """
        return self._pad(super().dfbetas(), 0.0)

    def dffits(self) -> pd.Series:
        """R's dffits() (NaN at rows dropped under na.exclude).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.dffits().head(3).round(4)
        Mazda RX4       -0.1618
        Mazda RX4 Wag   -0.0578
        Datsun 710      -0.1742
        Name: dffits, dtype: float64
        """
        return self._pad(super().dffits())

    def covratio(self) -> pd.Series:
        """R's covratio() (NaN at rows dropped under na.exclude).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.covratio().head(3).round(4)
        Mazda RX4        1.0752
        Mazda RX4 Wag    1.1022
        Datsun 710       1.0991
        Name: covratio, dtype: float64
        """
        return self._pad(super().covratio())

    def influence_measures(self) -> InfluenceMeasures:
        """R's influence.measures(), padded as R pads it under na.exclude.

        Returns
        -------
        InfluenceMeasures
            At a dropped row: dfb.* 0, dffit NaN, cov.r 1, cook.d NaN, hat 0, and no flags (R's NA).

        Examples
        --------
        >>> fit = tl.lm("mpg ~ wt", tl.datasets.load("mtcars"))
        >>> fit.influence_measures().is_inf.sum()
        dfb.Intercept    0
        dfb.wt           1
        dffit            2
        cov.r            4
        cook.d           0
        hat              1
        dtype: int64
        """
        im = super().influence_measures()
        if not self.na_exclude:
            return im
        fills = [1.0 if c == "cov.r" else 0.0 if c == "hat" or c.startswith("dfb.") else math.nan
                 for c in im.infmat.columns]
        cols = [self._pad(im.infmat[c], f) for c, f in zip(im.infmat.columns, fills)]
        infmat = pd.concat(cols, axis=1)
        flags = pd.concat([self._pad(im.is_inf[c].astype(float), 0.0) for c in im.is_inf.columns], axis=1) != 0
        return InfluenceMeasures(infmat=infmat, is_inf=flags)
