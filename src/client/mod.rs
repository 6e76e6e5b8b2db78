//! The `verdict` binary as a client of the release-manager API (docs/api.md, "CLI"):
//! [`args`] checks the command line, [`api`] makes the calls, [`table`] prints for people
//! (`-o json|yaml` prints the API's answer instead, `-o wide` more of it), [`wait`]
//! follows an analysis to its end. Exit codes are in [`exit`].

use std::io::Write;

use serde_json::Value;

pub mod api;
pub mod args;
mod backtest_table;
pub mod table;
pub mod wait;

pub use api::{AnalysisQuery, ApiClient, AuditQuery, ClientError};
pub use args::ClientCommand;

use args::{AnalysesCommand, OutputFormat};
use table::Detail;

/// The client verbs' exit codes (docs/api.md, "Exit codes"), for scripts and CI steps.
pub mod exit {
    /// Done; for `wait`, the analysis succeeded (the canary was promoted).
    pub const OK: u8 = 0;
    /// Anything else that went wrong: the server unreachable, an unexpected answer.
    pub const ERROR: u8 = 1;
    /// The command line is wrong (clap's own exit code for usage errors).
    pub const USAGE: u8 = 2;
    /// No such canary or analysis (404).
    pub const NOT_FOUND: u8 = 3;
    /// No token, or the server refused it or its role (401, 403).
    pub const DENIED: u8 = 4;
    /// `wait`: the analysis failed, so Flagger rolls the canary back.
    pub const ROLLED_BACK: u8 = 10;
    /// `wait`: the analysis had not ended within `--timeout`.
    pub const TIMEOUT: u8 = 11;
}

/// Prints an answer in the asked format; `render` draws the table.
pub(crate) fn show(
    format: Option<OutputFormat>,
    answer: &Value,
    render: &dyn Fn(&Value, Detail) -> String,
) -> Result<String, ClientError> {
    let text = match format {
        Some(OutputFormat::Json) => serde_json::to_string_pretty(answer)
            .map(|json| json + "\n")
            .map_err(std::io::Error::other)?,
        Some(OutputFormat::Yaml) => {
            serde_yaml_ng::to_string(answer).map_err(std::io::Error::other)?
        }
        Some(OutputFormat::Wide) => render(answer, Detail::Wide),
        None => render(answer, Detail::Normal),
    };
    Ok(text)
}

/// Runs one client verb, prints its answer to stdout, and says which exit code the
/// process ends with ([`exit`]).
pub async fn run(command: &ClientCommand) -> Result<u8, ClientError> {
    command.check().map_err(ClientError::Usage)?;
    let connection = command.connection();
    let format = connection.format();
    let client = ApiClient::new(&connection.server, connection.token.as_ref())?;
    let resolve = |target: &args::CanaryArg| target.resolve().map_err(ClientError::Usage);
    let text = match command {
        ClientCommand::Analyses(a) => match &a.command {
            AnalysesCommand::List(l) => {
                let query = AnalysisQuery {
                    namespace: l.namespace.as_ref().map(|n| n.to_string()),
                    name: l.name.as_ref().map(|n| n.to_string()),
                    outcome: l.outcome.map(|o| o.as_str().to_owned()),
                    mode: l.mode.map(|m| m.as_str().to_owned()),
                    controller: l.controller.map(|c| c.as_str().to_owned()),
                    origin: l.origin.map(|o| o.as_str().to_owned()),
                    since: l.since.clone(),
                    limit: l.limit,
                    cursor: l.cursor.clone(),
                };
                show(
                    format,
                    &client.list_analyses(&query).await?,
                    &table::analyses,
                )?
            }
            AnalysesCommand::Show(s) => {
                show(format, &client.analysis(s.id).await?, &table::analysis)?
            }
        },
        ClientCommand::Backtest(b) => backtest_table::run(&client, b, format).await?,
        ClientCommand::Canary(c) => {
            let canary = resolve(&c.target)?;
            show(format, &client.canary(&canary).await?, &table::canary)?
        }
        ClientCommand::Gate(g) => {
            let change = g.command.change();
            let canary = resolve(&change.target)?;
            let answer = client
                .set_gate(&canary, change.gate, g.command.state(), &change.reason)
                .await?;
            show(format, &answer, &|v, detail| {
                table::gate(change.gate.as_str(), v, detail)
            })?
        }
        ClientCommand::Rollback(r) => {
            let canary = resolve(&r.target)?;
            show(
                format,
                &client.rollback(&canary, &r.reason).await?,
                &table::rollback,
            )?
        }
        ClientCommand::Audit(a) => {
            let target = match (&a.namespace, &a.name) {
                (Some(namespace), Some(name)) => Some(crate::domain::CanaryRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                }),
                _ => None,
            };
            let query = AuditQuery {
                target,
                limit: a.limit,
                cursor: a.cursor.clone(),
            };
            show(format, &client.audit(&query).await?, &table::audit)?
        }
        ClientCommand::Wait(w) => {
            let canary = resolve(&w.target)?;
            return wait::follow(&client, &canary, w, format).await;
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(exit::OK)
}
