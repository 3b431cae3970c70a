//! The organisation's Cedar policy (DESIGN §5 "Policy"): parsed, validated against the schema
//! Custody ships (`data/custody.cedarschema`), and evaluated with the chain's facts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use cedar_policy_core::ast::{
    self, Context, EntityUID, EntityUIDEntry, Expr, Literal, PartialValue, Value, ValueKind,
};
use cedar_policy_core::entities::{self as core_entities, TCComputation};
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
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
    pub context: Vec<(&'static str, Fact<'a>)>,
}

/// A value in the Cedar `context` the gate builds (DESIGN §5 "Policy": the chain's facts).
/// Borrowed, so that facts no policy reads cost nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact<'a> {
    /// A boolean.
    Bool(bool),
    /// A Cedar `Long`.
    Long(i64),
    /// A string.
    Str(&'a str),
    /// A set of strings.
    Set(Vec<&'a str>),
    /// A record.
    Record(Vec<(&'static str, Fact<'a>)>),
}

impl Fact<'_> {
    fn value(self) -> Value {
        match self {
            Fact::Bool(b) => Value::from(b),
            Fact::Long(n) => Value::from(n),
            Fact::Str(s) => Value::from(s),
            Fact::Set(items) if items.is_empty() => Value::empty_set(None),
            Fact::Set(items) => Value::set(items.into_iter().map(Value::from), None),
            Fact::Record(fields) => {
                Value::record(fields.into_iter().map(|(k, v)| (k, v.value())), None)
            }
        }
    }
}

/// One policy ready to evaluate: its condition (scope and body, which Cedar would rebuild on
/// every request) computed once at load, without its `action` constraint: a policy is only
/// evaluated in the [`Slice`] of an operation that constraint lets it apply to, where the
/// constraint is `true` (see [`in_slice_condition`]).
#[derive(Clone, Debug)]
struct Compiled {
    id: String,
    forbid: bool,
    condition: Expr,
    policy: ast::Policy,
    /// The `context` attributes the policy reads; `None` when it uses `context` as a whole.
    reads: Option<BTreeSet<String>>,
}

/// What Cedar's condition for `policy` (`principal && action && resource && body`) is in a
/// slice, where the `action` constraint holds: the other conjuncts, in Cedar's order,
/// leaving out those that are the literal `true`. `a && true` and `true && a` evaluate as
/// `a` does, errors included, so the decision is Cedar's; what is saved is evaluating the
/// `action in ...` lookup and the literals on every request.
fn in_slice_condition(policy: &ast::Policy) -> Expr {
    let is_true = |e: &Expr| matches!(e.expr_kind(), ast::ExprKind::Lit(Literal::Bool(true)));
    let parts = [
        policy.principal_constraint().as_expr(),
        policy.resource_constraint().as_expr(),
    ]
    .into_iter()
    .chain(policy.non_scope_constraints().cloned())
    .filter(|e| !is_true(e));
    parts.reduce(Expr::and).unwrap_or_else(|| Expr::val(true))
}

/// The `context` attributes `condition` reads (`context.x`, `context has x`), or `None` when
/// it uses `context` otherwise (compares or passes the whole record), so every one counts.
fn context_reads(condition: &Expr) -> Option<BTreeSet<String>> {
    let is_context = |e: &Expr| matches!(e.expr_kind(), ast::ExprKind::Var(ast::Var::Context));
    let mut reads = BTreeSet::new();
    let mut accounted = 0usize;
    for e in condition.subexpressions() {
        match e.expr_kind() {
            ast::ExprKind::GetAttr { expr, attr } | ast::ExprKind::HasAttr { expr, attr }
                if is_context(expr) =>
            {
                reads.insert(attr.to_string());
                accounted += 1;
            }
            ast::ExprKind::ExtHasAttr { expr, attrs } if is_context(expr) => {
                reads.insert(attrs.first().to_string());
                accounted += 1;
            }
            _ => {}
        }
    }
    let uses = condition.subexpressions().filter(|e| is_context(e)).count();
    (uses == accounted).then_some(reads)
}

/// What one operation needs: the policies whose scope can match it, the `context` attributes
/// they read, and its action entity (the operation in its prefix groups).
#[derive(Debug)]
struct Slice {
    policies: Vec<Compiled>,
    /// The attributes read, few: a list is quicker to search than a set.
    reads: Option<Vec<String>>,
    action: Arc<ast::Entity>,
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
    by_operation: RwLock<HashMap<String, Arc<Slice>>>,
}

/// Bound on the cached slices (distinct operations); past it the cache starts over.
const MAX_SLICES: usize = 4096;

/// Principal and resource entities as built for earlier requests. They depend only on the
/// principal (id, kind, name; its groups are fixed at load) or the resource id, so a chain's
/// agents and the resources they touch are built once, not per decision.
#[derive(Debug, Default)]
struct Built {
    principals: RwLock<HashMap<String, PrincipalEntity>>,
    resources: RwLock<HashMap<String, Arc<ast::Entity>>>,
}

/// A principal's entity with the kind and name it was built with.
type PrincipalEntity = (String, String, Arc<ast::Entity>);

/// Bound on each of [`Built`]'s maps; past it the map starts over (as [`Slices`] does).
const MAX_BUILT: usize = 65_536;

/// `map[key]` when it `fits`, else `make()` remembered under `key` (the map starting over
/// once it holds `max`).
fn remembered<V: Clone>(
    map: &RwLock<HashMap<String, V>>,
    key: &str,
    max: usize,
    fits: impl Fn(&V) -> bool,
    make: impl FnOnce() -> V,
) -> V {
    if let Ok(m) = map.read() {
        if let Some(v) = m.get(key).filter(|v| fits(v)) {
            return v.clone();
        }
    }
    let v = make();
    if let Ok(mut m) = map.write() {
        if m.len() >= max {
            m.clear();
        }
        m.insert(key.to_owned(), v.clone());
    }
    v
}

/// The loaded policy set.
pub struct CedarPolicy {
    policies: PolicySet,
    applies: Vec<(Compiled, Applies)>,
    slices: Slices,
    built: Built,
    ids: Vec<String>,
    groups: HashMap<String, Vec<EntityUID>>,
    digest: [u8; 32],
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
            built: Built::default(),
            ids: self.ids.clone(),
            groups: self.groups.clone(),
            digest: self.digest,
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

fn uid(ty: &EntityTypeName, id: &str) -> EntityUID {
    EntityUID::from_components(ty.as_ref().clone(), ast::Eid::new(id), None)
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
                let core: &ast::Policy = renamed.as_ref();
                let condition = in_slice_condition(core);
                applies_to.push((
                    Compiled {
                        id: id.clone(),
                        forbid: core.effect() == ast::Effect::Forbid,
                        reads: context_reads(&condition),
                        condition,
                        policy: core.clone(),
                    },
                    applies,
                ));
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
        let mut by_member: HashMap<String, Vec<EntityUID>> = HashMap::new();
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
            built: Built::default(),
            ids,
            groups: by_member,
            digest: digest.finalize().into(),
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
            .map(|g| g.iter().map(|u| u.eid().as_ref().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The policy set (for benchmarks that call Cedar directly).
    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// Builds the Cedar request and entities for `req`.
    pub fn build(&self, req: CedarRequest<'_>) -> Result<(Request, Entities), String> {
        let slice = self.slice(req.operation);
        let (request, entities) = self.build_core(req, &slice)?;
        Ok((Request::from(request), Entities::from(entities)))
    }

    /// The request and entities as Cedar's evaluator takes them. Built from values directly:
    /// Cedar's public constructors evaluate each attribute as an expression and recompute the
    /// transitive closure of the entity hierarchy, which cost three times the evaluation
    /// itself. The hierarchy here is closed by construction (an operation's groups are listed
    /// in full; a principal's groups have no parents).
    fn build_core(
        &self,
        req: CedarRequest<'_>,
        slice: &Slice,
    ) -> Result<(ast::Request, core_entities::Entities), String> {
        let (actor_id, kind, name) = req.actor;
        let principal = uid(&self.principal_type, actor_id);
        let resource = uid(&self.resource_type, req.resource);
        let action = uid(&self.action_type, req.operation);
        let call = uid(&self.call_type, "proposed");
        let s = |v: &str| PartialValue::from(Value::from(v));
        let entity = |uid: EntityUID,
                      attrs: Vec<(&str, PartialValue)>,
                      parents: HashSet<EntityUID>,
                      tags: Vec<(String, PartialValue)>| {
            ast::Entity::new_with_attr_partial_value(
                uid,
                attrs.into_iter().map(|(k, v)| (k.into(), v)),
                HashSet::new(),
                parents,
                tags.into_iter().map(|(k, v)| (k.into(), v)),
            )
        };
        let (_, _, principal_entity) = remembered(
            &self.built.principals,
            actor_id,
            MAX_BUILT,
            |(k, n, _)| k == kind && n == name,
            || {
                let parents = self.groups.get(actor_id).into_iter().flatten().cloned();
                let e = entity(
                    principal.clone(),
                    vec![("id", s(actor_id)), ("kind", s(kind)), ("name", s(name))],
                    parents.collect(),
                    vec![],
                );
                (kind.to_owned(), name.to_owned(), Arc::new(e))
            },
        );
        let resource_entity = remembered(
            &self.built.resources,
            req.resource,
            MAX_BUILT,
            |_| true,
            || {
                let e = entity(
                    resource.clone(),
                    vec![("id", s(req.resource))],
                    HashSet::new(),
                    vec![],
                );
                Arc::new(e)
            },
        );
        let call_entity = entity(
            call.clone(),
            vec![
                ("operation", s(req.operation)),
                ("resource", s(req.resource)),
                ("mutating", PartialValue::from(Value::from(req.mutating))),
            ],
            HashSet::new(),
            req.params
                .into_iter()
                .map(|(k, v)| (k, PartialValue::from(Value::from(v))))
                .collect(),
        );
        let entities = core_entities::Entities::new()
            .add_entities(
                [
                    principal_entity,
                    resource_entity,
                    Arc::new(call_entity),
                    Arc::clone(&slice.action),
                ],
                None::<&cedar_policy_core::entities::NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::all_available(),
            )
            .map_err(|e| e.to_string())?;
        // Only what the policies read: an attribute no policy names cannot change a decision.
        let mut context = BTreeMap::new();
        for (k, v) in req.context {
            if slice
                .reads
                .as_ref()
                .is_none_or(|r| r.iter().any(|read| read == k))
            {
                context.insert(k.into(), v.value());
            }
        }
        context.insert("call".into(), Value::from(call));
        let request = ast::Request::new_unchecked(
            EntityUIDEntry::known(principal, None),
            EntityUIDEntry::known(action, None),
            EntityUIDEntry::known(resource, None),
            Some(Context::Value(Arc::new(context))),
        );
        Ok((request, entities))
    }

    /// The policies that can apply to `operation` and what they need (see [`Slices`]).
    fn slice(&self, operation: &str) -> Arc<Slice> {
        remembered(
            &self.slices.by_operation,
            operation,
            MAX_SLICES,
            |_| true,
            || self.new_slice(operation),
        )
    }

    fn new_slice(&self, operation: &str) -> Arc<Slice> {
        let groups = operation_groups(operation);
        let applies_here = |applies: &Applies| match applies {
            Applies::Any => true,
            Applies::Is(id) => id == operation,
            Applies::In(ids) => ids.iter().any(|id| id == operation || groups.contains(id)),
        };
        let policies: Vec<Compiled> = self
            .applies
            .iter()
            .filter(|(_, applies)| applies_here(applies))
            .map(|(policy, _)| policy.clone())
            .collect();
        let mut reads = Some(BTreeSet::new());
        for p in &policies {
            match (&mut reads, &p.reads) {
                (Some(all), Some(these)) => all.extend(these.iter().cloned()),
                _ => reads = None,
            }
        }
        let reads = reads.map(|r| r.into_iter().collect());
        let action = ast::Entity::new_with_attr_partial_value(
            uid(&self.action_type, operation),
            [],
            HashSet::new(),
            groups.iter().map(|g| uid(&self.action_type, g)).collect(),
            [],
        );
        Arc::new(Slice {
            policies,
            reads,
            action: Arc::new(action),
        })
    }

    /// Evaluates the policies that can apply to `operation` on a request built by
    /// [`CedarPolicy::build`] for it, with Cedar's semantics: a forbid that holds denies; else
    /// a permit that holds allows; else deny. A policy whose evaluation errs does not hold,
    /// and the error is reported (the gate denies on it).
    pub fn evaluate(
        &self,
        operation: &str,
        request: &Request,
        entities: &Entities,
    ) -> CedarOutcome {
        let slice = self.slice(operation);
        evaluate_core(&slice, request.as_ref().clone(), entities.as_ref())
    }

    /// Builds and evaluates `req` in one step (what the gate calls).
    pub fn decide(&self, req: CedarRequest<'_>) -> Result<CedarOutcome, String> {
        let slice = self.slice(req.operation);
        let (request, entities) = self.build_core(req, &slice)?;
        Ok(evaluate_core(&slice, request, &entities))
    }
}

fn evaluate_core(
    slice: &Slice,
    request: ast::Request,
    entities: &core_entities::Entities,
) -> CedarOutcome {
    let set = &slice.policies;
    let evaluator = Evaluator::new(request, entities, Extensions::all_available());
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    let mut errors = Vec::new();
    for p in set.iter() {
        // Validated policies' conditions are boolean; anything else is reported as Cedar
        // would report it, as an error of that policy.
        match evaluator.interpret(&p.condition, p.policy.env()) {
            Ok(v) => match v.value_kind() {
                ValueKind::Lit(Literal::Bool(true)) if p.forbid => forbids.push(p.id.clone()),
                ValueKind::Lit(Literal::Bool(true)) => permits.push(p.id.clone()),
                ValueKind::Lit(Literal::Bool(false)) => {}
                _ => errors.push((
                    p.id.clone(),
                    format!("type error: the condition is {v}, not a boolean"),
                )),
            },
            Err(e) => errors.push((p.id.clone(), e.to_string().replace('\n', " "))),
        }
    }
    let allowed = forbids.is_empty() && !permits.is_empty();
    let mut determining = if forbids.is_empty() { permits } else { forbids };
    determining.sort();
    CedarOutcome {
        allowed,
        determining,
        errors,
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
    use cedar_policy::{Authorizer, Decision};

    /// What Cedar's own `Authorizer` answered, in the gate's terms.
    fn cedar_says(response: &cedar_policy::Response) -> CedarOutcome {
        let mut determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        determining.sort();
        CedarOutcome {
            allowed: response.decision() == Decision::Allow,
            determining,
            errors: response
                .diagnostics()
                .errors()
                .map(|e| match e {
                    cedar_policy::AuthorizationError::PolicyEvaluationError(e) => (
                        e.policy_id().to_string(),
                        e.inner().to_string().replace('\n', " "),
                    ),
                })
                .collect(),
        }
    }

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
                    let whole = cedar_says(&full.is_authorized(&r, p.policy_set(), &e));
                    assert_eq!(sliced.allowed, whole.allowed, "{op} {kind} {resource}");
                    assert_eq!(
                        sliced.determining, whole.determining,
                        "{op} {kind} {resource}"
                    );
                }
            }
        }
        // Only the policies that can apply are in a slice.
        assert_eq!(p.slice("erp:refund.create").policies.len(), 3);
        assert_eq!(p.slice("plain").policies.len(), 2);
    }

    /// The gate's own evaluation (values built directly, conditions computed once, sliced by
    /// action) against Cedar's `Authorizer` on the whole set, over requests that make each
    /// policy hold, fail and err.
    #[test]
    fn evaluation_agrees_with_cedars_authorizer() {
        let src = r#"
            @id("baseline") permit (principal, action, resource) when { context.depth < 5 };
            @id("human-start") forbid (principal, action, resource) when { context.mutating } unless { context.initiator.kind == "human" };
            @id("after-hours") forbid (principal, action, resource) when { principal.kind == "agent" && context.operation like "*delete*" && (context.hour < 8 || context.hour >= 18) };
            @id("refunds") forbid (principal, action in Custody::Action::"erp:refund.*", resource) when { context.call.hasTag("amount") && context.call.getTag("amount") > 200 } unless { context.approver_groups.contains("finance") };
            @id("overflow") forbid (principal, action, resource) when { context.credential.age_secs * 1000000000000000 > 1 };
            @id("fresh") forbid (principal, action, resource) when { context.credential.age_secs > 86400 };
            @id("finance-ok") permit (principal in Custody::Group::"finance", action, resource);
            @id("freeze") forbid (principal, action in Custody::Action::"k8s:*", resource) when { resource.id like "k8s://prod/*" };
            @id("bot-reads") forbid (principal == Custody::Principal::"bot", action == Custody::Action::"db:rows.read", resource) when { context.hour < 5 };
            @id("typed") permit (principal is Custody::Principal, action in [Custody::Action::"db:*", Custody::Action::"erp:refund.create"], resource is Custody::Resource);
        "#;
        let groups = BTreeMap::from([("finance".to_owned(), vec!["fatima".to_owned()])]);
        let p = CedarPolicy::from_sources(&[("s.cedar".into(), src.into())], &groups).unwrap();
        let full = Authorizer::new();
        let mut seen_errors = 0;
        let mut seen = BTreeSet::new();
        for op in ["erp:refund.create", "k8s:pods.delete", "db:rows.read"] {
            for actor in ["fatima", "bot"] {
                for (depth, hour, age, amount) in [
                    (1, 10, 60, Some(100)),
                    (7, 20, 90_000, Some(500)),
                    (2, 3, 0, None),
                ] {
                    for ini in ["human", "agent"] {
                        let context = vec![
                            ("depth", Fact::Long(depth)),
                            ("mutating", Fact::Bool(op != "db:rows.read")),
                            ("hour", Fact::Long(hour)),
                            ("operation", Fact::Str(op)),
                            (
                                "initiator",
                                Fact::Record(vec![
                                    ("id", Fact::Str("x")),
                                    ("kind", Fact::Str(ini)),
                                ]),
                            ),
                            (
                                "credential",
                                Fact::Record(vec![("age_secs", Fact::Long(age))]),
                            ),
                            (
                                "approver_groups",
                                Fact::Set(if depth == 2 { vec!["finance"] } else { vec![] }),
                            ),
                        ];
                        let req = CedarRequest {
                            actor: (actor, if actor == "bot" { "agent" } else { "human" }, ""),
                            operation: op,
                            resource: "k8s://prod/a",
                            params: amount
                                .map(|a| vec![("amount".to_owned(), a)])
                                .unwrap_or_default(),
                            mutating: op != "db:rows.read",
                            context,
                        };
                        let (r, e) = p.build(req.clone()).unwrap();
                        let ours = p.decide(req).unwrap();
                        assert_eq!(ours, p.evaluate(op, &r, &e));
                        let whole = cedar_says(&full.is_authorized(&r, p.policy_set(), &e));
                        let at = format!("{op} {actor} depth {depth} hour {hour} age {age} amount {amount:?} {ini}");
                        assert_eq!(ours.allowed, whole.allowed, "{at}");
                        assert_eq!(ours.determining, whole.determining, "{at}");
                        assert_eq!(ours.errors, whole.errors, "{at}");
                        seen_errors += ours.errors.len();
                        seen.extend(ours.determining);
                    }
                }
            }
        }
        // Every policy held somewhere, and an overflow made `overflow` err.
        assert!(seen_errors > 0);
        for id in p.ids() {
            assert!(seen.contains(id), "{id} never held");
        }
    }

    #[test]
    fn entities_remembered_follow_the_principal_and_resource() {
        let src = r#"@id("p") permit (principal, action, resource) when { principal.kind == "agent" && resource.id == "r1" };"#;
        let p =
            CedarPolicy::from_sources(&[("s.cedar".into(), src.into())], &BTreeMap::new()).unwrap();
        let req = |kind, name, resource| CedarRequest {
            actor: ("bot", kind, name),
            operation: "db:rows.read",
            resource,
            params: vec![],
            mutating: false,
            context: vec![],
        };
        let attr = |e: &Entities, ty: &str, id: &str, name: &str| {
            let uid = cedar_policy::EntityUid::from_type_name_and_id(
                ty.parse().unwrap(),
                cedar_policy::EntityId::new(id),
            );
            let value = e.get(&uid).unwrap().attr(name).unwrap().unwrap();
            value.to_string()
        };
        for (kind, name, resource, allowed) in [
            ("agent", "", "r1", true),
            ("human", "", "r1", false),
            ("agent", "Bot", "r2", false),
            ("agent", "Bot", "r1", true),
        ] {
            let (_, e) = p.build(req(kind, name, resource)).unwrap();
            assert_eq!(
                attr(&e, "Custody::Principal", "bot", "kind"),
                format!("{kind:?}")
            );
            assert_eq!(
                attr(&e, "Custody::Principal", "bot", "name"),
                format!("{name:?}")
            );
            assert_eq!(
                attr(&e, "Custody::Resource", resource, "id"),
                format!("{resource:?}")
            );
            assert_eq!(
                p.decide(req(kind, name, resource)).unwrap().allowed,
                allowed
            );
        }
    }

    #[test]
    fn context_reads_are_the_attributes_named_or_everything() {
        let reads = |src: &str| {
            let p = cedar_policy::Policy::parse(None, src).unwrap();
            let core: &ast::Policy = p.as_ref();
            context_reads(&core.condition())
        };
        assert_eq!(
            reads("permit (principal, action, resource) when { context.depth > 1 && context has tool && context.initiator.kind == \"human\" };"),
            Some(BTreeSet::from(["depth".to_owned(), "tool".to_owned(), "initiator".to_owned()]))
        );
        assert_eq!(
            reads("permit (principal, action, resource);"),
            Some(BTreeSet::new())
        );
        assert_eq!(
            reads("permit (principal, action, resource) when { context == {\"depth\": 1} };"),
            None
        );
        assert_eq!(
            reads("permit (principal, action, resource) when { context.depth > 1 && [context].contains(context) };"),
            None
        );
    }

    #[test]
    fn unnamed_policies_are_named_by_file_and_position() {
        let src = "permit (principal, action, resource);\nforbid (principal, action == Custody::Action::\"k8s:pods.delete\", resource);\n";
        let p = CedarPolicy::from_sources(&[("base.cedar".into(), src.into())], &BTreeMap::new())
            .unwrap();
        assert_eq!(p.ids(), ["base.cedar#1", "base.cedar#2"]);
    }
}
