//! sceneql's SQL functions: band math, QA masks, time helpers and per-pixel
//! time-series aggregates (regressions, trend tests, series export).
//!
//! Every function lives in one file (or one family per file) with its
//! documentation as DataFusion [`Documentation`](datafusion::logical_expr::Documentation),
//! and appears once in [`register`], the list that shows every function at a
//! glance. The CLI's `sceneql functions` and `docs/functions.md` are generated
//! from that list ([`docs`]).

pub mod docs;
pub mod register;
pub mod time;

pub use register::{aggregate_udfs, register_all, scalar_udfs};
