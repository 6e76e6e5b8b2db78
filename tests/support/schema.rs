//! JSON Schema validation with a real validator: Python's jsonschema (draft 7, as Helm
//! reads a chart's values.schema.json and as a CRD's OpenAPI subset reads), which
//! scripts/test.sh installs.

use std::io::Write;

use serde_json::{json, Value};

/// Checks `schema` itself, then validates `instance` against it; the error messages with
/// their paths, sorted (empty when `instance` is valid).
pub fn draft7_errors(schema: &Value, instance: &Value) -> Vec<String> {
    const CHECK: &str = "import json, sys, jsonschema
data = json.load(sys.stdin)
jsonschema.Draft7Validator.check_schema(data['schema'])
errors = jsonschema.Draft7Validator(data['schema']).iter_errors(data['instance'])
print(json.dumps(sorted('/'.join(map(str, e.absolute_path)) + ': ' + e.message for e in errors)))
";
    let mut child = std::process::Command::new("python3")
        .args(["-c", CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs jsonschema)");
    let input = json!({"schema": schema, "instance": instance});
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the instance");
    let out = child.wait_with_output().expect("validator output");
    assert!(
        out.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of errors")
}
