#!/usr/bin/env bash
# The getting-started guide, followed in a new project: a cargo project outside the workspace
# with the guide's `[dependencies]` (`belfry-io` pointed at this checkout by path, as a user's
# `belfry-io = "0.1"` would be from crates.io) and the guide's first program as its `main.rs`,
# built with this workspace's Cargo.lock (the same versions as every other test), run, and
# asked over HTTP: the Engine.IO open packet, the CONNECT of `/`, the guide's `hello` event, its
# `/health` route.
#
#   bash tests/fresh_project.sh
#
# Offline when every crate is in cargo's cache already (FRESH_PROJECT_ONLINE=1 lets cargo fetch).
# CARGO_TARGET_DIR is honoured (default: target/fresh-project in this checkout, kept between
# runs).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
guide="$root/crates/belfry/guides/getting-started.md"
dir="$(mktemp -d /tmp/belfry-fresh-project.XXXXXX)"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "fresh_project: $*" >&2
    if [ -f "$dir/server.log" ]; then
        sed 's/^/  server: /' "$dir/server.log" >&2
    fi
    exit 1
}

# The guide's fenced blocks: the first `rust` one with a `main`, the first `toml` one.
extract() { # <info string prefix> <pattern the block must contain>
    awk -v lang="$1" -v want="$2" '
        !inside && $0 ~ "^```" lang { inside = 1; block = ""; next }
        inside && /^```/ { inside = 0; if (block ~ want) { printf "%s", block; exit } ; next }
        inside { block = block $0 "\n" }
    ' "$guide"
}
program="$(extract rust 'fn main')"
manifest="$(extract toml 'belfry-io')"
[ -n "$program" ] || fail "no rust block with fn main in $guide"
[ -n "$manifest" ] || fail "no toml block naming belfry-io in $guide"
grep -q '^belfry-io = "' <<<"$manifest" || fail "the guide's manifest does not say belfry-io = \"..\""

# A free port, in place of the guide's 3000.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
grep -q '127.0.0.1:3000' <<<"$program" || fail "the guide's program does not bind 127.0.0.1:3000"

mkdir -p "$dir/src"
{
    cat <<'EOF'
[package]
name = "fresh-belfry-app"
version = "0.1.0"
edition = "2024"
publish = false

EOF
    sed "s|^belfry-io = \"[^\"]*\"|belfry-io = { path = \"$root/crates/belfry\" }|" <<<"$manifest"
} >"$dir/Cargo.toml"
sed "s/127.0.0.1:3000/127.0.0.1:$port/" <<<"$program" >"$dir/src/main.rs"
cp "$root/Cargo.lock" "$dir/Cargo.lock"

offline=(--offline)
[ "${FRESH_PROJECT_ONLINE:-0}" = 1 ] && offline=()
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/fresh-project}"
echo "fresh_project: building $dir (the guide's program on port $port)"
(cd "$dir" && cargo build --quiet "${offline[@]}") || fail "cargo build failed"

"$CARGO_TARGET_DIR/debug/fresh-belfry-app" >"$dir/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -fs "$base/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || fail "the program exited"
    sleep 0.1
done

health="$(curl -fsS "$base/health")" || fail "GET /health failed"
[ "$health" = ok ] || fail "GET /health answered '$health'"

open="$(curl -fsS "$base/socket.io/?EIO=4&transport=polling")" || fail "the handshake failed"
[[ "$open" == 0\{* ]] || fail "no open packet: '$open'"
sid="$(sed -E 's/.*"sid":"([^"]+)".*/\1/' <<<"$open")"
session="$base/socket.io/?EIO=4&transport=polling&sid=$sid"
[ "$(curl -fsS -X POST --data-raw 40 "$session")" = ok ] || fail "the CONNECT was refused"
got=""
for _ in 1 2 3; do
    got+="$(curl -fsS --max-time 30 "$session" | tr '\036' '\n')"$'\n'
    grep -q '^42\["hello","world"\]$' <<<"$got" && break
done
grep -q '^40{"sid":"' <<<"$got" || fail "no CONNECT answer: '$got'"
grep -q '^42\["hello","world"\]$' <<<"$got" || fail "no hello event: '$got'"
echo "fresh_project: ok (the guide's program answered the handshake, the CONNECT and its hello)"
