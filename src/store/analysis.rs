//! Analyses: one per canary revision, keyed by (namespace, name, checksum).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::codec::text_column;
use super::sql::{Conditions, Select, Write};
use super::{ManualAction, Store, StoreError};
use crate::domain::{
    AnalysisId, AnalysisKey, AnalysisSettings, CanaryName, CanaryRef, Controller, Millis, Mode,
    Namespace,
};

/// Lifecycle of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStatus {
    /// Looks are being taken.
    Running,
    /// A regression was established; the rollback hook answers 200 from now on.
    Failed,
    /// Flagger reported the rollout Succeeded (post-rollout).
    Succeeded,
    /// Flagger reported the rollout Failed (post-rollout) without verdict having failed it.
    Aborted,
}

impl AnalysisStatus {
    /// Every status, running first.
    pub const ALL: [AnalysisStatus; 4] = [
        AnalysisStatus::Running,
        AnalysisStatus::Failed,
        AnalysisStatus::Succeeded,
        AnalysisStatus::Aborted,
    ];

    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::Aborted => "aborted",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Where an analysis comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Opened by Flagger's hooks: the analysis of a canary revision.
    #[default]
    Live,
    /// A window of Prometheus history recorded by `verdict backtest … --record`. Never
    /// read by the hooks, the canary view or the overview (docs/operations.md,
    /// "Backtests").
    Backtest,
}

impl Origin {
    /// Both origins, live first.
    pub const ALL: [Origin; 2] = [Origin::Live, Origin::Backtest];

    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Backtest => "backtest",
        }
    }

    /// Reads a spelling back, or says which there are.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not an origin; expected live or backtest"))
    }
}

text_column! {
    Origin: |v| v.as_str().to_owned(), |s| Origin::parse(&s).map_err(Into::into);
}

text_column! {
    AnalysisStatus: |v| v.as_str().to_owned(), |s| AnalysisStatus::parse(&s)
        .ok_or_else(|| format!("stored analysis status {s:?} is unknown").into());
}

/// What is needed to open an analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnalysis {
    /// The canary revision.
    pub key: AnalysisKey,
    /// What the analysis fixes for its whole life (stored as JSON).
    pub settings: AnalysisSettings,
    /// When it opened.
    pub started_at: Millis,
    /// The counters read when it opened (JSON, opaque here): the first look's baseline.
    pub baseline: Option<String>,
}

/// One analysis: one canary revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The store's id.
    pub id: AnalysisId,
    /// The canary revision.
    pub key: AnalysisKey,
    /// What the analysis fixed when it opened, or why this verdict cannot read it.
    pub settings: Result<AnalysisSettings, UnreadableSettings>,
    /// Where the analysis stands.
    pub status: AnalysisStatus,
    /// The reason of the failing verdict or of the end.
    pub status_reason: Option<String>,
    /// When it opened.
    pub started_at: Millis,
    /// When it ended, once it has.
    pub finished_at: Option<Millis>,
    /// The counters the first look is differenced against (JSON, opaque here); `None`
    /// for analyses opened before counters were kept.
    pub baseline: Option<String>,
    /// Enforce, or shadow (answers never block Flagger), as fixed when it opened.
    pub mode: Mode,
    /// The controller that asks for its verdicts (Flagger or Argo Rollouts).
    pub controller: Controller,
    /// Live, or a recorded backtest.
    pub origin: Origin,
}

impl Analysis {
    /// The canary this analysis is a revision of.
    pub fn canary(&self) -> CanaryRef {
        self.key.canary()
    }
}

/// Stored settings this verdict cannot read: written by a version whose settings differ.
/// Kept as stored, so the rest of the analysis still reads and the text can be shown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "analysis {id} has unreadable settings ({error}); was it written by another verdict version?"
)]
pub struct UnreadableSettings {
    /// The analysis.
    pub id: AnalysisId,
    /// The settings as stored.
    pub json: String,
    /// Why they do not read.
    pub error: String,
}

impl FromRow<'_, AnyRow> for Analysis {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: AnalysisId = row.try_get("id")?;
        let json: String = row.try_get("settings")?;
        let settings = serde_json::from_str(&json).map_err(|e| UnreadableSettings {
            id,
            error: e.to_string(),
            json,
        });
        Ok(Self {
            id,
            key: AnalysisKey::from_row(row)?,
            settings,
            status: row.try_get("status")?,
            status_reason: row.try_get("status_reason")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            baseline: row.try_get("baseline")?,
            mode: {
                let mode: String = row.try_get("mode")?;
                Mode::parse(&mode).map_err(|e| sqlx::Error::Decode(e.into()))?
            },
            controller: {
                let controller: String = row.try_get("controller")?;
                Controller::parse(&controller).map_err(|e| sqlx::Error::Decode(e.into()))?
            },
            origin: row.try_get("origin")?,
        })
    }
}

/// Which analyses to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisFilter {
    /// Only this namespace.
    pub namespace: Option<Namespace>,
    /// Only canaries of this name.
    pub name: Option<CanaryName>,
    /// Only analyses in this state.
    pub status: Option<AnalysisStatus>,
    /// Only analyses started at or after this time.
    pub since: Option<Millis>,
    /// Only analyses in this mode.
    pub mode: Option<Mode>,
    /// Only analyses of this controller (Flagger or Argo Rollouts).
    pub controller: Option<Controller>,
    /// Only analyses of this origin (live by default: recorded backtests are listed only
    /// when asked for).
    pub origin: Origin,
    /// The cursor: only analyses with an id below this one.
    pub before: Option<AnalysisId>,
    /// At most this many rows (the caller bounds it).
    pub limit: i64,
}

/// A status change to apply in the same transaction as a look or decision.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// The new status.
    pub status: AnalysisStatus,
    /// Why (becomes the analysis' `status_reason`).
    pub reason: String,
    /// When.
    pub at: Millis,
}

/// Result of [`Store::request_rollback`].
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackRequest {
    /// The analysis was running; it is now failed with the request as its reason, and
    /// the person's action is recorded.
    Recorded(Analysis),
    /// The analysis was not running (here it is as it stands); nothing was written.
    NotRunning(Analysis),
    /// No analysis has this id; nothing was written.
    Missing,
}

/// The live analysis of one revision (a recorded backtest is never a revision's).
fn by_key(key: &AnalysisKey) -> Select<'_, Analysis> {
    sqlx::query_as(
        "SELECT * FROM analysis \
         WHERE namespace = $1 AND name = $2 AND checksum = $3 AND origin = 'live'",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(&key.checksum)
}

/// The analysis with this id.
pub(super) fn by_id<'q>(id: AnalysisId) -> Select<'q, Analysis> {
    sqlx::query_as("SELECT * FROM analysis WHERE id = $1").bind(id)
}

impl Store {
    /// Opens the analysis for `new.key`, or returns the existing one: safe under retries
    /// and concurrent identical calls. The bool is true when this call created it.
    ///
    /// `ON CONFLICT DO NOTHING` makes the insert race-free: of two identical calls at the
    /// same moment exactly one inserts (Postgres makes the other wait for the winner's
    /// commit; SQLite serialises writers), and the loser reads the winner's row.
    pub async fn open_analysis(&self, new: &NewAnalysis) -> Result<(Analysis, bool), StoreError> {
        let inserted = insert_analysis(
            insert_analysis_sql!("ON CONFLICT (namespace, name, checksum) DO NOTHING RETURNING *"),
            new,
            Origin::Live,
        )?;
        if let Some(created) = self.optional(inserted).await? {
            return Ok((created, true));
        }
        match self.find_analysis(&new.key).await? {
            Some(existing) => Ok((existing, false)),
            // Only possible if the row was deleted between the two statements.
            None => Err(StoreError::Query(format!(
                "analysis {} conflicted on insert but could not be read back",
                new.key
            ))),
        }
    }

    /// Sets the baseline of an analysis that has none (one opened before counters were
    /// kept); an existing baseline is never replaced. The analysis as it stands after.
    pub async fn record_baseline(
        &self,
        id: AnalysisId,
        baseline: &str,
    ) -> Result<Option<Analysis>, StoreError> {
        let mut tx = self.begin_write().await?;
        let set = sqlx::query_as(
            "UPDATE analysis SET baseline = $1 WHERE id = $2 AND baseline IS NULL RETURNING *",
        )
        .bind(baseline)
        .bind(id);
        let analysis = match tx.optional(set).await? {
            Some(updated) => Some(updated),
            None => tx.optional(by_id(id)).await?,
        };
        tx.commit().await?;
        Ok(analysis)
    }

    /// The live analysis of one canary revision, if it was opened.
    pub async fn find_analysis(&self, key: &AnalysisKey) -> Result<Option<Analysis>, StoreError> {
        self.optional(by_key(key)).await
    }

    /// The analysis with this id, if any.
    pub async fn get_analysis(&self, id: AnalysisId) -> Result<Option<Analysis>, StoreError> {
        self.optional(by_id(id)).await
    }

    /// The most recently opened live analysis of a canary (any revision), if any: what
    /// the hooks' gates and the canary view read, so never a recorded backtest.
    pub async fn latest_analysis(
        &self,
        canary: &CanaryRef,
    ) -> Result<Option<Analysis>, StoreError> {
        let latest = "SELECT * FROM analysis WHERE namespace = $1 AND name = $2 \
             AND origin = 'live' ORDER BY id DESC LIMIT 1";
        self.optional(
            sqlx::query_as(latest)
                .bind(&canary.namespace)
                .bind(&canary.name),
        )
        .await
    }

    /// Analyses matching `filter` (the filters that are given, ANDed), newest first.
    pub async fn list_analyses(&self, f: &AnalysisFilter) -> Result<Vec<Analysis>, StoreError> {
        let mut w = Conditions::default();
        if let Some(namespace) = &f.namespace {
            w.text("namespace =", namespace.as_str());
        }
        if let Some(name) = &f.name {
            w.text("name =", name.as_str());
        }
        if let Some(status) = f.status {
            w.text("status =", status.as_str());
        }
        if let Some(since) = f.since {
            w.int("started_at >=", since);
        }
        if let Some(mode) = f.mode {
            w.text("mode =", mode.as_str());
        }
        if let Some(controller) = f.controller {
            w.text("controller =", controller.as_str());
        }
        w.text("origin =", f.origin.as_str());
        let listing = w.newest_first("analysis", f.before.map(AnalysisId::get), f.limit)?;
        self.all(listing.query()).await
    }

    /// In one transaction, only if analysis `id` is running: marks it failed with
    /// `change` (the rollback hook then answers 200) and records the person's action.
    /// Otherwise writes nothing and says why.
    ///
    /// The status test sits in the UPDATE itself, not in a read before it: a look failing
    /// the analysis, Flagger's post-rollout hook or a second request at the same moment
    /// cannot slip between the check and the write, so of two requests exactly one is
    /// recorded. (`apply_status` lets any end win once, so it does not fit here.)
    pub async fn request_rollback(
        &self,
        id: AnalysisId,
        change: &StatusChange,
        action: &ManualAction,
    ) -> Result<RollbackRequest, StoreError> {
        if change.status != AnalysisStatus::Failed {
            return Err(StoreError::Query(format!(
                "a rollback request fails analysis {id}, but the change asks for status {}",
                change.status.as_str()
            )));
        }
        let mut tx = self.begin_write().await?;
        let failed = sqlx::query_as(
            "UPDATE analysis SET status = $1, status_reason = $2, finished_at = $3 \
             WHERE id = $4 AND status = $5 RETURNING *",
        )
        .bind(AnalysisStatus::Failed)
        .bind(change.reason.as_str())
        .bind(change.at)
        .bind(id)
        .bind(AnalysisStatus::Running);
        let Some(failed) = tx.optional(failed).await? else {
            // Nothing was written; say why, then end the transaction without a write.
            let current = tx.optional(by_id(id)).await?;
            tx.abandon().await?;
            return Ok(current.map_or(RollbackRequest::Missing, RollbackRequest::NotRunning));
        };
        tx.record_action(action).await?;
        tx.commit().await?;
        Ok(RollbackRequest::Recorded(failed))
    }
}

/// `INSERT INTO analysis` of every column a new analysis sets, then `$tail`.
macro_rules! insert_analysis_sql {
    ($tail:literal) => {
        concat!(
            "INSERT INTO analysis \
             (namespace, name, checksum, settings, status, started_at, baseline, mode, controller, origin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ",
            $tail
        )
    };
}
use insert_analysis_sql;

/// The insert of `new` as a running analysis of `origin` ([`insert_analysis_sql`]): one
/// place that knows which columns a new analysis fills, for live and backtest alike.
fn insert_analysis<'q>(
    sql: &'static str,
    new: &'q NewAnalysis,
    origin: Origin,
) -> Result<Select<'q, Analysis>, StoreError> {
    let settings = serde_json::to_string(&new.settings)
        .map_err(|e| StoreError::Query(format!("encoding the settings of {}: {e}", new.key)))?;
    Ok(sqlx::query_as(sql)
        .bind(&new.key.namespace)
        .bind(&new.key.name)
        .bind(&new.key.checksum)
        .bind(settings)
        .bind(AnalysisStatus::Running)
        .bind(new.started_at)
        .bind(new.baseline.as_deref())
        .bind(new.settings.canary.mode.as_str())
        .bind(new.settings.canary.controller.as_str())
        .bind(origin))
}

impl Write<'_> {
    /// Inserts a recorded backtest's analysis inside this transaction, running until
    /// its end is applied. Its key must be new: a conflict is an error, never the
    /// existing row (docs/operations.md, "Backtests").
    pub(super) async fn insert_backtest_analysis(
        &mut self,
        new: &NewAnalysis,
    ) -> Result<Analysis, StoreError> {
        let insert = insert_analysis(insert_analysis_sql!("RETURNING *"), new, Origin::Backtest)?;
        self.optional(insert).await?.ok_or_else(|| {
            StoreError::Query(format!(
                "the backtest analysis {} was not inserted",
                new.key
            ))
        })
    }

    /// Applies a status change to an analysis inside this transaction. An end state
    /// stamps `finished_at`; going back to running clears it.
    pub(super) async fn apply_status(
        &mut self,
        id: AnalysisId,
        change: &StatusChange,
    ) -> Result<(), StoreError> {
        let finished_at = match change.status {
            AnalysisStatus::Running => None,
            _ => Some(change.at),
        };
        // An analysis ends once: the first end (a regression, a rollback request,
        // Flagger's outcome) wins, and a later one that raced with it leaves it as it is.
        let done = sqlx::query(
            "UPDATE analysis SET status = $1, status_reason = $2, finished_at = $3 \
             WHERE id = $4 AND (status = 'running' OR $1 = 'running')",
        )
        .bind(change.status)
        .bind(change.reason.as_str())
        .bind(finished_at)
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| self.store.err(e))?;
        if done.rows_affected() == 0 && self.optional(by_id(id)).await?.is_none() {
            return Err(StoreError::Query(format!(
                "status change for analysis {id}: no such analysis"
            )));
        }
        Ok(())
    }
}
