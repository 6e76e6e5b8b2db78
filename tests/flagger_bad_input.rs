//! Bad input at the Flagger hooks: every malformed, oversized, unknown, injected,
//! unauthenticated or disallowed call is refused with 400/403 and a one-line reason,
//! and leaves nothing in the store.

use support::app::{canary, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS, NS};
use support::exporter::Profile;
use support::flagger::{HookReply, Payload};

const TOKEN: &str = "s3cret-webhook-token";

/// The hooks that belong to an analysis (event is checked separately: it stores events,
/// not decisions).
const HOOKS: [&str; 7] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "rollback",
    "post-rollout",
];

async fn app_with_auth() -> TestApp {
    let app = spawn_app(AppOptions {
        webhook_token: Some(TOKEN.into()),
        namespace_allow: Some("test|prod-.*".into()),
        ..AppOptions::default()
    })
    .await;
    let arm = Profile::fixed(100.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    app
}

fn assert_refused(reply: &HookReply, status: u16, needle: &str, what: &str) {
    assert_eq!(
        reply.status, status,
        "{what}: expected {status}, got {} «{}»",
        reply.status, reply.body
    );
    assert!(
        !reply.body.is_empty() && !reply.body.contains('\n'),
        "{what}: the reason must be one non-empty line: {:?}",
        reply.body
    );
    assert!(
        reply.body.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: the reason «{}» should mention {needle:?}",
        reply.body
    );
}

/// Nothing about canary `name` in `namespace` reached the store.
async fn assert_nothing_recorded(app: &TestApp, namespace: &str, name: &str, what: &str) {
    let canary = canary(namespace, name);
    let decisions = app
        .store
        .decisions_for(&canary)
        .await
        .expect("decisions_for");
    assert!(
        decisions.is_empty(),
        "{what}: a refused call recorded decisions: {:?}",
        decisions
            .iter()
            .map(|d| (&d.decision.hook, d.decision.status_code, &d.decision.reason))
            .collect::<Vec<_>>()
    );
    let events = app.store.events(&canary).await.expect("events");
    assert!(events.is_empty(), "{what}: a refused call stored events");
}

fn with_token(mut p: Payload) -> Payload {
    p.metadata.insert("token".into(), TOKEN.into());
    p
}

async fn assert_no_analysis(app: &TestApp, p: &Payload, what: &str) {
    if let Some(a) = app.analysis(p).await {
        panic!("{what}: a refused call opened analysis {}", a.id);
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_records_nothing() {
    let app = app_with_auth().await;
    let good = with_token(payload("podinfo", "85d557f47b", &[("template", "istio")]));

    // Control: the same server records a valid call, so "nothing recorded" below means
    // the refusals, not a store that records nothing.
    let control = with_token(payload("control", "85d557f47b", &[]));
    let r = app.call("confirm-rollout", &control).await;
    assert_eq!(r.status, 200, "valid call: «{}»", r.body);
    assert_eq!(app.decisions_for("control").await.len(), 1);

    for hook in HOOKS {
        // Malformed JSON.
        let r = app
            .post_raw(hook, r#"{"name":"podinfo","namespace":"test","#)
            .await;
        assert_refused(&r, 400, "invalid Flagger payload", hook);

        // Not JSON at all, and a JSON value that is not an object.
        let r = app.post_raw(hook, "name=podinfo").await;
        assert_refused(&r, 400, "invalid Flagger payload", hook);
        let r = app.post_raw(hook, r#""podinfo""#).await;
        assert_refused(&r, 400, "invalid Flagger payload", hook);

        // Missing name.
        let r = app
            .post_raw(
                hook,
                format!(
                    r#"{{"namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{{"token":"{TOKEN}"}}}}"#
                ),
            )
            .await;
        assert_refused(&r, 400, "name", &format!("{hook}: missing name"));

        // A body over 64 KiB (valid JSON: the size alone refuses it).
        let mut big = good.clone();
        big.metadata
            .insert("var.padding".into(), "a".repeat(70 * 1024));
        let r = app.call(hook, &big).await;
        assert_refused(&r, 400, "64 KiB", &format!("{hook}: oversized body"));

        // An unknown metadata key is named, not silently ignored.
        let mut typo = good.clone();
        typo.metadata.insert("alhpa".into(), "0.1".into());
        let r = app.call(hook, &typo).await;
        assert_refused(&r, 400, "alhpa", &format!("{hook}: unknown key"));

        // PromQL in the name, and in a metadata value that reaches the query.
        let mut injected = good.clone();
        injected.name = r#"x"} or vector(1) #"#.into();
        let r = app.call(hook, &injected).await;
        assert_refused(
            &r,
            400,
            "not a valid Kubernetes name",
            &format!("{hook}: name"),
        );
        let mut injected = good.clone();
        injected
            .metadata
            .insert("target".into(), r#"x"} or vector(1) #"#.into());
        let r = app.call(hook, &injected).await;
        assert_refused(
            &r,
            400,
            r#"x\"} or vector(1) #"#,
            &format!("{hook}: target"),
        );

        // Wrong and missing token.
        let mut wrong = good.clone();
        wrong
            .metadata
            .insert("token".into(), "not-the-token".into());
        let r = app.call(hook, &wrong).await;
        assert_refused(&r, 403, "token", &format!("{hook}: wrong token"));
        let mut missing = good.clone();
        missing.metadata.remove("token");
        let r = app.call(hook, &missing).await;
        assert_refused(&r, 403, "token", &format!("{hook}: missing token"));

        // A namespace outside the allow-list (the regex must match all of it).
        for namespace in ["kube-system", "test-other"] {
            let mut outside = good.clone();
            outside.namespace = namespace.into();
            let r = app.call(hook, &outside).await;
            assert_refused(&r, 403, "not allowed", &format!("{hook}: {namespace}"));
            assert_nothing_recorded(&app, namespace, "podinfo", hook).await;
        }
    }

    // The event hook refuses the same way and stores no event.
    let mut event = good.clone();
    event.metadata.remove("token");
    let r = app.call("event", &event).await;
    assert_refused(&r, 403, "token", "event: missing token");
    let r = app.post_raw("event", "{").await;
    assert_refused(&r, 400, "invalid Flagger payload", "event: malformed");

    assert_nothing_recorded(&app, NS, "podinfo", "all refusals").await;
    assert_no_analysis(&app, &good, "all refusals").await;

    // The refusals are counted where an operator looks for them.
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("verdict_hook_calls_total{")
                && l.contains("hook=\"rollout\"")
                && l.contains("outcome=\"rejected\"")),
        "rejected rollout calls are not counted:\n{metrics}"
    );

    // The same payload with the right token is accepted: the refusals above were about
    // what each call changed, not about the canary.
    let r = app.call("pre-rollout", &good).await;
    assert_eq!(r.status, 200, "valid pre-rollout: «{}»", r.body);
    let analysis = app.analysis(&good).await.expect("analysis opened");
    let decisions = app.decisions(analysis.id).await;
    assert_eq!(decisions.len(), 1);
    assert!(
        !decisions[0].decision.reason.contains(TOKEN),
        "the token must never be stored"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn token_in_basic_auth_is_accepted_and_a_wrong_one_refused() {
    let app = app_with_auth().await;
    let p = payload("podinfo", "85d557f47b", &[("template", "istio")]);
    let send = |password: &'static str| {
        let http = app.http.clone();
        let url = format!("{}/flagger/pre-rollout", app.base_url());
        let p = p.clone();
        async move {
            let response = http
                .post(url)
                .basic_auth("flagger", Some(password))
                .json(&p)
                .send()
                .await
                .expect("server reachable");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let (status, body) = send("wrong-password").await;
    assert_eq!(status, 403, "«{body}»");
    assert_no_analysis(&app, &p, "wrong basic password").await;
    assert!(app.decisions_for("podinfo").await.is_empty());
    let (status, body) = send(TOKEN).await;
    assert_eq!(status, 200, "«{body}»");
    assert!(app.analysis(&p).await.is_some());
    app.shutdown().await;
}

#[tokio::test]
async fn a_json_array_is_not_a_flagger_payload() {
    // No token or allow-list here: the shape alone must refuse the call.
    let app = spawn_app(AppOptions::default()).await;
    for hook in HOOKS {
        let r = app
            .post_raw(hook, r#"["podinfo","test","Progressing","85d557f47b"]"#)
            .await;
        assert_refused(&r, 400, "invalid Flagger payload", hook);
    }
    assert_nothing_recorded(&app, NS, "podinfo", "array payloads").await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_invalid_target_is_reported_under_its_key() {
    let app = spawn_app(AppOptions::default()).await;
    let p = payload(
        "podinfo",
        "85d557f47b",
        &[("target", r#"x"} or vector(1) #"#)],
    );
    for hook in HOOKS {
        let r = app.call(hook, &p).await;
        // The canary's name is valid; the reason must point at the metadata key.
        assert_refused(&r, 400, "metadata target", hook);
    }
    assert_nothing_recorded(&app, NS, "podinfo", "invalid target").await;
    app.shutdown().await;
}
