//! Where results leave: `COPY ... TO` Parquet (a file, or a folder with
//! `PARTITIONED BY`). Three things are added to DataFusion's writer:
//! - a COPY reading a scene table stores the table's grid (CRS WKT,
//!   geotransform, width, height) as Parquet key-value metadata
//!   `sceneql.grid`, so per-pixel results stay georeferenced (on a cluster
//!   the executors' writers get it through [`MetadataParquetSink`], which
//!   sceneql's plan codec carries: DataFusion's protobuf drops it; a local
//!   file that still lacks it gets it in its footer before it is moved
//!   into place);
//! - output is written under a temporary name beside the target and renamed
//!   into place only when the whole statement succeeded, so a failed or
//!   interrupted query never leaves a partial file that looks complete;
//! - the writer takes its input partitions as they come, not merged in
//!   order ([`UnorderedSinkInput`]), so every scan partition keeps working
//!   (unless the query says `ORDER BY`);
//! - floating-point columns are written BYTE_STREAM_SPLIT unless the
//!   statement or session chose an encoding ([`split_float_bytes`]): per-pixel
//!   fits are mostly distinct floats, whose bytes zstd compresses far
//!   better split by position.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::catalog::TableProvider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::config::{ConfigFileType, TableParquetOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::FileSink;
use datafusion::datasource::sink::DataSink;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::file::metadata::{
    FileMetaData, KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
    ParquetMetaDataWriter,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};

use crate::grid::Grid;
use crate::provider::SceneTable;

/// The Parquet key-value metadata key holding the grid.
pub const GRID_METADATA_KEY: &str = "sceneql.grid";

/// The grids of the scene tables a plan reads (deduplicated).
pub fn scene_grids(plan: &LogicalPlan) -> Vec<Grid> {
    let mut grids: Vec<Grid> = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(t) = (provider.as_ref() as &dyn TableProvider).downcast_ref::<SceneTable>()
        {
            let g = t.archive().grid.clone();
            if !grids.contains(&g) {
                grids.push(g);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    grids
}

/// A COPY target being written under a temporary name.
#[derive(Debug)]
pub struct PendingOutput {
    pub target: PathBuf,
    pub temp: PathBuf,
}

/// Choose a temporary name beside a local COPY target, keeping its extension
/// (DataFusion infers the format from it) and a trailing `/` for folders.
pub fn stage(target: &str) -> Option<(String, PendingOutput)> {
    if target.contains("://") {
        return None;
    }
    let is_dir = target.ends_with('/');
    let path = Path::new(target.trim_end_matches('/'));
    let name = path.file_name()?.to_string_lossy().to_string();
    let temp = path.with_file_name(format!(".sceneql-tmp-{}-{}", std::process::id(), name));
    let mut temp_str = temp.to_string_lossy().to_string();
    if is_dir {
        temp_str.push('/');
    }
    Some((
        temp_str,
        PendingOutput {
            target: path.to_path_buf(),
            temp,
        },
    ))
}

impl PendingOutput {
    /// Move the finished output into place (replacing an older one).
    pub fn commit(&self) -> std::io::Result<()> {
        if !self.temp.exists() {
            // Nothing was written (no rows and no file): nothing to move.
            return Ok(());
        }
        if self.target.is_dir() {
            std::fs::remove_dir_all(&self.target)?;
        } else if self.target.exists() {
            std::fs::remove_file(&self.target)?;
        }
        std::fs::rename(&self.temp, &self.target)
    }

    /// Remove whatever a failed statement wrote.
    pub fn abort(&self) {
        if self.temp.is_dir() {
            let _ = std::fs::remove_dir_all(&self.temp);
        } else {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        // Committed outputs no longer exist under the temporary name.
        self.abort();
    }
}

/// Add the grid metadata option to a COPY plan reading one scene grid, and
/// resolve a Parquet COPY's options into its file format.
///
/// The second step is for clusters: Ballista's plan serialisation keeps the
/// file format with its options but drops COPY's own option list, so options
/// left there (the grid metadata, compression, ...) would be lost on the
/// executor that writes the file.
pub fn with_grid_metadata(plan: LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    let LogicalPlan::Copy(mut copy) = plan else {
        return Ok(plan);
    };
    let grids = scene_grids(&copy.input);
    let is_parquet = copy.file_type.get_ext().eq_ignore_ascii_case("parquet");
    if !is_parquet {
        return Ok(LogicalPlan::Copy(copy));
    }
    if let [grid] = grids.as_slice() {
        copy.options.insert(
            format!("format.metadata::{GRID_METADATA_KEY}"),
            grid.metadata_json(),
        );
    }
    // Options outside `format.` (e.g. `execution.keep_partition_by_columns`)
    // only the planner reads: leave such COPYs as DataFusion plans them.
    if copy.options.keys().all(|k| k.starts_with("format.")) {
        let mut table = state.default_table_options();
        table.set_config_format(ConfigFileType::PARQUET);
        table.alter_with_string_hash_map(&copy.options)?;
        split_float_bytes(&mut table.parquet, copy.input.schema().fields());
        copy.file_type = format_as_file_type(Arc::new(ParquetFormatFactory::new_with_options(
            table.parquet,
        )));
        copy.options.clear();
    }
    Ok(LogicalPlan::Copy(copy))
}

/// Write the floating-point columns among `fields` (nested in structs too)
/// BYTE_STREAM_SPLIT, unless `options` set an encoding for all columns or
/// for that one. On the benchmark's per-pixel trends: float column chunks
/// 17% smaller under zstd, and less CPU to compress them (BENCHMARKS.md).
/// Arrow and parquet-mr have read it for FLOAT and DOUBLE for years
/// (checked with pyarrow 26); integer columns, for which it is newer in
/// the format, keep the default encoding.
pub fn split_float_bytes(options: &mut TableParquetOptions, fields: &Fields) {
    fn float_paths(fields: &Fields, prefix: &str, out: &mut Vec<String>) {
        for f in fields {
            // Column paths are dot-separated: a dotted name cannot be named.
            if f.name().contains('.') {
                continue;
            }
            let path = if prefix.is_empty() {
                f.name().clone()
            } else {
                format!("{prefix}.{}", f.name())
            };
            match f.data_type() {
                DataType::Float32 | DataType::Float64 => out.push(path),
                DataType::Struct(children) => float_paths(children, &path, out),
                _ => {}
            }
        }
    }
    if options.global.encoding.is_some() {
        return;
    }
    let mut paths = Vec::new();
    float_paths(fields, "", &mut paths);
    for path in paths {
        let column = options.column_specific_options.entry(path).or_default();
        if column.encoding.is_none() {
            column.encoding = Some("byte_stream_split".into());
        }
    }
}

/// The grid metadata a COPY plan should write: `Some(json)` for a Parquet
/// COPY reading exactly one scene grid.
pub fn copy_grid_metadata(plan: &LogicalPlan) -> Option<String> {
    let LogicalPlan::Copy(copy) = plan else {
        return None;
    };
    if !copy.file_type.get_ext().eq_ignore_ascii_case("parquet") {
        return None;
    }
    match scene_grids(&copy.input).as_slice() {
        [grid] => Some(grid.metadata_json()),
        _ => None,
    }
}

/// Make sure every Parquet file at `path` (a file, or a folder of them)
/// carries the key-value metadata `key = value`, adding it to the footers
/// that lack it. Only the footer is rewritten; data pages stay in place.
/// Returns how many files were changed.
pub fn ensure_parquet_metadata(path: &Path, key: &str, value: &str) -> Result<usize> {
    let mut changed = 0;
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| io_error(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(path, e))?;
            changed += ensure_parquet_metadata(&entry.path(), key, value)?;
        }
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        changed += usize::from(add_footer_metadata(path, key, value)?);
    }
    Ok(changed)
}

fn io_error(path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("cannot update {}: {e}", path.display()))
}

/// Add `key = value` to one Parquet file's footer; false if it was there.
fn add_footer_metadata(path: &Path, key: &str, value: &str) -> Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    // Column and offset indexes stay where they are (before the footer),
    // so read the footer alone and keep its offsets as written.
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Skip)
        .parse_and_finish(&file)?;
    let old = metadata.file_metadata();
    let mut pairs = old.key_value_metadata().cloned().unwrap_or_default();
    if pairs.iter().any(|kv| kv.key == key) {
        return Ok(false);
    }
    pairs.push(KeyValue::new(key.to_string(), value.to_string()));
    let file_metadata = FileMetaData::new(
        old.version(),
        old.num_rows(),
        old.created_by().map(str::to_string),
        Some(pairs),
        old.schema_descr_ptr(),
        old.column_orders().cloned(),
    );
    let updated = ParquetMetaData::new(file_metadata, metadata.row_groups().to_vec());
    // The footer: FileMetaData, its 4-byte length, then "PAR1".
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(len.saturating_sub(8)))
        .and_then(|_| std::io::Read::read_exact(&mut file, &mut tail))
        .map_err(|e| io_error(path, e))?;
    let footer_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    let footer_start = len.checked_sub(8 + footer_len).ok_or_else(|| {
        DataFusionError::Execution(format!("{} is not a Parquet file", path.display()))
    })?;
    file.set_len(footer_start)
        .and_then(|_| file.seek(SeekFrom::Start(footer_start)).map(|_| ()))
        .map_err(|e| io_error(path, e))?;
    let mut out = std::io::BufWriter::new(&mut file);
    ParquetMetaDataWriter::new(&mut out, &updated).finish()?;
    std::io::Write::flush(&mut out).map_err(|e| io_error(path, e))?;
    Ok(true)
}

/// True when `plan` is a `COPY` whose rows may be written as they come: its
/// query sorts nowhere (no `ORDER BY`, also none under a `LIMIT` or in a
/// subquery, where the sort decides which rows are kept). Otherwise the
/// plan keeps every order DataFusion planned.
pub fn copy_writes_unordered(plan: &LogicalPlan) -> Result<bool> {
    let LogicalPlan::Copy(copy) = plan else {
        return Ok(false);
    };
    let sorts = copy
        .input
        .exists(|node| Ok(matches!(node, LogicalPlan::Sort(_))))?;
    Ok(!sorts)
}

/// `node` as a Parquet `COPY`'s writer: the sink node and its sink.
fn parquet_sink(node: &Arc<dyn ExecutionPlan>) -> Option<(&DataSinkExec, &ParquetSink)> {
    let exec = node.downcast_ref::<DataSinkExec>()?;
    Some((exec, exec.sink().downcast_ref::<ParquetSink>()?))
}

/// A physical optimizer rule: a `COPY` to Parquet reads its input
/// partitions as they come (`CoalescePartitionsExec`) instead of merging them
/// in order (`SortPreservingMergeExec`, which DataFusion plans to keep the
/// input's order in the file). The scan's partitions hold disjoint, sorted
/// pixel ranges, so an ordered merge drains one partition before it takes
/// the next row of another: every partition but the first would wait, and a
/// `GROUP BY pixel` written to Parquet would run on one core. The rows
/// written are the same; rows of different partitions interleave by batch,
/// and the file claims no sort order. With one input partition there is no
/// merge, but the sink's order requirement is dropped all the same, so a
/// per-block aggregation whose blocks are narrower than the grid can run
/// under it.
///
/// A query's own `ORDER BY` leaves the same physical plan, so the rule is
/// not a session rule: the statement runner applies it to a local `COPY`
/// whose query does not sort ([`copy_writes_unordered`]). On a
/// cluster the merge reads finished stage outputs, so it is left alone.
#[derive(Debug, Default)]
pub struct UnorderedSinkInput;

impl PhysicalOptimizerRule for UnorderedSinkInput {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some((exec, sink)) = parquet_sink(&node) else {
                return Ok(Transformed::no(node));
            };
            let input: Arc<dyn ExecutionPlan> =
                match exec.input().downcast_ref::<SortPreservingMergeExec>() {
                    Some(merge) if merge.fetch().is_none() => {
                        Arc::new(CoalescePartitionsExec::new(merge.input().clone()))
                    }
                    Some(_) => return Ok(Transformed::no(node)),
                    // One input partition: no merge, but the sink still asks
                    // its input to keep its order.
                    None if exec.sort_order().is_some() => exec.input().clone(),
                    None => return Ok(Transformed::no(node)),
                };
            let sink = ParquetSink::new(sink.config().clone(), sink.parquet_options().clone());
            Ok(Transformed::yes(Arc::new(DataSinkExec::new(
                input,
                Arc::new(sink),
                None,
            ))))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "unordered_sink_input"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A Parquet sink whose options carry key-value metadata (the grid), on a
/// cluster: DataFusion 55's protobuf of a `ParquetSink` drops that metadata
/// on the way to the executors, so sceneql's plan codec carries this sink
/// itself ([`crate::distributed::codec`]) and the executor writes the
/// metadata into the final files (an object's footer cannot be patched
/// afterwards).
#[derive(Debug)]
pub struct MetadataParquetSink(pub ParquetSink);

impl DisplayAs for MetadataParquetSink {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt_as(t, f)
    }
}

#[async_trait::async_trait]
impl DataSink for MetadataParquetSink {
    fn metrics(&self) -> Option<MetricsSet> {
        self.0.metrics()
    }

    fn schema(&self) -> &SchemaRef {
        self.0.schema()
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        DataSink::write_all(&self.0, data, context).await
    }
}

/// A physical optimizer rule of a cluster's scheduler: a Parquet `COPY`
/// whose options carry key-value metadata writes through a
/// [`MetadataParquetSink`], so the metadata reaches the executor.
#[derive(Debug, Default)]
pub struct KeepSinkMetadata;

impl PhysicalOptimizerRule for KeepSinkMetadata {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some((exec, sink)) = parquet_sink(&node) else {
                return Ok(Transformed::no(node));
            };
            if sink.parquet_options().key_value_metadata.is_empty() {
                return Ok(Transformed::no(node));
            }
            let sink = ParquetSink::new(sink.config().clone(), sink.parquet_options().clone());
            Ok(Transformed::yes(Arc::new(DataSinkExec::new(
                exec.input().clone(),
                Arc::new(MetadataParquetSink(sink)),
                exec.sort_order().clone(),
            ))))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "keep_sink_metadata"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
