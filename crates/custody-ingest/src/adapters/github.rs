//! GitHub Actions OIDC token claims and GitHub audit-log entries (DESIGN §6; field table
//! in `docs/formats.md`).
//!
//! - OIDC claims (`job_workflow_ref` / `workflow_ref`, `run_id`, `actor`, `jti`): the run's
//!   token is a `delegation` from `actor` (the human who triggered the run) to the
//!   pipeline named by `job_workflow_ref`, credential = `jti`, bounded by `nbf`/`exp`.
//! - audit-log `workflows.*` entries: a `delegation` from `actor` to the workflow, with the
//!   run id as chain;
//! - other audit-log entries: an `action` by `actor` (and an `effect`, since the audit log
//!   records changes).

use serde_json::{json, Map, Value};

use super::util::{self, copy, put, skip, text, Conv};

/// Converts one claims object or audit-log entry.
pub(crate) fn convert(r: &Value) -> Result<Conv<'static>, String> {
    if r.get("job_workflow_ref").is_some() || r.get("workflow_ref").is_some() {
        return oidc(r);
    }
    audit(r)
}

fn actor_kind(actor: &str) -> &'static str {
    if actor.ends_with("[bot]") {
        "service"
    } else {
        "human"
    }
}

fn oidc(r: &Value) -> Result<Conv<'static>, String> {
    let repo = text(r, &["repository"]).ok_or("missing `repository`")?;
    let run_id = util::scalar(r, &["run_id"]).ok_or("missing `run_id`")?;
    let attempt = util::scalar(r, &["run_attempt"]).unwrap_or_else(|| "1".into());
    let actor = text(r, &["actor"]).ok_or("missing `actor`")?;
    let pipeline = text(r, &["job_workflow_ref"])
        .or_else(|| text(r, &["workflow_ref"]))
        .ok_or("missing `job_workflow_ref`")?;
    let issuer = text(r, &["iss"]).unwrap_or("https://token.actions.githubusercontent.com");
    let time = util::time_at(r, &[&["iat"], &["nbf"]]).ok_or("missing or unreadable `iat`")?;
    let jti = text(r, &["jti"]);
    let cred_id = match jti {
        Some(j) => format!("jti:{j}"),
        None => format!("github-run:{repo}/{run_id}/{attempt}"),
    };
    let mut credential = Map::new();
    credential.insert("id".into(), cred_id.into());
    credential.insert("kind".into(), "github_oidc".into());
    credential.insert("issuer".into(), issuer.into());
    put(&mut credential, "not_before", util::time_at(r, &[&["nbf"]]));
    put(&mut credential, "expires", util::time_at(r, &[&["exp"]]));
    let mut attrs = Map::new();
    for key in [
        "sub",
        "aud",
        "repository",
        "repository_owner",
        "ref",
        "ref_type",
        "sha",
        "workflow",
        "workflow_ref",
        "workflow_sha",
        "job_workflow_ref",
        "job_workflow_sha",
        "event_name",
        "environment",
        "run_id",
        "run_number",
        "run_attempt",
        "runner_environment",
        "actor_id",
        "repository_id",
        "repository_visibility",
        "base_ref",
        "head_ref",
    ] {
        copy(&mut attrs, key, r, &[key]);
    }
    let id = match jti {
        Some(j) => format!("oidc:{j}"),
        None => format!("oidc:{run_id}/{attempt}"),
    };
    Ok(Conv::Events(vec![json!({
        "id": id,
        "type": "delegation",
        "time": time,
        "source": format!("github-actions:{}", text(r, &["repository_owner"]).unwrap_or(repo)),
        "chain": format!("github-run:{repo}/{run_id}"),
        "from": util::principal(&format!("github:{actor}"), actor_kind(actor)),
        "to": util::named(&format!("github-workflow:{pipeline}"), "pipeline", text(r, &["workflow"])),
        "via": "token_exchange",
        "credential": Value::Object(credential),
        "attributes": Value::Object(attrs),
    })]))
}

fn audit(r: &Value) -> Result<Conv<'static>, String> {
    let action = text(r, &["action"]).ok_or("missing `action`")?;
    let Some(actor) = text(r, &["actor"]) else {
        return skip(format!("{action} with no actor"));
    };
    let time = util::time_at(
        r,
        &[&["@timestamp"], &["created_at"], &["at_sign_timestamp"]],
    )
    .ok_or("missing or unreadable `created_at`")?;
    let scope = text(r, &["business"])
        .or_else(|| text(r, &["org"]))
        .unwrap_or("github");
    let source = format!("github-audit:{scope}");
    let repo = text(r, &["repo"]).or_else(|| text(r, &["repository"]));
    let resource = match (repo, text(r, &["org"])) {
        (Some(repo), _) => format!("github://{repo}"),
        (None, Some(org)) => format!("github://{org}"),
        (None, None) => format!("github://{scope}"),
    };
    let id = text(r, &["_document_id"])
        .map(str::to_owned)
        .or_else(|| util::scalar(r, &["workflow_run_id"]).map(|w| format!("{action}/{w}")))
        .unwrap_or_else(|| format!("{action}/{actor}/{time}"));
    let mut attrs = Map::new();
    attrs.insert("action".into(), action.into());
    for key in [
        "org",
        "repo",
        "business",
        "operation_type",
        "workflow_id",
        "workflow_run_id",
        "name",
        "head_branch",
        "head_sha",
        "event",
        "conclusion",
        "run_number",
        "run_attempt",
        "trigger_id",
        "actor_location",
        "programmatic_access_type",
        "token_scopes",
        "external_identity_nameid",
        "user",
        "job_workflow_ref",
    ] {
        copy(&mut attrs, key, r, &[key]);
    }
    let human = util::principal(&format!("github:{actor}"), actor_kind(actor));
    if let Some(kind) = action.strip_prefix("workflows.") {
        let workflow = text(r, &["name"])
            .map(str::to_owned)
            .or_else(|| util::scalar(r, &["workflow_id"]))
            .unwrap_or_else(|| "unknown".into());
        let run = util::scalar(r, &["workflow_run_id"]);
        let pipeline = format!("github-workflow:{}/{workflow}", repo.unwrap_or(scope));
        let mut d = json!({
            "id": id,
            "type": "delegation",
            "time": time,
            "source": source,
            "from": human,
            "to": util::principal(&pipeline, "pipeline"),
            "via": "other",
            "attributes": Value::Object(attrs),
        });
        if let Some(obj) = d.as_object_mut() {
            if let Some(run) = &run {
                obj.insert(
                    "chain".into(),
                    format!("github-run:{}/{run}", repo.unwrap_or(scope)).into(),
                );
            }
            obj.insert("attributes".into(), {
                let mut a = obj
                    .get("attributes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                a.insert("workflow_event".into(), kind.into());
                Value::Object(a)
            });
        }
        return Ok(Conv::Events(vec![d]));
    }
    let operation = format!("github:{action}");
    let mut context = Map::new();
    context.insert("orchestrator".into(), "github".into());
    put(&mut context, "origin", text(r, &["actor_ip"]));
    let credential = util::scalar(r, &["token_id"])
        .map(|t| format!("github-token:{t}"))
        .or_else(|| text(r, &["hashed_token"]).map(|h| format!("github-token-sha256:{h}")));
    let mut a = json!({
        "id": id,
        "type": "action",
        "time": time,
        "source": source,
        "actor": human,
        "operation": operation,
        "resource": resource,
        "mutating": true,
        "context": Value::Object(context),
        "outcome": "success",
        "attributes": Value::Object(attrs),
    });
    if let Some(obj) = a.as_object_mut() {
        put(obj, "credential", credential);
    }
    let verb = action.rsplit('.').next().unwrap_or(action);
    let e = json!({
        "id": format!("{id}/effect"),
        "type": "effect",
        "time": time,
        "source": source,
        "system": "github",
        "resource": resource,
        "change": util::change_of(verb),
        "caused_by": id,
    });
    Ok(Conv::Events(vec![a, e]))
}
