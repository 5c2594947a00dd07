"""The services' own tokens (service to service, agents) are renewed before they
expire and after they are refused: with a 20-second token lifetime, servers keep
booting for a minute, and after the service user's password changes (which revokes
its tokens)."""

import shutil
import tempfile
import time

import pytest

from conftest import Cloud, compute_basics, unique

TTL = 20


@pytest.fixture(scope="module")
def short_lived():
    data_dir = tempfile.mkdtemp(prefix="stratus-ttl-")
    c = Cloud("sqlite", data_dir, extra_env={"STRATUS_IDENTITY__TOKEN_TTL_SECS": str(TTL)})
    yield c
    c.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def boot(cloud, base, name):
    s = cloud.osc(
        "server", "create", "--flavor", base["flavor"], "--image", base["image"], "--network", base["network"],
        "--wait", name,
    )
    assert s["status"] == "ACTIVE", s
    assert base["network"] in s["addresses"], s
    return s


def test_servers_boot_past_the_token_lifetime_and_after_a_password_change(short_lived):
    cloud = short_lived
    base = compute_basics(cloud, "10.30.0.0/24")
    flavor, image, net = base["flavor"], base["image"], base["network"]
    started = time.monotonic()
    boot(cloud, base, unique("vm"))
    # Past one lifetime, a second and a third (a minute in all): every token the
    # services cached at the start has long expired.
    for until in (TTL + 3, 2 * TTL + 3, 3 * TTL + 3):
        time.sleep(max(0, until - (time.monotonic() - started)))
        boot(cloud, base, unique("vm"))
    # A new password for the service user (all-in-one's is the admin) revokes its
    # tokens; the services get new ones on the first refusal.
    cloud.osc("user", "set", "--password", "e2e-admin-pw-2", "admin")
    try:
        env = cloud.user_env("admin", "e2e-admin-pw-2", "admin")
        s = cloud.osc(
            "server", "create", "--flavor", flavor, "--image", image, "--network", net, "--wait", unique("vm"),
            env=env,
        )
        assert s["status"] == "ACTIVE", s
    finally:
        cloud.osc("user", "set", "--password", "e2e-admin-pw", "admin", env=cloud.user_env("admin", "e2e-admin-pw-2", "admin"))
