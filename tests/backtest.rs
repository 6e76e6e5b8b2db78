//! `verdict backtest --analysis ID`: a stored analysis (real server, Postgres, Prometheus
//! scraping the exporter) replayed through the judge with changed settings, by the CLI
//! against the API. The replay writes nothing.

use std::process::Output;

use reqwest::Method;
use serde_json::Value;
use support::api::{call, token};
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS};
use support::exporter::Profile;
use tokio::process::Command;

async fn verdict(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .env("VERDICT_SERVER", app.base_url())
        .env("VERDICT_TOKEN", token("viewer", "vera"))
        .env_remove("VERDICT_CONFIG")
        .output()
        .await
        .expect("run verdict")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_backtest_replays_the_stored_looks_and_shows_where_changed_settings_differ() {
    let app = spawn_app(AppOptions::with_api()).await;
    app.traffic(
        "podinfo",
        Profile::fixed(200.0, 0.09, FAST_MS),
        Profile::fixed(200.0, 0.03, FAST_MS),
    );
    warm_up().await;
    let p = payload("podinfo", "bac4e57e", &[]);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    let mut failed_at = None;
    for look in 1..=10_i64 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        if r.status == 422 {
            failed_at = Some(look);
            break;
        }
        assert_eq!(r.status, 200, "look {look}: «{}»", r.body);
    }
    let failed_at = failed_at.expect("errors ×3 not rolled back within 10 looks");
    let analysis = app.analysis(&p).await.expect("analysis");
    let id = analysis.id.get().to_string();
    let looks_before = app.looks(analysis.id).await;
    let decisions_before = app.decisions(analysis.id).await.len();

    // Unchanged settings: the same judge gives back every stored verdict.
    let path = format!("/api/v1/analyses/{id}/backtest");
    let viewer = token("viewer", "vera");
    let http = reqwest::Client::new();
    let same = call(
        &http,
        &app.base_url(),
        Method::GET,
        &path,
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.text);
    let looks = same.json["looks"].as_array().expect("looks");
    assert_eq!(looks.len(), looks_before.len());
    for (replayed, stored) in looks.iter().zip(&looks_before) {
        assert_eq!(replayed["seq"], stored.look.seq);
        assert_eq!(replayed["old"], stored.look.verdict.as_str());
        assert_eq!(replayed["new"], stored.look.verdict.as_str(), "{replayed}");
    }
    assert!(same.json["first_difference"].is_null(), "{}", same.text);

    // A margin the ×3 canary stays within: the rollback look no longer fails.
    let o = verdict(
        &app,
        &[
            "backtest",
            "--analysis",
            &id,
            "--set",
            "errorMargin=5",
            "--json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["first_difference"], failed_at, "{v}");
    let at = &v["looks"][usize::try_from(failed_at - 1).expect("index")];
    assert_eq!(at["old"], "fail");
    assert_ne!(at["new"], "fail", "{at}");
    assert_eq!(v["changed"]["errorMargin"], "5");

    let o = verdict(
        &app,
        &["backtest", "--analysis", &id, "--set", "errorMargin=5"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.contains(&format!("first difference at look {failed_at}")),
        "{table}"
    );

    // Bad input is a clear error.
    for (args, expected) in [
        (vec!["--set", "alhpa=0.1"], "alhpa"),
        (vec!["--set", "alpha=0.9"], "alpha"),
        (vec!["--set", "template=linkerd"], "template"),
        (vec!["--set", "alpha"], "key=value"),
    ] {
        let mut all = vec!["backtest", "--analysis", id.as_str()];
        all.extend(args.iter().copied());
        let o = verdict(&app, &all).await;
        assert!(!o.status.success(), "{args:?} accepted");
        let err = text(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let o = verdict(&app, &["backtest", "--analysis", "999999"]).await;
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no analysis 999999"),
        "{}",
        text(&o.stderr)
    );

    // Nothing was written.
    assert_eq!(app.looks(analysis.id).await, looks_before);
    assert_eq!(app.decisions(analysis.id).await.len(), decisions_before);
    app.shutdown().await;
}
