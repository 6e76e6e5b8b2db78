//! [`SimulatedSli`]: the simulator as an [`SliSource`], for the demo and tests.
//!
//! Several simulated services keyed by (namespace, target), each with its own canary
//! effect and a canary weight the caller sets; wall-clock windows map to simulated time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    check_probability, hash_str, invalid, mix_seed, ArmIncrement, CanaryEffect, InvalidSimulation,
    Simulator, Workload,
};
use crate::domain::{CanaryName, Millis, Namespace};
use crate::sli::counters::le_key;
use crate::sli::{ArmCounters, ArmCounts, ArmPair, Counters, SliError, SliSource, SliTarget};

/// One simulated service of [`SimulatedSli`]: what its canary does differently.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProfile {
    /// Traffic, error rate and latency shared by both arms.
    pub workload: Workload,
    /// How the canary differs.
    pub effect: CanaryEffect,
}

/// Cumulative counters of both arms at one simulated step.
#[derive(Debug, Clone, Default)]
struct Cumulative {
    canary: ArmIncrement,
    primary: ArmIncrement,
}

#[derive(Debug)]
struct ServiceState {
    sim: Simulator,
    seed: u64,
    weight: f64,
    /// `history[k]` holds the counters at step `first_step + k` (simulated time
    /// `(first_step + k) · step_s`); older steps fall out of retention.
    history: VecDeque<Cumulative>,
    first_step: u64,
}

impl ServiceState {
    fn last_step(&self) -> u64 {
        self.first_step + self.history.len() as u64 - 1
    }

    /// Simulates forward until `step` is in the history.
    fn advance_to(&mut self, step: u64, step_s: f64, retention: u64) {
        let mut last = self.last_step();
        if step <= last {
            return;
        }
        // A long idle gap: simulate the part that would fall out of retention anyway
        // as one interval, so a late query costs at most `retention` steps.
        if step - last > retention {
            let jump_to = step - retention;
            let mut cum = self.history.back().cloned().unwrap_or_default();
            let span = (jump_to - last) as f64 * step_s;
            let step_counts = self.sim.interval(last as f64 * step_s, span, self.weight);
            cum.canary.add(&step_counts.canary);
            cum.primary.add(&step_counts.primary);
            self.history.clear();
            self.history.push_back(cum);
            self.first_step = jump_to;
            last = jump_to;
        }
        while last < step {
            let mut cum = self.history.back().cloned().unwrap_or_default();
            let step_counts = self.sim.interval(last as f64 * step_s, step_s, self.weight);
            cum.canary.add(&step_counts.canary);
            cum.primary.add(&step_counts.primary);
            self.history.push_back(cum);
            last += 1;
            if self.history.len() as u64 > retention + 1 {
                self.history.pop_front();
                self.first_step += 1;
            }
        }
    }

    fn at(&self, step: u64) -> Option<&Cumulative> {
        step.checked_sub(self.first_step)
            .and_then(|k| self.history.get(k as usize))
    }
}

/// Settings of a [`SimulatedSli`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedSliConfig {
    /// Wall-clock time (Unix ms) at which simulated time 0 starts; counters are zero then.
    pub origin: Millis,
    /// Simulated seconds per real second (60: one real second is one simulated minute).
    pub time_scale: f64,
    /// Simulated seconds per counter step (like a scrape interval).
    pub step: Duration,
    /// How much simulated history the counters keep (like Prometheus' retention).
    pub retention: Duration,
    /// Seed of all services' traffic.
    pub seed: u64,
}

impl SimulatedSliConfig {
    /// Demo defaults: one real second is one simulated minute, 15 s steps, 24 h retention.
    pub fn demo(origin: Millis, seed: u64) -> Self {
        Self {
            origin,
            time_scale: 60.0,
            step: Duration::from_secs(15),
            retention: Duration::from_secs(24 * 3600),
            seed,
        }
    }
}

/// An [`SliSource`] over simulated services, keyed by (namespace, target).
///
/// Behaves like Prometheus over monotone counters: each service's cumulative counters
/// advance lazily one simulated step at a time, and `window(start, end)` is
/// `cum(end) − cum(start)` at step resolution, so windows add up and a repeated query of
/// the same window returns the same counts.
///
/// It has no templates: [`SliSource::check_template`] accepts any template name, since
/// the simulator produces the counts a template would query.
#[derive(Debug)]
pub struct SimulatedSli {
    config: SimulatedSliConfig,
    step_s: f64,
    retention_steps: u64,
    services: Mutex<HashMap<(Namespace, CanaryName), ServiceState>>,
}

impl SimulatedSli {
    /// A simulator with no services yet.
    pub fn new(config: SimulatedSliConfig) -> Result<Self, InvalidSimulation> {
        if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
            return Err(invalid(
                "time_scale",
                format!("must be > 0, got {}", config.time_scale),
            ));
        }
        let step_s = config.step.as_secs_f64();
        if step_s <= 0.0 {
            return Err(invalid("step", "must be positive"));
        }
        let retention_steps = (config.retention.as_secs_f64() / step_s).ceil().max(1.0) as u64;
        Ok(Self {
            config,
            step_s,
            retention_steps,
            services: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Namespace, CanaryName), ServiceState>> {
        // A panic while holding the lock cannot leave counters half-written in a way that
        // matters for a simulation, so a poisoned lock is still usable.
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) a simulated service; its canary weight starts at 0.
    pub fn add_service(
        &self,
        namespace: &Namespace,
        target: &CanaryName,
        profile: ServiceProfile,
    ) -> Result<(), InvalidSimulation> {
        let seed = hash_str(
            hash_str(self.config.seed, namespace.as_str()),
            target.as_str(),
        );
        let sim = Simulator::new(profile.workload, profile.effect, seed)?;
        let state = ServiceState {
            sim,
            seed,
            weight: 0.0,
            history: VecDeque::from([Cumulative::default()]),
            first_step: 0,
        };
        self.lock()
            .insert((namespace.clone(), target.clone()), state);
        Ok(())
    }

    /// Sets the canary weight from now on (as the demo's Flagger would).
    pub fn set_weight(
        &self,
        namespace: &Namespace,
        target: &CanaryName,
        weight: f64,
    ) -> Result<(), InvalidSimulation> {
        self.set_weight_at(namespace, target, weight, crate::domain::now_millis())
    }

    /// Sets the canary weight from wall-clock time `at`: the counters are first advanced
    /// to `at` with the old weight, so earlier windows keep their counts.
    pub fn set_weight_at(
        &self,
        namespace: &Namespace,
        target: &CanaryName,
        weight: f64,
        at: Millis,
    ) -> Result<(), InvalidSimulation> {
        check_probability("weight", weight)?;
        let step = self.step_of(at);
        let mut services = self.lock();
        let state = services
            .get_mut(&(namespace.clone(), target.clone()))
            .ok_or_else(|| {
                invalid(
                    "service",
                    format!("no simulated service {namespace}/{target}"),
                )
            })?;
        state.advance_to(step, self.step_s, self.retention_steps);
        state.weight = weight;
        Ok(())
    }

    /// The step whose counters stand for wall-clock time `t` (clamped at the origin).
    fn step_of(&self, t: Millis) -> u64 {
        let real_s = (t.saturating_sub(self.config.origin)).max(0) as f64 / 1000.0;
        (real_s * self.config.time_scale / self.step_s).floor() as u64
    }
}

fn arm_counts(inc: &ArmIncrement, bounds: &[f64]) -> ArmCounts {
    ArmCounts {
        requests: inc.requests as f64,
        errors: inc.errors as f64,
        buckets: inc.cumulative(bounds),
    }
}

fn difference(later: &ArmIncrement, earlier: &ArmIncrement) -> ArmIncrement {
    ArmIncrement {
        requests: later.requests - earlier.requests,
        errors: later.errors - earlier.errors,
        buckets: later
            .buckets
            .iter()
            .enumerate()
            .map(|(i, c)| c - earlier.buckets.get(i).copied().unwrap_or(0))
            .collect(),
    }
}

/// One arm's cumulative counters as a single series (the simulated service is one process
/// that never restarts); like a real exporter it has no request series before its first
/// request and no error series before its first error.
fn arm_counters(cumulative: &ArmIncrement, bounds: &[f64], sampled_at: Millis) -> ArmCounters {
    const SERIES: &str = "instance=simulator";
    if cumulative.requests == 0 {
        return ArmCounters::default();
    }
    let one = |v: f64| [(SERIES.to_owned(), v)].into_iter().collect();
    ArmCounters {
        sampled_at: Some(sampled_at),
        requests: one(cumulative.requests as f64),
        errors: if cumulative.errors > 0 {
            one(cumulative.errors as f64)
        } else {
            Default::default()
        },
        buckets: cumulative
            .cumulative(bounds)
            .into_iter()
            .map(|b| (le_key(b.le), one(b.count)))
            .collect(),
    }
}

impl SimulatedSli {
    /// Wall-clock time of a simulated step: when its counters were "scraped".
    fn time_of(&self, step: u64) -> Millis {
        self.config.origin + (step as f64 * self.step_s / self.config.time_scale * 1000.0) as Millis
    }

    /// Counts of both arms over `(start, end]` at step resolution (`cum(end) − cum(start)`).
    pub async fn window(
        &self,
        target: &SliTarget,
        start: Millis,
        end: Millis,
    ) -> Result<ArmPair, SliError> {
        if end < start {
            return Err(SliError::Query(format!(
                "window ends ({end}) before it starts ({start})"
            )));
        }
        if end <= self.config.origin {
            return Err(SliError::NoData {
                arm: "canary",
                detail: "the window ends before the simulation started".into(),
            });
        }
        let (from, to) = (self.step_of(start), self.step_of(end));
        let mut services = self.lock();
        let state = services
            .get_mut(&(target.namespace.clone(), target.target.clone()))
            .ok_or_else(|| unknown_service("canary", target))?;
        state.advance_to(to, self.step_s, self.retention_steps);
        let (Some(early), Some(late)) = (state.at(from), state.at(to)) else {
            return Err(SliError::NoData {
                arm: "canary",
                detail: "the window starts before the simulator's retention".into(),
            });
        };
        let bounds = &state.sim.workload().bucket_bounds;
        Ok(ArmPair {
            canary: arm_counts(&difference(&late.canary, &early.canary), bounds),
            primary: arm_counts(&difference(&late.primary, &early.primary), bounds),
        })
    }
}

#[async_trait]
impl SliSource for SimulatedSli {
    async fn counters(&self, target: &SliTarget, at: Millis) -> Result<Counters, SliError> {
        if at <= self.config.origin {
            return Err(SliError::NoData {
                arm: "canary",
                detail: "the reading is before the simulation started".into(),
            });
        }
        let step = self.step_of(at);
        let sampled_at = self.time_of(step);
        let mut services = self.lock();
        let state = services
            .get_mut(&(target.namespace.clone(), target.target.clone()))
            .ok_or_else(|| unknown_service("primary", target))?;
        state.advance_to(step, self.step_s, self.retention_steps);
        let now = state.at(step).ok_or_else(|| SliError::NoData {
            arm: "primary",
            detail: "the reading is before the simulator's retention".into(),
        })?;
        let bounds = &state.sim.workload().bucket_bounds;
        Ok(Counters {
            read_at: at,
            canary: arm_counters(&now.canary, bounds, sampled_at),
            primary: arm_counters(&now.primary, bounds, sampled_at),
        })
    }

    /// An independent, seeded draw of the primary serving all traffic (as before a
    /// canary starts) over `lookback` scaled to simulated time, in `step` intervals; the
    /// same `(end, lookback, step)` always gives the same counts.
    async fn primary_history(
        &self,
        target: &SliTarget,
        end: Millis,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<ArmCounts>, SliError> {
        let services = self.lock();
        let state = services
            .get(&(target.namespace.clone(), target.target.clone()))
            .ok_or_else(|| unknown_service("primary", target))?;
        if step.is_zero() || lookback < step {
            return Err(SliError::Query(format!(
                "the history step ({step:?}) must be positive and at most the look-back ({lookback:?})"
            )));
        }
        let seed = mix_seed(
            mix_seed(state.seed, end as u64),
            lookback.as_millis() as u64,
        );
        let mut sim = Simulator::new(state.sim.workload().clone(), CanaryEffect::none(), seed)
            .map_err(|e| SliError::Query(e.to_string()))?;
        let step_s = step.as_secs_f64() * self.config.time_scale;
        let intervals = (lookback.as_secs_f64() / step.as_secs_f64()).floor() as u64;
        let end_s =
            (end.saturating_sub(self.config.origin)) as f64 / 1000.0 * self.config.time_scale;
        let bounds = &state.sim.workload().bucket_bounds;
        Ok((0..intervals)
            .map(|i| {
                let start_s = end_s - (intervals - i) as f64 * step_s;
                arm_counts(&sim.interval(start_s, step_s, 0.0).primary, bounds)
            })
            .collect())
    }

    async fn ready(&self) -> Result<(), SliError> {
        Ok(())
    }

    /// Accepts any template name: the simulator has no queries to render.
    fn check_template(&self, _target: &SliTarget) -> Result<(), SliError> {
        Ok(())
    }
}

/// A hook asked about a service the simulation does not have.
fn unknown_service(arm: &'static str, target: &SliTarget) -> SliError {
    SliError::NoData {
        arm,
        detail: format!(
            "no simulated service {}/{}",
            target.namespace, target.target
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sli::simulator::*;

    fn demo_source(seed: u64) -> (SimulatedSli, SliTarget) {
        let sli = SimulatedSli::new(SimulatedSliConfig::demo(1_000_000, seed))
            .unwrap_or_else(|e| panic!("{e}"));
        let target = SliTarget {
            namespace: Namespace::parse("test").unwrap_or_else(|e| panic!("{e}")),
            target: CanaryName::parse("podinfo").unwrap_or_else(|e| panic!("{e}")),
            template: "istio".into(),
            variables: Default::default(),
        };
        let profile = ServiceProfile {
            workload: Workload::reference(),
            effect: CanaryEffect::none(),
        };
        sli.add_service(&target.namespace, &target.target, profile)
            .unwrap_or_else(|e| panic!("{e}"));
        sli.set_weight_at(&target.namespace, &target.target, 0.2, 1_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        (sli, target)
    }

    fn add_pair(a: &ArmPair, b: &ArmPair) -> (f64, f64, Vec<f64>) {
        let buckets = a
            .canary
            .buckets
            .iter()
            .zip(&b.canary.buckets)
            .map(|(x, y)| x.count + y.count)
            .collect();
        (
            a.canary.requests + b.canary.requests,
            a.primary.errors + b.primary.errors,
            buckets,
        )
    }

    #[tokio::test]
    async fn windows_add_up_and_repeat_exactly() {
        let (sli, target) = demo_source(9);
        let (a, b, c) = (1_000_000, 1_030_000, 1_075_000);
        let ab = sli
            .window(&target, a, b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let bc = sli
            .window(&target, b, c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ac = sli
            .window(&target, a, c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let summed = add_pair(&ab, &bc);
        let whole_buckets: Vec<f64> = ac.canary.buckets.iter().map(|b| b.count).collect();
        assert_eq!(
            summed,
            (ac.canary.requests, ac.primary.errors, whole_buckets)
        );
        // 75 real seconds at scale 60 = 75 simulated minutes at 10 canary requests/s.
        assert!(
            (ac.canary.requests / 45_000.0 - 1.0).abs() < 0.03,
            "{}",
            ac.canary.requests
        );
        let again = sli
            .window(&target, a, b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, ab);
    }

    #[tokio::test]
    async fn differenced_counters_equal_the_window_and_stale_readings_say_so() {
        let (sli, target) = demo_source(3);
        let (a, b) = (1_010_000, 1_070_000);
        let first = sli.counters(&target, a).await.unwrap();
        let second = sli.counters(&target, b).await.unwrap();
        let window = sli.window(&target, a, b).await.unwrap();
        match second.since(&first) {
            crate::sli::Increments::Counts(pair) => assert_eq!(pair, window),
            other => panic!("expected counts, got {other:?}"),
        }
        // Within one simulated step nothing new was "scraped".
        let same_step = sli.counters(&target, b + 1).await.unwrap();
        assert!(matches!(
            same_step.since(&second),
            crate::sli::Increments::NoNewSample { .. }
        ));
    }

    #[tokio::test]
    async fn query_order_does_not_change_counts() {
        let (first, target) = demo_source(4);
        let (second, _) = demo_source(4);
        let late_then_early = (
            first.window(&target, 1_050_000, 1_060_000).await.ok(),
            first.window(&target, 1_010_000, 1_020_000).await.ok(),
        );
        let early = second.window(&target, 1_010_000, 1_020_000).await.ok();
        let late = second.window(&target, 1_050_000, 1_060_000).await.ok();
        assert_eq!(late_then_early, (late, early));
    }

    #[tokio::test]
    async fn weight_changes_apply_from_their_time_on() {
        let (sli, target) = demo_source(2);
        sli.set_weight_at(&target.namespace, &target.target, 0.0, 1_060_000)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = sli
            .window(&target, 1_000_000, 1_060_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let after = sli
            .window(&target, 1_060_000, 1_120_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(before.canary.requests > 30_000.0);
        assert_eq!(after.canary.requests, 0.0);
        assert!(after.primary.requests > 170_000.0);
    }

    #[tokio::test]
    async fn history_is_reproducible_and_unknown_services_have_no_data() {
        let (sli, target) = demo_source(6);
        let (minute, second) = (Duration::from_secs(60), Duration::from_secs(1));
        let one = sli
            .primary_history(&target, 1_100_000, minute, second)
            .await
            .ok();
        let two = sli
            .primary_history(&target, 1_100_000, minute, second)
            .await
            .ok();
        assert_eq!(one.as_ref().map(Vec::len), Some(60));
        assert_eq!(one, two);
        assert!(one
            .iter()
            .flatten()
            .all(|c| c.requests > 0.0 && !c.buckets.is_empty()));
        assert!(matches!(
            sli.primary_history(&target, 1_100_000, second, minute)
                .await,
            Err(SliError::Query(_))
        ));
        let other = SliTarget {
            target: CanaryName::parse("other").unwrap_or_else(|e| panic!("{e}")),
            ..target.clone()
        };
        assert!(matches!(
            sli.window(&other, 1_000_000, 1_010_000).await,
            Err(SliError::NoData { .. })
        ));
        assert!(matches!(
            sli.window(&target, 1_010_000, 1_000_000).await,
            Err(SliError::Query(_))
        ));
        assert!(sli.ready().await.is_ok());
        assert!(sli.check_template(&target).is_ok());
    }

    #[tokio::test]
    async fn old_windows_fall_out_of_retention() {
        let config = SimulatedSliConfig {
            retention: Duration::from_secs(3600),
            ..SimulatedSliConfig::demo(0, 1)
        };
        let sli = SimulatedSli::new(config).unwrap_or_else(|e| panic!("{e}"));
        let (_, target) = demo_source(1);
        let profile = ServiceProfile {
            workload: Workload::reference(),
            effect: CanaryEffect::none(),
        };
        sli.add_service(&target.namespace, &target.target, profile)
            .unwrap_or_else(|e| panic!("{e}"));
        // Two simulated hours later the first minute is gone, the last one is there.
        assert!(sli.window(&target, 0, 10_000).await.is_ok());
        assert!(sli.window(&target, 110_000, 120_000).await.is_ok());
        assert!(matches!(
            sli.window(&target, 0, 1_000).await,
            Err(SliError::NoData { .. })
        ));
    }
}
