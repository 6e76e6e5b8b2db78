//! The `verdict` command line: one binary, several verbs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::Role;

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

impl Cli {
    /// Parses the command line like clap, then checks what clap cannot check one argument
    /// at a time; every refusal is a clap usage error (exit code 2).
    pub fn parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        if let Command::Client(client) = &cli.command {
            client.check().map_err(|why| {
                <Self as clap::CommandFactory>::command()
                    .error(clap::error::ErrorKind::ValueValidation, why)
            })?;
        }
        Ok(cli)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook and API server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Simulate a Flagger rollout (a good canary, a regressed one, a manually gated one) through the real server.
    Demo(DemoArgs),
    /// Simulate many canaries per scenario and compare verdict with other judges.
    Evaluate(crate::evaluate::EvaluateArgs),
    /// Send HTTP load like hey (closed model) or at a constant rate (open model, --rate).
    Load(crate::loadgen::LoadArgs),
    /// Print an HS256 API token minted from the configured jwt.key (for set-up and tests).
    Token(TokenArgs),
    /// Client verbs of the release-manager API (docs/api.md).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Flags of `verdict token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The role the token grants: viewer, release-manager or admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The subject (who the token speaks for; recorded in the audit log).
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid, e.g. 30m, 8h.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: viewer, release-manager or admin"))
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
    /// After the rollouts, keep serving the web console (its URL and a sign-in token
    /// are printed) until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Where the demo's server listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::{AnalysesCommand, ClientCommand, Gate, GateCommand};
    use crate::store::AnalysisStatus;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let mut argv = vec!["verdict"];
        argv.extend_from_slice(args);
        Cli::parse_checked(argv)
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    fn client(args: &[&str]) -> ClientCommand {
        match parse(args) {
            Ok(Command::Client(c)) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn refused(args: &[&str], why: &str) {
        let err = parse(args).expect_err(&format!("{args:?} must be refused"));
        assert!(err.contains(why), "{args:?}: {err}");
    }

    #[test]
    fn gate_verbs_parse() {
        let c = client(&[
            "gate",
            "hold",
            "test/podinfo",
            "--gate",
            "promotion",
            "--reason",
            "waiting for the marketing launch",
            "--token",
            "a.b.c",
        ]);
        let ClientCommand::Gate(g) = &c else {
            panic!("{c:?}")
        };
        assert!(matches!(g.command, GateCommand::Hold(_)));
        assert_eq!(g.command.state(), "held");
        let change = g.command.change();
        assert_eq!(
            change.target.resolve().map(|c| c.to_string()),
            Ok("test/podinfo".to_owned())
        );
        assert_eq!(change.gate, Gate::Promotion);
        assert_eq!(change.reason, "waiting for the marketing launch");
        assert_eq!(
            c.connection().token.as_ref().map(|t| t.expose()),
            Some("a.b.c")
        );

        let c = client(&[
            "gate", "approve", "prod/api", "--gate", "rollout", "--reason", " go ", "--json",
        ]);
        let ClientCommand::Gate(g) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(g.command.state(), "open");
        assert_eq!(g.command.change().gate, Gate::Rollout);
        assert_eq!(g.command.change().reason, "go");
        assert!(c.connection().json);
    }

    #[test]
    fn canaries_are_named_as_kubectl_users_name_them() {
        let name = |args: &[&str]| match client(args) {
            ClientCommand::Canary(c) => c.target.resolve().map(|c| c.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(name(&["canary", "test/podinfo"]), Ok("test/podinfo".into()));
        assert_eq!(
            name(&["canary", "-n", "test", "podinfo"]),
            Ok("test/podinfo".into())
        );
        assert_eq!(
            name(&["canary", "podinfo", "--namespace", "test"]),
            Ok("test/podinfo".into())
        );
        assert_eq!(
            name(&["canary", "-n", "test", "test/podinfo"]),
            Ok("test/podinfo".into())
        );
        refused(&["canary", "-n", "prod", "test/podinfo"], "-n names prod");
        refused(&["canary", "-n", "Bad_NS", "podinfo"], "namespace");
        let ClientCommand::Gate(g) = client(&[
            "gate", "approve", "-n", "test", "podinfo", "--gate", "rollout", "--reason", "go",
        ]) else {
            panic!("gate")
        };
        assert_eq!(
            g.command.change().target.resolve().map(|c| c.to_string()),
            Ok("test/podinfo".into())
        );
        let ClientCommand::Wait(w) = client(&["wait", "-n", "test", "podinfo", "--timeout", "45m"])
        else {
            panic!("wait")
        };
        assert_eq!(w.timeout, Duration::from_secs(45 * 60));
        assert_eq!(w.interval, Duration::from_secs(10));
        let ClientCommand::Wait(w) = client(&["wait", "test/podinfo"]) else {
            panic!("wait")
        };
        assert_eq!(w.timeout, Duration::from_secs(30 * 60));
        refused(&["wait", "podinfo"], "NAMESPACE/NAME");
        refused(&["wait", "test/podinfo", "--timeout", "0s"], "above 0");
        // analyses list and audit take -n as their namespace filter.
        let ClientCommand::Analyses(a) = client(&["analyses", "list", "-n", "test"]) else {
            panic!("analyses")
        };
        let AnalysesCommand::List(l) = &a.command else {
            panic!("list")
        };
        assert_eq!(l.namespace.as_ref().map(|n| n.as_str()), Some("test"));
    }

    #[test]
    fn output_formats_and_the_json_alias() {
        use crate::client::args::OutputFormat;
        let format = |args: &[&str]| client(args).connection().format();
        assert_eq!(format(&["canary", "test/podinfo"]), None);
        for (flag, want) in [
            ("json", OutputFormat::Json),
            ("yaml", OutputFormat::Yaml),
            ("wide", OutputFormat::Wide),
        ] {
            assert_eq!(format(&["canary", "test/podinfo", "-o", flag]), Some(want));
            assert_eq!(format(&["analyses", "list", "--output", flag]), Some(want));
        }
        assert_eq!(
            format(&["audit", "--json"]),
            Some(OutputFormat::Json),
            "--json stays as an alias"
        );
        refused(&["audit", "-o", "xml"], "xml");
        refused(&["audit", "--json", "-o", "yaml"], "--json");
    }

    #[test]
    fn bad_canary_names_and_reasons_are_refused_before_any_request() {
        refused(&["canary", "podinfo"], "NAMESPACE/NAME");
        refused(&["canary", "Test/podinfo"], "namespace");
        refused(&["canary", "test/pod_info"], "name");
        refused(&["canary", "test/pod/info"], "name");
        refused(&["canary", "/podinfo"], "namespace");
        refused(&["rollback", "test", "--reason", "x"], "NAMESPACE/NAME");
        refused(&["rollback", "test/podinfo", "--reason", ""], "reason");
        refused(&["rollback", "test/podinfo", "--reason", "   "], "reason");
        refused(&["rollback", "test/podinfo"], "--reason");
        let long = "x".repeat(501);
        refused(&["rollback", "test/podinfo", "--reason", &long], "500");
        refused(
            &[
                "gate",
                "hold",
                "test/podinfo",
                "--gate",
                "promotion",
                "--reason",
                "",
            ],
            "reason",
        );
        refused(&["gate", "hold", "test/podinfo", "--reason", "x"], "--gate");
        refused(
            &[
                "gate",
                "hold",
                "test/podinfo",
                "--gate",
                "deploy",
                "--reason",
                "x",
            ],
            "deploy",
        );
        refused(&["gate", "open", "test/podinfo"], "open");
    }

    #[test]
    fn rollback_and_canary_parse() {
        let c = client(&[
            "rollback",
            "test/podinfo",
            "--reason",
            "customer reports of 502s",
        ]);
        let ClientCommand::Rollback(r) = &c else {
            panic!("{c:?}")
        };
        let canary = r.target.resolve().expect("canary");
        assert_eq!(canary.namespace.as_str(), "test");
        assert_eq!(canary.name.as_str(), "podinfo");
        assert_eq!(r.reason, "customer reports of 502s");

        let c = client(&[
            "canary",
            "test/podinfo",
            "--server",
            "https://verdict.example/",
        ]);
        assert_eq!(c.connection().server, "https://verdict.example");
        refused(
            &["canary", "test/podinfo", "--server", "verdict:8080"],
            "http",
        );
        refused(&["canary", "test/podinfo", "--token", "has space"], "token");
    }

    #[test]
    fn analyses_verbs_parse_and_check_their_filters() {
        let c = client(&[
            "analyses",
            "list",
            "--namespace",
            "test",
            "--name",
            "podinfo",
            "--outcome",
            "failed",
            "--since",
            "2026-11-01T01:00:00+01:00",
            "--limit",
            "20",
            "--cursor",
            "7",
        ]);
        let ClientCommand::Analyses(a) = &c else {
            panic!("{c:?}")
        };
        let AnalysesCommand::List(l) = &a.command else {
            panic!("{a:?}")
        };
        assert_eq!(l.namespace.as_ref().map(|n| n.as_str()), Some("test"));
        assert_eq!(l.name.as_ref().map(|n| n.as_str()), Some("podinfo"));
        assert_eq!(l.outcome, Some(AnalysisStatus::Failed));
        assert_eq!(l.since.as_deref(), Some("2026-11-01T00:00:00Z"));
        assert_eq!((l.limit, l.cursor.as_deref()), (Some(20), Some("7")));

        let c = client(&["analyses", "show", "7"]);
        let ClientCommand::Analyses(a) = &c else {
            panic!("{c:?}")
        };
        assert!(matches!(&a.command, AnalysesCommand::Show(s) if s.id == 7));

        refused(&["analyses", "list", "--limit", "0"], "0");
        refused(&["analyses", "list", "--limit", "201"], "201");
        refused(&["analyses", "list", "--since", "yesterday"], "RFC 3339");
        refused(&["analyses", "list", "--outcome", "passed"], "passed");
        refused(&["analyses", "list", "--namespace", "Bad_NS"], "namespace");
        refused(&["analyses", "list", "--cursor", ""], "cursor");
        refused(&["analyses", "show", "0"], "0");
        refused(&["analyses", "show", "seven"], "seven");
    }

    #[test]
    fn audit_filters_go_together() {
        let c = client(&[
            "audit",
            "--namespace",
            "test",
            "--name",
            "podinfo",
            "--limit",
            "5",
        ]);
        let ClientCommand::Audit(a) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(a.limit, Some(5));
        assert!(a.namespace.is_some() && a.name.is_some());
        assert!(matches!(client(&["audit"]), ClientCommand::Audit(_)));
        refused(&["audit", "--namespace", "test"], "--name");
        refused(&["audit", "--name", "podinfo"], "--namespace");
    }

    #[test]
    fn token_verb_parses_role_subject_and_ttl() {
        let Ok(Command::Token(t)) = parse(&[
            "token",
            "--role",
            "release-manager",
            "--sub",
            "alice",
            "--ttl",
            "8h",
        ]) else {
            panic!("token")
        };
        assert_eq!(t.role, Role::ReleaseManager);
        assert_eq!(t.sub, "alice");
        assert_eq!(t.ttl, Duration::from_secs(8 * 3600));
        let Ok(Command::Token(t)) = parse(&["token", "--role", "viewer", "--sub", "bob"]) else {
            panic!("token")
        };
        assert_eq!(t.ttl, Duration::from_secs(3600));
        refused(&["token", "--role", "boss", "--sub", "alice"], "not a role");
        refused(&["token", "--role", "admin"], "--sub");
        refused(
            &["token", "--role", "admin", "--sub", "a", "--ttl", "soon"],
            "soon",
        );
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let c = client(&["canary", "test/podinfo", "--token", "secret-token-value"]);
        assert!(!format!("{c:?}").contains("secret-token-value"));
    }
}
