"""Every identity command of the issue, run with the real python-openstackclient
against the real `stratusd all-in-one`, on PostgreSQL + NATS."""

import os
import subprocess
import time

import pytest

from conftest import ADMIN_PASSWORD, STRATUSD, Cloud, unique

# PostgreSQL + NATS (see conftest).
BACKEND = "postgres"


def test_token_issue_and_catalog(cloud):
    tok = cloud.osc("token", "issue")
    assert tok["id"] and tok["project_id"] and tok["user_id"] and tok["expires"]
    catalog = cloud.osc("catalog", "list")
    identity = [c for c in catalog if c["Type"] == "identity"]
    assert identity and cloud.auth_url in str(identity[0]["Endpoints"])


def test_token_revoke(cloud):
    victim = cloud.osc("token", "issue")["id"]
    admin = cloud.password_token()
    status, _, _ = cloud.http("GET", "/v3/auth/tokens", token=admin, headers={"X-Subject-Token": victim})
    assert status == 200
    cloud.osc("token", "revoke", victim)
    status, _, _ = cloud.http("GET", "/v3/auth/tokens", token=admin, headers={"X-Subject-Token": victim})
    assert status == 404
    status, _, body = cloud.http("GET", "/v3/projects", token=victim)
    assert status == 401 and "revoked" in body["error"]["message"]


def test_domains(cloud):
    name = unique("dom")
    d = cloud.osc("domain", "create", "--description", "first", name)
    assert d["name"] == name and d["enabled"] is True
    assert name in [x["Name"] for x in cloud.osc("domain", "list")]
    cloud.osc("domain", "set", "--description", "second", name)
    assert cloud.osc("domain", "show", name)["description"] == "second"
    # An enabled domain cannot be deleted.
    p = cloud.osc("domain", "delete", name, check=False)
    assert p.returncode != 0
    cloud.osc("domain", "set", "--disable", name)
    cloud.osc("domain", "delete", name)
    assert name not in [x["Name"] for x in cloud.osc("domain", "list")]


def test_projects(cloud):
    name = unique("proj")
    p = cloud.osc("project", "create", "--domain", "default", "--description", "d", "--property", "team=blue", name)
    assert p["name"] == name and p["team"] == "blue" and p["domain_id"] == "default"
    assert name in [x["Name"] for x in cloud.osc("project", "list")]
    renamed = unique("proj")
    cloud.osc("project", "set", "--name", renamed, "--disable", name)
    shown = cloud.osc("project", "show", renamed)
    assert shown["enabled"] is False and shown["id"] == p["id"]
    cloud.osc("project", "delete", renamed)
    assert cloud.osc("project", "show", renamed, check=False).returncode != 0


def test_users_and_passwords(cloud):
    project = unique("proj")
    cloud.osc("project", "create", project)
    user = unique("user")
    u = cloud.osc("user", "create", "--password", "pw-1", "--project", project, "--email", "u@example.org", user)
    assert u["name"] == user and u["email"] == "u@example.org"
    assert user in [x["Name"] for x in cloud.osc("user", "list")]
    cloud.osc("role", "add", "--project", project, "--user", user, "member")
    # The user logs in, then changes their own password.
    env = cloud.user_env(user, "pw-1", project)
    assert cloud.osc("token", "issue", env=env)["user_id"] == u["id"]
    cloud.osc("user", "password", "set", "--password", "pw-2", "--original-password", "pw-1", env=env)
    assert cloud.osc("token", "issue", env=env, check=False).returncode != 0
    assert cloud.osc("token", "issue", env=cloud.user_env(user, "pw-2", project))["user_id"] == u["id"]
    # The admin resets it.
    cloud.osc("user", "set", "--password", "pw-3", user)
    assert cloud.osc("token", "issue", env=cloud.user_env(user, "pw-2", project), check=False).returncode != 0
    cloud.osc("token", "issue", env=cloud.user_env(user, "pw-3", project))
    cloud.osc("user", "set", "--disable", user)
    assert cloud.osc("user", "show", user)["enabled"] is False
    assert cloud.osc("token", "issue", env=cloud.user_env(user, "pw-3", project), check=False).returncode != 0
    cloud.osc("user", "delete", user)
    assert user not in [x["Name"] for x in cloud.osc("user", "list")]


def test_groups(cloud):
    group, user = unique("grp"), unique("user")
    g = cloud.osc("group", "create", "--description", "devs", group)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("group", "add", "user", group, user)
    out = cloud.osc("group", "contains", "user", group, user)
    assert f"{user} in group {group}" in out
    assert user in [x["Name"] for x in cloud.osc("user", "list", "--group", group)]
    cloud.osc("group", "remove", "user", group, user)
    out = cloud.osc("group", "contains", "user", group, user, check=False)
    assert f"{user} not in group {group}" in out.stdout + out.stderr
    cloud.osc("group", "set", "--description", "ops", group)
    assert cloud.osc("group", "show", group)["description"] == "ops"
    assert group in [x["Name"] for x in cloud.osc("group", "list")]
    cloud.osc("group", "delete", group)
    assert cloud.osc("group", "show", g["id"], check=False).returncode != 0


def test_roles_and_assignments(cloud):
    role = unique("role")
    cloud.osc("role", "create", role)
    assert role in [x["Name"] for x in cloud.osc("role", "list")]
    renamed = unique("role")
    cloud.osc("role", "set", "--name", renamed, role)
    assert cloud.osc("role", "show", renamed)["name"] == renamed
    project, user = unique("proj"), unique("user")
    cloud.osc("project", "create", project)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("role", "add", "--project", project, "--user", user, "member")
    lines = cloud.osc("role", "assignment", "list", "--names", "--effective", "--user", user)
    pairs = {(x["Role"], x["Project"]) for x in lines}
    assert ("member", f"{project}@Default") in pairs
    assert ("reader", f"{project}@Default") in pairs, "member implies reader"
    assert all(x["User"] == f"{user}@Default" for x in lines)
    cloud.osc("role", "remove", "--project", project, "--user", user, "member")
    assert cloud.osc("role", "assignment", "list", "--user", user) == []
    # Inherited: a role on the domain that every project in it holds (OS-INHERIT).
    cloud.osc("role", "add", "--domain", "default", "--user", user, "--inherited", renamed)
    lines = cloud.osc("role", "assignment", "list", "--user", user, "--inherited")
    assert [(x["Domain"], x["Inherited"]) for x in lines] == [("default", True)], lines
    tok = cloud.osc("token", "issue", env=cloud.user_env(user, "pw", project))
    assert tok["project_id"], tok
    cloud.osc("role", "remove", "--domain", "default", "--user", user, "--inherited", renamed)
    assert cloud.osc("token", "issue", env=cloud.user_env(user, "pw", project), check=False).returncode != 0
    cloud.osc("role", "delete", renamed)
    assert renamed not in [x["Name"] for x in cloud.osc("role", "list")]


def test_application_credentials(cloud):
    project, user = unique("proj"), unique("user")
    cloud.osc("project", "create", project)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("role", "add", "--project", project, "--user", user, "member")
    env = cloud.user_env(user, "pw", project)
    name = unique("cred")
    cred = cloud.osc("application", "credential", "create", "--description", "ci", name, env=env)
    assert cred["Secret"] and cred["Project ID"]
    assert {r["name"] for r in cred["Roles"]} >= {"member"} if cred["Roles"] and isinstance(cred["Roles"][0], dict) else True
    assert name in [x["Name"] for x in cloud.osc("application", "credential", "list", env=env)]
    shown = cloud.osc("application", "credential", "show", name, env=env)
    assert shown["ID"] == cred["ID"] and not shown.get("Secret")
    # Log in with it, as a script would.
    ac_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    ac_env.update(
        {
            "OS_AUTH_TYPE": "v3applicationcredential",
            "OS_AUTH_URL": cloud.auth_url,
            "OS_APPLICATION_CREDENTIAL_ID": cred["ID"],
            "OS_APPLICATION_CREDENTIAL_SECRET": cred["Secret"],
            "OS_IDENTITY_API_VERSION": "3",
        }
    )
    tok = cloud.osc("token", "issue", env=ac_env)
    assert tok["project_id"] == cred["Project ID"]
    cloud.osc("application", "credential", "delete", name, env=env)
    assert cloud.osc("token", "issue", env=ac_env, check=False).returncode != 0


def test_oauth1_delegation(cloud):
    """OS-OAUTH1 as a user types it: an admin registers a consumer; the consumer asks
    for a project; a member of it delegates one role; the consumer exchanges the
    verifier for an access token and gets tokens with it (keystoneauth's `v3oauth1`),
    which other services accept, until the member withdraws the access token."""
    project, user = unique("proj"), unique("user")
    cloud.osc("project", "create", project)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("role", "add", "--project", project, "--user", user, "member")
    consumer = cloud.osc("consumer", "create", "--description", "ci robot")
    assert consumer["secret"]
    assert consumer["id"] in [c["ID"] for c in cloud.osc("consumer", "list")]
    env = cloud.user_env(user, "pw", project)
    ckey, csecret = consumer["id"], consumer["secret"]
    req = cloud.osc("request", "token", "create", "--consumer-key", ckey, "--consumer-secret", csecret,
                    "--project", cloud.osc("project", "show", project)["id"], env=env)
    verifier = cloud.osc("request", "token", "authorize", "--request-key", req["key"], "--role", "reader",
                         env=env, fmt_json=True)["oauth_verifier"]
    access = cloud.osc("access", "token", "create", "--consumer-key", ckey, "--consumer-secret", csecret,
                       "--request-key", req["key"], "--request-secret", req["secret"], "--verifier", verifier,
                       env=env)
    oauth_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    oauth_env.update({
        "OS_AUTH_TYPE": "v3oauth1",
        "OS_AUTH_URL": cloud.auth_url,
        "OS_CONSUMER_KEY": ckey,
        "OS_CONSUMER_SECRET": csecret,
        "OS_ACCESS_KEY": access["key"],
        "OS_ACCESS_SECRET": access["secret"],
        "OS_IDENTITY_API_VERSION": "3",
    })
    tok = cloud.osc("token", "issue", env=oauth_env)
    assert tok["project_id"] == cloud.osc("project", "show", project)["id"]
    assert tok["user_id"] == cloud.osc("user", "show", user)["id"]
    # Another service takes the delegated token; the delegated role only reads.
    assert cloud.osc("network", "list", env=oauth_env) is not None
    assert cloud.osc("network", "create", unique("net"), env=oauth_env, check=False).returncode != 0
    # The member withdraws it (no openstack command exists for this; the REST call).
    user_token = cloud.osc("token", "issue", env=env)["id"]
    path = f"/v3/users/{tok['user_id']}/OS-OAUTH1/access_tokens/{access['key']}"
    status, _, body = cloud.http("GET", path, token=user_token, base=cloud.auth_url.removesuffix("/v3"))
    assert status == 200 and body["access_token"]["consumer_id"] == ckey
    status, _, _ = cloud.http("DELETE", path, token=user_token, base=cloud.auth_url.removesuffix("/v3"))
    assert status == 204
    assert cloud.osc("token", "issue", env=oauth_env, check=False).returncode != 0
    cloud.osc("consumer", "delete", ckey)
    assert ckey not in [c["ID"] for c in cloud.osc("consumer", "list")]


def test_credentials_and_ec2_credentials(cloud):
    """A user keeps credentials with identity: EC2 access/secret pairs for a project they
    work in, and blobs of their own; nobody else sees them."""
    project, user = unique("proj"), unique("user")
    cloud.osc("project", "create", project)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("role", "add", "--project", project, "--user", user, "member")
    env = cloud.user_env(user, "pw", project)
    ec2 = cloud.osc("ec2", "credentials", "create", env=env)
    assert ec2["access"] and ec2["secret"], ec2
    listed = cloud.osc("ec2", "credentials", "list", env=env)
    assert [c["Access"] for c in listed] == [ec2["access"]], listed
    shown = cloud.osc("ec2", "credentials", "show", ec2["access"], env=env)
    assert shown["secret"] == ec2["secret"]
    # A blob of the user's own, changed in place (by user id: as in Keystone, a member
    # may not list users to find their own by name).
    uid = cloud.osc("token", "issue", env=env)["user_id"]
    cred = cloud.osc("credential", "create", "--type", "totp", uid, "JBSWY3DPEHPK3PXP", env=env)
    cloud.osc("credential", "set", "--user", uid, "--type", "totp", "--data", "KRSXG5CTMVRXEZLU", cred["id"], env=env)
    assert cloud.osc("credential", "show", cred["id"], env=env)["blob"] == "KRSXG5CTMVRXEZLU"
    types = sorted(c["Type"] for c in cloud.osc("credential", "list", env=env))
    assert types == ["ec2", "totp"], types
    # Another project's member sees none of it.
    _, other = cloud.member_env(unique("cred-other"))
    assert cloud.osc("credential", "list", env=other) == []
    assert cloud.osc("credential", "show", cred["id"], env=other, check=False).returncode != 0
    cloud.osc("credential", "delete", cred["id"], env=env)
    cloud.osc("ec2", "credentials", "delete", ec2["access"], env=env)
    assert cloud.osc("ec2", "credentials", "list", env=env) == []


def test_regions_services_endpoints(cloud):
    region = unique("Region")
    cloud.osc("region", "create", "--description", "second site", region)
    assert region in [x["Region"] for x in cloud.osc("region", "list")]
    name = unique("svc")
    svc = cloud.osc("service", "create", "--name", name, "--description", "test service", "test-type")
    assert svc["type"] == "test-type"
    assert name in [x["Name"] for x in cloud.osc("service", "list")]
    ep = cloud.osc("endpoint", "create", "--region", region, name, "public", "http://127.0.0.1:9999/v1")
    assert ep["url"] == "http://127.0.0.1:9999/v1" and ep["region"] == region
    assert ep["id"] in [x["ID"] for x in cloud.osc("endpoint", "list")]
    # Bad input is refused with a message.
    bad = cloud.osc("endpoint", "create", name, "sideways", "http://x", check=False)
    assert bad.returncode != 0
    cloud.osc("endpoint", "delete", ep["id"])
    cloud.osc("service", "delete", svc["id"])
    cloud.osc("region", "delete", region)
    assert region not in [x["Region"] for x in cloud.osc("region", "list")]


def test_limits(cloud):
    project = unique("proj")
    cloud.osc("project", "create", project)
    resource = unique("res")
    reg = cloud.osc("registered", "limit", "create", "--service", "compute", "--default-limit", "5", resource)
    assert reg["default_limit"] == 5 and reg["resource_name"] == resource
    listed = cloud.osc("registered", "limit", "list", "--service", "compute")
    assert resource in [x["Resource Name"] for x in listed]
    assert "instances" in [x["Resource Name"] for x in listed], "bootstrap registers default quotas"
    lim = cloud.osc("limit", "create", "--project", project, "--service", "compute", "--resource-limit", "3", resource)
    assert lim["resource_limit"] == 3
    assert lim["id"] in [x["ID"] for x in cloud.osc("limit", "list", "--project", project)]
    cloud.osc("limit", "set", "--resource-limit", "4", lim["id"])
    assert cloud.osc("limit", "show", lim["id"])["resource_limit"] == 4
    cloud.osc("limit", "delete", lim["id"])
    assert cloud.osc("limit", "list", "--project", project) == []


def test_failures(cloud):
    # Wrong password.
    bad = cloud.osc("token", "issue", env=cloud.user_env("admin", "wrong", "admin"), check=False)
    assert bad.returncode != 0 and "requires authentication" in bad.stderr
    # A member trying admin calls, and looking at another project.
    pa, pb, user = unique("proj"), unique("proj"), unique("user")
    cloud.osc("project", "create", pa)
    b = cloud.osc("project", "create", pb)
    cloud.osc("user", "create", "--password", "pw", user)
    cloud.osc("role", "add", "--project", pa, "--user", user, "member")
    env = cloud.user_env(user, "pw", pa)
    denied = cloud.osc("project", "create", unique("proj"), env=env, check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    denied = cloud.osc("user", "create", unique("user"), env=env, check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    hidden = cloud.osc("project", "show", b["id"], env=env, check=False)
    assert hidden.returncode != 0 and "No Project found" in hidden.stderr
    mine = cloud.osc("project", "list", "--my-projects", env=env)
    assert [x["Name"] for x in mine] == [pa]
    # A token that has expired.
    data_dir = os.path.join(cloud.data_dir, "short")
    os.makedirs(data_dir, exist_ok=True)
    short = Cloud("sqlite", data_dir, extra_env={"STRATUS_IDENTITY__TOKEN_TTL_SECS": "1"})
    try:
        tok = short.password_token()
        assert short.http("GET", "/v3/domains", token=tok)[0] == 200
        time.sleep(1.5)
        status, _, body = short.http("GET", "/v3/domains", token=tok)
        assert status == 401 and "expired" in body["error"]["message"]
    finally:
        short.stop()


def test_key_rotation_keeps_valid_tokens(cloud):
    old = cloud.password_token()
    for _ in range(2):
        out = subprocess.run([STRATUSD, "identity", "rotate-keys"], env=cloud.env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "rotated" in out.stdout
    time.sleep(1.5)  # the server reloads keys within its refresh interval (1 s here)
    assert cloud.http("GET", "/v3/domains", token=old)[0] == 200
    new = cloud.password_token()
    assert cloud.http("GET", "/v3/domains", token=new)[0] == 200
    cloud.osc("token", "issue")


def test_revocation_seen_by_second_process(cloud):
    if cloud.backend != "postgres":
        pytest.skip("a second process needs the shared database and NATS")
    # Its own timer refresh is slow on purpose: only the bus can tell it in time.
    second = Cloud(
        "postgres",
        os.path.join(cloud.data_dir),
        command="identity",
        db_url=cloud.db_url,
        bus_url=cloud.bus_url,
        extra_env={"STRATUS_IDENTITY__REFRESH_SECS": "600"},
    )
    try:
        token = cloud.password_token()
        assert second.http("GET", "/v3/domains", token=token)[0] == 200
        cloud.osc("token", "revoke", token)
        deadline = time.monotonic() + 1.0
        while second.http("GET", "/v3/domains", token=token)[0] == 200:
            assert time.monotonic() < deadline, "revocation not seen within a second"
            time.sleep(0.05)
        assert second.http("GET", "/v3/domains", token=token)[0] == 401
    finally:
        second.stop()


def test_admin_password_written_for_clients(cloud):
    path = os.path.join(cloud.data_dir, "clouds.yaml")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(os.path.join(cloud.data_dir, "openrc")) as f:
        assert ADMIN_PASSWORD in f.read()


def test_background_tasks_are_supervised_and_shown_to_admins(cloud):
    """Every background task of the process runs under the supervisor, which shows when
    each last ran, succeeded and failed: to admins, and in /metrics."""
    admin = cloud.password_token()
    status, _, body = cloud.http("GET", "/v3/OS-STRATUS/tasks", admin)
    assert status == 200, body
    tasks = {t["name"]: t for t in body["tasks"]}
    for name in ("compute.reconciler", "compute.host-reports", "compute.agent-results", "image.reconciler",
                 "compute-agent", "limits.invalidation"):
        assert name in tasks, sorted(tasks)
        assert tasks[name]["running"] and tasks[name]["starts"] == 1, tasks[name]
    assert tasks["compute.reconciler"]["last_success"] is not None
    _, env = cloud.member_env(unique("tasks"))
    member = cloud.password_token(env["OS_USERNAME"], env["OS_PASSWORD"], env["OS_PROJECT_NAME"])
    assert cloud.http("GET", "/v3/OS-STRATUS/tasks", member)[0] == 403
    import urllib.request

    metrics = urllib.request.urlopen(cloud.compute_url + "/metrics", timeout=5).read().decode()
    assert 'stratus_task_up{task="compute.reconciler"} 1' in metrics
