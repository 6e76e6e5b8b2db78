//! A Flagger user's first day, as README.md and docs/deployment.md describe it: the
//! binary starts in a pod whose namespace has a Service named `verdict`; Canaries moved
//! over from flagger-loadtester keep their load-test commands.

use std::collections::BTreeMap;
use std::process::Output;

use base64::Engine;
use support::app::{next_look, payload, spawn_app, warm_up, AppOptions, TestApp, FAST_MS};
use support::exporter::Profile;
use support::flagger::Payload;
use verdict::auth::{JwtAlgorithm, JwtSettings};
use verdict::domain::Namespace;
use verdict::loadgen::{parse_hey_cmd, LoadPolicy};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `hey` commands of Flagger's tutorials (fluxcd/flagger docs/gitbook/tutorials/*.md)
/// whose target is a Service of the canary's namespace, `test` there.
const FLAGGER_OWN_NAMESPACE: &[&str] = &[
    // istio-progressive-delivery.md, kubernetes-blue-green.md
    "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/",
    // kuma-progressive-delivery.md, linkerd-progressive-delivery.md
    "hey -z 2m -q 10 -c 2 http://podinfo-canary.test:9898/",
    // istio-progressive-delivery.md (A/B section)
    "hey -z 1m -q 10 -c 2 http://podinfo.test:9898/",
    // istio-ab-testing.md
    "hey -z 1m -q 10 -c 2 -H 'Cookie: type=insider' http://podinfo.test:9898/",
    // prometheus-operator.md
    "hey -z 1m -q 10 -c 2 http://podinfo-canary.test/",
    // keda-scaledobject.md
    "hey -z 2m -q 20 -c 2 http://podinfo-svc-canary.test/",
    // knative-progressive-delivery.md
    "hey -z 1m -q 5 -c 2 http://podinfo.test",
];

/// Flagger's tutorial commands that aim at a gateway in another namespace or outside the
/// cluster: the default allow-list refuses them (load.allow_hosts names them).
const FLAGGER_ELSEWHERE: &[&str] = &[
    // contour-progressive-delivery.md
    "hey -z 1m -q 10 -c 2 -host app.example.com http://envoy.projectcontour",
    // gloo-progressive-delivery.md
    "hey -z 2m -q 5 -c 2 -host app.example.com http://gateway-proxy.gloo-system",
    // traefik-progressive-delivery.md
    "hey -z 10m -q 10 -c 2 -host app.example.com http://traefik.traefik",
    // gatewayapi-progressive-delivery.md
    "hey -z 2m -q 10 -c 2 -host www.example.com http://gateway-istio.istio-ingress/",
    // nginx-progressive-delivery.md
    "hey -z 1m -q 10 -c 2 http://app.example.com/",
];

/// Runs the `verdict` binary with exactly these environment variables.
fn verdict(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run verdict")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn variables_kubernetes_injects_do_not_stop_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("verdict.db").display());
    let base: Vec<(&str, &str)> = vec![
        ("VERDICT_DATABASE_URL", &database),
        ("VERDICT_LOG_FORMAT", "pretty"),
    ];
    // What Kubernetes puts into every pod of a namespace with a Service `verdict`
    // exposing port 80 named http (service links are on unless a pod turns them off).
    let injected = [
        ("VERDICT_SERVICE_HOST", "10.96.0.12"),
        ("VERDICT_SERVICE_PORT", "80"),
        ("VERDICT_SERVICE_PORT_HTTP", "80"),
        ("VERDICT_PORT", "tcp://10.96.0.12:80"),
        ("VERDICT_PORT_80_TCP", "tcp://10.96.0.12:80"),
        ("VERDICT_PORT_80_TCP_PROTO", "tcp"),
        ("VERDICT_PORT_80_TCP_PORT", "80"),
        ("VERDICT_PORT_80_TCP_ADDR", "10.96.0.12"),
    ];
    let mut env = base.clone();
    env.extend(injected);
    let out = verdict(&["migrate"], &env);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "verdict migrate with Kubernetes' service variables: {}{stderr}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("migrations applied"));
    // One warning names every variable it left out.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ignoring environment variables"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for (name, _) in injected {
        assert!(warnings[0].contains(name), "{name} not named: {stderr}");
    }
    // The command line's own variables are no configuration keys, and no surprise.
    let mut env = base.clone();
    env.push(("VERDICT_SERVER", "http://127.0.0.1:1"));
    let out = verdict(&["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("ignoring"),
        "{}",
        text(&out.stderr)
    );

    // A known key with a bad value still stops start-up, naming it …
    let mut env = base.clone();
    env.push(("VERDICT_PROMETHEUS__TIMEOUT", "30s"));
    let out = verdict(&["migrate"], &env);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("prometheus.timeout"),
        "{}",
        text(&out.stderr)
    );
    // … and so does an unknown key in the configuration file, which is ours to fix.
    let file = dir.path().join("verdict.toml");
    std::fs::write(&file, "listne = \"0.0.0.0:8080\"\n").expect("write");
    let out = verdict(&["migrate", "--config", &file.display().to_string()], &base);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("listne"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn flaggers_own_load_test_commands_pass_the_default_allow_list() {
    let policy = LoadPolicy::default();
    let test = Namespace::parse("test").expect("namespace");
    for cmd in FLAGGER_OWN_NAMESPACE {
        let spec = parse_hey_cmd(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let checked = policy
            .check(&test, spec)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        // Sent inside the canary's namespace whatever namespace verdict runs in.
        assert!(
            checked.url.contains(".test.svc"),
            "{cmd}: sent to {}",
            checked.url
        );
    }
    for cmd in FLAGGER_ELSEWHERE {
        let spec = parse_hey_cmd(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let err = policy.check(&test, spec).expect_err(cmd).to_string();
        assert!(
            err.contains("not in the load-test allow-list"),
            "{cmd}: {err}"
        );
    }
    // The same commands from a Canary in another namespace aim at someone else's Service.
    let prod = Namespace::parse("prod").expect("namespace");
    for cmd in FLAGGER_OWN_NAMESPACE {
        let spec = parse_hey_cmd(cmd).expect("parses");
        let err = policy.check(&prod, spec).expect_err(cmd).to_string();
        assert!(
            err.contains("not in the load-test allow-list"),
            "{cmd}: {err}"
        );
    }
}

#[tokio::test]
async fn the_load_test_hook_takes_flaggers_commands_and_refuses_other_namespaces() {
    // A rate cap below every command's rate: the hook answers 409 for a command that
    // passed the allow-list, so no load is ever sent (the names do not resolve here).
    let load = LoadPolicy {
        max_total_rps: 1.0,
        ..LoadPolicy::default()
    };
    let app = spawn_app(AppOptions {
        load,
        ..AppOptions::default()
    })
    .await;
    for cmd in FLAGGER_OWN_NAMESPACE {
        let r = app
            .call(
                "load-test",
                &payload("podinfo", "85d557f47b", &[("cmd", cmd)]),
            )
            .await;
        assert_eq!(r.status, 409, "{cmd}: «{}»", r.body);
        assert!(r.body.contains("would exceed"), "{cmd}: «{}»", r.body);
    }
    for cmd in FLAGGER_ELSEWHERE.iter().chain(&[
        "hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/",
        "hey -z 1m -q 10 -c 2 http://verdict.verdict-system/",
    ]) {
        let r = app
            .call(
                "load-test",
                &payload("podinfo", "85d557f47b", &[("cmd", cmd)]),
            )
            .await;
        assert_eq!(r.status, 400, "{cmd}: «{}»", r.body);
        assert!(
            r.body.contains("not in the load-test allow-list") && r.body.contains("*.test.svc"),
            "{cmd}: «{}»",
            r.body
        );
    }
    app.shutdown().await;
}

/// The `envsubst … | kubectl apply -f -` line of README's "Deploying with Helm", for
/// `example` and without kubectl: what the user pipes into kubectl.
fn readme_apply_command(example: &str) -> String {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).expect("README");
    let section = readme
        .split("## Deploying with Helm")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Deploying with Helm section");
    let line = section
        .lines()
        .find(|l| l.starts_with("envsubst ") && l.contains("webhooks/canary.yaml"))
        .expect("README applies webhooks/canary.yaml with envsubst");
    line.replace("webhooks/canary.yaml", &format!("webhooks/{example}.yaml"))
        .replace("| kubectl apply -f -", "")
}

/// Every webhook of a Canary as Flagger would call it: (path under /flagger/, payload).
fn flagger_calls(canary: &serde_yaml_ng::Value) -> Vec<(String, Payload)> {
    let name = canary["metadata"]["name"].as_str().expect("name");
    let namespace = canary["metadata"]["namespace"].as_str().expect("namespace");
    let hooks = canary["spec"]["analysis"]["webhooks"]
        .as_sequence()
        .expect("webhooks");
    hooks
        .iter()
        .map(|hook| {
            let url = hook["url"].as_str().expect("url");
            let path = url.split_once("/flagger/").expect("a verdict hook").1;
            let mut metadata: BTreeMap<String, String> = hook["metadata"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.as_str().expect("key").to_owned(),
                        v.as_str().expect("string value").to_owned(),
                    )
                })
                .collect();
            if hook["type"] == "event" {
                // Flagger's event payload: its own keys, then the hook's metadata.
                for (k, v) in [
                    ("eventMessage", "New revision detected"),
                    ("eventType", "Normal"),
                    ("timestamp", "1700000000000"),
                ] {
                    metadata.insert(k.into(), v.into());
                }
            }
            let payload = Payload {
                name: name.into(),
                namespace: namespace.into(),
                phase: "Progressing".into(),
                checksum: "85d557f47b".into(),
                metadata,
            };
            (path.to_owned(), payload)
        })
        .collect()
}

async fn answers(app: &TestApp, canary: &serde_yaml_ng::Value) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for (path, payload) in flagger_calls(canary) {
        let r = app.call(&path, &payload).await;
        out.push((path, r.status, r.body));
    }
    out
}

#[tokio::test]
async fn the_examples_applied_as_the_readme_says_pass_the_charts_token_check() {
    const TOKEN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    // Configured as the README's Helm install configures it: a webhook token. The load
    // test's rate cap keeps it from sending load (409 after the token and allow-list).
    let app = spawn_app(AppOptions {
        webhook_token: Some(TOKEN.into()),
        load: LoadPolicy {
            max_total_rps: 1.0,
            ..LoadPolicy::default()
        },
        ..AppOptions::default()
    })
    .await;
    for example in ["canary", "blue-green", "ab-testing"] {
        let command = readme_apply_command(example);
        let out = std::process::Command::new("bash")
            .args(["-c", &command])
            .current_dir(ROOT)
            .env("VERDICT_WEBHOOK_TOKEN", TOKEN)
            .output()
            .expect("run the README's command");
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        let applied: serde_yaml_ng::Value =
            serde_yaml_ng::from_slice(&out.stdout).expect("the command prints the Canary");
        let calls = answers(&app, &applied).await;
        assert!(calls.len() >= 7, "{example}: {calls:?}");
        for (path, status, body) in &calls {
            assert!(
                *status != 403 && !body.contains("token"),
                "{example}: {path} refused: {status} «{body}»"
            );
        }
        // Applied as is, without the token filled in, every hook is refused.
        let raw: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(format!("{ROOT}/webhooks/{example}.yaml")).expect("example"),
        )
        .expect("YAML");
        for (path, status, body) in answers(&app, &raw).await {
            assert_eq!(status, 403, "{example}: {path} without the token: «{body}»");
        }
    }
    // Basic credentials in the URL work too, whatever the scheme's case (RFC 7617).
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("flagger:{TOKEN}"));
    let response = app
        .http
        .post(format!("{}/flagger/confirm-rollout", app.base_url()))
        .header("authorization", format!("basic {basic}"))
        .json(&payload("podinfo", "85d557f47b", &[]))
        .send()
        .await
        .expect("server reachable");
    assert_eq!(response.status().as_u16(), 200);
    app.shutdown().await;
}

/// A local identity provider's key set: the test RSA key under kid `idp-2026`.
async fn serve_jwks() -> String {
    let pem = std::fs::read(format!("{ROOT}/tests/fixtures/jwt/rsa-private.pem")).expect("key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA key");
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256)
        .expect("JWK");
    jwk.common.key_id = Some("idp-2026".into());
    let set = serde_json::json!({ "keys": [jwk] });
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/jwks.json")
}

fn idp_token(kid: &str, role: &str) -> String {
    let pem = std::fs::read(format!("{ROOT}/tests/fixtures/jwt/rsa-private.pem")).expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &support::api::claims(role, "alice"),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
    )
    .expect("sign")
}

#[tokio::test]
async fn the_api_takes_tokens_from_an_identity_providers_key_set() {
    let url = serve_jwks().await;
    let app = spawn_app(AppOptions {
        jwt: Some(JwtSettings {
            algorithm: JwtAlgorithm::Rs256,
            jwks_url: Some(url),
            issuer: support::api::ISSUER.into(),
            audience: support::api::AUDIENCE.into(),
            ..JwtSettings::default()
        }),
        ..AppOptions::default()
    })
    .await;
    let get = |token: String| {
        let http = app.http.clone();
        let base = app.base_url();
        async move {
            support::api::call(
                &http,
                &base,
                reqwest::Method::GET,
                "/api/v1/analyses",
                Some(&token),
                None,
            )
            .await
        }
    };
    let ok = get(idp_token("idp-2026", "viewer")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let unknown = get(idp_token("someone-elses", "admin")).await;
    assert_eq!(unknown.status, 401, "{}", unknown.text);
    assert!(unknown.message().contains("kid"), "{}", unknown.text);
    let unsigned = get(support::api::alg_none(&support::api::claims(
        "admin", "mallory",
    )))
    .await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.text);
    app.shutdown().await;
}

/// Runs the `verdict` client against `app` with `token` (without blocking the server's
/// runtime); `None` leaves the token out.
async fn cli(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"));
    command
        .args(args)
        .env_clear()
        .env("VERDICT_SERVER", app.base_url());
    if let Some(token) = token {
        command.env("VERDICT_TOKEN", token);
    }
    command.output().await.expect("run verdict")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[tokio::test]
async fn the_cli_speaks_kubectl_and_wait_follows_an_analysis_to_its_end() {
    let app = spawn_app(AppOptions::with_api()).await;
    let arm = Profile::fixed(200.0, 0.01, FAST_MS);
    app.traffic("podinfo", arm.clone(), arm);
    warm_up().await;
    let viewer = support::api::token("viewer", "vera");
    let alice = support::api::token("release-manager", "alice");
    let first = payload("podinfo", "aaa111", &[("minCanaryRequests", "100000")]);
    assert_eq!(app.call("pre-rollout", &first).await.status, 200);

    // -n NAMESPACE NAME, -o yaml, and the documented exit codes.
    let o = cli(
        &app,
        Some(&viewer),
        &["canary", "-n", "test", "podinfo", "-o", "yaml"],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&o.stdout).expect("-o yaml");
    assert_eq!(yaml["latest_analysis"]["status"], "running");
    let o = cli(
        &app,
        Some(&viewer),
        &["analyses", "list", "-n", "test", "-o", "wide"],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("aaa111"), "{}", text(&o.stdout));
    for (args, token, want) in [
        (vec!["canary", "podinfo"], Some(viewer.as_str()), 2),
        (
            vec!["canary", "test/podinfo", "-o", "xml"],
            Some(&viewer),
            2,
        ),
        (vec!["canary", "-n", "test", "nothere"], Some(&viewer), 3),
        (vec!["analyses", "show", "999"], Some(&viewer), 3),
        (vec!["canary", "test/podinfo"], Some("not.a.token"), 4),
        (vec!["canary", "test/podinfo"], None, 4),
        (
            vec!["rollback", "-n", "test", "podinfo", "--reason", "x"],
            Some(&viewer),
            4,
        ),
    ] {
        let o = cli(&app, token, &args).await;
        assert_eq!(
            code(&o),
            want,
            "{args:?}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        assert!(!text(&o.stderr).trim().is_empty(), "{args:?}: no message");
    }

    // wait gives up after --timeout while the analysis runs.
    let o = cli(
        &app,
        Some(&viewer),
        &[
            "wait",
            "test/podinfo",
            "--interval",
            "1s",
            "--timeout",
            "2s",
        ],
    )
    .await;
    assert_eq!(code(&o), 11, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("following analysis"),
        "{}",
        text(&o.stdout)
    );

    // wait prints each new look and exits 10 once the analysis failed (rollback).
    let waiting = {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"));
        command
            .args([
                "wait",
                "-n",
                "test",
                "podinfo",
                "--interval",
                "1s",
                "--timeout",
                "2m",
            ])
            .env_clear()
            .env("VERDICT_SERVER", app.base_url())
            .env("VERDICT_TOKEN", &viewer);
        command.output()
    };
    let waiting = tokio::spawn(waiting);
    next_look().await;
    assert_eq!(app.call("rollout", &first).await.status, 200);
    // The look's counts are on /metrics per arm, and the slower requests per latency
    // boundary the analysis tests, for the provider-neutral dashboard panels.
    let analysis = app.analysis(&first).await.expect("analysis");
    let plan = analysis
        .settings
        .as_ref()
        .expect("readable settings")
        .plan();
    assert!(!plan.boundaries.is_empty(), "{plan:?}");
    let look = app.looks(analysis.id).await;
    let (_, metrics) = app.get("/metrics").await;
    for (arm, tally) in [
        ("canary", &look[0].look.canary),
        ("primary", &look[0].look.primary),
    ] {
        let labels = format!("namespace=\"test\",name=\"podinfo\",arm=\"{arm}\"");
        let mut lines = vec![format!(
            "verdict_look_requests_total{{{labels}}} {}",
            tally.requests
        )];
        for boundary in &plan.boundaries {
            lines.push(format!(
                "verdict_look_slower_total{{{labels},le=\"{}\"}} {}",
                boundary.le_s, tally.slower[boundary.edge]
            ));
        }
        for line in lines {
            assert!(
                metrics.lines().any(|l| l == line),
                "{line} not in\n{metrics}"
            );
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let o = cli(
        &app,
        Some(&alice),
        &["rollback", "test/podinfo", "--reason", "502s in eu-west"],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let o = waiting.await.expect("task").expect("wait ran");
    let out = text(&o.stdout);
    assert_eq!(code(&o), 10, "{out}{}", text(&o.stderr));
    assert!(out.contains("look 1 at "), "{out}");
    assert!(
        out.contains("analysis 1 failed: rollback requested by alice: 502s in eu-west"),
        "{out}"
    );
    assert_eq!(out.matches("following analysis").count(), 1, "{out}");

    // The next revision: wait skips the failed analysis, follows the new one, exits 0
    // when Flagger reports the rollout succeeded.
    let waiting = {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"));
        command
            .args([
                "wait",
                "test/podinfo",
                "--interval",
                "1s",
                "--timeout",
                "2m",
            ])
            .env_clear()
            .env("VERDICT_SERVER", app.base_url())
            .env("VERDICT_TOKEN", &viewer);
        command.output()
    };
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = payload("podinfo", "bbb222", &[("minCanaryRequests", "100000")]);
    assert_eq!(app.call("pre-rollout", &second).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut done = second.clone();
    done.phase = "Succeeded".into();
    let r = app.call("post-rollout", &done).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = waiting.await.expect("task").expect("wait ran");
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", text(&o.stderr));
    assert!(out.contains("bbb222") && out.contains("succeeded"), "{out}");
    app.shutdown().await;
}
