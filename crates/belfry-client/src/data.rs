//! Rust values to and from the argument lists of Socket.IO packets, with Belfry's codec (the
//! server's own): a tuple spreads into several arguments, bytes become binary attachments.

use belfry_core::{args, parser::Payload, proto::value::Value};
use serde::{Serialize, de::DeserializeOwned};

/// `["event", ...args]` of `data`.
pub(crate) fn event_payload<T: Serialize + ?Sized>(
    event: &str,
    data: &T,
) -> Result<Payload, serde_json::Error> {
    let mut out = String::new();
    let attachments = args::push_event_array(&mut out, event, data)?;
    Ok(Payload::new(out, attachments))
}

/// `[...args]` of `data` (an answer).
pub(crate) fn args_payload<T: Serialize + ?Sized>(data: &T) -> Result<Payload, serde_json::Error> {
    let mut out = String::new();
    let attachments = args::push_args_array(&mut out, data)?;
    Ok(Payload::new(out, attachments))
}

/// The elements of `payload`, binary in place.
pub(crate) fn values(payload: &Payload) -> Result<Vec<Value>, serde_json::Error> {
    args::from_str(&payload.json, &payload.attachments)
}

/// `data` as a [`Value`] (bytes stay binary).
pub(crate) fn to_value<T: Serialize + ?Sized>(data: &T) -> Result<Value, serde_json::Error> {
    args::to_value(data)
}

/// Arguments as `T`: none as `null` (or an empty tuple), one as itself (or a one-element
/// tuple), several as a tuple (or a list), or else the first alone (as JavaScript handlers and
/// `emitWithAck` read the first).
pub(crate) fn from_args<T: DeserializeOwned>(items: &[Value]) -> Result<T, serde_json::Error> {
    let whole = || args::from_value(&Value::Array(items.to_vec()));
    match items {
        [] => args::from_value(&Value::Null).or_else(|_| whole()),
        [one] => args::from_value(one).or_else(|error| whole().map_err(|_| error)),
        [first, ..] => whole().or_else(|error| args::from_value(first).map_err(|_| error)),
    }
}
