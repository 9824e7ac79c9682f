#!/usr/bin/env bash
# A real S3 object store for the archive tests and the demo: single-node Ceph 16 (Debian
# bookworm) + RADOS Gateway (beast) on 127.0.0.1:$RGW_PORT, no systemd, one memstore OSD (data
# in RAM: gone at stop). From ../shared/tools/ceph-rgw-single-node.sh (verified recipe and RGW's
# quirks: crates/lifecycle/README.md); scripts/install-deps.sh installs the packages.
# Usage: scripts/rgw.sh start|stop     env: CEPH_DIR RGW_PORT MON_PORT
# The S3 user is testkey/testsecret. Every daemon's PID is in $CEPH_DIR/run/*.pid; stop kills them.
# CEPH_DIR defaults to RAM (/dev/shm) like the OSD's data: the monitor refuses to start when its
# file system is nearly full (exit 28, seen in CI after a cold build), whatever the store holds.
set -Eeuo pipefail
if [ -n "${CEPH_DIR:-}" ]; then D=$CEPH_DIR
elif [ -d /dev/shm ] && [ -w /dev/shm ]; then D=/dev/shm/gst-vcc-ceph
else D=${TMPDIR:-/tmp}/gst-vcc-ceph; fi
RGW_PORT=${RGW_PORT:-7480}; MON_PORT=${MON_PORT:-46789}
# A failing step says which it was, with the daemons' last log lines and the free space.
failed() {
  local rc=$?; echo "rgw.sh: '$BASH_COMMAND' failed (exit $rc) in $D" >&2
  if [ "$rc" -eq 28 ]; then echo "rgw.sh: exit 28 is ENOSPC: the file system of $D is (nearly) full" >&2; fi
  for log in "$D"/log/*.log; do [ -f "$log" ] || continue; echo "--- last lines of $log" >&2
    tail -n 12 "$log" >&2; done
  df -h "$D" >&2 2>/dev/null || true; exit "$rc"
}
C=$D/ceph.conf; K=$D/keyring
alive() { [ -n "$(ps -o stat= -p "$1" 2>/dev/null | grep -v Z)" ]; }   # zombies count as dead
stop() {
  for p in "$D"/run/*.pid; do [ -f "$p" ] || continue; pid=$(cat "$p"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 10); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true; rm -f "$p"; done
}
start() {
  trap failed ERR
  stop; rm -rf "$D"; mkdir -p "$D"/{run,log,mon/a,osd/0,rgw}; fsid=$(uuidgen)
  cat > "$C" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
keyring = $K
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon warn on msgr2 not enabled = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
paxos min wait = 0.01
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon data = $D/mon/\$id
osd data = $D/osd/\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd crush update on start = false
osd class update on start = false
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
EOF
  ceph-authtool -C "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$K" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
  ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" --keyring "$K"
  ceph-mon -c "$C" -i a
  osd_uuid=$(uuidgen)
  ceph -c "$C" osd new "$osd_uuid" 0 >/dev/null
  ceph -c "$C" osd crush add osd.0 1 root=default host=localhost 2>/dev/null
  ceph-osd -c "$C" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$D/log/osd-mkfs.log"
  ceph-osd -c "$C" -i 0 2>>"$D/log/osd-stderr.log"
  radosgw -c "$C" -n client.rgw.a
  up=""; for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" && { up=1; break; }; sleep 0.2; done
  [ -n "$up" ] || { echo "rgw.sh: radosgw did not answer on 127.0.0.1:$RGW_PORT within 60 s" >&2; false; }
  radosgw-admin -c "$C" user create --uid=test --display-name=test \
    --access-key=testkey --secret=testsecret >/dev/null
  echo "S3 endpoint http://127.0.0.1:$RGW_PORT access=testkey secret=testsecret"
}
case "${1:-start}" in start) start ;; stop) stop ;; *) echo "usage: $0 start|stop" >&2; exit 2 ;; esac
