"""Real-guest benchmark: prints figures, asserts nothing. Run as root from the repository
root, with libvirt running (scripts/install-deps.sh starts it), after
`cargo build --release -p stratusd`:

    STRATUSD=target/release/stratusd OPENSTACK=.venv/bin/openstack .venv/bin/python bench/guests.py [--batches 1,5]

It starts all-in-one with the libvirt driver and its network agent (as the end-to-end
test of real guests does), uploads the test guest, and for each batch size creates
that many servers at once through the compute API, then measures per server:
- POST /servers → ACTIVE, and → the first successful SSH through a floating IP from
  the "outside" namespace (the floating IP is attached as soon as the server is ACTIVE);
- where the agent's spawn time went (image cache, disks and config drive, libvirt
  defining and starting QEMU, waiting for the network agent to plug the tap), from its
  log; the control plane and agents' share is the time to ACTIVE minus libvirt's,
  against the total to SSH (the rest is QEMU booting the guest);
- the host memory of each guest (the QEMU process's resident set);
- the image cache: downloads for the first server versus the later ones.

With `--volume-io`, it also attaches a 1 GiB volume (file backend) to one guest and
measures, inside the guest over SSH, sequential direct-I/O writes and reads of 256 MiB
on the volume (`/dev/vdb`) against the guest's own root disk (`/dev/vda`, unused: the
test guest runs from its initramfs). With `--nbd` as well, the storage host is named
apart from the compute host (`[volume] host`), so the volume reaches the guest over NBD
(a qemu-storage-daemon export on the same machine, over TCP) instead of as a file.
With `--rbd` instead, the volume is of a type on the `rbd` backend, in a single-node
Ceph cluster started here (scripts/ceph-dev.sh: one OSD on memstore, its objects in
memory), and reaches the guest through QEMU's RBD driver over loopback; the time a
volume from an image takes to be made (a clone of the image's base) is printed too.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

import conftest  # noqa: E402
from conftest import unique  # noqa: E402
from test_real_guests import make_world, remove_world, ssh, start_cloud, stop_cloud, upload_guest  # noqa: E402


def build_guest():
    out = os.path.join(conftest.ROOT, "target", "test-guest")
    subprocess.run(["bash", os.path.join(conftest.ROOT, "tests", "guest", "build-guest.sh"), out], check=True)
    return os.path.join(out, "vmlinuz"), os.path.join(out, "initrd.img")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def rss_mib(server_id):
    try:
        with open(f"/run/libvirt/qemu/stratus-{server_id}.pid") as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def spawn_log(cloud):
    """server id → {images_ms, disks_ms, libvirt_ms, plug_ms} from the agent's log."""
    out = {}
    cloud.log.flush()
    with open(cloud.log.name) as f:
        for line in f:
            if "guest spawned" not in line:
                continue
            plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
            sid = re.search(r'server="?([0-9a-f-]{36})', plain)
            if sid:
                out[sid.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+_ms)=(\d+)", plain)}
    return out


def run_batch(cloud, w, n, token):
    body = lambda name: {  # noqa: E731
        "server": {
            "name": name, "flavorRef": w["flavor"]["id"], "imageRef": w["image"]["id"],
            "networks": [{"uuid": w["net"]["id"]}], "key_name": w["kp"],
            "security_groups": [{"name": w["sg"]["id"]}],
        }
    }

    def one(i):
        t0 = time.monotonic()
        status, _, data = cloud.http("POST", "/v2.1/servers", token=token, body=body(unique(f"b{n}-{i}")),
                                     base=cloud.compute_url)
        assert status == 202, data
        sid = data["server"]["id"]
        while True:
            _, _, s = cloud.http("GET", f"/v2.1/servers/{sid}", token=token, base=cloud.compute_url)
            if s["server"]["status"] in ("ACTIVE", "ERROR"):
                break
            time.sleep(0.02)
        active = time.monotonic() - t0
        assert s["server"]["status"] == "ACTIVE", s
        _, _, ports = cloud.http("GET", f"/v2.0/ports?device_id={sid}", token=token, base=cloud.network_url)
        _, _, fip = cloud.http(
            "POST", "/v2.0/floatingips", token=token, base=cloud.network_url,
            body={"floatingip": {"floating_network_id": w["ext"]["id"], "port_id": ports["ports"][0]["id"]}},
        )
        address = fip["floatingip"]["floating_ip_address"]
        while ssh(w["outside"], w["key"], address, "true").returncode != 0:
            assert time.monotonic() - t0 < 300, "no SSH after 5 minutes"
            time.sleep(0.2)
        return {"id": sid, "active": active, "ssh": time.monotonic() - t0, "fip": fip["floatingip"]["id"]}

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def dd_rate(w, address, command, mib=256):
    """MiB/s of a dd of `mib` MiB run in the guest, timed by the guest's own clock
    (/proc/uptime: busybox dd prints no rate)."""
    timed = f"a=$(cut -d' ' -f1 /proc/uptime); {command} 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
    out = ssh(w["outside"], w["key"], address, timed)
    m = re.search(r"([\d.]+) ([\d.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    return mib / max(float(m.group(2)) - float(m.group(1)), 0.01)


def volume_io(cloud, w, token):
    server = run_batch(cloud, w, 1, token)[0]
    sid, fip = server["id"], server["fip"]
    address = cloud.http("GET", f"/v2.0/floatingips/{fip}", token=token, base=cloud.network_url)[2]["floatingip"][
        "floating_ip_address"]
    typed = ["--type", cloud.rbd_type] if cloud.rbd_type else []
    if cloud.rbd_type:
        image = upload_guest(cloud, tempfile.mkdtemp(prefix="stratus-bench-rbd-"))
        project = cloud.osc("project", "show", "admin")["id"]
        made = []
        for n in range(4):
            body = {"volume": {"size": 1, "imageRef": image["id"], "volume_type": cloud.rbd_type}}
            t0 = time.monotonic()
            _, _, v = cloud.http("POST", f"/v3/{project}/volumes", token=token, body=body, base=cloud.volume_url)
            made.append(f"/v3/{project}/volumes/{v['volume']['id']}")
            while cloud.http("GET", made[-1], token=token, base=cloud.volume_url)[2]["volume"]["status"] != "available":
                time.sleep(0.01)
            print(f"  volume from an image on rbd ({'the first: the base imported' if n == 0 else 'a clone'}): "
                  f"POST→available {1000 * (time.monotonic() - t0):.0f} ms")
        for path in made:
            cloud.http("DELETE", path, token=token, base=cloud.volume_url)
    vol = cloud.osc("volume", "create", "--size", "1", *typed, unique("io"))
    while cloud.osc("volume", "show", vol["id"])["status"] != "available":
        time.sleep(0.3)
    cloud.osc("server", "add", "volume", sid, vol["id"], fmt_json=False)
    while cloud.osc("volume", "show", vol["id"])["status"] != "in-use":
        time.sleep(0.3)
    while ssh(w["outside"], w["key"], address, "test -b /dev/vdb").returncode != 0:
        time.sleep(0.5)
    print("\n== sequential I/O inside the guest (256 MiB, 1 MiB blocks, direct I/O), MiB/s")
    for dev in ("vda", "vdb"):
        write = dd_rate(w, address, f"dd if=/dev/zero of=/dev/{dev} bs=1M count=256 oflag=direct")
        read = dd_rate(w, address, f"dd if=/dev/{dev} of=/dev/null bs=1M count=256 iflag=direct")
        how = "over NBD" if cloud.nbd else "RBD in Ceph" if cloud.rbd_type else "qcow2 file"
        what = "root disk (qcow2 overlay)" if dev == "vda" else f"attached volume ({how})"
        print(f"  /dev/{dev} {what}: write {write:.1f}, read {read:.1f}")
    cloud.osc("server", "remove", "volume", sid, vol["id"], fmt_json=False)
    while cloud.osc("volume", "show", vol["id"])["status"] != "available":
        time.sleep(0.3)
    cloud.osc("volume", "delete", vol["id"])
    cloud.http("DELETE", f"/v2.0/floatingips/{fip}", token=token, base=cloud.network_url)
    cloud.http("DELETE", f"/v2.1/servers/{sid}", token=token, base=cloud.compute_url)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,5")
    ap.add_argument("--volume-io", action="store_true")
    ap.add_argument("--nbd", action="store_true", help="volumes reach the guest over NBD")
    ap.add_argument("--rbd", action="store_true", help="volumes live in a single-node Ceph cluster")
    args = ap.parse_args()
    env = {"STRATUS_VOLUME__HOST": "bench-storage"} if args.nbd else {}
    ceph_dir, secret = tempfile.mkdtemp(prefix="stratus-bench-ceph-"), str(uuid.uuid4())
    if args.rbd:
        subprocess.run([os.path.join(conftest.ROOT, "scripts", "ceph-dev.sh"), "start", ceph_dir, "16790"], check=True)
        secret_xml = os.path.join(ceph_dir, "secret.xml")
        with open(secret_xml, "w") as f:
            f.write(f"<secret ephemeral='no' private='yes'><uuid>{secret}</uuid>"
                    f"<usage type='ceph'><name>client.cinder bench</name></usage></secret>")
        subprocess.run(["virsh", "secret-define", secret_xml], check=True, capture_output=True)
        subprocess.run(["virsh", "secret-set-value", "--secret", secret, "--file", os.path.join(ceph_dir, "cinder.key")],
                       check=True, capture_output=True)
        env |= {"STRATUS_VOLUME__RBD_POOL": "volumes", "STRATUS_VOLUME__RBD_CONF": os.path.join(ceph_dir, "ceph.conf"),
                "STRATUS_VOLUME__RBD_USER": "cinder", "STRATUS_VOLUME__RBD_SECRET_UUID": secret}
    cloud = start_cloud(build_guest(), extra_env=env)
    cloud.nbd = args.nbd
    cloud.rbd_type = None
    work = tempfile.mkdtemp(prefix="stratus-bench-guests-")
    w = {}
    try:
        make_world(cloud, work, w)
        token = cloud.password_token()
        if args.rbd:
            cloud.rbd_type = cloud.osc("volume", "type", "create", "--property", "volume_backend_name=rbd",
                                       unique("ceph"))["name"]
        if args.volume_io:
            volume_io(cloud, w, token)
        first = None
        for n in [int(x) for x in args.batches.split(",")]:
            results = run_batch(cloud, w, n, token)
            spawns = spawn_log(cloud)
            print(f"\n== {n} server(s) created at once")
            shares, ours_ms = [], []
            for r in results:
                s = spawns.get(r["id"], {})
                libvirt = s.get("libvirt_ms", 0) / 1000
                ours = r["active"] - libvirt
                shares.append(ours / r["ssh"])
                ours_ms.append(ours * 1000)
                print(
                    f"  {r['id'][:8]}: →ACTIVE {r['active']:.2f} s, →SSH {r['ssh']:.2f} s; agent: images "
                    f"{s.get('images_ms', '?')} ms, disks {s.get('disks_ms', '?')} ms, libvirt {s.get('libvirt_ms', '?')} ms, "
                    f"plug {s.get('plug_ms', '?')} ms; guest RSS {rss_mib(r['id']) or 0:.0f} MiB"
                )
                first = first or s
            act = [r["active"] for r in results]
            ssh_t = [r["ssh"] for r in results]
            print(f"  POST→ACTIVE p50 {statistics.median(act):.2f} s, max {max(act):.2f} s")
            print(f"  POST→SSH    p50 {statistics.median(ssh_t):.2f} s, max {max(ssh_t):.2f} s")
            print(f"  control plane + agents (to ACTIVE, without libvirt starting QEMU): p50 {statistics.median(ours_ms):.0f} ms, "
                  f"max {max(ours_ms):.0f} ms per server = {100 * statistics.median(shares):.1f} % of the time to SSH (p50)")
            mem = [m for m in (rss_mib(r["id"]) for r in results) if m]
            if mem:
                print(f"  memory per guest (QEMU RSS): {statistics.mean(mem):.0f} MiB average")
            for r in results:
                cloud.http("DELETE", f"/v2.0/floatingips/{r['fip']}", token=token, base=cloud.network_url)
                cloud.http("DELETE", f"/v2.1/servers/{r['id']}", token=token, base=cloud.compute_url)
            for r in results:
                while cloud.http("GET", f"/v2.1/servers/{r['id']}", token=token, base=cloud.compute_url)[0] != 404:
                    time.sleep(0.1)
        cloud.log.flush()
        downloads = open(cloud.log.name).read().count("image downloaded into the cache")
        print(f"\nimage cache: {downloads} downloads in all (disk image, kernel, initramfs), first spawn's image step "
              f"{first.get('images_ms', '?') if first else '?'} ms; later spawns are cache hits (see their image step)")
        remove_world(cloud, w)
    finally:
        if "outside" in w:
            w["outside"].destroy()
        stop_cloud(cloud)
        if args.rbd:
            subprocess.run([os.path.join(conftest.ROOT, "scripts", "ceph-dev.sh"), "stop", ceph_dir])
            subprocess.run(["virsh", "secret-undefine", secret], capture_output=True)


if __name__ == "__main__":
    main()
