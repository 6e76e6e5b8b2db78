//! The one [`Store`] implementation: sqlx's Any driver over Postgres or SQLite.
//!
//! One implementation keeps both backends honest: the shared store suite exercises the
//! same SQL on both. The SQL is portable by construction — `$N` placeholders (SQLite
//! accepts them), `INSERT … ON CONFLICT … DO NOTHING RETURNING`, and only BIGINT,
//! DOUBLE PRECISION and TEXT columns, which the Any driver decodes identically on both.
//! Only the DDL differs (identity columns), so migrations live in one directory per
//! dialect. The entity queries are in the sibling modules (`analysis`, `look`, `decision`,
//! `event`, `load_run`, `outbox`, `gate`, `audit`); this one connects and delegates.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};

use super::{
    analysis, audit, decision, event, gate, is_postgres_url, load_run, look, outbox, Analysis,
    AnalysisFilter, AuditFilter, AuditRow, DecisionRow, EventRow, GateRow, LoadRunOutcome,
    LoadRunRow, LookInsert, LookRow, NewAnalysis, NewAnnotation, NewAudit, NewDecision, NewEvent,
    NewLoadRun, NewLook, OutboxRow, RollbackRequest, StatusChange, Store, StoreError,
};
use crate::domain::{AnalysisKey, Millis};

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
pub(super) enum Backend {
    Postgres,
    Sqlite,
}

/// A pool of connections to one database.
#[derive(Debug)]
pub(super) struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
}

impl SqlStore {
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

    /// Maps a sqlx error of this store.
    pub(super) fn err(&self, e: sqlx::Error) -> StoreError {
        classify(self.backend, e)
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later
    /// can fail with SQLITE_BUSY without waiting, which concurrent hooks would hit.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let tx = match self.backend {
            Backend::Postgres => self.pool.begin().await,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        };
        tx.map_err(|e| self.err(e))
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }
}

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

/// Splits a database URL into its backend and the URL to hand to sqlx.
pub(super) fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
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

/// The URL with any password replaced, for error messages and logs.
pub(super) fn redact(url: &str) -> String {
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
pub(super) fn classify(backend: Backend, e: sqlx::Error) -> StoreError {
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

/// Reads one column, naming it in the error.
pub(super) fn col<T>(row: &AnyRow, name: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Query(format!("reading column {name}: {e}")))
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
    pub(super) fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `LIMIT $n` with `limit` as its value; call it after the last condition. A negative
    /// limit is refused: Postgres rejects it and SQLite reads it as "no limit", so
    /// passing it through would make the backends disagree.
    pub(super) fn limit(&mut self, limit: i64) -> Result<String, StoreError> {
        if limit < 0 {
            return Err(StoreError::Query(format!(
                "list limit must not be negative, got {limit}"
            )));
        }
        self.args.push(Arg::Int(limit));
        Ok(format!("LIMIT ${}", self.args.len()))
    }

    /// Binds the values, in placeholder order, to `sql`.
    pub(super) fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        self.args.iter().fold(sqlx::query(sql), |q, arg| match arg {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
        })
    }
}

/// Applies a status change to an analysis inside the caller's transaction. An end state
/// stamps `finished_at`; going back to running clears it.
pub(super) async fn apply_status(
    store: &SqlStore,
    conn: &mut AnyConnection,
    analysis_id: i64,
    change: &StatusChange,
) -> Result<(), StoreError> {
    let finished_at = match change.status {
        super::AnalysisStatus::Running => None,
        _ => Some(change.at),
    };
    // An analysis ends once: the first end (a regression, a rollback request, Flagger's
    // outcome) wins, and a later one that raced with it leaves it as it is.
    let done = sqlx::query(
        "UPDATE analysis SET status = $1, status_reason = $2, finished_at = $3 \
         WHERE id = $4 AND (status = 'running' OR $1 = 'running')",
    )
    .bind(change.status.as_str())
    .bind(change.reason.as_str())
    .bind(finished_at)
    .bind(analysis_id)
    .execute(&mut *conn)
    .await
    .map_err(|e| store.err(e))?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query("SELECT id FROM analysis WHERE id = $1")
            .bind(analysis_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| store.err(e))?;
        if exists.is_none() {
            return Err(StoreError::Query(format!(
                "status change for analysis {analysis_id}: no such analysis"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await.map_err(|e| match e {
            MigrateError::Execute(inner) => match classify(self.backend, inner) {
                StoreError::Query(msg) => StoreError::Migration(msg),
                other => other,
            },
            other => StoreError::Migration(other.to_string()),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn open_analysis(&self, new: &NewAnalysis) -> Result<(Analysis, bool), StoreError> {
        analysis::open(self, new).await
    }

    async fn find_analysis(&self, key: &AnalysisKey) -> Result<Option<Analysis>, StoreError> {
        analysis::find(self, key).await
    }

    async fn get_analysis(&self, id: i64) -> Result<Option<Analysis>, StoreError> {
        analysis::get(self, id).await
    }

    async fn looks(&self, analysis_id: i64) -> Result<Vec<LookRow>, StoreError> {
        look::list(self, analysis_id).await
    }

    async fn record_look(
        &self,
        new: &NewLook,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<LookInsert, StoreError> {
        look::record(self, new, decision, status).await
    }

    async fn record_decision(
        &self,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<i64, StoreError> {
        decision::record(self, decision, status).await
    }

    async fn record_decision_if_running(
        &self,
        decision: &NewDecision,
    ) -> Result<Option<i64>, StoreError> {
        decision::record_if_running(self, decision).await
    }

    async fn decisions(&self, analysis_id: i64) -> Result<Vec<DecisionRow>, StoreError> {
        decision::of_analysis(self, analysis_id).await
    }

    async fn decisions_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        decision::of_canary(self, namespace, name).await
    }

    async fn record_event(&self, new: &NewEvent) -> Result<i64, StoreError> {
        event::record(self, new).await
    }

    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRow>, StoreError> {
        event::list(self, namespace, name).await
    }

    async fn start_load_run(&self, run: &NewLoadRun) -> Result<i64, StoreError> {
        load_run::start(self, run).await
    }

    async fn finish_load_run(
        &self,
        run_id: &str,
        outcome: &LoadRunOutcome,
    ) -> Result<(), StoreError> {
        load_run::finish(self, run_id, outcome).await
    }

    async fn load_runs(&self, namespace: &str, name: &str) -> Result<Vec<LoadRunRow>, StoreError> {
        load_run::of_canary(self, namespace, name).await
    }

    async fn enqueue_annotation(
        &self,
        annotation: &NewAnnotation,
    ) -> Result<Option<i64>, StoreError> {
        outbox::enqueue(self, annotation).await
    }

    async fn claim_annotations(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::claim(self, now, lease_until, limit).await
    }

    async fn annotation_delivered(
        &self,
        id: i64,
        external_id: Option<&str>,
        at: Millis,
    ) -> Result<bool, StoreError> {
        outbox::delivered(self, id, external_id, at).await
    }

    async fn annotation_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Millis,
    ) -> Result<(), StoreError> {
        outbox::failed(self, id, error, retry_at).await
    }

    async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        outbox::backlog(self).await
    }

    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::list(self, limit).await
    }

    async fn list_analyses(&self, filter: &AnalysisFilter) -> Result<Vec<Analysis>, StoreError> {
        analysis::list(self, filter).await
    }

    async fn latest_analysis(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Analysis>, StoreError> {
        analysis::latest(self, namespace, name).await
    }

    async fn gates(&self, namespace: &str, name: &str) -> Result<Vec<GateRow>, StoreError> {
        gate::of_canary(self, namespace, name).await
    }

    async fn gate_mode(&self, namespace: &str, name: &str) -> Result<Option<bool>, StoreError> {
        gate::mode(self, namespace, name).await
    }

    async fn set_gate_mode(
        &self,
        namespace: &str,
        name: &str,
        manual: bool,
        at: Millis,
    ) -> Result<(), StoreError> {
        gate::set_mode(self, namespace, name, manual, at).await
    }

    async fn set_gate(
        &self,
        gate: &GateRow,
        audit: &NewAudit,
        annotation: Option<&NewAnnotation>,
    ) -> Result<GateRow, StoreError> {
        gate::set(self, gate, audit, annotation).await
    }

    async fn request_rollback(
        &self,
        analysis_id: i64,
        change: &StatusChange,
        audit: &NewAudit,
        annotation: Option<&NewAnnotation>,
    ) -> Result<RollbackRequest, StoreError> {
        analysis::request_rollback(self, analysis_id, change, audit, annotation).await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        audit::list(self, filter).await
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
        let mut w = Conditions::default();
        assert_eq!(w.where_clause(), "");
        w.text("namespace =", "x'; DROP TABLE analysis; --");
        w.int("id <", 7);
        let limit = w.limit(50).ok();
        assert_eq!(w.where_clause(), " WHERE namespace = $1 AND id < $2");
        assert_eq!(limit.as_deref(), Some("LIMIT $3"));
        assert!(
            !w.where_clause().contains("DROP"),
            "values are bound, not written"
        );
        assert!(
            matches!(Conditions::default().limit(-1), Err(StoreError::Query(m)) if m.contains("-1"))
        );
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
