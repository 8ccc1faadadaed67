//! Socket.IO arguments between Belfry's form (JSON text with `{"_placeholder":true,"num":i}` and
//! the attachments beside it) and msgpack with binary in place as `bin`, following notepack.io's
//! dialect: the form of the msgpack parser (`socket.io-msgpack-parser`) and of Node's Redis
//! adapters.

use bytes::Bytes;
pub use rmpv::Value;

use crate::parser::Payload;

/// A msgpack message that is not what the protocol says.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not valid msgpack.
    #[error("invalid msgpack: {0}")]
    Msgpack(#[from] rmpv::decode::Error),
    /// Not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid, but not the shape the protocol gives this message.
    #[error("unexpected message shape: {0}")]
    Shape(&'static str),
    /// A binary placeholder with no attachment behind it.
    #[error("a placeholder points past the attachments")]
    Placeholder,
}

/// Encodes `message`.
///
/// # Errors
///
/// A value msgpack cannot hold (an extension type out of range).
pub fn write(message: &Value) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(64);
    rmpv::encode::write_value(&mut out, message).map_err(|_| WireError::Shape("unencodable"))?;
    Ok(out)
}

/// Decodes one value (nested at most 256 deep).
///
/// # Errors
///
/// Invalid msgpack, or nested too deep.
pub fn read(mut bytes: &[u8]) -> Result<Value, WireError> {
    Ok(rmpv::decode::read_value_with_max_depth(&mut bytes, 256)?)
}

/// The entry `key` of the msgpack map `map`.
pub fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Deepest nesting accepted from the wire, as Belfry's parser accepts from clients.
const MAX_DEPTH: usize = 128;

/// The arguments `payload` holds (a JSON array), as a msgpack array with the attachments in
/// place of their placeholders. Object keys keep their order.
///
/// # Errors
///
/// Invalid JSON, or a placeholder past the attachments.
pub fn payload_to_value(payload: &Payload) -> Result<Value, WireError> {
    json_to_value(&payload.json, &payload.attachments)
}

/// JSON text with placeholders for `attachments` as a msgpack value, the attachments in place.
///
/// # Errors
///
/// As [`payload_to_value`].
pub fn json_to_value(json: &str, attachments: &[Bytes]) -> Result<Value, WireError> {
    let mut value: Value = serde_json::from_str(json)?;
    fill_placeholders(&mut value, attachments)?;
    Ok(value)
}

fn fill_placeholders(value: &mut Value, attachments: &[Bytes]) -> Result<(), WireError> {
    match value {
        Value::Array(items) => {
            for item in items {
                fill_placeholders(item, attachments)?;
            }
        }
        Value::Map(entries) => {
            if let Some(index) = placeholder(entries) {
                let bytes = attachments.get(index).ok_or(WireError::Placeholder)?;
                *value = Value::Binary(bytes.to_vec());
                return Ok(());
            }
            for (_, item) in entries {
                fill_placeholders(item, attachments)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The attachment index of a `{"_placeholder":true,"num":i}` object.
fn placeholder(entries: &[(Value, Value)]) -> Option<usize> {
    let field = |name: &str| {
        entries
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, value)| value)
    };
    if entries.len() != 2 || field("_placeholder") != Some(&Value::Boolean(true)) {
        return None;
    }
    field("num")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// A msgpack array of arguments from the wire as a Belfry payload: binary becomes
/// attachments with placeholders; notepack's `undefined` (fixext 1, type 0) and other
/// extensions become `null`, as `JSON.stringify` would write them.
///
/// # Errors
///
/// Not an array, a string or key that is not UTF-8, nesting deeper than 128.
pub fn value_to_payload(value: &Value) -> Result<Payload, WireError> {
    if !value.is_array() {
        return Err(WireError::Shape("the arguments are not an array"));
    }
    let mut json = String::with_capacity(64);
    let mut attachments = Vec::new();
    write_json(value, &mut json, &mut attachments, 0)?;
    Ok(Payload::new(json, attachments))
}

fn write_json(
    value: &Value,
    out: &mut String,
    attachments: &mut Vec<Bytes>,
    depth: usize,
) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::Shape("nested too deep"));
    }
    match value {
        Value::Nil | Value::Ext(..) => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::F32(f) => push_float(out, f64::from(*f)),
        Value::F64(f) => push_float(out, *f),
        Value::String(s) => {
            let text = s
                .as_str()
                .ok_or(WireError::Shape("a string is not UTF-8"))?;
            out.push_str(&serde_json::to_string(text)?);
        }
        Value::Binary(bytes) => {
            out.push_str(&format!(
                "{{\"_placeholder\":true,\"num\":{}}}",
                attachments.len()
            ));
            attachments.push(Bytes::copy_from_slice(bytes));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out, attachments, depth + 1)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            // Binary is the placeholders' to mark: an object of the wire that looks like one
            // would be read as an attachment.
            if entries
                .iter()
                .any(|(key, _)| key.as_str() == Some("_placeholder"))
            {
                return Err(WireError::Shape("an object with a `_placeholder` key"));
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(&object_key(key)?)?);
                out.push(':');
                write_json(item, out, attachments, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A msgpack value as JSON, for the parts of cluster messages Belfry keeps as JSON (socket
/// data, server-side events): binary becomes Node's `Buffer#toJSON` form
/// `{"type":"Buffer","data":[..]}`, as `JSON.stringify` writes a Buffer; other values as
/// [`value_to_payload`] writes them.
///
/// # Errors
///
/// As [`value_to_payload`].
pub fn value_to_json(value: &Value) -> Result<serde_json::Value, WireError> {
    to_json(value, 0)
}

fn to_json(value: &Value, depth: usize) -> Result<serde_json::Value, WireError> {
    use serde_json::Value as Json;
    if depth > MAX_DEPTH {
        return Err(WireError::Shape("nested too deep"));
    }
    Ok(match value {
        Value::Nil | Value::Ext(..) => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(Json::from)
            .or_else(|| i.as_i64().map(Json::from))
            .unwrap_or(Json::Null),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::from(
            s.as_str()
                .ok_or(WireError::Shape("a string is not UTF-8"))?,
        ),
        Value::Binary(bytes) => serde_json::json!({ "type": "Buffer", "data": bytes }),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| to_json(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut object = serde_json::Map::with_capacity(entries.len());
            for (key, item) in entries {
                object.insert(object_key(key)?, to_json(item, depth + 1)?);
            }
            Json::Object(object)
        }
    })
}

/// A msgpack value as a Socket.IO argument ([`belfry_proto::value::Value`]), for the parts of
/// cluster messages that carry any argument (socket data, server-side events): binary stays
/// binary; notepack's `undefined` and other extensions become `null`, number keys their
/// decimal text.
///
/// # Errors
///
/// A string or key that is not UTF-8, nesting deeper than 128.
pub fn value_to_arg(value: &Value) -> Result<belfry_proto::value::Value, WireError> {
    to_arg(value, 0)
}

fn to_arg(value: &Value, depth: usize) -> Result<belfry_proto::value::Value, WireError> {
    use belfry_proto::value::{Map, Value as Arg};
    if depth > MAX_DEPTH {
        return Err(WireError::Shape("nested too deep"));
    }
    Ok(match value {
        Value::Nil | Value::Ext(..) => Arg::Null,
        Value::Boolean(b) => Arg::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(Arg::from)
            .or_else(|| i.as_i64().map(Arg::from))
            .unwrap_or(Arg::Null),
        Value::F32(f) => Arg::from(f64::from(*f)),
        Value::F64(f) => Arg::from(*f),
        Value::String(s) => Arg::from(
            s.as_str()
                .ok_or(WireError::Shape("a string is not UTF-8"))?,
        ),
        Value::Binary(bytes) => Arg::Binary(Bytes::copy_from_slice(bytes)),
        Value::Array(items) => Arg::Array(
            items
                .iter()
                .map(|item| to_arg(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut object = Map::with_capacity(entries.len());
            for (key, item) in entries {
                object.insert(object_key(key)?, to_arg(item, depth + 1)?);
            }
            Arg::Object(object)
        }
    })
}

/// A Socket.IO argument as msgpack, binary as `bin` (what Node's adapters send for a
/// `Buffer`), object keys in order.
pub fn arg_to_value(arg: &belfry_proto::value::Value) -> Value {
    use belfry_proto::value::Value as Arg;
    match arg {
        Arg::Null => Value::Nil,
        Arg::Bool(b) => Value::Boolean(*b),
        Arg::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::F64))
            .unwrap_or(Value::Nil),
        Arg::String(s) => Value::from(s.as_str()),
        Arg::Binary(bytes) => Value::Binary(bytes.to_vec()),
        Arg::Array(items) => Value::Array(items.iter().map(arg_to_value).collect()),
        Arg::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(key, item)| (Value::from(key.as_str()), arg_to_value(item)))
                .collect(),
        ),
    }
}

fn float(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A msgpack map key as a JSON object key: JavaScript object keys are strings, a number key
/// is its decimal text.
fn object_key(key: &Value) -> Result<String, WireError> {
    match key {
        Value::String(s) => s
            .as_str()
            .map(str::to_owned)
            .ok_or(WireError::Shape("a key is not UTF-8")),
        other => Ok(other.to_string()),
    }
}

/// A float as JSON writes it; NaN and infinities become `null`, as `JSON.stringify` does.
fn push_float(out: &mut String, f: f64) {
    if f.is_finite() {
        out.push_str(
            &serde_json::Number::from_f64(f).map_or_else(|| "null".to_owned(), |n| n.to_string()),
        );
    } else {
        out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: &str, attachments: &[&'static [u8]]) -> Payload {
        Payload::new(
            json,
            attachments.iter().map(|b| Bytes::from_static(b)).collect(),
        )
    }

    #[test]
    fn placeholders_become_binary_and_back() {
        let original = payload(
            r#"["file",{"name":"a.png","data":{"_placeholder":true,"num":0}},[1,-2,3.5,null,true],{"_placeholder":true,"num":1}]"#,
            &[b"\x89PNG", b""],
        );
        let value = payload_to_value(&original).unwrap();
        assert_eq!(value[1]["data"], Value::Binary(b"\x89PNG".to_vec()));
        assert_eq!(value[3], Value::Binary(Vec::new()));
        assert_eq!(value_to_payload(&value).unwrap(), original);
    }

    #[test]
    fn notepack_undefined_and_odd_values_become_json() {
        let value = Value::Array(vec![
            Value::Ext(0, vec![0]),
            Value::F64(f64::NAN),
            Value::Map(vec![(Value::from(7), Value::from("seven"))]),
            Value::from(u64::MAX),
        ]);
        let payload = value_to_payload(&value).unwrap();
        assert_eq!(
            &*payload.json,
            r#"[null,null,{"7":"seven"},18446744073709551615]"#
        );
    }

    #[test]
    fn binary_in_json_is_a_node_buffer() {
        let value = Value::Map(vec![
            (Value::from("name"), Value::from("a1")),
            (Value::from("avatar"), Value::Binary(vec![1, 2])),
        ]);
        assert_eq!(
            value_to_json(&value).unwrap(),
            serde_json::json!({ "name": "a1", "avatar": { "type": "Buffer", "data": [1, 2] } })
        );
    }

    #[test]
    fn hostile_values_are_refused() {
        assert!(value_to_payload(&Value::from("not an array")).is_err());
        let mut deep = Value::Array(Vec::new());
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        assert!(value_to_payload(&deep).is_err());
        // A placeholder pointing past the attachments.
        assert!(payload_to_value(&payload(r#"[{"_placeholder":true,"num":3}]"#, &[])).is_err());
        // An object of the wire that would read as a placeholder.
        let fake = Value::Array(vec![Value::Map(vec![
            (Value::from("_placeholder"), Value::from(true)),
            (Value::from("num"), Value::from(0)),
        ])]);
        assert!(value_to_payload(&fake).is_err());
    }
}
