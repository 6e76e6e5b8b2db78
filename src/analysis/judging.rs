//! Everything the analysis asks of the judge, in one place: the plan from the primary's
//! history, rebuilding the judge from the stored looks, turning SLI counts into the
//! judge's looks, and what is stored of its evidence. The rest of the service sees only
//! these functions and [`Judgement`].

use serde::Serialize;

use super::Refusal;
use crate::domain::{AnalysisSettings, CanarySettings, Millis};
use crate::judge::{
    latency, ArmLook, Assessment, Evidence, HistoryInterval, Judge, Look, Plan, PlanError,
};
use crate::sli::{ArmCounts, ArmPair};
use crate::store::{ArmTally, LookRow};

pub(super) use crate::judge::Verdict;
use crate::webhook::Outcome;

/// How a judge's verdict is answered and recorded.
pub(super) fn outcome_of(verdict: Verdict) -> Outcome {
    match verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
        Verdict::Wait => Outcome::Wait,
    }
}

/// What the judge concludes after an analysis' looks.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Judgement(Assessment);

impl Judgement {
    /// Pass, fail or wait.
    pub(super) fn verdict(&self) -> Verdict {
        self.0.verdict
    }

    /// One sentence with the numbers behind the verdict.
    pub(super) fn reason(&self) -> &str {
        &self.0.reason
    }

    /// The budget ran out without a decision and the analysis holds for a person
    /// (`onInconclusive: hold`).
    pub(super) fn held_for_a_person(&self) -> bool {
        let budget = &self.0.evidence.budget;
        self.0.verdict == Verdict::Wait && budget.exhausted
    }

    /// The evidence as stored with a decision (JSON).
    pub(super) fn evidence(&self) -> Option<String> {
        serde_json::to_string(&self.0.evidence).ok()
    }

    /// The evidence as stored with a look: the judge's plus figures for people.
    pub(super) fn look_evidence(&self, window: &ArmPair) -> Result<String, Refusal> {
        serde_json::to_string(&LookEvidence {
            judge: &self.0.evidence,
            canary_p95_ms: p95_ms(&window.canary),
            primary_p95_ms: p95_ms(&window.primary),
        })
        .map_err(|e| Refusal::dependency(format!("could not encode evidence: {e}")))
    }
}

/// What is stored with each look: the judge's evidence plus figures for people.
#[derive(Debug, Serialize)]
struct LookEvidence<'a> {
    judge: &'a Evidence,
    /// Interpolated p95 of this look's window, milliseconds: for people, never for decisions.
    canary_p95_ms: Option<f64>,
    primary_p95_ms: Option<f64>,
}

/// The next look to show the judge: both arms' counts and when its window ended.
#[derive(Debug, Clone)]
pub(super) struct NextLook {
    pub canary: ArmTally,
    pub primary: ArmTally,
    pub window_end: Millis,
}

/// Rebuilds the judge from stored looks, then shows it `next` when given, and asks for
/// its judgement. Deterministic: the same looks give the same judgement on any replica.
pub(super) fn judge(
    settings: &AnalysisSettings,
    started_at: Millis,
    looks: &[LookRow],
    next: Option<&NextLook>,
) -> Result<Judgement, Refusal> {
    let stored = looks
        .iter()
        .map(|row| (&row.look.canary, &row.look.primary, row.look.window_end));
    let next = next.map(|n| (&n.canary, &n.primary, n.window_end));
    judge_tallies(settings, started_at, stored.chain(next))
}

/// The judgement after each of `looks` in turn, as [`judge`] would give it after the
/// looks up to that one (a backtest): one judge shown the looks one by one, asked after
/// each. Each look is its tallies and the end of its window.
pub(super) fn judge_each<'a>(
    settings: &AnalysisSettings,
    started_at: Millis,
    looks: impl IntoIterator<Item = (&'a ArmTally, &'a ArmTally, Millis)>,
) -> Result<Vec<Judgement>, Refusal> {
    let mut judge = Judge::new(settings.canary.judge.clone(), settings.plan())
        .map_err(|e| Refusal::bad_request(format!("settings: {e}")))?;
    Ok(looks
        .into_iter()
        .map(|(canary, primary, window_end)| {
            judge.observe(&look(started_at, canary, primary, window_end));
            Judgement(judge.assess())
        })
        .collect())
}

fn judge_tallies<'a>(
    settings: &AnalysisSettings,
    started_at: Millis,
    looks: impl Iterator<Item = (&'a ArmTally, &'a ArmTally, Millis)>,
) -> Result<Judgement, Refusal> {
    let mut judge = Judge::new(settings.canary.judge.clone(), settings.plan())
        .map_err(|e| Refusal::bad_request(format!("settings: {e}")))?;
    for (canary, primary, window_end) in looks {
        judge.observe(&look(started_at, canary, primary, window_end));
    }
    Ok(Judgement(judge.assess()))
}

/// One look as the judge takes it; its time from the analysis' start is for the budget.
fn look(started_at: Millis, canary: &ArmTally, primary: &ArmTally, window_end: Millis) -> Look {
    Look {
        canary: arm(canary),
        primary: arm(primary),
        elapsed_ms: u64::try_from(window_end.saturating_sub(started_at)).unwrap_or(0),
    }
}

/// Both arms of a window as the judge counts them: whole requests, errors at most the
/// requests, and the requests slower than each edge of the analysis' plan.
pub(super) fn tallies(settings: &AnalysisSettings, window: &ArmPair) -> (ArmTally, ArmTally) {
    let plan = settings.plan();
    (tally(&window.canary, &plan), tally(&window.primary, &plan))
}

/// The requests of one arm slower than each latency boundary the analysis tests (its
/// plan's boundaries, then the SLO latency's edge when it is another one), as
/// (boundary in seconds, count): what the look metrics export per boundary.
pub(super) fn slower_than_boundaries(
    settings: &AnalysisSettings,
    tally: &ArmTally,
) -> Vec<(f64, u64)> {
    let plan = settings.plan();
    let mut edges: Vec<usize> = plan.boundaries.iter().map(|b| b.edge).collect();
    edges.extend(plan.slo_edge);
    edges.sort_unstable();
    edges.dedup();
    edges
        .into_iter()
        .filter_map(|e| Some((*plan.edges.get(e)?, *tally.slower.get(e)?)))
        .collect()
}

/// The plan of a new analysis from the primary's per-interval history: its latency
/// boundaries and dispersion (docs/statistics.md §2, §5). A latency the canary asked for
/// that no bucket reaches is refused.
pub(super) fn plan_from(canary: &CanarySettings, history: &[ArmCounts]) -> Result<Plan, PlanError> {
    let history: Vec<HistoryInterval> = history
        .iter()
        .map(|c| HistoryInterval {
            requests: c.requests,
            errors: c.errors,
            buckets: c.buckets.clone(),
        })
        .collect();
    Plan::new(
        &canary.judge,
        &history,
        canary.latency_threshold_s,
        canary.slo_p95_s,
    )
}

/// One line on what a plan fixed, for the pre-rollout answer.
pub(super) fn describe(plan: &Plan) -> String {
    let boundaries: Vec<String> = plan
        .boundaries
        .iter()
        .map(|b| {
            let share = b.primary_fraction.map_or(String::new(), |f| {
                format!(" ({:.1}% of the primary)", f * 100.0)
            });
            let role = if b.promotion { "" } else { ", fail only" };
            format!("{:.0} ms{share}{role}", b.le_s * 1000.0)
        })
        .collect();
    let latency = if boundaries.is_empty() {
        "none (no latency histogram)".to_owned()
    } else {
        boundaries.join(", ")
    };
    let source = match plan.dispersion_source {
        crate::judge::plan::DispersionSource::Configured => "configured".to_owned(),
        crate::judge::plan::DispersionSource::Measured { intervals } => {
            format!("measured on {intervals} intervals of the primary")
        }
        crate::judge::plan::DispersionSource::Unmeasured { intervals } => {
            format!("default: only {intervals} intervals of history")
        }
    };
    format!(
        "latency boundaries {latency}; dispersion errors {:.2} ({source})",
        plan.error_dispersion
    )
}

fn arm(tally: &ArmTally) -> ArmLook {
    ArmLook {
        requests: tally.requests,
        errors: tally.errors,
        slower: tally.slower.clone(),
    }
}

fn tally(counts: &ArmCounts, plan: &Plan) -> ArmTally {
    let requests = whole(counts.requests);
    ArmTally {
        requests,
        errors: whole(counts.errors).min(requests),
        slower: plan
            .slower(&counts.buckets)
            .into_iter()
            .map(|s| s.min(requests))
            .collect(),
    }
}

/// A count as a whole number of events. Counts are differences of counters, so whole
/// already; a counter an exporter keeps as a float is rounded.
fn whole(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

pub(super) fn p95_ms(counts: &ArmCounts) -> Option<f64> {
    latency::quantile_estimate(&counts.buckets, 0.95).map(|s| s * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default settings of canary `podinfo`, with `plan`.
    fn default_settings(plan: Plan) -> AnalysisSettings {
        AnalysisSettings {
            canary: crate::analysis::settings::resolve(
                &crate::domain::CanaryName::parse("podinfo").expect("name"),
                &Default::default(),
                &crate::config::Config::default(),
            )
            .expect("defaults"),
            plan: Some(plan),
            boundary_s: None,
            slo_boundary_s: None,
        }
    }

    #[test]
    fn counts_become_whole_and_bounded() {
        assert_eq!(whole(2.5000001), 3);
        assert_eq!(whole(-0.3), 0);
        assert_eq!(whole(f64::NAN), 0);
        let counts = ArmCounts {
            requests: 99.6,
            errors: 120.0,
            buckets: vec![],
        };
        let look = tally(&counts, &Plan::fixed(vec![0.1], &[(0, true)], 0.1));
        assert_eq!(look.requests, 100);
        assert_eq!(look.errors, 100, "errors never exceed requests");
        assert_eq!(look.slower, vec![0], "no buckets, no slow requests");
    }

    #[test]
    fn slower_counts_are_given_per_tested_boundary() {
        let mut plan = Plan::fixed(vec![0.05, 0.1, 0.25, 0.5], &[(1, true), (2, false)], 0.3);
        plan.slo_edge = Some(3);
        let settings = default_settings(plan);
        let tally = ArmTally {
            requests: 100,
            errors: 1,
            slower: vec![40, 20, 5, 1],
        };
        assert_eq!(
            slower_than_boundaries(&settings, &tally),
            vec![(0.1, 20), (0.25, 5), (0.5, 1)]
        );
        // A look stored before plans has no per-edge counts: nothing to export.
        let old = ArmTally {
            slower: vec![],
            ..tally
        };
        assert!(slower_than_boundaries(&settings, &old).is_empty());
    }

    #[test]
    fn judging_each_look_in_turn_equals_rebuilding_the_judge_for_each() {
        let settings = default_settings(Plan::fixed(vec![0.1, 0.25], &[(0, true)], 0.3));
        let tally = |requests, errors, slow| ArmTally {
            requests,
            errors,
            slower: vec![slow, slow / 2],
        };
        let looks: Vec<(ArmTally, ArmTally, Millis)> = (1..=12)
            .map(|k| {
                (
                    tally(400, 8 * k, 30),
                    tally(400, 10, 30),
                    k as Millis * 60_000,
                )
            })
            .collect();
        let each =
            judge_each(&settings, 0, looks.iter().map(|(c, p, t)| (c, p, *t))).expect("judged");
        assert_eq!(each.len(), looks.len());
        for (end, judgement) in each.iter().enumerate() {
            let rebuilt = judge_tallies(
                &settings,
                0,
                looks[..=end].iter().map(|(c, p, t)| (c, p, *t)),
            )
            .expect("judged");
            assert_eq!(*judgement, rebuilt, "after look {}", end + 1);
        }
        assert!(
            each.iter().any(|j| j.verdict() == Verdict::Fail),
            "rising canary errors never failed"
        );
    }

    #[test]
    fn the_plan_is_described_in_one_line() {
        let plan = Plan::fixed(vec![0.05, 0.1, 0.25], &[(1, true), (2, false)], 0.3);
        assert_eq!(
            describe(&plan),
            "latency boundaries 100 ms, 250 ms, fail only; dispersion errors 0.30 (configured)"
        );
    }
}
