//! What the server lets a Flagger hook point load at, and how much of it.
//!
//! The load-test hook takes a URL from a Canary resource, so anyone who can write a Canary can
//! aim verdict's traffic. The allow-list keeps that traffic inside the cluster by default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{LoadSpec, SpecError};

/// Server-wide limits for hook-started load runs (the stand-alone `verdict load` has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadPolicy {
    /// Host patterns a run may target, compared case-insensitively:
    /// `*` alone matches any single-label name (`podinfo`, DNS-1035: starts with a letter, so
    /// never a numeric IP spelling); `*.suffix` matches one or more labels before `suffix`;
    /// anything else must equal the host (e.g. `localhost`, `127.0.0.1`, `[::1]`).
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
                "*".to_string(),
                "*.svc".to_string(),
                "*.svc.cluster.local".to_string(),
            ],
            max_concurrent_runs: 16,
            max_total_rps: 5_000.0,
            max_concurrency: 256,
            max_duration: Duration::from_secs(3600),
        }
    }
}

impl LoadPolicy {
    /// Refuses a spec whose target is outside the allow-list or that runs longer than
    /// `max_duration`. Rate and run-count caps depend on the other runs: the manager checks them.
    pub fn check(&self, spec: &LoadSpec) -> Result<(), SpecError> {
        spec.validate()?;
        let target = spec.target()?;
        if !self.host_allowed(&target.host) {
            return Err(SpecError::new(format!(
                "target host {:?} is not in the load-test allow-list ({})",
                target.host,
                self.allow_hosts.join(", ")
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
        Ok(())
    }

    /// Whether `host` (lower case, no brackets, no trailing dot) matches a pattern.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|pattern| host_matches(&pattern.to_ascii_lowercase(), host))
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if pattern == "*" {
        return is_dns1035_label(host);
    }
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

    #[test]
    fn default_allows_cluster_names_only() {
        let p = LoadPolicy::default();
        for ok in [
            "podinfo",
            "podinfo-canary",
            "podinfo.test.svc",
            "podinfo-canary.test.svc.cluster.local",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "example.com",
            "podinfo.test",
            "127.0.0.1",
            "localhost.example.svc.evil.com",
            "2130706433",
            "0x7f000001",
            "::1",
            ".svc",
            "evil.com/x.svc",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        // `svc` alone is a single-label name, which the default allows on purpose.
        let strict = LoadPolicy {
            allow_hosts: vec!["*.svc".into()],
            ..LoadPolicy::default()
        };
        assert!(!strict.host_allowed("svc"));
    }

    #[test]
    fn exact_patterns_for_tests_and_loopback() {
        let p = LoadPolicy {
            allow_hosts: vec!["127.0.0.1".into(), "LocalHost".into(), "[::1]".into()],
            ..LoadPolicy::default()
        };
        assert!(p.host_allowed("127.0.0.1"));
        assert!(p.host_allowed("localhost"));
        assert!(p.host_allowed("::1"));
        assert!(!p.host_allowed("podinfo"));
    }

    #[test]
    fn check_names_the_refused_host_and_duration() {
        let p = LoadPolicy::default();
        let mut spec = LoadSpec::new("http://example.com/");
        let err = p.check(&spec).unwrap_err().to_string();
        assert!(
            err.contains("\"example.com\" is not in the load-test allow-list"),
            "{err}"
        );
        spec.url = "http://podinfo/".into();
        spec.duration = Some(Duration::from_secs(7200));
        let err = p.check(&spec).unwrap_err().to_string();
        assert!(err.contains("above the server's limit"), "{err}");
        spec.duration = Some(Duration::from_secs(60));
        assert!(p.check(&spec).is_ok());
        spec.concurrency = 1000;
        let err = p.check(&spec).unwrap_err().to_string();
        assert!(err.contains("concurrency 1000 is above"), "{err}");
    }
}
