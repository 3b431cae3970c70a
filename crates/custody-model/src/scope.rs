//! Scopes and the `covers` relation (DESIGN §2).
//!
//! A scope is a list of permissions. A permission names an action pattern, a resource
//! pattern and numeric limits. A pattern is a literal, a literal ending in `*` (a prefix
//! match) or `*` alone (which is the empty prefix). Permission P covers Q when P's action
//! covers Q's, P's resource covers Q's, and every limit of P is present in Q with a value no
//! larger than P's. Because patterns are only literals or prefixes, "child ⊆ parent" is
//! decidable and `covers` is a partial order (reflexive and transitive).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An action or resource pattern: an exact literal or a prefix (`abc*`, or `*` for all).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// Matches exactly this string.
    Exact(String),
    /// Matches every string starting with this prefix; `*` is `Prefix("")`.
    Prefix(String),
}

impl Pattern {
    /// Parses a pattern: a trailing `*` makes a prefix; a `*` elsewhere is a literal character.
    pub fn parse(text: &str) -> Pattern {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    /// Whether every string this pattern matches is also matched by `self`.
    pub fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Prefix(p), Pattern::Prefix(q)) => q.starts_with(p.as_str()),
            (Pattern::Prefix(p), Pattern::Exact(s)) => s.starts_with(p.as_str()),
            (Pattern::Exact(e), Pattern::Exact(s)) => e == s,
            (Pattern::Exact(_), Pattern::Prefix(_)) => false,
        }
    }

    /// Whether the concrete value `value` matches this pattern.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(e) => e == value,
            Pattern::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(e) => f.write_str(e),
            Pattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Pattern::parse(&text))
    }
}

/// One permission of a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The operations allowed, e.g. `vault:secret.*`.
    pub action: Pattern,
    /// The resources they may touch, e.g. `vault://prod/secret/orders-db`.
    pub resource: Pattern,
    /// Upper bounds on numeric parameters, e.g. `{"amount": 100}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, f64>,
}

impl Permission {
    /// DESIGN §2: P covers Q when the action and resource patterns cover Q's and every limit
    /// of P is present in Q with a value ≤ P's.
    pub fn covers(&self, other: &Permission) -> bool {
        self.action.covers(&other.action)
            && self.resource.covers(&other.resource)
            && self
                .limits
                .iter()
                .all(|(name, max)| other.limits.get(name).is_some_and(|v| v <= max))
    }

    /// Whether a concrete call (operation, resource, numeric params) is within this permission.
    pub fn allows(&self, operation: &str, resource: &str, params: &BTreeMap<String, f64>) -> bool {
        self.action.matches(operation)
            && self.resource.matches(resource)
            && self
                .limits
                .iter()
                .all(|(name, max)| params.get(name).is_some_and(|v| v <= max))
    }
}

/// A list of permissions; the union of what each allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(pub Vec<Permission>);

impl Scope {
    /// Whether every permission of `child` is covered by some permission of `self`
    /// ("child ⊆ parent").
    pub fn covers(&self, child: &Scope) -> bool {
        child.0.iter().all(|q| self.0.iter().any(|p| p.covers(q)))
    }

    /// The permissions of `child` that no permission of `self` covers.
    pub fn uncovered<'a>(&self, child: &'a Scope) -> Vec<&'a Permission> {
        child
            .0
            .iter()
            .filter(|q| !self.0.iter().any(|p| p.covers(q)))
            .collect()
    }

    /// Whether a concrete call is allowed by some permission of this scope.
    pub fn allows(&self, operation: &str, resource: &str, params: &BTreeMap<String, f64>) -> bool {
        self.0.iter().any(|p| p.allows(operation, resource, params))
    }

    /// True when the scope has no permission at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn perm(action: &str, resource: &str, limits: &[(&str, f64)]) -> Permission {
        Permission {
            action: Pattern::parse(action),
            resource: Pattern::parse(resource),
            limits: limits.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    #[test]
    fn prefix_and_exact_patterns() {
        let any = Pattern::parse("*");
        assert_eq!(any, Pattern::Prefix(String::new()));
        assert!(any.covers(&Pattern::parse("vault:secret.rotate")));
        assert!(Pattern::parse("vault:*").covers(&Pattern::parse("vault:secret.*")));
        assert!(!Pattern::parse("vault:secret.*").covers(&Pattern::parse("vault:*")));
        assert!(!Pattern::parse("vault:secret.read").covers(&Pattern::parse("vault:secret.*")));
        assert!(Pattern::parse("a*b").covers(&Pattern::parse("a*b")));
        // A star that is not last is a literal character.
        assert!(!Pattern::parse("a*b").covers(&Pattern::parse("axb")));
    }

    #[test]
    fn limits_must_be_present_and_not_larger() {
        let parent = perm("erp:refund.*", "*", &[("amount", 100.0)]);
        assert!(parent.covers(&perm("erp:refund.issue", "erp://x", &[("amount", 50.0)])));
        assert!(parent.covers(&perm("erp:refund.issue", "erp://x", &[("amount", 100.0)])));
        assert!(!parent.covers(&perm("erp:refund.issue", "erp://x", &[("amount", 101.0)])));
        // A child without the limit is unbounded, so it is wider.
        assert!(!parent.covers(&perm("erp:refund.issue", "erp://x", &[])));
        // Extra limits on the child only narrow it.
        assert!(parent.covers(&perm(
            "erp:refund.issue",
            "x",
            &[("amount", 1.0), ("n", 2.0)]
        )));
    }

    #[test]
    fn scope_roundtrips_through_json() {
        let json = r#"[{"action":"vault:secret.*","resource":"vault://prod/secret/orders-db"},{"action":"erp:refund.issue","resource":"*","limits":{"amount":100}}]"#;
        let scope: Scope = serde_json::from_str(json).unwrap();
        assert_eq!(scope.0.len(), 2);
        assert_eq!(scope.0[0].action, Pattern::Prefix("vault:secret.".into()));
        let back = serde_json::to_string(&scope).unwrap();
        let again: Scope = serde_json::from_str(&back).unwrap();
        assert_eq!(scope, again);
    }

    #[test]
    fn allows_checks_params() {
        let scope = Scope(vec![perm("erp:refund.*", "erp://*", &[("amount", 100.0)])]);
        let small: BTreeMap<String, f64> = [("amount".to_owned(), 20.0)].into();
        let big: BTreeMap<String, f64> = [("amount".to_owned(), 200.0)].into();
        assert!(scope.allows("erp:refund.issue", "erp://orders/1", &small));
        assert!(!scope.allows("erp:refund.issue", "erp://orders/1", &big));
        assert!(!scope.allows("erp:refund.issue", "erp://orders/1", &BTreeMap::new()));
        assert!(!scope.allows("erp:invoice.void", "erp://orders/1", &small));
    }

    // Patterns over a tiny alphabet so that prefixes collide often.
    fn pattern() -> impl Strategy<Value = Pattern> {
        ("[ab]{0,3}", any::<bool>()).prop_map(|(s, star)| {
            if star {
                Pattern::Prefix(s)
            } else {
                Pattern::Exact(s)
            }
        })
    }

    fn permission() -> impl Strategy<Value = Permission> {
        (
            pattern(),
            pattern(),
            proptest::collection::btree_map("[xy]", 0u8..4, 0..3),
        )
            .prop_map(|(action, resource, limits)| Permission {
                action,
                resource,
                limits: limits.into_iter().map(|(k, v)| (k, f64::from(v))).collect(),
            })
    }

    fn scope() -> impl Strategy<Value = Scope> {
        proptest::collection::vec(permission(), 0..4).prop_map(Scope)
    }

    /// A permission narrower than `p`: a longer action/resource and tighter limits.
    fn narrower(p: &Permission, suffix: &str, tighten: f64, extra_limit: bool) -> Permission {
        let narrow = |pat: &Pattern| match pat {
            Pattern::Prefix(s) => Pattern::Prefix(format!("{s}{suffix}")),
            Pattern::Exact(s) => Pattern::Exact(s.clone()),
        };
        let mut limits: BTreeMap<String, f64> = p
            .limits
            .iter()
            .map(|(k, v)| (k.clone(), (v - tighten).max(0.0)))
            .collect();
        if extra_limit {
            limits.entry("z".to_owned()).or_insert(1.0);
        }
        Permission {
            action: narrow(&p.action),
            resource: narrow(&p.resource),
            limits,
        }
    }

    proptest! {
        #[test]
        fn covers_is_reflexive(p in permission(), s in scope()) {
            prop_assert!(p.covers(&p));
            prop_assert!(s.covers(&s));
        }

        #[test]
        fn covers_is_transitive(a in permission(), b in permission(), c in permission()) {
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
        }

        #[test]
        fn scope_covers_is_transitive(a in scope(), b in scope(), c in scope()) {
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
        }

        #[test]
        fn a_narrower_child_is_covered(p in permission(), suffix in "[ab]{0,2}", t in 0u8..3, extra in any::<bool>()) {
            let child = narrower(&p, &suffix, f64::from(t), extra);
            prop_assert!(p.covers(&child));
            let parent_scope = Scope(vec![p.clone()]);
            prop_assert!(parent_scope.covers(&Scope(vec![child])));
        }

        #[test]
        fn a_wider_child_is_not_covered(p in permission(), extra in 1u8..3) {
            // Raising any limit, dropping a limit, or widening a pattern makes it wider.
            if let Some((name, max)) = p.limits.iter().next() {
                let mut raised = p.clone();
                raised.limits.insert(name.clone(), max + f64::from(extra));
                prop_assert!(!p.covers(&raised));
                let mut dropped = p.clone();
                dropped.limits.remove(name);
                prop_assert!(!p.covers(&dropped));
            }
            let widen = |pat: &Pattern| match pat {
                Pattern::Exact(s) => Pattern::Prefix(s.clone()),
                Pattern::Prefix(s) if !s.is_empty() => {
                    let mut shorter = s.clone();
                    shorter.pop();
                    Pattern::Prefix(shorter)
                }
                Pattern::Prefix(_) => pat.clone(),
            };
            let mut wider = p.clone();
            wider.action = widen(&p.action);
            if wider.action != p.action {
                prop_assert!(!p.covers(&wider));
            }
        }

        #[test]
        fn allows_agrees_with_covers_of_a_point(p in permission(), op in "[ab]{0,3}", res in "[ab]{0,3}", x in 0u8..4) {
            let params: BTreeMap<String, f64> = [("x".to_owned(), f64::from(x))].into();
            let point = Permission {
                action: Pattern::Exact(op.clone()),
                resource: Pattern::Exact(res.clone()),
                limits: params.clone(),
            };
            prop_assert_eq!(p.allows(&op, &res, &params), p.covers(&point));
        }
    }
}
