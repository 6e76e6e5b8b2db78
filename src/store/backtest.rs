//! Recorded backtests (`verdict backtest … --record`): a window backtest's analysis, its
//! looks and their decisions written in one transaction, through the same inserts as
//! live looks. All or nothing: a failure anywhere rolls the whole run back, so a
//! recorded backtest is either complete or absent (docs/operations.md, "Backtests").

use super::analysis::by_id;
use super::{Analysis, NewAnalysis, NewDecision, NewLook, StatusChange, Store, StoreError};

/// A window backtest to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBacktest {
    /// The analysis; its key must be new (a unique checksum per recording).
    pub analysis: NewAnalysis,
    /// Each look taken, in order, with the decision the rollout hook would have
    /// recorded. Their `analysis_id`s are set here; milestones are dropped.
    pub looks: Vec<(NewLook, NewDecision)>,
    /// How the run ended: failed at the failing look, succeeded when promoted, aborted
    /// when undecided.
    pub end: StatusChange,
}

impl Store {
    /// Records `b` in one transaction and returns its analysis as stored. A recorded
    /// backtest never enters the outbox (no annotation): its decisions carry no
    /// milestones.
    pub async fn record_backtest(&self, b: &NewBacktest) -> Result<Analysis, StoreError> {
        let mut tx = self.begin_write().await?;
        let analysis = tx.insert_backtest_analysis(&b.analysis).await?;
        for (look, decision) in &b.looks {
            let look = NewLook {
                analysis_id: analysis.id,
                ..look.clone()
            };
            if tx.insert_look(&look).await?.is_none() {
                tx.abandon().await?;
                return Err(StoreError::Query(format!(
                    "look {} of the backtest {} is given twice; nothing was recorded",
                    look.seq, b.analysis.key
                )));
            }
            let decision = NewDecision {
                analysis_id: Some(analysis.id),
                milestones: Vec::new(),
                ..decision.clone()
            };
            tx.insert_decision(&decision).await?;
        }
        tx.apply_status(analysis.id, &b.end).await?;
        let recorded = tx.optional(by_id(analysis.id)).await?;
        tx.commit().await?;
        recorded.ok_or_else(|| {
            StoreError::Query(format!(
                "backtest analysis {} could not be read back",
                analysis.id
            ))
        })
    }
}
