//! Backtesting a window of Prometheus history verdict never analysed (`verdict backtest
//! --namespace NS --target NAME --from T1 --to T2 --interval 1m`): the analysis is opened
//! at the window's start as the hooks open one ([`Analyst::open_at`]: the plan from the
//! primary's history, the baseline counters), both arms' counters are read at each look
//! time through [`crate::sli::SliSource::counters`] and differenced by
//! [`crate::sli::Counters::since`], as the rollout hook does, and the judge of
//! [`judging`] gives each look's verdict. A look time without data (a gap, a missing
//! series, no newer scrape) is reported and takes no look, as a live call would. Nothing
//! is written.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::backtest::spelling;
use super::backtest_history::check_configurations;
use super::backtest_outcome::{outcome, Outcome};
use super::judging::{self, NextLook};
use super::opening::sli_target_in;
use super::settings::{apply_judge_keys, resolve};
use super::{Analyst, Refusal, ServiceError};
use crate::domain::{AnalysisSettings, CanaryName, Millis, Namespace};
use crate::sli::{ArmPair, Counters, Increments, SliError};

/// The largest `max_looks` a caller may ask for.
pub const MAX_WINDOW_LOOKS: u32 = 2_000;

/// The shortest interval between looks.
pub const MIN_WINDOW_INTERVAL: Duration = Duration::from_secs(1);

/// Which window to backtest, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowQuery {
    /// The canary's namespace.
    pub namespace: Namespace,
    /// The canary's target workload; the primary is `<target>-primary`.
    pub target: CanaryName,
    /// The window: the analysis opens at `from`, looks follow every `interval` up to `to`.
    pub from: Millis,
    /// The window's end.
    pub to: Millis,
    /// The time between looks.
    pub interval: Duration,
    /// Refuse windows with more looks than this.
    pub max_looks: u32,
    /// The analysis' settings as a webhook's metadata (`template`, `alpha`, `var.x`, …).
    pub metadata: HashMap<String, String>,
    /// Judge settings changed over `metadata`, one run each; none: one run as given.
    pub configurations: Vec<HashMap<String, String>>,
    /// Store the run as a backtest analysis (one configuration only).
    pub record: bool,
}

/// Counts of one arm in one look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmFigures {
    /// Requests in the look's window.
    pub requests: u64,
    /// Failed requests in the look's window.
    pub errors: u64,
    /// Interpolated p95 of the look's window, milliseconds (for people).
    pub p95_ms: Option<f64>,
}

/// One look time of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowLook {
    /// When the look reads the counters.
    pub at: Millis,
    /// The look's number when one is taken (looks without data are not numbered, as live).
    pub seq: Option<i64>,
    /// The canary's counts, when a look was taken.
    pub canary: Option<ArmFigures>,
    /// The primary's counts, when a look was taken.
    pub primary: Option<ArmFigures>,
    /// `pass`, `fail` or `wait`; `None` when no look was taken.
    pub verdict: Option<String>,
    /// The judge's reason, or why no look was taken.
    pub reason: String,
}

/// One configuration's run over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRun {
    /// The judge settings changed over the request's, as given.
    pub changed: BTreeMap<String, String>,
    /// Every look time up to the decision (a failing look ends the analysis).
    pub looks: Vec<WindowLook>,
    /// Rolled back, promoted or undecided, and at which look.
    pub outcome: Outcome,
    /// The judge's evidence after the last look taken (JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

/// A window backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowBacktest {
    /// The canary's namespace.
    pub namespace: String,
    /// The target workload.
    pub target: String,
    /// The SLI template read.
    pub template: String,
    /// The window's start, where the analysis opened.
    pub from: Millis,
    /// The window's end.
    pub to: Millis,
    /// The time between looks.
    pub interval_ms: u64,
    /// The look times in the window.
    pub look_times: usize,
    /// What the plan fixed at the window's start (latency boundaries, dispersion).
    pub plan: String,
    /// One per configuration.
    pub runs: Vec<WindowRun>,
    /// The analysis the run was recorded as, with `record`.
    #[serde(skip)]
    pub recorded: Option<crate::store::Analysis>,
}

/// What Prometheus gave at one look time: the counts since the previous look and the
/// counters read (the next look's baseline), or why no look is taken.
pub(super) enum Reading {
    Counts(ArmPair, Box<Counters>),
    Nothing(String),
}

/// A look taken, as the rollout hook would have stored it.
pub(super) struct TakenLook {
    /// 1, 2, 3, …
    pub seq: i64,
    /// The previous look's time (or the window's start).
    pub window_start: Millis,
    /// The look's time.
    pub at: Millis,
    /// Both arms' tallies as the judge counted them.
    pub look: NextLook,
    /// `pass`, `fail` or `wait`.
    pub verdict: &'static str,
    /// The judge's reason.
    pub reason: String,
    /// The evidence as stored with a look.
    pub evidence: String,
    /// The counters read at the look.
    pub counters: Counters,
}

impl Analyst {
    /// Backtests `query`'s window. Reads Prometheus only; writes nothing.
    pub async fn backtest_window(
        &self,
        query: &WindowQuery,
    ) -> Result<WindowBacktest, ServiceError> {
        let (mut settings, times) = self.window_plan(query)?;
        let target = sli_target_in(&settings, &query.namespace).map_err(service_error)?;
        let baseline = self
            .open_at(&mut settings, &target, query.from)
            .await
            .map_err(|r| {
                service_error(Refusal {
                    reason: format!("at the window's start: {}", r.reason),
                    ..r
                })
            })?;
        let plan = judging::describe(&settings.plan());

        // Prometheus once, at every look time; the configurations share the readings.
        let mut previous = baseline.clone();
        let mut readings = Vec::with_capacity(times.len());
        for &at in &times {
            let reading = match self.sli.counters(&target, at).await {
                Ok(counters) => read(&mut previous, counters),
                Err(e @ (SliError::NoData { .. } | SliError::Query(_))) => {
                    Reading::Nothing(format!("no look: {e}"))
                }
                Err(e) => return Err(service_error(e.into())),
            };
            readings.push((at, reading));
        }

        let configurations = if query.configurations.is_empty() {
            vec![HashMap::new()]
        } else {
            query.configurations.clone()
        };
        let mut runs = Vec::with_capacity(configurations.len());
        let mut first = None;
        for set in &configurations {
            let mut run_settings = settings.clone();
            apply_judge_keys(&mut run_settings.canary.judge, set)
                .map_err(|e| ServiceError::Invalid(e.to_string()))?;
            let (one, taken) = run(&run_settings, query.from, &readings, set)?;
            runs.push(one);
            first.get_or_insert((run_settings, taken));
        }
        let recorded = match (query.record, first, runs.first()) {
            // The recorded analysis keeps the run's settings (its plan included), so a
            // replay of it (`--analysis ID`) judges as this run did.
            (true, Some((kept, taken)), Some(one)) => Some(
                self.record_window(query, kept, &baseline, one, &taken)
                    .await?,
            ),
            _ => None,
        };
        Ok(WindowBacktest {
            namespace: query.namespace.to_string(),
            target: query.target.to_string(),
            template: settings.canary.template.clone(),
            from: query.from,
            to: query.to,
            interval_ms: u64::try_from(query.interval.as_millis()).unwrap_or(u64::MAX),
            look_times: times.len(),
            plan,
            runs,
            recorded,
        })
    }

    /// Checks the query before anything is read: the settings it resolves to and the
    /// look times of its window.
    fn window_plan(
        &self,
        query: &WindowQuery,
    ) -> Result<(AnalysisSettings, Vec<Millis>), ServiceError> {
        let invalid = |m: String| ServiceError::Invalid(m);
        let canary = resolve(&query.target, &query.metadata, &self.config)
            .map_err(|e| invalid(e.to_string()))?;
        check_configurations(&query.configurations, &canary.judge)?;
        if query.record && query.configurations.len() > 1 {
            return Err(invalid(
                "record: a recorded backtest keeps one configuration; give --set, not --compare"
                    .into(),
            ));
        }
        if query.max_looks == 0 || query.max_looks > MAX_WINDOW_LOOKS {
            return Err(invalid(format!(
                "max_looks: {} is outside 1–{MAX_WINDOW_LOOKS}",
                query.max_looks
            )));
        }
        if query.interval < MIN_WINDOW_INTERVAL {
            return Err(invalid(format!(
                "interval: {} is shorter than {}",
                humantime::format_duration(query.interval),
                humantime::format_duration(MIN_WINDOW_INTERVAL)
            )));
        }
        let now = crate::domain::now_millis();
        if query.to <= query.from {
            return Err(invalid(
                "the window ends before it starts (to ≤ from)".into(),
            ));
        }
        if query.to > now {
            return Err(invalid(
                "the window ends in the future; backtest history that Prometheus holds".into(),
            ));
        }
        let step = i64::try_from(query.interval.as_millis()).unwrap_or(i64::MAX);
        let count = (query.to - query.from) / step;
        if count == 0 {
            return Err(invalid(format!(
                "the window is shorter than one interval ({})",
                humantime::format_duration(query.interval)
            )));
        }
        if count > i64::from(query.max_looks) {
            return Err(invalid(format!(
                "the window holds {count} looks of {}; at most {} (raise --max-looks, up to {MAX_WINDOW_LOOKS}, or give a longer --interval or a shorter window)",
                humantime::format_duration(query.interval),
                query.max_looks
            )));
        }
        let times = (1..=count).map(|k| query.from + k * step).collect();
        let settings = AnalysisSettings {
            slo_boundary_s: canary.slo_p95_s,
            canary,
            plan: None,
            boundary_s: None,
        };
        Ok((settings, times))
    }
}

/// The counts since the previous reading, as the rollout hook takes them; the reading
/// becomes the next look's baseline only when it makes a look.
fn read(previous: &mut Counters, counters: Counters) -> Reading {
    match counters.since(previous) {
        Increments::Counts(window) => {
            *previous = counters.clone();
            Reading::Counts(window, Box::new(counters))
        }
        Increments::NoNewSample { arm, sampled_at } => Reading::Nothing(format!(
            "no look: Prometheus has no sample of the {arm} newer than at the previous look (last scraped at {})",
            super::look::clock_time(sampled_at)
        )),
    }
}

/// One configuration over the readings: the judge after each look, until a look fails;
/// and the looks taken, as the rollout hook would have stored them.
fn run(
    settings: &AnalysisSettings,
    started_at: Millis,
    readings: &[(Millis, Reading)],
    set: &HashMap<String, String>,
) -> Result<(WindowRun, Vec<TakenLook>), ServiceError> {
    // The looks taken, with both arms' tallies as the judge counts them.
    let next: Vec<NextLook> = readings
        .iter()
        .filter_map(|(at, reading)| match reading {
            Reading::Counts(window, _) => {
                let (canary, primary) = judging::tallies(settings, window);
                Some(NextLook {
                    canary,
                    primary,
                    window_end: *at,
                })
            }
            Reading::Nothing(_) => None,
        })
        .collect();
    let judgements = judging::judge_each(
        settings,
        started_at,
        next.iter().map(|n| (&n.canary, &n.primary, n.window_end)),
    )
    .map_err(service_error)?;
    let figures = |t: &crate::store::ArmTally, counts: &crate::sli::ArmCounts| ArmFigures {
        requests: t.requests,
        errors: t.errors,
        p95_ms: judging::p95_ms(counts),
    };
    let mut looks = Vec::with_capacity(readings.len());
    let mut taken = Vec::new();
    let mut judged = next.into_iter().zip(&judgements);
    let mut last = None;
    let mut window_start = started_at;
    for (at, reading) in readings {
        let (window, counters, (look, judgement)) = match reading {
            Reading::Counts(window, counters) => match judged.next() {
                Some(next) => (window, counters, next),
                None => break,
            },
            Reading::Nothing(why) => {
                looks.push(WindowLook {
                    at: *at,
                    seq: None,
                    canary: None,
                    primary: None,
                    verdict: None,
                    reason: why.clone(),
                });
                continue;
            }
        };
        let verdict = spelling(judgement.verdict());
        let seq = i64::try_from(taken.len()).unwrap_or(i64::MAX) + 1;
        looks.push(WindowLook {
            at: *at,
            seq: Some(seq),
            canary: Some(figures(&look.canary, &window.canary)),
            primary: Some(figures(&look.primary, &window.primary)),
            verdict: Some(verdict.to_owned()),
            reason: judgement.reason().to_owned(),
        });
        taken.push(TakenLook {
            seq,
            window_start,
            at: *at,
            verdict,
            reason: judgement.reason().to_owned(),
            evidence: judgement.look_evidence(window).map_err(service_error)?,
            counters: (**counters).clone(),
            look,
        });
        window_start = *at;
        last = Some(judgement);
        // A failing look ends the analysis: the rollout hook answers 422 from then on.
        if verdict == "fail" {
            break;
        }
    }
    let outcome = outcome(
        looks
            .iter()
            .filter_map(|l| Some((l.seq?, l.verdict.as_deref()?))),
    );
    let run = WindowRun {
        changed: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        looks,
        outcome,
        evidence: last
            .and_then(|j| j.evidence())
            .and_then(|e| serde_json::from_str(&e).ok()),
    };
    Ok((run, taken))
}

/// A hook's refusal as the API's error: a wrong request is invalid, a source that
/// failed is a failed dependency.
pub(super) fn service_error(r: Refusal) -> ServiceError {
    if (400..424).contains(&r.status.as_u16()) {
        ServiceError::Invalid(r.reason)
    } else {
        ServiceError::Dependency(r.reason)
    }
}
