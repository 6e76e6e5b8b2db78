//! `verdict backtest`: stored analyses (real server, Postgres, Prometheus scraping the
//! exporter, analyses driven through the hooks) replayed through the judge with changed
//! settings, one (`--analysis`) or all since a time (`--since`, `--compare`), and a window
//! of Prometheus history judged as the live analysis on it was (`--target --from --to`),
//! by the CLI against the API. Backtests write nothing.

use std::process::Output;

use reqwest::Method;
use serde_json::Value;
use support::api::{call, token};
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS};
use support::exporter::Profile;
use tokio::process::Command;

async fn verdict(app: &TestApp, args: &[&str]) -> Output {
    verdict_as(app, "viewer", args).await
}

async fn verdict_as(app: &TestApp, role: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .env("VERDICT_SERVER", app.base_url())
        .env("VERDICT_TOKEN", token(role, "vera"))
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

/// Every row the store holds for these analyses: what a backtest must leave alone.
async fn written(app: &TestApp, ids: &[verdict::domain::AnalysisId]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for id in ids {
        out.push((app.looks(*id).await.len(), app.decisions(*id).await.len()));
    }
    out
}

fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

fn flip_of(configuration: &Value, id: i64) -> Option<&Value> {
    configuration["flips"]
        .as_array()
        .expect("flips")
        .iter()
        .find(|f| f["analysis_id"] == id)
}

/// `--since`: three analyses driven through the hooks (a marginal ×3 rollback, a
/// promotion of identical arms, one still undecided) replayed as stored, under α 1e-6,
/// and side by side with `--compare`; bad input is refused and nothing is written.
#[tokio::test]
async fn a_history_backtest_reports_the_outcomes_a_changed_alpha_flips() {
    let app = spawn_app(AppOptions::with_api()).await;
    app.traffic(
        "failing",
        Profile::fixed(200.0, 0.09, FAST_MS),
        Profile::fixed(200.0, 0.03, FAST_MS),
    );
    let same = Profile::fixed(200.0, 0.03, FAST_MS);
    app.traffic("passing", same.clone(), same.clone());
    app.traffic("pending", same.clone(), same);
    warm_up().await;
    // Promotion reachable within seconds of test traffic (as tests/flagger_flow.rs).
    let quick = [("minCanaryRequests", "200"), ("promotionMargin", "1.0")];
    let failing = payload("failing", "fa11", &[]);
    let passing = payload("passing", "9a55", &quick);
    let pending = payload("pending", "5717", &[]);
    for p in [&failing, &passing, &pending] {
        assert_eq!(app.call("pre-rollout", p).await.status, 200);
    }
    // One look of the pending canary, then looks of the other two until each decides.
    let (mut failed, mut passed) = (false, false);
    for look in 1..=14 {
        next_look().await;
        if look == 1 {
            let r = app.call("rollout", &pending).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        if !failed {
            let r = app.call("rollout", &failing).await;
            assert!(r.status == 200 || r.status == 422, "{}", r.body);
            failed = r.status == 422;
        }
        if !passed {
            let r = app.call("rollout", &passing).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let id = app.analysis(&passing).await.expect("analysis").id;
            passed = app.looks(id).await.last().expect("a look").look.verdict == "pass";
        }
        if failed && passed {
            break;
        }
    }
    assert!(failed && passed, "failed {failed}, passed {passed}");
    let mut ids = Vec::new();
    for p in [&failing, &passing, &pending] {
        ids.push(app.analysis(p).await.expect("analysis").id);
    }
    let fail_look = app.looks(ids[0]).await.len() as i64;
    let before = written(&app, &ids).await;

    // As stored: the replay gives back every recorded outcome, so nothing flips.
    let v = json_of(&verdict(&app, &["backtest", "--since", "1h", "--json"]).await);
    assert_eq!(v["analyses"], 3, "{v}");
    let recorded = &v["recorded"];
    assert_eq!(
        (
            &recorded["rolled_back"],
            &recorded["promoted"],
            &recorded["undecided"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{v}"
    );
    assert_eq!(v["configurations"][0]["outcomes"], *recorded, "{v}");
    assert_eq!(
        v["configurations"][0]["flips"],
        serde_json::json!([]),
        "{v}"
    );

    // α 1e-6: the marginal rollback needs far more evidence than its looks hold.
    let o = verdict(
        &app,
        &["backtest", "--since", "1h", "--set", "alpha=1e-6", "--json"],
    )
    .await;
    let v = json_of(&o);
    let tightened = &v["configurations"][0];
    assert_eq!(tightened["changed"]["alpha"], "1e-6", "{v}");
    assert_eq!(tightened["outcomes"]["rolled_back"], 0, "{v}");
    let flip = flip_of(tightened, ids[0].get()).expect("the rollback flips");
    assert_eq!(flip["canary"], "test/failing");
    assert_eq!(flip["before"]["ending"], "rolled_back");
    assert_eq!(flip["before"]["look"], fail_look);
    assert_eq!(flip["after"]["ending"], "undecided", "{flip}");
    assert!(flip_of(tightened, ids[2].get()).is_none(), "{v}");
    // The table says the same for people.
    let o = verdict(&app, &["backtest", "--since", "1h", "--set", "alpha=1e-6"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    eprintln!("{table}");
    assert!(table.contains("as recorded"), "{table}");
    assert!(
        table.contains(&format!(
            "analysis {} test/failing: rolled back at look {fail_look} → undecided",
            ids[0]
        )),
        "{table}"
    );

    // Side by side: a looser α keeps the rollback, 1e-6 loses it; one row each.
    let o = verdict(
        &app,
        &[
            "backtest",
            "--since",
            "1h",
            "--compare",
            "alpha=0.05",
            "alpha=1e-6",
            "--json",
        ],
    )
    .await;
    let v = json_of(&o);
    let rows = v["configurations"].as_array().expect("configurations");
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["changed"]["alpha"], "0.05");
    assert_eq!(rows[0]["outcomes"]["rolled_back"], 1, "{v}");
    assert!(flip_of(&rows[0], ids[0].get()).is_none(), "{v}");
    assert_eq!(rows[1]["outcomes"]["rolled_back"], 0, "{v}");
    let o = verdict(
        &app,
        &[
            "backtest",
            "--since",
            "1h",
            "--compare",
            "alpha=0.05",
            "alpha=1e-6",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    eprintln!("{table}");
    for row in ["as recorded", "alpha=0.05", "alpha=1e-6", "median look"] {
        assert!(table.contains(row), "{row}: {table}");
    }

    // Another namespace has no analyses.
    let v = json_of(
        &verdict(
            &app,
            &["backtest", "--since", "1h", "-n", "other", "--json"],
        )
        .await,
    );
    assert_eq!(v["analyses"], 0, "{v}");

    // Bad input: a clear error, nothing replayed or written.
    for (args, expected) in [
        (vec!["--since", "30x"], "30x"),
        (vec!["--since", "1h", "--set", "alhpa=1e-6"], "alhpa"),
        (vec!["--since", "1h", "--set", "alpha=abc"], "alpha"),
        (vec!["--since", "1h", "--set", "alpha=0.9"], "alpha"),
        (
            vec!["--since", "1h", "--set", "template=linkerd"],
            "template",
        ),
        (vec!["--since", "1h", "--compare", "alpha=0.01"], "compare"),
        (
            vec![
                "--since",
                "1h",
                "--compare",
                "alpha=0.01",
                "alpha=1e-6,bogus=1",
            ],
            "bogus",
        ),
        (
            vec![
                "--since",
                "1h",
                "--set",
                "alpha=0.01",
                "--compare",
                "alpha=0.1",
                "alpha=0.2",
            ],
            "not both",
        ),
        (vec!["--since", "1h", "--analysis", "1"], "cannot be used"),
        (
            vec!["--since", "1h", "--from", "2026-01-01T00:00:00Z"],
            "--target",
        ),
    ] {
        let mut all = vec!["backtest"];
        all.extend(args.iter().copied());
        let o = verdict(&app, &all).await;
        assert!(!o.status.success(), "{args:?} accepted");
        let err = text(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let viewer = token("viewer", "vera");
    let http = reqwest::Client::new();
    for query in [
        "since=1h&compare=alpha=0.01",
        "since=1h&set=alpha=0.1&compare=alpha=0.1;alpha=0.2",
        "since=400d",
        "since=1h&namespace=Not_A_Name",
        "namespace=test",
    ] {
        let r = call(
            &http,
            &app.base_url(),
            Method::GET,
            &format!("/api/v1/backtest?{query}"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(r.status, 422, "{query}: {}", r.text);
    }
    assert_eq!(written(&app, &ids).await, before);

    // Settings this verdict cannot read (another version wrote them): that analysis is
    // listed as skipped, the others are still replayed.
    {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&app.db.url)
            .await
            .expect("connect");
        sqlx::query("UPDATE analysis SET settings = '{\"from\": \"elsewhere\"}' WHERE id = $1")
            .bind(ids[2].get())
            .execute(&mut db)
            .await
            .expect("update");
    }
    let v = json_of(
        &verdict(
            &app,
            &["backtest", "--since", "1h", "--set", "alpha=1e-6", "--json"],
        )
        .await,
    );
    assert_eq!(v["analyses"], 2, "{v}");
    let skipped = v["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["analysis_id"], ids[2].get());
    assert!(
        skipped[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("unreadable settings"),
        "{v}"
    );
    assert!(
        flip_of(&v["configurations"][0], ids[0].get()).is_some(),
        "{v}"
    );
    app.shutdown().await;
}

/// More analyses since the time than a backtest replays: refused with the bound named.
#[tokio::test]
async fn a_history_backtest_over_its_bound_is_refused() {
    let app = spawn_app(AppOptions {
        store: support::db::Backend::Sqlite,
        jwt: Some(support::app::hs256_api()),
        ..AppOptions::simulated(7)
    })
    .await;
    let config = verdict::config::Config::default();
    let name = verdict::domain::CanaryName::parse("podinfo").expect("name");
    let canary = verdict::analysis::settings::resolve(&name, &Default::default(), &config)
        .expect("default settings");
    let settings = verdict::domain::AnalysisSettings {
        slo_boundary_s: None,
        canary,
        plan: None,
        boundary_s: None,
    };
    let now = verdict::domain::now_millis();
    for k in 0..=verdict::analysis::MAX_BACKTEST_ANALYSES {
        let new = verdict::store::NewAnalysis {
            key: verdict::domain::AnalysisKey {
                namespace: verdict::domain::Namespace::parse("test").expect("ns"),
                name: name.clone(),
                checksum: verdict::domain::Checksum::parse(&format!("c{k}")).expect("checksum"),
            },
            settings: settings.clone(),
            started_at: now,
            baseline: None,
        };
        app.store.open_analysis(&new).await.expect("open");
    }
    let o = verdict(&app, &["backtest", "--since", "1h", "--set", "alpha=0.001"]).await;
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "more than {} analyses",
            verdict::analysis::MAX_BACKTEST_ANALYSES
        )),
        "{err}"
    );
    // A narrower selection is within the bound.
    let o = verdict(&app, &["backtest", "--since", "1h", "-n", "other"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    app.shutdown().await;
}

/// `args` with the value after `flag` replaced.
fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|x| x == flag).expect("flag") + 1;
    args[at] = value.to_owned();
    args
}

/// Sleeps until Unix millisecond `t`.
async fn until(t: i64) {
    let wait = t - verdict::domain::now_millis();
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Look period of the recorded window: traffic for most of it, then both arms still for
/// the last 1.5 s (more than a scrape), so the live call and the backtest, a few
/// milliseconds apart, read the same counters.
const PERIOD_MS: i64 = 4_000;
const STILL_MS: i64 = 1_500;

/// A window recorded while a live analysis ran on it (errors ×3) gives, backtested over
/// the same look times, the same looks and verdicts; `--compare` runs configurations on
/// it; a gap in the primary's series is reported per look; a window over `--max-looks`
/// and bad input are refused; nothing is written.
#[tokio::test]
async fn a_window_backtest_judges_prometheus_history_as_the_live_analysis_did() {
    let mut app = spawn_app(AppOptions::with_api()).await;
    let canary = Profile::fixed(200.0, 0.09, FAST_MS);
    let primary = Profile::fixed(200.0, 0.03, FAST_MS);
    let go = || app.traffic("podinfo", canary.clone(), primary.clone());
    let still = || app.traffic("podinfo", Profile::idle(), Profile::idle());
    go();
    warm_up().await;
    still();
    tokio::time::sleep(std::time::Duration::from_millis(STILL_MS as u64)).await;
    let p = payload("podinfo", "w1nd0w", &[]);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    let analysis = app.analysis(&p).await.expect("analysis");
    let t0 = analysis.started_at;
    let mut looks_taken = 0;
    for k in 1..=10_i64 {
        go();
        until(t0 + k * PERIOD_MS - STILL_MS).await;
        still();
        until(t0 + k * PERIOD_MS).await;
        let r = app.call("rollout", &p).await;
        looks_taken = k;
        if r.status == 422 {
            break;
        }
        assert_eq!(r.status, 200, "look {k}: «{}»", r.body);
    }
    let live = app.looks(analysis.id).await;
    assert_eq!(live.len() as i64, looks_taken);
    assert_eq!(
        live.last().expect("looks").look.verdict,
        "fail",
        "not rolled back"
    );
    let to = t0 + looks_taken * PERIOD_MS;
    let (from_text, to_text) = (rfc3339(t0), rfc3339(to));
    let window = |extra: &[&str]| {
        let mut args = vec![
            "backtest".to_owned(),
            "--namespace".into(),
            "test".into(),
            "--target".into(),
            "podinfo".into(),
            "--from".into(),
            from_text.clone(),
            "--to".into(),
            to_text.clone(),
            "--interval".into(),
            format!("{PERIOD_MS}ms"),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |args: Vec<String>, role: &'static str| {
        let app = &app;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            verdict_as(app, role, &args).await
        }
    };
    let analyses_before = app
        .store
        .list_analyses(&verdict::store::AnalysisFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .len();

    // The same look times: the same counts, verdicts and decision as the live analysis.
    let v = json_of(&run(window(&["--json"]), "release-manager").await);
    assert_eq!(v["look_times"], looks_taken, "{v}");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let looks = runs[0]["looks"].as_array().expect("looks");
    assert_eq!(looks.len(), live.len(), "{v}");
    for (w, l) in looks.iter().zip(&live) {
        let l = &l.look;
        assert_eq!(w["seq"], l.seq, "{w}");
        assert_eq!(
            w["canary"]["requests"], l.canary.requests,
            "look {}: {w}",
            l.seq
        );
        assert_eq!(
            w["canary"]["errors"], l.canary.errors,
            "look {}: {w}",
            l.seq
        );
        assert_eq!(
            w["primary"]["requests"], l.primary.requests,
            "look {}: {w}",
            l.seq
        );
        assert_eq!(
            w["primary"]["errors"], l.primary.errors,
            "look {}: {w}",
            l.seq
        );
        assert_eq!(w["verdict"], l.verdict.as_str(), "look {}: {w}", l.seq);
        assert_eq!(w["reason"], l.reason.as_str(), "look {}", l.seq);
    }
    assert_eq!(runs[0]["outcome"]["ending"], "rolled_back");
    assert_eq!(runs[0]["outcome"]["look"], looks_taken);
    let o = run(window(&[]), "release-manager").await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    eprintln!("{table}");
    assert!(
        table.contains(&format!("as given: rolled back at look {looks_taken}")),
        "{table}"
    );

    // Side by side on the same history: a looser α still rolls back, 1e-6 cannot decide.
    let v = json_of(
        &run(
            window(&["--compare", "alpha=0.05", "alpha=1e-6", "--json"]),
            "release-manager",
        )
        .await,
    );
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{v}");
    assert_eq!(runs[0]["outcome"]["ending"], "rolled_back", "{v}");
    assert_eq!(runs[1]["outcome"]["ending"], "undecided", "{v}");
    assert_eq!(runs[1]["outcomes"]["undecided"], 1, "{v}");
    let o = run(
        window(&["--compare", "alpha=0.05", "alpha=1e-6"]),
        "release-manager",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    eprintln!("{table}");
    assert!(table.contains("alpha=1e-6: undecided"), "{table}");
    assert!(table.contains("median look"), "{table}");

    // A gap: the primary's series vanish for a while, then come back from zero.
    let same = Profile::fixed(200.0, 0.03, FAST_MS);
    app.traffic("podinfo", same.clone(), same.clone());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let gap_from = verdict::domain::now_millis();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    app.exporter().remove(support::app::NS, "podinfo-primary");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    app.exporter()
        .set_profile(support::app::NS, "podinfo-primary", same);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let gap_to = verdict::domain::now_millis() - 500;
    let gap_args = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "backtest",
            "-n",
            "test",
            "--target",
            "podinfo",
            "--from",
            &rfc3339(gap_from),
            "--to",
            &rfc3339(gap_to),
            "--interval",
            "1s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let v = json_of(&run(gap_args(&["--json"]), "admin").await);
    let looks = v["runs"][0]["looks"].as_array().expect("looks");
    let missing: Vec<&Value> = looks.iter().filter(|l| l["seq"].is_null()).collect();
    assert!(!missing.is_empty(), "no look reported the gap: {v}");
    for l in &missing {
        assert!(l["verdict"].is_null(), "{l}");
        assert!(
            l["reason"]
                .as_str()
                .expect("reason")
                .starts_with("no look:"),
            "{l}"
        );
    }
    assert!(
        missing.iter().any(|l| l["reason"]
            .as_str()
            .expect("reason")
            .contains("no data for the primary")),
        "{v}"
    );
    let first_missing = looks.iter().position(|l| l["seq"].is_null()).expect("gap");
    let after_gap = looks[first_missing..]
        .iter()
        .filter(|l| !l["seq"].is_null())
        .count();
    assert!(after_gap > 0, "no look after the gap: {v}");
    assert!(
        looks[..first_missing].iter().all(|l| !l["seq"].is_null()),
        "{v}"
    );

    // Over --max-looks: refused, with the numbers.
    let o = run(window(&["--max-looks", "1"]), "release-manager").await;
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("holds {looks_taken} looks")) && err.contains("at most 1"),
        "{err}"
    );

    // Bad input: a clear error.
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (window(&["--set", "alhpa=0.1"]), "release-manager", "alhpa"),
        (window(&["--set", "alpha=2"]), "release-manager", "alpha"),
        (window(&["--template", "nope"]), "release-manager", "nope"),
        (
            window(&["--compare", "alpha=0.05", "template=linkerd"]),
            "release-manager",
            "template",
        ),
        (
            window(&["--max-looks", "0"]),
            "release-manager",
            "max-looks",
        ),
        (
            window(&[]),
            "viewer",
            "role viewer may not backtest a window",
        ),
        (
            with(window(&[]), "--to", &rfc3339(t0 - 1_000)),
            "release-manager",
            "ends before it starts",
        ),
        (
            with(
                window(&[]),
                "--to",
                &rfc3339(verdict::domain::now_millis() + 3_600_000),
            ),
            "release-manager",
            "future",
        ),
        (
            with(window(&[]), "--interval", "0s"),
            "release-manager",
            "interval",
        ),
        (
            with(window(&[]), "--interval", "500ms"),
            "release-manager",
            "interval",
        ),
        (
            with(window(&[]), "--from", "yesterday"),
            "release-manager",
            "yesterday",
        ),
        // No workload of that name: nothing to open the analysis with (a 424).
        (
            with(window(&[]), "--target", "ghost"),
            "release-manager",
            "at the window's start",
        ),
    ];
    for (args, role, expected) in cases {
        let o = run(args.clone(), role).await;
        assert!(!o.status.success(), "{args:?} accepted");
        let err = text(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    // Prometheus gone: a clear failed dependency, not a report of empty looks.
    app.prometheus_mut().stop().await;
    let args = window(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = verdict_as(&app, "release-manager", &args).await;
    assert!(!o.status.success(), "a window without Prometheus succeeded");
    let err = text(&o.stderr);
    assert!(err.contains("Prometheus") && err.contains("(424)"), "{err}");

    // Nothing was written by any of it.
    assert_eq!(app.looks(analysis.id).await, live);
    let analyses_after = app
        .store
        .list_analyses(&verdict::store::AnalysisFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .len();
    assert_eq!(analyses_after, analyses_before);
    app.shutdown().await;
}

/// The lines of `/metrics` a recorded backtest must leave alone: hook calls, looks and
/// analyses.
async fn canary_metrics(app: &TestApp) -> Vec<String> {
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    metrics
        .lines()
        .filter(|l| {
            ["verdict_hook_calls", "verdict_look_", "verdict_analys"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// Rows of a table, counted through a connection of the test's own.
async fn rows(app: &TestApp, table: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut db)
        .await
        .expect("count")
}

async fn backtests(app: &TestApp) -> Vec<verdict::store::Analysis> {
    app.store
        .list_analyses(&verdict::store::AnalysisFilter {
            origin: verdict::store::Origin::Backtest,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
}

/// `--record`: the window backtest is stored as an analysis of origin backtest with the
/// looks and verdicts it printed, readable like any analysis, while a live analysis of
/// the same canary answers every hook from its own looks, the canary view and the
/// overview show the live one, and neither the outbox nor the metrics move; bad input
/// records nothing, and a store fault mid-run leaves no partial analysis.
#[tokio::test]
async fn a_recorded_window_backtest_is_an_analysis_no_hook_reads() {
    let app = spawn_app(AppOptions {
        // Annotations on, to a Grafana that never answers: milestones stay in the outbox.
        grafana: Some(verdict::config::GrafanaSettings {
            url: Some("http://127.0.0.1:9".into()),
            token: Some("t0ken".to_owned().into()),
            dashboard_uid: Some("canaries".into()),
            ..Default::default()
        }),
        ..AppOptions::with_api()
    })
    .await;
    let bad = Profile::fixed(200.0, 0.09, FAST_MS);
    let good = Profile::fixed(200.0, 0.03, FAST_MS);
    app.traffic("podinfo", bad, good.clone());
    // A workload verdict never analyses live.
    app.traffic("frontend", good.clone(), good.clone());
    warm_up().await;
    let from = verdict::domain::now_millis();
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    let to = verdict::domain::now_millis() - 1_500;

    // Then a live analysis of the same canary on even traffic, with looks of its own.
    app.traffic("podinfo", good.clone(), good);
    let p = payload("podinfo", "l1ve", &[]);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    let live = app.analysis(&p).await.expect("live analysis");
    for _ in 0..2 {
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let live_looks = app.looks(live.id).await;
    assert_eq!(live_looks.len(), 2);

    let window = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "backtest",
            "-n",
            "test",
            "--target",
            "podinfo",
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
            "--interval",
            "2s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |args: Vec<String>, role: &'static str| {
        let app = &app;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            verdict_as(app, role, &args).await
        }
    };
    let hooks = ["confirm-rollout", "confirm-promotion", "rollback"];
    let answers = || async {
        let mut out = Vec::new();
        for hook in hooks {
            let r = app.call(hook, &p).await;
            out.push((hook, r.status, r.body));
        }
        out
    };
    let http = reqwest::Client::new();
    let viewer = token("viewer", "vera");
    let get = |path: String| {
        let (http, viewer, base) = (&http, &viewer, app.base_url());
        async move { call(http, &base, Method::GET, &path, Some(viewer), None).await }
    };

    // Without --record nothing is written, with bad input neither.
    let (analyses, looks, decisions) = (
        rows(&app, "analysis").await,
        rows(&app, "look").await,
        rows(&app, "decision").await,
    );
    let o = run(window(&["--json"]), "release-manager").await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(json_of(&o).get("recorded").is_none());
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            window(&["--record", "--set", "alhpa=0.1"]),
            "release-manager",
            "alhpa",
        ),
        (
            window(&["--record", "--compare", "alpha=0.05", "alpha=1e-6"]),
            "release-manager",
            "--compare",
        ),
        (window(&["--record"]), "viewer", "role viewer may not"),
        (
            window(&["--record", "--max-looks", "2"]),
            "release-manager",
            "at most 2",
        ),
        (
            with(window(&["--record"]), "--target", "ghost"),
            "release-manager",
            "at the window's start",
        ),
    ];
    for (args, role, expected) in cases {
        let o = run(args.clone(), role).await;
        assert!(!o.status.success(), "{args:?} accepted");
        let err = text(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // The API refuses record with compare itself (the CLI never sends it).
    let r = call(
        &http,
        &app.base_url(),
        Method::POST,
        "/api/v1/backtest/window",
        Some(&token("release-manager", "rita")),
        Some(serde_json::json!({
            "namespace": "test", "target": "podinfo", "from": rfc3339(from), "to": rfc3339(to),
            "interval": "2s", "record": true,
            "compare": [{"alpha": "0.05"}, {"alpha": "1e-6"}],
        })),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.message().contains("record"), "{}", r.text);
    assert_eq!(
        (
            rows(&app, "analysis").await,
            rows(&app, "look").await,
            rows(&app, "decision").await
        ),
        (analyses, looks, decisions),
        "a backtest without --record or with bad input wrote"
    );

    // A store fault at the second look: the run is refused and nothing of it is stored.
    {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&app.db.url)
            .await
            .expect("connect");
        for statement in [
            "CREATE FUNCTION fault_at_look_2() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.seq >= 2 THEN RAISE EXCEPTION 'injected fault at look %', NEW.seq; \
             END IF; RETURN NEW; END $$",
            "CREATE TRIGGER fault BEFORE INSERT ON look FOR EACH ROW EXECUTE FUNCTION fault_at_look_2()",
        ] {
            sqlx::query(statement)
                .execute(&mut db)
                .await
                .expect("inject the fault");
        }
        let o = run(window(&["--record"]), "admin").await;
        assert!(!o.status.success(), "recorded through a store fault");
        let err = text(&o.stderr);
        assert!(
            err.contains("store") && err.contains("nothing was changed"),
            "{err}"
        );
        assert!(
            backtests(&app).await.is_empty(),
            "a partial backtest is stored"
        );
        assert_eq!(
            (
                rows(&app, "analysis").await,
                rows(&app, "look").await,
                rows(&app, "decision").await
            ),
            (analyses, looks, decisions),
            "the failed recording left rows"
        );
        sqlx::query("DROP TRIGGER fault ON look")
            .execute(&mut db)
            .await
            .expect("end the fault");
    }

    // Recorded: the analysis keeps the looks and verdicts printed.
    let before = answers().await;
    let metrics = canary_metrics(&app).await;
    let outbox = app.store.outbox(1_000).await.expect("outbox");
    assert!(!outbox.is_empty(), "the live analysis wrote no milestone");
    let o = run(window(&["--record", "--json"]), "release-manager").await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v = json_of(&o);
    let printed = &v["runs"][0];
    assert_eq!(printed["outcome"]["ending"], "rolled_back", "{v}");
    let recorded = &v["recorded"];
    assert_eq!(recorded["origin"], "backtest", "{v}");
    assert_eq!(recorded["status"], "failed", "{v}");
    let id = recorded["id"].as_i64().expect("recorded id");
    assert_ne!(id, live.id.get());
    let o = run(window(&["--record"]), "release-manager").await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(table.contains("recorded as analysis"), "{table}");
    let stored = backtests(&app).await;
    assert_eq!(stored.len(), 2, "recording again makes a second analysis");
    assert_ne!(stored[0].key.checksum, stored[1].key.checksum);

    let o = run(
        vec![
            "analyses".into(),
            "show".into(),
            id.to_string(),
            "--json".into(),
        ],
        "viewer",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let shown = json_of(&o);
    let printed_looks: Vec<&Value> = printed["looks"]
        .as_array()
        .expect("looks")
        .iter()
        .filter(|l| !l["seq"].is_null())
        .collect();
    let stored_looks = shown["looks"].as_array().expect("stored looks");
    assert_eq!(stored_looks.len(), printed_looks.len(), "{shown}");
    for (s, w) in stored_looks.iter().zip(&printed_looks) {
        assert_eq!(s["seq"], w["seq"], "{s}");
        assert_eq!(s["verdict"], w["verdict"], "{s}");
        assert_eq!(s["reason"], w["reason"], "{s}");
        for arm in ["canary", "primary"] {
            for count in ["requests", "errors"] {
                assert_eq!(s[arm][count], w[arm][count], "{arm} {count}: {s}");
            }
        }
    }
    let decided = shown["decisions"].as_array().expect("decisions");
    assert_eq!(decided.len(), printed_looks.len(), "{shown}");
    for (d, w) in decided.iter().zip(&printed_looks) {
        assert_eq!(d["hook"], "rollout", "{d}");
        assert_eq!(d["verdict"], w["verdict"], "{d}");
        let code = if w["verdict"] == "fail" { 422 } else { 200 };
        assert_eq!(d["status_code"], code, "{d}");
    }
    let o = run(
        vec!["analyses".into(), "show".into(), id.to_string()],
        "viewer",
    )
    .await;
    assert!(
        text(&o.stdout).contains("recorded window backtest"),
        "{}",
        text(&o.stdout)
    );
    // Replayed under its stored settings it gives back every verdict.
    let o = run(
        vec![
            "backtest".into(),
            "--analysis".into(),
            id.to_string(),
            "--json".into(),
        ],
        "viewer",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        json_of(&o)["first_difference"].is_null(),
        "{}",
        text(&o.stdout)
    );
    // Listed only when asked for.
    let listed = |extra: &[&str]| {
        let mut args = vec!["analyses".to_owned(), "list".into(), "--json".into()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        run(args, "viewer")
    };
    let ids = |o: &Output| -> Vec<i64> {
        json_of(o)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["id"].as_i64().expect("id"))
            .collect()
    };
    let default = ids(&listed(&[]).await);
    assert!(
        default.contains(&live.id.get()) && !default.contains(&id),
        "{default:?}"
    );
    let only = ids(&listed(&["--origin", "backtest"]).await);
    assert!(
        only.contains(&id) && !only.contains(&live.id.get()),
        "{only:?}"
    );
    let o = listed(&["--origin", "replay"]).await;
    assert!(!o.status.success());

    // Neither annotations nor metrics: no outbox row, the same counters.
    assert_eq!(canary_metrics(&app).await, metrics);
    let after = app.store.outbox(1_000).await.expect("outbox");
    assert_eq!(
        after.len(),
        outbox.len(),
        "the recording wrote to the outbox"
    );
    assert!(
        !format!("{after:?}").contains("backtest-"),
        "a backtest milestone in the outbox"
    );

    // The live analysis: every hook answers as before, from its own looks.
    assert_eq!(answers().await, before);
    assert_eq!(app.looks(live.id).await, live_looks);
    next_look().await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let now = app.looks(live.id).await;
    assert_eq!(now.len(), 3);
    assert_eq!(now[..2], live_looks[..]);
    assert_eq!(app.analysis(&p).await.expect("live").id, live.id);
    let c = get("/api/v1/canaries/test/podinfo".into()).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.json["latest_analysis"]["id"], live.id.get(), "{}", c.text);
    let overview = get("/api/v1/canaries".into()).await;
    assert_eq!(overview.status, 200, "{}", overview.text);
    let shown: Vec<i64> = overview.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["analysis"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(shown, vec![live.id.get()], "{}", overview.text);

    // A canary verdict never analysed live: its recording is readable in the console, and
    // the canary stays unknown to the API.
    let o = run(
        with(window(&["--record", "--json"]), "--target", "frontend"),
        "release-manager",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let frontend = json_of(&o)["recorded"]["id"].as_i64().expect("recorded id");
    let c = get("/api/v1/canaries/test/frontend".into()).await;
    assert_eq!(c.status, 404, "{}", c.text);
    let (console, cookie) = support::api::console_session(&app.base_url(), &viewer).await;
    for id in [id, frontend] {
        let page = console
            .get(format!("{}/ui/analyses/{id}", app.base_url()))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200, "analysis {id}");
        let html = page.text().await.expect("html");
        assert!(
            html.contains("A recorded backtest"),
            "analysis {id}: {html}"
        );
    }
    let overview = get("/api/v1/canaries".into()).await;
    let shown: Vec<&Value> = overview.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .collect();
    assert_eq!(shown.len(), 1, "{}", overview.text);
    assert_eq!(
        shown[0]["analysis"]["id"],
        live.id.get(),
        "{}",
        overview.text
    );
    app.shutdown().await;
}
