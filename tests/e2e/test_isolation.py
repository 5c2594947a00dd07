"""The isolation matrix: project A's resources of every service, tried by another
project's member and reader (B) and by A's own reader, by id, through every list filter
that could leak, and by naming them from B's own requests. The expected answers are the
table below, not whatever the code answers: a change that lets one through fails here.

Every new resource type adds its rows (see docs/api/policy.md).
"""

import json
import shutil
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import Cloud, unique

PW = "matrix-pw-1"


@pytest.fixture(scope="module")
def world():
    data_dir = tempfile.mkdtemp(prefix="stratus-iso-")
    c = Cloud("sqlite", data_dir)
    admin = c.password_token()
    w = {"cloud": c, "admin": admin}
    # Two projects, each with a member and a reader.
    for p in ("a", "b"):
        project = c.osc("project", "create", unique(f"iso-{p}"))
        w[p] = project["id"]
        for role in ("member", "reader"):
            name = unique(f"{p}-{role}")
            user = c.osc("user", "create", "--password", PW, name)
            c.osc("role", "add", "--project", project["id"], "--user", user["id"], role)
            w[f"{p}_{role}_user"] = user["id"]
            w[f"{p}_{role}"] = c.password_token(name, PW, project["name"])
    # What the admin provides: an external network, a flavor, a public image.
    _, _, pub = c.http("POST", "/v2.0/networks", admin, {"network": {"name": "public", "router:external": True}},
                       base=c.network_url)
    w["public"] = pub["network"]["id"]
    c.http("POST", "/v2.0/subnets", admin,
           {"subnet": {"network_id": w["public"], "cidr": "203.0.113.0/24", "enable_dhcp": False}}, base=c.network_url)
    c.osc("flavor", "create", "--id", "iso1", "--vcpus", "1", "--ram", "64", "--disk", "1", "iso1")
    # A private flavor given to project A alone.
    c.osc("flavor", "create", "--id", "iso-a", "--private", "--project", w["a"], "--vcpus", "1", "--ram", "64",
          "--disk", "1", "iso-a")
    w["public_image"] = image(c, admin, "public-img", visibility="public")
    # The one compute host, made reservable (leases below are for later windows).
    hv = c.osc("hypervisor", "list")[0]["Hypervisor Hostname"]
    w["hv"] = hv
    status, _, body = c.http("POST", "/v1/os-hosts", admin, {"name": hv}, base=c.reservation_url)
    assert status == 201, body
    # A bare-metal node with a port: the operator's alone (Ironic's default policy).
    bm = {"X-OpenStack-Ironic-API-Version": "1.31"}
    status, _, node = c.http("POST", "/v1/nodes", admin, {"driver": "fake-hardware", "name": unique("iso-node")},
                             headers=bm, base=c.baremetal_url)
    assert status == 201, node
    status, _, port = c.http("POST", "/v1/ports", admin, {"node_uuid": node["uuid"], "address": "52:54:00:15:0a:01"},
                             headers=bm, base=c.baremetal_url)
    assert status == 201, port
    w["node"], w["bm_port"] = node["uuid"], port["uuid"]
    yield w
    c.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def image(c, token, name, visibility="private", **props):
    body = {"name": name, "disk_format": props.pop("disk_format", "raw"), "container_format": "bare",
            "visibility": visibility, **props}
    status, _, img = c.http("POST", "/v2/images", token, body, base=c.image_url)
    assert status == 201, img
    import urllib.request

    req = urllib.request.Request(f"{c.image_url}/v2/images/{img['id']}/file", data=b"\0" * 1024, method="PUT")
    req.add_header("X-Auth-Token", token)
    req.add_header("Content-Type", "application/octet-stream")
    urllib.request.urlopen(req, timeout=10).read()
    return img["id"]


def ok(status, body, what):
    assert status in (200, 201, 202, 204), f"{what}: {status} {body}"
    return body


@pytest.fixture(scope="module")
def a_things(world):
    """One of each of A's resources, made by A's member."""
    c, t = world["cloud"], world["a_member"]
    N, C, I = c.network_url, c.compute_url + "/v2.1", c.image_url
    r = {}
    net = ok(*drop_headers(c.http("POST", "/v2.0/networks", t, {"network": {"name": "a-net"}}, base=N)), "network")
    r["network"] = net["network"]["id"]
    sub = c.http("POST", "/v2.0/subnets", t, {"subnet": {"network_id": r["network"], "cidr": "10.77.0.0/24"}}, base=N)[2]
    r["subnet"] = sub["subnet"]["id"]
    r["port"] = c.http("POST", "/v2.0/ports", t, {"port": {"network_id": r["network"], "name": "a-port"}}, base=N)[2]["port"]["id"]
    r["security_group"] = c.http("POST", "/v2.0/security-groups", t, {"security_group": {"name": "a-sg"}}, base=N)[2]["security_group"]["id"]
    r["security_group_rule"] = c.http(
        "POST", "/v2.0/security-group-rules", t,
        {"security_group_rule": {"security_group_id": r["security_group"], "direction": "ingress", "protocol": "tcp",
                                 "port_range_min": 22, "port_range_max": 22}}, base=N)[2]["security_group_rule"]["id"]
    router = c.http("POST", "/v2.0/routers", t,
                    {"router": {"name": "a-router", "external_gateway_info": {"network_id": world["public"]}}}, base=N)[2]
    r["router"] = router["router"]["id"]
    ok(*drop_headers(c.http("PUT", f"/v2.0/routers/{r['router']}/add_router_interface", t, {"subnet_id": r["subnet"]}, base=N)), "interface")
    r["floatingip"] = c.http("POST", "/v2.0/floatingips", t,
                             {"floatingip": {"floating_network_id": world["public"], "port_id": r["port"]}}, base=N)[2]["floatingip"]["id"]
    pool = c.http("POST", "/v2.0/subnetpools", t, {"subnetpool": {"name": "a-pool", "prefixes": ["10.88.0.0/16"],
                                                                  "default_prefixlen": 26}}, base=N)
    r["subnetpool"] = ok(*drop_headers(pool), "subnet pool")["subnetpool"]["id"]
    r["image"] = image(c, t, "a-private")
    r["kernel"] = image(c, t, "a-kernel", disk_format="aki")
    r["keypair"] = "a-key"
    ok(*drop_headers(c.http("POST", "/os-keypairs", t, {"keypair": {"name": "a-key"}}, base=C)), "keypair")
    r["server_group"] = c.http("POST", "/os-server-groups", t,
                               {"server_group": {"name": "a-group", "policies": ["anti-affinity"]}}, base=C)[2]["server_group"]["id"]
    s = c.http("POST", "/servers", t, {"server": {"name": "a-vm", "imageRef": world["public_image"], "flavorRef": "iso1",
                                                  "networks": [{"uuid": r["network"]}]}}, base=C)
    r["server"] = active_server(c, t, s)
    r["app_cred"] = c.http("POST", f"/v3/users/{world['a_member_user']}/application_credentials", t,
                           {"application_credential": {"name": "a-cred"}})[2]["application_credential"]["id"]
    V = f"{c.volume_url}/v3/{world['a']}"
    r["volume"] = settled(c, t, f"{V}/volumes", c.http("POST", "/volumes", t, {"volume": {"size": 1, "name": "a-vol"}}, base=V),
                          "volume")
    r["snapshot"] = settled(c, t, f"{V}/snapshots",
                            c.http("POST", "/snapshots", t, {"snapshot": {"volume_id": r["volume"], "name": "a-snap"}}, base=V),
                            "snapshot")
    r["backup"] = settled(c, t, f"{V}/backups",
                          c.http("POST", "/backups", t, {"backup": {"volume_id": r["volume"], "name": "a-backup"}}, base=V),
                          "backup")
    offered = settled(c, t, f"{V}/volumes", c.http("POST", "/volumes", t, {"volume": {"size": 1, "name": "a-gift"}}, base=V),
                      "volume")
    status, _, body = c.http("POST", "/os-volume-transfer", t, {"transfer": {"volume_id": offered}}, base=V)
    assert status == 202, body
    r["transfer"] = body["transfer"]["id"]
    held = settled(c, t, f"{V}/volumes", c.http("POST", "/volumes", t, {"volume": {"size": 1, "name": "a-held"}}, base=V),
                   "volume")
    status, _, body = c.http("POST", "/attachments", t, {"attachment": {"volume_uuid": held, "instance_uuid": r["server"]}},
                             headers=versioned("/attachments"), base=V)
    assert status == 200, body
    r["attachment"] = body["attachment"]["id"]
    r["lease"], r["reservation"] = lease(c, t, "a-lease", days=10)
    # Instances of a flavor reserved now: the lease's start gives A a private flavor.
    import datetime

    end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    body = {"name": "a-instances", "start_date": "now", "end_date": end, "events": [],
            "reservations": [{"resource_type": "flavor:instance", "flavor_id": "iso1", "amount": 1}]}
    status, _, made = c.http("POST", "/v1/leases", t, body, base=c.reservation_url)
    assert status == 201, made
    deadline = time.monotonic() + 30
    lease_path = f"/v1/leases/{made['lease']['id']}"
    while c.http("GET", lease_path, t, base=c.reservation_url)[2]["lease"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "the flavor:instance lease never started"
        time.sleep(0.2)
    r["reservation_flavor"] = made["lease"]["reservations"][0]["id"]
    # A group (of the admin's group type) and a snapshot of it.
    gv = {"OpenStack-API-Version": "volume 3.25"}
    status, _, gt = c.http("POST", "/group_types", world["admin"], {"group_type": {"name": "iso-gt"}}, headers=gv, base=V)
    assert status == 202, gt
    status, _, g = c.http("POST", "/groups", t, {"group": {"name": "a-group", "group_type": gt["group_type"]["id"],
                                                           "volume_types": ["__DEFAULT__"]}}, headers=gv, base=V)
    assert status == 202, g
    r["group"] = g["group"]["id"]
    status, _, gs = c.http("POST", "/group_snapshots", t, {"group_snapshot": {"group_id": r["group"], "name": "a-gsnap"}},
                           headers=gv, base=V)
    assert status == 202, gs
    r["group_snapshot"] = gs["group_snapshot"]["id"]
    # What the admin gives A alone: a private volume type; and QoS specs (the admin's).
    admin = world["admin"]
    status, _, vt = c.http("POST", "/types", admin, {"volume_type": {"name": "a-gold", "is_public": False}}, base=V)
    assert status == 200, vt
    r["volume_type"] = vt["volume_type"]["id"]
    status, _, _ = c.http("POST", f"/types/{r['volume_type']}/action", admin,
                          {"addProjectAccess": {"project": world["a"]}}, base=V)
    assert status == 202
    status, _, qos = c.http("POST", "/qos-specs", admin, {"qos_specs": {"name": "a-qos", "read_iops_sec": "1"}}, base=V)
    assert status == 200, qos
    r["qos"] = qos["qos_specs"]["id"]
    # A metadata definitions namespace the admin keeps private to A.
    body = {"namespace": "a-private-ns", "visibility": "private", "owner": world["a"]}
    status, _, ns = c.http("POST", "/v2/metadefs/namespaces", admin, body, base=I)
    assert status == 201, ns
    r["metadef_namespace"] = ns["namespace"]
    # A's member's credentials: an EC2 pair on A, and a blob of their own.
    uid = world["a_member_user"]
    status, _, ec2 = c.http("POST", f"/v3/users/{uid}/credentials/OS-EC2", t, {"tenant_id": world["a"]})
    assert status == 201, ec2
    r["ec2_access"] = ec2["credential"]["access"]
    status, _, cred = c.http("POST", "/v3/credentials", t, {"credential": {"type": "totp", "user_id": uid, "blob": "A"}})
    assert status == 201, cred
    r["credential"] = cred["credential"]["id"]
    # An OAuth1 consumer (the admin's) holding an access token A's member authorised on
    # A, and a request token for A's project nobody has authorised yet.
    status, _, consumer = c.http("POST", "/v3/OS-OAUTH1/consumers", admin, {"consumer": {"description": "iso"}})
    assert status == 201, consumer
    consumer = (consumer["consumer"]["id"], consumer["consumer"]["secret"])
    request = oauth_post(c, "/v3/OS-OAUTH1/request_token", consumer, project=world["a"])
    status, _, v = c.http("PUT", f"/v3/OS-OAUTH1/authorize/{request[0]}", t, {"roles": [{"name": "member"}]})
    assert status == 200, v
    access = oauth_post(c, "/v3/OS-OAUTH1/access_token", consumer, token=request, verifier=v["token"]["oauth_verifier"])
    r["oauth_access_token"] = access[0]
    r["oauth_request_token"] = oauth_post(c, "/v3/OS-OAUTH1/request_token", consumer, project=world["a"])[0]
    return r


def oauth_post(c, path, consumer, token=None, verifier=None, project=None):
    """A POST signed as an OAuth1 consumer signs it; returns (oauth_token, oauth_token_secret)."""
    from oauthlib import oauth1

    client = oauth1.Client(consumer[0], client_secret=consumer[1], resource_owner_key=token and token[0],
                           resource_owner_secret=token and token[1], verifier=verifier,
                           signature_method=oauth1.SIGNATURE_HMAC, callback_uri=None if token else "oob")
    headers = {"Requested-Project-Id": project} if project else {}
    _, headers, _ = client.sign(c.url + path, http_method="POST", headers=headers)
    req = urllib.request.Request(c.url + path, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = urllib.parse.parse_qs(resp.read().decode())
    return answer["oauth_token"][0], answer["oauth_token_secret"][0]


def lease(c, token, name, days):
    """A lease of the host for an hour `days` from now: (lease id, reservation id)."""
    import datetime

    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    fmt = "%Y-%m-%d %H:%M"
    body = {"name": name, "start_date": start.strftime(fmt), "end_date": (start + datetime.timedelta(hours=1)).strftime(fmt),
            "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1}], "events": []}
    status, _, made = c.http("POST", "/v1/leases", token, body, base=c.reservation_url)
    assert status == 201, made
    return made["lease"]["id"], made["lease"]["reservations"][0]["id"]


def settled(c, token, collection, created, key):
    """The id of the volume or snapshot a create answered, once it is available."""
    assert created[0] == 202, created
    id_ = created[2][key]["id"]
    deadline = time.monotonic() + 30
    while c.http("GET", f"/{id_}", token, base=collection)[2][key]["status"] != "available":
        assert time.monotonic() < deadline, f"{key} {id_} not available"
        time.sleep(0.2)
    return id_


def active_server(c, token, created):
    """The id of the server a `POST /servers` answered, once it is ACTIVE."""
    assert created[0] == 202, created
    server = created[2]["server"]["id"]
    deadline = time.monotonic() + 30
    while c.http("GET", f"/servers/{server}", token, base=c.compute_url + "/v2.1")[2]["server"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, f"server {server} not ACTIVE"
        time.sleep(0.2)
    return server


def drop_headers(resp):
    status, _, body = resp
    return status, body



# (resource, service, path, update body): every verb by id.
BY_ID = [
    ("network", "network", "/v2.0/networks/{id}", {"network": {"name": "x"}}),
    ("subnet", "network", "/v2.0/subnets/{id}", {"subnet": {"name": "x"}}),
    ("port", "network", "/v2.0/ports/{id}", {"port": {"name": "x"}}),
    ("security_group", "network", "/v2.0/security-groups/{id}", {"security_group": {"name": "x"}}),
    ("security_group_rule", "network", "/v2.0/security-group-rules/{id}", None),
    ("router", "network", "/v2.0/routers/{id}", {"router": {"name": "x"}}),
    ("floatingip", "network", "/v2.0/floatingips/{id}", {"floatingip": {"port_id": None}}),
    ("subnetpool", "network", "/v2.0/subnetpools/{id}", {"subnetpool": {"name": "x"}}),
    ("image", "image", "/v2/images/{id}", [{"op": "replace", "path": "/name", "value": "x"}]),
    ("metadef_namespace", "image", "/v2/metadefs/namespaces/{id}", {"namespace": "x"}),
    ("server", "compute", "/servers/{id}", {"server": {"name": "x"}}),
    ("server_group", "compute", "/os-server-groups/{id}", None),
    # Nova's proxies to the other services, with the caller's own token.
    ("security_group", "compute", "/os-security-groups/{id}", {"security_group": {"name": "x", "description": "x"}}),
    ("floatingip", "compute", "/os-floating-ips/{id}", None),
    ("volume", "compute", "/os-volumes/{id}", None),
    ("snapshot", "compute", "/os-snapshots/{id}", None),
    # Volume URLs name the caller's own project ({proj}).
    ("volume", "volume", "/v3/{proj}/volumes/{id}", {"volume": {"name": "x"}}),
    ("snapshot", "volume", "/v3/{proj}/snapshots/{id}", {"snapshot": {"name": "x"}}),
    ("backup", "volume", "/v3/{proj}/backups/{id}", {"backup": {"name": "x"}}),
    ("group_snapshot", "volume", "/v3/{proj}/group_snapshots/{id}", None),
    ("transfer", "volume", "/v3/{proj}/os-volume-transfer/{id}", None),
    ("attachment", "volume", "/v3/{proj}/attachments/{id}", {"attachment": {"connector": {"host": "b-host"}}}),
    ("lease", "reservation", "/v1/leases/{id}", {"name": "x"}),
]

# Who tries, and what each verb must answer: (GET, update, DELETE).
# Another project's member: the resource does not exist for them (404). Another
# project's reader: 404 to read; writes are refused for the role before any lookup
# (403, the same answer as for an id that exists nowhere, which the test checks too).
# A's reader sees it and may change nothing (403). Server groups and rules have no
# update (None).
ACTORS = {
    "b_member": (404, 404, 404),
    "b_reader": (404, 403, 403),
    "a_reader": (200, 403, 403),
}
# Where a service answers otherwise, and why that is right too.
EXCEPT = {
    # Glance finds the image (as the caller may see it) before it checks the role.
    ("b_reader", "image"): (404, 404, 404),
}
NOWHERE = "00000000-0000-4000-8000-000000000000"


def versioned(path):
    """The microversion header a path needs (Cinder's attachments are 3.27+, backup
    updates 3.9+)."""
    versioned = ("/attachments", "/backups", "/group")
    return {"OpenStack-API-Version": "volume 3.44"} if any(p in path for p in versioned) else None


def base_of(c, service):
    return {"identity": c.url, "network": c.network_url, "image": c.image_url, "compute": c.compute_url + "/v2.1",
            "volume": c.volume_url, "reservation": c.reservation_url}[service]


@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_by_id(world, a_things, actor):
    c = world["cloud"]
    token = world[actor]
    wrong = []
    for resource, service, path, update in BY_ID:
        want_get, want_update, want_delete = EXCEPT.get((actor, service), ACTORS[actor])
        base = base_of(c, service)
        # Another project's answers must not tell A's ids from ids that exist nowhere.
        ids = [a_things[resource]] + ([NOWHERE] if actor.startswith("b_") else [])
        for id_ in ids:
            url = path.format(id=id_, proj=world[actor[0]])
            label = resource if id_ != NOWHERE else f"{resource} (an id of nothing)"
            want = (want_get if id_ != NOWHERE else 404)
            got = c.http("GET", url, token, headers=versioned(url), base=base)[0]
            if got != want:
                wrong.append(f"GET {label}: {got}, want {want}")
            if update is not None:
                patch = path.startswith("/v2/images")
                method = "PATCH" if patch else "PUT"
                headers = {"Content-Type": "application/openstack-images-v2.1-json-patch"} if patch else versioned(url)
                got = http_with(c, method, base + url, token, update, headers)
                if got != want_update:
                    wrong.append(f"update {label}: {got}, want {want_update}")
            got = c.http("DELETE", url, token, headers=versioned(url), base=base)[0]
            if got != want_delete:
                wrong.append(f"DELETE {label}: {got}, want {want_delete}")
    # Identity: A's project, A's member, A's application credential.
    for what, path in [
        ("project", f"/v3/projects/{world['a']}"),
        ("project tags", f"/v3/projects/{world['a']}/tags"),
        ("user", f"/v3/users/{world['a_member_user']}"),
        ("application credential", f"/v3/users/{world['a_member_user']}/application_credentials/{a_things['app_cred']}"),
        ("credential", f"/v3/credentials/{a_things['credential']}"),
        ("EC2 credential", f"/v3/users/{world['a_member_user']}/credentials/OS-EC2/{a_things['ec2_access']}"),
        ("OAuth1 access token",
         f"/v3/users/{world['a_member_user']}/OS-OAUTH1/access_tokens/{a_things['oauth_access_token']}"),
    ]:
        got = c.http("GET", path, token)[0]
        allowed = actor == "a_reader" and what in ("project", "project tags")
        if (got == 200) != allowed or got >= 500:
            wrong.append(f"GET {what}: {got}")
        got = c.http("DELETE", path, token)[0]
        if got not in (403, 404):
            wrong.append(f"DELETE {what}: {got}")
    # A's private flavor, and the flavor of A's flavor:instance reservation: A's reader
    # sees them (listed and by id), B's people do not, and nobody here boots with them.
    compute = c.compute_url + "/v2.1"
    flavors = c.http("GET", "/flavors/detail", token, base=compute)[2]["flavors"]
    for flavor in ("iso-a", a_things["reservation_flavor"]):
        got = c.http("GET", f"/flavors/{flavor}", token, base=compute)[0]
        listed = any(f["id"] == flavor for f in flavors)
        if (got == 200, listed) != ((actor == "a_reader"),) * 2:
            wrong.append(f"private flavor {flavor}: GET {got}, listed {listed}")
        boot = {"server": {"name": "x", "flavorRef": flavor, "imageRef": world["public_image"], "networks": "none"}}
        got = c.http("POST", "/servers", token, boot, base=compute, headers={"X-OpenStack-Nova-API-Version": "2.37"})[0]
        if got != (403 if actor.endswith("reader") else 400):
            wrong.append(f"boot with private flavor {flavor}: {got}")
    # B cannot reserve instances of A's private flavor (a cross-reference).
    if actor.startswith("b_"):
        body = {"name": "b-steal", "start_date": "now", "end_date": "2099-01-01 00:00", "events": [],
                "reservations": [{"resource_type": "flavor:instance", "flavor_id": "iso-a", "amount": 1}]}
        got = c.http("POST", "/v1/leases", token, body, base=c.reservation_url)[0]
        if got != (400 if actor == "b_member" else 403):
            wrong.append(f"flavor:instance lease of A's private flavor: {got}")
    # Keypairs belong to their user: nobody else sees A's member's key.
    got = c.http("GET", f"/os-keypairs/{a_things['keypair']}", token, base=c.compute_url + "/v2.1")[0]
    if got != 404:
        wrong.append(f"GET keypair: {got}")
    # Server actions a reader or another project must not take.
    for action in ({"os-stop": None}, {"reboot": {"type": "SOFT"}}, {"os-getConsoleOutput": {}}, {"lock": None},
                   {"createImage": {"name": "iso-snapshot"}}):
        got = c.http("POST", f"/servers/{a_things['server']}/action", token, action, base=c.compute_url + "/v2.1")[0]
        want = 404 if actor == "b_member" else 403
        if got != want:
            wrong.append(f"action {list(action)[0]}: {got}, want {want}")
    # A's server's tags (2.26) and instance actions: A's reader reads them, B's people
    # find no server; a tag is added or cleared by neither (readers are refused first).
    v226 = {"X-OpenStack-Nova-API-Version": "2.26"}
    server_paths = ("tags", "os-instance-actions", "os-server-password")
    for path in (f"/servers/{a_things['server']}/{p}" for p in server_paths):
        got = c.http("GET", path, token, base=c.compute_url + "/v2.1", headers=v226)[0]
        want = 200 if actor == "a_reader" else 404
        if got != want:
            wrong.append(f"GET {path.rsplit('/', 1)[1]}: {got}, want {want}")
    # Diagnostics are an administrator's: refused to everyone here, whoever's server.
    got = c.http("GET", f"/servers/{a_things['server']}/diagnostics", token, base=c.compute_url + "/v2.1")[0]
    if got != 403:
        wrong.append(f"GET diagnostics: {got}, want 403")
    for method, path in (("PUT", "/tags/iso"), ("DELETE", "/tags"), ("DELETE", "/os-server-password")):
        got = c.http(method, f"/servers/{a_things['server']}{path}", token, base=c.compute_url + "/v2.1",
                     headers=v226)[0]
        want = 404 if actor == "b_member" else 403
        if got != want:
            wrong.append(f"{method} server {path}: {got}, want {want}")
    # Nor attach A's volume to A's server.
    got = c.http("POST", f"/servers/{a_things['server']}/os-volume_attachments", token,
                 {"volumeAttachment": {"volumeId": a_things["volume"]}}, base=c.compute_url + "/v2.1")[0]
    want = 404 if actor == "b_member" else 403
    if got != want:
        wrong.append(f"attach a volume: {got}, want {want}")
    # A's private volume type is found by A's people alone, and given or taken by the
    # admin alone; QoS specs are the admin's.
    V = f"{c.volume_url}/v3/{world[actor[0]]}"
    got = c.http("GET", f"/types/{a_things['volume_type']}", token, base=V)[0]
    want = 200 if actor == "a_reader" else 404
    if got != want:
        wrong.append(f"GET private volume type: {got}, want {want}")
    got = c.http("POST", f"/types/{a_things['volume_type']}/action", token,
                 {"addProjectAccess": {"project": world[actor[0]]}}, base=V)[0]
    if got != 403:
        wrong.append(f"volume type access added: {got}, want 403")
    for path in ["/qos-specs", f"/qos-specs/{a_things['qos']}", f"/types/{a_things['volume_type']}/os-volume-type-access"]:
        got = c.http("GET", path, token, base=V)[0]
        if got != 403:
            wrong.append(f"GET {path}: {got}, want 403")
    # A's volume usage (GB-hours) is A's: named by path or by project_id, it is refused
    # to B; all_tenants from B gives B's own usage, none of A's volumes.
    if actor.startswith("b_"):
        for base, path in [(f"{c.volume_url}/v3/{world['a']}", "/usage"), (V, f"/usage?project_id={world['a']}")]:
            got = c.http("GET", path, token, base=base)[0]
            if got != 403:
                wrong.append(f"GET {path}: {got}, want 403")
        got, _, body = c.http("GET", "/usage?all_tenants=1", token, base=V)
        if got != 200 or "usages" in body or a_things["volume"] in json.dumps(body):
            wrong.append(f"GET /usage?all_tenants=1: {got} {body}")
    else:
        got, _, body = c.http("GET", "/usage", token, base=V)
        if got != 200 or a_things["volume"] not in json.dumps(body):
            wrong.append(f"GET own /usage: {got} {body}")
    # Endpoint filters are the admin's: no project sees or changes what limits its
    # own catalog or another's. Cinder's os-hosts likewise.
    for method, path, body in [
        ("GET", "/v3/OS-EP-FILTER/endpoint_groups", None),
        ("POST", "/v3/OS-EP-FILTER/endpoint_groups", {"endpoint_group": {"name": "x", "filters": {"interface": "public"}}}),
        ("GET", f"/v3/OS-EP-FILTER/projects/{world['a']}/endpoints", None),
        ("GET", f"/v3/OS-EP-FILTER/projects/{world[actor[0]]}/endpoint_groups", None),
        ("GET", "/v3/OS-OAUTH1/consumers", None),
        ("POST", "/v3/OS-OAUTH1/consumers", {"consumer": {"description": "x"}}),
    ]:
        got = c.http(method, path, token, body)[0]
        if got != 403:
            wrong.append(f"{method} {path}: {got}, want 403")
    for path in ["/os-hosts", "/os-hosts/x@file"]:
        got = c.http("GET", path, token, base=V)[0]
        if got != 403:
            wrong.append(f"GET volume {path}: {got}, want 403")
    # Migration records (every project's resizes) are the admin's.
    for path in ["/os-migrations", f"/os-migrations?instance_uuid={a_things['server']}",
                 f"/servers/{a_things['server']}/migrations"]:
        got = c.http("GET", path, token, base=c.compute_url + "/v2.1")[0]
        if got != 403:
            wrong.append(f"GET compute {path}: {got}, want 403")
    # Reservable hosts, their allocations and reservable floating IPs are the admin's alone.
    for path in ["/v1/os-hosts", "/v1/os-hosts/1", "/v1/os-hosts/allocations", "/v1/os-hosts/1/allocation",
                 "/v1/floatingips"]:
        got = c.http("GET", path, token, base=c.reservation_url)[0]
        if got != 403:
            wrong.append(f"GET {path}: {got}, want 403")
    # Hypervisors and their uptime are the admin's; the hardware catalog is off by
    # default (a 404 for everyone, with or without a token).
    hv = world["hv"]
    for path in ["/os-hypervisors", f"/os-hypervisors/{hv}", f"/os-hypervisors/{hv}/uptime",
                 f"/os-hypervisors/{hv}/search", f"/os-hypervisors/{hv}/servers", "/os-services", "/os-hosts",
                 f"/os-hosts/{hv}", f"/os-hosts/{hv}/reboot", "/os-aggregates", "/os-aggregates/1"]:
        got = c.http("GET", path, token, base=c.compute_url + "/v2.1")[0]
        if got != 403:
            wrong.append(f"GET {path}: {got}, want 403")
    # Nor may they take a host out of scheduling, or make aggregates.
    for method, path, body, version in [
        ("PUT", f"/os-services/{hv}", {"status": "disabled"}, "2.53"),
        ("PUT", "/os-services/disable", {"host": hv, "binary": "nova-compute"}, "2.1"),
        ("PUT", f"/os-hosts/{hv}", {"status": "disable"}, "2.1"),
        ("POST", "/os-aggregates", {"aggregate": {"name": "mine"}}, "2.1"),
        ("POST", "/os-aggregates/1/action", {"add_host": {"host": hv}}, "2.1"),
    ]:
        got = http_with(c, method, c.compute_url + "/v2.1" + path, token, body, {"X-OpenStack-Nova-API-Version": version})
        if got != 403:
            wrong.append(f"{method} {path}: {got}, want 403")
    for path in ["/reference/sites.json", "/reference/sites/regionone/clusters/chameleon/nodes.json"]:
        got = c.http("GET", path, None, base=c.reservation_url)[0]
        if got != 404:
            wrong.append(f"GET {path} without a token: {got}, want 404")
    # Bare-metal nodes, ports and drivers likewise: no read, change, power or delete.
    node, port = world["node"], world["bm_port"]
    for method, path, body in [
        ("GET", "/v1/nodes", None), ("GET", "/v1/nodes/detail", None), ("GET", f"/v1/nodes/{node}", None),
        ("GET", f"/v1/nodes/{node}/states", None), ("GET", f"/v1/nodes/{node}/ports", None),
        ("GET", "/v1/ports", None), ("GET", f"/v1/ports/{port}", None), ("GET", "/v1/drivers", None),
        ("GET", f"/v1/ports?node={node}", None), ("GET", f"/v1/nodes?instance_uuid={node}", None),
        ("PATCH", f"/v1/nodes/{node}", [{"op": "add", "path": "/extra/x", "value": "y"}]),
        ("PUT", f"/v1/nodes/{node}/states/power", {"target": "power on"}),
        ("PUT", f"/v1/nodes/{node}/states/provision", {"target": "manage"}),
        ("PUT", f"/v1/nodes/{node}/maintenance", {"reason": "x"}),
        ("POST", "/v1/ports", {"node_uuid": node, "address": "52:54:00:15:0a:02"}),
        ("POST", "/v1/nodes", {"driver": "fake-hardware"}),
        ("DELETE", f"/v1/ports/{port}", None), ("DELETE", f"/v1/nodes/{node}", None),
    ]:
        got = http_with(c, method, c.baremetal_url + path, token, body, None) if method in ("PATCH", "PUT") else \
            c.http(method, path, token, body, base=c.baremetal_url)[0]
        if got != 403:
            wrong.append(f"{method} {path}: {got}, want 403")
    status, _, n = c.http("GET", f"/v1/nodes/{node}", world["admin"], base=c.baremetal_url)
    if status != 200 or n["extra"] or n["provision_state"] != "enroll" or n["maintenance"]:
        wrong.append(f"the node changed: {status} {n}")
    assert not wrong, "\n".join(wrong)


def http_with(c, method, url, token, body, headers):
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    req.add_header("X-Auth-Token", token)
    req.add_header("Content-Type", (headers or {}).get("Content-Type", "application/json"))
    for k, v in (headers or {}).items():
        if k != "Content-Type":
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# List filters a member of B might try, and which of A's ids must never come back.
LISTS = [
    ("network", "/v2.0/networks?{f}", "networks", ["network"]),
    ("network", "/v2.0/subnets?{f}", "subnets", ["subnet"]),
    ("network", "/v2.0/ports?{f}", "ports", ["port"]),
    ("network", "/v2.0/security-groups?{f}", "security_groups", ["security_group"]),
    ("network", "/v2.0/security-group-rules?{f}", "security_group_rules", ["security_group_rule"]),
    ("network", "/v2.0/routers?{f}", "routers", ["router"]),
    ("network", "/v2.0/floatingips?{f}", "floatingips", ["floatingip"]),
    ("network", "/v2.0/subnetpools?{f}", "subnetpools", ["subnetpool"]),
    ("image", "/v2/images?{f}", "images", ["image", "kernel"]),
    ("image", "/v2/metadefs/namespaces?{f}", "namespaces", ["metadef_namespace"]),
    ("compute", "/servers/detail?{f}", "servers", ["server"]),
    ("compute", "/os-server-groups?{f}", "server_groups", ["server_group"]),
    ("volume", "/v3/{proj}/volumes/detail?{f}", "volumes", ["volume"]),
    ("volume", "/v3/{proj}/snapshots/detail?{f}", "snapshots", ["snapshot"]),
    ("volume", "/v3/{proj}/backups/detail?{f}", "backups", ["backup"]),
    ("volume", "/v3/{proj}/groups/detail?{f}", "groups", ["group"]),
    ("volume", "/v3/{proj}/group_snapshots/detail?{f}", "group_snapshots", ["group_snapshot"]),
    ("volume", "/v3/{proj}/os-volume-transfer/detail?{f}", "transfers", ["transfer"]),
    ("volume", "/v3/{proj}/types?{f}", "volume_types", ["volume_type"]),
    ("volume", "/v3/{proj}/attachments/detail?{f}", "attachments", ["attachment"]),
    ("reservation", "/v1/leases?{f}", "leases", ["lease"]),
]
FILTERS = [
    "project_id={a}", "tenant_id={a}", "all_tenants=1", "all_tenants=True", "all_projects=1", "all_projects=true",
    "visibility=private", "visibility=all", "visibility=shared", "member_status=all", "owner={a}",
    "device_id={server}", "router_id={router}", "network_id={network}", "security_group_id={security_group}",
    "port_id={port}",
    # Compute's filter of the servers launched into a reservation is the admin's: from
    # anyone else it is ignored, and the list stays theirs.
    "reservation={reservation}",
]


@pytest.mark.parametrize("actor", ["b_member", "b_reader"])
def test_list_filters_leak_nothing(world, a_things, actor):
    c = world["cloud"]
    leaks = []
    values = dict(a_things, a=world["a"])
    a_ids = {a_things[k] for k in a_things}
    for service, path, key, _ in LISTS:
        for f in FILTERS:
            url = path.format(f=f.format(**values), proj=world["b"])
            status, _, body = c.http("GET", url, world[actor], headers=versioned(url), base=base_of(c, service))
            if status >= 500:
                leaks.append(f"{url}: {status}")
                continue
            if status != 200:
                if status not in (400, 403):
                    leaks.append(f"{url}: {status}")
                continue
            for item in body.get(key, []):
                if (item.get("id") in a_ids or item.get("namespace") in a_ids or item.get("owner") == world["a"]
                        or item.get("project_id") == world["a"] or item.get("tenant_id") == world["a"]
                        or item.get("os-vol-tenant-attr:tenant_id") == world["a"]):
                    leaks.append(f"{url}: {item.get('id')}")
    # Identity lists.
    for path in ["/v3/projects", f"/v3/users?domain_id=default", f"/v3/role_assignments?scope.project.id={world['a']}",
                 f"/v3/users/{world['a_member_user']}/application_credentials", "/v3/credentials",
                 f"/v3/credentials?user_id={world['a_member_user']}", f"/v3/users/{world['a_member_user']}/credentials/OS-EC2",
                 f"/v3/users/{world['a_member_user']}/OS-OAUTH1/access_tokens"]:
        status, _, body = c.http("GET", path, world[actor])
        text = str(body)
        mine = (a_things["app_cred"], a_things["credential"], a_things["ec2_access"], a_things["oauth_access_token"])
        if status == 200 and (world["a"] in text and "role_assignments" in path or any(x in text for x in mine)):
            leaks.append(f"{path}: shows A's")
        if status >= 500:
            leaks.append(f"{path}: {status}")
    assert not leaks, "\n".join(leaks)


def cross_references(w, r):
    """B's own requests that name A's objects: (what, service, method, path, body, allowed answers)."""
    b_net = w["b_net"]
    return [
        ("port on A's network", "network", "POST", "/v2.0/ports", {"port": {"network_id": r["network"]}}, {404}),
        ("port with A's security group", "network", "POST", "/v2.0/ports",
         {"port": {"network_id": b_net, "security_groups": [r["security_group"]]}}, {404}),
        ("port naming A's router as device", "network", "POST", "/v2.0/ports",
         {"port": {"network_id": b_net, "device_owner": "network:router_interface", "device_id": r["router"]}}, {403}),
        ("port naming A's router as device id only", "network", "POST", "/v2.0/ports",
         {"port": {"network_id": b_net, "device_id": r["router"]}}, {403}),
        ("subnet from A's subnet pool", "network", "POST", "/v2.0/subnets",
         {"subnet": {"network_id": b_net, "subnetpool_id": r["subnetpool"], "ip_version": 4}}, {404}),
        ("subnet on A's network", "network", "POST", "/v2.0/subnets",
         {"subnet": {"network_id": r["network"], "cidr": "10.78.0.0/24"}}, {404}),
        ("B's subnet into A's router", "network", "PUT", f"/v2.0/routers/{r['router']}/add_router_interface",
         {"subnet_id": w["b_subnet"]}, {404}),
        ("A's subnet into B's router", "network", "PUT", f"/v2.0/routers/{w['b_router']}/add_router_interface",
         {"subnet_id": r["subnet"]}, {404}),
        ("A's port into B's router", "network", "PUT", f"/v2.0/routers/{w['b_router']}/add_router_interface",
         {"port_id": r["port"]}, {404}),
        ("floating IP onto A's port", "network", "POST", "/v2.0/floatingips",
         {"floatingip": {"floating_network_id": w["public"], "port_id": r["port"]}}, {404}),
        ("rule in A's group", "network", "POST", "/v2.0/security-group-rules",
         {"security_group_rule": {"security_group_id": r["security_group"], "direction": "ingress"}}, {404}),
        ("rule with A's group as remote", "network", "POST", "/v2.0/security-group-rules",
         {"security_group_rule": {"security_group_id": w["b_sg"], "direction": "ingress",
                                  "remote_group_id": r["security_group"]}}, {404}),
        ("server on A's network", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": w["public_image"], "flavorRef": "iso1", "networks": [{"uuid": r["network"]}]}},
         {400, 404}),
        ("server on A's port", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": w["public_image"], "flavorRef": "iso1", "networks": [{"port": r["port"]}]}},
         {400, 404}),
        ("server from A's private image", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": r["image"], "flavorRef": "iso1", "networks": "none"}}, {400, 404}),
        ("server from B's image naming A's kernel", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": w["b_kernel_image"], "flavorRef": "iso1", "networks": "none"}}, {400}),
        ("server with A's keypair", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": w["public_image"], "flavorRef": "iso1", "networks": "none",
                     "key_name": r["keypair"]}}, {400}),
        ("server in A's server group", "compute", "POST", "/servers",
         {"server": {"name": "x", "imageRef": w["public_image"], "flavorRef": "iso1", "networks": "none"},
          "os:scheduler_hints": {"group": r["server_group"]}}, {400, 404}),
        ("interface onto A's port", "compute", "POST", f"/servers/{w['b_server']}/os-interface",
         {"interfaceAttachment": {"port_id": r["port"]}}, {400, 404}),
        ("interface onto A's network", "compute", "POST", f"/servers/{w['b_server']}/os-interface",
         {"interfaceAttachment": {"net_id": r["network"]}}, {400, 404}),
        ("A's volume onto B's server", "compute", "POST", f"/servers/{w['b_server']}/os-volume_attachments",
         {"volumeAttachment": {"volumeId": r["volume"]}}, {404}),
        ("B's volume onto A's server", "compute", "POST", f"/servers/{r['server']}/os-volume_attachments",
         {"volumeAttachment": {"volumeId": w["b_volume"]}}, {404}),
        ("A's server's volumes listed", "compute", "GET", f"/servers/{r['server']}/os-volume_attachments", None, {404}),
        ("A's volume detached from A's server", "compute", "DELETE",
         f"/servers/{r['server']}/os-volume_attachments/{r['volume']}", None, {404}),
        ("A's volume reserved through B's URL", "volume", "POST", f"/v3/{w['b']}/volumes/{r['volume']}/action",
         {"os-reserve": {"instance_uuid": w["b_server"]}}, {404}),
        ("an attachment of A's volume through B's URL", "volume", "POST", f"/v3/{w['b']}/attachments",
         {"attachment": {"volume_uuid": r["volume"], "instance_uuid": w["b_server"]}}, {404}),
        ("A's image shared by B", "image", "POST", f"/v2/images/{r['image']}/members", {"member": w["b"]}, {404}),
        ("volume from A's snapshot", "volume", "POST", f"/v3/{w['b']}/volumes",
         {"volume": {"snapshot_id": r["snapshot"]}}, {404}),
        ("volume copying A's volume", "volume", "POST", f"/v3/{w['b']}/volumes",
         {"volume": {"source_volid": r["volume"], "size": 1}}, {404}),
        ("snapshot of A's volume", "volume", "POST", f"/v3/{w['b']}/snapshots", {"snapshot": {"volume_id": r["volume"]}}, {404}),
        ("backup of A's volume", "volume", "POST", f"/v3/{w['b']}/backups", {"backup": {"volume_id": r["volume"]}}, {404}),
        ("a snapshot of A's group", "volume", "POST", f"/v3/{w['b']}/group_snapshots",
         {"group_snapshot": {"group_id": r["group"]}}, {404}),
        ("a group from A's group snapshot", "volume", "POST", f"/v3/{w['b']}/groups/action",
         {"create-from-src": {"group_snapshot_id": r["group_snapshot"]}}, {404}),
        ("a volume in A's group", "volume", "POST", f"/v3/{w['b']}/volumes", {"volume": {"size": 1, "group_id": r["group"]}},
         {404}),
        ("A's group changed through B's URL", "volume", "PUT", f"/v3/{w['b']}/groups/{r['group']}",
         {"group": {"name": "mine"}}, {404}),
        ("A's group deleted through B's URL", "volume", "POST", f"/v3/{w['b']}/groups/{r['group']}/action",
         {"delete": {"delete-volumes": True}}, {404}),
        ("A's backup restored into B's volume", "volume", "POST", f"/v3/{w['b']}/backups/{r['backup']}/restore",
         {"restore": {"volume_id": w["b_volume"]}}, {404}),
        ("A's backup restored into a new volume of B's", "volume", "POST", f"/v3/{w['b']}/backups/{r['backup']}/restore",
         {"restore": {"name": "stolen"}}, {404}),
        ("A's project in B's volume URL", "volume", "GET", f"/v3/{w['a']}/volumes/{r['volume']}", None, {403}),
        ("volume from A's private image", "volume", "POST", f"/v3/{w['b']}/volumes",
         {"volume": {"imageRef": r["image"], "size": 1}}, {404}),
        ("A's transfer accepted with a guessed key", "volume", "POST",
         f"/v3/{w['b']}/os-volume-transfer/{r['transfer']}/accept", {"accept": {"auth_key": "0123456789abcdef"}}, {400}),
        ("a credential in A's member's name", "identity", "POST", "/v3/credentials",
         {"credential": {"type": "totp", "user_id": w["a_member_user"], "blob": "B"}}, {403}),
        ("B's EC2 credential on A's project", "identity", "POST", f"/v3/users/{w['b_member_user']}/credentials/OS-EC2",
         {"tenant_id": w["a"]}, {403}),
        ("an EC2 credential for A's member", "identity", "POST", f"/v3/users/{w['a_member_user']}/credentials/OS-EC2",
         {"tenant_id": w["b"]}, {404}),
        ("a request token for A's project authorised by B", "identity", "PUT",
         f"/v3/OS-OAUTH1/authorize/{r['oauth_request_token']}", {"roles": [{"name": "member"}]}, {401}),
        ("A's reservation resized through B's lease", "reservation", "PUT", f"/v1/leases/{w['b_lease']}",
         {"reservations": [{"id": r["reservation"], "max": 2}]}, {404}),
    ]


def test_cross_references_are_refused_and_change_nothing(world, a_things):
    c, t = world["cloud"], world["b_member"]
    N, C = c.network_url, c.compute_url + "/v2.1"
    # B's own things to name A's from.
    world["b_net"] = c.http("POST", "/v2.0/networks", t, {"network": {"name": "b-net"}}, base=N)[2]["network"]["id"]
    world["b_subnet"] = c.http("POST", "/v2.0/subnets", t, {"subnet": {"network_id": world["b_net"], "cidr": "10.79.0.0/24"}},
                               base=N)[2]["subnet"]["id"]
    world["b_router"] = c.http("POST", "/v2.0/routers", t, {"router": {"name": "b-router"}}, base=N)[2]["router"]["id"]
    world["b_sg"] = c.http("POST", "/v2.0/security-groups", t, {"security_group": {"name": "b-sg"}}, base=N)[2]["security_group"]["id"]
    world["b_kernel_image"] = image(c, t, "b-disk", kernel_id=a_things["kernel"])
    s = c.http("POST", "/servers", t, {"server": {"name": "b-vm", "imageRef": world["public_image"], "flavorRef": "iso1",
                                                  "networks": [{"uuid": world["b_net"]}]}}, base=C)
    world["b_server"] = active_server(c, t, s)
    V = f"{c.volume_url}/v3/{world['b']}"
    world["b_volume"] = settled(c, t, f"{V}/volumes",
                                c.http("POST", "/volumes", t, {"volume": {"size": 1, "name": "b-vol"}}, base=V), "volume")
    world["b_lease"], _ = lease(c, t, "b-lease", days=20)
    servers_before = len(c.http("GET", "/servers", t, base=C)[2]["servers"])
    wrong = []
    for what, service, method, path, body, allowed in cross_references(world, a_things):
        status, _, answer = c.http(method, path, t, body, headers=versioned(path), base=base_of(c, service))
        if status not in allowed:
            wrong.append(f"{what}: {status}, want {sorted(allowed)}: {answer}")
    assert not wrong, "\n".join(wrong)
    # Nothing changed: B made no server, A's things are as they were.
    assert len(c.http("GET", "/servers", t, base=C)[2]["servers"]) == servers_before
    a = world["a_member"]
    port = c.http("GET", f"/v2.0/ports/{a_things['port']}", a, base=N)[2]["port"]
    assert port["name"] == "a-port" and port["device_id"] == "", port
    router_ports = c.http("GET", f"/v2.0/ports?device_id={a_things['router']}", a, base=N)[2]["ports"]
    assert [p["network_id"] for p in router_ports if p["device_owner"] == "network:router_interface"] == [a_things["network"]]
    fip = c.http("GET", f"/v2.0/floatingips/{a_things['floatingip']}", a, base=N)[2]["floatingip"]
    assert fip["port_id"] == a_things["port"], fip
    assert c.http("GET", f"/v2/images/{a_things['image']}/members", a, base=c.image_url)[2]["members"] == []
    vol = c.http("GET", f"/volumes/{a_things['volume']}", a, base=f"{c.volume_url}/v3/{world['a']}")[2]["volume"]
    assert (vol["status"], vol["attachments"]) == ("available", []), vol
    held = c.http("GET", f"/v1/leases/{a_things['lease']}", a, base=c.reservation_url)[2]["lease"]
    assert held["reservations"][0]["max"] == 1, held
    group = c.http("GET", f"/groups/{a_things['group']}", a, headers=versioned("/groups"),
                   base=f"{c.volume_url}/v3/{world['a']}")[2]["group"]
    assert (group["name"], group["status"]) == ("a-group", "available"), group
    # A can still delete its router once its own interface is gone (nothing of B's holds it).
    c.http("PUT", f"/v2.0/floatingips/{a_things['floatingip']}", a, {"floatingip": {"port_id": None}}, base=N)
    status = c.http("PUT", f"/v2.0/routers/{a_things['router']}/remove_router_interface", a,
                    {"subnet_id": a_things["subnet"]}, base=N)[0]
    assert status == 200
    assert c.http("DELETE", f"/v2.0/routers/{a_things['router']}", a, base=N)[0] == 204
