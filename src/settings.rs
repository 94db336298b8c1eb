//! sceneql's session settings (`SET sceneql.<name> = <value>`): one
//! extension of DataFusion's configuration, registered by every session
//! ([`crate::session`]) and read by the scan and the per-block aggregation.

use std::any::Any;

use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// sceneql's session settings (`SET sceneql.<name> = <value>`).
///
/// Written out rather than with DataFusion's `extensions_options!`, whose
/// entries lack the `sceneql.` prefix: settings are listed (`SHOW ALL`,
/// `information_schema.df_settings`) and sent to a cluster's scheduler and
/// executors by those keys, and set there by them, so unprefixed keys were
/// dropped and a cluster ran with the defaults whatever the client set.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneqlOptions {
    /// See [`TILE_AGGREGATE`].
    pub tile_aggregate: bool,
    /// See [`BLOCK_PIXELS`].
    pub block_pixels: usize,
    /// See [`SCENES_PER_READ`].
    pub scenes_per_read: usize,
    /// See [`READ_ON_WORKERS`].
    pub read_on_workers: bool,
    /// See [`STEAL_READS`].
    pub steal_reads: bool,
}

/// `sceneql.tile_aggregate`.
const TILE_AGGREGATE: &str = "Run `GROUP BY pixel` over a scene scan per block by pixel offset \
     (TileAggregateExec) instead of DataFusion's hash aggregation.";
/// `sceneql.block_pixels`: 256 Ki is one 512 x 512 tile (why this default:
/// BENCHMARKS.md).
const BLOCK_PIXELS: &str = "Pixels per block of that aggregation (its memory is about this \
     many groups' accumulator state per partition).";
/// `sceneql.scenes_per_read`.
const SCENES_PER_READ: &str = "Scenes read together per block by that aggregation: their rows \
     come strip by strip, so more keeps each strip's accumulator state in cache for more \
     scenes; fewer holds less decoded data at once.";
/// `sceneql.read_on_workers`: with a partition per core, a core reads and
/// aggregates its own blocks with no hand-off between threads per read
/// (measurements: BENCHMARKS.md).
const READ_ON_WORKERS: &str = "Read (open and decode) a scan's blocks on the runtime's worker \
     threads, each in its partition's own task, rather than on blocking threads; set false \
     for an archive on a slow (network) file system, so a read waiting on it holds no worker.";
/// `sceneql.steal_reads` ([`crate::scan::steal`]).
const STEAL_READS: &str = "When a partition of a scene-major scan has read all its blocks, it \
     reads scenes just ahead of a partition still reading and hands the reads over (their rows \
     keep their order), so the partitions end together.";

impl Default for SceneqlOptions {
    fn default() -> Self {
        SceneqlOptions {
            tile_aggregate: true,
            block_pixels: 256 * 1024,
            scenes_per_read: 4,
            read_on_workers: true,
            steal_reads: true,
        }
    }
}

impl SceneqlOptions {
    /// A session's settings: the defaults where its configuration has
    /// none (a process whose configuration lacks the extension).
    pub fn of(config: &ConfigOptions) -> Self {
        config.extensions.get::<Self>().cloned().unwrap_or_default()
    }
}

/// `value` of setting `key` as a `T`, or an error naming both.
fn parse_setting<T: std::str::FromStr>(key: &str, value: &str, kind: &str) -> Result<T> {
    value.trim().to_lowercase().parse().map_err(|_| {
        DataFusionError::Configuration(format!("sceneql.{key} takes {kind}; got '{value}'"))
    })
}

impl ExtensionOptions for SceneqlOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "tile_aggregate" => self.tile_aggregate = parse_setting(key, value, "true or false")?,
            "block_pixels" => self.block_pixels = parse_setting(key, value, "a pixel count")?,
            "scenes_per_read" => self.scenes_per_read = parse_setting(key, value, "a scene count")?,
            "read_on_workers" => self.read_on_workers = parse_setting(key, value, "true or false")?,
            "steal_reads" => self.steal_reads = parse_setting(key, value, "true or false")?,
            _ => {
                let known: Vec<String> = self.entries().into_iter().map(|e| e.key).collect();
                return Err(DataFusionError::Configuration(format!(
                    "no setting sceneql.{key}; sceneql's settings are {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        [
            (
                "tile_aggregate",
                self.tile_aggregate.to_string(),
                TILE_AGGREGATE,
            ),
            ("block_pixels", self.block_pixels.to_string(), BLOCK_PIXELS),
            (
                "scenes_per_read",
                self.scenes_per_read.to_string(),
                SCENES_PER_READ,
            ),
            (
                "read_on_workers",
                self.read_on_workers.to_string(),
                READ_ON_WORKERS,
            ),
            ("steal_reads", self.steal_reads.to_string(), STEAL_READS),
        ]
        .into_iter()
        .map(|(key, value, description)| ConfigEntry {
            key: format!("{}.{key}", Self::PREFIX),
            value: Some(value),
            description,
        })
        .collect()
    }
}

impl ConfigExtension for SceneqlOptions {
    const PREFIX: &'static str = "sceneql";
}
