//! The `verdict` binary as a client of the release-manager API (docs/api.md, "CLI"):
//! [`args`] checks the command line, [`api`] makes the calls, [`table`] prints for people
//! (`--json` prints the API's answer instead).

use std::io::Write;

use serde_json::Value;

pub mod api;
pub mod args;
pub mod table;

pub use api::{AnalysisQuery, ApiClient, AuditQuery, ClientError};
pub use args::ClientCommand;

use args::AnalysesCommand;

/// Runs one client verb and prints its answer to stdout.
pub async fn run(command: &ClientCommand) -> Result<(), ClientError> {
    let connection = command.connection();
    let client = ApiClient::new(&connection.server, connection.token.as_ref())?;
    let show = |answer: Value, render: &dyn Fn(&Value) -> String| {
        if connection.json {
            serde_json::to_string_pretty(&answer).map(|json| json + "\n")
        } else {
            Ok(render(&answer))
        }
    };
    let text = match command {
        ClientCommand::Analyses(a) => match &a.command {
            AnalysesCommand::List(l) => {
                let query = AnalysisQuery {
                    namespace: l.namespace.as_ref().map(|n| n.to_string()),
                    name: l.name.as_ref().map(|n| n.to_string()),
                    outcome: l.outcome.map(|o| o.as_str().to_owned()),
                    since: l.since.clone(),
                    limit: l.limit,
                    cursor: l.cursor.clone(),
                };
                show(client.list_analyses(&query).await?, &table::analyses)
            }
            AnalysesCommand::Show(s) => show(client.analysis(s.id).await?, &table::analysis),
        },
        ClientCommand::Canary(c) => show(client.canary(&c.canary).await?, &table::canary),
        ClientCommand::Gate(g) => {
            let change = g.command.change();
            let answer = client
                .set_gate(
                    &change.canary,
                    change.gate,
                    g.command.state(),
                    &change.reason,
                )
                .await?;
            show(answer, &|v| table::gate(change.gate.as_str(), v))
        }
        ClientCommand::Rollback(r) => show(
            client.rollback(&r.canary, &r.reason).await?,
            &table::rollback,
        ),
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
            show(client.audit(&query).await?, &table::audit)
        }
    }
    .map_err(|e| ClientError::Output(std::io::Error::other(e)))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
