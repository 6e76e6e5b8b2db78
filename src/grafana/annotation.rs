//! What a milestone looks like in Grafana: tags, text and time span of the annotation,
//! the body of `POST /api/annotations` without the dashboard (added at delivery).

use serde::Serialize;

use crate::domain::{Controller, Millis};
use crate::store::{Milestone, MilestoneKind};

/// The tag every verdict annotation carries.
pub const TAG: &str = "verdict";

/// An annotation as Grafana's API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// When it happened, or when its span began (Unix ms).
    pub time: Millis,
    /// The end of a span (Unix ms); `None` for a point in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_end: Option<Millis>,
    /// `verdict`, `namespace/name` and the milestone's kind; `argo` for an analysis of
    /// Argo Rollouts.
    pub tags: Vec<String>,
    /// One line for people.
    pub text: String,
}

/// The annotation of a milestone: a point in time, or a span for a milestone that
/// closes one (a succeeded rollout spans its analysis).
pub fn annotation(m: &Milestone) -> Annotation {
    let canary = &m.canary;
    let tag = m.kind.as_str();
    let text = match &m.analysis {
        Some(analysis) => {
            let what = match m.kind {
                MilestoneKind::Started => {
                    format!("verdict: analysis {} of {canary} started", analysis.id)
                }
                MilestoneKind::Regression => format!("verdict: regression in {canary}"),
                MilestoneKind::Promoted => format!("verdict: promotion of {canary} confirmed"),
                MilestoneKind::RolledBack => format!("verdict: {canary} rolled back"),
                MilestoneKind::Succeeded => format!("verdict: rollout of {canary} succeeded"),
                MilestoneKind::GateOpened
                | MilestoneKind::GateHeld
                | MilestoneKind::RollbackRequested => format!("verdict: {tag} on {canary}"),
            };
            // Flagger is the default controller; an Argo analysis says so.
            let revision = match analysis.controller {
                Controller::Flagger => format!("revision {}", analysis.checksum),
                Controller::Argo => format!(
                    "{}, pod-template-hash {}",
                    Controller::Argo.title(),
                    analysis.checksum
                ),
            };
            if m.detail.is_empty() {
                format!("{what} ({revision})")
            } else {
                format!("{what} ({revision}): {}", m.detail)
            }
        }
        // A person's action: who did it and why.
        None => format!(
            "verdict: {tag} on {canary} by {}: {}",
            m.actor.as_deref().unwrap_or("someone"),
            m.detail
        ),
    };
    let (time, time_end) = match m.since {
        Some(since) => (since, Some(m.time)),
        None => (m.time, None),
    };
    let mut tags = vec![TAG.to_owned(), canary.to_string(), tag.to_owned()];
    if let Some(a) = m
        .analysis
        .as_ref()
        .filter(|a| a.controller != Controller::Flagger)
    {
        tags.push(a.controller.as_str().to_owned());
    }
    Annotation {
        time,
        time_end,
        tags,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AnalysisId, CanaryRef, Checksum};
    use crate::store::MilestoneAnalysis;

    fn of_analysis(kind: MilestoneKind, detail: &str) -> Milestone {
        Milestone {
            kind,
            canary: CanaryRef::parse("test/podinfo").expect("canary"),
            analysis: Some(MilestoneAnalysis {
                id: AnalysisId::new(7),
                checksum: Checksum::parse("85d557f47b").expect("checksum"),
                controller: Controller::Flagger,
            }),
            actor: None,
            detail: detail.to_owned(),
            time: 1_000,
            since: None,
        }
    }

    #[test]
    fn milestones_of_an_analysis_name_the_revision_and_the_detail() {
        let a = annotation(&of_analysis(
            MilestoneKind::Regression,
            "error ratio above 1.1",
        ));
        assert_eq!(a.tags, ["verdict", "test/podinfo", "regression"]);
        assert_eq!(
            a.text,
            "verdict: regression in test/podinfo (revision 85d557f47b): error ratio above 1.1"
        );
        let started = annotation(&of_analysis(MilestoneKind::Started, ""));
        assert_eq!(
            started.text,
            "verdict: analysis 7 of test/podinfo started (revision 85d557f47b)"
        );
    }

    #[test]
    fn an_argo_analysis_is_tagged_and_named_so() {
        let mut m = of_analysis(MilestoneKind::Regression, "error ratio above 1.1");
        if let Some(a) = m.analysis.as_mut() {
            a.controller = Controller::Argo;
        }
        let a = annotation(&m);
        assert_eq!(a.tags, ["verdict", "test/podinfo", "regression", "argo"]);
        assert_eq!(
            a.text,
            "verdict: regression in test/podinfo (Argo Rollouts, pod-template-hash 85d557f47b): error ratio above 1.1"
        );
    }

    #[test]
    fn a_persons_action_names_who_and_why() {
        let m = Milestone {
            analysis: None,
            actor: Some("alice".into()),
            ..of_analysis(MilestoneKind::GateHeld, "promotion gate: freeze")
        };
        let a = annotation(&m);
        assert_eq!(a.tags, ["verdict", "test/podinfo", "gate-held"]);
        assert_eq!(
            a.text,
            "verdict: gate-held on test/podinfo by alice: promotion gate: freeze"
        );
    }

    #[test]
    fn a_closing_milestone_spans_from_its_start() {
        let m = Milestone {
            time: 2_000,
            since: Some(1_000),
            ..of_analysis(MilestoneKind::Succeeded, "")
        };
        let json = serde_json::to_value(annotation(&m)).expect("json");
        assert_eq!(json["time"], 1_000);
        assert_eq!(json["timeEnd"], 2_000);
        let point = serde_json::to_value(annotation(&of_analysis(MilestoneKind::Started, "")))
            .expect("json");
        assert!(point.get("timeEnd").is_none());
    }
}
