//! `examples/argo/*.yaml` against Argo Rollouts' own schema: every `argoproj.io/v1alpha1`
//! object validates against the CRD's OpenAPI schema kept in
//! `tests/fixtures/argo-rollouts/` (v1.9.1, trimmed; see its README), with a real JSON
//! Schema validator and unknown fields refused as `kubectl apply --validate=strict` does.
//! Then the wiring a schema cannot see: the Rollout's analysis names the template and
//! gives it every argument, and the URL those arguments make is one verdict accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use verdict::argo::provider::WebMetric;
use verdict::argo::MeasureParams;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", file.display()));
            serde_json::to_value(value).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The CRDs' `v1alpha1` schemas by kind, made strict: an object with listed properties
/// refuses others unless it preserves unknown fields; int-or-string is either.
fn schemas() -> BTreeMap<String, Value> {
    fn strict(schema: &mut Value) {
        let Some(map) = schema.as_object_mut() else {
            return;
        };
        if map.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true)) {
            map.remove("type");
            map.insert(
                "anyOf".into(),
                json!([{"type": "integer"}, {"type": "string"}]),
            );
        }
        let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if map.contains_key("properties") && !preserves {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (key, child) in map.iter_mut() {
            match key.as_str() {
                "properties" => {
                    if let Some(props) = child.as_object_mut() {
                        props.values_mut().for_each(strict);
                    }
                }
                "items" | "additionalProperties" => strict(child),
                _ => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    for crd in documents(&path("tests/fixtures/argo-rollouts/crds-v1.9.1.yaml")) {
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .expect("kind")
            .to_owned();
        let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
        strict(&mut schema);
        out.insert(kind, schema);
    }
    assert_eq!(
        out.keys().map(String::as_str).collect::<Vec<_>>(),
        ["AnalysisTemplate", "Rollout"]
    );
    out
}

/// Validates `instance` against `schema` with Python's jsonschema (draft 7, which the
/// CRDs' OpenAPI subset reads as); the error messages with their paths.
fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    support::schema::draft7_errors(schema, instance)
}

/// Every document of `examples/argo/`, by file.
fn examples() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path("examples/argo"))
        .expect("examples/argo")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            documents(f).into_iter().map(move |d| (name.clone(), d))
        })
        .collect()
}

#[test]
fn the_examples_are_valid_argo_rollouts_objects() {
    let schemas = schemas();
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    for (file, doc) in examples() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        match doc["apiVersion"].as_str() {
            Some("argoproj.io/v1alpha1") => {
                let schema = schemas
                    .get(&kind)
                    .unwrap_or_else(|| panic!("{file}: no schema for {kind}"));
                failures.extend(
                    schema_errors(schema, &doc)
                        .into_iter()
                        .map(|e| format!("{file} {kind}: {e}")),
                );
                kinds.insert(kind);
            }
            // What a Rollout with Istio traffic routing needs beside it.
            Some("v1") if kind == "Service" => {}
            Some("networking.istio.io/v1") if kind == "VirtualService" => {}
            other => panic!("{file}: unexpected {other:?} {kind}"),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["AnalysisTemplate", "Rollout"]
    );
}

#[test]
fn the_check_refuses_a_misspelt_field_and_a_wrong_type() {
    let schemas = schemas();
    let (_, mut template) = examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "AnalysisTemplate")
        .expect("an AnalysisTemplate");
    let metric = &mut template["spec"]["metrics"][0];
    let limit = metric
        .as_object_mut()
        .expect("metric")
        .remove("consecutiveSuccessLimit")
        .expect("consecutiveSuccessLimit is set");
    metric["consecutiveSuccesLimit"] = limit;
    metric["provider"]["web"]["timeoutSeconds"] = json!("10s");
    let errors = schema_errors(&schemas["AnalysisTemplate"], &template);
    assert!(
        errors.iter().any(|e| e.contains("consecutiveSuccesLimit")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("timeoutSeconds")),
        "{errors:?}"
    );
}

#[test]
fn the_rollout_feeds_the_template_and_verdict_accepts_the_measurement_it_makes() {
    let docs = examples();
    let find = |kind: &str| {
        docs.iter()
            .find(|(_, d)| d["kind"] == kind)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let (template, rollout) = (find("AnalysisTemplate"), find("Rollout"));
    let analysis = &rollout["spec"]["strategy"]["canary"]["analysis"];
    assert_eq!(
        analysis["templates"][0]["templateName"], template["metadata"]["name"],
        "the Rollout's background analysis uses the template"
    );
    // Every template argument without a value of its own comes from the Rollout.
    let given: BTreeMap<&str, &Value> = analysis["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| (a["name"].as_str().expect("name"), a))
        .collect();
    for arg in template["spec"]["args"].as_array().expect("template args") {
        let name = arg["name"].as_str().expect("name");
        let own = arg.get("value").is_some() || arg.get("valueFrom").is_some();
        assert!(
            own || given.contains_key(name),
            "argument {name} is never given"
        );
    }
    assert_eq!(
        given["canary-hash"]["valueFrom"]["podTemplateHashValue"],
        "Latest"
    );
    assert_eq!(
        given["stable-hash"]["valueFrom"]["podTemplateHashValue"],
        "Stable"
    );

    // The metric's conditions, as the contract wants them.
    let metric = &template["spec"]["metrics"][0];
    assert_eq!(metric["provider"]["web"]["jsonPath"], "{$.decision}");
    assert_eq!(metric["successCondition"], "result == \"pass\"");
    assert_eq!(metric["failureCondition"], "result == \"fail\"");
    let count = metric["count"].as_i64().expect("count");
    assert!(
        metric["inconclusiveLimit"]
            .as_i64()
            .expect("inconclusiveLimit")
            >= count
    );
    assert_eq!(metric["consecutiveSuccessLimit"], 1);

    // The URL Argo builds from the arguments is a measurement verdict accepts.
    let args: BTreeMap<String, String> = [
        ("namespace", "test"),
        ("rollout", "podinfo"),
        ("canary-hash", "6b8f9c7d4"),
        ("stable-hash", "5c9d7f8b6"),
        ("template", "argo-istio"),
        ("alpha", "0.01"),
        ("verdict-token", "t0ken"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&template.to_string()).expect("template as YAML");
    let web = WebMetric::from_template(&yaml, "verdict", &args).expect("a web metric");
    let url = reqwest::Url::parse(web.url()).expect("a URL");
    assert_eq!(url.path(), verdict::argo::PATH);
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let params = MeasureParams::parse(query, None).expect("verdict accepts the parameters");
    assert_eq!(params.key.to_string(), "test/podinfo@6b8f9c7d4");
    assert_eq!(params.metadata["template"], "argo-istio");
}
