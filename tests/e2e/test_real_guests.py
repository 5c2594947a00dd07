"""The cloud's "hello world" with real guests: `stratusd all-in-one` with the libvirt
driver (QEMU software emulation where KVM cannot run) and its own network agent. The
test guest (tests/guest/) is uploaded through the image service as a kernel, an
initramfs and a small qcow2 disk that names them; a server made from it gets its
address by DHCP, its host name and key from the config drive, and answers SSH on its
floating IP from an "outside" namespace on the external network. It does so the way
the seeds' workflow does: the host is leased first (a host reservation and a floating IP
reservation, through the openstack client's Blazar plugin), the servers are launched
into the reservation, and the lease's end gives the host and the address back.

Traffic only ever goes to the namespaces and bridges this test (and the agent) made.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import GUEST_TOOLS, ROOT, STRATUSD, Cloud, unique
from test_dataplane import Guest, sh, udhcpc_script, wait_until


STRATUS = os.environ.get("STRATUS_CLI") or os.path.join(ROOT, "target", "debug", "stratus")


def libvirt_up():
    if not shutil.which("virsh"):
        return False
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", "version"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not libvirt_up() or not all(shutil.which(t) for t in GUEST_TOOLS + ["nft", "dnsmasq"]),
    reason="needs root, a running libvirtd, QEMU, nftables and dnsmasq (the README's test command sets them up)",
)


def virsh(*args, check=False):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args], capture_output=True, text=True, check=check)


def ssh(outside, key, address, command):
    return outside.run(
        "ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{address}", command,
        check=False, timeout=30,
    )


def start_cloud(guest_image, extra_env=None, stratusd=None):
    """all-in-one with the libvirt driver and its own network agent, whose external
    physical network `ext` is the interface `cloud.uplink` (made by `make_world`)."""
    data_dir = tempfile.mkdtemp(prefix="stratus-lv-")
    host = unique("lv")
    uplink = "up" + uuid.uuid4().hex[:8]
    env = {
        "STRATUS_COMPUTE_AGENT__DRIVER": "libvirt",
        "STRATUS_COMPUTE_AGENT__HOST": host,
        "STRATUS_COMPUTE_AGENT__REPORT_SECS": "2",
        "STRATUS_COMPUTE_AGENT__SHUTDOWN_TIMEOUT_SECS": "3",
        "STRATUS_COMPUTE_AGENT__VIF_PLUG_TIMEOUT_SECS": "60",
        # Orphan domains go after this long (and a host is down after it).
        "STRATUS_COMPUTE__HOST_DOWN_SECS": "10",
        "STRATUS_NETWORK_AGENT__ENABLED": "true",
        "STRATUS_NETWORK_AGENT__HOST": host,
        "STRATUS_NETWORK_AGENT__INTERFACE_MAPPINGS": f"ext:{uplink}",
        "STRATUS_LOG__LEVEL": "info",
    }
    cloud = Cloud("sqlite", data_dir, extra_env=env | (extra_env or {}))
    cloud.host, cloud.uplink, cloud.guest_image = host, uplink, guest_image
    cloud.script = udhcpc_script(data_dir)
    return cloud


def stop_cloud(cloud):
    """Stops the cloud and removes what it left: domains, the agent's kernel state, files."""
    if cloud.proc.poll() is None:
        cloud.stop()
    for line in virsh("list", "--all", "--name").stdout.split():
        # Domains of servers this cloud made (named by server id), if a step failed.
        instances = os.path.join(cloud.data_dir, "compute-agent", "instances")
        if line.startswith("stratus-") and os.path.isdir(os.path.join(instances, line[len("stratus-"):])):
            virsh("destroy", line)
            virsh("undefine", line)
    subprocess.run([STRATUSD, "network-agent", "--cleanup"], env=cloud.env, capture_output=True)
    if not os.environ.get("STRATUS_E2E_KEEP"):
        shutil.rmtree(cloud.data_dir, ignore_errors=True)


@pytest.fixture
def cloud(guest_image):
    cloud = start_cloud(guest_image)
    yield cloud
    stop_cloud(cloud)


def upload_guest(cloud, work, disk_format="qcow2"):
    """The test guest as an image: a small disk (`disk_format`) naming the kernel and
    initramfs to boot directly (uploaded once per cloud)."""
    if not hasattr(cloud, "boot_images"):
        kernel, initrd = cloud.guest_image
        k = cloud.osc("image", "create", "--disk-format", "aki", "--container-format", "aki", "--file", kernel, unique("kernel"))
        r = cloud.osc("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file", initrd, unique("initrd"))
        cloud.boot_images = (k["id"], r["id"])
    k, r = cloud.boot_images
    disk = os.path.join(work, f"root.{disk_format}")
    subprocess.run(["qemu-img", "create", "-q", "-f", disk_format, disk, "16M"], check=True)
    return cloud.osc(
        "image", "create", "--disk-format", disk_format, "--container-format", "bare", "--file", disk,
        "--property", f"kernel_id={k}", "--property", f"ramdisk_id={r}",
        "--property", "os_command_line=console=ttyS0", unique("guest"),
    )


def make_world(cloud, work, w):
    """What a user sets up before the first server: the guest image, a flavor, an
    external network (with an "outside" namespace behind it), a network with a router
    to it, a security group for SSH and ICMP, and a keypair; into `w` as they are made."""
    w["outside"] = Guest({"id": "outside", "mac_address": "fa:16:3e:ee:00:02"}, cloud.script, device=cloud.uplink)
    w["outside"].run("ip", "addr", "add", "172.24.60.1/24", "dev", "eth0")
    w["image"] = upload_guest(cloud, work)
    w["flavor"] = cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", unique("tiny"))
    w["ext"] = cloud.osc(
        "network", "create", "--external", "--provider-network-type", "flat",
        "--provider-physical-network", "ext", unique("ext"),
    )
    cloud.osc(
        "subnet", "create", "--network", w["ext"]["id"], "--subnet-range", "172.24.60.0/24", "--gateway", "172.24.60.1",
        "--no-dhcp", "--allocation-pool", "start=172.24.60.10,end=172.24.60.100", unique("ext-sub"),
    )
    w["net"] = cloud.osc("network", "create", unique("net"))
    w["sub"] = cloud.osc("subnet", "create", "--network", w["net"]["id"], "--subnet-range", "10.60.0.0/24", unique("sub"))
    w["router"] = cloud.osc("router", "create", unique("router"))
    cloud.osc("router", "set", "--external-gateway", w["ext"]["id"], w["router"]["id"])
    cloud.osc("router", "add", "subnet", w["router"]["id"], w["sub"]["id"])
    w["sg"] = cloud.osc("security", "group", "create", unique("ssh"))
    for rule in (["--protocol", "icmp"], ["--protocol", "tcp", "--dst-port", "22"]):
        cloud.osc("security", "group", "rule", "create", "--ingress", *rule, w["sg"]["id"])
    w["key"] = os.path.join(work, "key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", w["key"]], check=True)
    w["kp"] = unique("key")
    cloud.osc("keypair", "create", "--public-key", w["key"] + ".pub", w["kp"])


def lease_host_and_address(cloud, w):
    """Makes this host reservable and an address of the external network (outside its
    pool) reservable, leases both from now, and waits for the lease to start. Returns
    (lease name, the server hint for the host reservation, the reserved address)."""
    host = cloud.osc("hypervisor", "list")[0]["Hypervisor Hostname"]
    cloud.osc("reservation", "host", "create", "--extra", "node_type=libvirt", host, fmt_json=False)
    reserved_ip = "172.24.60.200"
    cloud.osc("reservation", "floatingip", "create", w["ext"]["id"], reserved_ip, fmt_json=False)
    name = unique("lease")
    end = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 3 * 3600))
    cloud.osc(
        "reservation", "lease", "create", "--start-date", "now", "--end-date", end,
        "--reservation", 'resource_type=physical:host,min=1,max=1,resource_properties=["==","$node_type","libvirt"]',
        "--reservation", f"resource_type=virtual:floatingip,network_id={w['ext']['id']},amount=1", name, fmt_json=False,
    )

    def shown():
        out = cloud.osc("reservation", "lease", "show", name, "-f", "json", fmt_json=False)
        return json.loads(out[out.index("{"):])

    wait_until("the lease ACTIVE", lambda: shown()["status"] == "ACTIVE", timeout=30, interval=0.3)
    reservations = shown()["reservations"]
    if isinstance(reservations, str):
        # blazarclient prints a list of objects as the objects one after the other.
        decoder, text, reservations = json.JSONDecoder(), reservations.strip(), []
        while text:
            item, end = decoder.raw_decode(text)
            reservations.append(item)
            text = text[end:].strip()
    host_res = next(r["id"] for r in reservations if r["resource_type"] == "physical:host")
    return name, ["--hint", f"reservation={host_res}"], reserved_ip


def route_to_external(w):
    """Lets this host reach the external network (floating IPs) through the outside
    namespace: a veth pair between them, forwarding in the namespace, and a route."""
    root, inner = "vr" + uuid.uuid4().hex[:8], "vo" + uuid.uuid4().hex[:8]
    sh("ip", "link", "add", root, "type", "veth", "peer", "name", inner)
    w["route_link"] = root
    sh("ip", "link", "set", inner, "netns", w["outside"].ns)
    sh("ip", "addr", "add", "10.251.60.1/30", "dev", root)
    sh("ip", "link", "set", root, "up")
    w["outside"].run("ip", "addr", "add", "10.251.60.2/30", "dev", inner)
    w["outside"].run("ip", "link", "set", inner, "up")
    w["outside"].run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "route", "add", "172.24.60.0/24", "via", "10.251.60.2")


def remove_world(cloud, w):
    cloud.osc("router", "remove", "subnet", w["router"]["id"], w["sub"]["id"])
    cloud.osc("router", "delete", w["router"]["id"])
    cloud.osc("network", "delete", w["net"]["id"])
    cloud.osc("network", "delete", w["ext"]["id"])


def status_is(cloud, server, want, timeout=120):
    wait_until(f"{server} {want}", lambda: cloud.osc("server", "show", server)["status"] == want, timeout=timeout, interval=0.5)


def test_a_server_answers_ssh_on_its_floating_ip_and_leaves_nothing_behind(cloud):
    work = tempfile.mkdtemp(prefix="stratus-lv-work-")
    w = {}
    orphan = f"stratus-{uuid.uuid4()}"
    try:
        make_world(cloud, work, w)
        outside, key, image, flavor, net = w["outside"], w["key"], w["image"], w["flavor"], w["net"]
        lease, hint, reserved_ip = lease_host_and_address(cloud, w)
        t0 = time.monotonic()
        name = unique("vm")
        server = cloud.osc(
            "server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", net["id"],
            "--key-name", w["kp"], "--security-group", w["sg"]["id"], *hint, "--wait", name,
        )
        active = time.monotonic() - t0
        assert server["status"] == "ACTIVE", server
        domain = f"stratus-{server['id']}"
        assert virsh("domstate", domain).stdout.strip() == "running"
        assert cloud.osc("server", "show", server["id"])["config_drive"] == "True"
        port = cloud.osc("port", "list", "--server", server["id"])[0]
        # The agent answered the spawn once the network agent had plugged the tap; the
        # port's status report follows that pass at once.
        wait_until("the port ACTIVE", lambda: cloud.osc("port", "show", port["ID"])["status"] == "ACTIVE", timeout=10)

        # The lease's floating IP, made for the project at the lease's start.
        fip = next(f for f in cloud.osc("floating", "ip", "list", "--long") if f["Floating IP Address"] == reserved_ip)
        address = reserved_ip
        cloud.osc("server", "add", "floating", "ip", server["id"], address)
        wait_until("the floating IP answering ping", lambda: outside.ping(address), timeout=90, interval=0.5)
        wait_until("SSH", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
        first_ssh = time.monotonic() - t0
        out = ssh(outside, key, address, "hostname; ip -4 -o addr show dev eth0")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == name, "the guest took its host name from the config drive"
        assert port["Fixed IP Addresses"][0]["ip_address"] + "/24" in out.stdout, "the guest got its port's address by DHCP"
        print(f"POST→ACTIVE {active:.1f} s, →first SSH through the floating IP {first_ssh:.1f} s")

        console = cloud.osc("console", "log", "show", server["id"], fmt_json=False)
        assert "stratus-guest: ready" in console and "config drive on" in console, console[-2000:]
        # What libvirt measures of the running guest (an admin's view).
        diag = cloud.osc("server", "show", "--diagnostics", server["id"])
        as_obj = lambda v: json.loads(v) if isinstance(v, str) else v  # noqa: E731
        disks, nics = as_obj(diag["disk_details"]), as_obj(diag["nic_details"])
        assert (diag["driver"], diag["state"]) == ("libvirt", "running"), diag
        assert disks and disks[0]["read_bytes"] > 0 and nics and nics[0]["rx_octets"] > 0, diag

        cloud.osc("server", "stop", server["id"])
        status_is(cloud, server["id"], "SHUTOFF")
        assert virsh("domstate", domain).stdout.strip() == "shut off"
        cloud.osc("server", "start", server["id"])
        status_is(cloud, server["id"], "ACTIVE")
        wait_until("SSH after start", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
        cloud.osc("server", "reboot", "--wait", server["id"])
        wait_until("SSH after reboot", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)

        # Paused: frozen in memory, answering nothing; unpaused: answering again.
        cloud.osc("server", "pause", server["id"])
        status_is(cloud, server["id"], "PAUSED")
        assert virsh("domstate", domain).stdout.strip() == "paused"
        assert not outside.ping(address), "a paused guest answered"
        cloud.osc("server", "unpause", server["id"])
        status_is(cloud, server["id"], "ACTIVE")
        wait_until("ping after unpause", lambda: outside.ping(address), timeout=30, interval=0.5)

        # Powered off from inside: the agent's report shows it, the server goes SHUTOFF.
        # (Detached, so the SSH session ends before the guest does.)
        ssh(outside, key, address, "setsid sh -c 'sleep 1; poweroff -f' </dev/null >/dev/null 2>&1 &")
        status_is(cloud, server["id"], "SHUTOFF", timeout=60)
        cloud.osc("server", "start", server["id"])
        status_is(cloud, server["id"], "ACTIVE")
        wait_until("SSH after the guest's own power-off", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
        uptime = ssh(outside, key, address, "cat /proc/uptime").stdout.split()[0]

        # A crash of the whole process (agents included) leaves the guest running and
        # answering; after the restart the agent finds it and nothing changes.
        qemu_id = virsh("domid", domain).stdout.strip()
        cloud.kill9()
        assert ssh(outside, key, address, "true").returncode == 0, "the guest stopped answering when stratusd died"
        cloud.start()
        time.sleep(3)
        assert cloud.osc("server", "show", server["id"])["status"] == "ACTIVE"
        assert virsh("domid", domain).stdout.strip() == qemu_id, "the guest was restarted"
        later = ssh(outside, key, address, "cat /proc/uptime").stdout.split()[0]
        assert float(later) > float(uptime), "the guest rebooted across the agent's restart"

        # Rebuild: a fresh disk from the image, the same server; resize: the domain gets
        # the new flavor's RAM and a bigger disk.
        cloud.osc("server", "rebuild", "--image", image["id"], "--wait", server["id"])
        wait_until("SSH after rebuild", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
        big = cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "192", "--disk", "2", unique("big"))
        cloud.osc("server", "resize", "--flavor", big["id"], server["id"])
        status_is(cloud, server["id"], "VERIFY_RESIZE")
        cloud.osc("server", "resize", "confirm", server["id"])
        status_is(cloud, server["id"], "ACTIVE")
        assert "<memory unit='KiB'>196608</memory>" in virsh("dumpxml", domain).stdout
        disk = os.path.join(cloud.data_dir, "compute-agent", "instances", server["id"], "disk")
        info = subprocess.run(["qemu-img", "info", "-U", disk], capture_output=True, text=True).stdout
        assert "virtual size: 2 GiB" in info, info
        wait_until("SSH after resize", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)

        # A snapshot: what the guest wrote on its root disk is in the image (the guest
        # paused for the copy, running and answering after), which keeps the kernel and
        # initramfs to boot with: a server boots from it.
        wrote = ssh(outside, key, address, "printf stratus-snapshot-ok > /dev/vda && sync")
        assert wrote.returncode == 0, wrote.stderr
        snap = cloud.osc("server", "image", "create", "--name", unique("snap"), "--wait", server["id"])
        assert cloud.osc("server", "show", server["id"])["status"] == "ACTIVE"
        assert ssh(outside, key, address, "true").returncode == 0, "the guest runs on after its snapshot"
        shown = cloud.osc("image", "show", snap["id"])
        assert shown["disk_format"] == "qcow2" and shown["properties"]["kernel_id"] == cloud.boot_images[0], shown
        saved, snap_head = os.path.join(work, "snap.qcow2"), os.path.join(work, "snap-head.raw")
        cloud.osc("image", "save", "--file", saved, snap["id"], fmt_json=False)
        sh("qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", f"if={saved}", f"of={snap_head}")
        assert open(snap_head, "rb").read().startswith(b"stratus-snapshot-ok")
        from_snap = cloud.osc("server", "create", "--flavor", big["id"], "--image", snap["id"], "--network", net["id"],
                              *hint, "--wait", unique("from-snap"))
        assert from_snap["status"] == "ACTIVE", from_snap
        wait_until("the guest from the snapshot up", lambda: "stratus-guest: ready" in cloud.osc(
            "console", "log", "show", from_snap["id"], fmt_json=False), timeout=90, interval=1)
        cloud.osc("server", "delete", "--wait", from_snap["id"])
        cloud.osc("image", "delete", snap["id"])

        # A volume hot-plugged into the running guest: a new virtio disk whose serial is
        # the volume's id, written from inside; unplugged, it leaves the guest, and its
        # file keeps what the guest wrote.
        vol = cloud.osc("volume", "create", "--size", "1", unique("vol"))
        wait_until("the volume available", lambda: cloud.osc("volume", "show", vol["id"])["status"] == "available",
                   timeout=60, interval=0.5)
        cloud.osc("server", "add", "volume", server["id"], vol["id"], fmt_json=False)
        wait_until("the volume in use", lambda: cloud.osc("volume", "show", vol["id"])["status"] == "in-use",
                   timeout=60, interval=0.5)
        vol_file = os.path.join(cloud.data_dir, "volumes", "volumes", f"{vol['id']}.qcow2")
        assert vol_file in virsh("domblklist", domain).stdout
        serial = vol["id"][:20]
        find = f"for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = {serial} ] && echo ${{d##*/}}; done"
        wait_until("the disk in the guest", lambda: ssh(outside, key, address, find).stdout.strip() != "",
                   timeout=60, interval=1)
        dev = ssh(outside, key, address, find).stdout.strip()
        assert dev == "vdb", f"the first volume is the guest's second disk, not {dev}"
        wrote = ssh(outside, key, address, f"printf stratus-volume-ok > /dev/{dev} && sync")
        assert wrote.returncode == 0, wrote.stderr
        # Extended while attached (3.42): the guest sees the larger disk at once.
        cloud.osc("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", vol["id"], fmt_json=False)
        wait_until("the volume grown", lambda: (lambda v: (v["status"], v["size"]))(
            cloud.osc("volume", "show", vol["id"])) == ("in-use", 2), timeout=60, interval=0.5)
        sectors = lambda: ssh(outside, key, address, f"cat /sys/block/{dev}/size").stdout.strip()  # noqa: E731
        wait_until("the guest sees 2 GiB", lambda: sectors() == str(2 << 21), timeout=30, interval=1)
        cloud.osc("server", "remove", "volume", server["id"], vol["id"], fmt_json=False)
        wait_until("the volume available again",
                   lambda: cloud.osc("volume", "show", vol["id"])["status"] == "available", timeout=90, interval=0.5)
        assert vol_file not in virsh("domblklist", domain).stdout
        assert ssh(outside, key, address, find).stdout.strip() == "", "the disk left the guest"
        head = os.path.join(work, "head.raw")
        sh("qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", f"if={vol_file}", f"of={head}")
        assert open(head, "rb").read().startswith(b"stratus-volume-ok")
        cloud.osc("volume", "delete", vol["id"])

        # A domain of ours whose server does not exist is destroyed after the grace time.
        xml = os.path.join(work, "orphan.xml")
        with open(xml, "w") as f:
            f.write(f"<domain type='qemu'><name>{orphan}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                    f"<metadata><s:instance xmlns:s='urn:stratus:instance:1' host='{cloud.host}'/></metadata>"
                    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>")
        virsh("define", xml, check=True)
        wait_until("the orphan domain destroyed", lambda: virsh("domstate", orphan).returncode != 0, timeout=60, interval=1)

        # A second server, launched in one step by the `stratus` CLI from a raw disk image
        # booting the same kernel (only the new disk image is downloaded, the kernel and
        # initramfs come from the cache): into the lease, with a floating IP and a
        # generated key, waiting until SSH answers from this host (routed to the external
        # network through the outside namespace); `stratus ssh` runs a command in it and
        # `stratus down` removes exactly what launch made.
        def downloads():
            return len(re.findall("image downloaded into the cache", open(cloud.log.name).read()))

        before = downloads()
        raw = upload_guest(cloud, work, "raw")
        route_to_external(w)
        cli_env = cloud.admin_env() | {"HOME": os.path.join(work, "cli-home")}
        os.makedirs(cli_env["HOME"])

        def stratus(*args, timeout=120):
            return subprocess.run([STRATUS, *args], env=cli_env, capture_output=True, text=True, timeout=timeout)

        name2 = unique("vm2")
        p = stratus("launch", name2, "--image", raw["id"], "--flavor", flavor["id"], "--network", net["id"],
                    "--external-network", w["ext"]["id"], "--lease", lease, "--floating-ip", "--generate-key",
                    "--wait-ssh", "--timeout", "300", timeout=330)
        assert p.returncode == 0, p.stderr
        m = re.fullmatch(r"ssh -i (\S+) root@(172\.24\.60\.\d+)\n", p.stdout)
        assert m and os.path.exists(m.group(1)), p.stdout
        assert downloads() == before + 1, cloud.read_log()
        p = stratus("ssh", name2, "--", "hostname")
        assert p.returncode == 0 and p.stdout.strip() == name2, (p.stdout, p.stderr)
        second = cloud.osc("server", "show", name2)

        # A multiattach volume in both guests at once (compute 2.60): written in the
        # first, read in the second, which is given it while the first still has it.
        mtype = cloud.osc("volume", "type", "create", "--property", "multiattach=<is> True", unique("multi"))
        shared = cloud.osc("volume", "create", "--size", "1", "--type", mtype["name"], unique("shared"))
        wait_until("the shared volume available",
                   lambda: cloud.osc("volume", "show", shared["id"])["status"] == "available", timeout=60, interval=0.5)
        assert cloud.osc("volume", "show", shared["id"])["multiattach"] in (True, "True")
        attach = ["--os-compute-api-version", "2.60", "server", "add", "volume"]
        cloud.osc(*attach, server["id"], shared["id"], fmt_json=False)
        serial = shared["id"][:20]
        find = f"for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = {serial} ] && echo ${{d##*/}}; done"
        wait_until("the shared disk in the first guest", lambda: ssh(outside, key, address, find).stdout.strip() != "",
                   timeout=60, interval=1)
        dev = ssh(outside, key, address, find).stdout.strip()
        wrote = ssh(outside, key, address, f"printf stratus-shared-ok > /dev/{dev} && sync")
        assert wrote.returncode == 0, wrote.stderr
        cloud.osc(*attach, second["id"], shared["id"], fmt_json=False)
        wait_until("the shared volume in both", lambda: len(cloud.osc("volume", "show", shared["id"])["attachments"]) == 2,
                   timeout=60, interval=0.5)
        wait_until("the shared disk in the second guest",
                   lambda: stratus("ssh", name2, "--", find).stdout.strip() != "", timeout=60, interval=1)
        dev2 = stratus("ssh", name2, "--", find).stdout.strip()
        p = stratus("ssh", name2, "--", f"head -c 17 /dev/{dev2}")
        assert p.returncode == 0 and p.stdout == "stratus-shared-ok", (p.stdout, p.stderr)
        detach = ["--os-compute-api-version", "2.60", "server", "remove", "volume"]
        for holder in (server["id"], second["id"]):
            cloud.osc(*detach, holder, shared["id"], fmt_json=False)
        wait_until("the shared volume let go",
                   lambda: cloud.osc("volume", "show", shared["id"])["status"] == "available", timeout=90, interval=0.5)
        cloud.osc("volume", "delete", shared["id"])
        wait_until("the shared volume gone", lambda: shared["id"] not in [
            v["ID"] for v in cloud.osc("volume", "list")], timeout=60, interval=0.5)
        cloud.osc("volume", "type", "delete", mtype["id"], fmt_json=False)

        p = stratus("down", name2, timeout=300)
        assert p.returncode == 0, p.stderr
        assert m.group(2) not in [f["Floating IP Address"] for f in cloud.osc("floating", "ip", "list")]
        assert not os.path.exists(m.group(1)), "the generated private key went with the server"
        assert virsh("domstate", f"stratus-{second['id']}").returncode != 0, "the domain is gone"

        # A third boots from a volume made from the guest image: its root disk is the
        # volume's file, and the kernel and initramfs come from what the volume keeps of
        # its image.
        rootvol = cloud.osc("volume", "create", "--image", image["id"], "--size", "1", unique("root"))
        wait_until("the root volume available",
                   lambda: cloud.osc("volume", "show", rootvol["id"])["status"] == "available", timeout=90, interval=0.5)
        third = cloud.osc("server", "create", "--flavor", flavor["id"], "--volume", rootvol["id"], "--network",
                          net["id"], *hint, "--wait", unique("vm3"))
        assert third["status"] == "ACTIVE", third
        root_file = os.path.join(cloud.data_dir, "volumes", "volumes", f"{rootvol['id']}.qcow2")
        assert root_file in virsh("domblklist", f"stratus-{third['id']}").stdout
        wait_until("the volume-backed guest up", lambda: "stratus-guest: ready" in cloud.osc(
            "console", "log", "show", third["id"], fmt_json=False), timeout=90, interval=1)
        cloud.osc("server", "delete", "--wait", third["id"])
        wait_until("the root volume let go",
                   lambda: cloud.osc("volume", "show", rootvol["id"])["status"] == "available", timeout=60, interval=0.5)
        cloud.osc("volume", "delete", rootvol["id"])

        tap = "tap" + port["ID"][:11]
        cloud.osc("server", "delete", "--wait", server["id"])
        assert virsh("domstate", domain).returncode != 0, "the domain is gone"
        instances = os.path.join(cloud.data_dir, "compute-agent", "instances")
        assert os.listdir(instances) == [], "disks, config drive and console log are gone"
        wait_until("the tap gone", lambda: sh("ip", "link", "show", tap, check=False).returncode != 0, timeout=30)
        wait_until("no nftables rule for the tap", lambda: tap not in sh("nft", "list", "ruleset").stdout, timeout=30)
        # The lease's end takes the address back and frees the host for everyone.
        cloud.osc("reservation", "lease", "delete", lease, fmt_json=False)
        assert fip["ID"] not in [f["ID"] for f in cloud.osc("floating", "ip", "list")]
        remove_world(cloud, w)
    finally:
        virsh("undefine", orphan)
        if "route_link" in w:
            sh("ip", "link", "del", w["route_link"], check=False)
        if "outside" in w:
            w["outside"].destroy()
        shutil.rmtree(work, ignore_errors=True)


def nbd_table(exports):
    """The nftables table limiting the NBD exports kept in `exports` (FNV-1a of the path)."""
    h = 0x811C9DC5
    for b in exports.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"stratus_nbd_{h:08x}"


def guest_and_probe(cloud, work, text):
    """The test guest's image, a small flavor, and a probe image: 2 MiB starting with
    `text` (the guest writes at 1 MiB of a disk whose first bytes say stratus-probe)."""
    image = upload_guest(cloud, work)
    flavor = cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", unique("tiny"))
    probe_file = os.path.join(work, "probe.raw")
    with open(probe_file, "wb") as f:
        f.write(text.ljust(2 << 20, b"\0"))
    probe = cloud.osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", probe_file,
                      unique("probe"))
    return image, flavor, probe


def test_volumes_reach_a_guest_on_another_host_over_nbd(guest_image):
    """The storage host (`[volume] host`) is not the compute host: the guest's root
    volume and a volume plugged in later reach it over NBD, served by the storage host
    to the compute host's address alone. The compute host's address is on a veth made
    here; a namespace behind the veth's other end stands for any other machine."""
    tag = uuid.uuid4().hex[:6]
    ns, veth = f"snbd{tag}", f"vnbd{tag}"
    octet = 100 + int(tag[:2], 16) % 100
    mine, other = f"10.251.{octet}.1", f"10.251.{octet}.2"
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "addr", "add", f"{mine}/24", "dev", veth)
    sh("ip", "link", "set", veth, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{other}/24", "dev", "eth0")
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
    first_port = 30000 + int(tag, 16) % 20000
    cloud = start_cloud(guest_image, extra_env={
        "STRATUS_NETWORK_AGENT__ENABLED": "false",
        "STRATUS_VOLUME__HOST": f"storage-{tag}",
        "STRATUS_VOLUME__NBD_ADDRESS": mine,
        "STRATUS_VOLUME__NBD_FIRST_PORT": str(first_port),
        "STRATUS_COMPUTE_AGENT__MY_IP": mine,
    })
    work = tempfile.mkdtemp(prefix="stratus-nbd-work-")
    exports = os.path.join(cloud.data_dir, "volumes", "exports")
    table = nbd_table(exports)

    def export_of(volume):
        path = os.path.join(exports, f"{volume}.json")
        return json.load(open(path)) if os.path.exists(path) else None

    def console(server):
        return cloud.osc("console", "log", "show", server, fmt_json=False)

    def available(volume):
        wait_until(f"volume {volume} available",
                   lambda: cloud.osc("volume", "show", volume)["status"] == "available", timeout=90, interval=0.5)

    try:
        shown = cloud.osc("hypervisor", "show", cloud.host)
        assert shown["host_ip"] == mine, "the agent reports its address"
        # And the machine's uptime, which the client takes apart into its fields.
        assert shown.get("load_average") and shown.get("host_time") and "users" in shown, shown
        image, flavor, probe_image = guest_and_probe(cloud, work, b"stratus-probe over nbd")
        root = cloud.osc("volume", "create", "--image", image["id"], "--size", "1", unique("root"))
        probe = cloud.osc("volume", "create", "--image", probe_image["id"], "--size", "1", unique("probe"))
        available(root["id"])
        available(probe["id"])

        # Booted from a volume of the storage host: the root disk is an NBD export.
        server = cloud.osc("server", "create", "--flavor", flavor["id"], "--volume", root["id"], "--nic", "none",
                           "--wait", unique("nbd"))
        assert server["status"] == "ACTIVE", server
        domain = f"stratus-{server['id']}"
        xml = virsh("dumpxml", domain).stdout
        exp = export_of(root["id"])
        assert exp and exp["hosts"] == {cloud.host: mine}, exp
        assert f"<source protocol='nbd' name='{exp['name']}'" in xml and f"port='{exp['port']}'" in xml, xml
        wait_until("the volume-backed guest up", lambda: "stratus-guest: ready" in console(server["id"]),
                   timeout=120, interval=1)

        # Only the compute host's address reaches the export: from the namespace the
        # port is dropped; from the host's own address it answers.
        url = f"nbd://{mine}:{exp['port']}/{exp['name']}"
        rules = sh("nft", "list", "table", "inet", table).stdout
        assert f"tcp dport {exp['port']} ip saddr {mine} accept" in rules and f"tcp dport {exp['port']} drop" in rules
        outside = subprocess.run(["ip", "netns", "exec", ns, "timeout", "5", "qemu-img", "info", url],
                                 capture_output=True, text=True)
        assert outside.returncode != 0, "another machine read the export"
        inside = subprocess.run(["qemu-img", "info", "-U", url], capture_output=True, text=True, timeout=20)
        assert inside.returncode == 0 and "virtual size: 1 GiB" in inside.stdout, inside.stderr

        # Plugged into the running guest over NBD: the guest reads the image's bytes
        # through the storage host's copy-on-write chain, and writes back.
        cloud.osc("server", "add", "volume", server["id"], probe["id"], fmt_json=False)
        wait_until("the probe volume in use", lambda: cloud.osc("volume", "show", probe["id"])["status"] == "in-use",
                   timeout=60, interval=0.5)
        serial = probe["id"][:20]
        wait_until("the guest writing to the probe volume",
                   lambda: f"serial {serial} starts with [stratus-probe over nbd]" in console(server["id"])
                   and "disk vdb written" in console(server["id"]), timeout=60, interval=1)
        probe_port = export_of(probe["id"])["port"]

        # A crash of stratusd leaves the exports serving the guest; after the restart
        # the reconciler keeps them, and a detach ends the probe's.
        cloud.kill9()
        cloud.start()
        assert virsh("domstate", domain).stdout.strip() == "running"
        cloud.osc("server", "remove", "volume", server["id"], probe["id"], fmt_json=False)
        available(probe["id"])
        wait_until("the disk gone from the guest", lambda: "disk vdb gone" in console(server["id"]),
                   timeout=30, interval=1)
        assert export_of(probe["id"]) is None, "the detached volume is still exported"
        assert f"tcp dport {probe_port} " not in sh("nft", "list", "table", "inet", table).stdout
        probe_file = os.path.join(cloud.data_dir, "volumes", "volumes", f"{probe['id']}.qcow2")
        flat = os.path.join(work, "probe.flat")
        sh("qemu-img", "convert", "-f", "qcow2", "-O", "raw", probe_file, flat)
        with open(flat, "rb") as f:
            start = f.read(64)
            f.seek(1 << 20)
            at_1m = f.read(64)
        name = cloud.osc("server", "show", server["id"])["name"]
        assert start.startswith(b"stratus-probe over nbd"), start
        assert at_1m.startswith(f"stratus-guest {name} wrote this".encode()), f"the write was lost: {at_1m}"

        # The server's end releases its root volume and the last export.
        cloud.osc("server", "delete", "--wait", server["id"])
        available(root["id"])
        assert export_of(root["id"]) is None
        assert sh("nft", "list", "table", "inet", table, check=False).returncode != 0, "an empty table stayed"
        assert "qemu-storage-daemon" not in sh("ps", "-eo", "comm").stdout or not [
            p for p in sh("ps", "-eo", "args").stdout.splitlines() if exports in p], "an export daemon stayed"
        for v in (root, probe):
            cloud.osc("volume", "delete", v["id"])
    finally:
        stop_cloud(cloud)
        for p in sh("ps", "-eo", "pid,args").stdout.splitlines():
            if "qemu-storage-daemon" in p and exports in p:
                sh("kill", p.split()[0], check=False)
        sh("nft", "delete", "table", "inet", table, check=False)
        sh("ip", "link", "del", veth, check=False)
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_volumes_live_in_ceph_and_reach_a_guest_over_rbd(guest_image):
    """Volumes of a type on the `rbd` backend, in a single-node Ceph cluster made here
    (scripts/ceph-dev.sh): a guest boots from a copy-on-write clone of the guest image
    in the pool, through QEMU's RBD driver with the cephx key in a libvirt secret; a
    volume made from an image is plugged in and written from inside, grown while
    attached, snapshotted, copied from the snapshot and uploaded to an image with the
    guest's write in it; deleted, nothing is left in the pool."""
    tag = uuid.uuid4().hex[:6]
    ceph_dir = tempfile.mkdtemp(prefix="stratus-ceph-")
    port = 17000 + int(tag, 16) % 2000
    sh(os.path.join(ROOT, "scripts", "ceph-dev.sh"), "start", ceph_dir, str(port), timeout=120)
    conf = os.path.join(ceph_dir, "ceph.conf")
    secret = str(uuid.uuid4())
    work = tempfile.mkdtemp(prefix="stratus-rbd-work-")
    secret_xml = os.path.join(work, "secret.xml")
    with open(secret_xml, "w") as f:
        f.write(f"<secret ephemeral='no' private='yes'><uuid>{secret}</uuid>"
                f"<usage type='ceph'><name>client.cinder stratus-{tag}</name></usage></secret>")
    cloud = None

    def rbd(*args):
        return sh("rbd", "--conf", conf, "--id", "cinder", *args)

    def pool():
        return sorted(rbd("ls", "volumes").stdout.split())

    def console(server):
        return cloud.osc("console", "log", "show", server, fmt_json=False)

    def status(kind, id, want):
        wait_until(f"{kind} {id} {want}", lambda: cloud.osc(*kind.split(), "show", id)["status"] == want,
                   timeout=90, interval=0.5)

    try:
        sh("virsh", "secret-define", secret_xml)
        sh("virsh", "secret-set-value", "--secret", secret, "--file", os.path.join(ceph_dir, "cinder.key"))
        cloud = start_cloud(guest_image, extra_env={
            "STRATUS_NETWORK_AGENT__ENABLED": "false",
            "STRATUS_VOLUME__RBD_POOL": "volumes",
            "STRATUS_VOLUME__RBD_CONF": conf,
            "STRATUS_VOLUME__RBD_USER": "cinder",
            "STRATUS_VOLUME__RBD_SECRET_UUID": secret,
        })
        services = cloud.osc("volume", "service", "list")
        assert any(s["Host"].endswith("@rbd") and s["State"] == "up" for s in services), services
        ceph = cloud.osc("volume", "type", "create", "--property", "volume_backend_name=rbd", unique("ceph"))
        image, flavor, probe_image = guest_and_probe(cloud, work, b"stratus-probe over rbd")
        root = cloud.osc("volume", "create", "--image", image["id"], "--type", ceph["name"], "--size", "1",
                         unique("root"))
        probe = cloud.osc("volume", "create", "--image", probe_image["id"], "--type", ceph["name"], "--size", "1",
                          unique("probe"))
        status("volume", root["id"], "available")
        status("volume", probe["id"], "available")
        assert cloud.osc("volume", "show", root["id"])["os-vol-host-attr:host"].split("#")[0].endswith("@rbd")
        # Made from the image as clones of its base, kept once in the pool.
        info = json.loads(rbd("info", "--format", "json", f"volumes/volume-{root['id']}").stdout)
        assert info["parent"]["image"] == f"image-{image['id']}" and info["parent"]["snapshot"] == "base", info

        # Booted from the RBD volume: the root disk is a network disk QEMU reaches
        # through Ceph, as the user whose key the secret holds.
        server = cloud.osc("server", "create", "--flavor", flavor["id"], "--volume", root["id"], "--nic", "none",
                           "--wait", unique("rbd"))
        assert server["status"] == "ACTIVE", server
        domain = f"stratus-{server['id']}"
        xml = virsh("dumpxml", domain).stdout
        assert f"<source protocol='rbd' name='volumes/volume-{root['id']}'" in xml, xml
        assert f"port='{port}'" in xml and "<auth username='cinder'>" in xml and secret in xml, xml
        wait_until("the guest up from its RBD root", lambda: "stratus-guest: ready" in console(server["id"]),
                   timeout=120, interval=1)

        # Plugged in while it runs: the guest reads the image's bytes through the clone
        # and writes at 1 MiB; grown while attached, QEMU sees the new size.
        cloud.osc("server", "add", "volume", server["id"], probe["id"], fmt_json=False)
        status("volume", probe["id"], "in-use")
        serial = probe["id"][:20]
        wait_until("the guest writing to the probe volume",
                   lambda: f"serial {serial} starts with [stratus-probe over rbd]" in console(server["id"])
                   and "disk vdb written" in console(server["id"]), timeout=60, interval=1)
        cloud.osc("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", probe["id"], fmt_json=False)
        wait_until("the volume grown", lambda: (lambda v: (v["status"], v["size"]))(
            cloud.osc("volume", "show", probe["id"])) == ("in-use", 2), timeout=60, interval=0.5)
        assert "Capacity:       2147483648" in virsh("domblkinfo", domain, "vdb").stdout
        assert json.loads(rbd("info", "--format", "json", f"volumes/volume-{probe['id']}").stdout)["size"] == 2 << 30
        cloud.osc("server", "remove", "volume", server["id"], probe["id"], fmt_json=False)
        status("volume", probe["id"], "available")
        wait_until("the disk gone from the guest", lambda: "disk vdb gone" in console(server["id"]),
                   timeout=30, interval=1)

        # A snapshot (an RBD snapshot), a volume from it (a copy), an image of that.
        name = cloud.osc("server", "show", server["id"])["name"]
        written = f"stratus-guest {name} wrote this".encode()
        snap = cloud.osc("volume", "snapshot", "create", "--volume", probe["id"], unique("snap"))
        status("volume snapshot", snap["id"], "available")
        assert f"volume-{probe['id']}@snapshot-{snap['id']}" in rbd("ls", "--long", "volumes").stdout
        copy = cloud.osc("volume", "create", "--snapshot", snap["id"], "--size", "2", unique("copy"))
        status("volume", copy["id"], "available")
        assert cloud.osc("volume", "show", copy["id"])["os-vol-host-attr:host"].split("#")[0].endswith("@rbd")
        uploaded = unique("up")
        cloud.osc("image", "create", "--volume", copy["id"], "--disk-format", "raw", "--container-format", "bare",
                  uploaded)
        wait_until("the upload active", lambda: cloud.osc("image", "show", uploaded)["status"] == "active",
                   timeout=120, interval=1)
        status("volume", copy["id"], "available")
        saved = os.path.join(work, "saved.raw")
        cloud.osc("image", "save", "--file", saved, uploaded, fmt_json=False)
        with open(saved, "rb") as f:
            start = f.read(64)
            f.seek(1 << 20)
            at_1m = f.read(64)
        assert start.startswith(b"stratus-probe over rbd"), start
        assert at_1m.startswith(written), f"the guest's write did not reach the copy: {at_1m}"
        assert os.path.getsize(saved) == 2 << 30

        # Everything goes, from the pool too (the image's base once no clone is left).
        cloud.osc("server", "delete", "--wait", server["id"])
        status("volume", root["id"], "available")
        cloud.osc("image", "delete", uploaded)
        cloud.osc("volume", "snapshot", "delete", snap["id"])
        wait_until("the snapshot gone", lambda: snap["id"] not in [
            s["ID"] for s in cloud.osc("volume", "snapshot", "list")], timeout=60, interval=0.5)
        for v in (root, probe, copy):
            cloud.osc("volume", "delete", v["id"])
        wait_until("the pool empty", lambda: pool() == [], timeout=120, interval=1)
    finally:
        if cloud is not None:
            stop_cloud(cloud)
        sh(os.path.join(ROOT, "scripts", "ceph-dev.sh"), "stop", ceph_dir, check=False)
        virsh("secret-undefine", secret)
        shutil.rmtree(work, ignore_errors=True)
