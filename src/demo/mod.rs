//! `verdict demo`: a simulated Flagger rollout through the real server.
//!
//! Starts verdict in-process on a temporary SQLite store with simulated metrics, then
//! plays Flagger over real HTTP for three canaries — one as good as its primary, one with
//! an error regression, one with `gate: manual` that a release manager approves through
//! the API — and prints each hook call, the evidence and the outcome.

mod release_manager;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::config::{Config, LogFormat};
use crate::domain::{now_millis, AnalysisKey, CanaryName, Checksum, Namespace};
use crate::sli::simulator::{
    CanaryEffect, ServiceProfile, SimulatedSli, SimulatedSliConfig, Workload,
};
use crate::startup::{connect_store, Application};
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::webhook::{FlaggerClient, HookReply, Payload};

/// One real second stands for this many simulated seconds.
const TIME_SCALE: f64 = 120.0;
/// Flagger's `analysis.interval`, simulated: 60 s, i.e. 0.5 s of real time.
const INTERVAL: Duration = Duration::from_millis(500);
/// Flagger's `stepWeights` (then held at the last one) and `threshold`.
const STEP_WEIGHTS: [u32; 5] = [5, 10, 20, 30, 50];
const THRESHOLD: u32 = 5;
const MAX_TICKS: u32 = 40;

/// Runs the demo and prints the timeline.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db_path = args
        .database
        .clone()
        .unwrap_or_else(|| dir.path().join("verdict-demo.db"));
    let mut config = Config {
        listen: args.listen,
        log_format: LogFormat::Pretty,
        ..Config::default()
    };
    config.database_url = format!("sqlite://{}", db_path.display()).into();
    // Looks come every 0.5 s of real time here; production keeps the 5 s default.
    config.defaults.min_look_gap = Duration::from_millis(200);
    // The release-manager API, with a secret that lives as long as this run.
    config.jwt.key = Some(release_manager::random_secret().into());
    config.validate()?;
    let app_jwt = config.jwt.clone();
    let approver_token = crate::auth::mint(
        &config.jwt,
        crate::auth::Role::ReleaseManager,
        "alice",
        Duration::from_secs(3600),
    )?;

    let namespace = Namespace::parse("shop")?;
    let sli = Arc::new(SimulatedSli::new(SimulatedSliConfig {
        time_scale: TIME_SCALE,
        ..SimulatedSliConfig::demo(now_millis() - 3_600_000 / TIME_SCALE as i64, args.seed)
    })?);
    let workload = Workload {
        total_rps: 200.0,
        ..Workload::reference()
    };
    let good = CanaryName::parse("checkout")?;
    let bad = CanaryName::parse("payments")?;
    let gated = CanaryName::parse("search")?;
    for name in [&good, &gated] {
        sli.add_service(
            &namespace,
            name,
            ServiceProfile {
                workload: workload.clone(),
                effect: CanaryEffect::none(),
            },
        )?;
    }
    sli.add_service(
        &namespace,
        &bad,
        ServiceProfile {
            workload,
            effect: CanaryEffect {
                error_ratio: 3.0,
                ..CanaryEffect::none()
            },
        },
    )?;

    let store = connect_store(&config).await?;
    let app = Application::build(config, store.clone(), sli.clone(), Metrics::new()).await?;
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    println!("verdict demo — a simulated Flagger rollout through the real verdict server");
    println!("server {base}, SQLite store {}", db_path.display());
    println!(
        "Each Flagger interval is 60 simulated seconds (0.5 s here). Traffic: 200 requests/s split \
         between primary and canary by the canary weight; base error rate 0.5%, latency ~50 ms."
    );
    println!(
        "Flagger's stepWeights {STEP_WEIGHTS:?}, threshold {THRESHOLD}. Only 200/201/202 pass.\n"
    );

    let flagger = FlaggerClient::new(&base);
    let alice = release_manager::ReleaseManager::new(&base, "alice", approver_token);
    let mut outcomes = Vec::new();
    for (name, story, approver) in [
        (&good, "a canary as good as its primary", None),
        (&bad, "a canary whose error rate is 3× the primary's", None),
        (
            &gated,
            "a good canary with `gate: manual`: a release manager approves its rollout and its promotion through the API",
            Some(&alice),
        ),
    ] {
        println!("━━ {namespace}/{name}: {story}");
        let outcome = rollout(&flagger, &sli, &store, &namespace, name, approver).await?;
        println!("   ⇒ {outcome}\n");
        outcomes.push(format!("{namespace}/{name}: {outcome}"));
    }
    println!("Summary");
    for o in &outcomes {
        println!("  {o}");
    }
    println!("Every answer above is a decision row in the store (with its evidence); every API action is in the audit log.");

    if args.serve {
        serve_console(&base, &app_jwt).await?;
    }
    let _ = stop_tx.send(());
    server.await.context("server task")??;
    Ok(())
}

/// Prints the console's URL and an admin token to sign in with, then serves until Ctrl-C.
async fn serve_console(base: &str, jwt: &crate::auth::JwtSettings) -> anyhow::Result<()> {
    let token = crate::auth::mint(
        jwt,
        crate::auth::Role::Admin,
        "demo-admin",
        Duration::from_secs(12 * 3600),
    )?;
    println!("\nThe web console: {base}{}", crate::http::console::BASE);
    println!("Sign in with this admin token (valid 12 h, for this run only):\n{token}");
    println!("Serving until Ctrl-C.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping");
    Ok(())
}

/// Tells verdict's event hook what Flagger's scheduler announces at a step.
async fn announce(
    flagger: &FlaggerClient,
    payload: &Payload,
    message: String,
) -> anyhow::Result<()> {
    let mut event = payload.clone();
    event.metadata = [
        ("eventMessage".to_owned(), message),
        ("eventType".to_owned(), "Normal".to_owned()),
        ("timestamp".to_owned(), now_millis().to_string()),
    ]
    .into();
    flagger.call("event", &event).await?;
    Ok(())
}

/// Plays one Flagger canary rollout; returns the final outcome in words.
async fn rollout(
    flagger: &FlaggerClient,
    sli: &SimulatedSli,
    store: &Store,
    namespace: &Namespace,
    name: &CanaryName,
    approver: Option<&release_manager::ReleaseManager>,
) -> anyhow::Result<String> {
    let checksum = Checksum::parse(&format!("{:x}", now_millis()))?;
    let mut metadata: std::collections::BTreeMap<String, String> =
        [("template".to_owned(), "istio".to_owned())].into();
    if approver.is_some() {
        metadata.insert("gate".to_owned(), "manual".to_owned());
    }
    let payload = |phase: &str| Payload {
        name: name.to_string(),
        namespace: namespace.to_string(),
        phase: phase.into(),
        checksum: checksum.to_string(),
        metadata: metadata.clone(),
    };
    let show = |hook: &str, reply: &HookReply| {
        let mark = if reply.passed() { "✔" } else { "✘" };
        println!("   {hook:<25} {} {mark} {}", reply.status, reply.body);
    };

    let mut reply = flagger
        .call("confirm-rollout", &payload("Initialized"))
        .await?;
    show("confirm-rollout", &reply);
    if let (false, Some(rm)) = (reply.passed(), approver) {
        // Flagger would ask again every interval; a release manager opens the gate.
        tokio::time::sleep(INTERVAL).await;
        rm.open(namespace, name, "rollout", "release window is open")
            .await?;
        reply = flagger.call("confirm-rollout", &payload("Waiting")).await?;
        show("confirm-rollout", &reply);
    }
    if !reply.passed() {
        return Ok("still waiting at confirm-rollout".into());
    }
    let reply = flagger.call("pre-rollout", &payload("Progressing")).await?;
    show("pre-rollout", &reply);
    if !reply.passed() {
        return Ok("pre-rollout failed; Flagger would retry next interval".into());
    }
    let key = AnalysisKey {
        namespace: namespace.clone(),
        name: name.clone(),
        checksum: checksum.clone(),
    };
    let mut step = 0usize;
    let mut failed_checks = 0u32;
    sli.set_weight(namespace, name, f64::from(STEP_WEIGHTS[0]) / 100.0)?;
    let advance = |w: u32| format!("Advance {name}.{namespace} canary weight {w}");
    announce(flagger, &payload("Progressing"), advance(STEP_WEIGHTS[0])).await?;
    for tick in 1..=MAX_TICKS {
        tokio::time::sleep(INTERVAL).await;
        let weight = STEP_WEIGHTS[step];
        println!("   ── interval {tick}, canary weight {weight}%");
        let reply = flagger.call("rollback", &payload("Progressing")).await?;
        if reply.passed() {
            show("rollback", &reply);
            sli.set_weight(namespace, name, 0.0)?;
            let reply = flagger.call("post-rollout", &payload("Failed")).await?;
            show("post-rollout", &reply);
            return Ok(format!(
                "rolled back after {tick} intervals: {}",
                reply_reason(store, &key).await
            ));
        }
        let reply = flagger.call("rollout", &payload("Progressing")).await?;
        show("rollout", &reply);
        print_look(store, &key).await;
        if !reply.passed() {
            failed_checks += 1;
            if failed_checks >= THRESHOLD {
                let reply = flagger.call("post-rollout", &payload("Failed")).await?;
                show("post-rollout", &reply);
                return Ok(format!(
                    "rolled back by Flagger's threshold after {tick} intervals"
                ));
            }
            continue;
        }
        if step + 1 < STEP_WEIGHTS.len() {
            let reply = flagger
                .call("confirm-traffic-increase", &payload("Progressing"))
                .await?;
            if reply.passed() {
                step += 1;
                sli.set_weight(namespace, name, f64::from(STEP_WEIGHTS[step]) / 100.0)?;
                announce(
                    flagger,
                    &payload("Progressing"),
                    advance(STEP_WEIGHTS[step]),
                )
                .await?;
            } else {
                show("confirm-traffic-increase", &reply);
            }
            continue;
        }
        let reply = flagger
            .call("confirm-promotion", &payload("Progressing"))
            .await?;
        show("confirm-promotion", &reply);
        if let (false, true, Some(rm)) = (
            reply.passed(),
            reply.body.contains("the statistics pass"),
            approver,
        ) {
            // The evidence is there; the promotion waits for a person.
            rm.open(
                namespace,
                name,
                "promotion",
                "checked the dashboards, ship it",
            )
            .await?;
            continue;
        }
        if reply.passed() {
            sli.set_weight(namespace, name, 0.0)?;
            let reply = flagger.call("post-rollout", &payload("Succeeded")).await?;
            show("post-rollout", &reply);
            return Ok(format!("promoted after {tick} intervals"));
        }
    }
    Ok(format!(
        "still waiting for evidence after {MAX_TICKS} intervals (no promotion)"
    ))
}

/// Prints the counts of the newest look.
async fn print_look(store: &Store, key: &AnalysisKey) {
    let Ok(Some(analysis)) = store.find_analysis(key).await else {
        return;
    };
    let Ok(looks) = store.looks(analysis.id).await else {
        return;
    };
    let plan = analysis.settings.as_ref().map(|s| s.plan()).ok();
    if let Some(last) = looks.last() {
        let l = &last.look;
        let pct = |e: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                100.0 * e as f64 / n as f64
            }
        };
        // Requests slower than each tested latency boundary, canary/primary.
        let slow: Vec<String> = plan
            .iter()
            .flat_map(|p| p.boundaries.iter())
            .map(|b| {
                let at = |v: &[u64]| v.get(b.edge).copied().unwrap_or(0);
                format!(
                    ">{:.0}ms {}/{}",
                    b.le_s * 1000.0,
                    at(&l.canary.slower),
                    at(&l.primary.slower)
                )
            })
            .collect();
        println!(
            "   {:<25} look {}: canary {} req, {} err ({:.2}%) | primary {} req, {} err ({:.2}%) | slow canary/primary {}",
            "",
            l.seq,
            l.canary.requests,
            l.canary.errors,
            pct(l.canary.errors, l.canary.requests),
            l.primary.requests,
            l.primary.errors,
            pct(l.primary.errors, l.primary.requests),
            slow.join(", "),
        );
    }
}

async fn reply_reason(store: &Store, key: &AnalysisKey) -> String {
    match store.find_analysis(key).await {
        Ok(Some(a)) => a.status_reason.unwrap_or_default(),
        _ => String::new(),
    }
}
