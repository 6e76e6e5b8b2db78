//! Replaying a stored analysis under changed judge settings (`verdict backtest`): the
//! stored looks go through the same judge code as the live `rollout` hook
//! ([`judging::judge`]), look by look, and nothing is written.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::judging::{self, Verdict};
use super::settings::{apply_judge_keys, validate_judge, JUDGE_KEYS};
use super::{Analyst, ServiceError};
use crate::domain::{AnalysisId, AnalysisSettings, Millis};
use crate::store::{Analysis, LookRow};

/// One look of a replay: what was stored and what the changed settings conclude.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestLook {
    /// The look's number in the analysis.
    pub seq: i64,
    /// The verdict stored with the look (`pass`, `fail`, `wait`).
    pub old: String,
    /// The verdict under the changed settings after the same looks.
    pub new: String,
    /// The judge's reason for `new`.
    pub reason: String,
}

/// A replay of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    /// The analysis replayed.
    pub analysis_id: i64,
    /// The settings changed, as given.
    pub changed: BTreeMap<String, String>,
    /// Per stored look, in order.
    pub looks: Vec<BacktestLook>,
    /// The first look whose verdict differs, if any.
    pub first_difference: Option<i64>,
}

impl Analyst {
    /// Replays analysis `id`'s stored looks with `set` (metadata spellings of
    /// [`JUDGE_KEYS`]) changed over its stored settings. Reads only.
    pub async fn backtest(
        &self,
        id: AnalysisId,
        set: &HashMap<String, String>,
    ) -> Result<Backtest, ServiceError> {
        check_keys(set)?;
        let analysis = self
            .store
            .get_analysis(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no analysis {id}")))?;
        let settings = changed_settings(&analysis, set)?;
        let stored = self.store.looks(id).await?;
        let replayed = replay(&settings, analysis.started_at, &stored)?;
        let looks: Vec<BacktestLook> = stored
            .iter()
            .zip(replayed)
            .map(|(row, (new, reason))| BacktestLook {
                seq: row.look.seq,
                old: row.look.verdict.clone(),
                new: new.to_owned(),
                reason,
            })
            .collect();
        let first_difference = looks.iter().find(|l| l.old != l.new).map(|l| l.seq);
        Ok(Backtest {
            analysis_id: id.get(),
            changed: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            looks,
            first_difference,
        })
    }
}

/// Refuses keys a backtest cannot change, naming them.
pub(super) fn check_keys(set: &HashMap<String, String>) -> Result<(), ServiceError> {
    let mut unknown: Vec<&str> = set
        .keys()
        .map(String::as_str)
        .filter(|k| !JUDGE_KEYS.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(ServiceError::Invalid(format!(
        "unknown setting(s) {}; a backtest can change {}",
        unknown.join(", "),
        JUDGE_KEYS.join(", ")
    )))
}

/// The settings `analysis` fixed when it opened, with `set` applied and checked.
pub(super) fn changed_settings(
    analysis: &Analysis,
    set: &HashMap<String, String>,
) -> Result<AnalysisSettings, ServiceError> {
    let mut settings = analysis
        .settings
        .clone()
        .map_err(|e| ServiceError::Conflict(e.to_string()))?;
    let invalid = |e: super::settings::SettingsError| ServiceError::Invalid(e.to_string());
    apply_judge_keys(&mut settings.canary.judge, set).map_err(invalid)?;
    validate_judge(&settings.canary.judge).map_err(invalid)?;
    Ok(settings)
}

/// The verdict (`pass`, `fail`, `wait`) and reason after each of `stored`, judged under
/// `settings` by the judge the rollout hook uses.
pub(super) fn replay(
    settings: &AnalysisSettings,
    started_at: Millis,
    stored: &[LookRow],
) -> Result<Vec<(&'static str, String)>, ServiceError> {
    let looks = stored
        .iter()
        .map(|row| (&row.look.canary, &row.look.primary, row.look.window_end));
    Ok(judging::judge_each(settings, started_at, looks)
        .map_err(|r| ServiceError::Invalid(r.reason))?
        .into_iter()
        .map(|j| (spelling(j.verdict()), j.reason().to_owned()))
        .collect())
}

pub(super) fn spelling(verdict: Verdict) -> &'static str {
    judging::outcome_of(verdict).as_str()
}
