"""The network agent's data plane, on the real kernel: the API is driven with the real
`openstack` client, a standalone `stratusd network-agent` wires the host, and network
namespaces stand in for guests (a veth named like a tap, `tap` + 11 characters of the
port id, with the port's MAC inside). Packets only go between namespaces and bridges
these tests make, and everything is removed afterwards.

Needs root, iproute2, nftables, dnsmasq and busybox (the README's test command installs
them); skipped otherwise.
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import ADMIN_PASSWORD, STRATUSD, Cloud, unique

TOOLS = ["ip", "nft", "dnsmasq", "busybox"]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
    reason="the data-plane tests need root, iproute2, nftables, dnsmasq and busybox",
)

def udhcpc_script(directory):
    """The DHCP client's event script (the test guest's own), copied into `directory`."""
    path = os.path.join(directory, "udhcpc.sh")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shutil.copy(os.path.join(root, "deploy", "ramdisk", "udhcpc.sh"), path)
    os.chmod(path, 0o755)
    return path


def sh(*cmd, check=True, timeout=30):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {p.stderr}{p.stdout}")
    return p


def wait_until(what, predicate, timeout=20, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Guest:
    """A namespace standing in for a guest, plugged in as the port's tap."""

    def __init__(self, port, script, device=None, host_ns=None):
        self.port = port
        self.ns = "stg-" + uuid.uuid4().hex[:8]
        self.tap = device or "tap" + port["id"][:11]
        self.script = script
        self.host_ns = host_ns
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.tap, "type", "veth", "peer", "name", "g" + self.ns)
        if host_ns:  # the "tap" lives on another emulated host
            sh("ip", "link", "set", self.tap, "netns", host_ns)
        sh("ip", "link", "set", "g" + self.ns, "netns", self.ns)
        self.run("ip", "link", "set", "g" + self.ns, "name", "eth0")
        self.run("ip", "link", "set", "eth0", "address", port["mac_address"], "up")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *cmd, check=True, timeout=30):
        return sh("ip", "netns", "exec", self.ns, *cmd, check=check, timeout=timeout)

    def dhcp(self):
        self.run("busybox", "udhcpc", "-i", "eth0", "-O", "mtu", "-O", "staticroutes", "-s", self.script, "-q", "-n", "-t", "10", "-T", "1", timeout=60)
        out = self.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        return out.split("inet ")[1].split("/")[0]

    def ping(self, ip, count=1, source=None):
        args = ["busybox", "ping", "-c", str(count), "-W", "1"]
        if source:
            args += ["-I", source]
        return self.run(*args, ip, check=False).returncode == 0

    def tcp(self, ip, port):
        code = f"import socket; socket.create_connection(('{ip}', {port}), timeout=1).close()"
        return self.run("python3", "-c", code, check=False).returncode == 0

    def listen(self, port):
        code = (
            "import socket\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('0.0.0.0', {port})); s.listen(16)\n"
            "while True:\n    c, _ = s.accept(); c.close()\n"
        )
        return subprocess.Popen(["ip", "netns", "exec", self.ns, "python3", "-c", code])

    def destroy(self):
        sh("ip", "netns", "delete", self.ns, check=False)
        if not self.host_ns:
            sh("ip", "link", "del", self.tap, check=False)


class Agent:
    """A standalone `stratusd network-agent` for the cloud."""

    def __init__(self, cloud, host, env, netns=None):
        self.cloud = cloud
        self.host = host
        self.env = env
        self.proc = None
        # An agent of an emulated host runs inside that host's namespace.
        self.wrap = ["ip", "netns", "exec", netns] if netns else []
        self.log = open(os.path.join(cloud.data_dir, f"agent-{host}.log"), "a")

    def start(self):
        self.proc = subprocess.Popen(
            self.wrap + [STRATUSD, "network-agent"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        subprocess.run(
            self.wrap + [STRATUSD, "network-agent", "--cleanup"], env=self.env, stdout=self.log, stderr=self.log
        )
        self.log.close()


def agent_logs(agents):
    """The tail of each agent's log and whether it still runs, for a failure message."""
    out = []
    for a in agents:
        a.log.flush()
        with open(a.log.name) as f:
            tail = f.read()[-3000:]
        out.append(f"--- agent {a.host} (exit code {a.proc.poll()}):\n{tail}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def dp():
    # SQLite, with a one-second resync standing in for bus events: not the shared NATS
    # server, on which the test clouds running beside this one (the other stream of
    # scripts/test.sh) report their compute hosts too, and this cloud would schedule
    # its servers onto them.
    data_dir = tempfile.mkdtemp(prefix="stratus-dp-")
    host = unique("dp")
    # The cloud's (fake) compute host is this host, so servers' ports are wired by the
    # agent below and a namespace can stand in for the guest. No metadata secret is
    # configured: the agent and the metadata API share the one generated in the data
    # directory.
    cloud = Cloud(
        "sqlite", data_dir,
        extra_env={"STRATUS_COMPUTE_AGENT__HOST": host},
    )
    uplink = "up" + uuid.uuid4().hex[:8]  # the external network's uplink interface
    env = dict(cloud.env)
    env.update(
        {
            "STRATUS_NETWORK_AGENT__METADATA_URL": f"http://127.0.0.1:{cloud.metadata_port}",
            "STRATUS_NETWORK_AGENT__INTERFACE_MAPPINGS": f"uplink:{uplink}",
            "STRATUS_SERVICE_AUTH__PASSWORD": ADMIN_PASSWORD,
            "STRATUS_NETWORK_AGENT__HOST": host,
            "STRATUS_NETWORK_AGENT__RESYNC_SECS": "1",
            "STRATUS_NETWORK_AGENT__REPORT_SECS": "5",
            "STRATUS_LOG__LEVEL": "info,stratus_network_agent=debug",
        }
    )
    agent = Agent(cloud, host, env)
    agent.start()
    script = udhcpc_script(data_dir)
    cloud.host, cloud.agent, cloud.script, cloud.guests, cloud.uplink = host, agent, script, [], uplink
    yield cloud
    for g in cloud.guests:
        g.destroy()
    agent.stop()
    cloud.stop()
    if not os.environ.get("STRATUS_E2E_KEEP"):
        shutil.rmtree(data_dir, ignore_errors=True)


def guest(dp, port):
    g = Guest(port, dp.script)
    dp.guests.append(g)
    return g


def bound_port(dp, network, name, *extra, env=None):
    return dp.osc("port", "create", "--network", network, "--host", dp.host, *extra, name, env=env)


def wait_active(dp, port_id, timeout=20):
    wait_until(f"port {port_id} ACTIVE", lambda: dp.osc("port", "show", port_id)["status"] == "ACTIVE", timeout)


@pytest.fixture(scope="module")
def lan(dp):
    """A network with two guests that got their addresses by DHCP."""
    net = dp.osc("network", "create", unique("lan"))
    sub = dp.osc(
        "subnet", "create", "--network", net["id"], "--subnet-range", "10.51.0.0/24",
        "--allocation-pool", "start=10.51.0.2,end=10.51.0.100", "--dns-nameserver", "10.51.0.53", unique("lan-sub"),
    )
    ports = [bound_port(dp, net["id"], unique(f"vm{i}")) for i in range(2)]
    guests = [guest(dp, p) for p in ports]
    for p in ports:
        wait_active(dp, p["id"])
    addrs = [g.dhcp() for g in guests]
    return {"net": net, "sub": sub, "ports": ports, "guests": guests, "ips": addrs}


def test_dhcp_gives_each_guest_its_port_address_and_guests_reach_each_other(dp, lan):
    for p, ip in zip(lan["ports"], lan["ips"]):
        assert ip == p["fixed_ips"][0]["ip_address"]
    a, b = lan["guests"]
    assert a.ping(lan["ips"][1]) and b.ping(lan["ips"][0])
    mtu = a.run("cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert mtu == "1450", "DHCP hands out the network's MTU"
    agents = dp.osc("network", "agent", "list", "--host", dp.host)
    assert len(agents) == 1 and agents[0]["Alive"] is True and agents[0]["Binary"] == "stratus-network-agent"


def test_another_projects_network_is_unreachable_even_with_overlapping_addresses(dp, lan):
    project, env = dp.member_env(unique("proj-b"))
    net = dp.osc("network", "create", unique("b-net"), env=env)
    # The same addresses as project A's network, but none A's guests use.
    sub = dp.osc(
        "subnet", "create", "--network", net["id"], "--subnet-range", "10.51.0.0/24",
        "--allocation-pool", "start=10.51.0.200,end=10.51.0.250", unique("b-sub"), env=env,
    )
    port = dp.osc(
        "port", "create", "--network", net["id"], "--project", project, "--host", dp.host,
        "--fixed-ip", f"subnet={sub['id']},ip-address=10.51.0.200", unique("b-vm"),
    )
    g = guest(dp, port)
    wait_active(dp, port["id"])
    assert g.dhcp() == "10.51.0.200"
    assert not g.ping(lan["ips"][0]), "a guest of project B reached project A's guest"
    assert not lan["guests"][0].ping("10.51.0.200")


def test_security_group_rules_apply_and_go_away_quickly(dp, lan):
    sg = dp.osc("security", "group", "create", unique("locked"))
    port = bound_port(dp, lan["net"]["id"], unique("locked-vm"), "--security-group", sg["id"])
    c = guest(dp, port)
    wait_active(dp, port["id"])
    c_ip = c.dhcp()
    a = lan["guests"][0]
    server = c.listen(7000)
    try:
        assert not a.ping(c_ip), "ICMP passed a group without ingress rules"
        assert not a.tcp(c_ip, 7000), "TCP passed a group without ingress rules"

        icmp = dp.osc("security", "group", "rule", "create", "--ingress", "--protocol", "icmp", sg["id"])
        t0 = time.monotonic()
        wait_until("ICMP allowed", lambda: a.ping(c_ip), timeout=10, interval=0.05)
        print(f"ICMP rule took effect in {time.monotonic() - t0:.2f} s")
        assert not a.tcp(c_ip, 7000), "an ICMP rule let TCP through"

        tcp = dp.osc(
            "security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "7000", sg["id"]
        )
        wait_until("TCP allowed", lambda: a.tcp(c_ip, 7000), timeout=10, interval=0.05)

        dp.osc("security", "group", "rule", "delete", icmp["id"])
        dp.osc("security", "group", "rule", "delete", tcp["id"])
        wait_until("ICMP blocked again", lambda: not a.ping(c_ip), timeout=10, interval=0.05)
        wait_until("TCP blocked again", lambda: not a.tcp(c_ip, 7000), timeout=10, interval=0.05)

        # Remote group: ICMP from members of the project's default group only.
        default = [g for g in dp.osc("security", "group", "list") if g["Name"] == "default"][0]
        dp.osc(
            "security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
            "--remote-group", default["ID"], sg["id"],
        )
        other = dp.osc("security", "group", "create", unique("other"))
        dport = bound_port(dp, lan["net"]["id"], unique("other-vm"), "--security-group", other["id"])
        d = guest(dp, dport)
        wait_active(dp, dport["id"])
        d.dhcp()
        wait_until("remote-group member allowed", lambda: a.ping(c_ip), timeout=10, interval=0.05)
        assert not d.ping(c_ip), "a guest outside the remote group got through"
    finally:
        server.kill()


def test_a_port_set_down_passes_nothing_until_set_up(dp, lan):
    a, b = lan["guests"]
    port = lan["ports"][1]["id"]
    assert a.ping(lan["ips"][1])
    dp.osc("port", "set", "--disable", port)
    wait_until("the port DOWN", lambda: dp.osc("port", "show", port)["status"] == "DOWN", 20)
    wait_until("no traffic through a disabled port", lambda: not a.ping(lan["ips"][1]), 20)
    dp.osc("port", "set", "--enable", port)
    wait_active(dp, port)
    wait_until("traffic again", lambda: a.ping(lan["ips"][1]), 20)


def test_a_port_the_firewall_cannot_take_leaves_every_other_port_working(dp, lan):
    """One tenant's bad object never stops the data plane of the others: the API refuses
    a prefix length nft would choke on, and a port carrying one anyway (put in behind
    the API's back, as an older version could have stored it) is reported ERROR and left
    unwired while another project's new port goes ACTIVE and carries traffic."""
    bad = bound_port(dp, lan["net"]["id"], unique("bad"))
    for pair in ("ip-address=10.62.0.50/33", "ip-address=::1/255"):
        r = dp.osc("port", "set", "--allowed-address", pair, bad["id"], check=False)
        out = r.stderr + r.stdout
        assert r.returncode != 0 and "is not an IP address or CIDR" in out, out
    pairs = '"allowed_address_pairs":[{"ip_address":"10.62.0.50/33"}]'
    dp.sql(
        "UPDATE network_ports SET doc = REPLACE(doc, '\"allowed_address_pairs\":[]', '" + pairs + "'), "
        f"revision_number = revision_number + 1 WHERE id = '{bad['id']}'"
    )
    assert dp.osc("port", "show", bad["id"])["allowed_address_pairs"][0]["ip_address"] == "10.62.0.50/33"
    project, env = dp.member_env(unique("proj-c"))
    net = dp.osc("network", "create", unique("c-net"), env=env)
    dp.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.63.0.0/24", unique("c-sub"), env=env)
    port = bound_port(dp, net["id"], unique("c-vm"), "--project", project)
    g = guest(dp, port)
    try:
        wait_active(dp, port["id"], timeout=30)
    except AssertionError:
        raise AssertionError(agent_logs([dp.agent]))
    assert g.dhcp() == port["fixed_ips"][0]["ip_address"], "the other project's port works end to end"
    wait_until("the bad port ERROR", lambda: dp.osc("port", "show", bad["id"])["status"] == "ERROR", 30)
    dp.agent.log.flush()
    with open(dp.agent.log.name) as f:
        assert bad["id"] in f.read(), "the agent's log names the port it could not wire"
    # The lan's guests still reach each other.
    a, b = lan["guests"]
    assert a.ping(lan["ips"][1])
    dp.osc("port", "delete", bad["id"])


def test_spoofed_addresses_are_dropped(dp, lan):
    a, b = lan["guests"]
    b_ip = lan["ips"][1]
    assert a.ping(b_ip)
    a.run("ip", "addr", "add", "10.51.0.99/24", "dev", "eth0")
    try:
        assert not a.ping(b_ip, source="10.51.0.99"), "a spoofed source address got through"
    finally:
        a.run("ip", "addr", "del", "10.51.0.99/24", "dev", "eth0")
    mac = lan["ports"][0]["mac_address"]
    a.run("ip", "link", "set", "eth0", "address", "fa:16:3e:99:99:99")
    try:
        a.run("ip", "neigh", "flush", "all")
        assert not a.ping(b_ip), "a spoofed MAC address got through"
    finally:
        a.run("ip", "link", "set", "eth0", "address", mac)
    assert a.ping(b_ip)

    # Towards the (unfiltered) DHCP port: a spoofed source is dropped for a guest with
    # port security, and passes for one without.
    dhcp = dp.osc("port", "list", "--network", lan["net"]["id"], "--device-owner", "network:dhcp")[0]
    dhcp_ip = dhcp["Fixed IP Addresses"][0]["ip_address"]
    assert a.ping(dhcp_ip)
    a.run("ip", "addr", "add", "10.51.0.97/24", "dev", "eth0")
    try:
        assert not a.ping(dhcp_ip, source="10.51.0.97")
    finally:
        a.run("ip", "addr", "del", "10.51.0.97/24", "dev", "eth0")
    free = bound_port(dp, lan["net"]["id"], unique("open-vm"), "--disable-port-security", "--no-security-group")
    f = guest(dp, free)
    wait_active(dp, free["id"])
    f.dhcp()
    f.run("ip", "addr", "add", "10.51.0.98/24", "dev", "eth0")
    assert f.ping(dhcp_ip, source="10.51.0.98"), "port_security_enabled=false still filtered"


def test_a_deleted_ports_address_goes_to_the_next_port_at_once(dp, lan):
    """dnsmasq keeps leases in memory: the agent must release a deleted port's lease, or
    the next port given that address (another MAC) gets no answer for a day."""
    fixed = f"subnet={lan['sub']['id']},ip-address=10.51.0.90"
    first = bound_port(dp, lan["net"]["id"], unique("first"), "--fixed-ip", fixed)
    g = guest(dp, first)
    wait_active(dp, first["id"])
    assert g.dhcp() == "10.51.0.90"
    g.destroy()
    dp.osc("port", "delete", first["id"])
    second = bound_port(dp, lan["net"]["id"], unique("second"), "--fixed-ip", fixed)
    assert second["mac_address"] != first["mac_address"]
    h = guest(dp, second)
    wait_active(dp, second["id"])
    assert h.dhcp() == "10.51.0.90"
    assert h.ping(lan["ips"][0])


def test_router_routes_subnets_snat_and_floating_ips(dp):
    ext = dp.osc(
        "network", "create", "--external", "--provider-network-type", "flat",
        "--provider-physical-network", "uplink", unique("ext"),
    )
    dp.osc(
        "subnet", "create", "--network", ext["id"], "--subnet-range", "172.24.50.0/24", "--gateway", "172.24.50.1",
        "--no-dhcp", "--allocation-pool", "start=172.24.50.10,end=172.24.50.100", unique("ext-sub"),
    )
    nets, subs = [], []
    for cidr in ("10.61.0.0/24", "10.62.0.0/24"):
        n = dp.osc("network", "create", unique("rnet"))
        nets.append(n)
        subs.append(dp.osc("subnet", "create", "--network", n["id"], "--subnet-range", cidr, unique("rsub")))
    router = dp.osc("router", "create", unique("router"))
    dp.osc("router", "set", "--external-gateway", ext["id"], router["id"])
    for sub in subs:
        dp.osc("router", "add", "subnet", router["id"], sub["id"])
    gw_ip = dp.osc("router", "show", router["id"])["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    web = dp.osc("security", "group", "create", unique("web"))
    for proto in (["--protocol", "icmp"], ["--protocol", "tcp", "--dst-port", "7000"]):
        dp.osc("security", "group", "rule", "create", "--ingress", *proto, web["id"])
    ports = [bound_port(dp, n["id"], unique("rvm"), "--security-group", web["id"]) for n in nets]
    g1, g2 = [guest(dp, p) for p in ports]
    for p in ports:
        wait_active(dp, p["id"])
    ip1, ip2 = g1.dhcp(), g2.dhcp()
    wait_until("routing between the router's subnets", lambda: g1.ping(ip2), timeout=20)

    def router_ports():
        return {p["Status"] for p in dp.osc("port", "list", "--router", router["id"], "--long")}

    # Its interface and gateway ports are up once its namespace is wired, as Neutron's
    # L3 agent reports them, and bound to the host that runs it.
    wait_until("the router's ports ACTIVE", lambda: router_ports() == {"ACTIVE"}, timeout=20)
    assert all(p["binding_host_id"] == dp.host for p in
               (dp.osc("port", "show", q["ID"]) for q in dp.osc("port", "list", "--router", router["id"])))
    # A router set down routes nothing (its ports DOWN) until it is set up again.
    dp.osc("router", "set", "--disable", router["id"])
    wait_until("the disabled router cutting traffic", lambda: not g1.ping(ip2), timeout=20)
    wait_until("the router's ports DOWN", lambda: router_ports() == {"DOWN"}, timeout=20)
    dp.osc("router", "set", "--enable", router["id"])
    wait_until("the router routing again", lambda: g1.ping(ip2), timeout=20)
    wait_until("the router's ports ACTIVE again", lambda: router_ports() == {"ACTIVE"}, timeout=20)

    # "Outside": a namespace behind the uplink interface the agent maps the external
    # network's physical network to; the agent puts the interface on the network's bridge.
    outside = Guest({"id": "outside", "mac_address": "fa:16:3e:ee:00:01"}, dp.script, device=dp.uplink)
    dp.guests.append(outside)
    outside.run("ip", "addr", "add", "172.24.50.1/24", "dev", "eth0")
    bridge = "stb-" + ext["id"][:11]
    wait_until(
        "the uplink on the external bridge",
        lambda: f"master {bridge}" in sh("ip", "link", "show", dp.uplink).stdout,
        timeout=20,
    )
    peers = os.path.join(dp.data_dir, "peers")
    server = subprocess.Popen(
        ["ip", "netns", "exec", outside.ns, "python3", "-c",
         "import socket\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         "s.bind(('0.0.0.0', 7000)); s.listen(16)\n"
         "while True:\n"
         f"    c, a = s.accept(); open('{peers}', 'a').write(a[0] + '\\n'); c.close()\n"],
    )

    def last_peer():
        with open(peers) as f:
            return f.read().split()[-1]

    try:
        wait_until("the outside listening", lambda: g1.tcp("172.24.50.1", 7000), timeout=20)
        assert last_peer() == gw_ip, "outbound traffic leaves as the router's gateway address (SNAT)"
        assert g1.ping("172.24.50.1")

        fip = dp.osc("floating", "ip", "create", "--port", ports[0]["id"], ext["id"])
        address = fip["floating_ip_address"]
        wait_until("the floating IP reachable from outside", lambda: outside.ping(address), timeout=20)
        assert g1.tcp("172.24.50.1", 7000)
        assert last_peer() == address, "a guest with a floating IP goes out as that address"

        dp.osc("floating", "ip", "unset", "--port", fip["id"])
        wait_until("the floating IP cut off", lambda: not outside.ping(address), timeout=20)
        assert g1.tcp("172.24.50.1", 7000) and last_peer() == gw_ip

        # A static route: the router sends 192.0.2.0/24 to a next hop on the external subnet.
        ns = f"stratus-{dp.host}-router-{router['id']}"
        dp.osc("router", "set", "--route", "destination=192.0.2.0/24,gateway=172.24.50.1", router["id"])
        wait_until(
            "the static route in the router",
            lambda: "192.0.2.0/24 via 172.24.50.1" in sh("ip", "-n", ns, "route").stdout,
            timeout=20,
        )
        dp.osc("router", "unset", "--route", "destination=192.0.2.0/24,gateway=172.24.50.1", router["id"])
        wait_until(
            "the static route gone", lambda: "192.0.2.0/24" not in sh("ip", "-n", ns, "route").stdout, timeout=20
        )
    finally:
        server.kill()


def metadata(g, path):
    """`path` of the metadata service as the guest sees it: (HTTP status line, body)."""
    p = g.run("timeout", "5", "busybox", "wget", "-S", "-qO-", f"http://169.254.169.254{path}", check=False)
    status = next((l.strip() for l in p.stderr.splitlines() if l.strip().startswith("HTTP/")), "")
    return status, p.stdout


def test_metadata_reaches_the_guest_through_the_proxy(dp, lan):
    """A server built by compute (fake hypervisor on this host): its port is wired by
    the agent, a namespace plays the guest, and the guest reads its own metadata from
    169.254.169.254 (proxy → signed request → compute's metadata API)."""
    image_file = os.path.join(dp.data_dir, "md-image.raw")
    with open(image_file, "wb") as f:
        f.write(b"\0" * 4096)
    image = dp.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", image_file,
                   unique("md-img"))
    flavor = dp.osc("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", unique("md-flv"))
    key_file = os.path.join(dp.data_dir, "md-key")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key_file)
    public_key = open(key_file + ".pub").read().strip()
    key = dp.osc("keypair", "create", "--public-key", key_file + ".pub", unique("md-key"))
    user_data = os.path.join(dp.data_dir, "user-data.sh")
    with open(user_data, "w") as f:
        f.write("#!/bin/sh\necho hello from user data\n")
    server = dp.osc(
        "server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", lan["net"]["id"],
        "--key-name", key["name"], "--user-data", user_data, "--property", "role=md-test", "--wait", "md-vm",
    )
    try:
        assert server["status"] == "ACTIVE", server
        port = dp.osc("port", "list", "--server", server["id"], "--long")[0]
        port = dp.osc("port", "show", port["ID"])
        assert port["binding_host_id"] == dp.host
        g = guest(dp, port)
        wait_active(dp, port["id"])
        ip = g.dhcp()
        assert ip == port["fixed_ips"][0]["ip_address"]

        status, body = wait_until(
            "the metadata service", lambda: (lambda r: r if r[0].endswith("200 OK") else None)(
                metadata(g, "/openstack/latest/meta_data.json")), timeout=20, interval=0.2,
        )
        md = json.loads(body)
        assert md["uuid"] == server["id"]
        assert md["name"] == "md-vm" and md["hostname"] == "md-vm"
        assert md["project_id"] == port["project_id"]
        assert md["meta"] == {"role": "md-test"}
        assert md["public_keys"] == {key["name"]: public_key}

        _, files = metadata(g, "/openstack/latest/")
        assert {"meta_data.json", "network_data.json", "vendor_data2.json", "user_data"} <= set(files.split())
        assert metadata(g, "/openstack/latest/user_data")[1] == "#!/bin/sh\necho hello from user data\n"
        assert json.loads(metadata(g, "/openstack/latest/vendor_data2.json")[1]) == {}
        nd = json.loads(metadata(g, "/openstack/latest/network_data.json")[1])
        assert nd["links"][0]["ethernet_mac_address"] == port["mac_address"]
        assert nd["links"][0]["mtu"] == 1450
        assert nd["networks"][0]["type"] == "ipv4_dhcp"
        assert nd["networks"][0]["network_id"] == lan["net"]["id"]
        assert {"type": "dns", "address": "10.51.0.53"} in nd["services"]

        # The EC2-style tree, as cloud-init's EC2 source and old images read it.
        assert metadata(g, "/latest/meta-data/local-ipv4")[1] == ip
        assert metadata(g, "/latest/meta-data/hostname")[1] == "md-vm"
        assert metadata(g, "/latest/meta-data/public-keys/")[1] == f"0={key['name']}"
        assert metadata(g, "/latest/meta-data/public-keys/0/openssh-key")[1] == public_key
        assert metadata(g, "/latest/meta-data/instance-id")[1].startswith("i-")
        assert metadata(g, "/latest/user-data")[1].startswith("#!/bin/sh")
        assert metadata(g, "/openstack/latest/nothing-here")[0].endswith("404 Not Found")
    finally:
        dp.osc("server", "delete", "--wait", server["id"])
        dp.osc("flavor", "delete", flavor["id"])
        dp.osc("image", "delete", image["id"])
    # The port went with the server: the address now belongs to no one.
    assert metadata(g, "/openstack/latest/meta_data.json")[0] != "HTTP/1.1 200 OK"


def test_metadata_through_the_router_for_guests_that_ignore_the_dhcp_route(dp):
    """A guest whose DHCP client ignores option 121 (busybox's default script, many
    minimal images) sends 169.254.169.254 to its default gateway: the router's namespace
    serves the metadata proxy too, as Neutron's routers do."""
    net = dp.osc("network", "create", unique("mdr-net"))
    sub = dp.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.66.0.0/24", unique("mdr-sub"))
    router = dp.osc("router", "create", unique("mdr-router"))
    dp.osc("router", "add", "subnet", router["id"], sub["id"])
    image_file = os.path.join(dp.data_dir, "mdr-image.raw")
    with open(image_file, "wb") as f:
        f.write(b"\0" * 4096)
    image = dp.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", image_file,
                   unique("mdr-img"))
    flavor = dp.osc("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", unique("mdr-flv"))
    server = dp.osc(
        "server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", net["id"], "--wait",
        "mdr-vm",
    )
    try:
        port = dp.osc("port", "show", dp.osc("port", "list", "--server", server["id"])[0]["ID"])
        g = guest(dp, port)
        wait_active(dp, port["id"])
        g.dhcp()
        # No route to the metadata address but the default one, through the router.
        g.run("ip", "route", "del", "169.254.169.254", check=False)
        g.run("ip", "route", "replace", "default", "via", "10.66.0.1")
        assert "169.254.169.254" not in g.run("ip", "route").stdout
        status, body = wait_until(
            "the metadata service through the router", lambda: (lambda r: r if r[0].endswith("200 OK") else None)(
                metadata(g, "/openstack/latest/meta_data.json")), timeout=30, interval=0.5,
        )
        assert json.loads(body)["uuid"] == server["id"]
        ns = f"stratus-{dp.host}-router-{router['id']}"
        assert "169.254.169.254/32" in sh("ip", "-n", ns, "addr", "show", "dev", "lo").stdout
    finally:
        dp.osc("server", "delete", "--wait", server["id"])
        dp.osc("router", "remove", "subnet", router["id"], sub["id"])
        dp.osc("router", "delete", router["id"])
        dp.osc("flavor", "delete", flavor["id"])
        dp.osc("image", "delete", image["id"])


def test_metadata_api_refuses_unsigned_and_foreign_requests(dp):
    """Only the proxy (holding the secret) can speak for an instance."""
    import urllib.error
    import urllib.request

    def get(headers):
        req = urllib.request.Request(f"http://127.0.0.1:{dp.metadata_port}/openstack/latest/meta_data.json",
                                     headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    instance = str(uuid.uuid4())
    assert get({}) == 400
    assert get({"X-Instance-ID": instance, "X-Tenant-ID": "p", "X-Instance-ID-Signature": "00" * 32}) == 403
    with open(os.path.join(dp.data_dir, "metadata-secret")) as f:
        secret = f.read().strip()
    signature = hmac.new(secret.encode(), instance.encode(), hashlib.sha256).hexdigest()
    assert get({"X-Instance-ID": instance, "X-Tenant-ID": "p", "X-Instance-ID-Signature": signature}) == 404


def test_agent_kill9_keeps_traffic_and_converges_after_restart(dp, lan):
    a, b = lan["guests"]
    sg = dp.osc("security", "group", "create", unique("later"))
    port = bound_port(dp, lan["net"]["id"], unique("later-vm"), "--security-group", sg["id"])
    c = guest(dp, port)
    wait_active(dp, port["id"])
    c_ip = c.dhcp()
    # Traffic between a and b for the whole outage: 40 pings, 0.2 s apart.
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", a.ns, "busybox", "ping", "-c", "40", "-i", "0.2", "-W", "1", lan["ips"][1]],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(1)
    dp.agent.kill9()
    dp.osc("security", "group", "rule", "create", "--ingress", "--protocol", "icmp", sg["id"])
    time.sleep(2)
    assert not a.ping(c_ip), "the rule applied with no agent running"
    dp.agent.start()
    t0 = time.monotonic()
    wait_until("the rule made while the agent was down", lambda: a.ping(c_ip), timeout=30, interval=0.1)
    print(f"agent restart converged in {time.monotonic() - t0:.2f} s")
    out, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in out, out


def test_deleting_everything_leaves_nothing_behind(dp):
    for g in dp.guests:
        g.destroy()
    dp.guests.clear()
    admin = dp.admin_env()
    for f in dp.osc("floating", "ip", "list"):
        dp.osc("floating", "ip", "delete", f["ID"])
    for r in dp.osc("router", "list"):
        for port in dp.osc("port", "list", "--router", r["ID"], "--long"):
            if port["Device Owner"] == "network:router_interface":
                dp.osc("router", "remove", "port", r["ID"], port["ID"])
        dp.osc("router", "unset", "--external-gateway", r["ID"])
        dp.osc("router", "delete", r["ID"])
    for p in dp.osc("port", "list", "--host", dp.host, "--long"):
        if p["Device Owner"] != "network:dhcp":  # the agent's own; they go with their network
            dp.osc("port", "delete", p["ID"], env=admin)
    for n in dp.osc("network", "list"):
        for s in n["Subnets"]:
            dp.osc("subnet", "delete", s)
        dp.osc("network", "delete", n["ID"])

    def leftovers():
        links = [l.split(":")[1].strip() for l in sh("ip", "-o", "link", "show").stdout.splitlines()]
        netns = sh("ip", "netns", "list").stdout.splitlines()
        tables = [t for t in sh("nft", "list", "tables").stdout.splitlines() if "stratus" in t]
        return (
            [l for l in links if l.startswith(("stb-", "std", "stp"))]
            + [n for n in netns if n.startswith(f"stratus-{dp.host}-")]
            + tables
        )

    deadline = time.monotonic() + 60
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leftovers()
    assert not left, f"left on the host: {left}\n{agent_logs([dp.agent])}"
    dnsmasq = [line for line in sh("ps", "-eo", "args").stdout.splitlines() if line.startswith("dnsmasq")]
    assert not [line for line in dnsmasq if dp.data_dir in line], dnsmasq


def test_two_hosts_carry_one_network_over_vxlan():
    """Two emulated hosts (namespaces, each with its own agent, bridges and nftables)
    joined by an underlay bridge; guests on one network, one per host."""
    tag = uuid.uuid4().hex[:6]
    underlay, hosts = "ul" + tag, [f"hosta-{tag}", f"hostb-{tag}"]
    sh("ip", "link", "add", underlay, "type", "bridge")
    sh("ip", "addr", "add", "192.168.77.254/24", "dev", underlay)
    sh("ip", "link", "set", underlay, "up")
    for i, h in enumerate(hosts):
        sh("ip", "netns", "add", h)
        sh("ip", "link", "add", f"ul{i}{tag}", "type", "veth", "peer", "name", f"ux{i}{tag}")
        sh("ip", "link", "set", f"ul{i}{tag}", "master", underlay, "up")
        sh("ip", "link", "set", f"ux{i}{tag}", "netns", h)
        sh("ip", "-n", h, "link", "set", f"ux{i}{tag}", "name", "eth0")
        sh("ip", "-n", h, "addr", "add", f"192.168.77.{i + 1}/24", "dev", "eth0")
        sh("ip", "-n", h, "link", "set", "eth0", "up")
        sh("ip", "-n", h, "link", "set", "lo", "up")
    data_dir = tempfile.mkdtemp(prefix="stratus-vx-")
    # Listening on every address so the hosts reach the API over the underlay.
    cloud = Cloud("sqlite", data_dir, extra_env={"STRATUS_SERVER__BIND_HOST": "0.0.0.0"})
    script = udhcpc_script(data_dir)
    agents, guests = [], []
    try:
        for i, h in enumerate(hosts):
            env = dict(cloud.env)
            env.update(
                {
                    "STRATUS_SERVICE_AUTH__PASSWORD": ADMIN_PASSWORD,
                    "STRATUS_IDENTITY__URL": f"http://192.168.77.254:{cloud.port}",
                    "STRATUS_NETWORK_AGENT__NETWORK_URL": f"http://192.168.77.254:{cloud.network_port}",
                    "STRATUS_NETWORK_AGENT__HOST": h,
                    "STRATUS_NETWORK_AGENT__TUNNEL_IP": f"192.168.77.{i + 1}",
                    "STRATUS_NETWORK_AGENT__ROUTERS": "false",
                    "STRATUS_NETWORK_AGENT__RESYNC_SECS": "1",
                    "STRATUS_NETWORK_AGENT__REPORT_SECS": "1",
                    "STRATUS_LOG__LEVEL": "info",
                }
            )
            agent = Agent(cloud, h, env, netns=h)
            agent.start()
            agents.append(agent)
        net = cloud.osc("network", "create", unique("vx"))
        cloud.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.71.0.0/24", unique("vx-sub"))
        # Each agent reports its tunnel address before ports are placed.
        try:
            def both_alive():
                assert all(a.proc.poll() is None for a in agents), "an agent exited"
                return len(cloud.osc("network", "agent", "list")) == 2

            wait_until("both agents alive", both_alive, timeout=60)
        except AssertionError as e:
            raise AssertionError(f"{e}; agents: {cloud.osc('network', 'agent', 'list')}\n" + agent_logs(agents)) from e
        ports = [
            cloud.osc("port", "create", "--network", net["id"], "--host", h, unique("vx-vm")) for h in hosts
        ]
        guests = [Guest(p, script, host_ns=h) for p, h in zip(ports, hosts)]
        for p in ports:
            wait_until("port ACTIVE", lambda p=p: cloud.osc("port", "show", p["id"])["status"] == "ACTIVE", 30)
        ips = [g.dhcp() for g in guests]
        assert ips == [p["fixed_ips"][0]["ip_address"] for p in ports]
        assert guests[0].ping(ips[1]) and guests[1].ping(ips[0]), "guests on two hosts reached each other"
        vx = "stx" + net["id"][:12]
        details = sh("ip", "-n", hosts[0], "-d", "link", "show", vx).stdout
        vni = cloud.osc("network", "show", net["id"])["provider:segmentation_id"]
        assert f"vxlan id {vni} " in details and "nolearning" in details, details
        fdb = sh("ip", "netns", "exec", hosts[0], "bridge", "fdb", "show", "dev", vx).stdout
        assert "00:00:00:00:00:00 dst 192.168.77.2" in fdb, fdb
        assert f"{ports[1]['mac_address']} dst 192.168.77.2" in fdb, fdb
    finally:
        for g in guests:
            g.destroy()
        for a in agents:
            a.stop()
        cloud.stop()
        for h in hosts:
            sh("ip", "netns", "delete", h, check=False)
        sh("ip", "link", "del", underlay, check=False)
        if not os.environ.get("STRATUS_E2E_KEEP"):
            shutil.rmtree(data_dir, ignore_errors=True)
