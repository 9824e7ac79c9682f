#!/usr/bin/env bash
# Benchmark run for CI: backgroundfx fps per core vs the Python MediaPipe-model + OpenCV
# baseline, in one run on the same machine, as JSON (stdout and target/bench-backgroundfx.json).
#   benches/run.sh [seconds-per-case] [sizes]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-2}
sizes=${2:-640x360,1280x720,1920x1080}
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q ai-edge-litert==2.3.0 opencv-python-headless numpy
[ -d models/convert/.work/npm/package ] || models/convert/build.sh >/dev/null
ours=$(cargo bench -q --bench fps -- --seconds "$seconds" --sizes "$sizes")
baseline=$("$venv/bin/python" benches/baseline_mediapipe_opencv.py "$seconds" "$sizes" \
    models/convert/.work/npm/package/selfie_segmentation_landscape.tflite)
python3 - "$ours" "$baseline" <<'PY' | tee target/bench-backgroundfx.json
import json, sys
ours, baseline = json.loads(sys.argv[1]), json.loads(sys.argv[2])
base = {(r["width"], r["height"], r["effect"]): r["fps_per_core"] for r in baseline["results"]}
for r in ours["results"]:
    b = base.get((r["width"], r["height"], r["effect"]))
    r["baseline_fps_per_core"] = b
    r["speedup_vs_baseline"] = round(r["fps_per_core"] / b, 2) if b else None
ours["baseline"] = baseline["baseline"]
print(json.dumps(ours, indent=2))
PY
