//! SKELETON: `verdict evaluate` (issue 3).

/// Flags of `verdict evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Simulated canaries per scenario.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(_args: &EvaluateArgs) -> anyhow::Result<()> {
    anyhow::bail!("SKELETON: evaluate not built")
}
