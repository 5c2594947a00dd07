"""The test guest (tests/guest/build-guest.sh) built from Debian packages and booted
under QEMU's software emulation: it gets an address by DHCP, takes its host name and
SSH key from a config drive labelled `config-2`, and answers SSH with that key.

QEMU's user networking is restricted (`restrict=on`): the guest reaches nothing
outside; the only way in is the SSH port forwarded from loopback.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import GUEST_TOOLS, free_port

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in GUEST_TOOLS),
    reason="needs QEMU, xorriso, ssh and apt (the README's test command installs them)",
)


def test_guest_boots_takes_its_identity_from_a_config_drive_and_answers_ssh(guest_image):
    kernel, initrd = guest_image
    work = tempfile.mkdtemp(prefix="stratus-guest-")
    try:
        key = os.path.join(work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        drive = os.path.join(work, "drive", "openstack", "latest")
        os.makedirs(drive)
        with open(key + ".pub") as f:
            public = f.read().strip()
        with open(os.path.join(drive, "meta_data.json"), "w") as f:
            json.dump({"uuid": "u-1", "name": "probe", "hostname": "probe-guest", "public_keys": {"k": public}}, f)
        iso = os.path.join(work, "config.iso")
        subprocess.run(
            ["xorriso", "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-R", "-o", iso, os.path.join(work, "drive")],
            check=True, capture_output=True,
        )
        port = free_port()
        console = os.path.join(work, "console.log")
        started = time.monotonic()
        with open(console, "w") as log:
            vm = subprocess.Popen(
                ["qemu-system-x86_64", "-machine", "accel=tcg", "-m", "128", "-kernel", kernel, "-initrd", initrd,
                 "-append", "console=ttyS0 quiet", "-nographic", "-no-reboot",
                 "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
                 "-device", "virtio-net-pci,netdev=n0",
                 "-drive", f"file={iso},if=virtio,format=raw,readonly=on"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + 120
            text = ""
            while "stratus-guest: ready" not in text:
                assert vm.poll() is None, f"QEMU exited: {text[-2000:]}"
                assert time.monotonic() < deadline, f"the guest did not come up: {text[-2000:]}"
                time.sleep(0.5)
                with open(console, errors="replace") as f:
                    text = f.read()
            booted = time.monotonic() - started
            assert "config drive on /dev/vda" in text and "hostname probe-guest, 1 key(s)" in text, text[-2000:]
            out = subprocess.run(
                ["ssh", "-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "ConnectTimeout=20", "-o", "BatchMode=yes", "root@127.0.0.1", "hostname; uname -r"],
                capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.split()[0] == "probe-guest", out.stdout
            print(f"guest up (console 'ready') {booted:.1f} s after QEMU started; SSH answered with the drive's key")
        finally:
            vm.kill()
            vm.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
