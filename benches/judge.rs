//! One look's cost in the judge: `observe` (the e-process update) and `assess`
//! (confidence sequences, bounds and the reason), at the reference workload's sizes.

// criterion's macros generate public functions without documentation.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use verdict::judge::{ArmLook, Judge, JudgeConfig, Look};

fn reference_look(i: u64) -> Look {
    // 50 requests/s over 60 s at 50 % weight, 0.5 % errors, ~5 % slow; small variation
    // so that no two looks are identical.
    Look {
        canary: ArmLook {
            requests: 1500 + i % 7,
            errors: 7 + i % 3,
            slow: 75 + i % 5,
            slo_slow: 0,
        },
        primary: ArmLook {
            requests: 1500 - i % 5,
            errors: 8 - i % 3,
            slow: 76 - i % 4,
            slo_slow: 0,
        },
    }
}

fn judge_after(looks: u64) -> Judge {
    let mut judge = match Judge::new(JudgeConfig::recommended()) {
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
    c.bench_function("judge assess after 20 looks", |b| {
        b.iter(|| black_box(&warm).assess())
    });
    c.bench_function("judge replay 30 looks and assess", |b| {
        b.iter(|| judge_after(black_box(30)).assess())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
