//! What verdict's integration tests share: [`app::spawn_app`], the one way to start the
//! real server (Prometheus or simulated SLIs, Postgres or SQLite, Grafana and the API on
//! or off); real Postgres and SQLite databases ([`db`]); a real Prometheus
//! ([`prometheus`]) scraping test exporters ([`exporter`], [`static_exporter`]); a client
//! that calls the hooks as Flagger does ([`flagger`]); and tokens and calls for the
//! release-manager API ([`api`]).

pub mod api;
pub mod app;
pub mod db;
pub mod exporter;
pub mod flagger;
pub mod prometheus;
pub mod schema;
pub mod static_exporter;
