//! Typed errors of sceneql. Each says what went wrong, where (file, scene,
//! option) and what the user can do about it; they convert into
//! `DataFusionError::External` so they travel through query planning and
//! execution unchanged and reach the CLI as the message the user reads.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Everything that can go wrong between an archive location and Arrow batches.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("no scenes found in '{location}': {reason}")]
    NoScenes { location: String, reason: String },

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
        "{count} scenes lack bands that other scenes of their sensor have: {scenes}; add the missing files, or set OPTIONS ('missing_bands' 'null') to read those bands as NULL there, or 'skip' to leave those scenes out (or restrict the table with OPTIONS ('bands' '{common}'))"
    )]
    MissingBands {
        count: usize,
        /// The first few, each with its missing bands and a file.
        scenes: String,
        /// The bands every scene has.
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
    Stac(#[from] StacError),

    #[error("sample generation failed at '{path}': {message}")]
    Sample { path: PathBuf, message: String },
}

impl From<SceneError> for DataFusionError {
    fn from(e: SceneError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

pub type Result<T, E = SceneError> = std::result::Result<T, E>;

/// Everything that can go wrong between a STAC location and scenes. Every
/// message names the document (path or URL, without query string or
/// credentials) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StacError {
    #[error(
        "cannot read the STAC document '{location}': {message}; check that the path or URL exists and is reachable"
    )]
    Read { location: String, message: String },

    #[error(
        "the STAC request to '{location}' failed with HTTP {status}{detail}; check the URL{hint}"
    )]
    Http {
        location: String,
        status: u16,
        detail: String,
        hint: String,
    },

    #[error(
        "'{location}' is not valid JSON: {message} at line {line}, column {column}; fix the document or point the location at a valid STAC document"
    )]
    Malformed {
        location: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "line {line} of the NDJSON document '{location}' is not a valid item: {message}{column}; fix or remove that line"
    )]
    NdjsonLine {
        location: String,
        line: usize,
        column: String,
        message: String,
    },

    #[error("'{location}' is not a valid STAC {kind}: {message}; fix the document")]
    Invalid {
        location: String,
        kind: &'static str,
        message: String,
    },

    #[error(
        "'{location}' is not a STAC document ({found}); point the location at a STAC item, item collection (JSON or NDJSON), catalog, collection or API root"
    )]
    NotStac { location: String, found: String },

    #[error(
        "item '{item}' in '{location}' has {problem}; fix the item or remove it from the catalog"
    )]
    NoTime {
        location: String,
        item: String,
        problem: String,
    },

    #[error(
        "item '{item}' in '{location}' has no asset '{key}' (its assets: {available}); fix OPTIONS ('assets' ...)"
    )]
    MissingAsset {
        location: String,
        item: String,
        key: String,
        available: String,
    },

    #[error(
        "searching the STAC API '{location}' with neither a bbox nor a datetime would list the whole archive; set OPTIONS ('bbox' 'min_lon,min_lat,max_lon,max_lat') or ('datetime' '2023-01-01/2023-12-31')"
    )]
    UnboundedSearch { location: String },

    #[error("option '{key}' = '{value}' is invalid: {reason}")]
    BadOption {
        key: String,
        value: String,
        reason: String,
    },

    #[error(
        "'{location}' is a static STAC document, which cannot be filtered with '{key}' (only a STAC API can); remove OPTIONS ('{key}' ...) and filter in SQL, or point the location at a STAC API"
    )]
    NeedsApi { location: String, key: String },

    #[error(
        "'{location}' is an API collection whose items are listed through its 'items' link, not 'item' links; point the location at the API root ('{root}') and set OPTIONS ('collections' '{id}') with 'bbox' or 'datetime'"
    )]
    ApiCollection {
        location: String,
        root: String,
        id: String,
    },

    #[error(
        "the STAC API '{location}' returned the same 'next' link twice (page {page}); the results would never end: report it to the API's operator, or narrow the search with 'bbox' / 'datetime' / 'max_items'"
    )]
    PagingLoop { location: String, page: usize },

    #[error("no STAC items with data assets found in '{location}'{hint}")]
    NoItems { location: String, hint: String },
}
