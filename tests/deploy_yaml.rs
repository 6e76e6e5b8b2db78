//! Static checks of `deploy/` and `webhooks/`.
//!
//! helm is not available from the registries this project may use (Debian, PyPI, npm,
//! crates.io), so the chart cannot be rendered with `helm template` here. The chart is
//! written so that every template is valid YAML once each `{{ … }}` is replaced by a
//! scalar — control actions (`if`, `range`, `with`, `end`) only appear in comment lines —
//! and these tests parse it that way and check the fields each kind needs. The Canary
//! examples are plain YAML; their verdict metadata is resolved with the service's own
//! settings code, so a key or value the service would refuse fails here first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;
use verdict::analysis::settings::{resolve, ANALYSIS_KEYS, VARIABLE_PREFIX};
use verdict::config::Config;
use verdict::domain::CanaryName;
use verdict::sli::templates::TemplateSet;
use verdict::webhook::Hook;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// What every `{{ … }}` becomes before parsing.
const PLACEHOLDER: &str = "__helm__";
/// Keys of the load-test hook's metadata (webhooks/README.md), plus flagger-loadtester's
/// `type` and `logCmdOutput`, accepted for compatibility.
const LOAD_TEST_KEYS: &[&str] = &[
    "cmd",
    "url",
    "rps",
    "duration",
    "requests",
    "concurrency",
    "method",
    "headers",
    "body",
    "content_type",
    "timeout",
    "type",
    "logCmdOutput",
    "token",
];
/// What the examples hold where the chart's webhook token goes; `envsubst` fills it in
/// (README, "Deploying with Helm").
const TOKEN_PLACEHOLDER: &str = "${VERDICT_WEBHOOK_TOKEN}";
const LOAD_TEST_PATH: &str = "load-test";

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
        .collect();
    out.sort();
    out
}

/// Every non-empty document of a YAML text.
fn documents(text: &str, shown: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("{shown}: invalid YAML: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Checks the chart's authoring rule on one template and replaces each `{{ … }}` by the
/// placeholder: expressions on one line; trimming markers and control actions only in
/// comment lines, where what they remove or repeat cannot change the YAML structure.
fn placeholder_text(text: &str, shown: &str) -> Result<String, String> {
    const CONTROL: &[&str] = &[
        "if", "else", "end", "range", "with", "define", "template", "block",
    ];
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{shown}:{}", n + 1);
        let comment = line.trim_start().starts_with('#');
        let mut rest = line;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| format!("{at}: `{{{{` not closed on the same line"))?;
            let inner = &rest[open + 2..open + close];
            if !comment {
                if inner.starts_with('-') || inner.ends_with('-') {
                    return Err(format!(
                        "{at}: whitespace trimming `{{{{- -}}}}` outside a comment line changes the YAML"
                    ));
                }
                let word = inner.split_whitespace().next().unwrap_or("");
                if CONTROL.contains(&word) {
                    return Err(format!(
                        "{at}: `{{{{ {word} … }}}}` outside a comment line; put control actions in `# {{{{ … }}}}` lines"
                    ));
                }
            }
            out.push_str(PLACEHOLDER);
            rest = &rest[open + close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("{at}: `}}}}` without `{{{{`"));
        }
        out.push_str(rest);
        out.push('\n');
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in keys {
        cur = cur.get(*k)?;
    }
    cur.as_str()
}

fn at<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    let mut cur = v;
    for k in keys {
        match cur.get(*k) {
            Some(next) => cur = next,
            None => return &Value::Null,
        }
    }
    cur
}

fn seq<'a>(v: &'a Value, keys: &[&str]) -> &'a [Value] {
    at(v, keys).as_sequence().map_or(&[], Vec::as_slice)
}

fn map_keys(v: &Value, keys: &[&str]) -> BTreeSet<String> {
    at(v, keys)
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The chart's templates, parsed with placeholders, keyed by kind.
fn chart_objects() -> BTreeMap<String, Vec<(String, Value)>> {
    let mut by_kind: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    let dir = "deploy/helm/verdict/templates";
    let templates = files(dir, "yaml");
    assert!(!templates.is_empty(), "no templates in {dir}");
    for file in templates {
        let shown = file.display().to_string();
        let text = placeholder_text(&read(&file), &shown).unwrap_or_else(|e| panic!("{e}"));
        let docs = documents(&text, &shown).unwrap_or_else(|e| panic!("{e}"));
        assert!(!docs.is_empty(), "{shown}: no manifest");
        for doc in docs {
            let kind = str_at(&doc, &["kind"])
                .unwrap_or_else(|| panic!("{shown}: a document without kind"))
                .to_owned();
            assert!(
                str_at(&doc, &["apiVersion"]).is_some(),
                "{shown}: {kind} without apiVersion"
            );
            assert!(
                str_at(&doc, &["metadata", "name"]).is_some(),
                "{shown}: {kind} without metadata.name"
            );
            by_kind.entry(kind).or_default().push((shown.clone(), doc));
        }
    }
    by_kind
}

fn one<'a>(objects: &'a BTreeMap<String, Vec<(String, Value)>>, kind: &str) -> &'a Value {
    match objects.get(kind).map(Vec::as_slice) {
        Some([(_, v)]) => v,
        other => panic!(
            "expected one {kind}, got {}",
            other.map_or(0, <[(String, Value)]>::len)
        ),
    }
}

/// `VERDICT_*` names in README's configuration reference (`…__X` continues the
/// previous name's prefix, as the table abbreviates).
fn readme_env_names() -> BTreeSet<String> {
    let readme = read(&path("README.md"));
    let section = readme
        .split("## Configuration reference")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration reference section");
    let mut names = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let mut previous: Option<String> = None;
        for token in line.split('`').skip(1).step_by(2) {
            if token.starts_with("VERDICT_") {
                names.insert(token.to_owned());
                previous = Some(token.to_owned());
            } else if let Some(suffix) = token.strip_prefix("…__") {
                if let Some(prev) = &previous {
                    let prefix = prev.rsplit_once("__").map_or(prev.as_str(), |(p, _)| p);
                    names.insert(format!("{prefix}__{suffix}"));
                }
            }
        }
    }
    names
}

/// Configuration keys under `defaults.` in the README's reference.
fn readme_default_keys() -> BTreeSet<String> {
    let readme = read(&path("README.md"));
    readme
        .split('`')
        .filter_map(|t| t.strip_prefix("defaults."))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn chart_and_values_parse() {
    let chart = documents(&read(&path("deploy/helm/verdict/Chart.yaml")), "Chart.yaml").unwrap();
    let chart = &chart[0];
    assert_eq!(str_at(chart, &["apiVersion"]), Some("v2"));
    assert_eq!(str_at(chart, &["name"]), Some("verdict"));
    for key in ["version", "appVersion", "description"] {
        assert!(str_at(chart, &[key]).is_some(), "Chart.yaml {key}");
    }

    let values = documents(
        &read(&path("deploy/helm/verdict/values.yaml")),
        "values.yaml",
    )
    .unwrap();
    let values = &values[0];
    let replicas = at(values, &["replicaCount"]).as_u64().unwrap_or(0);
    assert!(
        replicas >= 2,
        "replicaCount {replicas}: verdict runs 2+ replicas"
    );
    for key in [
        &["resources", "requests", "cpu"][..],
        &["resources", "requests", "memory"],
        &["resources", "limits", "memory"],
        &["config", "prometheus", "url"],
        &["config", "prometheus", "timeout"],
        &["podSecurityContext", "runAsUser"],
    ] {
        assert!(
            !at(values, key).is_null(),
            "values.yaml needs {}",
            key.join(".")
        );
    }
    let uid = at(values, &["podSecurityContext", "runAsUser"])
        .as_u64()
        .unwrap_or(0);
    assert!(uid > 0, "runAsUser must not be root");
    // Every default the chart sets is a configuration key verdict knows.
    let known = readme_default_keys();
    assert!(known.contains("alpha"), "{known:?}");
    for key in map_keys(values, &["config", "defaults"]) {
        assert!(
            known.contains(&key),
            "values config.defaults.{key} is not a configuration key (known: {known:?})"
        );
    }
}

/// verdict's shutdown deadline fits in the pod's grace period: after SIGTERM, verdict
/// ends everything by `shutdown_grace` and exits within `startup::RUNTIME_STOP`; a
/// further second covers the signal's delivery and the process' own exit. Kubernetes
/// kills the pod `terminationGracePeriodSeconds` after SIGTERM, so a chart whose
/// grace period is shorter would cut verdict off before it recorded what it was doing.
#[test]
fn the_shutdown_deadline_fits_in_the_pods_grace_period() {
    let values = documents(
        &read(&path("deploy/helm/verdict/values.yaml")),
        "values.yaml",
    )
    .expect("values.yaml parses");
    let values = &values[0];
    let grace = str_at(values, &["config", "shutdownGrace"]).expect("config.shutdownGrace");
    let grace = humantime::parse_duration(grace).expect("shutdownGrace is a duration");
    let pod = at(values, &["terminationGracePeriodSeconds"])
        .as_u64()
        .map(std::time::Duration::from_secs)
        .expect("terminationGracePeriodSeconds");
    let needed = grace + verdict::startup::RUNTIME_STOP + std::time::Duration::from_secs(1);
    assert!(
        needed <= pod,
        "shutdownGrace {grace:?} plus exit needs {needed:?}, but the pod is killed after {pod:?}"
    );
    // verdict without the chart has the chart's deadline.
    assert_eq!(Config::default().shutdown_grace, grace);

    // The Deployment takes both from these values.
    let deployment = read(&path("deploy/helm/verdict/templates/deployment.yaml"));
    assert!(
        deployment
            .contains("terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}"),
        "the pod's grace period is not values.terminationGracePeriodSeconds"
    );
    let env = deployment
        .split("- name: VERDICT_SHUTDOWN_GRACE")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .expect("the Deployment sets VERDICT_SHUTDOWN_GRACE");
    assert_eq!(
        env.trim(),
        "value: {{ .Values.config.shutdownGrace | quote }}",
        "VERDICT_SHUTDOWN_GRACE does not come from values.config.shutdownGrace"
    );
}

#[test]
fn chart_yaml_names_its_home_and_sources() {
    let chart = documents(&read(&path("deploy/helm/verdict/Chart.yaml")), "Chart.yaml").unwrap();
    let home = str_at(&chart[0], &["home"]).expect("Chart.yaml home");
    assert!(home.starts_with("https://"), "{home}");
    let sources = seq(&chart[0], &["sources"]);
    assert!(
        !sources.is_empty()
            && sources
                .iter()
                .all(|s| s.as_str().is_some_and(|s| s.starts_with("https://"))),
        "Chart.yaml sources: {sources:?}"
    );
    let deployment = read(&path("deploy/helm/verdict/templates/deployment.yaml"));
    assert!(
        deployment.contains("resources: {{ toYaml .Values.resources | nindent 12 }}"),
        "the container's resources are values.yaml's, as written"
    );
}

/// Validates `values` (as JSON) against the chart's values.schema.json with a real JSON
/// Schema validator (Python's jsonschema, draft-07 as Helm reads it); the error messages.
fn schema_errors(values: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&read(&path("deploy/helm/verdict/values.schema.json")))
            .expect("values.schema.json");
    support::schema::draft7_errors(&schema, values)
}

fn values_json() -> serde_json::Value {
    let values: serde_json::Value =
        serde_yaml_ng::from_str(&read(&path("deploy/helm/verdict/values.yaml"))).expect("values");
    values
}

#[test]
fn values_schema_accepts_the_defaults_and_refuses_bad_values() {
    assert_eq!(schema_errors(&values_json()), Vec::<String>::new());

    // The schema offers every `defaults.*` key the README documents, and no other.
    let schema: serde_json::Value =
        serde_json::from_str(&read(&path("deploy/helm/verdict/values.schema.json")))
            .expect("schema JSON");
    let in_schema: BTreeSet<String> = schema
        .pointer("/properties/config/properties/defaults/properties")
        .and_then(serde_json::Value::as_object)
        .expect("config.defaults in the schema")
        .keys()
        .cloned()
        .collect();
    assert_eq!(in_schema, readme_default_keys(), "schema vs README");

    // What a user sets on the documented paths is accepted.
    let mut ok = values_json();
    ok["secrets"]["databaseUrl"] = "postgres://verdict:pw@postgres.db:5432/verdict".into();
    ok["secrets"]["webhookToken"] = "0a1b2c3d4e5f6071".into();
    ok["image"]["repository"] = "registry.example.com/verdict".into();
    ok["config"]["defaults"]["template"] = "linkerd".into();
    ok["config"]["defaults"]["alpha"] = 0.05.into();
    ok["config"]["defaults"]["dispersion"] = "auto".into();
    ok["config"]["defaults"]["max_looks"] = 40.into();
    ok["config"]["defaults"]["on_inconclusive"] = "hold".into();
    ok["config"]["defaults"]["lookback_step"] = "30s".into();
    ok["serviceMonitor"]["enabled"] = true.into();
    ok["resources"] = serde_json::json!({"requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "2Gi", "ephemeral-storage": "1Gi"}});
    ok["global"] = serde_json::json!({"imageRegistry": "x"});
    ok["extraEnv"] = serde_json::json!([{"name": "RUST_LOG", "value": "debug"}]);
    assert_eq!(schema_errors(&ok), Vec::<String>::new());

    for (pointer, value, why) in [
        ("/replicaCount", serde_json::json!("two"), "replicaCount"),
        ("/replicaCounts", serde_json::json!(2), "replicaCounts"),
        (
            "/image/pullPolicy",
            serde_json::json!("Sometimes"),
            "pullPolicy",
        ),
        ("/config/logFormat", serde_json::json!("xml"), "logFormat"),
        (
            "/config/prometheus/url",
            serde_json::json!("prometheus:9090"),
            "prometheus/url",
        ),
        (
            "/config/prometheus/timeout",
            serde_json::json!("3 seconds"),
            "timeout",
        ),
        ("/config/defaults/alhpa", serde_json::json!(0.1), "alhpa"),
        (
            "/secrets/databaseUrl",
            serde_json::json!("mysql://x"),
            "databaseUrl",
        ),
        (
            "/secrets/webhookToken",
            serde_json::json!("short"),
            "webhookToken",
        ),
        ("/service/port", serde_json::json!(70000), "service/port"),
        (
            "/podSecurityContext/runAsUser",
            serde_json::json!(0),
            "runAsUser",
        ),
        (
            "/sliTemplates/My_Mesh",
            serde_json::json!("name: x"),
            "My_Mesh",
        ),
    ] {
        let mut bad = values_json();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let target = if parent.is_empty() {
            &mut bad
        } else {
            bad.pointer_mut(parent)
                .unwrap_or_else(|| panic!("{parent}"))
        };
        target[key] = value;
        let errors = schema_errors(&bad);
        assert!(
            errors.iter().any(|e| e.contains(why)),
            "{pointer} = {}: {errors:?}",
            bad.pointer(pointer).unwrap_or(&serde_json::Value::Null)
        );
    }
}

#[test]
fn chart_templates_are_yaml_with_the_fields_each_kind_needs() {
    let objects = chart_objects();
    let kinds: BTreeSet<&str> = objects.keys().map(String::as_str).collect();
    for kind in [
        "Deployment",
        "Service",
        "ServiceMonitor",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the chart ({kinds:?})");
    }

    // Deployment.
    let deploy = one(&objects, "Deployment");
    assert_eq!(str_at(deploy, &["apiVersion"]), Some("apps/v1"));
    assert!(!at(deploy, &["spec", "replicas"]).is_null());
    let selector = map_keys(deploy, &["spec", "selector", "matchLabels"]);
    assert!(!selector.is_empty(), "Deployment without selector");
    let pod_labels = map_keys(deploy, &["spec", "template", "metadata", "labels"]);
    assert!(
        selector.is_subset(&pod_labels),
        "pod labels {pod_labels:?} must include the selector {selector:?}"
    );
    let pod = at(deploy, &["spec", "template", "spec"]);
    assert_eq!(
        at(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(pod, &["enableServiceLinks"]).as_bool(),
        Some(false),
        "service links would inject VERDICT_SERVICE_HOST & co., which verdict refuses"
    );
    let containers = seq(pod, &["containers"]);
    assert!(!containers.is_empty(), "Deployment without containers");
    let volumes: BTreeSet<&str> = seq(pod, &["volumes"])
        .iter()
        .filter_map(|v| str_at(v, &["name"]))
        .collect();
    let readme_env = readme_env_names();
    assert!(
        readme_env.contains("VERDICT_DATABASE_URL"),
        "{readme_env:?}"
    );
    let mut secret_keys = BTreeSet::new();
    for c in containers {
        let name = str_at(c, &["name"]).unwrap_or("?");
        assert!(str_at(c, &["image"]).is_some(), "{name}: image");
        assert_eq!(
            str_at(c, &["livenessProbe", "httpGet", "path"]),
            Some("/healthz")
        );
        assert_eq!(
            str_at(c, &["readinessProbe", "httpGet", "path"]),
            Some("/readyz")
        );
        let sc = at(c, &["securityContext"]);
        assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true), "{name}");
        assert_eq!(
            at(sc, &["readOnlyRootFilesystem"]).as_bool(),
            Some(true),
            "{name}"
        );
        assert_eq!(
            at(sc, &["allowPrivilegeEscalation"]).as_bool(),
            Some(false),
            "{name}"
        );
        // Free-form: values.yaml's resources (with CPU and memory requests, checked in
        // chart_and_values_parse) go to the container as written.
        assert_eq!(
            str_at(c, &["resources"]),
            Some(PLACEHOLDER),
            "{name}: resources"
        );
        let ports: BTreeSet<&str> = seq(c, &["ports"])
            .iter()
            .filter_map(|p| str_at(p, &["name"]))
            .collect();
        for probe in ["livenessProbe", "readinessProbe"] {
            let port = str_at(c, &[probe, "httpGet", "port"]).unwrap_or("");
            assert!(
                ports.contains(port),
                "{name}: {probe} port {port:?} not in {ports:?}"
            );
        }
        let mounts: Vec<(&str, &str)> = seq(c, &["volumeMounts"])
            .iter()
            .map(|m| {
                (
                    str_at(m, &["name"]).unwrap_or(""),
                    str_at(m, &["mountPath"]).unwrap_or(""),
                )
            })
            .collect();
        for (volume, _) in &mounts {
            assert!(
                volumes.contains(volume),
                "{name}: mount of unknown volume {volume}"
            );
        }
        // A read-only root filesystem needs a writable /tmp.
        assert!(
            mounts.iter().any(|(_, p)| *p == "/tmp"),
            "{name}: no /tmp mount"
        );
        let mut env = BTreeMap::new();
        for e in seq(c, &["env"]) {
            let var = str_at(e, &["name"]).unwrap_or("").to_owned();
            if let Some(prefix) = var.strip_suffix(PLACEHOLDER) {
                // Generated from values (config.defaults, checked against the reference
                // in chart_and_values_parse): the prefix must be a documented one.
                assert!(
                    readme_env.iter().any(|n| n.starts_with(prefix)),
                    "{name}: no documented variable starts with {prefix}"
                );
            } else if var.starts_with("VERDICT_") {
                assert!(
                    readme_env.contains(&var),
                    "{name}: {var} is not in README's configuration reference"
                );
            }
            if let Some(key) = str_at(e, &["valueFrom", "secretKeyRef", "key"]) {
                secret_keys.insert(key.to_owned());
            }
            env.insert(var, e.clone());
        }
        let database = env
            .get("VERDICT_DATABASE_URL")
            .expect("VERDICT_DATABASE_URL");
        assert_eq!(
            str_at(database, &["valueFrom", "secretKeyRef", "key"]),
            Some("database-url"),
            "the database URL comes from a Secret"
        );
        assert!(at(database, &["valueFrom", "secretKeyRef", "optional"]).is_null());
        let dir = env
            .get("VERDICT_TEMPLATE_DIR")
            .and_then(|e| str_at(e, &["value"]))
            .expect("VERDICT_TEMPLATE_DIR");
        assert!(
            mounts.iter().any(|(_, p)| *p == dir),
            "{name}: VERDICT_TEMPLATE_DIR {dir} is not mounted"
        );
        for var in ["VERDICT_LISTEN", "VERDICT_PROMETHEUS__URL"] {
            assert!(env.contains_key(var), "{name}: {var}");
        }
    }

    // The SLI templates' ConfigMap is the one the Deployment mounts.
    let config_maps = objects.get("ConfigMap").map(Vec::as_slice).unwrap_or(&[]);
    let (_, config_map) = config_maps
        .iter()
        .find(|(file, _)| file.ends_with("configmap.yaml"))
        .expect("the SLI templates' ConfigMap");
    let config_map_name = str_at(config_map, &["metadata", "name"]).unwrap_or("");
    assert!(
        seq(pod, &["volumes"])
            .iter()
            .any(|v| str_at(v, &["configMap", "name"]) == Some(config_map_name)),
        "no volume mounts ConfigMap {config_map_name}"
    );

    // The Secret holds every key the Deployment reads.
    let secret = one(&objects, "Secret");
    assert_eq!(str_at(secret, &["apiVersion"]), Some("v1"));
    let written = map_keys(secret, &["stringData"]);
    assert!(
        secret_keys.is_subset(&written),
        "Deployment reads {secret_keys:?}, Secret writes {written:?}"
    );
    for key in ["database-url", "jwt-key", "grafana-token", "webhook-token"] {
        assert!(written.contains(key), "Secret without {key}");
    }

    // The Service selects the Deployment's pods and exposes the named port.
    let service = one(&objects, "Service");
    let service_selector = map_keys(service, &["spec", "selector"]);
    assert_eq!(service_selector, selector, "Service selector");
    let service_ports = seq(service, &["spec", "ports"]);
    assert!(!service_ports.is_empty(), "Service without ports");
    for p in service_ports {
        assert!(!at(p, &["port"]).is_null());
        assert_eq!(str_at(p, &["targetPort"]), Some("http"));
    }
    let service_port_names: BTreeSet<&str> = service_ports
        .iter()
        .filter_map(|p| str_at(p, &["name"]))
        .collect();

    // The ServiceMonitor scrapes /metrics on that Service.
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(
        str_at(monitor, &["apiVersion"]),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(
        map_keys(monitor, &["spec", "selector", "matchLabels"]),
        selector,
        "ServiceMonitor selector"
    );
    let endpoints = seq(monitor, &["spec", "endpoints"]);
    assert!(!endpoints.is_empty());
    for e in endpoints {
        assert_eq!(str_at(e, &["path"]), Some("/metrics"));
        let port = str_at(e, &["port"]).unwrap_or("");
        assert!(
            service_port_names.contains(port),
            "ServiceMonitor port {port}"
        );
    }

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(
        map_keys(pdb, &["spec", "selector", "matchLabels"]),
        selector,
        "PodDisruptionBudget selector"
    );
}

#[test]
fn the_chart_ships_the_dashboards_for_grafanas_sidecar() {
    // The chart can only read its own files: it holds copies of dashboards/, which must
    // not drift from what docs/grafana.md tells people to import.
    let shipped: BTreeMap<String, String> = files("deploy/helm/verdict/dashboards", "json")
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(p),
            )
        })
        .collect();
    let source: BTreeMap<String, String> = files("dashboards", "json")
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(p),
            )
        })
        .collect();
    assert!(!source.is_empty());
    assert_eq!(
        shipped.keys().collect::<Vec<_>>(),
        source.keys().collect::<Vec<_>>(),
        "deploy/helm/verdict/dashboards/ holds dashboards/*.json"
    );
    for (name, text) in &source {
        assert!(
            shipped.get(name) == Some(text),
            "deploy/helm/verdict/dashboards/{name} differs from dashboards/{name}: cp dashboards/*.json deploy/helm/verdict/dashboards/"
        );
    }
    let objects = chart_objects();
    let (file, dashboards) = objects
        .get("ConfigMap")
        .into_iter()
        .flatten()
        .find(|(file, _)| file.ends_with("dashboards.yaml"))
        .expect("a dashboards ConfigMap");
    // The sidecar's label, from values (grafana_dashboard: "1" by default).
    assert!(
        map_keys(dashboards, &["metadata", "labels"]).contains(PLACEHOLDER),
        "{file}: the sidecar label"
    );
    let template = read(Path::new(file));
    assert!(
        template.contains(
            "{{ .Values.dashboards.label }}: {{ .Values.dashboards.labelValue | quote }}"
        ) && template.contains(".Files.Glob \"dashboards/*.json\""),
        "{file}"
    );
    let values = documents(
        &read(&path("deploy/helm/verdict/values.yaml")),
        "values.yaml",
    )
    .unwrap();
    assert_eq!(
        str_at(&values[0], &["dashboards", "label"]),
        Some("grafana_dashboard")
    );
    assert_eq!(str_at(&values[0], &["dashboards", "labelValue"]), Some("1"));
    assert_eq!(
        at(&values[0], &["dashboards", "enabled"]).as_bool(),
        Some(true)
    );
}

#[test]
fn placeholder_rule_catches_what_would_break_the_yaml() {
    // The checks above rely on this rule; it must refuse what it claims to refuse.
    let ok = "a: {{ .Values.x }}\n# {{ if .Values.y }}\nb: \"{{ .Values.z }}:1\"\n# {{ end }}\n";
    let text = placeholder_text(ok, "ok").unwrap();
    assert_eq!(
        text,
        "a: __helm__\n# __helm__\nb: \"__helm__:1\"\n# __helm__\n"
    );
    for (bad, why) in [
        (
            "a:\n  {{ if .Values.y }}\n  b: 1\n  {{ end }}\n",
            "control actions",
        ),
        ("a: {{- toYaml .Values.y | nindent 2 }}\n", "trimming"),
        ("a: {{ .Values.y\n  }}\n", "not closed"),
    ] {
        let err = placeholder_text(bad, "bad").unwrap_err();
        assert!(err.contains(why), "{bad:?}: {err}");
    }
    // And a structural mistake still fails to parse after the replacement.
    let broken = placeholder_text("a: {{ .Values.x }}\n  b: 1\n", "broken").unwrap();
    assert!(documents(&broken, "broken").is_err());
}

/// A Canary example: its verdict hooks (path → metadata) and load-test metadata.
struct CanaryHooks {
    analysis: Vec<(String, HashMap<String, String>)>,
    load_tests: Vec<HashMap<String, String>>,
}

fn string_map(v: &Value, shown: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(m) = v.as_mapping() {
        for (k, v) in m {
            let key = k
                .as_str()
                .unwrap_or_else(|| panic!("{shown}: non-string key"));
            // Flagger's metadata is map[string]string: a bare number would not decode.
            let value = v
                .as_str()
                .unwrap_or_else(|| panic!("{shown}: metadata {key} must be a quoted string"));
            out.insert(key.to_owned(), value.to_owned());
        }
    }
    out
}

fn check_canary(file: &Path, canary: &Value) -> CanaryHooks {
    let shown = file.display().to_string();
    assert_eq!(
        str_at(canary, &["apiVersion"]),
        Some("flagger.app/v1beta1"),
        "{shown}"
    );
    assert_eq!(str_at(canary, &["kind"]), Some("Canary"), "{shown}");
    let name = str_at(canary, &["metadata", "name"]).expect("metadata.name");
    let namespace = str_at(canary, &["metadata", "namespace"]).expect("metadata.namespace");
    for key in ["apiVersion", "kind", "name"] {
        assert!(
            str_at(canary, &["spec", "targetRef", key]).is_some(),
            "{shown}: spec.targetRef.{key}"
        );
    }
    let target = str_at(canary, &["spec", "targetRef", "name"]).unwrap_or("");
    let port = at(canary, &["spec", "service", "port"])
        .as_u64()
        .unwrap_or_else(|| panic!("{shown}: spec.service.port"));
    let analysis = at(canary, &["spec", "analysis"]);
    assert!(
        str_at(analysis, &["interval"]).is_some(),
        "{shown}: analysis.interval"
    );
    let mut known_paths: BTreeSet<String> =
        Hook::ALL.iter().map(|h| h.as_str().to_owned()).collect();
    known_paths.insert(LOAD_TEST_PATH.into());
    let mut hooks = CanaryHooks {
        analysis: Vec::new(),
        load_tests: Vec::new(),
    };
    let webhooks = seq(analysis, &["webhooks"]);
    assert!(!webhooks.is_empty(), "{shown}: no webhooks");
    for hook in webhooks {
        let hook_name = str_at(hook, &["name"]).unwrap_or_else(|| panic!("{shown}: hook name"));
        let kind = str_at(hook, &["type"]).unwrap_or_else(|| panic!("{shown}: {hook_name} type"));
        let url = str_at(hook, &["url"]).unwrap_or_else(|| panic!("{shown}: {hook_name} url"));
        let path = url
            .split_once("/flagger/")
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("{shown}: {hook_name}: {url} is not a verdict hook"));
        assert!(
            known_paths.contains(path),
            "{shown}: {hook_name}: /flagger/{path} is not one of verdict's hooks {known_paths:?}"
        );
        // The hook type Flagger calls must be the one the path answers.
        let expected_type = if path == LOAD_TEST_PATH {
            "rollout"
        } else {
            path
        };
        assert_eq!(
            kind, expected_type,
            "{shown}: {hook_name} type vs path {path}"
        );
        let metadata = string_map(at(hook, &["metadata"]), &shown);
        // The README's Helm install sets a webhook token, and then verdict refuses every
        // call without it: each hook carries it, whatever its type.
        assert!(
            metadata.get("token").map(String::as_str) == Some(TOKEN_PLACEHOLDER)
                || url.contains(&format!("{TOKEN_PLACEHOLDER}@")),
            "{shown}: {hook_name} carries no webhook token (metadata token: \"{TOKEN_PLACEHOLDER}\")"
        );
        if path == LOAD_TEST_PATH {
            hooks.load_tests.push(metadata);
        } else if path != "event" {
            hooks.analysis.push((path.to_owned(), metadata));
        }
    }

    // Every analysis hook's metadata is accepted by the service, names a shipped
    // template, and is the same on every hook.
    let templates = TemplateSet::builtin().expect("shipped templates");
    let config = Config::default();
    let canary_name = CanaryName::parse(name).expect("canary name");
    let first = hooks
        .analysis
        .first()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    for (path, metadata) in &hooks.analysis {
        let settings = resolve(&canary_name, metadata, &config)
            .unwrap_or_else(|e| panic!("{shown}: {path}: {e}"));
        assert!(
            templates.get(&settings.template).is_ok(),
            "{shown}: {path}: template {} is not shipped",
            settings.template
        );
        assert_eq!(metadata, &first, "{shown}: {path} has different metadata");
    }
    for metadata in &hooks.load_tests {
        for key in metadata.keys() {
            assert!(
                LOAD_TEST_KEYS.contains(&key.as_str()),
                "{shown}: load-test key {key}"
            );
        }
        let cmd = metadata.get("cmd").map(String::as_str).unwrap_or("");
        let url = format!("http://{target}-canary.{namespace}:{port}/");
        assert!(
            cmd.starts_with("hey ") && cmd.ends_with(&url),
            "{shown}: load-test cmd {cmd:?} must be a hey run against {url}"
        );
    }
    hooks
}

#[test]
fn canary_examples_wire_verdicts_hooks() {
    let examples = files("webhooks", "yaml");
    let names: BTreeSet<String> = examples
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in ["canary", "blue-green", "ab-testing"] {
        assert!(names.contains(wanted), "webhooks/{wanted}.yaml missing");
    }
    for file in &examples {
        let docs = documents(&read(file), &file.display().to_string()).unwrap();
        assert_eq!(docs.len(), 1, "{}: one Canary per file", file.display());
        let canary = &docs[0];
        let hooks = check_canary(file, canary);
        let paths: BTreeSet<&str> = hooks.analysis.iter().map(|(p, _)| p.as_str()).collect();
        for needed in [
            "pre-rollout",
            "rollout",
            "confirm-promotion",
            "rollback",
            "post-rollout",
        ] {
            assert!(
                paths.contains(needed),
                "{}: no {needed} hook",
                file.display()
            );
        }
        assert_eq!(
            hooks.load_tests.len(),
            1,
            "{}: one load-test hook",
            file.display()
        );

        let analysis = at(canary, &["spec", "analysis"]);
        let stem = file.file_stem().unwrap().to_string_lossy();
        let steps = seq(analysis, &["stepWeights"]);
        let iterations = at(analysis, &["iterations"]).as_u64();
        match stem.as_ref() {
            "canary" => {
                assert!(steps.len() >= 2, "canary.yaml: stepWeights");
                assert!(iterations.is_none());
                assert!(paths.contains("confirm-traffic-increase"));
            }
            "blue-green" => {
                assert!(
                    steps.is_empty() && iterations.unwrap_or(0) > 0,
                    "blue-green: iterations"
                );
                assert!(seq(analysis, &["match"]).is_empty());
            }
            "ab-testing" => {
                assert!(
                    steps.is_empty() && iterations.unwrap_or(0) > 0,
                    "ab-testing: iterations"
                );
                assert!(!seq(analysis, &["match"]).is_empty(), "ab-testing: match");
            }
            _ => {}
        }
    }
}

#[test]
fn the_readme_canary_is_wired_like_the_examples() {
    let readme = read(&path("README.md"));
    let block = readme
        .split("## A Flagger Canary wired to verdict")
        .nth(1)
        .and_then(|s| s.split("```yaml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README shows a Canary");
    let docs = documents(block, "README.md").unwrap();
    let hooks = check_canary(Path::new("README.md"), &docs[0]);
    assert!(hooks.analysis.len() >= 5, "README's Canary wires the hooks");
}

#[test]
fn the_readme_install_sets_the_token_the_examples_carry() {
    // The chart requires no token by default; the documented install sets one from the
    // same variable the examples' placeholder names, and fills the placeholder in.
    let readme = read(&path("README.md"));
    let section = readme
        .split("## Deploying with Helm")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Deploying with Helm section");
    assert!(
        section.contains("--set secrets.webhookToken=\"$VERDICT_WEBHOOK_TOKEN\""),
        "{section}"
    );
    assert!(
        section.contains("envsubst '$VERDICT_WEBHOOK_TOKEN' < webhooks/canary.yaml"),
        "{section}"
    );
    let values = documents(
        &read(&path("deploy/helm/verdict/values.yaml")),
        "values.yaml",
    )
    .unwrap();
    assert_eq!(str_at(&values[0], &["secrets", "webhookToken"]), Some(""));
}

#[test]
fn webhooks_readme_explains_every_metadata_key() {
    let readme = read(&path("webhooks/README.md"));
    let documented = |key: &str| readme.contains(&format!("| `{key}` |"));
    for key in ANALYSIS_KEYS.iter().chain(LOAD_TEST_KEYS.iter()) {
        // type and logCmdOutput are mentioned in prose, as compatibility keys; token is
        // the analysis hooks' key, explained there.
        if matches!(*key, "type" | "logCmdOutput" | "token") {
            assert!(readme.contains(&format!("`{key}`")), "{key}");
            continue;
        }
        assert!(documented(key), "webhooks/README.md has no row for `{key}`");
    }
    assert!(
        documented(&format!("{VARIABLE_PREFIX}<name>")),
        "var.<name>"
    );
}

#[test]
fn dockerfile_builds_from_existing_paths_and_runs_as_non_root() {
    let dockerfile = read(&path("deploy/Dockerfile"));
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].contains("rust:") && froms[0].contains("bookworm"),
        "{}",
        froms[0]
    );
    let runtime = froms[froms.len() - 1];
    assert!(
        runtime.contains("debian12") || runtime.contains("bookworm-slim"),
        "runtime base: {runtime}"
    );
    // The last USER is the runtime's, and not root.
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid = user.split(':').next().unwrap_or("");
    assert!(uid != "0" && uid != "root", "runs as {user}");
    // Every build-context path it copies exists (a renamed directory breaks the build).
    for line in &lines {
        if let Some(args) = line.strip_prefix("COPY ") {
            if args.starts_with("--from") {
                continue;
            }
            let parts: Vec<&str> = args.split_whitespace().collect();
            for source in &parts[..parts.len() - 1] {
                assert!(
                    path(source).exists(),
                    "COPY {source}: not in the repository"
                );
            }
        }
    }
    // The image's toolchain can build every locked package (`cargo build --locked` in the
    // image): base images cannot be pulled here, so this is the check that stands in for
    // building it.
    let arg = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    let (needed, by) = highest_locked_rust_version();
    assert!(
        version(arg) >= needed,
        "deploy/Dockerfile: RUST_VERSION {arg} is older than {} (needed by {by})",
        shown(&needed)
    );
    assert!(
        version(arg) >= version(&declared_rust_version()),
        "deploy/Dockerfile: RUST_VERSION {arg} is older than Cargo.toml's rust-version"
    );
}

/// `1.89` or `1.89.0` as comparable numbers (a missing patch is 0).
fn version(v: &str) -> Vec<u32> {
    let mut parts: Vec<u32> = v
        .trim()
        .trim_matches('"')
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("{v:?} is not a version"))
        })
        .collect();
    parts.resize(3, 0);
    parts
}

fn shown(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// `rust-version` of Cargo.toml's `[package]`.
fn declared_rust_version() -> String {
    read(&path("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("Cargo.toml declares rust-version")
}

/// The highest `rust-version` among the packages Cargo.lock resolves (every target and
/// platform: the image builds from the same lock file), and which package asks for it.
fn highest_locked_rust_version() -> (Vec<u32>, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(ROOT)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let locked: BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut highest = (vec![0, 0, 0], String::new());
    for package in meta["packages"].as_array().expect("packages") {
        let id = package["id"].as_str().unwrap_or("");
        let (Some(wanted), true) = (package["rust_version"].as_str(), locked.contains(id)) else {
            continue;
        };
        // Our own crate declares what this test checks; only dependencies set the floor.
        if package["name"] == "verdict" {
            continue;
        }
        let v = version(wanted);
        if v > highest.0 {
            let name = format!(
                "{} {}, rust-version {wanted}",
                package["name"].as_str().unwrap_or("?"),
                package["version"].as_str().unwrap_or("?")
            );
            highest = (v, name);
        }
    }
    assert!(
        !highest.1.is_empty(),
        "no locked package declares rust-version"
    );
    highest
}

#[test]
fn rust_version_is_the_highest_a_locked_package_needs() {
    // Cargo.toml's rust-version says which compiler builds verdict: an older one fails in
    // the first dependency that needs more, so it must be at least the highest rust-version
    // of the locked packages, and it says no more than that.
    let declared = declared_rust_version();
    let (needed, by) = highest_locked_rust_version();
    assert_eq!(
        version(&declared),
        needed,
        "Cargo.toml rust-version = {declared:?}, but the locked packages need {} ({by})",
        shown(&needed)
    );
}

#[test]
fn every_documented_variable_is_a_configuration_key() {
    // verdict leaves out `VERDICT_*` variables that name no configuration key (Kubernetes
    // injects some); the documented ones must never be among them.
    let names = readme_env_names();
    assert!(names.len() > 20, "{names:?}");
    let keys = names.iter().map(|n| {
        let key = n
            .strip_prefix("VERDICT_")
            .unwrap_or(n)
            .to_ascii_lowercase()
            .replace("__", ".");
        (key, "x".to_owned())
    });
    let unknown = verdict::config::unknown_keys(keys);
    assert!(
        unknown.is_empty(),
        "README documents variables the configuration does not have: {unknown:?}"
    );
}
