//! Query strings as Node reads them (`URLSearchParams`): form decoding.

/// Decodes `application/x-www-form-urlencoded` text (`%XX` escapes, `+` as a space), as query
/// strings are read; bad escapes are kept as they are, invalid UTF-8 is replaced.
///
/// ```
/// assert_eq!(belfry_proto::query::form_decode("a%20b+c%zz"), "a b c%zz");
/// ```
pub fn form_decode(s: &str) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::form_decode;

    /// What Node's `URLSearchParams` gives for the same text (`new URL("http://x/?a=" + text)`).
    #[test]
    fn decodes_as_node() {
        for (text, node) in [
            ("%2B", "+"),
            ("+%20+", "   "),
            ("%%41", "%A"),
            ("%zz", "%zz"),
            ("%4", "%4"),
            ("%E2%82%AC", "€"),
            ("%E2%82", "\u{FFFD}"),
            ("%C3", "\u{FFFD}"),
            ("plain", "plain"),
        ] {
            assert_eq!(form_decode(text), node, "{text}");
        }
    }
}
