//! The manual gates as the hooks see them: what a release manager set through the API,
//! and what `gate: manual` implies when nobody has acted for this revision yet.
//!
//! A gate row is per canary, not per revision, so a hold outlives revisions until
//! someone opens it. For a `gate: manual` canary an opening is good for one revision
//! only: the rollout gate must have been opened after the canary's latest analysis
//! started (Flagger asks confirm-rollout only before a revision starts progressing), and
//! the promotion gate after the current revision's analysis started. So every new
//! revision of a manual canary starts with both gates held, without any write.
//!
//! The times compared come from different replicas' clocks (the API call's and the
//! hook call's); they need to agree to well under a canary's analysis interval, which
//! NTP-synchronised nodes do.

use serde::Serialize;

use crate::domain::{AnalysisSettings, Millis};
use crate::store::{Analysis, GateKind, GateRow, GateState};

/// Who holds a manual canary's gate when no person has opened it for this revision.
pub const MANUAL_ACTOR: &str = "verdict";

/// Whether a canary's `kind` gate is manual: as the last hook call that carried the
/// `gate` metadata key recorded it (`recorded`), or, for the promotion gate, as the
/// analysis being promoted fixed it when it opened. This is the one answer to "are this
/// canary's gates manual?": the hooks and the API both ask it.
pub fn manual(kind: GateKind, recorded: Option<bool>, analysis: Option<&AnalysisSettings>) -> bool {
    let recorded = recorded.unwrap_or(false);
    match kind {
        GateKind::Rollout => recorded,
        GateKind::Promotion => recorded || analysis.is_some_and(|s| s.canary.manual_gates),
    }
}

/// A gate as the hooks see it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateView {
    /// Which gate.
    pub kind: GateKind,
    /// Whether its hook may pass now.
    pub state: GateState,
    /// The canary asked for `gate: manual`.
    pub manual: bool,
    /// Who set the state, when a person did (or [`MANUAL_ACTOR`] for a manual hold).
    pub actor: Option<String>,
    /// Why it is in this state, as that person (or the manual hold) said.
    pub reason: Option<String>,
    /// When a person last set this gate.
    pub updated_at: Option<Millis>,
}

impl GateView {
    /// Whether the gate lets its hook pass.
    pub fn is_open(&self) -> bool {
        self.state == GateState::Open
    }

    /// One sentence for a refused hook: who holds the gate and why.
    pub fn held_because(&self) -> String {
        let actor = self.actor.as_deref().unwrap_or("someone");
        let reason = self.reason.as_deref().unwrap_or("no reason given");
        format!("{} gate held by {actor}: {reason}", self.kind.as_str())
    }
}

/// A gate as a person last set it (open when nobody did), before `gate: manual` is
/// taken into account.
pub fn as_set(kind: GateKind, row: Option<&GateRow>, manual: bool) -> GateView {
    match row {
        Some(r) => GateView {
            kind,
            state: r.state,
            manual,
            actor: Some(r.actor.clone()),
            reason: Some(r.reason.clone()),
            updated_at: Some(r.updated_at),
        },
        None => GateView {
            kind,
            state: GateState::Open,
            manual,
            actor: None,
            reason: None,
            updated_at: None,
        },
    }
}

/// The hold every revision of a manual canary starts with.
fn manual_hold(kind: GateKind, row: Option<&GateRow>) -> GateView {
    GateView {
        kind,
        state: GateState::Held,
        manual: true,
        actor: Some(MANUAL_ACTOR.to_owned()),
        reason: Some(format!(
            "gate: manual; a release manager must open the {} gate for this revision",
            kind.as_str()
        )),
        updated_at: row.map(|r| r.updated_at),
    }
}

/// The rollout gate (confirm-rollout). `latest` is the canary's most recent analysis.
pub fn rollout_gate(row: Option<&GateRow>, manual: bool, latest: Option<&Analysis>) -> GateView {
    let view = as_set(GateKind::Rollout, row, manual);
    if !manual || view.state == GateState::Held {
        return view;
    }
    // An opening counts only for a revision that has not started since.
    match (row, latest) {
        (Some(r), Some(a)) if r.updated_at > a.started_at => view,
        (Some(_), None) => view,
        _ => manual_hold(GateKind::Rollout, row),
    }
}

/// The promotion gate (confirm-promotion). `current` is the analysis of the revision
/// asking to be promoted.
pub fn promotion_gate(row: Option<&GateRow>, manual: bool, current: &Analysis) -> GateView {
    let view = as_set(GateKind::Promotion, row, manual);
    if !manual || view.state == GateState::Held {
        return view;
    }
    match row {
        Some(r) if r.updated_at > current.started_at => view,
        _ => manual_hold(GateKind::Promotion, row),
    }
}

/// The row of one kind among a canary's gate rows.
pub fn row_of(rows: &[GateRow], kind: GateKind) -> Option<&GateRow> {
    rows.iter().find(|r| r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CanaryName, CanaryRef};

    fn row(kind: GateKind, state: GateState, at: Millis) -> GateRow {
        GateRow {
            canary: CanaryRef::parse("test/podinfo").expect("canary"),
            kind,
            state,
            actor: "alice".into(),
            reason: "because".into(),
            updated_at: at,
        }
    }

    /// The gates never read an analysis' settings.
    fn analysis(started_at: Millis) -> Analysis {
        crate::analysis::unread_analysis(1, started_at)
    }

    #[test]
    fn manual_is_the_recorded_mode_and_for_promotion_also_the_analysis_setting() {
        let config = crate::config::Config::default();
        let name = CanaryName::parse("podinfo").expect("name");
        let opened = |gate: &str| AnalysisSettings {
            canary: crate::analysis::settings::resolve(
                &name,
                &[("gate".to_owned(), gate.to_owned())].into(),
                &config,
            )
            .expect("settings"),
            plan: None,
            boundary_s: None,
            slo_boundary_s: None,
        };
        let (manual_analysis, auto_analysis) = (opened("manual"), opened("auto"));
        assert!(!manual(GateKind::Rollout, None, Some(&manual_analysis)));
        assert!(manual(GateKind::Rollout, Some(true), Some(&auto_analysis)));
        assert!(!manual(GateKind::Rollout, Some(false), None));
        assert!(manual(
            GateKind::Promotion,
            Some(false),
            Some(&manual_analysis)
        ));
        assert!(manual(
            GateKind::Promotion,
            Some(true),
            Some(&auto_analysis)
        ));
        assert!(!manual(GateKind::Promotion, None, Some(&auto_analysis)));
        assert!(!manual(GateKind::Promotion, None, None));
    }

    #[test]
    fn untouched_automatic_gates_are_open() {
        assert!(rollout_gate(None, false, None).is_open());
        assert!(promotion_gate(None, false, &analysis(10)).is_open());
    }

    #[test]
    fn a_hold_outlives_revisions_until_opened() {
        let held = row(GateKind::Promotion, GateState::Held, 5);
        let view = promotion_gate(Some(&held), false, &analysis(100));
        assert!(!view.is_open());
        assert_eq!(view.held_because(), "promotion gate held by alice: because");
        let held = row(GateKind::Rollout, GateState::Held, 5);
        assert!(!rollout_gate(Some(&held), false, Some(&analysis(100))).is_open());
    }

    #[test]
    fn manual_gates_start_held_and_an_opening_lasts_one_revision() {
        // Never touched: held by verdict.
        let view = rollout_gate(None, true, None);
        assert!(!view.is_open());
        assert_eq!(view.actor.as_deref(), Some(MANUAL_ACTOR));
        // Opened before any analysis: open.
        let opened = row(GateKind::Rollout, GateState::Open, 50);
        assert!(rollout_gate(Some(&opened), true, None).is_open());
        // Opened after the latest analysis started: open for the next revision.
        assert!(rollout_gate(Some(&opened), true, Some(&analysis(40))).is_open());
        // A revision started after the opening consumed it.
        assert!(!rollout_gate(Some(&opened), true, Some(&analysis(60))).is_open());

        let approved = row(GateKind::Promotion, GateState::Open, 70);
        assert!(promotion_gate(Some(&approved), true, &analysis(60)).is_open());
        assert!(!promotion_gate(Some(&approved), true, &analysis(80)).is_open());
        assert!(!promotion_gate(None, true, &analysis(80)).is_open());
    }
}
