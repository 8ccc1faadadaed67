//! How sockets and events are written for the UI, in the formats of Node's instrumentation.

use belfry_core::parser::Payload;
use serde::Serialize;
use serde_json::{Value, json, value::RawValue};

use crate::socket::Socket;

/// A JSON value whose placeholders (`{"_placeholder":true,"num":N}`) serialize as the bytes of
/// attachment `N`: sent on, they become binary attachments again.
pub(super) struct WithBinary<'a> {
    pub(super) value: &'a Value,
    pub(super) attachments: &'a [bytes::Bytes],
}

impl WithBinary<'_> {
    fn at<'b>(&'b self, value: &'b Value) -> WithBinary<'b> {
        WithBinary {
            value,
            attachments: self.attachments,
        }
    }

    /// The attachment a placeholder object stands for.
    fn attachment(&self) -> Option<&bytes::Bytes> {
        let object = self.value.as_object()?;
        if object.len() != 2 || object.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        let num = usize::try_from(object.get("num")?.as_u64()?).ok()?;
        self.attachments.get(num)
    }
}

impl Serialize for WithBinary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        if let Some(bytes) = self.attachment() {
            return serializer.serialize_bytes(bytes);
        }
        match self.value {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.at(item))?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, &self.at(item))?;
                }
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The arguments of an event as they came, `["name", ...args]`.
pub(super) fn raw(payload: &Payload) -> Option<&RawValue> {
    serde_json::from_str(&payload.json).ok()
}

/// The socket's data as the UI shows it (an object; `{}` until set).
pub(super) fn data(socket: &Socket) -> Value {
    // The UI gets JSON: binary as arrays of numbers.
    match serde_json::to_value(socket.data_value()).unwrap_or_default() {
        Value::Null => json!({}),
        data => data,
    }
}

/// Node's `serialize(socket, nsp)`.
pub(super) fn serialize(socket: &Socket) -> Value {
    let handshake = socket.handshake();
    let header = |name: &str| handshake.headers.get(name).and_then(Value::as_str);
    let address = header("cf-connecting-ip")
        .or_else(|| header("x-forwarded-for"))
        .unwrap_or(&handshake.address)
        .to_owned();
    let engine_id = socket.engine_id().as_str();
    json!({
        "id": socket.id().as_str(),
        "clientId": engine_id.get(..12).unwrap_or(engine_id),
        "transport": socket.conn().transport().as_str(),
        "nsp": socket.ns(),
        "data": data(socket),
        "handshake": {
            "address": address,
            "headers": handshake.headers,
            "query": handshake.query,
            "issued": handshake.issued,
            "secure": handshake.secure,
            "time": handshake.time,
            "url": handshake.url,
            "xdomain": handshake.xdomain,
        },
        "rooms": socket.rooms(),
    })
}

/// Now as JavaScript's `Date.toJSON` writes it: `2026-11-22T04:30:00.000Z`.
pub(super) fn now_iso() -> String {
    crate::handshake::iso_date(crate::handshake::now_millis())
}
