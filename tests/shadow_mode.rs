//! Shadow mode end to end (docs/operations.md, "Shadow mode"): real server, real
//! Postgres, real Prometheus scraping an Istio-style exporter. Two canaries read the same
//! workload's series (`target: podinfo`), one enforced and one shadowed, with hooks called
//! back to back, so both analyses judge the same data.

use reqwest::Method;
use support::api::{call, token};
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, FAST_MS};
use support::exporter::Profile;
use verdict::domain::Mode;
use verdict::store::{AnalysisFilter, AnalysisStatus};

/// Looks before the test gives up on the ×3 regression being found.
const MAX_LOOKS: usize = 10;

#[tokio::test]
async fn a_shadow_analysis_never_blocks_flagger_and_records_the_rollback_it_would_have_made() {
    let app = spawn_app(AppOptions::with_api()).await;
    // The canary's error rate is three times the primary's.
    app.traffic(
        "podinfo",
        Profile::fixed(200.0, 0.09, FAST_MS),
        Profile::fixed(200.0, 0.03, FAST_MS),
    );
    warm_up().await;
    let enforced = payload("enforced", "e1e1e1e1", &[("target", "podinfo")]);
    let shadowed = payload(
        "shadowed",
        "5a5a5a5a",
        &[("target", "podinfo"), ("mode", "shadow")],
    );
    assert_eq!(app.call("pre-rollout", &enforced).await.status, 200);
    let r = app.call("pre-rollout", &shadowed).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mut enforce_failed_at = None;
    for look in 1..=MAX_LOOKS {
        next_look().await;
        let e = app.call("rollout", &enforced).await;
        let s = app.call("rollout", &shadowed).await;
        assert_eq!(s.status, 200, "shadow rollout look {look}: «{}»", s.body);
        assert!(s.body.starts_with("shadow: would "), "«{}»", s.body);
        // Flagger's other hooks of a step: none may hold or roll back the canary.
        for (hook, status) in [
            ("rollback", 409),
            ("confirm-traffic-increase", 200),
            ("confirm-promotion", 200),
        ] {
            let r = app.call(hook, &shadowed).await;
            assert_eq!(r.status, status, "shadow {hook} look {look}: «{}»", r.body);
            assert!(r.body.starts_with("shadow: would "), "{hook}: «{}»", r.body);
        }
        if e.status == 422 {
            assert!(
                s.body.starts_with("shadow: would roll back: "),
                "enforce failed at look {look} but shadow said «{}»",
                s.body
            );
            enforce_failed_at = Some(look as i64);
            break;
        }
        assert_eq!(e.status, 200, "enforce rollout look {look}: «{}»", e.body);
    }
    let failed_at = enforce_failed_at.expect("errors ×3 not rolled back within 10 looks");

    // After the regression: enforce mode would roll back and hold promotion; shadow
    // mode says so and lets Flagger go on.
    let r = app.call("rollback", &enforced).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.call("rollback", &shadowed).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.starts_with("shadow: would roll back: "),
        "«{}»",
        r.body
    );
    let r = app.call("confirm-promotion", &shadowed).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.starts_with("shadow: would hold promotion: "),
        "«{}»",
        r.body
    );

    // The stored looks and decisions are those of enforce mode.
    let e = app.analysis(&enforced).await.expect("enforced analysis");
    let s = app.analysis(&shadowed).await.expect("shadowed analysis");
    assert_eq!((e.mode, s.mode), (Mode::Enforce, Mode::Shadow));
    assert_eq!(s.status, AnalysisStatus::Failed, "{:?}", s.status_reason);
    let first_fail = |looks: &[verdict::store::LookRow]| {
        looks
            .iter()
            .find(|l| l.look.verdict == "fail")
            .map(|l| l.look.seq)
    };
    let (e_looks, s_looks) = (app.looks(e.id).await, app.looks(s.id).await);
    assert_eq!(first_fail(&e_looks), Some(failed_at));
    assert_eq!(first_fail(&s_looks), Some(failed_at), "shadow looks differ");
    let decisions = app.decisions(s.id).await;
    let failing_rollout = decisions
        .iter()
        .map(|d| &d.decision)
        .find(|d| d.hook == "rollout" && d.verdict == "fail")
        .expect("the shadow analysis recorded its failing verdict");
    assert_eq!(failing_rollout.status_code, 200, "the answer sent is kept");
    for d in decisions.iter().map(|d| &d.decision) {
        let sent = if d.hook == "rollback" { 409 } else { 200 };
        assert_eq!(
            d.status_code, sent,
            "{} {}: «{}»",
            d.hook, d.verdict, d.reason
        );
    }

    // The API shows the mode and the look it would have rolled back at; the list filters.
    let viewer = token("viewer", "vera");
    let http = reqwest::Client::new();
    let base = app.base_url();
    let path = format!("/api/v1/analyses/{}", s.id.get());
    let detail = call(&http, &base, Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.json["analysis"]["mode"], "shadow");
    assert_eq!(detail.json["would_have_rolled_back_at_look"], failed_at);
    let path = format!("/api/v1/analyses/{}", e.id.get());
    let detail = call(&http, &base, Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(detail.json["analysis"]["mode"], "enforce");
    assert!(detail.json.get("would_have_rolled_back_at_look").is_none());
    let list = call(
        &http,
        &base,
        Method::GET,
        "/api/v1/analyses?mode=shadow",
        Some(&viewer),
        None,
    )
    .await;
    let ids: Vec<i64> = list.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["id"].as_i64())
        .collect();
    assert_eq!(ids, [s.id.get()], "{}", list.text);
    let bad = call(
        &http,
        &base,
        Method::GET,
        "/api/v1/analyses?mode=dry-run",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.message().contains("mode"), "{}", bad.text);
    let filter = AnalysisFilter {
        mode: Some(Mode::Enforce),
        limit: 10,
        ..AnalysisFilter::default()
    };
    let enforced_rows = app.store.list_analyses(&filter).await.expect("list");
    assert_eq!(
        enforced_rows.iter().map(|a| a.id).collect::<Vec<_>>(),
        [e.id]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_mode_is_a_clear_400_and_changes_nothing() {
    let app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;

    // Before an analysis opens: refused, nothing opened, nothing recorded.
    let bad = payload("podinfo", "badbad01", &[("mode", "dry-run")]);
    for hook in ["pre-rollout", "rollout", "confirm-promotion", "rollback"] {
        let r = app.call(hook, &bad).await;
        assert_eq!(r.status, 400, "{hook}: «{}»", r.body);
        assert!(
            r.body.contains("mode") && r.body.contains("dry-run"),
            "{hook}: «{}»",
            r.body
        );
    }
    assert!(app.analysis(&bad).await.is_none(), "an analysis was opened");
    assert!(app.decisions_for("podinfo").await.is_empty());

    // On an open enforce analysis: the bad value neither takes a look nor records.
    let good = payload("podinfo", "900d0001", &[]);
    assert_eq!(app.call("pre-rollout", &good).await.status, 200);
    let analysis = app.analysis(&good).await.expect("opened");
    assert_eq!(analysis.mode, Mode::Enforce);
    let decisions = app.decisions(analysis.id).await.len();
    next_look().await;
    let mut typo = good.clone();
    typo.metadata.insert("mode".into(), "Shadow".into());
    let r = app.call("rollout", &typo).await;
    assert_eq!(r.status, 400, "«{}»", r.body);
    assert!(app.looks(analysis.id).await.is_empty(), "a look was taken");
    assert_eq!(app.decisions(analysis.id).await.len(), decisions);
    let now = app.analysis(&good).await.expect("still there");
    assert_eq!(
        (now.mode, now.status),
        (Mode::Enforce, AnalysisStatus::Running)
    );
    app.shutdown().await;
}

/// Prometheus down: an enforce analysis answers 424 (a failed check in Flagger); a shadow
/// analysis answers what lets Flagger go on, names the refusal it would have sent, and
/// records it — for a running analysis and for one that cannot open.
#[tokio::test]
async fn a_shadow_analysis_never_blocks_flagger_when_verdict_cannot_judge() {
    let mut app = spawn_app(AppOptions::default()).await;
    let arm = Profile::fixed(200.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let shadow = |name: &str, checksum: &str| {
        payload(name, checksum, &[("target", "podinfo"), ("mode", "shadow")])
    };
    let running = shadow("running", "5a5a0001");
    let enforced = payload("enforced", "e1e10001", &[("target", "podinfo")]);
    assert_eq!(app.call("pre-rollout", &running).await.status, 200);
    assert_eq!(app.call("pre-rollout", &enforced).await.status, 200);
    let analysis = app.analysis(&running).await.expect("opened");

    app.prometheus_mut().stop().await;
    next_look().await;
    let e = app.call("rollout", &enforced).await;
    assert_eq!(e.status, 424, "enforce: «{}»", e.body);
    let before = app.decisions(analysis.id).await.len();
    for (hook, status) in [
        ("rollout", 200),
        ("confirm-traffic-increase", 200),
        ("confirm-promotion", 200),
        ("rollback", 409),
    ] {
        let r = app.call(hook, &running).await;
        assert_eq!(r.status, status, "shadow {hook}: «{}»", r.body);
        if hook == "rollout" {
            assert!(
                r.body.starts_with("shadow: would refuse with 424: ")
                    && r.body.contains("Prometheus"),
                "«{}»",
                r.body
            );
        } else {
            assert!(r.body.starts_with("shadow: would "), "{hook}: «{}»", r.body);
        }
    }
    assert!(
        app.looks(analysis.id).await.is_empty(),
        "no look without Prometheus"
    );
    let decisions = app.decisions(analysis.id).await;
    assert_eq!(decisions.len(), before + 4, "every answer is recorded");
    let rollout = decisions
        .iter()
        .find(|d| d.decision.hook == "rollout")
        .expect("the rollout decision");
    assert_eq!(
        (
            rollout.decision.status_code,
            rollout.decision.verdict.as_str()
        ),
        (200, "error"),
        "the status sent, and what verdict could not do"
    );
    assert!(rollout
        .decision
        .reason
        .starts_with("shadow: would refuse with 424"));

    // A shadow analysis that cannot open (no Prometheus for its look-back).
    let opening = shadow("opening", "5a5a0002");
    let r = app.call("pre-rollout", &opening).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    assert!(
        r.body.starts_with("shadow: would refuse with 424: "),
        "«{}»",
        r.body
    );
    assert!(app.analysis(&opening).await.is_none(), "nothing opened");
    let recorded = app.decisions_for("opening").await;
    assert_eq!(recorded.len(), 1, "the refusal is recorded");
    assert_eq!(recorded[0].decision.status_code, 200);
    app.shutdown().await;
}
