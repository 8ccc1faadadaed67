//! The scenarios. Each returns the JSON object of its result; the load generator's CPU share is
//! in every one, so that a saturated load generator can be told from a saturated server.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{sleep, sleep_until, timeout};

use crate::Opts;
use crate::measure::{self, CpuWindow};
use crate::polling::Http;
use crate::ws::Ws;

/// Microseconds since the load generator started: the clock of the timestamps that
/// broadcasts carry (the receivers read them back to time each delivery).
fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn error(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

/// `len` bytes of padding, a JSON string's contents.
fn padding(len: usize) -> String {
    "x".repeat(len)
}

/// Waits for an ack with the id `id` on `ws`, skipping anything else.
async fn ack(ws: &mut Ws, id: u64) -> io::Result<()> {
    let prefix = format!("3{id}[");
    loop {
        if ws.recv().await?.starts_with(prefix.as_bytes()) {
            return Ok(());
        }
    }
}

/// Connects to the main namespace and joins `room` (the `join` event, acked).
///
/// A `join` not acked within a second is sent again (with a new ack id): socketioxide answers
/// the namespace's CONNECT before its connect handler has run, so that under load an event
/// sent at once can come before the handler's `on("join")` and find no handler.
async fn join(addr: &str, room: &str) -> io::Result<Ws> {
    let mut ws = Ws::connect(addr).await?;
    for id in 0..10 {
        ws.send(&format!("2{id}[\"join\",{}]", json!(room))).await?;
        if let Ok(acked) = timeout(Duration::from_secs(1), ack(&mut ws, id)).await {
            acked?;
            return Ok(ws);
        }
    }
    Err(error("join not acked after 10 tries"))
}

/// The timestamp of a `msg` event carrying `[t_us, seq, "pad"]`.
fn broadcast_time(packet: &[u8]) -> Option<u64> {
    let rest = packet.strip_prefix(b"2[\"msg\",[")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

// ------------------------------------------------------------------------------------ polling

/// Opens a polling session on `http`: the handshake, the namespace's CONNECT and its answer.
/// Returns the session id.
async fn polling_session(http: &mut Http) -> io::Result<String> {
    http.send_get(None).await?;
    let open = http.response().await?;
    let open: Value = open
        .strip_prefix(b"0")
        .and_then(|json| serde_json::from_slice(json).ok())
        .ok_or_else(|| error("no open packet"))?;
    let sid = open["sid"]
        .as_str()
        .ok_or_else(|| error("no sid"))?
        .to_owned();
    http.post(&sid, b"40").await?;
    loop {
        http.send_get(Some(&sid)).await?;
        let body = http.response().await?;
        if body
            .split(|&b| b == 0x1e)
            .any(|packet| packet.starts_with(b"40"))
        {
            return Ok(sid);
        }
    }
}

/// What a polling GET brought: whether it held a ping and how many packets start with `want`.
fn read_payload(body: &[u8], want: &[u8]) -> io::Result<(bool, usize)> {
    let mut ping = false;
    let mut found = 0;
    for packet in body.split(|&b| b == 0x1e) {
        match packet.first() {
            Some(b'2') => ping = true,
            Some(b'1') => return Err(error("the server closed the session")),
            _ if packet.starts_with(want) => found += 1,
            _ => {}
        }
    }
    Ok((ping, found))
}

/// Closed-loop echo over long-polling: each client POSTs an `echo` and waits for it on its
/// long-poll (two keep-alive connections per client, as a browser holds them).
pub(crate) async fn polling_echo(o: &Opts) -> io::Result<Value> {
    let message = format!("42[\"echo\",\"{}\"]", padding(o.payload));
    let warm_until = Instant::now() + Duration::from_secs_f64(o.warmup);
    let stop_at = warm_until + Duration::from_secs_f64(o.duration);
    let round_trips = Rc::new(Cell::new(0u64));
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let window: Rc<RefCell<Option<CpuWindow>>> = Rc::default();
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let (addr, message) = (o.addr.clone(), message.clone());
        let (round_trips, latencies) = (round_trips.clone(), latencies.clone());
        clients.push(tokio::task::spawn_local(async move {
            let mut posts = Http::connect(&addr).await?;
            let sid = polling_session(&mut posts).await?;
            let mut polls = Http::connect(&addr).await?;
            polls.send_get(Some(&sid)).await?;
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    return Ok::<_, io::Error>(());
                }
                posts.post(&sid, message.as_bytes()).await?;
                loop {
                    let (ping, echoes) = read_payload(polls.response().await?, b"42[\"echo\"")?;
                    if ping {
                        posts.post(&sid, b"3").await?;
                    }
                    polls.send_get(Some(&sid)).await?;
                    if echoes > 0 {
                        break;
                    }
                }
                let done = Instant::now();
                if sent >= warm_until && done <= stop_at {
                    round_trips.set(round_trips.get() + 1);
                    latencies
                        .borrow_mut()
                        .push(done.duration_since(sent).as_micros() as u64);
                }
            }
        }));
    }
    let pids = o.pids.clone();
    let measuring = window.clone();
    let timer = tokio::task::spawn_local(async move {
        sleep_until(warm_until.into()).await;
        *measuring.borrow_mut() = Some(CpuWindow::start(&pids));
        sleep_until(stop_at.into()).await;
        measuring.borrow().as_ref().map(CpuWindow::finish)
    });
    let mut failed = 0;
    let mut first_error = None;
    for client in clients {
        if let Err(e) = client.await.map_err(error).and_then(|r| r) {
            failed += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
    let window = timer
        .await
        .map_err(error)?
        .ok_or_else(|| error("no window"))?;
    let round_trips = round_trips.get();
    let mut result = json!({
        "clients": o.clients,
        "payload": o.payload,
        "round_trips": round_trips,
        "round_trips_per_s": measure::round(round_trips as f64 / window.wall, 0),
        "server_cpu_us_per_op": measure::per_op_us(window.server(0), round_trips),
        "latency": measure::percentiles(&mut latencies.borrow_mut()),
        "failed_clients": failed,
        "first_error": first_error,
    });
    merge(&mut result, window.json());
    Ok(result)
}

/// `n` idle polling sessions, each with its long-poll pending on a connection of its own;
/// the server's RSS before and after.
pub(crate) async fn polling_idle(o: &Opts) -> io::Result<Value> {
    let pid = o
        .pids
        .first()
        .ok_or_else(|| error("--pid is needed"))?
        .clone();
    let before = measure::rss_kib(&pid).ok_or_else(|| error("no RSS"))?;
    let window = CpuWindow::start(&o.pids);
    let started = Instant::now();
    let handshakes = Rc::new(Semaphore::new(o.concurrency));
    let open = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let first_error: Rc<RefCell<Option<String>>> = Rc::default();
    let all_open = Rc::new(Notify::new());
    for _ in 0..o.n {
        let (addr, handshakes, open, failed, first_error, all_open) = (
            o.addr.clone(),
            handshakes.clone(),
            open.clone(),
            failed.clone(),
            first_error.clone(),
            all_open.clone(),
        );
        let n = o.n;
        tokio::task::spawn_local(async move {
            let result: io::Result<Infallible> = async {
                let permit = handshakes.acquire().await.map_err(error)?;
                let mut http = Http::connect(&addr).await?;
                let sid = polling_session(&mut http).await?;
                drop(permit);
                http.send_get(Some(&sid)).await?;
                open.set(open.get() + 1);
                if open.get() + failed.get() == n {
                    all_open.notify_one();
                }
                loop {
                    let (ping, _) = read_payload(http.response().await?, b"")?;
                    if ping {
                        http.post(&sid, b"3").await?;
                    }
                    http.send_get(Some(&sid)).await?;
                }
            }
            .await;
            let Err(e) = result;
            failed.set(failed.get() + 1);
            first_error
                .borrow_mut()
                .get_or_insert_with(|| e.to_string());
            if open.get() + failed.get() == n {
                all_open.notify_one();
            }
        });
    }
    timeout(Duration::from_secs_f64(o.timeout), all_open.notified())
        .await
        .map_err(|_| error(format!("{} of {} sessions open in time", open.get(), o.n)))?;
    let opened_in = started.elapsed().as_secs_f64();
    sleep(Duration::from_secs_f64(o.hold)).await;
    let after = measure::rss_kib(&pid).ok_or_else(|| error("no RSS"))?;
    let window = window.finish();
    let open_now = open.get();
    let mut result = json!({
        "n": o.n,
        "open": open_now,
        "failed": failed.get(),
        "first_error": *first_error.borrow(),
        "opened_in_s": measure::round(opened_in, 2),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_session": measure::round((after.saturating_sub(before)) as f64 / open_now.max(1) as f64, 2),
        "server_cpu_us_per_session": measure::per_op_us(window.server(0), open_now as u64),
    });
    merge(&mut result, window.json());
    Ok(result)
}

// ------------------------------------------------------------------------------------ fan-out

/// What the receivers of broadcasts have seen, shared by their tasks.
#[derive(Debug, Default)]
struct Deliveries {
    count: Cell<u64>,
    /// `reached` is signalled when `count` gets here.
    target: Cell<u64>,
    reached: Notify,
    last: Cell<Option<Instant>>,
    /// Delivery latencies in µs, while `recording`.
    latencies: RefCell<Vec<u64>>,
    recording: Cell<bool>,
    /// Receivers whose connection ended.
    lost: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

impl Deliveries {
    fn delivered(&self, packet: &[u8]) {
        let now = Instant::now();
        if self.recording.get()
            && let Some(sent) = broadcast_time(packet)
        {
            self.latencies
                .borrow_mut()
                .push(now_us().saturating_sub(sent));
        }
        self.count.set(self.count.get() + 1);
        self.last.set(Some(now));
        if self.count.get() == self.target.get() {
            self.reached.notify_one();
        }
    }

    /// Waits until `more` deliveries beyond the previous target have come (each trial waits
    /// for all of its own, so the previous target was reached).
    async fn expect(&self, more: u64, within: Duration) -> io::Result<()> {
        let target = self.target.get() + more;
        self.target.set(target);
        if self.count.get() >= target {
            return Ok(());
        }
        timeout(within, self.reached.notified()).await.map_err(|_| {
            error(format!(
                "{} of {} deliveries in time (receivers lost: {}, first error: {:?})",
                self.count.get(),
                target,
                self.lost.get(),
                self.first_error.borrow()
            ))
        })
    }
}

/// Connects `n` receivers to `addr`, each joining `room`, at most `concurrency` handshakes at
/// a time; each then counts the broadcasts it gets.
async fn receivers(o: &Opts, addr: &str, n: usize, deliveries: &Rc<Deliveries>) -> io::Result<()> {
    let handshakes = Rc::new(Semaphore::new(o.concurrency));
    let joined = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let done = Rc::new(Notify::new());
    for _ in 0..n {
        let (addr, room, handshakes, deliveries) = (
            addr.to_owned(),
            o.room.clone(),
            handshakes.clone(),
            deliveries.clone(),
        );
        let (joined, failed, done) = (joined.clone(), failed.clone(), done.clone());
        tokio::task::spawn_local(async move {
            let mut ws = {
                let permit = handshakes.acquire().await;
                let ws = join(&addr, &room).await;
                drop(permit);
                match ws {
                    Ok(ws) => {
                        joined.set(joined.get() + 1);
                        ws
                    }
                    Err(e) => {
                        failed.set(failed.get() + 1);
                        deliveries
                            .first_error
                            .borrow_mut()
                            .get_or_insert_with(|| e.to_string());
                        if joined.get() + failed.get() == n {
                            done.notify_one();
                        }
                        return;
                    }
                }
            };
            if joined.get() + failed.get() == n {
                done.notify_one();
            }
            loop {
                match ws.recv().await {
                    Ok(packet) => {
                        if packet.starts_with(b"2[\"msg\"") {
                            deliveries.delivered(packet);
                        }
                    }
                    Err(e) => {
                        deliveries.lost.set(deliveries.lost.get() + 1);
                        deliveries
                            .first_error
                            .borrow_mut()
                            .get_or_insert_with(|| e.to_string());
                        return;
                    }
                }
            }
        });
    }
    timeout(Duration::from_secs_f64(o.timeout), done.notified())
        .await
        .map_err(|_| error(format!("{} of {n} receivers joined in time", joined.get())))?;
    if failed.get() > 0 {
        return Err(error(format!(
            "{} receivers failed to join: {:?}",
            failed.get(),
            deliveries.first_error.borrow()
        )));
    }
    Ok(())
}

/// How the sender paces its broadcasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// All of a trial's broadcasts written at once, then their acks read.
    Pipelined,
    /// Each broadcast waits for its ack.
    WaitAck,
    /// One broadcast every `1 / rate` s, without waiting for acks.
    Paced,
}

/// The sender's connection and its next ack id.
#[derive(Debug)]
struct Sender {
    ws: Ws,
    next_id: u64,
    room: String,
    pad: String,
}

impl Sender {
    /// Writes one broadcast stamped with the current time; returns its ack id.
    async fn broadcast(&mut self, seq: u64) -> io::Result<u64> {
        self.broadcast_stamped(seq, now_us()).await
    }

    /// Writes one broadcast stamped `sent_us` (when it was due); returns its ack id.
    async fn broadcast_stamped(&mut self, seq: u64, sent_us: u64) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let packet = format!(
            "2{id}[\"bcast\",{},[{sent_us},{seq},\"{}\"]]",
            json!(self.room),
            self.pad
        );
        self.ws.send(&packet).await?;
        Ok(id)
    }
}

/// Broadcasts to a room of `--clients` sockets: receivers on `--addr`, the sender (not in the
/// room) on `--sender-addr` (the same server unless given: the cluster scenario sends on
/// another node). `--pid` names the servers to measure: the receivers' first.
pub(crate) async fn fanout(o: &Opts, mode: Mode) -> io::Result<Value> {
    let deliveries = Rc::new(Deliveries::default());
    receivers(o, &o.addr, o.clients, &deliveries).await?;
    let mut sender = Sender {
        // An acked round trip before the first broadcast (a room of its own, not the one it
        // broadcasts to): socketioxide may not have registered the handlers of a socket whose
        // CONNECT it answered (see `join`).
        ws: join(o.sender_addr.as_deref().unwrap_or(&o.addr), "sender").await?,
        next_id: 10,
        room: o.room.clone(),
        pad: padding(o.payload),
    };
    let n = o.clients as u64;
    let within = Duration::from_secs_f64(o.timeout);
    let mut rates = Vec::new();
    let mut window = None;
    let mut delivered = 0;
    for trial in 0..o.warmup_trials + o.trials {
        let measured = trial >= o.warmup_trials;
        if measured && window.is_none() {
            deliveries.recording.set(true);
            window = Some(CpuWindow::start(&o.pids));
        }
        let msgs = match mode {
            Mode::Paced if !measured => o.rate.ceil() as u64,
            Mode::Paced => (o.rate * o.duration).round() as u64,
            _ => o.msgs,
        };
        let first = Instant::now();
        let counted = deliveries.count.get();
        match mode {
            Mode::Pipelined => {
                let mut last_id = 0;
                for seq in 0..msgs {
                    last_id = sender.broadcast(seq).await?;
                }
                deliveries.expect(n * msgs, within).await?;
                ack(&mut sender.ws, last_id).await?;
            }
            Mode::WaitAck => {
                for seq in 0..msgs {
                    let id = sender.broadcast(seq).await?;
                    timeout(within, ack(&mut sender.ws, id))
                        .await
                        .map_err(|_| error("no ack in time"))??;
                }
                deliveries.expect(n * msgs, within).await?;
            }
            Mode::Paced => {
                let interval = Duration::from_secs_f64(1.0 / o.rate);
                let mut last_id = 0;
                let first_us = now_us();
                for seq in 0..msgs {
                    let due = interval * seq as u32;
                    sleep_until((first + due).into()).await;
                    // Stamped when due, not when sent: a server (or a load generator) that
                    // falls behind the schedule has its lateness counted in the latencies.
                    let due_us = first_us + u64::try_from(due.as_micros()).unwrap_or(u64::MAX);
                    last_id = sender.broadcast_stamped(seq, due_us).await?;
                }
                deliveries.expect(n * msgs, within).await?;
                ack(&mut sender.ws, last_id).await?;
            }
        }
        if measured {
            let last = deliveries.last.get().unwrap_or(first);
            let count = deliveries.count.get() - counted;
            delivered += count;
            rates.push(count as f64 / last.duration_since(first).as_secs_f64().max(1e-9));
        }
    }
    let window = window
        .map(|w| w.finish())
        .ok_or_else(|| error("no trial"))?;
    let mut result = json!({
        "clients": o.clients,
        "msgs": if mode == Mode::Paced { json!((o.rate * o.duration).round() as u64) } else { json!(o.msgs) },
        "trials": o.trials,
        "payload": o.payload,
        "mode": format!("{mode:?}"),
        "rate": if mode == Mode::Paced { json!(o.rate) } else { Value::Null },
        "deliveries": delivered,
        "deliveries_per_s": measure::median(&mut rates).map(|r| measure::round(r, 0)),
        "server_cpu_us_per_delivery": window
            .servers
            .iter()
            .map(|cpu| measure::per_op_us(*cpu, delivered))
            .collect::<Vec<_>>(),
        "latency": measure::percentiles(&mut deliveries.latencies.borrow_mut()),
        "receivers_lost": deliveries.lost.get(),
    });
    merge(&mut result, window.json());
    Ok(result)
}

/// A room of `--clients` WebSocket sockets: the server's RSS with them all joined; then
/// `--idle` seconds without traffic (heartbeats only: the server's CPU seconds, the sockets
/// lost); then `--broadcasts` broadcasts of `--payload` bytes, one at a time, each timed from
/// its emit to its last delivery.
pub(crate) async fn big_room(o: &Opts) -> io::Result<Value> {
    let pid = o
        .pids
        .first()
        .ok_or_else(|| error("--pid is needed"))?
        .clone();
    let rss_before = measure::rss_kib(&pid).ok_or_else(|| error("no RSS"))?;
    let deliveries = Rc::new(Deliveries::default());
    let connecting = Instant::now();
    receivers(o, &o.addr, o.clients, &deliveries).await?;
    let connected_in = connecting.elapsed().as_secs_f64();
    let mut sender = Sender {
        ws: join(&o.addr, "sender").await?,
        next_id: 10,
        room: o.room.clone(),
        pad: padding(o.payload),
    };
    // Whatever the connections left to do settles before memory is read and the idle starts.
    listen(&mut sender.ws, Duration::from_secs(2)).await?;
    let rss_joined = measure::rss_kib(&pid).ok_or_else(|| error("no RSS"))?;

    let pings = crate::ws::pings_answered();
    let idle = CpuWindow::start(&o.pids);
    // The sender answers its own pings while the receivers' tasks answer theirs.
    listen(&mut sender.ws, Duration::from_secs_f64(o.idle))
        .await
        .map_err(|e| error(format!("the sender's connection ended while idle: {e}")))?;
    let idle = idle.finish();
    let idle_pings = crate::ws::pings_answered() - pings;
    let lost_while_idle = deliveries.lost.get();

    let n = o.clients as u64;
    let within = Duration::from_secs_f64(o.timeout);
    let mut times = Vec::new();
    let mut window = None;
    // With no broadcasts asked for (an idle run), none is sent, not even the warm-up one.
    let warmups = if o.broadcasts == 0 {
        0
    } else {
        o.warmup_trials as u64
    };
    for seq in 0..warmups + o.broadcasts {
        if seq == warmups {
            deliveries.recording.set(true);
            window = Some(CpuWindow::start(&o.pids));
        }
        let sent = Instant::now();
        let id = sender.broadcast(seq).await?;
        deliveries.expect(n, within).await?;
        let last = deliveries.last.get().unwrap_or(sent);
        if window.is_some() {
            times.push(last.duration_since(sent).as_secs_f64() * 1e3);
        }
        ack(&mut sender.ws, id).await?;
    }
    let window = window.map(|w| w.finish());
    let mut sorted = times.clone();
    let mut result = json!({
        "clients": o.clients,
        "payload": o.payload,
        "connected_in_s": measure::round(connected_in, 2),
        "rss_before_kib": rss_before,
        "rss_joined_kib": rss_joined,
        "kib_per_socket": measure::round(rss_joined.saturating_sub(rss_before) as f64 / n as f64, 2),
        "idle_s": o.idle,
        "idle_server_cpu_s": idle.server(0).map(|s| measure::round(s, 3)),
        "idle_pings_answered": idle_pings,
        // Per ping: a window that is not a multiple of the ping interval holds one more ping
        // for the sockets that connected first, and a server that connects them slower
        // (Node) has more of those.
        "idle_server_cpu_us_per_ping": measure::per_op_us(idle.server(0), idle_pings),
        "idle_loadgen_cpu_pct": measure::round(100.0 * idle.loadgen / idle.wall.max(1e-9), 1),
        "lost_while_idle": lost_while_idle,
        "broadcasts": o.broadcasts,
        "emit_to_last_ms": measure::median(&mut sorted).map(|ms| measure::round(ms, 2)),
        "emit_to_last_ms_each": times.iter().map(|ms| measure::round(*ms, 2)).collect::<Vec<_>>(),
        "server_cpu_ms_per_broadcast": window
            .as_ref()
            .and_then(|w| w.server(0))
            .map(|s| measure::round(s * 1e3 / o.broadcasts as f64, 3)),
        "latency": measure::percentiles(&mut deliveries.latencies.borrow_mut()),
        "receivers_lost": deliveries.lost.get(),
    });
    if let Some(window) = window {
        merge(&mut result, window.json());
    }
    Ok(result)
}

/// Reads `ws` for `duration` (answering its pings), what comes ignored; an error if it ends.
async fn listen(ws: &mut Ws, duration: Duration) -> io::Result<()> {
    let reading = timeout(duration, async {
        loop {
            ws.recv().await?;
        }
    });
    match reading.await {
        Ok(Err::<Infallible, io::Error>(e)) => Err(e),
        _ => Ok(()),
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
