//! `POST /flagger/load-test`: one run per canary and spec, a new spec replaces the run,
//! bad input and caps are refused with a reason and start nothing, runs are recorded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use support::app::{canary, spawn_app, AppOptions, Backend, TestApp};
use support::flagger::{HookReply, Payload};
use verdict::loadgen::LoadPolicy;
use verdict::store::LoadRunRow;

const TOKEN: &str = "load-test-token";

struct Harness {
    app: TestApp,
    target: SocketAddr,
    hits: Arc<AtomicU64>,
}

/// A target that counts the requests it answers.
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind target");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

async fn start() -> Harness {
    let app = spawn_app(AppOptions {
        store: Backend::Sqlite,
        webhook_token: Some(TOKEN.to_owned()),
        load: LoadPolicy {
            allow_hosts: vec!["127.0.0.1".to_owned()],
            max_total_rps: 100.0,
            max_concurrent_runs: 2,
            ..LoadPolicy::default()
        },
        ..AppOptions::simulated(1)
    })
    .await;
    let (target, hits) = target().await;
    Harness { app, target, hits }
}

fn payload(name: &str, metadata: &[(&str, &str)]) -> Payload {
    let mut metadata: std::collections::BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    metadata
        .entry("token".to_owned())
        .or_insert_with(|| TOKEN.to_owned());
    Payload {
        name: name.to_owned(),
        namespace: "test".to_owned(),
        phase: "Progressing".to_owned(),
        checksum: "85d557f47b".to_owned(),
        metadata,
    }
}

impl Harness {
    async fn load_test(&self, name: &str, metadata: &[(&str, &str)]) -> HookReply {
        self.app.call("load-test", &payload(name, metadata)).await
    }

    async fn runs(&self, name: &str) -> Vec<LoadRunRow> {
        self.app
            .store
            .load_runs(&canary("test", name))
            .await
            .expect("load runs")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_spec_and_a_new_spec_replaces_it() {
    let h = start().await;
    let cmd = format!("hey -z 30s -q 5 -c 1 http://{}/", h.target);
    let first = h.load_test("podinfo", &[("cmd", &cmd)]).await;
    assert_eq!(first.status, 202, "«{}»", first.body);
    assert!(first.body.contains("started"), "«{}»", first.body);

    // Flagger calls the hook again every interval: the run goes on, no second one.
    let again = h.load_test("podinfo", &[("cmd", &cmd)]).await;
    assert_eq!(again.status, 202, "«{}»", again.body);
    assert!(again.body.contains("already running"), "«{}»", again.body);
    assert_eq!(
        h.runs("podinfo").await.len(),
        1,
        "a repeat started a second run"
    );

    // A new spec (new checksum) stops the old run and starts the new one.
    let cmd2 = format!("hey -z 30s -q 4 -c 1 http://{}/", h.target);
    let replaced = h.load_test("podinfo", &[("cmd", &cmd2)]).await;
    assert_eq!(replaced.status, 202, "«{}»", replaced.body);
    assert!(replaced.body.contains("stopped"), "«{}»", replaced.body);

    let mut waited = Duration::ZERO;
    loop {
        let runs = h.runs("podinfo").await;
        assert_eq!(runs.len(), 2);
        if runs[0].outcome.is_some() {
            let outcome = runs[0].outcome.as_ref().expect("outcome");
            assert_eq!(
                outcome.status, "stopped",
                "the replaced run is recorded as stopped"
            );
            assert_ne!(runs[0].run.spec_checksum, runs[1].run.spec_checksum);
            assert!(runs[1].outcome.is_none(), "the new run is still going");
            break;
        }
        assert!(
            waited < Duration::from_secs(20),
            "the replaced run never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    // Let the new run answer a couple of requests (at 4/s that takes about half
    // a second), so its recorded count is known to be non-zero.
    let hits_at_replace = h.hits.load(Ordering::Relaxed);
    assert!(hits_at_replace > 0, "the target received no load");
    let mut waited = Duration::ZERO;
    while h.hits.load(Ordering::Relaxed) < hits_at_replace + 2 {
        assert!(waited < Duration::from_secs(10), "the new run sent no load");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    // Shutdown stops the new run and records its end.
    let mut app = h.app;
    app.stop_server().await;
    let runs = app
        .store
        .load_runs(&canary("test", "podinfo"))
        .await
        .expect("runs");
    let last = runs[1]
        .outcome
        .as_ref()
        .expect("shutdown recorded the run's end");
    assert_eq!(last.status, "stopped");
    assert!(last.requests > 0);
    app.shutdown().await;
}

/// A refused call: canary name, metadata, expected status.
type Case = (String, Vec<(&'static str, String)>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_caps_are_refused_and_start_nothing() {
    let h = start().await;
    let t = h.target;
    let cases: Vec<Case> = vec![
        ("unparsable".into(), vec![("cmd", "hey -z".to_owned())], 400),
        (
            "shell".into(),
            vec![("cmd", format!("hey -z 1m http://{t}/; rm -rf /"))],
            400,
        ),
        (
            "not-hey".into(),
            vec![("cmd", format!("curl http://{t}/"))],
            400,
        ),
        (
            "scheme".into(),
            vec![("cmd", "hey -z 10s -q 1 ftp://127.0.0.1/".to_owned())],
            400,
        ),
        (
            "outside".into(),
            vec![("cmd", "hey -z 10s -q 1 http://example.com/".to_owned())],
            400,
        ),
        (
            "negative".into(),
            vec![
                ("url", format!("http://{t}/")),
                ("rps", "-5".to_owned()),
                ("duration", "10s".to_owned()),
            ],
            400,
        ),
        (
            "absurd".into(),
            vec![
                ("url", format!("http://{t}/")),
                ("rps", "1000000".to_owned()),
                ("duration", "10s".to_owned()),
            ],
            409,
        ),
        (
            "unknown-key".into(),
            vec![("url", format!("http://{t}/")), ("rsp", "5".to_owned())],
            400,
        ),
    ];
    for (name, metadata, status) in &cases {
        let metadata: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = h.load_test(name, &metadata).await;
        assert_eq!(reply.status, *status, "{name}: «{}»", reply.body);
        assert!(!reply.body.trim().is_empty(), "{name}: no reason given");
        assert!(h.runs(name).await.is_empty(), "{name}: a run was recorded");
    }

    // A wrong token is refused before anything else.
    let mut wrong = payload(
        "tokenless",
        &[("cmd", &format!("hey -z 5s -q 1 http://{t}/"))],
    );
    wrong
        .metadata
        .insert("token".into(), "not-the-token".into());
    let reply = h.app.call("load-test", &wrong).await;
    assert_eq!(reply.status, 403, "«{}»", reply.body);
    assert!(h.runs("tokenless").await.is_empty());
    assert_eq!(
        h.hits.load(Ordering::Relaxed),
        0,
        "refused runs sent traffic"
    );
    h.app.shutdown().await;
}
