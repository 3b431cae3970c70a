//! Splitting a `{"Records": [...]}` document (or a JSON array) into its records' bytes
//! without building a `serde_json::Value` of the whole: each record is parsed on its own
//! later, on whichever thread converts it.
//!
//! A document is split only once it is known to be JSON that `serde_json` accepts as a
//! `Value` ([`is_json`]: the same parser, with a visitor that keeps nothing), so a document
//! broken anywhere is still rejected whole, with `serde_json`'s own message, before any of
//! its records is handed on. [`records`] then only has to find the boundaries in valid JSON.

use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether `bytes` parse as one JSON value exactly as `serde_json::from_slice::<Value>`
/// would (same parser, same strings, numbers, depth limit and trailing-character rule), at
/// no allocation per value.
pub(crate) fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Valid>(bytes).is_ok()
}

/// [`is_json`] of one record of a document, faster: a record without escapes is read into a
/// [`Tape`](super::tape::Tape), which accepts only what `serde_json` accepts; anything the
/// tape does not accept is asked of `serde_json`, so the answer is always [`is_json`]'s.
pub(crate) fn is_record_json(bytes: &[u8]) -> bool {
    super::tape::Tape::check(bytes) || is_json(bytes)
}

/// A JSON value, checked and dropped as it is read.
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Valid, D::Error> {
        deserializer.deserialize_any(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_key::<Valid>()?.is_some() {
            map.next_value::<Valid>()?;
        }
        Ok(Valid)
    }
}

/// Whether `unit` (trimmed) opens like a document [`records`] can split: `[`, or `{` then
/// `"Records"`. Cheap: it reads a few bytes.
pub(crate) fn looks_splittable(unit: &[u8]) -> bool {
    let i = skip_ws(unit, 0);
    match unit.get(i) {
        Some(b'[') => true,
        Some(b'{') => {
            let j = skip_ws(unit, i + 1);
            unit.get(j..)
                .is_some_and(|rest| rest.starts_with(RECORDS_KEY))
        }
        _ => false,
    }
}

const RECORDS_KEY: &[u8] = b"\"Records\"";

/// The byte ranges of the records of `unit`, which must be valid JSON ([`is_json`]): the
/// elements of a top-level array, or of the `Records` array of an object whose only key is
/// `Records`. `None` for any other shape (the caller then parses the unit whole).
pub(crate) fn records(unit: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut i = skip_ws(unit, 0);
    let in_object = match unit.get(i)? {
        b'[' => false,
        b'{' => {
            i = skip_ws(unit, i + 1);
            if !unit.get(i..)?.starts_with(RECORDS_KEY) {
                return None;
            }
            i = skip_ws(unit, i + RECORDS_KEY.len());
            if unit.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(unit, i + 1);
            if unit.get(i) != Some(&b'[') {
                return None;
            }
            true
        }
        _ => return None,
    };
    i += 1;
    let mut out = Vec::new();
    i = skip_ws(unit, i);
    if unit.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            let start = i;
            i = skip_value(unit, i)?;
            out.push(start..i);
            i = skip_ws(unit, i);
            match unit.get(i)? {
                b',' => i = skip_ws(unit, i + 1),
                b']' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    i = skip_ws(unit, i);
    if in_object {
        // Another key beside `Records` (or a second `Records`): not this shape.
        if unit.get(i) != Some(&b'}') {
            return None;
        }
        i = skip_ws(unit, i + 1);
    }
    (i == unit.len()).then_some(out)
}

/// The first index at or after `i` that is not JSON whitespace.
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is at `i` (one past the closing quote).
fn skip_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            _ => i += 2,
        }
    }
}

/// The end of the (valid) JSON value starting at `i`; `None` at the end of `bytes` or past
/// [`MAX_DEPTH`] levels of nesting.
fn skip_value(bytes: &[u8], mut i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => skip_string(bytes, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                    }
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            // A number or a literal: up to the next delimiter.
            while !matches!(
                bytes.get(i),
                None | Some(b',' | b']' | b'}' | b' ' | b'\n' | b'\t' | b'\r')
            ) {
                i += 1;
            }
            Some(i)
        }
    }
}

/// How deep a record found by [`scan`] may nest: checked apart, a record has the parser's
/// whole depth limit (128) to itself, inside the document two levels less; far below both.
const MAX_DEPTH: usize = 100;

/// What [`scan`] found in a document.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Each record's byte range in the input.
    pub records: Vec<Range<u64>>,
    /// `Some(line)` when the document is an object on one line (the line it is on): read as
    /// NDJSON, its records take that line's number. `None`: numbered by their index.
    pub line: Option<u64>,
}

/// Bytes read at a time by [`scan`].
const BLOCK: usize = 1 << 20;

/// A first pass over an input that holds one `Records` document (or one array) and nothing
/// else: finds each record's byte range and checks the whole as [`is_json`] would (each
/// record with the same parser, the punctuation between them here), holding one block at a
/// time. `None` when the input is anything else, or not JSON: the caller then reads it the
/// ordinary way, which gives the same records, numbers and reasons.
///
/// Each record found is passed to `check` (its bytes and its range in the input), which
/// must check it with [`is_json`], here or elsewhere before the result is used: the scan
/// checks only the punctuation around the records. `check` returning false ends the scan.
pub(crate) fn scan<R: std::io::Read>(
    input: R,
    check: &mut dyn FnMut(&[u8], Range<u64>) -> bool,
) -> std::io::Result<Option<Scanned>> {
    let mut w = Window {
        input,
        buf: Vec::with_capacity(BLOCK),
        base: 0,
        eof: false,
    };
    // Leading whitespace, its newlines counted (blank lines before the document).
    let mut pos = w.ws(0)?;
    if w.buf.starts_with(&[0xef, 0xbb, 0xbf]) {
        return Ok(None);
    }
    let blank_lines = w.buf.get(..pos).map_or(0, newlines);
    let mut one_line = true;
    let in_object = match w.byte(pos)? {
        Some(b'[') => {
            one_line = false;
            false
        }
        Some(b'{') => {
            let start = pos + 1;
            pos = w.ws(start)?;
            one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
            if !w.ensure(pos + RECORDS_KEY.len())?
                || !w.buf.get(pos..).is_some_and(|b| b.starts_with(RECORDS_KEY))
            {
                return Ok(None);
            }
            let start = pos + RECORDS_KEY.len();
            pos = w.ws(start)?;
            one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
            if w.byte(pos)? != Some(b':') {
                return Ok(None);
            }
            let start = pos + 1;
            pos = w.ws(start)?;
            one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
            if w.byte(pos)? != Some(b'[') {
                return Ok(None);
            }
            true
        }
        _ => return Ok(None),
    };
    let mut records = Vec::new();
    let start = pos + 1;
    pos = w.ws(start)?;
    one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
    if w.byte(pos)? == Some(b']') {
        pos += 1;
    } else {
        loop {
            // One record: its end, reading on while it runs past the block.
            let end = loop {
                match skip_value(&w.buf, pos) {
                    Some(end) if end < w.buf.len() || w.eof => break end,
                    found => {
                        if w.eof || (found.is_none() && w.buf.len() - pos > MAX_RECORD) {
                            return Ok(None);
                        }
                        let more = (w.buf.len() - pos).max(BLOCK);
                        w.read_more(more)?;
                    }
                }
            };
            let record = w.buf.get(pos..end).unwrap_or_default();
            let range = w.base + pos as u64..w.base + end as u64;
            if !check(record, range.clone()) {
                return Ok(None);
            }
            one_line = one_line && no_newline(record);
            records.push(range);
            pos = w.ws(end)?;
            one_line = one_line && no_newline(w.buf.get(end..pos).unwrap_or_default());
            match w.byte(pos)? {
                Some(b',') => {
                    let start = pos + 1;
                    pos = w.ws(start)?;
                    one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
                }
                Some(b']') => {
                    pos += 1;
                    break;
                }
                _ => return Ok(None),
            }
            pos = w.compact(pos);
        }
    }
    let start = pos;
    pos = w.ws(start)?;
    if in_object {
        one_line = one_line && no_newline(w.buf.get(start..pos).unwrap_or_default());
        if w.byte(pos)? != Some(b'}') {
            return Ok(None);
        }
        pos = w.ws(pos + 1)?;
    }
    if w.byte(pos)?.is_some() {
        return Ok(None);
    }
    let line = (in_object && one_line).then_some(blank_lines + 1);
    Ok(Some(Scanned { records, line }))
}

/// The largest record [`scan`] looks for (a larger one ends the scan: read the ordinary way).
const MAX_RECORD: usize = 256 << 20;

fn no_newline(bytes: &[u8]) -> bool {
    memchr::memchr(b'\n', bytes).is_none()
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The part of the input [`scan`] holds: `buf` starts at byte `base` of the input.
struct Window<R> {
    input: R,
    buf: Vec<u8>,
    base: u64,
    eof: bool,
}

impl<R: std::io::Read> Window<R> {
    /// Appends up to `n` more bytes; at the end of the input sets `eof`.
    fn read_more(&mut self, n: usize) -> std::io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + n, 0);
        let mut filled = len;
        while filled < len + n {
            match self
                .input
                .read(self.buf.get_mut(filled..).unwrap_or_default())
            {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(filled);
        Ok(())
    }

    /// Whether `buf` reaches `end` (reading on as needed).
    fn ensure(&mut self, end: usize) -> std::io::Result<bool> {
        while self.buf.len() < end && !self.eof {
            self.read_more(BLOCK)?;
        }
        Ok(self.buf.len() >= end)
    }

    /// The byte at `i`, `None` at the end of the input.
    fn byte(&mut self, i: usize) -> std::io::Result<Option<u8>> {
        self.ensure(i + 1)?;
        Ok(self.buf.get(i).copied())
    }

    /// The first index at or after `i` that is not whitespace (or the end of the input).
    fn ws(&mut self, mut i: usize) -> std::io::Result<usize> {
        loop {
            i = skip_ws(&self.buf, i);
            if i < self.buf.len() || self.eof {
                return Ok(i);
            }
            self.read_more(BLOCK)?;
        }
    }

    /// Drops what lies before `pos` once it is most of the block and little is left after
    /// it to move (or the window has grown to a few blocks); the new index of `pos`.
    fn compact(&mut self, pos: usize) -> usize {
        let left = self.buf.len().saturating_sub(pos);
        if pos < BLOCK / 2 || (left > BLOCK / 8 && pos < 4 * BLOCK) {
            return pos;
        }
        self.buf.drain(..pos);
        self.base += pos as u64;
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parts(unit: &str) -> Option<Vec<&str>> {
        assert!(is_json(unit.as_bytes()), "{unit}");
        records(unit.as_bytes()).map(|ranges| ranges.into_iter().map(|r| &unit[r]).collect())
    }

    #[test]
    fn splits_records_documents_and_arrays() {
        assert_eq!(
            parts(r#" { "Records" : [ {"a":"x,]}\"{"} , [1,[2]] ,3, "s" ,true,null,-1.5e3 ] } "#),
            Some(vec![
                r#"{"a":"x,]}\"{"}"#,
                "[1,[2]]",
                "3",
                r#""s""#,
                "true",
                "null",
                "-1.5e3"
            ])
        );
        assert_eq!(parts("[]"), Some(vec![]));
        assert_eq!(parts(r#"{"Records":[]}"#), Some(vec![]));
        assert_eq!(parts("[{}]\n"), Some(vec!["{}"]));
    }

    #[test]
    fn other_shapes_are_not_split() {
        assert_eq!(parts(r#"{"Records":[1],"more":2}"#), None);
        assert_eq!(parts(r#"{"Records":[1],"Records":[2]}"#), None);
        assert_eq!(parts(r#"{"more":2,"Records":[1]}"#), None);
        assert_eq!(parts(r#"{"Records":{"a":1}}"#), None);
        assert_eq!(parts(r#"{"a":1}"#), None);
        assert_eq!(parts(r#""Records""#), None);
        assert!(!looks_splittable(br#"{"a":1}"#));
        assert!(looks_splittable(b" [1]"));
        assert!(looks_splittable(br#"{ "Records": 1"#));
    }

    #[test]
    fn is_json_accepts_what_value_accepts() {
        for text in [
            r#"{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"}"#,
            "1e400",
            r#""\ud800""#,
            "[1,]",
            "{\"a\":1} x",
            "\"\u{1}\"",
            &"[".repeat(200),
            &format!("{}{}", "[".repeat(127), "]".repeat(127)),
            &format!("{}{}", "[".repeat(128), "]".repeat(128)),
        ] {
            assert_eq!(
                is_json(text.as_bytes()),
                serde_json::from_str::<Value>(text).is_ok(),
                "{text}"
            );
        }
        assert!(!is_json(b"\"\xff\""));
    }
}
