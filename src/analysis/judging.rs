//! Everything the analysis asks of the judge, in one place: rebuilding it from the
//! stored looks, turning SLI counts into the judge's looks, choosing the latency
//! boundary, and what is stored of its evidence. The judge's API may change; the rest of
//! the service sees only these functions and [`Judgement`].

use serde::Serialize;

use super::Refusal;
use crate::domain::AnalysisSettings;
use crate::judge::{latency, ArmLook, Assessment, Evidence, Judge, Look};
use crate::sli::{ArmCounts, ArmPair};
use crate::store::{ArmTally, LookRow};

pub(super) use crate::judge::Verdict;

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

    /// The evidence as stored with a decision (JSON).
    pub(super) fn evidence(&self) -> Option<String> {
        serde_json::to_string(&self.0.evidence).ok()
    }

    /// The evidence as stored with a look: the judge's plus figures for people.
    pub(super) fn look_evidence(
        &self,
        settings: &AnalysisSettings,
        window: &ArmPair,
    ) -> Result<String, Refusal> {
        serde_json::to_string(&LookEvidence {
            judge: &self.0.evidence,
            boundary_ms: settings.boundary_s.map(|b| b * 1000.0),
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
    /// b*, milliseconds.
    boundary_ms: Option<f64>,
    /// Interpolated p95 of this look's window, milliseconds: for people, never for decisions.
    canary_p95_ms: Option<f64>,
    primary_p95_ms: Option<f64>,
}

/// Rebuilds the judge from stored looks, then shows it `next` when given, and asks for
/// its judgement. Deterministic: the same looks give the same judgement on any replica.
pub(super) fn judge(
    settings: &AnalysisSettings,
    looks: &[LookRow],
    next: Option<(ArmTally, ArmTally)>,
) -> Result<Judgement, Refusal> {
    let mut judge = Judge::new(settings.canary.judge.clone())
        .map_err(|e| Refusal::bad_request(format!("settings: {e}")))?;
    let stored = looks.iter().map(|row| (row.look.canary, row.look.primary));
    for (canary, primary) in stored.chain(next) {
        judge.observe(&Look {
            canary: arm(&canary),
            primary: arm(&primary),
        });
    }
    Ok(Judgement(judge.assess()))
}

/// Both arms of a window as the judge counts them: whole requests, errors at most the
/// requests, slow requests above the analysis' boundaries (the SLO one for the canary).
pub(super) fn tallies(settings: &AnalysisSettings, window: &ArmPair) -> (ArmTally, ArmTally) {
    (
        tally(&window.canary, settings.boundary_s, settings.slo_boundary_s),
        tally(&window.primary, settings.boundary_s, None),
    )
}

/// The latency boundary b* from the primary's look-back: its p95.
pub(super) fn boundary_from(lookback: &ArmCounts) -> Option<f64> {
    latency::choose_boundary(&lookback.buckets, 0.95)
}

fn arm(tally: &ArmTally) -> ArmLook {
    ArmLook {
        requests: tally.requests,
        errors: tally.errors,
        slow: tally.slow,
        slo_slow: tally.slo_slow,
    }
}

fn tally(counts: &ArmCounts, boundary: Option<f64>, slo_boundary: Option<f64>) -> ArmTally {
    let requests = whole(counts.requests);
    let above = |b: Option<f64>| {
        b.map(|b| latency::count_above(&counts.buckets, b).min(requests))
            .unwrap_or(0)
    };
    ArmTally {
        requests,
        errors: whole(counts.errors).min(requests),
        slow: above(boundary),
        slo_slow: above(slo_boundary),
    }
}

/// Rounds an extrapolated Prometheus count to a whole number of events.
fn whole(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

fn p95_ms(counts: &ArmCounts) -> Option<f64> {
    latency::quantile_estimate(&counts.buckets, 0.95).map(|s| s * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolated_counts_become_whole_and_bounded() {
        assert_eq!(whole(2.5000001), 3);
        assert_eq!(whole(-0.3), 0);
        assert_eq!(whole(f64::NAN), 0);
        let counts = ArmCounts {
            requests: 99.6,
            errors: 120.0,
            buckets: vec![],
        };
        let look = tally(&counts, None, None);
        assert_eq!(look.requests, 100);
        assert_eq!(look.errors, 100, "errors never exceed requests");
        assert_eq!(look.slow, 0, "no boundary, no slow requests");
    }
}
