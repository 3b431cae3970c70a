//! AWS CloudTrail records (DESIGN §6; field table in `docs/formats.md`).
//!
//! - `AssumeRole*`, `GetFederationToken`, `GetSessionToken` with
//!   `responseElements.credentials.accessKeyId` → a `delegation` (id `<eventID>/delegation`)
//!   from the caller (or the AWS service in `invokedBy`) to the assumed-role or federated
//!   ARN, with `parent_credential` = the caller's access key (role chaining).
//! - every call with `userIdentity.accessKeyId` → an `action` (id = `eventID`).
//! - a successful mutating call → also an `effect` (id `<eventID>/effect`).
//!
//! `sessionToken`, `secretAccessKey` and request/response bodies are never copied.

use serde_json::{Map, Value};

use super::tape::Json;
use super::util::{self, at, copy, first_text, put, skip, text, Conv};

const DELEGATING: [&str; 6] = [
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "GetFederationToken",
    "GetSessionToken",
];

/// Converts one CloudTrail record (a `&Value`, or a record read into a tape).
pub(crate) fn convert<'a, J: Json<'a>>(r: J, options: &super::Options) -> Result<Conv, String> {
    let id = text(r, &["eventID"]).ok_or("missing `eventID`")?;
    let event_name = text(r, &["eventName"]).ok_or("missing `eventName`")?;
    let time = util::time_at(r, &[&["eventTime"]]).ok_or("missing or unreadable `eventTime`")?;
    let account = text(r, &["recipientAccountId"])
        .or_else(|| text(r, &["userIdentity", "accountId"]))
        .unwrap_or("unknown");
    let source = format!("aws:cloudtrail:{account}");
    let event_source = text(r, &["eventSource"]).unwrap_or("unknown.amazonaws.com");
    let service = event_source.split('.').next().unwrap_or(event_source);
    let region = text(r, &["awsRegion"]).unwrap_or("");
    let uid = r.get("userIdentity");
    // `userIdentity` text at `path`.
    let ut = |path: &[&str]| uid.and_then(|u| text(u, path));
    let access_key = ut(&["accessKeyId"]);
    let error = text(r, &["errorCode"]);
    let mut out = Vec::new();

    let actor = uid.and_then(actor_of);
    let by_service = ut(&["type"]) == Some("AWSService");

    // The delegation an STS call made.
    if DELEGATING.contains(&event_name) && error.is_none() {
        if let Some(new_key) = text(r, &["responseElements", "credentials", "accessKeyId"]) {
            let from = match &actor {
                Some(a) => a.clone(),
                None => match ut(&["invokedBy"]).or_else(|| text(r, &["invokedBy"])) {
                    Some(svc) => util::principal(svc, "service"),
                    None => util::principal("unknown", "unknown"),
                },
            };
            let to_arn = text(r, &["responseElements", "assumedRoleUser", "arn"])
                .or_else(|| text(r, &["responseElements", "federatedUser", "arn"]))
                .or_else(|| {
                    (event_name == "GetSessionToken")
                        .then(|| ut(&["arn"]))
                        .flatten()
                })
                .unwrap_or("unknown");
            let via = if event_name.starts_with("AssumeRo") {
                "assume_role"
            } else {
                "token_exchange"
            };
            let mut credential = Map::new();
            credential.insert("id".into(), new_key.into());
            credential.insert("kind".into(), "aws_sts_session".into());
            credential.insert("issuer".into(), format!("aws:sts:{account}").into());
            put(
                &mut credential,
                "expires",
                util::time_at(r, &[&["responseElements", "credentials", "expiration"]]),
            );
            let mut attrs = Map::new();
            attrs.insert("event_name".into(), event_name.into());
            copy(&mut attrs, "role_arn", r, &["requestParameters", "roleArn"]);
            copy(
                &mut attrs,
                "role_session_name",
                r,
                &["requestParameters", "roleSessionName"],
            );
            copy(
                &mut attrs,
                "federated_name",
                r,
                &["requestParameters", "name"],
            );
            copy(
                &mut attrs,
                "duration_seconds",
                r,
                &["requestParameters", "durationSeconds"],
            );
            put(
                &mut attrs,
                "source_identity",
                text(r, &["requestParameters", "sourceIdentity"])
                    .or_else(|| text(r, &["responseElements", "sourceIdentity"]))
                    .or_else(|| ut(&["sessionContext", "sourceIdentity"])),
            );
            copy(
                &mut attrs,
                "transitive_tag_keys",
                r,
                &["requestParameters", "transitiveTagKeys"],
            );
            copy(
                &mut attrs,
                "session_tags",
                r,
                &["requestParameters", "tags"],
            );
            copy(
                &mut attrs,
                "principal_tags",
                r,
                &["requestParameters", "principalTags"],
            );
            copy(
                &mut attrs,
                "assumed_role_id",
                r,
                &["responseElements", "assumedRoleUser", "assumedRoleId"],
            );
            if let Some(uid) = uid {
                copy(&mut attrs, "identity_provider", uid, &["identityProvider"]);
            }
            copy(
                &mut attrs,
                "subject_from_web_identity",
                r,
                &["responseElements", "subjectFromWebIdentityToken"],
            );
            copy(&mut attrs, "provider", r, &["responseElements", "provider"]);
            copy(&mut attrs, "audience", r, &["responseElements", "audience"]);
            copy(&mut attrs, "source_ip", r, &["sourceIPAddress"]);
            put(
                &mut attrs,
                "session_issuer",
                ut(&["sessionContext", "sessionIssuer", "arn"]),
            );
            if at(r, &["requestParameters", "policy"]).is_some() {
                attrs.insert("session_policy".into(), true.into());
            }
            let mut d = util::object([
                ("id", format!("{id}/delegation").into()),
                ("type", "delegation".into()),
                ("time", time.clone().into()),
                ("source", source.clone().into()),
                ("from", from),
                ("to", util::principal(to_arn, principal_kind_of_arn(to_arn))),
                ("via", via.into()),
                ("credential", Value::Object(credential)),
                ("attributes", Value::Object(attrs)),
            ]);
            // The scope of the role or user handed out, from an IAM snapshot when given.
            if let (Some(obj), Some(iam)) = (d.as_object_mut(), &options.iam) {
                if let Some(scope) = iam.scope_for(to_arn, ut(&["arn"])) {
                    obj.insert("scope".into(), scope);
                }
            }
            // (A key never derives from itself: the AWS documentation's examples reuse one.)
            let parent = access_key.filter(|k| *k != new_key);
            if let (Some(obj), Some(parent)) = (d.as_object_mut(), parent) {
                obj.insert("parent_credential".into(), parent.into());
            }
            out.push(d);
        }
    }

    // The call itself, by a caller CloudTrail names (calls AWS services make on their own
    // behalf are not recorded as actions).
    if let (Some(actor), false) = (actor, by_service) {
        let operation = format!("{service}:{event_name}");
        let resource = resource_of(r, service, region, account);
        let outcome = match error {
            None => "success",
            Some(code) if is_denied(code) => "denied",
            Some(_) => "failure",
        };
        let read_only = r.get("readOnly").and_then(|v| {
            v.as_bool()
                .or_else(|| v.as_str().and_then(|s| s.parse::<bool>().ok()))
        });
        let mutating = match read_only {
            Some(ro) => !ro,
            None => !custody_model::is_read_operation(&operation),
        };
        let mut context = Map::new();
        context.insert("orchestrator".into(), "aws".into());
        put(&mut context, "origin", text(r, &["sourceIPAddress"]));
        let mut attrs = Map::new();
        attrs.insert("event_source".into(), event_source.into());
        copy(&mut attrs, "aws_region", r, &["awsRegion"]);
        copy(&mut attrs, "event_type", r, &["eventType"]);
        copy(&mut attrs, "event_category", r, &["eventCategory"]);
        copy(&mut attrs, "request_id", r, &["requestID"]);
        copy(&mut attrs, "user_agent", r, &["userAgent"]);
        copy(&mut attrs, "error_code", r, &["errorCode"]);
        copy(&mut attrs, "error_message", r, &["errorMessage"]);
        if let Some(uid) = uid {
            copy(&mut attrs, "identity_type", uid, &["type"]);
            copy(&mut attrs, "principal_id", uid, &["principalId"]);
            copy(&mut attrs, "invoked_by", uid, &["invokedBy"]);
        }
        put(
            &mut attrs,
            "session_issuer",
            ut(&["sessionContext", "sessionIssuer", "arn"]),
        );
        put(
            &mut attrs,
            "source_identity",
            ut(&["sessionContext", "sourceIdentity"]),
        );
        if let Some(uid) = uid {
            copy(
                &mut attrs,
                "mfa_authenticated",
                uid,
                &["sessionContext", "attributes", "mfaAuthenticated"],
            );
            copy(
                &mut attrs,
                "session_created",
                uid,
                &["sessionContext", "attributes", "creationDate"],
            );
            copy(
                &mut attrs,
                "ec2_role_delivery",
                uid,
                &["sessionContext", "ec2RoleDelivery"],
            );
        }
        copy(&mut attrs, "vpc_endpoint_id", r, &["vpcEndpointId"]);
        for (key, name) in [
            ("userName", "target_user"),
            ("roleName", "target_role"),
            ("groupName", "target_group"),
        ] {
            copy(&mut attrs, name, r, &["requestParameters", key]);
        }
        if let Some(items) = r.get("resources").and_then(J::items) {
            let arns: Vec<Value> = items
                .filter_map(|i| text(i, &["ARN"]))
                .map(Value::from)
                .collect();
            if arns.len() > 1 {
                attrs.insert("resources".into(), arns.into());
            }
        }
        let mut a = util::object([
            ("id", id.into()),
            ("type", "action".into()),
            ("time", time.clone().into()),
            ("source", source.clone().into()),
            ("actor", actor),
            ("operation", operation.into()),
            ("resource", resource.clone().into()),
            ("mutating", mutating.into()),
            ("context", Value::Object(context)),
            ("outcome", outcome.into()),
            ("attributes", Value::Object(attrs)),
        ]);
        if let Some(obj) = a.as_object_mut() {
            put(obj, "credential", access_key);
        }
        out.push(a);
        let api_call = matches!(text(r, &["eventType"]), None | Some("AwsApiCall"));
        if mutating && error.is_none() && api_call && !DELEGATING.contains(&event_name) {
            let mut e = util::object([
                ("id", format!("{id}/effect").into()),
                ("type", "effect".into()),
                ("time", time.clone().into()),
                ("source", source.clone().into()),
                ("system", format!("aws:{service}:{account}").into()),
                ("resource", resource.into()),
                ("change", util::change_of(event_name).into()),
                ("caused_by", id.into()),
            ]);
            if let Some(obj) = e.as_object_mut() {
                put(obj, "record", text(r, &["requestID"]));
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        let why = if by_service {
            format!("{event_name} made by an AWS service on its own behalf")
        } else {
            format!("{event_name}: caller identity names no ARN or principal")
        };
        return skip(why);
    }
    Ok(Conv::Events(out))
}

/// The caller as a principal, when `userIdentity` names one.
fn actor_of<'a, J: Json<'a>>(uid: J) -> Option<Value> {
    let typ = text(uid, &["type"]).unwrap_or("");
    let arn = text(uid, &["arn"]);
    match typ {
        "Root" => Some(util::principal(arn.unwrap_or("root"), "human")),
        "SAMLUser" => {
            let who = text(uid, &["userName"]).or_else(|| text(uid, &["principalId"]))?;
            Some(util::principal(who, "human"))
        }
        "WebIdentityUser" => {
            let who = text(uid, &["userName"]).or_else(|| text(uid, &["principalId"]))?;
            let github = text(uid, &["identityProvider"])
                .is_some_and(|p| p.contains("token.actions.githubusercontent.com"));
            Some(util::principal(
                who,
                if github { "pipeline" } else { "unknown" },
            ))
        }
        "AWSService" => text(uid, &["invokedBy"]).map(|s| util::principal(s, "service")),
        _ => {
            let id = arn.or_else(|| text(uid, &["principalId"]))?;
            Some(util::named(
                id,
                principal_kind_of_arn(id),
                text(uid, &["userName"]),
            ))
        }
    }
}

/// What an ARN says about who it is: roles sessions named after an instance are workloads.
fn principal_kind_of_arn(arn: &str) -> &'static str {
    if arn.ends_with(":root") {
        return "human";
    }
    if let Some(rest) = arn.split(":assumed-role/").nth(1) {
        let session = rest.rsplit('/').next().unwrap_or("");
        if session.starts_with("i-") {
            return "workload";
        }
    }
    "unknown"
}

fn is_denied(code: &str) -> bool {
    code.starts_with("AccessDenied")
        || code.contains("UnauthorizedOperation")
        || code == "UnauthorizedAccess"
        || code == "InvalidClientTokenId"
        || code == "ExpiredToken"
        || code == "SignatureDoesNotMatch"
}

/// The resource a call touched: the first `resources[].ARN`, else one named in the
/// request, else the service in the region and account.
fn resource_of<'a, J: Json<'a>>(r: J, service: &str, region: &str, account: &str) -> String {
    if let Some(arn) = r
        .get("resources")
        .and_then(J::items)
        .and_then(|mut items| items.find_map(|i| text(i, &["ARN"])))
    {
        return arn.to_owned();
    }
    let Some(p) = r.get("requestParameters") else {
        return service_arn(service, region, account);
    };
    if let Some(bucket) = text(p, &["bucketName"]) {
        return match text(p, &["key"]) {
            Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
    }
    for key in [
        "roleArn",
        "policyArn",
        "secretId",
        "functionName",
        "arn",
        "resourceArn",
    ] {
        if let Some(v) = text(p, &[key]) {
            if v.starts_with("arn:") {
                return v.to_owned();
            }
        }
    }
    let region = region_of(service, region);
    let named = [
        ("userName", "user/"),
        ("roleName", "role/"),
        ("groupName", "group/"),
        ("policyName", "policy/"),
        ("name", ""),
        ("instanceId", "instance/"),
        ("functionName", "function:"),
        ("secretId", "secret:"),
        ("trailName", "trail/"),
    ];
    for (key, prefix) in named {
        if let Some(v) = text(p, &[key]) {
            return format!("arn:aws:{service}:{region}:{account}:{prefix}{v}");
        }
    }
    if let Some(first) = first_text(p, &["instancesSet", "items"]) {
        return format!("arn:aws:{service}:{region}:{account}:{first}");
    }
    if let Some(first) = at(p, &["instancesSet", "items"])
        .and_then(J::items)
        .and_then(|mut items| items.find_map(|i| text(i, &["instanceId"])))
    {
        return format!("arn:aws:ec2:{region}:{account}:instance/{first}");
    }
    service_arn(service, region, account)
}

/// IAM and the other global services have no region in their ARNs.
fn region_of<'r>(service: &str, region: &'r str) -> &'r str {
    if matches!(service, "iam" | "organizations" | "route53" | "cloudfront") {
        ""
    } else {
        region
    }
}

/// The ARN of a service in a region and account.
fn service_arn(service: &str, region: &str, account: &str) -> String {
    let region = region_of(service, region);
    format!("arn:aws:{service}:{region}:{account}")
}
