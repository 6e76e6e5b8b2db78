//! The client verbs' command line (docs/api.md, "CLI"). Every value is checked here, so
//! bad input is refused before any request is sent (exit code 2, as clap's own errors).
//! Canaries are named as kubectl users name things: `NAMESPACE/NAME`, or `NAME` with
//! `-n NAMESPACE`.

use std::fmt;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::domain::{CanaryName, CanaryRef, Mode, Namespace};
use crate::store::AnalysisStatus;

/// Longest reason the API accepts (characters).
pub const MAX_REASON_CHARS: usize = 500;
/// Page sizes the API accepts.
const LIMIT_RANGE: std::ops::RangeInclusive<i64> = 1..=200;

/// The client verbs, flattened into `verdict`'s own.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// List analyses or show one (with its looks, decisions and load runs).
    Analyses(AnalysesArgs),
    /// Show a canary's latest analysis and both gates: `verdict canary NS/NAME`.
    Canary(CanaryArgs),
    /// Open (approve) or hold a canary's rollout or promotion gate.
    Gate(GateArgs),
    /// Fail a canary's running analysis, so Flagger rolls back at its next tick.
    Rollback(RollbackArgs),
    /// Read the audit log of manual actions (admin).
    Audit(AuditArgs),
    /// Follow a canary's analysis until it ends, printing each look: exit 0 when it
    /// succeeded (promoted), 10 when it failed (rolled back), 11 on timeout.
    Wait(WaitArgs),
    /// Replay stored analyses (one, or all since a time) or a window of Prometheus history
    /// through the judge with changed settings; --compare runs several side by side.
    /// Writes nothing.
    Backtest(BacktestArgs),
}

impl ClientCommand {
    /// Where, as whom and how to print.
    pub fn connection(&self) -> &ClientArgs {
        match self {
            Self::Analyses(a) => match &a.command {
                AnalysesCommand::List(l) => &l.client,
                AnalysesCommand::Show(s) => &s.client,
            },
            Self::Canary(a) => &a.client,
            Self::Gate(a) => match &a.command {
                GateCommand::Approve(g) | GateCommand::Hold(g) => &g.client,
            },
            Self::Rollback(a) => &a.client,
            Self::Audit(a) => &a.client,
            Self::Wait(a) => &a.client,
            Self::Backtest(a) => &a.client,
        }
    }

    /// Checks what clap cannot check one argument at a time (a canary given as
    /// `NAMESPACE/NAME` or as `-n NAMESPACE NAME`); the message says what to write.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Canary(a) => a.target.resolve().map(drop),
            Self::Gate(g) => g.command.change().target.resolve().map(drop),
            Self::Rollback(a) => a.target.resolve().map(drop),
            Self::Wait(a) => a.target.resolve().map(drop),
            Self::Backtest(b) => b.check(),
            Self::Analyses(_) | Self::Audit(_) => Ok(()),
        }
    }
}

/// How a client verb prints its answer (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The API's answer as JSON.
    Json,
    /// The API's answer as YAML.
    Yaml,
    /// Tables with more columns and cells never cut.
    Wide,
}

/// Flags every client verb takes.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The verdict server.
    #[arg(
        long,
        env = "VERDICT_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_server
    )]
    pub server: String,
    /// The bearer token (a JWT; `verdict token` mints one for tests).
    #[arg(long, env = "VERDICT_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// Output format: json, yaml or wide (a table by default).
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

impl ClientArgs {
    /// The output format asked for; `None` is the default table.
    pub fn format(&self) -> Option<OutputFormat> {
        if self.json {
            Some(OutputFormat::Json)
        } else {
            self.output
        }
    }
}

/// A bearer token, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

impl std::str::FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the token is empty".into());
        }
        // Printable ASCII without spaces: anything else cannot go in an HTTP header.
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the token may only contain printable ASCII characters without spaces".into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
}

/// `verdict analyses …`.
#[derive(Debug, Clone, Args)]
pub struct AnalysesArgs {
    #[command(subcommand)]
    pub command: AnalysesCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AnalysesCommand {
    /// List analyses, newest first.
    List(ListArgs),
    /// Show one analysis with its looks, decisions and load runs.
    Show(ShowArgs),
}

/// `verdict analyses list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this namespace.
    #[arg(short = 'n', long, value_parser = parse_namespace)]
    pub namespace: Option<Namespace>,
    /// Only canaries of this name.
    #[arg(long, value_parser = parse_name)]
    pub name: Option<CanaryName>,
    /// Only analyses in this state: running, failed, succeeded or aborted.
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<AnalysisStatus>,
    /// Only analyses in this mode: enforce, or shadow (answers never blocked Flagger).
    #[arg(long, value_parser = Mode::parse)]
    pub mode: Option<Mode>,
    /// Only analyses of this controller: flagger, or argo (Argo Rollouts' web provider).
    #[arg(long, value_parser = crate::domain::Controller::parse)]
    pub controller: Option<crate::domain::Controller>,
    /// live (the default), or backtest: window backtests recorded with --record.
    #[arg(long, value_parser = crate::store::Origin::parse)]
    pub origin: Option<crate::store::Origin>,
    /// Only analyses started at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<String>,
    /// Page size, 1 to 200 (the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(i64).range(LIMIT_RANGE))]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[arg(long, value_parser = parse_cursor)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict backtest`, in one of three forms (docs/operations.md, "Backtests"):
/// `--analysis ID` replays one stored analysis; `--since 30d` every analysis started since
/// then; `--namespace NS --target NAME --from T1 --to T2 --interval 1m` a window of
/// Prometheus history. `--compare` runs several configurations side by side.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("form").required(true).args(["analysis", "since", "target"])))]
pub struct BacktestArgs {
    /// The stored analysis to replay.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub analysis: Option<i64>,
    /// Replay every analysis started since then: a duration back from now (30d, 12h) or
    /// an RFC 3339 time.
    #[arg(long, value_parser = parse_since_or_ago)]
    pub since: Option<String>,
    /// With --since: only this namespace. With --target: the canary's namespace.
    #[arg(short = 'n', long, value_parser = parse_namespace, conflicts_with = "analysis")]
    pub namespace: Option<Namespace>,
    /// Backtest a window of Prometheus history for this target workload (the primary is
    /// NAME-primary); needs --namespace, --from, --to and --interval.
    #[arg(
        long,
        value_parser = parse_name,
        requires = "namespace",
        requires = "from",
        requires = "to",
        requires = "interval"
    )]
    pub target: Option<CanaryName>,
    /// The window's start (RFC 3339); the analysis opens here.
    #[arg(long, value_parser = parse_since, requires = "target")]
    pub from: Option<String>,
    /// The window's end (RFC 3339).
    #[arg(long, value_parser = parse_since, requires = "target")]
    pub to: Option<String>,
    /// The time between looks in the window, e.g. 1m.
    #[arg(long, value_parser = parse_positive_duration, requires = "target")]
    pub interval: Option<Duration>,
    /// The window's SLI template (the server's default without it).
    #[arg(long, requires = "target")]
    pub template: Option<String>,
    /// Refuse a window with more looks than this (default 500, at most 2000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2000), requires = "target")]
    pub max_looks: Option<u32>,
    /// A setting in the metadata spelling, e.g. `--set alpha=0.005`. With --analysis and
    /// --since, a changed judge setting (alpha, errorMargin, latencyMargin,
    /// promotionMargin, minCanaryRequests, sloErrorRate, negligibleErrorRate, maxLooks,
    /// maxDuration, onInconclusive); with --target, any webhook metadata key.
    #[arg(long = "set", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// Run several configurations side by side, one row each: groups of key=value,…,
    /// e.g. `--compare alpha=0.01 alpha=0.001,promotionMargin=0.5`.
    #[arg(long, num_args = 2.., value_parser = parse_group, conflicts_with = "analysis")]
    pub compare: Vec<Group>,
    /// With --target: store the run as an analysis of origin backtest (read it back with
    /// `verdict analyses show ID`); no hook, gate, overview or annotation ever reads it.
    #[arg(long, requires = "target", conflicts_with = "compare")]
    pub record: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl BacktestArgs {
    /// Combinations clap cannot refuse by itself.
    fn check(&self) -> Result<(), String> {
        if self.since.is_some() && !self.set.is_empty() && !self.compare.is_empty() {
            return Err(
                "with --since give --set (one configuration) or --compare (several), not both"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One configuration of `--compare`: its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group(pub Vec<(String, String)>);

/// `key=value,key=value`: one configuration of `--compare`.
fn parse_group(s: &str) -> Result<Group, String> {
    let group: Vec<(String, String)> = s
        .split(',')
        .map(|pair| {
            parse_setting(pair).map_err(|e| format!("{e} (groups are key=value,key=value)"))
        })
        .collect::<Result<_, _>>()?;
    if group
        .iter()
        .any(|(k, v)| k.contains(';') || v.contains(';'))
    {
        return Err(format!("{s:?}: ';' is not allowed in a setting"));
    }
    Ok(Group(group))
}

/// A duration back from now (`30d`) or an RFC 3339 time.
fn parse_since_or_ago(s: &str) -> Result<String, String> {
    let s = s.trim();
    if humantime::parse_duration(s).is_ok() {
        return Ok(s.to_owned());
    }
    parse_since(s).map_err(|_| {
        format!("{s:?} is neither a duration like 30d or 12h nor an RFC 3339 time like 2026-11-01T00:00:00Z")
    })
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.contains(',') => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("{s:?} is not key=value, e.g. alpha=0.005")),
    }
}

/// `verdict analyses show ID`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The analysis id.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub id: i64,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A canary on the command line: `NAMESPACE/NAME`, or `NAME` with `-n NAMESPACE`.
#[derive(Debug, Clone, Args)]
pub struct CanaryArg {
    /// The canary: NAMESPACE/NAME, or NAME with -n NAMESPACE.
    #[arg(value_name = "[NS/]NAME")]
    pub canary: String,
    /// The canary's namespace, for a NAME without one (as kubectl's -n).
    #[arg(short = 'n', long = "namespace", value_parser = parse_namespace)]
    pub namespace: Option<Namespace>,
}

impl CanaryArg {
    /// The canary named, or why the arguments name none.
    pub fn resolve(&self) -> Result<CanaryRef, String> {
        match (self.canary.contains('/'), &self.namespace) {
            (true, None) => parse_canary(&self.canary),
            (true, Some(ns)) => {
                let canary = parse_canary(&self.canary)?;
                if canary.namespace == *ns {
                    Ok(canary)
                } else {
                    Err(format!(
                        "{:?} names namespace {}, -n names {ns}; give one",
                        self.canary, canary.namespace
                    ))
                }
            }
            (false, Some(ns)) => Ok(CanaryRef {
                namespace: ns.clone(),
                name: parse_name(&self.canary)?,
            }),
            (false, None) => Err(format!(
                "{:?} is not NAMESPACE/NAME: write test/podinfo or -n test podinfo",
                self.canary
            )),
        }
    }
}

/// `verdict canary [NS/]NAME`.
#[derive(Debug, Clone, Args)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub target: CanaryArg,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict gate …`.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    #[command(subcommand)]
    pub command: GateCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GateCommand {
    /// Open the gate: its hook may pass again.
    Approve(GateChange),
    /// Hold the gate: its hook answers 412 until someone opens it.
    Hold(GateChange),
}

impl GateCommand {
    /// The gate state the command asks for, as the API spells it.
    pub fn state(&self) -> &'static str {
        match self {
            Self::Approve(_) => "open",
            Self::Hold(_) => "held",
        }
    }

    /// The change itself.
    pub fn change(&self) -> &GateChange {
        match self {
            Self::Approve(g) | Self::Hold(g) => g,
        }
    }
}

/// Which of a canary's gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gate {
    /// Checked by confirm-rollout: may a new revision start?
    Rollout,
    /// Checked by confirm-promotion: may the canary be promoted?
    Promotion,
}

impl Gate {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::Promotion => "promotion",
        }
    }
}

/// What `gate approve` and `gate hold` take.
#[derive(Debug, Clone, Args)]
pub struct GateChange {
    #[command(flatten)]
    pub target: CanaryArg,
    /// Which gate.
    #[arg(long, value_enum)]
    pub gate: Gate,
    /// Why (kept in the audit log; at most 500 characters).
    #[arg(long, value_parser = parse_reason)]
    pub reason: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict rollback [NS/]NAME --reason …`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: CanaryArg,
    /// Why (becomes the analysis's failure reason; at most 500 characters).
    #[arg(long, value_parser = parse_reason)]
    pub reason: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict wait [NS/]NAME`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub target: CanaryArg,
    /// Give up after this long (exit 11), e.g. 30m, 2h.
    #[arg(long, default_value = "30m", value_parser = parse_positive_duration)]
    pub timeout: Duration,
    /// How often to ask the server.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be above 0".into());
    }
    Ok(d)
}

/// `verdict audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only actions on canaries in this namespace (with --name).
    #[arg(short = 'n', long, value_parser = parse_namespace, requires = "name")]
    pub namespace: Option<Namespace>,
    /// Only actions on canaries of this name (with --namespace).
    #[arg(long, value_parser = parse_name, requires = "namespace")]
    pub name: Option<CanaryName>,
    /// Page size, 1 to 200 (the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(i64).range(LIMIT_RANGE))]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[arg(long, value_parser = parse_cursor)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_server(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL, e.g. http://127.0.0.1:8080")?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err("expected a host after the scheme, e.g. http://127.0.0.1:8080".into());
    }
    Ok(s.to_owned())
}

fn parse_namespace(s: &str) -> Result<Namespace, String> {
    Namespace::parse(s).map_err(|e| e.to_string())
}

fn parse_outcome(s: &str) -> Result<AnalysisStatus, String> {
    AnalysisStatus::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of running, failed, succeeded, aborted"))
}

fn parse_name(s: &str) -> Result<CanaryName, String> {
    CanaryName::parse(s).map_err(|e| e.to_string())
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_canary(s: &str) -> Result<CanaryRef, String> {
    if !s.contains('/') {
        return Err(format!("{s:?} is not NAMESPACE/NAME, e.g. test/podinfo"));
    }
    CanaryRef::parse(s).map_err(|e| e.to_string())
}

/// A reason: not blank, at most [`MAX_REASON_CHARS`]; surrounding spaces dropped.
pub fn parse_reason(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the reason must not be empty".into());
    }
    let chars = s.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(format!(
            "the reason has {chars} characters; at most {MAX_REASON_CHARS} are allowed"
        ));
    }
    Ok(s.to_owned())
}

fn parse_since(s: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-11-01T00:00:00Z: {e}"))
}

fn parse_cursor(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the cursor must not be empty".into());
    }
    Ok(s.to_owned())
}
