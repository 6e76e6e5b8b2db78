//! Grafana annotations end to end: real hooks through the real server (Flagger played by
//! the test's Flagger client, metrics from the simulator) into the outbox, and the worker
//! delivering them to a local server that follows Grafana's `POST /api/annotations`
//! contract (bearer token, JSON body, `{"id": N, "message": …}`). Each test runs on
//! SQLite and Postgres.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use support::app::{spawn_app, AppOptions, Backend, TestApp};
use support::db::TestDb;
use support::flagger::Payload;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use verdict::config::GrafanaSettings;
use verdict::domain::{now_millis, AnalysisKey, CanaryName, CanaryRef, Checksum, Namespace};
use verdict::grafana::{annotation, Worker};
use verdict::sli::simulator::{CanaryEffect, ServiceProfile, Workload};
use verdict::store::{
    AnalysisStatus, ArmTally, LookInsert, Milestone, MilestoneAnalysis, MilestoneKind, NewAnalysis,
    NewDecision, NewLook, OutboxEntry, OutboxRow, StatusChange,
};
use verdict::telemetry::Metrics;

const TOKEN: &str = "glsa_verdict_test_token";
const DASHBOARD: &str = "verdict-canary";
/// Flagger's interval, in real time here (60 simulated seconds).
const INTERVAL: Duration = Duration::from_millis(500);
const STEP_WEIGHTS: [u32; 5] = [5, 10, 20, 30, 50];
const MAX_TICKS: u32 = 60;

// ------------------------------------------------------------------ fake Grafana

/// What the fake Grafana saw. It outlives restarts of the server, like Grafana's database.
#[derive(Debug, Default)]
struct Seen {
    /// Every request to /api/annotations, accepted or not.
    requests: usize,
    /// Accepted annotations by the id Grafana gave them.
    stored: BTreeMap<i64, Value>,
}

#[derive(Clone, Default)]
struct FakeGrafana {
    seen: Arc<Mutex<Seen>>,
}

impl FakeGrafana {
    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("fake grafana state"))
    }

    /// Serves on `addr` (port 0 the first time) until the returned handle stops it.
    async fn serve(&self, addr: SocketAddr) -> RunningGrafana {
        let listener = TcpListener::bind(addr).await.expect("bind fake grafana");
        let addr = listener.local_addr().expect("fake grafana addr");
        let app = Router::new()
            .route("/api/annotations", post(create_annotation))
            .with_state(self.clone());
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await;
        });
        RunningGrafana { addr, stop, task }
    }
}

struct RunningGrafana {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGrafana {
    async fn stop(self) -> SocketAddr {
        self.stop.cancel();
        let _ = self.task.await;
        self.addr
    }
}

/// Grafana's contract: bearer token, a JSON object with a numeric `time`, string `tags`
/// and `text`; optional numeric `timeEnd` and string `dashboardUID`.
async fn create_annotation(
    State(grafana): State<FakeGrafana>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let mut seen = grafana.seen.lock().expect("fake grafana state");
    seen.requests += 1;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        );
    }
    let json_content = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return bad("body is not JSON");
    };
    let valid = json_content
        && value["time"].is_i64()
        && value["text"].is_string()
        && value["tags"]
            .as_array()
            .is_some_and(|t| t.iter().all(Value::is_string))
        && value.get("timeEnd").is_none_or(Value::is_i64)
        && value.get("dashboardUID").is_none_or(Value::is_string);
    if !valid {
        return bad("missing or mistyped field");
    }
    let id = i64::try_from(seen.stored.len()).unwrap_or(0) + 1;
    seen.stored.insert(id, value);
    (
        StatusCode::OK,
        Json(json!({"id": id, "message": "Annotation added"})),
    )
}

fn bad(message: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message })))
}

// ------------------------------------------------------------------ backends

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    outbox_rows_are_written_with_their_decision_and_leased,
    annotations_survive_a_grafana_outage_and_arrive_once,
    two_workers_deliver_each_row_once,
    nothing_is_written_when_grafana_is_off,
    manual_gate_actions_are_annotated_once,
);

// ------------------------------------------------------------------ verdict under test

fn grafana_settings(addr: SocketAddr) -> GrafanaSettings {
    GrafanaSettings {
        url: Some(format!("http://{addr}")),
        token: Some(TOKEN.to_owned().into()),
        dashboard_uid: Some(DASHBOARD.to_owned()),
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(50),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        lease: Duration::from_secs(5),
        batch: 4,
    }
}

/// verdict with simulated SLIs (as in `verdict demo`), the API on, annotations to the
/// given Grafana or off.
async fn start_verdict(backend: Backend, grafana: Option<GrafanaSettings>) -> TestApp {
    spawn_app(AppOptions {
        store: backend,
        grafana,
        min_look_gap: Duration::from_millis(200),
        ..AppOptions {
            jwt: Some(support::app::hs256_api()),
            ..AppOptions::simulated(7)
        }
    })
    .await
}

/// Adds a service whose canary has `error_ratio` times the primary's error rate.
fn add_service(app: &TestApp, name: &str, error_ratio: f64) {
    app.simulator()
        .add_service(
            &ns(),
            &CanaryName::parse(name).expect("name"),
            ServiceProfile {
                workload: Workload {
                    total_rps: 200.0,
                    ..Workload::reference()
                },
                effect: CanaryEffect {
                    error_ratio,
                    ..CanaryEffect::none()
                },
            },
        )
        .expect("service");
}

fn ns() -> Namespace {
    Namespace::parse("shop").expect("namespace")
}

#[derive(Debug, PartialEq)]
enum End {
    Promoted,
    RolledBack,
}

/// Plays Flagger's loop for one canary and repeats the hooks Flagger may repeat
/// (confirm-promotion, rollback, post-rollout), which must not annotate twice.
async fn rollout(v: &TestApp, name: &str, checksum: &str) -> End {
    let flagger = &v.client;
    let sli = v.simulator();
    let target = CanaryName::parse(name).expect("name");
    let payload = |phase: &str| Payload {
        name: name.to_owned(),
        namespace: ns().to_string(),
        phase: phase.to_owned(),
        checksum: checksum.to_owned(),
        metadata: [("template".to_owned(), "istio".to_owned())].into(),
    };
    let call = |hook: &'static str, phase: &'static str| {
        let body = payload(phase);
        async move { flagger.call(hook, &body).await }
    };
    assert!(call("confirm-rollout", "Initialized").await.passed());
    let pre = call("pre-rollout", "Progressing").await;
    assert!(pre.passed(), "pre-rollout: {pre:?}");
    assert!(
        call("pre-rollout", "Progressing").await.passed(),
        "pre-rollout repeated"
    );
    let mut step = 0;
    sli.set_weight(&ns(), &target, f64::from(STEP_WEIGHTS[0]) / 100.0)
        .expect("weight");
    for _ in 0..MAX_TICKS {
        tokio::time::sleep(INTERVAL).await;
        if call("rollback", "Progressing").await.passed() {
            assert!(
                call("rollback", "Progressing").await.passed(),
                "rollback repeated"
            );
            sli.set_weight(&ns(), &target, 0.0).expect("weight");
            assert!(call("post-rollout", "Failed").await.passed());
            assert!(call("post-rollout", "Failed").await.passed());
            return End::RolledBack;
        }
        let rollout = call("rollout", "Progressing").await;
        if !rollout.passed() {
            assert_eq!(rollout.status, 422, "{rollout:?}");
            continue;
        }
        if step + 1 < STEP_WEIGHTS.len() {
            if call("confirm-traffic-increase", "Progressing")
                .await
                .passed()
            {
                step += 1;
                sli.set_weight(&ns(), &target, f64::from(STEP_WEIGHTS[step]) / 100.0)
                    .expect("weight");
            }
            continue;
        }
        if call("confirm-promotion", "Progressing").await.passed() {
            let again = call("confirm-promotion", "Progressing").await;
            assert!(again.passed(), "confirm-promotion repeated: {again:?}");
            sli.set_weight(&ns(), &target, 0.0).expect("weight");
            assert!(call("post-rollout", "Succeeded").await.passed());
            assert!(call("post-rollout", "Succeeded").await.passed());
            return End::Promoted;
        }
    }
    panic!("{name}: neither promoted nor rolled back after {MAX_TICKS} intervals");
}

/// Polls `check` every 50 ms for up to `limit`; false when it never held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// The (canary, outcome) pairs Grafana stored, in the order they arrived.
fn stored_pairs(grafana: &FakeGrafana) -> Vec<(String, String)> {
    grafana.seen(|s| {
        s.stored
            .values()
            .map(|v| {
                let tag = |i: usize| v["tags"][i].as_str().unwrap_or_default().to_owned();
                assert_eq!(tag(0), "verdict", "{v}");
                assert_eq!(v["dashboardUID"], DASHBOARD, "{v}");
                (tag(1), tag(2))
            })
            .collect()
    })
}

/// The annotation an outbox row becomes.
fn annotation_of(row: &OutboxRow) -> verdict::grafana::Annotation {
    match &row.entry {
        OutboxEntry::Milestone(m) => annotation(m),
        other => panic!("row {} holds no milestone: {other:?}", row.id),
    }
}

/// The milestone an outbox row holds.
fn milestone_of(row: &OutboxRow) -> &Milestone {
    match &row.entry {
        OutboxEntry::Milestone(m) => m,
        other => panic!("row {} holds no milestone: {other:?}", row.id),
    }
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

fn pairs(canary: &str, outcomes: &[&str]) -> Vec<(String, String)> {
    outcomes
        .iter()
        .map(|o| (format!("shop/{canary}"), (*o).to_owned()))
        .collect()
}

// ------------------------------------------------------------------ tests

/// A good canary is promoted with Grafana up; then Grafana goes down and a bad canary is
/// rolled back. Every hook still answers while annotations pile up undelivered; when
/// Grafana returns (same port) each arrives exactly once, and the outbox holds Grafana's ids.
async fn annotations_survive_a_grafana_outage_and_arrive_once(backend: Backend) {
    let grafana = FakeGrafana::default();
    let running = grafana.serve(([127, 0, 0, 1], 0).into()).await;
    let addr = running.addr;
    let v = start_verdict(backend, Some(grafana_settings(addr))).await;
    add_service(&v, "checkout", 1.0);
    add_service(&v, "payments", 3.0);

    assert_eq!(rollout(&v, "checkout", "c0ffee01").await, End::Promoted);
    let good = pairs("checkout", &["started", "promoted", "succeeded"]);
    let arrived = eventually(Duration::from_secs(20), || async {
        v.store.outbox_backlog().await.expect("backlog") == 0
    })
    .await;
    assert!(
        arrived,
        "annotations of the promoted canary were not delivered"
    );
    assert_eq!(sorted(stored_pairs(&grafana)), sorted(good.clone()));

    // Grafana goes away.
    running.stop().await;
    assert_eq!(rollout(&v, "payments", "badc0de1").await, End::RolledBack);
    let bad = pairs("payments", &["started", "regression", "rolled-back"]);
    // The hooks answered while their annotations wait; the worker did try and failed.
    let backlog = v.store.outbox_backlog().await.expect("backlog");
    assert_eq!(
        backlog, 3,
        "the rolled-back canary's annotations wait in the outbox"
    );
    let tried = eventually(Duration::from_secs(10), || async {
        v.store
            .outbox(100)
            .await
            .expect("outbox")
            .iter()
            .filter(|r| r.delivered_at.is_none())
            .all(|r| r.attempts >= 1 && r.last_error.is_some())
    })
    .await;
    assert!(tried, "the worker kept trying while Grafana was down");
    assert_eq!(
        grafana.seen(|s| s.stored.len()),
        3,
        "nothing arrived during the outage"
    );

    // Grafana comes back on the same port.
    let running = grafana.serve(addr).await;
    let arrived = eventually(Duration::from_secs(20), || async {
        v.store.outbox_backlog().await.expect("backlog") == 0
    })
    .await;
    assert!(
        arrived,
        "the backlog was not delivered after Grafana returned"
    );
    // Give a would-be duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut expected = good;
    expected.extend(bad);
    assert_eq!(sorted(stored_pairs(&grafana)), sorted(expected));
    assert_eq!(
        grafana.seen(|s| s.requests),
        6,
        "each annotation was sent exactly once"
    );

    // The outbox remembers Grafana's id of each row.
    let rows = v.store.outbox(100).await.expect("outbox");
    assert_eq!(rows.len(), 6);
    let stored = grafana.seen(|s| s.stored.clone());
    for row in &rows {
        let id: i64 = row
            .external_id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("row {} has no Grafana id", row.id));
        assert_eq!(stored[&id]["text"], annotation_of(row).text.as_str());
        assert!(row.delivered_at.is_some());
    }
    let annotations: Vec<_> = rows.iter().map(annotation_of).collect();
    let regression = annotations
        .iter()
        .find(|a| a.tags.iter().any(|t| t == "regression"))
        .expect("regression row");
    assert!(
        regression.text.contains("error"),
        "the regression annotation gives the reason: {}",
        regression.text
    );
    let succeeded = annotations
        .iter()
        .find(|a| a.tags.iter().any(|t| t == "succeeded"))
        .expect("succeeded row");
    assert!(
        succeeded.time_end.is_some_and(|end| end > succeeded.time),
        "a succeeded rollout spans the analysis"
    );

    v.shutdown().await;
    running.stop().await;
}

/// The store's side, without HTTP: annotations enter the outbox only with their decision
/// (a look that loses its race writes neither), a milestone key enters once, and a
/// claimed row is invisible to other claimers until its lease runs out or it is released;
/// a delivered row is never claimed again.
async fn outbox_rows_are_written_with_their_decision_and_leased(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let key = AnalysisKey {
        namespace: ns(),
        name: CanaryName::parse("checkout").expect("name"),
        checksum: Checksum::parse("abc123").expect("checksum"),
    };
    let settings = verdict::domain::AnalysisSettings {
        canary: verdict::analysis::settings::resolve(
            &key.name,
            &Default::default(),
            &verdict::config::Config::default(),
        )
        .expect("settings"),
        plan: None,
        boundary_s: None,
        slo_boundary_s: None,
    };
    let (analysis, _) = store
        .open_analysis(&NewAnalysis {
            key: key.clone(),
            settings,
            started_at: 1_000,
            baseline: None,
        })
        .await
        .expect("open");
    let arm = ArmTally {
        requests: 100,
        errors: 5,
        slower: vec![1],
    };
    let look = NewLook {
        analysis_id: analysis.id,
        seq: 1,
        window_start: 1_000,
        window_end: 2_000,
        canary: arm.clone(),
        primary: arm,
        verdict: "fail".into(),
        reason: "error ratio above 1.1".into(),
        evidence: "{}".into(),
        counters: None,
    };
    let regression = Milestone {
        kind: MilestoneKind::Regression,
        canary: key.canary(),
        analysis: Some(MilestoneAnalysis {
            id: analysis.id,
            checksum: key.checksum.clone(),
            controller: verdict::domain::Controller::Flagger,
        }),
        actor: None,
        detail: "error ratio above 1.1".into(),
        time: 2_000,
        since: None,
    };
    let decision = NewDecision {
        analysis_id: Some(analysis.id),
        key: key.clone(),
        hook: "rollout".into(),
        verdict: "fail".into(),
        status_code: 422,
        reason: "error ratio above 1.1".into(),
        evidence: None,
        request_id: "r1".into(),
        created_at: 2_000,
        milestones: vec![regression.clone()],
    };
    let failed = StatusChange {
        status: AnalysisStatus::Failed,
        reason: "error ratio above 1.1".into(),
        at: 2_000,
    };
    let first = store
        .record_look(&look, &decision, Some(&failed))
        .await
        .expect("look");
    assert!(matches!(first, LookInsert::Inserted(_)));
    assert_eq!(store.outbox(10).await.expect("outbox").len(), 1);
    // A replica that computed the same look loses the race: nothing of it is written,
    // not even a milestone no key would stop.
    let loser = NewDecision {
        milestones: vec![action(MilestoneKind::GateHeld, "race", "x", 2_000)],
        ..decision.clone()
    };
    let second = store
        .record_look(&look, &loser, Some(&failed))
        .await
        .expect("look again");
    assert!(matches!(second, LookInsert::Exists(_)));
    assert_eq!(store.outbox(10).await.expect("outbox").len(), 1);
    // The same milestone through another decision: the key keeps it to one row.
    store
        .record_decision(&decision, None)
        .await
        .expect("decision");
    let rows = store.outbox(10).await.expect("outbox");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(milestone_of(&rows[0]), &regression);
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 1);

    // Leases.
    let manual = action(MilestoneKind::GateOpened, "bob", "go", 3_000);
    let manual_id = store
        .enqueue_milestone(&manual)
        .await
        .expect("enqueue")
        .expect("manual actions are never deduplicated");
    let now = now_millis();
    let claimed = store
        .claim_outbox(now, now + 10_000, 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.attempts).collect::<Vec<_>>(),
        [1, 1]
    );
    assert!(
        store
            .claim_outbox(now + 1, now + 10_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased rows are not claimed twice"
    );
    // An expired lease (a replica died mid-delivery) frees the row.
    let reclaimed = store
        .claim_outbox(now + 10_000, now + 20_000, 10)
        .await
        .expect("claim");
    assert_eq!(reclaimed.len(), 2);
    assert!(reclaimed.iter().all(|r| r.attempts == 2));
    // Delivered: never again. Failed: due again only at its retry time.
    assert!(store
        .outbox_delivered(rows[0].id, Some("41"), now)
        .await
        .expect("delivered"));
    assert!(!store
        .outbox_delivered(rows[0].id, Some("42"), now)
        .await
        .expect("delivered twice"));
    store
        .outbox_failed(manual_id, "grafana answered 503", now + 30_000)
        .await
        .expect("failed");
    assert!(store
        .claim_outbox(now + 20_000, now + 40_000, 10)
        .await
        .expect("claim")
        .is_empty());
    let due = store
        .claim_outbox(now + 30_000, now + 40_000, 10)
        .await
        .expect("claim");
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), [manual_id]);
    assert_eq!(due[0].last_error.as_deref(), Some("grafana answered 503"));
    let rows = store.outbox(10).await.expect("outbox");
    assert_eq!(rows[0].external_id.as_deref(), Some("41"));
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 1);
    db.drop_database().await;
}

/// A person's action on shop/checkout (these may repeat: no once-only key).
fn action(kind: MilestoneKind, actor: &str, detail: &str, time: i64) -> Milestone {
    Milestone {
        kind,
        canary: CanaryRef {
            namespace: ns(),
            name: CanaryName::parse("checkout").expect("name"),
        },
        analysis: None,
        actor: Some(actor.to_owned()),
        detail: detail.to_owned(),
        time,
        since: None,
    }
}

/// Two replicas' workers over one database, racing for the same rows: each row reaches
/// Grafana exactly once.
async fn two_workers_deliver_each_row_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let grafana = FakeGrafana::default();
    let running = grafana.serve(([127, 0, 0, 1], 0).into()).await;
    let settings = grafana_settings(running.addr);
    let store = db.store().await;
    let n = 40;
    for i in 0..n {
        let a = action(
            MilestoneKind::GateHeld,
            "alice",
            &format!("hold {i}"),
            now_millis(),
        );
        assert!(store
            .enqueue_milestone(&a)
            .await
            .expect("enqueue")
            .is_some());
    }
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let replica_store = db.store().await;
        let worker = Worker::new(&settings, replica_store, Metrics::new()).expect("worker");
        workers.push(tokio::spawn(worker.run(stop.clone())));
    }
    let done = eventually(Duration::from_secs(20), || async {
        store.outbox_backlog().await.expect("backlog") == 0
    })
    .await;
    assert!(done, "the outbox was not drained");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for w in workers {
        w.await.expect("worker stops");
    }
    let texts: Vec<String> = grafana.seen(|s| {
        s.stored
            .values()
            .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    });
    assert_eq!(grafana.seen(|s| s.requests), n, "one request per row");
    let unique: std::collections::BTreeSet<_> = texts.iter().collect();
    assert_eq!(unique.len(), n, "no row was sent twice");
    running.stop().await;
    db.drop_database().await;
}

/// Without `grafana.url` no worker runs and no annotation is written: hooks that would
/// annotate leave the outbox empty.
async fn nothing_is_written_when_grafana_is_off(backend: Backend) {
    let v = start_verdict(backend, None).await;
    add_service(&v, "checkout", 1.0);
    let reply = v
        .call(
            "pre-rollout",
            &Payload {
                name: "checkout".into(),
                namespace: "shop".into(),
                phase: "Progressing".into(),
                checksum: "c0ffee02".into(),
                metadata: Default::default(),
            },
        )
        .await;
    assert!(reply.passed(), "{reply:?}");
    let decisions = v
        .store
        .decisions_for(&CanaryRef::parse("shop/checkout").expect("canary"))
        .await
        .expect("decisions");
    assert_eq!(decisions.len(), 1, "the answer was recorded");
    assert!(v.store.outbox(10).await.expect("outbox").is_empty());
    assert!(
        !Metrics::new().encode().is_empty(),
        "metrics still encode without Grafana"
    );
    v.shutdown().await;
}

/// A release manager's token for the API of [`start_verdict`]'s server.
fn release_manager(sub: &str) -> String {
    support::api::token("release-manager", sub)
}

/// Holding and opening a gate and asking for a rollback each put one annotation in the
/// outbox with the audit row; each reaches Grafana once, naming who did it and why.
async fn manual_gate_actions_are_annotated_once(backend: Backend) {
    let grafana = FakeGrafana::default();
    let running = grafana.serve(([127, 0, 0, 1], 0).into()).await;
    let v = start_verdict(backend, Some(grafana_settings(running.addr))).await;
    add_service(&v, "checkout", 1.0);
    let reply = v
        .call(
            "pre-rollout",
            &Payload {
                name: "checkout".into(),
                namespace: "shop".into(),
                phase: "Progressing".into(),
                checksum: "c0ffee03".into(),
                metadata: Default::default(),
            },
        )
        .await;
    assert!(reply.passed(), "{reply:?}");

    let http = reqwest::Client::new();
    let alice = release_manager("alice");
    let gate = format!(
        "{}/api/v1/canaries/shop/checkout/gates/promotion",
        v.base_url()
    );
    for (state, reason) in [("held", "launch on Monday"), ("open", "launch is live")] {
        let r = http
            .put(&gate)
            .bearer_auth(&alice)
            .json(&json!({"state": state, "reason": reason}))
            .send()
            .await
            .expect("set gate");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let r = http
        .post(format!(
            "{}/api/v1/canaries/shop/checkout/rollback",
            v.base_url()
        ))
        .bearer_auth(release_manager("bob"))
        .json(&json!({"reason": "502s in eu-west"}))
        .send()
        .await
        .expect("rollback");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let delivered = eventually(Duration::from_secs(20), || async {
        v.store.outbox_backlog().await.expect("backlog") == 0
    })
    .await;
    assert!(delivered, "manual-action annotations were not delivered");
    assert_eq!(
        sorted(stored_pairs(&grafana)),
        sorted(pairs(
            "checkout",
            &["started", "gate-held", "gate-opened", "rollback-requested"]
        ))
    );
    let texts: Vec<String> = grafana.seen(|s| {
        s.stored
            .values()
            .filter_map(|v| v["text"].as_str().map(str::to_owned))
            .collect()
    });
    for needle in [
        "by alice: promotion gate: launch on Monday",
        "by alice: promotion gate: launch is live",
        "by bob: 502s in eu-west",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "no annotation says {needle:?}: {texts:#?}"
        );
    }
    v.shutdown().await;
    running.stop().await;
}

// ------------------------------------------------------------------ the console's link

/// Signs a viewer in to `v`'s console and returns the analysis page of `id`.
async fn console_analysis_page(v: &TestApp, id: i64) -> String {
    let base = v.base_url();
    let viewer = support::api::token("viewer", "vera");
    let (http, session) = support::api::console_session(&base, &viewer).await;
    let r = http
        .get(format!("{base}/ui/analyses/{id}"))
        .header("cookie", session)
        .send()
        .await
        .expect("analysis page");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body")
}

/// The console's analysis page links to the canary dashboard verdict ships
/// (`dashboards/canary-analysis.json`): its uid, its template variables, the analysis'
/// time range. Without `grafana.url` there is no link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_links_an_analysis_to_the_shipped_grafana_dashboard() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("dashboards/canary-analysis.json"),
        )
        .expect("the shipped dashboard"),
    )
    .expect("dashboard JSON");
    let uid = dashboard["uid"].as_str().expect("uid");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();

    let grafana = FakeGrafana::default();
    let running = grafana.serve(([127, 0, 0, 1], 0).into()).await;
    for grafana_on in [true, false] {
        // The default dashboard uid: what a user who imported the shipped dashboard has.
        let settings = grafana_on.then(|| GrafanaSettings {
            dashboard_uid: None,
            ..grafana_settings(running.addr)
        });
        let v = start_verdict(Backend::Sqlite, settings).await;
        add_service(&v, "checkout", 1.0);
        let p = Payload {
            name: "checkout".into(),
            namespace: "shop".into(),
            phase: "Progressing".into(),
            checksum: "c0ffee04".into(),
            metadata: Default::default(),
        };
        assert!(v.call("pre-rollout", &p).await.passed());
        let analysis = v.analysis(&p).await.expect("analysis");
        let html = console_analysis_page(&v, analysis.id.get()).await;
        let link = html
            .split("href=\"")
            .find(|s| s.contains(">Canary dashboard<"))
            .and_then(|s| s.split('"').next())
            .map(|href| href.replace("&amp;", "&"));
        if !grafana_on {
            assert_eq!(link, None, "no grafana.url, no link");
            v.shutdown().await;
            continue;
        }
        let link = link.expect("a link to the dashboard");
        assert_eq!(
            link,
            format!(
                "http://{}/d/{uid}?var-namespace=shop&var-canary=checkout&from={}&to=now",
                running.addr, analysis.started_at
            )
        );
        for param in link
            .split(['?', '&'])
            .filter_map(|p| p.strip_prefix("var-"))
        {
            let name = param.split('=').next().expect("name");
            assert!(
                variables.contains(&name),
                "the dashboard has no variable {name}: {variables:?}"
            );
        }
        v.shutdown().await;
    }
    running.stop().await;
}
