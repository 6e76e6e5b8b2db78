//! PrometheusSli against a real Prometheus scraping the Istio-style test exporter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::exporter::{Profile, TestExporter};
use support::prometheus::TestPrometheus;
use verdict::domain::{now_millis, CanaryName, Namespace};
use verdict::sli::prometheus::{PrometheusConfig, PrometheusSli};
use verdict::sli::templates::{Arm, RenderInput, TemplateSet, TemplateVariables};
use verdict::sli::{ArmCounts, ArmPair, Increments, SliError, SliSource, SliTarget};

const NS: &str = "test";

fn target(name: &str, template: &str) -> SliTarget {
    SliTarget {
        namespace: Namespace::parse(NS).expect("namespace"),
        target: CanaryName::parse(name).expect("canary name"),
        template: template.into(),
        variables: TemplateVariables::default(),
    }
}

fn sli(url: &str, timeout: Duration, templates: TemplateSet) -> PrometheusSli {
    PrometheusSli::new(
        PrometheusConfig {
            url: url.into(),
            timeout,
            auth: None,
        },
        templates,
    )
    .expect("Prometheus client")
}

fn assert_near(what: &str, actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance * expected,
        "{what}: got {actual}, expected {expected} ± {:.0} %",
        tolerance * 100.0
    );
}

fn bucket(counts: &ArmCounts, le: f64) -> f64 {
    counts
        .buckets
        .iter()
        .find(|b| b.le == le)
        .unwrap_or_else(|| panic!("no bucket le={le} in {:?}", counts.buckets))
        .count
}

/// Both arms' counts between two readings of the source's counters, at `start` and `end`.
async fn window(
    source: &PrometheusSli,
    target: &SliTarget,
    start: i64,
    end: i64,
) -> Result<ArmPair, SliError> {
    let before = source.counters(target, start).await?;
    let after = source.counters(target, end).await?;
    match after.since(&before) {
        Increments::Counts(pair) => Ok(pair),
        stale => Err(SliError::Query(format!(
            "no new sample between {start} and {end}: {stale:?}"
        ))),
    }
}

fn assert_whole(what: &str, counts: &ArmCounts) {
    let all = [counts.requests, counts.errors]
        .into_iter()
        .chain(counts.buckets.iter().map(|b| b.count));
    for value in all {
        assert_eq!(value.fract(), 0.0, "{what}: {counts:?}");
    }
}

/// Waits until Prometheus holds `seconds` of history for the exporter's series.
async fn wait_for_history(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[tokio::test]
async fn window_counts_errors_and_buckets_match_the_exporter() {
    let exporter = TestExporter::start().await;
    exporter.set_profile(
        NS,
        "podinfo",
        Profile::mix(40.0, 0.1, &[(20.0, 0.8), (300.0, 0.2)]),
    );
    exporter.set_profile(NS, "podinfo-primary", Profile::fixed(80.0, 0.01, 20.0));
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    wait_for_history(12).await;

    let calls: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let source = sli(
        &prometheus.url(),
        Duration::from_secs(5),
        TemplateSet::builtin().unwrap(),
    )
    .with_observer({
        let calls = calls.clone();
        Arc::new(move |kind: &str, _elapsed: Duration, ok: bool| {
            calls.lock().unwrap().push((kind.to_owned(), ok));
        })
    });

    let end = now_millis();
    let window_s = 8.0;
    let pair = window(&source, &target("podinfo", "istio"), end - 8_000, end)
        .await
        .unwrap();

    // Differences of the scraped counters: whole numbers, the requests between the two
    // scrapes the readings found (so within a scrape interval of the 8 s).
    assert_whole("canary", &pair.canary);
    assert_whole("primary", &pair.primary);
    assert_near(
        "canary requests",
        pair.canary.requests,
        40.0 * window_s,
        0.15,
    );
    assert_near(
        "primary requests",
        pair.primary.requests,
        80.0 * window_s,
        0.15,
    );
    // Errors and buckets come from the same scrapes as requests, so ratios are tight.
    assert_near(
        "canary error share",
        pair.canary.errors / pair.canary.requests,
        0.1,
        0.05,
    );
    assert_near(
        "primary error share",
        pair.primary.errors / pair.primary.requests,
        0.01,
        0.25,
    );

    // Istio's boundaries in ms, converted to seconds, sorted, ending with +Inf.
    assert_eq!(pair.canary.buckets.len(), 13);
    assert!(pair.canary.buckets.windows(2).all(|w| w[0].le < w[1].le));
    assert_eq!(pair.canary.buckets.last().unwrap().le, f64::INFINITY);
    assert_eq!(bucket(&pair.canary, 0.01), 0.0);
    let total = bucket(&pair.canary, f64::INFINITY);
    assert_eq!(total, pair.canary.requests, "+Inf is the requests, exactly");
    assert_near(
        "canary share at 25 ms",
        bucket(&pair.canary, 0.025) / total,
        0.8,
        0.03,
    );
    assert_eq!(bucket(&pair.canary, 0.25), bucket(&pair.canary, 0.025));
    assert_eq!(bucket(&pair.canary, 0.5), total);
    assert_eq!(
        bucket(&pair.primary, 0.025),
        bucket(&pair.primary, f64::INFINITY)
    );

    // Two readings, one query each (both arms, all kinds), reported to the observer.
    assert_eq!(
        calls.lock().unwrap().clone(),
        vec![("reading".to_owned(), true), ("reading".to_owned(), true)]
    );

    // The primary's history: the same template and conversion, one entry per 2 s
    // interval of the 8 s look-back (one range query).
    let history = source
        .primary_history(
            &target("podinfo", "istio"),
            end,
            Duration::from_secs(8),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    for interval in &history {
        assert_whole("primary history", interval);
        assert_near("primary requests per 2 s", interval.requests, 160.0, 0.3);
        let les: Vec<f64> = interval.buckets.iter().map(|b| b.le).collect();
        let want: Vec<f64> = pair.primary.buckets.iter().map(|b| b.le).collect();
        assert_eq!(les, want);
    }
    let total: f64 = history.iter().map(|h| h.requests).sum();
    assert_near("primary requests over the history", total, 640.0, 0.2);
    assert_eq!(
        calls.lock().unwrap()[2..].to_vec(),
        vec![("history".to_owned(), true)]
    );
    assert!(source
        .primary_history(
            &target("podinfo", "istio"),
            end,
            Duration::from_secs(8),
            Duration::from_millis(500),
        )
        .await
        .is_err());
    source.ready().await.unwrap();
}

fn custom_templates(files: &[(&str, &str)]) -> (tempfile::TempDir, TemplateSet) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, yaml) in files {
        std::fs::write(dir.path().join(format!("{name}.yaml")), yaml).expect("write a template");
    }
    let set = TemplateSet::load_dir(dir.path()).expect("load the templates");
    (dir, set)
}

const INJECTABLE: &str = r#"
name: injectable
description: istio with operator-chosen exclusions, to test escaping
assumes: the test exporter's istio series
latency_unit: milliseconds
requests: >-
  istio_requests_total{reporter="destination",
  destination_workload_namespace="{{ namespace }}", destination_workload="{{ workload }}",
  response_code!="{{ variables.skip }}"}
errors: >-
  istio_requests_total{reporter="destination",
  destination_workload_namespace="{{ namespace }}", destination_workload="{{ workload }}",
  response_code=~"{{ variables.codes }}"}
latency_buckets: >-
  istio_request_duration_milliseconds_bucket{reporter="destination",
  destination_workload_namespace="{{ namespace }}",
  destination_workload="{{ workload }}"}
"#;

const BROKEN_FUNCTION: &str = r#"
name: broken
description: a selector whose regular expression Prometheus cannot compile
assumes: nothing
latency_unit: seconds
requests: istio_requests_total{response_code=~"5(("}
errors: istio_requests_total
latency_buckets: istio_request_duration_milliseconds_bucket
"#;

#[tokio::test]
async fn missing_series_payloads_and_every_shipped_template() {
    let exporter = TestExporter::start().await;
    exporter.set_profile(NS, "podinfo", Profile::fixed(20.0, 0.0, 5.0));
    exporter.set_profile(NS, "podinfo-primary", Profile::fixed(20.0, 0.05, 5.0));
    // A canary that exists but never received traffic: no series, like a real sidecar.
    exporter.set_profile(NS, "lonely", Profile::idle());
    exporter.set_profile(NS, "lonely-primary", Profile::fixed(20.0, 0.0, 5.0));
    let prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    wait_for_history(5).await;

    let (_dir, templates) =
        custom_templates(&[("injectable", INJECTABLE), ("broken", BROKEN_FUNCTION)]);
    let source = sli(&prometheus.url(), Duration::from_secs(5), templates.clone());
    let end = now_millis();
    let start = end - 4_000;

    // Canary without series: zero traffic, not an error (the judge's minimum request
    // count then keeps it from passing).
    let lonely = window(&source, &target("lonely", "istio"), start, end)
        .await
        .unwrap();
    assert_eq!(lonely.canary.requests, 0.0);
    assert_eq!(lonely.canary.errors, 0.0);
    assert!(lonely.canary.buckets.is_empty());
    assert!(lonely.primary.requests > 0.0);

    // Primary without series: NoData, naming the arm.
    let ghost = window(&source, &target("ghost", "istio"), start, end)
        .await
        .unwrap_err();
    match &ghost {
        SliError::NoData { arm, detail } => {
            assert_eq!(*arm, "primary");
            assert!(detail.contains("ghost-primary"), "{detail}");
        }
        other => panic!("expected NoData, got {other:?}"),
    }

    // PromQL in a variable value stays inside its label value.
    let baseline = window(&source, &target("podinfo", "istio"), start, end)
        .await
        .unwrap();
    let mut payload = target("podinfo", "injectable");
    payload
        .variables
        .custom
        .insert("skip".into(), "x\"} or vector(1) #".into());
    payload.variables.custom.insert("codes".into(), ".*".into());
    let escaped = window(&source, &payload, start, end).await.unwrap();
    // response_code != <payload> excludes nothing: exactly the istio counts, not vector(1).
    assert_eq!(escaped.canary.requests, baseline.canary.requests);
    assert_eq!(escaped.primary.requests, baseline.primary.requests);
    // ".*" is matched literally, so it selects no errors although the primary has some.
    assert!(baseline.primary.errors > 0.0);
    assert_eq!(escaped.primary.errors, 0.0);

    // A query Prometheus refuses is a Query error with Prometheus' reason.
    match window(&source, &target("podinfo", "broken"), start, end)
        .await
        .unwrap_err()
    {
        SliError::Query(message) => assert!(message.contains("missing closing"), "{message}"),
        other => panic!("expected Query, got {other:?}"),
    }
    assert!(matches!(
        source.counters(&target("podinfo", "nope"), end).await,
        Err(SliError::UnknownTemplate(_))
    ));

    // Every shipped template renders into queries the real Prometheus accepts.
    let client = prometheus_http_query::Client::try_from(prometheus.url()).unwrap();
    let builtin = TemplateSet::builtin().unwrap();
    let ns = Namespace::parse(NS).unwrap();
    let name = CanaryName::parse("podinfo").unwrap();
    // The argo-* templates read the pod-template hashes /argo/v1/measure sets.
    let vars = TemplateVariables {
        custom: [
            (verdict::argo::CANARY_HASH_VARIABLE, "6b8f9c7d4"),
            (verdict::argo::STABLE_HASH_VARIABLE, "5c9d7f8b6"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..TemplateVariables::default()
    };
    let mut checked = 0;
    for template in builtin.iter() {
        for arm in [Arm::Canary, Arm::Primary] {
            let queries = template
                .render(
                    arm,
                    &RenderInput {
                        namespace: &ns,
                        target: &name,
                        variables: &vars,
                    },
                )
                .unwrap();
            for query in [queries.requests, queries.errors, queries.latency_buckets] {
                let result = client.query(&query).get().await;
                assert!(
                    result.is_ok(),
                    "{} ({arm}) rejected by Prometheus: {query}\n{result:?}",
                    template.name()
                );
                checked += 1;
            }
        }
        // And through the source: only the istio template matches the exporter's series.
        let with_vars = SliTarget {
            variables: vars.clone(),
            ..target("podinfo", template.name())
        };
        let outcome = window(&source, &with_vars, start, end).await;
        if template.name() == "istio" {
            assert!(outcome.is_ok(), "{outcome:?}");
        } else {
            assert!(
                matches!(outcome, Err(SliError::NoData { arm: "primary", .. })),
                "{}: {outcome:?}",
                template.name()
            );
        }
    }
    assert_eq!(checked, builtin.names().count() * 2 * 3);
}

#[tokio::test]
async fn stopped_prometheus_is_unreachable_and_recovers() {
    let exporter = TestExporter::start().await;
    exporter.set_profile(NS, "podinfo", Profile::fixed(20.0, 0.0, 5.0));
    exporter.set_profile(NS, "podinfo-primary", Profile::fixed(20.0, 0.0, 5.0));
    let mut prometheus = TestPrometheus::start(&[exporter.addr()]).await;
    wait_for_history(3).await;
    let source = sli(
        &prometheus.url(),
        Duration::from_secs(5),
        TemplateSet::builtin().unwrap(),
    );
    let t = target("podinfo", "istio");
    let end = now_millis();
    window(&source, &t, end - 2_000, end).await.unwrap();

    prometheus.stop().await;
    let end = now_millis();
    let err = source.counters(&t, end).await.unwrap_err();
    assert!(matches!(err, SliError::Unreachable(_)), "{err:?}");
    assert!(matches!(
        source.ready().await,
        Err(SliError::Unreachable(_))
    ));

    // Back up: the same source answers again once Prometheus has two scrapes in the
    // window (a kill loses the samples still in the write-ahead log's buffer, so wait
    // for new ones instead of assuming old ones survived).
    prometheus.restart().await;
    source.ready().await.unwrap();
    let mut last = None;
    for _ in 0..40 {
        let end = now_millis();
        match window(&source, &t, end - 3_000, end).await {
            Ok(pair) if pair.primary.requests > 0.0 && pair.canary.requests > 0.0 => {
                last = None;
                break;
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(last.is_none(), "no data after restart: {last:?}");
}

#[tokio::test]
async fn silent_server_is_a_timeout_and_closed_port_is_unreachable() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let source = sli(
        &format!("http://{addr}"),
        timeout,
        TemplateSet::builtin().unwrap(),
    );
    let end = now_millis();
    let err = source
        .counters(&target("podinfo", "istio"), end)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SliError::Timeout(t) if t == timeout),
        "{err:?}"
    );
    assert!(matches!(source.ready().await, Err(SliError::Timeout(_))));
    holder.abort();

    // Nothing listens on a port we just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let source = sli(
        &format!("http://{closed}"),
        Duration::from_secs(2),
        TemplateSet::builtin().unwrap(),
    );
    let err = source
        .counters(&target("podinfo", "istio"), end)
        .await
        .unwrap_err();
    assert!(matches!(err, SliError::Unreachable(_)), "{err:?}");
}
