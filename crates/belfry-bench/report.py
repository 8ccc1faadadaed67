#!/usr/bin/env python3
"""Tables of a run of crates/belfry-bench/run.sh: results.jsonl -> Markdown on stdout.

Each figure is the median over the rounds of a server; the ratio columns divide Belfry's median
by the peer's (for times, CPU and memory, below 1 is better; for rates, above 1). A run in which a
client failed or a socket was lost is left out of the medians and listed at the end.

    report.py results.jsonl [--env env.txt]
    report.py --brief '<one JSON line>'      # one line for the run's log
"""
import json
import statistics
import sys

PEERS = ["belfry", "socketioxide", "node"]


def get(obj, path):
    for key in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(key)] if int(key) < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
    return obj


def brief(line):
    r = json.loads(line)
    if "error" in r:
        return f"  {r.get('label')} {r.get('scenario')}: ERROR {r['error']}"
    s = r["scenario"]
    keys = {
        "polling-echo": ["server_cpu_us_per_op", "round_trips_per_s", "latency.p99_us", "loadgen_cpu_pct"],
        "polling-idle": ["open", "kib_per_session", "first_error"],
        "fanout": ["server_cpu_us_per_delivery", "deliveries_per_s", "latency.p99_us", "loadgen_cpu_pct"],
        "fanout-wait-ack": ["server_cpu_us_per_delivery", "deliveries_per_s", "latency.p99_us"],
        "fanout-paced": ["server_cpu_us_per_delivery", "latency.p50_us", "latency.p99_us", "loadgen_cpu_pct"],
        "big-room": ["kib_per_socket", "idle_server_cpu_s", "idle_pings_answered", "lost_while_idle",
                     "emit_to_last_ms", "server_cpu_ms_per_broadcast", "loadgen_cpu_pct"],
    }.get(s, [])
    return f"  {r.get('label')} {s}: " + ", ".join(f"{k}={get(r, k)}" for k in keys)


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median_low(values) if values else None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}"


def complete(r):
    """No error, no client failed, no socket lost."""
    return ("error" not in r and not r.get("failed_clients") and not r.get("failed")
            and not r.get("receivers_lost") and not r.get("lost_while_idle"))


def table(rows, title, metrics, note=""):
    """metrics: (header, scenario, path, digits, filter)."""
    out = [f"### {title}", ""]
    if note:
        out += [note, ""]
    header = "| figure | " + " | ".join(PEERS) + " | Belfry / socketioxide | Belfry / Node | rounds |"
    out += [header, "|" + "---|" * (len(PEERS) + 4)]
    for name, scenario, path, digits, keep in metrics:
        meds = {}
        counts = {}
        for peer in PEERS:
            values = [get(r, path) for r in rows if r.get("scenario") == scenario
                      and r.get("label") == peer and complete(r) and keep(r)]
            meds[peer] = median(values)
            counts[peer] = len([v for v in values if v is not None])

        def ratio(peer):
            a, b = meds.get("belfry"), meds.get(peer)
            if a is None or not b:
                return "–"
            return f"{a / b:.2f}×"

        cells = " | ".join(fmt(meds[p], digits) for p in PEERS)
        rounds = "/".join(str(counts[p]) for p in PEERS)
        out.append(f"| {name} | {cells} | {ratio('socketioxide')} | {ratio('node')} | {rounds} |")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--brief":
        print(brief(sys.argv[2]))
        return
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    for r in rows:
        # Results of load generators from before it reported the CPU per ping.
        cpu, pings = r.get("idle_server_cpu_s"), r.get("idle_pings_answered")
        if "idle_server_cpu_us_per_ping" not in r and cpu is not None and pings:
            r["idle_server_cpu_us_per_ping"] = round(cpu * 1e6 / pings, 3)
    env = ""
    if "--env" in sys.argv:
        with open(sys.argv[sys.argv.index("--env") + 1]) as f:
            env = f.read()
    every = lambda r: True  # noqa: E731
    busy = lambda r: r.get("broadcasts", 0) > 0  # noqa: E731
    idle = lambda r: r.get("idle_s", 0) > 0  # noqa: E731
    print("## Results\n")
    if env:
        print("```\n" + env.strip() + "\n```\n")
    print(table(rows, "1. Polling echo", [
        ("server CPU per echo (µs)", "polling-echo", "server_cpu_us_per_op", 2, every),
        ("echoes/s", "polling-echo", "round_trips_per_s", 0, every),
        ("p99 (µs)", "polling-echo", "latency.p99_us", 0, every),
        ("load generator CPU (%)", "polling-echo", "loadgen_cpu_pct", 1, every),
        ("RSS per idle polling session (KiB)", "polling-idle", "kib_per_session", 2, every),
        ("idle sessions open", "polling-idle", "open", 0, every),
    ]))
    print(table(rows, "2. Cluster fan-out over Redis", [
        ("pipelined: CPU per delivery, receiving node (µs)", "fanout", "server_cpu_us_per_delivery.0", 3, every),
        ("pipelined: CPU per delivery, sending node (µs)", "fanout", "server_cpu_us_per_delivery.1", 3, every),
        ("pipelined: deliveries/s", "fanout", "deliveries_per_s", 0, every),
        ("pipelined: delivery p99 (µs)", "fanout", "latency.p99_us", 0, every),
        ("wait-ack: CPU per delivery, receiving node (µs)", "fanout-wait-ack", "server_cpu_us_per_delivery.0", 3, every),
        ("wait-ack: CPU per delivery, sending node (µs)", "fanout-wait-ack", "server_cpu_us_per_delivery.1", 3, every),
        ("wait-ack: deliveries/s", "fanout-wait-ack", "deliveries_per_s", 0, every),
        ("wait-ack: delivery p99 (µs)", "fanout-wait-ack", "latency.p99_us", 0, every),
    ], "Receivers on node 2, the sender on node 1."))
    print(table(rows, "3. Big room", [
        ("emit to last delivery (ms)", "big-room", "emit_to_last_ms", 2, busy),
        ("server CPU per broadcast (ms)", "big-room", "server_cpu_ms_per_broadcast", 2, busy),
        ("delivery p99 (µs)", "big-room", "latency.p99_us", 0, busy),
        ("RSS per socket in the room (KiB)", "big-room", "kib_per_socket", 2, busy),
        ("RSS with every socket joined (KiB)", "big-room", "rss_joined_kib", 0, busy),
        ("load generator CPU while broadcasting (%)", "big-room", "loadgen_cpu_pct", 1, busy),
    ]))
    print(table(rows, "4. Idle cost", [
        ("server CPU over the idle window (s)", "big-room", "idle_server_cpu_s", 3, idle),
        ("server CPU per ping answered (µs)", "big-room", "idle_server_cpu_us_per_ping", 1, idle),
        ("pings answered", "big-room", "idle_pings_answered", 0, idle),
        ("sockets lost", "big-room", "lost_while_idle", 0, idle),
        ("RSS per socket (KiB)", "big-room", "kib_per_socket", 2, idle),
    ]))
    print(table(rows, "5. Paced fan-out", [
        ("server CPU per delivery (µs)", "fanout-paced", "server_cpu_us_per_delivery.0", 3, every),
        ("delivery p50 (µs)", "fanout-paced", "latency.p50_us", 0, every),
        ("delivery p99 (µs)", "fanout-paced", "latency.p99_us", 0, every),
        ("server CPU (%)", "fanout-paced", "server_cpu_pct.0", 1, every),
        ("load generator CPU (%)", "fanout-paced", "loadgen_cpu_pct", 1, every),
    ]))
    errors = [r for r in rows if not complete(r)]
    if errors:
        print("### Runs left out (failed, or lost clients)\n")
        for r in errors:
            why = r.get("error") or r.get("first_error") or "clients failed or sockets lost"
            print(f"- {r.get('label')} {r.get('scenario')} round {r.get('round')}: {why}")


if __name__ == "__main__":
    main()
