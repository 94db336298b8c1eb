//! Options of a scene table: `CREATE EXTERNAL TABLE ... OPTIONS (...)` and the
//! extra `'key', 'value'` arguments of `scenes('loc', ...)`. Parsed once, so a
//! typo is an error naming the known keys, not a silently ignored setting.

use std::collections::BTreeMap;

use regex::Regex;

use crate::error::{Result, SceneError};
use crate::store::StoreConfig;

/// Every key a scene table accepts.
pub const KNOWN_KEYS: &[&str] = &[
    "crs",
    "resolution",
    "bbox",
    "bbox_crs",
    "resampling",
    "bands",
    "nodata",
    "pattern",
    "path_pattern",
    "date_format",
    "band_names",
    "common_names",
    "block_bytes",
    "max_grid_pixels",
    "missing_bands",
    "collections",
    "datetime",
    "query",
    "filter",
    "assets",
    "max_items",
    "page_size",
    "apply_scale",
    "aws.*",
    "gcp.*",
    "azure.*",
];

/// The most pixels a table's grid may have unless OPTIONS raise it
/// (`'max_grid_pixels'`): 2^32, a 65536 x 65536 grid.
pub const DEFAULT_MAX_GRID_PIXELS: u64 = 1 << 32;

/// Default memory budget of one scan block (all dates of its window).
pub const DEFAULT_BLOCK_BYTES: usize = 256 * 1024 * 1024;

/// The named groups a `pattern` may have ([`crate::archive::pattern`]).
const PATTERN_GROUPS: [&str; 4] = ["date", "band", "scene", "sensor"];

/// Nodata override: one value for every band, or per band.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodataOverride {
    pub all: Option<f64>,
    pub per_band: BTreeMap<String, f64>,
}

impl NodataOverride {
    pub fn for_band(&self, band: &str) -> Option<f64> {
        self.per_band.get(band).copied().or(self.all)
    }
}

/// `'missing_bands'`: a scene lacking a band that other scenes of its
/// sensor have.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MissingBands {
    /// An error listing those scenes (an incomplete download, usually).
    #[default]
    Error,
    /// Read them: their missing bands are NULL.
    Null,
    /// Leave those scenes out.
    Skip,
}

/// Parsed scene-table options.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SceneOptions {
    pub crs: Option<String>,
    pub resolution: Option<(f64, f64)>,
    pub bbox: Option<[f64; 4]>,
    pub bbox_crs: Option<String>,
    pub resampling: Option<String>,
    pub bands: Option<Vec<String>>,
    pub nodata: NodataOverride,
    pub pattern: Option<String>,
    /// `pattern`, matched against each file's path relative to the
    /// location (dates and scene ids in folder names).
    #[serde(default)]
    pub path_pattern: bool,
    pub date_format: Option<String>,
    pub band_names: Option<Vec<String>>,
    pub common_names: Option<BTreeMap<String, String>>,
    pub block_bytes: Option<usize>,
    /// What to do with scenes lacking bands other scenes of their sensor
    /// have.
    #[serde(default)]
    pub missing_bands: MissingBands,
    /// The most pixels a table's grid may have ([`DEFAULT_MAX_GRID_PIXELS`]).
    #[serde(default)]
    pub max_grid_pixels: Option<u64>,
    /// STAC sources: the search's collections, datetime interval, query
    /// and filter (JSON, passed through), the asset keys read, and a cap
    /// on items. `bbox` is the search's lon/lat box for a STAC location.
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    #[serde(default)]
    pub datetime: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub assets: Option<Vec<String>>,
    #[serde(default)]
    pub max_items: Option<usize>,
    /// Items per page of a STAC API search.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Bands with a STAC scale/offset read as Float32 physical values.
    #[serde(default)]
    pub apply_scale: bool,
    /// The object store's settings (`aws.*`, `gcp.*`, `azure.*`); its
    /// secrets are neither serialized nor printed.
    #[serde(default)]
    pub store: StoreConfig,
}

/// GDAL resampling names accepted by `'resampling'`.
const RESAMPLING: &[&str] = &[
    "near",
    "bilinear",
    "cubic",
    "cubicspline",
    "lanczos",
    "average",
    "rms",
    "mode",
    "max",
    "min",
    "med",
    "q1",
    "q3",
    "sum",
];

/// The common band names a table can expose.
pub const COMMON_NAMES: &[&str] = &["blue", "green", "red", "nir", "swir1", "swir2", "qa"];

fn bad(key: &str, value: &str, reason: impl Into<String>) -> SceneError {
    SceneError::BadOption {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn numbers(key: &str, value: &str) -> Result<Vec<f64>> {
    value
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| bad(key, value, format!("'{}' is not a number", s.trim())))
        })
        .collect()
}

fn names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl SceneOptions {
    /// Parse `key -> value` pairs. Keys are case-insensitive; DataFusion's
    /// `format.` prefix is accepted and ignored.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut o = SceneOptions::default();
        for (key, value) in pairs {
            let key = key.trim().to_lowercase();
            let key = key.strip_prefix("format.").unwrap_or(&key).to_string();
            let v = value.trim();
            match key.as_str() {
                "crs" => o.crs = Some(v.to_string()),
                "bbox_crs" => o.bbox_crs = Some(v.to_string()),
                "resolution" => {
                    let n = numbers(&key, v)?;
                    o.resolution = Some(match n[..] {
                        [r] if r > 0.0 => (r, r),
                        [rx, ry] if rx > 0.0 && ry > 0.0 => (rx, ry),
                        _ => {
                            return Err(bad(
                                &key,
                                v,
                                "expected 'r' or 'rx,ry' with positive numbers",
                            ));
                        }
                    })
                }
                "bbox" => {
                    let n = numbers(&key, v)?;
                    match n[..] {
                        [a, b, c, d] if a < c && b < d => o.bbox = Some([a, b, c, d]),
                        _ => {
                            return Err(bad(
                                &key,
                                v,
                                "expected 'minx,miny,maxx,maxy' with minx < maxx and miny < maxy",
                            ));
                        }
                    }
                }
                "resampling" => {
                    let r = v.to_lowercase();
                    let r = if r == "nearest" {
                        "near".to_string()
                    } else {
                        r
                    };
                    if !RESAMPLING.contains(&r.as_str()) {
                        return Err(bad(
                            &key,
                            v,
                            format!("expected one of {}", RESAMPLING.join(", ")),
                        ));
                    }
                    o.resampling = Some(r)
                }
                "bands" => {
                    let b = names(v);
                    if b.is_empty() {
                        return Err(bad(
                            &key,
                            v,
                            "expected a comma-separated list of band names",
                        ));
                    }
                    o.bands = Some(b)
                }
                "band_names" => o.band_names = Some(names(v)),
                "nodata" => o.nodata = parse_nodata(&key, v)?,
                "pattern" | "path_pattern" => {
                    let path = key == "path_pattern";
                    if o.pattern.is_some() && o.path_pattern != path {
                        return Err(bad(&key, v, "give 'pattern' or 'path_pattern', not both"));
                    }
                    let re = Regex::new(v).map_err(|e| bad(&key, v, e.to_string()))?;
                    let groups: Vec<&str> = re.capture_names().flatten().collect();
                    if !groups.contains(&"date") {
                        return Err(bad(
                            &key,
                            v,
                            "the pattern needs a named group (?P<date>...)",
                        ));
                    }
                    if let Some(unknown) = groups.iter().find(|g| !PATTERN_GROUPS.contains(g)) {
                        return Err(bad(
                            &key,
                            v,
                            format!(
                                "unknown group '(?P<{unknown}>...)'; a pattern's groups are {}",
                                PATTERN_GROUPS.map(|g| format!("(?P<{g}>...)")).join(", ")
                            ),
                        ));
                    }
                    o.pattern = Some(v.to_string());
                    o.path_pattern = path;
                }
                "date_format" => {
                    if v.is_empty() {
                        return Err(bad(&key, v, "expected a strftime format such as '%Y%m%d'"));
                    }
                    o.date_format = Some(v.to_string())
                }
                "common_names" => {
                    let mut map = BTreeMap::new();
                    for item in v.split(',').filter(|s| !s.trim().is_empty()) {
                        let (band, name) = item.split_once('=').ok_or_else(|| {
                            bad(&key, v, "expected 'band=name,...', e.g. 'b3=red,b4=nir'")
                        })?;
                        let name = name.trim().to_lowercase();
                        if !COMMON_NAMES.contains(&name.as_str()) {
                            return Err(bad(
                                &key,
                                v,
                                format!(
                                    "'{name}' is not a common name; use {}",
                                    COMMON_NAMES.join(", ")
                                ),
                            ));
                        }
                        map.insert(name, band.trim().to_lowercase());
                    }
                    o.common_names = Some(map)
                }
                "missing_bands" => {
                    o.missing_bands = match v.trim().to_ascii_lowercase().as_str() {
                        "error" => MissingBands::Error,
                        "null" => MissingBands::Null,
                        "skip" => MissingBands::Skip,
                        _ => return Err(bad(&key, v, "expected 'error', 'null' or 'skip'")),
                    }
                }
                "max_grid_pixels" => {
                    let n: u64 = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n >= 2)
                        .ok_or_else(|| bad(&key, v, "expected a whole number of at least 2"))?;
                    o.max_grid_pixels = Some(n)
                }
                "block_bytes" => {
                    let n: usize = parse_bytes(v).ok_or_else(|| {
                        bad(
                            &key,
                            v,
                            "expected a byte count such as 268435456, 256MB or 1GB",
                        )
                    })?;
                    if n < 1024 * 1024 {
                        return Err(bad(&key, v, "must be at least 1MB"));
                    }
                    o.block_bytes = Some(n)
                }
                "collections" => {
                    o.collections = Some(
                        v.split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect(),
                    )
                }
                "datetime" => o.datetime = Some(v.to_string()),
                "query" | "filter" => {
                    let json: serde_json::Result<serde_json::Value> = serde_json::from_str(v);
                    if key == "query" && json.is_err() {
                        return Err(bad(
                            &key,
                            v,
                            "expected a JSON object, e.g. '{\"eo:cloud_cover\":{\"lt\":20}}'",
                        ));
                    }
                    if key == "query" {
                        o.query = Some(v.to_string())
                    } else {
                        o.filter = Some(v.to_string())
                    }
                }
                "assets" => o.assets = Some(names(v)),
                "apply_scale" => {
                    o.apply_scale = match v.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(&key, v, "expected 'true' or 'false'")),
                    }
                }
                "page_size" => {
                    o.page_size = Some(
                        v.parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(&key, v, "expected a positive count"))?,
                    )
                }
                "max_items" => {
                    o.max_items = Some(
                        v.parse()
                            .map_err(|_| bad(&key, v, "expected a positive count"))?,
                    )
                }
                k if StoreConfig::is_store_key(k) => o.store.set(k, v)?,
                _ => {
                    return Err(SceneError::UnknownOption {
                        key,
                        known: KNOWN_KEYS.join(", "),
                    });
                }
            }
        }
        if o.bbox_crs.is_some() && o.bbox.is_none() {
            return Err(bad(
                "bbox_crs",
                o.bbox_crs.as_deref().unwrap_or(""),
                "'bbox_crs' needs 'bbox'",
            ));
        }
        Ok(o)
    }

    pub fn block_bytes(&self) -> usize {
        self.block_bytes.unwrap_or(DEFAULT_BLOCK_BYTES)
    }

    pub fn max_grid_pixels(&self) -> u64 {
        self.max_grid_pixels.unwrap_or(DEFAULT_MAX_GRID_PIXELS)
    }
}

fn parse_nodata(key: &str, v: &str) -> Result<NodataOverride> {
    let mut n = NodataOverride::default();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((band, val)) => {
                let x = val
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| bad(key, v, format!("'{val}' is not a number")))?;
                n.per_band.insert(band.trim().to_lowercase(), x);
            }
            None => {
                n.all = Some(
                    item.parse::<f64>()
                        .map_err(|_| bad(key, v, "expected a number or 'band=value,...'"))?,
                )
            }
        }
    }
    Ok(n)
}

fn parse_bytes(v: &str) -> Option<usize> {
    let v = v.trim().to_uppercase();
    let (num, mult) = [
        ("GB", 1usize << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| v.strip_suffix(suffix).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((v.clone(), 1));
    num.parse::<f64>()
        .ok()
        .filter(|x| *x > 0.0)
        .map(|x| (x * mult as f64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_options_and_rejects_unknown_ones() {
        let o = SceneOptions::parse([
            ("resolution", "30"),
            ("bbox", "0,0,10,10"),
            ("block_bytes", "64MB"),
            ("nodata", "0,qa_pixel=1"),
        ])
        .unwrap();
        assert_eq!(o.resolution, Some((30.0, 30.0)));
        assert_eq!(o.block_bytes(), 64 << 20);
        assert_eq!(o.nodata.for_band("qa_pixel"), Some(1.0));
        assert_eq!(o.nodata.for_band("sr_b4"), Some(0.0));
        let e = SceneOptions::parse([("resolutoin", "30")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown option 'resolutoin'") && e.contains("resolution"),
            "{e}"
        );
        let e = SceneOptions::parse([("pattern", r"(\d{8})\.tif")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("(?P<date>"), "{e}");
    }
}
