//! Building DataFusion sessions with everything sceneql adds: the `SCENES`
//! table factory, the `scenes(...)` table function, every SQL function of
//! `sceneql-udfs`, and the settings that keep `GROUP BY pixel` streaming per
//! scan partition (no round-robin or hash repartitioning of the scan).

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use object_store::ObjectStore;

use crate::provider::factory::SceneTableFactory;
use crate::provider::function::ScenesFunction;
pub use crate::settings::SceneqlOptions;
use crate::store;
use crate::tile_aggregate::with_tile_aggregates;

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
    crate::raster::log_gdal_messages();
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
