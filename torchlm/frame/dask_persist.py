"""tl.lm's ``persist=True``: each partition's rows of the model built once and kept in the workers for the passes.

:class:`PersistedPartitions` stands for the Dask DataFrame in a fit: its ``to_delayed()`` gives the kept rows
(:class:`KeptRows`, which :func:`torchlm.frame.dask_frame.partition_rows` returns as they are), so that every
later pass (the residual sums, the summary's order statistics, HC2-HC5's leverages and meats, clusters) skips
the formula's materialization; anything else (the lazy series, the schema) is the DataFrame's. Each kept
partition holds its design rows and the partition itself (a cluster column is read from it), and a lost one is
rebuilt from its partition, as any Dask result.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from torchlm.frame.dask_frame import DaskPlan, PartitionRows, partition_rows


class KeptRows(PartitionRows):
    """A partition's rows of the model, and the partition (its other columns: a cluster's, for a meat)."""

    frame: pd.DataFrame

    def __getitem__(self, column: Any) -> Any:
        """A column of the partition (as ``part[c]`` reads it from the partition itself).

        Parameters
        ----------
        column : a column name

        Returns
        -------
        pandas.Series
        """
        return self.frame[column]


def kept_rows(part: pd.DataFrame, number: int, plan: DaskPlan) -> KeptRows:
    """The partition's rows of the model with the partition, to be kept (one persisted task per partition).

    Parameters
    ----------
    part : pandas.DataFrame
    number : int
    plan : DaskPlan

    Returns
    -------
    KeptRows
    """
    rows = partition_rows(part, number, plan)
    kept = KeptRows(**rows.__dict__)
    kept.frame = part
    return kept


class PersistedPartitions:
    """The Dask DataFrame of a fit, its partitions' rows of the model persisted for the passes.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    plan : DaskPlan
    """

    def __init__(self, ddf: Any, plan: DaskPlan) -> None:
        import dask

        shared = dask.delayed(plan, pure=True)
        tasks = [dask.delayed(kept_rows, pure=True)(part, k, shared) for k, part in enumerate(ddf.to_delayed())]
        self._rows = dask.persist(*tasks)
        self._ddf = ddf

    def to_delayed(self) -> list:
        """The kept rows, one per partition, in order (as a DataFrame gives its partitions).

        Returns
        -------
        list of dask.delayed.Delayed
        """
        return list(self._rows)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_ddf", "_rows"):  # copy and pickle probe before _ddf exists
            raise AttributeError(name)  # internal: the attribute protocol (copy and pickle probe for it)
        return getattr(self._ddf, name)  # the lazy series, the schema, the divisions: the DataFrame's
