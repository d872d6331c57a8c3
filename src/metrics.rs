//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! One registry per [`Metrics`], owned by the application rather than a process-global
//! recorder, so that several routers in one process (the tests) keep their numbers apart.
//! Counts of requests by status are read from the database at scrape time, so they are
//! right after a restart and agree with what admins see in SQLite.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::db::retention::{Purged, Retained};

// Every label value is bounded by the code, never by what the network sends: the method is
// one of the standard ones or `other`, the route is a pattern from the router's own table
// (or `unmatched`), and the status is one the router itself chose.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: RouteLabel,
}

/// A route pattern from the router's own table, or `unmatched`. It holds axum's shared
/// pattern, so labelling a request allocates nothing.
#[derive(Clone, Debug)]
pub struct RouteLabel(Option<axum::extract::MatchedPath>);

impl RouteLabel {
    pub fn new(matched: Option<axum::extract::MatchedPath>) -> Self {
        Self(matched)
    }

    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", |p| p.as_str())
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl prometheus_client::encoding::EncodeLabelValue for RouteLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    target: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// The webhook's index in the configuration, never its URL (a secret).
    webhook: u32,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// A configured account's id (bounded by the configuration) and a usage window's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UtilizationLabels {
    account: u32,
    window: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.25 ms to about 8 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Where an upstream call went, for [`Metrics::upstream`].
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    TokenEndpoint,
    RevocationEndpoint,
    UsageEndpoint,
    ControlBrowser,
}

/// How an upstream call ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok,
    /// The provider answered with an OAuth error (a refusal, not an outage).
    Rejected,
    /// Transport error, timeout, 5xx or an unusable answer.
    Failed,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Histograms<RouteLabels>,
    requests_by_status: Family<StatusLabels, Gauge>,
    reaper_runs: Counter,
    reaper_failures: Counter,
    reaper_expired: Counter,
    retention_deleted: Family<TableLabels, Counter>,
    upstream_calls: Family<UpstreamLabels, Counter>,
    upstream_latency: Histograms<TargetLabels>,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    long_poll_waiters: Gauge,
    open_connections: Gauge,
    account_utilization: Family<UtilizationLabels, Gauge<f64, AtomicU64>>,
    connections_refused: Family<RefusalLabels, Counter>,
    /// Serialises scrapes: the status gauges are reset and refilled on each.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("auth_router");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status code",
            http_requests.clone(),
        );
        let http_latency =
            Histograms::<RouteLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_latency.clone(),
        );
        let requests_by_status = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "token_requests",
            "Token requests in the database by status",
            requests_by_status.clone(),
        );
        let reaper_runs = Counter::default();
        registry.register("reaper_runs", "Reaper passes", reaper_runs.clone());
        let reaper_failures = Counter::default();
        registry.register(
            "reaper_failures",
            "Reaper passes that failed",
            reaper_failures.clone(),
        );
        let reaper_expired = Counter::default();
        registry.register(
            "reaper_expired",
            "Requests the reaper marked expired",
            reaper_expired.clone(),
        );
        let retention_deleted = Family::<TableLabels, Counter>::default();
        registry.register(
            "retention_deleted_rows",
            "Rows deleted by retention, by table",
            retention_deleted.clone(),
        );
        let upstream_calls = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_calls",
            "Calls to the token endpoint and the control browser by outcome",
            upstream_calls.clone(),
        );
        let upstream_latency = Histograms::<TargetLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "upstream_call_duration_seconds",
            "Upstream call latency",
            upstream_latency.clone(),
        );
        let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by webhook index and outcome (delivered, retried, failed)",
            webhook_deliveries.clone(),
        );
        let long_poll_waiters = Gauge::default();
        registry.register(
            "long_poll_waiters",
            "Status polls holding their answer for a change now",
            long_poll_waiters.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "HTTP connections open now, on every listener",
            open_connections.clone(),
        );
        let account_utilization = Family::<UtilizationLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "account_utilization",
            "Each account's usage window, percent used, as last read from the usage endpoint",
            account_utilization.clone(),
        );
        let connections_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed unanswered at accept, by reason (max_connections, per_ip)",
            connections_refused.clone(),
        );
        Self {
            registry,
            open_connections,
            account_utilization,
            connections_refused,
            http_requests,
            webhook_deliveries,
            long_poll_waiters,
            http_latency,
            requests_by_status,
            reaper_runs,
            reaper_failures,
            reaper_expired,
            retention_deleted,
            upstream_calls,
            upstream_latency,
            scrape: Mutex::new(()),
        }
    }
}

/// The label for an HTTP method. hyper accepts any token as a method, so anything but the
/// standard ones is `other`: a label per invented method would grow `/metrics` (and memory)
/// without bound for anyone who can reach the port.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl Metrics {
    /// Sets account `account`'s `window` utilization (percent) as just read.
    pub fn account_utilization(&self, account: u32, window: &'static str, percent: f64) {
        self.account_utilization
            .get_or_create(&UtilizationLabels { account, window })
            .set(percent);
    }

    /// Records one HTTP answer. `route` must be a route pattern (or `unmatched`), never a
    /// raw path, and `method` comes from [`method_label`].
    pub fn http(&self, method: &'static str, route: RouteLabel, status: u16, elapsed: Duration) {
        self.http_latency
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    pub fn upstream(&self, target: Upstream, outcome: Outcome, elapsed: Duration) {
        let target = match target {
            Upstream::TokenEndpoint => "token_endpoint",
            Upstream::RevocationEndpoint => "revocation_endpoint",
            Upstream::UsageEndpoint => "usage_endpoint",
            Upstream::ControlBrowser => "control_browser",
        };
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        };
        self.upstream_latency
            .get_or_create(&TargetLabels { target })
            .observe(elapsed.as_secs_f64());
        self.upstream_calls
            .get_or_create(&UpstreamLabels { target, outcome })
            .inc();
    }

    /// A connection was accepted (`1`) or closed (`-1`).
    pub fn connection_opened(&self, delta: i64) {
        self.open_connections.inc_by(delta);
    }

    /// A connection closed at accept: `reason` is `max_connections` or `per_ip`.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// Records one webhook delivery attempt.
    pub fn webhook(&self, webhook: u32, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&WebhookLabels { webhook, outcome })
            .inc();
    }

    /// Records one reaper pass; `None` where that part of the pass failed.
    pub fn reaper_pass(&self, expired: Option<u64>, retained: Option<Retained>) {
        self.reaper_runs.inc();
        if expired.is_none() || retained.is_none() {
            self.reaper_failures.inc();
        }
        self.reaper_expired.inc_by(expired.unwrap_or(0));
        let retained = retained.unwrap_or_default();
        let deleted = |table, purged: Purged| {
            self.retention_deleted
                .get_or_create(&TableLabels { table })
                .inc_by(purged.rows);
        };
        deleted("auth_requests", retained.requests);
        deleted("audit_events", retained.audit);
        deleted("webhook_deliveries", retained.deliveries);
    }

    /// The exposition text, with the per-status counts and the waiters read just now.
    pub fn render(&self, by_status: &[(String, i64)], waiters: usize) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.long_poll_waiters
            .set(i64::try_from(waiters).unwrap_or(i64::MAX));
        self.requests_by_status.clear();
        for (status, count) in by_status {
            self.requests_by_status
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*count);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}
