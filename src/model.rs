//! An archive opened as a table: its scenes placed on the table's grid,
//! and the table's columns (which band each reads, with what sample type).
//! Built once when a table is created ([`SceneArchive::open`]) and
//! serializable, so a scan planned in one process reads the same scenes in
//! another; the provider adapts it to DataFusion ([`crate::provider`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::archive::{self, Scene};
use crate::error::Result;
use crate::grid::{self, Grid, ScenePlacement};
use crate::options::{COMMON_NAMES, SceneOptions};
use crate::pixels::SampleType;

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
    /// The scene's cloud cover in percent, NULL when unknown.
    CloudCover,
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
            Column::CloudCover,
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
            Column::CloudCover => "cloud_cover",
            Column::Common(n) | Column::Band(n) => n,
        }
    }
}
