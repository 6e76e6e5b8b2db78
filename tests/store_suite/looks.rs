//! Store suite cases: looks, decisions, status changes, odd input.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use verdict::domain::AnalysisId;
use verdict::store::{
    AnalysisStatus, ArmTally, LookInsert, LookRow, NewAnalysis, NewDecision, NewEvent,
    StatusChange, StoreError,
};

use super::{analysis, canary, decision, failed, key, look, settings, Ctx};

pub(crate) async fn looks_are_ordered_and_round_trip(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let (b, _) = s
        .open_analysis(&analysis("other", "abc123"))
        .await
        .expect("open");
    let mut big = look(a.id, 2, 1);
    big.canary = ArmTally {
        requests: i64::MAX as u64,
        errors: 0,
        slower: vec![1 << 40, 5],
    };
    for l in [
        look(a.id, 3, 30),
        big.clone(),
        look(a.id, 1, 10),
        look(b.id, 1, 99),
    ] {
        let d = decision(
            Some(l.analysis_id),
            "podinfo",
            "rollout",
            &format!("req-{}", l.seq),
        );
        let inserted = s.record_look(&l, &d, None).await.expect("record");
        assert!(matches!(inserted, LookInsert::Inserted(ref row) if row.look == l));
    }
    let looks = s.looks(a.id).await.expect("looks");
    let seqs: Vec<i64> = looks.iter().map(|l| l.look.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(looks[0].look, look(a.id, 1, 10));
    assert_eq!(looks[1].look, big, "counts up to i64::MAX survive");
    assert!(looks.iter().all(|l| l.created_at > 1_600_000_000_000));
    assert_eq!(s.looks(b.id).await.expect("looks").len(), 1);
    assert_eq!(s.looks(AnalysisId::new(424_242)).await.expect("looks"), []);
    // What a hook call reads: the same looks, only the last one with its counters.
    let to_judge = s.looks_to_judge(a.id).await.expect("looks to judge");
    let without_counters = |mut row: LookRow| {
        row.look.counters = None;
        row
    };
    assert_eq!(to_judge.len(), 3);
    assert_eq!(
        to_judge[..2].to_vec(),
        looks[..2]
            .iter()
            .cloned()
            .map(without_counters)
            .collect::<Vec<_>>()
    );
    assert_eq!(to_judge[2], looks[2], "the last look keeps its counters");
    assert_eq!(
        s.looks_to_judge(b.id).await.expect("looks"),
        s.looks(b.id).await.expect("looks")
    );
    assert_eq!(
        s.looks_to_judge(AnalysisId::new(424_242))
            .await
            .expect("looks"),
        []
    );
    let ds = s.decisions(a.id).await.expect("decisions");
    assert_eq!(ds.len(), 3, "each inserted look wrote its decision");
    assert!(ds.iter().all(|d| d.decision.analysis_id == Some(a.id)));
}

pub(crate) async fn a_baseline_is_recorded_once_and_never_replaced(ctx: &Ctx) {
    let s = &ctx.store;
    let opened = analysis("podinfo", "abc123");
    let (a, _) = s.open_analysis(&opened).await.expect("open");
    assert_eq!(a.baseline, opened.baseline, "the opening reading is kept");
    // An analysis opened without one (before counters were kept) gets one, once.
    let (old, _) = s
        .open_analysis(&NewAnalysis {
            baseline: None,
            ..analysis("legacy", "abc123")
        })
        .await
        .expect("open");
    assert_eq!(old.baseline, None);
    let set = s.record_baseline(old.id, "{\"at\":1}").await.expect("set");
    assert_eq!(set.and_then(|a| a.baseline).as_deref(), Some("{\"at\":1}"));
    let again = s
        .record_baseline(old.id, "{\"at\":2}")
        .await
        .expect("set again");
    assert_eq!(
        again.and_then(|a| a.baseline).as_deref(),
        Some("{\"at\":1}")
    );
    let kept = s
        .record_baseline(a.id, "{\"at\":3}")
        .await
        .expect("set on opened");
    assert_eq!(kept.and_then(|a| a.baseline), opened.baseline);
    assert!(s
        .record_baseline(AnalysisId::new(424_242), "{}")
        .await
        .expect("missing")
        .is_none());
}

pub(crate) async fn record_look_conflict_writes_nothing(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let first = s
        .record_look(
            &look(a.id, 1, 10),
            &decision(Some(a.id), "podinfo", "rollout", "r1"),
            None,
        )
        .await
        .expect("first");
    let LookInsert::Inserted(winner) = first else {
        panic!("first insert lost: {first:?}")
    };
    // The retry computed different counts and wants to fail the analysis: none of it
    // may be written.
    let retry = s
        .record_look(
            &look(a.id, 1, 55),
            &decision(Some(a.id), "podinfo", "rollout", "r2"),
            Some(&failed(1_700_000_999_000)),
        )
        .await
        .expect("retry");
    assert_eq!(retry, LookInsert::Exists(winner.clone()));
    assert_eq!(s.looks(a.id).await.expect("looks"), [winner]);
    let ds = s.decisions(a.id).await.expect("decisions");
    assert_eq!(
        ds.iter()
            .map(|d| d.decision.request_id.as_str())
            .collect::<Vec<_>>(),
        ["r1"]
    );
    let now = s.get_analysis(a.id).await.expect("get").expect("analysis");
    assert_eq!(
        (now.status, now.finished_at),
        (AnalysisStatus::Running, None)
    );
}

pub(crate) async fn record_look_concurrently_inserts_one_look(ctx: &Ctx) {
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
            let d = decision(Some(a.id), "podinfo", "rollout", &format!("req-{i}"));
            b.wait().await;
            s.record_look(&look(a.id, 1, 10 + i as u64), &d, Some(&failed(i as i64)))
                .await
        });
    }
    let results: Vec<_> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("record"))
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            LookInsert::Inserted(row) => Some(row.clone()),
            LookInsert::Exists(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one caller inserts look 1");
    let winner = &winners[0];
    for r in &results {
        if let LookInsert::Exists(row) = r {
            assert_eq!(row, winner, "losers get the winner's look");
        }
    }
    assert_eq!(s_looks(ctx, a.id).await, std::slice::from_ref(winner));
    let ds = ctx.store.decisions(a.id).await.expect("decisions");
    assert_eq!(ds.len(), 1, "only the winner's decision is written");
    let winner_index = winner.look.canary.errors - 10;
    assert_eq!(ds[0].decision.request_id, format!("req-{winner_index}"));
    let now = ctx
        .store
        .get_analysis(a.id)
        .await
        .expect("get")
        .expect("analysis");
    assert_eq!(
        now.finished_at,
        Some(winner_index as i64),
        "only the winner's status change"
    );
}

pub(crate) async fn s_looks(ctx: &Ctx, id: AnalysisId) -> Vec<LookRow> {
    ctx.store.looks(id).await.expect("looks")
}

pub(crate) async fn decisions_by_analysis_and_by_canary(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let mut refused = decision(None, "podinfo", "confirm-rollout", "r0");
    refused.verdict = "wait".into();
    refused.status_code = 412;
    refused.evidence = None;
    let id0 = s.record_decision(&refused, None).await.expect("refused");
    let id1 = s
        .record_decision(&decision(Some(a.id), "podinfo", "pre-rollout", "r1"), None)
        .await
        .expect("d1");
    let id2 = s
        .record_decision(&decision(Some(a.id), "podinfo", "rollback", "r2"), None)
        .await
        .expect("d2");
    s.record_decision(&decision(None, "other", "rollout", "x"), None)
        .await
        .expect("other");
    assert!(id0 < id1 && id1 < id2);

    let of_analysis = s.decisions(a.id).await.expect("decisions");
    assert_eq!(
        of_analysis.iter().map(|d| d.id).collect::<Vec<_>>(),
        [id1, id2]
    );
    assert_eq!(
        of_analysis[0].decision,
        decision(Some(a.id), "podinfo", "pre-rollout", "r1")
    );
    let of_canary = s
        .decisions_for(&canary("test", "podinfo"))
        .await
        .expect("decisions_for");
    assert_eq!(
        of_canary.iter().map(|d| d.id).collect::<Vec<_>>(),
        [id0, id1, id2]
    );
    assert_eq!(
        of_canary[0].decision, refused,
        "answers without an analysis are kept too"
    );
    assert_eq!(
        s.decisions_for(&canary("prod", "podinfo"))
            .await
            .expect("decisions_for"),
        []
    );
}

pub(crate) async fn status_change_is_atomic_with_its_look_or_decision(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    // A failing decision insert (status code outside HTTP's range) rolls back the look
    // and the status change that came with it.
    let mut bad = decision(Some(a.id), "podinfo", "rollout", "bad");
    bad.status_code = 0;
    let err = s
        .record_look(&look(a.id, 1, 10), &bad, Some(&failed(5)))
        .await;
    assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
    assert_eq!(s_looks(ctx, a.id).await, []);
    assert_eq!(s.decisions(a.id).await.expect("decisions"), []);
    assert_eq!(s.get_analysis(a.id).await.expect("get"), Some(a.clone()));

    // A status change without an analysis, or for a missing one, writes nothing.
    let err = s
        .record_decision(
            &decision(None, "podinfo", "rollback", "x"),
            Some(&failed(5)),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
    let err = s
        .record_decision(
            &decision(
                Some(AnalysisId::new(a.id.get() + 1000)),
                "podinfo",
                "rollback",
                "y",
            ),
            Some(&failed(5)),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
    assert_eq!(
        s.decisions_for(&canary("test", "podinfo"))
            .await
            .expect("decisions_for"),
        []
    );

    // Success: look, decision and status land together.
    let mut fail = look(a.id, 1, 10);
    fail.verdict = "fail".into();
    s.record_look(
        &fail,
        &decision(Some(a.id), "podinfo", "rollout", "r1"),
        Some(&failed(77)),
    )
    .await
    .expect("record");
    let now = s.get_analysis(a.id).await.expect("get").expect("analysis");
    assert_eq!(now.status, AnalysisStatus::Failed);
    assert_eq!(
        (now.status_reason.as_deref(), now.finished_at),
        (Some("error rate 3x primary"), Some(77))
    );

    let done = StatusChange {
        status: AnalysisStatus::Succeeded,
        reason: "promoted".into(),
        at: 88,
    };
    s.record_decision(
        &decision(Some(a.id), "podinfo", "post-rollout", "r2"),
        Some(&done),
    )
    .await
    .expect("post");
    let back = StatusChange {
        status: AnalysisStatus::Running,
        reason: "resumed".into(),
        at: 99,
    };
    s.record_decision(
        &decision(Some(a.id), "podinfo", "rollout", "r3"),
        Some(&back),
    )
    .await
    .expect("resume");
    let now = s.get_analysis(a.id).await.expect("get").expect("analysis");
    assert_eq!(
        (now.status, now.finished_at),
        (AnalysisStatus::Running, None)
    );
    assert_eq!(s.decisions(a.id).await.expect("decisions").len(), 3);
}

pub(crate) async fn odd_strings_round_trip_unchanged(ctx: &Ctx) {
    let s = &ctx.store;
    let odd = [
        "it's \"quoted\"; DROP TABLE analysis; --",
        "Robert'); DELETE FROM decision; --",
        "金丝雀 🚦 überprüft — ok",
        "back\\slash\nnew line\ttab",
        "$1 ?1 :name @p %_ *",
    ];
    // Names are Kubernetes names by type; every free-text column takes the odd strings.
    let mut odd_settings = settings("podinfo");
    odd_settings
        .canary
        .variables
        .insert("note".into(), odd[0].into());
    let (a, _) = s
        .open_analysis(&NewAnalysis {
            settings: odd_settings,
            ..analysis("podinfo", "abc123")
        })
        .await
        .expect("open");
    for (i, text) in odd.iter().enumerate() {
        let name = format!("odd-{i}");
        let mut l = look(a.id, i as i64 + 1, 1);
        (l.reason, l.evidence) = (text.to_string(), format!("{{\"note\":{text:?}}}"));
        let d = NewDecision {
            hook: text.to_string(),
            reason: text.to_string(),
            evidence: Some(text.to_string()),
            request_id: text.to_string(),
            ..decision(Some(a.id), &name, "rollout", "r")
        };
        s.record_look(&l, &d, None).await.expect("record");
        let got = s
            .decisions_for(&canary("test", &name))
            .await
            .expect("decisions_for");
        assert_eq!(
            got.iter().map(|r| &r.decision).collect::<Vec<_>>(),
            [&d],
            "{text:?}"
        );
        let e = NewEvent {
            key: key(&name, "abc123"),
            phase: text.to_string(),
            event_type: text.to_string(),
            message: text.to_string(),
            event_time: None,
            metadata: text.to_string(),
            received_at: 1,
        };
        s.record_event(&e).await.expect("event");
        let got = s.events(&canary("test", &name)).await.expect("events");
        assert_eq!(
            got.iter().map(|r| &r.event).collect::<Vec<_>>(),
            [&e],
            "{text:?}"
        );
    }
    let looks = s_looks(ctx, a.id).await;
    let reasons: Vec<&str> = looks.iter().map(|l| l.look.reason.as_str()).collect();
    assert_eq!(reasons, odd);
    let again = s.get_analysis(a.id).await.expect("get").expect("analysis");
    let note = again
        .settings
        .as_ref()
        .ok()
        .and_then(|s| s.canary.variables.get("note").cloned());
    assert_eq!(
        note.as_deref(),
        Some(odd[0]),
        "and every table is still there"
    );
}

pub(crate) async fn out_of_range_input_is_refused_without_writing(ctx: &Ctx) {
    let s = &ctx.store;
    let (a, _) = s
        .open_analysis(&analysis("podinfo", "abc123"))
        .await
        .expect("open");
    let mut huge = look(a.id, 1, 1);
    huge.primary.requests = u64::MAX;
    let d = decision(Some(a.id), "podinfo", "rollout", "r");
    let err = s.record_look(&huge, &d, None).await;
    assert!(
        matches!(err, Err(StoreError::Query(ref m)) if m.contains("primary requests")),
        "{err:?}"
    );
    let other_analysis = decision(
        Some(AnalysisId::new(a.id.get() + 1)),
        "podinfo",
        "rollout",
        "r",
    );
    let err = s
        .record_look(&look(a.id, 1, 1), &other_analysis, None)
        .await;
    assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
    let err = s
        .record_look(
            &look(AnalysisId::new(a.id.get() + 1000), 1, 1),
            &decision(None, "podinfo", "rollout", "r"),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Query(_))),
        "a look needs its analysis: {err:?}"
    );
    let mut bad_seq = look(a.id, 0, 1);
    bad_seq.verdict = "maybe".into();
    let err = s.record_look(&bad_seq, &d, None).await;
    assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
    assert_eq!(s_looks(ctx, a.id).await, []);
    assert_eq!(
        s.decisions_for(&canary("test", "podinfo"))
            .await
            .expect("decisions_for"),
        []
    );
}
