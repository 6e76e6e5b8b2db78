//! The hooks other than `rollout`: gates on promotion, traffic increase and rollback,
//! the opening and closing of an analysis.

use axum::http::StatusCode;

use super::gates;
use super::settings::CanarySettings;
use super::{failure_reason, replay, stored_settings, Analyst, Answer, HookCall, Refusal, Reply};
use crate::domain::now_millis;
use crate::grafana::Outcome;
use crate::judge::Verdict;
use crate::store::{AnalysisStatus, GateKind, StatusChange};

/// The webhook types of Flagger that verdict serves, by URL path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    ConfirmRollout,
    PreRollout,
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    Rollback,
    PostRollout,
    Event,
    LoadTest,
}

impl Hook {
    pub const ALL: [Hook; 9] = [
        Hook::ConfirmRollout,
        Hook::PreRollout,
        Hook::Rollout,
        Hook::ConfirmTrafficIncrease,
        Hook::ConfirmPromotion,
        Hook::Rollback,
        Hook::PostRollout,
        Hook::Event,
        Hook::LoadTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::ConfirmRollout => "confirm-rollout",
            Hook::PreRollout => "pre-rollout",
            Hook::Rollout => "rollout",
            Hook::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Hook::ConfirmPromotion => "confirm-promotion",
            Hook::Rollback => "rollback",
            Hook::PostRollout => "post-rollout",
            Hook::Event => "event",
            Hook::LoadTest => "load-test",
        }
    }

    pub fn parse(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Hooks that belong to one revision and so need its checksum.
    pub fn needs_checksum(self) -> bool {
        !matches!(self, Hook::ConfirmRollout | Hook::Event | Hook::LoadTest)
    }
}

impl Analyst {
    /// `confirm-rollout`: the rollout gate. Open unless a release manager held it, or
    /// the canary asked for `gate: manual` and nobody opened it for this revision. The
    /// checksum Flagger sends here may still be the previous revision's, so no analysis
    /// is touched.
    pub(super) async fn confirm_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let settings = self.resolve_settings(call)?;
        let (ns, name) = (call.key.namespace.as_str(), call.key.name.as_str());
        let rows = self.store.gates(ns, name).await?;
        let latest = self.store.latest_analysis(ns, name).await?;
        let manual = self.manual_gates(call, &settings).await?;
        let gate = gates::rollout_gate(
            gates::row_of(&rows, GateKind::Rollout),
            manual,
            latest.as_ref(),
        );
        let reply = if gate.is_open() {
            Reply::new(None, "ok", StatusCode::OK, "rollout gate open".into())
        } else {
            Reply::new(
                None,
                "wait",
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "{}; open it with `verdict gate approve {ns}/{name} --gate rollout`",
                    gate.held_because()
                ),
            )
        };
        self.answer(call, reply, None).await
    }

    /// Whether the canary's gates are manual: the call's `gate` key when it has one
    /// (recorded, so the other hooks and the API agree), otherwise what a call last
    /// recorded. Each Flagger webhook carries its own metadata, so the key may be on
    /// some of verdict's hooks only.
    async fn manual_gates(
        &self,
        call: &HookCall,
        settings: &CanarySettings,
    ) -> Result<bool, Refusal> {
        let (ns, name) = (call.key.namespace.as_str(), call.key.name.as_str());
        let stored = self.store.gate_mode(ns, name).await?;
        if !call.metadata.contains_key("gate") {
            return Ok(stored.unwrap_or(false));
        }
        if stored != Some(settings.manual_gates) {
            self.store
                .set_gate_mode(ns, name, settings.manual_gates, now_millis())
                .await?;
        }
        Ok(settings.manual_gates)
    }

    /// `pre-rollout`: preflight and open the analysis. Idempotent.
    pub(super) async fn pre_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        if call.metadata.contains_key("gate") {
            let settings = self.resolve_settings(call)?;
            self.manual_gates(call, &settings).await?;
        }
        let (analysis, created) = self.find_or_open(call).await?;
        let stored = stored_settings(&analysis)?;
        let boundary = stored
            .boundary_s
            .map(|b| format!("{} ms", b * 1000.0))
            .unwrap_or_else(|| "none (no latency histogram)".into());
        let reason = format!(
            "analysis {} {}: template {}, α {}, latency boundary {}",
            analysis.id,
            if created { "opened" } else { "already open" },
            stored.canary.template,
            stored.canary.judge.alpha,
            boundary,
        );
        let started = created
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
            .flatten();
        self.answer(
            call,
            Reply::new(Some(analysis.id), "ok", StatusCode::OK, reason).with_annotations(started),
            None,
        )
        .await
    }

    /// `confirm-promotion`: 200 only with positive evidence that the canary is not worse.
    pub(super) async fn confirm_promotion(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let Some(analysis) = self.existing(call).await? else {
            return self
                .answer(
                    call,
                    Reply::new(
                        None,
                        "wait",
                        StatusCode::PRECONDITION_FAILED,
                        "no analysis for this revision yet: is verdict's rollout hook configured?"
                            .into(),
                    ),
                    None,
                )
                .await;
        };
        if analysis.status == AnalysisStatus::Failed {
            return self
                .refuse_failed(call, &analysis, "will not promote")
                .await;
        }
        let stored = stored_settings(&analysis)?;
        let looks = self.store.looks(analysis.id).await?;
        let (_, assessment) = replay(&stored, analysis.started_at, &looks)?;
        let evidence = serde_json::to_string(&assessment.evidence).ok();
        let settings = self.resolve_settings(call)?;
        let manual = stored.canary.manual_gates || self.manual_gates(call, &settings).await?;
        let rows = self
            .store
            .gates(call.key.namespace.as_str(), call.key.name.as_str())
            .await?;
        let gate =
            gates::promotion_gate(gates::row_of(&rows, GateKind::Promotion), manual, &analysis);
        let (status, verdict, reason) = match (assessment.verdict, gate.is_open()) {
            (Verdict::Pass, true) => (StatusCode::OK, "pass", assessment.reason.clone()),
            (Verdict::Pass, false) => (
                StatusCode::PRECONDITION_FAILED,
                "wait",
                format!(
                    "{}; the statistics pass: {}",
                    gate.held_because(),
                    assessment.reason
                ),
            ),
            (v, open) => {
                let verdict = if v == Verdict::Fail { "fail" } else { "wait" };
                let reason = if open {
                    assessment.reason.clone()
                } else {
                    format!("{}; {}", assessment.reason, gate.held_because())
                };
                (StatusCode::PRECONDITION_FAILED, verdict, reason)
            }
        };
        // Only the first 200 of an analysis enters the outbox (the dedup key).
        let promoted = (status == StatusCode::OK)
            .then(|| {
                self.milestone(
                    Outcome::Promoted,
                    call,
                    analysis.id,
                    &assessment.reason,
                    now_millis(),
                    None,
                )
            })
            .flatten();
        let reply = Reply::new(Some(analysis.id), verdict, status, reason)
            .with_evidence(evidence)
            .with_annotations(promoted);
        if status != StatusCode::OK {
            return self.answer(call, reply, None).await;
        }
        // A promotion is recorded only while the analysis runs: a rollback request that
        // committed since it was read wins, and the answer says why.
        if let Some(answer) = self.answer_if_running(call, reply).await? {
            return Ok(answer);
        }
        match self.store.get_analysis(analysis.id).await? {
            Some(now) => self.refuse_failed(call, &now, "will not promote").await,
            None => Err(Refusal::dependency(format!(
                "analysis {} disappeared while answering",
                analysis.id
            ))),
        }
    }

    /// `confirm-traffic-increase`: hold the weight until the current step has served
    /// `minStepRequests` canary requests; never raise it after a regression.
    pub(super) async fn confirm_traffic_increase(
        &self,
        call: &HookCall,
    ) -> Result<Answer, Refusal> {
        let settings = self.resolve_settings(call)?;
        let Some(analysis) = self.store.find_analysis(&call.key).await? else {
            return self
                .answer(
                    call,
                    Reply::new(
                        None,
                        "ok",
                        StatusCode::OK,
                        "no analysis yet: first step".into(),
                    ),
                    None,
                )
                .await;
        };
        if analysis.status == AnalysisStatus::Failed {
            return self.refuse_failed(call, &analysis, "hold weight").await;
        }
        // Flagger sends each webhook its own metadata: a minimum set on this webhook
        // alone wins over the settings fixed when the analysis opened.
        let needed = if call.metadata.contains_key("minStepRequests") {
            settings.min_step_requests
        } else {
            stored_settings(&analysis)?.canary.min_step_requests
        };
        // The current step began at the last increase verdict confirmed.
        let step_start = self
            .store
            .decisions(analysis.id)
            .await?
            .iter()
            .rev()
            .find(|d| d.decision.hook == call.hook.as_str() && d.decision.status_code == 200)
            .map(|d| d.decision.created_at)
            .unwrap_or(analysis.started_at);
        let served: u64 = self
            .store
            .looks(analysis.id)
            .await?
            .iter()
            .filter(|l| l.look.window_end > step_start)
            .map(|l| l.look.canary.requests)
            .sum();
        if served >= needed {
            let reason =
                format!("step served {served} canary requests (minimum {needed}): raise weight");
            self.answer(
                call,
                Reply::new(Some(analysis.id), "pass", StatusCode::OK, reason),
                None,
            )
            .await
        } else {
            let reason =
                format!("hold weight: this step served {served} canary requests, needs {needed}");
            self.answer(
                call,
                Reply::new(
                    Some(analysis.id),
                    "wait",
                    StatusCode::PRECONDITION_FAILED,
                    reason,
                ),
                None,
            )
            .await
        }
    }

    /// `rollback`: 200 means "roll back now", as soon as a regression is established.
    pub(super) async fn rollback(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let analysis = self.existing(call).await?;
        match analysis {
            Some(a) if a.status == AnalysisStatus::Failed => {
                let reason = format!("roll back: {}", failure_reason(&a));
                let rolled_back =
                    self.milestone(Outcome::RolledBack, call, a.id, &reason, now_millis(), None);
                self.answer(
                    call,
                    Reply::new(Some(a.id), "fail", StatusCode::OK, reason)
                        .with_annotations(rolled_back),
                    None,
                )
                .await
            }
            other => {
                self.answer(
                    call,
                    Reply::new(
                        other.map(|a| a.id),
                        "wait",
                        StatusCode::CONFLICT,
                        "no rollback requested".into(),
                    ),
                    None,
                )
                .await
            }
        }
    }

    /// `post-rollout`: closes the analysis with Flagger's outcome.
    pub(super) async fn post_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let analysis = self.existing(call).await?;
        let Some(analysis) = analysis else {
            return self
                .answer(
                    call,
                    Reply::new(
                        None,
                        "ok",
                        StatusCode::OK,
                        format!(
                            "rollout ended ({}) with no analysis for this revision",
                            call.phase
                        ),
                    ),
                    None,
                )
                .await;
        };
        let now = now_millis();
        let change = match (call.phase.as_str(), analysis.status) {
            (_, AnalysisStatus::Failed | AnalysisStatus::Succeeded | AnalysisStatus::Aborted) => {
                None
            }
            ("Succeeded", _) => Some(StatusChange {
                status: AnalysisStatus::Succeeded,
                reason: "Flagger promoted the canary".into(),
                at: now,
            }),
            (phase, _) => Some(StatusChange {
                status: AnalysisStatus::Aborted,
                reason: format!(
                    "Flagger ended the rollout in phase {phase} without a verdict of regression"
                ),
                at: now,
            }),
        };
        let reason = format!(
            "rollout ended ({}); analysis {} is {}",
            call.phase,
            analysis.id,
            change
                .as_ref()
                .map(|c| c.status)
                .unwrap_or(analysis.status)
                .as_str()
        );
        // Succeeded spans the whole analysis (a region); Failed is the rollback moment,
        // shared with the rollback hook's annotation so a rollback is shown once.
        let ended = match call.phase.as_str() {
            "Succeeded" => self.milestone(
                Outcome::Succeeded,
                call,
                analysis.id,
                "",
                analysis.started_at,
                Some(now),
            ),
            "Failed" => self.milestone(
                Outcome::RolledBack,
                call,
                analysis.id,
                change
                    .as_ref()
                    .map(|c| c.reason.as_str())
                    .or(analysis.status_reason.as_deref())
                    .unwrap_or(""),
                now,
                None,
            ),
            _ => None,
        };
        self.answer(
            call,
            Reply::new(Some(analysis.id), "ok", StatusCode::OK, reason).with_annotations(ended),
            change.as_ref(),
        )
        .await
    }
}
