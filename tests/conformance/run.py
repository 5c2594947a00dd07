#!/usr/bin/env python3
"""OpenStack conformance: Tempest's API suites and the interop guideline's required tests
against a freshly started `stratusd all-in-one`.

    .venv-tempest/bin/python tests/conformance/run.py [--suite identity ...] [--concurrency N]

Starts the cloud (fake compute and network drivers: the API is under test here, the
data plane has its own tests), makes what Tempest expects an operator to have made (two
images, two flavors, an external network), discovers microversions and extensions from
the cloud, writes `tempest.conf` with every feature the project claims turned on, runs
the selected suites with stestr and compares the outcome with `expected-failures.txt`.
A failure not listed there, or a listed test that now passes, fails the run. The summary
per suite goes to stdout and, as Markdown, to `<work dir>/summary.md`.
"""

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from cloud import ADMIN_PASSWORD, Cloud  # noqa: E402

SUITES = {
    "identity": r"tempest\.api\.identity\.",
    "image": r"tempest\.api\.image\.",
    "network": r"tempest\.api\.network\.",
    "compute": r"tempest\.api\.compute\.",
    "volume": r"tempest\.api\.volume\.",
}
INTEROP = os.path.join(HERE, "interop-2020.06-compute.tsv")
EXPECTED = os.path.join(HERE, "expected-failures.txt")
IDEMPOTENT_ID = re.compile(r"id-([0-9a-f-]{36})")


# --- the cloud and what an operator would have made -------------------------------------


class Admin:
    """Admin calls to the cloud's APIs, with a project-scoped token."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.token = cloud.password_token()

    def call(self, method, base, path, body=None, expect=(200, 201, 202, 204)):
        status, _, data = self.cloud.http(method, path, token=self.token, body=body, base=base)
        if status not in expect:
            raise RuntimeError(f"{method} {base}{path} answered {status}: {data}")
        return data

    def upload_image(self, name, path, disk_format):
        c = self.cloud
        image = self.call(
            "POST",
            c.image_url,
            "/v2/images",
            {"name": name, "disk_format": disk_format, "container_format": "bare", "visibility": "public"},
        )
        with open(path, "rb") as f:
            req = urllib.request.Request(f"{c.image_url}/v2/images/{image['id']}/file", data=f.read(), method="PUT")
        req.add_header("X-Auth-Token", self.token)
        req.add_header("Content-Type", "application/octet-stream")
        urllib.request.urlopen(req, timeout=60).read()
        return image["id"]


def prepare(cloud, work):
    """What Tempest's configuration refers to: images, flavors, the external network, the
    cloud's microversions and extensions. Returns the values tempest.conf needs."""
    admin = Admin(cloud)
    disk = os.path.join(work, "guest.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1G"], check=True)
    images = [admin.upload_image(name, disk, "qcow2") for name in ("cirros-a", "cirros-b")]
    flavors = []
    for fid, name, ram, disk_gb in (("42", "m1.nano", 128, 1), ("84", "m1.micro", 192, 2)):
        body = {"flavor": {"id": fid, "name": name, "vcpus": 1, "ram": ram, "disk": disk_gb}}
        flavors.append(admin.call("POST", cloud.compute_url, "/v2.1/flavors", body)["flavor"]["id"])
    net = admin.call(
        "POST", cloud.network_url, "/v2.0/networks", {"network": {"name": "public", "router:external": True}}
    )["network"]
    admin.call(
        "POST",
        cloud.network_url,
        "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "172.24.4.0/24", "ip_version": 4, "name": "public-subnet"}},
    )
    compute = admin.call("GET", cloud.compute_url, "/v2.1")["version"]
    volume = admin.call("GET", cloud.volume_url, "/v3/")
    volume = volume.get("version") or volume["versions"][0]
    extensions = admin.call("GET", cloud.network_url, "/v2.0/extensions")["extensions"]
    project = admin.call("GET", cloud.url, "/v3/auth/projects")["projects"]
    admin_project = next(p["id"] for p in project if p["name"] == "admin")
    volume_extensions = admin.call("GET", cloud.volume_url, f"/v3/{admin_project}/extensions")["extensions"]
    # The volume type of multiattach volumes (Tempest's `volume_type_multiattach`).
    admin.call(
        "POST",
        cloud.volume_url,
        f"/v3/{admin_project}/types",
        {"volume_type": {"name": "multiattach", "extra_specs": {"multiattach": "<is> True"}}},
    )
    # What the backend says of itself, which volume types' extra specs are matched to.
    pool = admin.call("GET", cloud.volume_url, f"/v3/{admin_project}/scheduler-stats/get_pools?detail=True")["pools"][0]
    return {
        "storage_protocol": pool["capabilities"]["storage_protocol"],
        "vendor_name": pool["capabilities"]["vendor_name"],
        "images": images,
        "flavors": flavors,
        "public_network": net["id"],
        "compute_max": compute["version"],
        "volume_max": volume.get("version") or "3.0",
        "network_extensions": sorted(e["alias"] for e in extensions),
        "volume_extensions": sorted(e["alias"] for e in volume_extensions),
    }


def tempest_conf(cloud, found, work):
    """tempest.conf: every feature Stratus claims is on; what it does not offer is off and
    listed in docs/conformance.md with the reason."""
    return f"""[DEFAULT]
log_file = {work}/tempest.log
debug = false

[oslo_concurrency]
lock_path = {work}/locks

[auth]
use_dynamic_credentials = true
create_isolated_networks = true
admin_username = admin
admin_password = {ADMIN_PASSWORD}
admin_project_name = admin
admin_domain_name = Default
admin_system = false

[identity]
uri_v3 = {cloud.auth_url}
auth_version = v3
region = RegionOne
v3_endpoint_type = public
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false
api_v2_admin = false
trust = false
application_credentials = true
access_rules = false
project_tags = true
domain_specific_drivers = false
security_compliance = false
immutable_user_source = false

[compute]
image_ref = {found["images"][0]}
image_ref_alt = {found["images"][1]}
flavor_ref = {found["flavors"][0]}
flavor_ref_alt = {found["flavors"][1]}
min_microversion = 2.1
max_microversion = {found["compute_max"]}
build_interval = 1
build_timeout = 120
region = RegionOne
endpoint_type = publicURL

[compute-feature-enabled]
resize = true
pause = true
console_output = true
interface_attach = true
enable_instance_password = true
change_password = false
snapshot = true
suspend = false
shelve = false
shelve_migrate = false
rescue = false
cold_migration = false
live_migration = false
metadata_service = true
config_drive = true
personality = false
attach_encrypted_volume = false
vnc_console = false
serial_console = false
spice_console = false
rdp_console = false
swap_volume = false
volume_multiattach = true
hostname_fqdn_sanitization = true

[image]
region = RegionOne
endpoint_type = publicURL
build_interval = 1
build_timeout = 120

[image-feature-enabled]
api_v2 = true
api_v1 = false
import_image = false
os_glance_reserved = true

[network]
region = RegionOne
endpoint_type = publicURL
public_network_id = {found["public_network"]}
floating_network_name = public
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_networks_reachable = false
build_interval = 1
build_timeout = 120

[network-feature-enabled]
api_extensions = {",".join(found["network_extensions"])}
ipv6 = true
ipv6_subnet_attributes = true
port_security = true
floating_ips = true

[volume]
region = RegionOne
endpoint_type = publicURL
catalog_type = block-storage
min_microversion = 3.0
max_microversion = {found["volume_max"]}
build_interval = 1
build_timeout = 120
storage_protocol = {found["storage_protocol"]}
volume_type_multiattach = multiattach
vendor_name = {found["vendor_name"]}

[volume-feature-enabled]
api_extensions = {",".join(found["volume_extensions"])}
backup = true
snapshot = true
clone = true
manage_snapshot = false
manage_volume = false
extend_attached_volume = true
multi_backend = false

[service_available]
cinder = true
neutron = true
glance = true
nova = true
swift = false
horizon = false

[validation]
run_validation = false
"""


# --- running Tempest ---------------------------------------------------------------------


def interop_tests():
    """The interop guideline's required tests: [(capability, path, idempotent id)]."""
    out = []
    with open(INTEROP) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            capability, path, uuid = line.rstrip("\n").split("\t")
            out.append((capability, path, uuid.removeprefix("id-")))
    return out


def strip_attrs(test_id):
    return test_id.split("[", 1)[0]


def class_of(test_id):
    return strip_attrs(test_id).rsplit(".", 1)[0]


def stestr(work, venv_bin, *args, log=None):
    """Runs stestr in the workspace; its output is captured, or written to `log`."""
    env = dict(os.environ, TEMPEST_CONFIG_DIR=os.path.join(work, "etc"), TEMPEST_CONFIG="tempest.conf")
    cmd = [os.path.join(venv_bin, "stestr"), *args]
    if log:
        with open(log, "w") as out:
            return subprocess.run(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)


def list_selected(work, include_file):
    venv_bin = os.path.dirname(sys.executable)
    listed = stestr(work, venv_bin, "list", "--include-list", include_file)
    if listed.returncode != 0:
        raise RuntimeError("stestr list failed:\n" + listed.stdout[-3000:] + listed.stderr[-3000:])
    return [line for line in listed.stdout.splitlines() if line.startswith("tempest.")]


def run_tempest(work, suites, concurrency):
    venv_bin = os.path.dirname(sys.executable)
    import tempest

    site = os.path.dirname(os.path.dirname(os.path.abspath(tempest.__file__)))
    with open(os.path.join(work, ".stestr.conf"), "w") as f:
        f.write(f"[DEFAULT]\ntest_path={site}/tempest/test_discover\ntop_dir={site}\ngroup_regex=([^\\.]*\\.)*\n")
    shutil.rmtree(os.path.join(work, ".stestr"), ignore_errors=True)
    stestr(work, venv_bin, "init")
    include = [SUITES[s] for s in suites]
    include += [r"\[.*" + re.escape("id-" + uuid) for _, _, uuid in interop_tests()]
    include_file = os.path.join(work, "include.txt")
    with open(include_file, "w") as f:
        f.write("\n".join(include) + "\n")
    selected = list_selected(work, include_file)
    print(f"== tempest: {len(selected)} tests selected, concurrency {concurrency}", flush=True)
    started = time.monotonic()
    log = os.path.join(work, "tempest-run.log")
    stestr(work, venv_bin, "run", "--include-list", include_file, "--concurrency", str(concurrency), log=log)
    print(f"== tempest ran in {time.monotonic() - started:.0f} s (its output: {log})", flush=True)
    return selected, read_results(work)


def read_results(work):
    """{test id: status} of the last run in the workspace."""
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, TEMPEST_CONFIG_DIR=os.path.join(work, "etc"))
    raw = subprocess.run(
        [os.path.join(venv_bin, "stestr"), "last", "--subunit"], cwd=work, env=env, capture_output=True
    ).stdout
    csv_out = subprocess.run(
        [os.path.join(venv_bin, "subunit2csv"), "--no-passthrough"], input=raw, capture_output=True
    )
    results = {}
    for row in csv.DictReader(io.StringIO(csv_out.stdout.decode("utf-8", "replace"))):
        results[row["test"]] = row["status"]
    return results


# --- judging -------------------------------------------------------------------------


def outcome_of(test_id, results, class_results):
    """A test's outcome: its own, or its class's when setUpClass failed or skipped."""
    if test_id in results:
        return results[test_id]
    return class_results.get(class_of(test_id), "not run")


def normalise(status):
    return {"success": "pass", "xfail": "pass", "fail": "fail", "failure": "fail", "error": "fail", "uxsuccess": "fail", "skip": "skip"}.get(
        status, status
    )


def judge(selected, results, suites):
    class_results = {}
    for test, status in results.items():
        m = re.match(r"(?:setUpClass|tearDownClass) \((.+)\)", test)
        if m and normalise(status) in ("fail", "skip"):
            class_results.setdefault(m.group(1), status)
    outcomes = {t: normalise(outcome_of(t, results, class_results)) for t in selected}
    # A class whose fixtures failed is one failure per test in it.
    table = []
    for suite in suites:
        prefix = SUITES[suite].replace("\\", "")
        rows = [o for t, o in outcomes.items() if t.startswith(prefix)]
        table.append((f"tempest.api.{suite}", rows))
    by_uuid = {}
    for t, o in outcomes.items():
        for uuid in IDEMPOTENT_ID.findall(t):
            by_uuid[uuid] = o
    interop = [by_uuid.get(uuid, "not found") for _, _, uuid in interop_tests()]
    table.append(("interop 2020.06 required", interop))
    return outcomes, table


def read_expected():
    """{test id: reason}. A `## reason` line gives the reason of the test lines after
    it; a test line may instead carry its own (`test.id  # reason`)."""
    expected = {}
    reason = None
    with open(EXPECTED) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("## "):
                reason = line[3:].strip()
                continue
            if not line or line.startswith("#"):
                continue
            test, _, own = line.partition("#")
            why = own.strip() or reason
            if not why:
                raise SystemExit(f"expected-failures.txt:{n}: no reason given for {test.strip()}")
            expected[test.strip()] = why
    return expected


def summary_markdown(table):
    lines = ["| suite | tests | passed | failed | skipped | not run |", "|---|---|---|---|---|---|"]
    for name, rows in table:
        count = {k: rows.count(k) for k in ("pass", "fail", "skip")}
        missing = len(rows) - sum(count.values())
        lines.append(f"| {name} | {len(rows)} | {count['pass']} | {count['fail']} | {count['skip']} | {missing} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: every suite")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("CONFORMANCE_CONCURRENCY", "4")))
    parser.add_argument("--work-dir", help="keep Tempest's workspace, logs and results here")
    parser.add_argument("--keep", action="store_true", help="leave the cloud's data directory in place")
    parser.add_argument("--judge", action="store_true", help="only judge the last run kept in --work-dir")
    args = parser.parse_args()
    suites = args.suite or list(SUITES)
    if args.judge:
        selected = list_selected(args.work_dir, os.path.join(args.work_dir, "include.txt"))
        return report(args.work_dir, suites, selected, read_results(args.work_dir))

    work = args.work_dir or tempfile.mkdtemp(prefix="stratus-conformance-")
    os.makedirs(os.path.join(work, "etc"), exist_ok=True)
    os.makedirs(os.path.join(work, "locks"), exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="stratus-conformance-cloud-")
    cloud = Cloud(
        "sqlite",
        data_dir,
        extra_env={"STRATUS_NETWORK__DRIVER": "fake", "STRATUS_VOLUME__DRIVER": "file"},
    )
    try:
        found = prepare(cloud, work)
        with open(os.path.join(work, "etc", "tempest.conf"), "w") as f:
            f.write(tempest_conf(cloud, found, work))
        selected, results = run_tempest(work, suites, args.concurrency)
        mismatches = []
        if "compute" in suites or "volume" in suites:
            from schemas import sweep

            mismatches = sweep(cloud, found, ADMIN_PASSWORD)
    finally:
        cloud.stop()
        shutil.copy(cloud.log.name, os.path.join(work, "stratusd.log"))
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    return report(work, suites, selected, results, mismatches)


def report(work, suites, selected, results, mismatches=()):
    outcomes, table = judge(selected, results, suites)
    summary = summary_markdown(table)
    with open(os.path.join(work, "summary.md"), "w") as f:
        f.write(summary)
    with open(os.path.join(work, "outcomes.json"), "w") as f:
        json.dump(outcomes, f, indent=1, sort_keys=True)
    print(summary)

    expected = read_expected()
    failed = {strip_attrs(t) for t, o in outcomes.items() if o == "fail"}
    passed = {strip_attrs(t) for t, o in outcomes.items() if o == "pass"}
    ran_suites = tuple(SUITES[s].replace("\\", "") for s in suites)
    new = sorted(t for t in failed if t not in expected)
    fixed = sorted(t for t in expected if t in passed and t.startswith(ran_suites))
    for t in new:
        print(f"NEW FAILURE  {t}")
    for t in fixed:
        print(f"NOW PASSES   {t}  (remove it from expected-failures.txt)")
    for m in mismatches:
        print(f"SCHEMA MISMATCH  {m}")
    print(f"== work dir: {work}")
    if mismatches:
        print(f"== conformance: {len(mismatches)} responses do not match Tempest's schema for their microversion")
        return 1
    if new or fixed:
        print(f"== conformance: {len(new)} new failures, {len(fixed)} listed tests now pass")
        return 1
    print(f"== conformance: as expected ({len(failed)} listed failures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
