//! The scan of a scene table: an `ExecutionPlan` whose partitions are runs of
//! spatial blocks (strips of grid rows, aligned to the files' tiling and
//! shrunk to fit `block_bytes` with every date held). Each partition emits
//! rows ordered by (pixel, time) over a pixel range disjoint from the other
//! partitions', and declares so (range partitioning on `pixel`, sorted), so
//! `GROUP BY pixel` runs per partition, streaming, with no shuffle.
//!
//! A scan can also run scene-major ([`ScanOrder::SceneMajor`]): blocks are
//! tiles (or runs of tiles) of the files, and each block is read and emitted
//! a few scenes at a time, in time order, so only those scenes' pixels of a
//! block are in memory at once, in dense batches (every pixel of a strip a
//! row slot, with a row mask; nothing copied per row). Rows are then not
//! sorted by pixel; every row of a block still comes before the next
//! block's, which is what [`crate::tile_aggregate`] aggregates per block by
//! pixel offset.
//! A partition's reads run in its own task, on the runtime worker that
//! also aggregates its rows (`sceneql.read_on_workers`, the default): with
//! a partition per core, each core reads and aggregates its own blocks, as
//! separate processes would, and no read is handed to another thread. (A
//! hand-off per read let the kernel of the benchmark machine pack the
//! reader and the aggregator on one vCPU while the other idled;
//! BENCHMARKS.md.) Set false, each read runs on a blocking thread instead.
//! A scene-major partition that has read its blocks reads ahead for the
//! partitions still reading ([`steal`]), so partitions with more work (more
//! strips, or more scenes over their blocks) do not keep a core idle.

pub mod batch;
pub mod carry;
pub mod filter;
pub mod read;
pub mod shard;
pub mod shared;
pub mod steal;
mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, SplitPoint};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr, PhysicalSortExpr,
    RangePartitioning,
};
use datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::grid::Window;
use crate::model::{Column, SceneArchive};
use crate::progress;
use crate::settings::SceneqlOptions;
use batch::BlockBatches;
use carry::TileCarry;
use filter::ScanFilter;
use shared::PerExecution;
use steal::{ReadBoard, Unit};
use units::Execution;

/// The order a scan emits its rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ScanOrder {
    /// Per block, by (pixel, time): all dates of a pixel together; a block
    /// holds every date of its pixels (bounded by `block_bytes`).
    #[default]
    PixelTime,
    /// Per block, a few scenes at a time (`scenes_per_read`, in time
    /// order); each such group's rows strip by strip of the block, and
    /// within a strip scene by scene (so each pixel's rows are still in
    /// time order); a block holds only those scenes at once. Batches are
    /// dense ([`BlockBatches::dense`]): every pixel of a strip is a row
    /// slot, and the schema's last column, [`batch::ROW_MASK`], says which
    /// slots are rows.
    SceneMajor,
}

/// Everything that defines a planned scan; serializable, so a scan planned
/// on a cluster's scheduler runs unchanged on its executors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanParts {
    pub archive: Arc<SceneArchive>,
    pub columns: Vec<Column>,
    pub scenes: Vec<usize>,
    pub bands: Vec<String>,
    pub window: Window,
    pub blocks: Vec<Window>,
    /// Block index ranges, one per partition.
    pub partitions: Vec<std::ops::Range<usize>>,
    pub batch_size: usize,
    /// The predicate the scan runs itself (the codec ships it as protobuf).
    #[serde(skip)]
    pub filter: Option<Arc<ScanFilter>>,
    #[serde(default)]
    pub order: ScanOrder,
    /// Scene-major: scenes read together per block (rows strip by strip
    /// within each such group, see [`BlockBatches::dense`]).
    #[serde(default = "one")]
    pub scenes_per_read: usize,
}

fn one() -> usize {
    1
}

/// The scan plan: which scenes, bands and blocks to read, and how blocks
/// are grouped into partitions.
#[derive(Debug)]
pub struct SceneScanExec {
    archive: Arc<SceneArchive>,
    columns: Vec<Column>,
    schema: SchemaRef,
    scenes: Vec<usize>,
    bands: Vec<String>,
    window: Window,
    blocks: Vec<Window>,
    /// Block index ranges, one per partition this plan executes.
    partitions: Vec<std::ops::Range<usize>>,
    /// Every partition of the scan as planned (`partitions` is a selection
    /// of these once a cluster's scheduler gives each task its own).
    all_partitions: Vec<std::ops::Range<usize>>,
    /// On a cluster: the partition tokens ([`shard`]) the scheduler slices.
    tokens: Option<Arc<dyn ExecutionPlan>>,
    batch_size: usize,
    filter: Option<Arc<ScanFilter>>,
    order: ScanOrder,
    scenes_per_read: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// What its partitions share while it runs: the tile carry and the
    /// board of reads ([`shared`]).
    execution: PerExecution<Execution>,
    /// Reads running at once, across this plan's partitions ([`read_slots`]).
    read_slots: Arc<tokio::sync::Semaphore>,
}

impl SceneScanExec {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        archive: Arc<SceneArchive>,
        columns: Vec<Column>,
        filter: Option<ScanFilter>,
        scenes: Vec<usize>,
        window: Window,
        target_partitions: usize,
        batch_size: usize,
        _limit: Option<usize>,
    ) -> Result<Self> {
        let window = window.intersect(&archive.grid.window());
        // Only scenes with pixels in the window, and only the bands asked for.
        let scenes: Vec<usize> = scenes
            .into_iter()
            .filter(|&i| {
                !archive.placements[i]
                    .footprint
                    .window
                    .intersect(&window)
                    .is_empty()
            })
            .collect();
        let mut bands = BTreeSet::new();
        let filter_columns = filter.iter().flat_map(|f| f.columns.iter());
        for c in columns.iter().chain(filter_columns) {
            match c {
                Column::Band(b) => {
                    bands.insert(b.clone());
                }
                Column::Common(_) => {
                    bands.extend(scenes.iter().filter_map(|&i| c.band_in(&archive.scenes[i])))
                }
                _ => {}
            }
        }
        let bands: Vec<String> = bands.into_iter().collect();
        let blocks = if scenes.is_empty() {
            Vec::new()
        } else {
            plan_blocks(&archive, &scenes, &bands, window)
        };
        let n = blocks.len().min(target_partitions.max(1)).max(1);
        let partitions: Vec<_> = (0..n)
            .map(|p| (p * blocks.len() / n)..((p + 1) * blocks.len() / n))
            .collect();
        Self::from_parts(ScanParts {
            archive,
            columns,
            scenes,
            bands,
            window,
            blocks,
            partitions,
            batch_size,
            filter: filter.map(Arc::new),
            order: ScanOrder::PixelTime,
            scenes_per_read: 1,
        })
    }

    /// This scan re-planned scene-major ([`ScanOrder::SceneMajor`]) over
    /// blocks of at most about `block_pixels` pixels (whole tiles of the
    /// files; full grid rows when they fit), in at most `target_partitions`
    /// partitions of whole block rows (so each still holds a pixel range).
    /// `None` on a cluster's sharded scan, whose partitions are fixed.
    pub fn scene_major(
        &self,
        block_pixels: usize,
        scenes_per_read: usize,
        target_partitions: usize,
    ) -> Result<Option<Self>> {
        if self.is_sharded() {
            return Ok(None);
        }
        let blocks = if self.scenes.is_empty() {
            Vec::new()
        } else {
            plan_tiles(
                &self.archive,
                &self.scenes,
                &self.bands,
                self.window,
                block_pixels,
            )
        };
        // Partitions of whole strips (runs of blocks starting on one row).
        let starts: Vec<usize> = (0..blocks.len())
            .filter(|&i| i == 0 || blocks[i].row != blocks[i - 1].row)
            .chain(std::iter::once(blocks.len()))
            .collect();
        let strips = starts.len() - 1;
        let n = strips.min(target_partitions.max(1)).max(1);
        let partitions: Vec<_> = (0..n)
            .map(|p| starts[p * strips / n]..starts[(p + 1) * strips / n])
            .collect();
        let mut parts = self.parts();
        parts.blocks = blocks;
        parts.partitions = partitions;
        parts.order = ScanOrder::SceneMajor;
        parts.scenes_per_read = scenes_per_read.max(1);
        Self::from_parts(parts).map(Some)
    }

    /// Rebuild a planned scan from its parts (as shipped to a cluster's
    /// executors): the same blocks in the same partitions.
    pub fn from_parts(parts: ScanParts) -> Result<Self> {
        let ScanParts {
            archive,
            columns,
            scenes,
            bands,
            window,
            blocks,
            partitions,
            batch_size,
            filter,
            order,
            scenes_per_read,
        } = parts;
        if let Some(bad) = partitions.iter().find(|p| p.end > blocks.len()) {
            return Err(DataFusionError::Internal(format!(
                "scan partition {bad:?} is outside its {} blocks",
                blocks.len()
            )));
        }
        // A scene-major scan's dense batches end with their row mask.
        let mask = (order == ScanOrder::SceneMajor).then(batch::row_mask_field);
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            columns
                .iter()
                .map(|c| archive.field(c))
                .chain(mask)
                .collect::<Vec<_>>(),
        ));
        let properties = Arc::new(Self::properties_for(
            &schema,
            &columns,
            &archive,
            &blocks,
            &partitions,
            order,
        )?);
        let read_slots = read_slots(partitions.len());
        Ok(SceneScanExec {
            archive,
            columns,
            schema,
            scenes,
            bands,
            window,
            blocks,
            all_partitions: partitions.clone(),
            partitions,
            tokens: None,
            batch_size,
            filter,
            order,
            scenes_per_read,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            execution: PerExecution::default(),
            read_slots,
        })
    }

    /// This scan running only the partitions `selected` (indices into all
    /// partitions), reading them from the partition-token plan `tokens`.
    fn select(&self, selected: &[usize], tokens: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let partitions = selected
            .iter()
            .map(|&i| {
                self.all_partitions.get(i).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "scan partition token {i} is outside its {} partitions",
                        self.all_partitions.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let properties = Arc::new(Self::properties_for(
            &self.schema,
            &self.columns,
            &self.archive,
            &self.blocks,
            &partitions,
            self.order,
        )?);
        let read_slots = read_slots(partitions.len());
        Ok(SceneScanExec {
            archive: self.archive.clone(),
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            scenes: self.scenes.clone(),
            bands: self.bands.clone(),
            window: self.window,
            blocks: self.blocks.clone(),
            partitions,
            all_partitions: self.all_partitions.clone(),
            tokens: Some(tokens),
            batch_size: self.batch_size,
            filter: self.filter.clone(),
            order: self.order,
            scenes_per_read: self.scenes_per_read,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            execution: PerExecution::default(),
            read_slots,
        })
    }

    /// This scan with a partition-token child (see [`shard`]), so a
    /// cluster's scheduler can give each task its own partitions.
    pub fn sharded(&self) -> Result<Self> {
        let all: Vec<usize> = (0..self.all_partitions.len()).collect();
        self.select(&all, shard::tokens(self.all_partitions.len())?)
    }

    pub fn is_sharded(&self) -> bool {
        self.tokens.is_some()
    }

    /// Rebuild over new children: none, or the partition tokens left after a
    /// scheduler kept some partitions for a task.
    pub fn rebuild(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [] => Ok(self),
            [tokens] => {
                let selected = shard::token_ids(tokens)?;
                Ok(Arc::new(self.select(&selected, tokens.clone())?))
            }
            _ => Err(DataFusionError::Internal(
                "SceneScanExec has at most one child (its partition tokens)".into(),
            )),
        }
    }

    /// The parts [`SceneScanExec::from_parts`] rebuilds this scan from.
    pub fn parts(&self) -> ScanParts {
        ScanParts {
            archive: self.archive.clone(),
            columns: self.columns.clone(),
            scenes: self.scenes.clone(),
            bands: self.bands.clone(),
            window: self.window,
            blocks: self.blocks.clone(),
            partitions: self.all_partitions.clone(),
            batch_size: self.batch_size,
            filter: self.filter.clone(),
            order: self.order,
            scenes_per_read: self.scenes_per_read,
        }
    }

    fn properties_for(
        schema: &SchemaRef,
        columns: &[Column],
        archive: &SceneArchive,
        blocks: &[Window],
        partitions: &[std::ops::Range<usize>],
        order: ScanOrder,
    ) -> Result<PlanProperties> {
        let has_pixel = columns.contains(&Column::Pixel);
        let mut eq = EquivalenceProperties::new(schema.clone());
        let partitioning = if has_pixel {
            let pixel = PhysicalSortExpr::new(col("pixel", schema)?, SortOptions::default());
            let mut ordering = vec![pixel.clone()];
            if columns.contains(&Column::Time) {
                ordering.push(PhysicalSortExpr::new(
                    col("time", schema)?,
                    SortOptions::default(),
                ));
            }
            if order == ScanOrder::PixelTime {
                eq = EquivalenceProperties::new_with_orderings(schema.clone(), [ordering]);
            }
            let splits = range_splits(archive, blocks, partitions);
            let lex = LexOrdering::new([pixel])
                .ok_or_else(|| DataFusionError::Internal("empty ordering".into()))?;
            Partitioning::Range(RangePartitioning::try_new(lex, splits)?)
        } else {
            Partitioning::UnknownPartitioning(partitions.len())
        };
        Ok(PlanProperties::new(
            eq,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    pub fn archive(&self) -> &Arc<SceneArchive> {
        &self.archive
    }
    pub fn scenes(&self) -> &[usize] {
        &self.scenes
    }
    pub fn bands(&self) -> &[String] {
        &self.bands
    }
    pub fn blocks(&self) -> &[Window] {
        &self.blocks
    }
    pub fn filter(&self) -> Option<&ScanFilter> {
        self.filter.as_deref()
    }
    pub fn window(&self) -> Window {
        self.window
    }
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
    pub fn order(&self) -> ScanOrder {
        self.order
    }
    /// Where this plan's partitions split the pixel numbers (see
    /// [`range_splits`]).
    pub fn pixel_splits(&self) -> Vec<SplitPoint> {
        range_splits(&self.archive, &self.blocks, &self.partitions)
    }
    /// The blocks partition `partition` of this plan reads, in order.
    pub fn partition_blocks(&self, partition: usize) -> Result<&[Window]> {
        let range = self.partitions.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("SceneScanExec has no partition {partition}"))
        })?;
        Ok(&self.blocks[range])
    }
}

/// The first pixel number of every partition but the first: partitions
/// are runs of whole block rows, so each starts at its first block's row.
fn range_splits(
    archive: &SceneArchive,
    blocks: &[Window],
    partitions: &[std::ops::Range<usize>],
) -> Vec<SplitPoint> {
    let width = archive.grid.width as i64;
    partitions
        .iter()
        .skip(1)
        .map(|p| {
            let first_row = blocks.get(p.start).map(|b| b.row).unwrap_or(0);
            SplitPoint::new(vec![ScalarValue::Int64(Some(first_row * width))])
        })
        .collect()
}

/// A band's tile (width, height) for planning blocks: its file's block
/// shape when the file is tiled, else strips of 256 rows as wide as the
/// window read (`window_cols`).
fn tile_shape(band: &crate::archive::Band, window_cols: usize) -> (usize, usize) {
    match file_tile(band) {
        Some(tile) => tile,
        None => (window_cols, 256),
    }
}

/// The band's tile (width, height) when its file is tiled, not stripped.
fn file_tile(band: &crate::archive::Band) -> Option<(usize, usize)> {
    let (bw, bh) = band.meta.block;
    (bw < band.geom.width && bh > 1).then_some((bw, bh))
}

/// How many times `block_pixels` a file tile may hold and still be a
/// scene-major block of its own, rather than cut into strips.
const WHOLE_TILE_FACTOR: usize = 4;

/// Split `window` into blocks: strips of whole grid rows, as tall as the
/// files' tiles when that fits `block_bytes`, else halved until it does.
pub fn plan_blocks(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    window: Window,
) -> Vec<Window> {
    if window.is_empty() {
        return Vec::new();
    }
    // Most common tile height among the bands read (256 for stripped files).
    let mut heights: BTreeMap<usize, usize> = BTreeMap::new();
    let mut bytes_per_pixel = 0usize;
    for &i in scenes {
        for b in bands {
            if let Some(band) = archive.scenes[i].bands.get(b) {
                let (_, h) = tile_shape(band, window.cols);
                *heights.entry(h).or_default() += 1;
                // Values plus the validity bitmap (output rows are built
                // lazily, a batch at a time, so they are not held per block).
                bytes_per_pixel += band.meta.sample.bytes() + 1;
            }
        }
    }
    let tile = heights
        .into_iter()
        .max_by_key(|(h, n)| (*n, *h))
        .map(|(h, _)| h)
        .unwrap_or(256);
    let budget = archive.options.block_bytes();
    let mut h = tile;
    while h > 1 && h * window.cols * bytes_per_pixel > budget {
        h /= 2;
    }
    let mut blocks = Vec::new();
    let mut r = window.row;
    while r < window.row_end() {
        // Block boundaries on multiples of h in grid rows, so blocks follow the tiling.
        let end = ((r.div_euclid(h as i64) + 1) * h as i64).min(window.row_end());
        blocks.push(Window {
            row: r,
            col: window.col,
            rows: (end - r) as usize,
            cols: window.cols,
        });
        r = end;
    }
    blocks
}

/// Split `window` into scene-major blocks: tiles of the files (their most
/// common block shape among the bands read), whole tiles side by side up to
/// `block_pixels` (so a tile is decoded once per scene; one tile when a
/// tile alone is larger, up to four times `block_pixels`), as full grid
/// rows when a row of tiles fits. Strips of stripped files are 256 rows,
/// halved to fit. Blocks run row of blocks by row of blocks, left to right.
pub fn plan_tiles(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    window: Window,
    block_pixels: usize,
) -> Vec<Window> {
    if window.is_empty() {
        return Vec::new();
    }
    // (tile width, height, tiled file) -> bands of that shape.
    let mut shapes: BTreeMap<(usize, usize, bool), usize> = BTreeMap::new();
    for &i in scenes {
        for b in bands {
            if let Some(band) = archive.scenes[i].bands.get(b) {
                let shape = match file_tile(band) {
                    Some((w, h)) => (w, h, true),
                    None => (window.cols, 256, false),
                };
                *shapes.entry(shape).or_default() += 1;
            }
        }
    }
    let (tw, th, tiled) = shapes
        .into_iter()
        .max_by_key(|(shape, n)| (*n, *shape))
        .map(|(shape, _)| shape)
        .unwrap_or((window.cols, 256, false));
    let (tw, mut h) = (tw.max(1), th.max(1));
    let budget = block_pixels.max(1);
    // A file tile is decoded whole, so a block is at least one tile, up
    // to WHOLE_TILE_FACTOR times `block_pixels`: blocks cutting a tile's
    // rows are read one after another, each with every scene, and the
    // parts of its tiles a block keeps for the next (most of a tile, for
    // every file band of the archive) outgrow the carry, so each tile was
    // decoded again by every block it reaches (3.2 times the bytes for
    // 1024 x 1024 tiles under the default 256 Ki; BENCHMARKS.md). Strips
    // of stripped files are cut freely (their real strips are a few rows).
    let whole_tiles = tiled && tw * h <= WHOLE_TILE_FACTOR.saturating_mul(budget);
    while !whole_tiles && h > 1 && h * tw > budget {
        h /= 2;
    }
    // Whole rows of the window when they fit, else as many tiles as fit.
    let full = h * window.cols <= budget;
    let w = if full {
        window.cols
    } else {
        (budget / (h * tw)).max(1) * tw
    };
    let mut blocks = Vec::new();
    let mut r = window.row;
    while r < window.row_end() {
        let r_end = ((r.div_euclid(h as i64) + 1) * h as i64).min(window.row_end());
        let mut c = window.col;
        while c < window.col_end() {
            // Block edges on multiples of the block width in grid columns.
            let c_end = if full {
                window.col_end()
            } else {
                ((c.div_euclid(w as i64) + 1) * w as i64).min(window.col_end())
            };
            blocks.push(Window {
                row: r,
                col: c,
                rows: (r_end - r) as usize,
                cols: (c_end - c) as usize,
            });
            c = c_end;
        }
        r = r_end;
    }
    blocks
}

impl DisplayAs for SceneScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "SceneScanExec: location={}, scenes={}/{}, bands=[{}], window=rows {}..{} cols {}..{}, blocks={}, partitions={}",
                    self.archive.location,
                    self.scenes.len(),
                    self.archive.scenes.len(),
                    self.bands.join(", "),
                    self.window.row,
                    self.window.row_end(),
                    self.window.col,
                    self.window.col_end(),
                    self.blocks.len(),
                    self.partitions.len()
                )?;
                if self.order == ScanOrder::SceneMajor {
                    write!(
                        f,
                        ", order=scene-major, scenes_per_read={}",
                        self.scenes_per_read
                    )?;
                }
                match &self.filter {
                    Some(filter) => write!(f, ", filter={filter}"),
                    None => Ok(()),
                }
            }
            DisplayFormatType::TreeRender => write!(
                f,
                "scenes={}\nblocks={}",
                self.scenes.len(),
                self.blocks.len()
            ),
        }
    }
}

impl ExecutionPlan for SceneScanExec {
    fn name(&self) -> &'static str {
        "SceneScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.tokens.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.rebuild(children)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.rebuild(children)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let range = self.partitions.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("SceneScanExec has no partition {partition}"))
        })?;
        // What each read covers: a block with all its scenes, or (scene-major)
        // a block with a few scenes, the scenes of a block in time order.
        let all_scenes = Arc::new(self.scenes.clone());
        let unit = |i: usize, scenes: Arc<Vec<usize>>, block_done: bool| Unit {
            block: i,
            window: self.blocks[i],
            scenes,
            block_done,
        };
        let units: Vec<Unit> = match self.order {
            ScanOrder::PixelTime => range
                .clone()
                .map(|i| unit(i, all_scenes.clone(), true))
                .collect(),
            ScanOrder::SceneMajor => range
                .clone()
                .flat_map(|i| {
                    let b = &self.blocks[i];
                    let covering: Vec<usize> = self
                        .scenes
                        .iter()
                        .copied()
                        .filter(|&s| {
                            !self.archive.placements[s]
                                .footprint
                                .window
                                .intersect(b)
                                .is_empty()
                        })
                        .collect();
                    let groups: Vec<&[usize]> =
                        covering.chunks(self.scenes_per_read.max(1)).collect();
                    let reads = groups.len();
                    groups
                        .into_iter()
                        .enumerate()
                        .map(|(k, group)| unit(i, Arc::new(group.to_vec()), k + 1 == reads))
                        .collect::<Vec<_>>()
                })
                .collect(),
        };
        progress::add_total(units.len());
        let m = ScanMetrics::new(&self.metrics, partition);
        let columns = self.columns.clone();
        let schema = self.schema.clone();
        let batch_size = context
            .session_config()
            .batch_size()
            .min(self.batch_size.max(1));
        let scene_ids = self.archive.scene_ids();
        let sensor_ids: ArrayRef = Arc::new(StringArray::from(self.archive.sensors.clone()));
        let order = self.order;
        // Scene-major: strips of this many pixels, so a read's batches over
        // one strip (one per scene) hold about `batch_size` rows in all.
        let strip = (batch_size / self.scenes_per_read.max(1)).max(1);
        // Some band is in an object store: its units are read by
        // [`units::StoreUnits`], through a carry that never waits.
        let remote = read::has_remote_bands(&self.archive);
        let (execution, execution_use) =
            self.execution
                .take(partition, self.partitions.len(), || Execution {
                    carry: {
                        let carry = TileCarry::new(self.blocks.clone(), &self.partitions);
                        if remote { carry.without_waits() } else { carry }
                    },
                    board: Arc::new(ReadBoard::default()),
                    recent: Arc::default(),
                });
        let options = SceneqlOptions::of(context.session_config().options());
        // Reads taken over at the end ([`steal`]): scene-major units only,
        // whose results are a few scenes of a block (a pixel-major unit is
        // a whole block with every date).
        // (Not for archives in object stores: their reads wait for their
        // tiles without holding a thread, [`units::StoreUnits`].)
        let steal = options.steal_reads && order == ScanOrder::SceneMajor && !remote;
        let board = execution.board.clone();
        let joined = board.join(partition, units.clone());
        let archive = self.archive.clone();
        let shared = units::Units {
            archive: self.archive.clone(),
            bands: self.bands.clone(),
            filter: self.filter.clone(),
            execution,
            slots: self.read_slots.clone(),
        };
        let (reader, after_last): (Arc<dyn units::UnitRead>, units::AfterLast) = if remote {
            (Arc::new(units::StoreUnits { units: shared }), None)
        } else {
            let files = Arc::new(units::FileUnits {
                units: shared,
                on_workers: options.read_on_workers,
            });
            // This partition has read its units: help the others.
            let help = {
                let (board, files) = (board.clone(), files.clone());
                move || {
                    tokio::task::spawn_blocking(move || {
                        steal::help(&board, partition, |u| files.read_now(u))
                    });
                }
            };
            (
                files,
                steal.then(|| Box::new(help) as Box<dyn FnOnce() + Send>),
            )
        };
        let reads = units::read_ahead(
            reader,
            units::PartitionReads {
                partition,
                units,
                board,
                taken_over: m.reads_taken_over.clone(),
                after_last,
            },
        );
        let stream = reads
            .map(move |r| {
                // Held by the stream: its end ends this partition's use of
                // the carry and its place on the board.
                let _ = (&execution_use, &joined);
                let batches = r.and_then(|(unit, (data, stats, passed))| {
                    m.record(&stats, unit.block_done);
                    let _t = m.filter_time.timer();
                    let b = BlockBatches::with_passed(
                        archive.clone(),
                        columns.clone(),
                        schema.clone(),
                        data,
                        passed,
                        batch_size,
                        scene_ids.clone(),
                        sensor_ids.clone(),
                    )?;
                    Ok(match order {
                        ScanOrder::PixelTime => b,
                        ScanOrder::SceneMajor => b.dense(strip),
                    })
                });
                match batches {
                    Ok(batches) => {
                        let baseline = m.baseline.clone();
                        futures::stream::iter(batches)
                            .map(move |b| {
                                if let Ok(b) = &b {
                                    baseline.record_output(scan_rows(b, order));
                                }
                                b
                            })
                            .boxed()
                    }
                    Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                }
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// The rows of a scan batch: a dense (scene-major) batch's row slots that
/// hold a row, otherwise all of them.
fn scan_rows(batch: &datafusion::arrow::array::RecordBatch, order: ScanOrder) -> usize {
    match order {
        ScanOrder::PixelTime => batch.num_rows(),
        ScanOrder::SceneMajor => batch
            .columns()
            .last()
            .and_then(|m| m.as_boolean_opt())
            .map_or(0, |m| m.true_count()),
    }
}

/// The reads a plan runs at once across its partitions: one per partition
/// (a partition per core). On blocking threads, a partition still reads its
/// next block while its rows are aggregated, and while another partition
/// is between reads it may run two, but two partitions' read-ahead does
/// not put four decoding threads on two cores; and when one partition has
/// finished, the last one reads ahead on the core it freed. On the workers
/// there are no more reads at once than workers anyway.
fn read_slots(partitions: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(partitions.max(1)))
}

/// Per-partition scan metrics, shown by `EXPLAIN ANALYZE`.
#[derive(Clone)]
struct ScanMetrics {
    files_opened: Count,
    scenes_read: Count,
    bytes_decoded: Count,
    bytes_carried: Count,
    blocks: Count,
    /// Reads of this partition's units that another partition did
    /// ([`steal`]).
    reads_taken_over: Count,
    /// Object-store requests, the bytes they fetched, their retries, and
    /// file headers found already read.
    requests: Count,
    bytes_fetched: Count,
    retries: Count,
    header_hits: Count,
    read_time: Time,
    /// Building a block's rows from the read: the footprints, the rows
    /// kept (the scan filter itself runs in the read, in `read_time`).
    filter_time: Time,
    baseline: BaselineMetrics,
}

impl ScanMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        ScanMetrics {
            files_opened: MetricBuilder::new(set).counter("files_opened", partition),
            scenes_read: MetricBuilder::new(set).counter("scenes_read", partition),
            bytes_decoded: MetricBuilder::new(set).counter("bytes_decoded", partition),
            bytes_carried: MetricBuilder::new(set).counter("bytes_carried", partition),
            blocks: MetricBuilder::new(set).counter("blocks", partition),
            reads_taken_over: MetricBuilder::new(set).counter("reads_taken_over", partition),
            requests: MetricBuilder::new(set).counter("requests", partition),
            bytes_fetched: MetricBuilder::new(set).counter("bytes_fetched", partition),
            retries: MetricBuilder::new(set).counter("retries", partition),
            header_hits: MetricBuilder::new(set).counter("header_hits", partition),
            read_time: MetricBuilder::new(set).subset_time("read_time", partition),
            filter_time: MetricBuilder::new(set).subset_time("filter_time", partition),
            baseline: BaselineMetrics::new(set, partition),
        }
    }
    /// Count one read; `block_done` when it is a block's last.
    fn record(&self, s: &read::ReadStats, block_done: bool) {
        self.files_opened.add(s.files_opened);
        self.scenes_read.add(s.scenes_read);
        self.bytes_decoded.add(s.bytes_decoded);
        self.bytes_carried.add(s.bytes_carried);
        self.requests.add(s.requests);
        self.bytes_fetched.add(s.bytes_fetched);
        self.retries.add(s.retries);
        self.header_hits.add(s.header_hits);
        self.blocks.add(block_done as usize);
        self.read_time
            .add_duration(std::time::Duration::from_nanos(s.nanos));
    }
}
