//! Small helpers shared by the adapters: paths into JSON, timestamps, principals.

use custody_model::Timestamp;
use serde_json::{Map, Value};

use super::tape::Json;

/// What an adapter made of one record.
#[derive(Debug, PartialEq)]
pub(crate) enum Conv<'a> {
    /// These events (possibly none).
    Events(Vec<Value>),
    /// These events, as drafts (strings borrowed from the record).
    Drafts(Vec<super::draft::Obj<'a>>),
    /// Understood, but nothing to record; the reason is counted.
    Skip(String),
}

pub(crate) fn skip(reason: impl Into<String>) -> Result<Conv<'static>, String> {
    Ok(Conv::Skip(reason.into()))
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes)
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The value at `path` (object keys).
pub(crate) fn at<'a, J: Json<'a>>(value: J, path: &[&str]) -> Option<J> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// The non-empty string at `path`.
pub(crate) fn text<'a, J: Json<'a>>(value: J, path: &[&str]) -> Option<&'a str> {
    at(value, path)
        .and_then(J::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The string at `path`, or a number/bool at `path` written as text.
pub(crate) fn scalar(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The first string of the array at `path` (or the string itself).
pub(crate) fn first_text<'a, J: Json<'a>>(value: J, path: &[&str]) -> Option<&'a str> {
    let found = at(value, path)?;
    match (found.as_str(), found.items()) {
        (Some(s), _) => Some(s).filter(|s| !s.is_empty()),
        (None, Some(mut items)) => items.find_map(J::as_str).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// A principal object.
pub(crate) fn principal(id: &str, kind: &str) -> Value {
    super::draft::principal(id, kind).to_value()
}

/// A principal object with a display name (when it differs from the id).
pub(crate) fn named(id: &str, kind: &str, name: Option<&str>) -> Value {
    super::draft::named(id, kind, name).to_value()
}

/// Sets `key` when `value` is present.
pub(crate) fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// Copies `path` of `from` into `map[key]` when present and not null.
pub(crate) fn copy<'a, J: Json<'a>>(
    map: &mut Map<String, Value>,
    key: &str,
    from: J,
    path: &[&str],
) {
    if let Some(v) = at(from, path).filter(|v| !v.is_null()) {
        map.insert(key.to_owned(), v.to_value());
    }
}

/// A timestamp in RFC 3339 (UTC), from the forms logs use: RFC 3339, `YYYY-MM-DD
/// HH:MM:SS[.f]` (taken as UTC), `Mon D, YYYY, H:MM:SS AM` (CloudTrail's STS expiration),
/// or a number of seconds, milliseconds or nanoseconds since the epoch.
pub(crate) fn time_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => time_text(s.trim()),
        Value::Number(n) => {
            // Seconds, milliseconds, microseconds or nanoseconds, by magnitude.
            let nanos = match n.as_i64() {
                Some(i) => {
                    let i = i128::from(i);
                    match i.abs() {
                        a if a < 100_000_000_000 => i * 1_000_000_000,
                        a if a < 100_000_000_000_000 => i * 1_000_000,
                        a if a < 100_000_000_000_000_000 => i * 1_000,
                        _ => i,
                    }
                }
                None => {
                    let x = n.as_f64()?;
                    match x.abs() {
                        a if a < 1e11 => (x * 1e9) as i128,
                        a if a < 1e14 => (x * 1e6) as i128,
                        a if a < 1e17 => (x * 1e3) as i128,
                        _ => x as i128,
                    }
                }
            };
            Timestamp::from_unix_nanos(nanos).map(|t| t.to_string())
        }
        _ => None,
    }
}

fn time_text(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = Timestamp::parse(s) {
        return Some(t.to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 9 {
        let n: i64 = s.parse().ok()?;
        return time_of(&Value::from(n));
    }
    // `YYYY-MM-DD HH:MM:SS[.f]` with no zone: UTC.
    if s.len() >= 19 && s.as_bytes().get(10) == Some(&b' ') {
        let candidate = format!("{}T{}Z", s.get(..10)?, s.get(11..)?);
        if let Ok(t) = Timestamp::parse(&candidate) {
            return Some(t.to_string());
        }
    }
    // `Nov 30, 2024, 8:43:17 PM`
    month_day_year(s)
}

fn month_day_year(s: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let parts: Vec<&str> = s.split([',', ' ']).filter(|p| !p.is_empty()).collect();
    let [mon, day, year, clock, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let mon_lc = mon.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| mon_lc.starts_with(m))? + 1;
    let day: u32 = day.parse().ok()?;
    let year: u32 = year.parse().ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<u32>().ok());
    let (mut h, m, sec) = (
        hms.next()??,
        hms.next()??,
        hms.next().flatten().unwrap_or(0),
    );
    match rest.first().map(|r| r.to_ascii_uppercase()) {
        Some(ref p) if p == "PM" && h < 12 => h += 12,
        Some(ref p) if p == "AM" && h == 12 => h = 0,
        _ => {}
    }
    let candidate = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}Z");
    Timestamp::parse(&candidate).ok().map(|t| t.to_string())
}

/// The first present timestamp among `paths`.
pub(crate) fn time_at<'a, J: Json<'a>>(value: J, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|p| {
        at(value, p).and_then(|v| match v.as_str() {
            Some(s) => time_text(s.trim()),
            None => time_of(&v.to_value()),
        })
    })
}

/// What kind of change a verb (the start of an operation name) makes.
pub(crate) fn change_of(verb: &str) -> &'static str {
    let v = verb.to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| v.starts_with(p));
    if starts(&["rotate"]) {
        "rotated"
    } else if starts(&["revoke", "detach", "disassociate"]) {
        "revoked"
    } else if starts(&[
        "grant",
        "attach",
        "authorize",
        "associate",
        "share",
        "addpermission",
        "bind",
    ]) {
        "granted"
    } else if starts(&[
        "delete",
        "remove",
        "destroy",
        "terminate",
        "deregister",
        "purge",
    ]) {
        "deleted"
    } else if starts(&[
        "create", "run", "register", "import", "add", "upload", "copy", "allocate", "issue",
        "generate", "insert",
    ]) {
        "created"
    } else if starts(&[
        "put", "update", "modify", "set", "change", "patch", "enable", "disable", "start", "stop",
        "reboot", "replace", "reset", "tag", "untag", "write", "edit", "rename", "restore", "send",
        "invoke", "publish",
    ]) {
        "updated"
    } else {
        "other"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_the_forms_logs_use() {
        let t = |v: Value| time_of(&v);
        assert_eq!(
            t(json!("2023-07-10T11:45:00Z")).unwrap(),
            "2023-07-10T11:45:00Z"
        );
        assert_eq!(
            t(json!("2022-11-29 00:09:04.38")).unwrap(),
            "2022-11-29T00:09:04.38Z"
        );
        assert_eq!(
            t(json!("Nov 30, 2024, 8:43:17 PM")).unwrap(),
            "2024-11-30T20:43:17Z"
        );
        assert_eq!(
            t(json!("Jan 1, 2024, 12:05:00 AM")).unwrap(),
            "2024-01-01T00:05:00Z"
        );
        assert_eq!(
            t(json!(1621305118553u64)).unwrap(),
            "2021-05-18T02:31:58.553Z"
        );
        assert_eq!(t(json!(1544712660)).unwrap(), "2018-12-13T14:51:00Z");
        assert_eq!(
            t(json!("1544712660000000000")).unwrap(),
            "2018-12-13T14:51:00Z"
        );
        assert!(t(json!("yesterday")).is_none());
        assert!(t(json!(f64::MAX)).is_none());
    }

    #[test]
    fn verbs_become_changes() {
        assert_eq!(change_of("PutObject"), "updated");
        assert_eq!(change_of("CreateUser"), "created");
        assert_eq!(change_of("DeleteTrail"), "deleted");
        assert_eq!(change_of("AttachUserPolicy"), "granted");
        assert_eq!(change_of("RotateSecret"), "rotated");
    }
}
