//! A look's counts as verdict reads them from the simulated Prometheus ([`super::scrape`]),
//! one way per [`CountPath`] (docs/statistics.md, "Counts from Prometheus"):
//!
//! - [`CountPath::Increase`] — verdict before issue 10: the templates'
//!   `sum(increase(x[window]))` at the look, the window running from the previous
//!   recorded look (or the analysis' start), then rounded as the live code rounds
//!   (src/analysis/judging.rs `tally`, src/sli/prometheus.rs `parse_buckets`): requests and
//!   errors to the nearest integer, errors at most the requests, buckets made monotone. An
//!   empty primary request query is "no data": the look is not recorded (a 424 to Flagger)
//!   and the next window starts where this one did.
//! - [`CountPath::Difference`] — issue 10: the raw counters per series at the look, minus
//!   the values kept from the previous look (`v_now`, not the difference, after a reset; a
//!   series absent before counts from 0), summed. The first baseline is read when the
//!   analysis opens (pre-rollout). A look with no sample newer than the previous look's
//!   carries no evidence: the judges see nothing and the kept values stay.

use super::promql::{self, Sample};
use super::scrape::{CountPath, ScrapeError, ScrapedArm, Scraper, ERRORS, FIRST_BUCKET, OK};
use crate::judge::latency::Bucket;
use crate::judge::HistoryInterval;
use crate::sli::simulator::{ArmIncrement, Interval};

/// One arm as the three template queries answer: requests (`None` when no request
/// series answered), errors, and the `sum by (le)` buckets (empty when none answered).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Requests, `None` when no request series answered.
    pub requests: Option<f64>,
    /// Errors (0 when no error series answered).
    pub errors: f64,
    /// Cumulative buckets, monotone, empty when no bucket series answered.
    pub buckets: Vec<Bucket>,
}

/// Evaluates one arm's queries with `value` giving each series' contribution
/// (`None`: the series is not in the result).
fn read(
    arm: &ScrapedArm,
    bounds: &[f64],
    mut value: impl FnMut(usize, usize, &[Sample]) -> Result<Option<f64>, ScrapeError>,
) -> Result<Reading, ScrapeError> {
    let mut requests: Option<f64> = None;
    let mut errors = 0.0;
    let mut buckets: Vec<Option<f64>> = vec![None; bounds.len() + 1];
    for (pod, target) in arm.targets.iter().enumerate() {
        for (i, series) in target.series.iter().enumerate() {
            let Some(v) = value(pod, i, series)? else {
                continue;
            };
            match i {
                OK => *requests.get_or_insert(0.0) += v,
                ERRORS => {
                    *requests.get_or_insert(0.0) += v;
                    errors += v;
                }
                _ => *buckets[i - FIRST_BUCKET].get_or_insert(0.0) += v,
            }
        }
    }
    let mut running = 0.0_f64;
    let buckets = buckets
        .iter()
        .enumerate()
        .filter_map(|(i, count)| {
            // A cumulative histogram cannot decrease; increase() extrapolates each bucket
            // series on its own, so the live code makes them monotone (parse_buckets).
            running = running.max((*count)?);
            Some(Bucket {
                le: bounds.get(i).copied().unwrap_or(f64::INFINITY),
                count: running,
            })
        })
        .collect();
    Ok(Reading {
        requests,
        errors,
        buckets,
    })
}

/// Both arms of one look.
#[derive(Debug, Clone, PartialEq)]
pub struct LookReading {
    /// The canary's reading.
    pub canary: Reading,
    /// The primary's reading.
    pub primary: Reading,
}

/// The old data path: `increase()` over the window since the previous recorded look.
#[derive(Debug, Clone)]
pub struct IncreaseReader {
    window_start_ms: i64,
}

impl IncreaseReader {
    /// A reader whose first window starts when the analysis opened.
    pub fn new(opened_ms: i64) -> Self {
        Self {
            window_start_ms: opened_ms,
        }
    }

    /// The look at `at_ms`; `None` when the primary has no request series in the window
    /// (no look is recorded; the next window starts where this one did).
    pub fn look(
        &mut self,
        prometheus: &Scraper,
        bounds: &[f64],
        at_ms: i64,
    ) -> Result<Option<LookReading>, ScrapeError> {
        let range = at_ms - self.window_start_ms;
        if range <= 0 {
            return Err(ScrapeError::Backwards {
                from: self.window_start_ms,
                to: at_ms,
            });
        }
        let value = |_: usize, _: usize, s: &[Sample]| -> Result<Option<f64>, ScrapeError> {
            Ok(promql::increase(s, at_ms, range)?)
        };
        let primary = read(&prometheus.primary, bounds, value)?;
        if primary.requests.is_none() {
            return Ok(None);
        }
        let canary = read(&prometheus.canary, bounds, value)?;
        self.window_start_ms = at_ms;
        Ok(Some(LookReading { canary, primary }))
    }
}

/// Per-series values kept from the previous look: `[arm][pod][series]`.
type Kept = [Vec<Vec<Option<f64>>>; 2];

/// The new data path: per-series differencing against the previous look's values.
#[derive(Debug, Clone)]
pub struct DifferenceReader {
    kept: Kept,
    at_ms: i64,
    newest_ms: Option<i64>,
}

impl DifferenceReader {
    /// Reads the baseline at `opened_ms` (pre-rollout): what every series holds then.
    pub fn open(prometheus: &Scraper, opened_ms: i64) -> Self {
        let arms = [&prometheus.canary, &prometheus.primary];
        let kept = arms.map(|arm| {
            arm.targets
                .iter()
                .map(|t| {
                    t.series
                        .iter()
                        .map(|s| promql::latest(s, opened_ms).map(|(_, v)| v))
                        .collect()
                })
                .collect()
        });
        Self {
            newest_ms: newest(prometheus, opened_ms),
            kept,
            at_ms: opened_ms,
        }
    }

    /// The look at `at_ms`; `None` when no series has a sample newer than at the previous
    /// look (the look carries no evidence; nothing is kept from it).
    pub fn look(
        &mut self,
        prometheus: &Scraper,
        bounds: &[f64],
        at_ms: i64,
    ) -> Result<Option<LookReading>, ScrapeError> {
        if at_ms <= self.at_ms {
            return Err(ScrapeError::Backwards {
                from: self.at_ms,
                to: at_ms,
            });
        }
        let newest_now = newest(prometheus, at_ms);
        if newest_now <= self.newest_ms {
            return Ok(None);
        }
        let [canary_kept, primary_kept] = &mut self.kept;
        let canary = difference(&prometheus.canary, canary_kept, bounds, at_ms)?;
        let primary = difference(&prometheus.primary, primary_kept, bounds, at_ms)?;
        self.at_ms = at_ms;
        self.newest_ms = newest_now;
        Ok(Some(LookReading { canary, primary }))
    }
}

/// The newest sample time of any series at or before `at_ms`.
fn newest(prometheus: &Scraper, at_ms: i64) -> Option<i64> {
    [&prometheus.canary, &prometheus.primary]
        .iter()
        .flat_map(|arm| &arm.targets)
        .flat_map(|t| &t.series)
        .filter_map(|s| promql::latest(s, at_ms).map(|(t, _)| t))
        .max()
}

/// One arm's increments since the kept values; keeps the new values.
fn difference(
    arm: &ScrapedArm,
    kept: &mut [Vec<Option<f64>>],
    bounds: &[f64],
    at_ms: i64,
) -> Result<Reading, ScrapeError> {
    read(arm, bounds, |pod, i, series| -> Result<_, ScrapeError> {
        let now = promql::latest(series, at_ms).map(|(_, v)| v);
        let slot = &mut kept[pod][i];
        let increment = now.map(|v| promql::counter_increment(*slot, v));
        *slot = now;
        Ok(increment)
    })
}

/// Reads looks one way or the other.
#[derive(Debug, Clone)]
enum Reader {
    Increase(IncreaseReader),
    Difference(DifferenceReader),
}

/// The judges' view of one arm: whole counts (as the live code rounds them) and the
/// cumulative buckets the thresholds and quantiles are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedArm {
    /// Whole requests, errors and per-bucket counts.
    pub increment: ArmIncrement,
    /// Cumulative buckets as read (extrapolated on the old path).
    pub buckets: Vec<Bucket>,
}

/// Rounds an extrapolated count to whole events, as src/analysis/judging.rs does.
fn whole(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

impl JudgedArm {
    /// An interval's exact counts, as the simulator drew them.
    pub fn exact(increment: ArmIncrement, bounds: &[f64]) -> Self {
        Self {
            buckets: increment.cumulative(bounds),
            increment,
        }
    }
}

impl From<&Reading> for JudgedArm {
    fn from(reading: &Reading) -> Self {
        let requests = whole(reading.requests.unwrap_or(0.0));
        let mut below = 0;
        let buckets = reading
            .buckets
            .iter()
            .map(|b| {
                let count = whole(b.count);
                let here = count.saturating_sub(below);
                below = below.max(count);
                here
            })
            .collect();
        Self {
            increment: ArmIncrement {
                requests,
                errors: whole(reading.errors).min(requests),
                buckets,
            },
            buckets: reading.buckets.clone(),
        }
    }
}

/// One simulated canary seen through the scrape model: traffic goes in interval by
/// interval, looks come out read one way or the other.
#[derive(Debug, Clone)]
pub struct ScrapedLooks {
    prometheus: Scraper,
    bounds: Vec<f64>,
    reader: Option<Reader>,
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl ScrapedLooks {
    /// A canary on `prometheus`; its traffic comes through [`Self::advance`], its looks
    /// after [`Self::open`].
    pub fn new(prometheus: Scraper, bounds: Vec<f64>) -> Self {
        Self {
            prometheus,
            bounds,
            reader: None,
        }
    }

    /// Adds the traffic of `[t_s, t_s + dt_s)` and its scrapes.
    pub fn advance(&mut self, t_s: f64, dt_s: f64, interval: &Interval) -> Result<(), ScrapeError> {
        self.prometheus.advance(ms(t_s), ms(dt_s), interval)
    }

    /// The primary's per-interval history ending at `end_s`, `intervals` of `step_s`, as
    /// the plan reads it: `increase()` over each step on the old path (intervals without
    /// a primary request series are left out, as the live code does), differences of the
    /// raw counters at the step times on the new one (steps without a newer sample are
    /// left out).
    pub fn history(
        &self,
        end_s: f64,
        intervals: usize,
        step_s: f64,
    ) -> Result<Vec<HistoryInterval>, ScrapeError> {
        if intervals == 0 {
            return Ok(Vec::new());
        }
        let step = ms(step_s);
        let end = ms(end_s);
        let at = |i: usize| end - (intervals - 1 - i) as i64 * step;
        let mut out = Vec::with_capacity(intervals);
        let mut push = |reading: &Reading| {
            if let Some(requests) = reading.requests {
                out.push(HistoryInterval {
                    requests,
                    errors: reading.errors,
                    buckets: reading.buckets.clone(),
                });
            }
        };
        match self.prometheus.settings().path {
            CountPath::Increase => {
                for i in 0..intervals {
                    let (t, bounds) = (at(i), &self.bounds);
                    let value = |_: usize, _: usize, s: &[Sample]| -> Result<_, ScrapeError> {
                        Ok(promql::increase(s, t, step)?)
                    };
                    push(&read(&self.prometheus.primary, bounds, value)?);
                }
            }
            CountPath::Difference => {
                let mut reader = DifferenceReader::open(&self.prometheus, at(0) - step);
                for i in 0..intervals {
                    if let Some(look) = reader.look(&self.prometheus, &self.bounds, at(i))? {
                        push(&look.primary);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens the analysis at `opened_s`: the window start (old path) or the per-series
    /// baseline (new path).
    pub fn open(&mut self, opened_s: f64) {
        let at = ms(opened_s);
        self.reader = Some(match self.prometheus.settings().path {
            CountPath::Increase => Reader::Increase(IncreaseReader::new(at)),
            CountPath::Difference => {
                Reader::Difference(DifferenceReader::open(&self.prometheus, at))
            }
        });
    }

    /// The look at `at_s` as the judges see it (canary, primary); `None` when it carries
    /// no evidence (no look recorded, or no newer sample).
    pub fn look(&mut self, at_s: f64) -> Result<Option<(JudgedArm, JudgedArm)>, ScrapeError> {
        let at = ms(at_s);
        let reading = match &mut self.reader {
            None => return Err(ScrapeError::NotOpened),
            Some(Reader::Increase(r)) => r.look(&self.prometheus, &self.bounds, at)?,
            Some(Reader::Difference(r)) => r.look(&self.prometheus, &self.bounds, at)?,
        };
        Ok(reading.map(|r| (JudgedArm::from(&r.canary), JudgedArm::from(&r.primary))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::scrape::ScrapeSettings;

    const BOUNDS: [f64; 1] = [0.1];

    fn scraper(path: CountPath, pods: u32) -> Scraper {
        let settings = ScrapeSettings {
            interval_s: 30,
            pods_per_arm: pods,
            path,
        };
        Scraper::new(settings, BOUNDS.len(), 5).unwrap_or_else(|e| panic!("{e}"))
    }

    fn secs(points: &[(i64, f64)]) -> Vec<Sample> {
        points.iter().map(|(t, v)| (t * 1000, *v)).collect()
    }

    /// One primary pod restarted between 40 s and 70 s, its first errors after the
    /// restart; no canary series at all.
    fn restarted(path: CountPath) -> Scraper {
        let mut p = scraper(path, 1);
        p.primary.targets[0].series = vec![
            secs(&[(10, 100.0), (40, 130.0), (70, 5.0), (100, 20.0)]),
            secs(&[(70, 2.0), (100, 3.0)]),
            secs(&[(10, 50.0), (40, 60.0), (70, 4.0), (100, 15.0)]),
            secs(&[(10, 100.0), (40, 130.0), (70, 7.0), (100, 23.0)]),
        ];
        p
    }

    fn counts(r: &Reading) -> (Option<f64>, f64, Vec<f64>) {
        (
            r.requests,
            r.errors,
            r.buckets.iter().map(|b| b.count).collect(),
        )
    }

    #[test]
    fn differencing_counts_resets_and_new_series_exactly() {
        let p = restarted(CountPath::Difference);
        let mut reader = DifferenceReader::open(&p, 15_000);
        let look = |r: &mut DifferenceReader, at| {
            r.look(&p, &BOUNDS, at)
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|l| (counts(&l.canary), counts(&l.primary)))
        };
        let none = (None, 0.0, vec![]);
        assert_eq!(
            look(&mut reader, 45_000),
            Some((none.clone(), (Some(30.0), 0.0, vec![10.0, 30.0])))
        );
        // The restart: the counters count from 0 again; the error series is new.
        assert_eq!(
            look(&mut reader, 75_000),
            Some((none.clone(), (Some(7.0), 2.0, vec![4.0, 7.0])))
        );
        // No sample newer than at 75 s: no evidence, nothing kept.
        assert_eq!(look(&mut reader, 80_000), None);
        assert_eq!(
            look(&mut reader, 105_000),
            Some((none, (Some(16.0), 1.0, vec![11.0, 16.0])))
        );
        // A look at or before the previous one is refused.
        assert!(matches!(
            reader.look(&p, &BOUNDS, 105_000),
            Err(ScrapeError::Backwards { .. })
        ));
        assert!(matches!(
            reader.look(&p, &BOUNDS, 90_000),
            Err(ScrapeError::Backwards { .. })
        ));
    }

    #[test]
    fn increase_extrapolates_drops_short_windows_and_rounds_like_the_live_code() {
        let p = restarted(CountPath::Increase);
        let mut reader = IncreaseReader::new(15_000);
        // [15 s, 45 s] holds one sample per series: no data, no look, same window start.
        assert_eq!(reader.look(&p, &BOUNDS, 45_000), Ok(None));
        // [15 s, 75 s]: 130 → 5 is a reset, raw increase 5, extrapolated by 60/30: 10
        // requests where 7 happened; the new error series has one sample: no errors.
        let Ok(Some(look)) = reader.look(&p, &BOUNDS, 75_000) else {
            panic!("no look");
        };
        assert_eq!(counts(&look.primary), (Some(10.0), 0.0, vec![8.0, 14.0]));
        assert_eq!(look.canary.requests, None);
        let judged = JudgedArm::from(&look.primary);
        assert_eq!(judged.increment.requests, 10);
        assert_eq!(judged.increment.buckets, vec![8, 6]);
        assert!(matches!(
            reader.look(&p, &BOUNDS, 75_000),
            Err(ScrapeError::Backwards { .. })
        ));
    }

    #[test]
    fn extrapolated_counts_are_rounded_and_bounded() {
        let reading = Reading {
            requests: Some(99.6),
            errors: 120.0,
            buckets: vec![
                Bucket {
                    le: 0.1,
                    count: 40.4,
                },
                Bucket {
                    le: f64::INFINITY,
                    count: 99.6,
                },
            ],
        };
        let judged = JudgedArm::from(&reading);
        assert_eq!(judged.increment.requests, 100);
        assert_eq!(judged.increment.errors, 100, "errors never exceed requests");
        assert_eq!(judged.increment.buckets, vec![40, 60]);
        let nothing = Reading {
            requests: None,
            errors: f64::NAN,
            buckets: vec![],
        };
        assert_eq!(JudgedArm::from(&nothing).increment, ArmIncrement::default());
    }

    #[test]
    fn differenced_looks_add_up_to_what_was_scraped() {
        let mut looks = ScrapedLooks::new(scraper(CountPath::Difference, 3), BOUNDS.to_vec());
        assert_eq!(looks.look(60.0).err(), Some(ScrapeError::NotOpened));
        let step = |requests: u64, errors: u64| ArmIncrement {
            requests,
            errors,
            buckets: vec![requests / 2, requests - requests / 2],
        };
        looks.open(0.0);
        let mut judged = ArmIncrement::default();
        for i in 0..8 {
            let interval = Interval {
                canary: step(300 + 17 * i, 3 + i),
                primary: step(900, 9),
            };
            assert!(looks.advance(i as f64 * 60.0, 60.0, &interval).is_ok());
            let Ok(Some((canary, _))) = looks.look((i + 1) as f64 * 60.0) else {
                panic!("look {i}");
            };
            judged.add(&canary.increment);
        }
        // Exactly what the pods' last scrapes hold: nothing lost, nothing extrapolated.
        let mut scraped = [0.0; 4];
        for target in &looks.prometheus.canary.targets {
            for (i, series) in target.series.iter().enumerate() {
                scraped[i] += series.last().map_or(0.0, |s| s.1);
            }
        }
        assert_eq!(judged.requests as f64, scraped[OK] + scraped[ERRORS]);
        assert_eq!(judged.errors as f64, scraped[ERRORS]);
        assert_eq!(judged.buckets[0] as f64, scraped[FIRST_BUCKET]);
        // Less than one scrape interval of traffic is still waiting for the next look.
        let served: u64 = (0..8).map(|i| 300 + 17 * i).sum();
        assert!(judged.requests <= served && judged.requests as f64 > served as f64 * 0.8);
    }
}
