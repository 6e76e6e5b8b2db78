//! Canaries now: every canary with a running or recent analysis, what the judge said at
//! its newest look, its gates as the hooks see them and the canary weight Flagger last
//! announced. Read in a fixed number of queries however many canaries there are.

use std::collections::HashMap;

use super::canary::views;
use super::{Analyst, CanaryView, ServiceError};
use crate::domain::{CanaryRef, Millis};
use crate::store::{EventText, LatestLook, OverviewFilter};

/// One canary in the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryNow {
    /// The canary, its latest analysis and both gates.
    pub view: CanaryView,
    /// The newest look of the latest analysis, if it has one.
    pub latest_look: Option<LatestLook>,
    /// The canary weight (percent) Flagger last announced in its events, if any.
    pub weight: Option<u32>,
}

/// The canary weight a Flagger event announces: Flagger's scheduler says
/// "Advance podinfo.test canary weight 10" at every step.
pub fn weight_in(message: &str) -> Option<u32> {
    let (_, after) = message.rsplit_once("canary weight ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The weight each canary's latest weight event names.
fn latest_weights(events: &[EventText]) -> HashMap<CanaryRef, u32> {
    let mut weights = HashMap::new();
    for e in events {
        if let Some(w) = weight_in(&e.message) {
            weights.insert(e.canary.clone(), w);
        }
    }
    weights
}

/// The weight announced last at or before `at`, from events oldest first.
pub fn weight_at(events: &[(Millis, &str)], at: Millis) -> Option<u32> {
    events
        .iter()
        .filter(|(t, _)| *t <= at)
        .filter_map(|(_, m)| weight_in(m))
        .next_back()
}

impl Analyst {
    /// The canaries `filter` selects, by namespace and name.
    pub async fn canaries_now(
        &self,
        filter: &OverviewFilter,
    ) -> Result<Vec<CanaryNow>, ServiceError> {
        let analyses = self.store.overview_analyses(filter).await?;
        let mut looks: HashMap<_, _> = self
            .store
            .overview_looks(filter.recent_since)
            .await?
            .into_iter()
            .map(|l| (l.analysis_id, l))
            .collect();
        let mut gates: HashMap<CanaryRef, Vec<_>> = HashMap::new();
        for row in self.store.all_gates().await? {
            gates.entry(row.canary.clone()).or_default().push(row);
        }
        let modes: HashMap<_, _> = self
            .store
            .all_gate_modes()
            .await?
            .into_iter()
            .map(|m| (m.canary, m.manual))
            .collect();
        let oldest = analyses.iter().map(|a| a.started_at).min().unwrap_or(0);
        let weights = latest_weights(&self.store.weight_events(oldest).await?);
        Ok(analyses
            .into_iter()
            .map(|a| {
                let canary = a.canary();
                let rows = gates.remove(&canary).unwrap_or_default();
                let (rollout, promotion) = views(&rows, modes.get(&canary).copied(), Some(&a));
                CanaryNow {
                    latest_look: looks.remove(&a.id),
                    weight: weights.get(&canary).copied(),
                    view: CanaryView {
                        canary,
                        latest: Some(a),
                        rollout,
                        promotion,
                    },
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_comes_from_flaggers_advance_event() {
        assert_eq!(weight_in("Advance podinfo.test canary weight 10"), Some(10));
        assert_eq!(
            weight_in("Advance podinfo.test canary weight 50 "),
            Some(50)
        );
        assert_eq!(weight_in("Starting canary analysis for podinfo.test"), None);
        assert_eq!(weight_in("canary weight x"), None);
    }

    #[test]
    fn the_weight_at_a_time_is_the_last_one_announced_before_it() {
        let events = [
            (10, "Advance a.b canary weight 5"),
            (20, "Pre-rollout check passed"),
            (30, "Advance a.b canary weight 10"),
        ];
        assert_eq!(weight_at(&events, 5), None);
        assert_eq!(weight_at(&events, 25), Some(5));
        assert_eq!(weight_at(&events, 30), Some(10));
    }
}
