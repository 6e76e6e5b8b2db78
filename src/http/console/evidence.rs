//! What the analysis page charts, read from the API's shapes: per look, both arms'
//! traffic and the canary weight; over the looks, each test's e-value against its
//! rejection line and each ratio's confidence band against the promotion and regression
//! limits (docs/console.md, "Reading the evidence").
//!
//! The stored evidence is read field by field from its JSON (docs/statistics.md names
//! the fields), so a look written by another verdict version draws what it has.

use chrono::DateTime;
use serde_json::Value;

use super::chart::{Band, Chart, Rule, Series};
use crate::analysis::weight_at;
use crate::http::api::model::{AnalysisDetail, LookView};

/// Unix milliseconds of an RFC 3339 time from the API.
pub fn millis(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A look's window in seconds (at least a millisecond).
fn window_s(l: &LookView) -> Option<f64> {
    let ms = millis(&l.window_end)? - millis(&l.window_start)?;
    Some((ms.max(1)) as f64 / 1000.0)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        f64::NAN
    } else {
        part as f64 / whole as f64
    }
}

/// The judge's evidence of a look (stored under `judge`, beside the hook's own fields).
fn judged(look: &LookView) -> &Value {
    look.evidence.get("judge").unwrap_or(&look.evidence)
}

/// A number at `path` of a look's judge evidence.
fn f(look: &LookView, path: &str) -> Option<f64> {
    judged(look).pointer(path).and_then(Value::as_f64)
}

/// A latency boundary the judge tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boundary {
    /// Its index in the plan's edges, which the looks' `slower` counts follow.
    pub edge: usize,
    /// The boundary, seconds.
    pub le_s: f64,
}

/// The tested latency boundaries, in the order of the evidence's `latency` list: the
/// plan's boundaries fixed when the analysis opened.
pub fn boundaries(d: &AnalysisDetail) -> Vec<Boundary> {
    let Some(list) = d
        .settings
        .pointer("/plan/boundaries")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|b| {
            Some(Boundary {
                edge: usize::try_from(b.get("edge")?.as_u64()?).ok()?,
                le_s: b.get("le_s")?.as_f64()?,
            })
        })
        .collect()
}

/// The canary weight Flagger announced last before each look ended.
pub fn weights(d: &AnalysisDetail) -> Vec<Option<u32>> {
    let events: Vec<(i64, &str)> = d
        .events
        .iter()
        .filter_map(|e| Some((millis(&e.received_at)?, e.message.as_str())))
        .collect();
    d.looks
        .iter()
        .map(|l| weight_at(&events, millis(&l.window_end)?))
        .collect()
}

fn two_arms(
    title: &str,
    unit: &str,
    d: &AnalysisDetail,
    of: impl Fn(&LookView, bool) -> Option<f64>,
) -> Chart {
    let arm = |canary: bool| -> Vec<(f64, f64)> {
        d.looks
            .iter()
            .filter_map(|l| Some((l.seq as f64, of(l, canary)?)))
            .collect()
    };
    Chart {
        title: title.into(),
        y_label: unit.into(),
        // The canary is drawn last, on top.
        series: vec![
            Series {
                label: "primary".into(),
                class: "primary",
                points: arm(false),
            },
            Series {
                label: "canary".into(),
                class: "canary",
                points: arm(true),
            },
        ],
        ..Chart::default()
    }
}

/// A boundary in milliseconds, for titles.
pub fn ms(seconds: f64) -> String {
    format!("{} ms", super::chart::short_number(seconds * 1000.0))
}

/// Per look: request rate, error rate, share of slow requests per boundary, weight.
pub fn traffic(d: &AnalysisDetail) -> Vec<Chart> {
    let mut charts = vec![
        two_arms("Request rate", "requests/s", d, |l, c| {
            let a = if c { &l.canary } else { &l.primary };
            Some(a.requests as f64 / window_s(l)?)
        }),
        two_arms("Error rate", "share of requests", d, |l, c| {
            let a = if c { &l.canary } else { &l.primary };
            Some(ratio(a.errors, a.requests))
        }),
    ];
    for b in boundaries(d) {
        charts.push(two_arms(
            &format!("Share of requests slower than {}", ms(b.le_s)),
            "share of requests",
            d,
            move |l, c| {
                let a = if c { &l.canary } else { &l.primary };
                Some(ratio(*a.slower.get(b.edge)?, a.requests))
            },
        ));
    }
    let w: Vec<(f64, f64)> = d
        .looks
        .iter()
        .zip(weights(d))
        .filter_map(|(l, w)| Some((l.seq as f64, f64::from(w?))))
        .collect();
    charts.push(Chart {
        title: "Canary weight (from Flagger's events)".into(),
        y_label: "percent".into(),
        series: vec![Series {
            label: "canary weight".into(),
            class: "weight",
            points: w,
        }],
        ..Chart::default()
    });
    charts
}

/// Each test's e-value over the looks against its rejection line.
pub fn e_values(d: &AnalysisDetail) -> Chart {
    let series = |label: String, class: &'static str, path: &str| Series {
        label,
        class,
        points: d
            .looks
            .iter()
            .filter_map(|l| Some((l.seq as f64, f(l, path)?)))
            .collect(),
    };
    let mut all = vec![
        series(
            "errors: regression test".into(),
            "fail-error",
            "/error/e_value",
        ),
        series(
            "latency: regression test (family)".into(),
            "fail-latency",
            "/latency_family/e_value",
        ),
        series(
            "errors: promotion test".into(),
            "promo-error",
            "/error/promotion_e_value",
        ),
    ];
    let classes = ["promo-l0", "promo-l1", "promo-l2", "promo-l3"];
    for (i, b) in boundaries(d).iter().enumerate() {
        all.push(series(
            format!("slower than {}: promotion test", ms(b.le_s)),
            classes[i % classes.len()],
            &format!("/latency/{i}/promotion_e_value"),
        ));
    }
    let last = d.looks.last();
    let mut rules = Vec::new();
    if let Some(t) = last.and_then(|e| f(e, "/error/threshold")) {
        rules.push(Rule {
            label: "regression line 1/(α per test)".into(),
            class: "limit-fail",
            y: t,
        });
    }
    if let Some(a) = last.and_then(|e| f(e, "/alpha")).filter(|a| *a > 0.0) {
        rules.push(Rule {
            label: "promotion line 1/α".into(),
            class: "limit-promo",
            y: 1.0 / a,
        });
    }
    Chart {
        title: "Evidence: e-values".into(),
        y_label: "e-value (log)".into(),
        log: true,
        series: all.into_iter().filter(|s| !s.points.is_empty()).collect(),
        bands: vec![],
        rules,
    }
}

/// The confidence band of one canary/primary ratio (`at`: `/error` or `/latency/<i>`)
/// against its promotion and regression limits.
fn ratio_band(d: &AnalysisDetail, title: String, at: &str) -> Chart {
    let last = d.looks.last();
    let promotion = last.and_then(|e| f(e, &format!("{at}/promotion_limit")));
    let regression = last
        .and_then(|e| f(e, &format!("{at}/margin")))
        .map(|m| 1.0 + m);
    // An unbounded upper end is drawn at a cap well above the limits.
    let cap = regression.unwrap_or(2.0).max(promotion.unwrap_or(1.0)) * 2.0;
    let band: Vec<(f64, f64, f64)> = d
        .looks
        .iter()
        .filter_map(|l| {
            let lower = f(l, &format!("{at}/ratio_lower"))?;
            let upper = f(l, &format!("{at}/ratio_upper")).unwrap_or(cap).min(cap);
            Some((l.seq as f64, lower.min(cap), upper))
        })
        .collect();
    let estimate: Vec<(f64, f64)> = d
        .looks
        .iter()
        .filter_map(|l| {
            Some((
                l.seq as f64,
                f(l, &format!("{at}/ratio_estimate"))?.min(cap),
            ))
        })
        .collect();
    let mut rules = vec![Rule {
        label: "equal".into(),
        class: "limit-one",
        y: 1.0,
    }];
    if let Some(p) = promotion {
        rules.push(Rule {
            label: "promotion limit".into(),
            class: "limit-promo",
            y: p,
        });
    }
    if let Some(r) = regression {
        rules.push(Rule {
            label: "regression limit".into(),
            class: "limit-fail",
            y: r,
        });
    }
    Chart {
        title,
        y_label: "canary / primary".into(),
        log: false,
        series: vec![Series {
            label: "estimate".into(),
            class: "canary",
            points: estimate,
        }],
        bands: vec![Band {
            label: "1 − α confidence band".into(),
            class: "canary",
            points: band,
        }],
        rules,
    }
}

/// The ratio bands: errors, then each latency boundary.
pub fn ratio_bands(d: &AnalysisDetail) -> Vec<Chart> {
    let mut charts = vec![ratio_band(
        d,
        "Error rate ratio, canary / primary".into(),
        "/error",
    )];
    for (i, b) in boundaries(d).iter().enumerate() {
        charts.push(ratio_band(
            d,
            format!("Slower-than-{} share ratio, canary / primary", ms(b.le_s)),
            &format!("/latency/{i}"),
        ));
    }
    charts
}
