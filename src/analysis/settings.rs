//! Per-canary settings from webhook metadata, resolved against the server's defaults.
//!
//! Flagger copies a Canary's webhook `metadata` verbatim, so it is the only way a
//! Canary can tune its own analysis. Unknown keys are refused with a 400 naming them:
//! a typo must never fall back silently to a default.

use std::collections::{BTreeMap, HashMap};

use crate::config::Config;
use crate::domain::{
    invalid, CanaryName, CanarySettings, Controller, InvalidName, InvalidValue, Mode,
};
use crate::judge::JudgeConfig;

/// Metadata keys every analysis hook understands.
pub const ANALYSIS_KEYS: &[&str] = &[
    "template",
    "target",
    "service",
    "alpha",
    "errorMargin",
    "latencyMargin",
    "promotionMargin",
    "latencyThresholdMs",
    "minCanaryRequests",
    "minStepRequests",
    "sloErrorRate",
    "sloP95Ms",
    "gate",
    "token",
    "dispersion",
    "negligibleErrorRate",
    "maxLooks",
    "maxDuration",
    "onInconclusive",
    "mode",
];

/// Prefix of template variables: `var.region: eu` fills `{{ variables.region }}`.
pub const VARIABLE_PREFIX: &str = "var.";

/// Why metadata was refused (always a 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    /// Keys verdict does not know (a typo must never fall back to a default).
    #[error("unknown metadata key(s): {0} (known: {known})", known = ANALYSIS_KEYS.join(", "))]
    UnknownKeys(String),
    /// A value that does not parse or is out of range.
    #[error("metadata {}: {}", .0.key, .0.why)]
    Invalid(#[from] InvalidValue),
    /// A name that is not a Kubernetes name.
    #[error(transparent)]
    Name(#[from] InvalidName),
}

/// Checks the keys and parses the values of a hook's metadata. The `token` key is
/// checked by the auth layer and never stored.
pub fn resolve(
    name: &CanaryName,
    metadata: &HashMap<String, String>,
    config: &Config,
) -> Result<CanarySettings, SettingsError> {
    let mut unknown: Vec<&str> = metadata
        .keys()
        .map(String::as_str)
        .filter(|k| !ANALYSIS_KEYS.contains(k) && !k.starts_with(VARIABLE_PREFIX))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(SettingsError::UnknownKeys(unknown.join(", ")));
    }

    let get = |key: &str| metadata.get(key).map(|v| v.trim());
    let mut judge = config.judge_defaults();
    apply_judge_keys(&mut judge, metadata)?;
    if let Some(v) = get("dispersion") {
        judge.dispersion =
            crate::judge::Dispersion::parse(v).map_err(|why| invalid("dispersion", why))?;
    }
    let slo_p95_s = get("sloP95Ms")
        .map(|v| parse_positive_ms("sloP95Ms", v))
        .transpose()?;
    if slo_p95_s.is_some() {
        // "p95 below X" means at most 5 % of requests above X.
        judge.slo_slow_fraction = Some(0.05);
    }
    judge
        .validate()
        .map_err(|e| invalid(judge_key(e.field), e.why))?;

    let latency_threshold_s = get("latencyThresholdMs")
        .map(|v| parse_positive_ms("latencyThresholdMs", v))
        .transpose()?;
    let min_step_requests = get("minStepRequests")
        .map(|v| parse_u64("minStepRequests", v))
        .transpose()?
        .unwrap_or(0);

    let target = match get("target") {
        Some(t) => CanaryName::parse(t)
            .map_err(|e| {
                invalid(
                    "target",
                    format!("{:?} is not a valid Kubernetes name: {}", e.value, e.why),
                )
            })?
            .to_string(),
        None => name.to_string(),
    };
    let service = get("service")
        .map(|s| {
            CanaryName::parse(s).map(|n| n.to_string()).map_err(|e| {
                invalid(
                    "service",
                    format!("{:?} is not a valid Kubernetes name: {}", e.value, e.why),
                )
            })
        })
        .transpose()?;
    let template = match get("template") {
        Some(t) if is_template_name(t) => t.to_owned(),
        Some(t) => return Err(invalid("template", format!("{t:?} is not a template name")).into()),
        None => config.defaults.template.clone(),
    };

    let manual_gates = match get("gate") {
        None | Some("auto") => false,
        Some("manual") => true,
        Some(other) => {
            return Err(invalid(
                "gate",
                format!("{other:?} is neither \"manual\" nor \"auto\""),
            )
            .into())
        }
    };

    let mode = mode_of(metadata, config)?;

    let mut variables = BTreeMap::new();
    for (key, value) in metadata {
        if let Some(var) = key.strip_prefix(VARIABLE_PREFIX) {
            if !is_variable_name(var) {
                return Err(invalid(key.clone(), "variable names are [a-z_][a-z0-9_]*").into());
            }
            if value.len() > 256 || value.chars().any(char::is_control) {
                return Err(
                    invalid(key.clone(), "values are at most 256 printable characters").into(),
                );
            }
            variables.insert(var.to_owned(), value.clone());
        }
    }

    Ok(CanarySettings {
        template,
        target,
        service,
        judge,
        latency_threshold_s,
        slo_p95_s,
        min_step_requests,
        variables,
        manual_gates,
        mode,
        // The caller names its controller (`analysis::opening`); metadata cannot.
        controller: Controller::default(),
    })
}

/// The `mode` metadata key, or `defaults.mode` without it; a 400 naming the key for any
/// other value.
pub fn mode_of(metadata: &HashMap<String, String>, config: &Config) -> Result<Mode, SettingsError> {
    match metadata.get("mode") {
        Some(v) => Ok(Mode::parse(v.trim()).map_err(|why| invalid("mode", why))?),
        None => Ok(config.defaults.mode),
    }
}

/// Metadata keys that only tune the judge (not the plan or the queries): what a backtest
/// may change on a stored analysis.
pub const JUDGE_KEYS: &[&str] = &[
    "alpha",
    "errorMargin",
    "latencyMargin",
    "promotionMargin",
    "minCanaryRequests",
    "sloErrorRate",
    "negligibleErrorRate",
    "maxLooks",
    "maxDuration",
    "onInconclusive",
];

/// Sets the [`JUDGE_KEYS`] present in `metadata` on `judge`; other keys are left to the
/// caller. The caller validates the result.
pub fn apply_judge_keys(
    judge: &mut JudgeConfig,
    metadata: &HashMap<String, String>,
) -> Result<(), SettingsError> {
    let get = |key: &str| metadata.get(key).map(|v| v.trim());
    if let Some(v) = get("alpha") {
        judge.alpha = parse_f64("alpha", v)?;
    }
    if let Some(v) = get("errorMargin") {
        judge.error_margin = parse_f64("errorMargin", v)?;
    }
    if let Some(v) = get("latencyMargin") {
        judge.latency_margin = parse_f64("latencyMargin", v)?;
    }
    if let Some(v) = get("promotionMargin") {
        judge.promotion_margin = parse_f64("promotionMargin", v)?;
    }
    if let Some(v) = get("minCanaryRequests") {
        judge.min_canary_requests = parse_u64("minCanaryRequests", v)?;
    }
    if let Some(v) = get("sloErrorRate") {
        judge.slo_error_rate = Some(parse_f64("sloErrorRate", v)?);
    }
    if let Some(v) = get("negligibleErrorRate") {
        judge.negligible_error_rate = parse_f64("negligibleErrorRate", v)?;
    }
    if let Some(v) = get("maxLooks") {
        let looks = parse_u64("maxLooks", v)?;
        judge.budget.max_looks = u32::try_from(looks)
            .map_err(|_| invalid("maxLooks", format!("{looks} is too large")))?;
    }
    if let Some(v) = get("maxDuration") {
        let d = humantime::parse_duration(v).map_err(|e| {
            invalid(
                "maxDuration",
                format!("{v:?} is not a duration like 90m: {e}"),
            )
        })?;
        judge.budget.max_duration_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(v) = get("onInconclusive") {
        judge.budget.on_inconclusive =
            crate::judge::OnInconclusive::parse(v).map_err(|why| invalid("onInconclusive", why))?;
    }
    Ok(())
}

/// A judge key's error named as the metadata key.
pub fn validate_judge(judge: &JudgeConfig) -> Result<(), SettingsError> {
    judge
        .validate()
        .map_err(|e| invalid(judge_key(e.field), e.why).into())
}

fn judge_key(field: &str) -> &'static str {
    match field {
        "alpha" => "alpha",
        "error_margin" => "errorMargin",
        "latency_margin" => "latencyMargin",
        "promotion_margin" => "promotionMargin",
        "min_canary_requests" => "minCanaryRequests",
        "slo_error_rate" => "sloErrorRate",
        "slo_slow_fraction" => "sloP95Ms",
        "dispersion" => "dispersion",
        "negligible_error_rate" => "negligibleErrorRate",
        "max_looks" => "maxLooks",
        "max_duration" => "maxDuration",
        _ => "metadata",
    }
}

fn parse_f64(key: &'static str, value: &str) -> Result<f64, InvalidValue> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| invalid(key, format!("{value:?} is not a number")))
}

fn parse_u64(key: &'static str, value: &str) -> Result<u64, InvalidValue> {
    value
        .parse::<u64>()
        .map_err(|_| invalid(key, format!("{value:?} is not a whole number ≥ 0")))
}

fn parse_positive_ms(key: &'static str, value: &str) -> Result<f64, InvalidValue> {
    let ms = parse_f64(key, value)?;
    if ms <= 0.0 || ms > 3_600_000.0 {
        return Err(invalid(key, format!("{value} ms is outside (0, 3600000]")));
    }
    Ok(ms / 1000.0)
}

fn is_template_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_variable_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn name() -> CanaryName {
        CanaryName::parse("podinfo").expect("name")
    }

    #[test]
    fn empty_metadata_takes_the_defaults() {
        let config = Config::default();
        let s = resolve(&name(), &meta(&[]), &config).expect("defaults");
        assert_eq!(s.template, "istio");
        assert_eq!(s.target, "podinfo");
        assert_eq!(s.judge, config.judge_defaults());
        assert_eq!(s.min_step_requests, 0);
        assert!(!s.manual_gates);
    }

    #[test]
    fn gate_manual_and_auto() {
        let config = Config::default();
        let manual = resolve(&name(), &meta(&[("gate", "manual")]), &config).expect("manual");
        assert!(manual.manual_gates);
        let auto = resolve(&name(), &meta(&[("gate", "auto")]), &config).expect("auto");
        assert!(!auto.manual_gates);
        let err = resolve(&name(), &meta(&[("gate", "Manual!")]), &config)
            .expect_err("bad gate")
            .to_string();
        assert!(err.contains("gate"), "{err}");
    }

    #[test]
    fn settings_stored_before_the_gate_key_read_as_automatic() {
        let s = resolve(&name(), &meta(&[]), &Config::default()).expect("defaults");
        let mut json: serde_json::Value = serde_json::to_value(&s).expect("json");
        json.as_object_mut().expect("object").remove("manual_gates");
        let back: CanarySettings = serde_json::from_value(json).expect("old settings");
        assert!(!back.manual_gates);
    }

    #[test]
    fn values_override_defaults() {
        let m = meta(&[
            ("template", "linkerd"),
            ("target", "backend"),
            ("alpha", "0.05"),
            ("errorMargin", "0.3"),
            ("minCanaryRequests", "500"),
            ("sloP95Ms", "250"),
            ("latencyThresholdMs", "100"),
            ("var.region", "eu"),
        ]);
        let s = resolve(&name(), &m, &Config::default()).expect("valid");
        assert_eq!(s.template, "linkerd");
        assert_eq!(s.target, "backend");
        assert_eq!(s.judge.alpha, 0.05);
        assert_eq!(s.judge.error_margin, 0.3);
        assert_eq!(s.judge.min_canary_requests, 500);
        assert_eq!(s.slo_p95_s, Some(0.25));
        assert_eq!(s.judge.slo_slow_fraction, Some(0.05));
        assert_eq!(s.latency_threshold_s, Some(0.1));
        assert_eq!(s.variables.get("region").map(String::as_str), Some("eu"));
        assert_eq!(s.service, None);
        let s = resolve(
            &name(),
            &meta(&[("service", "frontend")]),
            &Config::default(),
        )
        .expect("service");
        assert_eq!(s.service.as_deref(), Some("frontend"));
    }

    #[test]
    fn mode_from_metadata_or_the_default() {
        let mut config = Config::default();
        let s = resolve(&name(), &meta(&[]), &config).expect("defaults");
        assert_eq!(s.mode, Mode::Enforce);
        let s = resolve(&name(), &meta(&[("mode", "shadow")]), &config).expect("shadow");
        assert_eq!(s.mode, Mode::Shadow);
        config.defaults.mode = Mode::Shadow;
        let s = resolve(&name(), &meta(&[("mode", "enforce")]), &config).expect("enforce");
        assert_eq!(s.mode, Mode::Enforce);
        let s = resolve(&name(), &meta(&[]), &config).expect("default shadow");
        assert_eq!(s.mode, Mode::Shadow);
        let err = resolve(&name(), &meta(&[("mode", "dry-run")]), &config)
            .expect_err("bad mode")
            .to_string();
        assert!(err.contains("mode") && err.contains("dry-run"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = resolve(&name(), &meta(&[("alhpa", "0.1")]), &Config::default())
            .expect_err("typo")
            .to_string();
        assert!(err.contains("alhpa"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("alpha", "abc"),
            ("alpha", "0.9"),
            ("alpha", "NaN"),
            ("minCanaryRequests", "-5"),
            ("latencyThresholdMs", "0"),
            ("target", "x\"} or vector(1) #"),
            ("service", "Front_End"),
            ("template", "../etc/passwd"),
            ("var.Bad-Name", "x"),
            ("var.ok", "line\nbreak"),
            ("mode", "dry-run"),
            ("mode", "Shadow"),
        ] {
            let err = resolve(&name(), &meta(&[(k, v)]), &Config::default());
            assert!(err.is_err(), "{k}={v:?} accepted");
        }
    }
}
