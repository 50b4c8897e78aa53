#!/usr/bin/env bash
# A throw-away, real S3 server for dawn-backup's tests, CI and benchmarks: a single-node Ceph
# cluster (1 monitor, 1 in-memory OSD, 1 RADOS Gateway) on 127.0.0.1, up in about 3 s.
# Used by packages/backup-cli/test/s3.test.ts (started and stopped by the tests) and .ci/run.
#
# Usage: scripts/s3-server.sh start|stop|status|env
#   start  : idempotent. If the cluster under $CEPH_S3_DIR is already up and the
#            S3 endpoint answers, just prints endpoint + keys. Otherwise stops any
#            leftovers (only PIDs from our own pid files), wipes the dir, builds a
#            fresh cluster and prints endpoint + keys (also written to s3.env).
#   stop   : stops the daemons started from $CEPH_S3_DIR (PIDs recorded in
#            run/*.spid, checked against their command line) and waits.
#   status : exit 0 if the S3 endpoint answers.
#
# Env knobs: CEPH_S3_DIR (default /tmp/dawn-s3-server), CEPH_MON_PORT (v2 port,
# v1 = +1, default 13300), CEPH_RGW_PORT (default 17480), CEPH_WITH_MGR=1 to
# also start a ceph-mgr (not needed for S3), CEPH_OSD_BACKEND=memstore|bluestore
# (memstore keeps objects in the OSD's RAM; bluestore uses a 10 GiB sparse file),
# S3_ACCESS_KEY / S3_SECRET_KEY.
#
# Needs (Debian 12): apt-get install -y --no-install-recommends \
#     ceph-mon ceph-osd radosgw uuid-runtime curl   (+ ceph-mgr only if CEPH_WITH_MGR=1)
set -euo pipefail

BASE=${CEPH_S3_DIR:-/tmp/dawn-s3-server}
MON_PORT=${CEPH_MON_PORT:-13300}
MON_PORT_V1=$((MON_PORT + 1))
RGW_PORT=${CEPH_RGW_PORT:-17480}
WITH_MGR=${CEPH_WITH_MGR:-0}
OSD_BACKEND=${CEPH_OSD_BACKEND:-memstore}   # memstore (data in OSD RAM) | bluestore (sparse file)
ACCESS_KEY=${S3_ACCESS_KEY:-CIACCESSKEY000000001}
SECRET_KEY=${S3_SECRET_KEY:-cisecretkey0000000000000000000000000000001}
case "$BASE" in /?*/?*) ;; *) echo "CEPH_S3_DIR must be an absolute path at least two levels deep (it gets wiped): '$BASE'" >&2; exit 2 ;; esac
CONF=$BASE/ceph.conf
ENDPOINT=http://127.0.0.1:$RGW_PORT
CEPH="ceph -c $CONF --connect-timeout 10"

log() { echo "[ceph-s3 $(date +%T)] $*" >&2; }

print_info() {
  cat > "$BASE/s3.env" <<EOF
S3_ENDPOINT=$ENDPOINT
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_REGION=us-east-1
EOF
  cat "$BASE/s3.env"
}

endpoint_up() {
  curl -fsS -o /dev/null --max-time 3 "$ENDPOINT/" 2>/dev/null
}

alive() { # running and not a zombie
  local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of a daemon we spawned, only if alive and really ours (cmdline has $CONF)
our_pid() {
  local f=$BASE/run/$1.spid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

all_up() {
  local d
  for d in mon.a osd.0 client.rgw.a; do our_pid "$d" >/dev/null || return 1; done
  endpoint_up
}

stop_all() {
  # one at a time, rgw first: radosgw can hang in shutdown once the mon is gone
  local d pid i
  for d in client.rgw.a mgr.x osd.0 mon.a; do
    pid=$(our_pid "$d") || continue
    log "stopping $d (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then log "$d pid $pid still alive after 5s, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$BASE/run/$d.spid"
  done
}

# start a daemon in foreground mode, detached, output to log/<name>.stdout
spawn() { # spawn <name> <cmd...>
  local name=$1; shift
  setsid "$@" -f </dev/null >>"$BASE/log/$name.stdout" 2>&1 &
  echo $! > "$BASE/run/$name.spid"   # radosgw -f writes no pid file itself
}

wait_for() { # wait_for <seconds> <description> <command...>
  local t=$1 what=$2 i; shift 2
  for i in $(seq 1 $((t * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timeout waiting for $what"; return 1
}

osd_is_up() {
  $CEPH osd dump -f json 2>/dev/null | grep -q '"up":1'
}

write_conf() {
  local fsid=$1
  cat > "$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $BASE/keyring
run dir = $BASE/run
crash dir = $BASE/crash
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
osd failsafe full ratio = .99
mon osd full ratio = .99
mon osd nearfull ratio = .98
mon osd backfillfull ratio = .985

[mon]
# commit map changes quickly (default 1 s batching) -> faster OSD boot / pool creation
paxos propose interval = 0.05
mon data = $BASE/mon.\$id
log file = $BASE/log/\$name.log
mon cluster log file = $BASE/log/cluster.log
pid file = $BASE/run/\$name.pid
admin socket = $BASE/run/\$name.asok

[mgr]
mgr data = $BASE/mgr.\$id
log file = $BASE/log/\$name.log
pid file = $BASE/run/\$name.pid
admin socket = $BASE/run/\$name.asok

[osd]
osd objectstore = $OSD_BACKEND
memstore device bytes = 4294967296
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
osd memory target = 1073741824
osd data = $BASE/osd.\$id
log file = $BASE/log/\$name.log
pid file = $BASE/run/\$name.pid
admin socket = $BASE/run/\$name.asok
osd scrub load threshold = 2000.0

[client.rgw.a]
# radosgw's built-in defaults are auth_client_required=cephx and
# ms_mon_client_mode=secure; with auth none the latter makes the mon
# handshake fail forever (send_auth_request ... returned -13).
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $BASE/rgw.\$id
rgw thread pool size = 32
log file = $BASE/log/\$name.log
pid file = $BASE/run/\$name.pid
admin socket = $BASE/run/\$name.asok
EOF
}

start() {
  if [ -f "$CONF" ] && all_up; then
    log "already running"
    print_info; return 0
  fi
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool uuidgen curl; do
    command -v "$b" >/dev/null || { log "missing $b (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl)"; exit 1; }
  done
  [ -d "$BASE" ] && stop_all
  local p
  for p in "$MON_PORT" "$MON_PORT_V1" "$RGW_PORT"; do
    if port_busy "$p"; then log "port 127.0.0.1:$p is in use by another process; set CEPH_MON_PORT/CEPH_RGW_PORT"; exit 1; fi
  done
  rm -rf "$BASE"
  mkdir -p "$BASE"/{run,log,crash,mon.a,osd.0,rgw.rgw.a}
  local fsid; fsid=$(uuidgen)
  write_conf "$fsid"

  log "mon: mkfs + start"
  ceph-authtool --create-keyring "$BASE/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$BASE/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  monmaptool --create --clobber --fsid "$fsid" \
    --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]" "$BASE/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$BASE/monmap" --keyring "$BASE/keyring"
  spawn mon.a ceph-mon -c "$CONF" -i a
  wait_for 60 "mon quorum" $CEPH mon stat

  log "osd: create + mkfs ($OSD_BACKEND) + start"
  local uuid id; uuid=$(uuidgen)
  id=$($CEPH osd new "$uuid")
  [ "$id" = 0 ] || { log "unexpected osd id '$id'"; exit 1; }
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
  spawn osd.0 ceph-osd -c "$CONF" -i 0
  wait_for 60 "osd.0 up" osd_is_up

  if [ "$WITH_MGR" = 1 ]; then
    log "mgr: start"
    mkdir -p "$BASE/mgr.x"
    spawn mgr.x ceph-mgr -c "$CONF" -i x
  fi

  # pre-create the bucket pools rgw would otherwise create on the first
  # CreateBucket / PutObject (that costs ~2 s on each of those first requests)
  log "pools: pre-create rgw bucket pools"
  $CEPH >/dev/null 2>&1 <<EOF
osd pool create default.rgw.buckets.index 8 8
osd pool application enable default.rgw.buckets.index rgw
osd pool create default.rgw.buckets.data 8 8
osd pool application enable default.rgw.buckets.data rgw
osd pool create default.rgw.buckets.non-ec 8 8
osd pool application enable default.rgw.buckets.non-ec rgw
EOF

  log "rgw: create S3 user (creates the other rgw pools) + start radosgw"
  radosgw-admin -c "$CONF" user create --uid=ci --display-name="CI user" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  spawn client.rgw.a radosgw -c "$CONF" -n client.rgw.a
  wait_for 60 "S3 endpoint $ENDPOINT" endpoint_up
  log "ready"
  print_info
}

case "${1:-start}" in
  start) start ;;
  stop) [ -d "$BASE" ] && stop_all; log "stopped" ;;
  status) all_up && { log "up"; print_info; } ;;
  env) cat "$BASE/s3.env" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
