//! Prometheus metrics (`GET /metrics`), with the official `prometheus-client` crate.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The label of decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `allow` or `deny`.
    pub verdict: String,
}

/// The label of HTTP answers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched route pattern (not the raw path: ids stay out of label values).
    pub route: String,
    /// The status code.
    pub status: u16,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Events appended to the log.
    pub accepted: Counter,
    /// Events already stored with the same content.
    pub duplicates: Counter,
    /// Lines and spans rejected to the quarantine (conflicts included).
    pub quarantined: Counter,
    /// Gate decisions by verdict.
    pub decisions: Family<VerdictLabel, Counter>,
    /// Time to decide and record one decision, in seconds.
    pub decision_seconds: Histogram,
    /// The log's size as last seen.
    pub log_size: Gauge,
    /// HTTP answers by route and status.
    pub requests: Family<RouteLabel, Counter>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("custody");
        let accepted = Counter::default();
        let duplicates = Counter::default();
        let quarantined = Counter::default();
        let decisions = Family::<VerdictLabel, Counter>::default();
        // 10 µs .. ~1.3 s.
        let decision_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 18));
        let log_size = Gauge::default();
        let requests = Family::<RouteLabel, Counter>::default();
        registry.register(
            "events_accepted",
            "Events appended to the log",
            accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events already stored with the same content (counted, not stored again)",
            duplicates.clone(),
        );
        registry.register(
            "events_quarantined",
            "Input rejected to the quarantine, conflicts included",
            quarantined.clone(),
        );
        registry.register("decisions", "Gate decisions, by verdict", decisions.clone());
        registry.register(
            "decision_seconds",
            "Time to decide and record one gate decision",
            decision_seconds.clone(),
        );
        registry.register(
            "log_size",
            "Events in the log (Merkle tree size)",
            log_size.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP answers, by route and status",
            requests.clone(),
        );
        Metrics {
            registry,
            accepted,
            duplicates,
            quarantined,
            decisions,
            decision_seconds,
            log_size,
            requests,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Records a decision.
    pub fn decided(&self, allow: bool, seconds: f64) {
        let verdict = if allow { "allow" } else { "deny" };
        self.decisions
            .get_or_create(&VerdictLabel {
                verdict: verdict.to_owned(),
            })
            .inc();
        self.decision_seconds.observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
