//! Argo Rollouts' `web` metric provider end to end (docs/operations.md, "Argo Rollouts"):
//! real server on port 0, real Postgres, real Prometheus scraping an Istio-style exporter
//! whose arms carry the pod label `rollouts_pod_template_hash`, as a scrape copies it from
//! a Rollout's pods. A client that measures as Argo's web provider does, built from
//! `examples/argo/analysis-template.yaml`, drives the analyses; Flagger's hooks judge the
//! same series at the same moments (`istio` reads the arms by workload, `argo-istio` by
//! pod-template hash), so both must reach the same verdict at the same look.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use support::api::{call, token};
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS, NS};
use support::exporter::Profile;
use verdict::argo::provider::{Measured, Phase, WebMetric};
use verdict::config::GrafanaSettings;
use verdict::domain::{AnalysisKey, CanaryName, Checksum, Controller, Namespace};
use verdict::grafana::annotation;
use verdict::store::{Analysis, AnalysisStatus, LookRow, MilestoneKind, OutboxEntry};

const TOKEN: &str = "argo-webhook-token";
/// The real judge with less canary traffic needed, as in tests/flagger_flow.rs.
const QUICK: [(&str, &str); 2] = [("minCanaryRequests", "200"), ("promotionMargin", "1.0")];
/// Looks before the test gives up.
const MAX_LOOKS: i64 = 12;

/// One rollout as both controllers see it: Flagger's revision checksum, Argo's hashes.
struct Rollout {
    name: &'static str,
    checksum: &'static str,
    canary_hash: &'static str,
    stable_hash: &'static str,
}

const GOOD: Rollout = Rollout {
    name: "podinfo",
    checksum: "f1a9f1a9",
    canary_hash: "6b8f9c7d4",
    stable_hash: "5c9d7f8b6",
};

const BROKEN: Rollout = Rollout {
    name: "broken",
    checksum: "b0b0b0b0",
    canary_hash: "7c9d8f6b5",
    stable_hash: "4b6c8d9f7",
};

impl Rollout {
    /// Traffic for the canary and the stable/primary arm, labelled with their hashes.
    fn serve(&self, app: &TestApp, canary: Profile, stable: Profile) {
        app.traffic(self.name, canary, stable);
        let hash = "rollouts_pod_template_hash";
        let exporter = app.exporter();
        exporter.set_labels(NS, self.name, &[(hash, self.canary_hash)]);
        exporter.set_labels(
            NS,
            &format!("{}-primary", self.name),
            &[(hash, self.stable_hash)],
        );
    }

    /// Flagger's payload for the same canary and settings.
    fn flagger(&self) -> support::flagger::Payload {
        let mut metadata = vec![("token", TOKEN), ("template", "istio"), ("alpha", "0.01")];
        metadata.extend(QUICK);
        payload(self.name, self.checksum, &metadata)
    }

    /// Argo's measurement with the example template and the Rollout's arguments.
    fn argo(&self, app: &TestApp) -> WebMetric {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/argo/analysis-template.yaml"
        ))
        .expect("the example template");
        let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        let args: BTreeMap<String, String> = [
            ("namespace", NS),
            ("rollout", self.name),
            ("canary-hash", self.canary_hash),
            ("stable-hash", self.stable_hash),
            ("verdict-token", TOKEN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut metric = WebMetric::from_template(&template, "verdict", &args)
            .expect("the example's web metric")
            .with_base(&app.base_url());
        for (key, value) in QUICK {
            metric = metric.with_query(key, Some(value));
        }
        metric
    }

    fn argo_key(&self) -> AnalysisKey {
        AnalysisKey {
            namespace: Namespace::parse(NS).expect("ns"),
            name: CanaryName::parse(self.name).expect("name"),
            checksum: Checksum::parse(self.canary_hash).expect("hash"),
        }
    }
}

/// The JSON body of a measurement; panics (with the body) when it is not JSON.
fn json(m: &Measured) -> Value {
    serde_json::from_str(&m.body).unwrap_or_else(|e| panic!("not JSON ({e}): «{}»", m.body))
}

fn first_with(looks: &[LookRow], verdict: &str) -> Option<i64> {
    looks
        .iter()
        .find(|l| l.look.verdict == verdict)
        .map(|l| l.look.seq)
}

async fn analysis_of(app: &TestApp, key: &AnalysisKey) -> Option<Analysis> {
    app.store.find_analysis(key).await.expect("find_analysis")
}

#[tokio::test]
async fn argo_reaches_pass_and_fail_at_the_same_look_as_flaggers_rollout_hook() {
    let app = spawn_app(AppOptions {
        webhook_token: Some(TOKEN.into()),
        // Milestones are written only while a Grafana worker runs; none answers here,
        // so they stay in the outbox for the test to read.
        grafana: Some(GrafanaSettings {
            url: Some("http://127.0.0.1:9".into()),
            token: Some("unused".to_owned().into()),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(60),
            ..GrafanaSettings::default()
        }),
        ..AppOptions::with_api()
    })
    .await;
    // A/A: identical arms. Errors ×3: the canary fails three times as often.
    GOOD.serve(
        &app,
        Profile::fixed(200.0, 0.03, FAST_MS),
        Profile::fixed(200.0, 0.03, FAST_MS),
    );
    BROKEN.serve(
        &app,
        Profile::fixed(200.0, 0.09, FAST_MS),
        Profile::fixed(200.0, 0.03, FAST_MS),
    );
    warm_up().await;
    let (good_f, good_a) = (GOOD.flagger(), GOOD.argo(&app));
    let (broken_f, broken_a) = (BROKEN.flagger(), BROKEN.argo(&app));

    // The first measurement opens the analysis (baseline, plan) and answers `continue`:
    // there is no look yet. Flagger's pre-rollout opens its analysis at the same moment.
    // A third rollout reads the ×3 rollout's pods (the same hashes) in shadow mode.
    let shadowed = Rollout {
        name: "shadowed",
        ..BROKEN
    };
    let shadow_a = shadowed.argo(&app).with_query("mode", Some("shadow"));
    for (flagger, argo, rollout) in [(&good_f, &good_a, &GOOD), (&broken_f, &broken_a, &BROKEN)] {
        let shadow = (rollout.name == BROKEN.name).then_some(&shadow_a);
        let (f, a, s) = tokio::join!(app.call("pre-rollout", flagger), argo.measure(), async {
            match shadow {
                Some(m) => Some(m.measure().await),
                None => None,
            }
        });
        if let Some(s) = s {
            assert_eq!(s.phase, Phase::Inconclusive, "{s:?}");
        }
        assert_eq!(f.status, 200, "pre-rollout «{}»", f.body);
        assert_eq!(a.phase, Phase::Inconclusive, "{a:?}");
        assert_eq!(a.status, Some(200));
        assert_eq!(a.value, "\"continue\"");
        let body = json(&a);
        assert_eq!(body["look"], 0, "{body}");
        let opened = analysis_of(&app, &rollout.argo_key())
            .await
            .expect("the first measurement opened the analysis");
        assert_eq!(body["analysis"], opened.id.get());
        assert_eq!(opened.controller, Controller::Argo);
        assert!(opened.baseline.is_some(), "the baseline is recorded");
    }

    let (mut pass_at, mut fail_at) = (None, None);
    for look in 1..=MAX_LOOKS {
        next_look().await;
        if pass_at.is_none() {
            let (f, a) = tokio::join!(app.call("rollout", &good_f), good_a.measure());
            assert_eq!(f.status, 200, "A/A rollout look {look}: «{}»", f.body);
            let body = json(&a);
            assert_eq!(body["look"], look, "{body}");
            match a.phase {
                Phase::Successful => pass_at = Some(look),
                Phase::Inconclusive => {}
                other => panic!("A/A look {look}: {other:?} {body}"),
            }
            if look == 1 {
                // Within min_look_gap: the stored look answers again, no new look.
                let again = good_a.measure().await;
                assert_eq!(
                    (again.phase, json(&again)["look"].clone()),
                    (a.phase, body["look"].clone())
                );
            }
        }
        if fail_at.is_none() {
            let (f, a, s) = tokio::join!(
                app.call("rollout", &broken_f),
                broken_a.measure(),
                shadow_a.measure()
            );
            // Shadow mode: never `fail`; on the same data, "would roll back" at the same look.
            let s_body = json(&s);
            let would = s_body["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("shadow: would roll back: ");
            assert_eq!(s.phase, Phase::Inconclusive, "shadow look {look}: {s_body}");
            assert_eq!(
                would,
                a.phase == Phase::Failed,
                "shadow look {look}: {s_body}"
            );
            assert!(
                f.status == 200 || f.status == 422,
                "×3 rollout look {look}: «{}»",
                f.body
            );
            let body = json(&a);
            assert_eq!(a.status, Some(200), "a fail is a 200 too: {body}");
            match a.phase {
                Phase::Failed => {
                    fail_at = Some(look);
                    assert_eq!(body["decision"], "fail");
                    assert!(body["evidence"]["judge"].is_object(), "{body}");
                }
                Phase::Inconclusive => {}
                other => panic!("×3 look {look}: {other:?} {body}"),
            }
        }
        if pass_at.is_some() && fail_at.is_some() {
            break;
        }
    }
    let pass_at = pass_at.expect("A/A not passed within the looks");
    let fail_at = fail_at.expect("errors ×3 not failed within the looks");
    eprintln!("A/A passed at look {pass_at}, errors ×3 failed at look {fail_at}");

    // Flagger's rollout hook on the same data decided the same at the same look.
    let flagger_good = app.analysis(&good_f).await.expect("Flagger's A/A analysis");
    let flagger_broken = app
        .analysis(&broken_f)
        .await
        .expect("Flagger's ×3 analysis");
    let argo_good = analysis_of(&app, &GOOD.argo_key())
        .await
        .expect("Argo's A/A");
    let argo_broken = analysis_of(&app, &BROKEN.argo_key())
        .await
        .expect("Argo's ×3");
    assert_eq!(
        first_with(&app.looks(flagger_good.id).await, "pass"),
        Some(pass_at)
    );
    assert_eq!(
        first_with(&app.looks(argo_good.id).await, "pass"),
        Some(pass_at)
    );
    assert_eq!(
        first_with(&app.looks(flagger_broken.id).await, "fail"),
        Some(fail_at)
    );
    assert_eq!(
        first_with(&app.looks(argo_broken.id).await, "fail"),
        Some(fail_at)
    );
    assert_eq!(argo_broken.status, AnalysisStatus::Failed);
    let argo_shadowed = analysis_of(&app, &shadowed.argo_key())
        .await
        .expect("shadowed");
    assert_eq!(
        argo_shadowed.status,
        AnalysisStatus::Failed,
        "a shadow analysis fails in the store"
    );
    assert_eq!(
        first_with(&app.looks(argo_shadowed.id).await, "fail"),
        Some(fail_at)
    );
    assert_eq!(
        (flagger_good.controller, flagger_broken.controller),
        (Controller::Flagger, Controller::Flagger)
    );

    // A failed analysis keeps answering `fail` without a new look.
    let looks = app.looks(argo_broken.id).await.len();
    next_look().await;
    let again = broken_a.measure().await;
    assert_eq!(again.phase, Phase::Failed, "{}", again.body);
    assert_eq!(app.looks(argo_broken.id).await.len(), looks);

    // Every answer Argo got is recorded as sent: 200, under the hook argo-measure.
    let decisions = app.decisions(argo_broken.id).await;
    assert!(!decisions.is_empty());
    for d in decisions.iter().map(|d| &d.decision) {
        assert_eq!(
            (d.hook.as_str(), d.status_code),
            ("argo-measure", 200),
            "{d:?}"
        );
    }
    assert!(decisions.iter().any(|d| d.decision.verdict == "fail"));

    // Grafana's annotations name the controller of Argo's milestones only.
    let outbox = app.store.outbox(100).await.expect("outbox");
    let mut argo_kinds = Vec::new();
    for row in outbox {
        let OutboxEntry::Milestone(m) = row.entry else {
            continue;
        };
        let of = m.analysis.as_ref().expect("an analysis' milestone");
        let a = annotation(&m);
        if [argo_good.id, argo_broken.id, argo_shadowed.id].contains(&of.id) {
            assert_eq!(of.controller, Controller::Argo);
            assert_eq!(a.tags.last().map(String::as_str), Some("argo"), "{a:?}");
            assert!(a.text.contains("Argo Rollouts, pod-template-hash"), "{a:?}");
            argo_kinds.push(m.kind);
        } else {
            assert_eq!(of.controller, Controller::Flagger);
            assert!(
                !a.tags.iter().any(|t| t == "argo") && !a.text.contains("Argo"),
                "{a:?}"
            );
        }
    }
    argo_kinds.sort_by_key(|k| k.as_str());
    assert_eq!(
        argo_kinds,
        [
            MilestoneKind::Regression,
            MilestoneKind::Regression,
            MilestoneKind::Started,
            MilestoneKind::Started,
            MilestoneKind::Started
        ],
        "Argo's analyses started, and the ×3 ones (enforced and shadowed) regressed"
    );

    // The API names the controller.
    let viewer = token("viewer", "vera");
    let http = reqwest::Client::new();
    for (id, controller) in [(argo_good.id, "argo"), (flagger_good.id, "flagger")] {
        let path = format!("/api/v1/analyses/{}", id.get());
        let r = call(
            &http,
            &app.base_url(),
            Method::GET,
            &path,
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["analysis"]["controller"], controller, "{}", r.text);
    }
    // The list filters by controller; an unknown one is refused.
    for controller in ["argo", "flagger"] {
        let path = format!("/api/v1/analyses?controller={controller}&limit=200");
        let r = call(
            &http,
            &app.base_url(),
            Method::GET,
            &path,
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{controller}: {}", r.text);
        assert!(
            items.iter().all(|a| a["controller"] == controller),
            "{controller}: {}",
            r.text
        );
    }
    let r = call(
        &http,
        &app.base_url(),
        Method::GET,
        "/api/v1/analyses?controller=kayenta",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("controller"), "{}", r.text);
    // So does the console's page of an analysis.
    let (http, cookie) = support::api::console_session(&app.base_url(), &viewer).await;
    for (id, label) in [
        (argo_good.id, "Argo Rollouts"),
        (flagger_good.id, "Flagger"),
    ] {
        let page = http
            .get(format!("{}/ui/analyses/{}", app.base_url(), id.get()))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("analysis page");
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("html");
        let fact = format!("<dt>Controller</dt><dd>{label}</dd>");
        assert!(
            html.contains(&fact),
            "no «{fact}» on the page of analysis {id}"
        );
    }

    // Argo has no post-rollout: the next revision's measurements end the earlier ones.
    // Its stable is the A/A canary (promoted: succeeded); the one after it supersedes it
    // before promotion (aborted). Flagger's analysis of the same name is left alone.
    let promoted = Rollout {
        canary_hash: "8a7b6c5d4",
        stable_hash: GOOD.canary_hash,
        ..GOOD
    };
    let next = promoted.argo(&app).measure().await;
    assert_eq!(next.phase, Phase::Inconclusive, "{}", next.body);
    let ended = app
        .store
        .get_analysis(argo_good.id)
        .await
        .expect("get")
        .expect("A/A");
    assert_eq!(
        ended.status,
        AnalysisStatus::Succeeded,
        "{:?}",
        ended.status_reason
    );
    assert!(
        ended
            .status_reason
            .as_deref()
            .unwrap_or_default()
            .contains("promoted"),
        "{:?}",
        ended.status_reason
    );
    let flagger_now = app.analysis(&good_f).await.expect("Flagger's A/A");
    assert_eq!(
        flagger_now.status, flagger_good.status,
        "Flagger's analysis untouched"
    );
    let superseding = Rollout {
        canary_hash: "9e8d7c6b5",
        stable_hash: GOOD.canary_hash,
        ..GOOD
    };
    let r = superseding.argo(&app).measure().await;
    assert_eq!(r.phase, Phase::Inconclusive, "{}", r.body);
    let second = analysis_of(&app, &promoted.argo_key()).await.expect("R2");
    assert_eq!(
        second.status,
        AnalysisStatus::Aborted,
        "{:?}",
        second.status_reason
    );
    let running = analysis_of(&app, &superseding.argo_key())
        .await
        .expect("R3");
    assert_eq!(running.status, AnalysisStatus::Running);
    let last = app.decisions(argo_good.id).await;
    let last = &last.last().expect("the end is recorded").decision;
    assert_eq!(
        (last.hook.as_str(), last.verdict.as_str()),
        ("argo-measure", "ok")
    );
    let succeeded = app
        .store
        .outbox(200)
        .await
        .expect("outbox")
        .into_iter()
        .filter_map(|row| match row.entry {
            OutboxEntry::Milestone(m) => Some(m),
            OutboxEntry::Other { .. } => None,
        })
        .find(|m| {
            m.kind == MilestoneKind::Succeeded
                && m.analysis.as_ref().map(|a| a.id) == Some(argo_good.id)
        })
        .expect("the promoted analysis' succeeded milestone");
    let a = annotation(&succeeded);
    assert!(
        a.time_end.is_some() && a.tags.iter().any(|t| t == "argo"),
        "{a:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn bad_calls_get_a_reason_and_a_prometheus_outage_is_a_503_that_records_no_look() {
    let mut app = spawn_app(AppOptions {
        webhook_token: Some(TOKEN.into()),
        ..AppOptions::default()
    })
    .await;
    let arm = Profile::fixed(200.0, 0.01, FAST_MS);
    GOOD.serve(&app, arm.clone(), arm);
    warm_up().await;
    let good = GOOD.argo(&app);

    // Token: none is 401, a wrong one 403; both are Errors to Argo, with a JSON reason.
    let no_token = good.clone().without_header("Authorization").measure().await;
    assert_eq!((no_token.phase, no_token.status), (Phase::Error, Some(401)));
    assert_eq!(json(&no_token)["error"], "unauthorized");
    let wrong = good
        .clone()
        .with_header("Authorization", "Bearer not-the-token")
        .measure()
        .await;
    assert_eq!((wrong.phase, wrong.status), (Phase::Error, Some(403)));

    // Bad parameters: 400 with a reason naming the parameter; nothing opens.
    for (key, value, named) in [
        ("canaryHash", None, "canaryHash"),
        ("stableHash", Some(GOOD.canary_hash), "equals stableHash"),
        ("canaryHash", Some("Not_A_Hash"), "canaryHash"),
        ("alhpa", Some("0.1"), "alhpa"),
        ("alpha", Some("2"), "alpha"),
        ("template", Some("argo-nope"), "argo-nope"),
        ("token", Some(TOKEN), "Authorization: Bearer"),
    ] {
        let m = good.clone().with_query(key, value).measure().await;
        assert_eq!(
            (m.phase, m.status),
            (Phase::Error, Some(400)),
            "{key}: {}",
            m.body
        );
        let body = json(&m);
        assert_eq!(body["error"], "bad_request");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(named), "{key}: «{reason}»");
    }
    assert!(
        analysis_of(&app, &GOOD.argo_key()).await.is_none(),
        "opened by a bad call"
    );
    assert!(
        app.decisions_for(GOOD.name).await.is_empty(),
        "a bad call was recorded"
    );

    // POST with the parameters in a JSON body (Argo's jsonBody) is the same measurement.
    let body = serde_json::json!({
        "namespace": NS, "rollout": GOOD.name, "canaryHash": GOOD.canary_hash,
        "stableHash": GOOD.stable_hash, "template": "argo-istio", "alpha": 0.01,
    });
    let posted = app
        .http
        .post(format!("{}{}", app.base_url(), verdict::argo::PATH))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(posted.status().as_u16(), 200);
    let posted: Value = posted.json().await.expect("JSON");
    assert_eq!(posted["decision"], "continue", "{posted}");
    let opened = analysis_of(&app, &GOOD.argo_key()).await.expect("opened");
    assert_eq!(posted["analysis"], opened.id.get());

    // One revision, one controller: Flagger's hooks do not act on Argo's analysis.
    let flagger = payload(GOOD.name, GOOD.canary_hash, &[("token", TOKEN)]);
    let r = app.call("rollout", &flagger).await;
    assert_eq!(r.status, 409, "«{}»", r.body);
    assert!(r.body.contains("belongs to Argo Rollouts"), "«{}»", r.body);

    // Prometheus down: 503 with JSON, an Error to Argo; no look, the refusal recorded.
    app.prometheus_mut().stop().await;
    next_look().await;
    let down = good.measure().await;
    assert_eq!(
        (down.phase, down.status),
        (Phase::Error, Some(503)),
        "{}",
        down.body
    );
    let body = json(&down);
    assert_eq!(body["error"], "unavailable");
    assert!(!body["reason"].as_str().unwrap_or_default().is_empty());
    assert!(
        app.looks(opened.id).await.is_empty(),
        "a look without Prometheus"
    );
    let last = app.decisions(opened.id).await;
    let last = &last.last().expect("the refusal is recorded").decision;
    assert_eq!((last.status_code, last.verdict.as_str()), (503, "error"));
    // A new revision cannot open without Prometheus either.
    let other = Rollout {
        canary_hash: "9f8e7d6c5",
        ..GOOD
    };
    let fresh = other.argo(&app).measure().await;
    assert_eq!(fresh.status, Some(503), "{}", fresh.body);
    assert!(analysis_of(&app, &other.argo_key()).await.is_none());
    app.shutdown().await;
}
