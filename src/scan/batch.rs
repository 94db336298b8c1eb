//! Turning a block into Arrow batches, rows ordered by (pixel, time): for
//! each pixel of the block in row-major order, one row per scene whose
//! footprint holds it, scenes in time order. Batches are built lazily (one
//! per call), so only the block's decoded bands are held in memory.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchOptions, TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::{cast, interleave};
use datafusion::arrow::datatypes::{Int32Type, SchemaRef};
use datafusion::error::Result;

use super::read::BlockData;
use crate::provider::{Column, SceneArchive};

/// Lazily yields the batches of one block.
pub struct BlockBatches {
    archive: Arc<SceneArchive>,
    columns: Vec<Column>,
    schema: SchemaRef,
    data: BlockData,
    /// Per output column, per block scene: the values to gather from
    /// (None for fixed columns computed from coordinates).
    sources: Vec<Option<Vec<ArrayRef>>>,
    scene_ids: ArrayRef,
    sensor_ids: ArrayRef,
    batch_size: usize,
    row: usize,
    col: usize,
}

impl BlockBatches {
    pub fn try_new(
        archive: Arc<SceneArchive>,
        columns: Vec<Column>,
        schema: SchemaRef,
        data: BlockData,
        batch_size: usize,
        scene_ids: ArrayRef,
        sensor_ids: ArrayRef,
    ) -> Result<Self> {
        let len = data.window.rows * data.window.cols;
        let mut sources = Vec::with_capacity(columns.len());
        for (c, field) in columns.iter().zip(schema.fields()) {
            let t = field.data_type();
            let band_of = |bs: &super::read::BlockScene| -> Option<String> {
                match c {
                    Column::Band(n) => Some(n.clone()),
                    Column::Common(n) => archive.scenes[bs.scene].common.get(n).cloned(),
                    _ => None,
                }
            };
            if !matches!(c, Column::Band(_) | Column::Common(_)) {
                sources.push(None);
                continue;
            }
            let mut arrays = Vec::with_capacity(data.scenes.len());
            let mut nulls: Option<ArrayRef> = None;
            for bs in &data.scenes {
                match band_of(bs).and_then(|b| bs.bands.get(&b)) {
                    Some(a) if a.data_type() == t => arrays.push(a.clone()),
                    Some(a) => arrays.push(cast(a, t)?),
                    None => {
                        arrays.push(nulls.get_or_insert_with(|| new_null_array(t, len)).clone())
                    }
                }
            }
            sources.push(Some(arrays));
        }
        Ok(BlockBatches {
            archive,
            columns,
            schema,
            data,
            sources,
            scene_ids,
            sensor_ids,
            batch_size: batch_size.max(1),
            row: 0,
            col: 0,
        })
    }

    /// (block scene, pixel offset in block) of the next batch's rows.
    fn next_rows(&mut self) -> Vec<(usize, usize)> {
        let (h, w) = (self.data.window.rows, self.data.window.cols);
        let mut rows = Vec::with_capacity(self.batch_size + self.data.scenes.len());
        while self.row < h && rows.len() < self.batch_size {
            let r = self.row;
            let c = self.col as u32;
            for (k, s) in self.data.scenes.iter().enumerate() {
                if let Some((a, b)) = s.spans[r]
                    && a <= c
                    && c < b
                {
                    rows.push((k, r * w + self.col));
                }
            }
            self.col += 1;
            if self.col == w {
                self.col = 0;
                self.row += 1;
            }
        }
        rows
    }

    fn build(&self, rows: &[(usize, usize)]) -> Result<RecordBatch> {
        let win = self.data.window;
        let grid = &self.archive.grid;
        let w = win.cols;
        let grid_row = |p: usize| win.row + (p / w) as i64;
        let grid_col = |p: usize| win.col + (p % w) as i64;
        let scene = |k: usize| self.data.scenes[k].scene;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (c, source) in self.columns.iter().zip(&self.sources) {
            let a: ArrayRef = match c {
                Column::Pixel => Arc::new(Int64Array::from_iter_values(
                    rows.iter()
                        .map(|&(_, p)| grid_row(p) * grid.width as i64 + grid_col(p)),
                )),
                Column::Row => Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|&(_, p)| grid_row(p) as i32),
                )),
                Column::Col => Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|&(_, p)| grid_col(p) as i32),
                )),
                Column::X => Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|&(_, p)| grid.x(grid_col(p))),
                )),
                Column::Y => Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|&(_, p)| grid.y(grid_row(p))),
                )),
                Column::Time => Arc::new(TimestampNanosecondArray::from_iter_values(
                    rows.iter()
                        .map(|&(k, _)| self.archive.scenes[scene(k)].time_ns),
                )),
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
                Column::Band(_) | Column::Common(_) => {
                    let sources = source.as_ref().expect("band columns have sources");
                    let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
                    interleave(&refs, rows)?
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

impl Iterator for BlockBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.next_rows();
        if rows.is_empty() {
            return None;
        }
        let _span = tracing::info_span!("batch", rows = rows.len()).entered();
        Some(self.build(&rows))
    }
}
