#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Rust tests (unit, in-process API tests on
# SQLite and PostgreSQL, bus tests on the in-process bus and real NATS), and the
# end-to-end tests that start the real `stratusd` and drive it with the real OpenStack
# clients on SQLite + in-process bus and on PostgreSQL + NATS, and OpenStack's own test
# suite (Tempest) judged against tests/conformance/expected-failures.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
source ./scripts/services.sh
ensure_services

# A full run needs several GiB of disk (the Rust test binaries, guest images): say what
# there is, so a run that fills the disk is recognised as such.
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free"
echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== rust tests"
if pg_up; then
    export STRATUS_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432/test"
    drop_test_schemas
else
    echo "PostgreSQL is not reachable: Rust tests run on SQLite only" >&2
fi
if nats_up; then export STRATUS_TEST_NATS="nats://127.0.0.1:4222"; else echo "NATS is not reachable: bus tests run in-process only" >&2; fi
# The rbd volume backend's tests run against a single-node Ceph cluster made here.
CEPH_DIR="$ROOT/target/ceph-test"
./scripts/ceph-dev.sh stop "$CEPH_DIR"
./scripts/ceph-dev.sh start "$CEPH_DIR" 16789
export STRATUS_TEST_CEPH_CONF="$CEPH_DIR/ceph.conf"
rust=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast || rust=$?
else
    cargo test --workspace --no-fail-fast || rust=$?
fi
./scripts/ceph-dev.sh stop "$CEPH_DIR"
unset STRATUS_TEST_CEPH_CONF
if [ "$rust" != 0 ]; then exit "$rust"; fi

echo "== end-to-end tests and the OpenStack conformance run (Tempest)"
cargo build -p stratusd -p stratus-cli
VENV="$ROOT/.venv"
# (Re)install when any pinned requirement is missing from the venv.
venv_current() {
    local frozen
    frozen="$("$1/bin/pip" freeze 2>/dev/null)" || return 1
    grep -E '^[A-Za-z0-9_.-]+==' "$2" | while read -r req; do
        grep -qix "$req" <<<"$frozen" || { echo "missing $req"; return 1; }
    done
}
if [ ! -x "$VENV/bin/openstack" ] || ! venv_current "$VENV" tests/e2e/requirements.txt >/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
TEMPEST_VENV="$ROOT/.venv-tempest"
if ! "$TEMPEST_VENV/bin/pip" freeze 2>/dev/null | grep -q "^tempest==47.0.0"; then
    python3 -m venv "$TEMPEST_VENV"
    "$TEMPEST_VENV/bin/pip" install -q --disable-pip-version-check -r tests/conformance/requirements.txt
fi
export STRATUSD="$ROOT/target/debug/stratusd"
export STRATUS_CLI="$ROOT/target/debug/stratus"
export OPENSTACK="$VENV/bin/openstack"
CONFORMANCE_LOG="$ROOT/target/conformance.log"
conformance_run() {
    "$TEMPEST_VENV/bin/python" tests/conformance/run.py --work-dir "$ROOT/target/conformance" >"$CONFORMANCE_LOG" 2>&1
}
e2e=0
conformance=0
if [ $# -gt 0 ]; then
    # A chosen selection, with Tempest (against its own all-in-one, fake drivers) beside it.
    conformance_run &
    CONFORMANCE_PID=$!
    "$VENV/bin/python" -m pytest -q --durations=25 tests/e2e "$@" || e2e=$?
    wait "$CONFORMANCE_PID" || conformance=$?
else
    # Two streams on the two cores. The tests that wire the kernel (network agents,
    # namespaces, libvirt guests, the shared guest image) run one after another, then
    # the longest API test file on SQLite; beside them Tempest runs, then the other API
    # tests, whose clouds use fake drivers. Each stream's clouds take their ports from a
    # range of its own, and only one stream runs clouds on the shared NATS server (which
    # does not keep deployments apart: a cloud would take another's compute hosts as
    # its own). So at most two suites share the machine at any time, and the two
    # streams end at about the same time.
    KERNEL_TESTS=(tests/e2e/test_real_guests.py tests/e2e/test_dataplane.py tests/e2e/test_guest_image.py tests/e2e/test_baremetal.py)
    LATE_API_TESTS=(tests/e2e/test_compute.py)
    API_LOG="$ROOT/target/e2e-api.log"
    ignores=()
    for t in "${KERNEL_TESTS[@]}" "${LATE_API_TESTS[@]}"; do ignores+=(--ignore "$t"); done
    rm -f "$ROOT/target/conformance.rc" "$ROOT/target/e2e-api.rc"
    (
        export STRATUS_E2E_PORTS=20000-32767
        rc=0
        conformance_run || rc=$?
        echo "$rc" >"$ROOT/target/conformance.rc"
        rc=0
        "$VENV/bin/python" -m pytest -q --durations=15 tests/e2e "${ignores[@]}" >"$API_LOG" 2>&1 || rc=$?
        echo "$rc" >"$ROOT/target/e2e-api.rc"
    ) &
    SIDE_PID=$!
    echo "== end-to-end kernel tests, then the longest API tests (Tempest, then the other API tests, beside them)"
    kernel=0
    STRATUS_E2E_PORTS=10000-19999 "$VENV/bin/python" -m pytest -q --durations=15 "${KERNEL_TESTS[@]}" || kernel=$?
    STRATUS_E2E_PORTS=10000-19999 "$VENV/bin/python" -m pytest -q --durations=15 "${LATE_API_TESTS[@]}" || kernel=$?
    wait "$SIDE_PID" || true
    conformance="$(cat "$ROOT/target/conformance.rc" 2>/dev/null || echo 1)"
    api="$(cat "$ROOT/target/e2e-api.rc" 2>/dev/null || echo 1)"
    echo "== end-to-end API tests (beside the kernel tests above)"
    cat "$API_LOG"
    if [ "$kernel" != 0 ] || [ "$api" != 0 ]; then e2e=1; fi
fi
if pg_up; then drop_test_schemas; fi
echo "== OpenStack conformance (tests/conformance; Tempest's own output: target/conformance/tempest-run.log)"
cat "$CONFORMANCE_LOG"
if [ "$e2e" != 0 ] || [ "$conformance" != 0 ]; then
    echo "end-to-end tests: exit $e2e; conformance: exit $conformance" >&2
    exit 1
fi
