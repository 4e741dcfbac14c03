#!/usr/bin/env bash
# A Python virtual environment with py_ecc (the Ethereum Foundation's BLS in
# pure Python), for checking deposit data independently of dvnode. Prints the
# environment's python. Created once under target/ (or $DV_PY_ECC_VENV).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DV_PY_ECC_VENV:-$here/target/py-ecc-venv}"
if ! "$venv/bin/python" -c "import py_ecc" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "py_ecc==8.0.0" >&2
fi
echo "$venv/bin/python"
