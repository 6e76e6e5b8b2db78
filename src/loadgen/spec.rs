//! What one load run does ([`LoadSpec`]), and the two ways it arrives from a Flagger hook: a
//! hey-style `cmd` string ([`parse_hey_cmd`]) or explicit metadata keys
//! ([`LoadSpec::from_metadata`]).
//!
//! Nothing here runs anything. A spec is data: the engine turns a valid one into requests, the
//! manager checks it against the server's [`LoadPolicy`](super::LoadPolicy) first.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use serde::{Deserialize, Serialize};

use super::shell;

/// hey's defaults, so `hey URL` and `verdict load URL` do the same thing.
pub const DEFAULT_CONCURRENCY: u32 = 50;
/// hey's `-n` default, used when neither a duration nor a request count is given.
pub const DEFAULT_REQUESTS: u64 = 200;
/// hey's `-t` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Limits past which a value is a typo or an attack rather than a load test.
const MAX_CONCURRENCY: u32 = 10_000;
const MAX_RATE: f64 = 1_000_000.0;
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
const MAX_REQUESTS: u64 = 1_000_000_000;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_BODY: usize = 1 << 20;

/// A load spec that cannot be run, with one human line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(String);

impl SpecError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum Model {
    /// hey's model: `concurrency` workers, each sends its next request when the previous one
    /// has answered, at most `per_worker_rate` per second (`None`: as fast as possible). A slow
    /// server slows the client down, so latency is measured from the actual send.
    Closed {
        /// hey's `-q`.
        per_worker_rate: Option<f64>,
    },
    /// Constant arrival rate: request i is due at `start + i / rate` whatever the server does,
    /// and its latency is measured from that intended time, so a stall shows in the percentiles
    /// (no coordinated omission). `concurrency` bounds the requests in flight.
    Open {
        /// Requests per second for the whole run.
        rate: f64,
    },
}

/// One HTTP header to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Everything that defines one load run.
///
/// Fields are plain data so the CLI, the hook and tests can build one directly; the engine and
/// the manager call [`LoadSpec::validate`] before running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Target URL, `http` or `https`.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Extra request headers, in order.
    pub headers: Vec<Header>,
    /// Request body.
    pub body: Option<String>,
    /// `Content-Type` of the body (hey's `-T`).
    pub content_type: Option<String>,
    /// Connections, and so the bound on requests in flight.
    pub concurrency: u32,
    /// Pacing.
    #[serde(flatten)]
    pub model: Model,
    /// Stop sending after this long.
    #[serde(with = "humantime_serde", default)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Per-request timeout, connect included; `None` waits forever (hey's `-t 0`).
    #[serde(with = "humantime_serde", default)]
    pub timeout: Option<Duration>,
}

/// The target of a valid spec, split the way the engine needs it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub tls: bool,
    /// Host name or IP literal without brackets, lower case, for DNS and TLS.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// The host as written in the URL (case and brackets kept).
    pub raw_host: String,
    /// Origin-form request target (`/path?query`).
    pub path: Uri,
}

impl LoadSpec {
    /// A spec with hey's defaults for `url`: GET, 50 workers, 200 requests, 20 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            content_type: None,
            concurrency: DEFAULT_CONCURRENCY,
            model: Model::Closed {
                per_worker_rate: None,
            },
            duration: None,
            requests: None,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// The request count bound, with hey's default of 200 when nothing bounds the run.
    pub fn request_limit(&self) -> Option<u64> {
        match (self.requests, self.duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_REQUESTS),
        }
    }

    /// The most requests per second this spec can send; `None` when unbounded (closed model
    /// without `-q`).
    pub fn max_rate(&self) -> Option<f64> {
        match self.model {
            Model::Open { rate } => Some(rate),
            Model::Closed {
                per_worker_rate: Some(q),
            } => Some(q * f64::from(self.concurrency)),
            Model::Closed {
                per_worker_rate: None,
            } => None,
        }
    }

    /// A stable 16-hex-digit digest of the spec: equal specs give equal checksums across
    /// processes and versions (FNV-1a over the canonical JSON), so replicas agree on
    /// "the same load test".
    pub fn checksum(&self) -> String {
        // Serialising a struct of strings and numbers cannot fail; fall back to Debug if a
        // future field ever makes it fail, which is still stable within one build.
        let canonical = serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"));
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Checks every field; the first problem found is returned as one line.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.target()?;
        self.method()?;
        self.header_map()?;
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(SpecError::new(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
                self.concurrency
            )));
        }
        match self.model {
            Model::Open { rate } => check_rate("rate", rate)?,
            Model::Closed {
                per_worker_rate: Some(q),
            } => {
                check_rate("rate per worker (-q)", q)?;
                check_rate("total rate (-q × -c)", q * f64::from(self.concurrency))?;
            }
            Model::Closed {
                per_worker_rate: None,
            } => {}
        }
        if let Some(d) = self.duration {
            if d.is_zero() || d > MAX_DURATION {
                return Err(SpecError::new(format!(
                    "duration must be above 0 and at most 24h, got {}",
                    humantime::format_duration(d)
                )));
            }
        }
        if let Some(n) = self.requests {
            if n == 0 || n > MAX_REQUESTS {
                return Err(SpecError::new(format!(
                    "request count must be between 1 and {MAX_REQUESTS}, got {n}"
                )));
            }
        }
        if let Some(t) = self.timeout {
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(SpecError::new(format!(
                    "timeout must be above 0 and at most 1h (none: no timeout), got {}",
                    humantime::format_duration(t)
                )));
            }
        }
        if self.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
            return Err(SpecError::new("body is larger than 1 MiB"));
        }
        Ok(())
    }

    /// The parsed target URL.
    pub(crate) fn target(&self) -> Result<Target, SpecError> {
        if !self.url.contains("://") {
            return Err(SpecError::new(format!(
                "URL {:?} has no scheme; write http://… or https://…",
                self.url
            )));
        }
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| SpecError::new(format!("URL {:?} does not parse: {e}", self.url)))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(SpecError::new(format!(
                    "URL scheme {other:?} is not supported; use http or https"
                )))
            }
            None => {
                return Err(SpecError::new(format!(
                    "URL {:?} has no scheme; write http://… or https://…",
                    self.url
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| SpecError::new(format!("URL {:?} has no host", self.url)))?;
        if authority.as_str().contains('@') {
            return Err(SpecError::new(
                "credentials in the URL are not supported; send an Authorization header instead",
            ));
        }
        let raw_host = authority.host();
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(SpecError::new(format!("URL {:?} has no host", self.url)));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .parse()
            .map_err(|e| SpecError::new(format!("URL path does not parse: {e}")))?;
        Ok(Target {
            tls,
            host,
            port,
            authority: authority.as_str().to_string(),
            raw_host: raw_host.to_string(),
            path,
        })
    }

    pub(crate) fn method(&self) -> Result<Method, SpecError> {
        Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::new(format!("{:?} is not an HTTP method", self.method)))
    }

    /// Headers as sent: the user's, then `Content-Type` from `-T` when given.
    pub(crate) fn header_map(&self) -> Result<http::HeaderMap, SpecError> {
        let mut map = http::HeaderMap::new();
        for h in &self.headers {
            let name = HeaderName::from_bytes(h.name.trim().as_bytes())
                .map_err(|_| SpecError::new(format!("{:?} is not a valid header name", h.name)))?;
            let value = HeaderValue::from_str(h.value.trim())
                .map_err(|_| SpecError::new(format!("header {:?} has an invalid value", h.name)))?;
            map.append(name, value);
        }
        if let Some(ct) = &self.content_type {
            let value = HeaderValue::from_str(ct)
                .map_err(|_| SpecError::new(format!("{ct:?} is not a valid content type")))?;
            map.insert(http::header::CONTENT_TYPE, value);
        }
        Ok(map)
    }

    /// Builds a spec from a Flagger hook's metadata: either `cmd` (a hey invocation, see
    /// [`parse_hey_cmd`]) or explicit keys:
    ///
    /// | key | meaning |
    /// |---|---|
    /// | `url` | target (required) |
    /// | `rps` | requests per second, open model (required: hooks never run unbounded) |
    /// | `duration` | how long, Go syntax (`30s`, `1m`); required unless `requests` |
    /// | `requests` | stop after this many |
    /// | `concurrency` | bound on requests in flight (default 50) |
    /// | `method` | default GET |
    /// | `headers` | `Name: value` lines separated by newlines |
    /// | `body`, `content_type`, `timeout` (seconds) | as hey's `-d`, `-T`, `-t` |
    ///
    /// flagger-loadtester's `type: cmd` and `logCmdOutput` are accepted so existing Canary
    /// specs move over unchanged; any other key is refused by name.
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Result<Self, SpecError> {
        const EXPLICIT: &[&str] = &[
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
        ];
        const COMPAT: &[&str] = &["type", "logCmdOutput"];
        let unknown: BTreeSet<&str> = metadata
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "cmd" && !EXPLICIT.contains(k) && !COMPAT.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(SpecError::new(format!(
                "unknown load-test metadata key(s): {}",
                unknown.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(kind) = metadata.get("type") {
            if kind != "cmd" {
                return Err(SpecError::new(format!(
                    "load-test type {kind:?} is not supported; only cmd (a hey invocation) or explicit keys"
                )));
            }
        }
        if let Some(cmd) = metadata.get("cmd") {
            let mixed: Vec<&str> = EXPLICIT
                .iter()
                .copied()
                .filter(|k| metadata.contains_key(*k))
                .collect();
            if !mixed.is_empty() {
                return Err(SpecError::new(format!(
                    "give either cmd or explicit keys, not both (also got: {})",
                    mixed.join(", ")
                )));
            }
            return parse_hey_cmd(cmd);
        }
        let get = |k: &str| metadata.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let url =
            get("url").ok_or_else(|| SpecError::new("load-test metadata needs cmd or url"))?;
        let mut spec = LoadSpec::new(url);
        let rps = get("rps").ok_or_else(|| {
            SpecError::new("load-test metadata needs rps (requests per second) with url")
        })?;
        spec.model = Model::Open {
            rate: parse_f64("rps", rps)?,
        };
        spec.duration = get("duration")
            .map(|d| parse_go_duration(d).map_err(|e| SpecError::new(format!("duration: {e}"))))
            .transpose()?;
        spec.requests = get("requests")
            .map(|n| parse_u64("requests", n))
            .transpose()?;
        if spec.duration.is_none() && spec.requests.is_none() {
            return Err(SpecError::new(
                "load-test metadata needs duration (e.g. 1m) or requests",
            ));
        }
        if let Some(c) = get("concurrency") {
            spec.concurrency = parse_u32("concurrency", c)?;
        }
        if let Some(m) = get("method") {
            spec.method = m.to_string();
        }
        if let Some(h) = get("headers") {
            for line in h.lines().map(str::trim).filter(|l| !l.is_empty()) {
                spec.headers.push(parse_header(line)?);
            }
        }
        spec.body = metadata.get("body").cloned();
        spec.content_type = get("content_type").map(str::to_string);
        if let Some(t) = get("timeout") {
            spec.timeout = timeout_from_secs(parse_u64("timeout", t)?);
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// Parses a hey invocation (`hey -z 1m -q 10 -c 2 http://podinfo-canary:9898/`) into a spec.
/// The command is never executed; anything but one hey invocation with the flags
/// `-z -n -c -q -m -H -d -T -t -host` and one URL is an error naming what was not understood.
pub fn parse_hey_cmd(cmd: &str) -> Result<LoadSpec, SpecError> {
    let words = shell::split(cmd)?;
    let Some((program, args)) = words.split_first() else {
        return Err(SpecError::new("cmd is empty; expected a hey invocation"));
    };
    if program != "hey" && !program.ends_with("/hey") {
        return Err(SpecError::new(format!(
            "cmd runs {program:?}; only a hey invocation is understood"
        )));
    }
    let mut spec = LoadSpec::new(String::new());
    let mut url: Option<&str> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if url.is_some() {
            // Go's flag package (and so hey) stops at the first non-flag argument and ignores
            // the rest; accepting them would silently do something other than hey.
            return Err(SpecError::new(if arg.starts_with('-') {
                format!(
                    "flag {arg} comes after the URL, where hey ignores it; put it before the URL"
                )
            } else {
                format!("cmd has more than one URL ({arg:?})")
            }));
        }
        let Some(flag) = arg.strip_prefix('-') else {
            url = Some(arg);
            continue;
        };
        // Go accepts -flag, --flag, -flag=value and -flag value.
        let flag = flag.strip_prefix('-').unwrap_or(flag);
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if !matches!(
            name,
            "z" | "n" | "c" | "q" | "m" | "H" | "d" | "T" | "t" | "host"
        ) {
            return Err(SpecError::new(format!(
                "hey flag -{name} is not supported (supported: -z -n -c -q -m -H -d -T -t -host)"
            )));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| SpecError::new(format!("hey flag -{name} needs a value")))?;
                i += 1;
                v.clone()
            }
        };
        match name {
            "z" => {
                spec.duration = Some(
                    parse_go_duration(&value).map_err(|e| SpecError::new(format!("-z: {e}")))?,
                )
            }
            "n" => spec.requests = Some(parse_u64("-n", &value)?),
            "c" => spec.concurrency = parse_u32("-c", &value)?,
            "q" => {
                let q = parse_f64("-q", &value)?;
                // hey treats -q 0 as "no limit".
                spec.model = Model::Closed {
                    per_worker_rate: (q != 0.0).then_some(q),
                };
            }
            "m" => spec.method = value,
            "H" => spec.headers.push(parse_header(&value)?),
            "d" => spec.body = Some(value),
            "T" => spec.content_type = Some(value),
            "t" => spec.timeout = timeout_from_secs(parse_u64("-t", &value)?),
            // hey's HTTP Host header, which Flagger's ingress tutorials use to reach the
            // app's virtual host through a gateway.
            "host" => spec.headers.push(Header {
                name: "Host".to_string(),
                value,
            }),
            _ => unreachable!("flag names are checked above"),
        }
    }
    spec.url = url
        .ok_or_else(|| SpecError::new("cmd has no URL"))?
        .to_string();
    // hey ignores -n when -z is given; keep the spec saying what will happen.
    if spec.duration.is_some() {
        spec.requests = None;
    }
    spec.validate()?;
    Ok(spec)
}

/// hey's `-t`: whole seconds, 0 meaning no timeout.
pub(crate) fn timeout_from_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// `Name: value`, as hey's `-H`.
pub(crate) fn parse_header(line: &str) -> Result<Header, SpecError> {
    let (name, value) = line.split_once(':').ok_or_else(|| {
        SpecError::new(format!("header {line:?} is not of the form 'Name: value'"))
    })?;
    if name.trim().is_empty() {
        return Err(SpecError::new(format!("header {line:?} has no name")));
    }
    Ok(Header {
        name: name.trim().to_string(),
        value: value.trim().to_string(),
    })
}

fn check_rate(what: &str, rate: f64) -> Result<(), SpecError> {
    if !rate.is_finite() || rate <= 0.0 || rate > MAX_RATE {
        return Err(SpecError::new(format!(
            "{what} must be above 0 and at most {MAX_RATE} requests/s, got {rate}"
        )));
    }
    Ok(())
}

fn parse_f64(what: &str, v: &str) -> Result<f64, SpecError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| SpecError::new(format!("{what}: {v:?} is not a number")))
}

fn parse_u64(what: &str, v: &str) -> Result<u64, SpecError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| SpecError::new(format!("{what}: {v:?} is not a whole number of at least 0")))
}

fn parse_u32(what: &str, v: &str) -> Result<u32, SpecError> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| SpecError::new(format!("{what}: {v:?} is not a whole number of at least 0")))
}

/// Parses Go's duration syntax (`300ms`, `1.5h`, `2h45m`), which hey's `-z` uses.
/// Negative durations are refused rather than meaning "zero".
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut rest = s;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 1m, 1h30m)"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("{text:?} has a number without a unit (e.g. 30s)")),
            other => {
                return Err(format!(
                    "{text:?} has an unknown unit {other:?} (ns us ms s m h)"
                ))
            }
        };
        total += value * seconds;
        rest = next;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_a_flagger_loadtester_command() {
        let spec = parse_hey_cmd(
            "hey -z 1m -q 10 -c 2 -H 'Cookie: canary=always' -m POST -d '{\"x\":1}' -T application/json -t 5 http://podinfo-canary.test.svc:9898/api?x=1",
        )
        .unwrap();
        assert_eq!(spec.duration, Some(Duration::from_secs(60)));
        assert_eq!(spec.concurrency, 2);
        assert_eq!(
            spec.model,
            Model::Closed {
                per_worker_rate: Some(10.0)
            }
        );
        assert_eq!(spec.max_rate(), Some(20.0));
        assert_eq!(spec.method, "POST");
        assert_eq!(spec.headers[0].name, "Cookie");
        assert_eq!(spec.headers[0].value, "canary=always");
        assert_eq!(spec.body.as_deref(), Some("{\"x\":1}"));
        assert_eq!(spec.content_type.as_deref(), Some("application/json"));
        assert_eq!(spec.timeout, Some(Duration::from_secs(5)));
        let target = spec.target().unwrap();
        assert_eq!(target.host, "podinfo-canary.test.svc");
        assert_eq!(target.port, 9898);
        assert_eq!(target.path, "/api?x=1");
    }

    #[test]
    fn host_flag_sets_the_host_header() {
        // Flagger's Gloo tutorial (docs/gitbook/tutorials/gloo-progressive-delivery.md).
        let spec = parse_hey_cmd(
            "hey -z 2m -q 5 -c 2 -host app.example.com http://gateway-proxy.gloo-system",
        )
        .unwrap();
        assert_eq!(
            spec.headers,
            vec![Header {
                name: "Host".into(),
                value: "app.example.com".into()
            }]
        );
        assert_eq!(
            spec.header_map().unwrap().get(http::header::HOST).unwrap(),
            "app.example.com"
        );
        assert_eq!(spec.target().unwrap().host, "gateway-proxy.gloo-system");
    }

    #[test]
    fn go_flag_forms_and_hey_defaults() {
        let spec = parse_hey_cmd("/usr/local/bin/hey --n=1000 -c=10 -q 0 http://app/").unwrap();
        assert_eq!(spec.requests, Some(1000));
        assert_eq!(spec.concurrency, 10);
        assert_eq!(spec.max_rate(), None);
        let plain = parse_hey_cmd("hey http://app/").unwrap();
        assert_eq!(plain.request_limit(), Some(DEFAULT_REQUESTS));
        assert_eq!(plain.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(plain.timeout, Some(DEFAULT_TIMEOUT));
        assert_eq!(parse_hey_cmd("hey -t 0 http://app/").unwrap().timeout, None);
        // -z wins over -n, as in hey.
        let both = parse_hey_cmd("hey -n 5 -z 10s http://app/").unwrap();
        assert_eq!(both.request_limit(), None);
    }

    #[test]
    fn refuses_what_is_not_one_hey_invocation() {
        let cases = [
            ("", "empty"),
            ("curl http://x/", "only a hey invocation"),
            ("sh -c 'hey http://x/'", "only a hey invocation"),
            ("FOO=1 hey http://x/", "only a hey invocation"),
            ("hey -z 1m http://x/; rm -rf /", "metacharacter ';'"),
            ("hey -x proxy:1 http://x/", "-x is not supported"),
            (
                "hey -disable-keepalive http://x/",
                "-disable-keepalive is not supported",
            ),
            ("hey http://x/ http://y/", "more than one URL"),
            ("hey http://x/ -z 1m", "after the URL"),
            ("hey -z", "needs a value"),
            ("hey -z 1m", "no URL"),
            ("hey -z soon http://x/", "not a duration"),
            ("hey -z -1m http://x/", "negative"),
            ("hey -z 48h http://x/", "at most 24h"),
            ("hey -q -5 http://x/", "above 0"),
            ("hey -q 1e12 http://x/", "at most"),
            ("hey -c 0 http://x/", "concurrency"),
            ("hey -c 100000 http://x/", "concurrency"),
            ("hey -c -3 http://x/", "whole number"),
            ("hey -n 0 http://x/", "request count"),
            ("hey ftp://x/", "scheme \"ftp\""),
            ("hey x/", "no scheme"),
            ("hey http://user:pw@x/", "credentials"),
            ("hey -H nocolon http://x/", "Name: value"),
            ("hey -m 'G T' http://x/", "not an HTTP method"),
        ];
        for (cmd, expected) in cases {
            let err = parse_hey_cmd(cmd).expect_err(cmd).to_string();
            assert!(
                err.contains(expected),
                "{cmd:?}: {err:?} lacks {expected:?}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn explicit_metadata_keys() {
        let spec = LoadSpec::from_metadata(&meta(&[
            ("url", "http://podinfo-canary.test.svc:9898/"),
            ("rps", "25.5"),
            ("duration", "30s"),
            ("concurrency", "4"),
            ("method", "post"),
            ("headers", "X-A: 1\nX-B: two"),
            ("body", "hello"),
            ("timeout", "3"),
        ]))
        .unwrap();
        assert_eq!(spec.model, Model::Open { rate: 25.5 });
        assert_eq!(spec.duration, Some(Duration::from_secs(30)));
        assert_eq!(spec.concurrency, 4);
        assert_eq!(spec.method().unwrap(), Method::POST);
        assert_eq!(spec.headers.len(), 2);
        assert_eq!(spec.body.as_deref(), Some("hello"));
        assert_eq!(spec.timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn metadata_cmd_and_errors() {
        let spec = LoadSpec::from_metadata(&meta(&[
            ("type", "cmd"),
            ("cmd", "hey -z 1m -q 5 -c 2 http://app/"),
            ("logCmdOutput", "true"),
        ]))
        .unwrap();
        assert_eq!(spec.max_rate(), Some(10.0));
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[("cmd", "hey http://a/"), ("url", "http://a/")],
                "not both",
            ),
            (
                &[("url", "http://a/"), ("rsp", "5")],
                "unknown load-test metadata key(s): rsp",
            ),
            (&[("type", "bash"), ("cmd", "ls")], "type \"bash\""),
            (&[("url", "http://a/"), ("duration", "1m")], "needs rps"),
            (
                &[("url", "http://a/"), ("rps", "-3"), ("duration", "1m")],
                "above 0",
            ),
            (
                &[("url", "http://a/"), ("rps", "NaN"), ("duration", "1m")],
                "not a number",
            ),
            (&[("url", "http://a/"), ("rps", "3")], "needs duration"),
        ];
        for (pairs, expected) in cases {
            let err = LoadSpec::from_metadata(&meta(pairs))
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn checksum_is_stable_and_sensitive() {
        let a = parse_hey_cmd("hey -z 1m -q 10 http://app/").unwrap();
        let b = parse_hey_cmd("hey  -z 60s  -q 10.0 http://app/").unwrap();
        let c = parse_hey_cmd("hey -z 1m -q 11 http://app/").unwrap();
        assert_eq!(a.checksum(), b.checksum());
        assert_ne!(a.checksum(), c.checksum());
        assert_eq!(a.checksum().len(), 16);
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = parse_hey_cmd("hey -z 90s -q 2 -H 'A: b' http://app/").unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        let back: LoadSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10d").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
