//! Synthetic but realistic event streams for benchmarks and load tests
//! (`custody gen-events N`). Every 5 events form one complete chain: a human request, a
//! token exchange to an agent, a just-in-time grant derived from it, the agent's action
//! with the derived credential, and the effect it caused. Ids are unique per `seed`.

use std::fmt::Write as _;

/// Appends line `i` (0-based) of the synthetic stream to `out`, without a newline.
pub fn event_line(seed: u64, i: u64, out: &mut String) {
    let chain = i / 5;
    let secs = 1_780_000_000 + i; // mid-2026, one event a second
    let t = |offset: u64| format_time(secs + offset);
    let human = format!("user{}@example.com", chain % 997);
    let agent = format!("agent-{}", chain % 61);
    let resource = format!("vault://prod/secret/app-{}", chain % 10_007);
    let (tok, grant) = (format!("jti:{seed}-{chain}"), format!("acc:{seed}-{chain}"));
    let _ = match i % 5 {
        0 => write!(
            out,
            r#"{{"id":"req-{seed}-{chain}","type":"request","time":"{}","source":"servicedesk","chain":"c-{seed}-{chain}","initiator":{{"id":"{human}","kind":"human"}},"ticket":"SEC-{chain}","intent":"Rotate the credential of app-{}","target":"{resource}"}}"#,
            t(0),
            chain % 10_007
        ),
        1 => write!(
            out,
            r#"{{"id":"del-{seed}-{chain}","type":"delegation","time":"{}","source":"idp","chain":"c-{seed}-{chain}","request":"servicedesk#req-{seed}-{chain}","from":{{"id":"{human}","kind":"human"}},"to":{{"id":"{agent}","kind":"agent"}},"via":"token_exchange","credential":{{"id":"{tok}","kind":"oauth_token","issuer":"https://idp.example.com","expires":"{}"}},"scope":[{{"action":"vault:secret.*","resource":"{resource}"}}]}}"#,
            t(0),
            t(900)
        ),
        2 => write!(
            out,
            r#"{{"id":"jit-{seed}-{chain}","type":"delegation","time":"{}","source":"pam","chain":"c-{seed}-{chain}","request":"servicedesk#req-{seed}-{chain}","from":{{"id":"{agent}","kind":"agent"}},"to":{{"id":"{agent}","kind":"agent"}},"via":"jit_grant","parent_credential":"{tok}","credential":{{"id":"{grant}","kind":"vault_token","issuer":"vault://prod","expires":"{}","max_uses":1}},"scope":[{{"action":"vault:secret.rotate","resource":"{resource}"}}]}}"#,
            t(0),
            t(300)
        ),
        3 => write!(
            out,
            r#"{{"id":"act-{seed}-{chain}","type":"action","time":"{}","source":"agent-runtime","chain":"c-{seed}-{chain}","actor":{{"id":"{agent}","kind":"agent"}},"credential":"{grant}","operation":"vault:secret.rotate","resource":"{resource}","context":{{"orchestrator":"agent-runtime","run":"run-{chain}","tool":"vault_rotate","origin":"10.0.{}.{}"}},"outcome":"success","attributes":{{"model":"gpt-x","latency_ms":{}}}}}"#,
            t(0),
            chain % 256,
            chain % 200,
            chain % 1000
        ),
        _ => write!(
            out,
            r#"{{"id":"eff-{seed}-{chain}","type":"effect","time":"{}","source":"vault://prod","chain":"c-{seed}-{chain}","system":"vault://prod","resource":"{resource}","change":"rotated","record":"version {}","caused_by":"agent-runtime#act-{seed}-{chain}"}}"#,
            t(0),
            chain % 100
        ),
    };
}

/// `n` lines of NDJSON (with newlines).
pub fn ndjson(seed: u64, n: u64) -> String {
    let mut out = String::with_capacity(usize::try_from(n).unwrap_or(0).saturating_mul(480));
    for i in 0..n {
        event_line(seed, i, &mut out);
        out.push('\n');
    }
    out
}

fn format_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use custody_model::{Event, Redactor, Timestamp};

    #[test]
    fn every_line_is_a_valid_event() {
        let text = ndjson(7, 25);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Event::from_value(&v).unwrap();
        }
    }

    #[test]
    fn times_match_the_calendar() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        let t = Timestamp::parse(&format_time(1_780_000_000)).unwrap();
        assert_eq!(t.unix_seconds(), 1_780_000_000);
    }

    #[test]
    fn nothing_synthetic_looks_like_a_secret() {
        let text = ndjson(1, 50);
        let r = Redactor::new(b"k");
        assert_eq!(r.redact_text(&text), text);
    }
}
