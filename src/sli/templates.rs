//! SLI templates: the series selectors of one arm's request, error and latency-bucket
//! counters.
//!
//! A template is a YAML file (`metric-templates/<name>.yaml`):
//!
//! ```yaml
//! name: istio
//! description: Istio sidecar metrics, as reported by the destination workload.
//! assumes: istio_requests_total and istio_request_duration_milliseconds_bucket with …
//! latency_unit: milliseconds          # or seconds; buckets are converted to seconds
//! requests: istio_requests_total{…destination_workload="{{ workload }}"}
//! errors: istio_requests_total{…, response_code=~"5.."}
//! latency_buckets: istio_request_duration_milliseconds_bucket{…}
//! # optional, for providers whose arms differ by more than the workload name:
//! primary:
//!   requests: …
//! ```
//!
//! Variables, written Flagger-style with optional spaces (`{{ namespace }}`, `{{namespace}}`):
//!
//! | variable | value |
//! |---|---|
//! | `namespace` | the canary's namespace |
//! | `target` | the canary's target workload (`spec.targetRef.name`) |
//! | `workload` | the arm's workload: `<target>` for the canary, `<target>-primary` for the primary |
//! | `service` | as in Flagger's MetricTemplates: the apex service (`spec.service.name`, the `service` metadata key), by default the target |
//! | `arm` | `canary` or `primary`: Flagger names the arms' services `<service>-canary` and `<service>-primary` |
//! | `variables.<key>` | a per-canary value from the webhook metadata |
//!
//! Safety: the values come from webhook payloads, so a template may only place them inside
//! a double-quoted PromQL string (checked when the template is loaded) and every value is
//! escaped for that string at render time. Inside a regex matcher (`=~`, `!~`) values are
//! also regex-escaped, so a value matches itself literally and cannot widen the selector.
//!
//! Each query is a series selector of counters and nothing else: verdict reads the
//! counters per scrape target at every look and computes the increments itself
//! ([`super::counters`]). Templates in the old `sum(increase(…[{{ interval }}]))` form are
//! refused at start-up with a message saying so: `increase()` extrapolates to the window's
//! edges and drops a new series' first increment, which is what this format replaces.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{CanaryName, Namespace};

mod promql;

pub use promql::{escape_string, is_variable_key};
use promql::{render_pieces, scan, validate_query, Values};

/// The label verdict adds to tell the parts of its one reading query apart
/// (`sli/prometheus.rs`); a template's `process_labels` may not use it.
pub const PART_LABEL: &str = "verdict_part";

/// Which side of the comparison a query is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    /// The new revision (`<target>` workload).
    Canary,
    /// The baseline running beside it (`<target>-primary`).
    Primary,
}

impl Arm {
    /// `"canary"` or `"primary"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Canary => "canary",
            Arm::Primary => "primary",
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unit of the latency histogram's `le` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyUnit {
    Seconds,
    Milliseconds,
}

impl LatencyUnit {
    /// Converts an `le` boundary in this unit to seconds (what the judge works in).
    pub fn to_seconds(self, value: f64) -> f64 {
        match self {
            LatencyUnit::Seconds => value,
            LatencyUnit::Milliseconds => value / 1000.0,
        }
    }
}

/// Why a template could not be loaded or rendered. Always names the file or template and
/// the field, so a broken template stops start-up with a message that says where to look.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("SLI templates: cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SLI template {file}: invalid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("SLI template {file}, field `{field}`: {why}")]
    Field {
        file: String,
        field: String,
        why: String,
    },
    #[error("SLI template {template:?}: no value for `{{{{ variables.{name} }}}}` (set it in the canary's metadata)")]
    MissingVariable { template: String, name: String },
    #[error("unknown SLI template {0:?}")]
    NotFound(String),
}

/// The three series selectors of one arm, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedQueries {
    /// Request counters.
    pub requests: String,
    /// Failed-request counters.
    pub errors: String,
    /// Latency histogram bucket counters (with an `le` label).
    pub latency_buckets: String,
}

/// A canary's template values beyond its namespace and target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateVariables {
    /// Flagger's apex service (`spec.service.name`) when it is not the target's name; it
    /// fills `{{ service }}`, which is the target otherwise (as in Flagger).
    pub service: Option<CanaryName>,
    /// `{{ variables.<key> }}` values (`var.<key>` in the metadata).
    pub custom: BTreeMap<String, String>,
}

/// Values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub namespace: &'a Namespace,
    pub target: &'a CanaryName,
    /// `{{ service }}` and `{{ variables.<key> }}`.
    pub variables: &'a TemplateVariables,
}

/// Optional per-arm replacements for some of the three queries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmOverride {
    requests: Option<String>,
    errors: Option<String>,
    latency_buckets: Option<String>,
}

/// The YAML file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    name: String,
    description: String,
    assumes: String,
    latency_unit: LatencyUnit,
    /// The labels that together name one process (whose counters reset together);
    /// counters are summed within each. Default: the scrape target, `[job, instance]`.
    #[serde(default)]
    process_labels: Option<Vec<String>>,
    requests: String,
    errors: String,
    latency_buckets: String,
    #[serde(default)]
    canary: Option<ArmOverride>,
    #[serde(default)]
    primary: Option<ArmOverride>,
}

/// One validated SLI template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    description: String,
    assumes: String,
    latency_unit: LatencyUnit,
    process_labels: Vec<String>,
    /// Where it came from (a path, or `builtin:<name>`), for error messages.
    source: String,
    canary: ArmQueries,
    primary: ArmQueries,
}

/// The three (unrendered) queries for one arm.
#[derive(Debug, Clone)]
struct ArmQueries {
    requests: String,
    errors: String,
    latency_buckets: String,
}

impl Template {
    /// Parses and validates a template. `source` names the file in error messages; the
    /// template's `name` must equal `expected_name` (the file stem) when one is given, so
    /// the name a canary asks for is the file an operator sees.
    pub fn parse(
        source: &str,
        expected_name: Option<&str>,
        yaml: &str,
    ) -> Result<Self, TemplateError> {
        let mut file: TemplateFile =
            serde_yaml_ng::from_str(yaml).map_err(|e| TemplateError::Yaml {
                file: source.to_owned(),
                message: e.to_string(),
            })?;
        // Block scalars end in a newline; queries are compared and logged, so keep them tidy.
        for query in [
            &mut file.requests,
            &mut file.errors,
            &mut file.latency_buckets,
        ]
        .into_iter()
        .chain(
            [file.canary.as_mut(), file.primary.as_mut()]
                .into_iter()
                .flatten()
                .flat_map(|o| [&mut o.requests, &mut o.errors, &mut o.latency_buckets])
                .flatten(),
        ) {
            *query = query.trim().to_owned();
        }
        let field_err = |field: &str, why: String| TemplateError::Field {
            file: source.to_owned(),
            field: field.to_owned(),
            why,
        };
        let name_ok = !file.name.is_empty()
            && file.name.len() <= 63
            && file
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(field_err(
                "name",
                format!("{:?} must be 1-63 characters of [a-z0-9-]", file.name),
            ));
        }
        if let Some(expected) = expected_name {
            if file.name != expected {
                return Err(field_err(
                    "name",
                    format!(
                        "{:?} differs from the file name {expected:?}; canaries select templates by file name",
                        file.name
                    ),
                ));
            }
        }
        for (field, value) in [
            ("description", &file.description),
            ("assumes", &file.assumes),
        ] {
            if value.trim().is_empty() {
                return Err(field_err(field, "must not be empty".into()));
            }
        }
        for (field, text) in [
            ("requests".to_string(), Some(&file.requests)),
            ("errors".to_string(), Some(&file.errors)),
            ("latency_buckets".to_string(), Some(&file.latency_buckets)),
        ]
        .into_iter()
        .chain(
            [(Arm::Canary, &file.canary), (Arm::Primary, &file.primary)]
                .into_iter()
                .flat_map(|(arm, over)| {
                    let over = over.as_ref();
                    [
                        (
                            format!("{arm}.requests"),
                            over.and_then(|o| o.requests.as_ref()),
                        ),
                        (
                            format!("{arm}.errors"),
                            over.and_then(|o| o.errors.as_ref()),
                        ),
                        (
                            format!("{arm}.latency_buckets"),
                            over.and_then(|o| o.latency_buckets.as_ref()),
                        ),
                    ]
                }),
        ) {
            if let Some(text) = text {
                validate_query(text).map_err(|why| field_err(&field, why))?;
            }
        }
        let process_labels = match file.process_labels.take() {
            None => vec!["job".to_owned(), "instance".to_owned()],
            Some(labels) => {
                let bad = labels.iter().find(|l| {
                    let mut chars = l.chars();
                    !(matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
                        || l.as_str() == "le"
                        || l.as_str() == PART_LABEL
                });
                if labels.is_empty() || bad.is_some() {
                    return Err(field_err(
                        "process_labels",
                        format!("{labels:?} must be one or more label names other than `le` and `{PART_LABEL}`"),
                    ));
                }
                labels
            }
        };
        let base = ArmQueries {
            requests: file.requests,
            errors: file.errors,
            latency_buckets: file.latency_buckets,
        };
        let merge = |over: Option<ArmOverride>| ArmQueries {
            requests: over
                .as_ref()
                .and_then(|o| o.requests.clone())
                .unwrap_or_else(|| base.requests.clone()),
            errors: over
                .as_ref()
                .and_then(|o| o.errors.clone())
                .unwrap_or_else(|| base.errors.clone()),
            latency_buckets: over
                .as_ref()
                .and_then(|o| o.latency_buckets.clone())
                .unwrap_or_else(|| base.latency_buckets.clone()),
        };
        let template = Template {
            name: file.name,
            description: file.description.trim().to_owned(),
            assumes: file.assumes.trim().to_owned(),
            latency_unit: file.latency_unit,
            process_labels,
            source: source.to_owned(),
            canary: merge(file.canary),
            primary: merge(file.primary),
        };
        Ok(template)
    }

    fn queries(&self, arm: Arm) -> &ArmQueries {
        match arm {
            Arm::Canary => &self.canary,
            Arm::Primary => &self.primary,
        }
    }

    /// The template's name (its file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One line for people choosing a template.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Which metrics and labels the template needs.
    pub fn assumes(&self) -> &str {
        &self.assumes
    }

    /// Unit of the histogram's `le` labels.
    pub fn latency_unit(&self) -> LatencyUnit {
        self.latency_unit
    }

    /// The labels that name one process; counters are summed within each.
    pub fn process_labels(&self) -> &[String] {
        &self.process_labels
    }

    /// Renders the three selectors of one arm with escaped values.
    pub fn render(
        &self,
        arm: Arm,
        input: &RenderInput<'_>,
    ) -> Result<RenderedQueries, TemplateError> {
        let workload = match arm {
            Arm::Canary => input.target.as_str().to_owned(),
            Arm::Primary => format!("{}-primary", input.target),
        };
        let service = input.variables.service.as_ref().unwrap_or(input.target);
        let values = Values {
            namespace: input.namespace.as_str(),
            target: input.target.as_str(),
            workload: &workload,
            service: service.as_str(),
            arm: arm.as_str(),
            variables: Some(&input.variables.custom),
        };
        let queries = self.queries(arm);
        let one = |text: &str| -> Result<String, TemplateError> {
            // Scanning cannot fail here: the same text passed validation at load time.
            let pieces = scan(text).map_err(|why| TemplateError::Field {
                file: self.source.clone(),
                field: arm.as_str().to_owned(),
                why,
            })?;
            render_pieces(&pieces, &values).map_err(|name| TemplateError::MissingVariable {
                template: self.name.clone(),
                name,
            })
        };
        Ok(RenderedQueries {
            requests: one(&queries.requests)?,
            errors: one(&queries.errors)?,
            latency_buckets: one(&queries.latency_buckets)?,
        })
    }
}

/// The shipped templates, compiled in so `serve` and `demo` work with no directory.
const BUILTIN: &[(&str, &str)] = &[
    ("istio", include_str!("../../metric-templates/istio.yaml")),
    (
        "linkerd",
        include_str!("../../metric-templates/linkerd.yaml"),
    ),
    ("nginx", include_str!("../../metric-templates/nginx.yaml")),
    (
        "contour",
        include_str!("../../metric-templates/contour.yaml"),
    ),
    (
        "app-metrics",
        include_str!("../../metric-templates/app-metrics.yaml"),
    ),
    ("gloo", include_str!("../../metric-templates/gloo.yaml")),
    (
        "appmesh",
        include_str!("../../metric-templates/appmesh.yaml"),
    ),
    ("kuma", include_str!("../../metric-templates/kuma.yaml")),
    (
        "traefik",
        include_str!("../../metric-templates/traefik.yaml"),
    ),
    (
        "gateway-api",
        include_str!("../../metric-templates/gateway-api.yaml"),
    ),
    (
        "app-metrics-operator",
        include_str!("../../metric-templates/app-metrics-operator.yaml"),
    ),
    (
        "opentelemetry",
        include_str!("../../metric-templates/opentelemetry.yaml"),
    ),
    (
        "argo-istio",
        include_str!("../../metric-templates/argo-istio.yaml"),
    ),
    (
        "argo-nginx",
        include_str!("../../metric-templates/argo-nginx.yaml"),
    ),
    (
        "argo-app-metrics",
        include_str!("../../metric-templates/argo-app-metrics.yaml"),
    ),
];

/// All templates known to the service, by name.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: BTreeMap<String, Template>,
}

impl TemplateSet {
    /// The templates shipped in `metric-templates/`, embedded in the binary.
    ///
    /// The embedded files are validated by this crate's tests, so failing here means the
    /// binary itself is broken; the error still names the file rather than panicking.
    pub fn builtin() -> Result<Self, TemplateError> {
        let mut set = TemplateSet::default();
        for (name, yaml) in BUILTIN {
            let template = Template::parse(&format!("builtin:{name}.yaml"), Some(name), yaml)?;
            set.insert(template);
        }
        Ok(set)
    }

    /// Only the `*.yaml` / `*.yml` files of one directory (not its subdirectories, so
    /// `metric-templates/flagger/` with Flagger's own CRDs is not mistaken for templates).
    pub fn from_dir(path: &Path) -> Result<Self, TemplateError> {
        let io = |source| TemplateError::Io {
            path: path.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file = entry.path();
            let is_yaml = matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            // Follow symlinks: a Kubernetes ConfigMap volume is a directory of symlinks.
            if is_yaml && std::fs::metadata(&file).map_err(io)?.is_file() {
                files.push(file);
            }
        }
        // Sorted so that which file wins a name clash does not depend on directory order.
        files.sort();
        let mut set = TemplateSet::default();
        for file in files {
            let shown = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| TemplateError::Io {
                path: file.clone(),
                source,
            })?;
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let template = Template::parse(&shown, Some(stem), &text)?;
            if let Some(previous) = set.templates.get(template.name()) {
                return Err(TemplateError::Field {
                    file: shown,
                    field: "name".into(),
                    why: format!("{:?} is also defined by {}", template.name, previous.source),
                });
            }
            set.insert(template);
        }
        Ok(set)
    }

    /// The built-in templates, with the directory's templates added or replacing built-ins
    /// of the same name. What `serve` loads at start-up when a directory is configured.
    pub fn load_dir(path: &Path) -> Result<Self, TemplateError> {
        let mut set = Self::builtin()?;
        for (_, template) in Self::from_dir(path)?.templates {
            set.insert(template);
        }
        Ok(set)
    }

    /// Adds a template, replacing one of the same name.
    pub fn insert(&mut self, template: Template) {
        self.templates.insert(template.name.clone(), template);
    }

    /// The template of that name.
    pub fn get(&self, name: &str) -> Result<&Template, TemplateError> {
        self.templates
            .get(name)
            .ok_or_else(|| TemplateError::NotFound(name.to_owned()))
    }

    /// All template names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// All templates, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }
}

#[cfg(test)]
mod tests {
    use super::promql::check_structure;
    use super::*;

    fn input<'a>(
        ns: &'a Namespace,
        target: &'a CanaryName,
        vars: &'a TemplateVariables,
    ) -> RenderInput<'a> {
        RenderInput {
            namespace: ns,
            target,
            variables: vars,
        }
    }

    fn template(requests: &str) -> Result<Template, TemplateError> {
        let yaml = format!(
            "name: t\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: |\n  {requests}\nerrors: 'e'\nlatency_buckets: 'b_bucket'\n"
        );
        Template::parse("test.yaml", None, &yaml)
    }

    fn names() -> (Namespace, CanaryName) {
        (
            Namespace::parse("test").unwrap(),
            CanaryName::parse("podinfo").unwrap(),
        )
    }

    #[test]
    fn builtin_templates_load_and_render_both_arms() {
        let set = TemplateSet::builtin().unwrap();
        let all: Vec<&str> = set.names().collect();
        assert_eq!(
            all,
            [
                "app-metrics",
                "app-metrics-operator",
                "appmesh",
                "argo-app-metrics",
                "argo-istio",
                "argo-nginx",
                "contour",
                "gateway-api",
                "gloo",
                "istio",
                "kuma",
                "linkerd",
                "nginx",
                "opentelemetry",
                "traefik"
            ],
            "shipped templates"
        );
        let (ns, target) = names();
        // The argo-* templates read the pod-template hashes the measure endpoint sets.
        let vars = TemplateVariables {
            custom: [("canary_hash", "6b8f9c7d4"), ("stable_hash", "5c9d7f8b6")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..TemplateVariables::default()
        };
        for t in set.iter() {
            for arm in [Arm::Canary, Arm::Primary] {
                let q = t.render(arm, &input(&ns, &target, &vars)).unwrap();
                for text in [&q.requests, &q.errors, &q.latency_buckets] {
                    assert!(!text.contains("{{"), "{}: {text}", t.name());
                    assert!(!text.contains("increase"), "{}: {text}", t.name());
                    check_structure(text).unwrap();
                }
                assert!(q.latency_buckets.contains("_bucket"), "{}", t.name());
            }
        }
    }

    #[test]
    fn argo_templates_select_the_arms_by_hash_and_need_the_hashes() {
        let set = TemplateSet::builtin().unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables {
            custom: [("canary_hash", "c4n4ry"), ("stable_hash", "st4b1e")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..TemplateVariables::default()
        };
        for name in ["argo-istio", "argo-app-metrics"] {
            let t = set.get(name).unwrap();
            let canary = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
            let primary = t.render(Arm::Primary, &input(&ns, &target, &vars)).unwrap();
            for q in [&canary.requests, &canary.errors, &canary.latency_buckets] {
                assert!(q.contains(r#"rollouts_pod_template_hash="c4n4ry""#), "{q}");
            }
            for q in [&primary.requests, &primary.errors, &primary.latency_buckets] {
                assert!(q.contains(r#"rollouts_pod_template_hash="st4b1e""#), "{q}");
            }
            // A Flagger canary that picks an Argo template is told what is missing.
            let err = t
                .render(
                    Arm::Canary,
                    &input(&ns, &target, &TemplateVariables::default()),
                )
                .unwrap_err();
            assert!(err.to_string().contains("canary_hash"), "{err}");
        }
        let nginx = set.get("argo-nginx").unwrap();
        let primary = nginx
            .render(Arm::Primary, &input(&ns, &target, &vars))
            .unwrap();
        assert!(primary.requests.contains(r#"service="podinfo-stable""#));
    }

    #[test]
    fn istio_arms_select_their_workloads() {
        let set = TemplateSet::builtin().unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables::default();
        let istio = set.get("istio").unwrap();
        let canary = istio
            .render(Arm::Canary, &input(&ns, &target, &vars))
            .unwrap();
        let primary = istio
            .render(Arm::Primary, &input(&ns, &target, &vars))
            .unwrap();
        assert!(canary
            .requests
            .contains(r#"destination_workload="podinfo""#));
        assert!(primary
            .requests
            .contains(r#"destination_workload="podinfo-primary""#));
        assert!(canary
            .requests
            .contains(r#"destination_workload_namespace="test""#));
        assert_eq!(istio.latency_unit(), LatencyUnit::Milliseconds);
    }

    #[test]
    fn spaces_inside_braces_are_optional() {
        let t = template("r{a=\"{{namespace}}\",b=\"{{   target }}\"}").unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables::default();
        let q = t.render(Arm::Primary, &input(&ns, &target, &vars)).unwrap();
        assert_eq!(q.requests, "r{a=\"test\",b=\"podinfo\"}");
    }

    #[test]
    fn variable_values_are_escaped_and_cannot_end_the_string() {
        let t = template("r{a=\"{{ variables.x }}\"}").unwrap();
        let (ns, target) = names();
        let mut vars = TemplateVariables::default();
        vars.custom
            .insert("x".to_string(), "x\"} or vector(1) #\\\n".to_string());
        let q = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
        assert_eq!(q.requests, r#"r{a="x\"} or vector(1) #\\\n"}"#);
        // The rendered query still has exactly one string literal and balanced brackets.
        check_structure(&q.requests).unwrap();
    }

    #[test]
    fn regex_matcher_values_match_literally() {
        let t = template("r{a=~\"{{ variables.x }}-.*\"}").unwrap();
        let (ns, target) = names();
        let mut vars = TemplateVariables::default();
        vars.custom.insert("x".to_string(), ".*|a".to_string());
        let q = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
        assert_eq!(q.requests, r#"r{a=~"\\.\\*\\|a-.*"}"#);
    }

    #[test]
    fn service_is_flaggers_apex_service_and_arm_names_the_arm() {
        let t =
            template("r{w=\"{{ workload }}\",s=\"{{ service }}\",a=\"{{ service }}-{{ arm }}\"}")
                .unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables::default();
        let c = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
        let p = t.render(Arm::Primary, &input(&ns, &target, &vars)).unwrap();
        // Without a service key the apex service is the target, as in Flagger.
        assert!(c
            .requests
            .contains(r#"w="podinfo",s="podinfo",a="podinfo-canary""#));
        assert!(p
            .requests
            .contains(r#"w="podinfo-primary",s="podinfo",a="podinfo-primary""#));
        // spec.service.name differs from the target: services follow it, workloads do not.
        let vars = TemplateVariables {
            service: Some(CanaryName::parse("frontend").unwrap()),
            ..TemplateVariables::default()
        };
        let c = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
        let p = t.render(Arm::Primary, &input(&ns, &target, &vars)).unwrap();
        assert!(c
            .requests
            .contains(r#"w="podinfo",s="frontend",a="frontend-canary""#));
        assert!(p
            .requests
            .contains(r#"w="podinfo-primary",s="frontend",a="frontend-primary""#));
    }

    #[test]
    fn refuses_unknown_variables() {
        let err = template("r{a=\"{{ name }}\"}").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown variable"), "{text}");
        assert!(text.contains("field `requests`"), "{text}");
        assert!(text.contains("test.yaml"), "{text}");
    }

    #[test]
    fn refuses_placeholders_outside_double_quotes() {
        for bad in [
            "r{a={{ namespace }}}",
            "r{a='{{ namespace }}'}",
            "r + {{ variables.x }}",
            "r{a=\"{{ interval }}\"}",
        ] {
            let err = template(bad).unwrap_err().to_string();
            assert!(err.contains("field `requests`"), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_structural_mistakes_and_the_old_increase_form() {
        for (bad, why) in [
            ("r{a=\"{{ namespace }}\"", "never closed"),
            ("r{a=\"{{ namespace }}\"]", "closes"),
            ("r{a=\"{{ namespace }\"}", "never closed by"),
            (
                "sum(increase(r{a=\"{{ namespace }}\"}[{{ interval }}]))",
                "no longer used",
            ),
            ("sum(increase(r{a=\"{{ namespace }}\"}[5m]))", "increase()"),
            ("sum by (le) (b_bucket)", "series selector"),
        ] {
            let err = template(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_yaml_fields_and_name_mismatch_are_errors() {
        let yaml = "name: t\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: 'r'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\n";
        let typo = format!("{yaml}latency_units: seconds\n");
        let err = Template::parse("t.yaml", None, &typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("latency_units"), "{err}");
        let err = Template::parse("other.yaml", Some("other"), yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`name`") && err.contains("other"), "{err}");
    }

    #[test]
    fn missing_variable_value_is_an_error_at_render() {
        let t = template("r{a=\"{{ variables.route }}\"}").unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables::default();
        let err = t
            .render(Arm::Canary, &input(&ns, &target, &vars))
            .unwrap_err();
        assert!(matches!(err, TemplateError::MissingVariable { ref name, .. } if name == "route"));
    }

    #[test]
    fn per_arm_override_replaces_only_that_arm() {
        let yaml = "name: t\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: 'r{c!=\"\"}'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\nprimary:\n  requests: 'r{c=\"\"}'\n";
        let t = Template::parse("t.yaml", None, yaml).unwrap();
        let (ns, target) = names();
        let vars = TemplateVariables::default();
        let c = t.render(Arm::Canary, &input(&ns, &target, &vars)).unwrap();
        let p = t.render(Arm::Primary, &input(&ns, &target, &vars)).unwrap();
        assert!(c.requests.contains("c!=\"\""));
        assert!(p.requests.contains("c=\"\""));
        assert_eq!(c.errors, p.errors);
    }

    #[test]
    fn process_labels_default_to_the_scrape_target_and_are_checked() {
        let t = template("r").unwrap();
        assert_eq!(t.process_labels(), ["job", "instance"]);
        let base = "name: t\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: r\nerrors: e\nlatency_buckets: b_bucket\n";
        let own =
            Template::parse("t.yaml", None, &format!("{base}process_labels: [pod]\n")).unwrap();
        assert_eq!(own.process_labels(), ["pod"]);
        for bad in ["[]", "[le]", "['a-b']", "[pod, verdict_part]"] {
            let err = Template::parse("t.yaml", None, &format!("{base}process_labels: {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("process_labels"), "{bad}: {err}");
        }
    }

    #[test]
    fn broken_override_names_the_arm_field() {
        let yaml = "name: t\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: 'r'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\nprimary:\n  errors: 'e{a=\"1\"'\n";
        let err = Template::parse("t.yaml", None, yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("primary.errors"), "{err}");
    }

    #[test]
    fn directory_overrides_and_adds_to_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let istio = "name: istio\ndescription: custom\nassumes: a\nlatency_unit: seconds\nrequests: 'r'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\n";
        std::fs::write(dir.path().join("istio.yaml"), istio).unwrap();
        std::fs::write(
            dir.path().join("mine.yml"),
            istio.replace("name: istio", "name: mine"),
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
        let set = TemplateSet::load_dir(dir.path()).unwrap();
        assert_eq!(set.get("istio").unwrap().description(), "custom");
        assert!(set.get("mine").is_ok());
        assert!(set.get("linkerd").is_ok());
        assert!(matches!(set.get("nope"), Err(TemplateError::NotFound(_))));
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_are_loaded_like_a_configmap_volume() {
        // A ConfigMap volume holds `name.yaml -> ..data/name.yaml` symlinks.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..data");
        std::fs::create_dir(&data).unwrap();
        let mine = "name: mine\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: 'r'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\n";
        std::fs::write(data.join("mine.yaml"), mine).unwrap();
        std::os::unix::fs::symlink(data.join("mine.yaml"), dir.path().join("mine.yaml")).unwrap();
        let set = TemplateSet::from_dir(dir.path()).unwrap();
        assert!(set.get("mine").is_ok(), "symlinked template was skipped");
    }

    #[test]
    fn broken_file_in_directory_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "name: bad\ndescription: d\nassumes: a\nlatency_unit: seconds\nrequests: 'r{a=\"{{ nope }}\"}'\nerrors: 'e'\nlatency_buckets: 'b_bucket'\n";
        std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
        let err = TemplateSet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("`requests`"),
            "{err}"
        );
        let missing = TemplateSet::load_dir(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(missing, TemplateError::Io { .. }));
    }
}
