//! `verdict backtest`: which of the three forms was asked for, the call, and the tables
//! of the history and window forms (the one-analysis table is [`super::table::backtest`]).

use serde_json::{json, Map, Value};

use super::args::{BacktestArgs, OutputFormat};
use super::table::{self, Detail, Table};
use super::{show, ApiClient, ClientError};

/// Runs the form `b` names and returns the text to print.
pub(super) async fn run(
    client: &ApiClient,
    b: &BacktestArgs,
    format: Option<OutputFormat>,
) -> Result<String, ClientError> {
    let compare: Vec<Vec<(String, String)>> = b.compare.iter().map(|g| g.0.clone()).collect();
    if let Some(id) = b.analysis {
        return show(
            format,
            &client.backtest(id, &b.set).await?,
            &table::backtest,
        );
    }
    if let Some(since) = &b.since {
        let namespace = b.namespace.as_ref().map(ToString::to_string);
        let answer = client
            .backtest_history(since, namespace.as_deref(), &b.set, &compare)
            .await?;
        return show(format, &answer, &history);
    }
    let (Some(target), Some(namespace), Some(from), Some(to), Some(interval)) =
        (&b.target, &b.namespace, &b.from, &b.to, &b.interval)
    else {
        return Err(ClientError::Usage(
            "give --analysis ID, --since 30d, or --namespace NS --target NAME --from T1 --to T2 --interval 1m".into(),
        ));
    };
    let map = |set: &[(String, String)]| -> Map<String, Value> {
        set.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    let mut body = json!({
        "namespace": namespace.to_string(),
        "target": target.to_string(),
        "from": from,
        "to": to,
        "interval": humantime::format_duration(*interval).to_string(),
        "set": map(&b.set),
    });
    if let Some(template) = &b.template {
        body["template"] = json!(template);
    }
    if let Some(max) = b.max_looks {
        body["max_looks"] = json!(max);
    }
    if b.record {
        body["record"] = json!(true);
    }
    if !compare.is_empty() {
        body["compare"] = Value::Array(compare.iter().map(|g| Value::Object(map(g))).collect());
    }
    show(format, &client.backtest_window(body).await?, &window)
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    get(v, key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// `alpha=0.01,promotionMargin=0.5`, or `as given` for no change.
fn configuration(changed: Option<&Value>, unchanged: &str) -> String {
    let pairs: Vec<String> = changed
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        unchanged.to_owned()
    } else {
        pairs.join(",")
    }
}

fn tally_row(name: String, t: Option<&Value>) -> Vec<String> {
    let count = |k: &str| table::cell(t.and_then(|t| get(t, k)));
    vec![
        name,
        count("rolled_back"),
        count("promoted"),
        count("undecided"),
        count("median_decision_look"),
    ]
}

const TALLY_HEADERS: [&str; 5] = [
    "configuration",
    "rolled back",
    "promoted",
    "undecided",
    "median look",
];

/// `rolled back at look 3`, `promoted from look 4`, `undecided`.
fn outcome(o: Option<&Value>) -> String {
    let ending = o.and_then(|o| get(o, "ending")).and_then(Value::as_str);
    let look = o.and_then(|o| get(o, "look")).map(|l| table::cell(Some(l)));
    match (ending, look) {
        (Some("rolled_back"), Some(l)) => format!("rolled back at look {l}"),
        (Some("promoted"), Some(l)) => format!("promoted from look {l}"),
        (Some(other), _) => other.replace('_', " "),
        (None, _) => "-".to_owned(),
    }
}

/// `GET /api/v1/backtest`: one row per configuration, then the flips.
pub fn history(v: &Value, detail: Detail) -> String {
    let namespace = get(v, "namespace")
        .and_then(Value::as_str)
        .map_or_else(String::new, |n| format!(" in namespace {n}"));
    let mut out = format!(
        "replayed {} analyses started since {}{namespace}\n",
        table::cell(get(v, "analyses")),
        table::cell(get(v, "since")),
    );
    for s in list(v, "skipped") {
        out.push_str(&format!(
            "skipped analysis {}: {}\n",
            table::cell(get(s, "analysis_id")),
            table::cell(get(s, "reason"))
        ));
    }
    let mut rows = Table::with_detail(TALLY_HEADERS, detail);
    rows.push(tally_row("as recorded".into(), get(v, "recorded")));
    for c in list(v, "configurations") {
        rows.push(tally_row(
            configuration(get(c, "changed"), "stored settings"),
            get(c, "outcomes"),
        ));
    }
    out.push_str(&rows.render());
    for c in list(v, "configurations") {
        let name = configuration(get(c, "changed"), "stored settings");
        let flips = list(c, "flips");
        if flips.is_empty() {
            out.push_str(&format!("{name}: no outcome flips\n"));
            continue;
        }
        out.push_str(&format!("{name}: {} outcome flip(s)\n", flips.len()));
        for f in flips {
            out.push_str(&format!(
                "  analysis {} {}: {} → {}\n",
                table::cell(get(f, "analysis_id")),
                table::cell(get(f, "canary")),
                outcome(get(f, "before")),
                outcome(get(f, "after")),
            ));
        }
    }
    out
}

/// `POST /api/v1/backtest/window`: the plan, each run's looks (for one run, or with
/// `-o wide`), each run's decision, and a comparison table for several runs.
pub fn window(v: &Value, detail: Detail) -> String {
    let mut out = format!(
        "window {}/{} from {} to {} every {}: {} look times, template {}\nplan: {}\n",
        table::cell(get(v, "namespace")),
        table::cell(get(v, "target")),
        table::cell(get(v, "from")),
        table::cell(get(v, "to")),
        table::cell(get(v, "interval")),
        table::cell(get(v, "look_times")),
        table::cell(get(v, "template")),
        table::cell(get(v, "plan")),
    );
    let runs = list(v, "runs");
    let several = runs.len() > 1;
    for r in runs {
        let name = configuration(get(r, "changed"), "as given");
        if !several || detail == Detail::Wide {
            if several {
                out.push_str(&format!("{name}:\n"));
            }
            out.push_str(&looks(list(r, "looks"), detail).render());
        }
        out.push_str(&format!("{name}: {}\n", outcome(get(r, "outcome"))));
    }
    if several {
        let mut rows = Table::with_detail(TALLY_HEADERS, detail);
        for r in runs {
            rows.push(tally_row(
                configuration(get(r, "changed"), "as given"),
                get(r, "outcomes"),
            ));
        }
        out.push_str(&rows.render());
    }
    if let Some(a) = get(v, "recorded") {
        out.push_str(&format!(
            "recorded as analysis {} ({}, origin backtest): verdict analyses show {}\n",
            table::cell(get(a, "id")),
            table::cell(get(a, "status")),
            table::cell(get(a, "id")),
        ));
    }
    out
}

fn looks(looks: &[Value], detail: Detail) -> Table {
    let mut t = Table::with_detail(
        [
            "at",
            "look",
            "canary req",
            "canary err",
            "canary p95 ms",
            "primary req",
            "primary err",
            "primary p95 ms",
            "verdict",
            "reason",
        ],
        detail,
    );
    for l in looks {
        let arm = |a: &str, k: &str| {
            let value = get(l, a).and_then(|x| get(x, k));
            match value.and_then(Value::as_f64) {
                Some(ms) if k == "p95_ms" => format!("{ms:.0}"),
                _ => table::cell(value),
            }
        };
        t.push(vec![
            table::cell(get(l, "at")),
            table::cell(get(l, "seq")),
            arm("canary", "requests"),
            arm("canary", "errors"),
            arm("canary", "p95_ms"),
            arm("primary", "requests"),
            arm("primary", "errors"),
            arm("primary", "p95_ms"),
            table::cell(get(l, "verdict")),
            table::cell(get(l, "reason")),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_table_has_a_row_per_configuration_and_lists_flips() {
        let v = json!({
            "since": "2026-11-01T00:00:00.000Z", "namespace": "test", "analyses": 3,
            "skipped": [],
            "recorded": {"rolled_back": 2, "promoted": 1, "undecided": 0, "median_decision_look": 3.0},
            "configurations": [{
                "changed": {"alpha": "1e-6"},
                "outcomes": {"rolled_back": 1, "promoted": 1, "undecided": 1, "median_decision_look": 4.5},
                "flips": [{"analysis_id": 7, "canary": "test/podinfo",
                           "before": {"ending": "rolled_back", "look": 3},
                           "after": {"ending": "undecided", "look": null}}]
            }]
        });
        let text = history(&v, Detail::Normal);
        assert!(text.contains("as recorded"), "{text}");
        assert!(text.contains("alpha=1e-6"), "{text}");
        assert!(
            text.contains("analysis 7 test/podinfo: rolled back at look 3 → undecided"),
            "{text}"
        );
        assert!(text.contains("4.5"), "{text}");
    }
}
