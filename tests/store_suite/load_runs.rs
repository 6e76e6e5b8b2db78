//! Load runs: started, finished, listed per canary.

use super::{canary, Ctx};
use verdict::store::{LoadRunOutcome, NewLoadRun};

fn run(run_id: &str, name: &str) -> NewLoadRun {
    NewLoadRun {
        run_id: run_id.to_owned(),
        canary: canary("test", name),
        spec_checksum: "abc123".to_owned(),
        spec: r#"{"url":"http://podinfo-canary.test:9898/","rate":10}"#.to_owned(),
        started_at: 1_700_000_000_000,
    }
}

pub async fn load_runs_start_finish_and_list(ctx: &Ctx) {
    let store = &ctx.store;
    let first = store
        .start_load_run(&run("r-1", "podinfo"))
        .await
        .expect("start");
    let second = store
        .start_load_run(&run("r-2", "podinfo"))
        .await
        .expect("start");
    store
        .start_load_run(&run("r-3", "other"))
        .await
        .expect("start");
    assert!(second > first);
    // The same run id twice is refused: one row per run.
    assert!(store.start_load_run(&run("r-1", "podinfo")).await.is_err());

    let outcome = LoadRunOutcome {
        status: "completed".to_owned(),
        ended_at: 1_700_000_060_000,
        requests: 600,
        status_counts: r#"{"200":590,"500":10}"#.to_owned(),
        latency: r#"{"p50_ms":12.0,"p99_ms":40.0}"#.to_owned(),
        errors: "{}".to_owned(),
    };
    store
        .finish_load_run("r-1", &outcome)
        .await
        .expect("finish");
    assert!(
        store
            .finish_load_run("never-started", &outcome)
            .await
            .is_err(),
        "finishing an unknown run must be an error, not a silent no-op"
    );

    let runs = store
        .load_runs(&canary("test", "podinfo"))
        .await
        .expect("list");
    assert_eq!(runs.len(), 2, "only this canary's runs");
    assert_eq!(runs[0].run, run("r-1", "podinfo"));
    assert_eq!(runs[0].outcome.as_ref(), Some(&outcome));
    assert_eq!(runs[1].run.run_id, "r-2");
    assert!(
        runs[1].outcome.is_none(),
        "a running run has no outcome yet"
    );
}
