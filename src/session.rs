//! Building DataFusion sessions with everything sceneql adds: the `SCENES`
//! table factory, the `scenes(...)` table function, every SQL function of
//! `sceneql-udfs`, and the settings that keep `GROUP BY pixel` streaming per
//! scan partition (no round-robin or hash repartitioning of the scan).

use std::sync::Arc;

use datafusion::common::extensions_options;
use datafusion::config::ConfigExtension;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::provider::factory::SceneTableFactory;
use crate::provider::function::ScenesFunction;
use crate::tile_aggregate::with_tile_aggregates;

extensions_options! {
    /// sceneql's session settings (`SET sceneql.<name> = <value>`).
    pub struct SceneqlOptions {
        /// Run `GROUP BY pixel` over a scene scan per block by pixel offset
        /// (`TileAggregateExec`) instead of DataFusion's hash aggregation.
        pub tile_aggregate: bool, default = true
        /// Pixels per block of that aggregation (its memory is about this
        /// many groups' accumulator state per partition). 256 Ki is one
        /// 512 x 512 tile: half the 512 Ki of earlier rounds, for the same
        /// speed and 170 MB less peak memory on the 4096 benchmark archive
        /// (BENCHMARKS.md).
        pub block_pixels: usize, default = 256 * 1024
        /// Scenes read together per block by that aggregation: their rows
        /// come strip by strip, so more keeps each strip's accumulator
        /// state in cache for more scenes; fewer holds less decoded data
        /// at once (a read holds this many scenes' bands of a block).
        pub scenes_per_read: usize, default = 4
        /// Read (open and decode) a scan's blocks on the runtime's worker
        /// threads, each in its partition's own task, rather than each on
        /// a blocking thread: with a partition per core, a core then reads
        /// and aggregates its own blocks with no hand-off between threads
        /// per read (on the benchmark machine, 0.815 -> 0.749 s and a
        /// better 1 -> 2 core ratio; BENCHMARKS.md). Set it false for an
        /// archive on a slow (network) file system, so that a read waiting
        /// on it does not hold a worker.
        pub read_on_workers: bool, default = true
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
    apply_settings(SessionConfig::new()).with_option_extension(SceneqlOptions::default())
}

/// sceneql's settings on top of `config` (local or Ballista).
pub fn apply_settings(config: SessionConfig) -> SessionConfig {
    // Scan batches of 32 Ki rows: fewer, larger batches through the filter,
    // projection and sorted aggregation (measured faster than 8 Ki and 64 Ki
    // on the benchmark archive; see BENCHMARKS.md).
    let mut config = config
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

pub fn local_context_with(config: SessionConfig) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_table_factory("SCENES".to_string(), Arc::new(SceneTableFactory))
        .with_physical_optimizer_rules(with_tile_aggregates(&PhysicalOptimizer::new().rules))
        .build();
    let ctx = SessionContext::new_with_state(state);
    register(&ctx)?;
    Ok(ctx)
}
