//! The organisation's Cedar policy (DESIGN §5 "Policy"): parsed, validated against the schema
//! Custody ships (`data/custody.cedarschema`), and evaluated with the chain's facts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    ActionConstraint, AuthorizationError, Authorizer, Context, Decision, Entities, Entity,
    EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
    Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

/// The schema Custody ships, before the actions the policies name are declared.
pub const SCHEMA: &str = include_str!("../data/custody.cedarschema");

/// A policy that cannot be used: which file, where, and why. Start-up stops on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// An error located by the first label of a Cedar diagnostic.
fn located(file: &str, text: &str, d: &dyn Diagnostic, message: String) -> PolicyError {
    let offset = d.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (line, column) = match offset {
        Some(o) => {
            let (l, c) = line_col(text, o);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    PolicyError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// A Cedar message with its help, on one line.
fn describe(d: &dyn Diagnostic, base: String) -> String {
    let mut s = base.replace('\n', " ");
    if let Some(help) = d.help() {
        s.push_str(&format!(" ({help})"));
    }
    s
}

/// What Cedar said about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CedarOutcome {
    /// Cedar's decision.
    pub allowed: bool,
    /// The policies that determined it (the forbids that matched, or the permits).
    pub determining: Vec<String>,
    /// Policies that failed to evaluate, with the reason (the gate denies on these).
    pub errors: Vec<(String, String)>,
}

/// The request Cedar is asked about, built by the gate from the chain's facts.
#[derive(Clone, Debug)]
pub struct CedarRequest<'a> {
    /// The actor's id, kind and name.
    pub actor: (&'a str, &'a str, &'a str),
    /// The operation.
    pub operation: &'a str,
    /// The resource.
    pub resource: &'a str,
    /// Integral numeric parameters (rounded up).
    pub params: Vec<(String, i64)>,
    /// Whether the action changes state.
    pub mutating: bool,
    /// Everything else in `context`, by name.
    pub context: Vec<(&'static str, RestrictedExpression)>,
}

/// Which operations a policy's scope lets it apply to.
#[derive(Clone, Debug)]
enum Applies {
    /// `action` unconstrained.
    Any,
    /// `action == A`: this operation only.
    Is(String),
    /// `action in A` or `action in [A, ...]`: these actions and their members.
    In(Vec<String>),
}

/// Policy sets per operation, holding only the policies whose `action` scope can match it.
/// Cedar evaluates every policy of the set it is given; a policy whose scope names other
/// actions cannot apply (an operation is `in` exactly its prefix groups), so leaving it out
/// changes no decision and saves its evaluation.
#[derive(Debug, Default)]
struct Slices {
    by_operation: RwLock<HashMap<String, Arc<PolicySet>>>,
}

/// Bound on the cached slices (distinct operations); past it the cache starts over.
const MAX_SLICES: usize = 4096;

/// The loaded policy set.
pub struct CedarPolicy {
    policies: PolicySet,
    applies: Vec<(cedar_policy::Policy, Applies)>,
    slices: Slices,
    ids: Vec<String>,
    groups: HashMap<String, Vec<EntityUid>>,
    digest: [u8; 32],
    authorizer: Authorizer,
    principal_type: EntityTypeName,
    resource_type: EntityTypeName,
    action_type: EntityTypeName,
    call_type: EntityTypeName,
}

impl Clone for CedarPolicy {
    fn clone(&self) -> Self {
        CedarPolicy {
            policies: self.policies.clone(),
            applies: self.applies.clone(),
            slices: Slices::default(),
            ids: self.ids.clone(),
            groups: self.groups.clone(),
            digest: self.digest,
            authorizer: Authorizer::new(),
            principal_type: self.principal_type.clone(),
            resource_type: self.resource_type.clone(),
            action_type: self.action_type.clone(),
            call_type: self.call_type.clone(),
        }
    }
}

impl fmt::Debug for CedarPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CedarPolicy")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

fn type_name(name: &str) -> EntityTypeName {
    // The names are constants of this crate; a failure here is a bug caught by every test.
    EntityTypeName::from_str(name).unwrap_or_else(|_| unreachable_type(name))
}

#[allow(clippy::panic, reason = "constant type names; exercised by every test")]
fn unreachable_type(name: &str) -> EntityTypeName {
    panic!("`{name}` is not a Cedar type name")
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// The action groups an operation belongs to: a prefix ending in `:`, `.` or `/`, then `*`;
/// and `*` itself. `vault:secret.rotate` → `vault:*`, `vault:secret.*`, `*`.
pub fn operation_groups(operation: &str) -> Vec<String> {
    let mut groups: Vec<String> = operation
        .char_indices()
        .filter(|(_, c)| matches!(c, ':' | '.' | '/'))
        .filter_map(|(i, c)| operation.get(..i + c.len_utf8()).map(|p| format!("{p}*")))
        .collect();
    groups.push("*".into());
    groups
}

impl CedarPolicy {
    /// Parses and validates policy files given as `(name, text)`, in order. Policies are
    /// named by their `@id("...")` annotation, else `FILE#N` (N counts from 1 in the file).
    /// `groups` maps a group name to its members (principal ids).
    pub fn from_sources(
        sources: &[(String, String)],
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<CedarPolicy, PolicyError> {
        let mut set = PolicySet::new();
        let mut applies_to = Vec::new();
        let mut ids = Vec::new();
        // `*` (every operation) is always declared, so that a policy with an unconstrained
        // `action` is type-checked too.
        let mut actions: BTreeSet<String> = BTreeSet::from(["*".to_owned()]);
        let mut origin: HashMap<String, (usize, String)> = HashMap::new();
        let action_type = type_name("Custody::Action");
        let mut digest = Sha256::new();
        for (n, (file, text)) in sources.iter().enumerate() {
            digest.update(file.as_bytes());
            digest.update([0]);
            digest.update(text.as_bytes());
            digest.update([0]);
            let parsed = PolicySet::from_str(text).map_err(|e| {
                let first = e.iter().next();
                match first {
                    Some(d) => located(file, text, d, describe(d, d.to_string())),
                    None => located(file, text, &e, e.to_string()),
                }
            })?;
            if parsed.templates().next().is_some() {
                return Err(PolicyError {
                    file: file.clone(),
                    line: None,
                    column: None,
                    message: "policy templates (`?principal`, `?resource`) are not supported; write static policies".into(),
                });
            }
            let mut in_file: Vec<_> = parsed.policies().cloned().collect();
            in_file.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(0)
            });
            for (k, policy) in in_file.into_iter().enumerate() {
                let id = policy
                    .annotation("id")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{file}#{}", k + 1));
                if let Some((_, other)) = origin.get(&id) {
                    return Err(PolicyError {
                        file: file.clone(),
                        line: None,
                        column: None,
                        message: format!("policy id `{id}` is already used in {other}"),
                    });
                }
                origin.insert(id.clone(), (n, file.clone()));
                for e in policy.entity_literals() {
                    if e.type_name() == &action_type {
                        actions.insert(e.id().unescaped().to_owned());
                    }
                }
                let applies = match policy.action_constraint() {
                    ActionConstraint::Eq(e) => Applies::Is(e.id().unescaped().to_owned()),
                    ActionConstraint::In(list) => {
                        Applies::In(list.iter().map(|e| e.id().unescaped().to_owned()).collect())
                    }
                    ActionConstraint::Any => Applies::Any,
                };
                match &applies {
                    Applies::Is(id) => {
                        actions.insert(id.clone());
                    }
                    Applies::In(ids) => actions.extend(ids.iter().cloned()),
                    Applies::Any => {}
                }
                let renamed = policy.new_id(PolicyId::new(id.clone()));
                applies_to.push((renamed.clone(), applies));
                set.add(renamed).map_err(|e| PolicyError {
                    file: file.clone(),
                    line: None,
                    column: None,
                    message: e.to_string(),
                })?;
                ids.push(id);
            }
        }
        let schema = schema_with_actions(&actions).map_err(|message| PolicyError {
            file: "custody.cedarschema".into(),
            line: None,
            column: None,
            message,
        })?;
        let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
        if let Some(err) = result.validation_errors().next() {
            let id = err.policy_id().to_string();
            let (file, text) = origin
                .get(&id)
                .and_then(|(n, _)| sources.get(*n))
                .map(|(f, t)| (f.as_str(), t.as_str()))
                .unwrap_or(("(policies)", ""));
            // Cedar's message names the policy ("for policy `ID`, ...").
            let message = describe(err, err.to_string());
            return Err(located(file, text, err, message));
        }
        let mut by_member: HashMap<String, Vec<EntityUid>> = HashMap::new();
        let group_type = type_name("Custody::Group");
        for (group, members) in groups {
            for m in members {
                by_member
                    .entry(m.clone())
                    .or_default()
                    .push(uid(&group_type, group));
            }
        }
        Ok(CedarPolicy {
            policies: set,
            applies: applies_to,
            slices: Slices::default(),
            ids,
            groups: by_member,
            digest: digest.finalize().into(),
            authorizer: Authorizer::new(),
            principal_type: type_name("Custody::Principal"),
            resource_type: type_name("Custody::Resource"),
            action_type,
            call_type: type_name("Custody::Call"),
        })
    }

    /// The policy ids, in load order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// SHA-256 over the file names and texts: which policy a decision was made under.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The groups `principal` belongs to.
    pub fn groups_of(&self, principal: &str) -> Vec<String> {
        self.groups
            .get(principal)
            .map(|g| g.iter().map(|u| u.id().unescaped().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The policy set (for benchmarks that call Cedar directly).
    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// Builds the Cedar request and entities for `req`.
    pub fn build(&self, req: CedarRequest<'_>) -> Result<(Request, Entities), String> {
        let (actor_id, kind, name) = req.actor;
        let principal = uid(&self.principal_type, actor_id);
        let resource = uid(&self.resource_type, req.resource);
        let action = uid(&self.action_type, req.operation);
        let call = uid(&self.call_type, "proposed");
        let parents: HashSet<EntityUid> = self
            .groups
            .get(actor_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let principal_entity = Entity::new(
            principal.clone(),
            HashMap::from([
                ("id".to_owned(), s(actor_id)),
                ("kind".to_owned(), s(kind)),
                ("name".to_owned(), s(name)),
            ]),
            parents,
        )
        .map_err(|e| e.to_string())?;
        let resource_entity = Entity::new(
            resource.clone(),
            HashMap::from([("id".to_owned(), s(req.resource))]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let call_entity = Entity::new_with_tags(
            call.clone(),
            [
                ("operation".to_owned(), s(req.operation)),
                ("resource".to_owned(), s(req.resource)),
                (
                    "mutating".to_owned(),
                    RestrictedExpression::new_bool(req.mutating),
                ),
            ],
            [],
            req.params
                .into_iter()
                .map(|(k, v)| (k, RestrictedExpression::new_long(v))),
        )
        .map_err(|e| e.to_string())?;
        let action_entity = Entity::new_no_attrs(
            action.clone(),
            operation_groups(req.operation)
                .iter()
                .map(|g| uid(&self.action_type, g))
                .collect(),
        );
        let entities = Entities::from_entities(
            [
                principal_entity,
                resource_entity,
                call_entity,
                action_entity,
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
        let mut pairs: Vec<(String, RestrictedExpression)> = req
            .context
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        pairs.push(("call".into(), RestrictedExpression::new_entity_uid(call)));
        let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
        let request =
            Request::new(principal, action, resource, context, None).map_err(|e| e.to_string())?;
        Ok((request, entities))
    }

    /// The policies that can apply to `operation` (see [`Slices`]).
    fn slice(&self, operation: &str) -> Arc<PolicySet> {
        if let Ok(cache) = self.slices.by_operation.read() {
            if let Some(set) = cache.get(operation) {
                return Arc::clone(set);
            }
        }
        let mut names = operation_groups(operation);
        names.push(operation.to_owned());
        let mut set = PolicySet::new();
        for (policy, applies) in &self.applies {
            let relevant = match applies {
                Applies::Any => true,
                Applies::Is(id) => id == operation,
                Applies::In(ids) => ids.iter().any(|id| names.contains(id)),
            };
            if relevant {
                // Ids are unique in `self.policies`, so adding cannot fail.
                let _ = set.add(policy.clone());
            }
        }
        let set = Arc::new(set);
        if let Ok(mut cache) = self.slices.by_operation.write() {
            if cache.len() >= MAX_SLICES {
                cache.clear();
            }
            cache.insert(operation.to_owned(), Arc::clone(&set));
        }
        set
    }

    /// Evaluates the policies that can apply to `operation` on a request built by
    /// [`CedarPolicy::build`] for it.
    pub fn evaluate(
        &self,
        operation: &str,
        request: &Request,
        entities: &Entities,
    ) -> CedarOutcome {
        let set = self.slice(operation);
        let response = self.authorizer.is_authorized(request, &set, entities);
        let diagnostics = response.diagnostics();
        let mut determining: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        determining.sort();
        let errors: Vec<(String, String)> = diagnostics
            .errors()
            .map(|e| match e {
                AuthorizationError::PolicyEvaluationError(p) => (
                    p.policy_id().to_string(),
                    p.inner().to_string().replace('\n', " "),
                ),
            })
            .collect();
        CedarOutcome {
            allowed: response.decision() == Decision::Allow,
            determining,
            errors,
        }
    }
}

fn schema_with_actions(actions: &BTreeSet<String>) -> Result<Schema, String> {
    let body = SCHEMA
        .trim_end()
        .strip_suffix('}')
        .ok_or("the shipped schema does not end with `}`")?;
    let mut text = body.to_owned();
    for a in actions {
        let escaped = a.replace('\\', "\\\\").replace('"', "\\\"");
        text.push_str(&format!(
            "  action \"{escaped}\" appliesTo {{ principal: [Principal], resource: [Resource], context: ChainFacts }};\n"
        ));
    }
    text.push_str("}\n");
    Schema::from_cedarschema_str(&text)
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_prefix() {
        assert_eq!(
            operation_groups("vault:secret.rotate"),
            ["vault:*", "vault:secret.*", "*"]
        );
        assert_eq!(operation_groups("noop"), ["*"]);
    }

    #[test]
    fn the_shipped_schema_parses_with_and_without_actions() {
        schema_with_actions(&BTreeSet::new()).unwrap();
        schema_with_actions(&BTreeSet::from([
            "erp:refund.*".to_owned(),
            "a\"b".to_owned(),
        ]))
        .unwrap();
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let src = "permit (principal, action, resource);\n\nforbid (principal, action, resource) when { context.depth > };\n";
        let err = CedarPolicy::from_sources(&[("p.cedar".into(), src.into())], &BTreeMap::new())
            .unwrap_err();
        assert_eq!(err.file, "p.cedar");
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.to_string().starts_with("p.cedar:3:"), "{err}");
    }

    #[test]
    fn a_type_error_names_the_policy_and_line() {
        let src = "@id(\"ok\")\npermit (principal, action, resource);\n@id(\"typo\")\nforbid (principal, action, resource)\n  when { context.deph > 3 };\n";
        let err = CedarPolicy::from_sources(&[("p.cedar".into(), src.into())], &BTreeMap::new())
            .unwrap_err();
        assert!(err.message.contains("typo"), "{err}");
        assert!(err.message.contains("deph"), "{err}");
        assert_eq!(err.line, Some(5), "{err}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let a = (
            "a.cedar".to_owned(),
            "@id(\"x\") permit (principal, action, resource);".to_owned(),
        );
        let b = (
            "b.cedar".to_owned(),
            "@id(\"x\") forbid (principal, action, resource);".to_owned(),
        );
        let err = CedarPolicy::from_sources(&[a, b], &BTreeMap::new()).unwrap_err();
        assert_eq!(err.file, "b.cedar");
        assert!(err.message.contains("a.cedar"), "{err}");
    }

    #[test]
    fn slicing_by_action_changes_no_decision() {
        let src = r#"
            @id("p-any") permit (principal, action, resource) when { principal.kind == "agent" };
            @id("f-eq") forbid (principal, action == Custody::Action::"erp:refund.create", resource);
            @id("f-group") forbid (principal, action in Custody::Action::"vault:secret.*", resource) when { resource.id like "*prod*" };
            @id("f-list") forbid (principal, action in [Custody::Action::"k8s:*", Custody::Action::"dns:record.upsert"], resource);
            @id("p-root") permit (principal, action in Custody::Action::"*", resource) when { principal.kind == "human" };
            @id("f-other") forbid (principal, action == Custody::Action::"erp:*", resource);
        "#;
        let p =
            CedarPolicy::from_sources(&[("s.cedar".into(), src.into())], &BTreeMap::new()).unwrap();
        let full = Authorizer::new();
        for op in [
            "erp:refund.create",
            "erp:refund.read",
            "erp:invoice",
            "vault:secret.rotate",
            "vault:kv.read",
            "k8s:pods.delete",
            "dns:record.upsert",
            "dns:record.delete",
            "plain",
        ] {
            for kind in ["agent", "human", "service"] {
                for resource in ["vault://prod/x", "erp://orders/1"] {
                    let req = CedarRequest {
                        actor: ("a", kind, ""),
                        operation: op,
                        resource,
                        params: vec![],
                        mutating: true,
                        context: vec![],
                    };
                    let (r, e) = p.build(req).unwrap();
                    let sliced = p.evaluate(op, &r, &e);
                    let whole = full.is_authorized(&r, p.policy_set(), &e);
                    assert_eq!(
                        sliced.allowed,
                        whole.decision() == Decision::Allow,
                        "{op} {kind} {resource}"
                    );
                    let mut reasons: Vec<String> = whole
                        .diagnostics()
                        .reason()
                        .map(ToString::to_string)
                        .collect();
                    reasons.sort();
                    assert_eq!(sliced.determining, reasons, "{op} {kind} {resource}");
                }
            }
        }
        // Only the policies that can apply are in a slice.
        assert_eq!(p.slice("erp:refund.create").policies().count(), 3);
        assert_eq!(p.slice("plain").policies().count(), 2);
    }

    #[test]
    fn unnamed_policies_are_named_by_file_and_position() {
        let src = "permit (principal, action, resource);\nforbid (principal, action == Custody::Action::\"k8s:pods.delete\", resource);\n";
        let p = CedarPolicy::from_sources(&[("base.cedar".into(), src.into())], &BTreeMap::new())
            .unwrap();
        assert_eq!(p.ids(), ["base.cedar#1", "base.cedar#2"]);
    }
}
