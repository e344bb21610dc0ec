//! The health check: plans (`check PLAN.toml`, docs/DESIGN.md §4b) in [`plan`], a run over a
//! plan's devices through the device layer in [`run`], and what a run says (results document,
//! Nagios, Prometheus, rows) in [`output`]. `cmd/check.rs` and `demo` drive it.

pub mod output;
pub mod plan;
pub mod run;
