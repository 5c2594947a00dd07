"""Bare metal with the openstack client's Ironic plugin, as an operator drives it.

Fake hardware walks the whole provisioning state machine (enroll → manageable →
inspected → available → active → available), with the refusals that guard it (the Rust
API tests run the same on both database engines; one SQLite cloud serves this module). Then libvirt domains stand in for physical servers behind real BMC emulators:
sushy-tools (Redfish) and virtualbmc (IPMI, through Debian's ipmitool); every power and
boot-device change is checked on the domain itself, with virsh.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import Cloud, compute_basics, free_port, unique

VENV_BIN = os.path.dirname(sys.executable)


def osc(cloud, *args, check=True, env=None):
    """The openstack client, JSON where the command prints a record or a list."""
    return cloud.osc(*args, check=check, env=env)


def osc_run(cloud, *args, env=None):
    """A command that prints no record; the completed process (not checked)."""
    return cloud.osc(*args, check=False, fmt_json=False, env=env)


def node_show(cloud, node):
    """The node as the API shows it (read directly: the checks need no client)."""
    if not hasattr(cloud, "bm_token"):
        cloud.bm_token = cloud.password_token()
    status, _, n = cloud.http("GET", f"/v1/nodes/{node}", cloud.bm_token, base=cloud.baremetal_url,
                              headers={"X-OpenStack-Ironic-API-Version": "1.31"})
    assert status == 200, n
    return n


def wait_node(cloud, node, **want):
    deadline = time.monotonic() + 60
    while True:
        n = node_show(cloud, node)
        if all(n[k] == v for k, v in want.items()):
            return n
        assert time.monotonic() < deadline, f"node {node} never reached {want}: {n}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def bm_cloud():
    data_dir = tempfile.mkdtemp(prefix="stratus-bmcloud-")
    c = Cloud("sqlite", data_dir, extra_env={
        "STRATUS_BAREMETAL__POWER_SYNC_SECS": "2",
        # Nodes become compute hosts at the bare-metal agent's next report.
        "STRATUS_COMPUTE_AGENT__REPORT_SECS": "1",
    })
    yield c
    c.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def provision(cloud, node, verb, state):
    """`openstack baremetal node VERB NODE`, then waits (reading the API every 0.3 s:
    the client's own --wait polls every 10 s) until the node rests in `state`."""
    p = osc_run(cloud, "baremetal", "node", verb, node)
    assert p.returncode == 0, p.stderr
    n = wait_node(cloud, node, target_provision_state=None)
    assert n["provision_state"] == state, f"{verb}: {n['provision_state']}, {n['last_error']}"
    return n


def refused(cloud, method, path, body=None):
    """A raw call the client would retry for a while (it retries every 409)."""
    if not hasattr(cloud, "bm_token"):
        cloud.bm_token = cloud.password_token()
    status, _, answer = cloud.http(method, path, cloud.bm_token, body, base=cloud.baremetal_url,
                                   headers={"X-OpenStack-Ironic-API-Version": "1.31"})
    return status, json.loads(answer["error_message"])["faultstring"] if answer else ""


def test_fake_nodes_walk_the_provisioning_states(bm_cloud):
    cloud = bm_cloud
    name = unique("bm")
    n = osc(cloud, "baremetal", "node", "create", "--driver", "fake-hardware", "--name", name,
            "--resource-class", "baremetal", "--property", "capabilities=boot_mode:bios")
    assert n["provision_state"] == "enroll" and n["resource_class"] == "baremetal"
    assert n["power_interface"] == "fake" and n["deploy_interface"] == "fake"
    assert name in [x["name"] for x in osc(cloud, "baremetal", "node", "list")]

    # A verb out of order is refused and changes nothing.
    p = osc_run(cloud, "baremetal", "node", "deploy", name)
    assert p.returncode != 0 and "can not be performed" in p.stderr
    assert node_show(cloud, name)["provision_state"] == "enroll"

    # The client's own --wait once; the API's states after.
    assert osc_run(cloud, "baremetal", "node", "manage", name, "--wait", "60").returncode == 0
    assert node_show(cloud, name)["provision_state"] == "manageable"
    provision(cloud, name, "inspect", "manageable")
    n = provision(cloud, name, "provide", "available")
    assert n["properties"]["cpus"] == 2 and n["properties"]["memory_mb"] == 4096, n["properties"]
    assert n["power_state"] == "power off" and n["inspection_finished_at"]

    port_mac = "52:54:00:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])
    port = osc(cloud, "baremetal", "port", "create", port_mac.upper(), "--node", n["uuid"])
    assert port["address"] == port_mac and port["node_uuid"] == n["uuid"]
    dup = osc_run(cloud, "baremetal", "port", "create", port_mac, "--node", n["uuid"])
    assert dup.returncode != 0 and "already exists" in dup.stderr
    assert [p["address"] for p in osc(cloud, "baremetal", "port", "list", "--node", name)] == [port_mac]

    assert osc_run(cloud, "baremetal", "node", "set", name, "--instance-info", "image_source=glance://x").returncode == 0
    n = provision(cloud, name, "deploy", "active")
    assert n["power_state"] == "power on"
    # An active node is neither deleted nor has its ports taken away.
    status, why = refused(cloud, "DELETE", f"/v1/nodes/{name}")
    assert status == 409 and "provision state" in why, why
    assert refused(cloud, "DELETE", f"/v1/ports/{port['uuid']}")[0] == 409

    n = provision(cloud, name, "undeploy", "available")
    assert (n["provision_state"], n["power_state"], n["instance_info"]) == ("available", "power off", {})

    assert osc_run(cloud, "baremetal", "node", "maintenance", "set", name, "--reason", "fan").returncode == 0
    n = node_show(cloud, name)
    assert n["maintenance"] and n["maintenance_reason"] == "fan"
    assert osc_run(cloud, "baremetal", "node", "maintenance", "unset", name).returncode == 0

    assert osc_run(cloud, "baremetal", "node", "delete", name).returncode == 0
    assert osc_run(cloud, "baremetal", "port", "show", port["uuid"]).returncode != 0
    # The node was a compute host (it has a resource class); gone, compute forgets it.
    wait_for("the deleted node to leave the hypervisors",
             lambda: n["uuid"] not in [h["Hypervisor Hostname"] for h in osc(cloud, "hypervisor", "list")])


def test_a_leased_node_runs_a_server(bm_cloud):
    """The seeds' workflow on bare metal: a node with a resource class is a compute
    host; a project leases it (Blazar host = node) and launches a server of a flavor of
    that class into the lease; the server takes the whole node (deployed with the
    server's image), its power actions reach the node, and deleting it undeploys the
    node, which cleans itself and is available again."""
    cloud = bm_cloud
    name = unique("bmc")
    n = osc(cloud, "baremetal", "node", "create", "--driver", "fake-hardware", "--name", name,
            "--resource-class", "baremetal", "--property", "cpus=4", "--property", "memory_mb=8192",
            "--property", "local_gb=20")
    node = n["uuid"]
    assert osc_run(cloud, "baremetal", "node", "manage", name, "--wait", "60").returncode == 0
    provision(cloud, name, "provide", "available")
    wait_for("the node as a hypervisor",
             lambda: any(h["Hypervisor Hostname"] == node for h in osc(cloud, "hypervisor", "list")))
    hv = osc(cloud, "--os-compute-api-version", "2.87", "hypervisor", "show", node)
    assert (hv["hypervisor_type"], hv["vcpus"], hv["memory_mb"], hv["state"]) == ("ironic", 4, 8192, "up"), hv

    basics = compute_basics(cloud, "10.79.0.0/24", shared=True)
    flavor = unique("baremetal")
    osc(cloud, "flavor", "create", "--vcpus", "4", "--ram", "8192", "--disk", "20",
        "--property", "resources:CUSTOM_BAREMETAL=1", flavor)
    # A hypervisor's flavor never lands on the node, and the node's flavor never lands
    # on a hypervisor.
    _, env = cloud.member_env(unique("bmlessee"))
    common = ["--image", basics["image"], "--network", basics["network"]]
    vm = osc(cloud, "server", "create", "--flavor", basics["flavor"], *common, "--wait", unique("vm"), env=env)
    assert osc(cloud, "server", "show", vm["id"])["OS-EXT-SRV-ATTR:hypervisor_hostname"] != node

    # The node is leased by the project; a server of its flavor launches into the lease.
    blazar = lambda *a, env=None: json.loads(  # noqa: E731 (blazarclient prints a line before its JSON)
        (out := cloud.osc(*a, "-f", "json", env=env, fmt_json=False))[min(i for i in (out.find("{"), out.find("[")) if i >= 0):])
    blazar("reservation", "host", "create", "--extra", "node_type=gpu_baremetal", node)
    end = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 3600))
    blazar("reservation", "lease", "create", "--reservation",
           'resource_type=physical:host,min=1,max=1,resource_properties=["==","$node_type","gpu_baremetal"]',
           "--start-date", "now", "--end-date", end, "bm-lease", env=env)
    wait_for("the lease to start",
             lambda: blazar("reservation", "lease", "show", "bm-lease", env=env)["status"] == "ACTIVE")
    res = blazar("reservation", "lease", "show", "bm-lease", env=env)["reservations"]
    res = json.loads(res) if isinstance(res, str) else res
    res_id = (res[0] if isinstance(res, list) else res)["id"]
    server = osc(cloud, "server", "create", "--flavor", flavor, *common, "--hint", f"reservation={res_id}",
                 "--wait", unique("metal"), env=env)
    shown = osc(cloud, "server", "show", server["id"])
    assert shown["status"] == "ACTIVE" and shown["OS-EXT-SRV-ATTR:hypervisor_hostname"] == node, shown
    n = node_show(cloud, node)
    assert (n["provision_state"], n["power_state"], n["instance_uuid"]) == ("active", "power on", server["id"])
    assert n["instance_info"]["image_source"] == basics["image"]

    # One server per node: a second one finds no host.
    second = unique("metal2")
    cloud.osc("server", "create", "--flavor", flavor, *common, "--hint", f"reservation={res_id}", second,
              env=env, fmt_json=False)
    wait_for("the second server to fail",
             lambda: osc(cloud, "server", "show", second, env=env)["status"] == "ERROR")
    assert node_show(cloud, node)["instance_uuid"] == server["id"]

    # Power actions reach the node.
    cloud.osc("server", "stop", server["id"], env=env, fmt_json=False)
    wait_for("the server to stop", lambda: osc(cloud, "server", "show", server["id"], env=env)["status"] == "SHUTOFF")
    assert node_show(cloud, node)["power_state"] == "power off"
    cloud.osc("server", "start", server["id"], env=env, fmt_json=False)
    wait_for("the server to start", lambda: osc(cloud, "server", "show", server["id"], env=env)["status"] == "ACTIVE")
    assert node_show(cloud, node)["power_state"] == "power on"
    # What a physical machine cannot do is refused.
    p = cloud.osc("server", "pause", server["id"], env=env, check=False, fmt_json=False)
    assert p.returncode != 0 and "bare-metal" in p.stderr, p.stderr

    # Deleting the server gives the node back: undeployed, cleaned, available.
    cloud.osc("server", "delete", "--wait", server["id"], second, env=env, fmt_json=False)
    n = wait_node(cloud, node, provision_state="available")
    assert n["instance_uuid"] is None and n["instance_info"] == {}
    cloud.osc("reservation", "lease", "delete", "bm-lease", env=env, fmt_json=False)


def test_bad_input_is_refused_and_nodes_are_the_operators(bm_cloud):
    cloud = bm_cloud
    p = osc_run(cloud, "baremetal", "node", "create", "--driver", "warp-drive")
    assert p.returncode != 0 and "driver" in p.stderr
    p = osc_run(cloud, "baremetal", "node", "create", "--driver", "redfish", "--name", "has space")
    assert p.returncode != 0
    name = unique("bmr")
    osc(cloud, "baremetal", "node", "create", "--driver", "redfish", "--name", name)
    # Without a BMC address the node cannot be managed; it stays enrolled.
    p = osc_run(cloud, "baremetal", "node", "manage", name)
    assert p.returncode != 0 and "redfish_address" in p.stderr
    assert node_show(cloud, name)["provision_state"] == "enroll"
    # Secrets are never shown back.
    assert osc_run(cloud, "baremetal", "node", "set", name, "--driver-info", "redfish_password=hunter2").returncode == 0
    assert node_show(cloud, name)["driver_info"]["redfish_password"] == "******"
    # A project member sees no nodes and cannot enrol one (Ironic's default policy).
    member = unique("bmuser")
    project = unique("bmproj")
    osc(cloud, "project", "create", project)
    osc_run(cloud, "user", "create", member, "--password", "pw-" + member)
    osc_run(cloud, "role", "add", "--user", member, "--project", project, "member")
    env = cloud.user_env(member, "pw-" + member, project)
    p = osc_run(cloud, "baremetal", "node", "list", env=env)
    assert p.returncode != 0 and ("403" in p.stderr or "policy" in p.stderr), p.stderr
    p = osc_run(cloud, "baremetal", "node", "create", "--driver", "fake-hardware", env=env)
    assert p.returncode != 0
    osc_run(cloud, "baremetal", "node", "delete", name)


# --- real BMCs in front of libvirt domains -------------------------------------------


def libvirt_up():
    if not shutil.which("virsh"):
        return False
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", "version"], capture_output=True).returncode == 0


needs_bmc = pytest.mark.skipif(
    os.geteuid() != 0 or not libvirt_up() or not shutil.which("ipmitool")
    or not os.path.exists(os.path.join(VENV_BIN, "sushy-emulator")),
    reason="needs root, a running libvirtd, ipmitool, and sushy-tools and virtualbmc in the test venv",
)


def virsh(*args):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args], capture_output=True, text=True)


def domstate(domain):
    return virsh("domstate", domain).stdout.strip()


def boots_from_network(domain):
    """Whether the domain's next boot is from its NIC: by the OS boot order (what
    virtualbmc sets) or by a per-device boot order on the interface (sushy-tools)."""
    import xml.etree.ElementTree as ET

    tree = ET.fromstring(virsh("dumpxml", "--inactive", domain).stdout)
    os_boot = [b.get("dev") for b in tree.findall("os/boot")]
    nic_boot = [i for i in tree.findall("devices/interface") if i.find("boot") is not None]
    return (os_boot[:1] == ["network"]) or bool(nic_boot)


def wait_for(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def machines():
    """Two libvirt domains on a bridge of their own, standing in for servers: an empty
    64 MiB disk, 1 GiB of memory (not touched), one NIC (they sit in the firmware when powered on, which is all a BMC test
    needs)."""
    bridge = "bmt" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    work = tempfile.mkdtemp(prefix="stratus-bm-")
    domains = []
    for i in range(2):
        name = f"stratus-bm-{uuid.uuid4().hex[:8]}"
        mac = "52:54:00:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])
        disk = os.path.join(work, name + ".qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
        xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>1024</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
<target dev='vda' bus='virtio'/></disk><interface type='bridge'><source bridge='{bridge}'/><mac address='{mac}'/><model type='virtio'/></interface>
<serial type='null'/></devices></domain>"""
        path = os.path.join(work, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        r = virsh("define", path)
        assert r.returncode == 0, r.stderr
        domains.append({"name": name, "mac": mac, "uuid": virsh("domuuid", name).stdout.strip()})
    yield domains
    for d in domains:
        virsh("destroy", d["name"])
        virsh("undefine", d["name"])
    subprocess.run(["ip", "link", "del", bridge])
    shutil.rmtree(work, ignore_errors=True)


def wait_http(url, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{proc.args[0]} exited"
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def bmcs(machines):
    """sushy-tools (Redfish) for the first domain, virtualbmc (IPMI) for the second."""
    work = tempfile.mkdtemp(prefix="stratus-bmc-")
    redfish_port = free_port()
    log = open(os.path.join(work, "sushy.log"), "w")
    sushy = subprocess.Popen(
        [os.path.join(VENV_BIN, "sushy-emulator"), "-i", "127.0.0.1", "-p", str(redfish_port),
         "--libvirt-uri", "qemu:///system"], stdout=log, stderr=subprocess.STDOUT)
    conf = os.path.join(work, "virtualbmc.conf")
    os.makedirs(os.path.join(work, "vbmc"))
    with open(conf, "w") as f:
        f.write(f"[default]\nconfig_dir = {work}/vbmc\npid_file = {work}/vbmcd.pid\nserver_port = {free_port()}\n")
    env = dict(os.environ, VIRTUALBMC_CONFIG=conf)
    vbmcd = subprocess.Popen([os.path.join(VENV_BIN, "vbmcd"), "--foreground"], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    ipmi_port = free_port()
    ipmi = machines[1]
    try:
        wait_http(f"http://127.0.0.1:{redfish_port}/redfish/v1/", sushy)
        vbmc = os.path.join(VENV_BIN, "vbmc")
        deadline = time.monotonic() + 30
        while subprocess.run([vbmc, "list"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "vbmcd never answered"
            time.sleep(0.3)
        subprocess.run([vbmc, "add", ipmi["name"], "--port", str(ipmi_port), "--address", "127.0.0.1",
                        "--username", "admin", "--password", "bmc-pw", "--libvirt-uri", "qemu:///system"],
                       env=env, check=True, capture_output=True)
        subprocess.run([vbmc, "start", ipmi["name"]], env=env, check=True, capture_output=True)
        yield {"redfish": f"http://127.0.0.1:{redfish_port}", "ipmi_port": ipmi_port}
    finally:
        for p in (sushy, vbmcd):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@needs_bmc
def test_a_redfish_node_is_inspected_powered_and_provisioned(bm_cloud, machines, bmcs):
    c, dom = bm_cloud, machines[0]
    name = unique("rf")
    n = osc(c, "baremetal", "node", "create", "--driver", "redfish", "--name", name,
            "--driver-info", f"redfish_address={bmcs['redfish']}",
            "--driver-info", f"redfish_system_id=/redfish/v1/Systems/{dom['uuid']}",
            "--deploy-interface", "fake")
    assert n["power_interface"] == "redfish" and n["deploy_interface"] == "fake"
    n = provision(c, name, "manage", "manageable")
    assert n["power_state"] == "power off"

    # Inspection reads the hardware through Redfish and enrols its NIC as a port.
    n = provision(c, name, "inspect", "manageable")
    assert n["properties"]["cpus"] == 1 and n["properties"]["memory_mb"] == 1024, n["properties"]
    assert [p["address"] for p in osc(c, "baremetal", "port", "list", "--node", name)] == [dom["mac"]]

    assert osc_run(c, "baremetal", "node", "power", "on", name).returncode == 0
    wait_node(c, name, power_state="power on", target_power_state=None)
    assert domstate(dom["name"]) == "running"
    assert osc_run(c, "baremetal", "node", "boot", "device", "set", name, "pxe").returncode == 0
    assert boots_from_network(dom["name"])
    assert osc(c, "baremetal", "node", "boot", "device", "show", name)["boot_device"] == "pxe"
    assert osc_run(c, "baremetal", "node", "reboot", name).returncode == 0
    wait_node(c, name, power_state="power on", target_power_state=None)
    assert osc_run(c, "baremetal", "node", "power", "off", name).returncode == 0
    wait_node(c, name, power_state="power off", target_power_state=None)
    assert domstate(dom["name"]) == "shut off"

    # A power change made behind the cloud's back is noticed by the power sync.
    assert virsh("start", dom["name"]).returncode == 0
    wait_node(c, name, power_state="power on")
    virsh("destroy", dom["name"])
    wait_node(c, name, power_state="power off")

    # Provisioning (fake deploy interface: nothing is written) boots it from its disk.
    provision(c, name, "provide", "available")
    n = provision(c, name, "deploy", "active")
    assert n["power_state"] == "power on"
    assert domstate(dom["name"]) == "running"
    assert not boots_from_network(dom["name"])
    provision(c, name, "undeploy", "available")
    assert domstate(dom["name"]) == "shut off"


@needs_bmc
def test_an_ipmi_node_is_powered_through_ipmitool(bm_cloud, machines, bmcs):
    c, dom = bm_cloud, machines[1]
    name = unique("ipmi")
    osc(c, "baremetal", "node", "create", "--driver", "ipmi", "--name", name,
        "--driver-info", "ipmi_address=127.0.0.1", "--driver-info", f"ipmi_port={bmcs['ipmi_port']}",
        "--driver-info", "ipmi_username=admin", "--driver-info", "ipmi_password=bmc-pw")
    n = provision(c, name, "manage", "manageable")
    assert n["power_state"] == "power off"
    assert n["driver_info"]["ipmi_password"] == "******"

    assert osc_run(c, "baremetal", "node", "power", "on", name).returncode == 0
    wait_node(c, name, power_state="power on", target_power_state=None)
    assert domstate(dom["name"]) == "running"
    assert osc_run(c, "baremetal", "node", "boot", "device", "set", name, "pxe", "--persistent").returncode == 0
    assert boots_from_network(dom["name"])
    assert osc_run(c, "baremetal", "node", "power", "off", name).returncode == 0
    wait_node(c, name, power_state="power off", target_power_state=None)
    assert domstate(dom["name"]) == "shut off"

    # IPMI cannot inspect: the node says why and stays usable.
    n = provision(c, name, "inspect", "inspect failed")
    assert "Redfish" in n["last_error"]
    provision(c, name, "manage", "manageable")

    # A wrong password: the power request fails with the BMC's reason, nothing else changes.
    assert osc_run(c, "baremetal", "node", "set", name, "--driver-info", "ipmi_password=wrong").returncode == 0
    assert osc_run(c, "baremetal", "node", "power", "on", name).returncode == 0
    n = wait_node(c, name, target_power_state=None)
    assert n["power_state"] == "power off" and "ipmitool" in (n["last_error"] or ""), n
    assert domstate(dom["name"]) == "shut off"


@needs_bmc
def test_an_unreachable_bmc_leaves_the_node_enrolled_with_the_reason(bm_cloud):
    c = bm_cloud
    name = unique("gone")
    osc(c, "baremetal", "node", "create", "--driver", "redfish", "--name", name,
        "--driver-info", f"redfish_address=http://127.0.0.1:{free_port()}",
        "--driver-info", "redfish_system_id=/redfish/v1/Systems/x")
    n = provision(c, name, "manage", "enroll")
    assert "cannot reach" in n["last_error"], n
    assert json.dumps(n).count("******") == 0


# --- the direct deploy: a ramdisk writes the image ----------------------------------


@pytest.fixture(scope="module")
def deploy_ramdisk():
    """The deploy ramdisk (deploy/ramdisk/build.sh), built once into target/."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(root, "target", "deploy-ramdisk")
    subprocess.run(["bash", os.path.join(root, "deploy", "ramdisk", "build.sh"), out], check=True, timeout=600,
                   capture_output=True)
    return os.path.join(out, "vmlinuz"), os.path.join(out, "initrd.img")


def disk_bytes(disk, count):
    """The first `count` bytes of a domain's qcow2 disk (read while it may run)."""
    with tempfile.NamedTemporaryFile() as raw:
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", disk, raw.name], check=True)
        with open(raw.name, "rb") as f:
            return f.read(count)


@needs_bmc
def test_a_direct_deploy_writes_the_image_and_cleaning_wipes_it(bmcs, deploy_ramdisk):
    """A node on a provisioning network of its own network-boots the deploy ramdisk
    (DHCP and iPXE from the bare-metal service), which writes a qcow2 image from the
    image service onto its disk, checked by sha256; undeploying wipes the disk. The
    deploy is asked for as a user does, with `openstack server create` of a flavor of
    the node's resource class, and the server's delete undeploys."""
    import hashlib

    net = uuid.uuid4().int % 200 + 20
    bridge = "bmp" + uuid.uuid4().hex[:8]
    gateway = f"10.253.{net}.1"
    work = tempfile.mkdtemp(prefix="stratus-bmdeploy-")
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{gateway}/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    name = f"stratus-bmd-{uuid.uuid4().hex[:8]}"
    mac = "52:54:00:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])
    disk = os.path.join(work, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
    xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
<target dev='vda' bus='virtio'/></disk><interface type='bridge'><source bridge='{bridge}'/><mac address='{mac}'/>
<model type='virtio'/></interface><serial type='file'><source path='{work}/console.log' append='on'/></serial></devices></domain>"""
    with open(os.path.join(work, "domain.xml"), "w") as f:
        f.write(xml)
    assert virsh("define", os.path.join(work, "domain.xml")).returncode == 0
    dom_uuid = virsh("domuuid", name).stdout.strip()
    port = free_port()
    kernel, ramdisk = deploy_ramdisk
    c = Cloud("sqlite", work, extra_env={
        # The nodes reach the API on the provisioning network's address.
        "STRATUS_SERVER__BIND_HOST": "0.0.0.0",
        "STRATUS_BAREMETAL__PORT": str(port),
        "STRATUS_BAREMETAL__AGENT_URL": f"http://{gateway}:{port}",
        "STRATUS_BAREMETAL__PROVISIONING_INTERFACE": bridge,
        "STRATUS_BAREMETAL__DHCP_RANGE": f"10.253.{net}.100,10.253.{net}.150",
        "STRATUS_BAREMETAL__DEPLOY_KERNEL": kernel,
        "STRATUS_BAREMETAL__DEPLOY_RAMDISK": ramdisk,
        "STRATUS_BAREMETAL__CALLBACK_TIMEOUT_SECS": "240",
        "STRATUS_COMPUTE_AGENT__REPORT_SECS": "1",
        "STRATUS_LOG__LEVEL": "info",
    })
    try:
        node = unique("direct")
        n = osc(c, "baremetal", "node", "create", "--driver", "redfish", "--name", node,
                "--driver-info", f"redfish_address={bmcs['redfish']}",
                "--driver-info", f"redfish_system_id=/redfish/v1/Systems/{dom_uuid}")
        assert n["deploy_interface"] == "direct" and n["boot_interface"] == "ipxe"
        osc(c, "baremetal", "port", "create", mac, "--node", n["uuid"])
        provision(c, node, "manage", "manageable")
        # Cleaning boots the ramdisk, which wipes the disk.
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 0 1M", disk], check=True, capture_output=True)
        assert disk_bytes(disk, 1 << 20) == b"\xa5" * (1 << 20)
        n = provision_slow(c, node, "provide", "available")
        assert disk_bytes(disk, 1 << 20) == b"\0" * (1 << 20), "cleaning wiped the disk's start"

        # A qcow2 whole-disk image in the image service.
        payload = os.urandom(6 << 20) + b"stratus-direct-deploy"
        with open(os.path.join(work, "image.raw"), "wb") as f:
            f.write(payload)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", f"{work}/image.raw", f"{work}/image.qcow2"],
                       check=True)
        image = osc(c, "image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                    "--file", f"{work}/image.qcow2", unique("wholedisk"))
        # Deploying without an image is refused before anything moves.
        status, why = refused(c, "PUT", f"/v1/nodes/{node}/states/provision", {"target": "active"})
        assert status == 400 and "image_source" in why
        # The node as a compute host: a resource class, its size, a flavor asking for it.
        assert osc_run(c, "baremetal", "node", "set", node, "--resource-class", "metal", "--property", "cpus=1",
                       "--property", "memory_mb=256", "--property", "local_gb=1").returncode == 0
        flavor = unique("metal")
        osc(c, "flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1",
            "--property", "resources:CUSTOM_METAL=1", flavor)
        wait_for("the node as a hypervisor",
                 lambda: any(h["Hypervisor Hostname"] == n["uuid"] for h in osc(c, "hypervisor", "list")))
        server = osc(c, "server", "create", "--flavor", flavor, "--image", image["id"], "--nic", "none",
                     unique("metal"))
        phases = watch_deploy(c, n["uuid"], server["id"])
        print(f"direct deploy through server create, seconds from the request: {phases}")
        shown = osc(c, "server", "show", server["id"])
        assert shown["status"] == "ACTIVE" and shown["OS-EXT-SRV-ATTR:hypervisor_hostname"] == n["uuid"], shown
        n = node_show(c, node)
        assert (n["provision_state"], n["instance_uuid"]) == ("active", server["id"])
        assert n["instance_info"]["image_source"] == image["id"]
        assert n["power_state"] == "power on" and not boots_from_network(name)
        assert hashlib.sha256(disk_bytes(disk, len(payload))).hexdigest() == hashlib.sha256(payload).hexdigest()
        # The ramdisk's token is gone with it: the agent endpoints answer nothing now.
        status, _, _ = c.http("GET", f"/v1/agent/{n['uuid']}/task?token=guess", base=c.baremetal_url)
        assert status == 404
        with open(os.path.join(work, "console.log"), errors="replace") as f:
            assert "the disk holds the image" in f.read()

        # Deleting the server undeploys the node; cleaning boots the ramdisk again, which
        # wipes the disk, and the node is available for the next server.
        assert osc_run(c, "server", "delete", "--wait", server["id"]).returncode == 0
        deadline = time.monotonic() + 300
        while (n := node_show(c, node))["provision_state"] != "available":
            assert n["provision_state"] in ("deleting", "cleaning", "clean wait", "active"), n["last_error"]
            assert time.monotonic() < deadline, "the node never came back"
            time.sleep(1)
        assert n["power_state"] == "power off" and n["instance_info"] == {} and n["instance_uuid"] is None
        assert disk_bytes(disk, 1 << 20) == b"\0" * (1 << 20), "undeploying wiped the disk"
    finally:
        c.stop()
        virsh("destroy", name)
        virsh("undefine", name)
        subprocess.run(["ip", "link", "del", bridge])
        shutil.rmtree(work, ignore_errors=True)


def watch_deploy(cloud, node, server, timeout=300):
    """Waits for `server` to be ACTIVE, noting when its node first showed each
    provisioning state (seconds from now): where a deploy's time goes."""
    start = time.monotonic()
    seen = {}
    while True:
        state = node_show(cloud, node)["provision_state"]
        seen.setdefault(state, round(time.monotonic() - start, 1))
        # Read directly (the client's start-up would take the emulated node's CPU).
        code, _, shown = cloud.http("GET", f"/v2.1/servers/{server}", cloud.bm_token, base=cloud.compute_url)
        status = shown["server"]["status"] if code == 200 else "?"
        assert status != "ERROR", f"the server failed: {seen}"
        if status == "ACTIVE":
            seen["server ACTIVE"] = round(time.monotonic() - start, 1)
            return seen
        assert time.monotonic() - start < timeout, f"the deploy never finished: {seen}"
        time.sleep(0.5)


def provision_slow(cloud, node, verb, state):
    """`provision` for steps that boot the deploy ramdisk under emulation (minutes)."""
    p = osc_run(cloud, "baremetal", "node", verb, node)
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 300
    while True:
        n = node_show(cloud, node)
        if n["target_provision_state"] is None:
            break
        assert time.monotonic() < deadline, f"{verb} never finished: {n['provision_state']}"
        time.sleep(1)
    assert n["provision_state"] == state, f"{verb}: {n['provision_state']}, {n['last_error']}"
    return n
