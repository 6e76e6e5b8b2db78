//! The client verbs' command line (docs/api.md, "CLI"). Every value is checked here, so
//! bad input is refused before any request is sent.

use std::fmt;

use clap::{Args, Subcommand, ValueEnum};

use crate::domain::{CanaryName, CanaryRef, Namespace};
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
        }
    }
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
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
    #[arg(long, value_parser = parse_namespace)]
    pub namespace: Option<Namespace>,
    /// Only canaries of this name.
    #[arg(long, value_parser = parse_name)]
    pub name: Option<CanaryName>,
    /// Only analyses in this state: running, failed, succeeded or aborted.
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<AnalysisStatus>,
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

/// `verdict analyses show ID`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The analysis id.
    #[arg(value_parser = clap::value_parser!(i64).range(1..))]
    pub id: i64,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict canary NS/NAME`.
#[derive(Debug, Clone, Args)]
pub struct CanaryArgs {
    /// The canary, as NAMESPACE/NAME.
    #[arg(value_name = "NS/NAME", value_parser = parse_canary)]
    pub canary: CanaryRef,
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
    /// The canary, as NAMESPACE/NAME.
    #[arg(value_name = "NS/NAME", value_parser = parse_canary)]
    pub canary: CanaryRef,
    /// Which gate.
    #[arg(long, value_enum)]
    pub gate: Gate,
    /// Why (kept in the audit log; at most 500 characters).
    #[arg(long, value_parser = parse_reason)]
    pub reason: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict rollback NS/NAME --reason …`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The canary, as NAMESPACE/NAME.
    #[arg(value_name = "NS/NAME", value_parser = parse_canary)]
    pub canary: CanaryRef,
    /// Why (becomes the analysis's failure reason; at most 500 characters).
    #[arg(long, value_parser = parse_reason)]
    pub reason: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only actions on canaries in this namespace (with --name).
    #[arg(long, value_parser = parse_namespace, requires = "name")]
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
