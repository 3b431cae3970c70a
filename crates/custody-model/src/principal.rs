//! Principals: who acts (DESIGN §2). A bare string is shorthand for an `unknown` principal.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

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

#[derive(Deserialize)]
#[serde(untagged)]
enum PrincipalRepr {
    Bare(String),
    Full {
        id: String,
        #[serde(default)]
        kind: PrincipalKind,
        #[serde(default)]
        name: Option<String>,
    },
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = PrincipalRepr::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "a principal is a string or an object {\"id\", \"kind\", \"name\"} with kind one of human, agent, service, pipeline, workload, unknown",
            )
        })?;
        let principal = match repr {
            PrincipalRepr::Bare(id) => Principal::new(id, PrincipalKind::Unknown),
            PrincipalRepr::Full { id, kind, name } => Principal { id, kind, name },
        };
        if principal.id.is_empty() {
            return Err(serde::de::Error::custom("a principal's id is empty"));
        }
        Ok(principal)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
}
