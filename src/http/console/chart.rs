//! Line charts as SVG, drawn on the server: a few series over the looks, shaded bands
//! and labelled horizontal limits, on a linear or a log scale. Hand-written because the
//! console needs only this, and an SVG in the page needs no script, no asset and no
//! build step; the numbers behind every chart are also in the page's tables.

use maud::{html, Markup};

/// One line: `(x, y)` points in x order; non-finite values are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// CSS class giving its colour (`canary`, `primary`, …).
    pub class: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A shaded band between a lower and an upper line: `(x, lower, upper)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    pub class: &'static str,
    pub points: Vec<(f64, f64, f64)>,
}

/// A horizontal limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub label: String,
    pub class: &'static str,
    pub y: f64,
}

/// One chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    pub title: String,
    /// What the y axis shows, with its unit.
    pub y_label: String,
    /// A log10 y axis (for e-values).
    pub log: bool,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub rules: Vec<Rule>,
}

const W: f64 = 640.0;
const H: f64 = 230.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// The smallest value a log axis shows; smaller values are drawn at it.
const LOG_FLOOR: f64 = 1e-3;

/// Maps data to the drawing area.
struct Scale {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log: bool,
}

impl Scale {
    fn fy(&self, y: f64) -> f64 {
        if self.log {
            y.max(LOG_FLOOR).log10()
        } else {
            y
        }
    }
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        let v = self.fy(y).clamp(self.y0, self.y1);
        TOP + (self.y1 - v) / (self.y1 - self.y0) * (H - TOP - BOTTOM)
    }
}

fn scale(c: &Chart) -> Option<Scale> {
    let xs: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(c.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)))
        .filter(|x| x.is_finite())
        .collect();
    let (mut x0, mut x1) = min_max(&xs)?;
    if x1 - x0 < 1.0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let ys: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(
            c.bands
                .iter()
                .flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2])),
        )
        .chain(c.rules.iter().map(|r| r.y))
        .filter(|y| y.is_finite())
        .map(|y| if c.log { y.max(LOG_FLOOR).log10() } else { y })
        .collect();
    let (mut y0, mut y1) = min_max(&ys)?;
    if c.log {
        y0 = y0.floor();
        y1 = y1.ceil();
        if y1 - y0 < 1.0 {
            y1 = y0 + 1.0;
        }
    } else {
        y0 = y0.min(0.0);
        if y1 - y0 <= 0.0 {
            y1 = y0 + 1.0;
        }
        y1 += (y1 - y0) * 0.05;
    }
    Some(Scale {
        x0,
        x1,
        y0,
        y1,
        log: c.log,
    })
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// A number short enough for an axis.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        format!("{v:.4}").trim_end_matches('0').to_owned()
    }
}

/// The y ticks: powers of ten on a log axis, four steps otherwise.
fn y_ticks(s: &Scale) -> Vec<(f64, String)> {
    if s.log {
        let (lo, hi) = (s.y0 as i32, s.y1 as i32);
        let step = ((hi - lo) / 6).max(1);
        (lo..=hi)
            .step_by(step as usize)
            .map(|e| (10f64.powi(e), short_number(10f64.powi(e))))
            .collect()
    } else {
        (0..=4)
            .map(|i| {
                let v = s.y0 + (s.y1 - s.y0) * f64::from(i) / 4.0;
                (v, short_number(v))
            })
            .collect()
    }
}

fn path(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.enumerate() {
        d.push_str(&format!("{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" }));
    }
    d
}

/// The chart as a figure with its SVG and legend; a note instead when there is nothing
/// to draw.
pub fn render(c: &Chart) -> Markup {
    let Some(s) = scale(c) else {
        return html! { figure.chart { figcaption { (c.title) } p.muted { "No looks yet." } } };
    };
    let x_ticks: Vec<f64> = {
        let (a, b) = (s.x0.ceil() as i64, s.x1.floor() as i64);
        let step = ((b - a) / 10).max(1);
        (a..=b).step_by(step as usize).map(|x| x as f64).collect()
    };
    html! {
        figure.chart {
            figcaption { (c.title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(c.title) xmlns="http://www.w3.org/2000/svg" {
                g.grid {
                    @for (v, label) in y_ticks(&s) {
                        line x1=(LEFT) x2=(W - RIGHT) y1=(s.py(v)) y2=(s.py(v)) {}
                        text.tick x=(LEFT - 6.0) y=(s.py(v) + 4.0) text-anchor="end" { (label) }
                    }
                    @for x in &x_ticks {
                        text.tick x=(s.px(*x)) y=(H - BOTTOM + 16.0) text-anchor="middle" { (x) }
                    }
                    text.axis x=(LEFT + (W - LEFT - RIGHT) / 2.0) y=(H - 4.0) text-anchor="middle" { "look" }
                    text.axis transform=(format!("translate(12 {}) rotate(-90)", TOP + (H - TOP - BOTTOM) / 2.0)) text-anchor="middle" { (c.y_label) }
                }
                @for b in c.bands.iter().filter(|b| !b.points.is_empty()) {
                    @let upper = b.points.iter().map(|p| (s.px(p.0), s.py(p.2)));
                    @let lower = b.points.iter().rev().map(|p| (s.px(p.0), s.py(p.1)));
                    path class={ "band " (b.class) } d=(format!("{}Z", path(upper.chain(lower)))) {}
                }
                @for r in &c.rules {
                    line class={ "rule " (r.class) } x1=(LEFT) x2=(W - RIGHT) y1=(s.py(r.y)) y2=(s.py(r.y)) {}
                }
                @for series in c.series.iter().filter(|s| !s.points.is_empty()) {
                    @let pts: Vec<(f64, f64)> = series.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).map(|p| (s.px(p.0), s.py(p.1))).collect();
                    path class={ "line " (series.class) } d=(path(pts.iter().copied())) {}
                    @for (x, y) in &pts { circle class={ "dot " (series.class) } cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {} }
                }
            }
            ul.legend {
                @for series in &c.series { li { span class={ "swatch " (series.class) } {} (series.label) } }
                @for b in c.bands.iter().filter(|b| !b.points.is_empty()) { li { span class={ "swatch band " (b.class) } {} (b.label) } }
                @for r in &c.rules { li { span class={ "swatch rule " (r.class) } {} (r.label) ": " (short_number(r.y)) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log: bool, ys: &[f64]) -> Chart {
        Chart {
            title: "t <b>".into(),
            y_label: "y".into(),
            log,
            series: vec![Series {
                label: "canary".into(),
                class: "canary",
                points: ys
                    .iter()
                    .enumerate()
                    .map(|(i, y)| (i as f64 + 1.0, *y))
                    .collect(),
            }],
            bands: vec![],
            rules: vec![Rule {
                label: "1/α".into(),
                class: "limit",
                y: 100.0,
            }],
        }
    }

    #[test]
    fn points_land_inside_the_drawing_area_highest_on_top() {
        let c = chart(false, &[1.0, 5.0, 3.0]);
        let s = scale(&c).unwrap();
        let (lo, hi) = (s.py(1.0), s.py(100.0));
        assert!(hi < lo, "larger values are drawn higher");
        for y in [1.0, 5.0, 3.0, 100.0] {
            assert!((TOP..=H - BOTTOM).contains(&s.py(y)));
        }
        assert!((s.px(1.0) - LEFT).abs() < 1e-9);
        assert!((s.px(3.0) - (W - RIGHT)).abs() < 1e-9);
    }

    #[test]
    fn a_log_axis_spans_whole_powers_of_ten_and_floors_tiny_values() {
        let c = chart(true, &[0.0, 2.0, 1e4]);
        let s = scale(&c).unwrap();
        assert_eq!((s.y0, s.y1), (-3.0, 4.0));
        assert_eq!(s.py(0.0), s.py(LOG_FLOOR));
        assert!(y_ticks(&s).iter().any(|(v, _)| *v == 100.0));
    }

    #[test]
    fn titles_are_escaped_and_an_empty_chart_says_so() {
        let html = render(&chart(false, &[1.0])).into_string();
        assert!(html.contains("t &lt;b&gt;"));
        assert!(!html.contains("t <b>"));
        let empty = Chart {
            title: "none".into(),
            ..Chart::default()
        };
        assert!(render(&empty).into_string().contains("No looks yet"));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(2.5), "2.5");
        assert_eq!(short_number(1000.0), "1000");
        assert_eq!(short_number(1e7), "1e7");
        assert_eq!(short_number(0.0125), "0.0125");
    }
}
