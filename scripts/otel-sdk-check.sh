#!/usr/bin/env bash
# Sends agent spans to `custody serve` with the real OpenTelemetry Python SDK and its OTLP/HTTP
# protobuf exporter (PyPI opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http),
# unmodified, then checks what Custody made of them: a request by the human, an action by
# the agent with the span's credential, one chain, and a log that verifies.
#
#   scripts/otel-sdk-check.sh [path/to/custody]     # default target/debug/custody
#
# The SDK goes into a virtualenv at ${OTEL_VENV:-/tmp/custody-otel-venv} (reused when present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CUSTODY=${1:-target/debug/custody}
VENV=${OTEL_VENV:-/tmp/custody-otel-venv}
log() { echo "otel-sdk-check: $*" >&2; }

if ! "$VENV/bin/python" -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http" 2>/dev/null; then
    log "installing opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "opentelemetry-sdk>=1.25" "opentelemetry-exporter-otlp-proto-http>=1.25"
fi
"$VENV/bin/python" -c "import importlib.metadata as m; print('otel-sdk-check: opentelemetry-sdk', m.version('opentelemetry-sdk'), 'exporter', m.version('opentelemetry-exporter-otlp-proto-http'))" >&2

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$CUSTODY" --db "$work/otel.db" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$work/serve.log" | sed 's|listening on http://||' || true)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log" >&2; log "the server did not start"; exit 1; }
log "custody serve on $addr"

"$VENV/bin/python" - "$addr" <<'PY'
import json, sys, urllib.parse, urllib.request
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

addr = sys.argv[1]
results = []
class Recording(OTLPSpanExporter):
    """The stock exporter; only its results are kept, to check every export succeeded."""
    def export(self, spans):
        result = super().export(spans)
        results.append(result)
        return result
exporter = Recording(endpoint=f"http://{addr}/v1/traces")
provider = TracerProvider(resource=Resource.create({"service.name": "support-copilot"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("otel-sdk-check")

with tracer.start_as_current_span("invoke_agent support-copilot") as agent:
    agent.set_attribute("gen_ai.operation.name", "invoke_agent")
    agent.set_attribute("gen_ai.agent.id", "support-copilot")
    agent.set_attribute("enduser.id", "dana@example.com")
    with tracer.start_as_current_span("execute_tool issue_refund") as tool:
        tool.set_attribute("gen_ai.operation.name", "execute_tool")
        tool.set_attribute("gen_ai.tool.name", "issue_refund")
        tool.set_attribute("gen_ai.tool.call.id", "call-otel-1")
        tool.set_attribute("custody.operation", "crm:refund.create")
        tool.set_attribute("custody.resource", "crm://orders/9001")
        tool.set_attribute("custody.credential.id", "otel-sdk-token-1")
provider.shutdown()
assert results and all(r == SpanExportResult.SUCCESS for r in results), results
print(f"otel-sdk-check: exporter sent {len(results)} span batches: {[r.name for r in results]}", file=sys.stderr)

with urllib.request.urlopen(f"http://{addr}/v1/blast-radius?credential=otel-sdk-token-1") as r:
    radius = json.load(r)
assert len(radius["actions"]) == 1, radius
assert "support-copilot" in radius["principals"], radius
action = radius["actions"][0]
with urllib.request.urlopen(f"http://{addr}/v1/chains/" + urllib.parse.quote(action, safe="")) as r:
    chain = json.load(r)
initiators = [i.get("id") for i in chain["initiators"]]
assert "dana@example.com" in initiators, chain
kinds = {e["type"] for e in chain["events"]}
assert kinds == {"request", "action"}, chain
explicit = [e for e in chain["edges"] if not e["inferred"]]
assert explicit, f"the tool span is linked to the agent span explicitly: {chain}"
print("otel-sdk-check: action", action, "for", initiators, "complete:", chain["complete"], file=sys.stderr)
PY

kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
"$CUSTODY" --db "$work/otel.db" verify >/dev/null
log "ok: spans from the OpenTelemetry SDK became a chain from dana@example.com, and the log verifies"
