//! The real verdict server for integration tests, started one way: [`spawn_app`].
//!
//! The server is bound on 127.0.0.1:0 over a fresh database ([`Backend`]: Postgres or
//! SQLite) and reads SLIs from a real Prometheus scraping a [`TestExporter`] that plays
//! canary and primary, or from verdict's simulator ([`Sli`]); Grafana annotations and the
//! release-manager API are on when their settings are given.
//!
//! The server gets its own store connection; the test reads the same database through
//! another one ([`TestApp::store`]), as an operator would, so nothing the test sees can
//! come from the server's memory. [`TestApp::restart_server`] stops the server and starts
//! a new one (new process state, new connection pool, new port) on the same database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use verdict::auth::{JwtAlgorithm, JwtSettings};
use verdict::config::{Config, GrafanaSettings, LogFormat};
use verdict::domain::{now_millis, AnalysisId, AnalysisKey, CanaryName, CanaryRef, Namespace};
use verdict::loadgen::LoadPolicy;
use verdict::sli::prometheus::{PrometheusConfig, PrometheusSli};
use verdict::sli::simulator::{SimulatedSli, SimulatedSliConfig};
use verdict::sli::templates::TemplateSet;
use verdict::sli::SliSource;
use verdict::startup::Application;
use verdict::store::{Analysis, DecisionRow, LookRow, Store};
use verdict::telemetry::Metrics;

pub use crate::db::Backend;
use crate::db::TestDb;
use crate::exporter::{Profile, TestExporter};
use crate::flagger::{Flagger, HookReply, Payload};
use crate::prometheus::TestPrometheus;

/// The namespace every Prometheus-backed test canary lives in.
pub const NS: &str = "test";

/// Identical arms' latency (ms): inside Istio's 25 ms bucket, so b* is 25 ms.
pub const FAST_MS: f64 = 20.0;

/// Where the server reads its SLIs.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// A real Prometheus scraping a [`TestExporter`] every second.
    Prometheus,
    /// verdict's simulator (as in `verdict demo`): `time_scale` simulated seconds per
    /// real second, an hour of history, randomness from `seed`.
    Simulated {
        /// Simulated seconds per real second.
        time_scale: f64,
        /// Seeds the simulated traffic.
        seed: u64,
    },
}

/// How the server under test is configured.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Where SLIs come from.
    pub sli: Sli,
    /// Which database.
    pub store: Backend,
    /// `grafana.*`: annotations on (and written to the outbox) when given.
    pub grafana: Option<GrafanaSettings>,
    /// `jwt.*`: the release-manager API (off when `None`).
    pub jwt: Option<JwtSettings>,
    /// `defaults.min_look_gap`: calls closer together reuse the last look.
    pub min_look_gap: Duration,
    /// `defaults.lookback` and `defaults.lookback_step`: the primary's history an
    /// analysis' plan is made from (the configuration's defaults when `None`).
    pub history: Option<(Duration, Duration)>,
    /// `webhook_token`.
    pub webhook_token: Option<String>,
    /// `namespace_allow`.
    pub namespace_allow: Option<String>,
    /// `prometheus.timeout`.
    pub prometheus_timeout: Duration,
    /// `load.*`: what the load-test hook may target and how much.
    pub load: LoadPolicy,
    /// How often the test Prometheus scrapes the exporter (whole seconds).
    pub scrape_interval: Duration,
}

impl AppOptions {
    /// The API on, with HS256 and [`crate::api::SECRET`].
    pub fn with_api() -> Self {
        Self {
            jwt: Some(hs256_api()),
            ..Self::default()
        }
    }

    /// The API on, with RS256 and `tests/fixtures/jwt/rsa-public.pem`.
    pub fn with_rs256_api() -> Self {
        Self {
            jwt: Some(JwtSettings {
                algorithm: JwtAlgorithm::Rs256,
                key_file: Some(
                    format!(
                        "{}/../fixtures/jwt/rsa-public.pem",
                        env!("CARGO_MANIFEST_DIR")
                    )
                    .into(),
                ),
                issuer: crate::api::ISSUER.to_owned(),
                audience: crate::api::AUDIENCE.to_owned(),
                ..JwtSettings::default()
            }),
            ..Self::default()
        }
    }

    /// Simulated SLIs as `verdict demo` has them (120 simulated seconds per second).
    pub fn simulated(seed: u64) -> Self {
        Self {
            sli: Sli::Simulated {
                time_scale: 120.0,
                seed,
            },
            ..Self::default()
        }
    }
}

/// The API's settings with HS256 and [`crate::api::SECRET`].
pub fn hs256_api() -> JwtSettings {
    JwtSettings {
        key: Some(SecretString::from(crate::api::SECRET)),
        issuer: crate::api::ISSUER.to_owned(),
        audience: crate::api::AUDIENCE.to_owned(),
        ..JwtSettings::default()
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            sli: Sli::Prometheus,
            store: Backend::Postgres,
            grafana: None,
            jwt: None,
            // Prometheus scrapes every second; a 1 s gap keeps each look's window at least
            // one scrape wide while tests stay short.
            min_look_gap: Duration::from_secs(1),
            history: None,
            webhook_token: None,
            namespace_allow: None,
            prometheus_timeout: Duration::from_secs(2),
            load: LoadPolicy::default(),
            scrape_interval: Duration::from_secs(1),
        }
    }
}

/// Where the running server reads its SLIs, and what the test uses to steer them.
#[derive(Debug)]
enum Sources {
    Prometheus(Box<Scraped>),
    Simulated(Arc<SimulatedSli>),
}

/// A real Prometheus and the exporter it scrapes.
#[derive(Debug)]
struct Scraped {
    exporter: TestExporter,
    prometheus: TestPrometheus,
}

/// A running server task and the means to stop it.
#[derive(Debug)]
struct Server {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Stops it and waits until it has stopped cleanly.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("server task did not panic")
            .expect("server stopped cleanly");
    }
}

/// Another server on the same database and SLI source.
#[derive(Debug)]
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Calls its hooks like Flagger does.
    pub client: Flagger,
    server: Server,
}

impl Replica {
    /// `http://127.0.0.1:<port>` of this replica.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls a hook of this replica like Flagger does.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.client.call(hook, payload).await
    }

    /// Stops this replica and waits until it has stopped.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Everything a test talks to.
#[derive(Debug)]
pub struct TestApp {
    /// Where the server currently listens.
    pub addr: SocketAddr,
    /// A client that follows Flagger's contract, pointed at the current server.
    pub client: Flagger,
    /// Plain HTTP for the non-hook endpoints.
    pub http: reqwest::Client,
    /// The test's own connection to the server's database.
    pub store: Store,
    /// The server's database.
    pub db: TestDb,
    sources: Sources,
    config: Config,
    server: Option<Server>,
    /// `verdict serve` as a separate OS process, once [`TestApp::continue_in_a_new_process`]
    /// has replaced the in-process server.
    process: Option<tokio::process::Child>,
}

/// Starts the SLI source (for Prometheus: an exporter with every arm idle, and
/// Prometheus scraping it), a fresh database and the server.
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let (sources, db) = match options.sli {
        Sli::Prometheus => {
            let exporter = TestExporter::start().await;
            let targets = [exporter.addr()];
            let (prometheus, db) = tokio::join!(
                TestPrometheus::start_scraping_every(&targets, options.scrape_interval),
                TestDb::new(options.store)
            );
            (
                Sources::Prometheus(Box::new(Scraped {
                    exporter,
                    prometheus,
                })),
                db,
            )
        }
        Sli::Simulated { time_scale, seed } => {
            // An hour of simulated history before now, for pre-rollout's look-back.
            let history = (3_600_000.0 / time_scale) as i64;
            let simulator = SimulatedSli::new(SimulatedSliConfig {
                time_scale,
                ..SimulatedSliConfig::demo(now_millis() - history, seed)
            })
            .expect("the simulator's settings are valid");
            let db = TestDb::new(options.store).await;
            (Sources::Simulated(Arc::new(simulator)), db)
        }
    };
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: SecretString::from(db.url.clone()),
        webhook_token: options.webhook_token.map(SecretString::from),
        namespace_allow: options.namespace_allow,
        log_format: LogFormat::Pretty,
        shutdown_grace: Duration::from_secs(2),
        load: options.load,
        ..Config::default()
    };
    if let Sources::Prometheus(scraped) = &sources {
        config.prometheus.url = scraped.prometheus.url();
    }
    config.prometheus.timeout = options.prometheus_timeout;
    config.defaults.min_look_gap = options.min_look_gap;
    if let Some((lookback, step)) = options.history {
        config.defaults.lookback = lookback;
        config.defaults.lookback_step = step;
    }
    if let Some(jwt) = options.jwt {
        config.jwt = jwt;
    }
    if let Some(grafana) = options.grafana {
        config.grafana = grafana;
    }
    config.validate().expect("the test configuration is valid");

    let mut app = TestApp {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        client: Flagger::new("http://127.0.0.1:0"),
        http: reqwest::Client::new(),
        store: db.store().await,
        db,
        sources,
        config,
        server: None,
        process: None,
    };
    app.start_server().await;
    app
}

impl TestApp {
    /// Builds and starts a server on the same database and SLI source: what a new
    /// replica, or the old one after a restart, does.
    async fn start_server(&mut self) {
        let (addr, server) = self.launch().await;
        self.addr = addr;
        self.client = Flagger::new(self.base_url());
        self.server = Some(server);
    }

    /// Builds and starts one more server on the same database and SLI source.
    async fn launch(&self) -> (SocketAddr, Server) {
        let sli: Arc<dyn SliSource> = match &self.sources {
            Sources::Prometheus(_) => Arc::new(
                PrometheusSli::new(
                    PrometheusConfig {
                        url: self.config.prometheus.url.clone(),
                        timeout: self.config.prometheus.timeout,
                        auth: None,
                    },
                    TemplateSet::builtin().expect("shipped templates load"),
                )
                .expect("Prometheus client"),
            ),
            Sources::Simulated(simulator) => simulator.clone(),
        };
        let application = Application::build(
            self.config.clone(),
            self.db.store().await,
            sli,
            Metrics::new(),
        )
        .await
        .expect("build the application");
        let addr = application.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until(async move {
            let _ = rx.await;
        }));
        (addr, Server { shutdown: tx, task })
    }

    /// A second server (another replica) on the same database; stop it with
    /// [`Replica::stop`].
    pub async fn spawn_replica(&self) -> Replica {
        let (addr, server) = self.launch().await;
        Replica {
            addr,
            client: Flagger::new(format!("http://{addr}")),
            server,
        }
    }

    /// Stops the server (in-flight calls may finish) and waits until it has stopped.
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(mut process) = self.process.take() {
            process.start_kill().expect("stop verdict serve");
            process.wait().await.expect("verdict serve stopped");
        }
    }

    /// Stops the server and continues with `verdict serve` as a separate OS process
    /// (`binary`: the test's `env!("CARGO_BIN_EXE_verdict")`) on the same database and
    /// Prometheus, configured through `VERDICT_*` variables from this app's configuration:
    /// nothing is shared with the first server but the database and Prometheus. Only the
    /// settings [`spawn_app`] sets for a Prometheus app are carried over; the process stops
    /// with the app.
    pub async fn continue_in_a_new_process(&mut self, binary: &str) {
        assert!(
            matches!(self.sources, Sources::Prometheus(_)),
            "a separate process reads Prometheus, not this test's simulator"
        );
        self.stop_server().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let duration = |d: Duration| format!("{}ms", d.as_millis());
        let c = &self.config;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("serve")
            .env_clear()
            .env("VERDICT_LISTEN", addr.to_string())
            .env("VERDICT_DATABASE_URL", &self.db.url)
            .env("VERDICT_PROMETHEUS__URL", &c.prometheus.url)
            .env(
                "VERDICT_PROMETHEUS__TIMEOUT",
                duration(c.prometheus.timeout),
            )
            .env(
                "VERDICT_DEFAULTS__MIN_LOOK_GAP",
                duration(c.defaults.min_look_gap),
            )
            .env("VERDICT_DEFAULTS__LOOKBACK", duration(c.defaults.lookback))
            .env(
                "VERDICT_DEFAULTS__LOOKBACK_STEP",
                duration(c.defaults.lookback_step),
            )
            .env("VERDICT_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        if let Some(token) = &c.webhook_token {
            use secrecy::ExposeSecret;
            command.env("VERDICT_WEBHOOK_TOKEN", token.expose_secret());
        }
        if let Some(allow) = &c.namespace_allow {
            command.env("VERDICT_NAMESPACE_ALLOW", allow);
        }
        let mut process = command.spawn().expect("start verdict serve");
        let ready = format!("http://{addr}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(&ready).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = process.try_wait() {
                panic!("verdict serve exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "verdict serve was not ready in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.addr = addr;
        self.client = Flagger::new(self.base_url());
        self.process = Some(process);
    }

    /// Stops the server and starts a new one on the same database (on a new port).
    pub async fn restart_server(&mut self) {
        self.stop_server().await;
        self.start_server().await;
    }

    /// The test Prometheus; panics for a simulated app.
    pub fn prometheus(&self) -> &TestPrometheus {
        match &self.sources {
            Sources::Prometheus(scraped) => &scraped.prometheus,
            Sources::Simulated(_) => panic!("this test's app reads simulated SLIs"),
        }
    }

    /// The test Prometheus, to stop or restart it; panics for a simulated app.
    pub fn prometheus_mut(&mut self) -> &mut TestPrometheus {
        match &mut self.sources {
            Sources::Prometheus(scraped) => &mut scraped.prometheus,
            Sources::Simulated(_) => panic!("this test's app reads simulated SLIs"),
        }
    }

    /// The exporter playing every arm; panics for a simulated app.
    pub fn exporter(&self) -> &TestExporter {
        match &self.sources {
            Sources::Prometheus(scraped) => &scraped.exporter,
            Sources::Simulated(_) => panic!("this test's app reads simulated SLIs"),
        }
    }

    /// The simulator; panics for an app that reads Prometheus.
    pub fn simulator(&self) -> &SimulatedSli {
        match &self.sources {
            Sources::Simulated(simulator) => simulator,
            Sources::Prometheus(_) => panic!("this test's app reads Prometheus"),
        }
    }

    /// Restarts Prometheus on the same port and data, and waits for its first new scrape.
    ///
    /// [`TestPrometheus::restart`] returns once Prometheus is ready, but a restarted
    /// Prometheus scrapes again only after its discovery reload (up to ~5 s), and its
    /// scrape check also counts samples kept from before the restart.
    pub async fn restart_prometheus(&mut self) {
        let since = unix_seconds();
        self.prometheus_mut().restart().await;
        let query = format!("count(timestamp(up) > {since:.3})");
        let this = &*self;
        eventually(
            "a scrape after the restart",
            Duration::from_secs(60),
            || {
                let query = query.clone();
                async move { (this.prometheus_value(&query).await? >= 1.0).then_some(()) }
            },
        )
        .await;
    }

    /// The first value of an instant query, if Prometheus answers with one.
    pub async fn prometheus_value(&self, query: &str) -> Option<f64> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.prometheus().url()))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Points servers started from now on at another Prometheus (e.g. one that hangs).
    pub fn set_prometheus_url(&mut self, url: String) {
        self.config.prometheus.url = url;
    }

    /// `http://127.0.0.1:<port>` of the current server.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the traffic of `target` (canary) and `target-primary` in [`NS`] from now on.
    pub fn traffic(&self, target: &str, canary: Profile, primary: Profile) {
        let exporter = self.exporter();
        exporter.set_profile(NS, target, canary);
        exporter.set_profile(NS, &format!("{target}-primary"), primary);
    }

    /// Calls a hook like Flagger does; panics only if the server cannot be reached.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.client.call(hook, payload).await
    }

    /// POSTs raw bytes to a hook (for bodies Flagger's client could never produce).
    pub async fn post_raw(&self, hook: &str, body: impl Into<reqwest::Body>) -> HookReply {
        self.client.post_raw(hook, body).await
    }

    /// GETs a path of the server; returns the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The analysis of `payload`'s revision, if one was opened.
    pub async fn analysis(&self, payload: &Payload) -> Option<Analysis> {
        let key = AnalysisKey {
            namespace: Namespace::parse(&payload.namespace).ok()?,
            name: CanaryName::parse(&payload.name).ok()?,
            checksum: verdict::domain::Checksum::parse(&payload.checksum).ok()?,
        };
        self.store.find_analysis(&key).await.expect("find_analysis")
    }

    /// The looks of an analysis, by `seq`.
    pub async fn looks(&self, analysis_id: AnalysisId) -> Vec<LookRow> {
        self.store.looks(analysis_id).await.expect("looks")
    }

    /// The decisions of an analysis, oldest first.
    pub async fn decisions(&self, analysis_id: AnalysisId) -> Vec<DecisionRow> {
        self.store.decisions(analysis_id).await.expect("decisions")
    }

    /// Every decision recorded for a canary name in [`NS`], with or without an analysis.
    pub async fn decisions_for(&self, name: &str) -> Vec<DecisionRow> {
        self.store
            .decisions_for(&canary(NS, name))
            .await
            .expect("decisions_for")
    }

    /// Stops the server and Prometheus and drops the database. Call it at the end of a
    /// passing test; a failing test leaves its database for inspection.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
        if let Sources::Prometheus(scraped) = &mut self.sources {
            scraped.prometheus.stop().await;
        }
        self.db.drop_database().await;
    }
}

/// A canary from its namespace and name; panics on an invalid name (a test's mistake).
pub fn canary(namespace: &str, name: &str) -> CanaryRef {
    CanaryRef::parse(&format!("{namespace}/{name}"))
        .unwrap_or_else(|e| panic!("{namespace}/{name}: {e}"))
}

/// A Flagger payload for canary `name` in [`NS`] with the given metadata.
pub fn payload(name: &str, checksum: &str, metadata: &[(&str, &str)]) -> Payload {
    Payload {
        name: name.to_owned(),
        namespace: NS.to_owned(),
        phase: "Progressing".to_owned(),
        checksum: checksum.to_owned(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sleeps long enough for the next rollout call to take a new look over a window that
/// spans at least two scrapes (min_look_gap 1 s, scrape interval 1 s).
pub async fn next_look() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// Waits until Prometheus holds enough history of the primary for pre-rollout's look-back
/// (at least two scrapes with traffic).
pub async fn warm_up() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
