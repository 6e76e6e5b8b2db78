//! The release-manager API on the real server, real Postgres and real Prometheus: every
//! endpoint for every role, bad tokens, durable gates, the hold/approve/rollback flow and
//! its audit trail, bad input that changes nothing, and the OpenAPI document.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use support::api::{self, alg_none, call, claims, hs256, rs256, token, Reply};
use support::app::{
    canary, next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS, NS,
};
use support::exporter::Profile;
use verdict::domain::AnalysisId;

/// Settings that make promotion reachable within seconds of test traffic.
const QUICK: &[(&str, &str)] = &[
    ("template", "istio"),
    ("minCanaryRequests", "200"),
    ("promotionMargin", "1.0"),
];

/// Identical arms with plenty of traffic for `targets` (3 % errors, as in flagger_flow:
/// enough errors for the confidence bound to tighten within a few looks).
fn steady(app: &TestApp, targets: &[&str]) {
    for t in targets {
        let arm = Profile::fixed(200.0, 0.03, FAST_MS);
        app.traffic(t, arm.clone(), arm);
    }
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Reply {
    call(&app.http, &app.base_url(), Method::GET, path, token, None).await
}

async fn put(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Reply {
    call(
        &app.http,
        &app.base_url(),
        Method::PUT,
        path,
        token,
        Some(body),
    )
    .await
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Reply {
    call(
        &app.http,
        &app.base_url(),
        Method::POST,
        path,
        token,
        Some(body),
    )
    .await
}

fn expect(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: «{}»", reply.text);
    if status >= 400 {
        assert!(
            !reply.error().is_empty() && !reply.message().is_empty(),
            "{what}: errors are JSON {{error, message}}: «{}»",
            reply.text
        );
    }
}

/// The audit log as an admin reads it (every row, newest first).
async fn audit(app: &TestApp) -> Vec<Value> {
    let admin = token("admin", "root");
    let r = get(app, "/api/v1/audit?limit=200", Some(&admin)).await;
    expect(&r, 200, "audit");
    r.json["items"].as_array().cloned().unwrap_or_default()
}

/// Opens the analysis of `name` (revision `checksum`) with pre-rollout.
async fn open(app: &TestApp, name: &str, checksum: &str, meta: &[(&str, &str)]) -> i64 {
    let p = payload(name, checksum, meta);
    let r = app.call("pre-rollout", &p).await;
    assert_eq!(r.status, 200, "pre-rollout {name}: «{}»", r.body);
    app.analysis(&p).await.expect("analysis opened").id.get()
}

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["podinfo", "rb-rm", "rb-admin", "done"]);
    warm_up().await;
    let id = open(&app, "podinfo", "aaa111", &[]).await;
    open(&app, "rb-rm", "bbb222", &[]).await;
    open(&app, "rb-admin", "ccc333", &[]).await;
    // A finished analysis, for the 409s.
    open(&app, "done", "ddd444", &[]).await;
    let mut ended = payload("done", "ddd444", &[]);
    ended.phase = "Succeeded".into();
    assert_eq!(app.call("post-rollout", &ended).await.status, 200);

    let viewer = token("viewer", "vera");
    let rm = token("release-manager", "alice");
    let admin = token("admin", "root");
    let reason = json!({"state": "held", "reason": "change freeze"});

    // Without a token every endpoint but the document answers 401 and changes nothing.
    let paths = [
        (Method::GET, "/api/v1/analyses".to_owned()),
        (Method::GET, format!("/api/v1/analyses/{id}")),
        (Method::GET, "/api/v1/canaries/test/podinfo".to_owned()),
        (Method::GET, "/api/v1/canaries".to_owned()),
        (
            Method::PUT,
            "/api/v1/canaries/test/podinfo/gates/rollout".to_owned(),
        ),
        (
            Method::PUT,
            "/api/v1/canaries/test/podinfo/gates/promotion".to_owned(),
        ),
        (
            Method::POST,
            "/api/v1/canaries/test/podinfo/rollback".to_owned(),
        ),
        (Method::GET, "/api/v1/audit".to_owned()),
    ];
    for (method, path) in &paths {
        let r = call(
            &app.http,
            &app.base_url(),
            method.clone(),
            path,
            None,
            Some(reason.clone()),
        )
        .await;
        expect(&r, 401, &format!("{method} {path} without a token"));
        assert_eq!(r.error(), "unauthenticated");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    }
    expect(
        &get(&app, "/api/v1/openapi.json", None).await,
        200,
        "the document needs no token",
    );

    // Reads: every role.
    for (role, t) in [
        ("viewer", &viewer),
        ("release-manager", &rm),
        ("admin", &admin),
    ] {
        let r = get(&app, "/api/v1/analyses", Some(t)).await;
        expect(&r, 200, &format!("list as {role}"));
        assert_eq!(
            r.json["items"].as_array().map(Vec::len),
            Some(4),
            "{role}: «{}»",
            r.text
        );
        let r = get(&app, &format!("/api/v1/analyses/{id}"), Some(t)).await;
        expect(&r, 200, &format!("show as {role}"));
        assert_eq!(r.json["analysis"]["id"], json!(id));
        assert_eq!(r.json["analysis"]["name"], json!("podinfo"));
        assert!(
            r.json["decisions"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["hook"] == "pre-rollout")),
            "the pre-rollout answer is among the decisions: «{}»",
            r.text
        );
        assert!(
            r.json["settings"]["canary"]["template"].is_string(),
            "«{}»",
            r.text
        );
        let r = get(&app, "/api/v1/canaries/test/podinfo", Some(t)).await;
        expect(&r, 200, &format!("canary as {role}"));
        assert_eq!(r.json["latest_analysis"]["id"], json!(id));
        assert_eq!(r.json["gates"]["rollout"]["state"], json!("open"));
    }

    // Viewers may not act; nothing changes when they try.
    for path in [
        "/api/v1/canaries/test/podinfo/gates/rollout",
        "/api/v1/canaries/test/podinfo/gates/promotion",
    ] {
        let r = put(&app, path, Some(&viewer), reason.clone()).await;
        expect(&r, 403, &format!("PUT {path} as viewer"));
        assert_eq!(r.error(), "forbidden");
        assert!(r.message().contains("viewer"), "«{}»", r.text);
    }
    let r = post(
        &app,
        "/api/v1/canaries/test/podinfo/rollback",
        Some(&viewer),
        json!({"reason": "x"}),
    )
    .await;
    expect(&r, 403, "rollback as viewer");
    assert!(
        audit(&app).await.is_empty(),
        "a refused call wrote an audit row"
    );
    assert_eq!(
        app.store
            .gates(&canary(NS, "podinfo"))
            .await
            .expect("gates")
            .len(),
        0
    );
    assert_eq!(
        app.store
            .get_analysis(AnalysisId::new(id))
            .await
            .expect("get")
            .expect("row")
            .status
            .as_str(),
        "running",
        "a refused rollback changed the analysis"
    );

    // Release managers and admins act.
    for (who, t) in [("alice", &rm), ("root", &admin)] {
        for gate in ["rollout", "promotion"] {
            let path = format!("/api/v1/canaries/test/podinfo/gates/{gate}");
            let r = put(
                &app,
                &path,
                Some(t),
                json!({"state": "held", "reason": format!("{who} holds")}),
            )
            .await;
            expect(&r, 200, &format!("hold {gate} as {who}"));
            assert_eq!(r.json["state"], json!("held"));
            assert_eq!(r.json["actor"], json!(who));
        }
    }
    let r = post(
        &app,
        "/api/v1/canaries/test/rb-rm/rollback",
        Some(&rm),
        json!({"reason": "502s"}),
    )
    .await;
    expect(&r, 200, "rollback as release-manager");
    assert_eq!(r.json["analysis"]["status"], json!("failed"));
    let r = post(
        &app,
        "/api/v1/canaries/test/rb-admin/rollback",
        Some(&admin),
        json!({"reason": "502s"}),
    )
    .await;
    expect(&r, 200, "rollback as admin");

    // The audit log is for admins.
    for (role, t) in [("viewer", &viewer), ("release-manager", &rm)] {
        let r = get(&app, "/api/v1/audit", Some(t)).await;
        expect(&r, 403, &format!("audit as {role}"));
    }
    let rows = audit(&app).await;
    assert_eq!(rows.len(), 6, "4 gate changes and 2 rollbacks: {rows:#?}");
    assert_eq!(rows[0]["action"], json!("rollback"));
    assert_eq!(rows[0]["actor"], json!("root"));
    assert_eq!(rows[0]["role"], json!("admin"));
    assert_eq!(rows[0]["target"], json!("test/rb-admin"));
    assert_eq!(rows[5]["action"], json!("gate.rollout.hold"));
    assert_eq!(rows[5]["actor"], json!("alice"));
    assert_eq!(rows[5]["role"], json!("release-manager"));
    assert_eq!(rows[5]["reason"], json!("alice holds"));

    // Conflicts: the finished analysis can neither be gated at promotion nor rolled back.
    let r = put(
        &app,
        "/api/v1/canaries/test/done/gates/promotion",
        Some(&rm),
        json!({"state": "open", "reason": "go"}),
    )
    .await;
    expect(&r, 409, "approving a finished analysis");
    assert_eq!(r.error(), "conflict");
    let r = post(
        &app,
        "/api/v1/canaries/test/done/rollback",
        Some(&rm),
        json!({"reason": "late"}),
    )
    .await;
    expect(&r, 409, "rolling back a finished analysis");
    let r = post(
        &app,
        "/api/v1/canaries/test/rb-rm/rollback",
        Some(&rm),
        json!({"reason": "again"}),
    )
    .await;
    expect(&r, 409, "rolling back twice");
    assert_eq!(audit(&app).await.len(), 6, "a conflict wrote an audit row");

    app.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_right_status() {
    let app = spawn_app(AppOptions::with_api()).await;
    let path = "/api/v1/analyses";
    let good = claims("viewer", "vera");
    expect(
        &get(&app, path, Some(&token("viewer", "vera"))).await,
        200,
        "a good token",
    );

    let mut expired = good.clone();
    expired["exp"] = json!(api::now() - 3600);
    let mut future = good.clone();
    future["nbf"] = json!(api::now() + 3600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut no_sub = good.clone();
    no_sub.as_object_mut().expect("object").remove("sub");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut unknown_role = good.clone();
    unknown_role["role"] = json!("superuser");

    let cases: Vec<(&str, String, u16)> = vec![
        ("expired", hs256(&expired, api::SECRET), 401),
        ("not yet valid", hs256(&future, api::SECRET), 401),
        ("wrong audience", hs256(&wrong_aud, api::SECRET), 401),
        ("wrong issuer", hs256(&wrong_iss, api::SECRET), 401),
        (
            "bad signature",
            hs256(&good, "another-secret-of-32-bytes-or-more!!"),
            401,
        ),
        ("alg none", alg_none(&good), 401),
        ("signed RS256", rs256(&good, "rsa-private.pem"), 401),
        ("no sub", hs256(&no_sub, api::SECRET), 401),
        ("no exp", hs256(&no_exp, api::SECRET), 401),
        ("garbage", "not.a.token".to_owned(), 401),
        ("unknown role", hs256(&unknown_role, api::SECRET), 403),
    ];
    for (what, t, status) in &cases {
        let r = get(&app, path, Some(t)).await;
        expect(&r, *status, what);
        let code = if *status == 401 {
            "unauthenticated"
        } else {
            "forbidden"
        };
        assert_eq!(r.error(), code, "{what}");
        assert!(
            !r.message().contains(t.as_str()),
            "{what}: the message echoes the token"
        );
    }
    // Not a bearer token at all.
    let r = support::api::send(
        app.http
            .get(format!("{}{path}", app.base_url()))
            .basic_auth("alice", Some("pw")),
        "basic auth",
    )
    .await;
    expect(&r, 401, "basic auth instead of a bearer token");
    app.shutdown().await;

    // An RS256 server takes its identity provider's tokens and refuses the classic key
    // confusion: an HS256 token whose secret is the server's public key.
    let app = spawn_app(AppOptions::with_rs256_api()).await;
    expect(
        &get(&app, path, Some(&rs256(&good, "rsa-private.pem"))).await,
        200,
        "RS256 token",
    );
    expect(
        &get(&app, path, Some(&rs256(&good, "other-rsa-private.pem"))).await,
        401,
        "RS256 token of another key",
    );
    let public = std::fs::read_to_string(format!(
        "{}/tests/fixtures/jwt/rsa-public.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("public key");
    expect(
        &get(&app, path, Some(&hs256(&good, &public))).await,
        401,
        "HS256 signed with the public key",
    );
    expect(
        &get(&app, path, Some(&token("viewer", "vera"))).await,
        401,
        "HS256 token",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_jwt_key_the_api_is_off_and_the_hooks_work() {
    let app = spawn_app(AppOptions::default()).await;
    let r = get(&app, "/api/v1/analyses", Some(&token("admin", "root"))).await;
    expect(&r, 503, "API without a key");
    assert_eq!(r.error(), "api_disabled");
    let r = app
        .call("confirm-rollout", &payload("podinfo", "aaa111", &[]))
        .await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    app.shutdown().await;
}

#[tokio::test]
async fn hold_approve_and_rollback_flow_is_obeyed_and_audited() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["podinfo", "bad"]);
    warm_up().await;
    let rm = token("release-manager", "alice");
    let bob = token("release-manager", "bob");
    let p = payload("podinfo", "aaa111", QUICK);
    let id = open(&app, "podinfo", "aaa111", QUICK).await;

    let hold = json!({"state": "held", "reason": "waiting for the marketing launch"});
    let r = put(
        &app,
        "/api/v1/canaries/test/podinfo/gates/promotion",
        Some(&rm),
        hold,
    )
    .await;
    expect(&r, 200, "hold promotion");

    // Looks until the statistics pass: confirm-promotion still waits, naming who and why.
    let mut held_with_pass = None;
    for look in 1..=15 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_eq!(r.status, 200, "rollout look {look}: «{}»", r.body);
        let r = app.call("confirm-promotion", &p).await;
        assert_eq!(
            r.status, 412,
            "a held promotion gate let confirm-promotion pass: «{}»",
            r.body
        );
        assert!(
            r.body
                .contains("promotion gate held by alice: waiting for the marketing launch"),
            "«{}»",
            r.body
        );
        if r.body.contains("the statistics pass") {
            held_with_pass = Some(r.body);
            break;
        }
    }
    let body = held_with_pass.expect("the statistics never passed within 15 looks");
    assert!(!body.contains('\n'));

    let approve = json!({"state": "open", "reason": "launch is live"});
    let r = put(
        &app,
        "/api/v1/canaries/test/podinfo/gates/promotion",
        Some(&rm),
        approve,
    )
    .await;
    expect(&r, 200, "approve promotion");
    assert_eq!(r.json["state"], json!("open"));
    let r = app.call("confirm-promotion", &p).await;
    assert_eq!(r.status, 200, "approved and passing: «{}»", r.body);

    // The analysis' decisions show the held answers and the promotion.
    let detail = get(&app, &format!("/api/v1/analyses/{id}"), Some(&rm)).await;
    let decisions = detail.json["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let promotion: Vec<i64> = decisions
        .iter()
        .filter(|d| d["hook"] == "confirm-promotion")
        .filter_map(|d| d["status_code"].as_i64())
        .collect();
    assert_eq!(promotion.last(), Some(&200), "{promotion:?}");
    assert!(
        promotion.iter().filter(|s| **s == 412).count() >= 1,
        "{promotion:?}"
    );
    assert!(
        !detail.json["looks"].as_array().is_some_and(Vec::is_empty),
        "looks are listed"
    );

    // A rollback request: the rollback hook answers 200 at its next call.
    let b = payload("bad", "bbb222", QUICK);
    open(&app, "bad", "bbb222", QUICK).await;
    let r = app.call("rollback", &b).await;
    assert_eq!(r.status, 409, "no rollback requested yet: «{}»", r.body);
    let r = post(
        &app,
        "/api/v1/canaries/test/bad/rollback",
        Some(&bob),
        json!({"reason": "customers report 502s"}),
    )
    .await;
    expect(&r, 200, "request rollback");
    let r = app.call("rollback", &b).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    assert!(
        r.body
            .contains("rollback requested by bob: customers report 502s"),
        "«{}»",
        r.body
    );
    let r = app.call("rollout", &b).await;
    assert_eq!(
        r.status, 422,
        "a rolled-back analysis goes on failing: «{}»",
        r.body
    );
    let r = app.call("confirm-promotion", &b).await;
    assert_eq!(r.status, 412, "«{}»", r.body);

    // Every step is in the audit log, newest first.
    let rows = audit(&app).await;
    let steps: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or("").to_owned(),
                r["action"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (
                "bob".into(),
                "rollback".into(),
                "customers report 502s".into()
            ),
            (
                "alice".into(),
                "gate.promotion.open".into(),
                "launch is live".into()
            ),
            (
                "alice".into(),
                "gate.promotion.hold".into(),
                "waiting for the marketing launch".into()
            ),
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn manual_canaries_wait_at_each_gate_for_every_revision() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["shop"]);
    warm_up().await;
    let rm = token("release-manager", "alice");
    // `gate: manual` on the confirm hooks only: each Flagger webhook has its own
    // metadata, and the other hooks and the API still know the canary is manual.
    let manual = &[("gate", "manual")];
    let state = |app: &TestApp| {
        let rm = rm.clone();
        let app_base = app.base_url();
        let http = app.http.clone();
        async move {
            call(
                &http,
                &app_base,
                Method::GET,
                "/api/v1/canaries/test/shop",
                Some(&rm),
                None,
            )
            .await
        }
    };

    // First revision: held until a release manager opens the rollout gate, and the API
    // says so before any analysis exists.
    let r = app
        .call("confirm-rollout", &payload("shop", "rev111", manual))
        .await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    assert!(r.body.contains("gate: manual"), "«{}»", r.body);
    let s = state(&app).await;
    expect(
        &s,
        200,
        "a canary held at confirm-rollout is known to the API",
    );
    assert_eq!(
        s.json["gates"]["rollout"]["state"],
        json!("held"),
        "«{}»",
        s.text
    );
    assert_eq!(
        s.json["gates"]["rollout"]["manual"],
        json!(true),
        "«{}»",
        s.text
    );
    let open_rollout = json!({"state": "open", "reason": "go for rev 1"});
    let r = put(
        &app,
        "/api/v1/canaries/test/shop/gates/rollout",
        Some(&rm),
        open_rollout.clone(),
    )
    .await;
    expect(&r, 200, "open rollout");
    assert_eq!(r.json["state"], json!("open"), "«{}»", r.text);
    let r = app
        .call("confirm-rollout", &payload("shop", "rev111", manual))
        .await;
    assert_eq!(r.status, 200, "«{}»", r.body);

    // The revision's analysis opens (pre-rollout without the key); its promotion is held
    // until approved.
    open(&app, "shop", "rev111", QUICK).await;
    let s = state(&app).await;
    assert_eq!(
        s.json["gates"]["promotion"]["state"],
        json!("held"),
        "«{}»",
        s.text
    );
    assert_eq!(s.json["gates"]["promotion"]["manual"], json!(true));
    let promote: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain(manual.iter().copied())
        .collect();
    let p1 = payload("shop", "rev111", &promote);
    let r = app.call("confirm-promotion", &p1).await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    assert!(r.body.contains("gate: manual"), "«{}»", r.body);
    let approve = json!({"state": "open", "reason": "ship rev 1"});
    expect(
        &put(
            &app,
            "/api/v1/canaries/test/shop/gates/promotion",
            Some(&rm),
            approve.clone(),
        )
        .await,
        200,
        "approve",
    );
    let r = app.call("confirm-promotion", &p1).await;
    assert!(
        !r.body.contains("gate"),
        "approved, only the statistics can hold it now: «{}»",
        r.body
    );

    // The next revision needs its own approvals: rev 1's were used up.
    let r = app
        .call("confirm-rollout", &payload("shop", "rev222", manual))
        .await;
    assert_eq!(
        r.status, 412,
        "the first revision's opening let the second one through: «{}»",
        r.body
    );
    expect(
        &put(
            &app,
            "/api/v1/canaries/test/shop/gates/rollout",
            Some(&rm),
            open_rollout,
        )
        .await,
        200,
        "open rollout 2",
    );
    assert_eq!(
        app.call("confirm-rollout", &payload("shop", "rev222", manual))
            .await
            .status,
        200
    );
    open(&app, "shop", "rev222", QUICK).await;
    let r = app
        .call("confirm-promotion", &payload("shop", "rev222", &promote))
        .await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    assert!(
        r.body.contains("gate: manual"),
        "rev 1's approval promoted rev 2: «{}»",
        r.body
    );
    app.shutdown().await;
}

#[tokio::test]
async fn gates_survive_a_restart_and_are_shared_by_replicas() {
    let mut app = spawn_app(AppOptions::with_api()).await;
    let rm = token("release-manager", "alice");
    let p = payload("podinfo", "aaa111", &[]);
    let hold = json!({"state": "held", "reason": "incident in progress"});
    expect(
        &put(
            &app,
            "/api/v1/canaries/test/podinfo/gates/rollout",
            Some(&rm),
            hold,
        )
        .await,
        200,
        "hold rollout",
    );
    let r = app.call("confirm-rollout", &p).await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    assert!(
        r.body
            .contains("rollout gate held by alice: incident in progress"),
        "«{}»",
        r.body
    );

    app.restart_server().await;
    let r = app.call("confirm-rollout", &p).await;
    assert_eq!(
        r.status, 412,
        "the hold did not survive a restart: «{}»",
        r.body
    );

    let replica = app.spawn_replica().await;
    let r = replica.call("confirm-rollout", &p).await;
    assert_eq!(
        r.status, 412,
        "the replica does not see the hold: «{}»",
        r.body
    );
    let state = call(
        &app.http,
        &replica.base_url(),
        Method::GET,
        "/api/v1/canaries/test/podinfo",
        Some(&rm),
        None,
    )
    .await;
    assert_eq!(
        state.json["gates"]["rollout"]["actor"],
        json!("alice"),
        "«{}»",
        state.text
    );

    // Opened through the replica, open on both.
    let open = json!({"state": "open", "reason": "incident resolved"});
    let r = call(
        &app.http,
        &replica.base_url(),
        Method::PUT,
        "/api/v1/canaries/test/podinfo/gates/rollout",
        Some(&rm),
        Some(open),
    )
    .await;
    expect(&r, 200, "open through the replica");
    assert_eq!(app.call("confirm-rollout", &p).await.status, 200);
    assert_eq!(replica.call("confirm-rollout", &p).await.status, 200);
    replica.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["podinfo"]);
    warm_up().await;
    open(&app, "podinfo", "aaa111", &[]).await;
    let rm = token("release-manager", "alice");
    let gate = "/api/v1/canaries/test/podinfo/gates/promotion";

    for (what, body) in [
        ("no reason", json!({"state": "held"})),
        ("empty reason", json!({"state": "held", "reason": "   "})),
        (
            "multi-line reason",
            json!({"state": "held", "reason": "a\nb"}),
        ),
        (
            "long reason",
            json!({"state": "held", "reason": "x".repeat(501)}),
        ),
        ("unknown state", json!({"state": "ajar", "reason": "x"})),
        (
            "unknown field",
            json!({"state": "held", "reason": "x", "force": true}),
        ),
        ("not an object", json!(["held"])),
    ] {
        let r = put(&app, gate, Some(&rm), body).await;
        expect(&r, 422, what);
        assert_eq!(r.error(), "invalid_request", "{what}");
    }
    let r = support::api::send(
        app.http
            .put(format!("{}{gate}", app.base_url()))
            .bearer_auth(&rm)
            .header("content-type", "application/json")
            .body("{\"state\": \"held\", "),
        "malformed JSON",
    )
    .await;
    expect(&r, 422, "malformed JSON");
    for (what, path) in [
        ("unknown gate", "/api/v1/canaries/test/podinfo/gates/deploy"),
        (
            "bad namespace",
            "/api/v1/canaries/Bad_NS/podinfo/gates/rollout",
        ),
        (
            "PromQL in the name",
            "/api/v1/canaries/test/x%22%7D%20or%20vector(1)/gates/rollout",
        ),
    ] {
        let r = put(
            &app,
            path,
            Some(&rm),
            json!({"state": "held", "reason": "x"}),
        )
        .await;
        expect(&r, 422, what);
    }
    for (what, path) in [
        ("unknown outcome", "/api/v1/analyses?outcome=exploded"),
        ("limit 0", "/api/v1/analyses?limit=0"),
        ("limit 201", "/api/v1/analyses?limit=201"),
        ("bad cursor", "/api/v1/analyses?cursor=abc"),
        ("bad since", "/api/v1/analyses?since=yesterday"),
        ("unknown parameter", "/api/v1/analyses?colour=red"),
        ("id not a number", "/api/v1/analyses/abc"),
    ] {
        expect(&get(&app, path, Some(&rm)).await, 422, what);
    }
    for (what, reply) in [
        (
            "unknown analysis",
            get(&app, "/api/v1/analyses/999999", Some(&rm)).await,
        ),
        (
            "unknown canary",
            get(&app, "/api/v1/canaries/test/nobody", Some(&rm)).await,
        ),
        (
            "promotion of an unknown canary",
            put(
                &app,
                "/api/v1/canaries/test/nobody/gates/promotion",
                Some(&rm),
                json!({"state": "held", "reason": "x"}),
            )
            .await,
        ),
        (
            "rollback of an unknown canary",
            post(
                &app,
                "/api/v1/canaries/test/nobody/rollback",
                Some(&rm),
                json!({"reason": "x"}),
            )
            .await,
        ),
        (
            "unknown endpoint",
            get(&app, "/api/v1/nothing", Some(&rm)).await,
        ),
    ] {
        expect(&reply, 404, what);
        assert_eq!(reply.error(), "not_found", "{what}");
    }
    assert!(
        audit(&app).await.is_empty(),
        "refused calls wrote audit rows"
    );
    assert!(app
        .store
        .gates(&canary(NS, "podinfo"))
        .await
        .expect("gates")
        .is_empty());
    assert!(app
        .store
        .gates(&canary(NS, "nobody"))
        .await
        .expect("gates")
        .is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn analyses_are_filtered_and_paged() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["podinfo", "other"]);
    warm_up().await;
    let viewer = token("viewer", "vera");
    let mut ids = Vec::new();
    for c in ["aaa001", "aaa002", "aaa003", "aaa004", "aaa005"] {
        ids.push(open(&app, "podinfo", c, &[]).await);
    }
    open(&app, "other", "bbb001", &[]).await;
    // Newest first, two per page, no gaps and no duplicates.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/analyses?name=podinfo&limit=2&cursor={c}"),
            None => "/api/v1/analyses?name=podinfo&limit=2".to_owned(),
        };
        let r = get(&app, &path, Some(&viewer)).await;
        expect(&r, 200, &path);
        for item in r.json["items"].as_array().expect("items") {
            seen.push(item["id"].as_i64().expect("id"));
        }
        cursor = r.json["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(seen, expected);
    let r = get(
        &app,
        "/api/v1/analyses?namespace=test&outcome=running&limit=200",
        Some(&viewer),
    )
    .await;
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(6));
    let r = get(&app, "/api/v1/analyses?outcome=failed", Some(&viewer)).await;
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(0));
    let r = get(
        &app,
        "/api/v1/analyses?since=2999-01-01T00:00:00Z",
        Some(&viewer),
    )
    .await;
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(0));
    app.shutdown().await;
}

/// Fills a documented path's parameters with values the router will match.
fn concrete(path: &str) -> String {
    path.replace("{namespace}", "test")
        .replace("{name}", "podinfo")
        .replace("{gate}", "rollout")
        .replace("{id}", "1")
}

#[tokio::test]
async fn the_openapi_document_validates_and_lists_exactly_the_served_routes() {
    let app = spawn_app(AppOptions::with_api()).await;
    let r = get(&app, "/api/v1/openapi.json", None).await;
    expect(&r, 200, "document");
    let doc = r.json.clone();

    // An OpenAPI validator (scripts/test.sh installs it; its absence fails the test).
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.text).expect("write document");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the document does not validate (is openapi-spec-validator installed? scripts/test.sh installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every documented operation is served (a handler answers, not the fallback), and
    // every other method on a documented path is refused with 405.
    let methods = ["get", "put", "post", "delete", "patch"];
    let mut documented = BTreeSet::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for m in methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            let r = call(
                &app.http,
                &app.base_url(),
                method,
                &concrete(path),
                None,
                Some(json!({})),
            )
            .await;
            if item.get(m).is_some() {
                documented.insert(format!("{m} {path}"));
                let expected = if path.ends_with("openapi.json") {
                    200
                } else {
                    401
                };
                assert_eq!(
                    r.status, expected,
                    "{m} {path} is documented but not served: «{}»",
                    r.text
                );
            } else {
                assert_eq!(
                    r.status, 405,
                    "{m} {path} is served but not documented: «{}»",
                    r.text
                );
            }
        }
    }
    // The served routes, as the router declares them (src/http/api/mod.rs registers
    // exactly these handlers): the document must name the same set.
    let served: BTreeSet<String> = [
        "get /api/v1/analyses",
        "get /api/v1/analyses/{id}",
        "get /api/v1/analyses/{id}/backtest",
        "get /api/v1/audit",
        "get /api/v1/backtest",
        "post /api/v1/backtest/window",
        "get /api/v1/canaries",
        "get /api/v1/canaries/{namespace}/{name}",
        "put /api/v1/canaries/{namespace}/{name}/gates/{gate}",
        "post /api/v1/canaries/{namespace}/{name}/rollback",
        "get /api/v1/openapi.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, served);
    // Anything else under /api/v1 is a JSON 404.
    for path in [
        "/api/v1",
        "/api/v1/gates",
        "/api/v1/canaries/test",
        "/api/v2/analyses",
    ] {
        let r = get(&app, path, Some(&token("admin", "root"))).await;
        assert_eq!(r.status, 404, "{path}: «{}»", r.text);
    }
    app.shutdown().await;
}

/// Canaries now: the latest analysis of each canary with its looks, the judge's state,
/// the weight from Flagger's events and the gates; filters; bad filters change nothing.
#[tokio::test]
async fn canaries_now_lists_each_canarys_latest_analysis() {
    let app = spawn_app(AppOptions::with_api()).await;
    steady(&app, &["alpha", "beta"]);
    warm_up().await;
    open(&app, "alpha", "a0a0a01", QUICK).await;
    let beta = open(&app, "beta", "b0b0b01", QUICK).await;
    // An older revision of alpha is not listed: only the latest one.
    let alpha = open(&app, "alpha", "a0a0a02", QUICK).await;
    let mut event = payload("alpha", "a0a0a02", &[]);
    event.metadata = [(
        "eventMessage".to_owned(),
        format!("Advance alpha.{NS} canary weight 20"),
    )]
    .into();
    assert_eq!(app.call("event", &event).await.status, 202);
    next_look().await;
    let r = app
        .call("rollout", &payload("alpha", "a0a0a02", QUICK))
        .await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    let mut ended = payload("beta", "b0b0b01", QUICK);
    ended.phase = "Succeeded".into();
    assert_eq!(app.call("post-rollout", &ended).await.status, 200);

    let viewer = token("viewer", "vera");
    let items = |r: &Reply| r.json["items"].as_array().cloned().unwrap_or_default();
    // The event is stored in the background.
    let all = support::app::eventually(
        "the weight event",
        std::time::Duration::from_secs(5),
        || async {
            let r = get(&app, "/api/v1/canaries", Some(&viewer)).await;
            (r.status == 200 && items(&r).iter().any(|i| i["weight"] == 20)).then_some(r)
        },
    )
    .await;
    let listed = items(&all);
    assert_eq!(listed.len(), 2, "{}", all.text);
    let a = &listed[0];
    assert_eq!(a["name"], "alpha");
    assert_eq!(a["analysis"]["id"], alpha);
    assert_eq!(a["looks"], 1);
    assert_eq!(a["judge"], "waiting");
    assert!(a["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(a["gates"]["promotion"]["state"], "open");
    assert_eq!(listed[1]["analysis"]["id"], beta);
    assert_eq!(listed[1]["looks"], 0);
    assert_eq!(listed[1]["weight"], Value::Null);

    let r = get(&app, "/api/v1/canaries?outcome=succeeded", Some(&viewer)).await;
    expect(&r, 200, "outcome filter");
    assert_eq!(items(&r).len(), 1);
    assert_eq!(items(&r)[0]["name"], "beta");
    let r = get(&app, "/api/v1/canaries?namespace=elsewhere", Some(&viewer)).await;
    assert!(items(&r).is_empty(), "{}", r.text);
    // The analysis shows the event, with its weight.
    let r = get(&app, &format!("/api/v1/analyses/{alpha}"), Some(&viewer)).await;
    assert_eq!(r.json["events"][0]["weight"], 20, "{}", r.text);

    for bad in [
        "outcome=won",
        "recent=forever",
        "recent=1000d",
        "limit=0",
        "limit=5000",
        "namespace=Not_A_Name",
        "colour=blue",
    ] {
        let r = get(&app, &format!("/api/v1/canaries?{bad}"), Some(&viewer)).await;
        expect(&r, 422, bad);
    }
    expect(&get(&app, "/api/v1/canaries", None).await, 401, "no token");
    app.shutdown().await;
}
