//! The link index: one integer key per (lookup kind, text) an event can be found by.
//!
//! Shared by every backend (no SQL here: the keys, the row grouping and the matching): every
//! [`Lookup`], `get` and the duplicate check go through one table `links (key, first, more)`
//! (in SQLite a `WITHOUT ROWID` table), where `key` is a 64-bit hash of a kind tag and the looked-up
//! text (see [`link_key`]), `first` the first event linked in a batch and `more` the rest. A
//! hash can collide, so a lookup never trusts the key alone: it reads the candidate events
//! and keeps those whose typed fields match ([`matches`]), and the duplicate check compares
//! `source` and `id` as text. Integer keys make the B-tree small (about 14 bytes a cell rather
//! than 40 to 80 for the text keys of six separate indexes) and cheap to search; one table,
//! filled in key order once per batch, replaces five partial indexes, the unique `(id,
//! source)` index and the `refs` and `principals` tables.
//!
//! The hash is part of the stored format (SQLite schema versions 3 and 4, PostgreSQL migration 1):
//! changing [`link_key`] makes every existing store unreadable by lookups. It is not keyed, so someone who can choose
//! event ids can make keys collide; that costs them only extra reads, never a wrong answer.

use crate::Lookup;
use custody_model::{Event, EventBody, EventType};

/// What a link key indexes; the tag is hashed in front of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// `id`: `Lookup::Id`, `get` and the duplicate check (which compare `source` too).
    Id = b'i',
    /// The credential an event issues, uses or revokes.
    Credential = b'c',
    /// A delegation's parent credential.
    ParentCredential = b'p',
    /// `chain`.
    Chain = b'h',
    /// The resource of an action or effect.
    Resource = b'r',
    /// The secret of a secret access.
    Secret = b's',
    /// The id named by an explicit reference.
    Reference = b'f',
    /// A principal the event names.
    Principal = b'u',
}

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xA076_1D64_78BD_642F;
const K2: u64 = 0xE703_7ED1_A0B4_28DB;

/// The 128-bit product of `a` and `b`, folded to 64 bits.
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A fixed, portable 64-bit hash (a folded-multiply mix over 8-byte little-endian words).
/// Part of the file format: never change it.
struct KeyHasher(u64);

impl KeyHasher {
    fn new(tag: Tag) -> Self {
        KeyHasher(fold_mul(u64::from(tag as u8) ^ K0, K1))
    }

    /// Adds `bytes` and their length (so that `("ab", "c")` and `("a", "bc")` differ).
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = fold_mul(h ^ u64::from_le_bytes(w) ^ K1, K2);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(rest) {
                *d = *s;
            }
            h = fold_mul(h ^ u64::from_le_bytes(w) ^ K2, K1);
        }
        self.0 = fold_mul(h ^ bytes.len() as u64, K0);
    }

    fn finish(self) -> i64 {
        // SQLite integers and PostgreSQL BIGINTs are signed; the bits are what matter.
        fold_mul(self.0, K2) as i64
    }
}

/// Trailing bytes left out of the high half of a key.
const LOCAL_TAIL: usize = 2;

/// The link key of `text` under `tag`: the high 32 bits hash the text without its last
/// [`LOCAL_TAIL`] bytes, the low 32 bits hash the whole text. Ids that count up (`req-1041`,
/// `req-1042`, ...) or share a prefix then get neighbouring keys, so a batch of them dirties a
/// few B-tree pages rather than one page per key; at a million events that halves the pages
/// each batch writes to the WAL. Random ids stay random either way.
pub fn link_key(tag: Tag, text: &str) -> i64 {
    let bytes = text.as_bytes();
    let head = bytes
        .get(..bytes.len().saturating_sub(LOCAL_TAIL))
        .unwrap_or_default();
    let mut high = KeyHasher::new(tag);
    high.write(head);
    let mut low = KeyHasher::new(tag);
    low.write(bytes);
    let high = high.finish() as u64 & 0xFFFF_FFFF_0000_0000;
    let low = low.finish() as u64 & 0x0000_0000_FFFF_FFFF;
    (high | low) as i64
}

/// The principals an event names, each once per event.
pub fn principals_of(event: &Event) -> impl Iterator<Item = &str> {
    let (a, b) = match &event.body {
        EventBody::Request(r) => (Some(&r.initiator), None),
        EventBody::Delegation(d) => (Some(&d.from), (d.to.id != d.from.id).then_some(&d.to)),
        EventBody::Approval(a) => (Some(&a.approver), None),
        EventBody::Action(a) => (Some(&a.actor), None),
        EventBody::SecretAccess(s) => (Some(&s.principal), None),
        EventBody::Revocation(r) => (r.by.as_ref(), None),
        EventBody::Effect(_) | EventBody::Decision(_) => (None, None),
    };
    a.into_iter().chain(b).map(|p| p.id.as_str())
}

fn secret_of(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::SecretAccess(s) => Some(s.secret.as_str()),
        _ => None,
    }
}

/// Calls `f` with every link key of `event`, the id's first (the same key may come more than
/// once).
pub fn keys_of(event: &Event, mut f: impl FnMut(i64)) {
    f(link_key(Tag::Id, &event.key.id));
    if let Some(c) = event.credential_id() {
        f(link_key(Tag::Credential, c));
    }
    if let Some(c) = event.parent_credential() {
        f(link_key(Tag::ParentCredential, c));
    }
    if let Some(c) = &event.chain {
        f(link_key(Tag::Chain, c));
    }
    if let Some(r) = event.resource() {
        f(link_key(Tag::Resource, r));
    }
    if let Some(s) = secret_of(event) {
        f(link_key(Tag::Secret, s));
    }
    for (_, target) in event.references() {
        f(link_key(Tag::Reference, &target.id));
    }
    for p in principals_of(event) {
        f(link_key(Tag::Principal, p));
    }
}

/// The link key a lookup searches.
pub fn key_of_lookup(by: Lookup<'_>) -> i64 {
    match by {
        Lookup::Id(id) => link_key(Tag::Id, id),
        Lookup::Issued(c) | Lookup::Used(c) | Lookup::Revoked(c) => link_key(Tag::Credential, c),
        Lookup::DerivedFrom(c) => link_key(Tag::ParentCredential, c),
        Lookup::Chain(c) => link_key(Tag::Chain, c),
        Lookup::Resource(r) => link_key(Tag::Resource, r),
        Lookup::ReferencesId(id) => link_key(Tag::Reference, id),
        Lookup::Principal(p) => link_key(Tag::Principal, p),
        Lookup::Secret(s) => link_key(Tag::Secret, s),
    }
}

/// The rows of `links` for sorted `(key, idx)` pairs: one row per key, holding the first
/// index and the gaps to the others (LEB128), so that a key many events of one batch share
/// (a chain, an agent, a resource) costs one B-tree cell, not one per event.
pub fn group(pairs: &[(i64, i64)], mut row: impl FnMut(i64, i64, &[u8])) {
    let mut more = Vec::new();
    let mut rest = pairs;
    while let Some(&(key, first)) = rest.first() {
        let n = rest.iter().take_while(|(k, _)| *k == key).count();
        more.clear();
        let mut last = first;
        for &(_, idx) in rest.get(1..n).unwrap_or_default() {
            crate::blocks::push_leb(&mut more, idx.abs_diff(last));
            last = idx;
        }
        row(key, first, &more);
        rest = rest.get(n..).unwrap_or_default();
    }
}

/// The indexes of one `links` row, appended to `out`; `None` when `more` is damaged.
pub fn expand(first: i64, more: &[u8], out: &mut Vec<i64>) -> Option<()> {
    out.push(first);
    let mut last = first;
    let mut gap: u64 = 0;
    let mut shift = 0u32;
    for &b in more {
        if shift > 56 {
            return None;
        }
        gap |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            last = last.checked_add(i64::try_from(gap).ok()?)?;
            out.push(last);
            gap = 0;
            shift = 0;
        }
    }
    (shift == 0).then_some(())
}

/// Whether `event` is one that `by` finds: the check behind every candidate a link key
/// yields (keys can collide; this cannot).
pub fn matches(event: &Event, by: Lookup<'_>) -> bool {
    let t = event.event_type();
    match by {
        Lookup::Id(id) => event.key.id == id,
        Lookup::Issued(c) => {
            matches!(t, EventType::Delegation | EventType::SecretAccess)
                && event.credential_id() == Some(c)
        }
        Lookup::Used(c) => t == EventType::Action && event.credential_id() == Some(c),
        Lookup::Revoked(c) => t == EventType::Revocation && event.credential_id() == Some(c),
        Lookup::DerivedFrom(c) => event.parent_credential() == Some(c),
        Lookup::Chain(c) => event.chain.as_deref() == Some(c),
        Lookup::Resource(r) => event.resource() == Some(r),
        Lookup::ReferencesId(id) => event.references().iter().any(|(_, r)| r.id == id),
        Lookup::Principal(p) => principals_of(event).any(|q| q == p),
        Lookup::Secret(s) => secret_of(event) == Some(s),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The hash is part of the file format: these values must never change.
    #[test]
    fn link_keys_are_stable() {
        assert_eq!(link_key(Tag::Id, ""), link_key(Tag::Id, ""));
        let pinned = [
            link_key(Tag::Id, "req-1"),
            link_key(Tag::Chain, "run-88"),
            link_key(Tag::Principal, "a principal with a longer id@example.com"),
        ];
        assert_eq!(
            pinned,
            [PINNED_ID_REQ_1, PINNED_CHAIN_RUN_88, PINNED_PRINCIPAL_LONG]
        );
    }

    const PINNED_ID_REQ_1: i64 = 8_006_644_822_479_454_515;
    const PINNED_CHAIN_RUN_88: i64 = 1_446_489_464_918_260_082;
    const PINNED_PRINCIPAL_LONG: i64 = 4_153_115_101_950_220_290;

    #[test]
    fn counting_ids_get_neighbouring_keys() {
        let a = link_key(Tag::Id, "req-1041") as u64;
        let b = link_key(Tag::Id, "req-1042") as u64;
        assert_eq!(a >> 32, b >> 32);
        assert_ne!(a, b);
        assert_ne!(link_key(Tag::Id, "ab"), link_key(Tag::Id, "cd"));
    }

    #[test]
    fn groups_round_trip() {
        let pairs = [
            (1, 5),
            (1, 6),
            (1, 300),
            (1, 100_000),
            (2, 7),
            (3, 8),
            (3, 9),
        ];
        let mut rows = Vec::new();
        group(&pairs, |k, first, more| {
            rows.push((k, first, more.to_vec()))
        });
        assert_eq!(rows.len(), 3);
        let mut back = Vec::new();
        for (k, first, more) in &rows {
            let mut idxs = Vec::new();
            expand(*first, more, &mut idxs).unwrap();
            back.extend(idxs.into_iter().map(|i| (*k, i)));
        }
        assert_eq!(back, pairs);
        assert!(expand(0, &[0x80], &mut Vec::new()).is_none());
    }

    #[test]
    fn tags_lengths_and_splits_give_different_keys() {
        let mut keys = vec![
            link_key(Tag::Id, "x"),
            link_key(Tag::Chain, "x"),
            link_key(Tag::Id, "x\0"),
            link_key(Tag::Id, "abcdefgh"),
            link_key(Tag::Id, "abcdefgh\0"),
            link_key(Tag::Id, ""),
            link_key(Tag::Reference, ""),
        ];
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 7);
    }
}
