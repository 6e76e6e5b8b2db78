//! `verdict wait [NS/]NAME`: follows the canary's analysis to its end, for a CI pipeline
//! or an Argo Rollouts Job step (docs/api.md, "verdict wait").
//!
//! The analysis followed is the one running when `wait` starts; when none is, the next one
//! to start (a deployment just applied starts its analysis at Flagger's next tick). Each new
//! look is printed as it is stored; the exit code says how it ended.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::Value;
use tokio::time::Instant;

use super::api::{ApiClient, ClientError};
use super::args::{OutputFormat, WaitArgs};
use super::{exit, table};
use crate::domain::CanaryRef;

/// How an analysis ended, by its stored status.
fn ending(status: &str) -> Option<u8> {
    match status {
        "succeeded" => Some(exit::OK),
        "failed" | "aborted" => Some(exit::ROLLED_BACK),
        _ => None,
    }
}

fn print(text: &str) -> Result<(), ClientError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The analysis `wait` follows: its id, once known.
#[derive(Debug, Default)]
struct Following {
    /// The latest analysis when `wait` started, if it had ended: a newer one is awaited.
    ended_before: Option<i64>,
    id: Option<i64>,
    started: bool,
    /// The analysis followed was named on the output.
    announced: bool,
}

/// Follows the canary's analysis; returns the exit code.
pub(super) async fn follow(
    client: &ApiClient,
    canary: &CanaryRef,
    args: &WaitArgs,
    format: Option<OutputFormat>,
) -> Result<u8, ClientError> {
    let json = matches!(format, Some(OutputFormat::Json | OutputFormat::Yaml));
    let deadline = Instant::now() + args.timeout;
    let mut following = Following::default();
    let mut printed: BTreeSet<i64> = BTreeSet::new();
    let mut said_waiting = false;
    loop {
        if let Some(code) = poll(client, canary, &mut following, &mut printed, json).await? {
            return Ok(code);
        }
        if following.id.is_none() && !said_waiting && !json {
            print(&format!("waiting for an analysis of {canary} to start\n"))?;
            said_waiting = true;
        }
        let now = Instant::now();
        if now >= deadline {
            let what = match following.id {
                Some(id) => format!("analysis {id} of {canary} is still running"),
                None => format!("no analysis of {canary} started"),
            };
            eprintln!(
                "verdict wait: timed out after {}: {what}",
                humantime::format_duration(args.timeout)
            );
            return Ok(exit::TIMEOUT);
        }
        tokio::time::sleep(args.interval.min(deadline - now)).await;
    }
}

/// One round: finds the analysis to follow, prints its new looks, and returns the exit
/// code once it has ended.
async fn poll(
    client: &ApiClient,
    canary: &CanaryRef,
    following: &mut Following,
    printed: &mut BTreeSet<i64>,
    json: bool,
) -> Result<Option<u8>, ClientError> {
    if following.id.is_none() {
        let latest = match client.canary(canary).await {
            Ok(state) => state.get("latest_analysis").cloned().unwrap_or(Value::Null),
            // verdict has not seen the canary yet: its first analysis is still to come.
            Err(ClientError::Api { status: 404, .. }) => Value::Null,
            Err(e) => return Err(e),
        };
        let id = latest.get("id").and_then(Value::as_i64);
        let status = latest.get("status").and_then(Value::as_str).unwrap_or("");
        match (id, following.started) {
            (Some(id), false) if ending(status).is_some() => following.ended_before = Some(id),
            (Some(id), _) if following.ended_before.is_none_or(|old| id > old) => {
                following.id = Some(id);
            }
            _ => {}
        }
        following.started = true;
        if following.id.is_none() {
            return Ok(None);
        }
    }
    let Some(id) = following.id else {
        return Ok(None);
    };
    let detail = client.analysis(id).await?;
    let analysis = detail.get("analysis").unwrap_or(&detail);
    if !following.announced && !json {
        following.announced = true;
        print(&format!(
            "following analysis {id} of {canary} (revision {})\n",
            table::cell(analysis.get("checksum"))
        ))?;
    }
    for look in detail
        .get("looks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let Some(seq) = look.get("seq").and_then(Value::as_i64) else {
            continue;
        };
        if printed.insert(seq) {
            let line = if json {
                look.to_string()
            } else {
                table::look_line(look)
            };
            print(&(line + "\n"))?;
        }
    }
    let status = analysis.get("status").and_then(Value::as_str).unwrap_or("");
    let Some(code) = ending(status) else {
        return Ok(None);
    };
    let line = if json {
        analysis.to_string()
    } else {
        format!(
            "analysis {id} {status}{}",
            analysis
                .get("status_reason")
                .and_then(Value::as_str)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    };
    print(&(line + "\n"))?;
    Ok(Some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_map_to_exit_codes() {
        assert_eq!(ending("succeeded"), Some(exit::OK));
        assert_eq!(ending("failed"), Some(exit::ROLLED_BACK));
        assert_eq!(ending("aborted"), Some(exit::ROLLED_BACK));
        assert_eq!(ending("running"), None);
    }
}
