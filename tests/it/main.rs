//! sceneql integration tests: one test binary, one module per concern.

mod cli;
mod common;
mod distributed;
mod errors;
mod layouts;
mod pipelines;
mod plan;
mod proxy;
mod stac;
mod realdata;
mod stores;
mod tile_aggregate;
mod timeseries;
mod warp;
