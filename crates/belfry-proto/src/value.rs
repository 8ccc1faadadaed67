//! [`Value`]: any Socket.IO argument, as a Node client sends it: JSON with binary anywhere
//! (a `Buffer`, an `ArrayBuffer`), object keys in the order they came. And [`Binary`], an
//! argument that must be binary.
//!
//! Both are plain serde types: a `Value` deserializes from whatever a deserializer offers
//! (Belfry's gives a binary attachment as bytes where its placeholder stood) and serializes
//! its binary as bytes (which Belfry's emits send as attachments, with placeholders in their
//! places), so an argument goes back out as it came in.

use std::{fmt, ops::Index};

use bytes::Bytes;
use indexmap::IndexMap;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{MapAccess, SeqAccess, Visitor},
    ser::{SerializeMap, SerializeSeq},
};
use serde_json::Number;

/// The map of a [`Value::Object`]: keys in the order they came (or were inserted).
pub type Map = IndexMap<String, Value>;

/// Any Socket.IO argument: JSON, with binary anywhere in it.
///
/// # Examples
///
/// ```
/// use belfry_proto::Value;
/// use bytes::Bytes;
///
/// let value: Value = serde_json::from_str(r#"{"name":"a.png","size":3}"#).unwrap();
/// assert_eq!(value["name"].as_str(), Some("a.png"));
/// assert_eq!(value["missing"], Value::Null);
///
/// let file = Value::from_iter([
///     ("name", Value::from("b.png")),
///     ("data", Value::from(Bytes::from_static(&[1, 2, 3]))),
/// ]);
/// assert_eq!(file["data"].as_bytes(), Some(&Bytes::from_static(&[1, 2, 3])));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null` (and `undefined` inside an array, as JSON has it).
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// Binary data: a `Buffer`, `ArrayBuffer` or typed array on the client.
    Binary(Bytes),
    /// An array.
    Array(Vec<Value>),
    /// An object, its keys in order.
    Object(Map),
}

/// What indexing a value that does not hold the index gives.
static NULL: Value = Value::Null;

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as an `i64`, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The number as an `f64`, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The binary data, if it is binary.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if it is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The map, if it is an object.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The value of `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// Whether binary data is anywhere in the value.
    pub fn has_binary(&self) -> bool {
        match self {
            Value::Binary(_) => true,
            Value::Array(a) => a.iter().any(Value::has_binary),
            Value::Object(o) => o.values().any(Value::has_binary),
            _ => false,
        }
    }
}

impl Index<&str> for Value {
    type Output = Value;

    /// The value of `key`; [`Value::Null`] when this is not an object or has no such key.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl Index<usize> for Value {
    type Output = Value;

    /// Element `index`; [`Value::Null`] when this is not an array or is shorter.
    fn index(&self, index: usize) -> &Value {
        self.as_array().and_then(|a| a.get(index)).unwrap_or(&NULL)
    }
}

macro_rules! from_number {
    ($($ty:ty),*) => {
        $(impl From<$ty> for Value {
            fn from(n: $ty) -> Value {
                Value::Number(Number::from(n))
            }
        })*
    };
}
from_number!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl From<f64> for Value {
    /// A number; `null` for NaN and the infinities, as `JSON.stringify` has them.
    fn from(n: f64) -> Value {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Binary(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}

impl From<Map> for Value {
    fn from(o: Map) -> Value {
        Value::Object(o)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

impl From<serde_json::Value> for Value {
    /// The same JSON (a binary placeholder object stays an object).
    fn from(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    /// An object with these keys, in this order.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Value {
        Value::Object(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<V: Into<Value>> FromIterator<V> for Value {
    /// An array of these elements.
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Value {
        Value::Array(iter.into_iter().map(Into::into).collect())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Binary(b) => serializer.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for element in a {
                    seq.serialize_element(element)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = serializer.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Socket.IO argument")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::copy_from_slice(b)))
    }

    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::from(b)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut a = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(element) = seq.next_element()? {
            a.push(element);
        }
        Ok(Value::Array(a))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut o = Map::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            o.insert(k, v);
        }
        Ok(Value::Object(o))
    }
}

/// An argument that must be binary (a client's `Buffer`, `ArrayBuffer` or typed array): refuses
/// strings and arrays of numbers, which a `bytes::Bytes` field would take too. Serializes as
/// binary.
///
/// # Examples
///
/// ```
/// use belfry_proto::Binary;
///
/// // JSON has no binary: a string or an array of numbers is refused.
/// assert!(serde_json::from_str::<Binary>(r#""abc""#).is_err());
/// assert!(serde_json::from_str::<Binary>("[1,2,3]").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Binary(pub Bytes);

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Binary, D::Error> {
        struct BinaryVisitor;

        impl Visitor<'_> for BinaryVisitor {
            type Value = Binary;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a binary attachment")
            }

            fn visit_bytes<E>(self, b: &[u8]) -> Result<Binary, E> {
                Ok(Binary(Bytes::copy_from_slice(b)))
            }

            fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(Bytes::from(b)))
            }
        }

        // Not `deserialize_bytes`: serde_json hands a string to it as bytes.
        deserializer.deserialize_any(BinaryVisitor)
    }
}

impl From<Binary> for Bytes {
    fn from(b: Binary) -> Bytes {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_with_keys_in_order() {
        let text = r#"{"z":1,"a":[true,null,"s",-2,1.5],"m":{"y":{},"b":[]}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
        assert_eq!(value["a"][3].as_i64(), Some(-2));
        assert_eq!(value["a"][9], Value::Null);
        assert!(!value.has_binary());
    }

    #[test]
    fn binary_is_bytes_both_ways() {
        let value = Value::from_iter([("bin", Value::from(Bytes::from_static(b"\x00\x01")))]);
        assert!(value.has_binary());
        // serde_json has no binary: bytes become an array of numbers there.
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"bin":[0,1]}"#);
        let from_bytes = Value::deserialize(serde::de::value::BytesDeserializer::<
            serde::de::value::Error,
        >::new(b"xy"))
        .unwrap();
        assert_eq!(from_bytes, Value::Binary(Bytes::from_static(b"xy")));
    }

    #[test]
    fn numbers_keep_their_kind() {
        let value: Value =
            serde_json::from_str("[18446744073709551615,-9223372036854775808,0.1]").unwrap();
        assert_eq!(value[0].as_u64(), Some(u64::MAX));
        assert_eq!(value[1].as_i64(), Some(i64::MIN));
        assert_eq!(value[2].as_f64(), Some(0.1));
        assert_eq!(Value::from(f64::NAN), Value::Null);
    }
}
