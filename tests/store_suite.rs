//! The shared store suite: every test below runs against SQLite (a temp file) and
//! against Postgres (a fresh database), through the same `Store` trait object.

/// The test cases, split by entity; the macro below runs each on both backends.
#[path = "store_suite/analyses.rs"]
mod analyses;
#[path = "store_suite/gates.rs"]
mod gates;
#[path = "store_suite/load_runs.rs"]
mod load_runs;
#[path = "store_suite/looks.rs"]
mod looks;

use analyses::*;
use gates::*;
use load_runs::*;
use looks::*;

use support::db::{self, Backend, TestDb};
use verdict::analysis::settings::resolve;
use verdict::config::Config;
use verdict::domain::{
    AnalysisId, AnalysisKey, AnalysisSettings, CanaryName, CanaryRef, Checksum, Namespace,
};
use verdict::store::{
    connect, AnalysisStatus, ArmTally, NewAnalysis, NewDecision, NewLook, StatusChange, Store,
    StoreError,
};

/// A migrated store and its database.
struct Ctx {
    store: Store,
    url: String,
    db: TestDb,
}

impl Ctx {
    async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        Self {
            store: db.store().await,
            url: db.url.clone(),
            db,
        }
    }
}

/// Runs each listed test function once per backend.
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let ctx = super::Ctx::new(super::Backend::Sqlite).await;
                    super::$test(&ctx).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let ctx = super::Ctx::new(super::Backend::Postgres).await;
                    super::$test(&ctx).await;
                    ctx.db.drop_database().await;
                }
            )*
        }
    };
}

async fn migrated(url: &str) -> Store {
    let store = connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

store_suite!(
    open_is_idempotent,
    open_concurrently_creates_one_analysis,
    find_and_get,
    the_controller_is_stored_and_read_back,
    looks_are_ordered_and_round_trip,
    a_baseline_is_recorded_once_and_never_replaced,
    record_look_conflict_writes_nothing,
    record_look_concurrently_inserts_one_look,
    decisions_by_analysis_and_by_canary,
    status_change_is_atomic_with_its_look_or_decision,
    events_round_trip,
    migrations_are_idempotent,
    odd_strings_round_trip_unchanged,
    out_of_range_input_is_refused_without_writing,
    load_runs_start_finish_and_list,
    gates_are_empty_until_set_then_read_back,
    set_gate_replaces_its_one_row_and_writes_audit_and_outbox,
    set_gate_writes_nothing_when_its_transaction_fails,
    concurrent_set_gate_leaves_one_row,
    a_stored_gate_with_an_unknown_state_is_an_error,
    request_rollback_fails_a_running_analysis_once,
    request_rollback_of_a_finished_or_missing_analysis_writes_nothing,
    concurrent_rollback_requests_record_once,
    gate_mode_is_recorded_per_canary,
    a_later_end_does_not_overwrite_a_rollback_request,
    a_promotion_is_recorded_only_while_running,
    list_analyses_applies_each_filter_and_their_combinations,
    list_analyses_pages_without_gaps_or_duplicates,
    list_analyses_refuses_a_negative_limit,
    latest_analysis_is_the_last_opened,
    a_recorded_backtest_is_all_or_nothing_and_never_a_canary_s,
    audit_filters_by_target_and_pages,
);

// ---------------------------------------------------------------- fixtures

fn key(name: &str, checksum: &str) -> AnalysisKey {
    AnalysisKey {
        namespace: Namespace::parse("test").expect("namespace"),
        name: CanaryName::parse(name).expect("name"),
        checksum: Checksum::parse(checksum).expect("checksum"),
    }
}

/// The settings an analysis of `name` opens with under the default configuration.
fn settings(name: &str) -> AnalysisSettings {
    let name = CanaryName::parse(name).expect("name");
    AnalysisSettings {
        canary: resolve(&name, &Default::default(), &Config::default()).expect("settings"),
        plan: Some(verdict::judge::Plan::fixed(
            vec![0.025, 0.1],
            &[(0, true), (1, false)],
            0.2,
        )),
        boundary_s: None,
        slo_boundary_s: None,
    }
}

fn analysis(name: &str, checksum: &str) -> NewAnalysis {
    NewAnalysis {
        key: key(name, checksum),
        settings: settings(name),
        started_at: 1_700_000_000_000,
        baseline: Some(
            r#"{"at":1700000000000,"canary":{},"primary":{"r":{"instance=a":5.0}}}"#.to_owned(),
        ),
    }
}

/// `namespace/name`.
fn canary(namespace: &str, name: &str) -> CanaryRef {
    CanaryRef::parse(&format!("{namespace}/{name}")).expect("canary")
}

fn arm(base: u64) -> ArmTally {
    ArmTally {
        requests: base * 100,
        errors: base,
        slower: vec![base * 3, base * 2, 0],
    }
}

fn look(analysis_id: AnalysisId, seq: i64, base: u64) -> NewLook {
    NewLook {
        analysis_id,
        seq,
        window_start: 1_700_000_000_000 + seq * 60_000,
        window_end: 1_700_000_060_000 + seq * 60_000,
        canary: arm(base),
        primary: arm(base + 7),
        verdict: "wait".to_owned(),
        reason: format!("look {seq}: not enough evidence"),
        evidence: format!(r#"{{"seq":{seq},"e":1.5}}"#),
        counters: Some(format!(
            r#"{{"at":{seq},"canary":{{"r":{{"instance=a":{base}}}}}}}"#
        )),
    }
}

fn decision(
    analysis_id: Option<AnalysisId>,
    name: &str,
    hook: &str,
    request_id: &str,
) -> NewDecision {
    NewDecision {
        analysis_id,
        key: key(name, "abc123"),
        hook: hook.to_owned(),
        verdict: "pass".to_owned(),
        status_code: 200,
        reason: "no evidence of regression".to_owned(),
        evidence: Some(r#"{"e":1.0}"#.to_owned()),
        request_id: request_id.to_owned(),
        created_at: 1_700_000_000_123,
        milestones: Vec::new(),
    }
}

fn failed(at: i64) -> StatusChange {
    StatusChange {
        status: AnalysisStatus::Failed,
        reason: "error rate 3x primary".into(),
        at,
    }
}

// ---------------------------------------------------------------- connect

#[tokio::test]
async fn connect_refuses_bad_urls() {
    for bad in [
        "",
        "mysql://localhost/v",
        "verdict.db",
        "sqlite://",
        "sqlite://:memory:",
        "http://x",
    ] {
        let got = connect(bad).await.map(|_| ());
        assert!(
            matches!(got, Err(StoreError::BadUrl(_))),
            "{bad:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn connect_hides_the_password_of_a_bad_url() {
    let got = connect("postgres://u:hunter2@127.0.0.1:5432/v?sslmode=nonsense")
        .await
        .map(|_| ());
    let Err(err) = got else {
        panic!("connected with sslmode=nonsense")
    };
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let got = connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .map(|_| ());
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
}

#[tokio::test]
async fn missing_postgres_database_is_unavailable() {
    let url = db::database_url(&db::base_url(), "verdict_test_does_not_exist");
    let got = connect(&url).await.map(|_| ());
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("no/such/dir/v.db").display());
    let got = connect(&url).await.map(|_| ());
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    use sqlx::{Connection, SqliteConnection};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fresh.db");
    assert!(!path.exists());
    let store = migrated(&format!("sqlite://{}", path.display())).await;
    store.ping().await.expect("ping");
    assert!(path.exists(), "connect creates the file");
    let mut raw = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw connection");
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .expect("pragma");
    assert_eq!(mode.0.to_lowercase(), "wal");
}

#[tokio::test]
async fn sqlite_relative_paths_and_spaces_work() {
    // `sqlite://verdict.db` (relative to the working directory) is the documented default.
    let dir = tempfile::tempdir_in(".").expect("temp dir in the working directory");
    let name = dir
        .path()
        .file_name()
        .expect("dir name")
        .to_string_lossy()
        .to_string();
    for file in ["verdict.db", "with space.db"] {
        let url = format!("sqlite://{name}/{file}");
        let store = migrated(&url).await;
        let (a, created) = store
            .open_analysis(&analysis("podinfo", "abc123"))
            .await
            .expect("open");
        assert!(created);
        assert!(
            dir.path().join(file).exists(),
            "{url} did not create {file}"
        );
        let again = migrated(&url).await;
        assert_eq!(again.get_analysis(a.id).await.expect("get"), Some(a));
    }
}
