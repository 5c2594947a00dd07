"""The network commands a user types, with the real python-openstackclient against the
real `stratusd all-in-one`, on SQLite + in-process bus."""

import json

import pytest

from conftest import unique




def fail(cloud, *args, env=None):
    """Runs a command that must fail; returns its error output."""
    p = cloud.osc(*args, env=env, check=False)
    assert p.returncode != 0, f"{args} succeeded: {p.stdout}"
    return p.stderr + p.stdout


def test_client_workflow(cloud):
    """openstack-clients.md §3: network, subnet, security group rule, port lookups."""
    net = unique("net")
    n = cloud.osc("network", "create", net)
    assert n["name"] == net and n["mtu"] == 1450 and n["provider:network_type"] == "vxlan"
    sub = unique("sub")
    s = cloud.osc("subnet", "create", "--network", net, "--subnet-range", "192.168.1.0/24", sub)
    assert s["gateway_ip"] == "192.168.1.1" and s["allocation_pools"] == [{"start": "192.168.1.2", "end": "192.168.1.254"}]
    rule = cloud.osc("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "default")
    assert rule["port_range_min"] == 22 and rule["direction"] == "ingress"
    port = cloud.osc("port", "create", "--network", net, "--device", "server-1", unique("port"))
    listed = cloud.osc("port", "list", "--device-id", "server-1")
    assert [p["ID"] for p in listed] == [port["id"]]
    shown = cloud.osc("network", "show", net)
    assert shown["subnets"] == [s["id"]]
    cloud.osc("port", "delete", port["id"])
    cloud.osc("subnet", "delete", sub)
    cloud.osc("network", "delete", net)


def test_network_options_tags_and_projects(cloud):
    public = unique("public")
    ext = cloud.osc("network", "create", "--external", "--provider-network-type", "flat", public)
    assert ext["router:external"] is True and ext["mtu"] == 1500
    shared = cloud.osc("network", "create", "--share", "--mtu", "1400", "--tag", "blue", unique("shared"))
    assert shared["shared"] is True and shared["mtu"] == 1400 and shared["tags"] == ["blue"]
    vx = cloud.osc("network", "create", "--provider-network-type", "vxlan", unique("vx"))
    assert vx["provider:segmentation_id"] != shared["provider:segmentation_id"]
    tagged = cloud.osc("network", "list", "--tag", "blue")
    assert [t["ID"] for t in tagged] == [shared["id"]]
    cloud.osc("network", "set", "--name", shared["name"] + "-x", "--tag", "green", shared["id"])
    again = cloud.osc("network", "show", shared["id"])
    assert sorted(again["tags"]) == ["blue", "green"] and again["name"].endswith("-x")
    cloud.osc("network", "unset", "--tag", "blue", shared["id"])
    assert cloud.osc("network", "show", shared["id"])["tags"] == ["green"]
    admin_project = cloud.osc("project", "show", "admin")["id"]
    mine = cloud.osc("network", "list", "--project", admin_project)
    assert {shared["id"], vx["id"], ext["id"]} <= {n["ID"] for n in mine}
    for n in (public, shared["id"], vx["id"]):
        cloud.osc("network", "delete", n)


def test_subnet_options(cloud):
    net = unique("net")
    cloud.osc("network", "create", net)
    s = cloud.osc(
        "subnet", "create", "--network", net, "--subnet-range", "10.5.0.0/24", "--gateway", "10.5.0.254",
        "--allocation-pool", "start=10.5.0.10,end=10.5.0.20", "--dns-nameserver", "10.5.0.2", "--no-dhcp",
        "--host-route", "destination=10.9.0.0/16,gateway=10.5.0.1", unique("sub"),
    )
    assert s["gateway_ip"] == "10.5.0.254" and s["enable_dhcp"] is False
    assert s["allocation_pools"] == [{"start": "10.5.0.10", "end": "10.5.0.20"}]
    assert s["dns_nameservers"] == ["10.5.0.2"]
    assert s["host_routes"] == [{"destination": "10.9.0.0/16", "nexthop": "10.5.0.1"}]
    v6 = cloud.osc(
        "subnet", "create", "--network", net, "--ip-version", "6", "--subnet-range", "fd00:5::/64",
        "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", unique("v6"),
    )
    assert v6["ip_version"] == 6 and v6["gateway_ip"] == "fd00:5::1"
    cloud.osc("subnet", "set", "--name", "renamed-" + v6["name"], "--dns-nameserver", "fd00:5::53", v6["id"])
    assert cloud.osc("subnet", "show", v6["id"])["dns_nameservers"] == ["fd00:5::53"]
    # Bad input: a clear error and nothing created.
    before = len(cloud.osc("subnet", "list", "--network", net))
    assert "overlaps" in fail(cloud, "subnet", "create", "--network", net, "--subnet-range", "10.5.0.128/25", unique("x"))
    assert "not in subnet" in fail(
        cloud, "subnet", "create", "--network", net, "--subnet-range", "10.6.0.0/24", "--gateway", "10.7.0.1", unique("x")
    )
    assert "400" in fail(cloud, "subnet", "create", "--network", net, "--subnet-range", "10.6.0.0/99", unique("x"))
    assert len(cloud.osc("subnet", "list", "--network", net)) == before
    cloud.osc("network", "delete", net)


def test_subnet_pools(cloud):
    """Subnets by size from a subnet pool, with the openstack client."""
    _, env = cloud.member_env(unique("pools"))
    pool = unique("pool")
    p = cloud.osc("subnet", "pool", "create", "--pool-prefix", "10.70.0.0/16", "--default-prefix-length", "26", pool, env=env)
    assert p["prefixes"] == ["10.70.0.0/16"] and p["default_prefixlen"] == 26, p
    net = unique("net")
    cloud.osc("network", "create", net, env=env)
    first = cloud.osc("subnet", "create", "--network", net, "--subnet-pool", pool, unique("s"), env=env)
    second = cloud.osc("subnet", "create", "--network", net, "--subnet-pool", pool, "--prefix-length", "24", unique("s"),
                       env=env)
    assert (first["cidr"], second["cidr"]) == ("10.70.0.0/26", "10.70.1.0/24"), (first, second)
    assert first["subnetpool_id"] == p["id"]
    cloud.osc("subnet", "pool", "set", "--pool-prefix", "10.71.0.0/16", pool, env=env)
    assert sorted(cloud.osc("subnet", "pool", "show", pool, env=env)["prefixes"]) == ["10.70.0.0/16", "10.71.0.0/16"]
    assert cloud.osc("subnet", "pool", "delete", pool, env=env, check=False).returncode != 0, "it has subnets"
    cloud.osc("network", "delete", net, env=env)
    cloud.osc("subnet", "pool", "delete", pool, env=env)
    assert pool not in [x["Name"] for x in cloud.osc("subnet", "pool", "list", env=env)]


def test_ports(cloud):
    net = unique("net")
    cloud.osc("network", "create", net)
    sub = unique("sub")
    cloud.osc("subnet", "create", "--network", net, "--subnet-range", "10.8.0.0/24", sub)
    sg = cloud.osc("security", "group", "create", unique("web"))
    p = cloud.osc(
        "port", "create", "--network", net, "--fixed-ip", f"subnet={sub},ip-address=10.8.0.77",
        "--security-group", sg["id"], "--mac-address", "fa:16:3e:aa:bb:cc",
        "--allowed-address", "ip-address=10.8.0.200", unique("port"),
    )
    assert p["fixed_ips"] == [{"subnet_id": cloud.osc("subnet", "show", sub)["id"], "ip_address": "10.8.0.77"}]
    assert p["mac_address"] == "fa:16:3e:aa:bb:cc" and p["security_group_ids"] == [sg["id"]]
    assert p["allowed_address_pairs"] == [{"ip_address": "10.8.0.200", "mac_address": None}] or \
        p["allowed_address_pairs"][0]["ip_address"] == "10.8.0.200"
    assert "already allocated" in fail(
        cloud, "port", "create", "--network", net, "--fixed-ip", f"subnet={sub},ip-address=10.8.0.77", unique("dup")
    )
    cloud.osc("port", "set", "--name", "renamed", "--tag", "t1", p["id"])
    assert cloud.osc("port", "list", "--tag", "t1")[0]["ID"] == p["id"]
    assert "in use" in fail(cloud, "security", "group", "delete", sg["id"])
    assert "ports still in use" in fail(cloud, "network", "delete", net)
    assert cloud.osc("network", "show", net)["name"] == net
    cloud.osc("port", "delete", p["id"])
    cloud.osc("security", "group", "delete", sg["id"])
    cloud.osc("network", "delete", net)


def test_security_groups(cloud):
    sg = cloud.osc("security", "group", "create", "--description", "web tier", unique("sg"))
    rules = cloud.osc("security", "group", "rule", "list", sg["id"])
    assert len(rules) == 2  # egress IPv4 and IPv6
    r1 = cloud.osc("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80:81", "--remote-ip", "10.0.0.0/8", "--ingress", sg["id"])
    assert (r1["port_range_min"], r1["port_range_max"], r1["remote_ip_prefix"]) == (80, 81, "10.0.0.0/8")
    r2 = cloud.osc("security", "group", "rule", "create", "--protocol", "udp", "--dst-port", "53", "--remote-group", "default", "--egress", sg["id"])
    assert r2["direction"] == "egress" and r2["remote_group_id"]
    assert "already exists" in fail(cloud, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80:81", "--remote-ip", "10.0.0.0/8", sg["id"])
    cloud.osc("security", "group", "rule", "delete", r1["id"])
    assert len(cloud.osc("security", "group", "rule", "list", sg["id"])) == 3
    cloud.osc("security", "group", "set", "--name", sg["name"] + "-2", sg["id"])
    assert cloud.osc("security", "group", "show", sg["id"])["name"] == sg["name"] + "-2"
    cloud.osc("security", "group", "delete", sg["id"])


def test_quotas_and_extensions(cloud):
    project = unique("quota")
    pid, env = cloud.member_env(project)
    cloud.osc("quota", "set", "--networks", "2", "--ports", "7", "--secgroups", "4", project)
    shown = {r["Resource"]: r["Limit"] for r in cloud.osc("quota", "show", project)}
    assert shown["networks"] == 2 and shown["ports"] == 7 and shown["security_groups"] == 4
    cloud.osc("network", "create", unique("a"), env=env)
    cloud.osc("network", "create", unique("b"), env=env)
    assert "Quota exceeded" in fail(cloud, "network", "create", unique("c"), env=env)
    usage = {r["Resource"]: r for r in cloud.osc("quota", "show", "--usage", project)}
    assert usage["networks"]["In Use"] == 2
    assert "403" in fail(cloud, "quota", "set", "--networks", "50", project, env=env)
    aliases = {e["Alias"] for e in cloud.osc("extension", "list", "--network")}
    assert {"security-group", "binding", "quotas", "external-net"} <= aliases
    assert "external-gateway-multihoming" not in aliases


def test_projects_are_isolated(cloud):
    _, a = cloud.member_env(unique("pa"))
    _, b = cloud.member_env(unique("pb"))
    net = unique("private")
    n = cloud.osc("network", "create", net, env=a)
    cloud.osc("subnet", "create", "--network", net, "--subnet-range", "10.0.0.0/24", unique("s"), env=a)
    assert net not in json.dumps(cloud.osc("network", "list", env=b))
    fail(cloud, "network", "show", n["id"], env=b)
    fail(cloud, "port", "create", "--network", n["id"], unique("p"), env=b)
    fail(cloud, "network", "delete", n["id"], env=b)
    # Each project has its own default group, and finds it by name.
    da = cloud.osc("security", "group", "show", "default", env=a)
    db = cloud.osc("security", "group", "show", "default", env=b)
    assert da["id"] != db["id"]
    cloud.osc("security", "group", "rule", "create", "--protocol", "icmp", "default", env=b)
    assert cloud.osc("network", "show", n["id"], env=a)["id"] == n["id"]


def test_routers_and_floating_ips(cloud):
    public = unique("public")
    cloud.osc("network", "create", "--external", "--provider-network-type", "flat", public)
    cloud.osc("subnet", "create", "--network", public, "--subnet-range", "198.51.100.0/24", "--no-dhcp", unique("pub"))
    _, env = cloud.member_env(unique("fip"))
    net, sub, router = unique("net"), unique("sub"), unique("r")
    cloud.osc("network", "create", net, env=env)
    cloud.osc("subnet", "create", "--network", net, "--subnet-range", "10.30.0.0/24", sub, env=env)
    cloud.osc("router", "create", router, env=env)
    cloud.osc("router", "set", "--external-gateway", public, router, env=env)
    cloud.osc("router", "add", "subnet", router, sub, env=env)
    r = cloud.osc("router", "show", router, env=env)
    gw = r["external_gateway_info"]
    assert gw["enable_snat"] is True and gw["external_fixed_ips"][0]["ip_address"].startswith("198.51.100.")
    assert [i["ip_address"] for i in r["interfaces_info"]] == ["10.30.0.1"]
    cloud.osc("router", "set", "--route", "destination=10.99.0.0/16,gateway=10.30.0.254", router, env=env)
    assert cloud.osc("router", "show", router, env=env)["routes"] == [{"destination": "10.99.0.0/16", "nexthop": "10.30.0.254"}]
    cloud.osc("router", "unset", "--route", "destination=10.99.0.0/16,gateway=10.30.0.254", router, env=env)
    vm = cloud.osc("port", "create", "--network", net, unique("vm"), env=env)
    fip = cloud.osc("floating", "ip", "create", public, env=env)
    assert fip["floating_ip_address"].startswith("198.51.100.") and fip["port_id"] is None
    cloud.osc("floating", "ip", "set", "--port", vm["id"], fip["floating_ip_address"], env=env)
    shown = cloud.osc("floating", "ip", "show", fip["id"], env=env)
    assert shown["port_id"] == vm["id"] and shown["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
    assert shown["router_id"] == r["id"]
    assert [f["ID"] for f in cloud.osc("floating", "ip", "list", "--port", vm["id"], env=env)] == [fip["id"]]
    assert "required by one or more floating IPs" in fail(cloud, "router", "remove", "subnet", router, sub, env=env)
    cloud.osc("floating", "ip", "unset", "--port", fip["id"], env=env)
    assert cloud.osc("floating", "ip", "show", fip["id"], env=env)["port_id"] is None
    cloud.osc("router", "remove", "subnet", router, sub, env=env)
    cloud.osc("router", "unset", "--external-gateway", router, env=env)
    assert cloud.osc("router", "show", router, env=env)["external_gateway_info"] is None
    cloud.osc("floating", "ip", "delete", fip["id"], env=env)
    cloud.osc("router", "delete", router, env=env)
    cloud.osc("port", "delete", vm["id"], env=env)
    cloud.osc("network", "delete", net, env=env)
    cloud.osc("network", "delete", public)



def test_tags_and_projects_on_every_resource(cloud):
    pid, env = cloud.member_env(unique("tags"))
    tag = unique("t")
    net = cloud.osc("network", "create", "--tag", tag, unique("net"), env=env)
    cloud.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.40.0.0/24", "--tag", tag, unique("s"), env=env)
    cloud.osc("port", "create", "--network", net["id"], "--tag", tag, unique("p"), env=env)
    cloud.osc("router", "create", "--tag", tag, unique("r"), env=env)
    cloud.osc("security", "group", "create", "--tag", tag, unique("sg"), env=env)
    for resource in (("network",), ("subnet",), ("port",), ("router",), ("security", "group")):
        mine = cloud.osc(*resource, "list", "--tag", tag, env=env)
        assert len(mine) == 1, (resource, mine)
        by_project = cloud.osc(*resource, "list", "--project", pid)
        assert mine[0]["ID"] in {r["ID"] for r in by_project}, resource
    public = unique("public")
    cloud.osc("network", "create", "--external", "--provider-network-type", "flat", public)
    cloud.osc("subnet", "create", "--network", public, "--subnet-range", "192.0.2.0/24", unique("pub"))
    fip = cloud.osc("floating", "ip", "create", "--tag", tag, public, env=env)
    assert [f["ID"] for f in cloud.osc("floating", "ip", "list", "--tags", tag, env=env)] == [fip["id"]]
    assert fip["id"] in {f["ID"] for f in cloud.osc("floating", "ip", "list", "--project", pid)}
    cloud.osc("quota", "set", "--floating-ips", "1", pid)
    assert "Quota exceeded" in fail(cloud, "floating", "ip", "create", public, env=env)
    cloud.osc("floating", "ip", "delete", fip["id"], env=env)
