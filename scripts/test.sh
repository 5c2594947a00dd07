#!/usr/bin/env bash
# The whole test suite: formatting, lints, the Rust tests (unit, in-process API tests on
# SQLite and PostgreSQL, bus tests on the in-process bus and real NATS), and the
# end-to-end tests that start the real `stratusd` and drive it with the real OpenStack
# clients on SQLite + in-process bus and on PostgreSQL + NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
source ./scripts/services.sh
ensure_services

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
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

echo "== end-to-end tests"
cargo build -p stratusd
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/openstack" ] || ! "$VENV/bin/pip" freeze 2>/dev/null | grep -q "python-openstackclient==10.5.0"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
export STRATUSD="$ROOT/target/debug/stratusd"
export OPENSTACK="$VENV/bin/openstack"
"$VENV/bin/python" -m pytest -q tests/e2e "$@"
if pg_up; then drop_test_schemas; fi
