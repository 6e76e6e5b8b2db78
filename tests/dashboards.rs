//! The Grafana dashboards in `dashboards/`: importable JSON whose data sources are
//! template variables, every PromQL expression accepted by a real Prometheus, and every
//! SQL query run against the migrated Postgres schema holding data verdict itself wrote
//! (real hooks through the real server, so the evidence JSON paths are the real ones).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sqlx::{Column, Connection, Executor, PgConnection, Row, ValueRef};
use support::app::{spawn_app, AppOptions, TestApp};
use support::flagger::Payload;
use support::prometheus::TestPrometheus;
use verdict::domain::{now_millis, CanaryName, CanaryRef, Namespace};
use verdict::sli::simulator::{CanaryEffect, ServiceProfile, Workload};
use verdict::store::{Milestone, MilestoneKind};
use verdict::telemetry::{LookCounts, Metrics};

const PROMETHEUS_DS: &str = "${DS_PROMETHEUS}";
const POSTGRES_DS: &str = "${DS_POSTGRES}";
/// Grafana's PostgreSQL plugin id since 10.2 (`postgres` before).
const POSTGRES_PLUGIN: &str = "grafana-postgresql-datasource";
const NAMESPACE: &str = "shop";
const CANARY: &str = "checkout";

// ------------------------------------------------------------------ reading dashboards

fn dashboard_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected the canary and service dashboards in {}",
        dir.display()
    );
    files
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A query found in a dashboard, with where it was found.
#[derive(Debug, Clone)]
struct Query {
    file: String,
    place: String,
    text: String,
}

#[derive(Debug, Default)]
struct Queries {
    promql: Vec<Query>,
    sql: Vec<Query>,
}

/// Every panel, rows' children included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn uid(datasource: &Value) -> Option<&str> {
    datasource["uid"].as_str()
}

/// Collects the queries of one dashboard and checks, on the way, that each panel,
/// target, annotation and query variable reads a data-source variable.
fn queries(file: &str, dashboard: &Value) -> Queries {
    let mut out = Queries::default();
    let mut push = |ds: &str, place: String, text: Option<&str>| {
        let text = text
            .unwrap_or_else(|| panic!("{file}: {place} has no query"))
            .to_owned();
        let q = Query {
            file: file.to_owned(),
            place,
            text,
        };
        match ds {
            PROMETHEUS_DS => out.promql.push(q),
            POSTGRES_DS => out.sql.push(q),
            other => panic!("{file}: {} reads data source {other:?}", q.place),
        }
    };
    for panel in panels(dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?");
        let ds = uid(&panel["datasource"])
            .unwrap_or_else(|| panic!("{file}: panel {title:?} names no data source"));
        let targets = panel["targets"].as_array();
        assert!(
            targets.is_some_and(|t| !t.is_empty()),
            "{file}: panel {title:?} has no query"
        );
        for target in targets.into_iter().flatten() {
            let tds = uid(&target["datasource"]).unwrap_or(ds);
            assert_eq!(
                tds, ds,
                "{file}: a target of {title:?} reads another source"
            );
            let text = match tds {
                PROMETHEUS_DS => target["expr"].as_str(),
                _ => target["rawSql"].as_str(),
            };
            push(tds, format!("panel {title:?}"), text);
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = annotation["name"].as_str().unwrap_or("?");
        match uid(&annotation["datasource"]) {
            Some("-- Grafana --") => {}
            Some(ds) => push(
                ds,
                format!("annotation {name:?}"),
                annotation["target"]["rawSql"].as_str(),
            ),
            None => panic!("{file}: annotation {name:?} names no data source"),
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("?");
        let ds = uid(&var["datasource"])
            .unwrap_or_else(|| panic!("{file}: variable {name} names no data source"));
        match ds {
            // label_values(…) is Grafana's, not PromQL: check the metric exists below.
            PROMETHEUS_DS => {}
            _ => push(ds, format!("variable {name}"), var["query"].as_str()),
        }
    }
    out
}

// ------------------------------------------------------------------ structure

#[test]
fn dashboards_are_importable_and_read_datasource_variables() {
    let mut uids = std::collections::BTreeSet::new();
    for path in dashboard_files() {
        let file = path.display().to_string();
        let d = load(&path);
        assert!(
            d["schemaVersion"].as_i64().is_some_and(|v| v >= 38),
            "{file}: schemaVersion must be ≥ 38 (Grafana 10)"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(d["id"].is_null(), "{file}: an id would clash on import");

        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let datasource_var = |name: &str, plugin: &str| {
            vars.iter()
                .any(|v| v["name"] == name && v["type"] == "datasource" && v["query"] == plugin)
        };
        assert!(
            datasource_var("DS_PROMETHEUS", "prometheus"),
            "{file}: no Prometheus data-source variable"
        );
        assert!(
            datasource_var("DS_POSTGRES", POSTGRES_PLUGIN),
            "{file}: no PostgreSQL data-source variable of type {POSTGRES_PLUGIN}"
        );
        // Every reference to a data source names the plugin it is, and the dashboard
        // requires both plugins.
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
            match v {
                Value::Object(m) => {
                    if m.contains_key("uid") && m.contains_key("type") {
                        out.push(v);
                    }
                    m.values().for_each(|c| refs(c, out));
                }
                Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&d, &mut found);
        for r in found {
            match r["uid"].as_str() {
                Some(PROMETHEUS_DS) => assert_eq!(r["type"], "prometheus", "{file}: {r}"),
                Some(POSTGRES_DS) => assert_eq!(r["type"], POSTGRES_PLUGIN, "{file}: {r}"),
                _ => {}
            }
        }
        let required: Vec<&str> = d["__requires"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["type"] == "datasource")
            .filter_map(|r| r["id"].as_str())
            .collect();
        for plugin in ["prometheus", POSTGRES_PLUGIN] {
            assert!(
                required.contains(&plugin),
                "{file}: __requires lacks {plugin}"
            );
        }

        let mut ids = std::collections::BTreeSet::new();
        for panel in panels(&d) {
            let id = panel["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            let pos = &panel["gridPos"];
            assert!(
                ["h", "w", "x", "y"].iter().all(|k| pos[k].is_i64())
                    && pos["x"].as_i64().unwrap_or(99) + pos["w"].as_i64().unwrap_or(99) <= 24,
                "{file}: panel {id} has a bad gridPos {pos}"
            );
        }
        let q = queries(&file, &d);
        assert!(!q.promql.is_empty(), "{file}: no Prometheus query");
        assert!(!q.sql.is_empty(), "{file}: no PostgreSQL query");
    }
}

#[test]
fn the_canary_dashboard_has_namespace_and_canary_variables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/canary-analysis.json");
    let d = load(&path);
    let names: Vec<&str> = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for var in ["namespace", "canary"] {
        assert!(names.contains(&var), "no ${var} variable in {names:?}");
    }
    let q = queries("canary-analysis.json", &d);
    for text in q.promql.iter().map(|q| &q.text) {
        assert!(
            text.contains("$namespace") && text.contains("$canary"),
            "a canary query ignores the variables: {text}"
        );
    }
    // The evidence comes from the looks' JSON through Postgres' jsonb operators.
    assert!(q.sql.iter().any(|q| q.text.contains("evidence::jsonb")));
}

/// Every metric the dashboards read is one verdict exports: the canary dashboard reads no
/// provider's metrics (istio_…, response_total, envoy_…), so it shows every mesh alike.
#[test]
fn dashboards_name_metrics_that_exist() {
    let metrics = Metrics::new();
    metrics.look_recorded(
        "shop",
        "checkout",
        LookCounts {
            arm: "canary",
            requests: 100,
            errors: 2,
            slower: &[(0.1, 20), (0.25, 5)],
        },
    );
    metrics.set_sli_up(true);
    metrics.hook_call("rollout", "pass", Duration::from_millis(3));
    metrics.prometheus_query("requests", Duration::from_millis(3), false);
    metrics.store_error("record_look");
    metrics.set_outbox_backlog(2);
    metrics.annotation_delivery("delivered");
    let exported = metrics.encode();
    let name = regex::Regex::new(r"\b(istio|verdict)_[a-z_]+").expect("regex");
    // Any metric a PromQL expression selects: a name followed by its label matchers.
    let selected = regex::Regex::new(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{").expect("regex");
    let mut seen = 0;
    for path in dashboard_files() {
        let file = path.display().to_string();
        let d = load(&path);
        let mut texts: Vec<String> = queries(&file, &d)
            .promql
            .into_iter()
            .map(|q| q.text)
            .collect();
        // Prometheus query variables (label_values) name metrics too.
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(def) = var["definition"].as_str() {
                texts.push(def.to_owned());
            }
        }
        for text in texts {
            for m in selected.captures_iter(&text) {
                let metric = &m[1];
                assert!(
                    metric.starts_with("verdict_"),
                    "{file}: reads {metric}, a provider's metric: the panels must work for every mesh"
                );
            }
            for m in name.find_iter(&text) {
                let metric = m.as_str();
                seen += 1;
                if metric.starts_with("istio_") {
                    panic!("{file}: {metric} is Istio's: the panels must work for every mesh");
                } else {
                    let exposed = exported
                        .lines()
                        .any(|l| l.split(['{', ' ']).next() == Some(metric));
                    assert!(exposed, "{file}: verdict exports no {metric}:\n{exported}");
                }
            }
        }
    }
    assert!(seen > 10, "too few metric names found ({seen})");
}

// ------------------------------------------------------------------ PromQL

/// Fills Grafana's variables with sample values; panics on one it does not know.
fn fill_promql(q: &Query) -> String {
    let text = q
        .text
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "30s")
        .replace("$__range", "1h")
        .replace("$namespace", NAMESPACE)
        .replace("$canary", CANARY)
        .replace("$job", "verdict");
    assert!(
        !text.contains('$'),
        "{}: {}: unknown variable left in {text}",
        q.file,
        q.place
    );
    text
}

#[tokio::test]
async fn every_promql_expression_is_accepted_by_prometheus() {
    let prom = TestPrometheus::start(&[]).await;
    let http = reqwest::Client::new();
    let mut checked = 0;
    for path in dashboard_files() {
        let file = path.display().to_string();
        for q in queries(&file, &load(&path)).promql {
            let expr = fill_promql(&q);
            let response: Value = http
                .post(format!("{}/api/v1/query", prom.url()))
                .form(&[("query", expr.as_str())])
                .send()
                .await
                .expect("query Prometheus")
                .json()
                .await
                .expect("Prometheus JSON");
            assert_eq!(
                response["status"], "success",
                "{}: {}: Prometheus refused\n{expr}\n{response}",
                q.file, q.place
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} expressions checked");
}

// ------------------------------------------------------------------ SQL

/// Replaces `$__timeFilter(expr)` (with balanced parentheses inside) by a BETWEEN on the
/// last day, as Grafana would.
fn replace_time_filter(sql: &str) -> String {
    const MACRO: &str = "$__timeFilter(";
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find(MACRO) {
        out.push_str(&rest[..start]);
        let after = &rest[start + MACRO.len()..];
        let mut depth = 1;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unbalanced $__timeFilter in {sql}"));
        out.push_str(&format!(
            "({}) BETWEEN now() - interval '1 day' AND now() + interval '1 day'",
            &after[..end]
        ));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn fill_sql(q: &Query) -> String {
    let now_s = now_millis() / 1000;
    let text = replace_time_filter(&q.text)
        .replace("$__unixEpochFrom()", &(now_s - 86_400).to_string())
        .replace("$__unixEpochTo()", &(now_s + 86_400).to_string())
        .replace("$namespace", NAMESPACE)
        .replace("$canary", CANARY);
    assert!(
        !text.contains('$'),
        "{}: {}: unknown variable or macro left in {text}",
        q.file,
        q.place
    );
    text
}

/// Writes what the dashboards read, through verdict itself: an analysis opened by
/// pre-rollout, looks taken by rollout calls (with the real evidence JSON), their
/// decisions; plus an outbox row and a load run.
async fn seed() -> TestApp {
    let mut app = spawn_app(AppOptions {
        min_look_gap: Duration::from_millis(100),
        ..AppOptions::simulated(3)
    })
    .await;
    let ns = Namespace::parse(NAMESPACE).expect("namespace");
    let name = CanaryName::parse(CANARY).expect("name");
    let sli = app.simulator();
    sli.add_service(
        &ns,
        &name,
        ServiceProfile {
            workload: Workload {
                total_rps: 200.0,
                ..Workload::reference()
            },
            // A mild regression: evidence builds over the looks, and a first look
            // cannot end the analysis before the second is taken.
            effect: CanaryEffect {
                error_ratio: 1.3,
                ..CanaryEffect::none()
            },
        },
    )
    .expect("service");
    let payload = Payload {
        name: CANARY.into(),
        namespace: NAMESPACE.into(),
        phase: "Progressing".into(),
        checksum: "5eed0001".into(),
        metadata: Default::default(),
    };
    let reply = app.call("pre-rollout", &payload).await;
    assert!(reply.passed(), "{reply:?}");
    sli.set_weight(&ns, &name, 0.2).expect("weight");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = app.call("rollout", &payload).await;
        assert!(matches!(reply.status, 200 | 422), "{reply:?}");
    }
    let reply = app.call("rollback", &payload).await;
    assert!(matches!(reply.status, 200 | 409), "{reply:?}");
    let post = Payload {
        phase: "Succeeded".into(),
        ..payload.clone()
    };
    assert!(app.call("post-rollout", &post).await.passed());
    let analysis = app.analysis(&payload).await.expect("the analysis");
    assert!(app.looks(analysis.id).await.len() >= 2, "looks were taken");
    app.store
        .enqueue_milestone(&Milestone {
            kind: MilestoneKind::GateHeld,
            canary: CanaryRef {
                namespace: ns,
                name,
            },
            analysis: None,
            actor: Some("alice".into()),
            detail: "freeze".into(),
            time: now_millis(),
            since: None,
        })
        .await
        .expect("outbox row");
    app.stop_server().await;

    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    let now = now_millis();
    sqlx::query(
        "INSERT INTO load_run (namespace, name, spec_checksum, spec, status, started_at, ended_at, requests) \
         VALUES ($1, $2, 'spec1', '{}', 'finished', $3, $4, 6000)",
    )
    .bind(NAMESPACE)
    .bind(CANARY)
    .bind(now - 60_000)
    .bind(now)
    .execute(&mut conn)
    .await
    .expect("load run");
    let _ = conn.close().await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_query_runs_against_the_migrated_schema() {
    let app = seed().await;
    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    let mut checked = 0;
    for path in dashboard_files() {
        let file = path.display().to_string();
        for q in queries(&file, &load(&path)).sql {
            let sql = fill_sql(&q);
            // Prepared, so Postgres plans it against the schema (columns, types, casts),
            // then run on the seeded rows (the jsonb casts see real evidence).
            let rows = conn.fetch_all(sql.as_str()).await.unwrap_or_else(|e| {
                panic!("{}: {}: Postgres refused\n{sql}\n{e}", q.file, q.place)
            });
            assert!(
                !rows.is_empty(),
                "{}: {}: no row from data verdict wrote\n{sql}",
                q.file,
                q.place
            );
            // Each column has a value somewhere: a wrong JSON path would be all NULL.
            let columns = rows[0].columns();
            for (i, column) in columns.iter().enumerate() {
                // An upper ratio bound is NULL while the data cannot bound it yet.
                let nullable_by_design =
                    matches!(column.name(), "error ratio upper" | "latency ratio upper");
                let some_value = rows
                    .iter()
                    .any(|r| r.try_get_raw(i).map(|v| !v.is_null()).unwrap_or(false));
                assert!(
                    some_value || nullable_by_design,
                    "{}: {}: column {:?} is NULL in every row\n{sql}",
                    q.file,
                    q.place,
                    column.name()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} SQL queries checked");
    let _ = conn.close().await;
    app.shutdown().await;
}
