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
    look_slow: Family<ArmLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

impl Metrics {
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
        let look_slow = Family::<ArmLabels, Counter>::default();
        registry.register(
            "look_slow",
            "Requests slower than the analysis' latency boundary, counted by the looks this replica took, per canary and arm",
            look_slow.clone(),
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
            look_slow,
        })
    }

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

    pub fn prometheus_query(&self, query: &str, elapsed: Duration, ok: bool) {
        self.prometheus_query_seconds
            .get_or_create(&QueryLabels {
                query: query.to_owned(),
                ok: ok.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

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

    /// Adds one recorded look's counts of one arm (`canary` or `primary`). Counters, so
    /// that replicas add up and restarts do not matter to `rate()`.
    pub fn look_recorded(
        &self,
        namespace: &str,
        name: &str,
        arm: &str,
        requests: u64,
        errors: u64,
        slow: u64,
    ) {
        let labels = ArmLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            arm: arm.to_owned(),
        };
        self.look_requests.get_or_create(&labels).inc_by(requests);
        self.look_errors.get_or_create(&labels).inc_by(errors);
        self.look_slow.get_or_create(&labels).inc_by(slow);
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
