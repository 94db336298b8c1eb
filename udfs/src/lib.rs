//! sceneql's SQL functions: band math, QA masks, time helpers and per-pixel
//! time-series aggregates (regressions, trend tests, series export).
//!
//! Every function lives in one file (or one family per file) with its
//! documentation as DataFusion [`Documentation`](datafusion::logical_expr::Documentation),
//! and appears once in [`register`], the list that shows every function at a
//! glance. The CLI's `sceneql functions` and `docs/functions.md` are generated
//! from that list ([`docs`]).

pub(crate) mod agg_common;
pub(crate) mod args;
pub mod bits;
pub mod docs;
pub mod harmonic;
pub mod indices;
pub mod linreg;
pub mod mann_kendall;
pub(crate) mod normal_equations;
pub mod ols;
pub(crate) mod pair_store;
pub(crate) mod pairs;
pub mod qa;
pub mod register;
pub mod scaling;
pub mod sections;
pub mod series;
#[cfg(test)]
pub(crate) mod test_support;
pub mod theil_sen;
pub mod time;
pub mod trend;

pub use register::{aggregate_udfs, register_all, scalar_udfs};
