"""Data-plane benchmark: prints figures, asserts nothing. Run as root from the
repository root after `cargo build --release -p stratusd`:

    STRATUSD=target/release/stratusd .venv/bin/python bench/dataplane.py [--ports 1000] [--routers 100]

It starts a cloud (PostgreSQL + NATS when reachable, else SQLite) and a standalone
network agent, builds `--routers` networks each with a router, spreads `--ports` bound
ports over them (veths named like taps stand in for guests' NICs, two of them in
namespaces as real guests), and measures:
- port create → ACTIVE (the compute order: create the bound port, then plug the tap);
- a security-group rule taking effect with every port in the group;
- the agent's first pass after a restart (kernel already right) and from a clean host;
- TCP throughput between two guests through the bridge with security groups, without
  port security, and through a router with a floating IP (iperf3, when installed).
It reuses the end-to-end suite's helpers (tests/e2e) and removes everything it made.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

from conftest import ADMIN_PASSWORD, Cloud, backend_urls, port_open  # noqa: E402
from test_dataplane import Agent, Guest, sh, udhcpc_script, wait_until  # noqa: E402


class Api:
    """Plain HTTP against the network API with an admin token (the CLI is too slow for
    thousands of calls)."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.token = cloud.password_token()
        self.base = cloud.network_url

    def call(self, method, path, body=None):
        status, _, data = self.cloud.http(method, path, token=self.token, body=body, base=self.base)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data

    def create(self, kind, body):
        return self.call("POST", f"/v2.0/{kind.replace('_', '-')}s", {kind: body})[kind]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def veth(port_id):
    """A tap stand-in for a port that is not a real guest: a veth pair, far end idle."""
    tap = "tap" + port_id[:11]
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "tp" + port_id[:11])
    return tap


def first_pass_ms(log_path, after):
    """The `first pass converged` figure the agent logged after byte offset `after`."""
    with open(log_path) as f:
        f.seek(after)
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    m = re.search(r"first pass converged.*?elapsed_ms=(\d+)", text)
    return int(m.group(1)) if m else None


def iperf(client, server_ip, seconds=5):
    out = client.run("iperf3", "-c", server_ip, "-t", str(seconds), "-J", timeout=seconds + 30).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--routers", type=int, default=100)
    ap.add_argument("--creates", type=int, default=30, help="ports timed from create to ACTIVE")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds bridges and namespaces")
    os.environ.setdefault("STRATUSD", "target/release/stratusd")

    pg = port_open(5432) and port_open(4222) and shutil.which("psql")
    db_url, bus_url = backend_urls("postgres") if pg else (None, None)
    data_dir = tempfile.mkdtemp(prefix="stratus-bench-dp-")
    cloud = Cloud("postgres" if pg else "sqlite", data_dir, db_url=db_url, bus_url=bus_url)
    host = "bench-" + os.urandom(3).hex()
    env = dict(cloud.env)
    env.update(
        {
            "STRATUS_SERVICE_AUTH__PASSWORD": ADMIN_PASSWORD,
            "STRATUS_NETWORK_AGENT__HOST": host,
            "STRATUS_NETWORK_AGENT__RESYNC_SECS": "10" if pg else "1",
            "STRATUS_NETWORK_AGENT__METADATA_URL": "http://127.0.0.1:9",
            "STRATUS_LOG__LEVEL": os.environ.get("BENCH_AGENT_LOG", "info"),
        }
    )
    agent = Agent(cloud, host, env)
    agent.start()
    script = udhcpc_script(data_dir)
    api = Api(cloud)
    taps, guests = [], []
    print(f"backend: {'PostgreSQL + NATS' if pg else 'SQLite, no bus (1 s resync)'}; host {host}")
    try:
        # --- topology ------------------------------------------------------------
        t0 = time.monotonic()
        ext = api.create("network", {"name": "ext", "router:external": True, "provider:network_type": "flat",
                                     "provider:physical_network": "bench"})
        api.create("subnet", {"network_id": ext["id"], "cidr": "172.25.0.0/16", "ip_version": 4,
                              "enable_dhcp": False, "gateway_ip": "172.25.0.1"})
        group = api.create("security_group", {"name": "bench"})
        api.call("PUT", "/v2.0/quotas/" + group["project_id"],
                 {"quota": {"port": -1, "network": -1, "subnet": -1, "router": -1, "security_group_rule": -1}})
        nets = []
        for i in range(args.routers):
            n = api.create("network", {"name": f"bench-{i}"})
            s = api.create("subnet", {"network_id": n["id"], "cidr": f"10.{100 + i // 250}.{i % 250}.0/24",
                                      "ip_version": 4})
            r = api.create("router", {"name": f"bench-{i}", "external_gateway_info": {"network_id": ext["id"]}})
            api.call("PUT", f"/v2.0/routers/{r['id']}/add_router_interface", {"subnet_id": s["id"]})
            nets.append(n)
        ports = []
        for i in range(args.ports):
            net = nets[i % len(nets)]
            p = api.create("port", {"network_id": net["id"], "binding:host_id": host, "security_groups": [group["id"]]})
            if i >= 1:  # ports[0] is a real guest's
                taps.append(veth(p["id"]))
            ports.append(p)
        print(f"made {args.routers} networks and routers, {args.ports} ports in {time.monotonic() - t0:.1f} s")
        # Two real guests on the first network: a (default group) and b (the bench group).
        a_port = api.create("port", {"network_id": nets[0]["id"], "binding:host_id": host})
        guests = [Guest(a_port, script), Guest(ports[0], script)]
        a, b = guests

        def all_active():
            listed = api.call("GET", f"/v2.0/ports?binding:host_id={host}&fields=status&fields=device_owner")["ports"]
            return all(p["status"] == "ACTIVE" for p in listed if not p["device_owner"].startswith("network:"))

        t0 = time.monotonic()
        wait_until("every port ACTIVE", all_active, timeout=600, interval=0.5)
        print(f"all {args.ports + 1} ports ACTIVE {time.monotonic() - t0:.1f} s after the last create")
        a.dhcp()
        b_ip = b.dhcp()

        # --- security-group rule with every port in the group -------------------------
        pinger = subprocess.Popen(
            ["ip", "netns", "exec", a.ns, "busybox", "ping", "-i", "0.01", "-w", "30", b_ip],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(0.5)
        t_rule = time.monotonic()
        rule = api.create("security_group_rule", {"security_group_id": group["id"], "direction": "ingress",
                                                  "protocol": "icmp"})
        for line in pinger.stdout:
            if "bytes from" in line:
                break
        t_effect = time.monotonic() - t_rule
        pinger.kill()
        print(f"security-group rule effective after {t_effect * 1000:.0f} ms ({args.ports} ports in the group)")
        api.call("DELETE", f"/v2.0/security-group-rules/{rule['id']}")
        for proto in ("tcp", "icmp"):
            api.create("security_group_rule", {"security_group_id": group["id"], "direction": "ingress",
                                               "protocol": proto})

        # --- port create to ACTIVE -----------------------------------------------------
        times = []
        for _ in range(args.creates):
            t0 = time.monotonic()
            p = api.create("port", {"network_id": nets[1]["id"], "binding:host_id": host})
            taps.append(veth(p["id"]))
            while api.call("GET", f"/v2.0/ports/{p['id']}?fields=status")["port"]["status"] != "ACTIVE":
                time.sleep(0.002)
            times.append((time.monotonic() - t0) * 1000)
        print(f"port create -> ACTIVE ({args.creates} ports): p50 {pct(times, 50):.0f} ms, "
              f"p99 {pct(times, 99):.0f} ms, max {max(times):.0f} ms")

        # --- agent restarts --------------------------------------------------------------
        log = agent.log.name
        for label, clean in (("kernel state intact", False), ("from a clean host", True)):
            agent.kill9()
            if clean:
                subprocess.run([os.environ["STRATUSD"], "network-agent", "--cleanup"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            offset = os.path.getsize(log)
            agent.start()
            ms = wait_until("the first pass", lambda: first_pass_ms(log, offset), timeout=600, interval=0.2)
            print(f"agent restart, {label}: first full pass {ms} ms "
                  f"({args.ports + 1} ports, {args.routers} routers, {args.routers} DHCP servers)")
        wait_until("every port ACTIVE again", all_active, timeout=600, interval=0.5)

        # --- throughput --------------------------------------------------------------------
        if shutil.which("iperf3"):
            server = subprocess.Popen(["ip", "netns", "exec", b.ns, "iperf3", "-s"], stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            filtered = iperf(a, b_ip)
            server.kill()
            c_port = api.create("port", {"network_id": nets[0]["id"], "binding:host_id": host,
                                         "port_security_enabled": False, "security_groups": []})
            d_port = api.create("port", {"network_id": nets[0]["id"], "binding:host_id": host,
                                         "port_security_enabled": False, "security_groups": []})
            c, d = Guest(c_port, script), Guest(d_port, script)
            guests += [c, d]
            wait_until("open ports ACTIVE", all_active, timeout=60, interval=0.2)
            c.dhcp()
            d_ip = d.dhcp()
            server = subprocess.Popen(["ip", "netns", "exec", d.ns, "iperf3", "-s"], stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            open_bps = iperf(c, d_ip)
            server.kill()
            # Through the router: a floating IP for b, reached from a guest on another network.
            fip = api.create("floatingip", {"floating_network_id": ext["id"], "port_id": ports[0]["id"]})
            e_port = api.create("port", {"network_id": nets[2]["id"], "binding:host_id": host})
            e = Guest(e_port, script)
            guests.append(e)
            wait_until("e ACTIVE", all_active, timeout=60, interval=0.2)
            e.dhcp()
            server = subprocess.Popen(["ip", "netns", "exec", b.ns, "iperf3", "-s"], stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            wait_until("the floating IP", lambda: e.run("busybox", "ping", "-c", "1", "-W", "1",
                                                        fip["floating_ip_address"], check=False).returncode == 0, 30)
            routed = iperf(e, fip["floating_ip_address"])
            server.kill()
            print(f"TCP throughput (iperf3, 5 s): bridge without filtering {open_bps:.2f} Gbit/s, "
                  f"bridge with security groups {filtered:.2f} Gbit/s ({filtered / open_bps * 100:.0f}%), "
                  f"through two routers with SNAT and a floating IP {routed:.2f} Gbit/s "
                  f"({routed / open_bps * 100:.0f}%)")
        else:
            print("iperf3 is not installed: throughput not measured")
        if os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(agent.log.name, os.environ["BENCH_KEEP_LOG"])
        rss = int(open(f"/proc/{agent.proc.pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024
        print(f"agent resident memory: {rss} MiB")
    finally:
        for g in guests:
            g.destroy()
        for t in taps:
            sh("ip", "link", "del", t, check=False)
        agent.stop()
        cloud.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
