"""The result of tl.feols / tl.fepois / tl.feglm: the slopes with fixest's covariances; fixed effects on demand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchlm.errors import OptionError, UnknownVariableError
from torchlm.frame.fixest import FixestDesign
from torchlm.inference.fixest_vcov import Clustering, SmallSample, fixest_vcov
from torchlm.results.base import confint_labels
from torchlm.results.fixest_values import FixestValues
from torchlm.solvers.absorb import Absorber


@dataclass
class FixestFit:
    """What a fixest fit leaves for its result (the solver's side).

    Parameters
    ----------
    coef : (p,) slopes, NaN for removed ones.
    bread : (r, r) inverse of the weighted within cross-product, the estimable slopes in order.
    scores : (n, r) per-observation scores.
    residuals : (n,) response residuals y - fitted (working residuals for a GLM are not kept).
    fitted : (n,) fitted values (means for a GLM), fixed effects included.
    eta : (n,) linear predictor (OLS: the fitted values).
    weights : (n,) the prior weights, or None.
    rss : weighted residual sum of squares (OLS) or the deviance (GLM).
    tss, tss_within : weighted total sum of squares of y about its mean, and of the within-transformed y.
    absorber : the projection (for fixef()).
    X : (n, p) slopes' matrix (for fixef()); y : (n,) the response.
    dispersion : 1 for families with a fixed dispersion; the estimated one otherwise; None for OLS.
    deviance, null_deviance, loglik, iterations : GLM only.
    """

    coef: np.ndarray
    bread: torch.Tensor
    scores: torch.Tensor
    residuals: np.ndarray
    fitted: np.ndarray
    eta: np.ndarray
    weights: np.ndarray | None
    rss: float
    tss: float
    tss_within: float
    absorber: Absorber | None
    X: np.ndarray
    y: np.ndarray
    collinear: list[str]
    dispersion: float | None = None
    deviance: float | None = None
    null_deviance: float | None = None
    loglik: float | None = None
    iterations: int | None = None


class FixestResult(FixestValues):
    """A fixest model: feols (OLS), fepois (Poisson) or feglm, with absorbed fixed effects.

    Attributes
    ----------
    method : "OLS", "Poisson" or the family's name.
    fixef_names : the fixed effects as the formula writes them.
    fixef_sizes : their numbers of levels (after singletons and NA rows are removed).
    nobs : observations used.
    n_singletons, n_removed, n_missing : observations removed as singletons, for a perfect fit (fepois), and for NA.
    collinear : slopes removed because they are collinear with the fixed effects or other slopes.
    """

    def __init__(self, fd: FixestDesign, fit: FixestFit, *, method: str, vcov: Any, ssc: Any, family: Any = None,
                 call: str = ""):
        self.fd, self.fit, self.method, self.family, self.call = fd, fit, method, family, call
        self._names = tuple(fd.names)
        self.ssc = SmallSample.make(ssc)
        self.fixef_names = fd.effect_labels
        self.fixef_sizes = fd.effect_sizes
        self._kfe = fd.fixef_dof
        self.nobs = len(fit.y)
        self.n_singletons, self.n_removed = fd.n_singletons, fd.n_removed
        self.n_missing = fd.design.n_dropped
        self.collinear = list(fit.collinear)
        self.response = fd.design.response
        self.statistic = "t" if method == "OLS" or (family is not None and not family.fixed_dispersion) else "z"
        self.df_residual: int = self.nobs - len(self.estimable) - self._kfe
        self._default_vcov = vcov
        self._default = self._resolve(vcov, None)  # checked at the fit, as fixest does

    # --- ModelResult hooks ---------------------------------------------------------------------
    def _coef_values(self) -> np.ndarray:
        return self.fit.coef

    def _unscaled(self, **options: Any) -> np.ndarray:
        return self.fit.bread.cpu().numpy()

    @property
    def scale(self) -> float:
        """sigma^2 (RSS / (n - K)) for OLS, the dispersion for a GLM."""
        if self.fit.dispersion is not None:
            return self.fit.dispersion
        return self.fit.rss / self.df_residual if self.df_residual > 0 else float("nan")

    # --- covariance choice ---------------------------------------------------------------------
    def _clustering(self, spec: Any) -> list[Clustering]:
        names = [s.strip() for s in spec.split("+")] if isinstance(spec, str) else list(spec)
        if not 1 <= len(names) <= 2:
            raise OptionError(f"clustering is one- or two-way; got {len(names)} cluster variables ({names})")
        out = []
        for nm in names:
            if not isinstance(nm, str):
                raise OptionError(f"cluster variables are named by strings, not {nm!r}")
            terms = self.fd.fml.labels
            if nm in terms:
                out.append(Clustering(self.fd.codes[terms.index(nm)], nm))
                continue
            data, rows = self.fd.design.data, self.fd.design.rows
            if data is None or nm not in data.columns:
                raise UnknownVariableError(f"cluster variable {nm!r} is neither a fixed effect ({self.fixef_names}) "
                                           "nor a column of the data")
            values = data[nm].iloc[rows]
            if values.isna().any():
                raise OptionError(f"cluster variable {nm!r} is missing (NA) in {int(values.isna().sum())} of the rows "
                                  "used: drop them before the fit (or cluster by another variable)")
            codes, _ = pd.factorize(values, sort=True)
            out.append(Clustering(codes.astype(np.int64), nm))
        return out

    def _resolve(self, vcov: Any, cluster: Any) -> tuple[str, list[Clustering]]:
        """fixest's vcov= (and cluster=) as (kind, clusterings)."""
        if cluster is not None:
            if vcov not in (None, "cluster", "CRV1", "twoway"):
                raise OptionError("cluster= goes with vcov=None or 'cluster'")
            return "cluster", self._clustering(cluster)
        if vcov is None:
            vcov = self._default_vcov
        if vcov is None:
            # fixest's defaults (setFixest_vcov): iid without fixed effects, clustered by the first one with them
            terms = self.fd.fml.labels
            return ("cluster", self._clustering([terms[0]])) if terms else ("iid", [])
        if isinstance(vcov, dict):
            if set(vcov) != {"CRV1"}:
                raise OptionError(f"vcov dict is fixest's {{'CRV1': 'firm'}} (or 'firm + year'), not {vcov!r}")
            return "cluster", self._clustering(vcov["CRV1"])
        if isinstance(vcov, str):
            key = vcov.lower()
            if key in ("iid", "standard", "const"):
                return "iid", []
            if key in ("hetero", "hc1", "white"):
                return "hetero", []
            if key in ("cluster", "twoway"):
                want = 1 if key == "cluster" else 2
                terms = self.fd.fml.labels
                if len(terms) < want:
                    raise OptionError(f"vcov={vcov!r} clusters by the first {want} fixed effect(s); the model has "
                                      f"{len(terms)}: name the cluster variable ({{'CRV1': 'g'}})")
                return "cluster", self._clustering(terms[:want])
        raise OptionError(f"unknown vcov {vcov!r}: fixest's are 'iid', 'hetero', 'cluster', 'twoway', "
                          "{'CRV1': 'g'} or {'CRV1': 'g1 + g2'}")

    def _fixest(self, vcov: Any, cluster: Any, ssc: Any = None) -> tuple[pd.DataFrame, str, float]:
        kind, clusters = self._default if vcov is None and cluster is None else self._resolve(vcov, cluster)
        s = self.ssc if ssc is None else SmallSample.make(ssc)
        if self.fit.dispersion is None:
            rss = self.fit.rss
        else:  # a GLM: bread already includes the dispersion's place; fixest's iid is bread * phi * adj
            rss = self.fit.dispersion * (self.nobs - 1)
        V, df = fixest_vcov(kind, self.fit.bread, self.fit.scores, sigma2_rss=rss, n=self.nobs,
                            k=len(self.estimable), kfe=self._kfe,
                            plain=[(c, L) for c, L, p in zip(self.fd.effect_codes, self.fixef_sizes, self.fd.plain)
                                   if p], clusters=clusters,
                            ssc=s)
        names = self.estimable
        desc = {"iid": "IID", "hetero": "Heteroskedasticity-robust"}.get(kind) or (
            f"Clustered ({clusters[0].label})" if len(clusters) == 1 else
            f"Clustered ({clusters[0].label} & {clusters[1].label})")
        return pd.DataFrame(V.cpu().numpy(), index=names, columns=names), desc, df

    def _covariance(self, vcov: Any = None, cluster: Any = None, **options: Any) -> tuple[pd.DataFrame, str | None]:
        V, desc, _ = self._fixest(vcov, cluster, options.get("ssc"))
        return V, desc

    def vcov(self, type: Any = None, *, cluster: Any = None, ssc: Any = None) -> pd.DataFrame:
        """fixest's vcov(): the slopes' covariance with fixest's small-sample corrections.

        Parameters
        ----------
        type : None (the fit's vcov=, else fixest's default: clustered by the first fixed effect, iid without
            fixed effects), "iid", "hetero" (also "HC1"), "cluster", "twoway", ``{"CRV1": "firm"}`` or
            ``{"CRV1": "firm + year"}``.
        cluster : cluster variable name(s): a fixed effect or a column of the data (one or two).
        ssc : fixest's ssc() as a dict (adj, fixef_K, cluster_adj, cluster_df); default the fit's.

        Returns
        -------
        pandas.DataFrame (k, k) over the estimable slopes.

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.vcov("hetero").round(4)
                wt      hp
        wt  0.4804  0.0029
        hp  0.0029  0.0001
        """
        return self._fixest(type, cluster, ssc)[0]

    def std_errors(self, vcov: Any = None, *, cluster: Any = None, ssc: Any = None) -> pd.Series:
        """Standard errors of the slopes (NaN for removed ones); options as in vcov().

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.std_errors().round(4)
        wt    1.1669
        hp    0.0138
        Name: Std. Error, dtype: float64
        """
        return self._se(self._fixest(vcov, cluster, ssc)[0])

    def coef_table(self, vcov: Any = None, *, cluster: Any = None, ssc: Any = None) -> pd.DataFrame:
        """Estimate, Std. Error, t (z) value and p-value of each slope, fixest's t degrees of freedom.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.coef_table().round(4)
            Estimate  Std. Error  t value  Pr(>|t|)
        wt   -3.1814      1.1669  -2.7263    0.1123
        hp   -0.0231      0.0138  -1.6701    0.2369
        """
        V, _, df = self._fixest(vcov, cluster, ssc)
        return self._table(V, df=df)

    def confint(self, level: float = 0.95, parm: Any = None, vcov: Any = None, *, cluster: Any = None,
                ssc: Any = None) -> pd.DataFrame:
        """Wald intervals with fixest's degrees of freedom (min(G) - 1 when clustered).

        Returns
        -------
        pandas.DataFrame with columns "2.5 %" and "97.5 %".

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> fit.confint().round(4)
             2.5 %  97.5 %
        wt -8.2023  1.8395
        hp -0.0827  0.0364
        """
        V, _, df = self._fixest(vcov, cluster, ssc)
        q = self._quantile(level, df=df)
        rows = self._parm(parm)
        b, se = self.coef()[rows], self._se(V)[rows]
        lo, hi = confint_labels(level)
        return pd.DataFrame({lo: b - q * se, hi: b + q * se}, index=rows)

    # --- fit statistics ------------------------------------------------------------------------
    @property
    def r2(self) -> float:
        """R² about the response's (weighted) mean (OLS; for a GLM, None)."""
        return 1 - self.fit.rss / self.fit.tss if self.method == "OLS" else float("nan")

    @property
    def r_squared(self) -> float:
        """R² (the name of lm's summary; ``r2`` is fixest's)."""
        return self.r2

    @property
    def adj_r_squared(self) -> float:
        """Adjusted R² (``adj_r2``)."""
        return self.adj_r2

    def vcov_type(self, vcov: Any = None, *, cluster: Any = None) -> str:
        """The name of a covariance choice as the summary prints it ("Clustered (firm)", "IID", ...).

        Returns
        -------
        str

        Examples
        --------
        >>> tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).vcov_type("hetero")
        'Heteroskedasticity-robust'
        """
        return self._fixest(vcov, cluster)[1]

    @property
    def within_r2(self) -> float:
        """R² of the within-transformed model (NaN without fixed effects)."""
        if not self.fixef_names or self.method != "OLS":
            return float("nan")
        return 1 - self.fit.rss / self.fit.tss_within

    @property
    def adj_r2(self) -> float:
        """Adjusted R², the fixed effects counted among the parameters (fixest's)."""
        n, k = self.nobs, len(self.estimable)
        K = k + self._kfe if self.fixef_names else k + self.fd.design.has_intercept
        # fixest: the intercept (absorbed or not) is the mean, not a parameter of the adjustment
        top = n - 1 if (self.fixef_names or self.fd.design.has_intercept) else n
        return 1 - (1 - self.r2) * top / (n - K)

    @property
    def adj_within_r2(self) -> float:
        """Adjusted within R² (fixest's)."""
        n, k, kfe = self.nobs, len(self.estimable), self._kfe
        return 1 - (1 - self.within_r2) * (n - kfe) / (n - k - kfe) if self.fixef_names else float("nan")

    # --- likelihood ------------------------------------------------------------------------------
    def _family_loglik(self, mu: np.ndarray) -> float:
        fam = self.family
        y = torch.as_tensor(self.fit.y)
        w = torch.ones_like(y) if self.fit.weights is None else torch.as_tensor(self.fit.weights)
        m = torch.as_tensor(mu)
        dev = float(fam.dev_resids(y, m, w).sum())
        return int(fam.aic_counts_dispersion) - fam.aic(y, torch.ones_like(y), m, w, dev) / 2

    def loglik(self) -> float:
        """The log-likelihood: Gaussian for feols (as R's logLik.lm of the model with the dummies), the family's for
        feglm (as R's logLik.glm).

        Returns
        -------
        float

        Examples
        --------
        >>> round(tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).loglik(), 4)
        -73.3112
        """
        if self.family is not None:
            return float(self._family_loglik(self.fit.fitted))
        w = np.ones(self.nobs) if self.fit.weights is None else self.fit.weights
        n = self.nobs
        return float(0.5 * (np.sum(np.log(w)) - n * (np.log(2 * np.pi) + 1 - np.log(n) + np.log(self.fit.rss))))

    @property
    def df_loglik(self) -> int:
        """Parameters the likelihood counts: the slopes, the fixed effects' coefficients, and sigma (or a
        dispersion the family estimates)."""
        extra = 1 if self.family is None else int(self.family.aic_counts_dispersion)
        return len(self.estimable) + self._kfe + extra

    def aic(self) -> float:
        """AIC: -2 logLik + 2 df_loglik.

        Returns
        -------
        float

        Examples
        --------
        >>> round(tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).aic(), 4)
        156.6223
        """
        return -2 * self.loglik() + 2 * self.df_loglik

    def bic(self) -> float:
        """BIC: -2 logLik + log(n) df_loglik.

        Returns
        -------
        float

        Examples
        --------
        >>> round(tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).bic(), 4)
        163.951
        """
        return float(-2 * self.loglik() + np.log(self.nobs) * self.df_loglik)

    @property
    def pseudo_r2(self) -> float:
        """fixest's adjusted pseudo R² of a GLM: 1 - (logLik - K) / logLik of the constant-only model (NaN with an
        offset, or for OLS)."""
        if self.family is None or self.fd.design.offset is not None:
            return float("nan")
        w = np.ones(self.nobs) if self.fit.weights is None else self.fit.weights
        null = self._family_loglik(np.full(self.nobs, np.average(self.fit.y, weights=w)))
        return float(1 - (self.loglik() - (self.df_loglik - int(self.family.aic_counts_dispersion))) / null)

    @property
    def rmse(self) -> float:
        """sqrt(RSS / n)."""
        return float(np.sqrt(self.fit.rss / self.nobs))

    @property
    def sigma(self) -> float:
        """Residual standard error sqrt(RSS / (n - K))."""
        return float(np.sqrt(self.scale))

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95, vcov: Any = None, *,
             cluster: Any = None) -> pd.DataFrame:
        """broom's tidy.fixest: a row per slope (term, estimate, std.error, statistic, p.value[, conf.low, conf.high]).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).tidy()[["term", "estimate"]].round(4)
          term  estimate
        0   wt   -3.2056
        """
        tab = self.coef_table(vcov, cluster=cluster).loc[self.estimable]
        out = pd.DataFrame({"term": tab.index, "estimate": tab.iloc[:, 0].to_numpy(),
                            "std.error": tab.iloc[:, 1].to_numpy(), "statistic": tab.iloc[:, 2].to_numpy(),
                            "p.value": tab.iloc[:, 3].to_numpy()})
        if conf_int:
            ci = self.confint(conf_level, vcov=vcov, cluster=cluster).loc[self.estimable]
            out["conf.low"], out["conf.high"] = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
        return out

    def glance(self) -> pd.DataFrame:
        """broom's glance.fixest: one row of fit statistics (r.squared, adj.r.squared, within.r.squared, sigma, nobs;
        deviance for a GLM).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> tl.feols("mpg ~ wt | cyl", tl.datasets.load("mtcars")).glance()["nobs"].item()
        32
        """
        row: dict[str, Any] = {"r.squared": self.r2, "adj.r.squared": self.adj_r2, "within.r.squared": self.within_r2,
               "sigma": self.sigma, "nobs": self.nobs}
        if self.family is not None:
            row = {"deviance": self.fit.deviance, "dispersion": self.fit.dispersion, "nobs": self.nobs}
        return pd.DataFrame([row])

    def summary(self, vcov: Any = None, *, cluster: Any = None, ssc: Any = None) -> Any:
        """fixest's summary: the header (estimation, observations, fixed effects, standard-error type), the
        coefficient table and the fit statistics.

        Returns
        -------
        FixestSummary
            Printing it gives the text.

        Examples
        --------
        >>> fit = tl.feols("mpg ~ wt + hp | cyl", tl.datasets.load("mtcars"))
        >>> print(fit.summary())
        OLS estimation, Dep. Var.: mpg
        Observations: 32
        Fixed-effects: cyl: 3
        Standard-errors: Clustered (cyl)
           Estimate Std. Error t value Pr(>|t|)
        wt -3.18140    1.16692  -2.726    0.112
        hp -0.02312    0.01384  -1.670    0.237
        RMSE: 2.2415     Adj. R2: 0.83607
                       Within R2: 0.46632
        """
        from torchlm.present.fixest import FixestSummary

        return FixestSummary(self, vcov, cluster, ssc)

    def __repr__(self) -> str:
        return str(self.summary())
