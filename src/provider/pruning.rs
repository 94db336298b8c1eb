//! Using the query's filters before any pixel is read: predicates on `time`,
//! `scene`, `sensor` and `cloud_cover` choose whole scenes, exactly (they are evaluated on
//! one row per scene, so no row is filtered after); predicates on `pixel`,
//! `row`, `col`, `x` and `y` shrink the window read, through DataFusion's
//! `PruningPredicate` over min/max statistics of coarse cells of the grid,
//! so any expression DataFusion can bound (comparisons, BETWEEN, IN,
//! AND/OR, ...) prunes, and the rows are filtered after.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{Int32Type, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column as DfColumn, DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion_pruning::PruningPredicateBuilder;

use super::SceneArchive;
use crate::grid::Window;

const SCENE_COLUMNS: &[&str] = &["time", "scene", "sensor", "cloud_cover"];
const PIXEL_COLUMNS: &[&str] = &["pixel", "row", "col", "x", "y"];

fn only_uses(e: &Expr, names: &[&str]) -> bool {
    let cols = e.column_refs();
    !cols.is_empty() && cols.iter().all(|c| names.contains(&c.name.as_str()))
}

/// True when a filter can prune scenes or windows.
pub fn is_prunable(e: &Expr) -> bool {
    only_uses(e, SCENE_COLUMNS) || only_uses(e, PIXEL_COLUMNS)
}

/// True when a filter is over `time`, `scene`, `sensor` and `cloud_cover`
/// only (and not
/// volatile): it is decided per scene, exactly ([`prune_scenes`]), since
/// every row of a scene has the same values of them.
pub fn is_per_scene(e: &Expr) -> bool {
    only_uses(e, SCENE_COLUMNS) && !e.is_volatile()
}

/// Evaluate the filters over `names` on the containers of `stats`.
fn prune(
    filters: &[Expr],
    names: &[&str],
    schema: &SchemaRef,
    state: &dyn Session,
    stats: &dyn PruningStatistics,
) -> Result<Option<Vec<bool>>> {
    let Some(expr) = conjunction(filters.iter().filter(|f| only_uses(f, names)).cloned()) else {
        return Ok(None);
    };
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let physical = state.create_physical_expr(expr, &df_schema)?;
    let Some(predicate) = PruningPredicateBuilder::new()
        .with_file_schema(schema.clone())
        .build(physical)
    else {
        return Ok(None);
    };
    Ok(Some(predicate.prune(stats)?))
}

/// Indices of the scenes whose rows pass the filters over the scene
/// columns ([`is_per_scene`]): the filters are evaluated on one row
/// per scene, so the choice is exact and the rows need no filtering after.
pub fn prune_scenes(
    archive: &SceneArchive,
    schema: &SchemaRef,
    filters: &[Expr],
    state: &dyn Session,
) -> Result<Vec<usize>> {
    let all = (0..archive.scenes.len()).collect();
    let Some(expr) = conjunction(filters.iter().filter(|f| is_per_scene(f)).cloned()) else {
        return Ok(all);
    };
    let fields: Vec<_> = SCENE_COLUMNS
        .iter()
        .filter_map(|c| schema.field_with_name(c).ok().cloned())
        .collect();
    let columns: Vec<ArrayRef> = SCENE_COLUMNS
        .iter()
        .filter_map(|c| scene_column(archive, c))
        .collect();
    let scene_schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(scene_schema.clone(), columns)?;
    let df_schema = DFSchema::try_from(scene_schema.as_ref().clone())?;
    let keep = state
        .create_physical_expr(expr, &df_schema)?
        .evaluate(&batch)?
        .into_array(batch.num_rows())?;
    let keep = keep
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(
                "a filter on time, scene or sensor is not a boolean".into(),
            )
        })?;
    Ok((0..keep.len())
        .filter(|&i| keep.is_valid(i) && keep.value(i))
        .collect())
}

/// The window of grid pixels the filters may keep.
pub fn prune_window(
    archive: &SceneArchive,
    schema: &SchemaRef,
    filters: &[Expr],
    state: &dyn Session,
) -> Result<Window> {
    let grid = &archive.grid;
    let cell = grid.width.max(grid.height).div_ceil(256).max(1);
    let cells = CellStats::new(archive, cell);
    let Some(keep) = prune(filters, PIXEL_COLUMNS, schema, state, &cells)? else {
        return Ok(grid.window());
    };
    let (mut r0, mut c0, mut r1, mut c1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    for (i, k) in keep.iter().enumerate() {
        if *k {
            let w = cells.cell(i);
            r0 = r0.min(w.row);
            c0 = c0.min(w.col);
            r1 = r1.max(w.row_end());
            c1 = c1.max(w.col_end());
        }
    }
    if r0 > r1 {
        return Ok(Window {
            row: 0,
            col: 0,
            rows: 0,
            cols: 0,
        });
    }
    Ok(Window {
        row: r0,
        col: c0,
        rows: (r1 - r0) as usize,
        cols: (c1 - c0) as usize,
    })
}

fn dictionary(keys: impl Iterator<Item = i32>, values: ArrayRef) -> ArrayRef {
    Arc::new(DictionaryArray::<Int32Type>::new(
        Int32Array::from_iter_values(keys),
        values,
    ))
}

/// The values of `time`, `scene`, `sensor` or `cloud_cover`, one per scene.
fn scene_column(a: &SceneArchive, name: &str) -> Option<ArrayRef> {
    match name {
        "time" => Some(Arc::new(TimestampNanosecondArray::from_iter_values(
            a.scenes.iter().map(|s| s.time_ns),
        ))),
        "scene" => Some(dictionary(0..a.scenes.len() as i32, a.scene_ids())),
        "sensor" => Some(dictionary(
            a.sensor_keys.iter().copied(),
            Arc::new(StringArray::from(a.sensors.clone())),
        )),
        "cloud_cover" => Some(Arc::new(Float64Array::from_iter(
            a.scenes.iter().map(|s| s.cloud_cover),
        ))),
        _ => None,
    }
}

/// Square cells of the grid as containers, with min/max of pixel, row, col, x, y.
struct CellStats<'a> {
    archive: &'a SceneArchive,
    cell: usize,
    cols: usize,
    count: usize,
}

impl<'a> CellStats<'a> {
    fn new(archive: &'a SceneArchive, cell: usize) -> Self {
        let cols = archive.grid.width.div_ceil(cell);
        let rows = archive.grid.height.div_ceil(cell);
        CellStats {
            archive,
            cell,
            cols,
            count: cols * rows,
        }
    }
    fn cell(&self, i: usize) -> Window {
        let (r, c) = (
            (i / self.cols * self.cell) as i64,
            (i % self.cols * self.cell) as i64,
        );
        Window {
            row: r,
            col: c,
            rows: self.cell,
            cols: self.cell,
        }
        .intersect(&self.archive.grid.window())
    }
    fn stat(&self, column: &str, max: bool) -> Option<ArrayRef> {
        let g = &self.archive.grid;
        let w = g.width as i64;
        let cells = (0..self.count).map(|i| self.cell(i));
        // Last row / column of a cell (inclusive).
        let last = |v: &Window| (v.row_end() - 1, v.col_end() - 1);
        Some(match column {
            "row" => Arc::new(Int32Array::from_iter_values(
                cells.map(|v| if max { last(&v).0 } else { v.row } as i32),
            )),
            "col" => Arc::new(Int32Array::from_iter_values(
                cells.map(|v| if max { last(&v).1 } else { v.col } as i32),
            )),
            "pixel" => Arc::new(Int64Array::from_iter_values(cells.map(|v| {
                if max {
                    let (r, c) = last(&v);
                    r * w + c
                } else {
                    v.row * w + v.col
                }
            }))),
            "x" => Arc::new(Float64Array::from_iter_values(cells.map(|v| {
                let (a, b) = (g.x(v.col), g.x(last(&v).1));
                if max { a.max(b) } else { a.min(b) }
            }))),
            "y" => Arc::new(Float64Array::from_iter_values(cells.map(|v| {
                let (a, b) = (g.y(v.row), g.y(last(&v).0));
                if max { a.max(b) } else { a.min(b) }
            }))),
            _ => return None,
        })
    }
}

impl PruningStatistics for CellStats<'_> {
    fn min_values(&self, column: &DfColumn) -> Option<ArrayRef> {
        self.stat(&column.name, false)
    }
    fn max_values(&self, column: &DfColumn) -> Option<ArrayRef> {
        self.stat(&column.name, true)
    }
    fn num_containers(&self) -> usize {
        self.count
    }
    fn null_counts(&self, column: &DfColumn) -> Option<ArrayRef> {
        PIXEL_COLUMNS
            .contains(&column.name.as_str())
            .then(|| Arc::new(UInt64Array::from(vec![0; self.count])) as ArrayRef)
    }
    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }
    fn contained(&self, _: &DfColumn, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
