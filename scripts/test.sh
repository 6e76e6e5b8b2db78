#!/usr/bin/env bash
# Runs verdict's whole test suite on a fresh machine: checks formatting and lints,
# installs and starts what the tests need (Prometheus, PostgreSQL, envsubst, Chromium
# and its WebDriver from Debian, an OpenAPI validator from PyPI), then runs cargo's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Style and lints first: they fail in seconds, the tests take minutes. The lints
# themselves are in Cargo.toml ([workspace.lints]) and clippy.toml.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
# Every locked package, for every platform: tests/deploy_yaml.rs reads `cargo metadata
# --offline`, which needs them all (a build fetches only this platform's).
cargo fetch --locked
cargo clippy --workspace --all-targets -- -D warnings

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
# tests/console.rs drives Debian's headless Chromium through its WebDriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# tests/first_day.rs runs README's `envsubst … < webhooks/canary.yaml` line.
command -v envsubst >/dev/null 2>&1 || missing+=(gettext-base)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The OpenAPI test validates verdict's document with a real validator (pinned).
if ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
  echo "installing: openapi-spec-validator (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "openapi-spec-validator==0.9.0"
fi

# The chart's values.schema.json is checked with a real JSON Schema validator.
if ! python3 -c "import jsonschema" >/dev/null 2>&1; then
  echo "installing: jsonschema (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "jsonschema==4.26.0"
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -n | tail -1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

export VERDICT_TEST_PG="${VERDICT_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"

# Tests create one database each (verdict_test_<unix seconds>_<uuid>); drop what runs
# more than an hour old left behind. A younger one may belong to a suite running now in
# another checkout, and one with sessions is never dropped (no FORCE).
now=$(date +%s)
psql "$VERDICT_TEST_PG" -Atqc "select datname from pg_database where datname like 'verdict_test_%'" 2>/dev/null |
  while read -r db; do
    created=$(printf '%s' "$db" | sed -n 's/^verdict_test_\([0-9][0-9]*\)_.*/\1/p')
    if [ -n "$created" ] && [ $((now - created)) -lt 3600 ]; then continue; fi
    psql "$VERDICT_TEST_PG" -qc "drop database if exists \"$db\"" >/dev/null 2>&1 || true
  done

# cargo-nextest (on every machine of this project's kind) runs the test binaries side by
# side (.config/nextest.toml); plain `cargo test` runs them one after another, about
# twice as long. Arguments go to whichever runs.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets "$@"
else
  echo "cargo-nextest not found: running cargo test (one test binary at a time)"
  cargo test --all-targets "$@"
fi
