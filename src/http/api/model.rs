//! What the API sends and takes: the JSON shapes of `docs/api.md`, with their OpenAPI
//! schemas. The rows the service returns are converted here, so the store's types stay
//! free of API concerns.
//!
//! Doc comments here are the OpenAPI document's descriptions, so a field is documented
//! only where the document says more than its name; `docs/api.md` describes the rest.
#![allow(missing_docs)]

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::analysis::gates::GateView;
use crate::analysis::{weight_in, AnalysisRecord, CanaryNow, CanaryView};
use crate::domain::{Millis, Mode};
use crate::store::{
    Analysis, ArmTally, AuditRow, DecisionRow, EventRow, GateState, LoadRunRow, LookRow,
};

/// Unix milliseconds as an RFC 3339 UTC string.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// A JSON document stored as text, or the text itself if it is not JSON.
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// One analysis: one canary revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnalysisSummary {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    /// Flagger's revision checksum, or the canary's `rollouts-pod-template-hash` for
    /// Argo Rollouts.
    pub checksum: String,
    /// `running`, `failed`, `succeeded` or `aborted`.
    #[schema(example = "running")]
    pub status: String,
    /// Why it failed or ended.
    pub status_reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `enforce`, or `shadow`: the answers never blocked Flagger.
    #[serde(default)]
    #[schema(example = "enforce")]
    pub mode: String,
    /// Who asks for the verdicts: `flagger` (its webhooks) or `argo` (Argo Rollouts'
    /// web metric provider, `/argo/v1/measure`).
    #[serde(default)]
    #[schema(example = "flagger")]
    pub controller: String,
    /// `live`, or `backtest`: a window backtest recorded with `record`, which no hook,
    /// gate or overview reads.
    #[serde(default)]
    #[schema(example = "live")]
    pub origin: String,
}

impl From<&Analysis> for AnalysisSummary {
    fn from(a: &Analysis) -> Self {
        Self {
            id: a.id.get(),
            namespace: a.key.namespace.to_string(),
            name: a.key.name.to_string(),
            checksum: a.key.checksum.to_string(),
            status: a.status.as_str().to_owned(),
            status_reason: a.status_reason.clone(),
            started_at: rfc3339(a.started_at),
            finished_at: a.finished_at.map(rfc3339),
            mode: a.mode.as_str().to_owned(),
            controller: a.controller.as_str().to_owned(),
            origin: a.origin.as_str().to_owned(),
        }
    }
}

/// A page of analyses, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnalysisPage {
    pub items: Vec<AnalysisSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and pagination of `GET /api/v1/analyses`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalysisQuery {
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `running`, `failed`, `succeeded` or `aborted`.
    pub outcome: Option<String>,
    /// `enforce` or `shadow`.
    pub mode: Option<String>,
    /// `flagger` or `argo`: the controller that asks for the verdicts.
    pub controller: Option<String>,
    /// `live` (the default) or `backtest`: recorded window backtests.
    pub origin: Option<String>,
    /// Only analyses started at or after this RFC 3339 time.
    pub since: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Both arms' counts over one look's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArmCounts {
    pub requests: u64,
    pub errors: u64,
    /// Requests slower than each latency edge of the analysis' plan
    /// (`settings.plan.edges`, seconds, same order).
    pub slower: Vec<u64>,
}

impl From<&ArmTally> for ArmCounts {
    fn from(a: &ArmTally) -> Self {
        Self {
            requests: a.requests,
            errors: a.errors,
            slower: a.slower.clone(),
        }
    }
}

/// One look: both arms over one window and the judge's assessment after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LookView {
    pub seq: i64,
    pub window_start: String,
    pub window_end: String,
    pub canary: ArmCounts,
    pub primary: ArmCounts,
    /// `pass`, `fail` or `wait`.
    pub verdict: String,
    pub reason: String,
    /// The judge's evidence after this look (e-values, bounds, estimates).
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub created_at: String,
}

impl From<&LookRow> for LookView {
    fn from(r: &LookRow) -> Self {
        Self {
            seq: r.look.seq,
            window_start: rfc3339(r.look.window_start),
            window_end: rfc3339(r.look.window_end),
            canary: (&r.look.canary).into(),
            primary: (&r.look.primary).into(),
            verdict: r.look.verdict.clone(),
            reason: r.look.reason.clone(),
            evidence: json(&r.look.evidence),
            created_at: rfc3339(r.created_at),
        }
    }
}

/// One webhook answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub id: i64,
    /// The hook, e.g. `rollout`.
    pub hook: String,
    /// `pass`, `fail`, `wait`, `ok` or `error`.
    pub verdict: String,
    /// The HTTP status Flagger received.
    pub status_code: i64,
    pub reason: String,
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    pub request_id: String,
    pub created_at: String,
}

impl From<&DecisionRow> for DecisionView {
    fn from(r: &DecisionRow) -> Self {
        let d = &r.decision;
        Self {
            id: r.id.get(),
            hook: d.hook.clone(),
            verdict: d.verdict.clone(),
            status_code: d.status_code,
            reason: d.reason.clone(),
            evidence: d.evidence.as_deref().map(json),
            request_id: d.request_id.clone(),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// One load-test run of the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadRunView {
    pub id: i64,
    pub run_id: String,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub started_at: String,
    /// `running`, `completed` or `stopped`.
    pub status: String,
    pub ended_at: Option<String>,
    pub requests: Option<i64>,
    /// Answers by HTTP status.
    #[schema(value_type = Option<Object>)]
    pub status_counts: Option<Value>,
    /// Latency percentiles.
    #[schema(value_type = Option<Object>)]
    pub latency: Option<Value>,
    /// Requests without an answer, by kind.
    #[schema(value_type = Option<Object>)]
    pub errors: Option<Value>,
}

impl From<&LoadRunRow> for LoadRunView {
    fn from(r: &LoadRunRow) -> Self {
        let o = r.outcome.as_ref();
        Self {
            id: r.id.get(),
            run_id: r.run.run_id.clone(),
            spec: json(&r.run.spec),
            started_at: rfc3339(r.run.started_at),
            status: o.map_or_else(|| "running".to_owned(), |o| o.status.clone()),
            ended_at: o.map(|o| rfc3339(o.ended_at)),
            requests: o.map(|o| o.requests),
            status_counts: o.map(|o| json(&o.status_counts)),
            latency: o.map(|o| json(&o.latency)),
            errors: o.map(|o| json(&o.errors)),
        }
    }
}

/// One analysis with all its evidence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnalysisDetail {
    pub analysis: AnalysisSummary,
    /// The canary settings fixed when the analysis opened.
    #[schema(value_type = Object)]
    pub settings: Value,
    pub looks: Vec<LookView>,
    pub decisions: Vec<DecisionView>,
    /// Load runs of the canary during the analysis.
    pub load_runs: Vec<LoadRunView>,
    /// Flagger's events about the canary during the analysis, oldest first.
    pub events: Vec<EventView>,
    /// A shadow analysis: the first look whose verdict was a regression, at which
    /// enforce mode would have rolled the canary back. Absent in enforce mode and when
    /// no look failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_have_rolled_back_at_look: Option<i64>,
}

impl From<&AnalysisRecord> for AnalysisDetail {
    fn from(r: &AnalysisRecord) -> Self {
        let settings = match &r.analysis.settings {
            Ok(settings) => serde_json::to_value(settings).unwrap_or(Value::Null),
            // Settings this verdict cannot read are shown as they are stored.
            Err(unreadable) => json(&unreadable.json),
        };
        Self {
            analysis: AnalysisSummary::from(&r.analysis),
            settings,
            looks: r.looks.iter().map(LookView::from).collect(),
            decisions: r.decisions.iter().map(DecisionView::from).collect(),
            load_runs: r.load_runs.iter().map(LoadRunView::from).collect(),
            events: r.events.iter().map(EventView::from).collect(),
            would_have_rolled_back_at_look: (r.analysis.mode == Mode::Shadow)
                .then(|| r.looks.iter().find(|l| l.look.verdict == "fail"))
                .flatten()
                .map(|l| l.look.seq),
        }
    }
}

/// `GET /api/v1/analyses/{id}/backtest` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BacktestQuery {
    /// Changed judge settings, comma-separated `key=value` in the metadata spelling,
    /// e.g. `alpha=0.005,promotionMargin=0.5`; none replays the stored settings.
    pub set: Option<String>,
}

/// One look of a backtest: the stored verdict and the one under the changed settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestLookView {
    pub seq: i64,
    /// `pass`, `fail` or `wait` as stored.
    pub old: String,
    /// `pass`, `fail` or `wait` under the changed settings.
    pub new: String,
    pub reason: String,
}

/// A replay of a stored analysis under changed judge settings; nothing is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestView {
    pub analysis_id: i64,
    /// The settings changed.
    #[schema(value_type = Object)]
    pub changed: Value,
    pub looks: Vec<BacktestLookView>,
    /// The first look whose verdict differs.
    pub first_difference: Option<i64>,
}

impl From<&crate::analysis::Backtest> for BacktestView {
    fn from(b: &crate::analysis::Backtest) -> Self {
        Self {
            analysis_id: b.analysis_id,
            changed: serde_json::to_value(&b.changed).unwrap_or(Value::Null),
            looks: b
                .looks
                .iter()
                .map(|l| BacktestLookView {
                    seq: l.seq,
                    old: l.old.clone(),
                    new: l.new.clone(),
                    reason: l.reason.clone(),
                })
                .collect(),
            first_difference: b.first_difference,
        }
    }
}

/// Whether a gate lets its hook pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStateBody {
    Open,
    Held,
}

impl From<GateState> for GateStateBody {
    fn from(s: GateState) -> Self {
        match s {
            GateState::Open => Self::Open,
            GateState::Held => Self::Held,
        }
    }
}

impl From<GateStateBody> for GateState {
    fn from(s: GateStateBody) -> Self {
        match s {
            GateStateBody::Open => Self::Open,
            GateStateBody::Held => Self::Held,
        }
    }
}

/// Which gate a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateParam {
    Rollout,
    Promotion,
}

/// A gate as the hooks see it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateOut {
    pub state: GateStateBody,
    /// The canary asked for `gate: manual`: held for every revision until opened.
    pub manual: bool,
    /// Who set it (`verdict` for a manual canary's hold).
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// When a person last set it.
    pub updated_at: Option<String>,
}

impl From<&GateView> for GateOut {
    fn from(v: &GateView) -> Self {
        Self {
            state: v.state.into(),
            manual: v.manual,
            actor: v.actor.clone(),
            reason: v.reason.clone(),
            updated_at: v.updated_at.map(rfc3339),
        }
    }
}

/// Both gates of a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Gates {
    pub rollout: GateOut,
    pub promotion: GateOut,
}

/// A canary now: its latest analysis and its gates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CanaryState {
    pub namespace: String,
    pub name: String,
    pub latest_analysis: Option<AnalysisSummary>,
    pub gates: Gates,
}

impl From<&CanaryView> for CanaryState {
    fn from(v: &CanaryView) -> Self {
        Self {
            namespace: v.canary.namespace.to_string(),
            name: v.canary.name.to_string(),
            latest_analysis: v.latest.as_ref().map(AnalysisSummary::from),
            gates: Gates {
                rollout: GateOut::from(&v.rollout),
                promotion: GateOut::from(&v.promotion),
            },
        }
    }
}

/// Body of `PUT …/gates/{gate}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateChange {
    pub state: GateStateBody,
    /// Why (1–500 characters); shown to Flagger in the hook's answer and kept in the audit log.
    pub reason: String,
}

/// Body of `POST …/rollback`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Why (1–500 characters).
    pub reason: String,
}

/// Answer of `POST …/rollback`: the analysis as now stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RollbackAnswer {
    pub analysis: AnalysisSummary,
}

/// One manual action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// The token's subject.
    pub actor: String,
    pub role: String,
    /// `gate.rollout.open`, `gate.rollout.hold`, `gate.promotion.open`, `gate.promotion.hold` or `rollback`.
    pub action: String,
    /// `namespace/name`.
    pub target: String,
    pub reason: String,
    pub at: String,
}

impl From<&AuditRow> for AuditEntry {
    fn from(r: &AuditRow) -> Self {
        let a = &r.audit;
        Self {
            id: r.id.get(),
            actor: a.actor.clone(),
            role: a.role.clone(),
            action: a.action.clone(),
            target: a.target.to_string(),
            reason: a.reason.clone(),
            at: rfc3339(a.at),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// Filters and pagination of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// With `name`: only actions on this canary.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One Flagger event about the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    /// Flagger's phase of the canary.
    pub phase: String,
    /// `Normal` or `Warning`.
    pub event_type: String,
    /// Flagger's text, verbatim.
    pub message: String,
    /// The canary weight (percent) the text announces, if any.
    pub weight: Option<u32>,
    pub received_at: String,
}

impl From<&EventRow> for EventView {
    fn from(r: &EventRow) -> Self {
        Self {
            id: r.id.get(),
            phase: r.event.phase.clone(),
            event_type: r.event.event_type.clone(),
            message: r.event.message.clone(),
            weight: weight_in(&r.event.message),
            received_at: rfc3339(r.event.received_at),
        }
    }
}

/// What the judge says about a canary at its newest look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JudgeState {
    /// Not enough evidence either way yet (or no look yet).
    Waiting,
    /// A regression is established (or the canary failed otherwise).
    Regression,
    /// Positive evidence the canary is not worse: ready to promote.
    Ready,
}

/// One canary with a running or recent analysis.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CanaryNowView {
    pub namespace: String,
    pub name: String,
    pub analysis: AnalysisSummary,
    /// The canary weight (percent) Flagger last announced in its events.
    pub weight: Option<u32>,
    /// Looks so far.
    pub looks: i64,
    pub judge: JudgeState,
    /// The judge's one-line reason at the newest look.
    pub reason: Option<String>,
    pub gates: Gates,
}

impl From<&CanaryNow> for CanaryNowView {
    fn from(c: &CanaryNow) -> Self {
        let state = CanaryState::from(&c.view);
        let look = c.latest_look.as_ref();
        let judge = match look.map(|l| l.verdict.as_str()) {
            Some("fail") => JudgeState::Regression,
            Some("pass") => JudgeState::Ready,
            _ => JudgeState::Waiting,
        };
        Self {
            namespace: state.namespace,
            name: state.name,
            analysis: state
                .latest_analysis
                .unwrap_or_else(|| no_analysis(&c.view)),
            weight: c.weight,
            looks: look.map_or(0, |l| l.seq),
            judge,
            reason: look.map(|l| l.reason.clone()),
            gates: state.gates,
        }
    }
}

/// An empty summary (id 0) for a canary without analysis. The overview lists only canaries
/// with one (its rows come from the analysis table), so this is never sent in practice.
fn no_analysis(v: &CanaryView) -> AnalysisSummary {
    AnalysisSummary {
        id: 0,
        namespace: v.canary.namespace.to_string(),
        name: v.canary.name.to_string(),
        checksum: String::new(),
        status: String::new(),
        status_reason: None,
        mode: String::new(),
        controller: String::new(),
        origin: String::new(),
        started_at: String::new(),
        finished_at: None,
    }
}

/// Every canary with a running or recent analysis, by namespace and name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CanariesNow {
    pub items: Vec<CanaryNowView>,
    /// Analyses that ended before this time are not listed.
    pub recent_since: String,
}

/// Filters of `GET /api/v1/canaries`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CanariesQuery {
    pub namespace: Option<String>,
    /// The latest analysis' state: `running`, `failed`, `succeeded` or `aborted`.
    pub outcome: Option<String>,
    /// How far back an ended analysis still counts as recent, e.g. `24h` (default), `30m`.
    pub recent: Option<String>,
    /// 1–2000, default 1000.
    pub limit: Option<i64>,
}
