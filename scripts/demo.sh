#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the main demo: installs the system packages,
# fetches the real test clip, builds the plugins (release), and runs a real clip of a person
# through background blur into a recording; also renders the PNG gallery of every effect.
# Output: demo/ (carphone-blur.mp4, snapshots, gallery/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/fetch-media.sh
cargo build --release --workspace
mkdir -p demo/snapshots
export GST_PLUGIN_PATH="$root/target/release"
gst-launch-1.0 -q \
    filesrc location=media/carphone.mp4 ! decodebin ! videoconvert ! videoscale \
    ! video/x-raw,width=640,height=480,format=I420 \
    ! backgroundfx effect=blur blur-strength=50 \
    ! tee name=t \
    t. ! queue ! x264enc tune=zerolatency speed-preset=veryfast ! h264parse \
        ! mp4mux ! filesink location=demo/carphone-blur.mp4 \
    t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=1/1 ! videoconvert ! pngenc \
        ! multifilesink location=demo/snapshots/carphone-blur-%02d.png
cargo run -q --release --example gallery -- demo/gallery
ffprobe -v error -show_entries stream=codec_name,width,height,nb_frames -of compact demo/carphone-blur.mp4
echo "demo written to $root/demo (carphone-blur.mp4, snapshots/, gallery/)"
