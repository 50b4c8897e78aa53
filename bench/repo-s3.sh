#!/usr/bin/env bash
# Off-site repository benchmark: dawn-backup push/restore --repo vs restic and rclone, all against
# the same throw-away Ceph RGW (scripts/s3-server.sh) on 127.0.0.1, one run.
#   bench/repo-s3.sh            (needs: built packages/backup-cli, Ceph, restic, rclone; root for apt)
#   bench/repo-s3.sh --push-only   (only dawn's pushes: no restic, rclone or restore; for quick iterations)
# Trees: 10,000 x 1 KiB and 50 x 10 MiB (random content). Prints a Markdown table.
# Second pushes, each the median of 3: "same" pushes the already pushed backup again (its snapshot
# is there); "new" is what cron does every time: a NEW backup of the unchanged tree (made first,
# not timed), then its push (a new snapshot, no file content). The last line gives the floor
# every run pays: `node -e 0` and `dawn-backup --version` (medians of 5).
# (rclone 1.60 fails with "LoadCustomCABundleError" when AWS_CA_BUNDLE is set: it runs without it.)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(mktemp -d /tmp/dawn-bench-s3.XXXXXX)
export CEPH_S3_DIR=$ROOT/ceph CEPH_MON_PORT=${CEPH_MON_PORT:-24300} CEPH_RGW_PORT=${CEPH_RGW_PORT:-24380}
cleanup() { scripts/s3-server.sh stop >/dev/null 2>&1 || true; rm -rf "$ROOT"; }
trap cleanup EXIT
PEERS=1; [ "${1:-}" = --push-only ] && PEERS=0
[ $PEERS = 1 ] && for b in restic rclone; do command -v $b >/dev/null || { echo "missing $b: apt-get install -y --no-install-recommends restic rclone" >&2; exit 1; }; done
eval "$(scripts/s3-server.sh start 2>/dev/null)"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=$S3_ENDPOINT
export RESTIC_PASSWORD=bench RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph RCLONE_CONFIG_RGW_ENDPOINT=$S3_ENDPOINT \
  RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$S3_ACCESS_KEY RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$S3_SECRET_KEY
BIN="node packages/backup-cli/bin/dawn-backup.js"
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$ROOT/last.err" || { cat "$ROOT/last.err" >&2; return 1; }; t1=$(date +%s.%N); printf '%.2f\n' "$(echo "$t1 - $t0" | bc)"; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# A push, timed: prints "seconds requests uploadedBytes".
timedpush() {
  local t0 out; t0=$(date +%s.%N); out=$($BIN push "$@" --json); printf '%.2f %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$(echo "$out" | field requests) $(echo "$out" | field uploadedBytes)"
}
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
node -e '
const fs=require("fs"),c=require("crypto"),r=process.argv[1];
for(let i=0;i<10000;i++){const d=r+"/small/d"+(i%100);fs.mkdirSync(d,{recursive:true});fs.writeFileSync(d+"/f"+i,c.randomBytes(1024))}
fs.mkdirSync(r+"/large",{recursive:true});for(let i=0;i<50;i++)fs.writeFileSync(r+"/large/f"+i,c.randomBytes(10*1024*1024));' "$ROOT/data"
echo "| tree | dawn push (1st) | requests | restic backup | rclone copy | 2nd push, same backup | requests | 2nd push, new backup of the unchanged tree | requests | content uploaded by the 2nd | 2nd/1st (same, new) | dawn restore --repo | restic restore |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pushed[0][process.argv[1]]))' "$1"; }
for t in small large; do
  src=$ROOT/data/$t
  export PROJECT_DAWN_DATA_ROOT=$src DAWN_BACKUP_DIR=$ROOT/backups-$t
  $BIN backup --name b --quiet --no-fsync
  $BIN init --repo "s3://bench-dawn/$t" --quiet
  read -r p1 q1 _ < <(timedpush --repo "s3://bench-dawn/$t" b)
  rb=-; rc=-; dr=-; rr=-
  if [ $PEERS = 1 ]; then
    restic -r "s3:$S3_ENDPOINT/bench-restic-$t" init --quiet >/dev/null
    rb=$(secs restic -r "s3:$S3_ENDPOINT/bench-restic-$t" backup --quiet "$DAWN_BACKUP_DIR/b")s
    rc=$(secs env -u AWS_CA_BUNDLE rclone copy "$DAWN_BACKUP_DIR/b" "rgw:bench-rclone-$t/b")s
  fi
  same=(); new=(); up=0
  for i in 1 2 3; do
    read -r s q u < <(timedpush --repo "s3://bench-dawn/$t" b); same+=("$s"); q2=$q; up=$((up + u))
    $BIN backup --name "n$i" --quiet --no-fsync
    read -r s q u < <(timedpush --repo "s3://bench-dawn/$t" "n$i"); new+=("$s"); q3=$q; up=$((up + u))
  done
  p2=$(printf '%s\n' "${same[@]}" | median); p3=$(printf '%s\n' "${new[@]}" | median)
  if [ $PEERS = 1 ]; then
    dr=$(secs env PROJECT_DAWN_DATA_ROOT=$ROOT/new-$t/data DAWN_BACKUP_DIR=$ROOT/new-$t/backups $BIN restore b --repo "s3://bench-dawn/$t" --no-fsync)s
    rr=$(secs restic -r "s3:$S3_ENDPOINT/bench-restic-$t" restore latest --target "$ROOT/restic-$t")s
  fi
  echo "| $t | ${p1}s | $q1 | $rb | $rc | ${p2}s | $q2 | ${p3}s | $q3 | $up B | $(ratio "$p2" "$p1")×, $(ratio "$p3" "$p1")× | $dr | $rr |"
  rm -rf "$ROOT/new-$t" "$ROOT/restic-$t"
done
floor() { for i in 1 2 3 4 5; do secs "$@"; done | median; }  # (secs prints 2 decimals)
echo
echo "floor (medians of 5): node -e 0 $(floor node -e 0)s; dawn-backup --version $(floor $BIN --version)s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
