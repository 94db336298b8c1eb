//! Building DataFusion sessions with everything sceneql adds: the `SCENES`
//! table factory, the `scenes(...)` table function, every SQL function of
//! `sceneql-udfs`, and the settings that keep `GROUP BY pixel` streaming per
//! scan partition (no round-robin or hash repartitioning of the scan).

use std::any::Any;
use std::sync::Arc;

use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use object_store::ObjectStore;

use crate::provider::factory::SceneTableFactory;
use crate::provider::function::ScenesFunction;
use crate::store;
use crate::tile_aggregate::with_tile_aggregates;

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
/// `sceneql.block_pixels`: 256 Ki is one 512 x 512 tile, half the 512 Ki of
/// earlier rounds, for the same speed and 170 MB less peak memory on the
/// 4096 benchmark archive (BENCHMARKS.md).
const BLOCK_PIXELS: &str = "Pixels per block of that aggregation (its memory is about this \
     many groups' accumulator state per partition).";
/// `sceneql.scenes_per_read`.
const SCENES_PER_READ: &str = "Scenes read together per block by that aggregation: their rows \
     come strip by strip, so more keeps each strip's accumulator state in cache for more \
     scenes; fewer holds less decoded data at once.";
/// `sceneql.read_on_workers`: with a partition per core, a core reads and
/// aggregates its own blocks with no hand-off between threads per read (on
/// the benchmark machine, 0.815 -> 0.749 s and a better 1 -> 2 core ratio;
/// BENCHMARKS.md).
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

/// Rows per batch (DataFusion's default is 8192).
pub const BATCH_SIZE: usize = 32 * 1024;

/// Rows per row group of written Parquet (DataFusion's default is 1 Mi).
pub const PARQUET_ROW_GROUP_ROWS: usize = 256 * 1024;

/// The session configuration sceneql runs with.
pub fn config() -> SessionConfig {
    apply_settings(SessionConfig::new())
}

/// sceneql's settings on top of `config` (local or Ballista), its own
/// (`SET sceneql.*`) among them: every process of a cluster registers them,
/// since each drops the keys it does not know.
pub fn apply_settings(config: SessionConfig) -> SessionConfig {
    // Scan batches of 32 Ki rows: fewer, larger batches through the filter,
    // projection and sorted aggregation (measured faster than 8 Ki and 64 Ki
    // on the benchmark archive; see BENCHMARKS.md).
    let mut config = config
        .with_option_extension(SceneqlOptions::default())
        .with_information_schema(true)
        .with_batch_size(BATCH_SIZE);
    let options = config.options_mut();
    // Keep the scan's partitions (disjoint pixel ranges, sorted) as they are,
    // even when there are fewer of them than target partitions.
    options.optimizer.preserve_file_partitions = 1;
    options.optimizer.enable_round_robin_repartition = false;
    // `GROUP BY pixel, x, y` (or any keys including pixel) also runs per
    // partition: the pixel ranges already split those groups, however few
    // partitions there are.
    options.optimizer.subset_repartition_threshold = 1;
    // Parquet written with zstd level 1 (DataFusion's default is 3): on the
    // benchmark's per-pixel trends, 0.85% larger files for 5% less CPU of
    // the whole job (BENCHMARKS.md). `SET` or a COPY's
    // `OPTIONS ('format.compression' ...)` choose another.
    options.execution.parquet.compression = Some("zstd(1)".into());
    // No dictionary encoding by default: per-pixel results are mostly
    // floats, all distinct, so each column chunk filled a dictionary only to
    // fall back to plain encoding (on the benchmark's 4096 trends: 3% smaller
    // files, the same CPU time within the machine's noise).
    // `SET datafusion.execution.parquet.dictionary_enabled = true` or a
    // COPY's `OPTIONS ('format.dictionary_enabled' 'true')` turn it on.
    options.execution.parquet.dictionary_enabled = Some(false);
    // Row groups of 256 Ki rows (DataFusion's default is 1 Mi): the writer
    // holds its open row group, which on a large job was the largest buffer
    // after the accumulators' (BENCHMARKS.md: with 256 Ki-pixel blocks, the
    // 4096 archive's peak fell from 594 to 420 MB, at the same speed).
    options.execution.parquet.max_row_group_size = PARQUET_ROW_GROUP_ROWS;
    config
}

/// Register sceneql's table factory, table function and SQL functions on a
/// session state builder's output.
pub fn register(ctx: &SessionContext) -> Result<()> {
    ctx.register_udtf("scenes", Arc::new(ScenesFunction));
    let state = ctx.state_ref();
    let mut state = state.write();
    sceneql_udfs::register_all(&mut *state as &mut dyn FunctionRegistry)?;
    Ok(())
}

/// A local session with everything registered.
pub fn local_context() -> Result<SessionContext> {
    local_context_with(config())
}

/// Object stores for DataFusion's own reads and writes (`COPY ... TO
/// 's3://...'`, Parquet tables in buckets): stores registered with the
/// session first, else sceneql's store for the URL's root ([`store`]),
/// built once per process from the environment, or with the settings a
/// scene table over the same bucket was given.
#[derive(Debug, Default)]
pub struct Stores {
    registered: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> Result<Arc<dyn ObjectStore>> {
        self.registered.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(s) = self.registered.get_store(url) {
            return Ok(s);
        }
        let object = store::ObjectUrl::parse(url.as_str())?;
        Ok(store::store_for_root(&object)?)
    }
}

/// The runtime every sceneql session runs in: DataFusion's defaults with
/// sceneql's object stores ([`Stores`]).
pub fn runtime_env() -> Result<Arc<RuntimeEnv>> {
    Ok(Arc::new(
        RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(Stores::default()))
            .build()?,
    ))
}

pub fn local_context_with(config: SessionConfig) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime_env()?)
        .with_default_features()
        .with_table_factory("SCENES".to_string(), Arc::new(SceneTableFactory))
        .with_physical_optimizer_rules(with_tile_aggregates(&PhysicalOptimizer::new().rules))
        .build();
    let ctx = SessionContext::new_with_state(state);
    register(&ctx)?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings a client lists (and a cluster's client sends) carry
    /// the `sceneql.` prefix, and set the same values in a fresh
    /// configuration, as a scheduler or executor builds its own.
    #[test]
    fn settings_round_trip_by_their_listed_keys() {
        let mut sent = config();
        sent.options_mut()
            .set("sceneql.block_pixels", "1024")
            .unwrap();
        sent.options_mut()
            .set("sceneql.read_on_workers", "FALSE")
            .unwrap();
        sent.options_mut()
            .set("sceneql.steal_reads", "false")
            .unwrap();
        let mut received = config();
        let ours: Vec<_> = sent
            .options()
            .entries()
            .into_iter()
            .filter(|e| e.key.starts_with("sceneql."))
            .collect();
        assert_eq!(ours.len(), 5, "{ours:?}");
        for e in ours {
            let value = e.value.expect("a value");
            received.options_mut().set(&e.key, &value).unwrap();
        }
        let got = received.options().extensions.get::<SceneqlOptions>();
        let want = SceneqlOptions {
            block_pixels: 1024,
            read_on_workers: false,
            steal_reads: false,
            ..SceneqlOptions::default()
        };
        assert_eq!(got, Some(&want));
        // Unknown names and bad values say what is expected.
        let options = received.options_mut();
        let unknown = options.set("sceneql.blok_pixels", "1").unwrap_err();
        assert!(
            unknown.to_string().contains("sceneql.block_pixels"),
            "{unknown}"
        );
        let bad = options.set("sceneql.tile_aggregate", "maybe").unwrap_err();
        assert!(bad.to_string().contains("true or false"), "{bad}");
    }
}
