//! The load generator against local axum servers whose behaviour the test controls: rate
//! holding, exact status counts, latency percentiles, stalls, timeouts, keep-alive, and the
//! run manager's deduplication, caps and refusals.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use verdict::domain::{CanaryName, Namespace};
use verdict::loadgen::{
    run, CanaryKey, ErrorKind, LoadError, LoadManager, LoadPolicy, LoadResult, LoadSpec,
    MemorySink, Model, RunRecord, RunSink, SinkError, StartOutcome,
};

/// What a test server saw, and the stall it imposes.
#[derive(Debug, Default)]
struct Seen {
    requests: AtomicU64,
    arrivals: Mutex<Vec<Instant>>,
    peers: Mutex<HashSet<SocketAddr>>,
    /// Request number that starts a one-second stall, and when that stall ends.
    stall_at: Option<u64>,
    stall_until: Mutex<Option<tokio::time::Instant>>,
}

async fn serve(seen: Arc<Seen>) -> String {
    let app = Router::new()
        .route("/", get(ok))
        .route("/mix", get(mix))
        .route("/sleep", get(sleep))
        .route("/slow", get(slow))
        .route("/stall", get(stall))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the target");
    let addr = listener.local_addr().expect("target address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve the target");
    });
    format!("http://{addr}")
}

fn note(seen: &Seen, peer: SocketAddr) -> u64 {
    seen.arrivals
        .lock()
        .expect("arrivals lock")
        .push(Instant::now());
    seen.peers.lock().expect("peers lock").insert(peer);
    seen.requests.fetch_add(1, Ordering::SeqCst)
}

async fn ok(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> &'static str {
    note(&seen, peer);
    "ok"
}

/// Every 4th request fails.
async fn mix(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> StatusCode {
    if note(&seen, peer) % 4 == 3 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn sleep(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> &'static str {
    note(&seen, peer);
    tokio::time::sleep(Duration::from_millis(20)).await;
    "ok"
}

async fn slow(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> &'static str {
    note(&seen, peer);
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late"
}

/// From request number `stall_at` on, nothing is answered for one second.
async fn stall(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> &'static str {
    let n = note(&seen, peer);
    let until = {
        let mut until = seen.stall_until.lock().expect("stall lock");
        if Some(n) == seen.stall_at {
            *until = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
        *until
    };
    if let Some(t) = until {
        tokio::time::sleep_until(t).await;
    }
    "ok"
}

fn spec(url: String, model: Model) -> LoadSpec {
    let mut spec = LoadSpec::new(url);
    spec.model = model;
    spec
}

async fn go(spec: &LoadSpec) -> LoadResult {
    run(spec, CancellationToken::new()).await.expect("the run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_holds_its_rate() {
    let seen = Arc::new(Seen::default());
    let url = serve(Arc::clone(&seen)).await;
    let mut s = spec(format!("{url}/"), Model::Open { rate: 400.0 });
    s.duration = Some(Duration::from_secs(5));
    s.concurrency = 20;
    let r = go(&s).await;
    let expected = 2000.0;
    let served = seen.requests.load(Ordering::SeqCst) as f64;
    assert!(
        (served - expected).abs() / expected < 0.02,
        "server saw {served}"
    );
    assert!(
        (r.requests as f64 - expected).abs() / expected < 0.02,
        "{r:?}"
    );
    assert!(r.rate_error().unwrap().abs() < 0.02, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    // Constant arrivals, not bursts: every half second gets its share within 15 %.
    let arrivals = seen.arrivals.lock().unwrap().clone();
    let first = arrivals[0];
    let mut buckets = [0u32; 10];
    for a in &arrivals {
        let i = (a.duration_since(first).as_millis() / 500) as usize;
        if i < buckets.len() {
            buckets[i] += 1;
        }
    }
    for (i, n) in buckets.iter().enumerate() {
        assert!(
            (170..=230).contains(n),
            "half-second {i} had {n} arrivals: {buckets:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_are_exact_and_connections_are_reused() {
    let seen = Arc::new(Seen::default());
    let url = serve(Arc::clone(&seen)).await;
    let mut s = spec(
        format!("{url}/mix"),
        Model::Closed {
            per_worker_rate: None,
        },
    );
    s.requests = Some(400);
    s.concurrency = 4;
    let r = go(&s).await;
    assert_eq!(r.requests, 400);
    assert_eq!(r.status_counts, BTreeMap::from([(200, 300), (500, 100)]));
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 400);
    // Keep-alive: one connection per worker for the whole run.
    assert_eq!(seen.peers.lock().unwrap().len(), 4);

    // The open model counts as exactly.
    let seen = Arc::new(Seen::default());
    let url = serve(Arc::clone(&seen)).await;
    let mut s = spec(format!("{url}/mix"), Model::Open { rate: 500.0 });
    s.requests = Some(200);
    s.concurrency = 8;
    let r = go(&s).await;
    assert_eq!(r.status_counts, BTreeMap::from([(200, 150), (500, 50)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_percentiles_match_a_server_that_sleeps() {
    let url = serve(Arc::default()).await;
    let mut s = spec(
        format!("{url}/sleep"),
        Model::Closed {
            per_worker_rate: None,
        },
    );
    s.requests = Some(200);
    s.concurrency = 10;
    let r = go(&s).await;
    let l = r.latency.unwrap();
    assert!(l.min_ms >= 20.0, "{l:?}");
    assert!((20.0..=30.0).contains(&l.p50_ms), "{l:?}");
    assert!(l.p90_ms <= 40.0, "{l:?}");
    assert_eq!(r.status_counts[&200], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_open_models_p99_but_hides_from_the_closed_model() {
    // Open model: 200/s for 4 s; the server stalls for 1 s from request 300 (t ≈ 1.5 s).
    let stalled = Arc::new(Seen {
        stall_at: Some(300),
        ..Seen::default()
    });
    let url = serve(stalled).await;
    let mut s = spec(format!("{url}/stall"), Model::Open { rate: 200.0 });
    s.duration = Some(Duration::from_secs(4));
    // Only 4 connections: measured from the actual send, just the 4 stuck requests (0.5 %)
    // would be slow; measured from the intended time, the ~200 queued behind them are too.
    s.concurrency = 4;
    let open = go(&s).await;
    let l = open.latency.unwrap();
    assert!(l.p99_ms >= 900.0, "open model hid the stall: {l:?}");
    assert!(l.p95_ms >= 500.0, "open model hid the stall: {l:?}");
    assert!(l.p50_ms < 100.0, "{l:?}");
    // Requests due during the stall were sent late, not skipped.
    assert!(open.requests >= 790, "{open:?}");

    // hey's closed model at the same rate: the two blocked workers simply wait, so the 200
    // requests that were due during the stall are never sent and never measured.
    let stalled = Arc::new(Seen {
        stall_at: Some(300),
        ..Seen::default()
    });
    let url = serve(stalled).await;
    let mut s = spec(
        format!("{url}/stall"),
        Model::Closed {
            per_worker_rate: Some(100.0),
        },
    );
    s.duration = Some(Duration::from_secs(4));
    s.concurrency = 2;
    let closed = go(&s).await;
    assert!(closed.latency.unwrap().p99_ms < 900.0, "{closed:?}");
    assert!(closed.requests < 700, "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_are_counted_by_kind() {
    let url = serve(Arc::default()).await;
    let mut s = spec(
        format!("{url}/slow"),
        Model::Closed {
            per_worker_rate: None,
        },
    );
    s.requests = Some(4);
    s.concurrency = 4;
    s.timeout = Some(Duration::from_millis(300));
    let r = go(&s).await;
    assert_eq!(r.errors.get(&ErrorKind::Timeout), Some(&4), "{r:?}");
    assert_eq!(r.responses, 0);
    assert!(r.latency.is_none());

    // A port nobody listens on: bind one, note it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = spec(
        format!("http://127.0.0.1:{port}/"),
        Model::Closed {
            per_worker_rate: None,
        },
    );
    s.requests = Some(10);
    s.concurrency = 2;
    let r = go(&s).await;
    assert_eq!(r.errors.get(&ErrorKind::Connect), Some(&10), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_counts_requests_it_could_not_send_as_backlog() {
    // One connection, a server that answers after 3 s, a 300 ms timeout: tickets queue behind
    // the stuck connection and are dropped as backlog instead of silently vanishing.
    let url = serve(Arc::default()).await;
    let mut s = spec(format!("{url}/slow"), Model::Open { rate: 50.0 });
    s.duration = Some(Duration::from_secs(1));
    s.concurrency = 1;
    s.timeout = Some(Duration::from_millis(300));
    let r = go(&s).await;
    let timeouts = r.errors.get(&ErrorKind::Timeout).copied().unwrap_or(0);
    let backlog = r.errors.get(&ErrorKind::Backlog).copied().unwrap_or(0);
    assert!(timeouts >= 2, "{r:?}");
    assert!(backlog >= 30, "{r:?}");
    // Every scheduled request is accounted for.
    assert_eq!(timeouts + backlog, 50, "{r:?}");
}

fn policy() -> LoadPolicy {
    LoadPolicy {
        allow_hosts: vec!["127.0.0.1".into()],
        ..LoadPolicy::default()
    }
}

fn canary(name: &str) -> CanaryKey {
    (
        Namespace::parse("test").expect("namespace"),
        CanaryName::parse(name).expect("canary name"),
    )
}

fn hook_spec(url: &str, q: u32) -> LoadSpec {
    verdict::loadgen::parse_hey_cmd(&format!("hey -z 30s -q {q} -c 2 {url}/")).expect("hey command")
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_canary_and_spec_and_a_new_spec_replaces_it() {
    let seen = Arc::new(Seen::default());
    let url = serve(Arc::clone(&seen)).await;
    let sink = Arc::new(MemorySink::new());
    let manager = LoadManager::new(policy(), sink.clone());

    let first = manager
        .start(canary("podinfo"), hook_spec(&url, 10))
        .await
        .unwrap();
    let StartOutcome::Started { run_id } = first else {
        panic!("{first:?}")
    };
    let again = manager
        .start(canary("podinfo"), hook_spec(&url, 10))
        .await
        .unwrap();
    assert_eq!(again, StartOutcome::AlreadyRunning { run_id });
    assert_eq!(sink.started().len(), 1);
    assert_eq!(manager.active().len(), 1);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let replaced = manager
        .start(canary("podinfo"), hook_spec(&url, 20))
        .await
        .unwrap();
    let StartOutcome::Replaced {
        run_id: new_id,
        stopped,
    } = replaced
    else {
        panic!("{replaced:?}")
    };
    assert_eq!(stopped, run_id);
    within(sink.wait_finished(1)).await;
    let (old, result) = &sink.finished()[0];
    assert_eq!(old.id, run_id);
    assert!(result.stopped);
    assert!(result.requests > 0, "{result:?}");
    assert_eq!(manager.active().len(), 1);
    assert_eq!(manager.active()[0].run_id, new_id);

    // Another canary runs beside it; shutdown stops and records both.
    manager
        .start(canary("other"), hook_spec(&url, 5))
        .await
        .unwrap();
    within(manager.shutdown()).await;
    assert_eq!(sink.started().len(), 3);
    assert_eq!(sink.finished().len(), 3);
    assert!(sink.finished().iter().all(|(_, r)| r.stopped));
    assert!(manager.active().is_empty());
    let err = manager
        .start(canary("late"), hook_spec(&url, 5))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::ShuttingDown), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_refuse_runs_with_reasons() {
    let url = serve(Arc::default()).await;
    let sink = Arc::new(MemorySink::new());
    let manager = LoadManager::new(
        LoadPolicy {
            max_concurrent_runs: 1,
            max_total_rps: 50.0,
            max_duration: Duration::from_secs(60),
            ..policy()
        },
        sink.clone(),
    );
    manager
        .start(canary("a"), hook_spec(&url, 10))
        .await
        .unwrap();
    let err = manager
        .start(canary("b"), hook_spec(&url, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::OverCap(_)), "{err}");
    assert!(err.to_string().contains("limit is 1"), "{err}");
    // Replacing the canary's own run does not count against the run cap…
    manager
        .start(canary("a"), hook_spec(&url, 15))
        .await
        .unwrap();
    // …but its rate must fit: 2 workers × 30/s > 50/s.
    let err = manager
        .start(canary("a"), hook_spec(&url, 30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit of 50 requests/s"), "{err}");
    // A refused replacement leaves the running run alone.
    assert_eq!(manager.active().len(), 1);
    assert_eq!(manager.active()[0].max_rate, 30.0);
    // Unbounded (no -q) never fits a rate cap.
    let unbounded = verdict::loadgen::parse_hey_cmd(&format!("hey -z 10s {url}/")).unwrap();
    let err = manager.start(canary("a"), unbounded).await.unwrap_err();
    assert!(err.to_string().contains("no rate limit"), "{err}");
    within(manager.shutdown()).await;
    assert_eq!(sink.started().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_never_outlive_the_policys_duration() {
    let url = serve(Arc::default()).await;
    let sink = Arc::new(MemorySink::new());
    let manager = LoadManager::new(
        LoadPolicy {
            max_duration: Duration::from_millis(400),
            ..policy()
        },
        sink.clone(),
    );
    // A count-bounded run that would take 1 000 s at 10/s.
    let spec = verdict::loadgen::parse_hey_cmd(&format!("hey -n 10000 -q 5 -c 2 {url}/")).unwrap();
    let started = Instant::now();
    manager.start(canary("podinfo"), spec).await.unwrap();
    within(sink.wait_finished(1)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(sink.finished()[0].1.stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_starts_nothing() {
    let url = serve(Arc::default()).await;
    let sink = Arc::new(MemorySink::new());
    let manager = LoadManager::new(policy(), sink.clone());
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("cmd", "hey -z 1m -q 1 http://127.0.0.1/; rm -rf /".into())],
        vec![("cmd", "hey -z 1m -q 1 -k http://127.0.0.1/".into())],
        vec![("cmd", "wget http://127.0.0.1/".into())],
        vec![("cmd", "hey -z 1m -q 1 ftp://127.0.0.1/".into())],
        vec![("cmd", "hey -z 1m -q 1 http://example.com/".into())],
        vec![("cmd", format!("hey -z 1m -q -10 {url}/"))],
        vec![("cmd", format!("hey -z 1m -q 1e9 {url}/"))],
        vec![
            ("url", format!("{url}/")),
            ("rps", "-1".into()),
            ("duration", "1m".into()),
        ],
        vec![
            ("url", format!("{url}/")),
            ("rps", "99999999".into()),
            ("duration", "1m".into()),
        ],
        vec![
            ("url", format!("{url}/")),
            ("rps", "10".into()),
            ("duration", "100h".into()),
        ],
        vec![
            ("url", "http://10.0.0.1/".into()),
            ("rps", "10".into()),
            ("duration", "1m".into()),
        ],
        vec![
            ("url", format!("{url}/")),
            ("rps", "10".into()),
            ("duration", "1m".into()),
            ("concurrency", "0".into()),
        ],
    ];
    for case in cases {
        let metadata: HashMap<String, String> = case
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let outcome = match LoadSpec::from_metadata(&metadata) {
            Err(e) => Err(LoadError::Invalid(e)),
            Ok(spec) => manager.start(canary("podinfo"), spec).await,
        };
        let err = outcome.expect_err(&format!("{case:?} was accepted"));
        let message = err.to_string();
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        );
    }
    assert!(sink.events().is_empty());
    assert!(manager.active().is_empty());
}

/// A store that is down.
#[derive(Debug)]
struct DownSink;

#[async_trait::async_trait]
impl RunSink for DownSink {
    async fn run_started(&self, _: &RunRecord) -> Result<(), SinkError> {
        Err("connection refused".into())
    }
    async fn run_finished(&self, _: &RunRecord, _: &LoadResult) -> Result<(), SinkError> {
        Err("connection refused".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecordable_run_does_not_start() {
    let seen = Arc::new(Seen::default());
    let url = serve(Arc::clone(&seen)).await;
    let manager = LoadManager::new(policy(), Arc::new(DownSink));
    let err = manager
        .start(canary("podinfo"), hook_spec(&url, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Record(_)), "{err}");
    assert!(manager.active().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}
