//! Tables for people: aligned columns, times as RFC 3339 (UTC), `-` for nothing.
//!
//! Renderers take the API's JSON and tolerate fields they do not know: `--json` is the
//! exact answer, the table is a view of it.

use serde_json::{Map, Value};

/// Longest cell shown; longer text (evidence, settings) is cut with `…` (not with `-o wide`).
const MAX_CELL_CHARS: usize = 80;

/// How much a table shows: the default, or `-o wide` (more columns, no cell cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Normal,
    Wide,
}

/// Rows under a header, each column as wide as its widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Cells are never cut (`-o wide`).
    uncut: bool,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            uncut: false,
        }
    }

    /// A table whose cells are cut (default) or not (`-o wide`).
    pub fn with_detail<S: Into<String>>(
        headers: impl IntoIterator<Item = S>,
        detail: Detail,
    ) -> Self {
        Self {
            uncut: detail == Detail::Wide,
            ..Self::new(headers)
        }
    }

    /// Adds a row; missing cells show as empty, extra ones are dropped.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, ending in a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let uncut = self.uncut;
        let cell =
            |row: &[String], i: usize| row.get(i).map_or(String::new(), |c| one_line(c, uncut));
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, width) in widths.iter_mut().enumerate() {
                *width = (*width).max(cell(row, i).chars().count());
            }
        }
        let mut out = String::new();
        let lines = std::iter::once(self.headers.clone()).chain(
            self.rows
                .iter()
                .map(|r| (0..columns).map(|i| cell(r, i)).collect()),
        );
        for line in lines {
            let mut text = String::new();
            for (i, value) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(value);
                if i + 1 < columns {
                    let pad = widths[i].saturating_sub(value.chars().count());
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Newlines and tabs would break the columns; long text is cut unless `uncut`.
fn one_line(s: &str, uncut: bool) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if !uncut && flat.chars().count() > MAX_CELL_CHARS {
        let mut cut: String = flat.chars().take(MAX_CELL_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

/// A value as a cell: strings bare, `null` as `-`, anything else as compact JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A time as RFC 3339 in UTC: RFC 3339 strings are normalised, integers are taken as
/// Unix milliseconds (the store's unit), `null` is `-`.
pub fn time(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            })
            .unwrap_or_else(|_| s.clone()),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| n.to_string()),
        other => cell(other),
    }
}

/// Whether a field holds a time, by the API's naming (`…_at`, `at`, `since`, windows).
fn is_time_field(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    last == "at"
        || last.ends_with("_at")
        || last == "since"
        || last == "time"
        || last.starts_with("window_")
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn next_page(v: &Value, out: &mut String) {
    if let Some(cursor) = v.get("next_cursor").filter(|c| !c.is_null()) {
        out.push_str(&format!("next page: --cursor {}\n", cell(Some(cursor))));
    }
}

/// `GET /api/v1/analyses`; wide adds the revision (checksum) and never cuts the reason.
pub fn analyses(v: &Value, detail: Detail) -> String {
    let list = items(v);
    let wide = detail == Detail::Wide;
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no analyses\n");
    } else {
        let mut headers = vec!["ID", "CANARY"];
        if wide {
            headers.extend(["CHECKSUM", "CONTROLLER"]);
        }
        headers.extend(["STATUS", "MODE", "STARTED", "FINISHED", "REASON"]);
        let mut t = Table::with_detail(headers, detail);
        for a in list {
            let mut row = vec![cell(field(a, "id")), canary_name(a)];
            if wide {
                row.extend([cell(field(a, "checksum")), cell(field(a, "controller"))]);
            }
            row.extend([
                cell(field(a, "status")),
                if is_backtest(a) {
                    "backtest".to_owned()
                } else {
                    cell(field(a, "mode"))
                },
                time(field(a, "started_at")),
                time(field(a, "finished_at")),
                cell(field(a, "status_reason")),
            ]);
            t.push(row);
        }
        out.push_str(&t.render());
    }
    next_page(v, &mut out);
    out
}

fn canary_name(v: &Value) -> String {
    format!("{}/{}", cell(field(v, "namespace")), cell(field(v, "name")))
}

/// Whether an analysis summary is a recorded window backtest.
fn is_backtest(a: &Value) -> bool {
    field(a, "origin").and_then(Value::as_str) == Some("backtest")
}

/// `GET /api/v1/analyses/{id}`: the analysis, then its looks, decisions and load runs;
/// wide adds the slow counts and e-values of each look.
pub fn analysis(v: &Value, detail: Detail) -> String {
    // The API nests the summary under `analysis`; older answers had it at the top.
    let mut out = analysis_summary(field(v, "analysis").unwrap_or(v));
    if let Some(look) = field(v, "would_have_rolled_back_at_look").filter(|l| !l.is_null()) {
        out.push_str(&format!(
            "shadow:    would have rolled back at look {look}\n"
        ));
    }
    if is_backtest(field(v, "analysis").unwrap_or(v)) {
        out.push_str("backtest:  recorded window backtest; no hook, gate or overview reads it\n");
    }
    if let Some(settings) = field(v, "settings").filter(|s| !s.is_null()) {
        let text = match settings {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("settings:  {text}\n"));
    }
    const LOOKS: &[&str] = &[
        "seq",
        "window_start",
        "window_end",
        "canary.requests",
        "canary.errors",
        "primary.requests",
        "primary.errors",
        "verdict",
        "reason",
    ];
    const WIDE_LOOKS: &[&str] = &[
        "seq",
        "window_start",
        "window_end",
        "canary.requests",
        "canary.errors",
        "canary.slow",
        "primary.requests",
        "primary.errors",
        "primary.slow",
        "error.e_value",
        "latency.e_value",
        "verdict",
        "reason",
    ];
    let looks = if detail == Detail::Wide {
        WIDE_LOOKS
    } else {
        LOOKS
    };
    let sections: [(&str, &str, &[&str]); 3] = [
        ("looks", "LOOKS", looks),
        (
            "decisions",
            "DECISIONS",
            &["created_at", "hook", "status_code", "verdict", "reason"],
        ),
        (
            "load_runs",
            "LOAD RUNS",
            &["run_id", "started_at", "ended_at", "status", "requests"],
        ),
    ];
    for (key, title, preferred) in sections {
        let rows = field(v, key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        out.push_str(&format!("\n{title} ({})\n", rows.len()));
        if !rows.is_empty() {
            out.push_str(&generic(rows, preferred, detail).render());
        }
    }
    out
}

/// `GET /api/v1/analyses/{id}/backtest`: old and new verdict per look, then where they
/// first differ.
pub fn backtest(v: &Value, detail: Detail) -> String {
    let changed = field(v, "changed").map_or_else(String::new, Value::to_string);
    let mut out = format!(
        "analysis {} replayed with {changed}\n",
        cell(field(v, "analysis_id"))
    );
    let looks = items_of(v, "looks");
    if !looks.is_empty() {
        out.push_str(&generic(looks, &["seq", "old", "new", "reason"], detail).render());
    }
    match field(v, "first_difference").filter(|d| !d.is_null()) {
        Some(seq) => out.push_str(&format!("first difference at look {seq}\n")),
        None => out.push_str(&format!("no difference over {} looks\n", looks.len())),
    }
    out
}

fn items_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    field(v, key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// `key: value` lines of an analysis.
fn analysis_summary(a: &Value) -> String {
    let lines = [
        ("analysis", cell(field(a, "id"))),
        ("canary", canary_name(a)),
        ("checksum", cell(field(a, "checksum"))),
        ("status", cell(field(a, "status"))),
        ("mode", cell(field(a, "mode"))),
        ("controller", cell(field(a, "controller"))),
        ("reason", cell(field(a, "status_reason"))),
        ("started", time(field(a, "started_at"))),
        ("finished", time(field(a, "finished_at"))),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{:<10} {v}\n", format!("{k}:")))
        .collect()
}

/// `GET /api/v1/canaries/{namespace}/{name}` (and the answer of a gate change, which
/// carries the same `gates`); wide adds the analysis's revision and end.
pub fn canary(v: &Value, detail: Detail) -> String {
    let mut out = format!("canary:    {}\n", canary_name(v));
    match field(v, "latest_analysis").filter(|a| !a.is_null()) {
        None => out.push_str("analysis:  none yet\n"),
        Some(a) => {
            out.push_str(&format!(
                "analysis:  {} {} since {}{}\n",
                cell(field(a, "id")),
                cell(field(a, "status")),
                time(field(a, "started_at")),
                field(a, "status_reason")
                    .and_then(Value::as_str)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
            if detail == Detail::Wide {
                out.push_str(&format!(
                    "revision:  {}\nfinished:  {}\n",
                    cell(field(a, "checksum")),
                    time(field(a, "finished_at"))
                ));
            }
        }
    }
    let mut t = Table::with_detail(
        ["GATE", "STATE", "MANUAL", "ACTOR", "UPDATED", "REASON"],
        detail,
    );
    if let Some(gates) = field(v, "gates").and_then(Value::as_object) {
        for name in ["rollout", "promotion"] {
            if let Some(g) = gates.get(name) {
                t.push(gate_row(name, g));
            }
        }
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

fn gate_row(name: &str, g: &Value) -> Vec<String> {
    vec![
        name.to_owned(),
        cell(field(g, "state")),
        cell(field(g, "manual")),
        cell(field(g, "actor")),
        time(field(g, "updated_at")),
        cell(field(g, "reason")),
    ]
}

/// The answer of `PUT …/gates/{gate}`: the gate as the hooks now see it.
pub fn gate(gate: &str, v: &Value, detail: Detail) -> String {
    let mut t = Table::with_detail(
        ["GATE", "STATE", "MANUAL", "ACTOR", "UPDATED", "REASON"],
        detail,
    );
    t.push(gate_row(gate, v));
    t.render()
}

/// The answer of `POST …/rollback`: `{"analysis": …}` as now stored.
pub fn rollback(v: &Value, _detail: Detail) -> String {
    let a = field(v, "analysis").unwrap_or(v);
    format!(
        "rollback requested: Flagger rolls back at its next tick\n\n{}",
        analysis_summary(a)
    )
}

/// `GET /api/v1/audit`; wide never cuts the reason.
pub fn audit(v: &Value, detail: Detail) -> String {
    let list = items(v);
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no audit entries\n");
    } else {
        let mut t = Table::with_detail(
            ["ID", "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "REASON"],
            detail,
        );
        for a in list {
            t.push(vec![
                cell(field(a, "id")),
                time(field(a, "at")),
                cell(field(a, "actor")),
                cell(field(a, "role")),
                cell(field(a, "action")),
                cell(field(a, "target")),
                cell(field(a, "reason")),
            ]);
        }
        out.push_str(&t.render());
    }
    next_page(v, &mut out);
    out
}

/// A table of objects whose exact shape the renderer does not fix: nested objects are
/// flattened to dotted columns; the `preferred` columns (matched by their last segments)
/// come first, or, when none is present, every scalar column.
fn generic(rows: &[Value], preferred: &[&str], detail: Detail) -> Table {
    let flat: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            flatten("", r, &mut m);
            m
        })
        .collect();
    let mut present: Vec<String> = Vec::new();
    for m in &flat {
        for k in m.keys() {
            if !present.contains(k) {
                present.push(k.clone());
            }
        }
    }
    let matches =
        |column: &str, wanted: &str| column == wanted || column.ends_with(&format!(".{wanted}"));
    let mut columns: Vec<String> = preferred
        .iter()
        .filter_map(|p| present.iter().find(|c| matches(c, p)).cloned())
        .collect();
    if columns.is_empty() {
        columns = present;
    }
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let mut t = Table::with_detail(headers, detail);
    for m in &flat {
        t.push(
            columns
                .iter()
                .map(|c| {
                    if is_time_field(c) {
                        time(m.get(c))
                    } else {
                        cell(m.get(c))
                    }
                })
                .collect(),
        );
    }
    t
}

/// One look as one line, as `verdict wait` prints it.
pub fn look_line(look: &Value) -> String {
    let arm = |name: &str| {
        let a = field(look, name);
        format!(
            "{name} {} requests, {} errors",
            cell(a.and_then(|a| a.get("requests"))),
            cell(a.and_then(|a| a.get("errors")))
        )
    };
    one_line(
        &format!(
            "look {} at {}: {}; {}: {}: {}",
            cell(field(look, "seq")),
            time(field(look, "window_end")),
            arm("canary"),
            arm("primary"),
            cell(field(look, "verdict")),
            cell(field(look, "reason"))
        ),
        true,
    )
}

fn flatten(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_are_aligned_and_lines_have_no_trailing_spaces() {
        let mut t = Table::new(["ID", "NAME", "REASON"]);
        t.push(vec!["7".into(), "test/podinfo".into(), "".into()]);
        t.push(vec!["12".into(), "a/b".into(), "line\nbreak".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME          REASON\n\
             7   test/podinfo\n\
             12  a/b           line break\n"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            time(Some(&json!("2026-11-30T11:00:00+01:00"))),
            "2026-11-30T10:00:00Z"
        );
        assert_eq!(
            time(Some(&json!(1_796_032_800_000_i64))),
            "2026-11-30T10:00:00Z"
        );
        assert_eq!(time(Some(&Value::Null)), "-");
        assert_eq!(time(None), "-");
    }

    #[test]
    fn analyses_list_shows_each_row_and_the_next_cursor() {
        let v = json!({"items": [
            {"id": 7, "namespace": "test", "name": "podinfo", "checksum": "85d557f47b",
             "status": "running", "status_reason": null, "mode": "shadow",
             "controller": "argo",
             "started_at": "2026-11-30T10:00:00Z", "finished_at": null},
            {"id": 6, "namespace": "test", "name": "podinfo", "checksum": "1234",
             "status": "failed", "status_reason": "error rate above the primary's",
             "started_at": "2026-11-29T10:00:00Z", "finished_at": "2026-11-29T10:30:00Z"}],
            "next_cursor": "6"});
        let text = analyses(&v, Detail::Normal);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ID  CANARY        STATUS   MODE    STARTED"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("7   test/podinfo  running  shadow  2026-11-30T10:00:00Z  -"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("2026-11-29T10:30:00Z  error rate above the primary's"),
            "{text}"
        );
        assert_eq!(lines[3], "next page: --cursor 6");
        assert_eq!(
            analyses(&json!({"items": [], "next_cursor": null}), Detail::Normal),
            "no analyses\n"
        );
        // Wide: the revision, and reasons never cut.
        let wide = analyses(&v, Detail::Wide);
        assert!(
            wide.lines()
                .next()
                .unwrap_or("")
                .starts_with("ID  CANARY        CHECKSUM    CONTROLLER  STATUS"),
            "{wide}"
        );
        assert!(
            wide.lines()
                .nth(1)
                .unwrap_or("")
                .starts_with("7   test/podinfo  85d557f47b  argo        running"),
            "{wide}"
        );
        let long = json!({"items": [{"id": 1, "namespace": "a", "name": "b",
            "status": "failed", "status_reason": "x".repeat(200)}]});
        assert!(analyses(&long, Detail::Wide).contains(&"x".repeat(200)));
        assert!(!analyses(&long, Detail::Normal).contains(&"x".repeat(200)));
    }

    #[test]
    fn a_recorded_backtest_is_marked_in_the_list_and_the_detail() {
        let a = json!({"id": 9, "namespace": "test", "name": "podinfo",
            "checksum": "backtest-1-2-ab", "status": "failed", "status_reason": "regression",
            "mode": "enforce", "origin": "backtest",
            "started_at": "2026-11-30T10:00:00Z", "finished_at": "2026-11-30T10:05:00Z"});
        let text = analyses(&json!({"items": [a.clone()]}), Detail::Normal);
        let row = text.lines().nth(1).unwrap_or("");
        assert!(row.contains("failed  backtest"), "{text}");
        let detail = analysis(&json!({"analysis": a}), Detail::Normal);
        assert!(detail.contains("recorded window backtest"), "{detail}");
        let live = json!({"analysis": {"id": 1, "origin": "live", "mode": "enforce"}});
        assert!(!analysis(&live, Detail::Normal).contains("backtest"));
    }

    #[test]
    fn canary_shows_both_gates() {
        let v = json!({"namespace": "test", "name": "podinfo",
            "latest_analysis": {"id": 7, "status": "running", "started_at": "2026-11-30T10:00:00Z"},
            "gates": {
              "rollout": {"state": "open", "manual": false, "actor": null, "reason": null, "updated_at": null},
              "promotion": {"state": "held", "manual": false, "actor": "alice",
                            "reason": "waiting for the marketing launch", "updated_at": "2026-11-30T10:05:00Z"}}});
        let text = canary(&v, Detail::Normal);
        assert!(text.contains("canary:    test/podinfo\n"), "{text}");
        assert!(
            text.contains("analysis:  7 running since 2026-11-30T10:00:00Z\n"),
            "{text}"
        );
        assert!(
            text.contains("rollout    open   false   -      -"),
            "{text}"
        );
        assert!(
            text.contains("promotion  held   false   alice  2026-11-30T10:05:00Z  waiting for the marketing launch"),
            "{text}"
        );
    }

    #[test]
    fn analysis_detail_tolerates_unknown_shapes() {
        let v = json!({"id": 7, "namespace": "test", "name": "podinfo", "checksum": "abc",
            "status": "running", "status_reason": null, "started_at": "2026-11-30T10:00:00Z",
            "finished_at": null, "settings": {"template": "istio"},
            "looks": [{"seq": 1, "window_start": "2026-11-30T10:00:00Z", "window_end": "2026-11-30T10:01:00Z",
                       "canary": {"requests": 100, "errors": 1}, "primary": {"requests": 900, "errors": 9},
                       "verdict": "wait", "reason": "not enough requests", "evidence": {"e": 1.5}}],
            "decisions": [{"id": 3, "hook": "rollout", "status_code": 200, "verdict": "wait",
                           "reason": "not enough requests", "created_at": 1_796_032_800_000_i64}],
            "load_runs": [{"mystery": "x", "other": 2}]});
        let text = analysis(&v, Detail::Normal);
        assert!(text.contains("status:    running\n"), "{text}");
        assert!(
            text.contains("settings:  {\"template\":\"istio\"}\n"),
            "{text}"
        );
        assert!(text.contains("LOOKS (1)\nSEQ  WINDOW_START"), "{text}");
        assert!(
            text.contains("100              1              900               9               wait"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-30T10:00:00Z  rollout  200"),
            "{text}"
        );
        // The API's own shape nests the summary under `analysis`.
        let nested = json!({"analysis": {"id": 9, "namespace": "test", "name": "podinfo",
            "status": "failed", "status_reason": "error rate regression"},
            "looks": [], "decisions": [], "load_runs": []});
        let shown = analysis(&nested, Detail::Normal);
        assert!(
            shown.starts_with("analysis:  9\ncanary:    test/podinfo\n"),
            "{shown}"
        );
        assert!(
            shown.contains("reason:    error rate regression"),
            "{shown}"
        );
        // No preferred column: every scalar column.
        assert!(
            text.contains("LOAD RUNS (1)\nMYSTERY  OTHER\nx        2\n"),
            "{text}"
        );
    }

    #[test]
    fn audit_lists_actions() {
        let v = json!({"items": [{"id": 3, "actor": "alice", "role": "release-manager",
            "action": "gate.promotion.hold", "target": "test/podinfo",
            "reason": "waiting", "at": "2026-11-30T10:05:00Z"}], "next_cursor": null});
        assert_eq!(
            audit(&v, Detail::Normal),
            "ID  AT                    ACTOR  ROLE             ACTION               TARGET        REASON\n\
             3   2026-11-30T10:05:00Z  alice  release-manager  gate.promotion.hold  test/podinfo  waiting\n"
        );
    }
}
