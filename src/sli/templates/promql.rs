//! Scanning, checking and rendering template text: where each placeholder sits, what it
//! may be replaced with, and how values are escaped so they cannot change a query.

use std::collections::BTreeMap;

/// Checks one query statically (placeholders, quoting) and by rendering it with sample
/// values and checking that the result is a series selector.
pub(super) fn validate_query(text: &str) -> Result<(), String> {
    let pieces = scan(text)?;
    let rendered = render_pieces(&pieces, &sample_values())
        .map_err(|name| format!("cannot render variable {name:?} with sample values"))?;
    check_structure(&rendered).map_err(|why| format!("{why} in {rendered:?}"))?;
    check_selector(&rendered)
}

/// A series selector, `metric{label="value", …}`, and nothing else: verdict reads each
/// series' cumulative counter and computes the increments itself (docs/operations.md,
/// "Where the counts come from"). Functions and ranges are refused, with the old
/// `increase()` form named, since `increase()` extrapolates and loses a new series' first
/// increment.
fn check_selector(query: &str) -> Result<(), String> {
    let code = outside_strings(query);
    if code.contains(['(', ')', '[', ']']) {
        return Err(format!(
            "must be a series selector like `metric{{label=\"…\"}}`, got {query:?}: verdict reads the counters per series and computes each look's increments itself, so sum(), increase(), rate() and ranges are not used (templates in the old increase() form extrapolate; see docs/operations.md)"
        ));
    }
    let trimmed = code.trim();
    let name_end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(trimmed.len());
    let (name, rest) = trimmed.split_at(name_end);
    let rest = rest.trim();
    let selector_ok = (rest.is_empty() && !name.is_empty())
        || (rest.starts_with('{') && rest.ends_with('}') && rest.matches('{').count() == 1);
    let name_ok = name.is_empty() || name.starts_with(|c: char| !c.is_ascii_digit());
    if !(selector_ok && name_ok) {
        return Err(format!(
            "must be one series selector like `metric{{label=\"…\"}}`, got {query:?}"
        ));
    }
    Ok(())
}

/// The query with the contents of its string literals blanked out.
fn outside_strings(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut chars = query.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' && q != '`' {
                    chars.next();
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// A variable a template may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Var {
    Namespace,
    Target,
    Workload,
    Service,
    Arm,
    Variable(String),
}

/// Where a string-valued placeholder sits: a plain string or a regex matcher's string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    String,
    RegexString,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Var(Var, Context),
}

pub(super) struct Values<'a> {
    pub(super) namespace: &'a str,
    pub(super) target: &'a str,
    pub(super) workload: &'a str,
    pub(super) service: &'a str,
    pub(super) arm: &'a str,
    /// `None` while validating: any `variables.x` renders as a sample.
    pub(super) variables: Option<&'a BTreeMap<String, String>>,
}

pub(super) fn sample_values() -> Values<'static> {
    Values {
        namespace: "sample-ns",
        target: "sample",
        workload: "sample-primary",
        service: "sample",
        arm: "primary",
        variables: None,
    }
}

/// Splits a template into text and placeholders, checking that each placeholder is a known
/// variable in a position where its value cannot change the query's structure.
pub(super) fn scan(text: &str) -> Result<Vec<Piece>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        Double { regex: bool },
        Single,
        Backtick,
        Comment,
    }
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut state = State::Code;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            let close = text[i..]
                .find("}}")
                .ok_or_else(|| "a `{{` is never closed by `}}`".to_string())?;
            let inner = text[i + 2..i + close].trim();
            if inner.contains(['{', '}', '\n']) {
                return Err("a `{{` is never closed by `}}`".into());
            }
            let var = parse_var(inner)?;
            let context = match state {
                State::Double { regex: false } => Context::String,
                State::Double { regex: true } => Context::RegexString,
                State::Single | State::Backtick => {
                    return Err(format!(
                        "`{{{{ {inner} }}}}` is in a single-quoted or backtick string; use double quotes so its value can be escaped"
                    ))
                }
                State::Code | State::Comment => {
                    return Err(format!(
                        "`{{{{ {inner} }}}}` must be inside a double-quoted label value, like `label=\"{{{{ {inner} }}}}\"`"
                    ))
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(var, context));
            i += close + 2;
            continue;
        }
        let c = bytes[i];
        match state {
            State::Code => match c {
                b'"' => {
                    let before = text[..i].trim_end();
                    let regex = before.ends_with("=~") || before.ends_with("!~");
                    state = State::Double { regex };
                }
                b'\'' => state = State::Single,
                b'`' => state = State::Backtick,
                b'#' => state = State::Comment,
                _ => {}
            },
            State::Double { .. } | State::Single => {
                let quote = if state == State::Single { b'\'' } else { b'"' };
                if c == b'\\' {
                    // Keep the escaped character verbatim and skip it.
                    let next = text[i + 1..].chars().next().map_or(0, char::len_utf8);
                    literal.push_str(&text[i..i + 1 + next]);
                    i += 1 + next;
                    continue;
                }
                if c == quote {
                    state = State::Code;
                }
            }
            State::Backtick => {
                if c == b'`' {
                    state = State::Code;
                }
            }
            State::Comment => {
                if c == b'\n' {
                    state = State::Code;
                }
            }
        }
        // Copy one whole UTF-8 character.
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        literal.push_str(&text[i..i + len]);
        i += len;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn parse_var(inner: &str) -> Result<Var, String> {
    let var = match inner {
        "namespace" => Var::Namespace,
        "target" => Var::Target,
        "workload" => Var::Workload,
        "service" => Var::Service,
        "arm" => Var::Arm,
        "interval" => return Err(
            "`{{ interval }}` is no longer used: write the series selector alone (e.g. `metric{label=\"{{ workload }}\"}`); verdict reads the counters at each look and computes the increments itself (docs/operations.md)".into()
        ),
        other => match other.strip_prefix("variables.") {
            Some(key) if is_variable_key(key) => Var::Variable(key.to_owned()),
            _ => {
                return Err(format!(
                    "unknown variable `{{{{ {other} }}}}`; known: namespace, target, workload, service, arm, variables.<key>"
                ))
            }
        },
    };
    Ok(var)
}

/// Keys of `{{ variables.<key> }}`: identifiers, so they can be named in metadata.
pub fn is_variable_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 63
}

/// Renders pieces; the error is the name of a `variables.x` with no value.
pub(super) fn render_pieces(pieces: &[Piece], values: &Values<'_>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Var(var, context) => {
                let raw: &str = match var {
                    Var::Namespace => values.namespace,
                    Var::Target => values.target,
                    Var::Workload => values.workload,
                    Var::Service => values.service,
                    Var::Arm => values.arm,
                    Var::Variable(key) => match values.variables {
                        None => "sample",
                        Some(map) => map.get(key).ok_or_else(|| key.clone())?,
                    },
                };
                match context {
                    Context::String => out.push_str(&escape_string(raw)),
                    // regex::escape escapes every ASCII punctuation mark it might read specially;
                    // Prometheus' RE2 reads an escaped punctuation mark as itself, so the value
                    // matches literally there too (tests/templates_prometheus.rs runs it).
                    Context::RegexString => out.push_str(&escape_string(&regex::escape(raw))),
                }
            }
        }
    }
    Ok(out)
}

/// Escapes a value for a PromQL double-quoted string (Go string-literal rules), so it can
/// never end the string it is placed in.
pub fn escape_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Balanced brackets outside strings and closed strings: the structural errors a typo
/// in a template produces. Prometheus itself parses the query on every call; this check
/// makes the common mistakes stop start-up instead of failing the first canary.
pub(super) fn check_structure(query: &str) -> Result<(), String> {
    let mut open: Vec<char> = Vec::new();
    let mut chars = query.chars();
    let mut in_string: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(quote) = in_string {
            if c == '\\' && quote != '`' {
                chars.next();
            } else if c == quote {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '#' => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match open.pop() {
                    Some(o) if o == want => {}
                    Some(o) => return Err(format!("`{c}` closes `{o}`")),
                    None => return Err(format!("`{c}` has no opening bracket")),
                }
            }
            _ => {}
        }
    }
    if let Some(quote) = in_string {
        return Err(format!("a {quote} string is never closed"));
    }
    if let Some(o) = open.pop() {
        return Err(format!("`{o}` is never closed"));
    }
    if query.trim().is_empty() {
        return Err("the query is empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_string_handles_every_special_character() {
        assert_eq!(escape_string(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_string("a\nb\rc\td"), r"a\nb\rc\td");
        assert_eq!(escape_string("\u{0}"), r"\u0000");
        assert_eq!(escape_string("plain-name"), "plain-name");
    }

    #[test]
    fn only_series_selectors_are_accepted() {
        for good in [
            "istio_requests_total",
            r#"istio_requests_total{a="x", b=~"(y|z)[0-9]+"}"#,
            r#"{__name__="x", a!="[("}"#,
            "ns:metric_total { a = \"1\" }",
        ] {
            check_selector(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, why) in [
            ("sum(increase(r[5m]))", "increase()"),
            ("rate(r[1m])", "increase()"),
            ("r offset 5m", "one series selector"),
            ("r{a=\"1\"} + r", "one series selector"),
            ("1e3", "one series selector"),
        ] {
            let err = check_selector(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn regex_values_match_themselves_literally() {
        // What the rendered matcher value means once Prometheus unquotes the string: the
        // value itself, whatever metacharacters it holds (RE2 and Rust's regex read these
        // escapes alike).
        for value in [
            "a.b*c",
            "(x|y)[z]{1}^$+?",
            "plain-name",
            r"back\slash",
            "#&~-",
        ] {
            let re = regex::Regex::new(&format!("^{}$", regex::escape(value))).unwrap();
            assert!(re.is_match(value), "{value}");
            assert!(!re.is_match(&format!("{value}x")), "{value}");
        }
    }
}
