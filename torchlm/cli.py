"""The command line: ``python -m torchlm lm "mpg ~ wt + hp" --data mtcars`` prints R's summary of the fit.

Each subcommand is one fitter (lm, glm, glm_nb, nls) and its arguments as options; the output is what
``print(fit.summary())`` prints, or with ``--json`` a JSON object of the coefficient table (broom's column
names), the covariance matrix and the fit's statistics (broom's glance names). Errors are one line,
``torchlm: error: ...``: exit status 2 for a usage error (an option, the data's name or file), 1 for an error
of the model (formula, data, fit); warnings are ``torchlm: warning: ...`` lines on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import numpy as np
import pandas as pd
from scipy import stats

from torchlm import __version__, datasets
from torchlm.errors import DataError, OptionError, TorchlmError
from torchlm.models.families import FAMILIES
from torchlm.models.glm import glm
from torchlm.models.glm_nb import glm_nb
from torchlm.models.lm import lm
from torchlm.models.nls import ALGORITHMS, nls

PROG = "torchlm"

EPILOG = """\
data: --data is a dataset bundled with torchlm (python -c "import torchlm; print(torchlm.datasets.names())"),
a .csv file (a first column with an empty header is R's row names, as write.csv writes them) or a .parquet file.

exit status: 0 on success, 2 for a usage error (an option, the data's name or file), 1 for an error of the model
(formula, data, fit); each error is one line "torchlm: error: ..." on stderr.

examples:
  python -m torchlm lm "mpg ~ wt + hp" --data mtcars
  python -m torchlm lm "mpg ~ wt + hp" --data mtcars --vcov HC3 --json
  python -m torchlm glm "am ~ wt" --data mtcars --family binomial
  python -m torchlm glm "cbind(ncases, ncontrols) ~ agegp + alcgp" --data esoph --family "binomial(link = 'probit')"
  python -m torchlm nls "rate ~ Vm * conc / (K + conc)" --data Puromycin --subset "state == 'treated'" \\
      --start '{"Vm": 200, "K": 0.1}'
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors raised (one line, exit status 2) rather than printed with the usage."""

    def error(self, message: str) -> NoReturn:
        raise OptionError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``torchlm`` command's parser: one subcommand per fitter.

    Returns
    -------
    argparse.ArgumentParser
        ``parse_args`` gives the namespace :func:`main` runs.
    """
    parser = _Parser(prog=PROG, description="Fit a model with torchlm and print R's summary of it.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True,
                                title="models", description="lm, glm, glm_nb (glm.nb), nls; MODEL --help for each")
    specs = {"lm": ("linear model (R's lm)", ()), "glm": ("generalized linear model (R's glm)", ()),
             "glm_nb": ("negative binomial glm (MASS's glm.nb)", ("glm.nb",)),
             "nls": ("nonlinear least-squares model (R's nls)", ())}
    for name, (text, aliases) in specs.items():
        p = sub.add_parser(name, aliases=list(aliases), help=text, description=f"Fit a {text} and print its summary.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common_arguments(p, name)
        _model_arguments(p, name)
    return parser


def _common_arguments(p: argparse.ArgumentParser, model: str) -> None:
    """The options every fitter takes: formula, data, weights, subset, na_action, json."""
    p.add_argument("formula", help="the model formula, as R writes it (quote it for the shell)")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="a bundled dataset's name (mtcars), a .csv or a .parquet file")
    p.add_argument("--weights", metavar="COL", help="prior weights: a column or an expression of columns")
    p.add_argument("--subset", metavar="EXPR", help="the rows to use: R's expression (\"cyl != 4 & hp > 100\")")
    p.add_argument("--na-action", choices=("omit", "fail"), default="omit",
                   help="rows with missing values: dropped (omit, the default) or an error (fail)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object (coefficients, vcov, fit statistics) instead of the summary")
    if model != "nls":
        p.add_argument("--offset", metavar="EXPR", help="an offset: a column or an expression (\"log(t)\")")
        p.add_argument("--names", choices=("formulaic", "R"), default="formulaic",
                       help="coefficient names: formulaic's (f[T.b], the default) or R's (fb)")
        p.add_argument("--vcov", metavar="TYPE",
                       help="the covariance of the coefficients: const (the default), HC0-HC5, HAC, ...")
        p.add_argument("--cluster", metavar="COL", help="cluster column for a clustered --vcov (vcovCL)")


def _model_arguments(p: argparse.ArgumentParser, model: str) -> None:
    """The options of one fitter: glm's family, glm_nb's link, nls's start and algorithm."""
    if model == "glm":
        p.add_argument("--family", default="gaussian", metavar="FAMILY",
                       help=f"the family: {', '.join(sorted(FAMILIES))}, optionally with a link in R's spelling "
                            "(\"binomial(link = 'probit')\")")
        p.add_argument("--link", metavar="LINK", help="the family's link (logit, probit, log, identity, ...)")
    elif model == "glm_nb":
        p.add_argument("--link", default="log", metavar="LINK", help="the link: log (the default), sqrt, identity")
    elif model == "nls":
        p.add_argument("--start", required=True, metavar="JSON",
                       help="starting values as a JSON object: '{\"b1\": 1, \"b2\": 0.1}'")
        p.add_argument("--algorithm", default="default", choices=ALGORITHMS,
                       help="R's nls algorithm (lm: minpack.lm's nlsLM)")
        p.add_argument("--lower", metavar="JSON", help="lower bounds for algorithm port, a JSON object or number")
        p.add_argument("--upper", metavar="JSON", help="upper bounds for algorithm port, a JSON object or number")


def load_data(spec: str) -> Any:
    """The table ``--data`` names: a bundled dataset, a .csv file or a .parquet file.

    Parameters
    ----------
    spec : str
        A dataset name (``torchlm.datasets.names()``) or a path ending in .csv or .parquet.

    Returns
    -------
    pandas.DataFrame or pyarrow.Table
        The data (a .parquet file is read by pyarrow, or polars when pyarrow is missing).
    """
    path = pathlib.Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet", ".pq") or path.exists():
        if not path.is_file():
            raise OptionError(f"--data {spec!r}: no such file")
        if suffix == ".csv":
            return _read_csv(path)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(path)
        raise OptionError(f"--data {spec!r}: give a .csv or a .parquet file, or a bundled dataset's name")
    return datasets.load(spec)


def _read_csv(path: pathlib.Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DataError(f"cannot read {str(path)!r} as CSV: {e}") from None
    first = frame.columns[0] if len(frame.columns) else None
    if isinstance(first, str) and first.startswith("Unnamed: 0") and frame[first].is_unique:
        # R's write.csv writes the row names under an empty header
        frame = frame.set_index(first)
        frame.index.name = None
    return frame


def _read_parquet(path: pathlib.Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    try:
        if pq is not None:
            return pq.read_table(path)
        import polars as pl

        return pl.read_parquet(path)
    except ImportError:
        raise OptionError("reading a .parquet file needs pyarrow (pip install pyarrow) or polars") from None
    except Exception as e:  # pyarrow's and polars' own error types: the reason is what matters
        raise DataError(f"cannot read {str(path)!r} as Parquet: {e}") from None


def parse_family(text: str, link: str | None = None) -> Any:
    """A glm family from its name, optionally R's spelling with a link (``binomial(link = "probit")``).

    Parameters
    ----------
    text : str
        A family's name (``binomial``, ``poisson``, ``Gamma``, ...), or R's call of it with a link.
    link : str, optional
        The link (overrides one given in ``text``).

    Returns
    -------
    Family
        The family object.
    """
    m = re.fullmatch(r"\s*([A-Za-z_.]+)\s*(?:\(\s*(?:link\s*=\s*)?[\"']?([A-Za-z_.]*)[\"']?\s*\))?\s*", text)
    if m is None or m.group(1) not in FAMILIES:
        raise OptionError(f"--family {text!r}: give one of {', '.join(sorted(FAMILIES))}, "
                          "optionally with a link (\"binomial(link = 'probit')\")")
    link = link or m.group(2) or None
    family = FAMILIES[m.group(1)]
    return family(link=link) if link else family()


def _json_argument(text: str | None, option: str) -> Any:
    """A JSON option's value (``--start``, ``--lower``, ``--upper``)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise OptionError(f"{option} is not JSON ({e.msg} at character {e.pos}): "
                          "give an object such as '{\"b1\": 1, \"b2\": 0.1}'") from None


def fit_model(args: argparse.Namespace) -> Any:
    """The fit the parsed command line asks for.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`build_parser`'s ``parse_args``.

    Returns
    -------
    ModelResult
        The fitted model.
    """
    data = load_data(args.data)
    common: dict[str, Any] = dict(weights=args.weights, subset=args.subset, na_action=args.na_action)
    if args.model == "nls":
        return nls(args.formula, data, _json_argument(args.start, "--start"), algorithm=args.algorithm,
                   lower=_json_argument(args.lower, "--lower"), upper=_json_argument(args.upper, "--upper"), **common)
    common.update(offset=args.offset, names=args.names)
    if args.model == "lm":
        return lm(args.formula, data, **common)
    if args.model == "glm":
        return glm(args.formula, data, family=parse_family(args.family, args.link), **common)
    return glm_nb(args.formula, data, link=args.link, **common)


def _summary(fit: Any, args: argparse.Namespace) -> Any:
    """The fit's summary, with the covariance --vcov / --cluster ask for."""
    vcov = getattr(args, "vcov", None)
    cluster = getattr(args, "cluster", None)
    if vcov is None and cluster is None:
        return fit.summary()
    return fit.summary(vcov=vcov, cluster=cluster)


def _number(v: Any) -> Any:
    """A number for JSON: a float, an int, or None where R has NA, NaN or an infinite value."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def fit_json(fit: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The fit as a JSON-ready object: its coefficient table, covariance and statistics.

    Parameters
    ----------
    fit : ModelResult
        An lm, glm, glm_nb or nls fit.
    args : argparse.Namespace
        The command line (its --vcov and --cluster choose the covariance).

    Returns
    -------
    dict
        ``model``, ``formula``, ``call``, ``statistic`` (t or z), ``vcov_type``, ``coefficients`` (one
        object per coefficient: term, estimate, std.error, statistic, p.value; null where R prints NA),
        ``vcov`` (``terms`` and the ``matrix``, rows and columns in that order) and ``fit`` (broom's glance
        statistics of the model). NA, NaN and infinite values are null.
    """
    vcov, cluster = getattr(args, "vcov", None), getattr(args, "cluster", None)
    table = fit.coef_table() if vcov is None and cluster is None else fit.coef_table(vcov=vcov, cluster=cluster)
    V = fit.vcov() if vcov is None and cluster is None else fit.vcov(vcov, cluster=cluster)
    coefficients = [{"term": str(term), "estimate": _number(row.iloc[0]), "std.error": _number(row.iloc[1]),
                     "statistic": _number(row.iloc[2]), "p.value": _number(row.iloc[3])}
                    for term, row in table.iterrows()]
    return {
        "model": "glm_nb" if args.model == "glm.nb" else args.model,
        "formula": args.formula, "call": str(getattr(fit, "call", "")), "statistic": getattr(fit, "statistic", None),
        "vcov_type": vcov or ("CL" if cluster else "const"),
        "coefficients": coefficients,
        "vcov": {"terms": [str(c) for c in V.columns],
                 "matrix": [[_number(x) for x in row] for row in np.asarray(V, dtype=float)]},
        "fit": {k: _number(v) for k, v in fit_statistics(fit, _summary(fit, args)).items()},
    }


def fit_statistics(fit: Any, summary: Any) -> dict[str, Any]:
    """The fit's one-row statistics: broom's glance, with the F test the summary prints.

    Parameters
    ----------
    fit : ModelResult
        An lm, glm, glm_nb or nls fit.
    summary : summary object
        The fit's summary (its F statistic is the Wald F when a robust covariance was asked for).

    Returns
    -------
    dict
        ``fit.glance()``'s columns (lm: r.squared, adj.r.squared, sigma, statistic, p.value, df, logLik, AIC, BIC,
        deviance, df.residual, nobs; glm and glm_nb: null.deviance, df.null, logLik, AIC, BIC, deviance,
        df.residual, nobs; nls: sigma, isConv, finTol, logLik, ...), lm's statistic and p.value those of the
        summary's F (the Wald F under --vcov); glm's dispersion, iterations and converged; glm_nb's theta and
        SE.theta; and nobs.deleted,
        the rows dropped for missing values.
    """
    glance = fit.glance()
    out = {str(k): glance[k].iloc[0] for k in glance.columns}  # column by column: a row would make ints floats
    f = getattr(summary, "fstatistic", None)
    if "r.squared" in out and f is not None:  # lm: the F test the summary prints (robust: Wald's)
        out.update({"statistic": f.value, "p.value": stats.f.sf(f.value, f.numdf, f.dendf), "df": f.numdf})
    if hasattr(fit, "null_deviance"):
        out.update({"dispersion": fit.dispersion, "iterations": fit.iterations, "converged": fit.converged})
    if hasattr(fit, "theta"):  # glm_nb: MASS's theta and its standard error, as summary.negbin prints them
        out.update({"theta": fit.theta, "SE.theta": getattr(fit, "se_theta", None)})
    out["nobs.deleted"] = getattr(fit, "n_dropped_na", 0)
    return out


def _show_warning(stderr: TextIO) -> Callable[..., None]:
    """warnings.showwarning for the command line: one line per warning, ``torchlm: warning: ...``."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        print(f"{PROG}: warning: {message}", file=stderr)
    return show


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the ``torchlm`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program's name (default ``sys.argv[1:]``).
    stdout, stderr : file, optional
        Where the output and the errors and warnings go (default the process's).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage error, 1 for an error of the model.
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    shown = warnings.showwarning
    # a module attribute, not the filter list: restored below, as the command line's own display of warnings
    warnings.showwarning = _show_warning(err)
    try:
        with contextlib.redirect_stdout(out):  # --help and --version print to sys.stdout
            args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        fit = fit_model(args)
        if args.json:
            print(json.dumps(fit_json(fit, args), indent=2, allow_nan=False), file=out)
        else:
            print(_summary(fit, args), file=out)
        return 0
    except SystemExit as e:  # --help and --version print and exit 0
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:  # the reader left (| head): nothing more to say, and nothing to flush at exit
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OptionError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=err)
        return 2
    except TorchlmError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=err)
        return 1
    except Exception as e:  # a failure below torchlm's own checks: still one line, never a traceback
        print(f"{PROG}: error: {type(e).__name__}: {_one_line(e)}", file=err)
        return 1
    finally:
        warnings.showwarning = shown


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
