//! Replaying every stored analysis started since a time under one or more changed judge
//! configurations (`verdict backtest --since 30d [--set …|--compare …]`): each analysis
//! through the same replay as `verdict backtest --analysis` ([`super::backtest`]), its
//! stored and replayed verdicts read as outcomes by one rule ([`super::backtest_outcome`]),
//! and the outcomes that flip listed. Reads only, and at most [`MAX_BACKTEST_ANALYSES`].

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::backtest::{changed_settings, check_keys, replay};
use super::backtest_outcome::{outcome, Outcome, Tally};
use super::settings::{apply_judge_keys, validate_judge};
use super::{Analyst, ServiceError};
use crate::domain::{Millis, Namespace};
use crate::store::AnalysisFilter;

pub use super::backtest_outcome::Ending;

/// The most analyses one history backtest replays; more is refused (narrow the namespace
/// or the time).
pub const MAX_BACKTEST_ANALYSES: usize = 500;

/// The most configurations one comparison runs.
pub const MAX_CONFIGURATIONS: usize = 8;

/// Which analyses to replay and under which configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    /// Analyses started at or after this time.
    pub since: Millis,
    /// Only this namespace.
    pub namespace: Option<Namespace>,
    /// Each configuration: judge settings changed over each analysis' own (metadata
    /// spellings of [`super::settings::JUDGE_KEYS`]). At least one.
    pub configurations: Vec<HashMap<String, String>>,
}

/// An analysis that could not be replayed, and why (its settings are unreadable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The analysis.
    pub analysis_id: i64,
    /// Why it was left out.
    pub reason: String,
}

/// An analysis whose outcome a configuration changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flip {
    /// The analysis.
    pub analysis_id: i64,
    /// `namespace/name` of the canary.
    pub canary: String,
    /// The outcome of the stored verdicts.
    pub before: Outcome,
    /// The outcome under the configuration.
    pub after: Outcome,
}

/// What one configuration does to the analyses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationResult {
    /// The settings changed, as given.
    pub changed: BTreeMap<String, String>,
    /// Its outcomes counted.
    pub tally: Tally,
    /// The analyses whose outcome it changes, oldest first.
    pub flips: Vec<Flip>,
}

/// A history backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBacktest {
    /// Analyses started at or after this time were replayed.
    pub since: Millis,
    /// The namespace they were limited to.
    pub namespace: Option<String>,
    /// How many analyses were replayed.
    pub analyses: usize,
    /// Analyses left out (unreadable settings).
    pub skipped: Vec<Skipped>,
    /// The outcomes of the verdicts as stored.
    pub recorded: Tally,
    /// One per configuration, in the order given.
    pub configurations: Vec<ConfigurationResult>,
}

/// Checks configurations before anything is read: known keys, values that parse and
/// make a valid judge over the server's defaults.
pub(super) fn check_configurations(
    configurations: &[HashMap<String, String>],
    defaults: &crate::judge::JudgeConfig,
) -> Result<(), ServiceError> {
    if configurations.len() > MAX_CONFIGURATIONS {
        return Err(ServiceError::Invalid(format!(
            "{} configurations to compare; at most {MAX_CONFIGURATIONS}",
            configurations.len()
        )));
    }
    for set in configurations {
        check_keys(set)?;
        let mut judge = defaults.clone();
        let invalid = |e: super::settings::SettingsError| ServiceError::Invalid(e.to_string());
        apply_judge_keys(&mut judge, set).map_err(invalid)?;
        validate_judge(&judge).map_err(invalid)?;
    }
    Ok(())
}

impl Analyst {
    /// Replays every analysis matching `query` under each configuration. Reads only.
    pub async fn backtest_history(
        &self,
        query: &HistoryQuery,
    ) -> Result<HistoryBacktest, ServiceError> {
        if query.configurations.is_empty() {
            return Err(ServiceError::Invalid(
                "no configuration to replay the analyses under".into(),
            ));
        }
        check_configurations(&query.configurations, &self.config.judge_defaults())?;
        let filter = AnalysisFilter {
            namespace: query.namespace.clone(),
            since: Some(query.since),
            limit: i64::try_from(MAX_BACKTEST_ANALYSES + 1).unwrap_or(i64::MAX),
            ..AnalysisFilter::default()
        };
        let mut analyses = self.store.list_analyses(&filter).await?;
        if analyses.len() > MAX_BACKTEST_ANALYSES {
            return Err(ServiceError::Invalid(format!(
                "more than {MAX_BACKTEST_ANALYSES} analyses started since then; a backtest replays at most {MAX_BACKTEST_ANALYSES}: give a shorter --since or a --namespace"
            )));
        }
        analyses.reverse(); // oldest first
        let mut skipped = Vec::new();
        let mut recorded = Vec::new();
        let mut replayed: Vec<Vec<Outcome>> = vec![Vec::new(); query.configurations.len()];
        let mut flips: Vec<Vec<Flip>> = vec![Vec::new(); query.configurations.len()];
        for analysis in &analyses {
            if let Err(e) = &analysis.settings {
                skipped.push(Skipped {
                    analysis_id: analysis.id.get(),
                    reason: e.to_string(),
                });
                continue;
            }
            let stored = self.store.looks(analysis.id).await?;
            let before = outcome(stored.iter().map(|r| (r.look.seq, r.look.verdict.as_str())));
            recorded.push(before);
            for (k, set) in query.configurations.iter().enumerate() {
                let settings = changed_settings(analysis, set)?;
                let verdicts = replay(&settings, analysis.started_at, &stored)?;
                let after = outcome(
                    stored
                        .iter()
                        .zip(&verdicts)
                        .map(|(r, (verdict, _))| (r.look.seq, *verdict)),
                );
                if after.ending != before.ending {
                    flips[k].push(Flip {
                        analysis_id: analysis.id.get(),
                        canary: analysis.canary().to_string(),
                        before,
                        after,
                    });
                }
                replayed[k].push(after);
            }
        }
        let configurations = query
            .configurations
            .iter()
            .zip(replayed.iter().zip(flips))
            .map(|(set, (outcomes, flips))| ConfigurationResult {
                changed: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                tally: Tally::of(outcomes),
                flips,
            })
            .collect();
        Ok(HistoryBacktest {
            since: query.since,
            namespace: query.namespace.as_ref().map(ToString::to_string),
            analyses: recorded.len(),
            skipped,
            recorded: Tally::of(&recorded),
            configurations,
        })
    }
}
