#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the main demo: installs the system packages,
# fetches the real test clip, builds the plugins (release), and runs a real clip of a person
# through background blur into an age-encrypted, minisign-signed recording, which it then
# verifies and decrypts with the standard tools; records a call with a PCI pause; also renders
# the PNG gallery of every effect; then archives the call to a real S3 object store (a local
# Ceph RADOS Gateway, started here and stopped at the end) under Object Lock, indexes and
# searches it, puts it under legal hold, exports an excerpt with a redaction, erases a second
# call's customer by destroying their key (the archived objects stay, undecryptable), and
# checks the audit log of all that.
# Output: demo/ (carphone-blur.mp4 and its manifest, pci-call.mp4.age, snapshots, gallery/,
# index.sqlite, audit.jsonl, pci-call-excerpt.mp4).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/fetch-media.sh
cargo build --release --workspace
mkdir -p demo/snapshots
export GST_PLUGIN_PATH="$root/target/release"
# Keys: an age identity (only the public part is given to the recorder) and a minisign
# signing key pair. A real deployment keeps key.txt off the media server.
[ -s demo/keys/key.txt ] || target/release/vcc-vault keygen --out-dir demo/keys >/dev/null
rm -f demo/carphone-blur.mp4.age demo/carphone-blur.mp4.age.minisig demo/carphone-blur.mp4 demo/carphone-blur.json*
gst-launch-1.0 -q \
    filesrc location=media/carphone.mp4 ! decodebin ! videoconvert ! videoscale \
    ! video/x-raw,width=640,height=480,format=I420 \
    ! backgroundfx effect=blur blur-strength=50 \
    ! tee name=t \
    t. ! queue ! rec.video_0 \
    recordmux name=rec call-id=demo-carphone agent-id=demo-agent manifest-location=demo/carphone-blur.json \
        ! encryptedfilesink location=demo/carphone-blur.mp4.age \
            recipients-file=demo/keys/recipient.txt signing-key=demo/keys/vcc.key \
            manifest=demo/carphone-blur.json \
    t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=1/1 ! videoconvert ! pngenc \
        ! multifilesink location=demo/snapshots/carphone-blur-%02d.png
cargo run -q --release --example gallery -- demo/gallery
# What an auditor does with standard tools: check the signature, decrypt, inspect.
minisign -V -p demo/keys/vcc.pub -m demo/carphone-blur.mp4.age
age -d -i demo/keys/key.txt -o demo/carphone-blur.mp4 demo/carphone-blur.mp4.age
ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of compact demo/carphone-blur.mp4
# PCI: a call recorded with a pause while the customer reads a card number; the manifest
# (demo/pci-call.mp4.age.json, signed too) lists the pause and the recording's SHA-256.
rm -f demo/pci-call.mp4.age*
cargo run -q --release --example record_call -- --input media/carphone.mp4 --audio tone \
    --seconds 4 --pause-at 1.5 --resume-at 2.5 --call-id demo-pci \
    --recipients-file demo/keys/recipient.txt --signing-key demo/keys/vcc.key \
    --output demo/pci-call.mp4.age >/dev/null
minisign -V -p demo/keys/vcc.pub -m demo/pci-call.mp4.age.json
# A call of a customer who will ask to be forgotten: encrypted only to that customer's own key,
# kept in demo/key-vault sealed to the organisation's key (erased by demo-archive.sh).
rm -rf demo/key-vault demo/forget-call.mp4*
cargo run -q --release --example record_call -- --input media/carphone.mp4 --audio tone \
    --seconds 3 --call-id demo-forget --customer CUST-DEMO-42 --key-vault demo/key-vault \
    --recipients-file demo/keys/recipient.txt --signing-key demo/keys/vcc.key \
    --output demo/forget-call.mp4.age >/dev/null
scripts/demo-archive.sh target/release/vcc-vault
echo "demo written to $root/demo (carphone-blur.mp4.age + .minisig + .json manifest, decrypted carphone-blur.mp4, pci-call.mp4.age with its manifest, snapshots/, gallery/, index.sqlite, audit.jsonl, forget-call.mp4.age whose customer key was erased)"
