//! `verdict evaluate`: simulate many canaries per scenario and compare verdict's judge
//! with the judges people use today.
//!
//! Every simulated canary runs through all judges on the same looks, so differences
//! between columns are differences between judges, not between random draws.
//!
//! Decision rules:
//! - verdict ([`crate::judge`] at [`JudgeConfig::recommended`] unless overridden): rolls back
//!   at the first look whose assessment is `Fail`, promotes at the first `Pass`; a canary
//!   with neither after the last look is undecided (Flagger would keep waiting).
//! - Flagger-style thresholds, the Kayenta-style judge and the repeated z-test only ever
//!   fail; a canary they never failed is promoted at the last look.
//! - The oracle (Wald's SPRT knowing the true ratios) tests the same nulls as verdict at
//!   the same levels: on a regression, "ratio = 1 + margin" against the truth on the most
//!   informative regressed metric at verdict's per-test α; otherwise "ratio = 1 +
//!   promotion margin" against the truth on every metric promotion needs, at α.

mod baselines;
pub mod promql;
pub mod readings;
mod report;
pub mod scenarios;
pub mod scrape;

use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};

use crate::judge::latency::Bucket;
use crate::judge::{ArmLook, HistoryInterval, Judge, JudgeConfig, Look, Plan, Verdict};
use crate::sli::simulator::{mix_seed, ArmIncrement, Simulator, TrafficPattern, WeightSchedule};

use baselines::{FlaggerThresholds, KayentaMannWhitney, OracleSprt, RepeatedZTest};
use readings::{JudgedArm, ScrapedLooks};
pub use scenarios::Scenario;

/// Flags of `verdict evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Simulated canaries per scenario.
    #[arg(long, default_value_t = 1000)]
    pub runs: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only scenarios whose id contains this text (repeatable), e.g. `aa-` or `lat-`.
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Print the table as Markdown.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print one JSON document: `{"runs","seed","rows":[{"scenario","judge","rollback",
    /// "promote","rollback_median_look","promote_median_look"}]}`.
    #[arg(long)]
    pub json: bool,
    /// Looks per canary (one per simulated minute).
    #[arg(long, default_value_t = 30)]
    pub looks: usize,
    /// Worker threads (default: the machine's available parallelism).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Override the judge's α (the table in BENCHMARKS.md uses the defaults).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Override the judge's tolerated relative error-rate increase.
    #[arg(long)]
    pub error_margin: Option<f64>,
    /// Override the judge's tolerated relative increase of requests above b*.
    #[arg(long)]
    pub latency_margin: Option<f64>,
    /// Override the judge's promotion margin.
    #[arg(long)]
    pub promotion_margin: Option<f64>,
    /// Override the judge's minimum canary requests before promotion.
    #[arg(long)]
    pub min_canary_requests: Option<u64>,
    /// Override the judge's per-look dispersion τ: `auto` (measured on the primary's
    /// history, the default) or a number.
    #[arg(long, value_parser = crate::judge::Dispersion::parse)]
    pub dispersion: Option<crate::judge::Dispersion>,
}

/// Settings shared by every simulated canary of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// The judge's settings.
    pub judge: JudgeConfig,
    /// Looks per canary.
    pub looks: usize,
    /// Simulated seconds between looks (Flagger's `analysis.interval`).
    pub interval_s: f64,
    /// Canary weight per look.
    pub weights: WeightSchedule,
    /// Intervals of the primary's history the plan reads (each `interval_s` long).
    pub history_intervals: usize,
}

impl Setup {
    /// The reference: 30 looks of 60 s, weights 5/10/20/30/50 % then held, the plan from
    /// one hour of the primary's history in one-minute intervals.
    pub fn reference(judge: JudgeConfig) -> Self {
        Self {
            judge,
            looks: 30,
            interval_s: 60.0,
            weights: WeightSchedule::flagger_reference(),
            history_intervals: 60,
        }
    }
}

/// Flagger's built-in request-success-rate check as its docs configure it.
const FLAGGER_MIN_SUCCESS: f64 = 0.99;
/// The request-duration limit of Flagger's docs (500 ms), applied here to p95.
const FLAGGER_MAX_P95_S: f64 = 0.5;
/// Failed checks before Flagger rolls back (Flagger's `threshold`).
const FLAGGER_THRESHOLD: u32 = 5;
/// Kayenta-style judge: two-sided confidence and relative tolerance.
const KAYENTA_CONFIDENCE: f64 = 0.98;
const KAYENTA_TOLERANCE: f64 = 0.25;
/// The oracle's accepted miss rate.
const ORACLE_BETA: f64 = 0.05;

/// The judges compared, in column order.
pub const METHODS: [&str; 5] = [
    "verdict",
    "Flagger thresholds",
    "Kayenta MWU",
    "z-test",
    "oracle SPRT",
];

/// The judges' names in `--json`, in [`METHODS`] order.
pub const JSON_NAMES: [&str; 5] = ["verdict", "flagger", "kayenta", "z", "oracle"];

/// One look as every judge sees it.
#[derive(Debug, Clone)]
pub(crate) struct LookData<'a> {
    pub canary: &'a ArmIncrement,
    pub primary: &'a ArmIncrement,
    pub canary_buckets: Vec<Bucket>,
    pub primary_buckets: Vec<Bucket>,
    /// Requests above each latency boundary of verdict's plan (the same boundaries for
    /// the z-test and the oracle).
    pub canary_slower: Vec<u64>,
    pub primary_slower: Vec<u64>,
    /// Time since the analysis opened at the end of this look.
    pub elapsed_ms: u64,
}

/// A judge's answer after one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Continue,
    Rollback,
    Promote,
}

/// How one simulated canary ended for one judge (looks are 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rolled back at this look.
    Rollback(u32),
    /// Promoted at this look.
    Promote(u32),
    /// Neither within the looks.
    Undecided,
}

enum Method {
    Verdict(Box<Judge>),
    Flagger(FlaggerThresholds),
    Kayenta(KayentaMannWhitney),
    ZTest(RepeatedZTest),
    Oracle(OracleSprt),
}

impl Method {
    fn observe(&mut self, look: &LookData<'_>) -> Step {
        match self {
            Method::Verdict(judge) => {
                // As the live code: requests above a boundary never exceed the requests
                // (src/analysis/judging.rs), which only matters for extrapolated counts.
                let arm = |inc: &ArmIncrement, buckets: &[Bucket]| ArmLook {
                    requests: inc.requests,
                    errors: inc.errors,
                    slower: judge
                        .plan()
                        .slower(buckets)
                        .into_iter()
                        .map(|s| s.min(inc.requests))
                        .collect(),
                };
                let observed = Look {
                    canary: arm(look.canary, &look.canary_buckets),
                    primary: arm(look.primary, &look.primary_buckets),
                    elapsed_ms: look.elapsed_ms,
                };
                judge.observe(&observed);
                match judge.verdict() {
                    Verdict::Fail => Step::Rollback,
                    Verdict::Pass => Step::Promote,
                    Verdict::Wait => Step::Continue,
                }
            }
            Method::Flagger(m) => m.observe(look),
            Method::Kayenta(m) => m.observe(look),
            Method::ZTest(m) => m.observe(look),
            Method::Oracle(m) => m.observe(look),
        }
    }

    /// What the judge does when the looks run out.
    fn at_end(&self, looks: u32) -> Outcome {
        match self {
            Method::Verdict(_) | Method::Oracle(_) => Outcome::Undecided,
            _ => Outcome::Promote(looks),
        }
    }
}

/// The primary's history before the canary starts, as the plan reads it.
fn history(sim: &mut Simulator, setup: &Setup, bounds: &[f64]) -> Vec<HistoryInterval> {
    let n = setup.history_intervals;
    (0..n)
        .map(|i| {
            let t = -((n - i) as f64) * setup.interval_s;
            let step = sim.interval(t, setup.interval_s, 0.0);
            HistoryInterval {
                requests: step.primary.requests as f64,
                errors: step.primary.errors as f64,
                buckets: step.primary.cumulative(bounds),
            }
        })
        .collect()
}

/// Intervals simulated before the history so that every counter exists and has been
/// scraped when the history's first window opens.
const SCRAPE_WARMUP_INTERVALS: usize = 2;

/// A scrape scenario's Prometheus, fed with the primary's history (and a warm-up before
/// it); returns it with the history as the plan reads it through that Prometheus.
fn scraped_history(
    sim: &mut Simulator,
    setup: &Setup,
    settings: scrape::ScrapeSettings,
    bounds: &[f64],
    seed: u64,
) -> anyhow::Result<(ScrapedLooks, Vec<HistoryInterval>)> {
    let prometheus = scrape::Scraper::new(settings, bounds.len(), seed)?;
    let mut looks = ScrapedLooks::new(prometheus, bounds.to_vec());
    let n = setup.history_intervals + SCRAPE_WARMUP_INTERVALS;
    for i in 0..n {
        let t = -((n - i) as f64) * setup.interval_s;
        let step = sim.interval(t, setup.interval_s, 0.0);
        looks.advance(t, setup.interval_s, &step)?;
    }
    let history = looks.history(0.0, setup.history_intervals, setup.interval_s)?;
    looks.open(0.0);
    Ok((looks, history))
}

/// The judge settings a scenario runs with.
fn scenario_config(scenario: &Scenario, setup: &Setup) -> JudgeConfig {
    JudgeConfig {
        slo_error_rate: scenario.slo_error_rate.or(setup.judge.slo_error_rate),
        ..setup.judge.clone()
    }
}

/// Simulates one canary and runs every judge on it. Outcomes follow [`METHODS`].
pub fn simulate_canary(
    scenario: &Scenario,
    setup: &Setup,
    seed: u64,
) -> anyhow::Result<[Outcome; 5]> {
    let mut workload = scenario.workload.clone();
    if scenario.random_phase {
        if let TrafficPattern::Diurnal { phase, .. } = &mut workload.pattern {
            *phase = rand::rngs::StdRng::seed_from_u64(mix_seed(seed, 2))
                .gen_range(0.0..std::f64::consts::TAU);
        }
    }
    let bounds = workload.bucket_bounds.clone();
    let mut sim = Simulator::new(workload, scenario.effect, mix_seed(seed, 1))
        .with_context(|| format!("scenario {}", scenario.id))?;
    let config = scenario_config(scenario, setup);
    let (mut scraped, history) = match scenario.scrape {
        Some(settings) => {
            let (looks, history) =
                scraped_history(&mut sim, setup, settings, &bounds, mix_seed(seed, 3))
                    .with_context(|| format!("scenario {}: scrape model", scenario.id))?;
            (Some(looks), history)
        }
        None => (None, history(&mut sim, setup, &bounds)),
    };
    let plan = Plan::new(&config, &history, None, None)
        .with_context(|| format!("scenario {}: plan", scenario.id))?;
    let oracle = baselines::oracle_for(&sim, scenario.is_regression(), &plan, &config, ORACLE_BETA);
    let boundaries: Vec<f64> = plan.boundaries.iter().map(|b| b.le_s).collect();
    let judge = Judge::new(config.clone(), plan).context("judge settings")?;
    let mut methods = [
        Method::Verdict(Box::new(judge)),
        Method::Flagger(FlaggerThresholds::new(
            FLAGGER_MIN_SUCCESS,
            FLAGGER_MAX_P95_S,
            FLAGGER_THRESHOLD,
        )),
        Method::Kayenta(KayentaMannWhitney::new(
            KAYENTA_CONFIDENCE,
            KAYENTA_TOLERANCE,
        )),
        Method::ZTest(RepeatedZTest::new(config.alpha, boundaries.len())),
        Method::Oracle(oracle),
    ];
    let slower = |buckets: &[Bucket]| -> Vec<u64> {
        boundaries
            .iter()
            .map(|b| crate::judge::latency::count_above(buckets, *b))
            .collect()
    };
    let mut outcomes: [Option<Outcome>; 5] = [None; 5];
    for look in 0..setup.looks {
        let t = look as f64 * setup.interval_s;
        let interval = sim.interval(t, setup.interval_s, setup.weights.weight(look));
        let (canary, primary) = match &mut scraped {
            None => (
                JudgedArm::exact(interval.canary, &bounds),
                JudgedArm::exact(interval.primary, &bounds),
            ),
            Some(looks) => {
                looks
                    .advance(t, setup.interval_s, &interval)
                    .with_context(|| format!("scenario {}: scrape model", scenario.id))?;
                match looks
                    .look(t + setup.interval_s)
                    .with_context(|| format!("scenario {}: scrape model", scenario.id))?
                {
                    Some(pair) => pair,
                    // No evidence at this look: no judge sees anything.
                    None => continue,
                }
            }
        };
        let data = LookData {
            canary: &canary.increment,
            primary: &primary.increment,
            canary_slower: slower(&canary.buckets),
            primary_slower: slower(&primary.buckets),
            canary_buckets: canary.buckets,
            primary_buckets: primary.buckets,
            elapsed_ms: ((look + 1) as f64 * setup.interval_s * 1000.0) as u64,
        };
        let number = look as u32 + 1;
        for (method, outcome) in methods.iter_mut().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            *outcome = match method.observe(&data) {
                Step::Continue => None,
                Step::Rollback => Some(Outcome::Rollback(number)),
                Step::Promote => Some(Outcome::Promote(number)),
            };
        }
        if outcomes.iter().all(Option::is_some) {
            break;
        }
    }
    let looks = setup.looks as u32;
    let mut result = [Outcome::Undecided; 5];
    for ((slot, outcome), method) in result.iter_mut().zip(outcomes).zip(&methods) {
        *slot = outcome.unwrap_or_else(|| method.at_end(looks));
    }
    Ok(result)
}

/// Outcomes of many simulated canaries for one judge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Look of each rollback.
    pub rollbacks: Vec<u32>,
    /// Look of each promotion.
    pub promotions: Vec<u32>,
    /// Canaries neither rolled back nor promoted.
    pub undecided: usize,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Rollback(l) => self.rollbacks.push(l),
            Outcome::Promote(l) => self.promotions.push(l),
            Outcome::Undecided => self.undecided += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.rollbacks.extend(other.rollbacks);
        self.promotions.extend(other.promotions);
        self.undecided += other.undecided;
    }

    /// Simulated canaries counted.
    pub fn runs(&self) -> usize {
        self.rollbacks.len() + self.promotions.len() + self.undecided
    }

    /// Fraction of canaries rolled back.
    pub fn rollback_rate(&self) -> f64 {
        self.rollbacks.len() as f64 / self.runs().max(1) as f64
    }

    /// Fraction of canaries promoted.
    pub fn promotion_rate(&self) -> f64 {
        self.promotions.len() as f64 / self.runs().max(1) as f64
    }

    /// Median look of the rollbacks, if any.
    pub fn median_rollback_look(&self) -> Option<f64> {
        median(&self.rollbacks)
    }

    /// Median look of the promotions, if any.
    pub fn median_promotion_look(&self) -> Option<f64> {
        median(&self.promotions)
    }
}

fn median(values: &[u32]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        f64::from(sorted[mid])
    } else {
        (f64::from(sorted[mid - 1]) + f64::from(sorted[mid])) / 2.0
    })
}

/// One scenario's tallies, one per judge in [`METHODS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// Tallies per judge.
    pub tallies: [Tally; 5],
}

/// Simulates `runs` canaries of one scenario on `threads` threads. The result depends
/// only on `seed`, not on the number of threads: each canary has its own derived seed.
pub fn evaluate_scenario(
    scenario: &Scenario,
    setup: &Setup,
    runs: usize,
    seed: u64,
    threads: usize,
) -> anyhow::Result<ScenarioResult> {
    let scenario_seed = scenario
        .id
        .bytes()
        .fold(seed, |h, b| mix_seed(h, u64::from(b)));
    let threads = threads.clamp(1, runs.max(1));
    let worker = |first: usize| -> anyhow::Result<[Tally; 5]> {
        let mut tallies: [Tally; 5] = Default::default();
        for run in (first..runs).step_by(threads) {
            let outcomes = simulate_canary(scenario, setup, mix_seed(scenario_seed, run as u64))?;
            for (tally, outcome) in tallies.iter_mut().zip(outcomes) {
                tally.add(outcome);
            }
        }
        Ok(tallies)
    };
    let parts: Vec<anyhow::Result<[Tally; 5]>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || worker(t)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an evaluation thread panicked")))
            })
            .collect()
    });
    let mut tallies: [Tally; 5] = Default::default();
    for part in parts {
        for (total, tally) in tallies.iter_mut().zip(part?) {
            total.merge(tally);
        }
    }
    Ok(ScenarioResult {
        scenario: scenario.clone(),
        tallies,
    })
}

fn judge_config(args: &EvaluateArgs) -> anyhow::Result<JudgeConfig> {
    let mut config = JudgeConfig::recommended();
    if let Some(v) = args.alpha {
        config.alpha = v;
    }
    if let Some(v) = args.error_margin {
        config.error_margin = v;
    }
    if let Some(v) = args.latency_margin {
        config.latency_margin = v;
    }
    if let Some(v) = args.promotion_margin {
        config.promotion_margin = v;
    }
    if let Some(v) = args.min_canary_requests {
        config.min_canary_requests = v;
    }
    if let Some(v) = args.dispersion {
        config.dispersion = v;
    }
    config.validate().context("judge settings")?;
    Ok(config)
}

/// Runs the evaluation and prints the table.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    if args.looks == 0 {
        anyhow::bail!("--looks must be at least 1");
    }
    let chosen = scenarios::select(&args.scenario).map_err(anyhow::Error::msg)?;
    let setup = Setup {
        looks: args.looks,
        ..Setup::reference(judge_config(args)?)
    };
    let threads = match args.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let started = Instant::now();
    let mut results = Vec::with_capacity(chosen.len());
    for scenario in &chosen {
        results.push(evaluate_scenario(
            scenario, &setup, args.runs, args.seed, threads,
        )?);
    }
    let elapsed = started.elapsed();
    let context = report::Context {
        setup: &setup,
        runs: args.runs,
        seed: args.seed,
        threads,
        elapsed,
    };
    let out = if args.json {
        report::json(&context, &results)?
    } else {
        let mut out = String::new();
        report::write(&mut out, &context, &results, args.markdown)?;
        out
    };
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_setup() -> Setup {
        Setup::reference(JudgeConfig::recommended())
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let scenario = scenarios::all().remove(0);
        let one = evaluate_scenario(&scenario, &quick_setup(), 8, 3, 1).map_err(|e| e.to_string());
        let two = evaluate_scenario(&scenario, &quick_setup(), 8, 3, 2).map_err(|e| e.to_string());
        assert!(one.is_ok(), "{one:?}");
        let sorted = |r: Result<ScenarioResult, String>| {
            r.map(|mut r| {
                for t in &mut r.tallies {
                    t.rollbacks.sort_unstable();
                    t.promotions.sort_unstable();
                }
                r.tallies
            })
        };
        assert_eq!(sorted(one), sorted(two));
    }

    #[test]
    fn scrape_scenarios_run_through_the_simulated_prometheus() {
        let scraped: Vec<Scenario> = scenarios::all()
            .into_iter()
            .filter(|s| s.scrape.is_some())
            .collect();
        assert_eq!(scraped.len(), 6);
        for scenario in &scraped {
            let result = evaluate_scenario(scenario, &quick_setup(), 4, 1, 1)
                .unwrap_or_else(|e| panic!("{}: {e:#}", scenario.id));
            assert_eq!(result.tallies[0].runs(), 4);
        }
        // A scrape model that cannot exist is refused with the scenario named.
        let mut bad = scraped[0].clone();
        bad.scrape = bad
            .scrape
            .map(|s| scrape::ScrapeSettings { interval_s: 0, ..s });
        let err = evaluate_scenario(&bad, &quick_setup(), 1, 1, 1)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        assert!(
            err.as_ref()
                .is_err_and(|e| e.contains("aa-scrape-30s-increase")
                    && e.contains("scrape interval must be 1 to 300 s, got 0 s")),
            "{err:?}"
        );
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3, 1, 2]), Some(2.0));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2.5));
    }

    #[test]
    fn the_oracle_tests_verdicts_nulls_on_what_regresses() {
        let setup = quick_setup();
        let config = setup.judge.clone();
        let pick = |id: &str| {
            scenarios::select(&[id.to_owned()])
                .unwrap_or_default()
                .into_iter()
                .find(|s| s.id == id)
                .unwrap_or_else(|| panic!("no scenario {id}"))
        };
        let oracle_tests = |id: &str| {
            let scenario = pick(id);
            let mut sim = Simulator::new(scenario.workload.clone(), scenario.effect, 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let bounds = scenario.workload.bucket_bounds.clone();
            let plan = Plan::new(&config, &history(&mut sim, &setup, &bounds), None, None)
                .unwrap_or_else(|e| panic!("{e}"));
            baselines::oracle_for(&sim, scenario.is_regression(), &plan, &config, 0.05)
        };
        let err = format!("{:?}", oracle_tests("err-2x-0.5%"));
        assert!(
            err.contains("events: Errors, null: 1.1, truth: 2.0"),
            "{err}"
        );
        assert!(err.contains("alpha: 0.005"), "{err}");
        assert!(!err.contains("Slower"), "{err}");
        let lat = format!("{:?}", oracle_tests("lat-p95-1.2x-below-b"));
        assert!(lat.contains("Slower") && !lat.contains("Errors"), "{lat}");
        // A/A: the promotion null on errors and on every promotion boundary, at α.
        let aa = format!("{:?}", oracle_tests("aa-steady"));
        let limit = format!(
            "events: Errors, null: {}, truth: 1.0",
            1.0 + config.promotion_margin
        );
        assert!(aa.contains(&limit), "{aa}");
        assert!(aa.contains("Slower(0)") && aa.contains("Slower(1)"), "{aa}");
        assert!(
            !aa.contains("Slower(2)"),
            "the tail boundary is not for promotion: {aa}"
        );
        assert!(aa.contains("alpha: 0.01"), "{aa}");
    }

    #[test]
    fn refuses_bad_flags() {
        let args = EvaluateArgs {
            runs: 0,
            seed: 1,
            scenario: vec![],
            markdown: false,
            json: false,
            looks: 30,
            threads: None,
            alpha: None,
            error_margin: None,
            latency_margin: None,
            promotion_margin: None,
            min_canary_requests: None,
            dispersion: None,
        };
        assert!(run(&args).is_err());
        let bad_alpha = EvaluateArgs {
            runs: 1,
            alpha: Some(2.0),
            ..args.clone()
        };
        assert!(run(&bad_alpha).is_err());
        let unknown = EvaluateArgs {
            runs: 1,
            scenario: vec!["no-such".into()],
            ..args
        };
        assert!(run(&unknown).is_err());
    }
}
