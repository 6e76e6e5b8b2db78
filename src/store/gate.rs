//! Manual gates: one row per (namespace, name, kind), as a person last set it; and the
//! canary's gate mode, as the hooks last said it.

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Row};

use super::codec::text_column;
use super::{ManualAction, Store, StoreError};
use crate::domain::{CanaryRef, Millis};

/// One of a canary's two manual gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Checked by confirm-rollout: may a new revision start rolling out?
    Rollout,
    /// Checked by confirm-promotion: may the canary be promoted?
    Promotion,
}

impl GateKind {
    /// Both gates, in the order they are met.
    pub const ALL: [GateKind; 2] = [GateKind::Rollout, GateKind::Promotion];

    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::Promotion => "promotion",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether a gate lets its hook pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// The hook may pass.
    Open,
    /// The hook answers 412.
    Held,
}

impl GateState {
    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Held => "held",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Held]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

text_column! {
    GateKind: |v| v.as_str().to_owned(), |s| GateKind::parse(&s)
        .ok_or_else(|| format!("stored gate kind {s:?} is unknown").into());
    GateState: |v| v.as_str().to_owned(), |s| GateState::parse(&s)
        .ok_or_else(|| format!("stored gate state {s:?} is unknown").into());
}

/// A gate as a person last set it. One row per (canary, kind); a canary whose gate has
/// no row has never been touched by hand.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct GateRow {
    /// The canary.
    #[sqlx(flatten)]
    pub canary: CanaryRef,
    /// Which gate.
    pub kind: GateKind,
    /// Open or held.
    pub state: GateState,
    /// Who set it (the JWT subject).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When.
    pub updated_at: Millis,
}

impl Store {
    /// The gates of a canary that were ever set by hand (zero, one or two rows),
    /// rollout before promotion.
    pub async fn gates(&self, canary: &CanaryRef) -> Result<Vec<GateRow>, StoreError> {
        let mut gates: Vec<GateRow> = self.of_canary("gate", canary).await?;
        gates.sort_by_key(|g| GateKind::ALL.iter().position(|k| *k == g.kind));
        Ok(gates)
    }

    /// In one transaction: sets the gate (insert or update of its one row) and records
    /// the person's action (audit row and milestone). Returns the gate.
    ///
    /// The upsert is one statement on the unique key, so concurrent calls for the same
    /// gate never create a second row: on Postgres the later one waits for the earlier
    /// one's commit and then updates; SQLite serialises the write transactions.
    pub async fn set_gate(
        &self,
        gate: &GateRow,
        action: &ManualAction,
    ) -> Result<GateRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let stored = sqlx::query_as(
            "INSERT INTO gate (namespace, name, kind, state, actor, reason, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (namespace, name, kind) DO UPDATE SET \
             state = excluded.state, actor = excluded.actor, reason = excluded.reason, \
             updated_at = excluded.updated_at RETURNING *",
        )
        .bind(&gate.canary.namespace)
        .bind(&gate.canary.name)
        .bind(gate.kind)
        .bind(gate.state)
        .bind(gate.actor.as_str())
        .bind(gate.reason.as_str())
        .bind(gate.updated_at)
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.record_action(action).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Whether the canary asked for `gate: manual`, as the last hook call carrying the
    /// `gate` metadata key said; `None` when none ever did.
    pub async fn gate_mode(&self, canary: &CanaryRef) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query("SELECT manual FROM gate_mode WHERE namespace = $1 AND name = $2")
            .bind(&canary.namespace)
            .bind(&canary.name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| r.try_get::<i64, _>("manual").map(|m| m != 0))
            .transpose()
            .map_err(|e| self.err(e))
    }

    /// Records the canary's gate mode; a no-op when it is already stored with that value.
    pub async fn set_gate_mode(
        &self,
        canary: &CanaryRef,
        manual: bool,
        at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gate_mode (namespace, name, manual, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, name) DO UPDATE SET \
             manual = excluded.manual, updated_at = excluded.updated_at \
             WHERE gate_mode.manual <> excluded.manual",
        )
        .bind(&canary.namespace)
        .bind(&canary.name)
        .bind(i64::from(manual))
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
