//! `verdict demo` (the README's first quick-start command) end to end: it must run to
//! completion and leave the outcomes it prints in its store.

use verdict::cli::DemoArgs;
use verdict::domain::CanaryRef;
use verdict::store::{AnalysisFilter, AnalysisStatus, AuditFilter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_rolls_back_and_waits_for_its_release_manager() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    verdict::demo::run(&DemoArgs {
        seed: 7,
        database: Some(db.clone()),
        serve: false,
        listen: ([127, 0, 0, 1], 0).into(),
    })
    .await
    .expect("the demo runs to the end");

    let store = verdict::store::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the demo's store");
    let analyses = store
        .list_analyses(&AnalysisFilter {
            limit: 10,
            ..AnalysisFilter::default()
        })
        .await
        .expect("analyses");
    let status = |name: &str| {
        analyses
            .iter()
            .find(|a| a.key.name.as_str() == name)
            .map(|a| a.status)
    };
    assert_eq!(analyses.len(), 3, "{analyses:#?}");
    assert_eq!(status("checkout"), Some(AnalysisStatus::Succeeded));
    assert_eq!(status("payments"), Some(AnalysisStatus::Failed));
    assert_eq!(status("search"), Some(AnalysisStatus::Succeeded));

    // The manual canary waited at both gates until alice opened them through the API.
    let shop_search = CanaryRef::parse("shop/search").expect("canary");
    let audit = store
        .audit(&AuditFilter {
            target: Some(shop_search.clone()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| (r.audit.actor.as_str(), r.audit.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("alice", "gate.promotion.open"),
            ("alice", "gate.rollout.open")
        ]
    );
    let decisions = store.decisions_for(&shop_search).await.expect("decisions");
    let first = |hook: &str| {
        decisions
            .iter()
            .find(|d| d.decision.hook == hook)
            .map(|d| d.decision.status_code)
    };
    assert_eq!(
        first("confirm-rollout"),
        Some(412),
        "held before alice opened it"
    );
    assert_eq!(first("confirm-promotion"), Some(412));
    assert_eq!(
        decisions
            .iter()
            .rev()
            .find(|d| d.decision.hook == "confirm-promotion")
            .map(|d| d.decision.status_code),
        Some(200)
    );
}
