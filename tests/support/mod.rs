//! Shared helpers for the integration tests: real Postgres, real Prometheus, a test exporter.
#![allow(dead_code)]

pub mod api;
pub mod app;
pub mod exporter;
pub mod postgres;
pub mod prometheus;
pub mod static_exporter;
