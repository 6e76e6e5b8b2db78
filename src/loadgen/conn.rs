//! One keep-alive HTTP/1.1 connection per worker, driven inside the worker's own task.
//!
//! hyper's usual pattern spawns a task per connection and hands each request to it over a
//! channel; that costs a cross-task (often cross-thread) wake-up per request. A load generator
//! wants the opposite trade: every worker owns its connection outright and polls hyper's
//! connection future itself while it waits for its answer, so a request costs one write and
//! one read on the worker's thread. No pool, no locks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::result::ErrorKind;
use super::spec::{LoadSpec, SpecError, Target};

/// A TCP stream, TLS or not.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Body = Full<Bytes>;

/// hyper's half of a connection: the future that reads and writes the socket.
type Driver = Pin<Box<Connection<TokioIo<Stream>, Body>>>;

/// A worker's connection: the handle to send on and the future that does the IO.
pub(crate) struct Conn {
    sender: SendRequest<Body>,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("open", &self.driver.is_some())
            .finish()
    }
}

/// Why a round trip failed, and whether the request may be retried on a new connection.
enum Failure {
    /// The connection was already closed (e.g. the server's keep-alive limit): nothing was
    /// sent, so retrying is safe and is not an error of the target.
    NotSent,
    /// The connection broke after the request was written.
    Broken { retryable: bool },
}

/// The immutable part of a run's requests, shared by its workers.
pub(crate) struct Client {
    target: Target,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    idempotent: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Prepares requests for a valid spec.
    pub fn new(spec: &LoadSpec) -> Result<Self, SpecError> {
        let target = spec.target()?;
        let method = spec.method()?;
        let mut headers = spec.header_map()?;
        if !headers.contains_key(http::header::HOST) {
            let host = HeaderValue::from_str(&target.authority)
                .map_err(|_| SpecError::new("URL host is not a valid Host header"))?;
            headers.insert(http::header::HOST, host);
        }
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(
                http::header::USER_AGENT,
                HeaderValue::from_static(concat!("verdict-load/", env!("CARGO_PKG_VERSION"))),
            );
        }
        let tls = if target.tls {
            Some(tls_connector(&target.host)?)
        } else {
            None
        };
        // Go's transport (and so hey) replays idempotent requests that failed on a reused
        // connection the server had just closed; do the same so keep-alive races are not
        // reported as target errors.
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        Ok(Self {
            uri: target.path.clone(),
            target,
            method,
            headers,
            body: Bytes::from(spec.body.clone().unwrap_or_default()),
            tls,
            idempotent,
        })
    }

    fn request(&self) -> Request<Body> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    async fn connect(&self) -> Result<Conn, ErrorKind> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        // Requests are small and latency is what we measure: never wait for Nagle.
        tcp.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => Stream::Tls(Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| ErrorKind::Connect)?,
            )),
        };
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    /// Sends one request on `slot`'s connection (opening one when there is none or it has
    /// closed) and reads the whole answer, so the connection can be reused. On error the slot
    /// is emptied. Callers bound the time; dropping this future mid-request must be followed
    /// by emptying the slot, which [`Worker`](super::engine) does.
    pub async fn send(&self, slot: &mut Option<Conn>) -> Result<u16, ErrorKind> {
        let mut retried = false;
        loop {
            let reused = slot.is_some();
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(self.connect().await?),
            };
            match conn.round_trip(self.request()).await {
                Ok(status) => return Ok(status),
                Err(failure) => {
                    *slot = None;
                    let retry = match failure {
                        Failure::NotSent => true,
                        Failure::Broken { retryable } => retryable && self.idempotent,
                    };
                    if reused && retry && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(ErrorKind::Io);
                }
            }
        }
    }
}

impl Conn {
    async fn round_trip(&mut self, req: Request<Body>) -> Result<u16, Failure> {
        let Conn { sender, driver } = self;
        let exchange = async {
            sender.ready().await.map_err(|_| Failure::NotSent)?;
            let response = sender.try_send_request(req).await.map_err(|e| {
                if e.message().is_some() {
                    Failure::NotSent
                } else {
                    // Closed before any byte of the answer: the server dropped an idle
                    // connection as we reused it.
                    Failure::Broken {
                        retryable: e.error().is_incomplete_message() || e.error().is_canceled(),
                    }
                }
            })?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                frame.map_err(|_| Failure::Broken { retryable: false })?;
            }
            Ok(status)
        };
        drive(driver, exchange).await
    }
}

/// Polls `exchange` to completion while also polling the connection that carries it.
async fn drive<F: Future>(driver: &mut Option<Driver>, exchange: F) -> F::Output {
    let mut exchange = std::pin::pin!(exchange);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(conn) = driver {
            if conn.as_mut().poll(cx).is_ready() {
                // The connection is over; hyper has failed whatever was outstanding, so the
                // exchange resolves now and never waits on a dead connection.
                *driver = None;
                return exchange.as_mut().poll(cx);
            }
        }
        Poll::Pending
    })
    .await
}

fn tls_connector(host: &str) -> Result<(TlsConnector, ServerName<'static>), SpecError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SpecError::new(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| SpecError::new(format!("{host:?} is not a valid TLS server name")))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}
