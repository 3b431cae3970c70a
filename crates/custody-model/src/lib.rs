//! Custody's event model (DESIGN §2–3, §7): typed events, principals, credentials, scopes
//! and the `covers` relation, canonical JSON for hashing, and redaction of secrets.
//!
//! This crate does no I/O: no files, no network, no database. Everything here is a pure
//! function of its inputs (the one clock read, [`Timestamp::now`], is for callers at the
//! edge).

mod canonical;
mod event;
mod principal;
mod redact;
mod scope;

pub use canonical::{
    canonical_json, sort_members, write_number, write_string, write_unescaped, CanonicalError,
};
pub use event::{
    is_read_operation, Action, ActionContext, Approval, ApprovalDecision, Change, Credential,
    Decision, Delegation, Effect, Event, EventBody, EventError, EventKey, EventRef, EventType,
    Outcome, Reason, RefKind, Request, Revocation, SecretAccess, Timestamp, Verdict, Via,
};
pub use principal::{Principal, PrincipalKind};
pub use redact::{secret_by_name, Redactor, FINGERPRINT_PREFIX};
pub use scope::{Pattern, Permission, Scope};
