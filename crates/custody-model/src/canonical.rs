//! Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for hashing.
//!
//! The Merkle leaf of an event is the SHA-256 leaf hash of its canonical JSON (DESIGN §8), so
//! two parties that hold the same JSON object compute the same leaf whatever key order or
//! number spelling they received. This is a direct writer over `serde_json::Value`, because
//! it runs once per ingested event and a general-purpose canonicalizer cost more than the rest
//! of ingest together; the `serde_json_canonicalizer` crate is kept as the test oracle
//! (a property test checks byte-for-byte agreement on arbitrary values).
//!
//! RFC 8785 §3.2: object members sorted by the UTF-16 code units of their names (§3.2.3);
//! strings with the minimal escaping of ECMAScript `JSON.stringify` (§3.2.2.2); numbers as
//! ECMAScript `Number.prototype.toString` of the IEEE 754 double (§3.2.2.3, via `ryu-js`);
//! no whitespace.

use std::cmp::Ordering;
use std::io::Write as _;

use serde_json::{Map, Number, Value};

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalize JSON: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of a JSON value.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

/// RFC 8785 §3.2.3: sort by UTF-16 code units ([`sort_members`]). UTF-8 byte order is code
/// point order, which differs from UTF-16 order only when a name holds a character at or above
/// U+E000 (its UTF-8 starts with a byte ≥ 0xEE); only then is the slower comparison needed.
fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let mut members: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    sort_members(&mut members);
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out)?;
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Sorts object members into RFC 8785 order (§3.2.3), for a caller writing canonical JSON
/// from another form than a `Value` with [`write_string`] and [`write_number`].
pub fn sort_members<K: AsRef<str>, V>(members: &mut [(K, V)]) {
    if members
        .iter()
        .any(|(k, _)| k.as_ref().bytes().any(|b| b >= 0xEE))
    {
        members.sort_by(|(a, _), (b, _)| utf16_cmp(a.as_ref(), b.as_ref()));
    } else {
        members.sort_by(|(a, _), (b, _)| bytes_cmp(a.as_ref().as_bytes(), b.as_ref().as_bytes()));
    }
}

/// `a.cmp(b)` for short byte strings, inlined: keys mostly differ in their first bytes, where
/// a call to `memcmp` for each comparison of a sort costs more than the comparison.
#[inline]
fn bytes_cmp(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The escaping of ECMAScript `JSON.stringify`, which is also `serde_json`'s: `"`, `\`, and
/// control characters (short forms where they exist, else `\u00xx` in lowercase hex).
///
/// # Errors
/// Not expected: the error of writing to memory.
pub fn write_string(s: &str, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    // Most strings need no escape at all: copy them as they are.
    if !needs_escape(s.as_bytes()) {
        write_unescaped(s, out);
        return Ok(());
    }
    serde_json::to_writer(&mut *out, s).map_err(|e| CanonicalError(e.to_string()))
}

/// `s` between quotes, as it is: [`write_string`] of a string the caller knows holds no `"`,
/// `\` or control character (one read from JSON that had no escapes, say).
pub fn write_unescaped(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether `bytes` hold a `"`, a `\\` or a control character (below U+0020), eight bytes at
/// a time in a `u64` (strings in events are short: a byte loop, even vectorised, cost more).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_le_bytes([0x20; 8]);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let (q, b) = (x ^ QUOTES, x ^ BACKSLASHES);
        // High bit set in a byte that is zero in `q` or `b`, or below 0x20 in `x` (borrows
        // can flag more bytes only after a true hit, and any hit answers the question).
        let hits = (q.wrapping_sub(ONES) & !q)
            | (b.wrapping_sub(ONES) & !b)
            | (x.wrapping_sub(SPACES) & !x);
        if hits & HIGH != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// RFC 8785 §3.2.2.3: the shortest ECMAScript form of the IEEE 754 double.
///
/// # Errors
/// A number that is not a finite double.
pub fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    const EXACT: i64 = 1 << 53;
    if let Some(i) = n.as_i64().filter(|i| (-EXACT..=EXACT).contains(i)) {
        return write!(out, "{i}").map_err(|e| CanonicalError(e.to_string()));
    }
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| CanonicalError(format!("number {n} is not a finite double")))?;
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(text: &str) -> String {
        String::from_utf8(canonical_json(&serde_json::from_str(text).unwrap()).unwrap()).unwrap()
    }

    proptest! {
        #[test]
        fn bytes_cmp_is_slice_order(a in proptest::collection::vec(any::<u8>(), 0..12),
                                    b in proptest::collection::vec(any::<u8>(), 0..12)) {
            prop_assert_eq!(bytes_cmp(&a, &b), a.cmp(&b));
            prop_assert_eq!(bytes_cmp(&a, &a), Ordering::Equal);
            let longer = [a.as_slice(), b.as_slice()].concat();
            prop_assert_eq!(bytes_cmp(&a, &longer), a.cmp(&longer));
            prop_assert_eq!(bytes_cmp(&longer, &a), longer.cmp(&a));
        }

        /// The word-at-a-time check agrees with a byte loop, wherever the byte is.
        #[test]
        fn needs_escape_finds_every_escape(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1f_u8), Just(0x20_u8), Just(0x5d_u8), any::<u8>()],
                0..40,
            ),
            skip in 0usize..8,
        ) {
            let bytes = bytes.get(skip.min(bytes.len())..).unwrap();
            let expected = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(needs_escape(bytes), expected);
        }
    }

    #[test]
    fn keys_are_sorted_and_numbers_normalised() {
        assert_eq!(
            canon(
                r#"{"b": 1.0, "a": [1e2, -0.0, 0.000001, 1e21, 123456789012345678], "c": "\u00e9\n\u001f"}"#
            ),
            "{\"a\":[100,0,0.000001,1e+21,123456789012345680],\"b\":1,\"c\":\"é\\n\\u001f\"}"
        );
    }

    /// RFC 8785 §3.2.3, the sorting example: names sort by UTF-16 code units.
    #[test]
    fn the_rfc_8785_sorting_example() {
        let out = canon(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        );
        let order: Vec<usize> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet",
        ]
        .iter()
        .map(|v| out.find(v).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    /// RFC 8785 Appendix B number samples (IEEE 754 → ECMAScript text).
    #[test]
    fn rfc_8785_number_samples() {
        for (input, want) in [
            ("0", "0"),
            ("-0.0", "0"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740992", "9007199254740992"),
            ("9007199254740993", "9007199254740992"),
            ("295147905179352830000", "295147905179352830000"),
            ("1e+23", "1e+23"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("333333333.3333333", "333333333.3333333"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
    }

    #[test]
    fn equal_objects_have_equal_bytes() {
        assert_eq!(
            canon(r#"{"x":{"b":2,"a":1},"y":[true,null]}"#),
            canon(r#"{ "y" : [ true , null ], "x" : { "a" : 1 , "b" : 2 } }"#)
        );
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            "[\u{0}-\u{1f}\"\\\\a\u{7f}\u{e000}\u{10000}\u{ffff}é]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    "[a-z\u{80}\u{e000}\u{ff5e}\u{1f600}]{0,4}",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Byte-for-byte agreement with an independent RFC 8785 implementation.
        #[test]
        fn agrees_with_serde_json_canonicalizer(v in json()) {
            let ours = canonical_json(&v).unwrap();
            let theirs = serde_json_canonicalizer::to_vec(&v).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
