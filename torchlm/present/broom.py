"""broom's tidy frames of R's tables: tidy.anova (anova, drop1, add1, car's Anova), tidy.aov, tidy.TukeyHSD.

Each is a pandas DataFrame with broom 1.0.3's column names (dots included) in broom's order and a
RangeIndex; NA is NaN. The model verbs (tidy, glance, augment of a fit) are in
:mod:`torchlm.results.broom`; this module holds what only rearranges a table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from torchlm.errors import OptionError, warn
from torchlm.present.rformat import row_labels

#: broom's tidy.anova renamers, by R's make.names of an anova table's column
ANOVA_RENAMES = {
    "AIC": "AIC", "BIC": "BIC", "deviance": "deviance", "logLik": "logLik", "Df": "df", "Chi.Df": "df",
    "Sum.Sq": "sumsq", "Mean.Sq": "meansq", "F.value": "statistic", "Pr..F.": "p.value", "Res.Df": "df.residual",
    "RSS": "rss", "Sum.of.Sq": "sumsq", "F": "statistic", "Chisq": "statistic", "npar": "npar",
    "P..Chi..": "p.value", "Pr...Chi..": "p.value", "Pr..Chi.": "p.value", "Pr..Chisq.": "p.value",
    "p.value": "p.value", "Chi.sq": "statistic", "LR.Chisq": "statistic", "edf": "edf", "Ref.df": "ref.df",
    "loglik": "logLik", ".rownames": "term",
}

#: summary.aov's columns, as broom's tidy.aov renames them
AOV_RENAMES = {"Df": "df", "Sum Sq": "sumsq", "Mean Sq": "meansq", "F value": "statistic", "Pr(>F)": "p.value"}
AOV_COLUMNS = ["term", "df", "sumsq", "meansq", "statistic", "p.value"]

_MODEL_LINE = re.compile(r"[Mm]od.*[0-9]+:")
_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
               "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


def make_names(name: str) -> str:
    """R's make.names of one name: invalid characters to ".", an "X" before a name that cannot start one.

    Returns
    -------
    str
        E.g. "Pr(>F)" -> "Pr..F.", "Resid. Df" -> "Resid..Df", "1st" -> "X1st".
    """
    out = re.sub(r"[^A-Za-z0-9._]", ".", str(name))
    if not out or not (out[0].isalpha() or (out[0] == "." and not out[1:2].isdigit())):
        out = "X" + out
    return out + "." if out in _R_RESERVED else out


def r_rownames(labels: Sequence[str]) -> list[str] | None:
    """The row names broom adds as ``.rownames``: None where they are R's automatic 1, 2, ..., n (broom's has_rownames).

    Returns
    -------
    list of str or None
    """
    labels = [str(x) for x in labels]
    return None if labels == [str(i + 1) for i in range(len(labels))] else labels


def data_columns(df: pd.DataFrame, rows: Sequence[str] | None = None) -> pd.DataFrame:
    """A copy of ``df``'s columns with a RangeIndex, ``.rownames`` first where broom's as_augment_tibble adds it.

    Parameters
    ----------
    df : pandas.DataFrame
        The data (or new data) an augment starts from; not modified.
    rows : R's row names of its rows (default: from its index, a default RangeIndex being R's automatic ones).

    Returns
    -------
    pandas.DataFrame
    """
    out = df.reset_index(drop=True).copy()
    names = r_rownames(row_labels(df.index) if rows is None else rows)
    if names is not None:
        if ".rownames" in out.columns:
            raise OptionError("the data has a column '.rownames', the name augment gives the row names: rename it")
        out.insert(0, ".rownames", names)
    return out


def tidy_anova(tab: pd.DataFrame, heading: str = "") -> pd.DataFrame:
    """broom's tidy.anova: R's anova-type table with broom's column names and a ``term`` column.

    Parameters
    ----------
    tab : pandas.DataFrame
        The table as R lays it out (columns "Df", "Sum Sq", "Pr(>F)" ...; rows the terms or models).
    heading : str
        R's heading; its "Model 1: ..." lines name the rows of a comparison of models.

    Returns
    -------
    pandas.DataFrame
        ``term`` and the renamed columns in the table's order; a column broom does not know keeps R's
        make.names of its name (with broom's warning), as "Deviance" and "Resid..Df" of a glm's table.
    """
    names = [make_names(c) for c in tab.columns]
    out = pd.DataFrame({n: tab.iloc[:, j].to_numpy() for j, n in enumerate(names)})
    rows = r_rownames([str(i) for i in tab.index])
    if rows is not None:
        out.insert(0, ".rownames", rows)
    unknown = [c for c in out.columns if c != "term" and c not in ANOVA_RENAMES]
    if unknown:
        warn("The following column names in ANOVA output were not recognized or transformed: "
             + ", ".join(unknown), stacklevel=3)
    out.columns = [ANOVA_RENAMES.get(c, c) for c in out.columns]
    if "term" not in out.columns:
        models = [re.sub(r"^.*: ", "", line) for line in heading.splitlines() if _MODEL_LINE.search(line)]
        out.insert(0, "term", models if models and len(models) == len(out) else
                   [str(i + 1) for i in range(len(out))])
    out["term"] = out["term"].astype(str).str.strip()
    return out


def tidy_aov_table(tab: pd.DataFrame) -> pd.DataFrame:
    """broom's tidy.aov of one summary.aov table (Df, Sum Sq, Mean Sq, F value, Pr(>F)).

    Returns
    -------
    pandas.DataFrame
        term, df, sumsq, meansq, statistic, p.value (the last two NaN on the Residuals row; absent
        where the table has no F tests).
    """
    out = pd.DataFrame({"term": [str(t).strip() for t in tab.index]})
    for col, name in AOV_RENAMES.items():
        if col in tab.columns:
            out[name] = tab[col].to_numpy(dtype=float)
    return out


def tidy_tukey(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """broom's tidy.TukeyHSD: one row per comparison of every term.

    Parameters
    ----------
    tables : {term: DataFrame with columns diff, lwr, upr, p adj and rows "B-A"}, R's TukeyHSD.

    Returns
    -------
    pandas.DataFrame
        term, contrast, null.value (0), estimate, conf.low, conf.high, adj.p.value.
    """
    parts = [pd.DataFrame({"term": term, "contrast": [str(c) for c in tab.index], "null.value": 0.0,
                           "estimate": tab["diff"].to_numpy(dtype=float),
                           "conf.low": tab["lwr"].to_numpy(dtype=float),
                           "conf.high": tab["upr"].to_numpy(dtype=float),
                           "adj.p.value": tab["p adj"].to_numpy(dtype=float)})
             for term, tab in tables.items()]
    columns = ["term", "contrast", "null.value", "estimate", "conf.low", "conf.high", "adj.p.value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def tidy_strata(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """broom's tidy.aovlist: each error stratum's tidy.aov table, with a ``stratum`` column first.

    Returns
    -------
    pandas.DataFrame
        stratum, term, df, sumsq, meansq, statistic, p.value (NaN in a stratum without F tests).
    """
    parts = []
    for name, tab in tables.items():
        part = tidy_aov_table(tab)
        part.insert(0, "stratum", str(name).strip())
        parts.append(part)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out.reindex(columns=["stratum"] + AOV_COLUMNS)


def one_row(values: Mapping[str, Any]) -> pd.DataFrame:
    """A glance: one row of the given columns, in order (None as NaN).

    Returns
    -------
    pandas.DataFrame
    """
    return pd.DataFrame({k: [np.nan if v is None else v] for k, v in values.items()})
