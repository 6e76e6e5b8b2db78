//! Throughput of `verdict evaluate`: simulated analyses per second, one thread.
//!
//! Each analysis simulates the reference workload for 30 looks (or until every judge
//! has decided) and runs verdict's judge and the four comparison judges on it.

// criterion's macros generate public functions without documentation.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use verdict::evaluate::{evaluate_scenario, scenarios, Setup};
use verdict::judge::JudgeConfig;

const RUNS: usize = 50;

fn analyses(c: &mut Criterion) {
    let setup = Setup::reference(JudgeConfig::recommended());
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(RUNS as u64));
    group.sample_size(20);
    for id in ["aa-steady", "err-2x-0.5%", "lat-x1.2"] {
        let Some(scenario) = scenarios::all().into_iter().find(|s| s.id == id) else {
            panic!("scenario {id} is gone; update the benchmark");
        };
        group.bench_with_input(BenchmarkId::new("analyses", id), &scenario, |b, s| {
            b.iter(|| evaluate_scenario(s, &setup, RUNS, 1, 1).unwrap_or_else(|e| panic!("{e}")))
        });
    }
    group.finish();
}

criterion_group!(benches, analyses);
criterion_main!(benches);
