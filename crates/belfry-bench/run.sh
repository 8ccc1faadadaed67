#!/usr/bin/env bash
# Belfry, socketioxide and Node's socket.io side by side in the scenarios of this crate's
# README: long-polling, cluster fan-out over Redis, a 15,000-socket room, the idle cost of
# heartbeats, paced fan-out. Servers are pinned to one core, the load generator (and Redis) to
# the other; every server process is fresh for each scenario; rounds interleave the servers.
#
#   crates/belfry-bench/run.sh                         # everything, about 45 minutes
#   ROUNDS=1 IDLE=10 BIG=2000 POLL_IDLE=1000 crates/belfry-bench/run.sh   # a smoke run
#
# Results: $OUT/results.jsonl (one JSON line per load generator run), $OUT/results.md (the
# tables, by report.py), $OUT/env.txt, $OUT/commands.log (every command, exactly), $OUT/logs/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEER_TARGET=$TARGET/bench-peers
OUT=${OUT:-$TARGET/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
SERVERS=${SERVERS:-"belfry socketioxide node"}
SCENARIOS=${SCENARIOS:-"polling cluster paced bigroom idle"}
ROUNDS=${ROUNDS:-5}
POLL_CLIENTS=${POLL_CLIENTS:-100}
POLL_IDLE=${POLL_IDLE:-10000}
DURATION=${DURATION:-5}
FANOUT_CLIENTS=${FANOUT_CLIENTS:-1000}
FANOUT_MSGS=${FANOUT_MSGS:-100}
BIG=${BIG:-15000}
BROADCASTS=${BROADCASTS:-20}
IDLE=${IDLE:-120}
RATE=${RATE:-200}
PACED_SECONDS=${PACED_SECONDS:-10}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
BASE_PORT=${BASE_PORT:-24680}
SKIP_BUILD=${SKIP_BUILD:-0}

LOADGEN=$TARGET/release/belfry-bench
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
CMDLOG=$OUT/commands.log
: >"$RESULTS"
: >"$CMDLOG"

# The log names paths from the checkout's root.
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$CMDLOG" >&2; }

if [ "$SKIP_BUILD" != 1 ]; then
    log "building Belfry's server and the load generator, socketioxide's server, Node's"
    (cd "$ROOT" && cargo build --release --locked --quiet -p bench-server -p belfry-bench)
    CARGO_TARGET_DIR=$PEER_TARGET cargo build --release --locked --quiet \
        --manifest-path "$HERE/peers/socketioxide/Cargo.toml"
    npm ci --prefix "$HERE/peers/node" --no-audit --no-fund --loglevel=error >/dev/null
fi
# 15,000 sockets and a few: as many descriptors as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536
log "open files limit: $(ulimit -n)"

server_cmd() {
    case $1 in
    belfry) echo "$TARGET/release/bench-server" ;;
    socketioxide) echo "$PEER_TARGET/release/bench-peer-socketioxide" ;;
    node) echo "node $HERE/peers/node/server.js" ;;
    *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

{
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "rustc: $(rustc --version)"
    echo "node: $(node --version)"
    echo "redis: $(redis-server --version | grep -o 'v=[^ ]*')"
    echo "socketioxide: $(grep -A1 '^name = "socketioxide"$' "$HERE/peers/socketioxide/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
    echo "socketioxide-redis: $(grep -A1 '^name = "socketioxide-redis"$' "$HERE/peers/socketioxide/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
    for m in socket.io engine.io ws @socket.io/redis-adapter redis; do
        echo "$m (npm): $(node -p "require('$HERE/peers/node/node_modules/$m/package.json').version")"
    done
    echo "server_cpu: $SERVER_CPU  loadgen_cpu: $LOADGEN_CPU (and redis-server)"
    echo "rounds: $ROUNDS  scenarios: $SCENARIOS  servers: $SERVERS"
    echo "loadavg_at_start: $(cat /proc/loadavg)"
} >"$OUT/env.txt"

# ------------------------------------------------------------------------------ processes
PIDS=()
USED_PORTS=" "

free_port() {
    local p=$BASE_PORT
    while [[ $USED_PORTS == *" $p "* ]] || ss -Htan "( sport = :$p )" | grep -q .; do
        p=$((p + 1))
    done
    USED_PORTS+="$p "
    echo "$p"
}

wait_port() { # pid port what
    for _ in $(seq 1 200); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null; then return 0; fi
        if ! kill -0 "$1" 2>/dev/null; then
            log "$3 died on start (see $OUT/logs)"
            return 1
        fi
        sleep 0.05
    done
    log "$3 did not listen on $2 within 10 s"
    return 1
}

# Starts a server; sets SPID and SPORT. Extra arguments are environment assignments.
start_server() { # name tag [VAR=value...]
    local name=$1 tag=$2
    shift 2
    SPORT=$(free_port)
    local cmd
    cmd=$(server_cmd "$name")
    # shellcheck disable=SC2086
    env PORT="$SPORT" "$@" taskset -c "$SERVER_CPU" $cmd >>"$OUT/logs/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    echo "env PORT=$SPORT $* taskset -c $SERVER_CPU ${cmd//$ROOT\//}   # pid $SPID ($tag)" >>"$CMDLOG"
    wait_port "$SPID" "$SPORT" "$name"
}

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    USED_PORTS=" "
}

REDIS_PID=""
REDIS_PORT=""
start_redis() {
    REDIS_PORT=$(BASE_PORT=$((BASE_PORT + 1000)) free_port)
    taskset -c "$LOADGEN_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no >"$OUT/logs/redis.log" 2>&1 &
    REDIS_PID=$!
    echo "taskset -c $LOADGEN_CPU redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no   # pid $REDIS_PID" >>"$CMDLOG"
    wait_port "$REDIS_PID" "$REDIS_PORT" redis-server
}

cleanup() {
    stop_all
    [ -z "$REDIS_PID" ] || kill "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs the load generator: round, label, its arguments. Appends its JSON line to the results.
lg() {
    local round=$1 label=$2
    shift 2
    local args=("$@" --label "$label" --round "$round")
    echo "taskset -c $LOADGEN_CPU ${LOADGEN//$ROOT\//} ${args[*]}" >>"$CMDLOG"
    local line
    line=$(taskset -c "$LOADGEN_CPU" "$LOADGEN" "${args[@]}" 2>>"$OUT/logs/loadgen.stderr") ||
        log "  load generator failed: $line"
    echo "$line" >>"$RESULTS"
    python3 "$HERE/report.py" --brief "$line" >&2 || true
}

has() { [[ " $SCENARIOS " == *" $1 "* ]]; }

T0=$(date +%s)
has cluster && start_redis

# The servers' order turns by one each round, so that a drift within a round hits each alike.
rotate() { # round, list...
    local n=$1
    shift
    local list=("$@") i
    for ((i = 0; i < ${#list[@]}; i++)); do
        echo "${list[$(((i + n - 1) % ${#list[@]}))]}"
    done
}

for r in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    for s in $(rotate "$r" $SERVERS); do
        if has polling; then
            # Idle sessions on a fresh process (its memory before them is the base), then the
            # echo on another fresh one.
            start_server "$s" "polling round $r" && {
                log "$s: polling-idle $POLL_IDLE, polling-echo $POLL_CLIENTS (round $r)"
                lg "$r" "$s" polling-idle --addr "127.0.0.1:$SPORT" --pid "$SPID" --n "$POLL_IDLE"
                stop_all
                start_server "$s" "polling echo round $r" &&
                    lg "$r" "$s" polling-echo --addr "127.0.0.1:$SPORT" --pid "$SPID" \
                        --clients "$POLL_CLIENTS" --duration "$DURATION"
            }
            stop_all
        fi
        if has cluster; then
            start_server "$s" "cluster node 1 round $r" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" && {
                local_port=$SPORT local_pid=$SPID
                start_server "$s" "cluster node 2 round $r" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" && {
                    log "$s: cluster fan-out, $FANOUT_CLIENTS clients on node 2 (round $r)"
                    for mode in fanout fanout-wait-ack; do
                        lg "$r" "$s" "$mode" --addr "127.0.0.1:$SPORT" --sender-addr "127.0.0.1:$local_port" \
                            --pid "$SPID" --pid "$local_pid" --clients "$FANOUT_CLIENTS" --msgs "$FANOUT_MSGS" --room "cluster$r"
                    done
                }
            }
            stop_all
        fi
        if has paced; then
            start_server "$s" "paced round $r" && {
                log "$s: paced fan-out, $FANOUT_CLIENTS clients, $RATE/s for $PACED_SECONDS s (round $r)"
                lg "$r" "$s" fanout-paced --addr "127.0.0.1:$SPORT" --pid "$SPID" \
                    --clients "$FANOUT_CLIENTS" --rate "$RATE" --duration "$PACED_SECONDS"
            }
            stop_all
        fi
        if has bigroom; then
            start_server "$s" "big room round $r" && {
                log "$s: big room, $BIG sockets, $BROADCASTS broadcasts (round $r)"
                lg "$r" "$s" big-room --addr "127.0.0.1:$SPORT" --pid "$SPID" --clients "$BIG" \
                    --idle 0 --broadcasts "$BROADCASTS" --timeout 120
            }
            stop_all
        fi
        if has idle; then
            start_server "$s" "idle round $r" && {
                log "$s: idle, $BIG sockets for $IDLE s (round $r)"
                lg "$r" "$s" big-room --addr "127.0.0.1:$SPORT" --pid "$SPID" --clients "$BIG" \
                    --idle "$IDLE" --broadcasts 0 --timeout 120
            }
            stop_all
        fi
    done
done

echo "loadavg_at_end: $(cat /proc/loadavg)" >>"$OUT/env.txt"
echo "elapsed_s: $(($(date +%s) - T0))" >>"$OUT/env.txt"
python3 "$HERE/report.py" "$RESULTS" --env "$OUT/env.txt" >"$OUT/results.md"
log "done in $(($(date +%s) - T0)) s: $OUT/results.md"
cat "$OUT/results.md"
