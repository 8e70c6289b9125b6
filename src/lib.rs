//! latchkey: the API-key system of a repair-shop platform and the REST API its
//! keys open. The binary (`main.rs`) only parses the command line; everything
//! else lives here so tests, benchmarks and the binary share it.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod limiter;
pub mod service;
pub mod store;
pub mod telemetry;

pub use app::{AppState, Core, Policy, build_router, serve};
