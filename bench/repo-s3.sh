#!/usr/bin/env bash
# Off-site repository benchmark: dawn-backup push/restore --repo vs restic and rclone, all against
# the same throw-away Ceph RGW (scripts/s3-server.sh) on 127.0.0.1, one run.
#   bench/repo-s3.sh            (needs: built packages/backup-cli, Ceph, restic, rclone; root for apt)
# Trees: 10,000 x 1 KiB and 50 x 10 MiB (random content). Prints a Markdown table.
# (rclone 1.60 fails with "LoadCustomCABundleError" when AWS_CA_BUNDLE is set: it runs without it.)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(mktemp -d /tmp/dawn-bench-s3.XXXXXX)
export CEPH_S3_DIR=$ROOT/ceph CEPH_MON_PORT=${CEPH_MON_PORT:-24300} CEPH_RGW_PORT=${CEPH_RGW_PORT:-24380}
cleanup() { scripts/s3-server.sh stop >/dev/null 2>&1 || true; rm -rf "$ROOT"; }
trap cleanup EXIT
for b in restic rclone; do command -v $b >/dev/null || { echo "missing $b: apt-get install -y --no-install-recommends restic rclone" >&2; exit 1; }; done
eval "$(scripts/s3-server.sh start 2>/dev/null)"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$S3_ENDPOINT
export RESTIC_PASSWORD=bench RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph RCLONE_CONFIG_RGW_ENDPOINT=$S3_ENDPOINT \
  RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$S3_ACCESS_KEY RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$S3_SECRET_KEY
BIN="node packages/backup-cli/bin/dawn-backup.js"
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$ROOT/last.err" || { cat "$ROOT/last.err" >&2; return 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
node -e '
const fs=require("fs"),c=require("crypto"),r=process.argv[1];
for(let i=0;i<10000;i++){const d=r+"/small/d"+(i%100);fs.mkdirSync(d,{recursive:true});fs.writeFileSync(d+"/f"+i,c.randomBytes(1024))}
fs.mkdirSync(r+"/large",{recursive:true});for(let i=0;i<50;i++)fs.writeFileSync(r+"/large/f"+i,c.randomBytes(10*1024*1024));' "$ROOT/data"
echo "| tree | dawn push (1st) | requests | restic backup | rclone copy | dawn push (2nd, unchanged) | requests | bytes of content in 2nd | dawn restore --repo | restic restore |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pushed[0][process.argv[1]]))' "$1"; }
for t in small large; do
  src=$ROOT/data/$t
  export PROJECT_DAWN_DATA_ROOT=$src DAWN_BACKUP_DIR=$ROOT/backups-$t
  $BIN backup --name b --quiet --no-fsync
  $BIN init --repo "s3://bench-dawn/$t" --quiet
  t0=$(date +%s.%N); out1=$($BIN push --repo "s3://bench-dawn/$t" --json); p1=$(echo "$(date +%s.%N) - $t0" | bc)
  q1=$(echo "$out1" | field requests)
  restic -r "s3:$S3_ENDPOINT/bench-restic-$t" init --quiet >/dev/null
  rb=$(secs restic -r "s3:$S3_ENDPOINT/bench-restic-$t" backup --quiet "$DAWN_BACKUP_DIR/b")
  rc=$(secs env -u AWS_CA_BUNDLE rclone copy "$DAWN_BACKUP_DIR/b" "rgw:bench-rclone-$t/b")
  t0=$(date +%s.%N); out=$($BIN push --repo "s3://bench-dawn/$t" --json); p2=$(echo "$(date +%s.%N) - $t0" | bc)
  up=$(echo "$out" | field uploadedBytes); q2=$(echo "$out" | field requests)
  dr=$(secs env PROJECT_DAWN_DATA_ROOT=$ROOT/new-$t/data DAWN_BACKUP_DIR=$ROOT/new-$t/backups $BIN restore b --repo "s3://bench-dawn/$t" --no-fsync)
  rr=$(secs restic -r "s3:$S3_ENDPOINT/bench-restic-$t" restore latest --target "$ROOT/restic-$t")
  echo "| $t | ${p1}s | $q1 | ${rb}s | ${rc}s | ${p2}s | $q2 | $up | ${dr}s | ${rr}s |"
  rm -rf "$ROOT/new-$t" "$ROOT/restic-$t"
done
