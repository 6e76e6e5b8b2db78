//! A fresh database per test: Postgres (a new database on a real server) or SQLite (a
//! file in a temporary directory).
//!
//! The Postgres server is the local one (user `postgres`, trust auth) unless
//! `VERDICT_TEST_PG` names another base URL. If it is not running,
//! `pg_ctlcluster 15 main start` starts it.

use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use verdict::store::Store;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh database on the test Postgres server (production's store).
    Postgres,
    /// A fresh SQLite file (the embedded default).
    Sqlite,
}

/// A fresh, empty database; [`TestDb::drop_database`] removes a Postgres one.
#[derive(Debug)]
pub struct TestDb {
    /// The URL verdict connects with.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// Holds the SQLite file as long as the database lives.
    _dir: Option<TempDir>,
}

impl TestDb {
    /// Creates a fresh database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self {
                url: fresh_database().await,
                backend,
                _dir: None,
            },
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir for SQLite");
                let url = format!("sqlite://{}", dir.path().join("verdict.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// A new connection pool to it, migrated, as a server (or an operator) would open.
    pub async fn store(&self) -> Store {
        let store = verdict::store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url));
        store.migrate().await.expect("migrate");
        store
    }

    /// Drops a Postgres database (a SQLite one goes with its directory). Call it at the
    /// end of a passing test; a failing test leaves its database for inspection.
    pub async fn drop_database(self) {
        if self.backend == Backend::Postgres {
            drop_database(&self.url).await;
        }
    }
}

/// The server's maintenance database, from which test databases are created.
pub const DEFAULT_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The base URL tests connect to: `VERDICT_TEST_PG`, or [`DEFAULT_BASE_URL`].
pub fn base_url() -> String {
    std::env::var("VERDICT_TEST_PG").unwrap_or_else(|_| DEFAULT_BASE_URL.to_owned())
}

/// Creates an empty database `verdict_test_<unix seconds>_<uuid>` and returns its URL
/// (`scripts/test.sh` drops those left over from runs more than an hour old, by the time
/// in the name, and leaves a younger run's alone).
///
/// Panics with a hint when the server cannot be reached: every test that asks for a
/// database needs it, and a skipped test would hide a Postgres-only failure.
async fn fresh_database() -> String {
    let base = base_url();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("verdict_test_{created}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "test Postgres at {base} is not reachable ({e}); \
             start it with `pg_ctlcluster 15 main start` or set VERDICT_TEST_PG"
        )
    });
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {base}: {e}"));
    // Closing is a courtesy to the server; the database exists either way.
    let _ = conn.close().await;
    database_url(&base, &name)
}

/// Drops a database made by [`fresh_database`], disconnecting its sessions. Best
/// effort: a test that already passed must not fail while cleaning up.
async fn drop_database(url: &str) {
    let Some(name) = database_name(url) else {
        return;
    };
    if !name.starts_with("verdict_test_") {
        return;
    }
    if let Ok(mut conn) = PgConnection::connect(&base_url()).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = conn.execute(sql.as_str()).await;
        let _ = conn.close().await;
    }
}

/// `base` with its database (the path) replaced by `name`, query string kept.
pub fn database_url(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let authority_end = without_query[scheme_end..]
        .find('/')
        .map_or(without_query.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &without_query[..authority_end])
}

/// The database named in a Postgres URL's path.
fn database_name(url: &str) -> Option<&str> {
    let without_query = url.split('?').next()?;
    let (_, rest) = without_query.split_once("://")?;
    let (_, path) = rest.split_once('/')?;
    Some(path).filter(|p| !p.is_empty())
}
