#!/usr/bin/env bash
# Reproducibly rebuild models/*.onnx from MediaPipe's npm package.
#
#   models/convert/build.sh           fetch, convert, verify SHA-256 against models/SHA256SUMS
#   models/convert/build.sh --update  same, but rewrite SHA256SUMS (after a deliberate converter change)
#
# Needs: node/npm, python3 (venv + pip). Network: the npm registry and PyPI only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
models=$(dirname "$here")
work="$here/.work"
package="@mediapipe/selfie_segmentation@0.1.1675465747"
# sha512 integrity of that tarball as published on the npm registry
integrity="sha512-IxYxNhwE5VwOm52L1yoFWYLP7q9Pd+NJjzOC5tlepfvEGaY3o9hslhUrx9BgseqdfZtKSDtd/4NfCSMjNzQalA=="

mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install -q -r "$here/requirements.txt"

rm -rf "$work/npm" && mkdir -p "$work/npm"
(cd "$work/npm" && npm pack --silent --json "$package" > pack.json)
grep -q "\"integrity\": \"$integrity" "$work/npm/pack.json" || {
    echo "npm tarball integrity mismatch for $package" >&2
    exit 1
}
tar -xzf "$work"/npm/*.tgz -C "$work/npm"

for name in selfie_segmentation_landscape selfie_segmentation; do
    "$work/venv/bin/python" "$here/tflite2onnx.py" --fast-resize --conv-before-resize \
        "$work/npm/package/$name.tflite" "$models/$name.onnx"
done
cp "$work/npm/package/package.json" "$work/npm-package.json"

cd "$models"
if [ "${1:-}" = "--update" ]; then
    sha256sum selfie_segmentation_landscape.onnx selfie_segmentation.onnx > SHA256SUMS
    echo "updated models/SHA256SUMS"
else
    sha256sum -c SHA256SUMS
fi
