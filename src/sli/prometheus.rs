//! The real SLI source: instant PromQL queries over the series selectors of
//! [`TemplateSet`] templates.
//!
//! One reading is one instant query, bounded by the configured timeout and evaluated at
//! the look's time, of eight parts joined by `or` and told apart by a `verdict_part`
//! label: per arm the request, error and latency-bucket counters summed within each
//! process (`sum by (job, instance)`, and `le` for buckets; no `increase()`, so nothing is
//! extrapolated), and `max(timestamp(…))` of the request series, the time of the newest
//! sample, which tells whether Prometheus has scraped since the previous look (an instant
//! query's result carries the evaluation time, not the sample's). Counts come from
//! differencing two readings ([`super::counters`]). The primary's history is one range
//! query of its three counter parts.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_http_query::{Client, Error as PromError};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};

use super::counters::{le_key, SeriesValues};
use super::templates::{
    Arm, LatencyUnit, RenderInput, Template, TemplateError, TemplateSet, PART_LABEL,
};
use super::{ArmCounters, ArmCounts, Counters, SliError, SliSource, SliTarget};
use crate::domain::Millis;

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

/// Called after every Prometheus request with its kind (`reading`, `history`, `ready`),
/// how long it took and whether it succeeded, so the service
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
    ) -> Result<Vec<Sample>, SliError> {
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

    /// The four parts of one arm: its counters summed within each process (the
    /// template's `process_labels`, by default the scrape target), and the newest sample
    /// time of its request series.
    fn arm_parts(
        &self,
        template: &Template,
        target: &SliTarget,
        arm: Arm,
    ) -> Result<[(Part, String); 4], SliError> {
        let input = RenderInput {
            namespace: &target.namespace,
            target: &target.target,
            variables: &target.variables,
        };
        let selectors = template
            .render(arm, &input)
            .map_err(|e| template_error(template.name(), e))?;
        let by = template.process_labels().join(", ");
        Ok([
            (
                Part::new(arm, Kind::Requests),
                format!("sum by ({by}) ({})", selectors.requests),
            ),
            (
                Part::new(arm, Kind::Errors),
                format!("sum by ({by}) ({})", selectors.errors),
            ),
            (
                Part::new(arm, Kind::Buckets),
                format!("sum by ({by}, le) ({})", selectors.latency_buckets),
            ),
            // `timestamp()` of a plain selector is each series' last sample time (of an
            // aggregate it would be the evaluation time), so the selector goes in bare.
            (
                Part::new(arm, Kind::SampleTime),
                format!("max(timestamp({}))", selectors.requests),
            ),
        ])
    }

    /// One arm's counters from its parts of the reading. `required`: no request series
    /// is an error (the primary) rather than an arm that has not served yet (the canary).
    fn arm_counters(
        template: &Template,
        target: &SliTarget,
        arm: Arm,
        at: Millis,
        parts: ArmSamples,
        required: bool,
    ) -> Result<ArmCounters, SliError> {
        if parts.requests.is_empty() && required {
            return Err(SliError::NoData {
                arm: arm.as_str(),
                detail: format!(
                    "template {:?} found no request series for {}/{} at {}; check that the workload serves traffic and that the template's labels match it",
                    template.name(),
                    target.namespace,
                    workload_name(target, arm),
                    format_seconds(at),
                ),
            });
        }
        let sampled_at = match parts.sample_time.as_slice() {
            [] => None,
            [(_, seconds)] if seconds.is_finite() => Some((seconds * 1000.0).round() as Millis),
            sampled => {
                return Err(SliError::Query(format!(
                    "the {arm} sample-time query returned {} values",
                    sampled.len()
                )))
            }
        };
        Ok(ArmCounters {
            sampled_at,
            requests: series_values(arm, "requests", parts.requests)?,
            errors: series_values(arm, "errors", parts.errors)?,
            buckets: bucket_values(arm, template.latency_unit(), parts.buckets)?,
        })
    }

    /// The primary's per-interval counts: its counters every `step` over the look-back
    /// (one range query of three parts), differenced step by step exactly as looks are.
    async fn history(
        &self,
        template: &Template,
        target: &SliTarget,
        end: Millis,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<ArmCounts>, SliError> {
        let arm = Arm::Primary;
        let parts = self.arm_parts(template, target, arm)?;
        // The sample-time part is for instant readings only.
        let query = union(parts.iter().filter(|(p, _)| p.kind != Kind::SampleTime));
        let step_s = step.as_secs() as i64;
        let end_s = end.div_euclid(1000);
        let intervals = (lookback.as_secs() as i64 / step_s).max(1);
        let start_s = end_s - intervals * step_s;
        let series = self
            .range(HISTORY, &query, start_s, end_s, step_s as f64)
            .await?;
        let points = usize::try_from(intervals).unwrap_or(0) + 1;
        let mut readings = vec![ArmCounters::default(); points];
        let index = |t: i64| {
            usize::try_from((t - start_s) / step_s)
                .ok()
                .filter(|&k| k < points)
        };
        for (mut labels, samples) in series {
            let part = take_part(&mut labels)?;
            let key = series_key(&labels);
            let le = match part.kind {
                Kind::Buckets => Some(bucket_le(arm, template.latency_unit(), &labels)?),
                _ => None,
            };
            for (t, v) in samples {
                let Some(k) = index(t) else { continue };
                let reading = &mut readings[k];
                let count = check_count(arm, part.kind.as_str(), v)?;
                match (&part.kind, &le) {
                    (Kind::Requests, _) => {
                        *reading.requests.entry(key.clone()).or_default() += count
                    }
                    (Kind::Errors, _) => *reading.errors.entry(key.clone()).or_default() += count,
                    (Kind::Buckets, Some(le)) => {
                        *reading
                            .buckets
                            .entry(le.clone())
                            .or_default()
                            .entry(key.clone())
                            .or_default() += count
                    }
                    _ => {}
                }
            }
        }
        // An interval counts when the primary had request series at its end. A series
        // that was not there at its start counts from 0, as in a look (a new pod, or the
        // first scrapes of a workload younger than the look-back).
        Ok(readings
            .windows(2)
            .filter(|pair| !pair[1].requests.is_empty())
            .map(|pair| pair[1].since(&pair[0]))
            .collect())
    }
}

/// What a reading asks Prometheus for, per arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Requests,
    Errors,
    Buckets,
    SampleTime,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Errors => "errors",
            Kind::Buckets => "latency_buckets",
            Kind::SampleTime => "sample_time",
        }
    }
}

/// One part of the reading query: an arm's counters of one kind, told apart in the
/// answer by the [`PART_LABEL`] label (`canary:requests`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    arm: Arm,
    kind: Kind,
}

impl Part {
    fn new(arm: Arm, kind: Kind) -> Self {
        Self { arm, kind }
    }

    fn label(self) -> String {
        format!("{}:{}", self.arm.as_str(), self.kind.as_str())
    }

    fn parse(value: &str) -> Option<Self> {
        let (arm, kind) = value.split_once(':')?;
        let arm = [Arm::Canary, Arm::Primary]
            .into_iter()
            .find(|a| a.as_str() == arm)?;
        let kind = [
            Kind::Requests,
            Kind::Errors,
            Kind::Buckets,
            Kind::SampleTime,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)?;
        Some(Self { arm, kind })
    }
}

/// One query for several parts: each part's result labelled with its name, joined by
/// `or` (the labels differ, so `or` keeps every series of every part). One request per
/// reading instead of one per part: Prometheus parses, plans and answers once.
fn union<'a>(parts: impl Iterator<Item = &'a (Part, String)>) -> String {
    parts
        .map(|(part, query)| {
            format!(
                "label_replace({query}, \"{PART_LABEL}\", \"{}\", \"\", \"\")",
                part.label()
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Removes a series' part label and says which part it belongs to.
fn take_part(labels: &mut HashMap<String, String>) -> Result<Part, SliError> {
    let value = labels.remove(PART_LABEL).unwrap_or_default();
    Part::parse(&value).ok_or_else(|| {
        SliError::Query(format!(
            "Prometheus answered a series with {PART_LABEL}={value:?}, which verdict did not ask for"
        ))
    })
}

/// One arm's samples of an instant reading, by kind.
#[derive(Debug, Default)]
struct ArmSamples {
    requests: Vec<Sample>,
    errors: Vec<Sample>,
    buckets: Vec<Sample>,
    sample_time: Vec<Sample>,
}

impl ArmSamples {
    fn push(&mut self, kind: Kind, sample: Sample) {
        match kind {
            Kind::Requests => self.requests.push(sample),
            Kind::Errors => self.errors.push(sample),
            Kind::Buckets => self.buckets.push(sample),
            Kind::SampleTime => self.sample_time.push(sample),
        }
    }
}

/// The query kinds reported to the observer: the one instant reading of both arms, and
/// the one range query of the primary's history.
const READING: &str = "reading";
const HISTORY: &str = "history";

#[async_trait]
impl SliSource for PrometheusSli {
    async fn counters(&self, target: &SliTarget, at: Millis) -> Result<Counters, SliError> {
        let template = self.template(target)?;
        let canary = self.arm_parts(template, target, Arm::Canary)?;
        let primary = self.arm_parts(template, target, Arm::Primary)?;
        let query = union(canary.iter().chain(primary.iter()));
        let mut samples = [ArmSamples::default(), ArmSamples::default()];
        for (mut labels, value) in self.instant(READING, &query, at).await? {
            let part = take_part(&mut labels)?;
            samples[usize::from(part.arm == Arm::Primary)].push(part.kind, (labels, value));
        }
        let [canary, primary] = samples;
        Ok(Counters {
            read_at: at,
            canary: Self::arm_counters(template, target, Arm::Canary, at, canary, false)?,
            primary: Self::arm_counters(template, target, Arm::Primary, at, primary, true)?,
        })
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

/// A series' key: its remaining (grouping) labels as `name=value`, sorted, `le` left out.
fn series_key(labels: &HashMap<String, String>) -> String {
    let mut pairs: Vec<(&String, &String)> = labels.iter().filter(|(k, _)| *k != "le").collect();
    pairs.sort();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// The counters of one kind, per series.
fn series_values(arm: Arm, kind: &str, samples: Vec<Sample>) -> Result<SeriesValues, SliError> {
    let mut values = SeriesValues::new();
    for (labels, value) in samples {
        let value = check_count(arm, kind, value)?;
        *values.entry(series_key(&labels)).or_default() += value;
    }
    Ok(values)
}

/// A counter is finite and not negative; anything else is not a counter.
fn check_count(arm: Arm, kind: &str, value: f64) -> Result<f64, SliError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(SliError::Query(format!(
            "the {arm} {kind} query returned {value}, not a counter"
        )))
    }
}

/// A bucket series' boundary in seconds, as stored ([`le_key`]).
fn bucket_le(
    arm: Arm,
    unit: LatencyUnit,
    labels: &HashMap<String, String>,
) -> Result<String, SliError> {
    let raw = labels.get("le").ok_or_else(|| {
        SliError::Query(format!(
            "the {arm} latency_buckets selector matched a series without an `le` label; is it a *_bucket metric?"
        ))
    })?;
    let le = parse_le(raw).ok_or_else(|| {
        SliError::Query(format!(
            "the {arm} latency bucket le={raw:?} is not a number"
        ))
    })?;
    Ok(le_key(if le.is_infinite() {
        le
    } else {
        unit.to_seconds(le)
    }))
}

/// Bucket counters by boundary (seconds) and series. The same boundary spelled two ways
/// ("0.1" and "0.10") is one boundary. When there are buckets, `+Inf` is among them.
fn bucket_values(
    arm: Arm,
    unit: LatencyUnit,
    samples: Vec<Sample>,
) -> Result<BTreeMap<String, SeriesValues>, SliError> {
    let mut buckets: BTreeMap<String, SeriesValues> = BTreeMap::new();
    for (labels, count) in samples {
        let le = bucket_le(arm, unit, &labels)?;
        let count = check_count(arm, "latency_buckets", count)?;
        *buckets
            .entry(le)
            .or_default()
            .entry(series_key(&labels))
            .or_default() += count;
    }
    if !buckets.is_empty() && !buckets.contains_key(&le_key(f64::INFINITY)) {
        return Err(SliError::Query(format!(
            "the {arm} latency buckets lack the +Inf bucket; is the selector a *_bucket metric?"
        )));
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

    #[test]
    fn the_reading_query_labels_every_part_and_reads_them_back() {
        let parts = [
            (Part::new(Arm::Canary, Kind::Requests), "sum(a)".to_owned()),
            (
                Part::new(Arm::Primary, Kind::SampleTime),
                "max(b)".to_owned(),
            ),
        ];
        assert_eq!(
            union(parts.iter()),
            "label_replace(sum(a), \"verdict_part\", \"canary:requests\", \"\", \"\") or \
             label_replace(max(b), \"verdict_part\", \"primary:sample_time\", \"\", \"\")"
        );
        for arm in [Arm::Canary, Arm::Primary] {
            for kind in [
                Kind::Requests,
                Kind::Errors,
                Kind::Buckets,
                Kind::SampleTime,
            ] {
                let part = Part::new(arm, kind);
                let mut labels = HashMap::from([
                    (PART_LABEL.to_owned(), part.label()),
                    ("instance".to_owned(), "a".to_owned()),
                ]);
                assert_eq!(take_part(&mut labels).unwrap(), part);
                assert_eq!(labels.len(), 1, "the part label is removed");
            }
        }
        // A series verdict did not ask for (no part label, or an unknown one).
        for labels in [
            HashMap::from([("instance".to_owned(), "a".to_owned())]),
            HashMap::from([(PART_LABEL.to_owned(), "canary:latency".to_owned())]),
            HashMap::from([(PART_LABEL.to_owned(), "stable:requests".to_owned())]),
        ] {
            let err = take_part(&mut labels.clone()).unwrap_err().to_string();
            assert!(err.contains("did not ask for"), "{labels:?}: {err}");
        }
    }

    fn sample(instance: &str, le: &str, count: f64) -> Sample {
        (
            HashMap::from([
                ("instance".to_string(), instance.to_string()),
                ("le".to_string(), le.to_string()),
            ]),
            count,
        )
    }

    #[test]
    fn buckets_are_keyed_by_boundary_in_seconds_and_series() {
        let parsed = bucket_values(
            Arm::Canary,
            LatencyUnit::Milliseconds,
            vec![
                sample("a", "+Inf", 100.0),
                sample("a", "250", 90.0),
                sample("b", "250", 5.0),
                sample("a", "25", 80.0),
            ],
        )
        .unwrap();
        let les: Vec<&str> = parsed.keys().map(String::as_str).collect();
        assert_eq!(les, ["0.025", "0.25", "inf"]);
        assert_eq!(parsed["0.25"]["instance=a"], 90.0);
        assert_eq!(parsed["0.25"]["instance=b"], 5.0);
    }

    #[test]
    fn duplicate_boundaries_are_merged() {
        let parsed = bucket_values(
            Arm::Primary,
            LatencyUnit::Seconds,
            vec![
                sample("a", "0.1", 3.0),
                sample("a", "0.10", 2.0),
                sample("a", "+Inf", 9.0),
            ],
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["0.1"]["instance=a"], 5.0);
    }

    #[test]
    fn buckets_without_inf_or_le_are_refused() {
        let no_inf = bucket_values(
            Arm::Canary,
            LatencyUnit::Seconds,
            vec![sample("a", "0.1", 1.0)],
        );
        assert!(matches!(no_inf, Err(SliError::Query(m)) if m.contains("+Inf")));
        let no_le = bucket_values(
            Arm::Canary,
            LatencyUnit::Seconds,
            vec![(HashMap::new(), 1.0)],
        );
        assert!(matches!(no_le, Err(SliError::Query(m)) if m.contains("`le`")));
        let bad_le = bucket_values(
            Arm::Canary,
            LatencyUnit::Seconds,
            vec![sample("a", "fast", 1.0)],
        );
        assert!(matches!(bad_le, Err(SliError::Query(_))));
        assert!(bucket_values(Arm::Canary, LatencyUnit::Seconds, vec![])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn series_values_keep_one_counter_per_series_and_refuse_non_counters() {
        let labels = |i: &str| {
            HashMap::from([
                ("job".to_string(), "j".to_string()),
                ("instance".to_string(), i.to_string()),
            ])
        };
        let values = series_values(
            Arm::Canary,
            "requests",
            vec![(labels("b"), 2.0), (labels("a"), 1.0)],
        )
        .unwrap();
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        assert_eq!(keys, ["instance=a,job=j", "instance=b,job=j"]);
        assert!(series_values(Arm::Canary, "requests", vec![(labels("a"), f64::NAN)]).is_err());
        assert!(series_values(Arm::Canary, "requests", vec![(labels("a"), -1.0)]).is_err());
    }

    #[test]
    fn time_formatting() {
        assert_eq!(format_seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_seconds(5), "0.005");
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
