//! Reading a record of a checked document without building a `serde_json::Value`.
//!
//! When a record's bytes hold no backslash (no escape sequence, so every string is its own
//! bytes), it is read into a [`Tape`]: one flat list of nodes that borrow the record's text,
//! one allocation per record where a `Value` makes one per string, map and array (and hashes
//! every key into its map). Adapters read either through [`Json`]. The same reading, kept
//! to what `serde_json` accepts, is the first pass's check of each record of a large
//! document ([`super::split::is_record_json`]). A record with an escape, or anything the
//! tape leaves to `serde_json`, is read as a `Value` as before.

use serde_json::Value;

/// What an adapter reads a record through: a `&Value`, or a node of a [`Tape`].
pub(crate) trait Json<'a>: Copy {
    /// The member `key` of an object (the last, when a key repeats, as `Value` keeps it).
    fn get(self, key: &str) -> Option<Self>;
    /// The text of a string.
    fn as_str(self) -> Option<&'a str>;
    /// A boolean.
    fn as_bool(self) -> Option<bool>;
    fn is_null(self) -> bool;
    fn is_object(self) -> bool;
    fn is_array(self) -> bool;
    /// The elements of an array.
    fn items(self) -> Option<impl Iterator<Item = Self>>;
    /// The members of an object, in order (a repeated key as often as it appears).
    fn members(self) -> Option<impl Iterator<Item = (&'a str, Self)>>;
    /// The value as a `serde_json::Value` (what is copied into an event).
    fn to_value(self) -> Value;
}

impl<'a> Json<'a> for &'a Value {
    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }
    fn as_str(self) -> Option<&'a str> {
        Value::as_str(self)
    }
    fn as_bool(self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn is_null(self) -> bool {
        Value::is_null(self)
    }
    fn is_object(self) -> bool {
        Value::is_object(self)
    }
    fn is_array(self) -> bool {
        Value::is_array(self)
    }
    fn items(self) -> Option<impl Iterator<Item = Self>> {
        self.as_array().map(|items| items.iter())
    }
    fn members(self) -> Option<impl Iterator<Item = (&'a str, Self)>> {
        self.as_object()
            .map(|map| map.iter().map(|(k, v)| (k.as_str(), v)))
    }
    fn to_value(self) -> Value {
        self.clone()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    True,
    False,
    Number,
    String,
    Array,
    Object,
}

/// One value (or one object key, a `String` node) of a tape.
#[derive(Clone, Copy, Debug)]
struct Node<'a> {
    kind: Kind,
    /// A string's contents (no quotes), a number's text; empty otherwise.
    text: &'a str,
    /// The index just past this node's subtree.
    end: u32,
    /// An object: 1 + the index of its last key node; a key: 1 + the index of the key before
    /// it in its object; 0 for none. Lookups walk the keys backwards, so the first match is
    /// the last of a repeated key, as in a `Value`.
    link: u32,
}

/// A record as nodes in document order: an object is its node, then each member's key node
/// and value subtree; an array is its node, then each element's subtree.
pub(crate) struct Tape<'a> {
    nodes: Vec<Node<'a>>,
}

/// Deepest nesting read (serde_json's own limit; anything deeper is left to serde_json).
const MAX_DEPTH: usize = 128;

impl<'a> Tape<'a> {
    /// The tape of `bytes`, one JSON value, checked as it is read: whatever this accepts,
    /// `serde_json` reads as the same `Value` (the property tests below hold it to that).
    /// `None` when `bytes` have a backslash (escapes are left to `serde_json`), are not
    /// JSON, or hold what only `serde_json` can judge (a number with a long exponent, nesting
    /// deeper than its limit): the caller then asks `serde_json`.
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Tape<'a>> {
        Tape::parse_text(std::str::from_utf8(bytes).ok()?)
    }

    /// [`Tape::parse`] of a line already read as text (not checked as UTF-8 again).
    pub(crate) fn parse_text(text: &'a str) -> Option<Tape<'a>> {
        Parser::read_text(text, true).map(|parser| Tape {
            nodes: parser.nodes,
        })
    }

    /// Whether [`Tape::parse`] accepts `bytes`, without keeping the tape.
    pub(crate) fn check(bytes: &[u8]) -> bool {
        Parser::read(bytes, false).is_some()
    }

    /// The record's top value.
    pub(crate) fn root(&self) -> At<'_> {
        At {
            nodes: &self.nodes,
            i: 0,
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    i: usize,
    /// Whether to keep the nodes ([`Tape::check`] only reads).
    keep: bool,
    nodes: Vec<Node<'a>>,
}

impl<'a> Parser<'a> {
    /// `bytes` read whole as one value (the nodes kept when `keep`); `None` as
    /// [`Tape::parse`] says.
    fn read(bytes: &'a [u8], keep: bool) -> Option<Parser<'a>> {
        Parser::read_text(std::str::from_utf8(bytes).ok()?, keep)
    }

    /// [`Parser::read`] of text already known to be UTF-8.
    fn read_text(text: &'a str, keep: bool) -> Option<Parser<'a>> {
        let bytes = text.as_bytes();
        if memchr::memchr(b'\\', bytes).is_some() {
            return None;
        }
        let mut parser = Parser {
            text,
            bytes,
            i: 0,
            keep,
            nodes: if keep {
                Vec::with_capacity(bytes.len() / 16)
            } else {
                Vec::new()
            },
        };
        parser.value(0)?;
        parser.ws();
        (parser.i == bytes.len()).then_some(parser)
    }

    fn ws(&mut self) {
        while matches!(self.bytes.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn push(&mut self, kind: Kind, text: &'a str) -> usize {
        let at = self.nodes.len();
        if !self.keep {
            return at;
        }
        self.nodes.push(Node {
            kind,
            text,
            end: 0,
            link: 0,
        });
        at
    }

    fn close(&mut self, at: usize) -> Option<()> {
        if !self.keep {
            return Some(());
        }
        let end = u32::try_from(self.nodes.len()).ok()?;
        self.nodes.get_mut(at)?.end = end;
        Some(())
    }

    fn link(&mut self, at: usize, link: u32) -> Option<()> {
        if self.keep {
            self.nodes.get_mut(at)?.link = link;
        }
        Some(())
    }

    /// A string at `self.i` (its opening quote): its contents. (UTF-8 was checked for the
    /// whole record; a control character is refused here, as `serde_json` refuses it.)
    fn string(&mut self) -> Option<&'a str> {
        let start = self.i + 1;
        let rest = self.bytes.get(start..)?;
        let len = quote_or_control(rest)?;
        if rest.get(len) != Some(&b'"') {
            return None; // a control character
        }
        self.i = start + len + 1;
        self.text.get(start..start + len)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.bytes.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number in JSON's grammar, of a size `serde_json` reads without overflow: at most
    /// 300 characters, or 40 with an exponent of at most two digits (anything else is left
    /// to `serde_json`, which may or may not accept it).
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.bytes.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.bytes.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.bytes.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        let mut max = 300;
        if matches!(self.bytes.get(self.i), Some(b'e' | b'E')) {
            max = 40;
            self.i += 1;
            if matches!(self.bytes.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !(1..=2).contains(&self.digits()) {
                return None;
            }
        }
        if self.i - start > max {
            return None;
        }
        let number = self.text.get(start..self.i)?;
        let at = self.push(Kind::Number, number);
        self.close(at)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.bytes.get(self.i)? {
            b'"' => {
                let s = self.string()?;
                let at = self.push(Kind::String, s);
                self.close(at)
            }
            b'{' => {
                let at = self.push(Kind::Object, "");
                self.i += 1;
                self.ws();
                if self.bytes.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return self.close(at);
                }
                let mut last_key = 0;
                loop {
                    self.ws();
                    if self.bytes.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let key = self.string()?;
                    let k = self.push(Kind::String, key);
                    self.close(k)?;
                    self.link(k, last_key)?;
                    last_key = u32::try_from(k + 1).ok()?;
                    self.ws();
                    if self.bytes.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    self.value(depth + 1)?;
                    self.ws();
                    match self.bytes.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            self.link(at, last_key)?;
                            return self.close(at);
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                let at = self.push(Kind::Array, "");
                self.i += 1;
                self.ws();
                if self.bytes.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return self.close(at);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.bytes.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return self.close(at);
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.word(b"true", Kind::True),
            b'f' => self.word(b"false", Kind::False),
            b'n' => self.word(b"null", Kind::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, word: &[u8], kind: Kind) -> Option<()> {
        if !self.bytes.get(self.i..)?.starts_with(word) {
            return None;
        }
        self.i += word.len();
        let at = self.push(kind, "");
        self.close(at)
    }
}

/// The index of the first `"` or control character (below U+0020) in `bytes`. Strings in
/// records are short: eight bytes at a time in a `u64` answers both questions in one pass,
/// where `memchr` then a second scan for control characters took two.
fn quote_or_control(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const SPACES: u64 = u64::from_le_bytes([0x20; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let q = x ^ QUOTES;
        // A byte's high bit is set where it is zero in `q` (a quote) or below 0x20 in `x`.
        // Borrows can flag bytes above a true hit, never below it: the lowest flag is exact.
        let hits = (q.wrapping_sub(ONES) & !q | x.wrapping_sub(SPACES) & !x) & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b < 0x20)
        .map(|i| at + i)
}

/// One value of a [`Tape`].
#[derive(Clone, Copy)]
pub(crate) struct At<'t> {
    nodes: &'t [Node<'t>],
    i: usize,
}

impl<'t> At<'t> {
    fn node(self) -> Option<Node<'t>> {
        self.nodes.get(self.i).copied()
    }

    fn kind(self) -> Option<Kind> {
        self.node().map(|n| n.kind)
    }

    /// The indexes of the children of a container node, each a subtree.
    fn children(self) -> impl Iterator<Item = usize> + 't {
        let nodes = self.nodes;
        let end = self.node().map_or(0, |n| n.end as usize);
        let mut j = self.i + 1;
        std::iter::from_fn(move || {
            if j >= end {
                return None;
            }
            let here = j;
            j = nodes.get(here).map_or(end, |n| n.end as usize);
            Some(here)
        })
    }
}

impl<'t> Json<'t> for At<'t> {
    fn get(self, key: &str) -> Option<Self> {
        let object = self.node().filter(|n| n.kind == Kind::Object)?;
        let mut link = object.link as usize;
        while link != 0 {
            let k = self.nodes.get(link - 1)?;
            if same_key(k.text, key) {
                return Some(At {
                    nodes: self.nodes,
                    i: link,
                });
            }
            link = k.link as usize;
        }
        None
    }
    fn as_str(self) -> Option<&'t str> {
        self.node()
            .filter(|n| n.kind == Kind::String)
            .map(|n| n.text)
    }
    fn as_bool(self) -> Option<bool> {
        match self.kind()? {
            Kind::True => Some(true),
            Kind::False => Some(false),
            _ => None,
        }
    }
    fn is_null(self) -> bool {
        self.kind() == Some(Kind::Null)
    }
    fn is_object(self) -> bool {
        self.kind() == Some(Kind::Object)
    }
    fn is_array(self) -> bool {
        self.kind() == Some(Kind::Array)
    }
    fn items(self) -> Option<impl Iterator<Item = Self>> {
        let nodes = self.nodes;
        self.is_array()
            .then(|| self.children().map(move |i| At { nodes, i }))
    }
    fn members(self) -> Option<impl Iterator<Item = (&'t str, Self)>> {
        let nodes = self.nodes;
        self.is_object().then(|| {
            let mut children = self.children();
            std::iter::from_fn(move || {
                let (k, v) = (children.next()?, children.next()?);
                let key = nodes.get(k).map_or("", |n| n.text);
                Some((key, At { nodes, i: v }))
            })
        })
    }
    fn to_value(self) -> Value {
        let Some(node) = self.node() else {
            return Value::Null;
        };
        match node.kind {
            Kind::Null => Value::Null,
            Kind::True => Value::Bool(true),
            Kind::False => Value::Bool(false),
            // The number as serde_json reads it (same precision rules).
            Kind::Number => serde_json::from_str(node.text).unwrap_or(Value::Null),
            Kind::String => Value::String(node.text.to_owned()),
            Kind::Array => Value::Array(
                self.children()
                    .map(|i| {
                        At {
                            nodes: self.nodes,
                            i,
                        }
                        .to_value()
                    })
                    .collect(),
            ),
            Kind::Object => {
                let mut map = serde_json::Map::new();
                let mut children = self.children();
                while let (Some(k), Some(v)) = (children.next(), children.next()) {
                    let key = self.nodes.get(k).map_or("", |n| n.text);
                    let value = At {
                        nodes: self.nodes,
                        i: v,
                    }
                    .to_value();
                    map.insert(key.to_owned(), value);
                }
                Value::Object(map)
            }
        }
    }
}

/// Whether two object keys are equal: a byte loop inlined where it is used. Keys are short
/// and differ early, and members are searched by key many times per record, where a call to
/// `memcmp` for every key of the right length costs more than the comparison.
#[inline]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Everything the trait reads, the same through a tape as through a `Value`.
    fn same<'a>(tape: At<'a>, value: &'a Value) {
        assert_eq!(tape.to_value(), *value);
        assert_eq!(tape.as_str(), value.as_str());
        assert_eq!(tape.as_bool(), value.as_bool());
        assert_eq!(tape.is_null(), value.is_null());
        assert_eq!(tape.is_object(), value.is_object());
        assert_eq!(tape.is_array(), value.is_array());
        if let Some(obj) = value.as_object() {
            for (key, member) in obj {
                same(tape.get(key).unwrap(), member);
            }
            assert!(tape.get("no such key \u{1}").is_none());
        } else {
            assert!(tape.get("a").is_none());
        }
        match (tape.items(), Json::items(value)) {
            (Some(t), Some(v)) => {
                let t: Vec<_> = t.collect();
                let v: Vec<_> = v.collect();
                assert_eq!(t.len(), v.len());
                for (t, v) in t.into_iter().zip(v) {
                    same(t, v);
                }
            }
            (t, v) => assert_eq!(t.is_some(), v.is_some(), "items differ"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let text = r#" {"a": [1, -2.5e3, true, false, null, "x y", {}, []],
            "b": {"c": {"d": "ü→"}}, "a": 7, "n": 12345678901234567890123 } "#;
        let value: Value = serde_json::from_str(text).unwrap();
        let tape = Tape::parse(text.as_bytes()).unwrap();
        same(tape.root(), &value);
        // A repeated key: the last one, as in the Value.
        assert_eq!(tape.root().get("a").unwrap().to_value(), 7);
    }

    #[test]
    fn what_serde_json_refuses_is_refused() {
        for bad in [
            &b"01"[..],
            b"1.",
            b".5",
            b"-",
            b"1e",
            b"+1",
            b"tru",
            b"nul",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"\"a\x01b\"",
            b"\"a\nb\"",
            b"[1] [2]",
            b"\xef\xbb\xbf{}",
        ] {
            assert!(serde_json::from_slice::<Value>(bad).is_err());
            assert!(
                Tape::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(!Tape::check(bad));
        }
        // Left to serde_json: it reads these, the tape does not try.
        for judged in [&b"1e100"[..], b"1e-400", b"[\"\\u00e9\"]"] {
            assert!(serde_json::from_slice::<Value>(judged).is_ok());
            assert!(Tape::parse(judged).is_none());
        }
        assert!(serde_json::from_slice::<Value>(b"1e400").is_err());
        assert!(Tape::parse(b"1e400").is_none());
    }

    #[test]
    fn escapes_and_broken_text_are_left_to_serde_json() {
        assert!(Tape::parse(br#"{"a": "say \"hi\""}"#).is_none());
        assert!(Tape::parse(br#"{"a": 1"#).is_none());
        assert!(Tape::parse(br#"{"a": 1} x"#).is_none());
        assert!(Tape::parse(b"[\xff]").is_none());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Tape::parse(deep.as_bytes()).is_none());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            // (Exponents of three digits are left to serde_json: see `numbers`.)
            (-1e50f64..1e50).prop_map(Value::from),
            "[^\"\\\\\\x00-\\x1f]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The word-at-a-time search finds what a byte loop finds, wherever the byte is
        /// (bytes around the boundaries of the eight-byte words weighted in).
        #[test]
        fn quote_or_control_is_the_first_such_byte(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(0x1f_u8), Just(0x20_u8), Just(0x21_u8), 0x00_u8..0x20, any::<u8>()],
                0..40,
            ),
            skip in 0usize..8,
        ) {
            let bytes = bytes.get(skip.min(bytes.len())..).unwrap();
            let expected = bytes.iter().position(|&b| b == b'"' || b < 0x20);
            prop_assert_eq!(quote_or_control(bytes), expected);
        }

        #[test]
        fn any_escape_free_json_reads_the_same(value in json(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let parsed: Value = serde_json::from_str(&text).unwrap();
            let tape = Tape::parse(text.as_bytes()).unwrap();
            same(tape.root(), &parsed);
            prop_assert!(Tape::check(text.as_bytes()));
        }

        /// Arbitrary bytes never panic, and whatever the tape accepts, serde_json reads as
        /// the same value.
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(
            prop::sample::select(b"{}[]:, \"ab01-+.eE\xc3\xbc\xff\x01\n\ttrufalsn".to_vec()),
            0..48,
        )) {
            prop_assert_eq!(Tape::check(&bytes), Tape::parse(&bytes).is_some());
            if let Some(tape) = Tape::parse(&bytes) {
                let value = serde_json::from_slice::<Value>(&bytes);
                prop_assert!(value.is_ok(), "{:?}", String::from_utf8_lossy(&bytes));
                same(tape.root(), &value.unwrap());
            }
        }

        /// Numbers: the tape accepts only what serde_json reads, and reads it the same.
        #[test]
        fn numbers(text in "-?[0-9]{0,3}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?") {
            if let Some(tape) = Tape::parse(text.as_bytes()) {
                let value = serde_json::from_str::<Value>(&text);
                prop_assert!(value.is_ok(), "{text}");
                same(tape.root(), &value.unwrap());
            }
        }
    }
}
