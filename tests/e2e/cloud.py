"""A running `stratusd` and how to reach it, without pytest: the end-to-end fixtures
(conftest.py), the benchmarks and the conformance run (tests/conformance) share it."""

import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

STRATUSD = os.environ.get("STRATUSD", "target/debug/stratusd")
OPENSTACK = os.environ.get("OPENSTACK", "openstack")
ADMIN_PASSWORD = "e2e-admin-pw"
PG_BASE = "postgres://postgres@127.0.0.1:5432/test"


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_HANDED_OUT = set()


def free_port():
    """A port no one listens on, picked at random below the kernel's ephemeral range:
    a port the kernel handed out (bind to 0) can be taken by any outgoing connection
    (Tempest beside the end-to-end tests makes thousands) before stratusd binds it.
    Never one handed out before by this process: a cloud picks all its ports before
    its services bind them, so a port picked twice would be free both times."""
    low, _ = _ephemeral_range()
    bottom, top = 10000, (low - 1 if low > 11000 else 65535)
    # Suites run side by side pick from ranges of their own (the test command sets it).
    if os.environ.get("STRATUS_E2E_PORTS"):
        a, b = (int(x) for x in os.environ["STRATUS_E2E_PORTS"].split("-"))
        bottom, top = max(bottom, a), min(top, b)
    for _ in range(200):
        port = random.randint(bottom, top)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port found")


def new_pg_schema():
    schema = "e2e_" + uuid.uuid4().hex
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"CREATE SCHEMA {schema}"],
        check=True,
    )
    return f"{PG_BASE}?options=-c%20search_path%3D{schema}"


class Cloud:
    """A running stratusd process and how to reach it."""

    def __init__(self, backend, data_dir, extra_env=None, command="all-in-one", db_url=None, bus_url=None):
        self.backend = backend
        self.data_dir = data_dir
        self.port = free_port()
        self.image_port = free_port()
        self.network_port = free_port()
        self.compute_port = free_port()
        self.metadata_port = free_port()
        self.volume_port = free_port()
        self.reservation_port = free_port()
        self.baremetal_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.image_url = f"http://127.0.0.1:{self.image_port}"
        self.network_url = f"http://127.0.0.1:{self.network_port}"
        self.compute_url = f"http://127.0.0.1:{self.compute_port}"
        self.volume_url = f"http://127.0.0.1:{self.volume_port}"
        self.reservation_url = f"http://127.0.0.1:{self.reservation_port}"
        self.baremetal_url = f"http://127.0.0.1:{self.baremetal_port}"
        self.auth_url = f"{self.url}/v3"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            {
                "STRATUS_SERVER__DATA_DIR": data_dir,
                "STRATUS_IDENTITY__PORT": str(self.port),
                "STRATUS_IMAGE__PORT": str(self.image_port),
                "STRATUS_NETWORK__PORT": str(self.network_port),
                "STRATUS_COMPUTE__PORT": str(self.compute_port),
                "STRATUS_COMPUTE__METADATA_PORT": str(self.metadata_port),
                "STRATUS_VOLUME__PORT": str(self.volume_port),
                "STRATUS_RESERVATION__PORT": str(self.reservation_port),
                "STRATUS_BAREMETAL__PORT": str(self.baremetal_port),
                "STRATUS_IDENTITY__REFRESH_SECS": "1",
                "STRATUS_LOG__LEVEL": "warn",
                # One agent per kernel at a time: the data-plane tests start their own.
                "STRATUS_NETWORK_AGENT__ENABLED": "false",
                # Where an agent inside finds the metadata API (its port is a test port).
                "STRATUS_NETWORK_AGENT__METADATA_URL": f"http://127.0.0.1:{self.metadata_port}",
                # In-memory guests unless a test asks for real ones (libvirt).
                "STRATUS_COMPUTE_AGENT__DRIVER": "fake",
            }
        )
        if db_url:
            env["STRATUS_DATABASE__URL"] = db_url
        if bus_url:
            env["STRATUS_BUS__URL"] = bus_url
        env.update(extra_env or {})
        # A test that must know the bare-metal port before the cloud starts picks it.
        if "STRATUS_BAREMETAL__PORT" in env:
            self.baremetal_port = int(env["STRATUS_BAREMETAL__PORT"])
            self.baremetal_url = f"http://127.0.0.1:{self.baremetal_port}"
        self.env = env
        self.region = env.get("STRATUS_IDENTITY__REGION", "RegionOne")
        self.db_url = db_url
        self.command = command
        self.log = open(os.path.join(data_dir, f"stratusd-{self.port}.log"), "w")
        self.start()

    def start(self):
        args = [STRATUSD, self.command]
        if self.command == "all-in-one":
            args += ["--admin-password", ADMIN_PASSWORD]
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        if self.command not in ("image", "network"):
            self.wait_ready()
        if self.command == "all-in-one":
            self.wait_ready(url=self.image_url + "/versions")
            self.wait_ready(url=self.network_url + "/")
            self.wait_ready(url=self.compute_url + "/v2.1")
            self.wait_ready(url=self.volume_url + "/v3/")
            self.wait_ready(url=self.reservation_url + "/v1/")
            self.wait_ready(url=self.baremetal_url + "/v1/")

    def kill9(self):
        """Kills the process as a crash would (no shutdown at all)."""
        self.proc.kill()
        self.proc.wait()

    def restart(self):
        """Starts the process again on the same ports, database and data directory."""
        if self.proc.poll() is None:
            self.kill9()
        self.start()

    def wait_ready(self, timeout=60, url=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stratusd exited with {self.proc.returncode}: {self.read_log()}")
            try:
                urllib.request.urlopen(url or (self.url + "/v3"), timeout=1)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError("stratusd did not start: " + self.read_log())

    def read_log(self):
        self.log.flush()
        with open(self.log.name) as f:
            text = f.read()
        # An error from main is printed before its backtrace: keep the error.
        head, sep, _ = text.partition("Stack backtrace:")
        if sep:
            return head[-4000:] + "(backtrace left out)"
        return text[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    # --- clients -------------------------------------------------------------------

    def admin_env(self):
        """The admin credentials as a user gets them: the clouds.yaml bootstrap wrote."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = os.path.join(self.data_dir, "clouds.yaml")
        env["OS_CLOUD"] = "stratus"
        return env

    def user_env(self, user, password, project, domain="Default"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            {
                "OS_AUTH_URL": self.auth_url,
                "OS_USERNAME": user,
                "OS_PASSWORD": password,
                "OS_PROJECT_NAME": project,
                "OS_USER_DOMAIN_NAME": domain,
                "OS_PROJECT_DOMAIN_NAME": domain,
                "OS_IDENTITY_API_VERSION": "3",
                "OS_REGION_NAME": self.region,
            }
        )
        return env

    def osc(self, *args, env=None, check=True, fmt_json=None, stdin=None):
        """Runs `openstack ARGS`; with JSON output for commands that print something."""
        args = list(args)
        if fmt_json is None:
            verbs = [a for a in args if a in VERBS]
            fmt_json = bool(verbs) and verbs[0] in ("create", "list", "show", "issue")
        cmd = [OPENSTACK] + args + (["-f", "json"] if fmt_json else [])
        if stdin is not None:
            with open(stdin, "rb") as f:
                p = subprocess.run(cmd, env=env or self.admin_env(), stdin=f, capture_output=True, timeout=300)
            p = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())
        else:
            p = subprocess.run(
                cmd, env=env or self.admin_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
            )
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}\n{p.stdout}")
        if not check:
            return p
        return json.loads(p.stdout) if fmt_json and p.stdout.strip() else p.stdout

    def http(self, method, path, token=None, body=None, headers=None, base=None):
        """A raw HTTP call; returns (status, headers, json or None)."""
        req = urllib.request.Request((base or self.url) + path, method=method)
        if token:
            req.add_header("X-Auth-Token", token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data=data, timeout=10) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode()
            return e.code, dict(e.headers), parsed

    def sql(self, statement):
        """Runs one SQL statement on the cloud's database behind the API's back: how a
        test puts in a row the API would refuse (written by an older version, say)."""
        if self.db_url:
            schema = self.db_url.split("search_path%3D")[1]
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qc",
                 f"SET search_path TO {schema}; {statement}"],
                check=True, capture_output=True,
            )
        else:
            import sqlite3

            db = sqlite3.connect(os.path.join(self.data_dir, "stratus.sqlite"), timeout=10)
            with db:
                db.execute(statement)
            db.close()

    def member_env(self, name):
        """A new project with a member user; returns (project id, env)."""
        project = self.osc("project", "create", name)
        self.osc("user", "create", "--password", "pw", name)
        self.osc("role", "add", "--project", name, "--user", name, "member")
        return project["id"], self.user_env(name, "pw", name)

    def password_token(self, user="admin", password=ADMIN_PASSWORD, project="admin"):
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}},
                },
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
            }
        }
        status, headers, _ = self.http("POST", "/v3/auth/tokens?nocatalog", body=body)
        assert status == 201, status
        return headers.get("X-Subject-Token") or headers.get("x-subject-token")


VERBS = {"create", "list", "show", "issue", "set", "unset", "delete", "add", "remove", "revoke", "contains"}
