//! The values Node's cluster adapters put in their messages: broadcast options, an event
//! packet, `fetchSockets` answers, as msgpack values (JSON is written from the same values).

use belfry_core::{
    adapter::{BroadcastFlags, BroadcastOptions, SocketInfo},
    msgpack::{
        Value, WireError, arg_to_value, get, json_to_value, payload_to_value, value_to_arg,
        value_to_json,
    },
    parser::Payload,
};

/// Socket.IO's EVENT packet type, which Node's adapters use for every broadcast packet.
const EVENT: u64 = 2;

/// `{type: 2, data, nsp}`: an event as Node's adapters carry it.
///
/// # Errors
///
/// The payload is not the JSON array it should be.
pub fn event_value(ns: &str, payload: &Payload) -> Result<Value, WireError> {
    Ok(Value::Map(vec![
        (Value::from("type"), Value::from(EVENT)),
        (Value::from("data"), payload_to_value(payload)?),
        (Value::from("nsp"), Value::from(ns)),
    ]))
}

/// `{rooms, except, flags}` with only the flags that are set, as Node writes them.
pub fn opts_to_value(opts: &BroadcastOptions) -> Value {
    let strings =
        |items: &[String]| Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect());
    let flags = &opts.flags;
    let mut flag_entries = Vec::new();
    if flags.volatile {
        flag_entries.push((Value::from("volatile"), Value::from(true)));
    }
    if flags.local {
        flag_entries.push((Value::from("local"), Value::from(true)));
    }
    if let Some(compress) = flags.compress {
        flag_entries.push((Value::from("compress"), Value::from(compress)));
    }
    if let Some(timeout) = flags.timeout {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        flag_entries.push((Value::from("timeout"), Value::from(millis)));
    }
    Value::Map(vec![
        (Value::from("rooms"), strings(&opts.rooms)),
        (Value::from("except"), strings(&opts.except)),
        (Value::from("flags"), Value::Map(flag_entries)),
    ])
}

/// `fetchSockets` answers as msgpack: an array of `{id, handshake, rooms, data}`, binary in
/// the data as `bin` (as Node's cluster adapters send a `Buffer`).
pub fn sockets_to_value(sockets: &[SocketInfo]) -> Result<Value, WireError> {
    sockets
        .iter()
        .map(|socket| {
            Ok(Value::Map(vec![
                (Value::from("id"), Value::from(socket.id.as_str())),
                (
                    Value::from("handshake"),
                    json_to_value(&socket.handshake.to_string(), &[])?,
                ),
                (
                    Value::from("rooms"),
                    Value::Array(
                        socket
                            .rooms
                            .iter()
                            .map(|r| Value::from(r.as_str()))
                            .collect(),
                    ),
                ),
                (Value::from("data"), arg_to_value(&socket.data)),
            ]))
        })
        .collect::<Result<_, _>>()
        .map(Value::Array)
}

/// Reads `fetchSockets` answers (see [`sockets_to_value`]); binary in the data stays binary,
/// a missing handshake or data is `null`.
pub fn sockets_from_value(value: &Value) -> Result<Vec<SocketInfo>, WireError> {
    let Value::Array(items) = value else {
        return Err(WireError::Shape("sockets are not an array"));
    };
    items
        .iter()
        .map(|item| {
            let id = get(item, "id")
                .and_then(Value::as_str)
                .ok_or(WireError::Shape("a socket without id"))?;
            let handshake = get(item, "handshake")
                .map(value_to_json)
                .transpose()?
                .unwrap_or_default();
            let rooms = match get(item, "rooms") {
                Some(Value::Array(rooms)) => rooms
                    .iter()
                    .map(|room| {
                        room.as_str()
                            .map(str::to_owned)
                            .ok_or(WireError::Shape("a room is not a string"))
                    })
                    .collect::<Result<_, _>>()?,
                None | Some(Value::Nil) => Vec::new(),
                Some(_) => return Err(WireError::Shape("rooms are not an array")),
            };
            let data = get(item, "data")
                .map(value_to_arg)
                .transpose()?
                .unwrap_or_default();
            Ok(SocketInfo::new(id, handshake, rooms, data))
        })
        .collect()
}

/// Reads `{rooms, except, flags}`; missing parts are empty, unknown flags ignored.
pub fn opts_from_value(value: &Value) -> Result<BroadcastOptions, WireError> {
    let strings = |key: &str| -> Result<Vec<String>, WireError> {
        match get(value, key) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or(WireError::Shape("a room is not a string"))
                })
                .collect(),
            Some(_) => Err(WireError::Shape("rooms are not an array")),
        }
    };
    let mut flags = BroadcastFlags::default();
    if let Some(Value::Map(entries)) = get(value, "flags") {
        for (key, flag) in entries {
            match key.as_str() {
                Some("volatile") => flags.volatile = flag.as_bool().unwrap_or(false),
                Some("local") => flags.local = flag.as_bool().unwrap_or(false),
                Some("compress") => flags.compress = flag.as_bool(),
                Some("timeout") => {
                    flags.timeout = flag
                        .as_u64()
                        .or_else(|| flag.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                        .map(std::time::Duration::from_millis);
                }
                _ => {}
            }
        }
    }
    Ok(BroadcastOptions::new()
        .with_rooms(strings("rooms")?)
        .with_except(strings("except")?)
        .with_flags(flags))
}
