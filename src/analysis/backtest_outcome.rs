//! How a backtest reads a sequence of look verdicts as an outcome (rolled back, promoted
//! or undecided, and at which look), and how outcomes are counted. Pure: the stored and
//! the replayed verdicts go through the same rule, so a flip is a change of the judge's
//! answers, never of the rule (docs/operations.md, "Backtests").

use serde::Serialize;

/// What an analysis comes to under one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// A look failed: the rollout hook answers 422 and Flagger rolls back.
    RolledBack,
    /// No look failed and the last one passed: confirm-promotion would let it through.
    Promoted,
    /// Neither within the looks there are.
    Undecided,
}

impl Ending {
    /// How people read it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RolledBack => "rolled back",
            Self::Promoted => "promoted",
            Self::Undecided => "undecided",
        }
    }
}

/// An outcome and the look that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Rolled back, promoted or undecided.
    pub ending: Ending,
    /// Rolled back: the first failing look. Promoted: the first look of the final run of
    /// passing looks (from there on the canary could have been promoted). Undecided: none.
    pub look: Option<i64>,
}

/// The outcome of `(seq, verdict)` looks in order, verdicts spelled `pass`, `fail`, `wait`.
/// A failing look ends the analysis, so the first one decides; otherwise the analysis is
/// promoted when its last look passes.
pub fn outcome<'a>(looks: impl IntoIterator<Item = (i64, &'a str)>) -> Outcome {
    let mut run_start = None;
    let mut last_passed = false;
    for (seq, verdict) in looks {
        match verdict {
            "fail" => {
                return Outcome {
                    ending: Ending::RolledBack,
                    look: Some(seq),
                }
            }
            "pass" => {
                if !last_passed {
                    run_start = Some(seq);
                }
                last_passed = true;
            }
            _ => last_passed = false,
        }
    }
    if last_passed {
        Outcome {
            ending: Ending::Promoted,
            look: run_start,
        }
    } else {
        Outcome {
            ending: Ending::Undecided,
            look: None,
        }
    }
}

/// Outcomes counted: what one configuration does to a set of analyses.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Analyses rolled back.
    pub rolled_back: usize,
    /// Analyses promoted.
    pub promoted: usize,
    /// Analyses undecided.
    pub undecided: usize,
    /// The median look at which the decided analyses were decided; `None` when none was.
    pub median_decision_look: Option<f64>,
}

impl Tally {
    /// Counts `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Self {
        let mut tally = Self::default();
        let mut looks = Vec::new();
        for o in outcomes {
            match o.ending {
                Ending::RolledBack => tally.rolled_back += 1,
                Ending::Promoted => tally.promoted += 1,
                Ending::Undecided => tally.undecided += 1,
            }
            looks.extend(o.look);
        }
        tally.median_decision_look = median(&mut looks);
        tally
    }
}

fn median(values: &mut [i64]) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2] as f64),
        _ => Some((values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(verdicts: &[&'static str]) -> Outcome {
        outcome(verdicts.iter().enumerate().map(|(i, v)| (i as i64 + 1, *v)))
    }

    #[test]
    fn the_first_failing_look_decides() {
        let o = of(&["wait", "pass", "fail", "pass"]);
        assert_eq!((o.ending, o.look), (Ending::RolledBack, Some(3)));
    }

    #[test]
    fn promotion_needs_the_last_look_to_pass_and_counts_from_its_run() {
        let o = of(&["wait", "pass", "wait", "pass", "pass"]);
        assert_eq!((o.ending, o.look), (Ending::Promoted, Some(4)));
        let o = of(&["pass", "pass", "wait"]);
        assert_eq!((o.ending, o.look), (Ending::Undecided, None));
        assert_eq!(of(&[]).ending, Ending::Undecided);
    }

    #[test]
    fn tallies_count_and_take_the_median_of_decided_looks() {
        let outcomes = [of(&["fail"]), of(&["wait", "wait", "fail"]), of(&["wait"])];
        let t = Tally::of(&outcomes);
        assert_eq!((t.rolled_back, t.promoted, t.undecided), (2, 0, 1));
        assert_eq!(t.median_decision_look, Some(2.0));
        let t = Tally::of(&[of(&["wait", "pass"])]);
        assert_eq!(t.median_decision_look, Some(2.0));
        assert_eq!(Tally::of(&[of(&["wait"])]).median_decision_look, None);
    }
}
