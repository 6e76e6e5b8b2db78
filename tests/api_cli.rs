//! The `verdict` binary as an API client, against the real server on real Postgres and
//! Prometheus: tables for people, `--json` for scripts, the server's refusals as one-line
//! errors with a non-zero exit, and bad command lines refused before any request.

use std::process::Output;

use tokio::process::Command;

use serde_json::Value;
use support::api::token;
use support::app::{canary, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS};
use support::exporter::Profile;

/// Runs `verdict ARGS` against `app` with `token` in the environment (without blocking
/// the runtime the server runs on).
async fn verdict(app: &TestApp, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .env("VERDICT_SERVER", app.base_url())
        .env("VERDICT_TOKEN", token)
        .env_remove("VERDICT_CONFIG")
        .output()
        .await
        .expect("run verdict")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[tokio::test]
async fn the_cli_reads_and_acts_through_the_api() {
    let app = spawn_app(AppOptions::with_api()).await;
    let arm = Profile::fixed(200.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "aaa111", &[]);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    let id = app.analysis(&p).await.expect("analysis").id;
    let viewer = token("viewer", "vera");
    let alice = token("release-manager", "alice");
    let admin = token("admin", "root");

    // Reads: a table for people, the API's JSON with --json.
    let table = ok(
        &verdict(&app, &viewer, &["analyses", "list"]).await,
        "analyses list",
    );
    assert!(
        table.contains("podinfo") && table.contains("running"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ok(
        &verdict(
            &app,
            &viewer,
            &["analyses", "list", "--json", "--namespace", "test"],
        )
        .await,
        "analyses list --json",
    ))
    .expect("--json prints JSON");
    assert_eq!(json["items"][0]["id"], Value::from(id.get()));
    let shown = ok(
        &verdict(&app, &viewer, &["analyses", "show", &id.to_string()]).await,
        "analyses show",
    );
    assert!(
        shown.contains("pre-rollout"),
        "the decisions are shown: {shown}"
    );

    // A viewer may not hold a gate: the server's reason, a non-zero exit, nothing changed.
    let refused = verdict(
        &app,
        &viewer,
        &[
            "gate",
            "hold",
            "test/podinfo",
            "--gate",
            "promotion",
            "--reason",
            "freeze",
        ],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("403") && stderr(&refused).contains("viewer"),
        "{}",
        stderr(&refused)
    );
    assert!(app
        .store
        .gates(&canary("test", "podinfo"))
        .await
        .expect("gates")
        .is_empty());

    // A release manager holds the promotion gate; the hook and the canary view show it.
    ok(
        &verdict(
            &app,
            &alice,
            &[
                "gate",
                "hold",
                "test/podinfo",
                "--gate",
                "promotion",
                "--reason",
                "launch on Monday",
            ],
        )
        .await,
        "gate hold",
    );
    let r = app.call("confirm-promotion", &p).await;
    assert_eq!(r.status, 412);
    assert!(
        r.body
            .contains("promotion gate held by alice: launch on Monday"),
        "«{}»",
        r.body
    );
    let canary = ok(
        &verdict(&app, &viewer, &["canary", "test/podinfo"]).await,
        "canary",
    );
    assert!(
        canary.contains("held") && canary.contains("alice"),
        "{canary}"
    );
    ok(
        &verdict(
            &app,
            &alice,
            &[
                "gate",
                "approve",
                "test/podinfo",
                "--gate",
                "promotion",
                "--reason",
                "go",
            ],
        )
        .await,
        "gate approve",
    );
    ok(
        &verdict(
            &app,
            &alice,
            &["rollback", "test/podinfo", "--reason", "502s in eu-west"],
        )
        .await,
        "rollback",
    );
    let r = app.call("rollback", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);

    // The audit log (admin) has the three actions; a second rollback is a 409.
    let audit: Value = serde_json::from_str(&ok(
        &verdict(&app, &admin, &["audit", "--json"]).await,
        "audit --json",
    ))
    .expect("JSON");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["rollback", "gate.promotion.open", "gate.promotion.hold"]
    );
    let again = verdict(
        &app,
        &alice,
        &["rollback", "test/podinfo", "--reason", "again"],
    )
    .await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));

    // Bad command lines are refused before any request: the audit log does not grow.
    for args in [
        vec![
            "gate",
            "hold",
            "podinfo",
            "--gate",
            "promotion",
            "--reason",
            "x",
        ],
        vec![
            "gate",
            "hold",
            "test/Bad_Name",
            "--gate",
            "promotion",
            "--reason",
            "x",
        ],
        vec![
            "gate",
            "hold",
            "test/podinfo",
            "--gate",
            "deploy",
            "--reason",
            "x",
        ],
        vec![
            "gate",
            "hold",
            "test/podinfo",
            "--gate",
            "promotion",
            "--reason",
            "  ",
        ],
        vec!["rollback", "test/podinfo"],
        vec!["analyses", "list", "--limit", "0"],
    ] {
        let o = verdict(&app, &alice, &args).await;
        assert!(!o.status.success(), "{args:?} was accepted: {}", stdout(&o));
        assert!(!stderr(&o).trim().is_empty(), "{args:?}: no error message");
    }
    let audit: Value =
        serde_json::from_str(&stdout(&verdict(&app, &admin, &["audit", "--json"]).await))
            .expect("JSON");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(3));

    // A bad token and an unreachable server say so.
    let o = verdict(&app, "not.a.token", &["analyses", "list"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["analyses", "list"])
        .env("VERDICT_SERVER", "http://127.0.0.1:9")
        .env("VERDICT_TOKEN", &viewer)
        .output()
        .await
        .expect("run verdict");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));
    app.shutdown().await;
}
