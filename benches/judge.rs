//! One look's cost in the judge: `observe` (every e-process update) and `assess`
//! (confidence sequences, percentiles, bounds and the reason), at the reference
//! workload's sizes with the reference plan (three latency boundaries).

// criterion's macros generate public functions without documentation.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use verdict::judge::{ArmLook, Judge, JudgeConfig, Look, Plan};

/// The reference workload's default buckets; boundaries at 50 ms and 100 ms (promotion)
/// and 250 ms (tail), as the plan picks them for the reference latency.
fn plan() -> Plan {
    let edges = vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    Plan::fixed(edges, &[(3, true), (4, true), (5, false)], 0.1)
}

fn arm(requests: u64, errors: u64, i: u64) -> ArmLook {
    // 50 requests/s over 60 s at 50 % weight, 0.5 % errors, the reference latency; small
    // variation so that no two looks are identical.
    let share = [
        1.0, 1.0, 0.868, 0.5, 0.124, 0.0037, 0.0001, 0.0, 0.0, 0.0, 0.0,
    ];
    ArmLook {
        requests,
        errors,
        slower: share
            .iter()
            .map(|s| (s * requests as f64).round() as u64 + i % 3)
            .map(|s| s.min(requests))
            .collect(),
    }
}

fn reference_look(i: u64) -> Look {
    Look {
        canary: arm(1500 + i % 7, 7 + i % 3, i),
        primary: arm(1500 - i % 5, 8 - i % 3, i + 1),
        elapsed_ms: (i + 1) * 60_000,
    }
}

fn judge_after(looks: u64) -> Judge {
    let mut judge = match Judge::new(JudgeConfig::recommended(), plan()) {
        Ok(j) => j,
        Err(e) => panic!("recommended config refused: {e}"),
    };
    for i in 0..looks {
        judge.observe(&reference_look(i));
    }
    judge
}

fn bench(c: &mut Criterion) {
    let warm = judge_after(20);
    c.bench_function("judge observe one look", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |j| j.observe(black_box(&reference_look(21))),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("judge observe and verdict one look", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |j| {
                j.observe(black_box(&reference_look(21)));
                j.verdict()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("judge assess after 20 looks", |b| {
        b.iter(|| black_box(&warm).assess())
    });
    c.bench_function("judge replay 30 looks and assess", |b| {
        b.iter(|| judge_after(black_box(30)).assess())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
