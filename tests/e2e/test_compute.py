"""Compute with the real `openstack` client against `stratusd all-in-one` (fake
hypervisor): flavors, keypairs, servers and their actions, server groups, hypervisors,
quotas, limits, usage and instance actions, on SQLite + in-process bus."""

import base64
import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import compute_basics, unique




@pytest.fixture(scope="module")
def base(cloud):
    """A flavor, an image and a shared network with a subnet, made by the admin."""
    return compute_basics(cloud, "10.20.0.0/24", shared=True)


def wait_status(cloud, server, status, env=None, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        s = cloud.osc("server", "show", server, env=env)
        if s["status"] == status:
            return s
        assert time.monotonic() < deadline, f"{server} is {s['status']}, not {status}"
        time.sleep(0.3)


def test_flavors(cloud):
    name = unique("f")
    f = cloud.osc("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "5", "--property", "hw:cpu=x", name)
    assert (f["vcpus"], f["ram"], f["disk"]) == (2, 512, 5)
    shown = cloud.osc("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu": "x"}
    assert name in [x["Name"] for x in cloud.osc("flavor", "list")]
    # A private flavor is seen only by the projects given access.
    private = unique("priv")
    cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "--private", private)
    project, env = cloud.member_env(unique("fp"))
    assert private not in [x["Name"] for x in cloud.osc("flavor", "list", env=env)]
    assert cloud.osc("flavor", "show", private, env=env, check=False).returncode != 0
    cloud.osc("flavor", "set", "--project", project, private)
    assert private in [x["Name"] for x in cloud.osc("flavor", "list", "--all", env=env)]
    # Members cannot create flavors; bad input is refused.
    p = cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "1", "--disk", "1", unique("x"), env=env, check=False)
    assert p.returncode != 0 and "403" in p.stderr
    p = cloud.osc("flavor", "create", "--vcpus", "0", "--ram", "1", "--disk", "1", unique("x"), check=False)
    assert p.returncode != 0 and "400" in p.stderr
    cloud.osc("flavor", "delete", name)
    assert name not in [x["Name"] for x in cloud.osc("flavor", "list")]


def test_keypairs(cloud):
    _, env = cloud.member_env(unique("kp"))
    generated = unique("gen")
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "id")
        cloud.osc("keypair", "create", "--private-key", key, generated, env=env, fmt_json=False)
        pub = subprocess.run(["ssh-keygen", "-y", "-f", key], capture_output=True, text=True)
        if pub.returncode == 0:
            listed = cloud.osc("keypair", "show", "--public-key", generated, env=env, fmt_json=False)
            assert listed.split()[1] == pub.stdout.split()[1]
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key + "2"], check=True)
        imported = unique("imp")
        cloud.osc("keypair", "create", "--public-key", key + "2.pub", imported, env=env)
    names = [k["Name"] for k in cloud.osc("keypair", "list", env=env)]
    assert {generated, imported} <= set(names)
    # Keypairs belong to their user: the admin does not see them.
    assert imported not in [k["Name"] for k in cloud.osc("keypair", "list")]
    p = cloud.osc("keypair", "create", "--public-key", "/dev/null", unique("bad"), env=env, check=False)
    assert p.returncode != 0
    cloud.osc("keypair", "delete", imported, env=env)
    assert imported not in [k["Name"] for k in cloud.osc("keypair", "list", env=env)]


def test_server_lifecycle(cloud, base):
    _, env = cloud.member_env(unique("sv"))
    kp = unique("k")
    cloud.osc("keypair", "create", kp, env=env, fmt_json=False)
    name = unique("vm")
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as ud:
        ud.write("#!/bin/sh\necho hello\n")
        ud.flush()
        s = cloud.osc(
            "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
            "--key-name", kp, "--user-data", ud.name, "--property", "role=web", "--wait", name, env=env,
        )
    assert s["status"] == "ACTIVE"
    assert s["key_name"] == kp
    assert s["addresses"][base["network"]][0].startswith("10.20.0.")
    sid = s["id"]
    ports = cloud.osc("port", "list", "--device-id", sid, env=env)
    assert len(ports) == 1
    listed = cloud.osc("server", "list", "--long", env=env)
    assert [x["Status"] for x in listed if x["ID"] == sid] == ["ACTIVE"]
    assert cloud.osc("server", "list", "--name", "^" + name[:4], env=env)
    assert cloud.osc("server", "list", "--status", "SHUTOFF", env=env) == []
    cloud.osc("server", "set", "--name", name + "-b", "--property", "tier=1", sid, env=env)
    shown = cloud.osc("server", "show", sid, env=env)
    assert shown["name"] == name + "-b" and shown["properties"] == {"role": "web", "tier": "1"}

    cloud.osc("server", "stop", sid, env=env)
    wait_status(cloud, sid, "SHUTOFF", env)
    cloud.osc("server", "start", sid, env=env)
    wait_status(cloud, sid, "ACTIVE", env)
    cloud.osc("server", "reboot", "--hard", sid, env=env)
    wait_status(cloud, sid, "ACTIVE", env)
    cloud.osc("server", "pause", sid, env=env)
    wait_status(cloud, sid, "PAUSED", env)
    assert [x["ID"] for x in cloud.osc("server", "list", "--status", "PAUSED", env=env)] == [sid]
    cloud.osc("server", "unpause", sid, env=env)
    wait_status(cloud, sid, "ACTIVE", env)
    log = cloud.osc("console", "log", "show", sid, env=env, fmt_json=False)
    assert "booting" in log
    events = [e["Action"] for e in cloud.osc("server", "event", "list", sid, env=env)]
    assert {"create", "stop", "start", "reboot", "pause", "unpause"} <= set(events)

    cloud.osc("server", "lock", sid, env=env)
    p = cloud.osc("server", "delete", sid, env=env, check=False)
    cloud.osc("server", "unlock", sid, env=env)
    assert cloud.osc("server", "show", sid, env=env)["status"] == "ACTIVE", p.stderr

    cloud.osc("server", "delete", "--wait", sid, env=env)
    assert all(x["ID"] != sid for x in cloud.osc("server", "list", env=env))
    assert cloud.osc("port", "list", "--device-id", sid, env=env) == []
    usage = cloud.osc("limits", "show", "--absolute", env=env)
    used = {u["Name"]: u["Value"] for u in usage}
    assert used["total_instances_used"] == 0 and used["total_cores_used"] == 0, used


def test_resize_and_rebuild(cloud, base):
    _, env = cloud.member_env(unique("rs"))
    bigger = unique("m2")
    cloud.osc("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "1", bigger)
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--wait", unique("rs-vm"), env=env,
    )
    sid = s["id"]
    cloud.osc("server", "resize", "--flavor", bigger, "--wait", sid, env=env, fmt_json=False)
    shown = cloud.osc("server", "show", sid, env=env)
    assert shown["status"] == "VERIFY_RESIZE" and shown["flavor"]["name"] == bigger, shown
    cloud.osc("server", "resize", "revert", sid, env=env)
    shown = wait_status(cloud, sid, "ACTIVE", env)
    assert shown["flavor"]["name"] == base["flavor"]
    cloud.osc("server", "resize", "--flavor", bigger, "--wait", sid, env=env, fmt_json=False)
    cloud.osc("server", "resize", "confirm", sid, env=env)
    shown = wait_status(cloud, sid, "ACTIVE", env)
    assert shown["flavor"]["name"] == bigger
    used = {u["Name"]: u["Value"] for u in cloud.osc("limits", "show", "--absolute", env=env)}
    assert used["total_cores_used"] == 2, used
    p = cloud.osc("server", "resize", "--flavor", bigger, sid, env=env, check=False)
    assert p.returncode != 0 and "400" in p.stderr, p.stderr
    # The admin sees both resizes as migrations, the reverted and the confirmed one.
    moves = cloud.osc("server", "migration", "list", "--server", sid, "--os-compute-api-version", "2.80")
    assert sorted(m["Status"] for m in moves) == ["confirmed", "reverted"], moves
    assert {m["Type"] for m in moves} == {"resize"}, moves
    assert cloud.osc("server", "migration", "list", env=env, check=False).returncode != 0, "admins only"

    # A snapshot is an image of the project's, and the server rebuilds from it.
    snap = cloud.osc("server", "image", "create", "--name", unique("snap"), "--wait", sid, env=env)
    img = cloud.osc("image", "show", snap["id"], env=env)
    assert img["status"] == "active" and img["visibility"] == "private", img
    assert img["properties"]["image_type"] == "snapshot" and img["properties"]["instance_uuid"] == sid, img
    cloud.osc("server", "rebuild", "--image", snap["id"], "--name", "rebuilt", "--wait", sid, env=env)
    shown = cloud.osc("server", "show", sid, env=env)
    assert shown["status"] == "ACTIVE" and shown["name"] == "rebuilt" and snap["id"] in shown["image"], shown
    events = {e["Action"] for e in cloud.osc("server", "event", "list", sid, env=env)}
    assert {"resize", "revertResize", "confirmResize", "createImage", "rebuild"} <= events, events
    cloud.osc("server", "delete", "--wait", sid, env=env)
    used = {u["Name"]: u["Value"] for u in cloud.osc("limits", "show", "--absolute", env=env)}
    assert used["total_cores_used"] == 0, used
    cloud.osc("image", "delete", snap["id"], env=env)
    cloud.osc("flavor", "delete", bigger)


def test_network_attachments(cloud, base):
    """server add|remove network, port, fixed ip and security group."""
    _, env = cloud.member_env(unique("nic"))
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--wait", unique("nic-vm"), env=env,
    )
    sid = s["id"]

    def ports():
        return {p["ID"]: p for p in cloud.osc("port", "list", "--server", sid, "--long", env=env)}

    assert len(ports()) == 1
    cloud.osc("server", "add", "network", sid, base["network"], env=env)
    assert len(ports()) == 2
    cloud.osc("server", "add", "fixed", "ip", "--fixed-ip-address", "10.20.0.200", sid, base["network"], env=env)
    assert len(ports()) == 3
    shown = cloud.osc("server", "show", sid, env=env)
    assert "10.20.0.200" in shown["addresses"][base["network"]], shown["addresses"]
    cloud.osc("server", "remove", "fixed", "ip", sid, "10.20.0.200", env=env)
    assert "10.20.0.200" not in cloud.osc("server", "show", sid, env=env)["addresses"][base["network"]]

    mine = cloud.osc("port", "create", "--network", base["network"], unique("mine"), env=env)
    cloud.osc("server", "add", "port", sid, mine["id"], env=env)
    assert mine["id"] in ports()
    cloud.osc("server", "remove", "port", sid, mine["id"], env=env)
    assert mine["id"] not in ports()
    assert cloud.osc("port", "show", mine["id"], env=env)["device_id"] == "", "the user's port stays, released"
    # remove network takes every port on that network off the server.
    cloud.osc("server", "remove", "network", sid, base["network"], env=env)
    assert ports() == {}

    sg = cloud.osc("security", "group", "create", unique("web"), env=env)
    cloud.osc("server", "add", "network", sid, base["network"], env=env)
    cloud.osc("server", "add", "security", "group", sid, sg["name"], env=env)
    port = next(iter(ports()))
    assert sg["id"] in cloud.osc("port", "show", port, env=env)["security_group_ids"]
    assert sg["name"] in [g["name"] for g in cloud.osc("server", "show", sid, env=env)["security_groups"]]
    p = cloud.osc("server", "add", "security", "group", sid, sg["name"], env=env, check=False)
    assert p.returncode != 0 and "400" in p.stderr
    cloud.osc("server", "remove", "security", "group", sid, sg["name"], env=env)
    assert sg["id"] not in cloud.osc("port", "show", port, env=env)["security_group_ids"]
    events = {e["Action"] for e in cloud.osc("server", "event", "list", sid, env=env)}
    assert {"attach_interface", "detach_interface"} <= events
    cloud.osc("server", "delete", "--wait", sid, env=env)
    assert cloud.osc("port", "list", "--device-id", sid, env=env) == []
    cloud.osc("port", "delete", mine["id"], env=env)


def test_bad_requests_change_nothing(cloud, base):
    _, env = cloud.member_env(unique("bad"))
    for args, code in [
        (["--flavor", "nope", "--image", base["image"], "--network", base["network"]], None),
        (["--flavor", base["flavor"], "--image", "nope", "--network", base["network"]], None),
        (["--flavor", base["flavor"], "--image", base["image"], "--network", "nope"], None),
        (["--flavor", base["flavor"], "--image", base["image"], "--network", base["network"], "--key-name", "nope"], "400"),
    ]:
        p = cloud.osc("server", "create", *args, unique("x"), env=env, check=False)
        assert p.returncode != 0, p.stdout
        if code:
            assert code in p.stderr, p.stderr
    assert cloud.osc("server", "list", env=env) == []


def test_many_servers_quota_and_usage(cloud, base):
    project_name = unique("q")
    project, env = cloud.member_env(project_name)
    cloud.osc("quota", "set", "--instances", "3", "--cores", "8", project)
    limits = cloud.osc("quota", "show", "--compute", project)
    quota = {q["Resource"]: q["Limit"] for q in limits}
    assert (quota["instances"], quota["cores"]) == (3, 8), quota
    name = unique("many")
    cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--min", "3", "--max", "3", "--wait", name, env=env,
    )
    servers = cloud.osc("server", "list", env=env)
    assert sorted(x["Name"] for x in servers) == [f"{name}-1", f"{name}-2", f"{name}-3"]
    assert all(x["Status"] == "ACTIVE" for x in servers)
    p = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        unique("over"), env=env, check=False,
    )
    assert p.returncode != 0 and "403" in p.stderr and "Quota exceeded" in p.stderr
    usage = cloud.osc("usage", "show", "--project", project)
    assert len(usage["Servers"]) == 3 and usage["RAM MB-Hours"] > 0, usage
    listed = {u["Project"]: u for u in cloud.osc("usage", "list")}
    mine = listed.get(project_name) or listed.get(project)
    count = mine["Servers"] if isinstance(mine["Servers"], int) else len(mine["Servers"])
    assert count == 3 and mine["CPU Hours"] > 0, listed
    for x in servers:
        cloud.osc("server", "delete", "--wait", x["ID"], env=env)
    assert cloud.osc("server", "list", env=env) == []
    # Every project's defaults: the quota class `default` (identity's registered limits),
    # changed for compute and block storage at once (`quota set --default`, which is
    # `--class default` in older clients); a project whose own limits are deleted has
    # them again.
    limits_of = lambda *args: {q["Resource"]: q["Limit"] for q in cloud.osc("quota", "show", *args)}  # noqa: E731
    before = limits_of("--default")
    cloud.osc("quota", "set", "--default", "--instances", "30", "--volumes", "25", fmt_json=False)
    try:
        after = limits_of("--default")
        assert (after["instances"], after["volumes"]) == (30, 25), after
        assert limits_of("--default", project)["instances"] == 30
        assert limits_of("--compute", project)["instances"] == 3, "the project's own limit stands"
        cloud.osc("quota", "delete", "--compute", project, fmt_json=False)
        assert limits_of("--compute", project)["instances"] == 30
        p = cloud.osc("quota", "set", "--default", "--instances", "-5", check=False, fmt_json=False)
        assert p.returncode != 0 and "400" in p.stderr, p.stderr
    finally:
        cloud.osc("quota", "set", "--default", "--instances", str(before["instances"]), "--volumes",
                  str(before["volumes"]), fmt_json=False)


def test_server_groups_and_hosts(cloud, base):
    g = cloud.osc("server", "group", "create", "--policy", "anti-affinity", unique("g"))
    assert g["policy"] == "anti-affinity"
    assert g["id"] in [x["ID"] for x in cloud.osc("server", "group", "list")]
    name = unique("grp")
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--hint", f"group={g['id']}", "--wait", name,
    )
    # One host here: a second member cannot be placed apart from the first.
    p = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--hint", f"group={g['id']}", "--wait", name + "-2", check=False,
    )
    assert p.returncode != 0
    second = cloud.osc("server", "show", name + "-2")
    assert second["status"] == "ERROR" and "No valid host" in json.dumps(second.get("fault"))
    cloud.osc("server", "delete", "--wait", second["id"])
    cloud.osc("server", "delete", "--wait", s["id"])
    cloud.osc("server", "group", "delete", g["id"])
    hyps = cloud.osc("hypervisor", "list")
    assert hyps and hyps[0]["State"] == "up"
    shown = cloud.osc("hypervisor", "show", hyps[0]["Hypervisor Hostname"])
    assert shown["hypervisor_type"] == "fake" and shown["state"] == "up", shown
    assert cloud.osc("aggregate", "list", "--long") == [], "no aggregates until an operator makes one"
    services = cloud.osc("compute", "service", "list")
    assert any(x["Binary"] == "nova-compute" and x["State"] == "up" for x in services)
    # An operator takes the host out of scheduling, and back.
    host = next(x["Host"] for x in services if x["Binary"] == "nova-compute")
    cloud.osc("compute", "service", "set", "--disable", "--disable-reason", "maintenance", host, "nova-compute")
    listed = cloud.osc("compute", "service", "list", "--long", "--service", "nova-compute")
    assert [(x["Status"], x["Disabled Reason"]) for x in listed] == [("disabled", "maintenance")], listed
    p = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--wait", name + "-3", check=False,
    )
    assert p.returncode != 0, "a disabled host takes no server"
    cloud.osc("server", "delete", "--wait", name + "-3")
    cloud.osc("compute", "service", "set", "--enable", host, "nova-compute")
    assert cloud.osc("compute", "service", "list", "--service", "nova-compute")[0]["Status"] == "enabled"
    assert [z["Zone Name"] for z in cloud.osc("availability", "zone", "list", "--compute")] == ["nova"]
    # An aggregate with a zone moves its host into that zone, and out again.
    agg = cloud.osc("aggregate", "create", "--zone", "az-e2e", "--property", "ssd=true", unique("agg"))
    cloud.osc("aggregate", "add", "host", str(agg["id"]), host)
    zones = [z["Zone Name"] for z in cloud.osc("availability", "zone", "list", "--compute")]
    assert "az-e2e" in zones and "nova" not in zones, zones
    shown = cloud.osc("aggregate", "show", str(agg["id"]))
    assert shown["hosts"] == [host] and shown["properties"] == {"ssd": "true"}, shown
    p = cloud.osc("aggregate", "delete", str(agg["id"]), check=False)
    assert p.returncode != 0, "an aggregate with hosts is not deleted"
    cloud.osc("aggregate", "remove", "host", str(agg["id"]), host)
    cloud.osc("aggregate", "delete", str(agg["id"]))
    assert [z["Zone Name"] for z in cloud.osc("availability", "zone", "list", "--compute")] == ["nova"]


def test_create_with_port_and_security_group(cloud, base):
    _, env = cloud.member_env(unique("pp"))
    sg = cloud.osc("security", "group", "create", unique("sg"), env=env)
    port = cloud.osc("port", "create", "--network", base["network"], unique("pre"), env=env)
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--port", port["id"],
        "--wait", unique("onport"), env=env,
    )
    assert cloud.osc("port", "show", port["id"], env=env)["device_id"] == s["id"]
    s2 = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--security-group", sg["name"], "--wait", unique("withsg"), env=env,
    )
    ports = cloud.osc("port", "list", "--server", s2["id"], "--long", env=env)
    assert sg["id"] in cloud.osc("port", "show", ports[0]["ID"], env=env)["security_group_ids"]
    assert [g["name"] for g in cloud.osc("server", "show", s2["id"], env=env)["security_groups"]] == [sg["name"]]
    for x in (s, s2):
        cloud.osc("server", "delete", "--wait", x["id"], env=env)
    # The user's port outlives the server, released; the one compute made is gone.
    assert cloud.osc("port", "show", port["id"], env=env)["device_id"] == ""
    assert cloud.osc("port", "list", "--device-id", s2["id"], env=env) == []
    cloud.osc("port", "delete", port["id"], env=env)


def test_isolation(cloud, base):
    _, a = cloud.member_env(unique("ia"))
    _, b = cloud.member_env(unique("ib"))
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--wait", unique("mine"), env=a,
    )
    assert cloud.osc("server", "list", env=b) == []
    assert cloud.osc("server", "show", s["id"], env=b, check=False).returncode != 0
    assert cloud.osc("server", "delete", s["id"], env=b, check=False).returncode != 0
    assert cloud.osc("server", "stop", s["id"], env=b, check=False).returncode != 0
    assert cloud.osc("server", "show", s["id"], env=a)["status"] == "ACTIVE"
    assert any(x["ID"] == s["id"] for x in cloud.osc("server", "list", "--all-projects"))
    cloud.osc("server", "delete", "--wait", s["id"], env=a)


def test_microversions(cloud):
    token = cloud.password_token()
    base = cloud.compute_url + "/v2.1"
    status, _, doc = cloud.http("GET", "", base=base)
    assert status == 200 and doc["version"]["version"] == "2.96" and doc["version"]["min_version"] == "2.1"
    status, headers, body = cloud.http("GET", "/flavors", token=token, base=base,
                                       headers={"OpenStack-API-Version": "compute 2.61"})
    assert status == 200 and headers.get("OpenStack-API-Version", headers.get("openstack-api-version")) == "compute 2.61"
    status, _, body = cloud.http("GET", "/flavors", token=token, base=base,
                                 headers={"X-OpenStack-Nova-API-Version": "2.200"})
    assert status == 406
    status, _, body = cloud.http("GET", "/servers/nope", token=token, base=base)
    assert status == 404 and "itemNotFound" in body
    status, _, body = cloud.http("POST", "/servers", token=token, base=base, body={"server": {"name": "x"}})
    assert status == 400 and "badRequest" in body
    user_data = base64.b64encode(b"x").decode()
    assert user_data
