//! Shadow mode: what a hook sends Flagger when its analysis only watches. The decision
//! is taken and recorded as in enforce mode (its verdict and evidence, the look, the
//! milestones); only the status Flagger gets never blocks it, and the body says what
//! enforce mode would have answered (docs/operations.md, "Shadow mode").

use axum::http::StatusCode;

use crate::webhook::{Answer, Hook, Outcome, Refusal};

/// Hooks whose answer can block or roll back a canary, so shadow mode changes them.
pub(super) fn applies_to(hook: Hook) -> bool {
    matches!(
        hook,
        Hook::Rollout | Hook::ConfirmPromotion | Hook::ConfirmTrafficIncrease | Hook::Rollback
    )
}

/// Hooks whose refusals a shadow analysis turns into answers that let Flagger go on: the
/// ones above, and `pre-rollout`, whose refusal (e.g. Prometheus down while the analysis
/// opens) would count towards a rollback as well.
pub(super) fn never_refuses(hook: Hook) -> bool {
    applies_to(hook) || hook == Hook::PreRollout
}

/// The status a shadow analysis sends for `outcome` of `hook`, and the body saying what
/// enforce mode would have answered; `None` for hooks shadow mode leaves alone.
pub(super) fn answer(hook: Hook, outcome: Outcome, reason: &str) -> Option<(StatusCode, String)> {
    let passed = matches!(outcome, Outcome::Pass | Outcome::Ok);
    let (status, would) = match hook {
        Hook::Rollout if outcome == Outcome::Fail => (StatusCode::OK, "roll back"),
        Hook::Rollout => (StatusCode::OK, "go on"),
        Hook::ConfirmPromotion if passed => (StatusCode::OK, "promote"),
        Hook::ConfirmPromotion => (StatusCode::OK, "hold promotion"),
        Hook::ConfirmTrafficIncrease if passed => (StatusCode::OK, "raise weight"),
        Hook::ConfirmTrafficIncrease => (StatusCode::OK, "hold weight"),
        // 409 is "no rollback" to Flagger; only 200 would roll back.
        Hook::Rollback if outcome == Outcome::Fail => (StatusCode::CONFLICT, "roll back"),
        Hook::Rollback => (StatusCode::CONFLICT, "not roll back"),
        _ => return None,
    };
    Some((status, format!("shadow: would {would}: {reason}")))
}

/// What a shadow analysis sends instead of `refusal` (a hook it applies to): the status
/// that lets Flagger go on, and a body that names the refusal enforce mode would have sent.
pub(super) fn instead_of(hook: Hook, refusal: &Refusal) -> Answer {
    let status = if hook == Hook::Rollback {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let reason = format!(
        "shadow: would refuse with {}: {}",
        refusal.status.as_u16(),
        refusal.reason
    );
    Answer {
        status,
        ..Answer::new(hook, refusal.outcome(), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_answers_never_block_flagger() {
        for hook in Hook::ALL {
            for outcome in [Outcome::Pass, Outcome::Wait, Outcome::Fail, Outcome::Ok] {
                let Some((status, body)) = answer(hook, outcome, "why") else {
                    assert!(!applies_to(hook), "{hook:?} left alone");
                    continue;
                };
                assert!(applies_to(hook));
                assert!(body.starts_with("shadow: would ") && body.ends_with(": why"));
                let expected = if hook == Hook::Rollback {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::OK
                };
                assert_eq!(status, expected, "{hook:?} {outcome:?}");
            }
        }
    }

    #[test]
    fn a_refusal_is_named_but_never_blocks_flagger() {
        let refusal = Refusal::dependency("Prometheus unreachable");
        for hook in Hook::ALL.into_iter().filter(|h| never_refuses(*h)) {
            let answer = instead_of(hook, &refusal);
            let expected = if hook == Hook::Rollback {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            assert_eq!(answer.status, expected, "{hook:?}");
            assert_eq!(answer.outcome, Outcome::Error);
            assert_eq!(
                answer.reason,
                "shadow: would refuse with 424: Prometheus unreachable"
            );
        }
        let bad = instead_of(Hook::Rollout, &Refusal::bad_request("unknown key x"));
        assert_eq!(
            (bad.status, bad.outcome, bad.reason.as_str()),
            (
                StatusCode::OK,
                Outcome::Rejected,
                "shadow: would refuse with 400: unknown key x"
            )
        );
    }

    #[test]
    fn the_body_says_what_enforce_mode_would_have_done() {
        let said = |hook, outcome| answer(hook, outcome, "r").map(|(_, b)| b);
        assert_eq!(
            said(Hook::Rollout, Outcome::Fail).as_deref(),
            Some("shadow: would roll back: r")
        );
        assert_eq!(
            said(Hook::Rollback, Outcome::Fail).as_deref(),
            Some("shadow: would roll back: r")
        );
        assert_eq!(
            said(Hook::ConfirmPromotion, Outcome::Wait).as_deref(),
            Some("shadow: would hold promotion: r")
        );
        assert_eq!(
            said(Hook::ConfirmTrafficIncrease, Outcome::Pass).as_deref(),
            Some("shadow: would raise weight: r")
        );
        assert_eq!(said(Hook::PostRollout, Outcome::Ok), None);
        assert_eq!(said(Hook::ConfirmRollout, Outcome::Wait), None);
    }
}
