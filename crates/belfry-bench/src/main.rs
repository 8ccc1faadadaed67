//! Belfry's load generator for the scenarios `crates/belfry-bench/run.sh` runs against Belfry,
//! socketioxide and Node's `socket.io` side by side (see the crate's README): long-polling
//! echo and idle sessions, fan-out (pipelined, waiting for acks, paced; across two nodes of a
//! cluster), and a big room (memory, idle heartbeats, broadcasts timed to their last delivery).
//!
//! One thread (a current-thread runtime), so that pinned with `taskset` it takes exactly one
//! core; every result carries its own CPU share next to the servers'. It prints one JSON object
//! per run on standard output.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: results on stdout, usage on stderr"
)]

mod measure;
mod polling;
mod read_buf;
mod scenarios;
mod ws;

use std::process::ExitCode;

use serde_json::{Value, json};

/// The command line.
#[derive(Debug, Clone)]
struct Opts {
    scenario: String,
    /// The server the clients (the receivers, in fan-out) connect to.
    addr: String,
    /// Where the fan-out's sender connects, when not to `addr`.
    sender_addr: Option<String>,
    /// The servers whose CPU time and memory are read from `/proc`, in the order of the
    /// results' lists.
    pids: Vec<String>,
    label: String,
    round: Option<u32>,
    clients: usize,
    payload: usize,
    duration: f64,
    warmup: f64,
    n: usize,
    concurrency: usize,
    hold: f64,
    msgs: u64,
    trials: usize,
    warmup_trials: usize,
    rate: f64,
    room: String,
    broadcasts: u64,
    idle: f64,
    timeout: f64,
}

const USAGE: &str = "\
usage: belfry-bench <scenario> [options]

scenarios:
  polling-echo      --clients C (100) --payload B (32) --duration S (5) --warmup S (1)
                    closed-loop echo over HTTP long-polling
  polling-idle      --n N (10000) --hold S (5) --concurrency K (200)
                    N idle polling sessions, each with a pending long-poll; server RSS
  fanout            --clients N (1000) --msgs M (100) --trials T (5) --warmup-trials W (1)
                    [--sender-addr HOST:PORT] N sockets join a room, one more broadcasts M
                    messages to it per trial, all written at once
  fanout-wait-ack   the same, each broadcast waiting for its ack
  fanout-paced      --rate R (200) --duration S (10): R broadcasts/s spread evenly for S s
  big-room          --clients N (15000) --payload B (1024) --idle S (120) --broadcasts K (20)
                    N sockets in one room: RSS, S s idle, then K broadcasts one at a time
                    (--idle 0: none; --broadcasts 0: none)

common: --addr HOST:PORT (127.0.0.1:3000), --pid PID (repeatable: the servers to measure;
        in fan-out the receivers' first), --label NAME, --round N, --room NAME (bench),
        --payload B, --timeout S (60: per phase)
";

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().ok_or_else(|| USAGE.to_owned())?;
    let big = scenario == "big-room";
    let paced = scenario == "fanout-paced";
    let mut o = Opts {
        addr: "127.0.0.1:3000".to_owned(),
        sender_addr: None,
        pids: Vec::new(),
        label: String::new(),
        round: None,
        clients: match scenario.as_str() {
            "polling-echo" => 100,
            "big-room" => 15_000,
            _ => 1000,
        },
        payload: if big { 1024 } else { 32 },
        duration: if paced { 10.0 } else { 5.0 },
        warmup: 1.0,
        n: 10_000,
        concurrency: 200,
        hold: 5.0,
        msgs: 100,
        trials: if paced { 1 } else { 5 },
        warmup_trials: 1,
        rate: 200.0,
        room: "bench".to_owned(),
        broadcasts: 20,
        idle: 120.0,
        timeout: 60.0,
        scenario,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        fn number<T: std::str::FromStr>(arg: &str, value: String) -> Result<T, String> {
            value
                .parse()
                .map_err(|_| format!("bad value for {arg}: {value}"))
        }
        match arg.as_str() {
            "--addr" => o.addr = value()?,
            "--sender-addr" => o.sender_addr = Some(value()?),
            "--pid" => o.pids.push(value()?),
            "--label" => o.label = value()?,
            "--round" => o.round = Some(number(&arg, value()?)?),
            "--clients" => o.clients = number(&arg, value()?)?,
            "--payload" => o.payload = number(&arg, value()?)?,
            "--duration" => o.duration = number(&arg, value()?)?,
            "--warmup" => o.warmup = number(&arg, value()?)?,
            "--n" => o.n = number(&arg, value()?)?,
            "--concurrency" => o.concurrency = number(&arg, value()?)?,
            "--hold" => o.hold = number(&arg, value()?)?,
            "--msgs" => o.msgs = number(&arg, value()?)?,
            "--trials" => o.trials = number(&arg, value()?)?,
            "--warmup-trials" => o.warmup_trials = number(&arg, value()?)?,
            "--rate" => o.rate = number(&arg, value()?)?,
            "--room" => o.room = value()?,
            "--broadcasts" => o.broadcasts = number(&arg, value()?)?,
            "--idle" => o.idle = number(&arg, value()?)?,
            "--timeout" => o.timeout = number(&arg, value()?)?,
            _ => return Err(format!("unknown option {arg}\n{USAGE}")),
        }
    }
    if o.concurrency == 0 || o.trials == 0 || o.rate <= 0.0 {
        return Err("--concurrency, --trials and --rate must be above 0".to_owned());
    }
    Ok(o)
}

async fn run(o: &Opts) -> std::io::Result<Value> {
    match o.scenario.as_str() {
        "polling-echo" => scenarios::polling_echo(o).await,
        "polling-idle" => scenarios::polling_idle(o).await,
        "fanout" => scenarios::fanout(o, scenarios::Mode::Pipelined).await,
        "fanout-wait-ack" => scenarios::fanout(o, scenarios::Mode::WaitAck).await,
        "fanout-paced" => scenarios::fanout(o, scenarios::Mode::Paced).await,
        "big-room" => scenarios::big_room(o).await,
        other => Err(std::io::Error::other(format!(
            "unknown scenario {other}\n{USAGE}"
        ))),
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio::task::LocalSet::new().block_on(&runtime, run(&o));
    let (mut line, ok) = match result {
        Ok(value) => (value, true),
        Err(e) => (json!({"error": e.to_string()}), false),
    };
    if let Some(object) = line.as_object_mut() {
        object.insert("scenario".to_owned(), json!(o.scenario));
        object.insert("label".to_owned(), json!(o.label));
        object.insert("round".to_owned(), json!(o.round));
    }
    println!("{line}");
    // The clients' tasks are still running: the runtime is dropped without waiting for them.
    runtime.shutdown_background();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
