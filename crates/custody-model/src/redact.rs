//! Redaction of secrets before anything is stored or logged (DESIGN §7).
//!
//! Any value that looks like a secret is replaced by `fp:` + the first 16 bytes (32 hex
//! digits) of HMAC-SHA256 under the installation's fingerprint key. The fingerprint is
//! deterministic, so the same leaked token seen in two events still links them, but it cannot
//! be reversed or checked against a guess without the key. Two detectors run:
//! - by shape, anywhere in any string: JWTs, GitHub/GitLab/Slack/OpenAI/Google/npm/Vault
//!   tokens, PEM private keys, AWS secret access keys and session tokens, long high-entropy
//!   base64 runs, and the password in a `scheme://user:password@host` URL;
//! - by name, below the top level: the value of a field whose name says it holds a secret
//!   (`password`, `client_secret`, `token`, `secretAccessKey`, `authorization`, ...).
//!   The top level is exempt because the event format's own fields (`secret` in a
//!   `secret_access` is a path, not a secret) are known.

use std::borrow::Cow;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde_json::Value;
use sha2::Sha256;

/// The prefix of every fingerprint.
pub const FINGERPRINT_PREFIX: &str = "fp:";

/// Replaces secrets by keyed fingerprints.
#[derive(Clone)]
pub struct Redactor {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor { key: <hidden> }")
    }
}

fn shape_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            // PEM private keys, whole block (or up to the end of the text).
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            // JWT / JWS / JWE compact form.
            r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_.-]*",
            // GitHub tokens (classic and fine-grained), GitLab, Slack, OpenAI/Stripe, Google, npm.
            r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",
            r"|\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"|\bglpat-[A-Za-z0-9_-]{20,}",
            r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"|\b(?:sk|rk)[-_](?:live_|test_|proj-)?[A-Za-z0-9_-]{20,}",
            r"|\bAIza[0-9A-Za-z_-]{35}",
            r"|\bnpm_[A-Za-z0-9]{36}",
            // HashiCorp Vault service, batch and recovery tokens.
            r"|\bhv[sbr]\.[A-Za-z0-9_-]{20,}",
        ))
        .ok()
    })
    .as_ref()
}

/// Runs `f` with this thread's copy of [`shape_regex`]. A regex shared by threads serves
/// only its first user from its fast cache; every other thread takes a lock-protected pool
/// on each search. A clone has a pool of its own, so each preparing thread searches with its
/// own cache and no lock.
/// (While a thread's locals are being destroyed, the shared regex serves.)
fn with_shape_regex<R>(f: impl Fn(Option<&Regex>) -> R) -> R {
    thread_local! {
        static SHAPE: Option<Regex> = shape_regex().cloned();
    }
    SHAPE
        .try_with(|re| f(re.as_ref()))
        .unwrap_or_else(|_| f(shape_regex()))
}

fn url_password_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"://[^/\s:@]+:([^/\s@]+)@").ok())
        .as_ref()
}

/// Whether a run of base64 characters found by the shape regex is a secret: an AWS secret
/// access key (40 characters, mixed case and digits), or a long high-entropy blob (64+
/// characters, mixed case and digits, few slashes so that it is not a path).
fn base64_run_is_secret(run: &str) -> bool {
    let body = run.trim_end_matches('=');
    let has_upper = body.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = body.bytes().any(|b| b.is_ascii_lowercase());
    let has_digit = body.bytes().any(|b| b.is_ascii_digit());
    if !(has_upper && has_lower && has_digit) {
        return false;
    }
    let slashes = body.bytes().filter(|&b| b == b'/').count();
    match body.len() {
        40 => slashes <= 3,
        n if n >= 64 => slashes * 16 < n,
        _ => false,
    }
}

/// The base64 characters `A-Za-z0-9/+`, by byte.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time, where an index out of bounds is a build error"
)]
static BASE64: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
        b += 1;
    }
    table
};

/// Spans of runs of base64 characters (`A-Za-z0-9/+`, then up to two `=`) that are secrets
/// by [`base64_run_is_secret`] or start like an AWS session token.
fn secret_base64_runs(text: &str) -> Vec<(usize, usize)> {
    // Only runs of 32 or more count: shorter text has none.
    if text.len() < 32 {
        return Vec::new();
    }
    let bytes = text.as_bytes();
    let is_b64 = |b: u8| BASE64.get(usize::from(b)).copied().unwrap_or(false);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = bytes.get(i..).unwrap_or_default();
        // A run: its start, its length, then up to two `=`.
        let Some(skip) = rest.iter().position(|&b| is_b64(b)) else {
            break;
        };
        let start = i + skip;
        let len = rest
            .get(skip..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| is_b64(b))
            .count();
        i = start + len;
        let mut end = i;
        while end < i + 2 && bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        if len >= 32 {
            let run = text.get(start..end).unwrap_or_default();
            if base64_run_is_secret(run) || is_token_prefix(run) {
                spans.push((start, end));
            }
        }
        i = end;
    }
    spans
}

/// Whether the value of member `key`, in an object at `depth` (0: the event itself) whose
/// own value is `inherited` secret, is redacted whole by [`Redactor::redact_value`]: below
/// the top level, a member named like a secret, and everything inside a secret.
pub fn secret_by_name(key: &str, depth: usize, inherited: bool) -> bool {
    inherited || (depth > 0 && is_secret_field(key))
}

fn is_secret_field(name: &str) -> bool {
    // Field names are almost always short ASCII: fold them on the stack and match them (a
    // `match` on byte strings dispatches on the length first, so most names are rejected
    // without a comparison). Anything else takes the general path (a non-ASCII letter can
    // lowercase to an ASCII one: U+212A KELVIN SIGN is `k`).
    if name.is_ascii() {
        let mut buf = [0u8; 32];
        let mut n = 0;
        for b in name.bytes().filter(|b| *b != b'_' && *b != b'-') {
            let Some(slot) = buf.get_mut(n) else {
                return false; // longer than any secret field name
            };
            *slot = b.to_ascii_lowercase();
            n += 1;
        }
        return is_secret_name(buf.get(..n).unwrap_or_default());
    }
    let folded: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    is_secret_name(folded.as_bytes())
}

/// Whether a field name, lowercased and without `_` and `-`, names a secret.
fn is_secret_name(folded: &[u8]) -> bool {
    matches!(
        folded,
        b"password"
            | b"passwd"
            | b"pwd"
            | b"secret"
            | b"clientsecret"
            | b"secretkey"
            | b"secretaccesskey"
            | b"awssecretaccesskey"
            | b"privatekey"
            | b"apikey"
            | b"token"
            | b"accesstoken"
            | b"refreshtoken"
            | b"idtoken"
            | b"sessiontoken"
            | b"bearertoken"
            | b"authorization"
            | b"cookie"
            | b"setcookie"
            | b"passphrase"
            | b"credentials"
            | b"connectionstring"
    )
}

impl Redactor {
    /// A redactor under the installation's fingerprint key.
    pub fn new(key: &[u8]) -> Redactor {
        #[expect(clippy::expect_used, reason = "HMAC-SHA256 accepts keys of any length")]
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        Redactor { mac }
    }

    /// `fp:` + 32 hex digits of HMAC-SHA256(key, secret).
    pub fn fingerprint(&self, secret: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(secret.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(35);
        out.push_str(FINGERPRINT_PREFIX);
        out.push_str(&hex::encode(tag.get(..16).unwrap_or(&tag)));
        out
    }

    /// Replaces every secret-shaped part of `text` by its fingerprint.
    pub fn redact_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if text.len() < 20 {
            return Cow::Borrowed(text);
        }
        // The patterns are constants covered by the tests; should one ever fail to compile,
        // redact the whole text rather than nothing.
        // Token shapes (found with the regex's literal prefilter) and long base64 runs (found
        // by one pass over the bytes), merged in order; an overlap keeps the earlier match.
        let Some(mut spans) = with_shape_regex(|shape| {
            shape.map(|re| {
                re.find_iter(text)
                    .map(|m| (m.start(), m.end()))
                    .collect::<Vec<_>>()
            })
        }) else {
            return Cow::Owned(self.fingerprint(text));
        };
        spans.extend(secret_base64_runs(text));
        let text: Cow<'t, str> = if spans.is_empty() {
            Cow::Borrowed(text)
        } else {
            spans.sort_unstable();
            let mut buf = String::with_capacity(text.len());
            let mut last = 0;
            for (start, end) in spans {
                if start < last {
                    continue;
                }
                buf.push_str(text.get(last..start).unwrap_or_default());
                buf.push_str(&self.fingerprint(text.get(start..end).unwrap_or_default()));
                last = end;
            }
            buf.push_str(text.get(last..).unwrap_or_default());
            Cow::Owned(buf)
        };
        self.redact_url_passwords(text)
    }

    fn redact_url_passwords<'t>(&self, text: Cow<'t, str>) -> Cow<'t, str> {
        if !text.contains("://") || !text.contains('@') {
            return text;
        }
        let Some(url_password) = url_password_regex() else {
            return Cow::Owned(self.fingerprint(&text));
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in url_password.captures_iter(&text) {
            let Some(pass) = caps.get(1) else { continue };
            if pass.as_str().starts_with(FINGERPRINT_PREFIX) {
                continue;
            }
            out.push_str(text.get(last..pass.start()).unwrap_or_default());
            out.push_str(&self.fingerprint(pass.as_str()));
            last = pass.end();
        }
        if last == 0 {
            return text;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// Redacts a JSON value in place, by shape everywhere and by field name below the top
    /// level. Returns how many strings were changed.
    pub fn redact_value(&self, value: &mut Value) -> usize {
        self.redact_at(value, 0, false)
    }

    fn redact_at(&self, value: &mut Value, depth: usize, secret_field: bool) -> usize {
        match value {
            Value::String(s) => match self.redact_string(s, secret_field) {
                Some(new) => {
                    *s = new;
                    1
                }
                None => 0,
            },
            Value::Array(items) => items
                .iter_mut()
                .map(|v| self.redact_at(v, depth + 1, secret_field))
                .sum(),
            Value::Object(map) => {
                let mut changed = 0;
                for (key, v) in map.iter_mut() {
                    let by_name = secret_by_name(key, depth, secret_field);
                    changed += self.redact_at(v, depth + 1, by_name);
                }
                // A key can hold a secret too (e.g. a token used as a map key).
                if map.keys().any(|k| k.len() >= 20) {
                    let renamed: Vec<(String, String)> = map
                        .keys()
                        .filter_map(|k| self.redact_key(k).map(|new| (k.clone(), new)))
                        .collect();
                    for (old, new) in renamed {
                        if let Some(v) = map.remove(&old) {
                            map.insert(new, v);
                            changed += 1;
                        }
                    }
                }
                changed
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
    }

    /// What [`Redactor::redact_value`] makes of one string value, `None` when it stays as it
    /// is: its fingerprint when it is the value of a secret field (`by_name`, see
    /// [`secret_by_name`]), else [`Redactor::redact_text`] of it. For a caller that holds
    /// JSON in another form than a `Value` and must redact it exactly the same way.
    pub fn redact_string(&self, s: &str, by_name: bool) -> Option<String> {
        if by_name && !s.is_empty() && !s.starts_with(FINGERPRINT_PREFIX) {
            return Some(self.fingerprint(s));
        }
        match self.redact_text(s) {
            Cow::Borrowed(_) => None,
            Cow::Owned(new) => Some(new),
        }
    }

    /// What [`Redactor::redact_value`] renames an object key to, `None` when it stays.
    pub fn redact_key(&self, key: &str) -> Option<String> {
        if key.len() < 20 {
            return None;
        }
        match self.redact_text(key) {
            Cow::Borrowed(_) => None,
            Cow::Owned(new) => Some(new),
        }
    }
}

/// AWS session-token prefixes, which are long base64 runs worth catching even when short.
fn is_token_prefix(run: &str) -> bool {
    ["IQoJb3JpZ2lu", "FwoGZXIvYXdz", "AQoDYXdz"]
        .iter()
        .any(|p| run.starts_with(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_field_names_fold_case_and_separators() {
        for name in [
            "password",
            "Client_Secret",
            "API-KEY",
            "aws_secret_access_key",
            "SessionToken",
            "to\u{212A}en",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in [
            "pass",
            "secretary",
            "token_id",
            "",
            "a_very_long_field_name_that_is_no_secret",
        ] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    const GHP: &str = "ghp_R2d2C3poA1b2C3d4E5f6G7h8I9j0K1l2M3n4";
    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const PEM: &str =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq2\n-----END RSA PRIVATE KEY-----";

    fn redactor() -> Redactor {
        Redactor::new(b"test-key")
    }

    #[test]
    fn fingerprints_are_keyed_and_stable() {
        let a = redactor().fingerprint("s3cret");
        assert_eq!(a, redactor().fingerprint("s3cret"));
        assert_ne!(a, Redactor::new(b"other").fingerprint("s3cret"));
        assert!(a.starts_with("fp:") && a.len() == 35, "{a}");
    }

    #[test]
    fn secrets_by_shape_are_replaced_anywhere() {
        let r = redactor();
        for secret in [
            JWT,
            GHP,
            AWS_SECRET,
            PEM,
            "hvs.CAESIJlWm5ZzBz6KiYpNzYwL0Q1Mnd",
            "xoxb-123456789012-abcdefABCDEF",
        ] {
            let text = format!("Authorization: Bearer {secret} (seen)");
            let out = r.redact_text(&text);
            assert!(!out.contains(secret), "{secret} survived in {out}");
            assert!(out.contains("fp:"), "{out}");
            assert!(out.starts_with("Authorization: Bearer "), "{out}");
        }
    }

    #[test]
    fn ordinary_values_are_kept() {
        let r = redactor();
        for text in [
            "arn:aws:iam::123456789012:role/service-role/codebuild-orders-deploy-service-role",
            "vault://prod/secret/orders-db",
            "AKIAIOSFODNN7EXAMPLE",
            "0123456789abcdef0123456789abcdef01234567", // a git commit id: hex, lowercase
            "Rotate the orders-db password",
            "projects/my-project/serviceAccounts/deployer@my-project.iam.gserviceaccount.com",
            "2026-06-06T09:00:00Z",
        ] {
            assert_eq!(r.redact_text(text), text);
        }
    }

    #[test]
    fn url_passwords_are_replaced() {
        let out =
            redactor().redact_text("postgres://app:hunter2-very-secret@db.internal:5432/orders");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.starts_with("postgres://app:fp:"), "{out}");
    }

    #[test]
    fn values_are_redacted_in_place_by_shape_and_name() {
        let mut v = json!({
            "id": "a1", "type": "action", "source": "s",
            "credential": JWT,
            "secret": "prod/orders-db",
            "attributes": {"password": "short", "note": format!("key {GHP}"), "list": [AWS_SECRET, 1], "nested": {"client_secret": "abc"}},
        });
        let n = redactor().redact_value(&mut v);
        assert_eq!(n, 5);
        let text = v.to_string();
        for secret in [JWT, GHP, AWS_SECRET, "\"short\"", "\"abc\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The top-level `secret` of a secret_access is a path and stays.
        assert_eq!(v["secret"], "prod/orders-db");
        assert_eq!(v["credential"], redactor().fingerprint(JWT));
        // Idempotent: redacting again changes nothing.
        let mut again = v.clone();
        assert_eq!(redactor().redact_value(&mut again), 0);
        assert_eq!(again, v);
    }

    /// The scan for base64 runs as first written, a byte at a time: the oracle for the
    /// table-driven one.
    fn base64_runs_reference(text: &str) -> Vec<(usize, usize)> {
        if text.len() < 32 {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
        let mut spans = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes.get(i).copied().is_some_and(is_b64) {
                i += 1;
                continue;
            }
            let start = i;
            while bytes.get(i).copied().is_some_and(is_b64) {
                i += 1;
            }
            let mut end = i;
            while end < i + 2 && bytes.get(end) == Some(&b'=') {
                end += 1;
            }
            if i - start >= 32 {
                let run = text.get(start..end).unwrap_or_default();
                if base64_run_is_secret(run) || is_token_prefix(run) {
                    spans.push((start, end));
                }
            }
            i = end.max(i);
        }
        spans
    }

    proptest::proptest! {
        #[test]
        fn base64_runs_are_found_as_by_the_byte_loop(
            text in "([A-Za-z0-9/+]{0,70}[=]{0,3}[-:. /é]{0,2}){0,5}",
        ) {
            proptest::prop_assert_eq!(secret_base64_runs(&text), base64_runs_reference(&text));
        }

        #[test]
        fn secret_names_match_the_list(name in "[A-Za-z_-]{0,24}|\\PC{0,12}") {
            const NAMES: [&str; 22] = [
                "password", "passwd", "pwd", "secret", "clientsecret", "secretkey",
                "secretaccesskey", "awssecretaccesskey", "privatekey", "apikey", "token",
                "accesstoken", "refreshtoken", "idtoken", "sessiontoken", "bearertoken",
                "authorization", "cookie", "setcookie", "passphrase", "credentials",
                "connectionstring",
            ];
            let folded: String = name
                .chars()
                .filter(|c| *c != '_' && *c != '-')
                .flat_map(char::to_lowercase)
                .collect();
            proptest::prop_assert_eq!(is_secret_field(&name), NAMES.contains(&folded.as_str()));
        }
    }

    #[test]
    fn every_secret_name_is_known_in_any_case_and_separators() {
        for name in [
            "Client_Secret",
            "x-api-key",
            "SecretAccessKey",
            "Set-Cookie",
            "TOKEN",
        ] {
            assert_eq!(is_secret_field(name), name != "x-api-key", "{name}");
        }
        assert!(is_secret_field("api_key"));
        assert!(!is_secret_field("tokens"));
        assert!(!is_secret_field(""));
    }
}
