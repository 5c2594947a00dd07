"""End-to-end fixtures: start the real `stratusd` and drive it with the real clients.

The `cloud` fixture is one module-scoped cloud on the backend the module names in
`BACKEND`: `sqlite` (SQLite file + in-process bus, the all-in-one defaults; the default)
or `postgres` (PostgreSQL + NATS JetStream; SQLite when those servers are not
reachable). Each behaviour is driven end to end once: the Rust API tests run every
service's rules on both engines, so the modules share the two backends between them
rather than each running twice.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

# Re-exported: the test modules import these from conftest.
from cloud import (  # noqa: F401
    ADMIN_PASSWORD,
    OPENSTACK,
    STRATUSD,
    VERBS,
    Cloud,
    free_port,
    new_pg_schema,
    port_open,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_TOOLS = ["qemu-system-x86_64", "qemu-img", "xorriso", "ssh", "ssh-keygen", "apt-get", "dpkg-deb"]


@pytest.fixture(scope="session")
def guest_image():
    """The test guest (tests/guest/build-guest.sh): its kernel and initramfs."""
    out = os.path.join(ROOT, "target", "test-guest")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "guest", "build-guest.sh"), out], check=True, timeout=600)
    return os.path.join(out, "vmlinuz"), os.path.join(out, "initrd.img")


def pg_and_nats():
    return port_open(5432) and port_open(4222) and shutil.which("psql")


def backend_urls(backend):
    if backend == "sqlite":
        return None, None
    if not pg_and_nats():
        pytest.skip("PostgreSQL or NATS not reachable")
    return new_pg_schema(), "nats://127.0.0.1:4222"


@pytest.fixture(scope="module")
def cloud(request):
    backend = getattr(request.module, "BACKEND", "sqlite")
    if backend == "postgres" and not pg_and_nats():
        backend = "sqlite"
    db_url, bus_url = backend_urls(backend)
    data_dir = tempfile.mkdtemp(prefix="stratus-e2e-")
    c = Cloud(backend, data_dir, db_url=db_url, bus_url=bus_url)
    c.db_url, c.bus_url = db_url, bus_url
    yield c
    c.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def compute_basics(cloud, cidr, shared=False):
    """A flavor, a public image and a network with a subnet, made by the admin:
    {"flavor": name, "image": id, "network": name}."""
    flavor = unique("m1")
    cloud.osc("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", flavor)
    with tempfile.NamedTemporaryFile(suffix=".raw") as f:
        f.write(os.urandom(4096))
        f.flush()
        image = cloud.osc(
            "image", "create", "--public", "--file", f.name, "--disk-format", "raw", "--container-format", "bare",
            unique("img"),
        )
    net = unique("net")
    cloud.osc("network", "create", *(["--share"] if shared else []), net)
    cloud.osc("subnet", "create", "--network", net, "--subnet-range", cidr, unique("sub"))
    return {"flavor": flavor, "image": image["id"], "network": net}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
