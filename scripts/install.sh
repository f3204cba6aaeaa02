#!/usr/bin/env bash
# Install torchlm into ./.venv. `bash scripts/install.sh test` adds the test extras, `docs` the docs site's
# (mkdocs), `plot` matplotlib, `dask` Dask DataFrame input (dask, distributed, pyarrow); several as `test,docs`.
# PyTorch 2.13.0 (CPU build, from this machine's local disk) is installed first when torch is
# missing: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -c "import torch" 2>/dev/null || $py -m pip install -q torch==2.13.0
extra=""
if [ -n "${1:-}" ]; then
    for e in ${1//,/ }; do
        case "$e" in test|docs|plot|dask) ;; *) echo "install.sh: unknown extra '$e' (test, docs, plot, dask)" >&2; exit 2 ;; esac
    done
    extra="[$1]"
fi
$py -m pip install -q -e ".${extra}"
