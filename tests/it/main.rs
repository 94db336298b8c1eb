//! sceneql integration tests: one test binary, one module per concern.

mod cli;
mod clouds;
mod common;
mod distributed;
mod errors;
mod layouts;
mod pipelines;
mod plan;
mod proxy;
mod realdata;
mod stac;
mod stores;
mod tile_aggregate;
mod timeseries;
mod warp;
