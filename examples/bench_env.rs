//! The environment of the webhook benchmark (`scripts/bench-webhook.sh`): the tests'
//! Istio-style exporter serving N canaries and their primaries, and a real Prometheus
//! scraping it. Prints `PROMETHEUS_URL=…` once Prometheus has data, then runs until stdin
//! closes or it is killed.

#[path = "../tests/support/exporter.rs"]
#[allow(dead_code)]
mod exporter;
#[path = "../tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use std::io::Read;

use exporter::{Profile, TestExporter};
use prometheus::TestPrometheus;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let canaries: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let exporter = TestExporter::start().await;
    for i in 0..canaries {
        let name = format!("c{i}");
        exporter.set_profile("bench", &name, Profile::fixed(5.0, 0.005, 40.0));
        exporter.set_profile(
            "bench",
            &format!("{name}-primary"),
            Profile::fixed(20.0, 0.005, 40.0),
        );
    }
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    // Let a few scrapes land: the primaries' history and every analysis' baseline read them.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    println!("PROMETHEUS_URL={}", prometheus.url());
    // Block until the script closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    drop(prometheus);
    exporter.stop().await;
    Ok(())
}
