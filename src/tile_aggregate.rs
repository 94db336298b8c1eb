//! `GROUP BY pixel` over a scene scan without hashing and without holding
//! every date of a block: [`TileAggregateExec`] aggregates a scene-major
//! scan ([`ScanOrder::SceneMajor`]) one block at a time. The scan's batches
//! are dense: one scene over a strip of consecutive pixel offsets, every
//! pixel a row slot, with a mask of the slots that are rows. A slot's group
//! is its pixel offset in the block, and the mask is the accumulators'
//! filter, so the accumulators (DataFusion `GroupsAccumulator`s, the same
//! ones `AggregateExec` would use) are fed without a hash table, without
//! numbering groups and without copying a row; when the scan moves to the
//! next block the block's groups are emitted, by pixel offset, those of
//! pixels that had no row left out, and dropped. Aggregate arguments are evaluated over every slot; where that
//! fails (or an argument is volatile), over the batch cut down to its rows,
//! so the result is always that of evaluating them on the rows alone.
//! Memory is one block's accumulator state plus one scene's pixels of it,
//! whatever the size of the grid.
//!
//! Each pixel's rows still arrive in time order (the scan reads a block's
//! scenes in time order), so order-dependent accumulators see what they see
//! under `AggregateExec`; aggregates with their own `ORDER BY`, `DISTINCT`,
//! or without a `GroupsAccumulator` are left to `AggregateExec`.
//!
//! [`TileAggregates`] is the physical optimizer rule that puts it in place
//! of an `AggregateExec` (`Single` or `SinglePartitioned`) grouping by the
//! scan's `pixel` (and optionally `row`, `col`, `x`, `y`) directly over a
//! scene scan. Its output is sorted by pixel only when blocks are whole grid
//! rows; if anything above needs an order the plan then lacks (the query's
//! own `ORDER BY` too: the rule runs while DataFusion still holds it as a
//! requirement, [`with_tile_aggregates`]), the rule leaves the plan as it
//! was.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::{SortOptions, filter_record_batch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Column as ColumnExpr;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr, PhysicalSortExpr,
    RangePartitioning,
};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::grid::{Grid, Window};
use crate::model::Column;
use crate::scan::batch::{ROW_MASK, coordinates};
use crate::scan::filter::true_bits;
use crate::scan::{ScanOrder, SceneScanExec};
use crate::settings::SceneqlOptions;

/// Aggregates a scene-major scan per block; see the module docs.
#[derive(Debug)]
pub struct TileAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    group_expr: Vec<(Arc<dyn PhysicalExpr>, String)>,
    /// What each partition's aggregation reads (shared with its streams).
    spec: Arc<Spec>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TileAggregateExec {
    /// The replacement of `agg`, if it groups by pixel directly over a scene
    /// scan with aggregates this operator runs (see the module docs).
    pub fn try_from_aggregate(
        agg: &AggregateExec,
        options: &SceneqlOptions,
        target_partitions: usize,
    ) -> Result<Option<Self>> {
        if !matches!(
            agg.mode(),
            AggregateMode::Single | AggregateMode::SinglePartitioned
        ) || agg.group_expr().has_grouping_set()
            || agg.group_expr().expr().is_empty()
            || agg.limit_options().is_some()
        {
            return Ok(None);
        }
        // The scan, as DataFusion leaves it: maybe wrapped to yield to the
        // async runtime now and then (kept so, around the new scan).
        let (scan, cooperative) = match agg.input().downcast_ref::<CooperativeExec>() {
            Some(c) => (c.input(), true),
            None => (agg.input(), false),
        };
        let Some(scan) = scan.downcast_ref::<SceneScanExec>() else {
            return Ok(None);
        };
        if scan.order() != ScanOrder::PixelTime {
            return Ok(None);
        }
        if group_columns(agg.group_expr().expr(), scan).is_none() {
            return Ok(None);
        }
        let supported = agg.aggr_expr().iter().all(|a| {
            a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty()
        });
        if !supported {
            return Ok(None);
        }
        let Some(scan) = scan.scene_major(
            options.block_pixels,
            options.scenes_per_read,
            target_partitions,
        )?
        else {
            return Ok(None);
        };
        let mut input: Arc<dyn ExecutionPlan> = Arc::new(scan);
        if cooperative {
            input = Arc::new(CooperativeExec::new(input));
        }
        Self::from_template(agg, input).map(Some)
    }

    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        group_expr: Vec<(Arc<dyn PhysicalExpr>, String)>,
        aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
        filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let scan = scan_of(&input)?;
        if scan.order() != ScanOrder::SceneMajor {
            return Err(DataFusionError::Internal(
                "TileAggregateExec needs a scene-major scan".into(),
            ));
        }
        let (groups, pixel_index) = group_columns(&group_expr, scan).ok_or_else(|| {
            DataFusionError::Internal(
                "TileAggregateExec groups by the scan's pixel and coordinate columns".into(),
            )
        })?;
        let properties = Arc::new(properties_for(&schema, &groups, scan)?);
        let mask_index = scan.schema().index_of(ROW_MASK).map_err(|_| {
            DataFusionError::Internal("a scene-major scan ends with its row mask".into())
        })?;
        let slots_ok = !aggr_expr
            .iter()
            .flat_map(|a| a.expressions())
            .chain(filter_expr.iter().flatten().cloned())
            .any(|e| is_volatile(&e));
        Ok(TileAggregateExec {
            input,
            group_expr,
            spec: Arc::new(Spec {
                groups,
                pixel_index,
                aggr_expr,
                filter_expr,
                schema,
                mask_index,
                slots_ok,
            }),
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The scan column of each group expression, if all are the scan's pixel
/// and coordinate columns and pixel is among them; with the index of
/// `pixel` in the scan's output.
fn group_columns(
    group_expr: &[(Arc<dyn PhysicalExpr>, String)],
    scan: &SceneScanExec,
) -> Option<(Vec<Column>, usize)> {
    let groups = group_expr
        .iter()
        .map(|(e, _)| {
            let c = e.downcast_ref::<ColumnExpr>()?;
            match scan.columns().get(c.index())? {
                col @ (Column::Pixel | Column::Row | Column::Col | Column::X | Column::Y) => {
                    Some(col.clone())
                }
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()?;
    let pixel_index = scan.columns().iter().position(|c| *c == Column::Pixel)?;
    groups
        .contains(&Column::Pixel)
        .then_some((groups, pixel_index))
}

impl TileAggregateExec {
    /// The `AggregateExec` this node stands for, over an empty input of the
    /// scan's schema: how a cluster's codec ships its expressions (as
    /// DataFusion protobuf).
    pub fn template(&self) -> Result<AggregateExec> {
        let schema = self.input.schema();
        AggregateExec::try_new(
            AggregateMode::Single,
            PhysicalGroupBy::new_single(self.group_expr.clone()),
            self.spec.aggr_expr.clone(),
            self.spec.filter_expr.clone(),
            Arc::new(EmptyExec::new(schema.clone())),
            schema,
        )
    }

    /// The node with `agg`'s expressions (the plan it replaces, or a
    /// [`TileAggregateExec::template`] as decoded) over `input`, a
    /// scene-major scan.
    pub fn from_template(agg: &AggregateExec, input: Arc<dyn ExecutionPlan>) -> Result<Self> {
        Self::try_new(
            input,
            agg.group_expr().expr().to_vec(),
            agg.aggr_expr().to_vec(),
            agg.filter_expr().to_vec(),
            agg.schema(),
        )
    }
}

/// The scene scan `plan` is (or wraps in a `CooperativeExec`).
fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Result<&SceneScanExec> {
    let inner = match plan.downcast_ref::<CooperativeExec>() {
        Some(c) => c.input(),
        None => plan,
    };
    inner.downcast_ref::<SceneScanExec>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "TileAggregateExec reads a scene scan, got {}",
            plan.name()
        ))
    })
}

/// Partitions: the scan's (disjoint pixel ranges); sorted by pixel when
/// every block is a run of whole window rows (blocks then follow pixel order).
fn properties_for(
    schema: &SchemaRef,
    groups: &[Column],
    scan: &SceneScanExec,
) -> Result<PlanProperties> {
    let pixel_at = groups
        .iter()
        .position(|c| *c == Column::Pixel)
        .ok_or_else(|| DataFusionError::Internal("TileAggregateExec groups by pixel".into()))?;
    let pixel = PhysicalSortExpr::new(
        Arc::new(ColumnExpr::new(schema.field(pixel_at).name(), pixel_at)),
        SortOptions::default(),
    );
    let partitions = scan.properties().output_partitioning().partition_count();
    let whole_rows = (0..partitions).all(|p| {
        scan.partition_blocks(p)
            .map(|b| b.iter().all(|w| w.cols == scan.window().cols))
            .unwrap_or(false)
    });
    let eq = if whole_rows {
        EquivalenceProperties::new_with_orderings(schema.clone(), [[pixel.clone()]])
    } else {
        EquivalenceProperties::new(schema.clone())
    };
    let splits = scan.pixel_splits();
    let lex = LexOrdering::new([pixel])
        .ok_or_else(|| DataFusionError::Internal("empty ordering".into()))?;
    Ok(PlanProperties::new(
        eq,
        Partitioning::Range(RangePartitioning::try_new(lex, splits)?),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

impl DisplayAs for TileAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let groups: Vec<String> = (0..self.spec.groups.len())
            .map(|i| self.spec.schema.field(i).name().clone())
            .collect();
        let aggr: Vec<&str> = self.spec.aggr_expr.iter().map(|a| a.name()).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "TileAggregateExec: gby=[{}], aggr=[{}]",
                groups.join(", "),
                aggr.join(", ")
            ),
            DisplayFormatType::TreeRender => {
                write!(f, "gby={}\naggr={}", groups.join(", "), aggr.join(", "))
            }
        }
    }
}

impl ExecutionPlan for TileAggregateExec {
    fn name(&self) -> &'static str {
        "TileAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut recursion = TreeNodeRecursion::Continue;
        for a in &self.spec.aggr_expr {
            for e in a.expressions() {
                recursion = f(&e)?;
                if recursion == TreeNodeRecursion::Stop {
                    return Ok(recursion);
                }
            }
        }
        for e in self.spec.filter_expr.iter().flatten() {
            recursion = f(e)?;
            if recursion == TreeNodeRecursion::Stop {
                return Ok(recursion);
            }
        }
        Ok(recursion)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("TileAggregateExec has one child".into()))?;
        Ok(Arc::new(TileAggregateExec::try_new(
            input,
            self.group_expr.clone(),
            self.spec.aggr_expr.clone(),
            self.spec.filter_expr.clone(),
            self.spec.schema.clone(),
        )?))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scan = scan_of(&self.input)?;
        let blocks = scan.partition_blocks(partition)?.to_vec();
        let grid = scan.archive().grid.clone();
        let input = self.input.execute(partition, context.clone())?;
        let state = BlockAggregation {
            spec: self.spec.clone(),
            batch_size: context.session_config().batch_size().max(1),
            grid,
            blocks,
            current: None,
            offsets: Vec::new(),
            metrics: TileMetrics::new(&self.metrics, partition),
            out: VecDeque::new(),
        };
        let stream = futures::stream::unfold(
            (input, state, false),
            |(mut input, mut state, mut finished)| async move {
                loop {
                    if let Some(b) = state.out.pop_front() {
                        return Some((Ok(b), (input, state, finished)));
                    }
                    if finished {
                        return None;
                    }
                    let step = match input.next().await {
                        Some(Ok(batch)) => state.push(&batch),
                        Some(Err(e)) => Err(e),
                        None => {
                            finished = true;
                            state.finish()
                        }
                    };
                    if let Err(e) = step {
                        // Nothing more after an error.
                        state.out.clear();
                        return Some((Err(e), (input, state, true)));
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.spec.schema.clone(),
            stream,
        )))
    }
}

/// What every partition's aggregation needs from the plan.
#[derive(Debug)]
struct Spec {
    /// Per group expression: the scan column it is (pixel, row, col, x, y).
    groups: Vec<Column>,
    /// The index of `pixel` in the scan's output.
    pixel_index: usize,
    aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The output schema.
    schema: SchemaRef,
    /// The index of the scan's row mask ([`ROW_MASK`]): its batches are
    /// dense, every pixel of a strip a row slot.
    mask_index: usize,
    /// True when the aggregates' expressions may be evaluated over a dense
    /// batch's every slot, rows or not (none is volatile); otherwise each
    /// batch is first cut down to its rows.
    slots_ok: bool,
}

/// The block being aggregated.
struct OpenBlock {
    /// Index into the partition's blocks.
    index: usize,
    window: Window,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The block's pixels that had a row (the groups that are output).
    rows: BlockRows,
    /// Scratch: the group indices of a batch cut down to its rows.
    indices: Vec<usize>,
}

struct BlockAggregation {
    spec: Arc<Spec>,
    batch_size: usize,
    grid: Grid,
    blocks: Vec<Window>,
    current: Option<OpenBlock>,
    /// 0, 1, 2, ...: a dense batch's group indices are the slice of this
    /// from its first pixel offset (at least the open block's pixels long).
    offsets: Vec<usize>,
    metrics: TileMetrics,
    out: VecDeque<RecordBatch>,
}

#[derive(Clone)]
struct TileMetrics {
    blocks: Count,
    emit_time: Time,
    baseline: BaselineMetrics,
}

impl TileMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        TileMetrics {
            blocks: MetricBuilder::new(set).counter("blocks", partition),
            emit_time: MetricBuilder::new(set).subset_time("emit_time", partition),
            baseline: BaselineMetrics::new(set, partition),
        }
    }
}

impl BlockAggregation {
    /// Aggregate one dense scan batch: the row slots of one scene over a
    /// strip of consecutive pixel offsets of one block, `ROW_MASK` true
    /// where the slot is a row. The mask is each accumulator's filter (with
    /// the aggregate's own FILTER), so nothing is copied per row; groups
    /// are the slots' pixel offsets.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let mask = batch
            .column(self.spec.mask_index)
            .as_boolean_opt()
            .ok_or_else(|| DataFusionError::Internal("the scan's row mask is boolean".into()))?
            .values()
            .clone();
        if mask.count_set_bits() == 0 {
            return Ok(());
        }
        let first = *self
            .pixels(batch)?
            .first()
            .ok_or_else(|| DataFusionError::Internal("a dense scan batch has row slots".into()))?;
        self.open_block_of(first)?;
        let compute = self.metrics.baseline.elapsed_compute().clone();
        let _compute = compute.timer();
        // The aggregates' arguments over every slot; where one cannot be
        // (an expression that fails on a slot that is not a row, say
        // `nir / red` with red 0 under a cloud), over the rows alone.
        let over_slots = match self.spec.slots_ok {
            true => self.arguments(batch).ok(),
            false => None,
        };
        let on_rows = over_slots.is_none();
        let values = match over_slots {
            Some(values) => values,
            None => {
                let rows = filter_record_batch(batch, &BooleanArray::new(mask.clone(), None))?;
                self.arguments(&rows)?
            }
        };
        let width = self.grid.width as i64;
        let open = self
            .current
            .as_mut()
            .ok_or_else(|| DataFusionError::Internal("no open block".into()))?;
        let offset = open.window.offset_of(first, width).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "scan row of pixel {first} is outside its block {:?}",
                open.window
            ))
        })?;
        open.rows.add(offset, &mask)?;
        let indices: &[usize] = match on_rows {
            // The groups of the rows alone, in order.
            true => {
                open.indices.clear();
                open.indices.extend(mask.set_indices().map(|i| offset + i));
                &open.indices
            }
            false => self
                .offsets
                .get(offset..offset + mask.len())
                .ok_or_else(|| DataFusionError::Internal("block offsets too short".into()))?,
        };
        let total = open.rows.len;
        for (acc, (values, filter)) in open.accumulators.iter_mut().zip(values) {
            let filter = filter.map(|f| filter_bits(&f)).transpose()?;
            // Always a filter: without one, DataFusion's null tracking
            // (`NullState`) takes every group below `total` as having had
            // a value, and here groups are pixel offsets, some of which
            // have no row yet (a pixel whose only values are NULL would
            // then sum to 0, not NULL).
            let filter = match (on_rows, filter) {
                (true, Some(f)) => f,
                (true, None) => BooleanBuffer::new_set(indices.len()),
                (false, Some(f)) => &mask & &f,
                (false, None) => mask.clone(),
            };
            let filter = BooleanArray::new(filter, None);
            acc.update_batch(&values, indices, Some(&filter), total)?;
        }
        Ok(())
    }

    /// Per aggregate, its argument values and FILTER over `batch`.
    #[allow(clippy::type_complexity)]
    fn arguments(&self, batch: &RecordBatch) -> Result<Vec<(Vec<ArrayRef>, Option<ArrayRef>)>> {
        let n = batch.num_rows();
        self.spec
            .aggr_expr
            .iter()
            .zip(&self.spec.filter_expr)
            .map(|(aggr, filter)| {
                let values = aggr
                    .expressions()
                    .iter()
                    .map(|e| e.evaluate(batch)?.into_array(n))
                    .collect::<Result<Vec<_>>>()?;
                let filter = filter
                    .as_ref()
                    .map(|f| f.evaluate(batch)?.into_array(n))
                    .transpose()?;
                Ok((values, filter))
            })
            .collect()
    }

    /// The batch's `pixel` values.
    fn pixels<'a>(&self, batch: &'a RecordBatch) -> Result<&'a [i64]> {
        Ok(batch
            .column(self.spec.pixel_index)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| DataFusionError::Internal("pixel is a BIGINT column".into()))?
            .values())
    }

    /// Make the block holding grid pixel `pixel` the open one, emitting the
    /// block before it.
    fn open_block_of(&mut self, pixel: i64) -> Result<()> {
        let width = self.grid.width as i64;
        let inside = |w: &Window| w.offset_of(pixel, width).is_some();
        if self.current.as_ref().is_some_and(|b| inside(&b.window)) {
            return Ok(());
        }
        let from = match self.current.take() {
            Some(open) => {
                let next = open.index + 1;
                self.emit(open)?;
                next
            }
            None => 0,
        };
        let index = (from..self.blocks.len())
            .find(|&i| inside(&self.blocks[i]))
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "scan row of pixel {pixel} is outside the partition's remaining blocks"
                ))
            })?;
        let open = self.open(index)?;
        if self.offsets.len() < open.rows.len {
            self.offsets = (0..open.rows.len).collect();
        }
        self.current = Some(open);
        Ok(())
    }

    fn open(&self, index: usize) -> Result<OpenBlock> {
        let window = self.blocks[index];
        let accumulators = self
            .spec
            .aggr_expr
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<Vec<_>>>()?;
        Ok(OpenBlock {
            index,
            window,
            accumulators,
            rows: BlockRows::new(window.rows * window.cols),
            indices: Vec::new(),
        })
    }

    fn finish(&mut self) -> Result<()> {
        match self.current.take() {
            Some(open) => self.emit(open),
            None => Ok(()),
        }
    }

    /// The block's groups that had rows, by pixel offset, in batches.
    fn emit(&mut self, mut open: OpenBlock) -> Result<()> {
        let _t = self.metrics.emit_time.timer();
        let _compute = self.metrics.baseline.elapsed_compute().timer();
        let _span = tracing::info_span!(
            "tile_aggregate_emit",
            row = open.window.row,
            col = open.window.col
        )
        .entered();
        self.metrics.blocks.add(1);
        let win = open.window;
        let pixels = open.rows.len;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.schema.fields().len());
        for c in &self.spec.groups {
            let a = coordinates(c, &self.grid, &win, 0..pixels).ok_or_else(|| {
                DataFusionError::Internal(format!("TileAggregateExec cannot group by {c:?}"))
            })?;
            columns.push(a);
        }
        for acc in open.accumulators.iter_mut() {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        // One group per pixel offset, in offset order; out go those of the
        // pixels that had a row.
        let batch = RecordBatch::try_new(self.spec.schema.clone(), columns)?;
        let rows = open.rows.finish();
        let batch = match rows.count_set_bits() == pixels {
            true => batch,
            false => filter_record_batch(&batch, &BooleanArray::new(rows, None))?,
        };
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = self.batch_size.min(batch.num_rows() - offset);
            let b = batch.slice(offset, n);
            self.metrics.baseline.record_output(n);
            self.out.push_back(b);
            offset += n;
        }
        Ok(())
    }
}

/// The pixel offsets of one block that have had a row: a bitmap, one bit
/// per offset, set from each dense batch's row mask at the batch's first
/// offset. Groups are pixel offsets, so a group with no row (a pixel
/// outside every footprint, or failing the scan's filter on every date) is
/// still one the accumulators hold; this says which groups are output.
struct BlockRows {
    words: Vec<u64>,
    /// The block's pixels.
    len: usize,
}

impl BlockRows {
    fn new(len: usize) -> Self {
        BlockRows {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Mark the set bits of `mask` as rows, its bit 0 at offset `first`.
    fn add(&mut self, first: usize, mask: &BooleanBuffer) -> Result<()> {
        if first + mask.len() > self.len {
            return Err(DataFusionError::Internal(format!(
                "dense scan batch of {} slots from offset {first} is outside its block of {}",
                mask.len(),
                self.len
            )));
        }
        let (word, shift) = (first / 64, first % 64);
        // Each 64-bit chunk of the mask (then its zero-padded remainder,
        // empty when the length is a multiple of 64) lands in one word, or
        // across two when `first` is not a multiple of 64; set bits all lie
        // below `self.len`, so the words they land in exist.
        for (k, bits) in mask.bit_chunks().iter_padded().enumerate() {
            if bits == 0 {
                continue;
            }
            self.words[word + k] |= bits << shift;
            if shift > 0 && bits >> (64 - shift) != 0 {
                self.words[word + k + 1] |= bits >> (64 - shift);
            }
        }
        Ok(())
    }

    fn finish(self) -> BooleanBuffer {
        BooleanBuffer::new(Buffer::from_vec(self.words), 0, self.len)
    }
}

/// The rows an aggregate's FILTER keeps: true and not NULL.
fn filter_bits(filter: &ArrayRef) -> Result<BooleanBuffer> {
    let f = filter
        .as_boolean_opt()
        .ok_or_else(|| DataFusionError::Internal("an aggregate FILTER is boolean".into()))?;
    Ok(true_bits(f))
}

/// Physical optimizer rule: `AggregateExec` grouping by pixel over a scene
/// scan becomes a [`TileAggregateExec`] over the same scan made scene-major
/// (unless `sceneql.tile_aggregate` is false). Kept only when every
/// operator's ordering and distribution needs still hold.
#[derive(Debug, Default)]
pub struct TileAggregates;

impl PhysicalOptimizerRule for TileAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = SceneqlOptions::of(config);
        if !options.tile_aggregate {
            return Ok(plan);
        }
        let target = config.execution.target_partitions;
        let rewritten = plan.clone().transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            match TileAggregateExec::try_from_aggregate(agg, &options, target)? {
                Some(tile) => Ok(Transformed::yes(Arc::new(tile) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })?;
        if !rewritten.transformed {
            return Ok(plan);
        }
        // An order or distribution some operator needs and the rewritten
        // plan no longer gives (e.g. a Parquet sink keeping the pixel order
        // over blocks narrower than the grid): keep DataFusion's plan.
        match SanityCheckPlan::new().optimize(rewritten.data.clone(), config) {
            Ok(_) => Ok(rewritten.data),
            Err(_) => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "tile_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A session's physical optimizer `rules` with [`TileAggregates`] placed
/// before DataFusion's `OutputRequirements` removal (the last rule of that
/// name), or appended where there is none. Until that rule, the query's
/// `ORDER BY` is still a requirement at the plan's root (an
/// `OutputRequirementExec`) even where DataFusion dropped the sort because
/// the pixel-sorted aggregation already gave the order; after it, nothing
/// would tell a per-block aggregation (unsorted over blocks narrower than
/// the grid) in one partition that its order was needed.
pub fn with_tile_aggregates(
    rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>],
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = rules.to_vec();
    let at = rules
        .iter()
        .rposition(|r| r.name() == "OutputRequirements")
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(TileAggregates));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_rows_are_the_union_of_the_masks_at_their_offsets() {
        let block = Window {
            row: 2,
            col: 3,
            rows: 2,
            cols: 4,
        };
        let width = 10;
        // Grid pixels 26, 23, 36, 33 are block offsets 3, 0, 7, 4 (grid
        // rows 2 and 3, columns 3..7); 27 and 13 are outside.
        let offsets: Vec<_> = [26, 23, 36, 33, 27, 13]
            .iter()
            .map(|&p| block.offset_of(p, width))
            .collect();
        assert_eq!(
            offsets,
            vec![Some(3), Some(0), Some(7), Some(4), None, None]
        );
        // Masks of many lengths at offsets on and off word boundaries (some
        // ending at the block's end, a multiple of 64), against a plain
        // vector of flags.
        let len = 320;
        let mut rows = BlockRows::new(len);
        let mut expected = vec![false; len];
        let mut seed = 12345u64;
        for (first, n) in [
            (0, 1),
            (3, 64),
            (63, 2),
            (64, 64),
            (70, 130),
            (1, 299),
            (319, 1),
            (300, 20),
            (256, 64),
            (0, 320),
        ] {
            let bits: Vec<bool> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33).is_multiple_of(3)
                })
                .collect();
            for (i, &b) in bits.iter().enumerate() {
                expected[first + i] |= b;
            }
            // A mask that is a slice of a longer buffer (bit offset 5).
            let mut padded = vec![true; 5];
            padded.extend(&bits);
            let mask = BooleanBuffer::from(padded).slice(5, n);
            rows.add(first, &mask).unwrap();
        }
        // Past the block's end.
        assert!(rows.add(319, &BooleanBuffer::new_set(2)).is_err());
        let got = rows.finish();
        assert_eq!(got.len(), len);
        assert_eq!(got.iter().collect::<Vec<_>>(), expected);
        assert!(expected.iter().any(|&b| !b) && expected.iter().any(|&b| b));
    }
}
