#!/usr/bin/env bash
# A single-node Ceph cluster for development and tests: one monitor, one manager and
# one OSD keeping its objects in memory (memstore: no disk, no LVM, no device-mapper),
# a pool `volumes` for RBD and a user `client.cinder` that may use it, as an operator
# would give the volume service and compute hosts.
#
#   scripts/ceph-dev.sh start DIR [PORT]   # the monitor listens on 127.0.0.1:PORT (default 6789)
#   scripts/ceph-dev.sh stop DIR
#
# After `start`: DIR/ceph.conf names the cluster (with each user's keyring beside it),
# DIR/cinder.key holds client.cinder's key (for a libvirt secret on compute hosts).
# Needs Debian's ceph-mon, ceph-osd, ceph-mgr and ceph-common (scripts/install-deps.sh).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }

stop() {
    for pidfile in "$dir"/run/*.pid; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pidfile in "$dir"/run/*.pid; do
        [ -f "$pidfile" ] || continue
        for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$dir"
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac

port="${3:-6789}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
mkdir -p "$dir/mon" "$dir/osd" "$dir/mgr" "$dir/run"
fsid="$(cat /proc/sys/kernel/random/uuid)"
cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$port
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
osd objectstore = memstore
memstore device bytes = 4294967296
osd crush chooseleaf type = 0
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/\$name.log
keyring = $dir/ceph.\$name.keyring
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
[mgr.x]
mgr data = $dir/mgr
EOF
conf=(-c "$dir/ceph.conf")
ceph-authtool --create-keyring "$dir/ceph.mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$dir/ceph.mon.keyring" --import-keyring "$dir/ceph.client.admin.keyring" >/dev/null
cp "$dir/ceph.mon.keyring" "$dir/ceph.mon.a.keyring"
monmaptool --create --addv a "[v1:127.0.0.1:$port]" --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon "${conf[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/ceph.mon.keyring" 2>/dev/null
ceph-mon "${conf[@]}" -i a
ceph() { command ceph "${conf[@]}" --connect-timeout 30 "$@"; }

osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
id="$(ceph osd new "$osd_uuid")"
ceph-osd "${conf[@]}" -i "$id" --mkfs --mkkey --osd-uuid "$osd_uuid" --no-mon-config 2>/dev/null
ceph auth add "osd.$id" osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$dir/ceph.osd.$id.keyring" 2>/dev/null
ceph osd crush add-bucket localhost host >/dev/null 2>&1
ceph osd crush move localhost root=default >/dev/null 2>&1
ceph osd crush add "osd.$id" 1.0 host=localhost >/dev/null 2>&1
ceph-osd "${conf[@]}" -i "$id" 2>/dev/null

ceph auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$dir/ceph.mgr.x.keyring" 2>/dev/null
ceph-mgr "${conf[@]}" -i x

ceph osd pool create volumes 16 >/dev/null 2>&1
rbd "${conf[@]}" pool init volumes
ceph auth get-or-create client.cinder mon 'profile rbd' osd 'profile rbd pool=volumes' mgr 'profile rbd pool=volumes' \
    -o "$dir/ceph.client.cinder.keyring" 2>/dev/null
ceph auth get-key client.cinder >"$dir/cinder.key" 2>/dev/null

# Ready when the OSD is up and the manager reports the pool's room.
for _ in $(seq 120); do
    if ceph --id cinder df --format json 2>/dev/null | grep -q '"max_avail":[1-9]'; then
        exit 0
    fi
    sleep 0.5
done
echo "the Ceph cluster in $dir did not come up; see $dir/*.log" >&2
exit 1
