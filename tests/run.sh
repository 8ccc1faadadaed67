#!/usr/bin/env bash
# Belfry's whole test suite, as the README's test command runs it. It installs what it needs on a
# fresh Debian machine: Node.js, npm, Python's venv, Chromium, Redis, PostgreSQL and nginx from apt when absent; the npm
# clients from tests/js's lockfile (playwright-core among them), the browser bundles of the chat
# and cluster examples and the Admin UI's files; python-socketio (pinned) in tests/py/.venv.
# Then formatting, clippy, the docs, `cargo package` of the published crates, every fuzz target
# run for a while (tests/fuzz.sh: Engine.IO packets and payloads, WebSocket frames, the
# Socket.IO decoder, msgpack, RESP), a fresh project built from the getting-started guide
# (tests/fresh_project.sh), and every Rust test (unit, integration with the official clients
# and Chromium, differential against Node, doctests), the benchmarks compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

apt_install() {
  log "installing $* from apt"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi

# Headless Chromium for the browser tests (driven by playwright-core from tests/js).
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# Redis for the cluster tests (each test starts its own server on a free port).
if [ -z "${REDIS_SERVER:-}" ] && ! command -v redis-server >/dev/null; then
  apt_install redis-server
fi
# PostgreSQL for the Postgres cluster tests (each test runs initdb and its own server on a free
# port; `$PG_BIN` names the directory of another installation's initdb, postgres and psql).
if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install --no-install-recommends postgresql
fi
# curl for the fresh-project check.
command -v curl >/dev/null || apt_install curl
# openssl makes the certificates of the Redis TLS tests.
command -v openssl >/dev/null || apt_install openssl
# nginx for the cluster example's test (it runs its own nginx, in the foreground, on free ports).
if [ -z "${NGINX:-}" ] && [ ! -x /usr/sbin/nginx ]; then
  apt_install --no-install-recommends nginx
fi

log "npm clients (tests/js), the browser bundles of the chat and cluster examples, the Admin UI (examples/admin-ui)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
npm ci --prefix examples/chat --no-audit --no-fund --loglevel=error
npm ci --prefix examples/admin-ui --no-audit --no-fund --loglevel=error
npm ci --prefix examples/cluster --no-audit --no-fund --loglevel=error

log "python clients (tests/py)"
command -v python3 >/dev/null || apt_install python3
if [ ! -x tests/py/.venv/bin/python ]; then
  python3 -m venv tests/py/.venv 2>/dev/null || { apt_install python3-venv; python3 -m venv tests/py/.venv; }
fi
tests/py/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

log "cargo package (the published crates, each built from its package)"
# Each crate is verified against the packages of the crates it depends on, served from a
# temporary registry under the target directory. Cargo takes a registry's packages for
# immutable: it extracts one version once, into $CARGO_HOME/registry/src/-<hash of the
# registry's path>/, and builds it once per target directory. On a machine that keeps
# CARGO_HOME or the target directory between runs, an earlier commit's belfry-core would be
# compiled, or its build reused, instead of this one's. So: our extractions go, and the
# verification builds in a target directory of its own whose Belfry artifacts go too (the
# third-party crates there stay built).
verify=target/package-verify
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/belfry-*
rm -rf "$verify"/debug/.fingerprint/belfry-* "$verify"/debug/deps/*belfry* "$verify"/debug/build/belfry-*
cargo package --locked --target-dir "$verify" -p belfry-proto -p belfry-core -p belfry-engine -p belfry-cluster \
  -p belfry-redis -p belfry-postgres -p belfry-io -p belfry-client

log "fuzz targets, coverage-guided, ${FUZZ_SECONDS:-20} s each (tests/fuzz.sh)"
bash tests/fuzz.sh

log "a fresh project following the getting-started guide (tests/fresh_project.sh)"
# Online: the guide's dependencies (axum with its default features) need crates that the
# workspace does not.
FRESH_PROJECT_ONLINE=1 CARGO_TARGET_DIR="$PWD/target" bash tests/fresh_project.sh

log "cargo test"
results=$(mktemp)
set +e
cargo test --workspace --locked 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line with the totals of every test binary and doctest run above.
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "summary: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$results"
rm -f "$results"
exit "$status"
