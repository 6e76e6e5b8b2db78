//! verdict: statistical canary analysis beside Flagger.
//!
//! Flagger calls verdict's webhooks during a rollout; verdict reads both arms' SLIs,
//! asks the [`judge`], records the decision in the [`store`] and answers pass, fail
//! or wait with the status codes Flagger understands.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod analysis;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod domain;
pub mod evaluate;
pub mod grafana;
pub mod http;
// rust-version 1.89 (the highest a locked dependency needs) turns on clippy's
// `manual_is_multiple_of`, which src/judge/format.rs trips; scoped here until that line
// uses `is_multiple_of`.
#[allow(clippy::manual_is_multiple_of)]
pub mod judge;
pub mod loadgen;
pub mod sli;
pub mod startup;
pub mod store;
pub mod telemetry;
