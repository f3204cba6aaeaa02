"""Render the pictures of docs/plots.md, run by hand: fit.plot() (R's plot.lm) and tl.coefplot().

    .venv/bin/python scripts/render_plots.py        # writes docs/images/plot_*.png and coefplot.png
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import torchlm as tl  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "images"


def main() -> None:
    mtcars = tl.datasets.load("mtcars")
    fit = tl.lm("mpg ~ wt + hp", data=mtcars)
    logit = tl.glm("am ~ hp + wt", data=mtcars, family="binomial")
    shots = {
        "plot_lm.png": fit.plot(),
        "plot_lm_456.png": fit.plot(which=(4, 5, 6, 3)),
        "plot_glm.png": logit.plot(),
        "coefplot.png": tl.coefplot({"lm: mpg ~ wt + hp": fit, "lm: mpg ~ wt + hp + qsec":
                                     tl.lm("mpg ~ wt + hp + qsec", data=mtcars)}, drop_intercept=True),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fig in shots.items():
        fig.savefig(OUT / name, dpi=72)
        plt.close(fig)
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
