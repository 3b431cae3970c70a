//! An IAM policy snapshot (`aws iam get-account-authorization-details` output) as the scopes
//! of roles and users, so that CloudTrail delegations carry the scope of the role or user
//! they hand out and CloudTrail chains can be checked for overreach (DESIGN §5).
//!
//! What is read: `RoleDetailList[]` (`Arn`, `RoleName`, inline `RolePolicyList[].PolicyDocument`,
//! `AttachedManagedPolicies[].PolicyArn`), `UserDetailList[]` (the same with `UserPolicyList`,
//! plus `GroupList` names), `GroupDetailList[]` (`GroupName`, `GroupPolicyList`,
//! `AttachedManagedPolicies`) and `Policies[]` (`Arn`, the `PolicyVersionList` entry with
//! `IsDefaultVersion`). A policy document is a JSON object or, as the API returns it, a
//! URL-encoded JSON string.
//!
//! The scope is the union of the `Allow` statements that name `Action` (a string or a list)
//! and `Resource` (default `*`). Custody patterns are literals or prefixes, so an IAM
//! wildcard inside a pattern (`s3:Get*Object`, `?`) becomes the prefix before it: the scope is
//! never narrower than the policy. `NotAction` / `NotResource` ("all but") read as `*`, and
//! `Deny` statements and `Condition`s are not applied, so the scope is an
//! over-approximation: an overreach finding from it is certain, a missing one is not proof.
//! Permission boundaries, SCPs and session policies are not read.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

/// The scopes of an account's roles and users, by ARN and by account + name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamScopes {
    /// `arn:aws:iam::ACCOUNT:role/...` or `user/...` → permissions `(action, resource)`.
    by_arn: HashMap<String, BTreeSet<(String, String)>>,
    /// `(account, "role" | "user", name)` → the ARN (paths make ARNs unguessable from names).
    by_name: HashMap<(String, &'static str, String), String>,
}

fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// An IAM pattern as a Custody pattern: the part before the first wildcard, then `*`.
fn pattern(iam: &str) -> String {
    match iam.find(['*', '?']) {
        Some(i) => format!("{}*", iam.get(..i).unwrap_or_default()),
        None => iam.to_owned(),
    }
}

/// Percent-decodes an RFC 3986 string (`+` is left alone, as the IAM API encodes with `%20`).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A policy document as JSON: an object, or a (URL-encoded) JSON string.
fn document(v: Option<&Value>) -> Result<Option<Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => Ok(v.cloned()),
        Some(Value::String(s)) => {
            let text = if s.trim_start().starts_with('{') {
                s.clone()
            } else {
                percent_decode(s).ok_or("a policy document is not valid URL-encoded text")?
            };
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("a policy document is not JSON: {e}"))
        }
        Some(_) => Err("a policy document is neither an object nor a string".into()),
    }
}

/// The `(action, resource)` pairs a policy document allows.
fn allowed(doc: &Value) -> BTreeSet<(String, String)> {
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut out = BTreeSet::new();
    for s in statements {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        // "Everything but X" is read as everything: never narrower than the policy.
        let actions = if s.get("NotAction").is_some() {
            vec!["*".to_owned()]
        } else {
            texts(s.get("Action"))
        };
        let resources = match texts(s.get("Resource")) {
            _ if s.get("NotResource").is_some() => vec!["*".to_owned()],
            r if r.is_empty() => vec!["*".to_owned()],
            r => r,
        };
        for action in actions {
            for resource in &resources {
                out.insert((pattern(&action), pattern(resource)));
            }
        }
    }
    out
}

impl IamScopes {
    /// Reads a snapshot. The error names the part that is unreadable.
    pub fn parse(snapshot: &Value) -> Result<IamScopes, String> {
        let obj = snapshot
            .as_object()
            .filter(|o| {
                ["RoleDetailList", "UserDetailList", "GroupDetailList", "Policies"]
                    .iter()
                    .any(|k| o.contains_key(*k))
            })
            .ok_or("not an IAM authorization snapshot (no RoleDetailList, UserDetailList, GroupDetailList or Policies)")?;
        let list = |k: &str| {
            obj.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        // Managed policies: the default version's document.
        let mut managed: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        for p in list("Policies") {
            let Some(arn) = p.get("Arn").and_then(Value::as_str) else {
                continue;
            };
            let versions = p
                .get("PolicyVersionList")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let default = versions
                .iter()
                .find(|v| v.get("IsDefaultVersion").and_then(Value::as_bool) == Some(true));
            if let Some(doc) = document(default.and_then(|v| v.get("Document")))
                .map_err(|e| format!("policy {arn}: {e}"))?
            {
                managed.insert(arn.to_owned(), allowed(&doc));
            }
        }
        let perms_of = |detail: &Value, inline_key: &str, what: &str| {
            let mut perms = BTreeSet::new();
            for p in detail
                .get(inline_key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(doc) = document(p.get("PolicyDocument"))
                    .map_err(|e| format!("{what}: inline policy: {e}"))?
                {
                    perms.extend(allowed(&doc));
                }
            }
            for p in detail
                .get("AttachedManagedPolicies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(found) = p
                    .get("PolicyArn")
                    .and_then(Value::as_str)
                    .and_then(|a| managed.get(a))
                {
                    perms.extend(found.iter().cloned());
                }
            }
            Ok::<_, String>(perms)
        };
        let mut groups: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        for g in list("GroupDetailList") {
            let name = g
                .get("GroupName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            groups.insert(name.clone(), perms_of(&g, "GroupPolicyList", &name)?);
        }
        let mut scopes = IamScopes::default();
        for (key, inline, kind) in [
            ("RoleDetailList", "RolePolicyList", "role"),
            ("UserDetailList", "UserPolicyList", "user"),
        ] {
            for detail in list(key) {
                let Some(arn) = detail.get("Arn").and_then(Value::as_str) else {
                    continue;
                };
                let mut perms = perms_of(&detail, inline, arn)?;
                for group in texts(detail.get("GroupList")) {
                    if let Some(found) = groups.get(&group) {
                        perms.extend(found.iter().cloned());
                    }
                }
                let name_key = if kind == "role" {
                    "RoleName"
                } else {
                    "UserName"
                };
                if let (Some(name), Some(account)) = (
                    detail.get(name_key).and_then(Value::as_str),
                    arn.split(':').nth(4),
                ) {
                    scopes
                        .by_name
                        .insert((account.to_owned(), kind, name.to_owned()), arn.to_owned());
                }
                scopes.by_arn.insert(arn.to_owned(), perms);
            }
        }
        Ok(scopes)
    }

    /// Roles and users known.
    pub fn len(&self) -> usize {
        self.by_arn.len()
    }

    /// Whether the snapshot named no role or user.
    pub fn is_empty(&self) -> bool {
        self.by_arn.is_empty()
    }

    /// The scope (DESIGN §3 `scope` value) of what a delegation hands to `to_arn`: an
    /// assumed-role session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) gets its
    /// role's permissions, a federated user (`arn:aws:sts::ACCOUNT:federated-user/NAME`) or
    /// a session token of a user gets that user's (`caller` is the federating user's ARN).
    /// `None` when the snapshot does not know the role or user.
    pub fn scope_for(&self, to_arn: &str, caller: Option<&str>) -> Option<Value> {
        let mut parts = to_arn.splitn(6, ':');
        let (account, rest) = (parts.nth(4)?, parts.next()?);
        let arn = if let Some(session) = rest.strip_prefix("assumed-role/") {
            let role = session.split('/').next()?;
            self.by_name
                .get(&(account.to_owned(), "role", role.to_owned()))?
                .clone()
        } else if rest.starts_with("federated-user/") {
            caller?.to_owned()
        } else {
            to_arn.to_owned()
        };
        let perms = self.by_arn.get(&arn)?;
        let list: Vec<Value> = perms
            .iter()
            .map(|(a, r)| json!({"action": a, "resource": r}))
            .collect();
        Some(Value::Array(list))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn wildcards_become_prefixes_never_narrower() {
        assert_eq!(pattern("s3:GetObject"), "s3:GetObject");
        assert_eq!(pattern("s3:Get*"), "s3:Get*");
        assert_eq!(pattern("s3:Get*Object"), "s3:Get*");
        assert_eq!(pattern("arn:aws:s3:::bucket-?/*"), "arn:aws:s3:::bucket-*");
        assert_eq!(pattern("*"), "*");
    }

    #[test]
    fn url_encoded_documents_decode() {
        let doc = document(Some(&json!(
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%7D%5D%7D"
        )))
        .unwrap()
        .unwrap();
        let got = allowed(&doc);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("s3:GetObject".to_owned(), "arn:aws:s3:::b/*".to_owned())]
        );
        assert!(document(Some(&json!("%7B%zz"))).is_err());
    }

    #[test]
    fn deny_not_action_and_conditions_never_narrow() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        ]});
        let got: Vec<_> = allowed(&doc).into_iter().collect();
        assert_eq!(
            got,
            [
                ("*".to_owned(), "*".to_owned()),
                ("s3:*".to_owned(), "*".to_owned())
            ],
            "the deny is not applied and NotAction allows everything"
        );
    }
}
