//! Every scenario of the load generator, small, against Belfry served in this process with the
//! benchmark handlers: each must finish without error and count exactly what it caused (the
//! figures themselves are for `run.sh`, not for a test).

use std::process::Command;
use std::time::Duration;

use belfry::SocketIo;
use serde_json::Value;

/// Serves the benchmark handlers on a free port, with a ping every 300 ms, its pong due within
/// a second (the big room's idle phase is checked to keep every socket: to answer them in time);
/// returns the address.
async fn serve() -> String {
    let (layer, io) = SocketIo::builder()
        .max_payload(1_000_000)
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_secs(1))
        .build_layer();
    io.ns("/", belfry_bench::on_connect);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("a bound listener").to_string();
    tokio::spawn(async move {
        let _io = io;
        belfry::serve(listener, axum::Router::new().layer(layer)).await
    });
    addr
}

/// Runs the load generator with `args` against `addr` (measuring this process), returns its
/// result, which must hold no error.
async fn run(addr: &str, args: &[&str]) -> Value {
    let pid = std::process::id().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_belfry-bench"));
    command
        .args(args)
        .args(["--addr", addr, "--pid", &pid, "--timeout", "20"]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the load generator's thread")
        .expect("the load generator runs");
    let line = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert!(result.get("error").is_none(), "{args:?}: {result}");
    assert!(output.status.success(), "{args:?}: {result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_counts_what_it_caused() {
    let addr = serve().await;

    let echo = run(
        &addr,
        &[
            "polling-echo",
            "--clients",
            "4",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
        ],
    )
    .await;
    assert_eq!(echo["failed_clients"], 0, "{echo}");
    assert!(echo["round_trips"].as_u64() > Some(0), "{echo}");
    assert!(echo["server_cpu_us_per_op"].as_f64() > Some(0.0), "{echo}");

    let idle = run(&addr, &["polling-idle", "--n", "20", "--hold", "0.7"]).await;
    assert_eq!(
        (idle["open"].as_u64(), idle["failed"].as_u64()),
        (Some(20), Some(0)),
        "{idle}"
    );

    for (scenario, sender) in [("fanout", None), ("fanout-wait-ack", Some(addr.as_str()))] {
        let mut args = vec![scenario, "--clients", "30", "--msgs", "7", "--trials", "3"];
        if let Some(sender) = sender {
            args.extend(["--sender-addr", sender]);
        }
        let fanout = run(&addr, &args).await;
        // Three measured trials of 7 broadcasts to 30 sockets (the warm-up trial not counted).
        assert_eq!(fanout["deliveries"], 3 * 7 * 30, "{fanout}");
        assert_eq!(fanout["receivers_lost"], 0, "{fanout}");
        assert!(fanout["latency"]["p99_us"].as_u64().is_some(), "{fanout}");
    }

    let paced = run(
        &addr,
        &[
            "fanout-paced",
            "--clients",
            "20",
            "--rate",
            "50",
            "--duration",
            "1",
        ],
    )
    .await;
    assert_eq!(paced["deliveries"], 50 * 20, "{paced}");

    let room = run(
        &addr,
        &[
            "big-room",
            "--clients",
            "50",
            "--idle",
            "2.5",
            "--broadcasts",
            "4",
        ],
    )
    .await;
    // A ping every 300 ms for 2.5 s, each pong due within a second: every socket (and the
    // sender) answered them all in time.
    assert_eq!(room["lost_while_idle"], 0, "{room}");
    assert!(
        room["idle_pings_answered"].as_u64() >= Some(5 * 51),
        "{room}"
    );
    assert_eq!(
        room["emit_to_last_ms_each"].as_array().map(Vec::len),
        Some(4),
        "{room}"
    );
    assert!(room["kib_per_socket"].as_f64() > Some(0.0), "{room}");
}
