"""The volume commands a user types, with the real python-openstackclient against the
real `stratusd all-in-one` on its default file backend (qcow2 files made by qemu-img),
on PostgreSQL + NATS."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Cloud, compute_basics, unique


BACKEND = "postgres"


def wait_status(cloud, env, kind, name, status, timeout=120):
    """Polls `openstack volume [snapshot|backup] show` until `status` ("GONE": not found)."""
    args = ["volume", "show"] if kind == "volume" else ["volume", kind, "show"]
    deadline = time.monotonic() + timeout
    while True:
        p = cloud.osc(*args, name, "-f", "json", env=env, check=False, fmt_json=False)
        if status == "GONE" and p.returncode != 0 and "No " in p.stderr + p.stdout:
            return None
        if p.returncode == 0:
            shown = json.loads(p.stdout)
            if shown["status"] == status:
                return shown
            assert not shown["status"].startswith("error"), shown
        assert time.monotonic() < deadline, f"{kind} {name} never {status}: {p.stdout} {p.stderr}"
        time.sleep(0.3)


def virtual_gib(path):
    info = json.loads(subprocess.run(["qemu-img", "info", "-f", "qcow2", "--output=json", path], check=True,
                                     capture_output=True, text=True).stdout)
    return info["virtual-size"] / (1 << 30)


def test_volume_commands(cloud):
    admin = cloud.admin_env()
    project = unique("volp")
    _, env = cloud.member_env(project)
    files = os.path.join(cloud.data_dir, "volumes")
    # Types are the admin's.
    fast = unique("fast")
    cloud.osc("volume", "type", "create", "--property", "volume_backend_name=file", fast)
    assert fast in [t["Name"] for t in cloud.osc("volume", "type", "list", env=env)]
    assert cloud.osc("volume", "type", "create", unique("nope"), env=env, check=False).returncode != 0
    # A private type given to this project alone, its volumes limited by front-end QoS
    # specs (which the compute host would apply to the guest's disk).
    gold = unique("gold")
    cloud.osc("volume", "type", "create", "--private", "--project", project, gold)
    _, stranger = cloud.member_env(unique("volq"))
    assert gold in [t["Name"] for t in cloud.osc("volume", "type", "list", env=env)]
    assert gold not in [t["Name"] for t in cloud.osc("volume", "type", "list", env=stranger)]
    refused = cloud.osc("volume", "create", "--type", gold, "--size", "1", "x", env=stranger, check=False)
    assert refused.returncode != 0
    qos_name = unique("qos")
    qos = cloud.osc("volume", "qos", "create", "--consumer", "front-end", "--property", "read_iops_sec=2000", qos_name)
    cloud.osc("volume", "qos", "associate", qos_name, gold, fmt_json=False)
    cloud.osc("volume", "qos", "set", "--property", "total_bytes_sec=1048576", qos_name, fmt_json=False)
    cloud.osc("volume", "qos", "unset", "--property", "read_iops_sec", qos_name, fmt_json=False)
    shown = cloud.osc("volume", "qos", "show", qos_name)
    assert shown["id"] == qos["id"] and shown["consumer"] == "front-end", shown
    assert "total_bytes_sec" in str(shown["properties"]) and "read_iops_sec" not in str(shown["properties"]), shown
    assert gold in str(shown["associations"]), shown
    assert cloud.osc("volume", "qos", "create", unique("q"), env=env, check=False).returncode != 0, "admins only"
    cloud.osc("volume", "qos", "disassociate", "--all", qos_name, fmt_json=False)
    cloud.osc("volume", "qos", "delete", qos_name, fmt_json=False)
    cloud.osc("volume", "type", "delete", gold, fmt_json=False)

    v1 = cloud.osc("volume", "create", "--size", "1", "--description", "first", "v1", env=env)
    assert v1["status"] == "creating" and v1["size"] == 1
    wait_status(cloud, env, "volume", "v1", "available")
    assert virtual_gib(os.path.join(files, "volumes", f"{v1['id']}.qcow2")) == 1
    cloud.osc("volume", "set", "--name", "v1b", "--property", "tier=gold", "--bootable", "v1", env=env)
    shown = cloud.osc("volume", "show", "v1b", env=env)
    assert shown["properties"] == {"tier": "gold"} and shown["bootable"] in (True, "true"), shown
    # Extend: the file grows.
    cloud.osc("volume", "set", "--size", "2", "v1b", env=env)
    assert wait_status(cloud, env, "volume", "v1b", "available")["size"] == 2
    assert virtual_gib(os.path.join(files, "volumes", f"{v1['id']}.qcow2")) == 2

    # A snapshot, a volume from it, a copy of the volume, a volume of another type.
    snap = cloud.osc("volume", "snapshot", "create", "--volume", "v1b", "s1", env=env)
    wait_status(cloud, env, "snapshot", "s1", "available")
    assert os.path.exists(os.path.join(files, "snapshots", f"{snap['id']}.qcow2"))
    cloud.osc("volume", "snapshot", "set", "--name", "s1b", "s1", env=env)
    assert [s["Name"] for s in cloud.osc("volume", "snapshot", "list", env=env)] == ["s1b"]
    # Written after the snapshot, then reverted to it (3.40): the write is gone.
    vfile = os.path.join(files, "volumes", f"{v1['id']}.qcow2")
    io = lambda *a: subprocess.run(["qemu-io", "-f", "qcow2", *a, vfile], capture_output=True, text=True)  # noqa: E731
    assert io("-c", "write -P 0x5a 0 4k").returncode == 0
    assert "Pattern verification failed" in io("-r", "-c", "read -P 0 0 4k").stdout
    cloud.osc("--os-volume-api-version", "3.40", "volume", "revert", "s1b", env=env, fmt_json=False)
    wait_status(cloud, env, "volume", "v1b", "available")
    out = io("-r", "-c", "read -P 0 0 4k")
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout, out.stdout
    v2 = cloud.osc("volume", "create", "--snapshot", "s1b", "--size", "3", "v2", env=env)
    v3 = cloud.osc("volume", "create", "--source", "v1b", "v3", env=env)
    v4 = cloud.osc("volume", "create", "--type", fast, "--size", "1", "v4", env=env)
    for name in ("v2", "v3", "v4"):
        wait_status(cloud, env, "volume", name, "available")
    assert virtual_gib(os.path.join(files, "volumes", f"{v2['id']}.qcow2")) == 3
    assert virtual_gib(os.path.join(files, "volumes", f"{v3['id']}.qcow2")) == 2
    listed = {v["Name"]: v for v in cloud.osc("volume", "list", "--long", env=env)}
    assert set(listed) == {"v1b", "v2", "v3", "v4"} and listed["v4"]["Type"] == fast, listed

    # Volumes from images: the raw image's bytes, converted to qcow2; bootable.
    raw = os.path.join(cloud.data_dir, "vol-image.raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(3 << 20))
    img = cloud.osc("image", "create", "--public", "--disk-format", "raw", "--container-format", "bare",
                    "--file", raw, unique("volimg"))
    v5 = cloud.osc("volume", "create", "--image", img["id"], "--size", "1", "v5", env=env)
    shown = wait_status(cloud, env, "volume", "v5", "available")
    assert shown["bootable"] in (True, "true") and shown["volume_image_metadata"]["image_id"] == img["id"], shown
    v5_file = os.path.join(files, "volumes", f"{v5['id']}.qcow2")
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, v5_file], check=True)
    assert os.listdir(os.path.join(files, "staging")) == [], "the download is kept as the image's base"
    assert os.listdir(os.path.join(files, "images")) == [f"{img['id']}.raw"]
    # And back: the volume uploaded to a new image (qcow2) holds the same bytes.
    up = unique("fromvol")
    cloud.osc("image", "create", "--volume", "v5", "--disk-format", "qcow2", "--container-format", "bare", up,
              env=env, fmt_json=False)
    deadline = time.monotonic() + 60
    while cloud.osc("image", "show", up, env=env)["status"] != "active":
        assert time.monotonic() < deadline, "the uploaded image never became active"
        time.sleep(0.5)
    wait_status(cloud, env, "volume", "v5", "available")
    saved = os.path.join(cloud.data_dir, "uploaded.qcow2")
    cloud.osc("image", "save", "--file", saved, up, env=env)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, saved], check=True)
    cloud.osc("image", "delete", up, env=env)
    private = cloud.osc("image", "create", "--private", "--disk-format", "raw", "--container-format", "bare",
                        "--file", raw, unique("private"))
    p = cloud.osc("volume", "create", "--image", private["id"], "--size", "1", "v6", env=env, check=False)
    # The client looks the image up as the user first; the API refuses it too (the
    # isolation matrix asks it directly).
    assert p.returncode != 0 and ("No Image found" in p.stderr or "404" in p.stderr), p.stderr
    cloud.osc("volume", "delete", "v5", env=env)
    wait_status(cloud, env, "volume", "v5", "GONE")
    assert os.listdir(os.path.join(files, "images")) == [], "the image's base goes with its last volume"

    # Quotas: usage shown; over the limit is refused and says which quota.
    usage = cloud.osc("quota", "show", "--usage", project)
    assert any(row.get("Resource") == "volumes" and row.get("In Use") == 4 for row in usage), usage
    cloud.osc("quota", "set", "--volumes", "4", project)
    p = cloud.osc("volume", "create", "--size", "1", "v5", env=env, check=False)
    assert p.returncode != 0 and "VolumeLimitExceeded" in p.stderr + p.stdout, p.stderr
    # The largest single volume; then the project's own quotas go and the defaults apply.
    cloud.osc("quota", "set", "--volumes", "6", "--per-volume-gigabytes", "2", "--backups", "3", project, fmt_json=False)
    p = cloud.osc("volume", "create", "--size", "3", "v7", env=env, check=False)
    assert p.returncode != 0 and "VolumeSizeExceedsLimit" in p.stderr + p.stdout, p.stderr
    cloud.osc("quota", "delete", "--volume", project, fmt_json=False)
    limits = {row.get("Resource"): row.get("Limit") for row in cloud.osc("quota", "show", project)}
    assert limits.get("volumes") == 10 and limits.get("per-volume-gigabytes", limits.get("per_volume_gigabytes")) == -1, limits
    cloud.osc("quota", "set", "--volumes", "4", project)
    # Per volume type: shown for every type, set like the others.
    cloud.osc("quota", "set", "--volume-type", fast, "--gigabytes", "7", project, fmt_json=False)
    limits = {row.get("Resource"): row.get("Limit") for row in cloud.osc("quota", "show", project)}
    assert limits.get(f"gigabytes_{fast}") == 7 and limits.get(f"volumes_{fast}") == -1, limits
    # Bad input is a clear 400 and makes nothing.
    p = cloud.osc("volume", "create", "--size", "1", "--availability-zone", "mars", "v6", env=env, check=False)
    assert p.returncode != 0 and "400" in p.stderr + p.stdout, p.stderr

    # A volume with a snapshot stays; then everything goes, files too.
    p = cloud.osc("volume", "delete", "v1b", env=env, check=False)
    assert p.returncode != 0 and "dependent snapshots" in p.stderr + p.stdout, p.stderr
    cloud.osc("volume", "snapshot", "delete", "s1b", env=env)
    wait_status(cloud, env, "snapshot", "s1b", "GONE")
    cloud.osc("volume", "delete", "v1b", "v2", "v3", "v4", env=env)
    for name in ("v1b", "v2", "v3", "v4"):
        wait_status(cloud, env, "volume", name, "GONE")
    assert os.listdir(os.path.join(files, "volumes")) == []
    assert os.listdir(os.path.join(files, "snapshots")) == []
    usage = cloud.osc("quota", "show", "--usage", project)
    assert any(row.get("Resource") == "volumes" and row.get("In Use") == 0 for row in usage), usage
    cloud.osc("volume", "type", "delete", fast)

    # A transfer: offered by one project, taken by another with the id and the key; the
    # volume's snapshot goes with it (3.55).
    taker_project, taker = cloud.member_env(unique("taker"))
    gift = cloud.osc("volume", "create", "--size", "1", "gift", env=env)
    wait_status(cloud, env, "volume", "gift", "available")
    cloud.osc("volume", "snapshot", "create", "--volume", "gift", "gift-snap", env=env)
    wait_status(cloud, env, "snapshot", "gift-snap", "available")
    req = cloud.osc("--os-volume-api-version", "3.55", "volume", "transfer", "request", "create", "--snapshots",
                    "--name", "t1", "gift", env=env)
    assert req["auth_key"] and wait_status(cloud, env, "volume", "gift", "awaiting-transfer")
    assert [t["Name"] for t in cloud.osc("volume", "transfer", "request", "list", env=env)] == ["t1"]
    p = cloud.osc("volume", "transfer", "request", "accept", "--auth-key", "wrong", req["id"], env=taker, check=False)
    assert p.returncode != 0 and "auth key" in (p.stderr + p.stdout).lower(), p.stderr
    cloud.osc("volume", "transfer", "request", "accept", "--auth-key", req["auth_key"], req["id"], env=taker)
    moved = cloud.osc("volume", "show", gift["id"], env=taker)
    assert moved["status"] == "available" and moved["os-vol-tenant-attr:tenant_id"] == taker_project, moved
    assert cloud.osc("volume", "show", gift["id"], env=env, check=False).returncode != 0
    assert [s["Name"] for s in cloud.osc("volume", "snapshot", "list", env=taker)] == ["gift-snap"]
    assert cloud.osc("volume", "snapshot", "list", env=env) == []
    cloud.osc("volume", "snapshot", "delete", "gift-snap", env=taker)
    wait_status(cloud, taker, "snapshot", "gift-snap", "GONE")
    cloud.osc("volume", "delete", gift["id"], env=taker)

    # A type no backend suits: the volume ends in error and the project is told why.
    iscsi = unique("iscsi")
    cloud.osc("volume", "type", "create", "--property", "storage_protocol=iSCSI", iscsi)
    nowhere = cloud.osc("volume", "create", "--type", iscsi, "--size", "1", "nowhere", env=env)
    wait_status(cloud, env, "volume", "nowhere", "error")
    told = cloud.osc("--os-volume-api-version", "3.3", "volume", "message", "list", env=env)
    assert [(m["Resource UUID"], m["Event ID"]) for m in told] == [(nowhere["id"], "VOLUME_VOLUME_001_003")], told
    assert "the volume type asks for iSCSI" in told[0]["User Message"], told
    cloud.osc("--os-volume-api-version", "3.3", "volume", "message", "delete", told[0]["ID"], env=env, fmt_json=False)
    assert cloud.osc("--os-volume-api-version", "3.3", "volume", "message", "list", env=env) == []
    cloud.osc("volume", "delete", "nowhere", env=env)
    wait_status(cloud, env, "volume", "nowhere", "GONE")
    cloud.osc("volume", "type", "delete", iscsi)

    # What the admin sees of the service.
    services = cloud.osc("volume", "service", "list", env=admin)
    assert {s["Binary"] for s in services} == {"cinder-scheduler", "cinder-volume", "cinder-backup"}, services
    backend = next(s["Host"] for s in services if s["Binary"] == "cinder-volume")
    cloud.osc("volume", "service", "set", "--disable", "--disable-reason", "disk swap", backend, "cinder-volume",
              env=admin, fmt_json=False)
    shown = cloud.osc("volume", "service", "list", "--long", "--service", "cinder-volume", env=admin)
    assert [(s["Status"], s["Disabled Reason"]) for s in shown] == [("disabled", "disk swap")], shown
    cloud.osc("volume", "service", "set", "--enable", backend, "cinder-volume", env=admin, fmt_json=False)
    shown = cloud.osc("volume", "service", "list", "--service", "cinder-volume", env=admin)
    assert [s["Status"] for s in shown] == ["enabled"], shown
    zones = cloud.osc("availability", "zone", "list", "--volume", env=admin)
    assert [z["Zone Name"] for z in zones] == ["nova"], zones


def test_volume_backup_commands(cloud):
    """Backups with the real client on the file backend: the bytes written in a volume
    come back in a new volume and in an existing one; an incremental backup stores
    only what changed."""
    project = unique("bakp")
    _, env = cloud.member_env(project)
    files = os.path.join(cloud.data_dir, "volumes", "volumes")
    chunks = os.path.join(cloud.data_dir, "backups", "chunks")

    def io(volume_id, *args):
        p = subprocess.run(["qemu-io", "-f", "qcow2", *args, os.path.join(files, f"{volume_id}.qcow2")],
                           capture_output=True, text=True)
        return p.returncode == 0 and "Pattern verification failed" not in p.stdout

    def stored():
        return sum(len(os.listdir(os.path.join(chunks, d))) for d in os.listdir(chunks))

    src = cloud.osc("volume", "create", "--size", "1", "--property", "app=db", "src", env=env)
    wait_status(cloud, env, "volume", "src", "available")
    assert io(src["id"], "-c", "write -P 0x41 0 1M") and io(src["id"], "-c", "write -P 0x42 300M 64k")
    before = stored()
    full = cloud.osc("volume", "backup", "create", "--name", "full", "--description", "nightly", "src", env=env)
    shown = wait_status(cloud, env, "backup", "full", "available")
    assert shown["volume_id"] == src["id"] and shown["size"] == 1 and shown["is_incremental"] is False, shown
    assert stored() - before == 2, "two chunks hold data; zeros are not stored"
    wait_status(cloud, env, "volume", "src", "available")
    assert io(src["id"], "-c", "write -P 0x43 300M 64k")
    before = stored()
    cloud.osc("volume", "backup", "create", "--incremental", "--name", "incr", "src", env=env)
    shown = wait_status(cloud, env, "backup", "incr", "available")
    assert shown["is_incremental"] is True and stored() - before == 1, shown
    assert cloud.osc("volume", "backup", "show", "full", env=env)["has_dependent_backups"] is True
    listed = cloud.osc("volume", "backup", "list", "--long", env=env)
    assert sorted(b["Name"] for b in listed) == ["full", "incr"], listed
    usage = cloud.osc("quota", "show", "--usage", project)
    assert any(row.get("Resource") == "backups" and row.get("In Use") == 2 for row in usage), usage

    # Restored into a new volume: the bytes of the incremental backup, the metadata.
    r = cloud.osc("volume", "backup", "restore", "incr", "fromincr", env=env, fmt_json=True)
    assert r["volume_name"] == "fromincr", r
    back = wait_status(cloud, env, "volume", "fromincr", "available")
    assert back["properties"] == {"app": "db"}, back
    assert io(back["id"], "-r", "-c", "read -P 0x41 0 1M") and io(back["id"], "-r", "-c", "read -P 0x43 300M 64k")
    # Into an existing volume (`--force`): the full backup's bytes.
    p = cloud.osc("volume", "backup", "restore", "full", "src", env=env, check=False)
    assert p.returncode != 0 and "--force" in p.stderr, p.stderr
    cloud.osc("volume", "backup", "restore", "--force", "full", "src", env=env, fmt_json=True)
    wait_status(cloud, env, "backup", "full", "available")
    wait_status(cloud, env, "volume", "src", "available")
    assert io(src["id"], "-r", "-c", "read -P 0x42 300M 64k")

    # A new volume made from a backup (3.47).
    made = cloud.osc("--os-volume-api-version", "3.47", "volume", "create", "--backup", "full", "--size", "1", "fromfull",
                     env=env)
    wait_status(cloud, env, "volume", "fromfull", "available")
    wait_status(cloud, env, "backup", "full", "available")
    assert io(made["id"], "-r", "-c", "read -P 0x42 300M 64k")
    cloud.osc("volume", "delete", "fromfull", env=env)
    wait_status(cloud, env, "volume", "fromfull", "GONE")

    # Refusals change nothing; then everything goes, the chunks too.
    p = cloud.osc("volume", "backup", "delete", "full", env=env, check=False)
    assert p.returncode != 0 and "Incremental backups exist" in p.stderr + p.stdout, p.stderr
    _, stranger = cloud.member_env(unique("bakq"))
    assert cloud.osc("volume", "backup", "show", full["id"], env=stranger, check=False).returncode != 0
    cloud.osc("volume", "backup", "delete", "incr", env=env, fmt_json=False)
    wait_status(cloud, env, "backup", "incr", "GONE")
    cloud.osc("volume", "backup", "delete", "full", env=env, fmt_json=False)
    wait_status(cloud, env, "backup", "full", "GONE")
    cloud.osc("volume", "delete", "src", "fromincr", env=env)
    for name in ("src", "fromincr"):
        wait_status(cloud, env, "volume", name, "GONE")
    assert cloud.osc("volume", "backup", "list", env=env) == [] and stored() == 0


def test_server_volume_commands(cloud):
    """Attach and detach with `openstack server add|remove volume`: the volume goes
    attaching → in-use → detaching → available, the server lists it, and deleting the
    server lets go of it (or deletes it, when marked delete-on-termination)."""
    base = compute_basics(cloud, "10.77.0.0/24", shared=True)
    _, env = cloud.member_env(unique("attachp"))
    s = cloud.osc("server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network",
                  base["network"], "--wait", unique("vm"), env=env)
    cloud.osc("volume", "create", "--size", "1", "data", env=env)
    cloud.osc("volume", "create", "--size", "1", "scratch", env=env)
    wait_status(cloud, env, "volume", "data", "available")
    wait_status(cloud, env, "volume", "scratch", "available")

    cloud.osc("server", "add", "volume", s["id"], "data", env=env, fmt_json=False)
    shown = wait_status(cloud, env, "volume", "data", "in-use")
    assert [(a["server_id"], a["device"]) for a in shown["attachments"]] == [(s["id"], "/dev/vdb")], shown
    listed = cloud.osc("server", "volume", "list", s["id"], env=env)
    assert [(v["Volume ID"], v["Device"]) for v in listed] == [(shown["id"], "/dev/vdb")], listed
    server = cloud.osc("server", "show", s["id"], env=env)
    assert shown["id"] in json.dumps(server["volumes_attached"]), server
    # Refused, changing nothing: deleting an attached volume, attaching it twice.
    p = cloud.osc("volume", "delete", "data", env=env, check=False)
    assert p.returncode != 0 and "in-use" in p.stderr + p.stdout, p.stderr
    p = cloud.osc("server", "add", "volume", s["id"], "data", env=env, check=False)
    assert p.returncode != 0 and "already attached" in p.stderr + p.stdout, p.stderr
    assert wait_status(cloud, env, "volume", "data", "in-use")

    cloud.osc("server", "remove", "volume", s["id"], "data", env=env, fmt_json=False)
    assert wait_status(cloud, env, "volume", "data", "available")["attachments"] == []
    assert cloud.osc("server", "volume", "list", s["id"], env=env) == []

    # A multiattach volume (its type says so) on two servers at once (2.60+): every host
    # reaches it through its one NBD export, which ends with its last server.
    shared_type = unique("shared")
    cloud.osc("volume", "type", "create", "--property", "multiattach=<is> True", shared_type)
    both = cloud.osc("volume", "create", "--size", "1", "--type", shared_type, "both", env=env)
    assert both["multiattach"] is True, both
    wait_status(cloud, env, "volume", "both", "available")
    s2 = cloud.osc("server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network",
                   base["network"], "--wait", unique("vm2"), env=env)
    p = cloud.osc("--os-compute-api-version", "2.59", "server", "add", "volume", s["id"], "both", env=env, check=False)
    assert p.returncode != 0 and "2.60" in p.stderr + p.stdout, p.stderr
    for server in (s["id"], s2["id"]):
        cloud.osc("--os-compute-api-version", "2.60", "server", "add", "volume", server, "both", env=env, fmt_json=False)
        deadline = time.monotonic() + 60
        while server not in json.dumps(cloud.osc("volume", "show", "both", env=env)["attachments"]):
            assert time.monotonic() < deadline, f"never attached to {server}"
            time.sleep(0.3)
    shown = wait_status(cloud, env, "volume", "both", "in-use")
    assert sorted(a["server_id"] for a in shown["attachments"]) == sorted([s["id"], s2["id"]]), shown
    export = os.path.join(cloud.data_dir, "volumes", "exports", f"{both['id']}.json")
    assert os.path.exists(export), "served over NBD, on the storage host too"
    cloud.osc("server", "remove", "volume", s["id"], "both", env=env, fmt_json=False)
    deadline = time.monotonic() + 60
    while len(cloud.osc("volume", "show", "both", env=env)["attachments"]) != 1:
        assert time.monotonic() < deadline, "the first server never let go"
        time.sleep(0.3)
    assert wait_status(cloud, env, "volume", "both", "in-use") and os.path.exists(export), "the other server has it"
    cloud.osc("server", "remove", "volume", s2["id"], "both", env=env, fmt_json=False)
    assert wait_status(cloud, env, "volume", "both", "available")["attachments"] == []
    assert not os.path.exists(export), "the export ends with its last server"
    cloud.osc("server", "delete", "--wait", s2["id"], env=env, fmt_json=False)
    cloud.osc("volume", "delete", "both", env=env)
    wait_status(cloud, env, "volume", "both", "GONE")
    cloud.osc("volume", "type", "delete", shared_type)

    # The attachments API (3.27+, `complete` 3.44) driven by hand: reserve, connect,
    # complete, list, delete.
    v = ("--os-volume-api-version", "3.44")
    a = cloud.osc(*v, "volume", "attachment", "create", "--server", s["id"], "data", env=env)
    assert (a["Status"], a["Instance ID"]) == ("reserved", s["id"]), a
    assert wait_status(cloud, env, "volume", "data", "reserved")["attachments"] == []
    a = cloud.osc(*v, "volume", "attachment", "set", "--host", "h1", "--mountpoint", "/dev/vdc", a["ID"], env=env,
                  fmt_json=True)
    assert a["Status"] == "attaching" and "file" in json.dumps(a["Properties"]), a
    cloud.osc(*v, "volume", "attachment", "complete", a["ID"], env=env, fmt_json=False)
    shown = wait_status(cloud, env, "volume", "data", "in-use")
    assert [(x["attachment_id"], x["device"]) for x in shown["attachments"]] == [(a["ID"], "/dev/vdc")], shown
    listed = cloud.osc(*v, "volume", "attachment", "list", "--volume-id", shown["id"], env=env)
    assert [(x["ID"], x["Status"]) for x in listed] == [(a["ID"], "attached")], listed
    # Without the option the client negotiates the newest version both know.
    assert [x["ID"] for x in cloud.osc("volume", "attachment", "list", env=env)] == [a["ID"]]
    cloud.osc(*v, "volume", "attachment", "delete", a["ID"], env=env, fmt_json=False)
    assert wait_status(cloud, env, "volume", "data", "available")["attachments"] == []

    # Deleting the server: one volume let go, the other (delete on termination) gone.
    cloud.osc("server", "add", "volume", s["id"], "data", env=env, fmt_json=False)
    cloud.osc("--os-compute-api-version", "2.79", "server", "add", "volume", "--enable-delete-on-termination",
              s["id"], "scratch", env=env, fmt_json=False)
    wait_status(cloud, env, "volume", "data", "in-use")
    wait_status(cloud, env, "volume", "scratch", "in-use")
    cloud.osc("server", "delete", "--wait", s["id"], env=env, fmt_json=False)
    assert wait_status(cloud, env, "volume", "data", "available")["attachments"] == []
    wait_status(cloud, env, "volume", "scratch", "GONE")
    cloud.osc("volume", "delete", "data", env=env)
    wait_status(cloud, env, "volume", "data", "GONE")

    # Boot from volume: the user's bootable volume, or a new one made from an image.
    cloud.osc("volume", "create", "--image", base["image"], "--size", "1", "rootvol", env=env)
    root = wait_status(cloud, env, "volume", "rootvol", "available")
    assert root["bootable"] in (True, "true"), root
    bfv = cloud.osc("server", "create", "--flavor", base["flavor"], "--volume", "rootvol", "--network",
                    base["network"], "--wait", unique("bfv"), env=env)
    assert bfv["status"] == "ACTIVE" and not bfv["image"].startswith(base["image"]), bfv
    shown = wait_status(cloud, env, "volume", "rootvol", "in-use")
    assert [(a["server_id"], a["device"]) for a in shown["attachments"]] == [(bfv["id"], "/dev/vda")], shown
    p = cloud.osc("server", "remove", "volume", bfv["id"], "rootvol", env=env, check=False)
    assert p.returncode != 0 and "root device" in p.stderr + p.stdout, p.stderr
    # Its snapshot, as Nova makes it: a volume snapshot, and an image with no data that
    # names it; a server from that image boots from a volume made from the snapshot.
    snap_name = unique("bfvsnap")
    snap = cloud.osc("server", "image", "create", "--name", snap_name, "--wait", bfv["id"], env=env)
    shown = cloud.osc("image", "show", snap["id"], env=env)
    assert shown["status"] == "active" and shown["size"] == 0, shown
    assert "bdm_v2" in json.dumps(shown["properties"]), shown
    volume_snaps = cloud.osc("volume", "snapshot", "list", env=env)
    assert [s["Name"] for s in volume_snaps] == [f"snapshot for {snap_name}"], volume_snaps
    wait_status(cloud, env, "snapshot", volume_snaps[0]["ID"], "available")
    again = cloud.osc("server", "create", "--flavor", base["flavor"], "--image", snap["id"], "--network",
                      base["network"], "--wait", unique("again"), env=env)
    assert again["status"] == "ACTIVE", again
    again_root = wait_status(cloud, env, "volume", f"boot-{again['id']}", "in-use")
    assert again_root["snapshot_id"] == volume_snaps[0]["ID"], again_root
    cloud.osc("server", "delete", "--wait", again["id"], env=env, fmt_json=False)
    wait_status(cloud, env, "volume", again_root["id"], "available")
    cloud.osc("volume", "delete", again_root["id"], env=env)
    wait_status(cloud, env, "volume", again_root["id"], "GONE")
    cloud.osc("image", "delete", snap["id"], env=env)
    cloud.osc("volume", "snapshot", "delete", volume_snaps[0]["ID"], env=env)
    wait_status(cloud, env, "snapshot", volume_snaps[0]["ID"], "GONE")
    bfi = cloud.osc("server", "create", "--flavor", base["flavor"], "--image", base["image"], "--boot-from-volume", "2",
                    "--network", base["network"], "--wait", unique("bfi"), env=env)
    assert bfi["status"] == "ACTIVE", bfi
    made = wait_status(cloud, env, "volume", f"boot-{bfi['id']}", "in-use")
    assert made["size"] == 2 and made["bootable"] in (True, "true"), made
    cloud.osc("server", "delete", "--wait", bfv["id"], bfi["id"], env=env, fmt_json=False)
    # Neither was to go with its server: both stay, available.
    wait_status(cloud, env, "volume", "rootvol", "available")
    wait_status(cloud, env, "volume", made["id"], "available")
    cloud.osc("volume", "delete", "rootvol", made["id"], env=env)
    wait_status(cloud, env, "volume", "rootvol", "GONE")


def unfinished(data_dir):
    import sqlite3

    db = sqlite3.connect(os.path.join(data_dir, "stratus.sqlite"), timeout=10)
    n = db.execute("SELECT COUNT(*) FROM volume_sagas WHERE state IN ('running', 'unwinding')").fetchone()[0]
    db.close()
    return n


def test_kill9_during_creates_and_deletes_converges():
    """`kill -9` right after 12 creates, and again right after their deletes: after each
    restart every volume ends available (then gone), with its file, its quota and no
    half-written file left."""
    data_dir = tempfile.mkdtemp(prefix="stratus-volcrash-")
    c = Cloud("sqlite", data_dir, extra_env={"STRATUS_VOLUME__RECONCILE_SECS": "1"})
    try:
        project, env = c.member_env(unique("crash"))
        c.osc("quota", "set", "--volumes", "20", project)
        token = c.password_token(env["OS_USERNAME"], "pw", env["OS_PROJECT_NAME"])
        base = f"{c.volume_url}/v3/{project}"
        files = os.path.join(data_dir, "volumes", "volumes")
        ids = []
        for i in range(12):
            status, _, body = c.http("POST", "/volumes", token, {"volume": {"size": 1, "name": f"c{i}"}}, base=base)
            assert status == 202, body
            ids.append(body["volume"]["id"])
        c.kill9()
        print("sagas under way at the crash:", unfinished(data_dir))
        c.restart()

        def statuses():
            return {c.http("GET", f"/volumes/{i}", token, base=base)[2].get("volume", {}).get("status") for i in ids}

        deadline = time.monotonic() + 60
        while statuses() != {"available"}:
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.3)
        assert sorted(os.listdir(files)) == sorted(f"{i}.qcow2" for i in ids), "one whole file each, no .part left"
        _, _, q = c.http("GET", f"/os-quota-sets/{project}?usage=True", token, base=base)
        assert q["quota_set"]["volumes"]["in_use"] == 12 and q["quota_set"]["gigabytes"]["in_use"] == 12, q

        for i in ids:
            assert c.http("DELETE", f"/volumes/{i}", token, base=base)[0] == 202
        c.kill9()
        print("sagas under way at the crash:", unfinished(data_dir))
        c.restart()
        deadline = time.monotonic() + 60
        while any(c.http("GET", f"/volumes/{i}", token, base=base)[0] != 404 for i in ids):
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.3)
        assert os.listdir(files) == []
        _, _, q = c.http("GET", f"/os-quota-sets/{project}?usage=True", token, base=base)
        assert q["quota_set"]["volumes"]["in_use"] == 0 and q["quota_set"]["gigabytes"]["in_use"] == 0, q
    finally:
        c.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_kill9_during_attaches_and_detaches_converges():
    """`kill -9` right after six attaches, and again right after detaches: after each
    restart every volume is either attached to its server (and listed by it) or
    available (and listed by none), never left attaching, detaching or reserved."""
    data_dir = tempfile.mkdtemp(prefix="stratus-attachcrash-")
    c = Cloud("sqlite", data_dir, extra_env={"STRATUS_VOLUME__RECONCILE_SECS": "1",
                                              "STRATUS_COMPUTE__RECONCILE_SECS": "1"})
    try:
        base = compute_basics(c, "10.78.0.0/24", shared=True)
        project, env = c.member_env(unique("acrash"))
        token = c.password_token(env["OS_USERNAME"], "pw", env["OS_PROJECT_NAME"])
        V, C = f"{c.volume_url}/v3/{project}", c.compute_url + "/v2.1"
        flavor = c.osc("flavor", "show", base["flavor"])["id"]
        net = c.osc("network", "show", base["network"])["id"]
        pairs = []
        for i in range(6):
            s = c.http("POST", "/servers", token, {"server": {"name": f"s{i}", "imageRef": base["image"],
                                                              "flavorRef": flavor, "networks": [{"uuid": net}]}}, base=C)
            assert s[0] == 202, s
            v = c.http("POST", "/volumes", token, {"volume": {"size": 1, "name": f"v{i}"}}, base=V)
            assert v[0] == 202, v
            pairs.append((s[2]["server"]["id"], v[2]["volume"]["id"]))

        def settled(want_server_status, timeout=60):
            deadline = time.monotonic() + timeout
            while True:
                states = [(c.http("GET", f"/servers/{s}", token, base=C)[2]["server"]["status"],
                           c.http("GET", f"/volumes/{v}", token, base=V)[2]["volume"]["status"]) for s, v in pairs]
                if all(ss == want_server_status and vs in ("available", "in-use") for ss, vs in states):
                    return
                assert time.monotonic() < deadline, states
                time.sleep(0.3)

        def consistent():
            """Each volume's state matches what its server lists; answers how many are attached."""
            attached = 0
            for s, v in pairs:
                vol = c.http("GET", f"/volumes/{v}", token, base=V)[2]["volume"]
                listed = [a["volumeId"] for a in
                          c.http("GET", f"/servers/{s}/os-volume_attachments", token, base=C)[2]["volumeAttachments"]]
                if vol["status"] == "in-use":
                    assert [a["server_id"] for a in vol["attachments"]] == [s] and listed == [v], (vol, listed)
                    attached += 1
                else:
                    assert vol["status"] == "available" and vol["attachments"] == [] and listed == [], (vol, listed)
            return attached

        def converged(check, what):
            """`check()`'s answer once it stops failing (within 60 s of a restart)."""
            deadline = time.monotonic() + 60
            while True:
                try:
                    return check()
                except AssertionError:
                    assert time.monotonic() < deadline, f"{what} never settled after the restart"
                    time.sleep(0.5)

        settled("ACTIVE")
        for s, v in pairs:
            r = c.http("POST", f"/servers/{s}/os-volume_attachments", token, {"volumeAttachment": {"volumeId": v}}, base=C)
            assert r[0] == 200, r
        c.kill9()
        c.restart()
        # The attaches resume or unwind; either way the pair agrees and nothing is held.
        attached = converged(lambda: (settled("ACTIVE", timeout=0), consistent())[1], "attaches")
        print(f"{attached} of {len(pairs)} attaches completed across the crash")

        for s, v in pairs:
            if c.http("GET", f"/volumes/{v}", token, base=V)[2]["volume"]["status"] == "in-use":
                assert c.http("DELETE", f"/servers/{s}/os-volume_attachments/{v}", token, base=C)[0] == 202
        c.kill9()
        c.restart()
        def all_detached():
            settled("ACTIVE", timeout=0)
            assert consistent() == 0

        converged(all_detached, "detaches")
        # Every server and volume is free again: a new attach works at once.
        s, v = pairs[0]
        assert c.http("POST", f"/servers/{s}/os-volume_attachments", token, {"volumeAttachment": {"volumeId": v}},
                      base=C)[0] == 200
    finally:
        c.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
