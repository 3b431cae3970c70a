//! Entry points for fuzzers (`cargo fuzz` targets call these, one line each) and for the
//! property tests: each reads arbitrary bytes as one format and drains every item, so a
//! panic anywhere in shape detection, gzip, JSON or an adapter surfaces.

use crate::adapters::{self, Format};

fn drain(format: Option<Format>, data: &[u8]) -> usize {
    adapters::read(format, std::io::Cursor::new(data.to_vec()), "fuzz").count()
}

/// Auto-detection per record, and [`adapters::detect`] on the same bytes.
pub fn auto(data: &[u8]) -> usize {
    let _ = adapters::detect(data);
    drain(None, data)
}

/// AWS CloudTrail.
pub fn cloudtrail(data: &[u8]) -> usize {
    drain(Some(Format::CloudTrail), data)
}

/// GCP Cloud Audit Logs.
pub fn gcp_audit(data: &[u8]) -> usize {
    drain(Some(Format::GcpAudit), data)
}

/// Kubernetes audit.
pub fn k8s_audit(data: &[u8]) -> usize {
    drain(Some(Format::KubernetesAudit), data)
}

/// HashiCorp Vault audit.
pub fn vault_audit(data: &[u8]) -> usize {
    drain(Some(Format::VaultAudit), data)
}

/// OpenTelemetry (OTLP JSON and SDK span dumps).
pub fn otel(data: &[u8]) -> usize {
    drain(Some(Format::Otel), data)
}

/// GitHub Actions OIDC claims and audit log.
pub fn github(data: &[u8]) -> usize {
    drain(Some(Format::GitHub), data)
}

/// Native `custody-event/1` objects.
pub fn custody(data: &[u8]) -> usize {
    drain(Some(Format::Custody), data)
}

/// Every entry point in turn.
pub fn all(data: &[u8]) -> usize {
    auto(data)
        + cloudtrail(data)
        + gcp_audit(data)
        + k8s_audit(data)
        + vault_audit(data)
        + otel(data)
        + github(data)
        + custody(data)
}
