//! Store suite cases: manual gates, rollback requests, the audit log, analysis listing.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{AnyConnection, Connection, Executor};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use verdict::domain::{AnalysisId, AnalysisKey, CanaryName, Checksum, Namespace};
use verdict::store::{
    Analysis, AnalysisFilter, AnalysisStatus, AuditFilter, AuditRow, GateKind, GateRow, GateState,
    ManualAction, Milestone, MilestoneKind, NewAnalysis, NewAudit, OutboxEntry, RollbackRequest,
    StatusChange, StoreError,
};

use super::{analysis, canary, decision, settings, Ctx};

// ---------------------------------------------------------------- fixtures

fn gate(name: &str, kind: GateKind, state: GateState, actor: &str, at: i64) -> GateRow {
    GateRow {
        canary: canary("test", name),
        kind,
        state,
        actor: actor.to_owned(),
        reason: format!("{actor} says {}", state.as_str()),
        updated_at: at,
    }
}

/// The audit row the API would write with `g`.
fn audit_of(g: &GateRow) -> NewAudit {
    let verb = match g.state {
        GateState::Open => "open",
        GateState::Held => "hold",
    };
    NewAudit {
        actor: g.actor.clone(),
        role: "release-manager".to_owned(),
        action: format!("gate.{}.{verb}", g.kind.as_str()),
        target: g.canary.clone(),
        reason: g.reason.clone(),
        at: g.updated_at,
    }
}

fn rollback_audit(target: &str, actor: &str, at: i64) -> NewAudit {
    NewAudit {
        actor: actor.to_owned(),
        role: "release-manager".to_owned(),
        action: "rollback".to_owned(),
        target: verdict::domain::CanaryRef::parse(target).expect("target"),
        reason: "customer reports of 502s".to_owned(),
        at,
    }
}

/// A person's action as the store records it.
fn act(audit: NewAudit, milestone: Option<&Milestone>) -> ManualAction {
    ManualAction {
        audit,
        milestone: milestone.cloned(),
    }
}

/// The milestone of a person's action (these may repeat: no once-only key).
fn annotation(text: &str, at: i64) -> Milestone {
    Milestone {
        kind: MilestoneKind::GateHeld,
        canary: canary("test", "podinfo"),
        analysis: None,
        actor: Some("alice".to_owned()),
        detail: text.to_owned(),
        time: at,
        since: None,
    }
}

/// The milestones in outbox rows.
fn milestones(rows: &[verdict::store::OutboxRow]) -> Vec<&Milestone> {
    rows.iter()
        .filter_map(|r| match &r.entry {
            OutboxEntry::Milestone(m) => Some(m),
            OutboxEntry::Other { .. } => None,
        })
        .collect()
}

fn rollback_change(at: i64) -> StatusChange {
    StatusChange {
        status: AnalysisStatus::Failed,
        reason: "rollback requested by alice: customer reports of 502s".to_owned(),
        at,
    }
}

fn new_analysis(namespace: &str, name: &str, checksum: &str, started_at: i64) -> NewAnalysis {
    NewAnalysis {
        key: AnalysisKey {
            namespace: Namespace::parse(namespace).expect("namespace"),
            name: CanaryName::parse(name).expect("name"),
            checksum: Checksum::parse(checksum).expect("checksum"),
        },
        settings: settings(name),
        started_at,
        baseline: None,
    }
}

/// A connection beside the store's pool, for what the `Store` trait cannot do
/// (counting rows, breaking a table on purpose).
async fn raw(ctx: &Ctx) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&ctx.url)
        .await
        .expect("raw connection")
}

async fn exec(ctx: &Ctx, sql: &str) {
    let mut conn = raw(ctx).await;
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

async fn count(ctx: &Ctx, table: &str) -> i64 {
    let mut conn = raw(ctx).await;
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"));
    conn.close().await.expect("close");
    n
}

async fn all_audit(ctx: &Ctx) -> Vec<AuditRow> {
    ctx.store
        .audit(&AuditFilter {
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await
        .expect("audit")
}

async fn fail_with(ctx: &Ctx, a: &Analysis, status: AnalysisStatus, at: i64) {
    let change = StatusChange {
        status,
        reason: format!("ended {}", status.as_str()),
        at,
    };
    let name = a.key.name.as_str();
    ctx.store
        .record_decision(
            &decision(Some(a.id), name, "post-rollout", "end"),
            Some(&change),
        )
        .await
        .expect("status change");
}

// ---------------------------------------------------------------- gates

pub(crate) async fn gates_are_empty_until_set_then_read_back(ctx: &Ctx) {
    let s = &ctx.store;
    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        []
    );
    let held = gate(
        "podinfo",
        GateKind::Promotion,
        GateState::Held,
        "alice",
        1_000,
    );
    let stored = s
        .set_gate(&held, &act(audit_of(&held), None))
        .await
        .expect("set");
    assert_eq!(stored, held, "the row as stored is the row given");
    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        std::slice::from_ref(&held)
    );
    let rollout = gate("podinfo", GateKind::Rollout, GateState::Open, "bob", 2_000);
    s.set_gate(&rollout, &act(audit_of(&rollout), None))
        .await
        .expect("set");
    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        [rollout, held],
        "both kinds, rollout first"
    );
    assert_eq!(s.gates(&canary("test", "other")).await.expect("gates"), []);
    assert_eq!(
        s.gates(&canary("prod", "podinfo")).await.expect("gates"),
        []
    );
}

pub(crate) async fn set_gate_replaces_its_one_row_and_writes_audit_and_outbox(ctx: &Ctx) {
    let s = &ctx.store;
    let held = gate(
        "podinfo",
        GateKind::Promotion,
        GateState::Held,
        "alice",
        1_000,
    );
    let note = annotation("promotion held by alice", 1_000);
    s.set_gate(&held, &act(audit_of(&held), Some(&note)))
        .await
        .expect("hold");
    let opened = gate(
        "podinfo",
        GateKind::Promotion,
        GateState::Open,
        "bob",
        2_000,
    );
    let stored = s
        .set_gate(&opened, &act(audit_of(&opened), None))
        .await
        .expect("open");
    assert_eq!(stored, opened);
    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        std::slice::from_ref(&opened),
        "the second set replaces the first: one row per kind"
    );
    assert_eq!(count(ctx, "gate").await, 1);

    let log = all_audit(ctx).await;
    assert_eq!(
        log.iter().map(|r| &r.audit).collect::<Vec<_>>(),
        [&audit_of(&opened), &audit_of(&held)],
        "one audit row per set, newest first"
    );
    assert!(log[0].id > log[1].id);
    let outbox = s.outbox(100).await.expect("outbox");
    assert_eq!(
        milestones(&outbox),
        [&note],
        "only the set that carried an annotation wrote one"
    );
}

pub(crate) async fn set_gate_writes_nothing_when_its_transaction_fails(ctx: &Ctx) {
    let s = &ctx.store;
    let held = gate(
        "podinfo",
        GateKind::Rollout,
        GateState::Held,
        "alice",
        1_000,
    );
    s.set_gate(&held, &act(audit_of(&held), None))
        .await
        .expect("first set");
    let opened = gate(
        "podinfo",
        GateKind::Rollout,
        GateState::Open,
        "mallory",
        2_000,
    );
    let note = annotation("rollout opened by mallory", 2_000);

    // The audit insert fails after the gate upsert: the upsert must not survive.
    exec(ctx, "ALTER TABLE audit RENAME TO audit_away").await;
    let got = s
        .set_gate(&opened, &act(audit_of(&opened), Some(&note)))
        .await;
    exec(ctx, "ALTER TABLE audit_away RENAME TO audit").await;
    assert!(matches!(got, Err(StoreError::Query(_))), "{got:?}");

    // The outbox insert fails after the upsert and the audit row: neither may survive.
    exec(ctx, "ALTER TABLE outbox RENAME TO outbox_away").await;
    let got = s
        .set_gate(&opened, &act(audit_of(&opened), Some(&note)))
        .await;
    exec(ctx, "ALTER TABLE outbox_away RENAME TO outbox").await;
    assert!(matches!(got, Err(StoreError::Query(_))), "{got:?}");

    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        std::slice::from_ref(&held),
        "the gate is as the last successful set left it"
    );
    assert_eq!(
        all_audit(ctx)
            .await
            .into_iter()
            .map(|r| r.audit)
            .collect::<Vec<_>>(),
        [audit_of(&held)]
    );
    assert_eq!(s.outbox(100).await.expect("outbox"), []);

    // The store works again once the tables are back.
    s.set_gate(&opened, &act(audit_of(&opened), Some(&note)))
        .await
        .expect("set after repair");
    assert_eq!(
        s.gates(&canary("test", "podinfo")).await.expect("gates"),
        [opened]
    );
    assert_eq!(count(ctx, "audit").await, 2);
    assert_eq!(count(ctx, "outbox").await, 1);
}

pub(crate) async fn concurrent_set_gate_leaves_one_row(ctx: &Ctx) {
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = JoinSet::new();
    for i in 0..N {
        let (s, b) = (ctx.store.clone(), barrier.clone());
        let state = if i % 2 == 0 {
            GateState::Open
        } else {
            GateState::Held
        };
        let g = gate(
            "podinfo",
            GateKind::Promotion,
            state,
            &format!("user-{i}"),
            i as i64,
        );
        tasks.spawn(async move {
            b.wait().await;
            let stored = s.set_gate(&g, &act(audit_of(&g), None)).await;
            (g, stored)
        });
    }
    let results = tasks.join_all().await;
    for (given, stored) in &results {
        assert_eq!(stored.as_ref().expect("set"), given);
    }
    let rows = ctx
        .store
        .gates(&canary("test", "podinfo"))
        .await
        .expect("gates");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        results.iter().any(|(given, _)| *given == rows[0]),
        "the row is one caller's, whole: {rows:?}"
    );
    assert_eq!(count(ctx, "gate").await, 1);
    let actors: HashSet<String> = all_audit(ctx)
        .await
        .into_iter()
        .map(|r| r.audit.actor)
        .collect();
    assert_eq!(actors.len(), N, "every call wrote its audit row");
}

pub(crate) async fn a_stored_gate_with_an_unknown_state_is_an_error(ctx: &Ctx) {
    // The CHECK constraint stands in the way; lift it as a botched manual fix would.
    if ctx.url.starts_with("sqlite:") {
        let mut conn = raw(ctx).await;
        conn.execute("PRAGMA ignore_check_constraints = ON")
            .await
            .expect("pragma");
        conn.execute(
            "INSERT INTO gate (namespace, name, kind, state, actor, reason, updated_at) \
             VALUES ('test', 'podinfo', 'promotion', 'ajar', 'x', 'y', 1)",
        )
        .await
        .expect("insert");
        conn.close().await.expect("close");
    } else {
        exec(ctx, "ALTER TABLE gate DROP CONSTRAINT gate_state_check").await;
        exec(
            ctx,
            "INSERT INTO gate (namespace, name, kind, state, actor, reason, updated_at) \
             VALUES ('test', 'podinfo', 'promotion', 'ajar', 'x', 'y', 1)",
        )
        .await;
    }
    let got = ctx.store.gates(&canary("test", "podinfo")).await;
    match got {
        Err(StoreError::Query(msg)) => assert!(msg.contains("\"ajar\""), "{msg}"),
        other => panic!("expected a query error naming the state, got {other:?}"),
    }
}

// ---------------------------------------------------------------- rollback requests

pub(crate) async fn request_rollback_fails_a_running_analysis_once(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let change = rollback_change(1_700_000_500_000);
    let audit = rollback_audit("test/podinfo", "alice", change.at);
    let note = annotation("rollback requested by alice", change.at);
    let got = s
        .request_rollback(a.id, &change, &act(audit.clone(), Some(&note)))
        .await
        .expect("request");
    let RollbackRequest::Recorded(failed) = got else {
        panic!("a running analysis was not rolled back: {got:?}")
    };
    assert_eq!(failed.id, a.id);
    assert_eq!(failed.status, AnalysisStatus::Failed);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some(change.reason.as_str())
    );
    assert_eq!(failed.finished_at, Some(change.at));
    assert_eq!(
        (&failed.key, &failed.settings, failed.started_at),
        (&a.key, &a.settings, a.started_at)
    );
    assert_eq!(
        s.get_analysis(a.id).await.expect("get").as_ref(),
        Some(&failed),
        "the answer is the row as stored"
    );
    let log = all_audit(ctx).await;
    assert_eq!(log.iter().map(|r| &r.audit).collect::<Vec<_>>(), [&audit]);
    let outbox = s.outbox(100).await.expect("outbox");
    assert_eq!(milestones(&outbox), [&note]);

    // Asking again changes nothing and says why.
    let again = s
        .request_rollback(
            a.id,
            &rollback_change(1_700_000_600_000),
            &act(
                rollback_audit("test/podinfo", "bob", 1_700_000_600_000),
                Some(&annotation("again", 1_700_000_600_000)),
            ),
        )
        .await
        .expect("again");
    assert_eq!(again, RollbackRequest::NotRunning(failed.clone()));
    assert_eq!(s.get_analysis(a.id).await.expect("get"), Some(failed));
    assert_eq!(count(ctx, "audit").await, 1);
    assert_eq!(count(ctx, "outbox").await, 1);
}

pub(crate) async fn request_rollback_of_a_finished_or_missing_analysis_writes_nothing(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    fail_with(ctx, &a, AnalysisStatus::Succeeded, 1_700_000_100_000).await;
    let finished = s.get_analysis(a.id).await.expect("get").expect("analysis");
    assert_eq!(finished.status, AnalysisStatus::Succeeded);
    let change = rollback_change(1_700_000_500_000);
    let audit = rollback_audit("test/podinfo", "alice", change.at);
    let note = annotation("rollback", change.at);
    let got = s
        .request_rollback(a.id, &change, &act(audit.clone(), Some(&note)))
        .await
        .expect("request");
    assert_eq!(got, RollbackRequest::NotRunning(finished.clone()));
    assert_eq!(
        s.get_analysis(a.id).await.expect("get"),
        Some(finished),
        "finished_at and reason untouched"
    );

    let got = s
        .request_rollback(
            AnalysisId::new(424_242),
            &change,
            &act(audit.clone(), Some(&note)),
        )
        .await
        .expect("request");
    assert_eq!(got, RollbackRequest::Missing);

    // A change that is not a failure is refused before anything is written.
    let (b, _) = s
        .open_analysis(&analysis("other", "abc123"))
        .await
        .expect("open");
    let wrong = StatusChange {
        status: AnalysisStatus::Succeeded,
        ..change.clone()
    };
    let got = s
        .request_rollback(b.id, &wrong, &act(audit.clone(), Some(&note)))
        .await;
    assert!(
        matches!(&got, Err(StoreError::Query(m)) if m.contains("succeeded")),
        "{got:?}"
    );
    assert_eq!(s.get_analysis(b.id).await.expect("get"), Some(b));

    // A failing audit insert undoes the status change.
    let (c, _) = s
        .open_analysis(&analysis("third", "abc123"))
        .await
        .expect("open");
    exec(ctx, "ALTER TABLE audit RENAME TO audit_away").await;
    let got = s
        .request_rollback(c.id, &change, &act(audit.clone(), Some(&note)))
        .await;
    exec(ctx, "ALTER TABLE audit_away RENAME TO audit").await;
    assert!(matches!(got, Err(StoreError::Query(_))), "{got:?}");
    assert_eq!(s.get_analysis(c.id).await.expect("get"), Some(c));

    assert_eq!(count(ctx, "audit").await, 0);
    assert_eq!(count(ctx, "outbox").await, 0);
}

pub(crate) async fn concurrent_rollback_requests_record_once(ctx: &Ctx) {
    const N: usize = 8;
    let (a, _) = ctx
        .store
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = JoinSet::new();
    for i in 0..N {
        let (s, b) = (ctx.store.clone(), barrier.clone());
        tasks.spawn(async move {
            let at = 1_700_000_000_000 + i as i64;
            let audit = rollback_audit("test/podinfo", &format!("user-{i}"), at);
            b.wait().await;
            s.request_rollback(a.id, &rollback_change(at), &act(audit.clone(), None))
                .await
        });
    }
    let results: Vec<_> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("request"))
        .collect();
    let recorded: Vec<&Analysis> = results
        .iter()
        .filter_map(|r| match r {
            RollbackRequest::Recorded(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(recorded.len(), 1, "{results:?}");
    let winner = recorded[0];
    for r in &results {
        match r {
            RollbackRequest::Recorded(_) => {}
            RollbackRequest::NotRunning(now) => assert_eq!(now, winner),
            RollbackRequest::Missing => panic!("the analysis exists"),
        }
    }
    let log = all_audit(ctx).await;
    assert_eq!(log.len(), 1, "one audit row: {log:?}");
    assert_eq!(Some(log[0].audit.at), winner.finished_at);
}

// ---------------------------------------------------------------- listing analyses

/// Opens 24 analyses over two namespaces and three names, with start times that do not
/// follow the ids, and ends some of them. Returns them as stored, in id order.
async fn populate(ctx: &Ctx) -> Vec<Analysis> {
    let s = &ctx.store;
    let statuses = [
        AnalysisStatus::Running,
        AnalysisStatus::Failed,
        AnalysisStatus::Succeeded,
        AnalysisStatus::Aborted,
    ];
    let mut ids = Vec::new();
    for i in 0..24_i64 {
        let namespace = if i % 2 == 0 { "test" } else { "prod" };
        let name = ["podinfo", "frontend", "backend"][(i % 3) as usize];
        // 7 is coprime to 24, so every start time differs and none follows the id.
        let started_at = 1_700_000_000_000 + ((i * 7) % 24) * 60_000;
        let mut new = new_analysis(namespace, name, &format!("rev{i}"), started_at);
        // Every fifth is Argo Rollouts'.
        if i % 5 == 0 {
            new.settings.canary.controller = verdict::domain::Controller::Argo;
        }
        let (a, _) = s.open_analysis(&new).await.expect("open");
        // Status by i / 2, so that both namespaces see every status.
        let status = statuses[((i / 2) % 4) as usize];
        if status != AnalysisStatus::Running {
            fail_with(ctx, &a, status, started_at + 30_000).await;
        }
        ids.push(a.id);
    }
    let mut all = Vec::new();
    for id in ids {
        all.push(s.get_analysis(id).await.expect("get").expect("analysis"));
    }
    all
}

/// What `filter` must return, computed from the rows in memory.
fn expected(all: &[Analysis], f: &AnalysisFilter) -> Vec<Analysis> {
    let mut rows: Vec<Analysis> = all
        .iter()
        .filter(|a| f.namespace.as_ref().is_none_or(|n| a.key.namespace == *n))
        .filter(|a| f.name.as_ref().is_none_or(|n| a.key.name == *n))
        .filter(|a| f.status.is_none_or(|st| a.status == st))
        .filter(|a| f.since.is_none_or(|t| a.started_at >= t))
        .filter(|a| f.before.is_none_or(|id| a.id < id))
        .filter(|a| f.controller.is_none_or(|c| a.controller == c))
        .cloned()
        .collect();
    rows.sort_by_key(|a| std::cmp::Reverse(a.id));
    rows.truncate(f.limit as usize);
    rows
}

pub(crate) async fn list_analyses_applies_each_filter_and_their_combinations(ctx: &Ctx) {
    let all = populate(ctx).await;
    let mid = all[12].id;
    let since = 1_700_000_000_000 + 10 * 60_000;
    let namespaces = [None, Some("test"), Some("nowhere")];
    let names = [None, Some("podinfo"), Some("backend")];
    let statuses = [
        None,
        Some(AnalysisStatus::Running),
        Some(AnalysisStatus::Aborted),
    ];
    let sinces = [None, Some(since)];
    let befores = [None, Some(mid)];
    let controllers = [
        None,
        Some(verdict::domain::Controller::Flagger),
        Some(verdict::domain::Controller::Argo),
    ];
    let mut non_empty = 0;
    for ns in namespaces {
        for name in names {
            for status in statuses {
                for since in sinces {
                    for before in befores {
                        for controller in controllers {
                            let f = AnalysisFilter {
                                namespace: ns.map(|n| Namespace::parse(n).expect("namespace")),
                                name: name.map(|n| CanaryName::parse(n).expect("name")),
                                status,
                                since,
                                before,
                                mode: None,
                                controller,
                                origin: Default::default(),
                                limit: 100,
                            };
                            let got = ctx.store.list_analyses(&f).await.expect("list");
                            let want = expected(&all, &f);
                            assert_eq!(got, want, "{f:?}");
                            non_empty += usize::from(!want.is_empty());
                        }
                    }
                }
            }
        }
    }
    // Guard the fixture: most combinations must select something to mean anything.
    assert!(
        non_empty > 40,
        "only {non_empty} combinations selected rows"
    );

    let newest = AnalysisFilter {
        limit: 3,
        ..AnalysisFilter::default()
    };
    let got = ctx.store.list_analyses(&newest).await.expect("list");
    let ids: Vec<AnalysisId> = got.iter().map(|a| a.id).collect();
    assert_eq!(ids, [all[23].id, all[22].id, all[21].id]);
    let none = AnalysisFilter::default();
    assert_eq!(ctx.store.list_analyses(&none).await.expect("limit 0"), []);
}

pub(crate) async fn list_analyses_pages_without_gaps_or_duplicates(ctx: &Ctx) {
    let all = populate(ctx).await;
    for (namespace, status) in [
        (None, None),
        (Some("test"), None),
        (None, Some(AnalysisStatus::Failed)),
    ] {
        let base = AnalysisFilter {
            namespace: namespace.map(|n| Namespace::parse(n).expect("namespace")),
            status,
            limit: 5,
            ..AnalysisFilter::default()
        };
        let want = expected(
            &all,
            &AnalysisFilter {
                limit: 1_000,
                ..base.clone()
            },
        );
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = ctx
                .store
                .list_analyses(&AnalysisFilter {
                    before: cursor,
                    ..base.clone()
                })
                .await
                .expect("page");
            assert!(page.len() <= 5);
            pages += 1;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            seen.extend(page);
        }
        assert_eq!(seen, want, "{namespace:?} {status:?}");
        assert!(pages > 2 || want.len() < 10, "more rows than one page");
    }
}

pub(crate) async fn list_analyses_refuses_a_negative_limit(ctx: &Ctx) {
    populate(ctx).await;
    let f = AnalysisFilter {
        limit: -1,
        ..AnalysisFilter::default()
    };
    let got = ctx.store.list_analyses(&f).await;
    assert!(
        matches!(&got, Err(StoreError::Query(m)) if m.contains("-1")),
        "{got:?}"
    );
    let got = ctx
        .store
        .audit(&AuditFilter {
            limit: -5,
            ..AuditFilter::default()
        })
        .await;
    assert!(
        matches!(&got, Err(StoreError::Query(m)) if m.contains("-5")),
        "{got:?}"
    );
}

pub(crate) async fn latest_analysis_is_the_last_opened(ctx: &Ctx) {
    let s = &ctx.store;
    assert_eq!(
        s.latest_analysis(&canary("test", "podinfo"))
            .await
            .expect("latest"),
        None
    );
    // Start times run backwards so that "latest" can only mean "opened last".
    let (first, _) = s
        .open_analysis(&new_analysis("test", "podinfo", "rev1", 3_000))
        .await
        .expect("open");
    let (_, _) = s
        .open_analysis(&new_analysis("prod", "podinfo", "rev9", 9_000))
        .await
        .expect("open");
    assert_eq!(
        s.latest_analysis(&canary("test", "podinfo"))
            .await
            .expect("latest"),
        Some(first)
    );
    let (second, _) = s
        .open_analysis(&new_analysis("test", "podinfo", "rev2", 2_000))
        .await
        .expect("open");
    s.open_analysis(&new_analysis("test", "frontend", "rev3", 1_000))
        .await
        .expect("open");
    fail_with(ctx, &second, AnalysisStatus::Aborted, 5_000).await;
    let latest = s
        .latest_analysis(&canary("test", "podinfo"))
        .await
        .expect("latest");
    assert_eq!(latest.as_ref().map(|a| a.id), Some(second.id));
    assert_eq!(
        latest.map(|a| a.status),
        Some(AnalysisStatus::Aborted),
        "whatever its status"
    );
    assert_eq!(
        s.latest_analysis(&canary("test", "nobody"))
            .await
            .expect("latest"),
        None
    );
}

// ---------------------------------------------------------------- audit log

pub(crate) async fn audit_filters_by_target_and_pages(ctx: &Ctx) {
    let s = &ctx.store;
    let mut written = Vec::new();
    for i in 0..13_i64 {
        let name = ["podinfo", "frontend", "podinfo-x"][(i % 3) as usize];
        let g = gate(
            name,
            GateKind::Rollout,
            GateState::Held,
            &format!("u{i}"),
            i,
        );
        s.set_gate(&g, &act(audit_of(&g), None)).await.expect("set");
        written.push(audit_of(&g));
    }
    let all = all_audit(ctx).await;
    assert_eq!(
        all.iter().rev().map(|r| &r.audit).collect::<Vec<_>>(),
        written.iter().collect::<Vec<_>>(),
        "every row, newest first"
    );
    for target in [None, Some("test/podinfo"), Some("test/nobody")] {
        let want: Vec<AuditRow> = all
            .iter()
            .filter(|r| target.is_none_or(|t| r.audit.target.to_string() == t))
            .cloned()
            .collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s
                .audit(&AuditFilter {
                    target: target.map(|t| verdict::domain::CanaryRef::parse(t).expect("target")),
                    before: cursor,
                    limit: 2,
                })
                .await
                .expect("page");
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            seen.extend(page);
        }
        assert_eq!(seen, want, "{target:?}");
    }
    // Exact match: `test/podinfo` does not take in `test/podinfo-x`.
    let podinfo = s
        .audit(&AuditFilter {
            target: Some(canary("test", "podinfo")),
            before: None,
            limit: 100,
        })
        .await
        .expect("audit");
    assert_eq!(podinfo.len(), 5);
    assert!(podinfo
        .iter()
        .all(|r| r.audit.target == canary("test", "podinfo")));
}

// ---------------------------------------------------------------- gate mode, first end wins

pub(crate) async fn gate_mode_is_recorded_per_canary(ctx: &Ctx) {
    let s = &ctx.store;
    assert_eq!(
        s.gate_mode(&canary("test", "shop")).await.expect("mode"),
        None
    );
    s.set_gate_mode(&canary("test", "shop"), true, 1_000)
        .await
        .expect("set");
    assert_eq!(
        s.gate_mode(&canary("test", "shop")).await.expect("mode"),
        Some(true)
    );
    // Unchanged: a no-op; changed: replaced; other canaries untouched.
    s.set_gate_mode(&canary("test", "shop"), true, 2_000)
        .await
        .expect("set again");
    s.set_gate_mode(&canary("test", "shop"), false, 3_000)
        .await
        .expect("switch");
    assert_eq!(
        s.gate_mode(&canary("test", "shop")).await.expect("mode"),
        Some(false)
    );
    assert_eq!(
        s.gate_mode(&canary("test", "cart")).await.expect("mode"),
        None
    );
    assert_eq!(
        s.gate_mode(&canary("other", "shop")).await.expect("mode"),
        None
    );
    assert_eq!(count(ctx, "gate_mode").await, 1);
}

/// An analysis ends once: Flagger's outcome arriving after a rollback request (a race
/// between post-rollout and the API) records its decision but leaves the failure as is.
pub(crate) async fn a_later_end_does_not_overwrite_a_rollback_request(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let change = rollback_change(1_700_000_500_000);
    let audit = rollback_audit("test/podinfo", "alice", change.at);
    s.request_rollback(a.id, &change, &act(audit.clone(), None))
        .await
        .expect("request");
    let succeeded = StatusChange {
        status: AnalysisStatus::Succeeded,
        reason: "Flagger promoted the canary".to_owned(),
        at: 1_700_000_600_000,
    };
    s.record_decision(
        &decision(Some(a.id), "podinfo", "post-rollout", "req-late"),
        Some(&succeeded),
    )
    .await
    .expect("the decision is recorded");
    let now = s.get_analysis(a.id).await.expect("get").expect("row");
    assert_eq!(now.status, AnalysisStatus::Failed);
    assert_eq!(now.status_reason.as_deref(), Some(change.reason.as_str()));
    assert_eq!(now.finished_at, Some(change.at));
    assert_eq!(s.decisions(a.id).await.expect("decisions").len(), 1);
    // A status change for an analysis that does not exist is still an error.
    let missing = s
        .record_decision(
            &decision(
                Some(AnalysisId::new(a.id.get() + 1000)),
                "podinfo",
                "post-rollout",
                "req-x",
            ),
            Some(&succeeded),
        )
        .await;
    assert!(missing.is_err(), "{missing:?}");
}

/// A passing answer is recorded only while its analysis runs, so a rollback request that
/// committed first can never be overtaken by a promotion.
pub(crate) async fn a_promotion_is_recorded_only_while_running(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let first = s
        .record_decision_if_running(&decision(
            Some(a.id),
            "podinfo",
            "confirm-promotion",
            "req-1",
        ))
        .await
        .expect("record");
    assert!(first.is_some(), "a running analysis takes the decision");
    let change = rollback_change(1_700_000_500_000);
    s.request_rollback(
        a.id,
        &change,
        &act(rollback_audit("test/podinfo", "bob", change.at), None),
    )
    .await
    .expect("rollback");
    let second = s
        .record_decision_if_running(&decision(
            Some(a.id),
            "podinfo",
            "confirm-promotion",
            "req-2",
        ))
        .await
        .expect("check");
    assert_eq!(second, None, "a failed analysis took a promotion");
    let stored = s.decisions(a.id).await.expect("decisions");
    assert_eq!(stored.len(), 1, "nothing was written for the refused one");
    assert!(s
        .record_decision_if_running(&decision(None, "podinfo", "confirm-promotion", "req-3"))
        .await
        .is_err());
}
