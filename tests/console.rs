//! The web console in a real browser (Debian's headless Chromium through WebDriver), on
//! the real server with a real Prometheus: a release manager signs in, reads a running
//! analysis' charts, holds the promotion gate (Flagger's next confirm-promotion is
//! refused with the reason, which the decision log shows as text), opens it again and
//! requests a rollback; a viewer sees no action and a forged one is refused. The test
//! saves screenshots of the main pages (to target/console-screenshots, or to docs/images
//! with `VERDICT_UPDATE_SCREENSHOTS=1`, which is how the README's images are made), and
//! prints the first paint of the canaries page with 1 000 analyses (a figure for
//! BENCHMARKS.md, not an assertion).

#[path = "console/browser.rs"]
mod browser;

use std::path::PathBuf;
use std::time::Duration;

use browser::Browser;
use support::api::token;
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS, NS};
use support::exporter::Profile;
use support::flagger::Payload;
use verdict::domain::{AnalysisKey, CanaryName, Checksum, Namespace};
use verdict::sli::simulator::{CanaryEffect, ServiceProfile, Workload};
use verdict::store::{AuditFilter, NewAnalysis, NewDecision};

/// What a release manager could type: it must come back as text, never as markup.
const XSS: &str = "<img src=x onerror=alert(1)> load test in progress";

/// Where the screenshots go: docs/images only when asked, so that a test run (CI's
/// included) leaves the work tree as it found it.
fn images() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var_os("VERDICT_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/images")
    } else {
        root.join("target/console-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("a screenshot directory");
    dir
}

async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.open(&format!("{}/ui", app.base_url())).await;
    // Not signed in: the console asks for a token.
    b.find("textarea#token").await;
    b.fill("textarea#token", token).await;
    b.click("form.stack button[type=submit]").await;
    b.find("h1").await;
    assert_eq!(b.text("h1").await, "Canaries now");
}

/// Flagger's event hook, as Flagger's scheduler announces a step.
async fn announce_weight(app: &TestApp, p: &Payload, weight: u32) {
    let mut event = p.clone();
    event.metadata = [
        (
            "eventMessage".to_owned(),
            format!("Advance {}.{NS} canary weight {weight}", p.name),
        ),
        ("eventType".to_owned(), "Normal".to_owned()),
    ]
    .into();
    assert_eq!(app.call("event", &event).await.status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_manager_steers_a_canary_from_the_console_and_a_viewer_cannot() {
    let app = spawn_app(AppOptions::with_api()).await;
    let arm = Profile::fixed(80.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let p = payload("podinfo", "0e0e0e0e01", &[("template", "istio")]);
    assert_eq!(app.call("pre-rollout", &p).await.status, 200);
    for weight in [10, 20, 30] {
        announce_weight(&app, &p, weight).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        next_look().await;
        let r = app.call("rollout", &p).await;
        assert_eq!(r.status, 200, "«{}»", r.body);
    }
    let analysis = app.analysis(&p).await.expect("an analysis");
    let page = format!("{}/ui/analyses/{}", app.base_url(), analysis.id.get());

    let b = Browser::start(1280, 800).await;
    sign_in(&b, &app, &token("release-manager", "alice")).await;
    // Canaries now lists it with its looks, weight and judge.
    let row = b.text("#canary-rows tr").await;
    assert!(
        row.contains("test/podinfo") && row.contains("30 %") && row.contains("running"),
        "{row}"
    );
    b.screenshot(&images().join("console-canaries.png")).await;
    // The table refreshes itself: a fourth look shows up without reloading the page.
    next_look().await;
    assert_eq!(app.call("rollout", &p).await.status, 200);
    let mut refreshed = String::new();
    for _ in 0..100 {
        refreshed = b.text("#canary-rows tr").await;
        if refreshed.contains("30 % 4 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refreshed.contains("30 % 4 "), "not refreshed: {refreshed}");
    assert!(b.text("#refreshed").await.starts_with("Refreshed at"));

    // One analysis: the charts are filled from the looks.
    b.click("#canary-rows a").await;
    b.find("section[aria-labelledby=traffic] figure.chart")
        .await;
    let dots = b
        .count("section[aria-labelledby=traffic] figure.chart:first-child circle.dot.canary")
        .await;
    assert_eq!(dots, 4, "one point per look in the request-rate chart");
    let band = b
        .eval(
            "return [...document.querySelectorAll('section[aria-labelledby=evidence] path.band')]\
               .map(p => p.getAttribute('d').split('L').length)",
        )
        .await;
    assert!(
        band.as_array()
            .is_some_and(|v| v.iter().any(|n| n.as_u64() >= Some(6))),
        "a ratio band over the looks is drawn: {band}"
    );
    assert!(
        b.count("section[aria-labelledby=evidence] line.rule.limit-promo")
            .await
            >= 1
    );
    let weights = b.text("section[aria-labelledby=looks] table").await;
    assert!(
        weights.contains("10 %") && weights.contains("30 %"),
        "{weights}"
    );

    // Hold the promotion gate with a reason; confirm on the next page.
    b.fill("#reason-promotion", XSS).await;
    b.click("#hold-promotion").await;
    assert_eq!(b.text("h1").await, "Confirm");
    b.click("#confirm").await;
    let done = b.text(".notice.good").await;
    assert!(
        done.contains("promotion gate is now held") && done.contains(XSS),
        "{done}"
    );
    // Flagger's next confirm-promotion is refused with the reason.
    let r = app.call("confirm-promotion", &p).await;
    assert_eq!(r.status, 412, "«{}»", r.body);
    assert!(r.body.contains(XSS), "«{}»", r.body);
    b.open(&page).await;
    let log = b.text("#decision-log").await;
    assert!(
        log.contains("confirm-promotion") && log.contains("412") && log.contains(XSS),
        "{log}"
    );
    // The reason is text: no element came from it, and no script ran.
    assert_eq!(b.count("main img").await, 0);
    assert!(
        b.client.get_alert_text().await.is_err(),
        "no alert may open"
    );
    // The whole page in the picture: the window as tall as the page (at most 2 600 px).
    let height = b.eval("return document.documentElement.scrollHeight").await;
    let height = height.as_u64().unwrap_or(800).clamp(800, 2600) as u32;
    b.client
        .set_window_size(1280, height)
        .await
        .expect("resize");
    b.screenshot(&images().join("console-analysis.png")).await;
    b.client.set_window_size(1280, 800).await.expect("resize");

    // Open it again, with the keyboard only for the confirmation.
    b.fill("#reason-promotion", "hold lifted").await;
    b.click("#open-promotion").await;
    // The confirmation page takes the focus to its button once it has loaded: wait for
    // the page, then for the focus (a loaded machine can be slow to do either).
    b.find("#confirm").await;
    let mut focused = serde_json::Value::Null;
    for _ in 0..50 {
        focused = b.eval("return document.activeElement.id").await;
        if focused == "confirm" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(focused, "confirm", "the confirm button has the focus");
    b.client
        .active_element()
        .await
        .expect("focus")
        .send_keys("\u{E007}")
        .await
        .expect("Enter");
    assert!(b.text(".notice.good").await.contains("is now open"));

    // Request a rollback: the rollback hook then says "roll back now".
    b.open(&page).await;
    b.fill("#reason-rollback", "checkout latency looks off")
        .await;
    b.click("#request-rollback").await;
    b.click("#confirm").await;
    assert!(b.text(".notice.good").await.contains("is now failed"));
    assert_eq!(app.call("rollback", &p).await.status, 200);

    // Phone width: the page itself does not scroll sideways (tables scroll in place).
    b.client.set_window_size(390, 844).await.expect("resize");
    b.open(&page).await;
    let overflow = b
        .eval("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(99) <= 0,
        "page wider than a phone by {overflow}px"
    );
    b.client.set_window_size(1280, 800).await.expect("resize");

    // An admin reads the audit log, newest first; the reason is text there too.
    b.click("form.signout button").await;
    sign_in(&b, &app, &token("admin", "ada")).await;
    b.open(&format!("{}/ui/audit", app.base_url())).await;
    let audit = b.text("#audit-log tbody tr:first-child").await;
    assert!(
        audit.contains("rollback") && audit.contains("alice"),
        "{audit}"
    );
    assert!(b.text("#audit-log").await.contains(XSS));
    b.screenshot(&images().join("console-audit.png")).await;

    // A viewer: no action buttons, no audit log, and a forged action is refused.
    b.click("form.signout button").await;
    sign_in(&b, &app, &token("viewer", "victor")).await;
    b.open(&page).await;
    b.find("#decision-log").await;
    assert_eq!(b.count("form.action").await, 0, "a viewer sees no action");
    assert_eq!(b.count("header nav a[href='/ui/audit']").await, 0);
    let before = app
        .store
        .audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("audit")
        .len();
    b.eval(
        "const f = document.createElement('form'); f.method = 'post';\
         f.action = '/ui/canaries/test/podinfo/gates/rollout';\
         for (const [k, v] of [['state','held'],['reason','forged'],['analysis','1'],['confirm','yes']]) {\
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }\
         document.body.appendChild(f); f.submit(); return 1;",
    )
    .await;
    let refused = b.text(".notice.bad").await;
    assert!(
        refused.contains("role viewer may not change gates"),
        "{refused}"
    );
    let after = app
        .store
        .audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("audit")
        .len();
    assert_eq!(before, after, "a refused action changes nothing");
    b.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn console_pages_carry_strict_headers_and_read_without_javascript() {
    let app = spawn_app(AppOptions::with_api()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = app.base_url();
    // Not signed in: redirected to the sign-in page, which carries the headers.
    let r = http
        .get(format!("{base}/ui"))
        .send()
        .await
        .expect("GET /ui");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/sign-in");
    let r = http
        .get(format!("{base}/ui/sign-in"))
        .send()
        .await
        .expect("sign-in");
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("ascii");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    // A bad token: 401 on the sign-in page, no cookie.
    let r = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", "not.a.token")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // A good one: a cookie scripts cannot read and other sites' requests do not carry.
    let r = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", token("viewer", "victor").as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = cookie.split(';').next().expect("name=value").to_owned();
    // A cross-site form post is refused before anything else.
    let r = http
        .post(format!("{base}/ui/canaries/test/x/rollback"))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .form(&[("reason", "x"), ("analysis", "1"), ("confirm", "yes")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // Bad input: a clear page, not a crash.
    let r = http
        .get(format!("{base}/ui/analyses/nope"))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 422);
    let r = http
        .get(format!("{base}/ui/analyses/999"))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("no analysis 999"));
    let r = http
        .get(format!("{base}/ui?outcome=won"))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 422);
    // The page is whole HTML without any script: the table is in it.
    let r = http
        .get(format!("{base}/ui"))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("body");
    assert!(html.contains("<tbody id=\"canary-rows\">") && html.contains("No canary is running"));
    // The script and the stylesheet are served from the binary.
    for asset in ["js", "css"] {
        let path = html
            .split('"')
            .find(|s| s.starts_with("/ui/assets/") && s.ends_with(asset))
            .unwrap_or_else(|| panic!("no {asset} link"));
        let r = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{path}");
    }
    app.shutdown().await;
}

/// First paint of the canaries page with 1 000 analyses, in the browser: printed, for
/// BENCHMARKS.md (no assertion on time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_paint_of_a_thousand_analyses_is_measured() {
    let app = spawn_app(AppOptions {
        jwt: Some(support::app::hs256_api()),
        min_look_gap: Duration::from_millis(100),
        ..AppOptions::simulated(3)
    })
    .await;
    // One real analysis with a real look gives the settings and the look the others copy.
    let (ns, name) = (
        Namespace::parse(NS).expect("ns"),
        CanaryName::parse("seed").expect("name"),
    );
    let sli = app.simulator();
    let profile = ServiceProfile {
        workload: Workload {
            total_rps: 200.0,
            ..Workload::reference()
        },
        effect: CanaryEffect::none(),
    };
    sli.add_service(&ns, &name, profile).expect("service");
    let p = payload("seed", "0f0f0f0f01", &[("template", "istio")]);
    let r = app.call("pre-rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    sli.set_weight(&ns, &name, 0.2).expect("weight");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.call("rollout", &p).await;
    assert_eq!(r.status, 200, "«{}»", r.body);
    let seed = app.analysis(&p).await.expect("seed analysis");
    let look = app.looks(seed.id).await.pop().expect("a look").look;
    let settings = seed.settings.clone().expect("settings");
    for i in 0..999 {
        let key = AnalysisKey {
            namespace: Namespace::parse(&format!("team-{}", i % 20)).expect("ns"),
            name: CanaryName::parse(&format!("service-{i}")).expect("name"),
            checksum: Checksum::parse("0a0b0c0d").expect("checksum"),
        };
        let (a, _) = app
            .store
            .open_analysis(&NewAnalysis {
                key: key.clone(),
                settings: settings.clone(),
                started_at: seed.started_at,
                baseline: None,
            })
            .await
            .expect("open");
        let mut l = look.clone();
        l.analysis_id = a.id;
        let decision = NewDecision {
            analysis_id: Some(a.id),
            key,
            hook: "rollout".into(),
            verdict: l.verdict.clone(),
            status_code: 200,
            reason: l.reason.clone(),
            evidence: None,
            request_id: format!("bench-{i}"),
            created_at: seed.started_at,
            milestones: vec![],
        };
        app.store
            .record_look(&l, &decision, None)
            .await
            .expect("look");
    }
    let b = Browser::start(1280, 800).await;
    sign_in(&b, &app, &token("viewer", "victor")).await;
    assert!(
        b.text("main p.muted").await.starts_with("1000 canaries"),
        "{}",
        b.text("main p.muted").await
    );
    println!("console first paint with 1000 analyses, 5 loads each (ms: first-contentful-paint, responseStart, responseEnd, DOMContentLoaded):");
    for (what, path, rows) in [
        (
            "baseline: the audit page of a viewer (an error page, no rows)",
            "/ui/audit",
            0,
        ),
        ("canaries page, first page (100 rows)", "/ui", 100),
        (
            "canaries page, all 1000 rows (?per=1000)",
            "/ui?per=1000",
            1000,
        ),
    ] {
        b.open(&format!("{}{path}", app.base_url())).await;
        assert_eq!(b.count("#canary-rows tr").await, rows);
        let mut paints = Vec::new();
        for _ in 0..5 {
            b.client.refresh().await.expect("reload");
            b.find("main h1").await;
            // The paint entry is recorded once the browser has painted: wait for it.
            let mut t: Vec<i64> = Vec::new();
            for _ in 0..100 {
                let timing = b
                    .eval(
                        "const p = performance.getEntriesByName('first-contentful-paint')[0]; \
                         const n = performance.getEntriesByType('navigation')[0]; \
                         return [p ? p.startTime : -1, n.responseStart, n.responseEnd, n.domContentLoadedEventEnd]\
                           .map(Math.round);",
                    )
                    .await;
                t = timing
                    .as_array()
                    .map(|v| v.iter().filter_map(serde_json::Value::as_i64).collect())
                    .unwrap_or_default();
                if t.first().is_some_and(|p| *p >= 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            paints.push(t);
        }
        let mut fcp: Vec<i64> = paints
            .iter()
            .filter_map(|t| t.first().copied())
            .filter(|t| *t >= 0)
            .collect();
        fcp.sort_unstable();
        assert_eq!(fcp.len(), 5, "every load painted: {paints:?}");
        println!(
            "  {what}: median first-contentful-paint {} ms; loads {paints:?}",
            fcp[2]
        );
    }
    b.close().await;
    app.shutdown().await;
}

/// A store fault during an action: the console shows the error and nothing changes (the
/// gate and its audit row are one transaction).
#[tokio::test]
async fn a_store_fault_during_an_action_changes_nothing() {
    use sqlx::Connection;

    let app = spawn_app(AppOptions::with_api()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = app.base_url();
    let signed = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", token("release-manager", "alice").as_str())])
        .send()
        .await
        .expect("sign in");
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let hold = [
        ("state", "held"),
        ("reason", "freeze"),
        ("analysis", "1"),
        ("confirm", "yes"),
    ];
    let mut db = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    sqlx::query("ALTER TABLE audit RENAME TO audit_away")
        .execute(&mut db)
        .await
        .expect("break the audit table");
    let r = http
        .post(format!("{base}/ui/canaries/test/frozen/gates/rollout"))
        .header("cookie", &session)
        .form(&hold)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_server_error(), "{}", r.status());
    assert!(r.text().await.expect("body").contains("store"));
    sqlx::query("ALTER TABLE audit_away RENAME TO audit")
        .execute(&mut db)
        .await
        .expect("repair");
    let frozen = support::app::canary(NS, "frozen");
    assert!(
        app.store.gates(&frozen).await.expect("gates").is_empty(),
        "no gate was set"
    );
    // Repaired, the same action works.
    let r = http
        .post(format!("{base}/ui/canaries/test/frozen/gates/rollout"))
        .header("cookie", &session)
        .form(&hold)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(app.store.gates(&frozen).await.expect("gates").len(), 1);
    app.shutdown().await;
}
