//! What operators and the remaining hooks see: health, readiness, metrics, events,
//! unknown hooks, the rollout gate and adaptive traffic steps.

use std::time::Duration;

use support::app::{
    canary, eventually, next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS, NS,
};
use support::exporter::Profile;

async fn app_with_traffic() -> TestApp {
    let app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    app
}

/// The value of one `verdict_hook_calls_total` series, 0 when absent.
fn hook_calls(metrics: &str, hook: &str, outcome: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("verdict_hook_calls_total{"))
        .filter(|l| l.contains(&format!("hook=\"{hook}\"")))
        .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn health_metrics_events_and_unknown_hooks() {
    let app = app_with_traffic().await;

    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200, "«{body}»");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "«{body}»");

    let (_, before) = app.get("/metrics").await;
    assert_eq!(hook_calls(&before, "confirm-rollout", "ok"), 0.0);

    // confirm-rollout: the gate is open by default.
    let p = payload("podinfo", "85d557f47b", &[("template", "istio")]);
    let mut initial = p.clone();
    initial.phase = "Initialized".into();
    let r = app.call("confirm-rollout", &initial).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    let r = app.call("confirm-rollout", &initial).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    assert_eq!(app.call("rollback", &p).await.status, 409);

    // Unknown hooks are 404 with the list of known ones.
    let r = app.call("promote-now", &p).await;
    assert_eq!(r.status, 404, "«{}»", r.body);
    assert!(
        r.body.contains("confirm-promotion"),
        "the reason lists the hooks verdict serves: «{}»",
        r.body
    );
    assert!(app
        .decisions_for("podinfo")
        .await
        .iter()
        .all(|d| d.decision.hook != "promote-now"));

    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        hook_calls(&metrics, "confirm-rollout", "ok"),
        2.0,
        "{metrics}"
    );
    assert_eq!(hook_calls(&metrics, "pre-rollout", "ok"), 1.0, "{metrics}");
    assert_eq!(
        hook_calls(&metrics, "rollout", "wait") + hook_calls(&metrics, "rollout", "pass"),
        1.0,
        "{metrics}"
    );
    assert_eq!(hook_calls(&metrics, "rollback", "wait"), 1.0, "{metrics}");
    assert_eq!(
        hook_calls(&metrics, "unknown", "rejected"),
        1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("verdict_decision_seconds"),
        "decision latency histogram missing:\n{metrics}"
    );
    assert!(
        metrics.contains("verdict_prometheus_query_seconds"),
        "Prometheus query latency missing:\n{metrics}"
    );

    // The event hook answers 202 at once; the event reaches the store shortly after.
    let mut event = p.clone();
    event.metadata = [
        ("eventMessage", "Advance podinfo.test canary weight 20"),
        ("eventType", "Normal"),
        ("timestamp", "1795330944676"),
        ("cluster", "prod-eu"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let r = app.call("event", &event).await;
    assert_eq!(r.status, 202, "«{}»", r.body);
    let stored = eventually("the event in the store", Duration::from_secs(10), || {
        let app = &app;
        async move {
            let events = app.store.events(&canary(NS, "podinfo")).await.ok()?;
            events.into_iter().next()
        }
    })
    .await;
    assert_eq!(
        stored.event.message,
        "Advance podinfo.test canary weight 20"
    );
    assert_eq!(stored.event.event_type, "Normal");
    assert_eq!(stored.event.key.checksum.as_str(), "85d557f47b");
    assert_eq!(stored.event.event_time, Some(1_795_330_944_676));
    assert!(stored.event.metadata.contains("prod-eu"));
    app.shutdown().await;
}

/// Calls rollout until the looks taken from now on hold at least `requests` canary
/// requests.
async fn serve_canary_requests(app: &TestApp, p: &support::flagger::Payload, requests: u64) {
    let analysis = app.analysis(p).await.expect("analysis");
    let start = app.looks(analysis.id).await.len();
    for _ in 0..10 {
        next_look().await;
        let r = app.call("rollout", p).await;
        assert_eq!(r.status, 200, "«{}»", r.body);
        let served: u64 = app.looks(analysis.id).await[start..]
            .iter()
            .map(|l| l.look.canary.requests)
            .sum();
        if served >= requests {
            return;
        }
    }
    panic!("the canary did not serve {requests} requests in 10 looks");
}

#[tokio::test]
async fn traffic_increase_waits_for_the_step_minimum() {
    let app = app_with_traffic().await;
    // Flagger sends each webhook's own metadata; this Canary gives the same to all.
    let meta = &[("template", "istio"), ("minStepRequests", "300")];
    let p = payload("podinfo", "85d557f47b", meta);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);

    let r = app.call("confirm-traffic-increase", &p).await;
    assert_eq!(r.status, 412, "no canary requests yet: «{}»", r.body);
    assert!(
        r.body.contains("300"),
        "the reason names the minimum: «{}»",
        r.body
    );

    serve_canary_requests(&app, &p, 300).await;
    let r = app.call("confirm-traffic-increase", &p).await;
    assert_eq!(r.status, 200, "step minimum served: «{}»", r.body);

    // A new step starts at the increase: it must serve its own minimum again.
    let r = app.call("confirm-traffic-increase", &p).await;
    assert_eq!(r.status, 412, "new step: «{}»", r.body);
    serve_canary_requests(&app, &p, 300).await;
    let r = app.call("confirm-traffic-increase", &p).await;
    assert_eq!(r.status, 200, "second step served: «{}»", r.body);
    app.shutdown().await;
}

#[tokio::test]
async fn traffic_increase_minimum_set_on_its_own_webhook() {
    let app = app_with_traffic().await;
    // Each Flagger webhook carries its own metadata: the natural place for
    // minStepRequests is the confirm-traffic-increase webhook alone.
    let analysis_hooks = payload("podinfo", "85d557f47b", &[("template", "istio")]);
    let increase_hook = payload(
        "podinfo",
        "85d557f47b",
        &[("template", "istio"), ("minStepRequests", "300")],
    );
    assert_eq!(app.call("pre-rollout", &analysis_hooks).await.status, 200);
    let r = app.call("confirm-traffic-increase", &increase_hook).await;
    assert_eq!(r.status, 412, "no canary requests yet: «{}»", r.body);
    serve_canary_requests(&app, &analysis_hooks, 300).await;
    let r = app.call("confirm-traffic-increase", &increase_hook).await;
    assert_eq!(r.status, 200, "step minimum served: «{}»", r.body);
    app.shutdown().await;
}
