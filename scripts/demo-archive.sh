#!/usr/bin/env bash
# The after-the-call part of the demo (scripts/demo.sh runs it): demo/pci-call.mp4.age goes to
# a real S3 object store (a local Ceph RADOS Gateway from scripts/rgw.sh, stopped on exit)
# under Object Lock retention, is indexed and searched, put under legal hold, exported with a
# redaction; a second call's customer is erased by crypto-shredding (the objects stay, their key
# is gone); every step lands in a signed, hash-chained audit log that is then verified.
# Usage: scripts/demo-archive.sh [path/to/vcc-vault]   (default target/release/vcc-vault)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vault=${1:-target/release/vcc-vault}
# Ceph in RAM (scripts/rgw.sh default: /dev/shm), as in the tests.
export RGW_PORT=${RGW_PORT:-7480} MON_PORT=${MON_PORT:-46789}
scripts/rgw.sh start
trap 'scripts/rgw.sh stop' EXIT
# The standard AWS configuration, as for any AWS tool.
export AWS_ENDPOINT_URL="http://127.0.0.1:$RGW_PORT" AWS_ACCESS_KEY_ID=testkey \
    AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1
# Audit: a signing key apart from the media server's.
[ -s demo/audit-keys/vcc.key ] || "$vault" keygen --out-dir demo/audit-keys >/dev/null
export VCC_AUDIT_LOG="$root/demo/audit.jsonl" VCC_AUDIT_KEY="$root/demo/audit-keys/vcc.key"
rm -f demo/audit.jsonl demo/audit.jsonl.head demo/index.sqlite
cat > demo/policy.toml <<'POLICY'
[default]
retention_days = 1
mode = "governance"

[[rule]]
queue = "payments"
retention_days = 2555
mode = "compliance"
POLICY
"$vault" bucket-create --bucket recordings
"$vault" archive --bucket recordings --tenant demo --policy demo/policy.toml \
    --key demo/keys/vcc.pub demo/pci-call.mp4.age demo/forget-call.mp4.age
"$vault" index --db demo/index.sqlite --hash-key demo/keys/index.key --key demo/keys/vcc.pub \
    --bucket recordings --prefix demo/
"$vault" search --db demo/index.sqlite --hash-key demo/keys/index.key --call-id demo-pci
"$vault" hold --bucket recordings --tenant demo --call-id demo-pci
if "$vault" delete --bucket recordings --tenant demo --call-id demo-pci 2>/dev/null; then
    echo "the store deleted a held recording" >&2
    exit 1
fi
echo "delete refused: the call is under legal hold"
"$vault" release --bucket recordings --tenant demo --call-id demo-pci
# An excerpt for a dispute: 0.5-3.5 s with 1.0-1.5 s redacted (black, silent), signed.
rm -f demo/pci-call-excerpt.mp4 demo/pci-call-excerpt.mp4.*
"$vault" export demo/pci-call.mp4.age --identity demo/keys/key.txt --key demo/keys/vcc.pub \
    --from 0.5 --to 3.5 --redact 1-1.5 -o demo/pci-call-excerpt.mp4 --signing-key demo/keys/vcc.key
# Right to be forgotten despite retention: the customer's key is destroyed (no legal hold on
# their calls); the archived objects stay, and nobody can decrypt them any more.
rm -f demo/forget-call.mp4
"$vault" decrypt --identity demo/keys/key.txt --key-vault demo/key-vault \
    demo/forget-call.mp4.age -o demo/forget-call.mp4
"$vault" erase --customer CUST-DEMO-42 --key-vault demo/key-vault --db demo/index.sqlite \
    --hash-key demo/keys/index.key --bucket recordings --tenant demo
rm -f demo/forget-call.mp4
if "$vault" decrypt --identity demo/keys/key.txt --key-vault demo/key-vault \
    demo/forget-call.mp4.age -o demo/forget-call.mp4; then
    echo "an erased customer's recording still decrypts" >&2
    exit 1
fi
"$vault" audit verify demo/audit.jsonl --key demo/audit-keys/vcc.pub
