//! A Flagger user's first day, as README.md and docs/deployment.md describe it: the
//! binary starts in a pod whose namespace has a Service named `verdict`.

use std::process::Output;

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
