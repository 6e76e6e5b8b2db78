//! The analysis loop end to end, as Flagger drives it: real server on port 0, real
//! Postgres, real Prometheus scraping an Istio-style exporter.

use std::time::Duration;

use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, FAST_MS};
use support::exporter::Profile;
use support::flagger::HookReply;
use verdict::store::AnalysisStatus;

/// Per-canary settings that make promotion reachable within seconds of test traffic:
/// the judge is the real one, only the minimum canary traffic is lowered.
const QUICK: &[(&str, &str)] = &[
    ("template", "istio"),
    ("minCanaryRequests", "200"),
    ("promotionMargin", "1.0"),
];

fn assert_reply(reply: &HookReply, status: u16, what: &str) {
    assert_eq!(
        reply.status, status,
        "{what}: expected {status}, got {} «{}»",
        reply.status, reply.body
    );
    assert!(!reply.body.is_empty(), "{what}: the answer has no reason");
    assert!(
        !reply.body.contains('\n'),
        "{what}: the reason is not one line: {:?}",
        reply.body
    );
}

#[tokio::test]
async fn good_canary_is_promoted_and_every_answer_is_a_decision_row() {
    let app = spawn_app(AppOptions::default()).await;
    // Identical arms: same traffic, same 3 % errors, same latency.
    let arm = Profile::fixed(200.0, 0.03, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;

    let p = payload("podinfo", "85d557f47b", QUICK);
    // (hook, status) of every call, in order, to compare with the decision rows.
    let mut calls: Vec<(&str, HookReply)> = Vec::new();

    let r = app.call("pre-rollout", &p).await;
    assert_reply(&r, 200, "pre-rollout");
    calls.push(("pre-rollout", r));

    let mut promoted = false;
    for look in 1..=15 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_reply(&r, 200, &format!("rollout look {look}"));
        calls.push(("rollout", r));
        let r = app.call("confirm-promotion", &p).await;
        let status = r.status;
        assert!(
            status == 200 || status == 412,
            "confirm-promotion look {look}: {status} «{}»",
            r.body
        );
        eprintln!("look {look}: confirm-promotion {status} «{}»", r.body);
        calls.push(("confirm-promotion", r));
        if status == 200 {
            promoted = true;
            break;
        }
    }
    let analysis = app
        .analysis(&p)
        .await
        .expect("pre-rollout opened an analysis");
    let looks = app.looks(analysis.id).await;
    assert!(
        promoted,
        "identical arms not promoted after {} looks; last answer «{}»; totals canary {:?} primary {:?}",
        looks.len(),
        calls.last().map(|(_, r)| r.body.as_str()).unwrap_or(""),
        looks.iter().map(|l| l.look.canary.requests).sum::<u64>(),
        looks.iter().map(|l| l.look.primary.requests).sum::<u64>(),
    );
    assert!(
        looks.len() >= 2,
        "promotion needs evidence from several looks, got {}",
        looks.len()
    );
    let first_promotion = &calls
        .iter()
        .find(|(h, _)| *h == "confirm-promotion")
        .expect("confirm-promotion called")
        .1;
    assert_eq!(
        first_promotion.status, 412,
        "promotion must not pass before any evidence: «{}»",
        first_promotion.body
    );

    let mut done = p.clone();
    done.phase = "Succeeded".into();
    let r = app.call("post-rollout", &done).await;
    assert_reply(&r, 200, "post-rollout");
    calls.push(("post-rollout", r));

    // Every answer is a decision row, in order, with the same status and reason.
    let decisions = app.decisions(analysis.id).await;
    assert_eq!(
        decisions.len(),
        calls.len(),
        "one decision row per answer: {:#?}",
        decisions
            .iter()
            .map(|d| (&d.decision.hook, d.decision.status_code))
            .collect::<Vec<_>>()
    );
    for ((hook, reply), row) in calls.iter().zip(&decisions) {
        let d = &row.decision;
        assert_eq!(d.hook, *hook);
        assert_eq!(d.status_code, i64::from(reply.status), "{hook}");
        assert_eq!(d.reason, reply.body, "{hook}: stored reason differs");
        assert_eq!(d.key.checksum.as_str(), p.checksum);
        let expected_verdicts: &[&str] = match (*hook, reply.status) {
            ("confirm-promotion", 200) => &["pass"],
            ("confirm-promotion", _) => &["wait"],
            ("rollout", _) => &["wait", "pass"],
            _ => &["ok"],
        };
        assert!(
            expected_verdicts.contains(&d.verdict.as_str()),
            "{hook} {}: verdict {}",
            reply.status,
            d.verdict
        );
    }
    // The looks each back one rollout decision.
    let rollouts = calls.iter().filter(|(h, _)| *h == "rollout").count();
    assert_eq!(looks.len(), rollouts, "one look per rollout call");
    let seqs: Vec<i64> = looks.iter().map(|l| l.look.seq).collect();
    assert_eq!(seqs, (1..=rollouts as i64).collect::<Vec<_>>());
    let canary: u64 = looks.iter().map(|l| l.look.canary.requests).sum();
    assert!(
        canary >= 200,
        "promoted after only {canary} canary requests"
    );

    let closed = app.analysis(&p).await.expect("analysis");
    assert_eq!(closed.status, AnalysisStatus::Succeeded);
    app.shutdown().await;
}

#[tokio::test]
async fn error_regression_is_rolled_back_within_a_few_looks() {
    let app = spawn_app(AppOptions::default()).await;
    let healthy = Profile::fixed(100.0, 0.005, FAST_MS);
    app.traffic("podinfo", healthy.clone(), healthy);
    warm_up().await;
    let p = payload("podinfo", "5f1e2d3c4b", &[("template", "istio")]);

    assert_reply(&app.call("pre-rollout", &p).await, 200, "pre-rollout");
    let r = app.call("rollback", &p).await;
    assert_reply(&r, 409, "rollback before any evidence");
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_reply(&r, 200, "rollout while the canary is healthy");
    let r = app.call("rollback", &p).await;
    assert_reply(&r, 409, "rollback while no regression is established");

    // The canary starts failing one request in five.
    app.exporter()
        .set_profile("test", "podinfo", Profile::fixed(100.0, 0.20, FAST_MS));
    let mut failed_at = None;
    for look in 1..=4 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        if r.status == 422 {
            failed_at = Some((look, r));
            break;
        }
        assert_reply(&r, 200, &format!("rollout look {look} into the regression"));
        let r = app.call("rollback", &p).await;
        assert_reply(&r, 409, "rollback while no regression is established");
    }
    let (look, reply) = failed_at.expect("20 % vs 0.5 % errors not detected within 4 looks");
    assert_reply(&reply, 422, "rollout on the regression");
    assert!(
        reply.body.contains("error"),
        "the reason should name the error rate: «{}»",
        reply.body
    );
    eprintln!("regression found at look {look}: {}", reply.body);

    let r = app.call("rollback", &p).await;
    assert_reply(&r, 200, "rollback after the regression");
    assert!(r.body.contains("roll back"), "«{}»", r.body);

    // Every later call for this revision keeps failing; promotion is refused.
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_reply(&r, 422, "rollout after the regression");
    let r = app.call("confirm-promotion", &p).await;
    assert_reply(&r, 412, "confirm-promotion after the regression");

    let analysis = app.analysis(&p).await.expect("analysis");
    assert_eq!(analysis.status, AnalysisStatus::Failed);
    assert_eq!(
        app.looks(analysis.id).await.len(),
        look + 1,
        "no look is taken once the regression is established"
    );
    let fails: Vec<_> = app
        .decisions(analysis.id)
        .await
        .into_iter()
        .filter(|d| d.decision.verdict == "fail")
        .map(|d| (d.decision.hook, d.decision.status_code))
        .collect();
    assert_eq!(
        fails,
        vec![
            ("rollout".to_owned(), 422),
            ("rollback".to_owned(), 200),
            ("rollout".to_owned(), 422),
            ("confirm-promotion".to_owned(), 412),
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn canary_without_traffic_is_never_promoted_and_fails_at_its_third_look() {
    let app = spawn_app(AppOptions::default()).await;
    // `ghost` never served a request: no series at all. `stalled` served, then stopped:
    // its series exist but stay flat.
    app.exporter()
        .set_profile("test", "ghost-primary", Profile::fixed(200.0, 0.0, FAST_MS));
    app.traffic(
        "stalled",
        Profile::fixed(200.0, 0.0, FAST_MS),
        Profile::fixed(200.0, 0.0, FAST_MS),
    );
    warm_up().await;
    app.exporter()
        .set_profile("test", "stalled", Profile::idle());
    // Let the last scrape with canary traffic fall behind the first window.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Even a Canary that asks for no minimum traffic must not pass on no evidence.
    let meta = &[("template", "istio"), ("minCanaryRequests", "0")];
    for name in ["ghost", "stalled"] {
        let p = payload(name, "0a1b2c3d4e", meta);
        assert_reply(&app.call("pre-rollout", &p).await, 200, "pre-rollout");
        let r = app.call("confirm-promotion", &p).await;
        assert_reply(&r, 412, &format!("{name}: confirm-promotion with no looks"));
        // Two looks without canary requests wait; the third (the default
        // no-traffic limit) fails the canary, so Flagger rolls it back instead of
        // holding it at its weight forever.
        for look in 1..=2 {
            next_look().await;
            let r = app.call("rollout", &p).await;
            assert_reply(&r, 200, &format!("{name}: rollout look {look}"));
            let r = app.call("confirm-promotion", &p).await;
            assert_reply(&r, 412, &format!("{name}: confirm-promotion look {look}"));
            assert!(
                r.body.contains("no canary traffic"),
                "{name}: the reason should say the canary has no traffic: «{}»",
                r.body
            );
        }
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_reply(&r, 422, &format!("{name}: rollout look 3"));
        assert!(
            r.body
                .starts_with("canary receives no traffic: no canary requests in the last 3 looks"),
            "{name}: «{}»",
            r.body
        );
        assert_reply(&app.call("rollback", &p).await, 200, "rollback");
        let r = app.call("confirm-promotion", &p).await;
        assert_reply(
            &r,
            412,
            &format!("{name}: confirm-promotion after the failure"),
        );
        assert!(r.body.contains("canary receives no traffic"), "{}", r.body);
        let analysis = app.analysis(&p).await.expect("analysis");
        let looks = app.looks(analysis.id).await;
        assert_eq!(looks.len(), 3, "{name}: every rollout took a look");
        assert!(
            looks.iter().all(|l| l.look.canary.requests == 0),
            "{name}: canary requests {:?}",
            looks
                .iter()
                .map(|l| l.look.canary.requests)
                .collect::<Vec<_>>()
        );
        assert!(
            looks.iter().all(|l| l.look.primary.requests > 0),
            "{name}: the primary served traffic in every look"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn repeated_and_concurrent_calls_make_one_analysis_and_one_look() {
    // A wider gap than the other tests: a repeat must land within it even when the
    // machine is slow, or it would rightly count as the next look.
    let gap = Duration::from_secs(3);
    let app = spawn_app(AppOptions {
        min_look_gap: gap,
        ..AppOptions::default()
    })
    .await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;

    // Sequential repeats, as Flagger's retries send them.
    let p = payload("podinfo", "aaaa000001", QUICK);
    let first = app.call("pre-rollout", &p).await;
    let second = app.call("pre-rollout", &p).await;
    assert_reply(&first, 200, "pre-rollout");
    assert_reply(&second, 200, "repeated pre-rollout");
    tokio::time::sleep(gap + Duration::from_millis(500)).await;
    let first = app.call("rollout", &p).await;
    let second = app.call("rollout", &p).await;
    assert_reply(&first, 200, "rollout");
    assert_reply(&second, 200, "repeated rollout");
    assert_eq!(
        first.body, second.body,
        "the repeat answers from the same look"
    );

    // The same calls at the same moment, for another revision.
    let q = payload("podinfo", "bbbb000002", QUICK);
    let (a, b) = tokio::join!(app.call("pre-rollout", &q), app.call("pre-rollout", &q));
    assert_reply(&a, 200, "concurrent pre-rollout");
    assert_reply(&b, 200, "concurrent pre-rollout");
    tokio::time::sleep(gap + Duration::from_millis(500)).await;
    let (a, b) = tokio::join!(app.call("rollout", &q), app.call("rollout", &q));
    assert_reply(&a, 200, "concurrent rollout");
    assert_reply(&b, 200, "concurrent rollout");
    assert_eq!(a.body, b.body, "both answers rest on the one look");

    let all = app.decisions_for("podinfo").await;
    for (payload, what) in [(&p, "sequential"), (&q, "concurrent")] {
        let analysis = app.analysis(payload).await.expect("analysis");
        let ids: Vec<_> = all
            .iter()
            .filter(|d| d.decision.key.checksum.as_str() == payload.checksum)
            .map(|d| d.decision.analysis_id)
            .collect();
        assert_eq!(ids.len(), 4, "{what}: four answers, four decisions");
        assert!(
            ids.iter().all(|id| *id == Some(analysis.id)),
            "{what}: all calls belong to one analysis: {ids:?} vs {}",
            analysis.id
        );
        let looks = app.looks(analysis.id).await;
        assert_eq!(looks.len(), 1, "{what}: two rollout calls took one look");
    }
    app.shutdown().await;
}
