//! Typed events (`custody-event/1`, DESIGN §3), parsed once at the edge.
//!
//! Raw JSON becomes an [`Event`] through [`Event::from_value`] and nowhere else; everything
//! downstream takes the typed value. Parsing is two passes over the same JSON object: the
//! common fields, then the fields of the event's `type`. Unknown extra fields are kept in the
//! stored JSON (the record is kept as given) but do not reach the typed value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{Principal, Scope};

/// Why a JSON object is not a valid event. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The line is not a JSON object.
    #[error("an event is a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// A field is missing or has the wrong shape.
    #[error("{0}")]
    Field(String),
    /// `type` is not one of the event types.
    #[error("unknown event type `{0}`: expected request, delegation, approval, action, effect, secret_access, revocation or decision")]
    UnknownType(String),
}

/// An RFC 3339 instant, normalised to UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Parses an RFC 3339 timestamp such as `2026-06-06T09:00:00Z`.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Timestamp(t.to_offset(time::UtcOffset::UTC)))
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))
    }

    /// From nanoseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_nanos(nanos: i128) -> Option<Timestamp> {
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .map(Timestamp)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The current time. (A clock read: callers outside the pure core pass it in.)
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The identity of a stored event: `source#id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    /// The system that observed the event.
    pub source: String,
    /// Unique within `source`.
    pub id: String,
}

impl EventKey {
    /// A key from its parts.
    pub fn new(source: impl Into<String>, id: impl Into<String>) -> Self {
        EventKey {
            source: source.into(),
            id: id.into(),
        }
    }

    /// Parses `source#id`; `None` without a `#`.
    pub fn parse(text: &str) -> Option<EventKey> {
        let (source, id) = text.split_once('#')?;
        (!source.is_empty() && !id.is_empty()).then(|| EventKey::new(source, id))
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.source, self.id)
    }
}

/// A reference from one event to another: `source#id`, or a bare id (same source first,
/// then any single event with that id; DESIGN §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventRef {
    /// The named source, when the reference gives one.
    pub source: Option<String>,
    /// The referenced id.
    pub id: String,
}

impl EventRef {
    /// Parses `source#id` or a bare `id`.
    pub fn parse(text: &str) -> EventRef {
        match EventKey::parse(text) {
            Some(key) => EventRef {
                source: Some(key.source),
                id: key.id,
            },
            None => EventRef {
                source: None,
                id: text.to_owned(),
            },
        }
    }

    /// The key this reference names when read from an event of `referrer_source`.
    pub fn key_in(&self, referrer_source: &str) -> EventKey {
        EventKey::new(
            self.source.as_deref().unwrap_or(referrer_source),
            self.id.clone(),
        )
    }
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{source}#{}", self.id),
            None => f.write_str(&self.id),
        }
    }
}

impl Serialize for EventRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("an event reference is empty"));
        }
        Ok(EventRef::parse(&text))
    }
}

/// How a delegation was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// OAuth 2.0 token exchange (RFC 8693) or similar.
    TokenExchange,
    /// Cloud role assumption.
    AssumeRole,
    /// A just-in-time privilege grant.
    JitGrant,
    /// Acting as another identity.
    Impersonation,
    /// A user consented to an OAuth client.
    OauthConsent,
    /// A secrets manager issued a secret.
    SecretIssue,
    /// A service-account key was created.
    ServiceAccountKey,
    /// Anything else.
    Other,
}

/// A credential as issued: non-secret id and its bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// Non-secret id: a JWT `jti`, an access key id, a Vault accessor, or `fp:<hex>`.
    pub id: String,
    /// The credential's kind (`oauth_token`, `vault_token`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Who issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Not valid before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Not valid after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// How many uses it allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
}

/// A human (or other) request that starts a chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Who asked.
    pub initiator: Principal,
    /// The ticket or case id.
    #[serde(default)]
    pub ticket: Option<String>,
    /// What was asked for, in words.
    #[serde(default)]
    pub intent: Option<String>,
    /// The resource concerned.
    #[serde(default)]
    pub target: Option<String>,
}

/// Principal `from` lets principal `to` act, through a credential with a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    /// Who delegates.
    pub from: Principal,
    /// Who receives the authority.
    pub to: Principal,
    /// How.
    pub via: Via,
    /// The credential issued (absent: an unrecorded credential, which breaks `authority`).
    #[serde(default)]
    pub credential: Option<Credential>,
    /// The credential used to obtain this one.
    #[serde(default)]
    pub parent_credential: Option<String>,
    /// What the credential allows (absent: unknown, which breaks `authority`).
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The request this delegation serves.
    #[serde(default)]
    pub request: Option<EventRef>,
}

/// An approval's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalDecision {
    /// Approved.
    Approved,
    /// Denied.
    Denied,
}

/// A principal approves (or denies) another event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approves.
    pub approver: Principal,
    /// The event approved.
    pub approves: EventRef,
    /// The verdict.
    pub decision: ApprovalDecision,
    /// What the approval covers, when bounded.
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// Where an action ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionContext {
    /// The orchestrator (agent runtime, CI system).
    #[serde(default)]
    pub orchestrator: Option<String>,
    /// The run id.
    #[serde(default)]
    pub run: Option<String>,
    /// The step within the run.
    #[serde(default)]
    pub step: Option<String>,
    /// The tool invoked.
    #[serde(default)]
    pub tool: Option<String>,
    /// The network address or host the call came from.
    #[serde(default)]
    pub origin: Option<String>,
}

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It ran.
    Success,
    /// It failed.
    Failure,
    /// The target refused it.
    Denied,
}

/// An actor used a credential to perform an operation on a resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Who acted.
    pub actor: Principal,
    /// The credential presented (absent breaks the `context` link).
    #[serde(default)]
    pub credential: Option<String>,
    /// The operation, e.g. `vault:secret.rotate`.
    pub operation: String,
    /// The resource, e.g. `vault://prod/secret/orders-db`.
    pub resource: String,
    /// Parameters compared against scope limits (numbers and strings).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Whether it changes anything; defaults from the operation name.
    #[serde(default)]
    pub mutating: Option<bool>,
    /// Where it ran.
    #[serde(default)]
    pub context: ActionContext,
    /// How it ended.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// The request it serves.
    #[serde(default)]
    pub request: Option<EventRef>,
}

impl Action {
    /// Whether the action changes state: `mutating` when given, else true unless the
    /// operation's verb is a read.
    pub fn is_mutating(&self) -> bool {
        self.mutating
            .unwrap_or_else(|| !is_read_operation(&self.operation))
    }

    /// The numeric parameters, for comparison against scope limits.
    pub fn numeric_params(&self) -> BTreeMap<String, f64> {
        self.params
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|n| (k.clone(), n)))
            .collect()
    }
}

/// Whether an operation name is a read: its last segment (after `:`, `.` or `/`) starts
/// with a read verb (`get`, `list`, `read`, `describe`, ...).
pub fn is_read_operation(operation: &str) -> bool {
    const READ_VERBS: [&str; 10] = [
        "get", "list", "read", "describe", "view", "watch", "search", "query", "head", "lookup",
    ];
    let verb = operation
        .rsplit([':', '.', '/'])
        .next()
        .unwrap_or(operation)
        .to_ascii_lowercase();
    READ_VERBS.iter().any(|v| verb.starts_with(v))
}

/// What kind of change an effect is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
    /// Rotated.
    Rotated,
    /// A permission granted.
    Granted,
    /// A permission revoked.
    Revoked,
    /// Anything else.
    Other,
}

/// A change recorded by a target system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The target system.
    pub system: String,
    /// What changed.
    pub resource: String,
    /// How.
    pub change: Change,
    /// The target system's own record id or version.
    #[serde(default)]
    pub record: Option<String>,
    /// The action that caused it.
    #[serde(default)]
    pub caused_by: Option<EventRef>,
}

/// A principal read a secret from a secrets manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretAccess {
    /// Who read it.
    pub principal: Principal,
    /// The secrets-manager instance (`vault://prod`).
    pub manager: String,
    /// The secret's path or name.
    pub secret: String,
    /// The id of the credential obtained.
    #[serde(default)]
    pub credential: Option<String>,
}

/// A credential was revoked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    /// The credential revoked.
    pub credential: String,
    /// Who revoked it.
    #[serde(default)]
    pub by: Option<Principal>,
}

/// A gate verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The action may run.
    Allow,
    /// It may not.
    Deny,
}

/// One reason behind a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule slug (DESIGN §5).
    pub rule: String,
    /// A sentence a person can act on.
    pub message: String,
}

/// The gate's decision on a proposed action, recorded as evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub decision: Verdict,
    /// The proposed action as presented.
    #[serde(default)]
    pub proposed: Value,
    /// Why.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// The policy ids that took part.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// The type-specific part of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    /// `request`
    Request(Request),
    /// `delegation`
    Delegation(Delegation),
    /// `approval`
    Approval(Approval),
    /// `action`
    Action(Action),
    /// `effect`
    Effect(Effect),
    /// `secret_access`
    SecretAccess(SecretAccess),
    /// `revocation`
    Revocation(Revocation),
    /// `decision`
    Decision(Decision),
}

/// The event types, as named in `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `request`
    Request,
    /// `delegation`
    Delegation,
    /// `approval`
    Approval,
    /// `action`
    Action,
    /// `effect`
    Effect,
    /// `secret_access`
    SecretAccess,
    /// `revocation`
    Revocation,
    /// `decision`
    Decision,
}

impl EventType {
    /// Every type, in the order of DESIGN §3.
    pub const ALL: [EventType; 8] = [
        EventType::Request,
        EventType::Delegation,
        EventType::Approval,
        EventType::Action,
        EventType::Effect,
        EventType::SecretAccess,
        EventType::Revocation,
        EventType::Decision,
    ];

    /// The name used in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Request => "request",
            EventType::Delegation => "delegation",
            EventType::Approval => "approval",
            EventType::Action => "action",
            EventType::Effect => "effect",
            EventType::SecretAccess => "secret_access",
            EventType::Revocation => "revocation",
            EventType::Decision => "decision",
        }
    }

    /// Parses a `type` value.
    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one event refers to another (DESIGN §4, explicit edges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// `parents`
    Parent,
    /// `caused_by`
    CausedBy,
    /// `request`
    Request,
    /// `approves`
    Approves,
}

impl RefKind {
    /// The field name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Parent => "parents",
            RefKind::CausedBy => "caused_by",
            RefKind::Request => "request",
            RefKind::Approves => "approves",
        }
    }

    /// Parses a field name.
    pub fn parse(text: &str) -> Option<RefKind> {
        [
            RefKind::Parent,
            RefKind::CausedBy,
            RefKind::Request,
            RefKind::Approves,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A typed event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `source#id`.
    pub key: EventKey,
    /// When it happened.
    pub time: Timestamp,
    /// A correlation id shared by related events.
    pub chain: Option<String>,
    /// Events this one follows from.
    pub parents: Vec<EventRef>,
    /// Free-form extra data, as given (after redaction).
    pub attributes: Option<Value>,
    /// The type-specific fields.
    pub body: EventBody,
}

#[derive(Deserialize)]
struct Common {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    time: Timestamp,
    source: String,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    parents: Vec<EventRef>,
    #[serde(default)]
    attributes: Option<Value>,
}

impl Event {
    /// Parses a JSON object into a typed event; the error names the offending field.
    pub fn from_value(value: &Value) -> Result<Event, EventError> {
        if !value.is_object() {
            return Err(EventError::NotAnObject(json_kind(value)));
        }
        Event::from_fields(value, |key| value.get(key).is_some())
    }

    /// [`Event::from_value`] of a JSON object held in another form than a `Value`:
    /// `fields` deserializes it (as a map) and `has` says whether it has a member. The same
    /// rules and messages as [`Event::from_value`], whatever the form.
    pub fn from_fields<'de, D>(fields: D, has: impl Fn(&str) -> bool) -> Result<Event, EventError>
    where
        D: Deserializer<'de> + Copy,
    {
        fn typed<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            fields: D,
        ) -> Result<T, EventError> {
            T::deserialize(fields).map_err(|e| EventError::Field(e.to_string()))
        }
        for required in ["id", "type", "time", "source"] {
            if !has(required) {
                return Err(EventError::Field(format!(
                    "missing required field `{required}`"
                )));
            }
        }
        let common: Common = typed(fields)?;
        if common.id.is_empty() {
            return Err(EventError::Field("`id` is empty".into()));
        }
        if common.source.is_empty() {
            return Err(EventError::Field("`source` is empty".into()));
        }
        let kind = EventType::parse(&common.kind).ok_or(EventError::UnknownType(common.kind))?;
        let body = match kind {
            EventType::Request => EventBody::Request(typed(fields)?),
            EventType::Delegation => EventBody::Delegation(typed(fields)?),
            EventType::Approval => EventBody::Approval(typed(fields)?),
            EventType::Action => EventBody::Action(typed(fields)?),
            EventType::Effect => EventBody::Effect(typed(fields)?),
            EventType::SecretAccess => EventBody::SecretAccess(typed(fields)?),
            EventType::Revocation => EventBody::Revocation(typed(fields)?),
            EventType::Decision => EventBody::Decision(typed(fields)?),
        };
        Ok(Event {
            key: EventKey::new(common.source, common.id),
            time: common.time,
            chain: common.chain,
            parents: common.parents,
            attributes: common.attributes,
            body,
        })
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match &self.body {
            EventBody::Request(_) => EventType::Request,
            EventBody::Delegation(_) => EventType::Delegation,
            EventBody::Approval(_) => EventType::Approval,
            EventBody::Action(_) => EventType::Action,
            EventBody::Effect(_) => EventType::Effect,
            EventBody::SecretAccess(_) => EventType::SecretAccess,
            EventBody::Revocation(_) => EventType::Revocation,
            EventBody::Decision(_) => EventType::Decision,
        }
    }

    /// The explicit references this event makes (DESIGN §4, edge kind 1).
    pub fn references(&self) -> Vec<(RefKind, &EventRef)> {
        let mut refs: Vec<(RefKind, &EventRef)> =
            self.parents.iter().map(|p| (RefKind::Parent, p)).collect();
        match &self.body {
            EventBody::Delegation(d) => {
                refs.extend(d.request.iter().map(|r| (RefKind::Request, r)))
            }
            EventBody::Action(a) => refs.extend(a.request.iter().map(|r| (RefKind::Request, r))),
            EventBody::Effect(e) => refs.extend(e.caused_by.iter().map(|r| (RefKind::CausedBy, r))),
            EventBody::Approval(a) => refs.push((RefKind::Approves, &a.approves)),
            _ => {}
        }
        refs
    }

    /// The credential id this event issues (delegation, secret access), uses (action) or
    /// revokes (revocation).
    pub fn credential_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::Delegation(d) => d.credential.as_ref().map(|c| c.id.as_str()),
            EventBody::SecretAccess(s) => s.credential.as_deref(),
            EventBody::Action(a) => a.credential.as_deref(),
            EventBody::Revocation(r) => Some(r.credential.as_str()),
            _ => None,
        }
    }

    /// A delegation's parent credential.
    pub fn parent_credential(&self) -> Option<&str> {
        match &self.body {
            EventBody::Delegation(d) => d.parent_credential.as_deref(),
            _ => None,
        }
    }

    /// The resource an action or effect touches (for inferred effect → action links).
    pub fn resource(&self) -> Option<&str> {
        match &self.body {
            EventBody::Action(a) => Some(a.resource.as_str()),
            EventBody::Effect(e) => Some(e.resource.as_str()),
            _ => None,
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SCENARIO_1: &str = r#"{"id":"req-1","type":"request","time":"2026-06-06T09:00:00Z","source":"servicedesk","initiator":{"id":"alice@example.com","kind":"human"},"ticket":"SEC-4411","intent":"Rotate the orders-db password","target":"vault://prod/secret/orders-db"}
{"id":"del-1","type":"delegation","time":"2026-06-06T09:00:05Z","source":"idp","request":"servicedesk#req-1","from":{"id":"alice@example.com","kind":"human"},"to":{"id":"rotation-agent","kind":"agent"},"via":"token_exchange","credential":{"id":"jti:7f3a","kind":"oauth_token","issuer":"https://idp.example.com","expires":"2026-06-06T09:15:00Z"},"scope":[{"action":"vault:secret.*","resource":"vault://prod/secret/orders-db"}]}
{"id":"del-2","type":"delegation","time":"2026-06-06T09:00:07Z","source":"pam","request":"servicedesk#req-1","from":{"id":"rotation-agent","kind":"agent"},"to":{"id":"rotation-agent","kind":"agent"},"via":"jit_grant","parent_credential":"jti:7f3a","credential":{"id":"vault-accessor:ab12","kind":"vault_token","issuer":"vault://prod","expires":"2026-06-06T09:05:07Z","max_uses":1},"scope":[{"action":"vault:secret.rotate","resource":"vault://prod/secret/orders-db"}]}
{"id":"act-1","type":"action","time":"2026-06-06T09:01:00Z","source":"agent-runtime","actor":{"id":"rotation-agent","kind":"agent"},"credential":"vault-accessor:ab12","operation":"vault:secret.rotate","resource":"vault://prod/secret/orders-db","context":{"orchestrator":"agent-runtime","run":"run-88","tool":"vault_rotate"},"outcome":"success"}
{"id":"eff-1","type":"effect","time":"2026-06-06T09:01:01Z","source":"vault://prod","system":"vault://prod","resource":"vault://prod/secret/orders-db","change":"rotated","record":"version 42","caused_by":"agent-runtime#act-1"}"#;

    fn parse(line: &str) -> Result<Event, EventError> {
        Event::from_value(&serde_json::from_str(line).unwrap())
    }

    #[test]
    fn the_design_worked_example_parses() {
        let events: Vec<Event> = SCENARIO_1.lines().map(|l| parse(l).unwrap()).collect();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].key.to_string(), "servicedesk#req-1");
        let EventBody::Delegation(d) = &events[2].body else {
            panic!("not a delegation")
        };
        assert_eq!(d.parent_credential.as_deref(), Some("jti:7f3a"));
        assert_eq!(d.credential.as_ref().unwrap().max_uses, Some(1));
        let EventBody::Action(a) = &events[3].body else {
            panic!("not an action")
        };
        assert!(a.is_mutating());
        assert_eq!(
            events[4].references()[0].1.to_string(),
            "agent-runtime#act-1"
        );
        assert_eq!(
            events[4].references()[0].1.key_in("vault://prod"),
            EventKey::new("agent-runtime", "act-1")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(
            r#"{"id":"x","type":"action","source":"s","actor":"a","operation":"o","resource":"r"}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "missing required field `time`");
        let e = parse(r#"{"id":"x","type":"action","time":"yesterday","source":"s"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("`yesterday` is not an RFC 3339 timestamp"),
            "{e}"
        );
        let e = parse(r#"{"id":"x","type":"action","time":"2026-01-01T00:00:00Z","source":"s","actor":"a","resource":"r"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `operation`"), "{e}");
        let e = parse(r#"{"id":"x","type":"coffee","time":"2026-01-01T00:00:00Z","source":"s"}"#)
            .unwrap_err();
        assert!(matches!(e, EventError::UnknownType(t) if t == "coffee"));
        assert!(matches!(
            parse("[1]"),
            Err(EventError::NotAnObject("an array"))
        ));
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        let a = Timestamp::parse("2026-06-06T11:00:00+02:00").unwrap();
        let b = Timestamp::parse("2026-06-06T09:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2026-06-06T09:00:00Z");
    }

    #[test]
    fn read_operations_are_not_mutating_by_default() {
        assert!(is_read_operation("s3:GetObject"));
        assert!(is_read_operation("vault:secret.read"));
        assert!(is_read_operation("k8s/pods.list"));
        assert!(!is_read_operation("erp:refund.issue"));
        assert!(!is_read_operation("iam:CreateAccessKey"));
    }
}
