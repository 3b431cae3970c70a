//! HashiCorp Vault audit log, file device (DESIGN §6; field table in `docs/formats.md`).
//!
//! Vault writes a `request` entry and a `response` entry for every call; only `response`
//! entries are read (they carry the outcome and what was issued). Values Vault HMACs
//! (`hmac-sha256:...`) stay as given; client tokens are never copied.
//! - a login (`auth/<mount>/login...`) or token creation (`auth/token/create...`) that
//!   issued `response.auth` → a `delegation` with the new token's accessor as credential id;
//! - a read of a secrets engine path → a `secret_access`;
//! - any other call → an `action` by the token's identity with its accessor; a successful
//!   write or delete → also an `effect` (`rotated` for rotation endpoints).

use serde_json::{json, Map, Value};

use super::util::{self, at, copy, put, skip, text, Conv};
use super::Options;

/// Converts one audit entry.
pub(crate) fn convert(r: &Value, options: &Options) -> Result<Conv<'static>, String> {
    let typ = text(r, &["type"]).unwrap_or("");
    if typ == "request" {
        return skip("request entry (the response entry records the call)");
    }
    if typ != "response" {
        return Err(format!("unknown entry type `{typ}`"));
    }
    let req = r.get("request").ok_or("missing `request`")?;
    let resp = r.get("response").unwrap_or(&Value::Null);
    let id = text(req, &["id"]).ok_or("missing `request.id`")?;
    let time = util::time_at(r, &[&["time"]]).ok_or("missing or unreadable `time`")?;
    let cluster = options.vault_cluster.as_deref().unwrap_or("vault");
    let system = format!("vault://{cluster}");
    let source = system.clone();
    let path = text(req, &["path"]).unwrap_or("");
    let operation = text(req, &["operation"]).unwrap_or("unknown");
    let mount_type = text(req, &["mount_type"])
        .or_else(|| text(resp, &["mount_type"]))
        .unwrap_or("");
    let auth = r.get("auth").unwrap_or(&Value::Null);
    let caller_accessor =
        text(auth, &["accessor"]).or_else(|| text(req, &["client_token_accessor"]));
    let caller = caller_of(auth);
    let error = text(r, &["error"]);
    let namespace = text(req, &["namespace", "path"]).filter(|p| !p.is_empty());
    let resource = match namespace {
        Some(ns) => format!("{system}/{}/{path}", ns.trim_end_matches('/')),
        None => format!("{system}/{path}"),
    };

    let mut attrs = Map::new();
    attrs.insert("path".into(), path.into());
    attrs.insert("operation".into(), operation.into());
    if !mount_type.is_empty() {
        attrs.insert("mount_type".into(), mount_type.into());
    }
    copy(&mut attrs, "mount_point", req, &["mount_point"]);
    copy(&mut attrs, "namespace", req, &["namespace", "path"]);
    copy(&mut attrs, "entity_id", auth, &["entity_id"]);
    copy(&mut attrs, "display_name", auth, &["display_name"]);
    copy(&mut attrs, "policies", auth, &["policies"]);
    copy(&mut attrs, "token_type", auth, &["token_type"]);
    copy(&mut attrs, "metadata", auth, &["metadata"]);
    put(&mut attrs, "token_accessor", caller_accessor);
    copy(&mut attrs, "error", r, &["error"]);
    let origin = text(req, &["remote_address"]);

    let issued = resp.get("auth").filter(|a| a.is_object());
    let is_login = path.starts_with("auth/") && path.contains("/login");
    let is_token_create = path.starts_with("auth/token/create");
    if let (Some(new), true, None) = (issued, is_login || is_token_create, error) {
        let accessor = text(new, &["accessor"]).ok_or("issued token has no `accessor`")?;
        let to = caller_of(new).unwrap_or_else(|| util::principal("unknown", "unknown"));
        let from = if is_login {
            // The identity that authenticated delegates to its own new token.
            to.clone()
        } else {
            caller
                .clone()
                .unwrap_or_else(|| util::principal("unknown", "unknown"))
        };
        let mut credential = Map::new();
        credential.insert("id".into(), accessor.into());
        credential.insert("kind".into(), "vault_token".into());
        credential.insert("issuer".into(), system.clone().into());
        credential.insert("not_before".into(), time.clone().into());
        let ttl = at(new, &["lease_duration"])
            .or_else(|| at(new, &["token_ttl"]))
            .and_then(Value::as_i64);
        if let (Some(ttl), Ok(start)) = (
            ttl.filter(|t| *t > 0),
            custody_model::Timestamp::parse(&time),
        ) {
            let end = start.unix_nanos() + i128::from(ttl) * 1_000_000_000;
            put(
                &mut credential,
                "expires",
                custody_model::Timestamp::from_unix_nanos(end).map(|t| t.to_string()),
            );
        }
        if let Some(uses) = at(new, &["num_uses"])
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
        {
            credential.insert("max_uses".into(), uses.into());
        }
        let mut d_attrs = Map::new();
        d_attrs.insert("path".into(), path.into());
        copy(&mut d_attrs, "policies", new, &["policies"]);
        copy(&mut d_attrs, "token_policies", new, &["token_policies"]);
        copy(
            &mut d_attrs,
            "identity_policies",
            new,
            &["identity_policies"],
        );
        copy(&mut d_attrs, "metadata", new, &["metadata"]);
        copy(&mut d_attrs, "entity_id", new, &["entity_id"]);
        copy(&mut d_attrs, "token_type", new, &["token_type"]);
        copy(&mut d_attrs, "orphan", new, &["orphan"]);
        put(&mut d_attrs, "origin", origin);
        let mut d = json!({
            "id": id,
            "type": "delegation",
            "time": time,
            "source": source,
            "from": from,
            "to": to,
            "via": "token_exchange",
            "credential": Value::Object(credential),
            "attributes": Value::Object(d_attrs),
        });
        if let Some(obj) = d.as_object_mut() {
            if !is_login {
                put(obj, "parent_credential", caller_accessor);
            }
        }
        return Ok(Conv::Events(vec![d]));
    }

    let Some(actor) = caller else {
        return skip(format!("{operation} {path} by an unauthenticated caller"));
    };
    let engine = match mount_type {
        "kv" | "generic" | "cubbyhole" => "secret",
        "" if path.starts_with("sys/") => "sys",
        "" => "unknown",
        other => other,
    };
    let is_secret_engine = !matches!(
        mount_type,
        "" | "system" | "token" | "identity" | "ns_system" | "ns_token"
    ) && !path.starts_with("sys/")
        && !path.starts_with("auth/");
    if operation == "read" && is_secret_engine && error.is_none() {
        let mut s = json!({
            "id": id,
            "type": "secret_access",
            "time": time,
            "source": source,
            "principal": actor,
            "manager": system,
            "secret": path,
            "attributes": Value::Object(attrs),
        });
        if let Some(obj) = s.as_object_mut() {
            // A dynamic secret comes with a lease: its id names what was obtained.
            put(obj, "credential", text(resp, &["secret", "lease_id"]));
        }
        return Ok(Conv::Events(vec![s]));
    }
    let mutating = matches!(operation, "create" | "update" | "delete" | "revoke");
    let outcome = match error {
        None => "success",
        Some(e) if e.contains("permission denied") => "denied",
        Some(_) => "failure",
    };
    let mut context = Map::new();
    context.insert("orchestrator".into(), "vault".into());
    put(&mut context, "origin", origin);
    let mut a = json!({
        "id": id,
        "type": "action",
        "time": time,
        "source": source,
        "actor": actor,
        "operation": format!("vault:{engine}.{operation}"),
        "resource": resource,
        "mutating": mutating,
        "context": Value::Object(context),
        "outcome": outcome,
        "attributes": Value::Object(attrs),
    });
    if let Some(obj) = a.as_object_mut() {
        put(obj, "credential", caller_accessor);
    }
    let mut out = vec![a];
    if mutating && outcome == "success" {
        let change = if path.contains("rotate") {
            "rotated"
        } else if operation == "delete" {
            "deleted"
        } else if operation == "revoke" || path.contains("/revoke") {
            "revoked"
        } else if operation == "create" {
            "created"
        } else {
            "updated"
        };
        let mut e = json!({
            "id": format!("{id}/effect"),
            "type": "effect",
            "time": time,
            "source": source,
            "system": system,
            "resource": resource,
            "change": change,
            "caused_by": id,
        });
        if let Some(obj) = e.as_object_mut() {
            put(obj, "record", scalar_version(resp));
        }
        out.push(e);
    }
    Ok(Conv::Events(out))
}

fn scalar_version(resp: &Value) -> Option<String> {
    util::scalar(resp, &["data", "version"]).map(|v| format!("version {v}"))
}

/// The identity behind a token's `auth` block.
fn caller_of(auth: &Value) -> Option<Value> {
    let meta = auth.get("metadata").unwrap_or(&Value::Null);
    let display = text(auth, &["display_name"]);
    let policies_root = auth
        .get("policies")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|x| x.as_str() == Some("root")));
    let human_name = text(meta, &["username"])
        .or_else(|| text(meta, &["email"]))
        .or_else(|| text(meta, &["name"]))
        .or_else(|| text(meta, &["user"]));
    if let Some(name) = human_name {
        return Some(util::named(name, "human", display));
    }
    if let Some(role) = text(meta, &["role_name"]).or_else(|| text(meta, &["role"])) {
        let sa = text(meta, &["service_account_name"]);
        let (id, kind) = match sa {
            Some(sa) => (
                format!(
                    "k8s-sa:{}/{sa}",
                    text(meta, &["service_account_namespace"]).unwrap_or("?")
                ),
                "workload",
            ),
            None => (format!("vault-role:{role}"), "service"),
        };
        return Some(util::named(&id, kind, display));
    }
    if let Some(entity) = text(auth, &["entity_id"]) {
        return Some(util::named(
            &format!("vault-entity:{entity}"),
            "unknown",
            display,
        ));
    }
    if policies_root || display == Some("root") {
        return Some(util::principal("vault-root", "unknown"));
    }
    display.map(|d| util::principal(&format!("vault-token:{d}"), "unknown"))
}
