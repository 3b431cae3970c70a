//! An event object as an adapter builds it, before preparation, without a
//! `serde_json::Value`: members in a `Vec` (no key hashing, keys the adapter names are
//! `&'static str`), strings borrowed from the record where they are copied from it.
//!
//! [`Preparer::prepare_draft`](crate::Preparer::prepare_draft) redacts, types,
//! canonicalizes and hashes a draft exactly as [`Preparer::prepare_value`]
//! (crate::Preparer::prepare_value) does the `Value` of [`Obj::to_value`] (a test holds the
//! two paths to the same bytes and the same typed event for every CloudTrail record in
//! `tests/data`). Building a `Value` (a `String` and a SipHash insert per member) and
//! dropping it was about a tenth of the CPU of a CloudTrail ingest.

use std::borrow::Cow;

use custody_model::{secret_by_name, CanonicalError, Redactor};
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Number, Value};

use super::tape::{same_key, Json};
use super::util::at;

/// A JSON value of a draft.
#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Obj<'a>),
}

/// A JSON object of a draft: members in the order they were added; a key appears once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Obj<'a> {
    members: Vec<(Cow<'a, str>, Node<'a>)>,
}

impl<'a> From<&'a str> for Node<'a> {
    fn from(s: &'a str) -> Node<'a> {
        Node::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Node<'_> {
    fn from(s: String) -> Self {
        Node::Str(Cow::Owned(s))
    }
}

impl From<bool> for Node<'_> {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl<'a> From<Obj<'a>> for Node<'a> {
    fn from(obj: Obj<'a>) -> Node<'a> {
        Node::Object(obj)
    }
}

impl<'a> From<Vec<Node<'a>>> for Node<'a> {
    fn from(items: Vec<Node<'a>>) -> Node<'a> {
        Node::Array(items)
    }
}

impl From<Value> for Node<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::Str(Cow::Owned(s)),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            Value::Object(map) => Node::Object(Obj {
                members: map
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Node::from(v)))
                    .collect(),
            }),
        }
    }
}

impl<'a> Node<'a> {
    /// The node of a value read from a record (strings borrowed from it).
    pub(crate) fn of<J: Json<'a>>(value: J) -> Node<'a> {
        if let Some(s) = value.as_str() {
            return Node::from(s);
        }
        // Sized before they are filled (the iterators cannot say how many there are): a
        // vector grown four, eight, sixteen at a time copies its members at each step.
        if let Some(items) = value.items() {
            let mut out = Vec::with_capacity(value.items().map_or(0, Iterator::count));
            out.extend(items.map(Node::of));
            return Node::Array(out);
        }
        if let Some(members) = value.members() {
            let mut obj = Obj::with_capacity(value.members().map_or(0, Iterator::count));
            // One bit per key seen, chosen by `key_bit`: a key whose bit is not set yet is
            // new, and is pushed without comparing it with every key before it.
            let mut seen = 0u64;
            for (key, v) in members {
                let bit = key_bit(key);
                if seen & bit == 0 {
                    seen |= bit;
                    obj.members.push((Cow::Borrowed(key), Node::of(v)));
                } else {
                    // Maybe repeated: the last value, in the first one's place (as a `Value`).
                    obj.set(Cow::Borrowed(key), Node::of(v));
                }
            }
            return Node::Object(obj);
        }
        Node::from(value.to_value())
    }

    /// The node as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.as_ref().to_owned()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(obj) => obj.to_value(),
        }
    }
}

/// One of 64 bits for `key`, the same for equal keys (from its length and its first and last
/// bytes, which tell the keys of an object apart almost always).
fn key_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let first = usize::from(bytes.first().copied().unwrap_or(0));
    let last = usize::from(bytes.last().copied().unwrap_or(0));
    1u64 << ((bytes.len() + 3 * first + 7 * last) & 63)
}

impl<'a> Obj<'a> {
    /// An object with room for `n` members.
    pub fn with_capacity(n: usize) -> Obj<'a> {
        Obj {
            members: Vec::with_capacity(n),
        }
    }

    /// An object of these members in this order (the keys distinct).
    pub fn of<const N: usize>(members: [(&'static str, Node<'a>); N]) -> Obj<'a> {
        let mut obj = Obj::with_capacity(N + 2);
        for (key, value) in members {
            obj.put(key, value);
        }
        obj
    }

    /// Adds member `key`, which the object does not have yet.
    pub fn put(&mut self, key: &'static str, value: impl Into<Node<'a>>) {
        debug_assert!(self.get(key).is_none(), "`{key}` put twice");
        self.members.push((Cow::Borrowed(key), value.into()));
    }

    /// [`Obj::put`] when `value` is present.
    pub fn put_some(&mut self, key: &'static str, value: Option<impl Into<Node<'a>>>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    /// Copies `path` of `from` into member `key` when present and not null.
    pub(crate) fn copy<J: Json<'a>>(&mut self, key: &'static str, from: J, path: &[&str]) {
        if let Some(v) = at(from, path).filter(|v| !v.is_null()) {
            self.put(key, Node::of(v));
        }
    }

    /// Sets member `key`: replaces its value when present, else adds it at the end.
    fn set(&mut self, key: Cow<'a, str>, value: Node<'a>) {
        match self.members.iter_mut().find(|(k, _)| same_key(k, &key)) {
            Some((_, slot)) => *slot = value,
            None => self.members.push((key, value)),
        }
    }

    /// The value of member `key`.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.members
            .iter()
            .find_map(|(k, v)| same_key(k, key).then_some(v))
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.members.iter().position(|(k, _)| same_key(k, key))
    }

    /// The object as a `serde_json::Value` (members in order).
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(self.members.len());
        for (key, value) in &self.members {
            map.insert(key.as_ref().to_owned(), value.to_value());
        }
        Value::Object(map)
    }

    /// Redacts the object in place as [`Redactor::redact_value`] redacts its `Value`.
    pub fn redact(&mut self, redactor: &Redactor) {
        redact_object(redactor, self, 0, false);
    }

    /// Takes member `key` out, with its place, for [`Obj::restore`].
    pub(crate) fn take(&mut self, key: &str) -> Option<(usize, Node<'a>)> {
        let i = self.position(key)?;
        let (_, value) = self.members.remove(i);
        Some((i, value))
    }

    /// Puts back what [`Obj::take`] took.
    pub(crate) fn restore(&mut self, key: &'static str, taken: Option<(usize, Node<'a>)>) {
        if let Some((i, value)) = taken {
            let i = i.min(self.members.len());
            self.members.insert(i, (Cow::Borrowed(key), value));
        }
    }

    /// The RFC 8785 canonical bytes of the object (as `canonical_json` of its `Value`).
    #[cfg(test)]
    pub(crate) fn canonical(&mut self) -> Result<Vec<u8>, CanonicalError> {
        self.canonical_in(Vec::with_capacity(1024), Source::Any)
    }

    /// The RFC 8785 canonical bytes of the object (as `canonical_json` of its `Value`),
    /// written into `out` (empty, sized by the caller). Sorts the members of every object in
    /// it into canonical order.
    pub(crate) fn canonical_in(
        &mut self,
        mut out: Vec<u8>,
        source: Source,
    ) -> Result<Vec<u8>, CanonicalError> {
        write_object(self, &mut out, source)?;
        Ok(out)
    }
}

/// Where a draft's borrowed strings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A tape ([`super::tape::Tape`]) of a line, and string literals: no borrowed string
    /// holds a character that JSON escapes (the tape refuses a line with a backslash and a
    /// string with a control character, and a quote ends a string), so they are written
    /// without looking for one. Strings the draft owns (redaction's) are checked as always.
    Tape,
    /// Anything else (a `serde_json::Value`'s strings may need escapes).
    Any,
}

/// `s` as a JSON string: quoted, and escaped where it must be unless `source` says it cannot
/// need it.
#[allow(clippy::ptr_arg)] // whether the string is borrowed is what it asks
fn write_str(s: &Cow<'_, str>, out: &mut Vec<u8>, source: Source) -> Result<(), CanonicalError> {
    if source == Source::Tape && matches!(s, Cow::Borrowed(_)) {
        custody_model::write_unescaped(s, out);
        return Ok(());
    }
    custody_model::write_string(s, out)
}

/// A principal object (`util::principal` is its `Value`).
pub(crate) fn principal<'a>(id: &'a str, kind: &'a str) -> Node<'a> {
    Obj::of([("id", id.into()), ("kind", kind.into())]).into()
}

/// A principal object with a display name (when it differs from the id).
pub(crate) fn named<'a>(id: &'a str, kind: &'a str, name: Option<&'a str>) -> Node<'a> {
    match name {
        Some(n) if n != id => {
            Obj::of([("id", id.into()), ("kind", kind.into()), ("name", n.into())]).into()
        }
        _ => principal(id, kind),
    }
}

fn redact_node(redactor: &Redactor, node: &mut Node<'_>, depth: usize, secret: bool) {
    match node {
        Node::Str(s) => {
            if let Some(new) = redactor.redact_string(s, secret) {
                *s = Cow::Owned(new);
            }
        }
        Node::Array(items) => {
            for item in items {
                redact_node(redactor, item, depth + 1, secret);
            }
        }
        Node::Object(obj) => redact_object(redactor, obj, depth, secret),
        Node::Null | Node::Bool(_) | Node::Number(_) => {}
    }
}

fn redact_object(redactor: &Redactor, obj: &mut Obj<'_>, depth: usize, secret: bool) {
    for (key, value) in &mut obj.members {
        let by_name = secret_by_name(key, depth, secret);
        redact_node(redactor, value, depth + 1, by_name);
    }
    // A key can hold a secret too: renamed, as a `Value` renames it (out of its place, in at
    // the end, replacing a member of the new name).
    if obj.members.iter().any(|(k, _)| k.len() >= 20) {
        let renamed: Vec<(usize, String)> = obj
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, (k, _))| redactor.redact_key(k).map(|new| (i, new)))
            .collect();
        for (i, new) in renamed.into_iter().rev() {
            let (_, value) = obj.members.remove(i);
            obj.set(Cow::Owned(new), value);
        }
    }
}

fn write_node(
    node: &mut Node<'_>,
    out: &mut Vec<u8>,
    source: Source,
) -> Result<(), CanonicalError> {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Number(n) => custody_model::write_number(n, out)?,
        Node::Str(s) => write_str(s, out, source)?,
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter_mut().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_node(item, out, source)?;
            }
            out.push(b']');
        }
        Node::Object(obj) => write_object(obj, out, source)?,
    }
    Ok(())
}

/// Writes `obj` with its members sorted in place (in canonical order from then on): sorting
/// a vector of references to them instead cost an allocation for every object.
fn write_object(
    obj: &mut Obj<'_>,
    out: &mut Vec<u8>,
    source: Source,
) -> Result<(), CanonicalError> {
    custody_model::sort_members(&mut obj.members);
    out.push(b'{');
    for (i, (key, value)) in obj.members.iter_mut().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out, source)?;
        out.push(b':');
        write_node(value, out, source)?;
    }
    out.push(b'}');
    Ok(())
}

// Typing: a draft deserializes as its `Value` would (`Event::from_fields`).

type Error = serde_json::Error;

impl<'de> IntoDeserializer<'de, Error> for &'de Node<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> IntoDeserializer<'de, Error> for &'de Obj<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for &'de Obj<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let members = self.members.iter().map(|(k, v)| (k.as_ref(), v));
        let mut map = MapDeserializer::new(members);
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> de::Deserializer<'de> for &'de Node<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Number(n) => de::Deserializer::deserialize_any(n, visitor),
            Node::Str(s) => visitor.visit_borrowed_str(s.as_ref()),
            Node::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Node::Object(obj) => obj.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Node::Str(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            // (Data-carrying variants: as serde_json reads them, from the Value.)
            other => other.to_value().deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tape::Tape;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// An object read from a tape, repeated keys and all, has the canonical bytes of the
        /// object serde_json reads (a repeated key: once, with the last value).
        #[test]
        fn objects_with_repeated_keys_read_as_values(
            members in prop::collection::vec(("[a-d]{0,2}", any::<i32>()), 0..12),
            nested in any::<bool>(),
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let object = format!("{{{}}}", body.join(","));
            let text = if nested { format!("{{\"x\":{object},\"x\":[{object}]}}") } else { object };
            let tape = Tape::parse(text.as_bytes()).unwrap();
            let want: Value = serde_json::from_str(&text).unwrap();
            let Node::Object(mut obj) = Node::of(tape.root()) else {
                return Err(TestCaseError::fail("not an object"));
            };
            let want = custody_model::canonical_json(&want).unwrap();
            prop_assert_eq!(obj.canonical_in(Vec::new(), Source::Tape).unwrap(), want.clone());
            prop_assert_eq!(obj.canonical().unwrap(), want);
        }
    }
}
