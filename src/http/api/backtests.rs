//! `/api/v1/backtest`: the stored analyses since a time replayed under changed judge
//! settings, and a window of Prometheus history judged as if verdict had analysed it
//! (docs/operations.md, "Backtests"). Both write nothing, except a window backtest with
//! `record`: it is stored as an analysis of origin `backtest`, which no hook reads.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::{ApiError, ErrorBody, NoValidToken, NothingChanged};
use super::model::{rfc3339, AnalysisSummary};
use super::params;
use crate::analysis::{
    BacktestOutcome, ConfigurationResult, Ending, HistoryBacktest, HistoryQuery, Tally,
    WindowBacktest, WindowLook, WindowQuery, WindowRun,
};
use crate::domain::{now_millis, Millis};
use crate::http::AppState;

/// The default bound on a window's looks.
pub const DEFAULT_MAX_LOOKS: u32 = 500;

/// The longest `since` a history backtest takes.
const MAX_SINCE: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// `GET /api/v1/backtest` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryBacktestQuery {
    /// Analyses started since: a duration back from now (`30d`, `12h`, at most 366 days)
    /// or an RFC 3339 time.
    pub since: String,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Changed judge settings, comma-separated `key=value`, e.g. `alpha=0.005`.
    pub set: Option<String>,
    /// Several configurations side by side instead of `set`: groups of `key=value,…`
    /// separated by `;`, e.g. `alpha=0.01;alpha=0.001,promotionMargin=0.5`.
    pub compare: Option<String>,
}

/// An outcome: rolled back, promoted or undecided, and the look that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutcomeView {
    /// `rolled_back`, `promoted` or `undecided`.
    pub ending: String,
    /// The failing look; for a promotion the first of the final passing looks.
    pub look: Option<i64>,
}

impl From<&BacktestOutcome> for OutcomeView {
    fn from(o: &BacktestOutcome) -> Self {
        Self {
            ending: match o.ending {
                Ending::RolledBack => "rolled_back",
                Ending::Promoted => "promoted",
                Ending::Undecided => "undecided",
            }
            .to_owned(),
            look: o.look,
        }
    }
}

/// Outcomes counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TallyView {
    pub rolled_back: usize,
    pub promoted: usize,
    pub undecided: usize,
    /// The median look at which decided analyses were decided.
    pub median_decision_look: Option<f64>,
}

impl From<&Tally> for TallyView {
    fn from(t: &Tally) -> Self {
        Self {
            rolled_back: t.rolled_back,
            promoted: t.promoted,
            undecided: t.undecided,
            median_decision_look: t.median_decision_look,
        }
    }
}

/// An analysis whose outcome a configuration changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlipView {
    pub analysis_id: i64,
    /// `namespace/name`.
    pub canary: String,
    pub before: OutcomeView,
    pub after: OutcomeView,
}

/// What one configuration does to the analyses replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigurationView {
    /// The settings changed.
    #[schema(value_type = Object)]
    pub changed: Value,
    pub outcomes: TallyView,
    /// The analyses whose outcome flips, oldest first.
    pub flips: Vec<FlipView>,
}

impl From<&ConfigurationResult> for ConfigurationView {
    fn from(c: &ConfigurationResult) -> Self {
        Self {
            changed: changed(&c.changed),
            outcomes: TallyView::from(&c.tally),
            flips: c
                .flips
                .iter()
                .map(|f| FlipView {
                    analysis_id: f.analysis_id,
                    canary: f.canary.clone(),
                    before: OutcomeView::from(&f.before),
                    after: OutcomeView::from(&f.after),
                })
                .collect(),
        }
    }
}

/// An analysis left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkippedView {
    pub analysis_id: i64,
    pub reason: String,
}

/// The stored analyses since a time replayed under one or more configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryBacktestView {
    pub since: String,
    pub namespace: Option<String>,
    /// How many analyses were replayed.
    pub analyses: usize,
    pub skipped: Vec<SkippedView>,
    /// The outcomes of the verdicts as recorded.
    pub recorded: TallyView,
    /// One per configuration, in the order given.
    pub configurations: Vec<ConfigurationView>,
}

impl From<&HistoryBacktest> for HistoryBacktestView {
    fn from(h: &HistoryBacktest) -> Self {
        Self {
            since: rfc3339(h.since),
            namespace: h.namespace.clone(),
            analyses: h.analyses,
            skipped: h
                .skipped
                .iter()
                .map(|s| SkippedView {
                    analysis_id: s.analysis_id,
                    reason: s.reason.clone(),
                })
                .collect(),
            recorded: TallyView::from(&h.recorded),
            configurations: h
                .configurations
                .iter()
                .map(ConfigurationView::from)
                .collect(),
        }
    }
}

fn changed(set: &BTreeMap<String, String>) -> Value {
    serde_json::to_value(set).unwrap_or(Value::Null)
}

/// Replay the stored analyses started since a time under changed judge settings.
#[utoipa::path(
    get,
    path = "/api/v1/backtest",
    operation_id = "backtestHistory",
    tag = "analyses",
    params(HistoryBacktestQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Outcomes per configuration and the analyses that flip", body = HistoryBacktestView),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 422, description = "Invalid query, unknown or invalid setting, or too many analyses", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<HistoryBacktestQuery>, QueryRejection>,
) -> Result<Json<HistoryBacktestView>, ApiError> {
    let Query(q) = query?;
    let since = since(&q.since)?;
    let configurations = configurations(q.set.as_deref(), q.compare.as_deref())?;
    let query = HistoryQuery {
        since,
        namespace: q.namespace.as_deref().map(params::namespace).transpose()?,
        configurations,
    };
    let result = state.analyst.backtest_history(&query).await?;
    Ok(Json(HistoryBacktestView::from(&result)))
}

/// `since`: a duration back from now, or an RFC 3339 time.
fn since(text: &str) -> Result<Millis, ApiError> {
    let text = text.trim();
    if let Ok(d) = humantime::parse_duration(text) {
        if d > MAX_SINCE {
            return Err(ApiError::invalid(format!(
                "since: {text:?} is longer than 366 days"
            )));
        }
        return Ok(now_millis() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    params::time("since", text).map_err(|_| {
        ApiError::invalid(format!(
            "since: {text:?} is neither a duration like 30d or 12h nor an RFC 3339 time"
        ))
    })
}

/// One configuration from `set`, or several from `compare`; not both.
fn configurations(
    set: Option<&str>,
    compare: Option<&str>,
) -> Result<Vec<HashMap<String, String>>, ApiError> {
    match (set, compare) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "give set (one configuration) or compare (several), not both",
        )),
        (_, Some(groups)) => {
            let groups: Vec<_> = groups
                .split(';')
                .map(|g| params::settings(Some(g)))
                .collect::<Result<_, _>>()?;
            if groups.len() < 2 {
                return Err(ApiError::invalid(
                    "compare: give at least two configurations separated by ;",
                ));
            }
            Ok(groups)
        }
        (set, None) => Ok(vec![params::settings(set)?]),
    }
}

/// `POST /api/v1/backtest/window` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    pub namespace: String,
    /// The canary's target workload; the primary is `<target>-primary`.
    pub target: String,
    /// The window's start (RFC 3339): the analysis opens here.
    pub from: String,
    /// The window's end (RFC 3339, not in the future).
    pub to: String,
    /// The time between looks, e.g. `1m` (at least 1s).
    pub interval: String,
    /// Refuse windows with more looks (default 500, at most 2000).
    pub max_looks: Option<u32>,
    /// The SLI template (the server's default without it).
    pub template: Option<String>,
    /// Settings as a webhook's metadata would give them, e.g. `{"alpha": "0.005"}`.
    #[schema(value_type = Option<Object>)]
    pub set: Option<HashMap<String, String>>,
    /// Several judge configurations side by side, each changed over `set`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub compare: Option<Vec<HashMap<String, String>>>,
    /// Store the run as an analysis of origin `backtest` (one configuration: not with
    /// `compare`). No hook, gate, overview or annotation ever reads it.
    #[serde(default)]
    pub record: bool,
}

/// One arm's counts in a look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArmFiguresView {
    pub requests: u64,
    pub errors: u64,
    pub p95_ms: Option<f64>,
}

/// One look time of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WindowLookView {
    pub at: String,
    /// The look's number; none when no look was taken (no data at that time).
    pub seq: Option<i64>,
    pub canary: Option<ArmFiguresView>,
    pub primary: Option<ArmFiguresView>,
    /// `pass`, `fail` or `wait`; none when no look was taken.
    pub verdict: Option<String>,
    /// The judge's reason, or why no look was taken.
    pub reason: String,
}

impl From<&WindowLook> for WindowLookView {
    fn from(l: &WindowLook) -> Self {
        let arm = |a: &crate::analysis::ArmFigures| ArmFiguresView {
            requests: a.requests,
            errors: a.errors,
            p95_ms: a.p95_ms,
        };
        Self {
            at: rfc3339(l.at),
            seq: l.seq,
            canary: l.canary.as_ref().map(arm),
            primary: l.primary.as_ref().map(arm),
            verdict: l.verdict.clone(),
            reason: l.reason.clone(),
        }
    }
}

/// One configuration's run over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WindowRunView {
    /// The judge settings changed over `set`.
    #[schema(value_type = Object)]
    pub changed: Value,
    /// The decision it would have reached.
    pub outcome: OutcomeView,
    /// The same as counts (one analysis), for tables that compare configurations.
    pub outcomes: TallyView,
    /// Every look time up to the decision.
    pub looks: Vec<WindowLookView>,
    /// The judge's evidence after the last look taken.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
}

impl From<&WindowRun> for WindowRunView {
    fn from(r: &WindowRun) -> Self {
        Self {
            changed: changed(&r.changed),
            outcome: OutcomeView::from(&r.outcome),
            outcomes: TallyView::from(&Tally::of([&r.outcome])),
            looks: r.looks.iter().map(WindowLookView::from).collect(),
            evidence: r.evidence.clone(),
        }
    }
}

/// A window of Prometheus history judged as verdict would have judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WindowBacktestView {
    pub namespace: String,
    pub target: String,
    pub template: String,
    pub from: String,
    pub to: String,
    pub interval: String,
    /// The look times in the window.
    pub look_times: usize,
    /// What the plan fixed at the window's start.
    pub plan: String,
    /// One per configuration.
    pub runs: Vec<WindowRunView>,
    /// With `record`: the analysis the run was stored as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<AnalysisSummary>,
}

impl From<&WindowBacktest> for WindowBacktestView {
    fn from(w: &WindowBacktest) -> Self {
        Self {
            namespace: w.namespace.clone(),
            target: w.target.clone(),
            template: w.template.clone(),
            from: rfc3339(w.from),
            to: rfc3339(w.to),
            interval: humantime::format_duration(std::time::Duration::from_millis(w.interval_ms))
                .to_string(),
            look_times: w.look_times,
            plan: w.plan.clone(),
            runs: w.runs.iter().map(WindowRunView::from).collect(),
            recorded: w.recorded.as_ref().map(AnalysisSummary::from),
        }
    }
}

/// Judge a window of Prometheus history as verdict would have (release managers);
/// with `record`, store it as a backtest analysis.
#[utoipa::path(
    post,
    path = "/api/v1/backtest/window",
    operation_id = "backtestWindow",
    tag = "analyses",
    request_body = WindowBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Per-look evidence and the decision per configuration", body = WindowBacktestView),
        NoValidToken,
        (status = 403, description = "Not a release manager", body = ErrorBody),
        (status = 422, description = "Invalid body or settings, a window over max_looks, or record with compare", body = ErrorBody),
        (status = 424, description = "Prometheus failed, or has no history to open the analysis at the window's start; with record, the store failed (nothing was recorded)", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn window(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<WindowBody>, JsonRejection>,
) -> Result<Json<WindowBacktestView>, ApiError> {
    caller.require_act("backtest a window of Prometheus history")?;
    let Json(b) = body?;
    let mut metadata = b.set.unwrap_or_default();
    if let Some(template) = b.template {
        if metadata.insert("template".into(), template).is_some() {
            return Err(ApiError::invalid(
                "template is given twice (as template and in set)",
            ));
        }
    }
    let interval = humantime::parse_duration(b.interval.trim()).map_err(|e| {
        ApiError::invalid(format!(
            "interval: {:?} is not a duration like 1m ({e})",
            b.interval
        ))
    })?;
    let compare = b.compare.unwrap_or_default();
    if compare.len() == 1 {
        return Err(ApiError::invalid(
            "compare: give at least two configurations",
        ));
    }
    let query = WindowQuery {
        namespace: params::namespace(&b.namespace)?,
        target: params::name(&b.target)?,
        from: params::time("from", &b.from)?,
        to: params::time("to", &b.to)?,
        interval,
        max_looks: b.max_looks.unwrap_or(DEFAULT_MAX_LOOKS),
        metadata,
        configurations: compare,
        record: b.record,
    };
    let result = state.analyst.backtest_window(&query).await?;
    Ok(Json(WindowBacktestView::from(&result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let before = now_millis();
        let t = since("1h").expect("duration");
        assert!((before - 3_600_000 - 5..=now_millis() - 3_600_000).contains(&t));
        assert_eq!(since("1970-01-01T00:00:01Z").expect("time"), 1000);
        assert!(since("30x").is_err());
        assert!(since("400d").is_err());
    }

    #[test]
    fn configurations_from_set_or_compare() {
        assert_eq!(
            configurations(None, None).expect("none"),
            vec![HashMap::new()]
        );
        let groups = configurations(None, Some("alpha=0.01;alpha=0.001,promotionMargin=0.5"))
            .expect("groups");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1]["promotionMargin"], "0.5");
        assert!(configurations(Some("alpha=0.1"), Some("alpha=0.01;alpha=0.02")).is_err());
        assert!(configurations(None, Some("alpha=0.01")).is_err());
        assert!(configurations(None, Some("alpha;beta=1")).is_err());
    }
}
