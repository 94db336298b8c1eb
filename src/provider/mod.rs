//! The scene table: a DataFusion `TableProvider` exposing an archive as rows
//! `(pixel, row, col, x, y, time, scene, sensor, cloud_cover, <common names>, <bands>)`,
//! one per (pixel, scene) inside the scene's footprint on the table's grid.
//!
//! The archive is discovered, inspected and placed on the grid once, when the
//! table is created ([`SceneArchive::open`], [`crate::model`]); `scan` only
//! prunes scenes and windows with the query's filters and hands a plan to
//! [`crate::scan`].

pub mod factory;
pub mod function;
pub mod pruning;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

pub use crate::model::{Column, SceneArchive};
use crate::pixels::SampleType;
use crate::scan::SceneScanExec;
use crate::scan::filter::{ScanFilter, is_scan_filter};

/// The Arrow shape of an opened archive's columns.
/// The Arrow type of a band column whose samples are `s`.
pub fn arrow_type(s: SampleType) -> DataType {
    match s.read_as() {
        SampleType::U8 => DataType::UInt8,
        SampleType::I8 => DataType::Int8,
        SampleType::U16 => DataType::UInt16,
        SampleType::I16 => DataType::Int16,
        SampleType::U32 => DataType::UInt32,
        SampleType::I32 => DataType::Int32,
        SampleType::U64 => DataType::UInt64,
        SampleType::I64 => DataType::Int64,
        SampleType::F32 => DataType::Float32,
        SampleType::F64 => DataType::Float64,
    }
}

impl SceneArchive {
    pub fn field(&self, c: &Column) -> Field {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let name = Self::column_name(c);
        match c {
            Column::Pixel => Field::new(name, DataType::Int64, false),
            Column::Row | Column::Col => Field::new(name, DataType::Int32, false),
            Column::X | Column::Y => Field::new(name, DataType::Float64, false),
            Column::Time => {
                Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, None), false)
            }
            Column::Scene | Column::Sensor => Field::new(name, dict, false),
            Column::CloudCover => Field::new(name, DataType::Float64, true),
            Column::Common(n) => Field::new(name, arrow_type(self.common_types[n]), true),
            Column::Band(n) => Field::new(name, arrow_type(self.band_types[n]), true),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| self.field(c))
                .collect::<Vec<_>>(),
        ))
    }

    /// The `scene` dictionary's values: every scene id, by scene index.
    pub fn scene_ids(&self) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            self.scenes.iter().map(|s| s.id.as_str()),
        ))
    }
}

/// A scene archive as a DataFusion table.
#[derive(Debug, Clone)]
pub struct SceneTable {
    archive: Arc<SceneArchive>,
    schema: SchemaRef,
}

impl SceneTable {
    pub fn new(archive: Arc<SceneArchive>) -> Self {
        let schema = archive.schema();
        SceneTable { archive, schema }
    }

    pub fn archive(&self) -> &Arc<SceneArchive> {
        &self.archive
    }
}

#[async_trait]
impl TableProvider for SceneTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Predicates over bands only run in the scan, on whole decoded
        // blocks, and filters on time, scene, sensor and cloud cover choose the scenes
        // read (both exact: DataFusion drops its FilterExec, and the
        // per-block aggregation stays over the scan). Filters on pixel
        // position prune windows; DataFusion still applies them row by
        // row, so pruning only has to be conservative.
        Ok(filters
            .iter()
            .map(|f| {
                if is_scan_filter(f, &self.archive) || pruning::is_per_scene(f) {
                    TableProviderFilterPushDown::Exact
                } else if pruning::is_prunable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns: Vec<Column> = match projection {
            Some(p) => p.iter().map(|&i| self.archive.columns[i].clone()).collect(),
            None => self.archive.columns.clone(),
        };
        let scenes = pruning::prune_scenes(&self.archive, &self.schema, filters, state)?;
        let window = pruning::prune_window(&self.archive, &self.schema, filters, state)?;
        let filter = ScanFilter::try_new(&self.archive, filters, state)?;
        let exec = SceneScanExec::try_new(
            self.archive.clone(),
            columns,
            filter,
            scenes,
            window,
            state.config().target_partitions(),
            state.config().batch_size(),
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}
