//! Store suite cases: analyses, events, migrations.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use verdict::domain::{AnalysisId, Controller};
use verdict::store::{connect, AnalysisStatus, NewEvent};

use super::{analysis, canary, key, settings, Ctx, StoreError};

pub(crate) async fn open_is_idempotent(ctx: &Ctx) {
    let s = &ctx.store;
    let (first, created) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    assert!(created);
    let mut retry = analysis("podinfo", "abc123");
    retry.settings.canary.judge.alpha = 0.05;
    retry.started_at += 60_000;
    let (again, created) = s.open_analysis(&retry).await.expect("reopen");
    assert!(!created, "a retry must not create a second analysis");
    assert_eq!(
        again, first,
        "the first call's settings and start time stand"
    );
    let (other, created) = s
        .open_analysis(&analysis("podinfo", "def456"))
        .await
        .expect("open");
    assert!(created, "a new revision is a new analysis");
    assert_ne!(other.id, first.id);
}

pub(crate) async fn open_concurrently_creates_one_analysis(ctx: &Ctx) {
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = JoinSet::new();
    for _ in 0..N {
        let (s, b) = (ctx.store.clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            s.open_analysis(&analysis("podinfo", "abc123")).await
        });
    }
    let results: Vec<_> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("open"))
        .collect();
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    let first = &results[0].0;
    assert!(
        results.iter().all(|(a, _)| a == first),
        "every caller gets the same analysis"
    );
    let found = ctx
        .store
        .find_analysis(&key("podinfo", "abc123"))
        .await
        .expect("find");
    assert_eq!(found.as_ref(), Some(first));
}

pub(crate) async fn find_and_get(ctx: &Ctx) {
    let s = &ctx.store;
    assert_eq!(
        s.find_analysis(&key("podinfo", "abc123"))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        s.get_analysis(AnalysisId::new(424_242)).await.expect("get"),
        None
    );
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    assert_eq!(a.key, key("podinfo", "abc123"));
    assert_eq!(a.settings, Ok(settings("podinfo")));
    assert_eq!(a.status, AnalysisStatus::Running);
    assert_eq!(
        (a.status_reason.as_deref(), a.started_at, a.finished_at),
        (None, 1_700_000_000_000, None)
    );
    assert_eq!(s.get_analysis(a.id).await.expect("get").as_ref(), Some(&a));
    assert_eq!(
        s.find_analysis(&a.key).await.expect("find").as_ref(),
        Some(&a)
    );
    assert_eq!(
        s.find_analysis(&key("other", "abc123"))
            .await
            .expect("find"),
        None
    );
}

pub(crate) async fn the_controller_is_stored_and_read_back(ctx: &Ctx) {
    let s = &ctx.store;
    let (flagger, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    assert_eq!(flagger.controller, Controller::Flagger, "the default");
    let mut argo = analysis("podinfo", "6b8f9c7d4");
    argo.settings.canary.controller = Controller::Argo;
    let (opened, _) = s.open_analysis(&argo).await.expect("open");
    assert_eq!(opened.controller, Controller::Argo);
    let read = s
        .get_analysis(opened.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.controller, Controller::Argo);
    assert_eq!(
        read.settings.map(|st| st.canary.controller),
        Ok(Controller::Argo),
        "the settings say so too"
    );
}

pub(crate) async fn events_round_trip(ctx: &Ctx) {
    let s = &ctx.store;
    let event = |name: &str, message: &str, time: Option<i64>| NewEvent {
        key: key(name, "abc123"),
        phase: "Progressing".into(),
        event_type: "Normal".into(),
        message: message.into(),
        event_time: time,
        metadata: r#"{"eventMessage":"x"}"#.into(),
        received_at: 1_700_000_000_500,
    };
    let e1 = event("podinfo", "New revision detected", Some(1_700_000_000_000));
    let e2 = event("podinfo", "Advance podinfo.test canary weight 10", None);
    let i1 = s.record_event(&e1).await.expect("e1");
    s.record_event(&event("other", "unrelated", None))
        .await
        .expect("other");
    let i2 = s.record_event(&e2).await.expect("e2");
    let got = s.events(&canary("test", "podinfo")).await.expect("events");
    assert_eq!(
        got.iter().map(|e| (e.id, &e.event)).collect::<Vec<_>>(),
        [(i1, &e1), (i2, &e2)]
    );
    assert_eq!(
        s.events(&canary("test", "nobody")).await.expect("events"),
        []
    );
}

pub(crate) async fn migrations_are_idempotent(ctx: &Ctx) {
    let (a, _) = ctx
        .store
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    ctx.store
        .migrate()
        .await
        .expect("second migrate on the same store");
    let second = connect(&ctx.url).await.expect("connect again");
    second.migrate().await.expect("migrate from a second store");
    second.ping().await.expect("ping");
    assert_eq!(
        second.get_analysis(a.id).await.expect("get"),
        Some(a),
        "data survives"
    );
}

/// A recorded backtest: one transaction, complete or absent; its decisions write no
/// milestone; no query that picks a canary's analysis (by revision, latest, overview,
/// the default listing) ever returns it.
pub(crate) async fn a_recorded_backtest_is_all_or_nothing_and_never_a_canary_s(ctx: &Ctx) {
    use verdict::store::{
        AnalysisFilter, Milestone, MilestoneKind, NewBacktest, Origin, OverviewFilter,
    };
    let s = &ctx.store;
    let (live, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    s.record_look(
        &super::look(live.id, 1, 10),
        &super::decision(Some(live.id), "podinfo", "rollout", "r1"),
        None,
    )
    .await
    .expect("live look");
    let backtest = |checksum: &str, seqs: &[i64]| {
        let looks = seqs
            .iter()
            .map(|&seq| {
                let mut d = super::decision(None, "podinfo", "rollout", "backtest-1");
                d.key = key("podinfo", checksum);
                d.milestones = vec![Milestone::new(
                    MilestoneKind::Regression,
                    canary("test", "podinfo"),
                    "would roll back",
                    1,
                )];
                (super::look(AnalysisId::new(0), seq, 20 + seq as u64), d)
            })
            .collect();
        NewBacktest {
            analysis: analysis("podinfo", checksum),
            looks,
            end: super::failed(1_700_000_500_000),
        }
    };
    let outbox = s.outbox(100).await.expect("outbox").len();
    let b = s
        .record_backtest(&backtest("backtest-1-2-a", &[1, 2]))
        .await
        .expect("record");
    assert_eq!(b.origin, Origin::Backtest);
    assert_eq!(b.status, AnalysisStatus::Failed);
    assert_eq!(b.finished_at, Some(1_700_000_500_000));
    let looks = s.looks(b.id).await.expect("looks");
    assert_eq!(looks.iter().map(|l| l.look.seq).collect::<Vec<_>>(), [1, 2]);
    let ds = s.decisions(b.id).await.expect("decisions");
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().all(|d| d.decision.analysis_id == Some(b.id)));
    assert_eq!(s.outbox(100).await.expect("outbox").len(), outbox);
    assert_eq!(s.get_analysis(b.id).await.expect("get"), Some(b.clone()));

    // Never the canary's: not by revision, not the latest, not in the overview.
    assert_eq!(
        s.find_analysis(&key("podinfo", "backtest-1-2-a"))
            .await
            .expect("find"),
        None
    );
    let podinfo = canary("test", "podinfo");
    assert_eq!(
        s.latest_analysis(&podinfo)
            .await
            .expect("latest")
            .map(|a| a.id),
        Some(live.id)
    );
    let overview = s
        .overview_analyses(&OverviewFilter {
            recent_since: 0,
            namespace: None,
            status: None,
            limit: 100,
        })
        .await
        .expect("overview");
    assert_eq!(overview.iter().map(|a| a.id).collect::<Vec<_>>(), [live.id]);
    let newest = s.overview_looks(0).await.expect("overview looks");
    assert!(newest.iter().all(|l| l.analysis_id != b.id), "{newest:?}");
    let listed = |origin| async move {
        s.list_analyses(&AnalysisFilter {
            origin,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .iter()
        .map(|a| a.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(listed(Origin::Live).await, [live.id]);
    assert_eq!(listed(Origin::Backtest).await, [b.id]);

    // A failure midway (a look given twice; a count the store cannot hold) writes nothing.
    let decisions = s.decisions_for(&podinfo).await.expect("decisions").len();
    let twice = s
        .record_backtest(&backtest("backtest-1-2-b", &[1, 2, 2]))
        .await;
    assert!(matches!(twice, Err(StoreError::Query(_))), "{twice:?}");
    let mut huge = backtest("backtest-1-2-c", &[1, 2, 3]);
    huge.looks[2].0.canary.requests = u64::MAX;
    assert!(s.record_backtest(&huge).await.is_err());
    // The key is new or the recording fails: never the existing analysis.
    assert!(s
        .record_backtest(&backtest("backtest-1-2-a", &[1]))
        .await
        .is_err());
    assert_eq!(listed(Origin::Backtest).await, [b.id]);
    assert_eq!(
        s.decisions_for(&podinfo).await.expect("decisions").len(),
        decisions
    );
}
