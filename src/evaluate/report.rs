//! The evaluation table and the targets, as plain text or Markdown.

use std::fmt::Write;
use std::time::Duration;

use super::{ScenarioResult, Setup, Tally, METHODS};

/// What the run was, for the header.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub setup: &'a Setup,
    pub runs: usize,
    pub seed: u64,
    pub threads: usize,
    pub elapsed: Duration,
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn looks(median: Option<f64>) -> String {
    match median {
        None => "–".into(),
        Some(m) if m.fract() == 0.0 => format!("{m:.0}"),
        Some(m) => format!("{m:.1}"),
    }
}

fn rollback_cell(t: &Tally) -> String {
    format!(
        "{} ({})",
        percent(t.rollback_rate()),
        looks(t.median_rollback_look())
    )
}

fn promote_cell(t: &Tally) -> String {
    format!(
        "{} ({})",
        percent(t.promotion_rate()),
        looks(t.median_promotion_look())
    )
}

fn rows(results: &[ScenarioResult]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["scenario".to_owned()];
    for m in METHODS {
        header.push(format!("{m}: rollback"));
        header.push(format!("{m}: promote"));
    }
    let body = results
        .iter()
        .map(|r| {
            let kind = if r.scenario.is_regression() {
                ""
            } else {
                " †"
            };
            let mut row = vec![format!("{}{kind}", r.scenario.label)];
            for t in &r.tallies {
                row.push(rollback_cell(t));
                row.push(promote_cell(t));
            }
            row
        })
        .collect();
    (header, body)
}

fn write_table(out: &mut String, header: &[String], body: &[Vec<String>], markdown: bool) {
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let rule: Vec<&str> = header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in body {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        return;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(header));
    for row in body {
        let _ = writeln!(out, "{}", line(row));
    }
}

fn find<'a>(results: &'a [ScenarioResult], id: &str) -> Option<&'a ScenarioResult> {
    results.iter().find(|r| r.scenario.id == id)
}

fn verdict(r: &ScenarioResult) -> &Tally {
    &r.tallies[0]
}

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn line(met: bool, text: String) -> String {
    format!("{}: {text}", mark(met))
}

fn look_text(m: Option<f64>) -> String {
    looks(m)
}

/// One line per judge target whose scenarios were run (docs/statistics.md §8): the same
/// targets `verdict evaluate --json` is checked against.
fn targets(results: &[ScenarioResult], setup: &Setup) -> Vec<String> {
    let mut lines = Vec::new();
    let alpha = setup.judge.alpha;
    // The old `increase()` path is shown for comparison and has no target (issue 10).
    let old_path = |r: &ScenarioResult| {
        r.scenario
            .scrape
            .is_some_and(|s| s.path == super::scrape::CountPath::Increase)
    };
    for r in results.iter().filter(|r| {
        (r.scenario.id.starts_with("aa-") || r.scenario.id == "slo-at-limit-noise-0.5")
            && !old_path(r)
    }) {
        let rate = verdict(r).rollback_rate();
        lines.push(line(
            rate <= alpha,
            format!(
                "{}: rollback ≤ {} (α): {}",
                r.scenario.label,
                percent(alpha),
                percent(rate)
            ),
        ));
    }
    if let Some(r) = find(results, "aa-steady") {
        let t = verdict(r);
        let median = t.median_promotion_look();
        lines.push(line(
            t.promotion_rate() >= 0.95 && median.is_some_and(|m| m <= 12.0),
            format!(
                "A/A steady promoted ≥ 95% by median look ≤ 12: {} at look {}",
                percent(t.promotion_rate()),
                look_text(median)
            ),
        ));
    }
    for id in ["aa-bursty", "aa-noise-0.5"] {
        if let Some(r) = find(results, id) {
            let rate = verdict(r).promotion_rate();
            lines.push(line(
                rate >= 0.85,
                format!(
                    "{} promoted ≥ 85% within {} looks: {}",
                    r.scenario.label,
                    setup.looks,
                    percent(rate)
                ),
            ));
        }
    }
    if let Some(r) = find(results, "err-2x-0.5%") {
        let (ours, kayenta) = (verdict(r), &r.tallies[2]);
        let (a, b) = (ours.median_rollback_look(), kayenta.median_rollback_look());
        lines.push(line(
            ours.rollback_rate() >= 0.95 && a.unwrap_or(99.0) <= b.unwrap_or(99.0),
            format!(
                "errors ×2 at 0.5% rolled back ≥ 95%, median look ≤ Kayenta-style's: {} at look {} (Kayenta {})",
                percent(ours.rollback_rate()),
                look_text(a),
                look_text(b)
            ),
        ));
    }
    for scraped_id in ["err-2x-0.5%-scrape-30s", "err-2x-0.5%-scrape-15s"] {
        let (Some(exact), Some(scraped)) =
            (find(results, "err-2x-0.5%"), find(results, scraped_id))
        else {
            continue;
        };
        let (a, b) = (verdict(exact), verdict(scraped));
        let (look, scraped_look) = (a.median_rollback_look(), b.median_rollback_look());
        lines.push(line(
            b.rollback_rate() >= 0.95
                && scraped_look.unwrap_or(99.0) <= look.unwrap_or(0.0) + 2.0,
            format!(
                "{} rolled back ≥ 95%, median look ≤ exact counts' + 2: {} at look {} (exact {} at look {})",
                scraped.scenario.label,
                percent(b.rollback_rate()),
                look_text(scraped_look),
                percent(a.rollback_rate()),
                look_text(look)
            ),
        ));
    }
    for r in results.iter().filter(|r| old_path(r)) {
        lines.push(format!(
            "no target (the old data path, shown for comparison): {}: rollback {}",
            r.scenario.label,
            percent(verdict(r).rollback_rate())
        ));
    }
    if let Some(r) = find(results, "err-1.5x-1%") {
        let rate = verdict(r).promotion_rate();
        lines.push(line(
            rate <= 0.03,
            format!("errors ×1.5 at 1% promoted ≤ 3%: {}", percent(rate)),
        ));
    }
    for id in [
        "lat-x1.2",
        "lat-p95-1.2x-below-b",
        "lat-median-1.3x",
        "tail-5%-x4",
    ] {
        if let Some(r) = find(results, id) {
            let rate = verdict(r).rollback_rate();
            lines.push(line(
                rate >= 0.9,
                format!("{} rolled back ≥ 90%: {}", r.scenario.label, percent(rate)),
            ));
        }
    }
    if let Some(r) = find(results, "no-traffic") {
        let t = verdict(r);
        let median = t.median_rollback_look();
        lines.push(line(
            t.rollback_rate() >= 0.99 && median.is_some_and(|m| m <= 4.0),
            format!(
                "no traffic rolled back ≥ 99% by median look ≤ 4: {} at look {}",
                percent(t.rollback_rate()),
                look_text(median)
            ),
        ));
    }
    // Speed against the fair oracle: median looks to the correct decision ≤ 2×.
    let mut slow: Vec<String> = Vec::new();
    let mut compared = 0;
    for r in results.iter().filter(|r| !old_path(r)) {
        let (ours, oracle) = if r.scenario.is_regression() {
            (
                verdict(r).median_rollback_look(),
                r.tallies[4].median_rollback_look(),
            )
        } else {
            (
                verdict(r).median_promotion_look(),
                r.tallies[4].median_promotion_look(),
            )
        };
        if let (Some(ours), Some(oracle)) = (ours, oracle) {
            compared += 1;
            if ours > 2.0 * oracle {
                slow.push(format!(
                    "{} {} vs {}",
                    r.scenario.label,
                    look_text(Some(ours)),
                    look_text(Some(oracle))
                ));
            }
        }
    }
    if compared > 0 {
        lines.push(line(
            slow.is_empty(),
            format!(
                "median looks to a correct decision ≤ 2× the fair oracle's ({compared} scenarios where both decide){}",
                if slow.is_empty() {
                    String::new()
                } else {
                    format!("; slower: {}", slow.join(", "))
                }
            ),
        ));
    }
    lines
}

fn weights_text(setup: &Setup) -> String {
    let mut steps: Vec<String> = Vec::new();
    for look in 0..setup.looks {
        let w = format!("{:.0}", setup.weights.weight(look) * 100.0);
        if steps.last() != Some(&w) {
            steps.push(w);
        }
    }
    steps.join("/")
}

/// One row of `--json`.
#[derive(Debug, serde::Serialize)]
struct JsonRow<'a> {
    scenario: &'a str,
    judge: &'static str,
    rollback: f64,
    promote: f64,
    rollback_median_look: Option<f64>,
    promote_median_look: Option<f64>,
}

/// The whole run as one JSON document (`verdict evaluate --json`).
pub(crate) fn json(ctx: &Context<'_>, results: &[ScenarioResult]) -> anyhow::Result<String> {
    let rows: Vec<JsonRow<'_>> = results
        .iter()
        .flat_map(|r| {
            r.tallies
                .iter()
                .zip(super::JSON_NAMES)
                .map(|(t, judge)| JsonRow {
                    scenario: &r.scenario.id,
                    judge,
                    rollback: t.rollback_rate(),
                    promote: t.promotion_rate(),
                    rollback_median_look: t.median_rollback_look(),
                    promote_median_look: t.median_promotion_look(),
                })
        })
        .collect();
    let doc = serde_json::json!({ "runs": ctx.runs, "seed": ctx.seed, "rows": rows });
    Ok(format!("{}\n", serde_json::to_string(&doc)?))
}

/// Writes the header, the table, the legend and the targets.
pub(crate) fn write(
    out: &mut String,
    ctx: &Context<'_>,
    results: &[ScenarioResult],
    markdown: bool,
) -> std::fmt::Result {
    let s = ctx.setup;
    let j = &s.judge;
    writeln!(
        out,
        "{} simulated canaries per scenario (seed {}), {} looks of {:.0} s, canary weight {} % then held; \
         reference workload 50 req/s, 0.5% errors, latency log-normal median 50 ms σ 0.6, Prometheus default buckets.",
        ctx.runs,
        ctx.seed,
        s.looks,
        s.interval_s,
        weights_text(s),
    )?;
    writeln!(
        out,
        "verdict judge: α {}, error margin {}, latency margin {}, promotion margin {}, min canary requests {}, \
         negligible error rate {}, dispersion {}, budget {} looks; plan (latency boundaries, dispersion) from {} intervals \
         of the primary's history.",
        j.alpha,
        j.error_margin,
        j.latency_margin,
        j.promotion_margin,
        j.min_canary_requests,
        j.negligible_error_rate,
        j.dispersion,
        j.budget.max_looks,
        s.history_intervals,
    )?;
    writeln!(out)?;
    let (header, body) = rows(results);
    write_table(out, &header, &body, markdown);
    writeln!(out)?;
    let se = (j.alpha * (1.0 - j.alpha) / ctx.runs as f64).sqrt();
    for line in [
        "Cells: share of canaries (median look of those decisions). † = A/A: every rollback is false.".to_owned(),
        "verdict: rollback at the first Fail, promotion at the first Pass, otherwise undecided.".to_owned(),
        format!(
            "Flagger thresholds: per interval on the canary alone, success rate ≥ 99 % and p95 (histogram_quantile) ≤ {:.0} ms \
             (Flagger docs' request-duration limit, applied to p95); rollback at {} failed checks.",
            super::FLAGGER_MAX_P95_S * 1000.0,
            super::FLAGGER_THRESHOLD
        ),
        "Kayenta MWU: Mann-Whitney CI (98 % two-sided) on per-interval error rate and p95, canary vs primary, \
         all points so far at every look, fail fast when the CI's lower end exceeds 25 % of the primary's mean."
            .to_owned(),
        format!(
            "z-test: one-sided two-proportion test on cumulative errors (at α/2 = {}) and on requests above each of verdict's \
             latency boundaries (α/2 shared), every look.",
            j.alpha / 2.0
        ),
        "oracle SPRT (fair): Wald's SPRT (β 0.05) knowing the true ratios, of verdict's own nulls at verdict's levels: on a \
         regression ratio 1 + margin against the truth on the most informative regressed metric (α per fail test); otherwise \
         ratio 1 + promotion margin against the truth on every metric promotion needs (α)."
            .to_owned(),
        "Baselines that only fail (Flagger, Kayenta, z-test) promote at the last look if they never failed.".to_owned(),
        format!(
            "Monte-Carlo standard error of a rate p: √(p(1−p)/{}); at p = α that is {}.",
            ctx.runs,
            percent(se)
        ),
        format!(
            "Wall clock: {:.1} s on {} thread(s).",
            ctx.elapsed.as_secs_f64(),
            ctx.threads
        ),
    ] {
        writeln!(out, "{}{line}", if markdown { "- " } else { "" })?;
    }
    let target_lines = targets(results, s);
    if !target_lines.is_empty() {
        writeln!(out)?;
        writeln!(out, "Targets (verdict at the settings above):")?;
        for line in target_lines {
            writeln!(out, "- {line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::scenarios;
    use crate::judge::JudgeConfig;

    fn tally(rollbacks: &[u32], promotions: &[u32], undecided: usize) -> Tally {
        Tally {
            rollbacks: rollbacks.to_vec(),
            promotions: promotions.to_vec(),
            undecided,
        }
    }

    #[test]
    fn table_and_targets_report_the_tallies() {
        let setup = Setup::reference(JudgeConfig::recommended());
        let all = scenarios::all();
        let aa = all.iter().find(|s| s.id == "aa-steady").cloned();
        let err = all.iter().find(|s| s.id == "err-2x-0.5%").cloned();
        let (Some(aa), Some(err)) = (aa, err) else {
            panic!("reference scenarios missing");
        };
        let results = vec![
            ScenarioResult {
                scenario: aa,
                tallies: [
                    tally(&[3], &[10; 99], 0),
                    tally(&[], &[30; 100], 0),
                    tally(&[5, 6], &[30; 98], 0),
                    tally(&[], &[30; 100], 0),
                    tally(&[], &[9; 100], 0),
                ],
            },
            ScenarioResult {
                scenario: err,
                tallies: [
                    tally(&[4; 90], &[], 10),
                    tally(&[9; 10], &[30; 90], 0),
                    tally(&[10; 50], &[30; 50], 0),
                    tally(&[3; 100], &[], 0),
                    tally(&[2; 100], &[], 0),
                ],
            },
        ];
        let ctx = Context {
            setup: &setup,
            runs: 100,
            seed: 1,
            threads: 1,
            elapsed: Duration::from_secs(1),
        };
        let mut out = String::new();
        assert!(write(&mut out, &ctx, &results, true).is_ok());
        assert!(
            out.contains("| A/A steady † | 1.0% (3) | 99.0% (10) |"),
            "{out}"
        );
        assert!(
            out.contains("met: A/A steady: rollback ≤ 1.0% (α): 1.0%"),
            "{out}"
        );
        assert!(
            out.contains("met: A/A steady promoted ≥ 95% by median look ≤ 12: 99.0% at look 10"),
            "{out}"
        );
        assert!(
            out.contains("MISSED: errors ×2 at 0.5% rolled back ≥ 95%, median look ≤ Kayenta-style's: 90.0% at look 4 (Kayenta 10)"),
            "{out}"
        );
        // A/A: 10 vs the oracle's 9; errors ×2: 4 vs 2 — both within 2×.
        assert!(
            out.contains(
                "met: median looks to a correct decision ≤ 2× the fair oracle's (2 scenarios"
            ),
            "{out}"
        );
        assert!(out.contains("5/10/20/30/50 %"), "{out}");
        let doc: serde_json::Value = json(&ctx, &results)
            .ok()
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        assert_eq!(doc["runs"], 100);
        assert_eq!(doc["rows"].as_array().map(Vec::len), Some(10));
        let row = &doc["rows"][1];
        assert_eq!(row["scenario"], "aa-steady");
        assert_eq!(row["judge"], "flagger");
        assert_eq!(row["promote"], 1.0);
        assert_eq!(row["rollback_median_look"], serde_json::Value::Null);
        assert_eq!(doc["rows"][9]["judge"], "oracle");
    }
}
