//! A real Prometheus server for integration tests: a temporary data directory, a 1 s
//! scrape interval (or another one), a free port on 127.0.0.1, killed when dropped.
//!
//! The binary is `/usr/bin/prometheus` (Debian's `prometheus` package) unless
//! `VERDICT_TEST_PROMETHEUS` names another.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

const DEFAULT_BINARY: &str = "/usr/bin/prometheus";

/// A running Prometheus.
#[derive(Debug)]
pub struct TestPrometheus {
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    targets: usize,
    child: Option<Child>,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `targets` every second; returns once it is ready and has
    /// scraped every target successfully at least once.
    pub async fn start(targets: &[SocketAddr]) -> Self {
        Self::start_scraping_every(targets, Duration::from_secs(1)).await
    }

    /// Starts Prometheus scraping `targets` every `interval` (whole seconds); returns once
    /// it is ready and has scraped every target successfully at least once.
    pub async fn start_scraping_every(targets: &[SocketAddr], interval: Duration) -> Self {
        let binary = std::env::var_os("VERDICT_TEST_PROMETHEUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
        assert!(
            binary.is_file(),
            "Prometheus binary not found at {}: install it with `apt-get install -y prometheus` \
             or set VERDICT_TEST_PROMETHEUS to its path",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temporary directory for Prometheus");
        std::fs::create_dir(dir.path().join("data")).expect("Prometheus data directory");
        let list = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let seconds = interval.as_secs().max(1);
        let config = format!(
            "global:\n  scrape_interval: {seconds}s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: verdict-test\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        let port = free_port();
        let mut prometheus = Self {
            binary,
            dir,
            port,
            targets: targets.len(),
            child: None,
        };
        let since = unix_seconds();
        prometheus.spawn().await;
        prometheus.wait_for_scrapes(since).await;
        prometheus
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to exit. Its data stays for [`Self::restart`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port and data directory; returns once ready.
    pub async fn restart(&mut self) {
        self.stop().await;
        let since = unix_seconds();
        self.spawn().await;
        self.wait_for_scrapes(since).await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("Prometheus log file");
        let log_err = log.try_clone().expect("Prometheus log file");
        let dir = self.dir.path();
        let child = Command::new(&self.binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "Prometheus exited ({status}) before becoming ready:\n{}",
                        tail(&self.log_path())
                    );
                }
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready after 60 s:\n{}",
                tail(&self.log_path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every target has been scraped successfully (`up == 1`) since `since`
    /// (Unix seconds), so samples kept from before a restart do not count.
    async fn wait_for_scrapes(&self, since: f64) {
        if self.targets == 0 {
            return;
        }
        // `timestamp(up == 1)` would be the evaluation time (a filtered vector keeps no
        // sample timestamps); take the scrape's own timestamp, then require success.
        let query = format!("count((timestamp(up) > {since:.3}) and (up == 1))");
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/query", self.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = http
                .get(&url)
                .query(&[("query", query.as_str())])
                .send()
                .await
                .ok();
            let count = match up {
                Some(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| {
                        v["data"]["result"][0]["value"][1]
                            .as_str()
                            .and_then(|s| s.parse::<usize>().ok())
                    })
                    .unwrap_or(0),
                None => 0,
            };
            if count >= self.targets {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus scraped {count} of {} targets after 60 s:\n{}",
                self.targets,
                tail(&self.log_path())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        // kill_on_drop sends SIGKILL when the Child is dropped; the temp dir goes after it.
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A port that was free a moment ago. Prometheus needs a number on its command line, so
/// the usual bind-to-0 cannot be handed over; the race with other processes is tolerable
/// in tests.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("find a free port");
    listener.local_addr().expect("free port").port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
