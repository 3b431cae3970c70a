//! GCP Cloud Audit Logs entries (DESIGN §6; field table in `docs/formats.md`).
//!
//! `authenticationInfo.serviceAccountDelegationInfo` lists the principals the call was
//! delegated through, oldest first: each hop becomes a `delegation` (via `impersonation`)
//! ending at `principalEmail`, which becomes the actor of an `action` whose operation,
//! resource and outcome come from `authorizationInfo`, `methodName`, `resourceName` and
//! `status`. An Admin Activity entry that succeeded also becomes an `effect`.

use serde_json::{json, Map, Value};

use super::util::{self, at, copy, put, skip, text, Conv};

/// Converts one `LogEntry` whose `protoPayload` is an `AuditLog`.
pub(crate) fn convert(r: &Value) -> Result<Conv<'static>, String> {
    let p = r.get("protoPayload").ok_or("missing `protoPayload`")?;
    let id = text(r, &["insertId"]).ok_or("missing `insertId`")?;
    let time = util::time_at(
        r,
        &[
            &["timestamp"],
            &["receiveTimestamp"],
            &[
                "protoPayload",
                "requestMetadata",
                "requestAttributes",
                "time",
            ],
        ],
    )
    .ok_or("missing or unreadable `timestamp`")?;
    let log_name = text(r, &["logName"]).unwrap_or("");
    let project = text(r, &["resource", "labels", "project_id"])
        .or_else(|| {
            log_name
                .strip_prefix("projects/")
                .and_then(|s| s.split('/').next())
        })
        .unwrap_or("unknown");
    let source = format!("gcp:audit:{project}");
    let auth = p.get("authenticationInfo").unwrap_or(&Value::Null);
    let Some(actor_id) =
        text(auth, &["principalEmail"]).or_else(|| text(auth, &["principalSubject"]))
    else {
        return skip("no principalEmail or principalSubject (anonymous or redacted caller)");
    };
    let service = text(p, &["serviceName"]).unwrap_or("unknown.googleapis.com");
    let method = text(p, &["methodName"]).unwrap_or("unknown");
    let resource_name = text(p, &["resourceName"]);
    let authz: Vec<&Value> = p
        .get("authorizationInfo")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // The authorization check for the resource named, else the first.
    let chosen = authz
        .iter()
        .find(|a| resource_name.is_some() && text(**a, &["resource"]) == resource_name)
        .or_else(|| authz.first())
        .copied();
    let permission = chosen.and_then(|a| text(a, &["permission"]));
    let operation = format!("gcp:{}", permission.unwrap_or(method));
    let resource_path = resource_name
        .or_else(|| chosen.and_then(|a| text(a, &["resource"])))
        .unwrap_or(project);
    let resource = format!("//{service}/{}", resource_path.trim_start_matches('/'));
    let code = at(p, &["status", "code"])
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let outcome = match code {
        0 => "success",
        7 | 16 => "denied",
        _ => "failure",
    };
    let admin_write = log_name.ends_with("%2Factivity") || log_name.ends_with("/activity");
    let mutating = admin_write || !custody_model::is_read_operation(&operation);

    // Delegation hops: info[0] -> info[1] -> ... -> principalEmail.
    let mut out = Vec::new();
    let hops: Vec<Value> = auth
        .get("serviceAccountDelegationInfo")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(hop_principal).collect())
        .unwrap_or_default();
    let actor = util::principal(actor_id, kind_of(actor_id));
    for (i, from) in hops.iter().enumerate() {
        let to = hops.get(i + 1).cloned().unwrap_or_else(|| actor.clone());
        out.push(json!({
            "id": format!("{id}/hop-{}", i + 1),
            "type": "delegation",
            "time": time,
            "source": source,
            "chain": format!("gcp-entry:{id}"),
            "from": from,
            "to": to,
            "via": "impersonation",
            "attributes": {"service_name": service, "method_name": method},
        }));
    }

    let mut context = Map::new();
    context.insert("orchestrator".into(), "gcp".into());
    put(
        &mut context,
        "origin",
        text(p, &["requestMetadata", "callerIp"])
            .or_else(|| text(p, &["requestMetadata", "callerIP"])),
    );
    let mut attrs = Map::new();
    attrs.insert("service_name".into(), service.into());
    attrs.insert("method_name".into(), method.into());
    if !log_name.is_empty() {
        attrs.insert("log_name".into(), log_name.into());
    }
    copy(&mut attrs, "principal_subject", auth, &["principalSubject"]);
    copy(
        &mut attrs,
        "service_account_key",
        auth,
        &["serviceAccountKeyName"],
    );
    copy(
        &mut attrs,
        "third_party_principal",
        auth,
        &["thirdPartyPrincipal"],
    );
    copy(
        &mut attrs,
        "delegation_chain",
        p,
        &["metadata", "identityDelegationChain"],
    );
    copy(
        &mut attrs,
        "caller_network",
        p,
        &["requestMetadata", "callerNetwork"],
    );
    copy(
        &mut attrs,
        "user_agent",
        p,
        &["requestMetadata", "callerSuppliedUserAgent"],
    );
    copy(&mut attrs, "status", p, &["status", "message"]);
    copy(&mut attrs, "resource_type", r, &["resource", "type"]);
    copy(&mut attrs, "resource_labels", r, &["resource", "labels"]);
    copy(&mut attrs, "operation_id", r, &["operation", "id"]);
    if !authz.is_empty() {
        let checks: Vec<Value> = authz
            .iter()
            .map(|a| {
                json!({
                    "permission": text(*a, &["permission"]),
                    "resource": text(*a, &["resource"]),
                    "granted": a.get("granted").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect();
        attrs.insert("authorization_checks".into(), checks.into());
    }
    let mut action = json!({
        "id": id,
        "type": "action",
        "time": time,
        "source": source,
        "chain": format!("gcp-entry:{id}"),
        "actor": actor,
        "operation": operation,
        "resource": resource,
        "mutating": mutating,
        "context": Value::Object(context),
        "outcome": outcome,
        "attributes": Value::Object(attrs),
    });
    if let Some(obj) = action.as_object_mut() {
        put(obj, "credential", text(auth, &["serviceAccountKeyName"]));
        if !hops.is_empty() {
            obj.insert(
                "parents".into(),
                json!([format!("{id}/hop-{}", hops.len())]),
            );
        }
    }
    out.push(action);
    if mutating && outcome == "success" && admin_write {
        let verb = method.rsplit('.').next().unwrap_or(method);
        out.push(json!({
            "id": format!("{id}/effect"),
            "type": "effect",
            "time": time,
            "source": source,
            "chain": format!("gcp-entry:{id}"),
            "system": format!("gcp:{service}"),
            "resource": resource,
            "change": util::change_of(verb),
            "caused_by": id,
        }));
    }
    Ok(Conv::Events(out))
}

fn hop_principal(info: &Value) -> Option<Value> {
    if let Some(email) = text(info, &["firstPartyPrincipal", "principalEmail"]) {
        return Some(util::principal(email, kind_of(email)));
    }
    if let Some(subject) = text(info, &["principalSubject"]) {
        return Some(util::principal(subject, kind_of(subject)));
    }
    let claims = at(info, &["thirdPartyPrincipal", "thirdPartyClaims"])?;
    let who = text(claims, &["sub"])
        .or_else(|| text(claims, &["principal"]))
        .or_else(|| text(claims, &["email"]))?;
    Some(util::principal(who, kind_of(who)))
}

fn kind_of(who: &str) -> &'static str {
    if who.ends_with(".gserviceaccount.com")
        || who.starts_with("system:")
        || who.starts_with("serviceAccount:")
    {
        "service"
    } else if who.starts_with("principal://") || who.starts_with("principalSet://") {
        "workload"
    } else if who.contains('@') {
        "human"
    } else {
        "unknown"
    }
}
