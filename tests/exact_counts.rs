//! Exact per-look counts (issue 10): with Prometheus scraping every 15 s, the counts
//! verdict records are exactly the requests, errors and bucket counts the exporter
//! reported between the scrapes Prometheus took — through a counter reset (the exporter
//! restarting), a series that appears mid-analysis (the canary's first 5xx), a call with
//! no newer scrape (no evidence, not an error), and a second server process (`verdict
//! serve`, started as its own OS process on the same Postgres) that continues the
//! analysis from the counters the first one stored.
//!
//! This test waits for real 15 s scrapes, so it takes about two and a half minutes; every
//! other Prometheus test scrapes every second.

use std::time::{Duration, Instant};

use support::app::{payload, spawn_app, AppOptions, TestApp, FAST_MS, NS};
use support::exporter::{Profile, Served};
use verdict::sli::{ArmCounters, Counters};
use verdict::store::{AnalysisStatus, LookRow};

const SCRAPE: Duration = Duration::from_secs(15);
/// The pause before each look's rollout call; a look also waits for a scrape it has not
/// seen (so a short pause can stretch to the next scrape). The sixth look's gap also holds
/// the 5 s before the call without a new scrape.
const GAPS_S: [u64; 8] = [7, 5, 23, 9, 5, 33, 5, 17];

/// One arm's counts as the exporter's truth has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Truth {
    requests: u64,
    errors: u64,
    /// The +Inf bucket: every request.
    inf: u64,
    /// Requests within 25 ms (where FAST_MS falls).
    fast: u64,
}

/// The served answer whose scrape Prometheus stamped `sampled_at`: Prometheus stamps a
/// sample with the time the scrape started; the exporter renders just after.
fn scrape_at(served: &[Served], sampled_at: i64) -> usize {
    served
        .iter()
        .position(|s| s.at_ms >= sampled_at && s.at_ms - sampled_at < 1_000)
        .unwrap_or_else(|| {
            panic!(
                "no exporter answer matches the sample time {sampled_at}: {:?}",
                served.iter().map(|s| s.at_ms).collect::<Vec<_>>()
            )
        })
}

fn cumulative(served: &Served, workload: &str) -> Truth {
    served
        .totals
        .get(&(NS.to_owned(), workload.to_owned()))
        .map(|t| {
            let buckets = t.cumulative();
            Truth {
                requests: t.requests,
                errors: t.errors,
                inf: *buckets.last().expect("+Inf"),
                fast: buckets[3],
            }
        })
        .unwrap_or_default()
}

/// What the exporter served between two scrapes, scrape by scrape: each step's growth, or
/// everything since the restart when the counters went down.
fn served_between(served: &[Served], from: usize, to: usize, workload: &str) -> Truth {
    let mut total = Truth::default();
    for k in from + 1..=to {
        let (before, now) = (
            cumulative(&served[k - 1], workload),
            cumulative(&served[k], workload),
        );
        let step = |b: u64, n: u64| if n >= b { n - b } else { n };
        total.requests += step(before.requests, now.requests);
        total.errors += step(before.errors, now.errors);
        total.inf += step(before.inf, now.inf);
        total.fast += step(before.fast, now.fast);
    }
    total
}

fn counters_of(text: Option<&str>) -> Counters {
    serde_json::from_str(text.expect("counters stored")).expect("stored counters read")
}

fn recorded(look: &LookRow, arm: &str) -> (u64, u64) {
    let tally = if arm == "canary" {
        &look.look.canary
    } else {
        &look.look.primary
    };
    (tally.requests, tally.errors)
}

/// Waits until the exporter has answered a scrape after its first `seen` answers, and
/// that scrape is at least a second old (Prometheus has stored it).
async fn wait_for_a_scrape(app: &TestApp, seen: usize) {
    let deadline = Instant::now() + SCRAPE * 3;
    loop {
        let served = app.exporter().served();
        let settled = served
            .last()
            .is_some_and(|s| verdict::domain::now_millis() - s.at_ms >= 1_000);
        if served.len() > seen && settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape within {:?}",
            SCRAPE * 3
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn looks_are_exactly_the_counts_between_the_scrapes_prometheus_took() {
    let mut app = spawn_app(AppOptions {
        scrape_interval: SCRAPE,
        history: Some((Duration::from_secs(60), Duration::from_secs(10))),
        ..AppOptions::default()
    })
    .await;
    // The canary starts without errors, so its 5xx series appears mid-analysis.
    app.traffic(
        "podinfo",
        Profile::fixed(30.0, 0.0, FAST_MS),
        Profile::mix(60.0, 0.01, &[(FAST_MS, 0.9), (300.0, 0.1)]),
    );
    wait_for_a_scrape(&app, app.exporter().served().len()).await;

    let p = payload("podinfo", "5f8e2a", &[("template", "istio")]);
    let opened = app.call("pre-rollout", &p).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let analysis = app.analysis(&p).await.expect("opened");
    let baseline = counters_of(analysis.baseline.as_deref());

    let mut seen = app.exporter().served().len();
    let mut stale_answers = 0;
    for (i, gap) in GAPS_S.iter().enumerate() {
        let look = i + 1;
        if look == 3 {
            // From now on the canary fails 1 % of its requests: its 5xx series appears.
            app.exporter()
                .set_profile(NS, "podinfo", Profile::fixed(30.0, 0.01, FAST_MS));
        }
        tokio::time::sleep(Duration::from_secs(*gap)).await;
        // The fifth look follows a fresh scrape closely, so the exporter can restart
        // right after it, before Prometheus scrapes again.
        let need = if look == 5 {
            app.exporter().served().len()
        } else {
            seen
        };
        wait_for_a_scrape(&app, need).await;
        seen = app.exporter().served().len();
        let reply = app.call("rollout", &p).await;
        assert_eq!(reply.status, 200, "look {look}: {}", reply.body);
        assert_eq!(
            app.looks(analysis.id).await.len(),
            look,
            "look {look} was recorded: {}",
            reply.body
        );
        match look {
            // The analysis continues on a second server: `verdict serve` as its own OS
            // process, sharing nothing with the first but Postgres and Prometheus.
            4 => {
                app.continue_in_a_new_process(env!("CARGO_BIN_EXE_verdict"))
                    .await
            }
            5 => {
                app.exporter().restart_counters();
                // No scrape since look 5: the call carries no evidence and takes no look.
                tokio::time::sleep(Duration::from_secs(5)).await;
                let stale = app.call("rollout", &p).await;
                assert_eq!(stale.status, 200, "{}", stale.body);
                assert!(stale.body.contains("no look"), "{}", stale.body);
                assert_eq!(app.looks(analysis.id).await.len(), look);
                stale_answers += 1;
            }
            _ => {}
        }
    }
    assert_eq!(stale_answers, 1);

    let looks = app.looks(analysis.id).await;
    let ends: Vec<i64> = std::iter::once(analysis.started_at)
        .chain(looks.iter().map(|l| l.look.window_end))
        .collect();
    let gaps: Vec<i64> = ends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| (5_000..=41_500).contains(g)),
        "gaps between looks {gaps:?} ms"
    );
    let served = app.exporter().served();
    let mut previous = baseline;
    let mut saw_first_error = false;
    for row in &looks {
        let now = counters_of(row.look.counters.as_deref());
        for (arm, workload, before, after) in [
            ("canary", "podinfo", &previous.canary, &now.canary),
            (
                "primary",
                "podinfo-primary",
                &previous.primary,
                &now.primary,
            ),
        ] {
            let (from, to) = match (before.sampled_at, after.sampled_at) {
                (Some(b), Some(a)) => (scrape_at(&served, b), scrape_at(&served, a)),
                other => panic!("look {}: {arm} has no sample time: {other:?}", row.look.seq),
            };
            let truth = served_between(&served, from, to, workload);
            assert_eq!(
                recorded(row, arm),
                (truth.requests, truth.errors),
                "look {} ({arm}): recorded vs served between scrapes {from} and {to}",
                row.look.seq
            );
            assert_eq!(truth.inf, truth.requests);
            let increments = after.since(before);
            assert_eq!(increments.requests, truth.requests as f64);
            let bucket = |le: f64| {
                increments
                    .buckets
                    .iter()
                    .find(|b| b.le == le)
                    .map_or(0.0, |b| b.count)
            };
            assert_eq!(
                bucket(f64::INFINITY),
                truth.inf as f64,
                "look {}",
                row.look.seq
            );
            assert_eq!(bucket(0.025), truth.fast as f64, "look {}", row.look.seq);
            if arm == "canary" && before.errors.is_empty() && !after.errors.is_empty() {
                saw_first_error = true;
                assert!(truth.errors > 0);
            }
        }
        previous = now;
    }
    assert!(
        saw_first_error,
        "the canary's 5xx series appeared mid-analysis"
    );
    let canary_total = |row: &LookRow| sum(&counters_of(row.look.counters.as_deref()).canary);
    let reset = looks
        .windows(2)
        .any(|w| canary_total(&w[1]) < canary_total(&w[0]));
    assert!(reset, "a look spans the exporter's restart");
    let analysis = app.analysis(&p).await.expect("analysis");
    assert_eq!(analysis.status, AnalysisStatus::Running);
    app.shutdown().await;
}

fn sum(arm: &ArmCounters) -> f64 {
    arm.requests.values().sum()
}
