//! The `verdict` binary: parse the command line, call into the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use verdict::cli::{Cli, Command};
use verdict::client::ClientError;
use verdict::config::Config;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with the chain of causes; no backtrace for a user's mistake.
            match e.downcast_ref::<ClientError>() {
                // What the API said, as docs/api.md shows it: `error: <message> (<status>)`.
                Some(client) => eprintln!("error: {client}"),
                None => eprintln!("verdict: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Evaluate(args) => verdict::evaluate::run(args),
        Command::Load(args) => runtime()?.block_on(verdict::loadgen::cli::run(args)),
        Command::Demo(args) => runtime()?.block_on(verdict::demo::run(args)),
        Command::Serve => {
            let config = load_config(&cli)?;
            runtime()?.block_on(async move {
                let app = verdict::startup::from_config(config).await?;
                app.run_until(verdict::startup::shutdown_signal()).await
            })
        }
        Command::Token(args) => {
            let config = load_config(&cli)?;
            let token = verdict::auth::mint(&config.jwt, args.role, &args.sub, args.ttl)?;
            println!("{token}");
            Ok(())
        }
        // No configuration: the client only needs --server and --token.
        Command::Client(command) => Ok(runtime()?.block_on(verdict::client::run(command))?),
        Command::Migrate => {
            let config = load_config(&cli)?;
            runtime()?.block_on(async move {
                verdict::startup::connect_store(&config).await?;
                println!("migrations applied");
                Ok(())
            })
        }
    }
}

/// Loads the configuration, starts logging, and says once which `VERDICT_*` variables were
/// left out because they name no configuration key.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (config, ignored) = Config::load_reporting(cli.config.as_deref())?;
    verdict::telemetry::init(config.log_format);
    if !ignored.is_empty() {
        tracing::warn!(
            variables = %ignored.join(", "),
            "ignoring environment variables that are no verdict configuration key (Kubernetes sets VERDICT_PORT, VERDICT_SERVICE_HOST, … for a Service named verdict)"
        );
    }
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
