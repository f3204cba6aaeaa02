"""The command line, ``python -m torchlm``: its output is print(fit.summary()) of the same call in Python, its --json
the coefficient table, vcov and broom's glance statistics; errors are one line with exit status 2 (usage) or 1 (model).

Reference: tests/fixtures/cli/cli.json, written by make_cli.R (R 4.2.2, sandwich for HC3): R's summary text after the
Call line, coefficient tables, covariances and glance statistics of the same fits.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support import FIXTURES

import torchlm as tl
from torchlm.cli import EPILOG, main

R = json.loads((FIXTURES / "cli" / "cli.json").read_text())


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def mt() -> pd.DataFrame:
    return tl.datasets.load("mtcars")


def after_call(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[lines.index("", 1):]


def test_lm_prints_the_summary(mt):
    rc, out, err = run("lm", "mpg ~ wt + hp", "--data", "mtcars")
    assert rc == 0 and err == ""
    assert out == str(tl.lm("mpg ~ wt + hp", mt).summary()) + "\n"
    rc, out, _ = run("lm", "mpg ~ wt + hp", "--data", "mtcars", "--names", "R")
    assert after_call(out)[:-1] == R["lm"]["summary_after_call"]  # print's newline after R's text


def test_glm_prints_the_summary(mt):
    rc, out, _ = run("glm", "am ~ wt", "--data", "mtcars", "--family", "binomial", "--names", "R")
    assert rc == 0
    assert out == str(tl.glm("am ~ wt", mt, family="binomial", names="R").summary()) + "\n"
    assert after_call(out)[:-1] == R["glm"]["summary_after_call"]
    probit = tl.glm("am ~ wt", mt, family=tl.families.Binomial(link="probit"))
    for family in (["--family", "binomial", "--link", "probit"], ["--family", "binomial(link = \"probit\")"]):
        assert run("glm", "am ~ wt", "--data", "mtcars", *family)[1] == str(probit.summary()) + "\n"


def test_options_are_the_fitters_arguments(mt):
    args = ["lm", "mpg ~ wt + factor(cyl)", "--data", "mtcars", "--weights", "qsec", "--subset", "hp > 90",
            "--vcov", "HC3", "--names", "R"]
    fit = tl.lm("mpg ~ wt + factor(cyl)", mt, weights="qsec", subset="hp > 90", names="R")
    assert run(*args)[1] == str(fit.summary(vcov="HC3")) + "\n"
    fit = tl.glm("carb ~ wt", mt, family="poisson", offset="log(hp)")
    assert run("glm", "carb ~ wt", "--data", "mtcars", "--family", "poisson", "--offset", "log(hp)")[1] == \
        str(fit.summary()) + "\n"
    assert run("lm", "mpg ~ wt", "--data", "mtcars", "--vcov", "HC1", "--cluster", "cyl")[1] == \
        str(tl.lm("mpg ~ wt", mt).summary(vcov="HC1", cluster="cyl")) + "\n"


def test_nls_and_glm_nb(mt):
    rc, out, _ = run("nls", "mpg ~ a * exp(k * wt)", "--data", "mtcars", "--start", '{"a": 40, "k": -0.3}')
    fit = tl.nls("mpg ~ a * exp(k * wt)", mt, start={"a": 40, "k": -0.3})
    assert rc == 0 and out == str(fit.summary()) + "\n"
    # R's formula names its deriv() function; every other line is R's (exact gradient: R's iterations)
    def rest(lines):
        return [x for x in lines if not x.startswith("Formula")]

    assert rest(out.split("\n")[:-1]) == rest(R["nls"]["summary_after_call"])
    # R's warning for bounds without algorithm port, as a warning line; the bounds then work with port
    rc, out, err = run("nls", "mpg ~ a * exp(k * wt)", "--data", "mtcars", "--start", '{"a": 40, "k": -0.3}',
                       "--lower", '{"a": 0, "k": -1}')
    assert rc == 0 and err == 'torchlm: warning: upper and lower bounds ignored unless algorithm = "port"\n'
    rc, out, err = run("nls", "mpg ~ a * exp(k * wt)", "--data", "mtcars", "--start", '{"a": 40, "k": -0.3}',
                       "--algorithm", "port", "--lower", '{"a": 0, "k": -1}', "--upper", '{"a": 45, "k": 0}')
    port = tl.nls("mpg ~ a * exp(k * wt)", mt, start={"a": 40, "k": -0.3}, algorithm="port", lower={"a": 0, "k": -1},
                  upper={"a": 45, "k": 0})
    assert rc == 0 and out == str(port.summary()) + "\n"
    rc, out, err = run("glm.nb", "carb ~ wt", "--data", "mtcars")
    with tl.errors.silenced():
        assert rc == 0 and out == str(tl.glm_nb("carb ~ wt", mt).summary()) + "\n"
    assert err.startswith("torchlm: warning: ")  # MASS's theta.ml warning, one line each
    _, out, _ = run("glm_nb", "Days ~ Eth + Sex", "--data", "quine", "--json")
    nb = tl.glm_nb("Days ~ Eth + Sex", tl.datasets.load("quine"))
    got = json.loads(out)["fit"]
    assert got["theta"] == nb.theta and got["SE.theta"] == nb.se_theta and got["AIC"] == nb.aic()


@pytest.mark.parametrize("case", ["lm", "lm_hc3", "glm", "nls"])
def test_json_is_rs_numbers(case):
    argv = {"lm": ["lm", "mpg ~ wt + hp"], "lm_hc3": ["lm", "mpg ~ wt + hp", "--vcov", "HC3"],
            "glm": ["glm", "am ~ wt", "--family", "binomial"],
            "nls": ["nls", "mpg ~ a * exp(k * wt)", "--start", '{"a": 40, "k": -0.3}']}[case]
    rc, out, _ = run(*argv, "--data", "mtcars", "--json", *([] if case == "nls" else ["--names", "R"]))
    assert rc == 0
    got, r = json.loads(out), R[case]
    assert [c["term"] for c in got["coefficients"]] == (["a", "k"] if case == "nls" else r["terms"])
    table = [[c[k] for c in got["coefficients"]] for k in ("estimate", "std.error", "statistic", "p.value")]
    rtol = 1e-9
    np.testing.assert_allclose(np.ravel(table), r["table"], rtol=rtol)
    assert got["vcov"]["terms"] == [c["term"] for c in got["coefficients"]]
    np.testing.assert_allclose(np.ravel(got["vcov"]["matrix"], order="F"), r["vcov"], rtol=rtol, atol=1e-15)
    for k, v in r["glance"].items():
        np.testing.assert_allclose(float(got["fit"][k]), v, rtol=1e-6 if k == "finTol" else rtol, err_msg=k)
    assert got["model"] == argv[0] and got["vcov_type"] == ("HC3" if case == "lm_hc3" else "const")


def test_json_holds_the_api_values(mt):
    _, out, _ = run("lm", "mpg ~ wt + hp", "--data", "mtcars", "--json", "--vcov", "HC3")
    got = json.loads(out)
    fit = tl.lm("mpg ~ wt + hp", mt)
    table = fit.coef_table(vcov="HC3")
    assert [c["estimate"] for c in got["coefficients"]] == table.iloc[:, 0].tolist()
    assert [c["p.value"] for c in got["coefficients"]] == table.iloc[:, 3].tolist()
    assert got["vcov"]["matrix"] == fit.vcov("HC3").to_numpy().tolist()
    assert got["call"] == fit.call and got["statistic"] == "t" and got["fit"]["nobs.deleted"] == 0
    assert got["fit"]["nobs"] == 32 and isinstance(got["fit"]["nobs"], int)  # counts stay integers
    # R's NA is JSON's null: an aliased coefficient
    _, out, _ = run("lm", "mpg ~ wt + I(2 * wt)", "--data", "mtcars", "--json")
    assert [c["estimate"] is None for c in json.loads(out)["coefficients"]] == [False, False, True]


def test_csv_and_parquet_files(mt, tmp_path):
    fit = tl.lm("mpg ~ wt + hp", mt)
    csv = tmp_path / "cars.csv"
    mt.to_csv(csv)  # R's write.csv layout: the row names under an empty header
    assert run("lm", "mpg ~ wt + hp", "--data", str(csv))[1] == str(fit.summary()) + "\n"
    parquet = tmp_path / "cars.parquet"
    pq.write_table(pa.Table.from_pandas(mt, preserve_index=False), parquet)
    assert run("lm", "mpg ~ wt + hp", "--data", str(parquet))[1] == str(fit.summary()) + "\n"
    assert run("lm", "mpg ~ wt", "--data", str(tmp_path / "none.csv"))[0] == 2
    (tmp_path / "bad.txt").write_text("x")
    rc, _, err = run("lm", "mpg ~ wt", "--data", str(tmp_path / "bad.txt"))
    assert rc == 2 and ".csv or a .parquet" in err


USAGE = {
    "no model": [],
    "unknown model": ["frob"],
    "no data": ["lm", "mpg ~ wt"],
    "unknown option": ["lm", "mpg ~ wt", "--data", "mtcars", "--nope"],
    "unknown dataset": ["lm", "mpg ~ wt", "--data", "mtcarz"],
    "vcov type": ["lm", "mpg ~ wt", "--data", "mtcars", "--vcov", "HC9"],
    "family": ["glm", "am ~ wt", "--data", "mtcars", "--family", "binomail"],
    "start not JSON": ["nls", "mpg ~ a * exp(k * wt)", "--data", "mtcars", "--start", "{a: 1}"],
    "algorithm": ["nls", "mpg ~ a * exp(k * wt)", "--data", "mtcars", "--start", '{"a": 40, "k": -0.3}',
                  "--algorithm", "plinear"],
    "names": ["lm", "mpg ~ wt", "--data", "mtcars", "--names", "S"],
}
MODEL = {
    "unknown column": ["lm", "mpg ~ nope", "--data", "mtcars"],
    "formula syntax": ["lm", "mpg ~ wt +", "--data", "mtcars"],
    "subset": ["lm", "mpg ~ wt", "--data", "mtcars", "--subset", "nope > 1"],
    "factor response": ["glm", "mpg ~ wt", "--data", "iris", "--family", "poisson"],
}


@pytest.mark.parametrize("case", sorted(USAGE) + sorted(MODEL))
def test_errors_are_one_line(case):
    rc, out, err = run(*(USAGE[case] if case in USAGE else MODEL[case]))
    assert rc == (2 if case in USAGE else 1)
    assert out == "" and err.startswith("torchlm: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_help_and_version():
    rc, out, _ = run("--help")
    assert rc == 0 and all(m in out for m in ("lm", "glm", "glm_nb", "nls", "exit status", "--data"))
    for model, options in (("lm", ["--data", "--weights", "--subset", "--offset", "--vcov", "--cluster", "--names",
                                   "--json", "--na-action"]),
                           ("glm", ["--family", "--link"]), ("nls", ["--start", "--algorithm", "--lower", "--upper"])):
        rc, out, _ = run(model, "--help")
        assert rc == 0 and all(o in out for o in options), model
    assert run("--version") == (0, f"torchlm {tl.__version__}\n", "")


def test_python_m_torchlm(mt):
    """Once through a real process: python -m torchlm, its stdout, its exit status."""
    done = subprocess.run([sys.executable, "-m", "torchlm", "lm", "mpg ~ wt + hp", "--data", "mtcars"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == str(tl.lm("mpg ~ wt + hp", mt).summary()) + "\n"
    done = subprocess.run([sys.executable, "-m", "torchlm", "lm", "mpg ~ wt"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr == "torchlm: error: the following arguments are required: --data\n"


def test_help_examples_run():
    """Every example --help shows runs (through the shell's quoting) and exits 0."""
    text = EPILOG.split("examples:\n", 1)[1].replace("\\\n", " ")
    commands = [shlex.split(line)[3:] for line in text.strip().split("\n")]
    assert len(commands) >= 5
    for argv in commands:
        rc, out, err = run(*argv)
        assert rc == 0 and (out.startswith("\n") or out.startswith("{")), (argv, err)
