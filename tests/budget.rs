//! Nothing waits forever: an analysis out of looks ends by `onInconclusive` — rolled back
//! (the default) or held for a release manager, whose opening of the promotion gate then
//! promotes. Real server, real Prometheus, the release-manager API.

use reqwest::Method;
use serde_json::json;
use support::api::{call, token};
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, FAST_MS};
use support::exporter::Profile;
use support::flagger::HookReply;

fn status(reply: &HookReply, want: u16, what: &str) {
    assert_eq!(
        reply.status, want,
        "{what}: expected {want}, got {} «{}»",
        reply.status, reply.body
    );
}

#[tokio::test]
async fn an_undecided_analysis_is_rolled_back_or_held_for_a_person_at_its_budget() {
    let app = spawn_app(AppOptions::with_api()).await;
    // Identical arms; a minimum of canary requests no two looks can reach, so the judge
    // stays undecided whatever the statistics say.
    let arm = Profile::fixed(50.0, 0.01, FAST_MS);
    app.traffic("giveup", arm.clone(), arm.clone());
    app.traffic("holdme", arm.clone(), arm);
    warm_up().await;
    let base = &[
        ("template", "istio"),
        ("minCanaryRequests", "1000000"),
        ("maxLooks", "2"),
    ];
    let giveup = payload("giveup", "0c0c0c0c01", base);
    let mut held_meta = base.to_vec();
    held_meta.push(("onInconclusive", "hold"));
    let holdme = payload("holdme", "0d0d0d0d02", &held_meta);
    for p in [&giveup, &holdme] {
        status(&app.call("pre-rollout", p).await, 200, "pre-rollout");
    }

    next_look().await;
    for p in [&giveup, &holdme] {
        let r = app.call("rollout", p).await;
        status(&r, 200, "look 1");
        assert!(r.body.starts_with("waiting"), "«{}»", r.body);
    }
    next_look().await;

    // The default: the second look is the last; the canary is rolled back, saying what
    // was missing.
    let r = app.call("rollout", &giveup).await;
    status(&r, 422, "giveup look 2");
    assert!(
        r.body.starts_with("no decision after 2 looks: "),
        "«{}»",
        r.body
    );
    assert!(
        r.body
            .contains("of the 1 000 000 requests required before promotion"),
        "«{}»",
        r.body
    );
    status(&app.call("rollback", &giveup).await, 200, "giveup rollback");

    // hold: it keeps waiting, and says a person must decide.
    let r = app.call("rollout", &holdme).await;
    status(&r, 200, "holdme look 2");
    assert!(
        r.body
            .starts_with("no decision after 2 looks; a release manager must decide"),
        "«{}»",
        r.body
    );
    let r = app.call("confirm-promotion", &holdme).await;
    status(&r, 412, "holdme confirm-promotion before anyone decided");
    assert!(
        r.body.contains("a release manager must decide"),
        "«{}»",
        r.body
    );
    status(
        &app.call("rollback", &holdme).await,
        409,
        "holdme is not rolled back",
    );

    // A viewer cannot decide; a release manager opening the promotion gate does.
    let gate = "/api/v1/canaries/test/holdme/gates/promotion";
    let open = json!({"state": "open", "reason": "error budget fine, ship it"});
    let http = reqwest::Client::new();
    let viewer = token("viewer", "victor");
    let r = call(
        &http,
        &app.base_url(),
        Method::PUT,
        gate,
        Some(&viewer),
        Some(open.clone()),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.call("confirm-promotion", &holdme).await;
    status(&r, 412, "still undecided after a refused action");
    let alice = token("release-manager", "alice");
    let r = call(
        &http,
        &app.base_url(),
        Method::PUT,
        gate,
        Some(&alice),
        Some(open),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.call("confirm-promotion", &holdme).await;
    status(&r, 200, "holdme promoted by a person's decision");
    assert!(
        r.body.starts_with(
            "promoted by alice's decision: error budget fine, ship it; no decision after 2 looks"
        ),
        "«{}»",
        r.body
    );
    app.shutdown().await;
}
