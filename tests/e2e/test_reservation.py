"""Leases as the seeds' workflow uses them, with the real clients: the openstack
client's Blazar plugin (python-blazarclient) and python-chi, against `stratusd
all-in-one` with four fake compute hosts. Reserve hosts, wait for the lease to start,
launch into the reservation, see the hosts leave the shared pool, end the lease and
see its servers removed and the hosts back; a lease starting while the cloud is down
starts once it is back."""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import Cloud, compute_basics, unique

SKYLAKE = '["==","$node_type","compute_skylake"]'


@pytest.fixture(scope="module")
def cloud():
    data_dir = tempfile.mkdtemp(prefix="stratus-e2e-lease-")
    c = Cloud("sqlite", data_dir, extra_env={
        "STRATUS_COMPUTE_AGENT__FAKE_HOSTS": "4",
        # As Chameleon runs it, for python-chi's chi.hardware: users read the hosts and
        # their allocations, the hardware catalog is served, the region names a site.
        "STRATUS_RESERVATION__HOSTS_VISIBLE_TO_PROJECTS": "true",
        "STRATUS_RESERVATION__HARDWARE_CATALOG": "true",
        "STRATUS_IDENTITY__REGION": "CHI@Stratus",
    })
    yield c
    c.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def osc(cloud, *args, env=None):
    """`openstack ARGS -f json`, parsed (blazarclient's create commands print a line
    such as "Created a new lease:" before the JSON)."""
    out = cloud.osc(*args, "-f", "json", env=env, fmt_json=False)
    starts = [i for i in (out.find("{"), out.find("[")) if i >= 0]
    return json.loads(out[min(starts):]) if starts else None


def hosts(cloud):
    names = sorted(h["Hypervisor Hostname"] for h in osc(cloud, "hypervisor", "list"))
    assert len(names) == 4, names
    return names


def lease_status(cloud, env, name):
    return osc(cloud, "reservation", "lease", "show", name, env=env)["status"]


def wait_lease(cloud, env, name, status, timeout=30):
    deadline = time.monotonic() + timeout
    while (now := lease_status(cloud, env, name)) != status:
        assert now != "ERROR" and time.monotonic() < deadline, f"lease {name} is {now}, not {status}"
        time.sleep(0.3)


def wait_server(cloud, env, name, status, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        p = cloud.osc("server", "show", name, "-f", "json", env=env, check=False, fmt_json=False)
        if status == "GONE" and p.returncode != 0:
            return None
        if p.returncode == 0 and json.loads(p.stdout)["status"] == status:
            return json.loads(p.stdout)
        assert time.monotonic() < deadline, f"server {name} never {status}: {p.stdout} {p.stderr}"
        time.sleep(0.3)


def minutes_from_now(m):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=m)
    return t.strftime("%Y-%m-%d %H:%M")


def test_openstack_client_lease_workflow(cloud):
    names = hosts(cloud)
    skylake, haswell = names[:2], names[2]
    for h in skylake:
        made = osc(cloud, "reservation", "host", "create", "--extra", "node_type=compute_skylake", h)
        assert made["hypervisor_hostname"] == h and made["node_type"] == "compute_skylake"
    osc(cloud, "reservation", "host", "create", "--extra", "node_type=compute_haswell", haswell)
    listed = osc(cloud, "reservation", "host", "list")
    assert sorted(h["hypervisor_hostname"] for h in listed) == names[:3]
    # By name, as blazarclient resolves it; capabilities set and shown.
    cloud.osc("reservation", "host", "set", "--extra", "gpu=none", haswell)
    assert osc(cloud, "reservation", "host", "show", haswell)["gpu"] == "none"

    basics = compute_basics(cloud, "10.77.0.0/24", shared=True)
    _, alice = cloud.member_env(unique("lessee"))
    _, bob = cloud.member_env(unique("other"))
    # A member reads the hosts here (hosts_visible_to_projects) but cannot change them.
    assert sorted(h["hypervisor_hostname"] for h in osc(cloud, "reservation", "host", "list", env=alice)) == names[:3]
    p = cloud.osc("reservation", "host", "set", "--extra", "gpu=yes", haswell, env=alice, check=False)
    assert p.returncode != 0 and ("403" in p.stderr or "olicy" in p.stderr), p.stderr

    made = osc(
        cloud, "reservation", "lease", "create",
        "--reservation",
        f"resource_type=physical:host,min=1,max=2,resource_properties={SKYLAKE},before_end=snapshot",
        "--start-date", "now", "--end-date", minutes_from_now(30), "skylakes", env=alice,
    )
    assert made["name"] == "skylakes"
    wait_lease(cloud, alice, "skylakes", "ACTIVE")
    lease = osc(cloud, "reservation", "lease", "show", "skylakes", env=alice)
    reservations = lease["reservations"]
    reservation = (json.loads(reservations) if isinstance(reservations, str) else reservations)
    reservation = reservation[0] if isinstance(reservation, list) else reservation
    res_id = reservation["id"]
    assert reservation["status"] == "active"

    # Another project's lease over the same window finds no skylake left.
    refused = cloud.osc(
        "reservation", "lease", "create",
        "--reservation", f"resource_type=physical:host,min=1,max=1,resource_properties={SKYLAKE}",
        "--start-date", "now", "--end-date", minutes_from_now(10), "late", env=bob, check=False,
    )
    assert refused.returncode != 0 and "Not enough hosts" in refused.stderr, refused.stderr
    assert [l for l in osc(cloud, "reservation", "lease", "list", env=bob)] == []

    # Launch into the reservation: it lands on a reserved host; a plain server does not.
    common = ["--flavor", basics["flavor"], "--image", basics["image"], "--network", basics["network"]]
    vm = osc(cloud, "server", "create", *common, "--hint", f"reservation={res_id}", "--wait", "leased-vm", env=alice)
    on = osc(cloud, "server", "show", vm["id"])["OS-EXT-SRV-ATTR:host"]
    assert on in skylake, on
    for i in range(2):
        plain = osc(cloud, "server", "create", *common, "--wait", f"plain-{i}", env=alice)
        assert osc(cloud, "server", "show", plain["id"])["OS-EXT-SRV-ATTR:host"] not in skylake
    # The reservation is its project's alone.
    osc(cloud, "server", "create", *common, "--hint", f"reservation={res_id}", "intruder", env=bob)
    assert wait_server(cloud, bob, "intruder", "ERROR")

    allocations = osc(cloud, "reservation", "allocation", "list", "host")
    held = [a for a in allocations if a["reservations"]]
    assert len(held) == 2, allocations

    # Prolong by the client's own arithmetic (it reads the lease's end_date format).
    before = lease["end_date"]
    cloud.osc("reservation", "lease", "set", "--prolong-for", "1h", "skylakes", env=alice)
    after = osc(cloud, "reservation", "lease", "show", "skylakes", env=alice)["end_date"]
    assert after > before, (before, after)

    # The lease ends (moved to a few seconds from now, with the API's seconds; its
    # before-end moment just before): its servers are snapshotted into images of the
    # project (`before_end=snapshot`), then removed, and its hosts return to the pool.
    def soon(seconds):
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        return t.strftime("%Y-%m-%d %H:%M:%S")

    token = cloud.osc("token", "issue", env=alice)["id"]
    status, _, body = cloud.http("PUT", f"/v1/leases/{lease['id']}", token=token,
                                 body={"end_date": soon(5), "before_end_date": soon(1)}, base=cloud.reservation_url)
    assert status == 200, body
    wait_lease(cloud, alice, "skylakes", "TERMINATED", timeout=60)
    wait_server(cloud, alice, "leased-vm", "GONE")
    kept = [i for i in osc(cloud, "image", "list", "--private", env=alice) if i["Name"] == "leased-vm-lease-snapshot"]
    assert len(kept) == 1, osc(cloud, "image", "list", env=alice)
    image = osc(cloud, "image", "show", kept[0]["ID"], env=alice)
    assert image["owner"] == cloud.osc("token", "issue", env=alice)["project_id"], image
    assert image["status"] == "active", image
    assert wait_server(cloud, alice, "plain-0", "ACTIVE"), "servers outside the lease stay"
    osc(
        cloud, "reservation", "lease", "create",
        "--reservation", f"resource_type=physical:host,min=2,max=2,resource_properties={SKYLAKE}",
        "--start-date", "now", "--end-date", minutes_from_now(10), "next", env=bob,
    )
    wait_lease(cloud, bob, "next", "ACTIVE")
    for name, env in [("next", bob), ("skylakes", alice)]:
        cloud.osc("reservation", "lease", "delete", name, env=env)
    assert osc(cloud, "reservation", "lease", "list", env=alice) == []


def test_flavor_instance_reservation(cloud):
    """Instances of a flavor reserved with the openstack client: the lease's start
    gives the project a private flavor `reservation:<id>`, whose servers land in the
    slices of hosts held for it; the end deletes them and the flavor."""
    names = hosts(cloud)
    listed = [h["hypervisor_hostname"] for h in osc(cloud, "reservation", "host", "list")]
    # The first three hosts (the fourth is python-chi's below).
    for h in names[:3]:
        if h not in listed:
            osc(cloud, "reservation", "host", "create", h)
    basics = compute_basics(cloud, "10.79.0.0/24", shared=True)
    flavor_id = osc(cloud, "flavor", "show", basics["flavor"])["id"]
    _, alice = cloud.member_env(unique("slicer"))
    _, bob = cloud.member_env(unique("onlooker"))
    made = osc(
        cloud, "reservation", "lease", "create",
        "--reservation", f"resource_type=flavor:instance,flavor_id={flavor_id},amount=2",
        "--start-date", "now", "--end-date", minutes_from_now(30), "instances", env=alice,
    )
    wait_lease(cloud, alice, "instances", "ACTIVE")
    lease = osc(cloud, "reservation", "lease", "show", made["id"], env=alice)
    reservations = lease["reservations"]
    reservation = (json.loads(reservations) if isinstance(reservations, str) else reservations)
    reservation = reservation[0] if isinstance(reservation, list) else reservation
    rid = reservation["id"]
    assert (reservation["resource_type"], reservation["amount"], reservation["vcpus"]) == ("flavor:instance", 2, 1)
    assert json.loads(reservation["resource_properties"])["id"] == flavor_id
    # The reservation's flavor: the lessee's project sees it, another does not.
    mine = {f["ID"]: f for f in osc(cloud, "flavor", "list", "--all", env=alice)}
    assert mine[rid]["Name"] == f"reservation:{rid}" and mine[rid]["Is Public"] is False, mine
    assert rid not in {f["ID"] for f in osc(cloud, "flavor", "list", "--all", env=bob)}
    # Bad input: an unknown flavor is a clear 400 and no lease.
    p = cloud.osc("reservation", "lease", "create", "--reservation", "resource_type=flavor:instance,flavor_id=nope,amount=1",
                  "--start-date", "now", "--end-date", minutes_from_now(30), "bad", env=bob, check=False)
    assert p.returncode != 0 and "could not be found" in p.stderr, p.stderr
    common = ["--image", basics["image"], "--network", basics["network"]]
    vm = osc(cloud, "server", "create", "--flavor", rid, *common, "--wait", "sliced-vm", env=alice)
    host = osc(cloud, "server", "show", vm["id"])["OS-EXT-SRV-ATTR:host"]
    held = {a["resource_id"] for a in osc(cloud, "reservation", "allocation", "list", "host")
            if any(r["id"] == rid for r in a["reservations"])}
    by_name = {h["hypervisor_hostname"]: h["id"] for h in osc(cloud, "reservation", "host", "list")}
    assert str(by_name[host]) in held, (host, held)
    p = cloud.osc("server", "create", "--flavor", rid, *common, "gatecrasher", env=bob, check=False)
    assert p.returncode != 0, "another project cannot use the reservation's flavor"
    # More instances while it runs: the amount grows (it may not shrink now).
    cloud.osc("reservation", "lease", "set", "--reservation", f"id={rid},amount=3", "instances", env=alice,
              fmt_json=False)
    shown = osc(cloud, "reservation", "lease", "show", made["id"], env=alice)["reservations"]
    shown = json.loads(shown) if isinstance(shown, str) else shown
    assert (shown[0] if isinstance(shown, list) else shown)["amount"] == 3, shown
    p = cloud.osc("reservation", "lease", "set", "--reservation", f"id={rid},amount=1", "instances", env=alice,
                  check=False, fmt_json=False)
    assert p.returncode != 0 and "not shrink" in p.stderr, p.stderr
    # The end: the server and the flavor go.
    cloud.osc("reservation", "lease", "delete", "instances", env=alice)
    wait_server(cloud, alice, "sliced-vm", "GONE")
    assert rid not in {f["ID"] for f in osc(cloud, "flavor", "list", "--all")}


CHI_SCRIPT = r"""
import datetime, json, sys
import chi.context, chi.hardware, chi.lease, chi.server
from blazarclient.v1 import hosts as blazar_hosts
name, image, flavor, network, key = sys.argv[1:6]
# chi.hardware calls two host methods of Chameleon's blazarclient fork that PyPI's
# blazarclient lacks; they are plain GETs of Blazar's allocation API, added here as the
# fork has them.
if not hasattr(blazar_hosts.ComputeHostClientManager, "list_allocations"):
    blazar_hosts.ComputeHostClientManager.list_allocations = (
        lambda self: self.request_manager.get("/os-hosts/allocations")[1]["allocations"])
    blazar_hosts.ComputeHostClientManager.get_allocation = (
        lambda self, host: self.request_manager.get(f"/os-hosts/{host}/allocation")[1]["allocation"])
# The hardware catalog: the site, and the free nodes of the type, by uid.
site = list(chi.context.list_sites())[0]
free = [n.uid for n in chi.hardware.get_nodes(node_type="gpu_rtx", filter_reserved=True)]
lease = chi.lease.Lease(name, duration=datetime.timedelta(minutes=20))
lease.add_node_reservation(amount=1, node_type="gpu_rtx")
lease.add_fip_reservation(1)
lease.submit(wait_for_active=True, wait_timeout=60)
fips = lease.get_reserved_floating_ips()
reservation = lease.node_reservations[0]["id"]
server = chi.server.Server(name + "-vm", reservation_id=reservation, image_name=image, flavor_name=flavor,
                           network_name=network, key_name=key)
server.submit(wait_for_active=True, show=None, wait_timeout=120)
again = chi.lease.get_lease(name)
busy = [n.uid for n in chi.hardware.get_nodes(node_type="gpu_rtx", filter_reserved=True)]
# The node's next free slot starts when the lease ends.
node = chi.hardware.get_nodes(node_type="gpu_rtx")[0]
slot_start = node.next_free_timeslot(minimum_hours=1)[0]
ends = chi.lease.get_lease(name).end_date
# Instances of a flavor: the lease's own flavor, found by python-chi, boots a server.
flavored = chi.lease.Lease(name + "-flavor", duration=datetime.timedelta(minutes=20))
flavored.add_flavor_reservation(name=flavor, amount=1)
flavored.submit(wait_for_active=True, wait_timeout=60)
reserved = [f.name for f in flavored.get_reserved_flavors()]
in_slice = chi.server.Server(name + "-fvm", image_name=image, flavor_name=reserved[0], network_name=network,
                             key_name=key)
in_slice.submit(wait_for_active=True, show=None, wait_timeout=120)
print(json.dumps({"lease": lease.id, "status": again.status, "reservation": reservation, "fips": fips,
                  "site": site, "free": free, "free_while_leased": busy, "slot": str(slot_start), "ends": str(ends),
                  "flavor_reservation": flavored.flavor_reservations[0]["id"], "reserved_flavors": reserved,
                  "flavor_server": in_slice.status}))
flavored.delete()
lease.delete()
"""


def test_python_chi_and_a_lease_starting_while_down(cloud):
    names = hosts(cloud)
    gpu = names[3]
    osc(cloud, "reservation", "host", "create", "--extra", "node_type=gpu_rtx", gpu)
    basics = compute_basics(cloud, "10.78.0.0/24", shared=True)
    # python-chi reserves floating IPs of the network named "public": one reservable
    # address, outside the subnet's allocation pool.
    public = osc(cloud, "network", "create", "--external", "public")
    osc(cloud, "subnet", "create", "--network", "public", "--subnet-range", "198.51.100.0/24", "--no-dhcp",
        "--allocation-pool", "start=198.51.100.10,end=198.51.100.99", unique("pub"))
    inside = cloud.osc("reservation", "floatingip", "create", public["id"], "198.51.100.20", check=False)
    assert inside.returncode != 0 and "allocation pool" in inside.stderr, inside.stderr
    osc(cloud, "reservation", "floatingip", "create", public["id"], "198.51.100.200")
    project = unique("chi")
    _, env = cloud.member_env(project)
    key = unique("key")
    cloud.osc("keypair", "create", key, env=env, fmt_json=False)
    image_name = osc(cloud, "image", "show", basics["image"])["name"]
    chi_env = dict(env, OS_AUTH_TYPE="v3password", OS_INTERFACE="public",
                   CHI_RESOURCE_API_URL=cloud.reservation_url + "/reference")
    p = subprocess.run(
        [sys.executable, "-c", CHI_SCRIPT, "chi-lease", image_name, basics["flavor"], basics["network"], key],
        env=chi_env, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr + p.stdout
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["status"] == "ACTIVE", out
    assert out["fips"] == ["198.51.100.200"], out
    assert out["site"] == "CHI@Stratus" and out["free"] == [gpu] and out["free_while_leased"] == [], out
    assert out["slot"].replace("T", " ")[:16] == out["ends"].replace("T", " ")[:16], out
    assert out["reserved_flavors"] == [f"reservation:{out['flavor_reservation']}"], out
    assert out["flavor_server"] == "ACTIVE", out
    wait_server(cloud, env, "chi-lease-fvm", "GONE")
    # The lease's delete removed its server and took its floating IP back.
    wait_server(cloud, env, "chi-lease-vm", "GONE")
    assert osc(cloud, "floating", "ip", "list", env=env) == []

    # A lease starting in a few seconds, while the cloud is down: it starts on restart.
    token = cloud.osc("token", "issue", env=env)["id"]
    start = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    body = {"name": "while-down", "start_date": start, "end_date": minutes_from_now(30), "events": [],
            "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1,
                              "resource_properties": '["==", "$node_type", "gpu_rtx"]'}]}
    status, _, made = cloud.http("POST", "/v1/leases", token=token, body=body, base=cloud.reservation_url)
    assert status == 201, made
    assert made["lease"]["status"] == "PENDING"
    cloud.kill9()
    time.sleep(3)
    cloud.restart()
    wait_lease(cloud, env, "while-down", "ACTIVE")
    events = osc(cloud, "reservation", "lease", "show", "while-down", env=env)["events"]
    assert "start_lease" in str(events)
    cloud.osc("reservation", "lease", "delete", "while-down", env=env)
