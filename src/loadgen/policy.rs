//! What the server lets a Flagger hook point load at, and how much of it.
//!
//! The load-test hook takes a URL from a Canary resource, so anyone who can write a Canary can
//! aim verdict's traffic. By default a Canary may only aim at Services of its own namespace,
//! in every form Kubernetes resolves there: `NAME`, `NAME.NS`, `NAME.NS.svc` and
//! `NAME.NS.svc.cluster.local` (webhooks/README.md, "Metadata of the load-test hook").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{LoadSpec, SpecError};
use crate::domain::Namespace;

/// What `{namespace}` in a host pattern stands for: the canary's namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// Server-wide limits for hook-started load runs (the stand-alone `verdict load` has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadPolicy {
    /// Host patterns a run may target, compared case-insensitively after a short name of
    /// the canary's namespace is completed (see [`LoadPolicy::check`]): `*.suffix` matches
    /// one or more labels before `suffix`; anything else must equal the host (e.g.
    /// `localhost`, `127.0.0.1`, `[::1]`). `{namespace}` stands for the canary's namespace.
    pub allow_hosts: Vec<String>,
    /// Runs at the same time, all canaries together.
    pub max_concurrent_runs: usize,
    /// Sum of the runs' maximum request rates, all canaries together.
    pub max_total_rps: f64,
    /// Connections (`-c`) one run may open: the rate cap alone would allow `-c 10000 -q 0.1`,
    /// ten thousand sockets against one canary.
    pub max_concurrency: u32,
    /// Longest run; runs bounded only by a request count are stopped at this age too.
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
}

impl Default for LoadPolicy {
    fn default() -> Self {
        Self {
            allow_hosts: vec![
                format!("*.{NAMESPACE_PLACEHOLDER}.svc"),
                format!("*.{NAMESPACE_PLACEHOLDER}.svc.cluster.local"),
            ],
            max_concurrent_runs: 16,
            max_total_rps: 5_000.0,
            max_concurrency: 256,
            max_duration: Duration::from_secs(3600),
        }
    }
}

impl LoadPolicy {
    /// Completes a short name of the canary's namespace, then refuses a spec whose target is
    /// outside the allow-list or that runs longer than `max_duration`; returns the spec to
    /// run. Rate and run-count caps depend on the other runs: the manager checks them.
    ///
    /// `NAME` and `NAME.NS` (NS being the canary's namespace) become `NAME.NS.svc`: verdict
    /// does not run in the canary's namespace, so `NAME` would otherwise resolve in its own,
    /// and `NAME.NS.svc` never leaves the cluster's DNS, whatever the namespace is called.
    pub fn check(&self, namespace: &Namespace, mut spec: LoadSpec) -> Result<LoadSpec, SpecError> {
        spec.validate()?;
        let target = spec.target()?;
        if let Some(qualified) = qualify(&target.host, namespace.as_str()) {
            let port = &target.authority[target.raw_host.len()..];
            let scheme = if target.tls { "https" } else { "http" };
            spec.url = format!("{scheme}://{qualified}{port}{}", target.path);
        }
        let target = spec.target()?;
        if !self.host_allowed(&target.host, namespace.as_str()) {
            return Err(SpecError::new(format!(
                "target host {:?} is not in the load-test allow-list ({})",
                target.host,
                self.allow_hosts
                    .iter()
                    .map(|p| p.replace(NAMESPACE_PLACEHOLDER, namespace.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if spec.concurrency > self.max_concurrency {
            return Err(SpecError::new(format!(
                "concurrency {} is above the server's limit of {}",
                spec.concurrency, self.max_concurrency
            )));
        }
        if let Some(d) = spec.duration {
            if d > self.max_duration {
                return Err(SpecError::new(format!(
                    "duration {} is above the server's limit of {}",
                    humantime::format_duration(d),
                    humantime::format_duration(self.max_duration)
                )));
            }
        }
        Ok(spec)
    }

    /// Whether `host` (lower case, no brackets, no trailing dot) matches a pattern, with
    /// `{namespace}` standing for `namespace`.
    pub fn host_allowed(&self, host: &str, namespace: &str) -> bool {
        self.allow_hosts.iter().any(|pattern| {
            let pattern = pattern
                .to_ascii_lowercase()
                .replace(NAMESPACE_PLACEHOLDER, namespace);
            host_matches(&pattern, host)
        })
    }

    /// Checks the patterns themselves (start-up refuses a bad one, naming it).
    pub fn validate_patterns(&self) -> Result<(), String> {
        for pattern in &self.allow_hosts {
            let p = pattern.trim();
            if p.is_empty() {
                return Err("patterns must not be empty".into());
            }
            if p == "*" {
                return Err(format!(
                    "{pattern:?}: a single-label host always means a Service in the canary's namespace (it is sent to NAME.<namespace>.svc), which *.{NAMESPACE_PLACEHOLDER}.svc allows"
                ));
            }
            if p.contains('{') && !p.contains(NAMESPACE_PLACEHOLDER) {
                return Err(format!(
                    "{pattern:?}: the only placeholder is {NAMESPACE_PLACEHOLDER}"
                ));
            }
        }
        Ok(())
    }
}

/// `NAME` or `NAME.NS` with NS the canary's namespace, as `NAME.NS.svc`; `None` for any
/// other host.
fn qualify(host: &str, namespace: &str) -> Option<String> {
    let name = match host.split_once('.') {
        None => host,
        Some((name, rest)) if rest == namespace => name,
        Some(_) => return None,
    };
    is_dns1035_label(name).then(|| format!("{name}.{namespace}.svc"))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return host
            .strip_suffix(suffix)
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|labels| !labels.is_empty() && labels.split('.').all(is_dns_label));
    }
    pattern == host
}

/// A Kubernetes Service name: letters, digits and '-', starting with a letter, ≤ 63 chars.
fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::parse(name).unwrap()
    }

    /// The host a spec for `url` would be sent to, or the refusal.
    fn target(policy: &LoadPolicy, namespace: &str, url: &str) -> Result<String, String> {
        policy
            .check(&ns(namespace), LoadSpec::new(url))
            .map(|s| s.target().unwrap().host)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn default_allows_the_canarys_namespace_in_every_form() {
        let p = LoadPolicy::default();
        for (url, sent_to) in [
            ("http://podinfo-canary:9898/", "podinfo-canary.test.svc"),
            (
                "http://podinfo-canary.test:9898/",
                "podinfo-canary.test.svc",
            ),
            ("http://PodInfo.Test/", "podinfo.test.svc"),
            ("http://podinfo.test.svc/", "podinfo.test.svc"),
            (
                "http://podinfo-canary.test.svc.cluster.local:9898/x",
                "podinfo-canary.test.svc.cluster.local",
            ),
        ] {
            assert_eq!(target(&p, "test", url).as_deref(), Ok(sent_to), "{url}");
        }
        // The URL keeps everything but the completed host.
        let spec = p
            .check(
                &ns("test"),
                LoadSpec::new("http://podinfo-canary.test:9898/api?x=1"),
            )
            .unwrap();
        assert_eq!(spec.url, "http://podinfo-canary.test.svc:9898/api?x=1");
    }

    #[test]
    fn default_refuses_everything_else() {
        let p = LoadPolicy::default();
        for url in [
            // Another namespace's Service, in each form.
            "http://podinfo.prod:9898/",
            "http://podinfo.prod.svc/",
            "http://podinfo.prod.svc.cluster.local/",
            "http://verdict.verdict-system/",
            // Outside the cluster, or not a Service name.
            "http://example.com/",
            "http://app.example.com/",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://localhost.example.svc.evil.com/",
            "http://test.svc.evil.com/",
            "http://a.b.test/",
        ] {
            let err = target(&p, "test", url).expect_err(url);
            assert!(
                err.contains("is not in the load-test allow-list"),
                "{url}: {err}"
            );
        }
        // The list shown names the canary's namespace.
        let err = target(&p, "test", "http://podinfo.prod/").unwrap_err();
        assert!(
            err.contains("*.test.svc, *.test.svc.cluster.local"),
            "{err}"
        );
    }

    #[test]
    fn exact_patterns_for_tests_and_loopback() {
        let p = LoadPolicy {
            allow_hosts: vec!["127.0.0.1".into(), "LocalHost".into(), "[::1]".into()],
            ..LoadPolicy::default()
        };
        assert!(p.host_allowed("127.0.0.1", "test"));
        assert!(p.host_allowed("localhost", "test"));
        assert!(p.host_allowed("::1", "test"));
        assert!(!p.host_allowed("podinfo.test.svc", "test"));
    }

    #[test]
    fn configured_lists_replace_the_default() {
        // A gateway in another namespace, as Flagger's ingress tutorials aim at.
        let p = LoadPolicy {
            allow_hosts: vec![
                "gateway-proxy.gloo-system".into(),
                "*.{namespace}.svc".into(),
            ],
            ..LoadPolicy::default()
        };
        assert_eq!(
            target(&p, "test", "http://gateway-proxy.gloo-system/").as_deref(),
            Ok("gateway-proxy.gloo-system")
        );
        assert!(target(&p, "test", "http://podinfo-canary.test:9898/").is_ok());
        assert!(target(&p, "test", "http://podinfo.test.svc.cluster.local/").is_err());
        for bad in ["*", "", "*.{ns}.svc"] {
            let p = LoadPolicy {
                allow_hosts: vec![bad.into()],
                ..LoadPolicy::default()
            };
            assert!(p.validate_patterns().is_err(), "{bad:?}");
        }
        assert!(LoadPolicy::default().validate_patterns().is_ok());
    }

    #[test]
    fn check_names_the_refused_host_and_duration() {
        let p = LoadPolicy::default();
        let err = target(&p, "test", "http://example.com/").unwrap_err();
        assert!(
            err.contains("\"example.com\" is not in the load-test allow-list"),
            "{err}"
        );
        let mut spec = LoadSpec::new("http://podinfo/");
        spec.duration = Some(Duration::from_secs(7200));
        let err = p.check(&ns("test"), spec.clone()).unwrap_err().to_string();
        assert!(err.contains("above the server's limit"), "{err}");
        spec.duration = Some(Duration::from_secs(60));
        assert!(p.check(&ns("test"), spec.clone()).is_ok());
        spec.concurrency = 1000;
        let err = p.check(&ns("test"), spec).unwrap_err().to_string();
        assert!(err.contains("concurrency 1000 is above"), "{err}");
    }
}
