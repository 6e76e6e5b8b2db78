//! What a run measured ([`LoadResult`]) and how workers collect it without contending.
//!
//! Each worker keeps a small local batch and merges it into one shared HDR histogram every few
//! hundred requests: one histogram per worker would cost ~300 KiB each at 3 significant digits
//! (too much at c = 1 000), one lock per request would serialise the workers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::domain::Millis;

/// Why a request produced no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// TCP connect, TLS or HTTP handshake failed (DNS included).
    Connect,
    /// No complete answer within the timeout (connect included).
    Timeout,
    /// The connection failed mid-request (reset, closed early, malformed response).
    Io,
    /// Open model only: a due request never started because every connection was busy for
    /// longer than the timeout, or the run ended first. It was not sent, and counts here so
    /// that a server that stalls cannot make the client skip the requests it owed.
    Backlog,
}

impl ErrorKind {
    const ALL: [ErrorKind; 4] = [Self::Connect, Self::Timeout, Self::Io, Self::Backlog];

    fn index(self) -> usize {
        self as usize
    }

    /// The name used in JSON and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::Backlog => "backlog",
        }
    }
}

/// Latency percentiles of the answered requests, in milliseconds (µs resolution, HDR
/// histogram with 3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Fastest.
    pub min_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Wall clock at the start.
    pub started_at: Millis,
    /// Wall clock when the last request finished.
    pub ended_at: Millis,
    /// Requests sent: answered plus failed (backlog excluded: never sent).
    pub requests: u64,
    /// Requests that got an HTTP status, whatever it was.
    pub responses: u64,
    /// From the start until the last request finished, in seconds.
    pub duration_secs: f64,
    /// `requests / duration_secs`.
    pub rate: f64,
    /// The rate the spec asked for, when it asked for one.
    pub target_rate: Option<f64>,
    /// Percentiles of the answered requests; `None` when nothing was answered. In the open
    /// model measured from each request's intended send time.
    pub latency: Option<Latency>,
    /// Answers by HTTP status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Stopped before its duration or request count was reached (shutdown or replaced).
    pub stopped: bool,
}

impl LoadResult {
    /// Relative deviation of the achieved rate from the target, e.g. `-0.004` for 0.4 % short.
    pub fn rate_error(&self) -> Option<f64> {
        self.target_rate
            .filter(|t| *t > 0.0)
            .map(|t| (self.rate - t) / t)
    }

    /// A summary in the layout of hey's, for terminals.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let secs = |ms: f64| ms / 1000.0;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "\nSummary:");
        let _ = writeln!(out, "  Total:\t{:.4} secs", self.duration_secs);
        if let Some(l) = &self.latency {
            let _ = writeln!(out, "  Slowest:\t{:.4} secs", secs(l.max_ms));
            let _ = writeln!(out, "  Fastest:\t{:.4} secs", secs(l.min_ms));
            let _ = writeln!(out, "  Average:\t{:.4} secs", secs(l.mean_ms));
        }
        let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.rate);
        if let (Some(target), Some(err)) = (self.target_rate, self.rate_error()) {
            let _ = writeln!(
                out,
                "  Target rate:\t{target:.4} (achieved {:+.3} %)",
                err * 100.0
            );
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(out, "\nLatency distribution:");
            for (p, v) in [
                (50, l.p50_ms),
                (90, l.p90_ms),
                (95, l.p95_ms),
                (99, l.p99_ms),
            ] {
                let _ = writeln!(out, "  {p}% in {:.4} secs", secs(v));
            }
        }
        let _ = writeln!(out, "\nStatus code distribution:");
        for (code, n) in &self.status_counts {
            let _ = writeln!(out, "  [{code}]\t{n} responses");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "  [{n}]\t{}", kind.as_str());
            }
        }
        if self.stopped {
            let _ = writeln!(out, "\n(stopped before the end)");
        }
        out
    }
}

/// Everything the workers of one run have measured so far.
#[derive(Debug)]
pub(crate) struct Recorder {
    inner: Mutex<Totals>,
}

#[derive(Debug)]
struct Totals {
    latency_us: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    errors: [u64; ErrorKind::ALL.len()],
}

/// A worker's unmerged measurements.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    latency_us: Vec<u64>,
    status: Vec<(u16, u64)>,
    errors: [u64; ErrorKind::ALL.len()],
}

/// How many answers a worker holds before merging: bounds lock traffic to one per this many.
const BATCH: usize = 256;

impl Batch {
    /// Records one answer; returns true when the batch should be merged.
    pub fn response(&mut self, status: u16, latency: Duration) -> bool {
        // Sub-microsecond answers still count as 1 µs: the histogram starts there.
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.push(us);
        match self.status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.status.push((status, 1)),
        }
        self.latency_us.len() >= BATCH
    }

    /// Records one failure.
    pub fn error(&mut self, kind: ErrorKind, count: u64) {
        self.errors[kind.index()] += count;
    }
}

impl Recorder {
    pub fn new() -> Self {
        // 1 µs .. 1 h at 3 significant digits; larger values saturate at the top.
        let latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| unreachable!("constant bounds are valid"));
        Self {
            inner: Mutex::new(Totals {
                latency_us,
                status: BTreeMap::new(),
                errors: [0; ErrorKind::ALL.len()],
            }),
        }
    }

    /// Moves a worker's batch into the totals, leaving the batch empty.
    pub fn merge(&self, batch: &mut Batch) {
        let mut totals = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for us in batch.latency_us.drain(..) {
            totals.latency_us.saturating_record(us);
        }
        for (status, n) in batch.status.drain(..) {
            *totals.status.entry(status).or_insert(0) += n;
        }
        for (total, n) in totals.errors.iter_mut().zip(batch.errors.iter_mut()) {
            *total += std::mem::take(n);
        }
    }

    /// Builds the result; `elapsed` runs from the start to the last finished request.
    pub fn finish(
        &self,
        started_at: Millis,
        elapsed: Duration,
        target_rate: Option<f64>,
        stopped: bool,
    ) -> LoadResult {
        let totals = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let h = &totals.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let responses: u64 = totals.status.values().sum();
        let latency = (!h.is_empty()).then(|| Latency {
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        });
        let errors: BTreeMap<ErrorKind, u64> = ErrorKind::ALL
            .iter()
            .map(|k| (*k, totals.errors[k.index()]))
            .filter(|(_, n)| *n > 0)
            .collect();
        let failed: u64 = errors
            .iter()
            .filter(|(k, _)| **k != ErrorKind::Backlog)
            .map(|(_, n)| n)
            .sum();
        let requests = responses + failed;
        let secs = elapsed.as_secs_f64();
        LoadResult {
            started_at,
            ended_at: started_at + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            requests,
            responses,
            duration_secs: secs,
            rate: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            target_rate,
            latency,
            status_counts: totals.status.clone(),
            errors,
            stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_batches_into_percentiles_and_counts() {
        let rec = Recorder::new();
        let mut a = Batch::default();
        let mut b = Batch::default();
        for i in 1..=100u64 {
            let batch = if i % 2 == 0 { &mut a } else { &mut b };
            batch.response(if i % 4 == 0 { 500 } else { 200 }, Duration::from_millis(i));
        }
        a.error(ErrorKind::Timeout, 3);
        b.error(ErrorKind::Backlog, 5);
        rec.merge(&mut a);
        rec.merge(&mut b);
        let r = rec.finish(0, Duration::from_secs(2), Some(50.0), false);
        assert_eq!(r.responses, 100);
        // Backlog requests were never sent, so they are not in the request count.
        assert_eq!(r.requests, 103);
        assert_eq!(r.status_counts[&200], 75);
        assert_eq!(r.status_counts[&500], 25);
        assert_eq!(r.errors[&ErrorKind::Timeout], 3);
        assert_eq!(r.errors[&ErrorKind::Backlog], 5);
        let l = r.latency.unwrap();
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99_ms - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
        assert!((r.rate - 51.5).abs() < 1e-9);
        assert!((r.rate_error().unwrap() - 0.03).abs() < 1e-9);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"timeout\":3"), "{json}");
        let back: LoadResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(r.summary().contains("[500]\t25 responses"));
    }

    #[test]
    fn no_answers_means_no_percentiles() {
        let rec = Recorder::new();
        let mut batch = Batch::default();
        batch.error(ErrorKind::Connect, 7);
        rec.merge(&mut batch);
        let r = rec.finish(0, Duration::from_secs(1), None, true);
        assert!(r.latency.is_none());
        assert_eq!(r.requests, 7);
        assert!(r.summary().contains("[7]\tconnect"));
    }
}
