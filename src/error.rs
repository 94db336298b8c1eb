//! Typed errors of sceneql. Each says what went wrong, where (file, scene,
//! option) and what the user can do about it; they convert into
//! `DataFusionError::External` so they travel through query planning and
//! execution unchanged and reach the CLI as the message the user reads.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Everything that can go wrong between an archive location and Arrow batches.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("no scenes found in '{location}' ({skipped} files matched no known layout{hint})")]
    NoScenes {
        location: String,
        skipped: usize,
        hint: String,
    },

    #[error("cannot list '{location}': {source}; check that the path exists and is readable")]
    Listing {
        location: String,
        source: object_store::Error,
    },

    #[error(
        "'{path}' cannot be read as a raster by GDAL: {message}; remove or replace the file (is it corrupt, truncated or not a raster?)"
    )]
    Unreadable { path: String, message: String },

    #[error(
        "reading {what} from '{path}' failed: {message}; the file may be corrupt or truncated: remove or replace it"
    )]
    Read {
        path: String,
        what: String,
        message: String,
    },

    #[error(
        "cannot parse the date '{text}' of '{path}' with format '{format}'; fix the file name or set OPTIONS ('date_format' '...') (strftime, e.g. '%Y%m%d' or '%Y%j')"
    )]
    BadDate {
        path: String,
        text: String,
        format: String,
    },

    #[error(
        "scene '{scene}' has no band '{band}' (bands found: {found}), while other {sensor} scenes have it; add the missing file, remove the scene, or restrict the table with OPTIONS ('bands' '{common}')"
    )]
    MissingBand {
        scene: String,
        band: String,
        found: String,
        sensor: String,
        common: String,
    },

    #[error(
        "scene '{scene}' has two files for band '{band}': '{first}' and '{second}'; remove one of them"
    )]
    DuplicateBand {
        scene: String,
        band: String,
        first: String,
        second: String,
    },

    #[error("unknown option '{key}'; known options: {known}")]
    UnknownOption { key: String, known: String },

    #[error("option '{key}' = '{value}' is invalid: {reason}")]
    BadOption {
        key: String,
        value: String,
        reason: String,
    },

    #[error(
        "no target grid dominates: {detail}; set OPTIONS ('crs' '...', 'resolution' '...') (and optionally 'bbox') to choose the grid every scene is warped onto"
    )]
    NoDominantGrid { detail: String },

    #[error(
        "band '{band}' of '{path}' has GDAL type {gdal_type}, which sceneql cannot read; convert it (e.g. gdal_translate -ot Float64)"
    )]
    UnsupportedType {
        path: String,
        band: String,
        gdal_type: String,
    },

    #[error("'{path}': {message}")]
    Geometry { path: String, message: String },

    #[error("cannot warp '{path}' onto the target grid: {message}")]
    Warp { path: String, message: String },

    #[error("{0}")]
    Io(String, #[source] std::io::Error),

    #[error(
        "cannot use the object store '{location}': {message}; check the URL and the store settings (environment or OPTIONS)"
    )]
    Store { location: String, message: String },

    #[error("'{object}' {problem}; {hint} ({detail})")]
    Object {
        object: String,
        problem: String,
        hint: String,
        detail: String,
    },

    #[error(transparent)]
    Stac(#[from] crate::archive::stac::StacError),

    #[error("sample generation failed at '{path}': {message}")]
    Sample { path: PathBuf, message: String },
}

impl From<SceneError> for DataFusionError {
    fn from(e: SceneError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

pub type Result<T, E = SceneError> = std::result::Result<T, E>;
