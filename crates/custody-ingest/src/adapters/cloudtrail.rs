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

use super::draft::{named, principal, Node, Obj};
use super::tape::Json;
use super::util::{self, at, first_text, skip, text, Conv};

const DELEGATING: [&str; 6] = [
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "GetFederationToken",
    "GetSessionToken",
];

/// Converts one CloudTrail record (a `&Value`, or a record read into a tape).
pub(crate) fn convert<'a, J: Json<'a>>(r: J, options: &super::Options) -> Result<Conv<'a>, String> {
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
                    Some(svc) => principal(svc, "service"),
                    None => principal("unknown", "unknown"),
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
            let mut credential = Obj::with_capacity(4);
            credential.put("id", new_key);
            credential.put("kind", "aws_sts_session");
            credential.put("issuer", format!("aws:sts:{account}"));
            credential.put_some(
                "expires",
                util::time_at(r, &[&["responseElements", "credentials", "expiration"]]),
            );
            let mut attrs = Obj::with_capacity(24);
            attrs.put("event_name", event_name);
            attrs.copy("role_arn", r, &["requestParameters", "roleArn"]);
            attrs.copy(
                "role_session_name",
                r,
                &["requestParameters", "roleSessionName"],
            );
            attrs.copy("federated_name", r, &["requestParameters", "name"]);
            attrs.copy(
                "duration_seconds",
                r,
                &["requestParameters", "durationSeconds"],
            );
            attrs.put_some(
                "source_identity",
                text(r, &["requestParameters", "sourceIdentity"])
                    .or_else(|| text(r, &["responseElements", "sourceIdentity"]))
                    .or_else(|| ut(&["sessionContext", "sourceIdentity"])),
            );
            attrs.copy(
                "transitive_tag_keys",
                r,
                &["requestParameters", "transitiveTagKeys"],
            );
            attrs.copy("session_tags", r, &["requestParameters", "tags"]);
            attrs.copy("principal_tags", r, &["requestParameters", "principalTags"]);
            attrs.copy(
                "assumed_role_id",
                r,
                &["responseElements", "assumedRoleUser", "assumedRoleId"],
            );
            if let Some(uid) = uid {
                attrs.copy("identity_provider", uid, &["identityProvider"]);
            }
            attrs.copy(
                "subject_from_web_identity",
                r,
                &["responseElements", "subjectFromWebIdentityToken"],
            );
            attrs.copy("provider", r, &["responseElements", "provider"]);
            attrs.copy("audience", r, &["responseElements", "audience"]);
            attrs.copy("source_ip", r, &["sourceIPAddress"]);
            attrs.put_some(
                "session_issuer",
                ut(&["sessionContext", "sessionIssuer", "arn"]),
            );
            if at(r, &["requestParameters", "policy"]).is_some() {
                attrs.put("session_policy", true);
            }
            let mut d = Obj::of([
                ("id", format!("{id}/delegation").into()),
                ("type", "delegation".into()),
                ("time", time.clone().into()),
                ("source", source.clone().into()),
                ("from", from),
                ("to", principal(to_arn, principal_kind_of_arn(to_arn))),
                ("via", via.into()),
                ("credential", credential.into()),
                ("attributes", attrs.into()),
            ]);
            // The scope of the role or user handed out, from an IAM snapshot when given.
            if let Some(iam) = &options.iam {
                d.put_some("scope", iam.scope_for(to_arn, ut(&["arn"])).map(Node::from));
            }
            // (A key never derives from itself: the AWS documentation's examples reuse one.)
            d.put_some("parent_credential", access_key.filter(|k| *k != new_key));
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
        let mut context = Obj::with_capacity(2);
        context.put("orchestrator", "aws");
        context.put_some("origin", text(r, &["sourceIPAddress"]));
        let mut attrs = Obj::with_capacity(24);
        attrs.put("event_source", event_source);
        attrs.copy("aws_region", r, &["awsRegion"]);
        attrs.copy("event_type", r, &["eventType"]);
        attrs.copy("event_category", r, &["eventCategory"]);
        attrs.copy("request_id", r, &["requestID"]);
        attrs.copy("user_agent", r, &["userAgent"]);
        attrs.copy("error_code", r, &["errorCode"]);
        attrs.copy("error_message", r, &["errorMessage"]);
        if let Some(uid) = uid {
            attrs.copy("identity_type", uid, &["type"]);
            attrs.copy("principal_id", uid, &["principalId"]);
            attrs.copy("invoked_by", uid, &["invokedBy"]);
        }
        attrs.put_some(
            "session_issuer",
            ut(&["sessionContext", "sessionIssuer", "arn"]),
        );
        attrs.put_some("source_identity", ut(&["sessionContext", "sourceIdentity"]));
        if let Some(uid) = uid {
            attrs.copy(
                "mfa_authenticated",
                uid,
                &["sessionContext", "attributes", "mfaAuthenticated"],
            );
            attrs.copy(
                "session_created",
                uid,
                &["sessionContext", "attributes", "creationDate"],
            );
            attrs.copy(
                "ec2_role_delivery",
                uid,
                &["sessionContext", "ec2RoleDelivery"],
            );
        }
        attrs.copy("vpc_endpoint_id", r, &["vpcEndpointId"]);
        for (key, name) in [
            ("userName", "target_user"),
            ("roleName", "target_role"),
            ("groupName", "target_group"),
        ] {
            attrs.copy(name, r, &["requestParameters", key]);
        }
        if let Some(items) = r.get("resources").and_then(J::items) {
            let arns: Vec<Node<'a>> = items
                .filter_map(|i| text(i, &["ARN"]))
                .map(Node::from)
                .collect();
            if arns.len() > 1 {
                attrs.put("resources", arns);
            }
        }
        let mut a = Obj::of([
            ("id", id.into()),
            ("type", "action".into()),
            ("time", time.clone().into()),
            ("source", source.clone().into()),
            ("actor", actor),
            ("operation", operation.into()),
            ("resource", resource.clone().into()),
            ("mutating", mutating.into()),
            ("context", context.into()),
            ("outcome", outcome.into()),
            ("attributes", attrs.into()),
        ]);
        a.put_some("credential", access_key);
        out.push(a);
        let api_call = matches!(text(r, &["eventType"]), None | Some("AwsApiCall"));
        if mutating && error.is_none() && api_call && !DELEGATING.contains(&event_name) {
            let mut e = Obj::of([
                ("id", format!("{id}/effect").into()),
                ("type", "effect".into()),
                ("time", time.clone().into()),
                ("source", source.clone().into()),
                ("system", format!("aws:{service}:{account}").into()),
                ("resource", resource.into()),
                ("change", util::change_of(event_name).into()),
                ("caused_by", id.into()),
            ]);
            e.put_some("record", text(r, &["requestID"]));
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
    Ok(Conv::Drafts(out))
}

/// The caller as a principal, when `userIdentity` names one.
fn actor_of<'a, J: Json<'a>>(uid: J) -> Option<Node<'a>> {
    let typ = text(uid, &["type"]).unwrap_or("");
    let arn = text(uid, &["arn"]);
    match typ {
        "Root" => Some(principal(arn.unwrap_or("root"), "human")),
        "SAMLUser" => {
            let who = text(uid, &["userName"]).or_else(|| text(uid, &["principalId"]))?;
            Some(principal(who, "human"))
        }
        "WebIdentityUser" => {
            let who = text(uid, &["userName"]).or_else(|| text(uid, &["principalId"]))?;
            let github = text(uid, &["identityProvider"])
                .is_some_and(|p| p.contains("token.actions.githubusercontent.com"));
            Some(principal(who, if github { "pipeline" } else { "unknown" }))
        }
        "AWSService" => text(uid, &["invokedBy"]).map(|s| principal(s, "service")),
        _ => {
            let id = arn.or_else(|| text(uid, &["principalId"]))?;
            Some(named(
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
