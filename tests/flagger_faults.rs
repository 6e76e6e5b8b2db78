//! Faults mid-analysis: Prometheus stops and comes back, the server restarts. In both
//! cases the analysis continues from the store with its evidence intact.

use std::time::Duration;

use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, FAST_MS};
use support::exporter::Profile;
use verdict::store::LookRow;

const META: &[(&str, &str)] = &[("template", "istio"), ("minCanaryRequests", "100000")];

/// The judge's totals as stored with a look's evidence.
fn evidence_totals(look: &LookRow) -> (u64, u64) {
    let evidence: serde_json::Value =
        serde_json::from_str(&look.look.evidence).expect("look evidence is JSON");
    let judge = &evidence["judge"];
    (
        judge["looks"].as_u64().expect("evidence.judge.looks"),
        judge["canary"]["requests"]
            .as_u64()
            .expect("evidence.judge.canary.requests"),
    )
}

#[tokio::test]
async fn prometheus_down_is_424_without_evidence_and_the_analysis_continues() {
    let mut app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "85d557f47b", META);

    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    let analysis = app.analysis(&p).await.expect("analysis");
    let before = app.looks(analysis.id).await;
    assert_eq!(before.len(), 1);

    app.prometheus_mut().stop().await;
    // Ready means the store answers: the API and the gates stay reachable, and the hooks
    // below answer 424 with the reason instead of a refused connection.
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "readyz with Prometheus down: «{body}»");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "verdict_prometheus_up 0"),
        "/metrics shows Prometheus down:\n{metrics}"
    );

    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 424, "rollout with Prometheus down: «{}»", r.body);
    assert!(
        r.body.contains("Prometheus"),
        "the reason should name Prometheus: «{}»",
        r.body
    );
    assert_eq!(
        app.looks(analysis.id).await,
        before,
        "no look is recorded when the SLIs cannot be read"
    );
    let last = app
        .decisions(analysis.id)
        .await
        .pop()
        .expect("the failed call is recorded");
    assert_eq!(last.decision.status_code, 424);
    assert_eq!(last.decision.verdict, "error");
    // A 424 is not a verdict: rollback must not start.
    let r = app.call("rollback", &p).await;
    assert_eq!(r.status, 409, "«{}»", r.body);

    app.restart_prometheus().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "readyz with Prometheus back: «{body}»");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "verdict_prometheus_up 1"),
        "/metrics shows Prometheus up:\n{metrics}"
    );
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "rollout with Prometheus back: «{}»", r.body);

    assert_eq!(app.analysis(&p).await.map(|a| a.id), Some(analysis.id));
    let after = app.looks(analysis.id).await;
    assert_eq!(after.len(), 2, "the next look continues the analysis");
    assert_eq!(after[0], before[0], "earlier evidence is untouched");
    assert_eq!(after[1].look.seq, 2);
    assert_eq!(
        after[1].look.window_start, after[0].look.window_end,
        "the new look covers the outage window"
    );
    assert_eq!(
        evidence_totals(&after[1]),
        (
            2,
            after[0].look.canary.requests + after[1].look.canary.requests
        ),
        "the judge's evidence accumulates both looks"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn slow_prometheus_is_424_and_records_no_look() {
    let mut app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "85d557f47b", META);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    let analysis = app.analysis(&p).await.expect("analysis");

    // A listener that accepts and never answers: Prometheus hung.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    app.stop_server().await;
    app.prometheus_mut().stop().await;
    app.set_prometheus_url(format!("http://{hung_addr}"));
    app.restart_server().await;

    next_look().await;
    let started = std::time::Instant::now();
    let r = app.call("rollout", &p).await;
    let took = started.elapsed();
    assert_eq!(r.status, 424, "rollout with Prometheus hung: «{}»", r.body);
    assert!(
        r.body.contains("did not answer within"),
        "the reason should say Prometheus timed out: «{}»",
        r.body
    );
    // Flagger gives a hook 10 s; the configured 2 s timeout must bound the answer.
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
    assert!(app.looks(analysis.id).await.is_empty());
    accept.abort();
    app.shutdown().await;
}

#[tokio::test]
async fn server_restart_mid_analysis_continues_the_same_analysis() {
    let mut app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "85d557f47b", META);

    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    for _ in 0..2 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_eq!(r.status, 200, "«{}»", r.body);
    }
    let analysis = app.analysis(&p).await.expect("analysis");
    let before = app.looks(analysis.id).await;
    assert_eq!(before.len(), 2);
    let decisions_before = app.decisions(analysis.id).await.len();
    let old_addr = app.addr;

    app.restart_server().await;
    assert_ne!(app.addr, old_addr, "a new server (new port) answers now");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);

    // A repeated pre-rollout after the restart finds the same analysis.
    let r = app.call("pre-rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    assert!(r.body.contains("already open"), "«{}»", r.body);

    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);

    let again = app.analysis(&p).await.expect("analysis");
    assert_eq!(again.id, analysis.id, "the same analysis continues");
    let after = app.looks(analysis.id).await;
    assert_eq!(after.len(), 3);
    assert_eq!(
        &after[..2],
        &before[..],
        "earlier evidence is kept as it was"
    );
    assert_eq!(after[2].look.seq, 3, "seq continues");
    assert_eq!(after[2].look.window_start, after[1].look.window_end);
    let canary_total: u64 = after.iter().map(|l| l.look.canary.requests).sum();
    assert_eq!(
        evidence_totals(&after[2]),
        (3, canary_total),
        "the new server's judge replayed the stored looks"
    );
    assert_eq!(
        app.decisions(analysis.id).await.len(),
        decisions_before + 2,
        "the new server records its answers in the same analysis"
    );

    // The new server's promotion answer rests on all three looks.
    let r = app.call("confirm-promotion", &p).await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    // Written before it was answered, so it is there now.
    let stored = app
        .decisions(analysis.id)
        .await
        .into_iter()
        .next_back()
        .filter(|d| d.decision.hook == "confirm-promotion")
        .expect("the promotion answer is the last decision");
    let evidence: serde_json::Value = serde_json::from_str(
        stored
            .decision
            .evidence
            .as_deref()
            .expect("promotion answer has evidence"),
    )
    .expect("JSON");
    assert_eq!(evidence["looks"].as_u64(), Some(3), "{evidence}");
    app.shutdown().await;
}

/// A stop signal lets a hook that is already being answered finish: Flagger gets its
/// answer, not a reset connection, when a replica is rolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_hook_finish() {
    let mut app = spawn_app(AppOptions {
        prometheus_timeout: Duration::from_secs(1),
        ..AppOptions::default()
    })
    .await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "85d557f47b", META);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);

    // Prometheus hangs; its listener reports when verdict's query arrives, which is
    // when the rollout hook is certainly in flight.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let (queried_tx, mut queried_rx) = tokio::sync::mpsc::channel::<()>(16);
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
            let _ = queried_tx.try_send(());
        }
    });
    app.stop_server().await;
    app.prometheus_mut().stop().await;
    app.set_prometheus_url(format!("http://{hung_addr}"));
    app.restart_server().await;
    next_look().await;

    let in_flight = {
        let client = app.client.clone();
        let p = p.clone();
        tokio::spawn(async move { client.try_call("rollout", &p).await })
    };
    queried_rx
        .recv()
        .await
        .expect("verdict queried the (hung) Prometheus");
    app.stop_server().await;
    let reply = in_flight
        .await
        .expect("client task")
        .expect("the in-flight hook was answered, not cut off");
    assert_eq!(reply.status, 424, "«{}»", reply.body);
    assert!(
        app.client.try_call("rollout", &p).await.is_err(),
        "the stopped server still accepts calls"
    );
    accept.abort();
    app.shutdown().await;
}
