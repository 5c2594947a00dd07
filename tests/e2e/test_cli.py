"""The `stratus` command against the real `stratusd all-in-one`, as a user runs it: a
cloud of clouds.yaml, tables for people, JSON and bare values for scripts, names or IDs,
the token cached between commands, and exit codes a script can rely on."""

import datetime
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_PASSWORD, ROOT, compute_basics, unique

STRATUS = os.environ.get("STRATUS_CLI") or os.path.join(ROOT, "target", "debug", "stratus")

pytestmark = pytest.mark.skipif(not os.path.exists(STRATUS), reason="build the CLI: cargo build -p stratus-cli")


@pytest.fixture(scope="module")
def home(cloud):
    """A user's home with a clouds.yaml naming an admin and a member cloud."""
    h = tempfile.mkdtemp(prefix="stratus-cli-")
    project = unique("cli")
    cloud.osc("project", "create", project)
    cloud.osc("user", "create", "--password", "123456", project)
    cloud.osc("role", "add", "--project", project, "--user", project, "member")
    os.makedirs(os.path.join(h, ".config", "openstack"))

    def entry(user, password, proj):
        return (f"    auth:\n      auth_url: {cloud.auth_url}\n      username: {user}\n      password: '{password}'\n"
                f"      project_name: {proj}\n      user_domain_name: Default\n      project_domain_name: Default\n"
                f"    region_name: {cloud.region}\n    interface: public\n")

    with open(os.path.join(h, ".config", "openstack", "clouds.yaml"), "w") as f:
        # The member's password is digits: YAML would read it as a number unquoted;
        # the CLI takes it as text either way.
        f.write("clouds:\n  admin:\n" + entry("admin", ADMIN_PASSWORD, "admin")
                + "  member:\n" + entry(project, "123456", project).replace("'123456'", "123456"))
    yield {"home": h, "project": project}
    shutil.rmtree(h, ignore_errors=True)


def stratus(home, *args, cloud_name="member", cache=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k != "XDG_CACHE_HOME"}
    env.update({"HOME": home["home"], "OS_CLOUD": cloud_name})
    env.pop("XDG_CONFIG_HOME", None)
    if cache:
        env["XDG_CACHE_HOME"] = cache
    return subprocess.run([STRATUS, *args], env=env, capture_output=True, text=True, timeout=60, cwd=home["home"])


def as_obj(v):
    """An object field of a record, whether the JSON output kept it or wrote it as text."""
    return json.loads(v) if isinstance(v, str) else v


def ok_json(home, *args, **kw):
    p = stratus(home, *args, "-o", "json", **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def tokens_issued(cloud):
    """Identity's count of tokens issued (its /metrics)."""
    import urllib.request

    with urllib.request.urlopen(cloud.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^stratus_identity_tokens_issued_total\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_lists_and_shows_by_name_or_id(cloud, home):
    basics = compute_basics(cloud, "10.81.0.0/24", shared=True)
    name = unique("clivm")
    image_name = cloud.osc("image", "show", basics["image"])["name"]
    # Booted by names, waited for: the server as the API shows it once ACTIVE.
    server = ok_json(home, "server", "create", name, "--image", image_name, "--flavor", basics["flavor"],
                     "--network", basics["network"], "--wait")
    assert server["status"] == "ACTIVE" and server["name"] == name, server
    p = stratus(home, "server", "create", unique("x"), "--image", "no-such-image", "--flavor", basics["flavor"])
    assert p.returncode == 4 and "no-such-image" in p.stderr, p.stderr

    listed = ok_json(home, "server", "list")
    assert [(s["ID"], s["Name"], s["Status"]) for s in listed] == [(server["id"], name, "ACTIVE")]
    # JSON keeps the structure; the table shows it as people read it.
    assert listed[0]["Networks"][basics["network"]][0]["addr"].startswith("10.81.0.")
    by_name = ok_json(home, "server", "show", name)
    assert by_name["id"] == server["id"] and by_name["status"] == "ACTIVE"
    assert ok_json(home, "server", "show", server["id"])["name"] == name
    # A table for people: the headers, a rule, one aligned row.
    table = stratus(home, "server", "list")
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and lines[0].split()[:3] == ["ID", "Name", "Status"], table.stdout
    assert set(lines[1]) <= {"-", " "} and name in lines[2] and f"{basics['network']}=10.81.0." in lines[2]
    # Bare values of chosen columns, for scripts.
    p = stratus(home, "server", "list", "-o", "value", "-c", "name", "-c", "Status")
    assert p.stdout == f"{name} ACTIVE\n", p.stdout
    p = stratus(home, "server", "show", name, "-o", "value", "-c", "status")
    assert p.stdout == "ACTIVE\n"

    images = ok_json(home, "image", "list")
    assert basics["image"] in [i["ID"] for i in images]
    assert basics["flavor"] in [f["Name"] for f in ok_json(home, "flavor", "list")]
    assert basics["network"] in [n["Name"] for n in ok_json(home, "network", "list")]
    assert ok_json(home, "lease", "list") == []

    # Exit codes: 4 not found, 2 bad usage (naming the columns there are), 1 refused.
    p = stratus(home, "server", "show", "no-such-server")
    assert p.returncode == 4 and "no-such-server" in p.stderr, p.stderr
    p = stratus(home, "server", "list", "-c", "Colour")
    assert p.returncode == 2 and "ID, Name, Status" in p.stderr, p.stderr
    p = stratus(home, "node", "list")
    assert p.returncode == 1 and "403" in p.stderr, p.stderr
    p = stratus(home, "server", "explode")
    assert p.returncode == 2
    # The admin sees the nodes (none here) and the member's server by ID.
    assert ok_json(home, "node", "list", cloud_name="admin") == []
    # `set` with properties, through a JSON patch (Ironic's): set, then unset.
    # Enrolled by the CLI, shown as YAML; the BMC's password never comes back.
    p = stratus(home, "node", "create", "--driver", "fake-hardware", "--name", "cli-node", "--resource-class", "bm",
                "--driver-info", "fake_password=hunter2", "--property", "memory_mb=4096", "-o", "yaml",
                cloud_name="admin")
    assert p.returncode == 0, p.stderr
    assert "name: cli-node" in p.stdout and "resource_class: bm" in p.stdout and "hunter2" not in p.stdout, p.stdout
    assert stratus(home, "node", "create", "--driver", "fake-hardware", "--driver-info", "nokey",
                   cloud_name="admin").returncode == 2
    # A flavor: its shape, private, with an extra spec; a member may not make one.
    fname = unique("cli.flavor")
    assert stratus(home, "flavor", "create", fname, "--vcpus", "2", "--ram", "1024").returncode == 1
    fl = ok_json(home, "flavor", "create", fname, "--vcpus", "2", "--ram", "1024", "--disk", "5", "--private",
                 "--property", "hw:cpu_policy=shared", "--description", "for the CLI test", cloud_name="admin")
    assert (fl["vcpus"], fl["ram"], fl["disk"], fl["os-flavor-access:is_public"]) == (2, 1024, 5, False), fl
    assert as_obj(fl["extra_specs"]) == {"hw:cpu_policy": "shared"} and fl["description"] == "for the CLI test", fl
    assert stratus(home, "flavor", "delete", fname, cloud_name="admin").returncode == 0
    node = ok_json(home, "node", "set", "cli-node", "--description", "rack 4", "--property", "cpus=8",
                   cloud_name="admin")
    assert (node["description"], as_obj(node["properties"]).get("cpus")) == ("rack 4", "8"), node
    node = ok_json(home, "node", "set", "cli-node", "--unset-property", "cpus", cloud_name="admin")
    assert "cpus" not in as_obj(node["properties"]), node
    assert stratus(home, "node", "delete", "cli-node", cloud_name="admin").returncode == 0
    assert ok_json(home, "server", "show", server["id"], cloud_name="admin")["id"] == server["id"]
    p = stratus(home, "server", "delete", name, "--wait")
    assert p.returncode == 0, p.stderr
    assert stratus(home, "server", "show", server["id"]).returncode == 4
    # A refusal says what to do next: here, the quota.
    cloud.osc("quota", "set", "--instances", "0", home["project"], fmt_json=False)
    try:
        p = stratus(home, "server", "create", unique("over"), "--image", image_name, "--flavor", basics["flavor"],
                    "--network", basics["network"])
        assert p.returncode == 1 and "quota" in p.stderr.lower() and "openstack quota set" in p.stderr, p.stderr
        assert "compute quota instances: 0 in use, a limit of 0" in p.stderr, p.stderr
    finally:
        cloud.osc("quota", "set", "--instances", "10", home["project"], fmt_json=False)
    # The network service names the quota but not the figures: the command adds them.
    q = cloud.osc("quota", "show", home["project"])
    ports = ({r["Resource"]: r["Limit"] for r in q} if isinstance(q, list) else q)["ports"]
    cloud.osc("quota", "set", "--ports", "0", home["project"], fmt_json=False)
    try:
        p = stratus(home, "port", "create", unique("over"), "--network", basics["network"])
        assert p.returncode == 1 and "network quota port: 0 in use, a limit of 0" in p.stderr, p.stderr
    finally:
        cloud.osc("quota", "set", "--ports", str(ports), home["project"], fmt_json=False)


def test_every_kind_is_made_listed_and_deleted(cloud, home):
    """`create` for networks, subnets, routers, security groups (and their rules),
    floating IPs and volumes, by names; every kind listed; deletes by name."""
    env = cloud.user_env(home["project"], "123456", home["project"])
    if not any(n["Name"] == "public" for n in cloud.osc("network", "list", "--external")):
        ext = ok_json(home, "network", "create", "public", "--external", "--shared", cloud_name="admin")
        assert ext["router:external"] is True and ext["shared"] is True
        ok_json(home, "subnet", "create", "public-v4", "--network", "public", "--range", "203.0.113.0/24",
                "--no-dhcp", cloud_name="admin")
    sg = ok_json(home, "sg", "create", unique("clisg"), "--description", "web")
    rule = ok_json(home, "sg", "allow", sg["name"], "--protocol", "tcp", "--port", "8000:8099", "--from", "192.0.2.0/24")
    assert (rule["port_range_min"], rule["port_range_max"], rule["remote_ip_prefix"]) == (8000, 8099, "192.0.2.0/24")
    assert ok_json(home, "sg", "allow", sg["name"], "--protocol", "icmp", "--from-group", "default")["remote_group_id"]
    net = ok_json(home, "network", "create", unique("clinet"))
    sub = ok_json(home, "subnet", "create", unique("clisub"), "--network", net["name"], "--range", "10.84.0.0/24",
                  "--dns", "192.0.2.53")
    assert (sub["network_id"], sub["gateway_ip"], sub["dns_nameservers"]) == (net["id"], "10.84.0.1", ["192.0.2.53"])
    router = ok_json(home, "router", "create", unique("clirouter"), "--external-gateway", "public")
    assert router["external_gateway_info"]["network_id"] == cloud.osc("network", "show", "public")["id"]
    p = stratus(home, "router", "add-subnet", router["name"], sub["name"])
    assert p.returncode == 0, p.stderr
    ports = cloud.osc("port", "list", "--router", router["id"], env=env)
    assert any("10.84.0.1" in json.dumps(pt) for pt in ports), ports
    fip = ok_json(home, "fip", "create", "--network", "public")
    assert fip["floating_network_id"] == router["external_gateway_info"]["network_id"] and fip["port_id"] is None
    vol = ok_json(home, "volume", "create", unique("clivol"), "--size", "1", "--wait")
    assert (vol["status"], vol["size"]) == ("available", 1)
    # Bad input: a usage error (2) that makes nothing; a network that is not there (4).
    p = stratus(home, "subnet", "create", "x", "--network", net["name"], "--range", "10.85.0.0")
    assert p.returncode == 2 and "CIDR" in p.stderr, p.stderr
    assert stratus(home, "sg", "allow", sg["name"], "--port", "99:1").returncode == 2
    assert stratus(home, "subnet", "create", "x", "--network", "no-such-net", "--range", "10.85.0.0/24").returncode == 4
    assert {"default", sg["name"]} <= {g["Name"] for g in ok_json(home, "sg", "list")}
    assert [s["Subnet"] for s in ok_json(home, "subnet", "list")].count("10.84.0.0/24") == 1
    assert vol["id"] in [v["ID"] for v in ok_json(home, "volume", "list")]
    assert ok_json(home, "volume", "show", vol["name"])["size"] == 1
    assert fip["id"] in [f["ID"] for f in ok_json(home, "fip", "list")]
    for kind in ("router", "port"):
        p = stratus(home, kind, "list", "-o", "json")
        assert p.returncode == 0 and isinstance(json.loads(p.stdout), list), p.stderr
    assert home["project"] in [pr["Name"] for pr in ok_json(home, "project", "list", cloud_name="admin")]
    # `set`: renamed, described, disabled, as the service shows it after; what a kind
    # cannot change is a usage error (2) that sends nothing.
    renamed = unique("clinet2")
    changed = ok_json(home, "network", "set", net["name"], "--name", renamed, "--description", "moved", "--disable")
    assert (changed["name"], changed["description"], changed["admin_state_up"]) == (renamed, "moved", False)
    net["name"] = renamed
    assert cloud.osc("network", "show", net["id"], env=env)["admin_state_up"] in (False, "DOWN")
    assert ok_json(home, "volume", "set", vol["name"], "--description", "scratch")["description"] == "scratch"
    # Properties: a volume's metadata, set and unset; a key without a value is a usage error.
    v = ok_json(home, "volume", "set", vol["name"], "--property", "tier=scratch", "--property", "owner=cli")
    assert as_obj(v["metadata"]) == {"tier": "scratch", "owner": "cli"}, v
    v = ok_json(home, "volume", "set", vol["name"], "--unset-property", "owner")
    assert as_obj(v["metadata"]) == {"tier": "scratch"}, v
    assert stratus(home, "volume", "set", vol["name"], "--property", "tier").returncode == 2
    assert stratus(home, "network", "set", net["name"], "--property", "a=b").returncode == 2
    assert stratus(home, "fip", "set", fip["id"], "--name", "x").returncode == 2
    assert stratus(home, "flavor", "set", "m1.tiny", "--name", "x").returncode == 2
    # A flavor's description and extra specs (an admin's).
    flavor = cloud.osc("flavor", "list")[0]["Name"]
    f = ok_json(home, "flavor", "set", flavor, "--description", "from the cli", "--property", "hw:cpu_policy=shared",
                cloud_name="admin")
    assert f["description"] == "from the cli", f
    assert "hw:cpu_policy" in str(cloud.osc("flavor", "show", flavor)["properties"])
    ok_json(home, "flavor", "set", flavor, "--unset-property", "hw:cpu_policy", cloud_name="admin")
    assert "hw:cpu_policy" not in str(cloud.osc("flavor", "show", flavor)["properties"])
    assert stratus(home, "network", "set", net["name"]).returncode == 2
    spare = unique("cliproj")
    cloud.osc("project", "create", spare)
    assert ok_json(home, "project", "set", spare, "--disable", cloud_name="admin")["enabled"] is False
    assert cloud.osc("project", "show", spare)["enabled"] is False
    p = stratus(home, "project", "set", spare, "--enable")
    assert p.returncode == 4 and "no project" in p.stderr, "another project is not even found by a member"
    # Projects, users (with a role on a project) and ports made from the CLI.
    lab = ok_json(home, "project", "create", unique("clilab"), "--description", "a lab", cloud_name="admin")
    assert (lab["description"], lab["enabled"]) == ("a lab", True)
    person = unique("cliuser")
    made = ok_json(home, "user", "create", person, "--password", "pw-123456", "--project", lab["name"],
                   "--role", "member", cloud_name="admin")
    assert made["default_project_id"] == lab["id"] and "password" not in made
    roles = cloud.osc("role", "assignment", "list", "--user", made["id"], "--project", lab["id"], "--names")
    assert [r["Role"] for r in roles] == ["member"], roles
    assert stratus(home, "user", "create", unique("x"), "--password", "p", "--project", lab["name"],
                   "--role", "no-such-role", cloud_name="admin").returncode == 4
    assert stratus(home, "project", "create", unique("x")).returncode == 1, "a member may not make projects"
    port = ok_json(home, "port", "create", unique("cliport"), "--network", net["name"], "--ip", "10.84.0.77",
                   "--sg", sg["name"])
    assert ([f["ip_address"] for f in port["fixed_ips"]], port["security_groups"]) == (["10.84.0.77"], [sg["id"]])
    bare = ok_json(home, "port", "create", unique("cliport"), "--network", net["name"], "--no-port-security")
    assert (bare["port_security_enabled"], bare["security_groups"]) == (False, [])
    assert stratus(home, "port", "create", "x", "--network", net["name"], "--ip", "10.84.0.999").returncode == 2
    assert stratus(home, "port", "create", "x", "--network", net["name"], "--ip", "10.84.0.77").returncode == 1
    for p_ in (port, bare):
        assert stratus(home, "port", "delete", p_["name"]).returncode == 0
    assert home["project"] in [u["Name"] for u in ok_json(home, "user", "list", cloud_name="admin")]
    # Deleted by name, several at once; a second delete finds nothing (4).
    p = stratus(home, "sg", "delete", sg["name"])
    assert p.returncode == 0, p.stderr
    assert sg["name"] not in {g["Name"] for g in ok_json(home, "sg", "list")}
    assert stratus(home, "sg", "delete", sg["name"]).returncode == 4
    for kind, name in (("volume", vol["name"]), ("fip", fip["floating_ip_address"])):
        p = stratus(home, kind, "delete", name)
        assert p.returncode == 0, p.stderr
    p = stratus(home, "router", "remove-subnet", router["name"], sub["name"])
    assert p.returncode == 0, p.stderr
    for kind, name in (("router", router["name"]), ("network", net["name"])):
        p = stratus(home, kind, "delete", name)
        assert p.returncode == 0, p.stderr
    assert net["name"] not in [n["Name"] for n in ok_json(home, "network", "list")]


def test_a_lease_and_a_server_in_it(cloud, home):
    """`stratus lease create --node-type --hours --wait`, a server launched into its
    reservation, and `lease delete --wait`, which takes the server with it."""
    hv = cloud.osc("hypervisor", "list")[0]["Hypervisor Hostname"]
    p = stratus(home, "host", "create", hv, "--property", "node_type=cli_node")
    assert p.returncode == 1 and "403" in p.stderr, "making hosts reservable is the admin's"
    made = ok_json(home, "host", "create", hv, "--property", "node_type=cli_node", cloud_name="admin")
    assert made["hypervisor_hostname"] == hv and made["node_type"] == "cli_node", made
    assert stratus(home, "host", "create", hv, "--property", "novalue", cloud_name="admin").returncode == 2
    p = stratus(home, "lease", "create", "bad", "--hours", "1", "--end", "2030-01-01 10:00")
    assert p.returncode == 2, "--hours and --end together are refused"
    lease = ok_json(home, "lease", "create", "cli-lease", "--node-type", "cli_node", "--hours", "2", "--wait")
    assert lease["status"] == "ACTIVE", lease
    res = lease["reservations"]
    res_id = (json.loads(res) if isinstance(res, str) else res)[0]["id"]
    listed = ok_json(home, "lease", "list")
    assert [(l["Name"], l["Status"]) for l in listed] == [("cli-lease", "ACTIVE")]
    # Prolonged by an hour, then cut back by one; a host's capabilities set by the admin.
    end = lambda l: datetime.datetime.fromisoformat(l["end_date"].replace("Z", ""))  # noqa: E731
    longer = ok_json(home, "lease", "set", "cli-lease", "--prolong", "1")
    assert end(longer) - end(lease) == datetime.timedelta(hours=1), (lease["end_date"], longer["end_date"])
    assert end(ok_json(home, "lease", "set", "cli-lease", "--reduce", "1")) == end(lease)
    assert stratus(home, "lease", "set", "cli-lease", "--prolong", "1", "--end", "2030-01-01 10:00").returncode == 2
    host = ok_json(home, "host", "set", hv, "--property", "rack=r4", cloud_name="admin")
    assert host["rack"] == "r4" and host["node_type"] == "cli_node", host
    # No second host of that type: Blazar's refusal, said by the cloud (exit 1).
    p = stratus(home, "lease", "create", "too-many", "--node-type", "cli_node", "--nodes", "2")
    assert p.returncode == 1 and "Not enough hosts" in p.stderr, p.stderr

    basics = compute_basics(cloud, "10.82.0.0/24", shared=True)
    image_name = cloud.osc("image", "show", basics["image"])["name"]
    server = ok_json(home, "server", "create", unique("leased"), "--image", image_name, "--flavor", basics["flavor"],
                     "--network", basics["network"], "--reservation", res_id, "--wait")
    assert cloud.osc("server", "show", server["id"])["OS-EXT-SRV-ATTR:hypervisor_hostname"] == hv
    p = stratus(home, "lease", "delete", "cli-lease", "--wait")
    assert p.returncode == 0, p.stderr
    assert ok_json(home, "lease", "list") == []
    p = stratus(home, "server", "show", server["id"])
    deadline = time.monotonic() + 30
    while p.returncode != 4 and time.monotonic() < deadline:
        time.sleep(0.5)
        p = stratus(home, "server", "show", server["id"])
    assert p.returncode == 4, "the lease's server went with it"


def test_launch_status_and_down(cloud, home):
    """`launch` makes what a reachable server needs (network, subnet, router, SSH rule,
    keypair, floating IP, a lease when asked) and records it; `down` removes exactly
    what it made for that server; `status` shows the project."""
    if not any(n["Name"] == "public" for n in cloud.osc("network", "list", "--external")):
        cloud.osc("network", "create", "--external", "public")
        cloud.osc("subnet", "create", "--network", "public", "--subnet-range", "198.51.100.0/24", "--no-dhcp",
                  "public-sub")
    basics = compute_basics(cloud, "10.83.0.0/24", shared=True)
    image_name = cloud.osc("image", "show", basics["image"])["name"]
    env = cloud.user_env(home["project"], "123456", home["project"])
    common = ["--image", image_name, "--flavor", basics["flavor"]]

    vm = ok_json(home, "launch", "vm1", *common, "--floating-ip", "--generate-key")
    assert vm["status"] == "ACTIVE" and vm["key_name"] == "vm1-key", vm
    nets = [n for n in cloud.osc("network", "list", env=env) if n["Name"] == "stratus-net"]
    assert len(nets) == 1 and cloud.osc("router", "show", "stratus-router", env=env)["external_gateway_info"]
    rules = cloud.osc("security", "group", "rule", "list", "default", "--protocol", "tcp", env=env)
    assert any(r["Port Range"] == "22:22" for r in rules), rules
    key_file = os.path.join(home["home"], ".local", "share", "stratus", "keys", "vm1-key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600 and "PRIVATE KEY" in open(key_file).read()
    fips = cloud.osc("floating", "ip", "list", env=env)
    assert len(fips) == 1 and fips[0]["Fixed IP Address"].startswith("10.42.0."), fips
    # A second launch reuses the network; none of vm1's things are vm2's.
    # With a data volume: made, attached, and gone with the server at `down`.
    vm2 = ok_json(home, "launch", "vm2", *common, "--volume", "1")
    data = ok_json(home, "volume", "show", "vm2-data")
    assert data["status"] == "in-use" and [x["server_id"] for x in data["attachments"]] == [vm2["id"]], data
    assert stratus(home, "launch", "vm2b", *common, "--volume", "0").returncode == 2
    assert len([n for n in cloud.osc("network", "list", env=env) if n["Name"] == "stratus-net"]) == 1
    status = ok_json(home, "status")
    assert sorted(s["name"] for s in status["servers"]) == ["vm1", "vm2"]
    assert status["limits"]["totalInstancesUsed"] == 2
    table = stratus(home, "status")
    assert table.returncode == 0 and "Servers" in table.stdout and "vm1" in table.stdout

    p = stratus(home, "down", "vm1")
    assert p.returncode == 0, p.stderr
    assert cloud.osc("floating", "ip", "list", env=env) == []
    assert not os.path.exists(key_file)
    assert [k["Name"] for k in cloud.osc("keypair", "list", env=env)] == []
    assert stratus(home, "server", "show", "vm1").returncode == 4
    assert ok_json(home, "server", "show", "vm2")["status"] == "ACTIVE", "down removed only vm1's things"

    # Through a lease of its own: --reserve makes it, down ends it.
    vm3 = ok_json(home, "launch", "vm3", *common, "--reserve", "node_type=cli_node,hours=1")
    assert vm3["status"] == "ACTIVE"
    assert [(l["Name"], l["Status"]) for l in ok_json(home, "lease", "list")] == [("vm3-lease", "ACTIVE")]
    for name in ("vm3", "vm2"):
        p = stratus(home, "down", name)
        assert p.returncode == 0, p.stderr
    assert ok_json(home, "lease", "list") == []
    assert ok_json(home, "server", "list") == []
    assert ok_json(home, "volume", "list") == [], "the data volume went with vm2"
    p = stratus(home, "launch", "bad", *common, "--reserve", "cores=4")
    assert p.returncode == 2 and "node_type" in p.stderr, p.stderr
    # A server the cloud refuses: the keypair made for it goes again.
    cloud.osc("quota", "set", "--instances", "0", home["project"], fmt_json=False)
    try:
        p = stratus(home, "launch", "refused", *common, "--generate-key")
        assert p.returncode == 1 and "quota" in p.stderr.lower(), p.stderr
        assert cloud.osc("keypair", "list", env=env) == []
        assert not os.path.exists(os.path.join(home["home"], ".local", "share", "stratus", "keys", "refused-key"))
    finally:
        cloud.osc("quota", "set", "--instances", "10", home["project"], fmt_json=False)


def test_quotas_across_services_and_usage(cloud, home):
    """`quota show` reads compute's, network's and block storage's limits and use in one
    table; `quota set` (the admin's) sends each limit to the service that owns it;
    `usage` reports the project's server-hours over a window (of a server snapshotted
    on the way) and its volumes' GB-hours."""
    rows = ok_json(home, "quota", "show")
    by = {(r["Service"], r["Resource"]): r for r in rows}
    for key in [("compute", "instances"), ("compute", "cores"), ("network", "floatingip"), ("network", "port"),
                ("volume", "gigabytes"), ("volume", "volumes")]:
        assert key in by and isinstance(by[key]["Limit"], int), (key, rows)
    assert ("compute", "floating_ips") not in by, "nova-network's limits are the network service's"
    # A member may read but not change their limits; the refusal says what to do next.
    p = stratus(home, "quota", "set", home["project"], "--instances", "3")
    assert p.returncode == 1 and "403" in p.stderr and "role" in p.stderr, p.stderr
    p = stratus(home, "quota", "set", home["project"], "--cores", "-2")
    assert p.returncode == 2, "a limit below -1 is bad usage"
    assert stratus(home, "quota", "set", home["project"], cloud_name="admin").returncode == 2

    before = {k: by[k]["Limit"] for k in [("compute", "instances"), ("network", "floatingip"), ("volume", "gigabytes")]}
    p = stratus(home, "quota", "set", home["project"], "--instances", "7", "--floating-ips", "-1", "--gigabytes", "123",
                cloud_name="admin")
    try:
        assert p.returncode == 0 and "unlimited" in p.stdout, p.stderr
        q = cloud.osc("quota", "show", home["project"])
        seen = {r["Resource"]: r["Limit"] for r in q} if isinstance(q, list) else q
        assert seen["instances"] == 7 and seen["floating_ips"] == -1 and seen["gigabytes"] == 123, seen
        after = {(r["Service"], r["Resource"]): r["Limit"] for r in ok_json(home, "quota", "show")}
        assert after[("compute", "instances")] == 7 and after[("network", "floatingip")] == -1
    finally:
        cloud.osc("quota", "set", "--instances", str(before[("compute", "instances")]),
                  "--floating-ips", str(before[("network", "floatingip")]),
                  "--gigabytes", str(before[("volume", "gigabytes")]), home["project"], fmt_json=False)

    basics = compute_basics(cloud, "10.84.0.0/24", shared=True)
    ok_json(home, "server", "create", "metered", "--image", basics["image"], "--flavor", basics["flavor"],
            "--network", basics["network"], "--wait")
    time.sleep(1)
    try:
        snap = ok_json(home, "server", "snapshot", "metered", "--name", "metered-snap", "--wait")
        assert snap["status"] == "active" and snap["image_type"] == "snapshot", snap
        assert stratus(home, "image", "delete", "metered-snap").returncode == 0
        vol = ok_json(home, "volume", "create", "metered-vol", "--size", "1", "--wait")
        assert stratus(home, "volume", "delete", vol["id"], "--wait").returncode == 0
        u = ok_json(home, "usage", "--start", "2026-01-01")
    finally:
        assert stratus(home, "server", "delete", "metered", "--wait").returncode == 0
    assert u["project_id"] == ok_json(home, "token", "issue")["project_id"] and u["start"] == "2026-01-01T00:00:00"
    metered = [s for s in u["servers"] if s["name"] == "metered"]
    assert len(metered) == 1 and metered[0]["hours"] > 0 and metered[0]["vcpus"] == 1, u
    assert u["server_hours"] >= metered[0]["hours"] and u["vcpu_hours"] > 0 and u["memory_mb_hours"] > 0, u
    # Block storage's GB-hours: the volume held 1 GB from create to delete, then no more.
    vols = [v for v in u["volumes"] if v["id"] == vol["id"]]
    assert len(vols) == 1 and vols[0]["name"] == "metered-vol" and vols[0]["state"] == "gone", u
    assert vols[0]["size"] == 1 and 0 < vols[0]["gb_hours"] == vols[0]["hours"] and u["volume_gb_hours"] > 0, u
    table = stratus(home, "usage")
    assert table.returncode == 0 and "server-hours" in table.stdout, table.stderr
    assert "metered-vol" in table.stdout and "GB-hours of volumes" in table.stdout, table.stdout
    assert stratus(home, "usage", "--start", "yesterday").returncode == 2
    assert stratus(home, "usage", "--start", "2026-02-01", "--end", "2026-01-01").returncode == 2


def test_the_token_is_cached_between_commands(cloud, home):
    cache = tempfile.mkdtemp(prefix="stratus-cli-cache-")
    try:
        before = tokens_issued(cloud)
        first = ok_json(home, "token", "issue", cache=cache)
        after_first = tokens_issued(cloud)
        second = ok_json(home, "token", "issue", cache=cache)
        ok_json(home, "server", "list", cache=cache)
        assert after_first == before + 1, "the first command logs in"
        assert tokens_issued(cloud) == after_first, "the next ones reuse the cached token"
        assert first["id"] == second["id"] and first["project_id"] == second["project_id"]
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(cache) for f in fs]
        assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600, files
        # A revoked token: the command logs in again by itself and caches the new one.
        cloud.http("DELETE", "/v3/auth/tokens", cloud.password_token(), headers={"X-Subject-Token": first["id"]})
        assert ok_json(home, "server", "list", cache=cache) == []
        third = ok_json(home, "token", "issue", cache=cache)
        assert third["id"] != first["id"]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    # Wrong credentials are a configuration/authentication failure (3), said plainly.
    bad = dict(home)
    with open(os.path.join(home["home"], "clouds.yaml"), "w") as f:
        f.write(f"clouds:\n  wrong:\n    auth:\n      auth_url: {cloud.auth_url}\n      username: nobody\n"
                f"      password: nope\n      project_name: nothing\n")
    p = stratus(bad, "server", "list", cloud_name="wrong")
    assert p.returncode == 3 and "authentication failed" in p.stderr, p.stderr
    p = stratus(bad, "server", "list", cloud_name="absent")
    assert p.returncode == 3 and "wrong" in p.stderr, p.stderr
    os.remove(os.path.join(home["home"], "clouds.yaml"))


def test_images_up_and_down_with_progress_on_a_terminal(cloud, home, tmp_path):
    data = os.urandom(3 << 20)
    src = tmp_path / "disk.raw"
    src.write_bytes(data)
    img = ok_json(home, "image", "create", "cli-img", "--file", str(src))
    assert (img["status"], img["size"], img["disk_format"]) == ("active", len(data), "raw"), img
    # Renamed and given properties (Glance's JSON patch), then one taken away.
    img = ok_json(home, "image", "set", "cli-img", "--name", "cli-img-1", "--property", "os_distro=debian",
                  "--property", "hw_disk_bus=virtio")
    assert (img["name"], img["os_distro"], img["hw_disk_bus"]) == ("cli-img-1", "debian", "virtio"), img
    img = ok_json(home, "image", "set", "cli-img-1", "--name", "cli-img", "--unset-property", "hw_disk_bus")
    assert img["name"] == "cli-img" and "hw_disk_bus" not in img and img["os_distro"] == "debian", img
    dst = tmp_path / "back.raw"
    p = stratus(home, "image", "download", "cli-img", "--file", str(dst))
    assert p.returncode == 0 and dst.read_bytes() == data, p.stderr
    # On a terminal (script(1) gives the command one): a progress line, then the table.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k != "XDG_CACHE_HOME"}
    env.update({"HOME": home["home"], "OS_CLOUD": "member"})
    if shutil.which("script"):
        p = subprocess.run(["script", "-qec", f"{STRATUS} image create cli-img2 --file {src}", "/dev/null"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout
        assert "uploading" in p.stdout and "3.0 MiB / 3.0 MiB  100%" in p.stdout, p.stdout
        assert re.search(r"\n\s*Field\s+Value\s*\r?\n", p.stdout), p.stdout
    p = stratus(home, "image", "delete", "cli-img", "cli-img2")
    assert p.returncode == 0 and stratus(home, "image", "show", "cli-img").returncode == 4
    p = stratus(home, "image", "create", "nothing", "--file", str(tmp_path / "absent.raw"))
    assert p.returncode == 1 and "absent.raw" in p.stderr
    assert "nothing" not in [i["Name"] for i in ok_json(home, "image", "list")], "a failed upload leaves no image"


def test_help_completions_and_manual_pages(tmp_path):
    """What needs no cloud: --help with examples, completion scripts, man pages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    run = lambda *a: subprocess.run([STRATUS, *a], env=env, capture_output=True, text=True, timeout=30)  # noqa: E731
    top = run("--help")
    assert top.returncode == 0 and "Examples:" in top.stdout and "Exit codes:" in top.stdout
    assert "launch" in top.stdout and "--os-cloud" in top.stdout
    bash = run("completion", "bash")
    assert bash.returncode == 0 and "_stratus()" in bash.stdout and "launch" in bash.stdout
    assert run("completion", "zsh").stdout.startswith("#compdef stratus")
    assert run("man", str(tmp_path)).returncode == 0
    pages = sorted(os.listdir(tmp_path))
    assert {"stratus.1", "stratus-launch.1", "stratus-server-create.1", "stratus-lease-create.1"} <= set(pages), pages
    assert ".TH" in (tmp_path / "stratus-launch.1").read_text()
    # No cloud configured: a configuration error (3) that says what to set.
    p = run("server", "list")
    assert p.returncode == 3 and "OS_CLOUD" in p.stderr, p.stderr


def test_a_terminal_shows_the_progress_bar_and_the_table(cloud, home):
    """In a real terminal (a tmux pane), an upload draws its progress bar with bytes and
    rate, and a list is an aligned table; the same commands in a pipe print neither."""
    data = os.path.join(home["home"], "tty-disk.raw")
    with open(data, "wb") as f:
        f.write(os.urandom(1 << 20) * 24)
    name, sock = unique("tty-image"), unique("stratus-tty")
    done = "END-OF-" + name
    script = (f"{STRATUS} image create {name} --file {data} --disk-format raw -c name; "
              f"{STRATUS} image list -c Name -c Status; echo {done}; sleep 60")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k not in ("TMUX", "XDG_CACHE_HOME")}
    env.update({"HOME": home["home"], "OS_CLOUD": "member", "TERM": "xterm-256color"})
    env.pop("XDG_CONFIG_HOME", None)
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "200", "-y", "50", "bash", "--norc", "-c", script],
                   env=env, check=True, cwd=home["home"])
    try:
        pane = ""
        for _ in range(120):
            pane = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-100"], env=env, capture_output=True,
                                  text=True).stdout
            if done in pane:
                break
            time.sleep(0.5)
        assert done in pane, pane
        lines = pane.splitlines()
        bar = [line for line in lines if f"[{'#' * 30}]" in line]
        assert bar and "24.0 MiB / 24.0 MiB" in bar[0] and "100%" in bar[0] and "/s" in bar[0], pane
        head = next(i for i, line in enumerate(lines) if line.split() == ["Name", "Status"])
        assert set(lines[head + 1]) <= {"-", " "}, pane
        assert any(line.split() == [name, "active"] for line in lines[head + 2:]), pane
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, capture_output=True)
    # Not a terminal: no bar, no escape codes on stderr.
    p = stratus(home, "image", "create", name + "-piped", "--file", data, "--disk-format", "raw")
    assert p.returncode == 0 and "#" not in p.stderr and "\x1b" not in p.stderr, p.stderr
    for n in (name, name + "-piped"):
        assert stratus(home, "image", "delete", n).returncode == 0
