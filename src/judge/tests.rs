//! The judge's tests: hand-computed small cases, edge cases, and seeded simulations of
//! the guarantees (null rejection rate, confidence-sequence coverage, replay).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

use super::eprocess::{lattice_factor, RatioProcess, ALT_OFFSETS};
use super::*;

fn plain(margin: f64) -> JudgeConfig {
    JudgeConfig {
        error_margin: margin,
        latency_margin: margin,
        dispersion: 0.0,
        ..JudgeConfig::recommended()
    }
}

fn arm(requests: u64, errors: u64, slow: u64) -> ArmLook {
    ArmLook {
        requests,
        errors,
        slow,
        slo_slow: 0,
    }
}

fn look(canary: ArmLook, primary: ArmLook) -> Look {
    Look { canary, primary }
}

fn judge(config: JudgeConfig) -> Judge {
    match Judge::new(config) {
        Ok(j) => j,
        Err(e) => panic!("valid config refused: {e}"),
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn single_look_e_value_matches_hand_computation() {
    // m = 0, n_c = n_p = 100, x_c = 3, x_p = 1. θ0 = 0.5, θ(ψ) = ψ/(1+ψ),
    // LR(ψ) = (θ/0.5)³ ((1−θ)/0.5)¹ = 16 θ³ (1−θ).
    // ψ = 1.05² = 1.1025: θ = 0.524376, LR = 16 · 0.144188 · 0.475624 = 1.09727.
    // The nine grid LRs: 1.0973 1.1926 1.2841 1.4098 1.5166 1.6215 1.6871 1.6102 1.2357,
    // mean = 12.6549 / 9 = 1.40610.
    let mut j = judge(plain(0.0));
    j.observe(&look(arm(100, 3, 0), arm(100, 1, 0)));
    let e = j.assess().evidence;
    assert!(
        close(e.error.e_value, 1.406_105, 1e-5),
        "{}",
        e.error.e_value
    );
    assert!(close(e.error.p_value, 1.0 / 1.406_105, 1e-5));
    // No slow requests: the latency test saw nothing.
    assert_eq!(e.latency.e_value, 1.0);
    assert_eq!(e.latency.informative_looks, 0);
}

#[test]
fn looks_multiply_and_margin_moves_the_null() {
    // m = 0.2. Look 1: n_c = 50, n_p = 100 (r = 0.5), x = (6, 4):
    // θ0 = 50·1.2 / (50·1.2 + 100) = 0.375. Look 2: r = 1, x = (5, 2): θ0 = 1.2/2.2.
    // For each ψ = 1.2·f_j: LR = Π_looks (θ/θ0)^x_c ((1−θ)/(1−θ0))^x_p; mean over the nine
    // grid points = 2.52511 (computed term by term).
    let mut j = judge(plain(0.2));
    j.observe(&look(arm(50, 6, 0), arm(100, 4, 0)));
    j.observe(&look(arm(100, 5, 0), arm(100, 2, 0)));
    let e = j.assess().evidence;
    assert!(
        close(e.error.e_value, 2.525_113, 1e-5),
        "{}",
        e.error.e_value
    );
    // Same thing, recomputed from the closed form for every grid point.
    let lr = |psi: f64, r: f64, xc: f64, xp: f64| {
        let (t, t0) = (r * psi / (r * psi + 1.0), r * 1.2 / (r * 1.2 + 1.0));
        (t / t0).powf(xc) * ((1.0 - t) / (1.0 - t0)).powf(xp)
    };
    let direct: f64 = ALT_OFFSETS
        .iter()
        .map(|&o| {
            let psi = 1.2 * lattice_factor(o);
            lr(psi, 0.5, 6.0, 4.0) * lr(psi, 1.0, 5.0, 2.0)
        })
        .sum::<f64>()
        / ALT_OFFSETS.len() as f64;
    assert!(close(e.error.e_value, direct, 1e-9));
}

#[test]
fn dispersion_tempers_each_look() {
    // τ = 0.5, one look r = 1, x = (3, 1), m = 0: v = 4 · 0.5 · 0.5 = 1,
    // κ = 1 / (1 + 0.25 · 1) = 0.8, so E = mean_j LR_j^0.8 < 1.40610.
    let config = JudgeConfig {
        dispersion: 0.5,
        ..plain(0.0)
    };
    let mut j = judge(config);
    j.observe(&look(arm(100, 3, 0), arm(100, 1, 0)));
    let expected: f64 = ALT_OFFSETS
        .iter()
        .map(|&o| {
            let t = lattice_factor(o) / (1.0 + lattice_factor(o));
            (16.0 * t.powi(3) * (1.0 - t)).powf(0.8)
        })
        .sum::<f64>()
        / 9.0;
    let e = j.assess().evidence.error.e_value;
    assert!(close(e, expected, 1e-9), "{e} vs {expected}");
    assert!(e < 1.406);
}

#[test]
fn slo_guard_matches_its_formula() {
    // θ_slo = 1 %, k = 5 errors in n = 100: M = mean_j (f_j)^5 ((1 − 0.01 f_j)/0.99)^95
    // = 17.516 (term by term). With one SLO α is split three ways: threshold 300.
    let config = JudgeConfig {
        slo_error_rate: Some(0.01),
        ..plain(0.2)
    };
    let mut j = judge(config);
    j.observe(&look(arm(100, 5, 0), arm(100, 5, 0)));
    let a = j.assess();
    let slo = a
        .evidence
        .slo_error
        .clone()
        .unwrap_or_else(|| panic!("no SLO evidence"));
    assert!(close(slo.e_value, 17.516_254, 1e-5), "{}", slo.e_value);
    assert!(close(slo.threshold, 300.0, 1e-12));
    assert!(!slo.crossed);
    // 60 errors in 1 100 requests (5.5 % vs an SLO of 1 %) is a breach.
    j.observe(&look(arm(1000, 55, 0), arm(1000, 50, 0)));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    assert!(a.reason.contains("above the SLO 1%"), "{}", a.reason);
}

#[test]
fn zero_errors_in_both_arms_is_not_a_regression_and_can_promote() {
    let mut j = judge(JudgeConfig::recommended());
    j.observe(&look(arm(500, 0, 0), arm(5000, 0, 0)));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait, "{}", a.reason);
    assert_eq!(a.evidence.error.e_value, 1.0);
    assert_eq!(a.evidence.error.p_value, 1.0);
    assert!(a.evidence.error.few_events);
    assert!(a.evidence.canary_requests_needed.is_some());
    // The canary's own bound catches up with the primary's: 0 errors in 40 000 canary
    // requests vs 0 in 50 000 primary requests gives bounds in the ratio 5/4 < 1.5.
    for _ in 0..10 {
        j.observe(&look(arm(4000, 0, 0), arm(4500, 0, 0)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    assert!(a.reason.contains("too few events"), "{}", a.reason);
}

/// Every number in the JSON is finite (serde_json would write NaN as null silently).
fn assert_json_sane(e: &Evidence) {
    fn walk(v: &serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                assert!(n.as_f64().is_some_and(f64::is_finite), "{n}");
            }
            serde_json::Value::Array(a) => a.iter().for_each(walk),
            serde_json::Value::Object(o) => o.values().for_each(walk),
            _ => {}
        }
    }
    let json = serde_json::to_value(e).unwrap_or_else(|err| panic!("not serialisable: {err}"));
    walk(&json);
    let back: Evidence =
        serde_json::from_value(json).unwrap_or_else(|err| panic!("not deserialisable: {err}"));
    assert_eq!(back.looks, e.looks);
    assert_eq!(
        back.error.ratio_upper.is_none(),
        e.error.ratio_upper.is_none()
    );
}

#[test]
fn zero_traffic_in_an_arm_is_a_clear_wait() {
    let mut j = judge(JudgeConfig::recommended());
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(a.reason.contains("no canary traffic"), "{}", a.reason);
    assert_json_sane(&a.evidence);

    j.observe(&look(arm(0, 0, 0), arm(3000, 20, 150)));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(a.reason.contains("no canary traffic"), "{}", a.reason);
    assert_eq!(a.evidence.error.canary_rate, None);
    assert_eq!(a.evidence.error.informative_looks, 0);
    assert_json_sane(&a.evidence);

    let mut j = judge(JudgeConfig::recommended());
    j.observe(&look(arm(3000, 20, 150), arm(0, 0, 0)));
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(
        a.reason.contains("primary served no requests"),
        "{}",
        a.reason
    );
    assert_eq!(a.evidence.error.primary_rate, None);
    assert_eq!(a.evidence.error.ratio_upper, None);
    assert_json_sane(&a.evidence);
}

#[test]
fn a_doubled_error_rate_fails_with_a_readable_reason() {
    let mut j = judge(JudgeConfig::recommended());
    for _ in 0..10 {
        j.observe(&look(arm(1500, 30, 75), arm(1500, 8, 75)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    let e = &a.evidence.error;
    assert!(e.crossed && e.max_e_value >= e.threshold);
    assert!(e.p_value <= a.evidence.alpha_per_test);
    assert!(e.ratio_lower > 2.0, "{}", e.ratio_lower);
    assert!(
        a.reason
            .starts_with("canary error rate 2% vs primary 0.53% (ratio ≥"),
        "{}",
        a.reason
    );
    assert!(a.reason.ends_with("≥ 200): regression"), "{}", a.reason);
    assert_json_sane(&a.evidence);
    // A crossing is permanent: good looks afterwards do not undo it.
    for _ in 0..20 {
        j.observe(&look(arm(1500, 8, 75), arm(1500, 8, 75)));
    }
    assert_eq!(j.assess().verdict, Verdict::Fail);
}

#[test]
fn a_latency_regression_names_the_boundary() {
    let mut j = judge(JudgeConfig::recommended()).with_latency_boundary(0.25);
    for _ in 0..10 {
        j.observe(&look(arm(1500, 8, 150), arm(1500, 8, 75)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    assert!(a.reason.contains("slower than 250 ms"), "{}", a.reason);
    assert!(a.reason.ends_with("latency regression"), "{}", a.reason);
}

#[test]
fn identical_arms_with_enough_traffic_pass() {
    let mut j = judge(JudgeConfig::recommended());
    for _ in 0..30 {
        j.observe(&look(arm(1500, 8, 75), arm(1500, 8, 75)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    let e = &a.evidence;
    assert!(e.error.ratio_upper.is_some_and(|u| u <= 2.0));
    assert!(e.error.ratio_lower < 1.0);
    assert_eq!(e.canary_requests_needed, None);
    assert!(a
        .reason
        .starts_with("canary not worse than primary with 99% confidence"));
}

#[test]
fn too_little_evidence_waits_and_says_how_much_more() {
    let mut j = judge(JudgeConfig::recommended());
    for _ in 0..3 {
        j.observe(&look(arm(1500, 8, 75), arm(1500, 8, 75)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait, "{}", a.reason);
    let needed = a.evidence.canary_requests_needed.unwrap_or(0);
    assert!(needed > 1000, "{needed}");
    assert!(a.reason.contains("more canary requests"), "{}", a.reason);
    assert!(
        a.reason.contains("error-rate ratio could still be up to"),
        "{}",
        a.reason
    );
    // Feeding the estimated amount at the same rates gets to a pass or close to it:
    // the estimate is rough, so allow twice the amount.
    let per_look = 1500;
    let looks = (2 * needed).div_ceil(per_look);
    for _ in 0..looks {
        j.observe(&look(arm(1500, 8, 75), arm(1500, 8, 75)));
    }
    assert_eq!(j.assess().verdict, Verdict::Pass);
}

#[test]
fn promotion_waits_for_the_minimum_canary_requests() {
    let config = JudgeConfig {
        min_canary_requests: 1_000_000,
        ..JudgeConfig::recommended()
    };
    assert_eq!(config.promotion_margin, 1.0);
    let mut j = judge(config);
    for _ in 0..30 {
        j.observe(&look(arm(1500, 8, 75), arm(1500, 8, 75)));
    }
    let a = j.assess();
    assert_eq!(a.verdict, Verdict::Wait);
    assert!(
        a.reason.contains("of the 1 000 000 requests"),
        "{}",
        a.reason
    );
    assert_eq!(a.evidence.canary_requests_needed, Some(1_000_000 - 45_000));
}

#[test]
fn invalid_configs_name_the_field() {
    let cases: [(JudgeConfig, &str); 7] = [
        (
            JudgeConfig {
                alpha: 0.0,
                ..JudgeConfig::recommended()
            },
            "alpha",
        ),
        (
            JudgeConfig {
                alpha: 0.6,
                ..JudgeConfig::recommended()
            },
            "alpha",
        ),
        (
            JudgeConfig {
                error_margin: -0.1,
                ..JudgeConfig::recommended()
            },
            "error_margin",
        ),
        (
            JudgeConfig {
                latency_margin: f64::NAN,
                ..JudgeConfig::recommended()
            },
            "latency_margin",
        ),
        (
            JudgeConfig {
                promotion_margin: f64::INFINITY,
                ..JudgeConfig::recommended()
            },
            "promotion_margin",
        ),
        (
            JudgeConfig {
                slo_error_rate: Some(1.0),
                ..JudgeConfig::recommended()
            },
            "slo_error_rate",
        ),
        (
            JudgeConfig {
                slo_slow_fraction: Some(0.0),
                ..JudgeConfig::recommended()
            },
            "slo_slow_fraction",
        ),
    ];
    for (config, field) in cases {
        match Judge::new(config) {
            Err(e) => assert_eq!(e.field, field),
            Ok(_) => panic!("{field} accepted"),
        }
    }
    assert!(JudgeConfig::recommended().validate().is_ok());
    let bad = JudgeConfig {
        dispersion: -1.0,
        ..JudgeConfig::recommended()
    };
    assert_eq!(bad.validate().map_err(|e| e.field), Err("dispersion"));
}

#[test]
fn a_stored_config_without_dispersion_gets_the_default() {
    let json = r#"{"alpha":0.01,"error_margin":0.2,"latency_margin":0.2,"promotion_margin":0.5,
        "min_canary_requests":1000,"slo_error_rate":null,"slo_slow_fraction":null}"#;
    let config: JudgeConfig =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("old config refused: {e}"));
    assert_eq!(config.dispersion, DEFAULT_DISPERSION);
}

/// One simulated analysis' looks: a Flagger schedule (5/10/20/30/50 % then held) or a
/// random walk of weights, bursty totals, a drifting baseline; Poisson events so that the
/// canary's share of a look's events is exactly binomial with ratio `ratio`.
fn simulate(rng: &mut StdRng, looks: usize, ratio: f64, slow_ratio: f64) -> Vec<Look> {
    let stepped = rng.gen_bool(0.5);
    let base = 10f64.powf(rng.gen_range(-3.0..-1.5));
    let mut weight: f64 = rng.gen_range(0.02..0.5);
    let poisson = |rng: &mut StdRng, mean: f64| -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        match Poisson::new(mean) {
            Ok(p) => p.sample(rng) as u64,
            Err(_) => 0,
        }
    };
    (0..looks)
        .map(|i| {
            if stepped {
                weight = [0.05, 0.1, 0.2, 0.3, 0.5][i.min(4)];
            } else {
                weight = (weight * rng.gen_range(0.7..1.4)).clamp(0.01, 0.9);
            }
            let total = rng.gen_range(200.0..6000.0_f64).floor();
            let n_c = (total * weight).round() as u64;
            let n_p = total as u64 - n_c;
            let p = base * rng.gen_range(0.5..2.0);
            let s = 0.05 * rng.gen_range(0.5..2.0);
            look(
                arm(
                    n_c,
                    poisson(rng, n_c as f64 * p * ratio),
                    poisson(rng, n_c as f64 * s * slow_ratio),
                ),
                arm(
                    n_p,
                    poisson(rng, n_p as f64 * p),
                    poisson(rng, n_p as f64 * s),
                ),
            )
        })
        .collect()
}

/// Monte-Carlo allowance: three standard errors of a rate p over `runs`.
fn mc_allowance(p: f64, runs: usize) -> f64 {
    3.0 * (p * (1.0 - p) / runs as f64).sqrt()
}

#[test]
fn under_the_null_the_e_process_rejects_at_most_alpha() {
    // The worst case of the composite null: the true ratio sits exactly on 1 + m.
    // α = 0.05 so that 2 000 runs resolve the rate (± 0.015 at three standard errors).
    let (alpha, runs, margin): (f64, usize, f64) = (0.05, 2000, 0.2);
    let mut rng = StdRng::seed_from_u64(7);
    let mut rejected = 0;
    for _ in 0..runs {
        let mut p = RatioProcess::new(1.0 + margin, 0.0);
        for l in simulate(&mut rng, 60, 1.0 + margin, 1.0) {
            p.observe(
                l.canary.requests,
                l.primary.requests,
                l.canary.errors,
                l.primary.errors,
            );
        }
        if p.max_log_e() >= (1.0 / alpha).ln() {
            rejected += 1;
        }
    }
    let rate = f64::from(rejected) / runs as f64;
    assert!(
        rate <= alpha + mc_allowance(alpha, runs),
        "rejection rate {rate}"
    );
}

#[test]
fn identical_arms_rarely_fail_the_whole_judge() {
    // The verdict level: both fail tests share α = 0.05 (Bonferroni), default margins.
    let runs = 1000;
    let config = JudgeConfig {
        alpha: 0.05,
        ..JudgeConfig::recommended()
    };
    let mut rng = StdRng::seed_from_u64(11);
    let mut failed = 0;
    for _ in 0..runs {
        let mut j = judge(config.clone());
        for l in simulate(&mut rng, 60, 1.0, 1.0) {
            j.observe(&l);
        }
        let e = j.evidence();
        if e.error.crossed || e.latency.crossed {
            failed += 1;
        }
    }
    let rate = f64::from(failed) / runs as f64;
    assert!(
        rate <= 0.05 + mc_allowance(0.05, runs),
        "false-fail rate {rate}"
    );
}

#[test]
fn confidence_sequences_cover_the_true_ratio() {
    // True ratio 1.05⁸ ≈ 1.477 (a lattice point). Each one-sided bound must hold at every
    // one of 60 looks in at least 1 − α of the runs.
    let (alpha, runs): (f64, usize) = (0.05, 1000);
    let k = 8;
    let truth = lattice_factor(k);
    let bar = (1.0 / alpha).ln();
    let mut rng = StdRng::seed_from_u64(13);
    let (mut missed_low, mut missed_high) = (0, 0);
    for _ in 0..runs {
        let mut p = RatioProcess::new(1.2, 0.0);
        let (mut below_ok, mut above_ok) = (true, true);
        for l in simulate(&mut rng, 60, truth, 1.0) {
            p.observe(
                l.canary.requests,
                l.primary.requests,
                l.canary.errors,
                l.primary.errors,
            );
            below_ok &= p.one_sided_log_e(k, true) < bar;
            above_ok &= p.one_sided_log_e(k, false) < bar;
        }
        // The reported hull agrees with the pointwise tests at the end.
        let cs = p.interval(alpha);
        if below_ok {
            assert!(cs.lower <= truth, "{cs:?}");
        }
        if above_ok {
            assert!(cs.upper.is_none_or(|u| u >= truth), "{cs:?}");
        }
        missed_low += u32::from(!below_ok);
        missed_high += u32::from(!above_ok);
    }
    for missed in [missed_low, missed_high] {
        let rate = f64::from(missed) / runs as f64;
        assert!(
            rate <= alpha + mc_allowance(alpha, runs),
            "miss rate {rate}"
        );
    }
}

#[test]
fn a_real_regression_is_found_by_the_same_simulation() {
    // Guards against a test that can never reject: the same simulation with a 3× error
    // ratio must fail in most runs.
    let runs = 100;
    let mut rng = StdRng::seed_from_u64(17);
    let mut failed = 0;
    for _ in 0..runs {
        let mut j = judge(JudgeConfig::recommended());
        for l in simulate(&mut rng, 60, 3.0, 1.0) {
            j.observe(&l);
        }
        if j.assess().verdict == Verdict::Fail {
            failed += 1;
        }
    }
    assert!(failed >= 80, "only {failed} of {runs} detected");
}

#[test]
fn replaying_looks_gives_identical_assessments() {
    // Restart safety: a judge rebuilt from the stored looks answers exactly as the
    // long-lived one did, at every look.
    let mut rng = StdRng::seed_from_u64(19);
    for ratio in [1.0, 1.6, 3.0] {
        let looks = simulate(&mut rng, 40, ratio, ratio);
        let config = JudgeConfig {
            slo_error_rate: Some(0.02),
            ..JudgeConfig::recommended()
        };
        let mut live = judge(config.clone());
        for (i, l) in looks.iter().enumerate() {
            live.observe(l);
            let mut fresh = judge(config.clone());
            for earlier in &looks[..=i] {
                fresh.observe(earlier);
            }
            assert_eq!(live.assess(), fresh.assess(), "look {i}");
        }
    }
}

/// The issue's reference workload: 50 requests/s, one look per 60 s, canary weight
/// 5/10/20/30/50 % then held, 30 looks, errors 0.5 %, slow fraction 0.366 % (log-normal
/// latency, median 50 ms, σ 0.6, b* = 250 ms). `noise` is the sd of independent
/// log-normal per-look noise on each arm's error rate and slow fraction (overdispersion).
fn reference_run(
    rng: &mut StdRng,
    config: &JudgeConfig,
    error_ratio: f64,
    slow_canary: f64,
    noise: f64,
) -> (Verdict, Option<usize>) {
    let normal = rand_distr::Normal::new(0.0, noise.max(1e-12))
        .unwrap_or_else(|e| panic!("bad noise {noise}: {e}"));
    let jitter = |rng: &mut StdRng| {
        if noise == 0.0 {
            1.0
        } else {
            (normal.sample(rng) - noise * noise / 2.0).exp()
        }
    };
    let poisson = |rng: &mut StdRng, mean: f64| -> u64 {
        Poisson::new(mean.max(1e-12)).map_or(0, |p| p.sample(rng) as u64)
    };
    let mut j = judge(config.clone());
    let mut passed_at = None;
    for i in 0..30 {
        let weight = [0.05, 0.1, 0.2, 0.3, 0.5][i.min(4)];
        let n_c = (3000.0 * weight) as u64;
        let n_p = 3000 - n_c;
        let noise: [f64; 4] = [jitter(rng), jitter(rng), jitter(rng), jitter(rng)];
        let canary = arm(
            n_c,
            poisson(rng, n_c as f64 * 0.005 * error_ratio * noise[0]),
            poisson(rng, n_c as f64 * slow_canary * noise[1]),
        );
        let primary = arm(
            n_p,
            poisson(rng, n_p as f64 * 0.005 * noise[2]),
            poisson(rng, n_p as f64 * 0.00366 * noise[3]),
        );
        j.observe(&look(canary, primary));
        match j.assess().verdict {
            Verdict::Fail => return (Verdict::Fail, Some(i + 1)),
            Verdict::Pass if passed_at.is_none() => passed_at = Some(i + 1),
            _ => {}
        }
    }
    match passed_at {
        Some(at) => (Verdict::Pass, Some(at)),
        None => (Verdict::Wait, None),
    }
}

/// Tuning table for the defaults (run in release: `cargo test --release --lib
/// judge::tests::reference_workload_table -- --ignored --nocapture`). Asserts the issue's
/// targets at the recommended configuration.
#[test]
#[ignore = "a few seconds in release; prints the tuning table"]
fn reference_workload_table() {
    let runs: usize = std::env::var("JUDGE_TABLE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let scenarios: [(&str, f64, f64, f64); 7] = [
        ("A/A steady", 1.0, 0.00366, 0.0),
        ("A/A noise sd 0.25", 1.0, 0.00366, 0.25),
        ("A/A noise sd 0.5", 1.0, 0.00366, 0.5),
        ("errors x2", 2.0, 0.00366, 0.0),
        ("errors x1.5", 1.5, 0.00366, 0.0),
        ("latency x1.2", 1.0, 0.0087, 0.0),
        ("tail-only 5% x4", 1.0, 0.0212, 0.0),
    ];
    // Comma-separated overrides, e.g. JUDGE_TABLE_TAU=0,0.25 JUDGE_TABLE_PM=0.5,1.
    let list = |key: &str, default: &[f64]| -> Vec<f64> {
        std::env::var(key).map_or(default.to_vec(), |v| {
            v.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        })
    };
    let recommended_config = JudgeConfig::recommended();
    let mut recommended = Vec::new();
    let taus = list("JUDGE_TABLE_TAU", &[0.0, DEFAULT_DISPERSION, 0.5]);
    let margins = list("JUDGE_TABLE_PM", &[recommended_config.promotion_margin]);
    for (dispersion, promotion_margin) in taus
        .iter()
        .flat_map(|&t| margins.iter().map(move |&m| (t, m)))
    {
        let config = JudgeConfig {
            dispersion,
            promotion_margin,
            ..recommended_config.clone()
        };
        println!("dispersion τ = {dispersion}, promotion margin {promotion_margin}");
        for (name, errors, slow, noise) in scenarios {
            let mut rng = StdRng::seed_from_u64(23);
            let (mut failed, mut passed, mut fail_looks) = (0, 0, Vec::new());
            for _ in 0..runs {
                match reference_run(&mut rng, &config, errors, slow, noise) {
                    (Verdict::Fail, at) => {
                        failed += 1;
                        fail_looks.extend(at);
                    }
                    (Verdict::Pass, _) => passed += 1,
                    _ => {}
                }
            }
            fail_looks.sort_unstable();
            let median = fail_looks.get(fail_looks.len() / 2).copied().unwrap_or(0);
            let (f, p) = (
                f64::from(failed) / runs as f64,
                f64::from(passed) / runs as f64,
            );
            println!(
                "  {name:<20} fail {:>6.2}%  pass {:>6.2}%  median looks to fail {median}",
                100.0 * f,
                100.0 * p
            );
            if config == recommended_config {
                recommended.push((name, f, p));
            }
        }
    }
    let rate = |n: &str| {
        recommended
            .iter()
            .find(|r| r.0 == n)
            .map_or((1.0, 0.0), |r| (r.1, r.2))
    };
    let allowance = mc_allowance(0.01, runs);
    assert!(rate("A/A steady").0 <= 0.01 + allowance);
    assert!(rate("A/A noise sd 0.25").0 <= 0.02 + allowance);
    assert!(rate("A/A steady").1 >= 0.9);
    assert!(rate("errors x2").0 >= 0.95);
    assert!(rate("latency x1.2").0 >= 0.9);
    assert!(rate("tail-only 5% x4").0 >= 0.9);
}
