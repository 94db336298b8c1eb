//! Turning a block into Arrow batches, rows ordered by (pixel, time): for
//! each pixel of the block in row-major order, one row per scene whose
//! footprint holds it and that passes the scan's filter ([`super::filter`]),
//! scenes in time order. Batches are built lazily (one per call), so only
//! the block's decoded bands are held in memory.
//!
//! Rows are addressed as (block scene, pixel offset) pairs, and rows that
//! fail the filter are never built at all. Where a batch's rows come from a
//! single scene, band columns are copied run by run (each run of set bits
//! of the scene's row mask, values and validity, whole); otherwise by typed
//! gathers (one tight loop per column, no per-row dispatch).
//!
//! A scene-major scan instead yields dense batches ([`BlockBatches::dense`]):
//! one per (strip of block pixels, scene), every pixel of the strip a row
//! slot, band columns zero-copy slices of the decoded block, and a last
//! column ([`ROW_MASK`]) saying which slots are rows. Nothing is copied per
//! row; [`crate::tile_aggregate`], the only reader of such a scan, feeds the
//! mask to its accumulators as their filter.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, BooleanBufferBuilder,
    DictionaryArray, Float64Array, Int32Array, Int64Array, PrimitiveArray, RecordBatch,
    RecordBatchOptions, TimestampNanosecondArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::util::bit_iterator::{BitIndexIterator, BitSliceIterator};
use datafusion::arrow::util::bit_util::get_bit;
use datafusion::error::{DataFusionError, Result};

use super::filter::ScanFilter;
use super::read::band_sources;
use super::read::{BlockData, spans_mask};
use crate::grid::{Grid, Window};
use crate::model::{Column, SceneArchive};

/// The last column of a dense batch ([`BlockBatches::dense`]): true where
/// the slot is a row.
pub const ROW_MASK: &str = "__sceneql_row";

/// The field of [`ROW_MASK`].
pub fn row_mask_field() -> Field {
    Field::new(ROW_MASK, DataType::Boolean, false)
}

/// Lazily yields the batches of one block.
pub struct BlockBatches {
    archive: Arc<SceneArchive>,
    columns: Vec<Column>,
    schema: SchemaRef,
    data: BlockData,
    /// Per output column, per block scene: the values to gather from
    /// (None for fixed columns computed from coordinates).
    sources: Vec<Option<Vec<ArrayRef>>>,
    /// Per block scene, which block pixels give a row: inside the footprint
    /// and passing the scan filter.
    rows: Vec<BooleanBuffer>,
    scene_ids: ArrayRef,
    sensor_ids: ArrayRef,
    batch_size: usize,
    /// Dense batches over strips of this many block pixels, scene by scene
    /// within a strip (see [`BlockBatches::dense`]); `None`: rows by
    /// (pixel, time).
    strip: Option<usize>,
    /// Next pixel offset in the block (dense: the current strip's start).
    next: usize,
    /// Dense: the next block scene of the current strip.
    next_scene: usize,
    /// Dense: the current strip's coordinate columns, per output column
    /// (shared by its scenes' batches).
    strip_coordinates: Vec<Option<ArrayRef>>,
    /// When the block has one scene: the pixel range whose row mask's set
    /// bits are the last batch's rows, so band columns are copied run by
    /// run instead of gathered row by row (None: rows interleave scenes
    /// pixel by pixel).
    run: Option<(usize, usize)>,
}

impl BlockBatches {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        archive: Arc<SceneArchive>,
        columns: Vec<Column>,
        schema: SchemaRef,
        data: BlockData,
        filter: Option<&ScanFilter>,
        batch_size: usize,
        scene_ids: ArrayRef,
        sensor_ids: ArrayRef,
    ) -> Result<Self> {
        let passed = filter.map(|f| f.evaluate(&archive, &data)).transpose()?;
        Self::with_passed(
            archive, columns, schema, data, passed, batch_size, scene_ids, sensor_ids,
        )
    }

    /// [`BlockBatches::try_new`] with the scan filter's result per block
    /// scene already computed (`None`: no filter).
    #[allow(clippy::too_many_arguments)]
    pub fn with_passed(
        archive: Arc<SceneArchive>,
        columns: Vec<Column>,
        schema: SchemaRef,
        data: BlockData,
        passed: Option<Vec<BooleanBuffer>>,
        batch_size: usize,
        scene_ids: ArrayRef,
        sensor_ids: ArrayRef,
    ) -> Result<Self> {
        let sources = columns
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| band_sources(&archive, &data, c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = footprint_rows(&data);
        if let Some(passed) = passed {
            if passed.len() != rows.len() {
                return Err(DataFusionError::Internal(
                    "scan filter result per block scene has the wrong length".into(),
                ));
            }
            for (r, p) in rows.iter_mut().zip(passed) {
                *r = &*r & &p;
            }
        }
        Ok(BlockBatches {
            archive,
            columns,
            schema,
            data,
            sources,
            rows,
            scene_ids,
            sensor_ids,
            batch_size: batch_size.max(1),
            strip: None,
            next: 0,
            next_scene: 0,
            strip_coordinates: Vec::new(),
            run: None,
        })
    }

    /// Dense batches instead of rows by (pixel, time): the block's pixels
    /// are cut into strips of `strip` pixels, and each strip yields one
    /// batch per block scene (scenes in time order) that has a row in it.
    /// Every pixel of the strip is a row slot: band columns are slices of
    /// the scene's decoded values, and a last boolean column ([`ROW_MASK`],
    /// which `schema` must end with) is true where the slot is a row
    /// (inside the footprint and passing the scan filter). Each pixel's
    /// rows still come in time order, and an aggregation updates one
    /// strip's groups for every scene of the read while that state is in
    /// cache.
    pub fn dense(mut self, strip: usize) -> Self {
        self.strip = Some(strip.max(1));
        self
    }

    /// The next dense batch (see [`BlockBatches::dense`]).
    fn next_dense(&mut self, strip: usize) -> Option<Result<RecordBatch>> {
        let len = self.data.window.rows * self.data.window.cols;
        while self.next < len {
            let (p, n) = (self.next, strip.min(len - self.next));
            while self.next_scene < self.rows.len() {
                let k = self.next_scene;
                self.next_scene += 1;
                let mask = self.rows[k].slice(p, n);
                if mask.count_set_bits() > 0 {
                    let _span = tracing::info_span!("batch", rows = n).entered();
                    return Some(self.build_dense(k, p, mask));
                }
            }
            self.next += n;
            self.next_scene = 0;
            self.strip_coordinates.clear();
        }
        None
    }

    /// The dense batch of block scene `k` over the strip of `mask.len()`
    /// pixels from offset `p`.
    fn build_dense(&mut self, k: usize, p: usize, mask: BooleanBuffer) -> Result<RecordBatch> {
        let (win, n) = (self.data.window, mask.len());
        if self.strip_coordinates.is_empty() {
            let grid = &self.archive.grid;
            self.strip_coordinates = self
                .columns
                .iter()
                .map(|c| coordinates(c, grid, &win, p..p + n))
                .collect();
        }
        let scene = self.data.scenes[k].scene;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        for ((c, source), coords) in self
            .columns
            .iter()
            .zip(&self.sources)
            .zip(&self.strip_coordinates)
        {
            let a: ArrayRef = match (c, coords, source) {
                (_, Some(a), _) => a.clone(),
                (Column::Band(_) | Column::Common(_), _, Some(sources)) => sources[k].slice(p, n),
                (Column::Time, _, _) => Arc::new(TimestampNanosecondArray::from_value(
                    self.archive.scenes[scene].time_ns,
                    n,
                )),
                (Column::Scene, _, _) => Arc::new(DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from_value(scene as i32, n),
                    self.scene_ids.clone(),
                )?),
                (Column::Sensor, _, _) => Arc::new(DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from_value(self.archive.sensor_keys[scene], n),
                    self.sensor_ids.clone(),
                )?),
                (Column::CloudCover, _, _) => Arc::new(Float64Array::from(vec![
                    self.archive.scenes
                        [scene]
                        .cloud_cover;
                    n
                ])),
                (other, _, _) => {
                    return Err(DataFusionError::Internal(format!(
                        "dense scan batch: no values for column {other:?}"
                    )));
                }
            };
            arrays.push(a);
        }
        arrays.push(Arc::new(BooleanArray::new(mask, None)));
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// (block scene, pixel offset in block) of the next batch's rows.
    fn next_rows(&mut self) -> Vec<(u32, u32)> {
        let len = self.data.window.rows * self.data.window.cols;
        let mut out = Vec::with_capacity(self.batch_size + self.rows.len());
        // Bit slices of each scene's row mask, read word by word below.
        let masks: Vec<(&[u8], usize)> = self
            .rows
            .iter()
            .map(|b| (b.inner().as_slice(), b.offset()))
            .collect();
        let mut p = self.next;
        self.run = None;
        if let [(bits, off)] = masks[..] {
            // One scene: the set bits, in order.
            let start = p;
            for i in BitIndexIterator::new(bits, off + start, len - start) {
                if out.len() == self.batch_size {
                    break;
                }
                out.push((0, (start + i) as u32));
                p = start + i + 1;
            }
            if out.len() < self.batch_size {
                p = len;
            }
            self.next = p;
            self.run = Some((start, p));
            return out;
        }
        while p < len && out.len() < self.batch_size {
            for (k, &(bits, off)) in masks.iter().enumerate() {
                if get_bit(bits, p + off) {
                    out.push((k as u32, p as u32));
                }
            }
            p += 1;
        }
        self.next = p;
        out
    }

    fn build(&self, rows: &[(u32, u32)]) -> Result<RecordBatch> {
        let win = self.data.window;
        let grid = &self.archive.grid;
        let scene = |k: u32| self.data.scenes[k as usize].scene;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for ((c, source), field) in self
            .columns
            .iter()
            .zip(&self.sources)
            .zip(self.schema.fields())
        {
            let offsets = rows.iter().map(|&(_, p)| p as usize);
            if let Some(a) = coordinates(c, grid, &win, offsets) {
                arrays.push(a);
                continue;
            }
            let a: ArrayRef = match c {
                Column::Time => {
                    let times: Vec<i64> = self
                        .data
                        .scenes
                        .iter()
                        .map(|s| self.archive.scenes[s.scene].time_ns)
                        .collect();
                    Arc::new(TimestampNanosecondArray::from_iter_values(
                        rows.iter().map(|&(k, _)| times[k as usize]),
                    ))
                }
                Column::Scene => Arc::new(DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from_iter_values(rows.iter().map(|&(k, _)| scene(k) as i32)),
                    self.scene_ids.clone(),
                )?),
                Column::Sensor => Arc::new(DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from_iter_values(
                        rows.iter()
                            .map(|&(k, _)| self.archive.sensor_keys[scene(k)]),
                    ),
                    self.sensor_ids.clone(),
                )?),
                Column::CloudCover => Arc::new(Float64Array::from_iter(
                    rows.iter()
                        .map(|&(k, _)| self.archive.scenes[scene(k)].cloud_cover),
                )),
                Column::Pixel | Column::Row | Column::Col | Column::X | Column::Y => {
                    return Err(DataFusionError::Internal(
                        "coordinate columns are built by `coordinates`".into(),
                    ));
                }
                Column::Band(_) | Column::Common(_) => {
                    let sources = source.as_ref().ok_or_else(|| {
                        DataFusionError::Internal("band columns have sources".into())
                    })?;
                    match (self.run, &sources[..], &self.rows[..]) {
                        (Some(range), [source], [mask]) => {
                            copy_runs(source, mask, range, rows.len(), field.data_type())?
                        }
                        _ => gather(sources, rows, field.data_type())?,
                    }
                }
            };
            arrays.push(a);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?)
    }
}

/// The coordinate column `column` (`pixel`, `row`, `col`, `x`, `y`) of the
/// block pixels `offsets` (row-major in `win`), or `None` for other columns.
pub fn coordinates(
    column: &Column,
    grid: &Grid,
    win: &Window,
    offsets: impl Iterator<Item = usize>,
) -> Option<ArrayRef> {
    let w = win.cols.max(1);
    let grid_row = |p: usize| win.row + (p / w) as i64;
    let grid_col = |p: usize| win.col + (p % w) as i64;
    Some(match column {
        Column::Pixel => Arc::new(pixel_numbers(offsets, win, grid.width as i64)),
        Column::Row => Arc::new(Int32Array::from_iter_values(
            offsets.map(|p| grid_row(p) as i32),
        )),
        Column::Col => Arc::new(Int32Array::from_iter_values(
            offsets.map(|p| grid_col(p) as i32),
        )),
        Column::X => Arc::new(Float64Array::from_iter_values(
            offsets.map(|p| grid.x(grid_col(p))),
        )),
        Column::Y => Arc::new(Float64Array::from_iter_values(
            offsets.map(|p| grid.y(grid_row(p))),
        )),
        _ => return None,
    })
}

/// The grid pixel number of each block pixel offset. Offsets come in block
/// order, so the block row is found by stepping, not dividing (with a
/// division where the order restarts).
fn pixel_numbers(offsets: impl Iterator<Item = usize>, win: &Window, width: i64) -> Int64Array {
    let w = win.cols.max(1);
    let (mut row, mut row_start) = (0usize, 0usize);
    let base = win.row * width + win.col;
    Int64Array::from_iter_values(offsets.map(|p| {
        if p < row_start {
            row = p / w;
            row_start = row * w;
        }
        while p >= row_start + w {
            row += 1;
            row_start += w;
        }
        base + row as i64 * width + (p - row_start) as i64
    }))
}

/// Per block scene, the block pixels inside its footprint.
fn footprint_rows(data: &BlockData) -> Vec<BooleanBuffer> {
    let w = data.window.cols;
    let len = data.window.rows * w;
    data.scenes
        .iter()
        .map(|s| {
            spans_mask(len, w, |r| {
                s.spans[r].map(|(a, b)| (a as usize, b as usize))
            })
        })
        .collect()
}

/// `f::<T>(args)` for the Arrow primitive type `T` of band column type `t`.
macro_rules! by_band_type {
    ($t:expr, $f:ident($($arg:expr),*)) => {
        match $t {
            DataType::UInt8 => $f::<UInt8Type>($($arg),*),
            DataType::Int8 => $f::<Int8Type>($($arg),*),
            DataType::UInt16 => $f::<UInt16Type>($($arg),*),
            DataType::Int16 => $f::<Int16Type>($($arg),*),
            DataType::UInt32 => $f::<UInt32Type>($($arg),*),
            DataType::Int32 => $f::<Int32Type>($($arg),*),
            DataType::UInt64 => $f::<UInt64Type>($($arg),*),
            DataType::Int64 => $f::<Int64Type>($($arg),*),
            DataType::Float32 => $f::<Float32Type>($($arg),*),
            DataType::Float64 => $f::<Float64Type>($($arg),*),
            other => Err(DataFusionError::Internal(format!(
                "band columns are numeric, got {other}"
            ))),
        }
    };
}

/// The values of `source` at the set bits of `mask` over pixels
/// `[p0, p1)` (`rows` values in all), with validity: runs of set bits are
/// copied whole.
fn copy_runs(
    source: &ArrayRef,
    mask: &BooleanBuffer,
    (p0, p1): (usize, usize),
    rows: usize,
    t: &DataType,
) -> Result<ArrayRef> {
    by_band_type!(t, copy_runs_typed(source, mask, (p0, p1), rows))
}

fn copy_runs_typed<T: ArrowPrimitiveType>(
    source: &ArrayRef,
    mask: &BooleanBuffer,
    (p0, p1): (usize, usize),
    rows: usize,
) -> Result<ArrayRef> {
    let array = source.as_primitive::<T>();
    let src = array.values();
    let mut values: Vec<T::Native> = Vec::with_capacity(rows);
    let mut validity = (array.null_count() > 0).then(|| BooleanBufferBuilder::new(rows));
    for (s, e) in BitSliceIterator::new(mask.values(), mask.offset() + p0, p1 - p0) {
        let (a, b) = (p0 + s, p0 + e);
        values.extend_from_slice(&src[a..b]);
        if let (Some(v), Some(n)) = (&mut validity, array.nulls()) {
            let bits = n.inner();
            v.append_packed_range(bits.offset() + a..bits.offset() + b, bits.values());
        }
    }
    if values.len() != rows {
        return Err(DataFusionError::Internal(format!(
            "scan batch: {} values copied for {rows} rows",
            values.len()
        )));
    }
    let nulls = validity.map(|mut v| NullBuffer::new(v.finish()));
    Ok(Arc::new(PrimitiveArray::<T>::new(
        ScalarBuffer::from(values),
        nulls,
    )))
}

/// `out[i] = sources[k][p]` for `rows[i] = (k, p)`, with validity.
fn gather(sources: &[ArrayRef], rows: &[(u32, u32)], t: &DataType) -> Result<ArrayRef> {
    by_band_type!(t, gather_typed(sources, rows))
}

fn gather_typed<T: ArrowPrimitiveType>(
    sources: &[ArrayRef],
    rows: &[(u32, u32)],
) -> Result<ArrayRef> {
    let arrays: Vec<&PrimitiveArray<T>> = sources.iter().map(|a| a.as_primitive::<T>()).collect();
    let values: Vec<&[T::Native]> = arrays.iter().map(|a| a.values().as_ref()).collect();
    let out: Vec<T::Native> = rows
        .iter()
        .map(|&(k, p)| values[k as usize][p as usize])
        .collect();
    let nulls = arrays.iter().any(|a| a.null_count() > 0).then(|| {
        let bits: Vec<Option<(&[u8], usize)>> = arrays
            .iter()
            .map(|a| {
                a.nulls()
                    .map(|n| (n.inner().inner().as_slice(), n.inner().offset()))
            })
            .collect();
        NullBuffer::new(BooleanBuffer::collect_bool(rows.len(), |i| {
            let (k, p) = rows[i];
            match bits[k as usize] {
                Some((b, off)) => get_bit(b, p as usize + off),
                None => true,
            }
        }))
    });
    Ok(Arc::new(PrimitiveArray::<T>::new(
        ScalarBuffer::from(out),
        nulls,
    )))
}

impl Iterator for BlockBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(strip) = self.strip {
            return self.next_dense(strip);
        }
        let rows = self.next_rows();
        if rows.is_empty() {
            return None;
        }
        let _span = tracing::info_span!("batch", rows = rows.len()).entered();
        Some(self.build(&rows))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::UInt16Array;

    use super::*;

    #[test]
    fn runs_of_the_mask_are_copied_with_their_nulls() {
        let source: ArrayRef = Arc::new(UInt16Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(4),
            Some(5),
            None,
            Some(7),
            Some(8),
        ]));
        let mask = BooleanBuffer::from(vec![true, true, true, false, true, true, false, true]);
        // Pixels 1..7: runs [1, 3) and [4, 6); pixels 0 and 7 are outside.
        let out = copy_runs(&source, &mask, (1, 7), 4, &DataType::UInt16).unwrap();
        let want = UInt16Array::from(vec![Some(2), None, Some(5), None]);
        assert_eq!(out.as_primitive::<UInt16Type>(), &want);
        // The mask's offset is honoured (a slice of a longer mask).
        let long = BooleanBuffer::from(vec![false, false, true, true, true, false, true, true]);
        let out = copy_runs(&source, &long.slice(2, 6), (0, 6), 5, &DataType::UInt16).unwrap();
        let want = UInt16Array::from(vec![Some(1), Some(2), None, Some(5), None]);
        assert_eq!(out.as_primitive::<UInt16Type>(), &want);
        // Without NULLs in the source, none in the copy.
        let dense: ArrayRef = Arc::new(UInt16Array::from(vec![1u16, 2, 3, 4, 5, 6, 7, 8]));
        let out = copy_runs(&dense, &mask, (0, 8), 6, &DataType::UInt16).unwrap();
        assert_eq!(
            out.as_primitive::<UInt16Type>(),
            &UInt16Array::from(vec![1u16, 2, 3, 5, 6, 8])
        );
        assert!(out.nulls().is_none());
        // A wrong row count is an error, not a short column.
        assert!(copy_runs(&source, &mask, (1, 7), 3, &DataType::UInt16).is_err());
    }

    #[test]
    fn pixel_numbers_step_through_block_rows() {
        // A 3 x 4 block at grid row 2, col 5 of a grid 20 pixels wide.
        let win = Window {
            row: 2,
            col: 5,
            rows: 3,
            cols: 4,
        };
        let rows = [(0, 0), (1, 0), (0, 3), (0, 4), (0, 11), (0, 1)];
        let want: Vec<i64> = rows
            .iter()
            .map(|&(_, p)| (2 + p as i64 / 4) * 20 + 5 + p as i64 % 4)
            .collect();
        let offsets = rows.iter().map(|&(_, p)| p as usize);
        assert_eq!(pixel_numbers(offsets, &win, 20).values().to_vec(), want);
    }
}
