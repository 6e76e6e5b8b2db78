//! Typed configuration: a TOML file plus `VERDICT_*` environment variables, validated
//! before anything binds. An invalid value stops start-up with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::JwtSettings;
use crate::domain::{invalid, InvalidValue};
use crate::judge::JudgeConfig;

/// Why the configuration was refused. Always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read into a configuration.
    #[error("configuration: {0}")]
    Load(String),
    /// A value was read but is not acceptable.
    #[error("configuration key `{}`: {}", .0.key, .0.why)]
    Invalid(#[from] InvalidValue),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (terminals).
    Pretty,
}

/// How to reach Prometheus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    pub url: String,
    /// Per-query timeout; a hook answers 424 when Prometheus is slower.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Optional bearer token.
    #[serde(default, skip_serializing)]
    pub bearer_token: Option<SecretString>,
    /// Optional HTTP basic auth user (with `basic_password`).
    #[serde(default)]
    pub basic_user: Option<String>,
    /// The basic auth password (with `basic_user`).
    #[serde(default, skip_serializing)]
    pub basic_password: Option<SecretString>,
}

/// Where Grafana annotations go. Absent `url` turns the feature off: no worker runs
/// and no annotation is written to the outbox (so it cannot grow without a reader).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrafanaSettings {
    /// Grafana's base URL, e.g. `http://grafana.monitoring:3000`.
    pub url: Option<String>,
    /// Service-account token, sent as a bearer token. Required with `url`.
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
    /// Pins annotations to one dashboard; absent makes them organisation-wide (shown
    /// by any dashboard that queries annotations by the `verdict` tag).
    pub dashboard_uid: Option<String>,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often an idle worker looks for new rows.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First retry delay after a failed delivery; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest retry delay: Grafana coming back is noticed within this.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a claimed row is reserved for one worker. Longer than `timeout`, so a
    /// slow request finishes before another replica may take the row over.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Rows claimed at once.
    pub batch: u32,
}

impl Default for GrafanaSettings {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            dashboard_uid: None,
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(2),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            lease: Duration::from_secs(60),
            batch: 50,
        }
    }
}

impl GrafanaSettings {
    /// Whether annotations are on.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    fn validate(&self) -> Result<(), InvalidValue> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "grafana.url",
                "expected an http:// or https:// URL",
            ));
        }
        match &self.token {
            None => {
                return Err(invalid(
                    "grafana.token",
                    "required when grafana.url is set (VERDICT_GRAFANA__TOKEN)",
                ))
            }
            Some(t) if t.expose_secret().trim().is_empty() => {
                return Err(invalid("grafana.token", "must not be empty"))
            }
            Some(_) => {}
        }
        if let Some(uid) = &self.dashboard_uid {
            let ok = !uid.is_empty()
                && uid.len() <= 40
                && uid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(invalid(
                    "grafana.dashboard_uid",
                    "expected 1 to 40 letters, digits, '-' or '_'",
                ));
            }
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Err(invalid(
                "grafana.timeout",
                "must be above 0 and at most 60s",
            ));
        }
        if self.poll_interval < Duration::from_millis(10) {
            return Err(invalid("grafana.poll_interval", "must be at least 10ms"));
        }
        if self.retry_min < Duration::from_millis(10) {
            return Err(invalid("grafana.retry_min", "must be at least 10ms"));
        }
        if self.retry_max < self.retry_min {
            return Err(invalid(
                "grafana.retry_max",
                "must be at least grafana.retry_min",
            ));
        }
        if self.lease < self.timeout * 2 {
            return Err(invalid(
                "grafana.lease",
                "must be at least twice grafana.timeout, so a slow request ends before another replica takes the row",
            ));
        }
        if self.batch == 0 || self.batch > 1000 {
            return Err(invalid("grafana.batch", "must be between 1 and 1000"));
        }
        Ok(())
    }
}

/// Defaults for per-canary settings; each can be overridden by a Canary's webhook metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisDefaults {
    /// SLI template used when the metadata names none.
    pub template: String,
    /// The judge's false-rollback budget (docs/statistics.md, section 7).
    pub alpha: f64,
    /// How much worse the canary's error rate may be before it counts as a regression.
    pub error_margin: f64,
    /// How much worse its share of slow requests may be.
    pub latency_margin: f64,
    /// How close to the primary the canary must be shown to be for a promotion.
    pub promotion_margin: f64,
    /// Canary requests needed before any verdict but wait.
    pub min_canary_requests: u64,
    /// Per-look dispersion τ of each arm's rates: `auto` (measured on the primary's
    /// history when an analysis opens) or a number (docs/statistics.md §5).
    #[serde(default)]
    pub dispersion: crate::judge::Dispersion,
    /// An error rate the canary provably stays below never holds promotion (0 = off).
    #[serde(default = "defaults::negligible_error_rate")]
    pub negligible_error_rate: f64,
    /// Looks after which an undecided analysis ends by `on_inconclusive`.
    #[serde(default = "defaults::max_looks")]
    pub max_looks: u32,
    /// Time after which an undecided analysis ends likewise (absent: no time limit).
    #[serde(default, with = "humantime_serde::option")]
    pub max_duration: Option<Duration>,
    /// `rollback` (default) or `hold` when the budget runs out without a decision.
    #[serde(default)]
    pub on_inconclusive: crate::judge::OnInconclusive,
    /// Consecutive looks without canary requests (while the primary serves) that fail it.
    #[serde(default = "defaults::no_traffic_looks")]
    pub no_traffic_looks: u32,
    /// How far back the primary's history is read when an analysis opens (latency
    /// boundaries and dispersion).
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// The history's interval: should match Flagger's `analysis.interval`, since the
    /// dispersion measured is the per-interval noise (docs/statistics.md §5).
    #[serde(default = "defaults::lookback_step", with = "humantime_serde")]
    pub lookback_step: Duration,
    /// Calls closer together than this reuse the previous look instead of taking a new
    /// one, so Flagger's retries never double-count (Flagger's minimum interval is 10 s).
    #[serde(with = "humantime_serde")]
    pub min_look_gap: Duration,
    /// `enforce` (default) or `shadow`: analyses record everything but never block
    /// Flagger (the `mode` metadata key overrides it per canary).
    #[serde(default)]
    pub mode: crate::domain::Mode,
}

/// Serde defaults of keys added after the first release, so older files still load.
mod defaults {
    use std::time::Duration;

    use crate::judge::JudgeConfig;

    pub fn negligible_error_rate() -> f64 {
        JudgeConfig::recommended().negligible_error_rate
    }

    pub fn max_looks() -> u32 {
        JudgeConfig::recommended().budget.max_looks
    }

    pub fn no_traffic_looks() -> u32 {
        JudgeConfig::recommended().budget.no_traffic_looks
    }

    pub fn lookback_step() -> Duration {
        Duration::from_secs(60)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `sqlite://path` (embedded default) or `postgres://…`.
    #[serde(skip_serializing)]
    pub database_url: SecretString,
    /// How to reach Prometheus.
    pub prometheus: PrometheusSettings,
    /// Defaults for the per-canary settings.
    pub defaults: AnalysisDefaults,
    /// Directory of extra SLI templates (`*.yaml`); the shipped ones are always available.
    #[serde(default)]
    pub template_dir: Option<PathBuf>,
    /// Regex a namespace must match entirely; absent means every namespace.
    #[serde(default)]
    pub namespace_allow: Option<String>,
    /// Shared webhook token: Canaries must send it as `metadata.token` or as HTTP Basic
    /// password. Absent means no token is required.
    #[serde(default, skip_serializing)]
    pub webhook_token: Option<SecretString>,
    /// JSON lines (production) or readable text.
    pub log_format: LogFormat,
    /// The one shutdown deadline: after SIGTERM everything (in-flight hooks, event
    /// storage, load runs recording their end, the Grafana worker) ends within it, and the
    /// process exits. Must stay below the pod's `terminationGracePeriodSeconds`, with
    /// [`crate::startup::RUNTIME_STOP`] to spare.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Grafana annotations (off unless `grafana.url` is set).
    #[serde(default)]
    pub grafana: GrafanaSettings,
    /// Limits of the load-test hook's generator: target allow-list and server-wide caps.
    #[serde(default)]
    pub load: crate::loadgen::LoadPolicy,
    /// Release-manager API tokens (the API is off unless `jwt.key` or `jwt.key_file` is set).
    #[serde(default)]
    pub jwt: JwtSettings,
}

impl Default for Config {
    fn default() -> Self {
        let judge = JudgeConfig::recommended();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            database_url: SecretString::from("sqlite://verdict.db"),
            prometheus: PrometheusSettings {
                url: "http://127.0.0.1:9090".into(),
                timeout: Duration::from_secs(3),
                bearer_token: None,
                basic_user: None,
                basic_password: None,
            },
            defaults: AnalysisDefaults {
                template: "istio".into(),
                alpha: judge.alpha,
                error_margin: judge.error_margin,
                latency_margin: judge.latency_margin,
                promotion_margin: judge.promotion_margin,
                min_canary_requests: judge.min_canary_requests,
                dispersion: judge.dispersion,
                negligible_error_rate: judge.negligible_error_rate,
                max_looks: judge.budget.max_looks,
                max_duration: judge.budget.max_duration_ms.map(Duration::from_millis),
                on_inconclusive: judge.budget.on_inconclusive,
                no_traffic_looks: judge.budget.no_traffic_looks,
                lookback: Duration::from_secs(3600),
                lookback_step: defaults::lookback_step(),
                min_look_gap: Duration::from_secs(5),
                mode: crate::domain::Mode::Enforce,
            },
            template_dir: None,
            namespace_allow: None,
            webhook_token: None,
            log_format: LogFormat::Json,
            shutdown_grace: Duration::from_secs(15),
            grafana: GrafanaSettings::default(),
            load: crate::loadgen::LoadPolicy::default(),
            jwt: JwtSettings::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `VERDICT_*` variables (`__` separates
    /// levels: `VERDICT_PROMETHEUS__URL`), then validation. Variables that name no
    /// configuration key are left out; [`Config::load_reporting`] says which.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_reporting(file).map(|(config, _)| config)
    }

    /// Like [`Config::load`], and also returns the `VERDICT_*` variables that were left out
    /// because they name no configuration key, for the caller to log once logging is up.
    ///
    /// The file is strict (an unknown key stops start-up, since a typo there is ours to
    /// fix), the environment is not: Kubernetes injects `VERDICT_PORT`,
    /// `VERDICT_SERVICE_HOST`, … into every pod of a namespace that has a Service named
    /// `verdict`, and a sidecar or a CI job may set more (docs/deployment.md).
    pub fn load_reporting(file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed(ENV_PREFIX).split("__").ignore(CLI_ONLY_KEYS);
        let ignored = unknown_keys(env.iter().map(|(key, value)| (key.to_string(), value)));
        let keep: Vec<String> = ignored.clone();
        // Keys reach the filter in their original case: compare without it, as figment does.
        figment = figment.merge(env.filter(move |key| !keep.iter().any(|k| k.as_str() == key)));
        let shown = ignored
            .iter()
            .map(|key| {
                format!(
                    "{ENV_PREFIX}{}",
                    key.to_ascii_uppercase().replace('.', "__")
                )
            })
            .collect();
        Ok((Self::from_figment(figment)?, shown))
    }

    /// Extracts and validates a configuration from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that could still be wrong after parsing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(self.check()?)
    }

    fn check(&self) -> Result<(), InvalidValue> {
        // The store's own reading of the URL, so that what passes here connects later.
        if crate::store::check_url(self.database_url.expose_secret()).is_err() {
            return Err(invalid(
                "database_url",
                "expected sqlite://PATH (a file, not :memory:) or postgres://…",
            ));
        }
        let prom = &self.prometheus.url;
        if !(prom.starts_with("http://") || prom.starts_with("https://")) {
            return Err(invalid(
                "prometheus.url",
                "expected an http:// or https:// URL",
            ));
        }
        if self.prometheus.timeout.is_zero() || self.prometheus.timeout > Duration::from_secs(9) {
            return Err(invalid(
                "prometheus.timeout",
                "must be above 0 and at most 9s (Flagger gives a hook 10s)",
            ));
        }
        if self.prometheus.basic_user.is_some() != self.prometheus.basic_password.is_some() {
            return Err(invalid(
                "prometheus.basic_user",
                "basic_user and basic_password go together",
            ));
        }
        if self.prometheus.basic_user.is_some() && self.prometheus.bearer_token.is_some() {
            return Err(invalid(
                "prometheus.bearer_token",
                "choose bearer_token or basic auth, not both",
            ));
        }
        if let Some(re) = &self.namespace_allow {
            regex::Regex::new(re).map_err(|e| invalid("namespace_allow", e.to_string()))?;
        }
        if let Some(token) = &self.webhook_token {
            if token.expose_secret().len() < 8 {
                return Err(invalid("webhook_token", "must be at least 8 characters"));
            }
        }
        self.judge_defaults()
            .validate()
            .map_err(|e| invalid(defaults_key(e.field), e.why))?;
        if self.defaults.min_look_gap > Duration::from_secs(3600) {
            return Err(invalid("defaults.min_look_gap", "must be at most 1h"));
        }
        let step = self.defaults.lookback_step;
        if step < Duration::from_secs(1) || step.subsec_nanos() != 0 {
            return Err(invalid(
                "defaults.lookback_step",
                "must be a whole number of seconds, at least 1s (Prometheus' range step)",
            ));
        }
        if self.defaults.lookback < step * 6 {
            return Err(invalid(
                "defaults.lookback",
                "must hold at least six defaults.lookback_step intervals (the dispersion needs six)",
            ));
        }
        self.grafana.validate()?;
        self.jwt.validate()?;
        if self.load.max_concurrent_runs == 0 {
            return Err(invalid("load.max_concurrent_runs", "must be at least 1"));
        }
        if !(self.load.max_total_rps.is_finite() && self.load.max_total_rps > 0.0) {
            return Err(invalid("load.max_total_rps", "must be a positive number"));
        }
        if self.load.max_concurrency == 0 {
            return Err(invalid("load.max_concurrency", "must be at least 1"));
        }
        if self.load.max_duration.is_zero() {
            return Err(invalid("load.max_duration", "must be above 0"));
        }
        self.load
            .validate_patterns()
            .map_err(|why| invalid("load.allow_hosts", why))?;
        if let Some(dir) = &self.template_dir {
            if !dir.is_dir() {
                return Err(invalid(
                    "template_dir",
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        Ok(())
    }

    /// The judge settings every analysis starts from.
    pub fn judge_defaults(&self) -> JudgeConfig {
        JudgeConfig {
            alpha: self.defaults.alpha,
            error_margin: self.defaults.error_margin,
            latency_margin: self.defaults.latency_margin,
            promotion_margin: self.defaults.promotion_margin,
            min_canary_requests: self.defaults.min_canary_requests,
            dispersion: self.defaults.dispersion,
            negligible_error_rate: self.defaults.negligible_error_rate,
            budget: crate::judge::Budget {
                max_looks: self.defaults.max_looks,
                max_duration_ms: self
                    .defaults
                    .max_duration
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                on_inconclusive: self.defaults.on_inconclusive,
                no_traffic_looks: self.defaults.no_traffic_looks,
            },
            ..JudgeConfig::recommended()
        }
    }
}

/// Prefix of the configuration's environment variables.
const ENV_PREFIX: &str = "VERDICT_";

/// `VERDICT_*` variables that belong to the command line, not to the configuration:
/// `VERDICT_CONFIG` names the file, `VERDICT_SERVER` and `VERDICT_TOKEN` are the API
/// client's (README, "Release-manager API and CLI").
const CLI_ONLY_KEYS: &[&str] = &["config", "server", "token"];

/// The keys among `vars` (configuration paths like `prometheus.url`, with their values)
/// that the configuration does not have, sorted. Each is tried alone on top of the
/// defaults, so the answer comes from the same serde definitions that parse the file: a
/// key is unknown exactly when the file would refuse it as unknown. A known key with a bad
/// value is kept, so that loading refuses it with its name.
pub fn unknown_keys(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter(|(key, value)| {
            let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
            let probe = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
                .merge((key.as_str(), value));
            match probe.extract::<Config>() {
                Ok(_) => false,
                Err(e) => e
                    .into_iter()
                    .any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..))),
            }
        })
        .map(|(key, _)| key)
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

/// Maps a judge field name to its configuration key.
fn defaults_key(field: &str) -> &'static str {
    match field {
        "alpha" => "defaults.alpha",
        "error_margin" => "defaults.error_margin",
        "latency_margin" => "defaults.latency_margin",
        "promotion_margin" => "defaults.promotion_margin",
        "min_canary_requests" => "defaults.min_canary_requests",
        "dispersion" => "defaults.dispersion",
        "negligible_error_rate" => "defaults.negligible_error_rate",
        "max_looks" => "defaults.max_looks",
        "max_duration" => "defaults.max_duration",
        "no_traffic_looks" => "defaults.no_traffic_looks",
        _ => "defaults",
    }
}

/// `Config` skips secrets when serialised, so figment's defaults layer carries them here.
#[derive(Serialize)]
struct DefaultsForFigment {
    #[serde(flatten)]
    config: Config,
    database_url: String,
}

impl DefaultsForFigment {
    fn new() -> Self {
        let config = Config::default();
        let database_url = config.database_url.expose_secret().to_owned();
        Self {
            config,
            database_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::JwtAlgorithm;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()));
        for (k, v) in pairs {
            figment = figment.merge(Toml::string(&format!("{k} = {v}")));
        }
        Config::from_figment(figment)
    }

    #[test]
    fn defaults_are_valid() {
        let config = with(&[]).expect("defaults");
        assert_eq!(config.database_url.expose_secret(), "sqlite://verdict.db");
        assert_eq!(config.defaults.template, "istio");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("database_url", "\"mysql://x\"", "database_url"),
            // The store reads `sqlite:` without `//` as no URL at all.
            ("database_url", "\"sqlite:verdict.db\"", "database_url"),
            ("database_url", "\"sqlite://:memory:\"", "database_url"),
            ("namespace_allow", "\"(\"", "namespace_allow"),
            ("webhook_token", "\"short\"", "webhook_token"),
            ("listen", "\"not an address\"", "listen"),
            ("log_format", "\"xml\"", "log_format"),
        ];
        for (key, value, expected) in cases {
            let err = with(&[(key, value)]).expect_err(key).to_string();
            assert!(err.contains(expected), "{key}: {err}");
        }
    }

    #[test]
    fn nested_invalid_values_name_their_key() {
        let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
            .merge(Toml::string("[prometheus]\ntimeout = \"30s\""));
        let err = Config::from_figment(figment)
            .expect_err("timeout")
            .to_string();
        assert!(err.contains("prometheus.timeout"), "{err}");

        let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
            .merge(Toml::string("[defaults]\nalpha = 2.0"));
        let err = Config::from_figment(figment)
            .expect_err("alpha")
            .to_string();
        assert!(err.contains("defaults.alpha"), "{err}");

        for (toml, key) in [
            ("dispersion = \"lots\"", "dispersion"),
            ("dispersion = 5.0", "defaults.dispersion"),
            ("max_looks = 0", "defaults.max_looks"),
            ("on_inconclusive = \"shrug\"", "on_inconclusive"),
            (
                "negligible_error_rate = 0.9",
                "defaults.negligible_error_rate",
            ),
            (
                "lookback = \"1m\"\nlookback_step = \"20s\"",
                "defaults.lookback",
            ),
            ("lookback_step = \"1500ms\"", "defaults.lookback_step"),
        ] {
            let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
                .merge(Toml::string(&format!("[defaults]\n{toml}")));
            let err = Config::from_figment(figment).expect_err(toml).to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let figment =
            Figment::from(Serialized::defaults(DefaultsForFigment::new())).merge(Toml::string(
                "[defaults]\ndispersion = 0.4\nmax_duration = \"2h\"\non_inconclusive = \"hold\"",
            ));
        let judge = Config::from_figment(figment)
            .expect("valid")
            .judge_defaults();
        assert_eq!(judge.dispersion, crate::judge::Dispersion::Fixed(0.4));
        assert_eq!(judge.budget.max_duration_ms, Some(7_200_000));
        assert_eq!(
            judge.budget.on_inconclusive,
            crate::judge::OnInconclusive::Hold
        );
    }

    #[test]
    fn defaults_mode_is_enforce_shadow_or_a_clear_error() {
        let mode = |toml: &str| {
            let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
                .merge(Toml::string(&format!("[defaults]\n{toml}")));
            Config::from_figment(figment).map(|c| c.defaults.mode)
        };
        assert_eq!(mode("").expect("default"), crate::domain::Mode::Enforce);
        assert_eq!(
            mode("mode = \"shadow\"").expect("shadow"),
            crate::domain::Mode::Shadow
        );
        let err = mode("mode = \"dry-run\"")
            .expect_err("bad mode")
            .to_string();
        assert!(
            err.contains("mode") && err.contains("dry-run") && err.contains("shadow"),
            "{err}"
        );
    }

    #[test]
    fn grafana_is_off_by_default_and_validated_when_on() {
        let config = with(&[]).expect("defaults");
        assert!(!config.grafana.enabled());

        let section = |body: &str| {
            let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
                .merge(Toml::string(&format!("[grafana]\n{body}")));
            Config::from_figment(figment)
        };
        let on = section(
            "url = \"http://grafana:3000\"\ntoken = \"glsa_x\"\ndashboard_uid = \"verdict-canary\"",
        )
        .expect("valid grafana section");
        assert!(on.grafana.enabled());
        assert_eq!(on.grafana.dashboard_uid.as_deref(), Some("verdict-canary"));

        let cases: &[(&str, &str)] = &[
            ("url = \"grafana:3000\"\ntoken = \"t\"", "grafana.url"),
            ("url = \"http://g\"", "grafana.token"),
            ("url = \"http://g\"\ntoken = \" \"", "grafana.token"),
            (
                "url = \"http://g\"\ntoken = \"t\"\ndashboard_uid = \"a b\"",
                "grafana.dashboard_uid",
            ),
            (
                "url = \"http://g\"\ntoken = \"t\"\ntimeout = \"30s\"\nlease = \"40s\"",
                "grafana.lease",
            ),
            (
                "url = \"http://g\"\ntoken = \"t\"\nretry_min = \"10s\"\nretry_max = \"1s\"",
                "grafana.retry_max",
            ),
            (
                "url = \"http://g\"\ntoken = \"t\"\nbatch = 0",
                "grafana.batch",
            ),
            ("urll = \"http://g\"", "urll"),
        ];
        for (body, key) in cases {
            let err = section(body).expect_err(body).to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
    }

    fn jwt_section(body: &str) -> Result<Config, ConfigError> {
        let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
            .merge(Toml::string(&format!("[jwt]\n{body}")));
        Config::from_figment(figment)
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn jwt_is_off_by_default_with_documented_defaults() {
        let config = with(&[]).expect("defaults");
        let jwt = &config.jwt;
        assert!(!jwt.enabled());
        assert_eq!(jwt.algorithm, JwtAlgorithm::Hs256);
        assert_eq!(
            (jwt.issuer.as_str(), jwt.audience.as_str()),
            ("verdict", "verdict")
        );
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.role_claim, "role");
        assert!(crate::auth::Verifier::from_config(jwt)
            .expect("valid")
            .is_none());
    }

    #[test]
    fn a_valid_jwt_section_loads() {
        let config = jwt_section(
            "key = \"0123456789abcdef0123456789abcdef\"\nissuer = \"idp\"\naudience = \"verdict-prod\"\nleeway = \"5s\"\nrole_claim = \"verdict_role\"",
        )
        .expect("valid");
        assert!(config.jwt.enabled());
        assert_eq!(config.jwt.leeway, Duration::from_secs(5));
        assert_eq!(config.jwt.issuer, "idp");

        let rs = jwt_section(&format!(
            "algorithm = \"RS256\"\nkey_file = \"{}\"",
            fixture("rsa-public.pem")
        ))
        .expect("valid RS256");
        assert_eq!(rs.jwt.algorithm, JwtAlgorithm::Rs256);
        assert!(crate::auth::Verifier::from_config(&rs.jwt)
            .expect("valid")
            .is_some());
    }

    #[tokio::test]
    async fn a_secret_file_may_end_in_a_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").expect("write");
        let config = jwt_section(&format!("key_file = \"{}\"", path.display())).expect("valid");
        let token = crate::auth::mint(
            &config.jwt,
            crate::auth::Role::Viewer,
            "alice",
            Duration::from_secs(60),
        )
        .expect("minted");
        // The same secret given inline (without the newline) accepts the token.
        let inline = jwt_section("key = \"0123456789abcdef0123456789abcdef\"").expect("valid");
        let verifier = crate::auth::Verifier::from_config(&inline.jwt)
            .expect("valid")
            .expect("configured");
        assert_eq!(
            verifier.verify(&token).await.expect("valid").subject,
            "alice"
        );
    }

    #[test]
    fn invalid_jwt_settings_name_their_key() {
        let private = fixture("rsa-private.pem");
        let cases: Vec<(String, &str)> = vec![
            ("key = \"short\"".into(), "jwt.key"),
            ("key = \"\"".into(), "jwt.key"),
            (
                format!("key = \"0123456789abcdef0123456789abcdef\"\nkey_file = \"{private}\""),
                "jwt.key",
            ),
            (
                "key_file = \"/nonexistent/verdict-jwt-key\"".into(),
                "jwt.key_file",
            ),
            (
                "algorithm = \"RS256\"\nkey = \"0123456789abcdef0123456789abcdef\"".into(),
                "jwt.key",
            ),
            (
                format!("algorithm = \"RS256\"\nkey_file = \"{private}\""),
                "jwt.key_file",
            ),
            (
                format!(
                    "algorithm = \"RS256\"\nkey_file = \"{}\"",
                    fixture("small-rsa-public.pem")
                ),
                "jwt.key_file",
            ),
            // A public key left at the default HS256 would be a secret anyone can read.
            (
                format!("key_file = \"{}\"", fixture("rsa-public.pem")),
                "jwt.key_file",
            ),
            ("algorithm = \"PS256\"".into(), "algorithm"),
            ("jwks_min_refresh = \"0s\"".into(), "jwt.jwks_min_refresh"),
            (
                "jwks_refresh = \"10s\"\njwks_min_refresh = \"1m\"".into(),
                "jwt.jwks_refresh",
            ),
            (
                "jwks_url = \"https://idp.example/jwks.json\"".into(),
                "jwt.algorithm",
            ),
            ("issuer = \"\"".into(), "jwt.issuer"),
            ("audience = \" \"".into(), "jwt.audience"),
            ("role_claim = \"sub\"".into(), "jwt.role_claim"),
            ("role_claim = \"\"".into(), "jwt.role_claim"),
            ("leeway = \"1h\"".into(), "jwt.leeway"),
            ("secret = \"x\"".into(), "secret"),
        ];
        for (body, key) in &cases {
            let err = jwt_section(body).expect_err(body).to_string();
            assert!(err.contains(key), "{body}: {err}");
            assert!(
                !err.contains("0123456789abcdef"),
                "the error repeats the secret: {err}"
            );
        }
    }

    #[test]
    fn environment_keys_outside_the_configuration_are_found() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        // What Kubernetes injects for a Service named `verdict` with a port named http.
        let injected = vars(&[
            ("port", "tcp://10.96.0.12:80"),
            ("port_80_tcp", "tcp://10.96.0.12:80"),
            ("port_80_tcp_addr", "10.96.0.12"),
            ("service_host", "10.96.0.12"),
            ("service_port", "80"),
            ("service_port_http", "80"),
        ]);
        assert_eq!(
            unknown_keys(injected),
            [
                "port",
                "port_80_tcp",
                "port_80_tcp_addr",
                "service_host",
                "service_port",
                "service_port_http"
            ]
        );
        // Nested keys are looked up where they belong; a known key with a bad value is
        // no unknown key (loading refuses it by name).
        assert_eq!(
            unknown_keys(vars(&[
                ("prometheus.url", "http://p:9090"),
                ("prometheus.timeout", "not a duration"),
                ("prometheus.urll", "x"),
                ("jwt.algorithm", "HS256"),
                ("load.allow_hosts", "[\"a\"]"),
                ("grafana", "x"),
            ])),
            ["prometheus.urll"]
        );
    }

    #[test]
    fn the_documented_allow_list_variable_parses_as_a_list() {
        // The value docs and webhooks/README.md show for VERDICT_LOAD__ALLOW_HOSTS, read the
        // way the environment provider reads it.
        let value: figment::value::Value =
            r#"["*.{namespace}.svc", "*.{namespace}.svc.cluster.local", "gateway-proxy.gloo-system"]"#
                .parse()
                .unwrap_or_else(|never| match never {});
        let figment = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
            .merge(("load.allow_hosts", value));
        let config = Config::from_figment(figment).expect("valid");
        assert_eq!(
            config.load.allow_hosts,
            [
                "*.{namespace}.svc",
                "*.{namespace}.svc.cluster.local",
                "gateway-proxy.gloo-system"
            ]
        );
        let bad = Figment::from(Serialized::defaults(DefaultsForFigment::new()))
            .merge(("load.allow_hosts", vec!["*"]));
        let err = Config::from_figment(bad).expect_err("bare *").to_string();
        assert!(err.contains("load.allow_hosts"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = with(&[("listne", "\"0.0.0.0:1\"")])
            .expect_err("typo")
            .to_string();
        assert!(err.contains("listne"), "{err}");
    }
}
