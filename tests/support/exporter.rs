//! A fake Istio sidecar fleet: `/metrics` with `istio_requests_total` and
//! `istio_request_duration_milliseconds` for configurable (namespace, workload) arms.
//!
//! Counts advance every 100 ms from each arm's [`Profile`] by elapsed time with a fractional
//! carry, and errors and latency classes are fixed fractions of the requests (no RNG), so a
//! test can predict what Prometheus will see: `rps × seconds` requests, `error_rate` of them
//! 5xx, and each latency class's share in its bucket.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Istio's default latency boundaries (milliseconds) up to 10 s.
pub const BUCKETS_MS: [f64; 12] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// How one arm behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Requests per second; 0 = no traffic.
    pub rps: f64,
    /// Fraction of requests answered 500.
    pub error_rate: f64,
    /// Latency classes: (milliseconds, share of requests). Shares sum to 1.
    pub latency_ms: Vec<(f64, f64)>,
}

impl Profile {
    /// Every request takes `latency_ms`.
    pub fn fixed(rps: f64, error_rate: f64, latency_ms: f64) -> Self {
        Self::mix(rps, error_rate, &[(latency_ms, 1.0)])
    }

    /// A small discrete mix of latencies, e.g. `&[(20.0, 0.9), (300.0, 0.1)]`.
    pub fn mix(rps: f64, error_rate: f64, latency_ms: &[(f64, f64)]) -> Self {
        assert!(rps >= 0.0 && rps.is_finite(), "rps must be >= 0");
        assert!((0.0..=1.0).contains(&error_rate), "error_rate in [0, 1]");
        assert!(!latency_ms.is_empty(), "at least one latency class");
        let total: f64 = latency_ms.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "latency shares must sum to 1");
        Self {
            rps,
            error_rate,
            latency_ms: latency_ms.to_vec(),
        }
    }

    /// No traffic.
    pub fn idle() -> Self {
        Self::fixed(0.0, 0.0, 1.0)
    }
}

/// Cumulative counters of one arm, as exported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Non-cumulative count per [`BUCKETS_MS`] boundary, plus one for `+Inf`.
    pub per_bucket: Vec<u64>,
    /// Sum of latencies in milliseconds.
    pub sum_ms: f64,
}

impl Totals {
    fn empty() -> Self {
        Self {
            per_bucket: vec![0; BUCKETS_MS.len() + 1],
            ..Self::default()
        }
    }

    /// Cumulative count at each boundary (ending with `+Inf`), as Prometheus exposes it.
    pub fn cumulative(&self) -> Vec<u64> {
        self.per_bucket
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }
}

#[derive(Debug)]
struct ArmState {
    profile: Profile,
    /// Counts accumulated under earlier profiles.
    base: Totals,
    /// Real-valued requests under the current profile (the fractional carry).
    segment: f64,
    /// Whether the arm ever had traffic: real sidecars export nothing before the first
    /// request, so an arm that never served has no series at all.
    visible: bool,
}

impl ArmState {
    /// Totals now: base plus the current profile's share of its whole requests. Each
    /// quantity is a floor of a fixed fraction of the segment's requests, so it never
    /// decreases as requests grow and the classes always add up to the requests.
    fn totals(&self) -> Totals {
        let n = self.segment.floor() as u64;
        let mut t = self.base.clone();
        t.requests += n;
        t.errors += (n as f64 * self.profile.error_rate + 1e-9).floor() as u64;
        let mut cumulative_share = 0.0;
        let mut assigned = 0_u64;
        let last = self.profile.latency_ms.len() - 1;
        for (i, (ms, share)) in self.profile.latency_ms.iter().enumerate() {
            cumulative_share += share;
            let upto = if i == last {
                n
            } else {
                (n as f64 * cumulative_share + 1e-9).floor() as u64
            };
            let count = upto - assigned;
            assigned = upto;
            let slot = BUCKETS_MS
                .iter()
                .position(|b| ms <= b)
                .unwrap_or(BUCKETS_MS.len());
            t.per_bucket[slot] += count;
            t.sum_ms += ms * count as f64;
        }
        t
    }
}

type Arms = BTreeMap<(String, String), ArmState>;

/// The running exporter.
#[derive(Debug)]
pub struct TestExporter {
    addr: SocketAddr,
    arms: Arc<Mutex<Arms>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: JoinHandle<()>,
}

fn lock(arms: &Mutex<Arms>) -> MutexGuard<'_, Arms> {
    // A panicking test thread must not hide the exporter's state from the others.
    arms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TestExporter {
    /// Binds 127.0.0.1:0 and starts serving and counting.
    pub async fn start() -> Self {
        let arms: Arc<Mutex<Arms>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test exporter");
        let addr = listener.local_addr().expect("exporter address");
        let app =
            Router::new().route(
                "/metrics",
                get({
                    let arms = arms.clone();
                    move || {
                        let text = render(&lock(&arms));
                        async move {
                            ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                        }
                    }
                }),
            );
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        let ticker = tokio::spawn({
            let arms = arms.clone();
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(100));
                let mut last = Instant::now();
                loop {
                    interval.tick().await;
                    // Elapsed time, not tick count: a busy test machine delays ticks, and
                    // the rate must stay what the profile says.
                    let now = Instant::now();
                    let dt = now.duration_since(last).as_secs_f64();
                    last = now;
                    for arm in lock(&arms).values_mut() {
                        arm.segment += arm.profile.rps * dt;
                    }
                }
            }
        });
        Self {
            addr,
            arms,
            shutdown: Some(tx),
            server: Some(server),
            ticker,
        }
    }

    /// Where Prometheus should scrape.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets (or adds) an arm's behaviour from now on; counts so far are kept.
    pub fn set_profile(&self, namespace: &str, workload: &str, profile: Profile) {
        let mut arms = lock(&self.arms);
        let key = (namespace.to_owned(), workload.to_owned());
        let visible_now = profile.rps > 0.0;
        match arms.get_mut(&key) {
            Some(arm) => {
                arm.base = arm.totals();
                arm.segment = 0.0;
                arm.visible |= visible_now;
                arm.profile = profile;
            }
            None => {
                arms.insert(
                    key,
                    ArmState {
                        profile,
                        base: Totals::empty(),
                        segment: 0.0,
                        visible: visible_now,
                    },
                );
            }
        }
    }

    /// Removes an arm: its series disappear from `/metrics`.
    pub fn remove(&self, namespace: &str, workload: &str) {
        lock(&self.arms).remove(&(namespace.to_owned(), workload.to_owned()));
    }

    /// The counters as currently exported (for tests that compare exact deltas).
    pub fn totals(&self, namespace: &str, workload: &str) -> Option<Totals> {
        lock(&self.arms)
            .get(&(namespace.to_owned(), workload.to_owned()))
            .map(ArmState::totals)
    }

    /// Stops serving and counting.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        self.ticker.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestExporter {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Prometheus text exposition format for all visible arms.
fn render(arms: &Arms) -> String {
    let mut out = String::new();
    let visible: Vec<_> = arms
        .iter()
        .filter(|(_, arm)| arm.visible)
        .map(|((ns, wl), arm)| (ns, wl, arm.totals()))
        .collect();
    let labels = |ns: &str, wl: &str| {
        format!(
            "reporter=\"destination\",destination_workload_namespace=\"{ns}\",destination_workload=\"{wl}\",destination_service=\"{wl}.{ns}.svc.cluster.local\""
        )
    };
    out.push_str("# HELP istio_requests_total Total requests.\n");
    out.push_str("# TYPE istio_requests_total counter\n");
    for (ns, wl, t) in &visible {
        let l = labels(ns, wl);
        let _ = writeln!(
            out,
            "istio_requests_total{{{l},response_code=\"200\"}} {}",
            t.requests - t.errors
        );
        let _ = writeln!(
            out,
            "istio_requests_total{{{l},response_code=\"500\"}} {}",
            t.errors
        );
    }
    out.push_str("# HELP istio_request_duration_milliseconds Request duration.\n");
    out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for (ns, wl, t) in &visible {
        let l = labels(ns, wl);
        let cumulative = t.cumulative();
        for (i, count) in cumulative.iter().enumerate() {
            let le = BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_bucket{{{l},le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_sum{{{l}}} {}",
            t.sum_ms
        );
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_count{{{l}}} {}",
            t.requests
        );
    }
    out
}
