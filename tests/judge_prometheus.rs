//! Judge v2 on the real data path: a real Prometheus scraping an Istio-style exporter
//! whose arms are bursty (every 3 s their error rate and slow share take fresh log-normal
//! factors), the plan measured on the primary's history, Flagger's hooks over HTTP.
//!
//! Both canaries run side by side in one server, at 200 requests/s per arm, one look
//! every 3 s — the time scale of the burst, so the measured dispersion is the per-look one.

use std::time::Duration;

use support::app::{payload, spawn_app, AppOptions};
use support::exporter::Profile;
use support::flagger::HookReply;

/// The history the plan is measured on: 48 s in 3 s intervals (sixteen intervals; fewer
/// measure the dispersion too roughly).
const HISTORY: (Duration, Duration) = (Duration::from_secs(48), Duration::from_secs(3));
const LOOK_EVERY: Duration = Duration::from_secs(3);

/// 200 requests/s, 80 % at 20 ms and 20 % at 80 ms (so the 25 ms and 50 ms edges each
/// have 20 % slow requests), `errors` of them failing; both rates bursty with log-sd
/// 0.25 per 3 s.
fn bursty(errors: f64, seed: u64) -> Profile {
    Profile::mix(200.0, errors, &[(20.0, 0.8), (80.0, 0.2)]).bursty(0.25, LOOK_EVERY, seed)
}

fn status(reply: &HookReply, want: u16, what: &str) {
    assert_eq!(
        reply.status, want,
        "{what}: expected {want}, got {} «{}»",
        reply.status, reply.body
    );
}

#[tokio::test]
async fn bursty_a_a_is_promoted_and_doubled_errors_fail_on_real_prometheus() {
    let app = spawn_app(AppOptions {
        history: Some(HISTORY),
        ..AppOptions::default()
    })
    .await;
    app.traffic("steady", bursty(0.05, 1), bursty(0.05, 2));
    app.traffic("worse", bursty(0.10, 3), bursty(0.05, 4));
    // A full history of the primary before the analyses open.
    tokio::time::sleep(HISTORY.0 + Duration::from_secs(2)).await;

    // Promotion margin 1.0 as in the other flow tests: at this traffic (30 errors per arm
    // and look) and noise, the default 0.65 needs more than 15 looks (docs/statistics.md §9,
    // the information a bursty look carries).
    let meta = &[
        ("template", "istio"),
        ("minCanaryRequests", "1000"),
        ("promotionMargin", "1.0"),
    ];
    let steady = payload("steady", "0a0a0a0a01", meta);
    let worse = payload("worse", "0b0b0b0b02", meta);
    for p in [&steady, &worse] {
        let r = app.call("pre-rollout", p).await;
        status(&r, 200, "pre-rollout");
        // The plan: measured dispersion, the body boundaries and the tail.
        assert!(
            r.body.contains("intervals of the primary)"),
            "the dispersion is measured on the history: «{}»",
            r.body
        );
        assert!(
            r.body.contains("latency boundaries 25 ms (") && r.body.contains("fail only"),
            "the body edges and the tail: «{}»",
            r.body
        );
    }

    // The A/A canary must be promoted within 15 looks; the regression may take longer.
    let (mut promoted_at, mut failed_at) = (None, None);
    let mut last_worse = String::new();
    for look in 1..=25 {
        tokio::time::sleep(LOOK_EVERY).await;
        if promoted_at.is_none() && look <= 15 {
            let r = app.call("rollout", &steady).await;
            status(&r, 200, &format!("steady rollout look {look}"));
            let r = app.call("confirm-promotion", &steady).await;
            if r.status == 200 {
                assert!(
                    r.body.starts_with("canary not worse than primary"),
                    "{}",
                    r.body
                );
                promoted_at = Some(look);
            } else {
                status(&r, 412, &format!("steady confirm-promotion look {look}"));
            }
        }
        if failed_at.is_none() {
            let r = app.call("rollout", &worse).await;
            if r.status == 422 {
                // The realised rates wander with the bursts around 10 % and 5 %.
                assert!(
                    r.body.starts_with("canary error rate ") && r.body.contains("% (ratio ≥ "),
                    "«{}»",
                    r.body
                );
                assert!(r.body.ends_with("): regression"), "«{}»", r.body);
                failed_at = Some(look);
            } else {
                status(&r, 200, &format!("worse rollout look {look}"));
                last_worse = r.body.clone();
                let r = app.call("confirm-promotion", &worse).await;
                status(&r, 412, &format!("worse confirm-promotion look {look}"));
            }
        }
        if (promoted_at.is_some() || look >= 15) && failed_at.is_some() {
            break;
        }
    }
    assert!(
        promoted_at.is_some(),
        "the bursty A/A canary was not promoted in 15 looks"
    );
    assert!(
        failed_at.is_some(),
        "doubled errors were not caught in 25 looks: «{last_worse}»"
    );
    eprintln!("promoted at look {promoted_at:?}, regression at look {failed_at:?}");
    status(
        &app.call("rollback", &worse).await,
        200,
        "rollback of the worse canary",
    );
    status(
        &app.call("rollback", &steady).await,
        409,
        "no rollback of the steady one",
    );

    // The dispersion was measured on the history and is in the stored plan, above the
    // floor: the bursts were seen.
    let analysis = app.analysis(&steady).await.expect("analysis");
    let settings = analysis.settings.expect("readable settings");
    let plan = settings.plan.expect("a plan");
    assert!(
        matches!(
            plan.dispersion_source,
            verdict::judge::plan::DispersionSource::Measured { intervals } if intervals >= 12
        ),
        "{:?}",
        plan.dispersion_source
    );
    // The share above 25 ms has ~120 slow requests per arm and interval, so its burst
    // variance stands far above the binomial one and is measured reliably; the error
    // rate's (~30 errors) is noisier over sixteen intervals, so only its source is checked.
    let first = &plan.boundaries[0];
    assert!(
        first.le_s == 0.025 && first.dispersion > verdict::judge::dispersion::FLOOR,
        "measured dispersion of the 25 ms share: {first:?}"
    );
    app.shutdown().await;
}
