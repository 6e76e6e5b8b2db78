use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = verdict::cli::Cli::parse();
    match &cli.command {
        verdict::cli::Command::Evaluate(args) => verdict::evaluate::run(args),
        _ => anyhow::bail!("SKELETON"),
    }
}
