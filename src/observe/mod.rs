//! Observability: what a running cache holds, over time, on request, and under pressure.
//!
//! - [`stats`]: the §6 snapshot, its JSON and its table.
//! - [`history`]: memory sampled over time (the graph of `texcache stats --plot`).
//! - [`control`]: the control socket (§9) that serves them to `texcache stats`.
//! - [`pressure`]: budgets sized to the machine, memory given back under pressure.

pub mod control;
pub mod history;
pub mod pressure;
pub mod stats;
