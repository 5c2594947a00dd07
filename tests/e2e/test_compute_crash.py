"""`kill -9` of the control plane while 20 servers are being built and deleted: after
the restart every server ends ACTIVE, ERROR or gone, and no port (with its IP), quota
or host claim is left behind.

The hypervisor hosts are a separate `stratusd compute-agent --driver fake` process (4
fake hosts, 1.5 s boots), as they would be on real hosts, so their guests outlive the
crash; the control plane runs on PostgreSQL + NATS (the deployment that splits
processes). Skipped when those are not reachable.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import STRATUSD, Cloud, backend_urls, unique

FLAVOR_VCPUS, FLAVOR_RAM = 1, 256


class Crashable:
    def __init__(self):
        db_url, bus_url = backend_urls("postgres")
        self.data_dir = tempfile.mkdtemp(prefix="stratus-crash-")
        self.cloud = Cloud(
            "postgres", self.data_dir, db_url=db_url, bus_url=bus_url,
            extra_env={
                "STRATUS_COMPUTE_AGENT__ENABLED": "false",
                "STRATUS_COMPUTE__RECONCILE_SECS": "1",
                "STRATUS_COMPUTE__COMMAND_TIMEOUT_SECS": "3",
                "STRATUS_COMPUTE__HOST_DOWN_SECS": "10",
            },
        )
        env = dict(self.cloud.env)
        env.update({
            "STRATUS_COMPUTE_AGENT__HOST": unique("crash"),
            "STRATUS_COMPUTE_AGENT__FAKE_BOOT_DELAY_MS": "1500",
            "STRATUS_COMPUTE_AGENT__REPORT_SECS": "1",
        })
        self.agent_log = open(os.path.join(self.data_dir, "compute-agent.log"), "w")
        self.agent = subprocess.Popen(
            [STRATUSD, "compute-agent", "--driver", "fake", "--fake-hosts", "4"],
            env=env, stdout=self.agent_log, stderr=subprocess.STDOUT,
        )

    def stop(self):
        self.agent.terminate()
        self.agent.wait(10)
        self.agent_log.close()
        self.cloud.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def crashable():
    c = Crashable()
    yield c
    c.stop()


def compute(cloud, token, method, path, body=None):
    return cloud.http(method, path, token=token, body=body, base=cloud.compute_url + "/v2.1")


def hypervisors(cloud, token):
    status, _, body = compute(cloud, token, "GET", "/os-hypervisors/detail")
    assert status == 200, body
    return body["hypervisors"]


def in_parallel(fn, args):
    out = [None] * len(args)

    def run(i, a):
        out[i] = fn(a)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def host_usage(cloud, token):
    """(vCPUs, MiB) claimed over all hosts."""
    hosts = hypervisors(cloud, token)
    return sum(h["vcpus_used"] for h in hosts), sum(h["memory_mb_used"] for h in hosts)


def prepare(crashable):
    """Waits for the fake hosts; makes a flavor, an image and a network. Returns the
    token, the hosts' usage before any server, and a function creating a server."""
    cloud = crashable.cloud
    token = cloud.password_token()
    deadline = time.monotonic() + 30
    while len(hypervisors(cloud, token)) < 4:
        assert time.monotonic() < deadline, "the fake hosts did not register"
        time.sleep(0.5)
    baseline = host_usage(cloud, token)
    cloud.osc("quota", "set", "--instances", "100", "--cores", "100", "--ram", "100000", "admin")
    flavor = cloud.osc("flavor", "create", "--vcpus", str(FLAVOR_VCPUS), "--ram", str(FLAVOR_RAM), "--disk", "1",
                       unique("crash"))
    image_file = os.path.join(crashable.data_dir, "image.raw")
    with open(image_file, "wb") as f:
        f.write(os.urandom(4096))
    image = cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file",
                      image_file, unique("crash-img"))
    net = cloud.osc("network", "create", unique("crash-net"))
    cloud.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.77.0.0/24", unique("crash-sub"))

    def create(name):
        body = {"server": {"name": name, "flavorRef": flavor["id"], "imageRef": image["id"],
                           "networks": [{"uuid": net["id"]}]}}
        status, _, resp = compute(cloud, token, "POST", "/servers", body)
        assert status == 202, resp
        return resp["server"]["id"]

    return token, baseline, net, create


def test_kill9_during_builds_and_deletes_leaks_nothing(crashable):
    cloud = crashable.cloud
    token, baseline, net, create = prepare(crashable)

    def servers():
        status, _, body = compute(cloud, token, "GET", "/servers/detail")
        assert status == 200, body
        return {s["id"]: s for s in body["servers"]}

    def settle(timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            now = servers()
            busy = {i: (s["status"], s.get("OS-EXT-STS:task_state")) for i, s in now.items()
                    if s["status"] not in ("ACTIVE", "ERROR") or s.get("OS-EXT-STS:task_state")}
            if not busy:
                return now
            assert time.monotonic() < deadline, f"servers still in transition: {busy}"
            time.sleep(0.5)

    first = in_parallel(create, [f"old-{i}" for i in range(10)])
    assert all(s["status"] == "ACTIVE" for s in settle().values())

    # Ten deletes and ten new builds at once, then the crash while they are in flight.
    def delete(sid):
        status, _, body = compute(cloud, token, "DELETE", f"/servers/{sid}")
        assert status == 204, body

    results = {}
    deleter = threading.Thread(target=lambda: results.update(deleted=in_parallel(delete, first)))
    deleter.start()
    second = in_parallel(create, [f"new-{i}" for i in range(10)])
    deleter.join()
    time.sleep(0.3)
    in_build = [s for s in servers().values() if s["status"] == "BUILD"]
    assert in_build, "the crash should come while servers are being built"
    cloud.kill9()
    cloud.restart()
    token = cloud.password_token()

    final = settle()
    for sid in first:
        assert sid not in final, "a deleted server came back"
        status, _, _ = compute(cloud, token, "GET", f"/servers/{sid}")
        assert status == 404
    for sid in second:
        assert final[sid]["status"] in ("ACTIVE", "ERROR"), final[sid]
    active = [s for s in final.values() if s["status"] == "ACTIVE"]
    print(f"after the crash: {len(active)} ACTIVE, {len(final) - len(active)} ERROR, {len(first)} deleted")

    def check_nothing_leaked():
        live = servers()
        up = [s for s in live.values() if s["status"] == "ACTIVE"]
        # Ports (and with them the fixed IPs): one per ACTIVE server, none for others.
        status, _, body = cloud.http("GET", f"/v2.0/ports?network_id={net['id']}", token=token, base=cloud.network_url)
        assert status == 200
        compute_ports = [p for p in body["ports"] if p["device_owner"].startswith("compute:")]
        owners = sorted(p["device_id"] for p in compute_ports)
        assert owners == sorted(s["id"] for s in up), "ports left behind or missing"
        # Quota usage counts exactly the ACTIVE servers.
        status, _, body = compute(cloud, token, "GET", "/limits")
        absolute = body["limits"]["absolute"]
        assert absolute["totalInstancesUsed"] == len(up)
        assert absolute["totalCoresUsed"] == len(up) * FLAVOR_VCPUS
        assert absolute["totalRAMUsed"] == len(up) * FLAVOR_RAM
        # Host claims add up to the ACTIVE servers.
        vcpus, ram = (n - b for n, b in zip(host_usage(cloud, token), baseline))
        assert (vcpus, ram) == (len(up) * FLAVOR_VCPUS, len(up) * FLAVOR_RAM), "host claims leaked"
        return up

    # The agents' reports and the reconciler may still be converging for a moment.
    deadline = time.monotonic() + 30
    while True:
        try:
            check_nothing_leaked()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)

    # Deleting the survivors returns everything to where it started.
    in_parallel(delete, list(final))
    deadline = time.monotonic() + 60
    while servers():
        assert time.monotonic() < deadline, "servers not deleted"
        time.sleep(0.5)
    assert check_nothing_leaked() == []


def test_kill9_during_resizes_leaks_nothing(crashable):
    """Resizes in flight (1.5 s each on the fake hosts) when the control plane dies:
    after the restart each ends in VERIFY_RESIZE or back on the old flavor, and the
    quota and the host claims hold exactly what the servers hold."""
    cloud = crashable.cloud
    token, baseline, _, create = prepare(crashable)
    bigger = cloud.osc("flavor", "create", "--vcpus", "2", "--ram", str(2 * FLAVOR_RAM), "--disk", "1",
                       unique("crash-big"))
    ids = in_parallel(create, [f"grow-{i}" for i in range(4)])

    def wait_all(statuses, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            now = {i: compute(cloud, token, "GET", f"/servers/{i}")[2]["server"] for i in ids}
            if all(s["status"] in statuses and not s.get("OS-EXT-STS:task_state") for s in now.values()):
                return now
            assert time.monotonic() < deadline, {i: (s["status"], s.get("OS-EXT-STS:task_state")) for i, s in now.items()}
            time.sleep(0.5)

    wait_all(("ACTIVE",))

    def resize(sid):
        status, _, body = compute(cloud, token, "POST", f"/servers/{sid}/action",
                                  {"resize": {"flavorRef": bigger["id"]}})
        assert status == 202, body

    in_parallel(resize, ids)
    time.sleep(0.3)
    shown = [compute(cloud, token, "GET", f"/servers/{i}")[2]["server"] for i in ids]
    assert any(s["status"] == "RESIZE" for s in shown), "the crash should come while servers are resizing"
    cloud.kill9()
    cloud.restart()
    token = cloud.password_token()

    final = wait_all(("VERIFY_RESIZE", "ACTIVE"))
    grown = [i for i, s in final.items() if s["status"] == "VERIFY_RESIZE"]
    print(f"after the crash: {len(grown)} resized, {len(ids) - len(grown)} back on the old flavor")
    # Waiting for confirmation: the larger flavor in quota, both flavors on the hosts.
    status, _, body = compute(cloud, token, "GET", "/limits")
    assert body["limits"]["absolute"]["totalCoresUsed"] == 2 * len(grown) + (len(ids) - len(grown)) * FLAVOR_VCPUS
    vcpus, _ = (n - b for n, b in zip(host_usage(cloud, token), baseline))
    assert vcpus == 3 * len(grown) + (len(ids) - len(grown)) * FLAVOR_VCPUS, "host claims leaked"
    for sid in grown:
        status, _, body = compute(cloud, token, "POST", f"/servers/{sid}/action", {"confirmResize": None})
        assert status == 204, body
    wait_all(("ACTIVE",))
    vcpus, ram = (n - b for n, b in zip(host_usage(cloud, token), baseline))
    assert vcpus == 2 * len(grown) + (len(ids) - len(grown)) * FLAVOR_VCPUS
    assert ram == 2 * FLAVOR_RAM * len(grown) + (len(ids) - len(grown)) * FLAVOR_RAM

    for sid in ids:
        assert compute(cloud, token, "DELETE", f"/servers/{sid}")[0] == 204
    deadline = time.monotonic() + 60
    while any(compute(cloud, token, "GET", f"/servers/{i}")[0] != 404 for i in ids):
        assert time.monotonic() < deadline, "servers not deleted"
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    while host_usage(cloud, token) != baseline:
        assert time.monotonic() < deadline, "host claims left behind"
        time.sleep(0.5)
