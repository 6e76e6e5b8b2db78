//! From evidence to a verdict and its one-sentence reason (docs/statistics.md §6–§7).
//!
//! The order is fixed: an established regression (any fail test), then a canary that gets
//! no traffic, then promotion (every promotion test passed and enough canary requests),
//! then an exhausted budget, otherwise wait. Reasons name what people watch — error rates,
//! p50/p95/p99 of both arms — beside the tests' own quantities, which the evidence keeps.

use super::config::OnInconclusive;
use super::evidence::{BoundaryEvidence, Evidence, Percentiles, RateEvidence, RatioEvidence};
use super::format::{
    confidence, count, limit, millis, num, p_value, pct, ratio, seconds, signed_pct,
};
use super::{Judge, Verdict};

/// The flags the verdict rests on, from the judge's processes (cheap: no intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags {
    failed: bool,
    no_traffic: bool,
    promotion_ready: bool,
    exhausted: bool,
    on_inconclusive: OnInconclusive,
}

fn verdict_of(f: Flags) -> Verdict {
    if f.failed || f.no_traffic {
        Verdict::Fail
    } else if f.promotion_ready {
        Verdict::Pass
    } else if f.exhausted && f.on_inconclusive == OnInconclusive::Rollback {
        Verdict::Fail
    } else {
        Verdict::Wait
    }
}

fn flags_of(e: &Evidence) -> Flags {
    Flags {
        failed: e.error.crossed
            || e.latency_family.crossed
            || e.slo_error.as_ref().is_some_and(|s| s.crossed)
            || e.slo_latency.as_ref().is_some_and(|s| s.crossed),
        no_traffic: e.budget.no_traffic_looks >= e.budget.no_traffic_limit,
        promotion_ready: e.promotion_ready,
        exhausted: e.budget.exhausted,
        on_inconclusive: e.budget.on_inconclusive,
    }
}

/// The verdict straight from the judge's processes, the same as [`decide`] gives.
pub(super) fn verdict_only(j: &Judge) -> Verdict {
    let cfg = &j.config;
    let (fail_alpha, pass_alpha) = (cfg.alpha_per_test(), cfg.alpha);
    let failed = j.error.fail().crossed(fail_alpha)
        || j.latency_family.crossed(fail_alpha)
        || [&j.slo_error, &j.slo_latency]
            .into_iter()
            .flatten()
            .any(|s| s.log_e().crossed(fail_alpha));
    let promotion_passed = j.error_promotion.crossed(pass_alpha)
        && j.latency
            .iter()
            .zip(&j.plan.boundaries)
            .all(|(p, b)| !b.promotion || p.promotion().crossed(pass_alpha));
    verdict_of(Flags {
        failed,
        no_traffic: j.no_traffic_streak >= cfg.budget.no_traffic_looks,
        promotion_ready: !failed
            && promotion_passed
            && j.canary.requests >= cfg.min_canary_requests,
        exhausted: exhausted(
            j.looks,
            j.elapsed_ms,
            cfg.budget.max_looks,
            cfg.budget.max_duration_ms,
        ),
        on_inconclusive: cfg.budget.on_inconclusive,
    })
}

fn exhausted(looks: u32, elapsed_ms: u64, max_looks: u32, max_duration_ms: Option<u64>) -> bool {
    looks >= max_looks || max_duration_ms.is_some_and(|d| elapsed_ms >= d)
}

/// The metrics promotion needs, with their names for reasons.
fn promotion_metrics(e: &Evidence) -> impl Iterator<Item = (&RatioEvidence, String)> {
    std::iter::once((&e.error, "error-rate".to_owned())).chain(
        e.latency
            .iter()
            .filter(|b| b.promotion)
            .map(|b| (&b.ratio, format!("share slower than {}", seconds(b.le_s)))),
    )
}

/// Fills the derived fields: promotion readiness, budget, and what is still needed.
pub(super) fn complete(e: &mut Evidence) {
    let failed = flags_of(e).failed;
    e.promotion_ready = !failed
        && promotion_metrics(e).all(|(m, _)| m.promotion_passed)
        && e.canary.requests >= e.min_canary_requests;
    e.budget.exhausted = exhausted(
        e.looks,
        e.budget.elapsed_ms,
        e.budget.max_looks,
        e.budget.max_duration_ms,
    );
    if !failed && !e.promotion_ready {
        let (requests, looks) = still_needed(e);
        e.canary_requests_needed = requests;
        e.looks_needed = looks;
    }
}

/// Overhead of the promotion mixture over a test that knew the true ratio, in nats
/// (for the rough "still needed" estimate only).
const MIXTURE_COST: f64 = 1.0;

/// Further canary requests (and looks) before every promotion test could pass, roughly.
///
/// A metric's promotion e-value grows about like I·δ²/2 − cost, with I the tempered
/// information gathered and δ = ln(limit) − ln(ψ̂); it passes at ln(1/α). Future looks are
/// assumed to carry as much information per request and per look as past ones. `None`
/// when the canary currently looks worse than a limit (more traffic alone will not help)
/// or nothing can be estimated yet.
fn still_needed(e: &Evidence) -> (Option<u64>, Option<u32>) {
    let n = e.canary.requests as f64;
    let minimum = e.min_canary_requests.saturating_sub(e.canary.requests) as f64;
    if n == 0.0 || e.primary.requests == 0 {
        return ((minimum > 0.0).then_some(minimum as u64), None);
    }
    let target = (1.0 / e.alpha).ln() + MIXTURE_COST;
    let mut factor: f64 = 1.0;
    for (m, _) in promotion_metrics(e) {
        if m.promotion_passed {
            continue;
        }
        let Some(est) = m.ratio_estimate.filter(|_| m.information > 0.0) else {
            return ((minimum > 0.0).then_some(minimum as u64), None);
        };
        if est >= m.promotion_limit {
            return (None, None);
        }
        let delta = m.promotion_limit.ln() - est.ln();
        factor = factor.max(2.0 * target / (delta * delta) / m.information);
    }
    let more = (n * (factor - 1.0)).max(minimum);
    let looks = (factor > 1.0).then(|| (f64::from(e.looks) * (factor - 1.0)).ceil() as u32);
    ((more > 0.0).then(|| more.ceil() as u64), looks)
}

/// The verdict and its one-sentence reason.
pub(super) fn decide(e: &Evidence) -> (Verdict, String) {
    let flags = flags_of(e);
    let verdict = verdict_of(flags);
    let reason = if flags.failed {
        fail_reason(e)
    } else if flags.no_traffic {
        format!(
            "canary receives no traffic: no canary requests in the last {} looks while the primary served {}",
            e.budget.no_traffic_looks,
            count(e.primary.requests)
        )
    } else if flags.promotion_ready {
        pass_reason(e)
    } else if flags.exhausted {
        let spent = match e.budget.max_duration_ms {
            Some(d) if e.budget.elapsed_ms >= d => {
                format!("{} ({} looks)", humantime_ms(e.budget.elapsed_ms), e.looks)
            }
            _ => format!("{} looks", e.looks),
        };
        match e.budget.on_inconclusive {
            OnInconclusive::Rollback => format!("no decision after {spent}: {}", missing(e)),
            OnInconclusive::Hold => format!(
                "no decision after {spent}; a release manager must decide (open the promotion gate or request a rollback): {}",
                missing(e)
            ),
        }
    } else {
        wait_reason(e)
    };
    (verdict, reason)
}

fn humantime_ms(ms: u64) -> String {
    let s = ms / 1000;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// Which percentile people would name for a boundary the primary exceeds `fraction` of
/// the time: p50 for the body, p95 for the shoulder, p99 for the tail.
fn percentile_for(fraction: Option<f64>) -> (&'static str, fn(&Percentiles) -> Option<f64>) {
    match fraction {
        Some(f) if f >= 0.25 => ("p50", |p| p.p50_s),
        Some(f) if f < 0.025 => ("p99", |p| p.p99_s),
        _ => ("p95", |p| p.p95_s),
    }
}

/// "canary p95 139 ms vs primary 107 ms (+30%), " or nothing when unknown.
fn percentile_phrase(e: &Evidence, b: &BoundaryEvidence) -> String {
    let (name, pick) = percentile_for(b.primary_lookback_fraction.or(b.ratio.primary_rate));
    match (pick(&e.canary_latency), pick(&e.primary_latency)) {
        (Some(c), Some(p)) if p > 0.0 => format!(
            "canary {name} {} vs primary {} ({}), ",
            millis(c),
            millis(p),
            signed_pct(c / p - 1.0)
        ),
        _ => String::new(),
    }
}

fn rates(m: &RatioEvidence) -> (String, String) {
    (
        m.canary_rate.map_or("n/a".to_owned(), pct),
        m.primary_rate.map_or("n/a".to_owned(), pct),
    )
}

fn fail_reason(e: &Evidence) -> String {
    let conf = confidence(e.alpha);
    if e.error.crossed {
        let (c, p) = rates(&e.error);
        return format!(
            "canary error rate {c} vs primary {p} (ratio ≥ {} with {conf} confidence, e-value {} ≥ {}): regression",
            ratio(e.error.ratio_lower),
            num(e.error.max_e_value),
            num(e.error.threshold),
        );
    }
    if e.latency_family.crossed {
        // The boundary with the strongest evidence names the regression.
        if let Some(b) = e
            .latency
            .iter()
            .max_by(|a, b| a.ratio.e_value.total_cmp(&b.ratio.e_value))
        {
            let (c, p) = rates(&b.ratio);
            return format!(
                "{}{c} vs {p} of requests slower than {} (ratio ≥ {} with {conf} confidence; latency e-value {} ≥ {}): latency regression",
                percentile_phrase(e, b),
                seconds(b.le_s),
                ratio(b.ratio.ratio_lower),
                num(e.latency_family.max_e_value),
                num(e.latency_family.threshold),
            );
        }
    }
    let slo = |s: &RateEvidence, what: String, label: &str| {
        format!(
            "{what} {} is above the SLO {} (e-value {} ≥ {}, p = {}): {label}",
            pct(s.canary_events as f64 / s.canary_requests.max(1) as f64),
            pct(s.rate),
            num((1.0 / s.p_value).min(1e300)),
            num(s.threshold),
            p_value(s.p_value),
        )
    };
    if let Some(s) = e.slo_error.as_ref().filter(|s| s.crossed) {
        return slo(s, "canary error rate".into(), "error-rate SLO breach");
    }
    if let Some(s) = e.slo_latency.as_ref().filter(|s| s.crossed) {
        let p95 = e
            .canary_latency
            .p95_s
            .map_or(String::new(), |p| format!("canary p95 {}; ", millis(p)));
        return slo(
            s,
            format!("{p95}canary share of requests above the SLO latency"),
            "latency SLO breach",
        );
    }
    "regression established".into()
}

fn pass_reason(e: &Evidence) -> String {
    let (c, p) = rates(&e.error);
    let errors = if e.error.promotion_passed && e.error.informative_looks == 0 {
        let limit = e.negligible_error.as_ref().map_or(0.0, |n| n.rate);
        format!(
            "error rate {c} vs {p} (below the negligible {})",
            pct(limit)
        )
    } else {
        format!(
            "error rate {c} vs {p} (ratio < {})",
            limit(e.error.promotion_limit)
        )
    };
    let promoted: Vec<&BoundaryEvidence> = e.latency.iter().filter(|b| b.promotion).collect();
    let latency = match promoted.first() {
        None => "no latency boundary needed".to_owned(),
        Some(first) => {
            let edges: Vec<String> = promoted.iter().map(|b| seconds(b.le_s)).collect();
            let p95 = match (e.canary_latency.p95_s, e.primary_latency.p95_s) {
                (Some(c), Some(p)) => format!("p95 {} vs {}, ", millis(c), millis(p)),
                _ => String::new(),
            };
            format!(
                "latency {p95}share slower than {} ratio < {}",
                edges.join(" / "),
                limit(first.ratio.promotion_limit)
            )
        }
    };
    format!(
        "canary not worse than primary with {} confidence after {} canary requests: {errors}; {latency}",
        confidence(e.alpha),
        count(e.canary.requests),
    )
}

/// What promotion still misses, one clause per metric.
fn missing(e: &Evidence) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (m, name) in promotion_metrics(e) {
        if m.promotion_passed {
            continue;
        }
        let upper = m.ratio_upper.map_or("unbounded".to_owned(), ratio);
        let (c, p) = rates(m);
        parts.push(format!(
            "{name} ratio not yet shown below {} (could still be up to {upper}; canary {c} vs primary {p})",
            limit(m.promotion_limit)
        ));
    }
    if e.canary.requests < e.min_canary_requests {
        parts.push(format!(
            "canary served {} of the {} requests required before promotion",
            count(e.canary.requests),
            count(e.min_canary_requests)
        ));
    }
    if parts.is_empty() {
        "nothing is missing".into()
    } else {
        parts.join(" and ")
    }
}

fn wait_reason(e: &Evidence) -> String {
    if e.canary.requests == 0 {
        return format!(
            "waiting: no canary traffic yet ({} of {} looks without canary requests before the canary fails for lack of traffic)",
            e.budget.no_traffic_looks, e.budget.no_traffic_limit
        );
    }
    if e.primary.requests == 0 {
        return format!(
            "waiting: the primary served no requests while the canary served {}, so there is no baseline to compare against",
            count(e.canary.requests)
        );
    }
    let needed = match (e.canary_requests_needed, e.looks_needed) {
        (Some(n), Some(l)) => format!(
            "; need ~{} more canary requests (~{l} looks at this rate)",
            count(round2(n))
        ),
        (Some(n), None) => format!("; need ~{} more canary requests", count(round2(n))),
        _ => String::new(),
    };
    format!(
        "waiting for evidence after {} canary requests: {}{needed}",
        count(e.canary.requests),
        missing(e)
    )
}

/// Rounds to two significant digits: the estimate is rough and should look it.
fn round2(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    n.div_ceil(scale) * scale
}
