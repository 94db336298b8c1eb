//! The scene table: a DataFusion `TableProvider` exposing an archive as rows
//! `(pixel, row, col, x, y, time, scene, sensor, <common names>, <bands>)`,
//! one per (pixel, scene) inside the scene's footprint on the table's grid.
//!
//! The archive is discovered, inspected and placed on the grid once, when the
//! table is created ([`SceneArchive::open`]); `scan` only prunes scenes and
//! windows with the query's filters and hands a plan to [`crate::scan`].

pub mod factory;
pub mod function;
pub mod pruning;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::archive::{self, Scene};
use crate::error::Result;
use crate::grid::{self, Grid, ScenePlacement};
use crate::options::{COMMON_NAMES, SceneOptions};
use crate::raster::SampleType;
use crate::scan::SceneScanExec;
use crate::scan::filter::{ScanFilter, is_scan_filter};

/// One column of a scene table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    Pixel,
    Row,
    Col,
    X,
    Y,
    Time,
    Scene,
    Sensor,
    /// A common band name (`red`, `nir`, ...) mapped per sensor.
    Common(String),
    /// A raw band, by its lower-case name.
    Band(String),
}

impl Column {
    /// The band of `scene` this column reads: a raw band by its name, a
    /// common name through the scene's mapping; `None` for other columns
    /// (and a common name the scene does not map).
    pub fn band_in(&self, scene: &Scene) -> Option<String> {
        match self {
            Column::Band(n) => Some(n.clone()),
            Column::Common(n) => scene.common.get(n).cloned(),
            _ => None,
        }
    }
}

/// Everything known about an archive once the table is created: scenes, the
/// grid and where each scene sits on it. Serializable, so the scan can be
/// shipped to other processes (Ballista) without re-reading the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneArchive {
    pub location: String,
    pub options: SceneOptions,
    pub scenes: Vec<Scene>,
    pub grid: Grid,
    pub placements: Vec<ScenePlacement>,
    pub band_types: BTreeMap<String, SampleType>,
    pub common_types: BTreeMap<String, SampleType>,
    pub columns: Vec<Column>,
    /// Distinct sensors; the `sensor` dictionary's values.
    pub sensors: Vec<String>,
    /// Per scene, its key into `sensors` (the `sensor` dictionary's keys).
    pub sensor_keys: Vec<i32>,
}

impl SceneArchive {
    /// Discover, inspect and place every scene under `location`.
    pub async fn open(location: &str, options: SceneOptions) -> Result<Self> {
        let location = archive::listing::absolutize(location);
        let mut options = options;
        // A STAC search's box is lon/lat, and so is the grid's then.
        if archive::stac::is_stac_location(&location)
            && options.bbox.is_some()
            && options.bbox_crs.is_none()
        {
            options.bbox_crs = Some("EPSG:4326".into());
        }
        let scenes = archive::discover(&location, &options).await?;
        let opts = options.clone();
        let (scenes, grid, placements) = tokio::task::spawn_blocking(move || -> Result<_> {
            let grid = grid::choose_grid(&scenes, &opts)?;
            let placements = grid::place_scenes(&scenes, &grid)?;
            Ok((scenes, grid, placements))
        })
        .await
        .map_err(|e| {
            crate::error::SceneError::Io(
                "grid task failed".into(),
                std::io::Error::other(e.to_string()),
            )
        })??;
        tracing::info!(
            scenes = scenes.len(),
            width = grid.width,
            height = grid.height,
            crs = %grid.crs_key,
            warped = placements.iter().filter(|p| p.footprint.polygon.is_some()).count(),
            "scene table ready"
        );
        Ok(Self::from_parts(
            location, options, scenes, grid, placements,
        ))
    }

    pub fn from_parts(
        location: String,
        options: SceneOptions,
        scenes: Vec<Scene>,
        grid: Grid,
        placements: Vec<ScenePlacement>,
    ) -> Self {
        let (band_types, mut common_types) = archive::column_types(&scenes);
        // A raw band named like a common name (multi-band files named
        // 'red,nir') is that column already.
        common_types.retain(|name, _| !band_types.contains_key(name));
        let mut columns = vec![
            Column::Pixel,
            Column::Row,
            Column::Col,
            Column::X,
            Column::Y,
            Column::Time,
            Column::Scene,
            Column::Sensor,
        ];
        columns.extend(
            COMMON_NAMES
                .iter()
                .filter(|n| common_types.contains_key(**n))
                .map(|n| Column::Common(n.to_string())),
        );
        columns.extend(band_types.keys().map(|b| Column::Band(b.clone())));
        let mut sensors: Vec<String> = scenes.iter().map(|s| s.sensor.clone()).collect();
        sensors.sort();
        sensors.dedup();
        let sensor_keys = scenes
            .iter()
            .map(|s| sensors.binary_search(&s.sensor).unwrap_or(0) as i32)
            .collect();
        SceneArchive {
            location,
            options,
            scenes,
            grid,
            placements,
            band_types,
            common_types,
            columns,
            sensors,
            sensor_keys,
        }
    }

    pub fn column_name(c: &Column) -> &str {
        match c {
            Column::Pixel => "pixel",
            Column::Row => "row",
            Column::Col => "col",
            Column::X => "x",
            Column::Y => "y",
            Column::Time => "time",
            Column::Scene => "scene",
            Column::Sensor => "sensor",
            Column::Common(n) | Column::Band(n) => n,
        }
    }

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
            Column::Common(n) => Field::new(name, self.common_types[n].arrow(), true),
            Column::Band(n) => Field::new(name, self.band_types[n].arrow(), true),
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
        // blocks (exact: DataFusion drops its FilterExec). Filters on time,
        // scene, sensor or pixel position prune scenes and windows;
        // DataFusion still applies them row by row, so pruning only has to
        // be conservative.
        Ok(filters
            .iter()
            .map(|f| {
                if is_scan_filter(f, &self.archive) {
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
