//! Deserializing arguments whose binary attachments sit behind placeholders.
//!
//! A client's `emit("upload", {name: "a.png", file: buffer})` arrives as
//! `["upload",{"name":"a.png","file":{"_placeholder":true,"num":0}}]` plus one attachment. This
//! deserializer walks the JSON and hands attachment `num` to the visitor (as bytes) wherever a
//! placeholder stands, so a `bytes::Bytes` field receives the buffer.

use bytes::Bytes;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;

/// Deserializes `T` from `json` (a packet's arguments, or one of them) with attachment `i` as
/// bytes wherever `{"_placeholder":true,"num":i}` stands: a `bytes::Bytes` or
/// [`Binary`](crate::proto::value::Binary) field, or a [`Value`](crate::proto::value::Value),
/// gets the attachment. Object keys come in the order of the text.
///
/// Without attachments this is `serde_json::from_str`. A placeholder whose number has no
/// attachment stays an object; enums do not take binary (they deserialize as plain JSON).
///
/// # Errors
///
/// `json` is not JSON, nests deeper than serde_json parses (128 levels), or is not what `T`
/// expects.
///
/// # Examples
///
/// ```
/// use belfry_core::args::from_str;
/// use bytes::Bytes;
///
/// let attachments = [Bytes::from_static(b"\x89PNG")];
/// let (name, file): (String, Bytes) =
///     from_str(r#"["a.png",{"_placeholder":true,"num":0}]"#, &attachments)?;
/// assert_eq!((name.as_str(), file), ("a.png", attachments[0].clone()));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn from_str<T: de::DeserializeOwned>(
    json: &str,
    attachments: &[Bytes],
) -> Result<T, serde_json::Error> {
    if attachments.is_empty() {
        return serde_json::from_str(json);
    }
    let value: Value = serde_json::from_str(json)?;
    T::deserialize(WithAttachments {
        value: &value,
        attachments,
    })
}

/// A JSON value whose placeholders stand for `attachments`.
#[derive(Clone, Copy)]
struct WithAttachments<'a> {
    value: &'a Value,
    attachments: &'a [Bytes],
}

impl<'a> WithAttachments<'a> {
    fn at(&self, value: &'a Value) -> Self {
        WithAttachments {
            value,
            attachments: self.attachments,
        }
    }

    /// The attachment a placeholder object stands for (the decoder checked `num`).
    fn attachment(&self) -> Option<&'a Bytes> {
        let map = self.value.as_object()?;
        if map.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        let num = usize::try_from(map.get("num")?.as_u64()?).ok()?;
        self.attachments.get(num)
    }
}

impl<'a> Deserializer<'a> for WithAttachments<'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if let Some(bytes) = self.attachment() {
            return visitor.visit_bytes(bytes);
        }
        match self.value {
            Value::Array(items) => visitor.visit_seq(Elements {
                items: items.iter(),
                parent: self,
            }),
            Value::Object(map) => visitor.visit_map(Entries {
                entries: map.iter(),
                value: None,
                parent: self,
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // Enums carrying binary are not supported; they deserialize as plain JSON.
        self.value.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

struct Elements<'a> {
    items: std::slice::Iter<'a, Value>,
    parent: WithAttachments<'a>,
}

impl<'a> SeqAccess<'a> for Elements<'a> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.items.next() {
            Some(item) => seed.deserialize(self.parent.at(item)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
    parent: WithAttachments<'a>,
}

impl<'a> MapAccess<'a> for Entries<'a> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a map value was asked for before its key"))?;
        seed.deserialize(self.parent.at(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Upload {
        name: String,
        file: Bytes,
        thumbs: Vec<Bytes>,
        note: Option<String>,
    }

    /// The keys of a map, in the order the deserializer gives them.
    struct Keys(Vec<String>);

    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visit)
        }
    }

    #[test]
    fn placeholders_become_bytes_anywhere() {
        let json = r#"{"name":"a.png","file":{"_placeholder":true,"num":1},
            "thumbs":[{"_placeholder":true,"num":0}],"note":null}"#;
        let attachments = [Bytes::from_static(b"thumb"), Bytes::from_static(b"file")];
        let upload: Upload = from_str(json, &attachments).unwrap();
        assert_eq!(
            upload,
            Upload {
                name: "a.png".into(),
                file: Bytes::from_static(b"file"),
                thumbs: vec![Bytes::from_static(b"thumb")],
                note: None,
            }
        );
        // A tuple of arguments.
        let (n, b): (u8, Bytes) =
            from_str(r#"[7,{"_placeholder":true,"num":0}]"#, &attachments).unwrap();
        assert_eq!((n, b), (7, Bytes::from_static(b"thumb")));
        // Keys keep their order, as in JavaScript (the JSON is parsed into a `Value` first).
        let Keys(keys) = from_str(
            r#"{"tag":1,"text":"t","n":2,"bin":{"_placeholder":true,"num":0}}"#,
            &attachments,
        )
        .unwrap();
        assert_eq!(keys, ["tag", "text", "n", "bin"]);
        // serde_json::Value still sees the placeholder objects as they are.
        let v: Value = from_str(r#"{"_placeholder":true,"num":0}"#, &[]).unwrap();
        assert_eq!(v["num"], 0);
    }

    #[test]
    fn belfry_values_hold_binary_and_binary_takes_only_binary() {
        let attachments = [Bytes::from_static(b"ab")];
        let json = r#"{"z":{"_placeholder":true,"num":0},"a":[1,"s"]}"#;
        let value: crate::proto::value::Value = from_str(json, &attachments).unwrap();
        assert_eq!(value["z"].as_bytes(), Some(&attachments[0]));
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["z", "a"]
        );
        let crate::proto::value::Binary(bytes) =
            from_str(r#"{"_placeholder":true,"num":0}"#, &attachments).unwrap();
        assert_eq!(bytes, attachments[0]);
        // A string or an array of numbers is not binary, though a `Bytes` field takes them.
        assert!(from_str::<crate::proto::value::Binary>(r#""ab""#, &attachments).is_err());
        assert!(from_str::<crate::proto::value::Binary>("[97,98]", &attachments).is_err());
        assert!(from_str::<Bytes>("[97,98]", &attachments).is_ok());
    }
}
