//! Logging and the service's own Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber: JSON lines in production, readable text in a
/// terminal. `RUST_LOG` overrides the level. Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookOnly {
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    query: String,
    ok: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

/// One arm of one canary (`name` is the canary's, `arm` canary or primary).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    namespace: String,
    name: String,
    arm: String,
}

/// One arm of one canary and one latency boundary (`le`, seconds, as Prometheus spells
/// histogram bounds).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlowerLabels {
    namespace: String,
    name: String,
    arm: String,
    le: String,
}

/// One arm's counts in one recorded look, as [`Metrics::look_recorded`] takes them.
#[derive(Debug, Clone, Copy)]
pub struct LookCounts<'a> {
    /// `canary` or `primary`.
    pub arm: &'a str,
    /// Requests served.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Of which slower than each latency boundary the analysis tests: (boundary in
    /// seconds, count).
    pub slower: &'a [(f64, u64)],
}

/// The service's metrics, served at `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    hook_calls: Family<HookLabels, Counter>,
    decision_seconds: Family<HookOnly, Histogram>,
    prometheus_query_seconds: Family<QueryLabels, Histogram>,
    store_errors: Family<OpLabels, Counter>,
    outbox_backlog: Gauge,
    annotation_deliveries: Family<OutcomeLabels, Counter>,
    sli_up: Gauge,
    look_requests: Family<ArmLabels, Counter>,
    look_errors: Family<ArmLabels, Counter>,
    look_slower: Family<SlowerLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("verdict");
        let hook_calls = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_calls",
            "Flagger webhook calls by hook and outcome (pass, fail, wait, ok, rejected, error)",
            hook_calls.clone(),
        );
        let decision_seconds =
            Family::<HookOnly, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "decision_seconds",
            "Time from receiving a hook call to answering it",
            decision_seconds.clone(),
        );
        let prometheus_query_seconds =
            Family::<QueryLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "prometheus_query_seconds",
            "Latency of Prometheus queries by kind and success",
            prometheus_query_seconds.clone(),
        );
        let store_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Store operations that failed",
            store_errors.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Grafana annotations written but not yet delivered (as last seen by this replica's worker)",
            outbox_backlog.clone(),
        );
        let annotation_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "annotation_deliveries",
            "Grafana annotation delivery attempts by outcome (delivered, failed)",
            annotation_deliveries.clone(),
        );
        let sli_up = Gauge::default();
        registry.register(
            "prometheus_up",
            "1 when Prometheus answered the last check (made at each scrape of /metrics), 0 otherwise; hooks that need SLIs answer 424 while it is 0",
            sli_up.clone(),
        );
        // What each look counted, per arm: the same numbers the judge saw, from whichever
        // provider's template, so one dashboard serves every mesh (docs/grafana.md).
        let look_requests = Family::<ArmLabels, Counter>::default();
        registry.register(
            "look_requests",
            "Requests counted by the looks this replica took, per canary and arm (canary, primary)",
            look_requests.clone(),
        );
        let look_errors = Family::<ArmLabels, Counter>::default();
        registry.register(
            "look_errors",
            "Failed requests counted by the looks this replica took, per canary and arm",
            look_errors.clone(),
        );
        // Judge v2 tests several latency boundaries per analysis (docs/statistics.md §3):
        // one series per boundary, `le` in seconds, so a panel shows the share above each
        // boundary exactly as the judge compared it.
        let look_slower = Family::<SlowerLabels, Counter>::default();
        registry.register(
            "look_slower",
            "Requests slower than each latency boundary the analysis tests (le, seconds), counted by the looks this replica took, per canary and arm",
            look_slower.clone(),
        );
        Arc::new(Self {
            registry,
            hook_calls,
            decision_seconds,
            prometheus_query_seconds,
            store_errors,
            outbox_backlog,
            annotation_deliveries,
            sli_up,
            look_requests,
            look_errors,
            look_slower,
        })
    }

    /// Counts one hook call and observes how long its answer took.
    pub fn hook_call(&self, hook: &str, outcome: &str, elapsed: Duration) {
        self.hook_calls
            .get_or_create(&HookLabels {
                hook: hook.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.decision_seconds
            .get_or_create(&HookOnly {
                hook: hook.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Observes one Prometheus query (`query` is its kind).
    pub fn prometheus_query(&self, query: &str, elapsed: Duration, ok: bool) {
        self.prometheus_query_seconds
            .get_or_create(&QueryLabels {
                query: query.to_owned(),
                ok: ok.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one failed store operation.
    pub fn store_error(&self, op: &str) {
        self.store_errors
            .get_or_create(&OpLabels { op: op.to_owned() })
            .inc();
    }

    /// Sets the number of undelivered annotations.
    pub fn set_outbox_backlog(&self, rows: i64) {
        self.outbox_backlog.set(rows);
    }

    /// Counts one annotation delivery attempt; `outcome` is `delivered` or `failed`.
    pub fn annotation_delivery(&self, outcome: &str) {
        self.annotation_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Adds one recorded look's counts of one arm. Counters, so that replicas add up and
    /// restarts do not matter to `rate()`.
    pub fn look_recorded(&self, namespace: &str, name: &str, counts: LookCounts<'_>) {
        let labels = ArmLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            arm: counts.arm.to_owned(),
        };
        self.look_requests
            .get_or_create(&labels)
            .inc_by(counts.requests);
        self.look_errors
            .get_or_create(&labels)
            .inc_by(counts.errors);
        for &(le_s, slower) in counts.slower {
            self.look_slower
                .get_or_create(&SlowerLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    arm: counts.arm.to_owned(),
                    le: le_s.to_string(),
                })
                .inc_by(slower);
        }
    }

    /// Records whether the SLI source (Prometheus) answered its last check.
    pub fn set_sli_up(&self, up: bool) {
        self.sli_up.set(i64::from(up));
    }

    /// The registry in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}
