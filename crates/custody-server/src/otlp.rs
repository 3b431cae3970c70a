//! OTLP/HTTP trace bodies: protobuf (`application/x-protobuf`, decoded with the generated
//! `opentelemetry-proto` messages) turned into the OTLP JSON encoding, which the OTel adapter
//! of `custody-ingest` already reads. One mapping for both encodings, so a span sent as
//! protobuf and the same span sent as JSON become the same event.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{json, Value};

/// Decodes an `ExportTraceServiceRequest` and writes it as OTLP JSON (hex ids, 64-bit
/// integers as strings, `camelCase` field names), as the OTLP specification defines.
pub fn protobuf_to_json(body: &[u8]) -> Result<Value, prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| json!({"attributes": attributes(&r.attributes)}))
                .unwrap_or_else(|| json!({"attributes": []}));
            let scope_spans: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let scope = ss
                        .scope
                        .as_ref()
                        .map(|s| json!({"name": s.name, "version": s.version}));
                    json!({
                        "scope": scope,
                        "spans": ss.spans.iter().map(span).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"resource": resource, "scopeSpans": scope_spans})
        })
        .collect();
    Ok(json!({ "resourceSpans": resource_spans }))
}

fn span(s: &Span) -> Value {
    let mut v = serde_json::Map::new();
    let fields = json!({
        "traceId": hex::encode(&s.trace_id),
        "spanId": hex::encode(&s.span_id),
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
        "attributes": attributes(&s.attributes),
    });
    if let Value::Object(f) = fields {
        v.extend(f);
    }
    if !s.parent_span_id.is_empty() {
        v.insert("parentSpanId".into(), json!(hex::encode(&s.parent_span_id)));
    }
    if let Some(status) = &s.status {
        v.insert(
            "status".into(),
            json!({"code": status.code, "message": status.message}),
        );
    }
    Value::Object(v)
}

fn attributes(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": any(kv.value.as_ref())}))
        .collect()
}

fn any(v: Option<&AnyValue>) -> Value {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        Some(V::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(V::DoubleValue(d)) => json!({"doubleValue": d}),
        Some(V::BytesValue(b)) => {
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
        Some(V::ArrayValue(a)) => {
            json!({"arrayValue": {"values": a.values.iter().map(|x| any(Some(x))).collect::<Vec<_>>()}})
        }
        Some(V::KvlistValue(l)) => json!({"kvlistValue": {"values": attributes(&l.values)}}),
        None => json!({}),
    }
}
