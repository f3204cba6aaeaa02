"""aov results: an lm with R's summary.aov and print.aov, the multistratum fit of Error() models, TukeyHSD tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from torchlm.errors import ModelInputError, OptionError
from torchlm.inference.tukey import tukey_hsd
from torchlm.present.aov import (
    print_aov_text,
    print_aovlist_text,
    summary_aov_html,
    summary_aov_text,
    terms_lines,
    tukey_text,
)
from torchlm.present.summary import LMSummary
from torchlm.results.broom import AovBroom, StrataTidy, TukeyTidy
from torchlm.results.linear import LinearModelResult

INTERCEPT_TERM = "(Intercept)"
_BALANCE_TOL = float(np.sqrt(np.finfo(float).eps))  # print.aov's tol


def na_line(n_dropped: int) -> str | None:
    """R's naprint of na.omit: "3 observations deleted due to missingness" (None when no row was dropped).

    Returns
    -------
    str or None
    """
    if not n_dropped:
        return None
    return f"{n_dropped} observation{'s' if n_dropped > 1 else ''} deleted due to missingness"


@dataclass(frozen=True)
class Stratum:
    """One least-squares fit of an aov: the whole model, or the model projected into one error stratum.

    Attributes
    ----------
    name : the stratum ("" for a fit without Error()).
    names : the columns fitted (formulaic's names), in design order.
    labels : the term of each estimable column, in pivot order ("(Intercept)" for the intercept).
    effects : (rank,) R's effects of the estimable columns (Q' y).
    rank, df_residual : as R's.
    rss : residual sum of squares (weighted).
    R : (rank, rank) upper-triangular QR factor of the estimable columns (pivot order).
    coef : (len(names),) coefficients, NaN where aliased.
    """

    name: str
    names: tuple[str, ...]
    labels: tuple[str, ...]
    effects: np.ndarray
    rank: int
    df_residual: int
    rss: float
    R: np.ndarray
    coef: np.ndarray

    def terms(self, intercept: bool = False) -> tuple[list[str], list[int], list[float]]:
        """Each term's df and sequential sum of squares, in order (R's summary.aov by assign).

        Returns
        -------
        (list of str, list of int, list of float)
            Term labels, degrees of freedom and sums of squares of the effects.
        """
        names = [t for t in dict.fromkeys(self.labels) if intercept or t != INTERCEPT_TERM]
        lab = np.asarray(self.labels, dtype=object)
        df = [int((lab == t).sum()) for t in names]
        ss = [float(np.sum(np.square(self.effects[lab == t]))) for t in names]
        return names, df, ss

    def table(self, intercept: bool = False) -> pd.DataFrame:
        """R's summary.aov table of this fit: Df, Sum Sq, Mean Sq, F value, Pr(>F) per term and Residuals.

        Returns
        -------
        pandas.DataFrame
            Indexed by the terms and "Residuals" (no Residuals row and no F test without residual df).
        """
        names, df, ss = self.terms(intercept)
        # R formats the row names before it drops the intercept's row: "(Intercept)" widens them all
        rdf = self.df_residual
        shown = names + ["Residuals"] * (rdf > 0) + [INTERCEPT_TERM] * (INTERCEPT_TERM in self.labels)
        width = max((len(t) for t in shown), default=0)
        if rdf > 0:
            names, df, ss = names + ["Residuals"], df + [rdf], ss + [self.rss]
        ms = [s / k for s, k in zip(ss, df)]
        tab = pd.DataFrame({"Df": np.array(df, dtype=float), "Sum Sq": ss, "Mean Sq": ms}, index=names)
        if rdf > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                f = np.array(ms[:-1]) / ms[-1]
            tab["F value"] = list(f) + [np.nan]
            tab["Pr(>F)"] = list(stats.f.sf(f, df[:-1], rdf)) + [np.nan]
        tab.attrs["row_width"] = width
        return tab

    @property
    def balanced(self) -> bool:
        """print.aov's test: the off-diagonal of R is below sqrt(eps) times its diagonal (sum of absolute values)."""
        if not self.rank:
            return True
        a = np.abs(self.R)
        d2 = float(np.trace(a))
        return (float(a.sum()) - d2) / d2 <= _BALANCE_TOL

    def terms_lines(self, intercept: bool = False, na: str | None = None) -> list[str]:
        """print.aov's text of this fit from "Terms:" on.

        Returns
        -------
        list of str
        """
        names, df, ss = self.terms(intercept)
        return terms_lines(names, df, ss, self.df_residual, self.rss, ncoef=len(self.names), rank=self.rank,
                           balanced=self.balanced, na_line=na)


class AovSummary:
    """R's summary.aov (one table) or summary.aovlist (a table per error stratum); print it for R's text.

    ``tables`` maps each stratum ("" without Error()) to its table; ``summary[0]`` (R's
    ``summary(fit)[[1]]``) or ``summary["Within"]`` gives one.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], n_dropped: int = 0, strata: bool = False):
        self.tables = tables
        self._strata = strata
        self._na = na_line(n_dropped)

    def __getitem__(self, key: int | str) -> pd.DataFrame:
        if isinstance(key, int):
            return list(self.tables.values())[key]
        if key not in self.tables:
            raise OptionError(f"no stratum {key!r}; the strata are {list(self.tables)}")
        return self.tables[key]

    def __len__(self) -> int:
        return len(self.tables)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __str__(self) -> str:
        named = [(k if self._strata else None, t) for k, t in self.tables.items()]
        return summary_aov_text(named, None if self._strata else self._na)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        named = [(k if self._strata else None, t) for k, t in self.tables.items()]
        return summary_aov_html(named, None if self._strata else self._na)


class TukeyHSDResult(TukeyTidy, dict):
    """R's TukeyHSD: {term: DataFrame of diff, lwr, upr, p adj}, printed as R's print.TukeyHSD.

    Attributes: conf_level, ordered, call (the aov fit's).

    Examples
    --------
    >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
    >>> warp.TukeyHSD("tension").tidy().round(4)
          term contrast  null.value  estimate  conf.low  conf.high  adj.p.value
    0  tension      M-L         0.0  -10.0000  -19.3534    -0.6466       0.0336
    1  tension      H-L         0.0  -14.7222  -24.0756    -5.3688       0.0011
    2  tension      H-M         0.0   -4.7222  -14.0756     4.6312       0.4474
    """

    def __init__(self, tables: dict[str, pd.DataFrame], conf_level: float, ordered: bool, call: str):
        super().__init__(tables)
        self.conf_level, self.ordered, self.call = conf_level, ordered, call

    def __str__(self) -> str:
        return tukey_text(dict(self), self.conf_level, self.ordered, self.call)

    __repr__ = __str__


class AovResult(AovBroom, LinearModelResult):
    """An aov fit (tl.aov without Error()): a LinearModelResult, with R's summary.aov, print.aov and TukeyHSD.

    ``summary()`` is R's summary.aov (``summary_lm()`` gives summary.lm's); every other lm method is
    the lm's.

    Examples
    --------
    >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
    >>> warp.tidy().round(4)
            term    df      sumsq     meansq  statistic  p.value
    0       wool   1.0   450.6667   450.6667     3.3393   0.0736
    1    tension   2.0  2034.2593  1017.1296     7.5367   0.0014
    2  Residuals  50.0  6747.8889   134.9578        NaN      NaN
    >>> warp.glance()[["r.squared", "AIC", "nobs"]].round(4)
       r.squared       AIC  nobs
    0     0.2691  423.9574    54
    """

    @classmethod
    def from_lm(cls, fit: LinearModelResult, call: str) -> AovResult:
        """The aov of a linear model fit (its state shared, the call replaced).

        Returns
        -------
        AovResult

        Examples
        --------
        >>> fit = tl.lm("breaks ~ wool", tl.datasets.load("warpbreaks"))
        >>> print(tl.results.aov.AovResult.from_lm(fit, "aov(formula = breaks ~ wool)").summary())
                    Df Sum Sq Mean Sq F value Pr(>F)
        wool         1    451   450.7   2.668  0.108
        Residuals   52   8782   168.9
        """
        out = cls.__new__(cls)
        out.__dict__.update(fit.__dict__)
        out.call = call
        return out

    def stratum(self) -> Stratum:
        """The fit as one Stratum (R's effects, assign and QR factor).

        Returns
        -------
        Stratum

        Examples
        --------
        >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
        >>> warp.stratum().table().round(4)
                     Df     Sum Sq    Mean Sq  F value  Pr(>F)
        wool        1.0   450.6667   450.6667   3.3393  0.0736
        tension     2.0  2034.2593  1017.1296   7.5367  0.0014
        Residuals  50.0  6747.8889   134.9578      NaN     NaN
        """
        qr = self._qr
        est = list(qr.pivot[: self.rank])
        labels = tuple(INTERCEPT_TERM if self.design.assign[j] == "1" else self.design.assign[j] for j in est)
        return Stratum("", tuple(self.names), labels, np.asarray(qr.effects[: self.rank], dtype=float), self.rank,
                       self.df_residual, self.deviance, qr.R.cpu().double().numpy(), np.asarray(qr.coef))

    def summary(self, intercept: bool = False) -> AovSummary:  # type: ignore[override]
        """R's summary.aov: sequential sums of squares per term, F tests against the residual mean square.

        Parameters
        ----------
        intercept : bool
            Also give the intercept's row, as R's intercept = TRUE.

        Returns
        -------
        AovSummary
            Print it for R's text; ``[0]`` is the table (Df, Sum Sq, Mean Sq, F value, Pr(>F)).

        Examples
        --------
        >>> fit = tl.aov("breaks ~ wool * tension", tl.datasets.load("warpbreaks"))
        >>> fit.summary()[0].round(4)
                        Df     Sum Sq    Mean Sq  F value  Pr(>F)
        wool           1.0   450.6667   450.6667   3.7653  0.0582
        tension        2.0  2034.2593  1017.1296   8.4980  0.0007
        wool:tension   2.0  1002.7778   501.3889   4.1891  0.0210
        Residuals     48.0  5745.1111   119.6898      NaN     NaN
        """
        return AovSummary({"": self.stratum().table(intercept)}, self.n_dropped_na)

    def summary_lm(self, vcov: Any = None, *, cluster: Any = None) -> LMSummary:
        """R's summary.lm of the aov fit (the coefficient table), with vcov= as LinearModelResult.summary.

        Returns
        -------
        LMSummary

        Examples
        --------
        >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
        >>> warp.summary_lm().coefficients.round(4)
                      Estimate  Std. Error  t value  Pr(>|t|)
        Intercept      39.2778      3.1618  12.4227    0.0000
        wool[T.B]      -5.7778      3.1618  -1.8274    0.0736
        tension[T.M]  -10.0000      3.8724  -2.5824    0.0128
        tension[T.H]  -14.7222      3.8724  -3.8019    0.0004
        """
        return LinearModelResult.summary(self, vcov, cluster=cluster)

    def TukeyHSD(self, which: Any = None, ordered: bool = False, conf_level: float = 0.95) -> TukeyHSDResult:
        """R's TukeyHSD(fit): Tukey's honest significant differences between the levels of each factor term.

        Parameters
        ----------
        which : str, list of str or None
            Factor terms to compare (R's labels: "tension", "wool:tension"); None: all of them.
        ordered : bool
            Order the levels by their means first, as R's ordered = TRUE.
        conf_level : float
            Family-wise confidence level, in (0, 1).

        Returns
        -------
        TukeyHSDResult
            {term: DataFrame with columns diff, lwr, upr, p adj and rows "B-A"}; print it for R's text.

        Examples
        --------
        >>> warp = tl.aov("breaks ~ wool + tension", tl.datasets.load("warpbreaks"))
        >>> print(warp.TukeyHSD("wool"))
          Tukey multiple comparisons of means
            95% family-wise confidence level
        <BLANKLINE>
        Fit: aov(formula = breaks ~ wool + tension)
        <BLANKLINE>
        $wool
                 diff       lwr       upr     p adj
        B-A -5.777778 -12.12841 0.5728505 0.0736137
        <BLANKLINE>
        """
        return TukeyHSDResult(tukey_hsd(self, which, ordered, conf_level), conf_level, bool(ordered), self.call)

    def __str__(self) -> str:
        """What R's print(aov(...)) shows: the call and each term's sum of squares and df."""
        return print_aov_text(self.call, self.stratum().terms_lines(na=na_line(self.n_dropped_na)))

    __repr__ = __str__


class AovListResult(StrataTidy):
    """A multistratum aov (tl.aov with Error()): R's aovlist, one least-squares fit per error stratum.

    Attributes
    ----------
    strata : dict of str to Stratum
        "(Intercept)", the Error() model's terms, "Within", in R's order (empty strata left out).
    call : str
    error : the Error() term's formula (R's Error model: response ~ it).
    nobs, n_dropped_na : rows used, and rows dropped for missing values.

    Examples
    --------
    >>> fit = tl.aov("yield ~ N * P + Error(block)", tl.datasets.load("npk"))
    >>> fit.tidy().round(4)
      stratum       term    df     sumsq    meansq  statistic  p.value
    0   block  Residuals   5.0  343.2950   68.6590        NaN      NaN
    1  Within          N   1.0  189.2817  189.2817     9.0391   0.0089
    2  Within          P   1.0    8.4017    8.4017     0.4012   0.5360
    3  Within        N:P   1.0   21.2817   21.2817     1.0163   0.3294
    4  Within  Residuals  15.0  314.1050   20.9403        NaN      NaN
    """

    def __init__(self, strata: dict[str, Stratum], call: str, error: str, nobs: int, n_dropped: int):
        self.strata = strata
        self.call = call
        self.error = error
        self.nobs = nobs
        self.n_dropped_na = n_dropped

    def coef(self) -> dict[str, pd.Series]:
        """Each stratum's coefficients (R's coef of an aovlist), NaN where not estimable in the stratum.

        Returns
        -------
        dict of str to pandas.Series

        Examples
        --------
        >>> fit = tl.aov("yield ~ N * P + Error(block)", tl.datasets.load("npk"))
        >>> fit.coef()["Within"].round(4)
        N[T.1]           7.5000
        P[T.1]           0.7000
        N[T.1]:P[T.1]   -3.7667
        Name: Estimate, dtype: float64
        """
        return {k: pd.Series(s.coef, index=list(s.names), name="Estimate") for k, s in self.strata.items()}

    def summary(self) -> AovSummary:
        """R's summary.aovlist: the summary.aov table of each stratum but the (Intercept) one.

        Returns
        -------
        AovSummary
            ``tables`` by stratum; print it for R's "Error: <stratum>" text.

        Examples
        --------
        >>> fit = tl.aov("yield ~ N * P + Error(block)", tl.datasets.load("npk"))
        >>> print(fit.summary())
        <BLANKLINE>
        Error: block
                  Df Sum Sq Mean Sq F value Pr(>F)
        Residuals  5  343.3   68.66
        <BLANKLINE>
        Error: Within
                  Df Sum Sq Mean Sq F value  Pr(>F)
        N          1 189.28  189.28   9.039 0.00885 **
        P          1   8.40    8.40   0.401 0.53600
        N:P        1  21.28   21.28   1.016 0.32938
        Residuals 15 314.11   20.94
        ---
        Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
        """
        names = list(self.strata)
        if names and names[0] == INTERCEPT_TERM:
            names = names[1:]
        return AovSummary({k: self.strata[k].table() for k in names}, strata=True)

    def TukeyHSD(self, *args: Any, **kwargs: Any) -> TukeyHSDResult:
        """R has no TukeyHSD for multistratum fits: an error saying what to do instead.

        Returns
        -------
        TukeyHSDResult
            Never: this raises ModelInputError.

        Examples
        --------
        >>> fit = tl.aov("yield ~ N + Error(block)", tl.datasets.load("npk"))
        >>> fit.TukeyHSD()
        Traceback (most recent call last):
            ...
        torchlm.errors.ModelInputError: TukeyHSD needs a single-stratum aov (R's TukeyHSD has no method ...
        """
        raise ModelInputError("TukeyHSD needs a single-stratum aov (R's TukeyHSD has no method for Error() "
                              "models): fit the model without Error(), e.g. with the blocks as a term")

    def __str__(self) -> str:
        """What R's print of an aovlist shows: call, grand mean, each stratum's terms."""
        names = list(self.strata)
        grand = None
        if names and names[0] == INTERCEPT_TERM:
            c = self.strata[INTERCEPT_TERM].coef
            grand = float(c[0]) if len(c) else float("nan")
            names = names[1:]
        return print_aovlist_text(self.call, grand, [(k, self.strata[k].terms_lines()) for k in names])

    __repr__ = __str__
