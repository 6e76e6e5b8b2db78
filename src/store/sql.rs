//! The one [`Store`]: sqlx's Any driver over Postgres or SQLite, and the helpers every
//! entity module uses (errors, write transactions, reading rows, list filters).
//!
//! One implementation keeps both backends honest: the shared store suite exercises the
//! same SQL on both. The SQL is portable by construction — `$N` placeholders (SQLite
//! accepts them), `INSERT … ON CONFLICT … DO NOTHING RETURNING`, and only BIGINT,
//! DOUBLE PRECISION and TEXT columns, which the Any driver decodes identically on both.
//! Only the DDL differs (identity columns), so migrations live in one directory per
//! dialect.
//!
//! A leaf: the entity modules (`analysis`, `look`, `decision`, …) import it; it imports
//! none of them.

use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::query::QueryAs;
use sqlx::{Any, AnyConnection, AnyPool, Executor, FromRow, Transaction};

use super::StoreError;
use crate::domain::CanaryRef;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a SQLite writer waits for the write lock before giving up. Writes are a
/// handful of rows, so a waiting writer normally gets the lock within milliseconds.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

/// How long a call waits for a pooled connection. Flagger's webhook timeout is 10 s and
/// verdict should answer well inside it, so an unreachable store must fail fast (424).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which database sits behind the Any pool; decides DDL, transaction start and how
/// database error codes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// Everything the service persists: a pool of connections to one database. Cheap to
/// clone (the pool is shared). The entity modules add its methods, one table each.
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// See [`super::connect`].
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let (backend, url) = parse_url(url)?;
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let options = match backend {
            Backend::Postgres => options.max_connections(10),
            // WAL lets readers proceed beside the one writer; a few connections are
            // enough since SQLite serialises writes anyway.
            Backend::Sqlite => options.max_connections(4).after_connect(sqlite_pragmas),
        };
        let pool = options.connect(&url).await.map_err(|e| match e {
            sqlx::Error::Configuration(_) => StoreError::BadUrl(redact(&url)),
            other => classify(backend, other),
        })?;
        Ok(Self { pool, backend })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(|e| match e {
            MigrateError::Execute(inner) => match classify(self.backend, inner) {
                StoreError::Query(msg) => StoreError::Migration(msg),
                other => other,
            },
            other => StoreError::Migration(other.to_string()),
        })
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Maps a sqlx error of this store.
    pub(super) fn err(&self, e: sqlx::Error) -> StoreError {
        classify(self.backend, e)
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later
    /// can fail with SQLITE_BUSY without waiting, which concurrent hooks would hit.
    pub(super) async fn begin_write(&self) -> Result<Write<'_>, StoreError> {
        let tx = match self.backend {
            Backend::Postgres => self.pool.begin().await,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        };
        Ok(Write {
            store: self,
            tx: tx.map_err(|e| self.err(e))?,
        })
    }

    /// Every row of `query`.
    pub(super) async fn all<T: Read>(&self, q: Select<'_, T>) -> Result<Vec<T>, StoreError> {
        q.fetch_all(&self.pool).await.map_err(|e| self.err(e))
    }

    /// The row of `query`, if any.
    pub(super) async fn optional<T: Read>(
        &self,
        q: Select<'_, T>,
    ) -> Result<Option<T>, StoreError> {
        q.fetch_optional(&self.pool).await.map_err(|e| self.err(e))
    }

    /// Every row of `table` for one canary, oldest first.
    pub(super) async fn of_canary<T: Read>(
        &self,
        table: &'static str,
        canary: &CanaryRef,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT * FROM {table} WHERE namespace = $1 AND name = $2 ORDER BY id");
        self.all(
            sqlx::query_as(&sql)
                .bind(&canary.namespace)
                .bind(&canary.name),
        )
        .await
    }
}

/// What a row is read into: a type with a `FromRow` for sqlx's Any rows.
pub(super) trait Read: Send + Unpin + for<'r> FromRow<'r, AnyRow> {}

impl<T: Send + Unpin + for<'r> FromRow<'r, AnyRow>> Read for T {}

/// A write transaction of the store. The writes several entities share are its methods,
/// each beside its own table's code (`record_action`, `insert_decision`,
/// `insert_milestones`, `apply_status`), so one change and everything that records it
/// commit together or not at all.
pub(super) struct Write<'s> {
    pub(super) store: &'s Store,
    pub(super) tx: Transaction<'static, Any>,
}

impl Write<'_> {
    /// The row of `query`, if any, as this transaction sees it.
    pub(super) async fn optional<T: Read>(
        &mut self,
        q: Select<'_, T>,
    ) -> Result<Option<T>, StoreError> {
        let found = q.fetch_optional(&mut *self.tx).await;
        found.map_err(|e| self.store.err(e))
    }

    /// Makes every write of the transaction visible at once.
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(|e| self.store.err(e))
    }

    /// Ends the transaction without writing (it changed nothing worth keeping).
    pub(super) async fn abandon(self) -> Result<(), StoreError> {
        self.tx.rollback().await.map_err(|e| self.store.err(e))
    }
}

/// A query whose rows are read as `T`.
pub(super) type Select<'q, T> = QueryAs<'q, Any, T, AnyArguments<'q>>;

fn sqlite_pragmas(
    conn: &mut AnyConnection,
    _meta: PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        // WAL is a property of the file (set once, kept); busy_timeout is per connection.
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
            .await?;
        conn.execute("PRAGMA foreign_keys = ON").await?;
        Ok(())
    })
}

/// Whether `url` names a Postgres database (`postgres://…` or `postgresql://…`).
fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Splits a database URL into its backend and the URL to hand to sqlx.
fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
    let bad = || StoreError::BadUrl(redact(url));
    if is_postgres_url(url) {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        if rest.is_empty() {
            return Err(bad());
        }
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Err(bad());
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Err(bad());
    }
    // mode=rwc creates the file when it is missing, unless the URL chose a mode.
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    let query = match (query, has_mode) {
        (Some(q), true) => q.to_owned(),
        (Some(q), false) if !q.is_empty() => format!("{q}&mode=rwc"),
        _ => "mode=rwc".to_owned(),
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

/// Checks a URL as [`Store::connect`] reads it, without connecting.
pub(super) fn check_url(url: &str) -> Result<(), StoreError> {
    parse_url(url).map(|_| ())
}

/// The URL with any password replaced, for error messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Sorts a sqlx error into "the store cannot be reached" and "this query failed".
fn classify(backend: Backend, e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    let unavailable = match &e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        E::Database(db) => db
            .code()
            .is_some_and(|code| unavailable_code(backend, &code)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Query(e.to_string())
    }
}

/// Database error codes that mean the database, not the query, is the problem.
fn unavailable_code(backend: Backend, code: &str) -> bool {
    match backend {
        // SQLSTATE classes 08 (connection exception) and 53 (insufficient resources),
        // server shutting down / not accepting connections, database missing.
        Backend::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "57P01" | "57P02" | "57P03" | "3D000")
        }
        // sqlx reports SQLite's extended result code; the low byte is the primary code:
        // BUSY, LOCKED, IOERR, FULL, CANTOPEN.
        Backend::Sqlite => code
            .parse::<i64>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14)),
    }
}

/// The WHERE clause and LIMIT of a list query, assembled from optional filters.
///
/// Each condition is a column and operator fixed in the code (`&'static str`); its value
/// gets the next numbered placeholder and is bound, never written into the SQL.
#[derive(Debug, Default)]
pub(super) struct Conditions {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

#[derive(Debug)]
enum Arg {
    Int(i64),
    Text(String),
}

impl Conditions {
    /// Adds `<column_op> $n` with a text value, e.g. `text("namespace =", "test")`.
    pub(super) fn text(&mut self, column_op: &'static str, value: &str) {
        self.push(column_op, Arg::Text(value.to_owned()));
    }

    /// Adds `<column_op> $n` with an integer value, e.g. `int("id <", 42)`.
    pub(super) fn int(&mut self, column_op: &'static str, value: i64) {
        self.push(column_op, Arg::Int(value));
    }

    fn push(&mut self, column_op: &'static str, arg: Arg) {
        self.args.push(arg);
        self.clauses
            .push(format!("{column_op} ${}", self.args.len()));
    }

    /// ` WHERE a AND b …`, or nothing without conditions.
    fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `SELECT * FROM <table> WHERE … AND id < $cursor ORDER BY id DESC LIMIT $n`: a
    /// page of the newest rows that match, below the cursor when there is one. A
    /// negative limit is refused: Postgres rejects it and SQLite reads it as "no limit",
    /// so passing it through would make the backends disagree.
    pub(super) fn newest_first(
        mut self,
        table: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Listing, StoreError> {
        if let Some(before) = before {
            self.int("id <", before);
        }
        if limit < 0 {
            return Err(StoreError::Query(format!(
                "list limit must not be negative, got {limit}"
            )));
        }
        self.args.push(Arg::Int(limit));
        let sql = format!(
            "SELECT * FROM {table}{} ORDER BY id DESC LIMIT ${}",
            self.where_clause(),
            self.args.len()
        );
        Ok(Listing {
            sql,
            args: self.args,
        })
    }
}

/// A list query ready to run: the SQL and its values in placeholder order.
#[derive(Debug)]
pub(super) struct Listing {
    sql: String,
    args: Vec<Arg>,
}

impl Listing {
    /// The query, with its values bound, reading rows as `T`.
    pub(super) fn query<T>(&self) -> Select<'_, T>
    where
        T: for<'r> FromRow<'r, AnyRow>,
    {
        self.args
            .iter()
            .fold(sqlx::query_as(&self.sql), |q, arg| match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_given() {
        let (b, u) = parse_url("sqlite://verdict.db").ok().unzip();
        assert_eq!(b, Some(Backend::Sqlite));
        assert_eq!(u.as_deref(), Some("sqlite://verdict.db?mode=rwc"));
        let (_, u) = parse_url("sqlite:///var/lib/v.db?mode=ro").ok().unzip();
        assert_eq!(u.as_deref(), Some("sqlite:///var/lib/v.db?mode=ro"));
        let (_, u) = parse_url("sqlite://v.db?cache=shared").ok().unzip();
        assert_eq!(u.as_deref(), Some("sqlite://v.db?cache=shared&mode=rwc"));
    }

    #[test]
    fn refuses_unknown_schemes_and_empty_or_memory_paths() {
        for bad in [
            "",
            "mysql://x",
            "verdict.db",
            "sqlite://",
            "sqlite://?mode=rwc",
            "sqlite://:memory:",
            "postgres://",
            "sqlite:verdict.db",
        ] {
            assert!(
                matches!(parse_url(bad), Err(StoreError::BadUrl(_))),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            parse_url("postgresql://u@h/db"),
            Ok((Backend::Postgres, _))
        ));
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://u:s3cret@db:5432/v?sslmode=require"),
            "postgres://u:***@db:5432/v?sslmode=require"
        );
        assert_eq!(redact("postgres://u@db/v"), "postgres://u@db/v");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn conditions_number_their_placeholders_in_order() {
        let w = Conditions::default();
        assert_eq!(w.where_clause(), "");
        let mut w = Conditions::default();
        w.text("namespace =", "x'; DROP TABLE analysis; --");
        w.int("id <", 7);
        assert_eq!(w.where_clause(), " WHERE namespace = $1 AND id < $2");
        let listing = w.newest_first("analysis", None, 50).expect("valid limit");
        assert_eq!(
            listing.sql,
            "SELECT * FROM analysis WHERE namespace = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        assert!(
            !listing.sql.contains("DROP"),
            "values are bound, not written"
        );
        assert!(matches!(
            Conditions::default().newest_first("audit", None, -1),
            Err(StoreError::Query(m)) if m.contains("-1")
        ));
    }

    #[test]
    fn classifies_sqlite_busy_and_postgres_connection_codes() {
        assert!(unavailable_code(Backend::Sqlite, "5"));
        assert!(unavailable_code(Backend::Sqlite, "517")); // SQLITE_BUSY_SNAPSHOT
        assert!(!unavailable_code(Backend::Sqlite, "2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(unavailable_code(Backend::Postgres, "08006"));
        assert!(unavailable_code(Backend::Postgres, "57P01"));
        assert!(!unavailable_code(Backend::Postgres, "23505"));
    }
}
