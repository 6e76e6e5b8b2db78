//! The `verdict` command line: one binary, several verbs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// verdict: statistical canary analysis beside Flagger.
#[derive(Debug, Parser)]
#[command(name = "verdict", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables `VERDICT_*` override it.
    #[arg(long, short = 'f', global = true, env = "VERDICT_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook and API server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Simulate a Flagger rollout (one good canary, one regressed canary) through the real server.
    Demo(DemoArgs),
    /// Simulate many canaries per scenario and compare verdict with other judges.
    Evaluate(crate::evaluate::EvaluateArgs),
    /// Send HTTP load like hey (closed model) or at a constant rate (open model, --rate).
    Load(crate::loadgen::LoadArgs),
}

/// Flags of `verdict demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the SQLite database here instead of a temporary file.
    #[arg(long)]
    pub database: Option<PathBuf>,
}
