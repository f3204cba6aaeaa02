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

    def _repr_html_(self) -> str:
        """The printout for notebooks: R's text (heading, legend) with the table as an HTML table of R's cells."""
        from torchlm.present.html import frame_html

        return frame_html(self)

    def tidy(self) -> pd.DataFrame:
        """broom's tidy.anova: the table with broom's column names (df, sumsq, meansq, statistic, p.value ...).

        Returns
        -------
        pandas.DataFrame
            ``term`` (the row names, or the models of a comparison) and the renamed columns.

        Examples
        --------
        >>> mtcars = tl.datasets.load("mtcars")
        >>> tl.anova(tl.lm("mpg ~ wt + hp", mtcars)).tidy().round(4)
                term  df     sumsq    meansq  statistic  p.value
        0         wt   1  847.7252  847.7252   126.0411   0.0000
        1         hp   1   83.2742   83.2742    12.3813   0.0015
        2  Residuals  29  195.0478    6.7258        NaN      NaN
        """
        from torchlm.present.broom import tidy_anova

        return tidy_anova(self, self.attrs.get("heading", ""))


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
