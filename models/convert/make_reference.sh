#!/usr/bin/env bash
# Regenerate tests/data/parity/ with the reference runtime (see make_reference.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work="$here/.work"
[ -d "$work/npm/package" ] || "$here/build.sh"
[ -x "$work/refvenv/bin/python" ] || python3 -m venv "$work/refvenv"
"$work/refvenv/bin/pip" install -q -r "$here/reference-requirements.txt"
"$work/refvenv/bin/python" "$here/make_reference.py" "$work/npm/package" "$here/../../tests/data/parity"
