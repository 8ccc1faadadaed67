//! Checks that a text is a JSON array and finds where each element starts and ends, in one pass
//! and without parsing anything.
//!
//! It accepts exactly what serde_json accepts (tested against it), with one difference of
//! speed: a string's contents are skipped with a vectorised search for the closing quote or a
//! backslash, then checked for control characters in a loop the compiler vectorises, where
//! serde_json goes eight bytes at a time: string contents are most of a large event's bytes.

use std::ops::Range;

/// How deep arrays and objects may nest: serde_json's own recursion limit, which its `RawValue`
/// validation does not apply (the bits of the nesting stack).
pub(crate) const MAX_DEPTH: usize = 128;

/// How deep they may nest inside one element of an array (the array itself is one level more).
pub(crate) const MAX_ELEMENT_DEPTH: usize = MAX_DEPTH - 1;

/// True if `json` is one JSON value (surrounding whitespace allowed) nesting no deeper than
/// [`MAX_DEPTH`].
pub(crate) fn is_value(json: &str) -> bool {
    let bytes = json.as_bytes();
    let start = whitespace(bytes, 0);
    value(bytes, start, &mut false, MAX_DEPTH)
        .is_some_and(|end| whitespace(bytes, end) == bytes.len())
}

/// The byte ranges of the elements of the JSON array `json`, or `None` if `json` is not one
/// (surrounding whitespace allowed, as JSON allows). Returns whether a string (a key or a value)
/// is exactly `_placeholder`, as in a binary attachment's placeholder object.
pub(crate) fn split_array(json: &str, mut push: impl FnMut(Range<usize>)) -> Option<bool> {
    let bytes = json.as_bytes();
    let mut placeholder = false;
    let mut i = whitespace(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    i = whitespace(bytes, i + 1);
    if bytes.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            let end = value(bytes, i, &mut placeholder, MAX_ELEMENT_DEPTH)?;
            push(i..end);
            i = whitespace(bytes, end);
            match bytes.get(i) {
                Some(b',') => i = whitespace(bytes, i + 1),
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (whitespace(bytes, i) == bytes.len()).then_some(placeholder)
}

fn whitespace(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(i) {
        i += 1;
    }
    i
}

/// Checks the value starting at `bytes[i]`, nesting at most `max_depth` deep; returns the index
/// past it. Nesting is followed with a stack of bits (set: an object), not recursion.
fn value(bytes: &[u8], mut i: usize, placeholder: &mut bool, max_depth: usize) -> Option<usize> {
    let mut depth = 0;
    let mut objects: u128 = 0;
    loop {
        // A value at `i`.
        match *bytes.get(i)? {
            b'"' => i = string(bytes, i, placeholder)?,
            open @ (b'[' | b'{') => {
                if depth == max_depth {
                    return None;
                }
                let object = open == b'{';
                objects = (objects & !(1 << depth)) | (u128::from(object) << depth);
                depth += 1;
                i = whitespace(bytes, i + 1);
                let close = if object { b'}' } else { b']' };
                if bytes.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                } else {
                    if object {
                        i = key(bytes, i, placeholder)?;
                    }
                    continue;
                }
            }
            b't' => i = literal(bytes, i, b"true")?,
            b'f' => i = literal(bytes, i, b"false")?,
            b'n' => i = literal(bytes, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number(bytes, i)?,
            _ => return None,
        }
        // After a value: the containers it ends, up to the next value.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = objects & (1 << (depth - 1)) != 0;
            i = whitespace(bytes, i);
            match (bytes.get(i), object) {
                (Some(b','), _) => {
                    i = whitespace(bytes, i + 1);
                    if object {
                        i = key(bytes, i, placeholder)?;
                    }
                    break;
                }
                (Some(b']'), false) | (Some(b'}'), true) => {
                    i += 1;
                    depth -= 1;
                }
                _ => return None,
            }
        }
    }
}

/// An object's key and its colon: returns the index of the value after them.
fn key(bytes: &[u8], i: usize, placeholder: &mut bool) -> Option<usize> {
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let i = whitespace(bytes, string(bytes, i, placeholder)?);
    (bytes.get(i) == Some(&b':')).then(|| whitespace(bytes, i + 1))
}

/// The string whose opening quote is at `bytes[i]`: returns the index past its closing quote.
fn string(bytes: &[u8], mut i: usize, placeholder: &mut bool) -> Option<usize> {
    i += 1;
    *placeholder |= bytes[i..].starts_with(b"_placeholder\"");
    loop {
        let rest = bytes.get(i..)?;
        let run = memchr::memchr2(b'"', b'\\', rest)?;
        if has_control(&rest[..run]) {
            return None;
        }
        i += run;
        if bytes[i] == b'"' {
            return Some(i + 1);
        }
        // An escape.
        match *bytes.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' => {
                let hex = bytes.get(i + 2..i + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 6;
            }
            _ => return None,
        }
    }
}

/// True if `bytes` holds a control character, which a JSON string must escape: the smallest
/// byte of each 64-byte block (a fixed-size reduction the compiler does in vector registers),
/// then of the rest.
fn has_control(bytes: &[u8]) -> bool {
    let least = |block: &[u8]| block.iter().fold(u8::MAX, |least, &b| least.min(b));
    let mut blocks = bytes.chunks_exact(64);
    blocks.any(|block| {
        let block: &[u8; 64] = block.try_into().expect("chunks_exact gives 64 bytes");
        least(block) < 0x20
    }) || least(blocks.remainder()) < 0x20
}

fn literal(bytes: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    bytes[i..].starts_with(word).then_some(i + word.len())
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` at `bytes[i]`.
fn number(bytes: &[u8], mut i: usize) -> Option<usize> {
    if bytes[i] == b'-' {
        i += 1;
    }
    match bytes.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(bytes, i),
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        i = at_least_one_digit(bytes, i + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        i = at_least_one_digit(bytes, i)?;
    }
    Some(i)
}

fn digits(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

fn at_least_one_digit(bytes: &[u8], i: usize) -> Option<usize> {
    let end = digits(bytes, i);
    (end > i).then_some(end)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::*;

    fn split(json: &str) -> Option<Vec<&str>> {
        let mut ranges = Vec::new();
        split_array(json, |range| ranges.push(range))?;
        Some(ranges.into_iter().map(|range| &json[range]).collect())
    }

    fn serde_split(json: &str) -> Option<Vec<String>> {
        let all: Vec<Box<RawValue>> = serde_json::from_str(json).ok()?;
        Some(all.iter().map(|raw| raw.get().to_owned()).collect())
    }

    fn agrees(json: &str) {
        let ours = split(json).map(|all| all.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(ours, serde_split(json), "{json:?}");
    }

    #[test]
    fn accepts_and_refuses_as_serde_json() {
        for json in [
            "[]",
            " [ ] ",
            "[1]",
            r#"["a",1,-2.5e+3,true,false,null,{},[],{"k":[1,{"x":"y"}]}]"#,
            r#"[ "a\"b\\c\/\b\f\n\r\t\u00e9\uD800" , 0 ]"#,
            "[0.0,0e0,1E-2,-0]",
            "\n[\t1\r]\n",
            "[\"é€😀\"]",
            // Refused.
            "",
            "[",
            "]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[-]",
            "[+1]",
            "[\"a]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"\u{1}\"]",
            "[tru]",
            "[nul]",
            "[{1:2}]",
            "[{\"a\"}]",
            "[{\"a\":}]",
            "[{\"a\":1,}]",
            "[[1]",
            "[[1}]",
            "[{\"a\":1]}",
            "{}",
            "1",
            "[1] x",
            "[1][2]",
        ] {
            agrees(json);
        }
    }

    #[test]
    fn placeholder_strings_are_noticed() {
        for (json, found) in [
            (r#"["up",{"_placeholder":true,"num":0}]"#, true),
            (r#"["up",["_placeholder"]]"#, true),
            (r#"["up","_placeholders"]"#, false),
            (r#"["up","x_placeholder"]"#, false),
            (r#"["up","\"_placeholder\""]"#, false),
            (r#"["up"]"#, false),
        ] {
            assert_eq!(split_array(json, |_| {}), Some(found), "{json}");
        }
    }

    #[test]
    fn single_values_are_judged_as_serde_json_judges_them() {
        for json in [
            r#" {"a": [1, "x"]} "#,
            r#""s""#,
            "-0.5e3",
            "null",
            "{",
            "{}}",
            "[1,]",
            "\"\u{1}\"",
        ] {
            let serde = serde_json::from_str::<&RawValue>(json).is_ok();
            assert_eq!(is_value(json), serde, "{json:?}");
        }
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(is_value(&nested(MAX_DEPTH)));
        assert!(!is_value(&nested(MAX_DEPTH + 1)));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("[{}{}]", "[".repeat(n), "]".repeat(n));
        assert!(split(&nested(MAX_ELEMENT_DEPTH)).is_some());
        assert!(split(&nested(MAX_ELEMENT_DEPTH + 1)).is_none());
        let objects = format!(
            "[{}1{}]",
            r#"{"a":"#.repeat(MAX_ELEMENT_DEPTH),
            "}".repeat(MAX_ELEMENT_DEPTH)
        );
        assert!(split(&objects).is_some());
    }

    proptest! {
        #[test]
        fn random_text_is_judged_as_serde_json_judges_it(
            json in r#"\[[\[\]{}",:\\ 0-9.eE+\-tufalsnrb/\x01é]{0,24}\]?"#
        ) {
            agrees(&json);
        }

        #[test]
        fn serialized_values_split_into_their_elements(
            values in proptest::collection::vec(any_json(), 0..5)
        ) {
            let json = serde_json::to_string(&values).unwrap();
            agrees(&json);
            let pretty = serde_json::to_string_pretty(&values).unwrap();
            agrees(&pretty);
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
