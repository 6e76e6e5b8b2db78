//! Store suite cases: analyses, events, migrations.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use verdict::domain::{AnalysisId, Controller};
use verdict::store::{connect, AnalysisStatus, NewEvent};

use super::{analysis, canary, key, settings, Ctx};

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
