//! The `verdict` binary: parse the command line, call into the library.

use std::process::ExitCode;

use anyhow::Context;
use verdict::cli::{Cli, Command};
use verdict::config::Config;

fn main() -> ExitCode {
    // A usage error prints clap's message and exits 2, for every verb.
    let cli = Cli::parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Command::Client(command) = &cli.command {
        return client(command);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with the chain of causes; no backtrace for a user's mistake.
            eprintln!("verdict: {e:#}");
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
            let config = load_config(&cli)?;
            let token = verdict::auth::mint(&config.jwt, args.role, &args.sub, args.ttl)?;
            println!("{token}");
            Ok(())
        }
        Command::Client(command) => {
            let code = runtime()?.block_on(verdict::client::run(command))?;
            anyhow::ensure!(code == verdict::client::exit::OK, "exit code {code}");
            Ok(())
        }
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

/// Runs a client verb: no configuration (the client only needs --server and --token), and
/// the exit codes of docs/api.md ("Exit codes").
fn client(command: &verdict::client::ClientCommand) -> ExitCode {
    let outcome = match runtime() {
        Ok(rt) => rt.block_on(verdict::client::run(command)),
        Err(e) => {
            eprintln!("verdict: {e:#}");
            return ExitCode::from(verdict::client::exit::ERROR);
        }
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // What the API said, as docs/api.md shows it: `error: <message> (<status>)`.
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
