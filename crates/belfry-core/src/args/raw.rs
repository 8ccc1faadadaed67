//! Already-checked JSON text (the arguments of a packet received) written into argument lists
//! as it is: Belfry's own serializer around serde_json's, and the fallback for every other
//! serializer.

use std::{cell::Cell, fmt};

use super::{
    shape::{Probe, other, other_compounds, other_values},
    text::Shared,
};
use serde::{Serialize, ser};

/// The name of the newtype struct [`RawJson`] serializes as; [`Emit`] writes its text as it is.
pub(super) const RAW_JSON: &str = "$belfry::private::RawJson";

/// The text of one JSON value, already checked (an argument of a packet received), that
/// serializes as itself.
///
/// The argument lists of this module ([`push_event_array`](super::push_event_array),
/// [`push_args_array`](super::push_args_array), [`to_value`](super::to_value), ...) copy the
/// text as it is: one copy, no second look at the JSON. The text must therefore be one JSON
/// value (as the elements of [`Elements`](crate::parser::Elements) are): anything else is
/// copied too, and makes the list invalid JSON. Any other serializer (`serde_json::to_value`,
/// `serde_json::to_string`, ...) checks it, and fails if it is not JSON.
///
/// # Examples
///
/// ```
/// use belfry_core::args::{RawJson, push_args_array};
///
/// let mut text = String::new();
/// push_args_array(&mut text, &(RawJson(r#"{"b": 1, "a": 2}"#), 3))?;
/// assert_eq!(text, r#"[{"b": 1, "a": 2},3]"#);
/// assert_eq!(serde_json::to_string(&RawJson("[ 1 ]"))?, "[ 1 ]");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RawJson<'a>(pub &'a str);

// How: it serializes as the newtype struct `RAW_JSON` around `RawText`. Belfry's own writer
// (`Emit`, under every argument list of this module) recognises the name and copies the text.
// Any other serializer sees a newtype struct, serializes its `RawText`, and that checks the
// text into a serde_json `RawValue`: a second pass, but only off the emit path.

impl Serialize for RawJson<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(RAW_JSON, &RawText(self.0))
    }
}

/// The content of a [`RawJson`]: a `RawValue` for any serializer, or its text as a string for
/// [`Capture`] (which [`Emit`] uses to read the text).
pub(super) struct RawText<'a>(&'a str);

thread_local! {
    /// Set by [`capture_raw`] for the one `RawText::serialize` it calls. Only that call reads it
    /// (and clears it): a serializer cannot tell a `Serialize` impl who it is, and a type that
    /// serializes a `RawJson` another way inside an argument list must still get the `RawValue`.
    pub(super) static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

impl Serialize for RawText<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if CAPTURING.with(|capturing| capturing.replace(false)) {
            return serializer.serialize_str(self.0);
        }
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(self.0).map_err(ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Appends the text of `value`, the content of a [`RAW_JSON`] newtype struct, to `out`; false
/// (and `out` as it was) if `value` is not a [`RawText`] (another type given the same name).
pub(super) fn capture_raw<T: Serialize + ?Sized>(value: &T, out: &mut String) -> bool {
    /// Clears [`CAPTURING`] however the call ends.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CAPTURING.with(|capturing| capturing.set(false));
        }
    }
    let start = out.len();
    CAPTURING.with(|capturing| capturing.set(true));
    let reset = Reset;
    let captured = value.serialize(Capture(out)).is_ok();
    // `RawText` clears the flag when it reads it: still set, the value was something else.
    let read = !CAPTURING.with(Cell::get);
    drop(reset);
    if captured && read {
        true
    } else {
        out.truncate(start);
        false
    }
}

/// The serializer [`capture_raw`] hands a [`RawText`]: takes its text, refuses anything else.
pub(super) struct Capture<'a>(&'a mut String);

impl ser::Serializer for Capture<'_> {
    type Ok = ();
    type Error = Probe;
    type SerializeSeq = ser::Impossible<(), Probe>;
    type SerializeTuple = ser::Impossible<(), Probe>;
    type SerializeTupleStruct = ser::Impossible<(), Probe>;
    type SerializeTupleVariant = ser::Impossible<(), Probe>;
    type SerializeMap = ser::Impossible<(), Probe>;
    type SerializeStruct = ser::Impossible<(), Probe>;
    type SerializeStructVariant = ser::Impossible<(), Probe>;

    other! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_str(self, text: &str) -> Result<(), Probe> {
        self.0.push_str(text);
        Ok(())
    }

    other_values!();

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Probe> {
        Err(Probe::Other)
    }

    other_compounds!();
}

/// serde_json's serializer (`S`), with [`RawJson`] values written as their text.
///
/// Every call is passed on to `S`, and every value inside a sequence, tuple, map or struct is
/// serialized by `S` through [`Wrapped`], which puts an `Emit` around the serializer `S` hands
/// it: values at any depth come back here. Map keys are not wrapped (a key is a string, not
/// raw JSON). A newtype struct named [`RAW_JSON`] is written by appending its text to the
/// output, where `S` would write the value (separators are written by `S`'s compounds around
/// each value), and by having `S` serialize a unit whose `null` the formatter leaves out (which
/// gives `S::Ok`, and keeps `S` in step).
pub(super) struct Emit<'c, 'o, S> {
    pub(super) serializer: S,
    pub(super) shared: &'c Shared<'o>,
}

/// A value inside a compound, serialized under [`Emit`].
pub(super) struct Wrapped<'v, 'c, 'o, T: ?Sized> {
    value: &'v T,
    shared: &'c Shared<'o>,
}

impl<T: Serialize + ?Sized> Serialize for Wrapped<'_, '_, '_, T> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Emit {
            serializer,
            shared: self.shared,
        })
    }
}

/// `value`, to be serialized under [`Emit`].
pub(super) fn wrap<'v, 'c, 'o, T: ?Sized>(
    shared: &'c Shared<'o>,
    value: &'v T,
) -> Wrapped<'v, 'c, 'o, T> {
    Wrapped { value, shared }
}

/// A compound of `S` (`C`), whose values are serialized under [`Emit`].
pub(super) struct EmitCompound<'c, 'o, C> {
    compound: C,
    shared: &'c Shared<'o>,
}

/// Serializer methods passed on as they are.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.serializer.$name($($arg),*)
        })*
    };
}

impl<'c, 'o, S: ser::Serializer> ser::Serializer for Emit<'c, 'o, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = EmitCompound<'c, 'o, S::SerializeSeq>;
    type SerializeTuple = EmitCompound<'c, 'o, S::SerializeTuple>;
    type SerializeTupleStruct = EmitCompound<'c, 'o, S::SerializeTupleStruct>;
    type SerializeTupleVariant = EmitCompound<'c, 'o, S::SerializeTupleVariant>;
    type SerializeMap = EmitCompound<'c, 'o, S::SerializeMap>;
    type SerializeStruct = EmitCompound<'c, 'o, S::SerializeStruct>;
    type SerializeStructVariant = EmitCompound<'c, 'o, S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool); serialize_i8(v: i8); serialize_i16(v: i16);
        serialize_i32(v: i32); serialize_i64(v: i64); serialize_i128(v: i128);
        serialize_u8(v: u8); serialize_u16(v: u16); serialize_u32(v: u32);
        serialize_u64(v: u64); serialize_u128(v: u128); serialize_f32(v: f32);
        serialize_f64(v: f64); serialize_char(v: char); serialize_str(v: &str);
        serialize_bytes(v: &[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.serializer.serialize_some(&wrap(self.shared, value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        if name == RAW_JSON && capture_raw(value, &mut self.shared.out.borrow_mut()) {
            self.shared.unwritten_null.set(true);
            let written = self.serializer.serialize_unit();
            if self.shared.unwritten_null.replace(false) {
                // Only serde_json's serializer over `TextFormatter` is ever under `Emit`.
                return Err(ser::Error::custom(
                    "raw JSON under a serializer that is not Belfry's",
                ));
            }
            return written;
        }
        self.serializer
            .serialize_newtype_struct(name, &wrap(self.shared, value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.serializer
            .serialize_newtype_variant(name, index, variant, &wrap(self.shared, value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let compound = self.serializer.serialize_seq(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let compound = self.serializer.serialize_tuple(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let compound = self.serializer.serialize_tuple_struct(name, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let compound = self
            .serializer
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let compound = self.serializer.serialize_map(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let compound = self.serializer.serialize_struct(name, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let compound = self
            .serializer
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.serializer.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.serializer.is_human_readable()
    }
}

/// The compounds whose values are elements (sequences, tuples, tuple structs and variants).
macro_rules! element_compounds {
    ($($trait:ident::$method:ident;)*) => {
        $(impl<C: ser::$trait> ser::$trait for EmitCompound<'_, '_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                self.compound.$method(&wrap(self.shared, value))
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.compound.end()
            }
        })*
    };
}

element_compounds! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

/// The compounds whose values are named fields (structs and struct variants).
macro_rules! field_compounds {
    ($($trait:ident;)*) => {
        $(impl<C: ser::$trait> ser::$trait for EmitCompound<'_, '_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), C::Error> {
                self.compound.serialize_field(key, &wrap(self.shared, value))
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.compound.skip_field(key)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.compound.end()
            }
        })*
    };
}

field_compounds! {
    SerializeStruct;
    SerializeStructVariant;
}

impl<C: ser::SerializeMap> ser::SerializeMap for EmitCompound<'_, '_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.compound.serialize_key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.compound.serialize_value(&wrap(self.shared, value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        self.compound
            .serialize_entry(key, &wrap(self.shared, value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.compound.end()
    }
}
