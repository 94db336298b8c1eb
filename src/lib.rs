//! sceneql: SQL over satellite scene archives.
//!
//! Data flows one way: archive ([`archive`]) -> scenes -> grid ([`grid`]) ->
//! scan blocks ([`scan`]) -> Arrow batches -> DataFusion operators -> sinks
//! ([`sinks`]). [`provider`] exposes an archive as a table and
//! [`session`] builds sessions with everything registered.

pub mod archive;
pub mod cli;
pub mod cog;
pub mod crs_cache;
pub mod distributed;
pub mod error;
pub mod grid;
pub mod model;
pub mod options;
pub mod pixels;
pub mod progress;
pub mod provider;
pub mod raster;
pub mod remote;
pub mod run;
pub mod sample;
pub mod scan;
pub mod session;
pub mod settings;
pub mod sinks;
pub mod staged_writes;
pub mod store;
pub mod tiff;
pub mod tile_aggregate;
pub mod vsi;

pub use error::SceneError;
pub use provider::{SceneArchive, SceneTable};
