//! The arrows between verdict's parts that must never exist (docs/architecture.md,
//! "Arrows"), checked on the source: a new import that crosses one fails here, with the
//! file and line, before it becomes a habit.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file below `src/<dir>` (or the file `src/<dir>.rs`), with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, out);
            }
        } else if path.is_file() && path.extension().is_some_and(|x| x == "rs") {
            out.push(path.to_owned());
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src").join(dir), &mut files);
    walk(
        &Path::new(ROOT).join("src").join(format!("{dir}.rs")),
        &mut files,
    );
    assert!(!files.is_empty(), "no sources for {dir}");
    files
        .into_iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (f, text)
        })
        .collect()
}

/// The code lines (not comments) of `dir` that contain any of `needles`. A module's
/// `tests.rs` is left out: tests may read their own settings from the environment.
fn code_lines_with(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in sources(dir) {
        if file.ends_with("tests.rs") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|needle| code.contains(needle)) {
                let shown = file
                    .strip_prefix(ROOT)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_judge_imports_nothing_of_verdict_and_does_no_io() {
    let found = code_lines_with(
        "judge",
        &[
            "crate::",
            "tokio",
            "sqlx",
            "reqwest",
            "hyper",
            "axum",
            "std::fs",
            "std::net",
            "std::process",
            "std::env",
            "SystemTime",
            "Instant::now",
        ],
    );
    assert!(
        found.is_empty(),
        "the judge reaches out:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_store_knows_no_http_rule_annotation_or_statistics() {
    let found = code_lines_with(
        "store",
        &[
            "crate::http",
            "crate::analysis",
            "crate::grafana",
            "crate::judge",
            "crate::sli",
            "axum",
            "StatusCode",
        ],
    );
    assert!(
        found.is_empty(),
        "the store depends on a layer above it:\n{}",
        found.join("\n")
    );
}

#[test]
fn sli_sources_never_write_state() {
    let found = code_lines_with("sli", &["crate::store"]);
    assert!(
        found.is_empty(),
        "an SLI source reaches the store:\n{}",
        found.join("\n")
    );
}

#[test]
fn http_handlers_go_through_the_service() {
    let found = code_lines_with("http", &["Store", "store."]);
    assert!(
        found.is_empty(),
        "HTTP code reaches the store:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_grafana_module_knows_grafana() {
    for dir in ["analysis", "http/api", "store"] {
        let found: Vec<String> = sources(dir)
            .into_iter()
            // The outbox says who reads it.
            .filter(|(file, _)| !file.ends_with("store/outbox.rs"))
            .flat_map(|(file, text)| {
                let shown = file
                    .strip_prefix(ROOT)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                text.lines()
                    .enumerate()
                    .filter(|(_, line)| line.to_lowercase().contains("grafana"))
                    .map(|(n, line)| format!("{shown}:{}: {}", n + 1, line.trim()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            found.is_empty(),
            "{dir} knows about Grafana:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn auth_does_not_depend_on_configuration() {
    let found = code_lines_with("auth", &["crate::config"]);
    assert!(
        found.is_empty(),
        "auth imports configuration:\n{}",
        found.join("\n")
    );
}
