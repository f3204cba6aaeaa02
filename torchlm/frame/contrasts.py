"""R's contrasts: ``contrasts=`` per variable, ``options(contrasts=)`` for the session, ordered factors.

R codes each factor of a model with a contrast matrix: the one named for it in lm's ``contrasts=``,
else the session's default (``options("contrasts")``: ``contr.treatment`` for unordered factors,
``contr.poly`` for ordered ones). A factor that a term needs in full (no intercept, or its margin
absent) is coded by indicators whatever its contrast, as R's ``contrasts = FALSE``.

formulaic's contrast classes give R's numbers for the five names (checked against R's matrices in the
tests); a matrix given by the user is coded as R codes it. The contrast is attached to each categorical
factor as formulaic evaluates it (:class:`RMaterializer`), so the formula's terms, their labels and
predict()'s rebuilding on new rows are those of the formula as written.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers import PandasMaterializer
from formulaic.materializers.types import EvaluatedFactor, FactorValues
from formulaic.parser.types import Factor
from formulaic.transforms.contrasts import (
    Contrasts,
    CustomContrasts,
    HelmertContrasts,
    PolyContrasts,
    SASContrasts,
    SumContrasts,
    TreatmentContrasts,
    encode_contrasts,
)
from formulaic.utils.variables import get_expression_variables
from interface_meta import override

from torchlm.errors import FormulaError, OptionError, warn
from torchlm.present.deparse import r_text

#: R's contrast functions, by the names R's contrasts= and options(contrasts=) take
CONTRASTS: dict[str, type[Contrasts]] = {
    "contr.treatment": TreatmentContrasts, "contr.sum": SumContrasts, "contr.helmert": HelmertContrasts,
    "contr.poly": PolyContrasts, "contr.SAS": SASContrasts,
}
#: R's default options("contrasts"): (unordered, ordered)
R_DEFAULT_CONTRASTS = ("contr.treatment", "contr.poly")
NAMES = ("formulaic", "R")
_SESSION = {"contrasts": R_DEFAULT_CONTRASTS}
_AS_FACTOR = re.compile(r"(?<![\w.])as\.factor\(")


def session_contrasts() -> tuple[str, str]:
    """The session's default contrasts (R's ``getOption("contrasts")``): (unordered, ordered).

    Returns
    -------
    tuple of two str
    """
    return _SESSION["contrasts"]


def set_session_contrasts(value: Any) -> tuple[str, str]:
    """Set the session's default contrasts, as R's ``options(contrasts = c(unordered, ordered))``.

    Parameters
    ----------
    value : pair of str
        Contrast names for unordered and ordered factors, e.g. ``("contr.sum", "contr.poly")``; None
        restores R's default ``("contr.treatment", "contr.poly")``.

    Returns
    -------
    tuple of two str
        The previous value.
    """
    old = _SESSION["contrasts"]
    if value is None:
        value = R_DEFAULT_CONTRASTS
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise OptionError(f"contrasts must be a pair of contrast names (unordered, ordered), as R's "
                          f"options(contrasts = c(\"contr.sum\", \"contr.poly\")), not {value!r}")
    for name in value:
        _known_name(name, "options(contrasts=)")
    _SESSION["contrasts"] = (str(value[0]), str(value[1]))
    return old


def _known_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or name not in CONTRASTS:
        matrix = "" if where.startswith("options") else ", or a numeric matrix with one row per level"
        raise OptionError(f"unknown contrast {name!r} in {where}: use one of {', '.join(CONTRASTS)} (R's names)"
                          + matrix)
    return name


class MatrixContrasts(CustomContrasts):
    """A user's contrast matrix, coded as R codes it: its columns (as many as it has) where the term is
    reduced, indicators of the levels where the term needs the factor in full."""

    @Contrasts.override
    def _get_coding_matrix(self, levels: Any, reduced_rank: bool = True, sparse: bool = False) -> np.ndarray:
        if not reduced_rank:
            return np.eye(len(levels))
        if self.contrasts.shape[0] != len(levels):
            raise OptionError(f"a contrast matrix has {self.contrasts.shape[0]} rows for a factor with "
                              f"{len(levels)} levels ({_shown(levels)}): give one row per level (R: wrong "
                              "number of contrast matrix rows)")
        return self.contrasts

    @Contrasts.override
    def get_coding_column_names(self, levels: Any, reduced_rank: bool = True) -> list:
        """The columns' names: the matrix's (a DataFrame's columns) or numbers; the levels when coded in full.

        Returns
        -------
        list
        """
        if not reduced_rank:
            return list(levels)
        return list(self.contrast_names) if self.contrast_names else list(range(1, self.contrasts.shape[1] + 1))

    @Contrasts.override
    def get_spans_intercept(self, levels: Any, reduced_rank: bool = True) -> bool:
        """Whether the coding spans the intercept: only when the factor is coded in full, as indicators.

        Returns
        -------
        bool
        """
        return len(levels) > 0 and not reduced_rank

    @Contrasts.override
    def get_drop_field(self, levels: Any, reduced_rank: bool = True) -> Any:
        """The indicator formulaic may drop from a coding in full (the first level's); None when reduced.

        Returns
        -------
        Any
        """
        return None if reduced_rank else levels[0]


def _shown(levels: Any) -> str:
    shown = [str(v) for v in list(levels)[:10]]
    return ", ".join(shown) + (", ..." if len(levels) > 10 else "")


def as_contrast(value: Any, where: str) -> Contrasts:
    """One contrast as formulaic codes it: an R name, or a matrix with one row per level.

    Parameters
    ----------
    value : str, array-like or pandas.DataFrame
        ``"contr.sum"`` and the other names of :data:`CONTRASTS`, or a numeric matrix (a DataFrame's
        column names name the coefficients, as a matrix's colnames in R; else they are numbered).
    where : str
        How an error names the argument.

    Returns
    -------
    formulaic Contrasts
    """
    if isinstance(value, str):
        return CONTRASTS[_known_name(value, where)]()
    if isinstance(value, Contrasts):
        return value
    names = [str(c) for c in value.columns] if isinstance(value, pd.DataFrame) else None
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros((0, 0))
    if m.ndim == 1:
        m = m.reshape(-1, 1)  # a vector is one contrast, as R's as.matrix makes it
    if m.ndim != 2 or m.size == 0 or not np.isfinite(m).all():
        raise OptionError(f"contrast {value!r} in {where} is neither a contrast name ({', '.join(CONTRASTS)}) "
                          "nor a finite numeric matrix with one row per level and a column per contrast")
    return MatrixContrasts(m, names)


class Relaxed(dict):
    """contrasts= as update() and step() pass it on: a variable the new formula lacks gets R's warning
    ("variable 'x' is absent, its contrast will be ignored") rather than the error a fit's own call gets."""


@dataclass
class Coding:
    """How a model's factors are coded and its columns named (a fit's contrasts= and names=).

    contrasts : {key: formulaic Contrasts}, the keys as R deparses them (``cyl``, ``factor(cyl)``).
    defaults : the session's contrasts when the model was fitted (unordered, ordered).
    names : "formulaic" or "R".
    strict : a contrasts= key that is not a factor of the model is an error (else R's warning).
    formula : the formula as the user wrote it (R's spellings of its calls, for R's names).
    """

    contrasts: dict[str, Contrasts] = field(default_factory=dict)
    defaults: tuple[str, str] = R_DEFAULT_CONTRASTS
    names: str = "formulaic"
    strict: bool = True
    formula: str = ""

    @classmethod
    def make(cls, contrasts: Any, names: Any, formula: Any) -> Coding:
        """The coding of a fit's arguments, checked (an OptionError names what is wrong).

        Parameters
        ----------
        contrasts : dict or None
            ``{variable: contrast}``; the variable as the formula writes it (``factor(cyl)``) or as
            the data names it (``cyl``).
        names : str
            "formulaic" (formulaic's column names) or "R" (R's coefficient names).
        formula : str
            The formula as given.

        Returns
        -------
        Coding
        """
        if names not in NAMES:
            raise OptionError(f"names must be 'formulaic' (formulaic's column names, the default) or 'R' "
                              f"(R's coefficient names, as '(Intercept)' and 'factor(cyl)6'), not {names!r}")
        if contrasts is None:
            contrasts = {}
        if not isinstance(contrasts, Mapping):
            raise OptionError(f"contrasts must be a dict {{variable: contrast}}, e.g. {{'cyl': 'contr.sum'}} "
                              f"(R's contrasts = list(cyl = \"contr.sum\")), not {type(contrasts).__name__}")
        coded: dict[str, Contrasts] = {}
        for key, value in contrasts.items():
            if not isinstance(key, str) or not key.strip():
                raise OptionError(f"contrasts= keys are variable names (as 'cyl' or 'factor(cyl)'), not {key!r}")
            coded[variable_text(key)] = as_contrast(value, f"contrasts[{key!r}]")
        return cls(coded, session_contrasts(), names, not isinstance(contrasts, Relaxed),
                   formula if isinstance(formula, str) else "")

    def spec_options(self) -> dict[str, Any]:
        """formulaic's ModelSpec settings that code the factors so (kept in the spec for predict).

        Returns
        -------
        dict
        """
        return {"materializer": RMaterializer, "materializer_params": {"coding": self}}

    def contrast_of(self, expr: str, columns: Any, ordered: bool) -> tuple[Contrasts | None, bool]:
        """The contrast for the factor ``expr`` (None: formulaic's own), and whether contrasts= named it.

        Returns
        -------
        tuple
        """
        for key, contrast in self.contrasts.items():
            if key_matches(key, expr, columns):
                return contrast, True
        name = self.defaults[1 if ordered else 0]
        return (None if name == "contr.treatment" and not ordered else CONTRASTS[name]()), False

    def check(self, encoder_state: dict[str, Any], columns: Any) -> None:
        """R's checks of contrasts= against the model's factors (after materializing).

        Parameters
        ----------
        encoder_state : dict
            The right-hand side's ModelSpec encoder_state (each factor's kind).
        columns : sequence
            The data's columns.
        """
        factors = {e: getattr(k, "value", k) for e, (k, _) in encoder_state.items()}
        for key in self.contrasts:
            kinds = {kind for e, kind in factors.items() if key_matches(key, e, columns)}
            if "categorical" in kinds:
                continue
            if kinds:
                raise OptionError(f"contrasts apply only to factors (R): {key!r} is numeric in the model; "
                                  f"make it a factor in the formula (factor({key}))")
            listing = [e for e, kind in factors.items() if kind == "categorical"]
            if self.strict:
                raise OptionError(f"contrasts= names {key!r}, which is not a variable of the model; its "
                                  f"factors are {listing or 'none'}")
            warn(f"variable '{key}' is absent, its contrast will be ignored")


def variable_text(text: str) -> str:
    """A variable's text as R deparses it, the key contrasts= and factors are compared by (as.factor: factor).

    Returns
    -------
    str
    """
    return r_text(_AS_FACTOR.sub("factor(", text.strip()))


def expression_variables(expr: str, columns: Any) -> list[str]:
    """The data columns a factor's expression reads (``cyl`` of ``factor(cyl)``).

    Returns
    -------
    list of str
    """
    cols = set(map(str, columns))
    if expr in cols:
        return [expr]
    quoted = set(re.findall(r"`([^`]*)`", expr))  # backquoted names, which Python cannot parse
    try:
        names = {str(v) for v in get_expression_variables(re.sub(r"`[^`]*`", "_", expr), {})}
    except Exception:  # not Python: the name as it stands
        names = {expr}
    return sorted((names | quoted) & cols)


def key_matches(key: str, expr: str, columns: Any) -> bool:
    """Whether a contrasts= key names a factor: its text (``factor(cyl)``) or its one variable (``cyl``).

    Returns
    -------
    bool
    """
    if variable_text(expr) == key:
        return True
    used = expression_variables(expr, columns)
    return len(used) == 1 and variable_text(used[0]) == key


def _encoder_arguments(encoder: Any) -> dict[str, Any]:
    """The contrasts= and levels= that factor() / C() gave formulaic's C encoder ({} for another encoder)."""
    try:
        free = inspect.getclosurevars(encoder).nonlocals
    except (TypeError, ValueError):
        return {}
    return dict(free) if "levels" in free else {}


def factor_codes(values: Any) -> np.ndarray | None:
    """R's integer codes (1, 2, ...; NaN for NA) of a factor: a Categorical, or factor()/C() of a column; else None.

    Levels as R's factor() orders them: the given ``levels=``, a Categorical's categories, or sorted.

    Returns
    -------
    numpy.ndarray or None
    """
    meta = getattr(values, "__formulaic_metadata__", None)
    if meta is not None and getattr(meta.kind, "value", None) == "categorical":
        levels = _encoder_arguments(meta.encoder).get("levels") if meta.encoder is not None else None
        raw = pd.Series(np.asarray(values.__wrapped__ if hasattr(values, "__wrapped__") else values))
        cat = pd.Categorical(raw, categories=levels) if levels is not None else pd.Categorical(raw)
    elif isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
    else:
        return None
    codes = np.asarray(cat.codes, dtype=float) + 1
    return np.where(codes == 0, np.nan, codes)


def _encoder(contrast: Contrasts, levels: Any) -> Any:
    """formulaic's C() encoder with another contrast (the same levels, rows and state)."""

    def encoder(values: Any, reduced_rank: bool, drop_rows: Any, encoder_state: dict, model_spec: Any) -> Any:
        series = pd.Series(values.__wrapped__ if isinstance(values, FactorValues) else values)
        series = series.drop(index=series.index[drop_rows])
        return encode_contrasts(series, contrasts=contrast, levels=levels, reduced_rank=reduced_rank,
                                _state=encoder_state, _spec=model_spec)

    return encoder


def is_ordered(values: Any) -> bool:
    """Whether evaluated factor values are an ordered factor (an ordered pandas Categorical).

    Returns
    -------
    bool
    """
    inner = getattr(values, "__wrapped__", values)
    dtype = getattr(inner, "dtype", None)
    return isinstance(dtype, pd.CategoricalDtype) and bool(dtype.ordered)


class RMaterializer(PandasMaterializer):
    """formulaic's pandas materializer, coding each categorical factor with R's contrast for it.

    Its ``coding`` parameter (a :class:`Coding`) is kept in the ModelSpec, so that predict() codes new
    rows as the fit did.
    """

    REGISTER_NAME = "torchlm_r"

    @override
    def _evaluate_factor(self, factor: Factor, spec: Any, drop_rows: set[int]) -> EvaluatedFactor:
        known = factor.expr in self.factor_cache
        evaluated = super()._evaluate_factor(factor, spec, drop_rows)
        if not known and factor.eval_method is not Factor.EvalMethod.LOOKUP:
            evaluated = self.factor_cache[factor.expr] = _logical_factor(evaluated, self.data.index)
        if known or evaluated.values.__formulaic_metadata__.kind is not Factor.Kind.CATEGORICAL:
            return evaluated
        coding: Coding = self.params.get("coding") or Coding()
        meta = evaluated.values.__formulaic_metadata__
        contrast, named = coding.contrast_of(factor.expr, self.data.columns, is_ordered(evaluated.values))
        if contrast is None:
            return evaluated
        levels = None
        if meta.encoder is not None:
            given = _encoder_arguments(meta.encoder)
            if not given and named:
                raise FormulaError(f"contrasts= cannot code {factor.expr!r}: a factor made by a function other "
                                   "than factor(), ordered(), relevel() or C()")
            if not given or (given.get("contrasts") is not None and not named):
                return evaluated  # C(x, contr.sum) in the formula: its own contrast
            levels = given["levels"]
        values = FactorValues(evaluated.values.__wrapped__, metadata=replace(meta, encoder=_encoder(contrast, levels)))
        evaluated = EvaluatedFactor(factor=evaluated.factor, values=values, variables=evaluated.variables)
        self.factor_cache[factor.expr] = evaluated
        return evaluated


def _logical_factor(evaluated: EvaluatedFactor, index: pd.Index) -> EvaluatedFactor:
    """A term whose values are logical (``I(am == 1)``) as R's model.matrix codes a logical: a factor FALSE, TRUE."""
    values = evaluated.values
    raw = getattr(values, "__wrapped__", values)
    meta = values.__formulaic_metadata__
    if meta.kind is Factor.Kind.CATEGORICAL or not pd.api.types.is_bool_dtype(getattr(raw, "dtype", None)) \
            or np.ndim(raw) != 1 or len(raw) != len(index):
        return evaluated
    logical = pd.Series(pd.Categorical(np.asarray(raw, dtype=object), categories=[False, True]),
                        index=getattr(raw, "index", index))
    meta = replace(meta, kind=Factor.Kind.CATEGORICAL, spans_intercept=True)
    return EvaluatedFactor(factor=evaluated.factor, values=FactorValues(logical, metadata=meta),
                           variables=evaluated.variables)


def ordered(x: Any, levels: Any = None) -> pd.Series:
    """R's ordered(x, levels): an ordered factor (coded by the ordered default, R's contr.poly).

    Parameters
    ----------
    x : array-like
        The values (a Categorical keeps its categories' order, other values are sorted).
    levels : sequence, optional
        The levels in their order; values outside them are missing (R's NA).

    Returns
    -------
    pandas.Series
        An ordered categorical on x's index.
    """
    values = getattr(x, "__wrapped__", x)
    if levels is None:
        cat = values if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype) \
            else pd.Categorical(np.asarray(values))
        levels = list(pd.Categorical(cat).categories)
    factor = pd.Categorical(np.asarray(values, dtype=object), categories=list(np.asarray(levels).tolist()),
                            ordered=True)
    return pd.Series(factor, index=getattr(values, "index", None))
