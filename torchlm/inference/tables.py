"""R's analysis of variance (deviance) tables: the DataFrame that prints as R's print.anova, and which fits are GLMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from torchlm.results.protocols import DiagnosticFit, GeneralizedFit


class AnovaTable(pd.DataFrame):
    """An analysis of variance (or deviance) table: a DataFrame laid out like R's, printed as R prints it.

    ``print(tab)`` (and the REPL) shows R's print.anova text; ``tab.attrs["heading"]`` holds R's
    heading; everything else is a pandas DataFrame (derived frames are plain DataFrames).
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        from torchlm.present.summary import anova_text

        return anova_text(self)

    __str__ = __repr__


def anova_table(tab: pd.DataFrame, heading: str) -> AnovaTable:
    """``tab`` as an AnovaTable with R's heading.

    Returns
    -------
    AnovaTable
    """
    out = AnovaTable(tab)
    out.attrs["heading"] = heading
    return out


def is_glm(fit: DiagnosticFit) -> TypeIs[GeneralizedFit]:
    """Whether ``fit`` is a GLM (a family and a null deviance), for the tables' two layouts.

    Returns
    -------
    bool
    """
    return hasattr(fit, "family") and hasattr(fit, "null_deviance")
