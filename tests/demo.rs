//! `verdict demo` (the README's first quick-start command) end to end: it must run to
//! completion, leave the outcomes it prints in its store, and with `--serve` keep its
//! console up until Ctrl-C.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use verdict::domain::CanaryRef;
use verdict::store::{AnalysisFilter, AnalysisStatus, AuditFilter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_rolls_back_and_waits_for_its_release_manager() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    // The binary, as the README runs it, with --serve: after the rollouts it prints the
    // console's URL and a token, and serves the demo's analyses until Ctrl-C.
    let mut demo = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["demo", "--serve", "--database"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start verdict demo --serve");
    let mut lines = BufReader::new(demo.stdout.take().expect("stdout")).lines();
    let mut console = None;
    let mut token = None;
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(url) = line.strip_prefix("The web console: ") {
                console = Some(url.to_owned());
            } else if console.is_some() && line.starts_with("ey") {
                token = Some(line);
            } else if line == "Serving until Ctrl-C." {
                return;
            }
        }
        panic!("the demo ended without serving its console");
    };
    tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .expect("the demo's rollouts finish within 4 minutes");
    let (console, token) = (console.expect("the URL"), token.expect("the token"));
    assert!(
        console.starts_with("http://127.0.0.1:") && console.ends_with("/ui"),
        "{console}"
    );

    // The console shows the demo's three canaries to the token it printed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed = http
        .post(format!("{console}/sign-in"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let page = http
        .get(&console)
        .header("cookie", &session)
        .send()
        .await
        .expect("canaries page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    for canary in ["shop/checkout", "shop/payments", "shop/search"] {
        assert!(html.contains(canary), "{canary} missing from the console");
    }
    assert!(
        html.contains("50 %"),
        "the weight from the demo's Flagger events"
    );

    // Ctrl-C stops it.
    let pid = demo.id().expect("pid");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("send SIGINT");
    assert!(kill.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), demo.wait())
        .await
        .expect("the demo stops after Ctrl-C")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");

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
