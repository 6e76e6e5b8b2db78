//! The real verdict server for integration tests: bound on 127.0.0.1:0, a fresh Postgres
//! database, a [`TestExporter`] playing canary and primary, and a [`TestPrometheus`]
//! scraping it every second.
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
use verdict::config::{Config, JwtAlgorithm, JwtSettings};
use verdict::demo::client::{FlaggerClient, HookReply, Payload};
use verdict::sli::prometheus::{PrometheusConfig, PrometheusSli};
use verdict::sli::templates::TemplateSet;
use verdict::startup::Application;
use verdict::store::{Analysis, DecisionRow, LookRow, Store};
use verdict::telemetry::Metrics;

use super::exporter::{Profile, TestExporter};
use super::postgres;
use super::prometheus::TestPrometheus;

/// The namespace every test canary lives in.
pub const NS: &str = "test";

/// Identical arms' latency (ms): inside Istio's 25 ms bucket, so b* is 25 ms.
pub const FAST_MS: f64 = 20.0;

/// How the server under test is configured.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// `defaults.min_look_gap`: calls closer together reuse the last look.
    pub min_look_gap: Duration,
    /// `webhook_token`.
    pub webhook_token: Option<String>,
    /// `namespace_allow`.
    pub namespace_allow: Option<String>,
    /// `prometheus.timeout`.
    pub prometheus_timeout: Duration,
    /// `jwt.*`: the release-manager API (off when `None`).
    pub jwt: Option<JwtSettings>,
    /// `load.*`: the load-test hook's allow-list and caps (the defaults when `None`).
    pub load: Option<verdict::loadgen::LoadPolicy>,
}

impl AppOptions {
    /// The API on, with HS256 and [`super::api::SECRET`].
    pub fn with_api() -> Self {
        Self {
            jwt: Some(JwtSettings {
                key: Some(SecretString::from(super::api::SECRET)),
                issuer: super::api::ISSUER.to_owned(),
                audience: super::api::AUDIENCE.to_owned(),
                ..JwtSettings::default()
            }),
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
                        "{}/tests/fixtures/jwt/rsa-public.pem",
                        env!("CARGO_MANIFEST_DIR")
                    )
                    .into(),
                ),
                issuer: super::api::ISSUER.to_owned(),
                audience: super::api::AUDIENCE.to_owned(),
                ..JwtSettings::default()
            }),
            ..Self::default()
        }
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            // Prometheus scrapes every second; a 1 s gap keeps each look's window at least
            // one scrape wide while tests stay short.
            min_look_gap: Duration::from_secs(1),
            webhook_token: None,
            namespace_allow: None,
            prometheus_timeout: Duration::from_secs(2),
            jwt: None,
            load: None,
        }
    }
}

/// A running server task and the means to stop it.
#[derive(Debug)]
struct Server {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Another server on the same database and Prometheus.
#[derive(Debug)]
pub struct Replica {
    pub addr: SocketAddr,
    pub client: FlaggerClient,
    server: Server,
}

impl Replica {
    /// `http://127.0.0.1:<port>` of this replica.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls a hook of this replica like Flagger does.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.client
            .call(hook, payload)
            .await
            .unwrap_or_else(|e| panic!("calling {hook} on the replica: {e}"))
    }

    /// Stops this replica and waits until it has stopped.
    pub async fn stop(self) {
        let _ = self.server.shutdown.send(());
        self.server
            .task
            .await
            .expect("replica task did not panic")
            .expect("replica stopped cleanly");
    }
}

/// Everything a test talks to.
pub struct TestApp {
    /// Where the server currently listens.
    pub addr: SocketAddr,
    /// A client that follows Flagger's contract, pointed at the current server.
    pub client: FlaggerClient,
    /// Plain HTTP for the non-hook endpoints and for malformed bodies.
    pub http: reqwest::Client,
    /// The test's own connection to the server's database.
    pub store: Arc<dyn Store>,
    /// The fresh database's URL.
    pub database_url: String,
    pub exporter: TestExporter,
    pub prometheus: TestPrometheus,
    config: Config,
    server: Option<Server>,
}

/// Starts an exporter with both arms of `canary` idle, Prometheus, a fresh database and
/// the server. Set the arms' traffic with [`TestApp::traffic`].
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let exporter = TestExporter::start().await;
    let targets = [exporter.addr()];
    let (prometheus, database_url) =
        tokio::join!(TestPrometheus::start(&targets), postgres::fresh_database());
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: SecretString::from(database_url.clone()),
        webhook_token: options.webhook_token.map(SecretString::from),
        namespace_allow: options.namespace_allow,
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    };
    config.prometheus.url = prometheus.url();
    config.prometheus.timeout = options.prometheus_timeout;
    config.defaults.min_look_gap = options.min_look_gap;
    if let Some(jwt) = options.jwt {
        config.jwt = jwt;
    }
    if let Some(load) = options.load {
        config.load = load;
    }
    config.validate().expect("the test configuration is valid");

    let store = verdict::store::connect(&database_url)
        .await
        .expect("connect the test's store");
    store.migrate().await.expect("migrate the fresh database");

    let mut app = TestApp {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        client: FlaggerClient::new("http://127.0.0.1:0"),
        http: reqwest::Client::new(),
        store,
        database_url,
        exporter,
        prometheus,
        config,
        server: None,
    };
    app.start_server().await;
    app
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("addr", &self.addr)
            .field("prometheus", &self.prometheus.url())
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Builds and starts a server on the same database and Prometheus: what a new
    /// replica, or the old one after a restart, does.
    async fn start_server(&mut self) {
        let (addr, server) = self.launch().await;
        self.addr = addr;
        self.client = FlaggerClient::new(self.base_url());
        self.server = Some(server);
    }

    /// Builds and starts one more server on the same database and Prometheus.
    async fn launch(&self) -> (SocketAddr, Server) {
        let metrics = Metrics::new();
        let store = verdict::store::connect(&self.database_url)
            .await
            .expect("connect the server's store");
        store.migrate().await.expect("migrate (idempotent)");
        let sli = PrometheusSli::new(
            PrometheusConfig {
                url: self.config.prometheus.url.clone(),
                timeout: self.config.prometheus.timeout,
                auth: None,
            },
            TemplateSet::builtin().expect("shipped templates load"),
        )
        .expect("Prometheus client");
        let application = Application::build(self.config.clone(), store, Arc::new(sli), metrics)
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
            client: FlaggerClient::new(format!("http://{addr}")),
            server,
        }
    }

    /// Stops the server (in-flight calls may finish) and waits until it has stopped.
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown.send(());
            server
                .task
                .await
                .expect("server task did not panic")
                .expect("server stopped cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database (on a new port).
    pub async fn restart_server(&mut self) {
        self.stop_server().await;
        self.start_server().await;
    }

    /// Restarts Prometheus on the same port and data, and waits for its first new scrape.
    ///
    /// [`TestPrometheus::restart`] returns once Prometheus is ready, but a restarted
    /// Prometheus scrapes again only after its discovery reload (up to ~5 s), and its
    /// scrape check also counts samples kept from before the restart.
    pub async fn restart_prometheus(&mut self) {
        let since = unix_seconds();
        self.prometheus.restart().await;
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
            .get(format!("{}/api/v1/query", self.prometheus.url()))
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

    /// Sets the traffic of `target` (canary) and `target-primary` from now on.
    pub fn traffic(&self, target: &str, canary: Profile, primary: Profile) {
        self.exporter.set_profile(NS, target, canary);
        self.exporter
            .set_profile(NS, &format!("{target}-primary"), primary);
    }

    /// Calls a hook like Flagger does; panics only if the server cannot be reached.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.client
            .call(hook, payload)
            .await
            .unwrap_or_else(|e| panic!("calling {hook}: {e}"))
    }

    /// POSTs raw bytes to a hook (for bodies Flagger's client could never produce).
    pub async fn post_raw(&self, hook: &str, body: impl Into<reqwest::Body>) -> HookReply {
        let response = self
            .http
            .post(format!("{}/flagger/{hook}", self.base_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("posting to {hook}: {e}"));
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        HookReply {
            status,
            body: body.trim_end().to_owned(),
        }
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
        let key = verdict::domain::AnalysisKey {
            namespace: verdict::domain::Namespace::parse(&payload.namespace).ok()?,
            name: verdict::domain::CanaryName::parse(&payload.name).ok()?,
            checksum: verdict::domain::Checksum::parse(&payload.checksum).ok()?,
        };
        self.store.find_analysis(&key).await.expect("find_analysis")
    }

    /// The looks of an analysis, by `seq`.
    pub async fn looks(&self, analysis_id: i64) -> Vec<LookRow> {
        self.store.looks(analysis_id).await.expect("looks")
    }

    /// The decisions of an analysis, oldest first.
    pub async fn decisions(&self, analysis_id: i64) -> Vec<DecisionRow> {
        self.store.decisions(analysis_id).await.expect("decisions")
    }

    /// Every decision recorded for a canary name in [`NS`], with or without an analysis.
    pub async fn decisions_for(&self, name: &str) -> Vec<DecisionRow> {
        self.store
            .decisions_for(NS, name)
            .await
            .expect("decisions_for")
    }

    /// Stops the server and Prometheus and drops the database. Call it at the end of a
    /// passing test; a failing test leaves its database for inspection.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
        self.prometheus.stop().await;
        let url = self.database_url.clone();
        drop(self);
        postgres::drop_database(&url).await;
    }
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
