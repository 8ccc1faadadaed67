// Node's side of the Redis adapter's wire format, with notepack.io (the encoder
// @socket.io/redis-adapter 8.x uses). The Rust test (tests/tests/redis_wire.rs) makes the assertions.
//
// usage: node redis_wire.mjs encode          -> {"hex": <a broadcast as Node's adapter publishes it>}
//        node redis_wire.mjs decode <hex>    -> {"uid", "packet", "opts"} as Node's adapter reads them
import notepack from "notepack.io";

const [mode, hex] = process.argv.slice(2);
if (mode === "encode") {
  // RedisAdapter.broadcast for `io.to("room").except("muted").volatile.timeout(1500)
  //   .emit("file", Buffer, {...})` on namespace /chat: [uid, packet, opts].
  const packet = {
    type: 2,
    data: ["file", Buffer.from([0, 1, 2]), { n: 1, u: undefined, f: 1.5, big: 2 ** 40, neg: -3, s: "é", arr: [undefined] }],
    nsp: "/chat",
  };
  const opts = { rooms: ["room"], except: ["muted"], flags: { volatile: true, timeout: 1500 } };
  console.log(JSON.stringify({ hex: Buffer.from(notepack.encode(["AbC123", packet, opts])).toString("hex") }));
} else {
  const [uid, packet, opts] = notepack.decode(Buffer.from(hex, "hex"));
  console.log(JSON.stringify({ uid, packet, opts }));
}
