//! Runs a [`LoadSpec`]: hey's closed model or a constant-rate open model.
//!
//! Both models end the same way: when the duration is over or the request count is reached no
//! new request starts, and the ones in flight finish (each bounded by its timeout) and count.
//! A [`CancellationToken`] instead stops everything at once; the result is then marked
//! `stopped` and holds what had finished.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::conn::{Client, Conn};
use super::result::{Batch, ErrorKind, LoadResult, Recorder};
use super::spec::{LoadSpec, Model, SpecError};
use crate::domain::now_millis;

/// Upper bound on tickets waiting for a free connection in the open model (16 B each).
/// Past it the target has been stalled so long that more queueing only costs memory.
const MAX_PENDING: usize = 1_000_000;

/// Runs `spec` until its duration or request count is reached, or `stop` is cancelled.
///
/// Errors only when the spec is invalid; everything that goes wrong with the target is counted
/// in the result instead.
pub async fn run(spec: &LoadSpec, stop: CancellationToken) -> Result<LoadResult, SpecError> {
    Ok(Prepared::new(spec)?.run(stop).await)
}

/// A validated spec with its requests and TLS set-up ready, so that every way a spec can be
/// wrong is found before a run is promised (the manager prepares, answers, then runs).
#[derive(Debug)]
pub struct Prepared {
    spec: LoadSpec,
    client: Arc<Client>,
}

impl Prepared {
    /// Validates `spec` and prepares its requests.
    pub fn new(spec: &LoadSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Self {
            client: Arc::new(Client::new(spec)?),
            spec: spec.clone(),
        })
    }

    /// The spec being run.
    pub fn spec(&self) -> &LoadSpec {
        &self.spec
    }

    /// Runs to the end of the spec's duration or request count, or until `stop` is cancelled.
    pub async fn run(&self, stop: CancellationToken) -> LoadResult {
        let spec = &self.spec;
        let recorder = Arc::new(Recorder::new());
        let started_at = now_millis();
        let start = Instant::now();
        let run = Run {
            client: Arc::clone(&self.client),
            recorder: Arc::clone(&recorder),
            start,
            deadline: spec.duration.map(|d| start + d),
            limit: spec.request_limit(),
            timeout: spec.timeout,
            stop: stop.clone(),
        };
        let workers = match spec.request_limit() {
            // More workers than requests would only open idle connections.
            Some(n) => u64::from(spec.concurrency).min(n) as usize,
            None => spec.concurrency as usize,
        };
        match spec.model {
            Model::Closed { per_worker_rate } => closed(run, workers, per_worker_rate).await,
            Model::Open { rate } => open(run, workers, rate).await,
        }
        recorder.finish(
            started_at,
            start.elapsed(),
            spec.max_rate(),
            stop.is_cancelled(),
        )
    }
}

/// What every worker of one run shares.
#[derive(Debug, Clone)]
struct Run {
    client: Arc<Client>,
    recorder: Arc<Recorder>,
    start: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    timeout: Option<Duration>,
    stop: CancellationToken,
}

/// A worker's connection, measurements and reusable timer.
struct Worker {
    run: Run,
    conn: Option<Conn>,
    batch: Batch,
    /// Re-armed per request instead of allocating a timer each time.
    timer: Pin<Box<Sleep>>,
    /// Resolves when the run is stopped. One long-lived future on a per-worker child token:
    /// a fresh `cancelled()` per request would register with the shared token's waiter list
    /// every time, a lock all workers contend on.
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Worker {
    fn new(run: Run) -> Self {
        Self {
            conn: None,
            batch: Batch::default(),
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            stopped: Box::pin(run.stop.child_token().cancelled_owned()),
            run,
        }
    }

    /// Sends one request and records it with latency measured from `since`. Returns false
    /// when the run was stopped meanwhile (the request is then dropped unrecorded).
    async fn request(&mut self, since: Instant) -> bool {
        let timeout = self.run.timeout;
        if let Some(t) = timeout {
            self.timer.as_mut().reset(Instant::now() + t);
        }
        let client = Arc::clone(&self.run.client);
        let outcome = tokio::select! {
            biased;
            () = self.stopped.as_mut() => None,
            r = client.send(&mut self.conn) => Some(r),
            () = self.timer.as_mut(), if timeout.is_some() => Some(Err(ErrorKind::Timeout)),
        };
        match outcome {
            None => {
                self.conn = None;
                false
            }
            Some(Ok(status)) => {
                if self.batch.response(status, since.elapsed()) {
                    self.run.recorder.merge(&mut self.batch);
                }
                true
            }
            Some(Err(kind)) => {
                // A timed-out request may still be on the wire: its connection is unusable.
                self.conn = None;
                self.batch.error(kind, 1);
                true
            }
        }
    }

    /// Sleeps until `at`; false when the run was stopped first.
    async fn sleep_until(&mut self, at: Instant) -> bool {
        if at <= Instant::now() {
            return !self.run.stop.is_cancelled();
        }
        self.timer.as_mut().reset(at);
        tokio::select! {
            biased;
            () = self.stopped.as_mut() => false,
            () = self.timer.as_mut() => true,
        }
    }

    /// The next open-model ticket, or `None` when the run is over or stopped.
    async fn ticket(&mut self, tickets: &mut mpsc::UnboundedReceiver<Instant>) -> Option<Instant> {
        if self.run.stop.is_cancelled() {
            return None;
        }
        tokio::select! {
            biased;
            () = self.stopped.as_mut() => None,
            t = tickets.recv() => t,
        }
    }

    fn finish(mut self) {
        self.run.recorder.merge(&mut self.batch);
    }
}

/// Claims the next request from a shared count; false when the count is used up.
fn claim(issued: &AtomicU64, limit: Option<u64>) -> bool {
    match limit {
        None => true,
        Some(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
    }
}

/// hey's model: each worker sends, waits for the answer, sends again, optionally paced to
/// `per_worker_rate` (like hey's `-q`, a late request does not cause a burst of catch-up).
async fn closed(run: Run, workers: usize, per_worker_rate: Option<f64>) {
    let issued = Arc::new(AtomicU64::new(0));
    let period = per_worker_rate.map(|q| Duration::from_secs_f64(1.0 / q));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let issued = Arc::clone(&issued);
        let mut worker = Worker::new(run.clone());
        set.spawn(async move {
            let mut next = Instant::now();
            loop {
                if let Some(p) = period {
                    if !worker.sleep_until(next).await {
                        break;
                    }
                    let now = Instant::now();
                    next = (next + p).max(now);
                }
                if worker.run.deadline.is_some_and(|d| Instant::now() >= d)
                    || !claim(&issued, worker.run.limit)
                {
                    break;
                }
                if !worker.request(Instant::now()).await {
                    break;
                }
            }
            worker.finish();
        });
    }
    while set.join_next().await.is_some() {}
}

/// Hand-off between the open model's dispatcher and its workers.
#[derive(Debug, Default)]
struct Queue {
    /// Workers waiting for a ticket, most recently idle last: reusing the warmest connection
    /// keeps the number of open connections near what the rate needs.
    idle: Vec<usize>,
    /// Intended send times no worker was free for, oldest first.
    pending: VecDeque<Instant>,
}

/// Constant arrival rate: request i is due at `start + i / rate`. A dispatcher hands each due
/// request (a ticket carrying its intended time) to an idle worker, or queues it when all
/// `workers` connections are busy. Latency runs from the intended time, so time spent queued
/// behind a stalled server is measured, not hidden. A ticket that waited longer than the
/// timeout before any connection was free is not sent and counts as [`ErrorKind::Backlog`].
async fn open(run: Run, workers: usize, rate: f64) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    let mut senders = Vec::with_capacity(workers);
    let mut set = JoinSet::new();
    for id in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .idle
            .push(id);
        set.spawn(open_worker(
            Worker::new(run.clone()),
            id,
            rx,
            Arc::clone(&queue),
        ));
    }
    let dropped = dispatch(&run, rate, &queue, &senders).await;
    // Closing the channels lets idle workers end once the queue is drained.
    drop(senders);
    while set.join_next().await.is_some() {}
    if dropped > 0 {
        let mut batch = Batch::default();
        batch.error(ErrorKind::Backlog, dropped);
        run.recorder.merge(&mut batch);
    }
}

/// Issues tickets on schedule until the run's end; returns how many were dropped because the
/// pending queue was full.
async fn dispatch(
    run: &Run,
    rate: f64,
    queue: &Mutex<Queue>,
    senders: &[mpsc::UnboundedSender<Instant>],
) -> u64 {
    let nanos_per_request = 1e9 / rate;
    let mut dropped = 0;
    let mut timer = Box::pin(tokio::time::sleep_until(run.start));
    let mut i: u64 = 0;
    loop {
        if run.limit.is_some_and(|n| i >= n) {
            break;
        }
        // Computed from the start each time so rounding never accumulates into rate drift.
        let due = run.start + Duration::from_nanos((i as f64 * nanos_per_request) as u64);
        if run.deadline.is_some_and(|d| due >= d) {
            break;
        }
        if due > Instant::now() {
            timer.as_mut().reset(due);
            tokio::select! {
                biased;
                () = run.stop.cancelled() => break,
                () = timer.as_mut() => {}
            }
        } else if run.stop.is_cancelled() {
            break;
        } else {
            // Behind schedule no sleep yields; let the workers run on a busy runtime.
            tokio::task::consume_budget().await;
        }
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        match q.idle.pop() {
            // A closed channel means that worker was stopped; the run is ending anyway.
            Some(worker) => {
                let _ = senders[worker].send(due);
            }
            None if q.pending.len() < MAX_PENDING => q.pending.push_back(due),
            None => dropped += 1,
        }
        drop(q);
        i += 1;
    }
    dropped
}

async fn open_worker(
    mut worker: Worker,
    id: usize,
    mut tickets: mpsc::UnboundedReceiver<Instant>,
    queue: Arc<Mutex<Queue>>,
) {
    let max_wait = worker.run.timeout;
    let mut next = worker.ticket(&mut tickets).await;
    while let Some(due) = next {
        if max_wait.is_some_and(|w| due.elapsed() > w) {
            worker.batch.error(ErrorKind::Backlog, 1);
        } else if !worker.request(due).await {
            break;
        }
        let queued = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            let t = q.pending.pop_front();
            if t.is_none() {
                q.idle.push(id);
            }
            t
        };
        next = match queued {
            Some(due) => Some(due),
            None => worker.ticket(&mut tickets).await,
        };
    }
    worker.finish();
}
