"""Profile-likelihood intervals of a Dask GLM: MASS's grid walk, each grid point a glm.fit over the partitions.

The walk and the spline are the in-memory ones (:mod:`torchlm.inference.profile`); a refit with the profiled
coefficient held at a grid value (its column in the offset) is R's glm.fit by IRLS passes
(:mod:`torchlm.sources.dask_glm_passes`), started from the previous grid point's means as MASS starts it. The
walks (each coefficient's two sides) run together and share their passes (:mod:`torchlm.sources.dask_batched_passes`):
the passes over the data are about the longest walk's (grid points times iterations per refit), not their
sum; ``persist=True`` keeps the partitions' designs for them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from torchlm.errors import silenced
from torchlm.inference.profile import confint_profile, profile_walks
from torchlm.sources.dask_batched_passes import BatchedPasses, PassBatcher
from torchlm.sources.dask_glm_passes import dask_irls
from torchlm.sources.dask_irls import Point


def dask_profile(fit: Any, which: list[str] | None = None, alpha: float = 0.01,
                 maxsteps: int = 10) -> dict[str, pd.DataFrame]:
    """MASS's profile.glm of a Dask GLM: the signed root statistic at each grid value, from refits over the partitions.

    Parameters
    ----------
    fit : DaskGeneralizedLinearModelResult
    which, alpha, maxsteps : as :func:`torchlm.inference.profile.profile`'s.

    Returns
    -------
    dict of str to pandas.DataFrame
        {name: DataFrame with columns "z" (or "tau") and "value"}, the in-memory profile's.

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> from torchlm.inference.dask_profile import dask_profile
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt", ddf, family="binomial")
    ...     prof = dask_profile(fit, ["wt"])
    >>> prof["wt"]["z"].round(3).tolist()[:3]
    [-2.814, -2.551, -2.271]
    """
    names = list(fit.names)
    batcher = PassBatcher(fit._source, fit._plan, fit.family)

    def refit(i: int, others: list[int], bi: float, previous: Point) -> tuple[float, Point]:
        passes = BatchedPasses(batcher, fit._source, fit._plan, fit.family, fit.tol, tuple(others),
                               [names[j] for j in others], fixed=((i, bi),))
        with silenced():  # R's glm.fit warnings at the far grid points
            # MASS's etastart: the previous grid point's linear predictor, through its means (R's mustart)
            sub = dask_irls(passes, None, replace(previous, through_mu=True), fit.control)
        return sub.deviance, sub.final

    return profile_walks(fit, which, alpha, maxsteps, fit._total.n, refit, fit._fit.final, run=batcher.run)


def dask_confint_profile(fit: Any, level: float = 0.95, parm: list[str] | None = None) -> pd.DataFrame:
    """R's confint(glm) of a Dask GLM: MASS's profile intervals from refits over the partitions.

    Parameters
    ----------
    fit : DaskGeneralizedLinearModelResult
    level : float
    parm : list of str or None

    Returns
    -------
    pandas.DataFrame
        The in-memory ``confint(method="profile")``'s table.

    Examples
    --------
    >>> import dask, dask.dataframe as dd
    >>> from torchlm.inference.dask_profile import dask_confint_profile
    >>> ddf = dd.from_pandas(tl.datasets.load("mtcars"), npartitions=3)
    >>> with dask.config.set(scheduler="threads"):
    ...     fit = tl.glm("am ~ wt", ddf, family="binomial")
    ...     ci = dask_confint_profile(fit)
    >>> ci.round(3).to_numpy().tolist()
    [[5.214, 23.629], [-7.699, -1.833]]
    """
    return confint_profile(fit, level, parm, profiler=dask_profile)
