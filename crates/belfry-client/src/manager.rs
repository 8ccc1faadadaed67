//! The manager's task: it owns the connection (opening it, reconnecting with backoff, closing
//! it when no socket is left) and, for each namespace joined over it, the socket's state: its
//! `CONNECT`, the acks it waits for, the emits buffered while disconnected, the private id
//! and last offset of connection state recovery.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    future::Future,
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use belfry_core::{
    parser::{Decoder, Packet, PacketData, ParseError, Parser, Payload},
    proto::{Str, value::Value},
};
use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    AckError, ConnectError, DisconnectReason, ReconnectEvent,
    backoff::Backoff,
    builder::Auth,
    data,
    engine::{self, Engine, Incoming, Outgoing, Target},
    listeners::{Acker, Answer, EVENT_BACKLOG, Event, ToListeners, ToTask},
    socket::{AckWaiter, Command, SocketInner, State},
};

/// What the manager does while it runs (socket.io-client's Manager options).
pub(crate) struct Options {
    pub(crate) target: Target,
    pub(crate) reconnection: bool,
    pub(crate) reconnection_attempts: Option<u32>,
    pub(crate) reconnection_delay: Duration,
    pub(crate) reconnection_delay_max: Duration,
    pub(crate) randomization_factor: f64,
    pub(crate) ack_timeout: Option<Duration>,
    /// socket.io-client's `retries`: 0 for none.
    pub(crate) retries: u32,
    pub(crate) parser: Parser,
}

/// Where an answer goes.
type Answerer = oneshot::Sender<Result<Payload, AckError>>;

/// An ack this client waits for.
struct PendingAck {
    /// The emit's waiter, or the head of the retry queue.
    target: AckTarget,
    deadline: Option<Instant>,
}

enum AckTarget {
    Emit(Answerer),
    Queue,
}

impl PendingAck {
    /// True when nobody waits for it any more (an emit whose future was dropped).
    fn abandoned(&self) -> bool {
        matches!(&self.target, AckTarget::Emit(answer) if answer.is_closed())
    }

    fn answer(self, result: Result<Payload, AckError>) {
        if let AckTarget::Emit(answer) = self.target {
            let _ = answer.send(result);
        }
    }
}

/// The acks a socket waits for, their deadlines in order: finding the next deadline and the
/// expired ones does not scan them all (a load generator may wait for thousands).
#[derive(Default)]
struct Acks {
    waiting: HashMap<u64, PendingAck>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// How many waiters there may be before the abandoned ones (futures dropped) are swept
    /// out: twice as many as after the last sweep, so that sweeping costs O(1) per emit.
    sweep_at: usize,
}

impl Acks {
    /// The fewest waiters a sweep is made for.
    const MIN_SWEEP: usize = 1024;

    fn insert(&mut self, id: u64, ack: PendingAck) {
        if let Some(deadline) = ack.deadline {
            self.deadlines.insert((deadline, id));
        }
        self.waiting.insert(id, ack);
        if self.waiting.len() >= self.sweep_at.max(Self::MIN_SWEEP) {
            self.waiting.retain(|_, ack| !ack.abandoned());
            let waiting = &self.waiting;
            self.deadlines.retain(|(_, id)| waiting.contains_key(id));
            self.sweep_at = self.waiting.len() * 2;
        }
    }

    fn remove(&mut self, id: u64) -> Option<PendingAck> {
        let ack = self.waiting.remove(&id)?;
        if let Some(deadline) = ack.deadline {
            self.deadlines.remove(&(deadline, id));
        }
        Some(ack)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Takes out the waiters whose deadline is `now` or before.
    fn expired(&mut self, now: Instant) -> Vec<(u64, PendingAck)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(ack) = self.waiting.remove(&id) {
                expired.push((id, ack));
            }
        }
        expired
    }

    fn ids(&self) -> Vec<u64> {
        self.waiting.keys().copied().collect()
    }

    fn drain(&mut self) -> impl Iterator<Item = PendingAck> + '_ {
        self.deadlines.clear();
        self.waiting.drain().map(|(_, ack)| ack)
    }
}

/// An emit under retries (socket.io-client 4.6's queue): sent one at a time, in order, each
/// until the server acknowledges it or its tries are spent.
struct Queued {
    payload: Payload,
    answer: Option<Answerer>,
    /// How long each try waits for the ack (the emit's timeout, or `ack_timeout`).
    timeout: Option<Duration>,
    tries: u32,
    /// The ack id of the try in flight.
    in_flight: Option<u64>,
}

/// A socket joining its namespace.
pub(crate) struct Join {
    pub(crate) ns: Str,
    pub(crate) key: u64,
    pub(crate) state: Arc<State>,
    pub(crate) auth: Arc<Mutex<Auth>>,
    pub(crate) events: ToTask,
    pub(crate) socket: Weak<SocketInner>,
    /// Told how its first connection went.
    pub(crate) first: oneshot::Sender<Result<(), ConnectError>>,
}

/// Starts the manager's task.
pub(crate) fn spawn(
    options: Arc<Options>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: ToTask,
) {
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let driver = Driver {
        options,
        commands,
        answers,
        answers_tx,
        events,
        sockets: Vec::new(),
    };
    tokio::spawn(driver.run());
}

/// One namespace's socket, as the manager keeps it.
struct Nsp {
    ns: Str,
    key: u64,
    /// Counts the socket's server sessions (one per `CONNECT` answered).
    session: u64,
    state: Arc<State>,
    auth: Arc<Mutex<Auth>>,
    events: ToTask,
    socket: Weak<SocketInner>,
    acks: Acks,
    next_ack: u64,
    /// Emits waiting for a connection (socket.io-client's `sendBuffer`).
    buffer: Vec<Packet>,
    /// Emits under retries.
    queue: VecDeque<Queued>,
    /// The private id of the last session (connection state recovery).
    pid: Option<String>,
    /// The last offset received (connection state recovery).
    last_offset: Option<String>,
    first: Option<oneshot::Sender<Result<(), ConnectError>>>,
}

/// The task that owns the connection.
struct Driver {
    options: Arc<Options>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Answers to the server's events, from the listeners.
    answers: mpsc::UnboundedReceiver<Answer>,
    answers_tx: mpsc::UnboundedSender<Answer>,
    /// The manager's listeners (reconnection events).
    events: ToTask,
    /// The sockets, in the order they joined (their `CONNECT`s go in that order).
    sockets: Vec<Nsp>,
}

/// How one connection ended.
enum Ended {
    /// Reconnect (unless reconnection is off).
    Lost(DisconnectReason),
    /// No socket is left: the connection was closed; the manager waits for one to join.
    Idle,
    /// Every handle is gone.
    Stop,
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = Backoff::new(
            self.options.reconnection_delay,
            self.options.reconnection_delay_max,
            self.options.randomization_factor,
        );
        loop {
            // Nothing to connect for: wait for a socket to join.
            if self.sockets.is_empty() {
                backoff.reset();
                match self.commands.recv().await {
                    Some(command) => {
                        self.command(None, command);
                    }
                    None => return,
                }
                continue;
            }
            // An attempt after a delay, of a first connection or after a lost one, is a
            // reconnection attempt (as in socket.io-client).
            let reconnecting = backoff.attempts() > 0;
            let options = self.options.clone();
            let Some(opened) = self.offline_until(engine::open(&options.target)).await else {
                return self.stop();
            };
            match opened {
                Ok(engine) => {
                    if reconnecting {
                        self.tell(ReconnectEvent::Reconnected(backoff.attempts()));
                    }
                    backoff.reset();
                    match self.session(engine).await {
                        Ended::Stop => return self.stop(),
                        Ended::Idle => continue,
                        Ended::Lost(reason) => {
                            let (reconnects, retries) =
                                (self.options.reconnection, self.options.retries);
                            for nsp in &mut self.sockets {
                                nsp.lost(reason, reconnects, retries);
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot connect");
                    let error = ConnectError::Unreachable(error.to_string());
                    for nsp in &self.sockets {
                        nsp.tell(ToListeners::ConnectError(error.clone()));
                    }
                    if reconnecting {
                        self.tell(ReconnectEvent::Error(error.to_string()));
                    }
                    if !self.options.reconnection {
                        self.give_up(&error);
                        continue;
                    }
                }
            }
            if !self.options.reconnection {
                self.give_up(&ConnectError::Unreachable(
                    "the connection was lost".to_owned(),
                ));
                continue;
            }
            if self
                .options
                .reconnection_attempts
                .is_some_and(|max| backoff.attempts() >= max)
            {
                self.tell(ReconnectEvent::Failed);
                self.give_up(&ConnectError::Unreachable(
                    "reconnection attempts exhausted".to_owned(),
                ));
                continue;
            }
            // Wait, still taking commands (emits are buffered) and expiring acks.
            let delay = backoff.next_delay();
            if self
                .offline_until(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return self.stop();
            }
            if !self.sockets.is_empty() {
                self.tell(ReconnectEvent::Attempt(backoff.attempts()));
            }
        }
    }

    /// Hands a reconnection event to the manager's listeners.
    fn tell(&self, event: ReconnectEvent) {
        self.events.tell(ToListeners::Reconnect(event));
    }

    /// No more connections: every socket is closed with `error`.
    fn give_up(&mut self, error: &ConnectError) {
        for mut nsp in self.sockets.drain(..) {
            nsp.fail(error.clone());
            nsp.finish();
        }
    }

    /// Every handle is gone.
    fn stop(&mut self) {
        self.give_up(&ConnectError::Unreachable("the client stopped".to_owned()));
    }

    fn find(&mut self, ns: &str) -> Option<&mut Nsp> {
        self.sockets.iter_mut().find(|nsp| *nsp.ns == *ns)
    }

    /// Takes the socket of `ns` out.
    fn remove(&mut self, ns: &str) -> Option<Nsp> {
        let index = self.sockets.iter().position(|nsp| *nsp.ns == *ns)?;
        Some(self.sockets.remove(index))
    }

    /// Takes the socket of `ns` out if it is the one of `key` (a handle of a socket that left
    /// does not touch a newer one of its namespace).
    fn remove_socket(&mut self, ns: &str, key: u64) -> Option<Nsp> {
        let index = self
            .sockets
            .iter()
            .position(|nsp| *nsp.ns == *ns && nsp.key == key)?;
        Some(self.sockets.remove(index))
    }

    /// A socket joins: `None` when its namespace has one already (it is told).
    fn join(&mut self, join: Join) -> Option<&mut Nsp> {
        if self.find(&join.ns).is_some() {
            let _ = join
                .first
                .send(Err(ConnectError::AlreadyJoined(join.ns.to_string())));
            return None;
        }
        self.sockets.push(Nsp {
            ns: join.ns,
            key: join.key,
            session: 0,
            state: join.state,
            auth: join.auth,
            events: join.events,
            socket: join.socket,
            acks: Acks::default(),
            next_ack: 0,
            buffer: Vec::new(),
            queue: VecDeque::new(),
            pid: None,
            last_offset: None,
            first: Some(join.first),
        });
        self.sockets.last_mut()
    }

    /// Runs `future` while there is no connection: emits are buffered, acks expire, sockets
    /// join and leave; `None` when every handle is gone.
    async fn offline_until<T>(&mut self, future: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(future);
        loop {
            let next_deadline = self.next_deadline();
            tokio::select! {
                done = &mut future => return Some(done),
                command = self.commands.recv() => {
                    self.command(None, command?);
                }
                () = sleep_until(next_deadline) => {
                    let _ = self.expire_acks(None);
                }
            }
        }
    }

    /// The earliest deadline of the acks waited for.
    fn next_deadline(&self) -> Option<Instant> {
        self.sockets
            .iter()
            .filter_map(|nsp| nsp.acks.next_deadline())
            .min()
    }

    /// Fails the acks whose deadline passed; a try of the retry queue that timed out is made
    /// again, on `engine` when connected. `Err` when writing failed.
    fn expire_acks(&mut self, engine: Option<&Engine>) -> Result<(), ()> {
        let now = Instant::now();
        let (parser, retries) = (self.options.parser, self.options.retries);
        for nsp in &mut self.sockets {
            if nsp.expire_acks(now, retries)
                && let Some(engine) = engine
                && nsp.state.connected.load(Ordering::Acquire)
            {
                nsp.drain_queue(engine, parser)?;
            }
        }
        Ok(())
    }

    /// Runs one connection: a `CONNECT` per socket, then packets both ways until it ends.
    async fn session(&mut self, engine: Engine) -> Ended {
        // Answers to a server session that is gone are not sent to the new one.
        while self.answers.try_recv().is_ok() {}
        let parser = self.options.parser;
        // Every socket left while the connection opened.
        if self.sockets.is_empty() {
            let _ = engine.outgoing.send(Outgoing::Close);
            return Ended::Idle;
        }
        for nsp in &self.sockets {
            if send(&engine, parser, nsp.connect_packet()).is_err() {
                return Ended::Lost(DisconnectReason::TransportError);
            }
        }
        let mut engine = engine;
        let mut decoder = Decoder::default();
        let ended = loop {
            let next_deadline = self.next_deadline();
            tokio::select! {
                incoming = engine.incoming.recv() => {
                    let packet = match incoming {
                        Some(Incoming::Text(text)) if parser == Parser::Default => {
                            decoder.decode_text(text)
                        }
                        Some(Incoming::Binary(data)) if parser == Parser::Default => {
                            decoder.decode_binary(data)
                        }
                        // The msgpack parser: one binary message per packet, never text.
                        Some(Incoming::Binary(data)) => {
                            belfry_core::parser::msgpack::decode(&data).map(Some)
                        }
                        Some(Incoming::Text(_)) => Err(ParseError::InvalidPayload),
                        Some(Incoming::Closed(reason)) => return Ended::Lost(reason),
                        None => return Ended::Lost(DisconnectReason::TransportClose),
                    };
                    match packet {
                        Ok(Some(packet)) => {
                            if let Some(ended) = self.on_packet(&engine, packet) {
                                break ended;
                            }
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, "undecodable packet from the server");
                            break Ended::Lost(DisconnectReason::ParseError);
                        }
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        for nsp in &self.sockets {
                            if nsp.state.connected.load(Ordering::Acquire) {
                                let _ = send(&engine, parser, Packet::disconnect(nsp.ns.clone()));
                            }
                        }
                        break Ended::Stop;
                    };
                    if let Some(ended) = self.command(Some(&engine), command) {
                        break ended;
                    }
                }
                Some(answer) = self.answers.recv() => {
                    let current = self.find(&answer.ns).is_some_and(|nsp| {
                        nsp.key == answer.key
                            && nsp.session == answer.session
                            && nsp.state.connected.load(Ordering::Acquire)
                    });
                    if current {
                        let packet = Packet::ack(answer.ns, answer.payload, answer.id);
                        let _ = send(&engine, parser, packet);
                    }
                }
                () = sleep_until(next_deadline) => {
                    if self.expire_acks(Some(&engine)).is_err() {
                        break Ended::Lost(DisconnectReason::TransportError);
                    }
                }
            }
        };
        // The client ends the connection (a lost one is closed already).
        let _ = engine.outgoing.send(Outgoing::Close);
        ended
    }

    /// A command, while connected on `engine` or without a connection; `Some` when the
    /// connection ends.
    fn command(&mut self, engine: Option<&Engine>, command: Command) -> Option<Ended> {
        let parser = self.options.parser;
        match command {
            Command::Join(join) => {
                let nsp = self.join(*join)?;
                if let Some(engine) = engine
                    && send(engine, parser, nsp.connect_packet()).is_err()
                {
                    return Some(Ended::Lost(DisconnectReason::TransportError));
                }
            }
            Command::Emit {
                ns,
                key,
                payload,
                ack,
                volatile,
            } => {
                if self.emit(engine, &ns, key, payload, ack, volatile).is_err() {
                    return Some(Ended::Lost(DisconnectReason::TransportError));
                }
            }
            Command::Disconnect { ns, key, done } => {
                let ended = self.leave(engine, &ns, key);
                let _ = done.send(());
                return ended;
            }
            Command::Dropped(ns, key) => return self.leave(engine, &ns, key),
        }
        None
    }

    /// An emit of the socket of `ns`: sent when connected (`engine`), or buffered; a volatile
    /// one is dropped rather than buffered; under retries, it joins the socket's queue.
    fn emit(
        &mut self,
        engine: Option<&Engine>,
        ns: &str,
        key: u64,
        payload: Payload,
        ack: Option<AckWaiter>,
        volatile: bool,
    ) -> Result<(), ()> {
        let (parser, retries, ack_timeout) = (
            self.options.parser,
            self.options.retries,
            self.options.ack_timeout,
        );
        // A socket that left (its waiter, dropped, reads `Closed`), not a newer one of its
        // namespace.
        let Some(nsp) = self
            .sockets
            .iter_mut()
            .find(|nsp| *nsp.ns == *ns && nsp.key == key)
        else {
            return Ok(());
        };
        // An engine whose task ended is not written to: what would be lost waits in the
        // buffer for the next connection (the engine's reason for ending is on its way).
        let engine = engine.filter(|engine| {
            nsp.state.connected.load(Ordering::Acquire) && !engine.outgoing.is_closed()
        });
        if retries > 0 && !volatile {
            let (answer, timeout) = match ack {
                Some((answer, timeout)) => (Some(answer), timeout),
                None => (None, ack_timeout),
            };
            nsp.queue.push_back(Queued {
                payload,
                answer,
                timeout,
                tries: 0,
                in_flight: None,
            });
            return match engine {
                Some(engine) => nsp.drain_queue(engine, parser),
                None => Ok(()),
            };
        }
        match engine {
            Some(engine) => send(engine, parser, nsp.event_packet(payload, ack)),
            None if volatile => Ok(()),
            None => {
                let packet = nsp.event_packet(payload, ack);
                nsp.buffer.push(packet);
                Ok(())
            }
        }
    }

    /// The socket of `ns` leaves (`DISCONNECT` when it was connected); the connection ends
    /// when it was the last.
    fn leave(&mut self, engine: Option<&Engine>, ns: &str, key: u64) -> Option<Ended> {
        let mut nsp = self.remove_socket(ns, key)?;
        if let Some(engine) = engine
            && nsp.state.connected.load(Ordering::Acquire)
        {
            let _ = send(
                engine,
                self.options.parser,
                Packet::disconnect(nsp.ns.clone()),
            );
        }
        nsp.lost(DisconnectReason::IoClientDisconnect, false, 0);
        nsp.finish();
        self.sockets.is_empty().then_some(Ended::Idle)
    }

    /// A packet from the server; `Some` when the connection ends.
    fn on_packet(&mut self, engine: &Engine, packet: Packet) -> Option<Ended> {
        let parser = self.options.parser;
        let answers = self.answers_tx.clone();
        let Some(nsp) = self.find(&packet.ns) else {
            // A socket that left after its `CONNECT` went: the server's socket leaves too.
            if matches!(packet.data, PacketData::Connect(_)) {
                let _ = send(engine, parser, Packet::disconnect(packet.ns));
            }
            return None;
        };
        match packet.data {
            PacketData::Connect(data) => {
                let reply: serde_json::Value = data
                    .as_deref()
                    .and_then(|data| serde_json::from_str(data).ok())
                    .unwrap_or_default();
                let Some(sid) = reply.get("sid").and_then(serde_json::Value::as_str) else {
                    nsp.fail(ConnectError::Refused {
                        message: "It seems you are trying to reach a Socket.IO server in v2.x"
                            .to_owned(),
                        data: Value::Null,
                    });
                    return self.end_socket(&packet.ns);
                };
                let pid = reply
                    .get("pid")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let recovered = pid.is_some() && pid == nsp.pid;
                nsp.session += 1;
                nsp.pid = pid;
                *nsp.state.id.lock() = Some(sid.to_owned());
                nsp.state.recovered.store(recovered, Ordering::Release);
                nsp.state.connected.store(true, Ordering::Release);
                // What waited while disconnected, in order, then the retry queue; an engine
                // whose task ended keeps them buffered for the next connection.
                if !engine.outgoing.is_closed() {
                    for packet in std::mem::take(&mut nsp.buffer) {
                        if send(engine, parser, packet).is_err() {
                            return Some(Ended::Lost(DisconnectReason::TransportError));
                        }
                    }
                }
                if nsp.drain_queue(engine, parser).is_err() {
                    return Some(Ended::Lost(DisconnectReason::TransportError));
                }
                nsp.tell(ToListeners::Connect);
                if let Some(first) = nsp.first.take() {
                    let _ = first.send(Ok(()));
                }
                None
            }
            PacketData::ConnectError(data) => {
                let error: serde_json::Value = serde_json::from_str(&data)
                    .unwrap_or_else(|_| serde_json::Value::String(data.to_string()));
                let message = match &error {
                    serde_json::Value::String(message) => message.clone(),
                    other => other
                        .get("message")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
                let data = error
                    .get("data")
                    .map(|data| data::to_value(data).unwrap_or_default())
                    .unwrap_or_default();
                let error = ConnectError::Refused { message, data };
                nsp.tell(ToListeners::ConnectError(error.clone()));
                nsp.fail(error);
                self.end_socket(&packet.ns)
            }
            PacketData::Disconnect => {
                nsp.lost(DisconnectReason::IoServerDisconnect, false, 0);
                self.end_socket(&packet.ns)
            }
            PacketData::Event { payload, ack } => {
                let values = match data::values(&payload) {
                    Ok(values) => values,
                    Err(error) => {
                        tracing::warn!(%error, "undecodable event from the server");
                        return None;
                    }
                };
                let mut values = values.into_iter();
                let Some(Value::String(name)) = values.next() else {
                    return None;
                };
                let args: Vec<Value> = values.collect();
                if nsp.pid.is_some()
                    && ack.is_none()
                    && let Some(Value::String(offset)) = args.last()
                {
                    nsp.last_offset = Some(offset.clone());
                }
                // Every handle is gone: the socket is leaving.
                if nsp.socket.strong_count() == 0 {
                    return None;
                }
                let event = Event {
                    name,
                    args,
                    ack: ack.map(|id| Acker {
                        ns: nsp.ns.clone(),
                        key: nsp.key,
                        session: nsp.session,
                        id,
                        answers,
                    }),
                    socket: nsp.socket.clone(),
                };
                if nsp.events.event(event).is_err() {
                    // The listeners are far behind: rather than queue without bound, the
                    // connection is dropped (recovery, when on, replays what was missed).
                    tracing::warn!(
                        backlog = EVENT_BACKLOG,
                        "listeners too slow for the server's events: reconnecting"
                    );
                    return Some(Ended::Lost(DisconnectReason::TransportError));
                }
                None
            }
            PacketData::Ack { payload, ack } => {
                match nsp.acks.remove(ack) {
                    Some(PendingAck {
                        target: AckTarget::Queue,
                        ..
                    }) => {
                        // The head of the queue is delivered: the next goes.
                        if let Some(Queued {
                            answer: Some(answer),
                            ..
                        }) = nsp.queue.pop_front()
                        {
                            let _ = answer.send(Ok(payload));
                        }
                        if nsp.drain_queue(engine, parser).is_err() {
                            return Some(Ended::Lost(DisconnectReason::TransportError));
                        }
                    }
                    Some(pending) => pending.answer(Ok(payload)),
                    None => {}
                }
                None
            }
        }
    }

    /// The socket of `ns` is done (refused, or disconnected by the server); the connection
    /// ends when it was the last.
    fn end_socket(&mut self, ns: &str) -> Option<Ended> {
        if let Some(mut nsp) = self.remove(ns) {
            nsp.finish();
        }
        self.sockets.is_empty().then_some(Ended::Idle)
    }
}

impl Nsp {
    /// Hands `what` to the socket's listeners.
    fn tell(&self, what: ToListeners) {
        self.events.tell(what);
    }

    /// The event packet of `payload`, registering its ack.
    fn event_packet(&mut self, payload: Payload, ack: Option<AckWaiter>) -> Packet {
        let id = ack.map(|(answer, timeout)| self.wait_ack(AckTarget::Emit(answer), timeout));
        Packet::event(self.ns.clone(), payload, id)
    }

    /// A new ack id, its answer going to `target`, waited for `timeout` at most.
    fn wait_ack(&mut self, target: AckTarget, timeout: Option<Duration>) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        self.acks.insert(id, PendingAck { target, deadline });
        id
    }

    /// Sends the head of the retry queue, when no try of it is in flight: a new try, with a
    /// new ack id (as socket.io-client does).
    fn drain_queue(&mut self, engine: &Engine, parser: Parser) -> Result<(), ()> {
        let Some(head) = self.queue.front() else {
            return Ok(());
        };
        if head.in_flight.is_some() || engine.outgoing.is_closed() {
            return Ok(());
        }
        let (payload, timeout) = (head.payload.clone(), head.timeout);
        let id = self.wait_ack(AckTarget::Queue, timeout);
        if let Some(head) = self.queue.front_mut() {
            head.tries += 1;
            head.in_flight = Some(id);
        }
        send(
            engine,
            parser,
            Packet::event(self.ns.clone(), payload, Some(id)),
        )
    }

    /// The try in flight of the queue's head failed with `error`: it is given up (its emit
    /// told) when it had `retries + 1` tries, or waits to be tried again.
    fn try_failed(&mut self, error: AckError, retries: u32) {
        let Some(head) = self.queue.front_mut() else {
            return;
        };
        head.in_flight = None;
        if head.tries <= retries {
            return;
        }
        if let Some(Queued {
            answer: Some(answer),
            ..
        }) = self.queue.pop_front()
        {
            let _ = answer.send(Err(error));
        }
    }

    /// Fails the acks whose deadline passed; a buffered emit whose ack timed out is not sent
    /// any more (as socket.io-client takes it out of its send buffer). True when a try of the
    /// retry queue timed out (the next one is due).
    fn expire_acks(&mut self, now: Instant, retries: u32) -> bool {
        let mut retry = false;
        for (id, ack) in self.acks.expired(now) {
            match ack.target {
                AckTarget::Queue => {
                    self.try_failed(AckError::Timeout, retries);
                    retry = true;
                }
                AckTarget::Emit(_) => ack.answer(Err(AckError::Timeout)),
            }
            if !self.buffer.is_empty() {
                self.buffer.retain(|packet| {
                    !matches!(packet.data, PacketData::Event { ack: Some(ack), .. } if ack == id)
                });
            }
        }
        retry
    }

    /// `CONNECT` with the auth object, and the private id and offset of the last session
    /// (connection state recovery): `{pid, offset, ...auth}`.
    fn connect_packet(&self) -> Packet {
        // Cloned out of the lock: a function is called without it.
        let auth = self.auth.lock().clone().current();
        let mut fields = serde_json::Map::new();
        if let Some(pid) = &self.pid {
            fields.insert("pid".to_owned(), serde_json::Value::from(pid.as_str()));
            if let Some(offset) = &self.last_offset {
                fields.insert(
                    "offset".to_owned(),
                    serde_json::Value::from(offset.as_str()),
                );
            }
        }
        if let Some(auth) = auth
            .as_ref()
            .and_then(|auth| serde_json::to_value(auth).ok())
        {
            match auth {
                serde_json::Value::Object(auth) => fields.extend(auth),
                other if fields.is_empty() => {
                    return Packet {
                        ns: self.ns.clone(),
                        data: PacketData::Connect(Some(Str::from(other.to_string()))),
                    };
                }
                _ => {}
            }
        }
        let data =
            (!fields.is_empty()).then(|| Str::from(serde_json::Value::Object(fields).to_string()));
        Packet {
            ns: self.ns.clone(),
            data: PacketData::Connect(data),
        }
    }

    /// The connection was lost (or the socket left, for `reason`): the acks of what was sent
    /// fail (socket.io-client 4.7.5: "socket has been disconnected"), those of buffered emits
    /// still wait; `reconnects` says whether the manager will try again.
    fn lost(&mut self, reason: DisconnectReason, reconnects: bool, retries: u32) {
        let buffered: HashSet<u64> = self
            .buffer
            .iter()
            .filter_map(|packet| match packet.data {
                PacketData::Event { ack, .. } => ack,
                _ => None,
            })
            .collect();
        let sent = self
            .acks
            .ids()
            .into_iter()
            .filter(|id| !buffered.contains(id));
        for id in sent {
            match self.acks.remove(id) {
                // A try lost with the connection counts as a try (socket.io-client 4.8).
                Some(PendingAck {
                    target: AckTarget::Queue,
                    ..
                }) => self.try_failed(AckError::Disconnected, retries),
                Some(ack) => ack.answer(Err(AckError::Disconnected)),
                None => {}
            }
        }
        if !reason.reconnects() || !reconnects {
            // Told before the listeners run: `active()` is false in them.
            self.state.closed.store(true, Ordering::Release);
        }
        if self.state.connected.swap(false, Ordering::AcqRel) {
            *self.state.id.lock() = None;
            self.tell(ToListeners::Disconnect(reason));
        }
    }

    /// Tells the socket's `connect` how its first connection went, if it waits.
    fn fail(&mut self, error: ConnectError) {
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(error));
        }
    }

    /// Marks the socket closed, fails what waits.
    fn finish(&mut self) {
        self.state.closed.store(true, Ordering::Release);
        self.state.connected.store(false, Ordering::Release);
        for pending in self.acks.drain() {
            pending.answer(Err(AckError::Closed));
        }
        for queued in self.queue.drain(..) {
            if let Some(answer) = queued.answer {
                let _ = answer.send(Err(AckError::Closed));
            }
        }
        self.fail(ConnectError::Unreachable("the client stopped".to_owned()));
    }
}

/// Writes `packet` on `engine`: with the default parser, its text then its attachments; with
/// msgpack, one binary message.
fn send(engine: &Engine, parser: Parser, packet: Packet) -> Result<(), ()> {
    if parser == Parser::Msgpack {
        // Packets the client builds always encode (their JSON is its own).
        let message = belfry_core::parser::msgpack::encode(&packet).map_err(|_| ())?;
        return engine
            .outgoing
            .send(Outgoing::Binary(message))
            .map_err(|_| ());
    }
    let (text, attachments) = packet.into_shared("4");
    engine
        .outgoing
        .send(Outgoing::Text(text.to_string()))
        .map_err(|_| ())?;
    for attachment in attachments {
        engine
            .outgoing
            .send(Outgoing::Binary(attachment))
            .map_err(|_| ())?;
    }
    Ok(())
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
