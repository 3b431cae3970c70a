//! Linking events into chains (DESIGN §4) and judging whether a chain is complete.
//!
//! A [`Trace`] is the part of the event graph around a starting event or credential: up to
//! the initiators and down to the effects. Edges come from explicit references (`parents`,
//! `caused_by`, `request`, `approves`), credential issuance (an action's credential → the
//! delegation or secret access that issued it; a delegation's `parent_credential` → its
//! issuer) and, marked `inferred`, from a shared `chain` id or an effect on the same resource
//! as exactly one action within the inference window. Two or more candidates make no edge and
//! an ambiguity instead. Every step is an indexed store lookup: no scan of the log.
//!
//! A [`BlastRadius`] walks the other way, from a credential, principal or secret path down to
//! everything derived from it, with the same indexed lookups. An [`UnverifiedBundle`] carries
//! a chain with inclusion proofs against one signed checkpoint; [`UnverifiedBundle::verify`]
//! checks it with the verifier key alone.

mod blast;
mod bundle;
mod graph;
mod render;
mod svg;

pub use blast::{BlastConfig, BlastError, BlastRadius, BlastStart, CredentialReach, Derivation};
pub use bundle::{
    Bundle, BundleEntry, BundleError, BundleEvent, BundleFailure, UnverifiedBundle, BUNDLE_FORMAT,
};
pub use graph::{
    Ambiguity, Completeness, Dangling, Edge, EdgeKind, Hop, Link, LinkConfig, Trace, TraceError,
};
pub use render::render_text;
pub use svg::{chain_svg, escape_xml, event_summary, MAX_GRAPH_EVENTS};
