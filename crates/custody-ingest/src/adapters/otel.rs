//! OpenTelemetry traces with the GenAI semantic conventions (DESIGN §6; field table in
//! `docs/formats.md`).
//!
//! Reads OTLP JSON (`resourceSpans[].scopeSpans[].spans[]`, attributes as `AnyValue`) and
//! the JSON dump of Python SDK spans (`{"spans": [{"context": {"trace_id", "span_id"},
//! "parent", "attributes", ...}]}`, as written by any-agent). Per span:
//! - `gen_ai.operation.name` = `invoke_agent` with `user.id` / `enduser.id` → a `request`
//!   by that human;
//! - `execute_tool`, or any span with `custody.operation` → an `action` by the agent
//!   (`gen_ai.agent.id`, else `gen_ai.agent.name`, on the span or its nearest agent span);
//! - other spans (model calls, ...) carry nothing to record.
//!
//! `chain` = the trace id, `parents` = the nearest ancestor span that became an event.
//! `custody.*` attributes name what OTel does not: `custody.credential.id`,
//! `custody.operation`, `custody.resource`, `custody.request`, `custody.ticket`,
//! `custody.intent`, `custody.mutating`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::util::{self, skip, Conv};

struct Span {
    trace: String,
    id: String,
    parent: Option<String>,
    name: String,
    time: Option<String>,
    status: Option<&'static str>,
    service: String,
    attrs: Map<String, Value>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn op(&self) -> Option<&str> {
        self.attr("gen_ai.operation.name").or_else(|| {
            ["invoke_agent", "execute_tool"]
                .into_iter()
                .find(|p| self.name.starts_with(p))
        })
    }

    fn source(&self) -> String {
        format!("otel:{}", self.service)
    }

    fn agent(&self) -> Option<&str> {
        self.attr("gen_ai.agent.id")
            .or_else(|| self.attr("gen_ai.agent.name"))
    }

    fn user(&self) -> Option<&str> {
        self.attr("user.id")
            .or_else(|| self.attr("enduser.id"))
            .or_else(|| self.attr("custody.user.id"))
    }
}

/// Converts one OTLP JSON export (or span dump) into events.
pub(crate) fn convert(r: &Value) -> Result<Conv<'static>, String> {
    let spans = if let Some(rs) = r.get("resourceSpans") {
        otlp_spans(rs)?
    } else if let Some(list) = r.get("spans").and_then(Value::as_array) {
        sdk_spans(list)?
    } else {
        return Err("neither `resourceSpans` nor `spans`".into());
    };
    if spans.is_empty() {
        return skip("no spans");
    }
    let by_id: HashMap<(&str, &str), &Span> = spans
        .iter()
        .map(|s| ((s.trace.as_str(), s.id.as_str()), s))
        .collect();
    let ancestors = |s: &Span| -> Vec<&Span> {
        let mut out = Vec::new();
        let mut cur = s.parent.as_deref();
        while let Some(pid) = cur {
            match by_id.get(&(s.trace.as_str(), pid)) {
                Some(p) if out.len() < 256 => {
                    out.push(*p);
                    cur = p.parent.as_deref();
                }
                _ => break,
            }
        }
        out
    };
    let emits = |s: &Span| -> bool {
        match s.op() {
            Some("invoke_agent") => s.user().is_some(),
            Some("execute_tool") => true,
            _ => s.attr("custody.operation").is_some(),
        }
    };

    let mut out = Vec::new();
    for s in &spans {
        if !emits(s) {
            continue;
        }
        let time = s
            .time
            .clone()
            .ok_or_else(|| format!("span {} has no readable start time", s.id))?;
        let up = ancestors(s);
        let parent_event = up
            .iter()
            .find(|p| emits(p))
            .map(|p| format!("{}#{}", p.source(), p.id));
        let agent_span = up.iter().find(|p| p.op() == Some("invoke_agent"));
        let mut attrs = Map::new();
        attrs.insert("span_name".into(), s.name.clone().into());
        for (key, name) in [
            ("gen_ai.agent.name", "agent_name"),
            ("gen_ai.conversation.id", "conversation_id"),
            ("gen_ai.tool.call.id", "tool_call_id"),
            ("gen_ai.tool.type", "tool_type"),
            ("gen_ai.tool.description", "tool_description"),
            ("gen_ai.request.model", "model"),
            ("gen_ai.system", "system"),
            ("gen_ai.provider.name", "provider"),
        ] {
            if let Some(v) = s.attrs.get(key) {
                attrs.insert(name.into(), v.clone());
            }
        }
        let mut event = if s.op() == Some("invoke_agent") {
            let user = s.user().unwrap_or("unknown");
            let agent = s.agent().unwrap_or("agent");
            json!({
                "id": s.id,
                "type": "request",
                "time": time,
                "source": s.source(),
                "chain": s.trace,
                "initiator": util::principal(user, "human"),
                "intent": s.attr("custody.intent").map(str::to_owned).unwrap_or_else(|| format!("invoke agent {agent}")),
                "attributes": Value::Object(attrs),
            })
        } else {
            let tool = s.attr("gen_ai.tool.name");
            let actor = s
                .agent()
                .or_else(|| agent_span.and_then(|a| a.agent()))
                .map(str::to_owned)
                .unwrap_or_else(|| s.service.clone());
            let operation = s
                .attr("custody.operation")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("tool:{}", tool.unwrap_or(&s.name)));
            let resource = s
                .attr("custody.resource")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("tool:{}", tool.unwrap_or(&s.name)));
            let mut context = Map::new();
            context.insert("orchestrator".into(), s.service.clone().into());
            context.insert(
                "run".into(),
                s.attr("gen_ai.conversation.id").unwrap_or(&s.trace).into(),
            );
            util::put(&mut context, "tool", tool);
            util::put(&mut context, "step", s.attr("gen_ai.tool.call.id"));
            let mut a = json!({
                "id": s.id,
                "type": "action",
                "time": time,
                "source": s.source(),
                "chain": s.trace,
                "actor": util::principal(&actor, "agent"),
                "operation": operation,
                "resource": resource,
                "context": Value::Object(context),
                "attributes": Value::Object(attrs),
            });
            if let Some(obj) = a.as_object_mut() {
                util::put(obj, "credential", s.attr("custody.credential.id"));
                util::put(obj, "outcome", s.status);
                if let Some(m) = s.attrs.get("custody.mutating").and_then(Value::as_bool) {
                    obj.insert("mutating".into(), m.into());
                }
                let params = params_of(s);
                if !params.is_empty() {
                    obj.insert("params".into(), Value::Object(params));
                }
                let request = s.attr("custody.request").map(str::to_owned).or_else(|| {
                    agent_span
                        .filter(|a| a.user().is_some())
                        .map(|a| format!("{}#{}", a.source(), a.id))
                });
                util::put(obj, "request", request);
            }
            a
        };
        if let Some(obj) = event.as_object_mut() {
            if s.op() == Some("invoke_agent") {
                util::put(obj, "ticket", s.attr("custody.ticket"));
                util::put(obj, "target", s.attr("custody.resource"));
            }
            if let Some(p) = parent_event {
                obj.insert("parents".into(), json!([p]));
            }
        }
        out.push(event);
    }
    if out.is_empty() {
        return skip("no agent, tool or custody.* spans");
    }
    Ok(Conv::Events(out))
}

/// Tool arguments (a JSON object in `gen_ai.tool.call.arguments` or `gen_ai.tool.args`):
/// the numbers and strings, for comparison against scope limits.
fn params_of(s: &Span) -> Map<String, Value> {
    let raw = s
        .attrs
        .get("gen_ai.tool.call.arguments")
        .or_else(|| s.attrs.get("gen_ai.tool.args"));
    let parsed = match raw {
        Some(Value::String(text)) => serde_json::from_str::<Value>(text).ok(),
        Some(v @ Value::Object(_)) => Some(v.clone()),
        _ => None,
    };
    let mut out = Map::new();
    if let Some(Value::Object(obj)) = parsed {
        for (k, v) in obj {
            if v.is_number() || v.is_string() {
                out.insert(k, v);
            }
        }
    }
    out
}

fn otlp_spans(rs: &Value) -> Result<Vec<Span>, String> {
    let list = rs.as_array().ok_or("`resourceSpans` is not an array")?;
    let mut out = Vec::new();
    for resource in list {
        let res_attrs = any_attrs(util::at(resource, &["resource", "attributes"]));
        let service = res_attrs
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or("unknown_service")
            .to_owned();
        let scopes = resource
            .get("scopeSpans")
            .or_else(|| resource.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array);
        for scope in scopes.into_iter().flatten() {
            for span in scope
                .get("spans")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let trace = util::text(span, &["traceId"]).ok_or("span without `traceId`")?;
                let id = util::text(span, &["spanId"]).ok_or("span without `spanId`")?;
                let code = span.get("status").and_then(|s| s.get("code"));
                let status = match code {
                    Some(Value::Number(n)) if n.as_u64() == Some(1) => Some("success"),
                    Some(Value::Number(n)) if n.as_u64() == Some(2) => Some("failure"),
                    Some(Value::String(s)) if s == "STATUS_CODE_OK" => Some("success"),
                    Some(Value::String(s)) if s == "STATUS_CODE_ERROR" => Some("failure"),
                    _ => None,
                };
                out.push(Span {
                    trace: trace.to_ascii_lowercase(),
                    id: id.to_ascii_lowercase(),
                    parent: util::text(span, &["parentSpanId"]).map(str::to_ascii_lowercase),
                    name: util::text(span, &["name"]).unwrap_or("").to_owned(),
                    time: span.get("startTimeUnixNano").and_then(util::time_of),
                    status,
                    service: service.clone(),
                    attrs: any_attrs(span.get("attributes")),
                });
            }
        }
    }
    Ok(out)
}

/// OTLP `KeyValue` list → a plain map (`AnyValue` unwrapped).
fn any_attrs(list: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in list.and_then(Value::as_array).into_iter().flatten() {
        if let (Some(k), Some(v)) = (util::text(kv, &["key"]), kv.get("value")) {
            out.insert(k.to_owned(), any_value(v, 0));
        }
    }
    out
}

fn any_value(v: &Value, depth: u32) -> Value {
    if depth > 32 {
        return Value::Null;
    }
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = v.get("intValue") {
        return match i {
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| i.clone()),
            other => other.clone(),
        };
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = v.get("bytesValue") {
        return b.clone();
    }
    if let Some(values) = util::at(v, &["arrayValue", "values"]).and_then(Value::as_array) {
        return values.iter().map(|x| any_value(x, depth + 1)).collect();
    }
    if let Some(values) = util::at(v, &["kvlistValue", "values"]).and_then(Value::as_array) {
        let mut m = Map::new();
        for kv in values {
            if let (Some(k), Some(x)) = (util::text(kv, &["key"]), kv.get("value")) {
                m.insert(k.to_owned(), any_value(x, depth + 1));
            }
        }
        return Value::Object(m);
    }
    Value::Null
}

/// Ids in the SDK dump are integers: write them as OTLP hex. A 128-bit trace id beyond
/// what a JSON number keeps exactly is rounded the same way for every span of the trace.
fn hex_id(v: Option<&Value>, width: usize) -> Option<String> {
    match v? {
        Value::Number(n) => match n.as_u64() {
            Some(u) => Some(format!("{u:0width$x}")),
            None => {
                let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?;
                Some(format!("{:0width$x}", f as u128))
            }
        },
        Value::String(s) if !s.is_empty() => Some(s.trim_start_matches("0x").to_ascii_lowercase()),
        _ => None,
    }
}

fn sdk_spans(list: &[Value]) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    for span in list {
        let ctx = span.get("context").ok_or("span without `context`")?;
        let trace = hex_id(ctx.get("trace_id"), 32).ok_or("span without `context.trace_id`")?;
        let id = hex_id(ctx.get("span_id"), 16).ok_or("span without `context.span_id`")?;
        let parent = span
            .get("parent")
            .filter(|p| p.is_object())
            .and_then(|p| hex_id(p.get("span_id"), 16));
        let status = match util::text(span, &["status", "status_code"])
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("ok") => Some("success"),
            Some("error") => Some("failure"),
            _ => None,
        };
        let attrs = span
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let service = util::text(span, &["resource", "attributes", "service.name"])
            .unwrap_or("unknown_service")
            .to_owned();
        out.push(Span {
            trace,
            id,
            parent,
            name: util::text(span, &["name"]).unwrap_or("").to_owned(),
            time: span.get("start_time").and_then(util::time_of),
            status,
            service,
            attrs,
        });
    }
    Ok(out)
}
