//! Graceful shutdown of the real binary: one deadline for everything.
//!
//! verdict is stopped with SIGTERM while a hook waits on a Prometheus that never
//! answers, a load run sends traffic, and the Grafana worker waits on a Grafana that
//! never answers. Each of them alone could outlast `shutdown_grace`; the process must
//! still exit within `shutdown_grace` + 1 s (the margin the chart's grace period keeps,
//! see tests/deploy_yaml.rs), having recorded how the load run ended.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use support::app::canary;
use support::flagger::{Flagger, Payload};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use verdict::domain::now_millis;
use verdict::store::{Milestone, MilestoneKind};

/// The configured `shutdown_grace`.
const GRACE: Duration = Duration::from_secs(3);
/// What the issue (and the chart's margin) allows beyond it.
const MARGIN: Duration = Duration::from_secs(1);
const TOKEN: &str = "shutdown-test-token";

/// A server that accepts connections and never answers: Prometheus or Grafana hung.
/// Each accepted connection is reported on the channel and held open.
async fn black_hole() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            let _ = accepted.send(());
        }
    });
    (addr, rx)
}

/// A load-test target that counts its requests.
async fn target() -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

/// Starts `verdict serve` with `config` and returns it with the address it bound (read
/// from its JSON log).
async fn serve(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        // The test's own VERDICT_* variables are no configuration of the server's.
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start verdict");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["message"] == "verdict serving" {
                return entry["addr"].as_str().and_then(|a| a.parse().ok());
            }
        }
        None
    })
    .await
    .expect("verdict started within a minute")
    .expect("verdict logged the address it serves on");
    // Keep reading the log so that verdict never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn payload(name: &str, metadata: &[(&str, &str)]) -> Payload {
    let mut payload = Payload {
        name: name.to_owned(),
        namespace: "test".to_owned(),
        phase: "Progressing".to_owned(),
        checksum: "85d557f47b".to_owned(),
        ..Payload::default()
    };
    for (k, v) in metadata.iter().chain(&[("token", TOKEN)]) {
        payload.metadata.insert((*k).to_owned(), (*v).to_owned());
    }
    payload
}

/// Waits for the next report of `what`, for at most 30 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<()>, what: &str) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: not within 30 s"))
        .unwrap_or_else(|| panic!("{what}: the listener stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_everything_within_the_shutdown_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("verdict.db").display());
    let (prometheus, mut prometheus_accepted) = black_hole().await;
    let (grafana, mut grafana_accepted) = black_hole().await;
    let (load_target, hits) = target().await;

    // An annotation waits in the outbox, so the Grafana worker is busy from the start.
    let store = verdict::store::connect(&db).await.expect("store");
    store.migrate().await.expect("migrate");
    let milestone = Milestone::new(
        MilestoneKind::GateHeld,
        canary("test", "podinfo"),
        "freeze",
        now_millis(),
    )
    .by("alice");
    store
        .enqueue_milestone(&milestone)
        .await
        .expect("an outbox row");

    let config = dir.path().join("verdict.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
database_url = "{db}"
log_format = "json"
shutdown_grace = "{grace}s"
webhook_token = "{TOKEN}"

[prometheus]
url = "http://{prometheus}"
timeout = "9s"

[defaults]
template = "istio"
alpha = 0.01
error_margin = 0.1
latency_margin = 0.1
promotion_margin = 0.1
min_canary_requests = 100
lookback = "1h"
min_look_gap = "5s"

[grafana]
url = "http://{grafana}"
token = "glsa_test"
timeout = "30s"
lease = "60s"
poll_interval = "50ms"

[load]
allow_hosts = ["127.0.0.1"]
"#,
            grace = GRACE.as_secs(),
        ),
    )
    .expect("write the configuration");
    let (mut verdict, addr) = serve(&config).await;
    let flagger = Flagger::new(format!("http://{addr}"));

    // The Grafana worker waits on a Grafana that never answers (for up to 30 s).
    next(&mut grafana_accepted, "the worker's delivery").await;
    // A load run sends traffic (for a minute).
    let url = format!("http://{load_target}/");
    let started = flagger
        .call(
            "load-test",
            &payload(
                "podinfo",
                &[("url", &url), ("rps", "20"), ("duration", "60s")],
            ),
        )
        .await;
    assert_eq!(started.status, 202, "«{}»", started.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hits.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the load run sent nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A hook waits on a Prometheus that never answers (for up to 9 s).
    let in_flight = {
        let flagger = flagger.clone();
        tokio::spawn(async move {
            flagger
                .try_call("pre-rollout", &payload("podinfo", &[]))
                .await
        })
    };
    next(&mut prometheus_accepted, "the hook's query").await;

    let pid = verdict.id().expect("verdict runs").to_string();
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(kill.success(), "kill -TERM {pid}");
    let status = tokio::time::timeout(GRACE + MARGIN + Duration::from_secs(30), verdict.wait())
        .await
        .expect("verdict exited at all")
        .expect("verdict's exit status");
    let took = signalled.elapsed();
    assert!(status.success(), "verdict exited with {status}");
    assert!(
        took <= GRACE + MARGIN,
        "verdict took {took:?} after SIGTERM; the deadline is {GRACE:?} + {MARGIN:?}"
    );
    // The hook was still waiting at the deadline: its connection was dropped, not answered.
    let hook = in_flight.await.expect("the hook's task");
    assert!(
        hook.is_err(),
        "the hung hook was answered: {hook:?}; it should have been cut at the deadline"
    );
    // The load run stopped and recorded how far it got before the deadline.
    let runs = store
        .load_runs(&canary("test", "podinfo"))
        .await
        .expect("load runs");
    let outcome = runs
        .first()
        .and_then(|r| r.outcome.as_ref())
        .expect("the load run's end is recorded");
    assert_eq!(outcome.status, "stopped");
    assert!(outcome.requests > 0, "{outcome:?}");
}
