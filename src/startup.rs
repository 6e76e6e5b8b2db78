//! Build the application, bind, serve, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::analysis::Analyst;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::sli::SliSource;
use crate::store::Store;
use crate::telemetry::Metrics;

/// A bound, ready-to-serve verdict. Binding happens in [`Application::build`], so tests
/// can ask for port 0 and read the real port before serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    /// The Grafana annotation worker, when `grafana.url` is set.
    annotations: Option<crate::grafana::Worker>,
}

impl Application {
    /// Binds `config.listen` and wires the given store and SLI source. The store must
    /// already be migrated.
    pub async fn build(
        config: Config,
        store: Arc<dyn Store>,
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
        let loads = Arc::new(crate::loadgen::LoadManager::new(
            config.load.clone(),
            Arc::new(crate::loadgen::store_sink::StoreSink::new(store.clone())),
        ));
        let annotations = if config.grafana.enabled() {
            Some(
                crate::grafana::Worker::new(&config.grafana, store.clone(), metrics.clone())
                    .context("configuration key `grafana`")?,
            )
        } else {
            None
        };
        let state = AppState {
            analyst: Analyst {
                store,
                sli,
                config: Arc::new(config),
                metrics,
            },
            tasks: TaskTracker::new(),
            namespace_allow,
            webhook_token,
            loads,
            verifier,
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

    /// Serves until `shutdown` completes, then lets in-flight requests and background
    /// event storage finish (bounded by `shutdown_grace`). The Grafana worker, if any,
    /// runs beside the server and is stopped after it, so annotations of the last
    /// answers still get their chance; rows it cannot send wait in the outbox.
    pub async fn run_until<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let tasks = self.state.tasks.clone();
        let loads = self.state.loads.clone();
        let stop_annotations = tokio_util::sync::CancellationToken::new();
        let annotations = self
            .annotations
            .map(|worker| tokio::spawn(worker.run(stop_annotations.clone())));
        let router = http::router(self.state);
        let addr = self.listener.local_addr().ok();
        tracing::info!(?addr, "verdict serving");
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        let serve = axum::serve(self.listener, router).with_graceful_shutdown(signal);
        let grace = self.grace;
        let serve = tokio::spawn(async move { serve.await });
        // Once the signal fired, in-flight requests get `grace` to finish.
        let result = tokio::select! {
            r = serve => r.context("server task")?.context("serving"),
            _ = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "shutdown grace exceeded; dropping remaining connections");
                Ok(())
            }
        };
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!("background tasks still running at shutdown");
        }
        // Load runs stop now and record how far they got.
        if tokio::time::timeout(grace, loads.shutdown()).await.is_err() {
            tracing::warn!("load runs still recording at shutdown");
        }
        stop_annotations.cancel();
        if let Some(worker) = annotations {
            // The worker finishes the request in flight (bounded by grafana.timeout)
            // and releases the rest of its batch.
            if tokio::time::timeout(grace, worker).await.is_err() {
                tracing::warn!("grafana annotation worker still running at shutdown");
            }
        }
        tracing::info!("verdict stopped");
        result
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
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
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
