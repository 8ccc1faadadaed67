//! The msgpack parser, wire-compatible with `socket.io-msgpack-parser` 3.x: each packet is one
//! Engine.IO binary message, the msgpack map `{type, data, nsp, id}` (notepack.io's dialect),
//! with binary arguments in place (no attachments, no types 5 and 6).
//!
//! Packets keep Belfry's form inside (JSON arguments with placeholders and attachments beside),
//! so handlers, adapters and broadcasts work the same with either parser; this module converts
//! at the edge.
//!
//! ```
//! use belfry_core::parser::{Packet, PacketData, Payload, msgpack};
//! use bytes::Bytes;
//!
//! let payload = Payload::new(
//!     r#"["file",{"_placeholder":true,"num":0}]"#,
//!     vec![Bytes::from_static(b"\x01\x02")],
//! );
//! let packet = Packet::event("/chat", payload, Some(7));
//! let wire = msgpack::encode(&packet).unwrap();
//! assert_eq!(msgpack::decode(&wire).unwrap(), packet);
//! ```

use bytes::Bytes;

use super::{Packet, PacketData, ParseError, Payload, decode::check_event};
use crate::msgpack::{Value, get, json_to_value, read, value_to_json, value_to_payload, write};

const CONNECT: u64 = 0;
const DISCONNECT: u64 = 1;
const EVENT: u64 = 2;
const ACK: u64 = 3;
const CONNECT_ERROR: u64 = 4;

/// The binary message of `packet`.
///
/// # Errors
///
/// A payload whose JSON is invalid or whose placeholders point past its attachments (never the
/// case for packets Belfry builds or decodes).
pub fn encode(packet: &Packet) -> Result<Bytes, crate::msgpack::WireError> {
    let (kind, data, id) = match &packet.data {
        PacketData::Connect(auth) => (CONNECT, auth.as_deref().map(json).transpose()?, None),
        PacketData::Disconnect => (DISCONNECT, None, None),
        PacketData::Event { payload, ack } => (EVENT, Some(arguments(payload)?), *ack),
        PacketData::Ack { payload, ack } => (ACK, Some(arguments(payload)?), Some(*ack)),
        PacketData::ConnectError(error) => (CONNECT_ERROR, Some(json(error)?), None),
    };
    // Node's key order: type, data, nsp, id.
    let mut map = Vec::with_capacity(4);
    map.push((Value::from("type"), Value::from(kind)));
    if let Some(data) = data {
        map.push((Value::from("data"), data));
    }
    map.push((Value::from("nsp"), Value::from(&*packet.ns)));
    if let Some(id) = id {
        map.push((Value::from("id"), Value::from(id)));
    }
    write(&Value::Map(map)).map(Bytes::from)
}

fn json(text: &str) -> Result<Value, crate::msgpack::WireError> {
    json_to_value(text, &[])
}

fn arguments(payload: &Payload) -> Result<Value, crate::msgpack::WireError> {
    json_to_value(&payload.json, &payload.attachments)
}

/// The packet of one binary message, checked as `socket.io-msgpack-parser` checks it (a type
/// 0–4, a string namespace, data of the type's shape, an integer id), and events as the
/// default parser checks them (a name first, not a reserved one).
///
/// # Errors
///
/// Invalid msgpack, or a packet of the wrong shape.
pub fn decode(message: &[u8]) -> Result<Packet, ParseError> {
    let value = read(message).map_err(|_| ParseError::InvalidPayload)?;
    if !value.is_map() {
        return Err(ParseError::InvalidPayload);
    }
    let kind = get(&value, "type")
        .and_then(Value::as_u64)
        .filter(|kind| *kind <= CONNECT_ERROR)
        .ok_or(ParseError::UnknownType)?;
    let ns = get(&value, "nsp")
        .and_then(Value::as_str)
        .ok_or(ParseError::InvalidPayload)?;
    // notepack writes `undefined` as the extension (0, [0]): the field is absent.
    let data = get(&value, "data").filter(|data| !matches!(data, Value::Ext(0, _)));
    let id = match get(&value, "id").filter(|id| !matches!(id, Value::Ext(0, _))) {
        None => None,
        Some(id) => Some(id.as_u64().ok_or(ParseError::InvalidAckId)?),
    };
    let data = match (kind, data) {
        (CONNECT, None) => PacketData::Connect(None),
        (CONNECT, Some(auth @ Value::Map(_))) => PacketData::Connect(Some(to_json(auth)?)),
        (DISCONNECT, None) => PacketData::Disconnect,
        (EVENT, Some(args @ Value::Array(_))) => {
            let payload = to_payload(args)?;
            check_event(&payload.elements().map_err(|_| ParseError::InvalidPayload)?)?;
            PacketData::Event { payload, ack: id }
        }
        (ACK, Some(args @ Value::Array(_))) => PacketData::Ack {
            payload: to_payload(args)?,
            ack: id.ok_or(ParseError::InvalidAckId)?,
        },
        (CONNECT_ERROR, Some(error @ (Value::Map(_) | Value::String(_)))) => {
            PacketData::ConnectError(to_json(error)?)
        }
        _ => return Err(ParseError::InvalidPayload),
    };
    Ok(Packet {
        ns: ns.into(),
        data,
    })
}

fn to_json(value: &Value) -> Result<crate::Str, ParseError> {
    let json = value_to_json(value).map_err(|_| ParseError::InvalidPayload)?;
    Ok(json.to_string().into())
}

fn to_payload(value: &Value) -> Result<Payload, ParseError> {
    value_to_payload(value).map_err(|_| ParseError::InvalidPayload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Vec<u8> {
        let map = entries
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect();
        write(&Value::Map(map)).unwrap()
    }

    fn undefined() -> Value {
        Value::Ext(0, vec![0])
    }

    #[test]
    fn server_packets_have_node_shapes() {
        let connect = encode(&Packet::connect("/", "abc", None)).unwrap();
        assert_eq!(
            read(&connect).unwrap(),
            Value::Map(vec![
                ("type".into(), 0.into()),
                (
                    "data".into(),
                    Value::Map(vec![("sid".into(), "abc".into())])
                ),
                ("nsp".into(), "/".into()),
            ])
        );
        let bye = encode(&Packet::disconnect("/a")).unwrap();
        assert_eq!(
            read(&bye).unwrap(),
            Value::Map(vec![("type".into(), 1.into()), ("nsp".into(), "/a".into())])
        );
        let event = Packet::event(
            "/",
            Payload::new(
                r#"["up",{"n":1.5,"b":{"_placeholder":true,"num":0}}]"#,
                vec![Bytes::from_static(b"xy")],
            ),
            Some(3),
        );
        let wire = read(&encode(&event).unwrap()).unwrap();
        assert_eq!(get(&wire, "type"), Some(&Value::from(2)));
        assert_eq!(get(&wire, "id"), Some(&Value::from(3)));
        let data = get(&wire, "data").unwrap();
        assert_eq!(data[1]["b"], Value::Binary(b"xy".to_vec()));
        assert_eq!(data[1]["n"], Value::F64(1.5));
    }

    #[test]
    fn client_packets_decode_as_the_json_parser_would() {
        // socket.io-client's CONNECT without auth carries `data: undefined`.
        let connect = map(&[
            ("type", 0.into()),
            ("data", undefined()),
            ("nsp", "/".into()),
        ]);
        assert_eq!(decode(&connect).unwrap().data, PacketData::Connect(None));
        let auth = map(&[
            ("type", 0.into()),
            ("nsp", "/x".into()),
            ("data", Value::Map(vec![("token".into(), "t".into())])),
        ]);
        let packet = decode(&auth).unwrap();
        assert_eq!(packet.ns, "/x");
        assert_eq!(
            packet.data,
            PacketData::Connect(Some(r#"{"token":"t"}"#.into()))
        );
        let event = map(&[
            ("type", 2.into()),
            (
                "data",
                Value::Array(vec!["bin".into(), Value::Binary(vec![1, 2])]),
            ),
            ("nsp", "/".into()),
            ("id", 9.into()),
        ]);
        let PacketData::Event { payload, ack } = decode(&event).unwrap().data else {
            panic!("an event");
        };
        assert_eq!(ack, Some(9));
        assert_eq!(&*payload.json, r#"["bin",{"_placeholder":true,"num":0}]"#);
        assert_eq!(payload.attachments, vec![Bytes::from_static(&[1, 2])]);
        let ack = map(&[
            ("type", 3.into()),
            ("data", Value::Array(vec![])),
            ("nsp", "/".into()),
            ("id", 0.into()),
        ]);
        assert!(matches!(
            decode(&ack).unwrap().data,
            PacketData::Ack { ack: 0, .. }
        ));
    }

    #[test]
    fn malformed_packets_are_errors() {
        let cases = [
            b"\xc1".to_vec(),                     // not msgpack
            write(&Value::from("text")).unwrap(), // not a map
            map(&[("type", 5.into()), ("nsp", "/".into())]),
            map(&[("type", (-1).into()), ("nsp", "/".into())]),
            map(&[("type", 1.into())]),
            map(&[("type", 1.into()), ("nsp", 7.into())]),
            map(&[("type", 1.into()), ("nsp", "/".into()), ("data", 1.into())]),
            map(&[
                ("type", 0.into()),
                ("nsp", "/".into()),
                ("data", Value::Nil),
            ]),
            map(&[
                ("type", 2.into()),
                ("nsp", "/".into()),
                ("data", Value::Map(vec![])),
            ]),
            map(&[
                ("type", 2.into()),
                ("nsp", "/".into()),
                ("data", Value::Array(vec![])),
            ]),
            map(&[
                ("type", 2.into()),
                ("nsp", "/".into()),
                ("data", Value::Array(vec!["connect".into()])),
            ]),
            map(&[
                ("type", 2.into()),
                ("nsp", "/".into()),
                ("data", Value::Array(vec!["a".into()])),
                ("id", "1".into()),
            ]),
            map(&[
                ("type", 3.into()),
                ("nsp", "/".into()),
                ("data", Value::Array(vec![])),
            ]),
            map(&[("type", 4.into()), ("nsp", "/".into()), ("data", 1.into())]),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(decode(case).is_err(), "case {i}");
        }
    }
}
