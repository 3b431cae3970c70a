//! Kubernetes audit `Event`s, including EKS (DESIGN §6; field table in `docs/formats.md`).
//!
//! Only the final stage of a request (`ResponseComplete` or `Panic`, or an event with no
//! stage) is read; earlier stages of the same `auditID` are skipped. `user` (or, with
//! impersonation, `impersonatedUser`, reached through an `impersonation` delegation) acts
//! with the credential named in `user.extra` on `objectRef` with `verb`; a successful
//! mutating verb is also an `effect`.

use serde_json::{json, Map, Value};

use super::util::{self, at, copy, first_text, put, skip, text, Conv};
use super::Options;

const MUTATING: [&str; 9] = [
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "bind",
    "escalate",
    "approve",
];

/// Converts one audit `Event`.
pub(crate) fn convert(r: &Value, options: &Options) -> Result<Conv<'static>, String> {
    let stage = text(r, &["stage"]).unwrap_or("ResponseComplete");
    if stage == "RequestReceived" || stage == "ResponseStarted" {
        return skip(format!(
            "stage {stage} (the ResponseComplete event records the request)"
        ));
    }
    let audit_id = text(r, &["auditID"]).ok_or("missing `auditID`")?;
    let verb = text(r, &["verb"]).unwrap_or("unknown");
    let time = util::time_at(
        r,
        &[
            &["stageTimestamp"],
            &["requestReceivedTimestamp"],
            &["p_event_time"],
        ],
    )
    .ok_or("missing or unreadable `stageTimestamp`")?;
    let source = match options.k8s_cluster.as_deref() {
        Some(cluster) => format!("k8s:audit:{cluster}"),
        None => "k8s:audit".to_owned(),
    };
    let user = r.get("user").ok_or("missing `user`")?;
    let username = text(user, &["username"]).ok_or("missing `user.username`")?;
    let real = util::principal(username, kind_of(username, user));
    let user_credential = first_text(
        user,
        &["extra", "authentication.kubernetes.io/credential-id"],
    )
    .or_else(|| first_text(user, &["extra", "accessKeyId"]))
    .map(str::to_owned);

    let mut out = Vec::new();
    let (actor, credential) = match r.get("impersonatedUser").filter(|v| v.is_object()) {
        Some(imp) => {
            let as_name = text(imp, &["username"]).ok_or("missing `impersonatedUser.username`")?;
            let to = util::principal(as_name, kind_of(as_name, imp));
            let cred_id = format!("k8s-impersonation:{audit_id}");
            let mut d = json!({
                "id": format!("{audit_id}/impersonation"),
                "type": "delegation",
                "time": time,
                "source": source,
                "chain": format!("k8s-audit:{audit_id}"),
                "from": real,
                "to": to,
                "via": "impersonation",
                "credential": {"id": cred_id, "kind": "k8s_impersonation", "issuer": "k8s:apiserver", "max_uses": 1},
                "attributes": {"impersonated_groups": imp.get("groups").cloned().unwrap_or(Value::Null)},
            });
            if let (Some(obj), Some(c)) = (d.as_object_mut(), &user_credential) {
                obj.insert("parent_credential".into(), c.clone().into());
            }
            out.push(d);
            (to, Some(cred_id))
        }
        None => (real, user_credential),
    };

    let object = r.get("objectRef").filter(|v| v.is_object());
    let (operation, resource) = match object {
        Some(o) => {
            let kind = text(o, &["resource"]).unwrap_or("unknown");
            let kind = match text(o, &["subresource"]) {
                Some(sub) => format!("{kind}/{sub}"),
                None => kind.to_owned(),
            };
            let mut path = String::from("k8s://");
            path.push_str(text(o, &["apiGroup"]).unwrap_or("core"));
            path.push('/');
            if let Some(ns) = text(o, &["namespace"]) {
                path.push_str(&format!("namespaces/{ns}/"));
            }
            path.push_str(text(o, &["resource"]).unwrap_or("unknown"));
            if let Some(name) = text(o, &["name"]) {
                path.push('/');
                path.push_str(name);
            }
            if let Some(sub) = text(o, &["subresource"]) {
                path.push('/');
                path.push_str(sub);
            }
            (format!("k8s:{kind}.{verb}"), path)
        }
        None => {
            let uri = text(r, &["requestURI"]).unwrap_or("/");
            let path = uri.split('?').next().unwrap_or(uri);
            (format!("k8s:{verb}"), format!("k8s://nonresource{path}"))
        }
    };
    let code = at(r, &["responseStatus", "code"]).and_then(Value::as_i64);
    let decision = text(r, &["annotations", "authorization.k8s.io/decision"]);
    let outcome = match code {
        Some(c) if (200..400).contains(&c) => "success",
        Some(401) | Some(403) => "denied",
        Some(_) => "failure",
        None if decision == Some("forbid") => "denied",
        None => "success",
    };
    let mutating = MUTATING.contains(&verb);

    let mut context = Map::new();
    context.insert("orchestrator".into(), "kubernetes".into());
    put(&mut context, "origin", first_text(r, &["sourceIPs"]));
    let mut attrs = Map::new();
    copy(&mut attrs, "user_agent", r, &["userAgent"]);
    copy(&mut attrs, "request_uri", r, &["requestURI"]);
    copy(&mut attrs, "groups", user, &["groups"]);
    copy(&mut attrs, "uid", user, &["uid"]);
    copy(
        &mut attrs,
        "decision",
        r,
        &["annotations", "authorization.k8s.io/decision"],
    );
    copy(
        &mut attrs,
        "reason",
        r,
        &["annotations", "authorization.k8s.io/reason"],
    );
    copy(&mut attrs, "status_code", r, &["responseStatus", "code"]);
    copy(
        &mut attrs,
        "status_reason",
        r,
        &["responseStatus", "reason"],
    );
    put(&mut attrs, "aws_arn", first_text(user, &["extra", "arn"]));
    put(
        &mut attrs,
        "aws_canonical_arn",
        first_text(user, &["extra", "canonicalArn"]),
    );
    put(
        &mut attrs,
        "aws_session_name",
        first_text(user, &["extra", "sessionName"]),
    );
    put(
        &mut attrs,
        "aws_principal_id",
        first_text(user, &["extra", "principalId"]),
    );
    put(
        &mut attrs,
        "pod_name",
        first_text(user, &["extra", "authentication.kubernetes.io/pod-name"]),
    );
    put(
        &mut attrs,
        "node_name",
        first_text(user, &["extra", "authentication.kubernetes.io/node-name"]),
    );
    if r.get("impersonatedUser").is_some_and(Value::is_object) {
        attrs.insert("real_user".into(), username.into());
    }
    let mut action = json!({
        "id": audit_id,
        "type": "action",
        "time": time,
        "source": source,
        "chain": format!("k8s-audit:{audit_id}"),
        "actor": actor,
        "operation": operation,
        "resource": resource,
        "mutating": mutating,
        "context": Value::Object(context),
        "outcome": outcome,
        "attributes": Value::Object(attrs),
    });
    if let Some(obj) = action.as_object_mut() {
        put(obj, "credential", credential);
        if out.len() == 1 {
            obj.insert(
                "parents".into(),
                json!([format!("{audit_id}/impersonation")]),
            );
        }
    }
    out.push(action);
    if mutating && outcome == "success" {
        let change = match verb {
            "create" => "created",
            "update" | "patch" => "updated",
            "delete" | "deletecollection" => "deleted",
            "bind" | "escalate" | "approve" => "granted",
            _ => "other",
        };
        let mut e = json!({
            "id": format!("{audit_id}/effect"),
            "type": "effect",
            "time": time,
            "source": source,
            "chain": format!("k8s-audit:{audit_id}"),
            "system": "k8s",
            "resource": resource,
            "change": change,
            "caused_by": audit_id,
        });
        if let Some(obj) = e.as_object_mut() {
            put(
                obj,
                "record",
                text(r, &["responseObject", "metadata", "resourceVersion"])
                    .or_else(|| object.and_then(|o| text(o, &["resourceVersion"]))),
            );
        }
        out.push(e);
    }
    Ok(Conv::Events(out))
}

fn kind_of(name: &str, _user: &Value) -> &'static str {
    if name.starts_with("system:serviceaccount:") {
        "service"
    } else if name.starts_with("system:node:") {
        "workload"
    } else if name.starts_with("system:") || name.starts_with("eks:") || name.starts_with("aws:") {
        "service"
    } else if name.contains('@') {
        "human"
    } else {
        "unknown"
    }
}
