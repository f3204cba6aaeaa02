"""NIST StRD nonlinear regression: correct digits of tl.nls beside R's nls() and minpack.lm's nlsLM() (run by hand).

    python benchmarks/nist_nonlinear.py            # the table, markdown, on stdout
    python benchmarks/nist_nonlinear.py --json F   # also the digits as JSON

For each of the 27 datasets and both NIST starts: the log relative error (LRE, correct significant digits,
capped at 11, floored at 0, 0 for a failed fit) of the estimates and of the standard errors against NIST's
certified values, the minimum over the parameters, as "estimates/SEs". R's columns come from
benchmarks/nist_nonlinear_r.json, written by benchmarks/nist_nonlinear.R (R 4.2.2, minpack.lm 1.2-3, both
with their default settings). torchlm's columns:

- ``default``: tl.nls(algorithm="default"): R's Gauss-Newton and R's stopping rule; where R's iteration
  stops without converging, the Levenberg-Marquardt fallback (marked ``*``), iterated to the optimum;
- ``exact``: the same with exact=True (on from R's stopping point to the optimum);
- ``lm``: tl.nls(algorithm="lm"), minpack.lm's nlsLM with defaults (maxiter 50).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import warnings

import pandas as pd

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "fixtures" / "nist_nonlinear"
sys.path.insert(0, str(HERE.parent))

import torchlm as tl  # noqa: E402


def lre(value: float, certified: float) -> float:
    """Correct significant digits of value against certified (NIST's LRE), in [0, 11]."""
    if value is None or not math.isfinite(value):
        return 0.0
    if value == certified:
        return 11.0
    return max(0.0, min(11.0, -math.log10(abs(value - certified) / abs(certified))))


def digits(coef: list[float] | None, se: list[float] | None, meta: dict) -> tuple[float, float]:
    """(min LRE of the estimates, min LRE of the SEs); (0, 0) without estimates."""
    if coef is None:
        return 0.0, 0.0
    a = min(lre(v, c) for v, c in zip(coef, meta["coef"]))
    b = min(lre(v, c) for v, c in zip(se, meta["se"])) if se is not None else 0.0
    return a, b


def torchlm_fit(meta: dict, data: pd.DataFrame, start: list[float], **kw) -> tuple[float, float, str]:
    """tl.nls on one dataset and start: (digits of estimates, digits of SEs, the algorithm used)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = tl.nls(meta["r_formula"], data, dict(zip(meta["param_names"], start)), **kw)
        except tl.TorchlmError:
            return 0.0, 0.0, "failed"
    if not fit.converged:
        return 0.0, 0.0, "failed"
    a, b = digits(list(fit.coef()), list(fit.std_errors()), meta)
    return a, b, fit.algorithm_used + ("*" if fit.outcome.extra.get("fallback") else "")


def table() -> tuple[list[dict], str]:
    """Every dataset and start: torchlm's and R's digits; and the markdown table."""
    r = json.loads((HERE / "nist_nonlinear_r.json").read_text())
    rows = []
    for path in sorted(DATA.glob("*.json")):
        meta = json.loads(path.read_text())
        data = pd.read_csv(DATA / f"{meta['name']}.csv")
        for s in ("start1", "start2"):
            row = {"dataset": meta["name"], "difficulty": meta["difficulty"], "start": s[-1]}
            row["default"] = torchlm_fit(meta, data, meta[s])
            row["exact"] = torchlm_fit(meta, data, meta[s], exact=True)
            row["lm"] = torchlm_fit(meta, data, meta[s], algorithm="lm")
            for k in ("nls", "nlsLM"):
                res = r[meta["name"]][s][k]
                ok = res["ok"] and res.get("coef") is not None
                row[k] = digits(res["coef"], res["se"], meta) if ok else (0.0, 0.0)
            rows.append(row)
    return rows, markdown(rows)


def _cell(v: tuple) -> str:
    return f"{v[0]:.1f}/{v[1]:.1f}" + ("*" if len(v) > 2 and v[2].endswith("*") else "")


def markdown(rows: list[dict]) -> str:
    """The table: dataset, start, then estimates/SEs digits per column; and the counts of solved fits."""
    head = ("| dataset | difficulty | start | torchlm default | torchlm exact | torchlm lm | R nls | R nlsLM |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for row in rows:
        lines.append(f"| {row['dataset']} | {row['difficulty']} | {row['start']} | {_cell(row['default'])} | "
                     f"{_cell(row['exact'])} | {_cell(row['lm'])} | {_cell(row['nls'])} | {_cell(row['nlsLM'])} |")
    cols = ("default", "exact", "lm", "nls", "nlsLM")
    solved = {c: sum(row[c][0] >= 4 for row in rows) for c in cols}
    least = {c: min(row[c][0] for row in rows) for c in cols}
    least_se = {c: min(row[c][1] for row in rows) for c in cols}
    lines.append("| **solved (>= 4 digits)** | | | " + " | ".join(f"{solved[c]}/{len(rows)}" for c in cols) + " |")
    lines.append("| **fewest digits** | | | " + " | ".join(f"{least[c]:.1f}/{least_se[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the digits to this JSON file")
    args = parser.parse_args()
    rows, text = table()
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
