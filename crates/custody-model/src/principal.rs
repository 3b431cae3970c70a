//! Principals: who acts (DESIGN §2). A bare string is shorthand for an `unknown` principal.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize};

/// What kind of actor a principal is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person.
    Human,
    /// An AI agent.
    Agent,
    /// A service account or daemon.
    Service,
    /// A CI/CD pipeline.
    Pipeline,
    /// A workload identity (instance, pod, runner).
    Workload,
    /// Not stated by the source.
    #[default]
    Unknown,
}

impl PrincipalKind {
    /// The lowercase name used in the event format.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Service => "service",
            PrincipalKind::Pipeline => "pipeline",
            PrincipalKind::Workload => "workload",
            PrincipalKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acts: `{"id", "kind", "name"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Principal {
    /// A stable identifier (an email, an ARN, an agent id).
    pub id: String,
    /// What kind of actor it is.
    pub kind: PrincipalKind,
    /// A display name, when the source gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Principal {
    /// A principal of the given kind.
    pub fn new(id: impl Into<String>, kind: PrincipalKind) -> Self {
        Principal {
            id: id.into(),
            kind,
            name: None,
        }
    }

    /// Whether this principal is a person.
    pub fn is_human(&self) -> bool {
        self.kind == PrincipalKind::Human
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.kind)
    }
}

/// What any principal that cannot be read is told.
const EXPECTED: &str = "a principal is a string or an object {\"id\", \"kind\", \"name\"} with kind one of human, agent, service, pipeline, workload, unknown";

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: serde's untagged enums buffer the value
        // and build (and format) an error for each variant that does not match, which for
        // the object form was every principal of every event.
        let principal = deserializer
            .deserialize_any(PrincipalVisitor)
            .map_err(|_| de::Error::custom(EXPECTED))?;
        if principal.id.is_empty() {
            return Err(de::Error::custom("a principal's id is empty"));
        }
        Ok(principal)
    }
}

/// Reads the two forms of a principal: a string (its id, kind unknown) or an object with
/// `id` (required), `kind` and `name` (optional; other members are ignored). Nothing else:
/// not an array either (serde's untagged enum read no array as the object form).
struct PrincipalVisitor;

/// A member of a principal's object.
enum Field {
    Id,
    Kind,
    Name,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl de::Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "id" => Field::Id,
                    "kind" => Field::Kind,
                    "name" => Field::Name,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> de::Visitor<'de> for PrincipalVisitor {
    type Value = Principal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Principal, E> {
        Ok(Principal::new(v, PrincipalKind::Unknown))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Principal, E> {
        Ok(Principal::new(v, PrincipalKind::Unknown))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Principal, A::Error> {
        let mut id: Option<String> = None;
        let mut kind: Option<PrincipalKind> = None;
        let mut name: Option<Option<String>> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id if id.is_none() => id = Some(map.next_value()?),
                Field::Kind if kind.is_none() => kind = Some(map.next_value()?),
                Field::Name if name.is_none() => name = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
                Field::Id | Field::Kind | Field::Name => {
                    return Err(de::Error::custom("a member of a principal is repeated"))
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        Ok(Principal {
            id,
            kind: kind.unwrap_or_default(),
            name: name.flatten(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bare_string_is_unknown_kind() {
        let p: Principal = serde_json::from_str(r#""svc-build""#).unwrap();
        assert_eq!(p, Principal::new("svc-build", PrincipalKind::Unknown));
    }

    #[test]
    fn object_form_with_kind_and_name() {
        let p: Principal =
            serde_json::from_str(r#"{"id":"alice@example.com","kind":"human","name":"Alice"}"#)
                .unwrap();
        assert!(p.is_human());
        assert_eq!(p.name.as_deref(), Some("Alice"));
    }

    #[test]
    fn bad_kind_is_an_error() {
        let err = serde_json::from_str::<Principal>(r#"{"id":"x","kind":"robot"}"#).unwrap_err();
        assert!(err.to_string().contains("kind one of"), "{err}");
        assert!(serde_json::from_str::<Principal>(r#""""#).is_err());
    }

    /// The untagged enum this module read principals with until 2026-12-05: the oracle.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OldRepr {
        Bare(String),
        Full {
            id: String,
            #[serde(default)]
            kind: PrincipalKind,
            #[serde(default)]
            name: Option<String>,
        },
    }

    fn old(json: &str) -> Option<Principal> {
        let p = match serde_json::from_str::<OldRepr>(json).ok()? {
            OldRepr::Bare(id) => Principal::new(id, PrincipalKind::Unknown),
            OldRepr::Full { id, kind, name } => Principal { id, kind, name },
        };
        (!p.id.is_empty()).then_some(p)
    }

    /// JSON values shaped like principals and like what is not one: strings, objects with
    /// any of the members (of any JSON type, repeated or not, among others), arrays.
    fn principal_like() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("7".to_string()),
            Just("\"\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            "[a-z]{0,3}".prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![
                "human", "agent", "service", "pipeline", "workload", "unknown", "robot", "Human"
            ])
            .prop_map(|s| format!("{s:?}")),
        ];
        let key = prop::sample::select(vec!["id", "kind", "name", "x", "ID"]);
        let member = (key, scalar.clone()).prop_map(|(k, v)| format!("{k:?}:{v}"));
        prop_oneof![
            scalar.clone(),
            prop::collection::vec(member, 0..5).prop_map(|m| format!("{{{}}}", m.join(","))),
            prop::collection::vec(scalar, 0..5).prop_map(|m| format!("[{}]", m.join(","))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn reads_as_the_untagged_enum_did(json in principal_like()) {
            let new = serde_json::from_str::<Principal>(&json).ok();
            prop_assert_eq!(new, old(&json), "{}", json);
        }
    }

    #[test]
    fn every_failure_names_both_forms() {
        for json in [
            r#"{"kind":"human"}"#,
            "7",
            r#"{"id":1}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"["a","human",null]"#,
        ] {
            let err = serde_json::from_str::<Principal>(json).unwrap_err();
            assert!(
                err.to_string().contains("a string or an object"),
                "{json}: {err}"
            );
        }
    }
}
