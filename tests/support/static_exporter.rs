//! An exporter that serves whatever exposition text the test gives it: for series shaped
//! like any provider's metrics, where the test decides every value.
//!
//! The test changes the text between scrapes (for example raising counters by known
//! amounts), so it knows exactly what Prometheus stored.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The running exporter; `/metrics` answers with the current text.
#[derive(Debug)]
pub struct StaticExporter {
    addr: SocketAddr,
    text: Arc<Mutex<String>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

fn lock(text: &Mutex<String>) -> MutexGuard<'_, String> {
    // A panicking test thread must not hide the text from the scrapes still running.
    text.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StaticExporter {
    /// Binds 127.0.0.1:0 and serves `text` (Prometheus text exposition format 0.0.4).
    pub async fn start(text: String) -> Self {
        let text = Arc::new(Mutex::new(text));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the static exporter");
        let addr = listener.local_addr().expect("static exporter address");
        let app =
            Router::new().route(
                "/metrics",
                get({
                    let text = text.clone();
                    move || {
                        let body = lock(&text).clone();
                        async move {
                            ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                        }
                    }
                }),
            );
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            text,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Where Prometheus should scrape.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the text served from the next scrape on.
    pub fn set_text(&self, text: String) {
        *lock(&self.text) = text;
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for StaticExporter {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
