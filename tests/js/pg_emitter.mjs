// @socket.io/postgres-emitter 0.1.1 publishing to a Postgres cluster: an event to every socket,
// one to room "r" (binary included), one to everyone except room "r". Prints {"sent": true}.
//
// usage: node pg_emitter.mjs <postgres url>
import pg from "pg";
import { Emitter } from "@socket.io/postgres-emitter";

const pool = new pg.Pool({ connectionString: process.argv[2] });
const emitter = new Emitter(pool);
emitter.emit("news", "to-all");
emitter.to("r").emit("news", "to-r", Buffer.from([1, 2, 3]));
emitter.except("r").emit("news", "not-r");
// The emitter does not wait for its notifications: give them time before ending the pool.
await new Promise((resolve) => setTimeout(resolve, 500));
await pool.end();
console.log(JSON.stringify({ sent: true }));
