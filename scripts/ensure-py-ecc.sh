#!/usr/bin/env bash
# A Python with py_ecc (the Ethereum Foundation's BLS in pure Python), for
# checking deposit data independently of dvnode. Prints the path of that
# python. Made once under target/ (or $DV_PY_ECC_VENV): a virtual
# environment, or where python3 has no venv module, a pip --target
# directory behind a small wrapper.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${DV_PY_ECC_VENV:-$here/target/py-ecc-venv}"
if "$dir/bin/python" -c "import py_ecc" 2>/dev/null; then
    echo "$dir/bin/python"
    exit 0
fi
if python3 -m venv "$dir" >&2 2>/dev/null && "$dir/bin/pip" install --quiet "py_ecc==8.0.0" >&2; then
    echo "$dir/bin/python"
    exit 0
fi
mkdir -p "$dir/bin"
python3 -m pip install --quiet --target "$dir/lib" "py_ecc==8.0.0" >&2
cat > "$dir/bin/python" <<WRAP
#!/bin/sh
PYTHONPATH="$dir/lib\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 "\$@"
WRAP
chmod +x "$dir/bin/python"
"$dir/bin/python" -c "import py_ecc"
echo "$dir/bin/python"
