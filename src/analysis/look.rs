//! The rollout hook: take one look, judge, record, answer.

use axum::http::StatusCode;
use serde::Serialize;

use super::{last_window_end, replay, stored_settings, Analyst, Answer, HookCall, Refusal, Reply};
use crate::domain::now_millis;
use crate::grafana::Outcome;
use crate::judge::{latency, ArmLook, Assessment, Evidence, Look, Verdict};
use crate::sli::{ArmCounts, ArmPair};
use crate::store::{
    AnalysisStatus, LookInsert, LookRow, NewAnnotation, NewDecision, NewLook, StatusChange,
};

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

/// Rounds an extrapolated Prometheus count to a whole number of events.
fn whole(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

fn arm_look(counts: &ArmCounts, boundary: Option<f64>, slo_boundary: Option<f64>) -> ArmLook {
    let requests = whole(counts.requests);
    let above = |b: Option<f64>| {
        b.map(|b| latency::count_above(&counts.buckets, b).min(requests))
            .unwrap_or(0)
    };
    ArmLook {
        requests,
        errors: whole(counts.errors).min(requests),
        slow: above(boundary),
        slo_slow: above(slo_boundary),
    }
}

fn p95_ms(counts: &ArmCounts) -> Option<f64> {
    latency::quantile_estimate(&counts.buckets, 0.95).map(|s| s * 1000.0)
}

fn status_of(verdict: Verdict) -> (StatusCode, &'static str) {
    match verdict {
        Verdict::Fail => (StatusCode::UNPROCESSABLE_ENTITY, "fail"),
        Verdict::Pass => (StatusCode::OK, "pass"),
        Verdict::Wait => (StatusCode::OK, "wait"),
    }
}

impl Analyst {
    /// `rollout`: 200 while there is no evidence of regression, 422 with the reason once
    /// one is established (and on every later call for the revision), 424 when the SLIs
    /// cannot be read (no look is recorded then).
    pub(super) async fn rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let (analysis, created) = self.find_or_open(call).await?;
        let stored = stored_settings(&analysis)?;
        // The call that opened the analysis annotates its start, whatever it answers.
        let started: Vec<NewAnnotation> = created
            .then(|| {
                self.milestone(
                    Outcome::Started,
                    call,
                    analysis.id,
                    "",
                    analysis.started_at,
                    None,
                )
            })
            .flatten()
            .into_iter()
            .collect();
        if analysis.status == AnalysisStatus::Failed {
            let reason = super::failure_reason(&analysis).to_owned();
            return self
                .answer(
                    call,
                    Reply::new(
                        Some(analysis.id),
                        "fail",
                        StatusCode::UNPROCESSABLE_ENTITY,
                        reason,
                    ),
                    None,
                )
                .await;
        }
        if analysis.status != AnalysisStatus::Running {
            let reason = format!(
                "analysis already ended ({}); no new look taken",
                analysis.status.as_str()
            );
            return self
                .answer(
                    call,
                    Reply::new(Some(analysis.id), "ok", StatusCode::OK, reason),
                    None,
                )
                .await;
        }

        let looks = self.store.looks(analysis.id).await?;
        let start = last_window_end(&analysis, &looks);
        let now = now_millis();
        let gap = i64::try_from(self.config.defaults.min_look_gap.as_millis()).unwrap_or(i64::MAX);
        if now - start < gap {
            // A retry or a duplicate: answer from what is stored, take no new look.
            return self
                .replay_answer(call, &analysis, &stored, &looks, started)
                .await;
        }

        let target = self.sli_target(&stored, call)?;
        let pair: ArmPair = self.sli.window(&target, start, now).await?;
        let look = Look {
            canary: arm_look(&pair.canary, stored.boundary_s, stored.slo_boundary_s),
            primary: arm_look(&pair.primary, stored.boundary_s, None),
        };
        let (mut judge, _) = replay(&stored, &looks)?;
        judge.observe(&look);
        let assessment = judge.assess();
        let evidence = serde_json::to_string(&LookEvidence {
            judge: &assessment.evidence,
            boundary_ms: stored.boundary_s.map(|b| b * 1000.0),
            canary_p95_ms: p95_ms(&pair.canary),
            primary_p95_ms: p95_ms(&pair.primary),
        })
        .map_err(|e| Refusal::dependency(format!("could not encode evidence: {e}")))?;

        let (status, verdict) = status_of(assessment.verdict);
        let new_look = NewLook {
            analysis_id: analysis.id,
            seq: i64::try_from(looks.len()).unwrap_or(i64::MAX) + 1,
            window_start: start,
            window_end: now,
            canary: look.canary,
            primary: look.primary,
            verdict: verdict.to_owned(),
            reason: assessment.reason.clone(),
            evidence: evidence.clone(),
        };
        let change = (assessment.verdict == Verdict::Fail).then(|| StatusChange {
            status: AnalysisStatus::Failed,
            reason: assessment.reason.clone(),
            at: now,
        });
        // The look that fails the analysis is the one regression annotation: the status
        // change and the look are written together, so only one look ever carries it.
        let regression = change.as_ref().and_then(|c| {
            self.milestone(Outcome::Regression, call, analysis.id, &c.reason, now, None)
        });
        let decision = NewDecision {
            annotations: started.iter().cloned().chain(regression).collect(),
            ..self.decision(
                call,
                Some(analysis.id),
                verdict,
                status,
                &assessment.reason,
                Some(evidence),
            )
        };
        let inserted = self
            .store
            .record_look(&new_look, &decision, change.as_ref())
            .await
            .inspect_err(|_| self.metrics.store_error("record_look"))?;
        match inserted {
            LookInsert::Inserted(_) => {
                for (arm, counts) in [("canary", &look.canary), ("primary", &look.primary)] {
                    self.metrics.look_recorded(
                        call.key.namespace.as_str(),
                        call.key.name.as_str(),
                        arm,
                        counts.requests,
                        counts.errors,
                        counts.slow,
                    );
                }
                Ok(Answer {
                    status,
                    verdict,
                    reason: assessment.reason,
                })
            }
            // Another replica or a concurrent duplicate took this look first: answer as it did.
            LookInsert::Exists(winner) => self.answer_from_look(call, &winner, started).await,
        }
    }

    /// Answers a repeated call from the last stored look.
    async fn replay_answer(
        &self,
        call: &HookCall,
        analysis: &crate::store::Analysis,
        stored: &super::StoredSettings,
        looks: &[LookRow],
        annotations: Vec<NewAnnotation>,
    ) -> Result<Answer, Refusal> {
        match looks.last() {
            Some(last) => self.answer_from_look(call, last, annotations).await,
            None => {
                let (_, assessment): (_, Assessment) = replay(stored, looks)?;
                let reason = format!(
                    "no look yet (the first one is taken at least {} after the analysis opened); {}",
                    humantime::format_duration(self.config.defaults.min_look_gap),
                    assessment.reason
                );
                self.answer(
                    call,
                    Reply::new(Some(analysis.id), "wait", StatusCode::OK, reason)
                        .with_annotations(annotations),
                    None,
                )
                .await
            }
        }
    }

    async fn answer_from_look(
        &self,
        call: &HookCall,
        look: &LookRow,
        annotations: Vec<NewAnnotation>,
    ) -> Result<Answer, Refusal> {
        let (status, verdict) = match look.look.verdict.as_str() {
            "fail" => (StatusCode::UNPROCESSABLE_ENTITY, "fail"),
            "pass" => (StatusCode::OK, "pass"),
            _ => (StatusCode::OK, "wait"),
        };
        self.answer(
            call,
            Reply::new(
                Some(look.look.analysis_id),
                verdict,
                status,
                look.look.reason.clone(),
            )
            .with_evidence(Some(look.look.evidence.clone()))
            .with_annotations(annotations),
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::latency::Bucket;

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
        let look = arm_look(&counts, None, None);
        assert_eq!(look.requests, 100);
        assert_eq!(look.errors, 100, "errors never exceed requests");
        assert_eq!(look.slow, 0, "no boundary, no slow requests");
        let _ = Bucket {
            le: 1.0,
            count: 1.0,
        };
    }
}
