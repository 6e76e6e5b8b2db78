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

/// One line per issue-3 target whose scenarios were run.
fn targets(results: &[ScenarioResult], setup: &Setup) -> Vec<String> {
    let alpha = setup.judge.alpha;
    let mut lines = Vec::new();
    for (id, limit, what) in [
        ("aa-steady", alpha, "α"),
        ("aa-diurnal", alpha, "α"),
        ("aa-noise-0.25", 2.0 * alpha, "2α"),
    ] {
        if let Some(r) = find(results, id) {
            let rate = verdict(r).rollback_rate();
            lines.push(format!(
                "{}: A/A false rollback on {} ≤ {what} ({}): {}",
                mark(rate <= limit),
                r.scenario.label,
                percent(limit),
                percent(rate)
            ));
        }
    }
    for (id, floor) in [
        ("err-2x-0.5%", 0.95),
        ("lat-x1.2", 0.90),
        ("tail-5%-x4", 0.90),
    ] {
        if let Some(r) = find(results, id) {
            let rate = verdict(r).rollback_rate();
            lines.push(format!(
                "{}: {} detected ≥ {}: {}",
                mark(rate >= floor),
                r.scenario.label,
                percent(floor),
                percent(rate)
            ));
        }
    }
    for r in results.iter().filter(|r| !r.scenario.is_regression()) {
        let rate = verdict(r).promotion_rate();
        lines.push(format!(
            "{}: {} promoted within {} looks ≥ 90%: {}",
            mark(rate >= 0.9),
            r.scenario.label,
            setup.looks,
            percent(rate)
        ));
    }
    let regressions: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| r.scenario.is_regression())
        .collect();
    // Medians of a handful of detections say nothing, so the speed comparison only
    // uses regressions that both judges detect in at least half of the runs.
    let both_detect = |r: &ScenarioResult| {
        verdict(r).rollback_rate() >= 0.5 && r.tallies[2].rollback_rate() >= 0.5
    };
    let compared: Vec<(String, f64, f64)> = regressions
        .iter()
        .filter(|r| both_detect(r))
        .filter_map(|r| {
            let ours = verdict(r).median_rollback_look()?;
            let theirs = r.tallies[2].median_rollback_look()?;
            Some((r.scenario.label.clone(), ours, theirs))
        })
        .collect();
    if !regressions.is_empty() {
        let pairs: Vec<String> = compared
            .iter()
            .map(|(label, ours, theirs)| {
                let flag = if *ours > theirs / 2.0 { " ✗" } else { "" };
                format!(
                    "{label} {} vs {}{flag}",
                    looks(Some(*ours)),
                    looks(Some(*theirs))
                )
            })
            .collect();
        let fast = compared
            .iter()
            .all(|(_, ours, theirs)| *ours <= theirs / 2.0);
        let only_ours: Vec<&str> = regressions
            .iter()
            .filter(|r| verdict(r).rollback_rate() >= 0.5 && r.tallies[2].rollback_rate() < 0.5)
            .map(|r| r.scenario.label.as_str())
            .collect();
        let aa = find(results, "aa-steady");
        let fr_ok = aa.is_none_or(|r| r.tallies[0].rollback_rate() <= r.tallies[2].rollback_rate());
        let fr_text: Vec<String> = results
            .iter()
            .filter(|r| !r.scenario.is_regression())
            .map(|r| {
                format!(
                    "{} {} vs {}",
                    r.scenario.label,
                    percent(r.tallies[0].rollback_rate()),
                    percent(r.tallies[2].rollback_rate())
                )
            })
            .collect();
        lines.push(format!(
            "{}: median looks to detection ≤ ½ the Kayenta-style judge's at equal or lower false rollback \
             (verdict vs Kayenta, regressions both detect in ≥ 50% of runs; ✗ = not within half): {}; \
             detected ≥ 50% by verdict only: {}; false rollback (A/A steady decides): {}",
            mark(fast && fr_ok && !compared.is_empty()),
            if pairs.is_empty() { "none".to_owned() } else { pairs.join(", ") },
            if only_ours.is_empty() { "none".to_owned() } else { only_ours.join(", ") },
            fr_text.join(", ")
        ));
    }
    let missed: Vec<String> = regressions
        .iter()
        .filter(|r| r.tallies[1].rollback_rate() < 0.5)
        .map(|r| {
            format!(
                "{} {}",
                r.scenario.label,
                percent(r.tallies[1].rollback_rate())
            )
        })
        .collect();
    if !regressions.is_empty() {
        lines.push(format!(
            "{}: Flagger-style thresholds miss regressions below their limits (detected < 50%): {}",
            mark(!missed.is_empty()),
            if missed.is_empty() {
                "none".to_owned()
            } else {
                missed.join(", ")
            }
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
        "verdict judge: α {}, error margin {}, latency margin {}, promotion margin {}, min canary requests {}, dispersion τ {}; \
         b* = bucket boundary at/above the primary's p{:.0} over a {:.0} min look-back.",
        j.alpha,
        j.error_margin,
        j.latency_margin,
        j.promotion_margin,
        j.min_canary_requests,
        j.dispersion,
        s.boundary_quantile * 100.0,
        s.lookback_s / 60.0,
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
            "z-test: one-sided two-proportion test on cumulative errors and requests above b*, each at α/2 = {}, every look.",
            j.alpha / 2.0
        ),
        "oracle SPRT: Wald's SPRT (β 0.05) of ratio 1 against the true ratio on the regressed metric(s); \
         on A/A against 2× on both metrics at α/2."
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
        writeln!(out, "Targets (issue 3, verdict at the settings above):")?;
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
            out.contains("met: A/A false rollback on A/A steady ≤ α (1.0%): 1.0%"),
            "{out}"
        );
        assert!(
            out.contains("MISSED: errors ×2 at 0.5% detected ≥ 95.0%: 90.0%"),
            "{out}"
        );
        assert!(out.contains("met: median looks to detection"), "{out}");
        assert!(out.contains("met: Flagger-style thresholds miss"), "{out}");
        assert!(out.contains("5/10/20/30/50 %"), "{out}");
    }
}
