"""The cloud's "hello world" with real guests: `stratusd all-in-one` with the libvirt
driver (QEMU software emulation where KVM cannot run) and its own network agent. The
test guest (tests/guest/) is uploaded through the image service as a kernel, an
initramfs and a small qcow2 disk that names them; a server made from it gets its
address by DHCP, its host name and key from the config drive, and answers SSH on its
floating IP from an "outside" namespace on the external network.

Traffic only ever goes to the namespaces and bridges this test (and the agent) made.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import GUEST_TOOLS, STRATUSD, Cloud, unique
from test_dataplane import Guest, sh, udhcpc_script, wait_until


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


@pytest.fixture
def cloud(guest_image):
    data_dir = tempfile.mkdtemp(prefix="stratus-lv-")
    host = unique("lv")
    uplink = "up" + uuid.uuid4().hex[:8]
    cloud = Cloud(
        "sqlite",
        data_dir,
        extra_env={
            "STRATUS_COMPUTE_AGENT__DRIVER": "libvirt",
            "STRATUS_COMPUTE_AGENT__HOST": host,
            "STRATUS_COMPUTE_AGENT__REPORT_SECS": "2",
            "STRATUS_COMPUTE_AGENT__SHUTDOWN_TIMEOUT_SECS": "3",
            "STRATUS_COMPUTE_AGENT__VIF_PLUG_TIMEOUT_SECS": "60",
            "STRATUS_NETWORK_AGENT__ENABLED": "true",
            "STRATUS_NETWORK_AGENT__HOST": host,
            "STRATUS_NETWORK_AGENT__INTERFACE_MAPPINGS": f"ext:{uplink}",
            "STRATUS_LOG__LEVEL": "info",
        },
    )
    cloud.host, cloud.uplink, cloud.guest_image = host, uplink, guest_image
    cloud.script = udhcpc_script(data_dir)
    yield cloud
    if cloud.proc.poll() is None:
        cloud.stop()
    for line in virsh("list", "--all", "--name").stdout.split():
        # Domains of servers this cloud made (named by server id), if a step failed.
        if line.startswith("stratus-") and os.path.isdir(os.path.join(data_dir, "compute-agent", "instances", line[8:])):
            virsh("destroy", line)
            virsh("undefine", line)
    env = dict(cloud.env)
    subprocess.run([STRATUSD, "network-agent", "--cleanup"], env=env, capture_output=True)
    if not os.environ.get("STRATUS_E2E_KEEP"):
        shutil.rmtree(data_dir, ignore_errors=True)


def upload_guest(cloud, work):
    kernel, initrd = cloud.guest_image
    k = cloud.osc("image", "create", "--disk-format", "aki", "--container-format", "aki", "--file", kernel, unique("kernel"))
    r = cloud.osc("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file", initrd, unique("initrd"))
    disk = os.path.join(work, "root.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
    return cloud.osc(
        "image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disk,
        "--property", f"kernel_id={k['id']}", "--property", f"ramdisk_id={r['id']}",
        "--property", "os_command_line=console=ttyS0", unique("guest"),
    )


def status_is(cloud, server, want, timeout=120):
    wait_until(f"{server} {want}", lambda: cloud.osc("server", "show", server)["status"] == want, timeout=timeout, interval=0.5)


def test_a_server_answers_ssh_on_its_floating_ip_and_leaves_nothing_behind(cloud):
    work = tempfile.mkdtemp(prefix="stratus-lv-work-")
    outside = None
    try:
        # "Outside": a namespace behind the interface the external network is mapped to.
        outside = Guest({"id": "outside", "mac_address": "fa:16:3e:ee:00:02"}, cloud.script, device=cloud.uplink)
        outside.run("ip", "addr", "add", "172.24.60.1/24", "dev", "eth0")
        image = upload_guest(cloud, work)
        flavor = cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", unique("tiny"))

        ext = cloud.osc(
            "network", "create", "--external", "--provider-network-type", "flat",
            "--provider-physical-network", "ext", unique("ext"),
        )
        cloud.osc(
            "subnet", "create", "--network", ext["id"], "--subnet-range", "172.24.60.0/24", "--gateway", "172.24.60.1",
            "--no-dhcp", "--allocation-pool", "start=172.24.60.10,end=172.24.60.100", unique("ext-sub"),
        )
        net = cloud.osc("network", "create", unique("net"))
        sub = cloud.osc("subnet", "create", "--network", net["id"], "--subnet-range", "10.60.0.0/24", unique("sub"))
        router = cloud.osc("router", "create", unique("router"))
        cloud.osc("router", "set", "--external-gateway", ext["id"], router["id"])
        cloud.osc("router", "add", "subnet", router["id"], sub["id"])
        sg = cloud.osc("security", "group", "create", unique("ssh"))
        for rule in (["--protocol", "icmp"], ["--protocol", "tcp", "--dst-port", "22"]):
            cloud.osc("security", "group", "rule", "create", "--ingress", *rule, sg["id"])
        key = os.path.join(work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        kp = unique("key")
        cloud.osc("keypair", "create", "--public-key", key + ".pub", kp)

        t0 = time.monotonic()
        name = unique("vm")
        server = cloud.osc(
            "server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", net["id"],
            "--key-name", kp, "--security-group", sg["id"], "--wait", name,
        )
        active = time.monotonic() - t0
        assert server["status"] == "ACTIVE", server
        domain = f"stratus-{server['id']}"
        assert virsh("domstate", domain).stdout.strip() == "running"
        port = cloud.osc("port", "list", "--server", server["id"])[0]
        # The agent answered the spawn once the network agent had plugged the tap; the
        # port's status report follows that pass at once.
        wait_until("the port ACTIVE", lambda: cloud.osc("port", "show", port["ID"])["status"] == "ACTIVE", timeout=10)

        fip = cloud.osc("floating", "ip", "create", ext["id"])
        address = fip["floating_ip_address"]
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

        cloud.osc("server", "stop", server["id"])
        status_is(cloud, server["id"], "SHUTOFF")
        assert virsh("domstate", domain).stdout.strip() == "shut off"
        cloud.osc("server", "start", server["id"])
        status_is(cloud, server["id"], "ACTIVE")
        wait_until("SSH after start", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
        cloud.osc("server", "reboot", "--wait", server["id"])
        wait_until("SSH after reboot", lambda: ssh(outside, key, address, "true").returncode == 0, timeout=90, interval=1)
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

        # A second server from the same image: the cache serves it.
        downloads = len(re.findall("image downloaded into the cache", open(cloud.log.name).read()))
        second = cloud.osc(
            "server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", net["id"], "--wait",
            unique("vm2"),
        )
        assert second["status"] == "ACTIVE"
        assert len(re.findall("image downloaded into the cache", open(cloud.log.name).read())) == downloads, cloud.read_log()
        cloud.osc("server", "delete", "--wait", second["id"])

        tap = "tap" + port["ID"][:11]
        cloud.osc("server", "delete", "--wait", server["id"])
        assert virsh("domstate", domain).returncode != 0, "the domain is gone"
        instances = os.path.join(cloud.data_dir, "compute-agent", "instances")
        assert os.listdir(instances) == [], "disks, config drive and console log are gone"
        wait_until("the tap gone", lambda: sh("ip", "link", "show", tap, check=False).returncode != 0, timeout=30)
        wait_until("no nftables rule for the tap", lambda: tap not in sh("nft", "list", "ruleset").stdout, timeout=30)
        cloud.osc("floating", "ip", "delete", fip["id"])
        cloud.osc("router", "remove", "subnet", router["id"], sub["id"])
        cloud.osc("router", "delete", router["id"])
        cloud.osc("network", "delete", net["id"])
        cloud.osc("network", "delete", ext["id"])
    finally:
        if outside:
            outside.destroy()
        shutil.rmtree(work, ignore_errors=True)
