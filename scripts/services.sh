# Helpers to find (and, where installed, start) the PostgreSQL and NATS servers the
# tests use. Sourced by scripts/test.sh.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_up() { port_open 5432; }
nats_up() { port_open 4222; }

ensure_services() {
    if ! pg_up && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    if ! nats_up && [ -x /usr/sbin/nats-server ]; then
        echo "starting NATS"
        mkdir -p /var/lib/nats-server
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    fi
    for _ in $(seq 1 30); do
        if pg_up && nats_up; then return 0; fi
        sleep 1
    done
}

# Each test makes a schema t_<uuid>; remove those left by earlier runs.
drop_test_schemas() {
    psql -h 127.0.0.1 -U postgres -d test -qtA -c \
        "SELECT 'DROP SCHEMA IF EXISTS \"' || nspname || '\" CASCADE;' FROM pg_namespace WHERE nspname LIKE 't\_%' OR nspname LIKE 'e2e\_%'" \
        2>/dev/null | psql -h 127.0.0.1 -U postgres -d test -q >/dev/null 2>&1 || true
}

# libvirt for real guests. Where no daemon answers (machines without systemd, such as
# containers and CI), start one by hand with settings that work there: QEMU as root
# without a security driver, cgroups or mount namespaces. A daemon that already runs
# (systemd's, on an ordinary host) is left as it is.
libvirt_up() { virsh -q -c qemu:///system version >/dev/null 2>&1; }
ensure_libvirt() {
    command -v libvirtd >/dev/null || return 0
    [ "$(id -u)" = 0 ] || return 0
    if libvirt_up; then return 0; fi
    echo "starting libvirtd"
    id libvirt-qemu >/dev/null 2>&1 || useradd -r libvirt-qemu
    mkdir -p /var/log/libvirt /var/run/libvirt /etc/libvirt
    local conf=/etc/libvirt/qemu.conf
    touch "$conf"
    for setting in 'user = "root"' 'group = "root"' 'security_driver = "none"' 'cgroup_controllers = [ ]' 'namespaces = [ ]'; do
        grep -qxF "$setting" "$conf" || echo "$setting" >> "$conf"
    done
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
    for _ in $(seq 1 30); do
        if libvirt_up; then return 0; fi
        sleep 0.5
    done
    echo "libvirtd did not come up: real guests are not tested" >&2
}
