// Differential wire tests: runs the same scripted conversations against Node's socket.io 4.8
// (tests/js/diff_node_server.mjs) and against Belfry (the servers of tests/tests/differential.rs,
// with the same handlers), normalizes what a client saw (session and socket ids, ports, times)
// and prints one JSON line: {"<case>": {"same": bool, "node": ..., "belfry": ..., "note"?: ...}}.
//
// What is compared: raw HTTP responses (status, headers but the framing ones, body), raw
// WebSocket frames and close codes (the `ws` package), and what socket.io-client sees (events,
// their arguments, disconnect reasons, the Engine.IO packets it received). Times are compared in
// coarse buckets only.
//
// usage: node differential.mjs <node> <belfry> [case filter regex]
//   <node>, <belfry>: a base URL (http://127.0.0.1:PORT; the cases that need the short-heartbeat
//   or the shut-down server are then skipped) or JSON {"main": url, "fast": url, "doomed": url}
//   (as diff_node_server.mjs prints it).
// Exit code: 0 when every case ran (same or not), 2 on the global timeout.
import http from "node:http";
import net from "node:net";
import zlib from "node:zlib";
import WebSocket from "ws";
import { io } from "socket.io-client";

const [nodeArg, belfryArg, filterArg] = process.argv.slice(2);
if (!nodeArg || !belfryArg) {
  console.error("usage: node differential.mjs <node url|json> <belfry url|json> [filter]");
  process.exit(64);
}
const parseSide = (arg) => (arg.trim().startsWith("{") ? JSON.parse(arg) : { main: arg });
const SIDES = { node: parseSide(nodeArg), belfry: parseSide(belfryArg) };
const FILTER = filterArg ? new RegExp(filterArg) : null;
const CASE_TIMEOUT_MS = 10000;
const GLOBAL_TIMEOUT_MS = Number(process.env.DIFF_GLOBAL_TIMEOUT_MS || 52000);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (b) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString("hex");
/** A timing compared loosely: "~<expected>ms" within [expected - 100, expected + 150] ms, else
 * the time rounded to 100 ms (a loaded machine delays timers, it does not advance them). */
const near = (ms, expected) =>
  ms >= expected - 100 && ms <= expected + 150 ? `~${expected}ms` : `${Math.round(ms / 100) * 100}ms (expected ~${expected}ms)`;

// ---------------------------------------------------------------------------------------------
// The context of one case on one side: its servers, a transcript, ids to normalize, cleanups.

class Ctx {
  constructor(urls) {
    this.urls = urls;
    this.main = urls.main;
    this.fast = urls.fast;
    this.doomed = urls.doomed;
    this.t = {};
    this.ids = [];
    this.cleanups = [];
  }
  /** Registers a session or socket id, to be replaced by a placeholder. */
  id(value) {
    if (typeof value === "string" && value && !this.ids.includes(value)) this.ids.push(value);
  }
  defer(fn) {
    this.cleanups.push(fn);
  }
  async cleanup() {
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch {}
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

/** One request on a fresh connection; never rejects: {status, headers, body, ms} or {timeout} / {error}. */
function httpReq(c, base, method, path, { headers = {}, body, timeout = 3000 } = {}) {
  return new Promise((resolve) => {
    const u = new URL(base);
    const start = Date.now();
    const h = { connection: "close", ...headers };
    let payload;
    if (body !== undefined) {
      payload = Buffer.from(body);
      h["content-length"] = payload.length;
      if (!h["content-type"]) h["content-type"] = "text/plain;charset=UTF-8";
    }
    let done = false;
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers: h, agent: false });
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...v, ms: Date.now() - start, at: Date.now() });
    };
    const timer = setTimeout(() => {
      req.destroy();
      finish({ timeout: true });
    }, timeout);
    c.defer(() => req.destroy());
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", (e) => finish({ error: e.code || e.message }));
      res.on("aborted", () => finish({ error: "aborted" }));
    });
    req.on("error", (e) => finish({ error: e.code || e.message }));
    req.end(payload);
  });
}

// Framing and per-request headers are not compared.
const SKIP_HEADERS = new Set(["date", "connection", "keep-alive", "content-length", "transfer-encoding"]);

function bodyText(r) {
  let b = r.body;
  const enc = r.headers["content-encoding"];
  try {
    if (enc === "gzip") b = zlib.gunzipSync(b);
    else if (enc === "deflate") b = zlib.inflateSync(b);
    else if (enc === "br") b = zlib.brotliDecompressSync(b);
  } catch (e) {
    return `<undecodable ${enc}: ${e.message}>`;
  }
  return b.toString("utf8");
}

function pickHeaders(headers) {
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([k]) => !SKIP_HEADERS.has(k))
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

/** A response as compared: status, headers (framing aside), body (decompressed). */
function summary(r) {
  if (r.timeout) return "<no response>";
  if (r.error) return `<error ${r.error}>`;
  return { status: r.status, headers: pickHeaders(r.headers), body: bodyText(r) };
}

/** A response in one line: "<status> <body>". */
function brief(r) {
  if (r.timeout) return "<no response>";
  if (r.error) return `<error ${r.error}>`;
  return `${r.status} ${bodyText(r)}`;
}

/** An Engine.IO polling session, by raw HTTP. */
class Poll {
  constructor(c, base) {
    this.c = c;
    this.base = base;
  }
  path() {
    return `/socket.io/?EIO=4&transport=polling&sid=${this.sid}`;
  }
  /** The handshake; `query` is appended to `?EIO=4&transport=polling`. */
  async open(query = "", opts = {}) {
    const r = await httpReq(this.c, this.base, "GET", `/socket.io/?EIO=4&transport=polling${query}`, opts);
    this.sid = openSid(r);
    this.c.id(this.sid);
    return r;
  }
  get(opts) {
    return httpReq(this.c, this.base, "GET", this.path(), opts);
  }
  post(body, opts = {}) {
    return httpReq(this.c, this.base, "POST", this.path(), { ...opts, body });
  }
  /** Opens and joins `/` (or `ns`); returns the CONNECT reply's GET. */
  async joined(ns = "") {
    await this.open();
    await this.post(`40${ns}`);
    return this.get();
  }
}

function openSid(r) {
  try {
    return JSON.parse(r.body.toString().slice(1)).sid;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket (the `ws` package, without permessage-deflate).

function rawWs(c, base, query, { headers } = {}) {
  const url = `${base.replace(/^http/, "ws")}/socket.io/?${query}`;
  const w = { frames: [], log: [], closed: null, start: Date.now() };
  const waiters = new Set();
  const notify = () => [...waiters].forEach((f) => f());
  const ws = new WebSocket(url, { perMessageDeflate: false, headers });
  c.defer(() => ws.terminate());
  ws.on("upgrade", (res) => {
    w.upgrade = { status: res.statusCode, headers: pickHeaders(res.headers) };
    delete w.upgrade.headers["sec-websocket-accept"];
  });
  ws.on("unexpected-response", (req, res) => {
    const chunks = [];
    res.on("data", (d) => chunks.push(d));
    res.on("end", () => {
      w.unexpected = {
        status: res.statusCode,
        headers: pickHeaders(res.headers),
        body: Buffer.concat(chunks).toString(),
      };
      w.closed = { unexpected: res.statusCode };
      notify();
      req.destroy();
    });
  });
  ws.on("open", () => {
    w.open = true;
    notify();
  });
  ws.on("message", (data, isBinary) => {
    const f = isBinary ? `<bin ${hex(data)}>` : data.toString();
    w.frames.push(f);
    w.log.push({ f, ms: Date.now() - w.start });
    notify();
  });
  ws.on("close", (code, reason) => {
    if (!w.closed) w.closed = { code, reason: reason.toString() };
    w.closedAt = Date.now() - w.start;
    notify();
  });
  ws.on("error", (e) => {
    w.error = e.message;
    notify();
  });
  w.ws = ws;
  w.send = (d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(d);
  };
  /** Resolves true once `pred(w)`, false after `timeout`. */
  w.waitFor = (pred, timeout = 2000) =>
    new Promise((resolve) => {
      let timer;
      const check = () => {
        if (pred(w)) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(true);
        }
      };
      timer = setTimeout(() => {
        waiters.delete(check);
        resolve(false);
      }, timeout);
      waiters.add(check);
      check();
    });
  w.frameCount = (n, timeout) => w.waitFor((x) => x.frames.length >= n || x.closed, timeout);
  w.waitFrame = (text, timeout) => w.waitFor((x) => x.frames.includes(text) || x.closed, timeout);
  w.waitClose = (timeout) => w.waitFor((x) => x.closed, timeout);
  w.opened = () => w.waitFor((x) => x.open || x.closed, 3000);
  /** The frames and how the connection ended (null: still open). */
  w.summary = () => ({
    ...(w.upgrade ? { upgrade: w.upgrade.status } : {}),
    ...(w.unexpected ? { unexpected: w.unexpected } : {}),
    frames: [...w.frames],
    close: w.closed,
  });
  return w;
}

/** A WebSocket session joined to `/`. */
async function wsJoined(c, base) {
  const w = rawWs(c, base, "EIO=4&transport=websocket");
  await w.frameCount(1);
  c.id(openSid({ body: Buffer.from(w.frames[0] || "") }));
  w.send("40");
  await w.frameCount(2);
  return w;
}

// ---------------------------------------------------------------------------------------------
// socket.io-client.

/** Makes values JSON-comparable: buffers become {"<bin>": hex}. */
function val(v) {
  if (v === undefined) return "<undefined>";
  if (typeof v === "function") return "<function>";
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return { "<bin>": hex(v) };
  if (Array.isArray(v)) return v.map(val);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, val(x)]));
  return v;
}

function client(c, base, { ns = "/", transports, auth, noPong = false, upgrade } = {}) {
  const s = io(base + ns, {
    forceNew: true,
    reconnection: false,
    timeout: 5000,
    ...(transports ? { transports } : {}),
    ...(auth ? { auth } : {}),
    ...(upgrade === false ? { upgrade: false } : {}),
  });
  const rec = { events: [], packets: [], engineClose: null };
  const engine = s.io.engine;
  if (noPong) {
    // Never answer the server's pings.
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
  }
  engine.on("packet", (p) => {
    if (p.type === "open") c.id(JSON.parse(p.data).sid);
    rec.packets.push(p.data === undefined ? p.type : `${p.type} ${typeof p.data === "string" ? p.data : `<bin ${hex(p.data)}>`}`);
  });
  engine.on("close", (reason) => (rec.engineClose = reason));
  s.on("connect", () => {
    c.id(s.id);
    rec.events.push(["connect"]);
  });
  s.on("connect_error", (e) => rec.events.push(["connect_error", e.message, val(e.data ?? null)]));
  s.on("disconnect", (reason) => rec.events.push(["disconnect", reason]));
  s.onAny((event, ...args) => rec.events.push([event, ...args.map(val)]));
  c.defer(() => s.disconnect());
  s.rec = rec;
  /** Resolves with the arguments of the next `event`; rejects after `timeout`. */
  s.next = (event, timeout = 3000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${event}" within ${timeout} ms`)), timeout);
      s.once(event, (...args) => {
        clearTimeout(timer);
        resolve(args);
      });
    });
  s.ack = (timeout, ...args) => s.timeout(timeout).emitWithAck(...args);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Normalization.

/** Replaces the registered ids (and every `"sid":"..."` found) by <id1>, <id2>... in order of
 * registration, then first appearance; ports, times and WebSocket keys by fixed placeholders. */
function normalize(t, c) {
  const ids = [...c.ids];
  const add = (v) => {
    if (typeof v === "string" && v && !ids.includes(v)) ids.push(v);
  };
  const collect = (v) => {
    if (typeof v === "string") {
      for (const m of v.matchAll(/"sid":"([^"]+)"/g)) add(m[1]);
    } else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (k === "sid" && typeof x === "string") add(x);
        collect(x);
      }
    }
  };
  collect(t);
  const pairs = ids.map((v, i) => [v, `<id${i + 1}>`]).sort((a, b) => b[0].length - a[0].length);
  const str = (s) => {
    for (const [v, p] of pairs) s = s.split(v).join(p);
    return s
      .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:<port>")
      .replace(/"time":"[^"]*"/g, '"time":"<time>"')
      .replace(/"issued":\d+/g, '"issued":"<issued>"')
      .replace(/"sec-websocket-key":"[^"]*"/g, '"sec-websocket-key":"<key>"');
  };
  // Values that differ on every run, wherever they appear as object fields.
  const FIELDS = { time: "<time>", issued: "<issued>", "sec-websocket-key": "<key>" };
  const walk = (v) => {
    if (typeof v === "string") return str(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [str(k), k in FIELDS && x !== null && typeof x !== "object" ? FIELDS[k] : walk(x)]),
      );
    }
    return v;
  };
  return walk(t);
}

// ---------------------------------------------------------------------------------------------
// The cases. Each fills `c.t` (its transcript) as it goes: a timeout or an exception keeps what
// was recorded so far.

const cases = [];
/** `needs`: the servers besides `main` ("fast", "doomed"). */
const def = (name, fn, { needs = [], note } = {}) => cases.push({ name, fn, needs, note });

// 1. Handshake.
def("handshake.open", async (c) => {
  c.t.response = summary(await httpReq(c, c.main, "GET", "/socket.io/?EIO=4&transport=polling"));
  c.id(openSid({ body: Buffer.from(c.t.response.body || "") }));
});

def("handshake.open-with-origin", async (c) => {
  const r = await httpReq(c, c.main, "GET", "/socket.io/?EIO=4&transport=polling", {
    headers: { origin: "http://example.com" },
  });
  c.t.response = summary(r);
  c.id(openSid(r));
});

// Node reads the query with `URLSearchParams`: keys are percent-decoded as values are, and `+`
// is a space.
def("handshake.encoded-keys", async (c) => {
  const r = await httpReq(c, c.main, "GET", "/socket.io/?%45IO=4&%74ransport=polling");
  c.id(openSid(r));
  c.t["polling %45IO, %74ransport"] = summary(r);
  const plus = await httpReq(c, c.main, "GET", "/socket.io/?E+IO=4&transport=polling");
  c.t["polling E+IO"] = summary(plus);
  const w = rawWs(c, c.main, "EIO=4&%74ransport=websocket");
  await w.waitFor((x) => x.closed || x.frames.length, 2000);
  c.t["websocket %74ransport"] = w.summary();
});

def("handshake.open-websocket", async (c) => {
  const w = rawWs(c, c.main, "EIO=4&transport=websocket");
  await w.frameCount(1);
  c.t.upgrade = w.upgrade;
  c.t.frames = [...w.frames];
});

def(
  "handshake.errors",
  async (c) => {
    const requests = [
      ["EIO=5", "GET", "?EIO=5&transport=polling"],
      ["no EIO", "GET", "?transport=polling"],
      ["no transport", "GET", "?EIO=4"],
      ["unknown transport", "GET", "?EIO=4&transport=foo"],
      ["unknown sid (GET)", "GET", "?EIO=4&transport=polling&sid=nonexistent"],
      ["unknown sid (POST)", "POST", "?EIO=4&transport=polling&sid=nonexistent", "40"],
      ["empty EIO", "GET", "?EIO=&transport=polling"],
      ["empty transport", "GET", "?EIO=4&transport="],
      ["empty sid (GET)", "GET", "?EIO=4&transport=polling&sid="],
      ["empty sid (POST)", "POST", "?EIO=4&transport=polling&sid=", "40"],
      ["unknown sid, then empty", "GET", "?EIO=4&transport=polling&sid=nonexistent&sid="],
      ["EIO=4&EIO=3", "GET", "?EIO=4&EIO=3&transport=polling"],
      ["EIO=3&EIO=4", "GET", "?EIO=3&EIO=4&transport=polling"],
      ["PUT", "PUT", "?EIO=4&transport=polling"],
      ["OPTIONS", "OPTIONS", "?EIO=4&transport=polling"],
      ["websocket without upgrade", "GET", "?EIO=4&transport=websocket"],
    ];
    for (const [label, method, query, body] of requests) {
      const r = await httpReq(c, c.main, method, `/socket.io/${query}`, { body });
      c.id(openSid(r));
      c.t[label] = summary(r);
    }
    const upgrades = [
      ["ws: unknown sid", "EIO=4&transport=websocket&sid=nonexistent"],
      ["ws: transport=polling", "EIO=4&transport=polling"],
      ["ws: unknown transport", "EIO=4&transport=foo"],
      ["ws: empty sid", "EIO=4&transport=websocket&sid="],
    ];
    for (const [label, query] of upgrades) {
      const w = rawWs(c, c.main, query);
      await w.waitFor((x) => x.closed || x.frames.length, 2000);
      await sleep(50);
      c.t[label] = w.summary();
    }
  },
  { note: "Node: 400 {code,message}: 5 Unsupported protocol version, 0 Transport unknown, 1 Session ID unknown, 2 Bad handshake method, 3 Bad request" },
);

// Node answers 101, then writes an HTTP 400 on the upgraded socket; Belfry answers 400 before
// upgrading (docs/PROTOCOL.md, deviations).
def("handshake.websocket-bad-eio", async (c) => {
  const w = rawWs(c, c.main, "EIO=5&transport=websocket");
  await w.waitFor((x) => x.closed || x.frames.length, 2000);
  await sleep(50);
  c.t["ws: EIO=5"] = w.summary();
});

// 2. Polling message flow.
def("polling.flow", async (c) => {
  const p = new Poll(c, c.main);
  c.t.open = summary(await p.open());
  c.t["POST 40"] = summary(await p.post("40"));
  c.t["GET connect"] = summary(await p.get());
  c.t["POST event"] = summary(await p.post('42["echo",1,"a",{"b":[null,true]}]'));
  await sleep(50);
  c.t["GET echo"] = summary(await p.get());
  await p.post('42["echo","x"]\x1e42["echo","y"]');
  await sleep(50);
  c.t["GET two echoes"] = brief(await p.get());
  await p.post('421["echo-ack",{"a":1},"é"]');
  await sleep(50);
  c.t["GET ack"] = brief(await p.get());
  // Binary from the client: a base64 message after the packet's header.
  await p.post('451-["echo",{"_placeholder":true,"num":0}]\x1ebAQID');
  await sleep(50);
  c.t["GET binary echo"] = brief(await p.get());
  // A pending GET answered by an event.
  const pending = p.get();
  await sleep(30);
  await p.post('42["echo","late"]');
  c.t["pending GET"] = brief(await pending);
  c.t["POST 1"] = brief(await p.post("1"));
  await sleep(100);
});

// A GET that comes after the client's close was served: Node answers 400 (the session is gone);
// Belfry keeps the session (up to 1 s) and answers the first such GET `6`, so that a
// GET sent before the close but served after it (a multi-thread runtime) gets the same answer
// whatever the order (docs/PROTOCOL.md, deviations).
def("polling.get-after-client-close", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  c.t["POST 1"] = brief(await p.post("1"));
  c.t["GET after close"] = summary(await p.get({ timeout: 1000 }));
  await sleep(100);
  c.t["GET 100 ms later"] = brief(await p.get({ timeout: 1000 }));
});

def("polling.overlapping-gets", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  const first = p.get({ timeout: 1500 });
  await sleep(30);
  const second = await p.get({ timeout: 1500 });
  c.t["second GET"] = summary(second);
  c.t["first GET"] = brief(await first);
  c.t["GET after"] = brief(await p.get({ timeout: 1000 }));
});

def("polling.too-large-post", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  const pending = p.get({ timeout: 1500 });
  await sleep(30);
  c.t["POST 1000001 bytes"] = summary(await p.post(`4${"x".repeat(1000000)}`));
  await sleep(50);
  // Is the session still there?
  c.t["POST after"] = brief(await p.post('42["echo","alive"]', { timeout: 1000 }));
  c.t["pending GET"] = brief(await pending);
  c.t["GET after"] = brief(await p.get({ timeout: 500 }));
});

def("polling.post-binary-content-type", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  // An octet-stream body is one binary message (as engine.io-client sends from browsers with
  // binary support over XHR2).
  c.t["POST placeholder"] = brief(await p.post('451-["echo",{"_placeholder":true,"num":0}]'));
  c.t["POST octet-stream"] = brief(
    await p.post(Buffer.from([1, 2, 3]), { headers: { "content-type": "application/octet-stream" } }),
  );
  await sleep(50);
  c.t["GET echo"] = brief(await p.get());
});

// 3. WebSocket message flow.
def("websocket.flow", async (c) => {
  const w = rawWs(c, c.main, "EIO=4&transport=websocket");
  await w.frameCount(1);
  c.t.upgrade = w.upgrade;
  w.send("40");
  await w.frameCount(2);
  w.send('42["echo",1,"a",{"b":[null,true]}]');
  await w.frameCount(3);
  w.send('421["echo-ack",{"a":1},"é"]');
  await w.frameCount(4);
  w.send('451-["echo",{"_placeholder":true,"num":0}]');
  w.send(Buffer.from([1, 2, 3]));
  await w.frameCount(6);
  w.send('42["echo","x"]');
  w.send('42["echo","y"]');
  await w.frameCount(8);
  w.send("41");
  await sleep(100);
  w.send('42["echo","after leaving"]');
  await sleep(100);
  w.send("1");
  await w.waitClose(1000);
  c.t.ws = w.summary();
});

def("websocket.client-ping", async (c) => {
  // In Engine.IO v4 only the server pings: a client ping is a protocol error.
  const w = await wsJoined(c, c.main);
  w.send("2");
  await w.waitClose(1000);
  c.t.ws = w.summary();
});

def("websocket.too-large-message", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send(`4${"x".repeat(1000000)}`);
  await w.waitClose(2000);
  c.t.ws = w.summary();
});

def("websocket.bad-engine-packet", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send("9");
  await w.waitClose(1000);
  c.t.ws = w.summary();
});

def("websocket.bad-socketio-packet", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send('42{"not":"an array"}');
  await w.waitClose(1000);
  c.t.ws = w.summary();
});

def("websocket.event-to-unjoined-namespace", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send('42/guarded,["echo",1]');
  await w.waitClose(1000);
  c.t.ws = w.summary();
});

// 4. Upgrade.
async function startUpgrade(c) {
  const p = new Poll(c, c.main);
  const connect = await p.joined();
  c.t["GET connect"] = brief(connect);
  const pending = p.get({ timeout: 2000 });
  await sleep(30);
  const w = rawWs(c, c.main, `EIO=4&transport=websocket&sid=${p.sid}`);
  await w.opened();
  w.send("2probe");
  await w.frameCount(1);
  return { p, w, pending, probedAt: Date.now() };
}

def(
  "upgrade.flow",
  async (c) => {
    const { p, w, pending, probedAt } = await startUpgrade(c);
    c.t.probe = [...w.frames];
    const g = await pending;
    const after = g.at - probedAt;
    c.t["pending GET"] = {
      response: brief(g),
      "within 50 ms of 3probe": after < 50,
      "within 400 ms of 3probe": after < 400,
    };
    w.send("5");
    await sleep(50);
    w.send('42["echo","over ws"]');
    await w.frameCount(2);
    c.t["ws frames"] = [...w.frames];
    c.t["GET after upgrade"] = summary(await p.get({ timeout: 1000 }));
    c.t["POST after upgrade"] = summary(await p.post('42["echo","by post"]', { timeout: 1000 }));
    await sleep(100);
    c.t.ws = w.summary();
  },
  { note: "Node writes a noop to the pending GET 100 ms after 3probe (then every 100 ms)" },
);

def(
  "upgrade.second-websocket",
  async (c) => {
    const { w, pending } = await startUpgrade(c);
    await pending;
    w.send("5");
    await sleep(50);
    const second = rawWs(c, c.main, `EIO=4&transport=websocket&sid=${c.ids[0]}`);
    await second.waitClose(1000);
    c.t.second = second.summary();
    w.send('42["echo","first still works"]');
    await w.frameCount(2);
    c.t.first = w.summary();
  },
  { note: "Node answers 101, then closes the second WebSocket at once" },
);

def("upgrade.server-closes-during-upgrade", async (c) => {
  const { p, w, pending } = await startUpgrade(c);
  // The probe answered, the client has not sent "5": the server closes the session.
  c.t["POST bye"] = brief(await p.post('42["bye"]'));
  c.t["pending GET"] = brief(await pending);
  c.t["next GET"] = brief(await p.get({ timeout: 1500 }));
  c.t["GET after"] = brief(await p.get({ timeout: 1500 }));
  await w.waitClose(1500);
  c.t.ws = w.summary();
});

def("upgrade.client-sees-server-close-during-upgrade", async (c) => {
  const s = client(c, c.main);
  s.io.engine.once("upgrading", () => s.emit("bye"));
  const [reason] = await s.next("disconnect", 4000);
  c.t.reason = reason;
  c.t.events = s.rec.events;
});

def("upgrade.socketio-client", async (c) => {
  const s = client(c, c.main);
  const upgraded = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no upgrade within 2 s")), 2000);
    s.io.engine.once("upgrade", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await s.next("connect");
  await upgraded;
  c.t.transport = s.io.engine.transport.name;
  c.t.echo = await s.ack(2000, "echo-ack", "after upgrade");
  s.disconnect();
  c.t.events = s.rec.events;
  // Whether a noop reached the client depends on timing (a GET still pending 100 ms after the
  // probe's answer gets one, on both servers): not compared here (upgrade.flow checks the noop and its timing).
  c.t.packets = s.rec.packets.filter((p) => p !== "noop");
});

// 5. Heartbeat (the "fast" servers: pingInterval 300 ms, pingTimeout 200 ms).
def(
  "heartbeat.polling-no-pong",
  async (c) => {
    const p = new Poll(c, c.fast);
    const open = await p.open();
    c.t.open = brief(open);
    const g1 = await p.get({ timeout: 2000 });
    c.t["GET 1"] = { response: brief(g1), after: near(g1.ms, 300) };
    const g2 = await p.get({ timeout: 2000 });
    c.t["GET 2"] = { response: brief(g2), after: near(g2.ms, 200) };
    c.t["GET 3"] = summary(await p.get({ timeout: 1000 }));
  },
  { needs: ["fast"] },
);

def(
  "heartbeat.polling-idle",
  async (c) => {
    const p = new Poll(c, c.fast);
    await p.open();
    await sleep(800);
    c.t["GET after 800 ms"] = summary(await p.get({ timeout: 1000 }));
  },
  { needs: ["fast"] },
);

def(
  "heartbeat.message-extends-the-pong-wait",
  async (c) => {
    const p = new Poll(c, c.fast);
    await p.joined();
    const ping = await p.get({ timeout: 2000 });
    c.t.ping = brief(ping);
    // No pong: a message 150 ms into the 200 ms wait gives the client 200 ms more, once.
    await sleep(150);
    c.t.post = brief(await p.post('42["nobody-listens"]'));
    const g = await p.get({ timeout: 1000 });
    c.t["GET after the message"] = { response: brief(g), after: near(g.ms, 200) };
  },
  { needs: ["fast"], note: "Node refreshes the ping timeout once on a packet that is not a pong" },
);

def(
  "heartbeat.polling-with-pong",
  async (c) => {
    const p = new Poll(c, c.fast);
    await p.open();
    const seen = [];
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      const g = await p.get({ timeout: 1000 });
      seen.push(brief(g));
      if (g.status !== 200) break;
      if (bodyText(g) === "2") await p.post("3");
    }
    c.t["GET bodies"] = [...new Set(seen)];
    c.t["still open"] = brief(await p.post('40'));
  },
  { needs: ["fast"] },
);

def(
  "heartbeat.websocket-no-pong",
  async (c) => {
    const w = rawWs(c, c.fast, "EIO=4&transport=websocket");
    await w.waitClose(2000);
    c.t.frames = w.log.map(({ f, ms }) => (f.startsWith("0{") ? f : `${f} at ${near(ms, 300)}`));
    c.t.close = w.closed;
    c.t["closed at"] = near(w.closedAt, 500);
  },
  { needs: ["fast"] },
);

// 6. Client close racing a pending GET.
def("close.client-close-races-pending-get", async (c) => {
  const outcomes = {};
  const count = (k) => (outcomes[k] = (outcomes[k] || 0) + 1);
  let last;
  for (let i = 0; i < 50; i++) {
    const p = new Poll(c, c.main);
    await p.open();
    const g = p.get({ timeout: 1500 });
    await sleep(10);
    const post = await p.post("1");
    count(`GET ${brief(await g)}`);
    count(`POST ${brief(post)}`);
    last = p;
  }
  c.t.outcomes = Object.fromEntries(Object.entries(outcomes).sort());
  c.t["GET after close"] = summary(await last.get({ timeout: 1000 }));
});

// 7. Server close on both transports.
for (const transport of ["polling", "websocket"]) {
  def(`server-close.client-${transport}`, async (c) => {
    const s = client(c, c.main, { transports: [transport] });
    await s.next("connect");
    const from = s.rec.packets.length;
    s.emit("bye");
    const [reason] = await s.next("disconnect");
    await sleep(100);
    c.t.reason = reason;
    c.t["packets after bye"] = s.rec.packets.slice(from);
    c.t["engine close"] = s.rec.engineClose;
  });
}

def(
  "server-close.raw-polling",
  async (c) => {
    const p = new Poll(c, c.main);
    await p.joined();
    const pending = p.get({ timeout: 2000 });
    await sleep(30);
    c.t["POST bye"] = brief(await p.post('42["bye"]'));
    c.t["pending GET"] = brief(await pending);
    c.t["next GET"] = brief(await p.get({ timeout: 1500 }));
    c.t["GET after"] = summary(await p.get({ timeout: 1500 }));
  },
  { note: 'Node: the pending GET gets "41" alone, the next GET "6\\x1e1"' },
);

def("server-close.raw-websocket", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send('42["bye"]');
  await w.waitClose(1500);
  c.t.ws = w.summary();
});

def("server-kick.raw-websocket", async (c) => {
  const w = await wsJoined(c, c.main);
  w.send('42["kick"]');
  await w.frameCount(3, 1000);
  await sleep(100);
  // The connection stays: join again.
  w.send("40");
  await w.frameCount(4, 1000);
  c.t.ws = w.summary();
});

// 8. Namespaces and their errors.
def(
  "namespaces.raw",
  async (c) => {
    const p = new Poll(c, c.main);
    await p.joined();
    c.t["POST 40/foo,"] = brief(await p.post("40/foo,"));
    c.t["GET"] = brief(await p.get({ timeout: 1000 }));
    c.t["POST 40/guarded, wrong token"] = brief(await p.post('40/guarded,{"token":"no"}'));
    c.t["GET refusal"] = brief(await p.get({ timeout: 1000 }));
    c.t["POST 40/guarded, no auth"] = brief(await p.post("40/guarded,"));
    c.t["GET refusal 2"] = brief(await p.get({ timeout: 1000 }));
    c.t["POST 40/guarded, good token"] = brief(await p.post('40/guarded,{"token":"ok"}'));
    c.t["GET connect"] = brief(await p.get({ timeout: 1000 }));
    c.t["POST event to /foo"] = brief(await p.post('42/foo,["echo",1]'));
    c.t["GET after"] = brief(await p.get({ timeout: 500 }));
  },
  { note: 'Node: 44/foo,{"message":"Invalid namespace"}' },
);

def("namespaces.client", async (c) => {
  const unknown = client(c, c.main, { ns: "/foo" });
  const [unknownError] = await unknown.next("connect_error");
  c.t.unknown = { message: unknownError.message, data: val(unknownError.data ?? null) };
  const refused = client(c, c.main, { ns: "/guarded", auth: { token: "no" } });
  const [error] = await refused.next("connect_error");
  c.t.refused = { message: error.message, data: val(error.data ?? null) };
  const ok = client(c, c.main, { ns: "/guarded", auth: { token: "ok" } });
  await ok.next("connect");
  c.t.ok = ok.connected;
  c.t.events = { unknown: unknown.rec.events, refused: refused.rec.events, ok: ok.rec.events };
});

// 9. Argument shapes, both ways.
const SHAPES = ["none", "null", "several", "text", "numbers", "nested-binary", "ordered-binary", "binary-args"];

def("args.server-shapes-websocket", async (c) => {
  const w = await wsJoined(c, c.main);
  for (const [i, kind] of SHAPES.entries()) {
    const from = w.frames.length;
    w.send(`42${i}["shape","${kind}"]`);
    await w.waitFor((x) => x.frames.includes(`43${i}["done"]`) || x.closed);
    c.t[kind] = w.frames.slice(from);
  }
});

def("args.server-shapes-polling", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  for (const [i, kind] of SHAPES.entries()) {
    await p.post(`42${i}["shape","${kind}"]`);
    await sleep(50);
    const bodies = [];
    for (let n = 0; n < 5; n++) {
      const g = await p.get({ timeout: 1000 });
      bodies.push(brief(g));
      if (g.status !== 200 || bodyText(g).includes(`43${i}["done"]`)) break;
    }
    c.t[kind] = bodies;
  }
});

const ECHOES = {
  none: [],
  null: [null],
  several: [1, "two", { three: 3 }, [4], true],
  text: ['é\n"\\/\u0001\u2028😀'],
  numbers: [0, -1, 1.5, 1e21, 2 ** 53, -0],
  "key order": [{ z: 1, a: 2, m: { y: 1, b: 2 } }],
  "nested-binary": [{ a: Buffer.from([1, 2]), b: [Buffer.from([3]), { c: Buffer.from([4]) }] }],
  "ordered-binary": [{ tag: "t", text: "hello", n: 1, bin: Buffer.from([5, 6]) }],
  "binary-args": [Buffer.from([7]), "after", Buffer.from([])],
};

for (const transport of ["websocket", "polling"]) {
  def(`args.client-echo-${transport}`, async (c) => {
    const s = client(c, c.main, { transports: [transport] });
    await s.next("connect");
    for (const [name, args] of Object.entries(ECHOES)) {
      const from = s.rec.packets.length;
      const echoed = s.next("echo");
      s.emit("echo", ...args);
      const got = (await echoed).map(val);
      const acked = await s.ack(2000, "echo-ack", ...args).then(
        (r) => val(r),
        (e) => `<${e.message}>`,
      );
      c.t[name] = { echo: got, "echo-ack": acked, packets: s.rec.packets.slice(from) };
    }
  });
}

def("args.ack-null", async (c) => {
  const s = client(c, c.main, { transports: ["websocket"] });
  await s.next("connect");
  const from = s.rec.packets.length;
  c.t.ack = val(await s.ack(2000, "ack-null"));
  c.t.packets = s.rec.packets.slice(from);
  // The callback's arguments as they arrive (emitWithAck keeps the first only).
  c.t.args = await new Promise((resolve) => s.emit("ack-null", (...args) => resolve(args.map(val))));
});

// 10. Disconnect reasons, as socket.io-client and the server's disconnect handler see them.
async function serverReason(c, base, id) {
  const probe = client(c, base, { transports: ["websocket"] });
  await probe.next("connect");
  await sleep(100);
  return probe.ack(2000, "reason-of", id);
}

def("reasons.server-disconnect", async (c) => {
  const s = client(c, c.main, { transports: ["websocket"] });
  await s.next("connect");
  const id = s.id;
  s.emit("kick");
  c.t.client = (await s.next("disconnect"))[0];
  c.t.server = await serverReason(c, c.main, id);
});

def("reasons.server-close", async (c) => {
  const s = client(c, c.main, { transports: ["websocket"] });
  await s.next("connect");
  const id = s.id;
  s.emit("bye");
  c.t.client = (await s.next("disconnect"))[0];
  c.t.server = await serverReason(c, c.main, id);
});

def("reasons.client-disconnect", async (c) => {
  const s = client(c, c.main, { transports: ["websocket"] });
  await s.next("connect");
  const id = s.id;
  s.disconnect();
  c.t.client = s.rec.events.at(-1);
  c.t.server = await serverReason(c, c.main, id);
});

def("reasons.client-closes-transport", async (c) => {
  const s = client(c, c.main, { transports: ["websocket"] });
  await s.next("connect");
  const id = s.id;
  const gone = s.next("disconnect");
  s.io.engine.close();
  c.t.client = (await gone)[0];
  c.t.server = await serverReason(c, c.main, id);
});

for (const transport of ["websocket", "polling"]) {
  def(
    `reasons.ping-timeout-${transport}`,
    async (c) => {
      const s = client(c, c.fast, { transports: [transport], noPong: true });
      await s.next("connect");
      const id = s.id;
      const from = s.rec.packets.length;
      c.t.client = (await s.next("disconnect", 3000))[0];
      c.t["packets until then"] = s.rec.packets.slice(from);
      c.t.server = await serverReason(c, c.fast, id);
    },
    { needs: ["fast"] },
  );
}

// 11. The handshake as a handler sees it.
const HANDSHAKE_QUERY = "%26a=%26%3D%3Fa&b=a%2Bb%20c&c=a+b&d=1&d=2";

def("handshake.object-polling", async (c) => {
  const p = new Poll(c, c.main);
  await p.open(`&t=abc&${HANDSHAKE_QUERY}`, { headers: { "x-custom": "yes", "user-agent": "diff" } });
  await p.post('40{"token":"abc"}');
  c.t.connect = brief(await p.get());
  await p.post('421["whoami"]');
  const g = await p.get();
  c.t.raw = brief(g);
  try {
    c.t.handshake = JSON.parse(bodyText(g).slice(3))[0];
  } catch {}
});

def("handshake.object-websocket", async (c) => {
  const w = rawWs(c, c.main, `EIO=4&transport=websocket&${HANDSHAKE_QUERY}`, {
    headers: { "x-custom": "yes", "user-agent": "diff" },
  });
  await w.frameCount(1);
  w.send('40{"token":"abc"}');
  await w.frameCount(2);
  w.send('421["whoami"]');
  await w.frameCount(3);
  c.t.raw = w.frames[2];
  try {
    c.t.handshake = JSON.parse(w.frames[2].slice(3))[0];
  } catch {}
});

def("handshake.object-client", async (c) => {
  const s = client(c, c.main, { transports: ["polling"], auth: { user: "ann", n: [1, { b: null }] } });
  await s.next("connect");
  const h = await s.ack(2000, "whoami");
  c.t.auth = h.auth;
  c.t.query = { ...h.query, t: h.query.t ? "<t>" : h.query.t };
  c.t.keys = Object.keys(h);
  c.t.address = h.address;
  c.t.xdomain = h.xdomain;
  c.t.secure = h.secure;
  // `time` is `new Date().toString()` (normalized away above): its format, and the second of
  // `issued`.
  c.t.timeFormat = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4} \(.+\)$/.test(h.time);
  c.t.timeIsIssued = Math.abs(Date.parse(h.time) - Math.floor(h.issued / 1000) * 1000) <= 1000;
});

// 12. Acks under a burst.
for (const transport of ["websocket", "polling"]) {
  def(`acks.burst-${transport}`, async (c) => {
    const s = client(c, c.main, { transports: [transport] });
    await s.next("connect");
    const answers = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        s.ack(8000, "message-with-ack", i).then(
          (r) => r,
          () => "timeout",
        ),
      ),
    );
    c.t.acks = answers.filter((a) => a !== "timeout").length;
    c.t.matching = answers.filter((a, i) => a === i).length;
  });
}

// 12b. A handler that waits does not hold back the socket's next event: the answers come in
// the order the handlers finish.
for (const transport of ["websocket", "polling"]) {
  def(`handlers.await-does-not-hold-the-next-${transport}`, async (c) => {
    const s = client(c, c.main, { transports: [transport] });
    await s.next("connect");
    const order = [];
    await Promise.all(
      [400, 0].map((ms) => s.ack(4000, "later", ms).then((answer) => order.push(answer))),
    );
    c.t.order = order;
  });
}

// 13. HTTP compression of a large polling response.
for (const [label, acceptEncoding] of [
  ["deflate-gzip", "deflate, gzip"],
  ["gzip-deflate", "gzip, deflate"],
  ["q-values", "gzip;q=0.5, deflate;q=0.8"],
  ["unsupported", "br"],
  ["identity-star", "*"],
]) {
  def(`compression.${label}`, async (c) => {
    const p = new Poll(c, c.main);
    await p.joined();
    await p.post('42["big"]');
    await sleep(50);
    const g = await p.get({ headers: { "accept-encoding": acceptEncoding } });
    const s = summary(g);
    if (typeof s === "object") {
      s.body = s.body === `42["big","${"x".repeat(5000)}"]` ? "<the big event>" : s.body.slice(0, 100);
    }
    c.t["accept-encoding"] = acceptEncoding;
    c.t.response = s;
  });
}

def("compression.small-response", async (c) => {
  const p = new Poll(c, c.main);
  await p.joined();
  await p.post('42["echo","small"]');
  await sleep(50);
  c.t.response = summary(await p.get({ headers: { "accept-encoding": "gzip, deflate" } }));
});

// 11. The HTTP server's limits (the "fast" servers: Node with keepAliveTimeout 500 ms and
// headersTimeout 1000 ms; Belfry served by `belfry::serve` with a keep-alive timeout of 500 ms).

/** A raw connection to `base`: writes `head`, then `drip` one byte every 100 ms (until closed);
 * resolves with what came back and when the server closed it. */
function rawConnection(c, base, head, drip = "") {
  return new Promise((resolve) => {
    const u = new URL(base);
    const socket = net.connect(Number(u.port), u.hostname);
    c.defer(() => socket.destroy());
    const start = Date.now();
    let data = "";
    let timer;
    socket.on("connect", () => {
      socket.write(head);
      let i = 0;
      if (drip) {
        timer = setInterval(() => {
          if (!socket.destroyed) socket.write(drip[i++ % drip.length]);
        }, 100);
      }
    });
    socket.on("data", (chunk) => (data += chunk.toString("latin1")));
    const done = (how) => {
      clearInterval(timer);
      resolve({ how, ms: Date.now() - start, data });
    };
    socket.on("close", () => done("closed"));
    socket.on("error", () => {});
    setTimeout(() => {
      socket.destroy();
      done("still open after 4 s");
    }, 4000);
  });
}

def(
  "http.idle-keep-alive-connection",
  async (c) => {
    const r = await rawConnection(
      c,
      c.fast,
      "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: localhost\r\n\r\n",
    );
    c.t.status = r.data.split("\r\n")[0];
    // Node closes 1 s after its keepAliveTimeout (its keepAliveTimeoutBuffer), Belfry at it.
    c.t.closed =
      r.how === "closed" && r.ms >= 400 && r.ms <= 2000
        ? "closed 0.5-1.5 s after the response"
        : `${r.how} after ${r.ms} ms`;
  },
  { needs: ["fast"], note: "a connection left idle after its response is closed after the keep-alive timeout" },
);

def(
  "http.slow-request-head",
  async (c) => {
    const r = await rawConnection(c, c.fast, "GET /socket.io/?EIO=4&trans", "port=polling&x=y");
    c.t.answer = r.data.split("\r\n")[0] || "(none)";
    c.t.closed = r.how;
  },
  {
    needs: ["fast"],
    note: "Node answers 408 after headersTimeout; Belfry closes the connection after the keep-alive timeout, without an answer",
  },
);

// 10 (end). Server shutdown: last, it ends the "doomed" servers.
def(
  "shutdown.io-close",
  async (c) => {
    const ws = client(c, c.doomed, { transports: ["websocket"] });
    await ws.next("connect");
    const polling = client(c, c.doomed, { transports: ["polling"] });
    await polling.next("connect");
    const raw = await wsJoined(c, c.doomed);
    const p = new Poll(c, c.doomed);
    await p.joined();
    const pending = p.get({ timeout: 2000 });
    await sleep(30);
    const reasons = Promise.all([ws.next("disconnect"), polling.next("disconnect")]);
    ws.emit("shutdown");
    const [[wsReason], [pollingReason]] = await reasons;
    c.t["client (websocket)"] = wsReason;
    c.t["client (polling)"] = pollingReason;
    c.t["pending GET"] = brief(await pending);
    await raw.waitClose(1500);
    c.t["raw websocket"] = raw.summary();
    c.t["polling packets"] = polling.rec.packets.slice(-3);
  },
  { needs: ["doomed"] },
);

def(
  "shutdown.after-close",
  async (c) => {
    await sleep(200);
    const r = await httpReq(c, c.doomed, "GET", "/socket.io/?EIO=4&transport=polling", { timeout: 1000 });
    c.id(openSid(r));
    c.t.handshake = summary(r);
  },
  { needs: ["doomed"], note: "Node's io.close() closes the HTTP server: new connections are refused" },
);

// ---------------------------------------------------------------------------------------------
// The runner.

const out = {};
const print = () => console.log(JSON.stringify(out));
setTimeout(() => {
  out._runner = { same: false, note: `global timeout after ${GLOBAL_TIMEOUT_MS} ms` };
  print();
  process.exit(2);
}, GLOBAL_TIMEOUT_MS).unref();

async function runSide(kase, urls) {
  const c = new Ctx(urls);
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      kase.fn(c),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`case timeout (${CASE_TIMEOUT_MS} ms)`)), CASE_TIMEOUT_MS);
      }),
    ]);
  } catch (e) {
    c.t.error = String((e && e.message) || e);
  } finally {
    clearTimeout(timer);
  }
  await c.cleanup();
  const t = normalize(c.t, c);
  return { t, ms: Date.now() - started };
}

for (const kase of cases) {
  if (FILTER && !FILTER.test(kase.name)) continue;
  const missing = kase.needs.filter((n) => !SIDES.node[n] || !SIDES.belfry[n]);
  if (missing.length) {
    out[kase.name] = { same: true, skipped: `needs the ${missing.join(", ")} servers` };
    continue;
  }
  const node = await runSide(kase, SIDES.node);
  const belfry = await runSide(kase, SIDES.belfry);
  const same = JSON.stringify(node.t) === JSON.stringify(belfry.t) && !node.t.error;
  const entry = { same, node: node.t, belfry: belfry.t };
  const notes = [];
  if (kase.note) notes.push(kase.note);
  if (node.t.error) notes.push(`the Node side failed: ${node.t.error}`);
  if (notes.length) entry.note = notes.join("; ");
  entry.ms = { node: node.ms, belfry: belfry.ms };
  out[kase.name] = entry;
  process.stderr.write(`${same ? "same     " : "DIFFERENT"} ${kase.name} (node ${node.ms} ms, belfry ${belfry.ms} ms)\n`);
}
print();
process.exit(0);
