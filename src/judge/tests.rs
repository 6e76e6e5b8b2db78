//! The judge's tests: hand-computed small cases, the verdict rules, exact one-step
//! supermartingale checks of every e-process under its null, seeded simulations of the
//! guarantees (with measured dispersion), and replay.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson, StandardNormal};

use super::eprocess::{MeanProcess, RateProcess, RatioProcess, FAIL_MIXTURE, NEGLIGIBLE_MIXTURE};
use super::plan::HistoryInterval;
use super::*;

/// Edges 50, 100, 250 ms; boundaries at 100 ms (promotion) and 250 ms (tail).
fn plan(dispersion: f64) -> Plan {
    Plan::fixed(vec![0.05, 0.1, 0.25], &[(1, true), (2, false)], dispersion)
}

fn fixed(tau: f64) -> JudgeConfig {
    JudgeConfig {
        dispersion: Dispersion::Fixed(tau),
        ..JudgeConfig::recommended()
    }
}

fn arm(requests: u64, errors: u64, slower: [u64; 3]) -> ArmLook {
    ArmLook {
        requests,
        errors,
        slower: slower.to_vec(),
    }
}

fn look(canary: ArmLook, primary: ArmLook) -> Look {
    Look {
        canary,
        primary,
        elapsed_ms: 0,
    }
}

fn judge(config: JudgeConfig, plan: Plan) -> Judge {
    Judge::new(config, plan).unwrap_or_else(|e| panic!("valid config refused: {e}"))
}

/// The judge (τ 0.1, [`plan`]) after `n` looks of the same counts, and its assessment.
fn repeated(n: usize, canary: ArmLook, primary: ArmLook) -> (Judge, Assessment) {
    let mut j = judge(fixed(0.1), plan(0.1));
    for _ in 0..n {
        j.observe(&look(canary.clone(), primary.clone()));
    }
    let a = j.assess();
    (j, a)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

/// The fail test's e-value after looks, straight from the formula.
fn fail_e_direct(null: f64, tau: f64, looks: &[(f64, f64, f64, f64)]) -> f64 {
    FAIL_MIXTURE
        .factors
        .iter()
        .zip(FAIL_MIXTURE.weights)
        .map(|(f, w)| {
            let psi = null * f;
            let log_lr: f64 = looks
                .iter()
                .map(|&(nc, np, xc, xp)| {
                    let r = nc / np;
                    let (t, t0) = (r * psi / (r * psi + 1.0), r * null / (r * null + 1.0));
                    let kappa = eprocess::temper(xc + xp, t0, tau);
                    kappa * (xc * (t / t0).ln() + xp * ((1.0 - t) / (1.0 - t0)).ln())
                })
                .sum();
            w * log_lr.exp()
        })
        .sum()
}

#[test]
fn fail_e_value_matches_the_formula() {
    // Error margin 0.1, τ per arm 0.3 → τ of the ratio 0.3·√2; two looks.
    let mut j = judge(fixed(0.3), plan(0.3));
    j.observe(&look(arm(50, 6, [0; 3]), arm(100, 4, [0; 3])));
    j.observe(&look(arm(100, 5, [0; 3]), arm(100, 2, [0; 3])));
    let e = j.assess().evidence;
    let direct = fail_e_direct(
        1.1,
        0.3 * std::f64::consts::SQRT_2,
        &[(50.0, 100.0, 6.0, 4.0), (100.0, 100.0, 5.0, 2.0)],
    );
    assert!(
        close(e.error.e_value, direct, 1e-9),
        "{} vs {direct}",
        e.error.e_value
    );
    // No slow requests: the latency tests saw nothing.
    assert_eq!(e.latency_family.e_value, 1.0);
    assert!(e.latency.iter().all(|b| b.ratio.informative_looks == 0));
    // Tempering only ever lowers a favourable look's evidence.
    let mut plain = judge(fixed(0.0), plan(0.0));
    plain.observe(&look(arm(50, 6, [0; 3]), arm(100, 4, [0; 3])));
    plain.observe(&look(arm(100, 5, [0; 3]), arm(100, 2, [0; 3])));
    assert!(plain.assess().evidence.error.e_value > e.error.e_value);
}

#[test]
fn alpha_is_split_over_errors_latency_and_each_slo() {
    let e = judge(fixed(0.1), plan(0.1)).assess().evidence;
    assert!(close(e.alpha_per_test, 0.005, 1e-12));
    assert!(close(e.error.threshold, 200.0, 1e-9));
    let with_slos = JudgeConfig {
        slo_error_rate: Some(0.01),
        slo_slow_fraction: Some(0.05),
        ..fixed(0.1)
    };
    let mut p = plan(0.1);
    p.slo_edge = Some(2);
    let e = judge(with_slos, p).assess().evidence;
    assert!(close(e.alpha_per_test, 0.0025, 1e-12));
    assert!(e.slo_error.is_some() && e.slo_latency.is_some());
}

#[test]
fn the_slo_guard_bets_on_each_look_and_catches_a_breach() {
    // One look at 3 % against a 1 % SLO: wealth of bet c is 1 + c·(3 − 1).
    let mut p = MeanProcess::new(0.01);
    p.observe(30, 1000);
    let direct = [0.15, 0.3, 0.5, 0.7, 0.9]
        .iter()
        .map(|c| 1.0 + c * 2.0)
        .sum::<f64>()
        / 5.0;
    assert!(close(p.log_e().now.exp(), direct, 1e-12));
    // The judge: errors at 3× the SLO (and the primary as bad, so only the SLO fails).
    let config = JudgeConfig {
        slo_error_rate: Some(0.01),
        ..fixed(0.3)
    };
    let mut j = judge(config, plan(0.3));
    let mut looks = 0;
    while j.verdict() != Verdict::Fail && looks < 30 {
        j.observe(&look(
            arm(2000, 60, [1000, 240, 8]),
            arm(2000, 60, [1000, 240, 8]),
        ));
        looks += 1;
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    assert!(looks <= 8, "{looks} looks");
    assert!(
        a.reason
            .starts_with("canary error rate 3% is above the SLO 1% (e-value"),
        "{}",
        a.reason
    );
    assert!(a.reason.ends_with("error-rate SLO breach"), "{}", a.reason);
}

#[test]
fn a_doubled_error_rate_fails_with_a_readable_reason() {
    let (j, a) = repeated(
        12,
        arm(5000, 100, [2500, 600, 20]),
        arm(5000, 50, [2500, 600, 20]),
    );
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason
            .starts_with("canary error rate 2% vs primary 1% (ratio ≥ "),
        "{}",
        a.reason
    );
    assert!(a.reason.ends_with("): regression"), "{}", a.reason);
    assert_eq!(j.verdict(), Verdict::Fail);
}

#[test]
fn a_latency_regression_names_the_percentile_and_the_boundary() {
    // Canary: 25 % above 100 ms against the primary's 12 %; the p95 moves from the
    // 100–250 ms bucket's lower part to its upper part.
    let (_, a) = repeated(
        6,
        arm(4000, 0, [2400, 1000, 40]),
        arm(4000, 0, [2000, 480, 15]),
    );
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    assert!(a.reason.starts_with("canary p95 "), "{}", a.reason);
    assert!(a.reason.contains(" vs primary "), "{}", a.reason);
    assert!(
        a.reason
            .contains("25% vs 12% of requests slower than 100 ms"),
        "{}",
        a.reason
    );
    assert!(a.reason.ends_with("): latency regression"), "{}", a.reason);
    let p = a.evidence.canary_latency.p95_s.unwrap_or(0.0);
    assert!((0.1..0.25).contains(&p), "{p}");
}

#[test]
fn identical_arms_with_enough_traffic_pass_and_say_why() {
    let (_, a) = repeated(
        25,
        arm(5000, 25, [2500, 600, 20]),
        arm(5000, 25, [2500, 600, 20]),
    );
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    assert!(
        a.reason.starts_with("canary not worse than primary with 99% confidence after 125 000 canary requests: error rate 0.5% vs 0.5% (ratio < 1.65)"),
        "{}",
        a.reason
    );
    assert!(
        a.reason.contains("share slower than 100 ms ratio < 1.65"),
        "{}",
        a.reason
    );
    assert!(a.evidence.promotion_ready);
    // The tail boundary is not needed for promotion.
    assert!(!a.evidence.latency[1].promotion);
}

#[test]
fn waiting_says_what_is_missing_and_roughly_how_much_more() {
    let mut j = judge(fixed(0.1), plan(0.1));
    j.observe(&look(
        arm(1500, 8, [750, 180, 6]),
        arm(1500, 7, [750, 185, 5]),
    ));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(a.reason.starts_with("waiting for evidence after 1 500 canary requests: error-rate ratio not yet shown below 1.65 (could still be up to"), "{}", a.reason);
    assert!(a.reason.contains("need ~"), "{}", a.reason);
    assert!(a.evidence.canary_requests_needed.is_some_and(|n| n > 1000));
    assert!(a.evidence.looks_needed.is_some_and(|n| n >= 1));
}

#[test]
fn a_service_with_no_errors_is_promoted_through_the_negligible_rate() {
    // No errors anywhere: no ratio can be bounded, but "canary error rate < 0.05 %" can.
    let mut j = judge(fixed(0.1), plan(0.1));
    let mut looks = 0;
    while j.verdict() != Verdict::Pass && looks < 40 {
        j.observe(&look(
            arm(2000, 0, [1000, 240, 8]),
            arm(2000, 0, [1000, 240, 8]),
        ));
        looks += 1;
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    assert!(
        a.reason
            .contains("error rate 0% vs 0% (below the negligible 0.05%)"),
        "{}",
        a.reason
    );
    // With the negligible rate off, it waits (and, at its budget, says what is missing).
    let off = JudgeConfig {
        negligible_error_rate: 0.0,
        ..fixed(0.1)
    };
    let mut j = judge(off, plan(0.1));
    for _ in 0..looks {
        j.observe(&look(
            arm(2000, 0, [1000, 240, 8]),
            arm(2000, 0, [1000, 240, 8]),
        ));
    }
    assert_eq!(j.verdict(), Verdict::Wait);
    // A canary with a few errors where the primary has none is not promoted that way.
    let mut j = judge(fixed(0.1), plan(0.1));
    for _ in 0..looks {
        j.observe(&look(
            arm(2000, 2, [1000, 240, 8]),
            arm(2000, 0, [1000, 240, 8]),
        ));
    }
    assert_ne!(j.verdict(), Verdict::Pass);
}

#[test]
fn a_canary_without_traffic_fails_after_its_looks() {
    let mut j = judge(fixed(0.1), plan(0.1));
    let nothing = arm(0, 0, [0; 3]);
    let primary = arm(3000, 15, [1500, 360, 12]);
    j.observe(&look(nothing.clone(), primary.clone()));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(
        a.reason.contains("1 of 3 looks without canary requests"),
        "{}",
        a.reason
    );
    // A look where neither arm served anything changes nothing.
    j.observe(&look(nothing.clone(), nothing.clone()));
    j.observe(&look(nothing.clone(), primary.clone()));
    assert_eq!(j.verdict(), Verdict::Wait);
    j.observe(&look(nothing.clone(), primary.clone()));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(
        a.reason,
        "canary receives no traffic: no canary requests in the last 3 looks while the primary served 9 000"
    );
    // Traffic resets the count.
    let mut j = judge(fixed(0.1), plan(0.1));
    for _ in 0..2 {
        j.observe(&look(nothing.clone(), primary.clone()));
    }
    j.observe(&look(arm(10, 0, [5, 1, 0]), primary.clone()));
    j.observe(&look(nothing, primary));
    assert_eq!(j.verdict(), Verdict::Wait);
}

#[test]
fn the_budget_ends_an_undecided_analysis_by_its_setting() {
    let config = JudgeConfig {
        budget: Budget {
            max_looks: 4,
            ..Budget::default()
        },
        ..fixed(0.1)
    };
    let small = || look(arm(300, 2, [150, 36, 1]), arm(300, 2, [150, 36, 1]));
    let mut j = judge(config.clone(), plan(0.1));
    for _ in 0..3 {
        j.observe(&small());
        assert_eq!(j.verdict(), Verdict::Wait);
    }
    j.observe(&small());
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason
            .starts_with("no decision after 4 looks: error-rate ratio not yet shown below 1.65"),
        "{}",
        a.reason
    );
    assert!(a.evidence.budget.exhausted);
    let hold = JudgeConfig {
        budget: Budget {
            on_inconclusive: OnInconclusive::Hold,
            ..config.budget
        },
        ..config.clone()
    };
    let mut j = judge(hold, plan(0.1));
    for _ in 0..4 {
        j.observe(&small());
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(
        a.reason
            .starts_with("no decision after 4 looks; a release manager must decide"),
        "{}",
        a.reason
    );
    // The time budget counts from the analysis' opening.
    let timed = JudgeConfig {
        budget: Budget {
            max_duration_ms: Some(600_000),
            ..Budget::default()
        },
        ..fixed(0.1)
    };
    let mut j = judge(timed, plan(0.1));
    j.observe(&Look {
        elapsed_ms: 599_999,
        ..small()
    });
    assert_eq!(j.verdict(), Verdict::Wait);
    j.observe(&Look {
        elapsed_ms: 660_000,
        ..small()
    });
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason.starts_with("no decision after 11m (2 looks): "),
        "{}",
        a.reason
    );
}

#[test]
fn zero_traffic_and_undefined_quantities_stay_valid_json() {
    let mut j = judge(fixed(0.1), plan(0.1));
    j.observe(&look(arm(0, 0, [0; 3]), arm(0, 0, [0; 3])));
    let assessment = j.assess();
    let json = serde_json::to_string(&assessment).unwrap_or_default();
    // serde_json writes non-finite numbers as null, which would not read back into an f64.
    let back: Option<Assessment> = serde_json::from_str(&json).ok();
    assert_eq!(
        back.as_ref().map(|b| b.verdict),
        Some(assessment.verdict),
        "{json}"
    );
    assert_eq!(
        back.and_then(|b| serde_json::to_string(&b).ok()),
        Some(json)
    );
}

#[test]
fn invalid_configs_name_the_field() {
    let bad = |f: fn(&mut JudgeConfig)| {
        let mut c = JudgeConfig::recommended();
        f(&mut c);
        Judge::new(c, plan(0.1)).err().map(|e| e.field)
    };
    assert_eq!(bad(|c| c.alpha = 0.0), Some("alpha"));
    assert_eq!(bad(|c| c.error_margin = f64::NAN), Some("error_margin"));
    assert_eq!(bad(|c| c.promotion_margin = 25.0), Some("promotion_margin"));
    assert_eq!(
        bad(|c| c.slo_error_rate = Some(1.0)),
        Some("slo_error_rate")
    );
    assert_eq!(
        bad(|c| c.dispersion = Dispersion::Fixed(-0.1)),
        Some("dispersion")
    );
    assert_eq!(
        bad(|c| c.negligible_error_rate = 0.7),
        Some("negligible_error_rate")
    );
    assert_eq!(bad(|c| c.budget.max_looks = 0), Some("max_looks"));
    assert_eq!(
        bad(|c| c.budget.max_duration_ms = Some(0)),
        Some("max_duration")
    );
    assert_eq!(
        bad(|c| c.budget.no_traffic_looks = 0),
        Some("no_traffic_looks")
    );
    assert_eq!(bad(|_| ()), None);
}

#[test]
fn settings_round_trip_and_old_ones_still_load() {
    let c = JudgeConfig::recommended();
    let json = serde_json::to_string(&c).unwrap_or_default();
    assert!(json.contains(r#""dispersion":"auto""#), "{json}");
    assert_eq!(serde_json::from_str::<JudgeConfig>(&json).ok(), Some(c));
    // Stored by an older verdict: τ a number, no budget, no negligible rate.
    let old = r#"{"alpha":0.01,"error_margin":0.2,"latency_margin":0.2,"promotion_margin":0.5,
        "min_canary_requests":1000,"slo_error_rate":null,"slo_slow_fraction":null,"dispersion":0.25}"#;
    let config: JudgeConfig = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.dispersion, Dispersion::Fixed(0.25));
    assert_eq!(config.budget, Budget::default());
    assert_eq!(Dispersion::parse(" AUTO "), Ok(Dispersion::Auto));
    assert!(Dispersion::parse("lots").is_err());
}

// ---------------------------------------------------------------------------------------
// Exact one-step supermartingale checks. For a process E_t and one more look whose counts
// are drawn from the null, E[E_{t+1} | past] ≤ E_t is computed exactly by enumerating the
// binomial outcomes. Random histories, traffic splits, event counts and dispersions.

/// ln P(X = k), k = 0 … n, for X ~ Binomial(n, p).
fn binomial_log_pmf(n: u64, p: f64) -> Vec<f64> {
    let mut pmf = vec![0.0; n as usize + 1];
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_choose = 0.0;
    for k in 0..=n {
        if k > 0 {
            log_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        pmf[k as usize] = log_choose + k as f64 * lp + (n - k) as f64 * lq;
    }
    pmf
}

/// A random history for a ratio process: looks with any split and any events.
fn with_history(mut p: RatioProcess, history: &[(u64, u64, u64, u64)]) -> RatioProcess {
    for &(nc, np, xc, xp) in history {
        p.observe(nc, np, xc, xp);
    }
    p
}

fn history_strategy() -> impl Strategy<Value = Vec<(u64, u64, u64, u64)>> {
    prop::collection::vec((1u64..5000, 1u64..5000, 0u64..40, 0u64..40), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ratio_tests_are_supermartingales_under_their_nulls(
        history in history_strategy(),
        n_c in 1u64..20_000,
        n_p in 1u64..20_000,
        events in 1u64..60,
        margin in 0.0f64..1.0,
        promotion_margin in 0.2f64..2.0,
        tau in 0.0f64..1.5,
    ) {
        let p = with_history(RatioProcess::new(1.0 + margin, 1.0 + promotion_margin, tau), &history);
        let r = n_c as f64 / n_p as f64;
        // The fail test under ratio = 1 + margin, the promotion test under 1 + promotion margin.
        for (null, fail) in [(1.0 + margin, true), (1.0 + promotion_margin, false)] {
            let theta = r * null / (r * null + 1.0);
            let now = if fail { p.fail().now } else { p.promotion().now };
            let expected: f64 = binomial_log_pmf(events, theta)
                .iter()
                .enumerate()
                .map(|(x_c, log_prob)| {
                    let mut next = p.clone();
                    next.observe(n_c, n_p, x_c as u64, events - x_c as u64);
                    let log = if fail { next.fail().now } else { next.promotion().now };
                    (log_prob + log - now).exp()
                })
                .sum();
            prop_assert!(expected <= 1.0 + 1e-9, "E[E_t+1/E_t] = {expected} (fail test: {fail})");
        }
    }

    #[test]
    fn rate_tests_are_supermartingales_under_their_nulls(
        history in prop::collection::vec((1u64..3000, 0u64..30), 0..5),
        n in 1u64..400,
        rate in 0.001f64..0.2,
        tau in 0.0f64..1.5,
        upward in any::<bool>(),
    ) {
        let mixture = if upward { FAIL_MIXTURE } else { NEGLIGIBLE_MIXTURE };
        let mut p = RateProcess::new(rate, tau, mixture, upward);
        for &(trials, events) in &history {
            p.observe(events.min(trials), trials);
        }
        let now = p.log_e().now;
        let expected: f64 = binomial_log_pmf(n, rate)
            .iter()
            .enumerate()
            .map(|(k, log_prob)| {
                let mut next = p.clone();
                next.observe(k as u64, n);
                (log_prob + next.log_e().now - now).exp()
            })
            .sum();
        prop_assert!(expected <= 1.0 + 1e-9, "E[E_t+1/E_t] = {expected}");
    }

    #[test]
    fn the_slo_bet_is_a_supermartingale_under_any_mean_at_the_slo(
        history in prop::collection::vec((1u64..3000, 0u64..60), 0..5),
        n in 1u64..300,
        rate in 0.002f64..0.3,
        spread in 0.0f64..1.0,
    ) {
        // The next look's true rate is rate·(1 − spread) or rate·(1 + spread), each with
        // probability ½: mean exactly at the SLO, as bursty as you like.
        let mut p = MeanProcess::new(rate);
        for &(trials, events) in &history {
            p.observe(events.min(trials), trials);
        }
        let now = p.log_e().now;
        let expected: f64 = [rate * (1.0 - spread), (rate * (1.0 + spread)).min(1.0)]
            .iter()
            .map(|&r| {
                let pmf = binomial_log_pmf(n, r.max(1e-12));
                0.5 * pmf
                    .iter()
                    .enumerate()
                    .map(|(k, log_prob)| {
                        let mut next = p.clone();
                        next.observe(k as u64, n);
                        (log_prob + next.log_e().now - now).exp()
                    })
                    .sum::<f64>()
            })
            .sum();
        prop_assert!(expected <= 1.0 + 1e-9, "E[E_t+1/E_t] = {expected}");
    }

    #[test]
    fn the_verdict_is_one_thing_and_failing_is_final(
        seed in any::<u64>(),
        error_ratio in 0.5f64..4.0,
        slow_ratio in 0.5f64..3.0,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut j = judge(fixed(0.2), plan(0.2));
        let mut failed = false;
        for l in simulate(&mut rng, 30, error_ratio, slow_ratio, 0.0) {
            j.observe(&l);
            let a = j.assess();
            prop_assert_eq!(a.verdict, j.verdict());
            let e = &a.evidence;
            let any_fail = e.error.crossed || e.latency_family.crossed;
            // Promotion never comes with an established regression, and a failure stays.
            prop_assert!(!(a.verdict == Verdict::Pass && any_fail));
            if failed {
                prop_assert_eq!(a.verdict, Verdict::Fail);
            }
            failed |= a.verdict == Verdict::Fail;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeded simulations of the guarantees.

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u64)
}

fn noise(rng: &mut StdRng, sd: f64) -> f64 {
    if sd == 0.0 {
        return 1.0;
    }
    let z: f64 = rng.sample(StandardNormal);
    (sd * z - sd * sd / 2.0).exp()
}

/// Slow fractions of the reference latency above 50, 100 and 250 ms.
const SLOW: [f64; 3] = [0.5, 0.124, 0.0037];

/// One arm's counts for one interval: Poisson requests, binomial errors and slow
/// requests, each rate with independent per-interval log-normal noise of sd `sd`.
fn draw(rng: &mut StdRng, requests: f64, error_rate: f64, slow_ratio: f64, sd: f64) -> ArmLook {
    let n = poisson(rng, requests);
    let bin =
        |rng: &mut StdRng, p: f64| Binomial::new(n, p.clamp(0.0, 1.0)).map_or(0, |d| d.sample(rng));
    let error_noise = noise(rng, sd);
    let errors = bin(rng, error_rate * error_noise);
    let factor = noise(rng, sd) * slow_ratio;
    // Nested: above 250 ms ⊂ above 100 ms ⊂ above 50 ms.
    let s50 = bin(rng, (SLOW[0] * factor).min(1.0));
    let frac = |a: f64, b: f64| ((b * factor).min(1.0) / (a * factor).min(1.0)).min(1.0);
    let s100 = Binomial::new(s50, frac(SLOW[0], SLOW[1])).map_or(0, |d| d.sample(rng));
    let s250 = Binomial::new(s100, frac(SLOW[1], SLOW[2])).map_or(0, |d| d.sample(rng));
    arm(n, errors, [s50, s100, s250])
}

/// The reference schedule (5/10/20/30/50 % then held, 50 req/s, 60 s looks, 0.5 %
/// errors) with the canary's error rate and slow shares multiplied.
fn simulate(
    rng: &mut StdRng,
    looks: usize,
    error_ratio: f64,
    slow_ratio: f64,
    sd: f64,
) -> Vec<Look> {
    (0..looks)
        .map(|i| {
            let w = [0.05, 0.1, 0.2, 0.3, 0.5][i.min(4)];
            Look {
                canary: draw(rng, 3000.0 * w, 0.005 * error_ratio, slow_ratio, sd),
                primary: draw(rng, 3000.0 * (1.0 - w), 0.005, 1.0, sd),
                elapsed_ms: (i as u64 + 1) * 60_000,
            }
        })
        .collect()
}

/// The primary's history as the plan reads it: 60 intervals of the same workload.
fn history(rng: &mut StdRng, sd: f64) -> Vec<HistoryInterval> {
    (0..60)
        .map(|_| {
            let a = draw(rng, 3000.0, 0.005, 1.0, sd);
            let total = a.requests as f64;
            let buckets = [0.05, 0.1, 0.25]
                .iter()
                .zip(&a.slower)
                .map(|(le, s)| latency::Bucket {
                    le: *le,
                    count: total - *s as f64,
                })
                .chain(std::iter::once(latency::Bucket {
                    le: f64::INFINITY,
                    count: total,
                }))
                .collect();
            HistoryInterval {
                requests: total,
                errors: a.errors as f64,
                buckets,
            }
        })
        .collect()
}

/// Monte-Carlo allowance: three standard errors of a rate p over `runs`.
fn mc_allowance(p: f64, runs: usize) -> f64 {
    3.0 * (p * (1.0 - p) / runs as f64).sqrt()
}

/// Share of `runs` simulated analyses whose verdict was Fail / Pass at some look, with
/// the plan (boundaries and dispersion) measured on a history of the same noise.
fn outcomes(
    seed: u64,
    runs: usize,
    config: &JudgeConfig,
    error_ratio: f64,
    slow_ratio: f64,
    sd: f64,
) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut failed, mut passed) = (0, 0);
    for _ in 0..runs {
        let p =
            Plan::new(config, &history(&mut rng, sd), None, None).unwrap_or_else(|e| panic!("{e}"));
        let mut j = judge(config.clone(), p);
        for l in simulate(&mut rng, 30, error_ratio, slow_ratio, sd) {
            j.observe(&l);
            match j.verdict() {
                Verdict::Fail => {
                    failed += 1;
                    break;
                }
                Verdict::Pass => {
                    passed += 1;
                    break;
                }
                Verdict::Wait => {}
            }
        }
    }
    (failed as f64 / runs as f64, passed as f64 / runs as f64)
}

#[test]
fn with_measured_dispersion_noisy_identical_arms_rarely_fail() {
    // α = 0.05 so that a few hundred runs resolve the rate; noise sd 0.5 on both arms'
    // error rates and slow shares, the dispersion measured on the primary's history.
    let runs = 400;
    let config = JudgeConfig {
        alpha: 0.05,
        ..JudgeConfig::recommended()
    };
    let (failed, passed) = outcomes(3, runs, &config, 1.0, 1.0, 0.5);
    assert!(
        failed <= 0.05 + mc_allowance(0.05, runs),
        "false-fail rate {failed}"
    );
    assert!(passed > 0.3, "promotion rate {passed}");
    // The same judge with τ fixed at 0 (no tempering) is not protected: the measured
    // dispersion is what keeps the rate down.
    let naive = JudgeConfig {
        dispersion: Dispersion::Fixed(0.0),
        ..config
    };
    let (naive_failed, _) = outcomes(3, runs, &naive, 1.0, 1.0, 0.5);
    assert!(
        naive_failed > 2.0 * failed.max(0.02),
        "untempered {naive_failed} vs {failed}"
    );
}

#[test]
fn a_real_regression_is_found_by_the_same_simulation() {
    // Guards against a test that can never reject: the same simulation with errors ×3 or
    // slow shares ×1.6 fails in most runs, and a canary worse than the promotion limit is
    // almost never promoted.
    let config = JudgeConfig::recommended();
    let (failed, _) = outcomes(5, 100, &config, 3.0, 1.0, 0.0);
    assert!(failed >= 0.9, "errors ×3 detected in {failed}");
    let (failed, _) = outcomes(6, 100, &config, 1.0, 1.6, 0.0);
    assert!(failed >= 0.9, "slow ×1.6 detected in {failed}");
    let (_, passed) = outcomes(7, 200, &config, 2.0, 1.0, 0.25);
    assert!(passed <= 0.02, "errors ×2 promoted in {passed}");
}

#[test]
fn replaying_looks_gives_identical_assessments() {
    // Restart safety: a judge rebuilt from the stored looks answers exactly as the
    // long-lived one did, at every look.
    let mut rng = StdRng::seed_from_u64(19);
    for ratio in [1.0, 1.6, 3.0] {
        let config = JudgeConfig {
            slo_error_rate: Some(0.02),
            ..JudgeConfig::recommended()
        };
        let p = Plan::new(&config, &history(&mut rng, 0.3), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let looks = simulate(&mut rng, 30, ratio, ratio, 0.3);
        let mut live = judge(config.clone(), p.clone());
        for (i, l) in looks.iter().enumerate() {
            live.observe(l);
            let mut fresh = judge(config.clone(), p.clone());
            for earlier in &looks[..=i] {
                fresh.observe(earlier);
            }
            assert_eq!(live.assess(), fresh.assess(), "look {i}");
        }
    }
}
