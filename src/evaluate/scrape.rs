//! The simulated Prometheus of `verdict evaluate`'s scrape scenarios: each arm runs a
//! few pods (scrape targets), each pod exports counters, and Prometheus scrapes every
//! target every `S` seconds at its own random phase, as real Prometheus spreads its
//! targets over the interval (docs/statistics.md, "Counts from Prometheus").
//!
//! Each pod exports, like a mesh or a client library does:
//! - its non-error requests and its errors as two series of one request counter (a
//!   series appears at its first increment: an error series at the pod's first error);
//! - its latency histogram as one cumulative series per bucket bound and `+Inf` (all of
//!   them appear at the pod's first request).
//!
//! Traffic comes from the simulator one interval at a time (so its per-interval noise is
//! kept) and is spread over the pods and over the moments between their scrapes exactly as
//! a Poisson stream of independently marked requests would be: each latency bucket's
//! requests land in (pod, stretch between scrapes) cells with probability proportional to
//! the cell's length, and the errors are a uniformly random subset of the requests.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Hypergeometric};

use super::promql::Sample;
use crate::sli::simulator::{binomial, ArmIncrement, Interval};

/// How a look's counts are read from the scraped counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPath {
    /// `sum(increase(x[window]))` at the look, rounded as the live code rounds it: the
    /// data path before issue 10.
    Increase,
    /// Per-series differencing of the raw counters at each look: issue 10's data path.
    Difference,
}

/// The scrape model of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeSettings {
    /// Prometheus' `scrape_interval` in seconds.
    pub interval_s: u32,
    /// Pods (scrape targets) per arm, each with its own scrape phase.
    pub pods_per_arm: u32,
    /// How looks are read.
    pub path: CountPath,
}

/// Most pods per arm the model accepts (each is a dozen series).
const MAX_PODS: u32 = 64;
/// Longest scrape interval accepted: an instant query sees 5 minutes back.
const MAX_INTERVAL_S: u32 = 300;

/// Why the scrape model refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    /// A scrape interval of 0 s or longer than the look-back.
    #[error("the scrape interval must be 1 to {MAX_INTERVAL_S} s, got {0} s")]
    Interval(u32),
    /// No pods, or too many.
    #[error("pods per arm must be 1 to {MAX_PODS}, got {0}")]
    Pods(u32),
    /// Time that does not move forward (a look gap ≤ 0, an interval out of order).
    #[error("simulated time must move forward: {from} ms to {to} ms")]
    Backwards {
        /// Where time was.
        from: i64,
        /// Where it was asked to go.
        to: i64,
    },
    /// Traffic with another bucket layout than the targets' histogram.
    #[error("an interval of {got} latency buckets where the histogram has {want}")]
    Buckets {
        /// Buckets in the traffic.
        got: usize,
        /// Buckets of the histogram.
        want: usize,
    },
    /// Traffic whose errors exceed its requests, or whose buckets do not add up to them.
    #[error(
        "inconsistent counts: {requests} requests, {errors} errors, {in_buckets} in the buckets"
    )]
    Counts {
        /// Requests of the interval.
        requests: u64,
        /// Errors of the interval.
        errors: u64,
        /// Requests in its latency buckets.
        in_buckets: u64,
    },
    /// A look before the analysis opened.
    #[error("a look was asked for before the analysis opened")]
    NotOpened,
    /// A query Prometheus would refuse.
    #[error(transparent)]
    Query(#[from] super::promql::QueryError),
}

impl ScrapeSettings {
    /// Checks the settings; nothing is simulated with settings that fail here.
    pub fn validate(&self) -> Result<(), ScrapeError> {
        if !(1..=MAX_INTERVAL_S).contains(&self.interval_s) {
            return Err(ScrapeError::Interval(self.interval_s));
        }
        if !(1..=MAX_PODS).contains(&self.pods_per_arm) {
            return Err(ScrapeError::Pods(self.pods_per_arm));
        }
        Ok(())
    }

    fn interval_ms(&self) -> i64 {
        i64::from(self.interval_s) * 1000
    }
}

/// Index of the non-error request series of a pod.
pub(crate) const OK: usize = 0;
/// Index of the error series of a pod.
pub(crate) const ERRORS: usize = 1;
/// Index of the first latency bucket series (`le` = the smallest bound).
pub(crate) const FIRST_BUCKET: usize = 2;

/// One scrape target: its phase, its counters and every sample Prometheus took of them.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    phase_ms: i64,
    /// Cumulative counts: non-error requests, errors, then the cumulative buckets.
    counters: Vec<u64>,
    /// The scraped samples, one series per counter, only from the series' first
    /// increment on.
    pub(crate) series: Vec<Vec<Sample>>,
}

impl Target {
    fn new(phase_ms: i64, buckets: usize) -> Self {
        Self {
            phase_ms,
            counters: vec![0; FIRST_BUCKET + buckets],
            series: vec![Vec::new(); FIRST_BUCKET + buckets],
        }
    }

    /// Adds one cell's requests: errors, then non-cumulative bucket counts.
    fn add(&mut self, errors: u64, buckets: &[u64]) {
        let requests: u64 = buckets.iter().sum();
        self.counters[OK] += requests - errors;
        self.counters[ERRORS] += errors;
        let mut running = 0;
        for (counter, count) in self.counters[FIRST_BUCKET..].iter_mut().zip(buckets) {
            running += count;
            *counter += running;
        }
    }

    /// Prometheus scrapes the target at `t_ms`: every series that exists gets a sample.
    fn scrape(&mut self, t_ms: i64) {
        let histogram_exists = self.counters.last().is_some_and(|c| *c > 0);
        for (i, (series, value)) in self.series.iter_mut().zip(&self.counters).enumerate() {
            let exists = if i >= FIRST_BUCKET {
                histogram_exists
            } else {
                *value > 0
            };
            if exists {
                series.push((t_ms, *value as f64));
            }
        }
    }
}

/// One arm's scrape targets.
#[derive(Debug, Clone)]
pub(crate) struct ScrapedArm {
    pub(crate) targets: Vec<Target>,
}

/// A stretch of one pod's time that ends at a scrape or at the end of the interval.
struct Cell {
    pod: usize,
    end_ms: i64,
    scraped_at_end: bool,
    share: f64,
}

/// The simulated Prometheus of one canary: both arms' targets and their samples.
#[derive(Debug, Clone)]
pub struct Scraper {
    settings: ScrapeSettings,
    buckets: usize,
    pub(crate) canary: ScrapedArm,
    pub(crate) primary: ScrapedArm,
    /// Simulated time up to which traffic has been added and scraped.
    now_ms: Option<i64>,
    rng: StdRng,
}

impl Scraper {
    /// Targets with random scrape phases for a histogram with `bounds` finite bounds.
    pub fn new(settings: ScrapeSettings, bounds: usize, seed: u64) -> Result<Self, ScrapeError> {
        settings.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let interval = settings.interval_ms();
        let arm = |rng: &mut StdRng| ScrapedArm {
            targets: (0..settings.pods_per_arm)
                .map(|_| Target::new(rand::Rng::gen_range(rng, 0..interval), bounds + 1))
                .collect(),
        };
        Ok(Self {
            settings,
            buckets: bounds + 1,
            canary: arm(&mut rng),
            primary: arm(&mut rng),
            now_ms: None,
            rng,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ScrapeSettings {
        &self.settings
    }

    /// Adds the traffic of `[start_ms, start_ms + len_ms)` and takes every scrape in
    /// `(start_ms, start_ms + len_ms]`. Intervals must follow each other without gaps.
    pub fn advance(
        &mut self,
        start_ms: i64,
        len_ms: i64,
        interval: &Interval,
    ) -> Result<(), ScrapeError> {
        let end_ms = start_ms + len_ms;
        if len_ms <= 0 || self.now_ms.is_some_and(|now| now != start_ms) {
            return Err(ScrapeError::Backwards {
                from: self.now_ms.unwrap_or(start_ms),
                to: end_ms,
            });
        }
        for inc in [&interval.canary, &interval.primary] {
            if inc.buckets.len() != self.buckets {
                return Err(ScrapeError::Buckets {
                    got: inc.buckets.len(),
                    want: self.buckets,
                });
            }
            if inc.buckets.iter().sum::<u64>() != inc.requests || inc.errors > inc.requests {
                return Err(ScrapeError::Counts {
                    requests: inc.requests,
                    errors: inc.errors,
                    in_buckets: inc.buckets.iter().sum(),
                });
            }
        }
        let every = self.settings.interval_ms();
        let rng = &mut self.rng;
        spread(
            &mut self.canary,
            start_ms,
            len_ms,
            every,
            &interval.canary,
            rng,
        );
        spread(
            &mut self.primary,
            start_ms,
            len_ms,
            every,
            &interval.primary,
            rng,
        );
        self.now_ms = Some(end_ms);
        Ok(())
    }
}

/// The cells of `[start, start + len)`: per pod, the stretches between its scrapes.
fn cells(arm: &ScrapedArm, start_ms: i64, len_ms: i64, every_ms: i64) -> Vec<Cell> {
    let end_ms = start_ms + len_ms;
    let pods = arm.targets.len() as f64;
    let mut cells = Vec::new();
    for (pod, target) in arm.targets.iter().enumerate() {
        // The first scrape after `start`.
        let mut scrape =
            target.phase_ms + ((start_ms - target.phase_ms).div_euclid(every_ms) + 1) * every_ms;
        let mut from = start_ms;
        while scrape <= end_ms {
            cells.push(Cell {
                pod,
                end_ms: scrape,
                scraped_at_end: true,
                share: (scrape - from) as f64 / len_ms as f64 / pods,
            });
            from = scrape;
            scrape += every_ms;
        }
        if from < end_ms {
            cells.push(Cell {
                pod,
                end_ms,
                scraped_at_end: false,
                share: (end_ms - from) as f64 / len_ms as f64 / pods,
            });
        }
    }
    cells
}

/// Spreads one arm's interval over its cells and scrapes the targets in time order.
fn spread(
    arm: &mut ScrapedArm,
    start_ms: i64,
    len_ms: i64,
    every_ms: i64,
    inc: &ArmIncrement,
    rng: &mut StdRng,
) {
    let cells = cells(arm, start_ms, len_ms, every_ms);
    let width = inc.buckets.len();
    // counts[c * width + b]: requests of bucket b in cell c (a multinomial per bucket).
    let mut counts = vec![0u64; cells.len() * width];
    for (b, total) in inc.buckets.iter().enumerate() {
        let mut left = *total;
        let mut mass = 1.0;
        for (c, cell) in cells.iter().enumerate() {
            let here = if c + 1 == cells.len() || mass <= 0.0 {
                left
            } else {
                binomial(rng, left, (cell.share / mass).min(1.0))
            };
            counts[c * width + b] = here;
            left -= here;
            mass -= cell.share;
        }
    }
    // Errors: a uniformly random subset of the requests, so per cell a hypergeometric
    // share of those not yet placed.
    let mut requests_left = inc.requests;
    let mut errors_left = inc.errors.min(inc.requests);
    for (c, cell) in cells.iter().enumerate() {
        let row = &counts[c * width..(c + 1) * width];
        let requests: u64 = row.iter().sum();
        let errors = if errors_left == 0 || requests == 0 {
            0
        } else if requests >= requests_left {
            errors_left
        } else {
            Hypergeometric::new(requests_left, errors_left, requests).map_or(0, |d| d.sample(rng))
        };
        requests_left -= requests.min(requests_left);
        errors_left -= errors;
        let target = &mut arm.targets[cell.pod];
        target.add(errors, row);
        if cell.scraped_at_end {
            target.scrape(cell.end_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(interval_s: u32, pods: u32) -> ScrapeSettings {
        ScrapeSettings {
            interval_s,
            pods_per_arm: pods,
            path: CountPath::Difference,
        }
    }

    fn arm(requests: u64, errors: u64, buckets: [u64; 3]) -> ArmIncrement {
        ArmIncrement {
            requests,
            errors,
            buckets: buckets.to_vec(),
        }
    }

    #[test]
    fn bad_settings_and_inputs_are_refused() {
        assert_eq!(
            Scraper::new(settings(0, 2), 2, 1).err(),
            Some(ScrapeError::Interval(0))
        );
        assert_eq!(
            Scraper::new(settings(301, 2), 2, 1).err(),
            Some(ScrapeError::Interval(301))
        );
        assert_eq!(
            Scraper::new(settings(30, 0), 2, 1).err(),
            Some(ScrapeError::Pods(0))
        );
        let Ok(mut s) = Scraper::new(settings(30, 2), 2, 1) else {
            panic!("valid settings refused");
        };
        let step = Interval {
            canary: arm(0, 0, [0, 0, 0]),
            primary: arm(10, 1, [5, 4, 1]),
        };
        assert!(s.advance(0, 60_000, &step).is_ok());
        // A gap, a step back, an empty interval: refused, and nothing changes.
        let before = s.primary.targets[0].series.clone();
        assert!(matches!(
            s.advance(120_000, 60_000, &step),
            Err(ScrapeError::Backwards { .. })
        ));
        assert!(matches!(
            s.advance(0, 60_000, &step),
            Err(ScrapeError::Backwards { .. })
        ));
        assert!(matches!(
            s.advance(60_000, 0, &step),
            Err(ScrapeError::Backwards { .. })
        ));
        let wrong = Interval {
            canary: arm(0, 0, [0, 0, 0]),
            primary: ArmIncrement {
                requests: 1,
                errors: 0,
                buckets: vec![1],
            },
        };
        assert_eq!(
            s.advance(60_000, 60_000, &wrong).err(),
            Some(ScrapeError::Buckets { got: 1, want: 3 })
        );
        let more_errors = Interval {
            canary: arm(0, 0, [0, 0, 0]),
            primary: arm(10, 11, [5, 4, 1]),
        };
        assert!(matches!(
            s.advance(60_000, 60_000, &more_errors),
            Err(ScrapeError::Counts { .. })
        ));
        let lost = Interval {
            canary: arm(3, 0, [1, 0, 0]),
            primary: arm(10, 1, [5, 4, 1]),
        };
        assert!(matches!(
            s.advance(60_000, 60_000, &lost),
            Err(ScrapeError::Counts { .. })
        ));
        assert_eq!(s.primary.targets[0].series, before);
    }

    #[test]
    fn every_request_is_scraped_once_at_its_pods_phase() {
        let Ok(mut s) = Scraper::new(settings(30, 3), 2, 7) else {
            panic!("valid settings refused");
        };
        let mut total = ArmIncrement::default();
        for i in 0..4 {
            let step = Interval {
                canary: arm(0, 0, [0, 0, 0]),
                primary: arm(600, 6, [300, 200, 100]),
            };
            total.add(&step.primary);
            assert!(s.advance(i * 60_000, 60_000, &step).is_ok());
        }
        // After the last scrape of each pod the counters hold everything; the samples
        // are at the pod's phase every 30 s.
        let mut scraped = [0.0; 5];
        let mut counted = [0u64; 5];
        for target in &s.primary.targets {
            for (i, series) in target.series.iter().enumerate() {
                assert!(series.windows(2).all(|w| w[1].0 - w[0].0 == 30_000));
                assert!(
                    series.windows(2).all(|w| w[1].1 >= w[0].1),
                    "counters only go up"
                );
                if let Some(first) = series.first() {
                    assert_eq!(first.0.rem_euclid(30_000), target.phase_ms);
                }
                scraped[i] += series.last().map_or(0.0, |s| s.1);
                counted[i] += target.counters[i];
            }
        }
        assert_eq!(counted[OK] + counted[ERRORS], 2400);
        assert_eq!(counted[ERRORS], 24);
        assert_eq!(counted[FIRST_BUCKET], 1200);
        assert_eq!(counted[FIRST_BUCKET + 2], 2400, "+Inf counts every request");
        // Scraped values trail the counters by the requests after each pod's last scrape.
        assert!(scraped[FIRST_BUCKET + 2] <= 2400.0 && scraped[FIRST_BUCKET + 2] > 1800.0);
        // Pods share the traffic about equally.
        for target in &s.primary.targets {
            let share = target.counters[FIRST_BUCKET + 2] as f64 / 2400.0;
            assert!((share - 1.0 / 3.0).abs() < 0.06, "{share}");
        }
    }

    #[test]
    fn a_series_appears_at_its_first_increment() {
        let Ok(mut s) = Scraper::new(settings(15, 1), 2, 3) else {
            panic!("valid settings refused");
        };
        let quiet = Interval {
            canary: arm(0, 0, [0, 0, 0]),
            primary: arm(50, 0, [50, 0, 0]),
        };
        assert!(s.advance(0, 60_000, &quiet).is_ok());
        let canary = &s.canary.targets[0];
        assert!(
            canary.series.iter().all(Vec::is_empty),
            "no canary traffic, no series"
        );
        let primary = &s.primary.targets[0];
        assert!(primary.series[ERRORS].is_empty(), "no error yet");
        assert!(!primary.series[OK].is_empty());
        // Every bucket series exists with the histogram, even the empty ones.
        assert_eq!(
            primary.series[FIRST_BUCKET + 1].len(),
            primary.series[OK].len()
        );
        let failing = Interval {
            canary: arm(0, 0, [0, 0, 0]),
            primary: arm(50, 50, [50, 0, 0]),
        };
        assert!(s.advance(60_000, 60_000, &failing).is_ok());
        let primary = &s.primary.targets[0];
        assert!(!primary.series[ERRORS].is_empty());
        assert!(primary.series[ERRORS][0].0 > 60_000);
    }
}
