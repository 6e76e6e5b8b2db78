//! How an Argo Rollouts analysis ends. Argo has no post-rollout hook: it stops measuring
//! when the rollout is promoted or aborted, and says nothing. The next revision's
//! measurements say it instead: their `stableHash` is the canary hash Argo promoted. So
//! a measurement ends the rollout's earlier running analyses: `succeeded` for the one
//! whose canary is now the stable, `aborted` for the others (superseded before promotion).
//! Each end is recorded as a decision of that analysis, with the milestone Flagger's
//! post-rollout would give (docs/operations.md, "Argo Rollouts").

use super::answer::Reply;
use super::settings::VARIABLE_PREFIX;
use super::{Analyst, HookCall, Refusal};
use crate::argo::STABLE_HASH_VARIABLE;
use crate::domain::{now_millis, Controller};
use crate::store::{Analysis, AnalysisFilter, AnalysisStatus, MilestoneKind, StatusChange};
use crate::webhook::Outcome;

/// Earlier running analyses one rollout can have: a handful at most (Argo keeps one
/// analysis run per revision, and each new revision ends the earlier ones).
const AT_MOST: i64 = 50;

impl Analyst {
    /// Ends the running Argo analyses of `current`'s rollout other than `current`.
    pub(super) async fn end_earlier_revisions(
        &self,
        call: &HookCall,
        current: &Analysis,
    ) -> Result<(), Refusal> {
        let filter = AnalysisFilter {
            namespace: Some(call.key.namespace.clone()),
            name: Some(call.key.name.clone()),
            status: Some(AnalysisStatus::Running),
            limit: AT_MOST,
            ..AnalysisFilter::default()
        };
        let stable = call
            .metadata
            .get(&format!("{VARIABLE_PREFIX}{STABLE_HASH_VARIABLE}"))
            .map(String::as_str);
        let earlier = self.store.list_analyses(&filter).await?;
        for old in earlier
            .iter()
            .filter(|a| a.id != current.id && a.controller == Controller::Argo)
        {
            let now = now_millis();
            let promoted = stable == Some(old.key.checksum.as_str());
            let (status, reason) = if promoted {
                (
                    AnalysisStatus::Succeeded,
                    format!(
                        "Argo Rollouts promoted it: pod-template hash {} is the stable of revision {}",
                        old.key.checksum, current.key.checksum
                    ),
                )
            } else {
                (
                    AnalysisStatus::Aborted,
                    format!(
                        "superseded by revision {} before Argo Rollouts promoted it",
                        current.key.checksum
                    ),
                )
            };
            let ended = if promoted {
                self.milestone(MilestoneKind::Succeeded, old, "", now)
                    .map(|m| m.since(old.started_at))
            } else {
                None
            };
            let change = StatusChange {
                status,
                reason: reason.clone(),
                at: now,
            };
            let of_old = HookCall {
                key: old.key.clone(),
                mode: old.mode,
                ..call.clone()
            };
            let reply = Reply::new(Some(old.id), Outcome::Ok, reason).with_milestones(ended);
            self.answer(&of_old, reply, Some(&change)).await?;
        }
        Ok(())
    }
}
