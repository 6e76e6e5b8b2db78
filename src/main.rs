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
            let config = Config::load(cli.config.as_deref())?;
            verdict::telemetry::init(config.log_format);
            let runtime = runtime()?;
            let served = runtime.block_on(async move {
                let app = verdict::startup::from_config(config).await?;
                app.run_until(verdict::startup::shutdown_signal()).await
            });
            // run_until returns by the shutdown deadline; work blocking a thread past it
            // (a DNS lookup, say) must not hold the process beyond the pod's grace period.
            runtime.shutdown_timeout(verdict::startup::RUNTIME_STOP);
            served
        }
        Command::Token(args) => {
            let config = Config::load(cli.config.as_deref())?;
            let token = verdict::auth::mint(&config.jwt, args.role, &args.sub, args.ttl)?;
            println!("{token}");
            Ok(())
        }
        // No configuration: the client only needs --server and --token.
        Command::Client(command) => Ok(runtime()?.block_on(verdict::client::run(command))?),
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            verdict::telemetry::init(config.log_format);
            runtime()?.block_on(async move {
                verdict::startup::connect_store(&config).await?;
                println!("migrations applied");
                Ok(())
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
