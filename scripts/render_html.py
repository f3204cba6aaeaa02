"""Render torchlm's notebook HTML in a real browser (headless Chromium) to the PNGs in docs/images/.

    apt-get install -y chromium        # Debian's package
    .venv/bin/python scripts/render_html.py [OUTDIR]

Each example (a summary, anova tables, a model table) is written as an HTML page; Chromium loads it once
to measure the content (--dump-dom after a script writes the size into the page) and once more to take a
screenshot of exactly that size. What the PNGs show is what a notebook shows: the ``_repr_html_`` output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torchlm as tl

ROOT = Path(__file__).resolve().parents[1]
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; padding: 12px; display: inline-block; background: #fff; color: #222;
       font-family: "DejaVu Sans", sans-serif; font-size: 14px; }}
pre {{ font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }}
</style></head><body>{body}
<script>const r = document.body.getBoundingClientRect();
document.body.setAttribute("data-size", Math.ceil(r.width) + "x" + Math.ceil(r.height));</script></body></html>"""
SCALE = 2  # device pixels per CSS pixel: sharp text on high-density screens


def examples() -> dict[str, str]:
    """The HTML of each example, by the PNG's name."""
    mtcars = tl.datasets.load("mtcars")
    lm1 = tl.lm("mpg ~ wt", mtcars, names="R")
    lm2 = tl.lm("mpg ~ wt + hp", mtcars, names="R")
    lm3 = tl.lm("mpg ~ wt + hp + factor(cyl)", mtcars, names="R")
    logit = tl.glm("am ~ wt + hp", mtcars, family="binomial", names="R")
    return {
        "html_summary_lm": lm2.summary()._repr_html_(),
        "html_summary_glm": logit.summary()._repr_html_(),
        "html_anova": tl.anova(lm1, lm2, lm3)._repr_html_(),
        "html_drop1": tl.drop1(logit, test="Chisq")._repr_html_(),
        "html_etable": tl.etable([lm1, lm2, lm3, logit], "html", vcov=[None, "HC3", None, None]),
    }


def chromium() -> str:
    """The browser's command."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("headless Chromium is needed: apt-get install -y chromium")


def run(browser: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def render(browser: str, body: str, png: Path, work: Path) -> None:
    page = work / (png.stem + ".html")
    page.write_text(PAGE.format(body=body), encoding="utf-8")
    dom = run(browser, "--dump-dom", page.as_uri())
    size = re.search(r'data-size="(\d+)x(\d+)"', dom)
    if size is None:
        sys.exit(f"could not measure {page}")
    w, h = int(size.group(1)), int(size.group(2))
    run(browser, f"--window-size={w},{h}", f"--force-device-scale-factor={SCALE}", f"--screenshot={png}",
        page.as_uri())


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in examples().items():
            render(browser, body, out / f"{name}.png", Path(tmp))
            print(out / f"{name}.png")


if __name__ == "__main__":
    main()
