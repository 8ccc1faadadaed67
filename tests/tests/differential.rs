//! Differential wire tests: the same scripted conversations against Node's socket.io 4.8
//! (`tests/js/diff_node_server.mjs`) and against Belfry servers with the same handlers (below),
//! run by `tests/js/differential.mjs`, which compares what a client sees on both (raw HTTP
//! responses and WebSocket frames, socket.io-client's events and disconnect reasons) after
//! normalizing ids, ports and times.
//!
//! Every case must be the same, except those of [`DELIBERATE_DIFFERENCES`]. A mismatch prints
//! both sides in full.
//!
//! One case or a few: `DIFF_CASES=<regex> cargo test -p belfry-tests --test differential`;
//! `DIFF_REPORT=<file>` writes the whole report (every case, both sides) there.
//! By hand: start `node tests/js/diff_node_server.mjs` and any Belfry server with these
//! handlers, then `node tests/js/differential.mjs <node url> <belfry url> [regex]`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use belfry::{
    AckSender, ConnectError, DisconnectReason, SocketIo, SocketRef,
    extract::{Args, Data},
};
use belfry_tests::{processes::NodeProcess, run_node};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};

/// A case whose difference from Node is intended: why, and what Belfry answers (normalized, as
/// the runner reports it), so that the case still fails if Belfry's answer changes.
struct Deliberate {
    case: &'static str,
    reason: &'static str,
    belfry: &'static str,
}

/// Cases whose difference is intended, each with the reason (also in `docs/PROTOCOL.md`). Keep it
/// short: a difference belongs here only when it is truly deliberate.
const DELIBERATE_DIFFERENCES: &[Deliberate] = &[
    Deliberate {
        case: "handshake.websocket-bad-eio",
        reason: "Node answers 101 and writes an HTTP 400 on the upgraded socket; Belfry answers the 400 before upgrading (same outcome for the client: the connection fails)",
        belfry: r#"{"ws: EIO=5": {"unexpected": {"status": 400, "headers": {"content-type": "text/html"}, "body": "Unsupported protocol version"}, "frames": [], "close": {"unexpected": 400}}}"#,
    },
    Deliberate {
        case: "polling.get-after-client-close",
        reason: "a GET served after the client's close gets `6` while the session is kept (up to 1 s), so that a GET sent before the close but served after it on another thread gets Node's answer `6` whatever the order",
        belfry: r#"{"POST 1": "200 ok", "GET after close": {"status": 200, "headers": {"cache-control": "no-store", "content-type": "text/plain; charset=UTF-8"}, "body": "6"}, "GET 100 ms later": "400 {\"code\":1,\"message\":\"Session ID unknown\"}"}"#,
    },
    Deliberate {
        case: "polling.too-large-post",
        reason: "an oversized POST (413) closes the session (\"transport error\"): input past max_payload is treated as hostile",
        belfry: r#"{"POST 1000001 bytes": {"status": 413, "headers": {}, "body": ""}, "POST after": "400 {\"code\":1,\"message\":\"Session ID unknown\"}", "pending GET": "200 1", "GET after": "400 {\"code\":1,\"message\":\"Session ID unknown\"}"}"#,
    },
    Deliberate {
        case: "http.slow-request-head",
        reason: "Node answers 408 after its headersTimeout; `belfry::serve` closes a connection whose request head is not complete within the keep-alive timeout without an answer (hyper's header read timeout)",
        belfry: r#"{"answer": "(none)", "closed": "closed"}"#,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_belfry_look_the_same_on_the_wire() {
    let belfry = json!({
        "main": start_belfry(Timing::Default, false).await,
        "fast": start_belfry(Timing::Fast, false).await,
        "doomed": start_belfry(Timing::Default, true).await,
    });
    let node = NodeProcess::start("diff_node_server.mjs", &[]).await;
    let filter = std::env::var("DIFF_CASES").unwrap_or_default();
    let report = run_node(
        "differential.mjs",
        &[&node.hello.to_string(), &belfry.to_string(), &filter],
    )
    .await;
    if let Ok(path) = std::env::var("DIFF_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    let cases = report.as_object().expect("a JSON object of cases");
    assert!(!cases.is_empty(), "no case ran: {report}");

    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for (name, case) in cases {
        let same = case["same"].as_bool() == Some(true);
        let allowed = DELIBERATE_DIFFERENCES.iter().find(|d| d.case == name);
        let status = match (same, allowed) {
            (true, _) if case.get("skipped").is_some() => "skipped",
            (true, _) => "same",
            (false, Some(_)) => "allowed",
            (false, None) => "DIFFERENT",
        };
        summary.push(format!("{status:>9}  {name}"));
        match allowed {
            None if !same => failures.push(describe(name, case)),
            // The difference is allowed, Belfry's answer is pinned.
            Some(deliberate) if !same => {
                let expected: Value = serde_json::from_str(deliberate.belfry).unwrap();
                if case["belfry"] != expected {
                    failures.push(format!(
                        "=== {name} (a deliberate difference: {}) ===\nBelfry's answer changed:\n\
                         expected: {expected}\nbelfry:   {}",
                        deliberate.reason, case["belfry"]
                    ));
                }
            }
            _ => {}
        }
    }
    for deliberate in DELIBERATE_DIFFERENCES {
        match cases.get(deliberate.case) {
            Some(case) if case["same"] == true && case.get("skipped").is_none() => {
                summary.push(format!(
                    "  (note: {} is allowed to differ ({}) but is the same now)",
                    deliberate.case, deliberate.reason
                ));
            }
            Some(_) => {}
            // A listed case that no longer exists (unless a filter left it out).
            None if filter.is_empty() => failures.push(format!(
                "=== {} === listed as a deliberate difference, but there is no such case",
                deliberate.case
            )),
            None => {}
        }
    }
    println!("{}", summary.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} cases differ between Node and Belfry:\n\n{}\n\nsummary:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n"),
        summary.join("\n"),
    );
}

/// A mismatch, readable: the note, the differing paths, then both sides in full.
fn describe(name: &str, case: &Value) -> String {
    let mut out = format!("=== {name} ===\n");
    if let Some(note) = case.get("note").and_then(Value::as_str) {
        out.push_str(&format!("note: {note}\n"));
    }
    let mut diffs = Vec::new();
    diff_paths("", &case["node"], &case["belfry"], &mut diffs);
    out.push_str("differences (path: node | belfry):\n");
    for line in diffs {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!(
        "node:   {}\nbelfry: {}",
        serde_json::to_string_pretty(&case["node"]).unwrap(),
        serde_json::to_string_pretty(&case["belfry"]).unwrap()
    ));
    out
}

/// The paths where `a` and `b` differ, with both values.
fn diff_paths(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().collect();
            keys.extend(y.keys().filter(|k| !x.contains_key(*k)));
            for key in keys {
                let (va, vb) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                diff_paths(&format!("{path}/{key}"), va, vb, out);
            }
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            if out.is_empty() && kx != ky {
                out.push(format!("{path}: key order {kx:?} | {ky:?}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff_paths(&format!("{path}/{i}"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} | {b}")),
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// The Belfry servers: the handlers of `tests/js/diff_node_server.mjs`, one for one.

#[derive(Clone, Copy)]
enum Timing {
    /// The defaults (ping interval 25 s, ping timeout 20 s).
    Default,
    /// Ping interval 300 ms, ping timeout 200 ms.
    Fast,
}

/// Every socket's disconnect reason, by socket id (Node's `reasons` map).
#[derive(Clone, Default)]
struct Reasons(Arc<Mutex<HashMap<String, String>>>);

/// Serves a Belfry server on `127.0.0.1:0`; returns its URL. `doomed`: the "shutdown" event
/// also stops the HTTP server (after `io.close()`), as Node's `io.close()` closes its
/// `http.Server`: axum's graceful shutdown, as the crate docs recommend.
async fn start_belfry(timing: Timing, doomed: bool) -> String {
    let mut builder = SocketIo::builder();
    if let Timing::Fast = timing {
        builder = builder
            .ping_interval(Duration::from_millis(300))
            .ping_timeout(Duration::from_millis(200));
    }
    let (layer, io) = builder.build_layer();
    let shutdown = Arc::new(tokio::sync::Notify::new());
    install(&io, shutdown.clone());
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // As Node's fast server's `keepAliveTimeout` (the http.* cases); Node's default otherwise.
    let keep_alive = match timing {
        Timing::Fast => Duration::from_millis(500),
        Timing::Default => Duration::from_secs(5),
    };
    tokio::spawn(async move {
        let serve = belfry::serve(listener, app).keep_alive_timeout(keep_alive);
        if doomed {
            serve
                .with_graceful_shutdown(async move {
                    shutdown.notified().await;
                    io.close().await;
                })
                .await
                .unwrap();
        } else {
            serve.await.unwrap();
        }
    });
    format!("http://{addr}")
}

fn install(io: &SocketIo, shutdown: Arc<tokio::sync::Notify>) {
    let reasons = Reasons::default();
    io.ns("/", move |socket: SocketRef| {
        let (reasons, shutdown) = (reasons.clone(), shutdown.clone());
        async move {
            let seen = reasons.clone();
            socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
                let seen = seen.clone();
                async move {
                    seen.0
                        .lock()
                        .insert(socket.id().to_string(), reason.as_str().to_owned());
                }
            });
            socket.on("echo", |socket: SocketRef, args: Args| async move {
                let _ = socket.emit("echo", &args);
            });
            socket.on("echo-ack", |args: Args, ack: AckSender| async move {
                let _ = ack.send(&args);
            });
            socket.on("ack-null", |ack: AckSender| async move {
                let _ = ack.send(&Value::Null);
            });
            socket.on("later", |Data(ms): Data<u64>, ack: AckSender| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = ack.send(&ms);
            });
            socket.on(
                "message-with-ack",
                |args: Args, ack: AckSender| async move {
                    // Node's `(data, ack) => ack(data)`: the first argument only.
                    let first = args.values().ok().and_then(|v| v.into_iter().next());
                    let _ = ack.send(&first.unwrap_or_default());
                },
            );
            socket.on(
                "shape",
                |socket: SocketRef, Data(kind): Data<String>, ack: AckSender| async move {
                    emit_shape(&socket, &kind);
                    let _ = ack.send(&"done");
                },
            );
            socket.on("whoami", |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(&socket.handshake());
            });
            socket.on(
                "kick",
                |socket: SocketRef| async move { socket.disconnect() },
            );
            // Node's `socket.disconnect(true)`.
            socket.on("bye", |socket: SocketRef| async move {
                socket.close_connection();
            });
            socket.on("big", |socket: SocketRef| async move {
                let _ = socket.emit("big", &"x".repeat(5000));
            });
            let known = reasons.clone();
            socket.on(
                "reason-of",
                move |Data(id): Data<String>, ack: AckSender| {
                    let reason = known.0.lock().get(&id).cloned();
                    async move {
                        let _ = ack.send(&reason);
                    }
                },
            );
            // Node's `io.close()`: the doomed server's graceful shutdown runs `io.close()` and
            // stops its listener on this signal (the other servers are never sent "shutdown").
            socket.on("shutdown", move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notify_one() }
            });
        }
    });
    io.ns("/guarded", |_socket: SocketRef| async move {})
        .middleware(|Data(auth): Data<Value>| async move {
            if auth["token"] == "ok" {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized").with_data(json!({"code": 401})))
            }
        });
}

#[derive(Serialize)]
struct NestedBinary {
    a: Bytes,
    b: (Bytes, C),
}

#[derive(Serialize)]
struct C {
    c: Bytes,
}

#[derive(Serialize)]
struct Ordered {
    tag: &'static str,
    text: &'static str,
    n: u32,
    bin: Bytes,
}

/// The argument shapes of Node's `SHAPES`, emitted as event "x".
fn emit_shape(socket: &SocketRef, kind: &str) {
    let b = Bytes::copy_from_slice;
    let _ = match kind {
        "none" => socket.emit("x", &()),
        "null" => socket.emit("x", &Value::Null),
        "several" => socket.emit("x", &(1, "two", json!({"three": 3}), json!([4]), true)),
        "text" => socket.emit("x", "é\n\"\\/\u{1}\u{2028}😀"),
        "numbers" => socket.emit("x", &(0, -1, 1.5, 9_007_199_254_740_992_u64)),
        "nested-binary" => socket.emit(
            "x",
            &NestedBinary {
                a: b(&[1, 2]),
                b: (b(&[3]), C { c: b(&[4]) }),
            },
        ),
        "ordered-binary" => socket.emit(
            "x",
            &Ordered {
                tag: "t",
                text: "hello",
                n: 1,
                bin: b(&[5, 6]),
            },
        ),
        "binary-args" => socket.emit("x", &(b(&[7]), "after", Bytes::new())),
        _ => Ok(()),
    };
}
