//! Build the application, bind, serve, shut down gracefully.
//!
//! Shutdown has one deadline: `shutdown_grace` after the signal. Draining in-flight
//! requests, storing the last events, recording how the load runs ended and the Grafana
//! worker's last delivery all end by it, whatever each is waiting for, and then the
//! process exits. `shutdown_grace` must therefore stay below the pod's
//! `terminationGracePeriodSeconds` (docs/operations.md), or Kubernetes kills verdict
//! before it has recorded what it was doing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::analysis::Analyst;
use crate::config::Config;
use crate::grafana::Worker;
use crate::http::{self, AppState};
use crate::loadgen::store_sink::StoreSink;
use crate::loadgen::LoadManager;
use crate::sli::SliSource;
use crate::store::Store;
use crate::telemetry::Metrics;

/// How long the binary waits, after [`Application::run_until`] returned at the latest
/// at the shutdown deadline, for work that blocks a thread (a DNS lookup, a file read)
/// before it exits regardless. Part of the margin between `shutdown_grace` and the pod's
/// `terminationGracePeriodSeconds`.
pub const RUNTIME_STOP: Duration = Duration::from_millis(250);

/// A bound, ready-to-serve verdict. Binding happens in [`Application::build`], so tests
/// can ask for port 0 and read the real port before serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    /// The Grafana annotation worker, when `grafana.url` is set.
    annotations: Option<Worker>,
}

impl Application {
    /// Binds `config.listen` and wires the given store and SLI source. The store must
    /// already be migrated.
    pub async fn build(
        config: Config,
        store: Store,
        sli: Arc<dyn SliSource>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let namespace_allow = config
            .namespace_allow
            .as_deref()
            .map(|re| regex::Regex::new(&format!("^(?:{re})$")))
            .transpose()
            .context("namespace_allow")?
            .map(Arc::new);
        let webhook_token = config.webhook_token.clone().map(Arc::new);
        let verifier = crate::auth::Verifier::from_config(&config.jwt)?.map(Arc::new);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let grace = config.shutdown_grace;
        let loads = Arc::new(LoadManager::new(
            config.load.clone(),
            Arc::new(StoreSink::new(store.clone())),
        ));
        let annotations = if config.grafana.enabled() {
            Some(
                Worker::new(&config.grafana, store.clone(), metrics.clone())
                    .context("configuration key `grafana`")?,
            )
        } else {
            None
        };
        // Milestones are written only while the worker that delivers them runs.
        let milestones = annotations.is_some();
        let grafana_dashboard = config.grafana.url.as_deref().map(|url| {
            let uid = config
                .grafana
                .dashboard_uid
                .as_deref()
                .unwrap_or(crate::grafana::CANARY_DASHBOARD_UID);
            Arc::from(format!("{}/d/{uid}", url.trim_end_matches('/')))
        });
        let analyst = Analyst::new(store, sli, Arc::new(config), metrics.clone(), milestones);
        let state = AppState {
            analyst,
            loads,
            metrics,
            namespace_allow,
            webhook_token,
            verifier,
            grafana_dashboard,
        };
        Ok(Self {
            listener,
            state,
            grace,
            annotations,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The port actually bound (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` completes, then stops everything by one deadline,
    /// `shutdown_grace` after the signal: in-flight requests finish and the last events
    /// are stored, while the load runs stop and record how far they got; then the
    /// Grafana worker, which ran beside the server so that the last answers' annotations
    /// get their chance, finishes the request in flight (rows it cannot send wait in the
    /// outbox). Whatever is still running at the deadline is dropped.
    pub async fn run_until<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = self.local_addr();
        let Self {
            listener,
            state,
            grace,
            annotations,
        } = self;
        let (analyst, loads) = (state.analyst.clone(), state.loads.clone());
        let stop_annotations = CancellationToken::new();
        let annotations =
            annotations.map(|worker| tokio::spawn(worker.run(stop_annotations.clone())));
        tracing::info!(%addr, "verdict serving");
        let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel::<Instant>();
        let signal = async move {
            shutdown.await;
            let _ = deadline_tx.send(Instant::now() + grace);
        };
        let serve = axum::serve(listener, http::router(state)).with_graceful_shutdown(signal);
        let mut serve = tokio::spawn(async move { serve.await });
        // The server stopping on its own (an error) drops the sender: clean up all the same.
        let deadline = deadline_rx.await.unwrap_or_else(|_| Instant::now() + grace);

        let drain = async {
            let served = finish_by(deadline, &mut serve, "in-flight requests").await;
            if timeout_at(deadline, analyst.finish_background())
                .await
                .is_err()
            {
                tracing::warn!("event storage still running at the shutdown deadline");
            }
            stop_annotations.cancel();
            if let Some(mut worker) = annotations {
                finish_by(deadline, &mut worker, "the grafana worker").await;
            }
            served
        };
        let stop_loads = async {
            if timeout_at(deadline, loads.shutdown()).await.is_err() {
                tracing::warn!("load runs still recording at the shutdown deadline");
            }
        };
        let (served, ()) = tokio::join!(drain, stop_loads);
        tracing::info!("verdict stopped");
        match served {
            Some(Ok(result)) => result.context("serving"),
            Some(Err(join)) => Err(join).context("server task"),
            None => Ok(()),
        }
    }
}

/// Waits for `task` until `deadline`; past it, aborts the task and says so. `None` when
/// it was aborted.
async fn finish_by<T>(
    deadline: Instant,
    task: &mut JoinHandle<T>,
    what: &str,
) -> Option<Result<T, tokio::task::JoinError>> {
    match timeout_at(deadline, &mut *task).await {
        Ok(done) => Some(done),
        Err(_) => {
            tracing::warn!("{what} still running at the shutdown deadline; dropped");
            task.abort();
            None
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (Kubernetes' stop signal).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Builds the production wiring from configuration: the store (migrated), the SLI
/// templates (shipped ones plus `template_dir`), and the Prometheus source.
pub async fn from_config(config: Config) -> anyhow::Result<Application> {
    let metrics = Metrics::new();
    let templates = match &config.template_dir {
        Some(dir) => crate::sli::templates::TemplateSet::load_dir(dir),
        None => crate::sli::templates::TemplateSet::builtin(),
    }
    .context("loading SLI templates")?;
    let sli = prometheus_source(&config, templates, metrics.clone())?;
    let store = connect_store(&config).await?;
    Application::build(config, store, Arc::new(sli), metrics).await
}

/// Connects to and migrates the configured store.
pub async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    use secrecy::ExposeSecret;
    let store = crate::store::connect(config.database_url.expose_secret())
        .await
        .context("connecting to the store (database_url)")?;
    store.migrate().await.context("migrating the store")?;
    Ok(store)
}

fn prometheus_source(
    config: &Config,
    templates: crate::sli::templates::TemplateSet,
    metrics: Arc<Metrics>,
) -> anyhow::Result<crate::sli::prometheus::PrometheusSli> {
    use crate::sli::prometheus::{PrometheusAuth, PrometheusConfig, PrometheusSli};
    let settings = &config.prometheus;
    let auth = match (
        &settings.bearer_token,
        &settings.basic_user,
        &settings.basic_password,
    ) {
        (Some(token), _, _) => Some(PrometheusAuth::Bearer(token.clone())),
        (None, Some(user), Some(password)) => Some(PrometheusAuth::Basic {
            username: user.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let sli = PrometheusSli::new(
        PrometheusConfig {
            url: settings.url.clone(),
            timeout: settings.timeout,
            auth,
        },
        templates,
    )
    .context("configuration key `prometheus`")?;
    Ok(sli.with_observer(Arc::new(move |kind, elapsed, ok| {
        metrics.prometheus_query(kind, elapsed, ok)
    })))
}
