//! Whether a value is no argument, several (a tuple, spread) or one.

use std::fmt;

use serde::{Serialize, ser};

pub(super) enum Shape {
    None,
    Spread,
    One,
}

/// Finds out, without serializing, whether `data` is `()` (no argument), a tuple (spread) or
/// anything else (one argument).
///
/// "No argument" is decided by type, not by what the value serializes as: `serde_json`'s
/// `Value::Null` serializes as a unit too, and is one argument, `null`, as in Node. `()` is the
/// one type that both serializes as a unit and has no size (unit structs serialize as unit
/// structs).
pub(super) fn shape<T: Serialize + ?Sized>(data: &T) -> Shape {
    match data.serialize(ShapeProbe) {
        Err(Probe::Unit) if std::mem::size_of_val(data) == 0 => Shape::None,
        Err(Probe::Tuple) => Shape::Spread,
        _ => Shape::One,
    }
}

/// A serializer that stops at the first call and tells which one it was.
pub(super) struct ShapeProbe;

#[derive(Debug)]
pub(super) enum Probe {
    Unit,
    Tuple,
    Other,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shape probe")
    }
}

impl std::error::Error for Probe {}

impl ser::Error for Probe {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Probe::Other
    }
}

macro_rules! other {
    ($($name:ident($($ty:ty),*);)*) => {
        $(fn $name(self, $(_: $ty),*) -> Result<(), Probe> { Err(Probe::Other) })*
    };
}
pub(super) use other;

/// The methods of a value inside something (an option, a newtype), each refused as `Other`.
macro_rules! other_values {
    () => {
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Probe> {
            Err(Probe::Other)
        }

        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<(), Probe> {
            Err(Probe::Other)
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), Probe> {
            Err(Probe::Other)
        }

        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Probe> {
            Err(Probe::Other)
        }
    };
}
pub(super) use other_values;

/// The compound methods but `serialize_tuple`, each refused as `Other`.
macro_rules! other_compounds {
    () => {
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Probe> {
            Err(Probe::Other)
        }

        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Probe> {
            Err(Probe::Other)
        }

        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Probe> {
            Err(Probe::Other)
        }

        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Probe> {
            Err(Probe::Other)
        }

        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Probe> {
            Err(Probe::Other)
        }
    };
}
pub(super) use other_compounds;

impl ser::Serializer for ShapeProbe {
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
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_unit(self) -> Result<(), Probe> {
        Err(Probe::Unit)
    }

    other_values!();

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Probe> {
        Err(Probe::Tuple)
    }

    other_compounds!();
}
