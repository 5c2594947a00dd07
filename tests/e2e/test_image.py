"""Every image command of the issue, with the real python-openstackclient against the
real `stratusd all-in-one`, on PostgreSQL + NATS."""

import filecmp
import json
import hashlib
import os
import socket
import subprocess
import time

import pytest

from conftest import unique

# PostgreSQL + NATS (see conftest).
BACKEND = "postgres"


@pytest.fixture(scope="module")
def disks(cloud):
    d = os.path.join(cloud.data_dir, "disks")
    os.makedirs(d, exist_ok=True)
    paths = {
        "qcow2": os.path.join(d, "disk.qcow2"),
        "base": os.path.join(d, "base.qcow2"),
        "backed": os.path.join(d, "backed.qcow2"),
        "raw": os.path.join(d, "disk.raw"),
    }
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", paths["qcow2"], "64M"], check=True)
    # Some data in the qcow2 so the download comparison means something.
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", paths["base"], "16M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", paths["base"], "-F", "qcow2", paths["backed"]], check=True
    )
    with open(paths["raw"], "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 123))
    return paths


def member_env(cloud, name):
    return cloud.member_env(name)


def test_create_show_save_delete(cloud, disks):
    name = unique("img")
    img = cloud.osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disks["qcow2"], name)
    assert img["status"] == "active" and img["disk_format"] == "qcow2"
    with open(disks["qcow2"], "rb") as f:
        data = f.read()
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["size"] == len(data) and img["virtual_size"] == 64 * 1024 * 1024
    shown = cloud.osc("image", "show", name)
    assert shown["id"] == img["id"]
    out = os.path.join(cloud.data_dir, "saved.qcow2")
    cloud.osc("image", "save", "--file", out, name)
    assert filecmp.cmp(out, disks["qcow2"], shallow=False)
    cloud.osc("image", "delete", name)
    assert cloud.osc("image", "show", name, check=False).returncode != 0


def test_chunked_upload_from_stdin(cloud, disks):
    name = unique("img")
    img = cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", name, stdin=disks["raw"])
    assert img["status"] == "active" and img["size"] == os.path.getsize(disks["raw"])
    with open(disks["raw"], "rb") as f:
        assert img["checksum"] == hashlib.md5(f.read()).hexdigest()


def test_list_filters_sort_limit_and_properties(cloud, disks):
    tag, a, b = unique("tag"), unique("aaa"), unique("bbb")
    for n in (b, a):
        cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--property", f"flavor_of={tag}",
                  "--file", disks["raw"], n)
    listed = cloud.osc("image", "list", "--property", f"flavor_of={tag}", "--sort", "name:asc")
    assert [x["Name"] for x in listed] == [a, b]
    assert len(cloud.osc("image", "list", "--property", f"flavor_of={tag}", "--limit", "1")) >= 1
    # set / unset properties and tags
    cloud.osc("image", "set", "--property", "os_distro=debian", "--tag", tag, a)
    shown = cloud.osc("image", "show", a)
    assert shown["properties"]["os_distro"] == "debian" and tag in shown["tags"]
    assert [x["Name"] for x in cloud.osc("image", "list", "--tag", tag)] == [a]
    cloud.osc("image", "unset", "--property", "os_distro", "--tag", tag, a)
    shown = cloud.osc("image", "show", a)
    assert "os_distro" not in shown["properties"] and tag not in shown["tags"]


def test_visibility_protection_and_deactivation(cloud, disks):
    name = unique("img")
    cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", disks["raw"], name)
    _, env = member_env(cloud, unique("viewer"))
    # Private to its project: another project cannot see it.
    cloud.osc("image", "set", "--private", name)
    assert cloud.osc("image", "show", name, env=env, check=False).returncode != 0
    # Public (admins only): everyone sees it.
    cloud.osc("image", "set", "--public", name)
    assert name in [x["Name"] for x in cloud.osc("image", "list", "--public", env=env)]
    cloud.osc("image", "set", "--community", name)
    assert name not in [x["Name"] for x in cloud.osc("image", "list", env=env)]
    assert name in [x["Name"] for x in cloud.osc("image", "list", "--community", env=env)]
    cloud.osc("image", "set", "--shared", name)
    # Protected images cannot be deleted.
    cloud.osc("image", "set", "--protected", name)
    assert cloud.osc("image", "delete", name, check=False).returncode != 0
    cloud.osc("image", "set", "--unprotected", name)
    # Deactivated images cannot be downloaded.
    cloud.osc("image", "set", "--deactivate", name)
    assert cloud.osc("image", "show", name)["status"] == "deactivated"
    cloud.osc("image", "set", "--activate", name)
    assert cloud.osc("image", "show", name)["status"] == "active"
    cloud.osc("image", "delete", name)


def test_sharing_with_another_project(cloud, disks):
    name = unique("img")
    img = cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--shared", "--file", disks["raw"], name)
    pid, env = member_env(cloud, unique("guest"))
    assert name not in [x["Name"] for x in cloud.osc("image", "list", env=env)]
    cloud.osc("image", "add", "project", name, pid)
    members = cloud.osc("image", "member", "list", name)
    assert [(m["Member ID"], m["Status"]) for m in members] == [(pid, "pending")]
    cloud.osc("image", "set", "--accept", img["id"], env=env)
    assert name in [x["Name"] for x in cloud.osc("image", "list", "--shared", env=env)]
    assert cloud.osc("image", "member", "list", name)[0]["Status"] == "accepted"


def test_unsafe_images_are_refused(cloud, disks):
    backed = unique("backed")
    p = cloud.osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disks["backed"], backed,
                  check=False)
    assert p.returncode != 0 and "backing file" in p.stderr
    liar = unique("liar")
    p = cloud.osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disks["raw"], liar,
                  check=False)
    assert p.returncode != 0 and "does not match" in p.stderr
    # openstacksdk deletes an image whose upload failed; if one remains, it holds no data.
    for n in (backed, liar):
        p = cloud.osc("image", "show", n, check=False)
        if p.returncode == 0:
            assert '"status": "queued"' in p.stdout
    assert os.listdir(os.path.join(cloud.data_dir, "images", "staging")) == []


def test_upload_cut_off_halfway(cloud):
    name = unique("cut")
    token = cloud.password_token()
    # Made over the API: `openstack image create` without --file would upload its stdin.
    status, _, img = cloud.http("POST", "/v2/images", token=token, base=cloud.image_url,
                                body={"name": name, "disk_format": "raw", "container_format": "bare"})
    assert status == 201
    total = 8 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", cloud.image_port)) as s:
        s.sendall(
            (f"PUT /v2/images/{img['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
             f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n").encode()
        )
        s.sendall(os.urandom(total // 2))
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while cloud.osc("image", "show", name)["status"] == "saving" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert cloud.osc("image", "show", name)["status"] == "killed"
    images_dir = os.path.join(cloud.data_dir, "images")
    leftovers = [f for d in ("images", "staging") for f in os.listdir(os.path.join(images_dir, d)) if img["id"] in f]
    assert leftovers == []


def test_quota_stops_the_nth_image(cloud):
    pid, env = member_env(cloud, unique("quota"))
    cloud.osc("limit", "create", "--project", pid, "--service", "image", "--resource-limit", "2", "image_count_total")
    time.sleep(0.3)
    for _ in range(2):
        cloud.osc("image", "create", unique("q"), env=env)
    p = cloud.osc("image", "create", unique("q"), env=env, check=False)
    assert p.returncode != 0 and "quota" in p.stderr.lower()


def test_import_flow(cloud, disks):
    name = unique("imported")
    img = cloud.osc("image", "create", "--import", "--disk-format", "qcow2", "--container-format", "bare",
                    "--file", disks["qcow2"], name)
    deadline = time.monotonic() + 30
    status = img.get("status")
    while status != "active" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = cloud.osc("image", "show", name)["status"]
    assert status == "active"
    with open(disks["qcow2"], "rb") as f:
        assert cloud.osc("image", "show", name)["checksum"] == hashlib.md5(f.read()).hexdigest()


def test_image_service_alone(cloud, disks):
    """`stratusd image` in its own process: tokens checked with identity's published
    keys, quotas read over HTTP as the service user."""
    from conftest import ADMIN_PASSWORD, Cloud

    extra = {
        "STRATUS_IDENTITY__URL": cloud.url,
        "STRATUS_SERVICE_AUTH__USERNAME": "admin",
        "STRATUS_SERVICE_AUTH__PASSWORD": ADMIN_PASSWORD,
    }
    alone_dir = os.path.join(cloud.data_dir, "alone")
    os.makedirs(alone_dir, exist_ok=True)
    db_url = cloud.db_url or "sqlite://" + os.path.join(cloud.data_dir, "stratus.sqlite") + "?mode=rwc"
    alone = Cloud(cloud.backend, alone_dir, command="image", db_url=db_url, bus_url=cloud.bus_url, extra_env=extra)
    try:
        alone.wait_ready(url=alone.image_url + "/versions")
        token = cloud.password_token()
        status, _, img = alone.http("POST", "/v2/images", token=token, base=alone.image_url,
                                    body={"name": unique("alone"), "disk_format": "raw", "container_format": "bare"})
        assert status == 201, img
        status, _, _ = alone.http("GET", f"/v2/images/{img['id']}", token=token, base=alone.image_url)
        assert status == 200
        assert alone.http("GET", "/v2/images", token="bogus", base=alone.image_url)[0] == 401
        # The record is in the shared database: the all-in-one's image API sees it too.
        assert cloud.osc("image", "show", img["id"])["name"] == img["name"]
    finally:
        alone.stop()


def test_metadata_definitions(cloud):
    """The metadefs catalog with the openstack client: an admin defines a namespace, its
    properties, objects and resource types; a member reads it but changes nothing."""
    ns = unique("OS::Test::Ns")
    cloud.osc("image", "metadef", "namespace", "create", "--public", "--protected", "--description", "e2e", ns)
    assert "OS::Glance::Image" in [t["Name"] for t in cloud.osc("image", "metadef", "resource", "type", "list")]
    cloud.osc("image", "metadef", "resource", "type", "association", "create", ns, "OS::Glance::Image")
    assert [a["Name"] for a in cloud.osc("image", "metadef", "resource", "type", "association", "list", ns)] == [
        "OS::Glance::Image"
    ]
    prop = cloud.osc(
        "image", "metadef", "property", "create", ns,
        "--name", "hw_disk_bus", "--title", "Disk bus", "--type", "string",
        "--schema", json.dumps({"enum": ["virtio", "scsi", "ide"], "description": "The disk bus"}),
    )
    assert prop["title"] == "Disk bus"
    shown = cloud.osc("image", "metadef", "property", "show", ns, "hw_disk_bus")
    assert shown["enum"] == ["virtio", "scsi", "ide"], shown
    assert "hw_disk_bus" in str(cloud.osc("image", "metadef", "property", "list", ns))
    cloud.osc("image", "metadef", "object", "create", "--namespace", ns, "Topology")
    assert [o["name"] for o in cloud.osc("image", "metadef", "object", "list", ns)] == ["Topology"]
    listed = cloud.osc("image", "metadef", "namespace", "list", "--resource-types", "OS::Glance::Image")
    assert ns in [n["namespace"] for n in listed], listed

    # A member reads the public catalog and changes none of it.
    _, env = cloud.member_env(unique("md-reader"))
    assert cloud.osc("image", "metadef", "namespace", "show", ns, env=env)["description"] == "e2e"
    assert cloud.osc("image", "metadef", "namespace", "delete", ns, env=env, check=False).returncode != 0
    assert cloud.osc("image", "metadef", "namespace", "create", unique("OS::Mine"), env=env, check=False).returncode != 0

    # Protected until unprotected; then the namespace goes with what it holds.
    assert cloud.osc("image", "metadef", "namespace", "delete", ns, check=False).returncode != 0
    cloud.osc("image", "metadef", "namespace", "set", "--unprotected", "--public", ns)
    cloud.osc("image", "metadef", "namespace", "delete", ns)
    assert cloud.osc("image", "metadef", "namespace", "show", ns, check=False).returncode != 0
