//! `verdict load URL`: the load generator stand-alone, with hey's flags, so it can be measured
//! against hey and wrk on the same target.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::spec::{self, LoadSpec, Model, SpecError};

/// Flags of `verdict load` (hey's, plus `--rate` and `--json`).
#[derive(Debug, Clone, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct LoadArgs {
    /// Target URL (http or https).
    pub url: String,
    /// Send for this long (Go syntax: 10s, 1m, 1m30s); -n is then ignored, as in hey.
    #[arg(short = 'z', value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Number of requests to send [default: 200 without -z].
    #[arg(short = 'n')]
    pub requests: Option<u64>,
    /// Workers (connections); in the open model the bound on requests in flight.
    #[arg(short = 'c', default_value_t = spec::DEFAULT_CONCURRENCY)]
    pub concurrency: u32,
    /// Rate limit per worker, requests per second (closed model, like hey); 0 is no limit.
    #[arg(short = 'q', conflicts_with = "rate")]
    pub rate_per_worker: Option<f64>,
    /// Open model: this many requests per second in total, latency measured from each
    /// request's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// HTTP method.
    #[arg(short = 'm', default_value = "GET")]
    pub method: String,
    /// Header "Name: value"; repeatable.
    #[arg(short = 'H')]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(short = 'd')]
    pub body: Option<String>,
    /// Content-Type of the body.
    #[arg(short = 'T')]
    pub content_type: Option<String>,
    /// Timeout per request in seconds, connect included; 0 is no timeout.
    #[arg(short = 't', default_value_t = 20)]
    pub timeout: u64,
    /// Print the result as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The spec these flags describe.
    pub fn spec(&self) -> Result<LoadSpec, SpecError> {
        let mut spec = LoadSpec::new(self.url.clone());
        spec.duration = self.duration;
        // hey ignores -n when -z is given.
        spec.requests = if self.duration.is_some() {
            None
        } else {
            self.requests
        };
        spec.concurrency = self.concurrency;
        spec.model = match (self.rate, self.rate_per_worker) {
            (Some(rate), _) => Model::Open { rate },
            (None, Some(q)) => Model::Closed {
                per_worker_rate: (q != 0.0).then_some(q),
            },
            (None, None) => Model::Closed {
                per_worker_rate: None,
            },
        };
        spec.method = self.method.clone();
        spec.headers = self
            .headers
            .iter()
            .map(|h| spec::parse_header(h))
            .collect::<Result<_, _>>()?;
        spec.body = self.body.clone();
        spec.content_type = self.content_type.clone();
        spec.timeout = spec::timeout_from_secs(self.timeout);
        spec.validate()?;
        Ok(spec)
    }
}

/// Runs `verdict load`: sends the load, then prints hey's summary or JSON. Ctrl-C stops early
/// and still prints what was measured.
pub async fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let spec = args.spec().context("invalid load test")?;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let result = super::engine::run(&spec, stop)
        .await
        .context("invalid load test")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).context("encoding the result")?
        );
    } else {
        print!("{}", result.summary());
    }
    Ok(())
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    spec::parse_go_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn parse(argv: &[&str]) -> Result<LoadSpec, String> {
        let w = Wrapper::try_parse_from(std::iter::once("load").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        w.args.spec().map_err(|e| e.to_string())
    }

    #[test]
    fn hey_flags_map_to_a_spec() {
        let spec = parse(&[
            "-z",
            "10s",
            "-c",
            "8",
            "-q",
            "5",
            "-m",
            "PUT",
            "-H",
            "A: 1",
            "-H",
            "B: 2",
            "-d",
            "x",
            "-T",
            "text/plain",
            "-t",
            "0",
            "http://127.0.0.1:8080/",
        ])
        .unwrap();
        assert_eq!(spec.duration, Some(Duration::from_secs(10)));
        assert_eq!(spec.max_rate(), Some(40.0));
        assert_eq!(spec.headers.len(), 2);
        assert_eq!(spec.timeout, None);
        let open = parse(&["--rate", "1000", "-n", "5000", "http://h/"]).unwrap();
        assert_eq!(open.model, Model::Open { rate: 1000.0 });
        assert_eq!(open.request_limit(), Some(5000));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--rate", "-5", "http://h/"])
            .unwrap_err()
            .contains("above 0"));
        assert!(parse(&["-q", "1", "--rate", "5", "http://h/"]).is_err());
        assert!(parse(&["-z", "ten", "http://h/"]).is_err());
        assert!(parse(&["ftp://h/"]).unwrap_err().contains("scheme"));
    }
}
