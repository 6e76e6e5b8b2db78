//! The real SLI source: instant PromQL queries rendered from [`TemplateSet`] templates.
//!
//! One window is six instant queries (requests, errors, latency buckets for each arm), all
//! sent at once and each bounded by the configured timeout, evaluated at the window's end
//! with `{{ interval }}` = end − start.
//!
//! Missing series are not all alike:
//! - **primary, requests query empty**: [`SliError::NoData`]. There is no baseline to
//!   compare with, and a template whose labels match nothing must not look like "all good".
//! - **canary, requests query empty**: 0 requests. Mesh and ingress metrics only appear after
//!   a workload's first request, so "no series" is how a canary that has not received traffic
//!   yet looks. The judge never promotes before the canary's minimum request count, so a
//!   canary without traffic still never passes, and the wait reason ("need N more canary
//!   requests") makes the missing traffic visible.
//! - **errors query empty** (either arm): 0 errors; error series appear on the first error.
//! - **latency query empty**: no buckets; the latency test then has nothing to judge.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_http_query::{Client, Error as PromError};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};

use super::templates::{Arm, LatencyUnit, RenderInput, Template, TemplateError, TemplateSet};
use super::{ArmCounts, ArmPair, SliError, SliSource, SliTarget};
use crate::domain::Millis;
use crate::judge::latency::Bucket;

/// One sample of an instant query: the series' labels and its value.
type Sample = (HashMap<String, String>, f64);

/// One series of a range query: its labels and its samples as (Unix seconds, value).
type Series = (HashMap<String, String>, Vec<(i64, f64)>);

/// How to authenticate to Prometheus (or the proxy in front of it).
#[derive(Clone)]
pub enum PrometheusAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// HTTP basic auth.
    Basic {
        username: String,
        password: SecretString,
    },
}

impl fmt::Debug for PrometheusAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials, not even in debug logs.
        match self {
            PrometheusAuth::Bearer(_) => f.write_str("Bearer(***)"),
            PrometheusAuth::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: *** }}")
            }
        }
    }
}

/// Where Prometheus is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix is kept).
    pub url: String,
    /// Bound on each query; a slower answer is [`SliError::Timeout`].
    pub timeout: Duration,
    pub auth: Option<PrometheusAuth>,
}

/// Called after every Prometheus request with its kind (`requests`, `errors`,
/// `latency_buckets`, `ready`), how long it took and whether it succeeded, so the service
/// can export a query-latency histogram without this module knowing about metrics.
pub type QueryObserver = Arc<dyn Fn(&str, Duration, bool) + Send + Sync>;

/// [`SliSource`] backed by a Prometheus server.
#[derive(Clone)]
pub struct PrometheusSli {
    client: Client,
    timeout: Duration,
    templates: Arc<TemplateSet>,
    observer: Option<QueryObserver>,
}

impl fmt::Debug for PrometheusSli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSli")
            .field("url", &self.client.base_url().as_str())
            .field("timeout", &self.timeout)
            .field("templates", &self.templates.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The three query kinds, as reported to the observer.
const KINDS: [&str; 3] = ["requests", "errors", "latency_buckets"];

impl PrometheusSli {
    /// Builds the client. Fails on an invalid URL or a credential that cannot be sent as
    /// a header; nothing is contacted yet.
    pub fn new(config: PrometheusConfig, templates: TemplateSet) -> Result<Self, SliError> {
        if config.timeout.is_zero() {
            return Err(SliError::Query(
                "the Prometheus timeout must be above 0".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        match &config.auth {
            None => {}
            Some(PrometheusAuth::Bearer(token)) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                        .map_err(|_| {
                            SliError::Query(
                                "the Prometheus bearer token contains characters not allowed in a header"
                                    .into(),
                            )
                        })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            Some(PrometheusAuth::Basic { username, password }) => {
                use base64::Engine as _;
                let raw = format!("{username}:{}", password.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| SliError::Query("invalid basic-auth header".into()))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(config.timeout)
            // A backstop only: each query is also bounded by tokio's timer, which is what
            // produces SliError::Timeout.
            .timeout(config.timeout + Duration::from_secs(1))
            .build()
            .map_err(|e| SliError::Query(format!("cannot build the HTTP client: {e}")))?;
        let client = Client::from(http, &config.url).map_err(|e| {
            SliError::Query(format!("invalid Prometheus URL {:?}: {e}", config.url))
        })?;
        Ok(Self {
            client,
            timeout: config.timeout,
            templates: Arc::new(templates),
            observer: None,
        })
    }

    /// Reports every query's latency and outcome to `observer`.
    pub fn with_observer(mut self, observer: QueryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The templates this source renders.
    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    fn observe(&self, kind: &str, started: Instant, ok: bool) {
        if let Some(observer) = &self.observer {
            observer(kind, started.elapsed(), ok);
        }
    }

    fn template(&self, target: &SliTarget) -> Result<&Template, SliError> {
        self.templates
            .get(&target.template)
            .map_err(|_| SliError::UnknownTemplate(target.template.clone()))
    }

    /// Runs one instant query at `at` and returns its samples as (labels, value).
    async fn instant(
        &self,
        kind: &'static str,
        query: &str,
        at: Millis,
    ) -> Result<Vec<(HashMap<String, String>, f64)>, SliError> {
        let started = Instant::now();
        let request = self
            .client
            .query(query)
            // Prometheus accepts fractional seconds; `at()` would round to whole seconds.
            .query("time", format_seconds(at))
            // Ask Prometheus to give up too, so an abandoned query does not keep it busy.
            .timeout(i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX))
            // POST: templates can be long and proxies limit URL length.
            .post();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(SliError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(map_error(e, self.timeout)),
            Ok(Ok(response)) => {
                let (data, _) = response.into_inner();
                match data.into_vector() {
                    Ok(vector) => Ok(vector
                        .into_iter()
                        .map(|v| {
                            let (labels, sample) = v.into_inner();
                            (labels, sample.value())
                        })
                        .collect()),
                    Err(other) => Err(SliError::Query(format!(
                        "{kind} query must return an instant vector, got {}",
                        data_kind(&other)
                    ))),
                }
            }
        };
        self.observe(kind, started, result.is_ok());
        result
    }

    /// Runs one range query and returns its series with their samples.
    async fn range(
        &self,
        kind: &'static str,
        query: &str,
        start_s: i64,
        end_s: i64,
        step_s: f64,
    ) -> Result<Vec<Series>, SliError> {
        let started = Instant::now();
        let request = self
            .client
            .query_range(query, start_s, end_s, step_s)
            .timeout(i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX))
            .post();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(SliError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(map_error(e, self.timeout)),
            Ok(Ok(response)) => {
                let (data, _) = response.into_inner();
                match data.into_matrix() {
                    Ok(matrix) => Ok(matrix
                        .into_iter()
                        .map(|series| {
                            let (labels, samples) = series.into_inner();
                            let points = samples
                                .iter()
                                .map(|s| (s.timestamp().round() as i64, s.value()))
                                .collect();
                            (labels, points)
                        })
                        .collect()),
                    Err(other) => Err(SliError::Query(format!(
                        "{kind} range query must return a matrix, got {}",
                        data_kind(&other)
                    ))),
                }
            }
        };
        self.observe(kind, started, result.is_ok());
        result
    }

    /// The primary's per-interval counts: the template rendered with `{{ interval }}` =
    /// `step`, evaluated every `step` over the look-back (three range queries).
    async fn history(
        &self,
        template: &Template,
        target: &SliTarget,
        end: Millis,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<ArmCounts>, SliError> {
        let input = RenderInput {
            namespace: &target.namespace,
            target: &target.target,
            interval: step,
            variables: &target.variables,
        };
        let queries = template
            .render(Arm::Primary, &input)
            .map_err(|e| template_error(template.name(), e))?;
        let step_s = step.as_secs() as i64;
        let end_s = end.div_euclid(1000);
        let intervals = (lookback.as_secs() as i64 / step_s).max(1);
        let start_s = end_s - (intervals - 1) * step_s;
        let range = |kind, query| self.range(kind, query, start_s, end_s, step_s as f64);
        let (requests, errors, buckets) = tokio::try_join!(
            range(KINDS[0], &queries.requests),
            range(KINDS[1], &queries.errors),
            range(KINDS[2], &queries.latency_buckets),
        )?;
        let arm = Arm::Primary;
        let single = |kind: &str, series: Vec<Series>| {
            match series.len() {
                0 => Ok(HashMap::new()),
                1 => series
                    .into_iter()
                    .flat_map(|(_, points)| points)
                    .map(|(t, v)| check_count(arm, kind, v).map(|v| (t, v)))
                    .collect::<Result<HashMap<i64, f64>, SliError>>(),
                n => Err(SliError::Query(format!(
                    "the {arm} {kind} query returned {n} series; it must sum them into one (wrap it in sum(…))"
                ))),
            }
        };
        let requests = single("requests", requests)?;
        let errors = single("errors", errors)?;
        let mut by_time: std::collections::BTreeMap<i64, Vec<Sample>> =
            std::collections::BTreeMap::new();
        for (labels, points) in buckets {
            for (t, v) in points {
                by_time.entry(t).or_default().push((labels.clone(), v));
            }
        }
        let mut times: Vec<i64> = requests.keys().copied().collect();
        times.sort_unstable();
        times
            .into_iter()
            .map(|t| {
                Ok(ArmCounts {
                    requests: requests.get(&t).copied().unwrap_or(0.0),
                    errors: errors.get(&t).copied().unwrap_or(0.0),
                    buckets: parse_buckets(
                        arm,
                        template.latency_unit(),
                        by_time.remove(&t).unwrap_or_default(),
                    )?,
                })
            })
            .collect()
    }

    /// Counts for one arm. `required`: whether an empty requests query is NoData (see the
    /// module docs) rather than zero traffic.
    async fn arm(
        &self,
        template: &Template,
        target: &SliTarget,
        arm: Arm,
        interval: Duration,
        end: Millis,
        required: bool,
    ) -> Result<ArmCounts, SliError> {
        let input = RenderInput {
            namespace: &target.namespace,
            target: &target.target,
            interval,
            variables: &target.variables,
        };
        let queries = template
            .render(arm, &input)
            .map_err(|e| template_error(template.name(), e))?;
        let (requests, errors, buckets) = tokio::try_join!(
            self.instant(KINDS[0], &queries.requests, end),
            self.instant(KINDS[1], &queries.errors, end),
            self.instant(KINDS[2], &queries.latency_buckets, end),
        )?;
        let requests = match single_value(arm, "requests", requests)? {
            Some(v) => v,
            None if required => {
                return Err(SliError::NoData {
                    arm: arm.as_str(),
                    detail: format!(
                        "template {:?} found no request series for {}/{} over {}ms; check that the workload serves traffic and that the template's labels match it",
                        template.name(),
                        target.namespace,
                        workload_name(target, arm),
                        interval.as_millis()
                    ),
                })
            }
            None => 0.0,
        };
        let errors = single_value(arm, "errors", errors)?.unwrap_or(0.0);
        let buckets = parse_buckets(arm, template.latency_unit(), buckets)?;
        Ok(ArmCounts {
            requests,
            errors,
            buckets,
        })
    }
}

#[async_trait]
impl SliSource for PrometheusSli {
    async fn window(
        &self,
        target: &SliTarget,
        start: Millis,
        end: Millis,
    ) -> Result<ArmPair, SliError> {
        let template = self.template(target)?;
        let interval = window_length(start, end)?;
        let (canary, primary) = tokio::try_join!(
            self.arm(template, target, Arm::Canary, interval, end, false),
            self.arm(template, target, Arm::Primary, interval, end, true),
        )?;
        Ok(ArmPair { canary, primary })
    }

    async fn primary_history(
        &self,
        target: &SliTarget,
        end: Millis,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<ArmCounts>, SliError> {
        let template = self.template(target)?;
        if step.as_secs() == 0 || lookback < step {
            return Err(SliError::Query(format!(
                "the history step must be at least 1s and at most the look-back, got {step:?} over {lookback:?}"
            )));
        }
        self.history(template, target, end, lookback, step).await
    }

    async fn ready(&self) -> Result<(), SliError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.client.is_server_ready()).await {
            Err(_) => Err(SliError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(map_error(e, self.timeout)),
            Ok(Ok(_)) => Ok(()),
        };
        self.observe("ready", started, result.is_ok());
        result
    }

    fn check_template(&self, target: &SliTarget) -> Result<(), SliError> {
        let template = self.template(target)?;
        let input = RenderInput {
            namespace: &target.namespace,
            target: &target.target,
            interval: Duration::from_secs(60),
            variables: &target.variables,
        };
        for arm in [Arm::Canary, Arm::Primary] {
            template
                .render(arm, &input)
                .map_err(|e| template_error(template.name(), e))?;
        }
        Ok(())
    }
}

fn workload_name(target: &SliTarget, arm: Arm) -> String {
    match arm {
        Arm::Canary => target.target.to_string(),
        Arm::Primary => format!("{}-primary", target.target),
    }
}

fn template_error(name: &str, e: TemplateError) -> SliError {
    match e {
        TemplateError::NotFound(n) => SliError::UnknownTemplate(n),
        other => SliError::Template {
            template: name.to_owned(),
            why: other.to_string(),
        },
    }
}

/// The window `(start, end]` as a duration; it must be non-empty.
fn window_length(start: Millis, end: Millis) -> Result<Duration, SliError> {
    match end.checked_sub(start) {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms.unsigned_abs())),
        _ => Err(SliError::Query(format!(
            "empty window: start {start} is not before end {end}"
        ))),
    }
}

/// Unix milliseconds as the decimal seconds Prometheus' `time` parameter takes.
fn format_seconds(ms: Millis) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn data_kind(data: &prometheus_http_query::response::Data) -> &'static str {
    use prometheus_http_query::response::Data;
    match data {
        Data::Vector(_) => "a vector",
        Data::Matrix(_) => "a range vector",
        Data::Scalar(_) => "a scalar",
    }
}

/// The one value of a summed query, `None` when no series matched.
fn single_value(
    arm: Arm,
    kind: &str,
    samples: Vec<(HashMap<String, String>, f64)>,
) -> Result<Option<f64>, SliError> {
    match samples.as_slice() {
        [] => Ok(None),
        [(_, value)] => check_count(arm, kind, *value).map(Some),
        many => Err(SliError::Query(format!(
            "the {arm} {kind} query returned {} series; it must sum them into one (wrap it in sum(…))",
            many.len()
        ))),
    }
}

/// Counts over a window are finite and not negative. `increase()` never goes below zero,
/// so anything else means the template computes something other than a count.
fn check_count(arm: Arm, kind: &str, value: f64) -> Result<f64, SliError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(SliError::Query(format!(
            "the {arm} {kind} query returned {value}, not a count"
        )))
    }
}

/// Turns `sum by (le)` samples into sorted cumulative buckets in seconds ending at `+Inf`.
fn parse_buckets(
    arm: Arm,
    unit: LatencyUnit,
    samples: Vec<(HashMap<String, String>, f64)>,
) -> Result<Vec<Bucket>, SliError> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut buckets = Vec::with_capacity(samples.len());
    for (labels, count) in samples {
        let raw = labels.get("le").ok_or_else(|| {
            SliError::Query(format!(
                "the {arm} latency_buckets query returned a series without an `le` label; aggregate it with sum by (le)"
            ))
        })?;
        let le = parse_le(raw).ok_or_else(|| {
            SliError::Query(format!(
                "the {arm} latency bucket le={raw:?} is not a number"
            ))
        })?;
        let count = check_count(arm, "latency_buckets", count)?;
        buckets.push(Bucket {
            le: if le.is_infinite() {
                le
            } else {
                unit.to_seconds(le)
            },
            count,
        });
    }
    buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
    // The same boundary can be spelled two ways by different exporters ("0.1" and "0.10");
    // `sum by (le)` keeps them apart, so merge them here.
    buckets.dedup_by(|later, earlier| {
        if later.le == earlier.le {
            earlier.count += later.count;
            true
        } else {
            false
        }
    });
    match buckets.last() {
        Some(last) if last.le.is_infinite() => {}
        _ => {
            return Err(SliError::Query(format!(
            "the {arm} latency buckets lack the +Inf bucket; is the query over a *_bucket metric?"
        )))
        }
    }
    // increase() extrapolates each bucket series on its own, so a bucket can come out a
    // hair below the one before it; a cumulative histogram cannot decrease.
    let mut running = 0.0_f64;
    for bucket in &mut buckets {
        running = running.max(bucket.count);
        bucket.count = running;
    }
    Ok(buckets)
}

fn parse_le(raw: &str) -> Option<f64> {
    match raw.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        other => other.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// Sorts a client error into the cases a webhook reports differently.
fn map_error(error: PromError, timeout: Duration) -> SliError {
    match error {
        PromError::Prometheus(e) => {
            if e.is_timeout() || e.is_canceled() {
                SliError::Timeout(timeout)
            } else if e.is_unavailable() {
                SliError::Unreachable(format!("Prometheus is unavailable: {}", e.message()))
            } else {
                SliError::Query(e.message().to_owned())
            }
        }
        PromError::Client(e) => {
            let message = e.to_string();
            match e.inner() {
                Some(inner) if inner.is_timeout() => SliError::Timeout(timeout),
                Some(inner) if inner.is_connect() => SliError::Unreachable(error_chain(inner)),
                Some(inner) => match inner.status() {
                    Some(status) if status.as_u16() == 401 || status.as_u16() == 403 => {
                        SliError::Query(format!(
                            "Prometheus refused the credentials (HTTP {status})"
                        ))
                    }
                    Some(status) if status.is_server_error() => SliError::Unreachable(format!(
                        "Prometheus (or a proxy in front of it) answered HTTP {status}"
                    )),
                    Some(status) => SliError::Query(format!("{message}: HTTP {status}")),
                    // Sending failed after connecting (reset, closed early): still "cannot
                    // talk to Prometheus", not a problem with the query.
                    None if inner.is_request() || inner.is_body() => {
                        SliError::Unreachable(error_chain(inner))
                    }
                    None => SliError::Query(format!("{message}: {}", error_chain(inner))),
                },
                None => SliError::Query(message),
            }
        }
        other => SliError::Query(other.to_string()),
    }
}

/// An error with its causes, e.g. "error sending request: … Connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(le: &str, count: f64) -> (HashMap<String, String>, f64) {
        (HashMap::from([("le".to_string(), le.to_string())]), count)
    }

    #[test]
    fn buckets_are_sorted_converted_and_monotone() {
        let parsed = parse_buckets(
            Arm::Canary,
            LatencyUnit::Milliseconds,
            vec![
                sample("+Inf", 100.0),
                sample("250", 90.0),
                sample("25", 80.0),
                sample("100", 79.5),
            ],
        )
        .unwrap();
        let les: Vec<f64> = parsed.iter().map(|b| b.le).collect();
        assert_eq!(les, [0.025, 0.1, 0.25, f64::INFINITY]);
        let counts: Vec<f64> = parsed.iter().map(|b| b.count).collect();
        assert_eq!(counts, [80.0, 80.0, 90.0, 100.0]);
    }

    #[test]
    fn duplicate_boundaries_are_merged() {
        let parsed = parse_buckets(
            Arm::Primary,
            LatencyUnit::Seconds,
            vec![sample("0.1", 3.0), sample("0.10", 2.0), sample("+Inf", 9.0)],
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].count, 5.0);
    }

    #[test]
    fn buckets_without_inf_or_le_are_refused() {
        let no_inf = parse_buckets(Arm::Canary, LatencyUnit::Seconds, vec![sample("0.1", 1.0)]);
        assert!(matches!(no_inf, Err(SliError::Query(m)) if m.contains("+Inf")));
        let no_le = parse_buckets(
            Arm::Canary,
            LatencyUnit::Seconds,
            vec![(HashMap::new(), 1.0)],
        );
        assert!(matches!(no_le, Err(SliError::Query(m)) if m.contains("`le`")));
        let bad_le = parse_buckets(Arm::Canary, LatencyUnit::Seconds, vec![sample("fast", 1.0)]);
        assert!(matches!(bad_le, Err(SliError::Query(_))));
        assert!(parse_buckets(Arm::Canary, LatencyUnit::Seconds, vec![])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn single_value_distinguishes_no_series_from_zero() {
        assert_eq!(single_value(Arm::Canary, "requests", vec![]).unwrap(), None);
        assert_eq!(
            single_value(Arm::Canary, "requests", vec![(HashMap::new(), 0.0)]).unwrap(),
            Some(0.0)
        );
        let two = vec![(HashMap::new(), 1.0), (HashMap::new(), 2.0)];
        assert!(matches!(
            single_value(Arm::Canary, "requests", two),
            Err(SliError::Query(m)) if m.contains("2 series")
        ));
        assert!(single_value(Arm::Canary, "requests", vec![(HashMap::new(), f64::NAN)]).is_err());
        assert!(single_value(Arm::Canary, "requests", vec![(HashMap::new(), -1.0)]).is_err());
    }

    #[test]
    fn time_and_window_formatting() {
        assert_eq!(format_seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_seconds(5), "0.005");
        assert_eq!(
            window_length(1_000, 62_234).unwrap(),
            Duration::from_millis(61_234)
        );
        assert!(window_length(5, 5).is_err());
        assert!(window_length(6, 5).is_err());
    }

    #[test]
    fn credentials_are_not_printed() {
        let auth = PrometheusAuth::Basic {
            username: "u".into(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let bearer = PrometheusAuth::Bearer(SecretString::from("tok3n"));
        assert!(!format!("{bearer:?}").contains("tok3n"));
    }

    #[test]
    fn invalid_url_and_zero_timeout_are_refused() {
        let templates = TemplateSet::builtin().unwrap();
        let bad_url = PrometheusSli::new(
            PrometheusConfig {
                url: "not a url".into(),
                timeout: Duration::from_secs(1),
                auth: None,
            },
            templates.clone(),
        );
        assert!(matches!(bad_url, Err(SliError::Query(m)) if m.contains("URL")));
        let zero = PrometheusSli::new(
            PrometheusConfig {
                url: "http://127.0.0.1:9090".into(),
                timeout: Duration::ZERO,
                auth: None,
            },
            templates,
        );
        assert!(zero.is_err());
    }
}
