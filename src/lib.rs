//! verdict: statistical canary analysis beside Flagger.
//!
//! Flagger calls verdict's webhooks during a rollout; verdict reads both arms' SLIs,
//! asks the [`judge`], records the decision in the [`store`] and answers pass, fail
//! or wait with the status codes Flagger understands.
//!
//! The lints live in Cargo.toml's `[lints]` table; `missing_docs` is allowed below only
//! where documentation is not ready yet or comes from elsewhere.

pub mod analysis;
pub mod argo;
pub mod auth;
// clap turns doc comments on arguments into `--help` text: documented by their help.
#[allow(missing_docs)]
pub mod cli;
#[allow(missing_docs)]
pub mod client;
pub mod config;
pub mod demo;
pub mod domain;
pub mod evaluate;
pub mod grafana;
pub mod http;
// Being rewritten on its own branch.
#[allow(missing_docs)]
pub mod judge;
pub mod loadgen;
#[allow(missing_docs)]
pub mod sli;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhook;
