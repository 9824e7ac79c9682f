#!/usr/bin/env bash
# Installs the system packages gst-vcc builds, tests and demos with (Debian 12). Idempotent.
set -euo pipefail
packages=(
    pkg-config
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-nice
    ffmpeg age minisign python3-venv python3-pip
    # the real WebRTC peer of the end-to-end test (driven by playwright-core from npm)
    chromium
)
# The machines ship Node.js 20 and npm; a bare Debian 12 gets Debian's.
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# The real S3 object store of the archive tests and the demo (scripts/rgw.sh): Ceph's monitor,
# OSD and RADOS Gateway, without their recommends (no mgr, no systemd units started).
ceph_packages=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl)
missing_ceph=()
for package in "${ceph_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing_ceph+=("$package")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_ceph[@]} -gt 0 ]; then
    $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
if [ ${#missing_ceph[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing_ceph[@]}"
fi
