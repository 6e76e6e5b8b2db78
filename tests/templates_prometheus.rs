//! Every SLI template in `metric-templates/` against a real Prometheus scraping series
//! shaped like its provider's metrics, and every Flagger `MetricTemplate` in
//! `metric-templates/flagger/` through Prometheus' query API.
//!
//! The exporter serves counters the test sets: first every counter at one "delta" (phase 0),
//! then at two (phase 1). Two readings that span the switch must count exactly one delta
//! per arm: requests, errors and every bucket, to the request (verdict differences the
//! counters; nothing is extrapolated). Each provider's series sit beside decoys that a
//! careless selector would also match (another app whose name starts with the target's,
//! the same app in another namespace, and the provider's own traps: Istio's source-side
//! reports, Linkerd's outbound direction, the sidecars' egress clusters …), each with
//! different counts, so any leak changes the numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use support::prometheus::TestPrometheus;
use support::static_exporter::StaticExporter;
use verdict::domain::{now_millis, CanaryName, Namespace};
use verdict::sli::prometheus::{PrometheusConfig, PrometheusSli};
use verdict::sli::templates::{LatencyUnit, TemplateSet, TemplateVariables};
use verdict::sli::{ArmCounts, ArmPair, Increments, SliSource, SliTarget};

const TARGET: &str = "podinfo";
const TEMPLATE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/metric-templates");

/// Latency of the "fast" and the "slow" requests, in milliseconds.
const FAST_MS: f64 = 10.0;
const SLOW_MS: f64 = 300.0;
/// Histogram boundaries in milliseconds; FAST_MS falls in the 25 ms bucket, SLOW_MS in 500.
const BOUNDS_MS: [f64; 5] = [5.0, 25.0, 100.0, 500.0, 2500.0];

/// Requests with one status code: how many, and how many of them were fast.
#[derive(Debug, Clone, Copy)]
struct Part {
    code: u16,
    requests: u64,
    fast: u64,
}

impl Part {
    fn is_error(&self) -> bool {
        self.code >= 500
    }

    fn scaled(&self, k: u64) -> Part {
        Part {
            requests: self.requests * k,
            fast: self.fast * k,
            ..*self
        }
    }

    /// This replica's share (of two): counts stay whole and monotone in the total.
    fn replica(&self, replica: usize) -> Part {
        let half = |x: u64| if replica == 0 { x - x / 2 } else { x / 2 };
        Part {
            requests: half(self.requests),
            fast: half(self.fast),
            ..*self
        }
    }
}

/// What one arm serves per phase. Errors are 500 and 503; 404s count as requests only.
fn canary_delta() -> Vec<Part> {
    vec![
        Part {
            code: 200,
            requests: 900,
            fast: 850,
        },
        Part {
            code: 404,
            requests: 50,
            fast: 50,
        },
        Part {
            code: 500,
            requests: 40,
            fast: 10,
        },
        Part {
            code: 503,
            requests: 10,
            fast: 0,
        },
    ]
}

fn primary_delta() -> Vec<Part> {
    vec![
        Part {
            code: 200,
            requests: 3900,
            fast: 3800,
        },
        Part {
            code: 404,
            requests: 80,
            fast: 80,
        },
        Part {
            code: 500,
            requests: 15,
            fast: 15,
        },
        Part {
            code: 503,
            requests: 5,
            fast: 5,
        },
    ]
}

/// Expected window counts of one arm: one delta.
struct Expected {
    requests: f64,
    errors: f64,
    fast: f64,
}

fn expected(parts: &[Part]) -> Expected {
    Expected {
        requests: parts.iter().map(|p| p.requests as f64).sum(),
        errors: parts
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.requests as f64)
            .sum(),
        fast: parts.iter().map(|p| p.fast as f64).sum(),
    }
}

/// One workload arm as a provider names it.
#[derive(Debug, Clone)]
struct ArmId {
    namespace: String,
    target: String,
    /// Flagger's apex service (`spec.service.name`, by default the target's name).
    apex: String,
    primary: bool,
}

impl ArmId {
    /// The Deployment: `<target>` or `<target>-primary`.
    fn workload(&self) -> String {
        if self.primary {
            format!("{}-primary", self.target)
        } else {
            self.target.clone()
        }
    }

    /// Flagger's service for the arm: `<apex>-canary` or `<apex>-primary`.
    fn service(&self) -> String {
        if self.primary {
            format!("{}-primary", self.apex)
        } else {
            format!("{}-canary", self.apex)
        }
    }

    /// The arm's `rollouts-pod-template-hash` under Argo Rollouts: a hash of the pod
    /// template, so the same Rollout in another namespace has the same one (a decoy only
    /// the namespace tells apart).
    fn hash(&self) -> String {
        let salt: u32 = self.target.bytes().map(u32::from).sum();
        format!("{}{salt:x}", if self.primary { "5c9d7f" } else { "6b8f9c" })
    }

    /// The ReplicaSet before the stable one, still scaling down (a decoy of the stable arm).
    fn old_hash(&self) -> String {
        let salt: u32 = self.target.bytes().map(u32::from).sum();
        format!("4d7b8c{salt:x}")
    }

    /// The Rollout's Services under Argo: `<apex>-canary` and `<apex>-stable`.
    fn argo_service(&self) -> String {
        if self.primary {
            format!("{}-stable", self.apex)
        } else {
            format!("{}-canary", self.apex)
        }
    }

    /// A Rollout's pod: `<rollout>-<rollouts-pod-template-hash>-<pod hash>`.
    fn argo_pod(&self, hash: &str, replica: usize) -> String {
        format!("{}-{hash}-{}", self.target, ["x2k4j", "m9p7q"][replica])
    }

    /// A Deployment pod name: `<workload>-<replicaset hash>-<pod hash>`.
    fn pod(&self, replica: usize) -> String {
        format!(
            "{}-7d9f8c6b5-{}",
            self.workload(),
            ["x2k4j", "m9p7q"][replica]
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Ms,
    S,
}

impl Unit {
    fn of(self, ms: f64) -> f64 {
        match self {
            Unit::Ms => ms,
            Unit::S => ms / 1000.0,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// Exposition text, one block per metric family (families shared by several providers,
/// like Envoy's, must not be split).
#[derive(Default)]
struct Exposition {
    families: BTreeMap<String, (&'static str, Vec<String>)>,
}

fn label_text(labels: &[(&'static str, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

impl Exposition {
    fn line(&mut self, family: &str, kind: &'static str, sample: String) {
        self.families
            .entry(family.to_owned())
            .or_insert_with(|| (kind, Vec::new()))
            .1
            .push(sample);
    }

    fn counter(&mut self, name: &str, labels: &Labels, value: u64) {
        self.line(
            name,
            "counter",
            format!("{name}{{{}}} {value}", label_text(labels)),
        );
    }

    /// A histogram of `requests` requests, `fast` of them at FAST_MS, the rest at SLOW_MS.
    fn histogram(&mut self, name: &str, labels: &Labels, unit: Unit, requests: u64, fast: u64) {
        let base = label_text(labels);
        let sep = if base.is_empty() { "" } else { "," };
        for bound in BOUNDS_MS {
            let count = if bound >= SLOW_MS {
                requests
            } else if bound >= FAST_MS {
                fast
            } else {
                0
            };
            let le = unit.of(bound);
            self.line(
                name,
                "histogram",
                format!("{name}_bucket{{{base}{sep}le=\"{le}\"}} {count}"),
            );
        }
        self.line(
            name,
            "histogram",
            format!("{name}_bucket{{{base}{sep}le=\"+Inf\"}} {requests}"),
        );
        let sum = unit.of(FAST_MS) * fast as f64 + unit.of(SLOW_MS) * (requests - fast) as f64;
        self.line(name, "histogram", format!("{name}_sum{{{base}}} {sum}"));
        self.line(
            name,
            "histogram",
            format!("{name}_count{{{base}}} {requests}"),
        );
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, (kind, lines)) in &self.families {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Writes one arm's series (one replica: a pod, or one of two gateway instances) in a
/// provider's shape, plus that provider's own decoys.
type Emit = fn(&mut Exposition, &ArmId, usize, &[Part]);

fn total(parts: &[Part]) -> (u64, u64) {
    (
        parts.iter().map(|p| p.requests).sum(),
        parts.iter().map(|p| p.fast).sum(),
    )
}

fn istio(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    // Source-side reports of the same requests (from the callers' sidecars) are a decoy:
    // counting both would double the traffic.
    for (reporter, k) in [("destination", 1), ("source", 3)] {
        for p in parts {
            let p = p.scaled(k);
            let labels: Labels = vec![
                ("reporter", reporter.into()),
                ("destination_workload_namespace", a.namespace.clone()),
                ("destination_workload", a.workload()),
                ("destination_service_name", a.service()),
                ("response_code", p.code.to_string()),
                ("pod", a.pod(r)),
            ];
            e.counter("istio_requests_total", &labels, p.requests);
            e.histogram(
                "istio_request_duration_milliseconds",
                &labels,
                Unit::Ms,
                p.requests,
                p.fast,
            );
        }
    }
}

fn linkerd(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    for (direction, k) in [("inbound", 1), ("outbound", 3)] {
        for p in parts {
            let p = p.scaled(k);
            let mut labels: Labels = vec![
                ("namespace", a.namespace.clone()),
                ("deployment", a.workload()),
                ("pod", a.pod(r)),
                ("direction", direction.into()),
                ("status_code", p.code.to_string()),
            ];
            e.histogram("response_latency_ms", &labels, Unit::Ms, p.requests, p.fast);
            let class = if p.is_error() { "failure" } else { "success" };
            labels.push(("classification", class.into()));
            e.counter("response_total", &labels, p.requests);
        }
    }
}

fn nginx(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    // The canary ingress sends to <apex>-canary and names its upstream in `canary`;
    // the main ingress sends to the apex service with `canary` empty.
    let (service, canary) = if a.primary {
        (a.apex.clone(), String::new())
    } else {
        (a.service(), format!("{}-{}-9898", a.namespace, a.service()))
    };
    for p in parts {
        let labels: Labels = vec![
            ("namespace", a.namespace.clone()),
            ("ingress", service.clone()),
            ("service", service.clone()),
            ("canary", canary.clone()),
            ("status", p.code.to_string()),
            ("controller_pod", format!("ingress-nginx-controller-{r}")),
        ];
        e.counter("nginx_ingress_controller_requests", &labels, p.requests);
        e.histogram(
            "nginx_ingress_controller_request_duration_seconds",
            &labels,
            Unit::S,
            p.requests,
            p.fast,
        );
    }
}

/// Envoy's upstream cluster statistics (Contour, Gloo, App Mesh, Kuma all export these):
/// a request counter by response code and a latency histogram without it.
fn envoy_cluster(e: &mut Exposition, mut labels: Labels, parts: &[Part]) {
    let (requests, fast) = total(parts);
    e.histogram(
        "envoy_cluster_upstream_rq_time",
        &labels,
        Unit::Ms,
        requests,
        fast,
    );
    labels.push(("envoy_response_code", String::new()));
    for p in parts {
        if let Some(last) = labels.last_mut() {
            last.1 = p.code.to_string();
        }
        e.counter("envoy_cluster_upstream_rq", &labels, p.requests);
    }
}

fn contour(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    let cluster = format!("{}_{}_9898_8fd4f1a2c7", a.namespace, a.service());
    envoy_cluster(
        e,
        vec![
            ("envoy_cluster_name", cluster),
            ("pod", format!("envoy-{r}")),
        ],
        parts,
    );
}

fn gloo(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    // Flagger ≥ 1.9 creates its own Upstreams in the canary's namespace (pkg/router/gloo.go);
    // with Gloo's discovery on, the discovered Upstream of the same Service exists too (a
    // decoy: Flagger's route table does not send to it), here with other traffic and no
    // errors, so that even a ratio read from it is wrong.
    let arm = if a.primary { "primary" } else { "canary" };
    envoy_cluster(
        e,
        vec![
            (
                "envoy_cluster_name",
                format!(
                    "{}-{}-{arm}upstream-9898_{}",
                    a.namespace, a.apex, a.namespace
                ),
            ),
            ("pod", format!("gateway-proxy-{r}")),
        ],
        parts,
    );
    let discovered: Vec<Part> = parts
        .iter()
        .filter(|p| !p.is_error())
        .map(|p| p.scaled(3))
        .collect();
    envoy_cluster(
        e,
        vec![
            (
                "envoy_cluster_name",
                format!("{}-{}-9898_gloo-system", a.namespace, a.service()),
            ),
            ("pod", format!("gateway-proxy-{r}")),
        ],
        &discovered,
    );
}

fn appmesh(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    // The sidecar also counts the workload's own calls to a backend (egress cluster).
    let clusters = [
        (
            format!(
                "cds_ingress_mesh_{}-{}_http_9898",
                a.workload(),
                a.namespace
            ),
            1,
        ),
        (
            format!("cds_egress_mesh_backend-{}_http_8080", a.namespace),
            3,
        ),
    ];
    for (cluster, k) in clusters {
        let scaled: Vec<Part> = parts.iter().map(|p| p.scaled(k)).collect();
        envoy_cluster(
            e,
            vec![
                ("kubernetes_namespace", a.namespace.clone()),
                ("kubernetes_pod_name", a.pod(r)),
                ("envoy_cluster_name", cluster),
            ],
            &scaled,
        );
    }
}

fn kuma(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    let service = format!("{}_{}_svc_9898", a.service(), a.namespace);
    let clusters = [
        ("localhost_9898".to_string(), 1),
        (format!("backend_{}_svc_8080", a.namespace), 3),
    ];
    for (cluster, k) in clusters {
        let scaled: Vec<Part> = parts.iter().map(|p| p.scaled(k)).collect();
        envoy_cluster(
            e,
            vec![
                ("service", service.clone()),
                ("instance", a.pod(r)),
                ("envoy_cluster_name", cluster),
            ],
            &scaled,
        );
    }
}

fn traefik(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    let service = format!("{}-{}-9898@kubernetescrd", a.namespace, a.service());
    for p in parts {
        let labels: Labels = vec![
            ("service", service.clone()),
            ("code", p.code.to_string()),
            ("method", "GET".into()),
            ("protocol", "http".into()),
            ("pod", format!("traefik-{r}")),
        ];
        e.counter("traefik_service_requests_total", &labels, p.requests);
        e.histogram(
            "traefik_service_request_duration_seconds",
            &labels,
            Unit::S,
            p.requests,
            p.fast,
        );
    }
}

fn opentelemetry(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    for p in parts {
        let labels: Labels = vec![
            ("k8s_namespace_name", a.namespace.clone()),
            ("k8s_deployment_name", a.workload()),
            ("k8s_pod_name", a.pod(r)),
            ("http_request_method", "GET".into()),
            ("http_response_status_code", p.code.to_string()),
        ];
        e.histogram(
            "http_server_request_duration_seconds",
            &labels,
            Unit::S,
            p.requests,
            p.fast,
        );
    }
}

/// The application's own latency histogram with a status label, as podinfo exports it and
/// Flagger's HTTP observer reads it, scraped with the given namespace and pod labels.
fn app_histogram(
    e: &mut Exposition,
    a: &ArmId,
    r: usize,
    parts: &[Part],
    (namespace_label, pod_label): (&'static str, &'static str),
) {
    for p in parts {
        let labels: Labels = vec![
            (namespace_label, a.namespace.clone()),
            (pod_label, a.pod(r)),
            ("method", "GET".into()),
            ("path", "root".into()),
            ("status", p.code.to_string()),
        ];
        e.histogram(
            "http_request_duration_seconds",
            &labels,
            Unit::S,
            p.requests,
            p.fast,
        );
    }
}

/// Flagger's bundled Prometheus (charts/flagger templates/prometheus.yaml, job
/// kubernetes-pods) relabels the namespace and pod to these.
fn app_metrics(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    app_histogram(
        e,
        a,
        r,
        parts,
        ("kubernetes_namespace", "kubernetes_pod_name"),
    );
}

/// Flagger maps provider gatewayapi to the same HTTP observer as kubernetes.
fn gateway_api(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    app_metrics(e, a, r, parts);
}

/// The Prometheus Operator's PodMonitor / ServiceMonitor target labels.
fn app_metrics_operator(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    app_histogram(e, a, r, parts, ("namespace", "pod"));
}

/// The arm's hash and, for the stable arm, the previous ReplicaSet's (still scraped
/// while it scales down) with three times the traffic.
fn argo_hashes(a: &ArmId) -> Vec<(String, u64)> {
    let mut hashes = vec![(a.hash(), 1)];
    if a.primary {
        hashes.push((a.old_hash(), 3));
    }
    hashes
}

/// Istio under Argo Rollouts: Istio names both arms' pods after the Rollout
/// (`destination_workload`, its Rollout heuristic), and the scrape copies the pod labels,
/// `rollouts-pod-template-hash` among them, onto the sidecar's series (labelmap of
/// `__meta_kubernetes_pod_label_(.+)`, as Istio's sample Prometheus does).
fn argo_istio(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    for (hash, scale) in argo_hashes(a) {
        for (reporter, k) in [("destination", 1), ("source", 3)] {
            for p in parts {
                let p = p.scaled(k * scale);
                let labels: Labels = vec![
                    ("reporter", reporter.into()),
                    ("destination_workload_namespace", a.namespace.clone()),
                    ("destination_workload", a.target.clone()),
                    ("destination_service_name", a.argo_service()),
                    ("response_code", p.code.to_string()),
                    ("namespace", a.namespace.clone()),
                    ("pod", a.argo_pod(&hash, r)),
                    ("app", a.target.clone()),
                    ("rollouts_pod_template_hash", hash.clone()),
                ];
                e.counter("istio_requests_total", &labels, p.requests);
                e.histogram(
                    "istio_request_duration_milliseconds",
                    &labels,
                    Unit::Ms,
                    p.requests,
                    p.fast,
                );
            }
        }
    }
}

/// ingress-nginx under Argo Rollouts: the canary Ingress Argo creates routes to the
/// canaryService and names that upstream in `canary`; the stable Ingress routes to the
/// stableService with `canary` empty.
fn argo_nginx(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    let stable = ArmId {
        primary: true,
        ..a.clone()
    }
    .argo_service();
    let canary = if a.primary {
        String::new()
    } else {
        format!("{}-{}-9898", a.namespace, a.argo_service())
    };
    for p in parts {
        let labels: Labels = vec![
            ("namespace", a.namespace.clone()),
            ("ingress", a.target.clone()),
            ("service", stable.clone()),
            ("canary", canary.clone()),
            ("status", p.code.to_string()),
            ("controller_pod", format!("ingress-nginx-controller-{r}")),
        ];
        e.counter("nginx_ingress_controller_requests", &labels, p.requests);
        e.histogram(
            "nginx_ingress_controller_request_duration_seconds",
            &labels,
            Unit::S,
            p.requests,
            p.fast,
        );
    }
}

/// The application's histogram under Argo Rollouts, scraped by the prometheus-community
/// chart's kubernetes-pods job: `namespace`, `pod` and the pod's labels.
fn argo_app_metrics(e: &mut Exposition, a: &ArmId, r: usize, parts: &[Part]) {
    for (hash, scale) in argo_hashes(a) {
        for p in parts {
            let p = p.scaled(scale);
            let labels: Labels = vec![
                ("namespace", a.namespace.clone()),
                ("pod", a.argo_pod(&hash, r)),
                ("app", a.target.clone()),
                ("rollouts_pod_template_hash", hash.clone()),
                ("method", "GET".into()),
                ("path", "root".into()),
                ("status", p.code.to_string()),
            ];
            e.histogram(
                "http_request_duration_seconds",
                &labels,
                Unit::S,
                p.requests,
                p.fast,
            );
        }
    }
}

/// Every provider the tests know: template name, series shape, unit of its histogram.
/// The `argo-*` templates serve Argo Rollouts (no Flagger MetricTemplate).
const PROVIDERS: [(&str, Emit, Unit); 15] = [
    ("istio", istio, Unit::Ms),
    ("linkerd", linkerd, Unit::Ms),
    ("nginx", nginx, Unit::S),
    ("contour", contour, Unit::Ms),
    ("gloo", gloo, Unit::Ms),
    ("appmesh", appmesh, Unit::Ms),
    ("kuma", kuma, Unit::Ms),
    ("traefik", traefik, Unit::S),
    ("gateway-api", gateway_api, Unit::S),
    ("app-metrics", app_metrics, Unit::S),
    ("app-metrics-operator", app_metrics_operator, Unit::S),
    ("opentelemetry", opentelemetry, Unit::S),
    ("argo-istio", argo_istio, Unit::Ms),
    ("argo-nginx", argo_nginx, Unit::S),
    ("argo-app-metrics", argo_app_metrics, Unit::S),
];

/// Whether a provider's template is for Argo Rollouts (its arms told apart by the
/// pod-template hashes the measure endpoint sets, or by the Rollout's Services).
fn is_argo(provider: &str) -> bool {
    provider.starts_with("argo-")
}

/// The template variables of the canary `podinfo` (and its stable arm) under Argo
/// Rollouts; none for Flagger's templates.
fn argo_variables(provider: &str) -> BTreeMap<String, String> {
    if !is_argo(provider) {
        return BTreeMap::new();
    }
    let arm = |primary| ArmId {
        namespace: String::new(),
        target: TARGET.to_owned(),
        apex: TARGET.to_owned(),
        primary,
    };
    BTreeMap::from([
        (
            verdict::argo::CANARY_HASH_VARIABLE.to_owned(),
            arm(false).hash(),
        ),
        (
            verdict::argo::STABLE_HASH_VARIABLE.to_owned(),
            arm(true).hash(),
        ),
    ])
}

fn namespace_of(provider: &str) -> String {
    format!("t-{provider}")
}

/// Where the same provider's canary has a Service named apart from its target
/// (`spec.service.name: frontend`, the `service` metadata key).
fn renamed_namespace_of(provider: &str) -> String {
    format!("r-{provider}")
}

/// The apex service of the renamed canaries.
const APEX: &str = "frontend";

/// All providers' series at `phase` (0 or 1): real arms hold `(phase + 1) × delta`, so
/// every counter starts well above zero and Prometheus' zero-point clamp never applies.
fn exposition(phase: u64) -> String {
    let mut e = Exposition::default();
    let k = phase + 1;
    for (provider, emit, _) in PROVIDERS {
        let ns = namespace_of(provider);
        let renamed = renamed_namespace_of(provider);
        // (namespace, target, apex service, multiplier, arms swapped): the real canary, then
        // decoys with other counts; then a canary whose Service is named apart from its
        // Deployment, beside a decoy whose Services are named after the target (what
        // `{{ target }}-canary` would find), with the arms' error rates swapped so that
        // even a ratio read from it is wrong.
        let arms = [
            (ns.clone(), TARGET.to_string(), TARGET.to_string(), 1, false),
            (
                ns.clone(),
                format!("{TARGET}-extra"),
                format!("{TARGET}-extra"),
                5,
                false,
            ),
            (
                format!("{ns}-other"),
                TARGET.to_string(),
                TARGET.to_string(),
                7,
                false,
            ),
            (
                renamed.clone(),
                TARGET.to_string(),
                APEX.to_string(),
                1,
                false,
            ),
            (
                renamed.clone(),
                format!("{TARGET}-x"),
                TARGET.to_string(),
                3,
                true,
            ),
        ];
        for (namespace, target, apex, m, swapped) in arms {
            let deltas = if swapped {
                [(false, primary_delta()), (true, canary_delta())]
            } else {
                [(false, canary_delta()), (true, primary_delta())]
            };
            for (primary, delta) in deltas {
                let id = ArmId {
                    namespace: namespace.clone(),
                    target: target.clone(),
                    apex: apex.clone(),
                    primary,
                };
                let cumulative: Vec<Part> = delta.iter().map(|p| p.scaled(k * m)).collect();
                for replica in 0..2 {
                    let share: Vec<Part> = cumulative.iter().map(|p| p.replica(replica)).collect();
                    emit(&mut e, &id, replica, &share);
                }
            }
        }
    }
    e.render()
}

fn bucket(counts: &ArmCounts, le: f64) -> Option<f64> {
    counts
        .buckets
        .iter()
        .find(|b| {
            if le.is_infinite() {
                b.le == le
            } else {
                (b.le - le).abs() <= le * 1e-9
            }
        })
        .map(|b| b.count)
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0)
}

/// Both arms' counts between readings at `start` and `end`.
async fn window(
    source: &PrometheusSli,
    target: &SliTarget,
    start: i64,
    end: i64,
) -> Result<ArmPair, String> {
    let before = source
        .counters(target, start)
        .await
        .map_err(|e| e.to_string())?;
    let after = source
        .counters(target, end)
        .await
        .map_err(|e| e.to_string())?;
    match after.since(&before) {
        Increments::Counts(pair) => Ok(pair),
        stale => Err(format!("no new sample: {stale:?}")),
    }
}

/// Checks one arm's counts against one delta, exactly.
fn check_arm(what: &str, got: &ArmCounts, want: &Expected) -> Result<(), String> {
    if !close(got.requests, want.requests) {
        return Err(format!(
            "{what}: {} requests, expected {}",
            got.requests, want.requests
        ));
    }
    if !close(got.errors, want.errors) {
        return Err(format!(
            "{what}: {} errors, expected {}",
            got.errors, want.errors
        ));
    }
    let mut expected_buckets: Vec<(f64, f64)> = BOUNDS_MS
        .iter()
        .map(|&ms| {
            let count = if ms >= SLOW_MS {
                want.requests
            } else if ms >= FAST_MS {
                want.fast
            } else {
                0.0
            };
            (ms / 1000.0, count)
        })
        .collect();
    expected_buckets.push((f64::INFINITY, want.requests));
    if got.buckets.len() != expected_buckets.len() {
        return Err(format!(
            "{what}: {} buckets {:?}, expected boundaries {:?}",
            got.buckets.len(),
            got.buckets,
            expected_buckets
        ));
    }
    for (le, count) in expected_buckets {
        match bucket(got, le) {
            Some(actual) if close(actual, count) => {}
            other => {
                return Err(format!(
                    "{what}: bucket le={le}s = {other:?}, expected {count}"
                ))
            }
        }
    }
    Ok(())
}

/// Replaces Flagger's `{{ namespace }}`, `{{ target }}`, `{{ service }}` (the apex
/// service, `spec.service.name` or the target's name) and `{{ interval }}` (any spacing).
fn render_flagger(
    query: &str,
    namespace: &str,
    service: &str,
    interval: &str,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {query}"))?;
        let name = rest[open + 2..open + close].trim();
        out.push_str(match name {
            "namespace" => namespace,
            "target" => TARGET,
            "service" => service,
            "interval" => interval,
            other => return Err(format!("unexpected Flagger variable {other:?} in {query}")),
        });
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `MetricTemplate` documents of one file: (name, provider type, query).
fn flagger_templates(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).expect("read the template file");
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
            .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
        assert_eq!(
            value["apiVersion"].as_str(),
            Some("flagger.app/v1beta1"),
            "{}",
            path.display()
        );
        assert_eq!(
            value["kind"].as_str(),
            Some("MetricTemplate"),
            "{}",
            path.display()
        );
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let provider = value["spec"]["provider"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let query = value["spec"]["query"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !name.is_empty() && !query.trim().is_empty(),
            "{}: {value:?}",
            path.display()
        );
        out.push((name, provider, query));
    }
    out
}

/// Runs an instant query at `at_ms` through Prometheus' HTTP API: the scalar result, or
/// Prometheus' error message.
async fn instant(url: &str, query: &str, at_ms: i64) -> Result<Option<f64>, String> {
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/query"))
        .form(&[
            ("query", query),
            ("time", &format!("{:.3}", at_ms as f64 / 1000.0)),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if response["status"] != "success" {
        return Err(format!("{}: {}", response["errorType"], response["error"]));
    }
    let result = &response["data"]["result"];
    match result.as_array().map(Vec::len) {
        Some(0) => Ok(None),
        Some(1) => result[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("unexpected result {result}")),
        _ => Err(format!("expected at most one sample, got {result}")),
    }
}

#[test]
fn every_template_file_has_series_for_its_provider() {
    let files: BTreeSet<String> = std::fs::read_dir(TEMPLATE_DIR)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension().and_then(|x| x.to_str()) == Some("yaml"))
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    let known: BTreeSet<String> = PROVIDERS.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(
        files, known,
        "a template without test series, or series without a template"
    );
    let flagger: BTreeSet<String> = std::fs::read_dir(Path::new(TEMPLATE_DIR).join("flagger"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let flagger_providers: BTreeSet<String> =
        known.iter().filter(|n| !is_argo(n)).cloned().collect();
    assert_eq!(
        flagger, flagger_providers,
        "one Flagger MetricTemplate file per provider (not for Argo Rollouts' templates)"
    );
    // And the built-in set is exactly the directory.
    let builtin: BTreeSet<String> = TemplateSet::builtin()
        .unwrap()
        .names()
        .map(str::to_owned)
        .collect();
    assert_eq!(builtin, known, "every shipped template is compiled in");
}

#[tokio::test]
async fn every_template_counts_its_providers_series_exactly() {
    let templates = TemplateSet::from_dir(Path::new(TEMPLATE_DIR)).unwrap();
    let exporter = StaticExporter::start(exposition(0)).await;
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    exporter.set_text(exposition(1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end = now_millis();
    let start = end - 9_000;

    let source = PrometheusSli::new(
        PrometheusConfig {
            url: prometheus.url(),
            timeout: Duration::from_secs(5),
            auth: None,
        },
        templates.clone(),
    )
    .unwrap();
    let want_canary = expected(&canary_delta());
    let want_primary = expected(&primary_delta());
    let mut failures = Vec::new();
    for (provider, _, unit) in PROVIDERS {
        let template = templates.get(provider).unwrap();
        let declared = match template.latency_unit() {
            LatencyUnit::Milliseconds => Unit::Ms,
            LatencyUnit::Seconds => Unit::S,
        };
        if declared != unit {
            failures.push(format!(
                "{provider}: latency_unit {declared:?}, series in {unit:?}"
            ));
            continue;
        }
        // Each provider twice: the Service named after the target, and named apart from
        // it with the `service` metadata key.
        for (namespace, service) in [
            (namespace_of(provider), None),
            (
                renamed_namespace_of(provider),
                Some(CanaryName::parse(APEX).unwrap()),
            ),
        ] {
            let what = format!("{provider} in {namespace}");
            let target = SliTarget {
                namespace: Namespace::parse(&namespace).unwrap(),
                target: CanaryName::parse(TARGET).unwrap(),
                template: provider.to_owned(),
                variables: TemplateVariables {
                    service,
                    custom: argo_variables(provider),
                },
            };
            match window(&source, &target, start, end).await {
                Err(e) => failures.push(format!("{what}: {e}")),
                Ok(pair) => {
                    let canary = check_arm(&format!("{what}: canary"), &pair.canary, &want_canary);
                    let primary =
                        check_arm(&format!("{what}: primary"), &pair.primary, &want_primary);
                    failures.extend(canary.err().into_iter().chain(primary.err()));
                }
            }
        }
    }

    // Flagger's MetricTemplates: accepted by Prometheus, and right on the same series.
    let mut queried = 0;
    for (provider, _, _) in PROVIDERS.into_iter().filter(|(p, _, _)| !is_argo(p)) {
        let path = Path::new(TEMPLATE_DIR)
            .join("flagger")
            .join(format!("{provider}.yaml"));
        let docs = flagger_templates(&path);
        let names: BTreeSet<&str> = docs.iter().map(|(n, _, _)| n.as_str()).collect();
        let wanted = [
            format!("verdict-{provider}-error-rate"),
            format!("verdict-{provider}-latency-p95"),
        ];
        assert_eq!(
            names,
            wanted.iter().map(String::as_str).collect(),
            "{}",
            path.display()
        );
        for ((name, kind, query), (namespace, service)) in docs.iter().flat_map(|d| {
            [
                (d, (namespace_of(provider), TARGET)),
                (d, (renamed_namespace_of(provider), APEX)),
            ]
        }) {
            assert_eq!(kind, "prometheus", "{name}");
            let rendered = render_flagger(query, &namespace, service, "9s").unwrap();
            queried += 1;
            let value = match instant(&prometheus.url(), &rendered, end).await {
                Ok(Some(v)) => v,
                other => {
                    failures.push(format!("{name} in {namespace}: {other:?} for {rendered}"));
                    continue;
                }
            };
            let (want, tolerance) = if name.ends_with("error-rate") {
                (100.0 * want_canary.errors / want_canary.requests, 1e-6)
            } else {
                // histogram_quantile: rank 0.95 n lies in the (100, 500] ms bucket above
                // the fast requests; linear interpolation inside it.
                let rank = 0.95 * want_canary.requests;
                let share = (rank - want_canary.fast) / (want_canary.requests - want_canary.fast);
                (100.0 + 400.0 * share, 1e-6)
            };
            if (value - want).abs() > tolerance * want {
                failures.push(format!("{name} in {namespace}: {value}, expected {want}"));
            }
        }
    }
    let flagger_providers = PROVIDERS.iter().filter(|(p, _, _)| !is_argo(p)).count();
    assert_eq!(queried, 4 * flagger_providers);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_template_that_leaks_into_decoys_is_caught() {
    // The check itself must be able to fail: an istio template that forgets `reporter`
    // also counts the callers' reports of the same requests.
    let loose_istio = std::fs::read_to_string(Path::new(TEMPLATE_DIR).join("istio.yaml"))
        .unwrap()
        .replace("reporter=\"destination\",", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("istio.yaml"), loose_istio).unwrap();
    let templates = TemplateSet::from_dir(dir.path()).unwrap();

    let exporter = StaticExporter::start(exposition(0)).await;
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    exporter.set_text(exposition(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = now_millis();
    let source = PrometheusSli::new(
        PrometheusConfig {
            url: prometheus.url(),
            timeout: Duration::from_secs(5),
            auth: None,
        },
        templates,
    )
    .unwrap();
    let target = SliTarget {
        namespace: Namespace::parse(&namespace_of("istio")).unwrap(),
        target: CanaryName::parse(TARGET).unwrap(),
        template: "istio".into(),
        variables: TemplateVariables::default(),
    };
    let pair = window(&source, &target, end - 5_000, end).await.unwrap();
    let err = check_arm(
        "loose istio canary",
        &pair.canary,
        &expected(&canary_delta()),
    )
    .unwrap_err();
    assert!(err.contains("requests"), "{err}");
}
