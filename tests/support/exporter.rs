//! A fake Istio sidecar fleet: `/metrics` with `istio_requests_total` and
//! `istio_request_duration_milliseconds` for configurable (namespace, workload) arms.
//!
//! Counts advance every 100 ms from each arm's [`Profile`] by elapsed time with a fractional
//! carry, and errors and latency classes are fixed fractions of the requests (no RNG), so a
//! test can predict what Prometheus will see: `rps × seconds` requests, `error_rate` of them
//! 5xx, and each latency class's share in its bucket.
//!
//! A profile may be [bursty](Profile::bursty): every period its error rate and the share of
//! its slowest latency class are multiplied by fresh log-normal factors (mean 1), drawn
//! from a seeded generator — the per-look overdispersion of real traffic, reproducibly.

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
    /// Per-period noise on the error rate and the slowest class's share.
    pub burst: Option<Burst>,
}

/// Per-period overdispersion of an arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Log-sd of the factors.
    pub sd: f64,
    /// How long one draw lasts.
    pub period: Duration,
    /// Seeds the factors (give each arm its own).
    pub seed: u64,
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
            burst: None,
        }
    }

    /// The same profile with per-period noise of log-sd `sd` on its error rate and on its
    /// slowest latency class's share.
    pub fn bursty(self, sd: f64, period: Duration, seed: u64) -> Self {
        assert!(sd >= 0.0 && sd.is_finite(), "sd must be >= 0");
        assert!(!period.is_zero(), "period must be positive");
        Self {
            burst: Some(Burst { sd, period, seed }),
            ..self
        }
    }

    /// What the arm does during one period with noise factors `(errors, slow)`.
    fn scaled(&self, (errors, slow): (f64, f64)) -> Self {
        let mut latency_ms = self.latency_ms.clone();
        if let Some(last) = latency_ms.len().checked_sub(1).filter(|&l| l > 0) {
            let share = (latency_ms[last].1 * slow).min(1.0);
            let rest: f64 = latency_ms[..last].iter().map(|(_, s)| s).sum();
            let keep = if rest > 0.0 {
                (1.0 - share) / rest
            } else {
                0.0
            };
            for class in &mut latency_ms[..last] {
                class.1 *= keep;
            }
            latency_ms[last].1 = share;
        }
        Self {
            rps: self.rps,
            error_rate: (self.error_rate * errors).min(1.0),
            latency_ms,
            burst: None,
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
    /// What the arm does now: the profile, scaled by the current burst's factors.
    current: Profile,
    /// The burst's generator and when its factors are drawn next.
    burst: Option<(Rng, Instant)>,
    /// Counts accumulated under earlier profiles.
    base: Totals,
    /// Real-valued requests under the current profile (the fractional carry).
    segment: f64,
    /// Whether the arm ever had traffic: real sidecars export nothing before the first
    /// request, so an arm that never served has no series at all.
    visible: bool,
    /// More labels on every series of the arm, rendered (`,k="v"`…).
    labels: String,
}

impl ArmState {
    /// Totals now: base plus the current profile's share of its whole requests. Each
    /// quantity is a floor of a fixed fraction of the segment's requests, so it never
    /// decreases as requests grow and the classes always add up to the requests.
    fn new(profile: Profile) -> Self {
        let burst = profile.burst.map(|b| {
            (
                Rng(b.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                Instant::now(),
            )
        });
        let mut arm = Self {
            visible: profile.rps > 0.0,
            current: profile.clone(),
            profile,
            burst,
            base: Totals::empty(),
            segment: 0.0,
            labels: String::new(),
        };
        arm.redraw(Instant::now());
        arm
    }

    /// At the start of a burst period: keep what was counted, draw new factors.
    fn redraw(&mut self, now: Instant) {
        let (Some(b), Some((rng, next))) = (self.profile.burst, self.burst.as_mut()) else {
            return;
        };
        if now < *next {
            return;
        }
        *next = now + b.period;
        let factors = (rng.log_normal(b.sd), rng.log_normal(b.sd));
        self.base = self.totals();
        self.segment = 0.0;
        self.current = self.profile.scaled(factors);
    }

    fn totals(&self) -> Totals {
        let n = self.segment.floor() as u64;
        let mut t = self.base.clone();
        t.requests += n;
        t.errors += (n as f64 * self.current.error_rate + 1e-9).floor() as u64;
        let mut cumulative_share = 0.0;
        let mut assigned = 0_u64;
        let last = self.current.latency_ms.len() - 1;
        for (i, (ms, share)) in self.current.latency_ms.iter().enumerate() {
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

/// A small seeded generator (SplitMix64) for burst factors: the exporter needs no more.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A log-normal factor with mean 1 and log-sd `sd` (Box–Muller).
    fn log_normal(&mut self, sd: f64) -> f64 {
        let (u, v) = (self.next_unit(), self.next_unit());
        let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        (sd * z - sd * sd / 2.0).exp()
    }
}

type Arms = BTreeMap<(String, String), ArmState>;

/// What one `/metrics` answer held: when it was served (Unix ms) and each visible arm's
/// totals, keyed by (namespace, workload).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// When the answer was rendered.
    pub at_ms: i64,
    /// The counters it reported.
    pub totals: BTreeMap<(String, String), Totals>,
}

/// The running exporter.
#[derive(Debug)]
pub struct TestExporter {
    addr: SocketAddr,
    arms: Arc<Mutex<Arms>>,
    served: Arc<Mutex<Vec<Served>>>,
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
        let served: Arc<Mutex<Vec<Served>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test exporter");
        let addr = listener.local_addr().expect("exporter address");
        let app =
            Router::new().route(
                "/metrics",
                get({
                    let arms = arms.clone();
                    let served = served.clone();
                    move || {
                        let arms = lock(&arms);
                        let text = render(&arms);
                        let totals = arms
                            .iter()
                            .filter(|(_, arm)| arm.visible)
                            .map(|(key, arm)| (key.clone(), arm.totals()))
                            .collect();
                        drop(arms);
                        served
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(Served {
                                at_ms: unix_millis(),
                                totals,
                            });
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
                        arm.segment += arm.current.rps * dt;
                        arm.redraw(now);
                    }
                }
            }
        });
        Self {
            addr,
            arms,
            served,
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
        match arms.get_mut(&key) {
            Some(arm) => {
                let mut next = ArmState::new(profile);
                next.base = arm.totals();
                next.visible |= arm.visible;
                next.labels = std::mem::take(&mut arm.labels);
                *arm = next;
            }
            None => {
                arms.insert(key, ArmState::new(profile));
            }
        }
    }

    /// Adds labels to every series of an arm set before (e.g. the pod label
    /// `rollouts_pod_template_hash` that a scrape copies from Argo Rollouts' pods).
    pub fn set_labels(&self, namespace: &str, workload: &str, labels: &[(&str, &str)]) {
        let mut arms = lock(&self.arms);
        let arm = arms
            .get_mut(&(namespace.to_owned(), workload.to_owned()))
            .unwrap_or_else(|| panic!("no arm {namespace}/{workload}: set its profile first"));
        arm.labels = labels
            .iter()
            .map(|(k, v)| format!(",{k}=\"{v}\""))
            .collect();
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

    /// Every `/metrics` answer so far, oldest first: what Prometheus scraped.
    pub fn served(&self) -> Vec<Served> {
        self.served
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// What a process restart does to the exporter's counters: every arm counts from 0
    /// again (the address, the profiles and the traffic stay).
    pub fn restart_counters(&self) {
        let now = Instant::now();
        for arm in lock(&self.arms).values_mut() {
            arm.base = Totals::empty();
            arm.segment = 0.0;
            arm.redraw(now);
        }
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
        let extra = arms
            .get(&(ns.to_owned(), wl.to_owned()))
            .map_or("", |arm| arm.labels.as_str());
        format!(
            "reporter=\"destination\",destination_workload_namespace=\"{ns}\",destination_workload=\"{wl}\",destination_service=\"{wl}.{ns}.svc.cluster.local\"{extra}"
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
        // Like a real sidecar, the 5xx series appears with the first error.
        if t.errors > 0 {
            let _ = writeln!(
                out,
                "istio_requests_total{{{l},response_code=\"500\"}} {}",
                t.errors
            );
        }
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

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
